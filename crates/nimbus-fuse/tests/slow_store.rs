//! A slow store holds up only the requests that need it: while more reads
//! than the adapter has request threads wait for the store, listings,
//! attributes and files already on this device are answered at once.
//!
//! Needs `/dev/fuse` and root (to mount); without them it prints why and
//! passes.

#![cfg(target_os = "linux")]

mod common;

use common::{runtime, skip_reason};
use nimbus_backend::{DynBackend, FaultConfig, FaultyBackend, MemoryBackend};
use nimbus_fs::{Ctx, Fs, FsOptions, ROOT};
use nimbus_fuse::{mount, MountOptions};
use nimbus_vault::{DeviceId, KdfParams, Vault, VaultParams};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const FILES: usize = 12;
/// How long the store takes to answer each request once it is slow.
const STORE_DELAY: Duration = Duration::from_secs(10);

fn content(i: usize) -> Vec<u8> {
    nimbus_fs::conformance::bytes(7000 + i as u64, 2 << 20)
}

#[test]
fn a_slow_store_holds_up_only_what_needs_it() {
    if let Some(why) = skip_reason() {
        eprintln!("skipped: {why}");
        return;
    }
    let rt = runtime();
    let tmp = tempfile::tempdir().expect("a temporary folder");
    let mem: DynBackend = Arc::new(MemoryBackend::new());
    let store = Arc::new(FaultyBackend::new(mem.clone(), FaultConfig::default()));
    let kdf = KdfParams::minimum();
    rt.block_on(Vault::create(mem, b"pw", VaultParams::default(), kdf))
        .expect("a new vault");
    let device = DeviceId::random();
    let load = || {
        let vault = rt.block_on(Vault::open(store.clone(), b"pw")).expect("the vault opens");
        Fs::load(
            vault,
            rt.handle().clone(),
            FsOptions::new(tmp.path().join("state"), device),
        )
        .expect("the drive")
    };

    // The files go into the vault, then a new mount starts with nothing
    // of them on this device: reading them needs the store.
    let fs = load();
    for i in 0..FILES {
        let (_, fh) = fs
            .create(Ctx::ROOT, ROOT, format!("f{i}").as_bytes(), 0o644)
            .expect("create");
        fs.write(fh, 0, &content(i)).expect("write");
        fs.release(fh).expect("release");
    }
    fs.mkdir(Ctx::ROOT, ROOT, b"local", 0o755).expect("mkdir");
    fs.shutdown().expect("the commit");
    drop(fs);
    // What was written here is kept in the blob cache as it is uploaded;
    // without it, this device is a new one for these files.
    std::fs::remove_dir_all(tmp.path().join("state/cache")).expect("the blob cache");
    let fs = load();
    let mnt = tmp.path().join("mnt");
    std::fs::create_dir(&mnt).expect("the mount point");
    let session = mount(fs.clone(), &mnt, &MountOptions::default()).expect("mount");

    store.set_delay(Some(STORE_DELAY));
    let gets_before = store.stats().gets;
    let finished = Arc::new(AtomicUsize::new(0));
    let readers: Vec<_> = (0..FILES)
        .map(|i| {
            let (path, finished) = (mnt.join(format!("f{i}")), Arc::clone(&finished));
            std::thread::spawn(move || {
                let got = std::fs::read(&path);
                finished.fetch_add(1, Ordering::SeqCst);
                (i, got)
            })
        })
        .collect();
    // Wait until more reads wait for the store than the adapter has threads
    // reading requests (8).
    let deadline = Instant::now() + Duration::from_secs(60);
    while store.stats().gets - gets_before < 9 {
        assert!(Instant::now() < deadline, "the reads never reached the store");
        std::thread::sleep(Duration::from_millis(10));
    }

    // Meanwhile: a listing, every file's attributes, and a file written and
    // read back on this device.
    let t = Instant::now();
    let names = std::fs::read_dir(&mnt).map(|d| d.count());
    let sizes: Vec<_> = (0..FILES)
        .map(|i| std::fs::metadata(mnt.join(format!("f{i}"))).map(|m| m.len()).ok())
        .collect();
    let note = b"written while the store is slow";
    let local = std::fs::write(mnt.join("local/note"), note).and_then(|_| std::fs::read(mnt.join("local/note")));
    let answered_in = t.elapsed();
    let waiting = FILES - finished.load(Ordering::SeqCst);

    // The store answers again; every read completes (before any assertion,
    // so a failure does not leave threads stuck in the mount).
    store.set_delay(None);
    let results: Vec<_> = readers.into_iter().map(|r| r.join().expect("a reader")).collect();
    session.umount_and_join().expect("unmount");
    fs.shutdown().expect("the last commit");

    assert_eq!(names.expect("a listing"), FILES + 1);
    assert!(sizes.iter().all(|&s| s == Some(2 << 20)), "sizes: {sizes:?}");
    assert_eq!(local.expect("a file on this device"), note);
    assert_eq!(waiting, FILES, "the reads were still waiting for the store");
    assert!(
        answered_in < STORE_DELAY / 2,
        "local requests waited {answered_in:?} behind reads waiting for the store"
    );
    for (i, got) in results {
        assert_eq!(
            got.expect("the read succeeds once the store answers"),
            content(i),
            "f{i}"
        );
    }
}

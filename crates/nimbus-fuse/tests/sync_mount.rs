//! Another device's change through a real mount with the kernel's
//! write-back cache (docs/SYNC.md §7 step 20, §4.5): a file this mount had
//! read and cached grows and changes mode on the other device, and reads
//! whole, with the new mode, once the sync loop takes the change in; a
//! handle held open keeps the bytes it opened; a new file shows in the
//! folder's listing and a deleted one leaves it. The attribute time to
//! live is an hour, so only the drive's invalidations can make the kernel
//! see any of it.
//!
//! Needs `/dev/fuse` and root (to mount); without them it prints why and
//! passes.

#![cfg(target_os = "linux")]

mod common;

use common::{create_vault, load_with, runtime, skip_reason};
use nimbus_fs::{Ctx, Fs, SetAttr, Slot, ROOT};
use nimbus_fuse::{mount_slot, MountOptions};
use nimbus_vault::DeviceId;
use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Writes `data` at `off` of `name` in the root of `fs` (made if missing).
fn write_at(fs: &Fs, name: &str, off: u64, data: &[u8]) {
    let fh = match fs.lookup(ROOT, name.as_bytes()) {
        Ok(a) => fs.open(a.ino, false).expect("open in the core"),
        Err(_) => fs.create(Ctx::ROOT, ROOT, name.as_bytes(), 0o644).expect("create").1,
    };
    fs.write(fh, off, data).expect("write in the core");
    fs.release(fh).expect("release");
}

/// Waits up to 30 s for `cond`, saying `what` if it never holds.
fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(Instant::now() < end, "{what}: not seen within 30 s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p).map(|m| m.mode() & 0o7777).unwrap_or(0)
}

#[test]
fn another_devices_change_reads_whole_through_a_writeback_cached_mount() {
    if let Some(why) = skip_reason() {
        eprintln!("skipped: {why}");
        return;
    }
    let rt = runtime();
    let tmp = tempfile::tempdir().expect("a temporary folder");
    let store = tmp.path().join("store");
    let mnt = tmp.path().join("mnt");
    fs::create_dir(&store).expect("mkdir store");
    fs::create_dir(&mnt).expect("mkdir mnt");
    create_vault(&rt, &store);
    let quick = |o: &mut nimbus_fs::FsOptions| o.poll = Some(Duration::from_millis(500));
    let other: Arc<Fs> = load_with(&rt, &store, &tmp.path().join("other"), DeviceId::random(), quick);
    write_at(&other, "report.txt", 0, b"the first version");
    write_at(&other, "old.txt", 0, b"to be deleted");
    other.sync_now().expect("the other device commits");

    let here = load_with(&rt, &store, &tmp.path().join("here"), DeviceId::random(), quick);
    let opts = MountOptions {
        attr_ttl: Duration::from_secs(3600),
        writeback_cache: true,
        ..MountOptions::default()
    };
    let session = mount_slot(Slot::new(Some(here.clone()), Ctx::ROOT), &mnt, &opts).expect("mount");
    let report = mnt.join("report.txt");
    assert_eq!(fs::read(&report).expect("read through the mount"), b"the first version");
    assert_eq!(mode(&report), 0o644);
    assert!(mnt.join("old.txt").exists());
    // Held open: the kernel keeps the inode, its size and its pages.
    let mut held = fs::File::open(&report).expect("open through the mount");

    let grown = b"the first version, and a second paragraph the mount never saw";
    write_at(&other, "report.txt", 0, grown);
    let ino = other.lookup(ROOT, b"report.txt").expect("lookup").ino;
    let chmod = SetAttr {
        mode: Some(0o600),
        ..SetAttr::default()
    };
    other.setattr(ino, &chmod).expect("chmod on the other device");
    write_at(&other, "new.txt", 0, b"new on the other device");
    other.unlink(ROOT, b"old.txt").expect("unlink on the other device");
    other.sync_now().expect("the other device commits again");

    wait_for("the grown file read whole through the mount", || {
        fs::read(&report).ok().as_deref() == Some(&grown[..])
    });
    assert_eq!(mode(&report), 0o600, "the new mode");
    assert_eq!(fs::metadata(&report).map(|m| m.len()).ok(), Some(grown.len() as u64));
    let mut names: Vec<String> = fs::read_dir(&mnt)
        .expect("list the mount")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != ".snapshots")
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["new.txt", "report.txt"],
        "the listing shows the new file and not the deleted one"
    );
    assert_eq!(
        fs::read(mnt.join("new.txt")).expect("read the new file"),
        b"new on the other device"
    );
    // The handle opened before keeps the version it opened, whole.
    let mut old = Vec::new();
    held.read_to_end(&mut old).expect("read the held handle");
    assert_eq!(old, b"the first version");
    drop(held);

    session.umount_and_join().expect("unmount");
    here.shutdown().expect("shutdown here");
    other.shutdown().expect("shutdown the other device");
}

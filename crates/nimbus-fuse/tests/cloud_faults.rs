//! Real programs on a drive whose store is a real server on a bad network:
//! one request in five fails, and then the store is gone for 30 seconds
//! while the programs go on writing. Afterwards a new device (empty local
//! state, a clean connection) must find every file, identical.
//!
//! The store is the one named in `NIMBUS_TEST_FAULT_STORE` (an address such
//! as `s3://bucket/?endpoint=http://127.0.0.1:3900&region=garage`, with
//! credentials as for the CLI's scripts); `tests/cloud/run.sh` starts Garage
//! and sets it. Without it, or without FUSE and root, this says why and
//! passes. The faults come from `FaultyBackend` between the drive and the
//! real store, under the same retrying the CLI uses, so the drive sees what
//! it would see on a flaky network.

#![cfg(target_os = "linux")]

mod common;

use common::{runtime, skip_reason};
use nimbus_backend::{
    open_store_with, DynBackend, FaultConfig, FaultyBackend, RetryPolicy, RetryingBackend, StoreAccess,
    StoreCredentials, StoreUrl,
};
use nimbus_fs::{Fs, FsOptions};
use nimbus_fuse::{mount, MountOptions};
use nimbus_vault::{DeviceId, KdfParams, Vault, VaultParams};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

const PASSWORD: &[u8] = b"cloud faults";

fn sh(script: &str) {
    let out = Command::new("bash")
        .arg("-euo")
        .arg("pipefail")
        .arg("-c")
        // fsync of a path: a file's bytes are safe on this device, the
        // drive's root commits everything to the store.
        .arg(format!(
            "fsync() {{ python3 -c 'import os,sys; fd=os.open(sys.argv[1], os.O_RDONLY); os.fsync(fd)' \"$1\"; }}\n{script}"
        ))
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "`{script}` failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn store_address() -> Option<String> {
    std::env::var("NIMBUS_TEST_FAULT_STORE").ok().filter(|s| !s.is_empty())
}

/// `address` with `folder` added to its path (before any `?settings`).
fn under(address: &str, folder: &str) -> String {
    let (base, query) = address.split_once('?').unwrap_or((address, ""));
    let sep = if base.ends_with('/') { "" } else { "/" };
    match query {
        "" => format!("{base}{sep}{folder}"),
        q => format!("{base}{sep}{folder}?{q}"),
    }
}

fn open_real(address: &str) -> DynBackend {
    let url = StoreUrl::parse(address).expect("the store address");
    let access = StoreAccess {
        credentials: StoreCredentials {
            s3: None,
            password: std::env::var("NIMBUS_STORE_PASSWORD").ok().map(zeroize::Zeroizing::new),
        },
        limits: None,
    };
    open_store_with(&url, &access).expect("the store opens")
}

fn load(rt: &tokio::runtime::Runtime, store: DynBackend, state: &Path, device: DeviceId) -> Arc<Fs> {
    let vault = rt.block_on(Vault::open(store, PASSWORD)).expect("the vault opens");
    let mut opts = FsOptions::new(state.to_path_buf(), device);
    opts.commit_delay = Duration::from_secs(1);
    Fs::load(vault, rt.handle().clone(), opts).expect("the drive loads")
}

#[test]
fn programs_survive_failing_requests_and_an_outage() {
    if let Some(why) = skip_reason() {
        eprintln!("skipped: {why}");
        return;
    }
    let Some(address) = store_address() else {
        eprintln!("skipped: NIMBUS_TEST_FAULT_STORE is not set (tests/cloud/run.sh sets it)");
        return;
    };
    let address = under(&address, &format!("faults-{:016x}", rand::random::<u64>()));
    let rt = runtime();
    let tmp = tempfile::tempdir_in("/var/tmp").expect("a temporary folder");
    let real = open_real(&address);
    let kdf = KdfParams::minimum();
    rt.block_on(Vault::create(real.clone(), PASSWORD, VaultParams::default(), kdf))
        .expect("a new vault");

    // One request in five fails before it reaches the server; the retries
    // above are the CLI's own policy with room for a long unlucky run.
    let faulty = Arc::new(FaultyBackend::new(
        real.clone(),
        FaultConfig {
            error_rate: 0.2,
            seed: 20261201,
            ..FaultConfig::default()
        },
    ));
    let policy = RetryPolicy {
        attempts: 12,
        first_delay: Duration::from_millis(50),
        max_delay: Duration::from_secs(1),
    };
    let flaky: DynBackend = Arc::new(RetryingBackend::new(faulty.clone(), policy));

    let src = tmp.path().join("src");
    let repo_root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    sh(&format!(
        "mkdir -p {src}/tree && cp -r {root}/crates {src}/tree/ && \
         git init -q {src}/repo && cd {src}/repo && git config user.email t@example.invalid && \
         git config user.name t && cp -r {root}/crates/nimbus-vault/src code && git add -A && \
         git commit -qm first && for i in $(seq 1 10); do echo $i >> code/lib.rs; git commit -qam c$i; done",
        src = src.display(),
        root = repo_root.display()
    ));

    let device = DeviceId::random();
    let fs = load(&rt, flaky, &tmp.path().join("state"), device);
    let mnt = tmp.path().join("mnt");
    std::fs::create_dir(&mnt).expect("the mount point");
    let session = mount(fs.clone(), &mnt, &MountOptions::default()).expect("mount");
    let m = mnt.display();
    let s = src.display();

    // Phase 1: 20% of requests fail.
    sh(&format!(
        "tar -C {s}/tree -cf - . | tar -C {m} -xf - && git clone -q {s}/repo {m}/repo && fsync {m}"
    ));
    sh(&format!(
        "for i in $(seq 1 100); do echo \"BEGIN; CREATE TABLE IF NOT EXISTS t (i INTEGER, b BLOB); \
         INSERT INTO t VALUES ($i, randomblob(2000)); COMMIT;\"; done | sqlite3 {m}/db.sqlite"
    ));
    let deadline = Instant::now() + Duration::from_secs(300);
    while fs.pending().expect("pending").dirty {
        assert!(Instant::now() < deadline, "the commit never went through the faults");
        std::thread::sleep(Duration::from_millis(200));
    }
    let injected = faulty.stats().injected_errors;
    assert!(injected > 10, "only {injected} faults were injected");

    // Phase 2: the store is gone for 30 s; programs keep writing and every
    // fsync returns (the bytes are in encrypted staging on this device).
    faulty.set_offline(true);
    let offline_since = Instant::now();
    sh(&format!(
        "mkdir {m}/offline && for i in $(seq 1 40); do head -c $((i * 5000)) /dev/urandom > {m}/offline/f$i; \
         done && cp {m}/offline/f40 {s}/f40 && fsync {m}/offline/f40 && \
         echo 'INSERT INTO t VALUES (1000, zeroblob(10));' | sqlite3 {m}/db.sqlite && \
         sqlite3 {m}/db.sqlite 'PRAGMA integrity_check' | grep -qx ok && diff -r {s}/tree/crates {m}/crates"
    ));
    // A commit meanwhile fails and says so, and the changes stay pending.
    let err = fs.sync_now().expect_err("no commit while the store is gone");
    assert!(err.to_string().contains("unreachable"), "{err}");
    assert!(fs.pending().expect("pending").dirty);
    let left = Duration::from_secs(30).saturating_sub(offline_since.elapsed());
    std::thread::sleep(left);
    faulty.set_offline(false);

    // Back: the drive uploads by itself (no sync asked for).
    let deadline = Instant::now() + Duration::from_secs(300);
    while fs.pending().expect("pending").dirty {
        assert!(Instant::now() < deadline, "the upload did not resume after the outage");
        std::thread::sleep(Duration::from_millis(200));
    }
    session.umount_and_join().expect("unmount");
    fs.shutdown().expect("the last commit");
    drop(fs);

    // A new device over a clean connection: everything is there.
    let fs = load(&rt, real, &tmp.path().join("state2"), DeviceId::random());
    let session = mount(fs.clone(), &mnt, &MountOptions::default()).expect("mount again");
    let check = std::panic::catch_unwind(|| {
        sh(&format!(
            "diff -r {s}/tree/crates {m}/crates && cmp {s}/f40 {m}/offline/f40 && \
             test $(ls {m}/offline | wc -l) = 40 && cd {m}/repo && git fsck --full --strict && \
             test $(git rev-list --count HEAD) = 11 && \
             test \"$(sqlite3 {m}/db.sqlite 'PRAGMA integrity_check')\" = ok && \
             test \"$(sqlite3 {m}/db.sqlite 'SELECT count(*) FROM t')\" = 101"
        ))
    });
    session.umount_and_join().expect("unmount");
    fs.shutdown().expect("shutdown");
    if let Err(e) = check {
        std::panic::resume_unwind(e);
    }
    eprintln!("{injected} injected faults and a 30 s outage: everything arrived");
}

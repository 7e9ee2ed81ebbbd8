//! Commits when local state goes wrong: a damaged staging block, a file
//! written or deleted while it is read for upload, and local state made by
//! another version that still holds changes.

#![cfg(unix)]
#![allow(clippy::unwrap_used)]

use nimbus_backend::{DynBackend, MemoryBackend};
use nimbus_fs::{Ctx, ErrorKind, Fs, FsOptions, Ino, ROOT};
use nimbus_vault::{DeviceId, KdfParams, Vault, VaultParams};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

struct Drive {
    rt: tokio::runtime::Runtime,
    backend: DynBackend,
    state: tempfile::TempDir,
    fs: Option<Arc<Fs>>,
}

impl Drive {
    fn new() -> Drive {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let backend: DynBackend = Arc::new(MemoryBackend::new());
        let kdf = KdfParams::minimum();
        rt.block_on(Vault::create(backend.clone(), b"pw", VaultParams::default(), kdf))
            .unwrap();
        let mut d = Drive {
            rt,
            backend,
            state: tempfile::tempdir().unwrap(),
            fs: None,
        };
        d.fs = Some(d.load().unwrap());
        d
    }

    fn vault(&self) -> Vault {
        self.rt.block_on(Vault::open(self.backend.clone(), b"pw")).unwrap()
    }

    fn state_dir(&self) -> PathBuf {
        self.state.path().join("vault")
    }

    fn load(&self) -> nimbus_fs::Result<Arc<Fs>> {
        let mut opts = FsOptions::new(self.state_dir(), DeviceId::random());
        // Commits only when a test asks.
        opts.commit_delay = std::time::Duration::from_secs(3600);
        Fs::load(self.vault(), self.rt.handle().clone(), opts)
    }

    fn fs(&self) -> &Arc<Fs> {
        self.fs.as_ref().unwrap()
    }

    /// What the vault's newest snapshot holds at `name`, read by a drive
    /// built from it on a new state folder.
    fn committed(&self, name: &str) -> Option<Vec<u8>> {
        let state = tempfile::tempdir().unwrap();
        let opts = FsOptions::new(state.path().join("vault"), DeviceId::random());
        let fs = Fs::load(self.vault(), self.rt.handle().clone(), opts).unwrap();
        let out = fs.lookup(ROOT, name.as_bytes()).ok().map(|a| read(&fs, a.ino));
        fs.shutdown_without_commit();
        out
    }

    fn stop(&mut self) {
        let fs = self.fs.take().unwrap();
        fs.shutdown_without_commit();
    }
}

fn write(fs: &Fs, name: &str, data: &[u8]) -> Ino {
    let (ino, fh) = match fs.lookup(ROOT, name.as_bytes()) {
        Ok(a) => (a.ino, fs.open(a.ino, true).unwrap()),
        Err(_) => {
            let (a, fh) = fs.create(Ctx::ROOT, ROOT, name.as_bytes(), 0o644).unwrap();
            (a.ino, fh)
        }
    };
    for (i, piece) in data.chunks(128 << 10).enumerate() {
        fs.write(fh, (i * (128 << 10)) as u64, piece).unwrap();
    }
    fs.release(fh).unwrap();
    ino
}

fn read(fs: &Fs, ino: Ino) -> Vec<u8> {
    let fh = fs.open(ino, false).unwrap();
    let mut out = Vec::new();
    loop {
        let got = fs.read(fh, out.len() as u64, 128 << 10).unwrap();
        if got.is_empty() {
            break;
        }
        out.extend_from_slice(&got);
    }
    fs.release(fh).unwrap();
    out
}

fn staging_files(state: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(state.join("staging"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    v.sort();
    v
}

/// Bytes that differ everywhere (so chunks do not deduplicate).
fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn a_damaged_staging_block_sets_one_file_aside_and_the_rest_commits() {
    let d = Drive::new();
    let fs = d.fs().clone();
    write(&fs, "damaged.txt", b"the version in the vault");
    fs.sync_now().unwrap();
    assert!(staging_files(&d.state_dir()).is_empty());

    let damaged = write(&fs, "damaged.txt", &pattern(1, 10_000));
    let staged = staging_files(&d.state_dir());
    assert_eq!(staged.len(), 1);
    write(&fs, "fine.txt", b"a change that must reach the vault");
    // A torn or damaged slot: one byte of the first block's ciphertext.
    let mut raw = std::fs::read(&staged[0]).unwrap();
    raw[100] ^= 0x40;
    std::fs::write(&staged[0], &raw).unwrap();

    fs.sync_now().unwrap();
    assert_eq!(
        d.committed("fine.txt").as_deref(),
        Some(&b"a change that must reach the vault"[..])
    );
    assert_eq!(
        d.committed("damaged.txt").as_deref(),
        Some(&b"the version in the vault"[..]),
        "the vault keeps the damaged file's last good version"
    );
    let p = fs.pending().unwrap();
    assert_eq!(
        p.set_aside,
        vec!["/damaged.txt".to_string()],
        "the person is told which file"
    );
    assert!(p.files >= 1, "the damaged file is still waiting");
    // Kept here as it is: the staging file is still there.
    assert_eq!(staging_files(&d.state_dir()).len(), 1);

    // The next commit still sets it aside, and takes other changes.
    write(&fs, "more.txt", b"more");
    fs.sync_now().unwrap();
    assert_eq!(d.committed("more.txt").as_deref(), Some(&b"more"[..]));
    assert_eq!(fs.pending().unwrap().set_aside.len(), 1);

    // Saved again, it syncs and the notice goes.
    let fh = fs.open(damaged, true).unwrap();
    fs.write(fh, 0, b"saved again").unwrap();
    fs.release(fh).unwrap();
    fs.sync_now().unwrap();
    assert!(fs.pending().unwrap().set_aside.is_empty());
    assert_eq!(d.committed("damaged.txt").as_deref(), Some(&b"saved again"[..]));
    fs.shutdown().unwrap();
}

/// Runs `f` once, between two pieces of `name` read for upload by `fs`.
fn between_pieces(fs: &Arc<Fs>, ino: Ino, f: impl FnOnce(&Fs) + Send + 'static) -> Arc<AtomicBool> {
    let target = Arc::as_ptr(fs) as usize;
    let ran = Arc::new(AtomicBool::new(false));
    let ran2 = ran.clone();
    let mut f = Some(f);
    nimbus_fs::set_between_pieces_hook(Some(Box::new(move |fs: &Fs, i: Ino| {
        if std::ptr::eq(fs, target as *const Fs) && i == ino {
            if let Some(f) = f.take() {
                f(fs);
                ran2.store(true, Ordering::SeqCst);
            }
        }
    })));
    ran
}

#[test]
fn a_file_written_while_it_is_read_for_upload_is_not_committed_torn() {
    let d = Drive::new();
    let fs = d.fs().clone();
    let len = 12 << 20;
    let (v1, v2, v3) = (pattern(1, len), pattern(2, len), pattern(3, len));
    let ino = write(&fs, "big", &v1);
    fs.sync_now().unwrap();
    write(&fs, "big", &v2);
    write(&fs, "other", b"other");
    // A writer replaces the whole file after the commit read its first piece.
    let v3c = v3.clone();
    let ran = between_pieces(&fs, ino, move |fs| {
        let fh = fs.open(ino, false).unwrap();
        for (i, piece) in v3c.chunks(1 << 20).enumerate() {
            fs.write(fh, (i << 20) as u64, piece).unwrap();
        }
        fs.release(fh).unwrap();
    });
    fs.sync_now().unwrap();
    nimbus_fs::set_between_pieces_hook(None);
    assert!(ran.load(Ordering::SeqCst), "the writer ran in the middle of the upload");
    let snap = d.committed("big").unwrap();
    assert!(
        snap == v1,
        "the snapshot holds the file's last whole version, not a mix"
    );
    assert_eq!(d.committed("other").as_deref(), Some(&b"other"[..]));
    assert!(fs.pending().unwrap().files >= 1, "the file waits for the next commit");
    fs.sync_now().unwrap();
    assert!(d.committed("big").unwrap() == v3);
    fs.shutdown().unwrap();
}

#[test]
fn a_file_deleted_while_it_is_read_for_upload_is_committed_without_it() {
    let d = Drive::new();
    let fs = d.fs().clone();
    let ino = write(&fs, "gone", &pattern(4, 12 << 20));
    write(&fs, "kept", b"kept");
    let ran = between_pieces(&fs, ino, |fs| fs.unlink(ROOT, b"gone").unwrap());
    fs.sync_now().unwrap();
    nimbus_fs::set_between_pieces_hook(None);
    assert!(ran.load(Ordering::SeqCst));
    // The root's fsync (what syncfs and `nimbus sync` end in) succeeds.
    fs.fsyncdir(ROOT).unwrap();
    assert_eq!(d.committed("gone"), None);
    assert_eq!(d.committed("kept").as_deref(), Some(&b"kept"[..]));
    assert_eq!(fs.pending().unwrap().files, 0);
    fs.shutdown().unwrap();
}

#[test]
fn times_flushed_for_a_deleted_file_are_accepted() {
    // What a kernel's write-back cache does after `rm` of a file it wrote:
    // its times arrive after the file is gone. An error here becomes a
    // write-back error of the whole drive, reported by the next `sync -f`.
    let d = Drive::new();
    let fs = d.fs().clone();
    let ino = write(&fs, "deleted", &pattern(5, 100_000));
    fs.unlink(ROOT, b"deleted").unwrap();
    let t = nimbus_vault::Timestamp::now();
    let set = nimbus_fs::SetAttr {
        mtime: Some(nimbus_fs::SetTime::At(t)),
        ctime: Some(t),
        ..Default::default()
    };
    let attr = fs.setattr(ino, &set).unwrap();
    assert_eq!(attr.nlink, 0);
    // Anything else on a file that is gone still fails.
    let chmod = nimbus_fs::SetAttr {
        mode: Some(0o600),
        ..Default::default()
    };
    assert_eq!(fs.setattr(ino, &chmod).unwrap_err().kind(), ErrorKind::NotFound);
    fs.sync_now().unwrap();
    assert_eq!(d.committed("deleted"), None);
    fs.shutdown().unwrap();
}

/// Sets the schema version a database says it has.
fn set_schema(d: &Drive, version: i64) {
    let key = d.vault().local_state_key("metadata-database");
    let c = rusqlite::Connection::open(d.state_dir().join("metadata.db")).unwrap();
    c.pragma_update(None, "key", format!("x'{}'", hex_key(&key[..])))
        .unwrap();
    c.execute(
        "UPDATE meta SET value = ?1 WHERE key = 'schema'",
        [version.to_le_bytes().to_vec()],
    )
    .unwrap();
}

fn hex_key(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn local_state_of_another_version_with_changes_is_not_dropped() {
    let mut d = Drive::new();
    let fs = d.fs().clone();
    let ino = write(&fs, "uncommitted", b"changes only this device has");
    fs.fsync(ino).unwrap();
    drop(fs);
    d.stop();

    set_schema(&d, 999);
    let err = d.load().err().expect("a rebuild would lose the changes");
    assert_eq!(err.kind(), ErrorKind::NotSupported);
    assert!(err.to_string().contains("not yet uploaded"), "{err}");
    assert_eq!(staging_files(&d.state_dir()).len(), 1, "the changes are still there");

    // With the version that made it, the changes are there and commit.
    set_schema(&d, nimbus_fs::STATE_SCHEMA_VERSION);
    let fs = d.load().unwrap();
    let a = fs.lookup(ROOT, b"uncommitted").unwrap();
    assert_eq!(read(&fs, a.ino), b"changes only this device has");
    fs.sync_now().unwrap();
    fs.shutdown().unwrap();
    drop(fs);
    assert_eq!(
        d.committed("uncommitted").as_deref(),
        Some(&b"changes only this device has"[..])
    );

    // Nothing uncommitted: another version's state is rebuilt from the vault.
    set_schema(&d, 999);
    let fs = d.load().unwrap();
    let a = fs.lookup(ROOT, b"uncommitted").unwrap();
    assert_eq!(read(&fs, a.ino), b"changes only this device has");
    fs.shutdown().unwrap();
}

//! The kernel's caches through a real mount: a change made in the core
//! behind the kernel's back (as the sync engine applies another device's
//! change) stays invisible while the kernel trusts what it cached, and
//! shows once the drive's `KernelCache` invalidates exactly that inode or
//! name. The mount's time to live is an hour, so nothing expires on its
//! own during the test; every "still cached" check is a real one.
//!
//! Needs `/dev/fuse` and root (to mount); without them it prints why and
//! passes.

#![cfg(target_os = "linux")]

mod common;

use common::{create_vault, load, runtime, skip_reason};
use nimbus_fs::{Ctx, Fs, SetAttr, Slot, ROOT};
use nimbus_fuse::{mount_slot, BackgroundSession, MountOptions};
use nimbus_vault::DeviceId;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

struct Mounted {
    _rt: tokio::runtime::Runtime,
    tmp: tempfile::TempDir,
    fs: Arc<Fs>,
    session: Option<BackgroundSession>,
}

impl Mounted {
    fn new(writeback_cache: bool) -> Mounted {
        let rt = runtime();
        let tmp = tempfile::tempdir().expect("a temporary folder");
        let store = tmp.path().join("store");
        fs::create_dir(&store).expect("mkdir store");
        fs::create_dir(tmp.path().join("mnt")).expect("mkdir mnt");
        create_vault(&rt, &store);
        let fs = load(&rt, &store, &tmp.path().join("state"), DeviceId::random());
        let opts = MountOptions {
            attr_ttl: Duration::from_secs(3600),
            writeback_cache,
            ..MountOptions::default()
        };
        let slot = Slot::new(Some(fs.clone()), Ctx::ROOT);
        let session = mount_slot(slot, &tmp.path().join("mnt"), &opts).expect("mount");
        Mounted {
            _rt: rt,
            tmp,
            fs,
            session: Some(session),
        }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.tmp.path().join("mnt").join(p)
    }

    fn ino(&self, name: &str) -> u64 {
        self.fs.lookup(ROOT, name.as_bytes()).expect("core lookup").ino
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if let Some(s) = self.session.take() {
            let _ = s.umount_and_join();
        }
        let _ = self.fs.shutdown();
    }
}

fn size(p: &Path) -> u64 {
    fs::metadata(p).expect("stat through the mount").len()
}

/// A file's size changed in the core: the kernel keeps the old one until
/// the inode is invalidated. Without the write-back cache, in which Linux
/// trusts its own sizes of regular files (docs/SYNC.md §4.5).
#[test]
fn inval_inode_makes_the_kernel_drop_cached_attributes() {
    if let Some(why) = skip_reason() {
        eprintln!("skipped: {why}");
        return;
    }
    let m = Mounted::new(false);
    let a = m.path("a");
    fs::write(&a, b"0123456789").expect("write through the mount");
    // Held open, so the kernel keeps the inode and its attributes.
    let _pin = fs::File::open(&a).expect("open");
    assert_eq!(size(&a), 10);

    let ino = m.ino("a");
    m.fs.truncate(ino, 5000).expect("truncate in the core");
    assert_eq!(
        size(&a),
        10,
        "the kernel asked the core although its attributes were valid"
    );

    let kernel = m.fs.kernel_cache();
    kernel.inval_inode(ino);
    kernel.flush();
    assert_eq!(size(&a), 5000, "the invalidation did not reach the kernel");
}

/// With the write-back cache, a mode change (not cached that way) shows
/// after an invalidation of the attributes alone.
#[test]
fn inval_attr_shows_a_new_mode_through_the_writeback_cache() {
    if let Some(why) = skip_reason() {
        eprintln!("skipped: {why}");
        return;
    }
    let m = Mounted::new(true);
    let a = m.path("a");
    fs::write(&a, b"hello").expect("write through the mount");
    fs::set_permissions(&a, fs::Permissions::from_mode(0o644)).expect("chmod");
    let _pin = fs::File::open(&a).expect("open");
    let mode = |p: &Path| fs::metadata(p).expect("stat").mode() & 0o7777;
    assert_eq!(mode(&a), 0o644);

    let ino = m.ino("a");
    let set = SetAttr {
        mode: Some(0o600),
        ..SetAttr::default()
    };
    m.fs.setattr(ino, &set).expect("chmod in the core");
    assert_eq!(
        mode(&a),
        0o644,
        "the kernel asked the core although its attributes were valid"
    );

    let kernel = m.fs.kernel_cache();
    kernel.inval_attr(ino);
    kernel.flush();
    assert_eq!(mode(&a), 0o600, "the invalidation did not reach the kernel");
    assert_eq!(fs::read(&a).expect("read"), b"hello");
}

/// A name removed in the core stays in the kernel's cache until the entry
/// is invalidated, or its deletion notified.
#[test]
fn inval_entry_and_deleted_make_the_kernel_drop_a_cached_name() {
    if let Some(why) = skip_reason() {
        eprintln!("skipped: {why}");
        return;
    }
    let m = Mounted::new(true);
    let (b, c) = (m.path("b"), m.path("c"));
    fs::write(&b, b"b").expect("write b");
    fs::write(&c, b"c").expect("write c");
    assert!(b.exists() && c.exists());
    let c_ino = m.ino("c");

    m.fs.unlink(ROOT, b"b").expect("unlink b in the core");
    m.fs.unlink(ROOT, b"c").expect("unlink c in the core");
    assert!(b.exists(), "the kernel looked b up again although its entry was valid");
    assert!(c.exists(), "the kernel looked c up again although its entry was valid");

    let kernel = m.fs.kernel_cache();
    kernel.inval_entry(ROOT, b"b");
    kernel.deleted(ROOT, c_ino, b"c");
    kernel.flush();
    assert!(!b.exists(), "b is still there after its entry was invalidated");
    assert!(!c.exists(), "c is still there after its deletion was notified");
    let names: Vec<_> = fs::read_dir(m.tmp.path().join("mnt"))
        .expect("list")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert!(!names.iter().any(|n| n == "b" || n == "c"), "listing: {names:?}");
}

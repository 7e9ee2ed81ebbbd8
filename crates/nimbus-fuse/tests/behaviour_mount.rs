//! The behaviour suite of `nimbus_fs::conformance` through a real FUSE
//! mount: the same checks the bare core passes in `nimbus-fs`, here with
//! `std::fs` calls going through the kernel and this adapter. Once with the
//! kernel's writeback cache and once without.
//!
//! Needs `/dev/fuse` and root (to mount); without them it prints why and
//! passes.

#![cfg(target_os = "linux")]

mod common;

use common::{create_vault, load, runtime, skip_reason};
use nimbus_fs::conformance::{self, Meta, Target, R};
use nimbus_fs::{ErrorKind, Fs};
use nimbus_fuse::{mount, BackgroundSession, MountOptions};
use nimbus_vault::DeviceId;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The errno a call got, as the core's error kind (the inverse of the
/// adapter's table; EIO has three kinds and comes back as `Io`).
fn kind(e: io::Error) -> ErrorKind {
    match e.raw_os_error().unwrap_or(0) {
        libc::ENOENT => ErrorKind::NotFound,
        libc::EEXIST => ErrorKind::Exists,
        libc::ENOTDIR => ErrorKind::NotDir,
        libc::EISDIR => ErrorKind::IsDir,
        libc::ENOTEMPTY => ErrorKind::NotEmpty,
        libc::ENAMETOOLONG => ErrorKind::NameTooLong,
        libc::EINVAL => ErrorKind::InvalidArgument,
        libc::EPERM => ErrorKind::NotPermitted,
        libc::EROFS => ErrorKind::ReadOnly,
        libc::ENODATA => ErrorKind::NoAttribute,
        libc::ERANGE => ErrorKind::Range,
        libc::EFBIG => ErrorKind::TooBig,
        libc::ENOSPC => ErrorKind::NoSpace,
        libc::EOPNOTSUPP => ErrorKind::NotSupported,
        libc::EBADF => ErrorKind::BadHandle,
        _ => ErrorKind::Io,
    }
}

fn k<T>(r: io::Result<T>) -> R<T> {
    r.map_err(kind)
}

/// A drive mounted in a temporary folder.
struct Mounted {
    rt: tokio::runtime::Runtime,
    tmp: tempfile::TempDir,
    device: DeviceId,
    opts: MountOptions,
    /// Bumped by each wipe: the local state lives in `state-<n>`.
    generation: u32,
    fs: Option<Arc<Fs>>,
    session: Option<BackgroundSession>,
}

impl Mounted {
    fn new(writeback_cache: bool) -> Mounted {
        let tmp = tempfile::tempdir().expect("a temporary folder");
        let rt = runtime();
        create_vault(&rt, &tmp.path().join("store"));
        fs::create_dir(tmp.path().join("mnt")).expect("the mount point");
        let mut m = Mounted {
            rt,
            tmp,
            device: DeviceId::random(),
            opts: MountOptions {
                writeback_cache,
                ..MountOptions::default()
            },
            generation: 0,
            fs: None,
            session: None,
        };
        m.mount();
        m
    }

    fn mount(&mut self) {
        let state = self.tmp.path().join(format!("state-{}", self.generation));
        let fs = load(&self.rt, &self.tmp.path().join("store"), &state, self.device);
        self.session = Some(mount(fs.clone(), &self.tmp.path().join("mnt"), &self.opts).expect("mount"));
        self.fs = Some(fs);
    }

    fn unmount(&mut self) {
        if let Some(s) = self.session.take() {
            s.umount_and_join().expect("unmount");
        }
        if let Some(fs) = self.fs.take() {
            fs.shutdown().expect("the last commit");
        }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.tmp.path().join("mnt").join(p)
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        self.unmount();
    }
}

impl Target for Mounted {
    fn name(&self) -> String {
        let cache = if self.opts.writeback_cache {
            "writeback"
        } else {
            "write-through"
        };
        format!("FUSE mount ({cache} cache)")
    }

    fn write(&mut self, path: &str, data: &[u8]) -> R<()> {
        k(fs::write(self.path(path), data))
    }

    fn write_at(&mut self, path: &str, off: u64, data: &[u8]) -> R<()> {
        let f = k(fs::OpenOptions::new().write(true).open(self.path(path)))?;
        k(f.write_all_at(data, off))
    }

    fn read(&mut self, path: &str) -> R<Vec<u8>> {
        k(fs::read(self.path(path)))
    }

    fn truncate(&mut self, path: &str, size: u64) -> R<()> {
        let f = k(fs::OpenOptions::new().write(true).open(self.path(path)))?;
        k(f.set_len(size))
    }

    fn mkdir(&mut self, path: &str) -> R<()> {
        k(fs::create_dir(self.path(path)))
    }

    fn list(&mut self, path: &str) -> R<Vec<Vec<u8>>> {
        let mut names = Vec::new();
        for e in k(fs::read_dir(self.path(path)))? {
            names.push(k(e)?.file_name().as_bytes().to_vec());
        }
        names.sort();
        Ok(names)
    }

    fn rename(&mut self, from: &str, to: &str) -> R<()> {
        k(fs::rename(self.path(from), self.path(to)))
    }

    fn unlink(&mut self, path: &str) -> R<()> {
        k(fs::remove_file(self.path(path)))
    }

    fn rmdir(&mut self, path: &str) -> R<()> {
        k(fs::remove_dir(self.path(path)))
    }

    fn link(&mut self, from: &str, to: &str) -> R<()> {
        k(fs::hard_link(self.path(from), self.path(to)))
    }

    fn symlink(&mut self, target: &str, path: &str) -> R<()> {
        k(std::os::unix::fs::symlink(target, self.path(path)))
    }

    fn readlink(&mut self, path: &str) -> R<Vec<u8>> {
        Ok(k(fs::read_link(self.path(path)))?.as_os_str().as_bytes().to_vec())
    }

    fn stat(&mut self, path: &str) -> R<Meta> {
        let m = k(fs::symlink_metadata(self.path(path)))?;
        Ok(Meta {
            is_dir: m.is_dir(),
            is_symlink: m.file_type().is_symlink(),
            size: m.len(),
            nlink: m.nlink() as u32,
            perm: m.mode() & 0o7777,
            mtime_secs: m.mtime(),
        })
    }

    fn chmod(&mut self, path: &str, mode: u32) -> R<()> {
        k(fs::set_permissions(self.path(path), fs::Permissions::from_mode(mode)))
    }

    fn set_mtime(&mut self, path: &str, secs: i64) -> R<()> {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs.max(0) as u64);
        let f = k(fs::OpenOptions::new().write(true).open(self.path(path)))?;
        k(f.set_modified(t))
    }

    fn set_xattr(&mut self, path: &str, name: &str, value: &[u8]) -> R<()> {
        k(xattr::set(self.path(path), name, value))
    }

    fn get_xattr(&mut self, path: &str, name: &str) -> R<Vec<u8>> {
        k(xattr::get(self.path(path), name))?.ok_or(ErrorKind::NoAttribute)
    }

    fn list_xattr(&mut self, path: &str) -> R<Vec<Vec<u8>>> {
        let mut names: Vec<Vec<u8>> = k(xattr::list(self.path(path)))?
            .map(|n| n.as_bytes().to_vec())
            .collect();
        names.sort();
        Ok(names)
    }

    fn remove_xattr(&mut self, path: &str, name: &str) -> R<()> {
        k(xattr::remove(self.path(path), name))
    }

    fn sync(&mut self) {
        self.fs.as_ref().expect("mounted").sync_now().expect("commit");
    }

    fn remount(&mut self, wipe: bool) {
        self.unmount();
        if wipe {
            self.generation += 1;
        }
        self.mount();
    }
}

fn run(writeback_cache: bool) {
    if let Some(why) = skip_reason() {
        println!("skipping the behaviour suite through FUSE: {why}");
        return;
    }
    let mut m = Mounted::new(writeback_cache);
    conformance::run_all(&mut m, "suite");
    assert!(Path::new(&m.path("suite")).is_dir());
}

#[test]
fn behaviour_through_fuse_writeback_cache() {
    run(true);
}

#[test]
fn behaviour_through_fuse_write_through() {
    run(false);
}

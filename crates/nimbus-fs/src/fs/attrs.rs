//! Attributes: `stat`, `chmod`/`chown`/`utimens` (setattr), symbolic link
//! targets, and the file system's own numbers (`statfs`).

use nimbus_vault::EntryKind;

use super::Fs;
use crate::error::{ErrorKind, FsError, Result};
use crate::meta::inodes;
use crate::types::*;

impl Fs {
    pub(super) fn drive_getattr(&self, ino: Ino) -> Result<Attr> {
        self.local.db.read(|c| Ok(inodes::get(c, ino)?.attr()))
    }

    pub(super) fn drive_readlink(&self, ino: Ino) -> Result<Vec<u8>> {
        let row = self.local.db.read(|c| inodes::get(c, ino))?;
        if row.kind != EntryKind::Symlink {
            return Err(FsError::new(ErrorKind::InvalidArgument, "not a symbolic link"));
        }
        Ok(row.target)
    }

    pub(super) fn drive_setattr(&self, ino: Ino, set: &SetAttr) -> Result<Attr> {
        if let Some(attr) = self.times_of_gone_file(ino, set)? {
            return Ok(attr);
        }
        if let Some(size) = set.size {
            self.truncate(ino, size)?;
        }
        self.local.db.write(|c| {
            let row = inodes::get(c, ino)?;
            let t = self.now();
            let mut mode = row.mode;
            if let Some(m) = set.mode {
                mode = m & 0o7777;
            }
            if (set.uid.is_some() || set.gid.is_some()) && row.kind != EntryKind::Dir && set.mode.is_none() {
                // Linux clears set-user-id, and set-group-id when it means
                // "group executable", on every change of owner.
                mode &= !0o4000;
                if mode & 0o010 != 0 {
                    mode &= !0o2000;
                }
            }
            let uid = set.uid.unwrap_or(row.uid);
            let gid = set.gid.unwrap_or(row.gid);
            let at = match set.atime {
                Some(SetTime::Now) => t,
                Some(SetTime::At(x)) => x,
                None => row.atime,
            };
            let mt = match set.mtime {
                Some(SetTime::Now) => t,
                Some(SetTime::At(x)) => x,
                None => row.mtime,
            };
            let ct = set.ctime.unwrap_or(t);
            inodes::set_attrs(
                c,
                ino,
                &inodes::Attrs {
                    mode,
                    uid,
                    gid,
                    atime: at,
                    mtime: mt,
                    ctime: ct,
                },
            )?;
            if ino == ROOT {
                self.dirty_dir(c, ROOT)?;
            } else {
                self.dirty_parents(c, ino)?;
            }
            Ok(inodes::get(c, ino)?.attr())
        })
    }

    /// A kernel with a write-back cache flushes a file's times after the
    /// file is gone (deleted and closed, but not yet forgotten by the
    /// kernel). Refusing would be recorded as a write-back error of the
    /// whole drive, and the next `syncfs` (`sync -f`) would fail with "No
    /// such file or directory": times of a file that is gone are accepted
    /// and dropped.
    fn times_of_gone_file(&self, ino: Ino, set: &SetAttr) -> Result<Option<Attr>> {
        let times_only = set.mode.is_none() && set.uid.is_none() && set.gid.is_none() && set.size.is_none();
        if !times_only || self.local.db.read(|c| inodes::get_opt(c, ino))?.is_some() {
            return Ok(None);
        }
        let t = self.now();
        let time = |s: Option<SetTime>| match s {
            Some(SetTime::At(x)) => x,
            _ => t,
        };
        Ok(Some(Attr {
            ino,
            kind: EntryKind::File,
            size: 0,
            blocks: 0,
            perm: 0,
            nlink: 0,
            uid: 0,
            gid: 0,
            rdev: 0,
            atime: time(set.atime),
            mtime: time(set.mtime),
            ctime: set.ctime.unwrap_or(t),
        }))
    }

    pub fn statfs(&self) -> Result<StatFs> {
        let (files, bytes) = self.local.db.read(inodes::totals)?;
        // The store has no fixed size; report the local disk's free space
        // (staging lands there) on top of what the drive holds.
        let (total, free) = disk_space(&self.local.state_dir);
        let bsize = 4096u64;
        let used = bytes.div_ceil(bsize);
        Ok(StatFs {
            blocks: used + total / bsize,
            bfree: free / bsize,
            bavail: free / bsize,
            files: files + 1_000_000_000,
            ffree: 1_000_000_000,
            bsize: bsize as u32,
            namelen: nimbus_vault::tree::MAX_NAME as u32,
        })
    }
}

/// Total and free bytes of the file system holding `path`.
fn disk_space(path: &std::path::Path) -> (u64, u64) {
    #[cfg(unix)]
    {
        if let Ok(s) = rustix::fs::statvfs(path) {
            return (s.f_blocks * s.f_frsize, s.f_bavail * s.f_frsize);
        }
    }
    let _ = path;
    (1 << 40, 1 << 40)
}

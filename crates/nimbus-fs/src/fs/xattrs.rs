//! Extended attributes a person sets (`user.*` and the like). Nimbus's own
//! control attributes are answered by `control.rs` first.

use super::Fs;
use crate::error::{ErrorKind, FsError, Result};
use crate::meta::{inodes, xattrs};
use crate::types::*;

impl Fs {
    pub(super) fn drive_setxattr(&self, ino: Ino, name: &[u8], value: &[u8], mode: XattrMode) -> Result<()> {
        if let Some(done) = self.control_set(ino, name, value) {
            return done;
        }
        if name.is_empty() || name.len() > 255 {
            return Err(FsError::new(
                ErrorKind::Range,
                "an attribute name is 1 to 255 bytes long",
            ));
        }
        if value.len() > 65536 {
            return Err(FsError::new(ErrorKind::TooBig, "an attribute value is at most 64 KiB"));
        }
        self.local.db.write(|c| {
            inodes::get(c, ino)?;
            let exists = xattrs::exists(c, ino, name)?;
            match (mode, exists) {
                (XattrMode::Create, true) => {
                    return Err(FsError::new(ErrorKind::Exists, "the attribute exists"));
                }
                (XattrMode::Replace, false) => {
                    return Err(FsError::new(ErrorKind::NoAttribute, "no such attribute"));
                }
                _ => {}
            }
            xattrs::set(c, ino, name, value)?;
            inodes::set_times(c, ino, None, Some(self.now()))?;
            if ino == ROOT {
                self.dirty_dir(c, ROOT)
            } else {
                self.dirty_parents(c, ino)
            }
        })
    }

    pub(super) fn drive_getxattr(&self, ino: Ino, name: &[u8]) -> Result<Vec<u8>> {
        if let Some(value) = self.control_get(ino, name) {
            return value;
        }
        self.local.db.read(|c| {
            inodes::get(c, ino)?;
            xattrs::get(c, ino, name)?.ok_or_else(|| FsError::new(ErrorKind::NoAttribute, "no such attribute"))
        })
    }

    pub(super) fn drive_listxattr(&self, ino: Ino) -> Result<Vec<Vec<u8>>> {
        self.local.db.read(|c| {
            inodes::get(c, ino)?;
            xattrs::names(c, ino)
        })
    }

    pub(super) fn drive_removexattr(&self, ino: Ino, name: &[u8]) -> Result<()> {
        if let Some(done) = self.control_remove(ino, name) {
            return done;
        }
        self.local.db.write(|c| {
            inodes::get(c, ino)?;
            if !xattrs::remove(c, ino, name)? {
                return Err(FsError::new(ErrorKind::NoAttribute, "no such attribute"));
            }
            inodes::set_times(c, ino, None, Some(self.now()))?;
            if ino == ROOT {
                self.dirty_dir(c, ROOT)
            } else {
                self.dirty_parents(c, ino)
            }
        })
    }
}

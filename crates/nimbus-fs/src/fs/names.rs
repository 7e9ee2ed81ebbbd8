//! The names of the drive: lookup, making and removing files, folders and
//! links, renaming, listing a folder, and resolving a path.

use nimbus_vault::{EntryKind, FileId, Timestamp};

use super::Fs;
use crate::error::{not_dir, ErrorKind, FsError, Result};
use crate::meta::inodes::{self, Row};
use crate::meta::{dentries, Conn};
use crate::types::*;

impl Fs {
    pub(super) fn drive_lookup(&self, parent: Ino, name: &[u8]) -> Result<Attr> {
        if name.len() > nimbus_vault::tree::MAX_NAME {
            return Err(FsError::new(ErrorKind::NameTooLong, "a name is at most 255 bytes long"));
        }
        self.local.db.read(|c| {
            let p = inodes::get(c, parent)?;
            if p.kind != EntryKind::Dir {
                return Err(not_dir());
            }
            if name == b"." {
                return Ok(p.attr());
            }
            if name == b".." {
                return Ok(inodes::get(c, if parent == ROOT { ROOT } else { p.parent })?.attr());
            }
            let ino = dentries::lookup(c, parent, name)?.ok_or_else(FsError::not_found)?;
            Ok(inodes::get(c, ino)?.attr())
        })
    }

    fn check_parent(&self, c: &Conn, parent: Ino, name: &[u8]) -> Result<Row> {
        inodes::check_name(name)?;
        let p = inodes::get(c, parent)?;
        if p.kind != EntryKind::Dir {
            return Err(not_dir());
        }
        if dentries::lookup(c, parent, name)?.is_some() {
            return Err(FsError::new(
                ErrorKind::Exists,
                "a file or folder with this name exists",
            ));
        }
        Ok(p)
    }

    #[allow(clippy::too_many_arguments)]
    fn new_node(
        &self,
        ctx: Ctx,
        parent: Ino,
        name: &[u8],
        kind: EntryKind,
        mode: u32,
        rdev: u64,
        target: Option<&[u8]>,
    ) -> Result<Attr> {
        self.local.db.write(|c| {
            let p = self.check_parent(c, parent, name)?;
            let mut mode = mode & 0o7777;
            // BSD group semantics inside a set-group-id folder.
            let gid = if p.mode & 0o2000 != 0 {
                if kind == EntryKind::Dir {
                    mode |= 0o2000;
                }
                p.gid
            } else {
                ctx.gid
            };
            let t = self.now();
            let nlink = if kind == EntryKind::Dir { 2 } else { 1 };
            let ino = inodes::insert(
                c,
                kind,
                mode,
                ctx.uid,
                gid,
                rdev,
                nlink,
                t,
                parent,
                &FileId::random(),
                target,
                self.local.cur_epoch(),
            )?;
            dentries::add(c, parent, name, ino)?;
            if kind == EntryKind::Dir {
                inodes::add_nlink(c, parent, 1)?;
            }
            inodes::set_times(c, parent, Some(t), Some(t))?;
            self.dirty_dir(c, parent)?;
            Ok(inodes::get(c, ino)?.attr())
        })
    }

    pub(super) fn drive_mknod(
        &self,
        ctx: Ctx,
        parent: Ino,
        name: &[u8],
        kind: EntryKind,
        mode: u32,
        rdev: u64,
    ) -> Result<Attr> {
        if kind == EntryKind::Dir || kind == EntryKind::Symlink {
            return Err(FsError::new(
                ErrorKind::InvalidArgument,
                "mknod makes files and special files only",
            ));
        }
        self.new_node(ctx, parent, name, kind, mode, rdev, None)
    }

    pub(super) fn drive_mkdir(&self, ctx: Ctx, parent: Ino, name: &[u8], mode: u32) -> Result<Attr> {
        self.new_node(ctx, parent, name, EntryKind::Dir, mode, 0, None)
    }

    pub(super) fn drive_symlink(&self, ctx: Ctx, parent: Ino, name: &[u8], target: &[u8]) -> Result<Attr> {
        if target.is_empty() || target.len() > 4095 {
            return Err(FsError::new(
                if target.is_empty() {
                    ErrorKind::NotFound
                } else {
                    ErrorKind::NameTooLong
                },
                "a link target is 1 to 4095 bytes long",
            ));
        }
        self.new_node(ctx, parent, name, EntryKind::Symlink, 0o777, 0, Some(target))
    }

    /// Creates and opens a file.
    pub(super) fn drive_create(&self, ctx: Ctx, parent: Ino, name: &[u8], mode: u32) -> Result<(Attr, u64)> {
        let attr = self.new_node(ctx, parent, name, EntryKind::File, mode, 0, None)?;
        let fh = self.open(attr.ino, false)?;
        Ok((attr, fh))
    }

    pub(super) fn drive_unlink(&self, parent: Ino, name: &[u8]) -> Result<()> {
        let gone = self.local.db.write(|c| {
            let p = inodes::get(c, parent)?;
            if p.kind != EntryKind::Dir {
                return Err(not_dir());
            }
            let ino = dentries::lookup(c, parent, name)?.ok_or_else(FsError::not_found)?;
            let row = inodes::get(c, ino)?;
            if row.kind == EntryKind::Dir {
                return Err(FsError::new(ErrorKind::IsDir, "use rmdir to remove a folder"));
            }
            dentries::remove(c, parent, name)?;
            let t = self.now();
            inodes::add_nlink(c, ino, -1)?;
            inodes::set_times(c, ino, None, Some(t))?;
            inodes::set_times(c, parent, Some(t), Some(t))?;
            self.dirty_dir(c, parent)?;
            // Other names of a hard link hold its metadata too.
            self.dirty_parents(c, ino)?;
            Ok((row.nlink <= 1).then_some(ino))
        })?;
        if let Some(ino) = gone {
            self.maybe_delete(ino)?;
        }
        Ok(())
    }

    pub(super) fn drive_rmdir(&self, parent: Ino, name: &[u8]) -> Result<()> {
        if name == b"." {
            return Err(FsError::new(ErrorKind::InvalidArgument, "cannot remove `.`"));
        }
        if name == b".." {
            return Err(FsError::new(ErrorKind::NotEmpty, "cannot remove `..`"));
        }
        self.local.db.write(|c| {
            let p = inodes::get(c, parent)?;
            if p.kind != EntryKind::Dir {
                return Err(not_dir());
            }
            let ino = dentries::lookup(c, parent, name)?.ok_or_else(FsError::not_found)?;
            let row = inodes::get(c, ino)?;
            if row.kind != EntryKind::Dir {
                return Err(not_dir());
            }
            if !dentries::is_empty_dir(c, ino)? {
                return Err(FsError::new(ErrorKind::NotEmpty, "the folder is not empty"));
            }
            dentries::remove(c, parent, name)?;
            inodes::delete(c, ino)?;
            inodes::add_nlink(c, parent, -1)?;
            let t = self.now();
            inodes::set_times(c, parent, Some(t), Some(t))?;
            self.dirty_dir(c, parent)
        })
    }

    pub(super) fn drive_rename(
        &self,
        parent: Ino,
        name: &[u8],
        newparent: Ino,
        newname: &[u8],
        flags: RenameFlags,
    ) -> Result<()> {
        inodes::check_name(newname)?;
        let replaced = self.local.db.write(|c| {
            let sp = inodes::get(c, parent)?;
            let dp = inodes::get(c, newparent)?;
            if sp.kind != EntryKind::Dir || dp.kind != EntryKind::Dir {
                return Err(not_dir());
            }
            let src = dentries::lookup(c, parent, name)?.ok_or_else(FsError::not_found)?;
            let srow = inodes::get(c, src)?;
            let dst = dentries::lookup(c, newparent, newname)?;
            if srow.kind == EntryKind::Dir {
                inodes::check_not_inside(c, src, newparent)?;
            }
            let t = self.now();
            if flags.exchange {
                self.exchange(c, [(parent, name), (newparent, newname)], (src, &srow), dst, t)?;
                return Ok(None);
            }
            let mut replaced = None;
            if let Some(dst) = dst {
                if flags.noreplace {
                    return Err(FsError::new(ErrorKind::Exists, "the target name exists"));
                }
                if dst == src {
                    // Two names of one file: POSIX says do nothing.
                    return Ok(None);
                }
                let drow = inodes::get(c, dst)?;
                match (srow.kind == EntryKind::Dir, drow.kind == EntryKind::Dir) {
                    (true, false) => return Err(not_dir()),
                    (false, true) => return Err(FsError::new(ErrorKind::IsDir, "the target is a folder")),
                    (true, true) => {
                        if !dentries::is_empty_dir(c, dst)? {
                            return Err(FsError::new(ErrorKind::NotEmpty, "the target folder is not empty"));
                        }
                        dentries::remove(c, newparent, newname)?;
                        inodes::delete(c, dst)?;
                        inodes::add_nlink(c, newparent, -1)?;
                    }
                    (false, false) => {
                        dentries::remove(c, newparent, newname)?;
                        inodes::add_nlink(c, dst, -1)?;
                        inodes::set_times(c, dst, None, Some(t))?;
                        self.dirty_parents(c, dst)?;
                        if drow.nlink <= 1 {
                            replaced = Some(dst);
                        }
                    }
                }
            }
            dentries::rename(c, parent, name, newparent, newname)?;
            if srow.kind == EntryKind::Dir && parent != newparent {
                inodes::set_parent(c, src, newparent)?;
                inodes::add_nlink(c, parent, -1)?;
                inodes::add_nlink(c, newparent, 1)?;
            }
            inodes::set_times(c, src, None, Some(t))?;
            inodes::set_times(c, parent, Some(t), Some(t))?;
            inodes::set_times(c, newparent, Some(t), Some(t))?;
            self.dirty_dir(c, parent)?;
            self.dirty_dir(c, newparent)?;
            self.dirty_parents(c, src)?;
            Ok(replaced)
        })?;
        if let Some(ino) = replaced {
            self.maybe_delete(ino)?;
        }
        Ok(())
    }

    /// `RENAME_EXCHANGE`: the two names swap their files.
    fn exchange(
        &self,
        c: &Conn,
        [(parent, name), (newparent, newname)]: [(Ino, &[u8]); 2],
        (src, srow): (Ino, &Row),
        dst: Option<Ino>,
        t: Timestamp,
    ) -> Result<()> {
        let dst = dst.ok_or_else(FsError::not_found)?;
        let drow = inodes::get(c, dst)?;
        if drow.kind == EntryKind::Dir {
            inodes::check_not_inside(c, dst, parent)?;
        }
        dentries::repoint(c, parent, name, dst)?;
        dentries::repoint(c, newparent, newname, src)?;
        if parent != newparent {
            for (ino, row, np) in [(src, srow, newparent), (dst, &drow, parent)] {
                if row.kind == EntryKind::Dir {
                    inodes::set_parent(c, ino, np)?;
                    inodes::add_nlink(c, np, 1)?;
                    inodes::add_nlink(c, if np == newparent { parent } else { newparent }, -1)?;
                }
            }
        }
        inodes::set_times(c, src, None, Some(t))?;
        inodes::set_times(c, dst, None, Some(t))?;
        inodes::set_times(c, parent, Some(t), Some(t))?;
        inodes::set_times(c, newparent, Some(t), Some(t))?;
        self.dirty_dir(c, parent)?;
        self.dirty_dir(c, newparent)
    }

    pub(super) fn drive_link(&self, ino: Ino, newparent: Ino, newname: &[u8]) -> Result<Attr> {
        self.local.db.write(|c| {
            self.check_parent(c, newparent, newname)?;
            let row = inodes::get(c, ino)?;
            if row.kind == EntryKind::Dir {
                return Err(FsError::new(ErrorKind::NotPermitted, "folders cannot have hard links"));
            }
            if row.nlink >= 65_000 {
                return Err(FsError::new(ErrorKind::NotPermitted, "too many links"));
            }
            dentries::add(c, newparent, newname, ino)?;
            inodes::add_nlink(c, ino, 1)?;
            let t = self.now();
            inodes::set_times(c, ino, None, Some(t))?;
            inodes::set_times(c, newparent, Some(t), Some(t))?;
            self.dirty_parents(c, ino)?;
            Ok(inodes::get(c, ino)?.attr())
        })
    }

    /// Entries after `cookie` (0 starts), at most `max`. Includes `.` and
    /// `..`.
    pub(super) fn drive_readdir(&self, ino: Ino, cookie: u64, max: usize) -> Result<Vec<DirEntry>> {
        self.local.db.read(|c| {
            let row = inodes::get(c, ino)?;
            if row.kind != EntryKind::Dir {
                return Err(not_dir());
            }
            let mut out = dot_entries(ino, if ino == ROOT { ROOT } else { row.parent }, cookie);
            out.extend(dentries::list(c, ino, cookie.saturating_sub(2) as i64, max)?);
            Ok(out)
        })
    }

    /// Entries with their attributes (for `readdirplus`).
    pub fn readdir_plus(&self, ino: Ino, cookie: u64, max: usize) -> Result<Vec<(DirEntry, Attr)>> {
        let entries = self.readdir(ino, cookie, max)?;
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            let a = self.getattr(e.ino)?;
            out.push((e, a));
        }
        Ok(out)
    }

    /// The inode at a path relative to the root (for the CLI and tests).
    pub fn resolve(&self, path: &[u8]) -> Result<Ino> {
        let mut ino = ROOT;
        for part in path.split(|&b| b == b'/').filter(|p| !p.is_empty() && *p != b".") {
            ino = self.lookup(ino, part)?.ino;
        }
        Ok(ino)
    }
}

//! Folder trees for a commit: rebuilt for every folder changed since the
//! last commit, reused (by id) for every other.

use nimbus_vault::{BlobKind, Entry, EntryKind, Saver, Tree};
use std::collections::HashMap;

use super::Engine;
use crate::error::{ErrorKind, FsError, Result};
use crate::meta::{dentries, inodes, xattrs};
use crate::types::*;

impl Engine {
    /// The tree of folder `dir`, saved; reuses the stored one if unchanged.
    pub(super) fn build_tree(
        &self,
        dir: Ino,
        committed: u64,
        saver: &Saver,
        uploaded: &HashMap<Ino, (ContentList, u64)>,
        depth: usize,
    ) -> Result<nimbus_vault::BlobId> {
        if depth > 4096 {
            return Err(FsError::new(ErrorKind::InvalidArgument, "folders nested too deep"));
        }
        let (row, children) = self.local.db.read(|c| {
            let row = inodes::get(c, dir)?;
            if row.dirty_epoch <= committed && row.tree_id.is_some() {
                return Ok((row, None));
            }
            let mut kids = Vec::new();
            for (name, ino) in dentries::children(c, dir)? {
                kids.push((name, inodes::get(c, ino)?, xattrs::all(c, ino)?));
            }
            Ok((row, Some(kids)))
        })?;
        let Some(children) = children else {
            return row
                .tree_id
                .ok_or_else(|| FsError::new(ErrorKind::Io, "a folder's stored tree is missing"));
        };
        let mut tree = Tree::default();
        for (name, r, xa) in children {
            let mut e = Entry {
                name,
                kind: r.kind,
                mode: r.mode,
                uid: r.uid,
                gid: r.gid,
                mtime: r.mtime,
                ctime: r.ctime,
                size: 0,
                file_id: r.file_id,
                xattrs: xa,
                target: r.target.clone(),
                rdev: r.rdev,
                content: Vec::new(),
                subtree: None,
            };
            match r.kind {
                EntryKind::Dir => {
                    e.subtree = Some(self.build_tree(r.ino, committed, saver, uploaded, depth + 1)?);
                }
                EntryKind::File => {
                    let (list, len) = match uploaded.get(&r.ino) {
                        Some((l, n)) => (l.clone(), *n),
                        // Not uploaded in this commit (changed after it
                        // began, or set aside): the version of the last
                        // snapshot, whole. Not cut at `base_len`: a file
                        // truncated since is not that version either.
                        None => (r.content.clone(), r.content.len_bytes()),
                    };
                    e.size = len;
                    e.content = list.0.iter().map(|(id, _)| *id).collect();
                }
                _ => {}
            }
            tree.entries.push(e);
        }
        let id = saver.save_blob_blocking(BlobKind::Tree, &tree.encode())?;
        self.local.db.write(|c| inodes::set_tree(c, dir, &id))?;
        Ok(id)
    }
}

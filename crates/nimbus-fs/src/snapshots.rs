//! `.snapshots/`: every commit of the vault as a read-only folder in the
//! drive's root, named by its UTC time (`2026-11-23T14-05-09Z`).
//!
//! Its inodes live only in memory, numbered from [`FIRST`] up, and are made
//! as they are looked up; trees are read from the vault on first use. The
//! folder is not listed in the root (so `du`, `find` and backups of the
//! drive do not walk every snapshot), like ZFS's `.zfs`, but opens by name.
//!
//! Lock order: `inner` is never held while reading from the vault.

use nimbus_vault::{Commit, CommitId, Entry, EntryKind, Tree};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::error::{lock_err, ErrorKind, FsError, Result};
use crate::local::Local;
use crate::meta::inodes;
use crate::types::*;

/// The `.snapshots` folder itself.
pub const SNAP_ROOT: Ino = 1 << 62;
const FIRST: Ino = SNAP_ROOT + 1;
/// How long a listing of commits is reused before asking the store again.
const LIST_TTL: Duration = Duration::from_secs(10);

struct SnapNode {
    entry: Entry,
    parent: Ino,
    tree: Option<Arc<Tree>>,
}

/// The commits by folder name, oldest first.
type Listing = Arc<Vec<(Vec<u8>, CommitId, Commit)>>;

#[derive(Default)]
struct Inner {
    list: Option<(Instant, Listing)>,
    nodes: HashMap<Ino, SnapNode>,
    by_name: HashMap<(Ino, Vec<u8>), Ino>,
    next: Ino,
}

pub struct Snapshots {
    inner: Mutex<Inner>,
}

/// The folder name of a commit.
pub fn snapshot_name(c: &Commit) -> String {
    let (y, m, d, h, mi, s) = c.time.utc_parts();
    format!("{y:04}-{m:02}-{d:02}T{h:02}-{mi:02}-{s:02}Z")
}

impl Snapshots {
    pub fn new() -> Snapshots {
        Snapshots {
            inner: Mutex::new(Inner {
                next: FIRST,
                ..Default::default()
            }),
        }
    }

    pub fn owns(ino: Ino) -> bool {
        ino >= SNAP_ROOT
    }

    /// Whether `name` in folder `parent` is (inside) the snapshot folder.
    pub fn holds(parent: Ino, name: &[u8]) -> bool {
        Self::owns(parent) || (parent == ROOT && name == SNAPSHOTS)
    }

    /// Forgets the commit listing (a new commit was made).
    pub fn invalidate(&self) {
        if let Ok(mut i) = self.inner.lock() {
            i.list = None;
        }
    }

    fn list(&self, local: &Local) -> Result<Listing> {
        if let Some((t, l)) = &self.inner.lock().map_err(|_| lock_err())?.list {
            if t.elapsed() < LIST_TTL {
                return Ok(l.clone());
            }
        }
        // A damaged commit object hides that one snapshot, not the folder.
        let scan = local.rt.block_on(local.vault.scan_commits())?;
        for (_, why) in &scan.damaged {
            tracing::warn!("`.snapshots` leaves out one snapshot: {why}");
        }
        let mut commits = scan.commits;
        commits.sort_by_key(|c| (c.1.time, c.0));
        let mut out: Vec<(Vec<u8>, CommitId, Commit)> = Vec::with_capacity(commits.len());
        for (id, c) in commits {
            let mut name = snapshot_name(&c);
            if out.iter().any(|(n, _, _)| n == name.as_bytes()) {
                name = format!("{name}-{}", &id.to_hex()[..8]);
            }
            out.push((name.into_bytes(), id, c));
        }
        let out = Arc::new(out);
        self.inner.lock().map_err(|_| lock_err())?.list = Some((Instant::now(), out.clone()));
        Ok(out)
    }

    fn root_attr(&self, local: &Local) -> Result<Attr> {
        let root = root_attr_of_drive(local)?;
        Ok(Attr {
            ino: SNAP_ROOT,
            kind: EntryKind::Dir,
            size: 0,
            blocks: 0,
            perm: 0o555,
            nlink: 2,
            ..root
        })
    }

    fn attr(ino: Ino, e: &Entry) -> Attr {
        // Trees keep size 0 for symlinks; `lstat` wants the target's length.
        let size = if e.kind == EntryKind::Symlink {
            e.target.len() as u64
        } else {
            e.size
        };
        Attr {
            ino,
            kind: e.kind,
            size,
            blocks: size.div_ceil(512),
            perm: e.mode & 0o7777,
            nlink: if e.kind == EntryKind::Dir { 2 } else { 1 },
            uid: e.uid,
            gid: e.gid,
            rdev: e.rdev,
            atime: e.mtime,
            mtime: e.mtime,
            ctime: e.ctime,
        }
    }

    fn intern(&self, parent: Ino, entry: Entry) -> Result<Ino> {
        let mut i = self.inner.lock().map_err(|_| lock_err())?;
        let key = (parent, entry.name.clone());
        if let Some(&ino) = i.by_name.get(&key) {
            return Ok(ino);
        }
        let ino = i.next;
        i.next += 1;
        i.nodes.insert(
            ino,
            SnapNode {
                entry,
                parent,
                tree: None,
            },
        );
        i.by_name.insert(key, ino);
        Ok(ino)
    }

    fn entry(&self, ino: Ino) -> Result<(Entry, Ino)> {
        let i = self.inner.lock().map_err(|_| lock_err())?;
        let n = i.nodes.get(&ino).ok_or_else(FsError::not_found)?;
        Ok((n.entry.clone(), n.parent))
    }

    fn tree(&self, local: &Local, ino: Ino) -> Result<Arc<Tree>> {
        let subtree = {
            let i = self.inner.lock().map_err(|_| lock_err())?;
            let n = i.nodes.get(&ino).ok_or_else(FsError::not_found)?;
            if let Some(t) = &n.tree {
                return Ok(t.clone());
            }
            if n.entry.kind != EntryKind::Dir {
                return Err(FsError::new(ErrorKind::NotDir, "not a folder"));
            }
            n.entry
                .subtree
                .ok_or_else(|| FsError::new(ErrorKind::Corrupt, "a folder in the snapshot has no tree"))?
        };
        let tree = Arc::new(local.rt.block_on(local.vault.read_tree(&subtree))?);
        if let Some(n) = self.inner.lock().map_err(|_| lock_err())?.nodes.get_mut(&ino) {
            n.tree = Some(tree.clone());
        }
        Ok(tree)
    }

    pub(crate) fn lookup(&self, local: &Local, parent: Ino, name: &[u8]) -> Result<Attr> {
        if parent == ROOT {
            return self.root_attr(local);
        }
        if name == b"." {
            return self.getattr(local, parent);
        }
        if name == b".." {
            if parent == SNAP_ROOT {
                return root_attr_of_drive(local);
            }
            let (_, p) = self.entry(parent)?;
            return self.getattr(local, p);
        }
        if parent == SNAP_ROOT {
            let list = self.list(local)?;
            let (n, _, c) = list.iter().find(|(n, _, _)| n == name).ok_or_else(FsError::not_found)?;
            let mut e = Entry::new_dir(n.clone(), c.time);
            e.mode = 0o555;
            e.subtree = Some(c.root);
            let ino = self.intern(SNAP_ROOT, e.clone())?;
            return Ok(Self::attr(ino, &e));
        }
        let tree = self.tree(local, parent)?;
        let e = tree.get(name).ok_or_else(FsError::not_found)?.clone();
        let ino = self.intern(parent, e.clone())?;
        Ok(Self::attr(ino, &e))
    }

    pub(crate) fn getattr(&self, local: &Local, ino: Ino) -> Result<Attr> {
        if ino == SNAP_ROOT {
            return self.root_attr(local);
        }
        let (e, _) = self.entry(ino)?;
        Ok(Self::attr(ino, &e))
    }

    pub(crate) fn readlink(&self, ino: Ino) -> Result<Vec<u8>> {
        let (e, _) = self.entry(ino)?;
        if e.kind != EntryKind::Symlink {
            return Err(FsError::new(ErrorKind::InvalidArgument, "not a symbolic link"));
        }
        Ok(e.target)
    }

    pub(crate) fn readdir(&self, local: &Local, ino: Ino, cookie: u64, max: usize) -> Result<Vec<DirEntry>> {
        let parent = if ino == SNAP_ROOT { ROOT } else { self.entry(ino)?.1 };
        let mut out = dot_entries(ino, parent, cookie);
        let skip = cookie.saturating_sub(2) as usize;
        let entries: Vec<Entry> = if ino == SNAP_ROOT {
            self.list(local)?
                .iter()
                .map(|(n, _, c)| {
                    let mut e = Entry::new_dir(n.clone(), c.time);
                    e.mode = 0o555;
                    e.subtree = Some(c.root);
                    e
                })
                .collect()
        } else {
            self.tree(local, ino)?.entries.clone()
        };
        for (k, e) in entries.into_iter().enumerate().skip(skip).take(max) {
            let kind = e.kind;
            let name = e.name.clone();
            let child = self.intern(ino, e)?;
            out.push(DirEntry {
                cookie: k as u64 + 3,
                ino: child,
                kind,
                name,
            });
        }
        Ok(out)
    }

    /// The content of a snapshot file, for reading.
    pub(crate) fn content(&self, local: &Local, ino: Ino) -> Result<(Content, u64)> {
        let (e, _) = self.entry(ino)?;
        if e.kind != EntryKind::File {
            return Err(FsError::new(ErrorKind::IsDir, "not a file"));
        }
        let mut list = Vec::with_capacity(e.content.len());
        for id in &e.content {
            list.push((*id, local.vault.locate_or_err(id)?.raw_len));
        }
        Ok((Content::new(ContentList(list)), e.size))
    }

    pub(crate) fn getxattr(&self, ino: Ino, name: &[u8]) -> Result<Vec<u8>> {
        if ino == SNAP_ROOT {
            return Err(FsError::new(ErrorKind::NoAttribute, "no such attribute"));
        }
        let (e, _) = self.entry(ino)?;
        e.xattrs
            .iter()
            .find(|x| x.name == name)
            .map(|x| x.value.clone())
            .ok_or_else(|| FsError::new(ErrorKind::NoAttribute, "no such attribute"))
    }

    pub(crate) fn listxattr(&self, ino: Ino) -> Result<Vec<Vec<u8>>> {
        if ino == SNAP_ROOT {
            return Ok(Vec::new());
        }
        let (e, _) = self.entry(ino)?;
        Ok(e.xattrs.iter().map(|x| x.name.clone()).collect())
    }
}

/// The attributes of the drive's root (the snapshot folder's parent).
fn root_attr_of_drive(local: &Local) -> Result<Attr> {
    local.db.read(|c| Ok(inodes::get(c, ROOT)?.attr()))
}

impl Default for Snapshots {
    fn default() -> Self {
        Self::new()
    }
}

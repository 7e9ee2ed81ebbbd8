//! Building the working copy from the vault, and putting it back in order
//! after a crash.
//!
//! The local state is a cache of the vault: a new (or deleted) state folder
//! is filled from the newest snapshot. After a crash, the database holds
//! what was committed to it; staging files it does not name are leftovers
//! of changes nobody `fsync`ed, and are removed. Merge orphans written
//! before the stop come back as conflict copies (docs/SYNC.md §4.3).

use futures::StreamExt;
use nimbus_vault::{BlobId, EntryKind, FileId, Timestamp, Tree};
use std::collections::{HashMap, HashSet};

use crate::cache::sealed_file::{SealedFile, BLOCK};
use crate::error::{ErrorKind, FsError, Result};
use crate::local::Local;
use crate::meta::{dentries, dirty, inodes, orphans, state, xattrs, Conn};
use crate::types::*;

/// Fills a new database from the vault's newest snapshot (or an empty root).
pub(crate) fn import_head(local: &Local, owner: Ctx) -> Result<()> {
    let head = local.rt.block_on(local.vault.head())?;
    let time = head.as_ref().map(|(_, c)| c.time).unwrap_or_else(Timestamp::now);
    let tx = local.db.lock()?;
    let root = inodes::insert(
        &tx,
        EntryKind::Dir,
        0o755,
        owner.uid,
        owner.gid,
        0,
        2,
        time,
        ROOT,
        &FileId::random(),
        None,
        0,
    )?;
    if root != ROOT {
        return Err(FsError::new(
            ErrorKind::Corrupt,
            "the new database did not start at inode 1",
        ));
    }
    if let Some((cid, commit)) = head {
        let mut links = HashMap::new();
        let trees = fetch_trees(local, &commit.root)?;
        import_tree(local, &tx, ROOT, &commit.root, &trees, &mut links, 0)?;
        inodes::set_tree(&tx, ROOT, &commit.root)?;
        state::set_head(&tx, &cid)?;
    }
    state::set_epoch(&tx, 1)?;
    state::set_committed_epoch(&tx, 0)?;
    drop(tx);
    local.epoch.store(1, std::sync::atomic::Ordering::Release);
    Ok(())
}

/// Trees fetched at once: one folder level after another, many folders of
/// a level side by side, so a new device waits for a few round trips per
/// level of the tree rather than one per folder.
const TREE_FETCHES: usize = 16;

/// Every tree of the snapshot under `root`, by id.
fn fetch_trees(local: &Local, root: &BlobId) -> Result<HashMap<BlobId, Tree>> {
    let mut trees = HashMap::new();
    let mut seen = HashSet::from([*root]);
    let mut level = vec![*root];
    let mut depth = 0;
    while !level.is_empty() {
        depth += 1;
        if depth > 4096 {
            return Err(FsError::new(ErrorKind::Corrupt, "the snapshot's folders nest too deep"));
        }
        let vault = &local.vault;
        let fetched: Vec<_> = local.rt.block_on(
            futures::stream::iter(level.drain(..))
                .map(|id| async move { (id, vault.read_tree(&id).await) })
                .buffer_unordered(TREE_FETCHES)
                .collect(),
        );
        for (id, tree) in fetched {
            let tree = tree?;
            for e in &tree.entries {
                if let Some(sub) = e.subtree.filter(|_| e.kind == EntryKind::Dir) {
                    if seen.insert(sub) {
                        level.push(sub);
                    }
                }
            }
            trees.insert(id, tree);
        }
    }
    Ok(trees)
}

fn import_tree(
    local: &Local,
    c: &Conn,
    dir: Ino,
    tree_id: &BlobId,
    trees: &HashMap<BlobId, Tree>,
    links: &mut HashMap<FileId, Ino>,
    depth: usize,
) -> Result<()> {
    if depth > 4096 {
        return Err(FsError::new(ErrorKind::Corrupt, "the snapshot's folders nest too deep"));
    }
    let tree = trees
        .get(tree_id)
        .ok_or_else(|| FsError::new(ErrorKind::Corrupt, format!("tree {tree_id} was not fetched")))?;
    let mut subdirs = 0;
    for e in &tree.entries {
        if e.kind == EntryKind::File {
            if let Some(&ino) = links.get(&e.file_id) {
                dentries::add(c, dir, &e.name, ino)?;
                inodes::add_nlink(c, ino, 1)?;
                continue;
            }
        }
        let nlink = if e.kind == EntryKind::Dir { 2 } else { 1 };
        let ino = inodes::insert(
            c,
            e.kind,
            e.mode,
            e.uid,
            e.gid,
            e.rdev,
            nlink,
            e.mtime,
            dir,
            &e.file_id,
            (e.kind == EntryKind::Symlink).then_some(e.target.as_slice()),
            0,
        )?;
        inodes::set_times(c, ino, None, Some(e.ctime))?;
        dentries::add(c, dir, &e.name, ino)?;
        for x in &e.xattrs {
            xattrs::import(c, ino, x)?;
        }
        match e.kind {
            EntryKind::File => {
                let mut list = Vec::with_capacity(e.content.len());
                for id in &e.content {
                    let loc = local.vault.locate_or_err(id)?;
                    list.push((*id, loc.raw_len));
                }
                let list = ContentList(list);
                inodes::set_content(c, ino, &list, list.len_bytes())?;
                links.insert(e.file_id, ino);
            }
            EntryKind::Dir => {
                subdirs += 1;
                let sub = e
                    .subtree
                    .ok_or_else(|| FsError::new(ErrorKind::Corrupt, "a folder entry has no tree"))?;
                inodes::set_tree(c, ino, &sub)?;
                import_tree(local, c, ino, &sub, trees, links, depth + 1)?;
            }
            _ => {}
        }
    }
    if subdirs > 0 {
        inodes::add_nlink(c, dir, subdirs)?;
    }
    Ok(())
}

impl super::Engine {
    /// This device as conflict copies made here name it
    /// (`nimbus_merge::names::device_label`): merge orphans linked back at
    /// their last close (the POSIX face's `release`) and in [`recover`].
    /// Here, in `commit/`, because the engine keeps the device's options.
    pub(crate) fn device_label(&self) -> String {
        nimbus_merge::names::device_label(&self.device_name(), &self.opts.device)
    }
}

/// Puts an existing database back in order after a crash or a clean stop.
/// `device` labels the conflict copies of merge orphans
/// ([`super::Engine::device_label`]).
pub(crate) fn recover(local: &Local, device: &str) -> Result<()> {
    let staged: Vec<(Ino, [u8; 16], u64)> = local.db.write(|c| {
        let epoch = state::epoch(c)?.max(dirty::max_epoch(c)?) + 1;
        state::set_epoch(c, epoch)?;
        local.epoch.store(epoch, std::sync::atomic::Ordering::Release);
        // No handle outlives a stop: each merge orphan has had its last
        // close. A written one comes back as a conflict copy, stamped so
        // the next commit takes it, before the nameless rows go.
        orphans::settle_all(c, device, epoch)?;
        // Files unlinked while open when the drive stopped.
        inodes::delete_unlinked(c)?;
        inodes::staged(c)
    })?;
    local.db.commit(true)?;
    let known: std::collections::HashSet<String> = staged.iter().map(|(_, id, _)| hex::encode(id)).collect();
    if let Ok(rd) = std::fs::read_dir(&local.staging_dir) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !known.contains(&name) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    // Blocks written past the size the database knows were never fsynced:
    // drop them, so growing the file later reads zeros there.
    for (_, id, size) in staged {
        let s = SealedFile::open(&local.staging_dir, id)?;
        s.truncate_blocks(size.div_ceil(BLOCK as u64))?;
        let tail = (size % BLOCK as u64) as usize;
        if tail != 0 {
            let b = size / BLOCK as u64;
            let mut blk = vec![0u8; BLOCK];
            // A damaged last block must not keep the whole drive from
            // mounting: the next commit sets that one file aside.
            let staged = match s.read_blocks(&local.key, b, &mut blk) {
                Ok(p) => p[0],
                Err(e) if e.kind() == ErrorKind::Corrupt => {
                    tracing::warn!("{e}; the file it belongs to will be set aside");
                    false
                }
                Err(e) => return Err(e),
            };
            if staged && blk[tail..].iter().any(|&x| x != 0) {
                blk[tail..].fill(0);
                s.write_blocks(&local.key, b, &blk)?;
            }
        }
        s.sync()?;
    }
    Ok(())
}

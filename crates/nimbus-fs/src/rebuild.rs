//! Building the working copy from the vault, and putting it back in order
//! after a crash.
//!
//! The local state is a cache of the vault: a new (or deleted) state folder
//! is filled from the newest snapshot. After a crash, the database holds
//! what was committed to it; staging files it does not name are leftovers
//! of changes nobody `fsync`ed, and are removed.

use futures::StreamExt;
use nimbus_vault::{BlobId, EntryKind, FileId, Timestamp, Tree};
use std::collections::{HashMap, HashSet};
use std::path::Path;

use crate::db;
use crate::error::{ErrorKind, FsError, Result};
use crate::fs::Fs;
use crate::inode;
use crate::staging::{Staging, BLOCK};
use crate::types::*;

/// Fills a new database from the vault's newest snapshot (or an empty root).
pub(crate) fn import_head(fs: &Fs) -> Result<()> {
    let head = fs.rt.block_on(fs.vault.head())?;
    let owner = fs.opts.owner;
    let time = head.as_ref().map(|(_, c)| c.time).unwrap_or_else(Timestamp::now);
    let tx = fs.db.lock()?;
    let root = inode::insert(
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
        let trees = fetch_trees(fs, &commit.root)?;
        import_tree(fs, &tx, ROOT, &commit.root, &trees, &mut links, 0)?;
        tx.execute(
            "UPDATE inodes SET tree_id = ?2 WHERE ino = ?1",
            rusqlite::params![ROOT as i64, commit.root.as_bytes().as_slice()],
        )?;
        db::meta_set(&tx, "head", cid.as_bytes())?;
    }
    db::meta_set_u64(&tx, "epoch", 1)?;
    db::meta_set_u64(&tx, "committed_epoch", 0)?;
    drop(tx);
    fs.epoch.store(1, std::sync::atomic::Ordering::Release);
    Ok(())
}

/// Trees fetched at once: one folder level after another, many folders of
/// a level side by side, so a new device waits for a few round trips per
/// level of the tree rather than one per folder.
const TREE_FETCHES: usize = 16;

/// Every tree of the snapshot under `root`, by id.
fn fetch_trees(fs: &Fs, root: &BlobId) -> Result<HashMap<BlobId, Tree>> {
    let mut trees = HashMap::new();
    let mut seen = HashSet::from([*root]);
    let mut level = vec![*root];
    let mut depth = 0;
    while !level.is_empty() {
        depth += 1;
        if depth > 4096 {
            return Err(FsError::new(ErrorKind::Corrupt, "the snapshot's folders nest too deep"));
        }
        let vault = &fs.vault;
        let fetched: Vec<_> = fs.rt.block_on(
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
    fs: &Fs,
    c: &rusqlite::Connection,
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
                inode::add_dentry(c, dir, &e.name, ino)?;
                inode::add_nlink(c, ino, 1)?;
                continue;
            }
        }
        let nlink = if e.kind == EntryKind::Dir { 2 } else { 1 };
        let ino = inode::insert(
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
        inode::set_times(c, ino, None, Some(e.ctime))?;
        inode::add_dentry(c, dir, &e.name, ino)?;
        for x in &e.xattrs {
            c.prepare_cached("INSERT OR REPLACE INTO xattrs (ino, name, value) VALUES (?1, ?2, ?3)")?
                .execute(rusqlite::params![ino as i64, x.name, x.value])?;
        }
        match e.kind {
            EntryKind::File => {
                let mut list = Vec::with_capacity(e.content.len());
                for id in &e.content {
                    let loc = fs.vault.locate_or_err(id)?;
                    list.push((*id, loc.raw_len));
                }
                let list = ContentList(list);
                let len = list.len_bytes();
                c.prepare_cached("UPDATE inodes SET content = ?2, size = ?3, base_len = ?3 WHERE ino = ?1")?
                    .execute(rusqlite::params![ino as i64, list.encode(), len as i64])?;
                links.insert(e.file_id, ino);
            }
            EntryKind::Dir => {
                subdirs += 1;
                let sub = e
                    .subtree
                    .ok_or_else(|| FsError::new(ErrorKind::Corrupt, "a folder entry has no tree"))?;
                c.prepare_cached("UPDATE inodes SET tree_id = ?2 WHERE ino = ?1")?
                    .execute(rusqlite::params![ino as i64, sub.as_bytes().as_slice()])?;
                import_tree(fs, c, ino, &sub, trees, links, depth + 1)?;
            }
            _ => {}
        }
    }
    if subdirs > 0 {
        inode::add_nlink(c, dir, subdirs)?;
    }
    Ok(())
}

/// Fails, saying what to do, when a database about to be rebuilt (one
/// made by another version of Nimbus) still holds changes not yet in the
/// vault: rebuilding would delete them with the staging folder. Asks the
/// database as this version knows it; when its schema is too different
/// for that, any staged bytes count as changes.
pub(crate) fn refuse_to_drop_changes(db: &crate::db::Db, staging_dir: &Path, state_dir: &Path) -> Result<()> {
    let pending = db
        .read(|c| {
            let committed = db::meta_get_u64(c, "committed_epoch")? as i64;
            Ok(
                c.prepare("SELECT 1 FROM inodes WHERE dirty_epoch > ?1 OR staging IS NOT NULL LIMIT 1")?
                    .exists([committed])?,
            )
        })
        .unwrap_or_else(|_| {
            std::fs::read_dir(staging_dir)
                .map(|rd| rd.flatten().any(|e| e.metadata().is_ok_and(|m| m.len() > 0)))
                .unwrap_or(false)
        });
    if pending {
        return Err(FsError::new(
            ErrorKind::NotSupported,
            format!(
                "the local state of this drive in {} was made by another version of Nimbus and holds changes \
                 not yet uploaded to the vault, so it is not rebuilt (that would lose them): mount the drive \
                 with the version of Nimbus that made it, so the changes upload, then mount it with this one; \
                 or, to discard those changes, move that folder aside and mount again",
                state_dir.display()
            ),
        ));
    }
    Ok(())
}

/// Puts an existing database back in order after a crash or a clean stop.
pub(crate) fn recover(fs: &Fs) -> Result<()> {
    let staged: Vec<(Ino, [u8; 16], u64)> = fs.db.write(|c| {
        let e1 = db::meta_get_u64(c, "epoch")?;
        let e2: i64 = c.query_row("SELECT coalesce(max(dirty_epoch), 0) FROM inodes", [], |r| r.get(0))?;
        let epoch = e1.max(e2 as u64) + 1;
        db::meta_set_u64(c, "epoch", epoch)?;
        fs.epoch.store(epoch, std::sync::atomic::Ordering::Release);
        // Files unlinked while open when the drive stopped.
        c.execute(
            "DELETE FROM xattrs WHERE ino IN (SELECT ino FROM inodes WHERE nlink = 0)",
            [],
        )?;
        c.execute(
            "DELETE FROM pins WHERE ino IN (SELECT ino FROM inodes WHERE nlink = 0)",
            [],
        )?;
        c.execute("DELETE FROM inodes WHERE nlink = 0", [])?;
        let mut st = c.prepare("SELECT ino, staging, size FROM inodes WHERE staging IS NOT NULL")?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)? as u64,
                r.get::<_, Vec<u8>>(1)?,
                r.get::<_, i64>(2)? as u64,
            ))
        })?;
        let mut out = Vec::new();
        for r in rows {
            let (ino, id, size) = r?;
            if let Ok(id) = id.as_slice().try_into() {
                out.push((ino, id, size));
            }
        }
        Ok(out)
    })?;
    fs.db.commit(true)?;
    let known: std::collections::HashSet<String> = staged.iter().map(|(_, id, _)| hex::encode(id)).collect();
    if let Ok(rd) = std::fs::read_dir(&fs.staging_dir) {
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
        let s = Staging::open(&fs.staging_dir, id)?;
        s.truncate_blocks(size.div_ceil(BLOCK as u64))?;
        let tail = (size % BLOCK as u64) as usize;
        if tail != 0 {
            let b = size / BLOCK as u64;
            let mut blk = vec![0u8; BLOCK];
            // A damaged last block must not keep the whole drive from
            // mounting: the next commit sets that one file aside.
            let staged = match s.read_blocks(&fs.key, b, &mut blk) {
                Ok(p) => p[0],
                Err(e) if e.kind() == ErrorKind::Corrupt => {
                    tracing::warn!("{e}; the file it belongs to will be set aside");
                    false
                }
                Err(e) => return Err(e),
            };
            if staged && blk[tail..].iter().any(|&x| x != 0) {
                blk[tail..].fill(0);
                s.write_blocks(&fs.key, b, &blk)?;
            }
        }
        s.sync()?;
    }
    Ok(())
}

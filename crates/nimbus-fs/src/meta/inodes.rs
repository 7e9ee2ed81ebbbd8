//! Inode rows: reading, writing and the small SQL helpers every operation
//! uses.

use nimbus_vault::{BlobId, EntryKind, FileId, Timestamp};
use rusqlite::{params, Connection, OptionalExtension, Row as SqlRow};

use crate::error::{ErrorKind, FsError, Result};
use crate::types::{Attr, ContentList, Ino};

pub fn kind_code(k: EntryKind) -> i64 {
    match k {
        EntryKind::File => 0,
        EntryKind::Dir => 1,
        EntryKind::Symlink => 2,
        EntryKind::Fifo => 3,
        EntryKind::CharDevice => 4,
        EntryKind::BlockDevice => 5,
        EntryKind::Socket => 6,
    }
}

pub fn kind_from(c: i64) -> EntryKind {
    match c {
        1 => EntryKind::Dir,
        2 => EntryKind::Symlink,
        3 => EntryKind::Fifo,
        4 => EntryKind::CharDevice,
        5 => EntryKind::BlockDevice,
        6 => EntryKind::Socket,
        _ => EntryKind::File,
    }
}

/// One row of `inodes`.
#[derive(Debug, Clone)]
pub struct Row {
    pub ino: Ino,
    pub kind: EntryKind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub rdev: u64,
    pub size: u64,
    pub nlink: u32,
    pub atime: Timestamp,
    pub mtime: Timestamp,
    pub ctime: Timestamp,
    pub parent: Ino,
    pub file_id: FileId,
    pub target: Vec<u8>,
    pub content: ContentList,
    pub base_len: u64,
    pub staging: Option<[u8; 16]>,
    pub dirty_epoch: u64,
    pub tree_id: Option<nimbus_vault::BlobId>,
}

pub const COLS: &str = "ino, kind, mode, uid, gid, rdev, size, nlink, atime_s, atime_n, mtime_s, mtime_n, \
     ctime_s, ctime_n, parent, file_id, target, content, base_len, staging, dirty_epoch, tree_id";

fn ts(s: i64, n: i64) -> Timestamp {
    Timestamp {
        secs: s,
        nanos: n.clamp(0, 999_999_999) as u32,
    }
}

pub fn from_sql(r: &SqlRow<'_>) -> rusqlite::Result<Row> {
    let file_id: Vec<u8> = r.get(15)?;
    let content: Option<Vec<u8>> = r.get(17)?;
    let staging: Option<Vec<u8>> = r.get(19)?;
    let tree: Option<Vec<u8>> = r.get(21)?;
    Ok(Row {
        ino: r.get::<_, i64>(0)? as u64,
        kind: kind_from(r.get(1)?),
        mode: r.get::<_, i64>(2)? as u32,
        uid: r.get::<_, i64>(3)? as u32,
        gid: r.get::<_, i64>(4)? as u32,
        rdev: r.get::<_, i64>(5)? as u64,
        size: r.get::<_, i64>(6)? as u64,
        nlink: r.get::<_, i64>(7)? as u32,
        atime: ts(r.get(8)?, r.get(9)?),
        mtime: ts(r.get(10)?, r.get(11)?),
        ctime: ts(r.get(12)?, r.get(13)?),
        parent: r.get::<_, i64>(14)? as u64,
        file_id: file_id
            .as_slice()
            .try_into()
            .map(nimbus_vault::ShortId)
            .unwrap_or(nimbus_vault::ShortId([0; 16])),
        target: r.get::<_, Option<Vec<u8>>>(16)?.unwrap_or_default(),
        content: content.and_then(|c| ContentList::decode(&c)).unwrap_or_default(),
        base_len: r.get::<_, i64>(18)? as u64,
        staging: staging.and_then(|s| s.as_slice().try_into().ok()),
        dirty_epoch: r.get::<_, i64>(20)? as u64,
        tree_id: tree.and_then(|t| t.as_slice().try_into().ok().map(nimbus_vault::Id)),
    })
}

impl Row {
    pub fn attr(&self) -> Attr {
        // A symlink's size is the length of its target (POSIX `lstat`);
        // taken from the target itself, so rows written before this rule
        // (size 0) are right too.
        let size = if self.kind == EntryKind::Symlink {
            self.target.len() as u64
        } else {
            self.size
        };
        Attr {
            ino: self.ino,
            kind: self.kind,
            size,
            blocks: size.div_ceil(512),
            perm: self.mode & 0o7777,
            nlink: self.nlink,
            uid: self.uid,
            gid: self.gid,
            rdev: self.rdev,
            atime: self.atime,
            mtime: self.mtime,
            ctime: self.ctime,
        }
    }
}

pub fn get(c: &Connection, ino: Ino) -> Result<Row> {
    get_opt(c, ino)?.ok_or_else(FsError::not_found)
}

pub fn get_opt(c: &Connection, ino: Ino) -> Result<Option<Row>> {
    Ok(c.prepare_cached(&format!("SELECT {COLS} FROM inodes WHERE ino = ?1"))?
        .query_row([ino as i64], from_sql)
        .optional()?)
}

/// A new inode; returns its number.
#[allow(clippy::too_many_arguments)]
pub fn insert(
    c: &Connection,
    kind: EntryKind,
    mode: u32,
    uid: u32,
    gid: u32,
    rdev: u64,
    nlink: u32,
    time: Timestamp,
    parent: Ino,
    file_id: &FileId,
    target: Option<&[u8]>,
    epoch: u64,
) -> Result<Ino> {
    c.prepare_cached(
        "INSERT INTO inodes (kind, mode, uid, gid, rdev, nlink, atime_s, atime_n, mtime_s, mtime_n, ctime_s, ctime_n, \
         parent, file_id, target, dirty_epoch) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?7, ?8, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?
    .execute(params![
        kind_code(kind),
        mode as i64,
        uid as i64,
        gid as i64,
        rdev as i64,
        nlink as i64,
        time.secs,
        time.nanos as i64,
        parent as i64,
        file_id.0.as_slice(),
        target,
        epoch as i64
    ])?;
    Ok(c.last_insert_rowid() as u64)
}

pub fn set_times(c: &Connection, ino: Ino, m: Option<Timestamp>, ct: Option<Timestamp>) -> Result<()> {
    if let Some(m) = m {
        c.prepare_cached("UPDATE inodes SET mtime_s = ?2, mtime_n = ?3 WHERE ino = ?1")?
            .execute(params![ino as i64, m.secs, m.nanos as i64])?;
    }
    if let Some(t) = ct {
        c.prepare_cached("UPDATE inodes SET ctime_s = ?2, ctime_n = ?3 WHERE ino = ?1")?
            .execute(params![ino as i64, t.secs, t.nanos as i64])?;
    }
    Ok(())
}

pub fn add_nlink(c: &Connection, ino: Ino, delta: i64) -> Result<()> {
    c.prepare_cached("UPDATE inodes SET nlink = max(nlink + ?2, 0) WHERE ino = ?1")?
        .execute(params![ino as i64, delta])?;
    Ok(())
}

/// Deletes an inode and everything hanging off it (not its staging file).
pub fn delete(c: &Connection, ino: Ino) -> Result<()> {
    c.prepare_cached("DELETE FROM inodes WHERE ino = ?1")?
        .execute([ino as i64])?;
    c.prepare_cached("DELETE FROM xattrs WHERE ino = ?1")?
        .execute([ino as i64])?;
    c.prepare_cached("DELETE FROM pins WHERE ino = ?1")?
        .execute([ino as i64])?;
    c.prepare_cached("DELETE FROM merge_orphans WHERE ino = ?1")?
        .execute([ino as i64])?;
    Ok(())
}

/// The inodes holding file id `id`, by inode number: usually one; two
/// while a merge orphan (docs/SYNC.md §4.3) keeps the old version of a
/// file open beside the inode that took its name.
pub(crate) fn by_file_id(c: &Connection, id: &FileId) -> Result<Vec<Row>> {
    let mut st = c.prepare_cached(&format!("SELECT {COLS} FROM inodes WHERE file_id = ?1 ORDER BY ino"))?;
    let rows = st.query_map([id.0.as_slice()], from_sql)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Gives an inode another file id (a merge alias, docs/SYNC.md §4.3: two
/// devices made the same folder or file, and the merge kept one id).
pub(crate) fn set_file_id(c: &Connection, ino: Ino, id: &FileId) -> Result<()> {
    c.prepare_cached("UPDATE inodes SET file_id = ?2 WHERE ino = ?1")?
        .execute(params![ino as i64, id.0.as_slice()])?;
    Ok(())
}

/// A symlink's new target, from another device.
#[cfg_attr(not(test), allow(dead_code))] // used by the sync engine's apply (step 17)
pub(crate) fn set_target(c: &Connection, ino: Ino, target: &[u8]) -> Result<()> {
    c.prepare_cached("UPDATE inodes SET target = ?2 WHERE ino = ?1")?
        .execute(params![ino as i64, target])?;
    Ok(())
}

pub fn check_name(name: &[u8]) -> Result<()> {
    if name.len() > nimbus_vault::tree::MAX_NAME {
        return Err(FsError::new(
            ErrorKind::NameTooLong,
            format!("a name is at most {} bytes long", nimbus_vault::tree::MAX_NAME),
        ));
    }
    if !nimbus_vault::tree::valid_name(name) {
        return Err(FsError::new(ErrorKind::InvalidArgument, "not a valid file name"));
    }
    Ok(())
}

/// Refuses to move folder `moving` into `dest` when `dest` is `moving` or
/// lies inside it.
pub fn check_not_inside(c: &Connection, moving: Ino, dest: Ino) -> Result<()> {
    let mut at = dest;
    for _ in 0..4096 {
        if at == moving {
            return Err(FsError::new(
                ErrorKind::InvalidArgument,
                "a folder cannot move into itself",
            ));
        }
        if at == crate::types::ROOT {
            return Ok(());
        }
        at = get(c, at)?.parent;
    }
    Err(FsError::new(
        ErrorKind::Corrupt,
        "folders nest too deep (a loop in the local state?)",
    ))
}

/// A write's new size, stamping the modification and change times.
pub(crate) fn set_size_and_times(c: &Connection, ino: Ino, size: u64, t: Timestamp) -> Result<()> {
    c.prepare_cached(
        "UPDATE inodes SET size = ?2, mtime_s = ?3, mtime_n = ?4, ctime_s = ?3, ctime_n = ?4 WHERE ino = ?1",
    )?
    .execute(params![ino as i64, size as i64, t.secs, t.nanos as i64])?;
    Ok(())
}

pub(crate) fn set_size(c: &Connection, ino: Ino, size: u64) -> Result<()> {
    c.prepare_cached("UPDATE inodes SET size = ?2 WHERE ino = ?1")?
        .execute(params![ino as i64, size as i64])?;
    Ok(())
}

/// A new size and valid stored length, leaving the times alone.
pub(crate) fn set_size_and_base_len(c: &Connection, ino: Ino, size: u64, base_len: u64) -> Result<()> {
    c.prepare_cached("UPDATE inodes SET size = ?2, base_len = ?3 WHERE ino = ?1")?
        .execute(params![ino as i64, size as i64, base_len as i64])?;
    Ok(())
}

/// A truncation's new size and valid stored length, stamping the
/// modification and change times.
pub(crate) fn set_size_base_len_and_times(
    c: &Connection,
    ino: Ino,
    size: u64,
    base_len: u64,
    t: Timestamp,
) -> Result<()> {
    c.prepare_cached(
        "UPDATE inodes SET size = ?2, base_len = ?3, mtime_s = ?4, mtime_n = ?5, ctime_s = ?4, \
         ctime_n = ?5 WHERE ino = ?1",
    )?
    .execute(params![
        ino as i64,
        size as i64,
        base_len as i64,
        t.secs,
        t.nanos as i64
    ])?;
    Ok(())
}

/// What `setattr` sets in one statement.
pub(crate) struct Attrs {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub atime: Timestamp,
    pub mtime: Timestamp,
    pub ctime: Timestamp,
}

pub(crate) fn set_attrs(c: &Connection, ino: Ino, a: &Attrs) -> Result<()> {
    c.prepare_cached(
        "UPDATE inodes SET mode = ?2, uid = ?3, gid = ?4, atime_s = ?5, atime_n = ?6, mtime_s = ?7, \
         mtime_n = ?8, ctime_s = ?9, ctime_n = ?10 WHERE ino = ?1",
    )?
    .execute(params![
        ino as i64,
        a.mode as i64,
        a.uid as i64,
        a.gid as i64,
        a.atime.secs,
        a.atime.nanos as i64,
        a.mtime.secs,
        a.mtime.nanos as i64,
        a.ctime.secs,
        a.ctime.nanos as i64
    ])?;
    Ok(())
}

/// The folder holding folder `ino` (folders have one name).
pub(crate) fn set_parent(c: &Connection, ino: Ino, parent: Ino) -> Result<()> {
    c.prepare_cached("UPDATE inodes SET parent = ?2 WHERE ino = ?1")?
        .execute(params![ino as i64, parent as i64])?;
    Ok(())
}

/// The staging file holding a file's changed blocks (`None`: none).
pub(crate) fn set_staging(c: &Connection, ino: Ino, id: Option<&[u8; 16]>) -> Result<()> {
    c.prepare_cached("UPDATE inodes SET staging = ?2 WHERE ino = ?1")?
        .execute(params![ino as i64, id.map(|i| i.as_slice())])?;
    Ok(())
}

/// After an upload: the file's content is `list` (`len` bytes), and its
/// staging file is no longer needed.
pub(crate) fn adopt_content(c: &Connection, ino: Ino, list: &ContentList, len: u64) -> Result<()> {
    c.prepare_cached("UPDATE inodes SET content = ?2, base_len = ?3, staging = NULL WHERE ino = ?1")?
        .execute(params![ino as i64, list.encode(), len as i64])?;
    Ok(())
}

/// A file read from a snapshot: its content, size and valid stored length.
pub(crate) fn set_content(c: &Connection, ino: Ino, list: &ContentList, len: u64) -> Result<()> {
    c.prepare_cached("UPDATE inodes SET content = ?2, size = ?3, base_len = ?3 WHERE ino = ?1")?
        .execute(params![ino as i64, list.encode(), len as i64])?;
    Ok(())
}

/// The tree blob of a folder as last committed (or imported).
pub(crate) fn set_tree(c: &Connection, ino: Ino, tree: &BlobId) -> Result<()> {
    c.prepare_cached("UPDATE inodes SET tree_id = ?2 WHERE ino = ?1")?
        .execute(params![ino as i64, tree.as_bytes().as_slice()])?;
    Ok(())
}

/// Inodes and the bytes of their sizes, for `statfs`.
pub(crate) fn totals(c: &Connection) -> Result<(u64, u64)> {
    let (n, bytes): (i64, i64) = c.query_row("SELECT count(*), coalesce(sum(size), 0) FROM inodes", [], |r| {
        Ok((r.get(0)?, r.get(1)?))
    })?;
    Ok((n as u64, bytes as u64))
}

/// Files by name (a hard link counts once per name) and their bytes, as a
/// commit records them.
pub(crate) fn file_totals(c: &Connection) -> Result<(u64, u64)> {
    let (files, bytes): (i64, i64) = c.query_row(
        "SELECT count(*), coalesce(sum(i.size), 0) FROM dentries d JOIN inodes i ON i.ino = d.ino \
         WHERE i.kind = 0",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok((files as u64, bytes as u64))
}

/// After a crash or stop: deletes files unlinked while open then (the
/// rows, their attributes and pins), except merge orphans still recorded.
pub(crate) fn delete_unlinked(c: &Connection) -> Result<()> {
    // A merge orphan's bytes may be the only copy of a version: it is
    // settled first (`orphans::settle_all`), never deleted here.
    const UNLINKED: &str = "SELECT ino FROM inodes WHERE nlink = 0 AND ino NOT IN (SELECT ino FROM merge_orphans)";
    c.execute(&format!("DELETE FROM xattrs WHERE ino IN ({UNLINKED})"), [])?;
    c.execute(&format!("DELETE FROM pins WHERE ino IN ({UNLINKED})"), [])?;
    c.execute(&format!("DELETE FROM inodes WHERE ino IN ({UNLINKED})"), [])?;
    Ok(())
}

/// Files with a staging file: inode, staging id and size.
pub(crate) fn staged(c: &Connection) -> Result<Vec<(Ino, [u8; 16], u64)>> {
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
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::meta::db::test_db;

    #[test]
    fn inodes_are_found_by_file_id() {
        let (_dir, db) = test_db();
        let c = db.lock().unwrap();
        let t = Timestamp { secs: 1, nanos: 0 };
        let (shared, other) = (nimbus_vault::ShortId([1; 16]), nimbus_vault::ShortId([2; 16]));
        let new = |id: &FileId, kind| insert(&c, kind, 0o644, 0, 0, 0, 1, t, 0, id, None, 0).unwrap();
        let a = new(&shared, EntryKind::File);
        let d = new(&other, EntryKind::Dir);
        let b = new(&shared, EntryKind::File);

        let found: Vec<Ino> = by_file_id(&c, &shared).unwrap().iter().map(|r| r.ino).collect();
        assert_eq!(found, vec![a, b]);
        let found = by_file_id(&c, &other).unwrap();
        assert_eq!((found.len(), found[0].ino, found[0].kind), (1, d, EntryKind::Dir));
        assert!(by_file_id(&c, &nimbus_vault::ShortId([3; 16])).unwrap().is_empty());
        delete(&c, a).unwrap();
        assert_eq!(by_file_id(&c, &shared).unwrap().len(), 1);

        // Through the index, not a scan of every inode.
        let plan: Vec<String> = c
            .prepare("EXPLAIN QUERY PLAN SELECT ino FROM inodes WHERE file_id = ?1")
            .unwrap()
            .query_map([shared.0.as_slice()], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert!(plan.iter().any(|p| p.contains("inodes_by_file_id")), "{plan:?}");
    }
}

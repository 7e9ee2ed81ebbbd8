//! Epoch stamping: which inodes changed since the last commit (see the
//! module comment of `commit/mod.rs` for the invariant these keep).

use rusqlite::{params, Connection, OptionalExtension};

use super::dentries;
use crate::error::Result;
use crate::types::{Ino, ROOT};

/// Stamps folder `dir` and its ancestors with `epoch`, stopping at the
/// first one stamped already (its ancestors are too).
pub(crate) fn mark_dir(c: &Connection, mut dir: Ino, epoch: u64) -> Result<()> {
    let mut st =
        c.prepare_cached("UPDATE inodes SET dirty_epoch = ?2 WHERE ino = ?1 AND dirty_epoch <> ?2 RETURNING parent")?;
    for _ in 0..4096 {
        let parent: Option<i64> = st
            .query_row(params![dir as i64, epoch as i64], |r| r.get(0))
            .optional()?;
        match parent {
            // Already marked in this epoch: so are its ancestors.
            None => return Ok(()),
            Some(_) if dir == ROOT => return Ok(()),
            Some(p) => dir = p as u64,
        }
    }
    Ok(())
}

/// Stamps the folders holding `ino` (its metadata is in them).
pub(crate) fn mark_parents(c: &Connection, ino: Ino, epoch: u64) -> Result<()> {
    for p in dentries::parents(c, ino)? {
        mark_dir(c, p, epoch)?;
    }
    Ok(())
}

/// Stamps a file's content as changed in `epoch`; true if it was not
/// stamped with it already.
pub(crate) fn mark_content(c: &Connection, ino: Ino, epoch: u64) -> Result<bool> {
    let changed = c
        .prepare_cached("UPDATE inodes SET dirty_epoch = ?2 WHERE ino = ?1 AND dirty_epoch <> ?2")?
        .execute(params![ino as i64, epoch as i64])?;
    Ok(changed > 0)
}

/// Stamps one inode with `epoch`, whatever it carried.
pub(crate) fn stamp(c: &Connection, ino: Ino, epoch: u64) -> Result<()> {
    c.prepare_cached("UPDATE inodes SET dirty_epoch = ?2 WHERE ino = ?1")?
        .execute(params![ino as i64, epoch as i64])?;
    Ok(())
}

/// The highest epoch any inode carries.
pub(crate) fn max_epoch(c: &Connection) -> Result<u64> {
    let e: i64 = c.query_row("SELECT coalesce(max(dirty_epoch), 0) FROM inodes", [], |r| r.get(0))?;
    Ok(e as u64)
}

/// Files (not folders) whose content changed after epoch `committed`.
pub(crate) fn changed_files(c: &Connection, committed: u64) -> Result<Vec<Ino>> {
    let mut st = c.prepare_cached("SELECT ino FROM inodes WHERE kind = 0 AND dirty_epoch > ?1")?;
    let files = st
        .query_map([committed as i64], |r| r.get::<_, i64>(0))?
        .collect::<rusqlite::Result<Vec<i64>>>()?;
    Ok(files.into_iter().map(|i| i as u64).collect())
}

/// How many files changed after epoch `committed`.
pub(crate) fn count_changed_files(c: &Connection, committed: u64) -> Result<u64> {
    let n: i64 = c.query_row(
        "SELECT count(*) FROM inodes WHERE kind = 0 AND dirty_epoch > ?1",
        [committed as i64],
        |r| r.get(0),
    )?;
    Ok(n as u64)
}

/// Whether anything changed after epoch `committed` or is still staged.
pub(crate) fn any_change(c: &Connection, committed: u64) -> Result<bool> {
    Ok(
        c.prepare_cached("SELECT 1 FROM inodes WHERE dirty_epoch > ?1 OR staging IS NOT NULL LIMIT 1")?
            .exists([committed as i64])?,
    )
}

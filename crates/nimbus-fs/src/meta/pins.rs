//! Pins: files and folders kept on this device (their blobs are never
//! evicted from the cache).

use nimbus_vault::BlobId;
use rusqlite::Connection;
use std::collections::HashSet;

use crate::error::Result;
use crate::types::{ContentList, Ino};

pub(crate) fn is_pinned(c: &Connection, ino: Ino) -> Result<bool> {
    Ok(c.prepare_cached("SELECT 1 FROM pins WHERE ino = ?1")?
        .exists([ino as i64])?)
}

pub(crate) fn set(c: &Connection, ino: Ino, on: bool) -> Result<()> {
    if on {
        c.prepare_cached("INSERT OR IGNORE INTO pins (ino) VALUES (?1)")?
            .execute([ino as i64])?;
    } else {
        c.prepare_cached("DELETE FROM pins WHERE ino = ?1")?
            .execute([ino as i64])?;
    }
    Ok(())
}

/// Every blob of every pinned file (folders pin what is under them).
pub(crate) fn pinned_blobs(c: &Connection) -> Result<HashSet<BlobId>> {
    let mut out = HashSet::new();
    let mut st = c.prepare_cached(
        "WITH RECURSIVE under(ino) AS (SELECT ino FROM pins \
         UNION SELECT d.ino FROM dentries d JOIN under u ON d.parent = u.ino) \
         SELECT i.content FROM inodes i JOIN under u ON i.ino = u.ino WHERE i.content IS NOT NULL",
    )?;
    let rows = st.query_map([], |r| r.get::<_, Vec<u8>>(0))?;
    for r in rows {
        if let Some(list) = ContentList::decode(&r?) {
            out.extend(list.0.into_iter().map(|(id, _)| id));
        }
    }
    Ok(out)
}

//! Extended attributes a person set on files and folders (`user.*` and
//! the like), stored as given and committed with the folder's tree.

use nimbus_vault::Xattr;
use rusqlite::{params, Connection, OptionalExtension};

use crate::error::Result;
use crate::types::Ino;

pub(crate) fn exists(c: &Connection, ino: Ino, name: &[u8]) -> Result<bool> {
    Ok(c.prepare_cached("SELECT 1 FROM xattrs WHERE ino = ?1 AND name = ?2")?
        .exists(params![ino as i64, name])?)
}

/// Sets an attribute, replacing any value it had.
pub(crate) fn set(c: &Connection, ino: Ino, name: &[u8], value: &[u8]) -> Result<()> {
    c.prepare_cached(
        "INSERT INTO xattrs (ino, name, value) VALUES (?1, ?2, ?3) \
         ON CONFLICT (ino, name) DO UPDATE SET value = ?3",
    )?
    .execute(params![ino as i64, name, value])?;
    Ok(())
}

pub(crate) fn get(c: &Connection, ino: Ino, name: &[u8]) -> Result<Option<Vec<u8>>> {
    Ok(
        c.prepare_cached("SELECT value FROM xattrs WHERE ino = ?1 AND name = ?2")?
            .query_row(params![ino as i64, name], |r| r.get(0))
            .optional()?,
    )
}

/// The attribute names of `ino`, sorted.
pub(crate) fn names(c: &Connection, ino: Ino) -> Result<Vec<Vec<u8>>> {
    let mut st = c.prepare_cached("SELECT name FROM xattrs WHERE ino = ?1 ORDER BY name")?;
    let rows = st.query_map([ino as i64], |r| r.get::<_, Vec<u8>>(0))?;
    let mut out = Vec::new();
    for r in rows {
        out.push(r?);
    }
    Ok(out)
}

/// Removes an attribute; false if it was not there.
pub(crate) fn remove(c: &Connection, ino: Ino, name: &[u8]) -> Result<bool> {
    let n = c
        .prepare_cached("DELETE FROM xattrs WHERE ino = ?1 AND name = ?2")?
        .execute(params![ino as i64, name])?;
    Ok(n > 0)
}

/// Every attribute of `ino`, sorted by name, as a tree entry keeps them.
pub(crate) fn all(c: &Connection, ino: Ino) -> Result<Vec<Xattr>> {
    let mut st = c.prepare_cached("SELECT name, value FROM xattrs WHERE ino = ?1 ORDER BY name")?;
    let rows = st.query_map([ino as i64], |r| {
        Ok(Xattr {
            name: r.get(0)?,
            value: r.get(1)?,
        })
    })?;
    let mut out = Vec::new();
    for r in rows {
        out.push(r?);
    }
    Ok(out)
}

/// Stores an attribute read from a snapshot (the last value wins).
pub(crate) fn import(c: &Connection, ino: Ino, x: &Xattr) -> Result<()> {
    c.prepare_cached("INSERT OR REPLACE INTO xattrs (ino, name, value) VALUES (?1, ?2, ?3)")?
        .execute(params![ino as i64, x.name, x.value])?;
    Ok(())
}

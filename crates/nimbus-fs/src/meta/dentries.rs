//! Directory entries: the names of inodes in their folders.

use rusqlite::{params, Connection, OptionalExtension};

use super::inodes::kind_from;
use crate::error::Result;
use crate::types::{DirEntry, Ino, ROOT};

/// The inode named `name` in folder `parent`.
pub(crate) fn lookup(c: &Connection, parent: Ino, name: &[u8]) -> Result<Option<Ino>> {
    Ok(
        c.prepare_cached("SELECT ino FROM dentries WHERE parent = ?1 AND name = ?2")?
            .query_row(params![parent as i64, name], |r| r.get::<_, i64>(0))
            .optional()?
            .map(|i| i as u64),
    )
}

pub(crate) fn add(c: &Connection, parent: Ino, name: &[u8], ino: Ino) -> Result<()> {
    c.prepare_cached("INSERT INTO dentries (parent, name, ino) VALUES (?1, ?2, ?3)")?
        .execute(params![parent as i64, name, ino as i64])?;
    Ok(())
}

/// Removes the name `name` from folder `parent` (not the inode).
pub(crate) fn remove(c: &Connection, parent: Ino, name: &[u8]) -> Result<()> {
    c.prepare_cached("DELETE FROM dentries WHERE parent = ?1 AND name = ?2")?
        .execute(params![parent as i64, name])?;
    Ok(())
}

/// Points the name `name` in `parent` at another inode (an exchange).
pub(crate) fn repoint(c: &Connection, parent: Ino, name: &[u8], ino: Ino) -> Result<()> {
    c.prepare_cached("UPDATE dentries SET ino = ?3 WHERE parent = ?1 AND name = ?2")?
        .execute(params![parent as i64, name, ino as i64])?;
    Ok(())
}

/// Moves a name: `name` in `parent` becomes `newname` in `newparent`.
pub(crate) fn rename(c: &Connection, parent: Ino, name: &[u8], newparent: Ino, newname: &[u8]) -> Result<()> {
    c.prepare_cached("UPDATE dentries SET parent = ?3, name = ?4 WHERE parent = ?1 AND name = ?2")?
        .execute(params![parent as i64, name, newparent as i64, newname])?;
    Ok(())
}

/// The folders holding names of `ino`.
pub(crate) fn parents(c: &Connection, ino: Ino) -> Result<Vec<Ino>> {
    let mut st = c.prepare_cached("SELECT DISTINCT parent FROM dentries WHERE ino = ?1")?;
    let rows = st.query_map([ino as i64], |r| r.get::<_, i64>(0))?;
    let mut out = Vec::new();
    for r in rows {
        out.push(r? as u64);
    }
    Ok(out)
}

/// Every name of `ino`: its folder and its name there, oldest first.
#[cfg_attr(not(test), allow(dead_code))] // used by the sync engine's apply (step 17)
pub(crate) fn names_of(c: &Connection, ino: Ino) -> Result<Vec<(Ino, Vec<u8>)>> {
    let mut st = c.prepare_cached("SELECT parent, name FROM dentries WHERE ino = ?1 ORDER BY id")?;
    let rows = st.query_map([ino as i64], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)))?;
    let mut out = Vec::new();
    for r in rows {
        let (parent, name) = r?;
        out.push((parent as u64, name));
    }
    Ok(out)
}

pub(crate) fn is_empty_dir(c: &Connection, ino: Ino) -> Result<bool> {
    Ok(c.prepare_cached("SELECT 1 FROM dentries WHERE parent = ?1 LIMIT 1")?
        .query_row([ino as i64], |_| Ok(()))
        .optional()?
        .is_none())
}

/// Up to `max` entries of folder `dir` after the entry numbered `after`,
/// in the order they were made; each entry's cookie is its number + 2 (1
/// and 2 are `.` and `..`).
pub(crate) fn list(c: &Connection, dir: Ino, after: i64, max: usize) -> Result<Vec<DirEntry>> {
    let mut st = c.prepare_cached(
        "SELECT d.id, d.ino, i.kind, d.name FROM dentries d JOIN inodes i ON i.ino = d.ino \
         WHERE d.parent = ?1 AND d.id > ?2 ORDER BY d.id LIMIT ?3",
    )?;
    let rows = st.query_map(params![dir as i64, after, max as i64], |r| {
        Ok(DirEntry {
            cookie: r.get::<_, i64>(0)? as u64 + 2,
            ino: r.get::<_, i64>(1)? as u64,
            kind: kind_from(r.get(2)?),
            name: r.get(3)?,
        })
    })?;
    let mut out = Vec::new();
    for r in rows {
        out.push(r?);
    }
    Ok(out)
}

/// The names and inodes in folder `dir`, by name.
pub(crate) fn children(c: &Connection, dir: Ino) -> Result<Vec<(Vec<u8>, Ino)>> {
    let mut st = c.prepare_cached("SELECT name, ino FROM dentries WHERE parent = ?1 ORDER BY name")?;
    let rows = st.query_map([dir as i64], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?)))?;
    let mut out = Vec::new();
    for r in rows {
        let (name, ino) = r?;
        out.push((name, ino as u64));
    }
    Ok(out)
}

/// Every name holding `fragment` (bytes, anywhere in the name), with its
/// folder: one scan of the names, for the conflict copies (`sync/report.rs`).
pub(crate) fn named_with(c: &Connection, fragment: &[u8]) -> Result<Vec<(Ino, Vec<u8>)>> {
    let mut st =
        c.prepare_cached("SELECT parent, name FROM dentries WHERE instr(name, ?1) > 0 ORDER BY parent, name")?;
    let rows = st.query_map([fragment], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)))?;
    let mut out = Vec::new();
    for r in rows {
        let (parent, name) = r?;
        out.push((parent as u64, name));
    }
    Ok(out)
}

/// A path of `ino` in the drive (one of its names if it has several);
/// `None` once it has none.
pub(crate) fn path_of(c: &Connection, mut ino: Ino) -> Result<Option<String>> {
    let mut parts: Vec<Vec<u8>> = Vec::new();
    let mut st = c.prepare_cached("SELECT parent, name FROM dentries WHERE ino = ?1 ORDER BY id LIMIT 1")?;
    while ino != ROOT {
        if parts.len() > 4096 {
            return Ok(None);
        }
        let Some((parent, name)) = st
            .query_row([ino as i64], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)))
            .optional()?
        else {
            return Ok(None);
        };
        parts.push(name);
        ino = parent as u64;
    }
    let mut path = String::new();
    for p in parts.iter().rev() {
        path.push('/');
        path.push_str(&String::from_utf8_lossy(p));
    }
    Ok(Some(path))
}

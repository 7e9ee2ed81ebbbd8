//! The sync state kept beside the working copy, one typed accessor per
//! key of the `meta` table: the head commit, the epochs, what this device
//! saw of its ref, and the rollback memory (a newer snapshot kept as an
//! extra parent of the next commit).

use nimbus_vault::CommitId;
use rusqlite::{Connection, OptionalExtension};

use crate::error::Result;

const SCHEMA: &str = "schema";
const HEAD: &str = "head";
const EXTRA_PARENT: &str = "extra_parent";
const EPOCH: &str = "epoch";
const COMMITTED_EPOCH: &str = "committed_epoch";
const REF_SEEN: &str = "ref_seen";

fn get(c: &Connection, key: &str) -> Result<Option<Vec<u8>>> {
    Ok(c.prepare_cached("SELECT value FROM meta WHERE key = ?1")?
        .query_row([key], |r| r.get(0))
        .optional()?)
}

fn set(c: &Connection, key: &str, value: &[u8]) -> Result<()> {
    c.prepare_cached("INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = ?2")?
        .execute(rusqlite::params![key, value])?;
    Ok(())
}

fn get_u64(c: &Connection, key: &str) -> Result<u64> {
    Ok(get(c, key)?
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
        .unwrap_or(0))
}

fn set_u64(c: &Connection, key: &str, v: u64) -> Result<()> {
    set(c, key, &v.to_le_bytes())
}

fn get_commit(c: &Connection, key: &str) -> Result<Option<CommitId>> {
    Ok(get(c, key)?.and_then(|h| h.as_slice().try_into().ok().map(nimbus_vault::Id)))
}

/// The schema version written when the database was made (0 if none).
pub(crate) fn schema(c: &Connection) -> Result<i64> {
    let v = get(c, SCHEMA)?;
    Ok(v.and_then(|b| b.try_into().ok()).map(i64::from_le_bytes).unwrap_or(0))
}

pub(crate) fn set_schema(c: &Connection, version: i64) -> Result<()> {
    set(c, SCHEMA, &version.to_le_bytes())
}

/// The commit the working copy was last built from or committed as.
pub(crate) fn head(c: &Connection) -> Result<Option<CommitId>> {
    get_commit(c, HEAD)
}

pub(crate) fn set_head(c: &Connection, id: &CommitId) -> Result<()> {
    set(c, HEAD, id.as_bytes())
}

/// A newer snapshot of the vault found at mount while this drive had
/// changes of its own: a parent of the next commit besides the head.
pub(crate) fn extra_parent(c: &Connection) -> Result<Option<CommitId>> {
    get_commit(c, EXTRA_PARENT)
}

pub(crate) fn set_extra_parent(c: &Connection, id: Option<&CommitId>) -> Result<()> {
    match id {
        Some(id) => set(c, EXTRA_PARENT, id.as_bytes()),
        None => {
            c.prepare_cached("DELETE FROM meta WHERE key = ?1")?
                .execute([EXTRA_PARENT])?;
            Ok(())
        }
    }
}

/// The current change epoch (see `commit/mod.rs`).
pub(crate) fn epoch(c: &Connection) -> Result<u64> {
    get_u64(c, EPOCH)
}

pub(crate) fn set_epoch(c: &Connection, epoch: u64) -> Result<()> {
    set_u64(c, EPOCH, epoch)
}

/// The newest epoch whose changes are all in the vault.
pub(crate) fn committed_epoch(c: &Connection) -> Result<u64> {
    get_u64(c, COMMITTED_EPOCH)
}

pub(crate) fn set_committed_epoch(c: &Connection, epoch: u64) -> Result<()> {
    set_u64(c, COMMITTED_EPOCH, epoch)
}

/// The newest update number of this device's ref seen so far.
pub(crate) fn ref_seen(c: &Connection) -> Result<u64> {
    get_u64(c, REF_SEEN)
}

pub(crate) fn set_ref_seen(c: &Connection, seq: u64) -> Result<()> {
    set_u64(c, REF_SEEN, seq)
}

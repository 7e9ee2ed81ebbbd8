//! The sync state kept beside the working copy, one typed accessor per
//! key of the `meta` table: the head commit, the epochs, what this device
//! saw of its ref, the rollback memory (a newer snapshot kept as an
//! extra parent of the next commit), and the `applying` marker of a head
//! change under way (docs/SYNC.md §4.2).

use nimbus_vault::CommitId;
use rusqlite::{Connection, OptionalExtension};

use crate::error::{ErrorKind, FsError, Result};

const SCHEMA: &str = "schema";
const HEAD: &str = "head";
const EXTRA_PARENT: &str = "extra_parent";
const EPOCH: &str = "epoch";
const COMMITTED_EPOCH: &str = "committed_epoch";
const REF_SEEN: &str = "ref_seen";
const APPLYING: &str = "applying";

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

fn remove(c: &Connection, key: &str) -> Result<()> {
    c.prepare_cached("DELETE FROM meta WHERE key = ?1")?.execute([key])?;
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
        None => remove(c, EXTRA_PARENT),
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

/// A change of the head under way (docs/SYNC.md §4.2): set durably before
/// this device's ref is written, cleared by the transaction that applies
/// the new head to the rows. Found set at start, it says what to finish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Applying {
    /// The new head: this device's commit, a merge commit, or another
    /// device's head (a fast-forward).
    pub head: CommitId,
    /// Whether this device's ref must point at `head` (its own commit or a
    /// merge); not for a fast-forward.
    pub publish: bool,
    /// For this device's own commit: the epoch its changes were taken at,
    /// which becomes the committed epoch when the head is applied.
    pub epoch: Option<u64>,
}

/// Stored as the head (32 bytes), `publish` (1 byte, 0 or 1), then the
/// epoch's presence (1 byte) and value (8 bytes, little-endian, 0 when
/// absent): a fixed 42 bytes.
const APPLYING_LEN: usize = 32 + 1 + 1 + 8;

impl Applying {
    fn encode(&self) -> [u8; APPLYING_LEN] {
        let mut b = [0; APPLYING_LEN];
        b[..32].copy_from_slice(self.head.as_bytes());
        b[32] = u8::from(self.publish);
        b[33] = u8::from(self.epoch.is_some());
        b[34..].copy_from_slice(&self.epoch.unwrap_or(0).to_le_bytes());
        b
    }

    fn decode(b: &[u8]) -> Option<Applying> {
        let b: &[u8; APPLYING_LEN] = b.try_into().ok()?;
        let flag = |x: u8| match x {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        };
        let head = nimbus_vault::Id(b[..32].try_into().ok()?);
        let publish = flag(b[32])?;
        let epoch = u64::from_le_bytes(b[34..].try_into().ok()?);
        Some(Applying {
            head,
            publish,
            epoch: flag(b[33])?.then_some(epoch),
        })
    }
}

/// The head change under way, if any. A marker that cannot be read is an
/// error, not "none": forgetting it could leave the rows behind a ref
/// already published, and a commit built from them would undo the other
/// devices' changes.
pub(crate) fn applying(c: &Connection) -> Result<Option<Applying>> {
    let Some(bytes) = get(c, APPLYING)? else {
        return Ok(None);
    };
    Applying::decode(&bytes).map(Some).ok_or_else(|| {
        FsError::new(
            ErrorKind::Corrupt,
            "the local state's marker of a snapshot being applied is damaged; delete the state folder \
             and mount again to rebuild it from the vault",
        )
    })
}

pub(crate) fn set_applying(c: &Connection, a: &Applying) -> Result<()> {
    set(c, APPLYING, &a.encode())
}

pub(crate) fn clear_applying(c: &Connection) -> Result<()> {
    remove(c, APPLYING)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::meta::db::test_db;

    #[test]
    fn the_applying_marker_is_set_read_and_cleared() {
        let (_dir, db) = test_db();
        let c = db.lock().unwrap();
        assert_eq!(applying(&c).unwrap(), None);
        let own = Applying {
            head: nimbus_vault::Id([3; 32]),
            publish: true,
            epoch: Some(u64::MAX - 1),
        };
        set_applying(&c, &own).unwrap();
        assert_eq!(applying(&c).unwrap(), Some(own));
        let ff = Applying {
            head: nimbus_vault::Id([4; 32]),
            publish: false,
            epoch: None,
        };
        set_applying(&c, &ff).unwrap();
        assert_eq!(applying(&c).unwrap(), Some(ff), "replaced");
        clear_applying(&c).unwrap();
        assert_eq!(applying(&c).unwrap(), None);
        clear_applying(&c).unwrap();
        // The other keys are untouched by it.
        set_head(&c, &own.head).unwrap();
        set_applying(&c, &ff).unwrap();
        clear_applying(&c).unwrap();
        assert_eq!(head(&c).unwrap(), Some(own.head));
    }

    #[test]
    fn a_damaged_marker_is_an_error_not_none() {
        let (_dir, db) = test_db();
        let c = db.lock().unwrap();
        let good = Applying {
            head: nimbus_vault::Id([9; 32]),
            publish: false,
            epoch: Some(7),
        }
        .encode();
        let mut bad_flag = good;
        bad_flag[32] = 2;
        for damaged in [&good[..41], &[0u8; 43][..], &bad_flag[..]] {
            set(&c, APPLYING, damaged).unwrap();
            let err = applying(&c).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
        }
    }
}

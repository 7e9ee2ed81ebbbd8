//! The local commit cache (docs/SYNC.md §2.4): the fields of commits read
//! from the vault that the ancestor search and the merge need, so each
//! commit is fetched from the store once. Commits are immutable, so a row
//! never changes, except that its store time is added when first asked.
//!
//! Other devices' names are vault data: they rest here inside the
//! encrypted database, like file names, never in a file of their own.

// Used by the sync engine (docs/SYNC.md §7, steps 16 to 18).
#![cfg_attr(not(test), allow(dead_code))]

use nimbus_vault::{BlobId, CommitId, DeviceId, Id, ShortId, Timestamp};
use rusqlite::{params, Connection, OptionalExtension, Row as SqlRow};

use crate::error::{ErrorKind, FsError, Result};

/// One commit as the cache keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CommitRow {
    pub id: CommitId,
    /// In the commit's order.
    pub parents: Vec<CommitId>,
    /// 1 + the largest of the parents'; 0 for a commit of format 2.
    pub generation: u64,
    pub device: DeviceId,
    /// Empty for a commit of format 2.
    pub device_name: String,
    /// The root folder's tree.
    pub root: BlobId,
    /// The commit's own time, from its device's clock: only a label (a
    /// conflict name's time when the store gives none).
    pub time: Timestamp,
    /// When it reached the store, by the store's clock (`LastModified` of
    /// `commits/<id>`): `None` until asked, or when the store has no times.
    pub store_time: Option<Timestamp>,
}

const COLS: &str = "id, parents, generation, device, device_name, root, time_s, time_n, store_time_s, store_time_n";

fn damaged(what: &str) -> FsError {
    FsError::new(
        ErrorKind::Corrupt,
        format!(
            "the local commit cache holds a damaged {what}; delete the state folder and mount again to rebuild it \
             from the vault"
        ),
    )
}

fn ts(secs: i64, nanos: i64) -> Timestamp {
    Timestamp {
        secs,
        nanos: nanos.clamp(0, 999_999_999) as u32,
    }
}

/// The columns as stored, decoded by [`decode`] outside rusqlite so that a
/// damaged value is this module's error, not SQLite's.
struct Raw {
    id: Vec<u8>,
    parents: Vec<u8>,
    generation: i64,
    device: Vec<u8>,
    device_name: String,
    root: Vec<u8>,
    time: (i64, i64),
    store_time: (Option<i64>, Option<i64>),
}

fn raw(r: &SqlRow<'_>) -> rusqlite::Result<Raw> {
    Ok(Raw {
        id: r.get(0)?,
        parents: r.get(1)?,
        generation: r.get(2)?,
        device: r.get(3)?,
        device_name: r.get(4)?,
        root: r.get(5)?,
        time: (r.get(6)?, r.get(7)?),
        store_time: (r.get(8)?, r.get(9)?),
    })
}

fn id32(b: &[u8], what: &str) -> Result<Id> {
    b.try_into().map(Id).map_err(|_| damaged(what))
}

/// The parents as stored: their ids one after the other.
fn parents_from(bytes: &[u8]) -> Result<Vec<CommitId>> {
    if !bytes.len().is_multiple_of(32) {
        return Err(damaged("list of parents"));
    }
    bytes.chunks_exact(32).map(|p| id32(p, "parent id")).collect()
}

fn decode(r: Raw) -> Result<CommitRow> {
    let parents = parents_from(&r.parents)?;
    Ok(CommitRow {
        id: id32(&r.id, "commit id")?,
        parents,
        generation: r.generation as u64,
        device: r
            .device
            .as_slice()
            .try_into()
            .map(ShortId)
            .map_err(|_| damaged("device id"))?,
        device_name: r.device_name,
        root: id32(&r.root, "tree id")?,
        time: ts(r.time.0, r.time.1),
        store_time: match r.store_time {
            (Some(s), Some(n)) => Some(ts(s, n)),
            _ => None,
        },
    })
}

/// Adds a commit. Adding one already cached changes nothing, except that a
/// store time it lacked is taken from `row`.
pub(crate) fn insert(c: &Connection, row: &CommitRow) -> Result<()> {
    let parents: Vec<u8> = row.parents.iter().flat_map(|p| p.0).collect();
    c.prepare_cached(&format!(
        "INSERT INTO commits ({COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
         ON CONFLICT (id) DO UPDATE SET store_time_s = excluded.store_time_s, store_time_n = excluded.store_time_n \
         WHERE store_time_s IS NULL"
    ))?
    .execute(params![
        row.id.as_bytes().as_slice(),
        parents,
        row.generation as i64,
        row.device.0.as_slice(),
        row.device_name,
        row.root.as_bytes().as_slice(),
        row.time.secs,
        row.time.nanos as i64,
        row.store_time.map(|t| t.secs),
        row.store_time.map(|t| t.nanos as i64),
    ])?;
    Ok(())
}

/// The cached commit `id`, if it is cached.
pub(crate) fn get(c: &Connection, id: &CommitId) -> Result<Option<CommitRow>> {
    c.prepare_cached(&format!("SELECT {COLS} FROM commits WHERE id = ?1"))?
        .query_row([id.as_bytes().as_slice()], raw)
        .optional()?
        .map(decode)
        .transpose()
}

/// The cached ones of `ids`, in the order of `ids` (each once); the
/// caller fetches the others from the vault.
pub(crate) fn get_many(c: &Connection, ids: &[CommitId]) -> Result<Vec<CommitRow>> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for id in ids {
        if seen.insert(*id) {
            if let Some(row) = get(c, id)? {
                out.push(row);
            }
        }
    }
    Ok(out)
}

/// The parents of the cached commit `id`; `None` when it is not cached.
pub(crate) fn parents_of(c: &Connection, id: &CommitId) -> Result<Option<Vec<CommitId>>> {
    let bytes: Option<Vec<u8>> = c
        .prepare_cached("SELECT parents FROM commits WHERE id = ?1")?
        .query_row([id.as_bytes().as_slice()], |r| r.get(0))
        .optional()?;
    bytes.map(|b| parents_from(&b)).transpose()
}

/// Records when commit `id` reached the store, once the store was asked.
/// Returns whether the commit is cached (nothing is recorded otherwise).
pub(crate) fn set_store_time(c: &Connection, id: &CommitId, time: Timestamp) -> Result<bool> {
    let n = c
        .prepare_cached("UPDATE commits SET store_time_s = ?2, store_time_n = ?3 WHERE id = ?1")?
        .execute(params![id.as_bytes().as_slice(), time.secs, time.nanos as i64])?;
    Ok(n > 0)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::meta::db::test_db;

    fn commit(n: u8, parents: &[u8], generation: u64) -> CommitRow {
        CommitRow {
            id: Id([n; 32]),
            parents: parents.iter().map(|p| Id([*p; 32])).collect(),
            generation,
            device: ShortId([n; 16]),
            device_name: format!("device {n}"),
            root: Id([n ^ 0xff; 32]),
            time: Timestamp {
                secs: 1_700_000_000 + i64::from(n),
                nanos: 5,
            },
            store_time: None,
        }
    }

    #[test]
    fn commits_are_cached_and_read_back() {
        let (_dir, db) = test_db();
        let c = db.lock().unwrap();
        let root = commit(1, &[], 1);
        let merge = CommitRow {
            device_name: "Ana's laptop · ノート".into(),
            ..commit(3, &[2, 1], 3)
        };
        let old = CommitRow {
            device_name: String::new(),
            ..commit(2, &[1], 0)
        };
        for row in [&root, &merge, &old] {
            insert(&c, row).unwrap();
        }
        assert_eq!(get(&c, &merge.id).unwrap().as_ref(), Some(&merge));
        assert_eq!(get(&c, &old.id).unwrap().as_ref(), Some(&old));
        assert_eq!(get(&c, &Id([9; 32])).unwrap(), None);

        assert_eq!(
            parents_of(&c, &merge.id).unwrap(),
            Some(vec![Id([2; 32]), Id([1; 32])]),
            "in order"
        );
        assert_eq!(parents_of(&c, &root.id).unwrap(), Some(vec![]));
        assert_eq!(parents_of(&c, &Id([9; 32])).unwrap(), None);

        let ids = [merge.id, Id([9; 32]), root.id, merge.id];
        assert_eq!(get_many(&c, &ids).unwrap(), vec![merge.clone(), root.clone()]);
        assert!(get_many(&c, &[]).unwrap().is_empty());
    }

    #[test]
    fn a_store_time_is_added_once_and_never_changes_the_rest() {
        let (_dir, db) = test_db();
        let c = db.lock().unwrap();
        let row = commit(1, &[], 1);
        assert!(
            !set_store_time(&c, &row.id, Timestamp { secs: 1, nanos: 0 }).unwrap(),
            "not cached"
        );
        insert(&c, &row).unwrap();
        let t = Timestamp {
            secs: 1_800_000_000,
            nanos: 999_999_999,
        };
        assert!(set_store_time(&c, &row.id, t).unwrap());
        assert_eq!(get(&c, &row.id).unwrap().unwrap().store_time, Some(t));

        // Adding the commit again, with or without a time, keeps the first.
        let other = CommitRow {
            store_time: Some(Timestamp { secs: 2, nanos: 0 }),
            device_name: "changed".into(),
            ..row.clone()
        };
        insert(&c, &row).unwrap();
        insert(&c, &other).unwrap();
        let got = get(&c, &row.id).unwrap().unwrap();
        assert_eq!(
            got,
            CommitRow {
                store_time: Some(t),
                ..row.clone()
            }
        );

        // A commit first cached without a time takes the one added with it later.
        let second = commit(2, &[1], 2);
        insert(&c, &second).unwrap();
        insert(
            &c,
            &CommitRow {
                store_time: Some(t),
                ..second.clone()
            },
        )
        .unwrap();
        assert_eq!(get(&c, &second.id).unwrap().unwrap().store_time, Some(t));
    }

    #[test]
    fn a_damaged_row_is_an_error() {
        let (_dir, db) = test_db();
        let c = db.lock().unwrap();
        let row = commit(1, &[], 1);
        insert(&c, &row).unwrap();
        c.execute("UPDATE commits SET parents = x'0102'", []).unwrap();
        assert_eq!(get(&c, &row.id).unwrap_err().kind(), ErrorKind::Corrupt);
        assert_eq!(parents_of(&c, &row.id).unwrap_err().kind(), ErrorKind::Corrupt);
    }

    /// Other devices' names are vault data: on disk they are only inside
    /// the encrypted database (docs/SECURITY.md, "The drive's local state").
    #[test]
    fn device_names_are_not_readable_at_rest() {
        let (dir, db) = test_db();
        let name = "a-device-name-nobody-should-read-7f3a";
        db.write(|c| {
            insert(
                c,
                &CommitRow {
                    device_name: name.into(),
                    ..commit(1, &[], 1)
                },
            )
        })
        .unwrap();
        db.commit(true).unwrap();
        let got = db.read(|c| get(c, &Id([1; 32]))).unwrap().unwrap();
        assert_eq!(got.device_name, name);
        let mut files = 0;
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            files += 1;
            assert!(!bytes.windows(name.len()).any(|w| w == name.as_bytes()));
        }
        assert!(files >= 2, "the database and its log");
    }
}

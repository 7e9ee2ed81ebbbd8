//! Merge orphans (docs/SYNC.md §4.3): files that were open when a merge
//! gave their name to a new inode holding the other device's version. The
//! open inode lives on for its handles with no name; this table remembers
//! where its name was, so that at its last close (or in recovery after a
//! crash) a version written since comes back as a conflict copy there, and
//! one not written is deleted as usual.

// Used by the sync engine (docs/SYNC.md §7, step 19).
#![cfg_attr(not(test), allow(dead_code))]

use nimbus_vault::{FileId, ShortId, Timestamp};
use rusqlite::{params, Connection, OptionalExtension, Row as SqlRow};

use crate::error::Result;
use crate::types::Ino;

/// One inode that lost its names to a merge while open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Orphan {
    pub ino: Ino,
    /// The file id of the folder its name was in: found again by id
    /// (`inodes::by_file_id`) wherever that folder is now; the root when
    /// it is gone.
    pub parent: FileId,
    /// The name it had there.
    pub name: Vec<u8>,
    /// Its `dirty_epoch` when it lost its names: a larger one means it was
    /// written since, and its content must survive.
    pub epoch: u64,
    /// The time its conflict name shows: the store time of the head whose
    /// version took the name (only a label; no other device computes it).
    pub time: Timestamp,
}

fn from_sql(r: &SqlRow<'_>) -> rusqlite::Result<Orphan> {
    let parent: Vec<u8> = r.get(1)?;
    Ok(Orphan {
        ino: r.get::<_, i64>(0)? as u64,
        // The file id is written by `add` alone, 16 bytes; anything else
        // reads as the zero id, which no folder has, so it goes to the root.
        parent: parent.as_slice().try_into().map(ShortId).unwrap_or(ShortId([0; 16])),
        name: r.get(2)?,
        epoch: r.get::<_, i64>(3)? as u64,
        time: Timestamp {
            secs: r.get(4)?,
            nanos: r.get::<_, i64>(5)?.clamp(0, 999_999_999) as u32,
        },
    })
}

const COLS: &str = "o.ino, o.parent, o.name, o.epoch, o.time_s, o.time_n";

/// Records `o` (replacing an earlier record of the same inode).
pub(crate) fn add(c: &Connection, o: &Orphan) -> Result<()> {
    c.prepare_cached(
        "INSERT OR REPLACE INTO merge_orphans (ino, parent, name, epoch, time_s, time_n) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        o.ino as i64,
        o.parent.0.as_slice(),
        o.name,
        o.epoch as i64,
        o.time.secs,
        o.time.nanos as i64
    ])?;
    Ok(())
}

/// The record of inode `ino`, if it is a merge orphan.
pub(crate) fn get(c: &Connection, ino: Ino) -> Result<Option<Orphan>> {
    Ok(
        c.prepare_cached(&format!("SELECT {COLS} FROM merge_orphans o WHERE o.ino = ?1"))?
            .query_row([ino as i64], from_sql)
            .optional()?,
    )
}

/// Every merge orphan, by inode number.
pub(crate) fn all(c: &Connection) -> Result<Vec<Orphan>> {
    let mut st = c.prepare_cached(&format!("SELECT {COLS} FROM merge_orphans o ORDER BY o.ino"))?;
    let rows = st.query_map([], from_sql)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// The merge orphans written since they lost their names (their inode's
/// `dirty_epoch` is above the recorded one), by inode number: those that
/// come back as conflict copies.
pub(crate) fn written(c: &Connection) -> Result<Vec<Orphan>> {
    let mut st = c.prepare_cached(&format!(
        "SELECT {COLS} FROM merge_orphans o JOIN inodes i ON i.ino = o.ino \
         WHERE i.dirty_epoch > o.epoch ORDER BY o.ino"
    ))?;
    let rows = st.query_map([], from_sql)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Forgets the record of `ino` (linked back, or deleted).
pub(crate) fn remove(c: &Connection, ino: Ino) -> Result<()> {
    c.prepare_cached("DELETE FROM merge_orphans WHERE ino = ?1")?
        .execute([ino as i64])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::meta::db::test_db;
    use crate::meta::inodes;
    use nimbus_vault::EntryKind;

    fn file(c: &Connection, epoch: u64) -> Ino {
        let t = Timestamp { secs: 1, nanos: 0 };
        inodes::insert(
            c,
            EntryKind::File,
            0o644,
            0,
            0,
            0,
            0,
            t,
            0,
            &ShortId::random(),
            None,
            epoch,
        )
        .unwrap()
    }

    fn orphan(ino: Ino, epoch: u64) -> Orphan {
        Orphan {
            ino,
            parent: ShortId([ino as u8; 16]),
            name: format!("report {ino}.docx").into_bytes(),
            epoch,
            time: Timestamp {
                secs: 1_765_000_000,
                nanos: 42,
            },
        }
    }

    #[test]
    fn orphans_are_recorded_found_and_forgotten() {
        let (_dir, db) = test_db();
        let c = db.lock().unwrap();
        let (a, b, d) = (file(&c, 5), file(&c, 5), file(&c, 2));
        assert!(all(&c).unwrap().is_empty());
        assert_eq!(get(&c, a).unwrap(), None);

        add(&c, &orphan(b, 5)).unwrap();
        add(&c, &orphan(a, 5)).unwrap();
        add(&c, &orphan(d, 2)).unwrap();
        assert_eq!(get(&c, a).unwrap(), Some(orphan(a, 5)));
        assert_eq!(all(&c).unwrap(), vec![orphan(a, 5), orphan(b, 5), orphan(d, 2)]);
        assert!(written(&c).unwrap().is_empty(), "none written since");

        // `b` and `d` are written after they lost their names.
        for (ino, epoch) in [(b, 6), (d, 9)] {
            c.execute(
                "UPDATE inodes SET dirty_epoch = ?2 WHERE ino = ?1",
                params![ino as i64, epoch],
            )
            .unwrap();
        }
        assert_eq!(written(&c).unwrap(), vec![orphan(b, 5), orphan(d, 2)]);

        // Recorded again (a later merge): replaced, not doubled.
        add(&c, &orphan(d, 9)).unwrap();
        assert_eq!(written(&c).unwrap(), vec![orphan(b, 5)]);

        remove(&c, b).unwrap();
        remove(&c, b).unwrap();
        assert_eq!(all(&c).unwrap(), vec![orphan(a, 5), orphan(d, 9)]);
    }

    /// An orphan's record goes with its inode, however the inode goes.
    #[test]
    fn deleting_the_inode_forgets_the_orphan() {
        let (_dir, db) = test_db();
        let c = db.lock().unwrap();
        let (a, b, kept) = (file(&c, 1), file(&c, 1), file(&c, 1));
        inodes::add_nlink(&c, kept, 1).unwrap();
        for ino in [a, b, kept] {
            add(&c, &orphan(ino, 1)).unwrap();
        }
        inodes::delete(&c, a).unwrap();
        assert_eq!(get(&c, a).unwrap(), None);
        // `b` has no name left (nlink 0), `kept` has one.
        inodes::delete_unlinked(&c).unwrap();
        assert_eq!(all(&c).unwrap(), vec![orphan(kept, 1)]);
    }
}

//! Merge orphans (docs/SYNC.md §4.3): files that were open when a merge
//! gave their name to a new inode holding the other device's version. The
//! open inode lives on for its handles with no name; this table remembers
//! where its name was, so that at its last close (or in recovery after a
//! crash) a version written since comes back as a conflict copy there, and
//! one not written is deleted as usual.

use nimbus_merge::names::conflict_name;
use nimbus_vault::{EntryKind, FileId, ShortId, Timestamp};
use rusqlite::{params, Connection, OptionalExtension, Row as SqlRow};

use super::{dentries, dirty, inodes};
use crate::error::Result;
use crate::types::{Ino, ROOT};

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
#[cfg_attr(not(test), allow(dead_code))] // tests; status may list them (step 21)
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

/// A merge orphan linked back: its inode, and the folder and name it
/// got (for the kernel's calls).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Relinked {
    pub ino: Ino,
    pub parent: Ino,
    pub name: Vec<u8>,
}

/// At the last close of `ino` (the POSIX face's `release`): a merge
/// orphan written since it lost its names comes back as a conflict copy
/// ([`relink`]). One not written is left to be deleted as any nameless file is; its
/// record goes with its row (`inodes::delete`), so a handle the kernel
/// opens by number later and writes through still brings it back.
pub(crate) fn relink_if_written(c: &Connection, ino: Ino, device: &str, epoch: u64) -> Result<Option<Relinked>> {
    let Some(o) = get(c, ino)? else { return Ok(None) };
    match inodes::get_opt(c, ino)? {
        Some(row) if row.dirty_epoch > o.epoch => relink(c, &o, device, epoch),
        _ => Ok(None),
    }
}

/// At every start, before `inodes::delete_unlinked` (`rebuild::recover`):
/// no handle survives a restart, so each merge orphan gets its last
/// close here. The written ones come back as conflict copies; the
/// records of the others are dropped, and their rows go with the other
/// nameless ones.
pub(crate) fn settle_all(c: &Connection, device: &str, epoch: u64) -> Result<Vec<Relinked>> {
    let mut out = Vec::new();
    for o in written(c)? {
        out.extend(relink(c, &o, device, epoch)?);
    }
    c.prepare_cached("DELETE FROM merge_orphans")?.execute([])?;
    Ok(out)
}

/// Links orphan `o` back as `name (conflict <device> <time>)` in its old
/// folder (the root when that folder is gone), `device` being this
/// device's label (`nimbus_merge::names::device_label`) and the time the
/// recorded one. It gets a new file id (it is a new file beside the
/// version that kept the id) and is stamped with `epoch`, with its
/// folders, so the next commit uploads it. The record is forgotten; an
/// inode that has a name again (or is gone) only loses its record.
pub(crate) fn relink(c: &Connection, o: &Orphan, device: &str, epoch: u64) -> Result<Option<Relinked>> {
    remove(c, o.ino)?;
    match inodes::get_opt(c, o.ino)? {
        Some(row) if row.nlink == 0 && row.kind == EntryKind::File => {}
        _ => return Ok(None),
    }
    let parent = folder(c, &o.parent)?;
    let taken = |n: &[u8]| dentries::lookup(c, parent, n).map(|o| o.is_some()).unwrap_or(true);
    let name = conflict_name(&o.name, false, device, o.time, taken);
    inodes::set_file_id(c, o.ino, &FileId::random())?;
    dentries::add(c, parent, &name, o.ino)?;
    inodes::add_nlink(c, o.ino, 1)?;
    inodes::set_parent(c, o.ino, parent)?;
    dirty::stamp(c, o.ino, epoch)?;
    dirty::mark_dir(c, parent, epoch)?;
    Ok(Some(Relinked {
        ino: o.ino,
        parent,
        name,
    }))
}

/// The folder holding file id `id` with a name, else the root.
fn folder(c: &Connection, id: &FileId) -> Result<Ino> {
    if *id == nimbus_merge::ROOT {
        return Ok(ROOT);
    }
    Ok(inodes::by_file_id(c, id)?
        .into_iter()
        .find(|r| r.kind == EntryKind::Dir && r.nlink > 0)
        .map_or(ROOT, |r| r.ino))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::meta::db::test_db;

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

    /// An orphan's record goes with its inode when the inode is deleted;
    /// a nameless inode still recorded is never deleted at start.
    #[test]
    fn deleting_the_inode_forgets_the_orphan_and_a_recorded_one_stays() {
        let (_dir, db) = test_db();
        let c = db.lock().unwrap();
        let (a, b, kept, plain) = (file(&c, 1), file(&c, 1), file(&c, 1), file(&c, 1));
        inodes::add_nlink(&c, kept, 1).unwrap();
        for ino in [a, b, kept] {
            add(&c, &orphan(ino, 1)).unwrap();
        }
        inodes::delete(&c, a).unwrap();
        assert_eq!(get(&c, a).unwrap(), None);
        // `b` and `plain` have no name (nlink 0), `kept` has one. `plain`
        // is a file unlinked while open: it goes; `b` waits to be settled.
        inodes::delete_unlinked(&c).unwrap();
        assert!(inodes::get_opt(&c, plain).unwrap().is_none());
        assert!(inodes::get_opt(&c, b).unwrap().is_some(), "a merge orphan was deleted");
        assert_eq!(all(&c).unwrap(), vec![orphan(b, 1), orphan(kept, 1)]);
        remove(&c, b).unwrap();
        inodes::delete_unlinked(&c).unwrap();
        assert!(inodes::get_opt(&c, b).unwrap().is_none());
    }

    /// The root folder: the first inode of a new database.
    fn root(c: &Connection) {
        let t = Timestamp { secs: 1, nanos: 0 };
        let ino = inodes::insert(
            c,
            EntryKind::Dir,
            0o755,
            0,
            0,
            0,
            2,
            t,
            ROOT,
            &ShortId::random(),
            None,
            0,
        )
        .unwrap();
        assert_eq!(ino, ROOT);
    }

    fn folder(c: &Connection, name: &[u8]) -> (Ino, FileId) {
        let t = Timestamp { secs: 1, nanos: 0 };
        let id = ShortId::random();
        let ino = inodes::insert(c, EntryKind::Dir, 0o755, 0, 0, 0, 2, t, ROOT, &id, None, 0).unwrap();
        dentries::add(c, ROOT, name, ino).unwrap();
        (ino, id)
    }

    fn recorded(ino: Ino, parent: FileId, name: &str) -> Orphan {
        Orphan {
            ino,
            parent,
            name: name.as_bytes().to_vec(),
            epoch: 1,
            // 2025-12-06 05.46 UTC
            time: Timestamp {
                secs: 1_765_000_000,
                nanos: 0,
            },
        }
    }

    fn write(c: &Connection, ino: Ino, epoch: u64) {
        dirty::stamp(c, ino, epoch).unwrap();
    }

    /// At the last close, a written orphan comes back in its folder under
    /// a conflict name (the next free one), with a new file id, stamped
    /// with its folders; an unwritten one is left to be deleted.
    #[test]
    fn a_written_orphan_is_linked_back_at_its_last_close() {
        let (_dir, db) = test_db();
        let c = db.lock().unwrap();
        root(&c);
        let (dir, dir_id) = folder(&c, b"docs");
        let (written_one, unwritten, again) = (file(&c, 1), file(&c, 1), file(&c, 1));
        let old_id = inodes::get(&c, written_one).unwrap().file_id;
        add(&c, &recorded(written_one, dir_id, "report.txt")).unwrap();
        add(&c, &recorded(unwritten, dir_id, "report.txt")).unwrap();
        add(&c, &recorded(again, dir_id, "report.txt")).unwrap();
        write(&c, written_one, 4);
        write(&c, again, 4);

        assert_eq!(relink_if_written(&c, unwritten, "desk", 7).unwrap(), None);
        assert!(get(&c, unwritten).unwrap().is_some(), "kept until its row goes");
        let r = relink_if_written(&c, written_one, "desk", 7).unwrap().unwrap();
        let name = b"report (conflict desk 2025-12-06 05.46 UTC).txt".to_vec();
        assert_eq!(
            r,
            Relinked {
                ino: written_one,
                parent: dir,
                name: name.clone()
            }
        );
        assert_eq!(dentries::lookup(&c, dir, &name).unwrap(), Some(written_one));
        let row = inodes::get(&c, written_one).unwrap();
        assert_eq!((row.nlink, row.dirty_epoch), (1, 7));
        assert_ne!(row.file_id, old_id, "a conflict copy is a new file");
        assert_eq!(inodes::get(&c, dir).unwrap().dirty_epoch, 7);
        assert_eq!(inodes::get(&c, ROOT).unwrap().dirty_epoch, 7);
        assert_eq!(get(&c, written_one).unwrap(), None);

        // The name is taken now: the next copy is numbered.
        let r = relink_if_written(&c, again, "desk", 7).unwrap().unwrap();
        assert_eq!(r.name, b"report (conflict desk 2025-12-06 05.46 UTC 2).txt".to_vec());
    }

    /// At start every orphan is settled: a written one comes back (in the
    /// root when its folder is gone), the others lose their records and
    /// go with the nameless rows; their bytes are never dropped first.
    #[test]
    fn settling_at_start_links_back_the_written_and_drops_the_rest() {
        let (_dir, db) = test_db();
        let c = db.lock().unwrap();
        root(&c);
        let (w, u) = (file(&c, 1), file(&c, 1));
        add(&c, &recorded(w, ShortId::random(), "notes")).unwrap();
        add(&c, &recorded(u, ShortId::random(), "notes")).unwrap();
        write(&c, w, 3);
        let settled = settle_all(&c, "desk", 5).unwrap();
        let name = b"notes (conflict desk 2025-12-06 05.46 UTC)".to_vec();
        assert_eq!(
            settled,
            vec![Relinked {
                ino: w,
                parent: ROOT,
                name: name.clone()
            }]
        );
        assert!(all(&c).unwrap().is_empty());
        inodes::delete_unlinked(&c).unwrap();
        assert_eq!(dentries::lookup(&c, ROOT, &name).unwrap(), Some(w));
        assert!(inodes::get_opt(&c, u).unwrap().is_none());
    }
}

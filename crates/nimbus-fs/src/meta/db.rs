//! The metadata database: the working copy's inodes, names, xattrs and sync
//! state, in SQLite (WAL mode) encrypted page by page with SQLCipher.
//!
//! Writes are grouped: the one connection keeps a transaction open and a
//! flusher commits it every [`COMMIT_EVERY`], so a `tar -x` costs a few
//! statements per file rather than a disk commit per file. A crash loses at
//! most the changes of that last interval that nobody `fsync`ed, as a local
//! disk's journal would; [`Db::sync`] commits with a full sync and is what
//! `fsync` waits for.
//!
//! Lock order: a file's node lock (in `content.rs`) before the connection lock;
//! never the other way round.
//!
//! SQLite's errors become [`FsError::Db`] here, so that no file outside
//! `meta/` names the SQL library, not even `error.rs`.

use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;
use zeroize::Zeroizing;

use crate::error::{DbError, FsError, Result};

impl From<rusqlite::Error> for FsError {
    fn from(e: rusqlite::Error) -> FsError {
        let disk_full = matches!(&e, rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::DiskFull);
        FsError::Db(DbError::new(e, disk_full))
    }
}

/// How long uncommitted metadata changes may wait.
pub const COMMIT_EVERY: Duration = Duration::from_millis(50);

/// Bumped when the schema changes, with a step in [`MIGRATIONS`]: a
/// database of a known older version is migrated in place when opened; one
/// of any other version (a newer Nimbus, an unfinished creation) is
/// rebuilt from the vault by the caller (`local.rs`), which refuses when
/// that would drop changes not yet committed.
pub const SCHEMA_VERSION: i64 = 2;

/// Version 1, as it shipped. Never edit it: a new database is made by
/// running it and then every step of [`MIGRATIONS`], so a new database and
/// a migrated one are the same.
const SCHEMA_1: &str = "
CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB) WITHOUT ROWID;
CREATE TABLE inodes (
    ino INTEGER PRIMARY KEY AUTOINCREMENT,
    kind INTEGER NOT NULL,
    mode INTEGER NOT NULL,
    uid INTEGER NOT NULL,
    gid INTEGER NOT NULL,
    rdev INTEGER NOT NULL DEFAULT 0,
    size INTEGER NOT NULL DEFAULT 0,
    nlink INTEGER NOT NULL,
    atime_s INTEGER NOT NULL, atime_n INTEGER NOT NULL,
    mtime_s INTEGER NOT NULL, mtime_n INTEGER NOT NULL,
    ctime_s INTEGER NOT NULL, ctime_n INTEGER NOT NULL,
    -- folders: the folder holding it (folders have exactly one name)
    parent INTEGER NOT NULL DEFAULT 0,
    file_id BLOB NOT NULL,
    target BLOB,
    -- files: the stored content (postcard list of blob id and length) and
    -- how much of it is still valid after truncation
    content BLOB,
    base_len INTEGER NOT NULL DEFAULT 0,
    -- files: random id of the staging file holding changed blocks, or NULL
    staging BLOB,
    -- the sync epoch of the last change (see commit/mod.rs)
    dirty_epoch INTEGER NOT NULL DEFAULT 0,
    -- folders: the tree blob of their last commit
    tree_id BLOB
);
CREATE TABLE dentries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    parent INTEGER NOT NULL,
    name BLOB NOT NULL,
    ino INTEGER NOT NULL
);
CREATE UNIQUE INDEX dentries_by_name ON dentries (parent, name);
CREATE INDEX dentries_by_ino ON dentries (ino);
CREATE TABLE xattrs (ino INTEGER NOT NULL, name BLOB NOT NULL, value BLOB NOT NULL, PRIMARY KEY (ino, name)) WITHOUT ROWID;
CREATE TABLE pins (ino INTEGER PRIMARY KEY);
";

/// Version 2 (docs/SYNC.md §2.4, §4.2, §4.3): the cache of commits read
/// from the vault (`commits.rs`), the inodes that lost their names to a
/// merge while open (`orphans.rs`), and inodes by file id (the merge works
/// by file id). The `applying` marker is a key of `meta` (`state.rs`).
/// Additive only, so it migrates in place, which matters: a rebuild is
/// refused while changes are pending.
const SCHEMA_2: &str = "
CREATE TABLE IF NOT EXISTS commits (
    id BLOB PRIMARY KEY,
    -- the parents' ids, 32 bytes each, in the commit's order
    parents BLOB NOT NULL,
    generation INTEGER NOT NULL,
    device BLOB NOT NULL,
    device_name TEXT NOT NULL,
    root BLOB NOT NULL,
    -- the commit's own time (its device's clock)
    time_s INTEGER NOT NULL, time_n INTEGER NOT NULL,
    -- when it reached the store (the store's clock), once asked
    store_time_s INTEGER, store_time_n INTEGER
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS merge_orphans (
    ino INTEGER PRIMARY KEY,
    -- the file id of the folder its name was in, and that name
    parent BLOB NOT NULL,
    name BLOB NOT NULL,
    -- its dirty_epoch when it lost its names: written since if above
    epoch INTEGER NOT NULL,
    -- the time its conflict name would show
    time_s INTEGER NOT NULL, time_n INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS inodes_by_file_id ON inodes (file_id);
";

/// `MIGRATIONS[i]` takes a database from version `i + 1` to `i + 2`.
/// Each step only adds (`IF NOT EXISTS`), so running one twice is harmless.
const MIGRATIONS: &[&str] = &[SCHEMA_2];

const _: () = assert!(SCHEMA_VERSION == 1 + MIGRATIONS.len() as i64);

/// Brings a database of a known older version to [`SCHEMA_VERSION`], in
/// one transaction: a crash or a failed step leaves it as it was. Any other
/// version, or a database whose version cannot be read, is left alone for
/// the caller to judge.
fn migrate(c: &mut Connection) -> Result<()> {
    let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let Ok(from) = super::state::schema(&tx) else {
        return Ok(());
    };
    if !(1..SCHEMA_VERSION).contains(&from) {
        return Ok(());
    }
    for step in MIGRATIONS.iter().skip((from - 1) as usize) {
        tx.execute_batch(step)?;
    }
    super::state::set_schema(&tx, SCHEMA_VERSION)?;
    tx.commit()?;
    tracing::info!("the local state database was migrated from schema {from} to {SCHEMA_VERSION}");
    Ok(())
}

struct Conn {
    c: Connection,
    in_tx: bool,
    /// Files to delete once the open transaction is committed.
    doomed: Vec<PathBuf>,
}

/// The database connection, shared by every operation.
pub struct Db {
    path: PathBuf,
    conn: Mutex<Conn>,
    /// Woken when a transaction opens, so the flusher sleeps when idle.
    opened: Condvar,
    stop: Mutex<bool>,
}

/// A borrowed connection inside the open write transaction.
pub struct Tx<'a> {
    guard: MutexGuard<'a, Conn>,
}

impl std::ops::Deref for Tx<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        &self.guard.c
    }
}

fn poisoned() -> FsError {
    FsError::new(
        crate::error::ErrorKind::Io,
        "an earlier failure left the metadata database unusable; unmount and mount again",
    )
}

impl Db {
    /// Opens (or creates) the database at `path` with `key`. Returns the
    /// database and whether it was created just now.
    pub fn open(path: &Path, key: &Zeroizing<[u8; 32]>) -> Result<(Arc<Db>, bool)> {
        let mut c = Connection::open(path)?;
        let hex = Zeroizing::new(format!("x'{}'", hex::encode(key.as_ref())));
        c.pragma_update(None, "key", hex.as_str())?;
        // A wrong key (or a damaged file) shows up at the first read.
        let existing: i64 = c
            .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
            .map_err(|e| {
                FsError::new(
                    crate::error::ErrorKind::Corrupt,
                    format!(
                        "the local state database {} cannot be read with this vault's key ({e}); \
                         delete the state folder and mount again to rebuild it from the vault",
                        path.display()
                    ),
                )
            })?;
        c.pragma_update(None, "journal_mode", "WAL")?;
        c.pragma_update(None, "synchronous", "NORMAL")?;
        c.pragma_update(None, "temp_store", "MEMORY")?;
        c.pragma_update(None, "cache_size", -16384)?; // 16 MiB of decrypted pages
        let created = existing == 0;
        if created {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            tx.execute_batch(SCHEMA_1)?;
            super::state::set_schema(&tx, 1)?;
            tx.commit()?;
        }
        migrate(&mut c)?;
        let db = Arc::new(Db {
            path: path.to_path_buf(),
            conn: Mutex::new(Conn {
                c,
                in_tx: false,
                doomed: Vec::new(),
            }),
            opened: Condvar::new(),
            stop: Mutex::new(false),
        });
        Ok((db, created))
    }

    /// The schema version stored in the database.
    pub fn schema_version(&self) -> Result<i64> {
        self.read(super::state::schema)
    }

    /// Starts the thread that commits grouped writes.
    pub fn start_flusher(self: &Arc<Db>) -> std::thread::JoinHandle<()> {
        let db = Arc::clone(self);
        std::thread::Builder::new()
            .name("nimbus-db-flush".into())
            .spawn(move || db.flusher())
            .unwrap_or_else(|e| panic!("cannot start a thread: {e}"))
    }

    fn flusher(&self) {
        loop {
            {
                let Ok(guard) = self.conn.lock() else { return };
                let guard = match self.opened.wait_while(guard, |c| !c.in_tx && !self.stopped()) {
                    Ok(g) => g,
                    Err(_) => return,
                };
                drop(guard);
            }
            if self.stopped() {
                return;
            }
            std::thread::sleep(COMMIT_EVERY);
            if let Err(e) = self.commit(false) {
                tracing::error!("committing the metadata database failed: {e}");
            }
        }
    }

    fn stopped(&self) -> bool {
        self.stop.lock().map(|s| *s).unwrap_or(true)
    }

    /// Stops the flusher after a last commit.
    pub fn stop(&self) -> Result<()> {
        {
            // The flag is set under the connection's lock, the one the
            // flusher checks it under before it waits: set without it, the
            // notice could fall between that check and the wait, and the
            // flusher would sleep forever (and `shutdown` wait on it).
            let _conn = self.conn.lock().map_err(|_| poisoned())?;
            if let Ok(mut s) = self.stop.lock() {
                *s = true;
            }
        }
        self.opened.notify_all();
        self.commit(true)
    }

    /// Runs `f` inside the open write transaction (opening one if needed).
    pub fn write<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let mut g = self.conn.lock().map_err(|_| poisoned())?;
        if !g.in_tx {
            g.c.execute_batch("BEGIN IMMEDIATE")?;
            g.in_tx = true;
            self.opened.notify_one();
        }
        // A failed statement inside the group must not undo the others:
        // run it in a savepoint and roll back only that.
        g.c.execute_batch("SAVEPOINT op")?;
        match f(&g.c) {
            Ok(v) => {
                g.c.execute_batch("RELEASE op")?;
                Ok(v)
            }
            Err(e) => {
                let _ = g.c.execute_batch("ROLLBACK TO op; RELEASE op");
                Err(e)
            }
        }
    }

    /// Runs `f` on the connection; it sees uncommitted writes.
    pub fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let g = self.conn.lock().map_err(|_| poisoned())?;
        f(&g.c)
    }

    /// Holds the connection for several statements in the write transaction.
    pub fn lock(&self) -> Result<Tx<'_>> {
        let mut g = self.conn.lock().map_err(|_| poisoned())?;
        if !g.in_tx {
            g.c.execute_batch("BEGIN IMMEDIATE")?;
            g.in_tx = true;
            self.opened.notify_one();
        }
        Ok(Tx { guard: g })
    }

    /// Commits the open transaction; with `durable`, waits until it is on
    /// stable storage (what `fsync` promises).
    pub fn commit(&self, durable: bool) -> Result<()> {
        let mut g = self.conn.lock().map_err(|_| poisoned())?;
        if g.in_tx {
            g.in_tx = false;
            g.c.execute_batch("COMMIT")?;
            for p in std::mem::take(&mut g.doomed) {
                let _ = std::fs::remove_file(p);
            }
        }
        if durable {
            // With synchronous=NORMAL a commit reaches the WAL file but is
            // synced only at checkpoints; syncing the WAL makes every
            // commit so far survive power loss.
            let wal = PathBuf::from(format!("{}-wal", self.path.display()));
            match std::fs::File::open(&wal) {
                Ok(f) => f
                    .sync_data()
                    .map_err(|e| FsError::io(format!("cannot sync {}", wal.display()), e))?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(FsError::io(format!("cannot open {}", wal.display()), e)),
            }
        }
        Ok(())
    }

    /// Deletes `path` after the open transaction commits (at once if none
    /// is open), for data whose database row is being deleted.
    pub fn remove_after_commit(&self, path: PathBuf) {
        match self.conn.lock() {
            Ok(mut g) if g.in_tx => g.doomed.push(path),
            _ => {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

/// A new database in a temporary folder, for the tests of `meta/`.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) fn test_db() -> (tempfile::TempDir, Arc<Db>) {
    let dir = tempfile::tempdir().unwrap();
    let (db, _) = Db::open(&dir.path().join("metadata.db"), &Zeroizing::new([7; 32])).unwrap();
    (dir, db)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::meta::{inodes, state};
    use nimbus_vault::{EntryKind, ShortId, Timestamp};

    fn key() -> Zeroizing<[u8; 32]> {
        Zeroizing::new([7; 32])
    }

    /// A database as Nimbus made it before schema 2, with one file in it.
    fn make_v1(path: &Path, file_id: &ShortId) {
        let c = Connection::open(path).unwrap();
        let hex = format!("x'{}'", hex::encode(key().as_ref()));
        c.pragma_update(None, "key", hex.as_str()).unwrap();
        c.pragma_update(None, "journal_mode", "WAL").unwrap();
        c.execute_batch(SCHEMA_1).unwrap();
        state::set_schema(&c, 1).unwrap();
        let t = Timestamp { secs: 5, nanos: 0 };
        let root = inodes::insert(&c, EntryKind::Dir, 0o755, 0, 0, 0, 2, t, 0, &ShortId::random(), None, 0).unwrap();
        inodes::insert(&c, EntryKind::File, 0o644, 0, 0, 0, 1, t, root, file_id, None, 3).unwrap();
        state::set_epoch(&c, 4).unwrap();
    }

    fn schema_objects(db: &Db) -> Vec<(String, String, Option<String>)> {
        db.read(|c| {
            let mut st = c.prepare("SELECT type, name, sql FROM sqlite_master ORDER BY name")?;
            let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .unwrap()
    }

    #[test]
    fn a_version_1_database_is_migrated_in_place_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metadata.db");
        let fid = ShortId::random();
        make_v1(&path, &fid);

        let (db, created) = Db::open(&path, &key()).unwrap();
        assert!(!created);
        assert_eq!(db.schema_version().unwrap(), 2);
        // What was there stays, and the new index finds it.
        let rows = db.read(|c| inodes::by_file_id(c, &fid)).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!((rows[0].dirty_epoch, rows[0].kind), (3, EntryKind::File));
        assert_eq!(db.read(state::epoch).unwrap(), 4);
        let migrated = schema_objects(&db);
        drop(db);

        // Opening again changes nothing.
        let (db, _) = Db::open(&path, &key()).unwrap();
        assert_eq!(db.schema_version().unwrap(), 2);
        assert_eq!(schema_objects(&db), migrated);
        drop(db);

        // A new database has exactly the migrated one's tables and indexes.
        let (fresh, created) = Db::open(&dir.path().join("new.db"), &key()).unwrap();
        assert!(created);
        assert_eq!(fresh.schema_version().unwrap(), SCHEMA_VERSION);
        assert_eq!(schema_objects(&fresh), migrated);
        for name in ["commits", "merge_orphans", "inodes_by_file_id"] {
            assert!(migrated.iter().any(|(_, n, _)| n == name), "{name}");
        }
    }

    /// A step that fails leaves the database as it was: version 1, none
    /// of the step's tables.
    #[test]
    fn a_failed_migration_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metadata.db");
        make_v1(&path, &ShortId::random());
        {
            let c = Connection::open(&path).unwrap();
            let hex = format!("x'{}'", hex::encode(key().as_ref()));
            c.pragma_update(None, "key", hex.as_str()).unwrap();
            // The index of step 2 cannot be made without its table, after
            // the step's tables were.
            c.execute_batch("DROP TABLE inodes").unwrap();
        }
        assert!(Db::open(&path, &key()).is_err());
        let c = Connection::open(&path).unwrap();
        let hex = format!("x'{}'", hex::encode(key().as_ref()));
        c.pragma_update(None, "key", hex.as_str()).unwrap();
        assert_eq!(state::schema(&c).unwrap(), 1);
        let tables: i64 = c
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name IN ('commits', 'merge_orphans')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(tables, 0);
    }

    /// Versions this Nimbus does not know are left for `local.rs` to
    /// rebuild, never migrated.
    #[test]
    fn unknown_versions_are_not_migrated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metadata.db");
        make_v1(&path, &ShortId::random());
        for v in [0, 999] {
            {
                let (db, _) = Db::open(&path, &key()).unwrap();
                db.write(|c| state::set_schema(c, v)).unwrap();
                db.commit(true).unwrap();
            }
            let (db, _) = Db::open(&path, &key()).unwrap();
            assert_eq!(db.schema_version().unwrap(), v);
        }
    }
}

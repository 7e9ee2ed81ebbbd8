//! The drive's local state, shared by the POSIX face (`fs/`) and the
//! commit engine (`commit/`): the vault, the runtime, the metadata
//! database, the blob caches, the staging key and folder, and the current
//! change epoch.
//!
//! [`Local::open`] finds or makes it in the state folder, and decides
//! whether the database can be kept: one of another schema is rebuilt from
//! the vault. One the vault moved past while the drive was closed is kept:
//! the sync loop's first poll fast-forwards or merges it (docs/SYNC.md
//! §4.2).

use nimbus_vault::{Timestamp, Vault};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::cache::blobs::BlobStore;
use crate::cache::decoded::DecodedCache;
use crate::cache::sealed_file::SlotKey;
use crate::error::{ErrorKind, FsError, Result};
use crate::meta::{db::SCHEMA_VERSION, dirty, pins, state, Db};

pub(crate) struct Local {
    pub vault: Vault,
    pub rt: tokio::runtime::Handle,
    pub db: Arc<Db>,
    pub blobs: Arc<BlobStore>,
    /// The cipher of staging files.
    pub key: SlotKey,
    pub state_dir: PathBuf,
    pub staging_dir: PathBuf,
    /// The current change epoch (see `commit/mod.rs`).
    pub epoch: AtomicU64,
    /// This device's wall clock.
    pub clock: Clock,
}

/// This device's wall clock: the system's, moved by a skew that tests set
/// to play a device whose clock is days off (docs/SYNC.md §6.2). Only the
/// times stamped on files and commits read it; the merge never compares
/// device clocks (§3.4).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Clock {
    pub skew_secs: i64,
}

impl Clock {
    pub fn now(&self) -> Timestamp {
        let t = Timestamp::now();
        Timestamp {
            secs: t.secs.saturating_add(self.skew_secs),
            nanos: t.nanos,
        }
    }
}

/// How much the caches may hold.
pub(crate) struct CacheLimits {
    /// Decoded blobs kept in memory, in bytes.
    pub mem: usize,
    /// The disk cache of fetched blobs, in bytes.
    pub disk: u64,
    /// The decoded-block cache, in bytes.
    pub decoded: u64,
    /// Cache blobs on disk even though the store is a local folder.
    pub cache_local_store: bool,
}

/// What [`Local::open`] found.
pub(crate) struct Opened {
    pub local: Local,
    /// The database was made just now: fill it from the vault.
    pub created: bool,
}

impl Local {
    pub fn open(vault: Vault, rt: tokio::runtime::Handle, dir: &Path, limits: &CacheLimits) -> Result<Opened> {
        std::fs::create_dir_all(dir)
            .map_err(|e| FsError::io(format!("cannot create the state folder {}", dir.display()), e))?;
        let staging_dir = dir.join("staging");
        std::fs::create_dir_all(&staging_dir)
            .map_err(|e| FsError::io(format!("cannot create {}", staging_dir.display()), e))?;
        let (db, created) = open_db(&vault, dir, &staging_dir)?;
        if created {
            // Staging of an older database is meaningless now.
            let _ = std::fs::remove_dir_all(&staging_dir);
            std::fs::create_dir_all(&staging_dir)
                .map_err(|e| FsError::io(format!("cannot create {}", staging_dir.display()), e))?;
        }
        let cache_dir = if vault.backend().is_local() && !limits.cache_local_store {
            None
        } else {
            Some(dir.join("cache"))
        };
        let blobs = Arc::new(BlobStore::new(
            vault.clone(),
            rt.clone(),
            limits.mem,
            cache_dir,
            limits.disk,
            Some(DecodedCache::open(
                &dir.join("decoded"),
                &vault.local_state_key("decoded-cache"),
                limits.decoded,
            )?),
        )?);
        let local = Local {
            key: SlotKey::new(&vault.local_state_key("staging")),
            vault,
            rt,
            db,
            blobs,
            state_dir: dir.to_path_buf(),
            staging_dir,
            epoch: AtomicU64::new(1),
            clock: Clock::default(),
        };
        Ok(Opened { local, created })
    }

    pub fn cur_epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Tells the blob cache which blobs pinned files hold, so eviction
    /// keeps them.
    pub fn refresh_pins(&self) -> Result<()> {
        let ids = self.db.read(pins::pinned_blobs)?;
        self.blobs.set_pinned(ids);
        Ok(())
    }
}

/// A drive's local state over a new vault in memory, for unit tests: the
/// state, the folder it lives in and the runtime (keep both alive).
#[cfg(test)]
pub(crate) fn test_local() -> (Local, tempfile::TempDir, tokio::runtime::Runtime) {
    #![allow(clippy::unwrap_used)]
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mem = Arc::new(nimbus_backend::MemoryBackend::new());
    let (vault, _) = rt
        .block_on(Vault::create(
            mem,
            b"pw",
            nimbus_vault::VaultParams::default(),
            nimbus_vault::KdfParams::minimum(),
        ))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let limits = CacheLimits {
        mem: 8 << 20,
        disk: 1 << 30,
        decoded: 1 << 30,
        cache_local_store: false,
    };
    let opened = Local::open(vault, rt.handle().clone(), &dir.path().join("vault"), &limits).unwrap();
    (opened.local, dir, rt)
}

/// Opens the metadata database, or makes it anew when the one there was
/// made by another version of Nimbus. Returns it, and whether it is new.
/// A database the vault moved past while the drive was closed (another
/// device, a `nimbus put`, a restore) is kept, with its changes: the sync
/// loop's first poll takes the newer snapshots in, by a fast-forward or a
/// merge, as it does while mounted. (Rebuilding from the newest snapshot
/// instead would throw away this device's own commits that no other
/// device has merged.)
fn open_db(vault: &Vault, dir: &Path, staging_dir: &Path) -> Result<(Arc<Db>, bool)> {
    let db_path = dir.join("metadata.db");
    let db_key = vault.local_state_key("metadata-database");
    let (mut db, mut created) = Db::open(&db_path, &db_key)?;
    if !created && db.schema_version()? != SCHEMA_VERSION {
        refuse_to_drop_changes(&db, staging_dir, dir)?;
        tracing::warn!("the local state was made by another version of Nimbus; rebuilding it from the vault");
        drop(db);
        remove_db(&db_path)?;
        (db, created) = Db::open(&db_path, &db_key)?;
    }
    Ok((db, created))
}

/// Fails, saying what to do, when a database about to be rebuilt (one
/// made by another version of Nimbus) still holds changes not yet in the
/// vault: rebuilding would delete them with the staging folder. Asks the
/// database as this version knows it; when its schema is too different
/// for that, any staged bytes count as changes.
fn refuse_to_drop_changes(db: &Db, staging_dir: &Path, state_dir: &Path) -> Result<()> {
    let pending = db
        .read(|c| dirty::any_change(c, state::committed_epoch(c)?))
        .unwrap_or_else(|_| {
            std::fs::read_dir(staging_dir)
                .map(|rd| rd.flatten().any(|e| e.metadata().is_ok_and(|m| m.len() > 0)))
                .unwrap_or(false)
        });
    if pending {
        return Err(FsError::new(
            ErrorKind::NotSupported,
            format!(
                "the local state of this drive in {} was made by another version of Nimbus and holds changes \
                 not yet uploaded to the vault, so it is not rebuilt (that would lose them): mount the drive \
                 with the version of Nimbus that made it, so the changes upload, then mount it with this one; \
                 or, to discard those changes, move that folder aside and mount again",
                state_dir.display()
            ),
        ));
    }
    Ok(())
}

fn remove_db(path: &Path) -> Result<()> {
    for suffix in ["", "-wal", "-shm"] {
        let p = PathBuf::from(format!("{}{suffix}", path.display()));
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(FsError::io(format!("cannot remove {}", p.display()), e)),
        }
    }
    Ok(())
}

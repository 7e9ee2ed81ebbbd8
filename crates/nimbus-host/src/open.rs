//! Opening a drive on this device: the one recipe `nimbusd` and a
//! standalone `nimbus mount` both follow, from an open store to a served
//! mount:
//!
//! 1. `read_config` (says "no vault" before the password costs a key
//!    derivation), then `Vault::open` with the password;
//! 2. the rollback check against this device's memory of the refs
//!    ([`device::check_rollback`]);
//! 3. the vault's mount lock (`drive.lock`: one mount per vault and
//!    device), taken before the local state is touched;
//! 4. the device id and name, then `Fs::load` on `<state>/vaults/<id>/drive`, with
//!    every own commit noted in the rollback memory;
//! 5. [`mount`]: the working copy in a [`Slot`], served by `nimbus-fuse`.

use nimbus_backend::DynBackend;
use nimbus_fs::{Ctx, Fs, FsError, FsOptions, Slot};
use nimbus_vault::{ShortId, Vault, VaultError};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::device::{self, LockError, RollbackError};

/// A drive's settings on this device.
#[derive(Debug, Clone)]
pub struct DriveOptions {
    /// The local state folder (device ids, rollback memory, working copies).
    pub state_dir: PathBuf,
    /// Quiet time before changes are committed.
    pub commit_delay: Duration,
    /// Size limit of the cache of downloaded data, in bytes.
    pub cache_limit: u64,
    /// Uploads paused from the start.
    pub paused: bool,
    /// How often to look for other devices' changes when idle; `None`
    /// chooses by the store (docs/SYNC.md §1.3).
    pub poll_interval: Option<Duration>,
}

/// An opened drive: its working copy, its vault's id, and the mount lock
/// when [`open_drive`] took it (held until dropped).
pub struct Opened {
    pub fs: Arc<Fs>,
    pub vault_id: ShortId,
    pub lock: Option<std::fs::File>,
}

/// Why a drive did not open. Each step keeps its own error, so a caller
/// can tell a wrong password from an unreachable store or a busy vault.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The store (reading the vault's config).
    #[error(transparent)]
    Vault(#[from] VaultError),
    /// The key derivation and key slots: a wrong password, mostly.
    #[error("could not open the vault")]
    Unlock(#[source] VaultError),
    /// The refs went back in time, or this device's memory of them is
    /// unreadable.
    #[error(transparent)]
    Rollback(#[from] RollbackError),
    /// This device's files in the state folder.
    #[error(transparent)]
    State(#[from] std::io::Error),
    /// The vault is mounted on this device already.
    #[error(transparent)]
    Locked(#[from] LockError),
    /// The working copy's local state.
    #[error("could not open the drive's local state")]
    Load(#[source] FsError),
}

/// The mount itself failed (no FUSE, not permitted, no such folder).
#[derive(Debug, thiserror::Error)]
#[error(
    "could not mount at {}: {error}. Is FUSE installed (the fuse3 package) and /dev/fuse usable?",
    .mp.display()
)]
pub struct MountError {
    pub mp: PathBuf,
    pub error: std::io::Error,
}

/// Who runs this process: the owner of the drive's files.
pub fn current_user() -> Ctx {
    Ctx {
        uid: rustix::process::getuid().as_raw(),
        gid: rustix::process::getgid().as_raw(),
    }
}

/// Opens the vault in `backend` with `password` and its working copy on
/// this device (steps 1 to 4). `lock_at`: take the vault's mount lock for
/// a mount there; `None` when the caller holds it already.
pub fn open_drive(
    rt: &tokio::runtime::Handle,
    backend: DynBackend,
    password: &[u8],
    opts: &DriveOptions,
    lock_at: Option<&Path>,
) -> Result<Opened, OpenError> {
    rt.block_on(nimbus_vault::read_config(&backend))?;
    let vault = rt.block_on(Vault::open(backend, password)).map_err(OpenError::Unlock)?;
    crate::prune_env::apply(&vault);
    let vid = vault.config().vault_id;
    let seen = rt.block_on(device::check_rollback(&vault, &opts.state_dir))?;
    let lock = lock_at
        .map(|mp| device::lock_vault(&opts.state_dir, &vid, mp))
        .transpose()?;
    let dev = device::device_id(&opts.state_dir, &vid)?;
    let mut fo = FsOptions::new(device::vault_dir(&opts.state_dir, &vid).join("drive"), dev);
    fo.device_name = device::device_name(&opts.state_dir, &vid);
    fo.ref_seen = seen.get(&dev).copied().unwrap_or(0);
    fo.commit_delay = opts.commit_delay;
    fo.cache_limit = opts.cache_limit;
    fo.owner = current_user();
    fo.poll = opts.poll_interval;
    let state = opts.state_dir.clone();
    fo.on_commit = Some(Box::new(move |_cid, seq| {
        // Remember the ref's update number, so a rollback is noticed.
        device::note_own_commit(&state, &vid, dev, seq)
    }));
    let state = opts.state_dir.clone();
    fo.on_refs_seen = Some(Box::new(move |seen| {
        // Other devices' newer refs, seen by a poll: remembered like our
        // own, so a store that goes back to older ones is noticed.
        if let Err(e) = device::save_seen(&state, &vid, seen) {
            tracing::warn!("{e}");
        }
    }));
    let fs = Fs::load(vault, rt.clone(), fo).map_err(OpenError::Load)?;
    fs.set_paused(opts.paused);
    Ok(Opened {
        fs,
        vault_id: vid,
        lock,
    })
}

/// Mounts what `slot` holds at `mp` (step 5): the source shown by `mount`
/// is `nimbus:<vault id>` (`nimbus:locked` while the vault is unknown),
/// which [`nimbus_fuse::mounts::is_nimbus_mount`] looks for. When the
/// mount fails, the working copy in the slot is shut down.
pub fn mount(
    slot: &Arc<Slot>,
    mp: &Path,
    allow_other: bool,
    vault_id: Option<&ShortId>,
) -> Result<nimbus_fuse::BackgroundSession, MountError> {
    let opts = nimbus_fuse::MountOptions {
        allow_other,
        fs_name: format!(
            "nimbus:{}",
            vault_id.map(|v| v.to_hex()).unwrap_or_else(|| "locked".into())
        ),
        ..Default::default()
    };
    nimbus_fuse::mount_slot(slot.clone(), mp, &opts).map_err(|error| {
        if let Some(fs) = slot.take() {
            let _ = fs.shutdown();
        }
        MountError {
            mp: mp.to_path_buf(),
            error,
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use nimbus_backend::MemoryBackend;
    use nimbus_vault::{KdfParams, VaultParams};

    /// The recipe opens a drive, keeps a second open of the same vault on
    /// this device out while the first holds the mount lock, and says a
    /// wrong password as such.
    #[test]
    fn opens_once_per_device_and_says_a_wrong_password() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let mem = Arc::new(MemoryBackend::new());
        rt.block_on(Vault::create(
            mem.clone(),
            b"pw",
            VaultParams::default(),
            KdfParams::minimum(),
        ))
        .unwrap();
        let state = tempfile::tempdir().unwrap();
        let opts = DriveOptions {
            state_dir: state.path().to_path_buf(),
            commit_delay: Duration::from_secs(5),
            cache_limit: 1 << 20,
            paused: false,
            poll_interval: None,
        };
        let mp = state.path().join("mnt");

        let wrong = open_drive(rt.handle(), mem.clone(), b"not it", &opts, Some(&mp));
        assert!(
            matches!(wrong, Err(OpenError::Unlock(VaultError::WrongPassword))),
            "{:?}",
            wrong.err()
        );

        let first = open_drive(rt.handle(), mem.clone(), b"pw", &opts, Some(&mp)).unwrap();
        assert!(first.lock.is_some());
        assert_eq!(
            device::mounted_here(state.path(), &first.vault_id).as_deref(),
            Some(format!("at {} by process {}", mp.display(), std::process::id()).as_str())
        );
        let second = open_drive(rt.handle(), mem.clone(), b"pw", &opts, Some(&mp));
        match second {
            Err(OpenError::Locked(LockError::Held { holder })) => assert!(holder.contains("mnt"), "{holder}"),
            other => panic!("a second open was not refused: {:?}", other.err()),
        }

        first.fs.shutdown().unwrap();
        drop(first);
        let again = open_drive(rt.handle(), mem, b"pw", &opts, Some(&mp)).unwrap();
        again.fs.shutdown().unwrap();
    }

    /// The drive's commits carry this device's name as the state folder
    /// holds it when the drive opens.
    #[test]
    fn the_opened_drive_commits_under_the_device_name() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let mem = Arc::new(MemoryBackend::new());
        let (vault, _) = rt
            .block_on(Vault::create(
                mem.clone(),
                b"pw",
                VaultParams::default(),
                KdfParams::minimum(),
            ))
            .unwrap();
        let state = tempfile::tempdir().unwrap();
        device::rename_device(state.path(), &vault.config().vault_id, "Ana's desk").unwrap();
        let opts = DriveOptions {
            state_dir: state.path().to_path_buf(),
            commit_delay: Duration::from_secs(3600),
            cache_limit: 1 << 20,
            paused: false,
            poll_interval: None,
        };
        let opened = open_drive(rt.handle(), mem, b"pw", &opts, None).unwrap();
        let (_, fh) = opened.fs.create(Ctx::ROOT, nimbus_fs::ROOT, b"f.txt", 0o644).unwrap();
        opened.fs.write(fh, 0, b"named").unwrap();
        opened.fs.release(fh).unwrap();
        opened.fs.sync_now().unwrap();
        let (_, head) = rt.block_on(vault.head()).unwrap().unwrap();
        assert_eq!(head.device_name, "Ana's desk");
        opened.fs.shutdown().unwrap();
    }

    /// A drive opened here polls at the interval asked for, takes in what
    /// another device commits, and remembers that device's newer ref in
    /// this device's memory of refs seen (the rollback check's).
    #[test]
    fn the_opened_drive_polls_and_remembers_the_refs_it_saw() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let mem = Arc::new(MemoryBackend::new());
        let (vault, _) = rt
            .block_on(Vault::create(
                mem.clone(),
                b"pw",
                VaultParams::default(),
                KdfParams::minimum(),
            ))
            .unwrap();
        let vid = vault.config().vault_id;
        let (state_a, state_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let opts = |dir: &Path| DriveOptions {
            state_dir: dir.to_path_buf(),
            commit_delay: Duration::from_secs(3600),
            cache_limit: 1 << 20,
            paused: false,
            poll_interval: Some(Duration::from_millis(50)),
        };
        let a = open_drive(rt.handle(), mem.clone(), b"pw", &opts(state_a.path()), None).unwrap();
        let b = open_drive(rt.handle(), mem, b"pw", &opts(state_b.path()), None).unwrap();
        let dev_a = device::device_id(state_a.path(), &vid).unwrap();
        let (_, fh) = a.fs.create(Ctx::ROOT, nimbus_fs::ROOT, b"f.txt", 0o644).unwrap();
        a.fs.write(fh, 0, b"from a").unwrap();
        a.fs.release(fh).unwrap();
        a.fs.sync_now().unwrap();
        let end = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let seen = device::load_seen(state_b.path(), &vid).unwrap();
            let taken_in = b.fs.lookup(nimbus_fs::ROOT, b"f.txt").is_ok();
            if seen.get(&dev_a) == Some(&1) && taken_in {
                break;
            }
            assert!(
                std::time::Instant::now() < end,
                "b did not poll: {seen:?}, a is {dev_a:?}, taken in: {taken_in}, {:?}",
                b.fs.sync_state()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        a.fs.shutdown().unwrap();
        b.fs.shutdown().unwrap();
    }
}

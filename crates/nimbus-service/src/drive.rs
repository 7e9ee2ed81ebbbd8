//! One drive as the service runs it: its store, its vault, its working
//! copy (`nimbus_fs::Fs`) in a lockable [`Slot`], and its FUSE session.
//! Opening and mounting follow `nimbus_host`'s recipe, as `nimbus mount`
//! does; what is the service's own is the lifecycle around it (mount
//! locked, unlock, lock, unmount), the transfer rates and the status.
//!
//! Every method here blocks (opening a vault, committing, unmounting): the
//! service calls them from `spawn_blocking`. Lock order: `inner` before
//! nothing; it is never held across a call into the store, except while
//! mounting or unlocking, which the `busy` flag serialises per drive.

use nimbus_api::{ApiError, DriveState, DriveStatus, ErrorCode, Transfers};
use nimbus_backend::{NetLimits, StoreAccess, StoreCredentials, StoreUrl};
use nimbus_fs::{Fs, Slot};
use nimbus_fuse::mounts;
use nimbus_host::{DriveOptions, Opened};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

use crate::config::DriveConfig;
use crate::errors::{from_backend, from_fs, from_open, from_vault};

pub struct Drive {
    cfg: Mutex<DriveConfig>,
    url: StoreUrl,
    state_dir: PathBuf,
    rt: tokio::runtime::Handle,
    limits: Arc<NetLimits>,
    inner: Mutex<Inner>,
    /// A mount, unlock, lock or unmount is running.
    busy: AtomicBool,
    /// The last lock or unmount left changes staged that the store had not
    /// taken yet (they upload at the next unlock or mount).
    left_staged: AtomicBool,
    /// How many files the drive set aside when its status was last read
    /// (their changes here are damaged; see `nimbus_fs::sync`).
    set_aside: std::sync::atomic::AtomicUsize,
    rates: Mutex<Rates>,
}

#[derive(Default)]
struct Inner {
    slot: Option<Arc<Slot>>,
    session: Option<nimbus_fuse::BackgroundSession>,
    lock_file: Option<std::fs::File>,
    starting: bool,
    /// Why the drive could not start or unlock, for the person.
    error: Option<String>,
    /// The credentials it was opened with, for unlocking again (kept in
    /// memory only; wiped when the drive is removed).
    creds: Option<StoreCredentials>,
    /// The vault's id, once the drive has been opened in this run: it
    /// names this device's folder in the local state (device id, name).
    vault_id: Option<nimbus_vault::ShortId>,
}

/// Samples of the byte counters, for rates over the last seconds.
#[derive(Default)]
struct Rates {
    samples: std::collections::VecDeque<(Instant, u64, u64)>,
}

const RATE_WINDOW: Duration = Duration::from_secs(5);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Frees `busy` when dropped.
struct Busy<'a>(&'a AtomicBool);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

impl Drive {
    pub fn new(cfg: DriveConfig, state_dir: PathBuf, rt: tokio::runtime::Handle) -> Result<Arc<Drive>, ApiError> {
        let url = StoreUrl::parse(&cfg.store).map_err(|e| ApiError::new(ErrorCode::Invalid, e.to_string()))?;
        let limits = Arc::new(NetLimits::new(cfg.max_requests));
        limits.set_upload_limit(cfg.upload_limit);
        limits.set_download_limit(cfg.download_limit);
        Ok(Arc::new(Drive {
            cfg: Mutex::new(cfg),
            url,
            state_dir,
            rt,
            limits,
            inner: Mutex::new(Inner::default()),
            busy: AtomicBool::new(false),
            left_staged: AtomicBool::new(false),
            set_aside: std::sync::atomic::AtomicUsize::new(0),
            rates: Mutex::new(Rates::default()),
        }))
    }

    pub fn name(&self) -> String {
        lock(&self.cfg).name.clone()
    }

    pub fn config(&self) -> DriveConfig {
        lock(&self.cfg).clone()
    }

    pub fn url(&self) -> &StoreUrl {
        &self.url
    }

    pub fn update_config(&self, f: impl FnOnce(&mut DriveConfig)) {
        f(&mut lock(&self.cfg));
    }

    fn begin(&self) -> Result<Busy<'_>, ApiError> {
        if self.busy.swap(true, Ordering::SeqCst) {
            return Err(ApiError::new(
                ErrorCode::Busy,
                format!(
                    "drive `{}` is busy mounting, unlocking or unmounting; try again in a moment",
                    self.name()
                ),
            ));
        }
        Ok(Busy(&self.busy))
    }

    pub fn is_mounted(&self) -> bool {
        lock(&self.inner).session.is_some()
    }

    pub fn is_locked(&self) -> bool {
        lock(&self.inner).slot.as_ref().is_none_or(|s| s.is_locked())
    }

    /// The unlocked working copy, if there is one.
    fn fs(&self) -> Option<Arc<Fs>> {
        lock(&self.inner).slot.as_ref().and_then(|s| s.peek())
    }

    /// What the drive's sync loop knows; empty while locked or unmounted.
    pub fn sync_state(&self) -> nimbus_fs::SyncState {
        self.fs().map(|f| f.sync_state()).unwrap_or_default()
    }

    /// Renames this device in the open working copy, so its next commit
    /// carries the name; a drive not open takes the saved name when it
    /// opens.
    pub fn set_device_name(&self, name: &str) {
        if let Some(fs) = self.fs() {
            fs.set_device_name(name);
        }
    }

    /// The reports of other devices' changes applied since the last call.
    pub fn take_merge_reports(&self) -> Vec<nimbus_fs::MergeReport> {
        self.fs().map(|f| f.take_merge_reports()).unwrap_or_default()
    }

    /// The conflict copies in the drive, by path.
    pub fn conflicts(&self) -> Result<Vec<nimbus_fs::ConflictCopy>, ApiError> {
        self.fs_or_locked()?.conflicts().map_err(from_fs)
    }

    fn fs_or_locked(&self) -> Result<Arc<Fs>, ApiError> {
        if !self.is_mounted() {
            return Err(ApiError::new(
                ErrorCode::Invalid,
                format!(
                    "drive `{}` is not mounted; mount it first (`nimbus drive mount {}`)",
                    self.name(),
                    self.name()
                ),
            ));
        }
        self.fs().ok_or_else(|| {
            ApiError::new(
                ErrorCode::Locked,
                format!(
                    "drive `{}` is locked; unlock it first (`nimbus unlock {}`)",
                    self.name(),
                    self.name()
                ),
            )
        })
    }

    /// Opens the vault and its working copy on this device, taking the
    /// vault's mount lock for a mount at `lock_at` unless that is `None`.
    fn open_fs(&self, password: &str, creds: &StoreCredentials, lock_at: Option<&Path>) -> Result<Opened, ApiError> {
        let cfg = self.config();
        let access = StoreAccess {
            credentials: clone_creds(creds),
            limits: Some(self.limits.clone()),
        };
        let backend = nimbus_backend::open_store_with(&self.url, &access).map_err(from_backend)?;
        let opts = DriveOptions {
            state_dir: self.state_dir.clone(),
            commit_delay: Duration::from_secs(cfg.commit_delay_secs),
            cache_limit: cfg.cache_size_mib << 20,
            paused: cfg.paused,
            poll_interval: (cfg.poll_interval_secs > 0).then(|| Duration::from_secs(cfg.poll_interval_secs)),
        };
        nimbus_host::open_drive(&self.rt, backend, password.as_bytes(), &opts, lock_at).map_err(from_open)
    }

    /// Mounts the drive, unlocked with `password`, or locked (waiting for
    /// [`Drive::unlock`]) without one.
    pub fn mount(&self, password: Option<&str>, creds: StoreCredentials) -> Result<(), ApiError> {
        let _busy = self.begin()?;
        if self.is_mounted() {
            return Ok(());
        }
        lock(&self.inner).starting = true;
        let res = self.mount_inner(password, creds);
        let mut i = lock(&self.inner);
        i.starting = false;
        i.error = res.as_ref().err().map(|e| e.message.clone());
        res
    }

    fn mount_inner(&self, password: Option<&str>, creds: StoreCredentials) -> Result<(), ApiError> {
        let cfg = self.config();
        let mp = cfg.mount.clone();
        if mounts::clear_stale(&mp) {
            tracing::warn!("{}: a stopped drive was left mounted here; unmounted it", mp.display());
        }
        if !mp.exists() {
            std::fs::create_dir_all(&mp).map_err(|e| {
                ApiError::new(
                    ErrorCode::Local,
                    format!("cannot create the mount point {}: {e}", mp.display()),
                )
            })?;
        }
        if !mp.is_dir() {
            return Err(ApiError::new(
                ErrorCode::Local,
                format!("the mount point {} is not a folder", mp.display()),
            ));
        }
        if mounts::is_nimbus_mount(&mp) {
            return Err(ApiError::new(
                ErrorCode::Busy,
                format!(
                    "{} is already a Nimbus drive; unmount it first (`nimbus unmount {}`)",
                    mp.display(),
                    mp.display()
                ),
            ));
        }
        let (fs, vid, lock_file) = match password {
            Some(pw) => {
                let o = self.open_fs(pw, &creds, Some(&mp))?;
                (Some(o.fs), Some(o.vault_id), o.lock)
            }
            None => (None, None, None),
        };
        let slot = Slot::new(fs, nimbus_host::current_user());
        let session = nimbus_host::mount(&slot, &mp, cfg.allow_other, vid.as_ref())
            .map_err(|e| ApiError::new(ErrorCode::Local, e.to_string()))?;
        let mut i = lock(&self.inner);
        i.slot = Some(slot);
        i.session = Some(session);
        i.lock_file = lock_file.or(i.lock_file.take());
        i.creds = Some(creds);
        if vid.is_some() {
            i.vault_id = vid;
        }
        tracing::info!(
            "drive `{}` mounted at {}{}",
            cfg.name,
            mp.display(),
            if password.is_none() { " (locked)" } else { "" }
        );
        Ok(())
    }

    /// Opens the vault again with `password` and serves the drive.
    pub fn unlock(&self, password: &str, creds: Option<StoreCredentials>) -> Result<(), ApiError> {
        let _busy = self.begin()?;
        let (slot, known) = {
            let i = lock(&self.inner);
            (i.slot.clone(), i.creds.as_ref().map(clone_creds))
        };
        let Some(slot) = slot else {
            return Err(ApiError::new(
                ErrorCode::Invalid,
                format!("drive `{}` is not mounted", self.name()),
            ));
        };
        if !slot.is_locked() {
            return Ok(());
        }
        let creds = creds.or(known).unwrap_or_default();
        // The mount lock stays taken while the drive is mounted locked
        // after an unlock; the first unlock of a drive mounted locked
        // takes it.
        let mp = self.config().mount;
        let lock_at = lock(&self.inner).lock_file.is_none().then_some(mp.as_path());
        let opened = match self.open_fs(password, &creds, lock_at) {
            Ok(o) => o,
            // The vault mounted elsewhere on this device is not this
            // drive's error: the caller hears of it, the status does not.
            Err(e) if e.code == ErrorCode::Busy => return Err(e),
            Err(e) => {
                lock(&self.inner).error = Some(e.message.clone());
                return Err(e);
            }
        };
        let mut i = lock(&self.inner);
        if let Some(f) = opened.lock {
            i.lock_file = Some(f);
        }
        i.error = None;
        i.creds = Some(creds);
        i.vault_id = Some(opened.vault_id);
        slot.put(opened.fs);
        self.left_staged.store(false, Ordering::SeqCst);
        tracing::info!("drive `{}` unlocked", self.name());
        Ok(())
    }

    /// Takes the working copy out of the mount and commits what is pending,
    /// waiting at most `wait`. The vault key leaves memory once that
    /// commit ends (at once when nothing is pending). Returns whether
    /// everything reached the vault in time.
    pub fn lock(&self, wait: Duration) -> Result<bool, ApiError> {
        let _busy = self.begin()?;
        let slot = lock(&self.inner).slot.clone();
        let Some(fs) = slot.and_then(|s| s.take()) else {
            return Ok(true);
        };
        tracing::info!("drive `{}` locked", self.name());
        let all_in = finish(fs, wait, &self.name());
        self.left_staged.store(!all_in, Ordering::SeqCst);
        Ok(all_in)
    }

    /// Checks a password against the vault's key slots without opening it.
    pub fn check_password(&self, password: &str) -> Result<(), ApiError> {
        let creds = lock(&self.inner).creds.as_ref().map(clone_creds).unwrap_or_default();
        let access = StoreAccess {
            credentials: creds,
            limits: Some(self.limits.clone()),
        };
        let backend = nimbus_backend::open_store_with(&self.url, &access).map_err(from_backend)?;
        let config = self
            .rt
            .block_on(nimbus_vault::read_config(&backend))
            .map_err(from_vault)?;
        config.unlock_with_password(password.as_bytes()).map_err(from_vault)?;
        Ok(())
    }

    /// Commits, unmounts and lets go of the vault. `lazy`: unmount even
    /// with files open (for stopping the service).
    pub fn unmount(&self, wait: Duration, lazy: bool) -> Result<bool, ApiError> {
        let _busy = self.begin()?;
        let mp = self.config().mount;
        let session = lock(&self.inner).session.take();
        let Some(session) = session else {
            return Ok(true);
        };
        if let Err(e) = mounts::unmount(&mp, lazy) {
            lock(&self.inner).session = Some(session);
            return Err(ApiError::new(ErrorCode::Busy, e.to_string()));
        }
        // The session ends once the kernel lets go of the mount.
        let _ = session.join();
        let slot = lock(&self.inner).slot.take();
        let done = match slot.and_then(|s| s.take()) {
            Some(fs) => finish(fs, wait, &self.name()),
            None => true,
        };
        lock(&self.inner).lock_file = None;
        self.left_staged.store(!done, Ordering::SeqCst);
        tracing::info!("drive `{}` unmounted from {}", self.name(), mp.display());
        Ok(done)
    }

    pub fn set_paused(&self, paused: bool) {
        self.update_config(|c| c.paused = paused);
        if let Some(fs) = self.fs() {
            fs.set_paused(paused);
        }
    }

    pub fn set_limits(&self, up: Option<u64>, down: Option<u64>) {
        self.limits.set_upload_limit(up);
        self.limits.set_download_limit(down);
        self.update_config(|c| {
            c.upload_limit = up;
            c.download_limit = down;
        });
    }

    pub fn sync_now(&self) -> Result<(), ApiError> {
        self.fs_or_locked()?.sync_now().map_err(from_fs)
    }

    pub fn pin(&self, path: &str, on: bool) -> Result<(), ApiError> {
        let fs = self.fs_or_locked()?;
        let ino = fs.resolve(path.trim_start_matches('/').as_bytes()).map_err(from_fs)?;
        fs.pin(ino, on).map_err(from_fs)
    }

    pub fn snapshots(&self) -> Result<Vec<nimbus_api::SnapshotInfo>, ApiError> {
        let fs = self.fs_or_locked()?;
        let commits = self.rt.block_on(fs.vault().list_commits()).map_err(from_vault)?;
        Ok(commits
            .into_iter()
            .map(|(id, c)| nimbus_api::SnapshotInfo {
                id: id.to_hex(),
                name: nimbus_fs::snapshot_name(&c),
                time: c.time.secs,
                device: c.device.to_hex(),
            })
            .collect())
    }

    /// Seconds since the drive was last used; `None` when locked or unmounted.
    pub fn idle(&self) -> Option<Duration> {
        let i = lock(&self.inner);
        let slot = i.slot.as_ref()?;
        (!slot.is_locked()).then(|| slot.idle())
    }

    /// Samples the transfer counters (the monitor calls this every second).
    pub fn sample(&self) {
        let mut r = lock(&self.rates);
        let now = Instant::now();
        r.samples
            .push_back((now, self.limits.bytes_sent(), self.limits.bytes_received()));
        while r.samples.len() > 2 && r.samples.front().is_some_and(|s| now - s.0 > RATE_WINDOW) {
            r.samples.pop_front();
        }
    }

    fn transfers(&self) -> Transfers {
        let r = lock(&self.rates);
        let (up_rate, down_rate) = match (r.samples.front(), r.samples.back()) {
            (Some(a), Some(b)) if b.0 > a.0 => {
                let dt = (b.0 - a.0).as_secs_f64();
                (((b.1 - a.1) as f64 / dt) as u64, ((b.2 - a.2) as f64 / dt) as u64)
            }
            _ => (0, 0),
        };
        Transfers {
            uploaded_bytes: self.limits.bytes_sent(),
            downloaded_bytes: self.limits.bytes_received(),
            uploading_bytes: self.limits.bytes_sending(),
            upload_rate: up_rate,
            download_rate: down_rate,
            requests: request_counts(self.limits.requests()),
        }
    }

    /// What a person would want to know about the drive now.
    pub fn status(&self) -> DriveStatus {
        let cfg = self.config();
        let (mounted, starting, error, slot) = {
            let i = lock(&self.inner);
            (i.session.is_some(), i.starting, i.error.clone(), i.slot.clone())
        };
        let fs = slot.as_ref().and_then(|s| s.peek());
        let locked = mounted && fs.is_none();
        let pending = fs.as_ref().and_then(|f| f.pending().ok()).unwrap_or_default();
        let sync_state = fs.as_ref().map(|f| f.sync_state()).unwrap_or_default();
        let waiting = waiting_from(&sync_state);
        let (cache_bytes, _) = fs.as_ref().map(|f| f.cache_usage()).unwrap_or((0, 0));
        let transfers = self.transfers();
        let busy = pending.syncing || pending.dirty || pending.files > 0 || transfers.uploading_bytes > 0;
        let left_staged = fs.is_none() && self.left_staged.load(Ordering::SeqCst);
        let (state, message) = if starting {
            (DriveState::Starting, "Starting".to_string())
        } else if !mounted {
            match &error {
                Some(e) => (DriveState::Error, format!("Error: {e}")),
                None if left_staged => (
                    DriveState::Unmounted,
                    "Not mounted — changes kept on this device upload at the next mount".to_string(),
                ),
                None => (DriveState::Unmounted, "Not mounted".to_string()),
            }
        } else if locked {
            match &error {
                Some(e) => (DriveState::Locked, format!("Locked — {e}")),
                None if left_staged => (
                    DriveState::Locked,
                    "Locked — changes kept on this device upload at unlock".to_string(),
                ),
                None => (DriveState::Locked, "Locked".to_string()),
            }
        } else if cfg.paused {
            let what = if busy {
                format!(" — {} kept on this device", files_and_bytes(&pending))
            } else {
                String::new()
            };
            let theirs = waiting
                .as_deref()
                .map(|w| format!(" · changes from {w} waiting"))
                .unwrap_or_default();
            (DriveState::Paused, format!("Paused{what}{theirs}"))
        } else if pending.offline && busy {
            (
                DriveState::Offline,
                "Offline — changes are kept on this device".to_string(),
            )
        } else if let (Some(e), true) = (&pending.last_error, busy) {
            (DriveState::Error, format!("Error: {e}"))
        } else if !pending.set_aside.is_empty() {
            let n = pending.set_aside.len();
            (
                DriveState::Error,
                format!(
                    "{n} file{} not synced: damaged on this device",
                    if n == 1 { "" } else { "s" }
                ),
            )
        } else if busy {
            (
                DriveState::Syncing,
                format!("Syncing {} left", files_and_bytes(&pending)),
            )
        } else if checks_failing(&sync_state) {
            (
                DriveState::Offline,
                "Offline — cannot see the other devices' changes; yours are kept on this device".to_string(),
            )
        } else if let Some(w) = &waiting {
            (DriveState::Receiving, format!("Receiving changes from {w}"))
        } else {
            (DriveState::UpToDate, "Up to date".to_string())
        };
        self.set_aside.store(pending.set_aside.len(), Ordering::SeqCst);
        // Names go to the person asking, never into a log.
        let set_aside = (!pending.set_aside.is_empty()).then(|| {
            format!(
                "the changes made on this device to {} are damaged on its disk, so they were not synced \
                 (the vault keeps the last version it had); copy what you can still read, then save or \
                 delete the file; everything else syncs as usual",
                pending.set_aside.join(", ")
            )
        });
        DriveStatus {
            name: cfg.name.clone(),
            store: self.url.to_string(),
            mount: cfg.mount.clone(),
            state,
            message,
            mounted,
            locked,
            paused: cfg.paused,
            pending_files: pending.files,
            pending_bytes: pending.staged_bytes,
            transfers,
            cache_bytes,
            cache_limit_bytes: cfg.cache_size_mib << 20,
            upload_limit: self.limits.upload_limit(),
            download_limit: self.limits.download_limit(),
            last_sync: pending.last_sync,
            last_error: error.or(pending.last_error).or(set_aside),
            idle_secs: slot.map(|s| s.idle().as_secs()).unwrap_or(0),
            changes_kept_here: left_staged,
            changes_pending: pending.dirty,
            set_aside: pending.set_aside,
            // A drive not opened yet knows no device.
            sync: sync_status(
                &sync_state,
                crate::devices::list_with(self, &sync_state).unwrap_or_default(),
            ),
        }
    }

    /// The vault's id, known once the drive has been opened (mounted
    /// unlocked, or unlocked) since the service started.
    pub fn vault_id(&self) -> Option<nimbus_vault::ShortId> {
        lock(&self.inner).vault_id
    }

    /// Sets the vault's id as an open would (tests without a store).
    #[cfg(test)]
    pub(crate) fn set_vault_id(&self, id: nimbus_vault::ShortId) {
        lock(&self.inner).vault_id = Some(id);
    }

    /// The local state folder (this device's memory of each vault).
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// How many files were set aside when the status was last read.
    pub fn set_aside_count(&self) -> usize {
        self.set_aside.load(Ordering::SeqCst)
    }

    /// Forgets the credentials kept in memory.
    pub fn forget(&self) {
        lock(&self.inner).creds = None;
    }
}

/// The store layer's request counts as the API shows them.
fn request_counts(r: nimbus_backend::RequestCounts) -> nimbus_api::RequestCounts {
    nimbus_api::RequestCounts {
        list: r.list,
        stat: r.stat,
        get: r.get,
        put: r.put,
        delete: r.delete,
    }
}

/// "12 files · 48 MB".
fn files_and_bytes(p: &nimbus_fs::Pending) -> String {
    let files = match p.files {
        0 => "folder changes".to_string(),
        1 => "1 file".to_string(),
        n => format!("{n} files"),
    };
    if p.staged_bytes == 0 {
        files
    } else {
        format!("{files} · {}", crate::human_bytes(p.staged_bytes))
    }
}

pub(crate) fn clone_creds(c: &StoreCredentials) -> StoreCredentials {
    StoreCredentials {
        s3: c.s3.as_ref().map(|k| nimbus_backend::S3Keys {
            access_key_id: k.access_key_id.clone(),
            secret_access_key: Zeroizing::new(k.secret_access_key.to_string()),
        }),
        password: c.password.as_ref().map(|p| Zeroizing::new(p.to_string())),
    }
}

/// Commits what is pending and stops the working copy, waiting at most
/// `wait`; true when everything reached the vault. Past `wait` the commit
/// goes on in the background, and what it does not finish stays staged on
/// this device (staging survives anything), uploaded at the next start.
fn finish(fs: Arc<Fs>, wait: Duration, name: &str) -> bool {
    let (tx, rx) = std::sync::mpsc::channel();
    let name2 = name.to_string();
    let spawned = std::thread::Builder::new().name("nimbus-finish".into()).spawn(move || {
        let res = fs.shutdown();
        if let Err(e) = &res {
            tracing::warn!(
                "drive `{name2}`: the last changes could not be committed ({e}); they stay staged on \
                     this device and upload at the next start"
            );
        }
        drop(fs);
        let _ = tx.send(res.is_ok());
    });
    if spawned.is_err() {
        return false;
    }
    match rx.recv_timeout(wait) {
        Ok(ok) => ok,
        Err(_) => {
            tracing::warn!(
                "drive `{name}`: the store did not take the last changes within {} s; they stay staged on \
                 this device and upload at the next start",
                wait.as_secs()
            );
            false
        }
    }
}

/// The other devices whose changes this drive has seen but not taken in
/// yet, named for a person ("laptop and desk"); `None` when there are none.
fn waiting_from(st: &nimbus_fs::SyncState) -> Option<String> {
    let mut names: Vec<String> = st
        .waiting
        .iter()
        .map(|h| {
            if h.device_name.is_empty() {
                format!("device {}", &h.device.to_hex()[..7])
            } else {
                h.device_name.clone()
            }
        })
        .collect();
    names.sort();
    names.dedup();
    match names.len() {
        0 => None,
        1 => names.pop(),
        _ => {
            let last = names.pop().unwrap_or_default();
            Some(format!("{} and {last}", names.join(", ")))
        }
    }
}

/// Looking for other devices' changes has failed for about a minute: the
/// last good look is older than that, or there was none and the loop has
/// failed three times in a row (its backoff makes that about 15 s; a
/// drive that never reached the store is no more "up to date" than one
/// that lost it).
fn checks_failing(st: &nimbus_fs::SyncState) -> bool {
    if st.failures == 0 {
        return false;
    }
    match st.last_poll {
        Some(t) => t.elapsed().is_ok_and(|e| e > Duration::from_secs(60)),
        None => st.failures >= 3,
    }
}

/// A drive status's `sync` part from what its sync loop knows.
fn sync_status(st: &nimbus_fs::SyncState, devices: Vec<nimbus_api::DeviceInfo>) -> nimbus_api::SyncStatus {
    nimbus_api::SyncStatus {
        last_checked: st
            .last_poll
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_secs() as i64),
        behind: !st.waiting.is_empty(),
        merging: st.merging,
        devices,
        conflicts: st.conflicts.unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nimbus_backend::{Backend, LimitedBackend, MemoryBackend};

    /// What goes through the drive's limits shows in its transfers, each
    /// kind in its own count.
    fn head(name: &str, dev: u8) -> nimbus_fs::RemoteHead {
        nimbus_fs::RemoteHead {
            commit: nimbus_vault::Id([dev; 32]),
            device: nimbus_vault::ShortId([dev; 16]),
            device_name: name.into(),
            ahead: true,
        }
    }

    #[test]
    fn waiting_devices_are_named_for_a_person() {
        let mut st = nimbus_fs::SyncState::default();
        assert_eq!(waiting_from(&st), None);
        assert!(!sync_status(&st, Vec::new()).behind);
        st.waiting = vec![head("laptop", 1)];
        assert_eq!(waiting_from(&st).as_deref(), Some("laptop"));
        st.waiting.push(head("", 0xab));
        st.waiting.push(head("desk", 2));
        st.waiting.push(head("laptop", 3));
        assert_eq!(waiting_from(&st).as_deref(), Some("desk, device abababa and laptop"));
        st.last_poll = Some(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000));
        let s = sync_status(&st, Vec::new());
        assert!(s.behind);
        assert_eq!(s.last_checked, Some(1_800_000_000));
    }

    #[test]
    fn the_sync_part_carries_merging_and_conflicts_and_failing_checks_go_offline() {
        let mut st = nimbus_fs::SyncState {
            merging: true,
            conflicts: Some(2),
            ..Default::default()
        };
        let s = sync_status(&st, Vec::new());
        assert!(s.merging);
        assert_eq!(s.conflicts, 2);
        assert!(!checks_failing(&st), "no failure yet");
        st.failures = 2;
        assert!(!checks_failing(&st), "two failures at start are not a minute");
        st.failures = 3;
        assert!(checks_failing(&st), "never reached the store");
        st.last_poll = Some(std::time::SystemTime::now() - Duration::from_secs(5));
        assert!(!checks_failing(&st), "a good look 5 s ago");
        st.last_poll = Some(std::time::SystemTime::now() - Duration::from_secs(90));
        assert!(checks_failing(&st), "the last good look was 90 s ago");
        st.failures = 0;
        assert!(!checks_failing(&st), "the last look succeeded");
    }

    #[test]
    fn transfers_count_requests_by_kind() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        let cfg = DriveConfig {
            name: "d".into(),
            store: "memory://".into(),
            ..DriveConfig::default()
        };
        let drive =
            Drive::new(cfg, PathBuf::from("/nonexistent"), rt.handle().clone()).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(drive.transfers().requests, nimbus_api::RequestCounts::default());

        let store = LimitedBackend::new(MemoryBackend::new(), drive.limits.clone());
        rt.block_on(async {
            store.put("refs/a", bytes_of(80)).await?;
            store.list("refs/").await?;
            store.list("refs/").await?;
            store.get_whole("refs/a", 4096).await?;
            store.stat("refs/a").await?;
            store.delete("refs/a").await
        })
        .unwrap_or_else(|e| panic!("{e}"));
        let t = drive.transfers();
        let want = nimbus_api::RequestCounts {
            list: 2,
            stat: 1,
            get: 1,
            put: 1,
            delete: 1,
        };
        assert_eq!(t.requests, want);
        assert_eq!((t.uploaded_bytes, t.downloaded_bytes), (80, 80));
    }

    fn bytes_of(n: usize) -> bytes::Bytes {
        bytes::Bytes::from(vec![7u8; n])
    }
}

//! The service's state and its answers: the drives by name, the config
//! file kept in step with them, the keyring, and the event stream.
//!
//! Each request is answered on its own task; anything that blocks (a
//! mount, an unlock, a commit) runs on tokio's blocking pool, so a slow
//! store holds up only the request that waits for it, never `status`.

use nimbus_api::{
    AddDrive, ApiError, DriveChange, DriveInfo, ErrorCode, Event, Level, Reply, Request, Secret, ServiceStatus,
    SnapshotInfo,
};
use nimbus_backend::{S3Keys, StoreAccess, StoreCredentials, StoreUrl};
use nimbus_host::keychain::{self, KeyringError};
use nimbus_vault::{KdfParams, Vault, VaultParams};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::broadcast;
use zeroize::Zeroizing;

use crate::config::{check_name, Config, DriveConfig};
use crate::drive::Drive;
use crate::restore;

pub struct Service {
    config_path: PathBuf,
    state_dir: PathBuf,
    config: Mutex<Config>,
    drives: Mutex<BTreeMap<String, Arc<Drive>>>,
    events: broadcast::Sender<Event>,
    started: Instant,
    rt: tokio::runtime::Handle,
    warnings: Mutex<Vec<String>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn no_drive(name: &str) -> ApiError {
    ApiError::new(
        ErrorCode::NoSuchDrive,
        format!("there is no drive named `{name}`; `nimbus drive list` shows them"),
    )
}

fn invalid(msg: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::Invalid, msg)
}

/// Runs blocking work off the async threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, ApiError> + Send + 'static) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(ApiError::new(
            ErrorCode::Internal,
            format!("a task of the service failed: {e}"),
        ))
    })
}

fn keyring_warning(e: &KeyringError) -> String {
    format!(
        "{e}. Nothing was saved: the service will ask for the password at unlock (`nimbus unlock`) after it restarts"
    )
}

impl Service {
    pub fn new(config_path: PathBuf, state_dir: PathBuf, config: Config, rt: tokio::runtime::Handle) -> Arc<Service> {
        let (events, _) = broadcast::channel(256);
        let mut drives = BTreeMap::new();
        let mut warnings = Vec::new();
        for d in &config.drives {
            match Drive::new(d.clone(), state_dir.clone(), rt.clone()) {
                Ok(drive) => {
                    drives.insert(d.name.clone(), drive);
                }
                Err(e) => warnings.push(format!("drive `{}` is skipped: {e}", d.name)),
            }
        }
        Arc::new(Service {
            config_path,
            state_dir,
            config: Mutex::new(config),
            drives: Mutex::new(drives),
            events,
            started: Instant::now(),
            rt,
            warnings: Mutex::new(warnings),
        })
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    pub fn notice(&self, drive: Option<&str>, level: Level, text: impl Into<String>) {
        let text = text.into();
        match level {
            Level::Error => tracing::error!("{text}"),
            Level::Warning => tracing::warn!("{text}"),
            Level::Info => tracing::info!("{text}"),
        }
        let _ = self.events.send(Event::Notice {
            drive: drive.map(str::to_string),
            level,
            text,
        });
    }

    fn drive(&self, name: &str) -> Result<Arc<Drive>, ApiError> {
        lock(&self.drives).get(name).cloned().ok_or_else(|| no_drive(name))
    }

    fn drives_named(&self, name: Option<&str>) -> Result<Vec<Arc<Drive>>, ApiError> {
        match name {
            Some(n) => Ok(vec![self.drive(n)?]),
            None => Ok(lock(&self.drives).values().cloned().collect()),
        }
    }

    pub fn all_drives(&self) -> Vec<Arc<Drive>> {
        lock(&self.drives).values().cloned().collect()
    }

    /// Writes the config file from the drives' current settings.
    fn save_config(&self) -> Result<(), ApiError> {
        let mut cfg = lock(&self.config);
        cfg.drives = lock(&self.drives).values().map(|d| d.config()).collect();
        cfg.save(&self.config_path)
            .map_err(|e| ApiError::new(ErrorCode::Local, e.to_string()))
    }

    pub fn shutdown_wait(&self) -> Duration {
        Duration::from_secs(lock(&self.config).service.shutdown_timeout_secs)
    }

    fn auto_lock_minutes(&self, d: &DriveConfig) -> u64 {
        d.auto_lock_minutes
            .unwrap_or_else(|| lock(&self.config).service.auto_lock_minutes)
    }

    pub fn status(&self, only: Option<&str>) -> Result<ServiceStatus, ApiError> {
        let drives = self.drives_named(only)?;
        let drives: Vec<_> = drives.iter().map(|d| d.status()).collect();
        let safe = drives.iter().all(|d| {
            d.pending_files == 0
                && d.pending_bytes == 0
                && !d.changes_kept_here
                && d.state != nimbus_api::DriveState::Syncing
        });
        let (log_dir, auto_lock_minutes) = {
            let c = lock(&self.config);
            (c.log_dir(&self.state_dir), c.service.auto_lock_minutes)
        };
        Ok(ServiceStatus {
            version: env!("CARGO_PKG_VERSION").into(),
            pid: std::process::id(),
            uptime_secs: self.started.elapsed().as_secs(),
            drives,
            safe_to_shut_down: safe,
            warnings: lock(&self.warnings).clone(),
            log_dir: Some(log_dir),
            auto_lock_minutes,
        })
    }

    /// The credentials a drive's store needs: given ones, the keyring's, or
    /// none (the environment's, or SSH's own).
    fn find_creds(url: &StoreUrl) -> StoreCredentials {
        match keychain::store_get(url) {
            Ok(Some(c)) => c,
            Ok(None) => StoreCredentials::default(),
            Err(e) => {
                tracing::warn!("{url}: {e}");
                StoreCredentials::default()
            }
        }
    }

    /// The remembered password of a drive. Without a keyring, the service
    /// says so once, in its status, and the drive waits for `nimbus unlock`.
    fn remembered_password(&self, vault_account: &str) -> Option<Zeroizing<String>> {
        match keychain::get(keychain::VAULT_SERVICE, vault_account) {
            Ok(p) => p,
            Err(e) => {
                let w = format!("{e}. Drives cannot unlock by themselves: unlock them with `nimbus unlock <drive>`");
                let mut ws = lock(&self.warnings);
                if !ws.contains(&w) {
                    tracing::warn!("{w}");
                    ws.push(w);
                }
                None
            }
        }
    }

    /// Mounts every drive that should be, at start: unlocked when its
    /// password is remembered, else locked, waiting for `nimbus unlock`.
    pub async fn start_drives(self: &Arc<Self>) {
        let mut tasks = Vec::new();
        for d in self.all_drives() {
            if !d.config().mount_at_start {
                continue;
            }
            let svc = self.clone();
            tasks.push(tokio::spawn(async move {
                let name = d.name();
                if let Err(e) = svc.mount_drive(d).await {
                    svc.notice(
                        Some(&name),
                        Level::Error,
                        format!("drive `{name}` could not start: {e}"),
                    );
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
    }

    /// Mounts a drive with what the keyring holds: unlocked when its
    /// password is remembered, else locked.
    async fn mount_drive(self: &Arc<Self>, d: Arc<Drive>) -> Result<(), ApiError> {
        let svc = self.clone();
        blocking(move || {
            let creds = Service::find_creds(d.url());
            let pw = svc.remembered_password(&account(&d.config()));
            d.mount(pw.as_deref().map(|p| p.as_str()), creds)
        })
        .await
    }

    /// Answers one request: each has a function of its own below.
    pub async fn handle(self: &Arc<Self>, req: Request) -> Result<Reply, ApiError> {
        match req {
            Request::Status { drive } => self.status_reply(drive).await,
            Request::ListDrives => self.list_drives().await,
            Request::AddDrive(a) => self.add_drive(a).await,
            Request::RemoveDrive { drive, forget_secrets } => self.remove_drive(&drive, forget_secrets).await,
            Request::ChangeDrive { drive, change } => self.change_drive(&drive, change),
            Request::Mount { drive } => self.mount(&drive).await,
            Request::Unmount { drive } => self.unmount(&drive).await,
            Request::Lock { drive } => self.lock_drives(drive.as_deref()).await,
            Request::Unlock {
                drive,
                password,
                remember,
            } => self.unlock(&drive, password, remember).await,
            Request::Pause { drive } => self.pause(drive.as_deref(), true),
            Request::Resume { drive } => self.pause(drive.as_deref(), false),
            Request::SetLimits {
                drive,
                upload,
                download,
            } => self.set_limits(&drive, upload, download),
            Request::Pin { drive, path, on } => self.pin(&drive, path, on).await,
            Request::SyncNow { drive } => self.sync_now(&drive).await,
            Request::Snapshots { drive } => self.snapshots(&drive).await,
            Request::Restore { drive, path, at, to } => self.restore(&drive, &path, at, to).await,
            Request::Subscribe => Ok(Reply::Subscribed),
            Request::TestStore { store, credentials } => self.test_store(&store, credentials).await,
            Request::CreateDrive(a) => self.create_drive(a).await,
            Request::Browse { drive, snapshot, path } => self.browse(&drive, snapshot, &path).await,
            Request::Devices { drive } => {
                let d = self.drive(&drive)?;
                let devices = blocking(move || crate::devices::list(&d)).await?;
                Ok(Reply::Devices { devices })
            }
            Request::RenameDevice { drive, name } => {
                let d = self.drive(&drive)?;
                let message = blocking(move || crate::devices::rename(&d, &name)).await?;
                Ok(done(message))
            }
            Request::Conflicts { drive } => {
                let d = self.drive(&drive)?;
                let conflicts = blocking(move || crate::conflicts::list(&d)).await?;
                Ok(Reply::Conflicts { conflicts })
            }
            Request::ResolveConflict { drive, path, keep } => {
                let d = self.drive(&drive)?;
                let message = blocking(move || crate::conflicts::resolve(&d, &path, keep)).await?;
                Ok(done(message))
            }
        }
    }

    /// Status reads each drive's local database: off the async threads.
    async fn status_reply(self: &Arc<Self>, drive: Option<String>) -> Result<Reply, ApiError> {
        let svc = self.clone();
        Ok(Reply::Status(blocking(move || svc.status(drive.as_deref())).await?))
    }

    /// The list asks the keyring (is each password remembered): off the
    /// async threads.
    async fn list_drives(self: &Arc<Self>) -> Result<Reply, ApiError> {
        let svc = self.clone();
        blocking(move || {
            Ok(Reply::Drives {
                drives: svc.all_drives().iter().map(|d| svc.info(&d.config())).collect(),
            })
        })
        .await
    }

    async fn mount(self: &Arc<Self>, drive: &str) -> Result<Reply, ApiError> {
        let d = self.drive(drive)?;
        self.mount_drive(d.clone()).await?;
        Ok(done(if d.is_locked() {
            format!("drive `{drive}` mounted, locked: unlock it with `nimbus unlock {drive}`")
        } else {
            format!("drive `{drive}` mounted")
        }))
    }

    async fn unmount(self: &Arc<Self>, drive: &str) -> Result<Reply, ApiError> {
        let d = self.drive(drive)?;
        let wait = self.shutdown_wait();
        let all_in = blocking(move || d.unmount(wait, false)).await?;
        Ok(done(if all_in {
            format!("drive `{drive}` unmounted; every change is in the vault")
        } else {
            format!(
                "drive `{drive}` unmounted; changes the store did not take yet stay on this device and upload at \
                 the next mount"
            )
        }))
    }

    /// Locks one drive, or every drive.
    async fn lock_drives(self: &Arc<Self>, drive: Option<&str>) -> Result<Reply, ApiError> {
        let drives = self.drives_named(drive)?;
        let wait = self.shutdown_wait();
        let mut kept = Vec::new();
        for d in drives {
            let name = d.name();
            if !blocking(move || d.lock(wait)).await? {
                kept.push(name);
            }
        }
        if kept.is_empty() {
            return Ok(done("locked: the vault key is no longer in memory".to_string()));
        }
        Ok(Reply::Done {
            message: "locked".into(),
            warnings: vec![format!(
                "{}: the store did not take the last changes yet; they stay on this device and upload at unlock",
                kept.join(", ")
            )],
        })
    }

    /// Unlocks with the given password, else the remembered one; with
    /// `remember`, the keyring keeps the password once it proved right.
    async fn unlock(
        self: &Arc<Self>,
        drive: &str,
        password: Option<Secret>,
        remember: bool,
    ) -> Result<Reply, ApiError> {
        let d = self.drive(drive)?;
        let acct = account(&d.config());
        let pw = match password {
            Some(p) => Zeroizing::new(p.expose().to_string()),
            None => self.remembered_password(&acct).ok_or_else(|| {
                ApiError::new(
                    ErrorCode::WrongPassword,
                    format!("drive `{drive}` needs its vault password to unlock (none is saved in the keyring)"),
                )
            })?,
        };
        let pw2 = pw.clone();
        blocking(move || {
            let creds = Service::find_creds(d.url());
            d.unlock(&pw2, Some(creds))?;
            // Already unlocked: the password was not used, so check
            // it before the keyring keeps it.
            if remember {
                d.check_password(&pw2)?;
            }
            Ok(())
        })
        .await?;
        let mut warnings = Vec::new();
        if remember {
            if let Err(e) = keychain::set(keychain::VAULT_SERVICE, &acct, &pw) {
                warnings.push(keyring_warning(&e));
            }
        }
        Ok(Reply::Done {
            message: format!("drive `{drive}` unlocked"),
            warnings,
        })
    }

    /// Applies the limits at once and keeps them in the config.
    fn set_limits(&self, drive: &str, upload: Option<u64>, download: Option<u64>) -> Result<Reply, ApiError> {
        let d = self.drive(drive)?;
        d.set_limits(upload, download);
        self.save_config()?;
        Ok(done(format!(
            "drive `{drive}`: upload {}, download {}",
            limit_text(upload),
            limit_text(download)
        )))
    }

    async fn pin(self: &Arc<Self>, drive: &str, path: String, on: bool) -> Result<Reply, ApiError> {
        let d = self.drive(drive)?;
        let p = path.clone();
        blocking(move || d.pin(&p, on)).await?;
        Ok(done(if on {
            format!("{path} is kept on this device")
        } else {
            format!("{path} may leave this device's cache again")
        }))
    }

    async fn sync_now(self: &Arc<Self>, drive: &str) -> Result<Reply, ApiError> {
        let d = self.drive(drive)?;
        blocking(move || d.sync_now()).await?;
        Ok(done(format!("drive `{drive}`: every change is in the vault")))
    }

    async fn snapshots(self: &Arc<Self>, drive: &str) -> Result<Reply, ApiError> {
        let d = self.drive(drive)?;
        let snapshots = blocking(move || d.snapshots()).await?;
        Ok(Reply::Snapshots { snapshots })
    }

    /// Copies `path` as it was in the snapshot `at` to the folder `to`, or
    /// back beside itself in the drive.
    async fn restore(
        self: &Arc<Self>,
        drive: &str,
        path: &str,
        at: String,
        to: Option<PathBuf>,
    ) -> Result<Reply, ApiError> {
        let d = self.drive(drive)?;
        let rel = restore::inside(path).map_err(|e| invalid(e.to_string()))?;
        if let Some(t) = &to {
            if !t.is_absolute() {
                return Err(invalid(format!(
                    "the folder to restore to, {}, must be an absolute path",
                    t.display()
                )));
            }
        }
        let r = blocking(move || {
            let snaps = d.snapshots()?;
            let snap = pick_snapshot(&snaps, &at)?;
            let mount = d.config().mount;
            restore::restore(&mount, &snap.name, &rel, to.as_deref()).map_err(|e| match e {
                restore::RestoreError::NotInSnapshot(m) => ApiError::new(ErrorCode::NotFound, m),
                restore::RestoreError::Local(m) => ApiError::new(ErrorCode::Local, m),
            })
        })
        .await?;
        Ok(Reply::Restored {
            to: r.to,
            files: r.files,
            bytes: r.bytes,
        })
    }

    /// The entries of a folder of a snapshot, read through the mount.
    async fn browse(self: &Arc<Self>, drive: &str, snapshot: String, path: &str) -> Result<Reply, ApiError> {
        let d = self.drive(drive)?;
        // "" (or "/") is the snapshot's top folder.
        let rel = if path.trim_matches('/').is_empty() {
            PathBuf::new()
        } else {
            restore::inside(path).map_err(|e| invalid(e.to_string()))?
        };
        blocking(move || {
            let snaps = d.snapshots()?;
            let snap = pick_snapshot(&snaps, &snapshot)?;
            let base = d.config().mount.join(".snapshots").join(&snap.name);
            let dir =
                restore::walk(&base, &rel, false).map_err(|e| ApiError::new(ErrorCode::NotFound, e.to_string()))?;
            let entries = restore::list(&dir).map_err(|e| {
                ApiError::new(
                    ErrorCode::NotFound,
                    format!("{} is not a folder of the snapshot {}: {e}", rel.display(), snap.name),
                )
            })?;
            Ok(Reply::Entries { entries })
        })
        .await
    }

    fn info(&self, c: &DriveConfig) -> DriveInfo {
        DriveInfo {
            name: c.name.clone(),
            store: c.store.clone(),
            mount: c.mount.clone(),
            cache_size_mib: c.cache_size_mib,
            commit_delay_secs: c.commit_delay_secs,
            auto_lock_minutes: self.auto_lock_minutes(c),
            mount_at_start: c.mount_at_start,
            remembered: matches!(keychain::get(keychain::VAULT_SERVICE, &account(c)), Ok(Some(_))),
        }
    }

    fn pause(&self, drive: Option<&str>, on: bool) -> Result<Reply, ApiError> {
        let drives = self.drives_named(drive)?;
        for d in &drives {
            d.set_paused(on);
        }
        self.save_config()?;
        let names: Vec<_> = drives.iter().map(|d| d.name()).collect();
        Ok(done(if on {
            format!(
                "paused {}: changes are kept on this device until you resume",
                names.join(", ")
            )
        } else {
            format!("resumed {}", names.join(", "))
        }))
    }

    /// Checks a new drive's name, store address, mount point and settings
    /// against the configured drives; gives its config and store.
    fn new_drive_config(&self, a: &AddDrive) -> Result<(DriveConfig, StoreUrl), ApiError> {
        check_name(&a.name).map_err(|e| invalid(e.to_string()))?;
        if lock(&self.drives).contains_key(&a.name) {
            return Err(ApiError::new(
                ErrorCode::DriveExists,
                format!("there is a drive named `{}` already; choose another name", a.name),
            ));
        }
        let url = StoreUrl::parse(&a.store).map_err(|e| invalid(e.to_string()))?;
        if !a.mount.is_absolute() {
            return Err(invalid(format!(
                "the mount point {} must be an absolute path",
                a.mount.display()
            )));
        }
        let mut cfg = DriveConfig {
            name: a.name.clone(),
            store: url.to_string(),
            mount: a.mount.clone(),
            ..Default::default()
        };
        apply_change(&mut cfg, &a.settings);
        let mut probe = lock(&self.config).clone();
        probe.drives.push(cfg.clone());
        probe.validate().map_err(|e| invalid(e.to_string()))?;
        Ok((cfg, url))
    }

    /// The given credentials, else the keyring's (else none: the
    /// environment's, or SSH's own).
    fn creds_or_saved(url: &StoreUrl, given: Option<&StoreCredentials>) -> StoreCredentials {
        match given {
            Some(c) => crate::drive::clone_creds(c),
            None => Service::find_creds(url),
        }
    }

    async fn add_drive(self: &Arc<Self>, a: AddDrive) -> Result<Reply, ApiError> {
        let (message, warnings) = self.add_drive_inner(a).await?;
        Ok(Reply::Done { message, warnings })
    }

    /// Adds and mounts a drive; what happened, and the warnings.
    async fn add_drive_inner(self: &Arc<Self>, a: AddDrive) -> Result<(String, Vec<String>), ApiError> {
        let (cfg, url) = self.new_drive_config(&a)?;
        let mount = cfg.mount.clone();
        let given = a.credentials.map(to_creds).transpose()?;
        let creds = Service::creds_or_saved(&url, given.as_ref());
        let drive = Drive::new(cfg.clone(), self.state_dir.clone(), self.rt.clone())?;
        let pw = Zeroizing::new(a.password.expose().to_string());
        let d2 = drive.clone();
        let pw2 = pw.clone();
        blocking(move || d2.mount(Some(&pw2), creds)).await?;
        lock(&self.drives).insert(a.name.clone(), drive.clone());
        let mut warnings = Vec::new();
        if let Err(e) = self.save_config() {
            warnings.push(e.message);
        }
        if let Some(c) = &given {
            if let Err(e) = keychain::store_set(&url, c) {
                warnings.push(format!(
                    "the store's credentials could not be saved: {e}. After a restart the service looks for them in its environment"
                ));
            }
        }
        if a.remember {
            if let Err(e) = keychain::set(keychain::VAULT_SERVICE, &account(&cfg), &pw) {
                warnings.push(keyring_warning(&e));
            }
        }
        for w in &warnings {
            self.notice(Some(&a.name), Level::Warning, w.clone());
        }
        Ok((
            format!("drive `{}` added and mounted at {}", a.name, mount.display()),
            warnings,
        ))
    }

    /// Opens the store with the given credentials (else the saved ones) and
    /// looks for a vault in it.
    async fn test_store(
        self: &Arc<Self>,
        store: &str,
        credentials: Option<nimbus_api::StoreSecrets>,
    ) -> Result<Reply, ApiError> {
        let url = StoreUrl::parse(store).map_err(|e| invalid(e.to_string()))?;
        let given = credentials.map(to_creds).transpose()?;
        let creds = Service::creds_or_saved(&url, given.as_ref());
        let rt = self.rt.clone();
        blocking(move || {
            let local_missing = matches!(&url, StoreUrl::LocalFolder(p) if !p.exists());
            if local_missing {
                return Ok(Reply::StoreChecked {
                    vault: false,
                    message: "the folder does not exist yet; it is created with the new vault".into(),
                });
            }
            let access = StoreAccess {
                credentials: creds,
                limits: None,
            };
            let backend = nimbus_backend::open_store_with(&url, &access).map_err(crate::errors::from_backend)?;
            let found = rt
                .block_on(backend.stat(nimbus_vault::config::CONFIG_KEY))
                .map_err(crate::errors::from_backend)?;
            let message = match found {
                Some(_) => format!(
                    "connected to {}: it holds a Nimbus vault, which you can open",
                    backend.describe()
                ),
                None => format!(
                    "connected to {}: there is no vault in it yet, so you can create one",
                    backend.describe()
                ),
            };
            Ok(Reply::StoreChecked {
                vault: found.is_some(),
                message,
            })
        })
        .await
    }

    /// Creates a vault in an empty store, then adds it as a drive. The
    /// drive is checked first, so no vault is made for a drive that would
    /// be refused.
    async fn create_drive(self: &Arc<Self>, a: AddDrive) -> Result<Reply, ApiError> {
        let (_, url) = self.new_drive_config(&a)?;
        if a.password.expose().is_empty() {
            return Err(invalid(
                "the password is empty; choose one (a few random words make a strong one)",
            ));
        }
        let given = a.credentials.clone().map(to_creds).transpose()?;
        let creds = Service::creds_or_saved(&url, given.as_ref());
        let rt = self.rt.clone();
        let pw = Zeroizing::new(a.password.expose().to_string());
        let recovery = blocking(move || {
            let access = StoreAccess {
                credentials: creds,
                limits: None,
            };
            let backend = nimbus_backend::create_store_with(&url, &access).map_err(crate::errors::from_backend)?;
            if rt
                .block_on(backend.stat(nimbus_vault::config::CONFIG_KEY))
                .map_err(crate::errors::from_backend)?
                .is_some()
            {
                return Err(ApiError::new(
                    ErrorCode::DriveExists,
                    format!(
                        "{} holds a vault already; open it instead of creating one (nothing was changed)",
                        backend.describe()
                    ),
                ));
            }
            let (_vault, recovery) = rt
                .block_on(Vault::create(
                    backend,
                    pw.as_bytes(),
                    VaultParams::default(),
                    KdfParams::default(),
                ))
                .map_err(crate::errors::from_vault)?;
            Ok(Secret::new(recovery.display_text().as_str()))
        })
        .await?;
        // The vault exists now: whatever happens next, the answer must
        // carry its recovery key, or nobody ever sees it.
        match self.add_drive_inner(a).await {
            Ok((message, warnings)) => Ok(Reply::Created {
                message: format!("a new vault was created; {message}"),
                recovery_key: recovery,
                warnings,
            }),
            Err(e) => Ok(Reply::Created {
                message: format!(
                    "a new vault was created, but the drive could not be added: {}. \
                     Save the recovery key, fix that, then add the drive as an existing vault",
                    e.message
                ),
                recovery_key: recovery,
                warnings: vec![e.message],
            }),
        }
    }

    async fn remove_drive(self: &Arc<Self>, name: &str, forget: bool) -> Result<Reply, ApiError> {
        let d = self.drive(name)?;
        let wait = self.shutdown_wait();
        let d2 = d.clone();
        let all_in = blocking(move || d2.unmount(wait, false)).await?;
        lock(&self.drives).remove(name);
        d.forget();
        self.save_config()?;
        let mut warnings = Vec::new();
        if !all_in {
            warnings.push(
                "the store did not take the last changes yet; they stay on this device and upload when the drive is added again".to_string(),
            );
        }
        if forget {
            let _ = keychain::delete(keychain::VAULT_SERVICE, &account(&d.config()));
            let _ = keychain::delete(keychain::STORE_SERVICE, &d.url().to_string());
        }
        Ok(Reply::Done {
            message: format!("drive `{name}` removed (the vault itself is untouched)"),
            warnings,
        })
    }

    fn change_drive(&self, name: &str, change: DriveChange) -> Result<Reply, ApiError> {
        let d = self.drive(name)?;
        if change.mount.is_some() && d.is_mounted() {
            return Err(ApiError::new(
                ErrorCode::Busy,
                format!("unmount drive `{name}` before moving its mount point"),
            ));
        }
        let mut cfg = d.config();
        apply_change(&mut cfg, &change);
        {
            let c = lock(&self.config);
            let mut probe = c.clone();
            probe.drives = lock(&self.drives)
                .values()
                .map(|x| if x.name() == name { cfg.clone() } else { x.config() })
                .collect();
            probe.validate().map_err(|e| invalid(e.to_string()))?;
        }
        d.update_config(|c| *c = cfg);
        self.save_config()?;
        Ok(done(format!(
            "drive `{name}` changed{}",
            if d.is_mounted() {
                " (cache size and commit delay apply at the next mount)"
            } else {
                ""
            }
        )))
    }

    /// Tells subscribers what other devices' changes did to drive `d`
    /// since the last look: an `updated` event per apply that changed
    /// anything, a `conflict` event per conflict copy.
    fn tell_merges(&self, d: &Drive) {
        let drive = d.name();
        for r in d.take_merge_reports() {
            let counts = |c: nimbus_fs::Counts| nimbus_api::ChangeCounts {
                added: c.added,
                changed: c.changed,
                moved: c.moved,
                deleted: c.deleted,
            };
            if r.files.total() + r.folders.total() > 0 {
                let _ = self.events.send(Event::Updated {
                    drive: drive.clone(),
                    device: r.device_label.clone(),
                    device_id: r.device.to_hex(),
                    files: counts(r.files),
                    folders: counts(r.folders),
                    paths: r.paths.clone(),
                });
            }
            for c in &r.copies {
                let c = crate::conflicts::info(c);
                let _ = self.events.send(Event::Conflict {
                    drive: drive.clone(),
                    copy: c.copy,
                    original: c.original,
                    device: c.device,
                    time: c.time,
                });
            }
        }
    }

    /// Once a second: rates, events for what changed, auto-lock.
    pub async fn monitor(self: Arc<Self>) {
        let mut last: BTreeMap<String, (nimbus_api::DriveState, String, u64, u64)> = BTreeMap::new();
        let mut last_safe = None;
        let mut last_set_aside: BTreeMap<String, usize> = BTreeMap::new();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            let drives = self.all_drives();
            for d in &drives {
                d.sample();
            }
            // Status reads the local database: off the async threads.
            let svc = self.clone();
            let Ok(Ok(status)) = tokio::task::spawn_blocking(move || svc.status(None)).await else {
                continue;
            };
            for s in &status.drives {
                let prev = last.get(&s.name);
                if prev.map(|p| (p.0, &p.1)) != Some((s.state, &s.message)) {
                    let _ = self.events.send(Event::DriveState {
                        drive: s.name.clone(),
                        state: s.state,
                        message: s.message.clone(),
                    });
                }
                if prev.map(|p| (p.2, p.3)) != Some((s.pending_files, s.pending_bytes)) {
                    let _ = self.events.send(Event::Pending {
                        drive: s.name.clone(),
                        files: s.pending_files,
                        bytes: s.pending_bytes,
                    });
                }
                let t = &s.transfers;
                if t.upload_rate > 0 || t.download_rate > 0 || t.uploading_bytes > 0 {
                    let _ = self.events.send(Event::Transfer {
                        drive: s.name.clone(),
                        transfers: t.clone(),
                    });
                }
                last.insert(
                    s.name.clone(),
                    (s.state, s.message.clone(), s.pending_files, s.pending_bytes),
                );
            }
            for d in &drives {
                self.tell_merges(d);
            }
            for d in &drives {
                let (name, n) = (d.name(), d.set_aside_count());
                if n > last_set_aside.get(&name).copied().unwrap_or(0) {
                    // No file name here: notices are logged too; the
                    // status names the files.
                    self.notice(
                        Some(&name),
                        Level::Warning,
                        format!(
                            "drive `{name}`: {n} file{} could not be synced because the changes made to it on \
                             this device are damaged on the disk; everything else syncs. `nimbus status` names \
                             {}",
                            if n == 1 { "" } else { "s" },
                            if n == 1 { "it" } else { "them" }
                        ),
                    );
                }
                last_set_aside.insert(name, n);
            }
            if last_safe != Some(status.safe_to_shut_down) {
                last_safe = Some(status.safe_to_shut_down);
                let _ = self.events.send(Event::SafeToShutDown {
                    safe: status.safe_to_shut_down,
                    pending_bytes: status.drives.iter().map(|d| d.pending_bytes).sum(),
                });
            }
            for d in drives {
                let minutes = self.auto_lock_minutes(&d.config());
                if minutes == 0 {
                    continue;
                }
                if d.idle().is_some_and(|idle| idle >= Duration::from_secs(minutes * 60)) {
                    let name = d.name();
                    let wait = self.shutdown_wait();
                    let svc = self.clone();
                    tokio::spawn(async move {
                        if blocking(move || d.lock(wait)).await.is_ok() {
                            svc.notice(
                                Some(&name),
                                Level::Info,
                                format!(
                                    "drive `{name}` locked itself after {minutes} minute{} without use",
                                    if minutes == 1 { "" } else { "s" }
                                ),
                            );
                        }
                    });
                }
            }
        }
    }

    /// Stops every drive: unmounts (even with files open), commits what the
    /// store takes within the shutdown time, and says what stays staged.
    pub async fn stop_all(self: &Arc<Self>) {
        let wait = self.shutdown_wait();
        let mut tasks = Vec::new();
        for d in self.all_drives() {
            tasks.push(tokio::spawn(async move {
                let name = d.name();
                let pending = d.status().pending_bytes;
                match blocking(move || d.unmount(wait, true)).await {
                    Ok(true) => tracing::info!("drive `{name}`: every change is in the vault"),
                    Ok(false) => tracing::warn!(
                        "drive `{name}`: {} of changes stay staged on this device; they upload at the next start",
                        crate::human_bytes(pending)
                    ),
                    Err(e) => tracing::error!("drive `{name}` did not stop cleanly: {e}"),
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
    }
}

/// The keyring account of a drive's remembered password: its store's
/// address, written the one way `StoreUrl` writes it (one vault per store,
/// one drive per vault).
fn account(c: &DriveConfig) -> String {
    StoreUrl::parse(&c.store)
        .map(|u| u.to_string())
        .unwrap_or_else(|_| c.store.clone())
}

/// The snapshot `at` names (an id, a prefix of one, or a time).
fn pick_snapshot<'a>(snaps: &'a [SnapshotInfo], at: &str) -> Result<&'a SnapshotInfo, ApiError> {
    nimbus_vault::pick(snaps, at, "nimbus snapshots", |s| (s.id.clone(), s.time))
        .map_err(|e| ApiError::new(ErrorCode::NotFound, e.to_string()))
}

fn done(message: String) -> Reply {
    Reply::Done {
        message,
        warnings: Vec::new(),
    }
}

fn limit_text(l: Option<u64>) -> String {
    match l {
        Some(b) => format!("{}/s", crate::human_bytes(b)),
        None => "unlimited".into(),
    }
}

fn apply_change(cfg: &mut DriveConfig, c: &DriveChange) {
    if let Some(m) = &c.mount {
        cfg.mount = m.clone();
    }
    if let Some(v) = c.cache_size_mib {
        cfg.cache_size_mib = v;
    }
    if let Some(v) = c.commit_delay_secs {
        cfg.commit_delay_secs = v;
    }
    if let Some(v) = c.auto_lock_minutes {
        cfg.auto_lock_minutes = Some(v);
    }
    if let Some(v) = c.mount_at_start {
        cfg.mount_at_start = v;
    }
}

fn to_creds(s: nimbus_api::StoreSecrets) -> Result<StoreCredentials, ApiError> {
    let s3 = match (s.access_key_id, s.secret_access_key) {
        (Some(id), Some(secret)) => Some(S3Keys {
            access_key_id: id,
            secret_access_key: Zeroizing::new(secret.expose().to_string()),
        }),
        (None, None) => None,
        _ => return Err(invalid("give both the access key id and the secret access key")),
    };
    Ok(StoreCredentials {
        s3,
        password: s.password.map(|p| Zeroizing::new(p.expose().to_string())),
    })
}

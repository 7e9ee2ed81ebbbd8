//! What the window may ask the shell, and the events the shell sends it.
//! The TypeScript side (`ui/src/bindings.ts`) is generated from these by
//! tauri-specta in the `bindings_are_current` test; the UI calls nothing
//! else.
//!
//! Each command that needs the service opens its own connection: a Unix
//! socket in the user's runtime folder costs microseconds, and requests of
//! the window never queue behind each other or behind the event stream.

use crate::model::{self, ActivityItem, Summary};
use crate::settings::{self, Settings};
use crate::Shared;
use nimbus_api::{
    AddDrive, ApiError, Client, DriveChange, DriveInfo, Entry, Reply, Request, Secret, ServiceStatus, SnapshotInfo,
    StoreSecrets,
};
use serde::{Deserialize, Serialize};
use specta::Type;
use std::path::PathBuf;
use tauri::{AppHandle, State};
use tauri_specta::Event as _;

/// An error the window shows: the service's code (`wrong_password`,
/// `unavailable`, ... or `no_service`, `local`) and a message in plain words
/// that says what to do.
#[derive(Debug, Clone, Serialize, Deserialize, Type)]
pub struct UiError {
    pub code: String,
    pub message: String,
}

impl From<ApiError> for UiError {
    fn from(e: ApiError) -> UiError {
        let code = serde_json::to_value(e.code)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_else(|| "unknown".into());
        UiError {
            code,
            message: e.message,
        }
    }
}

fn local(message: impl Into<String>) -> UiError {
    UiError {
        code: "local".into(),
        message: message.into(),
    }
}

/// Everything the window and the tray show.
#[derive(Debug, Clone, Serialize, Deserialize, Type)]
pub struct AppStatus {
    /// The service's status; `None` while it cannot be reached.
    pub service: Option<ServiceStatus>,
    /// Why the service cannot be reached, in plain words.
    pub connection_error: Option<String>,
    pub summary: Summary,
    /// This app started the service.
    pub started_service: bool,
}

impl AppStatus {
    pub fn connecting() -> AppStatus {
        AppStatus {
            service: None,
            connection_error: None,
            summary: model::summary(None, None),
            started_service: false,
        }
    }

    pub fn new(service: Option<ServiceStatus>, error: Option<String>, started_service: bool) -> AppStatus {
        AppStatus {
            summary: model::summary(service.as_ref(), error.as_deref()),
            service,
            connection_error: error,
            started_service,
        }
    }
}

/// Store credentials as the wizard collects them; empty means none.
#[derive(Debug, Clone, Default, Serialize, Deserialize, Type)]
pub struct Credentials {
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub password: Option<String>,
}

impl Credentials {
    fn into_api(self) -> Option<StoreSecrets> {
        let some = |s: Option<String>| s.filter(|s| !s.is_empty());
        let s = StoreSecrets {
            access_key_id: some(self.access_key_id),
            secret_access_key: some(self.secret_access_key).map(Secret::new),
            password: some(self.password).map(Secret::new),
        };
        let none = s.access_key_id.is_none() && s.secret_access_key.is_none() && s.password.is_none();
        (!none).then_some(s)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, Type)]
pub struct StoreCheck {
    /// The store holds a Nimbus vault already.
    pub vault: bool,
    pub message: String,
}

/// The wizard's last step.
#[derive(Debug, Clone, Serialize, Deserialize, Type)]
pub struct DriveForm {
    pub name: String,
    pub store: String,
    pub mount: String,
    pub password: String,
    pub credentials: Credentials,
    /// Keep the vault password in the keyring, so the drive mounts at start.
    pub remember: bool,
    /// Create a new vault (else open the one in the store).
    pub create: bool,
    pub cache_size_mib: Option<u64>,
    /// Folders (inside the drive) to keep on this device.
    pub offline: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Type)]
pub struct Added {
    pub message: String,
    /// The new vault's recovery key, to be shown once; the service keeps no
    /// copy, and neither does the app.
    pub recovery_key: Option<String>,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Type)]
pub struct Restored {
    pub to: String,
    pub files: u64,
    pub bytes: u64,
}

/// How guessable a new vault password is (zxcvbn).
#[derive(Debug, Clone, Serialize, Deserialize, Type)]
pub struct Strength {
    /// 0 (guessed at once) to 4 (very strong).
    pub score: u8,
    pub warning: Option<String>,
    pub suggestions: Vec<String>,
    /// How long an offline attack on a slow hash would take, in words.
    pub crack_time: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "snake_case")]
pub enum Page {
    Drives,
    Add,
    Activity,
    Snapshots,
    Settings,
}

/// The service's status changed (or the connection to it).
#[derive(Debug, Clone, Serialize, Deserialize, Type, tauri_specta::Event)]
pub struct StatusChanged(pub AppStatus);

/// A new line for the Activity page.
#[derive(Debug, Clone, Serialize, Deserialize, Type, tauri_specta::Event)]
pub struct ActivityAdded(pub ActivityItem);

/// The tray asks the window to show a page.
#[derive(Debug, Clone, Serialize, Deserialize, Type, tauri_specta::Event)]
pub struct Navigate {
    pub page: Page,
}

/// Quit was chosen while changes are not in the cloud yet: the window asks.
#[derive(Debug, Clone, Serialize, Deserialize, Type, tauri_specta::Event)]
pub struct QuitRequested {
    pub warning: String,
}

/// The commands and events, for the app and for exporting the bindings.
pub fn builder() -> tauri_specta::Builder<tauri::Wry> {
    tauri_specta::Builder::<tauri::Wry>::new()
        // Sizes, counts and times (u64 and i64 in Rust) arrive as numbers:
        // exact up to 2^53 (9 PB, or the year 285 million), which is enough.
        .dangerously_cast_bigints_to_number()
        // One TypeScript type per Rust type (not one per direction).
        .disable_serde_phases()
        .commands(tauri_specta::collect_commands![
            status,
            drives,
            test_store,
            add_drive,
            remove_drive,
            mount_drive,
            unmount_drive,
            lock,
            unlock,
            pause,
            resume,
            sync_now,
            snapshots,
            browse,
            restore,
            open_drive,
            open_log_folder,
            settings,
            save_settings,
            set_limits,
            change_drive,
            activity,
            password_strength,
            suggest_mount,
            quit,
        ])
        .events(tauri_specta::collect_events![
            StatusChanged,
            ActivityAdded,
            Navigate,
            QuitRequested
        ])
}

/// One request on a connection of its own.
pub async fn call(shared: &Shared, req: Request) -> Result<Reply, UiError> {
    let mut c = Client::connect_to(&shared.socket).await.map_err(|e| UiError {
        code: "no_service".into(),
        message: e.message,
    })?;
    Ok(c.call(req).await?)
}

fn unexpected(r: Reply) -> UiError {
    UiError {
        code: "internal".into(),
        message: format!("the service gave an answer this app does not expect ({r:?}); is it a newer version?"),
    }
}

async fn done(shared: &Shared, req: Request) -> Result<String, UiError> {
    match call(shared, req).await? {
        Reply::Done { message, warnings } if warnings.is_empty() => Ok(message),
        Reply::Done { message, warnings } => Ok(format!("{message} ({})", warnings.join("; "))),
        r => Err(unexpected(r)),
    }
}

/// The service's state now (asked afresh), and what the tray shows for it.
#[tauri::command]
#[specta::specta]
pub async fn status(app: AppHandle, shared: State<'_, Shared>) -> Result<AppStatus, UiError> {
    crate::link::refresh(&app).await;
    Ok(shared.status())
}

#[tauri::command]
#[specta::specta]
pub async fn drives(shared: State<'_, Shared>) -> Result<Vec<DriveInfo>, UiError> {
    match call(&shared, Request::ListDrives).await? {
        Reply::Drives { drives } => Ok(drives),
        r => Err(unexpected(r)),
    }
}

/// Opens the store with the credentials given (saved ones when empty) and
/// says whether it holds a vault.
#[tauri::command]
#[specta::specta]
pub async fn test_store(
    shared: State<'_, Shared>,
    store: String,
    credentials: Credentials,
) -> Result<StoreCheck, UiError> {
    match call(
        &shared,
        Request::TestStore {
            store,
            credentials: credentials.into_api(),
        },
    )
    .await?
    {
        Reply::StoreChecked { vault, message } => Ok(StoreCheck { vault, message }),
        r => Err(unexpected(r)),
    }
}

/// Adds a drive: creates its vault first when `create`, then mounts it and
/// pins the folders to keep offline.
#[tauri::command]
#[specta::specta]
pub async fn add_drive(app: AppHandle, shared: State<'_, Shared>, form: DriveForm) -> Result<Added, UiError> {
    let name = form.name.clone();
    let offline = form.offline.clone();
    let add = AddDrive {
        name: form.name,
        store: form.store,
        mount: PathBuf::from(form.mount),
        password: Secret::new(form.password),
        credentials: form.credentials.into_api(),
        remember: form.remember,
        settings: DriveChange {
            cache_size_mib: form.cache_size_mib,
            ..Default::default()
        },
    };
    let mut added = if form.create {
        match call(&shared, Request::CreateDrive(add)).await? {
            Reply::Created {
                message,
                recovery_key,
                warnings,
            } => Added {
                message,
                recovery_key: Some(recovery_key.expose().to_string()),
                warnings,
            },
            r => return Err(unexpected(r)),
        }
    } else {
        match call(&shared, Request::AddDrive(add)).await? {
            Reply::Done { message, warnings } => Added {
                message,
                recovery_key: None,
                warnings,
            },
            r => return Err(unexpected(r)),
        }
    };
    for path in offline {
        let req = Request::Pin {
            drive: name.clone(),
            path: path.clone(),
            on: true,
        };
        if let Err(e) = call(&shared, req).await {
            added
                .warnings
                .push(format!("{path} could not be kept offline: {}", e.message));
        }
    }
    crate::link::refresh(&app).await;
    Ok(added)
}

#[tauri::command]
#[specta::specta]
pub async fn remove_drive(
    app: AppHandle,
    shared: State<'_, Shared>,
    drive: String,
    forget_secrets: bool,
) -> Result<String, UiError> {
    let r = done(&shared, Request::RemoveDrive { drive, forget_secrets }).await;
    crate::link::refresh(&app).await;
    r
}

#[tauri::command]
#[specta::specta]
pub async fn mount_drive(app: AppHandle, shared: State<'_, Shared>, drive: String) -> Result<String, UiError> {
    let r = done(&shared, Request::Mount { drive }).await;
    crate::link::refresh(&app).await;
    r
}

#[tauri::command]
#[specta::specta]
pub async fn unmount_drive(app: AppHandle, shared: State<'_, Shared>, drive: String) -> Result<String, UiError> {
    let r = done(&shared, Request::Unmount { drive }).await;
    crate::link::refresh(&app).await;
    r
}

/// Locks one drive, or every drive when `drive` is null.
#[tauri::command]
#[specta::specta]
pub async fn lock(app: AppHandle, shared: State<'_, Shared>, drive: Option<String>) -> Result<String, UiError> {
    let r = done(&shared, Request::Lock { drive }).await;
    crate::link::refresh(&app).await;
    r
}

/// Unlocks a drive with the password given, or the keyring's when null.
#[tauri::command]
#[specta::specta]
pub async fn unlock(
    app: AppHandle,
    shared: State<'_, Shared>,
    drive: String,
    password: Option<String>,
    remember: bool,
) -> Result<String, UiError> {
    let req = Request::Unlock {
        drive,
        password: password.map(Secret::new),
        remember,
    };
    let r = done(&shared, req).await;
    crate::link::refresh(&app).await;
    r
}

#[tauri::command]
#[specta::specta]
pub async fn pause(app: AppHandle, shared: State<'_, Shared>, drive: Option<String>) -> Result<String, UiError> {
    let r = done(&shared, Request::Pause { drive }).await;
    crate::link::refresh(&app).await;
    r
}

#[tauri::command]
#[specta::specta]
pub async fn resume(app: AppHandle, shared: State<'_, Shared>, drive: Option<String>) -> Result<String, UiError> {
    let r = done(&shared, Request::Resume { drive }).await;
    crate::link::refresh(&app).await;
    r
}

#[tauri::command]
#[specta::specta]
pub async fn sync_now(app: AppHandle, shared: State<'_, Shared>, drive: String) -> Result<String, UiError> {
    let r = done(&shared, Request::SyncNow { drive }).await;
    crate::link::refresh(&app).await;
    r
}

/// A drive's snapshots, oldest first.
#[tauri::command]
#[specta::specta]
pub async fn snapshots(shared: State<'_, Shared>, drive: String) -> Result<Vec<SnapshotInfo>, UiError> {
    match call(&shared, Request::Snapshots { drive }).await? {
        Reply::Snapshots { snapshots } => Ok(snapshots),
        r => Err(unexpected(r)),
    }
}

/// One folder of a snapshot (`path` "" is its top), folders first.
#[tauri::command]
#[specta::specta]
pub async fn browse(
    shared: State<'_, Shared>,
    drive: String,
    snapshot: String,
    path: String,
) -> Result<Vec<Entry>, UiError> {
    match call(&shared, Request::Browse { drive, snapshot, path }).await? {
        Reply::Entries { entries } => Ok(entries),
        r => Err(unexpected(r)),
    }
}

/// Restores a file or folder as it was in snapshot `at`: back to its place
/// when `to` is null, else into the folder `to`.
#[tauri::command]
#[specta::specta]
pub async fn restore(
    shared: State<'_, Shared>,
    drive: String,
    path: String,
    at: String,
    to: Option<String>,
) -> Result<Restored, UiError> {
    let req = Request::Restore {
        drive,
        path,
        at,
        to: to.filter(|t| !t.is_empty()).map(PathBuf::from),
    };
    match call(&shared, req).await? {
        Reply::Restored { to, files, bytes } => Ok(Restored {
            to: to.display().to_string(),
            files,
            bytes,
        }),
        r => Err(unexpected(r)),
    }
}

/// Opens a mounted drive in the system's file manager.
#[tauri::command]
#[specta::specta]
pub async fn open_drive(app: AppHandle, shared: State<'_, Shared>, drive: String) -> Result<(), UiError> {
    let status = shared.status();
    let d = status
        .service
        .as_ref()
        .and_then(|s| s.drives.iter().find(|d| d.name == drive))
        .ok_or_else(|| local(format!("there is no drive named `{drive}`")))?;
    if !d.mounted {
        return Err(local(format!("{drive} is not mounted; mount it first")));
    }
    open_path(&app, &d.mount)
}

/// Opens the service's log folder in the file manager.
#[tauri::command]
#[specta::specta]
pub async fn open_log_folder(app: AppHandle, shared: State<'_, Shared>) -> Result<(), UiError> {
    let dir = shared
        .status()
        .service
        .and_then(|s| s.log_dir)
        .ok_or_else(|| local("the service has not said where its logs are (is it running?)"))?;
    open_path(&app, &dir)
}

pub fn open_path(app: &AppHandle, path: &std::path::Path) -> Result<(), UiError> {
    use tauri_plugin_opener::OpenerExt;
    app.opener()
        .open_path(path.display().to_string(), None::<&str>)
        .map_err(|e| local(format!("{} could not be opened: {e}", path.display())))
}

#[tauri::command]
#[specta::specta]
pub async fn settings(app: AppHandle, shared: State<'_, Shared>) -> Result<Settings, UiError> {
    use tauri_plugin_autostart::ManagerExt;
    let mut s = shared.settings.lock().unwrap_or_else(|e| e.into_inner()).clone();
    // What is installed wins over what was saved: the person may have
    // removed the autostart entry by hand.
    if let Ok(on) = app.autolaunch().is_enabled() {
        s.start_at_login = on;
    }
    Ok(s)
}

#[tauri::command]
#[specta::specta]
pub async fn save_settings(app: AppHandle, shared: State<'_, Shared>, settings: Settings) -> Result<Settings, UiError> {
    use tauri_plugin_autostart::ManagerExt;
    let auto = app.autolaunch();
    let r = if settings.start_at_login {
        auto.enable()
    } else {
        auto.disable()
    };
    // Disabling what was never enabled is not an error worth showing.
    if let Err(e) = r {
        if settings.start_at_login || auto.is_enabled().unwrap_or(false) {
            return Err(local(format!("start at login could not be changed: {e}")));
        }
    }
    if let Some(path) = &shared.settings_path {
        settings::save(path, &settings)
            .map_err(|e| local(format!("the settings could not be saved to {}: {e}", path.display())))?;
    }
    *shared.settings.lock().unwrap_or_else(|e| e.into_inner()) = settings.clone();
    Ok(settings)
}

/// A drive's bandwidth limits in bytes per second; null for none.
#[tauri::command]
#[specta::specta]
pub async fn set_limits(
    app: AppHandle,
    shared: State<'_, Shared>,
    drive: String,
    upload: Option<u64>,
    download: Option<u64>,
) -> Result<String, UiError> {
    let r = done(
        &shared,
        Request::SetLimits {
            drive,
            upload,
            download,
        },
    )
    .await;
    crate::link::refresh(&app).await;
    r
}

#[tauri::command]
#[specta::specta]
pub async fn change_drive(
    app: AppHandle,
    shared: State<'_, Shared>,
    drive: String,
    change: DriveChange,
) -> Result<String, UiError> {
    let r = done(&shared, Request::ChangeDrive { drive, change }).await;
    crate::link::refresh(&app).await;
    r
}

/// What happened lately, newest first.
#[tauri::command]
#[specta::specta]
pub fn activity(shared: State<'_, Shared>) -> Vec<ActivityItem> {
    shared
        .activity
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .cloned()
        .collect()
}

/// Rates a new vault password; `inputs` are words the person already gave
/// (the drive's name, the store), which make a password weaker.
#[tauri::command]
#[specta::specta]
pub fn password_strength(password: String, inputs: Vec<String>) -> Strength {
    strength(&password, &inputs)
}

pub fn strength(password: &str, inputs: &[String]) -> Strength {
    if password.is_empty() {
        return Strength {
            score: 0,
            warning: None,
            suggestions: vec![],
            crack_time: "no time".into(),
        };
    }
    let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
    let e = zxcvbn::zxcvbn(password, &inputs);
    let feedback = e.feedback();
    Strength {
        score: u8::from(e.score()),
        warning: feedback.and_then(|f| f.warning()).map(|w| w.to_string()),
        suggestions: feedback
            .map(|f| f.suggestions().iter().map(|s| s.to_string()).collect())
            .unwrap_or_default(),
        crack_time: e.crack_times().offline_slow_hashing_1e4_per_second().to_string(),
    }
}

/// Where a new drive could be mounted: `~/Nimbus/<name>`.
#[tauri::command]
#[specta::specta]
pub fn suggest_mount(name: String) -> String {
    let home = directories::BaseDirs::new()
        .map(|d| d.home_dir().to_path_buf())
        .unwrap_or_else(|| PathBuf::from("/"));
    let name: String = name
        .trim()
        .chars()
        .map(|c| if c == '/' || c == '\\' { '-' } else { c })
        .collect();
    let name = if name.is_empty() { "Drive".to_string() } else { name };
    home.join("Nimbus").join(name).display().to_string()
}

/// Quits. Unless `force`, while changes are not in the cloud yet, answers
/// the warning instead and stays.
#[tauri::command]
#[specta::specta]
pub async fn quit(app: AppHandle, shared: State<'_, Shared>, force: bool) -> Result<Option<String>, UiError> {
    if !force {
        crate::link::refresh(&app).await;
        let status = shared.status();
        if let Some(w) = model::quit_warning(status.service.as_ref(), shared.started_service()) {
            return Ok(Some(w));
        }
    }
    crate::link::quit(&app);
    Ok(None)
}

/// Asks the window to show a page, showing the window first.
pub fn navigate(app: &AppHandle, page: Page) {
    crate::show_window(app);
    let _ = Navigate { page }.emit(app);
}

/// The folder of the first mounted drive (the tray's Open drive).
pub fn first_mounted(status: &AppStatus) -> Option<PathBuf> {
    status
        .service
        .as_ref()?
        .drives
        .iter()
        .find(|d| d.mounted)
        .map(|d| d.mount.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use nimbus_api::ErrorCode;

    /// Writes `ui/src/bindings.ts` from the commands and events above, and
    /// fails when the committed file was out of date (CI then shows the
    /// diff), so the UI never runs against types copied by hand.
    #[test]
    fn bindings_are_current() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../ui/src/bindings.ts");
        let before = std::fs::read_to_string(&path).unwrap_or_default();
        builder()
            .export(
                specta_typescript::Typescript::default()
                    .header("// Generated by src-tauri (cargo test -p nimbus-app bindings_are_current); do not edit."),
                &path,
            )
            .expect("export the bindings");
        let after = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            before == after,
            "ui/src/bindings.ts was out of date and has been regenerated; commit it"
        );
    }

    #[test]
    fn credentials_left_empty_are_none() {
        assert!(Credentials::default().into_api().is_none());
        let c = Credentials {
            access_key_id: Some("GK1".into()),
            secret_access_key: Some(String::new()),
            password: None,
        };
        let s = c.into_api().unwrap();
        assert_eq!(s.access_key_id.as_deref(), Some("GK1"));
        assert!(s.secret_access_key.is_none());
    }

    #[test]
    fn strength_rates_passwords() {
        assert_eq!(strength("", &[]).score, 0);
        let weak = strength("password1", &[]);
        assert!(weak.score <= 1, "{weak:?}");
        assert!(weak.warning.is_some() || !weak.suggestions.is_empty());
        let strong = strength("correct horse battery staple orbit 7!", &[]);
        assert_eq!(strong.score, 4, "{strong:?}");
        // The drive's own name makes a password weaker.
        let named = strength("photosvault2026", &["photosvault".into()]);
        let unnamed = strength("photosvault2026", &[]);
        assert!(named.score <= unnamed.score);
    }

    #[test]
    fn mount_points_are_suggested_in_the_home_folder() {
        use std::path::Path;
        let m = suggest_mount("Photos/2026".into());
        assert!(Path::new(&m).ends_with(Path::new("Nimbus").join("Photos-2026")), "{m}");
        assert!(Path::new(&m).is_absolute());
        assert!(Path::new(&suggest_mount("  ".into())).ends_with(Path::new("Nimbus").join("Drive")));
    }

    #[test]
    fn api_errors_keep_their_code() {
        let e: UiError = ApiError::new(ErrorCode::WrongPassword, "wrong password").into();
        assert_eq!(e.code, "wrong_password");
        assert_eq!(e.message, "wrong password");
    }
}

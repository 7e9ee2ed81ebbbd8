//! What the window may ask the shell, and the list of events the shell
//! sends it (their types are in [`crate::types`]). The TypeScript side
//! (`ui/src/bindings.ts`) is generated from these by tauri-specta in the
//! `bindings_are_current` test; the UI calls nothing else.
//!
//! Each command that needs the service opens its own connection
//! ([`crate::link::call`]).

use crate::link::call;
use crate::model::{self, ActivityItem};
use crate::settings::{self, Settings};
use crate::types::{
    ActivityAdded, Added, Credentials, DriveForm, Navigate, QuitRequested, Restored, StatusChanged, StoreCheck,
    Strength, UiError, UiErrorCode,
};
use crate::{AppStatus, Shared};
use nimbus_api::{AddDrive, DriveChange, DriveInfo, Entry, ErrorCode, Reply, Request, Secret, SnapshotInfo};
use std::path::PathBuf;
use tauri::{AppHandle, Manager, State};

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
            open_in_drive,
            show_in_folder,
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

fn unexpected(r: Reply) -> UiError {
    UiError {
        code: UiErrorCode::Service(ErrorCode::Internal),
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

/// Sends a request answered with `Done`, then asks for the status afresh
/// (also after a failure), so the window and the tray show its effect at
/// once rather than at the service's next event.
async fn relay(app: &AppHandle, req: Request) -> Result<String, UiError> {
    let r = done(&app.state::<Shared>(), req).await;
    crate::link::refresh(app).await;
    r
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
        password: form.password,
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
                recovery_key: Some(recovery_key),
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
pub async fn remove_drive(app: AppHandle, drive: String, forget_secrets: bool) -> Result<String, UiError> {
    relay(&app, Request::RemoveDrive { drive, forget_secrets }).await
}

#[tauri::command]
#[specta::specta]
pub async fn mount_drive(app: AppHandle, drive: String) -> Result<String, UiError> {
    relay(&app, Request::Mount { drive }).await
}

#[tauri::command]
#[specta::specta]
pub async fn unmount_drive(app: AppHandle, drive: String) -> Result<String, UiError> {
    relay(&app, Request::Unmount { drive }).await
}

/// Locks one drive, or every drive when `drive` is null.
#[tauri::command]
#[specta::specta]
pub async fn lock(app: AppHandle, drive: Option<String>) -> Result<String, UiError> {
    relay(&app, Request::Lock { drive }).await
}

/// Unlocks a drive with the password given, or the keyring's when null.
#[tauri::command]
#[specta::specta]
pub async fn unlock(
    app: AppHandle,
    drive: String,
    password: Option<Secret>,
    remember: bool,
) -> Result<String, UiError> {
    relay(
        &app,
        Request::Unlock {
            drive,
            password,
            remember,
        },
    )
    .await
}

#[tauri::command]
#[specta::specta]
pub async fn pause(app: AppHandle, drive: Option<String>) -> Result<String, UiError> {
    relay(&app, Request::Pause { drive }).await
}

#[tauri::command]
#[specta::specta]
pub async fn resume(app: AppHandle, drive: Option<String>) -> Result<String, UiError> {
    relay(&app, Request::Resume { drive }).await
}

#[tauri::command]
#[specta::specta]
pub async fn sync_now(app: AppHandle, drive: String) -> Result<String, UiError> {
    relay(&app, Request::SyncNow { drive }).await
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
        .ok_or_else(|| UiError::local(format!("there is no drive named `{drive}`")))?;
    if !d.mounted {
        return Err(UiError::local(format!("{drive} is not mounted; mount it first")));
    }
    crate::open_path(&app, &d.mount)
}

/// Where `path` (inside drive `drive`) is on this computer: under the
/// drive's mount point, refused if it climbs out of it or is gone.
fn in_drive(shared: &Shared, drive: &str, path: &str) -> Result<std::path::PathBuf, UiError> {
    let status = shared.status();
    let d = status
        .service
        .as_ref()
        .and_then(|s| s.drives.iter().find(|d| d.name == drive))
        .ok_or_else(|| UiError::local(format!("there is no drive named `{drive}`")))?;
    if !d.mounted || d.locked {
        return Err(UiError::local(format!("{drive} is not open; mount or unlock it first")));
    }
    let at = crate::model::inside(&d.mount, path)
        .ok_or_else(|| UiError::local(format!("{path} is not a place inside {drive}")))?;
    if !at.exists() {
        return Err(UiError::local(format!("{path} is no longer in {drive}")));
    }
    Ok(at)
}

/// Opens a file or folder of a drive with its usual application.
#[tauri::command]
#[specta::specta]
pub async fn open_in_drive(
    app: AppHandle,
    shared: State<'_, Shared>,
    drive: String,
    path: String,
) -> Result<(), UiError> {
    let at = in_drive(&shared, &drive, &path)?;
    crate::open_path(&app, &at)
}

/// Shows a file or folder of a drive selected in its folder, in the
/// system's file manager.
#[tauri::command]
#[specta::specta]
pub async fn show_in_folder(
    app: AppHandle,
    shared: State<'_, Shared>,
    drive: String,
    path: String,
) -> Result<(), UiError> {
    use tauri_plugin_opener::OpenerExt;
    let at = in_drive(&shared, &drive, &path)?;
    app.opener()
        .reveal_item_in_dir(&at)
        .map_err(|e| UiError::local(format!("{} could not be shown in its folder: {e}", at.display())))
}

/// Opens the service's log folder in the file manager.
#[tauri::command]
#[specta::specta]
pub async fn open_log_folder(app: AppHandle, shared: State<'_, Shared>) -> Result<(), UiError> {
    let dir = shared
        .status()
        .service
        .and_then(|s| s.log_dir)
        .ok_or_else(|| UiError::local("the service has not said where its logs are (is it running?)"))?;
    crate::open_path(&app, &dir)
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
            return Err(UiError::local(format!("start at login could not be changed: {e}")));
        }
    }
    if let Some(path) = &shared.settings_path {
        settings::save(path, &settings)
            .map_err(|e| UiError::local(format!("the settings could not be saved to {}: {e}", path.display())))?;
    }
    *shared.settings.lock().unwrap_or_else(|e| e.into_inner()) = settings.clone();
    Ok(settings)
}

/// A drive's bandwidth limits in bytes per second; null for none.
#[tauri::command]
#[specta::specta]
pub async fn set_limits(
    app: AppHandle,
    drive: String,
    upload: Option<u64>,
    download: Option<u64>,
) -> Result<String, UiError> {
    relay(
        &app,
        Request::SetLimits {
            drive,
            upload,
            download,
        },
    )
    .await
}

#[tauri::command]
#[specta::specta]
pub async fn change_drive(app: AppHandle, drive: String, change: DriveChange) -> Result<String, UiError> {
    relay(&app, Request::ChangeDrive { drive, change }).await
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
pub fn password_strength(password: Secret, inputs: Vec<String>) -> Strength {
    strength(password.expose(), &inputs)
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

#[cfg(test)]
mod tests {
    use super::*;

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
}

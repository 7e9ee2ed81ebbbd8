//! The tray icon and its menu. On Linux a tray icon gets no clicks, only its
//! menu works, so everything the tray offers is a menu item; the first one
//! is the status line, always [`crate::model::summary`] of the service's
//! last status.

use crate::link::call;
use crate::model::TrayIcon;
use crate::types::{AppStatus, Navigate, Page, QuitRequested, StatusChanged, UiError};
use crate::Shared;
use tauri::image::Image;
use tauri::menu::{Menu, MenuEvent, MenuItem, PredefinedMenuItem};
use tauri::{AppHandle, Manager, Wry};
use tauri_specta::Event as _;

const TRAY_ID: &str = "nimbus";

/// The menu items whose text changes.
pub struct TrayItems {
    status: MenuItem<Wry>,
    open: MenuItem<Wry>,
    pause: MenuItem<Wry>,
    lock: MenuItem<Wry>,
}

fn icon_bytes(icon: TrayIcon) -> &'static [u8] {
    match icon {
        TrayIcon::Idle => include_bytes!("../../icons/tray/idle.png"),
        TrayIcon::Syncing => include_bytes!("../../icons/tray/syncing.png"),
        TrayIcon::Paused => include_bytes!("../../icons/tray/paused.png"),
        TrayIcon::Offline => include_bytes!("../../icons/tray/offline.png"),
        TrayIcon::Error => include_bytes!("../../icons/tray/error.png"),
        TrayIcon::Locked => include_bytes!("../../icons/tray/locked.png"),
    }
}

pub fn create(app: &AppHandle) -> tauri::Result<()> {
    let status = MenuItem::with_id(app, "status", "Connecting to the Nimbus service…", false, None::<&str>)?;
    let open = MenuItem::with_id(app, "open", "Open drive", false, None::<&str>)?;
    let pause = MenuItem::with_id(app, "pause", "Pause", false, None::<&str>)?;
    let lock = MenuItem::with_id(app, "lock", "Lock", false, None::<&str>)?;
    let snapshots = MenuItem::with_id(app, "snapshots", "Snapshots…", true, None::<&str>)?;
    let settings = MenuItem::with_id(app, "settings", "Settings…", true, None::<&str>)?;
    let window = MenuItem::with_id(app, "window", "Show Nimbus", true, None::<&str>)?;
    let quit = MenuItem::with_id(app, "quit", "Quit", true, None::<&str>)?;
    let menu = Menu::with_items(
        app,
        &[
            &status,
            &PredefinedMenuItem::separator(app)?,
            &open,
            &pause,
            &lock,
            &PredefinedMenuItem::separator(app)?,
            &snapshots,
            &settings,
            &window,
            &PredefinedMenuItem::separator(app)?,
            &quit,
        ],
    )?;
    tauri::tray::TrayIconBuilder::with_id(TRAY_ID)
        .icon(Image::from_bytes(icon_bytes(TrayIcon::Error))?)
        .tooltip("Nimbus")
        .menu(&menu)
        .show_menu_on_left_click(true)
        .on_menu_event(on_menu)
        .build(app)?;
    app.manage(TrayItems {
        status,
        open,
        pause,
        lock,
    });
    // The tray follows the status as the window does: through the event
    // the link publishes, so the link does not know the tray exists.
    let handle = app.clone();
    StatusChanged::listen(app, move |e| update(&handle, &e.payload.0));
    Ok(())
}

/// Shows `status` in the tray: the line, the icon, and which of Pause /
/// Resume and Lock / Unlock is offered.
pub fn update(app: &AppHandle, status: &AppStatus) {
    let Some(items) = app.try_state::<TrayItems>() else {
        return;
    };
    let s = &status.summary;
    let connected = status.service.is_some();
    let any_drive = status.service.as_ref().is_some_and(|s| !s.drives.is_empty());
    let _ = items.status.set_text(&s.line);
    let _ = items.open.set_enabled(status.first_mounted().is_some());
    let _ = items.pause.set_text(if s.all_paused { "Resume" } else { "Pause" });
    let _ = items.pause.set_enabled(connected && any_drive);
    let _ = items.lock.set_text(if s.all_locked { "Unlock" } else { "Lock" });
    let _ = items.lock.set_enabled(connected && any_drive);
    if let Some(tray) = app.tray_by_id(TRAY_ID) {
        if let Ok(img) = Image::from_bytes(icon_bytes(s.icon)) {
            let _ = tray.set_icon(Some(img));
        }
        let _ = tray.set_tooltip(Some(format!("Nimbus — {}", s.line)));
    }
}

fn on_menu(app: &AppHandle, event: MenuEvent) {
    let app = app.clone();
    match event.id.as_ref() {
        "open" => {
            if let Some(path) = app.state::<Shared>().status().first_mounted() {
                let _ = crate::open_path(&app, &path);
            }
        }
        "pause" => {
            let paused = app.state::<Shared>().status().summary.all_paused;
            tauri::async_runtime::spawn(async move {
                let req = if paused {
                    nimbus_api::Request::Resume { drive: None }
                } else {
                    nimbus_api::Request::Pause { drive: None }
                };
                say(&app, call(&app.state::<Shared>(), req).await);
                crate::link::refresh(&app).await;
            });
        }
        "lock" => {
            let status = app.state::<Shared>().status();
            tauri::async_runtime::spawn(async move {
                if status.summary.all_locked {
                    unlock_all(&app, &status).await;
                } else {
                    let req = nimbus_api::Request::Lock { drive: None };
                    say(&app, call(&app.state::<Shared>(), req).await);
                }
                crate::link::refresh(&app).await;
            });
        }
        "snapshots" => navigate(&app, Page::Snapshots),
        "settings" => navigate(&app, Page::Settings),
        "window" => crate::show_window(&app),
        "quit" => {
            let shared = app.state::<Shared>();
            let status = shared.status();
            match crate::model::quit_warning(status.service.as_ref(), shared.started_service()) {
                Some(warning) => {
                    crate::show_window(&app);
                    let _ = QuitRequested { warning }.emit(&app);
                }
                None => crate::link::quit(&app),
            }
        }
        _ => {}
    }
}

/// Unlocks the locked drives with the passwords in the keyring; a drive
/// whose password is not saved opens the window, where it is asked for.
async fn unlock_all(app: &AppHandle, status: &AppStatus) {
    let Some(s) = &status.service else { return };
    let mut ask = false;
    for d in s.drives.iter().filter(|d| d.locked) {
        let req = nimbus_api::Request::Unlock {
            drive: d.name.clone(),
            password: None,
            remember: false,
        };
        if call(&app.state::<Shared>(), req).await.is_err() {
            ask = true;
        }
    }
    if ask {
        navigate(app, Page::Drives);
    }
}

/// Asks the window to show a page, showing the window first.
fn navigate(app: &AppHandle, page: Page) {
    crate::show_window(app);
    let _ = Navigate { page }.emit(app);
}

/// A tray action that failed becomes a notification: the tray has no other
/// place to say it.
fn say(app: &AppHandle, r: Result<nimbus_api::Reply, UiError>) {
    if let Err(e) = r {
        crate::link::notify(
            app,
            crate::model::Note {
                summary: "Nimbus".into(),
                body: e.message,
            },
        );
    }
}

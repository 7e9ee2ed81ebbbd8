//! The Nimbus desktop app: the tray icon, the status and settings window and
//! the notifications, over the `nimbusd` service.
//!
//! **Architecture invariant:** the shell holds no file system, crypto or
//! storage logic. It talks to the service only through `nimbus-api` (one
//! connection per request, one subscribed connection for events), and the
//! window talks to the shell only through the commands and events of
//! [`commands`], whose TypeScript types are generated into
//! `ui/src/bindings.ts` by the `bindings_are_current` test.
//!
//! - [`types`]: what the window and the shell exchange (plain data).
//! - [`model`]: what to show, worked out from the service's state (pure).
//! - [`link`]: the connection to the service: starting it when it is not
//!   running, following its events, keeping [`Shared`] current, and the
//!   one way to send it a request.
//! - [`commands`]: what the window may ask.
//! - [`tray`]: the tray icon and its menu.
//! - [`settings`]: the app's own settings file.
//!
//! `commands` and `tray` use `link` and `types`; `link` uses `types` and
//! tells the tray of a new status; nothing uses `commands` but the builder.

pub mod commands;
pub mod link;
pub mod model;
pub mod settings;
pub mod tray;
pub mod types;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use tauri::Manager;

pub use commands::builder;
pub use types::AppStatus;

/// How many activity items the app keeps.
const ACTIVITY_KEPT: usize = 500;

/// What the app knows, shared by the commands, the tray and the link task.
pub struct Shared {
    pub socket: std::path::PathBuf,
    pub status: Mutex<AppStatus>,
    pub activity: Mutex<std::collections::VecDeque<model::ActivityItem>>,
    pub settings: Mutex<settings::Settings>,
    pub settings_path: Option<std::path::PathBuf>,
    /// This app started the service (so quitting stops it, and the quit
    /// warning says the changes wait on this device).
    pub started_service: AtomicBool,
    pub child: Mutex<Option<std::process::Child>>,
}

impl Shared {
    pub fn status(&self) -> AppStatus {
        self.status.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn started_service(&self) -> bool {
        self.started_service.load(Ordering::SeqCst)
    }

    pub fn push_activity(&self, item: model::ActivityItem) {
        let mut a = self.activity.lock().unwrap_or_else(|e| e.into_inner());
        a.push_front(item);
        a.truncate(ACTIVITY_KEPT);
    }

    pub fn notifications_on(&self) -> bool {
        self.settings.lock().unwrap_or_else(|e| e.into_inner()).notifications
    }
}

/// Shows and focuses the main window (a second launch, the tray menu).
pub fn show_window(app: &tauri::AppHandle) {
    if let Some(w) = app.get_webview_window("main") {
        let _ = w.unminimize();
        let _ = w.show();
        let _ = w.set_focus();
    }
}

/// Opens a folder in the system's file manager.
pub fn open_path(app: &tauri::AppHandle, path: &std::path::Path) -> Result<(), types::UiError> {
    use tauri_plugin_opener::OpenerExt;
    app.opener()
        .open_path(path.display().to_string(), None::<&str>)
        .map_err(|e| types::UiError::local(format!("{} could not be opened: {e}", path.display())))
}

/// Quits, as the tray's Quit does without asking, on SIGTERM (a logout or
/// shutdown), SIGINT (Ctrl+C in a terminal) and SIGHUP: so the window's
/// size and place are saved and a service this app started is asked to
/// stop, instead of the process just ending.
#[cfg(unix)]
fn quit_on_signals(app: tauri::AppHandle) {
    tauri::async_runtime::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let (mut term, mut int, mut hup) = match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
            signal(SignalKind::hangup()),
        ) {
            (Ok(t), Ok(i), Ok(h)) => (t, i, h),
            _ => {
                tracing::warn!("signals cannot be caught: a logout will end the app without saving its window");
                return;
            }
        };
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
            _ = hup.recv() => "SIGHUP",
        };
        tracing::info!("{name}: quitting");
        link::quit(&app);
    });
}

/// Starts the app. `--hidden` (what start at login passes) starts it in the
/// tray without showing the window.
pub fn run() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("NIMBUS_APP_LOG").unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let hidden = std::env::args().any(|a| a == "--hidden");
    let specta = builder();
    let invoke = specta.invoke_handler();
    let result = tauri::Builder::default()
        // First, so a second launch hands over before anything else starts.
        .plugin(tauri_plugin_single_instance::init(|app, _args, _cwd| show_window(app)))
        .plugin(tauri_plugin_autostart::init(
            tauri_plugin_autostart::MacosLauncher::LaunchAgent,
            Some(vec!["--hidden"]),
        ))
        .plugin(
            tauri_plugin_window_state::Builder::default()
                .with_state_flags(
                    tauri_plugin_window_state::StateFlags::all() - tauri_plugin_window_state::StateFlags::VISIBLE,
                )
                .build(),
        )
        .plugin(tauri_plugin_opener::init())
        .invoke_handler(invoke)
        .setup(move |app| {
            specta.mount_events(app);
            let settings_path = app.path().app_config_dir().ok().map(|d| d.join("settings.json"));
            let settings = settings::load(settings_path.as_deref());
            app.manage(Shared {
                socket: nimbus_api::socket_path(),
                status: Mutex::new(AppStatus::connecting()),
                activity: Mutex::new(Default::default()),
                settings: Mutex::new(settings),
                settings_path,
                started_service: AtomicBool::new(false),
                child: Mutex::new(None),
            });
            tray::create(app.handle())?;
            if let Some(w) = app.get_webview_window("main") {
                if hidden {
                    let _ = w.hide();
                } else {
                    let _ = w.show();
                }
            }
            link::start(app.handle().clone());
            #[cfg(unix)]
            quit_on_signals(app.handle().clone());
            Ok(())
        })
        .on_window_event(|window, event| {
            // Closing the window leaves the app in the tray; Quit is in the
            // tray menu.
            if let tauri::WindowEvent::CloseRequested { api, .. } = event {
                let _ = window.hide();
                api.prevent_close();
            }
        })
        .build(tauri::generate_context!());
    match result {
        Ok(app) => app.run(|_, _| {}),
        Err(e) => {
            eprintln!("nimbus-app: could not start: {e}");
            std::process::exit(1);
        }
    }
}

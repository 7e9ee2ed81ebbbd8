//! The app's link to the service: starts `nimbusd` when it is not running
//! (and remembers that it did, so only then does quitting stop it), follows
//! its events on a subscribed connection, and keeps [`Shared`]'s status, the
//! activity list, the tray and the window current. Notifications are sent
//! from here too, and every other request goes through [`call`].

use crate::model::{Note, Watch};
use crate::types::{ActivityAdded, AppStatus, StatusChanged, UiError};
use crate::Shared;
use nimbus_api::{Client, Event, Reply, Request};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tauri::{AppHandle, Manager};
use tauri_specta::Event as _;
use tokio::sync::mpsc;

/// Events arriving closer together than this are handled with one status
/// refresh.
const SETTLE: Duration = Duration::from_millis(200);
/// How long to wait for a service this app started to listen.
const START_WAIT: Duration = Duration::from_secs(10);

/// Starts the link task.
pub fn start(app: AppHandle) {
    tauri::async_runtime::spawn(async move { follow(app).await });
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Where `nimbusd` is: next to this app's binary (a package or a build
/// folder), else on `PATH`.
fn nimbusd_path() -> PathBuf {
    let name = if cfg!(windows) { "nimbusd.exe" } else { "nimbusd" };
    if let Some(dir) = std::env::current_exe().ok().and_then(|p| p.parent().map(PathBuf::from)) {
        let p = dir.join(name);
        if p.is_file() {
            return p;
        }
    }
    PathBuf::from(name)
}

/// Starts `nimbusd` in the background, detached from this app's terminal
/// and process group so it outlives the app when it is killed.
fn spawn_service(shared: &Shared) -> Result<(), String> {
    let path = std::env::var_os("NIMBUS_NIMBUSD")
        .map(PathBuf::from)
        .unwrap_or_else(nimbusd_path);
    let mut cmd = std::process::Command::new(&path);
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
    }
    let child = cmd
        .spawn()
        .map_err(|e| format!("the Nimbus service ({}) could not be started: {e}", path.display()))?;
    tracing::info!("started the service: {} (pid {})", path.display(), child.id());
    shared.started_service.store(true, Ordering::SeqCst);
    *shared.child.lock().unwrap_or_else(|e| e.into_inner()) = Some(child);
    Ok(())
}

/// One request on a connection of its own: a Unix socket in the user's
/// runtime folder costs microseconds, and requests of the window never
/// queue behind each other or behind the event stream.
pub async fn call(shared: &Shared, req: Request) -> Result<Reply, UiError> {
    let mut c = Client::connect_to(&shared.socket)
        .await
        .map_err(|e| UiError::no_service(e.message))?;
    Ok(c.call(req).await?)
}

/// Asks the service for its status and publishes it (to [`Shared`], the
/// tray and the window).
pub async fn refresh(app: &AppHandle) {
    let shared = app.state::<Shared>();
    let status = match Client::connect_to(&shared.socket).await {
        Ok(mut c) => match c.call(Request::Status { drive: None }).await {
            Ok(Reply::Status(s)) => AppStatus::new(Some(s), None, shared.started_service()),
            Ok(r) => AppStatus::new(
                None,
                Some(format!("the service answered a status request with {r:?}")),
                shared.started_service(),
            ),
            Err(e) => AppStatus::new(None, Some(e.message), shared.started_service()),
        },
        Err(e) => AppStatus::new(None, Some(e.message), shared.started_service()),
    };
    publish(app, status);
}

fn publish(app: &AppHandle, status: AppStatus) {
    let shared = app.state::<Shared>();
    *shared.status.lock().unwrap_or_else(|e| e.into_inner()) = status.clone();
    let _ = StatusChanged(status).emit(app);
}

/// Sends a desktop notification, unless they are turned off. notify-rust
/// talks D-Bus synchronously, so it runs off the async threads.
pub fn notify(app: &AppHandle, note: Note) {
    if !app.state::<Shared>().notifications_on() {
        return;
    }
    tauri::async_runtime::spawn_blocking(move || {
        let r = notify_rust::Notification::new()
            .appname("Nimbus")
            .summary(&note.summary)
            .body(&note.body)
            .icon("nimbus-app")
            .show();
        if let Err(e) = r {
            tracing::warn!("a notification could not be shown: {e}");
        }
    });
}

/// Connects (starting the service once if nothing listens), then follows
/// its events until the connection ends; then again, for as long as the app
/// runs.
async fn follow(app: AppHandle) {
    let mut watch = Watch::default();
    let mut tried_start = false;
    loop {
        let socket = app.state::<Shared>().socket.clone();
        let mut client = match Client::connect_to(&socket).await {
            Ok(c) => c,
            Err(e) => {
                if !tried_start {
                    tried_start = true;
                    let shared = app.state::<Shared>();
                    match spawn_service(&shared) {
                        Ok(()) => {
                            publish(&app, AppStatus::new(None, None, true));
                            wait_for(&socket).await;
                            continue;
                        }
                        Err(why) => publish(&app, AppStatus::new(None, Some(why), false)),
                    }
                } else {
                    let started = app.state::<Shared>().started_service();
                    publish(&app, AppStatus::new(None, Some(e.message), started));
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
        };
        match client.call(Request::Subscribe).await {
            Ok(Reply::Subscribed) => {}
            Ok(r) => {
                tracing::warn!("the service answered subscribe with {r:?}");
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
            Err(e) => {
                tracing::warn!("subscribing to the service failed: {}", e.message);
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
        }
        refresh(&app).await;
        // Events are read by a task of their own, so waiting for the next
        // one can be given up (for the settle time, the outage tick)
        // without losing half a line.
        let (tx, mut rx) = mpsc::channel::<Event>(256);
        let reader = tauri::async_runtime::spawn(async move {
            while let Ok(Some(ev)) = client.next_event().await {
                if tx.send(ev).await.is_err() {
                    break;
                }
            }
        });
        let mut dirty = false;
        loop {
            let wait = if dirty { SETTLE } else { Duration::from_secs(1) };
            match tokio::time::timeout(wait, rx.recv()).await {
                Ok(Some(ev)) => {
                    handle(&app, &mut watch, &ev);
                    dirty = true;
                }
                Ok(None) => break,
                Err(_) => {
                    if dirty {
                        refresh(&app).await;
                        dirty = false;
                    }
                    for note in watch.tick(now()) {
                        notify(&app, note);
                    }
                }
            }
        }
        reader.abort();
        tracing::info!("the service closed the connection; reconnecting");
        refresh(&app).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn handle(app: &AppHandle, watch: &mut Watch, ev: &Event) {
    let (items, notes) = watch.event(ev, now());
    let shared = app.state::<Shared>();
    for item in items {
        shared.push_activity(item.clone());
        let _ = ActivityAdded(item).emit(app);
    }
    for note in notes {
        notify(app, note);
    }
}

async fn wait_for(socket: &std::path::Path) {
    let deadline = tokio::time::Instant::now() + START_WAIT;
    while tokio::time::Instant::now() < deadline {
        if Client::connect_to(socket).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Quits the app. A service this app started is asked to stop (it uploads
/// what it can for up to a minute, then unmounts); one it did not start is
/// left running.
pub fn quit(app: &AppHandle) {
    let shared = app.state::<Shared>();
    if shared.started_service() {
        if let Some(child) = shared.child.lock().unwrap_or_else(|e| e.into_inner()).take() {
            stop_child(child);
        }
    }
    app.exit(0);
}

#[cfg(unix)]
fn stop_child(child: std::process::Child) {
    let pid = child.id();
    match rustix::process::Pid::from_raw(pid as i32) {
        Some(p) => {
            if let Err(e) = rustix::process::kill_process(p, rustix::process::Signal::TERM) {
                tracing::warn!("the service (pid {pid}) could not be stopped: {e}");
            } else {
                tracing::info!("asked the service (pid {pid}) to stop");
            }
        }
        None => tracing::warn!("the service's pid {pid} is not valid"),
    }
    // Reaped by whoever adopts it: the app exits now, and nimbusd finishes
    // its uploads on its own.
    drop(child);
}

#[cfg(not(unix))]
fn stop_child(mut child: std::process::Child) {
    // Windows has no SIGTERM; nimbusd's own shutdown request comes with the
    // Windows service work. Until then the service is left running.
    let _ = &mut child;
}

//! The local API's listener: a Unix socket in the user's runtime folder.
//!
//! Two locks keep other users out: the socket's folder and the socket are
//! the user's alone (0700 and 0600), and every connection's peer
//! credentials (`SO_PEERCRED`) are checked against the service's own user
//! — a socket made reachable by mistake still refuses them. Each line is
//! decoded with a bound (`nimbus_api::MAX_FRAME`); a bad one is answered
//! with an error, and a line too long ends the connection (what follows it
//! cannot be trusted to be a request). Nothing a client sends can stop the
//! service.

use nimbus_api::client::{read_line, Line};
use nimbus_api::wire::Body;
use nimbus_api::{
    decode_request, encode, ApiError, ErrorCode, Event, Reply, Request, ResponseFrame, MAX_FRAME, VERSION,
};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use crate::service::Service;

#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("cannot prepare the socket folder {0}: {1}")]
    Folder(PathBuf, std::io::Error),
    #[error("another Nimbus service is already running for this user (it answers at {0}); stop it first")]
    Running(PathBuf),
    #[error("cannot listen at {0}: {1}")]
    Bind(PathBuf, std::io::Error),
}

/// Binds the socket, refusing when another service answers there already.
pub async fn listen(path: &Path) -> Result<UnixListener, ListenError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        // A folder made here is the user's alone. One that exists already
        // (a home folder, given with --socket) is left as it is, but must
        // not be open to others for writing.
        if !dir.exists() {
            std::fs::create_dir_all(dir).map_err(|e| ListenError::Folder(dir.to_path_buf(), e))?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| ListenError::Folder(dir.to_path_buf(), e))?;
        }
        let meta = std::fs::metadata(dir).map_err(|e| ListenError::Folder(dir.to_path_buf(), e))?;
        use std::os::unix::fs::MetadataExt;
        let me = rustix::process::getuid().as_raw();
        if meta.uid() != me || meta.mode() & 0o022 != 0 {
            return Err(ListenError::Folder(
                dir.to_path_buf(),
                std::io::Error::other(
                    "the folder belongs to another user or others may write in it; \
                     choose a folder of your own for the socket",
                ),
            ));
        }
    }
    if path.exists() {
        if UnixStream::connect(path).await.is_ok() {
            return Err(ListenError::Running(path.to_path_buf()));
        }
        // Left by a service that died.
        let _ = std::fs::remove_file(path);
    }
    let l = UnixListener::bind(path).map_err(|e| ListenError::Bind(path.to_path_buf(), e))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| ListenError::Bind(path.to_path_buf(), e))?;
    Ok(l)
}

pub async fn serve(listener: UnixListener, svc: Arc<Service>) {
    let me = rustix::process::getuid().as_raw();
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("accepting a connection failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let svc = svc.clone();
        tokio::spawn(async move {
            let uid = stream.peer_cred().map(|c| c.uid()).ok();
            if uid != Some(me) {
                tracing::warn!("refused a connection from user {uid:?}: only user {me} may use this service");
                let mut s = stream;
                let frame = answer(
                    0,
                    Body::Error(ApiError::new(
                        ErrorCode::NotPermitted,
                        "this Nimbus service belongs to another user; connect to your own",
                    )),
                );
                let _ = s.write_all(&encode(&frame)).await;
                return;
            }
            connection(stream, svc).await;
        });
    }
}

fn answer(id: u64, body: Body) -> ResponseFrame {
    ResponseFrame { v: VERSION, id, body }
}

async fn connection(stream: UnixStream, svc: Arc<Service>) {
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    loop {
        let line = match read_line(&mut r, MAX_FRAME).await {
            Ok(Line::Line(l)) => l,
            Ok(Line::Eof) | Err(_) => return,
            Ok(Line::TooLong) => {
                let e = ApiError::new(
                    ErrorCode::TooLarge,
                    format!("the request is longer than {MAX_FRAME} bytes; the connection is closed"),
                );
                let _ = w.write_all(&encode(&answer(0, Body::Error(e)))).await;
                return;
            }
        };
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let frame = match decode_request(&line) {
            Ok(f) => f,
            Err((id, e)) => {
                // The code only: the decoder's message can quote a value
                // of the request, and a misplaced password would be one.
                tracing::debug!("refused a request: {:?}", e.code);
                if w.write_all(&encode(&answer(id, Body::Error(e)))).await.is_err() {
                    return;
                }
                continue;
            }
        };
        if matches!(frame.req, Request::Subscribe) {
            stream_events(frame.id, w, &svc).await;
            return;
        }
        let body = match svc.handle(frame.req).await {
            Ok(r) => Body::Ok(r),
            Err(e) => Body::Error(e),
        };
        if w.write_all(&encode(&answer(frame.id, body))).await.is_err() {
            return;
        }
    }
}

/// Sends the status, then every event, until the client goes away.
async fn stream_events(id: u64, mut w: tokio::net::unix::OwnedWriteHalf, svc: &Arc<Service>) {
    let mut rx = svc.subscribe();
    let _ = w.write_all(&encode(&answer(id, Body::Ok(Reply::Subscribed)))).await;
    let svc2 = svc.clone();
    let status = tokio::task::spawn_blocking(move || svc2.status(None)).await;
    if let Ok(Ok(s)) = status {
        if w.write_all(&encode(&answer(0, Body::Event(Event::Status(s)))))
            .await
            .is_err()
        {
            return;
        }
    }
    loop {
        match rx.recv().await {
            Ok(ev) => {
                if w.write_all(&encode(&answer(0, Body::Event(ev)))).await.is_err() {
                    return;
                }
            }
            // A slow reader missed some; it gets the newest from here.
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
            Err(_) => return,
        }
    }
}

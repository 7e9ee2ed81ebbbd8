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
    answer_version, decode_request, encode, ApiError, ErrorCode, Event, Reply, Request, ResponseFrame, MAX_FRAME,
    VERSION,
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
        prepare_folder(dir).map_err(|e| ListenError::Folder(dir.to_path_buf(), e))?;
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

/// Makes the socket's folder, the user's alone, or checks the one that is
/// there, never following a symlink: in the shared temporary folder
/// another user can make the folder first, or a link of that name.
/// A folder made here is 0700. One that exists already (a home folder,
/// given with --socket) is left as it is, but must be a real folder of the
/// user's that others cannot write in.
fn prepare_folder(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    if let Some(parent) = dir.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let meta = std::fs::symlink_metadata(dir)?;
    let me = rustix::process::getuid().as_raw();
    if meta.file_type().is_symlink() {
        return Err(std::io::Error::other(
            "it is a symbolic link, which could lead anywhere; remove it, or choose a folder of \
             your own for the socket",
        ));
    }
    if !meta.is_dir() {
        return Err(std::io::Error::other(
            "it is not a folder; remove it, or choose another place for the socket",
        ));
    }
    if meta.uid() != me || meta.mode() & 0o022 != 0 {
        return Err(std::io::Error::other(
            "the folder belongs to another user or others may write in it; \
             choose a folder of your own for the socket",
        ));
    }
    Ok(())
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
                    VERSION,
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

/// An answer in protocol version `v`: the request's, so that an older
/// client can read it (see `nimbus_api::OLDEST_VERSION`).
fn answer(v: u32, id: u64, body: Body) -> ResponseFrame {
    ResponseFrame { v, id, body }
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
                let _ = w.write_all(&encode(&answer(VERSION, 0, Body::Error(e)))).await;
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
                let v = answer_version(&line);
                if w.write_all(&encode(&answer(v, id, Body::Error(e)))).await.is_err() {
                    return;
                }
                continue;
            }
        };
        if matches!(frame.req, Request::Subscribe) {
            stream_events(frame.v, frame.id, w, &svc).await;
            return;
        }
        let body = match svc.handle(frame.req).await {
            Ok(r) => Body::Ok(r),
            Err(e) => Body::Error(e),
        };
        if w.write_all(&encode(&answer(frame.v, frame.id, body))).await.is_err() {
            return;
        }
    }
}

/// Sends the status, then every event, until the client goes away.
async fn stream_events(v: u32, id: u64, mut w: tokio::net::unix::OwnedWriteHalf, svc: &Arc<Service>) {
    let mut rx = svc.subscribe();
    let _ = w.write_all(&encode(&answer(v, id, Body::Ok(Reply::Subscribed)))).await;
    let svc2 = svc.clone();
    let status = tokio::task::spawn_blocking(move || svc2.status(None)).await;
    if let Ok(Ok(s)) = status {
        if w.write_all(&encode(&answer(v, 0, Body::Event(Event::Status(s)))))
            .await
            .is_err()
        {
            return;
        }
    }
    loop {
        match rx.recv().await {
            Ok(ev) => {
                if w.write_all(&encode(&answer(v, 0, Body::Event(ev)))).await.is_err() {
                    return;
                }
            }
            // A slow reader missed some; it gets the newest from here.
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_socket_folder_that_is_a_symlink_is_refused() {
        let tmp = tempfile::tempdir().expect("tempdir");
        // A folder of our own, mode 0700: following the link, every check
        // of owner and mode would pass.
        let real = tmp.path().join("real");
        std::fs::create_dir(&real).expect("mkdir");
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        let link = tmp.path().join("nimbus");
        std::os::unix::fs::symlink(&real, &link).expect("symlink");
        let err = listen(&link.join("nimbusd.sock"))
            .await
            .expect_err("listened through a symlink");
        assert!(err.to_string().contains("symbolic link"), "{err}");
        assert!(!real.join("nimbusd.sock").exists());
    }

    #[tokio::test]
    async fn a_socket_folder_is_made_0700_and_one_open_to_others_is_refused() {
        use std::os::unix::fs::MetadataExt;
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("nimbus");
        let _l = listen(&dir.join("nimbusd.sock")).await.expect("listen");
        assert_eq!(std::fs::symlink_metadata(&dir).expect("stat").mode() & 0o777, 0o700);
        let open = tmp.path().join("open");
        std::fs::create_dir(&open).expect("mkdir");
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        let err = listen(&open.join("nimbusd.sock"))
            .await
            .expect_err("listened in a folder open to all");
        assert!(err.to_string().contains("others may write in it"), "{err}");
    }

    /// A service with one drive that was never mounted, serving at a
    /// socket in `tmp`.
    async fn serving(tmp: &Path) -> PathBuf {
        use crate::config::{Config, DriveConfig};
        let config = Config {
            drives: vec![DriveConfig {
                name: "work".into(),
                store: "memory://".into(),
                mount: tmp.join("Work"),
                mount_at_start: false,
                ..DriveConfig::default()
            }],
            ..Config::default()
        };
        let svc = Service::new(
            tmp.join("config.toml"),
            tmp.join("state"),
            config,
            tokio::runtime::Handle::current(),
        );
        let sock = tmp.join("run").join("nimbusd.sock");
        let l = listen(&sock).await.expect("listen");
        tokio::spawn(serve(l, svc));
        sock
    }

    /// Sends one line, reads the answer frame.
    async fn ask(s: &mut BufReader<UnixStream>, line: &str) -> ResponseFrame {
        s.get_mut()
            .write_all(format!("{line}\n").as_bytes())
            .await
            .expect("send");
        match read_line(s, MAX_FRAME).await.expect("read") {
            Line::Line(l) => nimbus_api::decode_response(&l).expect("decode"),
            other => panic!("no answer: {other:?}"),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_service_answers_in_the_version_of_the_request() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let sock = serving(tmp.path()).await;
        let mut s = BufReader::new(UnixStream::connect(&sock).await.expect("connect"));
        for v in [1, 2, 3] {
            let a = ask(&mut s, &format!(r#"{{"v":{v},"id":{v},"req":{{"op":"status"}}}}"#)).await;
            assert_eq!((a.v, a.id), (v, u64::from(v)));
            assert!(matches!(a.body, Body::Ok(Reply::Status(_))));
        }
        // A line that does not decode: in its own version when it has one
        // the service speaks, else in the service's.
        let a = ask(&mut s, r#"{"v":2,"id":7,"req":{"op":"format_disk"}}"#).await;
        assert_eq!(a.v, 2);
        assert!(matches!(a.body, Body::Error(ref e) if e.code == ErrorCode::BadRequest));
        let a = ask(&mut s, r#"{"v":9,"id":8,"req":{"op":"status"}}"#).await;
        assert_eq!(a.v, VERSION);
        assert!(matches!(a.body, Body::Error(ref e) if e.code == ErrorCode::UnsupportedVersion));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_multi_device_requests_answer_plainly() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let sock = serving(tmp.path()).await;
        let mut c = nimbus_api::Client::connect_to(&sock).await.expect("connect");
        let e = c
            .call(Request::Conflicts { drive: "work".into() })
            .await
            .expect_err("conflicts of a drive not mounted");
        assert_eq!(e.code, ErrorCode::Invalid);
        assert!(e.message.contains("not mounted"), "{}", e.message);
        let e = c
            .call(Request::ResolveConflict {
                drive: "work".into(),
                path: "/a (conflict laptop 2026-12-07 14.05 UTC).txt".into(),
                keep: nimbus_api::Keep::Original,
            })
            .await
            .expect_err("resolve in a drive not mounted");
        assert_eq!(e.code, ErrorCode::Invalid);
        let e = c
            .call(Request::Conflicts { drive: "nope".into() })
            .await
            .expect_err("a missing drive answered");
        assert_eq!(e.code, ErrorCode::NoSuchDrive);
        // Never opened: the vault, and so this device in it, is unknown.
        let e = c
            .call(Request::Devices { drive: "work".into() })
            .await
            .expect_err("devices of an unopened drive");
        assert_eq!(e.code, ErrorCode::Invalid);
        let e = c
            .call(Request::RenameDevice {
                drive: "work".into(),
                name: "desk".into(),
            })
            .await
            .expect_err("renamed in an unopened drive");
        assert_eq!(e.code, ErrorCode::Invalid);
        // The status carries the (empty) sync part.
        match c
            .call(Request::Status {
                drive: Some("work".into()),
            })
            .await
        {
            Ok(Reply::Status(st)) => assert_eq!(st.drives[0].sync, nimbus_api::SyncStatus::default()),
            other => panic!("{other:?}"),
        }
    }
}

//! The client refuses a service that another user runs (review M4), and a
//! socket reached through another user's symlink.
#![cfg(unix)]

use nimbus_api::{Client, ErrorCode};
use std::io::BufRead;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

/// A listener run as `nobody` that answers every request with an error,
/// as the review's fake service did to obtain the password prompt.
const FAKE_SERVICE: &str = r#"
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1])
s.listen(1)
print("ready", flush=True)
c, _ = s.accept()
c.recv(65536)
c.sendall(b'{"v":1,"id":0,"error":{"code":"wrong_password","message":"give the password"}}\n')
"#;

fn is_root() -> bool {
    rustix::process::getuid().is_root()
}

#[tokio::test]
async fn a_listener_of_another_user_is_refused_even_where_the_path_looks_ours() {
    if !is_root() {
        // Running a listener as another user needs root; CI runs this as root.
        eprintln!("skipped: needs root to run the fake service as another user");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let sockdir = dir.path().join("nimbus-0");
    std::fs::create_dir(&sockdir).expect("mkdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::set_permissions(&sockdir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let sock = sockdir.join("nimbusd.sock");
    let mut fake = {
        use std::os::unix::process::CommandExt;
        Command::new("python3")
            .arg("-c")
            .arg(FAKE_SERVICE)
            .arg(&sock)
            .uid(65534)
            .gid(65534)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 as nobody")
    };
    let mut ready = String::new();
    std::io::BufReader::new(fake.stdout.take().expect("stdout"))
        .read_line(&mut ready)
        .expect("read");
    assert_eq!(ready.trim(), "ready", "the fake service did not start");
    // What an attacker's swap looks like at `stat` time: the folder and the
    // socket are ours, mode 0700 and 0600.
    for (p, mode) in [(&sockdir, 0o700), (&sock, 0o600)] {
        std::os::unix::fs::chown(p, Some(0), Some(0)).expect("chown");
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }
    let res = Client::connect_to(&sock).await;
    let _ = fake.kill();
    let _ = fake.wait();
    let e = res
        .err()
        .expect("a listener run by uid 65534 was accepted as our service");
    assert_eq!(e.code, ErrorCode::NotPermitted);
    assert!(e.message.contains("runs as another user (uid 65534)"), "{}", e.message);
}

#[tokio::test]
async fn a_socket_folder_that_is_another_users_symlink_is_refused() {
    if !is_root() {
        eprintln!("skipped: needs root to make a symlink owned by another user");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    // Our own folder, with our own listening socket in it.
    let real = dir.path().join("real");
    std::fs::create_dir(&real).expect("mkdir");
    let _listener = tokio::net::UnixListener::bind(real.join("nimbusd.sock")).expect("bind");
    // Another user's symlink to it, where the client looks.
    let link = dir.path().join("nimbus-0");
    std::os::unix::fs::symlink(&real, &link).expect("symlink");
    std::os::unix::fs::lchown(&link, Some(65534), Some(65534)).expect("lchown");
    let e = Client::connect_to(&link.join("nimbusd.sock"))
        .await
        .err()
        .expect("another user's symlink was followed");
    assert_eq!(e.code, ErrorCode::NotPermitted);
    assert!(
        e.message.contains("belongs to another user (uid 65534)"),
        "{}",
        e.message
    );
}

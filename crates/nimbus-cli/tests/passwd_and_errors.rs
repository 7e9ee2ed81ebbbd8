//! `passwd` rewrites only `config`; wrong passwords, missing vaults and
//! newer formats each get one clear message and a non-zero exit.

#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

#[test]
fn passwd_changes_only_config() {
    let env = Env::new();
    let init = env.init();
    let rk = recovery_key(&init);
    let src = env.path("src");
    make_tree(&src, 50, &[], 7);
    env.ok(&["put", src.to_str().unwrap()]);
    let before = store_hashes(&env.store);

    let out = env
        .cmd()
        .env("NIMBUS_NEW_PASSWORD", "a brand new password")
        .arg("passwd")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let after = store_hashes(&env.store);
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>(),
        "objects added or removed"
    );
    let changed: Vec<&String> = before.keys().filter(|k| before[*k] != after[*k]).collect();
    assert_eq!(changed, ["config"], "passwd changed more than the config");

    // The old password fails, the new one and the recovery key work.
    let out = env.run(&["ls"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("wrong password"), "{}", text(&out));
    let new = env
        .cmd()
        .env("NIMBUS_PASSWORD", "a brand new password")
        .arg("ls")
        .output()
        .unwrap();
    assert!(new.status.success(), "{}", text(&new));
    assert_eq!(String::from_utf8_lossy(&new.stdout).trim(), "src/");

    // Recovery key (case and dashes do not matter) sets another password.
    let out = env
        .cmd()
        .env("NIMBUS_RECOVERY_KEY", rk.to_lowercase().replace('-', " "))
        .env("NIMBUS_NEW_PASSWORD", "third password here")
        .args(["passwd", "--recovery"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let third = env
        .cmd()
        .env("NIMBUS_PASSWORD", "third password here")
        .arg("ls")
        .output()
        .unwrap();
    assert!(third.status.success(), "{}", text(&third));
    // A wrong recovery key is refused plainly.
    let out = env
        .cmd()
        .env("NIMBUS_RECOVERY_KEY", "AAAA-BBBB")
        .env("NIMBUS_NEW_PASSWORD", "x1234567")
        .args(["passwd", "--recovery"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(text(&out).contains("wrong recovery key"), "{}", text(&out));
}

#[test]
fn passwords_from_files() {
    let env = Env::new();
    let pwfile = env.path("pw");
    std::fs::write(&pwfile, "file password\n").unwrap();
    let store = env.store.to_str().unwrap().to_string();
    let mut c = env.cmd();
    c.env_remove("NIMBUS_PASSWORD");
    let out = c
        .args([
            "--password-file",
            pwfile.to_str().unwrap(),
            "init",
            &store,
            "--kdf-memory-kib",
            "19456",
            "--kdf-iterations",
            "2",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let mut c = env.cmd();
    c.env_remove("NIMBUS_PASSWORD");
    let out = c
        .args(["--password-file", pwfile.to_str().unwrap(), "log"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("No snapshots yet"));
    // No password anywhere and no terminal: a clear message, not a hang.
    let mut c = env.cmd();
    c.env_remove("NIMBUS_PASSWORD").stdin(std::process::Stdio::null());
    let out = c.arg("log").output().unwrap();
    assert!(!out.status.success());
    assert!(text(&out).contains("NIMBUS_PASSWORD"), "{}", text(&out));
}

#[test]
fn clear_errors_for_bad_vaults() {
    let env = Env::new();
    // No store named at all.
    let mut c = env.cmd();
    c.env_remove("NIMBUS_STORE");
    let out = c.arg("ls").output().unwrap();
    assert!(!out.status.success());
    assert!(text(&out).contains("--store"), "{}", text(&out));
    // A folder that does not exist.
    let out = env.run(&["-s", env.path("nowhere").to_str().unwrap(), "ls"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("no vault folder at"), "{}", text(&out));
    // An empty folder.
    std::fs::create_dir_all(&env.store).unwrap();
    let out = env.run(&["ls"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("no vault at") && text(&out).contains("nimbus init"),
        "{}",
        text(&out)
    );
    // An unsupported store type.
    let out = env.run(&["-s", "ftp://host/x", "ls"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("not supported yet"), "{}", text(&out));
    // An S3 store without credentials anywhere (the environment is
    // cleared, HOME is empty, there is no terminal) says where they can
    // come from.
    let out = env.run(&["-s", "s3://bucket/x", "ls"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("no credentials for s3://bucket/x") && text(&out).contains("nimbus login"),
        "{}",
        text(&out)
    );

    env.init();
    // init refuses to overwrite.
    let out = env.run(&[
        "init",
        env.store.to_str().unwrap(),
        "--kdf-memory-kib",
        "19456",
        "--kdf-iterations",
        "2",
    ]);
    assert!(!out.status.success());
    assert!(text(&out).contains("already exists"), "{}", text(&out));
    // Empty vault.
    let out = env.run(&["ls"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("no snapshot yet"), "{}", text(&out));
    // Wrong password.
    let out = env.cmd().env("NIMBUS_PASSWORD", "not it").arg("ls").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("wrong password"), "{}", text(&out));
    // A config from a newer format version.
    let cfg = env.store.join("config");
    let text_cfg = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, text_cfg.replace("\"version\": 4", "\"version\": 5")).unwrap();
    let out = env.run(&["ls"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("format version 5") && text(&out).contains("Update Nimbus"),
        "{}",
        text(&out)
    );
}

/// `nimbus ls -R | head -1`: when the reader goes away the listing stops
/// quietly, with success, rather than with a panic on a closed pipe.
#[test]
fn listing_into_a_closed_pipe_stops_quietly() {
    use std::io::{BufRead, BufReader};
    let env = Env::new();
    env.init();
    let src = env.path("src");
    make_tree(&src, 3000, &[], 11);
    env.ok(&["put", src.to_str().unwrap()]);
    let mut child = env
        .cmd()
        .args(["ls", "-l", "-R", "/"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(!first.is_empty());
    // The reading end is closed here, long before 3,000 lines are written.
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "status {}; stderr: {stderr}", out.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// `nimbus … | head` closes the pipe early: a command that prints with
/// `println!` (here `check`) ends quietly, with success and no crash report.
#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    let env = Env::new();
    env.init();
    let mut child = env
        .cmd()
        .args(["check"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The reader goes away before reading anything.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert!(out.status.success(), "{:?}: {err}", out.status);
}

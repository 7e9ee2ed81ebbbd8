//! The golden vault in `tests/fixtures/vault-v1` must keep reading exactly
//! as it did when it was made. A failure here means the format changed:
//! make that a deliberate, versioned change (see tests/fixtures/README.md).

#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;
use sha2::Digest;
use std::path::PathBuf;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

#[test]
fn golden_vault_v1_still_reads() {
    let mut env = Env::new();
    env.password = "nimbus-golden-fixture".into();
    // Work on a copy: opening a store may create its `.tmp` folder.
    copy_dir(&fixtures().join("vault-v1"), &env.store);

    let ls = env.ok(&["ls", "-l", "-R"]);
    let want = std::fs::read_to_string(fixtures().join("vault-v1.ls.txt")).unwrap();
    assert_eq!(ls, want);

    let out = env.path("out");
    env.ok(&["get", "/files", out.to_str().unwrap()]);
    let want = std::fs::read_to_string(fixtures().join("vault-v1.sha256.txt")).unwrap();
    for line in want.lines() {
        let (hash, name) = line.split_once("  ").unwrap();
        let data = std::fs::read(out.join(name)).unwrap();
        assert_eq!(hex::encode(sha2::Sha256::digest(&data)), hash, "{name}");
    }
    // Symlink and modes come back too.
    assert_eq!(
        std::fs::read_link(out.join("link-to-readme")).unwrap(),
        PathBuf::from("docs/readme.txt")
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(out.join("photos/random.bin"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );

    let log = env.ok(&["log"]);
    assert!(
        log.contains("golden fixture 1") && log.contains("golden fixture 2"),
        "{log}"
    );
    let first = log
        .lines()
        .last()
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let old = env.ok(&["ls", "-R", "/files", "--at", &first]);
    assert!(!old.contains("added.txt"), "{old}");
    assert!(env.ok(&["check", "--read-data"]).contains("No problems found"));
    // Wrong password on the fixture still says so.
    let out = env.cmd().env("NIMBUS_PASSWORD", "nope").arg("ls").output().unwrap();
    assert!(text(&out).contains("wrong password"));
}

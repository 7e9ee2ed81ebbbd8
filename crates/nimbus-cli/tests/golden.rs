//! The golden vaults in `tests/fixtures/vault-v1`, `vault-v2`, `vault-v3`
//! and `vault-v4` must keep reading exactly as they did when they were made. A
//! failure here means the format changed: make that a deliberate, versioned
//! change (see tests/fixtures/README.md). A version 1 or 2 vault keeps
//! working as it is and is upgraded (to version 4) only when the person
//! says so.

#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;
use sha2::Digest;
use std::path::PathBuf;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

/// A scratch copy of the golden vault `name` (opening a store may create
/// its `.tmp` folder) with its password.
fn golden_env(name: &str) -> Env {
    let mut env = Env::new();
    env.password = "nimbus-golden-fixture".into();
    copy_dir(&fixtures().join(name), &env.store);
    env
}

/// What `nimbus ls -l -R` printed and `nimbus get` restored when the
/// fixture `name` was made (every fixture holds the same files).
fn reads_as_made(env: &Env, name: &str) {
    let ls = env.ok(&["ls", "-l", "-R"]);
    let want = std::fs::read_to_string(fixtures().join(format!("{name}.ls.txt"))).unwrap();
    assert_eq!(ls, want);

    let out = env.path("out");
    let _ = std::fs::remove_dir_all(&out);
    env.ok(&["get", "/files", out.to_str().unwrap()]);
    let want = std::fs::read_to_string(fixtures().join(format!("{name}.sha256.txt"))).unwrap();
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

    if name == "vault-v4" {
        // Its first snapshot was pruned: see `golden_vault_v4_still_reads`.
        return;
    }
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

fn config_version(env: &Env) -> u64 {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(env.store.join("config")).unwrap()).unwrap();
    v["version"].as_u64().unwrap()
}

/// Sizes of the packs in the store, as a set of (key, size).
fn packs(env: &Env) -> std::collections::BTreeMap<String, u64> {
    walkdir::WalkDir::new(env.store.join("packs"))
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .map(|e| (e.path().display().to_string(), e.metadata().unwrap().len()))
        .collect()
}

/// `nimbus upgrade` of a vault of version `from`: without a terminal to ask
/// in and without `--yes` it is refused and `config` is left as it was;
/// with `--yes` the vault is at version 4.
fn upgrade_when_confirmed(env: &Env, from: u64) {
    let config = std::fs::read(env.store.join("config")).unwrap();
    let out = env.run(&["upgrade"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("upgrade --yes"), "{}", text(&out));
    assert_eq!(std::fs::read(env.store.join("config")).unwrap(), config);

    let out = env.ok(&["upgrade", "--yes"]);
    assert!(out.contains(&format!("from format version {from} to 4")), "{out}");
    assert_eq!(config_version(env), 4);
}

/// Puts one small new file and returns the sizes of the packs it added.
fn put_small_file(env: &Env) -> Vec<u64> {
    let before = packs(env);
    let src = env.path("new");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("note.txt"), "a small change\n").unwrap();
    env.ok(&["put", src.to_str().unwrap(), "/new", "-m", "after"]);
    packs(env)
        .into_iter()
        .filter(|(k, _)| !before.contains_key(k))
        .map(|(_, s)| s)
        .collect()
}

#[test]
fn golden_vault_v1_still_reads() {
    let env = golden_env("vault-v1");
    reads_as_made(&env, "vault-v1");
}

#[test]
fn golden_vault_v2_still_reads() {
    let env = golden_env("vault-v2");
    assert_eq!(config_version(&env), 2);
    reads_as_made(&env, "vault-v2");
}

/// Version 3: two devices' commits (the second on the first), sealed with
/// the `commit3` label. It reads as it is, and moves to version 4 (prune)
/// only after a yes.
#[test]
fn golden_vault_v3_still_reads_and_upgrades_to_v4_only_when_confirmed() {
    let env = golden_env("vault-v3");
    assert_eq!(config_version(&env), 3);
    reads_as_made(&env, "vault-v3");
    upgrade_when_confirmed(&env, 3);
    reads_as_made(&env, "vault-v3");
    put_small_file(&env);
    assert!(env.ok(&["log"]).contains("after"));
    assert!(env.ok(&["check", "--read-data"]).contains("No problems found"));
    assert!(env.ok(&["upgrade", "--yes"]).contains("nothing to upgrade"));
}

/// Version 4: the same files, three snapshots from two devices, the
/// oldest forgotten by a finished prune (a done record, a ref that names
/// the plan). It reads as made, and `check` tells the pruned history from
/// missing history.
#[test]
fn golden_vault_v4_still_reads() {
    let env = golden_env("vault-v4");
    assert_eq!(config_version(&env), 4);
    reads_as_made(&env, "vault-v4");
    let log = env.ok(&["log"]);
    assert!(
        log.contains("golden fixture 3") && !log.contains("golden fixture 1"),
        "{log}"
    );
    let check = env.ok(&["check", "--read-data"]);
    assert!(
        check.contains("No problems found") && !check.contains("warning"),
        "{check}"
    );
    assert!(check.contains("a prune forgot on purpose"), "{check}");
    assert!(env.ok(&["upgrade", "--yes"]).contains("nothing to upgrade"));
}

/// A version 2 vault that is not upgraded keeps working, writes included,
/// and stays version 2: its `config` untouched, its new commit readable.
#[test]
fn golden_vault_v2_keeps_working_without_upgrade() {
    let env = golden_env("vault-v2");
    let config = std::fs::read(env.store.join("config")).unwrap();
    let added = put_small_file(&env);
    assert!(!added.is_empty() && added.iter().all(|&s| s == 4096), "{added:?}");
    assert_eq!(std::fs::read(env.store.join("config")).unwrap(), config);
    assert!(env.ok(&["log"]).contains("after"));
    assert!(env.ok(&["check", "--read-data"]).contains("No problems found"));
}

/// `nimbus upgrade` moves a version 2 vault to 4 after a yes: it reads as
/// before (its version 2 commits included), takes new commits, and a
/// second upgrade does nothing.
#[test]
fn golden_vault_v2_upgrades_to_v4_only_when_confirmed() {
    let env = golden_env("vault-v2");
    upgrade_when_confirmed(&env, 2);
    reads_as_made(&env, "vault-v2");
    put_small_file(&env);
    let log = env.ok(&["log"]);
    assert!(log.contains("after") && log.contains("golden fixture 1"), "{log}");
    assert!(env.ok(&["check", "--read-data"]).contains("No problems found"));
    assert!(env.ok(&["upgrade", "--yes"]).contains("nothing to upgrade"));
}

/// A version 1 vault that is not upgraded keeps working, writes included,
/// and stays version 1 (its `config` untouched, its new packs unpadded, so
/// an older Nimbus still reads all of it).
#[test]
fn golden_vault_v1_keeps_working_without_upgrade() {
    let env = golden_env("vault-v1");
    let config = std::fs::read(env.store.join("config")).unwrap();
    let added = put_small_file(&env);
    assert!(!added.is_empty() && added.iter().all(|&s| s < 1024), "{added:?}");
    assert_eq!(std::fs::read(env.store.join("config")).unwrap(), config);
    assert!(env.ok(&["ls", "-R"]).contains("note.txt"));
    assert!(env.ok(&["check", "--read-data"]).contains("No problems found"));
}

/// `nimbus upgrade` asks first, changes nothing without a yes, then moves
/// the vault straight to version 4: everything reads as before, the old
/// password and cost floor hold, new packs are padded, and a second upgrade
/// does nothing.
#[test]
fn golden_vault_v1_upgrades_only_when_confirmed() {
    let env = golden_env("vault-v1");
    upgrade_when_confirmed(&env, 1);
    let cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(env.store.join("config")).unwrap()).unwrap();
    // The 1 MiB, one-pass slot of the fixture is raised to the default.
    assert_eq!(cfg["key_slots"][0]["kdf"]["memory_kib"], 65536);
    assert_eq!(cfg["key_slots"][0]["kdf"]["iterations"], 3);
    reads_as_made(&env, "vault-v1");

    let added = put_small_file(&env);
    assert!(!added.is_empty() && added.iter().all(|&s| s == 4096), "{added:?}");
    assert!(env.ok(&["check", "--read-data"]).contains("No problems found"));
    assert!(env.ok(&["upgrade", "--yes"]).contains("nothing to upgrade"));
}

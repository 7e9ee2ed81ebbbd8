//! `nimbus forget` and `nimbus prune` on a real local-folder vault: the
//! table names the snapshots a policy would forget, every device's head
//! is kept, and forgetting for real frees the space only after the grace
//! period (shortened for the test), or at once with `prune --now` when no
//! other device uses the vault.

#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

/// The snapshots' short ids, newest first.
fn snapshot_ids(env: &Env) -> Vec<String> {
    env.ok(&["log", "--json"])
        .lines()
        .map(|l| json(l)["id"].as_str().unwrap()[..8].to_string())
        .collect()
}

/// Saves a new version of one file from the device whose state is `state`.
fn put_version(env: &Env, state: &std::path::Path, n: u32) {
    let f = env.path("f.txt");
    std::fs::write(&f, format!("version {n}")).unwrap();
    let out = env
        .cmd()
        .env("NIMBUS_STATE_DIR", state)
        .args(["put", f.to_str().unwrap(), "/f.txt"])
        .output()
        .unwrap();
    assert!(out.status.success(), "put {n}: {}", text(&out));
}

/// The table row of snapshot `short`.
fn row<'a>(table: &'a str, short: &str) -> &'a str {
    table
        .lines()
        .find(|l| l.starts_with(short))
        .unwrap_or_else(|| panic!("no row for {short} in:\n{table}"))
}

#[test]
fn keep_last_one_names_the_snapshots_that_would_go() {
    let env = Env::new();
    env.init();
    for n in 1..=3 {
        put_version(&env, &env.state, n);
    }
    let ids = snapshot_ids(&env);
    assert_eq!(ids.len(), 3);

    let table = env.ok(&["forget", "--dry-run", "--keep-last", "1"]);
    let newest = row(&table, &ids[0]);
    assert!(newest.contains(" keep ") && newest.ends_with("last, head"), "{newest}");
    for old in &ids[1..] {
        let r = row(&table, old);
        assert!(r.ends_with(" forget"), "{r}");
    }
    assert!(table.contains("would forget 2 of 3 snapshots"), "{table}");
    assert!(table.starts_with("Policy: keep 1 latest snapshots;"), "{table}");

    let j = json(&env.ok(&["forget", "--dry-run", "--keep-last", "1", "--json"]));
    assert_eq!(j["forget"], 2);
    assert_eq!(j["total"], 3);
    assert_eq!(j["snapshots"][0]["keep"], true);
    assert_eq!(j["snapshots"][0]["reasons"], serde_json::json!(["last", "head"]));
    assert_eq!(j["snapshots"][2]["keep"], false);
    assert_eq!(j["snapshots"][2]["reasons"], serde_json::json!([]));

    // The default policy keeps everything of the last day.
    let table = env.ok(&["forget", "--dry-run"]);
    assert!(table.contains("would forget 0 of 3 snapshots"), "{table}");
    assert!(row(&table, &ids[2]).contains("within"), "{table}");
    // A dry run changes nothing.
    assert_eq!(snapshot_ids(&env), ids);
}

#[test]
fn every_devices_head_is_kept() {
    let env = Env::new();
    env.init();
    let other = env.path("other-device");
    put_version(&env, &env.state, 1);
    put_version(&env, &env.state, 2);
    put_version(&env, &other, 3);
    put_version(&env, &env.state, 4);
    // Newest first: 4 (this device's head), 3 (the other's head), 2, 1.
    let ids = snapshot_ids(&env);
    assert_eq!(ids.len(), 4);

    let table = env.ok(&["forget", "--dry-run", "--keep-last", "1"]);
    assert!(row(&table, &ids[0]).ends_with("last, head"), "{table}");
    assert!(
        row(&table, &ids[1]).contains(" keep ") && row(&table, &ids[1]).ends_with("head"),
        "{table}"
    );
    assert!(row(&table, &ids[2]).ends_with(" forget"), "{table}");
    assert!(row(&table, &ids[3]).ends_with(" forget"), "{table}");
    assert!(table.contains("would forget 2 of 4 snapshots"), "{table}");
}

#[test]
fn it_refuses_to_forget_everything() {
    let env = Env::new();
    env.init();
    put_version(&env, &env.state, 1);

    let out = env.run(&["forget", "--dry-run", "--keep-last", "0"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("keeps nothing"), "{}", text(&out));

    let out = env.run(&["forget", "--dry-run", "--keep-within", "soon"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("is not a duration"), "{}", text(&out));
}

/// Puts `len` incompressible bytes as `/f.bin` from this device.
fn put_random(env: &Env, seed: u64, len: usize) {
    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ seed;
    let data: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let f = env.path("f.bin");
    std::fs::write(&f, data).unwrap();
    env.ok(&["put", f.to_str().unwrap(), "/f.bin"]);
}

/// Bytes of every pack in the store.
fn pack_bytes(env: &Env) -> u64 {
    walkdir::WalkDir::new(env.store.join("packs"))
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .map(|e| e.metadata().unwrap().len())
        .sum()
}

const SHORT: [&str; 4] = ["--young", "1s", "--grace", "3s"];

#[test]
fn forget_then_prune_frees_the_space_after_the_grace_period() {
    let env = Env::new();
    env.init();
    for n in 0..3 {
        put_random(&env, n, 200_000);
    }
    let before = pack_bytes(&env);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let forget = env
        .cmd()
        .env("NIMBUS_PRUNE_TEST_TIMES", "1")
        .args(["forget", "--keep-last", "1"])
        .args(SHORT)
        .output()
        .unwrap();
    assert!(forget.status.success(), "{}", text(&forget));
    assert!(text(&forget).contains("Forgot 2 snapshots"), "{}", text(&forget));
    assert_eq!(
        snapshot_ids(&env).len(),
        3,
        "nothing is deleted before the grace period"
    );

    let early = env
        .cmd()
        .env("NIMBUS_PRUNE_TEST_TIMES", "1")
        .arg("prune")
        .args(SHORT)
        .output()
        .unwrap();
    assert!(early.status.success(), "{}", text(&early));
    assert!(text(&early).contains("Nothing was ready to delete"), "{}", text(&early));
    assert!(text(&early).contains("grace period ends in"), "{}", text(&early));

    std::thread::sleep(std::time::Duration::from_millis(3500));
    let done = env
        .cmd()
        .env("NIMBUS_PRUNE_TEST_TIMES", "1")
        .arg("prune")
        .args(SHORT)
        .output()
        .unwrap();
    assert!(done.status.success(), "{}", text(&done));
    assert!(text(&done).contains("2 snapshots forgotten"), "{}", text(&done));
    let after = pack_bytes(&env);
    assert!(before - after >= 400_000, "freed {} of {before}", before - after);
    assert_eq!(snapshot_ids(&env).len(), 1);
    let check = env.ok(&["check", "--read-data"]);
    assert!(check.contains("No problems found"), "{check}");
    let out = env.path("out");
    env.ok(&["get", "/f.bin", out.to_str().unwrap()]);
    assert_eq!(std::fs::metadata(&out).unwrap().len(), 200_000);
}

#[test]
fn prune_now_frees_at_once_only_when_no_other_device_works() {
    let env = Env::new();
    env.init();
    for n in 0..3 {
        put_random(&env, 10 + n, 200_000);
    }
    let before = pack_bytes(&env);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let forget = env
        .cmd()
        .env("NIMBUS_PRUNE_TEST_TIMES", "1")
        .args(["forget", "--keep-last", "1", "--young", "1s"])
        .output()
        .unwrap();
    assert!(forget.status.success(), "{}", text(&forget));

    // Another device wrote lately: --now is refused.
    put_version(&env, &env.path("other-device"), 1);
    let out = env.run(&["prune", "--now"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("other devices used this vault"), "{}", text(&out));
    assert_eq!(snapshot_ids(&env).len(), 4, "the refused prune deleted nothing");

    let out = env.ok(&["prune", "--now", "--other-devices-are-off"]);
    assert!(out.contains("Freed"), "{out}");
    assert!(before - pack_bytes(&env) >= 400_000 - 10_000, "{out}");
    assert!(env.ok(&["check", "--read-data"]).contains("No problems found"));
}

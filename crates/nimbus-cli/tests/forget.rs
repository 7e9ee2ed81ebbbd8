//! `nimbus forget --dry-run` on a real local-folder vault: the table names
//! the snapshots a policy would forget, every device's head is kept, and
//! nothing is forgotten for real yet.

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
fn it_refuses_to_forget_for_real_or_everything() {
    let env = Env::new();
    env.init();
    put_version(&env, &env.state, 1);

    let out = env.run(&["forget", "--keep-last", "1"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("nimbus forget without --dry-run is not available yet"));

    let out = env.run(&["forget", "--dry-run", "--keep-last", "0"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("keeps nothing"), "{}", text(&out));

    let out = env.run(&["forget", "--dry-run", "--keep-within", "soon"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("is not a duration"), "{}", text(&out));
}

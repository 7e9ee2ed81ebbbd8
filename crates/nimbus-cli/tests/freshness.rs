//! The real binary against a store and a local state that misbehave: a
//! damaged rollback memory (`refs-seen.json`) and a damaged commit object.

#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::path::PathBuf;

/// The one vault folder in the device's local state.
fn vault_state(env: &Env) -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(env.state.join("vaults"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(dirs.len(), 1);
    dirs.pop().unwrap()
}

fn seen_counter(file: &std::path::Path) -> u64 {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
    v.as_object()
        .unwrap()
        .values()
        .map(|n| n.as_u64().unwrap())
        .max()
        .unwrap()
}

/// A damaged rollback memory is an error that says what to do, not an
/// empty memory: otherwise a store could replay an old ref right after and
/// have it accepted, and the counter would go down (review L4).
#[test]
fn an_unreadable_rollback_memory_stops_with_a_way_out() {
    let env = Env::new();
    env.init();
    let f = env.path("f.txt");
    std::fs::write(&f, b"version one").unwrap();
    env.ok(&["put", f.to_str().unwrap(), "/f.txt"]);
    let r = keys(&env.store, "refs/").pop().unwrap();
    let old_ref = std::fs::read(env.store.join(&r)).unwrap();
    std::fs::write(&f, b"version two, longer").unwrap();
    env.ok(&["put", f.to_str().unwrap(), "/f.txt"]);
    let seen = vault_state(&env).join("refs-seen.json");
    let backup = vault_state(&env).join("refs-seen.json.bak");
    assert_eq!(seen_counter(&seen), 2);

    // Cut short (a torn write of an older version), then the store replays.
    let full = std::fs::read(&seen).unwrap();
    std::fs::write(&seen, &full[..full.len() / 2]).unwrap();
    std::fs::write(env.store.join(&r), &old_ref).unwrap();
    for args in [
        vec!["ls", "/"],
        vec!["get", "/f.txt", env.path("g.txt").to_str().unwrap()],
    ] {
        let out = env.run(&args);
        let msg = text(&out);
        assert!(!out.status.success(), "{args:?} accepted a damaged memory: {msg}");
        assert!(
            msg.contains("refs-seen.json") && msg.contains("cp ") && msg.contains(backup.to_str().unwrap()),
            "{msg}"
        );
    }
    assert!(!env.path("g.txt").exists());
    assert_eq!(std::fs::read(&seen).unwrap(), &full[..full.len() / 2], "left as it was");

    // Garbage, and no backup: still an error, and it says how to start over.
    std::fs::write(&seen, b"\x00\x01 not json").unwrap();
    std::fs::remove_file(&backup).unwrap();
    let msg = text(&env.run(&["ls", "/"]));
    assert!(msg.contains("cannot read") && msg.contains("delete it"), "{msg}");

    // The way out the first message gave: the copy; the replay is caught.
    std::fs::write(&seen, &full).unwrap();
    let out = env.run(&["ls", "/"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("went back in time"), "{}", text(&out));
    assert_eq!(seen_counter(&seen), 2, "the counter never goes down");
}

/// One junk `commits/<id>` object costs that snapshot only: `log`, `ls`
/// and `--at` go on and say which object they skipped (review L6).
#[test]
fn a_damaged_commit_object_is_skipped_and_reported() {
    let env = Env::new();
    env.init();
    let f = env.path("f.txt");
    std::fs::write(&f, b"version one").unwrap();
    env.ok(&["put", f.to_str().unwrap(), "/f.txt"]);
    std::fs::write(&f, b"version two").unwrap();
    env.ok(&["put", f.to_str().unwrap(), "/f.txt"]);
    let junk = format!("commits/{}", "ab".repeat(32));
    std::fs::write(env.store.join(&junk), b"not a commit at all").unwrap();

    let out = env.run(&["log", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let ids: Vec<String> = stdout
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(ids.len(), 2, "{stdout}");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(stderr.contains(&junk) && stderr.contains("skipped"), "{stderr}");

    // The older snapshot by id, and the newest one.
    let old = &ids[1][..12];
    let g = env.path("g.txt");
    env.ok(&["get", "--at", old, "/f.txt", g.to_str().unwrap()]);
    assert_eq!(std::fs::read(&g).unwrap(), b"version one");
    assert!(env.ok(&["ls", "-l", "/"]).contains("f.txt"));
}

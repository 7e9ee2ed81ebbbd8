//! `nimbus check --repair` on a local-folder vault: a lost index object is
//! rebuilt, a lost pack is uploaded again from `--from`, and without a copy
//! the damaged file is marked in a new snapshot; `check` alone writes
//! nothing, and a repair only adds objects (and moves this device's ref).

#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// Sets every pack's time two hours back, keeping their order: a repair
/// leaves younger packs alone (a save may be writing their index).
fn age_packs(store: &Path) {
    for key in keys(store, "packs/") {
        let path = store.join(key);
        let was: SystemTime = std::fs::metadata(&path).unwrap().modified().unwrap();
        let old = filetime::FileTime::from_system_time(was - Duration::from_secs(7200));
        filetime::set_file_mtime(path, old).unwrap();
    }
}

/// `after` keeps every object of `before` unchanged, but `except`.
fn only_added(before: &BTreeMap<String, String>, after: &BTreeMap<String, String>, except: &[String]) {
    for (key, hash) in before {
        match after.get(key) {
            None => panic!("{key} was deleted"),
            Some(h) => assert!(h == hash || except.contains(key), "{key} was rewritten"),
        }
    }
    assert!(after.len() > before.len(), "nothing was added");
}

/// The pack uploaded first: with 1 MiB packs and a 4 MB file, it holds
/// content only (folders are saved last).
fn first_pack(store: &Path) -> String {
    keys(store, "packs/")
        .into_iter()
        .min_by_key(|k| std::fs::metadata(store.join(k)).unwrap().modified().unwrap())
        .unwrap()
}

fn setup() -> (Env, std::path::PathBuf) {
    let env = Env::new();
    env.init_with(&["--pack-size-mib", "1"]);
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("big.bin"), random_bytes(&mut Rng::new(5), 4_000_000)).unwrap();
    std::fs::write(src.join("note.txt"), b"a small note").unwrap();
    env.ok(&["put", src.to_str().unwrap(), "/src"]);
    assert!(keys(&env.store, "packs/").len() >= 3);
    (env, src)
}

#[test]
fn check_repair_heals_by_adding_only() {
    let (env, src) = setup();
    let clean = store_hashes(&env.store);
    assert!(env.ok(&["check"]).contains("No problems found"));
    assert_eq!(store_hashes(&env.store), clean, "check alone writes nothing");

    // A lost index object: the packs are indexed again from their headers.
    for key in keys(&env.store, "index/") {
        std::fs::remove_file(env.store.join(key)).unwrap();
    }
    assert!(!env.run(&["check"]).status.success());
    let young = env.run(&["check", "--repair"]);
    assert!(text(&young).contains("younger than an hour"), "{}", text(&young));
    age_packs(&env.store);
    let before = store_hashes(&env.store);
    let out = env.ok(&["check", "--repair"]);
    assert!(
        out.contains("repair: indexed") && out.contains("No problems found"),
        "{out}"
    );
    only_added(&before, &store_hashes(&env.store), &[]);
    assert!(env.ok(&["check", "--read-data"]).contains("No problems found"));

    // A lost pack of content, with a copy of the files here: uploaded again.
    let lost = first_pack(&env.store);
    let healthy = env.path("healthy");
    copy_dir(&env.store, &healthy);
    std::fs::remove_file(env.store.join(&lost)).unwrap();
    let broken = text(&env.run(&["check"]));
    assert!(broken.contains(&lost), "{broken}");
    let before = store_hashes(&env.store);
    let out = env.ok(&[
        "check",
        "--repair",
        "--from",
        src.to_str().unwrap(),
        "--from-path",
        "/src",
    ]);
    assert!(out.contains("uploaded") && out.contains("No problems found"), "{out}");
    only_added(&before, &store_hashes(&env.store), &[]);
    let back = env.path("back");
    env.ok(&["get", "/src", back.to_str().unwrap()]);
    assert_same_tree(&src, &back);

    // The same loss without a copy: the file is marked damaged in a new
    // snapshot of this device, and what is left is history.
    std::fs::remove_file(healthy.join(&lost)).unwrap();
    let before = store_hashes(&healthy);
    let run = |args: &[&str]| {
        let mut c = env.cmd();
        c.env("NIMBUS_STORE", &healthy);
        c.args(args).output().unwrap()
    };
    let repaired = run(&["check", "--repair"]);
    let out = text(&repaired);
    assert!(
        out.contains("marked damaged: /src/big.bin -> /src/big (damaged).bin"),
        "{out}"
    );
    assert!(!repaired.status.success(), "the old snapshot stays damaged: {out}");
    assert!(out.contains("damaged history") && !out.contains("problem:"), "{out}");
    let refs = keys(&healthy, "refs/");
    only_added(&before, &store_hashes(&healthy), &refs);
    let listing = text(&run(&["ls", "/src"]));
    // note.txt may share the lost pack; either way no file is gone.
    assert!(
        listing.contains("big (damaged).bin") && listing.contains("note"),
        "{listing}"
    );

    // Another device has no snapshot of its own to heal: it says so and
    // writes nothing.
    let before = store_hashes(&healthy);
    let other = env
        .cmd()
        .env("NIMBUS_STORE", &healthy)
        .env("NIMBUS_STATE_DIR", env.path("state-other"))
        .args(["check", "--repair"])
        .output()
        .unwrap();
    assert!(text(&other).contains("this device has no snapshot"), "{}", text(&other));
    assert_eq!(store_hashes(&healthy), before);
}

//! A real tree through `put` and `get`: byte-identical, with modes, times,
//! symlinks and xattrs; deduplication on a second `put`; a one-byte edit
//! uploads about one chunk; snapshots stay readable with `--at`.

#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

/// The totals a commit records (kept up to date without walking the whole
/// vault) agree with a full walk of its snapshot.
fn assert_snapshot_totals_match(env: &Env) {
    let log = env.ok(&["log", "--json"]);
    let head = json(log.lines().next().unwrap());
    let stat = json(&env.ok(&["stat", "--json"]));
    assert_eq!(head["files"], stat["files"], "{head} vs {stat}");
    assert_eq!(head["bytes"], stat["logical_bytes"], "{head} vs {stat}");
}

#[test]
fn ten_thousand_files_round_trip_dedup_and_small_edits() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    // 10,000 small and medium files (~110 MB) plus large files (~110 MB).
    make_tree(&src, 10_000, &[40 << 20, 30 << 20, 20 << 20, 12 << 20, 8 << 20], 42);
    let total: u64 = walkdir::WalkDir::new(&src)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .map(|e| e.metadata().unwrap().len())
        .sum();
    let count = walkdir::WalkDir::new(&src)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .count();
    assert!(
        count >= 10_000 && total >= 200_000_000,
        "tree too small: {count} files, {total} bytes"
    );

    let first = json(&env.ok(&["put", src.to_str().unwrap(), "/data", "--json"]));
    assert_eq!(first["skipped"], 0);
    let out = env.path("out");
    env.ok(&["get", "/data", out.to_str().unwrap()]);
    assert_same_tree(&src, &out);

    // The same tree again: less than 1% more stored.
    let before = store_bytes(&env.store);
    let second = json(&env.ok(&["put", src.to_str().unwrap(), "/data", "--json"]));
    let after = store_bytes(&env.store);
    assert!(
        ((after - before) as f64) < before as f64 * 0.01,
        "second put added {} of {} bytes",
        after - before,
        before
    );
    assert_eq!(second["new_data_blobs"], 0, "{second}");

    // Even when every file must be re-read (times changed), nothing new is stored but trees.
    let big = src.join("large-0.bin");
    let mut data = std::fs::read(&big).unwrap();
    let mid = data.len() / 2;
    data[mid] ^= 0xff;
    std::fs::write(&big, &data).unwrap();
    let edit = json(&env.ok(&["put", src.to_str().unwrap(), "/data", "--json"]));
    let new_data = edit["new_data_blobs"].as_u64().unwrap();
    let uploaded = edit["uploaded_bytes"].as_u64().unwrap();
    assert!(
        (1..=2).contains(&new_data),
        "a 1-byte edit stored {new_data} new chunks: {edit}"
    );
    assert!(
        uploaded < 9 << 20,
        "a 1-byte edit of a 40 MiB file uploaded {uploaded} bytes: {edit}"
    );

    // The snapshot before the edit still has the old content.
    let log = env.ok(&["log", "--json"]);
    let ids: Vec<String> = log
        .lines()
        .map(|l| json(l)["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 3);
    let old = env.path("old.bin");
    env.ok(&["get", "/data/large-0.bin", old.to_str().unwrap(), "--at", &ids[1][..8]]);
    data[mid] ^= 0xff;
    assert!(std::fs::read(&old).unwrap() == data, "old snapshot content differs");
    let new = env.path("new.bin");
    env.ok(&["get", "/data/large-0.bin", new.to_str().unwrap()]);
    assert!(std::fs::read(&new).unwrap() != data);

    // Every object and every blob checks out.
    let check = env.ok(&["check", "--read-data"]);
    assert!(check.contains("No problems found"), "{check}");
    let stat = json(&env.ok(&["stat", "--json"]));
    assert_eq!(stat["files"].as_u64().unwrap(), count as u64);
    assert_eq!(stat["logical_bytes"].as_u64().unwrap(), total);
    assert_snapshot_totals_match(&env);
}

#[test]
fn put_places_paths_and_keeps_other_entries() {
    let env = Env::new();
    env.init();
    let a = env.path("a");
    std::fs::create_dir_all(a.join("x")).unwrap();
    std::fs::write(a.join("x/one.txt"), b"one").unwrap();
    let b = env.path("b.txt");
    std::fs::write(&b, b"bee").unwrap();
    env.ok(&["put", a.to_str().unwrap()]);
    // Times given to `--at` have one-second resolution; keep the snapshots a second apart.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    env.ok(&["put", b.to_str().unwrap(), "/deep/down/b.txt"]);
    let ls = env.ok(&["ls", "-R"]);
    assert_eq!(
        ls.lines().collect::<Vec<_>>(),
        ["a/", "a/x/", "a/x/one.txt", "deep/", "deep/down/", "deep/down/b.txt"]
    );
    let long = env.ok(&["ls", "-l", "/deep/down/b.txt"]);
    assert!(
        long.starts_with("-rw") && long.contains(" 3 ") && long.trim_end().ends_with("b.txt"),
        "{long}"
    );
    let got = env.path("got.txt");
    env.ok(&["get", "/deep/down/b.txt", got.to_str().unwrap()]);
    assert_eq!(std::fs::read(&got).unwrap(), b"bee");
    // Into an existing folder, a file lands inside it.
    let dir = env.path("downloads");
    std::fs::create_dir(&dir).unwrap();
    env.ok(&["get", "/deep/down/b.txt", dir.to_str().unwrap()]);
    assert_eq!(std::fs::read(dir.join("b.txt")).unwrap(), b"bee");
    // A path that is not there says so.
    let out = env.run(&["get", "/nope", env.path("nope").to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(text(&out).contains("`/nope` does not exist"), "{}", text(&out));
    // `--at` by time: before the second put, /deep did not exist.
    let log = env.ok(&["log", "--json"]);
    let first: serde_json::Value = serde_json::from_str(log.lines().last().unwrap()).unwrap();
    let ls_old = env.ok(&["ls", "--at", first["time"].as_str().unwrap()]);
    assert_eq!(ls_old.trim(), "a/");
    // `put ..` takes the folder's real name, never the whole vault.
    let inner = a.join("x");
    let out = env.cmd().current_dir(&inner).args(["put", ".."]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        env.ok(&["ls"]).lines().any(|l| l == "deep/"),
        "put .. replaced the whole vault"
    );
    // Control characters in names are shown escaped, never sent raw to the terminal.
    std::fs::write(a.join("bell\u{7}\nname"), b"x").unwrap();
    env.ok(&["put", a.to_str().unwrap()]);
    let ls = env.ok(&["ls", "/a"]);
    assert!(ls.contains("bell\\u{7}\\nname"), "{ls:?}");
    assert_snapshot_totals_match(&env);
    // A file cannot replace the whole vault.
    let out = env.run(&["put", b.to_str().unwrap(), "/"]);
    assert!(!out.status.success());
}

#[test]
fn two_devices_write_their_own_refs() {
    let env = Env::new();
    env.init();
    let f = env.path("f.txt");
    std::fs::write(&f, b"from device one").unwrap();
    env.ok(&["put", f.to_str().unwrap(), "/one.txt"]);
    let mut other = env.cmd();
    other.env("NIMBUS_STATE_DIR", env.path("state2"));
    let out = other.args(["put", f.to_str().unwrap(), "/two.txt"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(keys(&env.store, "refs/").len(), 2);
    // The newest snapshot builds on the first: both files are there.
    assert_eq!(env.ok(&["ls"]).lines().collect::<Vec<_>>(), ["one.txt", "two.txt"]);
}

/// No file name, link target or 64-byte run of file content appears in any
/// object of the store.
#[test]
fn nothing_readable_in_the_store() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    make_tree(&src, 300, &[300_000], 5);
    env.ok(&["put", src.to_str().unwrap(), "/secret-folder-name"]);

    let mut needles: std::collections::HashSet<Vec<u8>> = std::collections::HashSet::new();
    let mut names: Vec<Vec<u8>> = vec![b"secret-folder-name".to_vec(), b"/nonexistent/target".to_vec()];
    for e in walkdir::WalkDir::new(&src).into_iter().filter_map(|e| e.ok()) {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.len() >= 6 {
            names.push(name.into_bytes());
        }
        if e.file_type().is_file() {
            let data = std::fs::read(e.path()).unwrap();
            for start in (0..data.len().saturating_sub(64)).step_by(997) {
                needles.insert(data[start..start + 64].to_vec());
            }
        }
    }
    assert!(needles.len() > 300 && names.len() > 300);
    let mut checked = 0;
    for e in walkdir::WalkDir::new(&env.store).into_iter().filter_map(|e| e.ok()) {
        if !e.file_type().is_file() {
            continue;
        }
        let obj = std::fs::read(e.path()).unwrap();
        checked += obj.len();
        let key = e.path().strip_prefix(&env.store).unwrap().display().to_string();
        for w in obj.windows(64) {
            assert!(!needles.contains(w), "{key} contains 64 bytes of file content");
        }
        for n in &names {
            assert!(
                !obj.windows(n.len()).any(|w| w == n.as_slice()),
                "{key} contains the name {}",
                String::from_utf8_lossy(n)
            );
        }
    }
    assert!(checked > 500_000, "only {checked} bytes in the store?");
}

/// `nimbus put` commits name this device: its hostname (cleaned) until it
/// is renamed, then the new name. Read back from the vault itself.
#[test]
fn put_commits_carry_the_device_name() {
    let env = Env::new();
    env.init();
    let f = env.path("f.txt");
    std::fs::write(&f, b"named").unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let head = || {
        let url = nimbus_backend::StoreUrl::parse(env.store.to_str().unwrap()).unwrap();
        let backend = nimbus_backend::open_store(&url).unwrap();
        let vault = rt
            .block_on(nimbus_vault::Vault::open(backend, env.password.as_bytes()))
            .unwrap();
        let (_, c) = rt.block_on(vault.head()).unwrap().unwrap();
        (vault.config().vault_id, c.device_name)
    };
    env.ok(&["put", f.to_str().unwrap(), "/one.txt"]);
    let (vid, name) = head();
    assert_eq!(name, nimbus_host::device::default_name());
    assert!(!name.is_empty() && !name.contains('/'), "{name:?}");

    nimbus_host::device::rename_device(&env.state, &vid, "  Ana's box ").unwrap();
    env.ok(&["put", f.to_str().unwrap(), "/two.txt"]);
    assert_eq!(head().1, "Ana's box");
}

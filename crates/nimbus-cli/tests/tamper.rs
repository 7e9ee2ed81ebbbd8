//! Damage and tampering, for every object kind: a flipped bit, truncation,
//! a swap with another object of the same kind, and deletion. Each must give
//! an error that names what is wrong and exit non-zero, and must never
//! yield wrong bytes: `get` either fails or restores exactly the original.

#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;
use std::path::{Path, PathBuf};

struct Case {
    name: String,
    apply: Box<dyn Fn(&Path)>,
    /// Text that the check or get error must contain.
    mention: String,
}

fn flip(key: String, pos: fn(usize) -> usize) -> Box<dyn Fn(&Path)> {
    Box::new(move |store: &Path| {
        let p = store.join(&key);
        let mut b = std::fs::read(&p).unwrap();
        let i = pos(b.len());
        b[i] ^= 0x04;
        std::fs::write(&p, b).unwrap();
    })
}

fn truncate(key: String, to: fn(usize) -> usize) -> Box<dyn Fn(&Path)> {
    Box::new(move |store: &Path| {
        let p = store.join(&key);
        let b = std::fs::read(&p).unwrap();
        std::fs::write(&p, &b[..to(b.len())]).unwrap();
    })
}

fn swap(a: String, b: String) -> Box<dyn Fn(&Path)> {
    Box::new(move |store: &Path| {
        let (pa, pb) = (store.join(&a), store.join(&b));
        let (da, db) = (std::fs::read(&pa).unwrap(), std::fs::read(&pb).unwrap());
        std::fs::write(&pa, db).unwrap();
        std::fs::write(&pb, da).unwrap();
    })
}

fn delete(key: String) -> Box<dyn Fn(&Path)> {
    Box::new(move |store: &Path| std::fs::remove_file(store.join(&key)).unwrap())
}

/// Files restored under `out` must equal those under `expected`, byte for byte.
fn no_wrong_bytes(out: &Path, expected: &Path) -> Result<usize, String> {
    let mut n = 0;
    for e in walkdir::WalkDir::new(out).into_iter().filter_map(|e| e.ok()) {
        if !e.file_type().is_file() {
            continue;
        }
        let rel = e.path().strip_prefix(out).unwrap();
        if rel
            .file_name()
            .is_some_and(|f| f.to_string_lossy().starts_with(".nimbus-get-"))
        {
            return Err(format!("a temporary file was left: {}", rel.display()));
        }
        let want = std::fs::read(expected.join(rel)).map_err(|_| format!("unexpected file {}", rel.display()))?;
        if std::fs::read(e.path()).unwrap() != want {
            return Err(format!("WRONG BYTES in {}", rel.display()));
        }
        n += 1;
    }
    Ok(n)
}

#[test]
fn every_object_kind_damaged_every_way() {
    let env = Env::new();
    env.init_with(&["--pack-size-mib", "1"]);
    let src = env.path("src");
    make_tree(&src, 40, &[1_500_000, 1_200_000], 11);
    env.ok(&["put", src.to_str().unwrap(), "/src"]);
    std::fs::write(src.join("added later.txt"), b"second snapshot").unwrap();
    env.ok(&["put", src.to_str().unwrap(), "/src"]);
    let other = env.path("other.txt");
    std::fs::write(&other, text_bytes(&mut Rng::new(3), 5000)).unwrap();
    let mut dev2 = env.cmd();
    dev2.env("NIMBUS_STATE_DIR", env.path("state2"));
    assert!(dev2
        .args(["put", other.to_str().unwrap(), "/other.txt"])
        .status()
        .unwrap()
        .success());
    let expected = env.path("expected");
    env.ok(&["get", "/", expected.to_str().unwrap()]);
    assert!(env.ok(&["check", "--read-data"]).contains("No problems found"));

    let packs = keys(&env.store, "packs/");
    let indexes = keys(&env.store, "index/");
    let commits = keys(&env.store, "commits/");
    let refs = keys(&env.store, "refs/");
    assert!(
        packs.len() >= 4 && indexes.len() == 3 && commits.len() == 3 && refs.len() == 2,
        "{packs:?} {indexes:?} {commits:?} {refs:?}"
    );
    // The newest commit and the ref that points at it (device 2's).
    let log = env.ok(&["log", "--json"]);
    let head: serde_json::Value = serde_json::from_str(log.lines().next().unwrap()).unwrap();
    let head_commit = format!("commits/{}", head["id"].as_str().unwrap());
    let head_ref = format!("refs/{}", head["device"].as_str().unwrap());
    let other_commit = commits.iter().find(|c| **c != head_commit).unwrap().clone();
    let other_ref = refs.iter().find(|r| **r != head_ref).unwrap().clone();

    let mut cases: Vec<Case> = Vec::new();
    let mut add = |name: String, apply: Box<dyn Fn(&Path)>, mention: &str| {
        cases.push(Case {
            name,
            apply,
            mention: mention.to_string(),
        })
    };
    // config
    add(
        "config: flipped bit (start)".into(),
        flip("config".into(), |_| 0),
        "config",
    );
    add(
        "config: flipped bit (middle)".into(),
        flip("config".into(), |n| n / 2),
        "config",
    );
    add(
        "config: flipped bit (key slot)".into(),
        flip("config".into(), |n| n * 3 / 5),
        "config",
    );
    add(
        "config: truncated".into(),
        truncate("config".into(), |n| n / 2),
        "config",
    );
    add("config: deleted".into(), delete("config".into()), "no vault at");
    // packs: every pack damaged in its blob area, then one each way.
    for p in &packs {
        add(format!("{p}: flipped bit (blob area)"), flip(p.clone(), |_| 20), p);
        add(format!("{p}: flipped bit (header)"), flip(p.clone(), |n| n - 8), p);
    }
    add(
        "pack: flipped bit (header length)".into(),
        flip(packs[0].clone(), |n| n - 1),
        &packs[0],
    );
    add(
        "pack: truncated by half".into(),
        truncate(packs[0].clone(), |n| n / 2),
        &packs[0],
    );
    add(
        "pack: truncated by one byte".into(),
        truncate(packs[1].clone(), |n| n - 1),
        &packs[1],
    );
    add(
        "pack: swapped".into(),
        swap(packs[0].clone(), packs[1].clone()),
        "packs/",
    );
    for p in &packs {
        add(format!("{p}: deleted"), delete(p.clone()), p);
    }
    // index
    for i in &indexes {
        add(format!("{i}: flipped bit"), flip(i.clone(), |n| n / 2), i);
        add(format!("{i}: truncated"), truncate(i.clone(), |n| n - 3), i);
        add(format!("{i}: deleted"), delete(i.clone()), "index");
    }
    add(
        "index: swapped".into(),
        swap(indexes[0].clone(), indexes[1].clone()),
        "index/",
    );
    // commits
    add(
        "head commit: flipped bit".into(),
        flip(head_commit.clone(), |n| n / 2),
        &head_commit,
    );
    add(
        "head commit: truncated".into(),
        truncate(head_commit.clone(), |n| n - 1),
        &head_commit,
    );
    add(
        "head commit: swapped".into(),
        swap(head_commit.clone(), other_commit.clone()),
        "commits/",
    );
    add("head commit: deleted".into(), delete(head_commit.clone()), &head_commit);
    add(
        "old commit: flipped bit".into(),
        flip(other_commit.clone(), |_| 3),
        &other_commit,
    );
    add("old commit: deleted".into(), delete(other_commit.clone()), "commit");
    // refs
    add(
        "head ref: flipped bit".into(),
        flip(head_ref.clone(), |n| n / 2),
        &head_ref,
    );
    add(
        "head ref: truncated".into(),
        truncate(head_ref.clone(), |n| n / 2),
        &head_ref,
    );
    add(
        "refs: swapped".into(),
        swap(head_ref.clone(), other_ref.clone()),
        "refs/",
    );
    add("head ref: deleted".into(), delete(head_ref.clone()), &head_ref);
    add(
        "all refs: deleted".into(),
        Box::new({
            let refs = refs.clone();
            move |s: &Path| refs.iter().for_each(|r| std::fs::remove_file(s.join(r)).unwrap())
        }),
        "refs/",
    );

    let mut failures = Vec::new();
    for (n, case) in cases.iter().enumerate() {
        let store = env.path(&format!("case-{n}"));
        copy_dir(&env.store, &store);
        (case.apply)(&store);
        let run = |args: &[&str]| {
            let mut c = env.cmd();
            c.env("NIMBUS_STORE", &store);
            c.args(args).output().unwrap()
        };
        let check = run(&["check", "--read-data"]);
        let check_text = text(&check);
        if check.status.success() {
            failures.push(format!("{}: check passed:\n{check_text}", case.name));
            continue;
        }
        if !check_text.contains(&case.mention) {
            failures.push(format!(
                "{}: check did not name `{}`:\n{check_text}",
                case.name, case.mention
            ));
        }
        let out: PathBuf = env.path(&format!("out-{n}"));
        let get = run(&["get", "/", out.to_str().unwrap()]);
        let get_text = text(&get);
        if get.status.success() {
            // Only acceptable when the damage is outside what `get` reads,
            // and everything came back exactly.
            if out.exists() {
                let d1 = describe_tree(&expected);
                let d2 = describe_tree(&out);
                if d1.keys().collect::<Vec<_>>() != d2.keys().collect::<Vec<_>>() {
                    failures.push(format!("{}: get succeeded with a different tree", case.name));
                }
            }
        } else if !get_text.contains(&case.mention) && !get_text.contains("index") {
            failures.push(format!(
                "{}: get failed without naming `{}`:\n{get_text}",
                case.name, case.mention
            ));
        } else if get_text.contains("panicked") {
            failures.push(format!("{}: panic:\n{get_text}", case.name));
        }
        if out.exists() {
            if let Err(e) = no_wrong_bytes(&out, &expected) {
                failures.push(format!("{}: {e}", case.name));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n---\n")
    );
}

/// A server that replays an older copy of a ref (or drops it) would show an
/// older snapshot as if it were the newest. A device that has seen the newer
/// ref refuses.
#[test]
fn replayed_or_dropped_ref_is_refused() {
    let env = Env::new();
    env.init();
    let f = env.path("f.txt");
    std::fs::write(&f, b"version one").unwrap();
    env.ok(&["put", f.to_str().unwrap(), "/f.txt"]);
    let r = keys(&env.store, "refs/").pop().unwrap();
    let old_ref = std::fs::read(env.store.join(&r)).unwrap();
    std::fs::write(&f, b"version two, longer").unwrap();
    env.ok(&["put", f.to_str().unwrap(), "/f.txt"]);
    std::fs::write(env.store.join(&r), &old_ref).unwrap();
    let out = env.run(&["get", "/f.txt", env.path("g.txt").to_str().unwrap()]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(&r) && text(&out).contains("went back in time"),
        "{}",
        text(&out)
    );
    assert!(!env.path("g.txt").exists());
    let out = env.run(&["check"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("went back in time"), "{}", text(&out));
}

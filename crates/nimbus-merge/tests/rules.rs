//! Phase 1 (docs/SYNC.md §3.2, §3.4): for one file id, every combination
//! of base {absent, v0} and per head {absent, v0, v1, v2, renamed, moved,
//! chmod}, for 2 and 3 heads and two orders of age, against a table; then
//! one named test per phase-1 row of §3.3.

use std::collections::{BTreeMap, BTreeSet};

use nimbus_merge::{decide, phase1, Content, Decided, Fate, Flat, Key, Meta, Node, Place, ROOT};
use nimbus_vault::{EntryKind, FileId, Id, ShortId, Timestamp};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum S {
    Absent,
    V0,
    V1,
    V2,
    Renamed,
    Moved,
    Chmod,
}

const ALL: [S; 7] = [S::Absent, S::V0, S::V1, S::V2, S::Renamed, S::Moved, S::Chmod];
const DIR: FileId = ShortId([7; 16]);

fn content(n: u8) -> Content {
    Content {
        blobs: vec![Id([n; 32])],
        size: u64::from(n) + 10,
        target: Vec::new(),
        rdev: 0,
        tree: None,
    }
}

fn place(parent: FileId, name: &str) -> Place {
    Place {
        parent,
        name: name.as_bytes().to_vec(),
    }
}

fn meta(mode: u32) -> Meta {
    Meta {
        mode,
        uid: 1000,
        gid: 1000,
        mtime: Timestamp { secs: 5, nanos: 0 },
        ctime: Timestamp { secs: 5, nanos: 0 },
        xattrs: BTreeMap::new(),
    }
}

fn node(c: u8, p: Place, mode: u32) -> Node {
    Node {
        kind: EntryKind::File,
        content: content(c),
        meta: meta(mode),
        places: BTreeSet::from([p]),
    }
}

// The table's three attributes per state.
fn c_of(s: S) -> u8 {
    match s {
        S::V1 => 1,
        S::V2 => 2,
        _ => 0,
    }
}
fn p_of(s: S) -> Place {
    match s {
        S::Renamed => place(ROOT, "g"),
        S::Moved => place(DIR, "f"),
        _ => place(ROOT, "f"),
    }
}
fn m_of(s: S) -> u32 {
    if s == S::Chmod {
        0o600
    } else {
        0o644
    }
}

fn state(s: S) -> Option<Node> {
    (s != S::Absent).then(|| node(c_of(s), p_of(s), m_of(s)))
}

fn key(age: u64) -> Key {
    Key {
        store_time: Some(Timestamp {
            secs: 1_000 + age as i64,
            nanos: 0,
        }),
        generation: 1,
        commit: Id([age as u8; 32]),
    }
}

/// The expected value of one attribute: the base's when no present head
/// changed it; else the value of the newest head among those that changed
/// it; and the other changed values, newest first.
fn expect_attr<V: PartialEq + Clone>(base: Option<V>, heads: &[(u64, V)]) -> (V, Vec<(u64, V)>) {
    let mut changed: Vec<(u64, V)> = Vec::new();
    for (age, v) in heads {
        if base.as_ref() == Some(v) {
            continue;
        }
        match changed.iter_mut().find(|(_, x)| x == v) {
            Some(x) => x.0 = x.0.max(*age),
            None => changed.push((*age, v.clone())),
        }
    }
    changed.sort_by_key(|(age, _)| std::cmp::Reverse(*age));
    match changed.split_first() {
        Some((w, rest)) => (w.1.clone(), rest.to_vec()),
        None => (base.clone().unwrap_or_else(|| heads[0].1.clone()), Vec::new()),
    }
}

/// The table for one id: `ages[i]` is how new head `i` is (larger: newer).
/// What the table says: fate, content, place, mode, and the lost contents
/// with the head that names each copy.
type Want = (Fate, u8, Place, u32, Vec<(u8, usize)>);

fn expected(base: S, heads: &[S], ages: &[u64]) -> Option<Want> {
    let present: Vec<(usize, S)> = heads
        .iter()
        .copied()
        .enumerate()
        .filter(|(_, s)| *s != S::Absent)
        .collect();
    if present.is_empty() {
        return None;
    }
    let fate = if base == S::Absent {
        Fate::Added
    } else {
        let changed = present.iter().any(|(_, s)| *s != S::V0);
        match (present.len() < heads.len(), changed) {
            (true, false) => return None,
            (true, true) => Fate::KeptOverDelete,
            (false, true) => Fate::Changed,
            (false, false) => Fate::Unchanged,
        }
    };
    let b = (base != S::Absent).then_some(S::V0);
    let with = |f: &dyn Fn(S) -> u8| present.iter().map(|(i, s)| (ages[*i], f(*s))).collect::<Vec<_>>();
    let (c, lost) = expect_attr(b.map(c_of), &with(&c_of));
    let places: Vec<(u64, Place)> = present.iter().map(|(i, s)| (ages[*i], p_of(*s))).collect();
    let (p, _) = expect_attr(b.map(p_of), &places);
    let modes: Vec<(u64, u32)> = present.iter().map(|(i, s)| (ages[*i], m_of(*s))).collect();
    let (m, _) = expect_attr(b.map(m_of), &modes);
    // Each lost content: the newest head holding it.
    let losers = lost
        .into_iter()
        .map(|(age, c)| {
            let head = present
                .iter()
                .find(|(i, s)| ages[*i] == age && c_of(*s) == c)
                .map(|(i, _)| *i)
                .expect("a holder");
            (c, head)
        })
        .collect();
    Some((fate, c, p, m, losers))
}

fn check(base: S, heads: &[S], ages: &[u64]) {
    let b = state(base);
    let hs: Vec<Option<Node>> = heads.iter().map(|s| state(*s)).collect();
    let refs: Vec<Option<&Node>> = hs.iter().map(Option::as_ref).collect();
    let keys: Vec<Key> = ages.iter().map(|a| key(*a)).collect();
    let got = decide(b.as_ref(), &refs, &keys);
    let want = expected(base, heads, ages);
    let ctx = format!("base {base:?}, heads {heads:?}, ages {ages:?}");
    match (got, want) {
        (None, None) => {}
        (Some(d), Some((fate, c, p, m, losers))) => {
            assert_eq!(d.fate, fate, "{ctx}");
            assert_eq!(d.node.content, content(c), "{ctx}");
            assert_eq!(d.node.places, BTreeSet::from([p]), "{ctx}");
            assert_eq!(d.node.meta.mode, m, "{ctx}");
            let got_losers: Vec<(u8, usize)> = d.losers.iter().map(|l| (l.content.blobs[0].0[0], l.head)).collect();
            assert_eq!(got_losers, losers, "{ctx}");
            for l in &d.losers {
                assert_eq!(l.key, keys[l.head], "{ctx}");
            }
        }
        (got, want) => panic!("{ctx}: got {got:?}, want {want:?}"),
    }
}

#[test]
fn every_combination_for_two_heads() {
    let mut n = 0;
    for base in [S::Absent, S::V0] {
        for a in ALL {
            for b in ALL {
                check(base, &[a, b], &[1, 2]);
                check(base, &[a, b], &[2, 1]);
                n += 1;
            }
        }
    }
    assert_eq!(n, 98);
}

#[test]
fn every_combination_for_three_heads() {
    let mut n = 0;
    for base in [S::Absent, S::V0] {
        for a in ALL {
            for b in ALL {
                for c in ALL {
                    for ages in [[1, 2, 3], [3, 1, 2], [2, 3, 1]] {
                        check(base, &[a, b, c], &ages);
                    }
                    n += 1;
                }
            }
        }
    }
    assert_eq!(n, 686);
}

/// A few rows of the table written out, so a mistake shared by the rules
/// and the table's model above still shows.
#[test]
fn rows_written_out() {
    let base = Some(node(0, place(ROOT, "f"), 0o644));
    let k = [key(1), key(2)];
    let run = |a: S, b: S| decide(base.as_ref(), &[state(a).as_ref(), state(b).as_ref()], &k);
    // Edit on the older side, delete on the newer: the edit stays.
    let d = run(S::V1, S::Absent).expect("kept");
    assert_eq!((d.fate, d.node.content.blobs[0].0[0]), (Fate::KeptOverDelete, 1));
    // Unchanged on one side, deleted on the other: deleted.
    assert!(run(S::V0, S::Absent).is_none());
    // Both edit: the newer (head 1) keeps it, head 0's is a copy.
    let d = run(S::V1, S::V2).expect("both");
    assert_eq!(d.node.content, content(2));
    assert_eq!(d.losers.len(), 1);
    assert_eq!((d.losers[0].content.clone(), d.losers[0].head), (content(1), 0));
    // Rename and move: one place, the newer one, no copy.
    let d = run(S::Renamed, S::Moved).expect("both");
    assert_eq!(d.node.places, BTreeSet::from([place(DIR, "f")]));
    assert!(d.losers.is_empty());
    assert_eq!(d.place_key, Some(key(2)));
    // A chmod and an edit merge.
    let d = run(S::Chmod, S::V1).expect("both");
    assert_eq!((d.node.meta.mode, d.node.content.clone()), (0o600, content(1)));
    assert_eq!(d.place_key, None);
}

fn two(base: Option<Node>, a: Option<Node>, b: Option<Node>) -> Option<Decided> {
    decide(base.as_ref(), &[a.as_ref(), b.as_ref()], &[key(1), key(2)])
}

#[test]
fn the_same_change_on_both_sides_is_one_change() {
    let v0 = node(0, place(ROOT, "f"), 0o644);
    let v1 = node(1, place(ROOT, "g"), 0o600);
    let d = two(Some(v0), Some(v1.clone()), Some(v1.clone())).expect("kept");
    assert_eq!(d.node, v1);
    assert!(d.losers.is_empty());
    assert_eq!(d.fate, Fate::Changed);
}

#[test]
fn rename_on_one_side_and_edit_on_the_other_both_stay() {
    let v0 = node(0, place(ROOT, "f"), 0o644);
    let d = two(
        Some(v0),
        Some(node(0, place(ROOT, "g"), 0o644)),
        Some(node(1, place(ROOT, "f"), 0o644)),
    )
    .expect("kept");
    assert_eq!(d.node.places, BTreeSet::from([place(ROOT, "g")]));
    assert_eq!(d.node.content, content(1));
    assert!(d.losers.is_empty());
}

#[test]
fn a_rename_beats_a_delete() {
    let v0 = node(0, place(ROOT, "f"), 0o644);
    let d = two(Some(v0), None, Some(node(0, place(ROOT, "g"), 0o644))).expect("kept");
    assert_eq!(d.fate, Fate::KeptOverDelete);
    assert_eq!(d.node.places, BTreeSet::from([place(ROOT, "g")]));
}

#[test]
fn meta_merges_field_by_field_and_xattrs_by_name() {
    let mut v0 = node(0, place(ROOT, "f"), 0o644);
    v0.meta.xattrs.insert(b"user.keep".to_vec(), b"0".to_vec());
    v0.meta.xattrs.insert(b"user.gone".to_vec(), b"0".to_vec());
    let mut a = v0.clone();
    a.meta.mode = 0o600;
    a.meta.xattrs.insert(b"user.a".to_vec(), b"a".to_vec());
    a.meta.xattrs.remove(b"user.gone".as_slice());
    a.meta.ctime = Timestamp { secs: 99, nanos: 0 };
    let mut b = v0.clone();
    b.meta.mode = 0o640;
    b.meta.uid = 7;
    b.meta.xattrs.insert(b"user.b".to_vec(), b"b".to_vec());
    let d = two(Some(v0), Some(a), Some(b)).expect("kept");
    // Head 1 (b) is newer: its mode; uid changed only on b.
    assert_eq!((d.node.meta.mode, d.node.meta.uid), (0o640, 7));
    let names: Vec<&[u8]> = d.node.meta.xattrs.keys().map(Vec::as_slice).collect();
    assert_eq!(names, [&b"user.a"[..], b"user.b", b"user.keep"]);
    // ctime is the largest of the heads'.
    assert_eq!(d.node.meta.ctime.secs, 99);
}

#[test]
fn unknown_ancestor_is_a_union_with_copies() {
    let a = node(1, place(ROOT, "f"), 0o644);
    let b = node(2, place(ROOT, "f"), 0o644);
    let d = two(None, Some(a.clone()), Some(b)).expect("added");
    assert_eq!(d.fate, Fate::Added);
    assert_eq!(d.node.content, content(2));
    assert_eq!(d.losers.len(), 1);
    // Equal on both sides: no copy.
    let d = two(None, Some(a.clone()), Some(a.clone())).expect("added");
    assert_eq!(d.node, a);
    assert!(d.losers.is_empty());
}

#[test]
fn hard_links_merge_as_sets() {
    let both = |ps: &[Place]| Node {
        places: ps.iter().cloned().collect(),
        ..node(0, place(ROOT, "x"), 0o644)
    };
    let (x, y, z, w) = (place(ROOT, "x"), place(ROOT, "y"), place(DIR, "z"), place(DIR, "w"));
    let base = both(&[x.clone(), y.clone()]);
    // A adds z, B removes y and adds w.
    let d = two(
        Some(base.clone()),
        Some(both(&[x.clone(), y.clone(), z.clone()])),
        Some(both(&[x.clone(), w.clone()])),
    )
    .expect("kept");
    assert_eq!(d.node.places, BTreeSet::from([x.clone(), z, w]));
    // A keeps only x, B keeps only y: the newer side's names stay.
    let d = two(Some(base), Some(both(&[x])), Some(both(std::slice::from_ref(&y)))).expect("kept");
    assert_eq!(d.node.places, BTreeSet::from([y]));
}

#[test]
fn newer_is_store_time_then_generation_then_commit() {
    let t = |s: i64| Some(Timestamp { secs: s, nanos: 0 });
    let k = |st, generation, c: u8| Key {
        store_time: st,
        generation,
        commit: Id([c; 32]),
    };
    assert!(k(t(2), 1, 0) > k(t(1), 9, 9), "store time first");
    assert!(k(t(1), 2, 0) > k(t(1), 1, 9), "then generation");
    assert!(k(t(1), 1, 2) > k(t(1), 1, 1), "then the commit id");
    assert!(k(t(i64::MIN), 0, 0) > k(None, 9, 9), "no store time sorts below any");
    // In a merge: the head that reached the store later wins, whatever
    // its generation.
    let v0 = node(0, place(ROOT, "f"), 0o644);
    let (a, b) = (node(1, place(ROOT, "f"), 0o644), node(2, place(ROOT, "f"), 0o644));
    let d = decide(Some(&v0), &[Some(&a), Some(&b)], &[k(t(5), 1, 0), k(t(4), 9, 0)]).expect("kept");
    assert_eq!(d.node.content, content(1));
}

#[test]
fn phase1_over_maps() {
    let f = |pairs: &[(u8, Node)]| -> Flat { pairs.iter().map(|(i, n)| (ShortId([*i; 16]), n.clone())).collect() };
    let v0 = node(0, place(ROOT, "a"), 0o644);
    let base = f(&[(1, v0.clone()), (2, node(0, place(ROOT, "b"), 0o644))]);
    // Head 0 deletes 2 and adds 3; head 1 leaves everything.
    let h0 = f(&[(1, v0.clone()), (3, node(3, place(ROOT, "c"), 0o644))]);
    let h1 = base.clone();
    let p = phase1(&base, &[h0, h1], &[key(1), key(2)]);
    assert_eq!(p.deleted, BTreeSet::from([ShortId([2; 16])]));
    let ids: Vec<FileId> = p.nodes.keys().copied().collect();
    assert_eq!(ids, [ShortId([1; 16]), ShortId([3; 16])]);
    assert_eq!(p.nodes[&ShortId([3; 16])].fate, Fate::Added);
    assert_eq!(p.nodes[&ShortId([1; 16])].fate, Fate::Unchanged);
}

//! Flattening trees into id maps and building them back: round trips give
//! the same tree ids, and folders that are the same in every version are
//! never read.

use std::collections::{BTreeMap, HashSet};

use nimbus_merge::{build, flatten, BuildError, MemTrees, Place, TreeId, ROOT};
use nimbus_vault::{Entry, EntryKind, FileId, Id, ShortId, Timestamp, Tree, Xattr};
use proptest::prelude::*;

/// A version as a test sees it: id -> (parent, name, None for a folder or
/// Some(data) for a file). Id 0 is the root.
type Model = BTreeMap<u32, (u32, String, Option<u8>)>;

fn fid(n: u32) -> FileId {
    if n == 0 {
        return ROOT;
    }
    let mut b = [0u8; 16];
    b[..4].copy_from_slice(&n.to_le_bytes());
    b[15] = 1;
    ShortId(b)
}

fn entry(name: &str, id: u32, data: Option<u8>, subtree: Option<TreeId>) -> Entry {
    Entry {
        name: name.as_bytes().to_vec(),
        kind: if data.is_some() {
            EntryKind::File
        } else {
            EntryKind::Dir
        },
        mode: 0o644,
        uid: 1000,
        gid: 1000,
        mtime: Timestamp { secs: 1, nanos: 2 },
        ctime: Timestamp { secs: 3, nanos: 4 },
        size: data.map_or(0, u64::from),
        file_id: fid(id),
        xattrs: vec![
            Xattr {
                name: b"user.a".to_vec(),
                value: vec![1],
            },
            Xattr {
                name: b"user.b".to_vec(),
                value: vec![2],
            },
        ],
        target: Vec::new(),
        rdev: 0,
        content: data.map(|d| vec![Id([d; 32])]).unwrap_or_default(),
        subtree,
    }
}

/// Stores a model's trees bottom-up (written independently of `build`),
/// returning the root's tree id and every folder's tree id.
fn store(mem: &mut MemTrees, m: &Model) -> (TreeId, BTreeMap<u32, TreeId>) {
    fn go(mem: &mut MemTrees, m: &Model, dir: u32, ids: &mut BTreeMap<u32, TreeId>) -> TreeId {
        let mut t = Tree::default();
        for (id, (parent, name, data)) in m {
            if *parent != dir {
                continue;
            }
            let sub = data.is_none().then(|| go(mem, m, *id, ids));
            t.entries.push(entry(name, *id, *data, sub));
        }
        t.sort();
        let id = mem.insert(&t);
        ids.insert(dir, id);
        id
    }
    let mut ids = BTreeMap::new();
    let root = go(mem, m, 0, &mut ids);
    (root, ids)
}

#[derive(Debug, Clone)]
enum Op {
    Edit(usize, u8),
    Rename(usize),
    Move(usize, usize),
    Delete(usize),
    Add(usize, bool),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(a, d)| Op::Edit(a, d)),
        any::<usize>().prop_map(Op::Rename),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Op::Move(a, b)),
        any::<usize>().prop_map(Op::Delete),
        (any::<usize>(), any::<bool>()).prop_map(|(a, d)| Op::Add(a, d)),
    ]
}

/// A random base: each entry's parent is the root or an earlier folder.
fn model() -> impl Strategy<Value = Model> {
    prop::collection::vec((any::<usize>(), any::<bool>(), any::<u8>()), 1..30).prop_map(|spec| {
        let mut m = Model::new();
        let mut dirs = vec![0u32];
        for (i, (p, is_dir, d)) in spec.into_iter().enumerate() {
            let id = i as u32 + 1;
            let parent = dirs[p % dirs.len()];
            m.insert(id, (parent, format!("n{id}"), (!is_dir).then_some(d)));
            if is_dir {
                dirs.push(id);
            }
        }
        m
    })
}

fn is_below(m: &Model, mut id: u32, dir: u32) -> bool {
    while id != 0 {
        if id == dir {
            return true;
        }
        id = m[&id].0;
    }
    false
}

fn apply(m: &mut Model, op: &Op, next: &mut u32) {
    let ids: Vec<u32> = m.keys().copied().collect();
    let dirs: Vec<u32> = std::iter::once(0)
        .chain(m.iter().filter(|e| e.1 .2.is_none()).map(|e| *e.0))
        .collect();
    let free = |m: &Model, parent: u32, name: &str| !m.values().any(|(p, n, _)| *p == parent && n == name);
    match *op {
        Op::Edit(a, d) if !ids.is_empty() => {
            let id = ids[a % ids.len()];
            if let Some(x) = &mut m.get_mut(&id).expect("id").2 {
                *x = x.wrapping_add(d | 1);
            }
        }
        Op::Rename(a) if !ids.is_empty() => {
            let id = ids[a % ids.len()];
            let (p, n, _) = m[&id].clone();
            let new = format!("{n}r");
            if free(m, p, &new) {
                m.get_mut(&id).expect("id").1 = new;
            }
        }
        Op::Move(a, b) if !ids.is_empty() => {
            let id = ids[a % ids.len()];
            let to = dirs[b % dirs.len()];
            let name = m[&id].1.clone();
            if !is_below(m, to, id) && free(m, to, &name) {
                m.get_mut(&id).expect("id").0 = to;
            }
        }
        Op::Delete(a) if !ids.is_empty() => {
            let id = ids[a % ids.len()];
            let gone: Vec<u32> = m.keys().copied().filter(|k| is_below(m, *k, id)).collect();
            for g in gone {
                m.remove(&g);
            }
        }
        Op::Add(a, is_dir) => {
            let to = dirs[a % dirs.len()];
            *next += 1;
            m.insert(*next, (to, format!("n{next}"), (!is_dir).then_some(7)));
        }
        _ => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// Two versions flatten and build back to their own root ids, and no
    /// folder whose tree is in both versions is read (the root aside: the
    /// merge is not asked to flatten equal roots), unless the head both
    /// moved something and added or deleted a folder (a folder moved across
    /// a new or deleted one costs a read, see `flatten`).
    #[test]
    fn round_trip_reads_only_changed_folders(base in model(), ops in prop::collection::vec(op(), 0..5)) {
        let mut head = base.clone();
        let mut next = 1000;
        for o in &ops {
            apply(&mut head, o, &mut next);
        }
        let mut mem = MemTrees::new();
        let (r0, f0) = store(&mut mem, &base);
        let (r1, f1) = store(&mut mem, &head);
        let flats = flatten(&mut mem, &[Some(r0), Some(r1)]).expect("flatten");
        // The trees of folders that differ between the versions (or are
        // in one only): the only ones that may be read.
        let mut changed: HashSet<TreeId> = HashSet::from([r0, r1]);
        for (a, b) in [(&f0, &f1), (&f1, &f0)] {
            for (dir, t) in a {
                if b.get(dir) != Some(t) {
                    changed.insert(*t);
                }
            }
        }
        let crossing = ops.iter().any(|o| matches!(o, Op::Move(..)))
            && ops.iter().any(|o| matches!(o, Op::Delete(..) | Op::Add(_, true)));
        if !crossing {
            for id in &mem.read_log {
                prop_assert!(changed.contains(id), "read an unchanged folder");
            }
        }
        let reads: HashSet<TreeId> = mem.read_log.iter().copied().collect();
        prop_assert_eq!(reads.len(), mem.reads(), "a tree was read twice");
        prop_assert_eq!(build(&mut mem, &flats[0]).expect("build base"), r0);
        prop_assert_eq!(build(&mut mem, &flats[1]).expect("build head"), r1);
        // With the empty tree as a third version nothing is common: every
        // folder is opened, and the round trip still holds.
        let mut mem2 = MemTrees::new();
        let (r0, _) = store(&mut mem2, &base);
        let flats = flatten(&mut mem2, &[None, Some(r0)]).expect("flatten");
        prop_assert!(flats[0].is_empty());
        prop_assert_eq!(flats[1].len(), base.len());
        prop_assert_eq!(build(&mut mem2, &flats[1]).expect("build"), r0);
    }
}

#[test]
fn a_folder_moved_deeper_is_not_read() {
    // /a/b, /big/{x,y}; the head moves big into /a/b unchanged.
    let mut base = Model::new();
    base.insert(1, (0, "a".into(), None));
    base.insert(2, (1, "b".into(), None));
    base.insert(3, (0, "big".into(), None));
    base.insert(4, (3, "x".into(), Some(1)));
    base.insert(5, (3, "sub".into(), None));
    base.insert(6, (5, "y".into(), Some(2)));
    let mut head = base.clone();
    head.get_mut(&3).expect("big").0 = 2;
    let mut mem = MemTrees::new();
    let (r0, f0) = store(&mut mem, &base);
    let (r1, f1) = store(&mut mem, &head);
    assert_eq!(f0[&3], f1[&3]);
    let flats = flatten(&mut mem, &[Some(r0), Some(r1)]).expect("flatten");
    assert!(!mem.read_log.contains(&f0[&3]), "big was read");
    assert!(!mem.read_log.contains(&f0[&5]), "big/sub was read");
    // Roots, a and b of each version.
    assert_eq!(mem.reads(), 6);
    assert!(flats[1][&fid(3)].is_whole());
    assert_eq!(
        flats[1][&fid(3)].places.iter().next(),
        Some(&Place {
            parent: fid(2),
            name: b"big".to_vec()
        })
    );
    assert!(
        !flats[1].contains_key(&fid(4)),
        "the children of a whole folder are not listed"
    );
    assert_eq!(build(&mut mem, &flats[1]).expect("build"), r1);
}

/// A folder moved unchanged into a new folder, or out of a folder deleted
/// since, costs one read of its own tree and none of what it holds.
#[test]
fn a_folder_moved_across_a_new_or_deleted_folder_costs_one_read() {
    let mut base = Model::new();
    base.insert(1, (0, "old".into(), None));
    base.insert(2, (1, "moved".into(), None));
    base.insert(3, (2, "deep".into(), None));
    base.insert(4, (3, "f".into(), Some(1)));
    // Into a new folder (old changes too).
    let mut into = base.clone();
    into.insert(5, (0, "new".into(), None));
    into.get_mut(&2).expect("moved").0 = 5;
    // Out of old, which is then deleted.
    let mut out = base.clone();
    out.get_mut(&2).expect("moved").0 = 0;
    out.remove(&1);
    for head in [into, out] {
        let mut mem = MemTrees::new();
        let (r0, f0) = store(&mut mem, &base);
        let (r1, _) = store(&mut mem, &head);
        let flats = flatten(&mut mem, &[Some(r0), Some(r1)]).expect("flatten");
        let reads = |t: &TreeId| mem.read_log.iter().filter(|r| *r == t).count();
        assert_eq!(reads(&f0[&2]), 1, "the moved folder, once");
        assert_eq!(reads(&f0[&3]), 0, "nothing inside it");
        assert!(flats[1][&fid(3)].is_whole() && flats[0][&fid(3)].is_whole());
        assert_eq!(build(&mut mem, &flats[1]).expect("build"), r1);
        assert_eq!(build(&mut mem, &flats[0]).expect("build"), r0);
    }
}

#[test]
fn a_deleted_folder_is_read_to_find_what_moved_out() {
    let mut base = Model::new();
    base.insert(1, (0, "d".into(), None));
    base.insert(2, (1, "keep".into(), Some(1)));
    base.insert(3, (1, "gone".into(), Some(2)));
    let mut head = base.clone();
    head.get_mut(&2).expect("keep").0 = 0;
    head.remove(&3);
    head.remove(&1);
    let mut mem = MemTrees::new();
    let (r0, _) = store(&mut mem, &base);
    let (r1, _) = store(&mut mem, &head);
    let flats = flatten(&mut mem, &[Some(r0), Some(r1)]).expect("flatten");
    // keep is seen in both versions, so it is not taken for new in head.
    assert!(flats[0].contains_key(&fid(2)) && flats[1].contains_key(&fid(2)));
    assert!(flats[0].contains_key(&fid(3)) && !flats[1].contains_key(&fid(3)));
}

#[test]
fn hard_links_keep_every_name() {
    let mut mem = MemTrees::new();
    let mut t = Tree::default();
    let e = entry("one", 9, Some(3), None);
    t.entries.push(e.clone());
    t.entries.push(Entry {
        name: b"two".to_vec(),
        ..e
    });
    t.sort();
    let root = mem.insert(&t);
    let flats = flatten(&mut mem, &[Some(root)]).expect("flatten");
    assert_eq!(flats[0][&fid(9)].places.len(), 2);
    assert_eq!(build(&mut mem, &flats[0]).expect("build"), root);
}

#[test]
fn build_refuses_broken_maps() {
    let mut m = Model::new();
    m.insert(1, (0, "a".into(), None));
    m.insert(2, (1, "b".into(), None));
    m.insert(3, (0, "f".into(), Some(1)));
    let mut mem = MemTrees::new();
    let (r, _) = store(&mut mem, &m);
    let all = flatten(&mut mem, &[None, Some(r)]).expect("flatten").remove(1);

    let mut cycle = all.clone();
    // a into its own child b.
    cycle.get_mut(&fid(1)).expect("a").places = [Place {
        parent: fid(2),
        name: b"a".to_vec(),
    }]
    .into();
    assert!(matches!(build(&mut mem, &cycle), Err(BuildError::Unreachable(_))));

    let mut dup = all.clone();
    dup.get_mut(&fid(3)).expect("f").places = [Place {
        parent: ROOT,
        name: b"a".to_vec(),
    }]
    .into();
    assert!(matches!(build(&mut mem, &dup), Err(BuildError::Duplicate { .. })));

    let mut orphan = all.clone();
    orphan.remove(&fid(1));
    assert!(matches!(
        build(&mut mem, &orphan),
        Err(BuildError::MissingParent { .. })
    ));

    let mut in_file = all.clone();
    in_file.get_mut(&fid(2)).expect("b").places = [Place {
        parent: fid(3),
        name: b"b".to_vec(),
    }]
    .into();
    assert!(matches!(build(&mut mem, &in_file), Err(BuildError::NotAFolder { .. })));

    let mut bad = all;
    bad.get_mut(&fid(3)).expect("f").places = [Place {
        parent: ROOT,
        name: b"x/y".to_vec(),
    }]
    .into();
    assert!(matches!(build(&mut mem, &bad), Err(BuildError::InvalidName(_))));
}

#[test]
fn a_missing_tree_is_an_error() {
    let mut mem = MemTrees::new();
    let err = flatten(&mut mem, &[Some(Id([1; 32]))]).unwrap_err();
    assert_eq!(err.0, Id([1; 32]));
}

/// A content's hash makes conflict copies' ids, which every device must
/// compute alike (format 3): its value is pinned here, and each field
/// changes it.
#[test]
fn a_contents_hash_is_pinned_and_covers_every_field() {
    let c = nimbus_merge::Content {
        blobs: vec![Id([1; 32]), Id([2; 32])],
        size: 42,
        target: b"t".to_vec(),
        rdev: 7,
        tree: None,
    };
    let hex: String = c.hash().iter().map(|b| format!("{b:02x}")).collect();
    // Computed independently (Python's blake3 over the bytes §2.1 names).
    assert_eq!(hex, "c17c15a1205219eaabba77241a58c31dc0bb1d19ef41f6ed5b0f773b579dd6e6");
    let mut seen = HashSet::from([c.hash()]);
    let variants = [
        nimbus_merge::Content {
            blobs: vec![Id([1; 32])],
            ..c.clone()
        },
        nimbus_merge::Content { size: 43, ..c.clone() },
        nimbus_merge::Content {
            target: b"u".to_vec(),
            ..c.clone()
        },
        nimbus_merge::Content { rdev: 8, ..c.clone() },
        nimbus_merge::Content {
            tree: Some(Id([3; 32])),
            ..c.clone()
        },
    ];
    for v in variants {
        assert!(seen.insert(v.hash()), "{v:?} hashes like another");
    }
}

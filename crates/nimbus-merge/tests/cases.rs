//! The cases issue 18 lists (docs/SYNC.md §3.3), each through the whole
//! pipeline: trees flattened, phase 1, phase 2, trees built, and the result
//! read back as paths. Each case also runs with the heads swapped and must
//! give the same root tree.

use std::collections::BTreeMap;

use nimbus_merge::{build, fix, flatten, phase1, Content, Fixed, Head, Key, MemTrees, TreeId, Trees as _};
use nimbus_vault::{Entry, EntryKind, FileId, Id, ShortId, Timestamp, Tree};

/// One entry of a version: a path, a small id, and file data (or none
/// for a folder), with a mode.
#[derive(Debug, Clone)]
struct It {
    path: &'static str,
    id: u8,
    data: Option<u8>,
    mode: u32,
}

fn f(path: &'static str, id: u8, data: u8) -> It {
    It {
        path,
        id,
        data: Some(data),
        mode: 0o644,
    }
}

fn d(path: &'static str, id: u8) -> It {
    It {
        path,
        id,
        data: None,
        mode: 0o755,
    }
}

fn fid(n: u8) -> FileId {
    ShortId([n; 16])
}

fn store(mem: &mut MemTrees, items: &[It]) -> TreeId {
    fn go(mem: &mut MemTrees, items: &[It], dir: &str) -> TreeId {
        let mut t = Tree::default();
        for it in items {
            let (parent, name) = match it.path.rsplit_once('/') {
                Some((p, n)) => (p, n),
                None => ("", it.path),
            };
            if parent != dir {
                continue;
            }
            let subtree = it.data.is_none().then(|| go(mem, items, it.path));
            t.entries.push(Entry {
                name: name.as_bytes().to_vec(),
                kind: if it.data.is_some() {
                    EntryKind::File
                } else {
                    EntryKind::Dir
                },
                mode: it.mode,
                uid: 0,
                gid: 0,
                mtime: Timestamp::default(),
                ctime: Timestamp::default(),
                size: it.data.map_or(0, u64::from),
                file_id: fid(it.id),
                xattrs: Vec::new(),
                target: Vec::new(),
                rdev: 0,
                content: it.data.map(|x| vec![Id([x; 32])]).unwrap_or_default(),
                subtree,
            });
        }
        t.sort();
        mem.insert(&t)
    }
    go(mem, items, "")
}

/// The tree as `path -> (id byte, data or None for a folder, mode)`.
fn listing(mem: &mut MemTrees, root: TreeId) -> BTreeMap<String, (u8, Option<u8>, u32)> {
    let mut out = BTreeMap::new();
    let mut todo = vec![(String::new(), root)];
    while let Some((dir, id)) = todo.pop() {
        let tree = mem.get(&id).expect("tree");
        for e in tree.entries {
            let path = format!("{dir}{}", String::from_utf8_lossy(&e.name));
            let data = (e.kind == EntryKind::File).then(|| e.content.first().map_or(0, |b| b.0[0]));
            out.insert(path.clone(), (e.file_id.0[0], data, e.mode));
            if let Some(sub) = e.subtree {
                todo.push((format!("{path}/"), sub));
            }
        }
    }
    out
}

/// Head `i` (0 is A, 1 is B); B reached the store later, so it is newer.
fn head(i: u8, root: TreeId) -> Head {
    Head {
        commit: Id([i + 1; 32]),
        root,
        device: ShortId([i + 1; 16]),
        device_name: ["A", "B", "C"][usize::from(i)].to_string(),
        generation: 1,
        store_time: Some(Timestamp {
            secs: 1_796_652_000 + i64::from(i) * 60,
            nanos: 0,
        }),
        time: Timestamp::default(),
    }
}

/// A conflict copy's id: the vault's is keyed; any hash of the original
/// id and the content serves here.
fn copy_id(id: FileId, c: &Content) -> FileId {
    let mut h = blake3::Hasher::new();
    h.update(&id.0);
    for b in &c.blobs {
        h.update(b.as_bytes());
    }
    let mut out = [0u8; 16];
    out.copy_from_slice(&h.finalize().as_bytes()[..16]);
    // Keep the first byte readable in listings: 200 + the original's.
    out[0] = 200u8.wrapping_add(id.0[0]);
    ShortId(out)
}

struct Run {
    list: BTreeMap<String, (u8, Option<u8>, u32)>,
    fixed: Fixed,
}

fn run_order(mem: &mut MemTrees, base: Option<TreeId>, heads: &[Head]) -> (TreeId, Fixed) {
    let mut roots = vec![base];
    roots.extend(heads.iter().map(|h| Some(h.root)));
    let mut flats = flatten(mem, &roots).expect("flatten");
    let hs = flats.split_off(1);
    let base = flats.remove(0);
    let keys: Vec<Key> = heads.iter().map(Head::key).collect();
    let p1 = phase1(&base, &hs, &keys);
    let fixed = fix(&p1, &base, &hs, heads, &copy_id);
    let root = build(mem, &fixed.nodes).expect("the fixed map builds");
    (root, fixed)
}

/// Merges `a` and `b` against `base` (`None`: no known ancestor), both
/// ways round.
fn merge(base: Option<&[It]>, a: &[It], b: &[It]) -> Run {
    let mut mem = MemTrees::new();
    let base = base.map(|x| store(&mut mem, x));
    let (ra, rb) = (store(&mut mem, a), store(&mut mem, b));
    let (root, fixed) = run_order(&mut mem, base, &[head(0, ra), head(1, rb)]);
    let (swapped, _) = run_order(&mut mem, base, &[head(1, rb), head(0, ra)]);
    assert_eq!(root, swapped, "the result depends on the order of the heads");
    Run {
        list: listing(&mut mem, root),
        fixed,
    }
}

fn file(list: &BTreeMap<String, (u8, Option<u8>, u32)>, path: &str) -> Option<(u8, Option<u8>)> {
    list.get(path).map(|(id, data, _)| (*id, *data))
}

const A_COPY: &str = "(conflict A 2026-12-07 14.00 UTC)";

#[test]
fn edits_to_different_files() {
    let base = [f("x", 1, 0), f("y", 2, 0)];
    let r = merge(
        Some(&base),
        &[f("x", 1, 1), f("y", 2, 0)],
        &[f("x", 1, 0), f("y", 2, 2)],
    );
    assert_eq!(file(&r.list, "x"), Some((1, Some(1))));
    assert_eq!(file(&r.list, "y"), Some((2, Some(2))));
    assert_eq!(r.list.len(), 2);
}

#[test]
fn the_same_change_on_both_sides() {
    let base = [f("x", 1, 0)];
    let r = merge(Some(&base), &[f("z", 1, 5)], &[f("z", 1, 5)]);
    assert_eq!(r.list.len(), 1);
    assert_eq!(file(&r.list, "z"), Some((1, Some(5))));
    assert!(r.fixed.copies.is_empty());
}

#[test]
fn rename_on_a_edit_on_b() {
    let base = [f("x", 1, 0)];
    let r = merge(Some(&base), &[f("renamed", 1, 0)], &[f("x", 1, 7)]);
    assert_eq!(r.list.len(), 1);
    assert_eq!(file(&r.list, "renamed"), Some((1, Some(7))));
}

#[test]
fn folder_moved_on_a_files_added_into_it_on_b() {
    let base = [d("p", 1), d("p/dir", 2), f("p/dir/old", 3, 0), d("q", 4)];
    let a = [d("p", 1), d("q", 4), d("q/dir", 2), f("q/dir/old", 3, 0)];
    let b = [
        d("p", 1),
        d("p/dir", 2),
        f("p/dir/old", 3, 0),
        f("p/dir/new", 5, 1),
        d("q", 4),
    ];
    let r = merge(Some(&base), &a, &b);
    assert_eq!(file(&r.list, "q/dir/new"), Some((5, Some(1))));
    assert_eq!(file(&r.list, "q/dir/old"), Some((3, Some(0))));
    assert!(!r.list.contains_key("p/dir"));
}

#[test]
fn edit_on_a_delete_on_b() {
    let base = [f("x", 1, 0), f("y", 2, 0)];
    let r = merge(Some(&base), &[f("x", 1, 3), f("y", 2, 0)], &[f("y", 2, 0)]);
    assert_eq!(file(&r.list, "x"), Some((1, Some(3))));
}

#[test]
fn delete_a_folder_on_a_edit_a_file_inside_on_b() {
    let base = [
        d("dir", 1),
        f("dir/keep", 2, 0),
        f("dir/other", 3, 0),
        d("dir/sub", 4),
        f("dir/sub/s", 5, 0),
    ];
    let a: [It; 0] = [];
    let b = [
        d("dir", 1),
        f("dir/keep", 2, 9),
        f("dir/other", 3, 0),
        d("dir/sub", 4),
        f("dir/sub/s", 5, 0),
    ];
    let r = merge(Some(&base), &a, &b);
    assert_eq!(file(&r.list, "dir/keep"), Some((2, Some(9))));
    assert_eq!(file(&r.list, "dir"), Some((1, None)));
    // Its other children stay deleted.
    assert_eq!(r.list.len(), 2, "{:?}", r.list);
    assert_eq!(r.fixed.restored, [fid(1)]);
}

#[test]
fn same_new_folder_name_on_a_and_b() {
    let base = [f("x", 1, 0)];
    let a = [f("x", 1, 0), d("new", 10), f("new/from-a", 11, 1), f("new/both", 12, 1)];
    let b = [f("x", 1, 0), d("new", 20), f("new/from-b", 21, 2), f("new/both", 22, 2)];
    let r = merge(Some(&base), &a, &b);
    assert_eq!(file(&r.list, "new"), Some((10, None)), "the smaller id stays");
    assert_eq!(file(&r.list, "new/from-a"), Some((11, Some(1))));
    assert_eq!(file(&r.list, "new/from-b"), Some((21, Some(2))));
    // Inside, the same name again: B is newer, A's gets a conflict name.
    assert_eq!(file(&r.list, "new/both"), Some((22, Some(2))));
    assert_eq!(file(&r.list, &format!("new/both {A_COPY}")), Some((12, Some(1))));
    assert_eq!(r.fixed.aliases, [(fid(20), fid(10))]);
}

#[test]
fn same_new_file_name_same_content() {
    let r = merge(Some(&[]), &[f("n.txt", 10, 4)], &[f("n.txt", 20, 4)]);
    assert_eq!(r.list.len(), 1);
    assert_eq!(file(&r.list, "n.txt"), Some((10, Some(4))));
    assert_eq!(r.fixed.aliases, [(fid(20), fid(10))]);
}

#[test]
fn same_new_file_name_different_content() {
    let r = merge(Some(&[]), &[f("n.txt", 10, 4)], &[f("n.txt", 20, 5)]);
    assert_eq!(r.list.len(), 2);
    assert_eq!(file(&r.list, "n.txt"), Some((20, Some(5))), "B is newer");
    assert_eq!(file(&r.list, &format!("n {A_COPY}.txt")), Some((10, Some(4))));
}

#[test]
fn edit_on_a_and_b_different_content() {
    let base = [f("doc.txt", 1, 0)];
    let r = merge(Some(&base), &[f("doc.txt", 1, 1)], &[f("doc.txt", 1, 2)]);
    assert_eq!(
        file(&r.list, "doc.txt"),
        Some((1, Some(2))),
        "the newer keeps name and id"
    );
    let copy = format!("doc {A_COPY}.txt");
    assert_eq!(file(&r.list, &copy), Some((201, Some(1))));
    assert_eq!(r.fixed.copies.len(), 1);
    assert_eq!(r.fixed.copies[0].of, fid(1));
}

#[test]
fn rename_to_different_names() {
    let base = [f("x", 1, 0)];
    let r = merge(Some(&base), &[f("from-a", 1, 0)], &[f("from-b", 1, 0)]);
    assert_eq!(r.list.len(), 1);
    assert_eq!(file(&r.list, "from-b"), Some((1, Some(0))));
    assert!(r.fixed.copies.is_empty());
}

#[test]
fn move_cycle() {
    let base = [d("x", 1), d("y", 2)];
    // A: x into y. B: y into x.
    let r = merge(Some(&base), &[d("y", 2), d("y/x", 1)], &[d("x", 1), d("x/y", 2)]);
    // A's change is the older: x goes back to its base place.
    assert_eq!(file(&r.list, "x"), Some((1, None)));
    assert_eq!(file(&r.list, "x/y"), Some((2, None)));
    assert_eq!(r.list.len(), 2);
}

#[test]
fn chmod_on_a_chmod_on_b() {
    let base = [f("x", 1, 0)];
    let mut a = f("x", 1, 0);
    a.mode = 0o600;
    let mut b = f("x", 1, 0);
    b.mode = 0o640;
    let r = merge(Some(&base), &[a], &[b]);
    assert_eq!(r.list["x"].2, 0o640);
}

#[test]
fn unknown_ancestor_is_a_union() {
    let a = [f("same", 1, 0), f("a-only", 2, 0), f("differs", 3, 1)];
    let b = [f("same", 1, 0), f("b-only", 4, 0), f("differs", 3, 2)];
    let r = merge(None, &a, &b);
    assert_eq!(file(&r.list, "same"), Some((1, Some(0))));
    assert!(r.list.contains_key("a-only") && r.list.contains_key("b-only"));
    assert_eq!(file(&r.list, "differs"), Some((3, Some(2))));
    assert_eq!(file(&r.list, &format!("differs {A_COPY}")), Some((203, Some(1))));
    assert_eq!(r.list.len(), 5);
}

#[test]
fn a_taken_conflict_name_gets_a_number() {
    // The copy name A's loser would get is already used by a file.
    let taken: &'static str = Box::leak(format!("doc {A_COPY}.txt").into_boxed_str());
    let base = [f("doc.txt", 1, 0), f(taken, 2, 0)];
    let r = merge(
        Some(&base),
        &[f("doc.txt", 1, 1), f(taken, 2, 0)],
        &[f("doc.txt", 1, 2), f(taken, 2, 0)],
    );
    let numbered = format!("doc {}.txt", A_COPY.replace(" UTC)", " UTC 2)"));
    assert_eq!(file(&r.list, &numbered), Some((201, Some(1))));
}

#[test]
fn three_heads_edit_one_file() {
    let mut mem = MemTrees::new();
    let base = store(&mut mem, &[f("doc.txt", 1, 0)]);
    let roots: Vec<TreeId> = (1..=3).map(|x| store(&mut mem, &[f("doc.txt", 1, x)])).collect();
    let heads: Vec<Head> = (0..3).map(|i| head(i, roots[usize::from(i)])).collect();
    let (root, fixed) = run_order(&mut mem, Some(base), &heads);
    let rev: Vec<Head> = heads.iter().rev().cloned().collect();
    assert_eq!(run_order(&mut mem, Some(base), &rev).0, root);
    let list = listing(&mut mem, root);
    assert_eq!(file(&list, "doc.txt"), Some((1, Some(3))), "C is the newest");
    assert_eq!(file(&list, &format!("doc {A_COPY}.txt")).map(|x| x.1), Some(Some(1)));
    let b_copy = "doc (conflict B 2026-12-07 14.01 UTC).txt";
    assert_eq!(file(&list, b_copy).map(|x| x.1), Some(Some(2)));
    assert_eq!(fixed.copies.len(), 2);
}

#[test]
fn a_cycle_with_no_base_place_goes_to_the_root_with_a_conflict_name() {
    use nimbus_merge::{Decided, Fate, Flat, Meta, Node, Phase1, Place};
    use std::collections::BTreeSet;
    let folder = |parent: u8, name: &str| Node {
        kind: EntryKind::Dir,
        content: Content {
            blobs: Vec::new(),
            size: 0,
            target: Vec::new(),
            rdev: 0,
            tree: None,
        },
        meta: Meta {
            mode: 0o755,
            uid: 0,
            gid: 0,
            mtime: Timestamp::default(),
            ctime: Timestamp::default(),
            xattrs: BTreeMap::new(),
        },
        places: BTreeSet::from([Place {
            parent: fid(parent),
            name: name.as_bytes().to_vec(),
        }]),
    };
    let (ha, hb) = (head(0, Id([0; 32])), head(1, Id([0; 32])));
    let decided = |node: Node, k: Key| Decided {
        node,
        fate: Fate::Added,
        losers: Vec::new(),
        place_key: Some(k),
    };
    // x inside y (A's, older), y inside x (B's): no base to go back to.
    let p1 = Phase1 {
        nodes: BTreeMap::from([
            (fid(1), decided(folder(2, "x"), ha.key())),
            (fid(2), decided(folder(1, "y"), hb.key())),
        ]),
        deleted: BTreeSet::new(),
    };
    let fixed = fix(&p1, &Flat::new(), &[Flat::new(), Flat::new()], &[ha, hb], &copy_id);
    let mut mem = MemTrees::new();
    let root = build(&mut mem, &fixed.nodes).expect("no cycle left");
    let list = listing(&mut mem, root);
    let x = format!("x {A_COPY}");
    assert_eq!(file(&list, &x), Some((1, None)));
    assert_eq!(file(&list, &format!("{x}/y")), Some((2, None)));
    assert_eq!(fixed.renamed.len(), 1);
}

mod random {
    //! Random histories through the whole pipeline: the result always
    //! builds, does not depend on the order of the heads, and keeps every
    //! content a head changed or added (§3.7).

    use super::*;
    use proptest::prelude::*;

    /// id -> (parent id, name, data or None for a folder); id 0 is the root.
    type Model = BTreeMap<u8, (u8, String, Option<u8>)>;

    fn items(m: &Model) -> Vec<It> {
        fn path(m: &Model, id: u8) -> String {
            let (p, n, _) = &m[&id];
            if *p == 0 {
                n.clone()
            } else {
                format!("{}/{n}", path(m, *p))
            }
        }
        m.iter()
            .map(|(id, (_, _, data))| It {
                path: Box::leak(path(m, *id).into_boxed_str()),
                id: *id,
                data: *data,
                mode: if data.is_some() { 0o644 } else { 0o755 },
            })
            .collect()
    }

    #[derive(Debug, Clone)]
    enum Op {
        Edit(usize, u8),
        Rename(usize, bool),
        Move(usize, usize),
        Delete(usize),
        Add(usize, bool, bool, u8),
        /// One of the first two folders of a folder into the other: two
        /// heads doing it both ways make a move cycle.
        IntoSibling(usize, bool),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (any::<usize>(), any::<u8>()).prop_map(|(a, d)| Op::Edit(a, d)),
            (any::<usize>(), any::<bool>()).prop_map(|(a, s)| Op::Rename(a, s)),
            (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Op::Move(a, b)),
            any::<usize>().prop_map(Op::Delete),
            (any::<usize>(), any::<bool>(), any::<bool>(), any::<u8>()).prop_map(|(a, d, s, x)| Op::Add(a, d, s, x)),
            (any::<usize>(), any::<bool>()).prop_map(|(a, f)| Op::IntoSibling(a, f)),
        ]
    }

    fn below(m: &Model, mut id: u8, dir: u8) -> bool {
        while id != 0 {
            if id == dir {
                return true;
            }
            id = m[&id].0;
        }
        false
    }

    fn free(m: &Model, parent: u8, name: &str) -> bool {
        !m.values().any(|(p, n, _)| *p == parent && n == name)
    }

    /// Applies one operation; `next` is the next id this head may create.
    fn apply(m: &mut Model, op: &Op, next: &mut u8) {
        let ids: Vec<u8> = m.keys().copied().collect();
        let dirs: Vec<u8> = std::iter::once(0)
            .chain(m.iter().filter(|e| e.1 .2.is_none()).map(|e| *e.0))
            .collect();
        match *op {
            Op::Edit(a, x) if !ids.is_empty() => {
                if let Some((_, _, Some(v))) = m.get_mut(&ids[a % ids.len()]) {
                    *v = x;
                }
            }
            Op::Rename(a, same) if !ids.is_empty() => {
                let id = ids[a % ids.len()];
                let (p, n, _) = m[&id].clone();
                // "same" names collide across heads on purpose.
                let new = if same { "same".to_string() } else { format!("{n}r") };
                if free(m, p, &new) {
                    if let Some(e) = m.get_mut(&id) {
                        e.1 = new;
                    }
                }
            }
            Op::Move(a, b) if !ids.is_empty() => {
                let id = ids[a % ids.len()];
                let to = dirs[b % dirs.len()];
                let name = m[&id].1.clone();
                if !below(m, to, id) && free(m, to, &name) {
                    if let Some(e) = m.get_mut(&id) {
                        e.0 = to;
                    }
                }
            }
            Op::Delete(a) if !ids.is_empty() => {
                let id = ids[a % ids.len()];
                let gone: Vec<u8> = m.keys().copied().filter(|k| below(m, *k, id)).collect();
                for g in gone {
                    m.remove(&g);
                }
            }
            Op::Add(a, is_dir, same, x) => {
                let to = dirs[a % dirs.len()];
                let name = if same { "same".to_string() } else { format!("n{next}") };
                if free(m, to, &name) && *next < u8::MAX {
                    m.insert(*next, (to, name, (!is_dir).then_some(x)));
                    *next += 1;
                }
            }
            Op::IntoSibling(a, flip) => {
                // The root or the first folder, so that heads often pick the same.
                let p = dirs[a % dirs.len().min(2)];
                let sibs: Vec<u8> = m
                    .iter()
                    .filter(|e| e.1 .0 == p && e.1 .2.is_none())
                    .map(|e| *e.0)
                    .take(2)
                    .collect();
                if let [x, y] = sibs[..] {
                    let (what, to) = if flip { (x, y) } else { (y, x) };
                    let name = m[&what].1.clone();
                    if free(m, to, &name) {
                        if let Some(e) = m.get_mut(&what) {
                            e.0 = to;
                        }
                    }
                }
            }
            _ => {}
        }
    }

    fn base_model() -> impl Strategy<Value = Model> {
        prop::collection::vec((any::<usize>(), any::<bool>(), any::<u8>()), 0..12).prop_map(|spec| {
            let mut m = Model::new();
            let mut dirs = vec![0u8];
            for (i, (p, is_dir, x)) in spec.into_iter().enumerate() {
                let id = i as u8 + 1;
                m.insert(id, (dirs[p % dirs.len()], format!("b{id}"), (!is_dir).then_some(x)));
                if is_dir {
                    dirs.push(id);
                }
            }
            m
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        #[test]
        fn merges_build_converge_and_keep_every_change(
            base in base_model(),
            known in any::<bool>(),
            ops in prop::collection::vec(prop::collection::vec(op(), 0..6), 2..4),
        ) {
            let mut mem = MemTrees::new();
            let mut versions = Vec::new();
            for (h, list) in ops.iter().enumerate() {
                let mut m = base.clone();
                // Each head creates ids of its own (20.., 60.., 100..).
                let mut next = 20 + 40 * h as u8;
                for o in list {
                    apply(&mut m, o, &mut next);
                }
                versions.push(m);
            }
            let base_root = known.then(|| store(&mut mem, &items(&base)));
            let heads: Vec<Head> = versions
                .iter()
                .enumerate()
                .map(|(i, m)| head(i as u8, store(&mut mem, &items(m))))
                .collect();
            let (root, _) = run_order(&mut mem, base_root, &heads);
            let rev: Vec<Head> = heads.iter().rev().cloned().collect();
            prop_assert_eq!(run_order(&mut mem, base_root, &rev).0, root, "order of heads");
            let list = listing(&mut mem, root);
            let contents: Vec<Option<u8>> = list.values().map(|x| x.1).collect();
            for m in &versions {
                for (id, (_, _, data)) in m {
                    let Some(x) = data else { continue };
                    let unchanged = known && base.get(id).map(|b| b.2) == Some(Some(*x));
                    if !unchanged {
                        prop_assert!(contents.contains(&Some(*x)), "lost content {} of id {}: {:?}", x, id, list);
                    }
                }
            }
        }
    }
}

/// Two vaults started apart, each with the same 10,000 files in the same
/// 100 folders under other ids (half with equal content, half not): the
/// union merges the folders, aliases the equal files, names the others as
/// copies, and does it in well under the design's 10 s (a pass per
/// collision would take minutes).
#[test]
fn a_large_union_stays_fast() {
    let id = |side: u8, n: u32| {
        let mut b = [side; 16];
        b[..4].copy_from_slice(&n.to_le_bytes());
        ShortId(b)
    };
    let entry = |name: String, file_id: FileId, data: Option<u8>, subtree: Option<TreeId>| Entry {
        name: name.into_bytes(),
        kind: if subtree.is_some() {
            EntryKind::Dir
        } else {
            EntryKind::File
        },
        mode: 0o644,
        uid: 0,
        gid: 0,
        mtime: Timestamp::default(),
        ctime: Timestamp::default(),
        size: 1,
        file_id,
        xattrs: Vec::new(),
        target: Vec::new(),
        rdev: 0,
        content: data.map(|x| vec![Id([x; 32])]).unwrap_or_default(),
        subtree,
    };
    let mut mem = MemTrees::new();
    let mut side = |s: u8| {
        let mut root = Tree::default();
        for d in 0..100u32 {
            let mut t = Tree::default();
            for f in 0..100u32 {
                let n = d * 100 + f;
                // Even files: the same bytes on both sides.
                let data = if n % 2 == 0 { 1 } else { s };
                t.entries
                    .push(entry(format!("f{f}.txt"), id(s, 1000 + n), Some(data), None));
            }
            t.sort();
            let sub = mem.insert(&t);
            root.entries.push(entry(format!("d{d}"), id(s, d), None, Some(sub)));
        }
        root.sort();
        mem.insert(&root)
    };
    let (ra, rb) = (side(1), side(2));
    let started = std::time::Instant::now();
    let (root, fixed) = run_order(&mut mem, None, &[head(0, ra), head(1, rb)]);
    let took = started.elapsed();
    assert!(took.as_secs() < 60, "took {took:?}");
    assert_eq!(fixed.aliases.len(), 100 + 5_000);
    assert_eq!(fixed.renamed.len(), 5_000);
    let list = listing(&mut mem, root);
    assert_eq!(list.len(), 100 + 5_000 + 2 * 5_000);
    assert!(list.contains_key(&format!("d0/f1 {A_COPY}.txt")));
}

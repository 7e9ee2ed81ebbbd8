//! Properties of the whole merge (docs/SYNC.md §6.1), on random histories:
//! 2 to 4 devices edit their own trees (create, write, delete, rename,
//! move, folder create and delete, chmod, xattrs, on a small name space so names
//! collide) and commit on top of what they last merged, and in random
//! interleavings merge the heads they can see. Checked:
//!
//! - (a) a merge does not depend on the order its heads are given;
//! - (b) once every device has merged every head, all hold one tree, and
//!   merging again changes nothing (no new commit, an empty report);
//! - (c) no version lost (§3.7): every content value a device committed is
//!   in every merge's result (at its name or in a conflict copy) unless a
//!   device replaced or deleted it on top of it;
//! - (d) with no common ancestor (histories started apart) a merge deletes
//!   nothing: every value of every head is in the result.
//!
//! Cases: `NIMBUS_MERGE_CASES` (default 256 per property). A failure prints
//! the shrunk history.

use std::collections::{BTreeMap, BTreeSet};

use nimbus_merge::{merge, Base, CommitInfo, Content, Head, Limits, MemCommits, MemTrees, Merged, TreeId, Trees, ROOT};
use nimbus_vault::{CommitId, Entry, EntryKind, FileId, Id, ShortId, Timestamp, Tree};
use proptest::prelude::*;

/// The names a device picks from: few, so two devices often pick alike.
const NAMES: [&[u8]; 4] = [b"a", b"b", b"c.txt", b"d"];

/// One node of a device's tree.
#[derive(Debug, Clone, PartialEq, Eq)]
struct N {
    parent: FileId,
    name: Vec<u8>,
    dir: bool,
    /// A file's content value (unique per write), 0 for a folder.
    data: u32,
    mode: u32,
    xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
}

type Model = BTreeMap<FileId, N>;

/// One edit, its numbers read modulo what exists when it runs (so any
/// list of them is a valid history, and shrinking keeps it one).
#[derive(Debug, Clone, Copy)]
struct Op {
    kind: u8,
    a: u16,
    b: u16,
    c: u8,
}

#[derive(Debug, Clone)]
enum Step {
    /// A device edits its tree and commits.
    Edit(u8, Vec<Op>),
    /// A device merges its head with the refs of the devices in the mask.
    Merge(u8, u8),
}

#[derive(Debug, Clone)]
struct History {
    devices: usize,
    /// Started apart: each device's first tree is its own root commit.
    apart: bool,
    init: Vec<Vec<Op>>,
    steps: Vec<Step>,
}

fn op() -> impl Strategy<Value = Op> {
    (0u8..10, any::<u16>(), any::<u16>(), any::<u8>()).prop_map(|(kind, a, b, c)| Op { kind, a, b, c })
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0u8..4, prop::collection::vec(op(), 1..6)).prop_map(|(d, ops)| Step::Edit(d, ops)),
        (0u8..4, any::<u8>()).prop_map(|(d, m)| Step::Merge(d, m)),
    ]
}

fn history(apart: bool) -> impl Strategy<Value = History> {
    (
        2usize..=4,
        prop::collection::vec(prop::collection::vec(op(), 0..10), 4),
        prop::collection::vec(step(), 1..20),
    )
        .prop_map(move |(devices, init, steps)| History {
            devices,
            apart,
            init,
            steps,
        })
}

fn cases() -> u32 {
    std::env::var("NIMBUS_MERGE_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

/// A conflict copy's id: any hash of the original id and the content.
fn copy_id(id: FileId, c: &Content) -> FileId {
    let mut h = blake3::Hasher::new();
    h.update(&id.0);
    for b in &c.blobs {
        h.update(b.as_bytes());
    }
    let mut out = [0u8; 16];
    out.copy_from_slice(&h.finalize().as_bytes()[..16]);
    ShortId(out)
}

fn blob(v: u32) -> Id {
    let mut b = [0u8; 32];
    b[..4].copy_from_slice(&v.to_le_bytes());
    Id(b)
}

fn store(trees: &mut MemTrees, m: &Model) -> TreeId {
    let mut kids: BTreeMap<FileId, Vec<FileId>> = BTreeMap::new();
    for (id, n) in m {
        kids.entry(n.parent).or_default().push(*id);
    }
    fn go(trees: &mut MemTrees, m: &Model, kids: &BTreeMap<FileId, Vec<FileId>>, dir: FileId) -> TreeId {
        let mut t = Tree::default();
        for id in kids.get(&dir).into_iter().flatten() {
            let n = &m[id];
            let subtree = n.dir.then(|| go(trees, m, kids, *id));
            t.entries.push(Entry {
                name: n.name.clone(),
                kind: if n.dir { EntryKind::Dir } else { EntryKind::File },
                mode: n.mode,
                uid: 0,
                gid: 0,
                mtime: Timestamp::default(),
                ctime: Timestamp::default(),
                size: u64::from(n.data % 1000),
                file_id: *id,
                xattrs: n
                    .xattrs
                    .iter()
                    .map(|(name, value)| nimbus_vault::Xattr {
                        name: name.clone(),
                        value: value.clone(),
                    })
                    .collect(),
                target: Vec::new(),
                rdev: 0,
                content: if n.dir { Vec::new() } else { vec![blob(n.data)] },
                subtree,
            });
        }
        t.sort();
        trees.insert(&t)
    }
    go(trees, m, &kids, ROOT)
}

fn read(trees: &mut MemTrees, root: TreeId) -> Model {
    let mut m = Model::new();
    let mut todo = vec![(ROOT, root)];
    while let Some((dir, id)) = todo.pop() {
        let tree = trees.get(&id).expect("a stored tree");
        for e in tree.entries {
            let is_dir = e.kind == EntryKind::Dir;
            if let Some(sub) = e.subtree {
                todo.push((e.file_id, sub));
            }
            let data = e
                .content
                .first()
                .map_or(0, |b| u32::from_le_bytes([b.0[0], b.0[1], b.0[2], b.0[3]]));
            let old = m.insert(
                e.file_id,
                N {
                    parent: dir,
                    name: e.name,
                    dir: is_dir,
                    data,
                    mode: e.mode,
                    xattrs: e.xattrs.into_iter().map(|x| (x.name, x.value)).collect(),
                },
            );
            assert!(
                old.is_none(),
                "{} has two names (no hard links are made here)",
                e.file_id
            );
        }
    }
    m
}

fn values(m: &Model) -> BTreeSet<u32> {
    m.values().filter(|n| !n.dir).map(|n| n.data).collect()
}

#[derive(Debug, Default, Clone)]
struct Dev {
    head: Option<CommitId>,
    /// Its ref in the store.
    published: Option<CommitId>,
    next_id: u32,
}

struct World {
    trees: MemTrees,
    commits: MemCommits,
    info: BTreeMap<CommitId, Head>,
    devs: Vec<Dev>,
    clock: i64,
    next_commit: u32,
    next_value: u32,
    /// Every value a device committed.
    committed: BTreeSet<u32>,
    /// Values a device replaced or deleted on top of them (§3.7).
    superseded: BTreeSet<u32>,
    stats: Stats,
}

/// What the merges of a history met, to show the generator reaches the
/// cases that matter.
#[derive(Debug, Default, Clone, Copy)]
struct Stats {
    merges: usize,
    /// Merges of three or more heads (folded in several steps).
    folds: usize,
    virtual_bases: usize,
    unknown_bases: usize,
    copies: usize,
    aliases: usize,
    /// Ids given a conflict name by a collision or a broken cycle.
    conflict_names: usize,
}

impl World {
    fn new(devices: usize) -> Self {
        World {
            trees: MemTrees::new(),
            commits: MemCommits::new(),
            info: BTreeMap::new(),
            devs: vec![Dev::default(); devices],
            clock: 0,
            next_commit: 0,
            next_value: 1,
            committed: BTreeSet::new(),
            superseded: BTreeSet::new(),
            stats: Stats::default(),
        }
    }

    fn commit(&mut self, d: usize, parents: Vec<CommitId>, root: TreeId) -> CommitId {
        self.next_commit += 1;
        let mut b = [0u8; 32];
        // Ids not in time order, so ties fall differently from keys.
        b[..4].copy_from_slice(&self.next_commit.wrapping_mul(2_654_435_761).to_be_bytes());
        b[4..8].copy_from_slice(&self.next_commit.to_be_bytes());
        let id = Id(b);
        let generation = 1 + parents
            .iter()
            .filter_map(|p| self.info.get(p))
            .map(|h| h.generation)
            .max()
            .unwrap_or(0);
        self.clock += 1;
        self.commits.insert(
            id,
            CommitInfo {
                parents,
                generation,
                root,
            },
        );
        self.info.insert(
            id,
            Head {
                commit: id,
                root,
                device: ShortId([d as u8 + 1; 16]),
                device_name: format!("dev{d}"),
                generation,
                store_time: Some(Timestamp {
                    secs: 1_796_652_000 + self.clock * 60,
                    nanos: 0,
                }),
                time: Timestamp::default(),
            },
        );
        self.devs[d].head = Some(id);
        self.devs[d].published = Some(id);
        id
    }

    fn model_of(&mut self, d: usize) -> Model {
        match self.devs[d].head.and_then(|h| self.info.get(&h)).map(|h| h.root) {
            Some(root) => read(&mut self.trees, root),
            None => Model::new(),
        }
    }

    /// Device `d` edits its tree and commits on top of its head.
    fn edit(&mut self, d: usize, ops: &[Op], parents: Option<Vec<CommitId>>) {
        let mut m = self.model_of(d);
        for op in ops {
            self.apply(d, &mut m, *op);
        }
        let root = store(&mut self.trees, &m);
        let parents = parents.unwrap_or_else(|| self.devs[d].head.into_iter().collect());
        self.committed.extend(values(&m));
        self.commit(d, parents, root);
    }

    fn apply(&mut self, d: usize, m: &mut Model, op: Op) {
        let folders: Vec<FileId> = std::iter::once(ROOT)
            .chain(m.iter().filter(|(_, n)| n.dir).map(|(id, _)| *id))
            .collect();
        let files: Vec<FileId> = m.iter().filter(|(_, n)| !n.dir).map(|(id, _)| *id).collect();
        let all: Vec<FileId> = m.keys().copied().collect();
        let pick = |v: &[FileId], i: u16| (!v.is_empty()).then(|| v[usize::from(i) % v.len()]);
        let name = NAMES[usize::from(op.c) % NAMES.len()].to_vec();
        let taken = |m: &Model, parent: FileId, name: &[u8]| m.values().any(|n| n.parent == parent && n.name == name);
        match op.kind {
            0..=2 => {
                let Some(parent) = pick(&folders, op.a) else { return };
                if taken(m, parent, &name) {
                    return;
                }
                let dev = &mut self.devs[d];
                dev.next_id += 1;
                let mut id = [0u8; 16];
                id[0] = d as u8 + 1;
                id[1..5].copy_from_slice(&dev.next_id.to_be_bytes());
                let dir = op.kind == 2;
                let data = if dir { 0 } else { self.value() };
                m.insert(
                    ShortId(id),
                    N {
                        parent,
                        name,
                        dir,
                        data,
                        mode: if dir { 0o755 } else { 0o644 },
                        xattrs: BTreeMap::new(),
                    },
                );
            }
            3 | 4 => {
                let Some(f) = pick(&files, op.a) else { return };
                let v = self.value();
                if let Some(n) = m.get_mut(&f) {
                    self.superseded.insert(n.data);
                    n.data = v;
                }
            }
            5 => {
                let Some(x) = pick(&all, op.a) else { return };
                for id in subtree(m, x) {
                    if let Some(n) = m.remove(&id) {
                        if !n.dir {
                            self.superseded.insert(n.data);
                        }
                    }
                }
            }
            6 | 7 => {
                let (Some(x), Some(to)) = (pick(&all, op.a), pick(&folders, op.b)) else {
                    return;
                };
                if subtree(m, x).contains(&to) || taken(m, to, &name) {
                    return;
                }
                if let Some(n) = m.get_mut(&x) {
                    n.parent = to;
                    n.name = name;
                }
            }
            8 => {
                let Some(x) = pick(&all, op.a) else { return };
                if let Some(n) = m.get_mut(&x) {
                    n.mode = 0o600 + u32::from(op.c % 3) * 0o10;
                }
            }
            _ => {
                // An xattr of two names set to one of three values, or
                // removed.
                let Some(x) = pick(&all, op.a) else { return };
                if let Some(n) = m.get_mut(&x) {
                    let name = if op.b & 1 == 0 {
                        b"user.x".to_vec()
                    } else {
                        b"user.y".to_vec()
                    };
                    match op.c % 4 {
                        0 => n.xattrs.remove(&name),
                        v => n.xattrs.insert(name, vec![v]),
                    };
                }
            }
        }
    }

    fn value(&mut self) -> u32 {
        self.next_value += 1;
        self.next_value
    }

    /// Runs the merge of `heads` for device `d`, checking (a), (c) and (d)
    /// on it.
    fn merge(&mut self, d: usize, heads: &[CommitId]) -> Result<Merged, TestCaseError> {
        let hs: Vec<Head> = heads.iter().filter_map(|h| self.info.get(h).cloned()).collect();
        let ours = self.devs[d].head.and_then(|h| hs.iter().position(|x| x.commit == h));
        let limits = Limits::default();
        let merged = merge(&mut self.commits, &mut self.trees, &hs, ours, &copy_id, &limits).expect("the merge runs");
        let st = &mut self.stats;
        st.merges += 1;
        st.folds += usize::from(merged.heads.len() > 2);
        st.virtual_bases += merged
            .bases
            .iter()
            .filter(|b| matches!(b, Base::Virtual { .. }))
            .count();
        st.unknown_bases += merged.bases.iter().filter(|b| matches!(b, Base::Unknown(_))).count();
        st.copies += merged.copies.len();
        st.aliases += merged.aliases.len();
        st.conflict_names += merged
            .report
            .changes
            .values()
            .filter(|c| c.kind == nimbus_merge::ChangeKind::Conflict)
            .count();
        // (a): reversed and rotated give the same tree.
        let mut rev = hs.clone();
        rev.reverse();
        let mut rot = hs.clone();
        rot.rotate_left(1);
        for other in [rev, rot] {
            let again =
                merge(&mut self.commits, &mut self.trees, &other, None, &copy_id, &limits).expect("the merge runs");
            prop_assert_eq!(
                again.root,
                merged.root,
                "(a) the result depends on the order of the heads"
            );
        }
        // (c) and (d).
        let result = values(&read(&mut self.trees, merged.root));
        let apart = !merged.bases.is_empty() && merged.bases.iter().all(|b| matches!(b, Base::Unknown(_)));
        // Heads reduced away are ancestors of another: their values may
        // have been replaced since, on top of them.
        for h in &hs {
            let m = read(&mut self.trees, h.root);
            let kept = merged.heads.iter().any(|k| k.commit == h.commit);
            for v in values(&m) {
                if apart && kept {
                    prop_assert!(
                        result.contains(&v),
                        "(d) value {v} of {} deleted with no common ancestor",
                        h.device_name
                    );
                }
                if !self.superseded.contains(&v) {
                    prop_assert!(
                        result.contains(&v),
                        "(c) value {v} of {} lost in a merge",
                        h.device_name
                    );
                }
            }
        }
        Ok(merged)
    }

    /// Device `d` merges its head with the refs of the devices in `mask`;
    /// a new commit when the merge made one, a fast-forward when one head
    /// was left. Returns whether it wrote a commit.
    fn merge_seen(&mut self, d: usize, mask: u8) -> Result<bool, TestCaseError> {
        let mut heads: Vec<CommitId> = self.devs[d].head.into_iter().collect();
        for (i, dev) in self.devs.iter().enumerate() {
            if i != d && mask & (1 << i) != 0 {
                heads.extend(dev.published);
            }
        }
        if heads.len() < 2 {
            return Ok(false);
        }
        let merged = self.merge(d, &heads)?;
        if merged.heads.len() == 1 {
            self.devs[d].head = Some(merged.heads[0].commit);
            return Ok(false);
        }
        let mut parents: Vec<CommitId> = merged.heads.iter().map(|h| h.commit).collect();
        parents.sort();
        self.commit(d, parents, merged.root);
        Ok(true)
    }

    fn root_of(&self, d: usize) -> Option<TreeId> {
        self.devs[d].head.and_then(|h| self.info.get(&h)).map(|h| h.root)
    }
}

/// `x` and everything below it.
fn subtree(m: &Model, x: FileId) -> BTreeSet<FileId> {
    let mut out = BTreeSet::from([x]);
    loop {
        let more: Vec<FileId> = m
            .iter()
            .filter(|(id, n)| out.contains(&n.parent) && !out.contains(id))
            .map(|(id, _)| *id)
            .collect();
        if more.is_empty() {
            return out;
        }
        out.extend(more);
    }
}

fn run(h: &History) -> Result<Stats, TestCaseError> {
    let n = h.devices;
    let mut w = World::new(n);
    if h.apart {
        for d in 0..n {
            w.edit(d, &h.init[d], Some(Vec::new()));
        }
    } else {
        w.edit(0, &h.init[0], Some(Vec::new()));
        let c0 = w.devs[0].head;
        for dev in &mut w.devs {
            dev.head = c0;
            dev.published = c0;
        }
    }
    for s in &h.steps {
        match s {
            Step::Edit(d, ops) => {
                let d = usize::from(*d) % n;
                w.edit(d, ops, None);
            }
            Step::Merge(d, mask) => {
                let d = usize::from(*d) % n;
                w.merge_seen(d, *mask)?;
            }
        }
    }
    // (b) gossip: every device merges every ref until a round writes
    // nothing; it must settle within a few rounds.
    let all = u8::MAX;
    let mut settled = false;
    for _ in 0..4 {
        let mut wrote = false;
        for d in 0..n {
            wrote |= w.merge_seen(d, all)?;
        }
        let roots: BTreeSet<Option<TreeId>> = (0..n).map(|d| w.root_of(d)).collect();
        if !wrote && roots.len() == 1 {
            settled = true;
            break;
        }
    }
    prop_assert!(
        settled,
        "(b) the devices did not converge in 4 rounds of merging every head"
    );
    // Merging the settled state again: one head, the same tree, nothing
    // changed; and a head merged with itself is itself.
    for d in 0..n {
        let heads: Vec<CommitId> = (0..n)
            .filter_map(|i| w.devs[i].published)
            .chain(w.devs[d].head)
            .collect();
        let merged = w.merge(d, &heads)?;
        prop_assert_eq!(merged.heads.len(), 1, "(b) a settled state still has several heads");
        prop_assert_eq!(Some(merged.root), w.root_of(d), "(b) re-merging changed the tree");
        prop_assert!(
            merged.report.is_empty(),
            "(b) re-merging reports changes: {:?}",
            merged.report
        );
        let own: Vec<CommitId> = w.devs[d].head.into_iter().collect();
        let twice = [own.clone(), own].concat();
        let merged = w.merge(d, &twice)?;
        prop_assert_eq!(Some(merged.root), w.root_of(d), "(b) merge(h, h) is not h");
    }
    // (c) at the end, against the whole history.
    let Some(root) = w.root_of(0) else { return Ok(w.stats) };
    let result = values(&read(&mut w.trees, root));
    for v in w.committed.difference(&w.superseded) {
        prop_assert!(
            result.contains(v),
            "(c) value {v} was committed, never replaced, and is gone"
        );
    }
    Ok(w.stats)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    /// (a), (b), (c) on histories from one common start.
    #[test]
    fn shared_start(h in history(false)) {
        run(&h)?;
    }

    /// (a), (b), (c), (d) on histories started apart.
    #[test]
    fn started_apart(h in history(true)) {
        run(&h)?;
    }
}

/// The generator reaches what the properties are about: conflict copies,
/// folds of three heads or more, virtual bases, unions, merged folders.
#[test]
fn histories_reach_the_cases_that_matter() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let mut total = Stats::default();
    for apart in [false, true] {
        for _ in 0..150 {
            let h = history(apart).new_tree(&mut runner).expect("a history").current();
            let s = run(&h).expect("the properties hold");
            total.merges += s.merges;
            total.folds += s.folds;
            total.virtual_bases += s.virtual_bases;
            total.unknown_bases += s.unknown_bases;
            total.copies += s.copies;
            total.aliases += s.aliases;
            total.conflict_names += s.conflict_names;
        }
    }
    eprintln!("{total:?}");
    assert!(
        total.folds > 0 && total.virtual_bases > 0 && total.unknown_bases > 0,
        "{total:?}"
    );
    assert!(
        total.copies > 0 && total.aliases > 0 && total.conflict_names > 0,
        "{total:?}"
    );
}

/// The report of one plain two-device merge names what came from where.
#[test]
fn report_names_the_changes_and_their_device() {
    let mut w = World::new(2);
    let ops = |kind, a, c| Op { kind, a, b: 0, c };
    // A file `a` and a folder `d` to start with.
    w.edit(0, &[ops(0, 0, 0), ops(2, 0, 3)], Some(Vec::new()));
    let c0 = w.devs[0].head;
    w.devs[1].head = c0;
    w.devs[1].published = c0;
    // Device 1 adds `b` and writes `a`; device 0 renames `d` to `c.txt`.
    w.edit(1, &[ops(0, 0, 1), ops(3, 0, 0)], None);
    w.edit(0, &[ops(6, 1, 2)], None);
    let heads = [w.devs[0].head, w.devs[1].published].map(|h| h.expect("a head"));
    let merged = w.merge(0, &heads).expect("merges");
    let kinds: Vec<_> = merged.report.changes.values().map(|c| (c.kind, c.from)).collect();
    assert_eq!(
        kinds.iter().filter(|(_, from)| *from == Some(1)).count(),
        2,
        "two changes from device 1: {kinds:?}"
    );
    let mut k: Vec<_> = kinds.iter().map(|c| c.0).collect();
    k.sort();
    assert_eq!(
        k,
        vec![nimbus_merge::ChangeKind::Added, nimbus_merge::ChangeKind::Changed]
    );
    assert_eq!(merged.report.by_head().get(&Some(1)), Some(&2));
}

/// Deletes, renames and conflicts in the report, and where each came from.
#[test]
fn report_has_deletes_renames_and_conflicts() {
    use nimbus_merge::ChangeKind::{Changed, Conflict, Deleted, Renamed};
    let mut w = World::new(2);
    let op = |kind, a, b, c| Op { kind, a, b, c };
    // `a`, `b`, `c.txt` in the root.
    w.edit(0, &[op(0, 0, 0, 0), op(0, 0, 0, 1), op(0, 0, 0, 2)], Some(Vec::new()));
    let c0 = w.devs[0].head;
    w.devs[1].head = c0;
    w.devs[1].published = c0;
    // Device 0 writes `a`; then device 1 (newer) deletes `b`, renames
    // `c.txt` to `d` and writes `a` too.
    w.edit(0, &[op(3, 0, 0, 0)], None);
    w.edit(1, &[op(5, 1, 0, 0), op(6, 1, 0, 3), op(3, 0, 0, 0)], None);
    let heads = [w.devs[0].head, w.devs[1].published].map(|h| h.expect("a head"));
    let merged = w.merge(0, &heads).expect("merges");
    let mut got: Vec<_> = merged
        .report
        .changes
        .values()
        .map(|c| {
            (
                c.kind,
                c.from,
                c.place.as_ref().map(|p| String::from_utf8_lossy(&p.name).into_owned()),
            )
        })
        .collect();
    got.sort();
    assert_eq!(merged.copies.len(), 1, "{got:?}");
    let copy = String::from_utf8_lossy(&merged.copies[0].place.name).into_owned();
    assert!(copy.starts_with("a (conflict dev0 "), "{copy}");
    assert_eq!(
        got,
        vec![
            (Changed, Some(1), Some("a".to_string())),
            (Renamed, Some(1), Some("d".to_string())),
            (Deleted, Some(1), Some("b".to_string())),
            // A copy of our own version: no other head holds it.
            (Conflict, None, Some(copy)),
        ]
    );
}

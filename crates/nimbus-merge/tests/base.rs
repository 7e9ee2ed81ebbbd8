//! The merge base (docs/SYNC.md §2.4, §2.5): hand-built histories (linear,
//! fork, criss-cross, three devices, a missing commit, version 2 commits,
//! the cap, virtual bases), the heads reduction, and proptests over random
//! histories against a brute-force ancestor-set computation, in every
//! order of the heads.

use std::collections::{BTreeSet, HashMap};
use std::convert::Infallible;

use nimbus_merge::{
    lowest_common_ancestors, merge_base, reduce_heads, Base, CommitInfo, CommitSource, Lcas, Limits, MemCommits, Side,
    TreeId, Unknown,
};
use nimbus_vault::{CommitId, Id};
use proptest::prelude::*;

/// A history under construction; commits are named by their index.
#[derive(Default)]
struct Hist {
    src: MemCommits,
    ids: Vec<CommitId>,
    gens: Vec<u64>,
}

fn root(n: u8) -> TreeId {
    Id([n; 32])
}

impl Hist {
    /// A version 3 commit (generation from its parents).
    fn c(&mut self, parents: &[usize], tree: u8) -> usize {
        let g = 1 + parents.iter().map(|&p| self.gens[p]).max().unwrap_or(0);
        self.add(parents, tree, g)
    }

    /// A version 2 commit (generation 0).
    fn v2(&mut self, parents: &[usize], tree: u8) -> usize {
        self.add(parents, tree, 0)
    }

    fn add(&mut self, parents: &[usize], tree: u8, generation: u64) -> usize {
        let n = self.ids.len();
        // Ids in an order unrelated to the order of creation.
        let id = Id(*blake3::hash(&(n as u64).to_le_bytes()).as_bytes());
        let info = CommitInfo {
            parents: parents.iter().map(|&p| self.ids[p]).collect(),
            generation,
            root: root(tree),
        };
        self.src.insert(id, info);
        self.ids.push(id);
        self.gens.push(generation);
        n
    }

    fn id(&self, i: usize) -> CommitId {
        self.ids[i]
    }

    fn lcas(&mut self, heads: &[usize]) -> Lcas {
        self.lcas_with(heads, &Limits::default())
    }

    fn lcas_with(&mut self, heads: &[usize], limits: &Limits) -> Lcas {
        let sides: Vec<[CommitId; 1]> = heads.iter().map(|&h| [self.ids[h]]).collect();
        let sides: Vec<&[CommitId]> = sides.iter().map(|s| &s[..]).collect();
        lowest_common_ancestors(&mut self.src, &sides, limits).unwrap_or_else(|e: Infallible| match e {})
    }

    fn found(&self, of: &[usize]) -> Lcas {
        let mut v: Vec<CommitId> = of.iter().map(|&i| self.ids[i]).collect();
        v.sort();
        Lcas::Found(v)
    }
}

/// A merge for virtual bases that records its calls and returns a tree id
/// made of its inputs.
#[derive(Default)]
struct Recorder {
    calls: Vec<Call>,
}

/// One call: the base, then each side's root and commits.
type Call = (Option<TreeId>, TreeId, Vec<CommitId>, TreeId, Vec<CommitId>);

fn mix(base: Option<TreeId>, a: TreeId, b: TreeId) -> TreeId {
    let mut h = blake3::Hasher::new();
    h.update(&base.map_or([0; 32], |t| t.0));
    // Symmetric in the sides, like the merge's result.
    let (x, y) = if a <= b { (a, b) } else { (b, a) };
    h.update(&x.0);
    h.update(&y.0);
    Id(*h.finalize().as_bytes())
}

fn base_of(h: &mut Hist, heads: &[usize], limits: &Limits, rec: &mut Recorder) -> Base {
    let sides: Vec<[CommitId; 1]> = heads.iter().map(|&x| [h.ids[x]]).collect();
    let sides: Vec<&[CommitId]> = sides.iter().map(|s| &s[..]).collect();
    let r = merge_base(&mut h.src, &sides, limits, |base, a: Side<'_>, b: Side<'_>| {
        rec.calls
            .push((base, a.root, a.commits.to_vec(), b.root, b.commits.to_vec()));
        Ok::<_, Infallible>(mix(base, a.root, b.root))
    });
    match r {
        Ok(b) => b,
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn linear() {
    let mut h = Hist::default();
    let a = h.c(&[], 1);
    let b = h.c(&[a], 2);
    let c = h.c(&[b], 3);
    assert_eq!(h.lcas(&[c, b]), h.found(&[b]));
    assert_eq!(h.lcas(&[b, c]), h.found(&[b]));
    assert_eq!(h.lcas(&[c, c]), h.found(&[c]));
    assert_eq!(h.lcas(&[a, c]), h.found(&[a]));
    let mut rec = Recorder::default();
    assert_eq!(
        base_of(&mut h, &[c, b], &Limits::default(), &mut rec),
        Base::Tree(root(2))
    );
    assert!(rec.calls.is_empty());
}

#[test]
fn fork() {
    let mut h = Hist::default();
    let r = h.c(&[], 1);
    let x = h.c(&[r], 2);
    let a1 = h.c(&[x], 3);
    let a2 = h.c(&[a1], 4);
    let b1 = h.c(&[x], 5);
    assert_eq!(h.lcas(&[a2, b1]), h.found(&[x]));
    assert_eq!(h.lcas(&[b1, a2]), h.found(&[x]));
    assert_eq!(
        base_of(&mut h, &[a2, b1], &Limits::default(), &mut Recorder::default()),
        Base::Tree(root(2))
    );
}

#[test]
fn the_walk_stops_at_the_fork() {
    // A long shared history under a small fork: with generations the walk
    // reads the fork and a little below, not the whole history.
    let mut h = Hist::default();
    let mut tip = h.c(&[], 0);
    for i in 0..500 {
        tip = h.c(&[tip], (i % 200) as u8);
    }
    let a = h.c(&[tip], 201);
    let b = h.c(&[tip], 202);
    assert_eq!(h.lcas(&[a, b]), h.found(&[tip]));
    assert!(h.src.asked.len() < 80, "asked {} commits", h.src.asked.len());
}

/// r; a and b from r; each device merges the other's: m1 = (a, b), m2 =
/// (b, a); then one more commit on each.
fn criss_cross(h: &mut Hist, a_tree: u8, b_tree: u8) -> (usize, usize, usize, usize, usize) {
    let r = h.c(&[], 1);
    let a = h.c(&[r], a_tree);
    let b = h.c(&[r], b_tree);
    let m1 = h.c(&[a, b], 10);
    let m2 = h.c(&[b, a], 11);
    let x = h.c(&[m1], 12);
    let y = h.c(&[m2], 13);
    (r, a, b, x, y)
}

#[test]
fn criss_cross_lcas_with_different_roots_make_a_virtual_base() {
    let mut h = Hist::default();
    let (r, a, b, x, y) = criss_cross(&mut h, 2, 3);
    assert_eq!(h.lcas(&[x, y]), h.found(&[a, b]));
    let mut rec = Recorder::default();
    let base = base_of(&mut h, &[x, y], &Limits::default(), &mut rec);
    let mut lcas = vec![h.id(a), h.id(b)];
    lcas.sort();
    assert_eq!(
        base,
        Base::Virtual {
            root: mix(Some(root(1)), root(2), root(3)),
            lcas
        }
    );
    // One merge, against the LCA of the LCAs; a and b have one generation,
    // so the smaller id is folded first.
    assert_eq!(rec.calls.len(), 1);
    let (first, second) = if h.id(a) < h.id(b) { (a, b) } else { (b, a) };
    let call = &rec.calls[0];
    assert_eq!(call.0, Some(root(1)));
    assert_eq!(call.2, vec![h.id(first)]);
    assert_eq!(call.4, vec![h.id(second)]);
    let _ = r;
}

#[test]
fn criss_cross_lcas_with_one_root_give_that_tree() {
    let mut h = Hist::default();
    let (_, _, _, x, y) = criss_cross(&mut h, 2, 2);
    let mut rec = Recorder::default();
    assert_eq!(
        base_of(&mut h, &[x, y], &Limits::default(), &mut rec),
        Base::Tree(root(2))
    );
    assert!(rec.calls.is_empty());
}

#[test]
fn lcas_of_different_generations_are_all_found() {
    // One LCA far above the other: the walk must not stop at the first.
    let mut h = Hist::default();
    let r = h.c(&[], 1);
    let low = h.c(&[r], 2);
    let mut hi = h.c(&[r], 3);
    for _ in 0..10 {
        hi = h.c(&[hi], 3);
    }
    let a = h.c(&[hi, low], 4);
    let b = h.c(&[low, hi], 5);
    assert_eq!(h.lcas(&[a, b]), h.found(&[hi, low]));
}

#[test]
fn three_devices() {
    let mut h = Hist::default();
    let r = h.c(&[], 1);
    let s = h.c(&[r], 2);
    let a = h.c(&[s], 3);
    let b = h.c(&[s], 4);
    let c = h.c(&[r], 5);
    assert_eq!(h.lcas(&[a, b, c]), h.found(&[r]));
    assert_eq!(h.lcas(&[c, a, b]), h.found(&[r]));
    assert_eq!(h.lcas(&[a, b]), h.found(&[s]));
    // The octopus step: the base of c against a and b folded together.
    let sides: [&[CommitId]; 2] = [&[h.id(a), h.id(b)], &[h.id(c)]];
    assert_eq!(
        lowest_common_ancestors(&mut h.src, &sides, &Limits::default()).unwrap_or_else(|e| match e {}),
        h.found(&[r])
    );
    // A merge of a and b, then c merged from it: the next step's base is
    // the merge, not r.
    let m = h.c(&[a, b], 6);
    let d = h.c(&[m, c], 7);
    let e = h.c(&[m], 8);
    assert_eq!(h.lcas(&[d, e]), h.found(&[m]));
    assert_eq!(h.lcas(&[d, e, b]), h.found(&[b]));
}

#[test]
fn a_missing_commit_on_the_way_is_unknown() {
    let mut h = Hist::default();
    let r = h.c(&[], 1);
    let s = h.c(&[r], 2);
    let a = h.c(&[s], 3);
    let b = h.c(&[s], 4);
    let sid = h.id(s);
    h.src.remove(&sid);
    assert_eq!(h.lcas(&[a, b]), Lcas::Unknown(Unknown::Missing(sid)));
    let mut rec = Recorder::default();
    let base = base_of(&mut h, &[a, b], &Limits::default(), &mut rec);
    assert_eq!(base, Base::Unknown(Unknown::Missing(sid)));
    assert_eq!(base.root(), None);
    // A missing head, too.
    let aid = h.id(a);
    h.src.remove(&aid);
    assert_eq!(h.lcas(&[a, b]), Lcas::Unknown(Unknown::Missing(aid)));
}

#[test]
fn a_missing_commit_below_the_base_is_not_on_the_way() {
    let mut h = Hist::default();
    let r = h.c(&[], 1);
    let s = h.c(&[r], 2);
    let t = h.c(&[s], 3);
    let a = h.c(&[t], 4);
    let b = h.c(&[t], 5);
    let rid = h.id(r);
    h.src.remove(&rid);
    assert_eq!(h.lcas(&[a, b]), h.found(&[t]));
}

/// A prune forgot the base's parent (retention keeps the heads, their
/// merge bases and what lies between, never what lies below): the search
/// still finds the base, where a commit missing without a reason makes it
/// give up.
#[test]
fn a_commit_forgotten_by_a_prune_ends_the_history_below_the_base() {
    let mut h = Hist::default();
    let r = h.c(&[], 1);
    let s = h.c(&[r], 2);
    let t = h.c(&[s], 3);
    let a = h.c(&[t], 4);
    let b = h.c(&[t], 5);
    let m = h.c(&[a, b], 6);
    let c = h.c(&[m], 7);
    let d = h.c(&[b], 8);
    let (sid, rid) = (h.id(s), h.id(r));
    h.src.remove(&sid);
    assert_eq!(h.lcas(&[a, b]), Lcas::Unknown(Unknown::Missing(sid)));
    h.src.prune(&sid);
    h.src.prune(&rid);
    assert_eq!(h.lcas(&[a, b]), h.found(&[t]));
    assert_eq!(h.lcas(&[c, d]), h.found(&[b]));
}

/// The real-process prune test's case (tests/prune): a merge whose other
/// parent a prune forgot still descends from the head it merged, so that
/// head is not merged again (which made conflict copies and brought
/// deleted files back); a parent missing without a reason still stops it.
#[test]
fn a_merge_whose_other_parent_was_pruned_still_covers_the_head_it_merged() {
    let mut h = Hist::default();
    let r = h.c(&[], 1);
    let x = h.c(&[r], 2);
    let d = h.c(&[r], 3);
    let m = h.c(&[x, d], 4);
    let l = h.c(&[m], 5);
    let (xid, rid) = (h.id(x), h.id(r));
    h.src.prune(&xid);
    h.src.prune(&rid);
    assert_eq!(reduce(&mut h, &[l, d]), vec![h.id(l)]);
    assert_eq!(h.lcas(&[l, d]), h.found(&[d]));
}

#[test]
fn no_common_commit() {
    let mut h = Hist::default();
    let a0 = h.c(&[], 1);
    let a = h.c(&[a0], 2);
    let b0 = h.c(&[], 3);
    let b = h.c(&[b0], 4);
    assert_eq!(h.lcas(&[a, b]), Lcas::Unknown(Unknown::NoCommonCommit));
    assert_eq!(
        base_of(&mut h, &[a, b], &Limits::default(), &mut Recorder::default()),
        Base::Unknown(Unknown::NoCommonCommit)
    );
}

#[test]
fn a_generation_that_does_not_follow_is_damage() {
    let mut h = Hist::default();
    let r = h.c(&[], 1);
    let bad = h.add(&[r], 2, 7);
    let a = h.c(&[bad], 3);
    let b = h.c(&[r], 4);
    assert_eq!(h.lcas(&[a, b]), Lcas::Unknown(Unknown::BadGeneration(h.id(bad))));
}

#[test]
fn version_2_commits_walk_without_generations() {
    let mut h = Hist::default();
    let r = h.v2(&[], 1);
    let mut s = r;
    for _ in 0..30 {
        s = h.v2(&[s], 2);
    }
    let a = h.v2(&[s], 3);
    let b = h.v2(&[s], 4);
    assert_eq!(h.lcas(&[a, b]), h.found(&[s]));
    // Criss-cross in version 2 history, and version 3 commits on top.
    let m1 = h.v2(&[a, b], 5);
    let m2 = h.v2(&[b, a], 6);
    assert_eq!(h.lcas(&[m1, m2]), h.found(&[a, b]));
    let x = h.c(&[m1], 7);
    let y = h.c(&[m2], 8);
    assert_eq!(h.lcas(&[x, y]), h.found(&[a, b]));
    // A candidate met before its descendant: still only the lowest.
    let p = h.v2(&[s], 9);
    let q = h.v2(&[p], 10);
    let u = h.v2(&[q, p], 11);
    let v = h.v2(&[q], 12);
    assert_eq!(h.lcas(&[u, v]), h.found(&[q]));
}

#[test]
fn without_generations_a_candidate_met_first_may_be_above_another() {
    // u and v both have q and its parent p as parents: p and q are both
    // reached by every head at once, and without generations the walk may
    // meet p first. Ids vary with the padding, so both orders occur.
    for pad in 0..8 {
        let mut h = Hist::default();
        for _ in 0..pad {
            h.v2(&[], 0);
        }
        let r = h.v2(&[], 1);
        let p = h.v2(&[r], 2);
        let q = h.v2(&[p], 3);
        let u = h.v2(&[q, p], 4);
        let v = h.v2(&[p, q], 5);
        assert_eq!(h.lcas(&[u, v]), h.found(&[q]), "pad {pad}");
    }
}

#[test]
fn the_cap_bounds_version_2_walks() {
    let mut h = Hist::default();
    let r = h.v2(&[], 1);
    let mut a = r;
    let mut b = r;
    for _ in 0..100 {
        a = h.v2(&[a], 2);
        b = h.v2(&[b], 3);
    }
    let small = Limits {
        walk_cap: 50,
        ..Limits::default()
    };
    assert_eq!(h.lcas_with(&[a, b], &small), Lcas::Unknown(Unknown::Cap));
    assert_eq!(h.lcas(&[a, b]), h.found(&[r]));
    // Version 3 commits do not count against it.
    let mut c = h.c(&[r], 4);
    let mut d = h.c(&[r], 5);
    for _ in 0..100 {
        c = h.c(&[c], 4);
        d = h.c(&[d], 5);
    }
    assert_eq!(h.lcas_with(&[c, d], &small), h.found(&[r]));
}

#[test]
fn virtual_bases_nest_at_most_the_limit() {
    // Two rounds of criss-cross: the LCAs of the heads (m1, m2) have as
    // LCAs (a, b) again, with different roots.
    let mut h = Hist::default();
    let r = h.c(&[], 1);
    let a = h.c(&[r], 2);
    let b = h.c(&[r], 3);
    let m1 = h.c(&[a, b], 4);
    let m2 = h.c(&[b, a], 5);
    let n1 = h.c(&[m1, m2], 6);
    let n2 = h.c(&[m2, m1], 7);
    let x = h.c(&[n1], 8);
    let y = h.c(&[n2], 9);
    let mut rec = Recorder::default();
    let base = base_of(&mut h, &[x, y], &Limits::default(), &mut rec);
    let inner = mix(Some(root(1)), root(2), root(3));
    let outer = mix(Some(inner), root(4), root(5));
    assert_eq!(base.root(), Some(outer));
    assert_eq!(rec.calls.len(), 2);
    // One level allowed: the inner step merges against the empty tree.
    let one = Limits {
        depth: 1,
        ..Limits::default()
    };
    let mut rec = Recorder::default();
    let base = base_of(&mut h, &[x, y], &one, &mut rec);
    assert_eq!(base.root(), Some(mix(None, root(4), root(5))));
    assert_eq!(rec.calls.len(), 1);
    // None allowed: unknown.
    let none = Limits {
        depth: 0,
        ..Limits::default()
    };
    let base = base_of(&mut h, &[x, y], &none, &mut Recorder::default());
    assert_eq!(base, Base::Unknown(Unknown::TooDeep));
}

#[test]
fn three_lcas_fold_in_order() {
    let mut h = Hist::default();
    let r = h.c(&[], 1);
    let a = h.c(&[r], 2);
    let b = h.c(&[r], 3);
    let c = h.c(&[a], 4);
    let x = h.c(&[c, b], 5);
    let y = h.c(&[b, c], 6);
    let z = h.c(&[b, a], 7);
    let _ = z;
    // x and y: LCAs b (gen 2) and c (gen 3): b first.
    let mut rec = Recorder::default();
    let base = base_of(&mut h, &[y, x], &Limits::default(), &mut rec);
    assert_eq!(base.root(), Some(mix(Some(root(1)), root(3), root(4))));
    assert_eq!(rec.calls[0].2, vec![h.id(b)]);
    assert_eq!(rec.calls[0].4, vec![h.id(c)]);
}

fn reduce(h: &mut Hist, heads: &[usize]) -> Vec<CommitId> {
    let ids: Vec<CommitId> = heads.iter().map(|&x| h.ids[x]).collect();
    reduce_heads(&mut h.src, &ids, &Limits::default()).unwrap_or_else(|e| match e {})
}

fn sorted(h: &Hist, of: &[usize]) -> Vec<CommitId> {
    let mut v: Vec<CommitId> = of.iter().map(|&i| h.ids[i]).collect();
    v.sort();
    v
}

#[test]
fn heads_reduction() {
    let mut h = Hist::default();
    let r = h.c(&[], 1);
    let a = h.c(&[r], 2);
    let a2 = h.c(&[a], 3);
    let b = h.c(&[r], 4);
    // An ancestor of another head goes.
    assert_eq!(reduce(&mut h, &[a, a2, b]), sorted(&h, &[a2, b]));
    assert_eq!(reduce(&mut h, &[a2, b, a, a2]), sorted(&h, &[a2, b]));
    // Two merges made alike (same root): the smallest id stays.
    let m1 = h.c(&[a2, b], 9);
    let m2 = h.c(&[b, a2], 9);
    let keep = h.id(m1).min(h.id(m2));
    assert_eq!(reduce(&mut h, &[m1, m2]), vec![keep]);
    assert_eq!(reduce(&mut h, &[m2, m1, a, b]), vec![keep]);
    // A head the source does not have is kept.
    let gone = Id([0xee; 32]);
    let ids = [h.id(m1), gone, h.id(a)];
    let out = reduce_heads(&mut h.src, &ids, &Limits::default()).unwrap_or_else(|e| match e {});
    let mut want = vec![h.id(m1), gone];
    want.sort();
    assert_eq!(out, want);
}

#[test]
fn heads_reduction_with_a_missing_commit_keeps_what_it_cannot_decide() {
    let mut h = Hist::default();
    let r = h.c(&[], 1);
    let a = h.c(&[r], 2);
    let mid = h.c(&[a], 3);
    let top = h.c(&[mid], 4);
    let mid_id = h.id(mid);
    h.src.remove(&mid_id);
    assert_eq!(reduce(&mut h, &[a, top]), sorted(&h, &[a, top]));
}

// ---- random histories against brute force ----

/// A random history: commit i has parents among the commits before it.
/// The first `v2` commits are version 2 (no generation), the rest version
/// 3; roots come from a small set so that some are equal.
#[derive(Debug, Clone)]
struct Dag {
    parents: Vec<Vec<usize>>,
    roots: Vec<u8>,
    v2: usize,
}

fn dag() -> impl Strategy<Value = Dag> {
    (2usize..28, 0usize..3).prop_flat_map(|(n, mode)| {
        let parents = (0..n)
            .map(|i| {
                if i == 0 {
                    Just(Vec::new()).boxed()
                } else {
                    // Mostly one or two parents; sometimes a new root.
                    prop::collection::vec(0..i, 0..=3)
                        .prop_map(|mut v| {
                            v.sort();
                            v.dedup();
                            v
                        })
                        .boxed()
                }
            })
            .collect::<Vec<_>>();
        let v2 = match mode {
            0 => Just(0).boxed(),
            1 => Just(n).boxed(),
            _ => (0..=n).boxed(),
        };
        (parents, prop::collection::vec(0u8..4, n), v2).prop_map(|(parents, roots, v2)| Dag { parents, roots, v2 })
    })
}

fn build(d: &Dag) -> Hist {
    let mut h = Hist::default();
    for (i, ps) in d.parents.iter().enumerate() {
        if i < d.v2 {
            h.v2(ps, d.roots[i]);
        } else {
            h.c(ps, d.roots[i]);
        }
    }
    h
}

/// Every commit's ancestors, itself included.
fn ancestors(d: &Dag) -> Vec<BTreeSet<usize>> {
    let mut out: Vec<BTreeSet<usize>> = Vec::new();
    for (i, ps) in d.parents.iter().enumerate() {
        let mut s = BTreeSet::from([i]);
        for &p in ps {
            s.extend(out[p].iter().copied());
        }
        out.push(s);
    }
    out
}

fn brute_lcas(d: &Dag, sides: &[Vec<usize>]) -> Option<BTreeSet<usize>> {
    let anc = ancestors(d);
    let mut common: Option<BTreeSet<usize>> = None;
    for side in sides {
        let mut s = BTreeSet::new();
        for &c in side {
            s.extend(anc[c].iter().copied());
        }
        common = Some(match common {
            None => s,
            Some(c) => c.intersection(&s).copied().collect(),
        });
    }
    let common = common.unwrap_or_default();
    let lowest: BTreeSet<usize> = common
        .iter()
        .copied()
        .filter(|&x| !common.iter().any(|&y| y != x && anc[y].contains(&x)))
        .collect();
    (!lowest.is_empty()).then_some(lowest)
}

fn lcas_of(h: &mut Hist, sides: &[Vec<usize>]) -> Lcas {
    let sides: Vec<Vec<CommitId>> = sides.iter().map(|s| s.iter().map(|&c| h.ids[c]).collect()).collect();
    let sides: Vec<&[CommitId]> = sides.iter().map(|s| &s[..]).collect();
    lowest_common_ancestors(&mut h.src, &sides, &Limits::default()).unwrap_or_else(|e| match e {})
}

fn sides_strategy(n: usize) -> impl Strategy<Value = Vec<Vec<usize>>> {
    prop::collection::vec(prop::collection::vec(0..n, 1..=2), 2..=4)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn lcas_match_brute_force_in_every_order(
        (d, sides, rot) in dag().prop_flat_map(|d| {
            let n = d.parents.len();
            (Just(d), sides_strategy(n), 0usize..4)
        })
    ) {
        let mut h = build(&d);
        let want = match brute_lcas(&d, &sides) {
            Some(set) => {
                let mut v: Vec<CommitId> = set.iter().map(|&i| h.ids[i]).collect();
                v.sort();
                Lcas::Found(v)
            }
            None => Lcas::Unknown(Unknown::NoCommonCommit),
        };
        prop_assert_eq!(&lcas_of(&mut h, &sides), &want);
        // Another order of the sides and of the commits in each side.
        let mut other: Vec<Vec<usize>> = sides.iter().rev().map(|s| s.iter().rev().copied().collect()).collect();
        let k = rot % other.len();
        other.rotate_left(k);
        prop_assert_eq!(&lcas_of(&mut h, &other), &want);
    }

    #[test]
    fn the_base_does_not_depend_on_the_order_of_the_heads(
        (d, heads) in dag().prop_flat_map(|d| {
            let n = d.parents.len();
            (Just(d), prop::collection::vec(0..n, 2..=3))
        })
    ) {
        let mut h = build(&d);
        let one = base_of(&mut h, &heads, &Limits::default(), &mut Recorder::default());
        let rev: Vec<usize> = heads.iter().rev().copied().collect();
        let two = base_of(&mut h, &rev, &Limits::default(), &mut Recorder::default());
        prop_assert_eq!(&one, &two);
        // Its tree is an LCA's when the LCAs agree on one.
        if let Some(set) = brute_lcas(&d, &heads.iter().map(|&x| vec![x]).collect::<Vec<_>>()) {
            let roots: BTreeSet<u8> = set.iter().map(|&i| d.roots[i]).collect();
            if roots.len() == 1 {
                prop_assert_eq!(one, Base::Tree(root(*roots.iter().next().unwrap_or(&0))));
            } else {
                prop_assert!(matches!(one, Base::Virtual { .. }), "{one:?}");
            }
        } else {
            prop_assert_eq!(one, Base::Unknown(Unknown::NoCommonCommit));
        }
    }

    #[test]
    fn heads_reduction_matches_brute_force(
        (d, heads) in dag().prop_flat_map(|d| {
            let n = d.parents.len();
            (Just(d), prop::collection::vec(0..n, 1..=5))
        })
    ) {
        let mut h = build(&d);
        let anc = ancestors(&d);
        let distinct: BTreeSet<usize> = heads.iter().copied().collect();
        let tips: Vec<usize> = distinct
            .iter()
            .copied()
            .filter(|&x| !distinct.iter().any(|&y| y != x && anc[y].contains(&x)))
            .collect();
        let mut by_root: HashMap<u8, CommitId> = HashMap::new();
        for t in tips {
            let id = h.ids[t];
            let e = by_root.entry(d.roots[t]).or_insert(id);
            if id < *e {
                *e = id;
            }
        }
        let mut want: Vec<CommitId> = by_root.into_values().collect();
        want.sort();
        prop_assert_eq!(&reduce(&mut h, &heads), &want);
        let rev: Vec<usize> = heads.iter().rev().copied().collect();
        prop_assert_eq!(&reduce(&mut h, &rev), &want);
    }
}

/// A source that fails, to show an error is passed on, not taken for an
/// unknown ancestor.
struct Down;

#[derive(Debug, thiserror::Error)]
#[error("store unreachable")]
struct Unreachable;

impl CommitSource for Down {
    type Error = Unreachable;
    fn commits(&mut self, _ids: &[CommitId]) -> Result<Vec<Option<CommitInfo>>, Unreachable> {
        Err(Unreachable)
    }
}

#[test]
fn a_failing_source_is_an_error_not_an_unknown_base() {
    let sides: [&[CommitId]; 2] = [&[Id([1; 32])], &[Id([2; 32])]];
    assert!(lowest_common_ancestors(&mut Down, &sides, &Limits::default()).is_err());
    assert!(reduce_heads(&mut Down, &[Id([1; 32])], &Limits::default()).is_err());
}

#[test]
fn a_failing_merge_is_passed_on() {
    let mut h = Hist::default();
    let (_, _, _, x, y) = criss_cross(&mut h, 2, 3);
    let sides: [&[CommitId]; 2] = [&[h.id(x)], &[h.id(y)]];
    let r = merge_base(&mut h.src, &sides, &Limits::default(), |_, _, _| Err(Unreachable));
    assert!(matches!(r, Err(nimbus_merge::BaseError::Merge(Unreachable))));
}

#[test]
fn reads_are_batched() {
    // Ten devices, each twenty commits past a common commit: the walk reads
    // the parents of everything waiting at once, not one commit per call.
    let mut h = Hist::default();
    let r = h.c(&[], 1);
    let mut heads = Vec::new();
    for d in 0..10u8 {
        let mut tip = r;
        for _ in 0..20 {
            tip = h.c(&[tip], d + 2);
        }
        heads.push(tip);
    }
    assert_eq!(h.lcas(&heads), h.found(&[r]));
    assert!(h.src.asked.len() >= 200);
    assert!(h.src.calls <= 30, "{} calls", h.src.calls);
    // No commit is asked twice.
    let distinct: BTreeSet<CommitId> = h.src.asked.iter().copied().collect();
    assert_eq!(distinct.len(), h.src.asked.len());
}

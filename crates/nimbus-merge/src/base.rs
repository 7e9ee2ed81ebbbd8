//! The merge base (docs/SYNC.md §2.4, §2.5): the lowest common ancestors
//! of the heads in the commit history, the virtual base when there are
//! several, and the reduction of a poll's heads to the ones worth merging.
//!
//! Commits are read through the [`CommitSource`] trait (the local commit
//! cache and the vault on a drive, [`MemCommits`] in tests). The search is
//! Git's `paint_down_to_common`: walk down from every head, highest
//! generation first, colouring each commit with the sides that reach it;
//! a commit that every side reaches is a candidate, and its ancestors are
//! marked stale; the walk ends when only stale commits are left to visit.
//! A missing or damaged commit on the way, or too long a walk through
//! commits without a generation, gives [`Unknown`]: the merge then runs
//! against the empty tree, a union that deletes nothing (§3.5).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, HashSet};
use std::convert::Infallible;

use nimbus_vault::CommitId;

use crate::flat::TreeId;

/// How many commits without a generation (version 2) one search may walk
/// before it gives up with [`Unknown::Cap`] (§2.4).
pub const WALK_CAP: usize = 20_000;

/// How deep virtual bases may nest (§2.4).
pub const VIRTUAL_DEPTH: u32 = 3;

/// At most this many commits are asked of the source at once: the ones
/// needed now and, to save round trips, the parents of the other commits
/// waiting in the walk.
const BATCH: usize = 64;

/// What the search needs of one commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitInfo {
    pub parents: Vec<CommitId>,
    /// 1 + the largest generation of the parents; 0 in version 2 commits.
    pub generation: u64,
    /// Its root tree.
    pub root: TreeId,
}

/// Where commits come from: the local commit cache, then the vault, on a
/// drive; a `HashMap` in tests.
pub trait CommitSource {
    type Error: std::error::Error + Send + Sync + 'static;

    /// These commits, in the order asked: `None` for one that is missing
    /// from the store or does not open (damaged), which the search treats
    /// as an unknown ancestor. `Err` is a failure to ask (the network):
    /// nothing is concluded from it, the caller tries again later, since a
    /// union merge made from a passing error could not be taken back.
    fn commits(&mut self, ids: &[CommitId]) -> Result<Vec<Option<CommitInfo>>, Self::Error>;

    /// Whether a commit that reads as missing was forgotten on purpose by
    /// a prune (docs/PRUNE.md §2): the search then takes it as the end of
    /// the history, not as an unknown ancestor. Retention keeps every head,
    /// the merge bases of heads and every commit between, so a forgotten
    /// commit lies below every base the search looks for.
    fn pruned(&self, _id: &CommitId) -> bool {
        false
    }
}

/// [`CommitSource`] over a `HashMap`, for tests. A commit it does not hold
/// is missing. It logs every id asked.
#[derive(Debug, Clone, Default)]
pub struct MemCommits {
    commits: HashMap<CommitId, CommitInfo>,
    /// Commits a prune forgot on purpose.
    pruned: std::collections::HashSet<CommitId>,
    /// Every id asked, in order.
    pub asked: Vec<CommitId>,
    /// How many calls were made.
    pub calls: usize,
}

impl MemCommits {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&mut self, id: CommitId, info: CommitInfo) {
        self.commits.insert(id, info);
    }

    /// Forgets a commit, which then reads as missing.
    pub fn remove(&mut self, id: &CommitId) -> Option<CommitInfo> {
        self.commits.remove(id)
    }

    /// Forgets a commit as a prune does: it reads as missing, and
    /// [`CommitSource::pruned`] says it was forgotten on purpose.
    pub fn prune(&mut self, id: &CommitId) -> Option<CommitInfo> {
        self.pruned.insert(*id);
        self.commits.remove(id)
    }

    pub fn get(&self, id: &CommitId) -> Option<&CommitInfo> {
        self.commits.get(id)
    }
}

impl CommitSource for MemCommits {
    type Error = Infallible;

    fn commits(&mut self, ids: &[CommitId]) -> Result<Vec<Option<CommitInfo>>, Infallible> {
        self.calls += 1;
        self.asked.extend_from_slice(ids);
        Ok(ids.iter().map(|id| self.commits.get(id).cloned()).collect())
    }

    fn pruned(&self, id: &CommitId) -> bool {
        self.pruned.contains(id)
    }
}

/// The search's limits; [`Limits::default`] is the design's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Commits without a generation one search may walk ([`WALK_CAP`]).
    pub walk_cap: usize,
    /// How deep virtual bases may nest ([`VIRTUAL_DEPTH`]).
    pub depth: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            walk_cap: WALK_CAP,
            depth: VIRTUAL_DEPTH,
        }
    }
}

/// Why the common ancestor is unknown. In every case the merge runs
/// against the empty tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Unknown {
    /// The sides share no commit (devices that started the vault apart).
    NoCommonCommit,
    /// A commit on the way is missing from the store or does not open.
    Missing(CommitId),
    /// A commit's generation is not 1 + its parents' largest (or a version
    /// 2 commit has a version 3 parent): the history is damaged, and the
    /// walk's order, which relies on generations, cannot be trusted.
    BadGeneration(CommitId),
    /// More than [`Limits::walk_cap`] commits without a generation walked.
    Cap,
    /// A virtual base needed another virtual base deeper than
    /// [`Limits::depth`] (only for the steps inside a virtual base).
    TooDeep,
}

/// The lowest common ancestors of some sides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lcas {
    /// Common ancestors none of which is an ancestor of another; at least
    /// one, sorted by id.
    Found(Vec<CommitId>),
    Unknown(Unknown),
}

/// The base of a two-way (or n-way) merge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Base {
    /// One LCA, or several with the same root tree: that tree.
    Tree(TreeId),
    /// Several LCAs with different roots, merged into this tree.
    Virtual { root: TreeId, lcas: Vec<CommitId> },
    /// No usable ancestor: merge against the empty tree.
    Unknown(Unknown),
}

impl Base {
    /// The base tree, `None` for the empty tree.
    pub fn root(&self) -> Option<TreeId> {
        match self {
            Base::Tree(root) | Base::Virtual { root, .. } => Some(*root),
            Base::Unknown(_) => None,
        }
    }
}

/// One side of a merge that builds a virtual base: its tree and the real
/// commits it stands for (one LCA, or the LCAs folded so far). The merge
/// function finds their device names and keys itself; a side of several
/// commits is as new as its newest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Side<'a> {
    pub root: TreeId,
    pub commits: &'a [CommitId],
}

/// A failure of [`merge_base`]: reading commits, or merging LCAs.
#[derive(Debug, thiserror::Error)]
pub enum BaseError<S: std::error::Error + 'static, M: std::error::Error + 'static> {
    #[error("reading the commit history: {0}")]
    Source(#[source] S),
    #[error("merging the common ancestors into a virtual base: {0}")]
    Merge(#[source] M),
}

/// The lowest common ancestors of `sides`: the commits that are ancestors
/// (or equal to a commit) of every side and are not an ancestor of another
/// such commit. A side of several commits stands for a merge of them (a
/// virtual commit, or the heads folded so far in an n-way merge, §3). The
/// result does not depend on the order of the sides or of their commits.
pub fn lowest_common_ancestors<S: CommitSource + ?Sized>(
    src: &mut S,
    sides: &[&[CommitId]],
    limits: &Limits,
) -> Result<Lcas, S::Error> {
    let sides: Vec<Vec<CommitId>> = sides.iter().map(|s| s.to_vec()).collect();
    Graph::new(src).lcas(&sides, limits)
}

/// The base to merge `sides` against: one LCA's tree, the tree they all
/// have, or a virtual base made by `merge`, or unknown.
///
/// Several LCAs with different roots are folded in order of generation,
/// then id (as heads are, §3): each step merges the next LCA into the ones
/// folded so far, against their own base found the same way one level
/// deeper, at most `limits.depth` levels; past that, a step merges against
/// the empty tree. `merge(base, a, b)` merges two trees (`None` is the
/// empty tree) and returns the merged root.
pub fn merge_base<S, F, E>(
    src: &mut S,
    sides: &[&[CommitId]],
    limits: &Limits,
    mut merge: F,
) -> Result<Base, BaseError<S::Error, E>>
where
    S: CommitSource + ?Sized,
    F: FnMut(Option<TreeId>, Side<'_>, Side<'_>) -> Result<TreeId, E>,
    E: std::error::Error + 'static,
{
    let sides: Vec<Vec<CommitId>> = sides.iter().map(|s| s.to_vec()).collect();
    let mut graph = Graph::new(src);
    base_at(&mut graph, &sides, limits, 0, &mut merge)
}

fn base_at<S, F, E>(
    graph: &mut Graph<'_, S>,
    sides: &[Vec<CommitId>],
    limits: &Limits,
    depth: u32,
    merge: &mut F,
) -> Result<Base, BaseError<S::Error, E>>
where
    S: CommitSource + ?Sized,
    F: FnMut(Option<TreeId>, Side<'_>, Side<'_>) -> Result<TreeId, E>,
    E: std::error::Error + 'static,
{
    let lcas = match graph.lcas(sides, limits).map_err(BaseError::Source)? {
        Lcas::Found(lcas) => lcas,
        Lcas::Unknown(why) => return Ok(Base::Unknown(why)),
    };
    // Every LCA was read by the walk that found it.
    let mut order: Vec<(u64, CommitId, TreeId)> = Vec::with_capacity(lcas.len());
    for c in &lcas {
        match graph.info(c) {
            Some(info) => order.push((info.generation, *c, info.root)),
            None => return Ok(Base::Unknown(Unknown::Missing(*c))),
        }
    }
    order.sort();
    let Some(&(_, first, first_root)) = order.first() else {
        return Ok(Base::Unknown(Unknown::NoCommonCommit));
    };
    if order.iter().all(|&(_, _, root)| root == first_root) {
        return Ok(Base::Tree(first_root));
    }
    if depth >= limits.depth {
        return Ok(Base::Unknown(Unknown::TooDeep));
    }
    let mut folded = vec![first];
    let mut root = first_root;
    for &(_, c, c_root) in order.iter().skip(1) {
        // Equal trees merge to themselves, whatever the base.
        if c_root != root {
            let step = base_at(graph, &[folded.clone(), vec![c]], limits, depth + 1, merge)?;
            root = merge(
                step.root(),
                Side { root, commits: &folded },
                Side {
                    root: c_root,
                    commits: &[c],
                },
            )
            .map_err(BaseError::Merge)?;
        }
        folded.push(c);
    }
    Ok(Base::Virtual { root, lcas })
}

/// The heads worth merging (§2.5), sorted by id: without the heads that are
/// ancestors of another head, and of heads with the same root tree only
/// the one with the smallest id (they are the same state; every device
/// keeps the same one, so merges stay alike). A head the source does not
/// have is kept (the merge will find it missing). Where the history cannot
/// be read (missing commits, the walk cap), the ancestry found so far is
/// used and nothing else is dropped: keeping a head costs a merge, while
/// dropping one wrongly would lose its changes.
pub fn reduce_heads<S: CommitSource + ?Sized>(
    src: &mut S,
    heads: &[CommitId],
    limits: &Limits,
) -> Result<Vec<CommitId>, S::Error> {
    let heads: Vec<CommitId> = heads.iter().copied().collect::<BTreeSet<_>>().into_iter().collect();
    let mut graph = Graph::new(src);
    graph.fetch(&heads, Vec::new())?;
    let (found, absent): (Vec<CommitId>, Vec<CommitId>) = heads.iter().partition(|h| graph.info(h).is_some());
    let mut zero = HashSet::new();
    let (flags, _problem) = graph.reach(&found, limits.walk_cap, &mut zero)?;
    let reached = |i: usize, j: usize| -> bool {
        // Whether found[j] is reached from found[i].
        found.get(j).and_then(|h| flags.get(h)).is_some_and(|bits| bits.get(i))
    };
    let mut kept: Vec<CommitId> = Vec::new();
    for (i, h) in found.iter().enumerate() {
        // Dropped if another head reaches it; two heads reaching each
        // other (a cycle, only in damaged history) count as one, the
        // smallest id.
        let below = (0..found.len()).any(|j| j != i && reached(j, i) && (!reached(i, j) || j < i));
        if !below {
            kept.push(*h);
        }
    }
    let mut by_root: BTreeMap<TreeId, CommitId> = BTreeMap::new();
    for h in kept {
        if let Some(info) = graph.info(&h) {
            let slot = by_root.entry(info.root).or_insert(h);
            if h < *slot {
                *slot = h;
            }
        }
    }
    let mut out: Vec<CommitId> = by_root.into_values().chain(absent).collect();
    out.sort();
    Ok(out)
}

/// A set of flags per commit: bit 0 is "stale" in the paint, the others
/// one per side (or per start in [`Graph::reach`]).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Bits(Vec<u64>);

impl Bits {
    fn new(len: usize) -> Self {
        Bits(vec![0; len.div_ceil(64).max(1)])
    }

    fn set(&mut self, i: usize) {
        if let Some(w) = self.0.get_mut(i / 64) {
            *w |= 1 << (i % 64);
        }
    }

    fn get(&self, i: usize) -> bool {
        self.0.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    /// Whether every flag of `other` is set here.
    fn covers(&self, other: &Bits) -> bool {
        self.0.iter().zip(&other.0).all(|(a, b)| a & b == *b)
    }

    /// Adds `other`'s flags; whether any was new.
    fn add(&mut self, other: &Bits) -> bool {
        let mut changed = false;
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            let n = *a | b;
            changed |= n != *a;
            *a = n;
        }
        changed
    }

    /// Whether any flag other than `i` is set.
    fn any_but(&self, i: usize) -> bool {
        let mut other = self.clone();
        if let Some(w) = other.0.get_mut(i / 64) {
            *w &= !(1 << (i % 64));
        }
        other.0.iter().any(|w| *w != 0)
    }
}

const STALE: usize = 0;

/// The state of one `paint_down_to_common` walk ([`Graph::lcas`]).
struct Paint {
    width: usize,
    /// Every side's flag.
    all: Bits,
    flags: HashMap<CommitId, Bits>,
    /// Highest generation first, then the smallest id, so the walk is the
    /// same whatever order the sides came in.
    queue: BinaryHeap<(u64, Reverse<CommitId>)>,
    queued: HashSet<CommitId>,
    /// Queued commits that are not stale: the walk ends when none is left.
    active: usize,
    /// Commits every side reaches, in the order met.
    candidates: Vec<CommitId>,
    /// Commits of generation 0 met (no generations: version 2), counted
    /// against the walk cap.
    zero: HashSet<CommitId>,
}

impl Paint {
    /// Side `i`'s commits get flag `i + 1`; every start is queued.
    fn new(sides: &[Vec<CommitId>], starts: &[CommitId], generation: impl Fn(&CommitId) -> u64) -> Self {
        let n = sides.len();
        let width = n + 1;
        let mut flags: HashMap<CommitId, Bits> = HashMap::new();
        for (i, side) in sides.iter().enumerate() {
            for c in side {
                flags.entry(*c).or_insert_with(|| Bits::new(width)).set(i + 1);
            }
        }
        let mut all = Bits::new(width);
        for i in 1..=n {
            all.set(i);
        }
        let mut queue: BinaryHeap<(u64, Reverse<CommitId>)> = BinaryHeap::new();
        let mut queued: HashSet<CommitId> = HashSet::new();
        for s in starts {
            queue.push((generation(s), Reverse(*s)));
            queued.insert(*s);
        }
        Paint {
            width,
            all,
            flags,
            queue,
            queued,
            active: starts.len(),
            candidates: Vec::new(),
            zero: HashSet::new(),
        }
    }

    /// Takes the next commit off the queue, with its generation and flags.
    /// A commit not stale that every side reaches becomes a candidate, and
    /// stale: its ancestors are common, not lowest.
    fn visit(&mut self) -> Option<(u64, CommitId, Bits)> {
        let (generation, Reverse(x)) = self.queue.pop()?;
        self.queued.remove(&x);
        let mut f = self.flags.get(&x).cloned().unwrap_or_else(|| Bits::new(self.width));
        if !f.get(STALE) {
            self.active -= 1;
            if f.covers(&self.all) {
                self.candidates.push(x);
                f.set(STALE);
                self.flags.insert(x, f.clone());
            }
        }
        Some((generation, x, f))
    }

    /// Notes a commit of generation 0; whether that is more than `cap`.
    fn over_cap(&mut self, x: CommitId, cap: usize) -> bool {
        self.zero.insert(x);
        self.zero.len() > cap
    }

    /// Paints a child's flags `f` onto its parent `p` (of generation `g`),
    /// queueing the parent when it gained flags and was not queued.
    fn spread(&mut self, p: CommitId, f: &Bits, g: u64) {
        let pf = self.flags.entry(p).or_insert_with(|| Bits::new(self.width));
        if pf.covers(f) {
            return;
        }
        let was_stale = pf.get(STALE);
        pf.add(f);
        let stale = pf.get(STALE);
        if self.queued.contains(&p) {
            if !was_stale && stale {
                self.active -= 1;
            }
        } else {
            self.queue.push((g, Reverse(p)));
            self.queued.insert(p);
            if !stale {
                self.active += 1;
            }
        }
    }
}

/// The commits read so far by one search (and the searches it makes for a
/// virtual base), over a source.
struct Graph<'s, S: CommitSource + ?Sized> {
    src: &'s mut S,
    known: HashMap<CommitId, Option<CommitInfo>>,
}

impl<'s, S: CommitSource + ?Sized> Graph<'s, S> {
    fn new(src: &'s mut S) -> Self {
        Graph {
            src,
            known: HashMap::new(),
        }
    }

    fn info(&self, id: &CommitId) -> Option<&CommitInfo> {
        self.known.get(id).and_then(Option::as_ref)
    }

    fn generation(&self, id: &CommitId) -> u64 {
        self.info(id).map_or(0, |i| i.generation)
    }

    /// Reads the commits of `need` not read yet, and with them up to
    /// [`BATCH`] of `more`.
    fn fetch(&mut self, need: &[CommitId], more: Vec<CommitId>) -> Result<(), S::Error> {
        let mut ask: Vec<CommitId> = Vec::new();
        let mut asked: HashSet<CommitId> = HashSet::new();
        for id in need {
            if !self.known.contains_key(id) && asked.insert(*id) {
                ask.push(*id);
            }
        }
        if ask.is_empty() {
            return Ok(());
        }
        for id in more {
            if ask.len() >= BATCH {
                break;
            }
            if !self.known.contains_key(&id) && asked.insert(id) {
                ask.push(id);
            }
        }
        let got = self.src.commits(&ask)?;
        let mut got = got.into_iter();
        for id in ask {
            // A source that answers short leaves the rest missing.
            self.known.insert(id, got.next().flatten());
        }
        Ok(())
    }

    /// The parents of the `waiting` commits not read yet (up to
    /// [`BATCH`]), to read along with the ones needed now.
    fn prefetch<'a>(&self, waiting: impl Iterator<Item = &'a CommitId>) -> Vec<CommitId> {
        let mut out = Vec::new();
        for w in waiting {
            if let Some(info) = self.info(w) {
                out.extend(info.parents.iter().filter(|p| !self.known.contains_key(*p)));
            }
            if out.len() >= BATCH {
                break;
            }
        }
        out
    }

    /// The parents of `x` (read by now), after checking they exist and
    /// that `x`'s generation follows from theirs.
    fn parents(&mut self, x: &CommitId, more: Vec<CommitId>) -> Result<Result<Vec<CommitId>, Unknown>, S::Error> {
        let Some(info) = self.info(x) else {
            return Ok(Err(Unknown::Missing(*x)));
        };
        let generation = info.generation;
        let mut parents = info.parents.clone();
        parents.sort();
        parents.dedup();
        self.fetch(&parents, more)?;
        let mut highest = 0;
        let mut kept = Vec::with_capacity(parents.len());
        let mut pruned = false;
        for p in &parents {
            match self.info(p) {
                Some(pi) => {
                    highest = highest.max(pi.generation);
                    kept.push(*p);
                }
                // Forgotten on purpose: the history ends here.
                None if self.src.pruned(p) => pruned = true,
                None => return Ok(Err(Unknown::Missing(*p))),
            }
        }
        let consistent = if generation == 0 {
            highest == 0
        } else {
            // A forgotten parent's generation is not known any more.
            highest.checked_add(1) == Some(generation) || (pruned && highest < generation)
        };
        if !consistent {
            return Ok(Err(Unknown::BadGeneration(*x)));
        }
        Ok(Ok(kept))
    }

    /// `paint_down_to_common`, then the candidates that are ancestors of
    /// another dropped.
    fn lcas(&mut self, sides: &[Vec<CommitId>], limits: &Limits) -> Result<Lcas, S::Error> {
        let starts = match self.read_starts(sides)? {
            Ok(s) => s,
            Err(why) => return Ok(Lcas::Unknown(why)),
        };
        let mut paint = Paint::new(sides, &starts, |s| self.generation(s));
        if let Err(why) = self.paint_down(&mut paint, limits)? {
            return Ok(Lcas::Unknown(why));
        }
        let Paint {
            mut candidates,
            mut zero,
            ..
        } = paint;
        candidates.sort();
        candidates.dedup();
        if candidates.len() > 1 {
            candidates = match self.lowest(&candidates, limits, &mut zero)? {
                Ok(lowest) => lowest,
                Err(why) => return Ok(Lcas::Unknown(why)),
            };
        }
        if candidates.is_empty() {
            return Ok(Lcas::Unknown(Unknown::NoCommonCommit));
        }
        Ok(Lcas::Found(candidates))
    }

    /// Every side's commits, once each and sorted, read.
    fn read_starts(&mut self, sides: &[Vec<CommitId>]) -> Result<Result<Vec<CommitId>, Unknown>, S::Error> {
        if sides.is_empty() || sides.iter().any(Vec::is_empty) {
            return Ok(Err(Unknown::NoCommonCommit));
        }
        let starts: Vec<CommitId> = sides
            .iter()
            .flatten()
            .copied()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        self.fetch(&starts, Vec::new())?;
        if let Some(m) = starts.iter().find(|s| self.info(s).is_none()) {
            return Ok(Err(Unknown::Missing(*m)));
        }
        Ok(Ok(starts))
    }

    /// The walk of `paint_down_to_common`: until every queued commit is
    /// stale, the highest is visited and its flags painted onto its parents.
    fn paint_down(&mut self, paint: &mut Paint, limits: &Limits) -> Result<Result<(), Unknown>, S::Error> {
        while paint.active > 0 {
            let Some((generation, x, f)) = paint.visit() else {
                break;
            };
            if generation == 0 && paint.over_cap(x, limits.walk_cap) {
                return Ok(Err(Unknown::Cap));
            }
            let more = self.prefetch(paint.queue.iter().map(|(_, Reverse(c))| c));
            let parents = match self.parents(&x, more)? {
                Ok(p) => p,
                Err(why) => return Ok(Err(why)),
            };
            for p in parents {
                let g = self.generation(&p);
                paint.spread(p, &f, g);
            }
        }
        Ok(Ok(()))
    }

    /// The candidates (sorted, more than one) that are no ancestor of
    /// another. Walked in generation order, a candidate is never an
    /// ancestor of another; without generations (version 2) it may be.
    fn lowest(
        &mut self,
        candidates: &[CommitId],
        limits: &Limits,
        zero: &mut HashSet<CommitId>,
    ) -> Result<Result<Vec<CommitId>, Unknown>, S::Error> {
        let (reach, problem) = self.reach(candidates, limits.walk_cap, zero)?;
        if let Some(why) = problem {
            return Ok(Err(why));
        }
        Ok(Ok(candidates
            .iter()
            .enumerate()
            .filter(|(i, c)| !reach.get(*c).is_some_and(|b| b.any_but(*i)))
            .map(|(_, c)| *c)
            .collect()))
    }

    /// Walks down from `starts` (all read): bit `i` of a commit says
    /// `starts[i]` reaches it (or is it). With generations, commits at or
    /// below the lowest start's generation are not walked through: none of
    /// their ancestors can be a start. The first problem met (a missing
    /// commit, a bad generation, the cap) is returned beside what was
    /// found; the bits found are true either way, only maybe incomplete.
    #[allow(clippy::type_complexity)]
    fn reach(
        &mut self,
        starts: &[CommitId],
        cap: usize,
        zero: &mut HashSet<CommitId>,
    ) -> Result<(HashMap<CommitId, Bits>, Option<Unknown>), S::Error> {
        let width = starts.len();
        let floor = starts.iter().map(|s| self.generation(s)).min().unwrap_or(0);
        let mut flags: HashMap<CommitId, Bits> = HashMap::new();
        let mut queue: BinaryHeap<(u64, Reverse<CommitId>)> = BinaryHeap::new();
        let mut queued: HashSet<CommitId> = HashSet::new();
        for (i, s) in starts.iter().enumerate() {
            flags.entry(*s).or_insert_with(|| Bits::new(width)).set(i);
            if queued.insert(*s) {
                queue.push((self.generation(s), Reverse(*s)));
            }
        }
        let mut problem = None;
        while let Some((generation, Reverse(x))) = queue.pop() {
            queued.remove(&x);
            if floor > 0 && generation <= floor {
                continue;
            }
            if generation == 0 {
                zero.insert(x);
                if zero.len() > cap {
                    return Ok((flags, Some(Unknown::Cap)));
                }
            }
            let more = self.prefetch(queue.iter().map(|(_, Reverse(c))| c));
            let parents = match self.parents(&x, more)? {
                Ok(p) => p,
                Err(why) => {
                    problem.get_or_insert(why);
                    continue;
                }
            };
            let f = flags.get(&x).cloned().unwrap_or_else(|| Bits::new(width));
            for p in parents {
                let pf = flags.entry(p).or_insert_with(|| Bits::new(width));
                if pf.add(&f) && queued.insert(p) {
                    queue.push((self.generation(&p), Reverse(p)));
                }
            }
        }
        Ok((flags, problem))
    }
}

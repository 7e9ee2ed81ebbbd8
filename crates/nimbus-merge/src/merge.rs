//! The whole merge (docs/SYNC.md §3): heads reduced, folded two at a time
//! in a fixed order, each step against the merge base of the heads folded
//! so far and the next one, and a report of what changed for one device.
//!
//! It chains the other modules: [`reduce_heads`], [`merge_base`] (given the
//! two-way merge as a closure, for virtual bases), then per step
//! [`flatten`] → [`phase1`] → [`fix`] → [`build`].

use std::collections::{BTreeMap, BTreeSet};

use nimbus_vault::{CommitId, FileId};

use crate::base::{merge_base, reduce_heads, Base, BaseError, CommitSource, Limits, Side};
use crate::fixups::{fix, ConflictCopy};
use crate::flat::{build, flatten, BuildError, Content, Flat, Place, TreeId, Trees};
use crate::rules::{phase1, Key};
use crate::Head;

/// What the merge made of the heads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merged {
    /// The merged root tree (every tree it needs is stored in the `Trees`).
    pub root: TreeId,
    /// The heads left after [`reduce_heads`], in the order they were
    /// folded (generation, then commit id). One head: nothing was merged
    /// (`root` is its root: a fast-forward, or nothing to do). A merge
    /// commit has these as its parents.
    pub heads: Vec<Head>,
    /// The base of each two-way step (`heads.len() - 1` of them).
    pub bases: Vec<Base>,
    /// The conflict copies in the result; `head` is an index into
    /// [`Merged::heads`] (the head that carried the losing version, or for
    /// a step's folded side its newest head).
    pub copies: Vec<ConflictCopy>,
    /// `(gone, kept)`: ids merged into another, in the order the steps
    /// made them (a chain `a -> b`, `b -> c` may occur).
    pub aliases: Vec<(FileId, FileId)>,
    /// What changed against `ours` (empty without it).
    pub report: Report,
}

/// What changed for one device: its tree (`ours`) against the result.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// By file id.
    pub changes: BTreeMap<FileId, Change>,
}

/// One id's change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub kind: ChangeKind,
    /// Its place in the result (for `Deleted`, the one it had in ours).
    pub place: Option<Place>,
    /// The input head (an index into the `heads` given to [`merge`]) the
    /// change came from: the newest one, other than ours, that holds the
    /// result's value (for `Deleted`, the newest that lacks the id).
    /// `None` when no single head has it (a value only the merge made).
    pub from: Option<usize>,
}

/// The kinds of change, by what a person is told first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChangeKind {
    /// New here.
    Added,
    /// Its content changed (kind, blobs, size, target).
    Changed,
    /// Only its place (name or folder) changed.
    Renamed,
    /// Only its metadata changed (mode, owner, mtime, xattrs).
    Meta,
    /// Gone here.
    Deleted,
    /// A conflict copy the merge made, or an id that lost its name to
    /// another and got a conflict name.
    Conflict,
}

impl Report {
    /// How many ids changed in a way a person is told about (files and
    /// folders alike; folders merely rewritten by changes below them are
    /// not in the report at all).
    pub fn len(&self) -> usize {
        self.changes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// How many changes came from each input head.
    pub fn by_head(&self) -> BTreeMap<Option<usize>, usize> {
        let mut out = BTreeMap::new();
        for c in self.changes.values() {
            *out.entry(c.from).or_insert(0) += 1;
        }
        out
    }
}

/// Why a merge failed. A failure to read is the caller's to retry (an
/// unknown ancestor is not an error: the base is then empty).
#[derive(Debug, thiserror::Error)]
pub enum MergeError<S: std::error::Error + 'static, T: std::error::Error + 'static> {
    #[error("no heads to merge")]
    NoHeads,
    #[error("reading the commit history: {0}")]
    Commits(#[source] S),
    #[error("reading or storing trees: {0}")]
    Trees(#[source] T),
    /// The fix-ups left something that is not a tree: a bug in them.
    #[error("building the merged tree: {0}")]
    Build(#[source] BuildError<T>),
}

/// Merges `heads` (`ours`, if given, is an index into them: the device
/// whose tree the report compares against). `copy_id` gives a conflict
/// copy's id from the original id and the losing content
/// (`Vault::conflict_id` on a drive).
///
/// The result depends only on the set of heads, the commit history and the
/// trees, never on the order of `heads`.
pub fn merge<S, T>(
    commits: &mut S,
    trees: &mut T,
    heads: &[Head],
    ours: Option<usize>,
    copy_id: &dyn Fn(FileId, &Content) -> FileId,
    limits: &Limits,
) -> Result<Merged, MergeError<S::Error, T::Error>>
where
    S: CommitSource + ?Sized,
    T: Trees + ?Sized,
{
    let ids: Vec<CommitId> = heads.iter().map(|h| h.commit).collect();
    let kept = reduce_heads(commits, &ids, limits).map_err(MergeError::Commits)?;
    // The Head of each kept commit; of several given with one commit id the
    // one with the largest key (any fixed choice keeps the order out of it).
    let mut order: Vec<Head> = Vec::new();
    for c in &kept {
        if let Some(h) = heads.iter().filter(|h| h.commit == *c).max_by_key(|h| h.key()) {
            order.push(h.clone());
        }
    }
    order.sort_by_key(|h| (h.generation, h.commit));
    let Some(first) = order.first() else {
        return Err(MergeError::NoHeads);
    };
    let mut root = first.root;
    let mut folded: Vec<CommitId> = vec![first.commit];
    // The folded side's newest head stands for it in each step (§3: its
    // key and its label for conflict copies).
    let mut newest = 0usize;
    let mut bases = Vec::new();
    let mut copies: Vec<ConflictCopy> = Vec::new();
    let mut aliases = Vec::new();
    let mut renamed: BTreeSet<FileId> = BTreeSet::new();
    for (i, next) in order.iter().enumerate().skip(1) {
        let base = merge_base(commits, &[&folded, &[next.commit]], limits, |b, x, y| {
            virtual_step(trees, b, x, y, copy_id)
        })
        .map_err(|e| match e {
            BaseError::Source(e) => MergeError::Commits(e),
            BaseError::Merge(e) => e,
        })?;
        let mut side = order[newest].clone();
        side.root = root;
        let step = two_way(trees, base.root(), &[side, next.clone()], copy_id)?;
        root = step.root;
        // A copy a later step deleted or merged into another is not in
        // the result.
        copies.retain(|c| !step.deleted.contains(&c.id) && !step.fixed.aliases.iter().any(|a| a.0 == c.id));
        copies.extend(step.fixed.copies.into_iter().map(|c| ConflictCopy {
            head: if c.head == 1 { i } else { newest },
            ..c
        }));
        aliases.extend(step.fixed.aliases);
        renamed.extend(step.fixed.renamed.iter().map(|r| r.0));
        bases.push(base);
        folded.push(next.commit);
        if next.key() > order[newest].key() {
            newest = i;
        }
    }
    let mut report = Report::default();
    if let Some(o) = ours.filter(|o| *o < heads.len()) {
        report = diff(trees, o, heads, root, &copies, &renamed)?;
    }
    Ok(Merged {
        root,
        heads: order,
        bases,
        copies,
        aliases,
        report,
    })
}

/// One two-way step's result.
struct Step {
    root: TreeId,
    /// Ids of the base that phase 1 deleted.
    deleted: BTreeSet<FileId>,
    fixed: crate::fixups::Fixed,
}

/// Flatten, phase 1, phase 2, build: `heads` against `base` (`None`: the
/// empty tree, a union).
fn two_way<S, T>(
    trees: &mut T,
    base: Option<TreeId>,
    heads: &[Head],
    copy_id: &dyn Fn(FileId, &Content) -> FileId,
) -> Result<Step, MergeError<S, T::Error>>
where
    S: std::error::Error + 'static,
    T: Trees + ?Sized,
{
    let mut roots = vec![base];
    roots.extend(heads.iter().map(|h| Some(h.root)));
    let mut flats = flatten(trees, &roots).map_err(MergeError::Trees)?;
    let hs = flats.split_off(1);
    let base = flats.pop().unwrap_or_default();
    let keys: Vec<Key> = heads.iter().map(Head::key).collect();
    let p1 = phase1(&base, &hs, &keys);
    let fixed = fix(&p1, &base, &hs, heads, copy_id);
    let root = build(trees, &fixed.nodes).map_err(MergeError::Build)?;
    Ok(Step {
        root,
        deleted: p1.deleted,
        fixed,
    })
}

/// A step of a virtual base (§2.4): two sets of common ancestors merged.
/// Their commits' store times and names are not at hand here, and do not
/// matter: a copy made in a virtual base is in neither head, so the real
/// merge deletes it. The key is the side's largest commit id.
fn virtual_step<S, T>(
    trees: &mut T,
    base: Option<TreeId>,
    x: Side<'_>,
    y: Side<'_>,
    copy_id: &dyn Fn(FileId, &Content) -> FileId,
) -> Result<TreeId, MergeError<S, T::Error>>
where
    S: std::error::Error + 'static,
    T: Trees + ?Sized,
{
    let head = |s: Side<'_>| Head {
        commit: s.commits.iter().max().copied().unwrap_or(nimbus_vault::Id([0; 32])),
        root: s.root,
        device: nimbus_vault::ShortId([0; 16]),
        device_name: String::from("base"),
        generation: 0,
        store_time: None,
        time: nimbus_vault::Timestamp::default(),
    };
    Ok(two_way(trees, base, &[head(x), head(y)], copy_id)?.root)
}

/// The report: `heads[ours]`'s tree against the result.
fn diff<S, T>(
    trees: &mut T,
    ours: usize,
    heads: &[Head],
    result: TreeId,
    copies: &[ConflictCopy],
    renamed: &BTreeSet<FileId>,
) -> Result<Report, MergeError<S, T::Error>>
where
    S: std::error::Error + 'static,
    T: Trees + ?Sized,
{
    let mut roots = vec![Some(result)];
    roots.extend(heads.iter().map(|h| Some(h.root)));
    let flats = flatten(trees, &roots).map_err(MergeError::Trees)?;
    let (res, hs) = match flats.split_first() {
        Some(x) => x,
        None => return Ok(Report::default()),
    };
    let empty = Flat::new();
    let mine = hs.get(ours).unwrap_or(&empty);
    // Other heads, newest first: "the newest head that holds it".
    let mut others: Vec<usize> = (0..heads.len()).filter(|i| *i != ours).collect();
    others.sort_by_key(|i| std::cmp::Reverse(heads[*i].key()));
    let copy_of: BTreeMap<FileId, FileId> = copies.iter().map(|c| (c.id, c.of)).collect();
    let mut report = Report::default();
    let ids: BTreeSet<FileId> = res.keys().chain(mine.keys()).copied().collect();
    for id in ids {
        let change = match (mine.get(&id), res.get(&id)) {
            (None, None) => continue,
            (None, Some(r)) => {
                // A copy comes from the head that holds its original with
                // the copied content; anything else from one holding it.
                let (kind, of) = match copy_of.get(&id) {
                    Some(of) => (ChangeKind::Conflict, *of),
                    None => (ChangeKind::Added, id),
                };
                let from = others
                    .iter()
                    .find(|i| hs[**i].get(&of).is_some_and(|n| n.content == r.content))
                    .copied();
                Change {
                    kind,
                    place: r.places.iter().next().cloned(),
                    from,
                }
            }
            (Some(m), None) => Change {
                kind: ChangeKind::Deleted,
                place: m.places.iter().next().cloned(),
                from: others.iter().find(|i| !hs[**i].contains_key(&id)).copied(),
            },
            (Some(m), Some(r)) => {
                let content = m.kind != r.kind || m.content != r.content;
                let place = m.places != r.places;
                let meta = m.meta.mode != r.meta.mode
                    || m.meta.uid != r.meta.uid
                    || m.meta.gid != r.meta.gid
                    || m.meta.mtime != r.meta.mtime
                    || m.meta.xattrs != r.meta.xattrs;
                let kind = if place && renamed.contains(&id) {
                    ChangeKind::Conflict
                } else if content && r.kind != nimbus_vault::EntryKind::Dir {
                    ChangeKind::Changed
                } else if place {
                    ChangeKind::Renamed
                } else if meta {
                    ChangeKind::Meta
                } else {
                    continue;
                };
                let holds = |n: &crate::flat::Node| match kind {
                    ChangeKind::Changed => n.kind == r.kind && n.content == r.content,
                    ChangeKind::Renamed | ChangeKind::Conflict => n.places == r.places,
                    _ => n.meta.mode == r.meta.mode && n.meta.xattrs == r.meta.xattrs,
                };
                Change {
                    kind,
                    place: r.places.iter().next().cloned(),
                    from: others.iter().find(|i| hs[**i].get(&id).is_some_and(holds)).copied(),
                }
            }
        };
        report.changes.insert(id, change);
    }
    Ok(report)
}

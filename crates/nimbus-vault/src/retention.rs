//! Retention: which snapshots `nimbus forget` keeps and which it forgets.
//!
//! Pure logic, no I/O: the caller hands in the commits, the heads, the
//! ids pinned for other reasons, "now" and the person's UTC offset, and
//! gets back a decision per commit with the reasons it is kept. The rules
//! are restic's `forget` rules (docs/RETENTION.md): a snapshot kept by any
//! rule is kept; each calendar rule keeps the newest snapshot of each of
//! its last N buckets that hold one, and, while its count is not used up,
//! the oldest snapshot too; `keep_within` keeps everything newer than the
//! span before the newest snapshot that is not in the future. On top of
//! the rules, every head and every merge base a sync merge may need
//! ([`always_keep`]) is kept.
//!
//! Commit times come from devices' clocks, which may be wrong by years:
//! nothing here panics or overflows on any `Timestamp`, and a time in the
//! future only makes a snapshot kept longer, never another one forgotten.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::commit::Commit;
use crate::id::CommitId;
use crate::tree::Timestamp;

/// How many levels of merge bases of merge bases the sync merge walks
/// when heads have several lowest common ancestors (a virtual base):
/// `nimbus_merge::base::VIRTUAL_DEPTH`, which this crate cannot name (the
/// merge crate depends on this one). [`always_keep`] pins that deep.
pub const VIRTUAL_DEPTH: u32 = 3;

/// What to keep. Counts are of buckets that hold a snapshot (restic's
/// meaning); [`RetentionPolicy::UNLIMITED`] keeps every bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
pub struct RetentionPolicy {
    /// The newest N snapshots.
    pub keep_last: u32,
    /// The newest snapshot of each of the last N hours that have one.
    pub keep_hourly: u32,
    /// ... of each of the last N days (local time).
    pub keep_daily: u32,
    /// ... of each of the last N weeks (Monday to Sunday, local time).
    pub keep_weekly: u32,
    /// ... of each of the last N calendar months.
    pub keep_monthly: u32,
    /// ... of each of the last N calendar years.
    pub keep_yearly: u32,
    /// Every snapshot not older than this before the newest snapshot that
    /// is not in the future (zero: off).
    pub keep_within: Duration,
}

impl Default for RetentionPolicy {
    /// Everything for a day, then hourly for two days, daily for a month,
    /// weekly for a quarter and monthly for a year (research §4.5).
    fn default() -> Self {
        RetentionPolicy {
            keep_last: 20,
            keep_hourly: 48,
            keep_daily: 30,
            keep_weekly: 12,
            keep_monthly: 12,
            keep_yearly: 0,
            keep_within: Duration::from_secs(24 * 3600),
        }
    }
}

impl RetentionPolicy {
    /// A count that never runs out (restic's `unlimited`).
    pub const UNLIMITED: u32 = u32::MAX;

    /// The policy that keeps nothing by any rule: the start for a policy
    /// built from flags, where the rules not given are off.
    pub fn nothing() -> Self {
        RetentionPolicy {
            keep_last: 0,
            keep_hourly: 0,
            keep_daily: 0,
            keep_weekly: 0,
            keep_monthly: 0,
            keep_yearly: 0,
            keep_within: Duration::ZERO,
        }
    }

    /// True when no rule keeps anything, so only pinned snapshots would
    /// survive: [`plan_forget`] refuses such a policy, as restic does.
    pub fn is_empty(&self) -> bool {
        *self == Self::nothing()
    }

    /// The counted rules, newest-bucket-first order of evaluation.
    fn counted(&self) -> [(Reason, u32, Option<Period>); 6] {
        [
            (Reason::Last, self.keep_last, None),
            (Reason::Hourly, self.keep_hourly, Some(Period::Hour)),
            (Reason::Daily, self.keep_daily, Some(Period::Day)),
            (Reason::Weekly, self.keep_weekly, Some(Period::Week)),
            (Reason::Monthly, self.keep_monthly, Some(Period::Month)),
            (Reason::Yearly, self.keep_yearly, Some(Period::Year)),
        ]
    }
}

/// What retention needs of one commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub id: CommitId,
    pub time: Timestamp,
    pub parents: Vec<CommitId>,
}

impl Snapshot {
    pub fn of(id: CommitId, commit: &Commit) -> Snapshot {
        Snapshot {
            id,
            time: commit.time,
            parents: commit.parents.clone(),
        }
    }
}

/// Why a snapshot is kept. The order is the order they are listed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reason {
    /// One of the `keep_last` newest.
    Last,
    /// The newest of its hour (or the oldest snapshot, while hours are left).
    Hourly,
    Daily,
    Weekly,
    Monthly,
    Yearly,
    /// Within `keep_within` of the newest snapshot.
    Within,
    /// A device's ref points at it: the current state of that device.
    Head,
    /// A merge base of two heads or a commit between a head and one (the
    /// sync merge needs them, [`always_keep`]), or pinned by the caller.
    Protected,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Last => "last",
            Reason::Hourly => "hourly",
            Reason::Daily => "daily",
            Reason::Weekly => "weekly",
            Reason::Monthly => "monthly",
            Reason::Yearly => "yearly",
            Reason::Within => "within",
            Reason::Head => "head",
            Reason::Protected => "protected",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The decision for one snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotDecision {
    pub id: CommitId,
    pub time: Timestamp,
    /// Why it is kept, sorted; empty when it is forgotten.
    pub reasons: Vec<Reason>,
}

impl SnapshotDecision {
    pub fn keep(&self) -> bool {
        !self.reasons.is_empty()
    }
}

/// The decision for every snapshot, newest first (by time, then id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForgetDecision {
    pub snapshots: Vec<SnapshotDecision>,
}

impl ForgetDecision {
    pub fn kept(&self) -> impl Iterator<Item = &SnapshotDecision> {
        self.snapshots.iter().filter(|s| s.keep())
    }

    pub fn forgotten(&self) -> impl Iterator<Item = &SnapshotDecision> {
        self.snapshots.iter().filter(|s| !s.keep())
    }

    /// The ids to forget (for the GC plan), newest first.
    pub fn forgotten_ids(&self) -> Vec<CommitId> {
        self.forgotten().map(|s| s.id).collect()
    }

    pub fn get(&self, id: &CommitId) -> Option<&SnapshotDecision> {
        self.snapshots.iter().find(|s| s.id == *id)
    }
}

/// Why no decision was made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RetentionError {
    #[error("the retention policy keeps nothing (every --keep rule is 0): refusing to forget every snapshot. Give at least one --keep rule, e.g. --keep-last 1")]
    EmptyPolicy,
}

/// Decides, for every snapshot, keep or forget. `heads` are the commits
/// the device refs point at; `protected` are ids to keep whatever the
/// rules say (at least [`always_keep`] of the heads, and any pins); ids
/// in either set that are not among `snapshots` are ignored. `now` sets
/// which snapshots are "in the future" for `keep_within`;
/// `utc_offset_secs` puts the hour, day, week, month and year boundaries
/// at the person's local midnight (one offset for all: a snapshot on the
/// other side of a daylight-saving change is bucketed an hour off, which
/// moves it at most to a neighbouring bucket).
///
/// The result does not depend on the order of `snapshots`; an id given
/// twice counts once, at its newest time.
pub fn plan_forget(
    snapshots: &[Snapshot],
    policy: &RetentionPolicy,
    heads: &HashSet<CommitId>,
    protected: &HashSet<CommitId>,
    now: Timestamp,
    utc_offset_secs: i32,
) -> Result<ForgetDecision, RetentionError> {
    if policy.is_empty() {
        return Err(RetentionError::EmptyPolicy);
    }
    let sorted = newest_first(snapshots);
    let mut reasons: Vec<Vec<Reason>> = vec![Vec::new(); sorted.len()];
    apply_counted(&sorted, policy, utc_offset_secs, &mut reasons);
    apply_within(&sorted, policy.keep_within, now, &mut reasons);
    let decisions = sorted
        .iter()
        .zip(reasons)
        .map(|(s, mut why)| {
            if heads.contains(&s.id) {
                why.push(Reason::Head);
            } else if protected.contains(&s.id) {
                why.push(Reason::Protected);
            }
            why.sort();
            why.dedup();
            SnapshotDecision {
                id: s.id,
                time: s.time,
                reasons: why,
            }
        })
        .collect();
    Ok(ForgetDecision { snapshots: decisions })
}

/// The snapshots newest first (time, then id, both descending), each id
/// once at its newest time: a total order, so the result is the same
/// whatever order the store listed them in.
fn newest_first(snapshots: &[Snapshot]) -> Vec<&Snapshot> {
    let mut sorted: Vec<&Snapshot> = snapshots.iter().collect();
    sorted.sort_by_key(|s| std::cmp::Reverse((s.time, s.id)));
    let mut seen = HashSet::with_capacity(sorted.len());
    sorted.retain(|s| seen.insert(s.id));
    sorted
}

/// The counted rules, as restic applies them: walking newest to oldest,
/// a rule with count left keeps a snapshot whose bucket differs from the
/// one it kept last (`keep_last`: every snapshot), and also keeps the
/// oldest snapshot while its count is not used up, so a young vault keeps
/// its first snapshot (restic 0.17's "oldest daily snapshot").
fn apply_counted(sorted: &[&Snapshot], policy: &RetentionPolicy, offset: i32, reasons: &mut [Vec<Reason>]) {
    let mut rules: Vec<(Reason, u32, Option<Period>, Option<i64>)> = policy
        .counted()
        .into_iter()
        .filter(|r| r.1 > 0)
        .map(|(why, count, period)| (why, count, period, None))
        .collect();
    for (nr, s) in sorted.iter().enumerate() {
        let local = s.time.secs.saturating_add(i64::from(offset));
        let oldest = nr + 1 == sorted.len();
        for (why, left, period, last) in rules.iter_mut() {
            if *left == 0 {
                continue;
            }
            let bucket = period.map(|p| p.bucket(local));
            if period.is_none() || bucket != *last || oldest {
                reasons[nr].push(*why);
                *last = bucket;
                *left -= 1;
            }
        }
    }
}

/// `keep_within`: everything at or after `reference - within`, where the
/// reference is the newest snapshot not after `now` (restic's "latest",
/// so a vault left alone for a month still keeps its last day of work),
/// or `now` when every snapshot is in the future. Snapshots after `now`
/// (a device clock ahead) are kept by this rule until `now` passes them.
fn apply_within(sorted: &[&Snapshot], within: Duration, now: Timestamp, reasons: &mut [Vec<Reason>]) {
    if within.is_zero() {
        return;
    }
    let now_ns = nanos(now);
    let reference = sorted
        .iter()
        .map(|s| nanos(s.time))
        .find(|&t| t <= now_ns)
        .unwrap_or(now_ns);
    // At most ~1.8e28 ns: no overflow in i128 next to a time of ~9e27 ns.
    let span = i128::try_from(within.as_nanos()).unwrap_or(i128::MAX / 4);
    let start = reference - span;
    for (nr, s) in sorted.iter().enumerate() {
        if nanos(s.time) >= start {
            reasons[nr].push(Reason::Within);
        }
    }
}

/// A time as nanoseconds since the epoch; exact for every `Timestamp`
/// (even a damaged one with `nanos` past a second).
fn nanos(t: Timestamp) -> i128 {
    i128::from(t.secs) * 1_000_000_000 + i128::from(t.nanos)
}

/// A calendar bucket of the counted rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Period {
    Hour,
    Day,
    Week,
    Month,
    Year,
}

impl Period {
    /// The bucket of `local` (seconds since the epoch, already moved by the
    /// UTC offset): equal numbers for the same hour, day, ISO week (Monday
    /// to Sunday), month or year. Total for every `i64`.
    fn bucket(self, local: i64) -> i64 {
        let days = local.div_euclid(86_400);
        match self {
            Period::Hour => local.div_euclid(3600),
            Period::Day => days,
            // 1970-01-01 was a Thursday: day -3 is the Monday that starts
            // its week.
            Period::Week => (days + 3).div_euclid(7),
            Period::Month => {
                let (y, m, ..) = Timestamp { secs: local, nanos: 0 }.utc_parts();
                y * 12 + i64::from(m) - 1
            }
            Period::Year => Timestamp { secs: local, nanos: 0 }.utc_parts().0,
        }
    }
}

/// The commits a forget must keep whatever the policy, because sync needs
/// them (docs/PRUNE.md §2): every head; the lowest common ancestors of
/// every pair of heads (the base the sync merge of those two devices
/// reads); and every commit on a path from either head down to such an
/// ancestor, so the merge's walk down from the heads (nimbus-merge's
/// `paint_down_to_common`) never meets a forgotten commit before it finds
/// the common one. Where a pair has several lowest common ancestors, the
/// merge builds a virtual base from their own merge bases, so the same is
/// kept for them, [`VIRTUAL_DEPTH`] levels deep. A merge of more than two
/// heads needs nothing more: the common ancestors of a merged side are the
/// union of its heads' common ancestors with the other side.
///
/// Computed on `graph` in memory; parents missing from it (pruned or
/// damaged) end the walk there. Every head is in the result, even one
/// missing from `graph`.
pub fn always_keep(graph: &[Snapshot], heads: &HashSet<CommitId>) -> HashSet<CommitId> {
    let dag = Dag::new(graph);
    let mut keep = heads.clone();
    let mut first: Vec<usize> = heads.iter().filter_map(|h| dag.index.get(h).copied()).collect();
    first.sort_unstable();
    // Breadth first, so a set of bases reached by two paths is expanded at
    // its shallowest depth whatever order the commits came in.
    let mut groups = std::collections::VecDeque::from([(first, 0u32)]);
    let mut seen_groups: HashSet<Vec<usize>> = HashSet::new();
    while let Some((group, depth)) = groups.pop_front() {
        let ancestors: Vec<Vec<bool>> = group.iter().map(|&c| dag.ancestors(c)).collect();
        for i in 0..group.len() {
            for j in i + 1..group.len() {
                let lcas = dag.lowest_common(&ancestors[i], &ancestors[j]);
                let below = dag.descendants(&lcas);
                let on_paths = (0..dag.ids.len()).filter(|&c| below[c] && (ancestors[i][c] || ancestors[j][c]));
                keep.extend(on_paths.map(|c| dag.ids[c]));
                if lcas.len() >= 2 && depth < VIRTUAL_DEPTH && seen_groups.insert(lcas.clone()) {
                    groups.push_back((lcas, depth + 1));
                }
            }
        }
    }
    keep
}

/// The parent graph by index, for walks without hashing.
struct Dag {
    ids: Vec<CommitId>,
    index: HashMap<CommitId, usize>,
    parents: Vec<Vec<usize>>,
    children: Vec<Vec<usize>>,
}

impl Dag {
    /// An id given twice gets the union of its parents.
    fn new(graph: &[Snapshot]) -> Dag {
        let mut ids = Vec::with_capacity(graph.len());
        let mut index = HashMap::with_capacity(graph.len());
        for s in graph {
            index.entry(s.id).or_insert_with(|| {
                ids.push(s.id);
                ids.len() - 1
            });
        }
        let mut parents: Vec<Vec<usize>> = vec![Vec::new(); ids.len()];
        for s in graph {
            let Some(&c) = index.get(&s.id) else { continue };
            parents[c].extend(s.parents.iter().filter_map(|p| index.get(p).copied()));
        }
        let mut children: Vec<Vec<usize>> = vec![Vec::new(); ids.len()];
        for (c, ps) in parents.iter_mut().enumerate() {
            ps.sort_unstable();
            ps.dedup();
            for &p in ps.iter() {
                children[p].push(c);
            }
        }
        Dag {
            ids,
            index,
            parents,
            children,
        }
    }

    /// `start` and everything it descends from.
    fn ancestors(&self, start: usize) -> Vec<bool> {
        let mut seen = vec![false; self.ids.len()];
        let mut stack = vec![start];
        while let Some(c) = stack.pop() {
            if std::mem::replace(&mut seen[c], true) {
                continue;
            }
            stack.extend(self.parents[c].iter().copied().filter(|&p| !seen[p]));
        }
        seen
    }

    /// `starts` and everything that descends from one of them.
    fn descendants(&self, starts: &[usize]) -> Vec<bool> {
        let mut seen = vec![false; self.ids.len()];
        let mut stack = starts.to_vec();
        while let Some(c) = stack.pop() {
            if std::mem::replace(&mut seen[c], true) {
                continue;
            }
            stack.extend(self.children[c].iter().copied().filter(|&k| !seen[k]));
        }
        seen
    }

    /// The common ancestors of two commits that no other common ancestor
    /// descends from, sorted. The common ancestors are closed under
    /// "parent of", so one is an ancestor of another exactly when one of
    /// its children is common too.
    fn lowest_common(&self, a: &[bool], b: &[bool]) -> Vec<usize> {
        let common: Vec<bool> = a.iter().zip(b).map(|(x, y)| *x && *y).collect();
        let mut below = vec![false; common.len()];
        for (c, _) in common.iter().enumerate().filter(|(_, &is)| is) {
            for &p in &self.parents[c] {
                below[p] = true;
            }
        }
        (0..common.len()).filter(|&c| common[c] && !below[c]).collect()
    }
}

#[cfg(test)]
mod tests;

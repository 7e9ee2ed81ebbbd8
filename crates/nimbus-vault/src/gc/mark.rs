//! Prune's first phase (docs/PRUNE.md §4.1): decide which commits to
//! forget and which packs to condemn, repack partly used packs, and write
//! a plan every device sees. Nothing is deleted here.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;

use super::clock::{self, elapsed};
use super::format::{self, CondemnedPack, GcPlan, PlanId};
use super::live::LiveSet;
use super::PruneTimes;
use crate::commit::{self, Commit};
use crate::error::{Result, VaultError};
use crate::id::{BlobId, CommitId, DeviceId, Id, IndexId, PackId};
use crate::index::{self, IndexPack, Location};
use crate::pack::{self, PackEntry};
use crate::saver::Saver;
use crate::tree::Timestamp;
use crate::vault::Vault;

/// Which commits a mark forgets.
#[derive(Clone)]
pub enum Forget {
    /// None: only data no commit reaches is condemned.
    Nothing,
    /// These (heads and young commits are kept whatever the list says).
    These(HashSet<CommitId>),
    /// What a rule decides, given every commit and its store time; heads
    /// and young commits are kept whatever it says.
    Rule(ForgetRule),
}

/// A retention rule: given every commit, the ones to forget.
pub type ForgetRule = Arc<dyn Fn(&[CommitInfo]) -> HashSet<CommitId> + Send + Sync>;

/// A pack to repack: its id, size and the live blobs to copy out.
type Repack = (PackId, u64, Vec<(BlobId, Location)>);

/// A commit as a retention rule sees it.
#[derive(Debug, Clone)]
pub struct CommitInfo {
    pub id: CommitId,
    pub commit: Commit,
    /// When the store wrote it.
    pub stored: Option<SystemTime>,
}

/// How a mark runs.
#[derive(Clone)]
pub struct MarkOptions {
    pub times: PruneTimes,
    pub forget: Forget,
    /// A pack with more than this share of its bytes unused is repacked.
    pub repack_waste: f64,
    /// At most this many bytes are copied out of partly used packs.
    pub max_repack_bytes: u64,
    /// Index objects are consolidated when there are more than this many,
    /// or when one lists a pack a finished prune deleted.
    pub max_index_objects: usize,
    /// Called with what the mark is doing, for a progress display.
    pub progress: Option<Arc<dyn Fn(MarkStep) + Send + Sync>>,
}

impl Default for MarkOptions {
    fn default() -> Self {
        MarkOptions {
            times: PruneTimes::default(),
            forget: Forget::Nothing,
            repack_waste: 0.3,
            max_repack_bytes: 1 << 30,
            max_index_objects: 32,
            progress: None,
        }
    }
}

/// What a mark is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkStep {
    ReadingSnapshots { commits: usize },
    WalkingFolders { snapshots: usize },
    Repacking { packs: usize },
    WritingPlan,
}

/// What a mark found and decided.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MarkReport {
    /// The plan written; `None` when there was nothing to do.
    pub plan: Option<PlanId>,
    pub forgotten: usize,
    pub retained: usize,
    pub condemned_packs: usize,
    pub condemned_bytes: u64,
    pub repacked_packs: usize,
    /// Bytes of live blobs copied out of repacked packs.
    pub repacked_bytes: u64,
    pub superseded_indexes: usize,
    /// Bytes of every pack in the store.
    pub store_bytes: u64,
    /// Packs left alone because they are younger than `young`.
    pub young_packs: usize,
}

/// Runs a mark as `device` (docs/PRUNE.md §4.1).
pub async fn mark(vault: &Vault, device: &DeviceId, opts: &MarkOptions) -> Result<MarkReport> {
    require_version(vault)?;
    let now = store_now_required(vault, device).await?;
    vault.load_index().await?;
    vault.load_gc().await?;
    refuse_damage(vault)?;
    let refs = vault.read_refs().await?;
    let commits = read_commits(vault, opts).await?;
    let forgotten = decide_forget(vault, opts, &refs, &commits, now);
    let retained: Vec<&CommitInfo> = commits
        .iter()
        .filter(|c| !forgotten.contains(&c.id) && !vault.is_forgotten(&c.id))
        .collect();
    progress(
        opts,
        MarkStep::WalkingFolders {
            snapshots: retained.len(),
        },
    );
    let mut live = LiveSet::default();
    let mut roots: Vec<BlobId> = retained.iter().map(|c| c.commit.root).collect();
    for r in refs.values() {
        roots.push(vault.read_commit(&r.commit).await?.root);
    }
    live.add_roots(vault, roots).await?;
    if let Some((id, why)) = live.unreadable.first() {
        return Err(VaultError::corrupt(
            format!("tree {id}"),
            format!("{why}. Prune condemns nothing while a snapshot cannot be read whole: run `nimbus check`"),
        ));
    }
    let mut report = MarkReport {
        forgotten: forgotten.len(),
        retained: retained.len(),
        ..MarkReport::default()
    };
    let (condemned, repack) = classify(vault, opts, &live, now, &mut report).await?;
    let mut condemned = condemned;
    let new_from_repack = repack_packs(vault, opts, repack, &mut condemned, &mut report).await?;
    let (superseded, mut new_indexes) = consolidate(vault, opts).await?;
    new_indexes.extend(new_from_repack);
    report.superseded_indexes = superseded.len();
    report.condemned_packs = condemned.len();
    report.condemned_bytes = condemned.iter().map(|c| c.size).sum();
    if forgotten.is_empty() && condemned.is_empty() && superseded.is_empty() {
        return Ok(report);
    }
    progress(opts, MarkStep::WritingPlan);
    let mut forgotten: Vec<CommitId> = forgotten.into_iter().collect();
    forgotten.sort();
    let plan = GcPlan {
        created_by: *device,
        time: Timestamp::now(),
        grace_secs: opts.times.grace.as_secs(),
        forgotten,
        condemned,
        superseded_indexes: superseded,
        new_indexes,
    };
    let id = Id::random();
    vault
        .backend()
        .put(&format::plan_key(&id), Bytes::from(plan.seal(vault.keys(), &id)))
        .await?;
    report.plan = Some(id);
    // This client obeys its own plan at once.
    vault.load_gc().await?;
    Ok(report)
}

fn progress(opts: &MarkOptions, step: MarkStep) {
    if let Some(p) = &opts.progress {
        p(step);
    }
}

pub(crate) fn require_version(vault: &Vault) -> Result<()> {
    let v = vault.config().version();
    if v < super::GC_SINCE {
        return Err(VaultError::invalid_input(format!(
            "this vault uses format version {v}; prune needs version {} so that every device follows its rules. Upgrade it first with `nimbus upgrade` (older Nimbus versions cannot open it afterwards)",
            super::GC_SINCE
        )));
    }
    Ok(())
}

pub(crate) async fn store_now_required(vault: &Vault, device: &DeviceId) -> Result<SystemTime> {
    clock::store_now(vault, device).await?.ok_or_else(|| {
        VaultError::invalid_input(format!(
            "{} does not say when objects were written, so prune cannot measure its waits on the store's clock",
            vault.backend().describe()
        ))
    })
}

/// A damaged index object hides which packs are used, and a damaged plan
/// which are condemned: prune decides nothing while either exists.
pub(crate) fn refuse_damage(vault: &Vault) -> Result<()> {
    if let Some((key, why)) = vault.damaged_indexes().into_iter().next() {
        return Err(VaultError::corrupt(
            key,
            format!("{why}. Prune waits until `nimbus check --repair` has rebuilt the index"),
        ));
    }
    super::known::require_readable(vault)
}

/// Every commit object with its store time.
async fn read_commits(vault: &Vault, opts: &MarkOptions) -> Result<Vec<CommitInfo>> {
    use futures::StreamExt;
    let listing = vault.backend().list("commits/").await?;
    progress(opts, MarkStep::ReadingSnapshots { commits: listing.len() });
    let mut reads = futures::stream::iter(listing.into_iter().map(|obj| async move {
        let id = commit::parse_commit_key(&obj.key);
        match id {
            None => Ok(None),
            Some(id) => match vault.read_commit(&id).await {
                Ok(commit) => Ok(Some(CommitInfo {
                    id,
                    commit,
                    stored: obj.modified,
                })),
                // Deleted by a sweep since the listing.
                Err(VaultError::Missing { .. }) => Ok(None),
                Err(e) => Err(e),
            },
        }
    }))
    .buffer_unordered(32);
    let mut out = Vec::new();
    while let Some(r) = reads.next().await {
        if let Some(c) = r? {
            out.push(c);
        }
    }
    out.sort_by_key(|c| (c.commit.time, c.id));
    Ok(out)
}

/// The commits to forget: what the rule says, less every head and every
/// commit younger than `young`.
fn decide_forget(
    vault: &Vault,
    opts: &MarkOptions,
    refs: &HashMap<DeviceId, crate::commit::RefRecord>,
    commits: &[CommitInfo],
    now: SystemTime,
) -> HashSet<CommitId> {
    let wanted = match &opts.forget {
        Forget::Nothing => HashSet::new(),
        Forget::These(set) => set.clone(),
        Forget::Rule(rule) => rule(commits),
    };
    let heads: HashSet<CommitId> = refs.values().map(|r| r.commit).collect();
    // Whatever the rule says, sync needs the heads, their merge bases and
    // the commits between (docs/PRUNE.md §2).
    let graph: Vec<crate::retention::Snapshot> = commits
        .iter()
        .map(|c| crate::retention::Snapshot::of(c.id, &c.commit))
        .collect();
    let keep = crate::retention::always_keep(&graph, &heads);
    commits
        .iter()
        .filter(|c| wanted.contains(&c.id))
        .filter(|c| !keep.contains(&c.id) && !vault.is_forgotten(&c.id))
        .filter(|c| c.stored.is_some_and(|t| elapsed(t, now) >= opts.times.young))
        .map(|c| c.id)
        .collect()
}

/// Every known location of every blob, by pack.
fn blobs_by_pack(vault: &Vault) -> HashMap<PackId, Vec<(BlobId, Location)>> {
    vault.with_index(|ix| {
        let mut by: HashMap<PackId, Vec<(BlobId, Location)>> = HashMap::new();
        for (id, _) in ix.blobs() {
            for loc in ix.locations(id) {
                by.entry(loc.pack).or_default().push((*id, loc));
            }
        }
        by
    })
}

/// Packs to condemn now, and packs to repack (with their live blobs),
/// from one listing of `packs/`.
async fn classify(
    vault: &Vault,
    opts: &MarkOptions,
    live: &LiveSet,
    now: SystemTime,
    report: &mut MarkReport,
) -> Result<(Vec<CondemnedPack>, Vec<Repack>)> {
    let listing = vault.backend().list("packs/").await?;
    let by_pack = blobs_by_pack(vault);
    let mut condemned = Vec::new();
    let mut repack = Vec::new();
    for obj in listing {
        let Some(id) = pack::parse_pack_key(&obj.key) else {
            continue;
        };
        report.store_bytes += obj.size;
        if vault.with_index(|ix| ix.is_condemned(&id)) {
            continue;
        }
        if obj.modified.is_none_or(|t| elapsed(t, now) < opts.times.young) {
            report.young_packs += 1;
            continue;
        }
        let Some(blobs) = by_pack.get(&id) else {
            // In no index object (a save that crashed before its index):
            // its header says what it holds.
            if unindexed_is_unused(vault, &id, &obj.key, obj.size, live).await {
                condemned.push(CondemnedPack { id, size: obj.size });
            }
            continue;
        };
        let used: Vec<(BlobId, Location)> = blobs.iter().filter(|(b, _)| live.blobs.contains(b)).copied().collect();
        if used.is_empty() {
            condemned.push(CondemnedPack { id, size: obj.size });
            continue;
        }
        // Waste is counted in blob bytes, not in the pack's size: padding
        // (VAULT-FORMAT §6) is no waste a repack could get back.
        let used_bytes: u64 = used.iter().map(|(_, l)| l.length as u64).sum();
        let all_bytes: u64 = blobs.iter().map(|(_, l)| l.length as u64).sum();
        let share = used_bytes as f64 / all_bytes.max(1) as f64;
        if 1.0 - share > opts.repack_waste {
            repack.push((id, obj.size, used, share));
        }
    }
    // The emptiest first: each byte copied frees the most.
    repack.sort_by(|a, b| a.3.total_cmp(&b.3));
    let repack = repack.into_iter().map(|(id, size, used, _)| (id, size, used)).collect();
    Ok((condemned, repack))
}

/// Whether a pack no index object lists holds nothing live, by its
/// header. One whose header cannot be read is kept (and `check` names it).
async fn unindexed_is_unused(vault: &Vault, id: &PackId, key: &str, size: u64, live: &LiveSet) -> bool {
    match crate::check::check_pack_header(vault, id, key, size).await {
        Ok(entries) => entries.iter().all(|e| !live.blobs.contains(&e.id)),
        Err(_) => false,
    }
}

/// Copies the live blobs of partly used packs into new packs (within the
/// budget), then condemns the old packs. Returns the index objects written.
async fn repack_packs(
    vault: &Vault,
    opts: &MarkOptions,
    repack: Vec<Repack>,
    condemned: &mut Vec<CondemnedPack>,
    report: &mut MarkReport,
) -> Result<Vec<IndexId>> {
    let mut budget = opts.max_repack_bytes;
    let chosen: Vec<_> = repack
        .into_iter()
        .take_while(|(_, _, used)| {
            let bytes: u64 = used.iter().map(|(_, l)| l.length as u64).sum();
            let fits = bytes <= budget;
            budget = budget.saturating_sub(bytes);
            fits
        })
        .collect();
    if chosen.is_empty() {
        return Ok(Vec::new());
    }
    progress(opts, MarkStep::Repacking { packs: chosen.len() });
    let saver = Saver::new(vault);
    for (pack, size, used) in &chosen {
        if let Err(e) = vault.copy_pack_blobs(&saver, *pack, used).await {
            let _ = saver.finish().await;
            return Err(e);
        }
        report.repacked_bytes += used.iter().map(|(_, l)| l.length as u64).sum::<u64>();
        condemned.push(CondemnedPack { id: *pack, size: *size });
    }
    // The copies are indexed before the plan condemns the originals.
    let stats = saver.finish().await?;
    report.repacked_packs = chosen.len();
    Ok(stats.indexes)
}

/// When the index has grown into many objects, writes it anew and returns
/// (superseded, new). Every pack the master index knows is listed,
/// condemned ones too: a pack a sweep keeps must stay readable. Index
/// objects a pending plan already supersedes are neither counted nor
/// superseded again (a second plan for them would only repeat the work).
/// Entries of packs a finished prune deleted are dropped here; until then
/// the done records tell every reader those packs are gone.
async fn consolidate(vault: &Vault, opts: &MarkOptions) -> Result<(Vec<IndexId>, Vec<IndexId>)> {
    // Only index objects whose packs are in the master index may be
    // superseded: one written since the index was loaded is left alone.
    let loaded = vault.loaded_index_keys();
    let listing = vault.backend().list("index/").await?;
    let objects: Vec<IndexId> = listing
        .iter()
        .filter(|o| loaded.contains(&o.key))
        .filter_map(|o| index::parse_index_key(&o.key))
        .filter(|id| !vault.is_superseded(id))
        .collect();
    if objects.len() <= opts.max_index_objects {
        return Ok((Vec::new(), Vec::new()));
    }
    let by_pack = blobs_by_pack(vault);
    let sizes: HashMap<PackId, u64> = vault.with_index(|ix| ix.packs().clone());
    let mut packs: BTreeMap<PackId, IndexPack> = BTreeMap::new();
    for (pack, size) in sizes {
        let blobs = by_pack
            .get(&pack)
            .map(|v| {
                v.iter()
                    .map(|(id, l)| PackEntry {
                        id: *id,
                        kind: l.kind,
                        offset: l.offset,
                        length: l.length,
                        raw_len: l.raw_len,
                    })
                    .collect()
            })
            .unwrap_or_default();
        packs.insert(pack, IndexPack { id: pack, size, blobs });
    }
    let mut new = Vec::new();
    let mut batch = Vec::new();
    let mut entries = 0usize;
    for (_, p) in packs {
        entries += p.blobs.len();
        batch.push(p);
        if entries >= 500_000 {
            new.push(vault.write_index(std::mem::take(&mut batch)).await?);
            entries = 0;
        }
    }
    if !batch.is_empty() {
        new.push(vault.write_index(batch).await?);
    }
    Ok((objects, new))
}

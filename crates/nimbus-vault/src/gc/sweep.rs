//! Prune's second phase (docs/PRUNE.md §4.2): for each pending plan whose
//! grace period has passed on the store's clock and which every active
//! device acknowledges, re-check reachability from the refs as they are
//! now, then delete, write the done record and remove the plan. Every step
//! may be repeated: a crash anywhere leaves the plan for the next sweep.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use nimbus_backend::ObjectInfo;

use super::clock::elapsed;
use super::format::{self, GcDone, PlanId};
use super::known::KnownPlan;
use super::live::LiveSet;
use super::mark::{refuse_damage, require_version, store_now_required};
use crate::commit::{self, RefRecord};
use crate::error::{Result, VaultError};
use crate::id::{BlobId, CommitId, DeviceId, PackId};
use crate::tree::Timestamp;
use crate::vault::Vault;

/// How a sweep runs.
#[derive(Clone, Default)]
pub struct SweepOptions {
    /// A device whose ref has not changed for this long, since before the
    /// plan, is not waited for (docs/PRUNE.md §1 `dormant`).
    pub dormant: Duration,
    /// Delete without waiting for the grace period or for other devices
    /// (`nimbus prune --now`: only for a vault no other device is using).
    /// The re-check of reachability still applies.
    pub now: bool,
    /// Called as packs are deleted: (done, total).
    pub progress: Option<Arc<dyn Fn(usize, usize) + Send + Sync>>,
}

impl SweepOptions {
    pub fn new(times: super::PruneTimes) -> SweepOptions {
        SweepOptions {
            dormant: times.dormant,
            ..SweepOptions::default()
        }
    }
}

/// Why a plan was not swept yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Waiting {
    /// Its grace period ends in this long (store clock).
    Grace(Duration),
    /// These devices have not acknowledged it and are not dormant.
    Devices(Vec<DeviceId>),
}

/// What a sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Plans finished (done record written).
    pub done: Vec<PlanId>,
    /// Plans left for a later sweep, and why.
    pub waiting: Vec<(PlanId, Waiting)>,
    pub deleted_packs: usize,
    pub freed_bytes: u64,
    /// Condemned packs kept because something reachable needs them again.
    pub kept_packs: usize,
    pub deleted_commits: usize,
    pub deleted_indexes: usize,
}

/// Sweeps every pending plan that may be swept, oldest first.
pub async fn sweep(vault: &Vault, device: &DeviceId, opts: &SweepOptions) -> Result<SweepReport> {
    require_version(vault)?;
    let mut report = SweepReport::default();
    vault.load_gc().await?;
    refuse_damage(vault)?;
    for plan in vault.known_plans() {
        let now = store_now_required(vault, device).await?;
        let refs = read_refs_with_times(vault).await?;
        if !opts.now {
            if let Some(w) = waiting_for(&plan, &refs, now, opts.dormant) {
                report.waiting.push((plan.id, w));
                continue;
            }
        }
        sweep_one(vault, device, &plan, &refs, opts, &mut report).await?;
    }
    Ok(report)
}

/// A device ref with the store time of its object.
struct StoredRef {
    record: RefRecord,
    modified: Option<SystemTime>,
}

/// Every device's ref (checked against rollback), with its store time:
/// listed ones from the listing, ones seen before but not listed (a
/// lagging listing) from a `stat`.
async fn read_refs_with_times(vault: &Vault) -> Result<HashMap<DeviceId, StoredRef>> {
    let listing: Vec<ObjectInfo> = vault.backend().list("refs/").await?;
    let times: HashMap<DeviceId, Option<SystemTime>> = listing
        .iter()
        .filter_map(|o| commit::parse_ref_key(&o.key).map(|d| (d, o.modified)))
        .collect();
    let refs = vault.read_refs().await?;
    let mut out = HashMap::new();
    for (dev, record) in refs {
        let modified = match times.get(&dev) {
            Some(t) => *t,
            None => vault
                .backend()
                .stat(&commit::ref_key(&dev))
                .await?
                .and_then(|i| i.modified),
        };
        out.insert(dev, StoredRef { record, modified });
    }
    Ok(out)
}

/// Rules (a) and (b): `None` when the plan may be swept.
fn waiting_for(
    plan: &KnownPlan,
    refs: &HashMap<DeviceId, StoredRef>,
    now: SystemTime,
    dormant: Duration,
) -> Option<Waiting> {
    let grace = Duration::from_secs(plan.plan.grace_secs);
    let Some(made) = plan.modified else {
        return Some(Waiting::Grace(grace));
    };
    let age = elapsed(made, now);
    if age < grace {
        return Some(Waiting::Grace(grace - age));
    }
    let mut missing: Vec<DeviceId> = refs
        .iter()
        .filter(|(_, r)| !r.record.gc_seen.contains(&plan.id))
        .filter(|(_, r)| !is_dormant(r.modified, made, now, dormant))
        .map(|(d, _)| *d)
        .collect();
    missing.sort();
    (!missing.is_empty()).then_some(Waiting::Devices(missing))
}

/// A device is dormant for a plan when its ref was last written before the
/// plan and at least `dormant` ago (both on the store's clock).
fn is_dormant(ref_time: Option<SystemTime>, plan_time: SystemTime, now: SystemTime, dormant: Duration) -> bool {
    ref_time.is_some_and(|t| t < plan_time && elapsed(t, now) >= dormant)
}

async fn sweep_one(
    vault: &Vault,
    device: &DeviceId,
    plan: &KnownPlan,
    refs: &HashMap<DeviceId, StoredRef>,
    opts: &SweepOptions,
    report: &mut SweepReport,
) -> Result<()> {
    // Copies written since (a repack, a publish's rescue) must be known.
    vault.load_index().await?;
    let (deletable, kept) = recheck(vault, plan, refs).await?;
    let forgotten: Vec<String> = plan.plan.forgotten.iter().map(commit::commit_key).collect();
    delete_all(vault, &forgotten).await?;
    let total = deletable.len();
    let mut freed = 0u64;
    let mut done_packs = Vec::new();
    for (i, chunk) in deletable.chunks(1000).enumerate() {
        let keys: Vec<String> = chunk.iter().map(|(p, _)| crate::pack::pack_key(p)).collect();
        delete_all(vault, &keys).await?;
        freed += chunk.iter().map(|(_, s)| s).sum::<u64>();
        done_packs.extend(chunk.iter().map(|(p, _)| *p));
        if let Some(p) = &opts.progress {
            p((i * 1000 + chunk.len()).min(total), total);
        }
    }
    let indexes: Vec<String> = plan
        .plan
        .superseded_indexes
        .iter()
        .map(crate::index::index_key)
        .collect();
    delete_all(vault, &indexes).await?;
    let done = GcDone {
        swept_by: *device,
        time: Timestamp::now(),
        forgotten: plan.plan.forgotten.clone(),
        deleted: done_packs,
        kept: kept.clone(),
        superseded_indexes: plan.plan.superseded_indexes.clone(),
        freed_bytes: freed,
    };
    let key = format::done_key(&plan.id);
    vault
        .backend()
        .put(&key, Bytes::from(done.seal(vault.keys(), &plan.id)))
        .await?;
    vault.backend().delete(&format::plan_key(&plan.id)).await?;
    vault.load_gc().await?;
    report.done.push(plan.id);
    report.deleted_packs += done.deleted.len();
    report.freed_bytes += freed;
    report.kept_packs += kept.len();
    report.deleted_commits += forgotten.len();
    report.deleted_indexes += indexes.len();
    Ok(())
}

/// Rule (c): walks every ref's head and every commit no plan forgets, and
/// splits the plan's condemned packs into those that may go (with their
/// sizes) and those that hold the only copy of something reachable.
async fn recheck(
    vault: &Vault,
    plan: &KnownPlan,
    refs: &HashMap<DeviceId, StoredRef>,
) -> Result<(Vec<(PackId, u64)>, Vec<PackId>)> {
    let forgotten: HashSet<CommitId> = plan.plan.forgotten.iter().copied().collect();
    let mut roots: Vec<BlobId> = Vec::new();
    for r in refs.values() {
        roots.push(vault.read_commit(&r.record.commit).await?.root);
    }
    for obj in vault.backend().list("commits/").await? {
        let Some(id) = commit::parse_commit_key(&obj.key) else {
            continue;
        };
        if forgotten.contains(&id) || vault.is_forgotten(&id) && !refs.values().any(|r| r.record.commit == id) {
            continue;
        }
        match vault.read_commit(&id).await {
            Ok(c) => roots.push(c.root),
            Err(VaultError::Missing { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    let mut live = LiveSet::default();
    live.add_roots(vault, roots).await?;
    if let Some((id, why)) = live.unreadable.first() {
        return Err(VaultError::corrupt(
            format!("tree {id}"),
            format!("{why}. Prune deletes nothing while a snapshot cannot be read whole: run `nimbus check`"),
        ));
    }
    let mut deletable = Vec::new();
    let mut kept = Vec::new();
    vault.with_index(|ix| {
        let condemned: HashSet<PackId> = plan.plan.condemned.iter().map(|c| c.id).collect();
        let mut needed: HashSet<PackId> = HashSet::new();
        for (blob, _) in ix.blobs() {
            if !live.blobs.contains(blob) {
                continue;
            }
            let locs = ix.locations(blob);
            // Another copy counts only in a pack no pending plan condemns.
            if locs
                .iter()
                .any(|l| !ix.is_condemned(&l.pack) && !condemned.contains(&l.pack))
            {
                continue;
            }
            needed.extend(locs.iter().map(|l| l.pack).filter(|p| condemned.contains(p)));
        }
        for c in &plan.plan.condemned {
            if needed.contains(&c.id) {
                kept.push(c.id);
            } else {
                deletable.push((c.id, c.size));
            }
        }
    });
    Ok((deletable, kept))
}

/// Deletes objects in batches where the store has them (S3's multi-object
/// delete takes 1,000 keys a request); one already gone counts as deleted.
async fn delete_all(vault: &Vault, keys: &[String]) -> Result<()> {
    if keys.is_empty() {
        return Ok(());
    }
    Ok(vault.backend().delete_many(keys).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: Duration = Duration::from_secs(3600);

    fn t(h: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000) + H * h as u32
    }

    #[test]
    fn a_device_is_dormant_only_if_silent_since_before_the_plan_and_long_enough() {
        let week = 7 * 24 * H;
        // Silent for 8 days, since before the plan: dormant.
        assert!(is_dormant(Some(t(0)), t(10), t(8 * 24), week));
        // Silent since before the plan, but only for 6 days.
        assert!(!is_dormant(Some(t(0)), t(10), t(6 * 24), week));
        // Wrote after the plan: it has seen it or will ack it; not dormant.
        assert!(!is_dormant(Some(t(11)), t(10), t(30 * 24), week));
        // A store that keeps no times never makes a device dormant.
        assert!(!is_dormant(None, t(10), t(30 * 24), week));
    }
}

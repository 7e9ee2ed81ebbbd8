//! What this client knows of prune: the pending plans and the finished
//! ones, learned from the `refs/` listing every poll makes
//! (docs/PRUNE.md §3 and §5), and applied to the master index: packs a
//! pending plan condemns count as absent for saves (S1), packs a finished
//! prune deleted are forgotten (S5).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use nimbus_backend::{BackendErrorKind, ObjectInfo};

use super::format::{self, GcDone, GcKey, GcPlan, PlanId};
use crate::error::{Result, VaultError};
use crate::id::{CommitId, IndexId, PackId};
use crate::vault::Vault;

/// A pending plan, with the store time of its object.
#[derive(Debug, Clone)]
pub struct KnownPlan {
    pub id: PlanId,
    pub plan: Arc<GcPlan>,
    /// When the store wrote it; `None` if the store keeps no times.
    pub modified: Option<SystemTime>,
}

/// See the module doc.
#[derive(Debug, Default)]
pub(crate) struct GcKnown {
    /// Plans read and not finished.
    plans: HashMap<PlanId, KnownPlan>,
    /// Plans whose done record was read.
    done: HashSet<PlanId>,
    /// Every pack a finished prune deleted.
    deleted: HashSet<PackId>,
    /// Every commit a plan (pending or finished) forgets.
    forgotten: HashSet<CommitId>,
    /// Every index object a plan (pending or finished) supersedes.
    superseded: HashSet<IndexId>,
    /// Prune objects that could not be read: key and reason.
    damaged: BTreeMap<String, String>,
    /// The finished prunes read, for "when prune last ran".
    finished: Vec<Finished>,
    /// Grows whenever a plan condemns packs not condemned before.
    epoch: u64,
}

impl GcKnown {
    /// The pending plans, oldest first (by store time, then id).
    pub(crate) fn pending(&self) -> Vec<KnownPlan> {
        let mut v: Vec<KnownPlan> = self.plans.values().cloned().collect();
        v.sort_by_key(|p| (p.modified, p.id));
        v
    }

    pub(crate) fn is_forgotten(&self, id: &CommitId) -> bool {
        self.forgotten.contains(id)
    }

    /// Every pack a finished prune deleted.
    pub(crate) fn deleted(&self) -> &HashSet<PackId> {
        &self.deleted
    }

    pub(crate) fn epoch(&self) -> u64 {
        self.epoch
    }

    pub(crate) fn damaged(&self) -> Vec<(String, String)> {
        self.damaged.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    fn condemned(&self) -> impl Iterator<Item = PackId> + '_ {
        self.plans.values().flat_map(|p| p.plan.condemned.iter().map(|c| c.id))
    }
}

/// A finished prune, as `nimbus stat` tells of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    pub plan: PlanId,
    /// When the sweep finished, by the sweeping device's clock.
    pub time: crate::tree::Timestamp,
    pub freed_bytes: u64,
    pub deleted_packs: usize,
    pub forgotten: usize,
}

/// What `nimbus stat` and the app show of prune (docs/PRUNE.md §8).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneSummary {
    /// Plans marked and not finished, oldest first.
    pub pending: Vec<KnownPlan>,
    /// The most recent finished prune.
    pub last: Option<Finished>,
    /// Bytes every finished prune freed.
    pub freed_bytes: u64,
}

impl PartialEq for KnownPlan {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id && self.modified == other.modified
    }
}

impl Eq for KnownPlan {}

/// One prune object read from the store.
enum Read {
    Plan(KnownPlan),
    Done(PlanId, GcDone),
    Damaged(String, String),
    Gone,
}

impl Vault {
    /// Learns the prune objects of a `refs/` listing (the keys under
    /// `refs/gc/`; others are ignored) that this client has not read yet,
    /// and applies them to the master index. Returns the pending plans,
    /// oldest first. A damaged plan or record is remembered, not fatal
    /// (`check` reports it); a store that cannot be reached is an error.
    pub async fn learn_gc(&self, listing: &[ObjectInfo]) -> Result<Vec<KnownPlan>> {
        let to_read: Vec<(&ObjectInfo, GcKey)> = {
            let known = self.gc_known_read();
            listing
                .iter()
                .filter_map(|o| format::parse_gc_key(&o.key).map(|k| (o, k)))
                .filter(|(_, k)| match k {
                    GcKey::Plan(id) => !known.plans.contains_key(id) && !known.done.contains(id),
                    GcKey::Done(id) => !known.done.contains(id),
                })
                .collect()
        };
        let reads = futures::future::join_all(to_read.iter().map(|(o, k)| self.read_gc_object(o, *k))).await;
        let mut found = Vec::new();
        for r in reads {
            found.push(r?);
        }
        self.take_in_gc(found);
        Ok(self.gc_known_read().pending())
    }

    /// The pending plans this client knows, oldest first.
    pub fn known_plans(&self) -> Vec<KnownPlan> {
        self.gc_known_read().pending()
    }

    /// Whether a prune forgot this commit on purpose (its plan or done
    /// record says so): a missing commit that is not an error.
    pub fn is_forgotten(&self, id: &CommitId) -> bool {
        self.gc_known_read().is_forgotten(id)
    }

    /// What is known of prune: the plans waiting, and the last one that
    /// finished (docs/PRUNE.md §8).
    pub fn prune_summary(&self) -> PruneSummary {
        let known = self.gc_known_read();
        PruneSummary {
            pending: known.pending(),
            last: known.finished.iter().max_by_key(|f| (f.time, f.plan)).cloned(),
            freed_bytes: known.finished.iter().map(|f| f.freed_bytes).sum(),
        }
    }

    /// Whether a prune superseded this index object on purpose (a commit
    /// may still name it).
    pub fn is_superseded(&self, id: &IndexId) -> bool {
        self.gc_known_read().superseded.contains(id)
    }

    /// Prune objects that could not be read, with the reason.
    pub fn damaged_gc_objects(&self) -> Vec<(String, String)> {
        self.gc_known_read().damaged()
    }

    /// Grows whenever this client learns of packs newly condemned.
    pub fn gc_epoch(&self) -> u64 {
        self.gc_known_read().epoch()
    }

    async fn read_gc_object(&self, obj: &ObjectInfo, key: GcKey) -> Result<Read> {
        let bytes: Bytes = match self.backend().get_whole(&obj.key, format::GC_OBJECT_MAX).await {
            Ok(b) => b,
            Err(e) if e.kind() == BackendErrorKind::NotFound => return Ok(Read::Gone),
            Err(e) if e.kind() == BackendErrorKind::Unavailable => return Err(e.into()),
            Err(e) => return Ok(Read::Damaged(obj.key.clone(), e.to_string())),
        };
        Ok(match key {
            GcKey::Plan(id) => match GcPlan::open(self.keys(), &id, &bytes) {
                Ok(plan) => Read::Plan(KnownPlan {
                    id,
                    plan: Arc::new(plan),
                    modified: obj.modified,
                }),
                Err(e) => Read::Damaged(obj.key.clone(), e.to_string()),
            },
            GcKey::Done(id) => match GcDone::open(self.keys(), &id, &bytes) {
                Ok(done) => Read::Done(id, done),
                Err(e) => Read::Damaged(obj.key.clone(), e.to_string()),
            },
        })
    }

    fn take_in_gc(&self, found: Vec<Read>) {
        let mut known = self.gc_known_write();
        for r in found {
            match r {
                Read::Plan(p) => {
                    known.forgotten.extend(p.plan.forgotten.iter().copied());
                    known.superseded.extend(p.plan.superseded_indexes.iter().copied());
                    known.damaged.remove(&format::plan_key(&p.id));
                    known.plans.insert(p.id, p);
                }
                Read::Done(id, done) => {
                    known.plans.remove(&id);
                    known.finished.push(Finished {
                        plan: id,
                        time: done.time,
                        freed_bytes: done.freed_bytes,
                        deleted_packs: done.deleted.len(),
                        forgotten: done.forgotten.len(),
                    });
                    known.done.insert(id);
                    known.deleted.extend(done.deleted.iter().copied());
                    known.forgotten.extend(done.forgotten.iter().copied());
                    known.superseded.extend(done.superseded_indexes.iter().copied());
                    known.damaged.remove(&format::done_key(&id));
                }
                Read::Damaged(key, why) => {
                    known.damaged.insert(key, why);
                }
                Read::Gone => {}
            }
        }
        let condemned: Vec<PackId> = known.condemned().collect();
        let deleted = known.deleted.clone();
        let newly = self.with_index_mut(|ix| {
            ix.remove_packs(&deleted);
            ix.condemn(condemned)
        });
        if newly {
            known.epoch += 1;
        }
    }

    /// Applies what is known of prune to the master index again, after
    /// index objects were loaded (one may list a pack a prune deleted).
    pub(crate) fn reapply_gc(&self) {
        let known = self.gc_known_read();
        let condemned: Vec<PackId> = known.condemned().collect();
        let deleted = known.deleted.clone();
        drop(known);
        self.with_index_mut(|ix| {
            ix.remove_packs(&deleted);
            ix.condemn(condemned);
        });
    }

    /// Reads the prune objects of the store (one listing of `refs/gc/`),
    /// as a vault does when it is opened.
    pub async fn load_gc(&self) -> Result<Vec<KnownPlan>> {
        let listing = self.backend().list(format::GC_PREFIX).await?;
        self.learn_gc(&listing).await
    }
}

impl From<&KnownPlan> for PlanId {
    fn from(p: &KnownPlan) -> PlanId {
        p.id
    }
}

/// A plan that could not be read is an error for the phases that must
/// know every plan (a sweep, a mark).
pub(crate) fn require_readable(vault: &Vault) -> Result<()> {
    match vault.damaged_gc_objects().into_iter().next() {
        None => Ok(()),
        Some((key, why)) => Err(VaultError::corrupt(key, why)),
    }
}

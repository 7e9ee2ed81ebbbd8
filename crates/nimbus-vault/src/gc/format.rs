//! The bytes of prune's objects (docs/PRUNE.md §3, VAULT-FORMAT §14):
//! plans `refs/gc/<id>`, done records `refs/gc/<id>.done` and the store
//! clock `clock/<device>`, and how a listing of `refs/` is split between
//! device refs and these.

use serde::{Deserialize, Serialize};

use crate::codec::{self, MetaError};
use crate::crypto::{Keys, Purpose};
use crate::id::{CommitId, DeviceId, Id, IndexId, PackId};
use crate::tree::Timestamp;

/// A plan's id: random, never reused.
pub type PlanId = Id;

/// Where plans and done records live: under `refs/`, so the listing every
/// poll makes shows them at no extra cost.
pub const GC_PREFIX: &str = "refs/gc/";

/// A read of a plan or done record stops past this (a plan that condemns
/// every pack of a 1 TB vault is about 3 MiB).
pub const GC_OBJECT_MAX: u64 = 64 << 20;

/// What a prune decided and has not finished deleting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcPlan {
    /// The device that marked.
    pub created_by: DeviceId,
    /// When, by that device's clock (for people only: every wait is
    /// measured on the plan object's store time).
    pub time: Timestamp,
    /// The least time, in seconds, from the plan's store time to a
    /// deletion it allows.
    pub grace_secs: u64,
    /// Commits retention forgot.
    pub forgotten: Vec<CommitId>,
    /// Packs that hold nothing a retained commit needs, with their sizes.
    pub condemned: Vec<CondemnedPack>,
    /// Index objects the new ones replace, deleted with the packs.
    pub superseded_indexes: Vec<IndexId>,
    /// Index objects this mark wrote (listing every pack of the superseded
    /// ones that is not condemned, and the repacked copies).
    pub new_indexes: Vec<IndexId>,
}

/// A condemned pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CondemnedPack {
    pub id: PackId,
    /// Its size in bytes, for "what prune will free".
    pub size: u64,
}

/// What a finished sweep did: kept so that `check` can tell history
/// pruned on purpose from history that is missing, and so that every
/// device drops the index entries of the deleted packs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcDone {
    /// The device that swept.
    pub swept_by: DeviceId,
    /// When, by that device's clock (for people).
    pub time: Timestamp,
    /// The commits deleted.
    pub forgotten: Vec<CommitId>,
    /// The packs deleted.
    pub deleted: Vec<PackId>,
    /// Condemned packs kept because something reachable needed them again.
    pub kept: Vec<PackId>,
    /// The index objects deleted (a commit may still name one).
    pub superseded_indexes: Vec<IndexId>,
    /// The bytes the deleted packs held.
    pub freed_bytes: u64,
}

/// What a key under [`GC_PREFIX`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GcKey {
    Plan(PlanId),
    Done(PlanId),
}

pub fn plan_key(id: &PlanId) -> String {
    format!("{GC_PREFIX}{}", id.to_hex())
}

pub fn done_key(id: &PlanId) -> String {
    format!("{GC_PREFIX}{}.done", id.to_hex())
}

/// The object whose store time is "now on the store" for `device`.
pub fn clock_key(device: &DeviceId) -> String {
    format!("clock/{}", device.to_hex())
}

/// Parses a key under [`GC_PREFIX`]; `None` for anything else.
pub fn parse_gc_key(key: &str) -> Option<GcKey> {
    let rest = key.strip_prefix(GC_PREFIX)?;
    match rest.strip_suffix(".done") {
        Some(id) => Id::from_hex(id).ok().map(GcKey::Done),
        None => Id::from_hex(rest).ok().map(GcKey::Plan),
    }
}

/// Whether a key of a `refs/` listing belongs to prune rather than to a
/// device (device refs are `refs/<32 hex digits>`).
pub fn is_gc_key(key: &str) -> bool {
    key.starts_with(GC_PREFIX)
}

impl GcPlan {
    pub(crate) fn seal(&self, keys: &Keys, id: &PlanId) -> Vec<u8> {
        codec::seal_meta(
            &keys.meta,
            Purpose::GcPlan,
            id.as_bytes(),
            &postcard::to_allocvec(self).unwrap_or_default(),
        )
    }

    pub(crate) fn open(keys: &Keys, id: &PlanId, sealed: &[u8]) -> Result<GcPlan, MetaError> {
        codec::open_meta_value(&keys.meta, Purpose::GcPlan, id.as_bytes(), sealed)
    }

    /// The bytes the condemned packs hold.
    pub fn condemned_bytes(&self) -> u64 {
        self.condemned.iter().map(|p| p.size).sum()
    }
}

impl GcDone {
    pub(crate) fn seal(&self, keys: &Keys, id: &PlanId) -> Vec<u8> {
        codec::seal_meta(
            &keys.meta,
            Purpose::GcDone,
            id.as_bytes(),
            &postcard::to_allocvec(self).unwrap_or_default(),
        )
    }

    pub(crate) fn open(keys: &Keys, id: &PlanId, sealed: &[u8]) -> Result<GcDone, MetaError> {
        codec::open_meta_value(&keys.meta, Purpose::GcDone, id.as_bytes(), sealed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::MasterKey;
    use crate::id::ShortId;

    fn plan() -> GcPlan {
        GcPlan {
            created_by: ShortId([3; 16]),
            time: Timestamp {
                secs: 1_800_000_000,
                nanos: 0,
            },
            grace_secs: 86_400,
            forgotten: vec![Id([1; 32])],
            condemned: vec![CondemnedPack {
                id: Id([2; 32]),
                size: 17,
            }],
            superseded_indexes: vec![Id([4; 32])],
            new_indexes: vec![Id([5; 32])],
        }
    }

    #[test]
    fn a_plan_opens_only_under_its_own_id_and_label() {
        let keys = MasterKey::random().derive();
        let id = Id::random();
        let sealed = plan().seal(&keys, &id);
        assert_eq!(GcPlan::open(&keys, &id, &sealed).unwrap(), plan());
        assert!(
            GcPlan::open(&keys, &Id::random(), &sealed).is_err(),
            "moved to another name"
        );
        assert!(GcDone::open(&keys, &id, &sealed).is_err(), "read as a done record");
    }

    #[test]
    fn keys_parse_back_and_device_refs_are_not_gc_keys() {
        let id = Id::random();
        assert_eq!(parse_gc_key(&plan_key(&id)), Some(GcKey::Plan(id)));
        assert_eq!(parse_gc_key(&done_key(&id)), Some(GcKey::Done(id)));
        assert_eq!(parse_gc_key("refs/gc/policy"), None);
        let dev = crate::commit::ref_key(&ShortId([9; 16]));
        assert!(!is_gc_key(&dev) && parse_gc_key(&dev).is_none());
        assert!(is_gc_key(&plan_key(&id)));
    }
}

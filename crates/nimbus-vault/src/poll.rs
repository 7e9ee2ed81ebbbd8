//! Polling the other devices' refs cheaply (docs/SYNC.md §1.1): what a
//! device remembers between polls ([`RefCache`]), what one poll found
//! ([`RefPoll`]), and the pure rule deciding which listed refs must be read
//! again. The reads themselves, and the rollback check every read ref goes
//! through, are in [`crate::Vault::poll_refs`].
//!
//! A listing gives each ref's fingerprint: size, the store's modification
//! time and its ETag. A ref whose fingerprint is the one the cache saw is
//! not read again, with two exceptions where the fingerprint cannot be
//! trusted to change with the bytes:
//!
//! - **Coarse fingerprints.** Without a strong ETag (none, or a weak `W/`
//!   one made of the time and size), two writes of the same size in one
//!   tick of the store's clock (a second on SFTP) look alike. Such a
//!   fingerprint is read again at every poll until one read is known to
//!   have happened after its tick ended: the read comes 2 s or more (this
//!   device's monotonic clock) after the listing that first showed it. So
//!   a change costs one or two extra reads, and an idle vault none. With no
//!   time either, the ref is read every poll. The store's own times are
//!   not trusted for this (as "another ref was written 2 s later"): on a
//!   folder shared over the network each writer stamps its own clock, and
//!   one running fast would settle every other ref at once.
//! - **The safety net.** Every [`FULL_READ_EVERY`] every listed ref is read,
//!   against a store that keeps a fingerprint while changing the bytes.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant, SystemTime};

use nimbus_backend::ObjectInfo;

use crate::commit::{self, RefRecord};
use crate::error::{Result, VaultError};
use crate::id::DeviceId;

/// How often a poll reads every ref whatever its fingerprint says.
pub const FULL_READ_EVERY: Duration = Duration::from_secs(600);

/// How far apart two times must be for a coarse fingerprint to be trusted:
/// one tick of the coarsest store clock (a second) and a second of slack.
const SETTLE: Duration = Duration::from_secs(2);

/// What a device remembers of the refs between two polls: the last checked
/// record of every device's ref and the fingerprint it was read under. Plain
/// data the caller keeps; a new (default) cache makes the next poll read
/// every ref, exactly as [`crate::Vault::read_refs`] does. Kept in memory
/// only: a restart reads every ref once.
#[derive(Debug, Clone, Default)]
pub struct RefCache {
    refs: HashMap<DeviceId, Cached>,
    /// When the last poll that read every listed ref listed them.
    last_full: Option<Instant>,
}

#[derive(Debug, Clone)]
struct Cached {
    record: RefRecord,
    /// The listing's fingerprint of the version `record` was read from;
    /// `None` when not known (read by name, or written by this device), so
    /// the next listing of it is read.
    fingerprint: Option<Fingerprint>,
    /// When a listing first showed `fingerprint` (this device's clock).
    first_listed: Instant,
    /// Whether a read of `fingerprint` is known to hold its final bytes.
    settled: bool,
}

/// An object's fingerprint in a listing: it changes when the object is
/// rewritten (within the limits of the module doc).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fingerprint {
    size: u64,
    modified: Option<SystemTime>,
    etag: Option<String>,
}

impl Fingerprint {
    fn of(info: &ObjectInfo) -> Self {
        Fingerprint {
            size: info.size,
            modified: info.modified,
            etag: info.etag.clone(),
        }
    }

    /// A strong ETag changes with the content whatever the clock does.
    fn strong(&self) -> bool {
        self.etag.as_deref().is_some_and(|e| !e.starts_with("W/"))
    }

    /// Whether a read made at `now` holds the final bytes of this
    /// fingerprint, first listed at `first_listed` (module doc).
    fn settled(&self, first_listed: Instant, now: Instant) -> bool {
        if self.strong() {
            return true;
        }
        self.modified.is_some() && now.saturating_duration_since(first_listed) >= SETTLE
    }
}

/// What one poll found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RefPoll {
    /// Every device's ref, each checked as [`crate::Vault::read_refs`]
    /// checks them (authentic, and not older than any update seen).
    pub refs: HashMap<DeviceId, RefRecord>,
    /// The devices whose ref is new or points elsewhere (another commit or
    /// update number) since the cache's previous poll, sorted.
    pub changed: Vec<DeviceId>,
    /// How many refs this poll read (a GET each), for counting requests.
    pub reads: usize,
    /// The pending prune plans the listing showed (docs/PRUNE.md §5),
    /// oldest first: a device whose ref does not name them all
    /// acknowledges them ([`crate::Vault::acknowledge_plans`]).
    pub gc_pending: Vec<crate::gc::PlanId>,
}

/// What [`crate::Vault::write_ref_with`] did: the ref's new update number,
/// and the pre-publish poll it made. That poll moved the caller's cache on,
/// so its `changed` (other devices' refs that moved since the caller's
/// last poll) is reported only here.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Published {
    pub seq: u64,
    pub poll: RefPoll,
    /// What the publish copied out of condemned packs (docs/PRUNE.md §5).
    pub rescue: crate::gc::Rescued,
}

/// Which refs a poll must read, decided from one listing.
#[derive(Debug)]
pub(crate) struct Plan {
    /// Listed refs kept from the cache, unread.
    pub keep: HashMap<DeviceId, RefRecord>,
    /// Listed refs to read, with their fingerprint.
    read_listed: Vec<(DeviceId, Fingerprint)>,
    /// Refs known before but not listed: asked for by name, since a listing
    /// may lag behind a write.
    pub read_by_name: Vec<DeviceId>,
    /// When the listing came back.
    listed_at: Instant,
    full: bool,
}

impl Plan {
    /// The listed refs to read.
    pub fn listed_to_read(&self) -> impl Iterator<Item = DeviceId> + '_ {
        self.read_listed.iter().map(|r| r.0)
    }
}

impl RefCache {
    /// An empty cache: the next poll reads every ref.
    pub fn new() -> Self {
        RefCache::default()
    }

    /// The last checked record of `device`'s ref.
    pub fn get(&self, device: &DeviceId) -> Option<&RefRecord> {
        self.refs.get(device).map(|c| &c.record)
    }

    /// How many devices' refs the cache holds.
    pub fn len(&self) -> usize {
        self.refs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.refs.is_empty()
    }

    /// Makes the next poll read every ref once, as the safety net does
    /// (after a resume or a network change, say).
    pub fn read_all_next(&mut self) {
        self.last_full = None;
    }

    /// The update numbers the cache holds: the cache is a memory of refs
    /// seen, so a ref it holds that is gone or older is a rollback too.
    pub(crate) fn seen(&self) -> HashMap<DeviceId, u64> {
        self.refs.iter().map(|(d, c)| (*d, c.record.seq)).collect()
    }

    /// Decides from one listing of `refs/`, made right before `listed_at`,
    /// which refs to read. `seen` is the vault's memory of update numbers:
    /// a cached record below it is read again (this device wrote a newer
    /// one without the cache, or remembers one from an earlier run).
    pub(crate) fn plan(
        &self,
        listing: &[ObjectInfo],
        seen: &HashMap<DeviceId, u64>,
        listed_at: Instant,
    ) -> Result<Plan> {
        let full = self
            .last_full
            .is_none_or(|t| listed_at.saturating_duration_since(t) >= FULL_READ_EVERY);
        let mut keep = HashMap::new();
        let mut read_listed = Vec::new();
        let mut listed = HashSet::new();
        for obj in listing {
            let dev = commit::parse_ref_key(&obj.key)
                .ok_or_else(|| VaultError::corrupt(&obj.key, "its name is not a device id"))?;
            listed.insert(dev);
            let fp = Fingerprint::of(obj);
            let reuse = self.refs.get(&dev).filter(|c| {
                !full
                    && c.settled
                    && c.fingerprint.as_ref() == Some(&fp)
                    && c.record.seq >= seen.get(&dev).copied().unwrap_or(0)
            });
            match reuse {
                Some(c) => {
                    keep.insert(dev, c.record.clone());
                }
                None => read_listed.push((dev, fp)),
            }
        }
        let mut read_by_name: Vec<DeviceId> = seen
            .keys()
            .chain(self.refs.keys())
            .filter(|d| !listed.contains(d))
            .copied()
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        read_by_name.sort();
        read_listed.sort_by_key(|r| r.0);
        Ok(Plan {
            keep,
            read_listed,
            read_by_name,
            listed_at,
            full,
        })
    }

    /// Takes in a poll that passed the rollback check: `listed` holds the
    /// records read for the plan's listed refs, `by_name` those read by name
    /// (each found). Returns the devices whose ref changed, sorted.
    pub(crate) fn update(
        &mut self,
        plan: Plan,
        listed: HashMap<DeviceId, RefRecord>,
        by_name: HashMap<DeviceId, RefRecord>,
    ) -> Vec<DeviceId> {
        let mut next: HashMap<DeviceId, Cached> = HashMap::new();
        let mut changed = Vec::new();
        let mut note = |dev: DeviceId, record: &RefRecord, old: Option<&Cached>| {
            if old.is_none_or(|c| c.record != *record) {
                changed.push(dev);
            }
        };
        for dev in plan.keep.keys() {
            if let Some(old) = self.refs.get(dev) {
                next.insert(*dev, old.clone());
            }
        }
        for (dev, fp) in plan.read_listed {
            let Some(record) = listed.get(&dev) else { continue };
            let old = self.refs.get(&dev);
            note(dev, record, old);
            // A fingerprint listed before keeps the time it was first
            // listed at, so a coarse one settles 2 s after that.
            let first_listed = match old {
                Some(c) if c.fingerprint.as_ref() == Some(&fp) => c.first_listed,
                _ => plan.listed_at,
            };
            let settled = fp.settled(first_listed, plan.listed_at);
            next.insert(
                dev,
                Cached {
                    record: record.clone(),
                    fingerprint: Some(fp),
                    first_listed,
                    settled,
                },
            );
        }
        for (dev, record) in by_name {
            note(dev, &record, self.refs.get(&dev));
            next.insert(dev, Cached::unlisted(record, plan.listed_at));
        }
        if plan.full {
            self.last_full = Some(plan.listed_at);
        }
        self.refs = next;
        changed.sort();
        changed
    }

    /// Notes this device's own ref, just written: its fingerprint is not
    /// known yet, so the next poll reads it once, and finds no change.
    pub(crate) fn wrote(&mut self, device: DeviceId, record: RefRecord) {
        self.refs.insert(device, Cached::unlisted(record, Instant::now()));
    }
}

impl Cached {
    fn unlisted(record: RefRecord, now: Instant) -> Self {
        Cached {
            record,
            fingerprint: None,
            first_listed: now,
            settled: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(modified: Option<u64>, etag: Option<&str>) -> Fingerprint {
        Fingerprint {
            size: 80,
            modified: modified.map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs(s)),
            etag: etag.map(str::to_string),
        }
    }

    #[test]
    fn a_strong_etag_is_settled_at_once() {
        let now = Instant::now();
        assert!(fp(Some(10), Some("\"abc\"")).settled(now, now));
        assert!(fp(None, Some("\"abc\"")).settled(now, now));
    }

    #[test]
    fn a_coarse_fingerprint_settles_only_when_this_devices_clock_moved_on() {
        let now = Instant::now();
        for coarse in [fp(Some(10), None), fp(Some(10), Some("W/\"50-6620c2c8816d9\""))] {
            assert!(!coarse.settled(now, now), "{coarse:?}: read right after the listing");
            assert!(
                !coarse.settled(now, now + Duration::from_millis(1999)),
                "{coarse:?}: within the margin"
            );
            assert!(
                coarse.settled(now, now + SETTLE),
                "{coarse:?}: read 2 s after first listed"
            );
        }
    }

    #[test]
    fn no_time_and_no_strong_etag_never_settles() {
        let now = Instant::now();
        let bare = fp(None, None);
        assert!(!bare.settled(now, now + Duration::from_secs(3600)));
    }

    fn info(dev: &DeviceId, size: u64, modified: Option<u64>, etag: Option<&str>) -> ObjectInfo {
        ObjectInfo {
            key: commit::ref_key(dev),
            size,
            modified: modified.map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs(s)),
            etag: etag.map(str::to_string),
        }
    }

    fn rec(seq: u64) -> RefRecord {
        RefRecord {
            commit: crate::id::Id::random(),
            seq,
            time: crate::tree::Timestamp::now(),
            gc_seen: Vec::new(),
        }
    }

    /// Runs a plan as the vault would, every read answered by `store`.
    fn poll(
        cache: &mut RefCache,
        listing: &[ObjectInfo],
        store: &HashMap<DeviceId, RefRecord>,
        now: Instant,
    ) -> (Vec<DeviceId>, Vec<DeviceId>) {
        let seen = cache.seen();
        let plan = cache.plan(listing, &seen, now).unwrap();
        let read: Vec<DeviceId> = plan.listed_to_read().collect();
        let listed = read.iter().map(|d| (*d, store[d].clone())).collect();
        let by_name = plan
            .read_by_name
            .iter()
            .filter_map(|d| store.get(d).map(|r| (*d, r.clone())))
            .collect();
        let changed = cache.update(plan, listed, by_name);
        (read, changed)
    }

    #[test]
    fn an_unchanged_strong_listing_reads_nothing_until_the_safety_net() {
        let (a, b) = (DeviceId::random(), DeviceId::random());
        let store = HashMap::from([(a, rec(1)), (b, rec(4))]);
        let listing = [
            info(&a, 80, Some(5), Some("\"1\"")),
            info(&b, 80, Some(6), Some("\"2\"")),
        ];
        let mut cache = RefCache::new();
        let t0 = Instant::now();
        let (read, mut changed) = poll(&mut cache, &listing, &store, t0);
        assert_eq!(read.len(), 2);
        changed.sort();
        let mut both = vec![a, b];
        both.sort();
        assert_eq!(changed, both);
        let (read, changed) = poll(&mut cache, &listing, &store, t0 + Duration::from_secs(1));
        assert!(read.is_empty() && changed.is_empty());
        let (read, changed) = poll(&mut cache, &listing, &store, t0 + FULL_READ_EVERY);
        assert_eq!(read.len(), 2, "the safety net reads every ref");
        assert!(changed.is_empty(), "same records: no change");
    }

    #[test]
    fn a_coarse_fingerprint_is_read_until_it_settles_then_not_again() {
        let a = DeviceId::random();
        let mut store = HashMap::from([(a, rec(1))]);
        let listing = [info(&a, 80, Some(10), None)];
        let mut cache = RefCache::new();
        let t0 = Instant::now();
        assert_eq!(poll(&mut cache, &listing, &store, t0).0, vec![a]);
        // A second write in the same second, same size: same fingerprint.
        store.insert(a, rec(2));
        let (read, changed) = poll(&mut cache, &listing, &store, t0 + Duration::from_millis(500));
        assert_eq!((read, changed), (vec![a], vec![a]), "the hidden write is found");
        let (read, _) = poll(&mut cache, &listing, &store, t0 + SETTLE);
        assert_eq!(read, vec![a], "this read settles it");
        let (read, _) = poll(&mut cache, &listing, &store, t0 + SETTLE + Duration::from_secs(5));
        assert!(read.is_empty(), "settled: idle polls read nothing");
    }

    /// On a folder shared over the network each writer stamps its own
    /// clock: a ref from a device whose clock runs ten minutes fast must
    /// not settle another device's coarse ref written in the same second
    /// as a hidden second write.
    #[test]
    fn another_refs_later_time_does_not_settle_a_coarse_fingerprint() {
        let (a, fast) = (DeviceId::random(), DeviceId::random());
        let mut store = HashMap::from([(a, rec(1)), (fast, rec(1))]);
        let listing = [info(&a, 80, Some(10), None), info(&fast, 80, Some(610), None)];
        let mut cache = RefCache::new();
        let t0 = Instant::now();
        poll(&mut cache, &listing, &store, t0);
        store.insert(a, rec(2));
        let (read, changed) = poll(&mut cache, &listing, &store, t0 + Duration::from_millis(500));
        assert!(read.contains(&a), "read again: {read:?}");
        assert_eq!(changed, vec![a], "the hidden write is found");
    }

    #[test]
    fn a_ref_known_but_unlisted_is_asked_for_by_name() {
        let (a, b) = (DeviceId::random(), DeviceId::random());
        let store = HashMap::from([(a, rec(1)), (b, rec(1))]);
        let mut cache = RefCache::new();
        let t0 = Instant::now();
        poll(
            &mut cache,
            &[
                info(&a, 80, Some(1), Some("\"1\"")),
                info(&b, 80, Some(1), Some("\"2\"")),
            ],
            &store,
            t0,
        );
        let seen = cache.seen();
        let plan = cache.plan(&[info(&a, 80, Some(1), Some("\"1\""))], &seen, t0).unwrap();
        assert_eq!(plan.read_by_name, vec![b]);
        assert_eq!(plan.listed_to_read().count(), 0);
    }

    #[test]
    fn a_cached_record_below_the_memory_is_read_again() {
        let a = DeviceId::random();
        let store = HashMap::from([(a, rec(1))]);
        let listing = [info(&a, 80, Some(1), Some("\"1\""))];
        let mut cache = RefCache::new();
        let t0 = Instant::now();
        poll(&mut cache, &listing, &store, t0);
        let plan = cache.plan(&listing, &HashMap::from([(a, 2)]), t0).unwrap();
        assert_eq!(plan.listed_to_read().collect::<Vec<_>>(), vec![a]);
    }

    #[test]
    fn a_key_that_is_not_a_device_id_is_refused() {
        let bad = ObjectInfo::new("refs/not-a-device", 80);
        let err = RefCache::new()
            .plan(&[bad], &HashMap::new(), Instant::now())
            .unwrap_err();
        assert!(matches!(err, VaultError::Corrupt { .. }), "{err}");
    }
}

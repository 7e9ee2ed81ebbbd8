//! Polling the refs (docs/SYNC.md §1.1) over the in-memory store, counted
//! by the fault-injecting wrapper: what a poll costs in requests, which
//! changes it reports, and that every ref it reads is held to the same
//! authenticity and rollback checks as `Vault::read_refs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use nimbus_backend::{
    Backend, BackendError, DynBackend, FaultConfig, FaultStats, FaultyBackend, MemoryBackend, ObjectInfo,
};
use nimbus_vault::{CommitId, DeviceId, Id, KdfParams, RefCache, Vault, VaultError, VaultParams};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Two views of one store: `other` writes other devices' refs straight to
/// it, `polling` reads through a counting wrapper.
struct Setup {
    mem: Arc<MemoryBackend>,
    counted: Arc<FaultyBackend<DynBackend>>,
    other: Vault,
    polling: Vault,
}

async fn setup() -> Setup {
    let mem = Arc::new(MemoryBackend::new());
    let (other, _) = Vault::create(mem.clone(), b"pw", VaultParams::default(), KdfParams::minimum())
        .await
        .unwrap();
    let counted = Arc::new(FaultyBackend::new(mem.clone() as DynBackend, FaultConfig::default()));
    let polling = Vault::open(counted.clone(), b"pw").await.unwrap();
    Setup {
        mem,
        counted,
        other,
        polling,
    }
}

/// A commit id for a ref to point at: refs are not checked against the
/// commits they name, so none is written.
fn some_commit() -> CommitId {
    Id::random()
}

/// Two other devices, each with a ref in the store.
async fn two_devices(s: &Setup) -> (DeviceId, DeviceId) {
    let (a, b) = (DeviceId::random(), DeviceId::random());
    s.other.write_ref(&a, some_commit(), 0).await.unwrap();
    s.other.write_ref(&b, some_commit(), 0).await.unwrap();
    (a, b)
}

fn ref_key(dev: &DeviceId) -> String {
    format!("refs/{}", dev.to_hex())
}

fn requests(s: &FaultStats) -> (u64, u64, u64, u64) {
    (s.lists, s.gets, s.stats, s.puts)
}

fn sorted(mut v: Vec<DeviceId>) -> Vec<DeviceId> {
    v.sort();
    v
}

#[test]
fn an_idle_poll_costs_one_listing_and_no_read() {
    rt().block_on(async {
        let s = setup().await;
        let (a, b) = two_devices(&s).await;
        let mut cache = RefCache::new();

        s.counted.reset_stats();
        let first = s.polling.poll_refs(&mut cache).await.unwrap();
        assert_eq!(
            requests(&s.counted.stats()),
            (1, 2, 0, 0),
            "a new cache reads every ref"
        );
        assert_eq!(first.changed, sorted(vec![a, b]));
        assert_eq!(first.reads, 2);

        for _ in 0..3 {
            s.counted.reset_stats();
            let idle = s.polling.poll_refs(&mut cache).await.unwrap();
            assert_eq!(requests(&s.counted.stats()), (1, 0, 0, 0), "one listing, nothing read");
            assert!(idle.changed.is_empty());
            assert_eq!(idle.reads, 0);
            assert_eq!(idle.refs, first.refs, "the refs come from the cache");
        }
    });
}

#[test]
fn one_changed_ref_costs_one_listing_and_one_read() {
    rt().block_on(async {
        let s = setup().await;
        let devs: Vec<DeviceId> = (0..4).map(|_| DeviceId::random()).collect();
        for d in &devs {
            s.other.write_ref(d, some_commit(), 0).await.unwrap();
        }
        let mut cache = RefCache::new();
        s.polling.poll_refs(&mut cache).await.unwrap();

        let moved = some_commit();
        s.other.write_ref(&devs[2], moved, 0).await.unwrap();
        s.counted.reset_stats();
        let poll = s.polling.poll_refs(&mut cache).await.unwrap();
        assert_eq!(requests(&s.counted.stats()), (1, 1, 0, 0));
        assert_eq!(poll.changed, vec![devs[2]]);
        assert_eq!(poll.refs.len(), 4);
        assert_eq!(poll.refs[&devs[2]].commit, moved);
        assert_eq!(poll.refs[&devs[2]].seq, 2);
        assert_eq!(cache.get(&devs[2]).unwrap().commit, moved);
        assert_eq!(
            s.polling.refs_seen()[&devs[2]],
            2,
            "the poll raised the memory of refs seen"
        );
    });
}

#[test]
fn a_new_device_is_reported() {
    rt().block_on(async {
        let s = setup().await;
        let a = DeviceId::random();
        s.other.write_ref(&a, some_commit(), 0).await.unwrap();
        let mut cache = RefCache::new();
        s.polling.poll_refs(&mut cache).await.unwrap();

        let newcomer = DeviceId::random();
        let head = some_commit();
        s.other.write_ref(&newcomer, head, 0).await.unwrap();
        s.counted.reset_stats();
        let poll = s.polling.poll_refs(&mut cache).await.unwrap();
        assert_eq!(requests(&s.counted.stats()), (1, 1, 0, 0));
        assert_eq!(poll.changed, vec![newcomer]);
        assert_eq!(poll.refs[&newcomer].commit, head);
        assert_eq!(poll.refs.len(), 2);
    });
}

#[test]
fn a_removed_ref_is_refused_as_read_refs_refuses_it() {
    rt().block_on(async {
        let s = setup().await;
        let (_, b) = two_devices(&s).await;
        let mut cache = RefCache::new();
        s.polling.poll_refs(&mut cache).await.unwrap();

        s.mem.delete(&ref_key(&b)).await.unwrap();
        s.counted.reset_stats();
        let err = s.polling.poll_refs(&mut cache).await.unwrap_err();
        assert!(
            matches!(&err, VaultError::Missing { object, .. } if *object == ref_key(&b)),
            "{err}"
        );
        assert!(err.to_string().contains("deleted from the store"), "{err}");
        // The listing lacked it, so it was asked for by name first: a
        // listing may only lag.
        assert_eq!(requests(&s.counted.stats()), (1, 1, 0, 0));
        assert_eq!(cache.len(), 2, "a refused poll leaves the cache as it was");
        assert!(
            s.polling.poll_refs(&mut cache).await.is_err(),
            "and the next poll refuses too"
        );
        // The cache alone remembers: a vault that never read the refs
        // itself still refuses.
        let fresh = Vault::open(s.mem.clone(), b"pw").await.unwrap();
        let err = fresh.poll_refs(&mut cache).await.unwrap_err();
        assert!(matches!(err, VaultError::Missing { .. }), "{err}");
        let plain = s.polling.read_refs().await.unwrap_err();
        assert!(
            matches!(plain, VaultError::Missing { .. }),
            "read_refs says the same: {plain}"
        );
    });
}

/// A store whose listing leaves out some keys, as a listing lagging
/// behind a write does; gets and stats still find them.
struct Lagging {
    inner: DynBackend,
    hidden: Mutex<HashSet<String>>,
}

#[async_trait::async_trait]
impl Backend for Lagging {
    async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<Bytes, BackendError> {
        self.inner.get(key, range).await
    }
    async fn put(&self, key: &str, data: Bytes) -> Result<(), BackendError> {
        self.inner.put(key, data).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, BackendError> {
        let hidden = self.hidden.lock().unwrap().clone();
        let all = self.inner.list(prefix).await?;
        Ok(all.into_iter().filter(|o| !hidden.contains(&o.key)).collect())
    }
    async fn delete(&self, key: &str) -> Result<(), BackendError> {
        self.inner.delete(key).await
    }
    async fn stat(&self, key: &str) -> Result<Option<ObjectInfo>, BackendError> {
        self.inner.stat(key).await
    }
    fn describe(&self) -> String {
        "lagging store".into()
    }
}

#[test]
fn a_ref_missing_from_a_lagging_listing_is_read_by_name() {
    rt().block_on(async {
        let s = setup().await;
        let (_, b) = two_devices(&s).await;
        let lagging = Arc::new(Lagging {
            inner: s.counted.clone(),
            hidden: Mutex::new(HashSet::new()),
        });
        let vault = Vault::open(lagging.clone(), b"pw").await.unwrap();
        let mut cache = RefCache::new();
        vault.poll_refs(&mut cache).await.unwrap();

        // `b` moves, and the listing does not show it for a while.
        let moved = some_commit();
        s.other.write_ref(&b, moved, 0).await.unwrap();
        lagging.hidden.lock().unwrap().insert(ref_key(&b));
        s.counted.reset_stats();
        let poll = vault.poll_refs(&mut cache).await.unwrap();
        assert_eq!(requests(&s.counted.stats()), (1, 1, 0, 0), "asked for by name");
        assert_eq!(poll.refs[&b].commit, moved);
        assert_eq!(poll.changed, vec![b]);

        // Listed again: read once more (the fingerprint was not known), no
        // change; then idle.
        lagging.hidden.lock().unwrap().clear();
        let poll = vault.poll_refs(&mut cache).await.unwrap();
        assert!(poll.changed.is_empty());
        s.counted.reset_stats();
        vault.poll_refs(&mut cache).await.unwrap();
        assert_eq!(requests(&s.counted.stats()), (1, 0, 0, 0));

        // A device remembered from an earlier run whose ref the store does
        // not have: refused, as `read_refs` refuses it.
        let ghost = DeviceId::random();
        vault.remember_refs_seen(&HashMap::from([(ghost, 4)]));
        let err = vault.poll_refs(&mut cache).await.unwrap_err();
        assert!(
            matches!(&err, VaultError::Missing { object, .. } if *object == ref_key(&ghost)),
            "{err}"
        );
    });
}

#[test]
fn a_tampered_ref_is_refused() {
    rt().block_on(async {
        let s = setup().await;
        let (a, b) = two_devices(&s).await;
        let mut cache = RefCache::new();
        s.polling.poll_refs(&mut cache).await.unwrap();

        // One bit flipped, same size.
        let mut bytes = s.mem.get(&ref_key(&a), None).await.unwrap().to_vec();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        s.mem.put(&ref_key(&a), Bytes::from(bytes)).await.unwrap();
        let err = s.polling.poll_refs(&mut cache).await.unwrap_err();
        assert!(
            matches!(&err, VaultError::Corrupt { object, .. } if *object == ref_key(&a)),
            "{err}"
        );

        // Another device's (authentic) ref copied under its name: the
        // device id is bound to the sealed record.
        let other_bytes = s.mem.get(&ref_key(&b), None).await.unwrap();
        s.mem.put(&ref_key(&a), other_bytes).await.unwrap();
        let err = s.polling.poll_refs(&mut cache).await.unwrap_err();
        assert!(
            matches!(&err, VaultError::Corrupt { object, .. } if *object == ref_key(&a)),
            "{err}"
        );

        // A new device whose ref is junk: refused on the first sight too.
        let junk = DeviceId::random();
        s.mem.put(&ref_key(&junk), Bytes::from_static(b"junk")).await.unwrap();
        let err = s.polling.poll_refs(&mut RefCache::new()).await.unwrap_err();
        assert!(matches!(err, VaultError::Corrupt { .. }), "{err}");
    });
}

#[test]
fn a_rolled_back_ref_is_refused_as_read_refs_refuses_it() {
    rt().block_on(async {
        let s = setup().await;
        let a = DeviceId::random();
        s.other.write_ref(&a, some_commit(), 0).await.unwrap();
        let old = s.mem.get(&ref_key(&a), None).await.unwrap();
        let newer = some_commit();
        s.other.write_ref(&a, newer, 0).await.unwrap();
        let current = s.mem.get(&ref_key(&a), None).await.unwrap();
        let mut cache = RefCache::new();
        assert_eq!(s.polling.poll_refs(&mut cache).await.unwrap().refs[&a].seq, 2);

        // The store puts the older ref object back: a new fingerprint, so it
        // is read, and its update number went back.
        s.mem.put(&ref_key(&a), old.clone()).await.unwrap();
        let err = s.polling.poll_refs(&mut cache).await.unwrap_err();
        assert!(
            matches!(&err, VaultError::Corrupt { object, .. } if *object == ref_key(&a)),
            "{err}"
        );
        assert!(err.to_string().contains("went back in time"), "{err}");
        let plain = s.polling.read_refs().await.unwrap_err();
        assert_eq!(plain.to_string(), err.to_string(), "the same refusal as read_refs");
        assert_eq!(cache.get(&a).unwrap().commit, newer, "the cache kept the newer ref");

        // After a restart, with only the memory of refs seen (the cache is
        // in memory only): still refused.
        let restarted = Vault::open(s.mem.clone(), b"pw").await.unwrap();
        restarted.remember_refs_seen(&s.polling.refs_seen());
        let err = restarted.poll_refs(&mut RefCache::new()).await.unwrap_err();
        assert!(err.to_string().contains("went back in time"), "{err}");

        // Honest again: accepted, and no change to report.
        s.mem.put(&ref_key(&a), current).await.unwrap();
        let poll = s.polling.poll_refs(&mut cache).await.unwrap();
        assert_eq!(poll.refs[&a].seq, 2);
        assert!(poll.changed.is_empty());
    });
}

#[test]
fn write_ref_with_rechecks_through_the_cache() {
    rt().block_on(async {
        let s = setup().await;
        let (me, b) = (DeviceId::random(), DeviceId::random());
        s.other.write_ref(&b, some_commit(), 0).await.unwrap();
        let mut cache = RefCache::new();
        s.polling.poll_refs(&mut cache).await.unwrap();

        // Publishing after a poll: the re-check costs one listing.
        s.counted.reset_stats();
        let c1 = some_commit();
        assert_eq!(s.polling.write_ref_with(&me, c1, 0, &mut cache).await.unwrap().seq, 1);
        assert_eq!(requests(&s.counted.stats()), (1, 0, 0, 1));
        assert_eq!(cache.get(&me).unwrap().commit, c1);

        // Its own new ref is read once (its fingerprint was not known), and
        // is no change.
        s.counted.reset_stats();
        let poll = s.polling.poll_refs(&mut cache).await.unwrap();
        assert_eq!(requests(&s.counted.stats()), (1, 1, 0, 0));
        assert!(poll.changed.is_empty(), "{:?}", poll.changed);
        s.counted.reset_stats();
        s.polling.poll_refs(&mut cache).await.unwrap();
        assert_eq!(requests(&s.counted.stats()), (1, 0, 0, 0));

        // The store replays this device's older ref right before the next
        // publish: nothing is published.
        let old = s.mem.get(&ref_key(&me), None).await.unwrap();
        assert_eq!(
            s.polling
                .write_ref_with(&me, some_commit(), 0, &mut cache)
                .await
                .unwrap()
                .seq,
            2
        );
        let stored = s.mem.get(&ref_key(&me), None).await.unwrap();
        s.mem.put(&ref_key(&me), old).await.unwrap();
        let err = s
            .polling
            .write_ref_with(&me, some_commit(), 0, &mut cache)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("went back in time"), "{err}");
        assert_ne!(
            s.mem.get(&ref_key(&me), None).await.unwrap(),
            stored,
            "the replayed bytes stay"
        );
        s.mem.put(&ref_key(&me), stored).await.unwrap();
        assert_eq!(
            s.polling
                .write_ref_with(&me, some_commit(), 0, &mut cache)
                .await
                .unwrap()
                .seq,
            3
        );

        // Without a cache, `write_ref` reads every ref as before.
        s.counted.reset_stats();
        s.polling.write_ref(&me, some_commit(), 0).await.unwrap();
        assert_eq!(requests(&s.counted.stats()), (1, 2, 0, 1));
    });
}

#[test]
fn write_ref_with_reports_the_refs_that_moved_just_before_it() {
    rt().block_on(async {
        let s = setup().await;
        let me = DeviceId::random();
        let (a, b) = two_devices(&s).await;
        let mut cache = RefCache::new();
        s.polling.poll_refs(&mut cache).await.unwrap();

        // `b` moves between the caller's poll and its publish.
        let moved = some_commit();
        s.other.write_ref(&b, moved, 0).await.unwrap();
        let published = s
            .polling
            .write_ref_with(&me, some_commit(), 0, &mut cache)
            .await
            .unwrap();
        assert_eq!(published.seq, 1);
        assert_eq!(published.poll.changed, vec![b], "the moved head is reported");
        assert_eq!(published.poll.refs[&b].commit, moved);
        assert!(published.poll.refs.contains_key(&a));

        // The cache moved on: the next poll has nothing new, so the publish's
        // poll was the only place the move could be seen.
        let next = s.polling.poll_refs(&mut cache).await.unwrap();
        assert!(next.changed.is_empty(), "{:?}", next.changed);

        // Nothing moved: nothing reported.
        let again = s
            .polling
            .write_ref_with(&me, some_commit(), 0, &mut cache)
            .await
            .unwrap();
        assert!(again.poll.changed.is_empty(), "{:?}", again.poll.changed);
    });
}

#[test]
fn commit_store_time_is_the_stores_time_from_one_stat() {
    rt().block_on(async {
        let s = setup().await;
        let id = some_commit();
        let key = format!("commits/{}", id.to_hex());
        // The stat reads no content, so any bytes stand for the commit.
        s.mem.put(&key, Bytes::from_static(b"sealed commit")).await.unwrap();
        let expected = s.mem.stat(&key).await.unwrap().unwrap().modified;
        assert!(expected.is_some(), "the memory store stamps every write");

        s.counted.reset_stats();
        assert_eq!(s.polling.commit_store_time(&id).await.unwrap(), expected);
        assert_eq!(requests(&s.counted.stats()), (0, 0, 1, 0));

        // A later commit reached the store later.
        let later = some_commit();
        s.mem
            .put(&format!("commits/{}", later.to_hex()), Bytes::from_static(b"x"))
            .await
            .unwrap();
        assert!(s.polling.commit_store_time(&later).await.unwrap() > expected);

        let err = s.polling.commit_store_time(&some_commit()).await.unwrap_err();
        assert!(matches!(err, VaultError::Missing { .. }), "{err}");

        // A store that keeps no times says so with `None`.
        let timeless = Arc::new(MemoryBackend::new());
        let (v, _) = Vault::create(
            Arc::new(timeless.as_ref().clone().into_inner()),
            b"pw",
            VaultParams::default(),
            KdfParams::minimum(),
        )
        .await
        .unwrap();
        timeless
            .as_ref()
            .clone()
            .into_inner()
            .put(&key, Bytes::from_static(b"c"))
            .await
            .unwrap();
        assert_eq!(v.commit_store_time(&id).await.unwrap(), None);
    });
}

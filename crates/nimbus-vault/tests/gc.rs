//! Prune without a lock (docs/PRUNE.md) over the in-memory store, whose
//! clock the tests move forward: what a mark condemns and repacks, the
//! sweep's three rules (grace on the store's clock, every active device's
//! acknowledgement, a fresh re-check of reachability), the rescue a
//! publish makes of data it reused before it knew a plan, two pruners at
//! once, and a sweep that resumes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeSet, HashSet};
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use nimbus_backend::{Backend, BackendError, DynBackend, MemoryBackend, ObjectInfo};
use nimbus_vault::gc::mark::{Forget, MarkOptions};
use nimbus_vault::gc::sweep::{SweepOptions, Waiting};
use nimbus_vault::gc::{self, PruneTimes};
use nimbus_vault::{
    BlobKind, CommitId, DeviceId, Entry, EntryKind, KdfParams, NewCommit, RefCache, Saver, Timestamp, Tree, Vault,
    VaultError, VaultParams,
};

mod common;
use common::{golden_in_memory, rt, GOLDEN_PASSWORD};

const HOUR: Duration = Duration::from_secs(3600);

fn times() -> PruneTimes {
    PruneTimes {
        young: HOUR,
        grace: 2 * HOUR,
        dormant: 7 * 24 * HOUR,
        publish_window: Duration::from_secs(600),
    }
}

fn mark_opts(forget: Forget) -> MarkOptions {
    MarkOptions {
        times: times(),
        forget,
        ..MarkOptions::default()
    }
}

async fn new_vault(mem: &Arc<MemoryBackend>) -> Vault {
    let (v, _) = Vault::create(mem.clone(), b"pw", VaultParams::default(), KdfParams::minimum())
        .await
        .unwrap();
    v
}

async fn open(backend: DynBackend) -> Vault {
    Vault::open(backend, b"pw").await.unwrap()
}

/// Saves a snapshot of flat files on top of `parent` and returns its id
/// (the ref is not moved).
async fn snapshot(vault: &Vault, device: DeviceId, files: &[(&str, &[u8])], parent: Option<CommitId>) -> CommitId {
    let saver = Saver::new(vault);
    let mut tree = Tree::default();
    for (name, data) in files {
        let id = saver.save_blob(BlobKind::Data, data.to_vec()).await.unwrap();
        let mut e = Entry::new_dir(name.as_bytes().to_vec(), Timestamp::now());
        e.kind = EntryKind::File;
        e.mode = 0o644;
        e.size = data.len() as u64;
        e.content = vec![id];
        tree.entries.push(e);
    }
    tree.sort();
    let root = saver.save_blob(BlobKind::Tree, tree.encode()).await.unwrap();
    let stats = saver.finish().await.unwrap();
    let (id, _) = vault
        .write_commit(NewCommit {
            root,
            parents: parent.into_iter().collect(),
            device,
            device_name: "test".into(),
            time: Timestamp::now(),
            message: "test".into(),
            files: files.len() as u64,
            bytes: 0,
            indexes: stats.indexes,
        })
        .await
        .unwrap();
    id
}

/// Reads one file of a snapshot.
async fn read_file(vault: &Vault, commit: &CommitId, name: &str) -> Result<Vec<u8>, VaultError> {
    let c = vault.read_commit(commit).await?;
    let tree = vault.read_tree(&c.root).await?;
    let e = tree
        .entries
        .iter()
        .find(|e| e.name == name.as_bytes())
        .expect("no such file");
    let mut out = Vec::new();
    for b in &e.content {
        out.extend(vault.read_blob(BlobKind::Data, b).await?);
    }
    Ok(out)
}

async fn keys(mem: &MemoryBackend, prefix: &str) -> BTreeSet<String> {
    mem.list(prefix).await.unwrap().into_iter().map(|o| o.key).collect()
}

/// Incompressible bytes, so pack sizes mean something.
fn data(seed: u8, len: usize) -> Vec<u8> {
    common::random_bytes(u64::from(seed) + 1, len)
}

async fn ack(vault: &Vault, device: &DeviceId) {
    let mut cache = RefCache::new();
    let poll = vault.poll_refs(&mut cache).await.unwrap();
    let own = poll.refs.get(device).cloned();
    vault
        .acknowledge_plans(device, 0, &mut cache, &poll.gc_pending, own.as_ref())
        .await
        .unwrap();
}

/// A device edits a big file away, forgets the old snapshot, and gets the
/// space back only after the grace period on the store's clock and its own
/// acknowledgement; what the kept snapshot needs still reads.
#[test]
fn forgetting_a_snapshot_frees_its_data_after_the_grace_period_and_the_acks() {
    rt().block_on(async {
        let mem = Arc::new(MemoryBackend::new());
        let vault = new_vault(&mem).await;
        let dev = DeviceId::random();
        let big = data(1, 300_000);
        let small = data(2, 1000);
        let s1 = snapshot(&vault, dev, &[("big", &big), ("small", &small)], None).await;
        let s2 = snapshot(&vault, dev, &[("small", &small)], Some(s1)).await;
        vault.write_ref(&dev, s2, 0).await.unwrap();
        // A reader that opened the vault before the prune and never polls.
        let stale = open(mem.clone()).await;
        mem.advance_clock(2 * HOUR);

        let pruner = DeviceId::random();
        let marked = gc::mark(&vault, &pruner, &mark_opts(Forget::These(HashSet::from([s1, s2]))))
            .await
            .unwrap();
        assert_eq!(marked.forgotten, 1, "the head is never forgotten: {marked:?}");
        assert_eq!(marked.repacked_packs, 1, "s1's pack holds the live `small`: {marked:?}");
        let plan = marked.plan.expect("a plan");
        assert!(keys(&mem, "refs/gc/").await.contains(&format!("refs/gc/{plan}")));
        let packs_before = keys(&mem, "packs/").await;

        let sweep_opts = SweepOptions::new(times());
        let early = gc::sweep(&vault, &pruner, &sweep_opts).await.unwrap();
        assert!(
            matches!(early.waiting[..], [(p, Waiting::Grace(_))] if p == plan),
            "{early:?}"
        );
        mem.advance_clock(2 * HOUR);
        let unacked = gc::sweep(&vault, &pruner, &sweep_opts).await.unwrap();
        assert_eq!(unacked.waiting, vec![(plan, Waiting::Devices(vec![dev]))]);
        assert_eq!(
            keys(&mem, "packs/").await,
            packs_before,
            "nothing deleted before the ack"
        );

        ack(&vault, &dev).await;
        let done = gc::sweep(&vault, &pruner, &sweep_opts).await.unwrap();
        assert_eq!(done.done, vec![plan], "{done:?}");
        assert_eq!((done.deleted_packs, done.deleted_commits, done.kept_packs), (1, 1, 0));
        assert!(done.freed_bytes > 300_000, "{done:?}");
        assert!(!keys(&mem, "commits/").await.contains(&format!("commits/{s1}")));
        assert!(keys(&mem, "refs/gc/").await.contains(&format!("refs/gc/{plan}.done")));
        assert!(!keys(&mem, "refs/gc/").await.contains(&format!("refs/gc/{plan}")));

        // S5: the stale reader finds `small`'s old pack gone, reads the
        // prune's records and the index again, and reads the copy.
        assert_eq!(read_file(&stale, &s2, "small").await.unwrap(), small);
        // A device opening the vault afresh reads the kept snapshot whole.
        let fresh = open(mem.clone()).await;
        assert_eq!(read_file(&fresh, &s2, "small").await.unwrap(), small);
        assert!(fresh.is_forgotten(&s1));
        let report = nimbus_vault::check::check(&fresh, false, &|_| {}).await.unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
    });
}

/// S2: a device that deduplicated against a pack before it knew the plan
/// condemning it copies the blob out before it publishes, so the sweep
/// deletes the pack and the new snapshot still reads.
#[test]
fn a_save_that_reused_condemned_data_copies_it_out_before_publishing() {
    rt().block_on(async {
        let mem = Arc::new(MemoryBackend::new());
        let vault = new_vault(&mem).await;
        let (a, c) = (DeviceId::random(), DeviceId::random());
        let photo = data(3, 200_000);
        let s1 = snapshot(&vault, a, &[("photo", &photo)], None).await;
        let s2 = snapshot(&vault, a, &[], Some(s1)).await;
        vault.write_ref(&a, s2, 0).await.unwrap();
        // Device C opened the vault before the prune and saves the same
        // photo again: deduplicated against s1's pack.
        let late = open(mem.clone()).await;
        mem.advance_clock(2 * HOUR);
        let plan = gc::mark(&vault, &a, &mark_opts(Forget::These(HashSet::from([s1]))))
            .await
            .unwrap()
            .plan
            .unwrap();
        let s3 = snapshot(&late, c, &[("photo", &photo)], None).await;
        let mut cache = RefCache::new();
        let published = late.write_ref_with(&c, s3, 0, &mut cache).await.unwrap();
        assert_eq!(published.rescue.blobs, 1, "{published:?}");
        assert_eq!(published.rescue.lost, 0);
        assert!(
            cache.get(&c).unwrap().gc_seen.contains(&plan),
            "the ref acknowledges the plan"
        );

        mem.advance_clock(3 * HOUR);
        ack(&vault, &a).await;
        let done = gc::sweep(&vault, &a, &SweepOptions::new(times())).await.unwrap();
        assert_eq!(
            (done.done.len(), done.deleted_packs, done.kept_packs),
            (1, 1, 0),
            "{done:?}"
        );
        let fresh = open(mem.clone()).await;
        assert_eq!(read_file(&fresh, &s3, "photo").await.unwrap(), photo);
    });
}

/// A store view that hides prune's objects from listings: a device that
/// has not seen the plan yet (a listing that lags).
struct HidesPlans(Arc<MemoryBackend>);

#[async_trait]
impl Backend for HidesPlans {
    async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<Bytes, BackendError> {
        self.0.get(key, range).await
    }
    async fn put(&self, key: &str, data: Bytes) -> Result<(), BackendError> {
        self.0.put(key, data).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, BackendError> {
        let all = self.0.list(prefix).await?;
        Ok(all.into_iter().filter(|o| !o.key.starts_with("refs/gc/")).collect())
    }
    async fn delete(&self, key: &str) -> Result<(), BackendError> {
        self.0.delete(key).await
    }
    async fn stat(&self, key: &str) -> Result<Option<ObjectInfo>, BackendError> {
        self.0.stat(key).await
    }
    fn describe(&self) -> String {
        "a store that hides plans".into()
    }
}

/// Rule (c): a condemned pack that a ref published without knowing the
/// plan still needs is kept by the sweep, even one told not to wait.
#[test]
fn the_sweep_keeps_a_condemned_pack_that_a_ref_needs_again() {
    rt().block_on(async {
        let mem = Arc::new(MemoryBackend::new());
        let vault = new_vault(&mem).await;
        let (a, blind) = (DeviceId::random(), DeviceId::random());
        let doc = data(4, 50_000);
        let s1 = snapshot(&vault, a, &[("doc", &doc)], None).await;
        let s2 = snapshot(&vault, a, &[], Some(s1)).await;
        vault.write_ref(&a, s2, 0).await.unwrap();
        mem.advance_clock(2 * HOUR);
        gc::mark(&vault, &a, &mark_opts(Forget::These(HashSet::from([s1]))))
            .await
            .unwrap()
            .plan
            .unwrap();
        let unaware = open(Arc::new(HidesPlans(mem.clone()))).await;
        let s3 = snapshot(&unaware, blind, &[("doc", &doc)], None).await;
        let published = unaware.write_ref(&blind, s3, 0).await.unwrap();
        assert!(published > 0);

        let now = SweepOptions {
            now: true,
            ..SweepOptions::new(times())
        };
        let done = gc::sweep(&vault, &a, &now).await.unwrap();
        assert_eq!((done.deleted_packs, done.kept_packs), (0, 1), "{done:?}");
        let fresh = open(mem.clone()).await;
        assert_eq!(read_file(&fresh, &s3, "doc").await.unwrap(), doc);
    });
}

/// Two devices mark at once and sweep in turn: the union of their plans
/// deletes each unused pack once and nothing a snapshot needs.
#[test]
fn two_pruners_at_once_lose_nothing() {
    rt().block_on(async {
        let mem = Arc::new(MemoryBackend::new());
        let vault = new_vault(&mem).await;
        let (a, b) = (DeviceId::random(), DeviceId::random());
        let keep = data(5, 40_000);
        let mut parent = None;
        let mut old = Vec::new();
        for i in 0..4u8 {
            let gone = data(10 + i, 60_000);
            let s = snapshot(&vault, a, &[("keep", &keep), ("gone", &gone)], parent).await;
            old.push(s);
            parent = Some(s);
        }
        let head = snapshot(&vault, a, &[("keep", &keep)], parent).await;
        vault.write_ref(&a, head, 0).await.unwrap();
        let other = open(mem.clone()).await;
        other.write_ref(&b, head, 0).await.unwrap();
        mem.advance_clock(2 * HOUR);

        // Neither pruner sees the other's plan while it marks.
        let forget: HashSet<CommitId> = old.iter().copied().collect();
        let opts = mark_opts(Forget::These(forget));
        let blind_a = open(Arc::new(HidesPlans(mem.clone()))).await;
        let blind_b = open(Arc::new(HidesPlans(mem.clone()))).await;
        let (p1, p2) = tokio::join!(gc::mark(&blind_a, &a, &opts), gc::mark(&blind_b, &b, &opts));
        let (p1, p2) = (p1.unwrap(), p2.unwrap());
        assert!(p1.plan.is_some() && p2.plan.is_some(), "{p1:?} {p2:?}");

        mem.advance_clock(3 * HOUR);
        ack(&vault, &a).await;
        ack(&other, &b).await;
        let s1 = gc::sweep(&vault, &a, &SweepOptions::new(times())).await.unwrap();
        let s2 = gc::sweep(&other, &b, &SweepOptions::new(times())).await.unwrap();
        assert_eq!(s1.done.len() + s2.done.len(), 2, "{s1:?} {s2:?}");
        assert!(s1.freed_bytes + s2.freed_bytes >= 4 * 60_000);
        let fresh = open(mem.clone()).await;
        assert_eq!(read_file(&fresh, &head, "keep").await.unwrap(), keep);
        let report = nimbus_vault::check::check(&fresh, false, &|_| {}).await.unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
    });
}

/// A sweep that crashed after deleting some packs leaves its plan; the
/// next sweep finishes it (a pack already gone counts as deleted).
#[test]
fn a_sweep_cut_short_is_finished_by_the_next() {
    rt().block_on(async {
        let mem = Arc::new(MemoryBackend::new());
        let vault = new_vault(&mem).await;
        let a = DeviceId::random();
        let s1 = snapshot(&vault, a, &[("x", &data(6, 30_000))], None).await;
        let s2 = snapshot(&vault, a, &[("y", &data(7, 30_000))], Some(s1)).await;
        let s3 = snapshot(&vault, a, &[], Some(s2)).await;
        vault.write_ref(&a, s3, 0).await.unwrap();
        mem.advance_clock(2 * HOUR);
        let marked = gc::mark(&vault, &a, &mark_opts(Forget::These(HashSet::from([s1, s2]))))
            .await
            .unwrap();
        assert_eq!(marked.condemned_packs, 2, "{marked:?}");
        // The crash: one condemned pack deleted, nothing else.
        let plan = vault.known_plans().pop().unwrap();
        let first = plan.plan.condemned[0].id;
        mem.delete(&nimbus_vault::pack::pack_key(&first)).await.unwrap();

        mem.advance_clock(3 * HOUR);
        ack(&vault, &a).await;
        let done = gc::sweep(&vault, &a, &SweepOptions::new(times())).await.unwrap();
        assert_eq!((done.done.len(), done.deleted_packs), (1, 2), "{done:?}");
        let fresh = open(mem.clone()).await;
        let report = nimbus_vault::check::check(&fresh, false, &|_| {}).await.unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
    });
}

/// Packs younger than `young` are never condemned: they may belong to a
/// save that has not published its ref yet.
#[test]
fn young_packs_are_left_alone() {
    rt().block_on(async {
        let mem = Arc::new(MemoryBackend::new());
        let vault = new_vault(&mem).await;
        let a = DeviceId::random();
        // A save whose packs and index are stored but whose commit and
        // ref are not, yet.
        let saver = Saver::new(&vault);
        saver.save_blob(BlobKind::Data, data(8, 10_000)).await.unwrap();
        saver.finish().await.unwrap();
        let marked = gc::mark(&vault, &a, &mark_opts(Forget::Nothing)).await.unwrap();
        assert_eq!((marked.condemned_packs, marked.young_packs), (0, 1), "{marked:?}");
        assert!(marked.plan.is_none());
        mem.advance_clock(2 * HOUR);
        let later = gc::mark(&vault, &a, &mark_opts(Forget::Nothing)).await.unwrap();
        assert_eq!(later.condemned_packs, 1, "{later:?}");
    });
}

/// Prune refuses to decide anything while an index object is damaged
/// (its packs would look unused) and in a vault older than version 4.
#[test]
fn prune_refuses_a_damaged_index_and_an_old_vault() {
    rt().block_on(async {
        let mem = Arc::new(MemoryBackend::new());
        let vault = new_vault(&mem).await;
        let a = DeviceId::random();
        let s1 = snapshot(&vault, a, &[("f", &data(9, 1000))], None).await;
        vault.write_ref(&a, s1, 0).await.unwrap();
        let ix = keys(&mem, "index/").await.into_iter().next().unwrap();
        mem.put(&ix, Bytes::from_static(b"garbage")).await.unwrap();
        let damaged = open(mem.clone()).await;
        let err = gc::mark(&damaged, &a, &mark_opts(Forget::Nothing)).await.unwrap_err();
        assert!(err.to_string().contains("check --repair"), "{err}");

        let old = Vault::open(golden_in_memory("vault-v3").await, GOLDEN_PASSWORD)
            .await
            .unwrap();
        let err = gc::mark(&old, &a, &mark_opts(Forget::Nothing)).await.unwrap_err();
        assert!(err.to_string().contains("nimbus upgrade"), "{err}");
    });
}

#[test]
fn prune_times_below_the_floors_are_refused() {
    let short = PruneTimes {
        grace: Duration::from_secs(60),
        publish_window: Duration::from_secs(10),
        ..PruneTimes::default()
    };
    assert!(short.checked(false).is_err());
    assert!(short.checked(true).is_ok(), "a test may shorten them");
    assert!(PruneTimes::default().checked(false).is_ok());
    let window_too_long = PruneTimes {
        publish_window: 13 * HOUR,
        ..PruneTimes::default()
    };
    assert!(window_too_long.checked(true).is_err());
}

/// The golden version 4 vault: a finished prune forgot its first snapshot;
/// the done record says so, a device's ref names the plan, and every
/// remaining snapshot reads.
#[test]
fn the_golden_version_4_vault_holds_a_finished_prune() {
    rt().block_on(async {
        let mem = golden_in_memory("vault-v4").await;
        let vault = Vault::open(mem.clone(), GOLDEN_PASSWORD).await.unwrap();
        assert_eq!(vault.config().version(), 4);
        assert!(vault.known_plans().is_empty(), "the plan is done");
        let done: Vec<String> = keys(&mem, "refs/gc/").await.into_iter().collect();
        assert_eq!(done.len(), 1, "{done:?}");
        let plan = nimbus_vault::Id::from_hex(done[0].strip_prefix("refs/gc/").unwrap().strip_suffix(".done").unwrap())
            .unwrap();
        let refs = vault.read_refs().await.unwrap();
        assert_eq!(refs.len(), 2);
        assert!(refs.values().any(|r| r.gc_seen == vec![plan]), "{refs:?}");
        let scan = vault.scan_commits().await.unwrap();
        assert_eq!(scan.commits.len(), 2);
        let forgotten = scan.commits[0].1.parents[0];
        assert!(vault.is_forgotten(&forgotten));
        let report = nimbus_vault::check::check(&vault, true, &|_| {}).await.unwrap();
        assert!(report.problems.is_empty() && report.warnings.is_empty(), "{report:?}");
        assert_eq!(report.pruned_history, 1);
    });
}

/// Found by the simulation (docs/SYNC.md §6.2): a device that slept
/// through a whole prune (dormant, so the sweep did not wait for it) and
/// saves on waking with its old index reuses data the sweep deleted. Its
/// publish learns the done record but, with no plan pending any more,
/// used to skip the re-check and name data that is gone; it must fail
/// instead (the changes stay on the device and are uploaded again).
#[test]
fn a_save_that_reused_data_a_finished_prune_deleted_does_not_publish() {
    rt().block_on(async {
        let mem = Arc::new(MemoryBackend::new());
        let vault = new_vault(&mem).await;
        let (a, sleeper_id) = (DeviceId::random(), DeviceId::random());
        let old = data(20, 50_000);
        let s1 = snapshot(&vault, a, &[("old", &old)], None).await;
        let s2 = snapshot(&vault, a, &[], Some(s1)).await;
        vault.write_ref(&a, s2, 0).await.unwrap();
        // Opened before the prune; knows `old`'s pack, and sleeps.
        let sleeper = open(mem.clone()).await;
        mem.advance_clock(2 * HOUR);
        let pruner = DeviceId::random();
        let marked = gc::mark(&vault, &pruner, &mark_opts(Forget::These(HashSet::from([s1]))))
            .await
            .unwrap();
        assert!(marked.plan.is_some() && marked.condemned_packs >= 1, "{marked:?}");
        mem.advance_clock(3 * HOUR);
        ack(&vault, &a).await;
        let swept = gc::sweep(&vault, &pruner, &SweepOptions::new(times())).await.unwrap();
        assert_eq!((swept.done.len(), swept.kept_packs), (1, 0), "{swept:?}");

        // Wakes, saves `old` again (deduplicated against the deleted
        // pack), and publishes.
        let s3 = snapshot(&sleeper, sleeper_id, &[("old", &old)], None).await;
        let res = sleeper.write_ref_with(&sleeper_id, s3, 0, &mut RefCache::new()).await;
        assert!(
            matches!(res, Err(VaultError::Missing { .. })),
            "{:?}",
            res.map(|p| p.rescue)
        );
        let refs = open(mem.clone()).await.read_refs().await.unwrap();
        assert!(!refs.contains_key(&sleeper_id), "no ref names data that is gone");
    });
}

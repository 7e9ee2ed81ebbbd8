//! The sync loop (docs/SYNC.md §4.1, §1.3, §4.2) with two drives, each
//! with its own device id and state folder, on one vault in memory: a
//! device takes in the other's new snapshot within a few polls (and,
//! paused, shows it waiting), an idle
//! poll costs one listing, the interval backs off while the store is down,
//! pausing polls without committing, `sync_now` answers for its commit,
//! the loop ends with the drive, and a publish that failed halfway (the
//! ref written although the store reported an error) is finished, never
//! committed twice.

#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod two_drives;
use two_drives::*;

use nimbus_backend::{DynBackend, FaultConfig, FaultyBackend, MemoryBackend};
use nimbus_fs::{Ctx, ErrorKind, Fs, FsOptions, ROOT};
use nimbus_vault::{DeviceId, Vault};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

fn counted(mem: &Arc<MemoryBackend>) -> Arc<FaultyBackend<DynBackend>> {
    Arc::new(FaultyBackend::new(mem.clone() as DynBackend, FaultConfig::default()))
}

/// The drive of `device` over `backend`, committing only when asked,
/// polling every [`POLL`].
fn load(
    rt: &tokio::runtime::Runtime,
    backend: DynBackend,
    state: &Path,
    device: DeviceId,
) -> nimbus_fs::Result<Arc<Fs>> {
    let vault = rt.block_on(Vault::open(backend, b"pw")).unwrap();
    let mut opts = FsOptions::new(state.to_path_buf(), device);
    opts.commit_delay = Duration::from_secs(3600);
    opts.poll = Some(POLL);
    Fs::load(vault, rt.handle().clone(), opts)
}

fn write(fs: &Fs, name: &str, data: &[u8]) {
    let (_, fh) = fs.create(Ctx::ROOT, ROOT, name.as_bytes(), 0o644).unwrap();
    fs.write(fh, 0, data).unwrap();
    fs.release(fh).unwrap();
}

/// Waits for `n` more successful polls of `fs`.
fn polls(fs: &Fs, n: u64) {
    let from = fs.sync_state().polls;
    wait_for("the drive polled", || fs.sync_state().polls >= from + n);
}

fn read(fs: &Fs, name: &str) -> Option<Vec<u8>> {
    let fh = fs.open(fs.lookup(ROOT, name.as_bytes()).ok()?.ino, false).ok()?;
    let data = fs.read(fh, 0, 1 << 20).unwrap();
    fs.release(fh).unwrap();
    Some(data)
}

#[test]
fn a_device_notices_the_others_new_snapshot_within_a_few_polls() {
    let rt = rt();
    let tmp = tempfile::tempdir().unwrap();
    let mem = new_store(&rt);
    let (da, db) = (DeviceId::random(), DeviceId::random());
    let a = load(&rt, mem.clone(), &tmp.path().join("a"), da).unwrap();
    write(&a, "one", b"1");
    a.sync_now().unwrap();
    let b = load(&rt, mem.clone(), &tmp.path().join("b"), db).unwrap();
    polls(&b, 2);
    assert!(b.sync_state().waiting.is_empty(), "the same head: {:?}", b.sync_state());

    // B commits on A's head: A's ref is behind B's head, no news for B;
    // A is behind B's, and with nothing pending takes it in (a
    // fast-forward) within a few polls.
    write(&b, "two", b"2");
    b.sync_now().unwrap();
    wait_for("a takes in b's snapshot", || read(&a, "two").as_deref() == Some(b"2"));
    polls(&a, 2);
    assert!(a.sync_state().waiting.is_empty(), "{:?}", a.sync_state());
    assert_eq!(a.sync_state().failures, 0);
    polls(&b, 3);
    assert!(
        b.sync_state().waiting.is_empty(),
        "an ancestor is news: {:?}",
        b.sync_state()
    );

    // Paused, A shows B's next snapshot as ahead, waiting, and does not
    // take it in until it resumes.
    a.set_paused(true);
    write(&b, "three", b"3");
    b.sync_now().unwrap();
    wait_for("a sees b's snapshot ahead", || {
        a.sync_state().waiting.iter().any(|h| h.device == db && h.ahead)
    });
    assert_eq!(a.sync_state().waiting.len(), 1, "{:?}", a.sync_state());
    polls(&a, 3);
    assert_eq!(read(&a, "three"), None, "taken in while paused");
    a.set_paused(false);
    wait_for("a takes it in once resumed", || {
        read(&a, "three").as_deref() == Some(b"3")
    });
    polls(&a, 2);
    assert!(a.sync_state().waiting.is_empty(), "{:?}", a.sync_state());
    a.shutdown().unwrap();
    b.shutdown().unwrap();
}

#[test]
fn an_idle_poll_costs_one_listing_and_no_read() {
    let rt = rt();
    let tmp = tempfile::tempdir().unwrap();
    let mem = new_store(&rt);
    let a = load(&rt, mem.clone(), &tmp.path().join("a"), DeviceId::random()).unwrap();
    write(&a, "one", b"1");
    a.sync_now().unwrap();
    let store = counted(&mem);
    let b = load(&rt, store.clone(), &tmp.path().join("b"), DeviceId::random()).unwrap();
    polls(&b, 3);
    store.reset_stats();
    let before = b.sync_state().polls;
    polls(&b, 5);
    let (stats, after) = (store.stats(), b.sync_state().polls);
    assert_eq!(stats.gets, 0, "{stats:?}");
    assert_eq!((stats.puts, stats.stats, stats.deletes), (0, 0, 0), "{stats:?}");
    // One listing per poll (give or take the polls under way as we count).
    assert!(
        stats.lists + 1 >= after - before && stats.lists <= after - before + 2,
        "{} listings for {} polls",
        stats.lists,
        after - before
    );
    b.shutdown().unwrap();
    a.shutdown().unwrap();
}

#[test]
fn a_poll_that_sees_a_newer_ref_hands_over_the_memory_of_refs_seen() {
    let rt = rt();
    let tmp = tempfile::tempdir().unwrap();
    let mem = new_store(&rt);
    let da = DeviceId::random();
    let a = load(&rt, mem.clone(), &tmp.path().join("a"), da).unwrap();
    write(&a, "one", b"1");
    a.sync_now().unwrap();

    let saved: Arc<std::sync::Mutex<Vec<std::collections::HashMap<DeviceId, u64>>>> = Arc::default();
    let vault = rt.block_on(Vault::open(mem.clone(), b"pw")).unwrap();
    let mut opts = FsOptions::new(tmp.path().join("b"), DeviceId::random());
    opts.commit_delay = Duration::from_secs(3600);
    opts.poll = Some(POLL);
    let s = saved.clone();
    opts.on_refs_seen = Some(Box::new(move |seen| s.lock().unwrap().push(seen.clone())));
    let b = Fs::load(vault, rt.handle().clone(), opts).unwrap();
    polls(&b, 3);
    // Opening read every ref already: nothing new to save.
    assert!(saved.lock().unwrap().is_empty(), "{:?}", saved.lock().unwrap());

    write(&a, "two", b"2");
    a.sync_now().unwrap();
    wait_for("b saved a's newer ref", || {
        saved.lock().unwrap().last().is_some_and(|m| m.get(&da) == Some(&2))
    });
    polls(&b, 3);
    assert_eq!(saved.lock().unwrap().len(), 1, "idle polls raised nothing");
    b.shutdown().unwrap();
    a.shutdown().unwrap();
}

#[test]
fn polling_backs_off_while_the_store_is_down_and_recovers() {
    let rt = rt();
    let tmp = tempfile::tempdir().unwrap();
    let mem = new_store(&rt);
    let store = counted(&mem);
    let a = load(&rt, store.clone(), &tmp.path().join("a"), DeviceId::random()).unwrap();
    polls(&a, 2);
    store.set_offline(true);
    store.reset_stats();
    wait_for("polls failed", || a.sync_state().failures >= 4);
    std::thread::sleep(Duration::from_secs(2));
    let st = a.sync_state();
    let lists = store.stats().lists;
    // 50 ms, 100, 200, 400, 800, 1600 (± 20 %): a fixed 50 ms would have
    // made some 50 attempts in this time.
    assert!(lists <= 12, "{lists} attempts while the store was down: no backoff");
    assert!(
        st.failures >= 4 && u64::from(st.failures) <= lists,
        "{st:?}, {lists} attempts"
    );
    assert!(st.last_error.is_some());

    store.set_offline(false);
    wait_for("polling recovered", || a.sync_state().failures == 0);
    polls(&a, 2);
    assert_eq!(a.sync_state().last_error, None);
    a.shutdown().unwrap();
}

#[test]
fn a_paused_drive_polls_but_never_commits() {
    let rt = rt();
    let tmp = tempfile::tempdir().unwrap();
    let mem = new_store(&rt);
    let vault = rt.block_on(Vault::open(mem.clone(), b"pw")).unwrap();
    let mut opts = FsOptions::new(tmp.path().join("a"), DeviceId::random());
    opts.commit_delay = Duration::from_millis(100);
    opts.poll = Some(POLL);
    let a = Fs::load(vault, rt.handle().clone(), opts).unwrap();
    a.set_paused(true);
    write(&a, "one", b"1");
    polls(&a, 10);
    assert_eq!(a.pending().unwrap().files, 1, "committed while paused");
    assert_eq!(commits_in(&rt, &mem), 0);

    a.set_paused(false);
    wait_for("the change committed", || a.pending().unwrap().files == 0);
    assert_eq!(commits_in(&rt, &mem), 1);
    a.shutdown().unwrap();
}

#[test]
fn sync_now_commits_and_answers_with_the_commits_error() {
    let rt = rt();
    let tmp = tempfile::tempdir().unwrap();
    let mem = new_store(&rt);
    let store = counted(&mem);
    let a = load(&rt, store.clone(), &tmp.path().join("a"), DeviceId::random()).unwrap();
    write(&a, "one", b"1");
    store.set_offline(true);
    let err = a.sync_now().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert_eq!(a.pending().unwrap().files, 1);
    assert!(a.pending().unwrap().last_error.is_some());
    store.set_offline(false);
    a.sync_now().unwrap();
    let p = a.pending().unwrap();
    assert_eq!((p.files, p.last_error), (0, None));
    assert_eq!(commits_in(&rt, &mem), 1);
    a.shutdown().unwrap();
}

#[test]
fn the_loop_ends_with_the_drive() {
    let rt = rt();
    let tmp = tempfile::tempdir().unwrap();
    let mem = new_store(&rt);
    let store = counted(&mem);
    let a = load(&rt, store.clone(), &tmp.path().join("a"), DeviceId::random()).unwrap();
    polls(&a, 2);
    assert!(a.sync_running());
    a.shutdown().unwrap();
    wait_for("the loop's thread ended", || !a.sync_running());
    drop(a);

    let b = load(&rt, store.clone(), &tmp.path().join("b"), DeviceId::random()).unwrap();
    polls(&b, 2);
    drop(b);
    // The thread lets go of the drive within a second of its last cycle.
    std::thread::sleep(Duration::from_millis(1500));
    store.reset_stats();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(store.stats().lists, 0, "a dropped drive still polls");
}

fn own_ref(
    rt: &tokio::runtime::Runtime,
    mem: &Arc<MemoryBackend>,
    device: &DeviceId,
) -> Option<nimbus_vault::CommitId> {
    let vault = rt.block_on(Vault::open(mem.clone(), b"pw")).unwrap();
    rt.block_on(vault.read_refs()).unwrap().get(device).map(|r| r.commit)
}

#[test]
fn a_ref_that_landed_although_it_failed_is_not_committed_twice() {
    let rt = rt();
    let tmp = tempfile::tempdir().unwrap();
    let mem = new_store(&rt);
    let store = Arc::new(Armed::new(mem.clone(), Fault::RefWriteLandsButFails, true));
    let dev = DeviceId::random();
    let a = load(&rt, store.clone(), &tmp.path().join("a"), dev).unwrap();
    write(&a, "one", b"1");
    assert_eq!(a.sync_now().unwrap_err().kind(), ErrorKind::Unavailable);
    assert_eq!(commits_in(&rt, &mem), 1);
    let landed = own_ref(&rt, &mem, &dev).expect("the ref landed");

    // The retry finishes the same commit instead of building another on
    // the old parent.
    store.armed.store(false, Ordering::SeqCst);
    a.sync_now().unwrap();
    assert_eq!(commits_in(&rt, &mem), 1, "a second commit of the same changes");
    assert_eq!(own_ref(&rt, &mem, &dev), Some(landed));
    assert_eq!(a.pending().unwrap().files, 0);

    // Later changes commit on top of it.
    write(&a, "two", b"2");
    a.sync_now().unwrap();
    assert_eq!(commits_in(&rt, &mem), 2);
    let vault = rt.block_on(Vault::open(mem.clone(), b"pw")).unwrap();
    let head = own_ref(&rt, &mem, &dev).unwrap();
    assert_eq!(rt.block_on(vault.read_commit(&head)).unwrap().parents, vec![landed]);
    a.shutdown().unwrap();
}

#[test]
fn a_publish_cut_short_is_finished_at_the_next_load() {
    let rt = rt();
    let tmp = tempfile::tempdir().unwrap();
    let dev = DeviceId::random();
    // Once with the ref landed although its write failed, once lost.
    for lands in [true, false] {
        let mem = new_store(&rt);
        let faulty = counted(&mem);
        let store = Arc::new(Armed::new(faulty.clone(), Fault::RefWriteLandsButFails, false));
        let state = tmp.path().join(format!("lands-{lands}"));
        let a = load(&rt, store.clone(), &state, dev).unwrap();
        write(&a, "one", b"1");
        a.sync_now().unwrap();
        let first = own_ref(&rt, &mem, &dev).unwrap();
        write(&a, "two", b"2");
        if lands {
            store.armed.store(true, Ordering::SeqCst);
        } else {
            faulty.set_fail_puts_under(Some("refs/"));
        }
        assert_eq!(a.sync_now().unwrap_err().kind(), ErrorKind::Unavailable);
        assert_eq!(commits_in(&rt, &mem), 2);
        assert_eq!(own_ref(&rt, &mem, &dev) != Some(first), lands);
        // Stopped as by a crash, before any retry.
        a.shutdown_without_commit();
        drop(a);
        store.armed.store(false, Ordering::SeqCst);
        faulty.set_fail_puts_under(None);

        let a = load(&rt, store.clone(), &state, dev).unwrap();
        let head = own_ref(&rt, &mem, &dev).unwrap();
        assert_ne!(head, first, "the ref was not written at load (lands: {lands})");
        assert_eq!(commits_in(&rt, &mem), 2);
        assert_eq!(a.pending().unwrap().files, 0, "the changes count as committed");
        a.sync_now().unwrap();
        assert_eq!(commits_in(&rt, &mem), 2, "committed twice (lands: {lands})");
        assert_eq!(own_ref(&rt, &mem, &dev), Some(head));
        a.shutdown().unwrap();
    }
}

//! Two drives on one vault in memory, each with its own device id and
//! state folder, both loaded at once (docs/SYNC.md §4.1, §4.2): what one
//! commits appears on the other without reopening it (a fast-forward:
//! new, grown, renamed, deleted and chmodded files, new folders), edits
//! made on both sides between two polls merge (both versions of one file
//! survive, one under a conflict name, and both drives end on the same
//! tree), a device that was closed with changes of its own merges when it
//! opens again, and a merge left under way by a stop is finished.

#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod two_drives;
use two_drives::*;

use nimbus_backend::DynBackend;
use nimbus_fs::{Ctx, Fs, FsOptions, KernelCall, RecordingKernelCache, SetAttr, ROOT};
use nimbus_vault::{DeviceId, EntryKind, Vault};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// The drive of `device` over `backend`, committing after `delay` (an
/// hour: only when asked), polling every [`POLL`].
fn load_with(
    rt: &tokio::runtime::Runtime,
    backend: DynBackend,
    state: &Path,
    device: DeviceId,
    name: &str,
    delay: Duration,
) -> Arc<Fs> {
    let vault = rt.block_on(Vault::open(backend, b"pw")).unwrap();
    let mut opts = FsOptions::new(state.to_path_buf(), device);
    opts.device_name = name.into();
    opts.commit_delay = delay;
    opts.poll = Some(POLL);
    Fs::load(vault, rt.handle().clone(), opts).unwrap()
}

fn load(rt: &tokio::runtime::Runtime, backend: DynBackend, state: &Path, device: DeviceId, name: &str) -> Arc<Fs> {
    load_with(rt, backend, state, device, name, Duration::from_secs(3600))
}

fn resolve_parent(fs: &Fs, path: &str) -> (u64, Vec<u8>) {
    match path.rsplit_once('/') {
        Some((dir, name)) => (fs.resolve(dir.as_bytes()).unwrap(), name.as_bytes().to_vec()),
        None => (ROOT, path.as_bytes().to_vec()),
    }
}

/// Writes `data` as the whole content of `path`, making it if needed.
fn put(fs: &Fs, path: &str, data: &[u8]) {
    let fh = match fs.resolve(path.as_bytes()) {
        Ok(ino) => fs.open(ino, true).unwrap(),
        Err(_) => {
            let (parent, name) = resolve_parent(fs, path);
            fs.create(Ctx::ROOT, parent, &name, 0o644).unwrap().1
        }
    };
    fs.write(fh, 0, data).unwrap();
    fs.release(fh).unwrap();
}

fn append(fs: &Fs, path: &str, data: &[u8]) {
    let ino = fs.resolve(path.as_bytes()).unwrap();
    let size = fs.getattr(ino).unwrap().size;
    let fh = fs.open(ino, false).unwrap();
    fs.write(fh, size, data).unwrap();
    fs.release(fh).unwrap();
}

fn read(fs: &Fs, path: &str) -> Option<Vec<u8>> {
    let fh = fs.open(fs.resolve(path.as_bytes()).ok()?, false).ok()?;
    let mut out = Vec::new();
    loop {
        let got = fs.read(fh, out.len() as u64, 128 << 10).unwrap();
        if got.is_empty() {
            break;
        }
        out.extend_from_slice(&got);
    }
    fs.release(fh).unwrap();
    Some(out)
}

fn names(fs: &Fs, path: &str) -> Vec<String> {
    let ino = fs.resolve(path.as_bytes()).unwrap();
    let mut out: Vec<String> = fs
        .readdir(ino, 0, 10_000)
        .unwrap()
        .into_iter()
        .map(|e| String::from_utf8(e.name).unwrap())
        .filter(|n| n != "." && n != ".." && n != ".snapshots")
        .collect();
    out.sort();
    out
}

/// Every path of the drive with its kind, permission bits and content.
fn walk(fs: &Fs) -> BTreeMap<String, (EntryKind, u32, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let mut todo = vec![String::new()];
    while let Some(dir) = todo.pop() {
        for name in names(fs, &dir) {
            let path = if dir.is_empty() { name } else { format!("{dir}/{name}") };
            let attr = fs.getattr(fs.resolve(path.as_bytes()).unwrap()).unwrap();
            let content = match attr.kind {
                EntryKind::File => read(fs, &path).unwrap(),
                _ => Vec::new(),
            };
            if attr.kind == EntryKind::Dir {
                todo.push(path.clone());
            }
            out.insert(path, (attr.kind, attr.perm, content));
        }
    }
    out
}

fn conflict_copies(fs: &Fs, dir: &str, stem: &str) -> Vec<String> {
    names(fs, dir)
        .into_iter()
        .filter(|n| n.starts_with(&format!("{stem} (conflict ")))
        .collect()
}

/// What `fs` was told from now until `enough` holds of the sums (a report
/// is kept a moment after the apply made its files readable): every
/// report's counts added up and their paths, each report from `device`
/// named `label`.
fn reported(
    fs: &Fs,
    device: DeviceId,
    label: &str,
    enough: impl Fn(&nimbus_fs::Counts, &nimbus_fs::Counts) -> bool,
) -> (nimbus_fs::Counts, nimbus_fs::Counts, Vec<String>) {
    let (mut files, mut folders, mut paths) = (nimbus_fs::Counts::default(), nimbus_fs::Counts::default(), Vec::new());
    wait_for("the reports of what arrived", || {
        for r in fs.take_merge_reports() {
            assert_eq!((r.device, r.device_label.as_str()), (device, label));
            assert!(r.paths.len() <= nimbus_fs::REPORT_PATHS);
            for (sum, c) in [(&mut files, r.files), (&mut folders, r.folders)] {
                sum.added += c.added;
                sum.changed += c.changed;
                sum.moved += c.moved;
                sum.deleted += c.deleted;
            }
            paths.extend(r.paths);
        }
        enough(&files, &folders)
    });
    (files, folders, paths)
}

#[test]
fn what_one_device_commits_appears_on_the_other_without_reopening() {
    let rt = rt();
    let tmp = tempfile::tempdir().unwrap();
    let mem = new_store(&rt);
    let a_id = DeviceId::random();
    let a = load(&rt, mem.clone(), &tmp.path().join("a"), a_id, "laptop");
    put(&a, "hello.txt", b"first words");
    a.sync_now().unwrap();
    let b = load(&rt, mem.clone(), &tmp.path().join("b"), DeviceId::random(), "desk");
    let kernel = RecordingKernelCache::new();
    b.set_kernel_cache(kernel.clone());
    assert_eq!(read(&b, "hello.txt").unwrap(), b"first words");

    // A new file and a new folder with a file.
    put(&a, "new.txt", b"new");
    a.mkdir(Ctx::ROOT, ROOT, b"photos", 0o755).unwrap();
    put(&a, "photos/p1.jpg", b"jpeg one");
    put(&a, "photos/p2.jpg", b"jpeg two");
    a.sync_now().unwrap();
    wait_for("b sees the new folder", || {
        read(&b, "photos/p2.jpg").as_deref() == Some(b"jpeg two")
    });
    assert_eq!(read(&b, "new.txt").unwrap(), b"new");
    assert_eq!(names(&b, "photos"), ["p1.jpg", "p2.jpg"]);
    // The loop clears what waits once the apply is done, a moment after
    // its transaction made the files readable.
    wait_for("b's status has nothing waiting", || b.sync_state().waiting.is_empty());
    // What arrived is told: three files and a folder, from the laptop.
    let (files, folders, paths) = reported(&b, a_id, "laptop", |f, d| f.added == 3 && d.added == 1);
    assert_eq!(
        (files.added, files.total(), folders.added, folders.total()),
        (3, 3, 1, 1)
    );
    assert!(paths.contains(&"/photos/p2.jpg".to_string()), "{paths:?}");
    assert_eq!(paths.len(), 4, "{paths:?}");
    // The kernel forgets the root's listing and the new names.
    let calls = kernel.take();
    assert!(calls.contains(&KernelCall::Inode(ROOT)), "{calls:?}");
    assert!(
        calls.contains(&KernelCall::Entry {
            parent: ROOT,
            name: b"photos".to_vec()
        }),
        "{calls:?}"
    );

    // A file B read (so a kernel would cache it) grows on A: B reads it
    // whole, through a new inode.
    let old_ino = b.resolve(b"hello.txt").unwrap();
    b.remember(old_ino);
    append(&a, "hello.txt", b", and more words than B has seen");
    a.sync_now().unwrap();
    let grown = b"first words, and more words than B has seen".to_vec();
    wait_for("b reads the grown file", || {
        read(&b, "hello.txt") == Some(grown.clone())
    });
    assert_ne!(b.resolve(b"hello.txt").unwrap(), old_ino, "new content, new inode");
    assert_eq!(
        b.getattr(b.resolve(b"hello.txt").unwrap()).unwrap().size,
        grown.len() as u64
    );

    // A rename, a delete, a chmod.
    a.rename(
        a.resolve(b"photos").unwrap(),
        b"p1.jpg",
        ROOT,
        b"first.jpg",
        Default::default(),
    )
    .unwrap();
    a.unlink(a.resolve(b"photos").unwrap(), b"p2.jpg").unwrap();
    a.setattr(
        a.resolve(b"new.txt").unwrap(),
        &SetAttr {
            mode: Some(0o600),
            ..Default::default()
        },
    )
    .unwrap();
    a.sync_now().unwrap();
    wait_for("b sees the rename", || {
        read(&b, "first.jpg").as_deref() == Some(b"jpeg one")
    });
    assert!(names(&b, "photos").is_empty(), "{:?}", names(&b, "photos"));
    assert_eq!(b.getattr(b.resolve(b"new.txt").unwrap()).unwrap().perm, 0o600);
    assert_eq!(walk(&a), walk(&b));
    let (files, folders, paths) = reported(&b, a_id, "laptop", |f, _| {
        f.moved == 1 && f.deleted == 1 && f.changed == 2
    });
    assert_eq!(
        (
            files.moved,
            files.deleted,
            files.changed,
            files.added,
            folders.added,
            folders.deleted
        ),
        (1, 1, 2, 0, 0, 0),
        "moved p1.jpg, deleted p2.jpg, changed the grown file and the chmod: {files:?} {folders:?}"
    );
    assert!(
        paths.contains(&"/photos/p2.jpg".to_string()),
        "a deleted file's path: {paths:?}"
    );
    assert!(paths.contains(&"/first.jpg".to_string()), "{paths:?}");
    // Nothing was committed by B: a fast-forward writes no commit.
    assert_eq!(commits_in(&rt, &mem), 4);
    a.shutdown().unwrap();
    b.shutdown().unwrap();
}

/// Both drives edit one file between two polls (each commits only when
/// asked, so neither sees the other's edit first): both versions survive,
/// the newer under the name and the other as a conflict copy named for
/// its device, on both drives, which end on the same tree.
#[test]
fn the_same_file_edited_on_both_keeps_both_versions_on_both() {
    let rt = rt();
    let tmp = tempfile::tempdir().unwrap();
    let mem = new_store(&rt);
    let a = load(&rt, mem.clone(), &tmp.path().join("a"), DeviceId::random(), "laptop");
    put(&a, "notes.txt", b"the base");
    a.sync_now().unwrap();
    let b = load(&rt, mem.clone(), &tmp.path().join("b"), DeviceId::random(), "desk");
    assert_eq!(read(&b, "notes.txt").unwrap(), b"the base");

    put(&a, "notes.txt", b"A's version");
    put(&b, "notes.txt", b"B's version");
    a.sync_now().unwrap();
    // B has a change pending: it does not fast-forward over it, it
    // commits it and merges.
    b.sync_now().unwrap();
    let on_b = names(&b, "");
    assert_eq!(on_b.len(), 2, "{on_b:?}");
    let copies = conflict_copies(&b, "", "notes");
    assert_eq!(copies.len(), 1, "{on_b:?}");
    // B's commit reached the store last: its version keeps the name, A's
    // is the copy, named for A.
    assert_eq!(read(&b, "notes.txt").unwrap(), b"B's version");
    assert!(copies[0].starts_with("notes (conflict laptop "), "{copies:?}");
    assert!(copies[0].ends_with(").txt"), "{copies:?}");
    assert_eq!(read(&b, &copies[0]).unwrap(), b"A's version");
    // The copy is told, and listed by name.
    let told: Vec<_> = b.take_merge_reports().into_iter().flat_map(|r| r.copies).collect();
    assert_eq!(told.len(), 1, "{told:?}");
    assert_eq!(told[0].copy, format!("/{}", copies[0]));
    assert_eq!(told[0].original, "/notes.txt");
    assert_eq!(told[0].device, "laptop");
    let listed = b.conflicts().unwrap();
    assert_eq!(listed, told);
    assert_eq!(b.pending().unwrap().conflicts, 1);

    wait_for("a takes in the merge", || walk(&a) == walk(&b));
    wait_for("a's status has nothing waiting", || a.sync_state().waiting.is_empty());
    // The device that took the merge in is told of the copy too (a moment
    // after the apply made it readable), and counts it.
    let mut on_a = Vec::new();
    wait_for("a told of the copy", || {
        on_a.extend(a.take_merge_reports().into_iter().flat_map(|r| r.copies));
        !on_a.is_empty()
    });
    assert_eq!(on_a, told, "the copy arriving on A");
    assert_eq!(a.conflicts().unwrap(), listed);
    wait_for("a counts the copy", || a.pending().unwrap().conflicts == 1);
    // A further poll on each changes nothing more: no merge ping-pong.
    let commits = commits_in(&rt, &mem);
    for fs in [&a, &b] {
        let from = fs.sync_state().polls;
        wait_for("another poll", || fs.sync_state().polls >= from + 3);
    }
    assert_eq!(commits_in(&rt, &mem), commits, "the converged drives kept committing");
    assert_eq!(walk(&a), walk(&b));
    assert_eq!(a.pending().unwrap().files, 0);
    assert_eq!(b.pending().unwrap().files, 0);
    a.shutdown().unwrap();
    b.shutdown().unwrap();
}

/// A hard-linked file whose one name loses a collision to the other
/// device's new file of that name: the apply moves only that name (its
/// other name is in a folder neither side changed, which the merge never
/// reads) and the drives converge. The apply used to keep the old name as
/// if the person had moved the file, and the two drives swapped names at
/// every merge (found by the simulation, §6.2).
#[test]
fn a_hard_link_that_loses_a_name_collision_converges() {
    let rt = rt();
    let tmp = tempfile::tempdir().unwrap();
    let mem = new_store(&rt);
    let a = load(&rt, mem.clone(), &tmp.path().join("a"), DeviceId::random(), "laptop");
    let b = load(&rt, mem.clone(), &tmp.path().join("b"), DeviceId::random(), "desk");
    put(&a, "a", b"A's, linked");
    let d1 = a.mkdir(Ctx::ROOT, ROOT, b"d1", 0o755).unwrap().ino;
    a.link(a.resolve(b"a").unwrap(), d1, b"a").unwrap();
    put(&b, "a", b"B's own");
    a.sync_now().unwrap();
    b.sync_now().unwrap();
    wait_for("a takes in the merge", || walk(&a) == walk(&b));
    let on_a = walk(&a);
    assert_eq!(on_a.len(), 4, "{:?}", on_a.keys());
    let copies = conflict_copies(&a, "", "a");
    assert_eq!(copies.len(), 1, "{:?}", on_a.keys());
    assert_eq!(read(&a, &copies[0]).unwrap(), b"A's, linked");
    assert_eq!(read(&a, "d1/a").unwrap(), b"A's, linked");
    assert_eq!(read(&a, "a").unwrap(), b"B's own");
    let commits = commits_in(&rt, &mem);
    for fs in [&a, &b] {
        let from = fs.sync_state().polls;
        wait_for("another poll", || fs.sync_state().polls >= from + 3);
    }
    assert_eq!(commits_in(&rt, &mem), commits, "the drives kept merging");
    assert_eq!(walk(&a), walk(&b));
    a.shutdown().unwrap();
    b.shutdown().unwrap();
}

#[test]
fn edits_to_different_files_merge_without_a_copy() {
    let rt = rt();
    let tmp = tempfile::tempdir().unwrap();
    let mem = new_store(&rt);
    let a = load(&rt, mem.clone(), &tmp.path().join("a"), DeviceId::random(), "laptop");
    put(&a, "shared.txt", b"shared");
    a.mkdir(Ctx::ROOT, ROOT, b"docs", 0o755).unwrap();
    a.sync_now().unwrap();
    let b = load(&rt, mem.clone(), &tmp.path().join("b"), DeviceId::random(), "desk");

    put(&a, "docs/from-a.txt", b"a");
    put(&a, "shared.txt", b"shared, edited on A");
    put(&b, "docs/from-b.txt", b"b");
    b.mkdir(Ctx::ROOT, ROOT, b"more", 0o700).unwrap();
    a.sync_now().unwrap();
    b.sync_now().unwrap();
    wait_for("both converge", || walk(&a) == walk(&b));
    assert_eq!(names(&a, "docs"), ["from-a.txt", "from-b.txt"]);
    assert_eq!(names(&a, ""), ["docs", "more", "shared.txt"]);
    assert_eq!(read(&b, "shared.txt").unwrap(), b"shared, edited on A");
    assert_eq!(b.getattr(b.resolve(b"more").unwrap()).unwrap().perm, 0o700);
    a.shutdown().unwrap();
    b.shutdown().unwrap();
}

/// A device closed with changes of its own (here: stopped before they
/// committed, as when the store was out of reach) while the other device
/// moved on merges both when it opens again: nothing of either is lost.
#[test]
fn a_device_closed_with_changes_of_its_own_merges_when_it_opens_again() {
    let rt = rt();
    let tmp = tempfile::tempdir().unwrap();
    let mem = new_store(&rt);
    let (da, db) = (DeviceId::random(), DeviceId::random());
    let a = load(&rt, mem.clone(), &tmp.path().join("a"), da, "laptop");
    put(&a, "base.txt", b"base");
    a.sync_now().unwrap();
    let b = load(&rt, mem.clone(), &tmp.path().join("b"), db, "desk");
    put(&b, "mine.txt", b"B's own");
    put(&b, "base.txt", b"base, edited on B");
    b.fsync(ROOT).unwrap();
    b.shutdown_without_commit();
    drop(b);

    put(&a, "theirs.txt", b"A's own");
    a.rename(ROOT, b"base.txt", ROOT, b"renamed.txt", Default::default())
        .unwrap();
    a.sync_now().unwrap();

    // B opens with its changes pending: they commit (after a short quiet
    // time here) and merge with A's snapshot.
    let b = load_with(
        &rt,
        mem.clone(),
        &tmp.path().join("b"),
        db,
        "desk",
        Duration::from_millis(100),
    );
    wait_for("b merges", || {
        read(&b, "theirs.txt").is_some() && b.pending().unwrap().files == 0
    });
    assert_eq!(names(&b, ""), ["mine.txt", "renamed.txt", "theirs.txt"]);
    // Renamed there, edited here: the new name with the new content.
    assert_eq!(read(&b, "renamed.txt").unwrap(), b"base, edited on B");
    assert_eq!(read(&b, "mine.txt").unwrap(), b"B's own");
    wait_for("a takes in the merge", || walk(&a) == walk(&b));
    let vault = rt.block_on(Vault::open(mem.clone(), b"pw")).unwrap();
    let (_, head) = rt.block_on(vault.head()).unwrap().unwrap();
    assert_eq!(head.parents.len(), 2, "a merge commit");
    a.shutdown().unwrap();
    b.shutdown().unwrap();
}

/// A merge commit whose ref landed although its write failed, then a stop
/// (as by a crash) before the apply: the next start finishes it, the rows
/// become the merge, and no second merge commit is written.
#[test]
fn a_merge_published_but_not_applied_is_finished_at_the_next_start() {
    let rt = rt();
    let tmp = tempfile::tempdir().unwrap();
    let mem = new_store(&rt);
    let (da, db) = (DeviceId::random(), DeviceId::random());
    let a = load(&rt, mem.clone(), &tmp.path().join("a"), da, "laptop");
    put(&a, "notes.txt", b"base");
    a.sync_now().unwrap();
    let store = Arc::new(Armed::new(mem.clone(), Fault::RefWriteLandsButFails, false));
    let b = load(&rt, store.clone(), &tmp.path().join("b"), db, "desk");
    put(&a, "notes.txt", b"A's version");
    put(&a, "from-a.txt", b"a");
    put(&b, "notes.txt", b"B's version");
    a.shutdown().unwrap();
    drop(a);

    store.armed.store(true, Ordering::SeqCst);
    assert!(b.sync_now().is_err(), "the ref write reported an error");
    let commits = commits_in(&rt, &mem);
    b.shutdown_without_commit();
    drop(b);
    store.armed.store(false, Ordering::SeqCst);

    let b = load(&rt, store.clone(), &tmp.path().join("b"), db, "desk");
    assert_eq!(read(&b, "from-a.txt").unwrap(), b"a", "the merge was applied at load");
    assert_eq!(conflict_copies(&b, "", "notes").len(), 1, "{:?}", names(&b, ""));
    assert_eq!(read(&b, "notes.txt").unwrap(), b"B's version");
    assert_eq!(b.pending().unwrap().files, 0);
    b.sync_now().unwrap();
    assert_eq!(commits_in(&rt, &mem), commits, "merged or committed again");
    let a = load(&rt, mem.clone(), &tmp.path().join("a"), da, "laptop");
    assert_eq!(walk(&a), walk(&b));
    a.shutdown().unwrap();
    b.shutdown().unwrap();
}

/// A fast-forward that failed halfway (its trees could not be read) is
/// finished by the next cycle from its marker, even though the person
/// has written since (which would otherwise hold a fast-forward back until
/// the next commit), and what the person wrote is kept.
#[test]
fn a_fast_forward_cut_short_is_finished_and_keeps_what_was_written_since() {
    let rt = rt();
    let tmp = tempfile::tempdir().unwrap();
    let mem = new_store(&rt);
    let a = load(&rt, mem.clone(), &tmp.path().join("a"), DeviceId::random(), "laptop");
    put(&a, "base.txt", b"base");
    a.sync_now().unwrap();
    let store = Arc::new(Armed::new(mem.clone(), Fault::PackReadsFail, false));
    let b = load(&rt, store.clone(), &tmp.path().join("b"), DeviceId::random(), "desk");
    assert_eq!(names(&b, ""), ["base.txt"]);
    store.armed.store(true, Ordering::SeqCst);

    put(&a, "new.txt", b"new");
    a.sync_now().unwrap();
    wait_for("b's fast-forward failed", || b.sync_state().failures >= 1);
    assert_eq!(read(&b, "new.txt"), None);
    put(&b, "mine.txt", b"written meanwhile");
    store.armed.store(false, Ordering::SeqCst);
    wait_for("b finishes the fast-forward", || {
        read(&b, "new.txt").as_deref() == Some(b"new")
    });
    assert_eq!(read(&b, "mine.txt").unwrap(), b"written meanwhile");
    assert_eq!(
        b.pending().unwrap().files,
        1,
        "what was written since is still to commit"
    );
    b.sync_now().unwrap();
    wait_for("a takes in b's commit", || walk(&a) == walk(&b));
    a.shutdown().unwrap();
    b.shutdown().unwrap();
}

/// A drive opened while the store's listing of `index/` lagged (it left
/// out the index object of the drive's own last save) reads its files once
/// the listing catches up: a blob the index does not know loads the index
/// objects written since before it counts as missing. It used to stay
/// missing until the next remount (found by the simulation, §6.2).
#[test]
fn a_drive_opened_while_the_index_listing_lags_reads_its_files_later() {
    let rt = rt();
    let tmp = tempfile::tempdir().unwrap();
    let mem = new_store(&rt);
    let device = DeviceId::random();
    let a = load(&rt, mem.clone(), &tmp.path().join("a"), device, "laptop");
    put(&a, "kept.txt", b"kept");
    a.sync_now().unwrap();
    a.shutdown().unwrap();
    drop(a);
    let store = Arc::new(Armed::new(mem.clone(), Fault::IndexListingLags, true));
    let a = load(&rt, store.clone(), &tmp.path().join("a"), device, "laptop");
    store.armed.store(false, Ordering::SeqCst);
    assert_eq!(read(&a, "kept.txt").unwrap(), b"kept");
    a.shutdown().unwrap();
}

#[test]
fn the_other_devices_are_listed_with_their_name_and_whether_they_are_merged() {
    let rt = rt();
    let tmp = tempfile::tempdir().unwrap();
    let mem = new_store(&rt);
    let a_id = DeviceId::random();
    let a = load(&rt, mem.clone(), &tmp.path().join("a"), a_id, "laptop");
    put(&a, "one.txt", b"one");
    a.sync_now().unwrap();
    let b = load(&rt, mem.clone(), &tmp.path().join("b"), DeviceId::random(), "desk");

    // Paused, B sees A's new change but does not take it in.
    b.set_paused(true);
    put(&a, "two.txt", b"two");
    a.sync_now().unwrap();
    wait_for("b sees a's change waiting", || !b.sync_state().waiting.is_empty());
    let seen = b.sync_state().devices;
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(
        (seen[0].device, seen[0].name.as_str(), seen[0].merged),
        (a_id, "laptop", false)
    );

    // Taken in: A is merged.
    b.set_paused(false);
    wait_for("b takes in a's change", || {
        read(&b, "two.txt").as_deref() == Some(b"two")
    });
    wait_for("a merged", || b.sync_state().devices.iter().all(|d| d.merged));
    let seen = b.sync_state().devices;
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!((seen[0].device, seen[0].name.as_str()), (a_id, "laptop"));

    // Renamed while open: A's next change carries the new name.
    a.set_device_name("ann's laptop");
    put(&a, "three.txt", b"three");
    a.sync_now().unwrap();
    wait_for("b sees the new name", || {
        b.sync_state().devices.iter().any(|d| d.name == "ann's laptop")
    });
}

/// Prune while a drive runs (docs/PRUNE.md §5): the idle drive
/// acknowledges the plan by itself, a file it saves afterwards with the
/// bytes of a condemned file is uploaded anew rather than deduplicated
/// against the pack about to go, and after the sweep a new device reads
/// every file whole.
#[test]
fn a_running_drive_acknowledges_a_prune_and_loses_nothing_to_it() {
    use nimbus_vault::gc::{self, mark::Forget, mark::MarkOptions, sweep::SweepOptions, PruneTimes};
    let rt = rt();
    let tmp = tempfile::tempdir().unwrap();
    let mem = new_store(&rt);
    let a_id = DeviceId::random();
    let a = load(&rt, mem.clone(), &tmp.path().join("a"), a_id, "laptop");
    // Incompressible, so its pack is worth freeing.
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let movie: Vec<u8> = (0..400_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    put(&a, "keep.txt", b"kept all along");
    put(&a, "movie.bin", &movie);
    a.sync_now().unwrap();
    a.unlink(ROOT, b"movie.bin").unwrap();
    a.sync_now().unwrap();

    let hour = Duration::from_secs(3600);
    mem.advance_clock(2 * hour);
    let times = PruneTimes {
        young: hour,
        grace: 2 * hour,
        ..PruneTimes::default()
    };
    let pruner_id = DeviceId::random();
    let pruner = rt.block_on(Vault::open(mem.clone(), b"pw")).unwrap();
    let opts = MarkOptions {
        times,
        forget: Forget::Rule(Arc::new(|all| all.iter().map(|c| c.id).collect())),
        ..MarkOptions::default()
    };
    let marked = rt.block_on(gc::mark(&pruner, &pruner_id, &opts)).unwrap();
    let plan = marked.plan.expect("the old snapshot and the movie's pack go");
    assert!(marked.condemned_bytes >= 400_000, "{marked:?}");

    // The drive, polling every 50 ms, names the plan in its ref.
    wait_for("the drive acknowledges the plan", || {
        let refs = rt.block_on(pruner.read_refs()).unwrap();
        refs.get(&a_id).is_some_and(|r| r.gc_seen.contains(&plan))
    });
    // The same bytes saved again after the plan: uploaded anew.
    put(&a, "movie again.bin", &movie);
    a.sync_now().unwrap();

    mem.advance_clock(3 * hour);
    let swept = rt
        .block_on(gc::sweep(&pruner, &pruner_id, &SweepOptions::new(times)))
        .unwrap();
    assert_eq!(swept.done, vec![plan], "{swept:?}");
    assert!(swept.freed_bytes >= 400_000, "{swept:?}");

    let b = load(&rt, mem.clone(), &tmp.path().join("b"), DeviceId::random(), "desk");
    assert_eq!(read(&b, "keep.txt").unwrap(), b"kept all along");
    assert_eq!(read(&b, "movie again.bin").unwrap(), movie);
    assert_eq!(names(&b, ""), ["keep.txt", "movie again.bin"]);
}

/// S4 after a fast-forward (found by the simulation, docs/SYNC.md §6.2):
/// a drive that took in another's merge has a head its ref does not name
/// (a fast-forward writes no ref); idle, it must still acknowledge a plan,
/// or every sweep waits for it until it counts as dormant.
#[test]
fn a_drive_that_fast_forwarded_acknowledges_a_prune() {
    use nimbus_vault::gc::{self, mark::Forget, mark::MarkOptions, PruneTimes};
    let rt = rt();
    let tmp = tempfile::tempdir().unwrap();
    let mem = new_store(&rt);
    let (a_id, b_id) = (DeviceId::random(), DeviceId::random());
    let a = load(&rt, mem.clone(), &tmp.path().join("a"), a_id, "laptop");
    let b = load(&rt, mem.clone(), &tmp.path().join("b"), b_id, "desk");
    put(&b, "gone.bin", &[7u8; 50_000]);
    b.sync_now().unwrap();
    b.unlink(ROOT, b"gone.bin").unwrap();
    b.sync_now().unwrap();
    put(&a, "a.txt", b"from a");
    a.sync_now().unwrap();
    wait_for("b fast-forwards to a's merge", || read(&b, "a.txt").is_some());
    let pruner = rt.block_on(Vault::open(mem.clone(), b"pw")).unwrap();
    let refs = rt.block_on(pruner.read_refs()).unwrap();
    assert_ne!(
        refs[&a_id].commit, refs[&b_id].commit,
        "b's ref still names its own commit"
    );

    let hour = Duration::from_secs(3600);
    mem.advance_clock(2 * hour);
    let opts = MarkOptions {
        times: PruneTimes {
            young: hour,
            grace: 2 * hour,
            ..PruneTimes::default()
        },
        forget: Forget::Rule(Arc::new(|all| all.iter().map(|c| c.id).collect())),
        ..MarkOptions::default()
    };
    let plan = rt
        .block_on(gc::mark(&pruner, &DeviceId::random(), &opts))
        .unwrap()
        .plan
        .expect("b's old snapshots and the deleted file's pack go");
    wait_for("both drives acknowledge the plan", || {
        let refs = rt.block_on(pruner.read_refs()).unwrap();
        [a_id, b_id]
            .iter()
            .all(|d| refs.get(d).is_some_and(|r| r.gc_seen.contains(&plan)))
    });
}

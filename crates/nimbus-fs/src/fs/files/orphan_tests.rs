//! Open files and merge orphans through the POSIX face (docs/SYNC.md
//! §4.3): two drives on one store, the second's change applied to the
//! first while it holds the file open, then the first's close (or crash).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use nimbus_backend::{DynBackend, MemoryBackend};
use nimbus_merge::names::format_time;
use nimbus_vault::{DeviceId, KdfParams, Timestamp, Vault, VaultParams};

use crate::kernel::{KernelCall, RecordingKernelCache};
use crate::meta::{inodes, orphans, state};
use crate::sync::apply::{apply, Applied, Target};
use crate::{Ctx, Fs, FsOptions, Ino, ROOT};

struct Store {
    rt: tokio::runtime::Runtime,
    backend: DynBackend,
    dir: tempfile::TempDir,
}

impl Store {
    fn new() -> Store {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let backend: DynBackend = Arc::new(MemoryBackend::new());
        rt.block_on(Vault::create(
            backend.clone(),
            b"pw",
            VaultParams::default(),
            KdfParams::minimum(),
        ))
        .unwrap();
        Store {
            rt,
            backend,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// A drive of device `name` (its state in a folder of that name);
    /// commits only when asked.
    fn drive(&self, name: &str, device: DeviceId) -> Arc<Fs> {
        let vault = self.rt.block_on(Vault::open(self.backend.clone(), b"pw")).unwrap();
        let mut opts = FsOptions::new(self.dir.path().join(name), device);
        opts.device_name = name.into();
        opts.commit_delay = Duration::from_secs(3600);
        Fs::load(vault, self.rt.handle().clone(), opts).unwrap()
    }

    /// Takes the vault's newest head into `fs`, as the sync loop's
    /// fast-forward does: its index, then the apply, then the kernel calls.
    fn fast_forward(&self, fs: &Fs) -> (Applied, Timestamp) {
        let vault = fs.vault();
        self.rt.block_on(vault.load_index()).unwrap();
        let (head, commit) = self.rt.block_on(vault.head()).unwrap().unwrap();
        let ours = fs.local.db.read(state::head).unwrap().unwrap();
        let base = self.rt.block_on(vault.read_commit(&ours)).unwrap().root;
        let target = Target {
            head,
            root: commit.root,
            device: commit.device_name.clone(),
            time: commit.time,
            aliases: vec![],
        };
        let since = fs.local.db.read(state::committed_epoch).unwrap();
        let applied = {
            let _serial = fs.commits.serial().unwrap();
            apply(&fs.local, &fs.nodes, fs.kernel_refs(), Some(base), &target, since, None).unwrap()
        };
        applied.send_calls(&*fs.kernel_cache());
        (applied, commit.time)
    }
}

fn ino(fs: &Fs, path: &str) -> Ino {
    let mut ino = ROOT;
    for part in path.split('/') {
        ino = fs.lookup(ino, part.as_bytes()).unwrap().ino;
    }
    ino
}

fn exists(fs: &Fs, dir: &str, name: &str) -> bool {
    names(fs, dir).iter().any(|n| n == name)
}

/// The names in `dir`, sorted.
fn names(fs: &Fs, dir: &str) -> Vec<String> {
    let mut out: Vec<String> = fs
        .readdir(ino(fs, dir), 0, 1000)
        .unwrap()
        .into_iter()
        .map(|e| String::from_utf8(e.name).unwrap())
        .filter(|n| n != "." && n != "..")
        .collect();
    out.sort();
    out
}

fn read_path(fs: &Fs, path: &str) -> Vec<u8> {
    let fh = fs.open(ino(fs, path), false).unwrap();
    let out = fs.read(fh, 0, 1 << 20).unwrap();
    fs.release(fh).unwrap();
    out
}

fn write_path(fs: &Fs, path: &str, data: &[u8]) {
    let fh = fs.open(ino(fs, path), true).unwrap();
    fs.write(fh, 0, data).unwrap();
    fs.release(fh).unwrap();
}

/// Whether inode `ino` is still in the database, and recorded as an orphan.
fn row_and_record(fs: &Fs, ino: Ino) -> (bool, bool) {
    fs.local
        .db
        .read(|c| Ok((inodes::get_opt(c, ino)?.is_some(), orphans::get(c, ino)?.is_some())))
        .unwrap()
}

/// `desk` with `docs/<name>` holding `base` for each name, committed;
/// `laptop` a second device on the same vault.
fn two_devices(files: &[&str]) -> (Store, Arc<Fs>, DeviceId, Arc<Fs>) {
    let store = Store::new();
    let desk_id = DeviceId::random();
    let desk = store.drive("desk", desk_id);
    desk.mkdir(Ctx::ROOT, ROOT, b"docs", 0o755).unwrap();
    let docs = ino(&desk, "docs");
    for f in files {
        let (_, fh) = desk.create(Ctx::ROOT, docs, f.as_bytes(), 0o644).unwrap();
        desk.write(fh, 0, b"base").unwrap();
        desk.release(fh).unwrap();
    }
    desk.sync_now().unwrap();
    let laptop = store.drive("laptop", DeviceId::random());
    (store, desk, desk_id, laptop)
}

fn copy_name(stem: &str, ext: &str, time: Timestamp) -> String {
    format!("{stem} (conflict desk {}){ext}", format_time(time))
}

#[test]
fn a_reader_keeps_the_old_bytes_until_it_closes() {
    let (store, desk, _, laptop) = two_devices(&["report.txt"]);
    let old = ino(&desk, "docs/report.txt");
    let fh = desk.open(old, false).unwrap();
    assert_eq!(desk.read(fh, 0, 100).unwrap(), b"base");

    write_path(&laptop, "docs/report.txt", b"theirs, longer");
    laptop.sync_now().unwrap();
    store.fast_forward(&desk);

    assert_eq!(desk.read(fh, 0, 100).unwrap(), b"base", "a reader is never torn");
    assert_ne!(ino(&desk, "docs/report.txt"), old);
    assert_eq!(
        read_path(&desk, "docs/report.txt"),
        b"theirs, longer",
        "a new open reads the new"
    );
    assert_eq!(row_and_record(&desk, old), (true, true));
    desk.release(fh).unwrap();
    assert_eq!(row_and_record(&desk, old), (false, false), "not written: gone at close");
    assert_eq!(names(&desk, "docs"), ["report.txt"]);
    for fs in [desk, laptop] {
        fs.shutdown_without_commit();
    }
}

#[test]
fn a_writer_after_the_apply_ends_as_a_conflict_copy_at_close() {
    let (store, desk, _, laptop) = two_devices(&["report.txt"]);
    let kernel = RecordingKernelCache::new();
    desk.set_kernel_cache(kernel.clone());
    let old = ino(&desk, "docs/report.txt");
    let fh = desk.open(old, false).unwrap();

    write_path(&laptop, "docs/report.txt", b"theirs");
    laptop.sync_now().unwrap();
    let (_, time) = store.fast_forward(&desk);
    kernel.take();

    desk.write(fh, 0, b"mine, written while open").unwrap();
    let copy = copy_name("report", ".txt", time);
    assert!(!exists(&desk, "docs", &copy), "no copy before the close");
    desk.release(fh).unwrap();

    assert_eq!(read_path(&desk, &format!("docs/{copy}")), b"mine, written while open");
    assert_eq!(
        read_path(&desk, "docs/report.txt"),
        b"theirs",
        "the target's version keeps the name"
    );
    assert_eq!(ino(&desk, &format!("docs/{copy}")), old);
    assert_eq!(row_and_record(&desk, old), (true, false));
    let docs = ino(&desk, "docs");
    assert_eq!(
        kernel.take(),
        vec![
            KernelCall::Entry {
                parent: docs,
                name: copy.clone().into_bytes()
            },
            KernelCall::Inode(docs)
        ]
    );

    // The next commit holds the copy: a third device sees it.
    desk.sync_now().unwrap();
    let third = store.drive("third", DeviceId::random());
    assert_eq!(read_path(&third, &format!("docs/{copy}")), b"mine, written while open");
    assert_eq!(read_path(&third, "docs/report.txt"), b"theirs");
    for fs in [desk, laptop, third] {
        fs.shutdown_without_commit();
    }
}

#[test]
fn an_open_file_deleted_there_comes_back_only_if_written() {
    let (store, desk, _, laptop) = two_devices(&["a.log", "b.log"]);
    let (a, b) = (ino(&desk, "docs/a.log"), ino(&desk, "docs/b.log"));
    let (fa, fb) = (desk.open(a, false).unwrap(), desk.open(b, false).unwrap());

    let docs = ino(&laptop, "docs");
    laptop.unlink(docs, b"a.log").unwrap();
    laptop.unlink(docs, b"b.log").unwrap();
    laptop.sync_now().unwrap();
    let (applied, time) = store.fast_forward(&desk);
    assert_eq!(applied.report.deleted, 2);
    assert!(names(&desk, "docs").is_empty());

    desk.write(fa, 4, b" and more").unwrap();
    desk.release(fa).unwrap();
    desk.release(fb).unwrap();
    let copy = copy_name("a", ".log", time);
    assert_eq!(names(&desk, "docs"), std::slice::from_ref(&copy));
    assert_eq!(read_path(&desk, &format!("docs/{copy}")), b"base and more");
    assert_eq!(row_and_record(&desk, b), (false, false), "not written: gone at close");
    for fs in [desk, laptop] {
        fs.shutdown_without_commit();
    }
}

#[test]
fn a_crash_keeps_a_written_orphan_as_a_conflict_copy() {
    let (store, desk, desk_id, laptop) = two_devices(&["report.txt"]);
    let old = ino(&desk, "docs/report.txt");
    let fh = desk.open(old, false).unwrap();
    write_path(&laptop, "docs/report.txt", b"theirs");
    laptop.sync_now().unwrap();
    let (_, time) = store.fast_forward(&desk);
    desk.write(fh, 0, b"mine, fsynced").unwrap();
    desk.fsync(old).unwrap();
    // A crash: no release, no commit.
    desk.shutdown_without_commit();
    drop(desk);

    let desk = store.drive("desk", desk_id);
    let copy = copy_name("report", ".txt", time);
    assert_eq!(names(&desk, "docs"), [copy.clone(), "report.txt".into()]);
    assert_eq!(read_path(&desk, &format!("docs/{copy}")), b"mine, fsynced");
    assert_eq!(read_path(&desk, "docs/report.txt"), b"theirs");
    assert!(desk.pending().unwrap().files > 0, "the copy waits for the next commit");
    desk.sync_now().unwrap();
    let third = store.drive("third", DeviceId::random());
    assert_eq!(read_path(&third, &format!("docs/{copy}")), b"mine, fsynced");
    for fs in [desk, laptop, third] {
        fs.shutdown_without_commit();
    }
}

/// An orphan nobody wrote is dropped at the next start, with its bytes.
#[test]
fn a_crash_drops_an_unwritten_orphan() {
    let (store, desk, desk_id, laptop) = two_devices(&["report.txt"]);
    let old = ino(&desk, "docs/report.txt");
    let _fh = desk.open(old, false).unwrap();
    write_path(&laptop, "docs/report.txt", b"theirs");
    laptop.sync_now().unwrap();
    store.fast_forward(&desk);
    desk.shutdown_without_commit();
    drop(desk);
    let desk = store.drive("desk", desk_id);
    assert_eq!(names(&desk, "docs"), ["report.txt"]);
    assert_eq!(row_and_record(&desk, old), (false, false));
    for fs in [desk, laptop] {
        fs.shutdown_without_commit();
    }
}

/// The kernel's references do not delay a written orphan's return (it
/// comes back at its last close), and keep an unwritten one, with its
/// record, until the kernel forgets it.
#[test]
fn the_kernels_references_keep_an_unwritten_orphan_until_it_forgets() {
    let (store, desk, _, laptop) = two_devices(&["a.txt", "b.txt"]);
    let (a, b) = (ino(&desk, "docs/a.txt"), ino(&desk, "docs/b.txt"));
    let (fa, fb) = (desk.open(a, false).unwrap(), desk.open(b, false).unwrap());
    desk.remember(a);
    desk.remember(b);
    write_path(&laptop, "docs/a.txt", b"theirs");
    write_path(&laptop, "docs/b.txt", b"theirs");
    laptop.sync_now().unwrap();
    let (_, time) = store.fast_forward(&desk);

    desk.write(fa, 0, b"mine").unwrap();
    desk.release(fa).unwrap();
    assert_eq!(
        read_path(&desk, &format!("docs/{}", copy_name("a", ".txt", time))),
        b"mine"
    );
    desk.release(fb).unwrap();
    assert_eq!(row_and_record(&desk, b), (true, true), "the kernel may still open it");
    desk.forget(b, 1).unwrap();
    assert_eq!(row_and_record(&desk, b), (false, false));
    assert_eq!(
        names(&desk, "docs"),
        [copy_name("a", ".txt", time), "a.txt".into(), "b.txt".into()]
    );
    for fs in [desk, laptop] {
        fs.shutdown_without_commit();
    }
}

//! The rebase on a `Local` alone: a working copy built by applying a tree
//! onto an empty drive, then a target tree applied over it, and the rows,
//! the bytes read back and the exact kernel calls checked.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::sync::Arc;

use nimbus_merge::{Content, Flat, Meta, Node, Place, TreeId, ROOT as ROOT_ID};
use nimbus_vault::{BlobKind, DeviceId, EntryKind, FileId, NewCommit, Saver, ShortId, Timestamp};

use super::{apply, Applied, Target, What};
use crate::commit::{rebuild, CommitOptions, Engine};
use crate::content::{read_state, Nodes};
use crate::kernel::{KernelCall, KernelRefs};
use crate::local::Local;
use crate::meta::inodes::{self, Row};
use crate::meta::{dentries, dirty, orphans, state, xattrs};
use crate::snapshots::Snapshots;
use crate::sync::trees::VaultTrees;
use crate::types::{Ctx, Ino, ROOT};

const T0: Timestamp = Timestamp {
    secs: 1_700_000_000,
    nanos: 0,
};
const LABEL: &str = "laptop";

pub(super) struct Env {
    rt: tokio::runtime::Runtime,
    _state: tempfile::TempDir,
    local: Arc<Local>,
    nodes: Arc<Nodes>,
    /// The last tree applied, and its commit.
    synced: Option<(TreeId, nimbus_vault::CommitId)>,
}

pub(super) fn fid(n: u8) -> FileId {
    if n == 0 {
        ROOT_ID
    } else {
        ShortId([n; 16])
    }
}

fn meta(mode: u32) -> Meta {
    Meta {
        mode,
        uid: 0,
        gid: 0,
        mtime: T0,
        ctime: T0,
        xattrs: Default::default(),
    }
}

fn place(parent: u8, name: &str) -> Place {
    Place {
        parent: fid(parent),
        name: name.as_bytes().to_vec(),
    }
}

/// A tree in the making: its nodes, and the saver holding its blobs.
pub(super) struct Draft {
    pub flat: Flat,
    saver: Saver,
}

impl Draft {
    pub fn dir(&mut self, id: u8, parent: u8, name: &str) -> &mut Self {
        self.flat.insert(
            fid(id),
            Node {
                kind: EntryKind::Dir,
                content: Content {
                    blobs: vec![],
                    size: 0,
                    target: vec![],
                    rdev: 0,
                    tree: None,
                },
                meta: meta(0o755),
                places: BTreeSet::from([place(parent, name)]),
            },
        );
        self
    }

    pub fn file(&mut self, id: u8, parent: u8, name: &str, data: &[u8]) -> &mut Self {
        let content = self.content(data);
        self.flat.insert(
            fid(id),
            Node {
                kind: EntryKind::File,
                content,
                meta: meta(0o644),
                places: BTreeSet::from([place(parent, name)]),
            },
        );
        self
    }

    pub fn symlink(&mut self, id: u8, parent: u8, name: &str, target: &str) -> &mut Self {
        self.flat.insert(
            fid(id),
            Node {
                kind: EntryKind::Symlink,
                content: Content {
                    blobs: vec![],
                    size: 0,
                    target: target.as_bytes().to_vec(),
                    rdev: 0,
                    tree: None,
                },
                meta: meta(0o777),
                places: BTreeSet::from([place(parent, name)]),
            },
        );
        self
    }

    /// New content for a file already in the draft (and a later mtime, as
    /// a write makes).
    pub fn write(&mut self, id: u8, data: &[u8]) -> &mut Self {
        let content = self.content(data);
        let n = self.flat.get_mut(&fid(id)).unwrap();
        n.content = content;
        n.meta.mtime.secs += 60;
        self
    }

    pub fn node(&mut self, id: u8) -> &mut Node {
        self.flat.get_mut(&fid(id)).unwrap()
    }

    pub fn remove(&mut self, id: u8) -> &mut Self {
        self.flat.remove(&fid(id));
        self
    }

    fn content(&self, data: &[u8]) -> Content {
        let blobs = if data.is_empty() {
            vec![]
        } else {
            vec![self.saver.save_blob_blocking(BlobKind::Data, data).unwrap()]
        };
        Content {
            blobs,
            size: data.len() as u64,
            target: vec![],
            rdev: 0,
            tree: None,
        }
    }
}

impl Env {
    pub fn new() -> Env {
        let (local, state, rt) = crate::local::test_local();
        let local = Arc::new(local);
        rebuild::import_head(&local, Ctx::ROOT).unwrap();
        local.db.commit(true).unwrap();
        Env {
            rt,
            _state: state,
            local,
            nodes: Arc::new(Nodes::default()),
            synced: None,
        }
    }

    /// A working copy holding `draft`'s tree (applied onto the empty drive).
    pub fn with(build: impl FnOnce(&mut Draft)) -> (Env, Flat) {
        let mut env = Env::new();
        let mut d = env.draft(&Flat::new());
        build(&mut d);
        let flat = d.flat.clone();
        let target = env.commit(d);
        env.apply(&target, &KernelRefs::attached());
        (env, flat)
    }

    pub fn draft(&self, flat: &Flat) -> Draft {
        let _rt = self.rt.enter();
        Draft {
            flat: flat.clone(),
            saver: Saver::new(&self.local.vault),
        }
    }

    /// Stores the draft's trees and a commit of them (another device's).
    pub fn commit(&self, d: Draft) -> Target {
        let _rt = self.rt.enter();
        let root = {
            let mut trees = VaultTrees::with_saver(&self.local.blobs, &d.saver);
            nimbus_merge::build(&mut trees, &d.flat).unwrap()
        };
        let stats = self.rt.block_on(d.saver.finish()).unwrap();
        let (head, _) = self
            .rt
            .block_on(self.local.vault.write_commit(NewCommit {
                root,
                parents: self.synced.map(|s| s.1).into_iter().collect(),
                device: DeviceId::random(),
                device_name: LABEL.into(),
                time: T0,
                message: "test".into(),
                files: 0,
                bytes: 0,
                indexes: stats.indexes,
            }))
            .unwrap();
        Target {
            head,
            root,
            device: LABEL.into(),
            time: T0,
            aliases: vec![],
        }
    }

    /// Applies `target` over the last tree applied, keeping what changed
    /// here since the committed epoch.
    pub fn apply(&mut self, target: &Target, refs: &KernelRefs) -> Applied {
        let since = self.local.db.read(state::committed_epoch).unwrap();
        let base = self.synced.map(|s| s.0);
        let applied = apply(&self.local, &self.nodes, refs, base, target, since, None).unwrap();
        self.synced = Some((target.root, target.head));
        let head = self.local.db.read(state::head).unwrap();
        assert_eq!(head, Some(target.head));
        applied
    }

    pub fn row(&self, path: &str) -> Option<Row> {
        self.local
            .db
            .read(|c| {
                let mut ino = ROOT;
                for part in path.split('/').filter(|p| !p.is_empty()) {
                    match dentries::lookup(c, ino, part.as_bytes())? {
                        Some(i) => ino = i,
                        None => return Ok(None),
                    }
                }
                inodes::get_opt(c, ino)
            })
            .unwrap()
    }

    pub fn ino(&self, path: &str) -> Ino {
        self.row(path).unwrap_or_else(|| panic!("{path} is missing")).ino
    }

    pub fn read(&self, path: &str) -> Vec<u8> {
        let node = self.nodes.get(&self.local, self.ino(path)).unwrap();
        let st = node.state.read().unwrap();
        read_state(&self.local, &st, 0, st.size as usize, false).unwrap()
    }

    pub fn names(&self, dir: &str) -> Vec<String> {
        let ino = self.ino(dir);
        self.local
            .db
            .read(|c| dentries::children(c, ino))
            .unwrap()
            .into_iter()
            .map(|(n, _)| String::from_utf8(n).unwrap())
            .collect()
    }

    /// A write here after the last commit: new content, stamped.
    pub fn edit_here(&self, path: &str, data: &[u8]) {
        self.edit_ino(self.ino(path), data);
    }

    pub fn edit_ino(&self, ino: Ino, data: &[u8]) {
        let _rt = self.rt.enter();
        let saver = Saver::new(&self.local.vault);
        let id = saver.save_blob_blocking(BlobKind::Data, data).unwrap();
        self.rt.block_on(saver.finish()).unwrap();
        let list = crate::types::ContentList(vec![(id, data.len() as u32)]);
        let epoch = self.local.cur_epoch();
        self.local
            .db
            .write(|c| {
                inodes::set_content(c, ino, &list, data.len() as u64)?;
                // A write stamps its own time.
                let t = Timestamp {
                    secs: T0.secs + 3600,
                    nanos: 0,
                };
                inodes::set_size_and_times(c, ino, data.len() as u64, t)?;
                dirty::stamp(c, ino, epoch)?;
                dirty::mark_parents(c, ino, epoch)
            })
            .unwrap();
    }

    /// A handle held open on `path` (as the POSIX face counts an open).
    pub fn open(&self, path: &str) {
        let node = self.nodes.get(&self.local, self.ino(path)).unwrap();
        node.opens.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    /// Stamps every folder changed, commits, and returns the root tree the
    /// commit wrote: the working copy as a tree, every folder rebuilt.
    pub fn commit_everything(&self) -> TreeId {
        let epoch = self.local.cur_epoch();
        self.local
            .db
            .write(|c| {
                let mut todo = vec![ROOT];
                while let Some(dir) = todo.pop() {
                    dirty::stamp(c, dir, epoch)?;
                    for (_, ino) in dentries::children(c, dir)? {
                        if inodes::get(c, ino)?.kind == EntryKind::Dir {
                            todo.push(ino);
                        }
                    }
                }
                Ok(())
            })
            .unwrap();
        let engine = Engine::new(
            self.local.clone(),
            self.nodes.clone(),
            Arc::new(Snapshots::new()),
            CommitOptions {
                device: DeviceId::random(),
                device_name: String::new(),
                ref_seen: 0,
                commit_delay: std::time::Duration::from_secs(3600),
                on_commit: None,
            },
        );
        let serial = engine.serial().unwrap();
        let built = engine.build(&serial).unwrap().expect("a commit");
        engine
            .publish(&serial, built, &mut nimbus_vault::RefCache::new())
            .unwrap();
        drop(serial);
        self.local.db.read(|c| inodes::get(c, ROOT)).unwrap().tree_id.unwrap()
    }

    pub fn read_ino(&self, ino: Ino) -> Vec<u8> {
        let node = self.nodes.get(&self.local, ino).unwrap();
        let st = node.state.read().unwrap();
        read_state(&self.local, &st, 0, st.size as usize, false).unwrap()
    }

    /// Every inode with a name, walking from the root, checking on the way
    /// that each folder's link count is 2 + its folders and each file's
    /// is its number of names.
    pub fn walk(&self) -> Vec<Row> {
        self.local
            .db
            .read(|c| {
                let mut out = Vec::new();
                let mut seen = BTreeSet::new();
                let mut todo = vec![ROOT];
                while let Some(dir) = todo.pop() {
                    let row = inodes::get(c, dir)?;
                    let kids = dentries::children(c, dir)?;
                    let mut dirs = 0;
                    for (_, ino) in kids {
                        let r = inodes::get(c, ino)?;
                        if r.kind == EntryKind::Dir {
                            dirs += 1;
                            assert_eq!(r.parent, dir, "a folder's parent");
                            todo.push(ino);
                        } else if seen.insert(ino) {
                            assert_eq!(r.nlink as usize, dentries::names_of(c, ino)?.len(), "links of {ino}");
                            out.push(r);
                        }
                    }
                    assert_eq!(row.nlink, 2 + dirs, "links of folder {dir}");
                    out.push(row);
                }
                Ok(out)
            })
            .unwrap()
    }

    pub fn root_tree(&self) -> Option<TreeId> {
        self.local.db.read(|c| inodes::get(c, ROOT)).unwrap().tree_id
    }
}

fn entry(parent: Ino, name: &str) -> KernelCall {
    KernelCall::Entry {
        parent,
        name: name.as_bytes().to_vec(),
    }
}

fn calls(list: Vec<KernelCall>) -> Vec<KernelCall> {
    list.into_iter().collect::<BTreeSet<_>>().into_iter().collect()
}

#[test]
fn a_new_file_is_a_fast_forward() {
    let (mut env, base) = Env::with(|d| {
        d.file(1, 0, "a", b"one");
    });
    assert_eq!(env.read("a"), b"one");
    let mut d = env.draft(&base);
    d.file(2, 0, "b", b"two");
    let t = env.commit(d);
    let applied = env.apply(&t, &KernelRefs::attached());
    assert_eq!(env.read("b"), b"two");
    assert_eq!(env.names("/"), ["a", "b"]);
    assert_eq!(applied.report.added, 1);
    assert_eq!(applied.calls, calls(vec![entry(ROOT, "b"), KernelCall::Inode(ROOT)]));
    let rec = crate::kernel::RecordingKernelCache::new();
    applied.send_calls(&*rec);
    assert_eq!(rec.calls(), applied.calls);
    assert_eq!(env.root_tree(), Some(t.root), "the root takes the target's tree");
    let row = env.row("b").unwrap();
    assert_eq!((row.file_id, row.nlink, row.dirty_epoch), (fid(2), 1, 0));
}

#[test]
fn a_changed_file_the_kernel_does_not_know_changes_in_place() {
    let (mut env, base) = Env::with(|d| {
        d.file(1, 0, "a", b"one");
    });
    let before = env.ino("a");
    let mut d = env.draft(&base);
    d.write(1, b"one, longer now");
    let t = env.commit(d);
    let refs = KernelRefs::attached();
    let applied = env.apply(&t, &refs);
    assert_eq!(env.ino("a"), before);
    assert_eq!(env.read("a"), b"one, longer now");
    assert_eq!(env.row("a").unwrap().mtime.secs, T0.secs + 60);
    assert_eq!(applied.report.changed, 1);
    assert_eq!(
        applied.calls,
        calls(vec![KernelCall::Inode(before), KernelCall::Attr(before)])
    );
}

#[test]
fn a_changed_file_the_kernel_knows_gets_a_new_inode() {
    let (mut env, base) = Env::with(|d| {
        d.file(1, 0, "a", b"one");
    });
    let before = env.ino("a");
    let refs = KernelRefs::attached();
    refs.remember(before);
    let mut d = env.draft(&base);
    d.write(1, b"one, longer now");
    let t = env.commit(d);
    let applied = env.apply(&t, &refs);
    let after = env.ino("a");
    assert_ne!(after, before, "no inode the kernel caches gets new content");
    assert_eq!(env.read("a"), b"one, longer now");
    // The old one has no name and waits for the kernel to forget it.
    let old = env.local.db.read(|c| inodes::get(c, before)).unwrap();
    assert_eq!(old.nlink, 0);
    assert_eq!(env.row("a").unwrap().file_id, fid(1));
    assert_eq!(
        applied.calls,
        calls(vec![entry(ROOT, "a"), KernelCall::Inode(ROOT), KernelCall::Attr(after)])
    );
    // Unattached counts cannot tell: a new inode too.
    let mut d = env.draft(&t_flat(&env, &t));
    d.write(1, b"three");
    let t2 = env.commit(d);
    env.apply(&t2, &KernelRefs::unattached());
    assert_ne!(env.ino("a"), after);
    assert_eq!(env.read("a"), b"three");
}

/// The target's flat map, read back (for a second step).
fn t_flat(env: &Env, t: &Target) -> Flat {
    let mut trees = VaultTrees::reader(&env.local.blobs);
    nimbus_merge::flatten(&mut trees, &[None, Some(t.root)])
        .unwrap()
        .pop()
        .unwrap()
}

#[test]
fn a_rename_moves_the_names() {
    let (mut env, base) = Env::with(|d| {
        d.dir(1, 0, "docs").file(2, 1, "a", b"one").dir(3, 0, "old");
    });
    let a = env.ino("docs/a");
    let (docs, old) = (env.ino("docs"), env.ino("old"));
    let mut d = env.draft(&base);
    d.node(2).places = BTreeSet::from([place(0, "b")]);
    d.node(3).places = BTreeSet::from([place(1, "new")]);
    let t = env.commit(d);
    let applied = env.apply(&t, &KernelRefs::attached());
    assert_eq!(env.ino("b"), a);
    assert_eq!(env.ino("docs/new"), old);
    assert_eq!(env.names("/"), ["b", "docs"]);
    assert_eq!(env.row("docs").unwrap().nlink, 3, "docs holds a folder now");
    assert_eq!(env.row("/").unwrap().nlink, 3);
    assert_eq!(env.row("docs/new").unwrap().parent, docs);
    assert_eq!(applied.report.moved, 2);
    let told: Vec<_> = applied.report.touched.values().map(|t| (t.what, t.dir)).collect();
    assert_eq!(
        told,
        [(What::Moved, false), (What::Moved, true)],
        "a move is a move, though its ctime changed"
    );
    assert_eq!(
        applied.calls,
        calls(vec![
            entry(docs, "a"),
            entry(ROOT, "b"),
            entry(ROOT, "old"),
            entry(docs, "new"),
            KernelCall::Inode(ROOT),
            KernelCall::Inode(docs),
        ])
    );
    assert_eq!(env.root_tree(), Some(t.root));
    assert_eq!(env.commit_everything(), t.root);
}

#[test]
fn a_swap_of_two_names_keeps_each_inode() {
    let (mut env, base) = Env::with(|d| {
        d.file(1, 0, "a", b"one").file(2, 0, "b", b"two");
    });
    let (a, b) = (env.ino("a"), env.ino("b"));
    let mut d = env.draft(&base);
    d.node(1).places = BTreeSet::from([place(0, "b")]);
    d.node(2).places = BTreeSet::from([place(0, "a")]);
    let t = env.commit(d);
    env.apply(&t, &KernelRefs::attached());
    assert_eq!((env.ino("a"), env.ino("b")), (b, a));
    assert_eq!((env.read("a"), env.read("b")), (b"two".to_vec(), b"one".to_vec()));
    assert_eq!(env.commit_everything(), t.root);
}

#[test]
fn the_same_edit_on_both_sides_makes_no_copy() {
    let (mut env, base) = Env::with(|d| {
        d.file(1, 0, "a", b"one");
    });
    env.edit_here("a", b"same");
    let mut d = env.draft(&base);
    d.write(1, b"same");
    let t = env.commit(d);
    let applied = env.apply(&t, &KernelRefs::attached());
    assert!(applied.report.copies.is_empty());
    assert_eq!(env.names("/"), ["a"]);
}

#[test]
fn a_pinned_file_stays_pinned_in_its_new_inode() {
    let (mut env, base) = Env::with(|d| {
        d.file(1, 0, "a", b"one");
    });
    let before = env.ino("a");
    env.local.db.write(|c| crate::meta::pins::set(c, before, true)).unwrap();
    let refs = KernelRefs::attached();
    refs.remember(before);
    let mut d = env.draft(&base);
    d.write(1, b"two");
    let t = env.commit(d);
    env.apply(&t, &refs);
    let after = env.ino("a");
    assert_ne!(after, before);
    assert!(env.local.db.read(|c| crate::meta::pins::is_pinned(c, after)).unwrap());
}

/// Deletes `name` in folder `dir` here, after the last commit, as
/// `unlink` and `rmdir` do.
fn delete_here(env: &Env, dir: &str, name: &str) {
    let parent = env.ino(dir);
    let epoch = env.local.cur_epoch();
    env.local
        .db
        .write(|c| {
            let ino = dentries::lookup(c, parent, name.as_bytes())?.unwrap();
            let row = inodes::get(c, ino)?;
            dentries::remove(c, parent, name.as_bytes())?;
            inodes::delete(c, ino)?;
            if row.kind == EntryKind::Dir {
                inodes::add_nlink(c, parent, -1)?;
            }
            dirty::mark_dir(c, parent, epoch)
        })
        .unwrap();
}

/// Moves `from` (a name in the root) to `to` (in folder `dir`) here.
fn move_here(env: &Env, from: &str, dir: &str, to: &str) {
    let (ino, dest) = (env.ino(from), env.ino(dir));
    let epoch = env.local.cur_epoch();
    env.local
        .db
        .write(|c| {
            dentries::rename(c, ROOT, from.as_bytes(), dest, to.as_bytes())?;
            if inodes::get(c, ino)?.kind == EntryKind::Dir {
                inodes::set_parent(c, ino, dest)?;
                inodes::add_nlink(c, ROOT, -1)?;
                inodes::add_nlink(c, dest, 1)?;
            }
            dirty::mark_dir(c, ROOT, epoch)?;
            dirty::mark_dir(c, dest, epoch)
        })
        .unwrap();
}

#[test]
fn a_file_deleted_here_and_changed_there_comes_back_with_its_folder() {
    let (mut env, base) = Env::with(|d| {
        d.dir(1, 0, "d").file(2, 1, "a", b"one").file(3, 1, "b", b"two");
    });
    delete_here(&env, "d", "a");
    delete_here(&env, "d", "b");
    delete_here(&env, "/", "d");
    let mut d = env.draft(&base);
    d.write(2, b"edited there");
    let t = env.commit(d);
    let applied = env.apply(&t, &KernelRefs::attached());
    assert_eq!(env.read("d/a"), b"edited there", "an edit beats a delete");
    assert_eq!(env.names("d"), ["a"], "only what is needed comes back");
    let since = env.local.db.read(state::committed_epoch).unwrap();
    assert!(
        env.row("d").unwrap().dirty_epoch > since,
        "the next commit writes the folder"
    );
    assert_eq!(applied.report.kept, 1, "the file; its folder only came along");
    env.walk();
    env.commit_everything();
}

#[test]
fn a_move_here_beats_a_move_there_and_a_cycle_is_broken() {
    let (mut env, base) = Env::with(|d| {
        d.dir(1, 0, "x").dir(2, 0, "y").file(3, 0, "f", b"one");
    });
    // Here: x into y, f into y. There: y into x, f renamed to g.
    move_here(&env, "x", "y", "x");
    move_here(&env, "f", "y", "f");
    let mut d = env.draft(&base);
    d.node(2).places = BTreeSet::from([place(1, "y")]);
    d.node(3).places = BTreeSet::from([place(0, "g")]);
    let t = env.commit(d);
    env.apply(&t, &KernelRefs::attached());
    assert!(env.row("y/f").is_some(), "the person's move stays");
    assert!(env.row("g").is_none());
    // y cannot go into x, which is inside y now: it stays where it is.
    assert_eq!(env.row("y").unwrap().file_id, fid(2));
    assert_eq!(env.row("y/x").unwrap().file_id, fid(1));
    let rows = env.walk();
    assert!(rows.iter().any(|r| r.file_id == fid(2)) && rows.iter().any(|r| r.file_id == fid(1)));
    env.commit_everything();
}

#[test]
fn a_hard_link_loses_the_name_removed_there() {
    let (mut env, base) = Env::with(|d| {
        d.file(1, 0, "a", b"one");
        d.node(1).places.insert(place(0, "b"));
    });
    assert_eq!(env.row("a").unwrap().nlink, 2);
    let mut d = env.draft(&base);
    d.node(1).places = BTreeSet::from([place(0, "b")]);
    let t = env.commit(d);
    let applied = env.apply(&t, &KernelRefs::attached());
    assert_eq!(env.names("/"), ["b"]);
    assert_eq!(env.row("b").unwrap().nlink, 1);
    assert_eq!(applied.calls, calls(vec![entry(ROOT, "a"), KernelCall::Inode(ROOT)]));
    assert_eq!(env.commit_everything(), t.root);
}

/// A second name the target gives a file whose first name is in a folder
/// the same in the base and the target: the flattening does not read that
/// folder, so the base lacks the file and the target has it only by its
/// new name. The row holding it still gets that name (it did not, and the
/// devices never converged: docs/SYNC.md §6.2).
#[test]
fn a_hard_link_made_there_beside_an_unread_folder_gets_its_new_name() {
    let (mut env, base) = Env::with(|d| {
        d.dir(1, 0, "d").file(2, 1, "a", b"one");
    });
    let mut d = env.draft(&base);
    d.node(2).places.insert(place(0, "b"));
    let t = env.commit(d);
    let mut trees = VaultTrees::reader(&env.local.blobs);
    let flats = nimbus_merge::flatten(&mut trees, &[env.synced.map(|s| s.0), Some(t.root)]).unwrap();
    assert!(!flats[0].contains_key(&fid(2)), "the folder is taken whole");
    assert_eq!(flats[1][&fid(2)].places, BTreeSet::from([place(0, "b")]));
    env.apply(&t, &KernelRefs::attached());
    assert_eq!(env.names("/"), ["b", "d"]);
    assert_eq!(env.ino("b"), env.ino("d/a"));
    assert_eq!(env.row("b").unwrap().nlink, 2);
    assert_eq!(env.read("b"), b"one");
    assert_eq!(env.commit_everything(), t.root);
}

#[test]
fn a_delete_removes_the_file_and_an_emptied_folder() {
    let (mut env, base) = Env::with(|d| {
        d.dir(1, 0, "d").file(2, 1, "a", b"one").file(3, 0, "b", b"two");
    });
    let (dir, a, b) = (env.ino("d"), env.ino("d/a"), env.ino("b"));
    let refs = KernelRefs::attached();
    refs.remember(b);
    let mut d = env.draft(&base);
    d.remove(1).remove(2).remove(3);
    let t = env.commit(d);
    let applied = env.apply(&t, &refs);
    assert!(env.names("/").is_empty());
    assert_eq!(applied.report.deleted, 3);
    let told: Vec<_> = applied
        .report
        .touched
        .values()
        .map(|t| (t.what, t.dir, t.path.clone()))
        .collect();
    assert_eq!(
        told,
        [
            (What::Deleted, true, Some("/d".into())),
            (What::Deleted, false, Some("/d/a".into())),
            (What::Deleted, false, Some("/b".into())),
        ],
        "each deleted entry, with the path it had"
    );
    assert!(env.local.db.read(|c| inodes::get_opt(c, a)).unwrap().is_none());
    // The kernel may still open `b` by number: it stays, nameless.
    assert_eq!(env.local.db.read(|c| inodes::get(c, b)).unwrap().nlink, 0);
    assert_eq!(env.row("/").unwrap().nlink, 2);
    let deleted = |parent, ino, name: &str| KernelCall::Deleted {
        parent,
        ino,
        name: name.as_bytes().to_vec(),
    };
    assert_eq!(
        applied.calls,
        calls(vec![
            deleted(dir, a, "a"),
            deleted(ROOT, dir, "d"),
            deleted(ROOT, b, "b"),
            KernelCall::Inode(dir),
            KernelCall::Inode(ROOT),
        ])
    );
    assert_eq!(env.commit_everything(), t.root);
}

#[test]
fn an_edit_here_beats_a_delete_there() {
    let (mut env, base) = Env::with(|d| {
        d.dir(1, 0, "d").file(2, 1, "a", b"one").file(3, 1, "b", b"two");
    });
    env.edit_here("d/a", b"mine");
    let mut d = env.draft(&base);
    d.remove(1).remove(2).remove(3);
    let t = env.commit(d);
    let applied = env.apply(&t, &KernelRefs::attached());
    assert_eq!(env.read("d/a"), b"mine");
    assert_eq!(
        env.names("d"),
        ["a"],
        "the unchanged file goes, the folder stays for the edited one"
    );
    assert_eq!((applied.report.kept, applied.report.deleted), (2, 1));
    let since = env.local.db.read(state::committed_epoch).unwrap();
    assert!(
        env.row("d").unwrap().dirty_epoch > since,
        "the next commit writes the kept folder"
    );
}

/// A change here inside a folder the target moves: the folder's new
/// parents are stamped too, so the next commit rebuilds them instead of
/// taking the target's trees, which lack the change (found by
/// tests/sync/run.sh: a file written on one device while the other moved
/// a folder above it stayed on that device alone, which said it was up to
/// date).
#[test]
fn a_change_inside_a_folder_moved_there_is_in_the_next_commit() {
    let (mut env, base) = Env::with(|d| {
        d.dir(1, 0, "p")
            .dir(2, 1, "q")
            .dir(3, 2, "r")
            .file(4, 3, "f", b"old")
            .dir(5, 0, "x");
    });
    env.edit_here("p/q/r/f", b"mine");
    let mut d = env.draft(&base);
    d.node(2).places = BTreeSet::from([place(5, "q")]);
    let t = env.commit(d);
    env.apply(&t, &KernelRefs::attached());
    assert_eq!(env.read("x/q/r/f"), b"mine");
    let since = env.local.db.read(state::committed_epoch).unwrap();
    for dir in ["x/q/r", "x/q", "x", "/"] {
        assert!(
            env.row(dir).unwrap().dirty_epoch > since,
            "{dir} holds a change made here: the next commit must rebuild it"
        );
    }
}

/// A file moved here and moved elsewhere there keeps the person's place;
/// the folder the target put it in holds less here than the target's tree
/// says, so it is stamped instead of taking that tree (found by
/// tests/sync/run.sh: the next commit carried the file in both folders,
/// which this device did not show, while it said it was up to date).
#[test]
fn a_folder_the_target_moved_a_file_into_is_rebuilt_when_the_move_here_wins() {
    let (mut env, base) = Env::with(|d| {
        d.dir(1, 0, "a").dir(2, 0, "b").file(3, 0, "f", b"one");
    });
    move_here(&env, "f", "a", "f");
    let mut d = env.draft(&base);
    d.node(3).places = BTreeSet::from([place(2, "f")]);
    let t = env.commit(d);
    env.apply(&t, &KernelRefs::attached());
    assert!(env.row("a/f").is_some(), "the person's move stays");
    assert!(env.row("b/f").is_none());
    let since = env.local.db.read(state::committed_epoch).unwrap();
    assert!(
        env.row("b").unwrap().dirty_epoch > since,
        "b differs from the target's tree: the next commit must rebuild it"
    );
}

#[test]
fn content_changed_on_both_sides_keeps_both() {
    let (mut env, base) = Env::with(|d| {
        d.file(1, 0, "report.txt", b"base");
    });
    let mine = env.ino("report.txt");
    env.edit_here("report.txt", b"mine");
    let mut d = env.draft(&base);
    d.write(1, b"theirs");
    let t = env.commit(d);
    let applied = env.apply(&t, &KernelRefs::attached());
    let copy = "report (conflict laptop 2023-11-14 22.13 UTC).txt";
    assert_eq!(env.names("/"), [copy, "report.txt"]);
    assert_eq!(env.ino("report.txt"), mine, "the person's version keeps name and inode");
    assert_eq!(env.read("report.txt"), b"mine");
    assert_eq!(env.read(copy), b"theirs");
    let row = env.row(copy).unwrap();
    assert_eq!(row.dirty_epoch, 0, "no upload: its blobs are in the vault");
    assert_ne!(row.file_id, fid(1));
    assert_eq!(applied.report.copies, vec![(row.ino, fid(1))]);
    assert!(
        applied.report.touched.is_empty(),
        "nothing of theirs replaced what is here"
    );
    assert!(env.row("/").unwrap().dirty_epoch > 0, "its folder is written again");
    assert_eq!(applied.calls, calls(vec![entry(ROOT, copy), KernelCall::Inode(ROOT)]));
}

/// An open file the target changed or deleted loses its names; its
/// handles keep the version they opened, and it is recorded where its name
/// was, for its last close.
#[test]
fn an_open_file_changed_or_deleted_there_becomes_a_merge_orphan() {
    let (mut env, base) = Env::with(|d| {
        d.dir(1, 0, "d").file(2, 1, "db", b"base").file(3, 0, "log", b"x");
    });
    let (dir, db, log) = (env.ino("d"), env.ino("d/db"), env.ino("log"));
    env.open("d/db");
    env.open("log");
    let mut d = env.draft(&base);
    d.write(2, b"theirs").remove(3);
    let t = env.commit(d);
    let applied = env.apply(&t, &KernelRefs::attached());
    assert_ne!(env.ino("d/db"), db, "the target's version takes the name");
    assert_eq!(env.read("d/db"), b"theirs");
    assert_eq!(env.read_ino(db), b"base", "its handles keep what they opened");
    assert_eq!(env.read_ino(log), b"x");
    assert!(env.row("log").is_none(), "deleted there: no name left");
    let (rows, orphans) = env
        .local
        .db
        .read(|c| Ok((vec![inodes::get(c, db)?, inodes::get(c, log)?], orphans::all(c)?)))
        .unwrap();
    assert_eq!((rows[0].nlink, rows[1].nlink), (0, 0));
    let orphan = |ino, parent, name: &str, epoch| orphans::Orphan {
        ino,
        parent,
        name: name.as_bytes().to_vec(),
        epoch,
        time: T0,
    };
    let mut want = vec![
        orphan(db, fid(1), "db", rows[0].dirty_epoch),
        orphan(log, ROOT_ID, "log", rows[1].dirty_epoch),
    ];
    want.sort_by_key(|o| o.ino);
    assert_eq!(orphans, want);
    assert_eq!((applied.report.changed, applied.report.deleted), (1, 1));
    assert!(applied.report.copies.is_empty(), "no copy unless written");
    assert_eq!(
        applied.calls,
        calls(vec![
            entry(dir, "db"),
            // The new inode's mtime is the target's (set after the copy).
            KernelCall::Attr(env.ino("d/db")),
            KernelCall::Deleted {
                parent: ROOT,
                ino: log,
                name: b"log".to_vec()
            },
            KernelCall::Inode(dir),
            KernelCall::Inode(ROOT),
        ])
    );
    assert_eq!(env.commit_everything(), t.root, "nothing of the orphans is committed");
}

/// An open file written since the commit is a changed file: it keeps its
/// name, and the target's version becomes a conflict copy.
#[test]
fn an_open_file_written_here_keeps_its_name() {
    let (mut env, base) = Env::with(|d| {
        d.file(1, 0, "db", b"base");
    });
    let db = env.ino("db");
    // Written (as the POSIX face writes, through the open node).
    env.edit_here("db", b"mine");
    env.open("db");
    let mut d = env.draft(&base);
    d.write(1, b"theirs");
    let t = env.commit(d);
    let applied = env.apply(&t, &KernelRefs::attached());
    assert_eq!(env.ino("db"), db);
    assert_eq!(env.read("db"), b"mine");
    assert_eq!(env.read("db (conflict laptop 2023-11-14 22.13 UTC)"), b"theirs");
    assert_eq!(applied.report.copies.len(), 1);
    assert!(env.local.db.read(orphans::all).unwrap().is_empty());
}

#[test]
fn a_meta_change_is_in_place() {
    let (mut env, base) = Env::with(|d| {
        d.file(1, 0, "a", b"one").dir(2, 0, "d");
    });
    let (a, dir) = (env.ino("a"), env.ino("d"));
    let refs = KernelRefs::attached();
    refs.remember(a);
    let mut d = env.draft(&base);
    d.node(1).meta.mode = 0o600;
    d.node(1).meta.xattrs.insert(b"user.tag".to_vec(), b"red".to_vec());
    d.node(2).meta.mode = 0o700;
    let t = env.commit(d);
    let applied = env.apply(&t, &refs);
    assert_eq!(env.ino("a"), a, "mode and xattrs are not cached with the pages");
    assert_eq!(env.row("a").unwrap().mode, 0o600);
    assert_eq!(env.row("d").unwrap().mode, 0o700);
    let x = env.local.db.read(|c| xattrs::get(c, a, b"user.tag")).unwrap();
    assert_eq!(x.as_deref(), Some(&b"red"[..]));
    assert_eq!(applied.report.meta, 2);
    assert_eq!(applied.calls, calls(vec![KernelCall::Attr(a), KernelCall::Attr(dir)]));
    assert_eq!(env.commit_everything(), t.root);
}

#[test]
fn a_meta_change_here_stays_per_field() {
    let (mut env, base) = Env::with(|d| {
        d.file(1, 0, "a", b"one");
    });
    let a = env.ino("a");
    env.local
        .db
        .write(|c| {
            let r = inodes::get(c, a)?;
            let attrs = inodes::Attrs {
                mode: 0o640,
                uid: r.uid,
                gid: r.gid,
                atime: r.atime,
                mtime: r.mtime,
                ctime: r.ctime,
            };
            inodes::set_attrs(c, a, &attrs)
        })
        .unwrap();
    let mut d = env.draft(&base);
    d.node(1).meta.mode = 0o600;
    d.node(1).meta.uid = 7;
    let t = env.commit(d);
    env.apply(&t, &KernelRefs::attached());
    let row = env.row("a").unwrap();
    assert_eq!((row.mode, row.uid), (0o640, 7), "the person's mode, their owner");
}

#[test]
fn a_new_folder_comes_with_its_contents() {
    let (mut env, base) = Env::with(|d| {
        d.file(1, 0, "a", b"one");
    });
    let mut d = env.draft(&base);
    d.dir(2, 0, "photos")
        .dir(3, 2, "2026")
        .file(4, 3, "x.jpg", b"jpeg")
        .symlink(5, 2, "latest", "2026/x.jpg")
        .file(6, 2, "one", b"linked");
    d.node(6).places.insert(place(3, "again"));
    let t = env.commit(d);
    let applied = env.apply(&t, &KernelRefs::attached());
    assert_eq!(env.read("photos/2026/x.jpg"), b"jpeg");
    assert_eq!(env.row("photos/latest").unwrap().target, b"2026/x.jpg");
    assert_eq!(
        env.ino("photos/one"),
        env.ino("photos/2026/again"),
        "a hard link is one inode"
    );
    assert_eq!(env.row("photos/one").unwrap().nlink, 2);
    assert_eq!(env.row("photos").unwrap().nlink, 3);
    assert_eq!(env.row("/").unwrap().nlink, 3);
    assert_eq!(applied.report.added, 5);
    let dirs: Vec<bool> = applied.report.touched.values().map(|t| t.dir).collect();
    assert_eq!(
        dirs,
        [true, true, false, false, false],
        "ids 2 to 6: two folders, three entries"
    );
    assert!(applied.report.touched.values().all(|t| t.what == What::Added));
    assert!(applied.report.arrived_copies.is_empty());
    assert_eq!(env.commit_everything(), t.root);
}

#[test]
fn a_copy_another_device_made_arrives_as_a_copy() {
    let (mut env, base) = Env::with(|d| {
        d.file(1, 0, "notes.txt", b"mine");
    });
    let mut d = env.draft(&base);
    d.file(2, 0, "notes (conflict desk 2026-12-07 14.05 UTC).txt", b"theirs")
        .file(3, 0, "plain.txt", b"new");
    let t = env.commit(d);
    let applied = env.apply(&t, &KernelRefs::attached());
    assert_eq!(applied.report.arrived_copies, vec![fid(2)]);
    assert_eq!(applied.report.added, 2);
    assert!(applied.report.copies.is_empty(), "no copy was made here");
}

#[test]
fn a_name_taken_here_gives_theirs_a_conflict_name() {
    let (mut env, base) = Env::with(|d| {
        d.file(1, 0, "a", b"one");
    });
    // Made here after the last commit, with the name the target uses.
    let epoch = env.local.cur_epoch();
    env.local
        .db
        .write(|c| {
            let ino = inodes::insert(c, EntryKind::File, 0o644, 0, 0, 0, 1, T0, ROOT, &fid(9), None, epoch)?;
            dentries::add(c, ROOT, b"b", ino)?;
            dirty::mark_dir(c, ROOT, epoch)
        })
        .unwrap();
    let mine = env.ino("b");
    let mut d = env.draft(&base);
    d.file(2, 0, "b", b"theirs");
    let t = env.commit(d);
    env.apply(&t, &KernelRefs::attached());
    assert_eq!(env.ino("b"), mine);
    assert_eq!(env.read("b (conflict laptop 2023-11-14 22.13 UTC)"), b"theirs");
}

#[test]
fn an_alias_relabels_the_inode() {
    let (mut env, base) = Env::with(|d| {
        d.dir(1, 0, "shared").file(2, 1, "mine", b"m");
    });
    let shared = env.ino("shared");
    // The merge kept the other device's id for the folder both made.
    let mut flat = base.clone();
    let node = flat.remove(&fid(1)).unwrap();
    flat.insert(fid(7), node);
    flat.get_mut(&fid(2)).unwrap().places = BTreeSet::from([place(7, "mine")]);
    let mut d = env.draft(&flat);
    d.file(8, 7, "theirs", b"t");
    let mut t = env.commit(d);
    t.aliases = vec![(fid(1), fid(7))];
    let applied = env.apply(&t, &KernelRefs::attached());
    assert_eq!(env.ino("shared"), shared);
    assert_eq!(env.row("shared").unwrap().file_id, fid(7));
    assert_eq!(env.names("shared"), ["mine", "theirs"]);
    assert_eq!(applied.report.deleted, 0);
    assert_eq!(env.commit_everything(), t.root);
}

mod props {
    use super::*;
    use proptest::prelude::*;

    /// Cases per property: `NIMBUS_APPLY_CASES`, 64 by default.
    fn cases() -> u32 {
        std::env::var("NIMBUS_APPLY_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(64)
    }

    /// A small random tree from `seed`: ids 1..=8 (1, 4 and 7 folders, as
    /// an id never changes kind), each under the root or an earlier
    /// folder, names from four.
    fn tree(d: &mut Draft, seed: &[u8]) {
        let names = ["a", "b", "c", "d"];
        let mut dirs = vec![0u8];
        let mut taken = BTreeSet::new();
        for (i, s) in seed.chunks(3).enumerate().take(8) {
            let id = i as u8 + 1;
            if s[0] % 3 == 0 {
                continue;
            }
            let parent = dirs[s[1] as usize % dirs.len()];
            let name = names[(s[2] % 4) as usize];
            if !taken.insert((parent, name)) {
                continue;
            }
            if id % 3 == 1 {
                d.dir(id, parent, name);
                dirs.push(id);
            } else {
                let data = [b'x' + (s[1] % 3)];
                d.file(id, parent, name, &data);
                d.node(id).meta.mode = 0o600 + u32::from(s[2] % 2) * 0o44;
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

        /// With edits and open files here: every edit stays at its inode,
        /// every version the target brought is in the working copy (at
        /// its name or in a conflict copy), the links add up, and the
        /// next commit builds.
        #[test]
        fn applying_keeps_every_local_edit_and_every_new_version(
            base in proptest::collection::vec(any::<u8>(), 24),
            target in proptest::collection::vec(any::<u8>(), 24),
            edits in proptest::collection::vec(any::<u8>(), 8),
        ) {
            let (mut env, base_flat) = Env::with(|d| tree(d, &base));
            let (mut mine, mut open) = (Vec::new(), Vec::new());
            for (i, e) in edits.iter().enumerate() {
                let id = fid(i as u8 + 1);
                if !base_flat.get(&id).is_some_and(|n| n.kind == EntryKind::File) {
                    continue;
                }
                let ino = env.local.db.read(|c| inodes::by_file_id(c, &id)).unwrap()[0].ino;
                match e % 3 {
                    0 => {}
                    1 => {
                        let data = format!("mine {i}").into_bytes();
                        env.edit_ino(ino, &data);
                        mine.push((ino, data));
                    }
                    _ => {
                        let node = env.nodes.get(&env.local, ino).unwrap();
                        node.opens.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
                        open.push((ino, env.read_ino(ino)));
                    }
                }
            }
            let mut d = env.draft(&Flat::new());
            tree(&mut d, &target);
            let t_flat = d.flat.clone();
            let t = env.commit(d);
            env.apply(&t, &KernelRefs::attached());
            let rows = env.walk();
            for (ino, data) in &mine {
                prop_assert!(rows.iter().any(|r| r.ino == *ino), "an edited file lost its name");
                prop_assert_eq!(&env.read_ino(*ino), data);
            }
            // An open file keeps its version for its handles: with its
            // name, or recorded as a merge orphan for its last close.
            let recorded = env.local.db.read(orphans::all).unwrap();
            for (ino, data) in &open {
                let named = rows.iter().any(|r| r.ino == *ino);
                let orphan = recorded.iter().any(|o| o.ino == *ino);
                prop_assert!(named != orphan, "an open file is neither named nor recorded, or both");
                prop_assert_eq!(&env.read_ino(*ino), data);
            }
            let here: BTreeSet<Vec<nimbus_vault::BlobId>> = rows
                .iter()
                .map(|r| r.content.0.iter().map(|(id, _)| *id).collect())
                .collect();
            for (id, n) in &t_flat {
                let new = base_flat.get(id).is_none_or(|b| b.content != n.content);
                if n.kind == EntryKind::File && new {
                    prop_assert!(here.contains(&n.content.blobs), "a version the target brought is gone");
                }
            }
            env.commit_everything();
        }

        /// With no change here, applying the target onto the base yields
        /// exactly the target's tree, and so does committing every folder.
        #[test]
        fn applying_with_no_local_change_gives_the_target(
            base in proptest::collection::vec(any::<u8>(), 24),
            target in proptest::collection::vec(any::<u8>(), 24),
            knows in any::<bool>(),
        ) {
            let (mut env, _) = Env::with(|d| tree(d, &base));
            let mut d = env.draft(&Flat::new());
            tree(&mut d, &target);
            let t = env.commit(d);
            let refs = if knows { KernelRefs::unattached() } else { KernelRefs::attached() };
            env.apply(&t, &refs);
            prop_assert_eq!(env.root_tree(), Some(t.root));
            prop_assert_eq!(env.commit_everything(), t.root);
        }
    }
}

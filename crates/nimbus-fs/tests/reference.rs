//! The core against a reference model: random sequences of operations
//! (create, write, read, truncate, rename, link, unlink, mkdir, rmdir,
//! setattr, fsync, commit, remount, rebuild) run on `Fs` and on a plain
//! in-memory model, compared after every step: the result of the operation
//! and the whole visible tree. On a failure proptest shrinks the sequence
//! and the panic prints the shortest one it found.
//!
//! `NIMBUS_REFMODEL_CASES` sets the number of sequences (default 128 over
//! the in-memory store, a quarter of that over a local folder);
//! `PROPTEST_RNG_SEED` fixes them (`tests/run.sh` sets it, so CI is
//! reproducible).
//!
//! Where POSIX allows more than one error, the model answers the one the
//! core checks first (the kernel's VFS sorts out most of those cases before
//! a mount adapter sees the call).

#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use nimbus_backend::{DynBackend, MemoryBackend};
use nimbus_fs::{Ctx, ErrorKind, Fs, FsOptions, Ino, RenameFlags, SetAttr, SetTime, ROOT};
use nimbus_vault::chunker::ChunkerParams;
use nimbus_vault::{DeviceId, EntryKind, KdfParams, Timestamp, Vault, VaultParams};
use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestError, TestRunner};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;
use tokio::runtime::Runtime;

/// Operations per sequence, at most.
const MAX_OPS: usize = 40;

/// The paths operations name: three names in up to two levels, so
/// operations collide often. (Renames can still nest folders deeper; the
/// tree comparison walks everything.)
const PATHS: [&str; 12] = [
    "a", "b", "c", "a/a", "a/b", "a/c", "b/a", "b/b", "b/c", "c/a", "c/b", "c/c",
];

/// A path an operation names: one of `PATHS`, or the n-th of those the
/// model holds right now (any, files only or folders only), so most
/// operations find what they act on. Before a step runs, `Op::concrete`
/// turns each path into a `Name`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum P {
    Name(u8),
    Existing(u8),
    File(u8),
    Dir(u8),
    /// A name not taken, in a folder that exists.
    Free(u8),
}

impl P {
    fn s(self) -> &'static str {
        match self {
            P::Name(i) => PATHS[i as usize % PATHS.len()],
            _ => panic!("a path was not made concrete before its step"),
        }
    }

    fn concrete(self, m: &Model) -> P {
        let (n, want): (u8, fn(&Model, Id) -> bool) = match self {
            P::Name(_) => return self,
            P::Existing(n) => (n, |_, _| true),
            P::File(n) => (n, |m, id| !m.is_dir(id)),
            P::Dir(n) => (n, |m, id| m.is_dir(id)),
            P::Free(n) => {
                let free = |p: &str| {
                    let (dir, name) = split(p);
                    m.resolve(dir)
                        .is_ok_and(|d| m.children(d).is_some_and(|c| !c.contains_key(name)))
                };
                let there: Vec<u8> = (0..PATHS.len() as u8).filter(|&i| free(PATHS[i as usize])).collect();
                return match there.len() {
                    0 => P::Name(n),
                    len => P::Name(there[n as usize % len]),
                };
            }
        };
        let there: Vec<u8> = (0..PATHS.len() as u8)
            .filter(|&i| m.resolve(PATHS[i as usize]).is_ok_and(|id| want(m, id)))
            .collect();
        match there.len() {
            0 => P::Name(n),
            len => P::Name(there[n as usize % len]),
        }
    }
}

impl fmt::Debug for P {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            P::Name(_) => write!(f, "{:?}", self.s()),
            P::Existing(n) => write!(f, "existing#{n}"),
            P::File(n) => write!(f, "file#{n}"),
            P::Dir(n) => write!(f, "dir#{n}"),
            P::Free(n) => write!(f, "free#{n}"),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Time {
    Now,
    At(i64, u32),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum How {
    Replace,
    NoReplace,
    Exchange,
}

#[derive(Clone, Debug)]
enum Op {
    /// `open(O_CREAT | O_EXCL)`, then close.
    Create(P, u32),
    Mkdir(P, u32),
    /// Open, write `len` bytes made from `seed` at `off`, close.
    Write {
        path: P,
        off: u64,
        len: usize,
        seed: u8,
    },
    /// Open, read at most `len` bytes at `off`, close.
    Read {
        path: P,
        off: u64,
        len: u32,
    },
    /// `setattr` of the size, as `truncate(2)` arrives.
    Truncate(P, u64),
    /// `open(O_TRUNC)`, then close.
    OpenTruncate(P),
    /// Two size changes in a row: cut to `cut`, then extend to `to` (as
    /// `truncate -s` twice, or a program that shrinks and grows a file in
    /// place). What was cut off must read as zeros, also when the cut fell
    /// inside a block staged since the last commit.
    Regrow {
        path: P,
        cut: u64,
        to: u64,
    },
    Rename(P, P, How),
    Link(P, P),
    Unlink(P),
    Rmdir(P),
    SetAttr {
        path: P,
        mode: Option<u32>,
        atime: Option<Time>,
        mtime: Option<Time>,
    },
    Fsync(P),
    /// A commit to the vault: `sync_now`, or an `fsync` of the root.
    Commit {
        fsyncdir: bool,
    },
    /// Drop the `Fs` and load it again from the same state folder: after
    /// a clean stop (which commits) or a stop without a commit.
    Remount {
        clean: bool,
    },
    /// Drop the `Fs` and load it from the vault on a new, empty state
    /// folder: only what was committed is there.
    Rebuild,
}

impl Op {
    /// The step with every path named as it is in `m` now.
    fn concrete(&self, m: &Model) -> Op {
        let c = |p: P| p.concrete(m);
        match self.clone() {
            Op::Create(p, mode) => Op::Create(c(p), mode),
            Op::Mkdir(p, mode) => Op::Mkdir(c(p), mode),
            Op::Write { path, off, len, seed } => Op::Write {
                path: c(path),
                off,
                len,
                seed,
            },
            Op::Read { path, off, len } => Op::Read {
                path: c(path),
                off,
                len,
            },
            Op::Truncate(p, size) => Op::Truncate(c(p), size),
            Op::OpenTruncate(p) => Op::OpenTruncate(c(p)),
            Op::Regrow { path, cut, to } => Op::Regrow { path: c(path), cut, to },
            Op::Rename(a, b, how) => Op::Rename(c(a), c(b), how),
            Op::Link(a, b) => Op::Link(c(a), c(b)),
            Op::Unlink(p) => Op::Unlink(c(p)),
            Op::Rmdir(p) => Op::Rmdir(c(p)),
            Op::SetAttr {
                path,
                mode,
                atime,
                mtime,
            } => Op::SetAttr {
                path: c(path),
                mode,
                atime,
                mtime,
            },
            Op::Fsync(p) => Op::Fsync(c(p)),
            other @ (Op::Commit { .. } | Op::Remount { .. } | Op::Rebuild) => other,
        }
    }
}

// ------------------------------------------------------------ strategies

/// A path, as likely new as existing.
fn path() -> impl Strategy<Value = P> {
    let name = prop_oneof![2 => 0u8..3, 1 => 3u8..12].prop_map(P::Name);
    prop_oneof![1 => name, 1 => any::<u8>().prop_map(P::Existing)]
}

/// A path that is mostly free to take.
fn free() -> impl Strategy<Value = P> {
    prop_oneof![1 => path(), 2 => any::<u8>().prop_map(P::Free)]
}

/// A path that mostly exists.
fn existing() -> impl Strategy<Value = P> {
    prop_oneof![1 => (0u8..12).prop_map(P::Name), 3 => any::<u8>().prop_map(P::Existing)]
}

/// A path that mostly names a file.
fn file() -> impl Strategy<Value = P> {
    prop_oneof![1 => existing(), 3 => any::<u8>().prop_map(P::File)]
}

/// A path that mostly names a folder.
fn dir() -> impl Strategy<Value = P> {
    prop_oneof![1 => existing(), 3 => any::<u8>().prop_map(P::Dir)]
}

/// Offsets and sizes within a few 4 KiB staging blocks, often right at or
/// next to a block boundary.
fn offset() -> impl Strategy<Value = u64> {
    prop_oneof![
        2 => 0u64..13_000,
        1 => (0u64..4, 0u64..3).prop_map(|(b, d)| (b * 4096 + d).saturating_sub(1)),
    ]
}

fn time() -> impl Strategy<Value = Time> {
    prop_oneof![
        1 => Just(Time::Now),
        3 => (
            prop::sample::select(vec![0i64, 1, -1, 1_700_000_000, 4_102_444_800]),
            prop::sample::select(vec![0u32, 1, 999_999_999]),
        )
            .prop_map(|(s, n)| Time::At(s, n)),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let file_mode = prop::sample::select(vec![0o644u32, 0o600, 0o755, 0o000]);
    let dir_mode = prop::sample::select(vec![0o755u32, 0o700, 0o2775]);
    let set_mode = prop::sample::select(vec![0o644u32, 0o600, 0o755, 0o2755, 0o4755, 0o1777, 0o000, 0o7777]);
    let how = prop_oneof![3 => Just(How::Replace), 1 => Just(How::NoReplace), 1 => Just(How::Exchange)];
    prop_oneof![
        5 => (free(), file_mode).prop_map(|(p, m)| Op::Create(p, m)),
        2 => (free(), dir_mode).prop_map(|(p, m)| Op::Mkdir(p, m)),
        8 => (file(), offset(), prop_oneof![3 => 1usize..5_000, 1 => 1usize..16], any::<u8>())
            .prop_map(|(path, off, len, seed)| Op::Write { path, off, len, seed }),
        // Large enough that its whole blocks are sealed outside the file's
        // lock (the parallel path of `write`).
        1 => (file(), offset(), 70_000usize..100_000, any::<u8>())
            .prop_map(|(path, off, len, seed)| Op::Write { path, off, len, seed }),
        2 => (file(), offset(), 1u32..10_000).prop_map(|(path, off, len)| Op::Read { path, off, len }),
        4 => (file(), offset()).prop_map(|(p, s)| Op::Truncate(p, s)),
        1 => file().prop_map(Op::OpenTruncate),
        2 => (file(), offset(), 1u64..9_000).prop_map(|(path, cut, more)| Op::Regrow { path, cut, to: cut + more }),
        5 => (existing(), path(), how).prop_map(|(a, b, h)| Op::Rename(a, b, h)),
        2 => (file(), free()).prop_map(|(a, b)| Op::Link(a, b)),
        3 => file().prop_map(Op::Unlink),
        2 => dir().prop_map(Op::Rmdir),
        2 => (existing(), prop::option::of(set_mode), prop::option::of(time()), prop::option::of(time()))
            .prop_map(|(path, mode, atime, mtime)| Op::SetAttr { path, mode, atime, mtime }),
        1 => existing().prop_map(Op::Fsync),
        3 => any::<bool>().prop_map(|fsyncdir| Op::Commit { fsyncdir }),
        1 => any::<bool>().prop_map(|clean| Op::Remount { clean }),
        1 => Just(Op::Rebuild),
    ]
}

/// The bytes a write puts down: different for each seed, never all zeros.
fn pattern(seed: u8, len: usize) -> Vec<u8> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ (u64::from(seed) + 1).wrapping_mul(0xA24B_AED4_963E_E407);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect()
}

// ----------------------------------------------------------------- model

/// What an operation returned: nothing, or the bytes of a read.
#[derive(Debug, PartialEq, Eq)]
enum Out {
    Done,
    Bytes(Vec<u8>),
}

type R<T> = Result<T, ErrorKind>;

type Id = u64;
const MROOT: Id = 0;

#[derive(Clone, Debug)]
enum Body {
    Dir { parent: Id, children: BTreeMap<String, Id> },
    File { data: Vec<u8> },
}

#[derive(Clone, Debug)]
struct Node {
    body: Body,
    mode: u32,
    /// Times the model knows: set explicitly, and not changed since by an
    /// operation that stamps the time of day.
    atime: Option<Timestamp>,
    mtime: Option<Timestamp>,
}

/// The file system as a tree of nodes; a file with hard links is one node
/// that several folders name.
#[derive(Clone, Debug)]
struct Model {
    nodes: BTreeMap<Id, Node>,
    next: Id,
}

fn dir_node(parent: Id, mode: u32) -> Node {
    Node {
        body: Body::Dir {
            parent,
            children: BTreeMap::new(),
        },
        mode,
        atime: None,
        mtime: None,
    }
}

fn split(path: &str) -> (&str, &str) {
    path.rsplit_once('/').unwrap_or(("", path))
}

impl Model {
    fn new() -> Model {
        Model {
            nodes: BTreeMap::from([(MROOT, dir_node(MROOT, 0o755))]),
            next: 1,
        }
    }

    fn node(&self, id: Id) -> &Node {
        &self.nodes[&id]
    }

    fn node_mut(&mut self, id: Id) -> &mut Node {
        self.nodes.get_mut(&id).expect("a node the model names")
    }

    fn is_dir(&self, id: Id) -> bool {
        matches!(self.node(id).body, Body::Dir { .. })
    }

    fn children(&self, id: Id) -> Option<&BTreeMap<String, Id>> {
        match &self.node(id).body {
            Body::Dir { children, .. } => Some(children),
            Body::File { .. } => None,
        }
    }

    fn children_mut(&mut self, id: Id) -> &mut BTreeMap<String, Id> {
        match &mut self.node_mut(id).body {
            Body::Dir { children, .. } => children,
            Body::File { .. } => panic!("the model asked for the entries of a file"),
        }
    }

    fn resolve(&self, path: &str) -> R<Id> {
        let mut at = MROOT;
        for part in path.split('/').filter(|p| !p.is_empty()) {
            let children = self.children(at).ok_or(ErrorKind::NotDir)?;
            at = *children.get(part).ok_or(ErrorKind::NotFound)?;
        }
        Ok(at)
    }

    /// The folder holding `path` (checked to be one) and the last name.
    fn parent_and_name<'p>(&self, path: &'p str) -> R<(Id, &'p str)> {
        let (dir, name) = split(path);
        Ok((self.resolve(dir)?, name))
    }

    fn dir(&self, id: Id) -> R<&BTreeMap<String, Id>> {
        self.children(id).ok_or(ErrorKind::NotDir)
    }

    fn names_of(&self, id: Id) -> u32 {
        let mut n = 0;
        for node in self.nodes.values() {
            if let Body::Dir { children, .. } = &node.body {
                n += children.values().filter(|&&c| c == id).count() as u32;
            }
        }
        n
    }

    fn nlink(&self, id: Id) -> u32 {
        match &self.node(id).body {
            Body::Dir { children, .. } => 2 + children.values().filter(|&&c| self.is_dir(c)).count() as u32,
            Body::File { .. } => self.names_of(id),
        }
    }

    /// Whether folder `dest` is `moving` or lies inside it.
    fn inside(&self, dest: Id, moving: Id) -> bool {
        let mut at = dest;
        loop {
            if at == moving {
                return true;
            }
            if at == MROOT {
                return false;
            }
            match self.node(at).body {
                Body::Dir { parent, .. } => at = parent,
                Body::File { .. } => return false,
            }
        }
    }

    fn add(&mut self, parent: Id, name: &str, node: Node) -> Id {
        let id = self.next;
        self.next += 1;
        self.nodes.insert(id, node);
        self.children_mut(parent).insert(name.to_string(), id);
        id
    }

    /// Forgets a node no folder names any more.
    fn collect(&mut self, id: Id) {
        if self.names_of(id) == 0 {
            self.nodes.remove(&id);
        }
    }

    fn touch(&mut self, id: Id) {
        let n = self.node_mut(id);
        n.mtime = None;
    }

    fn file_data(&mut self, id: Id) -> R<&mut Vec<u8>> {
        match &mut self.node_mut(id).body {
            Body::File { data } => Ok(data),
            Body::Dir { .. } => Err(ErrorKind::IsDir),
        }
    }

    fn new_entry(&mut self, path: &str, dir: bool, mode: u32) -> R<Out> {
        let (p, name) = self.parent_and_name(path)?;
        let pmode = self.node(p).mode;
        if self.dir(p)?.contains_key(name) {
            return Err(ErrorKind::Exists);
        }
        let node = if dir {
            // BSD group semantics: a folder made in a set-group-id folder
            // is set-group-id too.
            dir_node(p, (mode & 0o7777) | (pmode & 0o2000))
        } else {
            Node {
                body: Body::File { data: Vec::new() },
                mode: mode & 0o7777,
                atime: None,
                mtime: None,
            }
        };
        self.add(p, name, node);
        self.touch(p);
        Ok(Out::Done)
    }

    fn rename(&mut self, from: &str, to: &str, how: How) -> R<Out> {
        let (p, name) = self.parent_and_name(from)?;
        let (np, newname) = self.parent_and_name(to)?;
        self.dir(p)?;
        self.dir(np)?;
        let src = *self.dir(p)?.get(name).ok_or(ErrorKind::NotFound)?;
        let dst = self.dir(np)?.get(newname).copied();
        if self.is_dir(src) && self.inside(np, src) {
            return Err(ErrorKind::InvalidArgument);
        }
        if how == How::Exchange {
            let dst = dst.ok_or(ErrorKind::NotFound)?;
            if self.is_dir(dst) && self.inside(p, dst) {
                return Err(ErrorKind::InvalidArgument);
            }
            self.children_mut(p).insert(name.to_string(), dst);
            self.children_mut(np).insert(newname.to_string(), src);
            for (id, parent) in [(src, np), (dst, p)] {
                if let Body::Dir { parent: pp, .. } = &mut self.node_mut(id).body {
                    *pp = parent;
                }
            }
            self.touch(p);
            self.touch(np);
            return Ok(Out::Done);
        }
        if let Some(dst) = dst {
            if how == How::NoReplace {
                return Err(ErrorKind::Exists);
            }
            if dst == src {
                // Two names of one file (or one name twice): nothing to do.
                return Ok(Out::Done);
            }
            match (self.is_dir(src), self.is_dir(dst)) {
                (true, false) => return Err(ErrorKind::NotDir),
                (false, true) => return Err(ErrorKind::IsDir),
                (true, true) if !self.dir(dst)?.is_empty() => return Err(ErrorKind::NotEmpty),
                _ => {}
            }
            self.children_mut(np).remove(newname);
            self.collect(dst);
        }
        self.children_mut(p).remove(name);
        self.children_mut(np).insert(newname.to_string(), src);
        if let Body::Dir { parent, .. } = &mut self.node_mut(src).body {
            *parent = np;
        }
        self.touch(p);
        self.touch(np);
        Ok(Out::Done)
    }

    fn apply(&mut self, op: &Op) -> R<Out> {
        match *op {
            Op::Create(path, mode) => self.new_entry(path.s(), false, mode),
            Op::Mkdir(path, mode) => self.new_entry(path.s(), true, mode),
            Op::Write { path, off, len, seed } => {
                let id = self.resolve(path.s())?;
                let data = self.file_data(id)?;
                let (off, end) = (off as usize, off as usize + len);
                if data.len() < end {
                    data.resize(end, 0);
                }
                data[off..end].copy_from_slice(&pattern(seed, len));
                self.touch(id);
                Ok(Out::Done)
            }
            Op::Read { path, off, len } => {
                let id = self.resolve(path.s())?;
                let data = self.file_data(id)?;
                let from = (off as usize).min(data.len());
                let to = (from + len as usize).min(data.len());
                Ok(Out::Bytes(data[from..to].to_vec()))
            }
            Op::Truncate(path, size) => {
                let id = self.resolve(path.s())?;
                self.file_data(id)?.resize(size as usize, 0);
                self.touch(id);
                Ok(Out::Done)
            }
            Op::OpenTruncate(path) => {
                let id = self.resolve(path.s())?;
                self.file_data(id)?.clear();
                self.touch(id);
                Ok(Out::Done)
            }
            Op::Regrow { path, cut, to } => {
                let id = self.resolve(path.s())?;
                let data = self.file_data(id)?;
                data.truncate(cut as usize);
                data.resize(to as usize, 0);
                self.touch(id);
                Ok(Out::Done)
            }
            Op::Rename(from, to, how) => self.rename(from.s(), to.s(), how),
            Op::Link(from, to) => {
                let id = self.resolve(from.s())?;
                let (np, name) = self.parent_and_name(to.s())?;
                if self.dir(np)?.contains_key(name) {
                    return Err(ErrorKind::Exists);
                }
                if self.is_dir(id) {
                    return Err(ErrorKind::NotPermitted);
                }
                self.children_mut(np).insert(name.to_string(), id);
                self.touch(np);
                Ok(Out::Done)
            }
            Op::Unlink(path) => {
                let (p, name) = self.parent_and_name(path.s())?;
                let id = *self.dir(p)?.get(name).ok_or(ErrorKind::NotFound)?;
                if self.is_dir(id) {
                    return Err(ErrorKind::IsDir);
                }
                self.children_mut(p).remove(name);
                self.collect(id);
                self.touch(p);
                Ok(Out::Done)
            }
            Op::Rmdir(path) => {
                let (p, name) = self.parent_and_name(path.s())?;
                let id = *self.dir(p)?.get(name).ok_or(ErrorKind::NotFound)?;
                if !self.dir(id)?.is_empty() {
                    return Err(ErrorKind::NotEmpty);
                }
                self.children_mut(p).remove(name);
                self.nodes.remove(&id);
                self.touch(p);
                Ok(Out::Done)
            }
            Op::SetAttr {
                path,
                mode,
                atime,
                mtime,
            } => {
                let id = self.resolve(path.s())?;
                let n = self.node_mut(id);
                if let Some(m) = mode {
                    n.mode = m & 0o7777;
                }
                let known = |t: Time| match t {
                    Time::Now => None,
                    Time::At(secs, nanos) => Some(Timestamp { secs, nanos }),
                };
                if let Some(t) = atime {
                    n.atime = known(t);
                }
                if let Some(t) = mtime {
                    n.mtime = known(t);
                }
                Ok(Out::Done)
            }
            Op::Fsync(path) => self.resolve(path.s()).map(|_| Out::Done),
            Op::Commit { .. } | Op::Remount { .. } | Op::Rebuild => Ok(Out::Done),
        }
    }

    /// The model as a drive rebuilt from the vault shows it: the vault
    /// keeps no access times, so they come back as the modification times.
    fn as_rebuilt(&self) -> Model {
        let mut m = self.clone();
        for (id, n) in m.nodes.iter_mut() {
            n.atime = n.mtime;
            if *id == MROOT {
                // The root has no entry in a tree: its times are the
                // commit's, and its mode is the default.
                n.mode = 0o755;
                n.atime = None;
                n.mtime = None;
            }
        }
        m
    }

    fn tree(&self) -> Vec<Seen> {
        let mut out = Vec::new();
        let mut first = HashMap::new();
        self.walk(MROOT, String::new(), &mut first, &mut out);
        out
    }

    fn walk(&self, id: Id, path: String, first: &mut HashMap<Id, String>, out: &mut Vec<Seen>) {
        let n = self.node(id);
        let link_of = first.get(&id).cloned();
        first.entry(id).or_insert_with(|| path.clone());
        let (dir, data) = match &n.body {
            Body::Dir { .. } => (true, Vec::new()),
            Body::File { data } => (false, data.clone()),
        };
        out.push(Seen {
            path: path.clone(),
            dir,
            mode: n.mode,
            nlink: self.nlink(id),
            size: data.len() as u64,
            data,
            link_of,
            atime: n.atime,
            mtime: n.mtime,
        });
        if let Body::Dir { children, .. } = &n.body {
            for (name, &c) in children {
                let p = if path.is_empty() {
                    name.clone()
                } else {
                    format!("{path}/{name}")
                };
                self.walk(c, p, first, out);
            }
        }
    }
}

/// One name in the tree as `stat`, `readdir` and `read` show it.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    path: String,
    dir: bool,
    mode: u32,
    nlink: u32,
    size: u64,
    data: Vec<u8>,
    /// The first path (in walk order) of the same inode, for hard links.
    link_of: Option<String>,
    atime: Option<Timestamp>,
    mtime: Option<Timestamp>,
}

impl Seen {
    fn summary(&self) -> String {
        format!(
            "{:?}: {} mode {:o} nlink {} size {}{} atime {:?} mtime {:?}",
            self.path,
            if self.dir { "dir" } else { "file" },
            self.mode,
            self.nlink,
            self.size,
            self.link_of
                .as_ref()
                .map(|l| format!(" (a link of {l:?})"))
                .unwrap_or_default(),
            self.atime,
            self.mtime
        )
    }
}

/// Says how two trees differ (`None` if they do not).
fn diff(core: &[Seen], model: &[Seen]) -> Option<String> {
    let mut lines = Vec::new();
    let mut model_at: BTreeMap<&str, &Seen> = model.iter().map(|s| (s.path.as_str(), s)).collect();
    for c in core {
        match model_at.remove(c.path.as_str()) {
            None => lines.push(format!("  only in the core:  {}", c.summary())),
            Some(m) if m != c => {
                lines.push(format!("  core:  {}", c.summary()));
                lines.push(format!("  model: {}", m.summary()));
                if c.data != m.data {
                    let at = c.data.iter().zip(&m.data).position(|(a, b)| a != b);
                    lines.push(format!(
                        "         content differs (sizes {} / {}), first differing byte at {:?}",
                        c.data.len(),
                        m.data.len(),
                        at
                    ));
                }
            }
            Some(_) => {}
        }
    }
    for m in model_at.values() {
        lines.push(format!("  only in the model: {}", m.summary()));
    }
    (!lines.is_empty()).then(|| lines.join("\n"))
}

// ------------------------------------------------------------------ core

/// The drive under test: a vault in `backend`, the working copy in `state`.
struct Drive {
    backend: DynBackend,
    device: DeviceId,
    state: tempfile::TempDir,
    fs: Option<Arc<Fs>>,
}

type CoreResult<T> = Result<T, (ErrorKind, String)>;

fn k<T>(r: nimbus_fs::Result<T>) -> CoreResult<T> {
    r.map_err(|e| (e.kind(), e.to_string()))
}

/// Any answer of an operation that returns nothing the model keeps.
fn done<T>(_: T) -> Out {
    Out::Done
}

impl Drive {
    fn new(rt: &Runtime, backend: DynBackend) -> Result<Drive, String> {
        let params = VaultParams {
            // Small chunks, so files of a few KiB are several blobs whose
            // edges fall inside staging blocks.
            chunker: ChunkerParams {
                min_size: 1 << 10,
                avg_size: 4 << 10,
                max_size: 16 << 10,
                normalization: 1,
            },
            pack_target_size: 64 << 10,
            ..VaultParams::default()
        };
        rt.block_on(Vault::create(backend.clone(), b"pw", params, KdfParams::minimum()))
            .map_err(|e| format!("creating the vault: {e}"))?;
        let mut d = Drive {
            backend,
            device: DeviceId::random(),
            state: tempfile::tempdir().map_err(|e| e.to_string())?,
            fs: None,
        };
        d.load(rt)?;
        Ok(d)
    }

    fn load(&mut self, rt: &Runtime) -> Result<(), String> {
        let vault = rt
            .block_on(Vault::open(self.backend.clone(), b"pw"))
            .map_err(|e| format!("opening the vault: {e}"))?;
        let mut opts = FsOptions::new(self.state.path().join("vault"), self.device);
        opts.commit_delay = std::time::Duration::from_secs(3600);
        opts.cache_limit = 8 << 20;
        // A small memory cache, so reads go to the disk cache and the store.
        opts.mem_cache = 2 << 20;
        let fs = Fs::load(vault, rt.handle().clone(), opts).map_err(|e| format!("loading the drive: {e}"))?;
        // Commits happen only when a step asks (not after the longest
        // quiet time, which a long sequence could reach).
        fs.set_paused(true);
        self.fs = Some(fs);
        Ok(())
    }

    fn fs(&self) -> &Arc<Fs> {
        self.fs.as_ref().expect("a loaded drive")
    }

    /// Stops the drive without a commit, as a crash after the last
    /// database flush would.
    fn stop(&mut self) {
        if let Some(fs) = self.fs.take() {
            fs.shutdown_without_commit();
        }
    }

    fn resolve(&self, path: &str) -> CoreResult<Ino> {
        k(self.fs().resolve(path.as_bytes()))
    }

    fn parent_and_name(&self, path: &str) -> CoreResult<(Ino, Vec<u8>)> {
        let (dir, name) = split(path);
        Ok((self.resolve(dir)?, name.as_bytes().to_vec()))
    }

    fn with_open<T>(&self, path: &str, truncate: bool, f: impl FnOnce(&Fs, u64) -> CoreResult<T>) -> CoreResult<T> {
        let ino = self.resolve(path)?;
        let fs = self.fs();
        let fh = k(fs.open(ino, truncate))?;
        let out = f(fs, fh);
        let closed = k(fs.release(fh));
        let out = out?;
        closed.map(|_| out)
    }

    fn apply(&mut self, rt: &Runtime, op: &Op) -> CoreResult<Out> {
        match *op {
            Op::Create(path, mode) => {
                let (p, n) = self.parent_and_name(path.s())?;
                let (_, fh) = k(self.fs().create(Ctx::ROOT, p, &n, mode))?;
                k(self.fs().release(fh)).map(done)
            }
            Op::Mkdir(path, mode) => {
                let (p, n) = self.parent_and_name(path.s())?;
                k(self.fs().mkdir(Ctx::ROOT, p, &n, mode)).map(done)
            }
            Op::Write { path, off, len, seed } => self
                .with_open(path.s(), false, |fs, fh| {
                    let wrote = k(fs.write(fh, off, &pattern(seed, len)))?;
                    if wrote as usize != len {
                        return Err((ErrorKind::Io, format!("a write of {len} bytes wrote {wrote}")));
                    }
                    Ok(())
                })
                .map(done),
            Op::Read { path, off, len } => self
                .with_open(path.s(), false, |fs, fh| k(fs.read(fh, off, len)))
                .map(Out::Bytes),
            Op::Truncate(path, size) => {
                let ino = self.resolve(path.s())?;
                let set = SetAttr {
                    size: Some(size),
                    ..Default::default()
                };
                k(self.fs().setattr(ino, &set)).map(done)
            }
            Op::OpenTruncate(path) => self.with_open(path.s(), true, |_, _| Ok(())).map(done),
            Op::Regrow { path, cut, to } => {
                let ino = self.resolve(path.s())?;
                for size in [cut, to] {
                    let set = SetAttr {
                        size: Some(size),
                        ..Default::default()
                    };
                    k(self.fs().setattr(ino, &set))?;
                }
                Ok(Out::Done)
            }
            Op::Rename(from, to, how) => {
                let (p, n) = self.parent_and_name(from.s())?;
                let (np, nn) = self.parent_and_name(to.s())?;
                let flags = RenameFlags {
                    noreplace: how == How::NoReplace,
                    exchange: how == How::Exchange,
                };
                k(self.fs().rename(p, &n, np, &nn, flags)).map(done)
            }
            Op::Link(from, to) => {
                let ino = self.resolve(from.s())?;
                let (np, nn) = self.parent_and_name(to.s())?;
                k(self.fs().link(ino, np, &nn)).map(done)
            }
            Op::Unlink(path) => {
                let (p, n) = self.parent_and_name(path.s())?;
                k(self.fs().unlink(p, &n)).map(done)
            }
            Op::Rmdir(path) => {
                let (p, n) = self.parent_and_name(path.s())?;
                k(self.fs().rmdir(p, &n)).map(done)
            }
            Op::SetAttr {
                path,
                mode,
                atime,
                mtime,
            } => {
                let ino = self.resolve(path.s())?;
                let t = |t: Time| match t {
                    Time::Now => SetTime::Now,
                    Time::At(secs, nanos) => SetTime::At(Timestamp { secs, nanos }),
                };
                let set = SetAttr {
                    mode,
                    atime: atime.map(t),
                    mtime: mtime.map(t),
                    ..Default::default()
                };
                k(self.fs().setattr(ino, &set)).map(done)
            }
            Op::Fsync(path) => {
                let ino = self.resolve(path.s())?;
                k(self.fs().fsync(ino)).map(done)
            }
            Op::Commit { fsyncdir } => {
                let r = if fsyncdir {
                    self.fs().fsyncdir(ROOT)
                } else {
                    self.fs().sync_now()
                };
                k(r).map(done)
            }
            Op::Remount { clean } => {
                if clean {
                    let fs = self.fs.take().expect("a loaded drive");
                    k(fs.shutdown())?;
                } else {
                    self.stop();
                }
                self.load(rt).map_err(|e| (ErrorKind::Io, e))?;
                Ok(Out::Done)
            }
            Op::Rebuild => {
                self.stop();
                self.state = tempfile::tempdir().map_err(|e| (ErrorKind::Io, e.to_string()))?;
                self.load(rt).map_err(|e| (ErrorKind::Io, e))?;
                Ok(Out::Done)
            }
        }
    }

    fn read_all(&self, ino: Ino) -> CoreResult<Vec<u8>> {
        let fs = self.fs();
        let fh = k(fs.open(ino, false))?;
        let mut out = Vec::new();
        let res = loop {
            match k(fs.read(fh, out.len() as u64, 128 << 10)) {
                Ok(got) if got.is_empty() => break Ok(()),
                Ok(got) => out.extend_from_slice(&got),
                Err(e) => break Err(e),
            }
        };
        k(fs.release(fh))?;
        res.map(|_| out)
    }

    /// The whole tree as the core shows it.
    fn tree(&self) -> Result<Vec<Seen>, String> {
        let mut out = Vec::new();
        let mut first = HashMap::new();
        self.walk(ROOT, String::new(), 0, &mut first, &mut out)?;
        Ok(out)
    }

    fn walk(
        &self,
        ino: Ino,
        path: String,
        depth: usize,
        first: &mut HashMap<Ino, String>,
        out: &mut Vec<Seen>,
    ) -> Result<(), String> {
        if depth > 32 {
            return Err(format!(
                "{path:?}: folders nest deeper than the operations can make them"
            ));
        }
        let fs = self.fs();
        let a = fs.getattr(ino).map_err(|e| format!("getattr of {path:?}: {e}"))?;
        let link_of = first.get(&ino).cloned();
        first.entry(ino).or_insert_with(|| path.clone());
        let dir = match a.kind {
            EntryKind::Dir => true,
            EntryKind::File => false,
            other => return Err(format!("{path:?} is a {other:?}, which no operation makes")),
        };
        let data = if dir {
            Vec::new()
        } else {
            self.read_all(ino).map_err(|(_, e)| format!("reading {path:?}: {e}"))?
        };
        out.push(Seen {
            path: path.clone(),
            dir,
            mode: a.perm,
            nlink: a.nlink,
            size: a.size,
            data,
            link_of,
            atime: Some(a.atime),
            mtime: Some(a.mtime),
        });
        if !dir {
            return Ok(());
        }
        let mut entries = Vec::new();
        let mut cookie = 0;
        loop {
            let batch = fs
                .readdir(ino, cookie, 5)
                .map_err(|e| format!("readdir of {path:?}: {e}"))?;
            let Some(last) = batch.last() else { break };
            cookie = last.cookie;
            entries.extend(batch.into_iter().filter(|e| e.name != b"." && e.name != b".."));
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        for e in entries {
            let name = String::from_utf8(e.name).map_err(|_| format!("a name in {path:?} is not UTF-8"))?;
            let p = if path.is_empty() {
                name.clone()
            } else {
                format!("{path}/{name}")
            };
            let attr = fs.getattr(e.ino).map_err(|err| format!("getattr of {p:?}: {err}"))?;
            if attr.kind != e.kind {
                return Err(format!("{p:?}: readdir says {:?}, getattr {:?}", e.kind, attr.kind));
            }
            let looked = fs
                .lookup(ino, name.as_bytes())
                .map_err(|err| format!("lookup of {p:?}: {err}"))?;
            if looked.ino != e.ino {
                return Err(format!("{p:?}: readdir says inode {}, lookup {}", e.ino, looked.ino));
            }
            self.walk(e.ino, p, depth + 1, first, out)?;
        }
        Ok(())
    }
}

impl Drop for Drive {
    fn drop(&mut self) {
        self.stop();
    }
}

// -------------------------------------------------------------- the test

/// Runs one sequence on a new drive and the model, comparing after each
/// step. `ran` gets the steps run, with concrete paths.
fn run_case(
    rt: &Runtime,
    backend: DynBackend,
    ops: &[Op],
    tally: &Tally,
    ran: &mut Vec<Op>,
) -> Result<(), TestCaseError> {
    let mut drive = Drive::new(rt, backend).map_err(TestCaseError::fail)?;
    let mut model = Model::new();
    // What the vault holds: the model as of the last commit.
    let mut committed = Model::new();
    // The steps as run, every path concrete: what a failure prints.
    let mut steps = String::new();
    for (i, op) in ops.iter().enumerate() {
        let op = &op.concrete(&model);
        ran.push(op.clone());
        steps.push_str(&format!("\n  {i}: {op:?}"));
        let fail = |what: String| TestCaseError::fail(format!("{what}\nthe steps, as run:{steps}"));
        let got = drive.apply(rt, op);
        let want = model.apply(op);
        let same = match (&got, &want) {
            (Ok(a), Ok(b)) => a == b,
            (Err((a, _)), Err(b)) => a == b,
            _ => false,
        };
        tally.count(op, got.is_ok());
        if !same {
            let got = match &got {
                Ok(Out::Bytes(b)) => format!("{} bytes", b.len()),
                Ok(Out::Done) => "Ok".into(),
                Err((kind, msg)) => format!("{kind:?} ({msg})"),
            };
            let want = match &want {
                Ok(Out::Bytes(b)) => format!("{} bytes", b.len()),
                other => format!("{other:?}"),
            };
            return Err(fail(format!(
                "step {i}, {op:?}: the core answered {got}, the model {want}"
            )));
        }
        match op {
            Op::Commit { .. } | Op::Remount { clean: true } => committed = model.clone(),
            Op::Rebuild => {
                model = committed.as_rebuilt();
                committed = model.clone();
            }
            _ => {}
        }
        let core_tree = drive.tree().map_err(|e| fail(format!("step {i}, {op:?}: {e}")))?;
        let mut model_tree = model.tree();
        // Times the model does not know are whatever the core says.
        let core_times: HashMap<&str, (Option<Timestamp>, Option<Timestamp>)> = core_tree
            .iter()
            .map(|c| (c.path.as_str(), (c.atime, c.mtime)))
            .collect();
        for m in &mut model_tree {
            if let Some(&(atime, mtime)) = core_times.get(m.path.as_str()) {
                m.atime = m.atime.or(atime);
                m.mtime = m.mtime.or(mtime);
            }
        }
        if let Some(d) = diff(&core_tree, &model_tree) {
            return Err(fail(format!("after step {i}, {op:?}, the trees differ:\n{d}")));
        }
    }
    Ok(())
}

/// How many operations of each kind ran, and how many of them succeeded
/// (so a run shows that its sequences do more than fail on missing names).
#[derive(Default)]
struct Tally(std::sync::Mutex<BTreeMap<&'static str, (u32, u32)>>);

impl Tally {
    fn count(&self, op: &Op, ok: bool) {
        let name = match op {
            Op::Create(..) => "create",
            Op::Mkdir(..) => "mkdir",
            Op::Write { .. } => "write",
            Op::Read { .. } => "read",
            Op::Truncate(..) => "truncate",
            Op::OpenTruncate(..) => "open-truncate",
            Op::Regrow { .. } => "regrow",
            Op::Rename(_, _, How::Replace) => "rename",
            Op::Rename(_, _, How::NoReplace) => "rename-noreplace",
            Op::Rename(_, _, How::Exchange) => "rename-exchange",
            Op::Link(..) => "link",
            Op::Unlink(..) => "unlink",
            Op::Rmdir(..) => "rmdir",
            Op::SetAttr { .. } => "setattr",
            Op::Fsync(..) => "fsync",
            Op::Commit { .. } => "commit",
            Op::Remount { .. } => "remount",
            Op::Rebuild => "rebuild",
        };
        if let Ok(mut t) = self.0.lock() {
            let e = t.entry(name).or_default();
            e.0 += u32::from(ok);
            e.1 += 1;
        }
    }

    fn summary(&self) -> String {
        let Ok(t) = self.0.lock() else { return String::new() };
        let (ok, all) = t.values().fold((0, 0), |(a, b), (o, n)| (a + o, b + n));
        let kinds: Vec<String> = t.iter().map(|(k, (o, n))| format!("{k} {o}/{n}")).collect();
        format!("{all} operations, {ok} succeeded ({})", kinds.join(", "))
    }
}

/// Proptest shrinks the generated steps, but a step that names "an
/// existing file" may name another one once an earlier step is gone, so it
/// can stop with steps that do not matter. This drops steps of the failing
/// sequence as it ran (concrete paths), one at a time, while it still fails.
fn fewer_steps(
    rt: &Runtime,
    store: &impl Fn() -> (DynBackend, Option<tempfile::TempDir>),
    ops: &[Op],
    why: String,
) -> (usize, String) {
    let tally = Tally::default();
    let attempt = |ops: &[Op]| {
        let (backend, _folder) = store();
        let mut ran = Vec::new();
        let res = run_case(rt, backend, ops, &tally, &mut ran);
        res.err().map(|e| (ran, e.to_string()))
    };
    let Some((mut steps, mut why)) = attempt(ops) else {
        return (ops.len(), format!("{why}\n(it passed when run again)"));
    };
    let mut i = 0;
    while i < steps.len() {
        let mut fewer = steps.clone();
        fewer.remove(i);
        match attempt(&fewer) {
            Some((ran, w)) => (steps, why) = (ran, w),
            None => i += 1,
        }
    }
    (steps.len(), why)
}

fn cases() -> u32 {
    std::env::var("NIMBUS_REFMODEL_CASES")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(128)
}

fn run(what: &str, cases: u32, store: impl Fn() -> (DynBackend, Option<tempfile::TempDir>)) {
    if cases == 0 {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let config = ProptestConfig {
        cases,
        // The seed (PROPTEST_RNG_SEED) reproduces a run; the shortest
        // sequence is printed below.
        failure_persistence: None,
        // Shrinking reruns whole sequences; stop after 10 minutes with the
        // shortest found so far.
        max_shrink_time: 600_000,
        ..ProptestConfig::default()
    };
    let started = std::time::Instant::now();
    let mut runner = TestRunner::new(config);
    let tally = Tally::default();
    let result = runner.run(&prop::collection::vec(op(), 1..=MAX_OPS), |ops| {
        let (backend, _folder) = store();
        run_case(&rt, backend, &ops, &tally, &mut Vec::new())
    });
    match result {
        Ok(()) => eprintln!(
            "{what}: {cases} sequences of up to {MAX_OPS} operations matched the model in {:.1} s; {}",
            started.elapsed().as_secs_f64(),
            tally.summary()
        ),
        Err(TestError::Fail(why, ops)) => {
            let (steps, why) = fewer_steps(&rt, &store, &ops, why.to_string());
            panic!("{what}: the core differs from the model in the shortest failing sequence found ({steps} steps):\n{why}")
        }
        Err(TestError::Abort(why)) => panic!("{what}: proptest gave up: {why}"),
    }
}

#[test]
fn the_core_matches_the_model_over_an_in_memory_store() {
    run("in-memory store", cases(), || (Arc::new(MemoryBackend::new()), None));
}

/// A local folder reads blobs straight from their packs (no disk cache).
#[test]
fn the_core_matches_the_model_over_a_local_folder() {
    run("local folder", cases().div_ceil(4), || {
        let dir = tempfile::tempdir().unwrap();
        let backend: DynBackend = Arc::new(nimbus_backend::OpendalBackend::local_folder(dir.path()).unwrap());
        (backend, Some(dir))
    });
}

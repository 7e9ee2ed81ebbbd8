//! A file's content: its staged blocks over its stored blobs.
//!
//! An open (or committing) file has a [`Node`] holding its staging file and
//! its stored content, shared by everyone using it; [`Nodes`] is the map of
//! them. Reading a file's bytes ([`read_state`]) is the same for the POSIX
//! face (`fs/files.rs`) and for the commit (`commit/commit.rs`), which is
//! why it lives here rather than in either.
//!
//! Lock order: the node map, then a node's `state`, then the database.

use nimbus_vault::EntryKind;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use crate::cache::sealed_file::{SealedFile, BLOCK};
use crate::error::{lock_err, ErrorKind, FsError, Result};
use crate::local::Local;
use crate::meta::inodes;
use crate::types::*;

pub(crate) struct NodeState {
    pub staging: Option<SealedFile>,
    pub base: Arc<Content>,
    pub base_len: u64,
    pub size: u64,
    pub kind: EntryKind,
}

pub(crate) struct Node {
    pub ino: Ino,
    pub state: RwLock<NodeState>,
    /// Open handles.
    pub opens: AtomicU64,
}

impl Node {
    /// A node over stored content alone, in no map (a file of a snapshot:
    /// read-only, never staged).
    pub fn detached(ino: Ino, content: Content, size: u64) -> Node {
        Node {
            ino,
            state: RwLock::new(NodeState {
                staging: None,
                base: Arc::new(content),
                base_len: size,
                size,
                kind: EntryKind::File,
            }),
            opens: AtomicU64::new(1),
        }
    }
}

/// The nodes in use, by inode.
#[derive(Default)]
pub(crate) struct Nodes(Mutex<HashMap<Ino, Arc<Node>>>);

pub(crate) type NodeMap = HashMap<Ino, Arc<Node>>;

impl Nodes {
    /// The map itself, for a check and a change under one lock (see
    /// `maybe_delete` in `fs/mod.rs`).
    pub fn lock(&self) -> Result<MutexGuard<'_, NodeMap>> {
        self.0.lock().map_err(|_| lock_err())
    }

    /// The node of `ino` if someone has it.
    pub fn loaded(&self, ino: Ino) -> Option<Arc<Node>> {
        self.0.lock().ok().and_then(|n| n.get(&ino).cloned())
    }

    /// The node of a file, loaded from the database if no one has it.
    pub fn get(&self, local: &Local, ino: Ino) -> Result<Arc<Node>> {
        let mut nodes = self.lock()?;
        Self::get_in(local, &mut nodes, ino)
    }

    /// The node of `ino` in a map already locked.
    pub fn get_in(local: &Local, nodes: &mut NodeMap, ino: Ino) -> Result<Arc<Node>> {
        if let Some(n) = nodes.get(&ino) {
            return Ok(n.clone());
        }
        let row = local.db.read(|c| inodes::get(c, ino))?;
        let staging = match row.staging {
            Some(id) => Some(SealedFile::open(&local.staging_dir, id)?),
            None => None,
        };
        let n = Arc::new(Node {
            ino,
            state: RwLock::new(NodeState {
                staging,
                base: Arc::new(Content::new(row.content)),
                base_len: row.base_len,
                size: row.size,
                kind: row.kind,
            }),
            opens: AtomicU64::new(0),
        });
        nodes.insert(ino, n.clone());
        Ok(n)
    }

    /// Drops a node no handle uses (its state is all in the database).
    pub fn release(&self, ino: Ino) {
        if let Ok(mut nodes) = self.0.lock() {
            if let Some(n) = nodes.get(&ino) {
                if n.opens.load(Ordering::Acquire) == 0 && Arc::strong_count(n) == 1 {
                    nodes.remove(&ino);
                }
            }
        }
    }
}

/// Bytes `off..off+len` of a file in state `st` (within its size);
/// `random` for a read that is not part of a sequential run.
pub(crate) fn read_state(local: &Local, st: &NodeState, off: u64, len: usize, random: bool) -> Result<Vec<u8>> {
    let Some(staging) = &st.staging else {
        let mut out = vec![0u8; len];
        read_base(local, st, off, &mut out, random)?;
        return Ok(out);
    };
    let b0 = off / BLOCK as u64;
    let b1 = (off + len as u64).div_ceil(BLOCK as u64);
    let mut buf = vec![0u8; ((b1 - b0) as usize) * BLOCK];
    let present = staging.read_blocks(&local.key, b0, &mut buf)?;
    // Fill runs of blocks that are not staged from the stored content.
    let mut i = 0;
    while i < present.len() {
        if present[i] {
            i += 1;
            continue;
        }
        let mut j = i;
        while j < present.len() && !present[j] {
            j += 1;
        }
        let start = (b0 + i as u64) * BLOCK as u64;
        read_base(local, st, start, &mut buf[i * BLOCK..j * BLOCK], random)?;
        i = j;
    }
    let skip = (off - b0 * BLOCK as u64) as usize;
    buf.drain(..skip);
    buf.truncate(len);
    Ok(buf)
}

/// Fills `out` with the stored content at `off`, zeros past `base_len`.
fn read_base(local: &Local, st: &NodeState, off: u64, out: &mut [u8], random: bool) -> Result<()> {
    let end = (off + out.len() as u64).min(st.base_len);
    if off >= end {
        out.fill(0);
        return Ok(());
    }
    let mut at = off;
    while at < end {
        let Some(i) = st.base.find(at) else { break };
        let (id, blob_len) = st.base.list.0[i];
        let start = st.base.start(i);
        let from = (at - start) as usize;
        let upto = ((end - start) as usize).min(blob_len as usize);
        if from >= upto {
            return Err(FsError::new(
                ErrorKind::Corrupt,
                format!("blob {id} is shorter than the file's content list says"),
            ));
        }
        let dst = (at - off) as usize;
        local
            .blobs
            .read_range(&id, from, &mut out[dst..dst + (upto - from)], random)?;
        at = start + upto as u64;
    }
    let filled = (at - off) as usize;
    out[filled..].fill(0);
    Ok(())
}

/// The 4 KiB block `b` of a file as it reads now (zeros past the end).
pub(crate) fn read_block(local: &Local, st: &NodeState, b: u64) -> Result<Vec<u8>> {
    let start = b * BLOCK as u64;
    if start >= st.size {
        return Ok(vec![0u8; BLOCK]);
    }
    let len = ((st.size - start) as usize).min(BLOCK);
    let mut v = read_state(local, st, start, len, true)?;
    v.resize(BLOCK, 0);
    Ok(v)
}

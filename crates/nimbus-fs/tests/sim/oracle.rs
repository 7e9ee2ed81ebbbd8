//! What the simulation checks (docs/SYNC.md §6.2): the store passes the
//! vault's `check`; every device ends with the same tree and bytes; and no
//! version is lost (§3.7): every version in a published commit is in the
//! final tree (at a name or in a conflict copy) unless a person replaced
//! or deleted it on top of it, and every commit a device published is in
//! the history of the refs, so its snapshot keeps what was replaced.
//! Pruning (docs/PRUNE.md) may take only what a plan forgot: the history
//! checked is the refs' without the commits a plan forgets, and every blob
//! of every head and of every commit no plan forgets must read.

use nimbus_fs::{Fs, FsError};
use nimbus_vault::{BlobId, BlobKind, Commit, CommitId, EntryKind, Vault};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use crate::ops::{hash, names, read_path, resolve};
use crate::store::SimStore;

/// The vault as it is in the store, without lag or faults.
pub fn honest_vault(rt: &tokio::runtime::Runtime, store: &SimStore) -> Result<Vault, String> {
    rt.block_on(Vault::open(Arc::new(store.honest()), b"pw"))
        .map_err(|e| format!("the vault does not open: {e}"))
}

/// The vault's own `check` finds no problem (warnings, such as the
/// objects of a commit never published, are allowed).
pub fn check_store(rt: &tokio::runtime::Runtime, store: &SimStore) -> Result<(), String> {
    let vault = honest_vault(rt, store)?;
    let report = rt
        .block_on(nimbus_vault::check::check(&vault, false, &|_| {}))
        .map_err(|e| format!("check could not run: {e}"))?;
    if report.problems.is_empty() {
        Ok(())
    } else {
        Err(format!("the vault check found problems: {:?}", report.problems))
    }
}

/// One entry of a device's tree as a person sees it: kind, permission
/// bits, bytes, extended attributes.
pub type Seen = (EntryKind, u32, Vec<u8>, Vec<(Vec<u8>, Vec<u8>)>);

/// Every path of a drive with its kind, permission bits and bytes, read
/// through the core.
pub fn walk(fs: &Fs) -> Result<BTreeMap<String, Seen>, String> {
    fn at(path: &str) -> impl Fn(FsError) -> String + '_ {
        move |e| format!("{path}: {:?}: {e}", e.kind())
    }
    let mut out = BTreeMap::new();
    let mut todo = vec![String::new()];
    while let Some(dir) = todo.pop() {
        for name in names(fs, &dir).map_err(at(&dir))? {
            let path = if dir.is_empty() { name } else { format!("{dir}/{name}") };
            let attr = fs.getattr(resolve(fs, &path).map_err(at(&path))?).map_err(at(&path))?;
            let data = match attr.kind {
                EntryKind::File => read_path(fs, &path).map_err(at(&path))?,
                _ => Vec::new(),
            };
            if attr.kind == EntryKind::Dir {
                todo.push(path.clone());
            }
            let mut xattrs = Vec::new();
            for name in fs.listxattr(attr.ino).map_err(at(&path))? {
                let value = fs.getxattr(attr.ino, &name).map_err(at(&path))?;
                xattrs.push((name, value));
            }
            xattrs.sort();
            out.insert(path, (attr.kind, attr.perm, data, xattrs));
        }
    }
    Ok(out)
}

/// Where two walks differ, briefly.
pub fn diff(a: &BTreeMap<String, Seen>, b: &BTreeMap<String, Seen>) -> String {
    let mut out = Vec::new();
    for (p, v) in a {
        match b.get(p) {
            None => out.push(format!("{p}: only on the first")),
            Some(w) if w != v => out.push(format!(
                "{p}: {:?} {:o} {} bytes {:?} vs {:?} {:o} {} bytes {:?}",
                v.0,
                v.1,
                v.2.len(),
                v.3,
                w.0,
                w.1,
                w.2.len(),
                w.3
            )),
            _ => {}
        }
    }
    for p in b.keys().filter(|p| !a.contains_key(*p)) {
        out.push(format!("{p}: only on the second"));
    }
    out.join("; ")
}

/// The published history: every commit the refs lead to, and the commits
/// the devices reported publishing (which must be among them).
struct History {
    commits: HashMap<CommitId, Commit>,
}

fn history(rt: &tokio::runtime::Runtime, vault: &Vault, published: &[CommitId]) -> Result<History, String> {
    let refs = rt
        .block_on(vault.read_refs_unchecked())
        .map_err(|e| format!("the refs do not read: {e}"))?;
    let mut commits = HashMap::new();
    let mut todo: Vec<CommitId> = refs.values().map(|r| r.commit).collect();
    for head in &todo {
        if vault.is_forgotten(head) {
            return Err(format!("the head {head} is forgotten by a prune"));
        }
    }
    while let Some(id) = todo.pop() {
        if commits.contains_key(&id) || vault.is_forgotten(&id) {
            continue;
        }
        let c = rt
            .block_on(vault.read_commit(&id))
            .map_err(|e| format!("commit {id} of the history does not read: {e}"))?;
        todo.extend(c.parents.iter().copied());
        commits.insert(id, c);
    }
    // A published commit whose tree another head has may be left behind
    // (§2.5: of heads with one root tree the smallest id stays, so two
    // devices that each committed the same state converge without a merge
    // commit); its state is that other commit's.
    let roots: HashSet<BlobId> = commits.values().map(|c| c.root).collect();
    for id in published {
        if !commits.contains_key(id) && !vault.is_forgotten(id) {
            let c = rt.block_on(vault.read_commit(id));
            if c.as_ref().is_ok_and(|c| roots.contains(&c.root)) {
                continue;
            }
            let what = c
                .map(|c| format!("{} by {:?} on {:?}", c.message, c.device_name, c.parents))
                .unwrap_or_else(|e| e.to_string());
            let heads: Vec<String> = refs
                .values()
                .map(|r| {
                    let c = &commits[&r.commit];
                    format!(
                        "{:?} at {} (seq {}, {} on {:?})",
                        c.device_name, r.commit, r.seq, c.message, c.parents
                    )
                })
                .collect();
            return Err(format!(
                "commit {id}, which a device published, is in no ref's history: its snapshot is gone \
                 (it is {what}; the refs: {})",
                heads.join("; ")
            ));
        }
    }
    Ok(History { commits })
}

/// Reads file contents and trees of the vault once each.
struct Reader<'a> {
    rt: &'a tokio::runtime::Runtime,
    vault: &'a Vault,
    contents: HashMap<Vec<BlobId>, u64>,
    trees: HashMap<BlobId, Vec<(String, u64)>>,
}

impl Reader<'_> {
    fn content(&mut self, ids: &[BlobId]) -> Result<u64, String> {
        if let Some(h) = self.contents.get(ids) {
            return Ok(*h);
        }
        let mut data = Vec::new();
        for id in ids {
            let b = self
                .rt
                .block_on(self.vault.read_blob(BlobKind::Data, id))
                .map_err(|e| format!("blob {id} does not read: {e}"))?;
            data.extend_from_slice(&b);
        }
        let h = if data.is_empty() { 0 } else { hash(&data) };
        self.contents.insert(ids.to_vec(), h);
        Ok(h)
    }

    /// The files of tree `id`, as (path, version), empty files left out.
    fn files(&mut self, id: &BlobId) -> Result<Vec<(String, u64)>, String> {
        if let Some(v) = self.trees.get(id) {
            return Ok(v.clone());
        }
        let tree = self
            .rt
            .block_on(self.vault.read_tree(id))
            .map_err(|e| format!("tree {id} does not read: {e}"))?;
        let mut out = Vec::new();
        for e in tree.entries {
            let name = String::from_utf8_lossy(&e.name).into_owned();
            match (e.kind, e.subtree) {
                (EntryKind::Dir, Some(sub)) => {
                    for (p, h) in self.files(&sub)? {
                        out.push((format!("{name}/{p}"), h));
                    }
                }
                (EntryKind::File, _) => {
                    let h = self.content(&e.content)?;
                    if h != 0 {
                        out.push((name, h));
                    }
                }
                _ => {}
            }
        }
        self.trees.insert(*id, out.clone());
        Ok(out)
    }
}

/// §3.7: every version of every published commit is in `now` (the hashes
/// of the final tree's files) unless it is in `replaced`, the versions a
/// person replaced or deleted on top of them.
pub fn no_version_lost(
    rt: &tokio::runtime::Runtime,
    store: &SimStore,
    published: &[CommitId],
    replaced: &HashSet<u64>,
    now: &HashSet<u64>,
) -> Result<(), String> {
    let vault = honest_vault(rt, store)?;
    rt.block_on(vault.load_gc())
        .map_err(|e| format!("the prune objects do not read: {e}"))?;
    let h = history(rt, &vault, published)?;
    let mut reader = Reader {
        rt,
        vault: &vault,
        contents: HashMap::new(),
        trees: HashMap::new(),
    };
    let mut ids: Vec<&CommitId> = h.commits.keys().collect();
    ids.sort();
    let mut lost = Vec::new();
    for id in ids {
        let c = &h.commits[id];
        for (path, v) in reader.files(&c.root)? {
            if !now.contains(&v) && !replaced.contains(&v) {
                lost.push(format!(
                    "{path} (version {v:016x}) of commit {id} by {:?}",
                    c.device_name
                ));
            }
        }
    }
    retained_read(rt, &vault, &mut reader)?;
    lost.sort();
    lost.dedup();
    if lost.is_empty() {
        Ok(())
    } else {
        Err(format!("{} versions lost: {}", lost.len(), lost.join("; ")))
    }
}

/// Every commit in the store that no plan forgets reads whole, every blob
/// of it (a crashed save's commit too: a prune keeps what any commit it
/// does not forget needs).
fn retained_read(rt: &tokio::runtime::Runtime, vault: &Vault, reader: &mut Reader<'_>) -> Result<(), String> {
    let scan = rt
        .block_on(vault.scan_commits())
        .map_err(|e| format!("the commits do not list: {e}"))?;
    if let Some((key, why)) = scan.damaged.first() {
        return Err(format!("{key} does not read: {why}"));
    }
    for (id, c) in &scan.commits {
        if vault.is_forgotten(id) {
            continue;
        }
        reader
            .files(&c.root)
            .map_err(|e| format!("commit {id}, which no prune forgot: {e}"))?;
    }
    Ok(())
}

//! `check`: verifies every object's structure and every reference, and with
//! `read_data` every blob's authenticity. Problems are collected, each named
//! by its object, rather than stopping at the first. Damage that only older
//! snapshots reach is told apart from damage to what every device sees now.

use std::collections::{HashMap, HashSet};

use nimbus_backend::BackendError;

use crate::codec::{self, BlobKind};
use crate::commit::{self, Commit, RefRecord};
use crate::error::VaultError;
use crate::id::{BlobId, CommitId, DeviceId, PackId};
use crate::index;
use crate::pack;
use crate::vault::Vault;

/// One finding of `check`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    /// The object key (or blob) it is about.
    pub object: String,
    pub message: String,
}

/// What `check` found.
#[derive(Debug, Default, serde::Serialize)]
pub struct CheckReport {
    /// Damage: missing, altered or inconsistent objects, reaching what a
    /// ref's snapshot holds now (or the vault's structure).
    pub problems: Vec<Finding>,
    /// Damage only older snapshots reach: the snapshot every ref points at
    /// is whole, but some older versions of files cannot be restored (left
    /// after `check --repair` marked the damaged files of the newest one).
    pub history: Vec<Finding>,
    /// Harmless leftovers (such as packs of an interrupted save).
    pub warnings: Vec<Finding>,
    pub objects: u64,
    pub packs: u64,
    pub commits: u64,
    pub trees: u64,
    pub data_blobs_referenced: u64,
    pub blobs_read: u64,
    /// Parent links to snapshots a prune forgot on purpose (history
    /// pruned, not missing).
    pub pruned_history: u64,
}

impl CheckReport {
    fn problem(&mut self, object: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Finding {
            object: object.into(),
            message: message.into(),
        });
    }

    /// Damage found while walking a snapshot: a problem when the snapshot
    /// is a ref's, history otherwise.
    fn damage(&mut self, current: bool, object: impl Into<String>, message: impl Into<String>) {
        let f = Finding {
            object: object.into(),
            message: message.into(),
        };
        if current {
            self.problems.push(f);
        } else {
            self.history.push(f);
        }
    }

    /// Nothing found: no problem, no damaged history.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty() && self.history.is_empty()
    }

    fn warn(&mut self, object: impl Into<String>, message: impl Into<String>) {
        self.warnings.push(Finding {
            object: object.into(),
            message: message.into(),
        });
    }

    fn record_error(&mut self, fallback: &str, e: VaultError) {
        match e {
            VaultError::Corrupt { object, what } => self.problem(object, what),
            VaultError::Missing { object, what } => self.problem(object, format!("missing: {what}")),
            other => self.problem(fallback, other.to_string()),
        }
    }
}

/// Progress of a check, for a progress bar.
#[derive(Debug, Clone, Copy)]
pub enum CheckStep {
    Packs { done: u64, total: u64 },
    Snapshots { done: u64, total: u64 },
}

/// Checks the whole vault. Only a failure to talk to the store is an `Err`;
/// everything wrong with the stored objects is in the report.
pub async fn check(
    vault: &Vault,
    read_data: bool,
    progress: &(dyn Fn(CheckStep) + Sync),
) -> Result<CheckReport, VaultError> {
    let mut r = CheckReport::default();
    let listing = list_objects(vault, &mut r).await?;
    check_prune_objects(vault, &mut r).await?;
    for (key, why) in vault.damaged_indexes() {
        r.problem(key, why);
    }
    let indexed = check_index_against_store(vault, &listing.packs, &mut r);
    check_packs(vault, &listing.packs, &indexed, read_data, progress, &mut r).await;
    let commits = read_commits(vault, &listing.commits, &mut r).await;
    let refs = read_refs(vault, &listing.refs, &mut r).await;
    let heads: HashSet<CommitId> = refs.iter().map(|(_, rec)| rec.commit).collect();
    let lost = check_snapshots(vault, &commits, &listing, &heads, progress, &mut r).await;
    report_missing_packs(vault, &listing.packs, &indexed, &lost, &mut r);
    let reachable = check_refs(&refs, &commits, &listing.commits, &mut r);
    warn_unreachable(&commits, &reachable, &mut r);
    Ok(r)
}

/// The store's objects sorted by kind.
struct Listing {
    /// Each pack with its key and size in the store.
    packs: HashMap<PackId, (String, u64)>,
    commits: Vec<CommitId>,
    /// The index objects in the store, for the ones commits name.
    indexes: HashSet<crate::id::IndexId>,
    /// The devices that have a ref.
    refs: Vec<DeviceId>,
}

/// Lists the store and sorts its objects by kind; a name that belongs to no
/// kind is a warning, not a problem, because it is not part of the vault.
async fn list_objects(vault: &Vault, r: &mut CheckReport) -> Result<Listing, VaultError> {
    let listing = vault.backend().list("").await?;
    r.objects = listing.len() as u64;
    let mut out = Listing {
        packs: HashMap::new(),
        commits: Vec::new(),
        indexes: HashSet::new(),
        refs: Vec::new(),
    };
    for obj in &listing {
        let k = obj.key.as_str();
        if k == crate::config::CONFIG_KEY {
            continue;
        } else if k.starts_with("packs/") {
            match pack::parse_pack_key(k) {
                Some(id) => {
                    out.packs.insert(id, (obj.key.clone(), obj.size));
                }
                None => r.warn(k, "not a valid pack name; not part of the vault"),
            }
        } else if k.starts_with("index/") {
            match index::parse_index_key(k) {
                Some(id) => {
                    out.indexes.insert(id);
                }
                None => r.warn(k, "not a valid index name; not part of the vault"),
            }
        } else if k.starts_with("commits/") {
            match commit::parse_commit_key(k) {
                Some(id) => out.commits.push(id),
                None => r.warn(k, "not a valid commit name; not part of the vault"),
            }
        } else if crate::gc::format::is_gc_key(k) {
            // Prune's plans and done records (docs/PRUNE.md §3).
            if crate::gc::format::parse_gc_key(k).is_none() {
                r.warn(k, "not a valid prune plan name; not part of the vault");
            }
        } else if let Some(dev) = k.strip_prefix("clock/") {
            if crate::id::ShortId::from_hex(dev).is_err() {
                r.warn(k, "not a valid device clock name; not part of the vault");
            }
        } else if k.starts_with("refs/") {
            match commit::parse_ref_key(k) {
                Some(id) => out.refs.push(id),
                None => r.warn(k, "not a valid ref name; not part of the vault"),
            }
        } else {
            r.warn(k, "unknown object; not part of the vault");
        }
    }
    Ok(out)
}

/// Prune's objects: a plan or done record that does not open is damage
/// (prune stops until it is repaired); a plan left long past its grace
/// period is a prune that stopped half way.
async fn check_prune_objects(vault: &Vault, r: &mut CheckReport) -> Result<(), VaultError> {
    if vault.config().version() < crate::gc::GC_SINCE {
        return Ok(());
    }
    vault.load_gc().await?;
    for (key, why) in vault.damaged_gc_objects() {
        r.problem(key, why);
    }
    let now = std::time::SystemTime::now();
    for p in vault.known_plans() {
        let grace = std::time::Duration::from_secs(p.plan.grace_secs);
        let age = p.modified.map(|t| now.duration_since(t).unwrap_or_default());
        if age.is_some_and(|a| a > grace * 2 + std::time::Duration::from_secs(86_400)) {
            r.warn(
                crate::gc::format::plan_key(&p.id),
                "a prune marked data long ago and has not finished deleting it (a device that has not seen the plan holds it back, or no prune ran since); run `nimbus prune`",
            );
        }
    }
    Ok(())
}

/// Every indexed pack must have the size the index records (one the store
/// lacks is reported by [`report_missing_packs`], once it is known what
/// uses it). Returns the index's packs and their sizes.
fn check_index_against_store(
    vault: &Vault,
    packs: &HashMap<PackId, (String, u64)>,
    r: &mut CheckReport,
) -> HashMap<PackId, u64> {
    let indexed: HashMap<PackId, u64> = vault.with_index(|i| i.packs().clone());
    for (id, size) in &indexed {
        match packs.get(id) {
            None => {}
            Some((key, actual)) if actual != size => r.problem(
                key.clone(),
                format!("its size is {actual} bytes, but the index recorded {size}"),
            ),
            Some(_) => {}
        }
    }
    indexed
}

/// Each pack's header must authenticate and agree with the index (and with
/// `read_data`, every blob in it must decrypt).
async fn check_packs(
    vault: &Vault,
    packs: &HashMap<PackId, (String, u64)>,
    indexed: &HashMap<PackId, u64>,
    read_data: bool,
    progress: &(dyn Fn(CheckStep) + Sync),
    r: &mut CheckReport,
) {
    let mut by_pack: HashMap<PackId, Vec<(BlobId, index::Location)>> = HashMap::new();
    vault.with_index(|i| {
        for (id, loc) in i.blobs() {
            by_pack.entry(loc.pack).or_default().push((*id, *loc));
        }
    });
    let total = packs.len() as u64;
    for (done, (id, (key, size))) in packs.iter().enumerate() {
        progress(CheckStep::Packs {
            done: done as u64 + 1,
            total,
        });
        r.packs += 1;
        if !indexed.contains_key(id) {
            r.warn(
                key.clone(),
                "no index lists this pack (left by an interrupted save; harmless)",
            );
            continue;
        }
        if indexed.get(id) != Some(size) {
            continue; // already reported
        }
        let result = if read_data {
            check_pack_data(vault, id, key, r).await
        } else {
            check_pack_header(vault, id, key, *size).await
        };
        match result {
            Ok(entries) => {
                let listed = by_pack.get(id).map(|v| v.as_slice()).unwrap_or(&[]);
                compare_header_with_index(key, entries, listed, r);
            }
            Err(why) => r.problem(key.clone(), why.to_string()),
        }
    }
}

/// Every blob the index places in a pack must be in the pack's header, at
/// the same place and of the same kind.
fn compare_header_with_index(
    key: &str,
    entries: Vec<pack::PackEntry>,
    listed: &[(BlobId, index::Location)],
    r: &mut CheckReport,
) {
    let header: HashMap<BlobId, pack::PackEntry> = entries.into_iter().map(|e| (e.id, e)).collect();
    for (blob, loc) in listed {
        match header.get(blob) {
            Some(e) if e.offset == loc.offset && e.length == loc.length && e.kind == loc.kind => {}
            _ => r.problem(
                key.to_string(),
                format!("the index places blob {blob} in this pack, but the pack header disagrees"),
            ),
        }
    }
}

/// Reads every commit; one that does not open is a problem.
async fn read_commits(vault: &Vault, ids: &[CommitId], r: &mut CheckReport) -> HashMap<CommitId, Commit> {
    let mut commits: HashMap<CommitId, Commit> = HashMap::new();
    for id in ids {
        match vault.read_commit(id).await {
            Ok(c) => {
                commits.insert(*id, c);
            }
            Err(e) => r.record_error(&commit::commit_key(id), e),
        }
    }
    r.commits = commits.len() as u64;
    commits
}

/// The generation rule the sync engine's ancestor search relies on
/// (`nimbus-merge`'s base search enforces exactly this): a version 3 commit's
/// generation is 1 + the largest of its parents' (1 with none, a version 2
/// parent counting 0), and a version 2 commit (generation 0) has only
/// version 2 parents. Checked only when every parent read (a missing one
/// is reported already). A warning: nothing is lost, but merges across the
/// commit fall back to the union of both sides.
fn check_generation(id: &CommitId, c: &Commit, commits: &HashMap<CommitId, Commit>, r: &mut CheckReport) {
    let mut highest = 0u64;
    let mut highest_parent = None;
    for p in &c.parents {
        let Some(parent) = commits.get(p) else {
            return;
        };
        if highest_parent.is_none() || parent.generation > highest {
            highest = parent.generation;
            highest_parent = Some(p);
        }
    }
    let message = match highest_parent {
        Some(p) if c.generation == 0 && highest > 0 => format!(
            "it is a version 2 commit (no generation) on its parent {}, which has generation {}",
            p.short(),
            highest
        ),
        _ if c.generation != 0 && highest.checked_add(1) != Some(c.generation) => format!(
            "its generation {} is not 1 + the largest of its parents' ({})",
            c.generation, highest
        ),
        _ => return,
    };
    r.warn(commit::commit_key(id), message);
}

/// Packs the index lists that the store lacks, by what uses their blobs:
/// a ref's snapshot (a problem), only older snapshots (history), nothing
/// (a warning: no snapshot loses anything).
fn report_missing_packs(
    vault: &Vault,
    packs: &HashMap<PackId, (String, u64)>,
    indexed: &HashMap<PackId, u64>,
    lost: &LostPacks,
    r: &mut CheckReport,
) {
    let mut placed: HashMap<PackId, u64> = HashMap::new();
    vault.with_index(|i| {
        for (_, loc) in i.blobs() {
            *placed.entry(loc.pack).or_default() += 1;
        }
    });
    let mut missing: Vec<&PackId> = indexed.keys().filter(|id| !packs.contains_key(*id)).collect();
    missing.sort();
    for id in missing {
        let key = pack::pack_key(id);
        let what = "missing: the index lists it, but the store does not have it";
        if lost.current.contains(id) {
            r.problem(key, format!("{what}; the snapshot of a ref uses blobs in it"));
        } else if lost.history.contains(id) {
            r.history.push(Finding {
                object: key,
                message: format!("{what}; only older snapshots use blobs in it"),
            });
        } else if placed.get(id).copied().unwrap_or(0) == 0 {
            r.warn(
                key,
                "the index lists it, but the store does not have it: a stale entry, every blob it held is \
                 stored in another pack (uploaded again by a repair)",
            );
        } else {
            r.warn(
                key,
                "the index lists it, but the store does not have it; no snapshot uses its blobs, so nothing is lost",
            );
        }
    }
}

/// Packs the store lacks whose blobs a walked snapshot uses.
#[derive(Default)]
struct LostPacks {
    /// Used by the snapshot of a ref.
    current: HashSet<PackId>,
    /// Used only by older snapshots.
    history: HashSet<PackId>,
}

/// Each commit's parents must exist, and every tree and data blob it reaches
/// must be readable, in a pack the store has, and indexed as what it is
/// used for. A tree or blob shared by several snapshots is checked once,
/// under the snapshots of refs (`heads`) first, so damage they reach is a
/// problem and damage only older snapshots reach is history.
async fn check_snapshots(
    vault: &Vault,
    commits: &HashMap<CommitId, Commit>,
    listing: &Listing,
    heads: &HashSet<CommitId>,
    progress: &(dyn Fn(CheckStep) + Sync),
    r: &mut CheckReport,
) -> LostPacks {
    let stored = &listing.commits;
    let mut seen = Seen::default();
    let mut lost = LostPacks::default();
    let total = commits.len() as u64;
    let mut order: Vec<(&CommitId, &Commit)> = commits.iter().collect();
    order.sort_by_key(|(id, _)| !heads.contains(id));
    for (n, (id, c)) in order.into_iter().enumerate() {
        progress(CheckStep::Snapshots {
            done: n as u64 + 1,
            total,
        });
        for p in &c.parents {
            // A parent that is stored but did not open is reported already.
            if !commits.contains_key(p) && !stored.contains(p) {
                // Forgotten on purpose by a prune (docs/PRUNE.md §7).
                if vault.is_forgotten(p) {
                    r.pruned_history += 1;
                    continue;
                }
                r.problem(
                    commit::commit_key(id),
                    format!("its parent commit {} is missing", p.short()),
                );
            }
        }
        check_generation(id, c, commits, r);
        let walk = Walk {
            vault,
            id,
            packs: &listing.packs,
            current: heads.contains(id),
        };
        let found = r.problems.len() + r.history.len();
        walk.trees(c.root, &mut seen, &mut lost, r).await;
        let whole = r.problems.len() + r.history.len() == found;
        // An index object a prune superseded is gone on purpose.
        for ix in c
            .indexes
            .iter()
            .filter(|ix| !listing.indexes.contains(ix) && !vault.is_superseded(ix))
        {
            let key = index::index_key(ix);
            let what = format!("the index object {key} its save wrote is missing");
            // Gone before this vault was opened, and its packs indexed again
            // (by `check --repair`): nothing the snapshot needs is lost, and
            // readers list `index/` anyway. One lost since the open still
            // places blobs in this vault's index, so "whole" proves nothing.
            match whole && !vault.index_loaded(&key) {
                true => r.warn(
                    commit::commit_key(id),
                    format!("{what}, but every blob of the snapshot is indexed by other index objects"),
                ),
                false => r.damage(walk.current, commit::commit_key(id), what),
            }
        }
    }
    r.data_blobs_referenced = seen.data.len() as u64;
    lost
}

/// Trees and data blobs already checked, across snapshots.
#[derive(Default)]
struct Seen {
    trees: HashSet<BlobId>,
    data: HashSet<BlobId>,
}

/// One snapshot's walk: its commit, the packs in the store, and whether
/// it is a ref's snapshot (damage is a problem) or an older one (history).
struct Walk<'a> {
    vault: &'a Vault,
    id: &'a CommitId,
    packs: &'a HashMap<PackId, (String, u64)>,
    current: bool,
}

impl Walk<'_> {
    /// Checks the trees under `root` and the data blobs they name, naming
    /// each finding by the folder or file it was found under.
    async fn trees(&self, root: BlobId, seen: &mut Seen, lost: &mut LostPacks, r: &mut CheckReport) {
        let mut stack = vec![(root, "/".to_string())];
        while let Some((tree_id, path)) = stack.pop() {
            if !seen.trees.insert(tree_id) {
                continue;
            }
            r.trees += 1;
            let tree = match self.vault.read_tree(&tree_id).await {
                Ok(t) => t,
                Err(e) => {
                    self.note_lost(&tree_id, lost);
                    let ctx = format!("tree {tree_id} (folder `{path}` of commit {})", self.id.short());
                    match e {
                        VaultError::Corrupt { object, what } => {
                            r.damage(self.current, object, format!("{what}; {ctx}"))
                        }
                        VaultError::Missing { object, what } => {
                            r.damage(self.current, object, format!("missing: {what}; {ctx}"))
                        }
                        other => r.damage(self.current, ctx, other.to_string()),
                    }
                    continue;
                }
            };
            for e in &tree.entries {
                let child = format!("{}{}", path, String::from_utf8_lossy(&e.name));
                if let Some(s) = e.subtree {
                    stack.push((s, format!("{child}/")));
                }
                for b in &e.content {
                    if seen.data.insert(*b) {
                        self.data_blob(b, &child, lost, r);
                    }
                }
            }
        }
    }

    /// Remembers that a blob this walk needs sits in a pack the store lacks.
    fn note_lost(&self, blob: &BlobId, lost: &mut LostPacks) {
        if let Some(loc) = self.vault.locate(blob) {
            if !self.packs.contains_key(&loc.pack) {
                match self.current {
                    true => lost.current.insert(loc.pack),
                    false => lost.history.insert(loc.pack),
                };
            }
        }
    }

    /// A blob used as a file's content must be indexed, as data, in a pack
    /// the store has.
    fn data_blob(&self, b: &BlobId, child: &str, lost: &mut LostPacks, r: &mut CheckReport) {
        let used = format!("it is content of `{child}` in commit {}", self.id.short());
        match self.vault.locate(b) {
            Some(loc) if !self.packs.contains_key(&loc.pack) => {
                self.note_lost(b, lost);
                r.damage(
                    self.current,
                    format!("blob {b}"),
                    format!("missing: its pack `{}` is gone; {used}", pack::pack_key(&loc.pack)),
                );
            }
            Some(loc) if loc.kind == BlobKind::Data => {}
            Some(_) => r.damage(
                self.current,
                format!("blob {b}"),
                format!("indexed as a tree, but `{child}` uses it as content"),
            ),
            None => r.damage(
                self.current,
                format!("blob {b}"),
                format!("missing: no index lists it; {used}"),
            ),
        }
    }
}

/// Reads every ref; one that does not open is a problem.
async fn read_refs(vault: &Vault, devices: &[DeviceId], r: &mut CheckReport) -> Vec<(DeviceId, RefRecord)> {
    let mut out = Vec::new();
    for dev in devices {
        let key = commit::ref_key(dev);
        let rec = match vault.backend().get_whole(&key, crate::caps::REF_MAX).await {
            Ok(b) => RefRecord::open(vault.keys(), dev, &b).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match rec {
            Ok(rec) => out.push((*dev, rec)),
            Err(why) => r.problem(key, why),
        }
    }
    out
}

/// Refs must point at an existing commit. Returns the commits the refs
/// reach, through their parents.
fn check_refs(
    refs: &[(DeviceId, RefRecord)],
    commits: &HashMap<CommitId, Commit>,
    stored: &[CommitId],
    r: &mut CheckReport,
) -> HashSet<CommitId> {
    let mut reachable: HashSet<CommitId> = HashSet::new();
    for (dev, rec) in refs {
        if !commits.contains_key(&rec.commit) {
            if !stored.contains(&rec.commit) {
                r.problem(
                    commit::ref_key(dev),
                    format!("it points at `{}`, which is missing", commit::commit_key(&rec.commit)),
                );
            }
            continue;
        }
        let mut stack = vec![rec.commit];
        while let Some(c) = stack.pop() {
            if reachable.insert(c) {
                if let Some(cm) = commits.get(&c) {
                    stack.extend(cm.parents.iter().copied());
                }
            }
        }
    }
    reachable
}

/// Commits no ref reaches are left by a save interrupted before its ref
/// (harmless), or by a ref deleted on the server. The CLI adds a problem
/// for a ref this device has seen and that is now gone.
fn warn_unreachable(commits: &HashMap<CommitId, Commit>, reachable: &HashSet<CommitId>, r: &mut CheckReport) {
    for id in commits.keys() {
        if !reachable.contains(id) {
            r.warn(
                commit::commit_key(id),
                "no ref reaches this commit (a save stopped before writing its ref, or a ref was deleted)",
            );
        }
    }
}

/// Why a pack could not be checked: the store did not give its bytes, or
/// they are not a sound pack.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PackProblem {
    #[error("{0}")]
    Read(#[from] BackendError),
    #[error("it is too short to be a pack")]
    TooShort,
    #[error("its end could not be read")]
    TailUnreadable,
    #[error("its header length {0} does not fit")]
    HeaderLength(u64),
    #[error("{0}")]
    Damaged(#[from] pack::PackError),
}

/// Reads and authenticates a pack's header from the end of the pack (two
/// ranged reads), as `check` does and `check --repair` to rebuild an index.
pub(crate) async fn check_pack_header(
    vault: &Vault,
    id: &PackId,
    key: &str,
    size: u64,
) -> Result<Vec<pack::PackEntry>, PackProblem> {
    if size < 4 {
        return Err(PackProblem::TooShort);
    }
    let backend = vault.backend();
    let tail = crate::vault::get_range(backend, key, size - 4..size).await?;
    let tail: [u8; 4] = tail.as_ref().try_into().map_err(|_| PackProblem::TailUnreadable)?;
    let hlen = pack::header_len_from_tail(&tail) as u64;
    if hlen + 4 > size {
        return Err(PackProblem::HeaderLength(hlen));
    }
    let start = size - 4 - hlen;
    let header = crate::vault::get_range(backend, key, start..size - 4).await?;
    Ok(pack::decode_header(vault.keys(), id, &header, start)?)
}

async fn check_pack_data(
    vault: &Vault,
    id: &PackId,
    key: &str,
    r: &mut CheckReport,
) -> Result<Vec<pack::PackEntry>, PackProblem> {
    let bytes = vault.backend().get(key, None).await?;
    let keys = vault.keys();
    let (area, entries) = pack::parse_pack(keys, id, &bytes)?;
    for e in &entries {
        let sealed = &area[e.offset as usize..(e.offset as usize + e.length as usize)];
        r.blobs_read += 1;
        if let Err(err) = codec::decode_blob(keys, e.kind, &e.id, e.raw_len, sealed) {
            r.problem(key.to_string(), format!("blob {} at offset {}: {err}", e.id, e.offset));
        }
    }
    Ok(entries)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    //! The generation rule `check` reports is exactly the one the sync
    //! engine's base search enforces.

    use std::sync::Arc;

    use nimbus_backend::MemoryBackend;

    use super::*;
    use crate::commit::{CommitLayout, NewCommit};
    use crate::config::{KdfParams, VaultParams};
    use crate::id::ShortId;
    use crate::saver::Saver;
    use crate::tree::Tree;
    use crate::Timestamp;

    fn on(parents: Vec<CommitId>, base: &Commit, generation: u64) -> Commit {
        Commit {
            parents,
            generation,
            ..base.clone()
        }
    }

    #[tokio::test]
    async fn check_warns_of_a_generation_that_is_not_one_above_the_parents() {
        let mem = Arc::new(MemoryBackend::new());
        let (vault, _) = Vault::create(mem, b"pw", VaultParams::default(), KdfParams::minimum())
            .await
            .unwrap();
        let saver = Saver::new(&vault);
        let root = saver.save_blob(BlobKind::Tree, Tree::default().encode()).await.unwrap();
        saver.finish().await.unwrap();
        let new = NewCommit {
            root,
            parents: vec![],
            device: ShortId::random(),
            device_name: "laptop".into(),
            time: Timestamp::now(),
            message: "test".into(),
            files: 0,
            bytes: 0,
            indexes: vec![],
        };
        let (c1, w1) = vault.write_commit(new.clone()).await.unwrap();
        let (c2, w2) = vault
            .write_commit(NewCommit {
                parents: vec![c1],
                ..new.clone()
            })
            .await
            .unwrap();
        assert_eq!((w1.generation, w2.generation), (1, 2));
        let clean = check(&vault, false, &|_| {}).await.unwrap();
        // No ref names these commits, so `check` warns of that; never of a generation.
        assert!(clean.problems.is_empty(), "{clean:?}");
        assert!(
            !clean.warnings.iter().any(|f| f.message.contains("generation")),
            "{clean:?}"
        );

        // Above the parent but not by exactly one: the old "above" test let it pass.
        let gap = vault
            .put_commit_as_is(&on(vec![c2], &w2, 4), CommitLayout::V3)
            .await
            .unwrap();
        // Below the largest parent (a merge of c1 and c2 numbered from c1).
        let low = vault
            .put_commit_as_is(&on(vec![c1, c2], &w2, 2), CommitLayout::V3)
            .await
            .unwrap();
        // A version 2 commit on a version 3 parent.
        let v2 = vault
            .put_commit_as_is(&on(vec![c2], &w2, 0), CommitLayout::V2)
            .await
            .unwrap();
        // Right: 1 + the largest parent's.
        let right = vault
            .put_commit_as_is(&on(vec![c1, c2], &w2, 3), CommitLayout::V3)
            .await
            .unwrap();

        let report = check(&vault, false, &|_| {}).await.unwrap();
        let warned = |id: &CommitId| {
            let key = commit::commit_key(id);
            report
                .warnings
                .iter()
                .filter(|f| f.object == key && f.message.contains("generation"))
                .count()
        };
        assert_eq!((warned(&gap), warned(&low), warned(&v2)), (1, 1, 1), "{report:?}");
        assert_eq!((warned(&c1), warned(&c2), warned(&right)), (0, 0, 0), "{report:?}");
        let messages: Vec<&str> = report.warnings.iter().map(|f| f.message.as_str()).collect();
        assert!(
            messages
                .iter()
                .any(|m| m.contains("generation 4 is not 1 + the largest of its parents' (2)")),
            "{messages:?}"
        );
        assert!(messages.iter().any(|m| m.contains("version 2 commit")), "{messages:?}");
    }
}

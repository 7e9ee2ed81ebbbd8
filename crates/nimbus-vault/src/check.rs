//! `check`: verifies every object's structure and every reference, and with
//! `read_data` every blob's authenticity. Problems are collected, each named
//! by its object, rather than stopping at the first.

use std::collections::{HashMap, HashSet};

use crate::codec::{self, BlobKind};
use crate::commit::{self, Commit, RefRecord};
use crate::error::VaultError;
use crate::id::{BlobId, CommitId, PackId};
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
    /// Damage: missing, altered or inconsistent objects.
    pub problems: Vec<Finding>,
    /// Harmless leftovers (such as packs of an interrupted save).
    pub warnings: Vec<Finding>,
    pub objects: u64,
    pub packs: u64,
    pub commits: u64,
    pub trees: u64,
    pub data_blobs_referenced: u64,
    pub blobs_read: u64,
}

impl CheckReport {
    fn problem(&mut self, object: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Finding {
            object: object.into(),
            message: message.into(),
        });
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
    let backend = vault.backend().clone();
    let listing = backend.list("").await?;
    r.objects = listing.len() as u64;
    let mut packs: HashMap<PackId, (String, u64)> = HashMap::new();
    let mut commit_keys = Vec::new();
    let mut ref_keys = Vec::new();
    for obj in &listing {
        let k = obj.key.as_str();
        if k == crate::config::CONFIG_KEY {
            continue;
        } else if k.starts_with("packs/") {
            match pack::parse_pack_key(k) {
                Some(id) => {
                    packs.insert(id, (obj.key.clone(), obj.size));
                }
                None => r.warn(k, "not a valid pack name; not part of the vault"),
            }
        } else if k.starts_with("index/") {
            if index::parse_index_key(k).is_none() {
                r.warn(k, "not a valid index name; not part of the vault");
            }
        } else if k.starts_with("commits/") {
            match commit::parse_commit_key(k) {
                Some(id) => commit_keys.push(id),
                None => r.warn(k, "not a valid commit name; not part of the vault"),
            }
        } else if k.starts_with("refs/") {
            match commit::parse_ref_key(k) {
                Some(id) => ref_keys.push(id),
                None => r.warn(k, "not a valid ref name; not part of the vault"),
            }
        } else {
            r.warn(k, "unknown object; not part of the vault");
        }
    }

    for (key, why) in vault.damaged_indexes() {
        r.problem(key, why);
    }

    // Every indexed pack must exist with the size the index records.
    let indexed: HashMap<PackId, u64> = vault.with_index(|i| i.packs().clone());
    let mut by_pack: HashMap<PackId, Vec<(BlobId, index::Location)>> = HashMap::new();
    vault.with_index(|i| {
        for (id, loc) in i.blobs() {
            by_pack.entry(loc.pack).or_default().push((*id, *loc));
        }
    });
    for (id, size) in &indexed {
        match packs.get(id) {
            None => r.problem(
                pack::pack_key(id),
                "missing: the index lists it, but the store does not have it",
            ),
            Some((key, actual)) if actual != size => r.problem(
                key.clone(),
                format!("its size is {actual} bytes, but the index recorded {size}"),
            ),
            Some(_) => {}
        }
    }

    // Each pack's header must authenticate and agree with the index.
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
            check_pack_data(vault, id, key, &mut r).await
        } else {
            check_pack_header(vault, id, key, *size).await
        };
        match result {
            Ok(entries) => {
                let header: HashMap<BlobId, pack::PackEntry> = entries.into_iter().map(|e| (e.id, e)).collect();
                for (blob, loc) in by_pack.get(id).map(|v| v.as_slice()).unwrap_or(&[]) {
                    match header.get(blob) {
                        Some(e) if e.offset == loc.offset && e.length == loc.length && e.kind == loc.kind => {}
                        _ => r.problem(
                            key.clone(),
                            format!("the index places blob {blob} in this pack, but the pack header disagrees"),
                        ),
                    }
                }
            }
            Err(msg) => r.problem(key.clone(), msg),
        }
    }

    // Commits, and every tree and blob they reach.
    let mut commits: HashMap<CommitId, Commit> = HashMap::new();
    for id in &commit_keys {
        match vault.read_commit(id).await {
            Ok(c) => {
                commits.insert(*id, c);
            }
            Err(e) => r.record_error(&commit::commit_key(id), e),
        }
    }
    r.commits = commits.len() as u64;
    let mut seen_trees: HashSet<BlobId> = HashSet::new();
    let mut seen_data: HashSet<BlobId> = HashSet::new();
    let total = commits.len() as u64;
    for (n, (id, c)) in commits.iter().enumerate() {
        progress(CheckStep::Snapshots {
            done: n as u64 + 1,
            total,
        });
        for p in &c.parents {
            if !commits.contains_key(p) && !commit_keys.contains(p) {
                r.problem(
                    commit::commit_key(id),
                    format!("its parent commit {} is missing", p.short()),
                );
            }
        }
        let mut stack = vec![(c.root, "/".to_string())];
        while let Some((tree_id, path)) = stack.pop() {
            if !seen_trees.insert(tree_id) {
                continue;
            }
            r.trees += 1;
            let tree = match vault.read_tree(&tree_id).await {
                Ok(t) => t,
                Err(e) => {
                    let ctx = format!("tree {tree_id} (folder `{path}` of commit {})", id.short());
                    match e {
                        VaultError::Corrupt { object, what } => r.problem(object, format!("{what}; {ctx}")),
                        VaultError::Missing { object, what } => r.problem(object, format!("missing: {what}; {ctx}")),
                        other => r.problem(ctx, other.to_string()),
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
                    if !seen_data.insert(*b) {
                        continue;
                    }
                    match vault.locate(b) {
                        Some(loc) if loc.kind == BlobKind::Data => {}
                        Some(_) => r.problem(
                            format!("blob {b}"),
                            format!("indexed as a tree, but `{child}` uses it as content"),
                        ),
                        None => r.problem(
                            format!("blob {b}"),
                            format!(
                                "missing: no index lists it; it is content of `{child}` in commit {}",
                                id.short()
                            ),
                        ),
                    }
                }
            }
        }
    }
    r.data_blobs_referenced = seen_data.len() as u64;

    // Refs: each must open and point at an existing commit.
    let mut reachable: HashSet<CommitId> = HashSet::new();
    for dev in &ref_keys {
        let key = commit::ref_key(dev);
        let rec = match backend.get_whole(&key, crate::caps::REF_MAX).await {
            Ok(b) => RefRecord::open(vault.keys(), dev, &b),
            Err(e) => Err(e.to_string()),
        };
        match rec {
            Ok(rec) => {
                if !commits.contains_key(&rec.commit) {
                    if !commit_keys.contains(&rec.commit) {
                        r.problem(
                            key,
                            format!("it points at `{}`, which is missing", commit::commit_key(&rec.commit)),
                        );
                    }
                } else {
                    let mut stack = vec![rec.commit];
                    while let Some(c) = stack.pop() {
                        if reachable.insert(c) {
                            if let Some(cm) = commits.get(&c) {
                                stack.extend(cm.parents.iter().copied());
                            }
                        }
                    }
                }
            }
            Err(why) => r.problem(key, why),
        }
    }
    // Commits no ref reaches are left by a save interrupted before its ref
    // (harmless), or by a ref deleted on the server. The CLI adds a problem
    // for a ref this device has seen and that is now gone.
    for id in commits.keys() {
        if !reachable.contains(id) {
            r.warn(
                commit::commit_key(id),
                "no ref reaches this commit (a save stopped before writing its ref, or a ref was deleted)",
            );
        }
    }
    Ok(r)
}

async fn check_pack_header(vault: &Vault, id: &PackId, key: &str, size: u64) -> Result<Vec<pack::PackEntry>, String> {
    if size < 4 {
        return Err("it is too short to be a pack".into());
    }
    let backend = vault.backend();
    let tail = crate::vault::get_range(backend, key, size - 4..size)
        .await
        .map_err(|e| e.to_string())?;
    let tail: [u8; 4] = tail
        .as_ref()
        .try_into()
        .map_err(|_| "its end could not be read".to_string())?;
    let hlen = pack::header_len_from_tail(&tail) as u64;
    if hlen + 4 > size {
        return Err(format!("its header length {hlen} does not fit"));
    }
    let start = size - 4 - hlen;
    let header = crate::vault::get_range(backend, key, start..size - 4)
        .await
        .map_err(|e| e.to_string())?;
    pack::decode_header(vault.keys(), id, &header, start).map_err(|e| e.to_string())
}

async fn check_pack_data(
    vault: &Vault,
    id: &PackId,
    key: &str,
    r: &mut CheckReport,
) -> Result<Vec<pack::PackEntry>, String> {
    let bytes = vault.backend().get(key, None).await.map_err(|e| e.to_string())?;
    let keys = vault.keys();
    let (area, entries) = pack::parse_pack(keys, id, &bytes).map_err(|e| e.to_string())?;
    for e in &entries {
        let sealed = &area[e.offset as usize..(e.offset as usize + e.length as usize)];
        r.blobs_read += 1;
        if let Err(err) = codec::decode_blob(keys, e.kind, &e.id, e.raw_len, sealed) {
            r.problem(key.to_string(), format!("blob {} at offset {}: {err}", e.id, e.offset));
        }
    }
    Ok(entries)
}

//! `stat`: what the vault holds and how well deduplication and compression
//! work on it.

use std::collections::{BTreeMap, HashSet};

use crate::error::Result;
use crate::id::{BlobId, CommitId};
use crate::vault::Vault;

/// Objects of one kind.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct ObjectCount {
    pub count: u64,
    pub bytes: u64,
}

/// The figures `nimbus stat` prints.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct VaultStats {
    /// By kind: `config`, `packs`, `index`, `commits`, `refs`, `other`.
    pub objects: BTreeMap<String, ObjectCount>,
    pub total_objects: u64,
    /// Bytes held by the store, all objects.
    pub stored_bytes: u64,
    pub snapshots: u64,
    /// The snapshot measured (the newest unless asked otherwise).
    pub snapshot: Option<String>,
    pub files: u64,
    /// Sum of the sizes of every file in the snapshot.
    pub logical_bytes: u64,
    pub unique_blobs: u64,
    /// Plaintext bytes of the distinct blobs the snapshot uses.
    pub unique_bytes: u64,
    /// Bytes those blobs take in packs (compressed and encrypted).
    pub unique_stored_bytes: u64,
    /// `logical_bytes / unique_bytes`.
    pub dedup_ratio: f64,
    /// `unique_bytes / unique_stored_bytes`.
    pub compression_ratio: f64,
}

pub async fn stats(vault: &Vault, at: Option<CommitId>) -> Result<VaultStats> {
    let mut s = VaultStats::default();
    for obj in vault.backend().list("").await? {
        let kind = obj.key.split('/').next().unwrap_or("other");
        let kind = match kind {
            "config" | "packs" | "index" | "commits" | "refs" => kind,
            _ => "other",
        };
        let e = s.objects.entry(kind.to_string()).or_default();
        e.count += 1;
        e.bytes += obj.size;
        s.total_objects += 1;
        s.stored_bytes += obj.size;
    }
    s.snapshots = s.objects.get("commits").map(|c| c.count).unwrap_or(0);
    let commit = match at {
        Some(id) => Some((id, vault.read_commit(&id).await?)),
        None => vault.head().await?,
    };
    let Some((cid, commit)) = commit else { return Ok(s) };
    s.snapshot = Some(cid.to_hex());
    let mut seen_trees = HashSet::new();
    let mut seen: HashSet<BlobId> = HashSet::new();
    let mut stack = vec![commit.root];
    while let Some(t) = stack.pop() {
        if !seen_trees.insert(t) {
            continue;
        }
        let tree = vault.read_tree(&t).await?;
        for e in &tree.entries {
            if let Some(sub) = e.subtree {
                stack.push(sub);
            }
            if e.kind == crate::tree::EntryKind::File {
                s.files += 1;
                s.logical_bytes += e.size;
            }
            for b in &e.content {
                if seen.insert(*b) {
                    if let Some(loc) = vault.locate(b) {
                        s.unique_blobs += 1;
                        s.unique_bytes += loc.raw_len as u64;
                        s.unique_stored_bytes += loc.length as u64;
                    }
                }
            }
        }
    }
    s.dedup_ratio = if s.unique_bytes > 0 {
        s.logical_bytes as f64 / s.unique_bytes as f64
    } else {
        1.0
    };
    s.compression_ratio = if s.unique_stored_bytes > 0 {
        s.unique_bytes as f64 / s.unique_stored_bytes as f64
    } else {
        1.0
    };
    Ok(s)
}

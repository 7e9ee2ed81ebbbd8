//! What snapshots reach: every tree and content blob below a set of root
//! trees (prune's liveness, docs/PRUNE.md §4.1 step 4 and §4.2 (c)), and
//! what one snapshot reaches that another does not (the publish check,
//! §5 S2).
//!
//! Trees are read a level at a time and grouped by pack, so a walk costs a
//! few ranged reads per pack of trees rather than one request per folder.

use std::collections::{HashMap, HashSet};

use crate::codec::BlobKind;
use crate::error::{Result, VaultError};
use crate::id::{BlobId, PackId};
use crate::index::Location;
use crate::tree::Tree;
use crate::vault::Vault;

/// Blobs reached so far, and the trees already walked (a tree shared by
/// many snapshots is walked once).
#[derive(Debug, Default)]
pub(crate) struct LiveSet {
    pub blobs: HashSet<BlobId>,
    /// Trees that could not be found or read: key and reason. A walk goes
    /// on without them; what they would reach stays unknown, so a prune
    /// that met any must not condemn anything.
    pub unreadable: Vec<(BlobId, String)>,
}

impl LiveSet {
    /// Adds everything below `roots`.
    pub async fn add_roots(&mut self, vault: &Vault, roots: impl IntoIterator<Item = BlobId>) -> Result<()> {
        let mut level: Vec<BlobId> = roots.into_iter().filter(|r| self.blobs.insert(*r)).collect();
        while !level.is_empty() {
            let trees = read_trees(vault, &level, &mut self.unreadable).await?;
            let mut next = Vec::new();
            for tree in trees {
                for e in &tree.entries {
                    self.blobs.extend(e.content.iter().copied());
                    if let Some(sub) = e.subtree {
                        if self.blobs.insert(sub) {
                            next.push(sub);
                        }
                    }
                }
            }
            level = next;
        }
        Ok(())
    }
}

/// Reads many trees, grouped by pack. A tree no index lists, or whose
/// bytes do not authenticate, goes into `unreadable`; a store that cannot
/// be reached is an error.
pub(crate) async fn read_trees(
    vault: &Vault,
    ids: &[BlobId],
    unreadable: &mut Vec<(BlobId, String)>,
) -> Result<Vec<Tree>> {
    let mut by_pack: HashMap<PackId, Vec<(BlobId, Location)>> = HashMap::new();
    for id in ids {
        match vault.locate_or_load(id).await {
            Ok(loc) if loc.kind == BlobKind::Tree => by_pack.entry(loc.pack).or_default().push((*id, loc)),
            Ok(_) => unreadable.push((*id, "it is indexed as file content, not a folder".into())),
            Err(e @ VaultError::Backend(_)) => return Err(e),
            Err(e) => unreadable.push((*id, e.to_string())),
        }
    }
    let mut out = Vec::with_capacity(ids.len());
    for (pack, blobs) in by_pack {
        match vault.read_blobs_in_pack(pack, &blobs).await {
            Ok(plains) => {
                for ((id, _), plain) in blobs.iter().zip(plains) {
                    match Tree::decode(&plain) {
                        Ok(t) => out.push(t),
                        Err(e) => unreadable.push((*id, e.to_string())),
                    }
                }
            }
            Err(e @ VaultError::Backend(_)) => return Err(e),
            Err(e) => unreadable.extend(blobs.iter().map(|(id, _)| (*id, e.to_string()))),
        }
    }
    Ok(out)
}

/// The blobs `root` reaches that `base` does not reach at the same place:
/// a walk down only the folders whose tree changed. Used right before a
/// publish, so it costs about the folders a save touched.
pub(crate) async fn new_blobs(vault: &Vault, root: BlobId, base: Option<BlobId>) -> Result<HashSet<BlobId>> {
    let mut out = HashSet::new();
    let mut stack = vec![(root, base)];
    while let Some((tree_id, base_id)) = stack.pop() {
        if Some(tree_id) == base_id {
            continue;
        }
        out.insert(tree_id);
        let tree = vault.read_tree(&tree_id).await?;
        let base_tree = match base_id {
            Some(b) => vault.read_tree(&b).await.ok(),
            None => None,
        };
        let old: HashMap<&[u8], &crate::tree::Entry> = base_tree
            .as_ref()
            .map(|t| t.entries.iter().map(|e| (e.name.as_slice(), e)).collect())
            .unwrap_or_default();
        for e in &tree.entries {
            let before = old.get(e.name.as_slice());
            let had: HashSet<&BlobId> = before.map(|b| b.content.iter().collect()).unwrap_or_default();
            out.extend(e.content.iter().filter(|c| !had.contains(c)).copied());
            if let Some(sub) = e.subtree {
                stack.push((sub, before.and_then(|b| b.subtree)));
            }
        }
    }
    Ok(out)
}

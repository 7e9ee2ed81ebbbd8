//! Paths inside a snapshot: looking entries up and replacing a subtree,
//! re-saving the trees above it (trees are immutable blobs, so changing one
//! entry yields new trees up to a new root).

use crate::codec::BlobKind;
use crate::error::{Result, VaultError};
use crate::id::BlobId;
use crate::saver::Saver;
use crate::tree::{valid_name, Entry, Tree};
use crate::vault::Vault;

/// Splits `a/b/c` (leading, trailing and doubled slashes ignored) into
/// validated components.
pub fn split_path(path: &str) -> Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    for part in path.split('/') {
        if part.is_empty() || part == "." {
            continue;
        }
        if !valid_name(part.as_bytes()) {
            return Err(VaultError::invalid_input(format!(
                "`{part}` cannot be a name in the vault (`..`, NUL and names over 255 bytes are not allowed)"
            )));
        }
        out.push(part.as_bytes().to_vec());
    }
    Ok(out)
}

/// The entry at `path` under the tree `root`, or `None`. An empty path is
/// the root itself, reported as `Ok(None)` here: callers treat it as a dir.
pub async fn lookup(vault: &Vault, root: &BlobId, path: &[Vec<u8>]) -> Result<Option<Entry>> {
    let mut tree_id = *root;
    for (i, name) in path.iter().enumerate() {
        let tree = vault.read_tree(&tree_id).await?;
        let Some(entry) = tree.get(name).cloned() else {
            return Ok(None);
        };
        if i + 1 == path.len() {
            return Ok(Some(entry));
        }
        match entry.subtree {
            Some(s) => tree_id = s,
            None => return Ok(None),
        }
    }
    Ok(None)
}

/// Saves a tree and returns its id.
pub async fn save_tree(saver: &Saver, tree: &Tree) -> Result<BlobId> {
    saver.save_blob(BlobKind::Tree, tree.encode()).await
}

/// Puts `entry` at `path` (replacing what is there) and returns the new
/// root tree id. Missing parent directories are created from
/// `dir_template` (its name, file id and subtree are replaced). An empty
/// path replaces the root, so `entry` must then be a directory.
pub async fn replace_at(
    vault: &Vault,
    saver: &Saver,
    root: Option<BlobId>,
    path: &[Vec<u8>],
    entry: Entry,
    dir_template: &Entry,
) -> Result<BlobId> {
    let Some((last, parents)) = path.split_last() else {
        return entry
            .subtree
            .ok_or_else(|| VaultError::invalid_input("only a folder can replace the root of the vault"));
    };
    // Load the chain of trees from the root down to the parent of `last`.
    let mut chain: Vec<Tree> = Vec::with_capacity(path.len());
    let mut current = match root {
        Some(r) => Some(vault.read_tree(&r).await?),
        None => None,
    };
    for name in parents {
        let tree = current.take().unwrap_or_default();
        let next = match tree.get(name) {
            Some(e) => match e.subtree {
                Some(s) => Some(vault.read_tree(&s).await?),
                None => {
                    return Err(VaultError::invalid_input(format!(
                        "`{}` is a file in the vault, not a folder",
                        String::from_utf8_lossy(name)
                    )))
                }
            },
            None => None,
        };
        chain.push(tree);
        current = next;
    }
    let mut leaf = current.take().unwrap_or_default();
    let mut entry = entry;
    entry.name = last.clone();
    leaf.upsert(entry);
    let mut id = save_tree(saver, &leaf).await?;
    // Walk back up, pointing each parent at its new child.
    for (tree, name) in chain.into_iter().rev().zip(parents.iter().rev()) {
        let mut tree = tree;
        let child = match tree.get(name) {
            Some(e) => Entry {
                subtree: Some(id),
                ..e.clone()
            },
            None => Entry {
                name: name.clone(),
                subtree: Some(id),
                file_id: crate::id::FileId::random(),
                ..dir_template.clone()
            },
        };
        tree.upsert(child);
        id = save_tree(saver, &tree).await?;
    }
    Ok(id)
}

/// Number of files and their total size under the tree `root`. A subtree
/// stored once but appearing in several places is read once and counted
/// each time it appears.
pub async fn totals(vault: &Vault, root: &BlobId) -> Result<(u64, u64)> {
    // Per tree: files and bytes directly in it, and its subtrees.
    let mut summary: std::collections::HashMap<BlobId, (u64, u64, Vec<BlobId>)> = std::collections::HashMap::new();
    let (mut files, mut bytes) = (0u64, 0u64);
    let mut stack = vec![*root];
    while let Some(t) = stack.pop() {
        if let std::collections::hash_map::Entry::Vacant(slot) = summary.entry(t) {
            let mut s = (0, 0, Vec::new());
            for e in vault.read_tree(&t).await?.entries {
                match e.kind {
                    crate::tree::EntryKind::File => {
                        s.0 += 1;
                        s.1 += e.size;
                    }
                    crate::tree::EntryKind::Dir => s.2.extend(e.subtree),
                    _ => {}
                }
            }
            slot.insert(s);
        }
        if let Some((f, b, kids)) = summary.get(&t) {
            files += f;
            bytes += b;
            stack.extend(kids.iter().copied());
        }
    }
    Ok((files, bytes))
}

/// Files and bytes of one entry: itself for a file, its tree for a folder.
pub async fn entry_totals(vault: &Vault, entry: &Entry) -> Result<(u64, u64)> {
    match (entry.kind, entry.subtree) {
        (crate::tree::EntryKind::File, _) => Ok((1, entry.size)),
        (_, Some(sub)) => totals(vault, &sub).await,
        _ => Ok((0, 0)),
    }
}

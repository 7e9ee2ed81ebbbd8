//! The vault's trees as `nimbus_merge` reads and writes them
//! ([`nimbus_merge::Trees`]): read through the drive's blob cache, so a
//! tree this device wrote or read before costs no request, and stored
//! through a [`Saver`] the caller holds and finishes.

use std::collections::HashMap;
use std::sync::Arc;

use nimbus_merge::{TreeId, Trees};
use nimbus_vault::{BlobKind, Saver, Tree};

use crate::cache::blobs::BlobStore;
use crate::error::{ErrorKind, FsError};

/// [`Trees`] over the vault. Without a saver it only reads (an apply
/// flattens; a merge stores its new trees too). A tree stored here is kept
/// in memory as well: its pack is not indexed before the saver finishes,
/// and the merge reads its result back for the report.
pub(crate) struct VaultTrees<'a> {
    blobs: &'a Arc<BlobStore>,
    saver: Option<&'a Saver>,
    stored: HashMap<TreeId, Tree>,
}

impl<'a> VaultTrees<'a> {
    /// Reads only.
    pub fn reader(blobs: &'a Arc<BlobStore>) -> VaultTrees<'a> {
        VaultTrees {
            blobs,
            saver: None,
            stored: HashMap::new(),
        }
    }

    /// Reads, and stores new trees through `saver` (the caller finishes
    /// it, which writes the index naming them).
    pub fn with_saver(blobs: &'a Arc<BlobStore>, saver: &'a Saver) -> VaultTrees<'a> {
        VaultTrees {
            blobs,
            saver: Some(saver),
            stored: HashMap::new(),
        }
    }
}

impl Trees for VaultTrees<'_> {
    type Error = FsError;

    fn get(&mut self, id: &TreeId) -> Result<Tree, FsError> {
        if let Some(t) = self.stored.get(id) {
            return Ok(t.clone());
        }
        let plain = self.blobs.get(id)?;
        Tree::decode(&plain).map_err(|e| FsError::new(ErrorKind::Corrupt, format!("tree {id} cannot be read: {e}")))
    }

    fn get_many(&mut self, ids: &[TreeId]) -> Result<Vec<Tree>, FsError> {
        // One level of folders at a time: fetched side by side.
        let missing: Vec<TreeId> = ids.iter().filter(|i| !self.stored.contains_key(i)).copied().collect();
        self.blobs.prefetch(&missing);
        ids.iter().map(|id| self.get(id)).collect()
    }

    fn put(&mut self, tree: &Tree) -> Result<TreeId, FsError> {
        let saver = self
            .saver
            .ok_or_else(|| FsError::new(ErrorKind::Io, "this reader of the vault's trees cannot store one"))?;
        let id = saver.save_blob_blocking(BlobKind::Tree, &tree.encode())?;
        self.stored.insert(id, tree.clone());
        Ok(id)
    }
}

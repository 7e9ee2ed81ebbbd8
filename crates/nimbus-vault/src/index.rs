//! Index objects: which pack holds which blob, at which offset.
//!
//! An index object (`index/<64 hex>`) is a sealed metadata box listing the
//! packs uploaded by one save and every blob in each. All index objects
//! together form the master index a client loads at open; a read then
//! fetches only the byte range of the one blob it needs.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;

use crate::codec::{self, BlobKind, MetaError};
use crate::crypto::{Keys, Purpose};
use crate::id::{BlobId, Id, PackId};
use crate::pack::PackEntry;

/// The packs written by one save.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexFile {
    pub packs: Vec<IndexPack>,
}

/// One pack and its blobs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexPack {
    pub id: PackId,
    /// Total size of the pack object in bytes.
    pub size: u64,
    pub blobs: Vec<PackEntry>,
}

/// The object key of an index object.
pub fn index_key(id: &Id) -> String {
    format!("index/{}", id.to_hex())
}

/// Parses an index object key back into its id.
pub fn parse_index_key(key: &str) -> Option<Id> {
    Id::from_hex(key.strip_prefix("index/")?).ok()
}

impl IndexFile {
    pub(crate) fn seal(&self, keys: &Keys, id: &Id) -> Vec<u8> {
        let plain = postcard::to_allocvec(self).unwrap_or_default();
        codec::seal_meta(&keys.meta, Purpose::Index, id.as_bytes(), &plain)
    }

    /// Seals for a vault of format `version`: from version 2 uncompressed
    /// and zero-padded to the Padmé length of its body (at least 1 KiB), so
    /// its size tells the store little about how many blobs a save added.
    pub(crate) fn seal_for(&self, keys: &Keys, id: &Id, version: u64) -> Vec<u8> {
        if version < 2 {
            return self.seal(keys, id);
        }
        let plain = postcard::to_allocvec(self).unwrap_or_default();
        let target = codec::padme((plain.len() as u64).max(1 << 10)) as usize;
        codec::seal_meta_padded(&keys.meta, Purpose::Index, id.as_bytes(), &plain, target)
    }

    pub(crate) fn open(keys: &Keys, id: &Id, sealed: &[u8]) -> Result<IndexFile, MetaError> {
        let file: IndexFile = codec::open_meta_value(&keys.meta, Purpose::Index, id.as_bytes(), sealed)?;
        for p in &file.packs {
            for b in &p.blobs {
                if b.offset as u64 + b.length as u64 > p.size {
                    return Err(MetaError::BlobPastPack { blob: b.id, pack: p.id });
                }
            }
        }
        Ok(file)
    }
}

/// Where a blob is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    pub pack: PackId,
    pub kind: BlobKind,
    pub offset: u32,
    pub length: u32,
    pub raw_len: u32,
}

/// Every blob the client knows of, from all index objects.
#[derive(Debug, Default)]
pub struct MasterIndex {
    blobs: HashMap<BlobId, Location>,
    packs: HashMap<PackId, u64>,
}

impl MasterIndex {
    pub fn add_pack(&mut self, pack: &IndexPack) {
        self.packs.insert(pack.id, pack.size);
        for b in &pack.blobs {
            self.blobs.entry(b.id).or_insert(Location {
                pack: pack.id,
                kind: b.kind,
                offset: b.offset,
                length: b.length,
                raw_len: b.raw_len,
            });
        }
    }

    pub fn get(&self, id: &BlobId) -> Option<Location> {
        self.blobs.get(id).copied()
    }

    pub fn contains(&self, id: &BlobId) -> bool {
        self.blobs.contains_key(id)
    }

    pub fn packs(&self) -> &HashMap<PackId, u64> {
        &self.packs
    }

    pub fn blobs(&self) -> impl Iterator<Item = (&BlobId, &Location)> {
        self.blobs.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::MasterKey;

    fn index_of(blobs: usize) -> IndexFile {
        IndexFile {
            packs: vec![IndexPack {
                id: Id::random(),
                size: 1 << 20,
                blobs: (0..blobs)
                    .map(|i| PackEntry {
                        id: Id::random(),
                        kind: BlobKind::Data,
                        offset: i as u32 * 100,
                        length: 100,
                        raw_len: 71,
                    })
                    .collect(),
            }],
        }
    }

    /// Version 2 index objects hide how many blobs a small save added;
    /// version 1 ones are as before. Both open the same way.
    #[test]
    fn padded_index_objects() {
        let keys = MasterKey::random().derive();
        let id = Id::random();
        let sizes: Vec<usize> = [1, 2, 10]
            .iter()
            .map(|&n| index_of(n).seal_for(&keys, &id, 2).len())
            .collect();
        assert!(sizes.iter().all(|&s| s == sizes[0]), "{sizes:?}");
        assert_ne!(
            index_of(1).seal_for(&keys, &id, 1).len(),
            index_of(2).seal_for(&keys, &id, 1).len()
        );
        for version in [1, 2] {
            let f = index_of(300);
            assert_eq!(
                IndexFile::open(&keys, &id, &f.seal_for(&keys, &id, version)).unwrap(),
                f
            );
        }
    }
}

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
///
/// A blob stored in more than one pack (two saves racing, a repair that
/// uploaded it again, a repack) is read from one of them: the pack of the
/// newest index object by the store's time, so a copy written to replace a
/// lost pack wins over the lost one (docs/VAULT-FORMAT.md §7).
#[derive(Debug, Default)]
pub struct MasterIndex {
    blobs: HashMap<BlobId, Location>,
    packs: HashMap<PackId, u64>,
    /// When the index object that listed each pack was written, by the
    /// store's clock, where it was read from a listing that says.
    listed_at: HashMap<PackId, std::time::SystemTime>,
}

impl MasterIndex {
    /// Adds a pack; a blob already known keeps the place it has.
    pub fn add_pack(&mut self, pack: &IndexPack) {
        self.packs.insert(pack.id, pack.size);
        for b in &pack.blobs {
            self.blobs.entry(b.id).or_insert(location(pack, b));
        }
    }

    /// Adds a pack from an index object the store wrote at `listed_at`: its
    /// blobs move here from a pack listed by an older index object. Blobs
    /// placed without a time (by this process's own saves) stay.
    pub fn add_pack_listed(&mut self, pack: &IndexPack, listed_at: Option<std::time::SystemTime>) {
        let Some(at) = listed_at else {
            return self.add_pack(pack);
        };
        self.packs.insert(pack.id, pack.size);
        self.listed_at.insert(pack.id, at);
        for b in &pack.blobs {
            let newer = match self.blobs.get(&b.id) {
                None => true,
                Some(old) => self.listed_at.get(&old.pack).is_some_and(|t| *t < at),
            };
            if newer {
                self.blobs.insert(b.id, location(pack, b));
            }
        }
    }

    /// Adds a pack whose blobs are read from it from now on, wherever else
    /// they are known to be: a pack just written to replace a lost one.
    pub fn add_pack_preferred(&mut self, pack: &IndexPack) {
        self.packs.insert(pack.id, pack.size);
        for b in &pack.blobs {
            self.blobs.insert(b.id, location(pack, b));
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

fn location(pack: &IndexPack, b: &PackEntry) -> Location {
    Location {
        pack: pack.id,
        kind: b.kind,
        offset: b.offset,
        length: b.length,
        raw_len: b.raw_len,
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

    /// A blob listed by two index objects is read from the newer one's
    /// pack, in whatever order they load; a pack added without a time (this
    /// process's own save) is not moved by a later load.
    #[test]
    fn the_newest_index_object_places_a_blob() {
        use std::time::{Duration, UNIX_EPOCH};
        let blob = Id::random();
        let pack_with = |id: PackId| IndexPack {
            id,
            size: 100,
            blobs: vec![PackEntry {
                id: blob,
                kind: BlobKind::Data,
                offset: 0,
                length: 10,
                raw_len: 5,
            }],
        };
        let (old, new) = (pack_with(Id::random()), pack_with(Id::random()));
        let t = |s| Some(UNIX_EPOCH + Duration::from_secs(s));
        for order in [[(&old, t(10)), (&new, t(20))], [(&new, t(20)), (&old, t(10))]] {
            let mut m = MasterIndex::default();
            for (p, at) in order {
                m.add_pack_listed(p, at);
            }
            assert_eq!(m.get(&blob).map(|l| l.pack), Some(new.id));
            assert_eq!(m.packs().len(), 2);
        }
        let mut m = MasterIndex::default();
        m.add_pack(&old);
        m.add_pack_listed(&new, t(20));
        assert_eq!(m.get(&blob).map(|l| l.pack), Some(old.id));
        m.add_pack_preferred(&new);
        assert_eq!(m.get(&blob).map(|l| l.pack), Some(new.id));
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

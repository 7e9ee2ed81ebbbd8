//! Index objects: which pack holds which blob, at which offset.
//!
//! An index object (`index/<64 hex>`) is a sealed metadata box listing the
//! packs uploaded by one save and every blob in each. All index objects
//! together form the master index a client loads at open; a read then
//! fetches only the byte range of the one blob it needs.

use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

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
/// A blob may be stored in more than one pack (a save that uploaded it
/// again because its only copy was condemned, a repack, two devices that
/// saved the same bytes at once). The first location is the one reads use
/// and is kept in a pack no plan condemns whenever there is one
/// (docs/PRUNE.md §5, S1 and S5); the others wait in `more`.
#[derive(Debug, Default)]
pub struct MasterIndex {
    blobs: HashMap<BlobId, Location>,
    /// Further locations of blobs stored more than once (rare).
    more: HashMap<BlobId, Vec<Location>>,
    packs: HashMap<PackId, u64>,
    /// Packs a pending prune plan condemns: still readable, but what is
    /// only in them counts as absent for a save.
    condemned: HashSet<PackId>,
}

impl MasterIndex {
    pub fn add_pack(&mut self, pack: &IndexPack) {
        self.packs.insert(pack.id, pack.size);
        for b in &pack.blobs {
            let loc = Location {
                pack: pack.id,
                kind: b.kind,
                offset: b.offset,
                length: b.length,
                raw_len: b.raw_len,
            };
            match self.blobs.get_mut(&b.id) {
                None => {
                    self.blobs.insert(b.id, loc);
                }
                Some(first) if first.pack == loc.pack => {}
                Some(first) => {
                    let more = self.more.entry(b.id).or_default();
                    if more.iter().any(|l| l.pack == loc.pack) {
                        continue;
                    }
                    if self.condemned.contains(&first.pack) && !self.condemned.contains(&loc.pack) {
                        more.push(std::mem::replace(first, loc));
                    } else {
                        more.push(loc);
                    }
                }
            }
        }
    }

    /// Where reads fetch the blob: a pack no plan condemns if there is one.
    pub fn get(&self, id: &BlobId) -> Option<Location> {
        self.blobs.get(id).copied()
    }

    /// Every known location of the blob, the one reads use first.
    pub fn locations(&self, id: &BlobId) -> Vec<Location> {
        let mut all: Vec<Location> = self.blobs.get(id).copied().into_iter().collect();
        if let Some(more) = self.more.get(id) {
            all.extend(more.iter().copied());
        }
        all
    }

    /// Whether the blob is stored somewhere, condemned packs included
    /// (for readers).
    pub fn contains(&self, id: &BlobId) -> bool {
        self.blobs.contains_key(id)
    }

    /// Whether the blob is stored in a pack no known plan condemns: only
    /// then may a save skip uploading it (docs/PRUNE.md §5, S1).
    pub fn contains_live(&self, id: &BlobId) -> bool {
        self.blobs.get(id).is_some_and(|l| !self.condemned.contains(&l.pack))
    }

    pub fn packs(&self) -> &HashMap<PackId, u64> {
        &self.packs
    }

    pub fn blobs(&self) -> impl Iterator<Item = (&BlobId, &Location)> {
        self.blobs.iter()
    }

    /// Whether any known plan condemns a pack.
    pub fn has_condemned(&self) -> bool {
        !self.condemned.is_empty()
    }

    /// Whether a known plan condemns `pack`.
    pub fn is_condemned(&self, pack: &PackId) -> bool {
        self.condemned.contains(pack)
    }

    /// Takes in the packs pending plans condemn: the blobs whose read
    /// location is in one of them move to another copy when there is one.
    /// Returns whether anything was new.
    pub fn condemn(&mut self, packs: impl IntoIterator<Item = PackId>) -> bool {
        let before = self.condemned.len();
        self.condemned.extend(packs);
        if self.condemned.len() == before {
            return false;
        }
        self.prefer_live();
        true
    }

    /// Forgets packs that a finished prune deleted: their locations go,
    /// and a blob left with none is no longer known.
    pub fn remove_packs(&mut self, packs: &HashSet<PackId>) {
        if packs.iter().all(|p| !self.packs.contains_key(p)) {
            return;
        }
        for p in packs {
            self.packs.remove(p);
            self.condemned.remove(p);
        }
        self.more.retain(|_, v| {
            v.retain(|l| !packs.contains(&l.pack));
            !v.is_empty()
        });
        let gone: Vec<BlobId> = self
            .blobs
            .iter()
            .filter(|(_, l)| packs.contains(&l.pack))
            .map(|(id, _)| *id)
            .collect();
        for id in gone {
            match self.more.get_mut(&id).and_then(|v| v.pop()) {
                Some(next) => {
                    self.blobs.insert(id, next);
                }
                None => {
                    self.blobs.remove(&id);
                }
            }
            if self.more.get(&id).is_some_and(|v| v.is_empty()) {
                self.more.remove(&id);
            }
        }
        self.prefer_live();
    }

    /// Puts, for every blob stored more than once, a copy in a pack no
    /// plan condemns first.
    fn prefer_live(&mut self) {
        for (id, more) in self.more.iter_mut() {
            let Some(first) = self.blobs.get_mut(id) else { continue };
            if !self.condemned.contains(&first.pack) {
                continue;
            }
            if let Some(i) = more.iter().position(|l| !self.condemned.contains(&l.pack)) {
                std::mem::swap(first, &mut more[i]);
            }
        }
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

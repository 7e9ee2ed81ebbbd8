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
/// A blob may be stored in more than one pack (two saves racing, a save
/// that uploaded it again because its only copy was condemned, a repack, a
/// repair that replaced a lost pack). All its places are kept; reads use
/// the best one, ranked by: a pack no prune plan condemns (docs/PRUNE.md
/// §5, S1 and S5), then a pack written to replace a lost one, then one
/// this process wrote itself, then the newest index object by the store's
/// time (so a repair's copy wins over a lost pack, docs/VAULT-FORMAT.md §7).
#[derive(Debug, Default)]
pub struct MasterIndex {
    /// The place reads use.
    blobs: HashMap<BlobId, Location>,
    /// Further places of blobs stored more than once (rare).
    more: HashMap<BlobId, Vec<Location>>,
    packs: HashMap<PackId, u64>,
    /// Packs a pending prune plan condemns: still readable, but what is
    /// only in them counts as absent for a save.
    condemned: HashSet<PackId>,
    /// When the index object that listed each pack was written, by the
    /// store's clock, where it was read from a listing that says.
    listed_at: HashMap<PackId, std::time::SystemTime>,
    /// Packs written to replace lost ones: read from first.
    preferred: HashSet<PackId>,
}

/// How good a place is to read a blob from; larger is better.
type Rank = (bool, bool, bool, Option<std::time::SystemTime>);

impl MasterIndex {
    /// Adds a pack this process wrote or learned without a time.
    pub fn add_pack(&mut self, pack: &IndexPack) {
        self.packs.insert(pack.id, pack.size);
        for b in &pack.blobs {
            self.place(b.id, location(pack, b));
        }
    }

    /// Adds a pack from an index object the store wrote at `listed_at`: its
    /// blobs are read from here rather than from a pack listed by an older
    /// index object. Blobs placed without a time (by this process's own
    /// saves) stay where they are.
    pub fn add_pack_listed(&mut self, pack: &IndexPack, listed_at: Option<std::time::SystemTime>) {
        if let Some(at) = listed_at {
            self.listed_at.insert(pack.id, at);
        }
        self.add_pack(pack);
    }

    /// Adds a pack whose blobs are read from it from now on, wherever else
    /// they are known to be: a pack just written to replace a lost one.
    pub fn add_pack_preferred(&mut self, pack: &IndexPack) {
        self.preferred.insert(pack.id);
        self.add_pack(pack);
        for b in &pack.blobs {
            self.rechoose_one(b.id);
        }
    }

    fn rank(&self, pack: &PackId) -> Rank {
        let listed = self.listed_at.get(pack).copied();
        (
            !self.condemned.contains(pack),
            self.preferred.contains(pack),
            listed.is_none(),
            listed,
        )
    }

    /// Records one more place of a blob, and reads from it if it is the
    /// best.
    fn place(&mut self, id: BlobId, loc: Location) {
        let Some(first) = self.blobs.get(&id).copied() else {
            self.blobs.insert(id, loc);
            return;
        };
        if first.pack == loc.pack || self.more.get(&id).is_some_and(|m| m.iter().any(|l| l.pack == loc.pack)) {
            return;
        }
        let better = self.rank(&loc.pack) > self.rank(&first.pack);
        let more = self.more.entry(id).or_default();
        if better {
            more.push(first);
            self.blobs.insert(id, loc);
        } else {
            more.push(loc);
        }
    }

    /// Where reads fetch the blob.
    pub fn get(&self, id: &BlobId) -> Option<Location> {
        self.blobs.get(id).copied()
    }

    /// Every known place of the blob, the one reads use first.
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

    /// Takes in the packs pending plans condemn: the blobs read from one of
    /// them move to another copy when there is one. Returns whether
    /// anything was new.
    pub fn condemn(&mut self, packs: impl IntoIterator<Item = PackId>) -> bool {
        let before = self.condemned.len();
        self.condemned.extend(packs);
        if self.condemned.len() == before {
            return false;
        }
        self.rechoose();
        true
    }

    /// Forgets packs that a finished prune deleted: their places go, and a
    /// blob left with none is no longer known.
    pub fn remove_packs(&mut self, packs: &HashSet<PackId>) {
        if packs.iter().all(|p| !self.packs.contains_key(p)) {
            return;
        }
        for p in packs {
            self.packs.remove(p);
            self.condemned.remove(p);
            self.listed_at.remove(p);
            self.preferred.remove(p);
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
        self.rechoose();
    }

    /// Puts, for every blob stored more than once, its best place first.
    fn rechoose(&mut self) {
        let ids: Vec<BlobId> = self.more.keys().copied().collect();
        for id in ids {
            self.rechoose_one(id);
        }
    }

    /// Puts the best place of one blob first.
    fn rechoose_one(&mut self, id: BlobId) {
        let Some(first) = self.blobs.get(&id).copied() else {
            return;
        };
        let Some(more) = self.more.get(&id) else { return };
        let best = more
            .iter()
            .enumerate()
            .max_by_key(|(_, l)| self.rank(&l.pack))
            .filter(|(_, l)| self.rank(&l.pack) > self.rank(&first.pack))
            .map(|(i, _)| i);
        if let Some(i) = best {
            if let Some(more) = self.more.get_mut(&id) {
                let next = std::mem::replace(&mut more[i], first);
                self.blobs.insert(id, next);
            }
        }
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

    /// A pack holding one blob.
    fn pack_of(id: PackId, blob: BlobId) -> IndexPack {
        IndexPack {
            id,
            size: 100,
            blobs: vec![PackEntry {
                id: blob,
                kind: BlobKind::Data,
                offset: 0,
                length: 10,
                raw_len: 5,
            }],
        }
    }

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
        let pack_with = |id: PackId| pack_of(id, blob);
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

    /// A blob in a condemned pack and in a live one is read from the live
    /// one and counts as stored; when the live one is deleted by a
    /// finished prune, the other place is used again; a blob only in a
    /// condemned pack is present for readers but absent for saves.
    #[test]
    fn condemned_places_come_last_and_deleted_ones_go() {
        let blob = Id::random();
        let pack_with = |id: PackId| pack_of(id, blob);
        let (a, b) = (pack_with(Id::random()), pack_with(Id::random()));
        let mut m = MasterIndex::default();
        m.add_pack(&a);
        m.add_pack(&b);
        assert_eq!(m.get(&blob).map(|l| l.pack), Some(a.id));
        assert!(m.condemn([a.id]));
        assert!(!m.condemn([a.id]), "nothing new");
        assert_eq!(m.get(&blob).map(|l| l.pack), Some(b.id));
        assert!(m.contains_live(&blob));
        m.remove_packs(&HashSet::from([b.id]));
        assert_eq!(m.get(&blob).map(|l| l.pack), Some(a.id));
        assert!(m.contains(&blob) && !m.contains_live(&blob));
        assert_eq!(m.locations(&blob).len(), 1);
        m.remove_packs(&HashSet::from([a.id]));
        assert!(!m.contains(&blob) && m.packs().is_empty());
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

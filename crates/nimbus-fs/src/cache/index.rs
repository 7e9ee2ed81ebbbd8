//! The bookkeeping of a cache folder whose files are named by blob id (the
//! blob cache `cache/` and the decoded-block cache `decoded/`): each
//! entry's size on disk, least recently used first, against a size limit.
//! It does no file I/O beyond reading the folder when it is opened; its
//! owner writes and removes the files.

use lru::LruCache;
use nimbus_vault::BlobId;
use std::path::Path;

pub(crate) struct CacheIndex {
    /// Blob id → bytes on disk, most recently used first.
    lru: LruCache<BlobId, u64>,
    bytes: u64,
    limit: u64,
}

impl CacheIndex {
    /// The entries found in `dir`, the least recently modified first in
    /// line for eviction. Files not named by a blob id (leftovers of an
    /// interrupted write) are removed; folders are left alone.
    pub(crate) fn scan(dir: &Path, limit: u64) -> CacheIndex {
        let mut found = Vec::new();
        if let Ok(rd) = std::fs::read_dir(dir) {
            for e in rd.flatten() {
                let Ok(m) = e.metadata() else { continue };
                if !m.is_file() {
                    continue;
                }
                let name = e.file_name();
                match name.to_str().and_then(|n| BlobId::from_hex(n).ok()) {
                    Some(id) => found.push((m.modified().ok(), id, m.len())),
                    None => {
                        let _ = std::fs::remove_file(e.path());
                    }
                }
            }
        }
        found.sort_by_key(|f| f.0);
        let mut index = CacheIndex {
            lru: LruCache::unbounded(),
            bytes: 0,
            limit,
        };
        for (_, id, len) in found {
            index.insert(id, len);
        }
        index
    }

    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    pub(crate) fn limit(&self) -> u64 {
        self.limit
    }

    /// Whether the blob is cached (without counting it as a use).
    pub(crate) fn contains(&self, id: &BlobId) -> bool {
        self.lru.contains(id)
    }

    /// Whether the blob is cached, counting it as used now.
    pub(crate) fn touch(&mut self, id: &BlobId) -> bool {
        self.lru.get(id).is_some()
    }

    pub(crate) fn insert(&mut self, id: BlobId, len: u64) {
        if let Some(old) = self.lru.put(id, len) {
            self.bytes -= old;
        }
        self.bytes += len;
    }

    pub(crate) fn remove(&mut self, id: &BlobId) {
        if let Some(len) = self.lru.pop(id) {
            self.bytes -= len;
        }
    }

    /// Drops least recently used entries until the cache fits its limit,
    /// never one that `keep` says to keep; returns the dropped ones, whose
    /// files the caller removes.
    pub(crate) fn evict(&mut self, keep: impl Fn(&BlobId) -> bool) -> Vec<BlobId> {
        let mut dropped = Vec::new();
        let mut kept = Vec::new();
        while self.bytes > self.limit {
            let Some((old, len)) = self.lru.pop_lru() else { break };
            if keep(&old) {
                kept.push((old, len));
                continue;
            }
            self.bytes -= len;
            dropped.push(old);
        }
        // Back in line where they were: the least recently used first.
        for (id, len) in kept.into_iter().rev() {
            self.lru.push(id, len);
            self.lru.demote(&id);
        }
        dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> BlobId {
        nimbus_vault::Id([n; 32])
    }

    #[test]
    fn evicts_least_recently_used_but_never_what_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mut ix = CacheIndex::scan(dir.path(), 30);
        for n in 1..=4 {
            ix.insert(id(n), 10);
        }
        assert!(ix.touch(&id(1)), "1 is now the most recently used");
        // 40 bytes over a 30-byte limit: 2 is the oldest but kept, so 3 goes.
        assert_eq!(ix.evict(|i| *i == id(2)), vec![id(3)]);
        assert_eq!(ix.bytes(), 30);
        ix.insert(id(5), 10);
        assert_eq!(
            ix.evict(|i| *i == id(2)),
            vec![id(4)],
            "2 is still kept, and still oldest"
        );
        assert!(ix.contains(&id(1)) && ix.contains(&id(2)) && ix.contains(&id(5)));
        ix.remove(&id(5));
        ix.insert(id(1), 15);
        assert_eq!(ix.bytes(), 25, "a re-inserted entry counts once");
    }

    #[test]
    fn scan_finds_entries_and_removes_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(id(7).to_hex()), [0u8; 5]).unwrap();
        std::fs::write(dir.path().join(".half-written.tmp"), [0u8; 3]).unwrap();
        std::fs::create_dir(dir.path().join("tmp")).unwrap();
        let ix = CacheIndex::scan(dir.path(), 100);
        assert!(ix.contains(&id(7)));
        assert_eq!(ix.bytes(), 5);
        assert!(!dir.path().join(".half-written.tmp").exists());
        assert!(dir.path().join("tmp").is_dir());
    }
}

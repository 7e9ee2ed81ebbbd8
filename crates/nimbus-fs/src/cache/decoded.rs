//! The decoded-block cache: blobs that random reads touched, kept decoded
//! on disk in 4 KiB slots sealed exactly like staging (AES-256-GCM, the
//! slot bound to its blob and block number), under a key of its own.
//!
//! Why: a blob is sealed as one unit of about 1 MiB, so reading 4 KiB of it
//! means fetching, decrypting, decompressing and checking all of it. The
//! memory cache keeps a few dozen decoded blobs, which serves sequential
//! reads; a program reading a large file at random (a database, a VM image,
//! fio) would otherwise pay a whole blob for almost every 4 KiB. With this
//! cache, the first random read of a blob pays once and every later one
//! costs one 4 KiB decryption.
//!
//! Only reads that are not part of a sequential run fill it, so streaming
//! a file does not write it to disk a second time. Blobs are immutable
//! (their id is a keyed hash of their content), so an entry never goes
//! stale; entries are evicted least recently used first over a size limit.
//! A damaged or missing entry is dropped and the blob decoded again.
//!
//! Lock order: the index lock is never held during file I/O or crypto.

use nimbus_vault::BlobId;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use zeroize::Zeroizing;

use crate::cache::index::CacheIndex;
use crate::cache::sealed_file::{SealedFile, SlotKey, BLOCK, SLOT};
use crate::error::{FsError, Result};

/// Blobs being written into the cache at once, at most; more random
/// misses than this while they are written are simply not cached, so a
/// burst cannot queue unbounded copies of decoded blobs in memory.
const MAX_PENDING: usize = 4;

struct Index {
    entries: CacheIndex,
    /// Blobs being written into the cache now.
    pending: HashSet<BlobId>,
}

pub struct DecodedCache {
    dir: PathBuf,
    tmp: PathBuf,
    key: SlotKey,
    index: Mutex<Index>,
}

/// The 16-byte name of a blob's entry (its id is a keyed hash, so its first
/// 128 bits name it uniquely).
fn slot_id(id: &BlobId) -> [u8; 16] {
    let mut s = [0u8; 16];
    s.copy_from_slice(&id.as_bytes()[..16]);
    s
}

impl DecodedCache {
    /// Opens the cache in `dir` (created if needed), keeping at most
    /// `limit` bytes. Entries left from earlier mounts are kept, oldest
    /// first in line for eviction; unfinished ones are removed.
    pub fn open(dir: &Path, key: &Zeroizing<[u8; 32]>, limit: u64) -> Result<DecodedCache> {
        let tmp = dir.join("tmp");
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp)
            .map_err(|e| FsError::io(format!("cannot create the cache folder {}", tmp.display()), e))?;
        let index = Index {
            entries: CacheIndex::scan(dir, limit),
            pending: HashSet::new(),
        };
        Ok(DecodedCache {
            dir: dir.to_path_buf(),
            tmp,
            key: SlotKey::new(key),
            index: Mutex::new(index),
        })
    }

    fn path(&self, id: &BlobId) -> PathBuf {
        self.dir.join(id.to_hex())
    }

    /// Bytes in the cache, and blobs being written into it.
    pub fn usage(&self) -> (u64, usize) {
        self.index
            .lock()
            .map(|i| (i.entries.bytes(), i.pending.len()))
            .unwrap_or((0, 0))
    }

    /// Whether the blob is in the cache.
    pub fn contains(&self, id: &BlobId) -> bool {
        self.index.lock().map(|i| i.entries.contains(id)).unwrap_or(false)
    }

    /// Fills `out` with the blob's decoded bytes from offset `from`, if the
    /// blob is cached and every block needed is intact; `false` otherwise
    /// (a damaged entry is dropped).
    pub fn read(&self, id: &BlobId, from: usize, out: &mut [u8]) -> bool {
        if out.is_empty() {
            return true;
        }
        let hit = self.index.lock().map(|mut i| i.entries.touch(id)).unwrap_or(false);
        if !hit {
            return false;
        }
        let b0 = from / BLOCK;
        let b1 = (from + out.len()).div_ceil(BLOCK);
        let mut buf = vec![0u8; (b1 - b0) * BLOCK];
        let ok = match SealedFile::open_existing(&self.dir, &id.to_hex(), slot_id(id)) {
            Ok(Some(s)) => match s.read_blocks(&self.key, b0 as u64, &mut buf) {
                Ok(present) => present.iter().all(|&p| p),
                Err(e) => {
                    tracing::warn!("decoded cache entry {id}: {e}; decoding the blob again");
                    false
                }
            },
            _ => false,
        };
        if !ok {
            self.forget(id);
            return false;
        }
        let skip = from - b0 * BLOCK;
        out.copy_from_slice(&buf[skip..skip + out.len()]);
        true
    }

    /// Claims the right to write `id` into the cache: false when it is
    /// there already, being written, or too many writes are under way.
    pub fn claim(&self, id: &BlobId) -> bool {
        let Ok(mut i) = self.index.lock() else { return false };
        if i.entries.contains(id) || i.pending.contains(id) || i.pending.len() >= MAX_PENDING {
            return false;
        }
        i.pending.insert(*id);
        true
    }

    /// Writes a claimed blob's decoded bytes into the cache, then evicts
    /// the least recently used entries over the limit. Failures (a full
    /// disk) only mean the blob is decoded again next time.
    pub fn insert(&self, id: &BlobId, plain: &[u8]) {
        let written = self.write_entry(id, plain);
        let evict: Vec<BlobId> = {
            let Ok(mut i) = self.index.lock() else { return };
            i.pending.remove(id);
            let Some(len) = written else { return };
            i.entries.insert(*id, len);
            i.entries.evict(|_| false)
        };
        for old in evict {
            let _ = std::fs::remove_file(self.path(&old));
        }
    }

    /// The entry is written under `tmp/` and renamed into place whole, so
    /// a crash never leaves a half-written entry that looks complete.
    fn write_entry(&self, id: &BlobId, plain: &[u8]) -> Option<u64> {
        let name = id.to_hex();
        let s = SealedFile::open_named(&self.tmp, &name, slot_id(id)).ok()?;
        let blocks = plain.len().div_ceil(BLOCK);
        // In pieces of 64 KiB, so a write holds little memory beyond the
        // blob itself; only the last piece needs padding to whole blocks.
        const PIECE: usize = 16 * BLOCK;
        let res = plain
            .chunks(PIECE)
            .enumerate()
            .try_for_each(|(i, piece)| {
                let first = (i * PIECE / BLOCK) as u64;
                if piece.len() % BLOCK == 0 {
                    return s.write_blocks(&self.key, first, piece);
                }
                let mut padded = Zeroizing::new(vec![0u8; piece.len().div_ceil(BLOCK) * BLOCK]);
                padded[..piece.len()].copy_from_slice(piece);
                s.write_blocks(&self.key, first, &padded)
            })
            .and_then(|_| {
                std::fs::rename(s.path(), self.path(id))
                    .map_err(|e| FsError::io("cannot move a decoded cache entry into place", e))
            });
        if let Err(e) = res {
            tracing::debug!("not caching decoded blob {id}: {e}");
            let _ = std::fs::remove_file(s.path());
            return None;
        }
        Some((blocks * SLOT) as u64)
    }

    fn forget(&self, id: &BlobId) {
        if let Ok(mut i) = self.index.lock() {
            i.entries.remove(id);
        }
        let _ = std::fs::remove_file(self.path(id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> BlobId {
        nimbus_vault::Id([n; 32])
    }

    #[test]
    fn entries_read_back_by_range_and_are_evicted_over_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let key = Zeroizing::new([3u8; 32]);
        let limit = 3 * SLOT as u64 * 3; // three 3-block entries
        let c = DecodedCache::open(dir.path(), &key, limit).unwrap();
        let plain: Vec<u8> = (0..3 * BLOCK - 100).map(|i| (i % 251) as u8).collect();
        for n in 1..=3 {
            assert!(c.claim(&id(n)));
            c.insert(&id(n), &plain);
        }
        assert!(!c.claim(&id(1)), "a cached blob is not written twice");
        let mut out = vec![0u8; 5000];
        assert!(c.read(&id(2), 4000, &mut out));
        assert_eq!(out, plain[4000..9000]);
        // The tail of the last, partial block.
        let mut tail = vec![0u8; 50];
        assert!(c.read(&id(2), plain.len() - 50, &mut tail));
        assert_eq!(tail, plain[plain.len() - 50..]);
        // id(1) is now the least recently used: a fourth entry evicts it.
        assert!(c.read(&id(3), 0, &mut out));
        assert!(c.claim(&id(4)));
        c.insert(&id(4), &plain);
        assert!(!c.read(&id(1), 0, &mut out));
        assert!(c.read(&id(2), 0, &mut out) && c.read(&id(4), 0, &mut out));
        assert_eq!(c.usage(), (limit, 0));
        // Nothing readable on disk.
        for e in std::fs::read_dir(dir.path()).unwrap().flatten() {
            if e.path().is_file() {
                let raw = std::fs::read(e.path()).unwrap();
                assert!(!raw.windows(64).any(|w| plain.windows(64).take(200).any(|p| p == w)));
            }
        }
        // A new mount finds the entries again.
        drop(c);
        let c = DecodedCache::open(dir.path(), &key, limit).unwrap();
        assert!(c.read(&id(4), 100, &mut out));
        assert_eq!(out, plain[100..5100]);
    }

    #[test]
    fn damaged_or_swapped_entries_are_dropped_not_believed() {
        let dir = tempfile::tempdir().unwrap();
        let key = Zeroizing::new([4u8; 32]);
        let c = DecodedCache::open(dir.path(), &key, 1 << 30).unwrap();
        let plain = vec![7u8; 2 * BLOCK];
        for n in [1, 2] {
            assert!(c.claim(&id(n)));
            c.insert(&id(n), &plain);
        }
        // Entry 2's file put in place of entry 1's: bound to its blob, so refused.
        std::fs::copy(c.path(&id(2)), c.path(&id(1))).unwrap();
        let mut out = vec![0u8; 100];
        assert!(!c.read(&id(1), 0, &mut out));
        assert!(!c.path(&id(1)).exists(), "the damaged entry is removed");
        // A flipped byte.
        let mut raw = std::fs::read(c.path(&id(2))).unwrap();
        raw[SLOT + 40] ^= 1;
        std::fs::write(c.path(&id(2)), raw).unwrap();
        assert!(c.read(&id(2), 0, &mut out), "block 0 is intact");
        assert!(!c.read(&id(2), BLOCK, &mut out), "block 1 is not");
        assert!(c.claim(&id(2)), "and the blob can be cached again");
    }
}

//! Reading file content: blobs from memory, from the local cache, or from
//! the store.
//!
//! Three levels. A small in-memory LRU holds decoded blobs for the reads
//! that follow each other within one blob. The disk cache (`cache/`) holds
//! blobs exactly as fetched — still encrypted under the vault's blob key —
//! with a size limit, least-recently-used eviction, and pinned blobs never
//! evicted. The store is asked only for the byte range of the one blob.
//! Concurrent readers of the same blob share one fetch.
//!
//! A vault in a local folder is not cached on disk: the folder already is a
//! local copy, and caching it would write everything twice.
//!
//! Beside them, for reads of a part of a blob, the decoded-block cache
//! (`decoded.rs`) serves blobs that random reads touched before, 4 KiB at a
//! time, whatever the store.
//!
//! Lock order: `inflight`, then `mem`, then `disk`; none is held while
//! fetching or decoding.

use lru::LruCache;
use nimbus_vault::{BlobId, Vault};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crate::cache::decoded::DecodedCache;
use crate::cache::index::CacheIndex;
use crate::error::{lock_err, ErrorKind, Failure, FsError, Result};

pub type Plain = Arc<Vec<u8>>;

/// How long a read waits for the store before it fails with a clear error:
/// as long as the HTTP client waits for an answer that stopped coming.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(30);

struct InFlight {
    result: Mutex<Option<Result<Plain, Failure>>>,
    done: Condvar,
}

struct Mem {
    lru: LruCache<BlobId, Plain>,
    bytes: usize,
    limit: usize,
}

pub struct BlobStore {
    vault: Vault,
    rt: tokio::runtime::Handle,
    mem: Mutex<Mem>,
    disk: Option<(PathBuf, Mutex<CacheIndex>)>,
    decoded: Option<Arc<DecodedCache>>,
    pinned: Mutex<HashSet<BlobId>>,
    inflight: Mutex<HashMap<BlobId, Arc<InFlight>>>,
}

impl BlobStore {
    /// `cache_dir` None disables the disk cache, `decoded` None the
    /// decoded-block cache.
    pub fn new(
        vault: Vault,
        rt: tokio::runtime::Handle,
        mem_limit: usize,
        cache_dir: Option<PathBuf>,
        disk_limit: u64,
        decoded: Option<DecodedCache>,
    ) -> Result<BlobStore> {
        let disk = match cache_dir {
            None => None,
            Some(dir) => {
                std::fs::create_dir_all(&dir)
                    .map_err(|e| FsError::io(format!("cannot create the cache folder {}", dir.display()), e))?;
                let index = CacheIndex::scan(&dir, disk_limit);
                Some((dir, Mutex::new(index)))
            }
        };
        Ok(BlobStore {
            vault,
            rt,
            mem: Mutex::new(Mem {
                lru: LruCache::unbounded(),
                bytes: 0,
                limit: mem_limit,
            }),
            disk,
            decoded: decoded.map(Arc::new),
            pinned: Mutex::new(HashSet::new()),
            inflight: Mutex::new(HashMap::new()),
        })
    }

    /// Replaces the set of blobs eviction must keep.
    pub fn set_pinned(&self, ids: HashSet<BlobId>) {
        if let Ok(mut p) = self.pinned.lock() {
            *p = ids;
        }
    }

    /// Bytes in the disk cache, and its limit.
    pub fn disk_usage(&self) -> (u64, u64) {
        match &self.disk {
            Some((_, d)) => d.lock().map(|d| (d.bytes(), d.limit())).unwrap_or((0, 0)),
            None => (0, 0),
        }
    }

    fn mem_get(&self, id: &BlobId) -> Option<Plain> {
        let mut m = self.mem.lock().ok()?;
        m.lru.get(id).cloned()
    }

    fn mem_put(&self, id: BlobId, p: Plain) {
        if let Ok(mut m) = self.mem.lock() {
            if m.lru.put(id, p.clone()).is_none() {
                m.bytes += p.len();
            }
            while m.bytes > m.limit {
                match m.lru.pop_lru() {
                    Some((_, old)) => m.bytes -= old.len(),
                    None => break,
                }
            }
        }
    }

    /// Whether a blob can be read without the store.
    pub fn is_local(&self, id: &BlobId) -> bool {
        if self.disk.is_none() {
            return true;
        }
        self.mem_get(id).is_some()
            || self
                .disk
                .as_ref()
                .and_then(|(_, d)| d.lock().ok().map(|d| d.contains(id)))
                .unwrap_or(false)
            || self.decoded.as_ref().is_some_and(|d| d.contains(id))
    }

    /// Bytes `from..from + out.len()` of a blob's plaintext, into `out`.
    /// `random` says the read is not part of a sequential run: a blob that
    /// has to be decoded for such a read is also put into the decoded-block
    /// cache (in the background), so the next random read of it is cheap.
    /// Blocking, like [`BlobStore::get`].
    pub fn read_range(self: &Arc<Self>, id: &BlobId, from: usize, out: &mut [u8], random: bool) -> Result<()> {
        if let Some(p) = self.mem_get(id) {
            return copy_range(id, &p, from, out);
        }
        if let Some(d) = &self.decoded {
            if d.read(id, from, out) {
                return Ok(());
            }
        }
        let p = self.get(id)?;
        if let Some(d) = self.decoded.as_ref().filter(|_| random) {
            if d.claim(id) {
                let (d, p, id) = (Arc::clone(d), p.clone(), *id);
                self.rt.spawn_blocking(move || d.insert(&id, &p));
            }
        }
        copy_range(id, &p, from, out)
    }

    /// Bytes in the decoded-block cache, and blobs being written into it.
    pub fn decoded_usage(&self) -> (u64, usize) {
        self.decoded.as_ref().map(|d| d.usage()).unwrap_or((0, 0))
    }

    /// The plaintext of a blob. Blocking: waits for the store if needed.
    pub fn get(self: &Arc<Self>, id: &BlobId) -> Result<Plain> {
        if let Some(p) = self.mem_get(id) {
            return Ok(p);
        }
        let (flight, leader) = {
            let mut inf = self.inflight.lock().map_err(|_| lock_err())?;
            match inf.get(id) {
                Some(f) => (f.clone(), false),
                None => {
                    let f = Arc::new(InFlight {
                        result: Mutex::new(None),
                        done: Condvar::new(),
                    });
                    inf.insert(*id, f.clone());
                    (f, true)
                }
            }
        };
        if leader {
            let this = Arc::clone(self);
            let id2 = *id;
            let f2 = flight.clone();
            // The fetch runs on the runtime so a reader that gives up (time
            // out) does not cancel it for the others.
            self.rt.spawn(async move {
                let r = this.load(&id2).await;
                if let Ok(p) = &r {
                    this.mem_put(id2, p.clone());
                }
                if let Ok(mut inf) = this.inflight.lock() {
                    inf.remove(&id2);
                }
                if let Ok(mut slot) = f2.result.lock() {
                    *slot = Some(r.map_err(|e| Failure::of(&e)));
                }
                f2.done.notify_all();
            });
        }
        let slot = flight.result.lock().map_err(|_| lock_err())?;
        let (slot, timeout) = flight
            .done
            .wait_timeout_while(slot, FETCH_TIMEOUT, |s| s.is_none())
            .map_err(|_| lock_err())?;
        if timeout.timed_out() {
            return Err(FsError::new(
                ErrorKind::Unavailable,
                format!(
                    "the store did not answer within {} s; this part of the file is not on this device yet. \
                     Check the network; pin the file (`nimbus pin`) to keep it available offline",
                    FETCH_TIMEOUT.as_secs()
                ),
            ));
        }
        match slot.as_ref() {
            Some(Ok(p)) => Ok(p.clone()),
            Some(Err(f)) => Err(f.to_error()),
            None => Err(lock_err()),
        }
    }

    /// Starts fetching blobs in the background (read-ahead); returns at once.
    pub fn prefetch(self: &Arc<Self>, ids: &[BlobId]) {
        for id in ids {
            if self.mem_get(id).is_some() {
                continue;
            }
            let leader = {
                let Ok(mut inf) = self.inflight.lock() else { return };
                if inf.contains_key(id) {
                    false
                } else {
                    inf.insert(
                        *id,
                        Arc::new(InFlight {
                            result: Mutex::new(None),
                            done: Condvar::new(),
                        }),
                    );
                    true
                }
            };
            if !leader {
                continue;
            }
            let this = Arc::clone(self);
            let id = *id;
            self.rt.spawn(async move {
                let r = this.load(&id).await;
                if let Ok(p) = &r {
                    this.mem_put(id, p.clone());
                }
                let f = this.inflight.lock().ok().and_then(|mut inf| inf.remove(&id));
                if let Some(f) = f {
                    if let Ok(mut slot) = f.result.lock() {
                        *slot = Some(r.map_err(|e| Failure::of(&e)));
                    }
                    f.done.notify_all();
                }
            });
        }
    }

    /// Disk cache, else store (and into the disk cache); then decode.
    async fn load(self: &Arc<Self>, id: &BlobId) -> Result<Plain> {
        // A blob the index does not know may be in an index object a
        // lagging listing left out when the index was loaded.
        let loc = self.vault.locate_or_load(id).await?;
        if let Some((dir, disk)) = &self.disk {
            let path = dir.join(id.to_hex());
            let cached = disk.lock().map(|mut d| d.touch(id)).unwrap_or(false);
            if cached {
                if let Ok(sealed) = tokio::fs::read(&path).await {
                    let this = Arc::clone(self);
                    let id2 = *id;
                    let r = tokio::task::spawn_blocking(move || this.vault.decode_sealed(&id2, &loc, &sealed))
                        .await
                        .map_err(|e| FsError::new(ErrorKind::Io, format!("decoding was interrupted: {e}")))?;
                    match r {
                        Ok(p) => {
                            return Ok(Arc::new(p));
                        }
                        Err(e) => {
                            // A damaged cache entry is dropped and fetched again.
                            tracing::warn!("cached blob {id} is damaged ({e}); fetching it again");
                            self.forget_disk(id);
                        }
                    }
                } else {
                    self.forget_disk(id);
                }
            }
        }
        let (loc, sealed) = self.vault.fetch_sealed(id).await?;
        let this = Arc::clone(self);
        let id2 = *id;
        let plain = tokio::task::spawn_blocking(move || {
            let p = this.vault.decode_sealed(&id2, &loc, &sealed)?;
            this.disk_put(&id2, &sealed);
            Ok::<_, FsError>(p)
        })
        .await
        .map_err(|e| FsError::new(ErrorKind::Io, format!("decoding was interrupted: {e}")))??;
        Ok(Arc::new(plain))
    }

    fn forget_disk(&self, id: &BlobId) {
        if let Some((dir, disk)) = &self.disk {
            if let Ok(mut d) = disk.lock() {
                d.remove(id);
            }
            let _ = std::fs::remove_file(dir.join(id.to_hex()));
        }
    }

    /// A hook for a save: each data blob it writes goes into the disk cache
    /// too, so what was just written on this device stays readable here
    /// when the store cannot be reached. `None` without a disk cache (a
    /// store on this device).
    pub fn write_through(self: &Arc<Self>) -> Option<nimbus_vault::saver::DataHook> {
        self.disk.as_ref()?;
        let this = Arc::clone(self);
        Some(Arc::new(move |id: &BlobId, sealed: &[u8]| this.disk_put(id, sealed)))
    }

    /// Writes a fetched blob (still sealed) into the disk cache and evicts
    /// the least recently used unpinned blobs over the limit.
    fn disk_put(&self, id: &BlobId, sealed: &[u8]) {
        let Some((dir, disk)) = &self.disk else { return };
        let path = dir.join(id.to_hex());
        let tmp = dir.join(format!(".{}.tmp", id.to_hex()));
        if std::fs::write(&tmp, sealed)
            .and_then(|_| std::fs::rename(&tmp, &path))
            .is_err()
        {
            let _ = std::fs::remove_file(&tmp);
            return; // a full cache disk only costs a later fetch
        }
        let evict: Vec<BlobId> = {
            let Ok(mut d) = disk.lock() else { return };
            d.insert(*id, sealed.len() as u64);
            let pinned = self.pinned.lock().map(|p| p.clone()).unwrap_or_default();
            d.evict(|old| pinned.contains(old) || old == id)
        };
        for old in evict {
            let _ = std::fs::remove_file(dir.join(old.to_hex()));
        }
    }
}

fn copy_range(id: &BlobId, plain: &[u8], from: usize, out: &mut [u8]) -> Result<()> {
    let src = from
        .checked_add(out.len())
        .and_then(|end| plain.get(from..end))
        .ok_or_else(|| {
            FsError::new(
                ErrorKind::Corrupt,
                format!("blob {id} is shorter than the file's content list says"),
            )
        })?;
    out.copy_from_slice(src);
    Ok(())
}

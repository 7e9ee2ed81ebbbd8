//! Saving blobs: deduplication, packing and upload.
//!
//! CPU work (hashing, compression, encryption) happens on the calling
//! thread, so callers save many files at once from blocking threads and use
//! every core. Full packs go through a bounded channel to one upload task,
//! which keeps a few uploads in flight; the bound stops a fast disk from
//! filling memory when the store is slow. [`Saver::finish`] flushes the last
//! packs and writes one index object for them all: only then are the blobs
//! part of the vault, and only then may a commit reference them.
//!
//! A blob counts as stored (for deduplication by this or any later save of
//! the same [`Vault`]) only once an index object naming it is in the store.
//! Until then it is `pending` in this save; an index upload that fails puts
//! its packs back in the queue for the next one, and if the last one fails
//! too, the save fails and the next save uploads those blobs again (the
//! orphaned packs are garbage for prune). A long-lived drive keeps one
//! `Vault` for days, so a pack that entered its index before any index
//! object listed it would be deduplicated against forever.
//!
//! Lock order: `packers` before `state`; neither is held across an await.

use bytes::Bytes;
use nimbus_backend::{BackendError, BackendErrorKind};
use std::collections::HashSet;
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::chunker;
use crate::codec::{self, BlobKind};
use crate::error::{Result, VaultError};
use crate::id::{BlobId, IndexId};
use crate::index::IndexPack;
use crate::pack::{self, FinishedPack, PackBuilder};
use crate::vault::Vault;

/// Files up to this size are read whole and chunked in memory.
const SMALL_FILE: u64 = 8 << 20;
/// Blob entries per index object (about 40 bytes each before compression).
const MAX_INDEX_ENTRIES: usize = 1_000_000;
/// The largest blob a pack entry can describe (its lengths are u32).
const MAX_BLOB: usize = u32::MAX as usize - 1024;
/// Packs uploaded at once, and full packs waiting for upload before savers
/// block: enough to keep a network busy. A store on this machine (a local
/// folder) gains nothing from more than one, and each pack held costs its
/// size in memory.
const UPLOADS_IN_FLIGHT: usize = 4;
const QUEUE: usize = 2;
const LOCAL_UPLOADS_IN_FLIGHT: usize = 1;
const LOCAL_QUEUE: usize = 1;

/// What a save added to the vault.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SaveStats {
    /// Blobs stored by this save.
    pub new_blobs: u64,
    /// Of those, file content blobs (the rest are trees).
    pub new_data_blobs: u64,
    /// Blobs that were already in the vault (or seen earlier in this save).
    pub duplicate_blobs: u64,
    /// Plaintext bytes of the new blobs.
    pub new_raw_bytes: u64,
    /// Bytes of the packs uploaded.
    pub uploaded_bytes: u64,
    pub packs: u64,
    /// The index objects this save wrote, in the order written: a format
    /// version 3 commit names them ([`crate::NewCommit::indexes`]), so a
    /// device that reads the commit fetches them without listing `index/`.
    /// Not part of any report.
    #[serde(skip)]
    pub indexes: Vec<IndexId>,
}

struct State {
    /// Blobs accepted by this save but not yet listed by a stored index
    /// object (so not yet in the master index).
    pending: HashSet<BlobId>,
    /// Packs uploaded and not yet listed by a stored index object.
    uploaded: Vec<IndexPack>,
    /// Index objects stored by this save.
    indexes: Vec<IndexId>,
    error: Option<Failure>,
}

/// Why a save stopped, kept with the store's error kind: a caller tells an
/// unreachable store (offline: the drive waits and tries again) from a
/// refusal or a fault, which a plain message would lose. Cloned out of the
/// shared state, so it holds the parts of the error, not the error.
#[derive(Debug, Clone)]
struct Failure {
    kind: Option<BackendErrorKind>,
    message: String,
}

impl Failure {
    fn into_error(self, context: &str) -> VaultError {
        let message = format!("{context}: {}", self.message);
        match self.kind {
            Some(kind) => VaultError::Backend(BackendError::new(kind, message)),
            None => VaultError::invalid_input(message),
        }
    }
}

/// The packs being filled. From format version 2 on, data and tree blobs
/// share one builder, so a small save (one edited file and the trees of its
/// folders) is one padded pack: the store cannot tell the file's size from
/// the size of its folders, nor see a tree pack grow with each entry.
/// Version 1 keeps trees in packs of their own, as it always did.
struct Packers {
    data: PackBuilder,
    trees: Option<PackBuilder>,
}

struct Shared {
    vault: Vault,
    in_flight: usize,
    /// An index object is written after this many packs, so an interrupted
    /// save keeps what it uploaded: a new save finds those blobs and skips them.
    index_every: usize,
    packers: Mutex<Packers>,
    state: Mutex<State>,
    tx: Mutex<Option<mpsc::Sender<FinishedPack>>>,
    uploader: Mutex<Option<JoinHandle<()>>>,
    new_blobs: AtomicU64,
    new_data_blobs: AtomicU64,
    dup_blobs: AtomicU64,
    new_raw: AtomicU64,
    uploaded_bytes: AtomicU64,
    packs: AtomicU64,
    /// Told of every new data blob, sealed as it goes into its pack.
    data_hook: std::sync::OnceLock<DataHook>,
}

/// See [`Saver::set_data_hook`].
pub type DataHook = Arc<dyn Fn(&BlobId, &[u8]) + Send + Sync>;

/// Saves blobs into a vault. Clone it into worker threads; call
/// [`Saver::finish`] once, after all of them are done.
#[derive(Clone)]
pub struct Saver(Arc<Shared>);

impl Saver {
    /// Starts a save. Must be called within a Tokio runtime.
    pub fn new(vault: &Vault) -> Saver {
        // About every GiB of packs.
        let every = ((1u64 << 30) / vault.params().pack_target_size.max(1) as u64).max(1) as usize;
        Saver::with_index_every(vault, every)
    }

    /// Starts a save that writes an index object after every `packs` packs.
    pub fn with_index_every(vault: &Vault, packs: usize) -> Saver {
        let local = vault.backend().is_local();
        let (tx, rx) = mpsc::channel(if local { LOCAL_QUEUE } else { QUEUE });
        let shared = Arc::new(Shared {
            in_flight: if local {
                LOCAL_UPLOADS_IN_FLIGHT
            } else {
                UPLOADS_IN_FLIGHT
            },
            vault: vault.clone(),
            index_every: packs.max(1),
            packers: Mutex::new({
                let version = vault.config().version();
                Packers {
                    data: PackBuilder::for_version(version),
                    trees: (version < 2).then(|| PackBuilder::for_version(version)),
                }
            }),
            state: Mutex::new(State {
                pending: HashSet::new(),
                uploaded: Vec::new(),
                indexes: Vec::new(),
                error: None,
            }),
            tx: Mutex::new(Some(tx)),
            uploader: Mutex::new(None),
            new_blobs: AtomicU64::new(0),
            new_data_blobs: AtomicU64::new(0),
            dup_blobs: AtomicU64::new(0),
            new_raw: AtomicU64::new(0),
            uploaded_bytes: AtomicU64::new(0),
            packs: AtomicU64::new(0),
            data_hook: std::sync::OnceLock::new(),
        });
        let handle = tokio::spawn(upload_loop(shared.clone(), rx));
        if let Ok(mut u) = shared.uploader.lock() {
            *u = Some(handle);
        }
        Saver(shared)
    }

    fn failed(&self) -> Option<Failure> {
        self.0.state.lock().ok().and_then(|s| s.error.clone())
    }

    /// Calls `hook` with each new data blob of this save, sealed exactly as
    /// it is stored (what [`Vault::fetch_sealed`] returns for it later), so
    /// a local cache can keep what was just written. Set once, before the
    /// first blob; a later call is ignored.
    pub fn set_data_hook(&self, hook: DataHook) {
        let _ = self.0.data_hook.set(hook);
    }

    /// Stores one blob (deduplicated) and returns its id. Blocking: call it
    /// from a blocking thread, never from async code.
    pub fn save_blob_blocking(&self, kind: BlobKind, data: &[u8]) -> Result<BlobId> {
        if let Some(f) = self.failed() {
            return Err(f.into_error("the save was aborted"));
        }
        if data.len() > MAX_BLOB {
            return Err(VaultError::invalid_input(format!(
                "a {:?} blob of {} bytes is larger than a pack can hold (a folder with tens of millions of entries?)",
                kind,
                data.len()
            )));
        }
        let vault = &self.0.vault;
        let id = vault.blob_id(kind, data);
        {
            let mut st = self.0.state.lock().map_err(|_| poisoned())?;
            if vault.has_blob(&id) || !st.pending.insert(id) {
                self.0.dup_blobs.fetch_add(1, Ordering::Relaxed);
                return Ok(id);
            }
        }
        let enc = codec::encode_blob(vault.keys(), kind, id, data, vault.params().zstd_level);
        self.0.new_blobs.fetch_add(1, Ordering::Relaxed);
        if kind == BlobKind::Data {
            self.0.new_data_blobs.fetch_add(1, Ordering::Relaxed);
            if let Some(hook) = self.0.data_hook.get() {
                hook(&id, &enc.sealed);
            }
        }
        self.0.new_raw.fetch_add(data.len() as u64, Ordering::Relaxed);
        if let Some(pack) = self.pack(&enc)? {
            self.send_blocking(pack)?;
        }
        Ok(id)
    }

    /// Adds an encoded blob to the pack being filled for its kind; returns
    /// that pack when it is full.
    fn pack(&self, enc: &codec::EncodedBlob) -> Result<Option<FinishedPack>> {
        let vault = &self.0.vault;
        let mut p = self.0.packers.lock().map_err(|_| poisoned())?;
        let p = &mut *p;
        let builder = match (enc.kind, p.trees.as_mut()) {
            (BlobKind::Tree, Some(trees)) => trees,
            _ => &mut p.data,
        };
        builder.add(enc);
        Ok((builder.len() >= vault.params().pack_target_size as usize).then(|| builder.finish(vault.keys())))
    }

    fn send_blocking(&self, pack: FinishedPack) -> Result<()> {
        let tx = self.0.tx.lock().map_err(|_| poisoned())?.clone();
        match tx {
            Some(tx) => tx.blocking_send(pack).map_err(|_| self.upload_error()),
            None => Err(VaultError::invalid_input("the save is already finished")),
        }
    }

    fn upload_error(&self) -> VaultError {
        let failure = self.failed().unwrap_or_else(|| Failure {
            kind: None,
            message: "the upload task stopped".into(),
        });
        failure.into_error("uploading to the store failed")
    }

    /// Chunks a stream and stores every chunk. Returns the blob ids in order
    /// and the number of bytes read. `progress` is called with the size of
    /// each chunk as it is done. Blocking.
    ///
    /// `size_hint` is the expected length: streams expected to be small are
    /// read into memory in one go, which spares the streaming chunker's
    /// `max_size` buffer for each of thousands of small files.
    pub fn save_reader_blocking<R: Read>(
        &self,
        mut reader: R,
        size_hint: u64,
        mut progress: impl FnMut(u64),
    ) -> Result<(Vec<BlobId>, u64), SaveReaderError> {
        if size_hint <= SMALL_FILE {
            let mut buf = Vec::with_capacity(size_hint as usize + 1);
            (&mut reader)
                .take(SMALL_FILE + 1)
                .read_to_end(&mut buf)
                .map_err(SaveReaderError::Read)?;
            if buf.len() as u64 <= SMALL_FILE {
                let params = self.0.vault.params().chunker;
                let seed = self.0.vault.chunker_seed();
                let mut ids = Vec::new();
                for (off, len) in chunker::chunk_slice(&params, seed, &buf) {
                    ids.push(
                        self.save_blob_blocking(BlobKind::Data, &buf[off..off + len])
                            .map_err(SaveReaderError::Vault)?,
                    );
                    progress(len as u64);
                }
                return Ok((ids, buf.len() as u64));
            }
            // It grew while we looked: chunk what we read and the rest as a stream.
            return self.save_stream(std::io::Cursor::new(buf).chain(reader), progress);
        }
        self.save_stream(reader, progress)
    }

    fn save_stream<R: Read>(
        &self,
        reader: R,
        mut progress: impl FnMut(u64),
    ) -> Result<(Vec<BlobId>, u64), SaveReaderError> {
        let params = self.0.vault.params().chunker;
        let seed = self.0.vault.chunker_seed();
        let mut ids = Vec::new();
        let mut total = 0u64;
        chunker::chunk_reader(&params, seed, reader, |chunk| {
            ids.push(self.save_blob_blocking(BlobKind::Data, chunk)?);
            total += chunk.len() as u64;
            progress(chunk.len() as u64);
            Ok::<(), VaultError>(())
        })
        .map_err(|e| match e {
            chunker::ChunkReadError::Io(e) => SaveReaderError::Read(e),
            chunker::ChunkReadError::Sink(e) => SaveReaderError::Vault(e),
        })?;
        Ok((ids, total))
    }

    /// Puts a blob that is already sealed into this save's packs, whether
    /// or not the vault lists it elsewhere: copied out of another pack (a
    /// blob's sealed box is bound to its id and kind, not to its pack), for
    /// prune's repack and the rescue of condemned blobs
    /// (docs/PRUNE.md §4.1 and §5). Only a second copy within this save is
    /// skipped.
    pub(crate) async fn copy_sealed(&self, kind: BlobKind, id: BlobId, raw_len: u32, sealed: Vec<u8>) -> Result<()> {
        if let Some(f) = self.failed() {
            return Err(f.into_error("the save was aborted"));
        }
        if !self.0.state.lock().map_err(|_| poisoned())?.pending.insert(id) {
            return Ok(());
        }
        let enc = codec::EncodedBlob {
            id,
            kind,
            raw_len,
            sealed,
        };
        self.0.new_blobs.fetch_add(1, Ordering::Relaxed);
        if let Some(pack) = self.pack(&enc)? {
            let tx = self.0.tx.lock().map_err(|_| poisoned())?.clone();
            match tx {
                Some(tx) => tx.send(pack).await.map_err(|_| self.upload_error())?,
                None => return Err(VaultError::invalid_input("the save is already finished")),
            }
        }
        Ok(())
    }

    /// Async convenience around [`Saver::save_blob_blocking`].
    pub async fn save_blob(&self, kind: BlobKind, data: Vec<u8>) -> Result<BlobId> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.save_blob_blocking(kind, &data))
            .await
            .map_err(|e| VaultError::invalid_input(format!("saving was interrupted: {e}")))?
    }

    /// Uploads what is left, waits for every upload, and writes the index
    /// object. After this returns `Ok`, every blob saved is in the vault,
    /// and [`SaveStats::indexes`] names every index object the save wrote.
    pub async fn finish(&self) -> Result<SaveStats> {
        let leftovers: Vec<FinishedPack> = {
            let mut p = self.0.packers.lock().map_err(|_| poisoned())?;
            let keys = self.0.vault.keys();
            let mut v = Vec::new();
            if !p.data.is_empty() {
                v.push(p.data.finish(keys));
            }
            if let Some(trees) = p.trees.as_mut().filter(|t| !t.is_empty()) {
                v.push(trees.finish(keys));
            }
            v
        };
        let tx = self.0.tx.lock().map_err(|_| poisoned())?.take();
        if let Some(tx) = tx {
            for pack in leftovers {
                if tx.send(pack).await.is_err() {
                    break;
                }
            }
        }
        let handle = self.0.uploader.lock().map_err(|_| poisoned())?.take();
        if let Some(h) = handle {
            h.await
                .map_err(|e| VaultError::invalid_input(format!("the upload task failed: {e}")))?;
        }
        // Even when the save failed, index what did upload, so a later save
        // can skip those blobs.
        let uploaded = std::mem::take(&mut self.0.state.lock().map_err(|_| poisoned())?.uploaded);
        let indexed = write_index_then_adopt(&self.0, uploaded).await;
        if self.failed().is_some() {
            return Err(self.upload_error());
        }
        indexed?;
        Ok(self.stats())
    }

    pub fn stats(&self) -> SaveStats {
        SaveStats {
            new_blobs: self.0.new_blobs.load(Ordering::Relaxed),
            new_data_blobs: self.0.new_data_blobs.load(Ordering::Relaxed),
            duplicate_blobs: self.0.dup_blobs.load(Ordering::Relaxed),
            new_raw_bytes: self.0.new_raw.load(Ordering::Relaxed),
            uploaded_bytes: self.0.uploaded_bytes.load(Ordering::Relaxed),
            packs: self.0.packs.load(Ordering::Relaxed),
            indexes: match self.0.state.lock() {
                Ok(s) => s.indexes.clone(),
                Err(p) => p.into_inner().indexes.clone(),
            },
        }
    }
}

/// Saving a stream failed: reading it, or storing it.
#[derive(Debug, thiserror::Error)]
pub enum SaveReaderError {
    #[error("reading failed: {0}")]
    Read(std::io::Error),
    #[error("{0}")]
    Vault(VaultError),
}

fn poisoned() -> VaultError {
    VaultError::invalid_input("an internal lock was poisoned by an earlier failure")
}

async fn upload_loop(shared: Arc<Shared>, mut rx: mpsc::Receiver<FinishedPack>) {
    let mut tasks = tokio::task::JoinSet::new();
    while let Some(p) = rx.recv().await {
        while tasks.len() >= shared.in_flight {
            tasks.join_next().await;
        }
        let shared = shared.clone();
        tasks.spawn(async move { upload_one(&shared, p).await });
    }
    while tasks.join_next().await.is_some() {}
}

async fn upload_one(shared: &Shared, p: FinishedPack) {
    let key = pack::pack_key(&p.id);
    let size = p.bytes.len() as u64;
    let bytes = Bytes::from(p.bytes);
    let backend = shared.vault.backend();
    let result = backend.put(&key, bytes).await;
    // The lock must not be held across the index write below.
    let batch = {
        let mut st = match shared.state.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        match result {
            Ok(()) => {
                let ip = IndexPack {
                    id: p.id,
                    size,
                    blobs: p.entries,
                };
                st.uploaded.push(ip);
                shared.uploaded_bytes.fetch_add(size, Ordering::Relaxed);
                shared.packs.fetch_add(1, Ordering::Relaxed);
                // Also bound the entries per index object, so it stays far
                // below the size a reader accepts even for tiny blobs.
                let entries: usize = st.uploaded.iter().map(|p| p.blobs.len()).sum();
                (st.uploaded.len() >= shared.index_every || entries >= MAX_INDEX_ENTRIES)
                    .then(|| std::mem::take(&mut st.uploaded))
            }
            Err(e) => {
                if st.error.is_none() {
                    st.error = Some(Failure {
                        kind: Some(e.kind()),
                        message: format!("{key}: {e}"),
                    });
                }
                None
            }
        }
    };
    if let Some(batch) = batch {
        // A failure re-queued the batch; `finish` tries once more and fails
        // the save if that does not work either.
        let _ = write_index_then_adopt(shared, batch).await;
    }
}

/// Writes index objects for `packs` (several if a re-queued batch made
/// them too many for one); once one is stored, its blobs join the master
/// index. On failure the rest go back in the queue, so their blobs stay
/// pending (never "stored") and are listed by a later attempt.
async fn write_index_then_adopt(shared: &Shared, mut packs: Vec<IndexPack>) -> Result<()> {
    while !packs.is_empty() {
        let mut entries = 0;
        let split = packs
            .iter()
            .position(|p| {
                entries += p.blobs.len();
                entries > MAX_INDEX_ENTRIES
            })
            .unwrap_or(packs.len())
            .max(1);
        let rest = packs.split_off(split);
        if let Err(e) = write_one_index(shared, packs).await {
            requeue(shared, rest);
            return Err(e);
        }
        packs = rest;
    }
    Ok(())
}

fn requeue(shared: &Shared, packs: Vec<IndexPack>) {
    let mut st = match shared.state.lock() {
        Ok(s) => s,
        Err(p) => p.into_inner(),
    };
    st.uploaded.extend(packs);
}

async fn write_one_index(shared: &Shared, batch: Vec<IndexPack>) -> Result<()> {
    let written = shared.vault.write_index(batch.clone()).await;
    let mut st = match shared.state.lock() {
        Ok(s) => s,
        Err(p) => p.into_inner(),
    };
    match written {
        Ok(id) => {
            st.indexes.push(id);
            for ip in &batch {
                // Into the master index before leaving `pending`, so a
                // concurrent saver always finds the blob in one of them.
                shared.vault.index_add(ip);
                for b in &ip.blobs {
                    st.pending.remove(&b.id);
                }
            }
            Ok(())
        }
        Err(e) => {
            st.uploaded.extend(batch);
            Err(e)
        }
    }
}

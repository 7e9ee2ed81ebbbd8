//! An open vault: unlocking, the master index, reading blobs, trees and
//! commits, and publishing commits and refs.
//!
//! Freshness: a `Vault` remembers the newest update of every device's ref
//! it has seen (seeded by the caller from what this device remembers), and
//! every read of the refs is checked against that memory before anything is
//! chosen from it. So the head is always picked from refs that passed the
//! rollback check, and a store that answers a later read with an older ref
//! (a replay) is refused however many reads there are, including the one
//! made right before publishing a ref.
//!
//! Lock order: `index` and `seen` are never held across an await or while
//! taking another lock.

use bytes::Bytes;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use nimbus_backend::{BackendErrorKind, DynBackend};

use crate::codec::{self, BlobKind};
use crate::commit::{self, Commit, CommitLayout, NewCommit, RefRecord};
use crate::config::{Config, KdfParams, RecoveryKey, VaultParams, CONFIG_KEY};
use crate::crypto::{Keys, MasterKey};
use crate::error::{Result, VaultError};
use crate::id::{BlobId, CommitId, DeviceId, FileId, Id, PackId};
use crate::index::{self, IndexFile, Location, MasterIndex};
use crate::pack;
use crate::tree::Tree;

use crate::poll::{Published, RefCache, RefPoll};

struct Inner {
    backend: DynBackend,
    config: Config,
    keys: Keys,
    index: RwLock<MasterIndex>,
    /// Index objects that could not be read at open, with the reason.
    damaged_indexes: RwLock<Vec<(String, String)>>,
    /// The keys of the index objects in `index`: loading the index again
    /// reads only the others.
    index_keys: RwLock<HashSet<String>>,
    /// The newest update of each device's ref seen (see the module doc).
    seen: RwLock<HashMap<DeviceId, u64>>,
    /// Generations of commits written or read here, so that writing a
    /// commit on top of the last one costs no read of its parent. Commits
    /// never change, so an entry never goes stale; the map is emptied when
    /// it grows past [`GENERATIONS_KEPT`].
    generations: RwLock<HashMap<CommitId, u64>>,
    /// What this client knows of prune (docs/PRUNE.md §5).
    gc: RwLock<crate::gc::known::GcKnown>,
    /// The waits of prune's rules, shorter only in tests.
    prune_times: RwLock<crate::gc::PruneTimes>,
}

/// See [`Inner::generations`].
const GENERATIONS_KEPT: usize = 4096;

/// An unlocked vault. Cheap to clone: clones share keys and index.
#[derive(Clone)]
pub struct Vault(Arc<Inner>);

/// Reads the `config` object, or says there is no vault.
pub async fn read_config(backend: &DynBackend) -> Result<Config> {
    match backend.get_whole(CONFIG_KEY, crate::caps::CONFIG_MAX).await {
        Ok(bytes) => Config::decode(&bytes),
        Err(e) if e.kind() == BackendErrorKind::NotFound => Err(VaultError::NoVault {
            store: backend.describe(),
        }),
        Err(e) => Err(e.into()),
    }
}

impl Vault {
    /// Creates a new vault on an empty store. Returns it unlocked, with the
    /// recovery key to show the person once.
    pub async fn create(
        backend: DynBackend,
        password: &[u8],
        params: VaultParams,
        kdf: KdfParams,
    ) -> Result<(Vault, RecoveryKey)> {
        if backend.stat(CONFIG_KEY).await?.is_some() {
            return Err(VaultError::AlreadyExists {
                store: backend.describe(),
            });
        }
        let (config, master, recovery) = Config::create(password, params, kdf)?;
        backend.put(CONFIG_KEY, Bytes::from(config.encode())).await?;
        let vault = Vault::from_parts(backend, config, &master);
        Ok((vault, recovery))
    }

    fn from_parts(backend: DynBackend, config: Config, master: &MasterKey) -> Vault {
        Vault(Arc::new(Inner {
            backend,
            config,
            keys: master.derive(),
            index: RwLock::new(MasterIndex::default()),
            damaged_indexes: RwLock::new(Vec::new()),
            index_keys: RwLock::new(HashSet::new()),
            seen: RwLock::new(HashMap::new()),
            generations: RwLock::new(HashMap::new()),
            gc: RwLock::new(Default::default()),
            prune_times: RwLock::new(crate::gc::PruneTimes::default()),
        }))
    }

    /// Opens a vault with its password and loads the index.
    pub async fn open(backend: DynBackend, password: &[u8]) -> Result<Vault> {
        let config = read_config(&backend).await?;
        let master = unlock_blocking(config.clone(), Unlock::Password(password.to_vec())).await?;
        let vault = Vault::from_parts(backend, config, &master);
        vault.load_index().await?;
        vault.load_gc_if_any().await?;
        Ok(vault)
    }

    /// Opens a vault with the recovery key and loads the index.
    pub async fn open_with_recovery(backend: DynBackend, recovery: &RecoveryKey) -> Result<Vault> {
        let config = read_config(&backend).await?;
        let master = config.unlock_with_recovery(recovery)?;
        let vault = Vault::from_parts(backend, config, &master);
        vault.load_index().await?;
        vault.load_gc_if_any().await?;
        Ok(vault)
    }

    /// Replaces the password. Rewrites the `config` object and nothing else;
    /// the recovery key keeps working.
    pub async fn change_password(&self, master_source: Unlock, new_password: &[u8]) -> Result<()> {
        let cfg = read_config(&self.0.backend).await?;
        let master = unlock_blocking(cfg.clone(), master_source).await?;
        let kdf = cfg.password_kdf();
        let new_pw = new_password.to_vec();
        let new_cfg = tokio::task::spawn_blocking(move || {
            let new_pw = zeroize::Zeroizing::new(new_pw);
            cfg.with_new_password(&master, &new_pw, kdf)
        })
        .await
        .map_err(|e| VaultError::invalid_input(format!("key derivation was interrupted: {e}")))??;
        self.0.backend.put(CONFIG_KEY, Bytes::from(new_cfg.encode())).await?;
        Ok(())
    }

    pub fn backend(&self) -> &DynBackend {
        &self.0.backend
    }

    pub fn config(&self) -> &Config {
        &self.0.config
    }

    pub fn params(&self) -> &VaultParams {
        &self.0.config.file.params
    }

    pub(crate) fn keys(&self) -> &Keys {
        &self.0.keys
    }

    /// Index objects that failed to load, with the reason.
    pub fn damaged_indexes(&self) -> Vec<(String, String)> {
        self.0.damaged_indexes.read().map(|d| d.clone()).unwrap_or_default()
    }

    /// Loads the index objects not loaded yet into the master index (at
    /// open: all of them). A damaged one is remembered, not fatal: blobs
    /// it alone lists will fail to read with an error that names it, and
    /// the next load tries it again. A read that fails because the store
    /// cannot be reached fails the load (try again later) rather than
    /// counting that index object as damaged.
    ///
    /// What was known stays known: the packs are added to the master
    /// index, never replace it, since nothing deletes packs and a listing
    /// can lag (a store may leave the newest index objects out for a
    /// while). Replacing made a drive that loaded the index again forget
    /// packs it had written or read itself, whose blobs then read as
    /// missing (found by the simulation, docs/SYNC.md §6.2).
    pub async fn load_index(&self) -> Result<()> {
        let listing = self.0.backend.list("index/").await?;
        let known = self.0.index_keys.read().map(|k| k.clone()).unwrap_or_default();
        let mut loaded = Vec::new();
        let mut damaged = Vec::new();
        let reads = futures::future::join_all(listing.iter().filter(|o| !known.contains(&o.key)).map(
            |obj| async move {
                // The reason is kept as text: `damaged_indexes` only reports it.
                let res = match index::parse_index_key(&obj.key) {
                    None => Ok(Err("its name is not an index id".to_string())),
                    Some(id) => match self.0.backend.get_whole(&obj.key, crate::caps::INDEX_MAX).await {
                        Ok(bytes) => Ok(IndexFile::open(&self.0.keys, &id, &bytes).map_err(|e| e.to_string())),
                        Err(e) if e.kind() == BackendErrorKind::Unavailable => Err(e),
                        Err(e) => Ok(Err(e.to_string())),
                    },
                };
                (obj.key.clone(), res)
            },
        ))
        .await;
        let times: HashMap<&str, std::time::SystemTime> = listing
            .iter()
            .filter_map(|o| Some((o.key.as_str(), o.modified?)))
            .collect();
        for (key, res) in reads {
            match res? {
                Ok(file) => loaded.push((times.get(key.as_str()).copied(), key, file)),
                Err(why) => damaged.push((key, why)),
            }
        }
        // Oldest first: a blob in several packs is read from the newest
        // index object's (a repair's copy of a lost pack).
        loaded.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        if let Ok(mut g) = self.0.index.write() {
            for (at, _, f) in &loaded {
                for p in &f.packs {
                    g.add_pack_listed(p, *at);
                }
            }
        }
        if let Ok(mut k) = self.0.index_keys.write() {
            k.extend(loaded.into_iter().map(|(_, key, _)| key));
        }
        if let Ok(mut g) = self.0.damaged_indexes.write() {
            *g = damaged;
        }
        // An index object may list a pack a finished prune deleted.
        self.reapply_gc();
        Ok(())
    }

    /// The keys of the index objects loaded into the master index.
    pub(crate) fn loaded_index_keys(&self) -> HashSet<String> {
        self.0.index_keys.read().map(|k| k.clone()).unwrap_or_default()
    }

    /// Reads the prune objects at open, in a vault whose format has them.
    async fn load_gc_if_any(&self) -> Result<()> {
        if self.0.config.version() >= crate::gc::GC_SINCE {
            self.load_gc().await?;
        }
        Ok(())
    }

    pub(crate) fn gc_known_read(&self) -> std::sync::RwLockReadGuard<'_, crate::gc::known::GcKnown> {
        self.0.gc.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn gc_known_write(&self) -> std::sync::RwLockWriteGuard<'_, crate::gc::known::GcKnown> {
        self.0.gc.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The waits of prune's rules this client uses.
    pub fn prune_times(&self) -> crate::gc::PruneTimes {
        *self
            .0
            .prune_times
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Sets the waits of prune's rules (tests shorten them; see
    /// [`crate::gc::PruneTimes::checked`]).
    pub fn set_prune_times(&self, times: crate::gc::PruneTimes) {
        *self
            .0
            .prune_times
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = times;
    }

    /// Runs `f` with the master index, to change it.
    pub(crate) fn with_index_mut<T>(&self, f: impl FnOnce(&mut MasterIndex) -> T) -> T {
        match self.0.index.write() {
            Ok(mut g) => f(&mut g),
            Err(p) => f(&mut p.into_inner()),
        }
    }

    /// The location of a blob; one the master index does not know loads
    /// the index objects written since (a listing that lagged when the
    /// index was loaded, or another device's save) before it counts as
    /// missing. A blob that is really missing costs a listing per call.
    pub async fn locate_or_load(&self, id: &BlobId) -> Result<Location> {
        if let Some(loc) = self.locate(id) {
            return Ok(loc);
        }
        self.load_index().await?;
        self.locate_or_err(id)
    }

    pub(crate) fn index_add(&self, pack: &index::IndexPack) {
        if let Ok(mut g) = self.0.index.write() {
            g.add_pack(pack);
        }
    }

    /// Whether the index object `key` is part of the master index (it was
    /// read when the index was loaded).
    pub(crate) fn index_loaded(&self, key: &str) -> bool {
        self.0.index_keys.read().is_ok_and(|k| k.contains(key))
    }

    /// Adds packs just written to replace lost ones: their blobs are read
    /// from them from now on.
    pub(crate) fn index_add_preferred(&self, packs: &[index::IndexPack]) {
        if let Ok(mut g) = self.0.index.write() {
            for p in packs {
                g.add_pack_preferred(p);
            }
        }
    }

    /// Runs `f` with the master index.
    pub fn with_index<T>(&self, f: impl FnOnce(&MasterIndex) -> T) -> T {
        match self.0.index.read() {
            Ok(g) => f(&g),
            Err(p) => f(&p.into_inner()),
        }
    }

    pub fn locate(&self, id: &BlobId) -> Option<Location> {
        self.with_index(|i| i.get(id))
    }

    /// Whether a blob with this id is already stored, in a pack no known
    /// prune plan condemns: only then may a save skip uploading it
    /// (docs/PRUNE.md §5, S1).
    pub fn has_blob(&self, id: &BlobId) -> bool {
        self.with_index(|i| i.contains_live(id))
    }

    /// Hashes plaintext into its blob id.
    pub fn blob_id(&self, kind: BlobKind, data: &[u8]) -> BlobId {
        codec::blob_id(&self.0.keys, kind, data)
    }

    /// Reads, authenticates and decodes one blob.
    pub async fn read_blob(&self, kind: BlobKind, id: &BlobId) -> Result<Vec<u8>> {
        let loc = self.locate_or_err(id)?;
        if loc.kind != kind {
            return Err(VaultError::corrupt(
                pack::pack_key(&loc.pack),
                format!("blob {id} is indexed as {:?}, expected {kind:?}", loc.kind),
            ));
        }
        let key = pack::pack_key(&loc.pack);
        let (_, sealed) = self.fetch_sealed(id).await?;
        let keys = &self.0.keys;
        let decode = |sealed: &[u8]| codec::decode_blob(keys, kind, id, loc.raw_len, sealed);
        // Large blobs are decrypted off the async threads.
        let plain = if sealed.len() > 64 << 10 {
            let this = self.clone();
            let id = *id;
            tokio::task::spawn_blocking(move || codec::decode_blob(&this.0.keys, kind, &id, loc.raw_len, &sealed))
                .await
                .map_err(|e| VaultError::invalid_input(format!("decoding was interrupted: {e}")))?
        } else {
            decode(&sealed)
        };
        plain.map_err(|e| VaultError::corrupt(&key, format!("blob {id} at offset {}: {e}", loc.offset)))
    }

    /// Fetches a blob as it is stored (still encrypted), for a local cache
    /// that must not hold plaintext. Decode it with [`Vault::decode_sealed`].
    ///
    /// A pack found gone (a prune deleted it after copying what was still
    /// used) makes the prune's records and the index be read again, and
    /// the blob is read from its new place (docs/PRUNE.md §5, S5).
    pub async fn fetch_sealed(&self, id: &BlobId) -> Result<(Location, Bytes)> {
        let loc = self.locate_or_err(id)?;
        match self.fetch_sealed_at(id, loc).await {
            Err(VaultError::Missing { object, what }) if self.0.config.version() >= crate::gc::GC_SINCE => {
                self.load_gc().await?;
                self.load_index().await?;
                match self.locate(id) {
                    Some(moved) if moved.pack != loc.pack => self.fetch_sealed_at(id, moved).await,
                    _ => Err(VaultError::Missing { object, what }),
                }
            }
            other => other,
        }
    }

    async fn fetch_sealed_at(&self, id: &BlobId, loc: Location) -> Result<(Location, Bytes)> {
        let key = pack::pack_key(&loc.pack);
        let range = loc.offset as u64..loc.offset as u64 + loc.length as u64;
        let sealed = get_range(&self.0.backend, &key, range)
            .await
            .map_err(|e| VaultError::from_get(&key, e, &format!("it holds blob {id}")))?;
        if sealed.len() != loc.length as usize {
            return Err(VaultError::corrupt(
                &key,
                format!("it is truncated: blob {id} at offset {} is cut short", loc.offset),
            ));
        }
        Ok((loc, sealed))
    }

    /// Authenticates, decrypts and decompresses bytes from
    /// [`Vault::fetch_sealed`]. CPU-bound: call it off async threads for
    /// large blobs.
    pub fn decode_sealed(&self, id: &BlobId, loc: &Location, sealed: &[u8]) -> Result<Vec<u8>> {
        codec::decode_blob(&self.0.keys, loc.kind, id, loc.raw_len, sealed).map_err(|e| {
            VaultError::corrupt(
                pack::pack_key(&loc.pack),
                format!("blob {id} at offset {}: {e}", loc.offset),
            )
        })
    }

    /// A key for this device's local state, derived from the master key and
    /// `label` (one label per purpose). Nothing encrypted under it is ever
    /// uploaded, so it is not part of the vault format.
    pub fn local_state_key(&self, label: &str) -> zeroize::Zeroizing<[u8; 32]> {
        crate::crypto::hkdf32(self.0.keys.local_state.as_ref(), label.as_bytes())
    }

    /// The gear-table seed of this vault's chunker, for callers that chunk
    /// with [`crate::chunker`] themselves.
    pub fn chunker_seed_for_saving(&self) -> u64 {
        self.0.keys.chunker_seed
    }

    /// Reads many blobs of one pack with as few requests as possible:
    /// neighbouring blobs (gaps under 1 MiB) are fetched in one ranged read.
    /// Every blob is authenticated and checked against its id. `blobs` must
    /// all be located in `pack`; the result is in the same order.
    pub async fn read_blobs_in_pack(&self, pack: PackId, blobs: &[(BlobId, Location)]) -> Result<Vec<Vec<u8>>> {
        let sealed = self.fetch_sealed_in_pack(pack, blobs).await?;
        let this = self.clone();
        let items: Vec<(BlobId, Location)> = blobs.to_vec();
        tokio::task::spawn_blocking(move || {
            items
                .iter()
                .zip(sealed)
                .map(|((id, loc), sealed)| this.decode_sealed(id, loc, &sealed))
                .collect::<Result<Vec<_>>>()
        })
        .await
        .map_err(|e| VaultError::invalid_input(format!("decoding was interrupted: {e}")))?
    }

    /// Fetches many blobs of one pack as they are stored (still sealed),
    /// with as few requests as [`Vault::read_blobs_in_pack`] makes. Nothing
    /// is authenticated here. The result is in the order of `blobs`.
    pub async fn fetch_sealed_in_pack(&self, pack: PackId, blobs: &[(BlobId, Location)]) -> Result<Vec<Bytes>> {
        const MAX_GAP: u64 = 1 << 20;
        let key = pack::pack_key(&pack);
        let mut order: Vec<usize> = (0..blobs.len()).collect();
        order.sort_by_key(|&i| blobs[i].1.offset);
        let mut out: Vec<Bytes> = vec![Bytes::new(); blobs.len()];
        let mut i = 0;
        while i < order.len() {
            // Grow a run while the next blob starts close to the run's end.
            let start = blobs[order[i]].1.offset as u64;
            let mut end = start + blobs[order[i]].1.length as u64;
            let mut j = i + 1;
            while j < order.len() {
                let loc = blobs[order[j]].1;
                if (loc.offset as u64) > end + MAX_GAP {
                    break;
                }
                end = end.max(loc.offset as u64 + loc.length as u64);
                j += 1;
            }
            let bytes = get_range(&self.0.backend, &key, start..end)
                .await
                .map_err(|e| VaultError::from_get(&key, e, "the index lists blobs in it"))?;
            if (bytes.len() as u64) < end - start {
                return Err(VaultError::corrupt(
                    &key,
                    format!(
                        "it is truncated: {} bytes where {} were expected",
                        start + bytes.len() as u64,
                        end
                    ),
                ));
            }
            for &k in &order[i..j] {
                let loc = blobs[k].1;
                let from = (loc.offset as u64 - start) as usize;
                out[k] = bytes.slice(from..from + loc.length as usize);
            }
            i = j;
        }
        Ok(out)
    }

    /// The location of a blob, or an error naming why it cannot be found.
    pub fn locate_or_err(&self, id: &BlobId) -> Result<Location> {
        self.locate(id).ok_or_else(|| {
            let damaged = self.damaged_indexes();
            let hint = if damaged.is_empty() {
                "no index object lists it; an `index/` object may have been deleted".to_string()
            } else {
                format!(
                    "no readable index lists it; damaged index objects: {}",
                    damaged.iter().map(|d| d.0.as_str()).collect::<Vec<_>>().join(", ")
                )
            };
            VaultError::missing(format!("blob {id}"), hint)
        })
    }

    pub async fn read_tree(&self, id: &BlobId) -> Result<Tree> {
        let bytes = self.read_blob(BlobKind::Tree, id).await?;
        Tree::decode(&bytes).map_err(|e| {
            let obj = self.locate(id).map(|l| pack::pack_key(&l.pack)).unwrap_or_default();
            VaultError::corrupt(obj, format!("tree {id}: {e}"))
        })
    }

    pub async fn read_commit(&self, id: &CommitId) -> Result<Commit> {
        let key = commit::commit_key(id);
        let bytes = self
            .0
            .backend
            .get_whole(&key, crate::caps::COMMIT_MAX)
            .await
            .map_err(|e| VaultError::from_get(&key, e, "a ref or commit names it"))?;
        let c = Commit::open(&self.0.keys, id, &bytes, self.commit_layout())
            .map_err(|e| VaultError::corrupt(&key, e.to_string()))?;
        self.remember_generation(id, c.generation);
        Ok(c)
    }

    /// The commit layout this vault writes (by its format version).
    pub fn commit_layout(&self) -> CommitLayout {
        CommitLayout::for_version(self.0.config.version())
    }

    fn remember_generation(&self, id: &CommitId, generation: u64) {
        if let Ok(mut g) = self.0.generations.write() {
            if g.len() >= GENERATIONS_KEPT {
                g.clear();
            }
            g.insert(*id, generation);
        }
    }

    /// The generation of a new commit on `parents`: 1 + the largest of
    /// theirs, a version 2 parent counting as 0 (it has none). A parent
    /// that reads as missing or damaged is an error, not a 0: the parents
    /// are heads just read, so a store that hides one is most likely
    /// answering from a stale view, and a guessed generation would make
    /// every reader call this commit damaged (`nimbus-merge`'s base search
    /// requires exactly 1 + the largest parent's). The save fails and the
    /// drive retries it, as for any failed commit.
    async fn generation_after(&self, parents: &[CommitId]) -> Result<u64> {
        let mut top = 0u64;
        for p in parents {
            let known = self.0.generations.read().ok().and_then(|g| g.get(p).copied());
            let g = match known {
                Some(g) => g,
                None => self.read_commit(p).await?.generation,
            };
            top = top.max(g);
        }
        Ok(top.saturating_add(1))
    }

    /// The file id of the conflict copy of `original` whose content lost
    /// (docs/SYNC.md §2.1): the same on every device, for the same original
    /// and content. `loser_content_hash` is the BLAKE3 hash of the losing
    /// content as the merge defines it.
    pub fn conflict_id(&self, original: &FileId, loser_content_hash: &[u8; 32]) -> FileId {
        codec::conflict_id(&self.0.keys, original, loser_content_hash)
    }

    /// Every readable commit in the vault, oldest first. Damaged ones are
    /// left out; [`Vault::scan_commits`] names them.
    pub async fn list_commits(&self) -> Result<Vec<(CommitId, Commit)>> {
        Ok(self.scan_commits().await?.commits)
    }

    /// Every commit in the vault, oldest first, and the commit objects that
    /// could not be read, with the reason. One damaged object must not hide
    /// the whole history: only that snapshot is lost. A failure to list or
    /// to reach the store is still an error.
    pub async fn scan_commits(&self) -> Result<CommitScan> {
        use futures::StreamExt;
        let listing = self.0.backend.list("commits/").await?;
        let mut scan = CommitScan::default();
        let mut reads = futures::stream::iter(listing.into_iter().map(|obj| async move {
            let res = match commit::parse_commit_key(&obj.key) {
                None => Err(VaultError::corrupt(&obj.key, "its name is not a commit id")),
                Some(id) => self.read_commit(&id).await.map(|c| (id, c)),
            };
            (obj.key, res)
        }))
        .buffer_unordered(16);
        while let Some((key, res)) = reads.next().await {
            match res {
                Ok(c) => scan.commits.push(c),
                Err(e @ (VaultError::Corrupt { .. } | VaultError::Missing { .. })) => {
                    scan.damaged.push((key, e.to_string()))
                }
                Err(e) => return Err(e),
            }
        }
        scan.commits.sort_by(|a, b| a.1.time.cmp(&b.1.time).then(a.0.cmp(&b.0)));
        scan.damaged.sort();
        Ok(scan)
    }

    /// Raises this vault's memory of the refs seen (see the module doc) to
    /// at least `seen`: what this device remembered from earlier runs. Call
    /// it right after opening, before the first read of the refs.
    pub fn remember_refs_seen(&self, seen: &HashMap<DeviceId, u64>) {
        let mut g = match self.0.seen.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        for (dev, &seq) in seen {
            let e = g.entry(*dev).or_insert(0);
            *e = (*e).max(seq);
        }
    }

    /// The newest update of each device's ref this vault has seen, for the
    /// caller to remember for the next run.
    pub fn refs_seen(&self) -> HashMap<DeviceId, u64> {
        match self.0.seen.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Every device's ref, checked against the refs seen before (see
    /// [`Vault::check_rollback`]): a ref that went back in time or
    /// disappeared is an error, and nothing is chosen from such a read.
    /// What passes raises the memory.
    pub async fn read_refs(&self) -> Result<HashMap<DeviceId, RefRecord>> {
        let mut refs = self.read_refs_unchecked().await?;
        // A listing may lag behind a write (this device's own ref, just
        // written): ask for a ref seen before by name before calling it gone.
        let unlisted: Vec<DeviceId> = self.refs_seen().into_keys().filter(|d| !refs.contains_key(d)).collect();
        for dev in unlisted {
            if let Some(rec) = self.read_ref(&dev).await? {
                refs.insert(dev, rec);
            }
        }
        let updated = Vault::check_rollback(&refs, &self.refs_seen())?;
        self.remember_refs_seen(&updated);
        Ok(refs)
    }

    /// Every device's ref as the store has it now, without the rollback
    /// check (for `check`, which reports every problem it finds).
    pub async fn read_refs_unchecked(&self) -> Result<HashMap<DeviceId, RefRecord>> {
        let mut out = HashMap::new();
        for obj in self.0.backend.list("refs/").await? {
            if crate::gc::format::is_gc_key(&obj.key) {
                continue;
            }
            let dev = commit::parse_ref_key(&obj.key)
                .ok_or_else(|| VaultError::corrupt(&obj.key, "its name is not a device id"))?;
            let rec = self
                .read_ref(&dev)
                .await?
                .ok_or_else(|| VaultError::missing(&obj.key, "it was just listed"))?;
            out.insert(dev, rec);
        }
        Ok(out)
    }

    /// One device's ref, `None` when the store has none.
    async fn read_ref(&self, dev: &DeviceId) -> Result<Option<RefRecord>> {
        let key = commit::ref_key(dev);
        let bytes = match self.0.backend.get_whole(&key, crate::caps::REF_MAX).await {
            Ok(b) => b,
            Err(e) if e.kind() == BackendErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        RefRecord::open(&self.0.keys, dev, &bytes)
            .map(Some)
            .map_err(|e| VaultError::corrupt(&key, e.to_string()))
    }

    /// Polls the refs (docs/SYNC.md §1.1): one listing of `refs/`, then a
    /// read of only the refs whose fingerprint changed since `cache` saw
    /// them (see [`crate::poll`] for the exceptions), and of any ref seen
    /// before that the listing lacks (a listing may lag behind a write).
    /// Every ref read is authenticated, and the whole answer is held to the
    /// rollback check exactly as [`Vault::read_refs`] is: a ref that went
    /// back in its update number is refused ([`VaultError::Corrupt`]), and
    /// one seen before (by this vault or the cache) that is gone from the
    /// store is refused ([`VaultError::Missing`]). What passes raises the
    /// memory of refs seen and updates `cache`; a refused poll leaves the
    /// cache as it was, so the next poll refuses the same store again.
    pub async fn poll_refs(&self, cache: &mut RefCache) -> Result<RefPoll> {
        use futures::StreamExt;
        let (gc_listing, listing): (Vec<_>, Vec<_>) = self
            .0
            .backend
            .list("refs/")
            .await?
            .into_iter()
            .partition(|o| crate::gc::format::is_gc_key(&o.key));
        let listed_at = std::time::Instant::now();
        let gc_pending = self.learn_gc(&gc_listing).await?;
        let mut seen = self.refs_seen();
        for (dev, seq) in cache.seen() {
            let e = seen.entry(dev).or_insert(0);
            *e = (*e).max(seq);
        }
        let plan = cache.plan(&listing, &seen, listed_at)?;
        let to_read: Vec<(DeviceId, bool)> = plan
            .listed_to_read()
            .map(|d| (d, true))
            .chain(plan.read_by_name.iter().map(|d| (*d, false)))
            .collect();
        let reads = to_read.len();
        let mut answers = futures::stream::iter(
            to_read
                .into_iter()
                .map(|(dev, listed)| async move { (dev, listed, self.read_ref(&dev).await) }),
        )
        .buffer_unordered(16);
        let mut listed = HashMap::new();
        let mut by_name = HashMap::new();
        while let Some((dev, was_listed, res)) = answers.next().await {
            match (res?, was_listed) {
                (Some(rec), true) => {
                    listed.insert(dev, rec);
                }
                (None, true) => return Err(VaultError::missing(commit::ref_key(&dev), "it was just listed")),
                (Some(rec), false) => {
                    by_name.insert(dev, rec);
                }
                // Gone: the rollback check below says so if it was seen.
                (None, false) => {}
            }
        }
        drop(answers);
        let mut refs = plan.keep.clone();
        refs.extend(listed.iter().map(|(d, r)| (*d, r.clone())));
        refs.extend(by_name.iter().map(|(d, r)| (*d, r.clone())));
        let updated = Vault::check_rollback(&refs, &seen)?;
        self.remember_refs_seen(&updated);
        let changed = cache.update(plan, listed, by_name);
        Ok(RefPoll {
            refs,
            changed,
            reads,
            gc_pending: gc_pending.iter().map(|p| p.id).collect(),
        })
    }

    /// [`Vault::write_ref`] with its pre-publish re-check of the refs made
    /// by [`Vault::poll_refs`] through `cache` (docs/SYNC.md §1.4: a poll
    /// right before publishing), so it costs one listing and the changed
    /// refs instead of a read of every ref. The cache learns the new ref.
    ///
    /// The re-check is a poll like any other: it moves the cache on, so the
    /// other devices' refs it found moved are reported here, in
    /// [`Published::poll`], and never again by the caller's next poll. A
    /// caller that acts on `changed` must act on these too (a head that
    /// moved right before this publish is one more head to merge).
    pub async fn write_ref_with(
        &self,
        device: &DeviceId,
        commit: CommitId,
        seen: u64,
        cache: &mut RefCache,
    ) -> Result<Published> {
        let key = commit::ref_key(device);
        let poll = self.poll_refs(cache).await?;
        let checked_at = crate::gc::clock::boottime();
        let base = poll.refs.get(device).map(|r| r.commit);
        // S2: what this commit needs and only condemned packs hold is
        // copied out before the ref names the plans (docs/PRUNE.md §5).
        let mut rescue = self.rescue_for_publish(&commit, base.as_ref()).await?;
        let stored = poll.refs.get(device).map(|r| r.seq).unwrap_or(0);
        let remembered = self.refs_seen().get(device).copied().unwrap_or(0);
        let seq = stored.max(seen).max(remembered) + 1;
        let rec = RefRecord {
            commit,
            seq,
            time: crate::tree::Timestamp::now(),
            gc_seen: poll.gc_pending.clone(),
        };
        let sealed = rec.seal(&self.0.keys, device, self.0.config.version());
        put(&self.0.backend, &key, Bytes::from(sealed)).await?;
        self.remember_refs_seen(&HashMap::from([(*device, seq)]));
        cache.wrote(*device, rec);
        // S3: a publish that took longer than the window (the machine
        // slept) looks at the plans again.
        if crate::gc::clock::boottime().saturating_sub(checked_at) > self.prune_times().publish_window {
            self.load_gc().await?;
            let late = self.rescue_for_publish(&commit, base.as_ref()).await?;
            rescue.add(late);
        }
        Ok(Published { seq, poll, rescue })
    }

    /// When commit `id` reached the store, by the store's clock
    /// (docs/SYNC.md §3.4: what "newer" means), from one `stat` of
    /// `commits/<id>`. `None` when the store keeps no times. A commit that
    /// is not in the store is [`VaultError::Missing`].
    pub async fn commit_store_time(&self, id: &CommitId) -> Result<Option<std::time::SystemTime>> {
        let key = commit::commit_key(id);
        match self.0.backend.stat(&key).await? {
            Some(info) => Ok(info.modified),
            None => Err(VaultError::missing(key, "a ref or commit names it")),
        }
    }

    /// The newest snapshot, chosen from one read of the refs that passed
    /// the rollback check (see [`Vault::read_refs`] and
    /// [`Vault::head_from`]).
    pub async fn head(&self) -> Result<Option<(CommitId, Commit)>> {
        let refs = self.read_refs().await?;
        self.head_from(&refs).await
    }

    /// The newest snapshot of `refs`: of the commits they point at, those
    /// that no other one descends from, and of those the latest. `None` for
    /// a vault with no ref yet. Commits no ref reaches (a save interrupted
    /// before its ref) are ignored; a ref deleted on the server is caught by
    /// [`Vault::check_rollback`] on any device that has seen it.
    pub async fn head_from(&self, refs: &HashMap<DeviceId, RefRecord>) -> Result<Option<(CommitId, Commit)>> {
        let mut candidates: Vec<(CommitId, Commit)> = Vec::new();
        for rec in refs.values() {
            if !candidates.iter().any(|c| c.0 == rec.commit) {
                candidates.push((rec.commit, self.read_commit(&rec.commit).await?));
            }
        }
        if candidates.len() <= 1 {
            return Ok(candidates.pop());
        }
        // A ref whose commit is an ancestor of another ref's commit is
        // behind, whatever the clocks say: devices' clocks can disagree.
        let mut ancestors: std::collections::HashSet<CommitId> = std::collections::HashSet::new();
        let mut stack: Vec<CommitId> = candidates.iter().flat_map(|c| c.1.parents.iter().copied()).collect();
        while let Some(id) = stack.pop() {
            if !ancestors.insert(id) {
                continue;
            }
            match self.read_commit(&id).await {
                Ok(c) => stack.extend(c.parents),
                // A missing or damaged old commit does not hide the newer
                // ones; `check` reports it.
                Err(VaultError::Missing { .. } | VaultError::Corrupt { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        // Of the remaining (concurrent) heads, the newest; merging them is
        // the sync engine's job.
        Ok(candidates
            .into_iter()
            .filter(|c| !ancestors.contains(&c.0))
            .max_by(|a, b| (a.1.time, a.0).cmp(&(b.1.time, b.0))))
    }

    /// Detects refs that went back in time: `seen` holds, per device, the
    /// newest ref update this device has observed. A ref that is now missing
    /// or older means the store lost data or someone replaced objects, and
    /// reading on would silently show an older snapshot. Returns the updated
    /// map to remember.
    pub fn check_rollback(
        refs: &HashMap<DeviceId, RefRecord>,
        seen: &HashMap<DeviceId, u64>,
    ) -> Result<HashMap<DeviceId, u64>> {
        let mut updated = seen.clone();
        for (dev, &seq) in seen {
            match refs.get(dev) {
                None => {
                    return Err(VaultError::missing(
                        commit::ref_key(dev),
                        format!(
                            "this device has seen update {seq} of it before; it has been deleted from the store since"
                        ),
                    ))
                }
                Some(r) if r.seq < seq => {
                    return Err(VaultError::corrupt(
                        commit::ref_key(dev),
                        format!(
                            "it went back in time: this device has seen update {seq}, the store now has update {}",
                            r.seq
                        ),
                    ))
                }
                Some(_) => {}
            }
        }
        for (dev, r) in refs {
            let e = updated.entry(*dev).or_insert(0);
            *e = (*e).max(r.seq);
        }
        Ok(updated)
    }

    /// Publishes a commit object (after its packs, indexes and trees) and
    /// returns its id and the commit as a reader will see it. In a format
    /// version 3 vault the generation is computed here from the parents
    /// (1 + the largest of theirs; reading a parent only when this vault
    /// has not written or read it) and the name and indexes are kept; a
    /// version 1 or 2 vault gets a version 2 commit, without them.
    pub async fn write_commit(&self, new: NewCommit) -> Result<(CommitId, Commit)> {
        let layout = self.commit_layout();
        let generation = match layout {
            CommitLayout::V3 => self.generation_after(&new.parents).await?,
            CommitLayout::V2 => {
                self.refuse_v2_over_v3(&new.parents).await?;
                0
            }
        };
        let v3 = layout == CommitLayout::V3;
        let commit = Commit {
            root: new.root,
            parents: new.parents,
            device: new.device,
            time: new.time,
            message: new.message,
            files: new.files,
            bytes: new.bytes,
            device_name: if v3 {
                commit::cut_device_name(&new.device_name).to_string()
            } else {
                String::new()
            },
            generation,
            indexes: if v3 { new.indexes } else { Vec::new() },
        };
        let id = self.put_commit(&commit, layout).await?;
        Ok((id, commit))
    }

    /// Refuses a version 2 commit on a parent that has a generation (a
    /// version 3 commit): every reader would call the new commit's
    /// history damaged (generation 0 under a numbered parent), and merges
    /// across it would fall back to the union (docs/SYNC.md §2.2). It
    /// happens when this vault was opened before another device upgraded
    /// it ([`VaultError::UpgradedElsewhere`]: open it again), or when the
    /// store answers with an old copy of `config` that a version 3 commit
    /// already outdates ([`VaultError::Corrupt`], naming `config`).
    async fn refuse_v2_over_v3(&self, parents: &[CommitId]) -> Result<()> {
        let mut numbered = None;
        for p in parents {
            let known = self.0.generations.read().ok().and_then(|g| g.get(p).copied());
            let g = match known {
                Some(g) => g,
                None => self.read_commit(p).await?.generation,
            };
            if g > 0 {
                numbered = Some(*p);
                break;
            }
        }
        let Some(parent) = numbered else { return Ok(()) };
        let opened = self.0.config.version();
        let now = read_config(&self.0.backend).await?.version();
        if now > opened {
            return Err(VaultError::UpgradedElsewhere { opened, now });
        }
        Err(VaultError::corrupt(
            CONFIG_KEY,
            format!(
                "it says format version {now}, but commit {parent}, which it must be older than, was written in \
                 version 3: the store answered with an old copy of the vault's configuration"
            ),
        ))
    }

    /// Seals and stores `commit` as it is, under a new id.
    async fn put_commit(&self, commit: &Commit, layout: CommitLayout) -> Result<CommitId> {
        let id = Id::random();
        let sealed = commit.seal(&self.0.keys, &id, layout);
        put(&self.0.backend, &commit::commit_key(&id), Bytes::from(sealed)).await?;
        self.remember_generation(&id, commit.generation);
        Ok(id)
    }

    /// Stores `commit` with whatever generation it says, so tests can build
    /// the damaged histories `write_commit` never writes.
    #[cfg(test)]
    pub(crate) async fn put_commit_as_is(&self, commit: &Commit, layout: CommitLayout) -> Result<CommitId> {
        self.put_commit(commit, layout).await
    }

    /// Points this device's ref at `commit`: the last step of a save.
    ///
    /// Right before publishing, the refs are read once more and checked
    /// against every ref seen so far: a commit is never published while the
    /// store answers with refs older than those the save started from (it
    /// may have been built on a replayed head, and publishing it would make
    /// the rollback permanent). `seen` is the newest update number of this
    /// ref the device has seen; the new number is above both it and the
    /// stored one, so the counter never goes back. Returns the ref's new
    /// update number.
    pub async fn write_ref(&self, device: &DeviceId, commit: CommitId, seen: u64) -> Result<u64> {
        // A new cache reads every ref, as `read_refs` does.
        Ok(self
            .write_ref_with(device, commit, seen, &mut RefCache::default())
            .await?
            .seq)
    }

    /// Writes one index object listing `packs`.
    pub(crate) async fn write_index(&self, packs: Vec<index::IndexPack>) -> Result<Id> {
        let id = Id::random();
        let sealed = IndexFile { packs }.seal_for(&self.0.keys, &id, self.0.config.version());
        put(&self.0.backend, &index::index_key(&id), Bytes::from(sealed)).await?;
        Ok(id)
    }

    pub(crate) fn chunker_seed(&self) -> u64 {
        self.0.keys.chunker_seed
    }
}

/// What [`Vault::scan_commits`] found.
#[derive(Debug, Default)]
pub struct CommitScan {
    /// The readable commits, oldest first.
    pub commits: Vec<(CommitId, Commit)>,
    /// Commit objects that could not be read: key and reason.
    pub damaged: Vec<(String, String)>,
}

/// Reads `range` of an object. A store that ignores `Range` answers with
/// the whole object (HTTP 200 and the full body; OpenDAL passes it on):
/// a body longer than the range asked for is taken as the whole object and
/// cut at the range, so such a store works, only slower. A shorter body is
/// returned as it is, for the caller's length check.
pub(crate) async fn get_range(
    backend: &DynBackend,
    key: &str,
    range: std::ops::Range<u64>,
) -> std::result::Result<Bytes, nimbus_backend::BackendError> {
    let bytes = backend.get(key, Some(range.clone())).await?;
    let wanted = range.end.saturating_sub(range.start);
    let len = bytes.len() as u64;
    if len <= wanted {
        return Ok(bytes);
    }
    Ok(bytes.slice(range.start.min(len) as usize..range.end.min(len) as usize))
}

/// Writes an object. Retrying transient failures is the backend's job
/// (every store opened by name is wrapped in `RetryingBackend`): one retry
/// layer, so a failing store costs one backoff schedule, not a product of two.
pub(crate) async fn put(backend: &DynBackend, key: &str, bytes: Bytes) -> Result<()> {
    Ok(backend.put(key, bytes).await?)
}

/// How the master key is to be unlocked.
pub enum Unlock {
    Password(Vec<u8>),
    Recovery(RecoveryKey),
}

/// Argon2 takes ~0.5 s of CPU: keep it off the async threads.
async fn unlock_blocking(config: Config, how: Unlock) -> Result<MasterKey> {
    tokio::task::spawn_blocking(move || match how {
        Unlock::Password(pw) => {
            let pw = zeroize::Zeroizing::new(pw);
            config.unlock_with_password(&pw)
        }
        Unlock::Recovery(rk) => config.unlock_with_recovery(&rk),
    })
    .await
    .map_err(|e| VaultError::invalid_input(format!("unlocking was interrupted: {e}")))?
}

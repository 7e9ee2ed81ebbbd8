//! What the vault believes about the store, against a store that lies in
//! one precise way: an old ref served to one read (rollback), an index
//! upload that fails while its packs went through, a junk commit object, a
//! server that ignores `Range`, a listing of `index/` that lags and an
//! index object that cannot be read for a moment.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use bytes::Bytes;
use nimbus_backend::{Backend, DynBackend, FaultConfig, FaultyBackend, MemoryBackend};
use nimbus_vault::{BlobKind, CommitId, DeviceId, KdfParams, NewCommit, Saver, Timestamp, Tree, Vault, VaultParams};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

async fn new_vault() -> (Arc<MemoryBackend>, Vault) {
    let mem = Arc::new(MemoryBackend::new());
    let params = VaultParams {
        pack_target_size: 64 << 10,
        ..VaultParams::default()
    };
    let kdf = KdfParams::minimum();
    let (vault, _) = Vault::create(mem.clone(), b"pw", params, kdf).await.unwrap();
    (mem, vault)
}

fn faulty(mem: &Arc<MemoryBackend>) -> Arc<FaultyBackend<DynBackend>> {
    Arc::new(FaultyBackend::new(mem.clone() as DynBackend, FaultConfig::default()))
}

/// Publishes a commit of an empty root on `parents` and points `device`'s
/// ref at it.
async fn commit(vault: &Vault, device: DeviceId, parents: Vec<CommitId>, message: &str) -> CommitId {
    let saver = Saver::new(vault);
    let root = saver.save_blob(BlobKind::Tree, Tree::default().encode()).await.unwrap();
    saver.finish().await.unwrap();
    let c = NewCommit {
        root,
        parents,
        device,
        device_name: String::new(),
        time: Timestamp::now(),
        message: message.into(),
        files: 0,
        bytes: 0,
        indexes: vec![],
    };
    let (id, _) = vault.write_commit(c).await.unwrap();
    vault.write_ref(&device, id, 0).await.unwrap();
    id
}

/// A vault where `device` made two commits; returns them and the bytes of
/// its ref as it was after the first.
async fn two_commits() -> (Arc<MemoryBackend>, DeviceId, CommitId, CommitId, Bytes) {
    let (mem, vault) = new_vault().await;
    let device = DeviceId::random();
    let first = commit(&vault, device, vec![], "first").await;
    let old_ref = mem.get(&format!("refs/{}", device.to_hex()), None).await.unwrap();
    let second = commit(&vault, device, vec![first], "second").await;
    (mem, device, first, second, old_ref)
}

/// Review H1: the refs were checked on one read and the head chosen from a
/// second; a store that served the old ref only to the second read had the
/// old snapshot shown (and `put` built on it). Every read of the refs is
/// now held to what was seen before, so the head can only come from refs
/// that passed the check.
#[test]
fn an_old_ref_served_to_the_second_read_never_becomes_the_head() {
    rt().block_on(async {
        let (mem, device, _first, second, old_ref) = two_commits().await;
        let key = format!("refs/{}", device.to_hex());
        let store = faulty(&mem);
        let vault = Vault::open(store.clone(), b"pw").await.unwrap();
        store.replay_on_get(&key, 2, old_ref.clone());
        // The check at open (`nimbus ls`, `put`, the service).
        vault.read_refs().await.unwrap();
        // The head (`at::resolve`, `put`, `Fs::load`).
        match vault.head().await {
            Ok(h) => panic!("the head came from the replayed ref: {:?}", h.map(|h| h.1.message)),
            Err(e) => assert!(e.to_string().contains("went back in time"), "{e}"),
        }
        // Honest again: the newest one.
        assert_eq!(vault.head().await.unwrap().unwrap().0, second);
    });
}

/// Review H1, publishing: right before a ref is written, the refs are read
/// and checked once more; an old ref served to that read stops the save
/// instead of publishing a commit that may stand on a replayed head.
#[test]
fn the_refs_are_checked_again_right_before_publishing() {
    rt().block_on(async {
        let (mem, device, _first, second, old_ref) = two_commits().await;
        let key = format!("refs/{}", device.to_hex());
        let store = faulty(&mem);
        let vault = Vault::open(store.clone(), b"pw").await.unwrap();
        let (head, _) = vault.head().await.unwrap().unwrap();
        assert_eq!(head, second);
        let stored = mem.get(&key, None).await.unwrap();
        let third = commit_object(&vault, device, head).await;
        store.replay_on_get(&key, 1, old_ref);
        let err = vault.write_ref(&device, third, 0).await.unwrap_err();
        assert!(err.to_string().contains("went back in time"), "{err}");
        assert_eq!(mem.get(&key, None).await.unwrap(), stored, "nothing was published");
        assert_eq!(vault.write_ref(&device, third, 0).await.unwrap(), 3);
    });
}

async fn commit_object(vault: &Vault, device: DeviceId, parent: CommitId) -> CommitId {
    let (_, head) = vault.head().await.unwrap().unwrap();
    vault
        .write_commit(NewCommit {
            root: head.root,
            parents: vec![parent],
            device,
            device_name: head.device_name,
            time: Timestamp::now(),
            message: "third".into(),
            files: head.files,
            bytes: head.bytes,
            indexes: vec![],
        })
        .await
        .unwrap()
        .0
}

/// Review H2: blobs count as stored (for deduplication) only once an
/// index object naming them is in the store. A save whose index upload
/// fails fails, and the next save of the same `Vault` uploads the blobs
/// again; another reader finds every blob of the second save.
#[test]
fn blobs_count_as_stored_only_once_an_index_lists_them() {
    rt().block_on(async {
        let (mem, _) = new_vault().await;
        let store = faulty(&mem);
        let vault = Vault::open(store.clone(), b"pw").await.unwrap();
        let data: Vec<Vec<u8>> = (0..5u32)
            .map(|i| format!("blob {i} ").repeat(5_000).into_bytes())
            .collect();

        store.set_fail_puts_under(Some("index/"));
        let saver = Saver::new(&vault);
        let mut ids = Vec::new();
        for d in &data {
            ids.push(saver.save_blob(BlobKind::Data, d.clone()).await.unwrap());
        }
        assert!(saver.finish().await.is_err(), "the index upload failed");
        assert!(!mem.list("packs/").await.unwrap().is_empty(), "the packs went through");
        for id in &ids {
            assert!(!vault.has_blob(id), "a blob no index lists counts as stored");
        }

        store.set_fail_puts_under(None);
        let saver = Saver::new(&vault);
        for d in &data {
            saver.save_blob(BlobKind::Data, d.clone()).await.unwrap();
        }
        let stats = saver.finish().await.unwrap();
        assert_eq!(stats.new_blobs, 5, "{stats:?}");

        let other = Vault::open(mem.clone(), b"pw").await.unwrap();
        for (id, d) in ids.iter().zip(&data) {
            assert_eq!(&other.read_blob(BlobKind::Data, id).await.unwrap(), d);
        }
    });
}

/// Review L6: one junk commit object does not hide the history, and a
/// damaged ancestor does not stop the head from being found.
#[test]
fn a_damaged_commit_object_is_skipped_and_named() {
    rt().block_on(async {
        let (mem, _device, first, second, _) = two_commits().await;
        let junk = format!("commits/{}", "ef".repeat(32));
        mem.put(&junk, Bytes::from_static(b"junk")).await.unwrap();
        let vault = Vault::open(mem.clone(), b"pw").await.unwrap();
        let scan = vault.scan_commits().await.unwrap();
        let ids: Vec<CommitId> = scan.commits.iter().map(|c| c.0).collect();
        assert_eq!(ids, vec![first, second]);
        assert_eq!(scan.damaged.len(), 1);
        assert_eq!(scan.damaged[0].0, junk);
        assert!(scan.damaged[0].1.contains("damaged"), "{}", scan.damaged[0].1);

        // Another device's head descends from the first commit, now damaged.
        mem.put(&format!("commits/{}", first.to_hex()), Bytes::from_static(b"damaged"))
            .await
            .unwrap();
        let other = DeviceId::random();
        commit(&vault, other, vec![first], "other").await;
        assert_eq!(vault.head().await.unwrap().unwrap().1.message, "other");
    });
}

/// Review L7: a server that ignores `Range` and answers with the whole
/// object works, only slower.
#[test]
fn a_store_that_ignores_ranges_still_reads() {
    rt().block_on(async {
        let (mem, vault) = new_vault().await;
        let saver = Saver::new(&vault);
        let data: Vec<Vec<u8>> = (0..8u32)
            .map(|i| format!("{i}-").repeat(3_000 + 500 * i as usize).into_bytes())
            .collect();
        let mut ids = Vec::new();
        for d in &data {
            ids.push(saver.save_blob(BlobKind::Data, d.clone()).await.unwrap());
        }
        saver.finish().await.unwrap();

        let store = faulty(&mem);
        store.set_ignore_ranges(true);
        let vault = Vault::open(store.clone(), b"pw").await.unwrap();
        for (id, d) in ids.iter().zip(&data) {
            assert_eq!(&vault.read_blob(BlobKind::Data, id).await.unwrap(), d);
        }
        let locs: Vec<_> = ids.iter().map(|id| (*id, vault.locate(id).unwrap())).collect();
        let pack = locs[3].1.pack;
        let in_pack: Vec<_> = locs.iter().filter(|l| l.1.pack == pack).copied().collect();
        let got = vault.read_blobs_in_pack(pack, &in_pack).await.unwrap();
        assert_eq!(got.len(), in_pack.len());
        let report = nimbus_vault::check::check(&vault, false, &|_| {}).await.unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
    });
}

/// A store whose `index/` objects a listing leaves out (`hide`), or whose
/// reads of them fail as when the network drops (`fail`).
struct IndexTrouble {
    inner: Arc<MemoryBackend>,
    hide: std::sync::atomic::AtomicBool,
    fail: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl Backend for IndexTrouble {
    async fn get(&self, key: &str, range: Option<std::ops::Range<u64>>) -> Result<Bytes, nimbus_backend::BackendError> {
        if key.starts_with("index/") && self.fail.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(nimbus_backend::BackendError::unavailable("the network dropped"));
        }
        self.inner.get(key, range).await
    }
    async fn put(&self, key: &str, data: Bytes) -> Result<(), nimbus_backend::BackendError> {
        self.inner.put(key, data).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<nimbus_backend::ObjectInfo>, nimbus_backend::BackendError> {
        let hide = self.hide.load(std::sync::atomic::Ordering::SeqCst);
        let all = self.inner.list(prefix).await?;
        Ok(all
            .into_iter()
            .filter(|o| !(hide && o.key.starts_with("index/")))
            .collect())
    }
    async fn delete(&self, key: &str) -> Result<(), nimbus_backend::BackendError> {
        self.inner.delete(key).await
    }
    async fn stat(&self, key: &str) -> Result<Option<nimbus_backend::ObjectInfo>, nimbus_backend::BackendError> {
        self.inner.stat(key).await
    }
    fn describe(&self) -> String {
        "a store with trouble in index/".into()
    }
}

/// Loading the index again never forgets a pack and reads only the index
/// objects it has not loaded: a listing that leaves the newest index
/// objects out (a lagging store) or a read of one that fails for a moment
/// made a drive's blobs read as missing, the failed read even naming the
/// index object damaged (found by the simulation of docs/SYNC.md §6.2).
/// A blob the index does not know loads what was written since.
#[test]
fn loading_the_index_again_forgets_nothing() {
    rt().block_on(async {
        let (mem, _) = new_vault().await;
        let store = Arc::new(IndexTrouble {
            inner: mem.clone(),
            hide: false.into(),
            fail: false.into(),
        });
        let writer = Vault::open(store.clone(), b"pw").await.unwrap();
        let save = |data: &'static [u8]| {
            let writer = writer.clone();
            async move {
                let saver = Saver::new(&writer);
                let id = saver.save_blob(BlobKind::Data, data.to_vec()).await.unwrap();
                saver.finish().await.unwrap();
                id
            }
        };
        let first = save(b"first").await;
        let reader = Vault::open(store.clone(), b"pw").await.unwrap();
        assert!(reader.has_blob(&first));
        let second = save(b"second").await;

        store.fail.store(true, std::sync::atomic::Ordering::SeqCst);
        let err = reader.load_index().await.unwrap_err();
        assert!(err.to_string().contains("network"), "{err}");
        assert!(reader.damaged_indexes().is_empty(), "{:?}", reader.damaged_indexes());
        assert!(reader.has_blob(&first), "a failed read made the index forget a pack");
        store.fail.store(false, std::sync::atomic::Ordering::SeqCst);

        store.hide.store(true, std::sync::atomic::Ordering::SeqCst);
        reader.load_index().await.unwrap();
        assert!(
            reader.has_blob(&first),
            "a lagging listing made the index forget a pack"
        );
        assert!(!reader.has_blob(&second), "hidden by the listing");
        let missing = reader.locate_or_load(&second).await.unwrap_err();
        assert!(missing.to_string().contains("no index object lists it"), "{missing}");
        store.hide.store(false, std::sync::atomic::Ordering::SeqCst);
        reader.locate_or_load(&second).await.unwrap();
        assert_eq!(reader.read_blob(BlobKind::Data, &second).await.unwrap(), b"second");
        assert_eq!(reader.read_blob(BlobKind::Data, &first).await.unwrap(), b"first");
    });
}

//! The vault over the in-memory and fault-injecting backends: round trips
//! checked against a reference model, retries of transient upload errors,
//! and damaged reads that fail instead of returning wrong bytes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::Arc;

use nimbus_backend::{Backend, DynBackend, FaultConfig, FaultyBackend, MemoryBackend, RetryPolicy, RetryingBackend};
use nimbus_vault::{BlobKind, KdfParams, Saver, Vault, VaultError, VaultParams};
use proptest::prelude::*;

fn fast_kdf() -> KdfParams {
    KdfParams::minimum()
}

fn small_params() -> VaultParams {
    VaultParams {
        pack_target_size: 64 << 10,
        ..VaultParams::default()
    }
}

/// A new vault (small packs, cheap KDF, password `pw`) in memory.
async fn new_vault() -> (Arc<MemoryBackend>, Vault) {
    let mem = Arc::new(MemoryBackend::new());
    let (vault, _) = Vault::create(mem.clone(), b"pw", small_params(), fast_kdf())
        .await
        .unwrap();
    (mem, vault)
}

/// A fault-injecting view of `mem`, seeded.
fn faulty_over(mem: &Arc<MemoryBackend>, seed: u64) -> Arc<FaultyBackend<DynBackend>> {
    Arc::new(FaultyBackend::new(
        mem.clone() as DynBackend,
        FaultConfig {
            seed,
            ..FaultConfig::default()
        },
    ))
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Any sequence of saves (with repeats) reads back exactly, and the
    /// saver's counts match a model of which contents it has seen.
    #[test]
    fn saves_match_reference_model(blobs in proptest::collection::vec((0u8..6, 0usize..40_000), 1..40)) {
        rt().block_on(async {
            let backend: DynBackend = Arc::new(MemoryBackend::new());
            let (vault, _) = Vault::create(backend.clone(), b"pw", small_params(), fast_kdf()).await.unwrap();
            let saver = Saver::new(&vault);
            let mut model: HashMap<Vec<u8>, nimbus_vault::BlobId> = HashMap::new();
            let mut ids = Vec::new();
            for (seed, len) in &blobs {
                let data: Vec<u8> = (0..*len).map(|i| (i as u8).wrapping_mul(*seed).wrapping_add(*seed)).collect();
                let id = saver.save_blob(BlobKind::Data, data.clone()).await.unwrap();
                if let Some(prev) = model.get(&data) { prop_assert_eq!(*prev, id); }
                model.insert(data.clone(), id);
                ids.push((id, data));
            }
            let stats = saver.finish().await.unwrap();
            prop_assert_eq!(stats.new_blobs as usize, model.len());
            prop_assert_eq!((stats.new_blobs + stats.duplicate_blobs) as usize, blobs.len());
            // A fresh open (index from the store) reads everything back.
            let reopened = Vault::open(backend, b"pw").await.unwrap();
            for (id, data) in &ids {
                prop_assert_eq!(&reopened.read_blob(BlobKind::Data, id).await.unwrap(), data);
            }
            Ok(())
        })?;
    }
}

#[test]
fn transient_upload_errors_are_retried() {
    rt().block_on(async {
        let (mem, vault) = new_vault().await;
        drop(vault);
        let faulty = faulty_over(&mem, 5);
        // The one retry layer: every store opened by name is a
        // RetryingBackend (the vault itself does not retry).
        let policy = RetryPolicy {
            attempts: 6,
            first_delay: std::time::Duration::from_millis(1),
            max_delay: std::time::Duration::from_millis(5),
        };
        let store: DynBackend = Arc::new(RetryingBackend::new(faulty.clone(), policy));
        let vault = Vault::open(store, b"pw").await.unwrap();
        faulty.set_error_rate(0.2);
        let saver = Saver::new(&vault);
        let mut ids = Vec::new();
        for i in 0..50u32 {
            let mut data = vec![0u8; 20_000];
            blake3::Hasher::new()
                .update(&i.to_le_bytes())
                .finalize_xof()
                .fill(&mut data);
            ids.push((saver.save_blob(BlobKind::Data, data.clone()).await.unwrap(), data));
        }
        let stats = saver.finish().await.unwrap();
        faulty.set_error_rate(0.0);
        assert!(stats.packs > 5, "{stats:?}");
        assert!(faulty.stats().injected_errors > 0);
        let v = Vault::open(mem.clone(), b"pw").await.unwrap();
        for (id, data) in &ids {
            assert_eq!(&v.read_blob(BlobKind::Data, id).await.unwrap(), data);
        }
    });
}

#[test]
fn offline_store_fails_the_save_and_claims_nothing() {
    rt().block_on(async {
        let mem = Arc::new(MemoryBackend::new());
        Vault::create(mem.clone(), b"pw", small_params(), fast_kdf())
            .await
            .unwrap();
        let faulty = faulty_over(&mem, 0);
        let vault = Vault::open(faulty.clone(), b"pw").await.unwrap();
        faulty.set_offline(true);
        let saver = Saver::new(&vault);
        let mut failed = false;
        for i in 0..20u32 {
            let data: Vec<u8> = (0..30_000u32).map(|j| (j ^ i) as u8).collect();
            if saver.save_blob(BlobKind::Data, data).await.is_err() {
                failed = true;
                break;
            }
        }
        let finished = saver.finish().await;
        assert!(failed || finished.is_err(), "a save to an offline store succeeded");
        let msg = finished.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(msg.is_empty() || msg.contains("uploading to the store failed"), "{msg}");
        faulty.set_offline(false);
        assert!(
            mem.list("index/").await.unwrap().is_empty(),
            "an index was written for failed uploads"
        );
    });
}

#[test]
fn truncated_and_failing_reads_never_return_wrong_bytes() {
    rt().block_on(async {
        let (mem, vault) = new_vault().await;
        let saver = Saver::new(&vault);
        let data: Vec<u8> = (0..50_000u32).map(|j| (j % 251) as u8).collect();
        let id = saver.save_blob(BlobKind::Data, data.clone()).await.unwrap();
        saver.finish().await.unwrap();
        let faulty = faulty_over(&mem, 9);
        let v = Vault::open(faulty.clone(), b"pw").await.unwrap();
        faulty.set_truncate_reads(1.0);
        match v.read_blob(BlobKind::Data, &id).await {
            Err(VaultError::Corrupt { object, what }) => {
                assert!(object.starts_with("packs/"), "{object}");
                assert!(what.contains("truncated"), "{what}");
            }
            other => panic!("expected a truncation error, got {other:?}"),
        }
        faulty.set_truncate_reads(0.0);
        faulty.set_offline(true);
        assert!(matches!(
            v.read_blob(BlobKind::Data, &id).await,
            Err(VaultError::Backend(_))
        ));
        faulty.set_offline(false);
        assert_eq!(v.read_blob(BlobKind::Data, &id).await.unwrap(), data);
        // Asking for the blob as the wrong kind is refused too.
        assert!(v.read_blob(BlobKind::Tree, &id).await.is_err());
    });
}

/// A save that dies after some packs are uploaded (connection lost, process
/// killed) leaves the vault consistent: no index claims the lost packs, the
/// earlier snapshot still reads, and `check` calls the leftovers harmless.
#[test]
fn interrupted_save_leaves_a_consistent_vault() {
    rt().block_on(async {
        let (mem, vault) = new_vault().await;
        // A first, complete save with a commit and ref.
        let saver = Saver::new(&vault);
        let first = saver
            .save_blob(BlobKind::Data, b"first snapshot content".to_vec())
            .await
            .unwrap();
        let tree = nimbus_vault::Tree {
            entries: vec![nimbus_vault::Entry {
                kind: nimbus_vault::EntryKind::File,
                size: 22,
                content: vec![first],
                ..nimbus_vault::Entry::new_dir(b"f".to_vec(), nimbus_vault::Timestamp::now())
            }],
        };
        let root = saver.save_blob(BlobKind::Tree, tree.encode()).await.unwrap();
        saver.finish().await.unwrap();
        let device = nimbus_vault::ShortId::random();
        let commit = nimbus_vault::NewCommit {
            root,
            parents: vec![],
            device,
            device_name: String::new(),
            time: nimbus_vault::Timestamp::now(),
            message: "first".into(),
            files: 1,
            bytes: 22,
            indexes: vec![],
        };
        let (cid, _) = vault.write_commit(commit).await.unwrap();
        vault.write_ref(&device, cid, 0).await.unwrap();

        // A second save whose connection drops after two packs.
        let faulty = faulty_over(&mem, 0);
        let v2 = Vault::open(faulty.clone(), b"pw").await.unwrap();
        faulty.set_fail_puts_after(Some(2));
        let saver = Saver::new(&v2);
        for i in 0..20u32 {
            let mut data = vec![0u8; 40_000];
            blake3::Hasher::new()
                .update(&i.to_le_bytes())
                .finalize_xof()
                .fill(&mut data);
            if saver.save_blob(BlobKind::Data, data).await.is_err() {
                break;
            }
        }
        assert!(saver.finish().await.is_err());

        let v3 = Vault::open(mem.clone(), b"pw").await.unwrap();
        let (head, _) = v3.head().await.unwrap().unwrap();
        assert_eq!(head, cid);
        assert_eq!(
            v3.read_blob(BlobKind::Data, &first).await.unwrap(),
            b"first snapshot content"
        );
        let report = nimbus_vault::check::check(&v3, true, &|_| {}).await.unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert!(
            report.warnings.iter().any(|w| w.message.contains("interrupted save")),
            "the orphaned packs should be reported as harmless: {:?}",
            report.warnings
        );
    });
}

/// With an index written after every pack, a save cut short keeps what it
/// uploaded: the next save of the same data finds those blobs and skips them.
#[test]
fn interrupted_save_resumes_by_deduplication() {
    rt().block_on(async {
        let (mem, _) = new_vault().await;
        let faulty = faulty_over(&mem, 1);
        let v = Vault::open(faulty.clone(), b"pw").await.unwrap();
        let blobs: Vec<Vec<u8>> = (0..30u32)
            .map(|i| {
                let mut data = vec![0u8; 40_000];
                blake3::Hasher::new()
                    .update(&i.to_le_bytes())
                    .finalize_xof()
                    .fill(&mut data);
                data
            })
            .collect();
        faulty.set_fail_puts_after(Some(6));
        let saver = Saver::with_index_every(&v, 1);
        for b in &blobs {
            if saver.save_blob(BlobKind::Data, b.clone()).await.is_err() {
                break;
            }
        }
        assert!(saver.finish().await.is_err());
        assert!(
            !mem.list("index/").await.unwrap().is_empty(),
            "no index survived the interruption"
        );

        let v = Vault::open(mem.clone(), b"pw").await.unwrap();
        let saver = Saver::new(&v);
        for b in &blobs {
            saver.save_blob(BlobKind::Data, b.clone()).await.unwrap();
        }
        let stats = saver.finish().await.unwrap();
        assert!(
            stats.duplicate_blobs > 0,
            "nothing was kept from the interrupted save: {stats:?}"
        );
        assert_eq!(stats.new_blobs + stats.duplicate_blobs, 30);
    });
}

fn commit_on(
    root: nimbus_vault::BlobId,
    parents: Vec<nimbus_vault::CommitId>,
    device: nimbus_vault::DeviceId,
    secs: i64,
) -> nimbus_vault::NewCommit {
    nimbus_vault::NewCommit {
        root,
        parents,
        device,
        device_name: String::new(),
        time: nimbus_vault::Timestamp { secs, nanos: 0 },
        message: String::new(),
        files: 0,
        bytes: 0,
        indexes: vec![],
    }
}

/// The newest snapshot follows the commit graph, not the devices' clocks;
/// a commit no ref reaches (a save stopped before its ref) is ignored, not
/// an error; ref update numbers never go back.
#[test]
fn head_follows_ancestry_and_ignores_unreferenced_commits() {
    rt().block_on(async {
        let (_mem, vault) = new_vault().await;
        let saver = Saver::new(&vault);
        let root = saver
            .save_blob(BlobKind::Tree, nimbus_vault::Tree::default().encode())
            .await
            .unwrap();
        saver.finish().await.unwrap();
        let (a, b) = (nimbus_vault::ShortId::random(), nimbus_vault::ShortId::random());

        // A first save interrupted between its commit and its ref.
        vault.write_commit(commit_on(root, vec![], a, 1_000)).await.unwrap();
        assert!(vault.head().await.unwrap().is_none());

        // Device A's clock is ten minutes fast; B builds on A's commit later.
        let ca = vault.write_commit(commit_on(root, vec![], a, 10_600)).await.unwrap().0;
        assert_eq!(vault.write_ref(&a, ca, 0).await.unwrap(), 1);
        let cb = vault
            .write_commit(commit_on(root, vec![ca], b, 10_000))
            .await
            .unwrap()
            .0;
        vault.write_ref(&b, cb, 0).await.unwrap();
        assert_eq!(
            vault.head().await.unwrap().unwrap().0,
            cb,
            "the clock won over the commit graph"
        );

        // The counter continues from what this device has seen, even above the store's.
        assert_eq!(vault.write_ref(&a, ca, 7).await.unwrap(), 8);
        assert_eq!(vault.write_ref(&a, ca, 0).await.unwrap(), 9);
    });
}

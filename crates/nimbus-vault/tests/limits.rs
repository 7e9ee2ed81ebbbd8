//! What a hostile store can make a client spend (M3) and learn from sizes
//! (M5): objects read whole are capped while they are read, and packs are
//! padded.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use bytes::Bytes;
use nimbus_backend::{Backend, DynBackend, MemoryBackend};
use nimbus_vault::{caps, BlobKind, CommitId, DeviceId, KdfParams, Saver, Vault, VaultParams};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

async fn new_vault() -> (Arc<MemoryBackend>, Vault) {
    let mem = Arc::new(MemoryBackend::new());
    let (vault, _) = Vault::create(mem.clone(), b"pw", VaultParams::default(), KdfParams::minimum())
        .await
        .unwrap();
    (mem, vault)
}

fn junk(len: u64) -> Bytes {
    Bytes::from(vec![0x5a; len as usize])
}

/// The review stored a 512 MiB `refs/` object and a 300 MiB `config`:
/// `nimbus ls` read them whole (1.5 GiB of memory). Each kind read whole now
/// has a cap, checked while reading, and the error names the object.
#[test]
fn oversized_objects_are_refused_by_name() {
    rt().block_on(async {
        let (mem, vault) = new_vault().await;
        let backend: DynBackend = mem.clone();

        let ref_key = format!("refs/{}", DeviceId::random().to_hex());
        mem.put(&ref_key, junk(caps::REF_MAX + 1)).await.unwrap();
        let err = vault.read_refs().await.unwrap_err().to_string();
        assert!(err.contains(&ref_key) && err.contains("larger than"), "{err}");
        mem.delete(&ref_key).await.unwrap();

        let commit = CommitId::random();
        let commit_key = format!("commits/{}", commit.to_hex());
        mem.put(&commit_key, junk(caps::COMMIT_MAX + 1)).await.unwrap();
        let err = vault.read_commit(&commit).await.unwrap_err().to_string();
        assert!(err.contains(&commit_key) && err.contains("larger than"), "{err}");

        let index_key = format!("index/{}", CommitId::random().to_hex());
        mem.put(&index_key, junk(caps::INDEX_MAX + 1)).await.unwrap();
        let reopened = Vault::open(backend.clone(), b"pw").await.unwrap();
        let damaged = reopened.damaged_indexes();
        assert_eq!(damaged.len(), 1);
        assert!(
            damaged[0].0 == index_key && damaged[0].1.contains("larger than"),
            "{damaged:?}"
        );
        mem.delete(&index_key).await.unwrap();

        mem.put("config", junk(caps::CONFIG_MAX + 1)).await.unwrap();
        let err = nimbus_vault::read_config(&backend).await.unwrap_err().to_string();
        assert!(err.contains("`config`") && err.contains("larger than"), "{err}");
    });
}

/// Objects at their cap still read: the caps are not off by one.
#[test]
fn get_whole_takes_exactly_the_cap() {
    rt().block_on(async {
        let mem = MemoryBackend::new();
        mem.put("a", junk(100)).await.unwrap();
        assert_eq!(mem.get_whole("a", 100).await.unwrap().len(), 100);
        let err = mem.get_whole("a", 99).await.unwrap_err();
        assert_eq!(err.kind(), nimbus_backend::BackendErrorKind::TooLarge);
    });
}

/// M5: one small file saved alone made a pack of its size + 101 bytes, and
/// a tree pack beside it whose size grew with its folder. In a version 2
/// vault a small save is one pack, of the same size whatever the file, with
/// the trees inside it.
#[test]
fn small_saves_all_look_alike() {
    rt().block_on(async {
        let mut sizes = Vec::new();
        for len in [1usize, 1000, 1001, 3000] {
            let (mem, vault) = new_vault().await;
            let saver = Saver::new(&vault);
            let data: Vec<u8> = (0..len).map(|i| (i * 7919 % 251) as u8).collect();
            saver.save_blob(BlobKind::Data, data).await.unwrap();
            saver.save_blob(BlobKind::Tree, vec![len as u8; 40]).await.unwrap();
            saver.finish().await.unwrap();
            let mut packs: Vec<u64> = mem.list("packs/").await.unwrap().iter().map(|o| o.size).collect();
            packs.sort();
            sizes.push(packs);
        }
        let min = nimbus_vault::pack::MIN_PADDED_PACK;
        assert!(sizes.iter().all(|s| s == &vec![min]), "{sizes:?}");
    });
}

/// The trees of a save travel in the same pack as its files: a folder of
/// many entries does not show as a tree pack of its own, and both kinds
/// read back after the vault is opened again.
#[test]
fn trees_share_the_pack_of_their_files() {
    rt().block_on(async {
        let (mem, vault) = new_vault().await;
        let saver = Saver::new(&vault);
        let data: Vec<u8> = (0..20_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let tree: Vec<u8> = (0..6_000u32).map(|i| (i.wrapping_mul(40_503) >> 5) as u8).collect();
        let d = saver.save_blob(BlobKind::Data, data.clone()).await.unwrap();
        let t = saver.save_blob(BlobKind::Tree, tree.clone()).await.unwrap();
        let stats = saver.finish().await.unwrap();
        assert_eq!(stats.packs, 1, "{stats:?}");
        assert_eq!(mem.list("packs/").await.unwrap().len(), 1);

        let backend: DynBackend = mem.clone();
        let reopened = Vault::open(backend, b"pw").await.unwrap();
        assert_eq!(reopened.read_blob(BlobKind::Data, &d).await.unwrap(), data);
        assert_eq!(reopened.read_blob(BlobKind::Tree, &t).await.unwrap(), tree);
    });
}

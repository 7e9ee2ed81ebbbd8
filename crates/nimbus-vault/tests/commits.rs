//! Commits across format versions (docs/SYNC.md §2.2): which layout each
//! vault version writes, what a commit of the other layout reads as, the
//! generation computed from the parents, the index objects a save names,
//! and the conflict-copy ids every device computes alike.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::sync::Arc;

use bytes::Bytes;
use nimbus_backend::{Backend, MemoryBackend};
use nimbus_vault::{
    BlobKind, CommitId, DeviceId, FileId, KdfParams, NewCommit, Saver, ShortId, Timestamp, Tree, Vault, VaultParams,
};

mod common;
use common::{golden_in_memory, rt, GOLDEN_PASSWORD};

/// An empty root tree, saved; returns its id and the save's index objects.
async fn empty_root(vault: &Vault) -> (nimbus_vault::BlobId, Vec<nimbus_vault::IndexId>) {
    let saver = Saver::new(vault);
    let root = saver.save_blob(BlobKind::Tree, Tree::default().encode()).await.unwrap();
    let stats = saver.finish().await.unwrap();
    (root, stats.indexes)
}

fn new_commit(
    root: nimbus_vault::BlobId,
    parents: Vec<CommitId>,
    device: DeviceId,
    name: &str,
    indexes: Vec<nimbus_vault::IndexId>,
) -> NewCommit {
    NewCommit {
        root,
        parents,
        device,
        device_name: name.into(),
        time: Timestamp::now(),
        message: "test".into(),
        files: 0,
        bytes: 0,
        indexes,
    }
}

async fn index_keys(mem: &MemoryBackend) -> BTreeSet<String> {
    mem.list("index/").await.unwrap().into_iter().map(|o| o.key).collect()
}

/// `Saver::finish` names every index object the save wrote, the ones
/// written along the way included, and nothing else.
#[test]
fn a_save_names_the_index_objects_it_wrote() {
    rt().block_on(async {
        let mem = Arc::new(MemoryBackend::new());
        let params = VaultParams {
            pack_target_size: 64 << 10,
            ..VaultParams::default()
        };
        let (vault, _) = Vault::create(mem.clone(), b"pw", params, KdfParams::minimum())
            .await
            .unwrap();
        let (_, first) = empty_root(&vault).await;
        assert_eq!(first.len(), 1);
        let before = index_keys(&mem).await;

        // One index object per pack: several packs make several objects.
        let saver = Saver::with_index_every(&vault, 1);
        for _ in 0..4 {
            // Random, so incompressible: each blob fills a 64 KiB pack.
            let data: Vec<u8> = (0..100_000).map(|_| rand::random::<u8>()).collect();
            saver.save_blob(BlobKind::Data, data).await.unwrap();
        }
        let stats = saver.finish().await.unwrap();
        assert!(stats.indexes.len() >= 2, "{:?}", stats.indexes);
        let added: BTreeSet<String> = index_keys(&mem).await.difference(&before).cloned().collect();
        let named: BTreeSet<String> = stats.indexes.iter().map(|i| format!("index/{}", i.to_hex())).collect();
        assert_eq!(added, named);
    });
}

/// A version 2 vault keeps getting version 2 commits: what a caller says
/// of its name and indexes is not written, the generation stays 0, and the
/// golden vault's own commits read as before.
#[test]
fn a_version_2_vault_keeps_writing_version_2_commits() {
    rt().block_on(async {
        let mem = golden_in_memory("vault-v2").await;
        let vault = Vault::open(mem.clone(), GOLDEN_PASSWORD).await.unwrap();
        assert_eq!(vault.config().version(), 2);
        let (head_id, head) = vault.head().await.unwrap().unwrap();
        assert_eq!((head.device_name.as_str(), head.generation), ("", 0));
        assert!(head.indexes.is_empty());

        let (root, indexes) = empty_root(&vault).await;
        let device = ShortId::random();
        let (id, written) = vault
            .write_commit(new_commit(root, vec![head_id], device, "laptop", indexes))
            .await
            .unwrap();
        assert_eq!((written.device_name.as_str(), written.generation), ("", 0));
        assert!(written.indexes.is_empty());
        // Read back by a fresh open, which knows nothing of it.
        let again = Vault::open(mem.clone(), GOLDEN_PASSWORD).await.unwrap();
        assert_eq!(again.read_commit(&id).await.unwrap(), written);
    });
}

/// A moved or altered commit object is refused as damaged, naming it.
#[test]
fn an_altered_commit_is_refused_with_its_name() {
    rt().block_on(async {
        let mem = golden_in_memory("vault-v2").await;
        let vault = Vault::open(mem.clone(), GOLDEN_PASSWORD).await.unwrap();
        let (head_id, _) = vault.head().await.unwrap().unwrap();
        let key = format!("commits/{}", head_id.to_hex());
        let mut bytes = mem.get(&key, None).await.unwrap().to_vec();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        mem.put(&key, Bytes::from(bytes)).await.unwrap();
        let err = vault.read_commit(&head_id).await.unwrap_err();
        assert!(matches!(err, nimbus_vault::VaultError::Corrupt { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains(&key) && msg.contains("failed authentication"), "{msg}");
    });
}

/// Two devices of one vault give a conflict copy the same id; another
/// vault, another original or another losing content gives another.
#[test]
fn conflict_ids_are_shared_by_devices_and_keyed_by_vault() {
    rt().block_on(async {
        let mem = golden_in_memory("vault-v2").await;
        let a = Vault::open(mem.clone(), GOLDEN_PASSWORD).await.unwrap();
        let b = Vault::open(mem.clone(), GOLDEN_PASSWORD).await.unwrap();
        let original: FileId = ShortId([5; 16]);
        let hash = *blake3::hash(b"the losing content").as_bytes();
        let id = a.conflict_id(&original, &hash);
        assert_eq!(b.conflict_id(&original, &hash), id);
        assert_ne!(id, original);
        assert_ne!(a.conflict_id(&ShortId([6; 16]), &hash), id);
        assert_ne!(a.conflict_id(&original, blake3::hash(b"other").as_bytes()), id);
        let (other, _) = Vault::create(
            Arc::new(MemoryBackend::new()),
            b"pw",
            VaultParams::default(),
            KdfParams::minimum(),
        )
        .await
        .unwrap();
        assert_ne!(other.conflict_id(&original, &hash), id);
        // Not the unkeyed hash either: the store cannot link copy and original.
        let mut plain = blake3::Hasher::new();
        plain.update(&original.0);
        plain.update(&hash);
        assert_ne!(&plain.finalize().as_bytes()[..16], &id.0[..]);
    });
}

/// A new vault is version 3: its commits keep the name and the index
/// objects, and number their generations from the parents (1 with none,
/// 1 + the largest parent's), whether or not the writer had seen them.
#[test]
fn a_version_3_vault_writes_names_generations_and_indexes() {
    rt().block_on(async {
        let mem = Arc::new(MemoryBackend::new());
        let (vault, _) = Vault::create(mem.clone(), b"pw", VaultParams::default(), KdfParams::minimum())
            .await
            .unwrap();
        assert_eq!(vault.config().version(), 4);
        let (root, indexes) = empty_root(&vault).await;
        let (a, b) = (ShortId::random(), ShortId::random());
        let (c1, w1) = vault
            .write_commit(new_commit(root, vec![], a, "laptop", indexes.clone()))
            .await
            .unwrap();
        assert_eq!(
            (w1.device_name.as_str(), w1.generation, &w1.indexes),
            ("laptop", 1, &indexes)
        );
        let (c2, w2) = vault
            .write_commit(new_commit(root, vec![c1], a, "laptop", vec![]))
            .await
            .unwrap();
        assert_eq!(w2.generation, 2);
        // Another device, which never saw c2 or c1 being written: it reads
        // the parents to number its commits.
        let other = Vault::open(mem.clone(), b"pw").await.unwrap();
        let (c3, w3) = other
            .write_commit(new_commit(root, vec![c1], b, "desk", vec![]))
            .await
            .unwrap();
        assert_eq!(w3.generation, 2);
        let (c4, w4) = other
            .write_commit(new_commit(root, vec![c2, c3], b, "desk", vec![]))
            .await
            .unwrap();
        assert_eq!(w4.generation, 3);
        // A name longer than the format holds is cut at a character.
        let long = "ü".repeat(40);
        let (c5, w5) = other
            .write_commit(new_commit(root, vec![c4], b, &long, vec![]))
            .await
            .unwrap();
        assert_eq!(w5.device_name, "ü".repeat(32));
        let fresh = Vault::open(mem.clone(), b"pw").await.unwrap();
        for (id, w) in [(c1, &w1), (c2, &w2), (c3, &w3), (c4, &w4), (c5, &w5)] {
            assert_eq!(&fresh.read_commit(&id).await.unwrap(), w);
        }
    });
}

/// A version 2 vault upgraded (to 4) keeps reading its version 2 commits
/// (no name, generation 0), and a new commit on them is generation 1.
#[test]
fn an_upgraded_vault_reads_its_old_commits_and_numbers_new_ones() {
    rt().block_on(async {
        let mem = golden_in_memory("vault-v2").await;
        let done = nimbus_vault::upgrade::upgrade(&(mem.clone() as nimbus_backend::DynBackend), GOLDEN_PASSWORD)
            .await
            .unwrap();
        assert_eq!(done, nimbus_vault::upgrade::Upgraded::Done { from: 2, to: 4 });
        let vault = Vault::open(mem.clone(), GOLDEN_PASSWORD).await.unwrap();
        assert_eq!(vault.config().version(), 4);
        let scan = vault.scan_commits().await.unwrap();
        assert_eq!(scan.commits.len(), 2);
        assert!(scan.damaged.is_empty(), "{:?}", scan.damaged);
        assert!(scan
            .commits
            .iter()
            .all(|(_, c)| c.generation == 0 && c.device_name.is_empty()));
        let (head_id, head) = vault.head().await.unwrap().unwrap();
        let (id, w) = vault
            .write_commit(new_commit(head.root, vec![head_id], head.device, "laptop", vec![]))
            .await
            .unwrap();
        assert_eq!((w.generation, w.device_name.as_str()), (1, "laptop"));
        assert_eq!(
            Vault::open(mem, GOLDEN_PASSWORD)
                .await
                .unwrap()
                .read_commit(&id)
                .await
                .unwrap(),
            w
        );
    });
}

/// The golden version 3 vault: two devices, the second commit on the
/// first, each naming exactly the index object its save wrote.
#[test]
fn the_golden_version_3_vault_reads_its_commits() {
    rt().block_on(async {
        let mem = golden_in_memory("vault-v3").await;
        let vault = Vault::open(mem.clone(), GOLDEN_PASSWORD).await.unwrap();
        assert_eq!(vault.config().version(), 3);
        let scan = vault.scan_commits().await.unwrap();
        assert!(scan.damaged.is_empty(), "{:?}", scan.damaged);
        let [(first_id, first), (_, second)] = &scan.commits[..] else {
            panic!("two commits expected: {:?}", scan.commits)
        };
        assert_eq!((first.message.as_str(), first.generation), ("golden fixture 1", 1));
        assert_eq!((second.message.as_str(), second.generation), ("golden fixture 2", 2));
        assert_eq!(second.parents, vec![*first_id]);
        assert_ne!(first.device, second.device);
        assert_eq!(first.indexes.len(), 1);
        assert_eq!(second.indexes.len(), 1);
        let named: BTreeSet<String> = first
            .indexes
            .iter()
            .chain(&second.indexes)
            .map(|i| format!("index/{}", i.to_hex()))
            .collect();
        assert_eq!(named, index_keys(&mem).await);
    });
}

/// `check` reports an index object a version 3 commit names but the store
/// lost, naming both; the golden vault has no such finding.
#[test]
fn check_reports_a_named_index_object_that_is_gone() {
    rt().block_on(async {
        let mem = golden_in_memory("vault-v3").await;
        let vault = Vault::open(mem.clone(), GOLDEN_PASSWORD).await.unwrap();
        let clean = nimbus_vault::check::check(&vault, false, &|_| {}).await.unwrap();
        assert!(clean.problems.is_empty() && clean.warnings.is_empty(), "{clean:?}");
        let (head_id, head) = vault.head().await.unwrap().unwrap();
        let gone = format!("index/{}", head.indexes[0].to_hex());
        mem.delete(&gone).await.unwrap();
        let report = nimbus_vault::check::check(&vault, false, &|_| {}).await.unwrap();
        assert!(
            report
                .problems
                .iter()
                .any(|f| f.object == format!("commits/{}", head_id.to_hex()) && f.message.contains(&gone)),
            "{report:?}"
        );
    });
}

/// A parent that the store hides (its commit object reads as missing) fails
/// the write with `Missing` instead of numbering the new commit as if the
/// parent had generation 0: every reader would call that commit damaged.
/// Nothing is written; the drive retries the save later.
#[test]
fn a_parent_read_as_missing_fails_the_commit() {
    rt().block_on(async {
        let mem = Arc::new(MemoryBackend::new());
        let (vault, _) = Vault::create(mem.clone(), b"pw", VaultParams::default(), KdfParams::minimum())
            .await
            .unwrap();
        let (root, _) = empty_root(&vault).await;
        let a = ShortId::random();
        let (c1, _) = vault
            .write_commit(new_commit(root, vec![], a, "laptop", vec![]))
            .await
            .unwrap();
        let (c2, w2) = vault
            .write_commit(new_commit(root, vec![c1], a, "laptop", vec![]))
            .await
            .unwrap();
        assert_eq!(w2.generation, 2);
        mem.delete(&format!("commits/{}", c2.to_hex())).await.unwrap();
        // A fresh vault on the same store: it has not written or read c2, so
        // it has no generation of it in memory and must read it.
        let other = Vault::open(mem.clone(), b"pw").await.unwrap();
        let before = mem.list("commits/").await.unwrap().len();
        let err = other
            .write_commit(new_commit(root, vec![c2], ShortId::random(), "desk", vec![]))
            .await
            .unwrap_err();
        assert!(
            matches!(err, nimbus_vault::error::VaultError::Missing { .. }),
            "{err:?}"
        );
        assert_eq!(mem.list("commits/").await.unwrap().len(), before);
        // The parent back (the store caught up): the write numbers it right.
        let (_, w3) = other
            .write_commit(new_commit(root, vec![c1], ShortId::random(), "desk", vec![]))
            .await
            .unwrap();
        assert_eq!(w3.generation, 2);
    });
}

/// Every commit object's key in the store.
async fn commit_keys(mem: &MemoryBackend) -> BTreeSet<String> {
    mem.list("commits/").await.unwrap().into_iter().map(|o| o.key).collect()
}

/// A drive opened before another device upgraded the vault would write a
/// version 2 commit (generation 0) on a version 3 parent, which every
/// reader calls damaged history: it is refused, saying to open the vault
/// again, and nothing is written. Its own version 2 parents stay fine.
#[test]
fn a_version_2_commit_on_a_version_3_parent_is_refused() {
    rt().block_on(async {
        let mem = golden_in_memory("vault-v2").await;
        let stale = Vault::open(mem.clone(), GOLDEN_PASSWORD).await.unwrap();
        let (old_head, _) = stale.head().await.unwrap().unwrap();
        nimbus_vault::upgrade::upgrade(&(mem.clone() as nimbus_backend::DynBackend), GOLDEN_PASSWORD)
            .await
            .unwrap();
        let fresh = Vault::open(mem.clone(), GOLDEN_PASSWORD).await.unwrap();
        let (root, indexes) = empty_root(&fresh).await;
        let (v3, _) = fresh
            .write_commit(new_commit(root, vec![old_head], ShortId::random(), "desk", indexes))
            .await
            .unwrap();

        let before = commit_keys(&mem).await;
        let err = stale
            .write_commit(new_commit(root, vec![v3], ShortId::random(), "laptop", vec![]))
            .await
            .unwrap_err();
        assert!(
            matches!(err, nimbus_vault::VaultError::UpgradedElsewhere { opened: 2, now: 4 }),
            "{err:?}"
        );
        assert!(err.to_string().contains("Open the vault again"), "{err}");
        assert_eq!(commit_keys(&mem).await, before, "nothing was written");
        // On a version 2 parent alone the stale handle still writes (the
        // history stays consistent: generation 0 under generation 0).
        let (_, w) = stale
            .write_commit(new_commit(root, vec![old_head], ShortId::random(), "laptop", vec![]))
            .await
            .unwrap();
        assert_eq!(w.generation, 0);
    });
}

/// A store that answers with the `config` from before the upgrade (a
/// replay) cannot make a device write version 2 commits on version 3
/// ones: the commit is refused as a damaged `config`.
#[test]
fn a_replayed_old_config_cannot_write_under_a_version_3_commit() {
    rt().block_on(async {
        let mem = golden_in_memory("vault-v2").await;
        let old_config = mem.get_whole("config", 1 << 20).await.unwrap();
        nimbus_vault::upgrade::upgrade(&(mem.clone() as nimbus_backend::DynBackend), GOLDEN_PASSWORD)
            .await
            .unwrap();
        let fresh = Vault::open(mem.clone(), GOLDEN_PASSWORD).await.unwrap();
        let (old_head, _) = fresh.head().await.unwrap().unwrap();
        let (root, indexes) = empty_root(&fresh).await;
        let (v3, _) = fresh
            .write_commit(new_commit(root, vec![old_head], ShortId::random(), "desk", indexes))
            .await
            .unwrap();

        mem.put("config", old_config).await.unwrap();
        let replayed = Vault::open(mem.clone(), GOLDEN_PASSWORD).await.unwrap();
        assert_eq!(replayed.config().version(), 2);
        let err = replayed
            .write_commit(new_commit(root, vec![v3], ShortId::random(), "laptop", vec![]))
            .await
            .unwrap_err();
        match &err {
            nimbus_vault::VaultError::Corrupt { object, what } => {
                assert_eq!(object, "config");
                assert!(what.contains("old copy"), "{what}");
            }
            other => panic!("expected a damaged config, got {other:?}"),
        }
    });
}

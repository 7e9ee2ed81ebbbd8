//! `check --repair` (research §4.7): a lost index object is rebuilt from
//! the pack headers, a lost pack is uploaded again from this device's copy
//! of the files, and without a copy a repair commit on this device marks
//! the damaged files, after which `check` reports only the older snapshot's
//! loss. Every case adds objects only: nothing is deleted or rewritten
//! except this device's ref.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use nimbus_backend::{Backend, MemoryBackend};
use nimbus_vault::check::{check, CheckReport};
use nimbus_vault::repair::{repair, ContentSource, RepairOptions, RepairReport};
use nimbus_vault::{
    BlobId, BlobKind, CommitId, DeviceId, Entry, EntryKind, KdfParams, NewCommit, Saver, ShortId, Timestamp, Tree,
    Vault, VaultParams,
};

const PW: &[u8] = b"repair-test";

/// A vault with one snapshot of `/docs/a.txt` and `/docs/b.txt` on device
/// `me`, whose content went up in a save of its own (so one pack holds
/// only content and another the folders), and another device whose ref
/// points at an older, empty snapshot.
struct Fixture {
    mem: Arc<MemoryBackend>,
    me: DeviceId,
    other: DeviceId,
    files: BTreeMap<String, Vec<u8>>,
    /// The content's pack and index object.
    data_pack: String,
    data_index: String,
    snapshot: CommitId,
}

mod common;
use common::random_bytes as bytes;

fn file_entry(name: &str, content: Vec<BlobId>, size: u64) -> Entry {
    Entry {
        kind: EntryKind::File,
        mode: 0o644,
        size,
        content,
        ..Entry::new_dir(name.as_bytes().to_vec(), Timestamp::now())
    }
}

fn new_commit(root: BlobId, parents: Vec<CommitId>, device: DeviceId, files: u64, bytes: u64) -> NewCommit {
    NewCommit {
        root,
        parents,
        device,
        device_name: "test".into(),
        time: Timestamp::now(),
        message: "test".into(),
        files,
        bytes,
        indexes: vec![],
    }
}

/// Saves `data` as the vault chunks it; returns the blob ids.
async fn save_content(vault: &Vault, saver: &Saver, data: &[u8]) -> Vec<BlobId> {
    let params = vault.params().chunker;
    let mut ids = Vec::new();
    for (off, len) in nimbus_vault::chunker::chunk_slice(&params, vault.chunker_seed_for_saving(), data) {
        ids.push(
            saver
                .save_blob(BlobKind::Data, data[off..off + len].to_vec())
                .await
                .unwrap(),
        );
    }
    ids
}

async fn fixture() -> Fixture {
    let mem = Arc::new(MemoryBackend::new());
    let (vault, _) = Vault::create(mem.clone(), PW, VaultParams::default(), KdfParams::minimum())
        .await
        .unwrap();
    let (me, other) = (ShortId::random(), ShortId::random());
    let empty = {
        let saver = Saver::new(&vault);
        let root = saver.save_blob(BlobKind::Tree, Tree::default().encode()).await.unwrap();
        saver.finish().await.unwrap();
        root
    };
    let (c0, _) = vault
        .write_commit(new_commit(empty, vec![], other, 0, 0))
        .await
        .unwrap();
    vault.write_ref(&other, c0, 0).await.unwrap();

    let files = BTreeMap::from([
        ("a.txt".to_string(), bytes(1, 700_000)),
        ("b.txt".to_string(), bytes(2, 90_000)),
    ]);
    let before: Vec<String> = keys(&mem, "").await;
    let saver = Saver::new(&vault);
    let mut docs = Tree::default();
    for (name, data) in &files {
        let ids = save_content(&vault, &saver, data).await;
        docs.upsert(file_entry(name, ids, data.len() as u64));
    }
    saver.finish().await.unwrap();
    let added: Vec<String> = keys(&mem, "")
        .await
        .into_iter()
        .filter(|k| !before.contains(k))
        .collect();
    let data_pack = added.iter().find(|k| k.starts_with("packs/")).unwrap().clone();
    let data_index = added.iter().find(|k| k.starts_with("index/")).unwrap().clone();

    let saver = Saver::new(&vault);
    let docs_id = saver.save_blob(BlobKind::Tree, docs.encode()).await.unwrap();
    let mut root = Tree::default();
    root.upsert(Entry {
        subtree: Some(docs_id),
        ..Entry::new_dir(b"docs".to_vec(), Timestamp::now())
    });
    let root_id = saver.save_blob(BlobKind::Tree, root.encode()).await.unwrap();
    saver.finish().await.unwrap();
    let total = files.values().map(|d| d.len() as u64).sum();
    let (snapshot, _) = vault
        .write_commit(new_commit(root_id, vec![], me, 2, total))
        .await
        .unwrap();
    vault.write_ref(&me, snapshot, 0).await.unwrap();
    Fixture {
        mem,
        me,
        other,
        files,
        data_pack,
        data_index,
        snapshot,
    }
}

async fn keys(mem: &MemoryBackend, prefix: &str) -> Vec<String> {
    let mut k: Vec<String> = mem.list(prefix).await.unwrap().into_iter().map(|o| o.key).collect();
    k.sort();
    k
}

/// Every object and its bytes.
async fn objects(mem: &MemoryBackend) -> HashMap<String, Vec<u8>> {
    let mut out = HashMap::new();
    for key in keys(mem, "").await {
        out.insert(key.clone(), mem.get(&key, None).await.unwrap().to_vec());
    }
    out
}

/// `after` holds every object of `before` unchanged (but `moved`, this
/// device's ref); returns the keys added.
fn only_added(before: &HashMap<String, Vec<u8>>, after: &HashMap<String, Vec<u8>>, moved: &str) -> Vec<String> {
    for (key, data) in before {
        let now = after.get(key).unwrap_or_else(|| panic!("{key} was deleted"));
        assert!(key == moved || now == data, "{key} was rewritten");
    }
    let mut added: Vec<String> = after.keys().filter(|k| !before.contains_key(*k)).cloned().collect();
    added.sort();
    added
}

async fn open(f: &Fixture) -> Vault {
    Vault::open(f.mem.clone(), PW).await.unwrap()
}

async fn checked(f: &Fixture) -> CheckReport {
    check(&open(f).await, false, &|_| {}).await.unwrap()
}

/// A copy of the files on this device, by vault path.
struct Copy(HashMap<Vec<u8>, Vec<u8>>);

impl ContentSource for Copy {
    fn open(&self, path: &[u8]) -> std::io::Result<Option<Box<dyn Read + Send>>> {
        Ok(self
            .0
            .get(path)
            .map(|b| Box::new(std::io::Cursor::new(b.clone())) as Box<dyn Read + Send>))
    }
}

fn options(f: &Fixture, source: Option<Copy>, min_pack_age: Duration) -> RepairOptions {
    RepairOptions {
        device: f.me,
        device_name: "this laptop".into(),
        seen: 0,
        min_pack_age,
        source: source.map(|s| Arc::new(s) as Arc<dyn ContentSource>),
    }
}

async fn run_repair(f: &Fixture, opts: &RepairOptions) -> RepairReport {
    repair(&open(f).await, opts).await.unwrap()
}

#[tokio::test]
async fn a_lost_index_object_is_rebuilt_from_the_pack_headers() {
    let f = fixture().await;
    assert!(checked(&f).await.is_clean());
    f.mem.delete(&f.data_index).await.unwrap();
    let damaged = checked(&f).await;
    assert!(!damaged.problems.is_empty(), "{damaged:?}");
    assert!(damaged.warnings.iter().any(|w| w.object == f.data_pack), "{damaged:?}");

    // A young pack may be a save in progress: left alone.
    let before = objects(&f.mem).await;
    let young = run_repair(&f, &options(&f, None, Duration::from_secs(3600))).await;
    assert_eq!(young.young_packs, std::slice::from_ref(&f.data_pack));
    assert!(young.packs_indexed.is_empty() && young.indexes.is_empty());
    assert!(objects(&f.mem).await == before, "nothing written");

    let report = run_repair(&f, &options(&f, None, Duration::ZERO)).await;
    assert_eq!(report.packs_indexed, std::slice::from_ref(&f.data_pack));
    assert!(report.damaged_packs.is_empty() && report.commit.is_none(), "{report:?}");
    let added = only_added(&before, &objects(&f.mem).await, "");
    assert_eq!(added.len(), 1, "{added:?}");
    assert!(added[0].starts_with("index/"));
    let after = checked(&f).await;
    assert!(after.is_clean(), "{after:?}");
    assert!(after.warnings.is_empty(), "{after:?}");
}

#[tokio::test]
async fn a_pack_with_a_damaged_header_is_reported_not_fatal() {
    let f = fixture().await;
    f.mem.delete(&f.data_index).await.unwrap();
    let mut pack = f.mem.get(&f.data_pack, None).await.unwrap().to_vec();
    let n = pack.len();
    pack[n - 10] ^= 1;
    f.mem.put(&f.data_pack, pack.into()).await.unwrap();
    let report = run_repair(&f, &options(&f, None, Duration::ZERO)).await;
    assert_eq!(report.damaged_packs.len(), 1, "{report:?}");
    assert_eq!(report.damaged_packs[0].object, f.data_pack);
    assert!(report.packs_indexed.is_empty());
    // Its files cannot be read: marked damaged in a repair commit.
    assert_eq!(report.damaged_files.len(), 2, "{report:?}");
}

#[tokio::test]
async fn a_lost_pack_is_uploaded_again_from_this_devices_copy() {
    let f = fixture().await;
    f.mem.delete(&f.data_pack).await.unwrap();
    let damaged = checked(&f).await;
    assert!(damaged.problems.iter().any(|p| p.object == f.data_pack), "{damaged:?}");
    let before = objects(&f.mem).await;
    let copy = Copy(
        f.files
            .iter()
            .map(|(n, d)| (format!("/docs/{n}").into_bytes(), d.clone()))
            .collect(),
    );
    let report = run_repair(&f, &options(&f, Some(copy), Duration::ZERO)).await;
    assert!(report.blobs_uploaded >= 2, "{report:?}");
    assert_eq!(
        report.bytes_uploaded,
        f.files.values().map(|d| d.len() as u64).sum::<u64>()
    );
    assert!(report.commit.is_none() && report.damaged_files.is_empty(), "{report:?}");
    let added = only_added(&before, &objects(&f.mem).await, "");
    assert!(
        added.iter().all(|k| k.starts_with("packs/") || k.starts_with("index/")),
        "{added:?}"
    );

    // A fresh open reads the new copies, and check is clean: the lost
    // pack is a stale index entry, a warning.
    let after = checked(&f).await;
    assert!(after.is_clean(), "{after:?}");
    assert!(after.warnings.iter().any(|w| w.object == f.data_pack), "{after:?}");
    let vault = open(&f).await;
    let (_, head) = vault.head().await.unwrap().unwrap();
    let docs = vault
        .read_tree(&vault.read_tree(&head.root).await.unwrap().entries[0].subtree.unwrap())
        .await
        .unwrap();
    for e in &docs.entries {
        let mut back = Vec::new();
        for b in &e.content {
            back.extend(vault.read_blob(BlobKind::Data, b).await.unwrap());
        }
        assert_eq!(&back, &f.files[std::str::from_utf8(&e.name).unwrap()]);
    }
}

#[tokio::test]
async fn without_a_copy_a_repair_commit_marks_the_damaged_files() {
    let f = fixture().await;
    f.mem.delete(&f.data_pack).await.unwrap();
    let before = objects(&f.mem).await;
    let my_ref = nimbus_vault::commit::ref_key(&f.me);
    // Only b.txt is here, and not as it was saved: it does not count.
    let copy = Copy(HashMap::from([(b"/docs/b.txt".to_vec(), bytes(3, 90_000))]));
    let report = run_repair(&f, &options(&f, Some(copy), Duration::ZERO)).await;
    assert_eq!(report.blobs_uploaded, 0, "{report:?}");
    let renamed: Vec<(&str, &str)> = report
        .damaged_files
        .iter()
        .map(|d| (d.path.as_str(), d.renamed.as_str()))
        .collect();
    assert_eq!(
        renamed,
        [
            ("/docs/a.txt", "/docs/a (damaged).txt"),
            ("/docs/b.txt", "/docs/b (damaged).txt")
        ]
    );
    let commit = report.commit.expect("a repair commit");
    let added = only_added(&before, &objects(&f.mem).await, &my_ref);
    assert!(added.contains(&nimbus_vault::commit::commit_key(&commit)), "{added:?}");
    let other_ref = nimbus_vault::commit::ref_key(&f.other);
    assert!(
        objects(&f.mem).await[&other_ref] == before[&other_ref],
        "the other device's ref is untouched"
    );

    // The repair commit is this device's head, on the damaged snapshot;
    // the files keep their length, the lost pieces read as zeros.
    let vault = open(&f).await;
    let refs = vault.read_refs().await.unwrap();
    assert_eq!(refs[&f.me].commit, commit);
    let head = vault.read_commit(&commit).await.unwrap();
    assert_eq!(head.parents, [f.snapshot]);
    assert_eq!((head.files, head.bytes), (2, 790_000));
    let docs = vault
        .read_tree(&vault.read_tree(&head.root).await.unwrap().entries[0].subtree.unwrap())
        .await
        .unwrap();
    let names: Vec<&[u8]> = docs.entries.iter().map(|e| e.name.as_slice()).collect();
    assert_eq!(names, [&b"a (damaged).txt"[..], b"b (damaged).txt"]);
    for e in &docs.entries {
        let mut back = Vec::new();
        for b in &e.content {
            back.extend(vault.read_blob(BlobKind::Data, b).await.unwrap());
        }
        assert_eq!(back.len() as u64, e.size);
        assert!(back.iter().all(|&b| b == 0));
    }

    // What is left is history: the older snapshot's content.
    let after = checked(&f).await;
    assert!(after.problems.is_empty(), "{after:?}");
    assert!(!after.history.is_empty(), "{after:?}");
    let short = f.snapshot.short().to_string();
    for h in &after.history {
        assert!(
            h.object == f.data_pack || h.message.contains(&short),
            "history names the old snapshot or the lost pack: {h:?}"
        );
    }
    // A second repair has nothing left to do.
    let again = run_repair(&f, &options(&f, None, Duration::ZERO)).await;
    assert!(again.commit.is_none() && again.damaged_files.is_empty(), "{again:?}");
}

//! The conformance suite against every store, plus what only a local folder
//! has to get right (atomic writes through `.tmp`, no folder made by mistake).

mod conformance;

use bytes::Bytes;
use nimbus_backend::{
    create_store, open_store, Backend, BackendErrorKind, DynBackend, FaultConfig, FaultyBackend, MemoryBackend,
    OpendalBackend, StoreUrl,
};
use std::sync::Arc;
use tempfile::TempDir;

fn temp_dir() -> TempDir {
    tempfile::tempdir().expect("a temporary folder")
}

#[tokio::test]
async fn memory_store_conforms() {
    let store = MemoryBackend::new();
    conformance::run(&store).await.expect("conformance");
}

#[tokio::test]
async fn local_folder_conforms() {
    let dir = temp_dir();
    let store = OpendalBackend::local_folder(dir.path()).expect("open");
    conformance::run(&store).await.expect("conformance");
    assert!(store.describe().contains(&dir.path().display().to_string()));
}

#[tokio::test]
async fn stores_opened_by_url_conform() {
    let dir = temp_dir();
    let url = StoreUrl::parse(&dir.path().display().to_string()).expect("parse");
    let store: DynBackend = open_store(&url).expect("open");
    conformance::run(store.as_ref()).await.expect("conformance");

    let store = open_store(&StoreUrl::parse("memory://").expect("parse")).expect("open");
    conformance::run(store.as_ref()).await.expect("conformance");
}

#[tokio::test]
async fn faulty_wrapper_without_faults_conforms() {
    let dir = temp_dir();
    let inner: DynBackend = Arc::new(OpendalBackend::local_folder(dir.path()).expect("open"));
    let store = FaultyBackend::new(inner, FaultConfig::default());
    conformance::run(&store).await.expect("conformance");
    assert_eq!(store.stats().injected_errors, 0);
}

#[tokio::test]
async fn local_objects_are_plain_files_and_tmp_is_hidden() {
    let dir = temp_dir();
    let store = OpendalBackend::local_folder(dir.path()).expect("open");
    store
        .put("packs/ab/ab01", Bytes::from_static(b"pack"))
        .await
        .expect("put");

    // Objects are files under their key, so a person can see and copy them.
    let on_disk = std::fs::read(dir.path().join("packs/ab/ab01")).expect("read file");
    assert_eq!(on_disk, b"pack");
    assert!(dir.path().join(".tmp").is_dir(), "writes go through .tmp");

    // What a crash in the middle of a write leaves behind: never listed,
    // never reachable as a key.
    std::fs::write(dir.path().join(".tmp/ab01.a1b2c3"), b"half").expect("write");
    std::fs::create_dir_all(dir.path().join(".tmp/nested")).expect("mkdir");
    std::fs::write(dir.path().join(".tmp/nested/x"), b"half").expect("write");
    assert_eq!(conformance::keys(&store, "").await.expect("list"), ["packs/ab/ab01"]);
    assert!(conformance::keys(&store, ".tmp/").await.expect("list").is_empty());
    let err = store.get(".tmp/ab01.a1b2c3", None).await.expect_err("reserved");
    assert_eq!(err.kind(), BackendErrorKind::Other);
    assert!(store.put(".tmp/x", Bytes::new()).await.is_err());

    // After a successful put nothing of it stays in .tmp.
    store.put("config", Bytes::from_static(b"c")).await.expect("put");
    let mut leftovers: Vec<_> = std::fs::read_dir(dir.path().join(".tmp"))
        .expect("read .tmp")
        .map(|e| e.expect("entry").file_name())
        .collect();
    leftovers.sort();
    assert_eq!(leftovers, ["ab01.a1b2c3", "nested"]);
}

#[tokio::test]
async fn local_folder_is_never_created_by_opening() {
    let dir = temp_dir();
    let missing = dir.path().join("not-here");
    let err = OpendalBackend::local_folder(&missing).expect_err("missing folder");
    assert_eq!(err.kind(), BackendErrorKind::NotFound);
    assert!(!missing.exists());

    let url = StoreUrl::LocalFolder(missing.clone());
    let err = open_store(&url).expect_err("missing folder");
    assert_eq!(err.kind(), BackendErrorKind::NotFound);
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("no vault folder at {}", missing.display())),
        "{text}"
    );
    assert!(text.contains("nimbus init"), "{text}");
    assert!(!missing.exists());

    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").expect("write");
    let err = OpendalBackend::local_folder(&file).expect_err("a file is no folder");
    assert_eq!(err.kind(), BackendErrorKind::InvalidConfig);
    let err = open_store(&StoreUrl::LocalFolder(file)).expect_err("a file is no folder");
    assert_eq!(err.kind(), BackendErrorKind::InvalidConfig);

    // `.tmp` must be a folder; a file there is not silently replaced.
    let blocked = dir.path().join("blocked");
    std::fs::create_dir(&blocked).expect("mkdir");
    std::fs::write(blocked.join(".tmp"), b"someone's file").expect("write");
    let err = OpendalBackend::local_folder(&blocked).expect_err(".tmp is a file");
    assert_eq!(err.kind(), BackendErrorKind::InvalidConfig);
    assert!(err.to_string().contains("move the file"), "{err}");
}

#[tokio::test]
async fn create_store_makes_the_folder_and_open_store_finds_it() {
    let dir = temp_dir();
    let url = StoreUrl::LocalFolder(dir.path().join("new/vault"));
    let created = create_store(&url).expect("create");
    created.put("config", Bytes::from_static(b"v1")).await.expect("put");
    let opened = open_store(&url).expect("open");
    assert_eq!(opened.get("config", None).await.expect("get"), &b"v1"[..]);
    // Creating again is harmless and keeps what is there.
    let again = create_store(&url).expect("create again");
    assert_eq!(again.list("").await.expect("list").len(), 1);
}

#[tokio::test]
async fn named_memory_stores_are_shared_and_anonymous_ones_are_not() {
    let url = StoreUrl::parse("memory://stores-test-shared").expect("parse");
    let err = open_store(&url).expect_err("not made yet");
    assert_eq!(err.kind(), BackendErrorKind::NotFound);
    let a = create_store(&url).expect("create");
    a.put("k", Bytes::from_static(b"v")).await.expect("put");
    let b = open_store(&url).expect("open");
    assert_eq!(b.get("k", None).await.expect("get"), &b"v"[..]);

    let anonymous = StoreUrl::parse("memory://").expect("parse");
    let c = create_store(&anonymous).expect("create");
    c.put("k", Bytes::from_static(b"v")).await.expect("put");
    let d = open_store(&anonymous).expect("open");
    assert!(d.list("").await.expect("list").is_empty());
}

#[tokio::test]
async fn memory_clones_share_objects() {
    let a = MemoryBackend::new();
    let b = a.clone();
    a.put("k", Bytes::from_static(b"v")).await.expect("put");
    assert_eq!(b.stat("k").await.expect("stat").map(|i| i.size), Some(1));
    let inner = b.into_inner();
    assert_eq!(inner.get("k", None).await.expect("get"), &b"v"[..]);
}

/// A folder this process may read but not write: reading works, changes are
/// refused with a clear error instead of being written without `.tmp`.
#[cfg(unix)]
#[tokio::test]
async fn read_only_folder_opens_for_reading() {
    use std::os::unix::fs::PermissionsExt;

    let dir = temp_dir();
    let root = dir.path().join("vault");
    std::fs::create_dir(&root).expect("mkdir");
    std::fs::write(root.join("config"), b"cfg").expect("write");
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o555)).expect("chmod");
    // Root ignores permissions; then there is nothing to test.
    let writable = std::fs::write(root.join("probe"), b"").is_ok();
    if writable {
        eprintln!("skipped: running as root, so a read-only folder cannot be made");
    } else {
        let store = OpendalBackend::local_folder(&root).expect("open read-only");
        assert_eq!(store.get("config", None).await.expect("get"), &b"cfg"[..]);
        assert_eq!(conformance::keys(&store, "").await.expect("list"), ["config"]);
        let err = store.put("other", Bytes::new()).await.expect_err("read-only");
        assert_eq!(err.kind(), BackendErrorKind::PermissionDenied);
        assert!(err.to_string().contains("read-only"), "{err}");
        let err = store.delete("config").await.expect_err("read-only");
        assert_eq!(err.kind(), BackendErrorKind::PermissionDenied);
    }
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

//! The behaviour every [`Backend`] must have, as one suite that the test files
//! run against each store (local folder, memory, wrappers).
//!
//! The suite expects an empty store. Each check works under its own top-level
//! folder, so the checks cannot see each other's objects.

use bytes::Bytes;
use nimbus_backend::{Backend, BackendError, BackendErrorKind, ObjectInfo};
use std::time::{Duration, SystemTime};

type Result<T = ()> = std::result::Result<T, BackendError>;

/// Runs every check against `store`, which must be empty.
pub async fn run(store: &dyn Backend) -> Result {
    empty_store(store).await?;
    put_get_stat(store).await?;
    ranges(store).await?;
    overwrite(store).await?;
    fingerprints(store).await?;
    list_prefixes(store).await?;
    delete(store).await?;
    delete_many(store).await?;
    folders_are_not_objects(store).await?;
    invalid_keys(store).await?;
    concurrent_puts(store).await?;
    only_suite_objects_remain(store).await?;
    assert!(!store.describe().is_empty());
    Ok(())
}

/// What the checks compare of an `ObjectInfo`: the store adds its own
/// time and tag, checked on their own in [`fingerprints`].
fn key_size(info: &ObjectInfo) -> (&str, u64) {
    (info.key.as_str(), info.size)
}

/// The keys of `list(prefix)`, sorted, since listing order is unspecified.
pub async fn keys(store: &dyn Backend, prefix: &str) -> Result<Vec<String>> {
    let mut infos = store.list(prefix).await?;
    infos.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(infos.into_iter().map(|i| i.key).collect())
}

fn expect_not_found<T: std::fmt::Debug>(result: Result<T>, key: &str) {
    let err = result.expect_err("expected a not-found error");
    assert_eq!(err.kind(), BackendErrorKind::NotFound, "{err}");
    assert_eq!(err.key(), Some(key));
    assert!(!err.is_transient());
    assert!(err.to_string().contains(key), "{err}");
}

async fn empty_store(store: &dyn Backend) -> Result {
    assert_eq!(keys(store, "").await?, Vec::<String>::new());
    assert_eq!(store.stat("config").await?, None);
    expect_not_found(store.get("config", None).await, "config");
    expect_not_found(store.get("config", Some(0..4)).await, "config");
    expect_not_found(store.get("config", Some(2..2)).await, "config");
    expect_not_found(store.get("a/b/c", None).await, "a/b/c");
    // Deleting what is not there succeeds.
    store.delete("config").await?;
    store.delete("no/such/folder/key").await?;
    Ok(())
}

async fn put_get_stat(store: &dyn Backend) -> Result {
    let all_bytes: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
    store.put("basic/config", Bytes::from_static(b"hello")).await?;
    store.put("basic/deep/a/b/c/d", Bytes::from(all_bytes.clone())).await?;
    store.put("basic/empty", Bytes::new()).await?;

    assert_eq!(store.get("basic/config", None).await?, &b"hello"[..]);
    assert_eq!(store.get("basic/deep/a/b/c/d", None).await?, all_bytes);
    assert_eq!(store.get("basic/empty", None).await?, Bytes::new());

    let stat = |key: &'static str| async move { store.stat(key).await.map(|i| i.map(|i| (i.key, i.size))) };
    assert_eq!(stat("basic/config").await?, Some(("basic/config".into(), 5)));
    assert_eq!(stat("basic/empty").await?, Some(("basic/empty".into(), 0)));
    assert_eq!(
        stat("basic/deep/a/b/c/d").await?,
        Some(("basic/deep/a/b/c/d".into(), 1000))
    );
    assert_eq!(store.stat("basic/missing").await?, None);
    Ok(())
}

async fn ranges(store: &dyn Backend) -> Result {
    let data: Vec<u8> = (0..=255u8).collect();
    store.put("range/obj", Bytes::from(data.clone())).await?;
    let get = |r: std::ops::Range<u64>| store.get("range/obj", Some(r));

    assert_eq!(get(0..4).await?, data[0..4]);
    assert_eq!(get(10..20).await?, data[10..20]);
    assert_eq!(get(0..256).await?, data);
    // Past the end: the bytes that exist.
    assert_eq!(get(250..300).await?, data[250..]);
    assert_eq!(get(0..u64::MAX).await?, data);
    assert_eq!(get(255..1000).await?, data[255..]);
    // Nothing there: empty, not an error.
    assert_eq!(get(256..300).await?, Bytes::new());
    assert_eq!(get(1000..2000).await?, Bytes::new());
    assert_eq!(get(5..5).await?, Bytes::new());

    store.put("range/empty", Bytes::new()).await?;
    assert_eq!(store.get("range/empty", Some(0..10)).await?, Bytes::new());

    // A bigger object, read in the middle.
    let big: Vec<u8> = (0..(1u32 << 20)).map(|i| (i % 251) as u8).collect();
    store.put("range/big", Bytes::from(big.clone())).await?;
    let start = 300_000u64;
    let got = store.get("range/big", Some(start..start + 70_000)).await?;
    assert_eq!(got, big[300_000..370_000]);
    Ok(())
}

async fn overwrite(store: &dyn Backend) -> Result {
    store
        .put("over/key", Bytes::from_static(b"first version, long"))
        .await?;
    store.put("over/key", Bytes::from_static(b"second")).await?;
    assert_eq!(store.get("over/key", None).await?, &b"second"[..]);
    assert_eq!(store.stat("over/key").await?.map(|i| i.size), Some(6));
    let listed = store.list("over/").await?;
    assert_eq!(listed.iter().map(key_size).collect::<Vec<_>>(), [("over/key", 6)]);
    Ok(())
}

/// A poll reads an object again only when its `(size, modified, etag)`
/// changed (docs/SYNC.md §1.1), and refs are all of one size: so a rewrite
/// of the same size must change the time or the tag, and a listing and a
/// stat must say the same of one version.
async fn fingerprints(store: &dyn Backend) -> Result {
    let key = "stamp/ref";
    let version = |n: u8| Bytes::from(vec![n; 80]);
    let stat = || async {
        let info = store.stat(key).await?.expect("the object just written");
        let listed = store.list("stamp/").await?;
        assert_eq!(listed, std::slice::from_ref(&info), "a listing and a stat agree");
        Ok::<_, BackendError>(info)
    };

    store.put(key, version(1)).await?;
    let first = stat().await?;
    let modified = first.modified.expect("every store says when it wrote an object");
    // The stores under test run on this machine: their clock is ours, and a
    // time read in the wrong zone is hours off.
    let now = SystemTime::now();
    let hour = Duration::from_secs(3600);
    assert!(
        modified > now - hour && modified < now + hour,
        "{modified:?} vs now {now:?}"
    );

    let fingerprint = |i: &ObjectInfo| (i.size, i.modified, i.etag.clone());
    store.put(key, version(2)).await?;
    let second = stat().await?;
    assert!(second.modified >= first.modified);
    if fingerprint(&second) == fingerprint(&first) {
        // Only when the time is coarse (SFTP: whole seconds; a folder: the
        // kernel's tick) and the tag, if any, is made of time and size
        // (Apache). A poll fetches what changed within 2 s anyway; a write
        // a second later must show.
        eprintln!(
            "{}: a rewrite within the clock's resolution kept the fingerprint {:?}",
            store.describe(),
            fingerprint(&first)
        );
        tokio::time::sleep(Duration::from_millis(1100)).await;
        store.put(key, version(3)).await?;
        let third = stat().await?;
        assert!(third.modified > first.modified, "{third:?} after {first:?}");
    }

    // Another size: the fingerprint changes whatever the clock.
    store.put(key, Bytes::from(vec![4; 81])).await?;
    let bigger = stat().await?;
    assert_ne!(fingerprint(&bigger), fingerprint(&first));
    assert!(bigger.modified >= first.modified);
    Ok(())
}

async fn list_prefixes(store: &dyn Backend) -> Result {
    let objects = [
        ("list/config", 1usize),
        ("list/packs/ab/ab01", 2),
        ("list/packs/ab/ab02", 3),
        ("list/packs/cd/cd01", 4),
        ("list/packsx", 5),
        ("list/index/0001", 6),
    ];
    for (key, size) in objects {
        store.put(key, Bytes::from(vec![7u8; size])).await?;
    }

    let mut all = store.list("list/").await?;
    all.sort_by(|a, b| a.key.cmp(&b.key));
    let mut expected: Vec<(&str, u64)> = objects.iter().map(|(k, s)| (*k, *s as u64)).collect();
    expected.sort();
    assert_eq!(
        all.iter().map(key_size).collect::<Vec<_>>(),
        expected,
        "full keys and sizes, no folders"
    );

    assert_eq!(
        keys(store, "list/packs/").await?,
        ["list/packs/ab/ab01", "list/packs/ab/ab02", "list/packs/cd/cd01"]
    );
    assert_eq!(
        keys(store, "list/packs/ab/").await?,
        ["list/packs/ab/ab01", "list/packs/ab/ab02"]
    );
    // A prefix is a string prefix, not only a folder.
    assert_eq!(
        keys(store, "list/packs/a").await?,
        ["list/packs/ab/ab01", "list/packs/ab/ab02"]
    );
    assert_eq!(
        keys(store, "list/packs/ab/ab0").await?,
        ["list/packs/ab/ab01", "list/packs/ab/ab02"]
    );
    assert_eq!(
        keys(store, "list/packs").await?,
        [
            "list/packs/ab/ab01",
            "list/packs/ab/ab02",
            "list/packs/cd/cd01",
            "list/packsx"
        ]
    );
    assert_eq!(keys(store, "lis").await?.len(), objects.len());
    // A full key lists that object.
    assert_eq!(keys(store, "list/config").await?, ["list/config"]);
    // Prefixes that match nothing: empty, not an error.
    assert!(keys(store, "list/nothing/").await?.is_empty());
    assert!(keys(store, "list/nothing").await?.is_empty());
    assert!(keys(store, "nowhere/at/all/").await?.is_empty());
    // An object used as if it were a folder.
    assert!(keys(store, "list/config/").await?.is_empty());
    Ok(())
}

async fn delete(store: &dyn Backend) -> Result {
    store.put("del/a/one", Bytes::from_static(b"1")).await?;
    store.put("del/a/two", Bytes::from_static(b"2")).await?;
    store.delete("del/a/one").await?;
    expect_not_found(store.get("del/a/one", None).await, "del/a/one");
    assert_eq!(store.stat("del/a/one").await?, None);
    assert_eq!(keys(store, "del/").await?, ["del/a/two"]);
    // Twice is fine.
    store.delete("del/a/one").await?;
    // Removing the last object of a folder leaves nothing listed under it.
    store.delete("del/a/two").await?;
    assert!(keys(store, "del/").await?.is_empty());
    assert!(keys(store, "del/a/").await?.is_empty());
    // The key can be used again.
    store.put("del/a/one", Bytes::from_static(b"again")).await?;
    assert_eq!(store.get("del/a/one", None).await?, &b"again"[..]);
    Ok(())
}

async fn delete_many(store: &dyn Backend) -> Result {
    let all: Vec<String> = (0..40).map(|i| format!("delmany/{:02}/{i}", i % 3)).collect();
    let puts = all.iter().map(|key| store.put(key, Bytes::from_static(b"x")));
    for result in futures::future::join_all(puts).await {
        result?;
    }
    // Missing keys, and a key named twice, are deleted as far as anyone can tell.
    let mut gone: Vec<String> = all[..30].to_vec();
    gone.extend([
        "delmany/missing".to_string(),
        "never/was/here".to_string(),
        all[3].clone(),
    ]);
    store.delete_many(&gone).await?;
    let mut left = all[30..].to_vec();
    left.sort();
    assert_eq!(keys(store, "delmany/").await?, left);
    for key in &all[..30] {
        assert_eq!(store.stat(key).await?, None, "{key}");
    }
    store.delete_many(&[]).await?;
    // Twice is fine.
    store.delete_many(&gone).await?;
    assert!(store.delete_many(&["ok/key".into(), "a//b".into()]).await.is_err());
    assert!(store.delete_batch_max() >= 1);
    Ok(())
}

async fn folders_are_not_objects(store: &dyn Backend) -> Result {
    store.put("dir/sub/obj", Bytes::from_static(b"x")).await?;
    assert_eq!(store.stat("dir/sub").await?, None);
    assert_eq!(store.stat("dir").await?, None);
    expect_not_found(store.get("dir/sub", None).await, "dir/sub");
    // Below an object there is nothing.
    assert_eq!(store.stat("dir/sub/obj/child").await?, None);
    expect_not_found(store.get("dir/sub/obj/child", None).await, "dir/sub/obj/child");
    Ok(())
}

async fn invalid_keys(store: &dyn Backend) -> Result {
    for key in [
        "",
        "/abs",
        "trailing/",
        "a//b",
        "../escape",
        "a/../b",
        "./a",
        "back\\slash",
    ] {
        let err = store
            .put(key, Bytes::from_static(b"x"))
            .await
            .expect_err("an invalid key must be refused");
        assert_eq!(err.kind(), BackendErrorKind::Other, "{key:?}: {err}");
        assert!(store.get(key, None).await.is_err(), "{key:?}");
        assert!(store.stat(key).await.is_err(), "{key:?}");
        assert!(store.delete(key).await.is_err(), "{key:?}");
    }
    assert!(store.list("/").await.is_err());
    assert!(store.list("../").await.is_err());
    Ok(())
}

async fn concurrent_puts(store: &dyn Backend) -> Result {
    let puts = (0..32usize).map(|i| async move {
        let key = format!("many/{:02}/{i}", i % 4);
        store.put(&key, Bytes::from(vec![i as u8; i])).await
    });
    for result in futures::future::join_all(puts).await {
        result?;
    }
    assert_eq!(store.list("many/").await?.len(), 32);
    for i in 0..32 {
        let key = format!("many/{:02}/{i}", i % 4);
        assert_eq!(store.get(&key, None).await?, Bytes::from(vec![i as u8; i]));
    }
    Ok(())
}

async fn only_suite_objects_remain(store: &dyn Backend) -> Result {
    let folders = [
        "basic/", "range/", "over/", "stamp/", "list/", "del/", "delmany/", "dir/", "many/",
    ];
    for key in keys(store, "").await? {
        assert!(!key.starts_with('/'), "{key}");
        assert!(folders.iter().any(|f| key.starts_with(f)), "unexpected object {key}");
    }
    Ok(())
}

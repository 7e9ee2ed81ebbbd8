//! The conformance suite against real servers: the stores named in
//! `NIMBUS_TEST_REMOTE_STORES` (space-separated addresses, each used under a
//! new folder of its own). `tests/cloud/run.sh` starts Garage, Apache
//! mod_dav and OpenSSH on 127.0.0.1 and sets it; without it these tests
//! say they were skipped and pass.
//!
//! Credentials come as for the CLI's scripts: S3 keys from the standard
//! `AWS_*` variables, the WebDAV password from `NIMBUS_STORE_PASSWORD`.

mod conformance;

use bytes::Bytes;
use nimbus_backend::{open_store_with, Backend, BackendErrorKind, StoreAccess, StoreCredentials, StoreUrl};
use zeroize::Zeroizing;

fn stores() -> Vec<String> {
    match std::env::var("NIMBUS_TEST_REMOTE_STORES") {
        Ok(s) if !s.trim().is_empty() => s.split_whitespace().map(str::to_string).collect(),
        _ => {
            eprintln!("skipped: NIMBUS_TEST_REMOTE_STORES is not set (tests/cloud/run.sh sets it)");
            Vec::new()
        }
    }
}

/// `address` with `folder` added to its path (before any `?settings`).
fn under(address: &str, folder: &str) -> String {
    let (base, query) = address.split_once('?').map_or((address, ""), |(b, q)| (b, q));
    let sep = if base.ends_with('/') { "" } else { "/" };
    match query {
        "" => format!("{base}{sep}{folder}"),
        q => format!("{base}{sep}{folder}?{q}"),
    }
}

fn access() -> StoreAccess {
    StoreAccess {
        credentials: StoreCredentials {
            s3: None,
            password: std::env::var("NIMBUS_STORE_PASSWORD").ok().map(Zeroizing::new),
        },
        limits: None,
    }
}

fn open(address: &str) -> nimbus_backend::DynBackend {
    let url = StoreUrl::parse(address).unwrap_or_else(|e| panic!("{address}: {e}"));
    open_store_with(&url, &access()).unwrap_or_else(|e| panic!("{address}: {e}"))
}

fn fresh_folder() -> String {
    format!("test-{:016x}", rand::random::<u64>())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_servers_conform() {
    for address in stores() {
        let address = under(&address, &fresh_folder());
        eprintln!("conformance: {address}");
        let store = open(&address);
        assert!(!store.is_local());
        conformance::run(store.as_ref())
            .await
            .unwrap_or_else(|e| panic!("{address}: {e} (key {:?})", e.key()));
    }
}

/// What a poll compares comes with the listing: S3 and WebDAV send a tag,
/// every server a time, and a listing of many objects carries them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_carry_times_and_tags() {
    for address in stores() {
        let url = StoreUrl::parse(&address).expect("parse");
        let tags = matches!(url, StoreUrl::S3(_) | StoreUrl::WebDav(_));
        let address = under(&address, &fresh_folder());
        let store = open(&address);
        for i in 0..5u8 {
            store
                .put(&format!("refs/{i}"), Bytes::from(vec![i; 80]))
                .await
                .expect("put");
        }
        let listed = store.list("refs/").await.expect("list");
        assert_eq!(listed.len(), 5, "{address}");
        for info in &listed {
            assert!(info.modified.is_some(), "{address}: {info:?}");
            assert_eq!(info.etag.is_some(), tags, "{address}: {info:?}");
            let stat = store.stat(&info.key).await.expect("stat");
            assert_eq!(stat.as_ref(), Some(info), "{address}: a listing and a stat agree");
        }
        eprintln!("{address}: {:?}", listed[0]);
    }
}

/// A pack-sized object and a bigger one (S3 sends it in parts) come back
/// whole and by ranges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_objects_and_ranges() {
    for address in stores() {
        let address = under(&address, &fresh_folder());
        let store = open(&address);
        for size in [16 << 20, (nimbus_backend::MULTIPART_CHUNK * 3) + 12345] {
            let data: Vec<u8> = (0..size).map(|i| (i * 7 + i / 4096) as u8).collect();
            let data = Bytes::from(data);
            store.put("packs/big", data.clone()).await.expect("put");
            assert_eq!(
                store.stat("packs/big").await.expect("stat").map(|i| i.size),
                Some(size as u64)
            );
            let back = store.get("packs/big", None).await.expect("get");
            assert!(back == data, "{address}: {size} bytes differ");
            let mid = store.get("packs/big", Some(5_000_000..5_000_100)).await.expect("range");
            assert_eq!(&mid[..], &data[5_000_000..5_000_100]);
            let tail = store
                .get("packs/big", Some(size as u64 - 10..size as u64 + 100))
                .await
                .expect("range past the end");
            assert_eq!(&tail[..], &data[size - 10..]);
        }
        store.delete("packs/big").await.expect("delete");
    }
}

/// A wrong secret is refused in plain words, as a permanent error (so it
/// is not retried), and the message holds no secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_are_refused_at_once() {
    for address in stores() {
        let url = StoreUrl::parse(&address).expect("parse");
        let credentials = match &url {
            StoreUrl::S3(_) => StoreCredentials {
                s3: Some(nimbus_backend::S3Keys {
                    access_key_id: std::env::var("AWS_ACCESS_KEY_ID").unwrap_or_default(),
                    secret_access_key: Zeroizing::new("0".repeat(64)),
                }),
                password: None,
            },
            StoreUrl::WebDav(_) => StoreCredentials {
                s3: None,
                password: Some(Zeroizing::new("not the password".into())),
            },
            // SFTP logs in with keys; tests/cloud/run.sh checks a refused key.
            _ => continue,
        };
        let store = open_store_with(
            &url,
            &StoreAccess {
                credentials,
                limits: None,
            },
        )
        .expect("open");
        let err = store.get("config", None).await.expect_err("refused");
        assert_eq!(err.kind(), BackendErrorKind::PermissionDenied, "{address}: {err}");
        // Permanent: the retrying layer gives up on it at the first attempt.
        assert!(!err.is_transient(), "{address}: {err}");
        let text = err.to_string();
        assert!(text.contains("refused"), "{text}");
        assert!(
            !text.contains(&"0".repeat(64)) && !text.contains("not the password"),
            "{text}"
        );
        eprintln!("{address}: {text}");
    }
}

/// Many deletes: S3 takes 1,000 keys a request (`DeleteObjects`), so 2,500
/// objects and 10 missing keys go in 3 requests; stores without batches
/// send one request a key. Every object is gone afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_deletes_go_in_batches() {
    use futures::StreamExt;
    for address in stores() {
        let url = StoreUrl::parse(&address).expect("parse");
        let batches = matches!(url, StoreUrl::S3(_));
        let address = under(&address, &fresh_folder());
        let limits = std::sync::Arc::new(nimbus_backend::NetLimits::default());
        let store = open_store_with(
            &StoreUrl::parse(&address).expect("parse"),
            &StoreAccess {
                limits: Some(limits.clone()),
                ..access()
            },
        )
        .expect("open");
        let n = if batches { 2500 } else { 60 };
        let keys: Vec<String> = (0..n).map(|i| format!("packs/{:02x}/{i:06}", i % 256)).collect();
        let mut puts = futures::stream::iter(&keys)
            .map(|key| store.put(key, Bytes::from_static(b"pack")))
            .buffer_unordered(16);
        while let Some(res) = puts.next().await {
            res.unwrap_or_else(|e| panic!("{address}: put: {e}"));
        }
        assert_eq!(store.list("packs/").await.expect("list").len(), n, "{address}");

        let mut doomed = keys.clone();
        doomed.extend((0..10).map(|i| format!("packs/zz/missing{i}")));
        let before = limits.requests().delete;
        store
            .delete_many(&doomed)
            .await
            .unwrap_or_else(|e| panic!("{address}: delete_many: {e}"));
        let sent = limits.requests().delete - before;
        let want = if batches { 3 } else { doomed.len() as u64 };
        assert_eq!(sent, want, "{address}: delete requests");
        assert_eq!(store.delete_batch_max(), if batches { 1000 } else { 1 }, "{address}");
        assert!(store.list("packs/").await.expect("list").is_empty(), "{address}");
        for key in keys.iter().step_by(97) {
            assert_eq!(store.stat(key).await.expect("stat"), None, "{address}: {key}");
        }
        eprintln!("{address}: {} keys deleted in {sent} requests", doomed.len());
    }
}

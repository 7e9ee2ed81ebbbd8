//! The fault-injecting wrapper: same seed, same faults; each kind of fault
//! does what it says and nothing more.

use bytes::Bytes;
use nimbus_backend::{Backend, BackendErrorKind, DynBackend, FaultConfig, FaultStats, FaultyBackend, MemoryBackend};
use std::sync::Arc;
use std::time::Duration;

fn faulty(config: FaultConfig) -> FaultyBackend<MemoryBackend> {
    FaultyBackend::new(MemoryBackend::new(), config)
}

/// Which of `n` puts failed, as a string of `x` (failed) and `.` (ok).
async fn failure_pattern(store: &FaultyBackend<MemoryBackend>, n: usize) -> String {
    let mut pattern = String::new();
    for i in 0..n {
        let ok = store.put(&format!("k/{i}"), Bytes::from_static(b"v")).await.is_ok();
        pattern.push(if ok { '.' } else { 'x' });
    }
    pattern
}

#[tokio::test]
async fn same_seed_gives_same_faults() {
    let config = FaultConfig {
        error_rate: 0.5,
        seed: 42,
        ..FaultConfig::default()
    };
    let a = failure_pattern(&faulty(config.clone()), 200).await;
    let b = failure_pattern(&faulty(config.clone()), 200).await;
    assert_eq!(a, b);
    assert!(a.contains('x') && a.contains('.'), "{a}");

    let other = FaultConfig { seed: 43, ..config };
    let c = failure_pattern(&faulty(other), 200).await;
    assert_ne!(a, c, "another seed, other faults");
}

#[tokio::test]
async fn injected_errors_are_transient_and_never_reach_the_store() {
    let store = faulty(FaultConfig {
        error_rate: 1.0,
        ..FaultConfig::default()
    });
    let err = store
        .put("packs/ab", Bytes::from_static(b"data"))
        .await
        .expect_err("injected");
    assert_eq!(err.kind(), BackendErrorKind::Unavailable);
    assert!(err.is_transient());
    assert_eq!(err.key(), Some("packs/ab"));
    assert!(err.to_string().contains("check the network and try again"), "{err}");
    assert_eq!(store.inner().stat("packs/ab").await.expect("stat"), None);
    assert!(store.get("packs/ab", None).await.is_err());
    assert!(store.list("").await.is_err());
    assert!(store.stat("packs/ab").await.is_err());
    assert!(store.delete("packs/ab").await.is_err());
    assert_eq!(store.stats().injected_errors, 5);

    // Back to normal at run time.
    store.set_error_rate(0.0);
    store.put("packs/ab", Bytes::from_static(b"data")).await.expect("put");
    assert_eq!(store.get("packs/ab", None).await.expect("get"), &b"data"[..]);
}

#[tokio::test]
async fn error_rate_is_roughly_kept() {
    let store = faulty(FaultConfig {
        error_rate: 0.3,
        seed: 7,
        ..FaultConfig::default()
    });
    let pattern = failure_pattern(&store, 1000).await;
    let failed = pattern.chars().filter(|c| *c == 'x').count();
    // Fixed by the seed, so this never flakes; the bounds only say the
    // rate means what it says.
    assert!((200..400).contains(&failed), "{failed} of 1000 failed");
    assert_eq!(store.stats().injected_errors, failed as u64);
    assert_eq!(store.inner().list("k/").await.expect("list").len(), 1000 - failed);
}

#[tokio::test]
async fn offline_switch() {
    let store = faulty(FaultConfig::default());
    store.put("config", Bytes::from_static(b"c")).await.expect("put");
    store.set_offline(true);
    assert!(store.is_offline());
    for err in [
        store.get("config", None).await.expect_err("offline"),
        store.put("other", Bytes::new()).await.expect_err("offline"),
        store.list("").await.expect_err("offline"),
        store.stat("config").await.expect_err("offline"),
        store.delete("config").await.expect_err("offline"),
    ] {
        assert_eq!(err.kind(), BackendErrorKind::Unavailable);
        assert!(err.to_string().contains("offline"), "{err}");
    }
    store.set_offline(false);
    assert_eq!(store.get("config", None).await.expect("get"), &b"c"[..]);
    assert_eq!(store.stat("other").await.expect("stat"), None);
}

#[tokio::test]
async fn puts_stop_after_the_limit() {
    let store = faulty(FaultConfig {
        fail_puts_after: Some(2),
        ..FaultConfig::default()
    });
    store.put("a", Bytes::from_static(b"1")).await.expect("first");
    store.put("b", Bytes::from_static(b"2")).await.expect("second");
    let err = store.put("c", Bytes::from_static(b"3")).await.expect_err("third");
    assert_eq!(err.kind(), BackendErrorKind::Unavailable);
    assert!(store.put("d", Bytes::from_static(b"4")).await.is_err());
    // Other calls still work.
    assert_eq!(store.get("a", None).await.expect("get"), &b"1"[..]);
    assert_eq!(store.list("").await.expect("list").len(), 2);

    store.set_fail_puts_after(Some(1));
    store.put("c", Bytes::from_static(b"3")).await.expect("one more");
    assert!(store.put("d", Bytes::from_static(b"4")).await.is_err());
    store.set_fail_puts_after(None);
    store.put("d", Bytes::from_static(b"4")).await.expect("no limit");
}

#[tokio::test]
async fn truncated_reads_are_short() {
    let store = faulty(FaultConfig {
        truncate_reads: 1.0,
        seed: 3,
        ..FaultConfig::default()
    });
    let data = Bytes::from(vec![9u8; 1000]);
    store.put("obj", data.clone()).await.expect("put");
    store.put("empty", Bytes::new()).await.expect("put");
    for _ in 0..20 {
        let got = store.get("obj", None).await.expect("get");
        assert!(got.len() < data.len());
        assert_eq!(got, data[..got.len()], "a prefix of the real bytes");
    }
    let got = store.get("obj", Some(100..200)).await.expect("get");
    assert!(got.len() < 100);
    assert_eq!(store.get("empty", None).await.expect("get"), Bytes::new());
    assert_eq!(store.stats().truncated_reads, 21);

    store.set_truncate_reads(0.0);
    assert_eq!(store.get("obj", None).await.expect("get"), data);
}

#[tokio::test]
async fn stats_count_calls_and_bytes() {
    let store = faulty(FaultConfig::default());
    store.put("a", Bytes::from(vec![0u8; 100])).await.expect("put");
    store.put("b/c", Bytes::from(vec![0u8; 50])).await.expect("put");
    store.get("a", Some(10..30)).await.expect("get");
    store.get("b/c", None).await.expect("get");
    assert!(store.get("missing", None).await.is_err());
    store.list("b/").await.expect("list");
    store.stat("a").await.expect("stat");
    store.delete("a").await.expect("delete");
    assert_eq!(
        store.stats(),
        FaultStats {
            gets: 3,
            get_bytes: 70,
            puts: 2,
            put_bytes: 150,
            lists: 1,
            deletes: 1,
            stats: 1,
            injected_errors: 0,
            truncated_reads: 0,
        }
    );
    store.reset_stats();
    assert_eq!(store.stats(), FaultStats::default());
}

/// The delay is waited (on tokio's paused clock, so the test takes no real
/// time) and does not change results.
#[tokio::test(start_paused = true)]
async fn delay_keeps_results() {
    let store = faulty(FaultConfig {
        delay: Some(Duration::from_secs(30)),
        ..FaultConfig::default()
    });
    store.put("k", Bytes::from_static(b"v")).await.expect("put");
    assert_eq!(store.get("k", None).await.expect("get"), &b"v"[..]);
    store.set_delay(None);
    assert_eq!(store.list("").await.expect("list").len(), 1);
}

#[tokio::test]
async fn wraps_a_shared_backend() {
    let inner: DynBackend = Arc::new(MemoryBackend::new());
    let store: DynBackend = Arc::new(FaultyBackend::new(inner.clone(), FaultConfig::default()));
    store.put("k", Bytes::from_static(b"v")).await.expect("put");
    assert_eq!(inner.get("k", None).await.expect("get"), &b"v"[..]);
    assert!(store.describe().contains("injected faults"));
}

//! Limits on what a store is sent: how many requests are in flight at once,
//! and upload and download bandwidth. One [`NetLimits`] is shared by every
//! request to a store and can be changed while a drive is mounted; requests
//! already waiting for their turn see the change at once.
//!
//! Bandwidth is paced per request: a request of `n` bytes reserves the next
//! `n / rate` seconds of the link, waits for its slot, then goes at full
//! speed. Over a few requests the rate is what was asked; within one request
//! it is not, which no store notices. Uploads wait before they are sent;
//! downloads are charged once their size is known, so the next one waits.
//!
//! It also counts what went to the store: bytes each way, and requests by
//! kind, so a person (and the benchmark) can see what a drive costs.

use async_trait::async_trait;
use bytes::Bytes;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::{Notify, Semaphore};
use tokio::time::Instant;

use crate::{Backend, BackendError, ObjectInfo};

/// Requests sent at once to one store, by default. Enough to fill a fast
/// link with 16 MiB packs and keep small reads from queueing behind them;
/// few enough that a home router and a small server stay responsive.
pub const DEFAULT_IN_FLIGHT: usize = 16;

/// The limits of one store.
#[derive(Debug)]
pub struct NetLimits {
    in_flight: Semaphore,
    max_in_flight: usize,
    up: Pace,
    down: Pace,
    counts: Counts,
}

/// Bytes moved and requests sent so far, for the service's transfer rates.
#[derive(Debug, Default)]
struct Counts {
    sent: AtomicU64,
    received: AtomicU64,
    sending: AtomicU64,
    lists: AtomicU64,
    stats: AtomicU64,
    gets: AtomicU64,
    puts: AtomicU64,
    deletes: AtomicU64,
}

/// Requests sent to a store, by kind, since its [`NetLimits`] was made.
///
/// One count is one call of [`Backend`]: sent, whether it then succeeded or
/// failed (a retried call counts each attempt, as the store sees them). The
/// store may answer one call with a few HTTP requests: a listing of many
/// pages, a multipart upload, a folder made before a WebDAV write.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestCounts {
    pub list: u64,
    pub stat: u64,
    /// Reads, whole or of a range.
    pub get: u64,
    pub put: u64,
    /// Delete requests: one per key, or one per batch where the store
    /// deletes in batches ([`Backend::delete_many`]).
    pub delete: u64,
}

impl RequestCounts {
    /// All requests of every kind.
    pub fn total(&self) -> u64 {
        self.list + self.stat + self.get + self.put + self.delete
    }
}

impl Default for NetLimits {
    fn default() -> Self {
        NetLimits::new(DEFAULT_IN_FLIGHT)
    }
}

impl NetLimits {
    /// At most `max_in_flight` requests at once, no bandwidth limit.
    pub fn new(max_in_flight: usize) -> Self {
        let max_in_flight = max_in_flight.max(1);
        NetLimits {
            in_flight: Semaphore::new(max_in_flight),
            max_in_flight,
            up: Pace::default(),
            down: Pace::default(),
            counts: Counts::default(),
        }
    }

    /// Bytes of finished uploads (every attempt counts: what went over the wire).
    pub fn bytes_sent(&self) -> u64 {
        self.counts.sent.load(Ordering::Relaxed)
    }

    /// Bytes of finished downloads.
    pub fn bytes_received(&self) -> u64 {
        self.counts.received.load(Ordering::Relaxed)
    }

    /// Bytes of uploads under way right now.
    pub fn bytes_sending(&self) -> u64 {
        self.counts.sending.load(Ordering::Relaxed)
    }

    /// Requests sent so far, by kind.
    pub fn requests(&self) -> RequestCounts {
        let c = &self.counts;
        RequestCounts {
            list: c.lists.load(Ordering::Relaxed),
            stat: c.stats.load(Ordering::Relaxed),
            get: c.gets.load(Ordering::Relaxed),
            put: c.puts.load(Ordering::Relaxed),
            delete: c.deletes.load(Ordering::Relaxed),
        }
    }

    /// Upload limit in bytes per second; `None` for none.
    pub fn set_upload_limit(&self, bytes_per_second: Option<u64>) {
        self.up.set_rate(bytes_per_second);
    }

    /// Download limit in bytes per second; `None` for none.
    pub fn set_download_limit(&self, bytes_per_second: Option<u64>) {
        self.down.set_rate(bytes_per_second);
    }

    pub fn upload_limit(&self) -> Option<u64> {
        self.up.rate()
    }

    pub fn download_limit(&self) -> Option<u64> {
        self.down.rate()
    }

    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight
    }

    /// Requests being sent right now.
    pub fn in_flight(&self) -> usize {
        self.max_in_flight - self.in_flight.available_permits()
    }
}

/// Pacing of one direction.
#[derive(Debug, Default)]
struct Pace {
    /// Bytes per second; 0 is no limit.
    rate: AtomicU64,
    /// When the link is free again, by what has been reserved.
    next_free: Mutex<Option<Instant>>,
    /// Woken when the rate changes, so waiters reserve again.
    changed: Notify,
}

impl Pace {
    fn rate(&self) -> Option<u64> {
        Some(self.rate.load(Ordering::Relaxed)).filter(|r| *r > 0)
    }

    fn set_rate(&self, rate: Option<u64>) {
        self.rate.store(rate.unwrap_or(0), Ordering::Relaxed);
        // What was reserved at the old rate no longer holds.
        *self.next_free.lock().unwrap_or_else(PoisonError::into_inner) = None;
        self.changed.notify_waiters();
    }

    /// Reserves `n` bytes of the link and returns when they may go.
    async fn take(&self, n: u64) {
        loop {
            let changed = self.changed.notified();
            let Some(rate) = self.rate() else { return };
            let start = {
                let mut next = self.next_free.lock().unwrap_or_else(PoisonError::into_inner);
                let now = Instant::now();
                let start = burst_start(*next, now, BURST);
                *next = Some(start + Duration::from_secs_f64(n as f64 / rate as f64));
                start
            };
            tokio::select! {
                _ = tokio::time::sleep_until(start) => return,
                _ = changed => continue,
            }
        }
    }
}

/// Counts an upload as under way until dropped (also when the request is
/// given up half way).
struct Sending<'a>(&'a AtomicU64, u64);

impl<'a> Sending<'a> {
    fn new(c: &'a AtomicU64, n: u64) -> Self {
        c.fetch_add(n, Ordering::Relaxed);
        Sending(c, n)
    }
}

impl Drop for Sending<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(self.1, Ordering::Relaxed);
    }
}

/// Wraps a backend so every request goes through [`NetLimits`].
#[derive(Debug)]
pub struct LimitedBackend<B> {
    inner: B,
    limits: Arc<NetLimits>,
}

impl<B: Backend> LimitedBackend<B> {
    pub fn new(inner: B, limits: Arc<NetLimits>) -> Self {
        LimitedBackend { inner, limits }
    }

    /// Waits for a turn to send a request of the kind `counter` counts, and
    /// counts it as sent.
    async fn slot(&self, counter: fn(&Counts) -> &AtomicU64) -> Result<tokio::sync::SemaphorePermit<'_>, BackendError> {
        let permit = self
            .limits
            .in_flight
            .acquire()
            .await
            .map_err(|_| BackendError::other("the store's request limiter was closed; restart the drive"))?;
        counter(&self.limits.counts).fetch_add(1, Ordering::Relaxed);
        Ok(permit)
    }
}

#[async_trait]
impl<B: Backend> Backend for LimitedBackend<B> {
    async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<Bytes, BackendError> {
        let _slot = self.slot(|c| &c.gets).await?;
        let data = self.inner.get(key, range).await?;
        drop(_slot);
        self.limits
            .counts
            .received
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        self.limits.down.take(data.len() as u64).await;
        Ok(data)
    }

    async fn get_whole(&self, key: &str, max: u64) -> Result<Bytes, BackendError> {
        let _slot = self.slot(|c| &c.gets).await?;
        let data = self.inner.get_whole(key, max).await?;
        drop(_slot);
        self.limits
            .counts
            .received
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        self.limits.down.take(data.len() as u64).await;
        Ok(data)
    }

    async fn put(&self, key: &str, data: Bytes) -> Result<(), BackendError> {
        // Under way from the moment it waits for its turn.
        let n = data.len() as u64;
        let counts = &self.limits.counts;
        let _sending = Sending::new(&counts.sending, n);
        self.limits.up.take(n).await;
        let res = match self.slot(|c| &c.puts).await {
            Ok(_slot) => self.inner.put(key, data).await,
            Err(e) => Err(e),
        };
        if res.is_ok() {
            counts.sent.fetch_add(n, Ordering::Relaxed);
        }
        res
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, BackendError> {
        let _slot = self.slot(|c| &c.lists).await?;
        self.inner.list(prefix).await
    }

    async fn delete(&self, key: &str) -> Result<(), BackendError> {
        let _slot = self.slot(|c| &c.deletes).await?;
        self.inner.delete(key).await
    }

    /// One request, one turn and one count per batch the store takes (per
    /// key where it has no batches).
    async fn delete_many(&self, keys: &[String]) -> Result<(), BackendError> {
        let batch = self.inner.delete_batch_max();
        crate::for_each_batch(keys.len(), batch, self.limits.max_in_flight, |range| async move {
            let _slot = self.slot(|c| &c.deletes).await?;
            self.inner.delete_many(&keys[range]).await
        })
        .await
    }

    fn delete_batch_max(&self) -> usize {
        self.inner.delete_batch_max()
    }

    async fn stat(&self, key: &str) -> Result<Option<ObjectInfo>, BackendError> {
        let _slot = self.slot(|c| &c.stats).await?;
        self.inner.stat(key).await
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn is_local(&self) -> bool {
        self.inner.is_local()
    }

    fn limits(&self) -> Option<Arc<NetLimits>> {
        Some(self.limits.clone())
    }
}

/// An idle link lends at most this much time of burst.
const BURST: Duration = Duration::from_secs(1);

/// When the next transfer may start: after the one before, but no earlier
/// than `burst` ago. Right after boot the monotonic clock can be younger
/// than `burst`; then there is no earlier time to lend (review L14).
fn burst_start(next: Option<Instant>, now: Instant, burst: Duration) -> Instant {
    let earliest = now.checked_sub(burst).unwrap_or(now);
    next.map_or(now, |t| t.max(earliest))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::MemoryBackend;

    /// `now - burst` panicked when the clock was younger than the burst
    /// (right after boot); a burst longer than any clock shows it here.
    #[test]
    fn a_clock_younger_than_the_burst_does_not_panic() {
        let now = Instant::now();
        let older_than_any_clock = Duration::MAX;
        assert_eq!(burst_start(Some(now), now, older_than_any_clock), now);
        assert_eq!(burst_start(None, now, older_than_any_clock), now);
        let later = now + Duration::from_secs(3);
        assert_eq!(burst_start(Some(later), now, BURST), later);
    }

    #[tokio::test(start_paused = true)]
    async fn uploads_are_paced_to_the_limit_and_a_new_limit_applies_at_once() {
        let limits = Arc::new(NetLimits::new(4));
        limits.set_upload_limit(Some(1000));
        let b = Arc::new(LimitedBackend::new(MemoryBackend::new(), limits.clone()));
        let t0 = Instant::now();
        // 1 s of burst, then 5 × 1000 bytes at 1000 B/s: the last starts at ~4 s.
        for i in 0..5 {
            b.put(&format!("k{i}"), Bytes::from(vec![0u8; 1000])).await.unwrap();
        }
        let took = t0.elapsed();
        assert!(
            took >= Duration::from_millis(3900) && took <= Duration::from_millis(4100),
            "{took:?}"
        );

        // A waiter at a very low rate is released when the limit is lifted.
        limits.set_upload_limit(Some(1));
        b.put("big", Bytes::from(vec![0u8; 10])).await.unwrap();
        let waiting = {
            let b = b.clone();
            tokio::spawn(async move { b.put("next", Bytes::from(vec![0u8; 10])).await })
        };
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(!waiting.is_finished(), "should wait ~9 s at 1 B/s");
        let t1 = Instant::now();
        limits.set_upload_limit(None);
        waiting.await.unwrap().unwrap();
        assert!(t1.elapsed() < Duration::from_millis(10));
    }

    /// Each call counts once under its kind, failed ones too; the wrapped
    /// store's own follow-up requests (none here) are not seen.
    #[tokio::test]
    async fn requests_are_counted_by_kind() {
        let limits = Arc::new(NetLimits::new(4));
        let mem = Arc::new(MemoryBackend::new());
        let faulty = Arc::new(crate::FaultyBackend::new(mem, crate::FaultConfig::default()));
        let b = LimitedBackend::new(faulty.clone(), limits.clone());
        assert_eq!(limits.requests(), RequestCounts::default());

        b.put("a", Bytes::from_static(b"1")).await.unwrap();
        b.put("b", Bytes::from_static(b"22")).await.unwrap();
        b.get("a", None).await.unwrap();
        b.get("b", Some(0..1)).await.unwrap();
        b.get_whole("b", 10).await.unwrap();
        b.list("").await.unwrap();
        b.stat("a").await.unwrap();
        b.stat("missing").await.unwrap();
        b.delete("a").await.unwrap();
        let want = RequestCounts {
            list: 1,
            stat: 2,
            get: 3,
            put: 2,
            delete: 1,
        };
        assert_eq!(limits.requests(), want);
        assert_eq!(want.total(), 9);

        // Sent and failed: the store saw them, so they count.
        assert!(b.get("a", None).await.is_err());
        faulty.set_offline(true);
        assert!(b.list("").await.is_err());
        assert!(b.put("c", Bytes::from_static(b"ccc")).await.is_err());
        let after = limits.requests();
        assert_eq!((after.get, after.list, after.put), (4, 2, 3));
        // Nothing else moved.
        assert_eq!((after.stat, after.delete), (2, 1));
        assert_eq!(limits.bytes_sent(), 3, "failed puts send no counted bytes");
    }

    /// A store that deletes `max` keys a request, and records the batches.
    #[derive(Debug, Default)]
    pub(crate) struct Batching {
        pub(crate) mem: MemoryBackend,
        pub(crate) batches: Mutex<Vec<usize>>,
        pub(crate) max: usize,
    }

    #[async_trait]
    impl Backend for Batching {
        async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<Bytes, BackendError> {
            self.mem.get(key, range).await
        }
        async fn put(&self, key: &str, data: Bytes) -> Result<(), BackendError> {
            self.mem.put(key, data).await
        }
        async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, BackendError> {
            self.mem.list(prefix).await
        }
        async fn delete(&self, key: &str) -> Result<(), BackendError> {
            self.delete_many(&[key.to_string()]).await
        }
        async fn delete_many(&self, keys: &[String]) -> Result<(), BackendError> {
            assert!(keys.len() <= self.max, "a batch of {} keys", keys.len());
            self.batches.lock().unwrap().push(keys.len());
            self.mem.delete_many(keys).await
        }
        fn delete_batch_max(&self) -> usize {
            self.max
        }
        async fn stat(&self, key: &str) -> Result<Option<ObjectInfo>, BackendError> {
            self.mem.stat(key).await
        }
        fn describe(&self) -> String {
            "batching".into()
        }
    }

    /// One request counted per batch where the store batches, per key where
    /// it does not.
    #[tokio::test]
    async fn many_deletes_count_one_request_per_batch() {
        let limits = Arc::new(NetLimits::new(4));
        let inner = Batching {
            max: 100,
            ..Default::default()
        };
        let keys: Vec<String> = (0..250).map(|i| format!("packs/{i}")).collect();
        for key in &keys {
            inner.put(key, Bytes::from_static(b"p")).await.unwrap();
        }
        let b = LimitedBackend::new(inner, limits.clone());
        assert_eq!(b.delete_batch_max(), 100);
        b.delete_many(&keys).await.unwrap();
        assert_eq!(limits.requests().delete, 3);
        let mut batches = b.inner.batches.lock().unwrap().clone();
        batches.sort();
        assert_eq!(batches, [50, 100, 100]);
        assert!(b.list("").await.unwrap().is_empty());

        let limits = Arc::new(NetLimits::new(4));
        let b = LimitedBackend::new(MemoryBackend::new(), limits.clone());
        for key in &keys[..20] {
            b.put(key, Bytes::from_static(b"p")).await.unwrap();
        }
        b.delete_many(&keys[..30]).await.unwrap();
        assert_eq!(limits.requests().delete, 30);
        assert!(b.list("").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn requests_in_flight_are_bounded() {
        let limits = Arc::new(NetLimits::new(2));
        let slow = crate::FaultyBackend::new(
            Arc::new(MemoryBackend::new()),
            crate::FaultConfig {
                delay: Some(Duration::from_millis(100)),
                ..Default::default()
            },
        );
        let b = Arc::new(LimitedBackend::new(slow, limits.clone()));
        let mut tasks = Vec::new();
        for i in 0..6 {
            let b = b.clone();
            tasks.push(tokio::spawn(async move { b.put(&format!("k{i}"), Bytes::new()).await }));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(limits.in_flight(), 2);
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert_eq!(limits.in_flight(), 0);
    }
}

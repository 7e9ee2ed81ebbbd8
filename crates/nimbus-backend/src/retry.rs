//! Retries of transient failures, for any backend.
//!
//! A request that fails with a transient error (the store is unreachable,
//! times out, or answers "try again") is repeated after an exponential
//! backoff with jitter, up to a number of attempts; a permanent error (not
//! found, permission denied, bad configuration) returns at once, so a wrong
//! credential is reported immediately rather than after a minute of retries.

use async_trait::async_trait;
use bytes::Bytes;
use std::ops::Range;
use std::time::Duration;

use crate::{Backend, BackendError, ObjectInfo};

/// How often and how patiently to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub first_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// Six attempts over about six seconds.
    fn default() -> Self {
        RetryPolicy {
            attempts: 6,
            first_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(3),
        }
    }
}

/// Wraps a backend and retries its transient failures.
#[derive(Debug)]
pub struct RetryingBackend<B> {
    inner: B,
    policy: RetryPolicy,
}

impl<B: Backend> RetryingBackend<B> {
    pub fn new(inner: B, policy: RetryPolicy) -> Self {
        RetryingBackend { inner, policy }
    }

    async fn run<T, F, Fut>(&self, mut op: F) -> Result<T, BackendError>
    where
        F: FnMut() -> Fut + Send,
        Fut: std::future::Future<Output = Result<T, BackendError>> + Send,
        T: Send,
    {
        let mut delay = self.policy.first_delay;
        let mut attempt = 1;
        loop {
            match op().await {
                Err(e) if e.is_transient() && attempt < self.policy.attempts => {
                    // Jitter keeps many clients from retrying in lockstep.
                    let jitter = Duration::from_millis(rand::random::<u64>() % (delay.as_millis() as u64 / 2 + 1));
                    tokio::time::sleep(delay + jitter).await;
                    delay = (delay * 2).min(self.policy.max_delay);
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}

#[async_trait]
impl<B: Backend> Backend for RetryingBackend<B> {
    async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<Bytes, BackendError> {
        self.run(|| self.inner.get(key, range.clone())).await
    }

    async fn get_whole(&self, key: &str, max: u64) -> Result<Bytes, BackendError> {
        self.run(|| self.inner.get_whole(key, max)).await
    }

    async fn put(&self, key: &str, data: Bytes) -> Result<(), BackendError> {
        self.run(|| self.inner.put(key, data.clone())).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, BackendError> {
        self.run(|| self.inner.list(prefix)).await
    }

    async fn delete(&self, key: &str) -> Result<(), BackendError> {
        self.run(|| self.inner.delete(key)).await
    }

    /// Each batch is retried on its own, so a failure late in a long list
    /// does not send the batches before it again.
    async fn delete_many(&self, keys: &[String]) -> Result<(), BackendError> {
        let batch = self.inner.delete_batch_max();
        let concurrency = if batch > 1 { 2 } else { crate::DELETE_CONCURRENCY };
        crate::for_each_batch(keys.len(), batch, concurrency, |range| {
            let chunk = &keys[range];
            self.run(move || self.inner.delete_many(chunk))
        })
        .await
    }

    fn delete_batch_max(&self) -> usize {
        self.inner.delete_batch_max()
    }

    async fn stat(&self, key: &str) -> Result<Option<ObjectInfo>, BackendError> {
        self.run(|| self.inner.stat(key)).await
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn is_local(&self) -> bool {
        self.inner.is_local()
    }

    fn limits(&self) -> Option<std::sync::Arc<crate::NetLimits>> {
        self.inner.limits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FaultConfig, FaultyBackend, MemoryBackend};
    use std::sync::Arc;

    #[tokio::test]
    async fn transient_failures_are_retried_permanent_ones_are_not() {
        let mem = Arc::new(MemoryBackend::new());
        mem.put("k", Bytes::from_static(b"v")).await.unwrap();
        let faulty = Arc::new(FaultyBackend::new(
            mem.clone(),
            FaultConfig {
                error_rate: 0.5,
                seed: 3,
                ..FaultConfig::default()
            },
        ));
        let policy = RetryPolicy {
            attempts: 30,
            first_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
        };
        let r = RetryingBackend::new(faulty.clone(), policy);
        for _ in 0..50 {
            assert_eq!(r.get("k", None).await.unwrap(), Bytes::from_static(b"v"));
        }
        // Not found is permanent: one attempt only.
        faulty.set_error_rate(0.0);
        let before = faulty.stats();
        assert!(r.get("missing", None).await.is_err());
        let after = faulty.stats();
        assert_eq!(after.gets - before.gets, 1);
    }

    /// Batches that fail for a while are sent again until every key is gone;
    /// batches that went through are not sent again.
    #[tokio::test]
    async fn many_deletes_retry_each_batch() {
        let inner = crate::limits::tests::Batching {
            max: 10,
            ..Default::default()
        };
        let keys: Vec<String> = (0..95).map(|i| format!("k/{i}")).collect();
        for key in &keys {
            inner.put(key, Bytes::from_static(b"v")).await.unwrap();
        }
        let faulty = FaultyBackend::new(
            inner,
            FaultConfig {
                error_rate: 0.4,
                seed: 9,
                ..FaultConfig::default()
            },
        );
        let policy = RetryPolicy {
            attempts: 40,
            first_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
        };
        let r = RetryingBackend::new(faulty, policy);
        r.delete_many(&keys).await.unwrap();
        let stats = r.inner.stats();
        assert!(r.inner.inner().mem.list("").await.unwrap().is_empty());
        assert!(stats.injected_errors > 0, "{stats:?}");
        // Failed attempts never reached the store: it saw each batch once.
        assert_eq!(r.inner.inner().batches.lock().unwrap().len(), 10);
        assert_eq!(stats.deletes, 10 + stats.injected_errors);
    }
}

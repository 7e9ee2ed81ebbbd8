//! An in-process store over OpenDAL's memory service, for fast tests.
//!
//! It goes through the same [`OpendalBackend`] code as a real store, so tests
//! that use it also exercise the key checks and the listing rules. OpenDAL's
//! memory service keeps no times or tags, so this store stamps each write
//! itself, as a real store would.

use super::OpendalBackend;
use crate::{Backend, BackendError, ObjectInfo};
use async_trait::async_trait;
use bytes::Bytes;
use opendal::Operator;
use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

/// An empty store that lives in memory and disappears with the process.
///
/// Clones share the same objects, so a test can keep one clone to look at
/// what the code under test wrote through another.
///
/// Every `put` stamps the object with a store time later than any before it
/// in this store (two writes within one tick of the clock still get
/// different times) and with a tag no other write of this store had
/// (`"w<number>"`), so a rewrite always changes the fingerprint. Objects
/// written through [`MemoryBackend::into_inner`] have neither.
#[derive(Clone, Debug)]
pub struct MemoryBackend {
    inner: OpendalBackend,
    stamps: Arc<Mutex<Stamps>>,
}

/// The store's own record of when each object was written.
#[derive(Debug, Default)]
struct Stamps {
    by_key: HashMap<String, Stamp>,
    /// The last time handed out, so the next one is later.
    last: Option<SystemTime>,
    writes: u64,
    /// How far the store's clock is ahead of this machine's.
    ahead: Duration,
}

#[derive(Debug, Clone)]
struct Stamp {
    modified: SystemTime,
    etag: String,
}

impl Stamps {
    fn stamp(&mut self, key: &str) {
        let now = SystemTime::now() + self.ahead;
        let modified = match self.last {
            Some(last) if last >= now => last + Duration::from_nanos(1),
            _ => now,
        };
        self.last = Some(modified);
        self.writes += 1;
        let etag = format!("\"w{}\"", self.writes);
        self.by_key.insert(key.to_string(), Stamp { modified, etag });
    }

    fn fill(&self, mut info: ObjectInfo) -> ObjectInfo {
        if let Some(s) = self.by_key.get(&info.key) {
            info.modified = Some(s.modified);
            info.etag = Some(s.etag.clone());
        }
        info
    }
}

impl MemoryBackend {
    /// A new, empty store.
    pub fn new() -> Self {
        Self::with_description("in-memory store")
    }

    pub(crate) fn with_description(description: impl Into<String>) -> Self {
        // Building the memory service only fails on a bad `root` setting,
        // and none is given.
        let op = Operator::new(opendal::services::Memory::default())
            .expect("the OpenDAL memory service builds without settings");
        Self {
            inner: OpendalBackend::from_operator(op, description),
            stamps: Arc::default(),
        }
    }

    fn stamps(&self) -> MutexGuard<'_, Stamps> {
        // Plain data: still whole whatever panicked while holding it.
        self.stamps.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Moves the store's clock forward: objects written from now on are
    /// stamped this much later (clones share the clock). For tests of waits
    /// measured on the store's clock, such as prune's grace period.
    pub fn advance_clock(&self, by: Duration) {
        self.stamps().ahead += by;
    }

    /// The store as a plain [`OpendalBackend`] (sharing the same objects,
    /// without their times and tags).
    pub fn into_inner(self) -> OpendalBackend {
        self.inner
    }
}

impl Default for MemoryBackend {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl Backend for MemoryBackend {
    async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<Bytes, BackendError> {
        self.inner.get(key, range).await
    }

    async fn put(&self, key: &str, data: Bytes) -> Result<(), BackendError> {
        self.inner.put(key, data).await?;
        self.stamps().stamp(key);
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, BackendError> {
        let infos = self.inner.list(prefix).await?;
        let stamps = self.stamps();
        Ok(infos.into_iter().map(|i| stamps.fill(i)).collect())
    }

    async fn delete(&self, key: &str) -> Result<(), BackendError> {
        self.inner.delete(key).await?;
        self.stamps().by_key.remove(key);
        Ok(())
    }

    async fn delete_many(&self, keys: &[String]) -> Result<(), BackendError> {
        self.inner.delete_many(keys).await?;
        let mut stamps = self.stamps();
        for key in keys {
            stamps.by_key.remove(key);
        }
        Ok(())
    }

    fn delete_batch_max(&self) -> usize {
        self.inner.delete_batch_max()
    }

    async fn stat(&self, key: &str) -> Result<Option<ObjectInfo>, BackendError> {
        let info = self.inner.stat(key).await?;
        Ok(info.map(|i| self.stamps().fill(i)))
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes in a row, faster than the clock ticks, still differ in time
    /// and tag; a listing and a stat say the same.
    #[tokio::test]
    async fn every_write_gets_a_later_time_and_a_new_tag() {
        let store = MemoryBackend::new();
        let mut seen: Vec<ObjectInfo> = Vec::new();
        for i in 0..50u8 {
            store.put("refs/a", Bytes::from(vec![i; 80])).await.unwrap();
            let stat = store.stat("refs/a").await.unwrap().unwrap();
            assert_eq!(store.list("refs/").await.unwrap(), std::slice::from_ref(&stat));
            seen.push(stat);
        }
        for pair in seen.windows(2) {
            assert!(pair[1].modified > pair[0].modified, "{pair:?}");
            assert_ne!(pair[1].etag, pair[0].etag);
        }
        // A deleted and rewritten key gets a new stamp; a clone sees it.
        store.delete("refs/a").await.unwrap();
        assert_eq!(store.stat("refs/a").await.unwrap(), None);
        store.put("refs/a", Bytes::from(vec![0; 80])).await.unwrap();
        let again = store.clone().stat("refs/a").await.unwrap().unwrap();
        assert!(again.modified > seen[49].modified);
        assert!(seen.iter().all(|s| s.etag != again.etag));
        // Written behind its back: no stamp rather than a wrong one.
        let inner = store.clone().into_inner();
        inner.put("refs/b", Bytes::from_static(b"b")).await.unwrap();
        let b = store.stat("refs/b").await.unwrap().unwrap();
        assert_eq!((b.modified, b.etag), (None, None));
    }
}

//! An in-process store over OpenDAL's memory service, for fast tests.
//!
//! It goes through the same [`OpendalBackend`] code as a real store, so tests
//! that use it also exercise the key checks and the listing rules.

use super::OpendalBackend;
use crate::{Backend, BackendError, ObjectInfo};
use async_trait::async_trait;
use bytes::Bytes;
use opendal::Operator;
use std::ops::Range;

/// An empty store that lives in memory and disappears with the process.
///
/// Clones share the same objects, so a test can keep one clone to look at
/// what the code under test wrote through another.
#[derive(Clone, Debug)]
pub struct MemoryBackend {
    inner: OpendalBackend,
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
        }
    }

    /// The store as a plain [`OpendalBackend`] (sharing the same objects).
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
        self.inner.put(key, data).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, BackendError> {
        self.inner.list(prefix).await
    }

    async fn delete(&self, key: &str) -> Result<(), BackendError> {
        self.inner.delete(key).await
    }

    async fn stat(&self, key: &str) -> Result<Option<ObjectInfo>, BackendError> {
        self.inner.stat(key).await
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }
}

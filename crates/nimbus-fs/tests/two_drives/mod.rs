//! What the tests with two drives on one vault in memory share
//! (`sync.rs`, `sync_loop.rs`): a runtime, a new vault, waiting with a
//! deadline, counting commits, and a store whose ref writes land but fail.

#![allow(dead_code)]

use async_trait::async_trait;
use bytes::Bytes;
use nimbus_backend::{Backend, BackendError, DynBackend, MemoryBackend, ObjectInfo};
use nimbus_vault::{KdfParams, Vault, VaultParams};
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Generous: the loops poll every 50 ms here; a slow machine still
/// finishes in far less.
pub const DEADLINE: Duration = Duration::from_secs(30);
pub const POLL: Duration = Duration::from_millis(50);

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

pub fn new_store(rt: &tokio::runtime::Runtime) -> Arc<MemoryBackend> {
    let mem = Arc::new(MemoryBackend::new());
    rt.block_on(Vault::create(
        mem.clone(),
        b"pw",
        VaultParams::default(),
        KdfParams::minimum(),
    ))
    .unwrap();
    mem
}

pub fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + DEADLINE;
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub fn commits_in(rt: &tokio::runtime::Runtime, mem: &MemoryBackend) -> usize {
    rt.block_on(mem.list("commits/")).unwrap().len()
}

/// A store whose ref writes land but report an error while `armed`, as
/// when the connection breaks after the store took the bytes.
pub struct LandsButFails {
    pub inner: DynBackend,
    pub armed: AtomicBool,
}

#[async_trait]
impl Backend for LandsButFails {
    async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<Bytes, BackendError> {
        self.inner.get(key, range).await
    }
    async fn put(&self, key: &str, data: Bytes) -> Result<(), BackendError> {
        self.inner.put(key, data).await?;
        if key.starts_with("refs/") && self.armed.load(Ordering::SeqCst) {
            return Err(BackendError::unavailable("the connection broke after the upload"));
        }
        Ok(())
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
        "a store whose ref writes land but fail".into()
    }
    fn is_local(&self) -> bool {
        true
    }
}

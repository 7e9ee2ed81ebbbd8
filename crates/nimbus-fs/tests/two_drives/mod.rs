//! What the tests with two drives on one vault in memory share
//! (`sync.rs`, `sync_loop.rs`): a runtime, a new vault, waiting with a
//! deadline, counting commits, and a store with a fault switched on and off.

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

/// What an [`Armed`] store does wrong while armed.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// A ref write lands but reports an error, as when the connection
    /// breaks after the store took the bytes.
    RefWriteLandsButFails,
    /// Pack reads fail, as when the network drops in the middle of taking
    /// another device's snapshot in.
    PackReadsFail,
    /// Listings of `index/` show nothing, as a lagging store's listing
    /// leaves the newest index objects out.
    IndexListingLags,
}

/// A store that does `fault` while `armed` and is honest otherwise.
pub struct Armed {
    pub inner: DynBackend,
    pub fault: Fault,
    pub armed: AtomicBool,
}

impl Armed {
    pub fn new(inner: DynBackend, fault: Fault, armed: bool) -> Self {
        Armed {
            inner,
            fault,
            armed: AtomicBool::new(armed),
        }
    }

    fn doing(&self, fault: Fault) -> bool {
        self.fault == fault && self.armed.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl Backend for Armed {
    async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<Bytes, BackendError> {
        if key.starts_with("packs/") && self.doing(Fault::PackReadsFail) {
            return Err(BackendError::unavailable("the network dropped"));
        }
        self.inner.get(key, range).await
    }
    async fn put(&self, key: &str, data: Bytes) -> Result<(), BackendError> {
        self.inner.put(key, data).await?;
        if key.starts_with("refs/") && self.doing(Fault::RefWriteLandsButFails) {
            return Err(BackendError::unavailable("the connection broke after the upload"));
        }
        Ok(())
    }
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, BackendError> {
        if prefix.starts_with("index/") && self.doing(Fault::IndexListingLags) {
            return Ok(Vec::new());
        }
        self.inner.list(prefix).await
    }
    async fn delete(&self, key: &str) -> Result<(), BackendError> {
        self.inner.delete(key).await
    }
    async fn stat(&self, key: &str) -> Result<Option<ObjectInfo>, BackendError> {
        self.inner.stat(key).await
    }
    fn describe(&self) -> String {
        "a store with a fault that can be switched on".into()
    }
    fn is_local(&self) -> bool {
        true
    }
}

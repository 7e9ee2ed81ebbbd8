//! Object-store access for Nimbus vaults.
//!
//! A vault is a flat set of named objects. Everything above this crate sees
//! storage only through [`Backend`]: get (optionally a byte range), get whole
//! under a size cap, put, list by prefix, delete (one key or many, in
//! batches where the store has them) and stat, plus what the
//! store is (`describe`, `is_local`, `limits`). The real implementation
//! ([`OpendalBackend`]) goes through Apache OpenDAL and speaks to a local
//! folder, S3, WebDAV and SFTP; another OpenDAL service needs no change in
//! the vault. [`MemoryBackend`] is for fast tests,
//! and [`FaultyBackend`] wraps any backend to inject errors, delays and
//! truncated reads.
//!
//! **Architecture invariant:** this crate knows nothing of what the bytes mean.

mod address;
mod error;
mod faulty;
mod limits;
mod open;
mod opendal_backend;
mod retry;

pub use address::{AddressStyle, S3Location, S3Resolved, SftpLocation, StoreUrl, WebDavLocation};
pub use error::{BackendError, BackendErrorKind};
pub use faulty::{FaultConfig, FaultStats, FaultyBackend};
pub use limits::{LimitedBackend, NetLimits, RequestCounts, DEFAULT_IN_FLIGHT};
pub use open::{
    create_store, create_store_with, open_store, open_store_with, S3Keys, StoreAccess, StoreCredentials,
    MULTIPART_CHUNK,
};
pub use opendal_backend::{MemoryBackend, OpendalBackend};
pub use retry::{RetryPolicy, RetryingBackend};

use async_trait::async_trait;
use bytes::Bytes;
use std::ops::Range;
use std::sync::Arc;

/// One object as a listing or `stat` reports it.
///
/// `(size, modified, etag)` is the object's fingerprint: a device polling
/// the store compares it with the one it saw before and reads the object
/// again only when it changed (docs/SYNC.md §1.1). A listing and a `stat`
/// of the same object version report the same fingerprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// The object's full key, `/`-separated, never starting with `/`.
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
    /// When the store last wrote the object, by the store's clock (never
    /// this device's); `None` when the store does not say. Stores on other
    /// machines give whole seconds (S3 lists milliseconds but answers a
    /// `stat` in seconds, so both are cut to seconds to agree); a local
    /// folder gives the file's mtime, as fine as its file system keeps it;
    /// [`MemoryBackend`] gives a time that grows with every write.
    pub modified: Option<std::time::SystemTime>,
    /// The store's entity tag, exactly as it sends it (quotes included), or
    /// `None` when it sends none (SFTP, a local folder). Opaque: it changes
    /// when the content does, except where a store derives it from the time
    /// and size (Apache does), which share the time's resolution.
    pub etag: Option<String>,
}

impl ObjectInfo {
    /// An object the store says nothing more about than its size.
    pub fn new(key: impl Into<String>, size: u64) -> Self {
        ObjectInfo {
            key: key.into(),
            size,
            modified: None,
            etag: None,
        }
    }
}

/// The storage a vault lives on.
///
/// Keys are `/`-separated relative paths such as `config` or
/// `packs/ab/ab12…`. A `put` replaces the whole object atomically from the
/// point of view of a reader (it sees the old or the new content, never a
/// mix); no conditional writes or locks are asked of the store.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// Reads a whole object, or only `range` of it (end exclusive).
    ///
    /// A range that reaches past the end of the object returns the bytes that
    /// exist; the caller checks the length it got. A missing object is an
    /// error of kind [`BackendErrorKind::NotFound`].
    async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<Bytes, BackendError>;

    /// Reads a whole object that may be at most `max` bytes, holding at most
    /// `max + 1` bytes of it however large it is, says it is, or a store
    /// that ignores `Range` sends: a larger object is an error of kind
    /// [`BackendErrorKind::TooLarge`]. For objects read whole (a vault's
    /// config, refs, commits, indexes), whose size the store controls.
    async fn get_whole(&self, key: &str, max: u64) -> Result<Bytes, BackendError> {
        let data = self.get(key, Some(0..max.saturating_add(1))).await?;
        if data.len() as u64 > max {
            return Err(BackendError::too_large(key, max));
        }
        Ok(data)
    }

    /// Writes a whole object, replacing any object with that key.
    async fn put(&self, key: &str, data: Bytes) -> Result<(), BackendError>;

    /// Lists every object whose key starts with `prefix` (recursively), in no
    /// particular order.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, BackendError>;

    /// Deletes an object. Deleting an object that does not exist succeeds.
    async fn delete(&self, key: &str) -> Result<(), BackendError>;

    /// Deletes many objects; those that do not exist count as deleted.
    ///
    /// A store that deletes in batches (S3's `DeleteObjects`) sends one
    /// request per [`Backend::delete_batch_max`] keys; the others delete
    /// each key on its own, a few at once. On an error some of the keys may
    /// be gone already: deleting is idempotent, so the caller runs the same
    /// call again.
    async fn delete_many(&self, keys: &[String]) -> Result<(), BackendError> {
        delete_each(self, keys).await
    }

    /// How many keys one delete request of this store takes: 1 unless it
    /// deletes in batches.
    fn delete_batch_max(&self) -> usize {
        1
    }

    /// The object's size, or `None` when it does not exist.
    async fn stat(&self, key: &str) -> Result<Option<ObjectInfo>, BackendError>;

    /// A short human description of where the store is, for messages
    /// (`local folder /srv/vault`). Never contains a secret.
    fn describe(&self) -> String;

    /// Whether the objects are on this machine (a local folder, memory):
    /// then a local cache of them would only copy them again.
    fn is_local(&self) -> bool {
        false
    }

    /// The request and bandwidth limits this store's requests go through,
    /// when it has them (stores on other machines do), so they can be
    /// changed while it is in use.
    fn limits(&self) -> Option<Arc<NetLimits>> {
        None
    }
}

/// Deletes sent at once by a store that deletes one key per request.
pub const DELETE_CONCURRENCY: usize = 8;

/// Deletes `keys` one request each, [`DELETE_CONCURRENCY`] at once: the
/// fallback of [`Backend::delete_many`] for stores without batches. Stops at
/// the first error (the rest may or may not have been sent).
pub async fn delete_each<B: Backend + ?Sized>(store: &B, keys: &[String]) -> Result<(), BackendError> {
    use futures::StreamExt;
    // By index: a closure over `&String` trips the compiler's `Send`
    // check inside `async_trait` methods.
    let mut deletes = futures::stream::iter(0..keys.len())
        .map(|i| store.delete(&keys[i]))
        .buffer_unordered(DELETE_CONCURRENCY);
    while let Some(res) = deletes.next().await {
        res?;
    }
    Ok(())
}

/// Runs `each` over the ranges of `count` keys cut into batches of `batch`
/// keys (at least 1), `concurrency` batches at once, stopping at the first
/// error. For wrappers whose work is per request: counting, retrying.
pub(crate) async fn for_each_batch<F, Fut>(
    count: usize,
    batch: usize,
    concurrency: usize,
    mut each: F,
) -> Result<(), BackendError>
where
    F: FnMut(Range<usize>) -> Fut,
    Fut: std::future::Future<Output = Result<(), BackendError>>,
{
    use futures::StreamExt;
    let batch = batch.max(1);
    let mut runs = futures::stream::iter((0..count).step_by(batch))
        .map(|start| each(start..count.min(start + batch)))
        .buffer_unordered(concurrency.max(1));
    while let Some(res) = runs.next().await {
        res?;
    }
    Ok(())
}

/// A shared, dynamically typed backend.
pub type DynBackend = Arc<dyn Backend>;

/// A shared backend is a backend, so wrappers such as [`FaultyBackend`] can
/// take a [`DynBackend`].
#[async_trait]
impl<B: Backend + ?Sized> Backend for Arc<B> {
    async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<Bytes, BackendError> {
        (**self).get(key, range).await
    }

    async fn get_whole(&self, key: &str, max: u64) -> Result<Bytes, BackendError> {
        (**self).get_whole(key, max).await
    }

    async fn put(&self, key: &str, data: Bytes) -> Result<(), BackendError> {
        (**self).put(key, data).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, BackendError> {
        (**self).list(prefix).await
    }

    async fn delete(&self, key: &str) -> Result<(), BackendError> {
        (**self).delete(key).await
    }

    async fn delete_many(&self, keys: &[String]) -> Result<(), BackendError> {
        (**self).delete_many(keys).await
    }

    fn delete_batch_max(&self) -> usize {
        (**self).delete_batch_max()
    }

    async fn stat(&self, key: &str) -> Result<Option<ObjectInfo>, BackendError> {
        (**self).stat(key).await
    }

    fn describe(&self) -> String {
        (**self).describe()
    }

    fn is_local(&self) -> bool {
        (**self).is_local()
    }

    fn limits(&self) -> Option<Arc<NetLimits>> {
        (**self).limits()
    }
}

/// Shows where the store is, so types holding a [`DynBackend`] can derive
/// `Debug`.
impl std::fmt::Debug for dyn Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Backend").field(&self.describe()).finish()
    }
}

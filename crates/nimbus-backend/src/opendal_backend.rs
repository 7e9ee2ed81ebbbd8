//! [`Backend`] over an Apache OpenDAL [`Operator`]: the real store (a local
//! folder today; S3, WebDAV and SFTP later) and the in-memory one.
//!
//! OpenDAL services differ in small ways (ranges past the end, directory
//! entries in listings, what a missing prefix does); this file irons them out
//! so every store behaves as the [`Backend`] docs say.

mod keys;
mod local;
mod memory;
mod remote_errors;

pub use memory::MemoryBackend;

use crate::error::Op;
use crate::{Backend, BackendError, BackendErrorKind, ObjectInfo};
use async_trait::async_trait;
use bytes::Bytes;
use keys::{check_key, check_prefix, is_reserved};
use opendal::{EntryMode, Operator};
use std::ops::Range;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A store reached through OpenDAL.
///
/// Cloning is cheap and the clones share the same store.
#[derive(Clone)]
pub struct OpendalBackend {
    op: Operator,
    description: String,
    /// Set when a local folder could not get its `.tmp` folder for atomic
    /// writes; writing without it could leave half-written objects, so all
    /// changes are refused instead.
    read_only: bool,
    flavor: Flavor,
    /// Objects at least this big go up in parts of this size, this many at
    /// once (S3 multipart upload).
    multipart: Option<(usize, usize)>,
    /// Writes go to `.tmp/` and are renamed into place, for services whose
    /// own writes are not atomic (SFTP writes the final file in place).
    rename_writes: bool,
}

/// Which kind of store, for what only that kind needs: advice in error
/// messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Flavor {
    Local,
    S3 { bucket: String, region: String },
    WebDav,
    Sftp,
}

impl std::fmt::Debug for OpendalBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpendalBackend")
            .field("description", &self.description)
            .field("read_only", &self.read_only)
            .finish_non_exhaustive()
    }
}

impl OpendalBackend {
    /// Wraps an operator that is already configured. `description` is what
    /// [`Backend::describe`] returns; it must not contain a secret.
    ///
    /// Writes through it are only as atomic as the service makes them: for
    /// the fs service, configure `atomic_write_dir` (or use
    /// [`OpendalBackend::local_folder`]).
    pub fn from_operator(op: Operator, description: impl Into<String>) -> Self {
        Self {
            op,
            description: description.into(),
            read_only: false,
            flavor: Flavor::Local,
            multipart: None,
            rename_writes: false,
        }
    }

    /// A store on another machine; `flavor` decides the advice its errors
    /// carry.
    pub(crate) fn remote(op: Operator, description: String, flavor: Flavor) -> Self {
        Self {
            flavor,
            ..Self::from_operator(op, description)
        }
    }

    pub(crate) fn with_multipart(mut self, chunk: usize, concurrent: usize) -> Self {
        self.multipart = Some((chunk, concurrent));
        self
    }

    // Only SFTP needs it, and SFTP is Unix-only.
    #[cfg_attr(not(unix), allow(dead_code))]
    pub(crate) fn with_rename_writes(mut self) -> Self {
        self.rename_writes = true;
        self
    }

    /// Turns an OpenDAL error into ours, with the advice of this kind of
    /// store.
    fn error(&self, op: Op, key: Option<&str>, err: opendal::Error) -> BackendError {
        let raw = err.to_string();
        let e = BackendError::from_opendal(op, key, err);
        remote_errors::explain(&self.flavor, op, &self.description, e, &raw)
    }

    async fn write(&self, key: &str, data: Bytes) -> Result<(), opendal::Error> {
        match self.multipart {
            Some((chunk, concurrent)) if data.len() >= chunk => self
                .op
                .write_with(key, data)
                .chunk(chunk)
                .concurrent(concurrent)
                .await
                .map(drop),
            _ => self.op.write(key, data).await.map(drop),
        }
    }

    /// Writes to a unique name under `.tmp/`, then renames over `key`
    /// (OpenSSH's server renames atomically, replacing the old object).
    async fn write_by_rename(&self, key: &str, data: Bytes) -> Result<(), opendal::Error> {
        let tmp = format!(
            "{}/{:016x}{:016x}",
            keys::TMP_DIR,
            rand::random::<u64>(),
            rand::random::<u64>()
        );
        self.op.write(&tmp, data).await?;
        match self.op.rename(&tmp, key).await {
            Ok(()) => Ok(()),
            Err(e) => {
                let _ = self.op.delete(&tmp).await;
                Err(e)
            }
        }
    }

    /// What a listing entry or a `stat` says of the object `key`.
    ///
    /// OpenDAL's listers already carry the time and the tag (S3's
    /// `ListObjectsV2`, WebDAV's `PROPFIND` with `allprop`, SFTP's and the
    /// fs service's directory reads), so a listing costs no `stat` per
    /// object.
    fn info(&self, key: &str, meta: &opendal::Metadata) -> ObjectInfo {
        let modified = meta.last_modified().map(SystemTime::from);
        ObjectInfo {
            key: key.to_string(),
            size: meta.content_length(),
            // S3 lists milliseconds and answers HEAD in whole seconds; WebDAV
            // and SFTP give whole seconds anyway. Cut to seconds, a listing
            // and a stat of one version agree.
            modified: match self.flavor {
                Flavor::Local => modified,
                _ => modified.map(whole_seconds),
            },
            etag: meta.etag().map(str::to_string),
        }
    }

    /// The underlying operator, for callers that need an OpenDAL feature
    /// this crate does not wrap.
    pub fn operator(&self) -> &Operator {
        &self.op
    }

    fn refuse_if_read_only(&self, key: &str) -> Result<(), BackendError> {
        if !self.read_only {
            return Ok(());
        }
        Err(BackendError::permission_denied(format!(
            "{} is read-only (its `{}` folder for safe writes cannot be created), so `{key}` \
             cannot be changed",
            self.description,
            keys::TMP_DIR
        ))
        .with_key(key))
    }

    /// Reads `range` of `key` when the range may reach past the end.
    ///
    /// OpenDAL's fs and memory services fail such a read with
    /// `RangeNotSatisfied`, and other services answer in their own ways, so
    /// on any failure other than "not found" this looks at the object's size
    /// and, when the range was indeed too long, reads the part that exists.
    /// The extra round trip is only paid by reads that reach past the end.
    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, BackendError> {
        if range.start >= range.end {
            return match self.stat(key).await? {
                Some(_) => Ok(Bytes::new()),
                None => Err(BackendError::not_found(key)),
            };
        }
        let first = match self.op.read_with(key).range(range.clone()).await {
            Ok(buf) => return Ok(buf.to_bytes()),
            Err(err) => self.error(Op::Get, Some(key), err),
        };
        if first.kind() == BackendErrorKind::NotFound {
            return Err(first);
        }
        let size = match self.stat(key).await {
            Ok(Some(info)) if info.size < range.end => info.size,
            Ok(None) => return Err(BackendError::not_found(key)),
            // The range fits, or the store is failing: the first error is
            // the one that explains what went wrong.
            _ => return Err(first),
        };
        if range.start >= size {
            return Ok(Bytes::new());
        }
        self.op
            .read_with(key)
            .range(range.start..size)
            .await
            .map(|buf| buf.to_bytes())
            .map_err(|err| self.error(Op::Get, Some(key), err))
    }
}

#[async_trait]
impl Backend for OpendalBackend {
    async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<Bytes, BackendError> {
        check_key(key)?;
        let res = match range {
            Some(range) => self.get_range(key, range).await,
            None => self
                .op
                .read(key)
                .await
                .map(|buf| buf.to_bytes())
                .map_err(|err| self.error(Op::Get, Some(key), err)),
        };
        match res {
            // Reading a folder: SFTP answers with a generic failure that
            // looks transient. Whether an object is there settles it.
            Err(e) if e.kind() != BackendErrorKind::NotFound && self.flavor == Flavor::Sftp => {
                match self.stat(key).await {
                    Ok(None) => Err(BackendError::not_found(key)),
                    _ => Err(e),
                }
            }
            res => res,
        }
    }

    async fn get_whole(&self, key: &str, max: u64) -> Result<Bytes, BackendError> {
        use futures::TryStreamExt;
        check_key(key)?;
        // Streamed, and dropped one byte past `max`: neither the size the
        // store reports nor its honouring of `Range` is trusted.
        let read = async {
            let mut stream = self.op.reader(key).await?.into_bytes_stream(..).await?;
            let mut out = bytes::BytesMut::new();
            // The stream speaks io::Error; the OpenDAL error inside keeps
            // its kind for the message.
            let to_opendal = |e: std::io::Error| {
                let text = e.to_string();
                match e.into_inner().map(|b| b.downcast::<opendal::Error>()) {
                    Some(Ok(inner)) => *inner,
                    _ => opendal::Error::new(opendal::ErrorKind::Unexpected, text),
                }
            };
            while let Some(chunk) = stream.try_next().await.map_err(to_opendal)? {
                let room = (max as usize).saturating_add(1) - out.len();
                out.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if out.len() as u64 > max {
                    break;
                }
            }
            Ok::<_, opendal::Error>(out.freeze())
        };
        let data = match read.await {
            Ok(data) => data,
            Err(err) => {
                // As in `get`: SFTP's answer for a folder looks transient.
                let e = self.error(Op::Get, Some(key), err);
                return match e.kind() {
                    BackendErrorKind::NotFound => Err(e),
                    _ if self.flavor == Flavor::Sftp => match self.stat(key).await {
                        Ok(None) => Err(BackendError::not_found(key)),
                        _ => Err(e),
                    },
                    _ => Err(e),
                };
            }
        };
        if data.len() as u64 > max {
            return Err(BackendError::too_large(key, max));
        }
        Ok(data)
    }

    async fn put(&self, key: &str, data: Bytes) -> Result<(), BackendError> {
        check_key(key)?;
        self.refuse_if_read_only(key)?;
        let res = if self.rename_writes {
            self.write_by_rename(key, data.clone()).await
        } else {
            self.write(key, data.clone()).await
        };
        // Writes creating the same folder at once: Apache answers one of the
        // racing MKCOLs with 403, for each level of folders. The folder
        // exists a moment later; a real refusal fails every time.
        let mut res = res;
        let mut tries = 0;
        while self.flavor == Flavor::WebDav
            && tries < 4
            && matches!(&res, Err(e) if e.kind() == opendal::ErrorKind::PermissionDenied)
        {
            tries += 1;
            tokio::time::sleep(std::time::Duration::from_millis(20 * tries)).await;
            res = self.write(key, data.clone()).await;
        }
        res.map_err(|err| self.error(Op::Put, Some(key), err))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, BackendError> {
        check_prefix(prefix)?;
        // OpenDAL lists folders; a prefix such as `packs/a` is matched by
        // listing its folder `packs/` and filtering.
        let dir = match prefix.rfind('/') {
            Some(i) => &prefix[..=i],
            None => "/",
        };
        let entries = match self.op.list_with(dir).recursive(true).await {
            Ok(entries) => entries,
            Err(err) => {
                let err = self.error(Op::List, Some(prefix), err);
                // Listing "folder" `a/b/` where `a/b` is an object: WebDAV
                // servers answer that with 400 or 409. No key is under it.
                if !err.is_transient() && dir != "/" {
                    let path = dir.trim_end_matches('/');
                    if matches!(self.op.stat(path).await, Ok(m) if m.mode() == EntryMode::FILE) {
                        return Ok(Vec::new());
                    }
                }
                return Err(err);
            }
        };
        let mut out = Vec::with_capacity(entries.len());
        for entry in entries {
            // Folders, and entries the service could not classify (sockets,
            // dangling links), are not objects.
            if entry.metadata().mode() != EntryMode::FILE {
                continue;
            }
            let key = entry.path().trim_start_matches('/');
            if is_reserved(key) || !key.starts_with(prefix) {
                continue;
            }
            out.push(self.info(key, entry.metadata()));
        }
        Ok(out)
    }

    async fn delete(&self, key: &str) -> Result<(), BackendError> {
        check_key(key)?;
        self.refuse_if_read_only(key)?;
        self.op
            .delete(key)
            .await
            .map_err(|err| self.error(Op::Delete, Some(key), err))
    }

    /// Where the service deletes in batches (S3: `DeleteObjects`, 1,000
    /// keys a request), through OpenDAL's deleter; elsewhere key by key.
    async fn delete_many(&self, keys: &[String]) -> Result<(), BackendError> {
        for key in keys {
            check_key(key)?;
            self.refuse_if_read_only(key)?;
        }
        if self.delete_batch_max() <= 1 {
            return crate::delete_each(self, keys).await;
        }
        // The deleter cuts the keys into batches itself; a key the store
        // reports missing is deleted as far as S3 (and Garage) say.
        self.op
            .delete_iter(keys.iter().map(String::as_str))
            .await
            .map_err(|err| self.error(Op::Delete, None, err))
    }

    fn delete_batch_max(&self) -> usize {
        self.op.info().capability().delete_max_size.unwrap_or(1).max(1)
    }

    async fn stat(&self, key: &str) -> Result<Option<ObjectInfo>, BackendError> {
        check_key(key)?;
        match self.op.stat(key).await {
            Ok(meta) if meta.mode() == EntryMode::FILE => Ok(Some(self.info(key, &meta))),
            // A folder under that name is not an object.
            Ok(_) => Ok(None),
            Err(err) => {
                let err = self.error(Op::Stat, Some(key), err);
                if err.kind() == BackendErrorKind::NotFound {
                    Ok(None)
                } else {
                    Err(err)
                }
            }
        }
    }

    fn describe(&self) -> String {
        self.description.clone()
    }

    fn is_local(&self) -> bool {
        matches!(self.op.info().scheme(), "fs" | "memory")
    }
}

/// `t` without its fraction of a second (times before 1970, which no store
/// gives, stay as they are).
fn whole_seconds(t: SystemTime) -> SystemTime {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => UNIX_EPOCH + Duration::from_secs(d.as_secs()),
        Err(_) => t,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_seconds_drops_only_the_fraction() {
        let t = UNIX_EPOCH + Duration::new(1_765_000_000, 999_999_999);
        assert_eq!(whole_seconds(t), UNIX_EPOCH + Duration::from_secs(1_765_000_000));
        let exact = UNIX_EPOCH + Duration::from_secs(5);
        assert_eq!(whole_seconds(exact), exact);
        let before = UNIX_EPOCH - Duration::from_millis(1500);
        assert_eq!(whole_seconds(before), before);
    }
}

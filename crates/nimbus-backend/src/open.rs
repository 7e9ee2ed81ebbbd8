//! Opening a parsed [`StoreUrl`] as a [`DynBackend`]: local folders and
//! in-memory stores here, stores on other machines in `open/remote.rs`.
//! Every store opened by name is wrapped in the one retry layer.

mod remote;

pub use remote::{S3Keys, StoreAccess, StoreCredentials, MULTIPART_CHUNK};

use crate::{BackendError, BackendErrorKind, DynBackend, MemoryBackend, OpendalBackend, StoreUrl};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

/// Named in-memory stores of this process (`memory://name`).
static MEMORY_STORES: Mutex<BTreeMap<String, MemoryBackend>> = Mutex::new(BTreeMap::new());

/// Opens an existing store.
///
/// A local folder must already exist: a mistyped path gets an error instead
/// of an empty new vault. A named in-memory store must have been made by
/// [`create_store`] earlier in this process.
pub fn open_store(url: &StoreUrl) -> Result<DynBackend, BackendError> {
    open_store_with(url, &StoreAccess::default())
}

/// [`open_store`] with credentials and limits for a store on another
/// machine (they are not used by the others).
///
/// Nothing is sent yet: a wrong credential or a missing bucket shows at the
/// first request.
pub fn open_store_with(url: &StoreUrl, access: &StoreAccess) -> Result<DynBackend, BackendError> {
    match url {
        StoreUrl::S3(l) => remote::open_s3(l, access),
        StoreUrl::WebDav(l) => remote::open_webdav(l, access),
        StoreUrl::Sftp(l) => remote::open_sftp(l, access),
        StoreUrl::LocalFolder(path) => {
            if !path.exists() {
                let shown = path.display();
                return Err(BackendError::new(
                    BackendErrorKind::NotFound,
                    format!(
                        "no vault folder at {shown}: check the path, or create a vault there \
                         with `nimbus init {shown}`"
                    ),
                ));
            }
            local_folder(path, access)
        }
        StoreUrl::Memory(None) => Ok(Arc::new(MemoryBackend::new())),
        StoreUrl::Memory(Some(name)) => {
            let stores = MEMORY_STORES.lock().unwrap_or_else(PoisonError::into_inner);
            match stores.get(name) {
                Some(store) => Ok(Arc::new(store.clone())),
                None => Err(BackendError::new(
                    BackendErrorKind::NotFound,
                    format!(
                        "no in-memory store named `{name}` in this process; create it first \
                         (memory stores vanish when the process ends)"
                    ),
                )),
            }
        }
    }
}

/// Opens a store, creating it first if it does not exist (for a local
/// folder, with any missing parent folders).
pub fn create_store(url: &StoreUrl) -> Result<DynBackend, BackendError> {
    create_store_with(url, &StoreAccess::default())
}

/// [`create_store`] with credentials and limits. A bucket is not created
/// (that needs rights a vault's key should not have, and a choice of
/// region and price): it must exist. WebDAV and SFTP folders are created on
/// the first write.
pub fn create_store_with(url: &StoreUrl, access: &StoreAccess) -> Result<DynBackend, BackendError> {
    match url {
        StoreUrl::S3(_) | StoreUrl::WebDav(_) | StoreUrl::Sftp(_) => open_store_with(url, access),
        StoreUrl::LocalFolder(path) => {
            create_folder(path)?;
            local_folder(path, access)
        }
        StoreUrl::Memory(None) => Ok(Arc::new(MemoryBackend::new())),
        StoreUrl::Memory(Some(name)) => {
            let mut stores = MEMORY_STORES.lock().unwrap_or_else(PoisonError::into_inner);
            let store = stores
                .entry(name.clone())
                .or_insert_with(|| MemoryBackend::with_description(format!("in-memory store `{name}`")));
            Ok(Arc::new(store.clone()))
        }
    }
}

fn create_folder(path: &Path) -> Result<(), BackendError> {
    std::fs::create_dir_all(path).map_err(|e| {
        let shown = path.display();
        let err = match e.kind() {
            std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem => {
                BackendError::permission_denied(format!("could not create the folder {shown} ({e})"))
            }
            std::io::ErrorKind::AlreadyExists => BackendError::invalid_config(format!(
                "{shown} is a file, not a folder; give the path of the vault folder"
            )),
            std::io::ErrorKind::StorageFull => {
                BackendError::storage_full(format!("could not create the folder {shown}"))
            }
            _ => BackendError::other(format!(
                "could not create the folder {shown} ({e}); check the path and that the disk is \
                 working"
            )),
        };
        err.with_source(e)
    })
}

/// A local folder. With limits, a folder (a USB disk, a network mount) is
/// paced and counted like any store.
fn local_folder(path: &Path, access: &StoreAccess) -> Result<DynBackend, BackendError> {
    let folder = OpendalBackend::local_folder(path)?;
    Ok(match &access.limits {
        Some(l) => retrying(crate::LimitedBackend::new(folder, l.clone())),
        None => retrying(folder),
    })
}

/// Every store opened by name retries its transient failures.
fn retrying<B: crate::Backend>(b: B) -> DynBackend {
    Arc::new(crate::RetryingBackend::new(b, crate::RetryPolicy::default()))
}

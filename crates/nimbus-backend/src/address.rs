//! The store address a person types (`/srv/vault`, `file:///srv/vault`,
//! `s3://bucket/folder?endpoint=...`, `webdav(s)://user@host/folder`,
//! `sftp://user@host/folder`, `memory://`), parsed into a [`StoreUrl`] and
//! opened as a [`DynBackend`].
//!
//! Each kind of store is one variant of [`StoreUrl`]; the addresses of other
//! machines are parsed in `url/remote.rs` and opened in `remote.rs`.

mod remote;

pub use remote::{AddressStyle, S3Location, S3Resolved, SftpLocation, WebDavLocation};

use crate::remote::StoreAccess;
use crate::{BackendError, BackendErrorKind, DynBackend, MemoryBackend, OpendalBackend};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};

/// Where a vault is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreUrl {
    /// A folder on a local or mounted file system. The path is absolute.
    LocalFolder(PathBuf),
    /// Memory inside this process, for tests. `memory://` is a new empty
    /// store each time it is opened; `memory://name` is one store shared by
    /// every open of that name in this process.
    Memory(Option<String>),
    /// A bucket (and folder in it) of an S3-compatible service.
    S3(S3Location),
    /// A folder on a WebDAV server.
    WebDav(WebDavLocation),
    /// A folder on a machine reached by SSH.
    Sftp(SftpLocation),
}

/// The next step offered when a store address is not understood.
const UNSUPPORTED_HINT: &str = "use a folder path, file:///path, s3://bucket/folder, \
     webdav://user@host/folder, webdavs://user@host/folder or sftp://user@host/folder";

impl StoreUrl {
    /// Parses what a person typed: a folder path (relative paths are taken
    /// from the current directory, `~/` from the home folder),
    /// `file:///absolute/path`, or `memory://[name]`.
    ///
    /// Nothing is checked on disk here; [`open_store`] does that.
    pub fn parse(input: &str) -> Result<StoreUrl, BackendError> {
        // Spaces around a pasted path are never meant.
        let input = input.trim();
        if input.is_empty() {
            return Err(BackendError::invalid_config(format!(
                "no store given; {UNSUPPORTED_HINT}"
            )));
        }
        match split_scheme(input) {
            Some((scheme, rest)) => match scheme.to_ascii_lowercase().as_str() {
                "file" => parse_file(input, rest),
                "memory" => parse_memory(rest),
                "s3" => remote::parse_s3(input).map(StoreUrl::S3),
                "webdav" => remote::parse_webdav(input, false).map(StoreUrl::WebDav),
                "webdavs" => remote::parse_webdav(input, true).map(StoreUrl::WebDav),
                "sftp" => remote::parse_sftp(input).map(StoreUrl::Sftp),
                other => Err(BackendError::invalid_config(format!(
                    "storage type `{other}` is not supported yet; {UNSUPPORTED_HINT}"
                ))),
            },
            None => parse_path(input),
        }
    }

    /// The scheme this address is written with (`file`, `memory`, `s3` ...).
    pub fn scheme(&self) -> &'static str {
        match self {
            StoreUrl::LocalFolder(_) => "file",
            StoreUrl::Memory(_) => "memory",
            StoreUrl::S3(_) => "s3",
            StoreUrl::WebDav(w) if w.tls => "webdavs",
            StoreUrl::WebDav(_) => "webdav",
            StoreUrl::Sftp(_) => "sftp",
        }
    }

    /// Whether the store is on another machine, reached over a network.
    pub fn is_remote(&self) -> bool {
        matches!(self, StoreUrl::S3(_) | StoreUrl::WebDav(_) | StoreUrl::Sftp(_))
    }
}

impl FromStr for StoreUrl {
    type Err = BackendError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        StoreUrl::parse(s)
    }
}

impl fmt::Display for StoreUrl {
    /// Writes a form that [`StoreUrl::parse`] reads back to the same value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreUrl::LocalFolder(path) => {
                let path = path.to_string_lossy();
                if cfg!(windows) {
                    write!(f, "file:///{}", path.replace('\\', "/"))
                } else {
                    write!(f, "file://{path}")
                }
            }
            StoreUrl::Memory(None) => f.write_str("memory://"),
            StoreUrl::Memory(Some(name)) => write!(f, "memory://{name}"),
            StoreUrl::S3(l) => l.fmt(f),
            StoreUrl::WebDav(l) => l.fmt(f),
            StoreUrl::Sftp(l) => l.fmt(f),
        }
    }
}

/// `scheme://rest`, when the part before `://` looks like a scheme. One
/// letter is a Windows drive (`C://x`), not a scheme.
fn split_scheme(input: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = input.split_once("://")?;
    let mut chars = scheme.chars();
    let valid = scheme.len() >= 2
        && chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    valid.then_some((scheme, rest))
}

fn parse_file(input: &str, rest: &str) -> Result<StoreUrl, BackendError> {
    let path = if rest.starts_with('/') {
        rest
    } else if let Some(path) = rest.strip_prefix("localhost").filter(|p| p.starts_with('/')) {
        path
    } else if rest.is_empty() {
        return Err(BackendError::invalid_config(format!(
            "`{input}` has no folder path; write it as file:///path/to/folder"
        )));
    } else {
        return Err(BackendError::invalid_config(format!(
            "`{input}` names a host rather than a local folder; a local folder needs three \
             slashes, as in file:///{rest}"
        )));
    };
    // `file:///C:/vault` on Windows: the path starts after the third slash.
    #[cfg(windows)]
    let path = match path.strip_prefix('/') {
        Some(p) if Path::new(p).is_absolute() => p,
        _ => path,
    };
    Ok(StoreUrl::LocalFolder(PathBuf::from(path)))
}

fn parse_memory(rest: &str) -> Result<StoreUrl, BackendError> {
    let name = rest.strip_suffix('/').unwrap_or(rest);
    if name.is_empty() {
        return Ok(StoreUrl::Memory(None));
    }
    let valid = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !valid {
        return Err(BackendError::invalid_config(format!(
            "`memory://{rest}` is not a valid in-memory store name; use letters, digits, `-`, \
             `_` and `.` only, as in memory://test-1"
        )));
    }
    Ok(StoreUrl::Memory(Some(name.to_string())))
}

fn parse_path(input: &str) -> Result<StoreUrl, BackendError> {
    let path = expand_home(input)?;
    let path = std::path::absolute(&path).map_err(|e| {
        BackendError::invalid_config(format!(
            "cannot turn `{input}` into a full path ({e}); give the full path of the folder"
        ))
        .with_source(e)
    })?;
    Ok(StoreUrl::LocalFolder(path))
}

/// Replaces a leading `~` by the home folder: shells do it before a path
/// reaches us, but settings files and input boxes do not.
fn expand_home(input: &str) -> Result<PathBuf, BackendError> {
    let rest = match input.strip_prefix('~') {
        None => return Ok(PathBuf::from(input)),
        Some(rest) if rest.is_empty() || rest.starts_with(['/', '\\']) => rest,
        Some(_) => {
            return Err(BackendError::invalid_config(format!(
                "cannot tell which home folder `{input}` means; give the full path"
            )))
        }
    };
    let home = std::env::var_os("HOME")
        .or_else(|| std::env::var_os("USERPROFILE"))
        .filter(|h| !h.is_empty())
        .ok_or_else(|| {
            BackendError::invalid_config(format!(
                "cannot expand `~` in `{input}`: the home folder is not known; give the full path"
            ))
        })?;
    Ok(PathBuf::from(home).join(rest.trim_start_matches(['/', '\\'])))
}

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
        StoreUrl::S3(l) => crate::remote::open_s3(l, access),
        StoreUrl::WebDav(l) => crate::remote::open_webdav(l, access),
        StoreUrl::Sftp(l) => crate::remote::open_sftp(l, access),
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
            let folder = OpendalBackend::local_folder(path)?;
            // With limits, a folder (a USB disk, a network mount) is paced
            // and counted like any store.
            Ok(match &access.limits {
                Some(l) => retrying(crate::LimitedBackend::new(folder, l.clone())),
                None => retrying(folder),
            })
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
            let folder = OpendalBackend::local_folder(path)?;
            // With limits, a folder (a USB disk, a network mount) is paced
            // and counted like any store.
            Ok(match &access.limits {
                Some(l) => retrying(crate::LimitedBackend::new(folder, l.clone())),
                None => retrying(folder),
            })
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

/// Every store opened by name retries its transient failures.
fn retrying<B: crate::Backend>(b: B) -> DynBackend {
    Arc::new(crate::RetryingBackend::new(b, crate::RetryPolicy::default()))
}

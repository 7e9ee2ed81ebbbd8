//! The store address a person types (`/srv/vault`, `file:///srv/vault`,
//! `s3://bucket/folder?endpoint=...`, `webdav(s)://user@host/folder`,
//! `sftp://user@host/folder`, `memory://`), parsed into a [`StoreUrl`].
//! Parsing only: `open.rs` opens what this module parsed.
//!
//! Each kind of store is one variant of [`StoreUrl`]; the addresses of other
//! machines are parsed in `address/remote.rs`.

mod remote;

pub use remote::{AddressStyle, S3Location, S3Resolved, SftpLocation, WebDavLocation};

use crate::BackendError;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

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

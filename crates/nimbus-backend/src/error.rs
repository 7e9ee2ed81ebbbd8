//! The one error type of this crate, and how OpenDAL and I/O errors map onto it.
//!
//! Rules for errors here:
//! - The kind is what callers branch on; the message is for a person. Callers
//!   never parse the message.
//! - Every message says what happened and what to do next, in plain words, and
//!   names the object key when there is one.
//! - [`BackendErrorKind::Unavailable`] is the only kind worth retrying. An
//!   error that would fail the same way again (missing object, refused
//!   access, bad configuration, full disk) must not be classified as it,
//!   or callers would retry forever.
//! - Technical detail from the layer below stays reachable through
//!   [`std::error::Error::source`], not pasted into the message.

use std::error::Error as StdError;
use std::fmt;
use std::io;

/// What kind of failure a [`BackendError`] is, for callers to branch on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BackendErrorKind {
    /// The object (or the store location itself) does not exist.
    NotFound,
    /// The store refused access: wrong permissions or credentials without
    /// the right to do this.
    PermissionDenied,
    /// A transient failure: network down, timeout, server error, rate
    /// limiting. Worth retrying later.
    Unavailable,
    /// The store address, credentials or settings are wrong (bad URL,
    /// missing bucket, folder path that is a file).
    InvalidConfig,
    /// The store has no space left, or a quota is exhausted.
    StorageFull,
    /// An object is larger than the caller accepts for its kind (see
    /// [`crate::Backend::get_whole`]): altered or damaged, never read whole.
    TooLarge,
    /// Anything else; most likely a bug on one side.
    Other,
}

impl fmt::Display for BackendErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotFound => "not found",
            Self::PermissionDenied => "permission denied",
            Self::Unavailable => "store unavailable",
            Self::InvalidConfig => "invalid store configuration",
            Self::StorageFull => "storage full",
            Self::TooLarge => "object too large",
            Self::Other => "storage error",
        })
    }
}

type Source = Box<dyn StdError + Send + Sync + 'static>;

/// A failed storage operation.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct BackendError {
    kind: BackendErrorKind,
    key: Option<String>,
    message: String,
    #[source]
    source: Option<Source>,
}

/// The operation that failed, so messages can say "could not read …".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Get,
    Put,
    List,
    Delete,
    Stat,
    Open,
}

impl Op {
    fn verb(self) -> &'static str {
        match self {
            Op::Get => "read",
            Op::Put => "write",
            Op::List => "list",
            Op::Delete => "delete",
            Op::Stat => "look up",
            Op::Open => "open",
        }
    }
}

impl BackendError {
    /// An error with a message written by the caller. The message must say
    /// what happened and what to do next.
    pub fn new(kind: BackendErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            key: None,
            message: message.into(),
            source: None,
        }
    }

    /// The object `key` does not exist.
    pub fn not_found(key: impl Into<String>) -> Self {
        let key = key.into();
        Self::new(
            BackendErrorKind::NotFound,
            format!("the object `{key}` does not exist in the store"),
        )
        .with_key(key)
    }

    /// The store cannot be reached right now; `detail` says how that showed.
    pub fn unavailable(detail: impl fmt::Display) -> Self {
        Self::new(
            BackendErrorKind::Unavailable,
            format!("the store is unreachable: {detail}; check the network and try again"),
        )
    }

    /// The store refused access; `detail` says to what.
    pub fn permission_denied(detail: impl fmt::Display) -> Self {
        Self::new(
            BackendErrorKind::PermissionDenied,
            format!(
                "the store refused access: {detail}; check that this account may read and \
                 write the vault"
            ),
        )
    }

    /// The store address or settings are wrong. `message` must already say
    /// what to change.
    pub fn invalid_config(message: impl Into<String>) -> Self {
        Self::new(BackendErrorKind::InvalidConfig, message)
    }

    /// The store has no room for more data.
    pub fn storage_full(detail: impl fmt::Display) -> Self {
        Self::new(
            BackendErrorKind::StorageFull,
            format!("the store is full: {detail}; free some space or raise the quota, then try again"),
        )
    }

    /// The object `key` holds more than the `max` bytes its caller accepts.
    pub fn too_large(key: impl Into<String>, max: u64) -> Self {
        let key = key.into();
        Self::new(
            BackendErrorKind::TooLarge,
            format!(
                "the object `{key}` is larger than the {max} bytes Nimbus accepts for it, so it was not read: \
                 the store altered or damaged it. Run `nimbus check` to list every damaged object"
            ),
        )
        .with_key(key)
    }

    /// Anything else. `message` must already say what to do next.
    pub fn other(message: impl Into<String>) -> Self {
        Self::new(BackendErrorKind::Other, message)
    }

    /// Attaches the object key the error is about.
    pub fn with_key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    fn with_key_opt(self, key: Option<&str>) -> Self {
        match key {
            Some(k) => self.with_key(k),
            None => self,
        }
    }

    /// Attaches the lower-level error that caused this one.
    pub fn with_source(mut self, source: impl StdError + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> BackendErrorKind {
        self.kind
    }

    /// Whether trying the same operation again later may succeed.
    pub fn is_transient(&self) -> bool {
        self.kind == BackendErrorKind::Unavailable
    }

    /// The object key the error is about, if any.
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    /// The message for a person (the same text as `Display`).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The same error (key and source kept) with another kind and message.
    pub(crate) fn reworded(self, kind: BackendErrorKind, message: String) -> Self {
        Self { kind, message, ..self }
    }

    /// Translates an OpenDAL error from operation `op` on `key`.
    pub(crate) fn from_opendal(op: Op, key: Option<&str>, err: opendal::Error) -> Self {
        if let Some(tls) = find_tls_error(&err) {
            let target = key.map_or_else(String::new, |k| format!(" `{k}`"));
            if tls.contains("InvalidContentType") {
                return Self::invalid_config(format!(
                    "could not {}{target}: the server does not answer in TLS there ({tls}); if it \
                     speaks plain HTTP, write its address with http:// (or webdav://) instead",
                    op.verb()
                ))
                .with_key_opt(key)
                .with_source(err);
            }
            return Self::invalid_config(format!(
                "could not {}{target}: the server's TLS certificate could not be verified ({tls}); \
                 check the address, and if the server uses a certificate authority of its own, \
                 add it to the system's trusted certificates or point SSL_CERT_FILE at it",
                op.verb()
            ))
            .with_key_opt(key)
            .with_source(err);
        }
        let io = find_io_error(&err);
        let kind = classify(op, &err, io);
        let detail = io.map_or_else(|| err.message().to_string(), ToString::to_string);
        let target = key.map_or_else(String::new, |k| format!(" `{k}`"));
        let verb = op.verb();
        let error = match kind {
            BackendErrorKind::NotFound => match key {
                Some(k) => Self::not_found(k),
                None => Self::new(
                    kind,
                    format!("could not {verb}: the store location does not exist ({detail}); check the store path"),
                ),
            },
            BackendErrorKind::PermissionDenied => {
                Self::permission_denied(format!("could not {verb}{target} ({detail})"))
            }
            BackendErrorKind::Unavailable => Self::unavailable(format!("could not {verb}{target} ({detail})")),
            BackendErrorKind::InvalidConfig => Self::invalid_config(format!(
                "the store is not set up correctly: could not {verb}{target} ({detail}); check \
                 the store address and its settings"
            )),
            BackendErrorKind::StorageFull => Self::storage_full(format!("could not {verb}{target} ({detail})")),
            // `classify` never says TooLarge: only `get_whole` does.
            BackendErrorKind::Other | BackendErrorKind::TooLarge => Self::other(format!(
                "could not {verb}{target}: unexpected storage error ({detail}); if it happens \
                 again, report it with this message"
            )),
        };
        let error = match key {
            Some(k) => error.with_key(k),
            None => error,
        };
        error.with_source(err)
    }
}

/// The I/O error at the bottom of an OpenDAL error, if the service was a
/// local one that reports them (the fs service wraps them as the source).
fn find_io_error(err: &opendal::Error) -> Option<&io::Error> {
    let mut current: Option<&(dyn StdError + 'static)> = err.source();
    while let Some(e) = current {
        if let Some(io) = e.downcast_ref::<io::Error>() {
            return Some(io);
        }
        current = e.source();
    }
    None
}

/// A TLS failure (untrusted or wrong certificate, failed handshake) at the
/// bottom of an error: it fails the same way on every retry, so it is a
/// configuration problem, not an outage. rustls's error sits inside an
/// `io::Error`, whose `source()` skips it, hence the look inside.
fn find_tls_error(err: &opendal::Error) -> Option<String> {
    let mut current: Option<&(dyn StdError + 'static)> = err.source();
    while let Some(e) = current {
        let text = e.to_string();
        // How rustls's errors read once a layer has turned them into text.
        if [
            "certificate",
            "InvalidContentType",
            "HandshakeFailure",
            "peer is incompatible",
        ]
        .iter()
        .any(|w| text.contains(w))
        {
            return Some(text);
        }
        if let Some(t) = e.downcast_ref::<rustls::Error>() {
            return Some(t.to_string());
        }
        if let Some(t) = e
            .downcast_ref::<io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return Some(t.to_string());
        }
        current = e.source();
    }
    None
}

/// Decides the kind. I/O errors come first because OpenDAL folds most of them
/// (a full disk included) into a temporary `Unexpected`, which would make a
/// full disk look worth retrying.
fn classify(op: Op, err: &opendal::Error, io: Option<&io::Error>) -> BackendErrorKind {
    use opendal::ErrorKind as O;

    if let Some(kind) = io.and_then(|io| classify_io(op, io)) {
        return kind;
    }
    match err.kind() {
        O::NotFound => BackendErrorKind::NotFound,
        O::PermissionDenied => BackendErrorKind::PermissionDenied,
        O::ConfigInvalid => BackendErrorKind::InvalidConfig,
        O::RateLimited => BackendErrorKind::Unavailable,
        // Reading "a/b" where "a" is a file, or reading a folder: either way
        // there is no object under that key.
        O::IsADirectory | O::NotADirectory if matches!(op, Op::Get | Op::Stat) => BackendErrorKind::NotFound,
        _ if err.is_temporary() => BackendErrorKind::Unavailable,
        _ => BackendErrorKind::Other,
    }
}

fn classify_io(op: Op, io: &io::Error) -> Option<BackendErrorKind> {
    use io::ErrorKind as I;

    if is_quota_exceeded(io) {
        return Some(BackendErrorKind::StorageFull);
    }
    Some(match io.kind() {
        I::StorageFull => BackendErrorKind::StorageFull,
        I::NotFound => BackendErrorKind::NotFound,
        I::PermissionDenied | I::ReadOnlyFilesystem => BackendErrorKind::PermissionDenied,
        I::IsADirectory | I::NotADirectory if matches!(op, Op::Get | Op::Stat) => BackendErrorKind::NotFound,
        I::TimedOut
        | I::Interrupted
        | I::WouldBlock
        | I::ConnectionRefused
        | I::ConnectionReset
        | I::ConnectionAborted
        | I::NotConnected
        | I::BrokenPipe
        | I::HostUnreachable
        | I::NetworkUnreachable
        | I::NetworkDown
        | I::StaleNetworkFileHandle
        | I::ResourceBusy => BackendErrorKind::Unavailable,
        // Everything else (EIO included) is left to OpenDAL's own judgement.
        _ => return None,
    })
}

/// EDQUOT (disk quota exceeded) by number: std gave it its own `ErrorKind`
/// only recently, later than the Rust version this workspace supports.
fn is_quota_exceeded(io: &io::Error) -> bool {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    const EDQUOT: Option<i32> = Some(122);
    #[cfg(any(target_os = "macos", target_os = "ios", target_os = "freebsd"))]
    const EDQUOT: Option<i32> = Some(69);
    #[cfg(not(any(
        target_os = "linux",
        target_os = "android",
        target_os = "macos",
        target_os = "ios",
        target_os = "freebsd"
    )))]
    const EDQUOT: Option<i32> = None;
    EDQUOT.is_some() && io.raw_os_error() == EDQUOT
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io_err(kind: io::ErrorKind) -> opendal::Error {
        opendal::Error::new(opendal::ErrorKind::Unexpected, "io failed")
            .set_source(io::Error::from(kind))
            .set_temporary()
    }

    #[test]
    fn full_disk_is_storage_full_not_transient() {
        let err = BackendError::from_opendal(Op::Put, Some("packs/ab"), io_err(io::ErrorKind::StorageFull));
        assert_eq!(err.kind(), BackendErrorKind::StorageFull);
        assert!(!err.is_transient());
        assert_eq!(err.key(), Some("packs/ab"));
        assert!(err.to_string().contains("free some space"), "{err}");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn quota_exceeded_is_storage_full() {
        let e = opendal::Error::new(opendal::ErrorKind::Unexpected, "io failed")
            .set_source(io::Error::from_raw_os_error(122))
            .set_temporary();
        let err = BackendError::from_opendal(Op::Put, Some("k"), e);
        assert_eq!(err.kind(), BackendErrorKind::StorageFull);
    }

    #[test]
    fn opendal_kinds_map() {
        let cases = [
            (opendal::ErrorKind::NotFound, false, BackendErrorKind::NotFound),
            (
                opendal::ErrorKind::PermissionDenied,
                false,
                BackendErrorKind::PermissionDenied,
            ),
            (
                opendal::ErrorKind::ConfigInvalid,
                false,
                BackendErrorKind::InvalidConfig,
            ),
            (opendal::ErrorKind::RateLimited, false, BackendErrorKind::Unavailable),
            (opendal::ErrorKind::Unexpected, true, BackendErrorKind::Unavailable),
            (opendal::ErrorKind::Unexpected, false, BackendErrorKind::Other),
        ];
        for (kind, temporary, expected) in cases {
            let e = opendal::Error::new(kind, "boom").with_temporary(temporary);
            let err = BackendError::from_opendal(Op::Get, Some("config"), e);
            assert_eq!(err.kind(), expected, "{kind:?} temporary={temporary}");
            assert_eq!(err.is_transient(), expected == BackendErrorKind::Unavailable);
        }
    }

    #[test]
    fn messages_say_what_to_do() {
        let err = BackendError::not_found("packs/ab/cd");
        assert_eq!(err.to_string(), "the object `packs/ab/cd` does not exist in the store");
        let err = BackendError::from_opendal(Op::Get, Some("k"), io_err(io::ErrorKind::TimedOut));
        assert_eq!(err.kind(), BackendErrorKind::Unavailable);
        let text = err.to_string();
        assert!(
            text.starts_with("the store is unreachable: could not read `k`"),
            "{text}"
        );
        assert!(text.ends_with("check the network and try again"), "{text}");
        assert!(err.source().is_some());
    }

    #[test]
    fn reading_a_folder_is_not_found() {
        let err = BackendError::from_opendal(Op::Get, Some("packs"), io_err(io::ErrorKind::IsADirectory));
        assert_eq!(err.kind(), BackendErrorKind::NotFound);
        let err = BackendError::from_opendal(Op::Put, Some("packs"), io_err(io::ErrorKind::IsADirectory));
        assert_ne!(err.kind(), BackendErrorKind::NotFound);
    }
}

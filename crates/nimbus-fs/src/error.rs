//! Errors of the file system core.
//!
//! Rules: every variant maps to exactly one POSIX error in each mount
//! adapter's table (`FsError::kind`), and its message says what happened and,
//! where a person can act, what to do. Input from the kernel, the disk or the
//! store never panics; it becomes one of these.

use nimbus_vault::VaultError;

/// The POSIX-level class of an error. Mount adapters translate these, and
/// only these, into errno values or NTSTATUS codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    NotFound,
    Exists,
    NotDir,
    IsDir,
    NotEmpty,
    NameTooLong,
    InvalidArgument,
    /// The operation is not permitted (EPERM).
    NotPermitted,
    /// Snapshots and other read-only places (EROFS).
    ReadOnly,
    /// No such extended attribute (ENODATA).
    NoAttribute,
    /// A buffer was too small (ERANGE).
    Range,
    /// The file would be larger than the file system allows (EFBIG).
    TooBig,
    NoSpace,
    NotSupported,
    /// Data could not be fetched: the store is unreachable or slow (EIO,
    /// with the message in the log and the service status).
    Unavailable,
    /// Local or stored data failed authentication or does not decode (EIO).
    Corrupt,
    /// A local I/O error (EIO).
    Io,
    /// A handle that is not open (EBADF).
    BadHandle,
    /// The drive is locked: its vault key is not in memory until it is
    /// unlocked again (ENOKEY on Linux, "Required key not available").
    Locked,
    /// A file the kernel looked up by name is gone by the time it is
    /// opened: a rename replaced it, or it was deleted, in between (ESTALE,
    /// on which Linux looks the name up again and opens what it names now).
    Stale,
}

#[derive(Debug, thiserror::Error)]
pub enum FsError {
    #[error("{1}")]
    Posix(ErrorKind, String),
    #[error("the store: {0}")]
    Vault(#[from] VaultError),
    #[error("the local state database: {0}")]
    Db(#[source] DbError),
    #[error("the local state: {context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T, E = FsError> = std::result::Result<T, E>;

/// An error of the metadata database. `meta/` makes it from SQLite's
/// error (this file does not name the SQL library), keeping whether the
/// disk was full, the one fact a caller acts on.
#[derive(Debug)]
pub struct DbError {
    source: Box<dyn std::error::Error + Send + Sync>,
    disk_full: bool,
}

impl DbError {
    pub(crate) fn new(source: impl std::error::Error + Send + Sync + 'static, disk_full: bool) -> DbError {
        DbError {
            source: Box::new(source),
            disk_full,
        }
    }

    /// The disk holding the database is full.
    pub fn is_disk_full(&self) -> bool {
        self.disk_full
    }
}

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.source, f)
    }
}

impl std::error::Error for DbError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.source()
    }
}

impl FsError {
    pub fn new(kind: ErrorKind, msg: impl Into<String>) -> Self {
        FsError::Posix(kind, msg.into())
    }

    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        FsError::Io {
            context: context.into(),
            source,
        }
    }

    pub fn not_found() -> Self {
        Self::new(ErrorKind::NotFound, "no such file or folder")
    }

    pub fn read_only() -> Self {
        Self::new(
            ErrorKind::ReadOnly,
            "snapshots are read-only; copy the file out to change it",
        )
    }

    /// The POSIX class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            FsError::Posix(k, _) => *k,
            FsError::Vault(e) => match e {
                VaultError::Backend(b) if b.kind() == nimbus_backend::BackendErrorKind::StorageFull => {
                    ErrorKind::NoSpace
                }
                VaultError::Backend(_) => ErrorKind::Unavailable,
                VaultError::Corrupt { .. } | VaultError::Missing { .. } => ErrorKind::Corrupt,
                _ => ErrorKind::Io,
            },
            FsError::Db(e) if e.is_disk_full() => ErrorKind::NoSpace,
            FsError::Db(_) => ErrorKind::Io,
            FsError::Io { source, .. } => match source.raw_os_error() {
                Some(28) => ErrorKind::NoSpace, // ENOSPC
                Some(27) => ErrorKind::TooBig,  // EFBIG
                _ => ErrorKind::Io,
            },
        }
    }
}

/// A lock an earlier panic left poisoned: the drive's state in memory may be
/// half-changed, so nothing more is trusted until a remount.
pub(crate) fn lock_err() -> FsError {
    FsError::new(
        ErrorKind::Io,
        "an internal lock was poisoned by an earlier failure; remount the drive",
    )
}

pub(crate) fn not_dir() -> FsError {
    FsError::new(ErrorKind::NotDir, "not a folder")
}

/// An error kept where other threads read it later (a fetch shared by
/// several readers, the result of the last commit): its kind and message.
/// The error itself cannot be cloned; a message alone would lose whether
/// the store was unreachable, which is what tells Offline from Error.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    pub kind: ErrorKind,
    pub message: String,
}

impl Failure {
    pub fn of(e: &FsError) -> Failure {
        Failure {
            kind: e.kind(),
            message: e.to_string(),
        }
    }

    /// The error again, for one more caller.
    pub fn to_error(&self) -> FsError {
        FsError::new(self.kind, self.message.clone())
    }
}

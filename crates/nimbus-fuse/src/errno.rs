//! The one table from core errors to errno values.
//!
//! A person sees only the errno (`EIO` says little), so errors that hide a
//! cause (the store, corrupt data, local I/O) are logged with their full
//! message here, once, where they leave the drive.

use fuser::Errno;
use nimbus_fs::{ErrorKind, FsError};

/// A locked drive: "Required key not available" on Linux (what fscrypt
/// answers for a locked folder too); macOS and the BSDs have no ENOKEY.
fn locked() -> Errno {
    #[cfg(target_os = "linux")]
    return Errno::from_i32(libc::ENOKEY);
    #[cfg(not(target_os = "linux"))]
    return Errno::EACCES;
}

/// The errno of each kind of core error.
pub(crate) fn errno(kind: ErrorKind) -> Errno {
    match kind {
        ErrorKind::NotFound => Errno::ENOENT,
        ErrorKind::Exists => Errno::EEXIST,
        ErrorKind::NotDir => Errno::ENOTDIR,
        ErrorKind::IsDir => Errno::EISDIR,
        ErrorKind::NotEmpty => Errno::ENOTEMPTY,
        ErrorKind::NameTooLong => Errno::ENAMETOOLONG,
        ErrorKind::InvalidArgument => Errno::EINVAL,
        ErrorKind::NotPermitted => Errno::EPERM,
        ErrorKind::ReadOnly => Errno::EROFS,
        // ENODATA on Linux, ENOATTR on macOS and the BSDs.
        ErrorKind::NoAttribute => Errno::NO_XATTR,
        ErrorKind::Range => Errno::ERANGE,
        ErrorKind::TooBig => Errno::EFBIG,
        ErrorKind::NoSpace => Errno::ENOSPC,
        ErrorKind::NotSupported => Errno::EOPNOTSUPP,
        ErrorKind::Unavailable | ErrorKind::Corrupt | ErrorKind::Io => Errno::EIO,
        ErrorKind::BadHandle => Errno::EBADF,
        ErrorKind::Locked => locked(),
        ErrorKind::Stale => Errno::ESTALE,
    }
}

/// The errno for a failed operation, logging the causes `EIO` hides.
pub(crate) fn fail(op: &str, e: FsError) -> Errno {
    let kind = e.kind();
    if matches!(kind, ErrorKind::Unavailable | ErrorKind::Corrupt | ErrorKind::Io) {
        tracing::warn!("{op} failed with an I/O error: {e}");
    }
    errno(kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kind with its errno. `errno` has no wildcard arm, so a new
    /// kind fails to compile there; this pins the values.
    const ALL: [(ErrorKind, i32); 20] = [
        (ErrorKind::NotFound, libc::ENOENT),
        (ErrorKind::Exists, libc::EEXIST),
        (ErrorKind::NotDir, libc::ENOTDIR),
        (ErrorKind::IsDir, libc::EISDIR),
        (ErrorKind::NotEmpty, libc::ENOTEMPTY),
        (ErrorKind::NameTooLong, libc::ENAMETOOLONG),
        (ErrorKind::InvalidArgument, libc::EINVAL),
        (ErrorKind::NotPermitted, libc::EPERM),
        (ErrorKind::ReadOnly, libc::EROFS),
        #[cfg(target_os = "linux")]
        (ErrorKind::NoAttribute, libc::ENODATA),
        #[cfg(not(target_os = "linux"))]
        (ErrorKind::NoAttribute, libc::ENOATTR),
        (ErrorKind::Range, libc::ERANGE),
        (ErrorKind::TooBig, libc::EFBIG),
        (ErrorKind::NoSpace, libc::ENOSPC),
        (ErrorKind::NotSupported, libc::EOPNOTSUPP),
        (ErrorKind::Unavailable, libc::EIO),
        (ErrorKind::Corrupt, libc::EIO),
        (ErrorKind::Io, libc::EIO),
        (ErrorKind::BadHandle, libc::EBADF),
        #[cfg(target_os = "linux")]
        (ErrorKind::Locked, libc::ENOKEY),
        #[cfg(not(target_os = "linux"))]
        (ErrorKind::Locked, libc::EACCES),
        (ErrorKind::Stale, libc::ESTALE),
    ];

    #[test]
    fn every_kind_maps() {
        for (i, (kind, code)) in ALL.iter().enumerate() {
            assert!(!ALL[..i].iter().any(|(k, _)| k == kind), "{kind:?} is listed twice");
            assert_eq!(errno(*kind).code(), *code, "{kind:?}");
        }
    }

    #[test]
    fn hidden_causes_are_eio() {
        let e = FsError::new(ErrorKind::Unavailable, "the store did not answer");
        assert_eq!(fail("read", e).code(), libc::EIO);
        let e = FsError::new(ErrorKind::NotFound, "no such file or folder");
        assert_eq!(fail("lookup", e).code(), libc::ENOENT);
    }
}

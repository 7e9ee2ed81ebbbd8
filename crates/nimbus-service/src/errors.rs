//! Library errors as the API's errors: a stable code for programs and the
//! library's own message, which already says what happened and what to do.

use nimbus_api::{ApiError, ErrorCode};
use nimbus_backend::{BackendError, BackendErrorKind};
use nimbus_vault::VaultError;

pub fn from_backend(e: BackendError) -> ApiError {
    let code = match e.kind() {
        BackendErrorKind::Unavailable => ErrorCode::Unavailable,
        BackendErrorKind::PermissionDenied | BackendErrorKind::InvalidConfig => ErrorCode::StoreRefused,
        BackendErrorKind::NotFound => ErrorCode::NotFound,
        _ => ErrorCode::Internal,
    };
    ApiError::new(code, e.to_string())
}

pub fn from_vault(e: VaultError) -> ApiError {
    match e {
        VaultError::Backend(b) => from_backend(b),
        VaultError::WrongPassword => ApiError::new(
            ErrorCode::WrongPassword,
            "wrong password for this vault; try again (or change it with `nimbus passwd` and the recovery key)",
        ),
        VaultError::NoVault { .. } => ApiError::new(ErrorCode::NotFound, e.to_string()),
        VaultError::InvalidInput(_) => ApiError::new(ErrorCode::Invalid, e.to_string()),
        VaultError::PathNotFound { .. } | VaultError::Empty => ApiError::new(ErrorCode::NotFound, e.to_string()),
        other => ApiError::new(ErrorCode::Internal, other.to_string()),
    }
}

pub fn from_fs(e: nimbus_fs::FsError) -> ApiError {
    use nimbus_fs::ErrorKind as K;
    let code = match e.kind() {
        K::NotFound => ErrorCode::NotFound,
        K::Unavailable => ErrorCode::Unavailable,
        K::Locked => ErrorCode::Locked,
        K::InvalidArgument | K::NameTooLong | K::NotDir | K::IsDir => ErrorCode::Invalid,
        _ => ErrorCode::Internal,
    };
    ApiError::new(code, e.to_string())
}

/// A drive that did not open, by the step that failed.
pub fn from_open(e: nimbus_host::OpenError) -> ApiError {
    use nimbus_host::device::RollbackError;
    use nimbus_host::OpenError as E;
    match e {
        E::Vault(v) | E::Unlock(v) | E::Rollback(RollbackError::Refs(v)) => from_vault(v),
        E::State(io) | E::Rollback(RollbackError::Memory(io)) => ApiError::new(ErrorCode::Local, io.to_string()),
        E::Locked(l) => ApiError::new(ErrorCode::Busy, l.to_string()),
        E::Load(f) => from_fs(f),
    }
}

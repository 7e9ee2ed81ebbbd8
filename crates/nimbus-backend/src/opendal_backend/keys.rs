//! Which object keys and list prefixes the store accepts, checked before any
//! call reaches OpenDAL.
//!
//! Keys are checked here rather than left to each service because services
//! disagree: the fs service silently rewrites `a//b` to `a/b` and turns a key
//! with `..` into "not found", while S3 would store both as written. A vault
//! written through one service must read back the same through another.

use crate::BackendError;

/// The folder inside a local store where OpenDAL writes each object before
/// renaming it into place. Keys under it are refused and listings skip it.
pub(crate) const TMP_DIR: &str = ".tmp";

/// Refuses keys that are empty, absolute, end in `/`, have empty, `.` or `..`
/// segments, contain a backslash or NUL, or point into [`TMP_DIR`].
pub(crate) fn check_key(key: &str) -> Result<(), BackendError> {
    if key.is_empty() {
        return Err(invalid(key, "it is empty"));
    }
    if key.ends_with('/') {
        return Err(invalid(key, "it ends with `/`, which names a folder"));
    }
    check_path(key)?;
    if key.split('/').next() == Some(TMP_DIR) {
        return Err(invalid(key, "the `.tmp` folder is reserved for writes in progress"));
    }
    Ok(())
}

/// Like [`check_key`], except that a prefix may be empty (everything) or end
/// in `/`.
pub(crate) fn check_prefix(prefix: &str) -> Result<(), BackendError> {
    match prefix.strip_suffix('/') {
        _ if prefix.is_empty() => Ok(()),
        Some("") => Err(invalid(prefix, "it starts with `/`; keys are relative")),
        Some(dir) => check_path(dir),
        None => check_path(prefix),
    }
}

/// Whether a listed path lies in the reserved [`TMP_DIR`].
pub(crate) fn is_reserved(path: &str) -> bool {
    path.split('/').next() == Some(TMP_DIR)
}

fn check_path(path: &str) -> Result<(), BackendError> {
    if path.starts_with('/') {
        return Err(invalid(path, "it starts with `/`; keys are relative"));
    }
    if path.contains(['\\', '\0']) {
        return Err(invalid(path, "it contains a backslash or NUL character"));
    }
    for segment in path.split('/') {
        match segment {
            "" => return Err(invalid(path, "it has an empty segment (`//`)")),
            "." | ".." => return Err(invalid(path, "it has a `.` or `..` segment")),
            _ => {}
        }
    }
    Ok(())
}

fn invalid(key: &str, why: &str) -> BackendError {
    BackendError::other(format!(
        "`{key}` is not a valid object key: {why}; this is a bug in the program using the \
         store, please report it"
    ))
    .with_key(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        for good in ["config", "packs/ab/ab12", "a.b", ".hidden", "x/.tmp", ".tmpx"] {
            assert!(check_key(good).is_ok(), "{good}");
        }
        for bad in [
            "", "/config", "config/", "a//b", "a/./b", "../x", "a/..", "a\\b", "a\0b", ".tmp", ".tmp/x",
        ] {
            assert!(check_key(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn prefixes() {
        for good in ["", "packs", "packs/", "packs/a", "packs/ab/", ".tmp/"] {
            assert!(check_prefix(good).is_ok(), "{good}");
        }
        for bad in ["/", "/packs", "a//", "../", "a/../b/"] {
            assert!(check_prefix(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn reserved() {
        assert!(is_reserved(".tmp/config.abc"));
        assert!(is_reserved(".tmp/"));
        assert!(!is_reserved("packs/.tmp/x"));
        assert!(!is_reserved(".tmpfile"));
    }
}

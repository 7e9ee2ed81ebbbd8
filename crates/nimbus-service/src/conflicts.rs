//! The conflict copies of a drive (docs/SYNC.md §5.2, §5.3): listed from
//! the drive's names, and resolved by keeping one version through the
//! mount, as a person would in a file manager, so the kernel's caches and
//! the next commit see an ordinary change that syncs to every device. The
//! version not kept stays in the drive's snapshots.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use nimbus_api::{ApiError, ConflictInfo, ErrorCode, Keep};

use crate::drive::Drive;
use crate::restore;

/// A conflict copy for the API.
pub fn info(c: &nimbus_fs::ConflictCopy) -> ConflictInfo {
    ConflictInfo {
        copy: c.copy.clone(),
        original: c.original.clone(),
        device: c.device.clone(),
        time: unix_secs(c.time),
    }
}

fn unix_secs(t: SystemTime) -> Option<i64> {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .ok()
        .and_then(|d| i64::try_from(d.as_secs()).ok())
}

/// The answer to `conflicts`.
pub fn list(d: &Drive) -> Result<Vec<ConflictInfo>, ApiError> {
    Ok(d.conflicts()?.iter().map(info).collect())
}

/// The answer to `resolve_conflict`: keeps one version of the conflict
/// copy at `path` and says what happened.
pub fn resolve(d: &Drive, path: &str, keep: Keep) -> Result<String, ApiError> {
    let rel = restore::inside(path).map_err(|e| invalid(e.to_string()))?;
    let wanted = format!("/{}", rel.display());
    let copies = d.conflicts()?;
    let Some(c) = copies.iter().find(|c| c.copy == wanted) else {
        return Err(ApiError::new(
            ErrorCode::NotFound,
            format!(
                "{wanted} is not a conflict copy in drive `{}`; `nimbus conflicts {}` lists them",
                d.name(),
                d.name()
            ),
        ));
    };
    let mount = d.config().mount;
    keep_one(&mount, c, keep)
}

/// Keeps one version through the mount at `mount`.
fn keep_one(mount: &Path, c: &nimbus_fs::ConflictCopy, keep: Keep) -> Result<String, ApiError> {
    let copy = at(mount, &c.copy)?;
    let original = at(mount, &c.original)?;
    let meta = std::fs::symlink_metadata(&copy).map_err(|e| local(&c.copy, e))?;
    if meta.is_dir() {
        return Err(invalid(format!(
            "{} is a folder: move what you want to keep out of it, then delete it",
            c.copy
        )));
    }
    match keep {
        Keep::Original => {
            std::fs::remove_file(&copy).map_err(|e| local(&c.copy, e))?;
            Ok(format!(
                "kept {}; the version from {} is deleted (the drive's snapshots still hold it)",
                c.original, c.device
            ))
        }
        Keep::Copy => {
            if std::fs::symlink_metadata(&original).is_ok_and(|m| m.is_dir()) {
                return Err(invalid(format!(
                    "{} is a folder now: rename the conflict copy yourself to keep both",
                    c.original
                )));
            }
            std::fs::rename(&copy, &original).map_err(|e| local(&c.original, e))?;
            Ok(format!(
                "{} now holds the version from {}; the other version is in the drive's snapshots",
                c.original, c.device
            ))
        }
    }
}

/// Where a drive path is under the mount, with no symbolic link on the way.
fn at(mount: &Path, path: &str) -> Result<PathBuf, ApiError> {
    let rel = restore::inside(path).map_err(|e| invalid(e.to_string()))?;
    restore::walk(mount, &rel, true).map_err(|e| invalid(e.to_string()))
}

fn invalid(msg: String) -> ApiError {
    ApiError::new(ErrorCode::Invalid, msg)
}

fn local(path: &str, e: std::io::Error) -> ApiError {
    let code = if e.kind() == std::io::ErrorKind::NotFound {
        ErrorCode::NotFound
    } else {
        ErrorCode::Local
    };
    ApiError::new(code, format!("{path}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn copy_in(dir: &Path) -> nimbus_fs::ConflictCopy {
        std::fs::create_dir_all(dir.join("docs")).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.join("docs/r.txt"), "mine").unwrap_or_else(|e| panic!("{e}"));
        let name = "r (conflict laptop 2026-12-07 14.05 UTC).txt";
        std::fs::write(dir.join("docs").join(name), "theirs").unwrap_or_else(|e| panic!("{e}"));
        nimbus_fs::ConflictCopy {
            copy: format!("/docs/{name}"),
            original: "/docs/r.txt".into(),
            device: "laptop".into(),
            time: SystemTime::UNIX_EPOCH,
        }
    }

    /// `docs/` holds `r.txt` alone, with `text` in it.
    fn only_r_holding(dir: &Path, text: &str) {
        let names: Vec<_> = std::fs::read_dir(dir.join("docs"))
            .unwrap_or_else(|e| panic!("{e}"))
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, ["r.txt"]);
        assert_eq!(
            std::fs::read_to_string(dir.join("docs/r.txt")).ok().as_deref(),
            Some(text)
        );
    }

    #[test]
    fn keeping_the_original_deletes_the_copy() {
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let c = copy_in(tmp.path());
        let msg = keep_one(tmp.path(), &c, Keep::Original).unwrap_or_else(|e| panic!("{e}"));
        assert!(msg.contains("snapshots"), "{msg}");
        only_r_holding(tmp.path(), "mine");
    }

    #[test]
    fn keeping_the_copy_puts_it_in_the_original() {
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let c = copy_in(tmp.path());
        keep_one(tmp.path(), &c, Keep::Copy).unwrap_or_else(|e| panic!("{e}"));
        only_r_holding(tmp.path(), "theirs");
    }

    #[test]
    fn a_copy_gone_or_a_path_leaving_the_drive_is_refused() {
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mut c = copy_in(tmp.path());
        std::fs::remove_file(tmp.path().join(c.copy.trim_start_matches('/'))).unwrap_or_else(|e| panic!("{e}"));
        let e = keep_one(tmp.path(), &c, Keep::Copy)
            .err()
            .unwrap_or_else(|| panic!("kept a copy that is gone"));
        assert_eq!(e.code, ErrorCode::NotFound, "{}", e.message);
        c.original = "/../../etc/passwd".into();
        let e = keep_one(tmp.path(), &c, Keep::Copy)
            .err()
            .unwrap_or_else(|| panic!("left the drive"));
        assert_eq!(e.code, ErrorCode::Invalid, "{}", e.message);
        assert_eq!(
            std::fs::read_to_string(tmp.path().join("docs/r.txt")).ok().as_deref(),
            Some("mine")
        );
    }
}

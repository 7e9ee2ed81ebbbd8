//! Opening a local folder as a store, with writes made atomic by writing to
//! `.tmp` inside it and renaming into place.

use super::keys::TMP_DIR;
use super::OpendalBackend;
use crate::error::Op;
use crate::{BackendError, BackendErrorKind};
use opendal::Operator;
use std::io;
use std::path::Path;

impl OpendalBackend {
    /// Opens the existing folder `path` as a store. A relative path is taken
    /// relative to the current directory.
    ///
    /// The folder is not created: a mistyped path must not quietly become a
    /// new empty store. Each write goes to a file in `<path>/.tmp` first and
    /// is renamed into place once it is complete and synced, so a crash never
    /// leaves a half-written object under its final name (a stray file in
    /// `.tmp` at worst, which listings skip).
    ///
    /// If `.tmp` cannot be created because the folder is read-only, the store
    /// still opens for reading, and refuses writes and deletes.
    pub fn local_folder(path: &Path) -> Result<Self, BackendError> {
        let root = std::path::absolute(path).map_err(|e| {
            BackendError::invalid_config(format!(
                "cannot make `{}` an absolute path ({e}); give the full path of the folder",
                path.display()
            ))
            .with_source(e)
        })?;
        check_is_folder(&root)?;
        let root_str = utf8(&root)?;
        let tmp = root.join(TMP_DIR);
        let tmp_str = utf8(&tmp)?;
        let description = format!("local folder {}", root.display());

        // OpenDAL would create `.tmp` itself, but would then fail the whole
        // open on a read-only folder, where reading must still work.
        let read_only = match std::fs::create_dir(&tmp) {
            Ok(()) => false,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && tmp.is_dir() => false,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(BackendError::invalid_config(format!(
                    "{} is a file, but the store needs that name for a folder of writes in \
                     progress; move the file elsewhere and try again",
                    tmp.display()
                ))
                .with_source(e))
            }
            Err(e) if is_read_only(&e) => true,
            Err(e) => return Err(io_error(&tmp, e, "create the folder")),
        };

        let mut builder = opendal::services::Fs::default().root(root_str);
        if !read_only {
            builder = builder.atomic_write_dir(tmp_str);
        }
        let op = Operator::new(builder).map_err(|err| BackendError::from_opendal(Op::Open, None, err))?;
        let mut backend = OpendalBackend::from_operator(op, description);
        backend.read_only = read_only;
        Ok(backend)
    }
}

fn check_is_folder(root: &Path) -> Result<(), BackendError> {
    match std::fs::metadata(root) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(BackendError::invalid_config(format!(
            "{} is a file, not a folder; give the path of the vault folder",
            root.display()
        ))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(BackendError::new(
            BackendErrorKind::NotFound,
            format!("the folder {} does not exist; check the path", root.display()),
        )
        .with_source(e)),
        Err(e) => Err(io_error(root, e, "open the folder")),
    }
}

fn is_read_only(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem
    )
}

fn io_error(path: &Path, e: io::Error, what: &str) -> BackendError {
    let detail = format!("could not {what} {} ({e})", path.display());
    let err = if is_read_only(&e) {
        BackendError::permission_denied(detail)
    } else {
        BackendError::other(format!(
            "{detail}; check that the disk is working and the path is right"
        ))
    };
    err.with_source(e)
}

/// OpenDAL takes paths as `&str`.
fn utf8(path: &Path) -> Result<&str, BackendError> {
    path.to_str().ok_or_else(|| {
        BackendError::invalid_config(format!(
            "the folder path {} is not valid Unicode, which the storage layer cannot handle; \
             use a folder whose path has only Unicode characters",
            path.display()
        ))
    })
}

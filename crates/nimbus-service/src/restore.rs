//! Restoring a file or folder from a snapshot: a copy out of the drive's
//! read-only `.snapshots/<time>/` folder, through the mount itself, so it
//! reads exactly what a person browsing the snapshot sees.
//!
//! Nothing is overwritten: restoring to a place that is taken puts the copy
//! beside it, named `<name> (restored <snapshot time>)`.

use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Component, Path, PathBuf};

#[derive(Debug, Default)]
pub struct Restored {
    pub to: PathBuf,
    pub files: u64,
    pub bytes: u64,
}

/// A path that is not a place inside the drive, or that cannot be walked
/// to without following a link.
#[derive(Debug, thiserror::Error)]
pub enum PathError {
    #[error("`{0}` leaves the drive; give a path inside it")]
    LeavesDrive(String),
    #[error("give the path of a file or folder inside the drive, not the whole drive")]
    WholeDrive,
    #[error("{} cannot be read: {error}", .at.display())]
    Unreadable { at: PathBuf, error: std::io::Error },
    #[error(
        "`{}` goes through {}, a symbolic link, which is not followed (it could lead out of the drive); give \
         the path of the folder the link points to instead",
        .rel.display(),
        .at.display()
    )]
    ThroughLink { rel: PathBuf, at: PathBuf },
    #[error("{} is not a folder", .0.display())]
    NotAFolder(PathBuf),
}

/// A path inside the drive, made relative and refused if it climbs out.
pub fn inside(path: &str) -> Result<PathBuf, PathError> {
    let mut out = PathBuf::new();
    for c in Path::new(path).components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                return Err(PathError::LeavesDrive(path.to_string()));
            }
        }
    }
    if out.as_os_str().is_empty() {
        return Err(PathError::WholeDrive);
    }
    Ok(out)
}

/// `base/rel`, found without following a symbolic link on the way: every
/// component but the last must be a real folder. A snapshot's link can
/// point anywhere on this computer (any key holder writes snapshots), so a
/// path through one would restore, or list, files from outside the drive
/// (review L12). The last component may be a link only when
/// `last_may_be_link` (restore copies the link itself).
pub fn walk(base: &Path, rel: &Path, last_may_be_link: bool) -> Result<PathBuf, PathError> {
    let mut at = base.to_path_buf();
    let parts: Vec<_> = rel.components().collect();
    for (i, c) in parts.iter().enumerate() {
        let Component::Normal(name) = c else {
            return Err(PathError::LeavesDrive(rel.display().to_string()));
        };
        at.push(name);
        let last = i + 1 == parts.len();
        let meta = match std::fs::symlink_metadata(&at) {
            Ok(m) => m,
            // Missing: the caller says so in its own words.
            Err(_) if last => return Ok(at),
            Err(error) => return Err(PathError::Unreadable { at, error }),
        };
        if meta.file_type().is_symlink() && !(last && last_may_be_link) {
            return Err(PathError::ThroughLink {
                rel: rel.to_path_buf(),
                at,
            });
        }
        if !last && !meta.is_dir() {
            return Err(PathError::NotAFolder(at));
        }
    }
    Ok(at)
}

/// Why a restore did not happen: the snapshot has no such thing, or it
/// could not be copied here.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("{0}")]
    NotInSnapshot(String),
    #[error("{0}")]
    Local(String),
}

/// Copies `mount/.snapshots/<snapshot>/<rel>` into the folder `to`, or back
/// to its own place in the drive.
pub fn restore(mount: &Path, snapshot: &str, rel: &Path, to: Option<&Path>) -> Result<Restored, RestoreError> {
    let src = walk(&mount.join(".snapshots").join(snapshot), rel, true)
        .map_err(|e| RestoreError::NotInSnapshot(e.to_string()))?;
    std::fs::symlink_metadata(&src).map_err(|e| {
        RestoreError::NotInSnapshot(format!("{} is not in the snapshot {snapshot}: {e}", rel.display()))
    })?;
    restore_from(&src, mount, snapshot, rel, to)
}

fn restore_from(
    src: &Path,
    mount: &Path,
    snapshot: &str,
    rel: &Path,
    to: Option<&Path>,
) -> Result<Restored, RestoreError> {
    let name = rel
        .file_name()
        .ok_or_else(|| RestoreError::Local("the path has no name".to_string()))?
        .to_os_string();
    let dest_dir = match to {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .map_err(|e| RestoreError::Local(format!("cannot create {}: {e}", dir.display())))?;
            dir.to_path_buf()
        }
        // Back into the drive: its folders as they are now, links not
        // followed either.
        None => {
            walk(mount, rel.parent().unwrap_or(Path::new("")), false).map_err(|e| RestoreError::Local(e.to_string()))?
        }
    };
    let mut dest = dest_dir.join(&name);
    if std::fs::symlink_metadata(&dest).is_ok() {
        let (stem, ext) = split_ext(&name.to_string_lossy());
        let when = snapshot.replace('T', " ").trim_end_matches('Z').to_string();
        let mut n = 1;
        loop {
            let suffix = if n == 1 { String::new() } else { format!(" {n}") };
            dest = dest_dir.join(format!("{stem} (restored {when}{suffix}){ext}"));
            if std::fs::symlink_metadata(&dest).is_err() {
                break;
            }
            n += 1;
        }
    }
    let mut r = Restored {
        to: dest.clone(),
        ..Default::default()
    };
    copy(src, &dest, &mut r)?;
    Ok(r)
}

/// `report.txt` → (`report`, `.txt`); folders and dotfiles keep their name.
fn split_ext(name: &str) -> (String, String) {
    match name.rfind('.') {
        Some(i) if i > 0 => (name[..i].to_string(), name[i..].to_string()),
        _ => (name.to_string(), String::new()),
    }
}

fn copy(src: &Path, dest: &Path, r: &mut Restored) -> Result<(), RestoreError> {
    let err =
        |what: &str, p: &Path, e: std::io::Error| RestoreError::Local(format!("cannot {what} {}: {e}", p.display()));
    let meta = std::fs::symlink_metadata(src).map_err(|e| err("read", src, e))?;
    let ft = meta.file_type();
    if ft.is_symlink() {
        let target = std::fs::read_link(src).map_err(|e| err("read", src, e))?;
        symlink(&target, dest).map_err(|e| err("create", dest, e))?;
        r.files += 1;
        return Ok(());
    }
    if ft.is_dir() {
        std::fs::create_dir(dest).map_err(|e| err("create", dest, e))?;
        let mut entries: Vec<_> = std::fs::read_dir(src)
            .map_err(|e| err("list", src, e))?
            .collect::<Result<_, _>>()
            .map_err(|e| err("list", src, e))?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            copy(&e.path(), &dest.join(e.file_name()), r)?;
        }
    } else if ft.is_file() {
        r.bytes += std::fs::copy(src, dest).map_err(|e| err("copy", src, e))?;
        r.files += 1;
    } else {
        // Devices, sockets and fifos are not restored by copying.
        return Ok(());
    }
    let _ = std::fs::set_permissions(
        dest,
        std::fs::Permissions::from_mode(meta.permissions().mode() & 0o7777),
    );
    if let Ok(m) = meta.modified() {
        let _ = std::fs::File::open(dest).and_then(|f| f.set_modified(m));
    }
    Ok(())
}

/// The entries of a folder of a snapshot, folders first, then by name.
pub fn list(dir: &Path) -> std::io::Result<Vec<nimbus_api::Entry>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let m = e.metadata()?;
        let modified = m
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .and_then(|d| i64::try_from(d.as_secs()).ok());
        out.push(nimbus_api::Entry {
            name: e.file_name().to_string_lossy().into_owned(),
            dir: m.is_dir(),
            size: if m.is_dir() { 0 } else { m.len() },
            modified,
        });
    }
    out.sort_by(|a, b| b.dir.cmp(&a.dir).then_with(|| a.name.cmp(&b.name)));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside_the_drive() {
        assert_eq!(inside("/a/b").ok(), Some(PathBuf::from("a/b")));
        assert_eq!(inside("a/./b").ok(), Some(PathBuf::from("a/b")));
        assert!(inside("../etc").is_err());
        assert!(inside("a/../../b").is_err());
        assert!(inside("/").is_err());
    }

    #[test]
    fn restores_beside_what_is_there_and_never_overwrites() {
        let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let m = d.path();
        let snap = m.join(".snapshots/2026-11-23T14-05-09Z/docs");
        std::fs::create_dir_all(snap.join("sub")).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(snap.join("a.txt"), "old").unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(snap.join("sub/b"), "bb").unwrap_or_else(|e| panic!("{e}"));
        std::fs::create_dir_all(m.join("docs")).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(m.join("docs/a.txt"), "new").unwrap_or_else(|e| panic!("{e}"));
        let r = restore(m, "2026-11-23T14-05-09Z", Path::new("docs/a.txt"), None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.to, m.join("docs/a (restored 2026-11-23 14-05-09).txt"));
        assert_eq!(std::fs::read_to_string(&r.to).ok().as_deref(), Some("old"));
        assert_eq!(
            std::fs::read_to_string(m.join("docs/a.txt")).ok().as_deref(),
            Some("new")
        );
        let out = m.join("out");
        let r = restore(m, "2026-11-23T14-05-09Z", Path::new("docs"), Some(&out)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((r.files, r.bytes), (2, 5));
        assert_eq!(
            std::fs::read_to_string(out.join("docs/sub/b")).ok().as_deref(),
            Some("bb")
        );
        assert!(restore(m, "2026-11-23T14-05-09Z", Path::new("nope"), None).is_err());
    }

    /// A snapshot holding `docs -> <a folder outside the drive>`: neither
    /// restore nor browse may go through it; the link itself restores as a
    /// link.
    #[test]
    fn never_follows_a_symlink_inside_a_snapshot_path() {
        let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let m = d.path().join("drive");
        let outside = d.path().join("outside");
        std::fs::create_dir_all(&outside).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(outside.join("secret.txt"), "not in the drive").unwrap_or_else(|e| panic!("{e}"));
        let snap = m.join(".snapshots/2026-11-23T14-05-09Z");
        std::fs::create_dir_all(&snap).unwrap_or_else(|e| panic!("{e}"));
        symlink(&outside, snap.join("docs")).unwrap_or_else(|e| panic!("{e}"));
        let out = d.path().join("out");
        let e = restore(&m, "2026-11-23T14-05-09Z", Path::new("docs/secret.txt"), Some(&out))
            .err()
            .unwrap_or_else(|| panic!("restored a file from outside the drive"));
        assert!(e.to_string().contains("a symbolic link, which is not followed"), "{e}");
        assert!(!out.join("secret.txt").exists());
        let e = walk(&snap, Path::new("docs"), false)
            .err()
            .unwrap_or_else(|| panic!("browsed through a link"));
        assert!(e.to_string().contains("symbolic link"), "{e}");
        // The link itself is restored as a link, not as what it points to.
        let r = restore(&m, "2026-11-23T14-05-09Z", Path::new("docs"), Some(&out)).unwrap_or_else(|e| panic!("{e}"));
        assert!(std::fs::symlink_metadata(&r.to)
            .map(|m| m.file_type().is_symlink())
            .unwrap_or(false));
        // Back into the drive through a link in the drive itself: refused.
        std::fs::create_dir_all(m.join(".snapshots/2026-11-23T14-05-09Z/real")).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(m.join(".snapshots/2026-11-23T14-05-09Z/real/f"), "f").unwrap_or_else(|e| panic!("{e}"));
        symlink(&outside, m.join("real")).unwrap_or_else(|e| panic!("{e}"));
        let e = restore(&m, "2026-11-23T14-05-09Z", Path::new("real/f"), None)
            .err()
            .unwrap_or_else(|| panic!("restored through a link out of the drive"));
        assert!(e.to_string().contains("symbolic link"), "{e}");
        assert!(!outside.join("f").exists());
    }
}

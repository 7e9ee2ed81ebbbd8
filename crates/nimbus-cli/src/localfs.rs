//! The local side of `put` and `get`: scanning a folder into entries with
//! their metadata, and writing entries back with theirs (modes, owners when
//! permitted, times, symlinks, extended attributes).

use anyhow::{Context, Result};
use nimbus_vault::{Entry, EntryKind, Timestamp, Xattr};
use std::fs::Metadata;
use std::path::{Path, PathBuf};

/// One scanned file system object.
pub struct Node {
    pub name: Vec<u8>,
    pub path: PathBuf,
    pub entry: Entry,
    /// Indices of the children (folders only), sorted by name.
    pub children: Vec<usize>,
}

/// A scanned tree, parents before children.
pub struct Scan {
    pub nodes: Vec<Node>,
    /// Objects that could not be read, with the reason.
    pub skipped: Vec<(PathBuf, String)>,
    /// Folders (node indices) that could not be listed, or not fully: their
    /// children here are missing or incomplete.
    pub unlisted: Vec<usize>,
    pub files: u64,
    pub file_bytes: u64,
}

#[cfg(unix)]
pub fn name_bytes(name: &std::ffi::OsStr) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    name.as_bytes().to_vec()
}

#[cfg(not(unix))]
pub fn name_bytes(name: &std::ffi::OsStr) -> Vec<u8> {
    name.to_string_lossy().as_bytes().to_vec()
}

#[cfg(unix)]
pub fn path_from_bytes(b: &[u8]) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    PathBuf::from(std::ffi::OsStr::from_bytes(b))
}

#[cfg(not(unix))]
pub fn path_from_bytes(b: &[u8]) -> PathBuf {
    PathBuf::from(String::from_utf8_lossy(b).into_owned())
}

/// An entry describing `meta`, with no content yet.
pub fn entry_from_meta(name: Vec<u8>, meta: &Metadata) -> Entry {
    let ft = meta.file_type();
    let kind = kind_of(&ft);
    let mut e = Entry {
        kind,
        mode: 0o644,
        mtime: meta.modified().map(Timestamp::from_system).unwrap_or_default(),
        size: if kind == EntryKind::File { meta.len() } else { 0 },
        ..Entry::new_dir(name, Timestamp::default())
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        e.mode = meta.mode() & 0o7777;
        e.uid = meta.uid();
        e.gid = meta.gid();
        e.mtime = Timestamp {
            secs: meta.mtime(),
            nanos: meta.mtime_nsec().clamp(0, 999_999_999) as u32,
        };
        e.ctime = Timestamp {
            secs: meta.ctime(),
            nanos: meta.ctime_nsec().clamp(0, 999_999_999) as u32,
        };
        e.rdev = meta.rdev();
    }
    #[cfg(not(unix))]
    {
        e.mode = if meta.permissions().readonly() { 0o444 } else { 0o644 };
        if kind == EntryKind::Dir {
            e.mode |= 0o111;
        }
    }
    e
}

fn kind_of(ft: &std::fs::FileType) -> EntryKind {
    if ft.is_dir() {
        return EntryKind::Dir;
    }
    if ft.is_symlink() {
        return EntryKind::Symlink;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if ft.is_fifo() {
            return EntryKind::Fifo;
        }
        if ft.is_socket() {
            return EntryKind::Socket;
        }
        if ft.is_char_device() {
            return EntryKind::CharDevice;
        }
        if ft.is_block_device() {
            return EntryKind::BlockDevice;
        }
    }
    EntryKind::File
}

/// Windows has no extended attributes of this kind (the `xattr` crate
/// builds only on Unix).
#[cfg(not(unix))]
fn read_xattrs(_path: &Path) -> Vec<Xattr> {
    Vec::new()
}

#[cfg(unix)]
fn read_xattrs(path: &Path) -> Vec<Xattr> {
    if !xattr::SUPPORTED_PLATFORM {
        return Vec::new();
    }
    let mut out = Vec::new();
    if let Ok(names) = xattr::list(path) {
        for n in names {
            if let Ok(Some(v)) = xattr::get(path, &n) {
                out.push(Xattr {
                    name: name_bytes(&n),
                    value: v,
                });
            }
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Scans `root` (not following symlinks). The first node is `root` itself.
pub fn scan(root: &Path) -> Result<Scan> {
    let meta = std::fs::symlink_metadata(root).with_context(|| format!("cannot read {}", root.display()))?;
    let name = root.file_name().map(name_bytes).unwrap_or_default();
    let mut scan = Scan {
        nodes: Vec::new(),
        skipped: Vec::new(),
        unlisted: Vec::new(),
        files: 0,
        file_bytes: 0,
    };
    let first = make_node(&mut scan, root.to_path_buf(), name, &meta);
    let mut stack = vec![first];
    while let Some(i) = stack.pop() {
        if scan.nodes[i].entry.kind != EntryKind::Dir {
            continue;
        }
        let dir = scan.nodes[i].path.clone();
        let rd = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) => {
                scan.skipped.push((dir.clone(), format!("cannot list it: {e}")));
                scan.unlisted.push(i);
                continue;
            }
        };
        let mut kids: Vec<(Vec<u8>, PathBuf, Metadata)> = Vec::new();
        for de in rd {
            let de = match de {
                Ok(d) => d,
                Err(e) => {
                    scan.skipped.push((dir.clone(), format!("cannot list it fully: {e}")));
                    if scan.unlisted.last() != Some(&i) {
                        scan.unlisted.push(i);
                    }
                    continue;
                }
            };
            let p = de.path();
            let name = name_bytes(&de.file_name());
            if !nimbus_vault::tree::valid_name(&name) {
                scan.skipped
                    .push((p, "its name cannot be stored in a vault (over 255 bytes)".into()));
                continue;
            }
            match std::fs::symlink_metadata(&p) {
                Ok(m) => kids.push((name, p, m)),
                Err(e) => scan.skipped.push((p, format!("cannot read its metadata: {e}"))),
            }
        }
        kids.sort_by(|a, b| a.0.cmp(&b.0));
        let mut idx = Vec::with_capacity(kids.len());
        for (name, p, m) in kids {
            let j = make_node(&mut scan, p, name, &m);
            idx.push(j);
            stack.push(j);
        }
        scan.nodes[i].children = idx;
    }
    Ok(scan)
}

fn make_node(scan: &mut Scan, path: PathBuf, name: Vec<u8>, meta: &Metadata) -> usize {
    let mut entry = entry_from_meta(name.clone(), meta);
    entry.xattrs = read_xattrs(&path);
    if entry.kind == EntryKind::Symlink {
        match std::fs::read_link(&path) {
            Ok(t) => entry.target = name_bytes(t.as_os_str()),
            Err(e) => scan.skipped.push((path.clone(), format!("cannot read the link: {e}"))),
        }
    }
    if entry.kind == EntryKind::File {
        scan.files += 1;
        scan.file_bytes += entry.size;
    }
    scan.nodes.push(Node {
        name,
        path,
        entry,
        children: Vec::new(),
    });
    scan.nodes.len() - 1
}

/// What could not be restored exactly (reported once, not per file).
#[derive(Default)]
pub struct RestoreNotes {
    #[cfg_attr(not(unix), allow(dead_code))]
    pub owner_skipped: bool,
    pub xattr_failed: u64,
    pub special_skipped: Vec<PathBuf>,
}

/// Applies owner, mode, xattrs and times to `path`. Owners are restored only
/// when the OS allows it (as root); times last, as other changes touch them.
#[cfg_attr(not(unix), allow(unused_variables))]
pub fn apply_metadata(path: &Path, e: &Entry, notes: &mut RestoreNotes) -> Result<()> {
    #[cfg(unix)]
    {
        if std::os::unix::fs::lchown(path, Some(e.uid), Some(e.gid)).is_err() {
            notes.owner_skipped = true;
        }
        if e.kind != EntryKind::Symlink {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(e.mode))
                .with_context(|| format!("cannot set the mode of {}", path.display()))?;
        }
    }
    #[cfg(unix)]
    if xattr::SUPPORTED_PLATFORM {
        for x in &e.xattrs {
            let name = path_from_bytes(&x.name);
            if xattr::set(path, name.as_os_str(), &x.value).is_err() {
                notes.xattr_failed += 1;
            }
        }
    }
    let mtime = filetime::FileTime::from_unix_time(e.mtime.secs, e.mtime.nanos);
    if e.kind == EntryKind::Symlink {
        filetime::set_symlink_file_times(path, mtime, mtime)
    } else {
        filetime::set_file_times(path, mtime, mtime)
    }
    .with_context(|| format!("cannot set the times of {}", path.display()))?;
    Ok(())
}

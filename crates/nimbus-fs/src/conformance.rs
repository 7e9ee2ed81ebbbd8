//! The behaviour suite: one set of checks that runs against the bare core
//! (`tests/behaviour.rs` here) and again through a real mount (in
//! `nimbus-fuse`). A [`Target`] is anything that can do path operations and
//! be remounted; each check panics with a message on a difference.

// A test harness: a failed step is a failed check, so it panics.
#![allow(clippy::unwrap_used, clippy::panic)]

use crate::error::ErrorKind;

/// What a check can see of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    pub is_dir: bool,
    pub is_symlink: bool,
    pub size: u64,
    pub nlink: u32,
    pub perm: u32,
    pub mtime_secs: i64,
}

pub type R<T> = std::result::Result<T, ErrorKind>;

/// Path operations; paths are relative to the drive's root, `/`-separated.
pub trait Target {
    fn name(&self) -> String;
    fn write(&mut self, path: &str, data: &[u8]) -> R<()>;
    fn write_at(&mut self, path: &str, off: u64, data: &[u8]) -> R<()>;
    fn read(&mut self, path: &str) -> R<Vec<u8>>;
    fn truncate(&mut self, path: &str, size: u64) -> R<()>;
    fn mkdir(&mut self, path: &str) -> R<()>;
    /// Names in a folder, sorted, without `.` and `..`.
    fn list(&mut self, path: &str) -> R<Vec<Vec<u8>>>;
    fn rename(&mut self, from: &str, to: &str) -> R<()>;
    fn unlink(&mut self, path: &str) -> R<()>;
    fn rmdir(&mut self, path: &str) -> R<()>;
    fn link(&mut self, from: &str, to: &str) -> R<()>;
    fn symlink(&mut self, target: &str, path: &str) -> R<()>;
    fn readlink(&mut self, path: &str) -> R<Vec<u8>>;
    fn stat(&mut self, path: &str) -> R<Meta>;
    fn chmod(&mut self, path: &str, mode: u32) -> R<()>;
    fn set_mtime(&mut self, path: &str, secs: i64) -> R<()>;
    fn set_xattr(&mut self, path: &str, name: &str, value: &[u8]) -> R<()>;
    fn get_xattr(&mut self, path: &str, name: &str) -> R<Vec<u8>>;
    fn list_xattr(&mut self, path: &str) -> R<Vec<Vec<u8>>>;
    fn remove_xattr(&mut self, path: &str, name: &str) -> R<()>;
    /// Commits everything to the vault now.
    fn sync(&mut self);
    /// Unmounts and mounts again; with `wipe`, the local state is deleted
    /// in between, so the drive is rebuilt from the vault.
    fn remount(&mut self, wipe: bool);
}

/// Deterministic pseudo-random bytes.
pub fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn names(v: &[&str]) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = v.iter().map(|s| s.as_bytes().to_vec()).collect();
    out.sort();
    out
}

/// Every check, in order, in a fresh folder `dir` of the target.
pub fn run_all(t: &mut dyn Target, dir: &str) {
    t.mkdir(dir)
        .unwrap_or_else(|e| panic!("{}: mkdir {dir}: {e:?}", t.name()));
    files_round_trip(t, dir);
    overwrite_and_truncate(t, dir);
    folders_and_renames(t, dir);
    links(t, dir);
    metadata_and_xattrs(t, dir);
    errors(t, dir);
    names_of_every_kind(t, dir);
    survives_remount_and_rebuild(t, dir);
}

pub fn files_round_trip(t: &mut dyn Target, dir: &str) {
    for (i, len) in [0usize, 1, 5, 4095, 4096, 4097, 65_537, (1 << 20) + 3, 5 << 20]
        .into_iter()
        .enumerate()
    {
        let p = format!("{dir}/f{i}");
        let data = bytes(i as u64, len);
        t.write(&p, &data).unwrap();
        assert_eq!(t.read(&p).unwrap(), data, "{}: {p} ({len} bytes) reads back", t.name());
        assert_eq!(t.stat(&p).unwrap().size, len as u64);
    }
}

pub fn overwrite_and_truncate(t: &mut dyn Target, dir: &str) {
    let p = format!("{dir}/edit");
    let mut model = bytes(100, 3 << 20);
    t.write(&p, &model).unwrap();
    t.sync(); // now the content is in the vault, and edits overlay it
    for (k, (off, len)) in [
        (0u64, 10usize),
        (4090, 20),
        (1 << 20, 4096),
        (3 << 20, 100),
        ((3 << 20) + 5000, 7),
        // Large writes, unaligned at one end, both or neither (the whole
        // blocks in them are sealed apart from the partial ones).
        (5000, 200_000),
        (8192, 70_000),
        (123_457, 2 * 65_536 + 3),
        (40_960, 81_920),
        ((3 << 20) - 1000, 300_001),
    ]
    .into_iter()
    .enumerate()
    {
        let patch = bytes(200 + k as u64, len);
        t.write_at(&p, off, &patch).unwrap();
        let end = off as usize + len;
        if model.len() < end {
            model.resize(end, 0);
        }
        model[off as usize..end].copy_from_slice(&patch);
        assert_eq!(t.read(&p).unwrap(), model, "{}: after writing {len} at {off}", t.name());
    }
    // Shrink, then grow: the cut-off part reads as zeros.
    t.truncate(&p, 5000).unwrap();
    model.truncate(5000);
    assert_eq!(t.read(&p).unwrap(), model);
    t.truncate(&p, 20_000).unwrap();
    model.resize(20_000, 0);
    assert_eq!(t.read(&p).unwrap(), model, "{}: grown file has zeros", t.name());
    t.sync();
    assert_eq!(t.read(&p).unwrap(), model, "{}: after a commit", t.name());
    // A sparse write far out.
    let s = format!("{dir}/sparse");
    t.write(&s, b"").unwrap();
    t.write_at(&s, 10 << 20, b"end").unwrap();
    let got = t.read(&s).unwrap();
    assert_eq!(got.len(), (10 << 20) + 3);
    assert!(got[..10 << 20].iter().all(|&b| b == 0));
    assert_eq!(&got[10 << 20..], b"end");
}

pub fn folders_and_renames(t: &mut dyn Target, dir: &str) {
    let d = format!("{dir}/tree");
    t.mkdir(&d).unwrap();
    t.mkdir(&format!("{d}/a")).unwrap();
    t.mkdir(&format!("{d}/a/b")).unwrap();
    t.write(&format!("{d}/a/b/deep.txt"), b"deep").unwrap();
    t.write(&format!("{d}/top.txt"), b"top").unwrap();
    assert_eq!(t.list(&d).unwrap(), names(&["a", "top.txt"]));
    assert_eq!(
        t.stat(&format!("{d}/a")).unwrap().nlink,
        3,
        "{}: a folder's links",
        t.name()
    );
    // Rename a folder: its content moves with it.
    t.rename(&format!("{d}/a"), &format!("{d}/moved")).unwrap();
    assert_eq!(t.read(&format!("{d}/moved/b/deep.txt")).unwrap(), b"deep");
    assert_eq!(t.stat(&format!("{d}/a")), Err(ErrorKind::NotFound));
    // Rename over an existing file replaces it.
    t.write(&format!("{d}/other.txt"), b"other").unwrap();
    t.rename(&format!("{d}/other.txt"), &format!("{d}/top.txt")).unwrap();
    assert_eq!(t.read(&format!("{d}/top.txt")).unwrap(), b"other");
    assert_eq!(t.list(&d).unwrap(), names(&["moved", "top.txt"]));
    // A folder cannot move into itself; a non-empty folder cannot go.
    assert_eq!(
        t.rename(&format!("{d}/moved"), &format!("{d}/moved/b/x")),
        Err(ErrorKind::InvalidArgument)
    );
    assert_eq!(t.rmdir(&format!("{d}/moved")), Err(ErrorKind::NotEmpty));
    t.unlink(&format!("{d}/moved/b/deep.txt")).unwrap();
    t.rmdir(&format!("{d}/moved/b")).unwrap();
    t.rmdir(&format!("{d}/moved")).unwrap();
    assert_eq!(t.list(&d).unwrap(), names(&["top.txt"]));
    // Many files in one folder.
    let many = format!("{dir}/many");
    t.mkdir(&many).unwrap();
    let mut expect = Vec::new();
    for i in 0..300 {
        let n = format!("file-{i:04}");
        t.write(&format!("{many}/{n}"), n.as_bytes()).unwrap();
        expect.push(n);
    }
    let expect: Vec<&str> = expect.iter().map(|s| s.as_str()).collect();
    assert_eq!(t.list(&many).unwrap(), names(&expect));
}

pub fn links(t: &mut dyn Target, dir: &str) {
    let a = format!("{dir}/link-a");
    let b = format!("{dir}/link-b");
    t.write(&a, b"shared").unwrap();
    t.link(&a, &b).unwrap();
    assert_eq!(t.stat(&a).unwrap().nlink, 2);
    t.write_at(&b, 0, b"SH").unwrap();
    assert_eq!(
        t.read(&a).unwrap(),
        b"SHared",
        "{}: a write through one name shows in the other",
        t.name()
    );
    t.unlink(&a).unwrap();
    assert_eq!(t.stat(&b).unwrap().nlink, 1);
    assert_eq!(t.read(&b).unwrap(), b"SHared");
    let s = format!("{dir}/sym");
    t.symlink("link-b", &s).unwrap();
    assert_eq!(t.readlink(&s).unwrap(), b"link-b");
    let m = t.stat(&s).unwrap();
    assert!(m.is_symlink);
    // `lstat` of a symlink gives the length of its target (git compares it).
    assert_eq!(m.size, 6, "{}: a symlink's size is its target's length", t.name());
    let long = "d/".repeat(600) + "end";
    t.symlink(&long, &format!("{dir}/sym-long")).unwrap();
    assert_eq!(t.stat(&format!("{dir}/sym-long")).unwrap().size, long.len() as u64);
}

/// A valid `system.posix_acl_access` value (version 2; user::rw-,
/// group::r--, other::r--), which the kernel checks before passing it on.
fn acl_value() -> Vec<u8> {
    let mut v = 2u32.to_le_bytes().to_vec();
    for (tag, perm) in [(0x01u16, 6u16), (0x04, 4), (0x20, 4)] {
        v.extend_from_slice(&tag.to_le_bytes());
        v.extend_from_slice(&perm.to_le_bytes());
        v.extend_from_slice(&u32::MAX.to_le_bytes());
    }
    v
}

pub fn metadata_and_xattrs(t: &mut dyn Target, dir: &str) {
    let p = format!("{dir}/meta");
    t.write(&p, b"m").unwrap();
    t.chmod(&p, 0o640).unwrap();
    assert_eq!(t.stat(&p).unwrap().perm, 0o640);
    t.set_mtime(&p, 1_000_000_000).unwrap();
    assert_eq!(t.stat(&p).unwrap().mtime_secs, 1_000_000_000);
    t.set_xattr(&p, "user.colour", b"blue").unwrap();
    t.set_xattr(&p, "user.size", b"").unwrap();
    assert_eq!(t.get_xattr(&p, "user.colour").unwrap(), b"blue");
    assert_eq!(t.list_xattr(&p).unwrap(), names(&["user.colour", "user.size"]));
    t.remove_xattr(&p, "user.size").unwrap();
    assert_eq!(t.get_xattr(&p, "user.size"), Err(ErrorKind::NoAttribute));
    // POSIX ACLs are refused rather than kept as an attribute that nothing
    // applies, so copying tools fall back to chmod.
    // (A default ACL is for folders only.)
    for (path, name) in [
        (p.as_str(), "system.posix_acl_access"),
        (dir, "system.posix_acl_default"),
    ] {
        assert_eq!(
            t.set_xattr(path, name, &acl_value()),
            Err(ErrorKind::NotSupported),
            "{}: setting {name}",
            t.name()
        );
        assert!(t.get_xattr(path, name).is_err(), "{}: reading {name}", t.name());
    }
    assert_eq!(t.list_xattr(&p).unwrap(), names(&["user.colour"]));
    assert_eq!(t.stat(&p).unwrap().perm, 0o640);
}

pub fn errors(t: &mut dyn Target, dir: &str) {
    assert_eq!(t.read(&format!("{dir}/missing")), Err(ErrorKind::NotFound));
    t.mkdir(&format!("{dir}/dup")).unwrap();
    assert_eq!(t.mkdir(&format!("{dir}/dup")), Err(ErrorKind::Exists));
    let long = "n".repeat(256);
    assert_eq!(t.write(&format!("{dir}/{long}"), b"x"), Err(ErrorKind::NameTooLong));
    assert_eq!(t.unlink(&format!("{dir}/dup")), Err(ErrorKind::IsDir));
    t.write(&format!("{dir}/plain"), b"x").unwrap();
    assert_eq!(t.mkdir(&format!("{dir}/plain/sub")), Err(ErrorKind::NotDir));
}

pub fn names_of_every_kind(t: &mut dyn Target, dir: &str) {
    let d = format!("{dir}/names");
    t.mkdir(&d).unwrap();
    let list = [
        "naïve café".to_string(),
        "日本語のファイル".to_string(),
        "Ελληνικά".to_string(),
        "עברית".to_string(),
        "emoji 🎉".to_string(),
        "line\nbreak".to_string(),
        " leading and trailing ".to_string(),
        "x".repeat(255),
        "é".repeat(127), // 254 bytes
    ];
    for (i, n) in list.iter().enumerate() {
        t.write(&format!("{d}/{n}"), format!("{i}").as_bytes()).unwrap();
    }
    let expect: Vec<&str> = list.iter().map(|s| s.as_str()).collect();
    assert_eq!(t.list(&d).unwrap(), names(&expect));
    for (i, n) in list.iter().enumerate() {
        assert_eq!(t.read(&format!("{d}/{n}")).unwrap(), format!("{i}").as_bytes());
    }
}

/// Everything under `dir`: path → (content or link target, size).
pub fn snapshot_of(t: &mut dyn Target, dir: &str) -> Vec<(String, Vec<u8>, bool)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_string()];
    while let Some(d) = stack.pop() {
        for n in t.list(&d).unwrap() {
            let p = format!("{d}/{}", String::from_utf8_lossy(&n));
            let m = t.stat(&p).unwrap();
            if m.is_dir {
                out.push((p.clone(), Vec::new(), true));
                stack.push(p);
            } else if m.is_symlink {
                out.push((p.clone(), t.readlink(&p).unwrap(), false));
            } else {
                out.push((p.clone(), t.read(&p).unwrap(), false));
            }
        }
    }
    out.sort();
    out
}

pub fn survives_remount_and_rebuild(t: &mut dyn Target, dir: &str) {
    let before = snapshot_of(t, dir);
    t.remount(false);
    assert_eq!(snapshot_of(t, dir), before, "{}: same tree after a remount", t.name());
    assert_eq!(
        t.stat(&format!("{dir}/sym")).unwrap().size,
        6,
        "{}: a symlink's size after a remount",
        t.name()
    );
    t.remount(true);
    assert_eq!(
        snapshot_of(t, dir),
        before,
        "{}: same tree rebuilt from the vault alone",
        t.name()
    );
    let m = t.stat(&format!("{dir}/meta")).unwrap();
    assert_eq!((m.perm, m.mtime_secs), (0o640, 1_000_000_000));
    assert_eq!(
        t.stat(&format!("{dir}/sym")).unwrap().size,
        6,
        "{}: a symlink's size after a rebuild",
        t.name()
    );
    assert_eq!(t.get_xattr(&format!("{dir}/meta"), "user.colour").unwrap(), b"blue");
}

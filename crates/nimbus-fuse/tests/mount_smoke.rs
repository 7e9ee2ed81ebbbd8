//! The drive through a real FUSE mount, with `std::fs` and common tools as
//! any program would use it: files of several sizes, overwrites, renames,
//! hard and symbolic links, special files, extended attributes,
//! preallocation, truncation and removal. Then the local state is rebuilt
//! from the vault and the same tree (contents, modes, owners, times, links,
//! attributes) must appear; then `.snapshots` must show every commit, old
//! content included; then changes to rebuilt content must survive another
//! rebuild. Once with the kernel's writeback cache and once without.
//!
//! Needs `/dev/fuse` and root (to mount); without them it prints why and
//! passes.

#![cfg(target_os = "linux")]

mod common;

use common::{create_vault, load, runtime, skip_reason};
use nimbus_fuse::{mount, MountOptions};
use nimbus_vault::DeviceId;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// What a walk sees of one path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Dir {
        perm: u32,
        owner: (u32, u32),
        mtime: (i64, i64),
        xattrs: BTreeMap<String, Vec<u8>>,
    },
    File {
        perm: u32,
        owner: (u32, u32),
        nlink: u64,
        size: u64,
        content: Bytes,
        mtime: (i64, i64),
        xattrs: BTreeMap<String, Vec<u8>>,
    },
    Symlink {
        target: PathBuf,
    },
    /// A FIFO or a device.
    Special {
        fifo: bool,
        perm: u32,
        rdev: u64,
    },
}

/// File content, shown in failures by its length, first bytes and a hash.
#[derive(Clone, PartialEq, Eq)]
struct Bytes(Vec<u8>);

impl std::fmt::Debug for Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.0.hash(&mut h);
        let head = &self.0[..self.0.len().min(16)];
        write!(f, "{} bytes {head:02x?}… hash {:016x}", self.0.len(), h.finish())
    }
}

fn xattrs(path: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for name in xattr::list(path).expect("listxattr") {
        let value = xattr::get(path, &name)
            .expect("getxattr")
            .expect("a listed attribute exists");
        out.insert(name.to_string_lossy().into_owned(), value);
    }
    out
}

/// Every path under `root` (sorted, relative), without `.snapshots`.
fn walk(root: &Path) -> BTreeMap<PathBuf, Node> {
    let mut out = BTreeMap::new();
    for e in walkdir::WalkDir::new(root).min_depth(1).sort_by_file_name() {
        let e = e.expect("the walk reads every folder");
        let path = e.path();
        let m = fs::symlink_metadata(path).expect("stat");
        let perm = m.mode() & 0o7777;
        let owner = (m.uid(), m.gid());
        let ft = m.file_type();
        let mtime = (m.mtime(), m.mtime_nsec());
        let node = if ft.is_dir() {
            Node::Dir {
                perm,
                owner,
                mtime,
                xattrs: xattrs(path),
            }
        } else if ft.is_symlink() {
            Node::Symlink {
                target: fs::read_link(path).expect("readlink"),
            }
        } else if ft.is_file() {
            Node::File {
                perm,
                owner,
                nlink: m.nlink(),
                size: m.len(),
                content: Bytes(fs::read(path).expect("read")),
                mtime,
                xattrs: xattrs(path),
            }
        } else {
            use std::os::unix::fs::FileTypeExt;
            assert!(
                ft.is_fifo() || ft.is_char_device(),
                "{}: unexpected type",
                path.display()
            );
            Node::Special {
                fifo: ft.is_fifo(),
                perm,
                rdev: m.rdev(),
            }
        };
        out.insert(path.strip_prefix(root).expect("under the root").to_path_buf(), node);
    }
    out
}

/// What a snapshot keeps of a tree: names, contents, sizes, link targets.
fn contents(tree: &BTreeMap<PathBuf, Node>) -> BTreeMap<PathBuf, (u64, Vec<u8>)> {
    tree.iter()
        .filter_map(|(p, n)| match n {
            Node::File { size, content, .. } => Some((p.clone(), (*size, content.0.clone()))),
            Node::Symlink { target } => Some((p.clone(), (0, target.as_os_str().as_encoded_bytes().to_vec()))),
            _ => None,
        })
        .collect()
}

fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    rand::rngs::StdRng::seed_from_u64(seed).fill(&mut v[..]);
    v
}

fn assert_errno(res: std::io::Result<impl std::fmt::Debug>, errno: i32, what: &str) {
    match res {
        Err(e) => assert_eq!(e.raw_os_error(), Some(errno), "{what}: {e}"),
        Ok(v) => panic!("{what}: succeeded ({v:?}), expected errno {errno}"),
    }
}

/// Runs a tool; its output if it succeeded, else its output as the error.
fn tool(program: &str, args: &[&std::ffi::OsStr]) -> Result<String, String> {
    let out = std::process::Command::new(program)
        .args(args)
        .output()
        .expect("the tool runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        Ok(text)
    } else {
        Err(text)
    }
}

/// The first mount's work: everything through `std::fs`.
fn exercise(m: &Path) {
    // The root starts empty, and `.snapshots` opens by name without being
    // listed.
    let names: Vec<_> = fs::read_dir(m)
        .expect("ls /")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert!(names.is_empty(), "a new drive lists {names:?}");
    assert!(fs::metadata(m.join(".snapshots")).expect("stat .snapshots").is_dir());

    // Folders and files of 0 B, 5 B, one block and a byte, and 3 MiB.
    fs::create_dir_all(m.join("docs/deep/deeper")).expect("mkdir -p");
    let files: [(&str, Vec<u8>); 4] = [
        ("docs/empty", Vec::new()),
        ("docs/five", b"hello".to_vec()),
        ("docs/deep/page", random_bytes(1, 4097)),
        ("big.bin", random_bytes(2, 3 << 20)),
    ];
    for (p, data) in &files {
        fs::write(m.join(p), data).expect("write");
    }
    for (p, data) in &files {
        assert_eq!(
            fs::metadata(m.join(p)).expect("stat").len(),
            data.len() as u64,
            "{p}: size"
        );
        assert!(fs::read(m.join(p)).expect("read") == *data, "{p}: content");
    }
    let names: Vec<_> = fs::read_dir(m)
        .expect("ls /")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert!(
        !names.iter().any(|n| n == ".snapshots"),
        "the root lists .snapshots: {names:?}"
    );
    assert_eq!(names.len(), 2, "the root lists {names:?}");

    // An overwrite in the middle, and an append.
    let mut big = files[3].1.clone();
    let f = fs::OpenOptions::new()
        .write(true)
        .open(m.join("big.bin"))
        .expect("open big.bin");
    f.write_at(b"0123456789", 1_000_000).expect("pwrite");
    f.sync_all().expect("fsync");
    drop(f);
    big[1_000_000..1_000_010].copy_from_slice(b"0123456789");
    assert!(
        fs::read(m.join("big.bin")).expect("read big.bin") == big,
        "big.bin after the overwrite"
    );
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(m.join("docs/five"))
        .expect("open for append");
    f.write_all(b", world").expect("append");
    drop(f);
    assert_eq!(fs::read(m.join("docs/five")).expect("read"), b"hello, world");

    // Several files written and read at once (the mount has 8 threads).
    std::thread::scope(|s| {
        for i in 0..4u64 {
            s.spawn(move || {
                let p = m.join(format!("docs/parallel-{i}"));
                let data = random_bytes(10 + i, (1 << 20) + i as usize);
                fs::write(&p, &data).expect("parallel write");
                assert!(fs::read(&p).expect("parallel read") == data, "parallel-{i}");
            });
        }
    });

    // Renames: a file across folders, a folder, one file over another.
    fs::rename(m.join("docs/five"), m.join("docs/deep/greeting")).expect("rename a file");
    fs::rename(m.join("docs/deep"), m.join("moved")).expect("rename a folder");
    fs::rename(m.join("docs/parallel-3"), m.join("docs/parallel-2")).expect("rename over a file");
    assert_errno(fs::metadata(m.join("docs/five")), libc::ENOENT, "the old name");
    assert_eq!(fs::read(m.join("moved/greeting")).expect("read"), b"hello, world");
    assert_eq!(
        fs::metadata(m.join("docs/parallel-2")).expect("stat").len(),
        (1 << 20) + 3
    );
    let mut ls_docs: Vec<_> = fs::read_dir(m.join("docs"))
        .expect("ls")
        .map(|e| e.expect("e").file_name())
        .collect();
    ls_docs.sort();
    assert_eq!(ls_docs, ["empty", "parallel-0", "parallel-1", "parallel-2"]);

    // A hard link: two names, one file.
    fs::hard_link(m.join("big.bin"), m.join("docs/big-link")).expect("link");
    assert_eq!(fs::metadata(m.join("big.bin")).expect("stat").nlink(), 2);
    assert_eq!(fs::metadata(m.join("docs/big-link")).expect("stat").nlink(), 2);
    assert_eq!(
        fs::metadata(m.join("big.bin")).expect("stat").ino(),
        fs::metadata(m.join("docs/big-link")).expect("stat").ino()
    );
    assert!(fs::read(m.join("docs/big-link")).expect("read the link") == big);

    // A symbolic link, relative, followed by the kernel.
    std::os::unix::fs::symlink("moved/greeting", m.join("hello-link")).expect("symlink");
    assert_eq!(
        fs::read_link(m.join("hello-link")).expect("readlink"),
        Path::new("moved/greeting")
    );
    assert_eq!(fs::read(m.join("hello-link")).expect("read through"), b"hello, world");
    assert!(fs::symlink_metadata(m.join("hello-link"))
        .expect("lstat")
        .file_type()
        .is_symlink());

    // A FIFO and a character device (mknod).
    tool(
        "mkfifo",
        &["-m".as_ref(), "0600".as_ref(), m.join("moved/pipe").as_os_str()],
    )
    .expect("mkfifo");
    tool(
        "mknod",
        &[
            m.join("moved/null").as_os_str(),
            "c".as_ref(),
            "1".as_ref(),
            "3".as_ref(),
        ],
    )
    .expect("mknod");
    assert_eq!(
        fs::symlink_metadata(m.join("moved/null")).expect("stat").rdev(),
        (1 << 8) | 3
    );

    // Preallocation: mode 0 grows the file, KEEP_SIZE does not; a punched
    // hole reads as zeros and keeps the size.
    let alloc = m.join("docs/alloc");
    tool("fallocate", &["-l".as_ref(), "8192".as_ref(), alloc.as_os_str()]).expect("fallocate");
    assert_eq!(fs::metadata(&alloc).expect("stat").len(), 8192);
    let keep = ["-n", "-o", "8192", "-l", "4096"].map(std::ffi::OsStr::new);
    tool("fallocate", &[&keep[..], &[alloc.as_os_str()]].concat()).expect("fallocate --keep-size");
    assert_eq!(fs::metadata(&alloc).expect("stat").len(), 8192);
    assert!(fs::read(&alloc).expect("read") == vec![0u8; 8192]);
    fs::write(&alloc, vec![0xab; 8192]).expect("fill");
    let punch = ["-p", "-o", "1000", "-l", "4096"].map(std::ffi::OsStr::new);
    tool("fallocate", &[&punch[..], &[alloc.as_os_str()]].concat()).expect("punch a hole");
    let mut want = vec![0xabu8; 8192];
    want[1000..5096].fill(0);
    assert!(fs::read(&alloc).expect("read") == want, "the hole reads as zeros");

    // A copy (copy_file_range falls back to reads and writes) and statfs.
    fs::copy(m.join("big.bin"), m.join("docs/copy.bin")).expect("cp");
    assert!(
        fs::read(m.join("docs/copy.bin")).expect("read the copy") == big,
        "the copy"
    );
    let df = tool(
        "stat",
        &["-f".as_ref(), "-c".as_ref(), "%b %S %l".as_ref(), m.as_os_str()],
    )
    .expect("stat -f");
    let df: Vec<u64> = df.split_whitespace().map(|n| n.parse().expect("a number")).collect();
    assert!(df[0] > 0 && df[1] == 4096 && df[2] == 255, "statfs: {df:?}");

    // Extended attributes, a large value included (the size protocol).
    let g = m.join("moved/greeting");
    xattr::set(&g, "user.color", b"blue").expect("setxattr");
    let large = random_bytes(3, 10_000);
    xattr::set(&g, "user.large", &large).expect("setxattr 10 kB");
    xattr::set(&g, "user.tmp", b"x").expect("setxattr");
    assert_eq!(xattr::get(&g, "user.color").expect("getxattr"), Some(b"blue".to_vec()));
    assert_eq!(xattr::get(&g, "user.large").expect("getxattr"), Some(large));
    let mut listed: Vec<_> = xattr::list(&g).expect("listxattr").collect();
    listed.sort();
    assert_eq!(listed, ["user.color", "user.large", "user.tmp"]);
    xattr::remove(&g, "user.tmp").expect("removexattr");
    assert_eq!(xattr::get(&g, "user.tmp").expect("getxattr of a removed one"), None);
    assert_errno(
        xattr::remove(&g, "user.tmp"),
        libc::ENODATA,
        "removexattr of a missing one",
    );

    // Truncation: shorter keeps the head, longer adds zeros, O_TRUNC empties.
    let page = m.join("moved/page");
    let f = fs::OpenOptions::new().write(true).open(&page).expect("open page");
    f.set_len(100).expect("truncate to 100");
    f.set_len(5000).expect("extend to 5000");
    drop(f);
    let mut want = files[2].1[..100].to_vec();
    want.resize(5000, 0);
    assert!(
        fs::read(&page).expect("read page") == want,
        "page after truncate and extend"
    );
    let mut f = fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(m.join("docs/parallel-0"))
        .expect("open O_TRUNC");
    f.write_all(b"fresh").expect("write after O_TRUNC");
    drop(f);
    assert_eq!(fs::read(m.join("docs/parallel-0")).expect("read"), b"fresh");

    // Mode bits.
    fs::set_permissions(m.join("docs/parallel-0"), fs::Permissions::from_mode(0o640)).expect("chmod");
    assert_eq!(
        fs::metadata(m.join("docs/parallel-0")).expect("stat").mode() & 0o7777,
        0o640
    );

    // Removal.
    fs::remove_file(m.join("docs/parallel-1")).expect("unlink");
    assert_errno(
        fs::metadata(m.join("docs/parallel-1")),
        libc::ENOENT,
        "an unlinked file",
    );
    assert_errno(
        fs::remove_dir(m.join("moved")),
        libc::ENOTEMPTY,
        "rmdir of a full folder",
    );
    fs::remove_dir(m.join("moved/deeper")).expect("rmdir");
    assert_errno(fs::metadata(m.join("moved/deeper")), libc::ENOENT, "a removed folder");
    fs::create_dir(m.join("gone")).expect("mkdir");
    fs::write(m.join("gone/x"), b"x").expect("write");
    fs::remove_dir_all(m.join("gone")).expect("rm -r");
    assert_errno(fs::metadata(m.join("gone")), libc::ENOENT, "a removed tree");

    // Names are bytes: not UTF-8, and up to 255 of them; an empty folder
    // and attributes on a folder.
    use std::os::unix::ffi::OsStrExt;
    let odd = m.join(std::ffi::OsStr::from_bytes(b"caf\xe9 \xff\n"));
    fs::write(&odd, b"latin-1").expect("a name that is not UTF-8");
    assert_eq!(fs::read(&odd).expect("read"), b"latin-1");
    fs::write(m.join("n".repeat(255)), b"long").expect("a 255-byte name");
    assert_errno(
        fs::write(m.join("n".repeat(256)), b"x"),
        libc::ENAMETOOLONG,
        "a 256-byte name",
    );
    fs::create_dir(m.join("empty-folder")).expect("mkdir");
    xattr::set(m.join("moved"), "user.folder", b"yes").expect("setxattr on a folder");

    // Errors the kernel passes on from the core.
    assert_errno(
        fs::create_dir(m.join("docs")),
        libc::EEXIST,
        "mkdir of an existing name",
    );
    assert_errno(fs::read_dir(m.join("big.bin")), libc::ENOTDIR, "ls of a file");
    assert_errno(
        fs::write(m.join(".snapshots/new"), b"x"),
        libc::EROFS,
        "a file in .snapshots",
    );
    fs::File::open(m)
        .expect("open /")
        .sync_all()
        .expect("fsync of the root folder");
}

/// The second mount's work, on content that now comes from the vault:
/// changes inside stored files, holes, many names, open-but-unlinked files,
/// owners and times.
fn exercise_rebuilt(m: &Path) {
    // Partial blocks inside stored content, seen through both hard links,
    // and a write past the end that leaves a hole of zeros.
    let mut big = fs::read(m.join("big.bin")).expect("read big.bin");
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(m.join("big.bin"))
        .expect("open big.bin");
    f.write_at(b"XYZ", 409_605).expect("pwrite inside");
    let end = big.len() as u64;
    f.write_at(b"tail", end + 10_000).expect("pwrite past the end");
    drop(f);
    big[409_605..409_608].copy_from_slice(b"XYZ");
    big.resize(big.len() + 10_000, 0);
    big.extend_from_slice(b"tail");
    assert!(
        fs::read(m.join("big.bin")).expect("read") == big,
        "big.bin after writes into stored content"
    );
    assert!(
        fs::read(m.join("docs/big-link")).expect("read") == big,
        "the hard link sees the same"
    );

    // Truncating stored content, then growing it: zeros after the cut.
    let page = m.join("moved/page");
    let mut want = fs::read(&page).expect("read page");
    let f = fs::OpenOptions::new().write(true).open(&page).expect("open page");
    f.set_len(50).expect("truncate");
    f.set_len(6000).expect("extend");
    drop(f);
    want.truncate(50);
    want.resize(6000, 0);
    assert!(
        fs::read(&page).expect("read page") == want,
        "page after cutting stored content"
    );

    // An append to stored content.
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(m.join("moved/greeting"))
        .expect("open");
    f.write_all(b"!").expect("append");
    drop(f);
    assert_eq!(fs::read(m.join("moved/greeting")).expect("read"), b"hello, world!");

    // More names than one listing request carries.
    fs::create_dir(m.join("docs/many")).expect("mkdir");
    for i in 0..300 {
        fs::write(m.join(format!("docs/many/file-{i:03}")), i.to_string()).expect("write");
    }
    let mut names: Vec<String> = fs::read_dir(m.join("docs/many"))
        .expect("ls")
        .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
        .collect();
    names.sort();
    let want: Vec<String> = (0..300).map(|i| format!("file-{i:03}")).collect();
    assert_eq!(names, want, "a folder of 300 names lists each once");
    for i in (0..300).step_by(2) {
        fs::remove_file(m.join(format!("docs/many/file-{i:03}"))).expect("unlink");
    }
    assert_eq!(fs::read_dir(m.join("docs/many")).expect("ls").count(), 150);

    // An open file outlives its name.
    fs::write(m.join("docs/doomed"), b"still here").expect("write");
    let mut f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(m.join("docs/doomed"))
        .expect("open");
    fs::remove_file(m.join("docs/doomed")).expect("unlink while open");
    assert_errno(fs::metadata(m.join("docs/doomed")), libc::ENOENT, "the unlinked name");
    let mut buf = Vec::new();
    std::io::Read::read_to_end(&mut f, &mut buf).expect("read the open, unlinked file");
    assert_eq!(buf, b"still here");
    f.write_all(b", and more").expect("write to the open, unlinked file");
    let mut buf = vec![0u8; 20];
    assert_eq!(f.read_at(&mut buf, 0).expect("pread"), 20);
    assert_eq!(buf, b"still here, and more");
    drop(f);

    // A rename over an open file: the open handle keeps the old content.
    let old = fs::File::open(m.join("docs/parallel-0")).expect("open parallel-0");
    fs::rename(m.join("docs/parallel-2"), m.join("docs/parallel-0")).expect("rename over an open file");
    let mut buf = [0u8; 5];
    old.read_exact_at(&mut buf, 0).expect("read the replaced file");
    assert_eq!(&buf, b"fresh");
    drop(old);
    assert_eq!(
        fs::metadata(m.join("docs/parallel-0")).expect("stat").len(),
        (1 << 20) + 3
    );

    // Owners and times.
    std::os::unix::fs::chown(m.join("moved/greeting"), Some(1000), Some(1000)).expect("chown");
    let t = std::time::UNIX_EPOCH + std::time::Duration::new(1_000_000_000, 123_456_789);
    fs::File::options()
        .write(true)
        .open(m.join("docs/empty"))
        .expect("open")
        .set_modified(t)
        .expect("utimes");
    let md = fs::metadata(m.join("docs/empty")).expect("stat");
    assert_eq!((md.mtime(), md.mtime_nsec()), (1_000_000_000, 123_456_789));
    let md = fs::metadata(m.join("moved/greeting")).expect("stat");
    assert_eq!((md.uid(), md.gid()), (1000, 1000));
}

/// Every path of `want` is in `got`, the same, and nothing else.
fn assert_same_tree(got: &BTreeMap<PathBuf, Node>, want: &BTreeMap<PathBuf, Node>, when: &str) {
    for (p, n) in want {
        let g = got.get(p);
        assert!(g == Some(n), "{} {when}:\n  got  {g:?}\n  want {n:?}", p.display());
    }
    let extra: Vec<_> = got.keys().filter(|p| !want.contains_key(*p)).collect();
    assert!(extra.is_empty(), "{when}, paths that should not be there: {extra:?}");
}

/// The kernel keeps written pages and owns the times and size of files.
#[test]
fn mount_smoke_writeback_cache() {
    smoke(true);
}

/// Every write goes to the core as it happens.
#[test]
fn mount_smoke_write_through() {
    smoke(false);
}

fn smoke(writeback_cache: bool) {
    if let Some(why) = skip_reason() {
        println!("skipping the FUSE mount test: {why}");
        return;
    }
    let opts = MountOptions {
        writeback_cache,
        ..MountOptions::default()
    };
    let tmp = tempfile::tempdir().expect("a temporary folder");
    let (store, mnt) = (tmp.path().join("store"), tmp.path().join("mnt"));
    fs::create_dir(&mnt).expect("the mount point");
    let rt = runtime();
    create_vault(&rt, &store);
    let device = DeviceId::random();

    // First mount: everything through std::fs.
    let fs1 = load(&rt, &store, &tmp.path().join("state-1"), device);
    let session = mount(fs1.clone(), &mnt, &opts).expect("mount");
    exercise(&mnt);
    let first = walk(&mnt);
    session.umount_and_join().expect("unmount");
    fs1.shutdown().expect("the last commit");
    drop(fs1);
    assert!(
        fs::read_dir(&mnt).expect("the bare mount point").next().is_none(),
        "still mounted"
    );

    // Second mount, from a new, empty local state: everything comes back
    // from the vault. Then changes to what came from it.
    let fs2 = load(&rt, &store, &tmp.path().join("state-2"), device);
    let other = MountOptions {
        allow_other: true,
        ..opts.clone()
    };
    let session = mount(fs2.clone(), &mnt, &other).expect("mount again");
    assert_same_tree(&walk(&mnt), &first, "after the rebuild");
    exercise_rebuilt(&mnt);
    let second = walk(&mnt);

    // Committed: `.snapshots` has one folder per commit, the first tree is
    // in one of them and the newest holds the changes.
    fs2.sync_now().expect("commit");
    let commits = rt.block_on(fs2.vault().list_commits()).expect("list commits");
    let snaps = mnt.join(".snapshots");
    let mut names: Vec<_> = fs::read_dir(&snaps)
        .expect("ls .snapshots")
        .map(|e| e.expect("entry").file_name())
        .collect();
    names.sort();
    assert_eq!(names.len(), commits.len(), "{names:?} for {} commits", commits.len());
    let trees: Vec<_> = names.iter().map(|n| contents(&walk(&snaps.join(n)))).collect();
    assert!(
        trees.contains(&contents(&first)),
        "no snapshot in {names:?} holds the first tree"
    );
    // Names are UTC times (a suffix after a repeated one), so the last is
    // the newest.
    assert!(
        trees.last() == Some(&contents(&second)),
        "the newest snapshot is not the current tree"
    );
    let newest = snaps.join(names.last().expect("a snapshot"));
    assert_errno(
        fs::write(newest.join("moved/greeting"), b"x"),
        libc::EROFS,
        "a write into a snapshot",
    );
    assert_errno(
        fs::remove_file(newest.join("big.bin")),
        libc::EROFS,
        "unlink in a snapshot",
    );
    assert_errno(fs::create_dir(newest.join("new")), libc::EROFS, "mkdir in a snapshot");
    session.umount_and_join().expect("unmount");
    fs2.shutdown().expect("the last commit");
    drop(fs2);

    // Third mount, rebuilt again: the changed tree came back whole.
    let fs3 = load(&rt, &store, &tmp.path().join("state-3"), device);
    let session = mount(fs3.clone(), &mnt, &opts).expect("mount a third time");
    assert_same_tree(&walk(&mnt), &second, "after the second rebuild");
    session.umount_and_join().expect("unmount");
    fs3.shutdown().expect("shutdown");
}

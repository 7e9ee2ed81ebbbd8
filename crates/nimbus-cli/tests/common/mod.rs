//! Helpers for the CLI's end-to-end tests: a scratch directory, the real
//! `nimbus` binary with its environment, and tree generation/comparison.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const PASSWORD: &str = "correct horse battery staple";

/// A scratch area with a vault store path and a device state dir.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub store: PathBuf,
    pub state: PathBuf,
    pub password: String,
}

impl Env {
    pub fn new() -> Env {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = dir.path().join("vault");
        let state = dir.path().join("state");
        Env {
            dir,
            store,
            state,
            password: PASSWORD.into(),
        }
    }

    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_nimbus"));
        c.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("NIMBUS_STORE", &self.store)
            .env("NIMBUS_STATE_DIR", &self.state)
            .env("NIMBUS_PASSWORD", &self.password)
            .arg("--quiet");
        c
    }

    /// Runs `nimbus args…` and returns its output.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("run nimbus")
    }

    /// Runs and requires success.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "nimbus {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `init` at the lowest KDF cost Nimbus accepts (the default costs ~0.5 s per open).
    pub fn init(&self) -> String {
        self.init_with(&[])
    }

    pub fn init_with(&self, extra: &[&str]) -> String {
        let store = self.store.to_string_lossy().into_owned();
        let mut args = vec!["init", &store, "--kdf-memory-kib", "19456", "--kdf-iterations", "2"];
        args.extend_from_slice(extra);
        self.ok(&args)
    }
}

/// Combined stdout and stderr.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The recovery key printed by `init`.
pub fn recovery_key(init_output: &str) -> String {
    let lines: Vec<&str> = init_output.lines().collect();
    let i = lines
        .iter()
        .position(|l| l.starts_with("Recovery key"))
        .expect("recovery key line");
    lines[i + 1..]
        .iter()
        .map(|l| l.trim())
        .find(|l| !l.is_empty())
        .expect("recovery key")
        .to_string()
}

/// A tiny deterministic PRNG (xorshift64*), so generated trees are the same
/// on every run without depending on `rand`'s algorithms.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

const WORDS: &[&str] = &[
    "the",
    "drive",
    "vault",
    "snapshot",
    "encrypted",
    "cloud",
    "file",
    "folder",
    "photo",
    "invoice",
    "report",
    "meeting",
    "notes",
    "budget",
    "2026",
    "draft",
    "final",
    "copy",
    "kernel",
    "commit",
    "merge",
    "branch",
];

/// Text-like content that compresses about 3-5x.
pub fn text_bytes(rng: &mut Rng, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 16);
    while out.len() < len {
        out.extend_from_slice(WORDS[rng.below(WORDS.len() as u64) as usize].as_bytes());
        out.push(if rng.below(12) == 0 { b'\n' } else { b' ' });
        if rng.below(20) == 0 {
            out.extend_from_slice(rng.next().to_string().as_bytes());
        }
    }
    out.truncate(len);
    out
}

pub fn random_bytes(rng: &mut Rng, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    rng.fill(&mut v);
    v
}

/// Writes a tree of `files` files in nested folders, with a few large files
/// making up `large_bytes`, varied modes and times, symlinks, and xattrs.
pub fn make_tree(root: &Path, files: usize, large: &[usize], seed: u64) {
    let mut rng = Rng::new(seed);
    std::fs::create_dir_all(root).unwrap();
    let mut dirs = vec![root.to_path_buf()];
    for i in 0..(files / 60).max(1) {
        let parent = dirs[rng.below(dirs.len() as u64) as usize].clone();
        let d = parent.join(format!("dir-{i:03}"));
        std::fs::create_dir_all(&d).unwrap();
        dirs.push(d);
    }
    let modes = [0o644, 0o600, 0o755, 0o444, 0o640];
    for i in 0..files {
        let d = &dirs[rng.below(dirs.len() as u64) as usize];
        let size = if rng.below(10) == 0 {
            16_384 + rng.below(200_000)
        } else {
            rng.below(12_000)
        } as usize;
        let data = if rng.below(3) == 0 {
            random_bytes(&mut rng, size)
        } else {
            text_bytes(&mut rng, size)
        };
        let p = d.join(format!("file {i:05}.txt"));
        std::fs::write(&p, &data).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(modes[i % modes.len()])).unwrap();
        let t = filetime::FileTime::from_unix_time(
            1_600_000_000 + rng.below(100_000_000) as i64,
            (rng.below(1_000_000_000)) as u32,
        );
        filetime::set_file_times(&p, t, t).unwrap();
    }
    for (i, &size) in large.iter().enumerate() {
        let p = root.join(format!("large-{i}.bin"));
        let data = if i % 2 == 0 {
            random_bytes(&mut rng, size)
        } else {
            text_bytes(&mut rng, size)
        };
        std::fs::write(&p, data).unwrap();
    }
    // Symlinks: relative, absolute, dangling.
    std::os::unix::fs::symlink("file 00000.txt", dirs[0].join("link-rel")).ok();
    std::os::unix::fs::symlink("/nonexistent/target", root.join("link-dangling")).unwrap();
    std::os::unix::fs::symlink("dir-000", root.join("link-to-dir")).unwrap();
    // Odd names.
    std::fs::write(root.join("name with spaces and ünïcödé ✓"), b"x").unwrap();
    std::fs::write(root.join("a".repeat(255)), b"long name").unwrap();
    std::fs::write(root.join("new\nline"), b"newline in name").unwrap();
    std::fs::create_dir(root.join("empty dir")).unwrap();
    // Extended attributes, where the file system supports them.
    let _ = xattr::set(root.join("large-0.bin"), "user.nimbus.test", b"hello xattr");
    // Folder modes and times last, after their content exists.
    std::fs::set_permissions(
        dirs[1.min(dirs.len() - 1)].as_path(),
        std::fs::Permissions::from_mode(0o750),
    )
    .unwrap();
    for d in dirs.iter().rev() {
        let t = filetime::FileTime::from_unix_time(1_500_000_000 + rng.below(1000) as i64, 0);
        filetime::set_file_times(d, t, t).unwrap();
    }
}

/// What a comparison looks at for each path: kind, mode, mtime, content
/// hash or link target, xattrs.
pub fn describe_tree(root: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    for e in walkdir::WalkDir::new(root).sort_by_file_name() {
        let e = e.unwrap();
        let rel = e.path().strip_prefix(root).unwrap().to_path_buf();
        let m = std::fs::symlink_metadata(e.path()).unwrap();
        let ft = m.file_type();
        let what = if ft.is_symlink() {
            format!("link {}", std::fs::read_link(e.path()).unwrap().display())
        } else if ft.is_dir() {
            "dir".to_string()
        } else {
            format!("file {}", blake3::hash(&std::fs::read(e.path()).unwrap()).to_hex())
        };
        let mode = if ft.is_symlink() { 0 } else { m.mode() & 0o7777 };
        let mut xattrs: Vec<String> = xattr::list(e.path())
            .map(|l| l.map(|n| n.to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        xattrs.sort();
        let mtime = if rel.as_os_str().is_empty() {
            String::new()
        } else {
            format!("{}.{}", m.mtime(), m.mtime_nsec())
        };
        out.insert(rel, format!("{what} mode={mode:o} mtime={mtime} xattrs={xattrs:?}"));
    }
    out
}

/// Asserts two trees are identical in content and metadata, naming the
/// first differences.
pub fn assert_same_tree(a: &Path, b: &Path) {
    let da = describe_tree(a);
    let db = describe_tree(b);
    let mut diffs = Vec::new();
    for (k, v) in &da {
        match db.get(k) {
            Some(w) if w == v => {}
            Some(w) => diffs.push(format!("{}: {v} != {w}", k.display())),
            None => diffs.push(format!("{}: missing", k.display())),
        }
    }
    for k in db.keys() {
        if !da.contains_key(k) {
            diffs.push(format!("{}: extra", k.display()));
        }
    }
    assert!(
        diffs.is_empty(),
        "{} differences, first: {:#?}",
        diffs.len(),
        &diffs[..diffs.len().min(10)]
    );
}

/// Sum of the sizes of every object in the store.
pub fn store_bytes(store: &Path) -> u64 {
    walkdir::WalkDir::new(store)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file() && !e.path().components().any(|c| c.as_os_str() == ".tmp"))
        .map(|e| e.metadata().map(|m| m.len()).unwrap_or(0))
        .sum()
}

/// Every object key in the store with the BLAKE3 of its content.
pub fn store_hashes(store: &Path) -> BTreeMap<String, String> {
    walkdir::WalkDir::new(store)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            let key = e.path().strip_prefix(store).unwrap().to_string_lossy().into_owned();
            (
                key,
                blake3::hash(&std::fs::read(e.path()).unwrap()).to_hex().to_string(),
            )
        })
        .filter(|(k, _)| !k.starts_with(".tmp"))
        .collect()
}

/// Keys of the store's objects under `prefix`, sorted.
pub fn keys(store: &Path, prefix: &str) -> Vec<String> {
    store_hashes(store)
        .into_keys()
        .filter(|k| k.starts_with(prefix))
        .collect()
}

pub fn copy_dir(from: &Path, to: &Path) {
    for e in walkdir::WalkDir::new(from) {
        let e = e.unwrap();
        let rel = e.path().strip_prefix(from).unwrap();
        let dest = to.join(rel);
        if e.file_type().is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
        } else {
            std::fs::copy(e.path(), &dest).unwrap();
        }
    }
}

//! The behaviour suite against the bare core (no mount), over an in-memory
//! store, a store that fails now and then, and a local folder.

#![cfg(unix)]
#![allow(clippy::unwrap_used)]

use nimbus_backend::{DynBackend, FaultConfig, FaultyBackend, MemoryBackend, RetryPolicy, RetryingBackend};
use nimbus_fs::conformance::{self, Meta, Target, R};
use nimbus_fs::{Ctx, ErrorKind, Fs, FsOptions, Ino, RenameFlags, SetAttr, SetTime, XattrMode, ROOT};
use nimbus_vault::{DeviceId, KdfParams, Timestamp, Vault, VaultParams};
use std::path::PathBuf;
use std::sync::Arc;

pub struct Core {
    pub rt: tokio::runtime::Runtime,
    pub backend: DynBackend,
    pub fs: Option<Arc<Fs>>,
    pub state: tempfile::TempDir,
    pub device: DeviceId,
    pub label: String,
    /// Quiet time before a commit (an hour: tests commit when they ask).
    pub delay: std::time::Duration,
}

fn fast_kdf() -> KdfParams {
    KdfParams::minimum()
}

impl Core {
    pub fn new(backend: DynBackend, label: &str) -> Core {
        Self::with(backend.clone(), backend, label)
    }

    /// Creates the vault through `create`, then runs the drive over `backend`.
    pub fn with(create: DynBackend, backend: DynBackend, label: &str) -> Core {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let params = VaultParams {
            pack_target_size: 256 << 10,
            ..VaultParams::default()
        };
        rt.block_on(Vault::create(create, b"pw", params, fast_kdf())).unwrap();
        let mut c = Core {
            rt,
            backend,
            fs: None,
            state: tempfile::tempdir().unwrap(),
            device: DeviceId::random(),
            label: label.into(),
            delay: std::time::Duration::from_secs(3600),
        };
        c.mount();
        c
    }

    fn mount(&mut self) {
        let vault = self.rt.block_on(Vault::open(self.backend.clone(), b"pw")).unwrap();
        let mut opts = FsOptions::new(self.state.path().join("vault"), self.device);
        opts.commit_delay = self.delay;
        opts.cache_limit = 8 << 20;
        // A small memory cache, so reads go to the disk cache and the store.
        opts.mem_cache = 2 << 20;
        self.fs = Some(Fs::load(vault, self.rt.handle().clone(), opts).unwrap());
    }

    pub fn fs(&self) -> &Arc<Fs> {
        self.fs.as_ref().unwrap()
    }

    fn parent_and_name(&self, path: &str) -> R<(Ino, Vec<u8>)> {
        let (dir, name) = match path.rfind('/') {
            Some(i) => (&path[..i], &path[i + 1..]),
            None => ("", path),
        };
        let ino = self.fs().resolve(dir.as_bytes()).map_err(|e| e.kind())?;
        Ok((ino, name.as_bytes().to_vec()))
    }

    fn ino(&self, path: &str) -> R<Ino> {
        self.fs().resolve(path.as_bytes()).map_err(|e| e.kind())
    }
}

fn k<T>(r: nimbus_fs::Result<T>) -> R<T> {
    r.map_err(|e| e.kind())
}

impl Target for Core {
    fn name(&self) -> String {
        format!("core over {}", self.label)
    }

    fn write(&mut self, path: &str, data: &[u8]) -> R<()> {
        let (p, n) = self.parent_and_name(path)?;
        let fs = self.fs().clone();
        let fh = match fs.lookup(p, &n) {
            Ok(a) => k(fs.open(a.ino, true))?,
            Err(e) if e.kind() == ErrorKind::NotFound => k(fs.create(Ctx::ROOT, p, &n, 0o644))?.1,
            Err(e) => return Err(e.kind()),
        };
        // Write in pieces, as a kernel would.
        let mut off = 0;
        for piece in data.chunks(128 << 10) {
            k(fs.write(fh, off, piece))?;
            off += piece.len() as u64;
        }
        k(fs.release(fh))
    }

    fn write_at(&mut self, path: &str, off: u64, data: &[u8]) -> R<()> {
        let ino = self.ino(path)?;
        let fs = self.fs().clone();
        let fh = k(fs.open(ino, false))?;
        k(fs.write(fh, off, data))?;
        k(fs.release(fh))
    }

    fn read(&mut self, path: &str) -> R<Vec<u8>> {
        let ino = self.ino(path)?;
        let fs = self.fs().clone();
        let fh = k(fs.open(ino, false))?;
        let mut out = Vec::new();
        loop {
            let got = k(fs.read(fh, out.len() as u64, 128 << 10))?;
            if got.is_empty() {
                break;
            }
            out.extend_from_slice(&got);
        }
        k(fs.release(fh))?;
        Ok(out)
    }

    fn truncate(&mut self, path: &str, size: u64) -> R<()> {
        let ino = self.ino(path)?;
        k(self.fs().setattr(
            ino,
            &SetAttr {
                size: Some(size),
                ..Default::default()
            },
        ))
        .map(|_| ())
    }

    fn mkdir(&mut self, path: &str) -> R<()> {
        let (p, n) = self.parent_and_name(path)?;
        k(self.fs().mkdir(Ctx::ROOT, p, &n, 0o755)).map(|_| ())
    }

    fn list(&mut self, path: &str) -> R<Vec<Vec<u8>>> {
        let ino = self.ino(path)?;
        let mut out = Vec::new();
        let mut cookie = 0;
        loop {
            let batch = k(self.fs().readdir(ino, cookie, 50))?;
            if batch.is_empty() {
                break;
            }
            for e in batch {
                cookie = e.cookie;
                if e.name != b"." && e.name != b".." {
                    out.push(e.name);
                }
            }
        }
        out.sort();
        Ok(out)
    }

    fn rename(&mut self, from: &str, to: &str) -> R<()> {
        let (p, n) = self.parent_and_name(from)?;
        let (np, nn) = self.parent_and_name(to)?;
        k(self.fs().rename(p, &n, np, &nn, RenameFlags::default()))
    }

    fn unlink(&mut self, path: &str) -> R<()> {
        let (p, n) = self.parent_and_name(path)?;
        k(self.fs().unlink(p, &n))
    }

    fn rmdir(&mut self, path: &str) -> R<()> {
        let (p, n) = self.parent_and_name(path)?;
        k(self.fs().rmdir(p, &n))
    }

    fn link(&mut self, from: &str, to: &str) -> R<()> {
        let ino = self.ino(from)?;
        let (np, nn) = self.parent_and_name(to)?;
        k(self.fs().link(ino, np, &nn)).map(|_| ())
    }

    fn symlink(&mut self, target: &str, path: &str) -> R<()> {
        let (p, n) = self.parent_and_name(path)?;
        k(self.fs().symlink(Ctx::ROOT, p, &n, target.as_bytes())).map(|_| ())
    }

    fn readlink(&mut self, path: &str) -> R<Vec<u8>> {
        let ino = self.ino(path)?;
        k(self.fs().readlink(ino))
    }

    fn stat(&mut self, path: &str) -> R<Meta> {
        let ino = self.ino(path)?;
        let a = k(self.fs().getattr(ino))?;
        Ok(Meta {
            is_dir: a.kind == nimbus_vault::EntryKind::Dir,
            is_symlink: a.kind == nimbus_vault::EntryKind::Symlink,
            size: a.size,
            nlink: a.nlink,
            perm: a.perm,
            mtime_secs: a.mtime.secs,
        })
    }

    fn chmod(&mut self, path: &str, mode: u32) -> R<()> {
        let ino = self.ino(path)?;
        k(self.fs().setattr(
            ino,
            &SetAttr {
                mode: Some(mode),
                ..Default::default()
            },
        ))
        .map(|_| ())
    }

    fn set_mtime(&mut self, path: &str, secs: i64) -> R<()> {
        let ino = self.ino(path)?;
        k(self.fs().setattr(
            ino,
            &SetAttr {
                mtime: Some(SetTime::At(Timestamp { secs, nanos: 0 })),
                ..Default::default()
            },
        ))
        .map(|_| ())
    }

    fn set_xattr(&mut self, path: &str, name: &str, value: &[u8]) -> R<()> {
        let ino = self.ino(path)?;
        k(self.fs().setxattr(ino, name.as_bytes(), value, XattrMode::Any))
    }

    fn get_xattr(&mut self, path: &str, name: &str) -> R<Vec<u8>> {
        let ino = self.ino(path)?;
        k(self.fs().getxattr(ino, name.as_bytes()))
    }

    fn list_xattr(&mut self, path: &str) -> R<Vec<Vec<u8>>> {
        let ino = self.ino(path)?;
        let mut v = k(self.fs().listxattr(ino))?;
        v.sort();
        Ok(v)
    }

    fn remove_xattr(&mut self, path: &str, name: &str) -> R<()> {
        let ino = self.ino(path)?;
        k(self.fs().removexattr(ino, name.as_bytes()))
    }

    fn sync(&mut self) {
        self.fs().sync_now().unwrap();
    }

    fn remount(&mut self, wipe: bool) {
        let fs = self.fs.take().unwrap();
        fs.shutdown().unwrap();
        drop(fs);
        if wipe {
            std::fs::remove_dir_all(self.state.path().join("vault")).unwrap();
        }
        self.mount();
    }
}

#[test]
fn behaviour_in_memory_store() {
    let mut c = Core::new(Arc::new(MemoryBackend::new()), "an in-memory store");
    conformance::run_all(&mut c, "suite");
}

#[test]
fn behaviour_local_folder_store() {
    let dir = tempfile::tempdir().unwrap();
    let backend: DynBackend = Arc::new(nimbus_backend::OpendalBackend::local_folder(dir.path()).unwrap());
    let mut c = Core::new(backend, "a local folder");
    conformance::run_all(&mut c, "suite");
}

#[test]
fn behaviour_with_a_failing_store() {
    // One request in five fails; the retries of the vault layer and of the
    // sync engine carry the suite through.
    let mem: DynBackend = Arc::new(MemoryBackend::new());
    let faulty = Arc::new(FaultyBackend::new(
        mem.clone(),
        FaultConfig {
            error_rate: 0.2,
            seed: 7,
            ..FaultConfig::default()
        },
    ));
    let retrying = Arc::new(RetryingBackend::new(
        faulty,
        RetryPolicy {
            attempts: 20,
            first_delay: std::time::Duration::from_millis(1),
            max_delay: std::time::Duration::from_millis(10),
        },
    ));
    let mut c = Core::with(mem, retrying, "a store failing 20% of requests");
    conformance::run_all(&mut c, "suite");
}

/// Snapshots show each commit's files, read-only.
#[test]
fn snapshots_are_browsable_and_read_only() {
    let mut c = Core::new(Arc::new(MemoryBackend::new()), "memory");
    c.write("doc.txt", b"first version").unwrap();
    c.sync();
    c.write("doc.txt", b"second version").unwrap();
    c.sync();
    let fs = c.fs().clone();
    // Not listed in the root, but there by name.
    assert!(!c.list("").unwrap().iter().any(|n| n == b".snapshots"));
    let snaps = c.list(".snapshots").unwrap();
    assert_eq!(snaps.len(), 2, "one folder per commit: {snaps:?}");
    let first = String::from_utf8(snaps[0].clone()).unwrap();
    let second = String::from_utf8(snaps[1].clone()).unwrap();
    assert_eq!(
        c.read(&format!(".snapshots/{first}/doc.txt")).unwrap(),
        b"first version"
    );
    assert_eq!(
        c.read(&format!(".snapshots/{second}/doc.txt")).unwrap(),
        b"second version"
    );
    let snap_dir = c.ino(&format!(".snapshots/{first}")).unwrap();
    assert_eq!(
        fs.mkdir(Ctx::ROOT, snap_dir, b"new", 0o755).unwrap_err().kind(),
        ErrorKind::ReadOnly
    );
    let f = c.ino(&format!(".snapshots/{first}/doc.txt")).unwrap();
    let fh = fs.open(f, false).unwrap();
    assert_eq!(fs.write(fh, 0, b"x").unwrap_err().kind(), ErrorKind::ReadOnly);
    fs.release(fh).unwrap();
    assert_eq!(c.write(".snapshots/x", b"").unwrap_err(), ErrorKind::ReadOnly);
}

/// A file unlinked while open stays readable until closed.
#[test]
fn unlinked_open_file_lives_until_closed() {
    let mut c = Core::new(Arc::new(MemoryBackend::new()), "memory");
    c.write("tmp", b"still here").unwrap();
    let fs = c.fs().clone();
    let ino = c.ino("tmp").unwrap();
    let fh = fs.open(ino, false).unwrap();
    fs.unlink(ROOT, b"tmp").unwrap();
    assert_eq!(fs.read(fh, 0, 100).unwrap(), b"still here");
    fs.write(fh, 0, b"STILL").unwrap();
    assert_eq!(fs.read(fh, 0, 100).unwrap(), b"STILL here");
    fs.release(fh).unwrap();
    assert_eq!(fs.getattr(ino).unwrap_err().kind(), ErrorKind::NotFound);
}

/// A file replaced by a rename after the kernel looked its name up but
/// before it opened it: the open answers `Stale` (ESTALE, on which Linux
/// looks the name up again), never "no such file". A file opened before
/// the rename reads its old content to the end, then goes.
#[test]
fn an_open_racing_a_rename_sees_a_whole_version_or_stale() {
    let mut c = Core::new(Arc::new(MemoryBackend::new()), "memory");
    let fs = c.fs().clone();
    c.write("doc", b"version 1").unwrap();
    let v1 = c.ino("doc").unwrap();
    c.write("doc.tmp", b"version 2").unwrap();
    c.rename("doc.tmp", "doc").unwrap();
    assert_eq!(fs.open(v1, false).unwrap_err().kind(), ErrorKind::Stale);
    assert_eq!(fs.open(v1, true).unwrap_err().kind(), ErrorKind::Stale);
    let v2 = c.ino("doc").unwrap();
    let fh = fs.open(v2, false).unwrap();
    c.write("doc.tmp", b"version 3").unwrap();
    c.rename("doc.tmp", "doc").unwrap();
    // Opened again by a handle the kernel got before the rename.
    let fh2 = fs.open(v2, false).unwrap();
    fs.release(fh).unwrap();
    assert_eq!(fs.read(fh2, 0, 100).unwrap(), b"version 2");
    fs.release(fh2).unwrap();
    assert_eq!(fs.open(v2, false).unwrap_err().kind(), ErrorKind::Stale);
    assert_eq!(c.read("doc").unwrap(), b"version 3");
}

/// A file the kernel was handed by a lookup stays after a rename takes its
/// name, so the kernel's open by number reads the old file, whole; it goes
/// once the kernel forgets it (and the last handle is closed).
#[test]
fn a_replaced_file_stays_until_the_kernel_forgets_it() {
    let mut c = Core::new(Arc::new(MemoryBackend::new()), "memory");
    let fs = c.fs().clone();
    c.write("doc", b"version 1").unwrap();
    let v1 = fs.lookup(ROOT, b"doc").unwrap().ino;
    fs.remember(v1);
    fs.remember(v1);
    c.write("doc.tmp", b"version 2").unwrap();
    c.rename("doc.tmp", "doc").unwrap();
    let fh = fs.open(v1, false).unwrap();
    assert_eq!(fs.read(fh, 0, 100).unwrap(), b"version 1");
    fs.forget(v1, 2).unwrap();
    assert_eq!(fs.read(fh, 0, 100).unwrap(), b"version 1", "open: still there");
    fs.release(fh).unwrap();
    assert_eq!(fs.getattr(v1).unwrap_err().kind(), ErrorKind::NotFound);
    // Forgotten in two steps, and unlinked rather than replaced.
    let v2 = fs.lookup(ROOT, b"doc").unwrap().ino;
    fs.remember(v2);
    fs.remember(v2);
    c.unlink("doc").unwrap();
    fs.forget(v2, 1).unwrap();
    assert_eq!(fs.getattr(v2).unwrap().nlink, 0);
    fs.forget(v2, 1).unwrap();
    assert_eq!(fs.getattr(v2).unwrap_err().kind(), ErrorKind::NotFound);
}

/// What the kernel does for `open(path)`, with its retry on ESTALE.
fn open_by_name(fs: &Fs, name: &[u8]) -> nimbus_fs::Result<u64> {
    loop {
        let ino = fs.lookup(ROOT, name)?.ino;
        match fs.open(ino, false) {
            Err(e) if e.kind() == ErrorKind::Stale => continue,
            r => return r,
        }
    }
}

/// Versions of 20 to 200 KiB whose first line names them.
fn version(i: u64) -> Vec<u8> {
    let mut v = format!("version {i}\n").into_bytes();
    v.extend(conformance::bytes(i, (20 << 10) + (i as usize * 7919) % (180 << 10)));
    v
}

/// 300 renames of a new file over a name while three readers open and
/// read it, with commits in between: every read is one whole version,
/// and no open or read fails.
#[test]
fn renames_over_a_file_never_fail_its_readers() {
    let mut c = Core::new(Arc::new(MemoryBackend::new()), "memory");
    c.write("doc", &version(0)).unwrap();
    let fs = c.fs().clone();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (fs, done) = (fs.clone(), done.clone());
            std::thread::spawn(move || {
                let mut reads = 0u64;
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    let fh = open_by_name(&fs, b"doc").unwrap_or_else(|e| panic!("open: {e}"));
                    let mut got = Vec::new();
                    loop {
                        let piece = fs
                            .read(fh, got.len() as u64, 64 << 10)
                            .unwrap_or_else(|e| panic!("read: {e}"));
                        if piece.is_empty() {
                            break;
                        }
                        got.extend_from_slice(&piece);
                    }
                    fs.release(fh).unwrap();
                    let line = got.split(|&b| b == b'\n').next().unwrap_or_default();
                    let i: u64 = std::str::from_utf8(line)
                        .ok()
                        .and_then(|l| l.strip_prefix("version "))
                        .and_then(|n| n.parse().ok())
                        .unwrap_or_else(|| panic!("a read that is no version: {:?}", &got[..got.len().min(40)]));
                    assert!(got == version(i), "version {i} read torn ({} bytes)", got.len());
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    for i in 1..=300 {
        c.write("doc.tmp", &version(i)).unwrap();
        c.rename("doc.tmp", "doc").unwrap();
        if i % 50 == 0 {
            c.sync();
        }
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let reads: u64 = readers.into_iter().map(|r| r.join().unwrap()).sum();
    assert!(reads > 0);
    assert_eq!(c.read("doc").unwrap(), version(300));
}

/// xorshift, for the operations of the model test below.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// Punched holes and zeroed ranges read as zeros, over staged blocks and
/// over content already in the vault, at any offset; the size stays for a
/// hole and for KEEP_SIZE, and grows for a zeroed range past the end
/// otherwise. Checked against a plain byte vector after every step, and
/// after a remount and a rebuild from the vault.
#[test]
fn holes_and_zeroed_ranges_read_as_zeros() {
    use nimbus_fs::Fallocate;
    let mut c = Core::new(Arc::new(MemoryBackend::new()), "memory");
    let mut model = conformance::bytes(1, 300_000);
    c.write("f", &model).unwrap();
    c.sync();
    let ino = c.ino("f").unwrap();
    let fs = c.fs().clone();
    // The edge cases first, then random steps.
    let mut steps = vec![
        (0u64, 0u64, 10u64),   // punch at 0, inside one block
        (0, 4096, 8192),       // punch two whole blocks of stored content
        (0, 5000, 1),          // punch one byte
        (1, 299_990, 100),     // zero, keep size, across the end
        (2, 299_000, 5000),    // zero past the end: grows
        (0, 290_000, 100_000), // punch to past the end: size stays
        (1, 400_000, 10),      // zero, keep size, wholly past the end
    ];
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for _ in 0..300 {
        let op = rng.below(6);
        let big = rng.below(4) == 0;
        let len = 1 + rng.below(if big { 200_000 } else { 9000 });
        let off = rng.below(model.len() as u64 + 20_000);
        steps.push((op, off, len));
    }
    for (n, (op, off, len)) in steps.into_iter().enumerate() {
        let (o, l) = (off as usize, len as usize);
        match op {
            0 => {
                fs.fallocate(ino, off, len, Fallocate::PunchHole).unwrap();
                let end = (o + l).min(model.len());
                if o < end {
                    model[o..end].fill(0);
                }
            }
            1 | 2 => {
                let keep_size = op == 1;
                fs.fallocate(ino, off, len, Fallocate::ZeroRange { keep_size }).unwrap();
                let end = o + l;
                if !keep_size && end > model.len() {
                    model.resize(end, 0);
                }
                let end = end.min(model.len());
                if o < end {
                    model[o..end].fill(0);
                }
            }
            3 => {
                let data = conformance::bytes(n as u64, l.min(70_000));
                c.write_at("f", off, &data).unwrap();
                if model.len() < o + data.len() {
                    model.resize(o + data.len(), 0);
                }
                model[o..o + data.len()].copy_from_slice(&data);
            }
            4 => {
                let size = off % 400_000;
                c.truncate("f", size).unwrap();
                model.resize(size as usize, 0);
            }
            _ => c.sync(),
        }
        let got = c.read("f").unwrap();
        assert_eq!(got.len(), model.len(), "size after step {n} ({op}, {off}, {len})");
        assert!(got == model, "content after step {n} ({op}, {off}, {len})");
    }
    assert_eq!(
        fs.fallocate(ino, 0, 0, Fallocate::PunchHole).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    let dir = c.fs().mkdir(Ctx::ROOT, ROOT, b"d", 0o755).unwrap().ino;
    assert_eq!(
        fs.fallocate(dir, 0, 10, Fallocate::ZeroRange { keep_size: false })
            .unwrap_err()
            .kind(),
        ErrorKind::IsDir
    );
    drop(fs);
    c.sync();
    c.remount(false);
    assert!(c.read("f").unwrap() == model, "after a remount");
    c.remount(true);
    assert!(c.read("f").unwrap() == model, "rebuilt from the vault");
}

/// Nothing under the state folder holds a name or 64 bytes of content.
#[test]
fn nothing_readable_at_rest() {
    let mut c = Core::new(Arc::new(MemoryBackend::new()), "memory");
    let secret_name = "quarterly-salaries-confidential.xlsx";
    let content = conformance::bytes(42, 300_000);
    c.mkdir("private-folder-name").unwrap();
    c.write(&format!("private-folder-name/{secret_name}"), &content)
        .unwrap();
    c.set_xattr(
        &format!("private-folder-name/{secret_name}"),
        "user.note",
        b"xattr-value-secret",
    )
    .unwrap();
    c.sync();
    // Cached blobs, staging and the database, before and after reads.
    let _ = c.read(&format!("private-folder-name/{secret_name}")).unwrap();
    c.write_at(&format!("private-folder-name/{secret_name}"), 1000, &content[..70_000])
        .unwrap();
    c.fs()
        .fsync(c.ino(&format!("private-folder-name/{secret_name}")).unwrap())
        .unwrap();
    let needles: Vec<Vec<u8>> = vec![
        secret_name.as_bytes().to_vec(),
        b"private-folder-name".to_vec(),
        b"xattr-value-secret".to_vec(),
    ];
    let mut files = 0;
    for entry in walk(c.state.path().to_path_buf()) {
        let data = std::fs::read(&entry).unwrap();
        files += 1;
        for n in &needles {
            assert!(
                !data.windows(n.len()).any(|w| w == n.as_slice()),
                "{} holds a name in plaintext",
                entry.display()
            );
        }
        let mut i = 0;
        while i + 64 <= content.len() {
            let needle = &content[i..i + 64];
            assert!(
                !data.windows(64).any(|w| w == needle),
                "{} holds file content in plaintext",
                entry.display()
            );
            i += 4096;
        }
    }
    assert!(files >= 2, "the state folder has a database and staging");
}

fn walk(dir: PathBuf) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// A snapshot made elsewhere while the drive was not mounted (another
/// device, or `nimbus put`) shows up at the next mount when the drive had
/// no changes of its own (a fast-forward); with changes of its own, those
/// are kept, and their commit merges with the other snapshot.
#[test]
fn newer_snapshots_from_elsewhere_are_picked_up() {
    let mem: DynBackend = Arc::new(MemoryBackend::new());
    let mut a = Core::new(mem.clone(), "device A");
    a.write("from-a.txt", b"a").unwrap();
    a.sync();
    a.fs.take().unwrap().shutdown().unwrap();

    // Device B: its own state and device id, same vault.
    let mut b = Core {
        rt: tokio::runtime::Runtime::new().unwrap(),
        backend: mem.clone(),
        fs: None,
        state: tempfile::tempdir().unwrap(),
        device: DeviceId::random(),
        label: "device B".into(),
        delay: a.delay,
    };
    b.mount();
    assert_eq!(b.read("from-a.txt").unwrap(), b"a");
    b.write("from-b.txt", b"b").unwrap();
    b.sync();
    b.fs.take().unwrap().shutdown().unwrap();

    // A had nothing pending: it takes in B's newer snapshot as it opens.
    a.mount();
    assert_eq!(a.read("from-b.txt").unwrap(), b"b");
    a.write("a-again.txt", b"a2").unwrap();
    a.fs.take().unwrap().shutdown().unwrap();

    // B changes something and stops before committing it (a crash); then A
    // commits again; B mounts: it keeps its change, and its next commit
    // merges with A's snapshot.
    b.mount();
    assert_eq!(b.read("a-again.txt").unwrap(), b"a2");
    b.write("b-pending.txt", b"b2").unwrap();
    b.fs().fsync(ROOT).unwrap();
    let crashed = b.fs.take().unwrap();
    crashed.shutdown_without_commit();
    drop(crashed);
    a.mount();
    a.write("a-third.txt", b"a3").unwrap();
    a.fs.take().unwrap().shutdown().unwrap();
    b.mount();
    assert_eq!(
        b.read("b-pending.txt").unwrap(),
        b"b2",
        "local changes are never dropped"
    );
    b.sync();
    assert_eq!(b.read("a-third.txt").unwrap(), b"a3", "the merge brings A's change");
    assert_eq!(b.read("b-pending.txt").unwrap(), b"b2");
    let vault = b.fs().vault().clone();
    let (_, head) = b.rt.block_on(vault.head()).unwrap().unwrap();
    assert_eq!(head.parents.len(), 2, "a merge of both snapshots");
}

/// Pinned files stay in the cache whatever else is read, and are readable
/// with the store unreachable; files not on this device fail with a clear
/// error after the fetch timeout rather than hanging (here: at once, since
/// the store answers "unreachable").
#[test]
fn pinned_files_survive_eviction_and_outages() {
    let mem: DynBackend = Arc::new(MemoryBackend::new());
    let faulty = Arc::new(FaultyBackend::new(mem.clone(), FaultConfig::default()));
    let mut c = Core::with(mem, faulty.clone(), "memory behind a switchable outage");
    let files: Vec<(String, Vec<u8>)> = (0..4)
        .map(|i| (format!("f{i}"), conformance::bytes(500 + i, 5 << 20)))
        .collect();
    for (n, d) in &files {
        c.write(n, d).unwrap();
    }
    c.sync();
    c.remount(false); // drop what memory holds
    let pinned = c.ino("f0").unwrap();
    c.fs().pin(pinned, true).unwrap();
    // Reading the other three (15 MiB) through an 8 MiB cache evicts.
    for (n, d) in &files[1..] {
        assert_eq!(&c.read(n).unwrap(), d);
    }
    let (used, limit) = c.fs().cache_usage();
    assert!(used <= limit + (5 << 20), "cache {used} over its limit {limit}");
    faulty.set_offline(true);
    assert_eq!(c.read("f0").unwrap(), files[0].1, "a pinned file reads offline");
    let err = c.read("f1").unwrap_err();
    assert_eq!(
        err,
        ErrorKind::Unavailable,
        "an evicted file says the store is unreachable"
    );
    faulty.set_offline(false);
    assert_eq!(c.read("f1").unwrap(), files[1].1);
}

/// What was written on this device stays readable here after it was
/// uploaded, with the store unreachable: the upload keeps its blobs in the
/// (encrypted) blob cache.
#[test]
fn files_written_here_stay_readable_offline_after_upload() {
    let mem: DynBackend = Arc::new(MemoryBackend::new());
    let faulty = Arc::new(FaultyBackend::new(mem.clone(), FaultConfig::default()));
    let mut c = Core::with(mem, faulty.clone(), "memory behind a switchable outage");
    let a = conformance::bytes(700, 3 << 20);
    let b = conformance::bytes(701, 100_000);
    c.write("a", &a).unwrap();
    c.write("b", &b).unwrap();
    c.sync();
    assert!(!c.fs().pending().unwrap().dirty, "uploaded");
    c.remount(false); // drop what memory holds
    faulty.set_offline(true);
    assert_eq!(c.read("a").unwrap(), a);
    assert_eq!(c.read("b").unwrap(), b);
    faulty.set_offline(false);
}

/// Random reads of a large file leave the blobs they touched in the
/// decoded-block cache, which serves later random reads 4 KiB at a time
/// with the store unreachable and the blob cache gone; a sequential read
/// does not fill it.
#[test]
fn random_reads_are_served_from_the_decoded_block_cache() {
    let mem: DynBackend = Arc::new(MemoryBackend::new());
    let faulty = Arc::new(FaultyBackend::new(mem.clone(), FaultConfig::default()));
    let mut c = Core::with(mem, faulty.clone(), "memory behind a switchable outage");
    let big = conformance::bytes(900, 6 << 20);
    let other = conformance::bytes(901, 3 << 20);
    c.write("big", &big).unwrap();
    c.write("other", &other).unwrap();
    c.sync();
    c.remount(false);
    assert_eq!(c.read("other").unwrap(), other);
    assert_eq!(c.fs().decoded_cache_usage(), (0, 0), "a sequential read fills nothing");

    // Offsets going backwards, so no read continues the one before.
    let offsets: Vec<usize> = (0..24).rev().map(|i| i * 250_000 + 1234).collect();
    let random_reads = |c: &Core| -> Vec<nimbus_fs::Result<Vec<u8>>> {
        let fs = c.fs().clone();
        let fh = fs.open(c_ino(c, "big"), false).unwrap();
        let mut out = Vec::new();
        for &off in &offsets {
            out.push(fs.read(fh, off as u64, 4096));
            // The cache is written in the background: wait for it, so
            // every blob read here gets its turn.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
            while fs.decoded_cache_usage().1 > 0 && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        }
        fs.release(fh).unwrap();
        out
    };
    for (r, &off) in random_reads(&c).into_iter().zip(&offsets) {
        assert_eq!(r.unwrap(), big[off..off + 4096], "read at {off}");
    }
    let (used, writing) = c.fs().decoded_cache_usage();
    assert!(
        used >= 5 << 20 && writing == 0,
        "{used} bytes cached, {writing} being written"
    );

    // Without the blob cache, with nothing in memory and the store down:
    // the same reads come from the decoded blocks, anything else fails.
    let fs = c.fs.take().unwrap();
    fs.shutdown().unwrap();
    drop(fs);
    std::fs::remove_dir_all(c.state.path().join("vault/cache")).unwrap();
    c.mount();
    faulty.set_offline(true);
    for (r, &off) in random_reads(&c).into_iter().zip(&offsets) {
        assert_eq!(r.unwrap(), big[off..off + 4096], "offline read at {off}");
    }
    assert_eq!(c.read("other").unwrap_err(), ErrorKind::Unavailable);
    faulty.set_offline(false);
}

fn c_ino(c: &Core, path: &str) -> Ino {
    c.fs().resolve(path.as_bytes()).unwrap()
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..400 {
        if f() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    panic!("not within 10 s: {what}");
}

/// A locked slot answers every request as locked; putting the drive back
/// serves it again, with nothing lost.
#[test]
fn a_locked_slot_refuses_and_unlocking_restores() {
    let mut c = Core::new(Arc::new(MemoryBackend::new()), "memory");
    let data = conformance::bytes(900, 50_000);
    c.write("kept", &data).unwrap();
    let owner = Ctx { uid: 1000, gid: 1000 };
    let slot = nimbus_fs::Slot::new(c.fs.clone(), owner);
    assert!(!slot.is_locked());
    assert!(slot.get().is_ok());
    let fs = slot.take().unwrap();
    assert!(slot.is_locked());
    assert_eq!(slot.get().err().map(|e| e.kind()), Some(ErrorKind::Locked));
    let root = slot.locked_root();
    assert_eq!((root.ino, root.uid, root.perm), (ROOT, 1000, 0o700));
    // Idle time counts from the last request, also a refused one.
    assert!(slot.idle() < std::time::Duration::from_secs(5));
    slot.put(fs);
    let fs = slot.get().unwrap();
    assert!(Arc::ptr_eq(&fs, c.fs()));
    assert_eq!(c.read("kept").unwrap(), data);
}

/// Paused, the quiet-time commits stop (changes stay pending); an asked-for
/// commit still runs; resumed, the pending ones go by themselves.
#[test]
fn a_paused_drive_keeps_changes_until_resumed() {
    let mut c = Core::new(Arc::new(MemoryBackend::new()), "memory");
    c.delay = std::time::Duration::from_millis(100);
    c.remount(false);
    c.fs().set_paused(true);
    assert!(c.fs().is_paused());
    c.write("a", b"during the pause").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(700));
    assert!(c.fs().pending().unwrap().dirty, "committed while paused");
    c.fs().set_paused(false);
    wait_until("committed after resuming", || !c.fs().pending().unwrap().dirty);
    c.fs().set_paused(true);
    c.write("b", b"asked for").unwrap();
    c.sync();
    assert!(
        !c.fs().pending().unwrap().dirty,
        "an asked-for commit runs while paused"
    );
}

/// Changes a crash left uncommitted upload at the next start by
/// themselves, without waiting for a new change.
#[test]
fn changes_left_by_a_crash_upload_at_the_next_start() {
    let mut c = Core::new(Arc::new(MemoryBackend::new()), "memory");
    c.delay = std::time::Duration::from_millis(100);
    c.write("x", b"before the crash").unwrap();
    c.fs.take().unwrap().shutdown_without_commit();
    c.mount();
    // Seen as pending, unless (on a busy machine) the commit 100 ms after
    // the mount already ran: then it is the one that committed them.
    let p = c.fs().pending().unwrap();
    assert!(p.files > 0 || p.dirty || p.last_sync.is_some(), "{p:?}");
    // The commit's success is noted just after its epoch: wait for both.
    wait_until("the left-over changes committed", || {
        let p = c.fs().pending().unwrap();
        !p.dirty && p.files == 0 && p.last_sync.is_some()
    });
    // In the vault: a rebuild on a fresh state folder reads it back.
    c.remount(true);
    assert_eq!(c.read("x").unwrap(), b"before the crash");
}

/// A change of names alone (a delete, a rename, a removed folder) is
/// committed after the quiet time like a write, not only with the next
/// write.
#[test]
fn deletes_and_renames_alone_are_committed() {
    let mut c = Core::new(Arc::new(MemoryBackend::new()), "memory");
    c.delay = std::time::Duration::from_millis(100);
    c.remount(false);
    c.write("a", b"first").unwrap();
    c.write("b", b"second").unwrap();
    c.fs().mkdir(Ctx::ROOT, ROOT, b"d", 0o755).unwrap();
    wait_until("the writes committed", || !c.fs().pending().unwrap().dirty);
    c.fs().unlink(ROOT, b"a").unwrap();
    wait_until("the delete committed", || !c.fs().pending().unwrap().dirty);
    c.fs().rename(ROOT, b"b", ROOT, b"c", Default::default()).unwrap();
    wait_until("the rename committed", || !c.fs().pending().unwrap().dirty);
    c.fs().rmdir(ROOT, b"d").unwrap();
    wait_until("the removed folder committed", || !c.fs().pending().unwrap().dirty);
}

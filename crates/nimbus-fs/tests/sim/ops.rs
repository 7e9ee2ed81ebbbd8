//! The simulation's operations (docs/SYNC.md §6.2): what a person does on
//! one device (write, truncate, mkdir, rename and move, delete, chmod, a
//! handle held open for writing across merges) and what happens to the
//! device (a sync step, a crash, a partition, a flaky or lagging store).
//! A plan is generated from its seed up front and does not depend on the
//! state it meets: an operation that does not fit (no such file, a rename
//! into itself) does nothing, so dropping operations from a failing plan
//! (shrinking) leaves a plan that still runs.

use nimbus_fs::{Ctx, ErrorKind, Fs, FsError, SetAttr, ROOT};
use nimbus_vault::EntryKind;
use std::collections::HashSet;
use std::fmt;

use crate::rng::Rng;

/// Few names, so that devices collide often.
pub const FILES: &[&str] = &["a", "b", "d1/a", "d1/b", "d2/a", "d1/d3/a", "d2/d1/b"];
pub const DIRS: &[&str] = &["d1", "d2", "d1/d3", "d2/d1", "d2/d3"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Writes a new version of `path` (its folders made as needed):
    /// replaces the content, or appends to it.
    Write {
        dev: usize,
        path: &'static str,
        len: usize,
        append: bool,
    },
    Truncate {
        dev: usize,
        path: &'static str,
        keep_per_mille: u64,
    },
    Mkdir {
        dev: usize,
        path: &'static str,
    },
    /// A rename or a move, of a file or a folder (a folder into its
    /// sibling, say), over what is there when POSIX allows it.
    Rename {
        dev: usize,
        from: &'static str,
        to: &'static str,
    },
    /// Deletes a file, or a folder with everything in it.
    Delete {
        dev: usize,
        path: &'static str,
    },
    Chmod {
        dev: usize,
        path: &'static str,
        mode: u32,
    },
    /// Sets the extended attribute `user.sim<n>` to `value`.
    Xattr {
        dev: usize,
        path: &'static str,
        n: u8,
        value: u8,
    },
    /// A hard link of the file `from` at `to`.
    Link {
        dev: usize,
        from: &'static str,
        to: &'static str,
    },
    /// Opens `path` for writing and keeps the handle (one per device).
    Hold {
        dev: usize,
        path: &'static str,
    },
    /// Writes a new version through the held handle.
    WriteHeld {
        dev: usize,
        len: usize,
    },
    /// Closes the held handle.
    Close {
        dev: usize,
    },
    /// One cycle of the sync loop, with a commit or only a poll.
    Step {
        dev: usize,
        commit: bool,
    },
    /// A committing cycle cut off after `after` requests, then the device
    /// dies without flushing its metadata and loads again.
    Crash {
        dev: usize,
        after: u64,
    },
    /// Cuts the device off the store, or heals it.
    Partition {
        dev: usize,
        on: bool,
    },
    /// Makes this many requests out of 1000 fail.
    Flaky {
        dev: usize,
        per_mille: u32,
    },
    /// Listings lag by this many requests.
    Lag {
        dev: usize,
        lag: u64,
    },
    /// A pruner marks (docs/PRUNE.md §4.1), keeping the `keep` newest
    /// snapshots (0: forgets none); cut off after `cut` requests, when
    /// given, as if it crashed there.
    Mark {
        pruner: usize,
        keep: usize,
        cut: Option<u64>,
    },
    /// Both pruners mark at once, their requests interleaved.
    MarkBoth {
        keep: usize,
    },
    /// A pruner sweeps (§4.2), cut off after `cut` requests when given.
    Sweep {
        pruner: usize,
        cut: Option<u64>,
    },
    /// The store's clock moves this many minutes on.
    Clock {
        minutes: u64,
    },
    /// The device's machine sleeps while the store's clock moves `hours`
    /// on (it does nothing until it wakes), or wakes.
    Suspend {
        dev: usize,
        on: bool,
        hours: u64,
    },
}

/// How many pruners a run has (extra vaults with device ids of their own).
pub const PRUNERS: usize = 2;

impl Op {
    pub fn dev(&self) -> usize {
        match self {
            Op::Write { dev, .. }
            | Op::Truncate { dev, .. }
            | Op::Mkdir { dev, .. }
            | Op::Rename { dev, .. }
            | Op::Delete { dev, .. }
            | Op::Chmod { dev, .. }
            | Op::Xattr { dev, .. }
            | Op::Link { dev, .. }
            | Op::Hold { dev, .. }
            | Op::WriteHeld { dev, .. }
            | Op::Close { dev }
            | Op::Step { dev, .. }
            | Op::Crash { dev, .. }
            | Op::Partition { dev, .. }
            | Op::Flaky { dev, .. }
            | Op::Lag { dev, .. }
            | Op::Suspend { dev, .. } => *dev,
            // A pruner is no device: nothing of a device's is touched.
            Op::Mark { .. } | Op::MarkBoth { .. } | Op::Sweep { .. } | Op::Clock { .. } => usize::MAX,
        }
    }
}

/// A run: how many devices, their clocks' skews, and what happens.
#[derive(Clone)]
pub struct Plan {
    pub seed: u64,
    pub devices: usize,
    pub skews: Vec<i64>,
    pub ops: Vec<Op>,
    /// Each operation's place in the seed's whole plan.
    pub places: Vec<usize>,
}

impl Plan {
    /// The plan without its operation `i`.
    pub fn without(&self, i: usize) -> Plan {
        let mut p = self.clone();
        p.ops.remove(i);
        p.places.remove(i);
        p
    }

    /// Only the operations at these places of the whole plan.
    pub fn only(&self, places: &[usize]) -> Plan {
        let mut p = self.clone();
        let keep: Vec<usize> = (0..self.ops.len())
            .filter(|i| places.contains(&self.places[*i]))
            .collect();
        p.ops = keep.iter().map(|i| self.ops[*i].clone()).collect();
        p.places = keep.iter().map(|i| self.places[*i]).collect();
        p
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "seed {} ({} devices, clock skews {:?} s, {} operations):",
            self.seed,
            self.devices,
            self.skews,
            self.ops.len()
        )?;
        for (i, op) in self.places.iter().zip(&self.ops) {
            writeln!(f, "  {i:3}: {op:?}")?;
        }
        let places: Vec<String> = self.places.iter().map(|p| p.to_string()).collect();
        writeln!(
            f,
            "  rerun: NIMBUS_SIM_SEED={} NIMBUS_SIM_KEEP={}",
            self.seed,
            places.join(",")
        )?;
        Ok(())
    }
}

/// The plan of `seed`: 2 to 4 devices, up to `max_ops` operations.
pub fn plan(seed: u64, max_ops: usize) -> Plan {
    let mut r = Rng::new(seed);
    let devices = 2 + r.below(3) as usize;
    const DAY: i64 = 86_400;
    let skews = (0..devices)
        .map(|_| r.pick(&[0, 0, 3 * DAY, -3 * DAY, 37, -3600]))
        .collect();
    let n = max_ops / 2 + r.below(max_ops as u64 / 2 + 1) as usize;
    let ops = (0..n).map(|_| op(&mut r, devices)).collect();
    Plan {
        seed,
        devices,
        skews,
        ops,
        places: (0..n).collect(),
    }
}

fn op(r: &mut Rng, devices: usize) -> Op {
    let dev = r.below(devices as u64) as usize;
    if r.chance(90) {
        return prune_op(r, dev);
    }
    let any = |r: &mut Rng| {
        if r.chance(600) {
            r.pick(FILES)
        } else {
            r.pick(DIRS)
        }
    };
    match r.below(100) {
        0..=21 => {
            let most = if r.chance(100) { 300_000 } else { 3000 };
            Op::Write {
                dev,
                path: r.pick(FILES),
                len: 1 + r.below(most) as usize,
                append: r.chance(300),
            }
        }
        22..=25 => Op::Truncate {
            dev,
            path: r.pick(FILES),
            keep_per_mille: r.below(1000),
        },
        26..=29 => Op::Mkdir {
            dev,
            path: r.pick(DIRS),
        },
        30..=37 => Op::Rename {
            dev,
            from: any(r),
            to: any(r),
        },
        38..=42 => Op::Delete { dev, path: any(r) },
        43..=44 => Op::Chmod {
            dev,
            path: any(r),
            mode: r.pick(&[0o600, 0o644, 0o755, 0o700]),
        },
        45 => {
            if r.chance(500) {
                Op::Xattr {
                    dev,
                    path: any(r),
                    n: r.below(2) as u8,
                    value: r.below(256) as u8,
                }
            } else {
                Op::Link {
                    dev,
                    from: r.pick(FILES),
                    to: r.pick(FILES),
                }
            }
        }
        46..=47 => Op::Hold {
            dev,
            path: r.pick(FILES),
        },
        48..=50 => Op::WriteHeld {
            dev,
            len: 1 + r.below(2000) as usize,
        },
        51 => Op::Close { dev },
        52..=83 => Op::Step {
            dev,
            commit: r.chance(750),
        },
        84..=87 => Op::Crash {
            dev,
            after: r.below(40),
        },
        88..=92 => Op::Partition { dev, on: r.chance(600) },
        93..=96 => Op::Flaky {
            dev,
            per_mille: r.pick(&[0, 0, 20, 100, 300]),
        },
        _ => Op::Lag {
            dev,
            lag: r.pick(&[0, 0, 5, 50, 500]),
        },
    }
}

/// What pruners and the store's clock do (docs/PRUNE.md, §9 step 9).
fn prune_op(r: &mut Rng, dev: usize) -> Op {
    let pruner = r.below(PRUNERS as u64) as usize;
    let cut = if r.chance(300) { Some(r.below(60)) } else { None };
    let keep = r.pick(&[0, 1, 2, 3, 5]);
    match r.below(100) {
        0..=29 => Op::Clock {
            minutes: r.pick(&[10, 30, 60, 90, 150, 240, 420]),
        },
        30..=54 => Op::Mark { pruner, keep, cut },
        55..=62 => Op::MarkBoth { keep },
        63..=87 => Op::Sweep { pruner, cut },
        _ => Op::Suspend {
            dev,
            on: r.chance(700),
            hours: r.pick(&[3, 7]),
        },
    }
}

/// What a person's operation found wrong with the drive itself, as
/// opposed to a refusal POSIX allows (no such file, not empty...).
pub fn is_bug(e: &FsError) -> bool {
    matches!(e.kind(), ErrorKind::Io | ErrorKind::Corrupt | ErrorKind::BadHandle)
}

/// A version's identity: a hash of its bytes (every write makes unique
/// bytes, see [`content`]).
pub fn hash(data: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    data.hash(&mut h);
    h.finish()
}

/// New bytes no other write makes: a tag naming the write, then filler.
pub fn content(seed: u64, dev: usize, n: u64, len: usize) -> Vec<u8> {
    let mut out = format!("<s{seed} d{dev} n{n}>").into_bytes();
    let mut r = Rng::new(seed ^ (n << 8) ^ dev as u64);
    while out.len() < len {
        out.push(b'a' + r.below(26) as u8);
    }
    out
}

pub fn split(path: &str) -> (&str, &str) {
    path.rsplit_once('/').unwrap_or(("", path))
}

pub fn resolve(fs: &Fs, path: &str) -> Result<u64, FsError> {
    if path.is_empty() {
        Ok(ROOT)
    } else {
        fs.resolve(path.as_bytes())
    }
}

/// Reads a whole open file.
pub fn read_fh(fs: &Fs, fh: u64) -> Result<Vec<u8>, FsError> {
    let mut out = Vec::new();
    loop {
        let got = fs.read(fh, out.len() as u64, 128 << 10)?;
        if got.is_empty() {
            return Ok(out);
        }
        out.extend_from_slice(&got);
    }
}

/// Reads a whole file by path.
pub fn read_path(fs: &Fs, path: &str) -> Result<Vec<u8>, FsError> {
    let fh = fs.open(resolve(fs, path)?, false)?;
    let res = read_fh(fs, fh);
    fs.release(fh)?;
    res
}

/// The names in a folder, `.snapshots` left out, sorted.
pub fn names(fs: &Fs, dir: &str) -> Result<Vec<String>, FsError> {
    let ino = resolve(fs, dir)?;
    let mut out: Vec<String> = fs
        .readdir(ino, 0, 100_000)?
        .into_iter()
        .map(|e| String::from_utf8_lossy(&e.name).into_owned())
        .filter(|n| n != "." && n != ".." && n != ".snapshots")
        .collect();
    out.sort();
    Ok(out)
}

/// Every file under `path` (itself if a file), with its content.
pub fn files_under(fs: &Fs, path: &str) -> Result<Vec<(String, Vec<u8>)>, FsError> {
    let attr = fs.getattr(resolve(fs, path)?)?;
    if attr.kind == EntryKind::File {
        return Ok(vec![(path.to_string(), read_path(fs, path)?)]);
    }
    let mut out = Vec::new();
    if attr.kind == EntryKind::Dir {
        for n in names(fs, path)? {
            let p = if path.is_empty() { n } else { format!("{path}/{n}") };
            out.extend(files_under(fs, &p)?);
        }
    }
    Ok(out)
}

/// Makes the folders of `path` that do not exist.
pub fn mkdir_p(fs: &Fs, dir: &str) -> Result<u64, FsError> {
    let mut ino = ROOT;
    if dir.is_empty() {
        return Ok(ino);
    }
    for part in dir.split('/') {
        ino = match fs.lookup(ino, part.as_bytes()) {
            Ok(a) => a.ino,
            Err(e) if e.kind() == ErrorKind::NotFound => fs.mkdir(Ctx::ROOT, ino, part.as_bytes(), 0o755)?.ino,
            Err(e) => return Err(e),
        };
    }
    Ok(ino)
}

/// Deletes `path`, and everything in it when it is a folder.
pub fn delete_all(fs: &Fs, path: &str) -> Result<(), FsError> {
    let ino = resolve(fs, path)?;
    let (dir, name) = split(path);
    let parent = resolve(fs, dir)?;
    if fs.getattr(ino)?.kind == EntryKind::Dir {
        for n in names(fs, path)? {
            delete_all(fs, &format!("{path}/{n}"))?;
        }
        fs.rmdir(parent, name.as_bytes())
    } else {
        fs.unlink(parent, name.as_bytes())
    }
}

/// The versions a person's operation is about to replace or delete:
/// recorded before it runs, since §3.7 lets a version go only when a
/// change was made on top of it.
pub fn note_replaced(removed: &mut HashSet<u64>, files: &[(String, Vec<u8>)]) {
    for (_, data) in files {
        removed.insert(hash(data));
    }
}

/// Sets `user.sim<n>` on `path`.
pub fn xattr(fs: &Fs, path: &str, n: u8, value: u8) -> Result<(), FsError> {
    let ino = resolve(fs, path)?;
    let name = format!("user.sim{n}");
    fs.setxattr(ino, name.as_bytes(), &[value; 3], nimbus_fs::XattrMode::Any)
}

/// A hard link of `from` at `to`.
pub fn link(fs: &Fs, from: &str, to: &str) -> Result<(), FsError> {
    let ino = resolve(fs, from)?;
    let (dir, name) = split(to);
    fs.link(ino, resolve(fs, dir)?, name.as_bytes()).map(|_| ())
}

/// Chmod of `path`.
pub fn chmod(fs: &Fs, path: &str, mode: u32) -> Result<(), FsError> {
    let ino = resolve(fs, path)?;
    fs.setattr(
        ino,
        &SetAttr {
            mode: Some(mode),
            ..Default::default()
        },
    )
    .map(|_| ())
}

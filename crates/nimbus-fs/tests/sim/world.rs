//! One simulated run: the devices, the store, and the plan's operations
//! applied in order; then the healing rounds and the checks of
//! `oracle.rs`. The pruners are in [`prune`].

mod prune;

use nimbus_fs::{Ctx, ErrorKind, Fs, FsError, FsOptions};
use nimbus_vault::{CommitId, DeviceId, KdfParams, Vault, VaultParams};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::ops::{self, content, Op, Plan};
use crate::oracle;
use crate::store::{Faults, SimStore, SimView};

/// Rounds of every device committing, once every fault is healed (§6.2).
const ROUNDS: usize = 3;

struct Device {
    id: DeviceId,
    name: String,
    dir: PathBuf,
    view: Arc<SimView>,
    fs: Option<Arc<Fs>>,
    /// A handle held open for writing.
    held: Option<u64>,
    skew: i64,
    /// Partitioned by the plan (a crash point cuts the view off too).
    partitioned: bool,
    /// What the host would keep across a restart: the newest update
    /// number of this device's ref, and the refs seen (rollback memory).
    ref_seq: Arc<AtomicU64>,
    seen: Arc<Mutex<HashMap<DeviceId, u64>>>,
    /// Its machine sleeps: it does nothing until it wakes.
    suspended: bool,
}

struct World {
    rt: tokio::runtime::Runtime,
    store: SimStore,
    seed: u64,
    devices: Vec<Device>,
    pruners: Vec<prune::Pruner>,
    /// Every commit a device reported publishing.
    published: Arc<Mutex<Vec<CommitId>>>,
    /// Versions a person replaced or deleted (§3.7).
    replaced: HashSet<u64>,
    writes: u64,
    stats: Stats,
    _tmp: tempfile::TempDir,
}

/// What a run did, to see that runs reach what they should
/// (`NIMBUS_SIM_VERBOSE`).
#[derive(Debug, Default)]
pub struct Stats {
    pub done: u32,
    pub refused: u32,
    pub failed_steps: u32,
    pub crashes: u32,
    pub published: usize,
    pub files: usize,
    pub copies: usize,
    pub marks: u32,
    /// Plans written.
    pub plans: usize,
    pub sweeps: u32,
    /// Plans a sweep finished, and the bytes they freed.
    pub plans_done: usize,
    pub freed: u64,
    pub kept_packs: usize,
    pub pruner_crashes: u32,
}

type Outcome = Result<(), String>;

/// Runs `plan` and its checks; with `sabotage`, a version is lost on
/// purpose before them (the oracle's own test).
pub fn run(plan: &Plan, sabotage: bool) -> Result<Stats, String> {
    let mut w = World::new(plan)?;
    for (i, op) in plan.ops.iter().enumerate() {
        w.apply(op).map_err(|e| format!("operation {i} ({op:?}): {e}"))?;
    }
    w.heal()?;
    w.converge()?;
    w.final_prune()?;
    w.converge()?;
    if sabotage {
        w.sabotage()?;
        w.converge()?;
    }
    w.no_version_lost()?;
    oracle::check_store(&w.rt, &w.store)?;
    for d in &mut w.devices {
        if let Some(fs) = d.fs.take() {
            fs.shutdown()
                .map_err(|e| format!("device {} does not shut down: {e}", d.name))?;
        }
    }
    w.stats.published = w.published.lock().unwrap().len();
    Ok(w.stats)
}

/// While a device's listings lag, the index objects written last may be
/// missing from the `index/` listing its vault loaded, and a blob they
/// name reads as missing: the drive cannot tell a lagging listing from a
/// deleted index object. Allowed while the lag lasts; once it ends the
/// drive must find the blob (the final rounds run without lag).
fn hidden_by_lag(e: &FsError, view: &SimView) -> bool {
    e.kind() == ErrorKind::Corrupt
        && e.to_string().contains("no index object lists it")
        && view.faults.lock().unwrap().lag > 0
}

fn bug(e: FsError) -> String {
    format!("{:?}: {e}", e.kind())
}

impl World {
    fn new(plan: &Plan) -> Result<World, String> {
        // One worker: the blob cache fetches on the runtime while the
        // reader waits, so requests still come one at a time, in order.
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let store = SimStore::new();
        let first = store.view(plan.seed);
        rt.block_on(Vault::create(
            first,
            b"pw",
            VaultParams::default(),
            KdfParams::minimum(),
        ))
        .map_err(|e| format!("cannot create the vault: {e}"))?;
        let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
        let devices = (0..plan.devices)
            .map(|i| Device {
                id: DeviceId::random(),
                name: format!("dev{i}"),
                dir: tmp.path().join(format!("dev{i}")),
                view: store.view(plan.seed.wrapping_mul(31).wrapping_add(i as u64 + 1)),
                fs: None,
                held: None,
                skew: plan.skews[i],
                partitioned: false,
                ref_seq: Arc::new(AtomicU64::new(0)),
                seen: Arc::new(Mutex::new(HashMap::new())),
                suspended: false,
            })
            .collect();
        let pruners = (0..ops::PRUNERS)
            .map(|i| prune::Pruner {
                id: DeviceId::random(),
                view: store.view(plan.seed.wrapping_mul(97).wrapping_add(i as u64 + 1)),
                vault: None,
            })
            .collect();
        let mut w = World {
            rt,
            store,
            seed: plan.seed,
            devices,
            pruners,
            published: Arc::new(Mutex::new(Vec::new())),
            replaced: HashSet::new(),
            writes: 0,
            stats: Stats::default(),
            _tmp: tmp,
        };
        for i in 0..plan.devices {
            w.load(i, true)?;
        }
        Ok(w)
    }

    /// Loads device `i`'s drive: with the store's faults on (a drive that
    /// opens offline catches up later), unless `quiet`. A load the faults
    /// make fail (the store out of reach, or a lagging listing hiding the
    /// index of a snapshot it must read) is tried again later, as a person
    /// would mount again: here at once, with the store honest.
    fn load(&mut self, i: usize, quiet: bool) -> Outcome {
        let d = &self.devices[i];
        let saved = d.view.faults.lock().unwrap().clone();
        let calm = Faults {
            lag: saved.lag,
            ..Faults::default()
        };
        *d.view.faults.lock().unwrap() = calm;
        let vault = self.rt.block_on(Vault::open(d.view.clone(), b"pw"));
        let vault = vault.map_err(|e| format!("the vault does not open on {}: {e}", d.name))?;
        if !quiet {
            *d.view.faults.lock().unwrap() = saved.clone();
        }
        let fs = match self.load_fs(i, vault) {
            Err(e) if e.kind() == ErrorKind::Unavailable || hidden_by_lag(&e, &self.devices[i].view) => {
                *self.devices[i].view.faults.lock().unwrap() = Faults::default();
                let d = &self.devices[i];
                let vault = self.rt.block_on(Vault::open(d.view.clone(), b"pw"));
                let vault = vault.map_err(|e| format!("the vault does not open on {}: {e}", d.name))?;
                self.load_fs(i, vault)
            }
            other => other,
        };
        let d = &mut self.devices[i];
        *d.view.faults.lock().unwrap() = saved;
        d.fs = Some(fs.map_err(|e| format!("{} does not load: {}", d.name, bug(e)))?);
        Ok(())
    }

    fn load_fs(&self, i: usize, vault: Vault) -> nimbus_fs::Result<Arc<Fs>> {
        let d = &self.devices[i];
        vault.remember_refs_seen(&d.seen.lock().unwrap());
        let mut opts = FsOptions::new(d.dir.clone(), d.id);
        opts.device_name = d.name.clone();
        opts.manual = true;
        opts.clock_skew_secs = d.skew;
        opts.ref_seen = d.ref_seq.load(Ordering::SeqCst);
        let (published, seq) = (self.published.clone(), d.ref_seq.clone());
        opts.on_commit = Some(Box::new(move |id, s| {
            published.lock().unwrap().push(id);
            seq.fetch_max(s, Ordering::SeqCst);
        }));
        let seen = d.seen.clone();
        opts.on_refs_seen = Some(Box::new(move |m| *seen.lock().unwrap() = m.clone()));
        Fs::load(vault, self.rt.handle().clone(), opts)
    }

    fn fs(&self, dev: usize) -> Arc<Fs> {
        self.devices[dev]
            .fs
            .clone()
            .expect("every device is loaded between operations")
    }

    fn apply(&mut self, op: &Op) -> Outcome {
        let asleep = self.devices.get(op.dev()).is_some_and(|d| d.suspended);
        if asleep && !matches!(op, Op::Suspend { .. }) {
            return Ok(());
        }
        let res = match *op {
            Op::Mark { pruner, keep, cut } => return self.mark(pruner, keep, cut),
            Op::MarkBoth { keep } => return self.mark_both(keep),
            Op::Sweep { pruner, cut } => return self.sweep(pruner, cut),
            Op::Clock { minutes } => {
                self.advance_minutes(minutes);
                return Ok(());
            }
            Op::Suspend { dev, on, hours } => {
                if on && !self.devices[dev].suspended {
                    self.advance_minutes(hours * 60);
                }
                self.devices[dev].suspended = on;
                return Ok(());
            }
            Op::Step { dev, commit } => return self.step(dev, commit),
            Op::Crash { dev, after } => return self.crash(dev, after),
            Op::Partition { dev, on } => {
                self.devices[dev].partitioned = on;
                self.devices[dev].view.set(|f| f.partitioned = on);
                return Ok(());
            }
            Op::Flaky { dev, per_mille } => {
                self.devices[dev].view.set(|f| f.fail_per_mille = per_mille);
                return Ok(());
            }
            Op::Lag { dev, lag } => {
                self.devices[dev].view.set(|f| f.lag = lag);
                return Ok(());
            }
            _ => self.person(op),
        };
        match res {
            Err(e) if ops::is_bug(&e) && !hidden_by_lag(&e, &self.devices[op.dev()].view) => Err(bug(e)),
            Err(_) => {
                self.stats.refused += 1;
                Ok(())
            }
            Ok(()) => {
                self.stats.done += 1;
                Ok(())
            }
        }
    }

    /// A sync step, then the metadata flushed as the flusher would. A
    /// failure while the store misbehaves is expected.
    fn step(&mut self, dev: usize, commit: bool) -> Outcome {
        let fs = self.fs(dev);
        let res = fs.sync_step(commit);
        fs.flush_metadata().map_err(bug)?;
        match res {
            Err(e) if ops::is_bug(&e) && !hidden_by_lag(&e, &self.devices[dev].view) => {
                Err(format!("a sync step failed: {}", bug(e)))
            }
            Err(_) => {
                self.stats.failed_steps += 1;
                Ok(())
            }
            Ok(()) => Ok(()),
        }
    }

    /// A committing cycle cut off after `after` requests, then the device
    /// dies as in `kill -9` (no flush, handles gone) and loads again; the
    /// store must pass `check` meanwhile.
    fn crash(&mut self, dev: usize, after: u64) -> Outcome {
        self.stats.crashes += 1;
        let fs = self.devices[dev].fs.take().expect("loaded");
        self.devices[dev].view.set(|f| f.cut_after = Some(after));
        let _ = fs.sync_step(true);
        self.devices[dev].held = None;
        if Arc::strong_count(&fs) != 1 {
            return Err("the drive is still referenced after its crash".into());
        }
        drop(fs);
        let partitioned = self.devices[dev].partitioned;
        self.devices[dev].view.set(|f| {
            f.cut_after = None;
            f.partitioned = partitioned;
        });
        oracle::check_store(&self.rt, &self.store)?;
        self.load(dev, false)
    }

    fn person(&mut self, op: &Op) -> nimbus_fs::Result<()> {
        let fs = self.fs(op.dev());
        match *op {
            Op::Write { dev, path, len, append } => {
                self.writes += 1;
                let data = content(self.seed, dev, self.writes, len);
                self.write(&fs, path, &data, append)
            }
            Op::Truncate {
                path, keep_per_mille, ..
            } => {
                let old = ops::read_path(&fs, path)?;
                self.replaced.insert(ops::hash(&old));
                fs.truncate(ops::resolve(&fs, path)?, old.len() as u64 * keep_per_mille / 1000)
            }
            Op::Mkdir { path, .. } => {
                let (dir, name) = ops::split(path);
                let parent = ops::resolve(&fs, dir)?;
                fs.mkdir(Ctx::ROOT, parent, name.as_bytes(), 0o755).map(|_| ())
            }
            Op::Rename { from, to, .. } => self.rename(&fs, from, to),
            Op::Delete { path, .. } => {
                let gone = ops::files_under(&fs, path)?;
                ops::note_replaced(&mut self.replaced, &gone);
                ops::delete_all(&fs, path)
            }
            Op::Chmod { path, mode, .. } => ops::chmod(&fs, path, mode),
            Op::Xattr { path, n, value, .. } => ops::xattr(&fs, path, n, value),
            Op::Link { from, to, .. } => ops::link(&fs, from, to),
            Op::Hold { dev, path } => {
                if self.devices[dev].held.is_none() {
                    let fh = fs.open(ops::resolve(&fs, path)?, false)?;
                    self.devices[dev].held = Some(fh);
                }
                Ok(())
            }
            Op::WriteHeld { dev, len } => {
                let Some(fh) = self.devices[dev].held else {
                    return Ok(());
                };
                let old = ops::read_fh(&fs, fh)?;
                self.replaced.insert(ops::hash(&old));
                self.writes += 1;
                fs.write(fh, 0, &content(self.seed, dev, self.writes, len)).map(|_| ())
            }
            Op::Close { dev } => match self.devices[dev].held.take() {
                Some(fh) => fs.release(fh),
                None => Ok(()),
            },
            _ => Ok(()),
        }
    }

    /// A rename or move of `from` to `to`, over what is there.
    fn rename(&mut self, fs: &Fs, from: &str, to: &str) -> nimbus_fs::Result<()> {
        let (fdir, fname) = ops::split(from);
        let (tdir, tname) = ops::split(to);
        let (fp, tp) = (ops::resolve(fs, fdir)?, ops::resolve(fs, tdir)?);
        match ops::files_under(fs, to) {
            Ok(over) => ops::note_replaced(&mut self.replaced, &over),
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        fs.rename(fp, fname.as_bytes(), tp, tname.as_bytes(), Default::default())
    }

    /// A new version of `path`: replaces its content or appends to it.
    fn write(&mut self, fs: &Fs, path: &str, data: &[u8], append: bool) -> nimbus_fs::Result<()> {
        let (dir, name) = ops::split(path);
        let fh = match ops::read_path(fs, path) {
            Ok(old) => {
                self.replaced.insert(ops::hash(&old));
                let ino = ops::resolve(fs, path)?;
                let fh = fs.open(ino, !append)?;
                let at = if append { old.len() as u64 } else { 0 };
                let res = fs.write(fh, at, data);
                fs.release(fh)?;
                return res.map(|_| ());
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {
                let parent = ops::mkdir_p(fs, dir)?;
                fs.create(Ctx::ROOT, parent, name.as_bytes(), 0o644)?.1
            }
            Err(e) => return Err(e),
        };
        let res = fs.write(fh, 0, data);
        fs.release(fh)?;
        res.map(|_| ())
    }

    /// Every fault healed, held handles closed, every listing current.
    fn heal(&mut self) -> Outcome {
        for d in &mut self.devices {
            d.partitioned = false;
            d.suspended = false;
            d.view.set(|f| *f = Faults::default());
            if let (Some(fh), Some(fs)) = (d.held.take(), &d.fs) {
                fs.release(fh)
                    .map_err(|e| format!("closing the held handle: {}", bug(e)))?;
            }
        }
        Ok(())
    }

    /// [`ROUNDS`] rounds of every device committing and taking the others
    /// in; then every device has the same tree and bytes.
    fn converge(&mut self) -> Outcome {
        for round in 0..ROUNDS {
            for i in 0..self.devices.len() {
                let fs = self.fs(i);
                fs.sync_step(true)
                    .map_err(|e| format!("round {round}, {}: the step fails: {}", self.devices[i].name, bug(e)))?;
                fs.flush_metadata().map_err(bug)?;
                if std::env::var_os("NIMBUS_SIM_TRACE").is_some() {
                    let names: Vec<(String, u64, u64)> = oracle::walk(&fs)?
                        .into_iter()
                        .map(|(p, v)| {
                            let ino = ops::resolve(&fs, &p)
                                .map(|i| fs.getattr(i).map(|a| a.nlink as u64).unwrap_or(0))
                                .unwrap_or(0);
                            (p, ops::hash(&v.2) % 1000, ino)
                        })
                        .collect();
                    eprintln!(
                        "round {round} {}: {names:?} {:?}",
                        self.devices[i].name,
                        fs.sync_state().devices
                    );
                }
            }
        }
        let walk =
            |i: usize| oracle::walk(&self.fs(i)).map_err(|e| format!("{} cannot read {e}", self.devices[i].name));
        let first = walk(0)?;
        for i in 1..self.devices.len() {
            let other = walk(i)?;
            if other != first {
                return Err(format!(
                    "after {ROUNDS} rounds {} and {} differ: {}",
                    self.devices[0].name,
                    self.devices[i].name,
                    oracle::diff(&first, &other)
                ));
            }
        }
        Ok(())
    }

    /// Deletes a file of device 0 whose version no person replaced,
    /// without noting it: the oracle must call that version lost.
    fn sabotage(&mut self) -> Outcome {
        let fs = self.fs(0);
        let tree = oracle::walk(&fs)?;
        let replaced = &self.replaced;
        let mut count: HashMap<u64, usize> = HashMap::new();
        for (_, _, data, _) in tree.values() {
            *count.entry(ops::hash(data)).or_default() += 1;
        }
        let kept = |data: &Vec<u8>| {
            let h = ops::hash(data);
            !data.is_empty() && !replaced.contains(&h) && count[&h] == 1
        };
        let Some((path, _)) = tree.iter().find(|(_, (_, _, data, _))| kept(data)) else {
            return Err("nothing to sabotage".into());
        };
        ops::delete_all(&fs, path).map_err(bug)?;
        Ok(())
    }

    fn no_version_lost(&mut self) -> Outcome {
        let tree = oracle::walk(&self.fs(0))?;
        self.stats.files = tree.values().filter(|v| v.0 == nimbus_vault::EntryKind::File).count();
        self.stats.copies = tree.keys().filter(|p| p.contains(" (conflict ")).count();
        let now: HashSet<u64> = tree.values().map(|(_, _, data, _)| ops::hash(data)).collect();
        let published = self.published.lock().unwrap().clone();
        oracle::no_version_lost(&self.rt, &self.store, &published, &self.replaced, &now)
    }
}

//! The sync loop of one drive (docs/SYNC.md §4.1): one background thread
//! that waits until a commit is due or the next poll, then, holding
//! `Engine::serial`, builds the commit that is due, polls the other
//! devices' refs (pull before push), decides the heads (§2.5) and takes
//! them in: our commit alone is published, another device's head that
//! ours is behind is applied (a fast-forward, [`Syncer::take_in`]), and
//! several heads are merged into a merge commit that is published and
//! applied (`merge.rs`). `poll.rs` is the interval, `heads.rs` the heads,
//! `recover.rs` the `applying` marker of §4.2, `apply.rs` the rebase of the
//! working copy onto a new head.
//!
//! Like `commit/`, this room works on the shared local state, the nodes
//! and the engine; it never names the POSIX face.

use nimbus_merge::names::device_label;
use nimbus_vault::{CommitId, DeviceId, RefCache, RefPoll, RefRecord, Timestamp};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime};

use crate::commit::{Engine, Serial, Wait};
use crate::content::Nodes;
use crate::error::{lock_err, ErrorKind, FsError, Result};
use crate::kernel::{KernelLink, KernelRefs};
use crate::local::Local;
use crate::meta::commits::{self, CommitRow};
use crate::meta::state::Applying;
use crate::meta::{dirty, inodes, state};
use crate::types::ROOT;

pub(crate) mod apply;
mod heads;
pub(crate) mod history;
pub(crate) mod merge;
mod poll;
pub(crate) mod recover;
mod report;
pub(crate) mod trees;

use apply::{apply, Applied, Target};
use heads::Heads;
use history::History;
use poll::Interval;
pub use report::{ConflictCopy, Counts, MergeReport, REPORT_PATHS};

/// Called after a poll that raised the memory of refs seen, with the whole
/// memory (`Vault::refs_seen`), for the caller to save (§1.1).
pub type OnRefsSeen = Box<dyn Fn(&HashMap<DeviceId, u64>) + Send + Sync>;

/// What the loop needs of the drive's options.
pub(crate) struct SyncOptions {
    /// The idle poll interval; `None`: 5 s (§1.3).
    pub poll: Option<Duration>,
    pub on_refs_seen: Option<OnRefsSeen>,
}

/// What the sync loop knows, for the status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncState {
    /// When the refs were last polled with success.
    pub last_poll: Option<SystemTime>,
    /// Successful polls since the drive opened.
    pub polls: u64,
    /// Polls (or cycles) in a row that failed; the interval backs off.
    pub failures: u32,
    /// The last failure's message, while failing.
    pub last_error: Option<String>,
    /// Other devices' heads this drive has not taken in yet: one that is
    /// ahead of this drive (a fast-forward), or several to merge.
    pub waiting: Vec<RemoteHead>,
    /// Every other device with a ref, as the last head decision saw it,
    /// by device id.
    pub devices: Vec<SeenDevice>,
    /// A merge or the apply of another device's changes is running.
    pub merging: bool,
    /// Conflict copies in the drive, counted after each apply and each
    /// commit (`None` before the first count).
    pub conflicts: Option<u64>,
}

/// Another device with a ref in the vault (docs/SYNC.md §5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenDevice {
    pub device: DeviceId,
    /// The name in its ref's commit (empty before format 3).
    pub name: String,
    /// The commit its ref names.
    pub commit: CommitId,
    /// When that commit reached the store, when the commit cache knows it.
    pub last_change: Option<SystemTime>,
    /// This drive's head is that commit or descends from it.
    pub merged: bool,
}

/// Another device's head waiting to be taken in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteHead {
    pub commit: CommitId,
    /// The device whose ref names it (the smallest id if several do).
    pub device: DeviceId,
    /// That commit's device name (empty before format 3).
    pub device_name: String,
    /// This drive's head is behind it: taking it in is a fast-forward.
    pub ahead: bool,
}

impl RemoteHead {
    /// How people see the device: its name, else its short id.
    pub fn label(&self) -> String {
        device_label(&self.device_name, &self.device)
    }
}

/// What the last head decision was made from: the same again is no news.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Judged {
    others: BTreeSet<CommitId>,
    ours: Option<CommitId>,
    /// Local changes pending or paused: no fast-forward then.
    blocked: bool,
}

/// The loop's own state, held through a cycle.
struct Cycle {
    cache: RefCache,
    interval: Interval,
    judged: Option<Judged>,
    next_poll: Instant,
}

/// What the loop changes besides the local state: the file nodes (the
/// apply drops those whose rows it changed), what the kernel was handed,
/// and the way to the kernel's caches.
pub(crate) struct Parts {
    pub nodes: Arc<Nodes>,
    pub kernel_refs: Arc<KernelRefs>,
    pub kernel: Arc<KernelLink>,
}

/// The sync loop of one drive.
pub(crate) struct Syncer {
    local: Arc<Local>,
    engine: Arc<Engine>,
    parts: Parts,
    opts: SyncOptions,
    cycle: Mutex<Cycle>,
    state: Mutex<SyncState>,
    /// What the applies did, for the caller to take (`take_reports`).
    reports: Mutex<report::Reports>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// Marks the state `merging` while it lives.
struct Merging<'a>(&'a Mutex<SyncState>);

impl<'a> Merging<'a> {
    fn start(state: &'a Mutex<SyncState>) -> Merging<'a> {
        if let Ok(mut st) = state.lock() {
            st.merging = true;
        }
        Merging(state)
    }
}

impl Drop for Merging<'_> {
    fn drop(&mut self) {
        if let Ok(mut st) = self.0.lock() {
            st.merging = false;
        }
    }
}

impl Syncer {
    pub fn new(local: Arc<Local>, engine: Arc<Engine>, parts: Parts, opts: SyncOptions) -> Syncer {
        Syncer {
            cycle: Mutex::new(Cycle {
                cache: RefCache::new(),
                interval: Interval::new(opts.poll),
                judged: None,
                next_poll: Instant::now(),
            }),
            local,
            engine,
            parts,
            opts,
            state: Mutex::new(SyncState::default()),
            reports: Mutex::new(report::Reports::default()),
            thread: Mutex::new(None),
        }
    }

    /// Finishes a head change left under way (§4.2) before anything else
    /// runs: called by the drive's load, after `rebuild::recover`. A store
    /// that cannot be reached leaves it to the loop's first cycle, which
    /// does it before building anything.
    pub fn recover(&self) -> Result<()> {
        let serial = self.engine.serial()?;
        let mut cy = self.cycle.lock().map_err(|_| lock_err())?;
        match self.finish_marker(&serial, &mut cy) {
            Err(e) if e.kind() == crate::ErrorKind::Unavailable => {
                tracing::warn!(
                    "a snapshot was being published when the drive stopped; finishing it waits for the store: {e}"
                );
                Ok(())
            }
            other => other,
        }
    }

    /// Starts the background thread. It ends when the engine stops or the
    /// syncer is dropped.
    pub fn start(self: &Arc<Syncer>) -> Result<()> {
        let weak = Arc::downgrade(self);
        let handle = std::thread::Builder::new()
            .name("nimbus-sync".into())
            .spawn(move || run(&weak))
            .map_err(|e| crate::FsError::io("cannot start the sync thread", e))?;
        if let Ok(mut t) = self.thread.lock() {
            *t = Some(handle);
        }
        Ok(())
    }

    /// Stops the loop: its thread ends after the cycle running now. Not
    /// waited for, since a poll against a store that does not answer may
    /// take its retries' time, and unmounting must not.
    pub fn stop(&self) {
        self.engine.stop();
    }

    /// Whether the loop's thread is still running.
    pub fn running(&self) -> bool {
        self.thread
            .lock()
            .map(|t| t.as_ref().is_some_and(|h| !h.is_finished()))
            .unwrap_or(false)
    }

    /// Commits now and waits for it (the loop runs it, with its poll);
    /// returns that commit's error. Without a loop, runs it here.
    pub fn sync_now(&self) -> Result<()> {
        self.engine.sync_now(|| self.commit_cycle())
    }

    /// One cycle on the caller's thread, as the loop runs it (a commit
    /// first when `commit`), for a drive without its loop (tests: the
    /// simulation's manual mode, docs/SYNC.md §6.2).
    pub fn step(&self, commit: bool) -> Result<()> {
        if commit {
            self.commit_cycle()
        } else {
            self.cycle(false)
        }
    }

    /// A cycle that commits, as a due commit or an asked-for one runs it:
    /// the engine's run begins and ends around it, so those waiting on the
    /// commit get its outcome.
    fn commit_cycle(&self) -> Result<()> {
        let answers = self.engine.begin_run();
        let res = self.cycle(true);
        self.engine.end_run(answers, &res);
        res
    }

    /// What the loop knows, for the status.
    pub fn state(&self) -> SyncState {
        self.state.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// The reports of the applies since the last call, oldest first.
    pub fn take_reports(&self) -> Vec<MergeReport> {
        self.reports.lock().map(|mut r| r.take()).unwrap_or_default()
    }

    /// Every conflict copy in the drive (§5.3), counted into the state.
    pub fn conflicts(&self) -> Result<Vec<ConflictCopy>> {
        let list = self.local.db.read(report::conflicts)?;
        if let Ok(mut st) = self.state.lock() {
            st.conflicts = Some(list.len() as u64);
        }
        Ok(list)
    }

    /// Counts the conflict copies again, after an apply or a commit.
    fn count_conflicts(&self) {
        if let Err(e) = self.conflicts() {
            tracing::warn!("counting the conflict copies failed: {e}");
        }
    }

    /// When the next poll is due.
    fn next_poll(&self) -> Instant {
        self.cycle
            .lock()
            .map(|c| c.next_poll)
            .unwrap_or_else(|_| Instant::now() + poll::IDLE)
    }

    /// One cycle, holding `Engine::serial`: a commit if `commit`, then a
    /// poll and the heads. Sets the next poll's time by its outcome.
    fn cycle(&self, commit: bool) -> Result<()> {
        let serial = self.engine.serial()?;
        let mut cy = self.cycle.lock().map_err(|_| lock_err())?;
        let res = self.cycle_locked(&serial, &mut cy, commit);
        self.after_cycle(&mut cy, &res);
        res
    }

    /// Sets the next poll's time by a cycle's outcome, and the status.
    fn after_cycle(&self, cy: &mut Cycle, res: &Result<()>) {
        let now = Instant::now();
        match res {
            Ok(()) => cy.interval.succeeded(),
            Err(e) => {
                cy.interval.failed();
                tracing::debug!("sync cycle failed ({} in a row): {e}", cy.interval.failures());
            }
        }
        let paused = self.engine.is_paused();
        cy.next_poll = now + cy.interval.next(now, paused, &mut rand::thread_rng());
        if let Ok(mut st) = self.state.lock() {
            st.failures = cy.interval.failures();
            st.last_error = res.as_ref().err().map(|e| e.to_string());
        }
    }

    fn cycle_locked(&self, serial: &Serial<'_>, cy: &mut Cycle, commit: bool) -> Result<()> {
        self.finish_marker(serial, cy)?;
        let built = if commit { self.engine.build(serial)? } else { None };
        let Some(b) = built else {
            let poll = self.poll(&mut cy.cache)?;
            self.polled(&poll);
            self.judge(serial, cy, &poll.refs)?;
            return self.acknowledge(cy, &poll);
        };
        cy.interval.activity(Instant::now());
        heads::remember(&self.local, b.id, &b.commit)?;
        // Pull before push: another device's head merges with ours before
        // anything is published, so only the merge commit is.
        let poll = self.poll(&mut cy.cache)?;
        self.polled(&poll);
        let (others, extra) = self.others(&poll.refs)?;
        let heads = heads::decide(&self.local, Some(b.id), &others)?;
        if let Heads::Several(v) = heads {
            self.merge(cy, Some(b), v)?;
            self.took_in(extra)?;
            self.devices_after_merge(&poll.refs)?;
            cy.judged = None;
            return Ok(());
        }
        // Ours alone, or (`Ahead`) another head with the same tree as ours,
        // whose smaller id wins: ours is published, and the next decision
        // moves to that head without changing a file.
        let poll = self.engine.publish(serial, b, &mut cy.cache)?.poll;
        self.polled(&poll);
        self.count_conflicts();
        if heads == Heads::Ours {
            self.took_in(extra)?;
        }
        // The commit is published: what the heads come to is the sync's
        // business, not the commit's (`sync_now` answers for the commit).
        if let Err(e) = self.judge(serial, cy, &poll.refs) {
            tracing::warn!("deciding the heads after a commit failed: {e}; the next poll tries again");
            if let Ok(mut st) = self.state.lock() {
                st.last_error = Some(e.to_string());
            }
        }
        Ok(())
    }

    /// Finishes a marker left set (see `recover.rs`): the ref, then the
    /// apply when the rows do not hold its head yet; then judges the poll
    /// it made on the way.
    fn finish_marker(&self, serial: &Serial<'_>, cy: &mut Cycle) -> Result<()> {
        let done = recover::finish(&self.local, &self.engine, &mut cy.cache)?;
        match done.then {
            recover::Then::Nothing => {}
            recover::Then::FastForward(target) => self.fast_forward(target)?,
            recover::Then::ApplyMerge { marker, seq } => self.finish_merge(&marker, seq)?,
        }
        if let Some(p) = &done.poll {
            self.polled(p);
            cy.judged = None;
            self.judge(serial, cy, &p.refs)?;
        }
        Ok(())
    }

    /// One poll of the refs, saving the memory of refs seen when it rose.
    fn poll(&self, cache: &mut RefCache) -> Result<RefPoll> {
        let before = self.local.vault.refs_seen();
        let poll = self.local.rt.block_on(self.local.vault.poll_refs(cache))?;
        if let Some(cb) = &self.opts.on_refs_seen {
            let after = self.local.vault.refs_seen();
            if after != before {
                cb(&after);
            }
        }
        Ok(poll)
    }

    /// Rule S4 of docs/PRUNE.md §5: between saves, when the refs show a
    /// pending prune plan this device's ref does not name, the ref is
    /// written again (same commit) naming every pending plan. Saves since
    /// the plan appeared obeyed it (`Vault::has_blob` and the copy-out
    /// before publishing), so the acknowledgement is true. Also when the
    /// local head is not the ref's commit: after a fast-forward (§4.2 of
    /// docs/SYNC.md writes no ref) an idle drive would otherwise hold every
    /// sweep up until it counts as dormant. No publish is in flight here:
    /// the cycle holds `serial` and finished any marker first.
    fn acknowledge(&self, cy: &mut Cycle, poll: &RefPoll) -> Result<()> {
        let me = self.engine.device();
        let Some(own) = poll.refs.get(&me) else {
            return Ok(());
        };
        if poll.gc_pending.iter().all(|p| own.gc_seen.contains(p)) {
            return Ok(());
        }
        // The ref names the local head: the last publish, or another
        // device's head taken in by a fast-forward (which writes no ref).
        // Never an older commit than the store's: a view of the own ref
        // older than the last update this device wrote is skipped, and so
        // is a head that does not descend from the ref's commit.
        let (head, written) = self.local.db.read(|c| Ok((state::head(c)?, state::ref_seen(c)?)))?;
        let Some(head) = head else {
            return Ok(());
        };
        if own.seq < written || !heads::descends(&self.local, head, own.commit)? {
            return Ok(());
        }
        let published = self.engine.write_own_ref(head, &mut cy.cache)?;
        self.local
            .db
            .write(|c| state::set_ref_seen(c, published.seq.max(state::ref_seen(c)?)))?;
        tracing::debug!("acknowledged {} pending prune plan(s)", poll.gc_pending.len());
        Ok(())
    }

    /// Notes a successful poll in the state.
    fn polled(&self, _poll: &RefPoll) {
        if let Ok(mut st) = self.state.lock() {
            st.last_poll = Some(SystemTime::now());
            st.polls += 1;
        }
    }

    /// The heads of the other devices' refs in `refs`, with the extra
    /// parent an older database left (§4.2: one more head, once), which is
    /// returned too.
    fn others(&self, refs: &HashMap<DeviceId, RefRecord>) -> Result<(Vec<CommitId>, Option<CommitId>)> {
        let me = self.engine.device();
        let extra = self.local.db.read(state::extra_parent)?;
        let mut set: BTreeSet<CommitId> = refs.iter().filter(|(d, _)| **d != me).map(|(_, r)| r.commit).collect();
        set.extend(extra);
        Ok((set.into_iter().collect(), extra))
    }

    /// The extra parent, once it was among heads taken in, is history.
    fn took_in(&self, extra: Option<CommitId>) -> Result<()> {
        if extra.is_some() {
            self.local.db.write(|c| state::set_extra_parent(c, None))?;
        }
        Ok(())
    }

    /// Decides the heads of a poll's `refs` (§2.5) when they, this drive's
    /// head or what blocks taking them in changed since the last decision
    /// (an idle poll reads nothing more), and takes them in: a
    /// fast-forward, or a merge, unless local changes are pending (they
    /// commit first, and that cycle merges) or the drive is paused.
    fn judge(&self, _serial: &Serial<'_>, cy: &mut Cycle, refs: &HashMap<DeviceId, RefRecord>) -> Result<()> {
        let (others, extra) = self.others(refs)?;
        let paused = self.engine.is_paused();
        // A change not committed yet holds a fast-forward back; a folder
        // whose tree was never built (the root of a drive made on an empty
        // vault) is no change, and the apply builds nothing from it.
        let (ours, pending) = self.local.db.read(|c| {
            let pending = dirty::any_change(c, state::committed_epoch(c)?)?;
            Ok((state::head(c)?, pending))
        })?;
        let key = Judged {
            others: others.iter().copied().collect(),
            ours,
            blocked: pending || paused,
        };
        if cy.judged.as_ref() == Some(&key) {
            return Ok(());
        }
        let heads = heads::decide(&self.local, ours, &others)?;
        let waiting = self.waiting(&heads, refs)?;
        if !waiting.is_empty() {
            cy.interval.activity(Instant::now());
        }
        let devices = self.seen(refs, |commit| match (&heads, ours) {
            (Heads::Ours, _) => Ok(true),
            (Heads::Ahead(t), _) if *t == commit => Ok(false),
            (Heads::Several(v), _) if v.contains(&commit) => Ok(false),
            (_, Some(o)) => heads::descends(&self.local, o, commit),
            (_, None) => Ok(false),
        })?;
        if let Ok(mut st) = self.state.lock() {
            st.waiting = waiting;
            st.devices = devices;
        }
        let took = match &heads {
            Heads::Ours => true,
            _ if key.blocked => false,
            Heads::Ahead(target) => {
                self.take_in(*target)?;
                true
            }
            Heads::Several(v) => {
                self.merge(cy, None, v.clone())?;
                true
            }
        };
        if took {
            self.took_in(extra)?;
            if heads != Heads::Ours {
                self.all_merged();
            }
        }
        cy.judged = Some(key);
        Ok(())
    }

    /// The heads waiting to be taken in, named for the status.
    fn waiting(&self, heads: &Heads, refs: &HashMap<DeviceId, RefRecord>) -> Result<Vec<RemoteHead>> {
        let (list, ahead) = match heads {
            Heads::Ours => return Ok(Vec::new()),
            Heads::Ahead(t) => (vec![*t], true),
            Heads::Several(v) => (v.clone(), false),
        };
        let mut out = Vec::new();
        for commit in list {
            let Some(device) = refs.iter().filter(|(_, r)| r.commit == commit).map(|(d, _)| *d).min() else {
                continue;
            };
            let device_name = heads::commit_row(&self.local, &commit)?
                .map(|r| r.device_name)
                .unwrap_or_default();
            out.push(RemoteHead {
                commit,
                device,
                device_name,
                ahead,
            });
        }
        Ok(out)
    }

    /// The other devices of `refs`, by id, each `merged` as `merged` says
    /// of its commit. Names and times come from the commit cache, which
    /// deciding the heads filled: nothing is fetched here.
    fn seen(
        &self,
        refs: &HashMap<DeviceId, RefRecord>,
        mut merged: impl FnMut(CommitId) -> Result<bool>,
    ) -> Result<Vec<SeenDevice>> {
        let me = self.engine.device();
        let mut list: Vec<(DeviceId, CommitId)> = refs
            .iter()
            .filter(|(d, _)| **d != me)
            .map(|(d, r)| (*d, r.commit))
            .collect();
        list.sort();
        let ids: Vec<CommitId> = list.iter().map(|(_, c)| *c).collect();
        let rows: HashMap<CommitId, CommitRow> = self
            .local
            .db
            .read(|c| commits::get_many(c, &ids))?
            .into_iter()
            .map(|r| (r.id, r))
            .collect();
        let mut out = Vec::with_capacity(list.len());
        for (device, commit) in list {
            let row = rows.get(&commit);
            out.push(SeenDevice {
                device,
                name: row.map(|r| r.device_name.clone()).unwrap_or_default(),
                commit,
                last_change: row.and_then(|r| r.store_time).map(Timestamp::to_system),
                merged: merged(commit)?,
            });
        }
        Ok(out)
    }

    /// After a merge this drive took in, its head descends from every head
    /// it saw: nothing waits, every device is merged.
    fn all_merged(&self) {
        if let Ok(mut st) = self.state.lock() {
            st.waiting.clear();
            for d in &mut st.devices {
                d.merged = true;
            }
        }
    }

    /// The devices after the merge of a cycle that committed: every ref
    /// of the poll merged was among the heads.
    fn devices_after_merge(&self, refs: &HashMap<DeviceId, RefRecord>) -> Result<()> {
        let devices = self.seen(refs, |_| Ok(true))?;
        if let Ok(mut st) = self.state.lock() {
            st.devices = devices;
            st.waiting.clear();
        }
        Ok(())
    }

    /// Takes in `target`, another device's head that this drive's head is
    /// behind (or that holds the same tree), with no local change pending
    /// and not paused: a fast-forward (§4.2: no commit written, this
    /// device's ref stays). The marker goes first, durably, so a crash
    /// during the apply finishes it at the next start.
    fn take_in(&self, target: CommitId) -> Result<()> {
        self.mark(&Applying {
            head: target,
            publish: false,
            epoch: None,
        })?;
        self.fast_forward(target)
    }

    /// The apply of a fast-forward whose marker is set: from this drive's
    /// head's tree to `target`'s, keeping what changed here since the last
    /// commit; then the kernel's caches, once every lock is let go.
    fn fast_forward(&self, target: CommitId) -> Result<()> {
        let (ours, since) = self
            .local
            .db
            .read(|c| Ok((state::head(c)?, state::committed_epoch(c)?)))?;
        let base = self.root_of(ours)?;
        let head = History::new(&self.local).head(&target)?;
        self.know_trees(&[head.root])?;
        let t = Target {
            head: target,
            root: head.root,
            device: device_label(&head.device_name, &head.device),
            time: head.store_time.unwrap_or(head.time),
            aliases: Vec::new(),
        };
        let _merging = Merging::start(&self.state);
        let applied = self.apply(base, &t, since, None)?;
        tracing::info!("took in another device's snapshot {target}: {:?}", applied.report);
        self.applied(&applied, &t, head.device, None);
        Ok(())
    }

    /// Sets the `applying` marker, durably.
    fn mark(&self, marker: &Applying) -> Result<()> {
        self.local.db.write(|c| state::set_applying(c, marker))?;
        self.local.db.commit(true)
    }

    /// The root tree of commit `id` (`None` for none).
    fn root_of(&self, id: Option<CommitId>) -> Result<Option<nimbus_merge::TreeId>> {
        let Some(id) = id else { return Ok(None) };
        let row = heads::commit_row(&self.local, &id)?.ok_or_else(|| {
            FsError::new(
                ErrorKind::Corrupt,
                format!("this drive's snapshot {id} cannot be read from the vault"),
            )
        })?;
        Ok(Some(row.root))
    }

    /// Makes sure this drive's index of the vault knows the packs holding
    /// `roots`: another device's new snapshots are in packs listed by
    /// index objects written after this drive loaded the index. A root
    /// tree is saved last in its save, so once it is known every blob of
    /// that save and of every earlier one is. Unknown: the index is loaded
    /// again (a LIST of `index/` and a read of each index object; naming
    /// only the commits' `indexes` needs `Vault::add_indexes`, §1.2).
    fn know_trees(&self, roots: &[nimbus_merge::TreeId]) -> Result<()> {
        if roots.iter().all(|r| self.local.vault.locate(r).is_some()) {
            return Ok(());
        }
        self.local.rt.block_on(self.local.vault.load_index())?;
        Ok(())
    }

    /// The tree the rows were last built into: the root folder's stored
    /// tree, which `build` sets for every commit.
    fn rows_tree(&self) -> Result<Option<nimbus_merge::TreeId>> {
        self.local.db.read(|c| Ok(inodes::get(c, ROOT)?.tree_id))
    }

    /// The apply of `target` over the rows (`apply.rs`), with this drive's
    /// nodes and what its kernel was handed.
    fn apply(
        &self,
        base: Option<nimbus_merge::TreeId>,
        target: &Target,
        since: u64,
        committed: Option<u64>,
    ) -> Result<Applied> {
        apply(
            &self.local,
            &self.parts.nodes,
            &self.parts.kernel_refs,
            base,
            target,
            since,
            committed,
        )
    }

    /// After an apply of `target`'s changes from `from`, with no lock
    /// held: the kernel forgets what changed, the snapshots are listed
    /// again, a published head is told, and the report is kept for the
    /// caller with the conflict copies counted again.
    fn applied(&self, applied: &Applied, target: &Target, from: DeviceId, published: Option<(CommitId, u64)>) {
        applied.send_calls(&*self.parts.kernel);
        self.engine.head_changed(published);
        match report::of_apply(&self.local, applied, target, from) {
            Ok(r) if r.is_empty() => {}
            Ok(r) => {
                if let Ok(mut q) = self.reports.lock() {
                    q.push(r);
                }
            }
            Err(e) => tracing::warn!("reading what another device's changes did failed: {e}"),
        }
        self.count_conflicts();
    }

    /// The first poll, run by the drive's load after the recovery: a drive
    /// opens on what the other devices published while it was closed (a
    /// fast-forward, or a merge once its own changes commit), as §4.2
    /// says. A ref that went back in time fails the load, as the read of
    /// the refs at open always did; a store out of reach, or a failure
    /// taking the heads in, is left to the loop (the drive opens as it
    /// was, and the status says why).
    pub fn first_poll(&self) -> Result<()> {
        let serial = self.engine.serial()?;
        let mut cy = self.cycle.lock().map_err(|_| lock_err())?;
        let res = match self.poll(&mut cy.cache) {
            Ok(poll) => {
                self.polled(&poll);
                self.judge(&serial, &mut cy, &poll.refs)
            }
            Err(e) if e.kind() == ErrorKind::Unavailable => Err(e),
            Err(e) => return Err(e),
        };
        self.after_cycle(&mut cy, &res);
        if let Err(e) = res {
            tracing::warn!("the drive opens as it was; catching up with the other devices is left to the loop: {e}");
        }
        Ok(())
    }
}

/// The device, label and time conflict copies made by an apply are named
/// with, and its report tells: the newest head of another device among
/// `heads` (any head if none is).
fn label_of(heads: &[nimbus_merge::Head], me: DeviceId) -> (DeviceId, String, Timestamp) {
    let newest = heads
        .iter()
        .filter(|h| h.device != me)
        .max_by_key(|h| h.key())
        .or_else(|| heads.iter().max_by_key(|h| h.key()));
    match newest {
        Some(h) => (
            h.device,
            device_label(&h.device_name, &h.device),
            h.store_time.unwrap_or(h.time),
        ),
        None => (me, String::new(), Timestamp::now()),
    }
}

/// The loop: wait for a due commit or the next poll, run the cycle. It
/// holds the syncer only while working, so dropping the drive ends it.
fn run(weak: &Weak<Syncer>) {
    loop {
        let Some(s) = weak.upgrade() else { return };
        // Wake at least once a second to let go of the syncer.
        let until = s.next_poll().min(Instant::now() + Duration::from_secs(1));
        match s.engine.wait_until(until) {
            Wait::Stopped => return,
            Wait::Due => {
                let _ = s.commit_cycle();
            }
            Wait::Timeout => {
                if Instant::now() >= s.next_poll() {
                    let _ = s.cycle(false);
                }
            }
        }
    }
}

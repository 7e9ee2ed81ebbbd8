//! The sync loop of one drive (docs/SYNC.md §4.1): one background thread
//! that waits until a commit is due or the next poll, then, holding
//! `Engine::serial`, builds the commit that is due, polls the other
//! devices' refs (the pre-publish poll of `Vault::write_ref_with` when it
//! publishes), and decides the heads (§2.5). `poll.rs` is the interval,
//! `heads.rs` the heads, `recover.rs` the `applying` marker of §4.2.
//!
//! Another device's head that this drive's head is behind is a
//! fast-forward ([`Syncer::fast_forward`]); several heads wait for the
//! merge (step 18): this drive keeps publishing its own commits and the
//! other heads stay in the history, as before. Either is shown in
//! [`SyncState::waiting`].
//!
//! Like `commit/`, this room works on the shared local state and the
//! engine; it never names the POSIX face.

use nimbus_vault::{CommitId, DeviceId, RefCache, RefPoll, RefRecord};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime};

use crate::commit::{Engine, Serial, Wait};
use crate::error::{lock_err, Result};
use crate::local::Local;
use crate::meta::{dirty, state};

// Called by the loop once the fast-forward and the merge are wired in;
// until then only by their tests.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) mod apply;
mod heads;
pub(crate) mod history;
pub(crate) mod merge;
mod poll;
pub(crate) mod recover;
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) mod trees;

use heads::Heads;
use poll::Interval;

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

/// The sync loop of one drive.
pub(crate) struct Syncer {
    local: Arc<Local>,
    engine: Arc<Engine>,
    opts: SyncOptions,
    cycle: Mutex<Cycle>,
    state: Mutex<SyncState>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Syncer {
    pub fn new(local: Arc<Local>, engine: Arc<Engine>, opts: SyncOptions) -> Syncer {
        Syncer {
            cycle: Mutex::new(Cycle {
                cache: RefCache::new(),
                interval: Interval::new(opts.poll),
                judged: None,
                next_poll: Instant::now(),
            }),
            local,
            engine,
            opts,
            state: Mutex::new(SyncState::default()),
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
        self.engine.sync_now(|| {
            let answers = self.engine.begin_run();
            let res = self.cycle(true);
            self.engine.end_run(answers, &res);
            res
        })
    }

    /// What the loop knows, for the status.
    pub fn state(&self) -> SyncState {
        self.state.lock().map(|s| s.clone()).unwrap_or_default()
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
        let now = Instant::now();
        match &res {
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
        res
    }

    fn cycle_locked(&self, serial: &Serial<'_>, cy: &mut Cycle, commit: bool) -> Result<()> {
        self.finish_marker(serial, cy)?;
        let built = if commit { self.engine.build(serial)? } else { None };
        let Some(b) = built else {
            let poll = self.poll(&mut cy.cache)?;
            self.polled(&poll);
            return self.judge(serial, cy, &poll.refs);
        };
        cy.interval.activity(Instant::now());
        let poll = self.engine.publish(serial, b, &mut cy.cache)?.poll;
        self.polled(&poll);
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

    /// Finishes a marker left set (see `recover.rs`), judging the poll it
    /// made on the way.
    fn finish_marker(&self, serial: &Serial<'_>, cy: &mut Cycle) -> Result<()> {
        let done = recover::finish(&self.local, &self.engine, &mut cy.cache)?;
        if let Some(p) = &done.poll {
            self.polled(p);
            self.judge(serial, cy, &p.refs)?;
        }
        if let Some(target) = done.fast_forward {
            self.fast_forward(serial, target)?;
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

    /// Notes a successful poll in the state.
    fn polled(&self, _poll: &RefPoll) {
        if let Ok(mut st) = self.state.lock() {
            st.last_poll = Some(SystemTime::now());
            st.polls += 1;
        }
    }

    /// Decides the heads of a poll's `refs` (§2.5) when they, this drive's
    /// head or what blocks a fast-forward changed since the last decision:
    /// an idle poll reads nothing more.
    fn judge(&self, serial: &Serial<'_>, cy: &mut Cycle, refs: &HashMap<DeviceId, RefRecord>) -> Result<()> {
        let me = self.engine.device();
        let others: BTreeSet<CommitId> = refs.iter().filter(|(d, _)| **d != me).map(|(_, r)| r.commit).collect();
        let paused = self.engine.is_paused();
        let (ours, pending) = self.local.db.read(|c| {
            let pending = dirty::any_change_or_unbuilt_folder(c, state::committed_epoch(c)?)?;
            Ok((state::head(c)?, pending))
        })?;
        let key = Judged {
            others: others.clone(),
            ours,
            blocked: pending || paused,
        };
        if cy.judged.as_ref() == Some(&key) {
            return Ok(());
        }
        let others: Vec<CommitId> = others.into_iter().collect();
        let heads = heads::decide(&self.local, ours, &others)?;
        let waiting = self.waiting(&heads, refs)?;
        if !waiting.is_empty() {
            cy.interval.activity(Instant::now());
        }
        if let Ok(mut st) = self.state.lock() {
            st.waiting = waiting;
        }
        if let Heads::Ahead(target) = heads {
            if !key.blocked {
                self.fast_forward(serial, target)?;
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

    /// Takes in `target`, another device's head that this drive's head is
    /// behind, with no local change pending and not paused: a fast-forward
    /// (§4.2, no commit written, this device's ref stays).
    ///
    /// Not applied yet: the apply of step 17 (`sync::apply::apply`) is
    /// wired in here. Until then the head stays waiting in
    /// [`SyncState::waiting`], and a remount rebuilds from it
    /// (`Local::open`). The wiring: set `state::Applying { head: target,
    /// publish: false, epoch: None }` durably, then apply with the base
    /// tree = this drive's head's root (`heads::commit_row`), `since` =
    /// the committed epoch (`state::committed_epoch`), `committed: None`;
    /// the apply's transaction sets the head and clears the marker; its
    /// kernel calls go out after, with no lock held.
    fn fast_forward(&self, _serial: &Serial<'_>, target: CommitId) -> Result<()> {
        tracing::debug!("another device's snapshot {target} is ahead of this drive; it waits for the apply");
        Ok(())
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
                let answers = s.engine.begin_run();
                let res = s.cycle(true);
                s.engine.end_run(answers, &res);
            }
            Wait::Timeout => {
                if Instant::now() >= s.next_poll() {
                    let _ = s.cycle(false);
                }
            }
        }
    }
}

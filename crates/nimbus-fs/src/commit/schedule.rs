//! When to commit: after a quiet time following the last change (at most
//! [`MAX_DELAY`] after the first), when asked, or never while paused; and
//! what is pending for the vault.
//!
//! The quiet time is the drive's commit delay (5 s by default), or a fifth
//! of it ([`CLOSE_DIVISOR`]: 1 s by default) once a file that was written
//! has been closed since the last commit began: a closed file is most
//! likely finished, and another device should see it soon (docs/SYNC.md
//! §1.5). A fifth rather than a fixed second, so a longer delay chosen to
//! gather changes (and tests that commit only when they ask) keeps its
//! meaning. Changes after that close
//! keep the short quiet time, measured from the last of them: tools set a
//! copy's times and mode after closing it (`cp -p`), or rename a finished
//! temporary file into place (`rsync`, editors), and these must not put the
//! long wait back. A file written without pause and never closed (a log)
//! keeps the long one. The short quiet time never brings a commit closer
//! than the commit delay after the previous one began: a workload that
//! pauses for longer than the short time but less than the delay (`curl …
//! | tar -x`, a build) still commits at most once per delay, not at every
//! pause, so saves stay as few (and as telling, docs/SECURITY.md M5) as
//! the delay promises.
//!
//! No thread runs here: the sync loop (`sync/`) waits with
//! [`Engine::wait_until`] and runs each commit between
//! [`Engine::begin_run`] and [`Engine::end_run`].

use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use super::{Engine, Inner, Schedule, Wait};
use crate::cache::sealed_file;
use crate::error::{lock_err, ErrorKind, Failure, Result};
use crate::meta::{dentries, dirty, inodes, state};
use crate::types::*;

/// A change waits at most this long for a quiet moment before it is
/// committed anyway.
pub(crate) const MAX_DELAY: Duration = Duration::from_secs(60);

/// The quiet time once a written file was closed is the commit delay
/// divided by this.
pub(crate) const CLOSE_DIVISOR: u32 = 5;

impl Inner {
    /// When the quiet-time rule makes a commit due; `None` while nothing
    /// waits or while paused.
    fn due_by_quiet(&self, delay: Duration) -> Option<Instant> {
        if self.paused {
            return None;
        }
        let (last, first) = (self.last_touch?, self.first_touch?);
        let by_delay = last + delay;
        let due = if self.closed {
            let short = last + delay / CLOSE_DIVISOR;
            let floor = self.last_start.map_or(short, |s| s + delay);
            short.max(floor).min(by_delay)
        } else {
            by_delay
        };
        Some(due.min(first + MAX_DELAY))
    }

    /// When the next commit is due: `now` when one was asked for, else
    /// by the quiet-time rule. The caller's `now`, so that "due at once"
    /// compares as due with it.
    fn due(&self, delay: Duration, now: Instant) -> Option<Instant> {
        if self.requested > self.finished {
            return Some(now);
        }
        self.due_by_quiet(delay)
    }
}

impl Schedule {
    pub fn new(delay: Duration) -> Schedule {
        Schedule {
            inner: Mutex::new(Inner::default()),
            cv: Condvar::new(),
            delay,
        }
    }

    /// When the next commit is due (a time already past means now); `None`
    /// while nothing waits for one, or while paused and nothing was asked.
    /// For the sync loop's status; it waits with [`Engine::wait_until`],
    /// which asks `Inner::due` under the lock it waits with.
    pub fn due(&self) -> Option<Instant> {
        self.inner.lock().ok()?.due(self.delay, Instant::now())
    }

    /// A file that was written has been closed: what waits is committed
    /// after the short quiet time (see the module comment). Nothing waits,
    /// nothing changes (the close came after a commit took its changes).
    pub fn closed(&self) {
        if let Ok(mut i) = self.inner.lock() {
            if i.last_touch.is_some() {
                i.closed = true;
            }
        }
        self.cv.notify_all();
    }

    /// Notes a change (restarts the quiet-time clock).
    pub fn touched(&self) {
        if let Ok(mut i) = self.inner.lock() {
            let now = Instant::now();
            i.last_touch = Some(now);
            i.first_touch.get_or_insert(now);
            drop(i);
        }
    }

    pub fn stop(&self) {
        if let Ok(mut i) = self.inner.lock() {
            i.stop = true;
        }
        self.cv.notify_all();
    }

    /// Remembers which of the files a commit `tried` it set aside.
    pub(super) fn note_set_aside(&self, tried: &[Ino], set_aside: &[Ino]) -> Result<()> {
        let mut i = self.inner.lock().map_err(|_| lock_err())?;
        for ino in tried {
            i.set_aside.remove(ino);
        }
        i.set_aside.extend(set_aside.iter().copied());
        Ok(())
    }
}

impl Engine {
    /// Notes a change (restarts the quiet-time clock).
    pub fn touched(&self) {
        self.sched.touched();
    }

    /// Notes the close of a file that was written (see `Schedule::closed`).
    pub fn closed(&self) {
        self.sched.closed();
    }

    /// When the next commit is due (see `Schedule::due`): for the status
    /// (docs/SYNC.md §5.1, step 21); the loop waits with `wait_until`.
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn due(&self) -> Option<Instant> {
        self.sched.due()
    }

    /// Stops the sync loop's waiting (after the commit running now): from
    /// now on [`Engine::wait_until`] answers [`Wait::Stopped`] and
    /// [`Engine::sync_now`] commits on its caller's thread.
    pub fn stop(&self) {
        self.sched.stop();
    }

    /// Waits until a commit is due (asked for, or by the quiet-time rule),
    /// the engine stops, or `until` passes, whichever comes first. The
    /// sync loop's wait (docs/SYNC.md §4.1): `until` is its next poll.
    pub fn wait_until(&self, until: Instant) -> Wait {
        let Ok(mut i) = self.sched.inner.lock() else {
            return Wait::Stopped;
        };
        loop {
            if i.stop {
                return Wait::Stopped;
            }
            let now = Instant::now();
            if i.due(self.sched.delay, now).is_some_and(|d| d <= now) {
                return Wait::Due;
            }
            if until <= now {
                return Wait::Timeout;
            }
            let due = i.due(self.sched.delay, now).unwrap_or(until);
            i = match self.sched.cv.wait_timeout(i, due.min(until) - now) {
                Ok((g, _)) => g,
                Err(_) => return Wait::Stopped,
            };
        }
    }

    /// A commit begins (the sync loop's, for a due commit): what waited is
    /// now its business. Returns the asked-for commits it answers, for
    /// [`Engine::end_run`].
    pub fn begin_run(&self) -> u64 {
        let Ok(mut i) = self.sched.inner.lock() else { return 0 };
        i.running = true;
        i.last_start = Some(Instant::now());
        i.last_touch = None;
        i.first_touch = None;
        i.closed = false;
        i.requested
    }

    /// The commit begun by [`Engine::begin_run`] ended with `res`: wakes
    /// the callers of `sync_now` it answers, keeps the changes waiting if
    /// it failed, and remembers the outcome for `pending`.
    pub fn end_run(&self, answers: u64, res: &Result<()>) {
        if let Err(e) = res {
            tracing::error!("committing to the vault failed: {e}; will retry");
        }
        let Ok(mut i) = self.sched.inner.lock() else { return };
        i.running = false;
        i.finished = i.finished.max(answers);
        if res.is_err() {
            // Retry later: keep the changes marked as waiting.
            let now = Instant::now();
            i.last_touch.get_or_insert(now);
            i.first_touch.get_or_insert(now);
        }
        i.offline = matches!(res, Err(e) if e.kind() == ErrorKind::Unavailable);
        if res.is_ok() {
            i.last_success = Some(std::time::SystemTime::now());
        }
        i.last_result = Some(res.as_ref().map(|_| ()).map_err(Failure::of));
        drop(i);
        self.sched.cv.notify_all();
    }

    /// Pauses commits after quiet periods (`true`) or resumes them. Changes
    /// keep going into staging meanwhile; an asked-for commit
    /// (`sync_now`, an `fsync` of the root, unmounting) still runs.
    pub fn set_paused(&self, paused: bool) {
        if let Ok(mut i) = self.sched.inner.lock() {
            i.paused = paused;
        }
        self.sched.cv.notify_all();
    }

    pub fn is_paused(&self) -> bool {
        self.sched.inner.lock().map(|i| i.paused).unwrap_or(false)
    }

    /// Commits now and waits for it. Returns the error of that commit.
    /// The sync loop runs it; once the engine has stopped (no loop),
    /// `here` runs it on this thread.
    pub fn sync_now(&self, here: impl FnOnce() -> Result<()>) -> Result<()> {
        let want = {
            let mut i = self.sched.inner.lock().map_err(|_| lock_err())?;
            if i.stop {
                drop(i);
                return here();
            }
            i.requested += 1;
            i.requested
        };
        self.sched.cv.notify_all();
        let mut i = self.sched.inner.lock().map_err(|_| lock_err())?;
        while i.finished < want && !i.stop {
            i = self.sched.cv.wait(i).map_err(|_| lock_err())?;
        }
        if i.finished < want {
            drop(i);
            return here();
        }
        match &i.last_result {
            Some(Err(f)) => Err(f.to_error()),
            _ => Ok(()),
        }
    }

    /// What is waiting for the vault.
    pub fn pending(&self) -> Result<Pending> {
        let (files, dirty) = self.local.db.read(|c| {
            let committed = state::committed_epoch(c)?;
            let files = dirty::count_changed_files(c, committed)?;
            let root = inodes::get(c, ROOT)?;
            Ok((files, root.dirty_epoch > committed || root.tree_id.is_none()))
        })?;
        let mut staged_bytes = 0;
        if let Ok(rd) = std::fs::read_dir(&self.local.staging_dir) {
            for e in rd.flatten() {
                if let Ok(m) = e.metadata() {
                    staged_bytes += sealed_file::disk_usage(&m);
                }
            }
        }
        let (syncing, last_error, offline, last_success, set_aside) = self
            .sched
            .inner
            .lock()
            .map(|i| {
                (
                    i.running,
                    match &i.last_result {
                        Some(Err(f)) => Some(f.message.clone()),
                        _ => None,
                    },
                    i.offline,
                    i.last_success,
                    i.set_aside.clone(),
                )
            })
            .unwrap_or_default();
        let set_aside = self.local.db.read(|c| {
            let mut out = Vec::new();
            for ino in set_aside {
                if let Some(p) = dentries::path_of(c, ino)? {
                    out.push(p);
                }
            }
            Ok(out)
        })?;
        Ok(Pending {
            files,
            staged_bytes,
            dirty,
            syncing,
            last_error,
            pid: std::process::id(),
            offline,
            last_sync: last_success
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_secs() as i64),
            set_aside,
            // The sync's part: `Fs::pending` fills it.
            conflicts: 0,
            waiting_for: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DELAY: Duration = Duration::from_secs(5);

    fn touched_at(t: Instant) -> Inner {
        Inner {
            last_touch: Some(t),
            first_touch: Some(t),
            ..Inner::default()
        }
    }

    #[test]
    fn nothing_waiting_is_never_due() {
        assert_eq!(Inner::default().due(DELAY, Instant::now()), None);
    }

    #[test]
    fn a_change_is_due_after_the_commit_delay() {
        let t = Instant::now();
        assert_eq!(touched_at(t).due(DELAY, t), Some(t + DELAY));
    }

    #[test]
    fn a_closed_written_file_is_due_after_one_second() {
        let t = Instant::now();
        let mut i = touched_at(t);
        i.closed = true;
        assert_eq!(i.due(DELAY, t), Some(t + Duration::from_secs(1)));
        // The fastest setting stays immediate; a long delay stays long.
        assert_eq!(i.due(Duration::ZERO, t), Some(t));
        assert_eq!(i.due(Duration::from_secs(3600), t), Some(t + MAX_DELAY));
        // Changes after the close (cp -p's chmod, a rename into place) keep
        // the short quiet time, from the last of them.
        i.last_touch = Some(t + Duration::from_millis(700));
        assert_eq!(i.due(DELAY, t), Some(t + Duration::from_millis(1700)));
    }

    #[test]
    fn the_short_quiet_time_commits_at_most_once_per_delay() {
        let t = Instant::now();
        let mut i = touched_at(t);
        i.closed = true;
        // The last commit began 2 s ago: not before 5 s after it.
        i.last_start = Some(t - Duration::from_secs(2));
        assert_eq!(i.due(DELAY, t), Some(t + Duration::from_secs(3)));
        // Long ago: the short quiet time.
        i.last_start = Some(t - Duration::from_secs(10));
        assert_eq!(i.due(DELAY, t), Some(t + Duration::from_secs(1)));
        // Never later than the plain quiet time would be.
        i.last_start = Some(t + Duration::from_secs(30));
        assert_eq!(i.due(DELAY, t), Some(t + DELAY));
        // Without a close, the last commit's start does not matter.
        i.closed = false;
        i.last_start = Some(t - Duration::from_secs(2));
        assert_eq!(i.due(DELAY, t), Some(t + DELAY));
    }

    #[test]
    fn a_busy_drive_commits_after_max_delay() {
        let t = Instant::now();
        let mut i = touched_at(t);
        i.last_touch = Some(t + Duration::from_secs(59));
        assert_eq!(i.due(DELAY, t), Some(t + MAX_DELAY));
        i.closed = true;
        assert_eq!(i.due(DELAY, t), Some(t + MAX_DELAY));
    }

    #[test]
    fn paused_is_due_only_when_asked() {
        let t = Instant::now();
        let mut i = touched_at(t);
        i.paused = true;
        assert_eq!(i.due(DELAY, t), None);
        i.requested = 1;
        // Due at the caller's now, so the commit thread's `due <= now` holds.
        let now = t + Duration::from_secs(2);
        assert_eq!(i.due(DELAY, now), Some(now));
    }

    #[test]
    fn a_close_with_nothing_waiting_changes_nothing() {
        let s = Schedule::new(DELAY);
        s.closed();
        assert_eq!(s.due(), None);
        s.touched();
        let due = s.due().expect("a change waits");
        assert!(
            due >= Instant::now() + DELAY - Duration::from_secs(1),
            "the close before the change counted"
        );
        s.closed();
        assert!(s.due().expect("a change waits") <= Instant::now() + Duration::from_secs(1));
    }
}

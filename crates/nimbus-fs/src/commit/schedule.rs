//! When to commit: after a quiet time following the last change (at most
//! [`MAX_DELAY`] after the first), when asked, or never while paused; and
//! what is pending for the vault.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Engine, Schedule};
use crate::cache::sealed_file;
use crate::error::{lock_err, ErrorKind, Failure, Result};
use crate::meta::{dentries, dirty, inodes, state};
use crate::types::*;

/// A change waits at most this long for a quiet moment before it is
/// committed anyway.
pub(crate) const MAX_DELAY: Duration = Duration::from_secs(60);

impl Schedule {
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

    /// Stops the background thread (after the commit running now).
    pub fn stop(&self) {
        self.sched.stop();
    }

    /// Starts the background thread that commits after quiet periods.
    pub fn start(self: &Arc<Engine>) -> std::thread::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        std::thread::Builder::new()
            .name("nimbus-sync".into())
            .spawn(move || loop {
                let Some(engine) = weak.upgrade() else { return };
                if !engine.wait_for_work() {
                    return;
                }
                engine.run_commit();
            })
            .unwrap_or_else(|e| panic!("cannot start a thread: {e}"))
    }

    /// Waits until a commit is due; false when stopping.
    fn wait_for_work(&self) -> bool {
        let delay = self.opts.commit_delay;
        let Ok(mut i) = self.sched.inner.lock() else {
            return false;
        };
        loop {
            if i.stop {
                return false;
            }
            if i.requested > i.finished {
                return true;
            }
            let due = match (i.last_touch, i.first_touch) {
                _ if i.paused => None,
                (Some(l), Some(f)) => {
                    let now = Instant::now();
                    if now >= l + delay || now >= f + MAX_DELAY {
                        return true;
                    }
                    Some((l + delay).min(f + MAX_DELAY) - now)
                }
                _ => None,
            };
            let wait = due.unwrap_or(Duration::from_secs(3600)).min(Duration::from_secs(1));
            i = match self.sched.cv.wait_timeout(i, wait) {
                Ok((g, _)) => g,
                Err(_) => return false,
            };
        }
    }

    fn run_commit(&self) {
        let target = {
            let Ok(mut i) = self.sched.inner.lock() else { return };
            i.running = true;
            i.last_touch = None;
            i.first_touch = None;
            i.requested
        };
        let res = self.commit_once();
        if let Err(e) = &res {
            tracing::error!("committing to the vault failed: {e}; will retry");
        }
        let Ok(mut i) = self.sched.inner.lock() else { return };
        i.running = false;
        i.finished = i.finished.max(target);
        if res.is_err() {
            // Retry later: keep the changes marked as waiting.
            let now = Instant::now();
            i.last_touch.get_or_insert(now);
            i.first_touch.get_or_insert(now);
        }
        i.offline = matches!(&res, Err(e) if e.kind() == ErrorKind::Unavailable);
        if res.is_ok() {
            i.last_success = Some(std::time::SystemTime::now());
        }
        i.last_result = Some(res.map(|_| ()).map_err(|e| Failure::of(&e)));
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
    pub fn sync_now(&self) -> Result<()> {
        let want = {
            let mut i = self.sched.inner.lock().map_err(|_| lock_err())?;
            if i.stop {
                drop(i);
                // No background thread: commit on this one.
                return self.commit_once().map(|_| ());
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
            return self.commit_once().map(|_| ());
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
        })
    }
}

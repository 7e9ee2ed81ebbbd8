//! The sync engine's commit half: turning the working copy's changes into
//! a snapshot in the vault. `schedule.rs` decides when (quiet time, a
//! shorter one after a written file is closed, pause, asked-for commits)
//! and reports what is pending, `run.rs` is one commit in two halves:
//! `build` (upload, trees, the commit object, nothing published) and
//! `publish` (the ref, then the local head), so that the sync cycle can
//! merge other devices' heads between the two (docs/SYNC.md §4.1);
//! `trees.rs` builds folder trees, `rebuild.rs` builds the working copy
//! from the vault. None of it knows the POSIX face: it works on the shared
//! local state and the file nodes.
//!
//! Change tracking uses epochs. Every change stamps the changed file (for
//! content) or the folders holding it (for metadata), and all their
//! ancestors, with the current epoch `E`. A commit first moves the epoch to
//! `E + 1`, so changes made while it runs carry `E + 1`; it uploads every
//! file whose content changed, then rebuilds the tree of every folder whose
//! stamp is newer than the last committed epoch, reusing the stored tree of
//! every other folder, and saves the commit (`build`); then it writes the
//! ref and records the new head (`publish`). Only then does it
//! record `E` as committed: a commit that fails halfway leaves every stamp
//! newer than the committed epoch, so the next attempt redoes it all (and
//! deduplication makes the redone uploads cheap).
//!
//! Invariant: a folder stamped with epoch `e` has all its ancestors stamped
//! with `e` or later; this lets marking stop at the first folder already
//! stamped with the current epoch.
//!
//! Staging is dropped for a file only when no write touched it since the
//! commit began, after its blobs are in the vault, and after the database
//! says so durably.
//!
//! A file read for upload is read piece by piece without holding its lock
//! throughout, so a write during the read could mix old and new bytes. A
//! file changed since the commit began is therefore left out of it (the
//! snapshot keeps its previous version) and goes into the next commit.
//!
//! One file never stops the whole drive: a file whose changes cannot be
//! read back (a staging block that fails authentication after a torn
//! write or a damaged disk, or a stored blob the store lost) is *set
//! aside*: left out of the commit, kept here exactly as it is, and listed
//! in [`crate::Pending::set_aside`] for the person; every other change commits.
//! A file that has gone (deleted while the commit ran) is simply not in
//! the snapshot.

use nimbus_vault::{Commit, CommitId, DeviceId};
use std::collections::BTreeSet;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::Duration;
use std::time::Instant;

use crate::content::Nodes;
use crate::error::{lock_err, Failure, Result};
use crate::local::Local;
use crate::snapshots::Snapshots;
use crate::types::Ino;

pub(crate) mod rebuild;
mod run;
mod schedule;
mod trees;

/// Called after each commit with its id and the ref's update number.
pub(crate) type OnCommit = Box<dyn Fn(CommitId, u64) + Send + Sync>;

/// What the engine needs to know of the drive's options.
pub(crate) struct CommitOptions {
    /// This device's id in the vault.
    pub device: DeviceId,
    /// This device's name, written into each commit.
    pub device_name: String,
    /// The newest update number of this device's ref seen before mounting.
    pub ref_seen: u64,
    /// Commit this long after the last change.
    pub commit_delay: Duration,
    pub on_commit: Option<OnCommit>,
}

/// The commit engine of one drive.
pub(crate) struct Engine {
    local: Arc<Local>,
    nodes: Arc<Nodes>,
    snapshots: Arc<Snapshots>,
    sched: Schedule,
    /// Serialises commits.
    serial: Mutex<()>,
    opts: CommitOptions,
    /// This device's name as the next commit carries it: the options'
    /// until a rename (`Engine::set_device_name`).
    name: std::sync::RwLock<String>,
    /// Run between two pieces of a file read for upload (tests).
    between_pieces: OnceLock<Box<dyn Fn(Ino) + Send + Sync>>,
}

impl Engine {
    pub fn new(local: Arc<Local>, nodes: Arc<Nodes>, snapshots: Arc<Snapshots>, opts: CommitOptions) -> Engine {
        Engine {
            sched: Schedule::new(opts.commit_delay),
            local,
            nodes,
            snapshots,
            serial: Mutex::new(()),
            name: std::sync::RwLock::new(opts.device_name.clone()),
            opts,
            between_pieces: OnceLock::new(),
        }
    }

    /// Sets the hook run between two pieces of a file read for upload
    /// (once; a later call is ignored).
    pub fn set_between_pieces(&self, hook: Box<dyn Fn(Ino) + Send + Sync>) {
        let _ = self.between_pieces.set(hook);
    }

    /// Waits for the commit running now, if any, and keeps every other out
    /// until the guard is dropped. `build` and `publish` need it, so that
    /// whatever runs between them (a merge) runs alone too.
    pub fn serial(&self) -> Result<Serial<'_>> {
        self.serial.lock().map(Serial).map_err(|_| lock_err())
    }
}

/// What [`Engine::wait_until`] waited for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wait {
    /// A commit is due.
    Due,
    /// The time asked for came first.
    Timeout,
    /// The engine stopped.
    Stopped,
}

/// Proof that the holder runs the only commit (see [`Engine::serial`]).
pub(crate) struct Serial<'a>(#[allow(dead_code)] MutexGuard<'a, ()>);

/// A commit of the local changes, saved in the vault but not published:
/// no ref names it yet and the local head is still its parent. Made by
/// `Engine::build`, published by `Engine::publish`.
pub(crate) struct Built {
    /// The commit object's id; its trees and blobs are in the vault.
    pub id: CommitId,
    pub commit: Commit,
    /// The epoch the commit covers, recorded as committed on publishing.
    pub e_old: u64,
}

/// What the scheduler knows, under one lock.
#[derive(Default)]
struct Inner {
    /// When the last change happened, and when the oldest uncommitted one did.
    last_touch: Option<Instant>,
    first_touch: Option<Instant>,
    running: bool,
    requested: u64,
    finished: u64,
    last_result: Option<Result<(), Failure>>,
    stop: bool,
    /// No commits by the quiet-time clock; asked-for ones still run.
    paused: bool,
    /// The last commit failed because the store could not be reached.
    offline: bool,
    /// When the last commit reached the vault.
    last_success: Option<std::time::SystemTime>,
    /// Files the last commit set aside (see the module comment).
    set_aside: BTreeSet<Ino>,
    /// A file that was written was closed since the last commit began: the
    /// quiet time is the short one (`schedule::CLOSE_DIVISOR`).
    closed: bool,
    /// When the last commit began: the short quiet time never brings the
    /// next one closer than the commit delay after it.
    last_start: Option<Instant>,
}

/// The scheduler's state (`schedule.rs` runs it).
struct Schedule {
    inner: Mutex<Inner>,
    cv: Condvar,
    /// The quiet time after a change (the drive's commit delay).
    delay: Duration,
}

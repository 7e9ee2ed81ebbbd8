//! The sync engine's commit: turning the working copy's changes into a
//! snapshot in the vault.
//!
//! Change tracking uses epochs. Every change stamps the changed file (for
//! content) or the folders holding it (for metadata), and all their
//! ancestors, with the current epoch `E`. A commit first moves the epoch to
//! `E + 1`, so changes made while it runs carry `E + 1`; it uploads every
//! file whose content changed, then rebuilds the tree of every folder whose
//! stamp is newer than the last committed epoch, reusing the stored tree of
//! every other folder, and publishes commit and ref. Only then does it
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
//! in [`Pending::set_aside`] for the person; every other change commits.
//! A file that has gone (deleted while the commit ran) is simply not in
//! the snapshot.

use nimbus_vault::chunker::{self, ChunkReadError};
use nimbus_vault::{BlobKind, Commit, CommitId, Entry, EntryKind, Saver, Timestamp, Tree};
use std::collections::{BTreeSet, HashMap};
use std::io::Read;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::cache::sealed_file::SealedFile;
use crate::error::{lock_err, ErrorKind, Failure, FsError, Result};
use crate::fs::{Fs, Node};
use crate::meta::{dentries, dirty, inodes, state, xattrs};
use crate::types::*;

/// A change waits at most this long for a quiet moment before it is
/// committed anyway.
pub const MAX_DELAY: Duration = Duration::from_secs(60);

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
}

#[derive(Default)]
pub struct SyncState {
    inner: Mutex<Inner>,
    cv: Condvar,
}

impl SyncState {
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
}

impl Fs {
    /// Starts the background thread that commits after quiet periods.
    pub fn start_sync(self: &Arc<Fs>) -> std::thread::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        std::thread::Builder::new()
            .name("nimbus-sync".into())
            .spawn(move || loop {
                let Some(fs) = weak.upgrade() else { return };
                if !fs.wait_for_work() {
                    return;
                }
                fs.run_commit();
            })
            .unwrap_or_else(|e| panic!("cannot start a thread: {e}"))
    }

    /// Waits until a commit is due; false when stopping.
    fn wait_for_work(&self) -> bool {
        let delay = self.opts.commit_delay;
        let Ok(mut i) = self.sync.inner.lock() else {
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
            i = match self.sync.cv.wait_timeout(i, wait) {
                Ok((g, _)) => g,
                Err(_) => return false,
            };
        }
    }

    fn run_commit(&self) {
        let target = {
            let Ok(mut i) = self.sync.inner.lock() else { return };
            i.running = true;
            i.last_touch = None;
            i.first_touch = None;
            i.requested
        };
        let res = self.commit_once();
        if let Err(e) = &res {
            tracing::error!("committing to the vault failed: {e}; will retry");
        }
        let Ok(mut i) = self.sync.inner.lock() else { return };
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
        self.sync.cv.notify_all();
    }

    /// Pauses commits after quiet periods (`true`) or resumes them. Changes
    /// keep going into staging meanwhile; an asked-for commit
    /// ([`Fs::sync_now`], an `fsync` of the root, unmounting) still runs.
    pub fn set_paused(&self, paused: bool) {
        if let Ok(mut i) = self.sync.inner.lock() {
            i.paused = paused;
        }
        self.sync.cv.notify_all();
    }

    pub fn is_paused(&self) -> bool {
        self.sync.inner.lock().map(|i| i.paused).unwrap_or(false)
    }

    /// Commits now and waits for it. Returns the error of that commit.
    pub fn sync_now(&self) -> Result<()> {
        let want = {
            let mut i = self.sync.inner.lock().map_err(|_| lock_err())?;
            if i.stop {
                drop(i);
                // No background thread: commit on this one.
                return self.commit_once().map(|_| ());
            }
            i.requested += 1;
            i.requested
        };
        self.sync.cv.notify_all();
        let mut i = self.sync.inner.lock().map_err(|_| lock_err())?;
        while i.finished < want && !i.stop {
            i = self.sync.cv.wait(i).map_err(|_| lock_err())?;
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
        let (files, dirty) = self.db.read(|c| {
            let committed = state::committed_epoch(c)?;
            let files = dirty::count_changed_files(c, committed)?;
            let root = inodes::get(c, ROOT)?;
            Ok((files, root.dirty_epoch > committed || root.tree_id.is_none()))
        })?;
        let mut staged_bytes = 0;
        if let Ok(rd) = std::fs::read_dir(&self.staging_dir) {
            for e in rd.flatten() {
                if let Ok(m) = e.metadata() {
                    staged_bytes += crate::cache::sealed_file::disk_usage(&m);
                }
            }
        }
        let (syncing, last_error, offline, last_success, set_aside) = self
            .sync
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
        let set_aside = self.db.read(|c| {
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

    /// One commit. Returns the new commit's id, or `None` if nothing changed.
    pub(crate) fn commit_once(&self) -> Result<Option<CommitId>> {
        let _serial = self.sync_lock.lock().map_err(|_| lock_err())?;
        let e_old = self.epoch.fetch_add(1, Ordering::AcqRel);
        let (committed, changed_files, root_dirty) = self.db.write(|c| {
            state::set_epoch(c, e_old + 1)?;
            let committed = state::committed_epoch(c)?;
            let files = dirty::changed_files(c, committed)?;
            let root = inodes::get(c, ROOT)?;
            Ok((committed, files, root.dirty_epoch > committed || root.tree_id.is_none()))
        })?;
        if !root_dirty && changed_files.is_empty() {
            return Ok(None);
        }
        let _rt = self.rt.enter();
        let saver = Saver::new(&self.vault);
        if let Some(hook) = self.blobs.write_through() {
            saver.set_data_hook(hook);
        }
        let mut uploaded: HashMap<Ino, (ContentList, u64)> = HashMap::new();
        let mut failure = None;
        let mut tried = Vec::new();
        let mut set_aside = Vec::new();
        for ino in changed_files {
            tried.push(ino);
            let node = match self.node(ino) {
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            };
            let res = self.upload_file(&node, &saver);
            drop(node);
            self.release_node(ino);
            match res {
                // Gone, or changed while it was read: not in this commit
                // (a change keeps it dirty for the next one).
                Ok(v) => match self.db.read(|c| inodes::get_opt(c, ino))? {
                    Some(row) if row.dirty_epoch <= e_old && row.nlink > 0 => {
                        uploaded.insert(ino, v);
                    }
                    _ => {}
                },
                // Deleted while it was read; any other "not found" is a
                // real failure, not a reason to leave the file out.
                Err(e) if e.kind() == ErrorKind::NotFound && self.is_gone(ino)? => {}
                Err(e) if e.kind() == ErrorKind::Corrupt => {
                    // Never the file's name in the log: its number only.
                    tracing::warn!(
                        "file {ino} was set aside: its changes on this device cannot be read back ({e}); \
                         it is kept here as it is, and every other change is committed"
                    );
                    set_aside.push(ino);
                }
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        if failure.is_none() {
            self.keep_set_aside(&tried, &set_aside)?;
        }
        let root = match failure {
            Some(e) => Err(e),
            None => self.build_tree(ROOT, committed, &saver, &uploaded, 0),
        };
        // Even after a failure, finish: what did upload gets indexed.
        let finished = self.rt.block_on(saver.finish());
        let root = root?;
        finished?;
        self.adopt_uploads(&uploaded, e_old)?;

        let (head, extra, ref_seen, files, bytes) = self.db.read(|c| {
            let (files, bytes) = inodes::file_totals(c)?;
            let seen = state::ref_seen(c)?.max(self.opts.ref_seen);
            Ok((state::head(c)?, state::extra_parent(c)?, seen, files, bytes))
        })?;
        let commit = Commit {
            root,
            parents: head.into_iter().chain(extra.filter(|e| Some(*e) != head)).collect(),
            device: self.opts.device,
            time: Timestamp::now(),
            message: "drive".into(),
            files,
            bytes,
        };
        let cid = self.rt.block_on(self.vault.write_commit(&commit))?;
        let seq = self
            .rt
            .block_on(self.vault.write_ref(&self.opts.device, cid, ref_seen))?;
        self.db.write(|c| {
            state::set_head(c, &cid)?;
            state::set_extra_parent(c, None)?;
            state::set_ref_seen(c, seq)?;
            state::set_committed_epoch(c, e_old)
        })?;
        self.db.commit(true)?;
        self.snapshots.invalidate();
        if let Some(cb) = &self.opts.on_commit {
            cb(cid, seq);
        }
        Ok(Some(cid))
    }

    /// Whether a file has no name left in the drive.
    fn is_gone(&self, ino: Ino) -> Result<bool> {
        Ok(self.db.read(|c| inodes::get_opt(c, ino))?.is_none_or(|r| r.nlink == 0))
    }

    /// Keeps the files set aside by this commit pending (stamped with the
    /// epoch after it, with their folders, as a write would) and remembers
    /// them for [`Fs::pending`]. No quiet-time clock is restarted: a damaged
    /// file is tried again with the next change or asked-for commit, not in
    /// a loop.
    fn keep_set_aside(&self, tried: &[Ino], set_aside: &[Ino]) -> Result<()> {
        if !set_aside.is_empty() {
            let epoch = self.cur_epoch();
            self.db.write(|c| {
                // Folders up to the first one already stamped: the
                // invariant in the module comment holds above it.
                for &ino in set_aside {
                    dirty::stamp(c, ino, epoch)?;
                    dirty::mark_parents(c, ino, epoch)?;
                }
                Ok(())
            })?;
        }
        let mut i = self.sync.inner.lock().map_err(|_| lock_err())?;
        for ino in tried {
            i.set_aside.remove(ino);
        }
        i.set_aside.extend(set_aside.iter().copied());
        Ok(())
    }

    /// Chunks and saves a file's current content. Unchanged stored blobs
    /// before the first changed block are kept as they are.
    fn upload_file(&self, node: &Arc<Node>, saver: &Saver) -> Result<(ContentList, u64)> {
        let (keep, from) = {
            let st = node.state.read().map_err(|_| lock_err())?;
            if st.kind != EntryKind::File {
                return Ok((ContentList::default(), 0));
            }
            let first_dirty = match &st.staging {
                Some(s) => first_staged_offset(s),
                None => st.base_len,
            };
            let limit = first_dirty.min(st.base_len).min(st.size);
            let mut keep = Vec::new();
            let mut at = 0u64;
            for (i, (id, len)) in st.base.list.0.iter().enumerate() {
                if st.base.ends[i] > limit {
                    break;
                }
                keep.push((*id, *len));
                at = st.base.ends[i];
            }
            (keep, at)
        };
        let params = self.vault.params().chunker;
        let seed = self.vault.chunker_seed_for_saving();
        let mut reader = FileReader {
            fs: self,
            node,
            at: from,
            from,
            err: None,
        };
        let mut list = keep;
        let mut total = from;
        chunker::chunk_reader(&params, seed, &mut reader, |chunk| {
            let id = saver.save_blob_blocking(BlobKind::Data, chunk)?;
            list.push((id, chunk.len() as u32));
            total += chunk.len() as u64;
            Ok::<(), nimbus_vault::VaultError>(())
        })
        .map_err(|e| match e {
            // The drive's own error, so its kind (damaged, gone) survives.
            ChunkReadError::Io(e) => match reader.err.take() {
                Some(fe) => fe,
                None => FsError::io("reading a changed file for upload", e),
            },
            ChunkReadError::Sink(e) => FsError::Vault(e),
        })?;
        Ok((ContentList(list), total))
    }

    /// After the blobs are in the vault: files not written since the
    /// commit began now read from them, and their staging goes.
    fn adopt_uploads(&self, uploaded: &HashMap<Ino, (ContentList, u64)>, e_old: u64) -> Result<()> {
        let mut dropped = Vec::new();
        for (&ino, (list, len)) in uploaded {
            let node = match self.node(ino) {
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            {
                let mut st = node.state.write().map_err(|_| lock_err())?;
                let unchanged = self.db.write(|c| {
                    let Some(row) = inodes::get_opt(c, ino)? else {
                        return Ok(false);
                    };
                    if row.dirty_epoch > e_old || row.size != *len {
                        return Ok(false);
                    }
                    inodes::adopt_content(c, ino, list, *len)?;
                    Ok(true)
                })?;
                if unchanged {
                    if let Some(s) = st.staging.take() {
                        dropped.push(s.id());
                    }
                    st.base = Arc::new(Content::new(list.clone()));
                    st.base_len = *len;
                }
            }
            drop(node);
            self.release_node(ino);
        }
        if !dropped.is_empty() {
            self.db.commit(true)?;
            for id in dropped {
                let _ = std::fs::remove_file(SealedFile::path_for(&self.staging_dir, &id));
            }
        }
        self.refresh_pins()?;
        Ok(())
    }

    /// The tree of folder `dir`, saved; reuses the stored one if unchanged.
    fn build_tree(
        &self,
        dir: Ino,
        committed: u64,
        saver: &Saver,
        uploaded: &HashMap<Ino, (ContentList, u64)>,
        depth: usize,
    ) -> Result<nimbus_vault::BlobId> {
        if depth > 4096 {
            return Err(FsError::new(ErrorKind::InvalidArgument, "folders nested too deep"));
        }
        let (row, children) = self.db.read(|c| {
            let row = inodes::get(c, dir)?;
            if row.dirty_epoch <= committed && row.tree_id.is_some() {
                return Ok((row, None));
            }
            let mut kids = Vec::new();
            for (name, ino) in dentries::children(c, dir)? {
                kids.push((name, inodes::get(c, ino)?, xattrs::all(c, ino)?));
            }
            Ok((row, Some(kids)))
        })?;
        let Some(children) = children else {
            return row
                .tree_id
                .ok_or_else(|| FsError::new(ErrorKind::Io, "a folder's stored tree is missing"));
        };
        let mut tree = Tree::default();
        for (name, r, xa) in children {
            let mut e = Entry {
                name,
                kind: r.kind,
                mode: r.mode,
                uid: r.uid,
                gid: r.gid,
                mtime: r.mtime,
                ctime: r.ctime,
                size: 0,
                file_id: r.file_id,
                xattrs: xa,
                target: r.target.clone(),
                rdev: r.rdev,
                content: Vec::new(),
                subtree: None,
            };
            match r.kind {
                EntryKind::Dir => {
                    e.subtree = Some(self.build_tree(r.ino, committed, saver, uploaded, depth + 1)?);
                }
                EntryKind::File => {
                    let (list, len) = match uploaded.get(&r.ino) {
                        Some((l, n)) => (l.clone(), *n),
                        // Not uploaded in this commit (changed after it
                        // began, or set aside): the version of the last
                        // snapshot, whole. Not cut at `base_len`: a file
                        // truncated since is not that version either.
                        None => (r.content.clone(), r.content.len_bytes()),
                    };
                    e.size = len;
                    e.content = list.0.iter().map(|(id, _)| *id).collect();
                }
                _ => {}
            }
            tree.entries.push(e);
        }
        let id = saver.save_blob_blocking(BlobKind::Tree, &tree.encode())?;
        self.db.write(|c| inodes::set_tree(c, dir, &id))?;
        Ok(id)
    }
}

/// The offset of the first staged block (the staging file is sparse).
fn first_staged_offset(s: &SealedFile) -> u64 {
    #[cfg(target_os = "linux")]
    {
        if let Ok(f) = std::fs::File::open(s.path()) {
            if let Ok(off) = rustix::fs::seek(&f, rustix::fs::SeekFrom::Data(0)) {
                return off / crate::cache::sealed_file::SLOT as u64 * crate::cache::sealed_file::BLOCK as u64;
            }
            // ENXIO: no data at all.
            return u64::MAX;
        }
    }
    let _ = s;
    0
}

/// Reads a file's current content as a stream, taking the node's lock for
/// each piece only, so writers are not held up by an upload.
struct FileReader<'a> {
    fs: &'a Fs,
    node: &'a Arc<Node>,
    at: u64,
    /// Where reading started.
    from: u64,
    /// The error that stopped the read, as the drive reported it.
    err: Option<FsError>,
}

/// Called between two pieces of a file read for upload, with the drive and
/// the file: lets a test write to the file in the middle of a commit.
#[doc(hidden)]
pub type PieceHook = Box<dyn FnMut(&Fs, Ino) + Send>;

static BETWEEN_PIECES: Mutex<Option<PieceHook>> = Mutex::new(None);

/// Sets (or clears) the hook run between two pieces of a file read for
/// upload. For tests only: a deterministic writer racing a commit.
#[doc(hidden)]
pub fn set_between_pieces_hook(hook: Option<PieceHook>) {
    if let Ok(mut h) = BETWEEN_PIECES.lock() {
        *h = hook;
    }
}

impl Read for FileReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.at > self.from {
            if let Ok(mut h) = BETWEEN_PIECES.lock() {
                if let Some(h) = h.as_mut() {
                    h(self.fs, self.node.ino);
                }
            }
        }
        let st = self
            .node
            .state
            .read()
            .map_err(|_| std::io::Error::other("a lock was poisoned"))?;
        if self.at >= st.size {
            return Ok(0);
        }
        let n = (buf.len() as u64).min(st.size - self.at).min(4 << 20) as usize;
        let data = match self.fs.read_state(&st, self.at, n, false) {
            Ok(d) => d,
            Err(e) => {
                let io = std::io::Error::other(e.to_string());
                self.err = Some(e);
                return Err(io);
            }
        };
        buf[..n].copy_from_slice(&data);
        self.at += n as u64;
        Ok(n)
    }
}

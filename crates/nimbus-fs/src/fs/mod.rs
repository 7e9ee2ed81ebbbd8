//! The POSIX face of the drive: [`Fs`], the one type the mount adapters
//! call, and the only place that decides POSIX errors (exists, not empty,
//! read-only...). Split by family: `names.rs`, `attrs.rs`, `files.rs`,
//! `xattrs.rs`, and `control.rs` for Nimbus's own control
//! attributes.
//!
//! Names and metadata live in the database (`meta/`); a file's bytes are
//! its stored content overlaid with the blocks changed since
//! (`content.rs`). Commits run in `commit/`, driven by the sync loop of
//! `sync/`, beside this face, on the same shared local state (`local.rs`).
//!
//! `.snapshots` is reached through one dispatch, at the end of this file:
//! every operation that can land there is decided there, and the family
//! files only ever see the drive's own inodes.
//!
//! Lock order: `handles` or `nodes` (never both) → a node's `state` → the
//! database connection. The commit engine follows the same order.
//! `kernel_refs` is a leaf: nothing else is locked while it is held.

use nimbus_vault::{EntryKind, Timestamp, Vault};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use crate::cache::sealed_file::SealedFile;
use crate::commit::{rebuild, CommitOptions, Engine};
use crate::content::{Node, Nodes};
use crate::error::{ErrorKind, FsError, Result};
use crate::kernel::{KernelCache, KernelLink, KernelRefs};
use crate::local::{CacheLimits, Clock, Local};
use crate::meta::{dentries, dirty, inodes, Conn};
use crate::snapshots::Snapshots;
use crate::sync::{ConflictCopy, MergeReport, OnRefsSeen, Parts, SyncOptions, SyncState, Syncer};
use crate::types::*;

mod attrs;
mod control;
mod files;
mod names;
mod xattrs;

/// What [`Fs::load`] needs.
pub struct FsOptions {
    /// The local state folder of this vault on this device.
    pub state_dir: PathBuf,
    /// This device's id in the vault.
    pub device: nimbus_vault::DeviceId,
    /// This device's name, written into each commit (docs/SYNC.md §2.3);
    /// empty names no device. The caller reads it
    /// (`nimbus_host::device::device_name`) when it opens the drive.
    pub device_name: String,
    /// The newest update number of this device's ref seen so far.
    pub ref_seen: u64,
    /// Commit this long after the last change.
    pub commit_delay: std::time::Duration,
    /// Disk cache limit in bytes.
    pub cache_limit: u64,
    /// Decoded blobs kept in memory.
    pub mem_cache: usize,
    /// Size limit of the decoded-block cache (blobs random reads touched).
    pub decoded_limit: u64,
    /// Cache blobs on disk even though the store is a local folder.
    pub cache_local_store: bool,
    /// Owner of the root folder when the drive is created.
    pub owner: Ctx,
    /// Called after each commit with its id and the ref's update number.
    pub on_commit: Option<Box<dyn Fn(nimbus_vault::CommitId, u64) + Send + Sync>>,
    /// How often to poll the other devices' refs when nothing changes;
    /// `None`: 5 s (docs/SYNC.md §1.3). Also the fastest the drive polls.
    pub poll: Option<std::time::Duration>,
    /// Called after a poll that raised the memory of refs seen, with all of
    /// it (`Vault::refs_seen`), so the caller saves it as it does after a
    /// commit (`nimbus_host::device::save_seen`, docs/SYNC.md §1.1).
    pub on_refs_seen: Option<OnRefsSeen>,
    /// Tests (the simulation, docs/SYNC.md §6.2): no background thread.
    /// The caller runs the sync loop's cycles with [`Fs::sync_step`] and
    /// commits the metadata with [`Fs::flush_metadata`]; `sync_now` runs
    /// on its caller's thread; reads fetch nothing ahead.
    #[doc(hidden)]
    pub manual: bool,
    /// Tests: this device's wall clock runs this many seconds off the
    /// system's (the times it stamps on files and commits).
    #[doc(hidden)]
    pub clock_skew_secs: i64,
}

impl FsOptions {
    pub fn new(state_dir: PathBuf, device: nimbus_vault::DeviceId) -> FsOptions {
        FsOptions {
            state_dir,
            device,
            device_name: String::new(),
            ref_seen: 0,
            commit_delay: std::time::Duration::from_secs(5),
            cache_limit: 4 << 30,
            mem_cache: 32 << 20,
            decoded_limit: 1 << 30,
            cache_local_store: false,
            owner: Ctx::ROOT,
            on_commit: None,
            poll: None,
            on_refs_seen: None,
            manual: false,
            clock_skew_secs: 0,
        }
    }
}

struct Handle {
    node: Arc<Node>,
    /// A file of a snapshot (see the dispatch below).
    read_only: bool,
    /// End of the last read, and the read-ahead window, for detecting
    /// sequential reads.
    next: AtomicU64,
    window: AtomicU64,
    /// Written through (or truncated at open): its close shortens the
    /// commit's quiet time (`commit::Schedule::closed`).
    wrote: AtomicBool,
}

pub struct Fs {
    local: Arc<Local>,
    nodes: Arc<Nodes>,
    handles: Mutex<HashMap<u64, Arc<Handle>>>,
    /// How many times the kernel was handed each inode (FUSE's lookup
    /// count) and has not yet forgotten it. A file without names stays
    /// while the kernel may still open it by number (see `maybe_delete`).
    /// The mount's counts once a [`crate::Slot`] joins them (`kernel.rs`).
    kernel_refs: Arc<KernelRefs>,
    next_fh: AtomicU64,
    commits: Arc<Engine>,
    /// The sync loop: commits, polls, heads (`sync/`).
    sync: Arc<Syncer>,
    snapshots: Arc<Snapshots>,
    flusher: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// The kernel's caches, once a mount sets them (see `kernel.rs`).
    kernel: Arc<KernelLink>,
    /// Driven by hand, without threads ([`FsOptions::manual`]).
    manual: bool,
}

impl Fs {
    /// Opens the drive's working copy, building it from the vault's newest
    /// snapshot when the local state is new (or was deleted).
    pub fn load(vault: Vault, rt: tokio::runtime::Handle, opts: FsOptions) -> Result<Arc<Fs>> {
        let FsOptions {
            state_dir,
            device,
            device_name,
            ref_seen,
            commit_delay,
            cache_limit,
            mem_cache,
            decoded_limit,
            cache_local_store,
            owner,
            on_commit,
            poll,
            on_refs_seen,
            manual,
            clock_skew_secs,
        } = opts;
        let limits = CacheLimits {
            mem: mem_cache,
            disk: cache_limit,
            decoded: decoded_limit,
            cache_local_store,
        };
        let mut opened = Local::open(vault, rt, &state_dir, &limits)?;
        opened.local.clock = Clock {
            skew_secs: clock_skew_secs,
        };
        let local = Arc::new(opened.local);
        let nodes = Arc::new(Nodes::default());
        let snapshots = Arc::new(Snapshots::new());
        let commits = Arc::new(Engine::new(
            local.clone(),
            nodes.clone(),
            snapshots.clone(),
            CommitOptions {
                device,
                device_name,
                ref_seen,
                commit_delay,
                on_commit,
            },
        ));
        let kernel_refs = Arc::new(KernelRefs::unattached());
        let kernel = Arc::new(KernelLink::default());
        let sync = Arc::new(Syncer::new(
            local.clone(),
            commits.clone(),
            Parts {
                nodes: nodes.clone(),
                kernel_refs: kernel_refs.clone(),
                kernel: kernel.clone(),
            },
            SyncOptions { poll, on_refs_seen },
        ));
        let fs = Arc::new(Fs {
            local,
            nodes,
            handles: Mutex::new(HashMap::new()),
            kernel_refs,
            next_fh: AtomicU64::new(1),
            commits,
            sync,
            snapshots,
            flusher: Mutex::new(None),
            kernel,
            manual,
        });
        if opened.created {
            rebuild::import_head(&fs.local, owner)?;
        } else {
            rebuild::recover(&fs.local, &fs.commits.device_label())?;
        }
        fs.local.db.commit(true)?;
        // A head change left under way finishes before anything is built;
        // then the drive catches up with what the others published.
        fs.sync.recover()?;
        fs.sync.first_poll()?;
        if !manual {
            if let Ok(mut f) = fs.flusher.lock() {
                *f = Some(fs.local.db.start_flusher());
            }
        }
        fs.local.refresh_pins()?;
        let weak = Arc::downgrade(&fs);
        fs.commits
            .set_between_pieces(Box::new(move |ino| run_between_pieces_hook(&weak, ino)));
        // Changes left uncommitted by the last run (a crash, a stop with the
        // store down) upload now, not at the next change.
        if fs.pending().is_ok_and(|p| p.dirty || p.files > 0) {
            fs.commits.touched();
        }
        if manual {
            // No loop: `sync_now` runs its cycle on the caller's thread.
            fs.sync.stop();
        } else {
            fs.sync.start()?;
        }
        Ok(fs)
    }

    /// Sends the drive's kernel invalidations to `cache` from now on (those
    /// made before, while none was set, first). A [`crate::Slot`] sets its
    /// mount's cache on every drive put in it.
    pub fn set_kernel_cache(&self, cache: Arc<dyn KernelCache>) {
        self.kernel.set(cache);
    }

    /// What the kernel was handed and has not forgotten: the mount's
    /// counts once a [`crate::Slot`] joined them (`Slot::new`, `Slot::put`).
    pub(crate) fn kernel_refs(&self) -> &Arc<KernelRefs> {
        &self.kernel_refs
    }

    /// Where the drive's kernel invalidations go: the cache last set, or a
    /// queue until one is (see `kernel.rs` for when a caller may call it).
    pub fn kernel_cache(&self) -> Arc<dyn KernelCache> {
        self.kernel.clone()
    }

    pub fn vault(&self) -> &Vault {
        &self.local.vault
    }

    /// Bytes in the disk cache, and its limit (both 0 when the store is
    /// local and nothing is cached).
    pub fn cache_usage(&self) -> (u64, u64) {
        self.local.blobs.disk_usage()
    }

    /// Bytes in the decoded-block cache, and how many blobs are being
    /// written into it right now.
    pub fn decoded_cache_usage(&self) -> (u64, usize) {
        self.local.blobs.decoded_usage()
    }

    /// Marks folder `dir` and its ancestors as changed in this epoch, and
    /// restarts the quiet-time clock: a change of names alone (unlink,
    /// rmdir, rename) is committed after the commit delay like a write.
    pub(crate) fn dirty_dir(&self, c: &Conn, dir: Ino) -> Result<()> {
        self.commits.touched();
        dirty::mark_dir(c, dir, self.local.cur_epoch())
    }

    /// Marks the folders holding `ino` as changed (its metadata is in them).
    pub(crate) fn dirty_parents(&self, c: &Conn, ino: Ino) -> Result<()> {
        for p in dentries::parents(c, ino)? {
            self.dirty_dir(c, p)?;
        }
        Ok(())
    }

    /// The kernel was handed `ino` once more (a lookup, a create, an entry
    /// of `readdirplus`): until it forgets it, a file of that number
    /// outlives its last name. Adapters call this before they reply.
    pub fn remember(&self, ino: Ino) {
        if ino == ROOT || Snapshots::owns(ino) {
            return;
        }
        self.kernel_refs.remember(ino);
    }

    /// The kernel let go of `n` of its references to `ino`; a file that
    /// has lost its last name and is not open goes with the last one.
    pub fn forget(&self, ino: Ino, n: u64) -> Result<()> {
        let gone = self.kernel_refs.forget(ino, n);
        if gone && self.local.db.read(|c| Ok(inodes::get_opt(c, ino)?.map(|r| r.nlink)))? == Some(0) {
            self.maybe_delete(ino)?;
        }
        Ok(())
    }

    /// Deletes an inode with no names left once no handle has it open; a
    /// merge orphan written since the merge comes back as a conflict copy
    /// instead (docs/SYNC.md §4.3).
    fn maybe_delete(&self, ino: Ino) -> Result<()> {
        // The node map stays locked from the check to the deletion, and
        // `open_node` counts an open under the same lock: an open that
        // raced with a rename over its file either comes first (and the
        // file lives until it is closed) or finds the inode gone (and
        // answers `Stale`, so the kernel looks the name up again).
        let mut nodes = self.nodes.lock()?;
        if nodes.get(&ino).is_some_and(|n| n.opens.load(Ordering::Acquire) > 0) {
            return Ok(());
        }
        // At the last close, whatever the kernel still holds: under the
        // same lock, so a `forget` racing with it cannot delete it first.
        if let Some(r) = self.relink_orphan(ino)? {
            drop(nodes);
            self.relinked(&r);
            return Ok(());
        }
        // The kernel may still open it by the number a lookup gave it (a
        // reader between the lookup and the open of a name a rename just
        // took over): it goes when the kernel forgets it.
        if self.kernel_refs.holds(ino) {
            return Ok(());
        }
        let staging = self.local.db.write(|c| {
            let Some(row) = inodes::get_opt(c, ino)? else {
                return Ok(None);
            };
            if row.nlink > 0 {
                return Ok(None);
            }
            inodes::delete(c, ino)?;
            Ok(row.staging)
        })?;
        if let Some(id) = staging {
            // The row's deletion must be committed before the data goes:
            // a crash in between would bring the file back without its
            // content. The database removes it after its next commit.
            self.local
                .db
                .remove_after_commit(SealedFile::path_for(&self.local.staging_dir, &id));
        }
        nodes.remove(&ino);
        Ok(())
    }

    /// The node of a file, counted as open before the node map is let go
    /// (see `maybe_delete`). An inode that no longer exists is `Stale`:
    /// the kernel found it by a name that a rename or unlink has since
    /// given to another file or removed.
    fn open_node(&self, ino: Ino) -> Result<Arc<Node>> {
        let mut nodes = self.nodes.lock()?;
        let n = Nodes::get_in(&self.local, &mut nodes, ino).map_err(|e| {
            if e.kind() == ErrorKind::NotFound {
                FsError::new(
                    ErrorKind::Stale,
                    "the file was replaced or removed after its name was looked up",
                )
            } else {
                e
            }
        })?;
        n.opens.fetch_add(1, Ordering::AcqRel);
        Ok(n)
    }

    /// Stops background work without committing, as a crash would (tests).
    #[doc(hidden)]
    pub fn shutdown_without_commit(&self) {
        self.sync.stop();
        let _ = self.local.db.stop();
        if let Some(h) = self.flusher.lock().ok().and_then(|mut f| f.take()) {
            let _ = h.join();
        }
    }

    /// Stops background work after a last commit to the vault.
    pub fn shutdown(&self) -> Result<()> {
        let res = self.sync_now();
        self.sync.stop();
        let db_res = self.local.db.stop();
        if let Some(h) = self.flusher.lock().ok().and_then(|mut f| f.take()) {
            let _ = h.join();
        }
        res.and(db_res)
    }

    /// Commits now and waits for it. Returns the error of that commit.
    pub fn sync_now(&self) -> Result<()> {
        self.sync.sync_now()
    }

    /// One cycle of the sync loop on this thread (a commit first when
    /// `commit`), for a drive loaded with [`FsOptions::manual`]. The
    /// metadata stays in the open transaction: [`Fs::flush_metadata`].
    #[doc(hidden)]
    pub fn sync_step(&self, commit: bool) -> Result<()> {
        self.sync.step(commit)
    }

    /// Commits the metadata database's open transaction, as the flusher
    /// thread does (manual mode); what is not flushed is lost by a crash.
    #[doc(hidden)]
    pub fn flush_metadata(&self) -> Result<()> {
        self.local.db.commit(false)
    }

    /// This device's wall clock (`FsOptions::clock_skew_secs`).
    pub(crate) fn now(&self) -> Timestamp {
        self.local.clock.now()
    }

    /// What the sync loop knows: the last poll, failures, other devices'
    /// heads waiting to be taken in, and the other devices seen.
    pub fn sync_state(&self) -> SyncState {
        self.sync.state()
    }

    /// Whether the sync loop's thread is still running (tests).
    #[doc(hidden)]
    pub fn sync_running(&self) -> bool {
        self.sync.running()
    }

    /// Renames this device in the drive's vault: the next commit carries
    /// the name (the caller saves it, `nimbus_host::device::rename_device`).
    pub fn set_device_name(&self, name: &str) {
        self.commits.set_device_name(name);
    }

    /// What is waiting for the vault, with the sync's counts: the
    /// conflict copies, and the devices whose changes wait here.
    pub fn pending(&self) -> Result<Pending> {
        let mut p = self.commits.pending()?;
        let st = self.sync.state();
        p.conflicts = st.conflicts.unwrap_or(0);
        p.waiting_for = st.waiting.iter().map(|h| h.label()).collect();
        Ok(p)
    }

    /// The reports of other devices' changes applied since the last call
    /// (docs/SYNC.md §5.1), oldest first; at most the newest 64 are kept.
    pub fn take_merge_reports(&self) -> Vec<MergeReport> {
        self.sync.take_reports()
    }

    /// Every conflict copy in the drive, by path (found by name, §3.6).
    pub fn conflicts(&self) -> Result<Vec<ConflictCopy>> {
        self.sync.conflicts()
    }

    /// Pauses commits after quiet periods (`true`) or resumes them. Changes
    /// keep going into staging meanwhile; an asked-for commit
    /// ([`Fs::sync_now`], an `fsync` of the root, unmounting) still runs.
    pub fn set_paused(&self, paused: bool) {
        self.commits.set_paused(paused);
    }

    pub fn is_paused(&self) -> bool {
        self.commits.is_paused()
    }
}

// ------------------------------------------------- the snapshot dispatch
//
// `.snapshots` and everything under it is read-only and served from the
// vault's trees (`snapshots.rs`); every other inode is the drive's own
// (the `drive_*` methods of the family files). Each operation that can
// land in `.snapshots` is routed here, and only here.
impl Fs {
    pub fn lookup(&self, parent: Ino, name: &[u8]) -> Result<Attr> {
        if Snapshots::holds(parent, name) {
            return self.snapshots.lookup(&self.local, parent, name);
        }
        self.drive_lookup(parent, name)
    }

    pub fn getattr(&self, ino: Ino) -> Result<Attr> {
        if Snapshots::owns(ino) {
            return self.snapshots.getattr(&self.local, ino);
        }
        self.drive_getattr(ino)
    }

    pub fn readlink(&self, ino: Ino) -> Result<Vec<u8>> {
        if Snapshots::owns(ino) {
            return self.snapshots.readlink(ino);
        }
        self.drive_readlink(ino)
    }

    /// Entries after `cookie` (0 starts), at most `max`. Includes `.` and
    /// `..`.
    pub fn readdir(&self, ino: Ino, cookie: u64, max: usize) -> Result<Vec<DirEntry>> {
        if Snapshots::owns(ino) {
            return self.snapshots.readdir(&self.local, ino, cookie, max);
        }
        self.drive_readdir(ino, cookie, max)
    }

    /// Opens a file; a file of a snapshot opens read-only.
    pub fn open(&self, ino: Ino, truncate: bool) -> Result<u64> {
        self.open_impl(ino, truncate, true)
    }

    /// [`Fs::open`] from a kernel with a write-back cache: a truncation at
    /// open leaves the times to the kernel, which stamps its own (in whole
    /// clock ticks) and sends them with `setattr`. Stamping ours too could
    /// leave a time a few milliseconds off what was seen, whenever the
    /// kernel's tick had not moved and so it sent nothing.
    pub fn open_cached(&self, ino: Ino, truncate: bool) -> Result<u64> {
        self.open_impl(ino, truncate, false)
    }

    fn open_impl(&self, ino: Ino, truncate: bool, stamp: bool) -> Result<u64> {
        if Snapshots::owns(ino) {
            if truncate {
                return Err(FsError::read_only());
            }
            let (content, size) = self.snapshots.content(&self.local, ino)?;
            return self.new_handle(Arc::new(Node::detached(ino, content, size)), true, false);
        }
        self.drive_open(ino, truncate, stamp)
    }

    /// Makes a file's data and every metadata change durable (snapshots
    /// have nothing to make durable).
    pub fn fsync(&self, ino: Ino) -> Result<()> {
        if Snapshots::owns(ino) {
            return Ok(());
        }
        self.drive_fsync(ino)
    }

    pub fn getxattr(&self, ino: Ino, name: &[u8]) -> Result<Vec<u8>> {
        refuse_acl(name)?;
        if Snapshots::owns(ino) {
            return self.snapshots.getxattr(ino, name);
        }
        self.drive_getxattr(ino, name)
    }

    pub fn listxattr(&self, ino: Ino) -> Result<Vec<Vec<u8>>> {
        let names = if Snapshots::owns(ino) {
            self.snapshots.listxattr(ino)?
        } else {
            self.drive_listxattr(ino)?
        };
        Ok(without_acls(names))
    }

    // Changes: refused in `.snapshots`.

    pub fn mknod(&self, ctx: Ctx, parent: Ino, name: &[u8], kind: EntryKind, mode: u32, rdev: u64) -> Result<Attr> {
        read_only_name(parent, name)?;
        self.drive_mknod(ctx, parent, name, kind, mode, rdev)
    }

    pub fn mkdir(&self, ctx: Ctx, parent: Ino, name: &[u8], mode: u32) -> Result<Attr> {
        read_only_name(parent, name)?;
        self.drive_mkdir(ctx, parent, name, mode)
    }

    pub fn symlink(&self, ctx: Ctx, parent: Ino, name: &[u8], target: &[u8]) -> Result<Attr> {
        read_only_name(parent, name)?;
        self.drive_symlink(ctx, parent, name, target)
    }

    /// Creates and opens a file.
    pub fn create(&self, ctx: Ctx, parent: Ino, name: &[u8], mode: u32) -> Result<(Attr, u64)> {
        read_only_name(parent, name)?;
        self.drive_create(ctx, parent, name, mode)
    }

    pub fn unlink(&self, parent: Ino, name: &[u8]) -> Result<()> {
        read_only_name(parent, name)?;
        self.drive_unlink(parent, name)
    }

    pub fn rmdir(&self, parent: Ino, name: &[u8]) -> Result<()> {
        read_only_name(parent, name)?;
        self.drive_rmdir(parent, name)
    }

    pub fn rename(&self, parent: Ino, name: &[u8], newparent: Ino, newname: &[u8], flags: RenameFlags) -> Result<()> {
        read_only_name(parent, name)?;
        read_only_name(newparent, newname)?;
        self.drive_rename(parent, name, newparent, newname, flags)
    }

    pub fn link(&self, ino: Ino, newparent: Ino, newname: &[u8]) -> Result<Attr> {
        read_only(ino)?;
        read_only_name(newparent, newname)?;
        self.drive_link(ino, newparent, newname)
    }

    pub fn setattr(&self, ino: Ino, set: &SetAttr) -> Result<Attr> {
        read_only(ino)?;
        self.drive_setattr(ino, set)
    }

    /// Linux's `fallocate` (see `files.rs`).
    pub fn fallocate(&self, ino: Ino, off: u64, len: u64, mode: Fallocate) -> Result<()> {
        read_only(ino)?;
        self.drive_fallocate(ino, off, len, mode, true)
    }

    /// `fallocate` from a kernel with a write-back cache: it keeps the
    /// file's times itself (it ignores the times the core reports for a
    /// file it caches) and sends them with `setattr`, so the core must not
    /// stamp its own, or what is stored differs from what was seen.
    pub fn fallocate_cached(&self, ino: Ino, off: u64, len: u64, mode: Fallocate) -> Result<()> {
        read_only(ino)?;
        self.drive_fallocate(ino, off, len, mode, false)
    }

    pub fn setxattr(&self, ino: Ino, name: &[u8], value: &[u8], mode: XattrMode) -> Result<()> {
        refuse_acl(name)?;
        read_only(ino)?;
        self.drive_setxattr(ino, name, value, mode)
    }

    pub fn removexattr(&self, ino: Ino, name: &[u8]) -> Result<()> {
        refuse_acl(name)?;
        read_only(ino)?;
        self.drive_removexattr(ino, name)
    }
}

/// POSIX ACLs, as Linux passes them through FUSE when the file system has
/// not asked to enforce them. The drive keeps no ACLs, only the mode bits
/// (docs/SEMANTICS.md says why): these names are refused as "not
/// supported", so `cp -a`, `rsync -A` and `tar --acls` fall back to
/// `chmod` instead of storing an ACL that nothing would apply.
const ACL_XATTRS: [&[u8]; 2] = [b"system.posix_acl_access", b"system.posix_acl_default"];

fn is_acl(name: &[u8]) -> bool {
    ACL_XATTRS.contains(&name)
}

/// Refuses the ACL names, on the drive and in snapshots alike. (An ACL
/// stored as a plain attribute by an older version stays in the vault, but
/// is not shown as if it applied.)
fn refuse_acl(name: &[u8]) -> Result<()> {
    if is_acl(name) {
        return Err(FsError::new(
            ErrorKind::NotSupported,
            "the drive keeps no POSIX ACLs, only the permission bits; set permissions with chmod",
        ));
    }
    Ok(())
}

/// Leaves the ACL names out of a listing.
fn without_acls(mut names: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    names.retain(|n| !is_acl(n));
    names
}

/// Refuses a change to an inode of `.snapshots`.
fn read_only(ino: Ino) -> Result<()> {
    if Snapshots::owns(ino) {
        return Err(FsError::read_only());
    }
    Ok(())
}

/// Refuses a change to a name in `.snapshots` (or to `.snapshots` itself).
fn read_only_name(parent: Ino, name: &[u8]) -> Result<()> {
    if Snapshots::holds(parent, name) {
        return Err(FsError::read_only());
    }
    Ok(())
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

fn run_between_pieces_hook(fs: &Weak<Fs>, ino: Ino) {
    if let Ok(mut h) = BETWEEN_PIECES.lock() {
        if let (Some(h), Some(fs)) = (h.as_mut(), fs.upgrade()) {
            h(&fs, ino);
        }
    }
}

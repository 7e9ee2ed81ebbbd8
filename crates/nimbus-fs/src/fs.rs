//! The file system: POSIX operations over the working copy.
//!
//! Names and metadata live in the database (`db.rs`); a file's bytes are its
//! stored content (blobs, read through `cache/blobs.rs`) overlaid with the blocks
//! changed since (staging, a `cache/sealed_file.rs`). An open file has a `Node` holding its
//! staging file and content, shared by all its handles.
//!
//! Lock order: `handles` or `nodes` (never both) → a node's `state` → the
//! database connection. The sync engine follows the same order.
//! `kernel_refs` is a leaf: nothing else is locked while it is held.

use nimbus_vault::{EntryKind, FileId, Timestamp, Vault};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use crate::cache::blobs::BlobStore;
use crate::cache::decoded::DecodedCache;
use crate::cache::sealed_file::{SealedFile, SlotKey, BLOCK, SLOT};
use crate::error::{lock_err, not_dir, ErrorKind, FsError, Result};
use crate::meta::inodes::{self, Row};
use crate::meta::{dentries, dirty, pins, state, xattrs, Conn, Db};
use crate::snapshots::Snapshots;
use crate::sync::SyncState;
use crate::types::*;

/// Control attributes: how `nimbus sync|pin|unmount` talk to a mounted
/// drive without a service. Reading `user.nimbus.status` on the root gives
/// [`Pending`] as JSON; setting `user.nimbus.pin` on a path pins it,
/// removing it unpins. They are never listed or stored.
pub const CONTROL_PREFIX: &[u8] = b"user.nimbus.";
pub const CONTROL_STATUS: &[u8] = b"user.nimbus.status";
pub const CONTROL_PIN: &[u8] = b"user.nimbus.pin";
/// On the root: the store's bandwidth limits, read and set as
/// `up=<bytes/s> down=<bytes/s>` (0 is no limit).
pub const CONTROL_LIMITS: &[u8] = b"user.nimbus.limits";

/// POSIX ACLs, as Linux passes them through FUSE when the file system has
/// not asked to enforce them. The drive keeps no ACLs, only the mode bits
/// (docs/SEMANTICS.md says why): these names are refused as "not
/// supported", so `cp -a`, `rsync -A` and `tar --acls` fall back to
/// `chmod` instead of storing an ACL that nothing would apply.
const ACL_XATTRS: [&[u8]; 2] = [b"system.posix_acl_access", b"system.posix_acl_default"];

fn is_acl(name: &[u8]) -> bool {
    ACL_XATTRS.contains(&name)
}

fn no_acls() -> FsError {
    FsError::new(
        ErrorKind::NotSupported,
        "the drive keeps no POSIX ACLs, only the permission bits; set permissions with chmod",
    )
}

/// Writes with at least this much in whole blocks are sealed outside the
/// file's lock (see `write_impl`).
const PARALLEL_SEAL_MIN: u64 = 64 << 10;

/// The largest file the drive holds (the staging slot offsets must fit i64).
pub const MAX_FILE_SIZE: u64 = 1 << 50;

/// What [`Fs::load`] needs.
pub struct FsOptions {
    /// The local state folder of this vault on this device.
    pub state_dir: PathBuf,
    /// This device's id in the vault.
    pub device: nimbus_vault::DeviceId,
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
}

impl FsOptions {
    pub fn new(state_dir: PathBuf, device: nimbus_vault::DeviceId) -> FsOptions {
        FsOptions {
            state_dir,
            device,
            ref_seen: 0,
            commit_delay: std::time::Duration::from_secs(5),
            cache_limit: 4 << 30,
            mem_cache: 32 << 20,
            decoded_limit: 1 << 30,
            cache_local_store: false,
            owner: Ctx::ROOT,
            on_commit: None,
        }
    }
}

pub(crate) struct NodeState {
    pub staging: Option<SealedFile>,
    pub base: Arc<Content>,
    pub base_len: u64,
    pub size: u64,
    pub kind: EntryKind,
}

pub(crate) struct Node {
    pub ino: Ino,
    pub state: RwLock<NodeState>,
    /// Open handles.
    pub opens: AtomicU64,
}

struct Handle {
    node: Arc<Node>,
    /// End of the last read, and the read-ahead window, for detecting
    /// sequential reads.
    next: AtomicU64,
    window: AtomicU64,
}

pub struct Fs {
    pub(crate) vault: Vault,
    pub(crate) rt: tokio::runtime::Handle,
    pub(crate) db: Arc<Db>,
    pub(crate) blobs: Arc<BlobStore>,
    pub(crate) key: SlotKey,
    pub(crate) staging_dir: PathBuf,
    pub(crate) nodes: Mutex<HashMap<Ino, Arc<Node>>>,
    handles: Mutex<HashMap<u64, Arc<Handle>>>,
    /// How many times the kernel was handed each inode (FUSE's lookup
    /// count) and has not yet forgotten it. A file without names stays
    /// while the kernel may still open it by number (see `maybe_delete`).
    kernel_refs: Mutex<HashMap<Ino, u64>>,
    next_fh: AtomicU64,
    /// The current sync epoch (see `sync.rs`).
    pub(crate) epoch: AtomicU64,
    pub(crate) sync: SyncState,
    pub(crate) snapshots: Snapshots,
    pub(crate) opts: FsOptions,
    /// Serialises commits.
    pub(crate) sync_lock: Mutex<()>,
    flusher: Mutex<Option<std::thread::JoinHandle<()>>>,
}

pub(crate) fn now() -> Timestamp {
    Timestamp::now()
}

impl Fs {
    /// Opens the drive's working copy, building it from the vault's newest
    /// snapshot when the local state is new (or was deleted).
    pub fn load(vault: Vault, rt: tokio::runtime::Handle, opts: FsOptions) -> Result<Arc<Fs>> {
        let dir = &opts.state_dir;
        std::fs::create_dir_all(dir)
            .map_err(|e| FsError::io(format!("cannot create the state folder {}", dir.display()), e))?;
        let staging_dir = dir.join("staging");
        std::fs::create_dir_all(&staging_dir)
            .map_err(|e| FsError::io(format!("cannot create {}", staging_dir.display()), e))?;
        let db_path = dir.join("metadata.db");
        let db_key = vault.local_state_key("metadata-database");
        let (mut db, mut created) = Db::open(&db_path, &db_key)?;
        if !created && db.schema_version()? != crate::meta::db::SCHEMA_VERSION {
            crate::rebuild::refuse_to_drop_changes(&db, &staging_dir, dir)?;
            tracing::warn!("the local state was made by another version of Nimbus; rebuilding it from the vault");
            drop(db);
            remove_db(&db_path)?;
            (db, created) = Db::open(&db_path, &db_key)?;
        }
        let mut extra_parent = None;
        if !created {
            // The vault moved on while the drive was not mounted here (a
            // `nimbus put`, a restore): without local changes, start again
            // from the vault's newest snapshot; with them, keep them, and
            // keep the other snapshot in the history of the next commit.
            let head = rt.block_on(vault.head())?.map(|(id, _)| id);
            let (local_head, pending) = db.read(|c| {
                let pending = dirty::any_change_or_unbuilt_folder(c, state::committed_epoch(c)?)?;
                Ok((state::head(c)?, pending))
            })?;
            if head.is_some() && head != local_head {
                if pending {
                    tracing::warn!(
                        "the vault has a newer snapshot than this drive, and the drive has changes not yet \
                         committed: keeping the drive's changes; the other snapshot stays in the history \
                         (merging both is the sync engine's job)"
                    );
                    extra_parent = head;
                } else {
                    tracing::info!("the vault has a newer snapshot than this drive: rebuilding from it");
                    drop(db);
                    remove_db(&db_path)?;
                    (db, created) = Db::open(&db_path, &db_key)?;
                }
            }
        }
        if created {
            // Staging of an older database is meaningless now.
            let _ = std::fs::remove_dir_all(&staging_dir);
            std::fs::create_dir_all(&staging_dir)
                .map_err(|e| FsError::io(format!("cannot create {}", staging_dir.display()), e))?;
        }
        let cache_dir = if vault.backend().is_local() && !opts.cache_local_store {
            None
        } else {
            Some(dir.join("cache"))
        };
        let blobs = Arc::new(BlobStore::new(
            vault.clone(),
            rt.clone(),
            opts.mem_cache,
            cache_dir,
            opts.cache_limit,
            Some(DecodedCache::open(
                &dir.join("decoded"),
                &vault.local_state_key("decoded-cache"),
                opts.decoded_limit,
            )?),
        )?);
        let fs = Arc::new(Fs {
            key: SlotKey::new(&vault.local_state_key("staging")),
            snapshots: Snapshots::new(),
            vault,
            rt,
            db,
            blobs,
            staging_dir,
            nodes: Mutex::new(HashMap::new()),
            handles: Mutex::new(HashMap::new()),
            kernel_refs: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
            epoch: AtomicU64::new(1),
            sync: SyncState::default(),
            opts,
            sync_lock: Mutex::new(()),
            flusher: Mutex::new(None),
        });
        if created {
            crate::rebuild::import_head(&fs)?;
        } else {
            crate::rebuild::recover(&fs)?;
            if let Some(p) = extra_parent {
                fs.db.write(|c| state::set_extra_parent(c, Some(&p)))?;
            }
        }
        fs.db.commit(true)?;
        if let Ok(mut f) = fs.flusher.lock() {
            *f = Some(fs.db.start_flusher());
        }
        fs.refresh_pins()?;
        // Changes left uncommitted by the last run (a crash, a stop with the
        // store down) upload now, not at the next change.
        if fs.pending().is_ok_and(|p| p.dirty || p.files > 0) {
            fs.sync.touched();
        }
        fs.start_sync();
        Ok(fs)
    }

    pub fn vault(&self) -> &Vault {
        &self.vault
    }

    /// Bytes in the disk cache, and its limit (both 0 when the store is
    /// local and nothing is cached).
    pub fn cache_usage(&self) -> (u64, u64) {
        self.blobs.disk_usage()
    }

    /// Bytes in the decoded-block cache, and how many blobs are being
    /// written into it right now.
    pub fn decoded_cache_usage(&self) -> (u64, usize) {
        self.blobs.decoded_usage()
    }

    pub(crate) fn cur_epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    // ---------------------------------------------------------------- lookup

    pub fn lookup(&self, parent: Ino, name: &[u8]) -> Result<Attr> {
        if Snapshots::holds(parent, name) {
            return self.snapshots.lookup(self, parent, name);
        }
        if name.len() > nimbus_vault::tree::MAX_NAME {
            return Err(FsError::new(ErrorKind::NameTooLong, "a name is at most 255 bytes long"));
        }
        self.db.read(|c| {
            let p = inodes::get(c, parent)?;
            if p.kind != EntryKind::Dir {
                return Err(not_dir());
            }
            if name == b"." {
                return Ok(p.attr());
            }
            if name == b".." {
                return Ok(inodes::get(c, if parent == ROOT { ROOT } else { p.parent })?.attr());
            }
            let ino = dentries::lookup(c, parent, name)?.ok_or_else(FsError::not_found)?;
            Ok(inodes::get(c, ino)?.attr())
        })
    }

    pub fn getattr(&self, ino: Ino) -> Result<Attr> {
        if Snapshots::owns(ino) {
            return self.snapshots.getattr(self, ino);
        }
        self.db.read(|c| Ok(inodes::get(c, ino)?.attr()))
    }

    pub fn readlink(&self, ino: Ino) -> Result<Vec<u8>> {
        if Snapshots::owns(ino) {
            return self.snapshots.readlink(self, ino);
        }
        let row = self.db.read(|c| inodes::get(c, ino))?;
        if row.kind != EntryKind::Symlink {
            return Err(FsError::new(ErrorKind::InvalidArgument, "not a symbolic link"));
        }
        Ok(row.target)
    }

    // ----------------------------------------------------------- dirtiness

    /// Marks folder `dir` and its ancestors as changed in this epoch, and
    /// restarts the quiet-time clock: a change of names alone (unlink,
    /// rmdir, rename) is committed after the commit delay like a write.
    pub(crate) fn dirty_dir(&self, c: &Conn, dir: Ino) -> Result<()> {
        self.sync.touched();
        dirty::mark_dir(c, dir, self.cur_epoch())
    }

    /// Marks the folders holding `ino` as changed (its metadata is in them).
    pub(crate) fn dirty_parents(&self, c: &Conn, ino: Ino) -> Result<()> {
        for p in dentries::parents(c, ino)? {
            self.dirty_dir(c, p)?;
        }
        Ok(())
    }

    // ------------------------------------------------------------- create

    fn check_parent(&self, c: &Conn, parent: Ino, name: &[u8]) -> Result<Row> {
        if Snapshots::holds(parent, name) {
            return Err(FsError::read_only());
        }
        inodes::check_name(name)?;
        let p = inodes::get(c, parent)?;
        if p.kind != EntryKind::Dir {
            return Err(not_dir());
        }
        if dentries::lookup(c, parent, name)?.is_some() {
            return Err(FsError::new(
                ErrorKind::Exists,
                "a file or folder with this name exists",
            ));
        }
        Ok(p)
    }

    #[allow(clippy::too_many_arguments)]
    fn new_node(
        &self,
        ctx: Ctx,
        parent: Ino,
        name: &[u8],
        kind: EntryKind,
        mode: u32,
        rdev: u64,
        target: Option<&[u8]>,
    ) -> Result<Attr> {
        self.db.write(|c| {
            let p = self.check_parent(c, parent, name)?;
            let mut mode = mode & 0o7777;
            // BSD group semantics inside a set-group-id folder.
            let gid = if p.mode & 0o2000 != 0 {
                if kind == EntryKind::Dir {
                    mode |= 0o2000;
                }
                p.gid
            } else {
                ctx.gid
            };
            let t = now();
            let nlink = if kind == EntryKind::Dir { 2 } else { 1 };
            let ino = inodes::insert(
                c,
                kind,
                mode,
                ctx.uid,
                gid,
                rdev,
                nlink,
                t,
                parent,
                &FileId::random(),
                target,
                self.cur_epoch(),
            )?;
            dentries::add(c, parent, name, ino)?;
            if kind == EntryKind::Dir {
                inodes::add_nlink(c, parent, 1)?;
            }
            inodes::set_times(c, parent, Some(t), Some(t))?;
            self.dirty_dir(c, parent)?;
            Ok(inodes::get(c, ino)?.attr())
        })
    }

    pub fn mknod(&self, ctx: Ctx, parent: Ino, name: &[u8], kind: EntryKind, mode: u32, rdev: u64) -> Result<Attr> {
        if kind == EntryKind::Dir || kind == EntryKind::Symlink {
            return Err(FsError::new(
                ErrorKind::InvalidArgument,
                "mknod makes files and special files only",
            ));
        }
        self.new_node(ctx, parent, name, kind, mode, rdev, None)
    }

    pub fn mkdir(&self, ctx: Ctx, parent: Ino, name: &[u8], mode: u32) -> Result<Attr> {
        self.new_node(ctx, parent, name, EntryKind::Dir, mode, 0, None)
    }

    pub fn symlink(&self, ctx: Ctx, parent: Ino, name: &[u8], target: &[u8]) -> Result<Attr> {
        if target.is_empty() || target.len() > 4095 {
            return Err(FsError::new(
                if target.is_empty() {
                    ErrorKind::NotFound
                } else {
                    ErrorKind::NameTooLong
                },
                "a link target is 1 to 4095 bytes long",
            ));
        }
        self.new_node(ctx, parent, name, EntryKind::Symlink, 0o777, 0, Some(target))
    }

    /// Creates and opens a file.
    pub fn create(&self, ctx: Ctx, parent: Ino, name: &[u8], mode: u32) -> Result<(Attr, u64)> {
        let attr = self.new_node(ctx, parent, name, EntryKind::File, mode, 0, None)?;
        let fh = self.open(attr.ino, false)?;
        Ok((attr, fh))
    }

    // ------------------------------------------------------------ remove

    pub fn unlink(&self, parent: Ino, name: &[u8]) -> Result<()> {
        if Snapshots::holds(parent, name) {
            return Err(FsError::read_only());
        }
        let gone = self.db.write(|c| {
            let p = inodes::get(c, parent)?;
            if p.kind != EntryKind::Dir {
                return Err(not_dir());
            }
            let ino = dentries::lookup(c, parent, name)?.ok_or_else(FsError::not_found)?;
            let row = inodes::get(c, ino)?;
            if row.kind == EntryKind::Dir {
                return Err(FsError::new(ErrorKind::IsDir, "use rmdir to remove a folder"));
            }
            dentries::remove(c, parent, name)?;
            let t = now();
            inodes::add_nlink(c, ino, -1)?;
            inodes::set_times(c, ino, None, Some(t))?;
            inodes::set_times(c, parent, Some(t), Some(t))?;
            self.dirty_dir(c, parent)?;
            // Other names of a hard link hold its metadata too.
            self.dirty_parents(c, ino)?;
            Ok((row.nlink <= 1).then_some(ino))
        })?;
        if let Some(ino) = gone {
            self.maybe_delete(ino)?;
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
        if let Ok(mut r) = self.kernel_refs.lock() {
            *r.entry(ino).or_insert(0) += 1;
        }
    }

    /// The kernel let go of `n` of its references to `ino`; a file that
    /// has lost its last name and is not open goes with the last one.
    pub fn forget(&self, ino: Ino, n: u64) -> Result<()> {
        let gone = {
            let mut r = self.kernel_refs.lock().map_err(|_| lock_err())?;
            match r.get_mut(&ino) {
                Some(c) if *c > n => {
                    *c -= n;
                    false
                }
                Some(_) => {
                    r.remove(&ino);
                    true
                }
                None => false,
            }
        };
        if gone && self.db.read(|c| Ok(inodes::get_opt(c, ino)?.map(|r| r.nlink)))? == Some(0) {
            self.maybe_delete(ino)?;
        }
        Ok(())
    }

    /// Deletes an inode with no names left once no handle has it open.
    fn maybe_delete(&self, ino: Ino) -> Result<()> {
        // The node map stays locked from the check to the deletion, and
        // `open_node` counts an open under the same lock: an open that
        // raced with a rename over its file either comes first (and the
        // file lives until it is closed) or finds the inode gone (and
        // answers `Stale`, so the kernel looks the name up again).
        let mut nodes = self.nodes.lock().map_err(|_| lock_err())?;
        if nodes.get(&ino).is_some_and(|n| n.opens.load(Ordering::Acquire) > 0) {
            return Ok(());
        }
        // The kernel may still open it by the number a lookup gave it (a
        // reader between the lookup and the open of a name a rename just
        // took over): it goes when the kernel forgets it.
        if self.kernel_refs.lock().map(|r| r.contains_key(&ino)).unwrap_or(false) {
            return Ok(());
        }
        let staging = self.db.write(|c| {
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
            self.db
                .remove_after_commit(SealedFile::path_for(&self.staging_dir, &id));
        }
        nodes.remove(&ino);
        Ok(())
    }

    pub fn rmdir(&self, parent: Ino, name: &[u8]) -> Result<()> {
        if Snapshots::holds(parent, name) {
            return Err(FsError::read_only());
        }
        if name == b"." {
            return Err(FsError::new(ErrorKind::InvalidArgument, "cannot remove `.`"));
        }
        if name == b".." {
            return Err(FsError::new(ErrorKind::NotEmpty, "cannot remove `..`"));
        }
        self.db.write(|c| {
            let p = inodes::get(c, parent)?;
            if p.kind != EntryKind::Dir {
                return Err(not_dir());
            }
            let ino = dentries::lookup(c, parent, name)?.ok_or_else(FsError::not_found)?;
            let row = inodes::get(c, ino)?;
            if row.kind != EntryKind::Dir {
                return Err(not_dir());
            }
            if !dentries::is_empty_dir(c, ino)? {
                return Err(FsError::new(ErrorKind::NotEmpty, "the folder is not empty"));
            }
            dentries::remove(c, parent, name)?;
            inodes::delete(c, ino)?;
            inodes::add_nlink(c, parent, -1)?;
            let t = now();
            inodes::set_times(c, parent, Some(t), Some(t))?;
            self.dirty_dir(c, parent)
        })
    }

    // ------------------------------------------------------------ rename

    pub fn rename(&self, parent: Ino, name: &[u8], newparent: Ino, newname: &[u8], flags: RenameFlags) -> Result<()> {
        for (p, n) in [(parent, name), (newparent, newname)] {
            if Snapshots::holds(p, n) {
                return Err(FsError::read_only());
            }
        }
        inodes::check_name(newname)?;
        let replaced = self.db.write(|c| {
            let sp = inodes::get(c, parent)?;
            let dp = inodes::get(c, newparent)?;
            if sp.kind != EntryKind::Dir || dp.kind != EntryKind::Dir {
                return Err(not_dir());
            }
            let src = dentries::lookup(c, parent, name)?.ok_or_else(FsError::not_found)?;
            let srow = inodes::get(c, src)?;
            let dst = dentries::lookup(c, newparent, newname)?;
            if srow.kind == EntryKind::Dir {
                inodes::check_not_inside(c, src, newparent)?;
            }
            let t = now();
            if flags.exchange {
                let dst = dst.ok_or_else(FsError::not_found)?;
                let drow = inodes::get(c, dst)?;
                if drow.kind == EntryKind::Dir {
                    inodes::check_not_inside(c, dst, parent)?;
                }
                dentries::repoint(c, parent, name, dst)?;
                dentries::repoint(c, newparent, newname, src)?;
                if parent != newparent {
                    for (ino, row, np) in [(src, &srow, newparent), (dst, &drow, parent)] {
                        if row.kind == EntryKind::Dir {
                            inodes::set_parent(c, ino, np)?;
                            inodes::add_nlink(c, np, 1)?;
                            inodes::add_nlink(c, if np == newparent { parent } else { newparent }, -1)?;
                        }
                    }
                }
                inodes::set_times(c, src, None, Some(t))?;
                inodes::set_times(c, dst, None, Some(t))?;
                inodes::set_times(c, parent, Some(t), Some(t))?;
                inodes::set_times(c, newparent, Some(t), Some(t))?;
                self.dirty_dir(c, parent)?;
                self.dirty_dir(c, newparent)?;
                return Ok(None);
            }
            let mut replaced = None;
            if let Some(dst) = dst {
                if flags.noreplace {
                    return Err(FsError::new(ErrorKind::Exists, "the target name exists"));
                }
                if dst == src {
                    // Two names of one file: POSIX says do nothing.
                    return Ok(None);
                }
                let drow = inodes::get(c, dst)?;
                match (srow.kind == EntryKind::Dir, drow.kind == EntryKind::Dir) {
                    (true, false) => return Err(not_dir()),
                    (false, true) => return Err(FsError::new(ErrorKind::IsDir, "the target is a folder")),
                    (true, true) => {
                        if !dentries::is_empty_dir(c, dst)? {
                            return Err(FsError::new(ErrorKind::NotEmpty, "the target folder is not empty"));
                        }
                        dentries::remove(c, newparent, newname)?;
                        inodes::delete(c, dst)?;
                        inodes::add_nlink(c, newparent, -1)?;
                    }
                    (false, false) => {
                        dentries::remove(c, newparent, newname)?;
                        inodes::add_nlink(c, dst, -1)?;
                        inodes::set_times(c, dst, None, Some(t))?;
                        self.dirty_parents(c, dst)?;
                        if drow.nlink <= 1 {
                            replaced = Some(dst);
                        }
                    }
                }
            }
            dentries::rename(c, parent, name, newparent, newname)?;
            if srow.kind == EntryKind::Dir && parent != newparent {
                inodes::set_parent(c, src, newparent)?;
                inodes::add_nlink(c, parent, -1)?;
                inodes::add_nlink(c, newparent, 1)?;
            }
            inodes::set_times(c, src, None, Some(t))?;
            inodes::set_times(c, parent, Some(t), Some(t))?;
            inodes::set_times(c, newparent, Some(t), Some(t))?;
            self.dirty_dir(c, parent)?;
            self.dirty_dir(c, newparent)?;
            self.dirty_parents(c, src)?;
            Ok(replaced)
        })?;
        if let Some(ino) = replaced {
            self.maybe_delete(ino)?;
        }
        Ok(())
    }

    pub fn link(&self, ino: Ino, newparent: Ino, newname: &[u8]) -> Result<Attr> {
        if Snapshots::owns(ino) {
            return Err(FsError::read_only());
        }
        self.db.write(|c| {
            self.check_parent(c, newparent, newname)?;
            let row = inodes::get(c, ino)?;
            if row.kind == EntryKind::Dir {
                return Err(FsError::new(ErrorKind::NotPermitted, "folders cannot have hard links"));
            }
            if row.nlink >= 65_000 {
                return Err(FsError::new(ErrorKind::NotPermitted, "too many links"));
            }
            dentries::add(c, newparent, newname, ino)?;
            inodes::add_nlink(c, ino, 1)?;
            let t = now();
            inodes::set_times(c, ino, None, Some(t))?;
            inodes::set_times(c, newparent, Some(t), Some(t))?;
            self.dirty_parents(c, ino)?;
            Ok(inodes::get(c, ino)?.attr())
        })
    }

    // ----------------------------------------------------------- setattr

    pub fn setattr(&self, ino: Ino, set: &SetAttr) -> Result<Attr> {
        if Snapshots::owns(ino) {
            return Err(FsError::read_only());
        }
        if let Some(attr) = self.times_of_gone_file(ino, set)? {
            return Ok(attr);
        }
        if let Some(size) = set.size {
            self.truncate(ino, size)?;
        }
        self.db.write(|c| {
            let row = inodes::get(c, ino)?;
            let t = now();
            let mut mode = row.mode;
            if let Some(m) = set.mode {
                mode = m & 0o7777;
            }
            if (set.uid.is_some() || set.gid.is_some()) && row.kind != EntryKind::Dir && set.mode.is_none() {
                // Linux clears set-user-id, and set-group-id when it means
                // "group executable", on every change of owner.
                mode &= !0o4000;
                if mode & 0o010 != 0 {
                    mode &= !0o2000;
                }
            }
            let uid = set.uid.unwrap_or(row.uid);
            let gid = set.gid.unwrap_or(row.gid);
            let at = match set.atime {
                Some(SetTime::Now) => t,
                Some(SetTime::At(x)) => x,
                None => row.atime,
            };
            let mt = match set.mtime {
                Some(SetTime::Now) => t,
                Some(SetTime::At(x)) => x,
                None => row.mtime,
            };
            let ct = set.ctime.unwrap_or(t);
            inodes::set_attrs(
                c,
                ino,
                &inodes::Attrs {
                    mode,
                    uid,
                    gid,
                    atime: at,
                    mtime: mt,
                    ctime: ct,
                },
            )?;
            if ino == ROOT {
                self.dirty_dir(c, ROOT)?;
            } else {
                self.dirty_parents(c, ino)?;
            }
            Ok(inodes::get(c, ino)?.attr())
        })
    }

    /// A kernel with a write-back cache flushes a file's times after the
    /// file is gone (deleted and closed, but not yet forgotten by the
    /// kernel). Refusing would be recorded as a write-back error of the
    /// whole drive, and the next `syncfs` (`sync -f`) would fail with "No
    /// such file or directory": times of a file that is gone are accepted
    /// and dropped.
    fn times_of_gone_file(&self, ino: Ino, set: &SetAttr) -> Result<Option<Attr>> {
        let times_only = set.mode.is_none() && set.uid.is_none() && set.gid.is_none() && set.size.is_none();
        if !times_only || self.db.read(|c| inodes::get_opt(c, ino))?.is_some() {
            return Ok(None);
        }
        let t = now();
        let time = |s: Option<SetTime>| match s {
            Some(SetTime::At(x)) => x,
            _ => t,
        };
        Ok(Some(Attr {
            ino,
            kind: EntryKind::File,
            size: 0,
            blocks: 0,
            perm: 0,
            nlink: 0,
            uid: 0,
            gid: 0,
            rdev: 0,
            atime: time(set.atime),
            mtime: time(set.mtime),
            ctime: set.ctime.unwrap_or(t),
        }))
    }

    // -------------------------------------------------------------- nodes

    /// The node of a file, loaded from the database if no one has it.
    pub(crate) fn node(&self, ino: Ino) -> Result<Arc<Node>> {
        let mut nodes = self.nodes.lock().map_err(|_| lock_err())?;
        self.node_in(&mut nodes, ino)
    }

    /// The node of a file, counted as open before the node map is let go
    /// (see `maybe_delete`). An inode that no longer exists is `Stale`:
    /// the kernel found it by a name that a rename or unlink has since
    /// given to another file or removed.
    fn open_node(&self, ino: Ino) -> Result<Arc<Node>> {
        let mut nodes = self.nodes.lock().map_err(|_| lock_err())?;
        let n = self.node_in(&mut nodes, ino).map_err(|e| {
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

    fn node_in(&self, nodes: &mut HashMap<Ino, Arc<Node>>, ino: Ino) -> Result<Arc<Node>> {
        if let Some(n) = nodes.get(&ino) {
            return Ok(n.clone());
        }
        let row = self.db.read(|c| inodes::get(c, ino))?;
        let staging = match row.staging {
            Some(id) => Some(SealedFile::open(&self.staging_dir, id)?),
            None => None,
        };
        let n = Arc::new(Node {
            ino,
            state: RwLock::new(NodeState {
                staging,
                base: Arc::new(Content::new(row.content)),
                base_len: row.base_len,
                size: row.size,
                kind: row.kind,
            }),
            opens: AtomicU64::new(0),
        });
        nodes.insert(ino, n.clone());
        Ok(n)
    }

    /// Drops a node no handle uses (its state is all in the database).
    pub(crate) fn release_node(&self, ino: Ino) {
        if let Ok(mut nodes) = self.nodes.lock() {
            if let Some(n) = nodes.get(&ino) {
                if n.opens.load(Ordering::Acquire) == 0 && Arc::strong_count(n) == 1 {
                    nodes.remove(&ino);
                }
            }
        }
    }

    // --------------------------------------------------------- open/close

    pub fn open(&self, ino: Ino, truncate: bool) -> Result<u64> {
        let node = if Snapshots::owns(ino) {
            if truncate {
                return Err(FsError::read_only());
            }
            let (content, size) = self.snapshots.content(self, ino)?;
            Arc::new(Node {
                ino,
                state: RwLock::new(NodeState {
                    staging: None,
                    base: Arc::new(content),
                    base_len: size,
                    size,
                    kind: EntryKind::File,
                }),
                opens: AtomicU64::new(1),
            })
        } else {
            self.open_node(ino)?
        };
        let is_dir = node.state.read().map(|st| st.kind == EntryKind::Dir).map_err(|_| ());
        let Ok(is_dir) = is_dir else {
            let _ = self.close_node(node);
            return Err(lock_err());
        };
        if is_dir {
            let _ = self.close_node(node);
            return Err(FsError::new(ErrorKind::IsDir, "a folder cannot be opened as a file"));
        }
        if truncate {
            if let Err(e) = self.truncate(ino, 0) {
                let _ = self.close_node(node);
                return Err(e);
            }
        }
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        let h = Arc::new(Handle {
            node,
            next: AtomicU64::new(0),
            window: AtomicU64::new(0),
        });
        self.handles.lock().map_err(|_| lock_err())?.insert(fh, h);
        Ok(fh)
    }

    fn handle(&self, fh: u64) -> Result<Arc<Handle>> {
        self.handles
            .lock()
            .map_err(|_| lock_err())?
            .get(&fh)
            .cloned()
            .ok_or_else(|| FsError::new(ErrorKind::BadHandle, "the file is not open"))
    }

    pub fn release(&self, fh: u64) -> Result<()> {
        let Some(h) = self.handles.lock().map_err(|_| lock_err())?.remove(&fh) else {
            return Ok(());
        };
        let node = h.node.clone();
        drop(h);
        self.close_node(node)
    }

    /// Undoes one open of `node`: the last close of a file without names
    /// deletes it.
    fn close_node(&self, node: Arc<Node>) -> Result<()> {
        let ino = node.ino;
        let last = node.opens.fetch_sub(1, Ordering::AcqRel) == 1;
        drop(node);
        if Snapshots::owns(ino) {
            return Ok(());
        }
        if last {
            let nlink = self.db.read(|c| Ok(inodes::get_opt(c, ino)?.map(|r| r.nlink)))?;
            if nlink == Some(0) {
                self.maybe_delete(ino)?;
            }
            self.release_node(ino);
        }
        Ok(())
    }

    // --------------------------------------------------------------- read

    /// Reads up to `size` bytes at `off`. Reads past the end return less.
    pub fn read(&self, fh: u64, off: u64, size: u32) -> Result<Vec<u8>> {
        if fh == 0 {
            return Err(FsError::new(ErrorKind::BadHandle, "the file is not open"));
        }
        let h = self.handle(fh)?;
        let st = h.node.state.read().map_err(|_| lock_err())?;
        if off >= st.size {
            return Ok(Vec::new());
        }
        let len = (size as u64).min(st.size - off) as usize;
        let seq = h.next.swap(off + len as u64, Ordering::Relaxed) == off;
        let out = self.read_state(&st, off, len, !seq)?;
        // Read-ahead: a read that starts where the last ended doubles the
        // window (1 MiB to 16 MiB) of blobs fetched ahead.
        if st.staging.is_none() && !st.base.ends.is_empty() {
            let win = if seq {
                (h.window.load(Ordering::Relaxed) * 2).clamp(1 << 20, 16 << 20)
            } else {
                0
            };
            h.window.store(win, Ordering::Relaxed);
            if win > 0 {
                self.readahead(&st.base, off + len as u64, win);
            }
        }
        Ok(out)
    }

    /// Whether reading `size` bytes at `off` of an open file needs nothing
    /// from the store (every blob it touches is in memory, in a local
    /// cache, or the store is a local folder). The mount adapter answers
    /// such reads at once and hands the others to threads that may wait.
    pub fn read_is_local(&self, fh: u64, off: u64, size: u32) -> bool {
        let Ok(h) = self.handle(fh) else {
            return true; // `read` itself says what is wrong
        };
        // A writer holding the file may itself be waiting for the store.
        let Ok(st) = h.node.state.try_read() else {
            return false;
        };
        let end = off.saturating_add(size as u64).min(st.base_len);
        let Some(mut i) = st.base.find(off) else {
            return true;
        };
        while i < st.base.ends.len() && st.base.start(i) < end {
            if !self.blobs.is_local(&st.base.list.0[i].0) {
                return false;
            }
            i += 1;
        }
        true
    }

    fn readahead(&self, base: &Content, from: u64, win: u64) {
        let Some(first) = base.find(from) else { return };
        let mut ids = Vec::new();
        let mut i = first;
        while i < base.ends.len() && base.start(i) < from + win {
            ids.push(base.list.0[i].0);
            i += 1;
        }
        self.blobs.prefetch(&ids);
    }

    /// Bytes `off..off+len` of a file in state `st` (within its size);
    /// `random` for a read that is not part of a sequential run.
    pub(crate) fn read_state(&self, st: &NodeState, off: u64, len: usize, random: bool) -> Result<Vec<u8>> {
        let Some(staging) = &st.staging else {
            let mut out = vec![0u8; len];
            self.read_base(st, off, &mut out, random)?;
            return Ok(out);
        };
        let b0 = off / BLOCK as u64;
        let b1 = (off + len as u64).div_ceil(BLOCK as u64);
        let mut buf = vec![0u8; ((b1 - b0) as usize) * BLOCK];
        let present = staging.read_blocks(&self.key, b0, &mut buf)?;
        // Fill runs of blocks that are not staged from the stored content.
        let mut i = 0;
        while i < present.len() {
            if present[i] {
                i += 1;
                continue;
            }
            let mut j = i;
            while j < present.len() && !present[j] {
                j += 1;
            }
            let start = (b0 + i as u64) * BLOCK as u64;
            self.read_base(st, start, &mut buf[i * BLOCK..j * BLOCK], random)?;
            i = j;
        }
        let skip = (off - b0 * BLOCK as u64) as usize;
        buf.drain(..skip);
        buf.truncate(len);
        Ok(buf)
    }

    /// Fills `out` with the stored content at `off`, zeros past `base_len`.
    fn read_base(&self, st: &NodeState, off: u64, out: &mut [u8], random: bool) -> Result<()> {
        let end = (off + out.len() as u64).min(st.base_len);
        if off >= end {
            out.fill(0);
            return Ok(());
        }
        let mut at = off;
        while at < end {
            let Some(i) = st.base.find(at) else { break };
            let (id, blob_len) = st.base.list.0[i];
            let start = st.base.start(i);
            let from = (at - start) as usize;
            let upto = ((end - start) as usize).min(blob_len as usize);
            if from >= upto {
                return Err(FsError::new(
                    ErrorKind::Corrupt,
                    format!("blob {id} is shorter than the file's content list says"),
                ));
            }
            let dst = (at - off) as usize;
            self.blobs
                .read_range(&id, from, &mut out[dst..dst + (upto - from)], random)?;
            at = start + upto as u64;
        }
        let filled = (at - off) as usize;
        out[filled..].fill(0);
        Ok(())
    }

    // -------------------------------------------------------------- write

    /// Writes `data` at `off`, setting the file's modification and change
    /// times to now.
    pub fn write(&self, fh: u64, off: u64, data: &[u8]) -> Result<u32> {
        self.write_impl(fh, off, data, true)
    }

    /// Writes flushed from a kernel's write-back cache: the kernel keeps the
    /// file's times itself and sends them with `setattr`, so a late flush
    /// must not overwrite them with the time of the flush.
    pub fn write_cached(&self, fh: u64, off: u64, data: &[u8]) -> Result<u32> {
        self.write_impl(fh, off, data, false)
    }

    fn write_impl(&self, fh: u64, off: u64, data: &[u8], stamp: bool) -> Result<u32> {
        let h = self.handle(fh)?;
        if Snapshots::owns(h.node.ino) {
            return Err(FsError::read_only());
        }
        let end = off
            .checked_add(data.len() as u64)
            .filter(|&e| e <= MAX_FILE_SIZE)
            .ok_or_else(|| {
                FsError::new(
                    ErrorKind::TooBig,
                    "the file would exceed the largest size the drive holds",
                )
            })?;
        if data.is_empty() {
            return Ok(0);
        }
        // The whole blocks of a large write are sealed before the file's
        // lock is taken, so the kernel's parallel write-back requests use
        // every core. The partial blocks at either end need the file's
        // other bytes, so they are done under the lock.
        let bs = BLOCK as u64;
        let (mid0, mid1) = (off.div_ceil(bs), end / bs);
        let mut sealed = None;
        if mid1 > mid0 && (mid1 - mid0) * bs >= PARALLEL_SEAL_MIN {
            let id = {
                let mut st = h.node.state.write().map_err(|_| lock_err())?;
                self.ensure_staging(h.node.ino, &mut st)?;
                st.staging.as_ref().map(|s| s.id())
            };
            if let Some(id) = id {
                let whole = &data[(mid0 * bs - off) as usize..(mid1 * bs - off) as usize];
                sealed = Some((id, SealedFile::seal_blocks(&self.key, &id, mid0, whole)?));
            }
        }
        let mut st = h.node.state.write().map_err(|_| lock_err())?;
        self.ensure_staging(h.node.ino, &mut st)?;
        match (sealed, &st.staging) {
            // Unless a commit dropped the staging file in between.
            (Some((id, raw)), Some(s)) if s.id() == id => {
                s.write_sealed(mid0, &raw)?;
                if off < mid0 * bs {
                    self.write_in_block(&st, off, &data[..(mid0 * bs - off) as usize])?;
                }
                if end > mid1 * bs {
                    self.write_in_block(&st, mid1 * bs, &data[(mid1 * bs - off) as usize..])?;
                }
            }
            _ => {
                let b0 = off / bs;
                let b1 = end.div_ceil(bs);
                let mut buf = vec![0u8; ((b1 - b0) as usize) * BLOCK];
                let head = (off - b0 * bs) as usize;
                // Partial first and last blocks keep their other bytes.
                if head != 0 {
                    let blk = self.read_block(&st, b0)?;
                    buf[..BLOCK].copy_from_slice(&blk);
                }
                if end % bs != 0 && (b1 - 1 != b0 || head == 0) {
                    let blk = self.read_block(&st, b1 - 1)?;
                    let n = buf.len();
                    buf[n - BLOCK..].copy_from_slice(&blk);
                }
                buf[head..head + data.len()].copy_from_slice(data);
                if let Some(s) = &st.staging {
                    s.write_blocks(&self.key, b0, &buf)?;
                }
            }
        }
        let grew = end > st.size;
        if grew {
            st.size = end;
        }
        let size = st.size;
        let ino = h.node.ino;
        self.db.write(|c| {
            if stamp {
                inodes::set_size_and_times(c, ino, size, now())?;
            } else if grew {
                inodes::set_size(c, ino, size)?;
            }
            self.touch_content(c, ino)
        })?;
        Ok(data.len() as u32)
    }

    /// Writes `bytes` at `at`, all inside one block, keeping the block's
    /// other bytes.
    fn write_in_block(&self, st: &NodeState, at: u64, bytes: &[u8]) -> Result<()> {
        let b = at / BLOCK as u64;
        let mut blk = self.read_block(st, b)?;
        let from = (at - b * BLOCK as u64) as usize;
        blk[from..from + bytes.len()].copy_from_slice(bytes);
        match &st.staging {
            Some(s) => s.write_blocks(&self.key, b, &blk),
            None => Err(FsError::new(ErrorKind::Io, "a file being written has no staging file")),
        }
    }

    /// The 4 KiB block `b` of a file as it reads now (zeros past the end).
    fn read_block(&self, st: &NodeState, b: u64) -> Result<Vec<u8>> {
        let start = b * BLOCK as u64;
        if start >= st.size {
            return Ok(vec![0u8; BLOCK]);
        }
        let len = ((st.size - start) as usize).min(BLOCK);
        let mut v = self.read_state(st, start, len, true)?;
        v.resize(BLOCK, 0);
        Ok(v)
    }

    /// Gives the file a staging file if it has none.
    fn ensure_staging(&self, ino: Ino, st: &mut NodeState) -> Result<()> {
        if st.staging.is_some() {
            return Ok(());
        }
        let id: [u8; 16] = rand::random();
        let s = SealedFile::open(&self.staging_dir, id)?;
        self.db.write(|c| inodes::set_staging(c, ino, Some(&id)))?;
        st.staging = Some(s);
        Ok(())
    }

    /// Records that a file's content changed in this epoch.
    fn touch_content(&self, c: &Conn, ino: Ino) -> Result<()> {
        if dirty::mark_content(c, ino, self.cur_epoch())? {
            self.dirty_parents(c, ino)?;
        }
        self.sync.touched();
        Ok(())
    }

    /// Sets a file's size: cuts or extends with zeros.
    pub fn truncate(&self, ino: Ino, size: u64) -> Result<()> {
        if size > MAX_FILE_SIZE {
            return Err(FsError::new(
                ErrorKind::TooBig,
                "larger than the largest size the drive holds",
            ));
        }
        let node = self.node(ino)?;
        let res = (|| {
            let mut st = node.state.write().map_err(|_| lock_err())?;
            match st.kind {
                EntryKind::File => {}
                EntryKind::Dir => return Err(FsError::new(ErrorKind::IsDir, "a folder has no size to set")),
                _ => {
                    return Err(FsError::new(
                        ErrorKind::InvalidArgument,
                        "only files have a size to set",
                    ))
                }
            }
            if size < st.size {
                self.cut_locked(&mut st, size)?;
            }
            st.size = size;
            self.save_size_locked(ino, &st)
        })();
        drop(node);
        self.release_node(ino);
        res
    }

    /// Stores a file's new size (after a truncation or an `fallocate`),
    /// stamps its modification and change times and marks its content
    /// changed for the next commit.
    fn save_size_locked(&self, ino: u64, st: &NodeState) -> Result<()> {
        let (size, base_len) = (st.size, st.base_len);
        self.db.write(|c| {
            inodes::set_size_base_len_and_times(c, ino, size, base_len, now())?;
            self.touch_content(c, ino)
        })
    }

    /// Drops a file's content from `size` on (below its current size), so
    /// whatever later extends it there reads as zeros.
    fn cut_locked(&self, st: &mut NodeState, size: u64) -> Result<()> {
        let tail = (size % BLOCK as u64) as usize;
        if tail != 0 {
            // Zero the cut-off part of the last block, so a later
            // extension reads zeros there.
            let b = size / BLOCK as u64;
            let staged_here = match &st.staging {
                Some(s) => {
                    let mut probe = vec![0u8; BLOCK];
                    s.read_blocks(&self.key, b, &mut probe)?[0]
                }
                None => false,
            };
            if staged_here {
                let mut blk = self.read_block(st, b)?;
                blk[tail..].fill(0);
                if let Some(s) = &st.staging {
                    s.write_blocks(&self.key, b, &blk)?;
                }
            }
        }
        if let Some(s) = &st.staging {
            s.truncate_blocks(size.div_ceil(BLOCK as u64))?;
        }
        st.base_len = st.base_len.min(size);
        Ok(())
    }

    /// Linux's `fallocate`. The drive reserves no space, so allocating
    /// only grows the file (unless `keep_size`); punching a hole and
    /// zeroing a range make it read as zeros, through staging like a write.
    pub fn fallocate(&self, ino: Ino, off: u64, len: u64, mode: Fallocate) -> Result<()> {
        if Snapshots::owns(ino) {
            return Err(FsError::read_only());
        }
        let (zero, keep_size) = match mode {
            Fallocate::Allocate { keep_size } => (false, keep_size),
            Fallocate::PunchHole => (true, true),
            Fallocate::ZeroRange { keep_size } => (true, keep_size),
        };
        if len == 0 {
            return Err(FsError::new(ErrorKind::InvalidArgument, "the length of the range is 0"));
        }
        let end = off
            .checked_add(len)
            .ok_or_else(|| FsError::new(ErrorKind::InvalidArgument, "offset and length overflow"))?;
        if !zero {
            let size = self.getattr(ino)?.size;
            if !keep_size && end > size {
                self.truncate(ino, end)?;
            }
            return Ok(());
        }
        if !keep_size && end > MAX_FILE_SIZE {
            return Err(FsError::new(
                ErrorKind::TooBig,
                "larger than the largest size the drive holds",
            ));
        }
        let node = self.node(ino)?;
        let res = (|| {
            let mut st = node.state.write().map_err(|_| lock_err())?;
            match st.kind {
                EntryKind::File => {}
                EntryKind::Dir => return Err(FsError::new(ErrorKind::IsDir, "a folder has no content")),
                _ => {
                    return Err(FsError::new(
                        ErrorKind::InvalidArgument,
                        "only files have content to zero",
                    ))
                }
            }
            // Past the end there is nothing to zero: a file grown by a
            // zeroed range reads zeros there anyway.
            let zero_end = end.min(st.size);
            if off < zero_end {
                self.zero_locked(ino, &mut st, off, zero_end)?;
            }
            if !keep_size && end > st.size {
                st.size = end;
            }
            self.save_size_locked(ino, &st)
        })();
        drop(node);
        self.release_node(ino);
        res
    }

    /// Makes bytes `from..to` of a file read as zeros (`to` at most its
    /// size).
    fn zero_locked(&self, ino: Ino, st: &mut NodeState, from: u64, to: u64) -> Result<()> {
        if to >= st.size {
            // To the end: cut, and grow back.
            let size = st.size;
            self.cut_locked(st, from)?;
            st.size = size;
            return Ok(());
        }
        self.ensure_staging(ino, st)?;
        let bs = BLOCK as u64;
        // Whole blocks `b0..b1`, and the partial blocks at either end.
        let (b0, b1) = (from.div_ceil(bs), to / bs);
        if b0 > b1 {
            return self.write_in_block(st, from, &vec![0u8; (to - from) as usize]);
        }
        if from < b0 * bs {
            self.write_in_block(st, from, &vec![0u8; (b0 * bs - from) as usize])?;
        }
        if to > b1 * bs {
            self.write_in_block(st, b1 * bs, &vec![0u8; (to - b1 * bs) as usize])?;
        }
        let Some(s) = &st.staging else {
            return Err(FsError::new(ErrorKind::Io, "a file being zeroed has no staging file"));
        };
        // Blocks over stored content get staged zeros. Past it, an empty
        // slot reads as zeros, and past the staging file's end every slot
        // is empty already.
        let stored = st.base_len.div_ceil(bs);
        let staged = std::fs::metadata(s.path())
            .map_err(|e| FsError::io(format!("cannot stat staging file {}", s.path().display()), e))?
            .len()
            .div_ceil(SLOT as u64);
        const BATCH: u64 = 256;
        let mut b = b0;
        while b < b1.min(stored.max(staged)) {
            if b < stored {
                let n = (b1 - b).min(BATCH).min(stored - b);
                s.write_blocks(&self.key, b, &vec![0u8; n as usize * BLOCK])?;
                b += n;
            } else {
                let n = (b1 - b).min(BATCH).min(staged - b);
                s.write_sealed(b, &vec![0u8; n as usize * SLOT])?;
                b += n;
            }
        }
        Ok(())
    }

    // -------------------------------------------------------------- fsync

    /// Makes a file's data and every metadata change durable.
    pub fn fsync(&self, ino: Ino) -> Result<()> {
        if Snapshots::owns(ino) {
            return Ok(());
        }
        let node = self.nodes.lock().ok().and_then(|n| n.get(&ino).cloned());
        if let Some(node) = node {
            let st = node.state.read().map_err(|_| lock_err())?;
            if let Some(s) = &st.staging {
                s.sync()?;
            }
        }
        self.db.commit(true)
    }

    /// `fsync` of a folder; of the root, also commits to the vault now.
    pub fn fsyncdir(&self, ino: Ino) -> Result<()> {
        self.fsync(ino)?;
        if ino == ROOT {
            self.sync_now()?;
        }
        Ok(())
    }

    // ------------------------------------------------------------ readdir

    /// Entries after `cookie` (0 starts), at most `max`. Includes `.` and
    /// `..`.
    pub fn readdir(&self, ino: Ino, cookie: u64, max: usize) -> Result<Vec<DirEntry>> {
        if Snapshots::owns(ino) {
            return self.snapshots.readdir(self, ino, cookie, max);
        }
        self.db.read(|c| {
            let row = inodes::get(c, ino)?;
            if row.kind != EntryKind::Dir {
                return Err(not_dir());
            }
            let mut out = dot_entries(ino, if ino == ROOT { ROOT } else { row.parent }, cookie);
            out.extend(dentries::list(c, ino, cookie.saturating_sub(2) as i64, max)?);
            Ok(out)
        })
    }

    /// Entries with their attributes (for `readdirplus`).
    pub fn readdir_plus(&self, ino: Ino, cookie: u64, max: usize) -> Result<Vec<(DirEntry, Attr)>> {
        let entries = self.readdir(ino, cookie, max)?;
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            let a = self.getattr(e.ino)?;
            out.push((e, a));
        }
        Ok(out)
    }

    // ------------------------------------------------------------- statfs

    pub fn statfs(&self) -> Result<StatFs> {
        let (files, bytes) = self.db.read(inodes::totals)?;
        // The store has no fixed size; report the local disk's free space
        // (staging lands there) on top of what the drive holds.
        let (total, free) = disk_space(&self.opts.state_dir);
        let bsize = 4096u64;
        let used = bytes.div_ceil(bsize);
        Ok(StatFs {
            blocks: used + total / bsize,
            bfree: free / bsize,
            bavail: free / bsize,
            files: files + 1_000_000_000,
            ffree: 1_000_000_000,
            bsize: bsize as u32,
            namelen: nimbus_vault::tree::MAX_NAME as u32,
        })
    }

    // ------------------------------------------------------------- limits

    fn limits(&self) -> Result<std::sync::Arc<nimbus_backend::NetLimits>> {
        self.vault.backend().limits().ok_or_else(|| {
            FsError::new(
                ErrorKind::NotSupported,
                "this drive's store is on this device and has no bandwidth limits",
            )
        })
    }

    /// `up=<bytes/s> down=<bytes/s>`, either part optional; 0 lifts a limit.
    fn set_limits(&self, value: &[u8]) -> Result<()> {
        let bad = || {
            FsError::new(
                ErrorKind::InvalidArgument,
                "limits are written as `up=<bytes per second> down=<bytes per second>` (0 for none)",
            )
        };
        let text = std::str::from_utf8(value).map_err(|_| bad())?;
        let mut up = None;
        let mut down = None;
        for part in text.split_whitespace() {
            let (k, v) = part.split_once('=').ok_or_else(bad)?;
            let v: u64 = v.parse().map_err(|_| bad())?;
            match k {
                "up" => up = Some(v),
                "down" => down = Some(v),
                _ => return Err(bad()),
            }
        }
        let l = self.limits()?;
        if let Some(v) = up {
            l.set_upload_limit(Some(v).filter(|v| *v > 0));
        }
        if let Some(v) = down {
            l.set_download_limit(Some(v).filter(|v| *v > 0));
        }
        tracing::info!(
            "bandwidth limits now up {:?} down {:?} bytes/s",
            l.upload_limit(),
            l.download_limit()
        );
        Ok(())
    }

    // ------------------------------------------------------------- xattrs

    pub fn setxattr(&self, ino: Ino, name: &[u8], value: &[u8], mode: XattrMode) -> Result<()> {
        if is_acl(name) {
            return Err(no_acls());
        }
        if Snapshots::owns(ino) {
            return Err(FsError::read_only());
        }
        if name == CONTROL_PIN {
            return self.pin(ino, true);
        }
        if name == CONTROL_LIMITS && ino == ROOT {
            return self.set_limits(value);
        }
        if name.starts_with(CONTROL_PREFIX) {
            return Err(FsError::new(
                ErrorKind::NotPermitted,
                "attributes named user.nimbus.* are Nimbus's own",
            ));
        }
        if name.is_empty() || name.len() > 255 {
            return Err(FsError::new(
                ErrorKind::Range,
                "an attribute name is 1 to 255 bytes long",
            ));
        }
        if value.len() > 65536 {
            return Err(FsError::new(ErrorKind::TooBig, "an attribute value is at most 64 KiB"));
        }
        self.db.write(|c| {
            inodes::get(c, ino)?;
            let exists = xattrs::exists(c, ino, name)?;
            match (mode, exists) {
                (XattrMode::Create, true) => {
                    return Err(FsError::new(ErrorKind::Exists, "the attribute exists"));
                }
                (XattrMode::Replace, false) => {
                    return Err(FsError::new(ErrorKind::NoAttribute, "no such attribute"));
                }
                _ => {}
            }
            xattrs::set(c, ino, name, value)?;
            inodes::set_times(c, ino, None, Some(now()))?;
            if ino == ROOT {
                self.dirty_dir(c, ROOT)
            } else {
                self.dirty_parents(c, ino)
            }
        })
    }

    pub fn getxattr(&self, ino: Ino, name: &[u8]) -> Result<Vec<u8>> {
        // An ACL stored as a plain attribute by an older version stays in
        // the vault, but is not shown as if it applied.
        if is_acl(name) {
            return Err(no_acls());
        }
        if Snapshots::owns(ino) {
            return self.snapshots.getxattr(self, ino, name);
        }
        if name == CONTROL_STATUS && ino == ROOT {
            let p = self.pending()?;
            return serde_json::to_vec(&p).map_err(|e| FsError::new(ErrorKind::Io, e.to_string()));
        }
        if name == CONTROL_LIMITS && ino == ROOT {
            let l = self.limits()?;
            let text = format!(
                "up={} down={}",
                l.upload_limit().unwrap_or(0),
                l.download_limit().unwrap_or(0)
            );
            return Ok(text.into_bytes());
        }
        if name == CONTROL_PIN {
            let pinned = self.db.read(|c| pins::is_pinned(c, ino))?;
            return if pinned {
                Ok(b"1".to_vec())
            } else {
                Err(FsError::new(ErrorKind::NoAttribute, "not pinned"))
            };
        }
        self.db.read(|c| {
            inodes::get(c, ino)?;
            xattrs::get(c, ino, name)?.ok_or_else(|| FsError::new(ErrorKind::NoAttribute, "no such attribute"))
        })
    }

    pub fn listxattr(&self, ino: Ino) -> Result<Vec<Vec<u8>>> {
        let mut names = if Snapshots::owns(ino) {
            self.snapshots.listxattr(self, ino)?
        } else {
            self.db.read(|c| {
                inodes::get(c, ino)?;
                xattrs::names(c, ino)
            })?
        };
        names.retain(|n| !is_acl(n));
        Ok(names)
    }

    pub fn removexattr(&self, ino: Ino, name: &[u8]) -> Result<()> {
        if is_acl(name) {
            return Err(no_acls());
        }
        if Snapshots::owns(ino) {
            return Err(FsError::read_only());
        }
        if name == CONTROL_PIN {
            return self.pin(ino, false);
        }
        self.db.write(|c| {
            inodes::get(c, ino)?;
            if !xattrs::remove(c, ino, name)? {
                return Err(FsError::new(ErrorKind::NoAttribute, "no such attribute"));
            }
            inodes::set_times(c, ino, None, Some(now()))?;
            if ino == ROOT {
                self.dirty_dir(c, ROOT)
            } else {
                self.dirty_parents(c, ino)
            }
        })
    }

    // --------------------------------------------------------------- pins

    /// Keeps a file (or everything under a folder) on this device.
    pub fn pin(&self, ino: Ino, on: bool) -> Result<()> {
        self.db.write(|c| {
            inodes::get(c, ino)?;
            pins::set(c, ino, on)
        })?;
        self.refresh_pins()?;
        if on {
            // Fetch now what is not here yet, and wait for it.
            let ids = self.pinned_blobs()?;
            for id in &ids {
                self.blobs.get(id)?;
            }
        }
        Ok(())
    }

    /// Every blob of every pinned file (folders pin what is under them).
    fn pinned_blobs(&self) -> Result<std::collections::HashSet<nimbus_vault::BlobId>> {
        self.db.read(pins::pinned_blobs)
    }

    pub(crate) fn refresh_pins(&self) -> Result<()> {
        let ids = self.pinned_blobs()?;
        self.blobs.set_pinned(ids);
        Ok(())
    }

    /// The inode at a path relative to the root (for the CLI and tests).
    pub fn resolve(&self, path: &[u8]) -> Result<Ino> {
        let mut ino = ROOT;
        for part in path.split(|&b| b == b'/').filter(|p| !p.is_empty() && *p != b".") {
            ino = self.lookup(ino, part)?.ino;
        }
        Ok(ino)
    }

    /// Stops background work without committing, as a crash would (tests).
    #[doc(hidden)]
    pub fn shutdown_without_commit(&self) {
        self.sync.stop();
        let _ = self.db.stop();
        if let Some(h) = self.flusher.lock().ok().and_then(|mut f| f.take()) {
            let _ = h.join();
        }
    }

    /// Stops background work after a last commit to the vault.
    pub fn shutdown(&self) -> Result<()> {
        let res = self.sync_now();
        self.sync.stop();
        let db_res = self.db.stop();
        if let Some(h) = self.flusher.lock().ok().and_then(|mut f| f.take()) {
            let _ = h.join();
        }
        res.and(db_res)
    }
}

fn remove_db(path: &std::path::Path) -> Result<()> {
    for suffix in ["", "-wal", "-shm"] {
        let p = PathBuf::from(format!("{}{suffix}", path.display()));
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(FsError::io(format!("cannot remove {}", p.display()), e)),
        }
    }
    Ok(())
}

/// Total and free bytes of the file system holding `path`.
fn disk_space(path: &std::path::Path) -> (u64, u64) {
    #[cfg(unix)]
    {
        if let Ok(s) = rustix::fs::statvfs(path) {
            return (s.f_blocks * s.f_frsize, s.f_bavail * s.f_frsize);
        }
    }
    let _ = path;
    (1 << 40, 1 << 40)
}

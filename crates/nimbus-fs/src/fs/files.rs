//! File content through handles: open and close, read (with read-ahead),
//! write into staging, truncate, `fallocate`, `fsync`.

use nimbus_vault::EntryKind;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use super::{Fs, Handle};
use crate::cache::sealed_file::{SealedFile, BLOCK, SLOT};
use crate::content::{read_block, read_state, Node, NodeState};
use crate::error::{lock_err, ErrorKind, FsError, Result};
use crate::meta::{dirty, inodes, orphans, Conn};
use crate::types::*;

/// Writes with at least this much in whole blocks are sealed outside the
/// file's lock (see `write_impl`).
const PARALLEL_SEAL_MIN: u64 = 64 << 10;

/// The largest file the drive holds (the staging slot offsets must fit i64).
pub const MAX_FILE_SIZE: u64 = 1 << 50;

impl Fs {
    pub(super) fn drive_open(&self, ino: Ino, truncate: bool, stamp: bool) -> Result<u64> {
        let node = self.open_node(ino)?;
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
            if let Err(e) = self.truncate_impl(ino, 0, stamp) {
                let _ = self.close_node(node);
                return Err(e);
            }
        }
        self.new_handle(node, false, truncate)
    }

    /// A handle of an open node; `read_only` for the snapshot files, whose
    /// nodes are nobody else's; `wrote` when opening changed the content.
    pub(super) fn new_handle(&self, node: Arc<Node>, read_only: bool, wrote: bool) -> Result<u64> {
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        let h = Arc::new(Handle {
            node,
            read_only,
            next: AtomicU64::new(0),
            window: AtomicU64::new(0),
            wrote: AtomicBool::new(wrote),
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
        if h.read_only {
            // A snapshot file: its node is in no map and goes with the handle.
            return Ok(());
        }
        let node = h.node.clone();
        let wrote = h.wrote.load(Ordering::Relaxed);
        drop(h);
        let res = self.close_node(node);
        if wrote {
            // After the close: the file is most likely finished, and
            // commits soon (docs/SYNC.md §1.5).
            self.commits.closed();
        }
        res
    }

    /// Undoes one open of `node`: the last close of a file without names
    /// deletes it, or links it back when it is a merge orphan written since
    /// (`maybe_delete`).
    fn close_node(&self, node: Arc<Node>) -> Result<()> {
        let ino = node.ino;
        let last = node.opens.fetch_sub(1, Ordering::AcqRel) == 1;
        drop(node);
        if last {
            let nlink = self.local.db.read(|c| Ok(inodes::get_opt(c, ino)?.map(|r| r.nlink)))?;
            if nlink == Some(0) {
                self.maybe_delete(ino)?;
            }
            self.nodes.release(ino);
        }
        Ok(())
    }

    /// A merge orphan written since the merge, at its last close, linked
    /// back as a conflict copy in its old folder (docs/SYNC.md §4.3).
    /// `None` for any other nameless file. The caller holds the node map.
    pub(super) fn relink_orphan(&self, ino: Ino) -> Result<Option<orphans::Relinked>> {
        let (label, epoch) = (self.commits.device_label(), self.local.cur_epoch());
        let r = self
            .local
            .db
            .write(|c| orphans::relink_if_written(c, ino, &label, epoch))?;
        if r.is_some() {
            // Stamped dirty with its folders: the quiet-time clock restarts.
            self.commits.touched();
        }
        Ok(r)
    }

    /// The kernel's calls for a name [`Fs::relink_orphan`] made, sent with
    /// no core lock held. This runs on a FUSE worker (`release`), yet
    /// cannot block on the kernel: the link queues calls until a mount
    /// sets its cache (`kernel.rs`), and the mount's cache
    /// (`nimbus-fuse`'s `FuseKernelCache`, `crates/nimbus-fuse/src/kernel.rs`)
    /// only queues them to its own thread, which writes the notices.
    pub(super) fn relinked(&self, r: &orphans::Relinked) {
        let cache = self.kernel_cache();
        cache.inval_entry(r.parent, &r.name);
        cache.inval_inode(r.parent);
    }

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
        let out = read_state(&self.local, &st, off, len, !seq)?;
        // Read-ahead: a read that starts where the last ended doubles the
        // window (1 MiB to 16 MiB) of blobs fetched ahead.
        if st.staging.is_none() && !st.base.ends.is_empty() {
            let win = if seq {
                (h.window.load(Ordering::Relaxed) * 2).clamp(1 << 20, 16 << 20)
            } else {
                0
            };
            h.window.store(win, Ordering::Relaxed);
            if win > 0 && !self.manual {
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
            if !self.local.blobs.is_local(&st.base.list.0[i].0) {
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
        self.local.blobs.prefetch(&ids);
    }

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
        if h.read_only {
            return Err(FsError::read_only());
        }
        h.wrote.store(true, Ordering::Relaxed);
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
                sealed = Some((id, SealedFile::seal_blocks(&self.local.key, &id, mid0, whole)?));
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
                    let blk = read_block(&self.local, &st, b0)?;
                    buf[..BLOCK].copy_from_slice(&blk);
                }
                if end % bs != 0 && (b1 - 1 != b0 || head == 0) {
                    let blk = read_block(&self.local, &st, b1 - 1)?;
                    let n = buf.len();
                    buf[n - BLOCK..].copy_from_slice(&blk);
                }
                buf[head..head + data.len()].copy_from_slice(data);
                if let Some(s) = &st.staging {
                    s.write_blocks(&self.local.key, b0, &buf)?;
                }
            }
        }
        let grew = end > st.size;
        if grew {
            st.size = end;
        }
        let size = st.size;
        let ino = h.node.ino;
        self.local.db.write(|c| {
            if stamp {
                inodes::set_size_and_times(c, ino, size, self.now())?;
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
        let mut blk = read_block(&self.local, st, b)?;
        let from = (at - b * BLOCK as u64) as usize;
        blk[from..from + bytes.len()].copy_from_slice(bytes);
        match &st.staging {
            Some(s) => s.write_blocks(&self.local.key, b, &blk),
            None => Err(FsError::new(ErrorKind::Io, "a file being written has no staging file")),
        }
    }

    /// Gives the file a staging file if it has none.
    fn ensure_staging(&self, ino: Ino, st: &mut NodeState) -> Result<()> {
        if st.staging.is_some() {
            return Ok(());
        }
        let id: [u8; 16] = rand::random();
        let s = SealedFile::open(&self.local.staging_dir, id)?;
        self.local.db.write(|c| inodes::set_staging(c, ino, Some(&id)))?;
        st.staging = Some(s);
        Ok(())
    }

    /// Records that a file's content changed in this epoch.
    fn touch_content(&self, c: &Conn, ino: Ino) -> Result<()> {
        if dirty::mark_content(c, ino, self.local.cur_epoch())? {
            self.dirty_parents(c, ino)?;
        }
        self.commits.touched();
        Ok(())
    }

    /// Sets a file's size: cuts or extends with zeros.
    pub fn truncate(&self, ino: Ino, size: u64) -> Result<()> {
        self.truncate_impl(ino, size, true)
    }

    /// [`Fs::truncate`], stamping the times only when `stamp`.
    fn truncate_impl(&self, ino: Ino, size: u64, stamp: bool) -> Result<()> {
        if size > MAX_FILE_SIZE {
            return Err(too_big());
        }
        let node = self.nodes.get(&self.local, ino)?;
        let res = (|| {
            let mut st = node.state.write().map_err(|_| lock_err())?;
            files_only(st.kind, "a folder has no size to set", "only files have a size to set")?;
            if size < st.size {
                self.cut_locked(&mut st, size)?;
            }
            st.size = size;
            self.save_size_locked(ino, &st, stamp)
        })();
        drop(node);
        self.nodes.release(ino);
        res
    }

    /// Stores a file's new size (after a truncation or an `fallocate`),
    /// stamps its modification and change times (when `stamp`) and marks
    /// its content changed for the next commit.
    fn save_size_locked(&self, ino: u64, st: &NodeState, stamp: bool) -> Result<()> {
        let (size, base_len) = (st.size, st.base_len);
        self.local.db.write(|c| {
            if stamp {
                inodes::set_size_base_len_and_times(c, ino, size, base_len, self.now())?;
            } else {
                inodes::set_size_and_base_len(c, ino, size, base_len)?;
            }
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
                    s.read_blocks(&self.local.key, b, &mut probe)?[0]
                }
                None => false,
            };
            if staged_here {
                let mut blk = read_block(&self.local, st, b)?;
                blk[tail..].fill(0);
                if let Some(s) = &st.staging {
                    s.write_blocks(&self.local.key, b, &blk)?;
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
    /// `stamp` is false for a kernel that keeps the file's times itself
    /// (its write-back cache), as for [`Fs::write_cached`].
    pub(super) fn drive_fallocate(&self, ino: Ino, off: u64, len: u64, mode: Fallocate, stamp: bool) -> Result<()> {
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
                self.truncate_impl(ino, end, stamp)?;
            }
            return Ok(());
        }
        if !keep_size && end > MAX_FILE_SIZE {
            return Err(too_big());
        }
        let node = self.nodes.get(&self.local, ino)?;
        let res = (|| {
            let mut st = node.state.write().map_err(|_| lock_err())?;
            files_only(st.kind, "a folder has no content", "only files have content to zero")?;
            // Past the end there is nothing to zero: a file grown by a
            // zeroed range reads zeros there anyway.
            let zero_end = end.min(st.size);
            if off < zero_end {
                self.zero_locked(ino, &mut st, off, zero_end)?;
            }
            if !keep_size && end > st.size {
                st.size = end;
            }
            self.save_size_locked(ino, &st, stamp)
        })();
        drop(node);
        self.nodes.release(ino);
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
                s.write_blocks(&self.local.key, b, &vec![0u8; n as usize * BLOCK])?;
                b += n;
            } else {
                let n = (b1 - b).min(BATCH).min(staged - b);
                s.write_sealed(b, &vec![0u8; n as usize * SLOT])?;
                b += n;
            }
        }
        Ok(())
    }

    /// Makes a file's data and every metadata change durable.
    pub(super) fn drive_fsync(&self, ino: Ino) -> Result<()> {
        let node = self.nodes.loaded(ino);
        if let Some(node) = node {
            let st = node.state.read().map_err(|_| lock_err())?;
            if let Some(s) = &st.staging {
                s.sync()?;
            }
        }
        self.local.db.commit(true)
    }

    /// `fsync` of a folder; of the root, also commits to the vault now.
    pub fn fsyncdir(&self, ino: Ino) -> Result<()> {
        self.fsync(ino)?;
        if ino == ROOT {
            self.sync_now()?;
        }
        Ok(())
    }
}

/// Refuses a change of content to anything but a file: `IsDir` for a
/// folder, `InvalidArgument` for the rest.
fn files_only(kind: EntryKind, for_folder: &'static str, for_others: &'static str) -> Result<()> {
    match kind {
        EntryKind::File => Ok(()),
        EntryKind::Dir => Err(FsError::new(ErrorKind::IsDir, for_folder)),
        _ => Err(FsError::new(ErrorKind::InvalidArgument, for_others)),
    }
}

/// A size past [`MAX_FILE_SIZE`].
fn too_big() -> FsError {
    FsError::new(ErrorKind::TooBig, "larger than the largest size the drive holds")
}

#[cfg(test)]
mod orphan_tests;

#[cfg(test)]
mod tests {
    use crate::{Ctx, Fs, FsOptions, ROOT};
    use nimbus_vault::{DeviceId, KdfParams, Vault, VaultParams};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    /// Only the close of a handle that wrote shortens the quiet time
    /// before a commit (docs/SYNC.md §1.5).
    #[test]
    #[allow(clippy::unwrap_used)]
    fn closing_a_written_file_shortens_the_quiet_time() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let backend: nimbus_backend::DynBackend = Arc::new(nimbus_backend::MemoryBackend::new());
        let kdf = KdfParams::minimum();
        rt.block_on(Vault::create(backend.clone(), b"pw", VaultParams::default(), kdf))
            .unwrap();
        let vault = rt.block_on(Vault::open(backend, b"pw")).unwrap();
        let state = tempfile::tempdir().unwrap();
        let mut opts = FsOptions::new(state.path().join("vault"), DeviceId::random());
        // A fifth of it after a close: 10 s; neither ends within the test.
        opts.commit_delay = Duration::from_secs(50);
        let fs = Fs::load(vault, rt.handle().clone(), opts).unwrap();
        let long = || fs.commits.due().unwrap() > Instant::now() + Duration::from_secs(30);

        // Created and closed unwritten, then opened and closed unwritten.
        let (a, fh) = fs.create(Ctx::ROOT, ROOT, b"a", 0o644).unwrap();
        fs.release(fh).unwrap();
        assert!(long(), "a close of an unwritten file counted");
        let fh = fs.open(a.ino, false).unwrap();
        fs.read(fh, 0, 10).unwrap();
        fs.release(fh).unwrap();
        assert!(long(), "a close of a file only read counted");

        let fh = fs.open(a.ino, false).unwrap();
        fs.write(fh, 0, b"x").unwrap();
        assert!(long(), "a write without a close counted");
        fs.release(fh).unwrap();
        assert!(!long(), "the close of a written file did not count");
        fs.shutdown_without_commit();
    }
}

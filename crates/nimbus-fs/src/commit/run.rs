//! One commit, in two halves. `build`: upload the changed files, build the
//! trees, let the uploaded files read from their new blobs, and save the
//! commit object. `publish`: set the `applying` marker, write the ref, and
//! record the new head and the committed epoch as the marker is cleared. The sync cycle may merge between the two (see the
//! module comment of `commit/mod.rs` for the rules both keep).

use nimbus_vault::chunker::{self, ChunkReadError};
use nimbus_vault::{BlobKind, CommitId, EntryKind, NewCommit, Published, RefCache, Saver};
use std::collections::HashMap;
use std::io::Read;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::{Built, Engine, Serial};
use crate::cache::sealed_file::{SealedFile, BLOCK, SLOT};
use crate::content::{read_state, Node};
use crate::error::{lock_err, ErrorKind, FsError, Result};
use crate::meta::state::Applying;
use crate::meta::{dirty, inodes, state};
use crate::types::*;

/// What uploading the changed files of a commit came to.
struct Uploads {
    /// Content and length of each file uploaded whole.
    uploaded: HashMap<Ino, (ContentList, u64)>,
    /// The error that stopped the uploads, if one did.
    failure: Option<FsError>,
    /// Every file tried, and those set aside.
    tried: Vec<Ino>,
    set_aside: Vec<Ino>,
}

impl Engine {
    /// The first half of a commit: uploads the changed files, builds the
    /// trees, lets the uploaded files read from their blobs and saves the
    /// commit object, whose parent is the local head (other heads are the
    /// sync cycle's to merge). No ref names it yet: until
    /// [`Engine::publish`], the vault's history and the local state are as
    /// before, except for objects no ref reaches. `None` if nothing
    /// changed.
    pub(crate) fn build(&self, _serial: &Serial<'_>) -> Result<Option<Built>> {
        let e_old = self.local.epoch.fetch_add(1, Ordering::AcqRel);
        let (committed, changed_files, root_dirty) = self.local.db.write(|c| {
            state::set_epoch(c, e_old + 1)?;
            let committed = state::committed_epoch(c)?;
            let files = dirty::changed_files(c, committed)?;
            let root = inodes::get(c, ROOT)?;
            Ok((committed, files, root.dirty_epoch > committed || root.tree_id.is_none()))
        })?;
        if !root_dirty && changed_files.is_empty() {
            return Ok(None);
        }
        let _rt = self.local.rt.enter();
        let saver = Saver::new(&self.local.vault);
        if let Some(hook) = self.local.blobs.write_through() {
            saver.set_data_hook(hook);
        }
        let Uploads {
            uploaded,
            failure,
            tried,
            set_aside,
        } = self.upload_changed(changed_files, e_old, &saver)?;
        if failure.is_none() {
            self.keep_set_aside(&tried, &set_aside)?;
        }
        let root = match failure {
            Some(e) => Err(e),
            None => self.build_tree(ROOT, committed, &saver, &uploaded, 0),
        };
        // Even after a failure, finish: what did upload gets indexed.
        let finished = self.local.rt.block_on(saver.finish());
        let root = root?;
        let stats = finished?;
        self.adopt_uploads(&uploaded, e_old)?;
        let (head, files, bytes) = self.local.db.read(|c| {
            let (files, bytes) = inodes::file_totals(c)?;
            Ok((state::head(c)?, files, bytes))
        })?;
        let new = NewCommit {
            root,
            parents: head.into_iter().collect(),
            device: self.opts.device,
            // As last renamed (docs/SYNC.md §2.3).
            device_name: self.device_name(),
            time: self.local.clock.now(),
            message: "drive".into(),
            files,
            bytes,
            // The index objects this save wrote, named in the commit (v3).
            indexes: stats.indexes,
        };
        let (id, commit) = self.local.rt.block_on(self.local.vault.write_commit(new))?;
        Ok(Some(Built { id, commit, e_old }))
    }

    /// Uploads the changed files, in order, until one fails. A file gone,
    /// or changed while it was read, is left out; a damaged one is set
    /// aside. An error of the database stops at once (returned as `Err`);
    /// a failure of a file is returned in [`Uploads::failure`], so that
    /// what did upload still gets indexed.
    fn upload_changed(&self, changed_files: Vec<Ino>, e_old: u64, saver: &Saver) -> Result<Uploads> {
        let mut uploaded: HashMap<Ino, (ContentList, u64)> = HashMap::new();
        let mut failure = None;
        let mut tried = Vec::new();
        let mut set_aside = Vec::new();
        for ino in changed_files {
            tried.push(ino);
            let node = match self.nodes.get(&self.local, ino) {
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            };
            let res = self.upload_file(&node, saver);
            drop(node);
            self.nodes.release(ino);
            match res {
                // Gone, or changed while it was read: not in this commit
                // (a change keeps it dirty for the next one).
                Ok(v) => match self.local.db.read(|c| inodes::get_opt(c, ino))? {
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
        Ok(Uploads {
            uploaded,
            failure,
            tried,
            set_aside,
        })
    }

    /// The second half of a commit, through the `applying` marker
    /// (docs/SYNC.md §4.2): records durably that `built` is being
    /// published, points this device's ref at it (the pre-publish poll
    /// through `cache`), then records it as the local head and its epoch as
    /// committed and clears the marker, in one transaction. A failure
    /// before the ref leaves the marker set: the next attempt (or the next
    /// start) writes the ref again for the same commit rather than
    /// building a second one on the old parent, since a ref PUT can land
    /// although it reported an error. Returns the ref write, whose poll
    /// the caller must treat as news (see `Vault::write_ref_with`).
    pub(crate) fn publish(&self, _serial: &Serial<'_>, built: Built, cache: &mut RefCache) -> Result<Published> {
        let Built { id: cid, commit, e_old } = built;
        let marker = Applying {
            head: cid,
            publish: true,
            epoch: Some(e_old),
        };
        self.local.db.write(|c| state::set_applying(c, &marker))?;
        self.local.db.commit(true)?;
        let published = self.write_own_ref(cid, cache)?;
        self.complete(&marker, published.seq)?;
        tracing::debug!("published commit {cid}: {} files, {} bytes", commit.files, commit.bytes);
        Ok(published)
    }

    /// Points this device's ref at `head` (see `Vault::write_ref_with`),
    /// above every update number of it seen.
    pub(crate) fn write_own_ref(&self, head: CommitId, cache: &mut RefCache) -> Result<Published> {
        let ref_seen = self
            .local
            .db
            .read(|c| Ok(state::ref_seen(c)?.max(self.opts.ref_seen)))?;
        let published = self.local.rt.block_on(self.local.vault.write_ref_with(
            &self.opts.device,
            head,
            ref_seen,
            cache,
        ))?;
        if published.rescue.lost > 0 {
            // Only after the machine slept through a whole grace period
            // with this publish in flight (docs/PRUNE.md §6).
            tracing::warn!(
                "{} pieces of this snapshot were pruned while it was being published; `nimbus check --repair` puts them back from this device",
                published.rescue.lost
            );
        }
        Ok(published)
    }

    /// Finishes a published head change of this device (`marker.publish`:
    /// its own commit, the rows already are it): in one durable
    /// transaction the head, the ref's update number `seq`, the committed
    /// epoch, and the marker cleared; then tells the snapshots and
    /// `on_commit`. The extra parent goes when it is the new head itself
    /// (else the sync cycle takes it in as a head).
    pub(crate) fn complete(&self, marker: &Applying, seq: u64) -> Result<()> {
        self.local.db.write(|c| {
            state::set_head(c, &marker.head)?;
            if state::extra_parent(c)? == Some(marker.head) {
                state::set_extra_parent(c, None)?;
            }
            state::set_ref_seen(c, seq.max(state::ref_seen(c)?))?;
            if let Some(e) = marker.epoch {
                state::set_committed_epoch(c, e)?;
            }
            state::clear_applying(c)
        })?;
        self.local.db.commit(true)?;
        self.head_changed(Some((marker.head, seq)));
        Ok(())
    }

    /// Records `seq` as the newest update number of this device's ref (a
    /// merge's ref, written before its apply records the head).
    pub(crate) fn note_ref_seq(&self, seq: u64) -> Result<()> {
        self.local
            .db
            .write(|c| state::set_ref_seen(c, seq.max(state::ref_seen(c)?)))?;
        self.local.db.commit(true)
    }

    /// The head changed: the snapshots are listed again, and `on_commit`
    /// hears of this device's ref when it moved (`published`: the head and
    /// the ref's update number).
    pub(crate) fn head_changed(&self, published: Option<(CommitId, u64)>) {
        self.snapshots.invalidate();
        if let (Some((head, seq)), Some(cb)) = (published, &self.opts.on_commit) {
            cb(head, seq);
        }
    }

    /// This device's id in the vault.
    pub(crate) fn device(&self) -> nimbus_vault::DeviceId {
        self.opts.device
    }

    /// This device's name, as its next commit carries it.
    pub(crate) fn device_name(&self) -> String {
        self.name.read().map(|n| n.clone()).unwrap_or_default()
    }

    /// Renames this device: its next commit (or merge, or conflict copy
    /// made here) carries the new name.
    pub(crate) fn set_device_name(&self, name: &str) {
        if let Ok(mut n) = self.name.write() {
            *n = name.to_string();
        }
    }

    /// Whether a file has no name left in the drive.
    fn is_gone(&self, ino: Ino) -> Result<bool> {
        Ok(self
            .local
            .db
            .read(|c| inodes::get_opt(c, ino))?
            .is_none_or(|r| r.nlink == 0))
    }

    /// Keeps the files set aside by this commit pending (stamped with the
    /// epoch after it, with their folders, as a write would) and remembers
    /// them for `pending`. No quiet-time clock is restarted: a damaged
    /// file is tried again with the next change or asked-for commit, not in
    /// a loop.
    fn keep_set_aside(&self, tried: &[Ino], set_aside: &[Ino]) -> Result<()> {
        if !set_aside.is_empty() {
            let epoch = self.local.cur_epoch();
            self.local.db.write(|c| {
                // Folders up to the first one already stamped: the
                // invariant in the module comment holds above it.
                for &ino in set_aside {
                    dirty::stamp(c, ino, epoch)?;
                    dirty::mark_parents(c, ino, epoch)?;
                }
                Ok(())
            })?;
        }
        self.sched.note_set_aside(tried, set_aside)
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
        let params = self.local.vault.params().chunker;
        let seed = self.local.vault.chunker_seed_for_saving();
        let mut reader = FileReader {
            engine: self,
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
            let node = match self.nodes.get(&self.local, ino) {
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            {
                let mut st = node.state.write().map_err(|_| lock_err())?;
                let unchanged = self.local.db.write(|c| {
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
            self.nodes.release(ino);
        }
        if !dropped.is_empty() {
            self.local.db.commit(true)?;
            for id in dropped {
                let _ = std::fs::remove_file(SealedFile::path_for(&self.local.staging_dir, &id));
            }
        }
        self.local.refresh_pins()?;
        Ok(())
    }
}

/// The offset of the first staged block (the staging file is sparse).
fn first_staged_offset(s: &SealedFile) -> u64 {
    #[cfg(target_os = "linux")]
    {
        if let Ok(f) = std::fs::File::open(s.path()) {
            if let Ok(off) = rustix::fs::seek(&f, rustix::fs::SeekFrom::Data(0)) {
                return off / SLOT as u64 * BLOCK as u64;
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
    engine: &'a Engine,
    node: &'a Arc<Node>,
    at: u64,
    /// Where reading started.
    from: u64,
    /// The error that stopped the read, as the drive reported it.
    err: Option<FsError>,
}

impl Read for FileReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.at > self.from {
            if let Some(h) = self.engine.between_pieces.get() {
                h(self.node.ino);
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
        let data = match read_state(&self.engine.local, &st, self.at, n, false) {
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

//! The rebase of the working copy onto a new head (docs/SYNC.md §4.3): the
//! rows become the target's tree, except where the person changed
//! something after the changes the target already holds (`since`), which
//! stays, newest of all; and the kernel calls that make a mount forget
//! exactly what changed (§4.5), to be sent once every lock is let go.
//!
//! It reads the trees that differ between the last synced tree and the
//! target first, with no lock held; then, under the node map (§4.4) and in
//! one database transaction, it changes the rows and the state (head,
//! committed epoch, the `applying` marker). Files whose content changed
//! get a new inode when the kernel may cache the old one (its write-back
//! cache trusts its own size); a file changed here keeps its name, inode
//! and content, and the target's version becomes a conflict copy beside
//! it. A file open here and not changed, whose content the target changed
//! or that it deleted, loses its names to the target's version (or to
//! nothing) and lives on for its handles as a merge orphan
//! (`meta/orphans.rs`), linked back as a conflict copy at its last close
//! if it was written meanwhile.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::Ordering;

use nimbus_merge::names::{conflict_name, parse_conflict_name};
use nimbus_merge::{flatten, Content, Flat, Node, Place, TreeId, Trees, ROOT as ROOT_ID};
use nimbus_vault::{CommitId, EntryKind, FileId, Timestamp};

use super::trees::VaultTrees;
use crate::content::{NodeMap, Nodes};
use crate::error::{FsError, Result};
use crate::kernel::{KernelCache, KernelCall, KernelRefs};
use crate::local::Local;
use crate::meta::inodes::{self, Row};
use crate::meta::orphans::{self, Orphan};
use crate::meta::{dentries, dirty, pins, state, xattrs, Conn};
use crate::types::{ContentList, Ino, ROOT};

/// What the apply must reach: the new head and its root tree, and how the
/// target's versions are named when they become conflict copies.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub head: CommitId,
    pub root: TreeId,
    /// The device label of the head (`nimbus_merge::names::device_label`)
    /// and its time (the store's, else the commit's), for conflict names.
    pub device: String,
    pub time: Timestamp,
    /// `(gone, kept)`: ids the merge folded into another
    /// (`nimbus_merge::Merged::aliases`, in order); the inode of `gone`
    /// takes the id `kept`.
    pub aliases: Vec<(FileId, FileId)>,
}

/// What an apply changed, by kind, for the status and events (§5.1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ApplyReport {
    pub added: usize,
    /// Content changed.
    pub changed: usize,
    /// Place changed (name or folder).
    pub moved: usize,
    /// Only metadata changed.
    pub meta: usize,
    pub deleted: usize,
    /// Deleted, changed or moved in the target but kept here as the person
    /// left it (an open file the target deleted counts as deleted: it lives
    /// on nameless for its handles).
    pub kept: usize,
    /// Conflict copies made: their inodes, and the id of the file each is
    /// a version of.
    pub copies: Vec<(Ino, FileId)>,
    /// What each id the target brought became here, one word per id (the
    /// strongest: added, deleted, changed, moved), for the events (§5.1).
    pub touched: BTreeMap<FileId, Touch>,
    /// Added files with a conflict copy's name (§3.6): copies a merge made,
    /// here or on another device, arriving.
    pub arrived_copies: Vec<FileId>,
}

/// What the apply did to one id, for the events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Touch {
    pub what: What,
    pub dir: bool,
    /// A deleted entry's path, read before it went (only for the first
    /// few, which the events name).
    pub path: Option<String>,
}

/// The kinds of change an event counts, weakest first: an id moved and
/// changed is "changed".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum What {
    Moved,
    Changed,
    Deleted,
    Added,
}

/// How many deleted entries' paths the apply reads for the events.
const PATHS: usize = 5;

/// The result of [`apply`].
#[derive(Debug, Clone, Default)]
pub(crate) struct Applied {
    /// The kernel calls to make once no core lock is held (sorted, each once).
    pub calls: Vec<KernelCall>,
    pub report: ApplyReport,
}

impl Applied {
    /// Sends the calls: only after [`apply`] returned, with no core lock
    /// held, never on a FUSE worker (`kernel.rs`).
    pub fn send_calls(&self, cache: &dyn KernelCache) {
        for call in &self.calls {
            call.send_to(cache);
        }
    }
}

/// The caller holds `Engine::serial` (no commit runs beside it) and no
/// other core lock.
///
/// Applies `target` to the working copy whose last synced tree is `base`
/// (`c`'s root when a commit was just built, else the local head's;
/// `None` only for an empty working copy), keeping local changes with `dirty_epoch > since` (they
/// are newer than anything in the target), in one transaction that also
/// sets the head to `target.head`, the committed epoch to `committed` (when
/// given) and clears the `applying` marker. Returns what changed and the
/// kernel calls to make afterwards ([`Applied::send_calls`]).
pub(crate) fn apply(
    local: &Local,
    nodes: &Nodes,
    kernel_refs: &KernelRefs,
    base: Option<TreeId>,
    target: &Target,
    since: u64,
    committed: Option<u64>,
) -> Result<Applied> {
    // Reads (maybe from the store) before any lock is taken.
    let mut trees = VaultTrees::reader(&local.blobs);
    let mut flats = flatten(&mut trees, &[base, Some(target.root)])?;
    let theirs = flats.pop().unwrap_or_default();
    let mut ours = flats.pop().unwrap_or_default();
    alias_base(&mut ours, &target.aliases);
    let folder_trees = folder_trees(&mut trees, target.root, &theirs)?;
    let epoch = local.cur_epoch();
    let applied = {
        let mut map = nodes.lock()?;
        local.db.write(|c| {
            let mut r = Rebase {
                c,
                local,
                map: &mut map,
                refs: kernel_refs,
                base: &ours,
                theirs: &theirs,
                target,
                since,
                epoch,
                detached: HashMap::new(),
                not_theirs: HashSet::new(),
                calls: BTreeSet::new(),
                report: ApplyReport::default(),
            };
            r.run(&folder_trees)?;
            state::set_head(c, &target.head)?;
            if let Some(e) = committed {
                state::set_committed_epoch(c, e)?;
            }
            state::clear_applying(c)?;
            Ok(Applied {
                calls: r.calls.into_iter().collect(),
                report: r.report,
            })
        })?
    };
    local.db.commit(true)?;
    // New blobs of pinned files and folders stay on this device.
    local.refresh_pins()?;
    Ok(applied)
}

/// The base as the target sees it: an id the merge folded into another
/// (`gone -> kept`) is that other one, with its children.
fn alias_base(base: &mut Flat, aliases: &[(FileId, FileId)]) {
    for (gone, kept) in aliases {
        let Some(node) = base.remove(gone) else { continue };
        base.entry(*kept).or_insert(node);
        for n in base.values_mut() {
            if n.places.iter().any(|p| p.parent == *gone) {
                n.places = std::mem::take(&mut n.places)
                    .into_iter()
                    .map(|p| {
                        if p.parent == *gone {
                            Place { parent: *kept, ..p }
                        } else {
                            p
                        }
                    })
                    .collect();
            }
        }
    }
}

/// The tree id of every folder the flattening opened in the target (and
/// of the root): a folder whose rows become the target's gets it, so the
/// next commit reuses it instead of rebuilding it. Every tree read here
/// was read by the flattening, so this costs no request.
fn folder_trees<T: Trees<Error = FsError>>(
    trees: &mut T,
    root: TreeId,
    flat: &Flat,
) -> Result<HashMap<FileId, TreeId>> {
    let mut out = HashMap::from([(ROOT_ID, root)]);
    let mut todo = vec![root];
    while let Some(id) = todo.pop() {
        for e in trees.get(&id)?.entries {
            let opened = flat
                .get(&e.file_id)
                .is_some_and(|n| n.kind == EntryKind::Dir && n.content.tree.is_none());
            if let (EntryKind::Dir, Some(sub), true) = (e.kind, e.subtree, opened) {
                if out.insert(e.file_id, sub).is_none() {
                    todo.push(sub);
                }
            }
        }
    }
    Ok(out)
}

/// How deep a node sits in its version (the root's children are 1), by
/// its deepest name: every folder it is in comes before it.
fn depth(flat: &Flat, id: &FileId) -> usize {
    fn at(flat: &Flat, id: &FileId, limit: usize) -> usize {
        if *id == ROOT_ID || limit == 0 {
            return 0;
        }
        let deepest = flat
            .get(id)
            .map(|n| {
                n.places
                    .iter()
                    .map(|p| at(flat, &p.parent, limit - 1))
                    .max()
                    .unwrap_or(0)
            })
            .unwrap_or(0);
        deepest + 1
    }
    at(flat, id, 256)
}

/// One apply, inside the transaction and under the node map.
struct Rebase<'a> {
    c: &'a Conn,
    local: &'a Local,
    map: &'a mut NodeMap,
    refs: &'a KernelRefs,
    base: &'a Flat,
    theirs: &'a Flat,
    target: &'a Target,
    since: u64,
    /// Stamps of what the apply itself leaves different from the target
    /// (conflict copies, kept entries, resurrected folders): the next
    /// commit writes their folders' trees.
    epoch: u64,
    /// Ids whose old names were taken off for the target's place, and
    /// their inodes (nameless until their new names are attached).
    detached: HashMap<FileId, Ino>,
    /// Folders the target puts an entry in that stays elsewhere here (the
    /// person moved it too): they hold less than the target's trees, so
    /// they are stamped instead of taking them.
    not_theirs: HashSet<FileId>,
    calls: BTreeSet<KernelCall>,
    report: ApplyReport,
}

impl Rebase<'_> {
    fn run(&mut self, folder_trees: &HashMap<FileId, TreeId>) -> Result<()> {
        for (gone, kept) in &self.target.aliases {
            if let (Some(row), None) = (self.live(gone)?, self.live(kept)?) {
                inodes::set_file_id(self.c, row.ino, kept)?;
            }
        }
        let ids: BTreeSet<FileId> = self.base.keys().chain(self.theirs.keys()).copied().collect();
        let changed: Vec<FileId> = ids
            .into_iter()
            .filter(|id| self.base.get(id) != self.theirs.get(id))
            .collect();
        // An id that changed kind (never made by a drive, possible in a
        // tree) is a deletion and a new entry.
        let retyped: HashSet<FileId> = changed
            .iter()
            .filter(|id| match (self.base.get(id), self.theirs.get(id)) {
                (Some(b), Some(t)) => b.kind != t.kind,
                _ => false,
            })
            .copied()
            .collect();
        // Names leave first, so a swap or a move into a freed name finds
        // it free; then deletions bottom-up; then the rest top-down.
        for id in &changed {
            if let (Some(b), Some(t), false) = (self.base.get(id), self.theirs.get(id), retyped.contains(id)) {
                if b.places != t.places {
                    self.detach(id, b, t)?;
                }
            }
        }
        self.remove_all(&changed, &retyped)?;
        self.add_all(&changed, &retyped)?;
        self.adopt_trees(folder_trees)
    }

    /// The ids the target deleted (or retyped), deepest first.
    fn remove_all(&mut self, changed: &[FileId], retyped: &HashSet<FileId>) -> Result<()> {
        let mut gone: Vec<&FileId> = changed
            .iter()
            .filter(|id| !self.theirs.contains_key(id) || retyped.contains(id))
            .collect();
        gone.sort_by_key(|id| std::cmp::Reverse(depth(self.base, id)));
        for id in gone {
            if let Some(b) = self.base.get(id) {
                self.delete_or_keep(id, b)?;
            }
        }
        Ok(())
    }

    /// The ids the target added or changed, shallowest first.
    fn add_all(&mut self, changed: &[FileId], retyped: &HashSet<FileId>) -> Result<()> {
        let mut present: Vec<&FileId> = changed.iter().filter(|id| self.theirs.contains_key(id)).collect();
        present.sort_by_key(|id| depth(self.theirs, id));
        for id in present {
            let Some(t) = self.theirs.get(id) else { continue };
            match self.live(id)? {
                // Kept here against the deletion: the person's stays.
                Some(_) if retyped.contains(id) => {}
                Some(row) => self.update(id, &row, self.base.get(id), t)?,
                None if self.base.get(id).is_none() || retyped.contains(id) => {
                    self.create(id, t, false)?;
                    self.report.added += 1;
                    self.touch(id, What::Added, t.kind == EntryKind::Dir, None);
                    if t.kind != EntryKind::Dir && t.places.iter().any(|p| parse_conflict_name(&p.name).is_some()) {
                        self.report.arrived_copies.push(*id);
                    }
                }
                // Deleted here since, changed there: an edit beats a
                // delete, so it comes back, marked changed.
                None => {
                    self.create(id, t, true)?;
                    self.report.kept += 1;
                }
            }
        }
        Ok(())
    }

    /// The inode holding `id` with a name (an inode without names is an
    /// old version the kernel or a handle still holds).
    fn live(&self, id: &FileId) -> Result<Option<Row>> {
        if *id == ROOT_ID {
            return inodes::get_opt(self.c, ROOT);
        }
        let detached = self.detached.get(id);
        Ok(inodes::by_file_id(self.c, id)?
            .into_iter()
            .find(|r| r.nlink > 0 || detached == Some(&r.ino)))
    }

    fn is_open(&self, ino: Ino) -> bool {
        self.map.get(&ino).is_some_and(|n| n.opens.load(Ordering::Acquire) > 0)
    }

    /// A loaded node no handle has is dropped, so it reloads the new row.
    fn forget_node(&mut self, ino: Ino) {
        if !self.is_open(ino) {
            self.map.remove(&ino);
        }
    }

    /// The folder holding `id` here, if it is one.
    fn folder(&self, id: &FileId) -> Result<Option<Ino>> {
        Ok(self.live(id)?.filter(|r| r.kind == EntryKind::Dir).map(|r| r.ino))
    }

    /// The file id of the folder `ino` (the root's is the merge's).
    fn id_of_folder(&self, ino: Ino) -> Result<FileId> {
        if ino == ROOT {
            return Ok(ROOT_ID);
        }
        Ok(inodes::get(self.c, ino)?.file_id)
    }

    /// Whether the flattening read folder `id` (the root always). A
    /// folder the same in the base and the target is taken whole, so the
    /// names in it are in neither: a hard link's name there is no place
    /// the target moved, and must be left out of every comparison (it
    /// made the apply keep a hard-linked file's old name as if the person
    /// had moved it, and the devices never converged; found by the
    /// simulation, docs/SYNC.md §6.2).
    fn opened(&self, id: &FileId) -> bool {
        *id == ROOT_ID
            || [self.base, self.theirs].iter().any(|f| {
                f.get(id)
                    .is_some_and(|n| n.kind == EntryKind::Dir && n.content.tree.is_none())
            })
    }

    /// The places of an inode here that the merge sees (in folders the
    /// flattening read), as it names them.
    fn places_here(&self, ino: Ino) -> Result<BTreeSet<Place>> {
        let mut out = BTreeSet::new();
        for (parent, name) in dentries::names_of(self.c, ino)? {
            let parent = self.id_of_folder(parent)?;
            if self.opened(&parent) {
                out.insert(Place { parent, name });
            }
        }
        Ok(out)
    }

    /// Whether the person changed the row after `since`, against its base.
    fn changed_here(&self, row: &Row, b: &Node) -> Result<bool> {
        if row.kind != EntryKind::Dir && (row.dirty_epoch > self.since || row.staging.is_some()) {
            return Ok(true);
        }
        let meta = row.mode != b.meta.mode
            || row.uid != b.meta.uid
            || row.gid != b.meta.gid
            || row.mtime != b.meta.mtime
            || xattr_map(&xattrs::all(self.c, row.ino)?) != b.meta.xattrs;
        Ok(meta || self.places_here(row.ino)? != b.places)
    }

    fn stamp_parents(&self, ino: Ino) -> Result<()> {
        dirty::mark_parents(self.c, ino, self.epoch)
    }

    /// Takes off the names the target moved away from, unless the person
    /// moved the entry here too (then theirs stays: it is newer).
    fn detach(&mut self, id: &FileId, b: &Node, t: &Node) -> Result<()> {
        let Some(row) = self.live(id)? else { return Ok(()) };
        if self.places_here(row.ino)? != b.places {
            self.report.kept += 1;
            self.not_theirs.extend(t.places.difference(&b.places).map(|p| p.parent));
            return Ok(());
        }
        self.detached.insert(*id, row.ino);
        for (parent, name) in dentries::names_of(self.c, row.ino)? {
            let place = Place {
                parent: self.id_of_folder(parent)?,
                name: name.clone(),
            };
            if t.places.contains(&place) || !self.opened(&place.parent) {
                continue;
            }
            dentries::remove(self.c, parent, &name)?;
            if row.kind == EntryKind::Dir {
                inodes::add_nlink(self.c, parent, -1)?;
            } else {
                inodes::add_nlink(self.c, row.ino, -1)?;
            }
            self.name_changed(parent, &name);
        }
        self.report.moved += 1;
        self.touch(id, What::Moved, row.kind == EntryKind::Dir, None);
        Ok(())
    }

    /// Notes what the apply did to `id`, keeping the strongest word.
    fn touch(&mut self, id: &FileId, what: What, dir: bool, path: Option<String>) {
        let t = self
            .report
            .touched
            .entry(*id)
            .or_insert(Touch { what, dir, path: None });
        t.what = t.what.max(what);
        if path.is_some() {
            t.path = path;
        }
    }

    fn name_changed(&mut self, parent: Ino, name: &[u8]) {
        self.calls.insert(KernelCall::Entry {
            parent,
            name: name.to_vec(),
        });
        self.calls.insert(KernelCall::Inode(parent));
    }

    /// Gives `ino` the name `place` (a conflict name when another entry
    /// made here holds it: the person's entry keeps its name).
    fn attach(&mut self, ino: Ino, kind: EntryKind, place: &Place) -> Result<()> {
        let parent = match self.folder(&place.parent)? {
            Some(p) => p,
            None => self.resurrect(&place.parent)?,
        };
        let parent = if kind == EntryKind::Dir && inodes::check_not_inside(self.c, ino, parent).is_err() {
            // The person moved the other folder into this one here: a
            // cycle; this one goes to the root (the next commit says so).
            ROOT
        } else {
            parent
        };
        let name = self.free_name(parent, &place.name, kind)?;
        // A stamped entry (changed here, or a folder holding a change made
        // here) stamps its new folders too: a stamped row's folders are
        // stamped, else they would take the target's trees, which lack the
        // change, and the next commit would leave it out.
        let changed_inside = inodes::get(self.c, ino)?.dirty_epoch > self.since;
        if changed_inside || name != place.name || (parent == ROOT && place.parent != ROOT_ID) {
            dirty::mark_dir(self.c, parent, self.epoch)?;
        }
        dentries::add(self.c, parent, &name, ino)?;
        if kind == EntryKind::Dir {
            inodes::add_nlink(self.c, parent, 1)?;
            inodes::set_parent(self.c, ino, parent)?;
        } else {
            inodes::add_nlink(self.c, ino, 1)?;
        }
        self.name_changed(parent, &name);
        Ok(())
    }

    /// `name` in `parent` if free, else its first free conflict name.
    fn free_name(&self, parent: Ino, name: &[u8], kind: EntryKind) -> Result<Vec<u8>> {
        if dentries::lookup(self.c, parent, name)?.is_none() {
            return Ok(name.to_vec());
        }
        let taken = |n: &[u8]| dentries::lookup(self.c, parent, n).map(|o| o.is_some()).unwrap_or(true);
        Ok(conflict_name(
            name,
            kind == EntryKind::Dir,
            &self.target.device,
            self.target.time,
            taken,
        ))
    }

    /// A folder the target needs that is gone here (the person deleted it
    /// after `since`): it comes back, marked changed, so the next commit
    /// writes it with only what survives in it.
    fn resurrect(&mut self, id: &FileId) -> Result<Ino> {
        if self.live(id)?.is_some() {
            // Here as something else than a folder: not a place for names.
            return Ok(ROOT);
        }
        let node = self
            .theirs
            .get(id)
            .or_else(|| self.base.get(id))
            .filter(|n| n.kind == EntryKind::Dir)
            .cloned();
        match node {
            Some(n) => self.create(id, &n, true),
            // Never in a tree the merge built: its children go to the root.
            None => Ok(ROOT),
        }
    }

    /// A new inode for the target's node `t`, with all its names.
    /// `resurrected`: it is here against the person's deletion, so it is
    /// marked changed (its folder's tree must be written again).
    fn create(&mut self, id: &FileId, t: &Node, resurrected: bool) -> Result<Ino> {
        if t.is_whole() {
            // A folder moved there unchanged, deleted here since: the
            // delete stays (its contents were not read).
            if let Some(p) = t.places.iter().next() {
                if let Some(parent) = self.folder(&p.parent)? {
                    dirty::mark_dir(self.c, parent, self.epoch)?;
                }
            }
            return Ok(ROOT);
        }
        let epoch = if resurrected { self.epoch } else { 0 };
        let nlink = if t.kind == EntryKind::Dir { 2 } else { 0 };
        let ino = self.insert_row(id, t, nlink, epoch)?;
        for p in t.places.clone() {
            self.attach(ino, t.kind, &p)?;
        }
        if resurrected {
            self.stamp_parents(ino)?;
            if t.kind == EntryKind::Dir {
                dirty::mark_dir(self.c, ino, self.epoch)?;
            }
        }
        Ok(ino)
    }

    /// Inserts a row holding `t`'s content and metadata (no names yet).
    fn insert_row(&mut self, id: &FileId, t: &Node, nlink: u32, epoch: u64) -> Result<Ino> {
        let target = (t.kind == EntryKind::Symlink).then_some(t.content.target.as_slice());
        let m = &t.meta;
        let ino = inodes::insert(
            self.c,
            t.kind,
            m.mode,
            m.uid,
            m.gid,
            t.content.rdev,
            nlink,
            m.mtime,
            ROOT,
            id,
            target,
            epoch,
        )?;
        inodes::set_times(self.c, ino, None, Some(m.ctime))?;
        for (name, value) in &m.xattrs {
            xattrs::set(self.c, ino, name, value)?;
        }
        if t.kind == EntryKind::File {
            let list = self.content_list(&t.content)?;
            inodes::set_content(self.c, ino, &list, list.len_bytes())?;
        }
        Ok(ino)
    }

    /// A file's blobs with their lengths, from the vault's index.
    fn content_list(&self, content: &Content) -> Result<ContentList> {
        let mut list = Vec::with_capacity(content.blobs.len());
        for id in &content.blobs {
            list.push((*id, self.local.vault.locate_or_err(id)?.raw_len));
        }
        Ok(ContentList(list))
    }

    /// An id in both the rows and the target, changed in the target.
    fn update(&mut self, id: &FileId, row: &Row, b: Option<&Node>, t: &Node) -> Result<()> {
        let mut ino = row.ino;
        if row.kind != EntryKind::Dir || t.kind != EntryKind::Dir {
            ino = self.update_content(id, row, b, t)?;
        }
        let kind = if ino == row.ino { row.kind } else { t.kind };
        match b {
            Some(b) => {
                if b.places != t.places && self.detached.contains_key(id) {
                    self.attach_missing(ino, kind, t)?;
                }
                self.update_meta(ino, row, b, t)?;
            }
            // An id the base lacks but a row holds: a hard-linked file
            // whose other names are in folders the flattening did not read
            // (or an apply run again). The target's names it lacks here are
            // new there, never taken off here: without them the rows lacked
            // a name their folder's adopted tree has, and the devices never
            // converged (found by the simulation, docs/SYNC.md §6.2). A
            // folder has one name, never in a folder left unread.
            None if kind != EntryKind::Dir => self.attach_missing(ino, kind, t)?,
            None => {}
        }
        Ok(())
    }

    /// Gives `ino` each of the target's names it lacks here.
    fn attach_missing(&mut self, ino: Ino, kind: EntryKind, t: &Node) -> Result<()> {
        let here = self.places_here(ino)?;
        for p in t.places.difference(&here).cloned().collect::<Vec<_>>() {
            self.attach(ino, kind, &p)?;
        }
        Ok(())
    }

    /// The content rule of §4.3; returns the inode that holds the names now.
    fn update_content(&mut self, id: &FileId, row: &Row, b: Option<&Node>, t: &Node) -> Result<Ino> {
        // An id the base lacks but a row holds (an alias, an apply run
        // again): the row is compared itself.
        let content = match b {
            Some(b) => b.kind != t.kind || b.content != t.content,
            None => !same_content(row, t),
        };
        // The write-back cache keeps a file's times as well as its size.
        let mtime = t.kind == EntryKind::File && b.map_or(row.mtime, |b| b.meta.mtime) != t.meta.mtime;
        let here = row.dirty_epoch > self.since || row.staging.is_some();
        if here {
            // The same change made on both sides is one change (§3.3).
            if content && !(row.staging.is_none() && same_content(row, t)) {
                self.conflict_copy(id, row, t)?;
            }
            return Ok(row.ino);
        }
        if !content && !mtime {
            return Ok(row.ino);
        }
        if content {
            self.report.changed += 1;
            self.touch(id, What::Changed, false, None);
        }
        if self.is_open(row.ino) {
            // Its handles keep the version they opened; the name goes to
            // the target's (§4.3, open files).
            let (parent, name) = self.old_place(row, b, t)?;
            let ino = self.replace(row, t)?;
            self.orphan(row, parent, name)?;
            return Ok(ino);
        }
        if row.kind != t.kind || self.refs.knows(row.ino) {
            return self.replace(row, t);
        }
        let list = self.content_list(&t.content)?;
        inodes::set_content(self.c, row.ino, &list, list.len_bytes())?;
        if t.kind == EntryKind::Symlink {
            inodes::set_target(self.c, row.ino, &t.content.target)?;
        }
        self.forget_node(row.ino);
        self.calls.insert(KernelCall::Inode(row.ino));
        Ok(row.ino)
    }

    /// A new inode with the target's content takes every name of `row`,
    /// which keeps its metadata (the meta rule runs after). The old inode
    /// goes when the kernel forgets it, as after a rename over it.
    fn replace(&mut self, row: &Row, t: &Node) -> Result<Ino> {
        let mut new = Node {
            kind: t.kind,
            content: t.content.clone(),
            meta: t.meta.clone(),
            places: BTreeSet::new(),
        };
        new.meta.mode = row.mode;
        new.meta.uid = row.uid;
        new.meta.gid = row.gid;
        new.meta.mtime = row.mtime;
        new.meta.ctime = row.ctime;
        new.meta.xattrs = xattr_map(&xattrs::all(self.c, row.ino)?);
        let ino = self.insert_row(&row.file_id, &new, row.nlink, 0)?;
        if pins::is_pinned(self.c, row.ino)? {
            pins::set(self.c, ino, true)?;
        }
        for (parent, name) in dentries::names_of(self.c, row.ino)? {
            dentries::repoint(self.c, parent, &name, ino)?;
            self.name_changed(parent, &name);
        }
        inodes::add_nlink(self.c, row.ino, -i64::from(row.nlink))?;
        if !self.refs.holds(row.ino) && !self.is_open(row.ino) {
            inodes::delete(self.c, row.ino)?;
            self.map.remove(&row.ino);
        }
        Ok(ino)
    }

    /// Where an open file's name was, for its conflict copy: its first
    /// name here, else (its names taken off for the target's move) its
    /// place in the base, else the target's.
    fn old_place(&self, row: &Row, b: Option<&Node>, t: &Node) -> Result<(FileId, Vec<u8>)> {
        if let Some((parent, name)) = dentries::names_of(self.c, row.ino)?.into_iter().next() {
            return Ok((self.id_of_folder(parent)?, name));
        }
        let place = b
            .and_then(|b| b.places.iter().next())
            .or_else(|| t.places.iter().next());
        Ok(place.map_or((ROOT_ID, row.file_id.to_hex().into_bytes()), |p| {
            (p.parent, p.name.clone())
        }))
    }

    /// Records an open file that lost its names as a merge orphan: its
    /// handles keep it, and its last close links it back as a conflict
    /// copy if it was written after `row` (the POSIX face's `release`).
    fn orphan(&mut self, row: &Row, parent: FileId, name: Vec<u8>) -> Result<()> {
        orphans::add(
            self.c,
            &Orphan {
                ino: row.ino,
                parent,
                name,
                epoch: row.dirty_epoch,
                time: self.target.time,
            },
        )
    }

    /// The target's version of `id` beside the person's, under a conflict
    /// name: a new inode whose blobs are in the vault already.
    fn conflict_copy(&mut self, id: &FileId, row: &Row, t: &Node) -> Result<()> {
        let copy = self.local.vault.conflict_id(id, &t.content.hash());
        if self.live(&copy)?.is_some() {
            return Ok(());
        }
        let (parent, name) = match dentries::names_of(self.c, row.ino)?.into_iter().next() {
            Some(n) => n,
            None => (ROOT, t.places.iter().next().map(|p| p.name.clone()).unwrap_or_default()),
        };
        let taken = |n: &[u8]| dentries::lookup(self.c, parent, n).map(|o| o.is_some()).unwrap_or(true);
        let copy_name = conflict_name(&name, false, &self.target.device, self.target.time, taken);
        let ino = self.insert_row(&copy, t, 1, 0)?;
        dentries::add(self.c, parent, &copy_name, ino)?;
        // Written as trees only: the copy's blobs are in the vault.
        dirty::mark_dir(self.c, parent, self.epoch)?;
        self.name_changed(parent, &copy_name);
        self.report.copies.push((ino, *id));
        Ok(())
    }

    /// Each metadata field on its own: the target's value where the person
    /// left the base's, the person's otherwise (§3.2).
    fn update_meta(&mut self, ino: Ino, row: &Row, b: &Node, t: &Node) -> Result<()> {
        fn pick<T: PartialEq + Copy>(here: T, base: T, theirs: T) -> T {
            if here == base {
                theirs
            } else {
                here
            }
        }
        let (bm, tm) = (&b.meta, &t.meta);
        let now = inodes::get(self.c, ino)?;
        let attrs = inodes::Attrs {
            mode: pick(row.mode, bm.mode, tm.mode),
            uid: pick(row.uid, bm.uid, tm.uid),
            gid: pick(row.gid, bm.gid, tm.gid),
            atime: now.atime,
            mtime: pick(row.mtime, bm.mtime, tm.mtime),
            ctime: pick(row.ctime, bm.ctime, tm.ctime),
        };
        let mut changed = (attrs.mode, attrs.uid, attrs.gid, attrs.mtime, attrs.ctime)
            != (now.mode, now.uid, now.gid, now.mtime, now.ctime);
        if changed {
            inodes::set_attrs(self.c, ino, &attrs)?;
        }
        let here = xattr_map(&xattrs::all(self.c, ino)?);
        let names: BTreeSet<&Vec<u8>> = bm.xattrs.keys().chain(tm.xattrs.keys()).collect();
        for name in names {
            let (bv, tv) = (bm.xattrs.get(name), tm.xattrs.get(name));
            if tv == bv || here.get(name) != bv {
                continue;
            }
            match tv {
                Some(v) => xattrs::set(self.c, ino, name, v)?,
                None => {
                    xattrs::remove(self.c, ino, name)?;
                }
            }
            changed = true;
        }
        if changed {
            if b.places == t.places && b.content == t.content && b.kind == t.kind {
                self.report.meta += 1;
            }
            // A move changes the ctime too: it is told as a move.
            if b.places == t.places {
                self.touch(&row.file_id, What::Changed, row.kind == EntryKind::Dir, None);
            }
            self.calls.insert(KernelCall::Attr(ino));
        }
        Ok(())
    }

    /// An id the target deleted: deleted as `unlink` and `rmdir` do, unless
    /// the person changed it here (an edit beats a delete), or it is a
    /// folder something here still holds. An open file lives on for its
    /// handles as a merge orphan.
    fn delete_or_keep(&mut self, id: &FileId, b: &Node) -> Result<()> {
        let Some(row) = self.live(id)? else { return Ok(()) };
        let keep =
            self.changed_here(&row, b)? || (row.kind == EntryKind::Dir && !dentries::is_empty_dir(self.c, row.ino)?);
        if keep {
            self.stamp_parents(row.ino)?;
            if row.kind == EntryKind::Dir {
                dirty::mark_dir(self.c, row.ino, self.epoch)?;
            }
            self.report.kept += 1;
            return Ok(());
        }
        let open = row.kind != EntryKind::Dir && self.is_open(row.ino);
        if open {
            let (parent, name) = self.old_place(&row, Some(b), b)?;
            self.orphan(&row, parent, name)?;
        }
        let path = if self.report.touched.len() < PATHS {
            dentries::path_of(self.c, row.ino)?
        } else {
            None
        };
        self.touch(id, What::Deleted, row.kind == EntryKind::Dir, path);
        let names = dentries::names_of(self.c, row.ino)?;
        for (parent, name) in &names {
            dentries::remove(self.c, *parent, name)?;
            if row.kind == EntryKind::Dir {
                inodes::add_nlink(self.c, *parent, -1)?;
            }
            self.calls.insert(KernelCall::Deleted {
                parent: *parent,
                ino: row.ino,
                name: name.clone(),
            });
            self.calls.insert(KernelCall::Inode(*parent));
        }
        inodes::add_nlink(self.c, row.ino, -i64::from(row.nlink))?;
        // A file the kernel may still open by number goes when it forgets
        // it (the POSIX face's `forget`), as after `unlink`; an open one at
        // its last close.
        if row.kind == EntryKind::Dir || (!open && !self.refs.holds(row.ino)) {
            inodes::delete(self.c, row.ino)?;
            self.map.remove(&row.ino);
        }
        self.report.deleted += 1;
        Ok(())
    }

    /// Folders whose rows are now the target's get its tree ids; folders
    /// changed here keep their stamps, and the next commit rebuilds them.
    fn adopt_trees(&mut self, folder_trees: &HashMap<FileId, TreeId>) -> Result<()> {
        for (id, tree) in folder_trees {
            if let Some(row) = self.live(id)? {
                if row.kind == EntryKind::Dir && row.dirty_epoch <= self.since && !self.not_theirs.contains(id) {
                    inodes::set_tree(self.c, row.ino, tree)?;
                }
            }
        }
        for id in &self.not_theirs {
            if let Some(dir) = self.folder(id)? {
                dirty::mark_dir(self.c, dir, self.epoch)?;
            }
        }
        Ok(())
    }
}

/// Whether a row holds the content of node `t`.
fn same_content(row: &Row, t: &Node) -> bool {
    row.kind == t.kind
        && row.rdev == t.content.rdev
        && row.target == t.content.target
        && row.content.0.iter().map(|(id, _)| id).eq(t.content.blobs.iter())
}

fn xattr_map(list: &[nimbus_vault::Xattr]) -> BTreeMap<Vec<u8>, Vec<u8>> {
    list.iter().map(|x| (x.name.clone(), x.value.clone())).collect()
}

#[cfg(test)]
mod tests;

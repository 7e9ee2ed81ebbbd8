//! Phase 2 of the merge (docs/SYNC.md §3.5): what makes phase 1's nodes a
//! tree again. In this order: orphans get their folders back, move cycles
//! are broken, name collisions are settled (new folders of one name merge,
//! equal new files become one, others get conflict names), and the losing
//! contents of phase 1 become conflict copies beside their winner.
//!
//! Every choice is by key, id and name order, so every device fixes alike.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use nimbus_vault::{EntryKind, FileId};

use crate::flat::{Content, Flat, Node, Place};
use crate::names::{conflict_name, device_label};
use crate::rules::{Key, Phase1};
use crate::{Head, ROOT};

/// A conflict copy the merge made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConflictCopy {
    /// The copy's id (`Vault::conflict_id` of the original and the content).
    pub id: FileId,
    /// The id whose losing version it holds.
    pub of: FileId,
    /// The head that carried the losing version.
    pub head: usize,
    pub place: Place,
}

/// Phase 2's result: a map that builds into a tree.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fixed {
    pub nodes: Flat,
    pub copies: Vec<ConflictCopy>,
    /// `(gone, kept)`: ids merged into another (same new folder or file
    /// name on two sides); a drive gives the inode of `gone` the id `kept`.
    pub aliases: Vec<(FileId, FileId)>,
    /// Folders brought back because something survived inside them.
    pub restored: Vec<FileId>,
    /// Ids given a conflict name (collisions, broken cycles), with the
    /// place they wanted.
    pub renamed: Vec<(FileId, Place)>,
}

/// Runs phase 2 on phase 1's result. `base` and `heads` are the flattened
/// versions phase 1 ran on, `info[i]` describes `heads[i]`, and `copy_id`
/// gives a conflict copy's id from the original id and the losing content
/// (the vault's keyed hash on a drive).
pub fn fix(
    p1: &Phase1,
    base: &Flat,
    heads: &[Flat],
    info: &[Head],
    copy_id: &dyn Fn(FileId, &Content) -> FileId,
) -> Fixed {
    let mut out = Fixed {
        nodes: p1.nodes.iter().map(|(id, d)| (*id, d.node.clone())).collect(),
        ..Fixed::default()
    };
    let place_keys: BTreeMap<FileId, Key> = p1
        .nodes
        .iter()
        .filter_map(|(id, d)| d.place_key.map(|k| (*id, k)))
        .collect();
    orphans(&mut out, base, heads, info);
    cycles(&mut out, base, &place_keys, info);
    collisions(&mut out, base, heads, info);
    copies(&mut out, p1, info, copy_id);
    out
}

/// The newest head first, for "the newest head that has it".
fn by_age(info: &[Head]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..info.len()).collect();
    order.sort_by_key(|i| std::cmp::Reverse(info[*i].key()));
    order
}

fn label(info: &[Head], head: usize) -> (String, nimbus_vault::Timestamp) {
    match info.get(head) {
        Some(h) => (device_label(&h.device_name, &h.device), h.store_time.unwrap_or(h.time)),
        None => (String::from("unknown"), nimbus_vault::Timestamp::default()),
    }
}

fn is_folder(nodes: &Flat, id: FileId) -> bool {
    id == ROOT
        || nodes
            .get(&id)
            .is_some_and(|n| n.kind == EntryKind::Dir && n.content.tree.is_none())
}

/// Step 1: a surviving node whose folder is gone brings the folder back (its
/// version from the newest head that has it, else the base), and so on up
/// to the root. A place whose folder is nowhere to be found moves to the
/// root.
fn orphans(out: &mut Fixed, base: &Flat, heads: &[Flat], info: &[Head]) {
    let order = by_age(info);
    loop {
        let missing: BTreeSet<FileId> = out
            .nodes
            .values()
            .flat_map(|n| n.places.iter().map(|p| p.parent))
            .filter(|p| *p != ROOT && !out.nodes.contains_key(p))
            .collect();
        if missing.is_empty() {
            return;
        }
        for id in missing {
            let found = order
                .iter()
                .filter_map(|i| heads.get(*i)?.get(&id))
                .chain(base.get(&id))
                .find(|n| n.kind == EntryKind::Dir && n.content.tree.is_none())
                .cloned();
            match found {
                Some(node) => {
                    out.nodes.insert(id, node);
                    out.restored.push(id);
                }
                None => {
                    // Not a folder anywhere (data a merge never makes):
                    // its children go to the root.
                    for n in out.nodes.values_mut() {
                        let moved: BTreeSet<Place> = std::mem::take(&mut n.places)
                            .into_iter()
                            .map(|p| if p.parent == id { Place { parent: ROOT, ..p } } else { p })
                            .collect();
                        n.places = moved;
                    }
                }
            }
        }
    }
}

/// The folder a folder is in (folders have one place).
fn parent_of(nodes: &Flat, id: FileId) -> Option<FileId> {
    nodes.get(&id)?.places.iter().next().map(|p| p.parent)
}

/// Step 2, move cycles: of the folders in a cycle whose place changed, the one
/// with the oldest winning change (smallest key, then smallest id) goes
/// back to its base place, or to the root with a conflict name when that
/// place is in the cycle or gone. Repeated until no cycle is left.
fn cycles(out: &mut Fixed, base: &Flat, place_keys: &BTreeMap<FileId, Key>, info: &[Head]) {
    loop {
        let Some(cycle) = find_cycle(&out.nodes) else { return };
        let pick = cycle
            .iter()
            .min_by_key(|id| (place_keys.get(id).is_none(), place_keys.get(id).copied(), **id))
            .copied()
            .unwrap_or(ROOT);
        let Some(node) = out.nodes.get(&pick) else { return };
        let wanted = node.places.iter().next().cloned();
        let back = base
            .get(&pick)
            .and_then(|b| b.places.iter().next().cloned())
            .filter(|p| {
                !cycle.contains(&p.parent) && is_folder(&out.nodes, p.parent) && !below(&out.nodes, p.parent, pick)
            });
        let place = match back {
            Some(p) => p,
            None => {
                let head = place_keys
                    .get(&pick)
                    .and_then(|k| info.iter().position(|h| h.key() == *k))
                    .unwrap_or(0);
                let (device, time) = label(info, head);
                let name = wanted.as_ref().map_or(&b"folder"[..], |p| &p.name);
                let taken = names_in(&out.nodes, ROOT);
                Place {
                    parent: ROOT,
                    name: conflict_name(name, true, &device, time, |n| taken.contains(n)),
                }
            }
        };
        if let Some(w) = wanted {
            out.renamed.push((pick, w));
        }
        if let Some(n) = out.nodes.get_mut(&pick) {
            n.places = BTreeSet::from([place]);
        }
    }
}

/// Whether `id` is `dir` or inside it.
fn below(nodes: &Flat, mut id: FileId, dir: FileId) -> bool {
    let mut steps = 0;
    while id != ROOT && steps <= nodes.len() {
        if id == dir {
            return true;
        }
        match parent_of(nodes, id) {
            Some(p) => id = p,
            None => return false,
        }
        steps += 1;
    }
    false
}

/// The folders of the first cycle found, in id order of the walk's start.
fn find_cycle(nodes: &Flat) -> Option<BTreeSet<FileId>> {
    let mut done: BTreeSet<FileId> = BTreeSet::new();
    for (start, n) in nodes {
        if n.kind != EntryKind::Dir || done.contains(start) {
            continue;
        }
        let mut path: Vec<FileId> = Vec::new();
        let mut at = *start;
        loop {
            if at == ROOT || done.contains(&at) {
                break;
            }
            if let Some(i) = path.iter().position(|p| *p == at) {
                return Some(path[i..].iter().copied().collect());
            }
            path.push(at);
            match parent_of(nodes, at) {
                Some(p) => at = p,
                None => break,
            }
        }
        done.extend(path);
    }
    None
}

fn names_in(nodes: &Flat, folder: FileId) -> BTreeSet<Vec<u8>> {
    nodes
        .values()
        .flat_map(|n| n.places.iter())
        .filter(|p| p.parent == folder)
        .map(|p| p.name.clone())
        .collect()
}

/// Step 3, name collisions, in sorted order of `(parent, name)`. One pass
/// settles every collision it found; merging folders can make new ones
/// inside the merged folder, so passes repeat while folders merge. Each pass
/// indexes names once, so a union of two large vaults stays near-linear.
fn collisions(out: &mut Fixed, base: &Flat, heads: &[Flat], info: &[Head]) {
    let heads = HeadsOf {
        heads,
        info,
        order: by_age(info),
    };
    loop {
        let (at, mut index) = index_places(out);
        let mut merged = false;
        for (place, ids) in at.into_iter().filter(|(_, ids)| ids.len() > 1) {
            let ids = still_at(out, &place, ids);
            if ids.len() < 2 {
                continue;
            }
            match alike(out, base, &ids) {
                Alike::NewFolders => {
                    merge_folders(out, &mut index, &ids);
                    merged = true;
                }
                Alike::NewFiles => merge_files(out, &ids),
                Alike::No => heads.rename_losers(out, &mut index, base, &place, &ids),
            }
        }
        if !merged {
            return;
        }
    }
}

/// The heads with their infos, newest first: who names a conflict copy.
struct HeadsOf<'a> {
    heads: &'a [Flat],
    info: &'a [Head],
    /// Indexes into `heads`, newest first.
    order: Vec<usize>,
}

impl HeadsOf<'_> {
    /// The newest head that holds an id: it names the id's conflict copy and
    /// decides which new id keeps a name.
    fn newest(&self, id: &FileId) -> Option<(Key, usize)> {
        self.order
            .iter()
            .find(|i| self.heads.get(**i).is_some_and(|h| h.contains_key(id)))
            .map(|i| (self.info[*i].key(), *i))
    }

    /// The id that had this place in the base keeps it, else the newest (a
    /// place may be new to every head, after folders merged); the others
    /// get conflict names, in id order.
    fn rename_losers(&self, out: &mut Fixed, index: &mut NameIndex, base: &Flat, place: &Place, ids: &[FileId]) {
        let winner = self.winner(base, place, ids);
        for id in ids.iter().filter(|id| **id != winner) {
            let head = self.newest(id).map_or(0, |k| k.1);
            let (device, time) = label(self.info, head);
            let is_dir = out.nodes.get(id).is_some_and(|n| n.kind == EntryKind::Dir);
            let names = index.taken.entry(place.parent).or_default();
            let name = conflict_name(&place.name, is_dir, &device, time, |n| names.contains(n));
            names.insert(name.clone());
            if let Some(n) = out.nodes.get_mut(id) {
                n.places.remove(place);
                n.places.insert(Place {
                    parent: place.parent,
                    name,
                });
            }
            out.renamed.push((*id, place.clone()));
        }
    }

    /// Which of `ids` (in id order, at least one) keeps `place`.
    fn winner(&self, base: &Flat, place: &Place, ids: &[FileId]) -> FileId {
        ids.iter()
            .find(|id| base.get(id).is_some_and(|b| b.places.contains(place)))
            .copied()
            .or_else(|| {
                ids.iter()
                    .max_by_key(|id| (self.newest(id).map(|k| k.0), std::cmp::Reverse(**id)))
                    .copied()
            })
            .unwrap_or(ids[0])
    }
}

/// One pass's index of names: the children of each folder, and the names
/// taken in it (conflict names added as they are given).
struct NameIndex {
    kids: HashMap<FileId, Vec<FileId>>,
    taken: HashMap<FileId, HashSet<Vec<u8>>>,
}

/// The ids at each place, and the pass's [`NameIndex`].
fn index_places(out: &Fixed) -> (BTreeMap<Place, Vec<FileId>>, NameIndex) {
    let mut at: BTreeMap<Place, Vec<FileId>> = BTreeMap::new();
    let mut index = NameIndex {
        kids: HashMap::new(),
        taken: HashMap::new(),
    };
    for (id, n) in &out.nodes {
        for p in &n.places {
            at.entry(p.clone()).or_default().push(*id);
            index.kids.entry(p.parent).or_default().push(*id);
            index.taken.entry(p.parent).or_default().insert(p.name.clone());
        }
    }
    (at, index)
}

/// Those of `ids` still at `place`: an earlier folder merge of this pass
/// may have moved some away. Id order is kept.
fn still_at(out: &Fixed, place: &Place, ids: Vec<FileId>) -> Vec<FileId> {
    ids.into_iter()
        .filter(|id| out.nodes.get(id).is_some_and(|n| n.places.contains(place)))
        .collect()
}

/// What the ids colliding at one place are to each other.
enum Alike {
    /// New on every side, all folders without a tree of their own.
    NewFolders,
    /// New on every side, all files of one content.
    NewFiles,
    /// Anything else: all but one get conflict names.
    No,
}

fn alike(out: &Fixed, base: &Flat, ids: &[FileId]) -> Alike {
    let nodes: Vec<&Node> = ids.iter().filter_map(|id| out.nodes.get(id)).collect();
    let Some(first) = nodes.first() else {
        return Alike::No;
    };
    let all_new = ids.iter().all(|id| !base.contains_key(id));
    if all_new
        && nodes
            .iter()
            .all(|n| n.kind == EntryKind::Dir && n.content.tree.is_none())
    {
        Alike::NewFolders
    } else if all_new
        && nodes
            .iter()
            .all(|n| n.kind == EntryKind::File && n.content == first.content)
    {
        Alike::NewFiles
    } else {
        Alike::No
    }
}

/// One folder holding every side's children: the smallest id (the first)
/// stays, the others become its aliases and their children move into it.
fn merge_folders(out: &mut Fixed, index: &mut NameIndex, ids: &[FileId]) {
    let keep = ids[0];
    for gone in &ids[1..] {
        out.nodes.remove(gone);
        for kid in index.kids.remove(gone).unwrap_or_default() {
            let Some(n) = out.nodes.get_mut(&kid) else { continue };
            let moved: BTreeSet<Place> = std::mem::take(&mut n.places)
                .into_iter()
                .map(|p| {
                    if p.parent == *gone {
                        Place { parent: keep, ..p }
                    } else {
                        p
                    }
                })
                .collect();
            for p in moved.iter().filter(|p| p.parent == keep) {
                index.taken.entry(keep).or_default().insert(p.name.clone());
            }
            n.places = moved;
            index.kids.entry(keep).or_default().push(kid);
        }
        out.aliases.push((*gone, keep));
    }
}

/// Equal new files become one: the smallest id (the first) stays.
fn merge_files(out: &mut Fixed, ids: &[FileId]) {
    let keep = ids[0];
    for gone in &ids[1..] {
        out.nodes.remove(gone);
        out.aliases.push((*gone, keep));
    }
}

/// Step 4: each losing content of phase 1 becomes a conflict copy beside its
/// winner's place, named for the head that carried it. A copy whose id
/// exists already (a head made the same copy before) is not made twice.
/// Folders are never copied: their children merge by id.
fn copies(out: &mut Fixed, p1: &Phase1, info: &[Head], copy_id: &dyn Fn(FileId, &Content) -> FileId) {
    let mut taken: HashMap<FileId, HashSet<Vec<u8>>> = HashMap::new();
    for n in out.nodes.values() {
        for p in &n.places {
            taken.entry(p.parent).or_default().insert(p.name.clone());
        }
    }
    for (id, d) in &p1.nodes {
        for loser in &d.losers {
            if loser.kind == EntryKind::Dir {
                continue;
            }
            let cid = copy_id(*id, &loser.content);
            if out.nodes.contains_key(&cid) {
                continue;
            }
            let Some(beside) = out.nodes.get(id).and_then(|n| n.places.iter().next().cloned()) else {
                continue;
            };
            let (device, time) = label(info, loser.head);
            let names = taken.entry(beside.parent).or_default();
            let name = conflict_name(&beside.name, false, &device, time, |n| names.contains(n));
            names.insert(name.clone());
            let place = Place {
                parent: beside.parent,
                name,
            };
            out.nodes.insert(
                cid,
                Node {
                    kind: loser.kind,
                    content: loser.content.clone(),
                    meta: loser.meta.clone(),
                    places: BTreeSet::from([place.clone()]),
                },
            );
            out.copies.push(ConflictCopy {
                id: cid,
                of: *id,
                head: loser.head,
                place,
            });
        }
    }
}

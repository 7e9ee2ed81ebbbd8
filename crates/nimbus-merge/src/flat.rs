//! Trees as flat maps `FileId -> Node`, and back (docs/SYNC.md §3.1).
//!
//! The merge compares versions by file id, so each version's trees are
//! flattened into one map. Trees are content-addressed: a folder whose tree
//! id is the same in every version is taken whole (its node keeps the tree
//! id, its children are not listed) and is never read. Only the folders
//! that differ are read, so a small change in a large vault reads a few
//! trees.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use nimbus_vault::{BlobId, EntryKind, FileId, Id, Timestamp, Tree};
use nimbus_vault::{Entry, Xattr};

use crate::ROOT;

/// The id of a tree blob.
pub type TreeId = BlobId;

/// Where trees come from and go to: the vault (through its blob cache and
/// a saver) on a drive, a `HashMap` in tests.
pub trait Trees {
    type Error: std::error::Error + Send + Sync + 'static;

    /// The tree with this id.
    fn get(&mut self, id: &TreeId) -> Result<Tree, Self::Error>;

    /// Several trees, in the order asked. The flattening asks for one
    /// level of folders at a time, so an implementation over the vault can
    /// batch them by pack (`Vault::read_blobs_in_pack`).
    fn get_many(&mut self, ids: &[TreeId]) -> Result<Vec<Tree>, Self::Error> {
        ids.iter().map(|id| self.get(id)).collect()
    }

    /// Stores a tree (sorted by name, as the format requires) and returns
    /// its id. Storing a tree that exists already returns its id.
    fn put(&mut self, tree: &Tree) -> Result<TreeId, Self::Error>;
}

/// A tree the map does not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("tree {0} is missing")]
pub struct MissingTree(pub TreeId);

/// [`Trees`] over a `HashMap`, for tests. Ids are the BLAKE3 hash of the
/// tree's bytes (the vault's are keyed; any content address will do here).
/// It counts reads and remembers which ids were read, so tests can check
/// that unchanged folders are never read.
#[derive(Debug, Clone, Default)]
pub struct MemTrees {
    trees: HashMap<TreeId, Tree>,
    /// Every id passed to `get`, in order.
    pub read_log: Vec<TreeId>,
    /// How many `put` calls were made.
    pub puts: usize,
}

impl MemTrees {
    pub fn new() -> Self {
        Self::default()
    }

    /// The id a tree gets here.
    pub fn id_of(tree: &Tree) -> TreeId {
        Id(*blake3::hash(&tree.encode()).as_bytes())
    }

    /// Adds a tree without counting it as a `put`.
    pub fn insert(&mut self, tree: &Tree) -> TreeId {
        let id = Self::id_of(tree);
        self.trees.insert(id, tree.clone());
        id
    }

    /// How many trees were read.
    pub fn reads(&self) -> usize {
        self.read_log.len()
    }

    pub fn contains(&self, id: &TreeId) -> bool {
        self.trees.contains_key(id)
    }
}

impl Trees for MemTrees {
    type Error = MissingTree;

    fn get(&mut self, id: &TreeId) -> Result<Tree, MissingTree> {
        self.read_log.push(*id);
        self.trees.get(id).cloned().ok_or(MissingTree(*id))
    }

    fn put(&mut self, tree: &Tree) -> Result<TreeId, MissingTree> {
        self.puts += 1;
        Ok(self.insert(tree))
    }
}

/// One name of a node: the folder it is in and its name there.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Place {
    pub parent: FileId,
    pub name: Vec<u8>,
}

/// What a node holds (with its kind, the "content" attribute of §3.2).
/// Every field is kept as the entry had it, so a node rebuilds the same
/// entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Content {
    /// A file's blobs, in order.
    pub blobs: Vec<BlobId>,
    /// The entry's size field (a file's length).
    pub size: u64,
    /// A symlink's target.
    pub target: Vec<u8>,
    /// A device node's number.
    pub rdev: u64,
    /// A folder taken whole: its tree id, the same in every version that
    /// has it. `None` for an opened folder, whose children are nodes of the
    /// map (and for every kind that is not a folder).
    pub tree: Option<TreeId>,
}

impl Content {
    /// The BLAKE3 hash of this content, as the conflict copy's id is made
    /// from it (docs/SYNC.md §2.1: `BLAKE3(loser content)`). Part of
    /// format 3: every device must hash a content alike, so the fields go
    /// in a fixed order, each list and string after its length.
    pub fn hash(&self) -> [u8; 32] {
        let mut h = blake3::Hasher::new();
        h.update(&(self.blobs.len() as u64).to_le_bytes());
        for b in &self.blobs {
            h.update(b.as_bytes());
        }
        h.update(&self.size.to_le_bytes());
        h.update(&(self.target.len() as u64).to_le_bytes());
        h.update(&self.target);
        h.update(&self.rdev.to_le_bytes());
        match &self.tree {
            Some(t) => h.update(&[1]).update(t.as_bytes()),
            None => h.update(&[0]),
        };
        *h.finalize().as_bytes()
    }
}

/// The "meta" attribute of §3.2: each field merges on its own, each xattr
/// by name. `ctime` is only shown and never decides anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: Timestamp,
    pub ctime: Timestamp,
    /// By name. A tree lists xattrs sorted by name (as the drive writes
    /// them), so a rebuilt entry lists them in that order.
    pub xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
}

/// One file id in one version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub kind: EntryKind,
    pub content: Content,
    pub meta: Meta,
    /// Every name it has in this version: one, or several for a hard link.
    pub places: BTreeSet<Place>,
}

/// One version (a tree and its opened folders), by file id. The root
/// folder ([`ROOT`]) has no node; its children have it as parent.
pub type Flat = BTreeMap<FileId, Node>;

impl Node {
    /// The node of an entry at `place`.
    pub fn from_entry(entry: &Entry, parent: FileId) -> Node {
        Node {
            kind: entry.kind,
            content: Content {
                blobs: entry.content.clone(),
                size: entry.size,
                target: entry.target.clone(),
                rdev: entry.rdev,
                tree: entry.subtree,
            },
            meta: Meta {
                mode: entry.mode,
                uid: entry.uid,
                gid: entry.gid,
                mtime: entry.mtime,
                ctime: entry.ctime,
                xattrs: entry.xattrs.iter().map(|x| (x.name.clone(), x.value.clone())).collect(),
            },
            places: BTreeSet::from([Place {
                parent,
                name: entry.name.clone(),
            }]),
        }
    }

    /// The entry of this node under `name`; `subtree` is the tree id of
    /// an opened folder (ignored for a folder taken whole and for others).
    pub fn to_entry(&self, id: FileId, name: &[u8], subtree: Option<TreeId>) -> Entry {
        let subtree = match self.kind {
            EntryKind::Dir => self.content.tree.or(subtree),
            _ => None,
        };
        Entry {
            name: name.to_vec(),
            kind: self.kind,
            mode: self.meta.mode,
            uid: self.meta.uid,
            gid: self.meta.gid,
            mtime: self.meta.mtime,
            ctime: self.meta.ctime,
            size: self.content.size,
            file_id: id,
            xattrs: self
                .meta
                .xattrs
                .iter()
                .map(|(name, value)| Xattr {
                    name: name.clone(),
                    value: value.clone(),
                })
                .collect(),
            target: self.content.target.clone(),
            rdev: self.content.rdev,
            content: self.content.blobs.clone(),
            subtree,
        }
    }

    /// A folder whose children are not in the map.
    pub fn is_whole(&self) -> bool {
        self.kind == EntryKind::Dir && self.content.tree.is_some()
    }
}

/// Flattens several versions at once, one map per version (`None` is the
/// empty tree: the base of a merge with no known ancestor).
///
/// A folder is opened (read, its children listed) in every version that
/// has it unless it is in every version with the same tree id. First the
/// folders whose tree ids differ are opened, level by level, until none is
/// left: a folder moved elsewhere unchanged is found at its new place by
/// then and costs no read. Only then the folders missing from some version,
/// all at once: new folders (collisions of new folders merge their
/// children, so they are needed anyway) and deleted ones, read with what
/// they held, since something inside may have moved out before the delete.
///
/// Without reading there is no telling a new or deleted folder from one
/// hidden inside such a folder in the other version, so a folder moved
/// unchanged into a new folder, or out of one deleted since, costs one
/// read of its own tree (and one level more per nested new or deleted
/// folder it crossed). Opening one kind first would save that read in one
/// case and read the whole moved subtree in the other. Each distinct tree
/// id is read once.
pub fn flatten<T: Trees + ?Sized>(trees: &mut T, roots: &[Option<TreeId>]) -> Result<Vec<Flat>, T::Error> {
    let mut flats: Vec<Flat> = roots.iter().map(|_| Flat::new()).collect();
    let mut open: HashSet<FileId> = HashSet::from([ROOT]);
    let mut cache: HashMap<TreeId, Tree> = HashMap::new();
    // (version, folder, tree) still to read and list.
    let mut pending: Vec<(usize, FileId, TreeId)> = roots
        .iter()
        .enumerate()
        .filter_map(|(v, r)| r.map(|t| (v, ROOT, t)))
        .collect();
    // Folders taken whole in some version: the candidates for opening.
    let mut whole: BTreeSet<FileId> = BTreeSet::new();

    loop {
        if !pending.is_empty() {
            let mut want: Vec<TreeId> = pending.iter().map(|p| p.2).filter(|t| !cache.contains_key(t)).collect();
            want.sort();
            want.dedup();
            let got = trees.get_many(&want)?;
            for (id, tree) in want.into_iter().zip(got) {
                cache.insert(id, tree);
            }
            for (v, folder, tree_id) in std::mem::take(&mut pending) {
                let Some(tree) = cache.get(&tree_id) else { continue };
                for entry in &tree.entries {
                    let id = entry.file_id;
                    let place = Place {
                        parent: folder,
                        name: entry.name.clone(),
                    };
                    if let Some(node) = flats[v].get_mut(&id) {
                        // A hard link: the first entry read gives the
                        // node, the others add their names.
                        node.places.insert(place);
                        continue;
                    }
                    let mut node = Node::from_entry(entry, folder);
                    if let (EntryKind::Dir, Some(sub)) = (node.kind, node.content.tree) {
                        if open.contains(&id) {
                            node.content.tree = None;
                            pending.push((v, id, sub));
                        } else {
                            whole.insert(id);
                        }
                    }
                    flats[v].insert(id, node);
                }
            }
            continue;
        }
        // Nothing left to read: open what differs, else what is missing.
        let mut differ = Vec::new();
        let mut missing = Vec::new();
        for id in &whole {
            let mut seen: Option<TreeId> = None;
            let mut differs = false;
            let mut absent = false;
            for flat in &flats {
                match flat.get(id) {
                    Some(n) if n.kind == EntryKind::Dir && n.content.tree.is_some() => match seen {
                        None => seen = n.content.tree,
                        Some(t) => differs |= n.content.tree != Some(t),
                    },
                    // Opened elsewhere already, or not a folder there.
                    Some(_) => differs = true,
                    None => absent = true,
                }
            }
            if differs {
                differ.push(*id);
            } else if absent {
                missing.push(*id);
            }
        }
        let opening = if differ.is_empty() { missing } else { differ };
        if opening.is_empty() {
            break;
        }
        for id in opening {
            whole.remove(&id);
            open.insert(id);
            for (v, flat) in flats.iter_mut().enumerate() {
                if let Some(node) = flat.get_mut(&id) {
                    if let (EntryKind::Dir, Some(t)) = (node.kind, node.content.tree.take()) {
                        pending.push((v, id, t));
                    }
                }
            }
        }
    }
    Ok(flats)
}

/// Why a map does not make a tree. The merge's fix-ups (§3.5) remove each
/// of these before building; meeting one is a bug in them.
#[derive(Debug, thiserror::Error)]
pub enum BuildError<E: std::error::Error + 'static> {
    #[error("storing a tree: {0}")]
    Store(#[source] E),
    #[error("{id} is in folder {parent}, which is not in the tree")]
    MissingParent { id: FileId, parent: FileId },
    #[error("{id} is in {parent}, which is not a folder")]
    NotAFolder { id: FileId, parent: FileId },
    #[error("two entries are named {name:?} in folder {parent}")]
    Duplicate { parent: FileId, name: Vec<u8> },
    #[error("{0} is not reachable from the root (a cycle)")]
    Unreachable(FileId),
    #[error("{0} has no name or an invalid one")]
    InvalidName(FileId),
}

/// Builds the trees of a map bottom-up, storing each opened folder's tree,
/// and returns the root tree's id. Folders taken whole keep their tree id
/// and are not stored again.
pub fn build<T: Trees + ?Sized>(trees: &mut T, flat: &Flat) -> Result<TreeId, BuildError<T::Error>> {
    let mut children: BTreeMap<FileId, Vec<(&[u8], FileId)>> = BTreeMap::new();
    for (id, node) in flat {
        if node.places.is_empty() {
            return Err(BuildError::InvalidName(*id));
        }
        for p in &node.places {
            if !nimbus_vault::tree::valid_name(&p.name) {
                return Err(BuildError::InvalidName(*id));
            }
            if p.parent != ROOT {
                match flat.get(&p.parent) {
                    None => {
                        return Err(BuildError::MissingParent {
                            id: *id,
                            parent: p.parent,
                        })
                    }
                    Some(n) if n.kind != EntryKind::Dir || n.content.tree.is_some() => {
                        return Err(BuildError::NotAFolder {
                            id: *id,
                            parent: p.parent,
                        })
                    }
                    Some(_) => {}
                }
            }
            children.entry(p.parent).or_default().push((&p.name, *id));
        }
    }
    // Post-order walk from the root without recursion (trees can be deep).
    let mut built: HashMap<FileId, TreeId> = HashMap::new();
    let mut reached: HashSet<FileId> = HashSet::new();
    // Folders whose children are being built: meeting one again below
    // itself is a cycle (a folder with a second name inside itself).
    let mut visiting: HashSet<FileId> = HashSet::new();
    let mut stack: Vec<(FileId, bool)> = vec![(ROOT, false)];
    while let Some((folder, kids_done)) = stack.pop() {
        if built.contains_key(&folder) {
            continue;
        }
        let kids = children.get(&folder).map(Vec::as_slice).unwrap_or(&[]);
        if !kids_done {
            if !visiting.insert(folder) {
                return Err(BuildError::Unreachable(folder));
            }
            stack.push((folder, true));
            for (_, id) in kids {
                reached.insert(*id);
                let node = &flat[id];
                if node.kind == EntryKind::Dir && node.content.tree.is_none() && !built.contains_key(id) {
                    stack.push((*id, false));
                }
            }
            continue;
        }
        let mut tree = Tree::default();
        for (name, id) in kids {
            let node = &flat[id];
            let sub = built.get(id).copied();
            tree.entries.push(node.to_entry(*id, name, sub));
        }
        tree.sort();
        for w in tree.entries.windows(2) {
            if w[0].name == w[1].name {
                return Err(BuildError::Duplicate {
                    parent: folder,
                    name: w[0].name.clone(),
                });
            }
        }
        let id = trees.put(&tree).map_err(BuildError::Store)?;
        built.insert(folder, id);
    }
    if let Some(id) = flat.keys().find(|id| !reached.contains(id)) {
        return Err(BuildError::Unreachable(*id));
    }
    built.get(&ROOT).copied().ok_or(BuildError::Unreachable(ROOT))
}

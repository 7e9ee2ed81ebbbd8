//! Phase 1 of the merge (docs/SYNC.md §3.2): each file id on its own, each
//! attribute on its own (content, place, each meta field and each xattr),
//! then whether the id exists; and the "newer" key of §3.4 that settles a
//! conflict on one attribute.
//!
//! For one attribute with base value `b` and head values `v1..vn`, the
//! changed values are the distinct `vi != b`. None: `b`. One: it. More: the
//! value with the largest key wins; for content the others become conflict
//! copies (placed by phase 2), for places and meta they are dropped.

use std::collections::{BTreeMap, BTreeSet};

use nimbus_vault::{CommitId, EntryKind, FileId, Timestamp};

use crate::flat::{Content, Flat, Meta, Node, Place};

/// How new one head is (§3.4), compared field by field in this order:
/// when its commit reached the store (`None`, a store without times, sorts
/// below any time), its generation, its commit id. No device clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Key {
    pub store_time: Option<Timestamp>,
    pub generation: u64,
    pub commit: CommitId,
}

/// What phase 1 did with an id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Every head has the base's node (no attribute but ctime differs).
    Unchanged,
    /// Not in the base, in some head.
    Added,
    /// In the base and in every head; some attribute changed.
    Changed,
    /// Deleted in some head, changed in another: an edit beats a delete.
    KeptOverDelete,
}

/// A content value that lost a conflict: it becomes a conflict copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loser {
    pub kind: EntryKind,
    pub content: Content,
    /// The meta of the newest head that holds this content.
    pub meta: Meta,
    /// That head (an index into the heads) and its key: the copy's name
    /// names that head's device and store time.
    pub head: usize,
    pub key: Key,
}

/// The merged node of one id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decided {
    pub node: Node,
    pub fate: Fate,
    /// Content values that lost, newest first.
    pub losers: Vec<Loser>,
    /// The key of the place change that won, if the place changed: phase 2
    /// breaks a move cycle at the oldest winning change.
    pub place_key: Option<Key>,
}

/// Phase 1 over whole maps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Phase1 {
    pub nodes: BTreeMap<FileId, Decided>,
    /// Ids in the base that no longer exist.
    pub deleted: BTreeSet<FileId>,
}

/// Runs [`decide`] on every id of the base and the heads. `keys[i]` is the
/// key of `heads[i]`.
pub fn phase1(base: &Flat, heads: &[Flat], keys: &[Key]) -> Phase1 {
    let mut ids: BTreeSet<FileId> = base.keys().copied().collect();
    for h in heads {
        ids.extend(h.keys().copied());
    }
    let mut out = Phase1::default();
    for id in ids {
        let hs: Vec<Option<&Node>> = heads.iter().map(|h| h.get(&id)).collect();
        match decide(base.get(&id), &hs, keys) {
            Some(d) => {
                out.nodes.insert(id, d);
            }
            None => {
                if base.contains_key(&id) {
                    out.deleted.insert(id);
                }
            }
        }
    }
    out
}

/// The existence table of §3.2 for one id, and its merged attributes when
/// it exists. `heads[i]` is the id's node in head `i` (`None`: absent
/// there), `keys[i]` that head's key.
pub fn decide(base: Option<&Node>, heads: &[Option<&Node>], keys: &[Key]) -> Option<Decided> {
    let sides = Sides::new(base, heads, keys)?;
    let fate = sides.fate(heads.len())?;
    let (kind, content, losers) = sides.merge_content();
    let (places, place_key) = sides.merge_places();
    let meta = sides.merge_meta();
    Some(Decided {
        node: Node {
            kind,
            content,
            meta,
            places,
        },
        fate,
        losers,
        place_key,
    })
}

/// One id's nodes as [`decide`] sees them: the base's, and the heads that
/// have the id, each with its index into the heads.
struct Sides<'a> {
    base: Option<&'a Node>,
    /// Never empty.
    present: Vec<(usize, &'a Node)>,
    keys: &'a [Key],
}

impl<'a> Sides<'a> {
    /// `None` when no head has the id.
    fn new(base: Option<&'a Node>, heads: &[Option<&'a Node>], keys: &'a [Key]) -> Option<Self> {
        let present: Vec<(usize, &Node)> = heads
            .iter()
            .enumerate()
            .filter_map(|(i, n)| n.map(|n| (i, n)))
            .collect();
        if present.is_empty() {
            return None;
        }
        Some(Sides { base, present, keys })
    }

    /// Head `i`'s key.
    fn key(&self, i: usize) -> Key {
        self.keys.get(i).copied().unwrap_or(NO_KEY)
    }

    /// The row of the existence table; `None`: the id is gone. `heads` is
    /// how many heads there are, with the id or not.
    fn fate(&self, heads: usize) -> Option<Fate> {
        let Some(b) = self.base else {
            return Some(Fate::Added);
        };
        let changed = self.present.iter().any(|(_, n)| differs(b, n));
        if self.present.len() < heads {
            if !changed {
                // Deleted elsewhere, left as it was here.
                return None;
            }
            Some(Fate::KeptOverDelete)
        } else if changed {
            Some(Fate::Changed)
        } else {
            Some(Fate::Unchanged)
        }
    }

    /// Content, with the kind, and the content values that lost.
    fn merge_content(&self) -> (EntryKind, Content, Vec<Loser>) {
        let present = &self.present;
        let cvals: Vec<(Key, (EntryKind, &Content))> = present
            .iter()
            .map(|(i, n)| (self.key(*i), (n.kind, &n.content)))
            .collect();
        let cbase = self.base.map(|b| (b.kind, &b.content));
        let mut changed_c = changed_values(cbase.as_ref(), &cvals);
        // Newest first: key, then the larger hash of the value.
        changed_c.sort_by_key(|(k, (kind, c))| std::cmp::Reverse((*k, content_hash(*kind, c))));
        let (kind, content) = match (changed_c.first(), self.base) {
            (Some((_, (k, c))), _) => (*k, (*c).clone()),
            (None, Some(b)) => (b.kind, b.content.clone()),
            // Unreachable: with no base every present value is a change.
            (None, None) => (present[0].1.kind, present[0].1.content.clone()),
        };
        let losers = changed_c
            .iter()
            .skip(1)
            .filter_map(|(k, (kind, c))| self.loser(*k, *kind, c))
            .collect();
        (kind, content, losers)
    }

    /// The conflict copy of a content value that lost, its key `k`.
    fn loser(&self, k: Key, kind: EntryKind, c: &Content) -> Option<Loser> {
        // The newest head holding this value names the copy.
        let (i, n) = self
            .present
            .iter()
            .filter(|(_, n)| n.kind == kind && n.content == *c)
            .max_by_key(|(i, _)| self.key(*i))?;
        Some(Loser {
            kind,
            content: c.clone(),
            meta: n.meta.clone(),
            head: *i,
            key: k,
        })
    }

    /// Place(s), and the key of the place change that won.
    fn merge_places(&self) -> (BTreeSet<Place>, Option<Key>) {
        let (base, present) = (self.base, &self.present);
        let hard_link = base.is_some_and(|b| b.places.len() > 1) || present.iter().any(|(_, n)| n.places.len() > 1);
        if hard_link {
            return merge_place_sets(base, present, |i| self.key(i));
        }
        let pvals: Vec<(Key, &BTreeSet<Place>)> = present.iter().map(|(i, n)| (self.key(*i), &n.places)).collect();
        let pbase = base.map(|b| &b.places);
        let (p, k) = pick(pbase.as_ref(), &pvals);
        (p.clone(), k)
    }

    /// Meta, field by field.
    fn merge_meta(&self) -> Meta {
        let m = |f: fn(&Meta) -> u32| {
            let vals: Vec<(Key, u32)> = self.present.iter().map(|(i, n)| (self.key(*i), f(&n.meta))).collect();
            pick(self.base.map(|b| f(&b.meta)).as_ref(), &vals).0
        };
        let mvals: Vec<(Key, Timestamp)> = self.present.iter().map(|(i, n)| (self.key(*i), n.meta.mtime)).collect();
        Meta {
            mode: m(|m| m.mode),
            uid: m(|m| m.uid),
            gid: m(|m| m.gid),
            mtime: pick(self.base.map(|b| b.meta.mtime).as_ref(), &mvals).0,
            // ctime is only shown: the largest of the heads'.
            ctime: self.present.iter().map(|(_, n)| n.meta.ctime).max().unwrap_or_default(),
            xattrs: self.merge_xattrs(),
        }
    }

    /// Each xattr name on its own; a name whose winning value is "absent"
    /// is dropped.
    fn merge_xattrs(&self) -> BTreeMap<Vec<u8>, Vec<u8>> {
        let mut names: BTreeSet<&Vec<u8>> = BTreeSet::new();
        if let Some(b) = self.base {
            names.extend(b.meta.xattrs.keys());
        }
        for (_, n) in &self.present {
            names.extend(n.meta.xattrs.keys());
        }
        let mut xattrs = BTreeMap::new();
        for name in names {
            let vals: Vec<(Key, Option<&Vec<u8>>)> = self
                .present
                .iter()
                .map(|(i, n)| (self.key(*i), n.meta.xattrs.get(name)))
                .collect();
            let b = self.base.map(|b| b.meta.xattrs.get(name));
            if let (Some(v), _) = pick(b.as_ref(), &vals) {
                xattrs.insert(name.clone(), v.clone());
            }
        }
        xattrs
    }
}

/// A key below every real one, for a head given no key (a caller's bug;
/// the merge still decides deterministically).
const NO_KEY: Key = Key {
    store_time: None,
    generation: 0,
    commit: nimbus_vault::Id([0; 32]),
};

/// Whether a head's node differs from the base's in any attribute that
/// counts as a change (everything but ctime).
fn differs(base: &Node, n: &Node) -> bool {
    base.kind != n.kind
        || base.content != n.content
        || base.places != n.places
        || base.meta.mode != n.meta.mode
        || base.meta.uid != n.meta.uid
        || base.meta.gid != n.meta.gid
        || base.meta.mtime != n.meta.mtime
        || base.meta.xattrs != n.meta.xattrs
}

/// The distinct values that differ from the base, each with the largest key
/// of the heads holding it. Values are compared by value, never by which
/// head holds them: the same change on two sides is one change.
fn changed_values<V: PartialEq + Clone>(base: Option<&V>, vals: &[(Key, V)]) -> Vec<(Key, V)> {
    let mut out: Vec<(Key, V)> = Vec::new();
    for (k, v) in vals {
        if base == Some(v) {
            continue;
        }
        match out.iter_mut().find(|(_, o)| o == v) {
            Some(o) => o.0 = o.0.max(*k),
            None => out.push((*k, v.clone())),
        }
    }
    out
}

/// One attribute: the base when nothing changed, else the newest changed
/// value, with the key that made it win.
fn pick<V: PartialEq + Clone>(base: Option<&V>, vals: &[(Key, V)]) -> (V, Option<Key>) {
    let changed = changed_values(base, vals);
    match changed.into_iter().max_by_key(|(k, _)| *k) {
        Some((k, v)) => (v, Some(k)),
        // `vals` is never empty (only present heads are asked), and with no
        // base every value is a change; the base is there otherwise.
        None => match base {
            Some(b) => (b.clone(), None),
            None => (vals[0].1.clone(), None),
        },
    }
}

/// The places of a hard link, merged as sets: a place added in any head is
/// added, one removed in any head is removed. Should every place go (each
/// head removed the name the other kept), the newest changed head's places
/// stay: the id exists, so it needs a name.
fn merge_place_sets(
    base: Option<&Node>,
    present: &[(usize, &Node)],
    key: impl Fn(usize) -> Key,
) -> (BTreeSet<Place>, Option<Key>) {
    let empty = BTreeSet::new();
    let b = base.map(|b| &b.places).unwrap_or(&empty);
    let mut out = b.clone();
    let mut newest: Option<Key> = None;
    for (i, n) in present {
        if n.places != *b {
            newest = newest.max(Some(key(*i)));
        }
        for p in b.difference(&n.places) {
            out.remove(p);
        }
    }
    for (_, n) in present {
        for p in n.places.difference(b) {
            out.insert(p.clone());
        }
    }
    if out.is_empty() {
        if let Some((_, n)) = present
            .iter()
            .filter(|(_, n)| n.places != *b)
            .max_by_key(|(i, _)| key(*i))
        {
            out = n.places.clone();
        }
    }
    (out, newest)
}

/// BLAKE3 of a content value: the last tie-break between two contents with
/// equal keys, the same on every device.
fn content_hash(kind: EntryKind, c: &Content) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(&[kind_byte(kind)]);
    h.update(&(c.blobs.len() as u64).to_le_bytes());
    for b in &c.blobs {
        h.update(b.as_bytes());
    }
    h.update(&c.size.to_le_bytes());
    h.update(&(c.target.len() as u64).to_le_bytes());
    h.update(&c.target);
    h.update(&c.rdev.to_le_bytes());
    if let Some(t) = &c.tree {
        h.update(t.as_bytes());
    }
    *h.finalize().as_bytes()
}

fn kind_byte(kind: EntryKind) -> u8 {
    match kind {
        EntryKind::File => 0,
        EntryKind::Dir => 1,
        EntryKind::Symlink => 2,
        EntryKind::Fifo => 3,
        EntryKind::CharDevice => 4,
        EntryKind::BlockDevice => 5,
        EntryKind::Socket => 6,
    }
}

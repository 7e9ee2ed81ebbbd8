//! The merge of several devices' snapshots, by stable file id (docs/SYNC.md §3).
//!
//! Pure: it reads and writes trees only through the [`Trees`] trait and
//! does no I/O of its own (no file system, no network, no async runtime),
//! so every device that merges the same heads computes the same tree, and
//! the rules are tested on maps in memory.
//!
//! - [`base`]: the common ancestor of the heads, and which heads to merge;
//! - [`flat`]: trees to maps `FileId -> Node` (reading only the folders
//!   that differ) and back;
//! - [`names`]: conflict copy names;
//! - [`rules`]: phase 1, each id's attributes and existence, and which
//!   side is "newer";
//! - [`fixups`]: phase 2, orphans, move cycles, name collisions, conflict
//!   copies;
//! - [`merge`](mod@merge): all of it: heads reduced and folded two at a
//!   time, each step against its merge base, and the report.

pub mod base;
pub mod fixups;
pub mod flat;
pub mod merge;
pub mod names;
pub mod rules;

pub use base::{
    lowest_common_ancestors, merge_base, reduce_heads, Base, BaseError, CommitInfo, CommitSource, Lcas, Limits,
    MemCommits, Side, Unknown,
};
pub use fixups::{fix, ConflictCopy, Fixed};
pub use flat::{build, flatten, BuildError, Content, Flat, MemTrees, Meta, MissingTree, Node, Place, TreeId, Trees};
pub use merge::{merge, Change, ChangeKind, MergeError, Merged, Report};
pub use rules::{decide, phase1, Decided, Fate, Key, Loser, Phase1};

use nimbus_vault::{FileId, ShortId};

/// The id the merge gives the root folder, which has no entry of its own
/// (a drive's local root row keeps its random id, never written anywhere).
pub const ROOT: FileId = ShortId([0; 16]);

/// One head of a merge: a commit and what the merge needs of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub commit: nimbus_vault::CommitId,
    /// Its root tree.
    pub root: TreeId,
    /// The device that made it, and that device's name (empty in version
    /// 2 commits): conflict copies name it.
    pub device: nimbus_vault::DeviceId,
    pub device_name: String,
    /// 1 + the largest generation of its parents (0 in version 2 commits).
    pub generation: u64,
    /// When its commit object reached the store (`None` when the store
    /// gives no times).
    pub store_time: Option<nimbus_vault::Timestamp>,
    /// The commit's own time (the device's clock): only a label, for a
    /// conflict name when the store gives no time.
    pub time: nimbus_vault::Timestamp,
}

impl Head {
    /// How new this head is (§3.4).
    pub fn key(&self) -> Key {
        Key {
            store_time: self.store_time,
            generation: self.generation,
            commit: self.commit,
        }
    }
}

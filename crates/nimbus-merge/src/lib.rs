//! The merge of several devices' snapshots, by stable file id (docs/SYNC.md §3).
//!
//! Pure: it reads and writes trees only through the [`Trees`] trait and
//! does no I/O of its own (no file system, no network, no async runtime),
//! so every device that merges the same heads computes the same tree, and
//! the rules are tested on maps in memory.
//!
//! - [`flat`]: trees to maps `FileId -> Node` (reading only the folders
//!   that differ) and back;
//! - [`names`]: conflict copy names.
//!
//! The rules themselves come in later steps (docs/SYNC.md §7).

pub mod flat;
pub mod names;

pub use flat::{build, flatten, BuildError, Content, Flat, MemTrees, Meta, MissingTree, Node, Place, TreeId, Trees};

use nimbus_vault::{FileId, ShortId};

/// The id the merge gives the root folder, which has no entry of its own
/// (a drive's local root row keeps its random id, never written anywhere).
pub const ROOT: FileId = ShortId([0; 16]);

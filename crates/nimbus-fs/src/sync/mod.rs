//! The sync engine's merging half (docs/SYNC.md §4): other devices' heads
//! brought into the working copy. `apply.rs` rebases the working copy onto
//! a new head (§4.3); `trees.rs` gives the merge the vault's trees;
//! `history.rs` the commit history; `merge.rs` runs the merge and writes
//! its commit.
//!
//! Step 16 owns this file (the `Syncer` and its thread, `poll.rs`,
//! `recover.rs`); this one only declares the rooms built so far.

// Called by the `Syncer` of step 16; until it lands, only by their tests.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) mod apply;
pub(crate) mod history;
pub(crate) mod merge;
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) mod trees;

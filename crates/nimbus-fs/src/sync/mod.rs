//! The sync engine (docs/SYNC.md §4): placeholder until steps 16 and 17 land.

pub(crate) mod history;
pub(crate) mod merge;

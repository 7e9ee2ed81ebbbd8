//! The Nimbus file system core: the drive's working copy and its POSIX
//! semantics, and commits of its changes to the vault.
//!
//! **Architecture invariant:** this crate knows no OS mount API. No FUSE or
//! WinFsp type appears here; the mount adapters (`nimbus-fuse`, and WinFsp
//! on Windows) translate calls into [`Fs`] methods and [`ErrorKind`]s into
//! their own error codes, and the same behaviour suite runs against this
//! crate directly and through a real mount.
//!
//! Local state, in the state folder of one vault on one device:
//! `metadata.db` (SQLCipher), `staging/` (changed blocks, encrypted),
//! `cache/` (blobs as fetched, still encrypted), `decoded/` (blobs random
//! reads touched, decoded and sealed again in 4 KiB slots). All of it can be deleted:
//! the next mount rebuilds it from the vault (losing only changes that were
//! not yet committed).

mod cache;
mod commit;
/// The behaviour suite, for the tests of this crate and of the mount
/// adapters only (the `conformance` feature, which dev-dependencies turn on).
#[cfg(feature = "conformance")]
#[doc(hidden)]
pub mod conformance;
mod content;
mod error;
mod fs;
mod kernel;
mod local;
mod meta;
mod slot;
mod snapshots;
mod sync;
mod types;

pub use error::{DbError, ErrorKind, FsError, Result};
pub use fs::{Fs, FsOptions};
pub use kernel::{KernelCache, KernelCall, NoKernelCache, RecordingKernelCache};
pub use slot::Slot;
pub use snapshots::{snapshot_name, Snapshots};
pub use sync::{ConflictCopy, Counts, MergeReport, OnRefsSeen, RemoteHead, SeenDevice, SyncState, REPORT_PATHS};
pub use types::*;

/// The schema version of the local state database (`metadata.db`): a
/// database of another version is rebuilt from the vault.
pub use meta::db::SCHEMA_VERSION as STATE_SCHEMA_VERSION;

/// A test hook into the commit (see `fs::set_between_pieces_hook`).
#[doc(hidden)]
pub use fs::{set_between_pieces_hook, PieceHook};

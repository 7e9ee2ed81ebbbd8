//! The Nimbus vault format: keys, KDF, AEAD, chunking, compression, blob ids,
//! packs, indexes, trees, commits and refs.
//!
//! **Architecture invariant:** this crate does no I/O of its own. It reaches
//! storage only through [`nimbus_backend::Backend`], and knows nothing of
//! local files, mounts or networks. `docs/VAULT-FORMAT.md` describes every
//! byte it writes.

pub mod caps;
pub mod check;
pub mod chunker;
pub mod codec;
pub mod commit;
pub mod config;
pub mod crypto;
pub mod error;
pub mod gc;
pub mod id;
pub mod index;
pub mod pack;
pub mod paths;
pub mod pick;
pub mod poll;
pub mod repair;
pub mod retention;
pub mod saver;
pub mod stats;
pub mod tree;
pub mod upgrade;
pub mod vault;

#[doc(hidden)]
pub mod fuzzing;

pub use codec::BlobKind;
pub use commit::{Commit, CommitLayout, NewCommit, RefRecord};
pub use config::{KdfParams, RecoveryKey, VaultParams};
pub use error::{Result, VaultError};
pub use id::{BlobId, CommitId, DeviceId, FileId, Id, IndexId, ShortId};
pub use pick::{pick, PickError};
pub use poll::{Published, RefCache, RefPoll};
pub use saver::{SaveReaderError, SaveStats, Saver};
pub use tree::{Entry, EntryKind, Timestamp, Tree, TreeError, Xattr};
pub use vault::{read_config, CommitScan, Unlock, Vault};

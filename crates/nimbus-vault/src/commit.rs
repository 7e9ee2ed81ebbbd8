//! Commits (snapshots) and refs.
//!
//! A commit names a root tree, its parents, the device that made it and when.
//! `commits/<64 hex>` holds it sealed under the metadata key. Each device
//! writes only its own `refs/<device id>`, pointing at its newest commit, so
//! no two devices ever write the same object and no lock is needed.

use serde::{Deserialize, Serialize};

use crate::codec::{self, MetaError};
use crate::crypto::{Keys, Purpose};
use crate::id::{BlobId, CommitId, DeviceId};
use crate::tree::Timestamp;

/// A snapshot of the whole vault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Commit {
    pub root: BlobId,
    pub parents: Vec<CommitId>,
    pub device: DeviceId,
    pub time: Timestamp,
    /// What made it, for people (`put /home/ana/Photos -> /Photos`).
    pub message: String,
    /// Number of files and their total size in the whole snapshot.
    pub files: u64,
    pub bytes: u64,
}

/// What `refs/<device>` says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefRecord {
    pub commit: CommitId,
    /// Grows by one with every update of this ref.
    pub seq: u64,
    pub time: Timestamp,
}

pub fn commit_key(id: &CommitId) -> String {
    format!("commits/{}", id.to_hex())
}

pub fn parse_commit_key(key: &str) -> Option<CommitId> {
    CommitId::from_hex(key.strip_prefix("commits/")?).ok()
}

pub fn ref_key(device: &DeviceId) -> String {
    format!("refs/{}", device.to_hex())
}

pub fn parse_ref_key(key: &str) -> Option<DeviceId> {
    DeviceId::from_hex(key.strip_prefix("refs/")?).ok()
}

impl Commit {
    pub(crate) fn seal(&self, keys: &Keys, id: &CommitId) -> Vec<u8> {
        codec::seal_meta(
            &keys.meta,
            Purpose::Commit,
            id.as_bytes(),
            &postcard::to_allocvec(self).unwrap_or_default(),
        )
    }

    pub(crate) fn open(keys: &Keys, id: &CommitId, sealed: &[u8]) -> Result<Commit, MetaError> {
        codec::open_meta_value(&keys.meta, Purpose::Commit, id.as_bytes(), sealed)
    }
}

impl RefRecord {
    pub(crate) fn seal(&self, keys: &Keys, device: &DeviceId) -> Vec<u8> {
        codec::seal_meta(
            &keys.meta,
            Purpose::Ref,
            &device.0,
            &postcard::to_allocvec(self).unwrap_or_default(),
        )
    }

    pub(crate) fn open(keys: &Keys, device: &DeviceId, sealed: &[u8]) -> Result<RefRecord, MetaError> {
        codec::open_meta_value(&keys.meta, Purpose::Ref, &device.0, sealed)
    }
}

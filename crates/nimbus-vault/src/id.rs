//! Identifiers: 256-bit ids of blobs, packs, indexes and commits, and 128-bit
//! ids of vaults, devices and files.

use serde::{Deserialize, Serialize};
use std::fmt;

use crate::error::VaultError;

/// A 256-bit identifier, shown as 64 lowercase hex digits.
///
/// Blob ids are a keyed hash of the blob's plaintext; pack, index and commit
/// ids are random.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Id(pub [u8; 32]);

impl Id {
    /// A fresh random id.
    pub fn random() -> Self {
        Id(rand::random())
    }

    /// Parses 64 hex digits.
    pub fn from_hex(s: &str) -> Result<Self, VaultError> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out)
            .map_err(|_| VaultError::invalid_input(format!("`{s}` is not a 64-digit hex id")))?;
        Ok(Id(out))
    }

    /// The 64 hex digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The first 8 hex digits, as people see a commit id.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..4])
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id({})", self.short())
    }
}

/// A 128-bit identifier (vault, device, file), shown as 32 hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ShortId(pub [u8; 16]);

impl ShortId {
    pub fn random() -> Self {
        ShortId(rand::random())
    }

    pub fn from_hex(s: &str) -> Result<Self, VaultError> {
        let mut out = [0u8; 16];
        hex::decode_to_slice(s, &mut out)
            .map_err(|_| VaultError::invalid_input(format!("`{s}` is not a 32-digit hex id")))?;
        Ok(ShortId(out))
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for ShortId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for ShortId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ShortId({})", self.to_hex())
    }
}

/// Blob id (keyed hash of kind and plaintext).
pub type BlobId = Id;
/// Pack id (random).
pub type PackId = Id;
/// Commit id (random).
pub type CommitId = Id;
/// Index object id (random).
pub type IndexId = Id;
/// Device id (random, chosen once per device and vault).
pub type DeviceId = ShortId;
/// Stable file id (random, kept across renames and edits).
pub type FileId = ShortId;

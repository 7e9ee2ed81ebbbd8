//! Commits (snapshots) and refs.
//!
//! A commit names a root tree, its parents, the device that made it and when.
//! `commits/<64 hex>` holds it sealed under the metadata key. Each device
//! writes only its own `refs/<device id>`, pointing at its newest commit, so
//! no two devices ever write the same object and no lock is needed.
//!
//! Two layouts exist: version 2 (format versions 1 and 2, label `commit`)
//! and version 3 (format version 3, label `commit3`, which adds the device's
//! name, the generation and the index objects of the save). A reader tries
//! the label of its vault's version first and the other second, so a vault
//! upgraded to version 3 keeps reading the commits it had.

use serde::{Deserialize, Serialize};

use crate::codec::{self, MetaError};
use crate::crypto::{Keys, Purpose};
use crate::id::{BlobId, CommitId, DeviceId, IndexId};
use crate::tree::Timestamp;

/// The first format version whose vaults get version 3 commits (sealed
/// with the `commit3` label). Older vaults keep getting version 2 commits.
pub const COMMIT3_SINCE: u64 = 3;
/// The longest device name a version 3 commit holds, in bytes of UTF-8.
pub const MAX_DEVICE_NAME: usize = 64;

/// A snapshot of the whole vault.
///
/// In memory a commit always has the version 3 fields; a version 2 commit
/// (every commit of a version 1 or 2 vault, and those a vault had before
/// its upgrade) reads with an empty `device_name`, `generation` 0 and no
/// `indexes`.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// Version 3: the human name of the device that made it, at most
    /// [`MAX_DEVICE_NAME`] bytes; empty in a version 2 commit.
    pub device_name: String,
    /// Version 3: 1 + the largest generation of the parents (1 with no
    /// parents; a version 2 parent counts as 0; a parent that cannot be
    /// read fails the write); 0 in a version 2 commit.
    pub generation: u64,
    /// Version 3: the index objects the save that made it wrote, so a
    /// device that reads it fetches them by name instead of listing
    /// `index/`; empty in a version 2 commit.
    pub indexes: Vec<IndexId>,
}

/// What a writer says about a new commit. [`crate::Vault::write_commit`]
/// computes the generation from the parents and writes the layout of the
/// vault's format version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCommit {
    pub root: BlobId,
    pub parents: Vec<CommitId>,
    pub device: DeviceId,
    /// The device's human name (cut to [`MAX_DEVICE_NAME`] bytes); empty
    /// when the caller has none. Not written in a version 1 or 2 vault.
    pub device_name: String,
    pub time: Timestamp,
    pub message: String,
    pub files: u64,
    pub bytes: u64,
    /// The index objects of the save ([`crate::SaveStats::indexes`]). Not
    /// written in a version 1 or 2 vault.
    pub indexes: Vec<IndexId>,
}

/// The two byte layouts of a commit, each sealed under its own label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitLayout {
    /// Format versions 1 and 2 (label `commit`): no name, generation or
    /// indexes.
    V2,
    /// Format version 3 (label `commit3`): the three fields at the end.
    V3,
}

impl CommitLayout {
    /// The layout a vault of format `version` writes.
    pub fn for_version(version: u64) -> CommitLayout {
        if version >= COMMIT3_SINCE {
            CommitLayout::V3
        } else {
            CommitLayout::V2
        }
    }

    fn purpose(self) -> Purpose {
        match self {
            CommitLayout::V2 => Purpose::Commit,
            CommitLayout::V3 => Purpose::Commit3,
        }
    }

    fn other(self) -> CommitLayout {
        match self {
            CommitLayout::V2 => CommitLayout::V3,
            CommitLayout::V3 => CommitLayout::V2,
        }
    }
}

/// The version 2 layout on the wire (postcard, field order is the format).
#[derive(Serialize, Deserialize)]
struct WireV2<'a> {
    root: BlobId,
    parents: std::borrow::Cow<'a, [CommitId]>,
    device: DeviceId,
    time: Timestamp,
    message: std::borrow::Cow<'a, str>,
    files: u64,
    bytes: u64,
}

/// The version 3 layout: version 2's fields, then the three new ones.
#[derive(Serialize, Deserialize)]
struct WireV3<'a> {
    root: BlobId,
    parents: std::borrow::Cow<'a, [CommitId]>,
    device: DeviceId,
    time: Timestamp,
    message: std::borrow::Cow<'a, str>,
    files: u64,
    bytes: u64,
    device_name: std::borrow::Cow<'a, str>,
    generation: u64,
    indexes: std::borrow::Cow<'a, [IndexId]>,
}

/// `name` cut to at most [`MAX_DEVICE_NAME`] bytes, at a character boundary.
pub fn cut_device_name(name: &str) -> &str {
    if name.len() <= MAX_DEVICE_NAME {
        return name;
    }
    let mut end = MAX_DEVICE_NAME;
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
}

/// What `refs/<device>` says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefRecord {
    pub commit: CommitId,
    /// Grows by one with every update of this ref.
    pub seq: u64,
    pub time: Timestamp,
    /// Format version 4: the pending prune plans this device obeys
    /// (docs/PRUNE.md §5). Empty in older layouts.
    pub gc_seen: Vec<crate::gc::PlanId>,
}

/// A ref as versions 1 to 3 store it (label `ref`).
#[derive(Serialize, Deserialize)]
struct RefWireV1 {
    commit: CommitId,
    seq: u64,
    time: Timestamp,
}

/// From this format version on, refs carry `gc_seen` (label `ref4`).
pub const REF4_SINCE: u64 = 4;

/// At most this many plans in one ref's `gc_seen` (a ref is read under a
/// 4 KiB cap); more pending plans than this is a prune gone wrong, and
/// the oldest are named first, so they finish first.
pub const MAX_GC_SEEN: usize = 64;

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
    /// The postcard body of this commit in `layout`. A version 2 body
    /// leaves the name, generation and indexes out.
    pub fn encode(&self, layout: CommitLayout) -> Vec<u8> {
        use std::borrow::Cow;
        match layout {
            CommitLayout::V2 => postcard::to_allocvec(&WireV2 {
                root: self.root,
                parents: Cow::Borrowed(&self.parents),
                device: self.device,
                time: self.time,
                message: Cow::Borrowed(&self.message),
                files: self.files,
                bytes: self.bytes,
            }),
            CommitLayout::V3 => postcard::to_allocvec(&WireV3 {
                root: self.root,
                parents: Cow::Borrowed(&self.parents),
                device: self.device,
                time: self.time,
                message: Cow::Borrowed(&self.message),
                files: self.files,
                bytes: self.bytes,
                device_name: Cow::Borrowed(cut_device_name(&self.device_name)),
                generation: self.generation,
                indexes: Cow::Borrowed(&self.indexes),
            }),
        }
        // Encoding into a Vec fails only on allocation failure.
        .unwrap_or_default()
    }

    /// Decodes a postcard body of `layout`.
    pub fn decode(body: &[u8], layout: CommitLayout) -> Result<Commit, MetaError> {
        match layout {
            CommitLayout::V2 => {
                let w: WireV2 = postcard::from_bytes(body).map_err(MetaError::Decode)?;
                Ok(Commit {
                    root: w.root,
                    parents: w.parents.into_owned(),
                    device: w.device,
                    time: w.time,
                    message: w.message.into_owned(),
                    files: w.files,
                    bytes: w.bytes,
                    device_name: String::new(),
                    generation: 0,
                    indexes: Vec::new(),
                })
            }
            CommitLayout::V3 => {
                let w: WireV3 = postcard::from_bytes(body).map_err(MetaError::Decode)?;
                if w.device_name.len() > MAX_DEVICE_NAME {
                    return Err(MetaError::NameTooLong {
                        len: w.device_name.len(),
                        max: MAX_DEVICE_NAME,
                    });
                }
                Ok(Commit {
                    root: w.root,
                    parents: w.parents.into_owned(),
                    device: w.device,
                    time: w.time,
                    message: w.message.into_owned(),
                    files: w.files,
                    bytes: w.bytes,
                    device_name: w.device_name.into_owned(),
                    generation: w.generation,
                    indexes: w.indexes.into_owned(),
                })
            }
        }
    }

    /// The sealed object `commits/<id>` in `layout`, under that layout's
    /// label.
    pub(crate) fn seal(&self, keys: &Keys, id: &CommitId, layout: CommitLayout) -> Vec<u8> {
        codec::seal_meta(&keys.meta, layout.purpose(), id.as_bytes(), &self.encode(layout))
    }

    /// Opens `commits/<id>`: first under the label of `preferred` (the
    /// layout the vault's version writes), then under the other one. The
    /// label that authenticates says which layout the bytes are; a box that
    /// opens under neither is [`MetaError::Auth`], one that opens but does
    /// not decode as its layout is [`MetaError::Decode`].
    pub(crate) fn open(
        keys: &Keys,
        id: &CommitId,
        sealed: &[u8],
        preferred: CommitLayout,
    ) -> Result<Commit, MetaError> {
        let (layout, body) = match codec::open_meta(&keys.meta, preferred.purpose(), id.as_bytes(), sealed) {
            Ok(body) => (preferred, body),
            Err(first) => {
                let other = preferred.other();
                match codec::open_meta(&keys.meta, other.purpose(), id.as_bytes(), sealed) {
                    Ok(body) => (other, body),
                    // Neither label: report the first failure, the one of
                    // the layout this vault writes.
                    Err(_) => return Err(MetaError::Auth(first)),
                }
            }
        };
        Commit::decode(&body, layout)
    }
}

impl RefRecord {
    /// Seals the ref in the layout of format `version`.
    pub(crate) fn seal(&self, keys: &Keys, device: &DeviceId, version: u64) -> Vec<u8> {
        let (purpose, body) = if version >= REF4_SINCE {
            let mut rec = self.clone();
            rec.gc_seen.truncate(MAX_GC_SEEN);
            (Purpose::Ref4, postcard::to_allocvec(&rec))
        } else {
            let wire = RefWireV1 {
                commit: self.commit,
                seq: self.seq,
                time: self.time,
            };
            (Purpose::Ref, postcard::to_allocvec(&wire))
        };
        codec::seal_meta(&keys.meta, purpose, &device.0, &body.unwrap_or_default())
    }

    /// Opens a ref of either layout: the label says which.
    pub(crate) fn open(keys: &Keys, device: &DeviceId, sealed: &[u8]) -> Result<RefRecord, MetaError> {
        match codec::open_meta_value::<RefRecord>(&keys.meta, Purpose::Ref4, &device.0, sealed) {
            Ok(rec) if rec.gc_seen.len() <= MAX_GC_SEEN => Ok(rec),
            Ok(_) => Err(MetaError::Decode(postcard::Error::DeserializeBadEncoding)),
            Err(first) => match codec::open_meta_value::<RefWireV1>(&keys.meta, Purpose::Ref, &device.0, sealed) {
                Ok(w) => Ok(RefRecord {
                    commit: w.commit,
                    seq: w.seq,
                    time: w.time,
                    gc_seen: Vec::new(),
                }),
                Err(_) => Err(first),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::BlobError;
    use crate::crypto::MasterKey;
    use crate::id::{Id, ShortId};
    use proptest::prelude::*;

    fn sample() -> Commit {
        Commit {
            root: Id([6; 32]),
            parents: vec![Id([7; 32]), Id([8; 32])],
            device: ShortId([1; 16]),
            time: Timestamp {
                secs: 1_700_000_000,
                nanos: 5,
            },
            message: "drive".into(),
            files: 3,
            bytes: 1 << 20,
            device_name: "ana's laptop ünï".into(),
            generation: 42,
            indexes: vec![Id([9; 32])],
        }
    }

    /// What a version 2 reader keeps of a commit.
    fn as_v2(c: &Commit) -> Commit {
        Commit {
            device_name: String::new(),
            generation: 0,
            indexes: Vec::new(),
            ..c.clone()
        }
    }

    #[test]
    fn both_layouts_round_trip_whatever_the_preferred_label() {
        let keys = MasterKey::random().derive();
        let id = Id([3; 32]);
        let c = sample();
        for preferred in [CommitLayout::V2, CommitLayout::V3] {
            let v3 = c.seal(&keys, &id, CommitLayout::V3);
            assert_eq!(Commit::open(&keys, &id, &v3, preferred).unwrap(), c);
            let v2 = c.seal(&keys, &id, CommitLayout::V2);
            assert_eq!(Commit::open(&keys, &id, &v2, preferred).unwrap(), as_v2(&c));
        }
    }

    /// The bytes of a version 2 commit as Nimbus 2 wrote them (the struct
    /// it sealed, field by field) read with the new code.
    #[test]
    fn a_commit_written_by_nimbus_2_reads_as_empty_name_generation_0() {
        #[derive(Serialize)]
        struct Nimbus2Commit {
            root: BlobId,
            parents: Vec<CommitId>,
            device: DeviceId,
            time: Timestamp,
            message: String,
            files: u64,
            bytes: u64,
        }
        let keys = MasterKey::random().derive();
        let id = Id([3; 32]);
        let c = sample();
        let old = Nimbus2Commit {
            root: c.root,
            parents: c.parents.clone(),
            device: c.device,
            time: c.time,
            message: c.message.clone(),
            files: c.files,
            bytes: c.bytes,
        };
        let body = postcard::to_allocvec(&old).unwrap();
        assert_eq!(body, c.encode(CommitLayout::V2), "the version 2 layout is unchanged");
        let sealed = codec::seal_meta(&keys.meta, Purpose::Commit, id.as_bytes(), &body);
        for preferred in [CommitLayout::V2, CommitLayout::V3] {
            assert_eq!(Commit::open(&keys, &id, &sealed, preferred).unwrap(), as_v2(&c));
        }
    }

    #[test]
    fn tampering_fails_authentication() {
        let keys = MasterKey::random().derive();
        let id = Id([3; 32]);
        let c = sample();
        for layout in [CommitLayout::V2, CommitLayout::V3] {
            let sealed = c.seal(&keys, &id, layout);
            for i in 0..sealed.len() {
                let mut bad = sealed.clone();
                bad[i] ^= 0x01;
                let err = Commit::open(&keys, &id, &bad, layout).unwrap_err();
                assert_eq!(err, MetaError::Auth(BlobError::Auth), "flip at {i}");
                assert!(err.to_string().starts_with("it failed authentication"), "{err}");
            }
            // Another id, another vault, another label: refused alike.
            let moved = Commit::open(&keys, &Id([4; 32]), &sealed, layout).unwrap_err();
            assert_eq!(moved, MetaError::Auth(BlobError::Auth));
            let other = MasterKey::random().derive();
            assert!(matches!(
                Commit::open(&other, &id, &sealed, layout),
                Err(MetaError::Auth(_))
            ));
            let as_index = codec::seal_meta(&keys.meta, Purpose::Index, id.as_bytes(), &c.encode(layout));
            assert!(matches!(
                Commit::open(&keys, &id, &as_index, layout),
                Err(MetaError::Auth(_))
            ));
        }
    }

    /// The label, not the bytes, says the layout: a version 2 body under
    /// the `commit3` label is refused as malformed, never read with
    /// invented fields.
    #[test]
    fn the_label_decides_the_layout() {
        let keys = MasterKey::random().derive();
        let id = Id([3; 32]);
        let v2_body = sample().encode(CommitLayout::V2);
        let sealed = codec::seal_meta(&keys.meta, Purpose::Commit3, id.as_bytes(), &v2_body);
        assert!(matches!(
            Commit::open(&keys, &id, &sealed, CommitLayout::V3),
            Err(MetaError::Decode(_))
        ));
    }

    #[test]
    fn device_names_are_bounded() {
        let keys = MasterKey::random().derive();
        let id = Id([3; 32]);
        let mut c = sample();
        c.device_name = "é".repeat(40); // 80 bytes
        let back = Commit::open(&keys, &id, &c.seal(&keys, &id, CommitLayout::V3), CommitLayout::V3).unwrap();
        assert_eq!(back.device_name, "é".repeat(32));
        assert_eq!(cut_device_name("short"), "short");
        // A longer name in the bytes (a writer that ignored the limit) is
        // refused with its own reason.
        let wire = WireV3 {
            root: c.root,
            parents: c.parents.clone().into(),
            device: c.device,
            time: c.time,
            message: c.message.clone().into(),
            files: 0,
            bytes: 0,
            device_name: "x".repeat(65).into(),
            generation: 1,
            indexes: Vec::new().into(),
        };
        let sealed = codec::seal_meta(
            &keys.meta,
            Purpose::Commit3,
            id.as_bytes(),
            &postcard::to_allocvec(&wire).unwrap(),
        );
        assert_eq!(
            Commit::open(&keys, &id, &sealed, CommitLayout::V3),
            Err(MetaError::NameTooLong { len: 65, max: 64 })
        );
    }

    fn any_commit() -> impl Strategy<Value = Commit> {
        (
            any::<[u8; 32]>(),
            proptest::collection::vec(any::<[u8; 32]>(), 0..4),
            any::<[u8; 16]>(),
            (any::<i64>(), 0u32..1_000_000_000),
            ".{0,40}",
            (any::<u64>(), any::<u64>()),
            "[a-zA-Z0-9 ü-]{0,20}",
            any::<u64>(),
            proptest::collection::vec(any::<[u8; 32]>(), 0..4),
        )
            .prop_map(
                |(root, parents, device, (secs, nanos), message, (files, bytes), name, generation, indexes)| Commit {
                    root: Id(root),
                    parents: parents.into_iter().map(Id).collect(),
                    device: ShortId(device),
                    time: Timestamp { secs, nanos },
                    message,
                    files,
                    bytes,
                    device_name: name,
                    generation,
                    indexes: indexes.into_iter().map(Id).collect(),
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn layouts_round_trip(c in any_commit()) {
            prop_assert_eq!(Commit::decode(&c.encode(CommitLayout::V3), CommitLayout::V3).unwrap(), c.clone());
            prop_assert_eq!(Commit::decode(&c.encode(CommitLayout::V2), CommitLayout::V2).unwrap(), as_v2(&c));
        }
    }
}

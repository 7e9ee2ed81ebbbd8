//! Packs: many encrypted blobs in one object, so ten thousand small files
//! cost a few requests.
//!
//! Layout: `blob_0 ‖ … ‖ blob_n-1 ‖ header ‖ header_len (u32 LE)`. Each blob is
//! a sealed box (see `codec`). The header is a sealed metadata box, bound to
//! the pack id, listing every blob with its offset and lengths; it duplicates
//! the index entries so a lost index can be rebuilt from the packs.
//!
//! From format version 2 a pack is padded, so its size says little about
//! what it holds: random bytes between the blobs and the header bring the
//! whole pack to its Padmé length (at least [`MIN_PADDED_PACK`]), and the
//! header's plaintext is zero-padded to its own Padmé length (at least
//! [`MIN_PADDED_HEADER`]), since the header's length is stored in the clear.
//! Readers need no version: entries locate the blobs, and the padding is
//! never read.
use serde::{Deserialize, Serialize};

use crate::codec::{self, BlobKind, EncodedBlob};
use crate::crypto::{Keys, Purpose};
use crate::id::{BlobId, PackId};

/// Where one blob sits inside its pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackEntry {
    pub id: BlobId,
    pub kind: BlobKind,
    /// Offset of the sealed blob from the start of the pack.
    pub offset: u32,
    /// Length of the sealed blob.
    pub length: u32,
    /// Length of the plaintext.
    pub raw_len: u32,
}

/// The object key of a pack: `packs/<first two hex digits>/<64 hex digits>`.
pub fn pack_key(id: &PackId) -> String {
    let h = id.to_hex();
    format!("packs/{}/{}", &h[..2], h)
}

/// Parses a pack key back into its id.
pub fn parse_pack_key(key: &str) -> Option<PackId> {
    let rest = key.strip_prefix("packs/")?;
    let (dir, name) = rest.split_once('/')?;
    let id = PackId::from_hex(name).ok()?;
    (dir.len() == 2 && name.starts_with(dir)).then_some(id)
}

/// The smallest padded pack: a save of one small file costs this much, and
/// every file under it looks alike.
pub const MIN_PADDED_PACK: u64 = 4 << 10;
/// The smallest padded header plaintext: about 20 entries.
pub const MIN_PADDED_HEADER: u64 = 1 << 10;

/// Collects blobs until the pack is big enough (data and trees together from
/// format version 2 on; see `saver`).
pub(crate) struct PackBuilder {
    buf: Vec<u8>,
    entries: Vec<PackEntry>,
    /// Format version 2 and later: pad (see the module documentation).
    pad: bool,
}

/// A sealed pack, ready to upload.
pub(crate) struct FinishedPack {
    pub id: PackId,
    pub bytes: Vec<u8>,
    pub entries: Vec<PackEntry>,
}

impl PackBuilder {
    /// A builder for a vault of format `version`: packs are padded from
    /// version 2 on; a version 1 vault keeps getting version 1 packs.
    pub fn for_version(version: u64) -> Self {
        PackBuilder {
            buf: Vec::new(),
            entries: Vec::new(),
            pad: version >= 2,
        }
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn add(&mut self, blob: &EncodedBlob) {
        self.entries.push(PackEntry {
            id: blob.id,
            kind: blob.kind,
            offset: self.buf.len() as u32,
            length: blob.sealed.len() as u32,
            raw_len: blob.raw_len,
        });
        self.buf.extend_from_slice(&blob.sealed);
    }

    /// Seals the header onto the blobs and hands back the pack.
    pub fn finish(&mut self, keys: &Keys) -> FinishedPack {
        let id = PackId::random();
        let entries = std::mem::take(&mut self.entries);
        let mut bytes = std::mem::take(&mut self.buf);
        let header = if self.pad {
            let plain = postcard::to_allocvec(&entries).unwrap_or_default();
            let target = codec::padme((plain.len() as u64).max(MIN_PADDED_HEADER)) as usize;
            let header = codec::seal_meta_padded(&keys.meta, Purpose::PackHeader, id.as_bytes(), &plain, target);
            let unpadded = (bytes.len() + header.len() + 4) as u64;
            let total = codec::padme(unpadded.max(MIN_PADDED_PACK));
            // Random, not zeros, so the padding cannot be told from the
            // blobs' ciphertext and the blob area's size stays hidden.
            let start = bytes.len();
            bytes.resize(start + (total - unpadded) as usize, 0);
            rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut bytes[start..]);
            header
        } else {
            encode_header(keys, &id, &entries)
        };
        bytes.extend_from_slice(&header);
        bytes.extend_from_slice(&(header.len() as u32).to_le_bytes());
        FinishedPack { id, bytes, entries }
    }
}

pub(crate) fn encode_header(keys: &Keys, id: &PackId, entries: &[PackEntry]) -> Vec<u8> {
    let plain = postcard::to_allocvec(entries).unwrap_or_default();
    codec::seal_meta(&keys.meta, Purpose::PackHeader, id.as_bytes(), &plain)
}

/// Why a pack header was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PackError {
    #[error("the pack is too short to hold a header")]
    TooShort,
    #[error("the header length {0} does not fit in the pack")]
    BadHeaderLength(u32),
    #[error("the header failed authentication (altered, truncated, or not this pack's)")]
    Auth,
    #[error("the header does not decode: {0}")]
    Decode(String),
    #[error("blob {0} lies outside the pack's data area")]
    OutOfBounds(String),
}

/// The length of the header, from the last four bytes of the pack.
pub fn header_len_from_tail(tail: &[u8; 4]) -> u32 {
    u32::from_le_bytes(*tail)
}

/// Decodes and checks a pack header. `header` is the sealed header box, and
/// `data_len` the length of the pack before it (the blob area).
pub(crate) fn decode_header(
    keys: &Keys,
    id: &PackId,
    header: &[u8],
    data_len: u64,
) -> Result<Vec<PackEntry>, PackError> {
    let plain =
        codec::open_meta(&keys.meta, Purpose::PackHeader, id.as_bytes(), header).map_err(|_| PackError::Auth)?;
    let entries: Vec<PackEntry> = postcard::from_bytes(&plain).map_err(|e| PackError::Decode(e.to_string()))?;
    for e in &entries {
        if e.offset as u64 + e.length as u64 > data_len {
            return Err(PackError::OutOfBounds(e.id.to_hex()));
        }
    }
    Ok(entries)
}

/// Splits a whole pack into its blob area and header entries.
pub(crate) fn parse_pack<'a>(
    keys: &Keys,
    id: &PackId,
    pack: &'a [u8],
) -> Result<(&'a [u8], Vec<PackEntry>), PackError> {
    if pack.len() < 4 {
        return Err(PackError::TooShort);
    }
    let (rest, tail) = pack.split_at(pack.len() - 4);
    let hlen = header_len_from_tail(&[tail[0], tail[1], tail[2], tail[3]]);
    if hlen as usize > rest.len() {
        return Err(PackError::BadHeaderLength(hlen));
    }
    let (data, header) = rest.split_at(rest.len() - hlen as usize);
    let entries = decode_header(keys, id, header, data.len() as u64)?;
    Ok((data, entries))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{blob_id, decode_blob, encode_blob};
    use crate::crypto::MasterKey;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn pack_round_trip(blobs in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..3000), 0..20), version in 1u64..=2) {
            let keys = MasterKey::random().derive();
            let mut b = PackBuilder::for_version(version);
            for data in &blobs {
                let id = blob_id(&keys, BlobKind::Data, data);
                b.add(&encode_blob(&keys, BlobKind::Data, id, data, 3));
            }
            let p = b.finish(&keys);
            let (area, entries) = parse_pack(&keys, &p.id, &p.bytes).unwrap();
            prop_assert_eq!(&entries, &p.entries);
            for (e, data) in entries.iter().zip(&blobs) {
                let sealed = &area[e.offset as usize..(e.offset + e.length) as usize];
                prop_assert_eq!(&decode_blob(&keys, e.kind, &e.id, e.raw_len, sealed).unwrap(), data);
            }
            // Another pack's id, or any truncation, is refused.
            prop_assert!(parse_pack(&keys, &PackId::random(), &p.bytes).is_err());
            prop_assert!(parse_pack(&keys, &p.id, &p.bytes[1..]).is_err() || blobs.is_empty() || version >= 2);
            prop_assert!(parse_pack(&keys, &p.id, &p.bytes[..p.bytes.len() - 1]).is_err());
        }
    }

    /// The review's M5 measurement: a one-blob pack was `size + 101` bytes,
    /// so the store learnt each small file's size. Padded, every small pack
    /// has one size, and a larger one only its Padmé bucket.
    #[test]
    fn padded_packs_hide_sizes() {
        let keys = MasterKey::random().derive();
        let pack_of = |version: u64, len: usize| {
            let data: Vec<u8> = (0..len).map(|_| rand::random::<u8>()).collect();
            let mut b = PackBuilder::for_version(version);
            let id = blob_id(&keys, BlobKind::Data, &data);
            b.add(&encode_blob(&keys, BlobKind::Data, id, &data, 3));
            let p = b.finish(&keys);
            let (area, entries) = parse_pack(&keys, &p.id, &p.bytes).unwrap();
            let e = entries[0];
            let sealed = &area[e.offset as usize..(e.offset + e.length) as usize];
            assert_eq!(decode_blob(&keys, e.kind, &e.id, e.raw_len, sealed).unwrap(), data);
            p.bytes.len() as u64
        };
        // Version 1 (unchanged): the size shows through.
        assert_eq!(pack_of(1, 1000) + 1, pack_of(1, 1001));
        // Version 2: all small files alike, larger ones bucketed.
        let small: Vec<u64> = [0, 1, 1000, 1001, 3000].iter().map(|&n| pack_of(2, n)).collect();
        assert!(small.iter().all(|&s| s == MIN_PADDED_PACK), "{small:?}");
        let a = pack_of(2, 123_457);
        assert_eq!(a, crate::codec::padme(a));
        assert_eq!(a, pack_of(2, 123_000));
        assert!(a < 123_457 * 112 / 100);
    }

    #[test]
    fn padme_values() {
        use crate::codec::padme;
        assert_eq!(padme(0), 0);
        assert_eq!(padme(1101), 1152);
        assert_eq!(padme(4096), 4096);
        for n in [9u64, 100, 1000, 65_537, 16 << 20, (16 << 20) + 12_345] {
            assert!(padme(n) >= n && padme(n) - n <= n * 12 / 100, "{n}");
            assert_eq!(padme(padme(n)), padme(n));
        }
    }

    #[test]
    fn pack_keys() {
        let id = PackId::random();
        assert_eq!(parse_pack_key(&pack_key(&id)), Some(id));
        assert_eq!(parse_pack_key("packs/00/zz"), None);
    }
}

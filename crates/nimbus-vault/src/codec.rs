//! The blob codec: id, compression and encryption of one piece of plaintext.
//!
//! A payload is `encoding byte ‖ body`: encoding 0 stores the body as is,
//! encoding 1 stores it zstd-compressed. zstd is used only when it makes the
//! payload smaller, so incompressible data (photos, video, archives) pays one
//! byte and no decompression. The payload is then sealed (see `crypto`).

use aes_gcm::Aes256Gcm;

use crate::crypto::{self, Keys, OpenError, Purpose};
use crate::id::{BlobId, FileId, PackId, ShortId};

const RAW: u8 = 0;
const ZSTD: u8 = 1;

/// The largest plaintext a payload may expand to. Bigger claims are refused
/// before any allocation, so a hostile object cannot exhaust memory.
pub const MAX_PAYLOAD: usize = 256 << 20;

/// What a blob holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum BlobKind {
    /// File content.
    Data,
    /// A directory listing.
    Tree,
}

impl BlobKind {
    pub(crate) fn purpose(self) -> Purpose {
        match self {
            BlobKind::Data => Purpose::DataBlob,
            BlobKind::Tree => Purpose::TreeBlob,
        }
    }

    fn tag(self) -> u8 {
        match self {
            BlobKind::Data => 0,
            BlobKind::Tree => 1,
        }
    }
}

/// The id of a blob: BLAKE3 keyed with the vault's id key, over the kind byte
/// and the plaintext. Equal content gets one id across the whole vault, and
/// without the key the server cannot compute the id of a known file.
pub(crate) fn blob_id(keys: &Keys, kind: BlobKind, plaintext: &[u8]) -> BlobId {
    let mut h = blake3::Hasher::new_keyed(&keys.id_key);
    h.update(&[kind.tag()]);
    h.update(plaintext);
    BlobId::from(*h.finalize().as_bytes())
}

/// The file id of a conflict copy (format version 3, docs/SYNC.md §2.1):
/// BLAKE3 keyed with the vault's conflict-id key over the original file's
/// id and the BLAKE3 hash of the losing content, cut to 16 bytes. Every
/// device that merges the same heads makes the same copy under the same
/// id, so their trees come out equal; without the key the store cannot
/// link a copy to its original.
pub(crate) fn conflict_id(keys: &Keys, original: &FileId, loser_content_hash: &[u8; 32]) -> FileId {
    let mut h = blake3::Hasher::new_keyed(&keys.conflict_id);
    h.update(&original.0);
    h.update(loser_content_hash);
    let mut out = [0u8; 16];
    out.copy_from_slice(&h.finalize().as_bytes()[..16]);
    ShortId(out)
}

impl From<[u8; 32]> for BlobId {
    fn from(b: [u8; 32]) -> Self {
        crate::id::Id(b)
    }
}

/// Whether a large buffer looks incompressible: eight 4 KiB slices spread
/// over it are compressed at zstd's fastest level, and if that saves under
/// 3% the whole buffer is stored raw. Photos, video and archives then cost
/// ~3% of a compression pass instead of a full one.
fn looks_incompressible(plaintext: &[u8]) -> bool {
    const SLICE: usize = 4096;
    const SLICES: usize = 8;
    if plaintext.len() < 16 * SLICE * SLICES / 4 {
        return false;
    }
    let step = (plaintext.len() - SLICE) / (SLICES - 1);
    let mut sample = Vec::with_capacity(SLICE * SLICES);
    for i in 0..SLICES {
        sample.extend_from_slice(&plaintext[i * step..i * step + SLICE]);
    }
    match zstd::bulk::compress(&sample, 1) {
        Ok(c) => c.len() * 100 > sample.len() * 97,
        Err(_) => false,
    }
}

/// Builds `encoding ‖ body`, compressing only when that is smaller.
pub(crate) fn encode_payload(plaintext: &[u8], zstd_level: i32) -> Vec<u8> {
    let mut out = Vec::new();
    encode_payload_into(&mut out, plaintext, zstd_level);
    out
}

/// Appends `encoding ‖ body` to `out`.
fn encode_payload_into(out: &mut Vec<u8>, plaintext: &[u8], zstd_level: i32) {
    if zstd_level > 0 && plaintext.len() >= 64 && !looks_incompressible(plaintext) {
        if let Ok(compressed) = zstd::bulk::compress(plaintext, zstd_level) {
            if compressed.len() + 1 < plaintext.len() {
                out.push(ZSTD);
                out.extend_from_slice(&compressed);
                return;
            }
        }
    }
    out.push(RAW);
    out.extend_from_slice(plaintext);
}

/// Why a payload could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("empty payload")]
    Empty,
    #[error("unknown encoding {0}")]
    UnknownEncoding(u8),
    #[error("decompression failed: {0}")]
    Decompress(String),
    #[error("decoded size {got} differs from the {expected} bytes recorded")]
    WrongSize { got: usize, expected: usize },
}

/// Undoes [`encode_payload`]. `limit` bounds the decompressed size.
pub(crate) fn decode_payload(mut payload: Vec<u8>, limit: usize) -> Result<Vec<u8>, PayloadError> {
    let (&enc, body) = payload.split_first().ok_or(PayloadError::Empty)?;
    match enc {
        RAW => {
            if body.len() > limit {
                return Err(PayloadError::WrongSize {
                    got: body.len(),
                    expected: limit,
                });
            }
            // Shift rather than copy into a new allocation.
            payload.remove(0);
            Ok(payload)
        }
        ZSTD => {
            // The frame header states the content size; refuse absurd claims
            // before allocating.
            match zstd::zstd_safe::get_frame_content_size(body) {
                Ok(Some(n)) if (n as usize) <= limit => {
                    zstd::bulk::decompress(body, n as usize).map_err(|e| PayloadError::Decompress(e.to_string()))
                }
                Ok(Some(_)) => Err(PayloadError::Decompress("frame larger than allowed".into())),
                // No size recorded: stream, growing the buffer as data comes,
                // and stop one byte past the limit.
                _ => {
                    use std::io::Read;
                    let dec =
                        zstd::stream::read::Decoder::new(body).map_err(|e| PayloadError::Decompress(e.to_string()))?;
                    let mut out = Vec::new();
                    dec.take(limit as u64 + 1)
                        .read_to_end(&mut out)
                        .map_err(|e| PayloadError::Decompress(e.to_string()))?;
                    if out.len() > limit {
                        return Err(PayloadError::Decompress("frame larger than allowed".into()));
                    }
                    Ok(out)
                }
            }
        }
        other => Err(PayloadError::UnknownEncoding(other)),
    }
}

/// One blob, ready to be appended to a pack.
pub(crate) struct EncodedBlob {
    pub id: BlobId,
    pub kind: BlobKind,
    /// Plaintext length.
    pub raw_len: u32,
    /// `nonce ‖ ciphertext ‖ tag` of the payload.
    pub sealed: Vec<u8>,
}

/// Encodes a blob whose id is already known.
pub(crate) fn encode_blob(keys: &Keys, kind: BlobKind, id: BlobId, plaintext: &[u8], zstd_level: i32) -> EncodedBlob {
    let mut buf = Vec::with_capacity(crypto::SEAL_OVERHEAD + 1 + plaintext.len());
    buf.resize(crypto::NONCE_LEN, 0);
    encode_payload_into(&mut buf, plaintext, zstd_level);
    let sealed = crypto::seal_in_place(&keys.blob, kind.purpose(), id.as_bytes(), buf);
    EncodedBlob {
        id,
        kind,
        raw_len: plaintext.len() as u32,
        sealed,
    }
}

/// Why a stored blob was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlobError {
    #[error("authentication failed (wrong key, moved, or altered bytes)")]
    Auth,
    #[error("{0}")]
    Payload(#[from] PayloadError),
    #[error("content does not hash to its id")]
    IdMismatch,
}

impl From<OpenError> for BlobError {
    fn from(_: OpenError) -> Self {
        BlobError::Auth
    }
}

/// Decrypts, decompresses and verifies one stored blob.
pub(crate) fn decode_blob(
    keys: &Keys,
    kind: BlobKind,
    id: &BlobId,
    raw_len: u32,
    sealed: &[u8],
) -> Result<Vec<u8>, BlobError> {
    let payload = crypto::open(&keys.blob, kind.purpose(), id.as_bytes(), sealed)?;
    let plain = decode_payload(payload, raw_len as usize)?;
    if plain.len() != raw_len as usize {
        return Err(PayloadError::WrongSize {
            got: plain.len(),
            expected: raw_len as usize,
        }
        .into());
    }
    if blob_id(keys, kind, &plain) != *id {
        return Err(BlobError::IdMismatch);
    }
    Ok(plain)
}

/// Seals a metadata object (pack header, index, commit, ref): compressed
/// when that helps, then encrypted under the metadata key.
pub(crate) fn seal_meta(cipher: &Aes256Gcm, purpose: Purpose, id: &[u8], plaintext: &[u8]) -> Vec<u8> {
    crypto::seal(cipher, purpose, id, &encode_payload(plaintext, 3))
}

/// Seals a metadata object uncompressed, its body followed by zeros up to
/// `padded_len` bytes (if shorter), so the box's length says little about
/// its content. Readers decode the body with postcard, which stops at the
/// end of the value, so the zeros need no length field.
pub(crate) fn seal_meta_padded(
    cipher: &Aes256Gcm,
    purpose: Purpose,
    id: &[u8],
    plaintext: &[u8],
    padded_len: usize,
) -> Vec<u8> {
    let mut payload = Vec::with_capacity(1 + padded_len.max(plaintext.len()));
    payload.push(RAW);
    payload.extend_from_slice(plaintext);
    payload.resize(1 + padded_len.max(plaintext.len()), 0);
    crypto::seal(cipher, purpose, id, &payload)
}

/// Padmé (Nikitin et al., "Reducing Metadata Leakage from Encrypted Files
/// and Communication with PURBs", 2019): `len` rounded up so that only its
/// top ~log2(log2(len)) bits are free. At most 12 % more, and a length
/// then reveals O(log log len) bits instead of O(log len).
pub fn padme(len: u64) -> u64 {
    if len < 2 {
        return len;
    }
    let e = 63 - u64::from(len.leading_zeros());
    let s = 64 - u64::from(e.leading_zeros());
    let mask = (1u64 << (e - s)) - 1;
    len.saturating_add(mask) & !mask
}

/// Opens a metadata object sealed by [`seal_meta`].
pub(crate) fn open_meta(cipher: &Aes256Gcm, purpose: Purpose, id: &[u8], sealed: &[u8]) -> Result<Vec<u8>, BlobError> {
    let payload = crypto::open(cipher, purpose, id, sealed)?;
    Ok(decode_payload(payload, MAX_PAYLOAD)?)
}

/// Why a sealed metadata object (index, commit, ref) was refused. The
/// variant keeps apart a box that does not open from a box that opens but
/// holds something malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetaError {
    /// The box does not open under this vault's metadata key for this
    /// object (altered, moved or another vault's), or its payload does not
    /// unpack.
    #[error("it failed authentication ({0})")]
    Auth(BlobError),
    /// It opens, but its content is not the structure expected.
    #[error("it does not decode ({0})")]
    Decode(postcard::Error),
    /// An index object places a blob past the end of its pack.
    #[error("blob {blob} lies past the end of pack {pack}")]
    BlobPastPack { blob: BlobId, pack: PackId },
    /// A commit names its device with more bytes than the format allows.
    #[error("its device name is {len} bytes long, more than the {max} allowed")]
    NameTooLong { len: usize, max: usize },
}

/// Opens a metadata object sealed by [`seal_meta`] (or
/// [`seal_meta_padded`]) and decodes the value it holds.
pub(crate) fn open_meta_value<T: serde::de::DeserializeOwned>(
    cipher: &Aes256Gcm,
    purpose: Purpose,
    id: &[u8],
    sealed: &[u8],
) -> Result<T, MetaError> {
    let plain = open_meta(cipher, purpose, id, sealed).map_err(MetaError::Auth)?;
    postcard::from_bytes(&plain).map_err(MetaError::Decode)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::MasterKey;

    #[test]
    fn compressible_is_compressed_random_is_not() {
        let text = b"hello world ".repeat(1000);
        assert_eq!(encode_payload(&text, 3)[0], ZSTD);
        let random: Vec<u8> = (0..10_000).map(|_| rand::random::<u8>()).collect();
        let enc = encode_payload(&random, 3);
        assert_eq!(enc[0], RAW);
        assert_eq!(enc.len(), random.len() + 1);
    }

    #[test]
    fn blob_round_trip_and_refusals() {
        let keys = MasterKey::random().derive();
        let data = b"some file content ".repeat(100);
        let id = blob_id(&keys, BlobKind::Data, &data);
        let b = encode_blob(&keys, BlobKind::Data, id, &data, 3);
        assert_eq!(
            decode_blob(&keys, BlobKind::Data, &id, b.raw_len, &b.sealed).unwrap(),
            data
        );
        assert_eq!(
            decode_blob(&keys, BlobKind::Tree, &id, b.raw_len, &b.sealed),
            Err(BlobError::Auth)
        );
        let other = blob_id(&keys, BlobKind::Data, b"x");
        assert_eq!(
            decode_blob(&keys, BlobKind::Data, &other, b.raw_len, &b.sealed),
            Err(BlobError::Auth)
        );
        assert!(decode_blob(&keys, BlobKind::Data, &id, b.raw_len - 1, &b.sealed).is_err());
        // Same plaintext, different kind: different id.
        assert_ne!(blob_id(&keys, BlobKind::Tree, &data), id);
    }

    #[test]
    fn meta_errors_keep_a_failed_box_apart_from_a_malformed_one() {
        let keys = MasterKey::random().derive();
        let sealed = seal_meta(&keys.meta, Purpose::Commit, b"id", b"");
        let moved = open_meta_value::<u64>(&keys.meta, Purpose::Commit, b"other", &sealed).unwrap_err();
        assert_eq!(moved, MetaError::Auth(BlobError::Auth));
        assert!(moved.to_string().starts_with("it failed authentication ("), "{moved}");
        let empty = open_meta_value::<u64>(&keys.meta, Purpose::Commit, b"id", &sealed).unwrap_err();
        assert!(matches!(empty, MetaError::Decode(_)), "{empty:?}");
        assert!(empty.to_string().starts_with("it does not decode ("), "{empty}");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        #[test]
        fn codec_round_trip(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..20_000), repeat in 1usize..4, level in 0i32..6) {
            let data = data.repeat(repeat);
            let keys = MasterKey::random().derive();
            let id = blob_id(&keys, BlobKind::Tree, &data);
            let b = encode_blob(&keys, BlobKind::Tree, id, &data, level);
            proptest::prop_assert!(b.sealed.len() <= data.len() + 1 + crate::crypto::SEAL_OVERHEAD);
            proptest::prop_assert_eq!(decode_blob(&keys, BlobKind::Tree, &id, b.raw_len, &b.sealed).unwrap(), data);
        }
    }

    #[test]
    fn incompressible_detection() {
        let random: Vec<u8> = (0..1 << 20).map(|_| rand::random::<u8>()).collect();
        assert!(looks_incompressible(&random));
        let text = b"the quick brown fox jumps over the lazy dog 12345\n".repeat(20_000);
        assert!(!looks_incompressible(&text));
        // Random at the sampled spots but compressible overall is rare; a
        // half-and-half buffer is still sampled on both halves.
        let mut mixed = random[..1 << 19].to_vec();
        mixed.extend_from_slice(&vec![0u8; 1 << 19]);
        assert!(!looks_incompressible(&mixed));
        assert_eq!(encode_payload(&mixed, 3)[0], ZSTD);
    }

    #[test]
    fn decompression_bomb_refused() {
        let zeros = vec![0u8; 1 << 20];
        let enc = encode_payload(&zeros, 3);
        assert!(decode_payload(enc.clone(), 1000).is_err());
        assert_eq!(decode_payload(enc, 1 << 20).unwrap().len(), 1 << 20);
    }
}

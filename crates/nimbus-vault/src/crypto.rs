//! Keys and authenticated encryption.
//!
//! One random 256-bit master key per vault. Every purpose gets its own key,
//! derived with HKDF-SHA256 (`info` = `nimbus/1/<purpose>`), so a key used to
//! encrypt can never be confused with a key used to hash ids. Every ciphertext
//! is AES-256-GCM with a fresh random 96-bit nonce, and its associated data
//! binds it to its object kind and id: a server that swaps, renames or
//! replays an object under another name is detected at decryption.

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::{Zeroize, Zeroizing};

/// Length of the AES-GCM nonce that starts every sealed box.
pub const NONCE_LEN: usize = 12;
/// Length of the AES-GCM tag that ends every sealed box.
pub const TAG_LEN: usize = 16;
/// Bytes a sealed box adds to its plaintext.
pub const SEAL_OVERHEAD: usize = NONCE_LEN + TAG_LEN;

/// The vault's master key. Zeroized on drop; deliberately neither `Debug`,
/// `Clone` nor `Copy`, so it cannot reach a log or be duplicated by accident.
pub struct MasterKey(Zeroizing<[u8; 32]>);

impl MasterKey {
    pub(crate) fn random() -> Self {
        MasterKey(Zeroizing::new(rand::random()))
    }

    pub(crate) fn from_bytes(bytes: [u8; 32]) -> Self {
        let mut b = bytes;
        let k = MasterKey(Zeroizing::new(b));
        b.zeroize();
        k
    }

    pub(crate) fn expose(&self) -> &[u8; 32] {
        &self.0
    }

    /// Derives the per-purpose keys.
    pub(crate) fn derive(&self) -> Keys {
        Keys {
            blob: cipher(&hkdf32(self.expose(), b"nimbus/1/blob-encryption")),
            meta: cipher(&hkdf32(self.expose(), b"nimbus/1/metadata-encryption")),
            id_key: hkdf32(self.expose(), b"nimbus/1/blob-id"),
            config_mac: hkdf32(self.expose(), b"nimbus/1/config-mac"),
            local_state: hkdf32(self.expose(), b"nimbus/1/device-local-state"),
            conflict_id: hkdf32(self.expose(), b"nimbus/3/conflict-id"),
            chunker_seed: {
                let k = hkdf32(self.expose(), b"nimbus/1/chunker-seed");
                u64::from_le_bytes([k[0], k[1], k[2], k[3], k[4], k[5], k[6], k[7]])
            },
        }
    }
}

/// The keys derived from the master key, one per purpose.
pub(crate) struct Keys {
    /// Encrypts blobs (file content and trees) inside packs.
    pub blob: Aes256Gcm,
    /// Encrypts pack headers, indexes, commits and refs.
    pub meta: Aes256Gcm,
    /// Keys the BLAKE3 hash that names blobs.
    pub id_key: Zeroizing<[u8; 32]>,
    /// Keys the BLAKE3 MAC over the `config` parameters.
    pub config_mac: Zeroizing<[u8; 32]>,
    /// Root of the keys that encrypt a device's local state (metadata
    /// database, staging, cache); never used on anything that is uploaded.
    pub local_state: Zeroizing<[u8; 32]>,
    /// Keys the BLAKE3 hash that names conflict copies (format version 3,
    /// used in every version: the ids it makes look like any random file id).
    pub conflict_id: Zeroizing<[u8; 32]>,
    /// XORed into FastCDC's gear table, so chunk boundaries differ between
    /// vaults and do not fingerprint known files.
    pub chunker_seed: u64,
}

pub(crate) fn hkdf32(ikm: &[u8], info: &[u8]) -> Zeroizing<[u8; 32]> {
    let hk = Hkdf::<Sha256>::new(None, ikm);
    let mut out = Zeroizing::new([0u8; 32]);
    // 32 bytes is far below HKDF-SHA256's 8160-byte limit, so expand cannot fail.
    if hk.expand(info, out.as_mut()).is_err() {
        unreachable!("HKDF output length is fixed and valid");
    }
    out
}

pub(crate) fn cipher(key: &[u8; 32]) -> Aes256Gcm {
    Aes256Gcm::new(key.into())
}

/// What an object is; part of the associated data of its ciphertext.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    DataBlob,
    TreeBlob,
    PackHeader,
    Index,
    Commit,
    /// A format version 3 commit: its own label, so the label and not a
    /// guess at the bytes says which layout a commit has (postcard has no
    /// optional fields and ignores trailing bytes).
    Commit3,
    Ref,
    /// A format version 4 ref, which names the prune plans its device
    /// obeys (docs/PRUNE.md §3).
    Ref4,
    /// A prune plan, `refs/gc/<id>`.
    GcPlan,
    /// The record of a finished prune, `refs/gc/<id>.done`.
    GcDone,
    KeySlot,
}

impl Purpose {
    fn label(self) -> &'static [u8] {
        match self {
            Purpose::DataBlob => b"data-blob",
            Purpose::TreeBlob => b"tree-blob",
            Purpose::PackHeader => b"pack-header",
            Purpose::Index => b"index",
            Purpose::Commit => b"commit",
            Purpose::Commit3 => b"commit3",
            Purpose::Ref => b"ref",
            Purpose::Ref4 => b"ref4",
            Purpose::GcPlan => b"gc-plan",
            Purpose::GcDone => b"gc-done",
            Purpose::KeySlot => b"key-slot",
        }
    }
}

/// Associated data: `nimbus/1/<kind>/` followed by the raw id bytes.
pub(crate) fn associated_data(purpose: Purpose, id: &[u8]) -> Vec<u8> {
    let mut ad = Vec::with_capacity(32 + id.len());
    ad.extend_from_slice(b"nimbus/1/");
    ad.extend_from_slice(purpose.label());
    ad.push(b'/');
    ad.extend_from_slice(id);
    ad
}

/// Encrypts `plaintext` into `nonce ‖ ciphertext ‖ tag`.
pub(crate) fn seal(cipher: &Aes256Gcm, purpose: Purpose, id: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(SEAL_OVERHEAD + plaintext.len());
    buf.resize(NONCE_LEN, 0);
    buf.extend_from_slice(plaintext);
    seal_in_place(cipher, purpose, id, buf)
}

/// Like [`seal`], for a buffer laid out as `[NONCE_LEN reserved bytes] ‖
/// plaintext`: encrypts in place and appends the tag, so a 1 MiB blob is
/// not copied twice more on its way into a pack.
pub(crate) fn seal_in_place(cipher: &Aes256Gcm, purpose: Purpose, id: &[u8], mut buf: Vec<u8>) -> Vec<u8> {
    debug_assert!(buf.len() >= NONCE_LEN);
    let nonce_bytes: [u8; NONCE_LEN] = rand::random();
    buf[..NONCE_LEN].copy_from_slice(&nonce_bytes);
    let ad = associated_data(purpose, id);
    // AES-GCM encryption only fails for plaintexts over 64 GiB; blobs and
    // metadata are orders of magnitude smaller.
    let tag = match cipher.encrypt_inout_detached(&Nonce::from(nonce_bytes), &ad, (&mut buf[NONCE_LEN..]).into()) {
        Ok(tag) => tag,
        Err(_) => unreachable!("plaintext far below the AES-GCM length limit"),
    };
    buf.extend_from_slice(&tag);
    buf
}

/// Authentication failed: wrong key, wrong object, or altered bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenError;

/// Decrypts and authenticates a sealed box made by [`seal`].
pub(crate) fn open(cipher: &Aes256Gcm, purpose: Purpose, id: &[u8], sealed: &[u8]) -> Result<Vec<u8>, OpenError> {
    if sealed.len() < SEAL_OVERHEAD {
        return Err(OpenError);
    }
    let (nonce, rest) = sealed.split_at(NONCE_LEN);
    let (ct, tag) = rest.split_at(rest.len() - TAG_LEN);
    let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| OpenError)?;
    let tag: [u8; TAG_LEN] = tag.try_into().map_err(|_| OpenError)?;
    let ad = associated_data(purpose, id);
    let mut buf = ct.to_vec();
    cipher
        .decrypt_inout_detached(&Nonce::from(nonce), &ad, (&mut buf[..]).into(), &tag.into())
        .map_err(|_| OpenError)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_binding() {
        let mk = MasterKey::random();
        let keys = mk.derive();
        let id = [7u8; 32];
        let sealed = seal(&keys.meta, Purpose::Commit, &id, b"hello");
        assert_eq!(open(&keys.meta, Purpose::Commit, &id, &sealed).unwrap(), b"hello");
        // Another kind, another id, another key, or a flipped bit: all refused.
        assert!(open(&keys.meta, Purpose::Ref, &id, &sealed).is_err());
        assert!(open(&keys.meta, Purpose::Commit, &[8u8; 32], &sealed).is_err());
        assert!(open(&keys.blob, Purpose::Commit, &id, &sealed).is_err());
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            assert!(
                open(&keys.meta, Purpose::Commit, &id, &bad).is_err(),
                "bit flip at {i} accepted"
            );
        }
        assert!(open(&keys.meta, Purpose::Commit, &id, &sealed[..sealed.len() - 1]).is_err());
    }

    #[test]
    fn nonces_are_fresh() {
        let keys = MasterKey::random().derive();
        let a = seal(&keys.meta, Purpose::Index, b"x", b"same");
        let b = seal(&keys.meta, Purpose::Index, b"x", b"same");
        assert_ne!(a, b);
    }
}

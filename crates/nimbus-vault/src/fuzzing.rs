//! Entry points for the fuzz targets in `fuzz/`: every decoder of bytes that
//! come from the store, driven with a fixed key. Not a public API.

use crate::codec::{self, BlobKind};
use crate::commit::{Commit, CommitLayout, RefRecord};
use crate::config::Config;
use crate::crypto::{self, Keys, MasterKey, Purpose};
use crate::id::{Id, ShortId};
use crate::index::IndexFile;
use crate::pack;
use crate::tree::Tree;

fn keys() -> Keys {
    MasterKey::from_bytes([42u8; 32]).derive()
}

pub fn config(data: &[u8]) {
    if let Ok(cfg) = Config::decode(data) {
        let _ = cfg.encode();
    }
    // A mutation almost always breaks the checksum; repair it so the checks
    // behind it (parameter ranges, key slots) are fuzzed too.
    if let Ok(mut f) = serde_json::from_slice::<crate::config::ConfigFile>(data) {
        f.checksum = f.compute_checksum();
        if let Ok(b) = serde_json::to_vec(&f) {
            if let Ok(c) = Config::decode(&b) {
                let _ = c.unlock_with_password(b"fuzz");
                let _ = c.encode();
            }
        }
    }
}

pub fn pack(data: &[u8]) {
    let k = keys();
    let _ = pack::parse_pack(&k, &Id([1; 32]), data);
    // Behind authentication: a pack whose header is the input, sealed with
    // the right key, so the header's bounds checks see hostile values.
    let header = crypto::seal(&k.meta, Purpose::PackHeader, &[1; 32], &[&[0u8][..], data].concat());
    let mut p = vec![0u8; 64];
    p.extend_from_slice(&header);
    p.extend_from_slice(&(header.len() as u32).to_le_bytes());
    let _ = pack::parse_pack(&k, &Id([1; 32]), &p);
}

pub fn index(data: &[u8]) {
    let k = keys();
    let _ = IndexFile::open(&k, &Id([1; 32]), data);
    // Behind authentication: the input as the (raw or zstd) payload of a
    // correctly sealed index.
    let sealed = crypto::seal(&k.meta, Purpose::Index, &[1; 32], data);
    let _ = IndexFile::open(&k, &Id([1; 32]), &sealed);
}

pub fn commit(data: &[u8]) {
    let k = keys();
    for preferred in [CommitLayout::V2, CommitLayout::V3] {
        let _ = Commit::open(&k, &Id([1; 32]), data, preferred);
    }
    let _ = RefRecord::open(&k, &ShortId([1; 16]), data);
    // Behind authentication: the input as the payload of a commit sealed
    // under each label, so both layouts' decoders see hostile values.
    for (purpose, preferred) in [
        (Purpose::Commit, CommitLayout::V3),
        (Purpose::Commit3, CommitLayout::V2),
    ] {
        let sealed = crypto::seal(&k.meta, purpose, &[1; 32], data);
        let _ = Commit::open(&k, &Id([1; 32]), &sealed, preferred);
    }
}

pub fn tree(data: &[u8]) {
    let _ = Tree::decode(data);
}

pub fn blob(data: &[u8]) {
    let k = keys();
    let raw_len = data.first().copied().unwrap_or(0) as u32 * 97;
    let _ = codec::decode_blob(&k, BlobKind::Data, &Id([1; 32]), raw_len, data);
    let _ = codec::decode_payload(data.to_vec(), 1 << 20);
}

/// Postcard decoding of plaintext structures, bypassing encryption (which
/// would otherwise reject every mutated input before the decoder runs).
pub fn plaintext(data: &[u8]) {
    let _ = postcard::from_bytes::<IndexFile>(data);
    let _ = Commit::decode(data, CommitLayout::V2);
    let _ = Commit::decode(data, CommitLayout::V3);
    let _ = postcard::from_bytes::<RefRecord>(data);
    let _ = postcard::from_bytes::<Vec<pack::PackEntry>>(data);
}

/// The write pipeline on one buffer, for benchmarks: chunk, hash, compress
/// when it helps, encrypt. Returns the number of sealed bytes produced.
pub fn pipeline(data: &[u8], params: &crate::chunker::ChunkerParams, zstd_level: i32) -> usize {
    let k = keys();
    let mut out = 0;
    for (off, len) in crate::chunker::chunk_slice(params, k.chunker_seed, data) {
        let chunk = &data[off..off + len];
        let id = codec::blob_id(&k, BlobKind::Data, chunk);
        out += codec::encode_blob(&k, BlobKind::Data, id, chunk, zstd_level)
            .sealed
            .len();
    }
    out
}

//! Entry points for the fuzz targets in `fuzz/`: every decoder of bytes that
//! come from the store, driven with a fixed key. Not a public API.

use crate::codec::{self, BlobKind};
use crate::commit::{Commit, RefRecord};
use crate::config::Config;
use crate::crypto::{Keys, MasterKey};
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
}

pub fn pack(data: &[u8]) {
    let _ = pack::parse_pack(&keys(), &Id([1; 32]), data);
}

pub fn index(data: &[u8]) {
    let _ = IndexFile::open(&keys(), &Id([1; 32]), data);
}

pub fn commit(data: &[u8]) {
    let _ = Commit::open(&keys(), &Id([1; 32]), data);
    let _ = RefRecord::open(&keys(), &ShortId([1; 16]), data);
}

pub fn tree(data: &[u8]) {
    let _ = Tree::decode(data);
}

pub fn blob(data: &[u8]) {
    let k = keys();
    let raw_len = data.first().copied().unwrap_or(0) as u32 * 97;
    let _ = codec::decode_blob(&k, BlobKind::Data, &Id([1; 32]), raw_len, data);
    let _ = codec::decode_payload(data, 1 << 20);
}

/// Postcard decoding of plaintext structures, bypassing encryption (which
/// would otherwise reject every mutated input before the decoder runs).
pub fn plaintext(data: &[u8]) {
    let _ = postcard::from_bytes::<IndexFile>(data);
    let _ = postcard::from_bytes::<Commit>(data);
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

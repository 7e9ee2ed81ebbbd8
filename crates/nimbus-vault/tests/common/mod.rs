//! What several test files of this crate share: a runtime, and the golden
//! vaults of `tests/fixtures` loaded into memory.

#![allow(dead_code, clippy::unwrap_used)]

use bytes::Bytes;
use nimbus_backend::{Backend, MemoryBackend};
use std::path::Path;
use std::sync::Arc;

/// The password of every golden vault (tests/fixtures/README.md).
pub const GOLDEN_PASSWORD: &[u8] = b"nimbus-golden-fixture";

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

pub fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
}

/// The golden vault `name` copied into memory, object by object.
pub async fn golden_in_memory(name: &str) -> Arc<MemoryBackend> {
    fn walk(dir: &Path, base: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                walk(&path, base, out);
            } else {
                let key = path.strip_prefix(base).unwrap().to_str().unwrap().to_string();
                out.push((key, std::fs::read(&path).unwrap()));
            }
        }
    }
    let mut objects = Vec::new();
    let base = fixture(name);
    walk(&base, &base, &mut objects);
    let mem = Arc::new(MemoryBackend::new());
    for (key, bytes) in objects {
        mem.put(&key, Bytes::from(bytes)).await.unwrap();
    }
    mem
}

/// Incompressible bytes (xorshift) from a seed, so pack sizes mean
/// something.
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

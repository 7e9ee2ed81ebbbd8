//! Writes the seed corpora of the fuzz targets: `seedgen <dir>` fills
//! `<dir>/<target>/` with valid inputs for each decoder in
//! `nimbus_vault::fuzzing`.
//!
//! The sealed objects (packs, indexes, commits, refs, blobs) are sealed with
//! the fixed key and ids those entry points use (master key `[42; 32]`, object
//! id `[1; 32]`, device id `[1; 16]`), so they pass authentication and reach
//! the decoders behind it. The crate's `seal` is private, so the construction
//! from `crypto.rs` / `codec.rs` is repeated here: HKDF-SHA256 per-purpose
//! keys, AES-256-GCM, `nonce ‖ ciphertext ‖ tag`, associated data
//! `nimbus/1/<purpose>/<id>`, payload `encoding byte ‖ body`. Nonces are
//! fixed so the output is reproducible (only `config`, made by
//! `Config::create`, has random salts and keys).

use std::fs;
use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hkdf::Hkdf;
use sha2::Sha256;

use nimbus_vault::config::{Config, KdfParams, VaultParams};
use nimbus_vault::index::{IndexFile, IndexPack};
use nimbus_vault::pack::PackEntry;
use nimbus_vault::{BlobKind, Commit, CommitLayout, Entry, EntryKind, Id, RefRecord, ShortId, Timestamp, Tree, Xattr};

const MASTER: [u8; 32] = [42; 32];
const OBJECT_ID: [u8; 32] = [1; 32];
const DEVICE_ID: [u8; 16] = [1; 16];

fn hkdf32(info: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    Hkdf::<Sha256>::new(None, &MASTER)
        .expand(info, &mut out)
        .expect("32-byte HKDF output");
    out
}

fn meta_cipher() -> Aes256Gcm {
    Aes256Gcm::new((&hkdf32(b"nimbus/1/metadata-encryption")).into())
}

fn blob_cipher() -> Aes256Gcm {
    Aes256Gcm::new((&hkdf32(b"nimbus/1/blob-encryption")).into())
}

/// `nonce ‖ AES-256-GCM(payload) ‖ tag`, bound to `nimbus/1/<label>/<id>`.
fn seal(cipher: &Aes256Gcm, label: &str, id: &[u8], nonce: [u8; 12], payload: &[u8]) -> Vec<u8> {
    let mut ad = format!("nimbus/1/{label}/").into_bytes();
    ad.extend_from_slice(id);
    let ct = cipher
        .encrypt(Nonce::from_slice(&nonce), Payload { msg: payload, aad: &ad })
        .expect("seal");
    [nonce.as_slice(), &ct].concat()
}

/// Encoding 0: the body as is.
fn raw(body: &[u8]) -> Vec<u8> {
    [&[0u8][..], body].concat()
}

/// Encoding 1: a zstd frame that records its content size.
fn zstd_sized(body: &[u8]) -> Vec<u8> {
    [&[1u8][..], &zstd::bulk::compress(body, 3).expect("zstd")].concat()
}

/// Encoding 1: a streamed zstd frame with no content size in its header.
fn zstd_unsized(body: &[u8]) -> Vec<u8> {
    [&[1u8][..], &zstd::stream::encode_all(body, 3).expect("zstd")].concat()
}

fn nonce(first: u8) -> [u8; 12] {
    let mut n = [7u8; 12];
    n[0] = first;
    n
}

fn ts(secs: i64, nanos: u32) -> Timestamp {
    Timestamp { secs, nanos }
}

fn entries() -> Vec<PackEntry> {
    vec![
        PackEntry {
            id: Id([2; 32]),
            kind: BlobKind::Data,
            offset: 0,
            length: 125,
            raw_len: 97,
        },
        PackEntry {
            id: Id([3; 32]),
            kind: BlobKind::Tree,
            offset: 125,
            length: 60,
            raw_len: 300,
        },
    ]
}

fn index_file() -> IndexFile {
    IndexFile {
        packs: vec![
            IndexPack {
                id: Id([4; 32]),
                size: 4096,
                blobs: entries(),
            },
            IndexPack {
                id: Id([5; 32]),
                size: 0,
                blobs: vec![],
            },
        ],
    }
}

fn commit() -> Commit {
    Commit {
        root: Id([6; 32]),
        parents: vec![Id([7; 32]), Id([8; 32])],
        device: ShortId(DEVICE_ID),
        time: ts(1_700_000_000, 123_456_789),
        message: "put /home/ana/Photos -> /Photos".into(),
        files: 3,
        bytes: 1 << 20,
        device_name: "ana's laptop".into(),
        generation: 7,
        indexes: vec![Id([14; 32]), Id([15; 32])],
    }
}

fn ref_record() -> RefRecord {
    RefRecord {
        commit: Id([9; 32]),
        seq: 42,
        time: ts(1_700_000_001, 0),
    }
}

fn entry(name: &[u8], kind: EntryKind) -> Entry {
    Entry {
        name: name.to_vec(),
        kind,
        mode: 0o644,
        uid: 1000,
        gid: 1000,
        mtime: ts(1_700_000_000, 1),
        ctime: ts(-5, 500),
        size: 0,
        file_id: ShortId([10; 16]),
        xattrs: vec![],
        target: vec![],
        rdev: 0,
        content: vec![],
        subtree: None,
    }
}

fn tree() -> Tree {
    let mut t = Tree {
        entries: vec![
            Entry {
                mode: 0o755,
                subtree: Some(Id([11; 32])),
                ..entry(b"Photos", EntryKind::Dir)
            },
            Entry {
                size: 5 << 20,
                content: vec![Id([12; 32]), Id([13; 32])],
                xattrs: vec![Xattr {
                    name: b"user.comment".to_vec(),
                    value: b"holiday".to_vec(),
                }],
                ..entry(b"a.jpg", EntryKind::File)
            },
            Entry {
                target: b"../elsewhere".to_vec(),
                ..entry(b"link", EntryKind::Symlink)
            },
            entry(b"pipe", EntryKind::Fifo),
            Entry {
                rdev: 0x0801,
                ..entry(b"sda1", EntryKind::BlockDevice)
            },
            entry(b"empty", EntryKind::File),
        ],
    };
    t.sort();
    t
}

/// A pack whose header lists two blobs; `zstd_header` picks the header's
/// encoding.
fn pack(zstd_header: bool) -> Vec<u8> {
    let blob_key = blob_cipher();
    let data = b"file content ".repeat(30);
    let mut out = seal(&blob_key, "data-blob", &[2; 32], nonce(1), &raw(&data[..97]));
    let second = seal(&blob_key, "tree-blob", &[3; 32], nonce(2), &zstd_sized(&data[..300]));
    let mut list = entries();
    list[0].length = out.len() as u32;
    list[1].offset = out.len() as u32;
    list[1].length = second.len() as u32;
    out.extend_from_slice(&second);
    let plain = postcard::to_allocvec(&list).expect("postcard");
    let payload = if zstd_header { zstd_sized(&plain) } else { raw(&plain) };
    let header = seal(&meta_cipher(), "pack-header", &OBJECT_ID, nonce(3), &payload);
    out.extend_from_slice(&header);
    out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    out
}

fn empty_pack() -> Vec<u8> {
    let plain = postcard::to_allocvec(&Vec::<PackEntry>::new()).expect("postcard");
    let mut out = seal(&meta_cipher(), "pack-header", &OBJECT_ID, nonce(4), &raw(&plain));
    out.extend_from_slice(&(out.len() as u32).to_le_bytes());
    out
}

fn config_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let kdf = KdfParams::minimum();
    let (cfg, _master, _recovery) = Config::create(b"x", VaultParams::default(), kdf).expect("Config::create");
    let real = cfg.encode();
    Config::decode(&real).expect("the created config decodes");
    let text = String::from_utf8(real.clone()).expect("config is UTF-8");
    let newer = text.replacen("\"version\": 2", "\"version\": 3", 1);
    assert_ne!(newer, text, "version field not found");
    let compact = serde_compact(&text);
    Config::decode(compact.as_bytes()).expect("the compact config decodes");
    vec![
        ("vault.json", real),
        ("compact.json", compact.into_bytes()),
        ("newer-version.json", newer.into_bytes()),
    ]
}

/// The same JSON without the pretty-printing whitespace (its strings hold
/// only hex and names, so no whitespace inside them is lost).
fn serde_compact(text: &str) -> String {
    text.chars().filter(|c| !c.is_whitespace()).collect()
}

fn write(dir: &Path, target: &str, name: &str, bytes: &[u8]) {
    let d = dir.join(target);
    fs::create_dir_all(&d).expect("create seed dir");
    fs::write(d.join(name), bytes).expect("write seed");
}

fn main() {
    let dir = PathBuf::from(std::env::args_os().nth(1).unwrap_or_else(|| "seeds".into()));
    let meta = meta_cipher();

    for (name, bytes) in config_seeds() {
        write(&dir, "config", name, &bytes);
    }

    write(&dir, "pack", "two-blobs", &pack(false));
    write(&dir, "pack", "two-blobs-zstd-header", &pack(true));
    write(&dir, "pack", "empty", &empty_pack());

    let idx = postcard::to_allocvec(&index_file()).expect("postcard");
    write(
        &dir,
        "index",
        "two-packs",
        &seal(&meta, "index", &OBJECT_ID, nonce(5), &raw(&idx)),
    );
    write(
        &dir,
        "index",
        "two-packs-zstd",
        &seal(&meta, "index", &OBJECT_ID, nonce(6), &zstd_sized(&idx)),
    );
    let empty = postcard::to_allocvec(&IndexFile::default()).expect("postcard");
    write(
        &dir,
        "index",
        "empty",
        &seal(&meta, "index", &OBJECT_ID, nonce(7), &raw(&empty)),
    );

    // Version 2 layout (label `commit`) and version 3 (label `commit3`).
    let c = commit().encode(CommitLayout::V2);
    let c3 = commit().encode(CommitLayout::V3);
    let r = postcard::to_allocvec(&ref_record()).expect("postcard");
    write(
        &dir,
        "commit",
        "commit",
        &seal(&meta, "commit", &OBJECT_ID, nonce(8), &raw(&c)),
    );
    write(
        &dir,
        "commit",
        "commit-zstd",
        &seal(&meta, "commit", &OBJECT_ID, nonce(9), &zstd_unsized(&c)),
    );
    write(
        &dir,
        "commit",
        "commit3",
        &seal(&meta, "commit3", &OBJECT_ID, nonce(30), &raw(&c3)),
    );
    write(
        &dir,
        "commit",
        "commit3-zstd",
        &seal(&meta, "commit3", &OBJECT_ID, nonce(31), &zstd_unsized(&c3)),
    );
    write(
        &dir,
        "commit",
        "ref",
        &seal(&meta, "ref", &DEVICE_ID, nonce(10), &raw(&r)),
    );

    let t = tree();
    let encoded = t.encode();
    assert_eq!(Tree::decode(&encoded).expect("the seed tree decodes"), t);
    write(&dir, "tree", "six-entries", &encoded);
    write(&dir, "tree", "empty", &Tree::default().encode());

    // `fuzzing::blob` takes raw_len = first byte × 97; the first byte of a
    // sealed box is the first nonce byte, so pick it to match the plaintext.
    let blob_key = blob_cipher();
    let text = b"blob body ".repeat(20);
    write(
        &dir,
        "blob",
        "sealed-raw",
        &seal(&blob_key, "data-blob", &OBJECT_ID, nonce(1), &raw(&text[..97])),
    );
    write(
        &dir,
        "blob",
        "sealed-zstd",
        &seal(&blob_key, "data-blob", &OBJECT_ID, nonce(2), &zstd_sized(&text[..194])),
    );
    // The same data also goes to decode_payload directly.
    write(&dir, "blob", "payload-raw", &raw(b"hello"));
    write(&dir, "blob", "payload-zstd", &zstd_sized(&text));
    write(&dir, "blob", "payload-zstd-unsized", &zstd_unsized(&text));

    write(&dir, "plaintext", "index", &idx);
    write(&dir, "plaintext", "commit", &c);
    write(&dir, "plaintext", "commit3", &c3);
    write(&dir, "plaintext", "ref", &r);
    write(
        &dir,
        "plaintext",
        "pack-entries",
        &postcard::to_allocvec(&entries()).expect("postcard"),
    );

    eprintln!("seeds written under {}", dir.display());
}

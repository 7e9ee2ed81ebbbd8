//! Size caps on the objects a client reads whole, so a hostile or broken
//! store cannot exhaust memory with one oversized object.
//!
//! Each cap is far above anything Nimbus writes for that kind of object and
//! is enforced by [`nimbus_backend::Backend::get_whole`] while the object is
//! read, not after: a client never holds more than the cap and one byte.
//! Past a cap the error names the object.

/// `config`: a few hundred bytes per key slot, at most
/// [`crate::config::MAX_KEY_SLOTS`] slots.
pub const CONFIG_MAX: u64 = 64 << 10;
/// `refs/<device>`: about 80 bytes.
pub const REF_MAX: u64 = 4 << 10;
/// `commits/<id>`: about 150 bytes plus the message and parents.
pub const COMMIT_MAX: u64 = 1 << 20;
/// `index/<id>`: a save writes one after at most a million blob entries
/// (≤ 48 bytes each) or 16,384 packs (≤ 47 bytes each): under 50 MiB.
pub const INDEX_MAX: u64 = 64 << 20;

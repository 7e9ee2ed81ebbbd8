//! Trees: directory listings, stored as blobs of kind `Tree`.
//!
//! A tree lists its entries sorted by name (bytes, as the OS gives them).
//! Each entry carries its metadata, a stable random file id that survives
//! renames and edits, and either the blob ids of its content (files) or the
//! id of its subtree (directories).

use serde::{Deserialize, Serialize};

use crate::id::{BlobId, FileId};

/// Seconds and nanoseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Timestamp {
    pub secs: i64,
    pub nanos: u32,
}

impl Timestamp {
    pub fn now() -> Self {
        Self::from_system(std::time::SystemTime::now())
    }

    pub fn from_system(t: std::time::SystemTime) -> Self {
        match t.duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => Timestamp {
                secs: d.as_secs() as i64,
                nanos: d.subsec_nanos(),
            },
            Err(e) => {
                let d = e.duration();
                if d.subsec_nanos() == 0 {
                    Timestamp {
                        secs: -(d.as_secs() as i64),
                        nanos: 0,
                    }
                } else {
                    Timestamp {
                        secs: -(d.as_secs() as i64) - 1,
                        nanos: 1_000_000_000 - d.subsec_nanos(),
                    }
                }
            }
        }
    }

    /// The time as a `SystemTime`, clamped to what the platform can hold.
    pub fn to_system(self) -> std::time::SystemTime {
        let base = std::time::UNIX_EPOCH;
        let nanos = std::time::Duration::from_nanos(self.nanos.min(999_999_999) as u64);
        let t = if self.secs >= 0 {
            base.checked_add(std::time::Duration::from_secs(self.secs as u64))
        } else {
            base.checked_sub(std::time::Duration::from_secs(self.secs.unsigned_abs()))
        };
        t.and_then(|t| t.checked_add(nanos)).unwrap_or(base)
    }
}

impl Timestamp {
    /// Year, month, day, hour, minute, second (UTC). Any time a tree can
    /// hold works, from before 1970 to far past 9999, without going
    /// through `SystemTime`.
    pub fn utc_parts(self) -> (i64, u32, u32, u32, u32, u32) {
        let days = self.secs.div_euclid(86_400);
        let rem = self.secs.rem_euclid(86_400) as u32;
        let (y, m, d) = civil_from_days(days);
        (y, m, d, rem / 3600, rem % 3600 / 60, rem % 60)
    }

    /// `2026-11-23 14:05:09` (UTC).
    pub fn format_utc(self) -> String {
        let (y, m, d, h, mi, s) = self.utc_parts();
        format!("{y:04}-{m:02}-{d:02} {h:02}:{mi:02}:{s:02}")
    }
}

/// Year, month, day of a day count since 1970-01-01 in the proleptic
/// Gregorian calendar (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
    Fifo,
    CharDevice,
    BlockDevice,
    Socket,
}

/// One directory entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    #[serde(with = "serde_bytes")]
    pub name: Vec<u8>,
    pub kind: EntryKind,
    /// Permission bits and set-id/sticky bits (`st_mode & 0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: Timestamp,
    pub ctime: Timestamp,
    /// File length in bytes (0 for others).
    pub size: u64,
    pub file_id: FileId,
    pub xattrs: Vec<Xattr>,
    /// Symlink target, as bytes.
    #[serde(with = "serde_bytes")]
    pub target: Vec<u8>,
    /// Device number for device nodes.
    pub rdev: u64,
    /// Content of a file, in order.
    pub content: Vec<BlobId>,
    /// The tree of a directory.
    pub subtree: Option<BlobId>,
}

impl Entry {
    /// A folder entry with no content, mode 0755, owned by root, with both
    /// times set to `time` and a fresh file id.
    pub fn new_dir(name: Vec<u8>, time: Timestamp) -> Entry {
        Entry {
            name,
            kind: EntryKind::Dir,
            mode: 0o755,
            uid: 0,
            gid: 0,
            mtime: time,
            ctime: time,
            size: 0,
            file_id: FileId::random(),
            xattrs: Vec::new(),
            target: Vec::new(),
            rdev: 0,
            content: Vec::new(),
            subtree: None,
        }
    }
}

/// One extended attribute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Xattr {
    #[serde(with = "serde_bytes")]
    pub name: Vec<u8>,
    #[serde(with = "serde_bytes")]
    pub value: Vec<u8>,
}

/// A directory listing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tree {
    pub entries: Vec<Entry>,
}

/// The longest name a tree accepts (Linux's NAME_MAX).
pub const MAX_NAME: usize = 255;

/// Checks a single path component.
pub fn valid_name(name: &[u8]) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && name != b"."
        && name != b".."
        && !name.contains(&b'/')
        && !name.contains(&0)
}

/// Why the plaintext of a tree blob is not a valid tree.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TreeError {
    #[error("the tree does not decode ({0})")]
    Decode(postcard::Error),
    #[error("entry {0} has an invalid name")]
    InvalidName(usize),
    #[error("entries are not sorted or not unique")]
    NotSorted,
    #[error("entry `{name}` has content that does not fit its kind")]
    ContentForKind { name: String },
}

impl Tree {
    /// Sorts the entries by name, as the format requires.
    pub fn sort(&mut self) {
        self.entries.sort_by(|a, b| a.name.cmp(&b.name));
    }

    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).unwrap_or_default()
    }

    /// Decodes a tree and checks its invariants: valid unique sorted names,
    /// and content only where the kind allows it.
    pub fn decode(bytes: &[u8]) -> Result<Tree, TreeError> {
        let tree: Tree = postcard::from_bytes(bytes).map_err(TreeError::Decode)?;
        for (i, e) in tree.entries.iter().enumerate() {
            if !valid_name(&e.name) {
                return Err(TreeError::InvalidName(i));
            }
            if i > 0 && tree.entries[i - 1].name >= e.name {
                return Err(TreeError::NotSorted);
            }
            let ok = match e.kind {
                EntryKind::Dir => e.subtree.is_some() && e.content.is_empty(),
                EntryKind::File => e.subtree.is_none(),
                _ => e.subtree.is_none() && e.content.is_empty(),
            };
            if !ok {
                return Err(TreeError::ContentForKind {
                    name: String::from_utf8_lossy(&e.name).into_owned(),
                });
            }
        }
        Ok(tree)
    }

    pub fn get(&self, name: &[u8]) -> Option<&Entry> {
        self.entries
            .binary_search_by(|e| e.name.as_slice().cmp(name))
            .ok()
            .map(|i| &self.entries[i])
    }

    /// Inserts or replaces the entry with the same name, keeping the order.
    pub fn upsert(&mut self, entry: Entry) {
        match self.entries.binary_search_by(|e| e.name.as_slice().cmp(&entry.name)) {
            Ok(i) => self.entries[i] = entry,
            Err(i) => self.entries.insert(i, entry),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_refuses_bad_trees() {
        let e = Entry {
            name: b"a".to_vec(),
            kind: EntryKind::File,
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: Timestamp::default(),
            ctime: Timestamp::default(),
            size: 0,
            file_id: FileId::random(),
            xattrs: vec![],
            target: vec![],
            rdev: 0,
            content: vec![],
            subtree: None,
        };
        let mut t = Tree {
            entries: vec![e.clone()],
        };
        assert_eq!(Tree::decode(&t.encode()).unwrap(), t);
        t.entries.push(e.clone());
        assert_eq!(Tree::decode(&t.encode()), Err(TreeError::NotSorted), "duplicate names");
        let bad = Tree {
            entries: vec![Entry {
                name: b"x/y".to_vec(),
                ..e.clone()
            }],
        };
        assert_eq!(Tree::decode(&bad.encode()), Err(TreeError::InvalidName(0)));
        let bad = Tree {
            entries: vec![Entry {
                kind: EntryKind::Dir,
                ..e
            }],
        };
        let err = Tree::decode(&bad.encode()).unwrap_err();
        assert_eq!(err.to_string(), "entry `a` has content that does not fit its kind");
        assert!(matches!(Tree::decode(&[0xff, 0xff, 0xff]), Err(TreeError::Decode(_))));
    }

    #[test]
    fn timestamps_round_trip() {
        for (s, n) in [(0i64, 0u32), (1_700_000_000, 123), (-5, 0), (-5, 500)] {
            let t = Timestamp { secs: s, nanos: n };
            assert_eq!(Timestamp::from_system(t.to_system()), t);
        }
    }
}

//! The types of the core's interface, free of any OS mount API.

use nimbus_vault::{BlobId, EntryKind, Timestamp};
use serde::{Deserialize, Serialize};

pub type Ino = u64;
/// The root folder of the drive.
pub const ROOT: Ino = 1;
/// The name of the read-only snapshot folder in the root.
pub const SNAPSHOTS: &[u8] = b".snapshots";

/// File attributes, as `stat` shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attr {
    pub ino: Ino,
    pub kind: EntryKind,
    pub size: u64,
    /// 512-byte blocks.
    pub blocks: u64,
    /// Permission, set-id and sticky bits (`st_mode & 0o7777`).
    pub perm: u32,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    pub rdev: u64,
    pub atime: Timestamp,
    pub mtime: Timestamp,
    pub ctime: Timestamp,
}

/// Who is asking: owner of new files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ctx {
    pub uid: u32,
    pub gid: u32,
}

impl Ctx {
    pub const ROOT: Ctx = Ctx { uid: 0, gid: 0 };
}

/// A time to set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetTime {
    Now,
    At(Timestamp),
}

/// What `setattr` changes; `None` leaves it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SetAttr {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime: Option<SetTime>,
    pub mtime: Option<SetTime>,
    pub ctime: Option<Timestamp>,
}

/// One entry of a folder listing. `cookie` resumes the listing after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    pub cookie: u64,
    pub ino: Ino,
    pub kind: EntryKind,
    pub name: Vec<u8>,
}

/// The `.` and `..` entries that start every listing (cookies 1 and 2),
/// those of them that come after `cookie`.
pub fn dot_entries(ino: Ino, parent: Ino, cookie: u64) -> Vec<DirEntry> {
    [(1, ino, &b"."[..]), (2, parent, &b".."[..])]
        .into_iter()
        .filter(|(c, _, _)| *c > cookie)
        .map(|(c, i, n)| DirEntry {
            cookie: c,
            ino: i,
            kind: EntryKind::Dir,
            name: n.to_vec(),
        })
        .collect()
}

/// How `rename` treats an existing target.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RenameFlags {
    /// Fail with "exists" instead of replacing.
    pub noreplace: bool,
    /// Swap the two names atomically.
    pub exchange: bool,
}

/// What `fallocate` does with a range of a file (Linux's modes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallocate {
    /// Reserve the range (mode 0); the drive reserves nothing, but the
    /// file grows to cover it unless `keep_size`.
    Allocate { keep_size: bool },
    /// `FALLOC_FL_PUNCH_HOLE` (which Linux allows only with
    /// `FALLOC_FL_KEEP_SIZE`): the range reads as zeros, the size stays.
    PunchHole,
    /// `FALLOC_FL_ZERO_RANGE`: the range reads as zeros, and the file grows
    /// to cover it unless `keep_size`.
    ZeroRange { keep_size: bool },
}

/// How `setxattr` treats an existing attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XattrMode {
    Any,
    /// Fail if it exists.
    Create,
    /// Fail unless it exists.
    Replace,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatFs {
    pub blocks: u64,
    pub bfree: u64,
    pub bavail: u64,
    pub files: u64,
    pub ffree: u64,
    pub bsize: u32,
    pub namelen: u32,
}

/// What is not yet in the vault.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// Files whose content changed since the last commit.
    pub files: u64,
    /// Bytes staged on this device, waiting for upload.
    pub staged_bytes: u64,
    /// Whether anything (content or metadata) awaits a commit.
    pub dirty: bool,
    /// Whether a commit is running now.
    pub syncing: bool,
    /// The last commit's error, if it failed.
    #[serde(default)]
    pub last_error: Option<String>,
    /// The process serving the drive (so `nimbus unmount` can wait for it).
    #[serde(default)]
    pub pid: u32,
    /// The last commit failed because the store could not be reached.
    #[serde(default)]
    pub offline: bool,
    /// Unix time of the last commit of this mount that reached the vault.
    #[serde(default)]
    pub last_sync: Option<i64>,
    /// Files left out of the last commit because their changes on this
    /// device are damaged (a staging block fails authentication), by their
    /// path in the drive. They stay as they are here, and the vault keeps
    /// their last good version, until they are written again or deleted.
    #[serde(default)]
    pub set_aside: Vec<String>,
    /// Conflict copies in the drive (docs/SYNC.md §3.6), as last counted
    /// (after each apply of other devices' changes and each commit).
    #[serde(default)]
    pub conflicts: u64,
    /// Other devices' names whose latest changes this drive has seen and
    /// not taken in yet.
    #[serde(default)]
    pub waiting_for: Vec<String>,
}

/// A file's stored content: blob ids with their plaintext lengths.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContentList(pub Vec<(BlobId, u32)>);

impl ContentList {
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).unwrap_or_default()
    }

    pub fn decode(b: &[u8]) -> Option<ContentList> {
        postcard::from_bytes(b).ok()
    }

    pub fn len_bytes(&self) -> u64 {
        self.0.iter().map(|(_, l)| *l as u64).sum()
    }
}

/// Content with cumulative offsets, for finding the blob at an offset.
#[derive(Debug, Clone, Default)]
pub struct Content {
    pub list: ContentList,
    /// `ends[i]` is the offset just past blob `i`.
    pub ends: Vec<u64>,
}

impl Content {
    pub fn new(list: ContentList) -> Content {
        let mut ends = Vec::with_capacity(list.0.len());
        let mut at = 0u64;
        for (_, l) in &list.0 {
            at += *l as u64;
            ends.push(at);
        }
        Content { list, ends }
    }

    pub fn total(&self) -> u64 {
        self.ends.last().copied().unwrap_or(0)
    }

    /// The index of the blob holding byte `off`, if any.
    pub fn find(&self, off: u64) -> Option<usize> {
        let i = self.ends.partition_point(|&e| e <= off);
        (i < self.ends.len()).then_some(i)
    }

    pub fn start(&self, i: usize) -> u64 {
        if i == 0 {
            0
        } else {
            self.ends[i - 1]
        }
    }
}

//! What the sync tells people (docs/SYNC.md §5.1): after each apply, a
//! [`MergeReport`] ("Updated from laptop: 3 files", and each conflict copy
//! it made), and the drive's conflict copies, found by their names
//! (§3.6), for `nimbus conflicts` and the status's count.

use std::collections::VecDeque;
use std::time::SystemTime;

use nimbus_merge::names::parse_conflict_name;
use nimbus_vault::{DeviceId, Timestamp};

use super::apply::{Applied, Target, What};
use crate::error::Result;
use crate::local::Local;
use crate::meta::{dentries, inodes, Conn};

/// The most paths a report names.
pub const REPORT_PATHS: usize = 5;

/// The most reports kept for the caller to take: a drive nobody asks
/// (`nimbus mount`) keeps only the newest.
const KEPT: usize = 64;

/// Files or folders an apply changed, by kind; each entry counted once,
/// by the strongest of added, deleted, changed (content or metadata) and
/// moved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub added: u64,
    pub changed: u64,
    pub moved: u64,
    pub deleted: u64,
}

impl Counts {
    pub fn total(&self) -> u64 {
        self.added + self.changed + self.moved + self.deleted
    }
}

/// Another device's changes arriving in the drive: one apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeReport {
    /// The device the changes are told as coming from: for a merge, the
    /// newest head of another device among those merged (close enough for
    /// "Updated from laptop"; a merge of several devices names one).
    pub device: DeviceId,
    /// Its name, or the first 7 hex digits of its id when it has none.
    pub device_label: String,
    pub files: Counts,
    pub folders: Counts,
    /// A few of the paths changed (at most [`REPORT_PATHS`]).
    pub paths: Vec<String>,
    /// The conflict copies the apply made.
    pub copies: Vec<ConflictCopy>,
}

impl MergeReport {
    /// Nothing to tell: no entry changed and no copy made.
    pub fn is_empty(&self) -> bool {
        self.files.total() == 0 && self.folders.total() == 0 && self.copies.is_empty()
    }
}

/// A conflict copy in the drive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConflictCopy {
    /// Its path in the drive (`/docs/report (conflict laptop 2026-12-07
    /// 14.05 UTC).docx`).
    pub copy: String,
    /// The path of the file it is a version of (`/docs/report.docx`);
    /// that file may have been renamed or deleted since.
    pub original: String,
    /// The device label in its name.
    pub device: String,
    /// The time in its name (to the minute, UTC).
    pub time: SystemTime,
}

/// The report of `applied`, which took in `target`'s changes from
/// `device`, with its paths read from the rows it left.
pub(super) fn of_apply(local: &Local, applied: &Applied, target: &Target, device: DeviceId) -> Result<MergeReport> {
    let mut files = Counts::default();
    let mut folders = Counts::default();
    let arrived: std::collections::BTreeSet<_> = applied.report.arrived_copies.iter().collect();
    for (id, t) in &applied.report.touched {
        if arrived.contains(id) {
            // Told as a conflict, not as an update.
            continue;
        }
        let c = if t.dir { &mut folders } else { &mut files };
        match t.what {
            What::Added => c.added += 1,
            What::Changed => c.changed += 1,
            What::Moved => c.moved += 1,
            What::Deleted => c.deleted += 1,
        }
    }
    local.db.read(|c| {
        let mut paths = Vec::new();
        for (id, t) in &applied.report.touched {
            if paths.len() == REPORT_PATHS {
                break;
            }
            if arrived.contains(id) {
                continue;
            }
            let path = match &t.path {
                Some(p) => Some(p.clone()),
                None => live_path(c, id)?,
            };
            paths.extend(path);
        }
        let mut copies = Vec::with_capacity(applied.report.copies.len());
        for (ino, original) in &applied.report.copies {
            let Some(copy) = dentries::path_of(c, *ino)? else {
                continue;
            };
            copies.push(ConflictCopy {
                copy,
                original: live_path(c, original)?.unwrap_or_default(),
                device: target.device.clone(),
                time: minute(target.time),
            });
        }
        for id in &applied.report.arrived_copies {
            copies.extend(arrived_copy(c, id)?);
        }
        Ok(MergeReport {
            device,
            device_label: target.device.clone(),
            files,
            folders,
            paths,
            copies,
        })
    })
}

/// The path of the entry holding `id` with a name, if one does.
fn live_path(c: &Conn, id: &nimbus_vault::FileId) -> Result<Option<String>> {
    for row in inodes::by_file_id(c, id)? {
        if row.nlink > 0 {
            if let Some(p) = dentries::path_of(c, row.ino)? {
                return Ok(Some(p));
            }
        }
    }
    Ok(None)
}

/// A copy another device's merge made, as its name and place tell it.
fn arrived_copy(c: &Conn, id: &nimbus_vault::FileId) -> Result<Option<ConflictCopy>> {
    let Some(copy) = live_path(c, id)? else { return Ok(None) };
    let (folder, name) = copy.rsplit_once('/').unwrap_or(("", copy.as_str()));
    let Some(tag) = parse_conflict_name(name.as_bytes()) else {
        return Ok(None);
    };
    let original = format!("{folder}/{}", String::from_utf8_lossy(&tag.original));
    Ok(Some(ConflictCopy {
        copy,
        original,
        device: tag.device,
        time: tag.time.to_system(),
    }))
}

/// A time cut to the minute, as a conflict name holds it.
fn minute(t: Timestamp) -> SystemTime {
    Timestamp {
        secs: t.secs - t.secs.rem_euclid(60),
        nanos: 0,
    }
    .to_system()
}

/// Every conflict copy in the drive, by path: the entries whose name is a
/// conflict name (§3.6). A file a person named so by hand is listed too;
/// the names are the only record, so a copy renamed is no longer one.
pub(crate) fn conflicts(c: &Conn) -> Result<Vec<ConflictCopy>> {
    let mut out = Vec::new();
    for (parent, name) in dentries::named_with(c, b" (conflict ")? {
        let Some(tag) = parse_conflict_name(&name) else {
            continue;
        };
        let Some(folder) = dentries::path_of(c, parent)? else {
            continue;
        };
        let join = |n: &[u8]| format!("{}/{}", folder.trim_end_matches('/'), String::from_utf8_lossy(n));
        out.push(ConflictCopy {
            copy: join(&name),
            original: join(&tag.original),
            device: tag.device,
            time: tag.time.to_system(),
        });
    }
    out.sort_by(|a, b| a.copy.cmp(&b.copy));
    Ok(out)
}

/// The reports not taken yet, oldest first, at most [`KEPT`].
#[derive(Default)]
pub(super) struct Reports(VecDeque<MergeReport>);

impl Reports {
    pub fn push(&mut self, r: MergeReport) {
        if self.0.len() == KEPT {
            self.0.pop_front();
        }
        self.0.push_back(r);
    }

    pub fn take(&mut self) -> Vec<MergeReport> {
        self.0.drain(..).collect()
    }
}

//! What the app shows, worked out from what the service says: the tray's
//! status line and icon, the quit warning, activity items and which
//! notifications to send. Pure functions over the API types, so they are
//! tested here without a window, a tray or a service.

use nimbus_api::{human_bytes, ChangeCounts, DriveState, DriveStatus, Event, Level, ServiceStatus};
use serde::{Deserialize, Serialize};

/// The icon the tray shows; one file per variant in `icons/tray/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, specta::Type)]
#[serde(rename_all = "snake_case")]
pub enum TrayIcon {
    Idle,
    Syncing,
    Paused,
    Offline,
    Error,
    Locked,
}

impl TrayIcon {
    pub fn file_stem(self) -> &'static str {
        match self {
            TrayIcon::Idle => "idle",
            TrayIcon::Syncing => "syncing",
            TrayIcon::Paused => "paused",
            TrayIcon::Offline => "offline",
            TrayIcon::Error => "error",
            TrayIcon::Locked => "locked",
        }
    }
}

/// The whole app's state in one line and one icon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, specta::Type)]
pub struct Summary {
    /// "Up to date", "Syncing 12 files · 48 MB left", "Paused", ...
    pub line: String,
    pub icon: TrayIcon,
    /// Every drive paused (the tray offers Resume), else Pause.
    pub all_paused: bool,
    /// Every mounted drive locked (the tray offers Unlock), else Lock.
    pub all_locked: bool,
}

/// Sums up the service's drives. The worst state wins: an error, then
/// offline, syncing, paused, locked, and up to date only when every
/// mounted drive is.
pub fn summary(status: Option<&ServiceStatus>, connection_error: Option<&str>) -> Summary {
    let Some(s) = status else {
        let line = match connection_error {
            Some(e) => format!("Error: {}", first_sentence(e)),
            None => "Connecting to the Nimbus service…".to_string(),
        };
        return Summary {
            line,
            icon: TrayIcon::Error,
            all_paused: false,
            all_locked: false,
        };
    };
    let mounted: Vec<&DriveStatus> = s.drives.iter().filter(|d| d.mounted).collect();
    let all_paused = !mounted.is_empty() && mounted.iter().all(|d| d.paused);
    let all_locked = !mounted.is_empty() && mounted.iter().all(|d| d.locked);
    let pick = |st: DriveState| mounted.iter().filter(move |d| d.state == st);
    let (line, icon) = if s.drives.is_empty() {
        ("No drives yet — add one in Nimbus".to_string(), TrayIcon::Idle)
    } else if let Some(d) = pick(DriveState::Error).next() {
        let why = d.last_error.as_deref().unwrap_or(&d.message);
        (format!("Error: {}", first_sentence(why)), TrayIcon::Error)
    } else if pick(DriveState::Offline).next().is_some() {
        (
            "Offline — changes are kept on this device".to_string(),
            TrayIcon::Offline,
        )
    } else if pick(DriveState::Syncing).next().is_some()
        || pick(DriveState::Starting).next().is_some()
        // Merging another device's changes: not "Up to date" yet.
        || pick(DriveState::Receiving).next().is_some()
    {
        let files: u64 = mounted.iter().map(|d| d.pending_files).sum();
        let bytes: u64 = mounted.iter().map(|d| d.pending_bytes).sum();
        (syncing_line(files, bytes), TrayIcon::Syncing)
    } else if mounted.is_empty() {
        ("No drive is mounted".to_string(), TrayIcon::Idle)
    } else if all_locked {
        ("Locked".to_string(), TrayIcon::Locked)
    } else if mounted.iter().any(|d| d.paused) {
        let bytes: u64 = mounted.iter().map(|d| d.pending_bytes).sum();
        let line = if bytes > 0 {
            format!("Paused · {} kept on this device", human_bytes(bytes))
        } else {
            "Paused".to_string()
        };
        (line, TrayIcon::Paused)
    } else if mounted.iter().any(|d| d.locked) {
        ("Up to date · some drives locked".to_string(), TrayIcon::Locked)
    } else {
        ("Up to date".to_string(), TrayIcon::Idle)
    };
    Summary {
        line,
        icon,
        all_paused,
        all_locked,
    }
}

fn syncing_line(files: u64, bytes: u64) -> String {
    match (files, bytes) {
        (0, 0) => "Syncing…".to_string(),
        (0, b) => format!("Syncing · {} left", human_bytes(b)),
        (1, 0) => "Syncing 1 file".to_string(),
        (f, 0) => format!("Syncing {f} files"),
        (1, b) => format!("Syncing 1 file · {} left", human_bytes(b)),
        (f, b) => format!("Syncing {f} files · {} left", human_bytes(b)),
    }
}

/// The first sentence of a message, for a one-line menu entry.
fn first_sentence(s: &str) -> String {
    let s = s.trim();
    let cut = s.find(['\n', ';']).unwrap_or(s.len());
    let mut out: String = s[..cut].trim_end_matches('.').to_string();
    if out.chars().count() > 80 {
        out = out.chars().take(79).collect::<String>() + "…";
    }
    out
}

/// What quitting now would leave behind: `None` when every change is in
/// the cloud, else the warning to show before quitting.
pub fn quit_warning(status: Option<&ServiceStatus>, stops_service: bool) -> Option<String> {
    let s = status?;
    if s.safe_to_shut_down {
        return None;
    }
    let bytes: u64 = s.drives.iter().map(|d| d.pending_bytes).sum();
    let files: u64 = s.drives.iter().map(|d| d.pending_files).sum();
    let what = match (files, bytes) {
        (0, 0) => "Some changes are".to_string(),
        (1, b) => format!("1 file ({}) is", human_bytes(b)),
        (f, b) => format!("{f} files ({}) are", human_bytes(b)),
    };
    Some(if stops_service {
        format!(
            "{what} not in the cloud yet. If you quit now they stay safe on this device and upload the next time Nimbus runs."
        )
    } else {
        format!(
            "{what} not in the cloud yet. The Nimbus service keeps running and uploads them; only this window and the tray icon close."
        )
    })
}

/// One line of the Activity page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, specta::Type)]
pub struct ActivityItem {
    /// Unix time, seconds.
    pub time: i64,
    pub drive: Option<String>,
    pub kind: ActivityKind,
    pub text: String,
    /// What to do about it, for warnings and errors.
    pub hint: Option<String>,
    /// A file or folder of `drive` the item is about (a conflict copy, the
    /// one file an update changed), as a path inside the drive: the page
    /// offers to open it and to show it in its folder.
    #[serde(default)]
    pub path: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, specta::Type)]
#[serde(rename_all = "snake_case")]
pub enum ActivityKind {
    /// Something finished: an upload, a lock, a mount.
    Change,
    Conflict,
    Warning,
    Error,
}

/// A desktop notification to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub summary: String,
    pub body: String,
}

/// Uploads at least this large get a notification when they finish.
pub const LARGE_UPLOAD: u64 = 100_000_000;

/// Minutes a store may stay unreachable before a notification says so.
pub const OFFLINE_NOTIFY_SECS: i64 = 10 * 60;

/// What the app remembers of each drive between events, to see changes.
#[derive(Debug, Clone, Default)]
pub struct Watch {
    drives: std::collections::BTreeMap<String, Seen>,
}

#[derive(Debug, Clone, Default)]
struct Seen {
    state: Option<DriveState>,
    peak_files: u64,
    peak_bytes: u64,
    offline_since: Option<i64>,
    offline_told: bool,
}

impl Watch {
    /// Takes one event from the service at `now`; gives what to add to the
    /// activity list and which notifications to send.
    pub fn event(&mut self, ev: &Event, now: i64) -> (Vec<ActivityItem>, Vec<Note>) {
        let mut items = Vec::new();
        let mut notes = Vec::new();
        match ev {
            Event::Status(s) => {
                for d in &s.drives {
                    let seen = self.drives.entry(d.name.clone()).or_default();
                    seen.state = Some(d.state);
                    seen.peak_files = d.pending_files;
                    seen.peak_bytes = d.pending_bytes;
                }
            }
            Event::Pending { drive, files, bytes } => {
                let seen = self.drives.entry(drive.clone()).or_default();
                if *files == 0 && *bytes == 0 && (seen.peak_files > 0 || seen.peak_bytes > 0) {
                    let text = match seen.peak_files {
                        0 => format!("Uploaded {}", human_bytes(seen.peak_bytes)),
                        1 => format!("Uploaded 1 file ({})", human_bytes(seen.peak_bytes)),
                        f => format!("Uploaded {f} files ({})", human_bytes(seen.peak_bytes)),
                    };
                    if seen.peak_bytes >= LARGE_UPLOAD {
                        notes.push(Note {
                            summary: format!("Upload finished on {drive}"),
                            body: format!("{text}; everything is in the cloud."),
                        });
                    }
                    items.push(item(now, Some(drive), ActivityKind::Change, text, None));
                    seen.peak_files = 0;
                    seen.peak_bytes = 0;
                } else {
                    seen.peak_files = seen.peak_files.max(*files);
                    seen.peak_bytes = seen.peak_bytes.max(*bytes);
                }
            }
            Event::DriveState { drive, state, message } => {
                let seen = self.drives.entry(drive.clone()).or_default();
                let before = seen.state.replace(*state);
                if before == Some(*state) {
                    return (items, notes);
                }
                if *state != DriveState::Offline {
                    if seen.offline_told {
                        items.push(item(
                            now,
                            Some(drive),
                            ActivityKind::Change,
                            "The store can be reached again".into(),
                            None,
                        ));
                    }
                    seen.offline_since = None;
                    seen.offline_told = false;
                }
                match state {
                    DriveState::Locked if before.is_some() => {
                        items.push(item(
                            now,
                            Some(drive),
                            ActivityKind::Change,
                            "Locked: the vault key left memory".into(),
                            None,
                        ));
                        notes.push(Note {
                            summary: format!("{drive} is locked"),
                            body: "Its files stay encrypted until you unlock it from the Nimbus menu.".into(),
                        });
                    }
                    DriveState::Error => {
                        items.push(item(
                            now,
                            Some(drive),
                            ActivityKind::Error,
                            message.clone(),
                            Some("Open Nimbus to see what to do; your changes stay on this device meanwhile".into()),
                        ));
                        notes.push(Note {
                            summary: format!("Nimbus cannot sync {drive}"),
                            body: message.clone(),
                        });
                    }
                    DriveState::Offline => {
                        seen.offline_since.get_or_insert(now);
                        items.push(item(
                            now,
                            Some(drive),
                            ActivityKind::Warning,
                            "The store cannot be reached".into(),
                            Some(
                                "Changes are kept on this device and upload when it is back; check the network".into(),
                            ),
                        ));
                    }
                    DriveState::UpToDate | DriveState::Paused if before == Some(DriveState::Locked) => {
                        items.push(item(now, Some(drive), ActivityKind::Change, "Unlocked".into(), None));
                    }
                    _ => {}
                }
            }
            Event::Updated {
                drive,
                device,
                files,
                folders,
                paths,
                ..
            } => {
                if let Some(what) = updated_what(files, folders) {
                    let mut it = item(
                        now,
                        Some(drive),
                        ActivityKind::Change,
                        format!("Updated from {device}: {what}"),
                        None,
                    );
                    // One thing changed and still there: it can be opened.
                    let one = files.total() + folders.total() == 1 && files.deleted + folders.deleted == 0;
                    if one {
                        it.path = paths.first().cloned();
                    }
                    items.push(it);
                }
            }
            Event::Conflict {
                drive,
                copy,
                original,
                device,
                ..
            } => {
                let name = original.rsplit('/').next().unwrap_or(original);
                let copy_name = copy.rsplit('/').next().unwrap_or(copy);
                let mut it = item(
                    now,
                    Some(drive),
                    ActivityKind::Conflict,
                    format!("{original} was changed here and on {device}: both versions are kept, {device}'s as {copy}"),
                    Some(format!(
                        "Open both, keep what you want in {name}, then delete \"{copy_name}\" (the drive's snapshots keep every version)"
                    )),
                );
                it.path = Some(copy.clone());
                items.push(it);
                notes.push(Note {
                    summary: format!("Conflict in {drive}: {name}"),
                    body: format!("{name} was changed here and on {device}. Both versions are kept; {device}'s is \"{copy_name}\" beside it."),
                });
            }
            Event::Notice { drive, level, text } => {
                let kind = match level {
                    Level::Error => ActivityKind::Error,
                    Level::Warning => ActivityKind::Warning,
                    _ => ActivityKind::Change,
                };
                if *level == Level::Error {
                    notes.push(Note {
                        summary: match drive {
                            Some(d) => format!("Nimbus: a problem with {d}"),
                            None => "Nimbus: a problem".into(),
                        },
                        body: text.clone(),
                    });
                }
                items.push(item(now, drive.as_deref(), kind, text.clone(), None));
            }
            _ => {}
        }
        (items, notes)
    }

    /// Checked about once a second: a store unreachable for long gets one
    /// notification.
    pub fn tick(&mut self, now: i64) -> Vec<Note> {
        let mut notes = Vec::new();
        for (name, seen) in &mut self.drives {
            if let Some(since) = seen.offline_since {
                if !seen.offline_told && now - since >= OFFLINE_NOTIFY_SECS {
                    seen.offline_told = true;
                    notes.push(Note {
                        summary: format!("{name}: the store is unreachable"),
                        body: format!(
                            "For {} minutes now. Changes are kept on this device and upload when it is back.",
                            (now - since) / 60
                        ),
                    });
                }
            }
        }
        notes
    }
}

/// `path`, a path inside a drive mounted at `mount`, on this computer; `None`
/// when it would leave the drive (`..`) or names the drive itself.
pub fn inside(mount: &std::path::Path, path: &str) -> Option<std::path::PathBuf> {
    use std::path::Component;
    let mut out = mount.to_path_buf();
    let mut any = false;
    for c in std::path::Path::new(path).components() {
        match c {
            Component::Normal(n) => {
                out.push(n);
                any = true;
            }
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    any.then_some(out)
}

/// "3 files", "1 folder and 2 files": what an update changed, or `None`
/// when it changed nothing.
fn updated_what(files: &ChangeCounts, folders: &ChangeCounts) -> Option<String> {
    let count = |n: u64, one: &str, many: &str| match n {
        0 => None,
        1 => Some(format!("1 {one}")),
        n => Some(format!("{n} {many}")),
    };
    match (
        count(folders.total(), "folder", "folders"),
        count(files.total(), "file", "files"),
    ) {
        (Some(d), Some(f)) => Some(format!("{d} and {f}")),
        (d, f) => d.or(f),
    }
}

fn item(now: i64, drive: Option<&str>, kind: ActivityKind, text: String, hint: Option<String>) -> ActivityItem {
    ActivityItem {
        time: now,
        drive: drive.map(str::to_string),
        kind,
        text,
        hint,
        path: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drive(name: &str, state: DriveState) -> DriveStatus {
        DriveStatus {
            name: name.into(),
            store: "s3://b/x".into(),
            mount: format!("/home/u/{name}").into(),
            state,
            mounted: state != DriveState::Unmounted,
            locked: state == DriveState::Locked,
            paused: state == DriveState::Paused,
            ..Default::default()
        }
    }

    /// Drive `a` entered `state`.
    fn state_of_a(state: DriveState) -> Event {
        Event::DriveState {
            drive: "a".into(),
            state,
            message: format!("{state:?}"),
        }
    }

    fn status(drives: Vec<DriveStatus>) -> ServiceStatus {
        let safe = drives.iter().all(|d| d.pending_bytes == 0 && d.pending_files == 0);
        ServiceStatus {
            version: "0".into(),
            pid: 1,
            uptime_secs: 1,
            drives,
            safe_to_shut_down: safe,
            warnings: vec![],
            log_dir: None,
            auto_lock_minutes: 0,
        }
    }

    #[test]
    fn the_line_names_the_worst_state() {
        let up = status(vec![drive("a", DriveState::UpToDate)]);
        assert_eq!(summary(Some(&up), None).line, "Up to date");
        assert_eq!(summary(Some(&up), None).icon, TrayIcon::Idle);

        let mut syncing = drive("b", DriveState::Syncing);
        syncing.pending_files = 12;
        syncing.pending_bytes = 48_000_000;
        let s = status(vec![drive("a", DriveState::UpToDate), syncing.clone()]);
        assert_eq!(summary(Some(&s), None).line, "Syncing 12 files · 48 MB left");
        assert_eq!(summary(Some(&s), None).icon, TrayIcon::Syncing);

        let s = status(vec![syncing.clone(), drive("c", DriveState::Offline)]);
        assert_eq!(
            summary(Some(&s), None).line,
            "Offline — changes are kept on this device"
        );

        let mut bad = drive("d", DriveState::Error);
        bad.last_error = Some("the store refused the key; check it in Settings. More words".into());
        let s = status(vec![syncing, bad]);
        let sum = summary(Some(&s), None);
        assert_eq!(sum.line, "Error: the store refused the key");
        assert_eq!(sum.icon, TrayIcon::Error);
    }

    #[test]
    fn paused_and_locked_are_said_and_offered_back() {
        let s = status(vec![drive("a", DriveState::Paused), drive("b", DriveState::Paused)]);
        let sum = summary(Some(&s), None);
        assert_eq!(
            (sum.line.as_str(), sum.icon, sum.all_paused),
            ("Paused", TrayIcon::Paused, true)
        );
        let s = status(vec![drive("a", DriveState::Locked)]);
        let sum = summary(Some(&s), None);
        assert_eq!(
            (sum.line.as_str(), sum.icon, sum.all_locked),
            ("Locked", TrayIcon::Locked, true)
        );
        let s = status(vec![drive("a", DriveState::Locked), drive("b", DriveState::UpToDate)]);
        assert!(!summary(Some(&s), None).all_locked);
        let mut p = drive("a", DriveState::Paused);
        p.pending_bytes = 2_500_000;
        assert_eq!(
            summary(Some(&status(vec![p])), None).line,
            "Paused · 2.5 MB kept on this device"
        );
    }

    #[test]
    fn no_service_and_no_drives_are_said_too() {
        let sum = summary(None, Some("the Nimbus service is not running (x); start it"));
        assert_eq!(sum.line, "Error: the Nimbus service is not running (x)");
        assert_eq!(summary(None, None).line, "Connecting to the Nimbus service…");
        assert_eq!(
            summary(Some(&status(vec![])), None).line,
            "No drives yet — add one in Nimbus"
        );
        let s = status(vec![drive("a", DriveState::Unmounted)]);
        assert_eq!(summary(Some(&s), None).line, "No drive is mounted");
    }

    #[test]
    fn quitting_warns_with_the_amount() {
        assert_eq!(
            quit_warning(Some(&status(vec![drive("a", DriveState::UpToDate)])), true),
            None
        );
        let mut d = drive("a", DriveState::Syncing);
        d.pending_files = 3;
        d.pending_bytes = 7_200_000;
        let w = quit_warning(Some(&status(vec![d])), true).unwrap_or_default();
        assert!(w.starts_with("3 files (7.2 MB) are not in the cloud yet"), "{w}");
        assert!(w.contains("stay safe on this device"), "{w}");
    }

    #[test]
    fn a_finished_upload_and_a_lock_are_told() {
        let mut w = Watch::default();
        w.event(&Event::Status(status(vec![drive("a", DriveState::UpToDate)])), 0);
        let pend = |files, bytes| Event::Pending {
            drive: "a".into(),
            files,
            bytes,
        };
        assert_eq!(w.event(&pend(2, 150_000_000), 1).0, vec![]);
        let (items, notes) = w.event(&pend(0, 0), 2);
        assert_eq!(items[0].text, "Uploaded 2 files (150 MB)");
        assert_eq!(notes.len(), 1, "a large upload is notified");
        w.event(&pend(1, 10), 3);
        let (_, notes) = w.event(&pend(0, 0), 4);
        assert!(notes.is_empty(), "a small upload is not");

        let lock = state_of_a(DriveState::Locked);
        let (items, notes) = w.event(&lock, 5);
        assert_eq!(items[0].kind, ActivityKind::Change);
        assert_eq!(notes[0].summary, "a is locked");
        assert!(
            w.event(&lock, 6).1.is_empty(),
            "the same state twice is one notification"
        );
    }

    #[test]
    fn a_long_outage_is_notified_once() {
        let mut w = Watch::default();
        let off = state_of_a(DriveState::Offline);
        let (items, notes) = w.event(&off, 100);
        assert_eq!(items[0].kind, ActivityKind::Warning);
        assert!(notes.is_empty(), "a short outage is no notification");
        assert!(w.tick(100 + OFFLINE_NOTIFY_SECS - 1).is_empty());
        assert_eq!(w.tick(100 + OFFLINE_NOTIFY_SECS).len(), 1);
        assert!(w.tick(100 + OFFLINE_NOTIFY_SECS + 5).is_empty());
        let back = state_of_a(DriveState::UpToDate);
        assert_eq!(w.event(&back, 2000).0[0].text, "The store can be reached again");
    }

    #[test]
    fn errors_and_conflicts_notify() {
        let mut w = Watch::default();
        let e = Event::Notice {
            drive: Some("a".into()),
            level: Level::Error,
            text: "the disk is full".into(),
        };
        let (items, notes) = w.event(&e, 1);
        assert_eq!((items[0].kind, notes.len()), (ActivityKind::Error, 1));
        // A warning that mentions a conflict is a warning: conflicts come
        // as their own events.
        let c = Event::Notice {
            drive: Some("a".into()),
            level: Level::Warning,
            text: "a conflict of words".into(),
        };
        let (items, notes) = w.event(&c, 1);
        assert_eq!((items[0].kind, notes.len()), (ActivityKind::Warning, 0));
        let c = Event::Conflict {
            drive: "a".into(),
            copy: "/docs/report (conflict laptop 2026-12-07 14.05 UTC).txt".into(),
            original: "/docs/report.txt".into(),
            device: "laptop".into(),
            time: Some(1_796_652_300),
        };
        let (items, notes) = w.event(&c, 1);
        assert_eq!(items[0].kind, ActivityKind::Conflict);
        assert_eq!(
            items[0].path.as_deref(),
            Some("/docs/report (conflict laptop 2026-12-07 14.05 UTC).txt"),
            "the copy opens from Activity"
        );
        assert!(
            items[0]
                .text
                .starts_with("/docs/report.txt was changed here and on laptop"),
            "{}",
            items[0].text
        );
        assert_eq!(notes[0].summary, "Conflict in a: report.txt");
        assert!(
            notes[0]
                .body
                .contains("\"report (conflict laptop 2026-12-07 14.05 UTC).txt\""),
            "{}",
            notes[0].body
        );
    }

    #[test]
    fn paths_stay_inside_the_drive() {
        let m = std::path::Path::new("/home/u/work");
        assert_eq!(inside(m, "/docs/a b.txt"), Some(m.join("docs/a b.txt")));
        assert_eq!(inside(m, "docs/./a"), Some(m.join("docs/a")));
        assert_eq!(inside(m, "/docs/../../etc/passwd"), None);
        assert_eq!(inside(m, "/"), None);
        assert_eq!(inside(m, ""), None);
    }

    #[test]
    fn updates_from_another_device_are_told_by_count() {
        let mut w = Watch::default();
        let n = |added, changed, moved, deleted| ChangeCounts {
            added,
            changed,
            moved,
            deleted,
        };
        let up = |files, folders| Event::Updated {
            drive: "a".into(),
            device: "laptop".into(),
            device_id: "ab".repeat(16),
            files,
            folders,
            paths: vec!["/x".into()],
        };
        let text = |w: &mut Watch, e| w.event(&e, 1).0.first().map(|i| i.text.clone());
        assert_eq!(
            text(&mut w, up(n(2, 1, 0, 0), n(0, 0, 0, 0))).as_deref(),
            Some("Updated from laptop: 3 files")
        );
        assert_eq!(
            text(&mut w, up(n(0, 1, 1, 0), n(1, 0, 0, 0))).as_deref(),
            Some("Updated from laptop: 1 folder and 2 files")
        );
        assert_eq!(
            text(&mut w, up(n(0, 0, 0, 1), n(0, 0, 0, 0))).as_deref(),
            Some("Updated from laptop: 1 file")
        );
        assert_eq!(
            text(&mut w, up(n(0, 0, 0, 0), n(0, 0, 0, 0))),
            None,
            "nothing changed, nothing told"
        );
        let path = |w: &mut Watch, e| w.event(&e, 1).0.first().and_then(|i| i.path.clone());
        assert_eq!(
            path(&mut w, up(n(1, 0, 0, 0), n(0, 0, 0, 0))).as_deref(),
            Some("/x"),
            "one new file opens"
        );
        assert_eq!(
            path(&mut w, up(n(0, 0, 0, 1), n(0, 0, 0, 0))),
            None,
            "a deleted file does not"
        );
        assert_eq!(
            path(&mut w, up(n(2, 0, 0, 0), n(0, 0, 0, 0))),
            None,
            "several: no one path"
        );
    }
}

//! Requests, replies and events.
//!
//! Compatibility: replies, events and states may gain fields and variants
//! within a version; clients read an unknown variant as `Unknown` and
//! ignore unknown fields. Requests are strict (an unknown field is refused
//! as malformed), so a field or operation is added to requests only with a
//! new [`crate::VERSION`]. Version 2 added `test_store`, `create_drive` and
//! `browse`; version 3 `devices`, `rename_device`, `conflicts` and
//! `resolve_conflict` (docs/SYNC.md §5.2). The service still takes version 1
//! and 2 requests, and [`Request::since`] says which version a client must
//! send for each.
//!
//! With the `specta` feature the types the desktop app shows derive
//! `specta::Type`, so its TypeScript bindings are generated from them.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use zeroize::Zeroizing;

/// A password or key in a request. Wiped from memory when dropped, and
/// never shown by `Debug`.
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(#[cfg_attr(feature = "specta", specta(type = String))] Zeroizing<String>);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(Zeroizing::new(s.into()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<secret>")
    }
}

/// What a client asks.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// The service and every drive (or one drive).
    Status {
        #[serde(default)]
        drive: Option<String>,
    },
    /// The configured drives.
    ListDrives,
    /// Adds a drive for an existing vault and mounts it.
    AddDrive(AddDrive),
    /// Unmounts a drive (committing its changes) and forgets it; with
    /// `forget_secrets`, its saved password and store credentials too.
    RemoveDrive {
        drive: String,
        #[serde(default)]
        forget_secrets: bool,
    },
    /// Changes a drive's settings.
    ChangeDrive {
        drive: String,
        change: DriveChange,
    },
    Mount {
        drive: String,
    },
    /// Commits what is pending, then unmounts.
    Unmount {
        drive: String,
    },
    /// Commits what is pending and drops the vault key from memory; the
    /// drive stays mounted and refuses every request until unlocked. No
    /// drive given: every drive.
    Lock {
        #[serde(default)]
        drive: Option<String>,
    },
    /// Opens the vault again, with `password` or the one in the keyring.
    Unlock {
        drive: String,
        #[serde(default)]
        password: Option<Secret>,
        /// Save the password in the OS keyring for the next start.
        #[serde(default)]
        remember: bool,
    },
    /// Stops uploading (changes are kept on this device) until resumed.
    Pause {
        #[serde(default)]
        drive: Option<String>,
    },
    Resume {
        #[serde(default)]
        drive: Option<String>,
    },
    /// Bandwidth limits in bytes per second; `None` for no limit.
    SetLimits {
        drive: String,
        #[serde(default)]
        upload: Option<u64>,
        #[serde(default)]
        download: Option<u64>,
    },
    /// Keeps a file or folder of the drive on this device (`on`) or lets
    /// the cache evict it again. The path is inside the drive.
    Pin {
        drive: String,
        path: String,
        on: bool,
    },
    /// Commits now and waits until it is in the vault.
    SyncNow {
        drive: String,
    },
    /// The drive's snapshots, oldest first.
    Snapshots {
        drive: String,
    },
    /// Copies `path` (inside the drive) as it was in the snapshot `at` (an
    /// id, a prefix of one, or a UTC time: the newest snapshot at or before
    /// it) to the folder `to`, or back into the drive at its own place.
    Restore {
        drive: String,
        path: String,
        at: String,
        #[serde(default)]
        to: Option<PathBuf>,
    },
    /// Turns the connection into a stream of [`Event`]s, starting with a
    /// [`Event::Status`].
    Subscribe,
    /// Checks that a store can be reached with these credentials, and
    /// whether it holds a vault already (version 2).
    TestStore {
        store: String,
        #[serde(default)]
        credentials: Option<StoreSecrets>,
    },
    /// Creates a new vault in the store (which must not hold one), then
    /// adds it as a drive and mounts it, as `add_drive` does. The answer
    /// carries the vault's recovery key, shown to the person once
    /// (version 2).
    CreateDrive(AddDrive),
    /// Lists a folder of a snapshot: `path` is inside the drive, "" for
    /// its root (version 2).
    Browse {
        drive: String,
        snapshot: String,
        #[serde(default)]
        path: String,
    },
    /// The vault's devices this drive knows of, this one first (version 3).
    Devices {
        drive: String,
    },
    /// Renames this device in the drive's vault; the next commit carries
    /// the name to the other devices (version 3).
    RenameDevice {
        drive: String,
        name: String,
    },
    /// The conflict copies in the drive (version 3).
    Conflicts {
        drive: String,
    },
    /// Ends a conflict by keeping one version: `path` is the conflict copy,
    /// inside the drive (version 3). Keeping both needs no request: rename
    /// the copy, and it is no longer a conflict copy.
    ResolveConflict {
        drive: String,
        path: String,
        keep: Keep,
    },
}

impl Request {
    /// The protocol version that brought this request: what a client sends
    /// as `v`, so that an older service still answers the requests it has
    /// and refuses a newer one with `unsupported_version` ("update the
    /// service") rather than `bad_request`.
    pub fn since(&self) -> u32 {
        match self {
            Request::TestStore { .. } | Request::CreateDrive(_) | Request::Browse { .. } => 2,
            Request::Devices { .. }
            | Request::RenameDevice { .. }
            | Request::Conflicts { .. }
            | Request::ResolveConflict { .. } => 3,
            _ => 1,
        }
    }
}

/// Which version of a conflicted file [`Request::ResolveConflict`] keeps.
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Keep {
    /// The file under its own name; the conflict copy is deleted.
    Original,
    /// The conflict copy's content goes into the original (a local edit,
    /// committed as usual), and the copy is deleted.
    Copy,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddDrive {
    /// A short name: letters, digits, `-`, `_` and `.`.
    pub name: String,
    /// The vault's store address (no secrets in it).
    pub store: String,
    /// The folder to mount it on (created when missing).
    pub mount: PathBuf,
    pub password: Secret,
    /// Store credentials; without them the service looks in the keyring and
    /// its own environment.
    #[serde(default)]
    pub credentials: Option<StoreSecrets>,
    /// Save the vault password in the OS keyring, so the drive unlocks by
    /// itself at the next start.
    #[serde(default)]
    pub remember: bool,
    #[serde(default)]
    pub settings: DriveChange,
}

/// A store's credentials: S3 keys, or a WebDAV/SFTP password.
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSecrets {
    #[serde(default)]
    pub access_key_id: Option<String>,
    #[serde(default)]
    pub secret_access_key: Option<Secret>,
    #[serde(default)]
    pub password: Option<Secret>,
}

/// Settings of a drive; `None` leaves one as it is.
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DriveChange {
    #[serde(default)]
    pub mount: Option<PathBuf>,
    #[serde(default)]
    pub cache_size_mib: Option<u64>,
    #[serde(default)]
    pub commit_delay_secs: Option<u64>,
    /// Minutes without use before the drive locks itself; 0 for never.
    #[serde(default)]
    pub auto_lock_minutes: Option<u64>,
    /// Start the drive (mount it) when the service starts.
    #[serde(default)]
    pub mount_at_start: Option<bool>,
}

/// What the service answers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reply {
    Status(ServiceStatus),
    Drives {
        drives: Vec<DriveInfo>,
    },
    /// Done; `message` says what happened in plain words, `warnings` what
    /// the person should know (a keyring that is missing, say).
    Done {
        message: String,
        #[serde(default)]
        warnings: Vec<String>,
    },
    Snapshots {
        snapshots: Vec<SnapshotInfo>,
    },
    Restored {
        to: PathBuf,
        files: u64,
        bytes: u64,
    },
    /// The connection now carries events.
    Subscribed,
    /// The store answered; `vault` tells whether a vault is in it.
    StoreChecked {
        vault: bool,
        message: String,
    },
    /// A vault was created and mounted as a drive. The recovery key opens
    /// the vault when the password is lost; the service keeps no copy.
    Created {
        message: String,
        recovery_key: Secret,
        #[serde(default)]
        warnings: Vec<String>,
    },
    Entries {
        entries: Vec<Entry>,
    },
    /// The answer to `devices` (version 3).
    Devices {
        devices: Vec<DeviceInfo>,
    },
    /// The answer to `conflicts` (version 3).
    Conflicts {
        conflicts: Vec<ConflictInfo>,
    },
    /// An answer from a newer service.
    #[serde(other)]
    Unknown,
}

/// A file or folder of a snapshot.
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub name: String,
    pub dir: bool,
    pub size: u64,
    /// Unix time of the last change.
    pub modified: Option<i64>,
}

#[cfg_attr(feature = "specta", derive(specta::Type))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DriveInfo {
    pub name: String,
    pub store: String,
    pub mount: PathBuf,
    pub cache_size_mib: u64,
    pub commit_delay_secs: u64,
    pub auto_lock_minutes: u64,
    pub mount_at_start: bool,
    /// Whether the vault password is in the keyring.
    pub remembered: bool,
}

#[cfg_attr(feature = "specta", derive(specta::Type))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServiceStatus {
    pub version: String,
    pub pid: u32,
    pub uptime_secs: u64,
    pub drives: Vec<DriveStatus>,
    /// Nothing is waiting to be uploaded on any drive: stopping the
    /// service (or the computer) now keeps every change in the cloud.
    pub safe_to_shut_down: bool,
    /// Problems of the service itself (no keyring, say), in plain words.
    #[serde(default)]
    pub warnings: Vec<String>,
    /// Where the service writes its log files.
    #[serde(default)]
    pub log_dir: Option<PathBuf>,
    /// The service's own auto-lock time in minutes (0: never), for drives
    /// without one of their own.
    #[serde(default)]
    pub auto_lock_minutes: u64,
}

/// One drive's state, as a person would name it.
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DriveState {
    /// Being mounted.
    Starting,
    /// Configured but not mounted.
    Unmounted,
    /// Mounted, vault key not in memory.
    Locked,
    /// Mounted; uploads paused, changes kept on this device.
    Paused,
    /// Mounted; changes are being uploaded.
    Syncing,
    /// Mounted; everything is in the vault.
    UpToDate,
    /// Mounted; the store cannot be reached, changes are kept on this device.
    Offline,
    /// Mounted; another device's changes are being merged into this one
    /// ("Receiving changes from laptop").
    Receiving,
    /// Something needs the person (see `message`).
    Error,
    /// A state from a newer service.
    #[serde(other)]
    #[default]
    Unknown,
}

#[cfg_attr(feature = "specta", derive(specta::Type))]
// `Default` is an unknown, unmounted drive with nothing pending: a start
// for tests, which then name only the fields they are about.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DriveStatus {
    pub name: String,
    pub store: String,
    pub mount: PathBuf,
    pub state: DriveState,
    /// One line for a person: "Up to date", "Syncing 12 files · 48 MB left".
    pub message: String,
    pub mounted: bool,
    pub locked: bool,
    pub paused: bool,
    /// Files changed and not yet in the vault.
    pub pending_files: u64,
    /// Bytes on this device waiting for upload.
    pub pending_bytes: u64,
    pub transfers: Transfers,
    pub cache_bytes: u64,
    pub cache_limit_bytes: u64,
    pub upload_limit: Option<u64>,
    pub download_limit: Option<u64>,
    /// Unix time of the last commit that reached the vault.
    pub last_sync: Option<i64>,
    pub last_error: Option<String>,
    /// Seconds since the drive was last used (for auto-lock).
    pub idle_secs: u64,
    /// Locked or unmounted with changes the store had not taken yet: they
    /// are safe on this device and upload at the next unlock or mount.
    #[serde(default)]
    pub changes_kept_here: bool,
    /// Something (a file's content, a name, a folder) changed since the
    /// last commit that reached the vault. `pending_files` counts only
    /// files whose content changed: a rename alone sets this and not that.
    #[serde(default)]
    pub changes_pending: bool,
    /// Files the last commit left out because their changes on this device
    /// are damaged on its disk, by their path in the drive (`/docs/a.txt`).
    /// The vault keeps their last good version until they are written
    /// again or deleted.
    #[serde(default)]
    pub set_aside: Vec<String>,
    /// The vault's other devices, as this drive sees them. An older
    /// service sends none: all empty.
    #[serde(default)]
    pub sync: SyncStatus,
}

/// What a drive knows of the vault's other devices (docs/SYNC.md §5.1).
/// The drive is `up_to_date` only when nothing is pending here, the last
/// check succeeded lately, and `behind` is false.
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SyncStatus {
    /// Unix time of the last successful look at the other devices'
    /// changes; `None` before the first.
    pub last_checked: Option<i64>,
    /// Another device's change has been seen and is not merged and applied
    /// here yet.
    pub behind: bool,
    /// A merge or its apply is running.
    pub merging: bool,
    /// The vault's devices this drive knows of, this one first.
    pub devices: Vec<DeviceInfo>,
    /// Conflict copies in the drive.
    pub conflicts: u64,
}

/// A device of the vault.
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DeviceInfo {
    /// The device id, 32 hex digits.
    pub id: String,
    /// Its first 7 hex digits, shown beside the name (names may repeat).
    pub short_id: String,
    /// The device's name (its hostname unless renamed); empty when none
    /// of its commits carried one.
    pub name: String,
    pub this_device: bool,
    /// Unix time, by the store's clock, of that device's latest change
    /// seen here; `None` when unknown (this device before its first commit).
    pub last_seen: Option<i64>,
    /// This device has merged that device's latest change it has seen.
    pub merged: bool,
}

/// A conflict copy in a drive.
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConflictInfo {
    /// The copy's path in the drive (`/docs/report (conflict laptop
    /// 2026-12-07 14.05 UTC).docx`).
    pub copy: String,
    /// The path of the file it is a version of (`/docs/report.docx`).
    pub original: String,
    /// The name (or short id) of the device whose version the copy holds.
    pub device: String,
    /// Unix time of that version, by the store's clock, to the minute.
    pub time: Option<i64>,
}

/// Files or folders a merge changed, by kind.
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ChangeCounts {
    pub added: u64,
    pub changed: u64,
    pub moved: u64,
    pub deleted: u64,
}

impl ChangeCounts {
    pub fn total(&self) -> u64 {
        self.added
            .saturating_add(self.changed)
            .saturating_add(self.moved)
            .saturating_add(self.deleted)
    }
}

#[cfg_attr(feature = "specta", derive(specta::Type))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Transfers {
    /// Bytes uploaded and downloaded since the drive was mounted.
    pub uploaded_bytes: u64,
    pub downloaded_bytes: u64,
    /// Bytes of uploads under way now.
    pub uploading_bytes: u64,
    /// Bytes per second over the last few seconds.
    pub upload_rate: u64,
    pub download_rate: u64,
    /// Requests sent to the store, by kind, counted as the bytes are.
    #[serde(default)]
    pub requests: RequestCounts,
}

/// Requests sent to a store, by kind: one per call of the drive's store
/// layer, sent whether or not it then succeeded (a retry counts again). The
/// store may see a few HTTP requests for one: a listing of many pages, an
/// upload in parts.
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RequestCounts {
    pub list: u64,
    pub stat: u64,
    /// Reads, whole or of a range.
    pub get: u64,
    pub put: u64,
    pub delete: u64,
}

#[cfg_attr(feature = "specta", derive(specta::Type))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SnapshotInfo {
    pub id: String,
    /// The folder name under `.snapshots/` in the drive.
    pub name: String,
    /// Unix time.
    pub time: i64,
    pub device: String,
}

/// The most paths an [`Event::Updated`] names.
pub const UPDATED_PATHS: usize = 5;

/// What the service tells subscribers, as it happens.
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// Everything, when subscribing.
    Status(ServiceStatus),
    /// A drive's state or its message changed.
    DriveState {
        drive: String,
        state: DriveState,
        message: String,
    },
    /// Transfers of a drive while any are running (about once a second).
    Transfer { drive: String, transfers: Transfers },
    /// What waits for upload on a drive changed.
    Pending { drive: String, files: u64, bytes: u64 },
    /// Whether stopping now keeps every change in the cloud.
    SafeToShutDown { safe: bool, pending_bytes: u64 },
    /// A warning or an error, in plain words.
    Notice {
        #[serde(default)]
        drive: Option<String>,
        level: Level,
        text: String,
    },
    /// Another device's changes arrived in the drive: "Updated from laptop:
    /// 3 files". `paths` names a few of them (at most [`UPDATED_PATHS`]).
    Updated {
        drive: String,
        /// The device's name (or short id when it has none).
        device: String,
        /// Its id, 32 hex digits.
        #[serde(default)]
        device_id: String,
        #[serde(default)]
        files: ChangeCounts,
        #[serde(default)]
        folders: ChangeCounts,
        #[serde(default)]
        paths: Vec<String>,
    },
    /// Two devices changed one file; both versions are kept, the other
    /// device's as the conflict copy `copy` beside `original`.
    Conflict {
        drive: String,
        copy: String,
        original: String,
        /// The name (or short id) of the device whose version is the copy.
        device: String,
        /// Unix time of that version, by the store's clock.
        #[serde(default)]
        time: Option<i64>,
    },
    /// An event from a newer service.
    #[serde(other)]
    Unknown,
}

#[cfg_attr(feature = "specta", derive(specta::Type))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Info,
    Warning,
    Error,
}

/// An error the service answers. Clients branch on `code`, never on the
/// message, which is for people.
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
        }
    }
}

/// Stable error codes. New codes may be added; a client reads an unknown
/// one as `unknown`.
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The request did not decode.
    BadRequest,
    /// The request line is longer than the service accepts.
    TooLarge,
    /// The request's protocol version is not one the service speaks.
    UnsupportedVersion,
    /// The caller may not use this service (another user).
    NotPermitted,
    NoSuchDrive,
    DriveExists,
    /// A setting or argument is not valid (the message says which).
    Invalid,
    WrongPassword,
    /// The drive is locked.
    Locked,
    /// The store could not be reached; try again later.
    Unavailable,
    /// The store refused (credentials, bucket, permissions).
    StoreRefused,
    /// The OS keyring could not be used.
    Keyring,
    /// The mount point or a local file could not be used.
    Local,
    /// Something is in use (files open on the drive, say).
    Busy,
    NotFound,
    Internal,
    /// This version of the service cannot do that yet (the message says
    /// what); updating Nimbus may help.
    Unsupported,
    /// A code this side does not know (the other side is newer). Left out
    /// of the generated TypeScript, where `serde(other)` would widen the
    /// union to `string`; the desktop shell reports it as its own `unknown`.
    #[serde(other)]
    #[cfg_attr(feature = "specta", specta(skip))]
    Unknown,
}

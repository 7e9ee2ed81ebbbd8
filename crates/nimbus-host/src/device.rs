//! This device's identity and memory per vault, in the local state folder
//! (`<state>/vaults/<vault id>/`): the device id (chosen at random the
//! first time, so each device only ever writes its own `refs/<device>`),
//! its human name (`device-name`, the hostname unless renamed; the commits
//! carry it to the other devices, docs/SYNC.md §2.3), the newest ref update
//! seen of every device (to notice a rollback), and the mount lock
//! (`drive.lock`, an `flock` held while mounted).
//!
//! `refs-seen.json` is the rollback memory: losing it, or going back to an
//! older copy of it, would let a store replay old snapshots unnoticed. So it
//! is updated only under a lock (`refs-seen.lock`: the CLI and a mounted
//! drive update it at once), by merging (a counter never goes down),
//! written to a new file that is synced before it replaces the old one (and
//! the folder synced after), with a copy of the same bytes in
//! `refs-seen.json.bak`. A file that cannot be read is an error that says
//! what to do, never an empty memory.

use nimbus_vault::{DeviceId, ShortId, Vault, VaultError};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The default local state folder: the platform's data folder.
pub fn default_state_dir() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "nimbus").map(|d| d.data_dir().to_path_buf())
}

pub fn vault_dir(state: &Path, vault_id: &ShortId) -> PathBuf {
    state.join("vaults").join(vault_id.to_hex())
}

fn ctx(what: &str, p: &Path, e: std::io::Error) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("could not {what} {}: {e}", p.display()))
}

/// Replaces `file` with `bytes` so that a crash or power loss leaves the
/// old content or the new, never a mix or nothing.
fn write_atomic(file: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = file.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| ctx("create", dir, e))?;
    let mut tmp_name = file.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    let mut f = create_private(&tmp).map_err(|e| ctx("write", &tmp, e))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| ctx("write", &tmp, e))?;
    drop(f);
    std::fs::rename(&tmp, file).map_err(|e| ctx("write", file, e))?;
    sync_dir(dir)
}

/// Creates (or truncates) `file` readable by the user alone, whatever the
/// umask of the program that called (the CLI and the service set 077, a
/// test or a library user may not).
fn create_private(file: &Path) -> std::io::Result<std::fs::File> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    // A leftover from a crash keeps its old mode when truncated: start anew.
    let _ = std::fs::remove_file(file);
    opts.open(file)
}

/// Makes a rename in `dir` durable. Windows cannot open a folder as a file
/// and orders its metadata itself.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    if cfg!(unix) {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| ctx("sync", dir, e))?;
    }
    Ok(())
}

/// This device's id in the vault, made the first time.
pub fn device_id(state: &Path, vault_id: &ShortId) -> std::io::Result<DeviceId> {
    let file = vault_dir(state, vault_id).join("device-id");
    if let Ok(text) = std::fs::read_to_string(&file) {
        if let Ok(id) = ShortId::from_hex(text.trim()) {
            return Ok(id);
        }
    }
    let id = ShortId::random();
    write_atomic(&file, format!("{}\n", id.to_hex()).as_bytes())?;
    Ok(id)
}

/// The longest device name, in bytes of UTF-8 (the commit field's limit,
/// docs/SYNC.md §2.2).
pub const MAX_NAME_LEN: usize = 64;

/// The name of a device whose hostname leaves nothing usable.
const FALLBACK_NAME: &str = "device";

/// Why a device name was refused or could not be saved.
#[derive(Debug, thiserror::Error)]
pub enum DeviceNameError {
    #[error("a device name cannot be empty (control characters and `/` are left out of it)")]
    Empty,
    #[error("a device name is at most {MAX_NAME_LEN} bytes long; this one is {len} bytes")]
    TooLong { len: usize },
    #[error("could not save the device name: {0}")]
    Save(std::io::Error),
}

/// `raw` without control characters and `/` (a name shows up inside file
/// names of conflict copies and on one line of `nimbus devices`), and
/// without spaces at either end. Not cut.
fn clean_name(raw: &str) -> String {
    let kept: String = raw.chars().filter(|c| !c.is_control() && *c != '/').collect();
    kept.trim().to_string()
}

/// `name` cut to at most [`MAX_NAME_LEN`] bytes, on a character boundary.
fn cut_name(name: &str) -> &str {
    let mut end = name.len().min(MAX_NAME_LEN);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name[..end].trim_end()
}

/// A device name made from a hostname: cleaned, cut to
/// [`MAX_NAME_LEN`] bytes, `device` when nothing is left.
fn name_from_host(host: &str) -> String {
    let clean = clean_name(host);
    match cut_name(&clean) {
        "" => FALLBACK_NAME.to_string(),
        cut => cut.to_string(),
    }
}

/// This computer's name for a device that was never renamed: its hostname
/// (`uname`'s node name), cleaned and cut to [`MAX_NAME_LEN`] bytes.
pub fn default_name() -> String {
    #[cfg(unix)]
    let host = rustix::system::uname().nodename().to_string_lossy().into_owned();
    #[cfg(not(unix))]
    let host = std::env::var("COMPUTERNAME").unwrap_or_default();
    name_from_host(&host)
}

fn name_file(state: &Path, vault_id: &ShortId) -> PathBuf {
    vault_dir(state, vault_id).join("device-name")
}

/// Checks a name a person chose: cleaned as [`default_name`] is, then
/// refused when empty or too long (a chosen name is not silently cut).
fn checked_name(raw: &str) -> Result<String, DeviceNameError> {
    let name = clean_name(raw);
    if name.is_empty() {
        return Err(DeviceNameError::Empty);
    }
    if name.len() > MAX_NAME_LEN {
        return Err(DeviceNameError::TooLong { len: name.len() });
    }
    Ok(name)
}

/// This device's name in the vault: the one it was renamed to, or
/// [`default_name`] (so a device never renamed follows its hostname). A
/// name file that cannot be read or holds no valid name is logged and the
/// default used: a name is only a label, never a reason to fail a mount.
pub fn device_name(state: &Path, vault_id: &ShortId) -> String {
    let file = name_file(state, vault_id);
    let bytes = match std::fs::read(&file) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return default_name(),
        Err(e) => {
            tracing::warn!("cannot read {} ({e}); using this computer's name", file.display());
            return default_name();
        }
    };
    let checked = std::str::from_utf8(&bytes)
        .map_err(|_| "it is not UTF-8".to_string())
        .and_then(|text| checked_name(text.strip_suffix('\n').unwrap_or(text)).map_err(|e| e.to_string()));
    match checked {
        Ok(name) => name,
        Err(why) => {
            tracing::warn!(
                "the device name in {} is damaged ({why}); using this computer's name until the device is renamed",
                file.display()
            );
            default_name()
        }
    }
}

/// Renames this device in the vault: checks `name` (see
/// [`DeviceNameError`]) and saves it, replacing the old one in one step.
/// Returns the name as saved (without control characters, `/` and
/// surrounding spaces). The next commit carries it to the other devices.
pub fn rename_device(state: &Path, vault_id: &ShortId, name: &str) -> Result<String, DeviceNameError> {
    let name = checked_name(name)?;
    write_atomic(&name_file(state, vault_id), format!("{name}\n").as_bytes()).map_err(DeviceNameError::Save)?;
    Ok(name)
}

fn seen_file(state: &Path, vault_id: &ShortId) -> PathBuf {
    vault_dir(state, vault_id).join("refs-seen.json")
}

fn seen_backup(file: &Path) -> PathBuf {
    let mut name = file.file_name().unwrap_or_default().to_os_string();
    name.push(".bak");
    file.with_file_name(name)
}

/// Why a copy of the memory cannot be read.
#[derive(Debug, thiserror::Error)]
enum SeenFileError {
    #[error("{0}")]
    Read(std::io::Error),
    #[error("it is not what Nimbus wrote: {0}")]
    NotJson(serde_json::Error),
    #[error("`{0}` is not a device id")]
    NotADevice(String),
}

/// Reads one copy of the memory: `Ok(None)` when the file does not exist.
fn read_seen_file(file: &Path) -> Result<Option<HashMap<DeviceId, u64>>, SeenFileError> {
    let text = match std::fs::read(file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(SeenFileError::Read(e)),
    };
    let raw: HashMap<String, u64> = serde_json::from_slice(&text).map_err(SeenFileError::NotJson)?;
    raw.into_iter()
        .map(|(k, v)| match ShortId::from_hex(&k) {
            Ok(id) => Ok((id, v)),
            Err(_) => Err(SeenFileError::NotADevice(k)),
        })
        .collect::<Result<_, _>>()
        .map(Some)
}

/// The newest update of each device's ref this device has seen. Nothing
/// seen yet (a new device) is an empty map; a file that cannot be read is
/// an error saying how to get out of it, never an empty map, since that
/// would silently accept a rollback.
pub fn load_seen(state: &Path, vault_id: &ShortId) -> std::io::Result<HashMap<DeviceId, u64>> {
    let file = seen_file(state, vault_id);
    let backup = seen_backup(&file);
    match read_seen_file(&file) {
        Ok(Some(seen)) => Ok(seen),
        // The first update writes the copy first: a crash before the
        // file itself leaves only the copy.
        Ok(None) => match read_seen_file(&backup) {
            Ok(found) => Ok(found.unwrap_or_default()),
            Err(why) => Err(unreadable_seen(&backup, &why, None)),
        },
        Err(why) => {
            let good_backup = matches!(read_seen_file(&backup), Ok(Some(_)));
            Err(unreadable_seen(&file, &why, good_backup.then_some(backup.as_path())))
        }
    }
}

fn unreadable_seen(file: &Path, why: &SeenFileError, backup: Option<&Path>) -> std::io::Error {
    let way_out = match backup {
        Some(b) => format!(
            "If it was damaged (a disk error, an edit), put back the copy of its last update with              `cp '{}' '{}'`, or delete both files",
            b.display(),
            file.display()
        ),
        None => format!(
            "If it was damaged (a disk error, an edit), delete it and `{}`",
            seen_backup(file).display()
        ),
    };
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!(
            "cannot read {} ({why}). This file is how this device notices a store that goes back to              older snapshots, so Nimbus stops rather than forget it. {way_out}: this device then              trusts the vault's snapshots as they are now",
            file.display()
        ),
    )
}

/// Merges `seen` into the memory: each device's counter becomes the larger
/// of the stored one and the new one, so it never goes down. Returns the
/// memory as written.
pub fn save_seen(
    state: &Path,
    vault_id: &ShortId,
    seen: &HashMap<DeviceId, u64>,
) -> std::io::Result<HashMap<DeviceId, u64>> {
    let dir = vault_dir(state, vault_id);
    std::fs::create_dir_all(&dir).map_err(|e| ctx("create", &dir, e))?;
    let lock_path = dir.join("refs-seen.lock");
    let lock = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .map_err(|e| ctx("open", &lock_path, e))?;
    // Released when `lock` is dropped.
    lock.lock().map_err(|e| ctx("lock", &lock_path, e))?;
    let mut merged = load_seen(state, vault_id)?;
    let before = merged.clone();
    for (dev, &seq) in seen {
        let e = merged.entry(*dev).or_insert(0);
        *e = (*e).max(seq);
    }
    let file = seen_file(state, vault_id);
    // The backup is written again when it is missing, so there is always
    // a way out after damage to the file itself.
    if merged != before || !file.exists() || !seen_backup(&file).exists() {
        let raw: std::collections::BTreeMap<String, u64> = merged.iter().map(|(k, v)| (k.to_hex(), *v)).collect();
        let bytes = serde_json::to_vec_pretty(&raw).map_err(std::io::Error::other)?;
        write_atomic(&seen_backup(&file), &bytes)?;
        write_atomic(&file, &bytes)?;
    }
    drop(lock);
    Ok(merged)
}

/// Why the rollback check did not pass: this device's memory could not be
/// read or written, or the store's refs could not be read or went back in
/// time.
#[derive(Debug, thiserror::Error)]
pub enum RollbackError {
    #[error(transparent)]
    Memory(#[from] std::io::Error),
    #[error(transparent)]
    Refs(#[from] VaultError),
}

/// Gives the vault this device's memory of the refs, so every later read
/// of them (the head, the check before publishing) is held to it, then
/// reads them once now to refuse a rollback early and remember what is
/// new. Returns the memory as saved.
pub async fn check_rollback(vault: &Vault, state: &Path) -> Result<HashMap<DeviceId, u64>, RollbackError> {
    let vid = vault.config().vault_id;
    vault.remember_refs_seen(&load_seen(state, &vid)?);
    vault.read_refs().await?;
    Ok(save_seen(state, &vid, &vault.refs_seen())?)
}

/// Notes that this device's ref reached update `seq`.
pub fn note_own_commit(state: &Path, vault_id: &ShortId, dev: DeviceId, seq: u64) {
    if let Err(e) = save_seen(state, vault_id, &HashMap::from([(dev, seq)])) {
        tracing::warn!("{e}");
    }
}

/// Where the vault is mounted on this device, if it is.
#[cfg(unix)]
pub fn mounted_here(state: &Path, vault_id: &ShortId) -> Option<String> {
    let path = vault_dir(state, vault_id).join("drive.lock");
    let f = std::fs::File::open(&path).ok()?;
    if rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockShared).is_ok() {
        return None;
    }
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    Some(text.trim().to_string())
}

#[cfg(not(unix))]
pub fn mounted_here(_state: &Path, _vault_id: &ShortId) -> Option<String> {
    None
}

/// Why the vault's mount lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("cannot create {}: {error}", .dir.display())]
    Create { dir: PathBuf, error: std::io::Error },
    #[error("cannot open {}: {error}", .path.display())]
    Open { path: PathBuf, error: std::io::Error },
    /// Another drive of this device holds it; `holder` says where and which
    /// process.
    #[error(
        "this vault is already mounted on this device ({holder}). Unmount it there first: one vault is mounted \
         once per device"
    )]
    Held { holder: String },
}

/// Takes the vault's mount lock on this device, or says where it is
/// mounted already. Held until the file is dropped.
#[cfg(unix)]
pub fn lock_vault(state: &Path, vault_id: &ShortId, mp: &Path) -> Result<std::fs::File, LockError> {
    use std::io::{Read, Write};
    let dir = vault_dir(state, vault_id);
    std::fs::create_dir_all(&dir).map_err(|error| LockError::Create {
        dir: dir.clone(),
        error,
    })?;
    let path = dir.join("drive.lock");
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|error| LockError::Open {
            path: path.clone(),
            error,
        })?;
    if rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err() {
        let mut holder = String::new();
        let _ = f.read_to_string(&mut holder);
        return Err(LockError::Held {
            holder: holder.trim().to_string(),
        });
    }
    let _ = f.set_len(0);
    let _ = writeln!(f, "at {} by process {}", mp.display(), std::process::id());
    Ok(f)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn seen_of(pairs: &[(DeviceId, u64)]) -> HashMap<DeviceId, u64> {
        pairs.iter().copied().collect()
    }

    /// Review L4: a damaged memory was read as empty, so a replayed ref
    /// was accepted and the counter lowered. Now it is an error that says
    /// what to do, nothing overwrites it, and a counter never goes down.
    #[test]
    fn a_damaged_memory_is_an_error_and_counters_never_go_down() {
        let state = tempfile::tempdir().unwrap();
        let (vid, dev) = (ShortId::random(), ShortId::random());
        let file = seen_file(state.path(), &vid);
        assert!(load_seen(state.path(), &vid).unwrap().is_empty(), "nothing seen yet");
        save_seen(state.path(), &vid, &seen_of(&[(dev, 7)])).unwrap();
        let good = std::fs::read(&file).unwrap();

        for damage in [
            &good[..good.len() / 2],
            b"\0\0garbage".as_slice(),
            b"{\"zz\": 3}".as_slice(),
        ] {
            std::fs::write(&file, damage).unwrap();
            let err = load_seen(state.path(), &vid).unwrap_err().to_string();
            assert!(
                err.contains(&file.display().to_string()) && err.contains("cp '"),
                "{err}"
            );
            let err = save_seen(state.path(), &vid, &seen_of(&[(dev, 5)])).unwrap_err();
            assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
            assert_eq!(std::fs::read(&file).unwrap(), damage, "left for the person to look at");
        }

        // Without the copy, the way out is to start afresh.
        std::fs::remove_file(seen_backup(&file)).unwrap();
        let err = load_seen(state.path(), &vid).unwrap_err().to_string();
        assert!(err.contains("delete it"), "{err}");

        std::fs::write(&file, &good).unwrap();
        assert_eq!(save_seen(state.path(), &vid, &seen_of(&[(dev, 5)])).unwrap()[&dev], 7);
        assert_eq!(load_seen(state.path(), &vid).unwrap()[&dev], 7);
        assert_eq!(
            std::fs::read(seen_backup(&file)).unwrap(),
            good,
            "the copy is written again"
        );
    }

    #[test]
    fn names_from_hostnames_are_cleaned_cut_and_never_empty() {
        assert_eq!(name_from_host("ana-laptop"), "ana-laptop");
        assert_eq!(name_from_host(" a/b\tc\u{7f}d\n "), "abcd");
        assert_eq!(name_from_host("\u{1}/\n"), "device");
        assert_eq!(name_from_host(""), "device");
        // Cut on a character boundary: 63 ASCII bytes and a 2-byte `é`
        // would be 65, so the `é` goes whole.
        let host = format!("{}é", "a".repeat(63));
        assert_eq!(name_from_host(&host), "a".repeat(63));
        let host = "é".repeat(40);
        let cut = name_from_host(&host);
        assert_eq!((cut.len(), cut.chars().count()), (64, 32));
        // No trailing space left by the cut.
        let host = format!("{} b", "a".repeat(63));
        assert_eq!(name_from_host(&host), "a".repeat(63));

        let here = default_name();
        assert!(!here.is_empty() && here.len() <= MAX_NAME_LEN, "{here:?}");
        assert!(!here.contains('/') && !here.chars().any(char::is_control), "{here:?}");
    }

    #[test]
    fn renaming_saves_beside_the_id_and_reads_back() {
        let state = tempfile::tempdir().unwrap();
        let vid = ShortId::random();
        assert_eq!(device_name(state.path(), &vid), default_name(), "never renamed");

        assert_eq!(
            rename_device(state.path(), &vid, "  Ana's\tdesk/top ").unwrap(),
            "Ana'sdesktop"
        );
        assert_eq!(device_name(state.path(), &vid), "Ana'sdesktop");
        let file = vault_dir(state.path(), &vid).join("device-name");
        device_id(state.path(), &vid).unwrap();
        assert!(
            vault_dir(state.path(), &vid).join("device-id").exists(),
            "beside the id"
        );
        assert_eq!(std::fs::read(&file).unwrap(), b"Ana'sdesktop\n");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }

        // 64 bytes of UTF-8 are allowed, 65 are not.
        let longest = format!("{}é", "b".repeat(62));
        assert_eq!(rename_device(state.path(), &vid, &longest).unwrap(), longest);
        assert_eq!(device_name(state.path(), &vid), longest);
        let err = rename_device(state.path(), &vid, &format!("{longest}x")).unwrap_err();
        assert!(matches!(err, DeviceNameError::TooLong { len: 65 }), "{err}");
        assert!(err.to_string().contains("at most 64 bytes"), "{err}");
        for empty in ["", "   ", "/\n\t/"] {
            let err = rename_device(state.path(), &vid, empty).unwrap_err();
            assert!(matches!(err, DeviceNameError::Empty), "{empty:?}: {err}");
        }
        assert_eq!(
            device_name(state.path(), &vid),
            longest,
            "a refused name changes nothing"
        );
    }

    /// A damaged name file never fails a mount: the default is used.
    #[test]
    fn a_damaged_name_falls_back_to_the_default() {
        let state = tempfile::tempdir().unwrap();
        let vid = ShortId::random();
        rename_device(state.path(), &vid, "laptop").unwrap();
        let file = vault_dir(state.path(), &vid).join("device-name");
        let too_long = "x".repeat(200);
        for damage in [
            b"\xff\xfe".as_slice(),
            b"".as_slice(),
            b"\n\n/".as_slice(),
            too_long.as_bytes(),
        ] {
            std::fs::write(&file, damage).unwrap();
            assert_eq!(device_name(state.path(), &vid), default_name(), "{damage:?}");
        }
        // A folder where the file should be cannot be read either.
        std::fs::remove_file(&file).unwrap();
        std::fs::create_dir(&file).unwrap();
        assert_eq!(device_name(state.path(), &vid), default_name());
        assert!(matches!(
            rename_device(state.path(), &vid, "laptop"),
            Err(DeviceNameError::Save(_))
        ));
    }

    /// The CLI and a mounted drive update the memory at once: an update
    /// waits for the other's lock and merges with what it wrote.
    #[test]
    fn updates_take_turns_and_merge() {
        let state = tempfile::tempdir().unwrap();
        let (vid, a, b) = (ShortId::random(), ShortId::random(), ShortId::random());
        save_seen(state.path(), &vid, &seen_of(&[(a, 1)])).unwrap();
        let lock = std::fs::OpenOptions::new()
            .write(true)
            .open(vault_dir(state.path(), &vid).join("refs-seen.lock"))
            .unwrap();
        lock.lock().unwrap();
        let path = state.path().to_path_buf();
        let other = std::thread::spawn(move || save_seen(&path, &vid, &seen_of(&[(b, 4)])).unwrap());
        // The lock holder's own update, made while the other one waits.
        let raw = format!("{{\"{}\": 9}}", a.to_hex());
        std::fs::write(seen_file(state.path(), &vid), raw).unwrap();
        drop(lock);
        other.join().unwrap();
        assert_eq!(load_seen(state.path(), &vid).unwrap(), seen_of(&[(a, 9), (b, 4)]));
    }
}

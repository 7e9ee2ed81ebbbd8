//! This device's identity and memory per vault, in the local state folder
//! (`<state>/vaults/<vault id>/`): the device id (chosen at random the
//! first time, so each device only ever writes its own `refs/<device>`),
//! the newest ref update seen of every device (to notice a rollback), and
//! the mount lock (`drive.lock`, an `flock` held while mounted).
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
    let mut f = std::fs::File::create(&tmp).map_err(|e| ctx("write", &tmp, e))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| ctx("write", &tmp, e))?;
    drop(f);
    std::fs::rename(&tmp, file).map_err(|e| ctx("write", file, e))?;
    sync_dir(dir)
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

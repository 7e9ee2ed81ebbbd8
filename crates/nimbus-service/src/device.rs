//! This device's identity and memory per vault, in the local state folder
//! (`<state>/vaults/<vault id>/`): the device id (chosen at random the
//! first time, so each device only ever writes its own `refs/<device>`),
//! the newest ref update seen of every device (to notice a rollback), and
//! the mount lock (`drive.lock`, an `flock` held while mounted).

use nimbus_vault::{DeviceId, ShortId};
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

fn write_atomic(file: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir).map_err(|e| ctx("create", dir, e))?;
    }
    let tmp = file.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(|e| ctx("write", &tmp, e))?;
    std::fs::rename(&tmp, file).map_err(|e| ctx("write", file, e))
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

/// The newest update of each device's ref this device has seen.
pub fn load_seen(state: &Path, vault_id: &ShortId) -> HashMap<DeviceId, u64> {
    let Ok(text) = std::fs::read_to_string(seen_file(state, vault_id)) else {
        return HashMap::new();
    };
    let raw: HashMap<String, u64> = serde_json::from_str(&text).unwrap_or_default();
    raw.into_iter()
        .filter_map(|(k, v)| ShortId::from_hex(&k).ok().map(|id| (id, v)))
        .collect()
}

pub fn save_seen(state: &Path, vault_id: &ShortId, seen: &HashMap<DeviceId, u64>) -> std::io::Result<()> {
    let raw: std::collections::BTreeMap<String, u64> = seen.iter().map(|(k, v)| (k.to_hex(), *v)).collect();
    let bytes = serde_json::to_vec_pretty(&raw).map_err(std::io::Error::other)?;
    write_atomic(&seen_file(state, vault_id), &bytes)
}

/// Notes that this device's ref reached update `seq`.
pub fn note_own_commit(state: &Path, vault_id: &ShortId, dev: DeviceId, seq: u64) {
    let mut seen = load_seen(state, vault_id);
    let e = seen.entry(dev).or_insert(0);
    *e = (*e).max(seq);
    if let Err(e) = save_seen(state, vault_id, &seen) {
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

/// Takes the vault's mount lock on this device, or says where it is
/// mounted already. Held until the file is dropped.
#[cfg(unix)]
pub fn lock_vault(state: &Path, vault_id: &ShortId, mp: &Path) -> Result<std::fs::File, String> {
    use std::io::{Read, Write};
    let dir = vault_dir(state, vault_id);
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let path = dir.join("drive.lock");
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    if rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err() {
        let mut holder = String::new();
        let _ = f.read_to_string(&mut holder);
        return Err(format!(
            "this vault is already mounted on this device ({}). Unmount it there first: one vault is mounted once per device",
            holder.trim()
        ));
    }
    let _ = f.set_len(0);
    let _ = writeln!(f, "at {} by process {}", mp.display(), std::process::id());
    Ok(f)
}

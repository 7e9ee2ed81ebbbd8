//! This device's id for a vault: chosen at random the first time the device
//! writes to the vault, and kept in the local state directory, so each
//! device only ever writes its own `refs/<device>` object.

use anyhow::{Context, Result};
use nimbus_vault::{DeviceId, ShortId};
use std::collections::HashMap;
use std::path::PathBuf;

use crate::GlobalArgs;

/// The local state directory: `--state-dir`, else the platform's data dir.
pub fn state_dir(g: &GlobalArgs) -> Result<PathBuf> {
    if let Some(d) = &g.state_dir {
        return Ok(d.clone());
    }
    let dirs = directories::ProjectDirs::from("", "", "nimbus")
        .context("no home directory to keep local state in; pass --state-dir")?;
    Ok(dirs.data_dir().to_path_buf())
}

pub fn device_id(g: &GlobalArgs, vault_id: &ShortId) -> Result<DeviceId> {
    let dir = state_dir(g)?.join("vaults").join(vault_id.to_hex());
    let file = dir.join("device-id");
    if let Ok(text) = std::fs::read_to_string(&file) {
        if let Ok(id) = ShortId::from_hex(text.trim()) {
            return Ok(id);
        }
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("could not create {}", dir.display()))?;
    let id = ShortId::random();
    let tmp = dir.join("device-id.tmp");
    std::fs::write(&tmp, format!("{}\n", id.to_hex())).with_context(|| format!("could not write {}", tmp.display()))?;
    std::fs::rename(&tmp, &file).with_context(|| format!("could not write {}", file.display()))?;
    Ok(id)
}

fn seen_file(g: &GlobalArgs, vault_id: &ShortId) -> Result<PathBuf> {
    Ok(state_dir(g)?
        .join("vaults")
        .join(vault_id.to_hex())
        .join("refs-seen.json"))
}

/// The newest update of each device's ref this device has seen.
pub fn load_seen(g: &GlobalArgs, vault_id: &ShortId) -> Result<HashMap<DeviceId, u64>> {
    let file = seen_file(g, vault_id)?;
    let Ok(text) = std::fs::read_to_string(&file) else {
        return Ok(HashMap::new());
    };
    let raw: HashMap<String, u64> = serde_json::from_str(&text).unwrap_or_default();
    Ok(raw
        .into_iter()
        .filter_map(|(k, v)| ShortId::from_hex(&k).ok().map(|id| (id, v)))
        .collect())
}

pub fn save_seen(g: &GlobalArgs, vault_id: &ShortId, seen: &HashMap<DeviceId, u64>) -> Result<()> {
    let file = seen_file(g, vault_id)?;
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("could not create {}", dir.display()))?;
    }
    let raw: std::collections::BTreeMap<String, u64> = seen.iter().map(|(k, v)| (k.to_hex(), *v)).collect();
    let tmp = file.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(&raw)?)
        .with_context(|| format!("could not write {}", tmp.display()))?;
    std::fs::rename(&tmp, &file).with_context(|| format!("could not write {}", file.display()))?;
    Ok(())
}

/// Where the vault is mounted on this device, if it is: the mount holds an
/// exclusive `flock` on `drive.lock` for as long as it runs.
#[cfg(unix)]
pub fn mounted_here(g: &GlobalArgs, vault_id: &ShortId) -> Option<String> {
    let path = state_dir(g)
        .ok()?
        .join("vaults")
        .join(vault_id.to_hex())
        .join("drive.lock");
    let f = std::fs::File::open(&path).ok()?;
    if rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockShared).is_ok() {
        return None;
    }
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    Some(text.trim().to_string())
}

#[cfg(not(unix))]
pub fn mounted_here(_g: &GlobalArgs, _vault_id: &ShortId) -> Option<String> {
    None
}

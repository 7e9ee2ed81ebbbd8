//! This device's id for a vault and the refs it has seen, in the local
//! state directory chosen by `--state-dir` (`nimbus_host::device` keeps
//! them, for the CLI and the service alike).

use anyhow::{Context, Result};
use nimbus_host::device;
use nimbus_vault::{DeviceId, ShortId};
use std::collections::HashMap;
use std::path::PathBuf;

use crate::args::GlobalArgs;

/// The local state directory: `--state-dir`, else the platform's data dir.
pub fn state_dir(g: &GlobalArgs) -> Result<PathBuf> {
    if let Some(d) = &g.state_dir {
        return Ok(d.clone());
    }
    device::default_state_dir().context("no home directory to keep local state in; pass --state-dir")
}

pub fn device_id(g: &GlobalArgs, vault_id: &ShortId) -> Result<DeviceId> {
    Ok(device::device_id(&state_dir(g)?, vault_id)?)
}

/// This device's name in the vault (its hostname unless renamed).
pub fn device_name(g: &GlobalArgs, vault_id: &ShortId) -> Result<String> {
    Ok(device::device_name(&state_dir(g)?, vault_id))
}

/// The newest update of each device's ref this device has seen.
pub fn load_seen(g: &GlobalArgs, vault_id: &ShortId) -> Result<HashMap<DeviceId, u64>> {
    Ok(device::load_seen(&state_dir(g)?, vault_id)?)
}

/// Merges `seen` into what this device remembers (never lowering a counter).
pub fn save_seen(g: &GlobalArgs, vault_id: &ShortId, seen: &HashMap<DeviceId, u64>) -> Result<()> {
    device::save_seen(&state_dir(g)?, vault_id, seen)?;
    Ok(())
}

/// Where the vault is mounted on this device, if it is.
pub fn mounted_here(g: &GlobalArgs, vault_id: &ShortId) -> Option<String> {
    device::mounted_here(&state_dir(g).ok()?, vault_id)
}

//! `devices` and `rename_device`: this device's id and name in a drive's
//! vault, from the local state (`nimbus_host::device`, docs/SYNC.md §2.3),
//! and the other devices as the drive's sync loop last saw their refs
//! (`nimbus_fs::SeenDevice`, docs/SYNC.md §5).

use nimbus_api::{ApiError, DeviceInfo, ErrorCode};
use nimbus_host::device::{self, DeviceNameError};
use nimbus_vault::{DeviceId, ShortId};
use std::path::Path;
use std::time::SystemTime;

use crate::drive::Drive;

/// How many hex digits of a device id people see beside its name: as in
/// conflict names of a device without one (docs/SYNC.md §3.6).
const SHORT_ID_DIGITS: usize = 7;

/// The vault's id of `d`, or why it is not known yet.
fn vault_of(d: &Drive) -> Result<ShortId, ApiError> {
    d.vault_id().ok_or_else(|| {
        let name = d.name();
        if d.is_mounted() && d.is_locked() {
            ApiError::new(
                ErrorCode::Locked,
                format!("drive `{name}` is locked; unlock it first (`nimbus unlock {name}`)"),
            )
        } else {
            ApiError::new(
                ErrorCode::Invalid,
                format!("drive `{name}` has not been opened since the service started; mount it first (`nimbus mount {name}`)"),
            )
        }
    })
}

/// This device in the vault `vault`, as `devices` lists it.
pub fn this_device(state: &Path, vault: &ShortId) -> Result<DeviceInfo, ApiError> {
    let id = device::device_id(state, vault)
        .map_err(|e| ApiError::new(ErrorCode::Local, format!("cannot read this device's id: {e}")))?;
    Ok(DeviceInfo {
        name: device::device_name(state, vault),
        this_device: true,
        merged: true,
        ..with_id(id)
    })
}

/// A device's `id` and `short_id`, the rest empty.
fn with_id(id: DeviceId) -> DeviceInfo {
    let hex = id.to_hex();
    DeviceInfo {
        short_id: hex.chars().take(SHORT_ID_DIGITS).collect(),
        id: hex,
        ..DeviceInfo::default()
    }
}

/// The other devices the drive's sync loop saw, as `devices` lists them.
pub fn others(seen: &[nimbus_fs::SeenDevice]) -> Vec<DeviceInfo> {
    seen.iter()
        .map(|s| DeviceInfo {
            name: s.name.clone(),
            this_device: false,
            last_seen: s.last_change.and_then(unix_secs),
            merged: s.merged,
            ..with_id(s.device)
        })
        .collect()
}

fn unix_secs(t: SystemTime) -> Option<i64> {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .ok()
        .and_then(|d| i64::try_from(d.as_secs()).ok())
}

/// The answer to `devices`: this device first, then the others.
pub fn list(d: &Drive) -> Result<Vec<DeviceInfo>, ApiError> {
    list_with(d, &d.sync_state())
}

/// `list` with the sync loop's state already read (the drive's status).
pub fn list_with(d: &Drive, st: &nimbus_fs::SyncState) -> Result<Vec<DeviceInfo>, ApiError> {
    let vault = vault_of(d)?;
    let mut devices = vec![this_device(d.state_dir(), &vault)?];
    devices.extend(others(&st.devices));
    Ok(devices)
}

/// Renames this device in `vault`; the name as saved.
pub fn rename_in(state: &Path, vault: &ShortId, name: &str) -> Result<String, ApiError> {
    device::rename_device(state, vault, name).map_err(|e| match e {
        DeviceNameError::Empty | DeviceNameError::TooLong { .. } => ApiError::new(ErrorCode::Invalid, e.to_string()),
        DeviceNameError::Save(_) => ApiError::new(ErrorCode::Local, e.to_string()),
    })
}

/// The answer to `rename_device`: what happened, for the person.
pub fn rename(d: &Drive, name: &str) -> Result<String, ApiError> {
    let vault = vault_of(d)?;
    let saved = rename_in(d.state_dir(), &vault, name)?;
    d.set_device_name(&saved);
    Ok(format!(
        "this device is now called `{saved}` in the vault of drive `{}`; the other devices see the name \
         with its next change",
        d.name()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DriveConfig;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn drive(state: &Path, rt: &tokio::runtime::Runtime) -> std::sync::Arc<Drive> {
        let cfg = DriveConfig {
            name: "work".into(),
            store: "memory://".into(),
            ..DriveConfig::default()
        };
        Drive::new(cfg, state.to_path_buf(), rt.handle().clone()).unwrap_or_else(|e| panic!("{e:?}"))
    }

    #[test]
    fn devices_lists_this_device_with_its_id_and_name() {
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let rt = runtime();
        let d = drive(tmp.path(), &rt);
        let vault = ShortId::random();
        d.set_vault_id(vault);
        let id = device::device_id(tmp.path(), &vault).unwrap_or_else(|e| panic!("{e}"));
        let devices = list(&d).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(devices.len(), 1);
        let me = &devices[0];
        assert!(me.this_device);
        assert_eq!(me.id, id.to_hex());
        assert_eq!(me.short_id, id.to_hex()[..7]);
        assert_eq!(me.name, device::default_name());
    }

    #[test]
    fn rename_device_saves_the_name_and_devices_shows_it() {
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let rt = runtime();
        let d = drive(tmp.path(), &rt);
        let vault = ShortId::random();
        d.set_vault_id(vault);
        let msg = rename(&d, "  ann's laptop\n").unwrap_or_else(|e| panic!("{e}"));
        assert!(msg.contains("`ann's laptop`"), "{msg}");
        assert_eq!(device::device_name(tmp.path(), &vault), "ann's laptop");
        let devices = list(&d).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(devices[0].name, "ann's laptop");
    }

    #[test]
    fn a_bad_name_is_refused_and_the_old_one_kept() {
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let rt = runtime();
        let d = drive(tmp.path(), &rt);
        let vault = ShortId::random();
        d.set_vault_id(vault);
        rename(&d, "desk").unwrap_or_else(|e| panic!("{e}"));
        for bad in ["", " \t/ ", &"x".repeat(65)] {
            let e = rename(&d, bad).err().unwrap_or_else(|| panic!("`{bad}` was taken"));
            assert_eq!(e.code, ErrorCode::Invalid, "{}", e.message);
        }
        assert_eq!(device::device_name(tmp.path(), &vault), "desk");
    }

    #[test]
    fn the_other_devices_are_mapped_for_the_api() {
        let a = ShortId([0xab; 16]);
        let b = ShortId([0x01; 16]);
        let seen = [
            nimbus_fs::SeenDevice {
                device: a,
                name: "laptop".into(),
                commit: nimbus_vault::Id([1; 32]),
                last_change: Some(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_765_000_000)),
                merged: true,
            },
            nimbus_fs::SeenDevice {
                device: b,
                name: String::new(),
                commit: nimbus_vault::Id([2; 32]),
                last_change: None,
                merged: false,
            },
        ];
        let got = others(&seen);
        assert_eq!(
            got,
            [
                DeviceInfo {
                    id: "ab".repeat(16),
                    short_id: "abababa".into(),
                    name: "laptop".into(),
                    this_device: false,
                    last_seen: Some(1_765_000_000),
                    merged: true,
                },
                DeviceInfo {
                    id: "01".repeat(16),
                    short_id: "0101010".into(),
                    name: String::new(),
                    this_device: false,
                    last_seen: None,
                    merged: false,
                },
            ]
        );
    }

    #[test]
    fn devices_lists_this_device_first_then_the_others_seen() {
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let rt = runtime();
        let d = drive(tmp.path(), &rt);
        d.set_vault_id(ShortId::random());
        let st = nimbus_fs::SyncState {
            devices: vec![nimbus_fs::SeenDevice {
                device: ShortId([7; 16]),
                name: "desk".into(),
                commit: nimbus_vault::Id([3; 32]),
                last_change: None,
                merged: false,
            }],
            ..nimbus_fs::SyncState::default()
        };
        let devices = list_with(&d, &st).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(devices.len(), 2);
        assert!(devices[0].this_device);
        assert_eq!((devices[1].name.as_str(), devices[1].this_device), ("desk", false));
    }

    #[test]
    fn a_drive_never_opened_says_what_to_do() {
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let rt = runtime();
        let d = drive(tmp.path(), &rt);
        let e = list(&d).err().unwrap_or_else(|| panic!("listed an unopened drive"));
        assert_eq!(e.code, ErrorCode::Invalid);
        assert!(e.message.contains("nimbus mount work"), "{}", e.message);
        let e = rename(&d, "desk")
            .err()
            .unwrap_or_else(|| panic!("renamed in an unopened drive"));
        assert_eq!(e.code, ErrorCode::Invalid);
        assert!(!tmp.path().join("vaults").exists());
    }
}

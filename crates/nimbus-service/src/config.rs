//! The service's config file (TOML): the service's own settings and the
//! drives. No secret is ever written here: passwords and store
//! credentials live in the OS keyring (`nimbus_host::keychain`). Every key is
//! documented in `docs/CONFIGURATION.md`.
//!
//! The file is rewritten whole through a temporary file and a rename, so a
//! crash leaves the old or the new one, never a mix.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub service: ServiceConfig,
    #[serde(rename = "drive")]
    pub drives: Vec<DriveConfig>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServiceConfig {
    /// Minutes without use before a drive locks itself, for drives that do
    /// not set their own; 0 for never.
    pub auto_lock_minutes: u64,
    /// How long stopping the service waits for pending changes to reach the
    /// store before leaving them staged on this device.
    pub shutdown_timeout_secs: u64,
    /// Where the log files go; left out, the platform's usual place.
    pub log_dir: Option<PathBuf>,
    /// Log level: error, warn, info, debug (`NIMBUS_LOG` overrides it).
    pub log_level: String,
    /// Log files kept (one a day).
    pub log_files_kept: usize,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            auto_lock_minutes: 0,
            shutdown_timeout_secs: 60,
            log_dir: None,
            log_level: "info".into(),
            log_files_kept: 7,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DriveConfig {
    pub name: String,
    /// The store's address (never with a password in it).
    pub store: String,
    pub mount: PathBuf,
    pub mount_at_start: bool,
    pub cache_size_mib: u64,
    pub commit_delay_secs: u64,
    /// Seconds between looks for other devices' changes when idle; 0
    /// chooses by the store (docs/SYNC.md §1.3).
    pub poll_interval_secs: u64,
    /// Minutes without use before this drive locks itself; `None` takes the
    /// service's setting, 0 never.
    pub auto_lock_minutes: Option<u64>,
    /// Upload and download limits in bytes per second.
    pub upload_limit: Option<u64>,
    pub download_limit: Option<u64>,
    pub max_requests: usize,
    /// Uploads paused (kept across restarts).
    pub paused: bool,
    /// Let other users of this computer use the drive.
    pub allow_other: bool,
}

impl Default for DriveConfig {
    fn default() -> Self {
        DriveConfig {
            name: String::new(),
            store: String::new(),
            mount: PathBuf::new(),
            mount_at_start: true,
            cache_size_mib: 4096,
            commit_delay_secs: 5,
            poll_interval_secs: 0,
            auto_lock_minutes: None,
            upload_limit: None,
            download_limit: None,
            max_requests: nimbus_backend::DEFAULT_IN_FLIGHT,
            paused: false,
            allow_other: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the config file {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("the config file {0} is not valid: {1}. Fix it (docs/CONFIGURATION.md lists every key) or move it away to start afresh")]
    Parse(PathBuf, String),
    #[error("cannot write the config file {0}: {1}")]
    Write(PathBuf, std::io::Error),
}

/// A config that breaks a rule of its own: what the person wrote, or a
/// change asked for through the API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidConfig {
    #[error("`{0}` cannot be a drive's name: use up to 64 letters, digits, `-`, `_` and `.` (not first)")]
    BadName(String),
    #[error("two drives are named `{0}`")]
    SameName(String),
    #[error("drive `{drive}`: {error}")]
    BadStore { drive: String, error: String },
    #[error("drive `{drive}`: the mount point `{}` must be an absolute path", .mount.display())]
    RelativeMount { drive: String, mount: PathBuf },
    #[error("two drives are mounted at {}", .0.display())]
    SameMount(PathBuf),
    #[error("two drives use the vault at {0}; one drive per vault")]
    SameVault(String),
}

/// The config file's usual place: `nimbusd.toml` in the platform's config
/// folder (`~/.config/nimbus` on Linux, `~/Library/Application
/// Support/nimbus` on macOS, `%APPDATA%\nimbus\config` on Windows).
pub fn default_path() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "nimbus").map(|d| d.config_dir().join("nimbusd.toml"))
}

impl Config {
    /// Where the log files go: `log_dir`, else `logs` in the platform's
    /// state folder, else in the service's state folder.
    pub fn log_dir(&self, state: &Path) -> PathBuf {
        if let Some(d) = &self.service.log_dir {
            return d.clone();
        }
        directories::ProjectDirs::from("", "", "nimbus")
            .and_then(|d| d.state_dir().map(|s| s.join("logs")))
            .unwrap_or_else(|| state.join("logs"))
    }

    /// Reads the file; a missing file is an empty config.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Config::default()),
            Err(e) => return Err(ConfigError::Read(path.to_path_buf(), e)),
        };
        let cfg: Config = toml::from_str(&text).map_err(|e| ConfigError::Parse(path.to_path_buf(), e.to_string()))?;
        cfg.validate()
            .map_err(|e| ConfigError::Parse(path.to_path_buf(), e.to_string()))?;
        Ok(cfg)
    }

    pub fn save(&self, path: &Path) -> Result<(), ConfigError> {
        let w = |e| ConfigError::Write(path.to_path_buf(), e);
        let text = toml::to_string_pretty(self).map_err(|e| w(std::io::Error::other(e)))?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(w)?;
        }
        let tmp = path.with_extension("toml.tmp");
        let body = format!(
            "# The Nimbus service's settings (docs/CONFIGURATION.md). Written by the service;\n\
             # edit it while the service is stopped. Secrets are in the system keyring, never here.\n\n{text}"
        );
        std::fs::write(&tmp, body).map_err(w)?;
        std::fs::rename(&tmp, path).map_err(w)
    }

    pub fn drive(&self, name: &str) -> Option<&DriveConfig> {
        self.drives.iter().find(|d| d.name == name)
    }

    pub fn validate(&self) -> Result<(), InvalidConfig> {
        let mut names = std::collections::BTreeSet::new();
        for d in &self.drives {
            check_name(&d.name)?;
            if !names.insert(&d.name) {
                return Err(InvalidConfig::SameName(d.name.clone()));
            }
            nimbus_backend::StoreUrl::parse(&d.store).map_err(|e| InvalidConfig::BadStore {
                drive: d.name.clone(),
                error: e.to_string(),
            })?;
            if !d.mount.is_absolute() {
                return Err(InvalidConfig::RelativeMount {
                    drive: d.name.clone(),
                    mount: d.mount.clone(),
                });
            }
        }
        let mut mounts = std::collections::BTreeSet::new();
        let mut stores = std::collections::BTreeSet::new();
        for d in &self.drives {
            if !mounts.insert(&d.mount) {
                return Err(InvalidConfig::SameMount(d.mount.clone()));
            }
            // One drive per vault: a vault is mounted once per device.
            let store = nimbus_backend::StoreUrl::parse(&d.store)
                .map(|u| u.to_string())
                .unwrap_or_default();
            if !stores.insert(store) {
                return Err(InvalidConfig::SameVault(d.store.clone()));
            }
        }
        Ok(())
    }
}

/// A drive's name: what people type (`nimbus lock work`), so short and plain.
pub fn check_name(name: &str) -> Result<(), InvalidConfig> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !name.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(InvalidConfig::BadName(name.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_unknown_keys() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("nimbusd.toml");
        assert_eq!(Config::load(&path).ok(), Some(Config::default()));
        let mut c = Config::default();
        c.drives.push(DriveConfig {
            name: "work".into(),
            store: "s3://bucket/nimbus?endpoint=http://127.0.0.1:3900".into(),
            mount: "/home/a/Work".into(),
            upload_limit: Some(500_000),
            ..Default::default()
        });
        c.save(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(Config::load(&path).ok(), Some(c));
        std::fs::write(&path, "[service]\nauto_lock = 5\n").unwrap_or_else(|e| panic!("{e}"));
        let err = Config::load(&path).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("auto_lock"), "{err}");
    }

    #[test]
    fn refuses_bad_drives() {
        let d = |name: &str, mount: &str| DriveConfig {
            name: name.into(),
            store: "/tmp/v".into(),
            mount: mount.into(),
            ..Default::default()
        };
        let bad = [
            vec![d("a b", "/m")],
            vec![d("", "/m")],
            vec![d(".x", "/m")],
            vec![d("a", "relative")],
            vec![d("a", "/m"), d("a", "/n")],
            vec![d("a", "/m"), d("b", "/m")],
        ];
        for drives in bad {
            let c = Config {
                drives,
                ..Default::default()
            };
            assert!(c.validate().is_err(), "{c:?}");
        }
    }
}

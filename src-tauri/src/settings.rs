//! The app's own settings, in `settings.json` in the app's config folder.
//! Only what belongs to the app lives here; a drive's settings (limits,
//! auto-lock) belong to the service and are changed through its API, and
//! start at login is whatever the autostart plugin finds installed.

use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, specta::Type)]
pub struct Settings {
    /// Start Nimbus (in the tray) at login.
    pub start_at_login: bool,
    /// Desktop notifications for errors, conflicts, locks, long outages
    /// and large uploads.
    pub notifications: bool,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            start_at_login: false,
            notifications: true,
        }
    }
}

/// Reads the settings; a missing or unreadable file gives the defaults
/// (and says why in the log), never an error: the app must start.
pub fn load(path: Option<&Path>) -> Settings {
    let Some(path) = path else {
        return Settings::default();
    };
    match std::fs::read(path) {
        Ok(bytes) => from_file(&bytes).unwrap_or_else(|e| {
            tracing::warn!("{}: not valid settings ({e}); using the defaults", path.display());
            Settings::default()
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Settings::default(),
        Err(e) => {
            tracing::warn!("{}: cannot be read ({e}); using the defaults", path.display());
            Settings::default()
        }
    }
}

/// A settings file over the defaults: a field missing from an older file
/// keeps its default. (The type itself has no serde defaults, so the
/// window's TypeScript type has no optional fields.)
fn from_file(bytes: &[u8]) -> serde_json::Result<Settings> {
    let mut merged = serde_json::to_value(Settings::default())?;
    let file: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(bytes)?;
    if let Some(m) = merged.as_object_mut() {
        for (k, v) in file {
            if m.contains_key(&k) {
                m.insert(k, v);
            }
        }
    }
    serde_json::from_value(merged)
}

/// Writes the settings through a temporary file, so a crash leaves the
/// old or the new file, never half of one.
pub fn save(path: &Path, s: &Settings) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(s).map_err(std::io::Error::other)?)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_survive_a_round_trip_and_bad_files() {
        let dir = std::env::temp_dir().join(format!("nimbus-app-settings-{}", std::process::id()));
        let path = dir.join("sub").join("settings.json");
        assert_eq!(load(Some(&path)), Settings::default());
        let s = Settings {
            start_at_login: true,
            notifications: false,
        };
        save(&path, &s).unwrap();
        assert_eq!(load(Some(&path)), s);
        std::fs::write(&path, b"{not json").unwrap();
        assert_eq!(load(Some(&path)), Settings::default());
        // Fields missing from an older file take their defaults.
        std::fs::write(&path, br#"{"start_at_login": true}"#).unwrap();
        assert!(load(Some(&path)).notifications);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! The types the window and the shell exchange: the commands' arguments and
//! answers, the errors, and the events. Plain data with no behaviour beyond
//! conversions, so the commands, the link and the tray can all use them
//! without using each other. Their TypeScript twins in `ui/src/bindings.ts`
//! are generated from here.

use crate::model::{self, ActivityItem, Summary};
use nimbus_api::{ApiError, ErrorCode, Secret, ServiceStatus, StoreSecrets};
use serde::{Deserialize, Serialize};
use specta::Type;
use std::path::PathBuf;

/// An error the window shows: a code it can act on and a message in plain
/// words that says what to do.
#[derive(Debug, Clone, Serialize, Deserialize, Type)]
pub struct UiError {
    pub code: UiErrorCode,
    pub message: String,
}

/// Which error: the service's own code, or one of the shell's. In
/// TypeScript this is the union of the two sets of strings, so the window
/// compares against the generated type, not strings typed by hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(untagged)]
pub enum UiErrorCode {
    /// Found by the shell itself. First, so that reading `no_service` back
    /// does not become the service's `unknown`.
    Shell(ShellErrorCode),
    /// As the service answered it.
    Service(ErrorCode),
}

/// The errors the shell finds without the service's word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "snake_case")]
pub enum ShellErrorCode {
    /// The service could not be reached.
    NoService,
    /// Something on this device (opening a folder, saving the settings).
    Local,
    /// The service answered a code this app does not know (it is newer).
    Unknown,
}

impl UiError {
    /// An error found by the shell on this device.
    pub fn local(message: impl Into<String>) -> UiError {
        UiError {
            code: UiErrorCode::Shell(ShellErrorCode::Local),
            message: message.into(),
        }
    }

    pub fn no_service(message: impl Into<String>) -> UiError {
        UiError {
            code: UiErrorCode::Shell(ShellErrorCode::NoService),
            message: message.into(),
        }
    }
}

impl From<ApiError> for UiError {
    fn from(e: ApiError) -> UiError {
        let code = match e.code {
            ErrorCode::Unknown => UiErrorCode::Shell(ShellErrorCode::Unknown),
            known => UiErrorCode::Service(known),
        };
        UiError {
            code,
            message: e.message,
        }
    }
}

/// Everything the window and the tray show.
#[derive(Debug, Clone, Serialize, Deserialize, Type)]
pub struct AppStatus {
    /// The service's status; `None` while it cannot be reached.
    pub service: Option<ServiceStatus>,
    /// Why the service cannot be reached, in plain words.
    pub connection_error: Option<String>,
    pub summary: Summary,
    /// This app started the service.
    pub started_service: bool,
}

impl AppStatus {
    pub fn connecting() -> AppStatus {
        AppStatus {
            service: None,
            connection_error: None,
            summary: model::summary(None, None),
            started_service: false,
        }
    }

    pub fn new(service: Option<ServiceStatus>, error: Option<String>, started_service: bool) -> AppStatus {
        AppStatus {
            summary: model::summary(service.as_ref(), error.as_deref()),
            service,
            connection_error: error,
            started_service,
        }
    }

    /// The folder of the first mounted drive (the tray's Open drive).
    pub fn first_mounted(&self) -> Option<PathBuf> {
        self.service
            .as_ref()?
            .drives
            .iter()
            .find(|d| d.mounted)
            .map(|d| d.mount.clone())
    }
}

/// Store credentials as the wizard collects them; empty means none. `Debug`
/// shows the secrets as `<secret>`.
#[derive(Debug, Default, Serialize, Deserialize, Type)]
pub struct Credentials {
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<Secret>,
    pub password: Option<Secret>,
}

impl Credentials {
    pub fn into_api(self) -> Option<StoreSecrets> {
        let secret = |s: Option<Secret>| s.filter(|s| !s.expose().is_empty());
        let s = StoreSecrets {
            access_key_id: self.access_key_id.filter(|s| !s.is_empty()),
            secret_access_key: secret(self.secret_access_key),
            password: secret(self.password),
        };
        let none = s.access_key_id.is_none() && s.secret_access_key.is_none() && s.password.is_none();
        (!none).then_some(s)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, Type)]
pub struct StoreCheck {
    /// The store holds a Nimbus vault already.
    pub vault: bool,
    pub message: String,
}

/// The wizard's last step. `Debug` shows the secrets as `<secret>`.
#[derive(Debug, Serialize, Deserialize, Type)]
pub struct DriveForm {
    pub name: String,
    pub store: String,
    pub mount: String,
    pub password: Secret,
    pub credentials: Credentials,
    /// Keep the vault password in the keyring, so the drive mounts at start.
    pub remember: bool,
    /// Create a new vault (else open the one in the store).
    pub create: bool,
    pub cache_size_mib: Option<u64>,
    /// Folders (inside the drive) to keep on this device.
    pub offline: Vec<String>,
}

/// `Debug` shows the recovery key as `<secret>`.
#[derive(Debug, Serialize, Deserialize, Type)]
pub struct Added {
    pub message: String,
    /// The new vault's recovery key, to be shown once; the service keeps no
    /// copy, and neither does the app.
    pub recovery_key: Option<Secret>,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Type)]
pub struct Restored {
    pub to: String,
    pub files: u64,
    pub bytes: u64,
}

/// How guessable a new vault password is (zxcvbn).
#[derive(Debug, Clone, Serialize, Deserialize, Type)]
pub struct Strength {
    /// 0 (guessed at once) to 4 (very strong).
    pub score: u8,
    pub warning: Option<String>,
    pub suggestions: Vec<String>,
    /// How long an offline attack on a slow hash would take, in words.
    pub crack_time: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "snake_case")]
pub enum Page {
    Drives,
    Add,
    Activity,
    Snapshots,
    Settings,
}

/// The service's status changed (or the connection to it).
#[derive(Debug, Clone, Serialize, Deserialize, Type, tauri_specta::Event)]
pub struct StatusChanged(pub AppStatus);

/// A new line for the Activity page.
#[derive(Debug, Clone, Serialize, Deserialize, Type, tauri_specta::Event)]
pub struct ActivityAdded(pub ActivityItem);

/// The tray asks the window to show a page.
#[derive(Debug, Clone, Serialize, Deserialize, Type, tauri_specta::Event)]
pub struct Navigate {
    pub page: Page,
}

/// Quit was chosen while changes are not in the cloud yet: the window asks.
#[derive(Debug, Clone, Serialize, Deserialize, Type, tauri_specta::Event)]
pub struct QuitRequested {
    pub warning: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_left_empty_are_none() {
        assert!(Credentials::default().into_api().is_none());
        let c = Credentials {
            access_key_id: Some("GK1".into()),
            secret_access_key: Some(Secret::new("")),
            password: None,
        };
        let s = c.into_api().unwrap();
        assert_eq!(s.access_key_id.as_deref(), Some("GK1"));
        assert!(s.secret_access_key.is_none());
    }

    #[test]
    fn api_errors_keep_their_code() {
        let e: UiError = ApiError::new(ErrorCode::WrongPassword, "wrong password").into();
        assert_eq!(e.code, UiErrorCode::Service(ErrorCode::WrongPassword));
        assert_eq!(e.message, "wrong password");
    }

    /// The window reads the codes as plain strings: the service's as the
    /// service spells them, the shell's in the same style.
    #[test]
    fn error_codes_are_plain_strings() {
        let code = |e: UiError| serde_json::to_value(e).unwrap()["code"].clone();
        let e: UiError = ApiError::new(ErrorCode::DriveExists, "taken").into();
        assert_eq!(code(e), "drive_exists");
        assert_eq!(code(UiError::local("no")), "local");
        assert_eq!(code(UiError::no_service("down")), "no_service");
        let newer: UiError = ApiError::new(ErrorCode::Unknown, "?").into();
        assert_eq!(code(newer), "unknown");
        let back: UiErrorCode = serde_json::from_str("\"no_service\"").unwrap();
        assert_eq!(back, UiErrorCode::Shell(ShellErrorCode::NoService));
    }

    /// A form printed by mistake shows no password or key.
    #[test]
    fn secrets_are_not_printed() {
        let form = DriveForm {
            name: "Work".into(),
            store: "s3://b".into(),
            mount: "/m".into(),
            password: Secret::new("hunter2-vault"),
            credentials: Credentials {
                access_key_id: Some("GK1".into()),
                secret_access_key: Some(Secret::new("hunter2-key")),
                password: Some(Secret::new("hunter2-store")),
            },
            remember: true,
            create: true,
            cache_size_mib: None,
            offline: vec![],
        };
        let added = Added {
            message: "ok".into(),
            recovery_key: Some(Secret::new("hunter2-recovery")),
            warnings: vec![],
        };
        let shown = format!("{form:?} {added:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}

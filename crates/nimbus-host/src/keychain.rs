//! The OS keyring (`keyring` crate): the Secret Service on Linux (GNOME
//! Keyring, KWallet), the Keychain on macOS, the Credential Manager on
//! Windows. Two kinds of entries:
//!
//! - service `nimbus-store`, account = the store's address: its
//!   credentials, as one line (`s3 <key id> <secret>` or `password <pw>`);
//! - service `nimbus-vault`, account = the store's address: the vault
//!   password, only when the person asked to be remembered.
//!
//! Nothing here ever writes a secret anywhere else. A missing keyring is
//! reported as [`KeyringError::Unavailable`] so callers can say so in plain
//! words and fall back to asking.

use nimbus_backend::{S3Keys, StoreCredentials, StoreUrl};
use zeroize::Zeroizing;

/// The keyring's service name for store credentials.
pub const STORE_SERVICE: &str = "nimbus-store";
/// The keyring's service name for remembered vault passwords.
pub const VAULT_SERVICE: &str = "nimbus-vault";

#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    #[error(
        "the system keyring is not available (on Linux: no Secret Service such as GNOME Keyring or \
         KWallet is running, or it is locked): {0}"
    )]
    Unavailable(String),
    #[error("the system keyring refused: {0}")]
    Refused(String),
    #[error("the credentials saved in the keyring for {0} are not readable; save them again")]
    Unreadable(String),
}

fn classify(e: keyring::Error) -> KeyringError {
    match e {
        keyring::Error::NoStorageAccess(_) | keyring::Error::PlatformFailure(_) => {
            KeyringError::Unavailable(e.to_string())
        }
        other => KeyringError::Refused(other.to_string()),
    }
}

fn entry(service: &str, account: &str) -> Result<keyring::Entry, KeyringError> {
    keyring::Entry::new(service, account).map_err(classify)
}

/// The secret saved under `service`/`account`, if any.
pub fn get(service: &str, account: &str) -> Result<Option<Zeroizing<String>>, KeyringError> {
    match entry(service, account)?.get_password() {
        Ok(s) => Ok(Some(Zeroizing::new(s))),
        Err(keyring::Error::NoEntry) => Ok(None),
        Err(e) => Err(classify(e)),
    }
}

pub fn set(service: &str, account: &str, secret: &str) -> Result<(), KeyringError> {
    entry(service, account)?.set_password(secret).map_err(classify)
}

/// Deletes an entry; true when there was one.
pub fn delete(service: &str, account: &str) -> Result<bool, KeyringError> {
    match entry(service, account)?.delete_credential() {
        Ok(()) => Ok(true),
        Err(keyring::Error::NoEntry) => Ok(false),
        Err(e) => Err(classify(e)),
    }
}

/// A store's credentials as the one line the keyring keeps.
pub fn store_text(c: &StoreCredentials) -> Option<Zeroizing<String>> {
    if let Some(k) = &c.s3 {
        return Some(Zeroizing::new(format!(
            "s3 {} {}",
            k.access_key_id,
            k.secret_access_key.as_str()
        )));
    }
    c.password
        .as_ref()
        .map(|p| Zeroizing::new(format!("password {}", p.as_str())))
}

/// The credentials in a line written by [`store_text`].
pub fn parse_store_text(url: &StoreUrl, saved: &str) -> Result<StoreCredentials, KeyringError> {
    if let Some(rest) = saved.strip_prefix("s3 ") {
        if let Some((id, secret)) = rest.split_once(' ') {
            return Ok(StoreCredentials {
                s3: Some(S3Keys {
                    access_key_id: id.to_string(),
                    secret_access_key: Zeroizing::new(secret.to_string()),
                }),
                password: None,
            });
        }
    }
    if let Some(pw) = saved.strip_prefix("password ") {
        return Ok(StoreCredentials {
            s3: None,
            password: Some(Zeroizing::new(pw.to_string())),
        });
    }
    Err(KeyringError::Unreadable(url.to_string()))
}

/// A store's saved credentials. A missing keyring counts as nothing saved.
pub fn store_get(url: &StoreUrl) -> Result<Option<StoreCredentials>, KeyringError> {
    match get(STORE_SERVICE, &url.to_string()) {
        Ok(Some(t)) => parse_store_text(url, &t).map(Some),
        Ok(None) | Err(KeyringError::Unavailable(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

pub fn store_set(url: &StoreUrl, c: &StoreCredentials) -> Result<(), KeyringError> {
    match store_text(c) {
        Some(t) => set(STORE_SERVICE, &url.to_string(), &t),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_text_round_trips() {
        let url = StoreUrl::parse("webdav://a@127.0.0.1/x").unwrap_or_else(|e| panic!("{e}"));
        let c = StoreCredentials {
            s3: Some(S3Keys {
                access_key_id: "GK1".into(),
                secret_access_key: Zeroizing::new("sec ret".into()),
            }),
            password: None,
        };
        let t = store_text(&c).unwrap_or_else(|| panic!("no text"));
        let back = parse_store_text(&url, &t).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back.s3.map(|k| k.secret_access_key.to_string()), Some("sec ret".into()));
        assert!(parse_store_text(&url, "garbage").is_err());
    }
}

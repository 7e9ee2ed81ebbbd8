//! Finding the credentials of a store on another machine, and keeping them
//! in the OS keyring when asked (`nimbus login`).
//!
//! Order, first found wins:
//! - S3: `AWS_ACCESS_KEY_ID` + `AWS_SECRET_ACCESS_KEY` (with
//!   `AWS_SESSION_TOKEN` if set, read by the signer itself); else an AWS
//!   profile (`?profile=` in the address, `AWS_PROFILE`, or a
//!   `~/.aws/credentials` file), read by the signer itself; else the keyring;
//!   else a prompt.
//! - WebDAV: `NIMBUS_STORE_PASSWORD`; else the keyring; else a prompt.
//! - SFTP: nothing here: the person's SSH keys and agent, through `ssh`.
//!
//! A secret is never put on a command line, in a config file or in a log.
//! Keyring entries are named by the store's address, which holds no secret.

use anyhow::{bail, Context, Result};
use nimbus_backend::{S3Keys, StoreAccess, StoreCredentials, StoreUrl};
use nimbus_host::keychain::{self, KeyringError};
use std::io::IsTerminal;
use zeroize::Zeroizing;

/// What to do when nothing was found in the environment or the keyring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ask {
    /// Ask on the terminal, if there is one.
    IfTerminal,
    /// Never ask (a background process).
    #[cfg_attr(not(unix), allow(dead_code))]
    Never,
}

/// The credentials for `url`, and default limits.
pub fn access(url: &StoreUrl, ask: Ask) -> Result<StoreAccess> {
    Ok(StoreAccess {
        credentials: find(url, ask)?,
        limits: None,
    })
}

pub fn find(url: &StoreUrl, ask: Ask) -> Result<StoreCredentials> {
    match url {
        StoreUrl::S3(loc) => {
            if env_set("AWS_ACCESS_KEY_ID") && env_set("AWS_SECRET_ACCESS_KEY") {
                // The signer reads them, with AWS_SESSION_TOKEN when set.
                return Ok(StoreCredentials::default());
            }
            if loc.profile.is_some() || env_set("AWS_PROFILE") || aws_credentials_file() {
                return Ok(StoreCredentials::default());
            }
            if let Some(saved) = keyring_get(url)? {
                return parse_saved(url, &saved);
            }
            if ask == Ask::IfTerminal && std::io::stdin().is_terminal() {
                return prompt_s3(url);
            }
            bail!(
                "no credentials for {url}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or \
                 AWS_PROFILE), or save them once with `nimbus login {url}`"
            )
        }
        StoreUrl::WebDav(loc) if loc.user.is_some() => {
            if let Ok(pw) = std::env::var("NIMBUS_STORE_PASSWORD") {
                return Ok(password(pw));
            }
            if let Some(saved) = keyring_get(url)? {
                return parse_saved(url, &saved);
            }
            if ask == Ask::IfTerminal && std::io::stdin().is_terminal() {
                return prompt_password(url);
            }
            bail!(
                "the WebDAV server of {url} needs a password: set NIMBUS_STORE_PASSWORD, or save \
                 it once with `nimbus login {url}`"
            )
        }
        _ => Ok(StoreCredentials::default()),
    }
}

/// Asks for the credentials of `url` (or takes them from the environment),
/// for `nimbus login`, which checks and saves them.
pub fn ask_new(url: &StoreUrl) -> Result<StoreCredentials> {
    match url {
        StoreUrl::S3(_) => {
            if env_set("AWS_ACCESS_KEY_ID") && env_set("AWS_SECRET_ACCESS_KEY") {
                return Ok(StoreCredentials {
                    s3: Some(S3Keys {
                        access_key_id: std::env::var("AWS_ACCESS_KEY_ID").unwrap_or_default(),
                        secret_access_key: Zeroizing::new(std::env::var("AWS_SECRET_ACCESS_KEY").unwrap_or_default()),
                    }),
                    password: None,
                });
            }
            need_terminal(url)?;
            prompt_s3(url)
        }
        StoreUrl::WebDav(loc) if loc.user.is_some() => {
            if let Ok(pw) = std::env::var("NIMBUS_STORE_PASSWORD") {
                return Ok(password(pw));
            }
            need_terminal(url)?;
            prompt_password(url)
        }
        StoreUrl::WebDav(_) => bail!(
            "{url} names no user, so there is no password to save; write the user into the \
             address: webdav://user@host/folder"
        ),
        StoreUrl::Sftp(_) => bail!(
            "SFTP stores log in with your SSH keys or agent, not a saved password: check that \
             `ssh` to that host works without asking"
        ),
        _ => bail!("{url} is on this device and needs no credentials"),
    }
}

fn need_terminal(url: &StoreUrl) -> Result<()> {
    if !std::io::stdin().is_terminal() {
        bail!(
            "no terminal to ask for the credentials of {url} in: set them in the environment \
             (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or NIMBUS_STORE_PASSWORD)"
        );
    }
    Ok(())
}

fn prompt_s3(url: &StoreUrl) -> Result<StoreCredentials> {
    eprint!("Access key ID for {url}: ");
    let mut id = String::new();
    std::io::stdin()
        .read_line(&mut id)
        .context("could not read the access key ID")?;
    let secret =
        Zeroizing::new(rpassword::prompt_password("Secret access key: ").context("could not read the secret key")?);
    let id = id.trim().to_string();
    if id.is_empty() || secret.is_empty() {
        bail!("an access key ID and a secret key are both needed");
    }
    Ok(StoreCredentials {
        s3: Some(S3Keys {
            access_key_id: id,
            secret_access_key: secret,
        }),
        password: None,
    })
}

fn prompt_password(url: &StoreUrl) -> Result<StoreCredentials> {
    let pw = rpassword::prompt_password(format!("Password for {url}: ")).context("could not read the password")?;
    Ok(password(pw))
}

fn password(pw: String) -> StoreCredentials {
    StoreCredentials {
        s3: None,
        password: Some(Zeroizing::new(pw)),
    }
}

fn env_set(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|v| !v.is_empty())
}

fn aws_credentials_file() -> bool {
    if let Some(p) = std::env::var_os("AWS_SHARED_CREDENTIALS_FILE") {
        return std::path::Path::new(&p).is_file();
    }
    directories::BaseDirs::new().is_some_and(|d| d.home_dir().join(".aws/credentials").is_file())
}

/// The saved text: one line, so one keyring entry holds a store's whole
/// credential (see `nimbus_host::keychain`).
pub fn saved_text(c: &StoreCredentials) -> Option<Zeroizing<String>> {
    keychain::store_text(c)
}

pub fn parse_saved(url: &StoreUrl, saved: &str) -> Result<StoreCredentials> {
    keychain::parse_store_text(url, saved)
        .map_err(|_| anyhow::anyhow!("the credentials saved in the keyring for {url} are not readable; save them again with `nimbus login {url}`"))
}

/// What the keyring holds for `url`. A missing keyring (no Secret Service
/// on this desktop) is the same as nothing saved: the caller then asks, or
/// says where else credentials can come from.
pub fn keyring_get(url: &StoreUrl) -> Result<Option<Zeroizing<String>>> {
    match keychain::get(keychain::STORE_SERVICE, &url.to_string()) {
        Ok(v) => Ok(v),
        Err(KeyringError::Unavailable(_)) => Ok(None),
        Err(e) => Err(keyring_error(url, e)),
    }
}

pub fn keyring_set(url: &StoreUrl, text: &str) -> Result<()> {
    keychain::set(keychain::STORE_SERVICE, &url.to_string(), text).map_err(|e| keyring_error(url, e))
}

/// Deletes the saved credentials; true when there were some.
pub fn keyring_delete(url: &StoreUrl) -> Result<bool> {
    keychain::delete(keychain::STORE_SERVICE, &url.to_string()).map_err(|e| keyring_error(url, e))
}

fn keyring_error(url: &StoreUrl, e: KeyringError) -> anyhow::Error {
    let hint = if matches!(e, KeyringError::Unavailable(_)) {
        "; use the environment variables instead"
    } else {
        ""
    };
    anyhow::anyhow!("keyring, for {url}: {e}{hint}")
}

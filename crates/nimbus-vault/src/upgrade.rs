//! Upgrading a vault to the current format version, in place.
//!
//! Only `config` changes between versions: 1 → 2 authenticates the key
//! slots and sets a cost floor, 2 → 3 and 3 → 4 change only its version
//! number (version 3 commits, and version 4 refs and prune's objects, are
//! written from then on). Packs, indexes, trees, commits and refs stay as
//! they are, the new version still reads them, and what is written after
//! the upgrade uses the new layouts. So an upgrade, from any older version
//! straight to the current one, is one rewrite of one object: a crash
//! leaves the old `config` or the new one. It is never done behind the
//! person's back: an older Nimbus cannot open the vault afterwards, so the
//! caller asks first.

use bytes::Bytes;
use nimbus_backend::DynBackend;

use crate::config::{Config, FORMAT_VERSION};
use crate::error::{Result, VaultError};
use crate::vault::read_config;

/// What [`upgrade`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upgraded {
    /// The vault was already at this build's format version.
    AlreadyCurrent { version: u64 },
    /// `config` was rewritten from `from` to `to`.
    Done { from: u64, to: u64 },
}

/// Whether the vault behind `config` is older than what this build writes.
pub fn needs_upgrade(config: &Config) -> bool {
    config.version() < FORMAT_VERSION
}

/// Upgrades the vault on `backend` to [`FORMAT_VERSION`], proving the right
/// to do so with its password (the new password slot is made from it, at a
/// cost never lower than the old one's).
pub async fn upgrade(backend: &DynBackend, password: &[u8]) -> Result<Upgraded> {
    let config = read_config(backend).await?;
    let from = config.version();
    if !needs_upgrade(&config) {
        return Ok(Upgraded::AlreadyCurrent { version: from });
    }
    let password = zeroize::Zeroizing::new(password.to_vec());
    // Two Argon2 evaluations: keep them off the async threads.
    let new = tokio::task::spawn_blocking(move || {
        let master = config.unlock_with_password(&password)?;
        config.upgraded(&master, &password)
    })
    .await
    .map_err(|e| VaultError::invalid_input(format!("the upgrade was interrupted: {e}")))??;
    crate::vault::put(backend, crate::config::CONFIG_KEY, Bytes::from(new.encode())).await?;
    Ok(Upgraded::Done {
        from,
        to: new.version(),
    })
}

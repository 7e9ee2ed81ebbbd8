//! Naming and opening the store a vault lives in.

use anyhow::{Context, Result};
use nimbus_backend::{DynBackend, StoreUrl};
use nimbus_vault::Vault;

use crate::{credentials, secrets, GlobalArgs};

/// The store named by `--store` or `NIMBUS_STORE`.
pub fn store_url(g: &GlobalArgs) -> Result<StoreUrl> {
    let Some(s) = g.store.as_deref() else {
        anyhow::bail!(
            "which vault? Name its store with --store <folder or URL> or the NIMBUS_STORE environment variable"
        );
    };
    Ok(StoreUrl::parse(s)?)
}

/// Opens the store, with its credentials from the environment, the
/// keyring or a prompt (see `credentials.rs`).
pub fn open_backend(g: &GlobalArgs) -> Result<DynBackend> {
    let url = store_url(g)?;
    let access = credentials::access(&url, credentials::Ask::IfTerminal)?;
    Ok(nimbus_backend::open_store_with(&url, &access)?)
}

/// Opens the vault with the password from file, environment or prompt, and
/// refuses a store whose refs went back in time since this device last
/// looked (see `Vault::check_rollback`).
pub async fn open_vault(g: &GlobalArgs) -> Result<Vault> {
    let vault = open_vault_unchecked(g).await?;
    check_rollback(g, vault).await
}

/// [`open_vault`] on a store already opened, with a password already read.
#[cfg_attr(not(unix), allow(dead_code))]
pub async fn open_vault_with(g: &GlobalArgs, backend: DynBackend, pw: &str) -> Result<Vault> {
    nimbus_vault::read_config(&backend).await?;
    let vault = Vault::open(backend, pw.as_bytes())
        .await
        .context("could not open the vault")?;
    check_rollback(g, vault).await
}

async fn check_rollback(g: &GlobalArgs, vault: Vault) -> Result<Vault> {
    let id = vault.config().vault_id;
    let refs = vault.read_refs().await?;
    let seen = crate::device::load_seen(g, &id)?;
    let updated = Vault::check_rollback(&refs, &seen)?;
    if updated != seen {
        crate::device::save_seen(g, &id, &updated)?;
    }
    Ok(vault)
}

/// Opens the vault without the rollback check (for `check`, which reports
/// every problem instead of stopping at the first).
pub async fn open_vault_unchecked(g: &GlobalArgs) -> Result<Vault> {
    let backend = open_backend(g)?;
    // Say "no vault" before asking for a password that cannot help.
    nimbus_vault::read_config(&backend).await?;
    let pw = secrets::password(g.password_file.as_deref())?;
    let vault = Vault::open(backend, pw.as_bytes())
        .await
        .context("could not open the vault")?;
    for (key, why) in vault.damaged_indexes() {
        eprintln!(
            "warning: index object `{key}` is damaged ({why}); blobs it lists cannot be read. Run `nimbus check`."
        );
    }
    if nimbus_vault::upgrade::needs_upgrade(vault.config()) && !g.quiet {
        eprintln!(
            "note: this vault uses format version {}; `nimbus upgrade` moves it to version {} (authenticated key slots, padded packs).",
            vault.config().version(),
            nimbus_vault::config::FORMAT_VERSION
        );
    }
    Ok(vault)
}

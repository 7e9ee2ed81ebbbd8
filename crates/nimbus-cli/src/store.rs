//! Naming and opening the store a vault lives in.

use anyhow::{Context, Result};
use nimbus_backend::{DynBackend, StoreUrl};
use nimbus_vault::Vault;

use crate::{secrets, GlobalArgs};

/// The store named by `--store` or `NIMBUS_STORE`.
pub fn store_url(g: &GlobalArgs) -> Result<StoreUrl> {
    let Some(s) = g.store.as_deref() else {
        anyhow::bail!("which vault? Name its store with --store <folder or URL> or the NIMBUS_STORE environment variable");
    };
    Ok(StoreUrl::parse(s)?)
}

pub fn open_backend(g: &GlobalArgs) -> Result<DynBackend> {
    let url = store_url(g)?;
    Ok(nimbus_backend::open_store(&url)?)
}

/// Opens the vault with the password from file, environment or prompt.
pub async fn open_vault(g: &GlobalArgs) -> Result<Vault> {
    let backend = open_backend(g)?;
    // Say "no vault" before asking for a password that cannot help.
    nimbus_vault::read_config(&backend).await?;
    let pw = secrets::password(g.password_file.as_deref())?;
    let vault = Vault::open(backend, pw.as_bytes()).await.context("could not open the vault")?;
    for (key, why) in vault.damaged_indexes() {
        eprintln!("warning: index object `{key}` is damaged ({why}); blobs it lists cannot be read. Run `nimbus check`.");
    }
    Ok(vault)
}

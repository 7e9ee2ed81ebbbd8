//! Naming and opening the store a vault lives in.

use anyhow::{Context, Result};
use nimbus_backend::{DynBackend, StoreUrl};
use nimbus_vault::Vault;

use crate::args::GlobalArgs;
use crate::{credentials, secrets};

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

/// [`open_vault`] on a store already opened, with a password already read
/// (for tests that hand in a faulty store; `nimbus mount` opens its vault
/// with `nimbus_host::open_drive`).
#[cfg(test)]
pub async fn open_vault_with(g: &GlobalArgs, backend: DynBackend, pw: &str) -> Result<Vault> {
    nimbus_vault::read_config(&backend).await?;
    let vault = Vault::open(backend, pw.as_bytes())
        .await
        .context("could not open the vault")?;
    check_rollback(g, vault).await
}

/// The rollback check of `nimbus_host::device::check_rollback`: every
/// later read of the refs (the head, the check before publishing) is held
/// to this device's memory of them.
async fn check_rollback(g: &GlobalArgs, vault: Vault) -> Result<Vault> {
    nimbus_host::device::check_rollback(&vault, &crate::device::state_dir(g)?).await?;
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
    nimbus_host::prune_env::apply(&vault);
    for (key, why) in vault.damaged_indexes() {
        eprintln!(
            "warning: index object `{key}` is damaged ({why}); blobs it lists cannot be read. Run `nimbus check`."
        );
    }
    if nimbus_vault::upgrade::needs_upgrade(vault.config()) && !g.quiet {
        eprintln!(
            "note: this vault uses format version {}; `nimbus upgrade` moves it to version {} ({}).",
            vault.config().version(),
            nimbus_vault::config::FORMAT_VERSION,
            crate::cmd_upgrade::what_changes(vault.config().version())
        );
    }
    Ok(vault)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use nimbus_backend::{Backend, FaultConfig, FaultyBackend, MemoryBackend};
    use nimbus_vault::{BlobKind, KdfParams, NewCommit, Saver, Timestamp, Tree, VaultParams};
    use std::sync::Arc;

    /// Review H1 through the CLI's own path (`ls`, `get` and `put` open the
    /// vault this way, then pick the head with `at::resolve`): an old ref
    /// served only to the second read is refused, never shown.
    #[test]
    fn an_old_ref_on_the_second_read_is_refused() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let mem = Arc::new(MemoryBackend::new());
            let kdf = KdfParams::minimum();
            let (vault, _) = Vault::create(mem.clone(), b"pw", VaultParams::default(), kdf)
                .await
                .unwrap();
            let saver = Saver::new(&vault);
            let root = saver.save_blob(BlobKind::Tree, Tree::default().encode()).await.unwrap();
            saver.finish().await.unwrap();
            let device = nimbus_vault::DeviceId::random();
            let key = format!("refs/{}", device.to_hex());
            let mut old_ref = None;
            let mut parents = vec![];
            for message in ["old", "newer"] {
                let c = NewCommit {
                    root,
                    parents: parents.clone(),
                    device,
                    device_name: String::new(),
                    time: Timestamp::now(),
                    message: message.into(),
                    files: 0,
                    bytes: 0,
                    indexes: vec![],
                };
                let (id, _) = vault.write_commit(c).await.unwrap();
                vault.write_ref(&device, id, 0).await.unwrap();
                parents = vec![id];
                old_ref.get_or_insert(mem.get(&key, None).await.unwrap());
            }

            let state = tempfile::tempdir().unwrap();
            let g = GlobalArgs {
                store: None,
                password_file: None,
                state_dir: Some(state.path().to_path_buf()),
                quiet: true,
            };
            let faulty = Arc::new(FaultyBackend::new(mem.clone() as DynBackend, FaultConfig::default()));
            faulty.replay_on_get(&key, 2, old_ref.unwrap());
            let vault = open_vault_with(&g, faulty.clone(), "pw").await.unwrap();
            match crate::at::resolve(&vault, None).await {
                Ok((_, c)) => panic!("showed the `{}` snapshot from the replayed ref", c.message),
                Err(e) => assert!(e.to_string().contains("went back in time"), "{e}"),
            }
            assert_eq!(crate::at::resolve(&vault, None).await.unwrap().1.message, "newer");
        });
    }
}

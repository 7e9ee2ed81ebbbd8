//! `nimbus init <store>`: create a vault.

use anyhow::Result;
use nimbus_vault::{KdfParams, Vault, VaultParams};
use std::process::ExitCode;

use crate::args::GlobalArgs;
use crate::secrets;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Where to create the vault: a folder path (created if missing), file:///path,
    /// s3://bucket/folder[?endpoint=URL&region=R], webdav(s)://user@host/folder or
    /// sftp://user@host/folder.
    pub store: String,
    /// Memory for the password hash (Argon2id), in KiB. Lower it only on very small devices;
    /// at least 19456 (19 MiB), at most 1048576 (1 GiB).
    #[arg(long, default_value_t = KdfParams::default().memory_kib, help_heading = "Advanced")]
    pub kdf_memory_kib: u32,
    /// Passes of the password hash: at least 2, at most 16.
    #[arg(long, default_value_t = KdfParams::default().iterations, help_heading = "Advanced")]
    pub kdf_iterations: u32,
    /// Target pack size in MiB.
    #[arg(long, default_value_t = 16, help_heading = "Advanced")]
    pub pack_size_mib: u32,
}

pub async fn run(g: &GlobalArgs, a: Args) -> Result<ExitCode> {
    let url = nimbus_backend::StoreUrl::parse(&a.store)?;
    let access = crate::credentials::access(&url, crate::credentials::Ask::IfTerminal)?;
    let backend = nimbus_backend::create_store_with(&url, &access)?;
    let kdf = KdfParams {
        memory_kib: a.kdf_memory_kib,
        iterations: a.kdf_iterations,
        ..KdfParams::default()
    };
    // Before asking for a password: a cost below the floor is refused.
    kdf.validate_new()?;
    let params = VaultParams {
        pack_target_size: a.pack_size_mib.saturating_mul(1 << 20),
        ..VaultParams::default()
    };
    params.validate()?;
    // Refuse before asking for a password if a vault is already there.
    if backend.stat(nimbus_vault::config::CONFIG_KEY).await?.is_some() {
        return Err(nimbus_vault::VaultError::AlreadyExists {
            store: backend.describe(),
        }
        .into());
    }
    let pw = secrets::new_password(g.password_file.as_deref(), "NIMBUS_PASSWORD")?;
    let (vault, recovery) = Vault::create(backend.clone(), pw.as_bytes(), params, kdf).await?;
    let text = recovery.display_text();
    println!("Created a vault in {}.", backend.describe());
    println!("Vault id: {}", vault.config().vault_id);
    println!();
    println!("Recovery key (shown only this once; write it down and keep it apart from this computer):");
    println!();
    println!("    {}", text.as_str());
    println!();
    println!("With it you can set a new password if you forget yours: nimbus passwd --recovery");
    Ok(ExitCode::SUCCESS)
}

//! `nimbus passwd`: change the vault password. Only the `config` object is
//! rewritten; the recovery key keeps working.

use anyhow::{Context, Result};
use nimbus_vault::{RecoveryKey, Unlock, Vault};
use std::path::PathBuf;
use std::process::ExitCode;

use crate::args::GlobalArgs;
use crate::{secrets, store};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Prove who you are with the recovery key instead of the old password.
    #[arg(long)]
    pub recovery: bool,
    /// Read the recovery key from this file (else NIMBUS_RECOVERY_KEY, else a prompt).
    #[arg(long, value_name = "FILE")]
    pub recovery_key_file: Option<PathBuf>,
    /// Read the new password from this file (else NIMBUS_NEW_PASSWORD, else a prompt).
    #[arg(long, value_name = "FILE")]
    pub new_password_file: Option<PathBuf>,
}

pub async fn run(g: &GlobalArgs, a: Args) -> Result<ExitCode> {
    let backend = store::open_backend(g)?;
    nimbus_vault::read_config(&backend).await?;
    let (vault, how) = if a.recovery || a.recovery_key_file.is_some() {
        let text = secrets::recovery_key(a.recovery_key_file.as_deref())?;
        let rk = RecoveryKey::parse(&text)?;
        let vault = Vault::open_with_recovery(backend, &rk)
            .await
            .context("could not open the vault")?;
        (vault, Unlock::Recovery(RecoveryKey::parse(&text)?))
    } else {
        let pw = secrets::password(g.password_file.as_deref())?;
        let vault = Vault::open(backend, pw.as_bytes())
            .await
            .context("could not open the vault")?;
        (vault, Unlock::Password(pw.as_bytes().to_vec()))
    };
    let new_pw = secrets::new_password(a.new_password_file.as_deref(), "NIMBUS_NEW_PASSWORD")?;
    vault.change_password(how, new_pw.as_bytes()).await?;
    println!("Password changed. The old password no longer opens the vault; the recovery key still does.");
    Ok(ExitCode::SUCCESS)
}

//! `nimbus upgrade`: move a vault to the current format version, only after
//! the person says yes (an older Nimbus cannot open it afterwards).

use anyhow::{bail, Context, Result};
use nimbus_vault::config::FORMAT_VERSION;
use nimbus_vault::upgrade::{needs_upgrade, upgrade, Upgraded};
use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use crate::args::GlobalArgs;
use crate::{secrets, store};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Upgrade without asking (for scripts, once the person has agreed).
    #[arg(long)]
    pub yes: bool,
}

pub async fn run(g: &GlobalArgs, a: Args) -> Result<ExitCode> {
    let backend = store::open_backend(g)?;
    let config = nimbus_vault::read_config(&backend).await?;
    if !needs_upgrade(&config) {
        println!(
            "This vault already uses format version {}; there is nothing to upgrade.",
            config.version()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let pw = secrets::password(g.password_file.as_deref())?;
    if !a.yes && !confirm(config.version())? {
        println!("Nothing was changed.");
        return Ok(ExitCode::SUCCESS);
    }
    match upgrade(&backend, pw.as_bytes())
        .await
        .context("could not upgrade the vault")?
    {
        Upgraded::Done { from, to } => println!(
            "Upgraded the vault from format version {from} to {to}. Only its `config` was rewritten; the recovery key still works."
        ),
        Upgraded::AlreadyCurrent { version } => {
            println!("This vault already uses format version {version}; there is nothing to upgrade.")
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What an upgrade from format version `from` brings, for people.
pub fn what_changes(from: u64) -> &'static str {
    if from < 2 {
        "authenticated key slots, padded packs, snapshots that name the device that made them, and prune, which gives space back while every device keeps working"
    } else if from < 3 {
        "snapshots that name the device that made them, so devices sharing the vault can show who changed what, and prune, which gives space back while every device keeps working"
    } else {
        "prune, which gives space back (old snapshots and data nothing uses) while every device keeps working"
    }
}

fn confirm(from: u64) -> Result<bool> {
    println!(
        "This vault uses format version {from}. Upgrading it to version {FORMAT_VERSION} rewrites its `config` \
         object and nothing else; what is saved from then on uses the new format: {}. \
         Nimbus releases that only know version {from} will then refuse to open it (they say to update Nimbus), \
         so update Nimbus on every device that uses this vault first.",
        what_changes(from)
    );
    if !std::io::stdin().is_terminal() {
        bail!("the upgrade needs a yes, and there is no terminal to ask in: run `nimbus upgrade --yes` to confirm");
    }
    print!("Upgrade now? [y/N] ");
    std::io::stdout().flush().ok();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("could not read the answer")?;
    Ok(matches!(line.trim().to_ascii_lowercase().as_str(), "y" | "yes"))
}

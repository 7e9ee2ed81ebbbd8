//! `nimbus`: the command line for Nimbus vaults.
//!
//! This is the binary edge: errors become one plain message and an exit
//! code. Without a running service the commands here work directly on a
//! vault: create it, put files in, list, get them back, check it.

mod args;
mod at;
mod cmd_check;
#[cfg(unix)]
mod cmd_drive;
mod cmd_forget;
mod cmd_get;
mod cmd_init;
mod cmd_login;
mod cmd_ls;
#[cfg(unix)]
mod cmd_mount;
mod cmd_passwd;
mod cmd_prune;
mod cmd_put;
mod cmd_service;
mod cmd_stat;
mod cmd_upgrade;
mod credentials;
mod device;
mod localfs;
mod out;
mod progress;
#[cfg(unix)]
mod rates;
mod secrets;
mod store;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

// Also `crate::GlobalArgs`, for cmd_put.rs, which another change is
// splitting; every other module imports `crate::args::GlobalArgs`.
use args::GlobalArgs;

/// Nimbus: an end-to-end encrypted drive over storage you already have.
#[derive(Parser, Debug)]
#[command(name = "nimbus", version, about, long_about = None)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create a new vault in a store (asks for a password twice, shows the recovery key once).
    Init(cmd_init::Args),
    /// Put a file or folder into the vault, making a new snapshot.
    Put(cmd_put::Args),
    /// Get a file or folder out of the vault.
    Get(cmd_get::Args),
    /// List a folder of the vault.
    Ls(cmd_ls::Args),
    /// List the snapshots, newest first.
    Log(cmd_ls::LogArgs),
    /// Change the password (with the old password, or with the recovery key).
    Passwd(cmd_passwd::Args),
    /// Upgrade the vault to this release's format version (asks first).
    Upgrade(cmd_upgrade::Args),
    /// Show what the vault holds: objects, stored and logical bytes, dedup and compression.
    Stat(cmd_stat::Args),
    /// Verify every object and reference; with --read-data, every blob's content.
    Check(cmd_check::Args),
    /// Show which snapshots the retention policy keeps and which it would forget (`--dry-run`).
    Forget(cmd_forget::Args),
    /// Give space back: delete what no snapshot needs, safely while other devices keep working.
    Prune(cmd_prune::Args),
    /// Check a store's credentials and save them in the system keyring.
    Login(cmd_login::Args),
    /// Delete a store's credentials from the system keyring.
    Logout(cmd_login::Args),
    /// Mount the vault as a drive: `nimbus mount <store> <mountpoint>`.
    #[cfg(unix)]
    Mount(cmd_mount::Args),
    /// Commit every change, then unmount (waits until all is in the vault).
    #[cfg(unix)]
    Unmount(cmd_drive::MountpointArgs),
    /// Commit a mounted drive's changes to the vault now.
    #[cfg(unix)]
    Sync(cmd_drive::MountpointArgs),
    /// Keep files or folders of a mounted drive on this device (never evicted from the cache).
    #[cfg(unix)]
    Pin(cmd_drive::PinArgs),
    /// Let pinned files be evicted from the cache again.
    #[cfg(unix)]
    Unpin(cmd_drive::PinArgs),
    /// Show or change a mounted drive's bandwidth limits.
    #[cfg(unix)]
    Limit(cmd_drive::LimitArgs),
    /// What the service's drives are doing (with --live, until Ctrl-C).
    Status(cmd_service::StatusArgs),
    /// Add, remove, list, mount and change the service's drives.
    #[command(subcommand)]
    Drive(cmd_service::DriveCommand),
    /// Lock a drive (or all): the vault key leaves memory; the drive refuses access until unlocked.
    Lock(cmd_service::OptDrive),
    /// Unlock a drive (with the password in the keyring, else asks for it).
    Unlock(cmd_service::UnlockArgs),
    /// Pause uploads of a drive (or all); changes are kept on this device.
    Pause(cmd_service::OptDrive),
    /// Resume uploads.
    Resume(cmd_service::OptDrive),
    /// List a drive's snapshots, newest first.
    Snapshots(cmd_service::SnapshotsArgs),
    /// Restore a file or folder of a drive from a snapshot (never overwrites).
    Restore(cmd_service::RestoreArgs),
    /// List the devices of a drive's vault and whether their latest changes are here; `rename` renames this one.
    Devices(cmd_service::DevicesArgs),
    /// List a drive's conflict copies (two devices changed one file; both versions were kept);
    /// `resolve` keeps one version.
    Conflicts(cmd_service::ConflictsArgs),
    /// Print a shell completion script: `nimbus completions bash > ~/.local/share/bash-completion/completions/nimbus`.
    Completions { shell: clap_complete::Shell },
}

/// A reader that stops early (`nimbus snapshots | head`) closes the pipe:
/// this program then ends quietly, as other command-line tools do, instead
/// of reporting a crash. Rust ignores SIGPIPE, so the write fails and
/// `println!` panics; the workspace forbids the `unsafe` that would restore
/// the signal, so the panic is recognised here.
fn quiet_on_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let msg = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.starts_with("failed printing to std") && msg.contains("Broken pipe") {
            std::process::exit(0);
        }
        default(info);
    }));
}

fn main() -> ExitCode {
    quiet_on_broken_pipe();
    // Before any file is made: state, logs, a local-folder vault.
    #[cfg(unix)]
    if let Err(e) = nimbus_host::private::harden() {
        eprintln!("warning: {e}; a crash could leave a copy of this process's memory on disk");
    }
    let cli = Cli::parse();
    // Blocking work (hashing, encryption, local files) is CPU-bound: a few
    // threads keep both cores busy without a thread (and its buffers) per task.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .max_blocking_threads(16)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: could not start: {e}");
            return ExitCode::from(1);
        }
    };
    let g = cli.global;
    // Drive commands block on their own (the file system calls into the
    // runtime from its threads), so they run outside `block_on`.
    #[cfg(unix)]
    let command = match cli.command {
        Command::Mount(a) => return finish(cmd_mount::run(&g, a, &runtime)),
        Command::Unmount(a) => return finish(cmd_drive::unmount(&g, a)),
        Command::Sync(a) => return finish(cmd_drive::sync(&g, a)),
        Command::Pin(a) => return finish(cmd_drive::pin(&g, a, true)),
        Command::Unpin(a) => return finish(cmd_drive::pin(&g, a, false)),
        Command::Limit(a) => return finish(cmd_drive::limit(&g, a)),
        other => other,
    };
    #[cfg(not(unix))]
    let command = cli.command;
    let result = runtime.block_on(async move {
        match command {
            Command::Init(a) => cmd_init::run(&g, a).await,
            Command::Put(a) => cmd_put::run(&g, a).await,
            Command::Get(a) => cmd_get::run(&g, a).await,
            Command::Ls(a) => cmd_ls::run(&g, a).await,
            Command::Log(a) => cmd_ls::run_log(&g, a).await,
            Command::Passwd(a) => cmd_passwd::run(&g, a).await,
            Command::Stat(a) => cmd_stat::run(&g, a).await,
            Command::Upgrade(a) => cmd_upgrade::run(&g, a).await,
            Command::Check(a) => cmd_check::run(&g, a).await,
            Command::Forget(a) => cmd_forget::run(&g, a).await,
            Command::Prune(a) => cmd_prune::run(&g, a).await,
            Command::Login(a) => cmd_login::login(&g, a).await,
            Command::Logout(a) => cmd_login::logout(&g, a),
            Command::Status(a) => cmd_service::status(a, &g).await,
            Command::Drive(c) => cmd_service::drive(&g, c).await,
            Command::Lock(a) => cmd_service::lock(a).await,
            Command::Unlock(a) => cmd_service::unlock(&g, a).await,
            Command::Pause(a) => cmd_service::pause(a, true).await,
            Command::Resume(a) => cmd_service::pause(a, false).await,
            Command::Snapshots(a) => cmd_service::snapshots(a).await,
            Command::Restore(a) => cmd_service::restore(a).await,
            Command::Devices(a) => cmd_service::devices(a).await,
            Command::Conflicts(a) => cmd_service::conflicts(a).await,
            Command::Completions { shell } => {
                use clap::CommandFactory;
                // Into memory first: clap_complete panics when its writer
                // fails, and a reader may well go away (`| head`).
                let mut script = Vec::new();
                clap_complete::generate(shell, &mut Cli::command(), "nimbus", &mut script);
                use std::io::Write;
                match std::io::stdout().write_all(&script) {
                    Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
                    _ => Ok(ExitCode::SUCCESS),
                }
            }
            #[cfg(unix)]
            _ => unreachable!("drive commands are handled above"),
        }
    });
    finish(result)
}

fn finish(result: anyhow::Result<ExitCode>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            // Causes that add something are shown; below a storage error
            // the chain is the HTTP or SSH library's internals, shown only
            // when asked for with NIMBUS_LOG=debug.
            let details = std::env::var("NIMBUS_LOG").is_ok_and(|v| v.contains("debug"));
            let mut shown = vec![e.to_string()];
            let mut source = e.source();
            while let Some(s) = source {
                let text = s.to_string();
                if !shown.iter().any(|t| t.contains(&text)) {
                    eprintln!("  caused by: {text}");
                    shown.push(text);
                }
                if s.is::<nimbus_backend::BackendError>() && !details {
                    break;
                }
                source = s.source();
            }
            ExitCode::from(1)
        }
    }
}

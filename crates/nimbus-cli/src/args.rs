//! The options every command understands (`--store`, `--password-file`,
//! `--state-dir`, `--quiet`), in a module of their own so the commands
//! import them from here rather than from the binary's root.

use std::path::PathBuf;

/// Options every command understands.
#[derive(clap::Args, Debug, Clone)]
pub struct GlobalArgs {
    /// The vault's store: a folder path, file:///path, s3://bucket/folder?endpoint=URL,
    /// webdav(s)://user@host/folder or sftp://user@host/folder.
    #[arg(short = 's', long, env = "NIMBUS_STORE", global = true)]
    pub store: Option<String>,
    /// Read the vault password from this file (else NIMBUS_PASSWORD, else a prompt).
    #[arg(long, global = true, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// Where this device keeps its local state (device id per vault).
    #[arg(long, env = "NIMBUS_STATE_DIR", global = true, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// No progress bars.
    #[arg(short, long, global = true)]
    pub quiet: bool,
}

//! `nimbus ls` and `nimbus log`.

use anyhow::Result;
use nimbus_vault::paths::{self, split_path};
use nimbus_vault::{Entry, EntryKind, VaultError};
use std::process::ExitCode;

use crate::args::GlobalArgs;
use crate::at::{self, format_time};
use crate::progress::human_bytes;
use crate::{out, store};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Long format: kind and mode, size, modification time (UTC).
    #[arg(short = 'l')]
    pub long: bool,
    /// List sub-folders too.
    #[arg(short = 'R', long)]
    pub recursive: bool,
    /// The folder or file in the vault (default /).
    pub vault_path: Option<String>,
    /// Read from this snapshot (an id from `nimbus log`, or a UTC time).
    #[arg(long)]
    pub at: Option<String>,
}

pub async fn run(g: &GlobalArgs, a: Args) -> Result<ExitCode> {
    let vault = store::open_vault(g).await?;
    let (_, commit) = at::resolve(&vault, a.at.as_deref()).await?;
    let shown = a.vault_path.clone().unwrap_or_else(|| "/".into());
    let comps = split_path(&shown)?;
    let mut stack: Vec<(String, nimbus_vault::BlobId)> = Vec::new();
    if comps.is_empty() {
        stack.push((String::new(), commit.root));
    } else {
        let e = paths::lookup(&vault, &commit.root, &comps)
            .await?
            .ok_or(VaultError::PathNotFound { path: shown.clone() })?;
        match e.subtree {
            Some(s) => stack.push((String::new(), s)),
            None => {
                out::line(line(&e, a.long, ""));
                return Ok(ExitCode::SUCCESS);
            }
        }
    }
    // Depth-first, in name order, like `ls -R` piped through `sort`.
    let mut frames: Vec<(String, std::vec::IntoIter<Entry>)> = Vec::new();
    if let Some((prefix, tree_id)) = stack.pop() {
        frames.push((prefix, vault.read_tree(&tree_id).await?.entries.into_iter()));
    }
    while let Some((prefix, iter)) = frames.last_mut() {
        let Some(e) = iter.next() else {
            frames.pop();
            continue;
        };
        let prefix = prefix.clone();
        out::line(line(&e, a.long, &prefix));
        if a.recursive {
            if let Some(s) = e.subtree {
                let sub = format!("{prefix}{}/", printable(&e.name));
                frames.push((sub, vault.read_tree(&s).await?.entries.into_iter()));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn line(e: &Entry, long: bool, prefix: &str) -> String {
    let mut name = format!("{prefix}{}", printable(&e.name));
    if e.kind == EntryKind::Dir {
        name.push('/');
    }
    if !long {
        return name;
    }
    if e.kind == EntryKind::Symlink {
        name = format!("{name} -> {}", printable(&e.target));
    }
    format!(
        "{}{} {:>12} {} {}",
        kind_char(e.kind),
        mode_string(e.mode),
        e.size,
        format_time(e.mtime),
        name
    )
}

/// A name as text safe for a terminal: invalid UTF-8 becomes U+FFFD and
/// control characters (newlines, escape sequences) are shown escaped, so a
/// file name cannot move the cursor or recolour the screen.
pub fn printable(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .chars()
        .flat_map(char::escape_default_if_control)
        .collect()
}

trait EscapeControl {
    fn escape_default_if_control(self) -> Vec<char>;
}

impl EscapeControl for char {
    fn escape_default_if_control(self) -> Vec<char> {
        if self.is_control() {
            self.escape_default().collect()
        } else {
            vec![self]
        }
    }
}

fn kind_char(k: EntryKind) -> char {
    match k {
        EntryKind::File => '-',
        EntryKind::Dir => 'd',
        EntryKind::Symlink => 'l',
        EntryKind::Fifo => 'p',
        EntryKind::CharDevice => 'c',
        EntryKind::BlockDevice => 'b',
        EntryKind::Socket => 's',
    }
}

fn mode_string(mode: u32) -> String {
    let mut s = String::with_capacity(9);
    for shift in [6, 3, 0] {
        let bits = (mode >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    s
}

#[derive(clap::Args, Debug)]
pub struct LogArgs {
    /// Print JSON lines instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub async fn run_log(g: &GlobalArgs, a: LogArgs) -> Result<ExitCode> {
    let vault = store::open_vault(g).await?;
    let commits = crate::at::commits_warning_of_damaged(&vault).await?;
    if commits.is_empty() {
        out::line("No snapshots yet.");
    }
    for (id, c) in commits.iter().rev() {
        if a.json {
            out::line(serde_json::json!({
                    "id": id.to_hex(), "time": format_time(c.time), "device": c.device.to_hex(),
                    "files": c.files, "bytes": c.bytes, "message": c.message,
                    "parents": c.parents.iter().map(|p| p.to_hex()).collect::<Vec<_>>(),
            }));
        } else {
            out::line(format_args!(
                "{}  {}  {:>7} files {:>10}  {}",
                id.short(),
                format_time(c.time),
                c.files,
                human_bytes(c.bytes),
                printable(c.message.as_bytes())
            ));
        }
    }
    Ok(ExitCode::SUCCESS)
}

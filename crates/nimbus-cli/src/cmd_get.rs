//! `nimbus get <vault-path> <local>`: bring a file or folder back.
//!
//! Files are written under a temporary name and renamed into place once
//! complete, so an interrupted `get` never leaves a half-written file under
//! the real name. Every blob is authenticated and checked against its id
//! before a byte of it is written.

use anyhow::{bail, Context, Result};
use futures::StreamExt;
use nimbus_vault::paths::{self, split_path};
use nimbus_vault::{BlobKind, Entry, EntryKind, Vault};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::localfs::{self, path_from_bytes, RestoreNotes};
use crate::progress::{bytes_bar, human_bytes};
use crate::{at, store, GlobalArgs};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The file or folder in the vault (/ for everything).
    pub vault_path: String,
    /// Where to write it. A folder is merged into an existing folder; files are replaced.
    pub local: PathBuf,
    /// Read from this snapshot (an id from `nimbus log`, or a UTC time) instead of the newest.
    #[arg(long)]
    pub at: Option<String>,
}

pub async fn run(g: &GlobalArgs, a: Args) -> Result<ExitCode> {
    let vault = store::open_vault(g).await?;
    let (_, commit) = at::resolve(&vault, a.at.as_deref()).await?;
    let comps = split_path(&a.vault_path)?;
    let top = if comps.is_empty() {
        Entry {
            name: Vec::new(),
            kind: EntryKind::Dir,
            mode: 0o755,
            uid: 0,
            gid: 0,
            mtime: commit.time,
            ctime: commit.time,
            size: 0,
            file_id: nimbus_vault::FileId::random(),
            xattrs: Vec::new(),
            target: Vec::new(),
            rdev: 0,
            content: Vec::new(),
            subtree: Some(commit.root),
        }
    } else {
        paths::lookup(&vault, &commit.root, &comps)
            .await?
            .ok_or_else(|| nimbus_vault::VaultError::PathNotFound {
                path: a.vault_path.clone(),
            })?
    };

    // Plan: every entry with its destination, parents first.
    let mut plan: Vec<(PathBuf, Entry)> = Vec::new();
    let mut stack = vec![(a.local.clone(), top)];
    let mut total = 0u64;
    while let Some((dest, e)) = stack.pop() {
        if e.kind == EntryKind::File {
            total += e.size;
        }
        if let Some(sub) = e.subtree {
            let tree = vault.read_tree(&sub).await?;
            for child in tree.entries.into_iter().rev() {
                stack.push((dest.join(path_from_bytes(&child.name)), child));
            }
        }
        plan.push((dest, e));
    }

    let mut notes = RestoreNotes::default();
    // Folders and links first, so files have a place to go.
    for (dest, e) in &plan {
        match e.kind {
            EntryKind::Dir => match std::fs::symlink_metadata(dest) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => bail!(
                    "{} exists and is not a folder; move it away or choose another destination",
                    dest.display()
                ),
                Err(_) => std::fs::create_dir_all(dest)
                    .with_context(|| format!("cannot create the folder {}", dest.display()))?,
            },
            EntryKind::Symlink => {
                if std::fs::symlink_metadata(dest).is_ok() {
                    std::fs::remove_file(dest).with_context(|| format!("cannot replace {}", dest.display()))?;
                }
                make_symlink(&e.target, dest)?;
            }
            EntryKind::File => {}
            _ => notes.special_skipped.push(dest.clone()),
        }
    }

    let bar = bytes_bar(g.quiet, total, "Restoring");
    let files: Vec<(PathBuf, Entry)> = plan
        .iter()
        .filter(|(_, e)| e.kind == EntryKind::File)
        .cloned()
        .collect();
    let results: Vec<Result<()>> = futures::stream::iter(files)
        .map(|(dest, e)| {
            let vault = vault.clone();
            let bar = bar.clone();
            async move { restore_file(&vault, &dest, &e, &bar).await }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    bar.finish_and_clear();
    for r in results {
        r?;
    }

    // Metadata last, deepest first, so a read-only folder is locked only
    // after everything inside it is written.
    for (dest, e) in plan.iter().rev() {
        if matches!(e.kind, EntryKind::File | EntryKind::Dir | EntryKind::Symlink) {
            localfs::apply_metadata(dest, e, &mut notes)?;
        }
    }
    if notes.xattr_failed > 0 {
        eprintln!(
            "warning: {} extended attributes could not be restored (not permitted or not supported here)",
            notes.xattr_failed
        );
    }
    for p in &notes.special_skipped {
        eprintln!("warning: {} is a device, pipe or socket; not restored", p.display());
    }
    println!(
        "Restored {} to {} ({}).",
        a.vault_path,
        a.local.display(),
        human_bytes(total)
    );
    Ok(ExitCode::SUCCESS)
}

async fn restore_file(vault: &Vault, dest: &Path, e: &Entry, bar: &indicatif::ProgressBar) -> Result<()> {
    let dir = dest.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".nimbus-get-")
        .tempfile_in(dir)
        .with_context(|| format!("cannot write into {}", dir.display()))?;
    let mut written = 0u64;
    // Fetch the next blob while writing this one.
    let mut blobs = futures::stream::iter(e.content.iter().copied())
        .map(|id| {
            let vault = vault.clone();
            async move { vault.read_blob(BlobKind::Data, &id).await }
        })
        .buffered(4);
    while let Some(data) = blobs.next().await {
        let data = data?;
        tmp.write_all(&data)
            .with_context(|| format!("cannot write {}", dest.display()))?;
        written += data.len() as u64;
        bar.inc(data.len() as u64);
    }
    if written != e.size {
        bail!(
            "`{}` in the vault should hold {} bytes but its content has {}; the snapshot is inconsistent. Run `nimbus check`",
            dest.display(),
            e.size,
            written
        );
    }
    tmp.as_file()
        .sync_all()
        .with_context(|| format!("cannot write {}", dest.display()))?;
    if let Ok(m) = std::fs::symlink_metadata(dest) {
        if m.is_dir() {
            bail!("{} is a folder; cannot replace it with a file", dest.display());
        }
    }
    tmp.persist(dest)
        .with_context(|| format!("cannot move the restored file into place at {}", dest.display()))?;
    Ok(())
}

#[cfg(unix)]
fn make_symlink(target: &[u8], dest: &Path) -> Result<()> {
    std::os::unix::fs::symlink(path_from_bytes(target), dest)
        .with_context(|| format!("cannot create the link {}", dest.display()))
}

#[cfg(not(unix))]
fn make_symlink(target: &[u8], dest: &Path) -> Result<()> {
    std::os::windows::fs::symlink_file(path_from_bytes(target), dest)
        .with_context(|| format!("cannot create the link {}", dest.display()))
}

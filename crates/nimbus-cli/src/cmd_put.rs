//! `nimbus put <local> [<vault-path>]`: save a file or folder into the vault
//! as a new snapshot.
//!
//! The vault path becomes exactly the local file or folder (entries missing
//! locally are gone from the new snapshot; older snapshots keep them).
//! Entries that exist at the same path keep their file id. A file whose
//! size, mtime and ctime match the previous snapshot is not read again.

use anyhow::{Context, Result};
use futures::StreamExt;
use nimbus_vault::paths::{self, split_path};
use nimbus_vault::{
    BlobId, BlobKind, Commit, CommitId, DeviceId, Entry, EntryKind, NewCommit, SaveReaderError, SaveStats, Saver,
    Timestamp, Tree, Vault,
};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::localfs::{self, Scan};
use crate::progress::{bytes_bar, human_bytes};
use crate::{device, store, GlobalArgs};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The local file or folder to save.
    pub local: PathBuf,
    /// Where it goes in the vault (default: /<its name>). Use / to make a folder the whole vault.
    pub vault_path: Option<String>,
    /// A note stored with the snapshot.
    #[arg(short, long)]
    pub message: Option<String>,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(g: &GlobalArgs, a: Args) -> Result<ExitCode> {
    let local = std::path::absolute(&a.local).with_context(|| format!("cannot use the path {}", a.local.display()))?;
    std::fs::symlink_metadata(&local).with_context(|| format!("cannot read {}", local.display()))?;
    let comps = split_path(&target_path(&a, &local)?)?;
    let vault = store::open_vault(g).await?;
    if let Some(at) = device::mounted_here(g, &vault.config().vault_id) {
        anyhow::bail!(
            "this vault is mounted as a drive on this device ({at}): copy the files into the drive instead, \
             or unmount it first (`nimbus unmount`)"
        );
    }
    let device = device::device_id(g, &vault.config().vault_id)?;
    let head = vault.head().await?;

    let Scan {
        mut nodes,
        mut skipped,
        unlisted,
        ..
    } = scan(&local, &comps).await?;
    let old = match_previous(&vault, head.as_ref().map(|(_, c)| c), &comps, &mut nodes).await?;
    let saver = Saver::new(&vault);
    let (saved, mut dropped) = save_files(g, &saver, &mut nodes, &old, &mut skipped).await?;
    let keep_old = keep_unlisted(&nodes, &unlisted, &old, &mut dropped)?;
    let root_entry = build_trees(&saver, nodes, keep_old, dropped).await?;
    let placed = place(
        &vault,
        &saver,
        head.as_ref().map(|(_, c)| c),
        &comps,
        old[0].as_ref(),
        root_entry,
    )
    .await?;
    let message = a
        .message
        .unwrap_or_else(|| format!("put {} -> /{}", local.display(), display_path(&comps)));
    let parent = head.as_ref().map(|(id, _)| *id);
    let snapshot = write_commit(g, &vault, parent, device, placed, message).await?;
    Ok(report(a.json, &local, &comps, &saved, &skipped, &snapshot))
}

/// Where the local file or folder goes in the vault: as asked, or
/// `/<its name>`.
fn target_path(a: &Args, local: &Path) -> Result<String> {
    if let Some(p) = &a.vault_path {
        return Ok(p.clone());
    }
    // `.`, `..` and `/` have no name of their own: use the folder's real one.
    let named = match local.file_name() {
        Some(_) => local.to_path_buf(),
        None => std::fs::canonicalize(local).with_context(|| format!("cannot read {}", local.display()))?,
    };
    match named.file_name() {
        Some(n) => Ok(format!("/{}", n.to_string_lossy())),
        None => anyhow::bail!(
            "`{}` has no name to use in the vault; say where it goes, for example `nimbus put {} /backup`",
            a.local.display(),
            a.local.display()
        ),
    }
}

/// Scans the local tree (on a blocking thread: it is all file-system calls).
async fn scan(local: &Path, comps: &[Vec<u8>]) -> Result<Scan> {
    let scan_root = local.to_path_buf();
    let scan = tokio::task::spawn_blocking(move || localfs::scan(&scan_root))
        .await
        .context("scanning was interrupted")??;
    if comps.is_empty() && scan.nodes[0].entry.kind != EntryKind::Dir {
        anyhow::bail!(
            "only a folder can become the whole vault (`/`); name a path such as /{}",
            local
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "file".into())
        );
    }
    Ok(scan)
}

/// Matches the scan against the previous snapshot, parents first (every
/// child's index is greater than its parent's): returns what stood at each
/// node's path before, and gives each node that kept its kind its old file id.
async fn match_previous(
    vault: &Vault,
    head: Option<&Commit>,
    comps: &[Vec<u8>],
    nodes: &mut [localfs::Node],
) -> Result<Vec<Option<Entry>>> {
    let mut old: Vec<Option<Entry>> = vec![None; nodes.len()];
    if let Some(c) = head {
        old[0] = if comps.is_empty() {
            Some(Entry {
                kind: EntryKind::Dir,
                subtree: Some(c.root),
                ..nodes[0].entry.clone()
            })
        } else {
            paths::lookup(vault, &c.root, comps).await?
        };
    }
    for i in 0..nodes.len() {
        let Some(prev) = old[i].clone() else { continue };
        if prev.kind == nodes[i].entry.kind {
            nodes[i].entry.file_id = prev.file_id;
        }
        if nodes[i].entry.kind == EntryKind::Dir {
            if let Some(sub) = prev.subtree {
                let tree = vault.read_tree(&sub).await?;
                for &j in &nodes[i].children {
                    old[j] = tree.get(&nodes[j].name).cloned();
                }
            }
        }
    }
    Ok(old)
}

/// What saving the files did, for the summary.
struct Saved {
    /// Bytes of the new or changed files, which were read.
    read_bytes: u64,
    unchanged_files: u64,
    unchanged_bytes: u64,
}

/// Reads and saves every new or changed file, several at a time; a file
/// whose size, mtime and ctime match the previous snapshot keeps its old
/// content. Returns the totals and which nodes are left out (files that
/// could not be read, added to `skipped`).
async fn save_files(
    g: &GlobalArgs,
    saver: &Saver,
    nodes: &mut [localfs::Node],
    old: &[Option<Entry>],
    skipped: &mut Vec<(PathBuf, String)>,
) -> Result<(Saved, Vec<bool>)> {
    let mut jobs: Vec<(usize, PathBuf, u64)> = Vec::new();
    let mut saved = Saved {
        read_bytes: 0,
        unchanged_files: 0,
        unchanged_bytes: 0,
    };
    for (i, n) in nodes.iter_mut().enumerate() {
        if n.entry.kind != EntryKind::File {
            continue;
        }
        match &old[i] {
            Some(p)
                if p.kind == EntryKind::File
                    && p.size == n.entry.size
                    && p.mtime == n.entry.mtime
                    && p.ctime == n.entry.ctime =>
            {
                n.entry.content = p.content.clone();
                saved.unchanged_files += 1;
                saved.unchanged_bytes += p.size;
            }
            _ => {
                saved.read_bytes += n.entry.size;
                jobs.push((i, n.path.clone(), n.entry.size));
            }
        }
    }
    let bar = bytes_bar(g.quiet, saved.read_bytes, "Saving");
    let parallel = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(2, 8);
    let results: Vec<_> = futures::stream::iter(jobs)
        .map(|(i, path, size)| {
            let saver = saver.clone();
            let bar = bar.clone();
            async move {
                let r = tokio::task::spawn_blocking(move || save_file(&saver, path, size, |n| bar.inc(n))).await;
                (i, r)
            }
        })
        .buffer_unordered(parallel)
        .collect()
        .await;
    bar.finish_and_clear();
    let mut dropped = vec![false; nodes.len()];
    for (i, r) in results {
        match r.context("a save task failed")? {
            Ok((ids, size)) => {
                nodes[i].entry.content = ids;
                nodes[i].entry.size = size;
            }
            // A file that cannot be read is left out and reported; a vault
            // or store failure stops the whole put before anything is committed.
            Err(FileFailure::Unreadable(path, why)) => {
                skipped.push((path, why));
                dropped[i] = true;
            }
            Err(FileFailure::Vault(path, e)) => anyhow::bail!("saving {} failed: {e}", path.display()),
        }
    }
    Ok((saved, dropped))
}

/// Saves one file's content; returns its blobs and the size actually read.
fn save_file(
    saver: &Saver,
    path: PathBuf,
    size: u64,
    progress: impl FnMut(u64),
) -> Result<(Vec<BlobId>, u64), FileFailure> {
    let f = std::fs::File::open(&path)
        .map_err(|e| FileFailure::Unreadable(path.clone(), format!("cannot open it: {e}")))?;
    saver.save_reader_blocking(f, size, progress).map_err(|e| match e {
        SaveReaderError::Read(e) => FileFailure::Unreadable(path, format!("cannot read it: {e}")),
        SaveReaderError::Vault(e) => FileFailure::Vault(path, e),
    })
}

/// A folder that could not be listed keeps what the previous snapshot had
/// there rather than becoming empty; a new one is left out (marked in
/// `dropped`). Returns the old tree to keep for each such folder.
fn keep_unlisted(
    nodes: &[localfs::Node],
    unlisted: &[usize],
    old: &[Option<Entry>],
    dropped: &mut [bool],
) -> Result<Vec<Option<BlobId>>> {
    let mut keep_old: Vec<Option<BlobId>> = vec![None; nodes.len()];
    for &i in unlisted {
        match old[i].as_ref().and_then(|p| p.subtree) {
            Some(sub) if i > 0 => keep_old[i] = Some(sub),
            _ if i > 0 => dropped[i] = true,
            _ => anyhow::bail!("cannot list {}: nothing was saved", nodes[i].path.display()),
        }
    }
    Ok(keep_old)
}

/// Saves the folders' trees, children before parents, on a blocking thread;
/// returns the entry of the scanned root.
async fn build_trees(
    saver: &Saver,
    mut nodes: Vec<localfs::Node>,
    keep_old: Vec<Option<BlobId>>,
    dropped: Vec<bool>,
) -> Result<Entry> {
    let saver = saver.clone();
    tokio::task::spawn_blocking(move || -> Result<Entry> {
        for i in (0..nodes.len()).rev() {
            if nodes[i].entry.kind != EntryKind::Dir {
                continue;
            }
            if let Some(sub) = keep_old[i] {
                nodes[i].entry.subtree = Some(sub);
                continue;
            }
            let mut tree = Tree::default();
            for &j in &nodes[i].children {
                if !dropped[j] {
                    tree.entries.push(nodes[j].entry.clone());
                }
            }
            tree.sort();
            let id = saver.save_blob_blocking(BlobKind::Tree, &tree.encode())?;
            nodes[i].entry.subtree = Some(id);
        }
        Ok(nodes[0].entry.clone())
    })
    .await
    .context("building folders was interrupted")?
}

/// The new snapshot's root, before it is committed.
struct Placed {
    root: BlobId,
    files: u64,
    bytes: u64,
    stats: SaveStats,
}

/// Puts the saved entry at its path in the previous snapshot's tree, flushes
/// the saver, and works out the new snapshot's totals.
async fn place(
    vault: &Vault,
    saver: &Saver,
    head: Option<&Commit>,
    comps: &[Vec<u8>],
    old_part: Option<&Entry>,
    new_part: Entry,
) -> Result<Placed> {
    // Folders created above the vault path belong to whoever owns the source.
    let template = Entry {
        uid: new_part.uid,
        gid: new_part.gid,
        ..Entry::new_dir(Vec::new(), Timestamp::now())
    };
    let old_root = head.map(|c| c.root);
    let root = paths::replace_at(vault, saver, old_root, comps, new_part.clone(), &template).await?;
    let stats = saver.finish().await?;
    // The snapshot's totals: the previous ones, less what stood at the path,
    // plus what stands there now. Only the changed subtree is walked.
    let (files, bytes) = match head {
        Some(c) if !comps.is_empty() => {
            let (of, ob) = match old_part {
                Some(e) => paths::entry_totals(vault, e).await?,
                None => (0, 0),
            };
            let (nf, nb) = paths::entry_totals(vault, &new_part).await?;
            (c.files.saturating_sub(of) + nf, c.bytes.saturating_sub(ob) + nb)
        }
        _ => paths::totals(vault, &root).await?,
    };
    Ok(Placed {
        root,
        files,
        bytes,
        stats,
    })
}

/// The snapshot as committed.
struct Snapshot {
    id: CommitId,
    files: u64,
    bytes: u64,
    stats: SaveStats,
}

/// Writes the commit and moves this device's ref to it.
async fn write_commit(
    g: &GlobalArgs,
    vault: &Vault,
    parent: Option<CommitId>,
    device: DeviceId,
    placed: Placed,
    message: String,
) -> Result<Snapshot> {
    let commit = NewCommit {
        root: placed.root,
        parents: parent.into_iter().collect(),
        device,
        // This device's name, or its hostname when never renamed (docs/SYNC.md §2.3).
        device_name: device::device_name(g, &vault.config().vault_id)?,
        time: Timestamp::now(),
        message,
        files: placed.files,
        bytes: placed.bytes,
        indexes: placed.stats.indexes.clone(),
    };
    let (id, _) = vault.write_commit(commit).await?;
    let vid = vault.config().vault_id;
    // The vault holds every ref seen since the open (this device's memory
    // included) and checks the refs again before publishing.
    let seen = device::load_seen(g, &vid)?;
    vault
        .write_ref(&device, id, seen.get(&device).copied().unwrap_or(0))
        .await?;
    device::save_seen(g, &vid, &vault.refs_seen())?;
    Ok(Snapshot {
        id,
        files: placed.files,
        bytes: placed.bytes,
        stats: placed.stats,
    })
}

/// Prints the skipped items and the summary (as text or JSON). A put that
/// skipped anything exits with 3.
fn report(
    json: bool,
    local: &Path,
    comps: &[Vec<u8>],
    saved: &Saved,
    skipped: &[(PathBuf, String)],
    snap: &Snapshot,
) -> ExitCode {
    for (p, why) in skipped {
        eprintln!("warning: skipped {}: {why}", p.display());
    }
    let stats = &snap.stats;
    if json {
        println!(
            "{}",
            serde_json::json!({
                "snapshot": snap.id.to_hex(), "files": snap.files, "bytes": snap.bytes,
                "read_bytes": saved.read_bytes, "unchanged_files": saved.unchanged_files, "skipped": skipped.len(),
                "new_blobs": stats.new_blobs, "new_data_blobs": stats.new_data_blobs,
                "new_raw_bytes": stats.new_raw_bytes, "uploaded_bytes": stats.uploaded_bytes,
                "packs": stats.packs, "duplicate_blobs": stats.duplicate_blobs,
            })
        );
        return if skipped.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(3)
        };
    }
    println!(
        "Saved {} to /{}: read {} ({} files unchanged, {} not read again).",
        local.display(),
        display_path(comps),
        human_bytes(saved.read_bytes),
        saved.unchanged_files,
        human_bytes(saved.unchanged_bytes)
    );
    println!(
        "New data: {} blobs, {} before compression, {} uploaded in {} packs; {} blobs were already stored.",
        stats.new_blobs,
        human_bytes(stats.new_raw_bytes),
        human_bytes(stats.uploaded_bytes),
        stats.packs,
        stats.duplicate_blobs
    );
    println!(
        "Snapshot {} ({} files, {}).",
        snap.id.short(),
        snap.files,
        human_bytes(snap.bytes)
    );
    if skipped.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!("{} items could not be read and are not in the snapshot.", skipped.len());
        ExitCode::from(3)
    }
}

/// Why one file could not be saved.
enum FileFailure {
    Unreadable(PathBuf, String),
    Vault(PathBuf, nimbus_vault::VaultError),
}

pub fn display_path(comps: &[Vec<u8>]) -> String {
    comps
        .iter()
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

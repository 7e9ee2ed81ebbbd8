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
use nimbus_vault::{BlobKind, Commit, Entry, EntryKind, Saver, Timestamp, Tree};
use std::path::PathBuf;
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
    let vault_path = match &a.vault_path {
        Some(p) => p.clone(),
        None => {
            // `.`, `..` and `/` have no name of their own: use the folder's real one.
            let named = match local.file_name() {
                Some(_) => local.clone(),
                None => std::fs::canonicalize(&local).with_context(|| format!("cannot read {}", local.display()))?,
            };
            match named.file_name() {
                Some(n) => format!("/{}", n.to_string_lossy()),
                None => anyhow::bail!(
                    "`{}` has no name to use in the vault; say where it goes, for example `nimbus put {} /backup`",
                    a.local.display(),
                    a.local.display()
                ),
            }
        }
    };
    let comps = split_path(&vault_path)?;
    let vault = store::open_vault(g).await?;
    if let Some(at) = device::mounted_here(g, &vault.config().vault_id) {
        anyhow::bail!(
            "this vault is mounted as a drive on this device ({at}): copy the files into the drive instead, \
             or unmount it first (`nimbus unmount`)"
        );
    }
    let device = device::device_id(g, &vault.config().vault_id)?;
    let head = vault.head().await?;

    let scan_root = local.clone();
    let Scan {
        mut nodes,
        mut skipped,
        unlisted,
        ..
    } = tokio::task::spawn_blocking(move || localfs::scan(&scan_root))
        .await
        .context("scanning was interrupted")??;
    if comps.is_empty() && nodes[0].entry.kind != EntryKind::Dir {
        anyhow::bail!(
            "only a folder can become the whole vault (`/`); name a path such as /{}",
            local
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "file".into())
        );
    }

    // Match the scan against the previous snapshot, parents first (every
    // child's index is greater than its parent's).
    let mut old: Vec<Option<Entry>> = vec![None; nodes.len()];
    if let Some((_, c)) = &head {
        old[0] = if comps.is_empty() {
            Some(Entry {
                kind: EntryKind::Dir,
                subtree: Some(c.root),
                ..nodes[0].entry.clone()
            })
        } else {
            paths::lookup(&vault, &c.root, &comps).await?
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

    // Read and save every new or changed file, several at a time.
    let mut jobs: Vec<(usize, PathBuf, u64)> = Vec::new();
    let mut job_bytes = 0;
    let (mut reused, mut reused_bytes) = (0u64, 0u64);
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
                reused += 1;
                reused_bytes += p.size;
            }
            _ => {
                job_bytes += n.entry.size;
                jobs.push((i, n.path.clone(), n.entry.size));
            }
        }
    }
    let saver = Saver::new(&vault);
    let bar = bytes_bar(g.quiet, job_bytes, "Saving");
    let parallel = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(2, 8);
    let results: Vec<_> = futures::stream::iter(jobs)
        .map(|(i, path, size)| {
            let saver = saver.clone();
            let bar = bar.clone();
            async move {
                let r = tokio::task::spawn_blocking(move || {
                    let f = std::fs::File::open(&path)
                        .map_err(|e| FileFailure::Unreadable(path.clone(), format!("cannot open it: {e}")))?;
                    saver
                        .save_reader_blocking(f, size, |n| bar.inc(n))
                        .map_err(|e| match e {
                            nimbus_vault::SaveReaderError::Read(e) => {
                                FileFailure::Unreadable(path.clone(), format!("cannot read it: {e}"))
                            }
                            nimbus_vault::SaveReaderError::Vault(e) => FileFailure::Vault(path.clone(), e),
                        })
                })
                .await;
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

    // A folder that could not be listed keeps what the previous snapshot
    // had there rather than becoming empty; a new one is left out.
    let mut keep_old: Vec<Option<nimbus_vault::BlobId>> = vec![None; nodes.len()];
    for &i in &unlisted {
        match old[i].as_ref().and_then(|p| p.subtree) {
            Some(sub) if i > 0 => keep_old[i] = Some(sub),
            _ if i > 0 => dropped[i] = true,
            _ => anyhow::bail!("cannot list {}: nothing was saved", nodes[i].path.display()),
        }
    }

    // Trees, children before parents.
    let build_saver = saver.clone();
    let (root_entry, nodes) = tokio::task::spawn_blocking(move || -> Result<(Entry, Vec<localfs::Node>)> {
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
            let id = build_saver.save_blob_blocking(BlobKind::Tree, &tree.encode())?;
            nodes[i].entry.subtree = Some(id);
        }
        Ok((nodes[0].entry.clone(), nodes))
    })
    .await
    .context("building folders was interrupted")??;
    drop(nodes);

    // Folders created above the vault path belong to whoever owns the source.
    let template = Entry {
        uid: root_entry.uid,
        gid: root_entry.gid,
        ..Entry::new_dir(Vec::new(), Timestamp::now())
    };
    let old_root = head.as_ref().map(|(_, c)| c.root);
    let new_part = root_entry.clone();
    let new_root = paths::replace_at(&vault, &saver, old_root, &comps, root_entry, &template).await?;
    let stats = saver.finish().await?;
    // The snapshot's totals: the previous ones, less what stood at the path,
    // plus what stands there now. Only the changed subtree is walked.
    let (files, bytes) = match &head {
        Some((_, c)) if !comps.is_empty() => {
            let (of, ob) = match &old[0] {
                Some(e) => paths::entry_totals(&vault, e).await?,
                None => (0, 0),
            };
            let (nf, nb) = paths::entry_totals(&vault, &new_part).await?;
            (c.files.saturating_sub(of) + nf, c.bytes.saturating_sub(ob) + nb)
        }
        _ => paths::totals(&vault, &new_root).await?,
    };
    let message = a
        .message
        .unwrap_or_else(|| format!("put {} -> /{}", local.display(), display_path(&comps)));
    let commit = Commit {
        root: new_root,
        parents: head.iter().map(|(id, _)| *id).collect(),
        device,
        time: Timestamp::now(),
        message,
        files,
        bytes,
    };
    let cid = vault.write_commit(&commit).await?;
    let vid = vault.config().vault_id;
    // The vault holds every ref seen since the open (this device's memory
    // included) and checks the refs again before publishing.
    let seen = device::load_seen(g, &vid)?;
    vault
        .write_ref(&device, cid, seen.get(&device).copied().unwrap_or(0))
        .await?;
    device::save_seen(g, &vid, &vault.refs_seen())?;

    for (p, why) in &skipped {
        eprintln!("warning: skipped {}: {why}", p.display());
    }
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "snapshot": cid.to_hex(), "files": files, "bytes": bytes,
                "read_bytes": job_bytes, "unchanged_files": reused, "skipped": skipped.len(),
                "new_blobs": stats.new_blobs, "new_data_blobs": stats.new_data_blobs,
                "new_raw_bytes": stats.new_raw_bytes, "uploaded_bytes": stats.uploaded_bytes,
                "packs": stats.packs, "duplicate_blobs": stats.duplicate_blobs,
            })
        );
        return Ok(if skipped.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(3)
        });
    }
    println!(
        "Saved {} to /{}: read {} ({} files unchanged, {} not read again).",
        local.display(),
        display_path(&comps),
        human_bytes(job_bytes),
        reused,
        human_bytes(reused_bytes)
    );
    println!(
        "New data: {} blobs, {} before compression, {} uploaded in {} packs; {} blobs were already stored.",
        stats.new_blobs,
        human_bytes(stats.new_raw_bytes),
        human_bytes(stats.uploaded_bytes),
        stats.packs,
        stats.duplicate_blobs
    );
    println!("Snapshot {} ({} files, {}).", cid.short(), files, human_bytes(bytes));
    if skipped.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("{} items could not be read and are not in the snapshot.", skipped.len());
        Ok(ExitCode::from(3))
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

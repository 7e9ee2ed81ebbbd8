//! `nimbus get <vault-path> <local>`: bring a file or folder back.
//!
//! Files are written under a temporary name and renamed into place once
//! complete, so an interrupted `get` never leaves a half-written file under
//! the real name. Every blob is authenticated and checked against its id
//! before a byte of it is written.

use anyhow::{bail, Context, Result};
use futures::StreamExt;
use indicatif::ProgressBar;
use nimbus_vault::index::Location;
use nimbus_vault::paths::{self, split_path};
use nimbus_vault::{BlobId, BlobKind, Entry, EntryKind, Id, Vault};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tempfile::TempPath;

use crate::args::GlobalArgs;
use crate::localfs::{self, path_from_bytes, RestoreNotes};
use crate::progress::{bytes_bar, human_bytes};
use crate::{at, store};

type PackId = Id;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The file or folder in the vault (/ for everything).
    pub vault_path: String,
    /// Where to write it. A folder is merged into an existing folder; a file
    /// replaces a file, or goes inside an existing folder.
    pub local: PathBuf,
    /// Read from this snapshot (an id from `nimbus log`, or a UTC time) instead of the newest.
    #[arg(long)]
    pub at: Option<String>,
}

pub async fn run(g: &GlobalArgs, a: Args) -> Result<ExitCode> {
    let vault = store::open_vault(g).await?;
    let top = find_top(&vault, &a).await?;
    // A file got into an existing folder lands inside it, as with `cp`.
    let dest = if top.kind != EntryKind::Dir && a.local.is_dir() {
        a.local.join(path_from_bytes(&top.name))
    } else {
        a.local.clone()
    };
    let (plan, total) = plan_entries(&vault, &dest, top).await?;
    let mut notes = RestoreNotes::default();
    make_folders_and_links(&plan, &mut notes)?;
    restore_files(&vault, &plan, total, g.quiet).await?;
    apply_metadata(&plan, &mut notes)?;
    sync_filesystem(&dest)?;
    report(&a, &notes, total);
    Ok(ExitCode::SUCCESS)
}

/// The entry at the vault path, in the snapshot asked for (the root folder
/// for `/`).
async fn find_top(vault: &Vault, a: &Args) -> Result<Entry> {
    let (_, commit) = at::resolve(vault, a.at.as_deref()).await?;
    let comps = split_path(&a.vault_path)?;
    if comps.is_empty() {
        return Ok(Entry {
            subtree: Some(commit.root),
            ..Entry::new_dir(Vec::new(), commit.time)
        });
    }
    let top =
        paths::lookup(vault, &commit.root, &comps)
            .await?
            .ok_or_else(|| nimbus_vault::VaultError::PathNotFound {
                path: a.vault_path.clone(),
            })?;
    Ok(top)
}

/// Every entry under `top` with its destination, parents first, and the
/// bytes of all the files.
async fn plan_entries(vault: &Vault, dest: &Path, top: Entry) -> Result<(Vec<(PathBuf, Entry)>, u64)> {
    let mut plan: Vec<(PathBuf, Entry)> = Vec::new();
    let mut stack = vec![(dest.to_path_buf(), top)];
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
    Ok((plan, total))
}

/// Folders and links first, so files have a place to go. Devices, pipes
/// and sockets are noted as skipped.
fn make_folders_and_links(plan: &[(PathBuf, Entry)], notes: &mut RestoreNotes) -> Result<()> {
    for (dest, e) in plan {
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
    Ok(())
}

/// Metadata last, deepest first, so a read-only folder is locked only
/// after everything inside it is written.
fn apply_metadata(plan: &[(PathBuf, Entry)], notes: &mut RestoreNotes) -> Result<()> {
    for (dest, e) in plan.iter().rev() {
        if matches!(e.kind, EntryKind::File | EntryKind::Dir | EntryKind::Symlink) {
            localfs::apply_metadata(dest, e, notes)?;
        }
    }
    Ok(())
}

/// Warns about what could not be restored, and prints the summary.
fn report(a: &Args, notes: &RestoreNotes, total: u64) {
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
}

/// Writes every file's content, pack by pack rather than file by file:
/// each pack is read once, in as few ranged requests as possible, and its
/// blobs are written at their offsets into every file that uses them. This
/// is what makes restoring ten thousand small files fast.
///
/// Files are written under temporary names, flushed to disk together, and
/// only then renamed into place: a crash never leaves a partly written file
/// under its real name.
async fn restore_files(vault: &Vault, plan: &[(PathBuf, Entry)], total: u64, quiet: bool) -> Result<()> {
    let (temps, by_pack) = prepare_files(vault, plan)?;
    let paths: Vec<PathBuf> = temps.iter().map(|(t, _)| t.to_path_buf()).collect();
    write_packs(vault, by_pack, &paths, total, quiet).await?;
    flush_files(&paths)?;
    move_into_place(temps)
}

/// Where one blob's bytes go: a file (its index among the temporary files)
/// and an offset in it.
struct Target {
    file: usize,
    offset: u64,
}

/// Each pack's blobs: where each is stored and every place it goes.
type PackPlan = HashMap<PackId, HashMap<BlobId, (Location, Vec<Target>)>>;

/// Creates each file's temporary file at its full size, next to where it
/// goes, and works out pack by pack where every blob goes.
fn prepare_files(vault: &Vault, plan: &[(PathBuf, Entry)]) -> Result<(Vec<(TempPath, PathBuf)>, PackPlan)> {
    let mut temps: Vec<(TempPath, PathBuf)> = Vec::new();
    let mut by_pack: PackPlan = HashMap::new();
    for (dest, e) in plan.iter().filter(|(_, e)| e.kind == EntryKind::File) {
        let locs = locate_content(vault, dest, e)?;
        let index = temps.len();
        temps.push((temp_file(dest, e.size)?, dest.clone()));
        for (id, loc, offset) in locs {
            by_pack
                .entry(loc.pack)
                .or_default()
                .entry(id)
                .or_insert_with(|| (loc, Vec::new()))
                .1
                .push(Target { file: index, offset });
        }
    }
    Ok((temps, by_pack))
}

/// Where each blob of a file's content is stored, with its offset in the
/// file. Checks the content adds up before anything is written.
fn locate_content(vault: &Vault, dest: &Path, e: &Entry) -> Result<Vec<(BlobId, Location, u64)>> {
    let mut offset = 0u64;
    let mut locs = Vec::with_capacity(e.content.len());
    for id in &e.content {
        let loc = vault.locate_or_err(id)?;
        if loc.kind != BlobKind::Data {
            bail!(
                "`{}`: blob {id} is not file content; the snapshot is damaged. Run `nimbus check`",
                dest.display()
            );
        }
        locs.push((*id, loc, offset));
        offset += loc.raw_len as u64;
    }
    if offset != e.size {
        bail!(
            "`{}` should hold {} bytes but its content adds up to {}; the snapshot is damaged. Run `nimbus check`",
            dest.display(),
            e.size,
            offset
        );
    }
    Ok(locs)
}

/// A temporary file in `dest`'s folder, already `size` bytes long. A
/// folder at `dest` is not replaced by a file.
fn temp_file(dest: &Path, size: u64) -> Result<TempPath> {
    if let Ok(m) = std::fs::symlink_metadata(dest) {
        if m.is_dir() {
            bail!("{} is a folder; cannot replace it with a file", dest.display());
        }
    }
    let dir = dest.parent().unwrap_or(Path::new("."));
    let tmp = tempfile::Builder::new()
        .prefix(".nimbus-get-")
        .tempfile_in(dir)
        .with_context(|| format!("cannot write into {}", dir.display()))?;
    tmp.as_file()
        .set_len(size)
        .with_context(|| format!("cannot write {}", dest.display()))?;
    Ok(tmp.into_temp_path())
}

/// Reads the packs, four at a time, and writes their blobs into the
/// temporary files, with a progress bar.
async fn write_packs(vault: &Vault, by_pack: PackPlan, paths: &[PathBuf], total: u64, quiet: bool) -> Result<()> {
    let bar = bytes_bar(quiet, total, "Restoring");
    let results: Vec<Result<()>> = futures::stream::iter(by_pack)
        .map(|(pack, blobs)| write_pack(vault, pack, blobs, paths, &bar))
        .buffer_unordered(4)
        .collect()
        .await;
    bar.finish_and_clear();
    for r in results {
        r?;
    }
    Ok(())
}

/// Reads one pack's blobs and writes each into every file that uses it.
async fn write_pack(
    vault: &Vault,
    pack: PackId,
    blobs: HashMap<BlobId, (Location, Vec<Target>)>,
    paths: &[PathBuf],
    bar: &ProgressBar,
) -> Result<()> {
    let list: Vec<(BlobId, Location)> = blobs.iter().map(|(id, (loc, _))| (*id, *loc)).collect();
    let data = vault.read_blobs_in_pack(pack, &list).await?;
    let writes: Vec<(PathBuf, u64, Vec<u8>)> = list
        .iter()
        .zip(data)
        .flat_map(|((id, _), plain)| {
            let targets = &blobs[id].1;
            targets
                .iter()
                .map(move |t| (paths[t.file].clone(), t.offset, plain.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    let n: u64 = writes.iter().map(|w| w.2.len() as u64).sum();
    tokio::task::spawn_blocking(move || write_blobs(writes))
        .await
        .context("a restore task failed")??;
    bar.inc(n);
    Ok(())
}

/// Writes each blob at its offset (file-system calls: run on a blocking
/// thread), and starts writing it to disk in the background.
fn write_blobs(writes: Vec<(PathBuf, u64, Vec<u8>)>) -> Result<()> {
    for (path, offset, data) in writes {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        write_at(&f, &data, offset).with_context(|| format!("cannot write {}", path.display()))?;
        start_writeback(&f, offset, data.len() as u64);
    }
    Ok(())
}

/// Renames every restored file from its temporary name to its real one.
fn move_into_place(temps: Vec<(TempPath, PathBuf)>) -> Result<()> {
    for (tmp, dest) in temps {
        tmp.persist(&dest)
            .with_context(|| format!("cannot move the restored file into place at {}", dest.display()))?;
    }
    Ok(())
}

#[cfg(unix)]
fn write_at(f: &std::fs::File, data: &[u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(f, data, offset)
}

#[cfg(windows)]
fn write_at(f: &std::fs::File, mut data: &[u8], mut offset: u64) -> std::io::Result<()> {
    while !data.is_empty() {
        let n = std::os::windows::fs::FileExt::seek_write(f, data, offset)?;
        data = &data[n..];
        offset += n as u64;
    }
    Ok(())
}

/// Asks the kernel to start writing a just-written range to disk now, in
/// the background, so the final `syncfs` finds little left to wait for.
/// (`POSIX_FADV_DONTNEED` starts writeback of dirty pages without waiting.)
/// Only a hint: errors are ignored.
#[cfg(target_os = "linux")]
fn start_writeback(f: &std::fs::File, offset: u64, len: u64) {
    let _ = rustix::fs::fadvise(f, offset, std::num::NonZeroU64::new(len), rustix::fs::Advice::DontNeed);
}

#[cfg(not(target_os = "linux"))]
fn start_writeback(_f: &std::fs::File, _offset: u64, _len: u64) {}

/// Flushes everything written to the file system holding `path`: one
/// `syncfs` instead of one `fsync` per file (which made restoring 10,000
/// files five times slower).
#[cfg(target_os = "linux")]
pub fn sync_filesystem(path: &Path) -> Result<()> {
    let f = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    rustix::fs::syncfs(&f).with_context(|| format!("cannot flush the file system of {}", path.display()))?;
    Ok(())
}

/// Elsewhere there is no `syncfs`: flush the one path given (a folder's
/// entries, or a file).
#[cfg(not(target_os = "linux"))]
pub fn sync_filesystem(path: &Path) -> Result<()> {
    // Windows cannot open a folder as a file; its entries are flushed by NTFS's journal.
    if cfg!(windows) && path.is_dir() {
        return Ok(());
    }
    let f = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    f.sync_all()
        .with_context(|| format!("cannot flush {}", path.display()))?;
    Ok(())
}

/// Makes every restored file durable before it is renamed into place.
#[cfg(target_os = "linux")]
fn flush_files(paths: &[PathBuf]) -> Result<()> {
    match paths.first() {
        Some(first) => sync_filesystem(first),
        None => Ok(()),
    }
}

#[cfg(not(target_os = "linux"))]
fn flush_files(paths: &[PathBuf]) -> Result<()> {
    for p in paths {
        sync_filesystem(p)?;
    }
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

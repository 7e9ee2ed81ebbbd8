//! `nimbus check`: verify the vault; exits 1 when anything is damaged.
//! `--repair` first heals what it can by adding objects (never deleting):
//! see `nimbus_vault::repair`.

use anyhow::{Context, Result};
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use nimbus_vault::check::CheckReport;
use nimbus_vault::repair::{ContentSource, RepairOptions, RepairReport};
use nimbus_vault::Vault;

use crate::args::GlobalArgs;
use crate::progress::count_bar;
use crate::{device, store};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Also download and authenticate every blob (reads the whole vault).
    #[arg(long)]
    pub read_data: bool,
    /// First repair what can be repaired, adding objects only: index the
    /// packs no index lists, upload again the lost content of this device's
    /// newest snapshot from `--from`, and mark the files still damaged in a
    /// new snapshot on this device (`name (damaged).ext`). Never deletes.
    #[arg(long)]
    pub repair: bool,
    /// With --repair: a local copy of the vault folder `--from-path`, whose
    /// files may still hold lost content (checked by its keyed hash).
    #[arg(long, value_name = "DIR", requires = "repair")]
    pub from: Option<PathBuf>,
    /// The vault folder that `--from` is a copy of.
    #[arg(long, value_name = "VAULT_PATH", default_value = "/", requires = "from")]
    pub from_path: String,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(g: &GlobalArgs, a: Args) -> Result<ExitCode> {
    let vault = store::open_vault_unchecked(g).await?;
    let repaired = match a.repair {
        true => Some(repair(g, &a, &vault).await?),
        false => None,
    };
    let mut report = check(g, &vault, a.read_data).await?;
    // Refs that went back in time since this device last looked.
    if let Ok(refs) = vault.read_refs_unchecked().await {
        let seen = device::load_seen(g, &vault.config().vault_id)?;
        if let Err(e) = Vault::check_rollback(&refs, &seen) {
            report.problems.push(nimbus_vault::check::Finding {
                object: "refs/".into(),
                message: e.to_string(),
            });
        }
    }
    if a.json {
        let out = match &repaired {
            Some(r) => serde_json::json!({ "repair": r, "check": &report }),
            None => serde_json::to_value(&report)?,
        };
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        if let Some(r) = &repaired {
            print_repair(r);
        }
        print_check(&report, a.read_data);
    }
    Ok(verdict(&report, a.json))
}

async fn check(g: &GlobalArgs, vault: &Vault, read_data: bool) -> Result<CheckReport> {
    let bar = count_bar(g.quiet, 0, "Checking packs");
    let progress = |step: nimbus_vault::check::CheckStep| match step {
        nimbus_vault::check::CheckStep::Packs { done, total } => {
            bar.set_length(total);
            bar.set_position(done);
        }
        nimbus_vault::check::CheckStep::Snapshots { done, total } => {
            bar.set_message("Checking snapshots");
            bar.set_length(total);
            bar.set_position(done);
        }
    };
    let report = nimbus_vault::check::check(vault, read_data, &progress).await?;
    bar.finish_and_clear();
    Ok(report)
}

/// Runs the repair as this device, held to this device's memory of the
/// refs (a store that went back in time is refused, not repaired).
async fn repair(g: &GlobalArgs, a: &Args, vault: &Vault) -> Result<RepairReport> {
    let vid = vault.config().vault_id;
    let seen = device::load_seen(g, &vid)?;
    vault.remember_refs_seen(&seen);
    let me = device::device_id(g, &vid)?;
    let source = match &a.from {
        Some(dir) => Some(Arc::new(LocalCopy::new(dir, &a.from_path)?) as Arc<dyn ContentSource>),
        None => None,
    };
    let opts = RepairOptions {
        device: me,
        device_name: device::device_name(g, &vid)?,
        seen: seen.get(&me).copied().unwrap_or(0),
        min_pack_age: nimbus_vault::repair::MIN_PACK_AGE,
        source,
    };
    let report = nimbus_vault::repair::repair(vault, &opts).await?;
    device::save_seen(g, &vid, &vault.refs_seen())?;
    Ok(report)
}

fn print_repair(r: &RepairReport) {
    if !r.packs_indexed.is_empty() {
        println!(
            "repair: indexed {} packs that no index listed, from their headers",
            r.packs_indexed.len()
        );
    }
    for p in &r.damaged_packs {
        println!("repair: pack {} has a damaged header: {}", p.object, p.message);
    }
    if !r.young_packs.is_empty() {
        println!(
            "repair: {} packs no index lists are younger than an hour (a save may be writing them); \
             no file was marked damaged: run `nimbus check --repair` again later",
            r.young_packs.len()
        );
    }
    if r.blobs_uploaded > 0 {
        println!(
            "repair: uploaded {} lost pieces ({} bytes) again from the local copy",
            r.blobs_uploaded, r.bytes_uploaded
        );
    }
    for u in &r.unreadable {
        println!("repair: could not read the local copy of {}: {}", u.object, u.message);
    }
    for f in &r.lost_folders {
        println!("repair: the listing of folder {f} is lost; its files cannot be named or marked");
    }
    for d in &r.damaged_files {
        println!(
            "repair: marked damaged: {} -> {} ({} pieces lost)",
            d.path, d.renamed, d.lost_pieces
        );
    }
    if let Some(c) = r.commit {
        println!("repair: wrote snapshot {} on this device", c.short());
    }
    if r.snapshot.is_none() {
        println!(
            "repair: this device has no snapshot in the vault, so only indexes were repaired; run \
             `nimbus check --repair` on the device whose files are damaged"
        );
        return;
    }
    let nothing = r.packs_indexed.is_empty()
        && r.damaged_packs.is_empty()
        && r.young_packs.is_empty()
        && r.blobs_uploaded == 0
        && r.unreadable.is_empty()
        && r.lost_folders.is_empty()
        && r.damaged_files.is_empty();
    if nothing {
        println!("repair: nothing to repair");
    }
}

fn print_check(report: &CheckReport, read_data: bool) {
    for w in &report.warnings {
        println!("warning: {}: {}", w.object, w.message);
    }
    for h in &report.history {
        println!("damaged history: {}: {}", h.object, h.message);
    }
    for p in &report.problems {
        println!("problem: {}: {}", p.object, p.message);
    }
    println!(
        "Checked {} objects: {} packs, {} snapshots, {} trees, {} content blobs referenced{}.",
        report.objects,
        report.packs,
        report.commits,
        report.trees,
        report.data_blobs_referenced,
        if read_data {
            format!(", {} blobs read and authenticated", report.blobs_read)
        } else {
            String::new()
        }
    );
    if report.pruned_history > 0 {
        println!(
            "{} snapshot{} older history that a prune forgot on purpose (not missing).",
            report.pruned_history,
            if report.pruned_history == 1 {
                " starts from"
            } else {
                "s start from"
            }
        );
    }
}

fn verdict(report: &CheckReport, json: bool) -> ExitCode {
    if report.is_clean() {
        if !json {
            println!("No problems found.");
        }
        return ExitCode::SUCCESS;
    }
    if report.problems.is_empty() {
        eprintln!(
            "error: {} findings in older snapshots only: the newest snapshot of every device is whole, but those \
             older versions cannot be restored.",
            report.history.len()
        );
    } else {
        eprintln!(
            "error: {} problems found. Damaged or missing objects cannot be read; other files are unaffected \
             (`nimbus get` still restores them). `nimbus check --repair` heals what can be healed.",
            report.problems.len() + report.history.len()
        );
    }
    ExitCode::from(1)
}

/// A local copy of a vault folder, as [`ContentSource`].
struct LocalCopy {
    root: PathBuf,
    /// The vault path the copy's root stands for, as `/a/b` (or empty for `/`).
    at: Vec<u8>,
}

impl LocalCopy {
    fn new(dir: &std::path::Path, vault_path: &str) -> Result<LocalCopy> {
        let root = std::path::absolute(dir).with_context(|| format!("cannot use the path {}", dir.display()))?;
        anyhow::ensure!(root.is_dir(), "--from {} is not a folder", dir.display());
        let at = vault_path.trim_end_matches('/');
        anyhow::ensure!(
            at.is_empty() || at.starts_with('/'),
            "--from-path must start with `/`, as `/Photos`"
        );
        Ok(LocalCopy {
            root,
            at: at.as_bytes().to_vec(),
        })
    }
}

impl ContentSource for LocalCopy {
    fn open(&self, path: &[u8]) -> std::io::Result<Option<Box<dyn Read + Send>>> {
        let Some(rest) = path.strip_prefix(self.at.as_slice()) else {
            return Ok(None);
        };
        let Some(rest) = rest.strip_prefix(b"/") else {
            return Ok(None);
        };
        // Names in a vault tree are checked (no `..`, no `/`), so this
        // stays under the copy's root.
        let mut local = self.root.clone();
        for name in rest.split(|&b| b == b'/') {
            local.push(crate::localfs::path_from_bytes(name));
        }
        match std::fs::symlink_metadata(&local) {
            Ok(m) if m.is_file() => Ok(Some(Box::new(std::fs::File::open(&local)?))),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

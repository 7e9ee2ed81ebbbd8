//! `nimbus check`: verify the vault; exits 1 when anything is damaged.

use anyhow::Result;
use std::process::ExitCode;

use crate::args::GlobalArgs;
use crate::progress::count_bar;
use crate::store;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Also download and authenticate every blob (reads the whole vault).
    #[arg(long)]
    pub read_data: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(g: &GlobalArgs, a: Args) -> Result<ExitCode> {
    let vault = store::open_vault_unchecked(g).await?;
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
    let mut report = nimbus_vault::check::check(&vault, a.read_data, &progress).await?;
    // Refs that went back in time since this device last looked.
    if let Ok(refs) = vault.read_refs_unchecked().await {
        let seen = crate::device::load_seen(g, &vault.config().vault_id)?;
        if let Err(e) = nimbus_vault::Vault::check_rollback(&refs, &seen) {
            report.problems.push(nimbus_vault::check::Finding {
                object: "refs/".into(),
                message: e.to_string(),
            });
        }
    }
    bar.finish_and_clear();
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for w in &report.warnings {
            println!("warning: {}: {}", w.object, w.message);
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
            if a.read_data {
                format!(", {} blobs read and authenticated", report.blobs_read)
            } else {
                String::new()
            }
        );
    }
    if report.pruned_history > 0 && !a.json {
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
    if report.problems.is_empty() {
        if !a.json {
            println!("No problems found.");
        }
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "error: {} problems found. Damaged or missing objects cannot be read; other files are unaffected (`nimbus get` still restores them).",
            report.problems.len()
        );
        Ok(ExitCode::from(1))
    }
}

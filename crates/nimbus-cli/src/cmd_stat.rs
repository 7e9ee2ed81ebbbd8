//! `nimbus stat`: objects, stored and logical bytes, dedup and compression.

use anyhow::Result;
use std::process::ExitCode;

use crate::args::GlobalArgs;
use crate::progress::human_bytes;
use crate::{at, store};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Measure this snapshot instead of the newest.
    #[arg(long)]
    pub at: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(g: &GlobalArgs, a: Args) -> Result<ExitCode> {
    let vault = store::open_vault(g).await?;
    let at_id = match a.at.as_deref() {
        Some(s) => Some(at::resolve(&vault, Some(s)).await?.0),
        None => None,
    };
    let s = nimbus_vault::stats::stats(&vault, at_id).await?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&s)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("Store:        {}", vault.backend().describe());
    println!("Objects:      {} ({})", s.total_objects, human_bytes(s.stored_bytes));
    for (kind, c) in &s.objects {
        println!("  {kind:<10}  {:>8}  {:>12}", c.count, human_bytes(c.bytes));
    }
    println!("Snapshots:    {}", s.snapshots);
    print_prune(&vault);
    if let Some(snap) = &s.snapshot {
        println!("Snapshot {}:", &snap[..8]);
        println!("  files            {}", s.files);
        println!(
            "  logical bytes    {} ({})",
            s.logical_bytes,
            human_bytes(s.logical_bytes)
        );
        println!(
            "  unique bytes     {} ({}) in {} blobs",
            s.unique_bytes,
            human_bytes(s.unique_bytes),
            s.unique_blobs
        );
        println!(
            "  stored bytes     {} ({})",
            s.unique_stored_bytes,
            human_bytes(s.unique_stored_bytes)
        );
        println!("  dedup ratio      {:.2}x", s.dedup_ratio);
        println!("  compression      {:.2}x", s.compression_ratio);
    }
    Ok(ExitCode::SUCCESS)
}

/// Prune's line: when it last ran and what it freed, and what waits for
/// the grace period (docs/PRUNE.md §8).
fn print_prune(vault: &nimbus_vault::Vault) {
    let p = vault.prune_summary();
    match &p.last {
        Some(last) => println!(
            "Prune:        last finished {} UTC: freed {} in {} pack{}, {} snapshot{} forgotten ({} freed in all)",
            last.time.format_utc(),
            human_bytes(last.freed_bytes),
            last.deleted_packs,
            if last.deleted_packs == 1 { "" } else { "s" },
            last.forgotten,
            if last.forgotten == 1 { "" } else { "s" },
            human_bytes(p.freed_bytes)
        ),
        None if vault.config().version() < nimbus_vault::gc::GC_SINCE => {
            println!("Prune:        not available until the vault is upgraded (`nimbus upgrade`)")
        }
        None => println!("Prune:        never ran"),
    }
    let waiting: u64 = p.pending.iter().map(|k| k.plan.condemned_bytes()).sum();
    if !p.pending.is_empty() {
        let forgotten: usize = p.pending.iter().map(|k| k.plan.forgotten.len()).sum();
        println!(
            "  waiting      {} in {} pack{} and {} snapshot{} marked, deleted by the next prune after the grace period",
            human_bytes(waiting),
            p.pending.iter().map(|k| k.plan.condemned.len()).sum::<usize>(),
            if p.pending.iter().map(|k| k.plan.condemned.len()).sum::<usize>() == 1 {
                ""
            } else {
                "s"
            },
            forgotten,
            if forgotten == 1 { "" } else { "s" }
        );
    }
}

//! `nimbus prune`: give space back (docs/PRUNE.md). Finishes the plans
//! whose grace period is over and that every active device has seen, then
//! marks what no snapshot needs any more in a new plan, which a later
//! prune finishes. `--now` does both at once, for a vault only this device
//! uses.

use anyhow::{bail, Context, Result};
use nimbus_vault::gc::mark::{Forget, MarkOptions, MarkStep};
use nimbus_vault::gc::sweep::{SweepOptions, SweepReport, Waiting};
use nimbus_vault::gc::{self, PruneTimes};
use nimbus_vault::{DeviceId, RefCache, Vault};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use crate::args::GlobalArgs;
use crate::progress::{count_bar, human_bytes, spinner};
use crate::{device, store};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Delete at once, without waiting for the grace period or for other
    /// devices: only for a vault no other device uses (a full store, say).
    #[arg(long)]
    pub now: bool,
    /// With --now: go ahead although other devices wrote to the vault
    /// lately, because they are switched off and will stay off until this
    /// is done.
    #[arg(long, requires = "now")]
    pub other_devices_are_off: bool,
    #[command(flatten)]
    pub times: TimeArgs,
}

/// Prune's waits, for tests (hidden; below an hour only with
/// `NIMBUS_PRUNE_TEST_TIMES=1`).
#[derive(clap::Args, Debug, Default)]
pub struct TimeArgs {
    /// The grace period between marking and deleting (at least 1h).
    #[arg(long, value_parser = humantime::parse_duration, hide = true)]
    pub grace: Option<Duration>,
    /// Data younger than this is never marked (at least 1h).
    #[arg(long, value_parser = humantime::parse_duration, hide = true)]
    pub young: Option<Duration>,
    /// A device silent for this long is not waited for.
    #[arg(long, value_parser = humantime::parse_duration, hide = true)]
    pub dormant: Option<Duration>,
}

impl TimeArgs {
    /// The waits these flags give; `now` drops the grace period and the
    /// age limit (`prune --now`).
    pub fn times(&self, now: bool) -> Result<PruneTimes> {
        let mut t = PruneTimes::default();
        if let Some(g) = self.grace {
            t.grace = g;
            t.publish_window = t.publish_window.min(g / 3);
        }
        if let Some(y) = self.young {
            t.young = y;
        }
        if let Some(d) = self.dormant {
            t.dormant = d;
        }
        if now {
            t.young = Duration::ZERO;
            t.grace = Duration::ZERO;
            t.publish_window = Duration::ZERO;
            return Ok(t);
        }
        Ok(t.checked(nimbus_host::prune_env::testing())?)
    }
}

pub async fn run(g: &GlobalArgs, a: Args) -> Result<ExitCode> {
    let vault = store::open_vault(g).await?;
    let me = device::device_id(g, &vault.config().vault_id)?;
    let times = a.times.times(a.now)?;
    if a.now {
        refuse_now_while_others_work(g, &vault, &me, times, a.other_devices_are_off).await?;
    }
    acknowledge(g, &vault, &me).await?;
    let swept = sweep(g, &vault, &me, times, a.now).await?;
    let marked = mark(g, &vault, &me, times, Forget::Nothing).await?;
    let mut swept_again = SweepReport::default();
    if a.now && marked.plan.is_some() {
        acknowledge(g, &vault, &me).await?;
        swept_again = sweep(g, &vault, &me, times, true).await?;
    }
    summary(&vault, &swept, &swept_again, &marked, a.now).await;
    Ok(ExitCode::SUCCESS)
}

/// `--now` deletes what a save running elsewhere may be about to use: it
/// is refused while another device wrote its ref lately, or while the
/// vault is mounted on this machine.
async fn refuse_now_while_others_work(
    g: &GlobalArgs,
    vault: &Vault,
    me: &DeviceId,
    times: PruneTimes,
    forced: bool,
) -> Result<()> {
    if let Some(at) = device::mounted_here(g, &vault.config().vault_id) {
        bail!("this vault is mounted at {at} on this machine: unmount it first, since `prune --now` cannot wait for the drive's saves");
    }
    if forced {
        return Ok(());
    }
    let now = std::time::SystemTime::now();
    let mut busy = Vec::new();
    for obj in vault.backend().list("refs/").await? {
        let Some(dev) = nimbus_vault::commit::parse_ref_key(&obj.key) else {
            continue;
        };
        if dev == *me {
            continue;
        }
        let recent = obj.modified.is_none_or(|t| {
            now.duration_since(t).unwrap_or_default() < times.dormant.max(Duration::from_secs(7 * 86400))
        });
        if recent {
            busy.push(dev.to_hex()[..8].to_string());
        }
    }
    if !busy.is_empty() {
        bail!(
            "other devices used this vault in the last week ({}): `prune --now` could delete data they are saving. Run `nimbus prune` without --now (it waits for them), or add --other-devices-are-off if they are switched off",
            busy.join(", ")
        );
    }
    Ok(())
}

/// This device's own ref, if it has one, names every pending plan: this
/// process saves nothing while it prunes, so the acknowledgement is true.
async fn acknowledge(g: &GlobalArgs, vault: &Vault, me: &DeviceId) -> Result<()> {
    let mut cache = RefCache::new();
    let poll = vault.poll_refs(&mut cache).await?;
    let seen = device::load_seen(g, &vault.config().vault_id)?;
    vault
        .acknowledge_plans(
            me,
            seen.get(me).copied().unwrap_or(0),
            &mut cache,
            &poll.gc_pending,
            poll.refs.get(me),
        )
        .await?;
    device::save_seen(g, &vault.config().vault_id, &vault.refs_seen())?;
    Ok(())
}

async fn sweep(g: &GlobalArgs, vault: &Vault, me: &DeviceId, times: PruneTimes, now: bool) -> Result<SweepReport> {
    let bar = count_bar(g.quiet, 0, "Deleting packs");
    let b = bar.clone();
    let opts = SweepOptions {
        dormant: times.dormant,
        now,
        progress: Some(Arc::new(move |done, total| {
            b.set_length(total as u64);
            b.set_position(done as u64);
        })),
    };
    let report = gc::sweep(vault, me, &opts).await.context("prune could not finish")?;
    bar.finish_and_clear();
    Ok(report)
}

/// `nimbus forget`'s mark: forgets `wanted` (less what the mark always
/// keeps) and condemns what only they and no other snapshot needed.
pub async fn mark_forgetting(
    g: &GlobalArgs,
    vault: &Vault,
    times: PruneTimes,
    wanted: std::collections::HashSet<nimbus_vault::CommitId>,
) -> Result<nimbus_vault::gc::MarkReport> {
    let me = device::device_id(g, &vault.config().vault_id)?;
    acknowledge(g, vault, &me).await?;
    mark(g, vault, &me, times, Forget::These(wanted)).await
}

async fn mark(
    g: &GlobalArgs,
    vault: &Vault,
    me: &DeviceId,
    times: PruneTimes,
    forget: Forget,
) -> Result<nimbus_vault::gc::MarkReport> {
    let spin = spinner(g.quiet, "Finding what no snapshot needs");
    let s = spin.clone();
    let opts = MarkOptions {
        times,
        forget,
        progress: Some(Arc::new(move |step| {
            s.set_message(match step {
                MarkStep::ReadingSnapshots { commits } => format!("Reading {commits} snapshots"),
                MarkStep::WalkingFolders { snapshots } => format!("Walking the folders of {snapshots} snapshots"),
                MarkStep::Repacking { packs } => format!("Copying what is still used out of {packs} packs"),
                MarkStep::WritingPlan => "Writing the plan".into(),
            })
        })),
        ..MarkOptions::default()
    };
    let report = gc::mark(vault, me, &opts)
        .await
        .context("prune could not decide what to delete")?;
    spin.finish_and_clear();
    Ok(report)
}

async fn summary(vault: &Vault, swept: &SweepReport, again: &SweepReport, marked: &gc::MarkReport, now: bool) {
    let freed = swept.freed_bytes + again.freed_bytes;
    let packs = swept.deleted_packs + again.deleted_packs;
    if packs > 0 || !swept.done.is_empty() || !again.done.is_empty() {
        println!(
            "Freed {} in {} pack{}; {} snapshot{} forgotten.",
            human_bytes(freed),
            packs,
            if packs == 1 { "" } else { "s" },
            swept.deleted_commits + again.deleted_commits,
            if swept.deleted_commits + again.deleted_commits == 1 {
                ""
            } else {
                "s"
            }
        );
    } else {
        println!("Nothing was ready to delete.");
    }
    if swept.kept_packs + again.kept_packs > 0 {
        println!(
            "Kept {} marked pack(s) that a snapshot made since needs again.",
            swept.kept_packs + again.kept_packs
        );
    }
    if !now {
        if let Some(plan) = marked.plan {
            println!(
                "Marked {} in {} pack{} for deletion (plan {}): a later prune deletes them once the grace period is over and every device has seen the plan.",
                human_bytes(marked.condemned_bytes),
                marked.condemned_packs,
                if marked.condemned_packs == 1 { "" } else { "s" },
                plan.short()
            );
        }
    }
    for (plan, why) in &swept.waiting {
        if swept.done.contains(plan) || again.done.contains(plan) {
            continue;
        }
        println!("Waiting: plan {}: {}", plan.short(), waiting_words(vault, why).await);
    }
}

async fn waiting_words(vault: &Vault, why: &Waiting) -> String {
    match why {
        Waiting::Grace(left) => {
            // Whole minutes, or seconds under a minute (test runs).
            let secs = left.as_secs().max(1);
            let shown = if secs < 60 { secs } else { secs.div_ceil(60) * 60 };
            format!(
                "its grace period ends in {}",
                humantime::format_duration(Duration::from_secs(shown))
            )
        }
        Waiting::Devices(devs) => {
            let mut names = Vec::new();
            let refs = vault.read_refs().await.unwrap_or_default();
            for d in devs {
                let name = match refs.get(d) {
                    Some(r) => vault
                        .read_commit(&r.commit)
                        .await
                        .ok()
                        .map(|c| c.device_name)
                        .filter(|n| !n.is_empty()),
                    None => None,
                };
                names.push(name.unwrap_or_else(|| format!("device {}", &d.to_hex()[..8])));
            }
            format!(
                "waiting for {} to see it (a running Nimbus does so at its next look at the store, within a minute; a device that stays off for a week is not waited for)",
                names.join(", ")
            )
        }
    }
}

//! `nimbus forget`: which snapshots the retention policy keeps, which it
//! forgets, and why (docs/PRUNE.md §2). With `--dry-run` it only shows
//! them; otherwise it marks them in a prune plan (docs/PRUNE.md §4.1)
//! with the data only they need, which `nimbus prune` deletes once the
//! grace period is over and every device has seen the plan.

use anyhow::Result;
use std::collections::{HashMap, HashSet};
use std::process::ExitCode;
use std::time::Duration;

use nimbus_vault::retention::{self, ForgetDecision, RetentionPolicy, Snapshot};
use nimbus_vault::{Commit, CommitId, Timestamp, Vault};

use crate::args::GlobalArgs;
use crate::cmd_ls::printable;
use crate::progress::human_bytes;
use crate::{at, out, store};

/// The flags are restic's; given any `--keep-*`, the policy is exactly
/// the rules given (the others are off), as in restic.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Keep the N newest snapshots (`unlimited`: all).
    #[arg(long, value_name = "N", value_parser = parse_count)]
    pub keep_last: Option<u32>,
    /// Keep the newest snapshot of each of the last N hours that have one.
    #[arg(long, value_name = "N", value_parser = parse_count)]
    pub keep_hourly: Option<u32>,
    /// Keep the newest snapshot of each of the last N days (local time).
    #[arg(long, value_name = "N", value_parser = parse_count)]
    pub keep_daily: Option<u32>,
    /// Keep the newest snapshot of each of the last N weeks (Monday to Sunday).
    #[arg(long, value_name = "N", value_parser = parse_count)]
    pub keep_weekly: Option<u32>,
    /// Keep the newest snapshot of each of the last N months.
    #[arg(long, value_name = "N", value_parser = parse_count)]
    pub keep_monthly: Option<u32>,
    /// Keep the newest snapshot of each of the last N years.
    #[arg(long, value_name = "N", value_parser = parse_count)]
    pub keep_yearly: Option<u32>,
    /// Keep every snapshot made within this span before the newest one
    /// (`36h`, `2d`, `2weeks`, `6M` for six months: `m` is minutes).
    #[arg(long, value_name = "DURATION", value_parser = parse_span)]
    pub keep_within: Option<Duration>,
    /// Only show what would be forgotten; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub times: crate::cmd_prune::TimeArgs,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

fn parse_count(s: &str) -> Result<u32> {
    if s.eq_ignore_ascii_case("unlimited") {
        return Ok(RetentionPolicy::UNLIMITED);
    }
    s.parse::<u32>()
        .map_err(|_| anyhow::anyhow!("`{s}` is not a count: give a whole number (0 or more) or `unlimited`"))
}

fn parse_span(s: &str) -> Result<Duration> {
    humantime::parse_duration(s)
        .map_err(|e| anyhow::anyhow!("`{s}` is not a duration ({e}): write e.g. `36h`, `2d`, `6M`"))
}

/// The policy to apply: the flags if any `--keep-*` is given, else the
/// default. The vault's stored policy, once there is one, goes here as
/// the default instead of [`RetentionPolicy::default`].
pub fn policy_for(_vault: &Vault, a: &Args) -> RetentionPolicy {
    from_flags(a).unwrap_or_default()
}

/// The policy the `--keep-*` flags give, `None` when none is given.
fn from_flags(a: &Args) -> Option<RetentionPolicy> {
    let counts = [
        a.keep_last,
        a.keep_hourly,
        a.keep_daily,
        a.keep_weekly,
        a.keep_monthly,
        a.keep_yearly,
    ];
    if counts.iter().all(Option::is_none) && a.keep_within.is_none() {
        return None;
    }
    Some(RetentionPolicy {
        keep_last: a.keep_last.unwrap_or(0),
        keep_hourly: a.keep_hourly.unwrap_or(0),
        keep_daily: a.keep_daily.unwrap_or(0),
        keep_weekly: a.keep_weekly.unwrap_or(0),
        keep_monthly: a.keep_monthly.unwrap_or(0),
        keep_yearly: a.keep_yearly.unwrap_or(0),
        keep_within: a.keep_within.unwrap_or(Duration::ZERO),
    })
}

pub async fn run(g: &GlobalArgs, a: Args) -> Result<ExitCode> {
    let times = a.times.times(false)?;
    let vault = store::open_vault(g).await?;
    let policy = policy_for(&vault, &a);
    let heads: HashSet<CommitId> = vault.read_refs().await?.values().map(|r| r.commit).collect();
    let commits = at::commits_warning_of_damaged(&vault).await?;
    let snapshots: Vec<Snapshot> = commits.iter().map(|(id, c)| Snapshot::of(*id, c)).collect();
    let protected = retention::always_keep(&snapshots, &heads);
    let now = Timestamp::now();
    let tz = jiff::tz::TimeZone::system();
    let now_offset = local_offset(&tz, now).unwrap_or(0);
    let decision = match retention::plan_forget(&snapshots, &policy, &heads, &protected, now, now_offset) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let by_id: HashMap<CommitId, &Commit> = commits.iter().map(|(id, c)| (*id, c)).collect();
    let local_time = |t: Timestamp| {
        let off = local_offset(&tz, t).unwrap_or(now_offset);
        Timestamp {
            secs: t.secs.saturating_add(i64::from(off)),
            nanos: 0,
        }
        .format_utc()
    };
    if a.json {
        print_json(&policy, &decision, &by_id, &local_time);
    } else {
        print_table(&policy, &decision, &by_id, &local_time, a.dry_run);
    }
    if a.dry_run {
        return Ok(ExitCode::SUCCESS);
    }
    let wanted: HashSet<CommitId> = decision.forgotten_ids().into_iter().collect();
    let marked = crate::cmd_prune::mark_forgetting(g, &vault, times, wanted.clone()).await?;
    if !a.json {
        print_marked(&marked, wanted.len());
    }
    Ok(ExitCode::SUCCESS)
}

/// What the mark did, in words.
fn print_marked(m: &nimbus_vault::gc::MarkReport, wanted: usize) {
    if m.forgotten < wanted {
        out::line(format_args!(
            "{} of those snapshots are younger than a day and are kept until they are older, in case a device is still saving on top of them.",
            wanted - m.forgotten
        ));
    }
    match m.plan {
        Some(plan) => out::line(format_args!(
            "Forgot {} snapshot{}; {} in {} pack{} that only they needed will be deleted by `nimbus prune` once every device has seen plan {} and the grace period is over.",
            m.forgotten,
            if m.forgotten == 1 { "" } else { "s" },
            human_bytes(m.condemned_bytes),
            m.condemned_packs,
            if m.condemned_packs == 1 { "" } else { "s" },
            plan.short()
        )),
        None => out::line("Nothing to forget."),
    }
}

/// The UTC offset of the local time zone at `t`, in seconds; `None` for a
/// time outside what the time zone library covers (years past ±9999).
fn local_offset(tz: &jiff::tz::TimeZone, t: Timestamp) -> Option<i32> {
    let nanos = i32::try_from(t.nanos.min(999_999_999)).ok()?;
    let ts = jiff::Timestamp::new(t.secs, nanos).ok()?;
    Some(tz.to_offset(ts).seconds())
}

/// `keep 20 latest, 48 hourly, ... snapshots and all within 1day of the
/// newest` (restic's wording).
fn describe(p: &RetentionPolicy) -> String {
    let count = |n: u32| {
        if n == RetentionPolicy::UNLIMITED {
            "all".to_string()
        } else {
            n.to_string()
        }
    };
    let parts: Vec<String> = [
        (p.keep_last, "latest"),
        (p.keep_hourly, "hourly"),
        (p.keep_daily, "daily"),
        (p.keep_weekly, "weekly"),
        (p.keep_monthly, "monthly"),
        (p.keep_yearly, "yearly"),
    ]
    .into_iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, what)| format!("{} {what}", count(n)))
    .collect();
    let mut s = String::from("keep");
    if !parts.is_empty() {
        s.push_str(&format!(" {} snapshots", parts.join(", ")));
    }
    if !p.keep_within.is_zero() {
        if !parts.is_empty() {
            s.push_str(" and");
        }
        s.push_str(&format!(
            " all within {} of the newest",
            humantime::format_duration(p.keep_within)
        ));
    }
    s
}

/// A commit's device as people know it: its name, else its id's start.
fn device_label(c: &Commit) -> String {
    let name = printable(c.device_name.as_bytes());
    let name = if name.is_empty() {
        c.device.to_hex()[..8].to_string()
    } else {
        name
    };
    name.chars().take(20).collect()
}

fn print_table(
    policy: &RetentionPolicy,
    d: &ForgetDecision,
    by_id: &HashMap<CommitId, &Commit>,
    local_time: &dyn Fn(Timestamp) -> String,
    dry_run: bool,
) {
    out::line(format_args!(
        "Policy: {}; every device's head, the merge bases of heads and the snapshots between are always kept.",
        describe(policy)
    ));
    if d.snapshots.is_empty() {
        out::line("No snapshots yet.");
        return;
    }
    out::line(format_args!(
        "{:<8}  {:<19}  {:<20}  {:>7}  {:>10}  {:<6}  Reasons",
        "ID", "Time", "Device", "Files", "Size", "Action"
    ));
    for s in &d.snapshots {
        let c = by_id.get(&s.id);
        let reasons: Vec<&str> = s.reasons.iter().map(|r| r.as_str()).collect();
        let line = format!(
            "{:<8}  {:<19}  {:<20}  {:>7}  {:>10}  {:<6}  {}",
            s.id.short(),
            local_time(s.time),
            c.map(|c| device_label(c)).unwrap_or_default(),
            c.map(|c| c.files).unwrap_or(0),
            human_bytes(c.map(|c| c.bytes).unwrap_or(0)),
            if s.keep() { "keep" } else { "forget" },
            reasons.join(", ")
        );
        out::line(line.trim_end());
    }
    out::line(format_args!(
        "{} {} of {} snapshots",
        if dry_run { "would forget" } else { "forgetting" },
        d.forgotten().count(),
        d.snapshots.len()
    ));
}

fn print_json(
    policy: &RetentionPolicy,
    d: &ForgetDecision,
    by_id: &HashMap<CommitId, &Commit>,
    local_time: &dyn Fn(Timestamp) -> String,
) {
    let snaps: Vec<serde_json::Value> = d
        .snapshots
        .iter()
        .map(|s| {
            let c = by_id.get(&s.id);
            serde_json::json!({
                "id": s.id.to_hex(),
                "time": at::format_time(s.time),
                "local_time": local_time(s.time),
                "device": c.map(|c| c.device.to_hex()),
                "device_name": c.map(|c| c.device_name.clone()),
                "files": c.map(|c| c.files),
                "bytes": c.map(|c| c.bytes),
                "keep": s.keep(),
                "reasons": s.reasons,
            })
        })
        .collect();
    out::line(serde_json::json!({
        "dry_run": true,
        "policy": {
            "keep_last": policy.keep_last, "keep_hourly": policy.keep_hourly,
            "keep_daily": policy.keep_daily, "keep_weekly": policy.keep_weekly,
            "keep_monthly": policy.keep_monthly, "keep_yearly": policy.keep_yearly,
            "keep_within_secs": policy.keep_within.as_secs(),
        },
        "snapshots": snaps,
        "forget": d.forgotten().count(),
        "total": d.snapshots.len(),
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_spans_parse_as_restic_writes_them() {
        assert_eq!(parse_count("7").ok(), Some(7));
        assert_eq!(parse_count("unlimited").ok(), Some(RetentionPolicy::UNLIMITED));
        assert!(parse_count("-1").is_err());
        assert!(parse_count("seven").is_err());
        assert_eq!(parse_span("36h").ok(), Some(Duration::from_secs(36 * 3600)));
        assert_eq!(parse_span("2d").ok(), Some(Duration::from_secs(2 * 86_400)));
        assert!(parse_span("soon").is_err());
    }

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        a: Args,
    }

    fn flags(args: &[&str]) -> Option<RetentionPolicy> {
        use clap::Parser;
        let cli = Cli::try_parse_from(std::iter::once("forget").chain(args.iter().copied())).expect("flags parse");
        from_flags(&cli.a)
    }

    #[test]
    fn flags_give_the_whole_policy_and_none_the_default() {
        assert_eq!(flags(&["--dry-run"]), None);
        assert_eq!(
            flags(&["--keep-daily", "7", "--keep-within", "2d"]),
            Some(RetentionPolicy {
                keep_daily: 7,
                keep_within: Duration::from_secs(2 * 86_400),
                ..RetentionPolicy::nothing()
            })
        );
        assert_eq!(flags(&["--keep-last", "0"]), Some(RetentionPolicy::nothing()));
    }

    #[test]
    fn the_policy_is_described_as_given() {
        assert_eq!(
            describe(&RetentionPolicy::default()),
            "keep 20 latest, 48 hourly, 30 daily, 12 weekly, 12 monthly snapshots and all within 1day of the newest"
        );
        let p = RetentionPolicy {
            keep_last: 1,
            keep_daily: RetentionPolicy::UNLIMITED,
            ..RetentionPolicy::nothing()
        };
        assert_eq!(describe(&p), "keep 1 latest, all daily snapshots");
        let p = RetentionPolicy {
            keep_within: Duration::from_secs(36 * 3600),
            ..RetentionPolicy::nothing()
        };
        assert_eq!(describe(&p), "keep all within 1day 12h of the newest");
    }
}

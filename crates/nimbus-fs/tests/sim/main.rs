//! The deterministic simulation of several devices on one vault
//! (docs/SYNC.md §6.2): 2 to 4 drives, each a real `Fs` driven by hand
//! (`FsOptions::manual`: no thread of its own), over one store in memory
//! that lags listings, fails requests before or after they land and cuts
//! devices off; random edits, renames, moves, deletes, held handles,
//! crashes and partitions from one seed; and two pruners (docs/PRUNE.md)
//! that mark and sweep, crash inside either phase and mark at once, while
//! the store's clock moves on by hours and a device's machine sleeps past
//! the grace period. At the end, with every fault healed and one more
//! prune, every device holds the same tree and bytes, every version any
//! device committed is in it unless a person replaced or deleted it on top
//! of it (§3.7), in which case a snapshot keeps it unless a prune forgot
//! that snapshot, and every blob of every snapshot not forgotten reads.
//!
//! `NIMBUS_SIM_RUNS` runs (default [`DEFAULT_RUNS`]; CI, `tests/run.sh`,
//! 2,000), seeds 1, 2..., in two tests of half the seeds each, so the two
//! run side by side; `NIMBUS_SIM_SEED` reruns one seed, `NIMBUS_SIM_OPS`
//! the most operations per run. A failure prints its seed and the shortest
//! operation list found that still fails.

#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod ops;
mod oracle;
mod rng;
mod store;
mod world;

use std::time::{Duration, Instant};

use ops::{plan, Plan};

/// Runs when nothing says otherwise (a developer's `cargo nextest run`):
/// about 35 s in a debug build on a two-core machine when idle. CI sets
/// `NIMBUS_SIM_RUNS=2000` (about 0.25 s a run, in two halves side by side).
const DEFAULT_RUNS: u64 = 120;
const DEFAULT_OPS: usize = 60;
/// Of ten runs, at least this many must free space by pruning.
const MIN_FREED_TENTHS: usize = 7;
/// How long shrinking a failure may take.
const SHRINK_FOR: Duration = Duration::from_secs(120);

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

/// Runs a plan; `Err` says what check failed (a panic counts).
fn run(plan: &Plan) -> Result<world::Stats, String> {
    let p = plan.clone();
    match std::panic::catch_unwind(move || world::run(&p, false)) {
        Ok(Ok(stats)) => {
            if std::env::var_os("NIMBUS_SIM_VERBOSE").is_some() {
                eprintln!("seed {}: {stats:?}", plan.seed);
            }
            Ok(stats)
        }
        Ok(Err(e)) => Err(e),
        Err(e) => Err(format!(
            "panicked: {}",
            e.downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default()
        )),
    }
}

/// A failure's kind: its message without the operation it happened at,
/// numbers and ids, so shrinking keeps to the same failure.
fn kind(why: &str) -> String {
    let rest = match why.strip_prefix("operation ") {
        Some(r) => r.split_once("): ").map_or(r, |(_, tail)| tail),
        None => why,
    };
    let mut out = String::new();
    for c in rest.chars() {
        let c = if c.is_ascii_hexdigit() { '#' } else { c };
        if !(c == '#' && out.ends_with('#')) {
            out.push(c);
        }
    }
    out.chars().take(50).collect()
}

/// Drops operations one at a time while the plan still fails the same
/// way.
fn shrink(mut plan: Plan, mut why: String) -> (Plan, String) {
    let until = Instant::now() + SHRINK_FOR;
    let want = kind(&why);
    let mut i = plan.ops.len();
    while i > 0 && Instant::now() < until {
        i -= 1;
        let smaller = plan.without(i);
        if let Err(w) = run(&smaller) {
            if kind(&w) == want {
                plan = smaller;
                why = w;
            }
        }
    }
    (plan, why)
}

/// `NIMBUS_SIM_KEEP=3,5,9`: only those operations of the seed's plan (to
/// replay a shrunk plan).
fn keep_only(plan: Plan) -> Plan {
    match std::env::var("NIMBUS_SIM_KEEP") {
        Ok(list) => {
            let keep: Vec<usize> = list.split(',').filter_map(|n| n.trim().parse().ok()).collect();
            plan.only(&keep)
        }
        Err(_) => plan,
    }
}

#[test]
fn devices_converge_and_lose_no_version_odd_seeds() {
    converge(1);
}

#[test]
fn devices_converge_and_lose_no_version_even_seeds() {
    converge(0);
}

/// The seeds of one half (`seed % 2 == half`); a seed asked for by
/// `NIMBUS_SIM_SEED` runs in the half it belongs to.
fn seeds(half: u64) -> Vec<u64> {
    match env_u64("NIMBUS_SIM_SEED") {
        Some(s) => vec![s].into_iter().filter(|s| s % 2 == half).collect(),
        None => (1..=env_u64("NIMBUS_SIM_RUNS").unwrap_or(DEFAULT_RUNS))
            .filter(|s| s % 2 == half)
            .collect(),
    }
}

fn converge(half: u64) {
    let max_ops = env_u64("NIMBUS_SIM_OPS").map_or(DEFAULT_OPS, |n| n as usize);
    let seeds = seeds(half);
    let started = Instant::now();
    let mut freed_seeds = 0;
    for seed in &seeds {
        let plan = keep_only(plan(*seed, max_ops));
        let res = run(&plan);
        if let Ok(stats) = &res {
            freed_seeds += usize::from(stats.plans_done > 0 && stats.freed > 0);
        }
        if let Err(why) = res {
            if std::env::var_os("NIMBUS_SIM_ALL").is_some() {
                eprintln!("seed {seed} fails: {why}");
                continue;
            }
            eprintln!("seed {seed} fails: {why}\n{plan}");
            if std::env::var_os("NIMBUS_SIM_NO_SHRINK").is_some() {
                panic!("the simulation failed with seed {seed}: {why}");
            }
            let (small, small_why) = shrink(plan, why.clone());
            panic!(
                "the simulation failed with seed {seed} (rerun: NIMBUS_SIM_SEED={seed}): {why}\n\
                 shortest failing plan found ({small_why}):\n{small}"
            );
        }
    }
    eprintln!(
        "{} simulated runs in {:.1?}, {freed_seeds} of them freed space",
        seeds.len(),
        started.elapsed()
    );
    // Every run ends with a prune (docs/PRUNE.md §9 step 9): most must
    // finish a plan that frees bytes, or the pruning went untested.
    if seeds.len() >= 20 && std::env::var_os("NIMBUS_SIM_KEEP").is_none() {
        assert!(
            freed_seeds * 10 >= seeds.len() * MIN_FREED_TENTHS,
            "only {freed_seeds} of {} runs freed space",
            seeds.len()
        );
    }
}

/// The oracle is not blind: a file deleted behind its back (no person
/// recorded as replacing it) is a lost version.
#[test]
fn the_oracle_sees_a_lost_version() {
    let mut seen = 0;
    for seed in 1..=10 {
        match world::run(&plan(seed, DEFAULT_OPS), true) {
            Err(e) if e.contains("versions lost") => seen += 1,
            Err(e) if e.contains("nothing to sabotage") => {}
            other => panic!("seed {seed}: a lost version went unseen: {:?}", other.map(|_| ())),
        }
    }
    assert!(seen >= 5, "too few runs had a file to lose: {seen}");
}

#[test]
fn plans_reach_every_kind_of_operation() {
    let mut kinds = std::collections::BTreeSet::new();
    for seed in 1..=50 {
        for op in plan(seed, DEFAULT_OPS).ops {
            kinds.insert(
                format!("{op:?}")
                    .split([' ', '{'])
                    .next()
                    .unwrap_or_default()
                    .to_string(),
            );
        }
    }
    assert_eq!(kinds.len(), 21, "{kinds:?}");
    assert_eq!(plan(7, 60).ops, plan(7, 60).ops, "a seed names one plan");
}

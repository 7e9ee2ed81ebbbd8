//! The simulation's pruners (docs/PRUNE.md §9 step 9): extra vaults on
//! views of their own that mark and sweep, crash at any request of either
//! phase, and mark two at once; the store's clock the plan moves on; and
//! the prune every run ends with, which must free space.

use nimbus_vault::gc::mark::{CommitInfo, Forget, MarkOptions};
use nimbus_vault::gc::sweep::SweepOptions;
use nimbus_vault::gc::{self, PruneTimes, SweepReport};
use nimbus_vault::{CommitId, DeviceId, Vault};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use super::{bug, Outcome, World};
use crate::oracle;
use crate::store::{Faults, SimView};

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

/// Short waits, so that a run of a few dozen operations passes through
/// several grace periods and a device can fall dormant.
pub const TIMES: PruneTimes = PruneTimes {
    young: HOUR,
    grace: Duration::from_secs(2 * 3600),
    dormant: Duration::from_secs(6 * 3600),
    publish_window: Duration::from_secs(600),
};

/// A device that only prunes: no ref, no drive.
pub struct Pruner {
    pub id: DeviceId,
    pub view: Arc<SimView>,
    /// `None` after a crash: the next phase opens the vault afresh.
    pub vault: Option<Vault>,
}

/// Keeps the `keep` newest snapshots by store time (0: forgets none).
fn keep_newest(keep: usize) -> Forget {
    if keep == 0 {
        return Forget::Nothing;
    }
    Forget::Rule(Arc::new(move |all: &[CommitInfo]| {
        let mut by_age: Vec<&CommitInfo> = all.iter().collect();
        by_age.sort_by_key(|c| std::cmp::Reverse((c.stored, c.id)));
        by_age
            .into_iter()
            .skip(keep)
            .map(|c| c.id)
            .collect::<HashSet<CommitId>>()
    }))
}

fn mark_opts(keep: usize) -> MarkOptions {
    MarkOptions {
        times: TIMES,
        forget: keep_newest(keep),
        ..MarkOptions::default()
    }
}

impl World {
    /// The store's clock moves on.
    pub(super) fn advance(&mut self, by: Duration) {
        self.store.honest().advance_clock(by);
    }

    pub(super) fn advance_minutes(&mut self, minutes: u64) {
        self.advance(MINUTE * minutes as u32);
    }

    /// Pruner `p`'s vault, opened afresh after a crash.
    fn pruner_vault(&mut self, p: usize) -> Result<Vault, String> {
        if let Some(v) = &self.pruners[p].vault {
            return Ok(v.clone());
        }
        let view = self.pruners[p].view.clone();
        let v = self
            .rt
            .block_on(Vault::open(view, b"pw"))
            .map_err(|e| format!("the vault does not open on pruner {p}: {e}"))?;
        self.pruners[p].vault = Some(v.clone());
        Ok(v)
    }

    /// After a phase cut off at a request: the pruner dies (its vault is
    /// dropped), the store must pass `check`, and the view heals.
    fn pruner_crashed(&mut self, p: usize) -> Outcome {
        self.stats.pruner_crashes += 1;
        self.pruners[p].vault = None;
        *self.pruners[p].view.faults.lock().unwrap() = Faults::default();
        oracle::check_store(&self.rt, &self.store)
    }

    /// A mark by pruner `p`; one not cut off must succeed.
    pub(super) fn mark(&mut self, p: usize, keep: usize, cut: Option<u64>) -> Outcome {
        let vault = self.pruner_vault(p)?;
        self.pruners[p].view.set(|f| f.cut_after = cut);
        let res = self
            .rt
            .block_on(gc::mark(&vault, &self.pruners[p].id, &mark_opts(keep)));
        self.stats.marks += 1;
        match (res, cut) {
            (Ok(r), _) => {
                self.stats.plans += usize::from(r.plan.is_some());
                if cut.is_some() {
                    self.pruners[p].view.set(|f| f.cut_after = None);
                }
                Ok(())
            }
            (Err(_), Some(_)) => self.pruner_crashed(p),
            (Err(e), None) => Err(format!("the mark of pruner {p} fails: {e}")),
        }
    }

    /// Both pruners mark at once, each request of one letting the other
    /// run, so that neither sees the other's plan while it marks.
    pub(super) fn mark_both(&mut self, keep: usize) -> Outcome {
        let (a, b) = (self.pruner_vault(0)?, self.pruner_vault(1)?);
        let (ia, ib) = (self.pruners[0].id, self.pruners[1].id);
        for p in &self.pruners {
            p.view.set(|f| f.yield_each = true);
        }
        let opts = mark_opts(keep);
        let (ra, rb) = self
            .rt
            .block_on(async { tokio::join!(gc::mark(&a, &ia, &opts), gc::mark(&b, &ib, &opts)) });
        for p in &self.pruners {
            p.view.set(|f| f.yield_each = false);
        }
        self.stats.marks += 2;
        for (p, r) in [ra, rb].into_iter().enumerate() {
            let r = r.map_err(|e| format!("the mark of pruner {p}, beside the other's, fails: {e}"))?;
            self.stats.plans += usize::from(r.plan.is_some());
        }
        Ok(())
    }

    /// A sweep by pruner `p`; one not cut off must succeed.
    pub(super) fn sweep(&mut self, p: usize, cut: Option<u64>) -> Outcome {
        let vault = self.pruner_vault(p)?;
        self.pruners[p].view.set(|f| f.cut_after = cut);
        let res = self
            .rt
            .block_on(gc::sweep(&vault, &self.pruners[p].id, &SweepOptions::new(TIMES)));
        self.pruners[p].view.set(|f| f.cut_after = None);
        match (res, cut) {
            (Ok(r), _) => {
                self.swept(&r);
                Ok(())
            }
            (Err(_), Some(_)) => self.pruner_crashed(p),
            (Err(e), None) => Err(format!("the sweep of pruner {p} fails: {e}")),
        }
    }

    fn swept(&mut self, r: &SweepReport) {
        self.stats.sweeps += 1;
        self.stats.plans_done += r.done.len();
        self.stats.freed += r.freed_bytes;
        self.stats.kept_packs += r.kept_packs;
    }

    /// The prune every run ends with, every fault healed: a mark once the
    /// last saves are older than `young`, a poll of every device (each
    /// acknowledges the plan by itself), the grace period, and a sweep
    /// that must finish every plan pending.
    pub(super) fn final_prune(&mut self) -> Outcome {
        for p in 0..self.pruners.len() {
            *self.pruners[p].view.faults.lock().unwrap() = Faults::default();
        }
        self.advance(TIMES.young + MINUTE);
        let keep = 1 + (self.seed % 3) as usize;
        self.mark(0, keep, None)?;
        for i in 0..self.devices.len() {
            let fs = self.fs(i);
            fs.sync_step(false)
                .map_err(|e| format!("{} does not poll after the mark: {}", self.devices[i].name, bug(e)))?;
            fs.flush_metadata().map_err(bug)?;
        }
        self.advance(TIMES.grace + MINUTE);
        let vault = self.pruner_vault(0)?;
        let r = self
            .rt
            .block_on(gc::sweep(&vault, &self.pruners[0].id, &SweepOptions::new(TIMES)))
            .map_err(|e| format!("the final sweep fails: {e}"))?;
        self.swept(&r);
        if !r.waiting.is_empty() {
            return Err(format!(
                "after the grace period, with every device polling, plans still wait: {:?}",
                r.waiting
            ));
        }
        Ok(())
    }
}

//! Prune without a lock (docs/PRUNE.md): the objects of format version 4
//! ([`format`]), what a client knows of them and how saves obey them
//! ([`known`], [`rescue`]), and the phases any device may run: mark
//! ([`mark`]) and sweep ([`sweep`]).

pub mod clock;
pub mod format;
pub mod known;
pub(crate) mod live;
pub mod mark;
pub mod rescue;
pub mod sweep;

use std::time::Duration;

pub use format::{CondemnedPack, GcDone, GcPlan, PlanId};
pub use known::{Finished, KnownPlan, PruneSummary};
pub use mark::{mark, MarkOptions, MarkReport};
pub use rescue::Rescued;
pub use sweep::{sweep, SweepReport};

use crate::error::{Result, VaultError};

/// The first format version with prune's objects (docs/PRUNE.md §3).
pub const GC_SINCE: u64 = 4;

/// The waits of prune's rules (docs/PRUNE.md §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PruneTimes {
    /// Packs, index objects and commits younger than this (store time) are
    /// never condemned or forgotten.
    pub young: Duration,
    /// From a plan's store time to the first deletion it allows (written
    /// into each plan; a sweep waits for the plan's own).
    pub grace: Duration,
    /// A device whose ref was not rewritten for this long, since before a
    /// plan, is not waited for.
    pub dormant: Duration,
    /// A publish that takes longer than this after its look at the plans
    /// looks again (measured on [`clock::boottime`]).
    pub publish_window: Duration,
}

const HOUR: Duration = Duration::from_secs(3600);

impl Default for PruneTimes {
    fn default() -> Self {
        PruneTimes {
            young: 24 * HOUR,
            grace: 24 * HOUR,
            dormant: 7 * 24 * HOUR,
            publish_window: Duration::from_secs(600),
        }
    }
}

impl PruneTimes {
    /// These times if they keep the rules safe: `grace` and `young` at
    /// least an hour (the listing lag this design allows, §1), and the
    /// publish window well inside the grace period. Below the floors only
    /// for a test (`testing`: the caller found `NIMBUS_PRUNE_TEST_TIMES=1`).
    pub fn checked(self, testing: bool) -> Result<PruneTimes> {
        if !testing && (self.grace < HOUR || self.young < HOUR) {
            return Err(VaultError::invalid_input(
                "the grace period and the age of data prune may touch must each be at least an hour, so that a device in the middle of a save is never cut short",
            ));
        }
        if self.publish_window * 2 > self.grace {
            return Err(VaultError::invalid_input(
                "the grace period must be more than twice the publish window",
            ));
        }
        Ok(self)
    }
}

//! Finishing a head change that was under way (docs/SYNC.md §4.2): the
//! `applying` marker is set durably before this device's ref is written
//! and cleared by the transaction that records the new head. Found set (at
//! load, after a crash or a stop with the store down; or at the next cycle,
//! after a publish that failed), it says what to finish, so a ref PUT that
//! landed although it reported an error never makes this device build a
//! second commit of the same changes on the old parent.

use nimbus_vault::{CommitId, RefCache, RefPoll};

use crate::commit::Engine;
use crate::error::Result;
use crate::local::Local;
use crate::meta::state;

/// What [`finish`] found.
#[derive(Debug, Default)]
pub(crate) struct Finished {
    /// A poll it made on the way (its news must not be lost).
    pub poll: Option<RefPoll>,
    /// A fast-forward still to apply (the marker stays set until the apply's
    /// transaction clears it).
    pub fast_forward: Option<CommitId>,
}

/// Finishes a head change of this device's own (a marker with `publish`):
/// writes the ref to the marker's head unless the store already has it
/// there, then records the head, the ref's update number and the committed
/// epoch, and clears the marker. For its own commit the rows already are
/// the commit's, so nothing else changes. A fast-forward's marker is
/// handed back for the apply. No marker: nothing to do, no request.
pub(crate) fn finish(local: &Local, engine: &Engine, cache: &mut RefCache) -> Result<Finished> {
    let Some(marker) = local.db.read(state::applying)? else {
        return Ok(Finished::default());
    };
    if !marker.publish {
        return Ok(Finished {
            poll: None,
            fast_forward: Some(marker.head),
        });
    }
    let poll = local.rt.block_on(local.vault.poll_refs(cache))?;
    let landed = poll
        .refs
        .get(&engine.device())
        .filter(|r| r.commit == marker.head)
        .map(|r| r.seq);
    let (seq, poll) = match landed {
        Some(seq) => (seq, poll),
        None => {
            let mut published = engine.write_own_ref(marker.head, cache)?;
            // Both polls' news count.
            published.poll.changed.extend(poll.changed);
            (published.seq, published.poll)
        }
    };
    tracing::info!("finished publishing commit {} left under way", marker.head);
    // An extra parent found at this load is another device's head, which
    // the commit did not have: it stays for the next one, as before.
    engine.complete(&marker, seq, false)?;
    Ok(Finished {
        poll: Some(poll),
        fast_forward: None,
    })
}

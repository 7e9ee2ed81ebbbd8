//! Finishing a head change that was under way (docs/SYNC.md §4.2): the
//! `applying` marker is set durably before this device's ref is written
//! and cleared by the transaction that records the new head. Found set (at
//! load, after a crash or a stop with the store down; or at the next cycle,
//! after a publish that failed), it says what to finish, so a ref PUT that
//! landed although it reported an error never makes this device build a
//! second commit of the same changes on the old parent.

use nimbus_vault::{CommitId, RefCache, RefPoll};

use super::heads;
use crate::commit::Engine;
use crate::error::{ErrorKind, FsError, Result};
use crate::local::Local;
use crate::meta::state::{self, Applying};

/// What [`finish`] found.
#[derive(Debug, Default)]
pub(crate) struct Finished {
    /// A poll it made on the way (its news must not be lost).
    pub poll: Option<RefPoll>,
    /// What the caller still has to do.
    pub then: Then,
}

/// What is left once the ref is where the marker says.
#[derive(Debug, Default)]
pub(crate) enum Then {
    #[default]
    Nothing,
    /// A fast-forward to apply (the marker stays set until the apply's
    /// transaction clears it).
    FastForward(CommitId),
    /// A merge commit, published (the ref's update number `seq`), whose
    /// tree the rows do not hold yet: the apply of §4.1 runs again.
    ApplyMerge { marker: Applying, seq: u64 },
}

/// Finishes a head change of this device's own (a marker with `publish`):
/// writes the ref to the marker's head unless the store already has it
/// there. For its own commit the rows already are the commit's, so the
/// head, the ref's update number and the committed epoch are recorded and
/// the marker cleared; for a merge commit the apply is handed back. A
/// fast-forward's marker is handed back for the apply. No marker: nothing
/// to do, no request.
pub(crate) fn finish(local: &Local, engine: &Engine, cache: &mut RefCache) -> Result<Finished> {
    let Some(marker) = local.db.read(state::applying)? else {
        return Ok(Finished::default());
    };
    if !marker.publish {
        return Ok(Finished {
            poll: None,
            then: Then::FastForward(marker.head),
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
    if !rows_hold(local, &marker)? {
        engine.note_ref_seq(seq)?;
        return Ok(Finished {
            poll: Some(poll),
            then: Then::ApplyMerge { marker, seq },
        });
    }
    engine.complete(&marker, seq)?;
    Ok(Finished {
        poll: Some(poll),
        then: Then::Nothing,
    })
}

/// Whether the rows already hold the marker's head: a commit `build` made
/// of them, whose parents are exactly this drive's head (and the extra
/// parent an older database left). A merge commit's are not: with a
/// commit `c` built, its parents name `c`, never the local head (which
/// `c` descends from); without one, its marker has no epoch, which every
/// marker of a commit of our own has.
fn rows_hold(local: &Local, marker: &Applying) -> Result<bool> {
    if marker.epoch.is_none() {
        return Ok(false);
    }
    let row = heads::commit_row(local, &marker.head)?.ok_or_else(|| {
        FsError::new(
            ErrorKind::Corrupt,
            format!(
                "the snapshot {} this device was publishing cannot be read from the vault",
                marker.head
            ),
        )
    })?;
    let (head, extra) = local.db.read(|c| Ok((state::head(c)?, state::extra_parent(c)?)))?;
    let from_head = head.is_none_or(|h| row.parents.contains(&h));
    Ok(from_head && row.parents.iter().all(|p| Some(*p) == head || Some(*p) == extra))
}

//! The heads of a poll (docs/SYNC.md §2.5): this drive's head against the
//! commits of the other devices' refs, reduced by `nimbus_merge`'s
//! `reduce_heads` over the local commit cache (`meta/commits.rs`), which
//! fetches each commit from the vault once.

use nimbus_merge::base::{reduce_heads, CommitInfo, CommitSource, Limits};
use nimbus_vault::{Commit, CommitId, VaultError};

use crate::error::{FsError, Result};
use crate::local::Local;
use crate::meta::commits::{self, CommitRow};

/// What a poll's heads come to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Heads {
    /// Ours is the only head: every other ref is behind it, or equal.
    Ours,
    /// One other head, which ours is behind (or the same state as): a
    /// fast-forward.
    Ahead(CommitId),
    /// Several heads (ours among them, or not): a merge's business. Ours
    /// is not in the list.
    Several(Vec<CommitId>),
}

/// Reduces `ours` and `others` to the heads that matter.
pub(crate) fn decide(local: &Local, ours: Option<CommitId>, others: &[CommitId]) -> Result<Heads> {
    let mut all: Vec<CommitId> = others.to_vec();
    all.extend(ours);
    let kept = reduce_heads(&mut Source { local }, &all, &Limits::default())?;
    Ok(match kept.as_slice() {
        [] => Heads::Ours,
        [one] if Some(*one) == ours => Heads::Ours,
        [one] => Heads::Ahead(*one),
        many => Heads::Several(many.iter().copied().filter(|h| Some(*h) != ours).collect()),
    })
}

/// Whether `ours` is `other` or descends from it: the two reduce to
/// `ours` alone. Reads the commits deciding the heads just cached.
pub(crate) fn descends(local: &Local, ours: CommitId, other: CommitId) -> Result<bool> {
    if ours == other {
        return Ok(true);
    }
    let kept = reduce_heads(&mut Source { local }, &[ours, other], &Limits::default())?;
    Ok(kept == [ours])
}

/// The cached commit `id`, fetched from the vault (and cached) when it is
/// not; `None` when the vault does not have it or it does not open.
pub(crate) fn commit_row(local: &Local, id: &CommitId) -> Result<Option<CommitRow>> {
    if let Some(row) = local.db.read(|c| commits::get(c, id))? {
        return Ok(Some(row));
    }
    let commit = match local.rt.block_on(local.vault.read_commit(id)) {
        Ok(c) => c,
        Err(VaultError::Missing { .. } | VaultError::Corrupt { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    Ok(Some(remember(local, *id, &commit)?))
}

/// Puts commit `id` in the cache: one this drive just wrote (so deciding
/// the heads or merging never fetches it), or one just fetched.
pub(crate) fn remember(local: &Local, id: CommitId, commit: &Commit) -> Result<CommitRow> {
    let row = CommitRow {
        id,
        parents: commit.parents.clone(),
        generation: commit.generation,
        device: commit.device,
        device_name: commit.device_name.clone(),
        root: commit.root,
        time: commit.time,
        store_time: None,
    };
    local.db.write(|c| commits::insert(c, &row))?;
    Ok(row)
}

/// The drive's commits for the ancestor search: the local cache, then the
/// vault.
struct Source<'a> {
    local: &'a Local,
}

impl CommitSource for Source<'_> {
    type Error = FsError;

    fn commits(&mut self, ids: &[CommitId]) -> Result<Vec<Option<CommitInfo>>> {
        ids.iter()
            .map(|id| {
                Ok(commit_row(self.local, id)?.map(|r| CommitInfo {
                    parents: r.parents,
                    generation: r.generation,
                    root: r.root,
                }))
            })
            .collect()
    }

    fn pruned(&self, id: &CommitId) -> bool {
        self.local.vault.is_forgotten(id)
    }
}

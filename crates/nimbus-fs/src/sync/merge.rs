//! The merge in the sync cycle (docs/SYNC.md §4.1, step 18): the heads
//! read from the history, `nimbus_merge::merge` over the vault's trees,
//! the merge commit, its publishing through the `applying` marker, and the
//! apply that brings the rows to it.
//!
//! This module decides nothing about files: the rules are the merge
//! crate's, the same on every device. It supplies what only a drive has:
//! the history (`history.rs`), the trees (any [`Trees`], the vault's on a
//! drive), the conflict copies' ids keyed by the vault, and the commit.

use nimbus_merge::{flatten, Content, Flat, Limits, MergeError, Merged, Trees};
use nimbus_vault::{Commit, CommitId, DeviceId, EntryKind, FileId, IndexId, NewCommit, Saver, Timestamp};

use super::apply::Target;
use super::history::History;
use super::trees::VaultTrees;
use super::{heads, label_of, Cycle, Syncer};
use crate::commit::Built;
use crate::error::{ErrorKind, FsError, Result};
use crate::local::Local;
use crate::meta::inodes;
use crate::meta::state::{self, Applying};

impl Syncer {
    /// Merges `others` with ours (`built`, the commit of the local changes
    /// just built, else this drive's head), publishes the merge commit
    /// through the `applying` marker (set durably, then the ref), and
    /// applies it to the rows: from `built`'s tree (else the head's), with
    /// what changed here since `built` began kept. Fails before anything is
    /// published when the store cannot be reached (the next cycle tries
    /// again, `built`'s changes still pending); a history that cannot be
    /// read merges as a union (the merge crate's rule).
    pub(super) fn merge(&self, cy: &mut Cycle, built: Option<Built>, others: Vec<CommitId>) -> Result<()> {
        let (head, committed) = self
            .local
            .db
            .read(|c| Ok((state::head(c)?, state::committed_epoch(c)?)))?;
        let ours = built.as_ref().map(|b| b.id).or(head);
        let mut list = others;
        list.extend(ours);
        let base = match &built {
            Some(b) => Some(b.commit.root),
            None => self.root_of(head)?,
        };
        let ours_totals = match &built {
            Some(b) => (b.commit.files, b.commit.bytes),
            // Nothing pending (else a commit would have been built): the
            // rows are the head.
            None => self.local.db.read(inodes::file_totals)?,
        };
        let _merging = super::Merging::start(&self.state);
        let (merged, mid) = self.merge_commit(&list, ours, base, ours_totals)?;
        let epoch = built.as_ref().map(|b| b.e_old);
        self.mark(&Applying {
            head: mid,
            publish: true,
            epoch,
        })?;
        let published = self.engine.write_own_ref(mid, &mut cy.cache)?;
        self.engine.note_ref_seq(published.seq)?;
        self.polled(&published.poll);
        let (from, device, time) = label_of(&merged.heads, self.engine.device());
        let target = Target {
            head: mid,
            root: merged.root,
            device,
            time,
            aliases: merged.aliases.clone(),
        };
        let applied = self.apply(base, &target, epoch.unwrap_or(committed), epoch)?;
        tracing::info!(
            "merged {} snapshots into {mid}: {} conflict copies; {:?}",
            merged.heads.len(),
            merged.copies.len(),
            applied.report
        );
        self.applied(&applied, &target, from, Some((mid, published.seq)));
        Ok(())
    }

    /// Merges `list` (with `ours` among them, whose tree is `base` and
    /// totals `ours_totals`), stores the merged trees and writes the merge
    /// commit, which nothing names yet. Returns the merge and the commit.
    fn merge_commit(
        &self,
        list: &[CommitId],
        ours: Option<CommitId>,
        base: Option<nimbus_merge::TreeId>,
        ours_totals: (u64, u64),
    ) -> Result<(Merged, CommitId)> {
        let mut roots = Vec::with_capacity(list.len());
        for id in list {
            roots.extend(heads::commit_row(&self.local, id)?.map(|r| r.root));
        }
        self.know_trees(&roots)?;
        let _rt = self.local.rt.enter();
        let saver = Saver::new(&self.local.vault);
        let mut trees = VaultTrees::with_saver(&self.local.blobs, &saver);
        let merged = merge_heads(&self.local, &mut trees, list, ours);
        // Finished even after a failure: what did upload gets indexed.
        let finished = self.local.rt.block_on(saver.finish());
        let merged = merged?;
        let stats = finished?;
        if merged.heads.len() < 2 {
            return Err(FsError::new(
                ErrorKind::Io,
                "the snapshots to merge came down to one while merging; nothing was changed",
            ));
        }
        let how = MergeCommit {
            device: self.engine.device(),
            device_name: &self.engine.device_name(),
            indexes: stats.indexes,
            ours_totals,
            ours_root: base,
        };
        let (mid, commit) = write_merge_commit(&self.local, &mut trees, &merged, how)?;
        heads::remember(&self.local, mid, &commit)?;
        Ok((merged, mid))
    }

    /// The apply of a merge commit whose ref is written but whose tree the
    /// rows do not hold (a stop between the two, `recover.rs`). The base
    /// is the tree the rows were last built into (`c`'s, when the marker
    /// has its epoch) or the local head's. The merge of the commit's
    /// parents runs again for its aliases and labels (it is a pure
    /// function of the commits, so it makes the same tree; the trees are
    /// in the vault already).
    pub(super) fn finish_merge(&self, marker: &Applying, seq: u64) -> Result<()> {
        let row = heads::commit_row(&self.local, &marker.head)?.ok_or_else(|| {
            FsError::new(
                ErrorKind::Corrupt,
                format!(
                    "the merge {} this device published cannot be read from the vault",
                    marker.head
                ),
            )
        })?;
        let (head, committed) = self
            .local
            .db
            .read(|c| Ok((state::head(c)?, state::committed_epoch(c)?)))?;
        let base = match marker.epoch {
            Some(_) => self.rows_tree()?,
            None => self.root_of(head)?,
        };
        self.know_trees(&[row.root])?;
        let again = {
            let _rt = self.local.rt.enter();
            let saver = Saver::new(&self.local.vault);
            let mut trees = VaultTrees::with_saver(&self.local.blobs, &saver);
            let again = merge_heads(&self.local, &mut trees, &row.parents, None);
            self.local.rt.block_on(saver.finish())?;
            again?
        };
        let aliases = if again.root == row.root {
            again.aliases
        } else {
            tracing::warn!(
                "merging the parents of {} again made another tree; applying it without the merged ids",
                marker.head
            );
            Vec::new()
        };
        let (from, device, time) = label_of(&again.heads, self.engine.device());
        let target = Target {
            head: marker.head,
            root: row.root,
            device,
            time,
            aliases,
        };
        let applied = self.apply(base, &target, marker.epoch.unwrap_or(committed), marker.epoch)?;
        tracing::info!(
            "finished applying merge {} left under way: {:?}",
            marker.head,
            applied.report
        );
        self.applied(&applied, &target, from, Some((marker.head, seq)));
        Ok(())
    }
}

/// Merges `heads` (commit ids, in any order; the merge's result does not
/// depend on it), reporting what changes for `ours` when it is one of
/// them. Trees the merge makes are stored through `trees`; the caller
/// finishes their save before publishing a commit that names them.
pub(crate) fn merge_heads<T>(local: &Local, trees: &mut T, heads: &[CommitId], ours: Option<CommitId>) -> Result<Merged>
where
    T: Trees + ?Sized,
    FsError: From<T::Error>,
{
    let mut history = History::new(local);
    let mut list = Vec::with_capacity(heads.len());
    for id in heads {
        list.push(history.head(id)?);
    }
    let ours = ours.and_then(|o| list.iter().position(|h| h.commit == o));
    let vault = local.vault.clone();
    let copy_id = move |original: FileId, content: &Content| vault.conflict_id(&original, &content.hash());
    nimbus_merge::merge(&mut history, trees, &list, ours, &copy_id, &Limits::default()).map_err(|e| match e {
        MergeError::Commits(e) => e,
        MergeError::Trees(e) => FsError::from(e),
        MergeError::NoHeads => FsError::new(ErrorKind::InvalidArgument, "a merge of no snapshots was asked for"),
        // The merge crate's fix-ups always leave a tree: this is a bug in
        // them, said as such, and nothing is published.
        MergeError::Build(e) => FsError::new(
            ErrorKind::Io,
            format!("the merge of other devices' changes went wrong ({e}); nothing was changed"),
        ),
    })
}

/// What a merge commit says of itself beyond its tree and parents.
pub(crate) struct MergeCommit<'a> {
    pub device: DeviceId,
    pub device_name: &'a str,
    /// The index objects the save of the merged trees wrote.
    pub indexes: Vec<IndexId>,
    /// The totals of `ours` (files and bytes), adjusted by [`totals`].
    pub ours_totals: (u64, u64),
    /// Our head's root, to which the totals belong.
    pub ours_root: Option<nimbus_merge::TreeId>,
}

/// Writes the commit of `merged` (its heads as parents, in the order they
/// were folded), message `merge`. Only called for a real merge (two heads
/// or more); a single head is a fast-forward and needs no commit.
pub(crate) fn write_merge_commit<T>(
    local: &Local,
    trees: &mut T,
    merged: &Merged,
    how: MergeCommit<'_>,
) -> Result<(CommitId, Commit)>
where
    T: Trees + ?Sized,
    FsError: From<T::Error>,
{
    let (files, bytes) = totals(trees, how.ours_root, merged.root, how.ours_totals)?;
    let new = NewCommit {
        root: merged.root,
        parents: merged.heads.iter().map(|h| h.commit).collect(),
        device: how.device,
        device_name: how.device_name.to_string(),
        time: Timestamp::now(),
        message: "merge".into(),
        files,
        bytes,
        indexes: how.indexes,
    };
    Ok(local.rt.block_on(local.vault.write_commit(new))?)
}

/// A commit's file count and bytes after the merge: `ours` plus what the
/// merge changed, read from the folders that differ between our root and
/// the merged one (no other folder is read). The totals are for people
/// (`nimbus log`); no device recomputes them, and a folder that only one
/// side has whole (moved in unchanged from a folder the other lacks) is
/// counted at its top level only.
pub(crate) fn totals<T>(
    trees: &mut T,
    ours: Option<nimbus_merge::TreeId>,
    merged: nimbus_merge::TreeId,
    ours_totals: (u64, u64),
) -> Result<(u64, u64)>
where
    T: Trees + ?Sized,
    FsError: From<T::Error>,
{
    let flats = flatten(trees, &[ours, Some(merged)])?;
    let (before, after) = (sum(&flats[0]), sum(&flats[1]));
    let files = (ours_totals.0 + after.0).saturating_sub(before.0);
    let bytes = (ours_totals.1 + after.1).saturating_sub(before.1);
    Ok((files, bytes))
}

/// Regular files (each id once, whatever its names) and their bytes.
fn sum(flat: &Flat) -> (u64, u64) {
    flat.values()
        .filter(|n| n.kind == EntryKind::File)
        .fold((0, 0), |(f, b), n| (f + 1, b + n.content.size))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::local::test_local;
    use nimbus_merge::{MemTrees, MissingTree};
    use nimbus_vault::{Entry, Id, ShortId, Tree};

    impl From<MissingTree> for FsError {
        fn from(e: MissingTree) -> FsError {
            FsError::new(ErrorKind::Corrupt, e.to_string())
        }
    }

    fn file(name: &str, id: u8, size: u64, blob: u8) -> Entry {
        Entry {
            name: name.as_bytes().to_vec(),
            kind: EntryKind::File,
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: Timestamp { secs: 1, nanos: 0 },
            ctime: Timestamp { secs: 1, nanos: 0 },
            size,
            file_id: ShortId([id; 16]),
            xattrs: vec![],
            target: vec![],
            rdev: 0,
            content: vec![Id([blob; 32])],
            subtree: None,
        }
    }

    fn root(trees: &mut MemTrees, entries: Vec<Entry>) -> nimbus_merge::TreeId {
        let mut t = Tree { entries };
        t.entries.sort_by(|a, b| a.name.cmp(&b.name));
        trees.insert(&t)
    }

    /// A commit in the vault whose root is a tree of `trees`.
    fn commit(local: &Local, root: nimbus_merge::TreeId, parents: Vec<CommitId>, dev: u8) -> CommitId {
        let new = NewCommit {
            root,
            parents,
            device: ShortId([dev; 16]),
            device_name: format!("device {dev}"),
            time: Timestamp::now(),
            message: "test".into(),
            files: 0,
            bytes: 0,
            indexes: vec![],
        };
        local.rt.block_on(local.vault.write_commit(new)).unwrap().0
    }

    fn names(trees: &mut MemTrees, root: nimbus_merge::TreeId) -> Vec<String> {
        let t = trees.get(&root).unwrap();
        t.entries
            .iter()
            .map(|e| String::from_utf8_lossy(&e.name).into_owned())
            .collect()
    }

    /// Two devices edit the same file from one ancestor, and each adds a
    /// file of its own: both new files are there, both versions of the
    /// edited one survive (one under a conflict name), and a second merge
    /// of the same heads, on another drive, makes the same tree.
    #[test]
    fn two_heads_merge_with_a_conflict_copy_and_the_same_tree_everywhere() {
        let (local, _d, _rt) = test_local();
        let mut trees = MemTrees::new();
        let base_root = root(&mut trees, vec![file("notes.txt", 1, 10, 1)]);
        let base = commit(&local, base_root, vec![], 1);
        let a_root = root(&mut trees, vec![file("notes.txt", 1, 11, 2), file("a.txt", 2, 5, 3)]);
        let a = commit(&local, a_root, vec![base], 1);
        let b_root = root(&mut trees, vec![file("notes.txt", 1, 12, 4), file("b.txt", 3, 7, 5)]);
        let b = commit(&local, b_root, vec![base], 2);

        let merged = merge_heads(&local, &mut trees, &[a, b], Some(a)).unwrap();
        assert_eq!(merged.heads.len(), 2);
        assert_eq!(merged.copies.len(), 1, "{:?}", merged.copies);
        let listed = names(&mut trees, merged.root);
        assert!(listed.contains(&"a.txt".to_string()) && listed.contains(&"b.txt".to_string()));
        assert_eq!(
            listed.iter().filter(|n| n.starts_with("notes")).count(),
            2,
            "{listed:?}"
        );
        assert!(listed.iter().any(|n| n.contains("(conflict ")), "{listed:?}");
        // From our side: b.txt is new, and a copy (or the name) changed.
        assert!(!merged.report.is_empty());
        // The copy's id is the vault's keyed id of the losing content.
        let id_of = |size: u64, blob: u8| {
            let c = Content {
                blobs: vec![Id([blob; 32])],
                size,
                target: vec![],
                rdev: 0,
                tree: None,
            };
            local.vault.conflict_id(&ShortId([1; 16]), &c.hash())
        };
        assert!(
            [id_of(11, 2), id_of(12, 4)].contains(&merged.copies[0].id),
            "{:?}",
            merged.copies
        );

        let again = merge_heads(&local, &mut trees, &[b, a], Some(b)).unwrap();
        assert_eq!(again.root, merged.root, "the order of the heads does not matter");
    }

    #[test]
    fn a_head_that_descends_from_the_other_is_a_fast_forward() {
        let (local, _d, _rt) = test_local();
        let mut trees = MemTrees::new();
        let r1 = root(&mut trees, vec![file("x", 1, 1, 1)]);
        let c1 = commit(&local, r1, vec![], 1);
        let r2 = root(&mut trees, vec![file("x", 1, 2, 2)]);
        let c2 = commit(&local, r2, vec![c1], 2);
        let merged = merge_heads(&local, &mut trees, &[c1, c2], Some(c1)).unwrap();
        assert_eq!(merged.heads.len(), 1);
        assert_eq!((merged.heads[0].commit, merged.root), (c2, r2));
    }

    #[test]
    fn the_merge_commit_names_both_heads_and_counts_the_merged_files() {
        let (local, _d, _rt) = test_local();
        let mut trees = MemTrees::new();
        let base_root = root(&mut trees, vec![file("one", 1, 100, 1)]);
        let base = commit(&local, base_root, vec![], 1);
        let a_root = root(&mut trees, vec![file("one", 1, 100, 1), file("two", 2, 20, 2)]);
        let a = commit(&local, a_root, vec![base], 1);
        let b_root = root(&mut trees, vec![file("one", 1, 100, 1), file("three", 3, 3, 3)]);
        let b = commit(&local, b_root, vec![base], 2);
        let merged = merge_heads(&local, &mut trees, &[a, b], Some(a)).unwrap();
        let (id, c) = write_merge_commit(
            &local,
            &mut trees,
            &merged,
            MergeCommit {
                device: ShortId([1; 16]),
                device_name: "laptop",
                indexes: vec![],
                ours_totals: (2, 120),
                ours_root: Some(a_root),
            },
        )
        .unwrap();
        let mut parents = c.parents.clone();
        parents.sort();
        let mut both = vec![a, b];
        both.sort();
        assert_eq!(parents, both);
        assert_eq!((c.message.as_str(), c.files, c.bytes), ("merge", 3, 123));
        assert_eq!(c.generation, 3);
        assert_eq!(local.rt.block_on(local.vault.read_commit(&id)).unwrap(), c);
    }

    #[test]
    fn a_head_that_cannot_be_read_fails_the_merge() {
        let (local, _d, _rt) = test_local();
        let mut trees = MemTrees::new();
        let r = root(&mut trees, vec![]);
        let c = commit(&local, r, vec![], 1);
        let err = merge_heads(&local, &mut trees, &[c, Id([5; 32])], Some(c)).unwrap_err();
        assert!(err.to_string().contains("ref names it"), "{err}");
    }
}

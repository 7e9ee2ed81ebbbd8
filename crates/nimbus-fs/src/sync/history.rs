//! The commit history as the merge reads it (docs/SYNC.md §2.4): the
//! ancestor search's [`CommitSource`] over the local commit cache
//! (`meta/commits.rs`) and the vault, and the [`Head`] of a commit, with
//! its store time asked once and then kept.
//!
//! Each commit is fetched from the store once per drive: what a fetch
//! returns goes into the cache, which the database keeps across restarts.
//! A commit that is missing from the store or does not open is an unknown
//! ancestor (`None`), which the merge turns into a union; anything else
//! (the network) is an error, and nothing is concluded from it.

use futures::StreamExt;
use nimbus_merge::{CommitInfo, CommitSource, Head};
use nimbus_vault::{CommitId, Timestamp, VaultError};
use std::collections::HashMap;

use crate::error::{FsError, Result};
use crate::local::Local;
use crate::meta::commits::{self, CommitRow};

/// How many commits are fetched from the store at once.
const FETCH_AT_ONCE: usize = 16;

/// The history of the vault behind one drive.
pub(crate) struct History<'a> {
    local: &'a Local,
    /// How many commits were fetched from the store (tests count them).
    pub fetched: usize,
}

impl<'a> History<'a> {
    pub fn new(local: &'a Local) -> Self {
        History { local, fetched: 0 }
    }

    /// The cached or fetched commits among `ids`, by id; an id missing
    /// from the answer is missing from the store or damaged there.
    fn rows(&mut self, ids: &[CommitId]) -> Result<HashMap<CommitId, CommitRow>> {
        let cached = self.local.db.read(|c| commits::get_many(c, ids))?;
        let mut out: HashMap<CommitId, CommitRow> = cached.into_iter().map(|r| (r.id, r)).collect();
        let mut wanted: Vec<CommitId> = ids.iter().filter(|id| !out.contains_key(id)).copied().collect();
        wanted.sort();
        wanted.dedup();
        if wanted.is_empty() {
            return Ok(out);
        }
        let vault = &self.local.vault;
        let answers: Vec<(CommitId, std::result::Result<nimbus_vault::Commit, VaultError>)> = self.local.rt.block_on(
            futures::stream::iter(wanted)
                .map(|id| async move { (id, vault.read_commit(&id).await) })
                .buffer_unordered(FETCH_AT_ONCE)
                .collect(),
        );
        let mut fetched = Vec::new();
        for (id, answer) in answers {
            match answer {
                Ok(c) => fetched.push(CommitRow {
                    id,
                    parents: c.parents,
                    generation: c.generation,
                    device: c.device,
                    device_name: c.device_name,
                    root: c.root,
                    time: c.time,
                    store_time: None,
                }),
                // An unknown ancestor: the merge decides what that means.
                Err(VaultError::Missing { .. } | VaultError::Corrupt { .. }) => {}
                Err(e) => return Err(FsError::Vault(e)),
            }
        }
        self.fetched += fetched.len();
        self.local.db.write(|c| {
            for row in &fetched {
                commits::insert(c, row)?;
            }
            Ok(())
        })?;
        out.extend(fetched.into_iter().map(|r| (r.id, r)));
        Ok(out)
    }

    /// One commit, cached or fetched; `None` when it is missing or damaged.
    pub fn row(&mut self, id: &CommitId) -> Result<Option<CommitRow>> {
        Ok(self.rows(std::slice::from_ref(id))?.remove(id))
    }

    /// The merge's view of head `id`, with when it reached the store (by
    /// the store's clock, docs/SYNC.md §3.4), asked of the store the first
    /// time and kept. A head that is missing or damaged is an error: a ref
    /// names it, so the store owes it.
    pub fn head(&mut self, id: &CommitId) -> Result<Head> {
        let mut row = self.row(id)?.ok_or_else(|| {
            FsError::Vault(VaultError::missing(
                nimbus_vault::commit::commit_key(id),
                "a device's ref names it, but it cannot be read",
            ))
        })?;
        if row.store_time.is_none() {
            let asked = self.local.rt.block_on(self.local.vault.commit_store_time(id))?;
            if let Some(t) = asked.map(Timestamp::from_system) {
                row.store_time = Some(t);
                self.local.db.write(|c| commits::set_store_time(c, id, t).map(|_| ()))?;
            }
        }
        Ok(Head {
            commit: row.id,
            root: row.root,
            device: row.device,
            device_name: row.device_name,
            generation: row.generation,
            store_time: row.store_time,
            time: row.time,
        })
    }
}

impl CommitSource for History<'_> {
    type Error = FsError;

    fn commits(&mut self, ids: &[CommitId]) -> Result<Vec<Option<CommitInfo>>> {
        let rows = self.rows(ids)?;
        Ok(ids
            .iter()
            .map(|id| {
                rows.get(id).map(|r| CommitInfo {
                    parents: r.parents.clone(),
                    generation: r.generation,
                    root: r.root,
                })
            })
            .collect())
    }

    fn pruned(&self, id: &CommitId) -> bool {
        self.local.vault.is_forgotten(id)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::local::test_local;
    use nimbus_vault::{BlobKind, NewCommit, Saver, ShortId, Tree};

    /// Writes a commit on `parents` with an empty root tree.
    fn commit(local: &Local, parents: Vec<CommitId>) -> CommitId {
        local.rt.block_on(async {
            let saver = Saver::new(&local.vault);
            let root = saver.save_blob(BlobKind::Tree, Tree::default().encode()).await.unwrap();
            let stats = saver.finish().await.unwrap();
            let new = NewCommit {
                root,
                parents,
                device: ShortId([7; 16]),
                device_name: "desk".into(),
                time: Timestamp::now(),
                message: "test".into(),
                files: 0,
                bytes: 0,
                indexes: stats.indexes,
            };
            local.vault.write_commit(new).await.unwrap().0
        })
    }

    #[test]
    fn each_commit_is_fetched_once_and_kept_in_the_cache() {
        let (local, _dir, _rt) = test_local();
        let a = commit(&local, vec![]);
        let b = commit(&local, vec![a]);
        let mut h = History::new(&local);
        let got = h.commits(&[b, a, b]).unwrap();
        assert_eq!(h.fetched, 2);
        let b_info = got[0].as_ref().expect("b is there");
        assert_eq!((b_info.parents.clone(), b_info.generation), (vec![a], 2));
        assert_eq!(got[1].as_ref().map(|i| i.generation), Some(1));
        // Asked again, even by a new reader: from the cache.
        let mut again = History::new(&local);
        assert_eq!(again.commits(&[a, b]).unwrap().len(), 2);
        assert_eq!(again.fetched, 0);
    }

    #[test]
    fn a_missing_commit_is_an_unknown_ancestor_not_an_error() {
        let (local, _dir, _rt) = test_local();
        let a = commit(&local, vec![]);
        let gone = nimbus_vault::Id([9; 32]);
        let got = History::new(&local).commits(&[gone, a]).unwrap();
        assert!(got[0].is_none());
        assert!(got[1].is_some());
    }

    #[test]
    fn a_damaged_commit_is_an_unknown_ancestor() {
        let (local, _dir, _rt) = test_local();
        let a = commit(&local, vec![]);
        let key = nimbus_vault::commit::commit_key(&a);
        local.rt.block_on(async {
            let backend = local.vault.backend();
            let mut bytes = backend.get_whole(&key, 1 << 20).await.unwrap().to_vec();
            let last = bytes.len() - 1;
            bytes[last] ^= 1;
            backend.put(&key, bytes.into()).await.unwrap();
        });
        assert!(History::new(&local).commits(&[a]).unwrap()[0].is_none());
    }

    #[test]
    fn a_heads_store_time_is_asked_once_then_kept() {
        let (local, _dir, _rt) = test_local();
        let a = commit(&local, vec![]);
        let head = History::new(&local).head(&a).unwrap();
        assert_eq!((head.device_name.as_str(), head.generation), ("desk", 1));
        let t = head.store_time.expect("the memory store keeps times");
        let cached = local.db.read(|c| commits::get(c, &a)).unwrap().unwrap();
        assert_eq!(cached.store_time, Some(t));
        assert_eq!(History::new(&local).head(&a).unwrap().store_time, Some(t));
    }

    #[test]
    fn a_head_that_cannot_be_read_is_an_error() {
        let (local, _dir, _rt) = test_local();
        let err = History::new(&local).head(&nimbus_vault::Id([3; 32])).unwrap_err();
        assert!(err.to_string().contains("ref names it"), "{err}");
    }
}

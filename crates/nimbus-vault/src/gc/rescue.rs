//! How a save obeys the plans it learns late (docs/PRUNE.md §5): right
//! before its ref is written, what the new commit needs and only condemned
//! packs hold is copied into a new pack (S2, S3); and how an idle device
//! acknowledges plans (S4).

use std::collections::BTreeMap;

use crate::error::{Result, VaultError};
use crate::id::{BlobId, CommitId, DeviceId, PackId};
use crate::index::Location;
use crate::poll::{Published, RefCache};
use crate::saver::Saver;
use crate::vault::Vault;

/// What a publish copied out of condemned packs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rescued {
    /// Blobs copied into new packs.
    pub blobs: u64,
    /// Blobs the commit needs whose condemned pack was already gone (only
    /// after a machine slept through a whole grace period with a publish
    /// in flight): `nimbus check --repair` puts them back from this
    /// device's data.
    pub lost: u64,
}

impl Rescued {
    pub fn add(&mut self, other: Rescued) {
        self.blobs += other.blobs;
        self.lost += other.lost;
    }
}

impl Vault {
    /// S2: copies what `commit` needs beyond what `base` (this device's
    /// published head) needs and only condemned packs hold. Costs nothing
    /// in a vault never pruned; otherwise a walk of the folders that
    /// changed. A finished prune counts too, not only a pending plan: a
    /// save built before this device learned its done record (it slept
    /// through the whole prune) may have reused data the sweep deleted.
    pub(crate) async fn rescue_for_publish(&self, commit: &CommitId, base: Option<&CommitId>) -> Result<Rescued> {
        let pruned = self.with_index(|ix| ix.has_condemned()) || !self.gc_known_read().deleted().is_empty();
        if !pruned || base == Some(commit) {
            return Ok(Rescued::default());
        }
        let root = self.read_commit(commit).await?.root;
        let base_root = match base {
            Some(b) => self.read_commit(b).await.ok().map(|c| c.root),
            None => None,
        };
        let needed = super::live::new_blobs(self, root, base_root).await?;
        let unknown = |v: &Vault| v.with_index(|ix| needed.iter().filter(|b| !ix.contains(b)).count());
        if unknown(self) > 0 {
            // Another device's copy may be in an index object not loaded yet.
            self.load_index().await?;
        }
        let gone = unknown(self);
        if gone > 0 {
            // A finished prune deleted what this save relied on (the
            // machine slept through the grace period mid-save): publishing
            // would name data that is gone. The save fails; its changes
            // stay on this device, and the next save uploads them again.
            return Err(VaultError::missing(
                format!("{gone} pieces of data"),
                "a prune deleted them while this device was saving (it slept through the grace period); the changes stay on this device and are saved again",
            ));
        }
        let doomed: Vec<(BlobId, Location)> = self.with_index(|ix| {
            needed
                .iter()
                .filter(|b| !ix.contains_live(b))
                .filter_map(|b| ix.get(b).map(|l| (*b, l)))
                .collect()
        });
        self.copy_out(doomed).await
    }

    /// Copies blobs (each at a location in a condemned pack) into new packs
    /// and an index object, authenticating each first. A pack already
    /// deleted counts its blobs as lost.
    pub(crate) async fn copy_out(&self, blobs: Vec<(BlobId, Location)>) -> Result<Rescued> {
        let mut out = Rescued::default();
        if blobs.is_empty() {
            return Ok(out);
        }
        let mut by_pack: BTreeMap<PackId, Vec<(BlobId, Location)>> = BTreeMap::new();
        for (b, l) in blobs {
            by_pack.entry(l.pack).or_default().push((b, l));
        }
        let saver = Saver::new(self);
        for (pack, items) in by_pack {
            match self.copy_pack_blobs(&saver, pack, &items).await {
                Ok(n) => out.blobs += n,
                Err(VaultError::Missing { .. }) => out.lost += items.len() as u64,
                Err(e) => {
                    let _ = saver.finish().await;
                    return Err(e);
                }
            }
        }
        saver.finish().await?;
        Ok(out)
    }

    /// Copies `items` of one pack into `saver`, each authenticated first.
    pub(crate) async fn copy_pack_blobs(
        &self,
        saver: &Saver,
        pack: PackId,
        items: &[(BlobId, Location)],
    ) -> Result<u64> {
        let sealed = self.fetch_sealed_in_pack(pack, items).await?;
        for ((id, loc), bytes) in items.iter().zip(sealed) {
            // Copy nothing that does not open: a damaged blob stays
            // damaged in its old pack, where `check` names it.
            self.decode_sealed(id, loc, &bytes)?;
            saver.copy_sealed(loc.kind, *id, loc.raw_len, bytes.to_vec()).await?;
        }
        Ok(items.len() as u64)
    }

    /// S4: when the refs name pending plans this device's ref does not,
    /// rewrites the ref (same commit) so that it names them all. Call it
    /// between saves, after a poll. Returns the publish, or `None` when the
    /// ref already names every pending plan (or there is no ref yet).
    pub async fn acknowledge_plans(
        &self,
        device: &DeviceId,
        seen: u64,
        cache: &mut RefCache,
        pending: &[crate::gc::PlanId],
        own: Option<&crate::commit::RefRecord>,
    ) -> Result<Option<Published>> {
        let Some(own) = own else { return Ok(None) };
        if pending.iter().all(|p| own.gc_seen.contains(p)) {
            return Ok(None);
        }
        self.write_ref_with(device, own.commit, seen.max(own.seq), cache)
            .await
            .map(Some)
    }
}

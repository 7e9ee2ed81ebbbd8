//! `check --repair`: heals what `check` finds by adding objects only. It
//! never deletes or rewrites an object, and of the refs it moves only this
//! device's (deleting is prune's job; other devices merge the repair like
//! any change). In order:
//!
//! 1. packs that no index object lists (and that are older than
//!    [`RepairOptions::min_pack_age`], so not a save in progress) get their
//!    headers read and a new index object listing them;
//! 2. blobs that this device's newest snapshot needs and that are gone (no
//!    index lists them, or their pack is missing) are uploaded again, in
//!    new packs and an index object, from this device's copy of the files
//!    ([`ContentSource`]): a chunk counts only when its keyed hash is the
//!    blob's id, which proves it is the same content;
//! 3. files whose content is still incomplete (and no young pack left out
//!    of step 1 may hold it) are renamed
//!    `name (damaged).ext` in a new commit on this device (parent: this
//!    device's head), with the pieces that survive and zeros for those lost,
//!    so that the newest snapshot is whole again and the damage shows.
//!    Folders whose listing is lost are only reported: their files cannot
//!    be named, and dropping them would delete them on every device.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures::future::BoxFuture;

use crate::check::Finding;
use crate::codec::{self, BlobKind, EncodedBlob};
use crate::commit::NewCommit;
use crate::error::{Result, VaultError};
use crate::id::{BlobId, CommitId, DeviceId, IndexId, PackId};
use crate::index::IndexPack;
use crate::pack::{self, PackBuilder};
use crate::saver::Saver;
use crate::tree::{EntryKind, Timestamp, MAX_NAME};
use crate::vault::Vault;
use crate::Commit;

/// Where this device may still have the content of its files: a working
/// copy, a local copy of the folder that was saved.
pub trait ContentSource: Send + Sync {
    /// The bytes this device has of the file at `path` in the vault
    /// (components joined by `/`, starting with `/`), or `None` when it has
    /// no such file. Called from a blocking thread.
    fn open(&self, path: &[u8]) -> std::io::Result<Option<Box<dyn Read + Send>>>;
}

/// How to repair.
pub struct RepairOptions {
    /// This device: only its ref is read for the snapshot to heal, and only
    /// its ref is moved.
    pub device: DeviceId,
    /// This device's name, for the repair commit.
    pub device_name: String,
    /// The newest update of this device's ref it has seen.
    pub seen: u64,
    /// Packs no index lists that are younger than this (by the store's
    /// listing) are left alone: a save in progress writes its index after
    /// its packs.
    pub min_pack_age: Duration,
    /// This device's copy of the files, if any.
    pub source: Option<Arc<dyn ContentSource>>,
}

/// The age under which a pack no index lists may belong to a save in
/// progress.
pub const MIN_PACK_AGE: Duration = Duration::from_secs(3600);

/// Packs per index object a repair writes.
const PACKS_PER_INDEX: usize = 1000;

/// What a repair did.
#[derive(Debug, Default, serde::Serialize)]
pub struct RepairReport {
    /// Packs no index listed, now listed by a new index object.
    pub packs_indexed: Vec<String>,
    /// Packs no index lists, left alone because they are younger than the
    /// limit (a save may be writing their index). While there are any, no
    /// file is marked damaged: its content may be in them.
    pub young_packs: Vec<String>,
    /// Packs no index lists whose header could not be read.
    pub damaged_packs: Vec<Finding>,
    /// The snapshot healed: the one this device's ref points at.
    #[serde(serialize_with = "hex_opt")]
    pub snapshot: Option<CommitId>,
    /// Missing blobs of that snapshot uploaded again from this device.
    pub blobs_uploaded: u64,
    /// Their plaintext size.
    pub bytes_uploaded: u64,
    /// Files whose content is still incomplete, as the repair commit
    /// renamed them.
    pub damaged_files: Vec<DamagedFile>,
    /// Folders whose listing is lost (reported only).
    pub lost_folders: Vec<String>,
    /// Files whose copy on this device could not be read.
    pub unreadable: Vec<Finding>,
    /// Index objects this repair wrote.
    #[serde(serialize_with = "hex_all")]
    pub indexes: Vec<IndexId>,
    /// The repair commit, when one was needed.
    #[serde(serialize_with = "hex_opt")]
    pub commit: Option<CommitId>,
}

/// Ids in reports read as hex, as everywhere people see them.
fn hex_opt<S: serde::Serializer>(id: &Option<CommitId>, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_some(&id.map(|i| i.to_hex()))
}

fn hex_all<S: serde::Serializer>(ids: &[IndexId], s: S) -> std::result::Result<S::Ok, S::Error> {
    s.collect_seq(ids.iter().map(|i| i.to_hex()))
}

/// A file whose content could not be recovered.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DamagedFile {
    /// Its path in the snapshot.
    pub path: String,
    /// Its path in the repair commit.
    pub renamed: String,
    /// Pieces of its content that are lost.
    pub lost_pieces: u64,
}

/// Repairs the vault as the module documentation says. Only a failure to
/// talk to the store (or a refs check that fails) is an `Err`.
pub async fn repair(vault: &Vault, opts: &RepairOptions) -> Result<RepairReport> {
    let mut report = RepairReport::default();
    let mut in_store = rebuild_index(vault, opts, &mut report).await?;
    let refs = vault.read_refs().await?;
    let Some(rec) = refs.get(&opts.device) else {
        return Ok(report);
    };
    let head = vault.read_commit(&rec.commit).await?;
    report.snapshot = Some(rec.commit);
    let damage = find_damage(vault, &head, &in_store).await?;
    report.lost_folders = damage.lost_folders.iter().map(|p| show(p)).collect();
    if damage.files.is_empty() {
        return Ok(report);
    }
    if let Some(source) = &opts.source {
        reupload(vault, source, &damage.files, &mut in_store, &mut report).await?;
    }
    let alive = Alive {
        vault,
        in_store: &in_store,
    };
    let left: Vec<Damaged> = damage
        .files
        .into_iter()
        .filter(|f| f.content.iter().any(|b| !alive.has(b)))
        .collect();
    // A pack a save may still be indexing may hold what looks lost.
    if !left.is_empty() && report.young_packs.is_empty() {
        repair_commit(vault, opts, (rec.commit, &head), &left, &alive, &mut report).await?;
    }
    Ok(report)
}

/// Whether a blob can be read: indexed, in a pack the store has.
struct Alive<'a> {
    vault: &'a Vault,
    in_store: &'a HashSet<PackId>,
}

impl Alive<'_> {
    fn has(&self, b: &BlobId) -> bool {
        self.vault.locate(b).is_some_and(|l| self.in_store.contains(&l.pack))
    }
}

/// Step 1: indexes the packs no index lists. Returns every pack the store
/// has.
async fn rebuild_index(vault: &Vault, opts: &RepairOptions, report: &mut RepairReport) -> Result<HashSet<PackId>> {
    let listing = vault.backend().list("packs/").await?;
    let indexed: HashSet<PackId> = vault.with_index(|i| i.packs().keys().copied().collect());
    // The store's clock where the listing shows it; a pack judged old by
    // mistake is only listed twice, which is harmless.
    let newest = listing.iter().filter_map(|o| o.modified).max();
    let now = newest.map_or(SystemTime::now(), |n| n.max(SystemTime::now()));
    let mut in_store = HashSet::new();
    let mut found = Vec::new();
    for obj in &listing {
        let Some(id) = pack::parse_pack_key(&obj.key) else {
            continue;
        };
        in_store.insert(id);
        if indexed.contains(&id) {
            continue;
        }
        let young = obj
            .modified
            .is_some_and(|m| now.duration_since(m).unwrap_or_default() < opts.min_pack_age);
        if young {
            report.young_packs.push(obj.key.clone());
            continue;
        }
        match crate::check::check_pack_header(vault, &id, &obj.key, obj.size).await {
            Ok(blobs) => found.push(IndexPack {
                id,
                size: obj.size,
                blobs,
            }),
            // Gone since the listing: prune's, nothing to index.
            Err(crate::check::PackProblem::Read(e)) if e.kind() == nimbus_backend::BackendErrorKind::NotFound => {
                in_store.remove(&id);
            }
            Err(crate::check::PackProblem::Read(e)) => return Err(e.into()),
            Err(why) => report.damaged_packs.push(Finding {
                object: obj.key.clone(),
                message: why.to_string(),
            }),
        }
    }
    report.packs_indexed = found.iter().map(|p| pack::pack_key(&p.id)).collect();
    write_indexes(vault, found, report).await?;
    Ok(in_store)
}

/// Writes index objects for `packs` and reads their blobs from them from
/// now on.
async fn write_indexes(vault: &Vault, packs: Vec<IndexPack>, report: &mut RepairReport) -> Result<()> {
    for chunk in packs.chunks(PACKS_PER_INDEX) {
        report.indexes.push(vault.write_index(chunk.to_vec()).await?);
    }
    vault.index_add_preferred(&packs);
    Ok(())
}

/// A file of the snapshot with content that cannot be read.
struct Damaged {
    /// The folders above it, from the root.
    folders: Vec<Vec<u8>>,
    name: Vec<u8>,
    content: Vec<BlobId>,
}

impl Damaged {
    fn path(&self) -> Vec<u8> {
        join(&self.folders, Some(&self.name))
    }
}

/// `/a/b/name`; `/` for the root.
fn join(folders: &[Vec<u8>], name: Option<&[u8]>) -> Vec<u8> {
    let mut p = Vec::new();
    for c in folders.iter().map(Vec::as_slice).chain(name) {
        p.push(b'/');
        p.extend_from_slice(c);
    }
    if p.is_empty() {
        p.push(b'/');
    }
    p
}

#[derive(Default)]
struct Damage {
    files: Vec<Damaged>,
    /// Paths of folders whose tree cannot be read.
    lost_folders: Vec<Vec<u8>>,
}

/// Walks the snapshot for files with content that cannot be read. Only a
/// failure to reach the store is an `Err`.
async fn find_damage(vault: &Vault, head: &Commit, in_store: &HashSet<PackId>) -> Result<Damage> {
    let alive = Alive { vault, in_store };
    let mut damage = Damage::default();
    let mut stack: Vec<(BlobId, Vec<Vec<u8>>)> = vec![(head.root, Vec::new())];
    while let Some((tree_id, folders)) = stack.pop() {
        let tree = match alive.has(&tree_id) {
            false => None,
            true => match vault.read_tree(&tree_id).await {
                Ok(t) => Some(t),
                Err(e @ VaultError::Backend(_)) => return Err(e),
                Err(_) => None,
            },
        };
        let Some(tree) = tree else {
            damage.lost_folders.push(join(&folders, None));
            continue;
        };
        for e in tree.entries {
            if let Some(sub) = e.subtree {
                let mut below = folders.clone();
                below.push(e.name);
                stack.push((sub, below));
            } else if e.kind == EntryKind::File && e.content.iter().any(|b| !alive.has(b)) {
                damage.files.push(Damaged {
                    folders: folders.clone(),
                    name: e.name,
                    content: e.content,
                });
            }
        }
    }
    Ok(damage)
}

fn show(path: &[u8]) -> String {
    String::from_utf8_lossy(path).into_owned()
}

/// Step 2: uploads again the lost blobs of `files` that this device's copy
/// of each file still has.
async fn reupload(
    vault: &Vault,
    source: &Arc<dyn ContentSource>,
    files: &[Damaged],
    in_store: &mut HashSet<PackId>,
    report: &mut RepairReport,
) -> Result<()> {
    let alive = Alive { vault, in_store };
    let wanted: HashSet<BlobId> = files
        .iter()
        .flat_map(|f| f.content.iter())
        .filter(|b| !alive.has(b))
        .copied()
        .collect();
    let wanted = Arc::new(wanted);
    let mut up = Uploader::new(vault);
    for f in files {
        if let Err(e) = read_matching(vault, source.clone(), f.path(), wanted.clone(), &mut up).await? {
            report.unreadable.push(Finding {
                object: show(&f.path()),
                message: e.to_string(),
            });
        }
    }
    let packs = up.finish().await?;
    report.blobs_uploaded = up.blobs;
    report.bytes_uploaded = up.bytes;
    in_store.extend(packs.iter().map(|p| p.id));
    if !packs.is_empty() {
        write_indexes(vault, packs, report).await?;
    }
    Ok(())
}

/// Chunks this device's copy of the file at `path` as the vault does and
/// hands every chunk whose id is `wanted` to `up`. A copy that cannot be
/// read is the inner error: the file stays damaged, as one not here.
async fn read_matching(
    vault: &Vault,
    source: Arc<dyn ContentSource>,
    path: Vec<u8>,
    wanted: Arc<HashSet<BlobId>>,
    up: &mut Uploader<'_>,
) -> Result<std::io::Result<()>> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<EncodedBlob>(2);
    let v = vault.clone();
    let reading = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        let Some(reader) = source.open(&path)? else {
            return Ok(());
        };
        let params = v.params().chunker;
        let mut sent = HashSet::new();
        crate::chunker::chunk_reader(&params, v.chunker_seed(), reader, |chunk| {
            let id = v.blob_id(BlobKind::Data, chunk);
            if wanted.contains(&id) && sent.insert(id) {
                let enc = codec::encode_blob(v.keys(), BlobKind::Data, id, chunk, v.params().zstd_level);
                tx.blocking_send(enc)
                    .map_err(|_| std::io::Error::other("the upload stopped"))?;
            }
            Ok::<(), std::io::Error>(())
        })
        .map_err(|e| match e {
            crate::chunker::ChunkReadError::Io(e) | crate::chunker::ChunkReadError::Sink(e) => e,
        })
    });
    while let Some(enc) = rx.recv().await {
        up.add(enc).await?;
    }
    reading
        .await
        .map_err(|e| VaultError::invalid_input(format!("reading this device's copy stopped: {e}")))
}

/// Packs blobs into new packs and uploads each when it is full. Blobs
/// already added are skipped; nothing is deduplicated against the index,
/// whose entries for these blobs point at lost packs.
struct Uploader<'a> {
    vault: &'a Vault,
    builder: PackBuilder,
    added: HashSet<BlobId>,
    packs: Vec<IndexPack>,
    blobs: u64,
    bytes: u64,
}

impl<'a> Uploader<'a> {
    fn new(vault: &'a Vault) -> Self {
        Uploader {
            vault,
            builder: PackBuilder::for_version(vault.config().version()),
            added: HashSet::new(),
            packs: Vec::new(),
            blobs: 0,
            bytes: 0,
        }
    }

    async fn add(&mut self, enc: EncodedBlob) -> Result<()> {
        if !self.added.insert(enc.id) {
            return Ok(());
        }
        self.blobs += 1;
        self.bytes += enc.raw_len as u64;
        self.builder.add(&enc);
        if self.builder.len() >= self.vault.params().pack_target_size as usize {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<()> {
        if self.builder.is_empty() {
            return Ok(());
        }
        let p = self.builder.finish(self.vault.keys());
        let size = p.bytes.len() as u64;
        self.vault
            .backend()
            .put(&pack::pack_key(&p.id), Bytes::from(p.bytes))
            .await?;
        self.packs.push(IndexPack {
            id: p.id,
            size,
            blobs: p.entries,
        });
        Ok(())
    }

    /// Uploads the last pack; returns every pack uploaded.
    async fn finish(&mut self) -> Result<Vec<IndexPack>> {
        self.flush().await?;
        Ok(std::mem::take(&mut self.packs))
    }
}

/// Step 3: a commit on this device that renames each file of `files` to
/// `name (damaged).ext`, with the content that survives.
async fn repair_commit(
    vault: &Vault,
    opts: &RepairOptions,
    (head_id, head): (CommitId, &Commit),
    files: &[Damaged],
    alive: &Alive<'_>,
    report: &mut RepairReport,
) -> Result<()> {
    let saver = Saver::new(vault);
    let ctx = Rewrite {
        vault,
        saver: &saver,
        alive,
    };
    let refs: Vec<&Damaged> = files.iter().collect();
    let (root, renamed, sizes) = ctx.tree(head.root, 0, refs).await?;
    let stats = saver.finish().await?;
    let mut indexes = report.indexes.clone();
    indexes.extend(stats.indexes);
    let commit = NewCommit {
        root,
        parents: vec![head_id],
        device: opts.device,
        device_name: opts.device_name.clone(),
        time: Timestamp::now(),
        message: format!("check --repair: {} damaged files marked", renamed.len()),
        files: head.files,
        bytes: head.bytes.saturating_sub(sizes.before).saturating_add(sizes.after),
        indexes,
    };
    let (id, _) = vault.write_commit(commit).await?;
    vault.write_ref(&opts.device, id, opts.seen).await?;
    report.damaged_files = renamed;
    report.commit = Some(id);
    Ok(())
}

/// The sizes of the damaged files before and after the repair.
#[derive(Default, Clone, Copy)]
struct SizeChange {
    before: u64,
    after: u64,
}

/// Rewrites trees along the paths of damaged files.
struct Rewrite<'a> {
    vault: &'a Vault,
    saver: &'a Saver,
    alive: &'a Alive<'a>,
}

impl Rewrite<'_> {
    /// The tree `id` (at `depth` folders below the root) with the damaged
    /// `files` under it renamed; returns its new id, the files renamed and
    /// how their sizes changed.
    fn tree<'s>(
        &'s self,
        id: BlobId,
        depth: usize,
        files: Vec<&'s Damaged>,
    ) -> BoxFuture<'s, Result<(BlobId, Vec<DamagedFile>, SizeChange)>> {
        Box::pin(async move {
            let mut sizes = SizeChange::default();
            let mut tree = self.vault.read_tree(&id).await?;
            let mut below: HashMap<&[u8], Vec<&Damaged>> = HashMap::new();
            let mut here = Vec::new();
            for f in files {
                match f.folders.get(depth) {
                    Some(folder) => below.entry(folder.as_slice()).or_default().push(f),
                    None => here.push(f),
                }
            }
            let mut renamed = Vec::new();
            for (folder, group) in below {
                let Some(mut entry) = tree.get(folder).cloned() else {
                    continue;
                };
                let Some(sub) = entry.subtree else { continue };
                let (new_sub, done, change) = self.tree(sub, depth + 1, group).await?;
                entry.subtree = Some(new_sub);
                tree.upsert(entry);
                renamed.extend(done);
                sizes.before += change.before;
                sizes.after += change.after;
            }
            for f in here {
                if let Some(done) = self.mark(&mut tree, f, &mut sizes).await? {
                    renamed.push(done);
                }
            }
            let new_id = self.saver.save_blob(BlobKind::Tree, tree.encode()).await?;
            Ok((new_id, renamed, sizes))
        })
    }

    /// Renames one damaged file in `tree` and gives it the content that
    /// survives: the pieces still readable, zeros of the same length for a
    /// piece whose length is known, nothing for one whose length is not.
    async fn mark(&self, tree: &mut crate::Tree, f: &Damaged, sizes: &mut SizeChange) -> Result<Option<DamagedFile>> {
        let Some(mut entry) = tree.get(&f.name).cloned() else {
            return Ok(None);
        };
        let mut content = Vec::new();
        let mut size = 0u64;
        let mut lost = 0u64;
        for b in &entry.content {
            let len = self.vault.locate(b).map(|l| l.raw_len as u64);
            if self.alive.has(b) {
                content.push(*b);
                size += len.unwrap_or(0);
                continue;
            }
            lost += 1;
            let Some(len) = len.filter(|l| *l > 0) else { continue };
            let zeros = vec![0u8; len as usize];
            let zid = self.vault.blob_id(BlobKind::Data, &zeros);
            // A zero piece whose own copy is lost is left out too.
            if self.vault.locate(&zid).is_some() && !self.alive.has(&zid) {
                continue;
            }
            content.push(self.saver.save_blob(BlobKind::Data, zeros).await?);
            size += len;
        }
        sizes.before += entry.size;
        sizes.after += size;
        tree.entries.retain(|e| e.name != f.name);
        entry.name = damaged_name(&f.name, |n| tree.get(n).is_some());
        entry.content = content;
        entry.size = size;
        let renamed = join(&f.folders, Some(&entry.name));
        tree.upsert(entry);
        Ok(Some(DamagedFile {
            path: show(&f.path()),
            renamed: show(&renamed),
            lost_pieces: lost,
        }))
    }
}

/// Extensions of two parts that stay together (as in conflict names).
const DOUBLE: [&[u8]; 4] = [b".tar.gz", b".tar.xz", b".tar.zst", b".tar.bz2"];
/// An extension longer than this (after the dot) is no extension.
const MAX_EXT: usize = 16;

/// `name (damaged).ext`, or `name (damaged 2).ext` and so on where `taken`
/// says the name is in use. The extension is split as conflict names split
/// it (docs/SYNC.md §3.6: `.tar.gz` stays whole, a dotfile has none), and
/// the stem is cut, on a character boundary, so the name fits in 255 bytes.
pub fn damaged_name(name: &[u8], taken: impl Fn(&[u8]) -> bool) -> Vec<u8> {
    let (stem, ext) = split_ext(name);
    let mut n = 1u64;
    loop {
        let tag = match n {
            1 => " (damaged)".to_string(),
            n => format!(" (damaged {n})"),
        };
        let room = MAX_NAME.saturating_sub(tag.len() + ext.len());
        let mut out = cut(stem, room).to_vec();
        out.extend_from_slice(tag.as_bytes());
        out.extend_from_slice(ext);
        if !taken(&out) {
            return out;
        }
        n += 1;
    }
}

fn split_ext(name: &[u8]) -> (&[u8], &[u8]) {
    for double in DOUBLE {
        if name.len() > double.len() && name[name.len() - double.len()..].eq_ignore_ascii_case(double) {
            return name.split_at(name.len() - double.len());
        }
    }
    match name.iter().rposition(|&b| b == b'.') {
        Some(0) | None => (name, b""),
        Some(i) => {
            let ext = &name[i + 1..];
            if ext.is_empty() || ext.len() > MAX_EXT || ext.contains(&b' ') {
                (name, b"")
            } else {
                name.split_at(i)
            }
        }
    }
}

/// At most `max` bytes of `s`, not splitting a UTF-8 character.
fn cut(s: &[u8], max: usize) -> &[u8] {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    // Continuation bytes are 10xxxxxx: back off to a character's start.
    while end > 0 && (s[end] & 0xC0) == 0x80 {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn damaged_names() {
        let none = |_: &[u8]| false;
        assert_eq!(damaged_name(b"report.pdf", none), b"report (damaged).pdf");
        assert_eq!(damaged_name(b"x.tar.gz", none), b"x (damaged).tar.gz");
        assert_eq!(damaged_name(b".bashrc", none), b".bashrc (damaged)");
        assert_eq!(damaged_name(b"Makefile", none), b"Makefile (damaged)");
        assert_eq!(damaged_name(b"a.b c", none), b"a.b c (damaged)");
        let taken = |n: &[u8]| n == b"a (damaged).txt" || n == b"a (damaged 2).txt";
        assert_eq!(damaged_name(b"a.txt", taken), b"a (damaged 3).txt");
    }

    proptest! {
        /// Any valid name gives valid names, none of them the original,
        /// each one not taken by those before it.
        #[test]
        fn damaged_names_are_valid(name in "[^/\u{0}]{1,120}", taken in 0usize..4) {
            prop_assume!(crate::tree::valid_name(name.as_bytes()));
            let long = name.repeat(3);
            for n in [name.as_bytes(), cut(long.as_bytes(), MAX_NAME)] {
                let mut names: Vec<Vec<u8>> = Vec::new();
                for _ in 0..=taken {
                    let out = damaged_name(n, |c| names.iter().any(|t| t == c));
                    prop_assert!(crate::tree::valid_name(&out), "{:?}", String::from_utf8_lossy(&out));
                    prop_assert!(std::str::from_utf8(&out).is_ok());
                    prop_assert!(!names.contains(&out));
                    prop_assert_ne!(&out[..], n);
                    names.push(out);
                }
            }
        }
    }
}

//! The kernel's caches as the core sees them: what a mount adapter must
//! forget when the drive changes behind the kernel's back (another
//! device's change applied by the sync engine, docs/SYNC.md §4.5).
//!
//! The core knows no mount API, so it names the calls ([`KernelCache`])
//! and the adapter fills them in (`nimbus-fuse`'s `FuseKernelCache`, over
//! the FUSE notices). Without a mount nothing is cached and
//! [`NoKernelCache`] does nothing; tests record the calls with
//! [`RecordingKernelCache`].
//!
//! Rule for every caller: call only after the change is committed to the
//! database and with no core lock held, and never from a request of the
//! kernel (a FUSE worker). An invalidation can make the kernel write dirty
//! pages back or wait for the folder a request is working in, which would
//! deadlock against a held lock or the very request waiting.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, RwLock};

use crate::types::Ino;

/// The kernel's caches of a mounted drive.
pub trait KernelCache: Send + Sync {
    /// Forget `ino`'s attributes and every cached page of its content.
    fn inval_inode(&self, ino: Ino);
    /// Forget `ino`'s attributes only; cached pages stay (a change of mode,
    /// owner or extended attributes, not of content).
    fn inval_attr(&self, ino: Ino);
    /// Forget one name in folder `parent`, whether the kernel holds it as a
    /// file or as "no such file".
    fn inval_entry(&self, parent: Ino, name: &[u8]);
    /// Name `name` of inode `ino` in `parent` is gone: forget it and tell
    /// watchers (inotify) of the deletion.
    fn deleted(&self, parent: Ino, ino: Ino, name: &[u8]);
    /// Waits until every call made before has reached the kernel (an
    /// adapter may send them from a thread of its own), for a bounded time.
    /// For tests: never with a core lock held, on a FUSE worker, or on any
    /// thread a FUSE request may wait for, such as the sync thread (an
    /// `fsync` of the root waits for it while the kernel holds the root's
    /// lock, which a notice of a name there needs).
    fn flush(&self) {}
}

/// One call to a [`KernelCache`], as recorded or queued.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KernelCall {
    Inode(Ino),
    Attr(Ino),
    Entry { parent: Ino, name: Vec<u8> },
    Deleted { parent: Ino, ino: Ino, name: Vec<u8> },
}

impl KernelCall {
    /// Makes this call on `cache`.
    pub fn send_to(&self, cache: &dyn KernelCache) {
        match self {
            KernelCall::Inode(ino) => cache.inval_inode(*ino),
            KernelCall::Attr(ino) => cache.inval_attr(*ino),
            KernelCall::Entry { parent, name } => cache.inval_entry(*parent, name),
            KernelCall::Deleted { parent, ino, name } => cache.deleted(*parent, *ino, name),
        }
    }
}

/// No kernel caches anything: a drive without a mount (tests, the CLI).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoKernelCache;

impl KernelCache for NoKernelCache {
    fn inval_inode(&self, _ino: Ino) {}
    fn inval_attr(&self, _ino: Ino) {}
    fn inval_entry(&self, _parent: Ino, _name: &[u8]) {}
    fn deleted(&self, _parent: Ino, _ino: Ino, _name: &[u8]) {}
}

/// Records every call, in order, for tests to check exactly which inodes
/// and names a change invalidated.
#[derive(Debug, Default)]
pub struct RecordingKernelCache {
    calls: Mutex<Vec<KernelCall>>,
}

impl RecordingKernelCache {
    pub fn new() -> Arc<RecordingKernelCache> {
        Arc::new(RecordingKernelCache::default())
    }

    /// The calls so far, in order.
    pub fn calls(&self) -> Vec<KernelCall> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// The calls so far, which are then forgotten.
    pub fn take(&self) -> Vec<KernelCall> {
        self.calls
            .lock()
            .map(|mut c| std::mem::take(&mut *c))
            .unwrap_or_default()
    }

    fn push(&self, call: KernelCall) {
        if let Ok(mut c) = self.calls.lock() {
            c.push(call);
        }
    }
}

impl KernelCache for RecordingKernelCache {
    fn inval_inode(&self, ino: Ino) {
        self.push(KernelCall::Inode(ino));
    }
    fn inval_attr(&self, ino: Ino) {
        self.push(KernelCall::Attr(ino));
    }
    fn inval_entry(&self, parent: Ino, name: &[u8]) {
        self.push(KernelCall::Entry {
            parent,
            name: name.to_vec(),
        });
    }
    fn deleted(&self, parent: Ino, ino: Ino, name: &[u8]) {
        self.push(KernelCall::Deleted {
            parent,
            ino,
            name: name.to_vec(),
        });
    }
}

/// Calls queued while a drive has no kernel cache set: at most this many
/// (a drive that is never mounted would otherwise grow its queue forever).
/// Beyond it calls are dropped, which costs little: the kernel keeps
/// attributes and names only for the mount's short time to live, and the
/// sync engine never gives an inode the kernel knows new content.
pub(crate) const MAX_QUEUED: usize = 100_000;

/// The drive's way to the kernel: calls go to the adapter's cache once
/// one is set, and are queued (each call once) until then. A drive loads
/// and may apply other devices' changes before it is put in a mounted
/// slot, or while a mount stayed up over a lock, whose kernel still
/// caches what it saw before.
#[derive(Default)]
pub(crate) struct KernelLink {
    inner: Mutex<LinkState>,
}

#[derive(Default)]
struct LinkState {
    target: Option<Arc<dyn KernelCache>>,
    /// Order does not matter: every call only makes the kernel forget.
    queued: BTreeSet<KernelCall>,
    dropped: bool,
}

impl KernelLink {
    /// Sends calls to `cache` from now on, the queued ones first.
    pub fn set(&self, cache: Arc<dyn KernelCache>) {
        let queued = match self.inner.lock() {
            Ok(mut s) => {
                s.target = Some(cache.clone());
                s.dropped = false;
                std::mem::take(&mut s.queued)
            }
            Err(_) => return,
        };
        // Outside the lock: the adapter's cache may block.
        for call in &queued {
            call.send_to(&*cache);
        }
    }

    /// Makes `call`, or queues it while no cache is set.
    fn call(&self, call: KernelCall) {
        let target = {
            let Ok(mut s) = self.inner.lock() else { return };
            match &s.target {
                Some(t) => t.clone(),
                None => {
                    if s.queued.len() < MAX_QUEUED {
                        s.queued.insert(call);
                    } else if !s.dropped {
                        s.dropped = true;
                        tracing::warn!("too many kernel invalidations waiting for a mount; dropping the rest");
                    }
                    return;
                }
            }
        };
        call.send_to(&*target);
    }

    #[cfg(test)]
    fn queued(&self) -> usize {
        self.inner.lock().map(|s| s.queued.len()).unwrap_or(0)
    }
}

impl KernelCache for KernelLink {
    fn inval_inode(&self, ino: Ino) {
        self.call(KernelCall::Inode(ino));
    }
    fn inval_attr(&self, ino: Ino) {
        self.call(KernelCall::Attr(ino));
    }
    fn inval_entry(&self, parent: Ino, name: &[u8]) {
        self.call(KernelCall::Entry {
            parent,
            name: name.to_vec(),
        });
    }
    fn deleted(&self, parent: Ino, ino: Ino, name: &[u8]) {
        self.call(KernelCall::Deleted {
            parent,
            ino,
            name: name.to_vec(),
        });
    }
    fn flush(&self) {
        let target = self.inner.lock().ok().and_then(|s| s.target.clone());
        if let Some(t) = target {
            t.flush();
        }
    }
}

/// How many times the kernel was handed each inode (FUSE's lookup count)
/// and has not yet forgotten it. A file without names stays while the
/// kernel may still open it by number, and the sync engine never gives an
/// inode the kernel knows new content (docs/SYNC.md §4.5).
///
/// The counts belong to the mount, not to one drive: a [`crate::Slot`]
/// keeps them and every drive put in it [`joins`](KernelRefs::join) them,
/// so a drive unlocked under a mount that stayed up knows what the kernel
/// was handed before the lock. A drive's own counts, before any slot
/// joined them, are *unattached*: nobody can tell what a kernel knows, so
/// [`KernelRefs::knows`] says yes for every inode (a new inode for every
/// content change is always safe; content in place under a kernel's cache
/// is not).
///
/// Lock order: a leaf. Nothing else is locked while it is held.
pub(crate) struct KernelRefs {
    shared: RwLock<Arc<Mutex<Counts>>>,
}

#[derive(Default)]
#[cfg_attr(not(test), allow(dead_code))] // `attached` is read by `knows`
struct Counts {
    by_ino: HashMap<Ino, u64>,
    /// The counts of a mount (a slot's), rather than a drive's own.
    attached: bool,
}

impl KernelRefs {
    /// A drive's own counts, until a slot joins them to its mount's.
    pub fn unattached() -> KernelRefs {
        KernelRefs {
            shared: RwLock::new(Arc::new(Mutex::new(Counts::default()))),
        }
    }

    /// A mount's counts (a slot's): the kernel knows exactly what they say.
    pub fn attached() -> KernelRefs {
        KernelRefs {
            shared: RwLock::new(Arc::new(Mutex::new(Counts {
                by_ino: HashMap::new(),
                attached: true,
            }))),
        }
    }

    fn counts(&self) -> Option<Arc<Mutex<Counts>>> {
        self.shared.read().ok().map(|s| s.clone())
    }

    /// Shares `mount`'s counts from now on, adding what these held.
    pub fn join(&self, mount: &KernelRefs) {
        let Some(target) = mount.counts() else { return };
        let Ok(mut mine) = self.shared.write() else { return };
        if Arc::ptr_eq(&mine, &target) {
            return;
        }
        let old = mine.lock().map(|c| c.by_ino.clone()).unwrap_or_default();
        if let Ok(mut t) = target.lock() {
            for (ino, n) in old {
                *t.by_ino.entry(ino).or_insert(0) += n;
            }
        }
        *mine = target;
    }

    /// The kernel was handed `ino` once more.
    pub fn remember(&self, ino: Ino) {
        if let Some(c) = self.counts() {
            if let Ok(mut c) = c.lock() {
                *c.by_ino.entry(ino).or_insert(0) += 1;
            }
        }
    }

    /// The kernel let go of `n` references to `ino`: true when that was
    /// its last (and it held any).
    pub fn forget(&self, ino: Ino, n: u64) -> bool {
        let Some(c) = self.counts() else { return false };
        let Ok(mut c) = c.lock() else { return false };
        match c.by_ino.get_mut(&ino) {
            Some(k) if *k > n => {
                *k -= n;
                false
            }
            Some(_) => {
                c.by_ino.remove(&ino);
                true
            }
            None => false,
        }
    }

    /// Whether the kernel holds a reference to `ino` by the counts (what
    /// keeps a nameless file alive).
    pub fn holds(&self, ino: Ino) -> bool {
        self.counts()
            .and_then(|c| c.lock().ok().map(|c| c.by_ino.contains_key(&ino)))
            .unwrap_or(false)
    }

    /// Whether the kernel may cache anything of `ino`: it holds it, or
    /// these counts are not a mount's and so cannot say.
    #[cfg_attr(not(test), allow(dead_code))] // used by the sync engine's apply (step 17)
    pub fn knows(&self, ino: Ino) -> bool {
        self.counts()
            .and_then(|c| c.lock().ok().map(|c| !c.attached || c.by_ino.contains_key(&ino)))
            .unwrap_or(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_queues_each_call_once_until_a_cache_is_set() {
        let link = KernelLink::default();
        link.inval_inode(5);
        link.inval_entry(1, b"a");
        link.inval_inode(5);
        link.deleted(1, 7, b"b");
        link.inval_attr(9);
        assert_eq!(link.queued(), 4);
        let rec = RecordingKernelCache::new();
        link.set(rec.clone());
        let mut got = rec.take();
        got.sort();
        assert_eq!(
            got,
            vec![
                KernelCall::Inode(5),
                KernelCall::Attr(9),
                KernelCall::Entry {
                    parent: 1,
                    name: b"a".to_vec()
                },
                KernelCall::Deleted {
                    parent: 1,
                    ino: 7,
                    name: b"b".to_vec()
                },
            ]
        );
        assert_eq!(link.queued(), 0);
        // From now on straight through, in order, repeats included.
        link.inval_entry(2, b"x");
        link.inval_entry(2, b"x");
        assert_eq!(
            rec.take(),
            vec![
                KernelCall::Entry {
                    parent: 2,
                    name: b"x".to_vec()
                };
                2
            ]
        );
    }

    #[test]
    fn link_queue_is_bounded() {
        let link = KernelLink::default();
        for ino in 0..(MAX_QUEUED as u64 + 10) {
            link.inval_inode(ino);
        }
        assert_eq!(link.queued(), MAX_QUEUED);
        let rec = RecordingKernelCache::new();
        link.set(rec.clone());
        assert_eq!(rec.calls().len(), MAX_QUEUED);
    }

    #[test]
    fn a_new_cache_replaces_the_old_one() {
        let link = KernelLink::default();
        let first = RecordingKernelCache::new();
        let second = RecordingKernelCache::new();
        link.set(first.clone());
        link.inval_attr(3);
        link.set(second.clone());
        link.inval_attr(4);
        assert_eq!(first.calls(), vec![KernelCall::Attr(3)]);
        assert_eq!(second.calls(), vec![KernelCall::Attr(4)]);
    }

    #[test]
    fn refs_joined_to_a_mount_share_its_counts() {
        let mount = KernelRefs::attached();
        let first = KernelRefs::unattached();
        assert!(first.knows(7), "unattached counts cannot say, so they say yes");
        first.remember(7);
        first.join(&mount);
        assert!(mount.holds(7) && first.knows(7) && !first.knows(8));
        // A second drive in the same mount sees the first one's counts.
        let second = KernelRefs::unattached();
        second.join(&mount);
        assert!(second.holds(7) && !second.knows(8));
        second.remember(7);
        assert!(!first.forget(7, 1));
        assert!(second.forget(7, 1), "the last reference");
        assert!(!mount.holds(7) && !second.knows(7));
        second.join(&mount);
        assert!(!second.forget(9, 1), "never handed out");
    }
}

//! A drive that can be locked while it stays mounted.
//!
//! The mount adapters serve a [`Slot`], not an [`Fs`]: locking takes the
//! `Fs` out (once its last reference is gone, its vault keys, the staging
//! key and the database key are wiped with it), and every request then
//! fails with [`ErrorKind::Locked`] until an unlocked `Fs` is put back.
//! The mount point itself stays a folder, so file managers and shells see
//! a locked drive rather than a broken one.
//!
//! The slot also remembers when the drive was last used, for auto-lock,
//! and carries the mount's [`KernelCache`] to every drive put in it (the
//! adapter sets it once it has mounted; until then, and without a mount,
//! it is [`NoKernelCache`]). It keeps what the kernel was handed
//! ([`KernelRefs`]) too: the kernel outlives a lock, so a drive put back
//! must know which inodes it still caches (docs/SYNC.md §4.5).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::error::{ErrorKind, FsError, Result};
use crate::fs::Fs;
use crate::kernel::{KernelCache, KernelRefs, NoKernelCache};
use crate::types::{Attr, Ctx, ROOT};
use nimbus_vault::{EntryKind, Timestamp};

pub struct Slot {
    fs: RwLock<Option<Arc<Fs>>>,
    /// Whose drive it is: the owner shown for the locked root.
    owner: Ctx,
    born: Instant,
    /// Milliseconds after `born` of the last request.
    last_use: AtomicU64,
    /// The mount's kernel caches, given to each drive put in the slot.
    kernel: RwLock<Arc<dyn KernelCache>>,
    /// The inodes the mount's kernel holds, shared by every drive put in.
    refs: KernelRefs,
}

impl Slot {
    pub fn new(fs: Option<Arc<Fs>>, owner: Ctx) -> Arc<Slot> {
        let kernel: Arc<dyn KernelCache> = Arc::new(NoKernelCache);
        // A new slot is a new mount: its kernel has been handed nothing.
        let refs = KernelRefs::attached();
        if let Some(fs) = &fs {
            fs.set_kernel_cache(kernel.clone());
            fs.kernel_refs().join(&refs);
        }
        Arc::new(Slot {
            fs: RwLock::new(fs),
            owner,
            born: Instant::now(),
            last_use: AtomicU64::new(0),
            kernel: RwLock::new(kernel),
            refs,
        })
    }

    /// The mount's kernel caches, for this drive and every drive put in
    /// later (the adapter calls this when it mounts the slot).
    pub fn set_kernel_cache(&self, cache: Arc<dyn KernelCache>) {
        // Held throughout, as in `put`, so a drive put in meanwhile gets
        // this cache too. Requests never take it.
        let Ok(mut k) = self.kernel.write() else { return };
        *k = cache.clone();
        if let Some(fs) = self.peek() {
            fs.set_kernel_cache(cache);
        }
    }

    /// The mount's kernel caches ([`NoKernelCache`] before a mount).
    pub fn kernel_cache(&self) -> Arc<dyn KernelCache> {
        match self.kernel.read() {
            Ok(k) => k.clone(),
            Err(_) => Arc::new(NoKernelCache),
        }
    }

    /// The drive, for a request from a person (counts as use).
    pub fn get(&self) -> Result<Arc<Fs>> {
        self.last_use
            .store(self.born.elapsed().as_millis() as u64, Ordering::Relaxed);
        self.peek().ok_or_else(|| {
            FsError::new(
                ErrorKind::Locked,
                "the drive is locked; unlock it with `nimbus unlock` or from the tray",
            )
        })
    }

    /// The drive, for the service's own look (does not count as use).
    pub fn peek(&self) -> Option<Arc<Fs>> {
        self.fs.read().ok().and_then(|f| f.clone())
    }

    /// Takes the drive out: requests fail as locked from now on.
    pub fn take(&self) -> Option<Arc<Fs>> {
        self.fs.write().ok().and_then(|mut f| f.take())
    }

    /// Puts an unlocked drive back.
    pub fn put(&self, fs: Arc<Fs>) {
        let kernel = self.kernel.read();
        if let Ok(k) = &kernel {
            fs.set_kernel_cache(Arc::clone(k));
        }
        // Before it serves a request: what the kernel holds from the drive
        // taken out is held from this one too.
        fs.kernel_refs().join(&self.refs);
        if let Ok(mut f) = self.fs.write() {
            *f = Some(fs);
        }
        drop(kernel);
        self.last_use
            .store(self.born.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    pub fn is_locked(&self) -> bool {
        self.peek().is_none()
    }

    /// How long since the last request.
    pub fn idle(&self) -> Duration {
        let last = Duration::from_millis(self.last_use.load(Ordering::Relaxed));
        self.born.elapsed().saturating_sub(last)
    }

    /// The root folder's attributes while locked: an empty folder of the
    /// owner's that nobody may enter (listing it fails as locked anyway).
    pub fn locked_root(&self) -> Attr {
        let t = Timestamp::now();
        Attr {
            ino: ROOT,
            kind: EntryKind::Dir,
            size: 0,
            blocks: 0,
            perm: 0o700,
            nlink: 2,
            uid: self.owner.uid,
            gid: self.owner.gid,
            rdev: 0,
            atime: t,
            mtime: t,
            ctime: t,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::fs::FsOptions;
    use nimbus_vault::{DeviceId, KdfParams, Vault, VaultParams};

    /// docs/SYNC.md §8.0: a drive unlocked under a mount that stayed up
    /// knows the inodes the kernel was handed before the lock.
    #[test]
    fn a_drive_put_back_knows_what_the_kernel_was_handed_before_the_lock() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let backend: nimbus_backend::DynBackend = Arc::new(nimbus_backend::MemoryBackend::new());
        rt.block_on(Vault::create(
            backend.clone(),
            b"pw",
            VaultParams::default(),
            KdfParams::minimum(),
        ))
        .unwrap();
        let state = tempfile::tempdir().unwrap();
        let device = DeviceId::random();
        let load = || {
            let vault = rt.block_on(Vault::open(backend.clone(), b"pw")).unwrap();
            let mut opts = FsOptions::new(state.path().join("vault"), device);
            opts.commit_delay = Duration::from_secs(3600);
            Fs::load(vault, rt.handle().clone(), opts).unwrap()
        };
        let first = load();
        let a = first.create(Ctx::ROOT, ROOT, b"a", 0o644).unwrap().0.ino;
        let unknown = first.create(Ctx::ROOT, ROOT, b"b", 0o644).unwrap().0.ino;
        let slot = Slot::new(Some(first), Ctx::ROOT);
        let fs = slot.get().unwrap();
        fs.remember(a);
        fs.remember(a);
        assert!(fs.kernel_refs().knows(a) && !fs.kernel_refs().knows(unknown));

        // Locked, then unlocked: a new drive over the same state.
        let taken = slot.take().unwrap();
        taken.shutdown().unwrap();
        drop((taken, fs));
        let second = load();
        assert!(
            second.kernel_refs().knows(unknown),
            "outside a slot it cannot tell: it assumes yes"
        );
        slot.put(second);
        let fs = slot.get().unwrap();
        assert!(
            fs.kernel_refs().knows(a),
            "the kernel still caches the inode handed out before the lock"
        );
        assert!(!fs.kernel_refs().knows(unknown));
        // Its forgets count against the references handed out before.
        fs.forget(a, 1).unwrap();
        assert!(fs.kernel_refs().holds(a));
        fs.forget(a, 1).unwrap();
        assert!(!fs.kernel_refs().holds(a));
        fs.shutdown_without_commit();
    }
}

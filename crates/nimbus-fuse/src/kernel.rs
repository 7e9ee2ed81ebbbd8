//! The core's [`KernelCache`] over `fuser::Notifier`: the FUSE
//! invalidation notices (`FUSE_NOTIFY_INVAL_INODE`, `_INVAL_ENTRY`,
//! `_DELETE`).
//!
//! Every call is queued and sent from a thread of its own, never from the
//! caller's. Writing a notice to `/dev/fuse` runs the kernel's side at
//! once, on the writing thread: an entry's invalidation takes the lock of
//! its folder, which the kernel holds while one of our workers serves a
//! request in that folder; an inode's invalidation waits for its pages,
//! which a read in progress holds locked, and may write dirty pages back,
//! which needs a free worker and no core lock held against it. Sent from a
//! FUSE worker or under a core lock, a notice could wait for itself. The
//! thread holds no lock of the core, so the kernel only ever waits for
//! workers, and workers only for the core.

use fuser::{INodeNo, Notifier};
use nimbus_fs::{Ino, KernelCache, KernelCall};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::mpsc::{channel, Sender};
use std::sync::Mutex;

enum Msg {
    Call(KernelCall),
    /// Answered once every call queued before it was sent.
    Flush(Sender<()>),
}

/// The kernel caches of one mount.
pub(crate) struct FuseKernelCache {
    // In a mutex only so the type is `Sync` on every toolchain we build.
    tx: Mutex<Sender<Msg>>,
}

impl FuseKernelCache {
    /// Starts the thread that sends the notices; it ends when this cache
    /// is dropped (the last drive and slot holding it are gone).
    pub(crate) fn start(notifier: Notifier) -> std::io::Result<FuseKernelCache> {
        let (tx, rx) = channel::<Msg>();
        std::thread::Builder::new()
            .name("nimbus-kernel".into())
            .spawn(move || {
                for msg in rx {
                    match msg {
                        Msg::Call(call) => send(&notifier, &call),
                        Msg::Flush(done) => {
                            let _ = done.send(());
                        }
                    }
                }
            })?;
        Ok(FuseKernelCache { tx: Mutex::new(tx) })
    }

    fn queue(&self, msg: Msg) {
        if let Ok(tx) = self.tx.lock() {
            // The thread is gone only if it panicked; nothing to do then.
            let _ = tx.send(msg);
        }
    }
}

/// Sends one notice. "No such entry" is already taken as done by fuser
/// (the kernel had dropped it); other refusals (the mount is going away)
/// are only logged, by inode number, never by name.
fn send(n: &Notifier, call: &KernelCall) {
    let res = match call {
        // Offset 0, length 0: the whole page cache.
        KernelCall::Inode(ino) => n.inval_inode(INodeNo(*ino), 0, 0),
        // A negative offset: attributes only.
        KernelCall::Attr(ino) => n.inval_inode(INodeNo(*ino), -1, 0),
        KernelCall::Entry { parent, name } => n.inval_entry(INodeNo(*parent), OsStr::from_bytes(name)),
        KernelCall::Deleted { parent, ino, name } => n.delete(INodeNo(*parent), INodeNo(*ino), OsStr::from_bytes(name)),
    };
    if let Err(e) = res {
        let ino = match call {
            KernelCall::Inode(i) | KernelCall::Attr(i) => *i,
            KernelCall::Entry { parent, .. } | KernelCall::Deleted { parent, .. } => *parent,
        };
        tracing::debug!("the kernel refused an invalidation for inode {ino}: {e}");
    }
}

impl KernelCache for FuseKernelCache {
    fn inval_inode(&self, ino: Ino) {
        self.queue(Msg::Call(KernelCall::Inode(ino)));
    }
    fn inval_attr(&self, ino: Ino) {
        self.queue(Msg::Call(KernelCall::Attr(ino)));
    }
    fn inval_entry(&self, parent: Ino, name: &[u8]) {
        self.queue(Msg::Call(KernelCall::Entry {
            parent,
            name: name.to_vec(),
        }));
    }
    fn deleted(&self, parent: Ino, ino: Ino, name: &[u8]) {
        self.queue(Msg::Call(KernelCall::Deleted {
            parent,
            ino,
            name: name.to_vec(),
        }));
    }
    fn flush(&self) {
        let (done, wait) = channel();
        self.queue(Msg::Flush(done));
        // An error means the thread is gone, and so is anything to wait for.
        let _ = wait.recv();
    }
}

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
//!
//! The queue holds each pending call once (a repeat of a call not yet sent
//! adds nothing: sending it later has the effect of both) and at most
//! [`MAX_PENDING`] calls; beyond that calls are dropped, as the core's
//! `KernelLink` drops them, which costs little (the kernel keeps attributes
//! and names only for the mount's short time to live, and the sync engine
//! never gives an inode the kernel knows new content). A mount whose
//! kernel stopped reading notices therefore cannot grow memory without end.
//!
//! [`KernelCache::flush`] waits for the queue at most [`FLUSH_WAIT`]. The
//! kernel may be waiting for the very thread that flushes: an `fsync` of
//! the root (`nimbus sync`) holds the root's lock in the kernel while a
//! worker waits for the sync thread, and a notice of a name in the root
//! waits for that lock. So no thread a FUSE request may wait for (a
//! worker, the sync thread) flushes; the tests do, and the bound keeps a
//! mistaken flush from hanging for ever.

use fuser::{INodeNo, Notifier};
use nimbus_fs::{Ino, KernelCache, KernelCall};
use std::collections::{HashSet, VecDeque};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// At most this many calls wait to be sent (see the module comment).
pub(crate) const MAX_PENDING: usize = 100_000;

/// How long [`KernelCache::flush`] waits for the queue at most.
pub(crate) const FLUSH_WAIT: Duration = Duration::from_secs(5);

/// Calls waiting for the sending thread, each once, in the order made.
#[derive(Default)]
struct Pending {
    order: VecDeque<KernelCall>,
    members: HashSet<KernelCall>,
    /// A call is being sent right now.
    sending: bool,
    /// Calls were dropped since the queue was last full (warned once).
    dropped: bool,
    stop: bool,
}

/// The queue between the callers and the sending thread.
#[derive(Default)]
struct Queue {
    pending: Mutex<Pending>,
    cv: Condvar,
}

impl Queue {
    /// Queues `call` unless it is already waiting or the queue is full.
    fn push(&self, call: KernelCall) {
        let Ok(mut p) = self.pending.lock() else { return };
        if p.members.contains(&call) {
            return;
        }
        if p.order.len() >= MAX_PENDING {
            if !p.dropped {
                p.dropped = true;
                tracing::warn!("the kernel is not taking invalidations; dropping the rest");
            }
            return;
        }
        p.dropped = false;
        p.members.insert(call.clone());
        p.order.push_back(call);
        drop(p);
        self.cv.notify_all();
    }

    /// The next call to send, marked as being sent; `None` when stopping.
    fn next(&self) -> Option<KernelCall> {
        let mut p = self.pending.lock().ok()?;
        p.sending = false;
        self.cv.notify_all();
        loop {
            if p.stop {
                return None;
            }
            if let Some(call) = p.order.pop_front() {
                p.members.remove(&call);
                p.sending = true;
                return Some(call);
            }
            p = self.cv.wait(p).ok()?;
        }
    }

    /// Waits until nothing is queued or being sent, at most `limit`.
    /// Whether it got there.
    fn wait_empty(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let Ok(mut p) = self.pending.lock() else { return false };
        while !p.stop && (p.sending || !p.order.is_empty()) {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            p = match self.cv.wait_timeout(p, deadline - now) {
                Ok((g, _)) => g,
                Err(_) => return false,
            };
        }
        true
    }

    fn stop(&self) {
        if let Ok(mut p) = self.pending.lock() {
            p.stop = true;
        }
        self.cv.notify_all();
    }
}

/// The kernel caches of one mount.
pub(crate) struct FuseKernelCache {
    queue: Arc<Queue>,
}

impl FuseKernelCache {
    /// Starts the thread that sends the notices; it ends when this cache
    /// is dropped (the last drive and slot holding it are gone).
    pub(crate) fn start(notifier: Notifier) -> std::io::Result<FuseKernelCache> {
        FuseKernelCache::start_with(move |call| send(&notifier, &call))
    }

    /// [`FuseKernelCache::start`] with any way of sending (tests).
    fn start_with(send: impl Fn(KernelCall) + Send + 'static) -> std::io::Result<FuseKernelCache> {
        let queue = Arc::new(Queue::default());
        let q = queue.clone();
        std::thread::Builder::new()
            .name("nimbus-kernel".into())
            .spawn(move || {
                while let Some(call) = q.next() {
                    send(call);
                }
            })?;
        Ok(FuseKernelCache { queue })
    }
}

impl Drop for FuseKernelCache {
    fn drop(&mut self) {
        self.queue.stop();
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
        self.queue.push(KernelCall::Inode(ino));
    }
    fn inval_attr(&self, ino: Ino) {
        self.queue.push(KernelCall::Attr(ino));
    }
    fn inval_entry(&self, parent: Ino, name: &[u8]) {
        self.queue.push(KernelCall::Entry {
            parent,
            name: name.to_vec(),
        });
    }
    fn deleted(&self, parent: Ino, ino: Ino, name: &[u8]) {
        self.queue.push(KernelCall::Deleted {
            parent,
            ino,
            name: name.to_vec(),
        });
    }
    /// Waits for the queue, at most [`FLUSH_WAIT`] (see the module
    /// comment for who may call it).
    fn flush(&self) {
        if !self.queue.wait_empty(FLUSH_WAIT) {
            tracing::warn!("kernel invalidations still waiting after {FLUSH_WAIT:?}; not waiting longer");
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::sync::mpsc;

    /// A sender that blocks until the test lets each call through.
    fn gated() -> (FuseKernelCache, mpsc::SyncSender<()>, Arc<Mutex<Vec<KernelCall>>>) {
        let (go, gate) = mpsc::sync_channel::<()>(0);
        let gate = Mutex::new(gate);
        let sent = Arc::new(Mutex::new(Vec::new()));
        let s = sent.clone();
        let cache = FuseKernelCache::start_with(move |call| {
            let _ = gate.lock().unwrap().recv();
            s.lock().unwrap().push(call);
        })
        .unwrap();
        (cache, go, sent)
    }

    #[test]
    fn repeats_of_a_waiting_call_are_sent_once_in_order() {
        let (cache, go, sent) = gated();
        cache.inval_inode(1); // taken by the thread, held at the gate
        while cache.queue.pending.lock().unwrap().order.len() == 1 {
            std::thread::yield_now();
        }
        cache.inval_entry(1, b"a");
        cache.inval_inode(2);
        cache.inval_entry(1, b"a");
        cache.inval_inode(1); // already sending: queued again
        assert_eq!(cache.queue.pending.lock().unwrap().order.len(), 3);
        for _ in 0..4 {
            go.send(()).unwrap();
        }
        assert!(cache.queue.wait_empty(Duration::from_secs(10)));
        assert_eq!(
            *sent.lock().unwrap(),
            vec![
                KernelCall::Inode(1),
                KernelCall::Entry {
                    parent: 1,
                    name: b"a".to_vec()
                },
                KernelCall::Inode(2),
                KernelCall::Inode(1),
            ]
        );
    }

    #[test]
    fn the_queue_is_bounded() {
        let (cache, go, sent) = gated();
        for ino in 0..(MAX_PENDING as u64 + 50) {
            cache.inval_attr(ino);
        }
        let waiting = cache.queue.pending.lock().unwrap().order.len();
        // One may have been taken by the thread already.
        assert!((MAX_PENDING - 1..=MAX_PENDING).contains(&waiting), "{waiting}");
        drop(go); // the gate opens for good
        assert!(cache.queue.wait_empty(Duration::from_secs(60)));
        assert!(sent.lock().unwrap().len() <= MAX_PENDING + 1);
    }

    #[test]
    fn flush_gives_up_when_the_kernel_does_not_take_a_notice() {
        let (cache, go, _sent) = gated();
        cache.inval_inode(7);
        let t = Instant::now();
        assert!(
            !cache.queue.wait_empty(Duration::from_millis(200)),
            "a stuck notice waits"
        );
        assert!(t.elapsed() >= Duration::from_millis(200));
        go.send(()).unwrap();
        assert!(cache.queue.wait_empty(Duration::from_secs(10)));
    }
}

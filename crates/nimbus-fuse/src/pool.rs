//! Threads for the requests that may wait: reads (which may go to the
//! store), `fsync` (the disk), `fsync` of the root (a commit to the vault),
//! and anything under `.snapshots` (trees fetched from the vault). They are
//! answered from here, so the threads reading `/dev/fuse` go on serving
//! lookups, attributes and writes meanwhile, and one slow file holds up no
//! other. fuser lets a reply be sent from any thread.

use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};

type Job = Box<dyn FnOnce() + Send>;

pub(crate) struct Pool {
    tx: Mutex<Sender<Job>>,
}

impl Pool {
    /// Starts `threads` threads; they end once the pool is dropped and
    /// the jobs already given to it are done.
    pub(crate) fn new(threads: usize) -> std::io::Result<Pool> {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = Arc::clone(&rx);
            std::thread::Builder::new()
                .name(format!("nimbus-fuse-wait-{i}"))
                .spawn(move || worker(&rx))?;
        }
        Ok(Pool { tx: Mutex::new(tx) })
    }

    /// Runs `job` on one of the pool's threads. If the pool is gone (the
    /// drive is being unmounted) it runs here instead, so every request
    /// still gets its answer.
    pub(crate) fn run(&self, job: impl FnOnce() + Send + 'static) {
        let job: Job = Box::new(job);
        let rejected = match self.tx.lock() {
            Ok(tx) => tx.send(job).err().map(|e| e.0),
            Err(_) => Some(job),
        };
        if let Some(job) = rejected {
            job();
        }
    }
}

fn worker(rx: &Mutex<Receiver<Job>>) {
    loop {
        let job = match rx.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        match job {
            Ok(job) => job(),
            Err(_) => return, // the pool was dropped
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Barrier;

    #[test]
    fn jobs_run_at_once_on_separate_threads() {
        // Four jobs that each wait for all four: they finish only if they
        // run at the same time, as waiting requests must.
        let pool = Pool::new(4).unwrap();
        let barrier = Arc::new(Barrier::new(5));
        let done = Arc::new(AtomicUsize::new(0));
        for _ in 0..4 {
            let (b, d) = (Arc::clone(&barrier), Arc::clone(&done));
            pool.run(move || {
                b.wait();
                d.fetch_add(1, Ordering::SeqCst);
            });
        }
        barrier.wait();
        drop(pool);
        while done.load(Ordering::SeqCst) < 4 {
            std::thread::yield_now();
        }
    }
}

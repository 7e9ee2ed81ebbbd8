//! The simulation's store (docs/SYNC.md §6.2): one vault in memory seen by
//! every device through its own [`SimView`], which lags listings, fails
//! requests before or after they take effect, and can be cut off
//! altogether (a partition, or a crash point). The store's own clock
//! (`MemoryBackend` stamps each write later than the one before) dates
//! objects; no device clock is involved.

use async_trait::async_trait;
use bytes::Bytes;
use nimbus_backend::{Backend, BackendError, MemoryBackend, ObjectInfo};
use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use crate::rng::Rng;

/// What one device's view does wrong, set by the driver.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Every request fails (the device is offline).
    pub partitioned: bool,
    /// Out of 1000 requests, how many fail (half of the writes among them
    /// after they took effect).
    pub fail_per_mille: u32,
    /// A listing shows only what was written this many requests ago or
    /// earlier (older versions of objects written since).
    pub lag: u64,
    /// After this many more requests the device is cut off (a crash
    /// point inside a cycle); `None`: never.
    pub cut_after: Option<u64>,
    /// Each request lets other tasks run first, so two pruners marking
    /// at once interleave their requests.
    pub yield_each: bool,
}

/// The store's shared state: the objects, and each key's versions as a
/// listing saw them, by the request count at which they were written.
struct Shared {
    mem: MemoryBackend,
    /// Requests so far, by every device: the store's tick.
    tick: u64,
    /// Per key, (tick of the write, what a listing showed right after it).
    versions: BTreeMap<String, Vec<(u64, ObjectInfo)>>,
}

/// The simulated store.
#[derive(Clone)]
pub struct SimStore {
    shared: Arc<Mutex<Shared>>,
}

impl SimStore {
    pub fn new() -> SimStore {
        SimStore {
            shared: Arc::new(Mutex::new(Shared {
                mem: MemoryBackend::new(),
                tick: 0,
                versions: BTreeMap::new(),
            })),
        }
    }

    /// A view of the store for one device, with faults switched off.
    pub fn view(&self, seed: u64) -> Arc<SimView> {
        Arc::new(SimView {
            store: self.clone(),
            faults: Mutex::new(Faults::default()),
            rng: Mutex::new(Rng::new(seed)),
        })
    }

    /// The store as it is, without lag or faults (for checks).
    pub fn honest(&self) -> MemoryBackend {
        self.shared.lock().unwrap().mem.clone()
    }

    /// Counts a request; returns the tick it happens at.
    fn tick(&self) -> u64 {
        let mut s = self.shared.lock().unwrap();
        s.tick += 1;
        s.tick
    }

    /// Records a write's listing entry at `tick`.
    async fn note_write(&self, key: &str, tick: u64) {
        let info = self.honest().stat(key).await;
        let mut s = self.shared.lock().unwrap();
        match info {
            Ok(Some(i)) => s.versions.entry(key.to_string()).or_default().push((tick, i)),
            _ => {
                s.versions.remove(key);
            }
        }
    }

    /// A listing as a device whose listings lag by `lag` requests sees it.
    fn list_lagged(&self, prefix: &str, lag: u64) -> Vec<ObjectInfo> {
        let s = self.shared.lock().unwrap();
        let visible = s.tick.saturating_sub(lag);
        s.versions
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .filter_map(|(_, v)| v.iter().rev().find(|(t, _)| *t <= visible).map(|(_, i)| i.clone()))
            .collect()
    }
}

/// One device's way to the store.
pub struct SimView {
    store: SimStore,
    pub faults: Mutex<Faults>,
    rng: Mutex<Rng>,
}

/// Whether a request fails, and when.
#[derive(PartialEq, Eq)]
enum Fate {
    Fine,
    FailBefore,
    FailAfter,
}

impl SimView {
    pub fn set(&self, f: impl FnOnce(&mut Faults)) {
        f(&mut self.faults.lock().unwrap());
    }

    /// Decides the fate of one request; `write` can fail after it landed.
    fn fate(&self, write: bool) -> Fate {
        let mut f = self.faults.lock().unwrap();
        if let Some(n) = f.cut_after.as_mut() {
            if *n == 0 {
                f.partitioned = true;
            } else {
                *n -= 1;
            }
        }
        if f.partitioned {
            return Fate::FailBefore;
        }
        let mut rng = self.rng.lock().unwrap();
        if rng.below(1000) >= u64::from(f.fail_per_mille) {
            return Fate::Fine;
        }
        if write && rng.below(2) == 0 {
            Fate::FailAfter
        } else {
            Fate::FailBefore
        }
    }

    /// Lets the other task run, when this view interleaves.
    async fn pace(&self) {
        let interleave = self.faults.lock().unwrap().yield_each;
        if interleave {
            tokio::task::yield_now().await;
        }
    }

    fn lag(&self) -> u64 {
        self.faults.lock().unwrap().lag
    }
}

fn broke() -> BackendError {
    BackendError::unavailable("the simulated network dropped the request")
}

#[async_trait]
impl Backend for SimView {
    async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<Bytes, BackendError> {
        self.pace().await;
        self.store.tick();
        if self.fate(false) != Fate::Fine {
            return Err(broke());
        }
        self.store.honest().get(key, range).await
    }

    async fn put(&self, key: &str, data: Bytes) -> Result<(), BackendError> {
        self.pace().await;
        let tick = self.store.tick();
        let fate = self.fate(true);
        if fate == Fate::FailBefore {
            return Err(broke());
        }
        self.store.honest().put(key, data).await?;
        self.store.note_write(key, tick).await;
        if fate == Fate::FailAfter {
            return Err(BackendError::unavailable("the connection broke after the upload"));
        }
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, BackendError> {
        self.pace().await;
        self.store.tick();
        if self.fate(false) != Fate::Fine {
            return Err(broke());
        }
        Ok(self.store.list_lagged(prefix, self.lag()))
    }

    async fn delete(&self, key: &str) -> Result<(), BackendError> {
        self.pace().await;
        let tick = self.store.tick();
        let fate = self.fate(true);
        if fate == Fate::FailBefore {
            return Err(broke());
        }
        self.store.honest().delete(key).await?;
        self.store.note_write(key, tick).await;
        if fate == Fate::FailAfter {
            return Err(BackendError::unavailable("the connection broke after the delete"));
        }
        Ok(())
    }

    async fn stat(&self, key: &str) -> Result<Option<ObjectInfo>, BackendError> {
        self.pace().await;
        self.store.tick();
        if self.fate(false) != Fate::Fine {
            return Err(broke());
        }
        self.store.honest().stat(key).await
    }

    fn describe(&self) -> String {
        "the simulation's store".into()
    }

    fn is_local(&self) -> bool {
        true
    }
}

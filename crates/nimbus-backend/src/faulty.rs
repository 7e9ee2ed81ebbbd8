//! A wrapper that makes any [`Backend`] fail on purpose: random transient
//! errors, delays, truncated reads, puts that stop working after a while, or
//! the whole store going offline. For tests of what the vault does when the
//! store misbehaves in ways a real server will not do on demand.
//!
//! Three faults aim at one object rather than at random: puts under a key
//! prefix that fail (an index upload lost while packs went through), one
//! get of a key answered with other bytes (a store replaying an old object
//! to one reader), and ranged gets answered with the whole object (a
//! server that ignores `Range`).
//!
//! Every random choice comes from one seeded generator, so a test that makes
//! its calls one after another sees the same faults on every run. Calls made
//! concurrently draw in whatever order they happen to run.

use crate::{Backend, BackendError, ObjectInfo};
use async_trait::async_trait;
use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::ops::Range;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// What faults a [`FaultyBackend`] injects. The default injects none.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultConfig {
    /// Fraction (0 to 1) of calls that fail with
    /// [`crate::BackendErrorKind::Unavailable`] before reaching the wrapped
    /// store, so a failed put writes nothing.
    pub error_rate: f64,
    /// Waited before each call.
    pub delay: Option<Duration>,
    /// Fraction (0 to 1) of successful non-empty gets whose bytes are cut
    /// short, to a random length below the real one.
    pub truncate_reads: f64,
    /// After this many successful puts, every further put fails with
    /// `Unavailable`, as a connection lost in the middle of an upload would.
    pub fail_puts_after: Option<u64>,
    /// Seed of the generator behind every random choice.
    pub seed: u64,
}

/// How many calls a [`FaultyBackend`] saw, and how many bytes went through.
///
/// Calls are counted whether or not they failed; bytes only for calls that
/// succeeded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FaultStats {
    /// `get` calls.
    pub gets: u64,
    /// Bytes returned by successful gets (after any truncation).
    pub get_bytes: u64,
    /// `put` calls.
    pub puts: u64,
    /// Bytes stored by successful puts.
    pub put_bytes: u64,
    /// `list` calls.
    pub lists: u64,
    /// `delete` calls.
    pub deletes: u64,
    /// `stat` calls.
    pub stats: u64,
    /// Calls failed on purpose (offline, error rate or `fail_puts_after`).
    pub injected_errors: u64,
    /// Gets whose bytes were cut short on purpose.
    pub truncated_reads: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    Get,
    Put,
    List,
    Delete,
    Stat,
}

impl Call {
    fn name(self) -> &'static str {
        match self {
            Call::Get => "read",
            Call::Put => "write",
            Call::List => "list",
            Call::Delete => "delete",
            Call::Stat => "look up",
        }
    }
}

struct State {
    config: FaultConfig,
    rng: StdRng,
    offline: bool,
    /// Successful puts counted against `fail_puts_after`.
    puts_done: u64,
    stats: FaultStats,
    /// Puts of keys starting with this fail.
    fail_puts_under: Option<String>,
    /// Key, gets of it still to pass before the replay, bytes to answer.
    replay: Vec<(String, u64, Bytes)>,
    ignore_ranges: bool,
}

/// Wraps `B` and injects the faults described by a [`FaultConfig`].
pub struct FaultyBackend<B> {
    inner: B,
    // A std mutex: it is never held across an await.
    state: Mutex<State>,
}

impl<B> std::fmt::Debug for FaultyBackend<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("FaultyBackend")
            .field("config", &state.config)
            .field("offline", &state.offline)
            .finish_non_exhaustive()
    }
}

impl<B: Backend> FaultyBackend<B> {
    /// Wraps `inner`.
    pub fn new(inner: B, config: FaultConfig) -> Self {
        let rng = StdRng::seed_from_u64(config.seed);
        Self {
            inner,
            state: Mutex::new(State {
                config,
                rng,
                offline: false,
                puts_done: 0,
                stats: FaultStats::default(),
                fail_puts_under: None,
                replay: Vec::new(),
                ignore_ranges: false,
            }),
        }
    }

    /// The wrapped store, to look at it without faults.
    pub fn inner(&self) -> &B {
        &self.inner
    }

    /// While `true`, every call fails with `Unavailable` without reaching the
    /// wrapped store, as if the network were down.
    pub fn set_offline(&self, offline: bool) {
        self.lock().offline = offline;
    }

    /// Whether [`FaultyBackend::set_offline`] made the store offline.
    pub fn is_offline(&self) -> bool {
        self.lock().offline
    }

    /// Changes [`FaultConfig::error_rate`].
    pub fn set_error_rate(&self, rate: f64) {
        self.lock().config.error_rate = rate;
    }

    /// Changes [`FaultConfig::truncate_reads`].
    pub fn set_truncate_reads(&self, rate: f64) {
        self.lock().config.truncate_reads = rate;
    }

    /// Changes [`FaultConfig::delay`].
    pub fn set_delay(&self, delay: Option<Duration>) {
        self.lock().config.delay = delay;
    }

    /// Makes puts fail after `n` more successful ones (`None`: never).
    pub fn set_fail_puts_after(&self, n: Option<u64>) {
        let mut state = self.lock();
        state.config.fail_puts_after = n;
        state.puts_done = 0;
    }

    /// Makes every put of a key starting with `prefix` fail with
    /// `Unavailable` (`None`: stop), whatever else goes through.
    pub fn set_fail_puts_under(&self, prefix: Option<&str>) {
        self.lock().fail_puts_under = prefix.map(str::to_string);
    }

    /// Answers the `nth` get of `key` from now on (1 is the next one) with
    /// `bytes` instead of what is stored, once, as a store that replays an
    /// old copy of an object to one reader would. A ranged get is answered
    /// with that range of `bytes`.
    pub fn replay_on_get(&self, key: &str, nth: u64, bytes: Bytes) {
        self.lock().replay.push((key.to_string(), nth.max(1), bytes));
    }

    /// While `true`, a ranged get answers with the whole object, as a server
    /// that ignores `Range` (and answers `200 OK`) does.
    pub fn set_ignore_ranges(&self, ignore: bool) {
        self.lock().ignore_ranges = ignore;
    }

    /// The counters so far.
    pub fn stats(&self) -> FaultStats {
        self.lock().stats.clone()
    }

    /// Sets every counter back to zero.
    pub fn reset_stats(&self) {
        self.lock().stats = FaultStats::default();
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock leaves plain counters
        // behind, which are still fine to use.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts the call, waits the configured delay and decides whether the
    /// call fails before reaching the wrapped store.
    async fn enter(&self, call: Call, key: &str) -> Result<(), BackendError> {
        let (delay, reason) = {
            let mut state = self.lock();
            let stats = &mut state.stats;
            match call {
                Call::Get => stats.gets += 1,
                Call::Put => stats.puts += 1,
                Call::List => stats.lists += 1,
                Call::Delete => stats.deletes += 1,
                Call::Stat => stats.stats += 1,
            }
            let reason = if state.offline {
                Some("the store is offline")
            } else if state.rng.gen::<f64>() < state.config.error_rate {
                Some("random failure")
            } else if call == Call::Put && state.config.fail_puts_after.is_some_and(|n| state.puts_done >= n) {
                Some("puts stopped working")
            } else if call == Call::Put && state.fail_puts_under.as_deref().is_some_and(|p| key.starts_with(p)) {
                Some("puts under this prefix fail")
            } else {
                None
            };
            if reason.is_some() {
                state.stats.injected_errors += 1;
            }
            (state.config.delay, reason)
        };
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
        match reason {
            None => Ok(()),
            Some(reason) => Err(BackendError::unavailable(format!(
                "could not {} `{key}` ({reason}, injected for testing)",
                call.name()
            ))
            .with_key(key)),
        }
    }
}

#[async_trait]
impl<B: Backend> Backend for FaultyBackend<B> {
    async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<Bytes, BackendError> {
        self.enter(Call::Get, key).await?;
        let (replayed, whole) = {
            let mut state = self.lock();
            let mut replayed = None;
            if let Some(i) = state.replay.iter().position(|r| r.0 == key) {
                state.replay[i].1 -= 1;
                if state.replay[i].1 == 0 {
                    replayed = Some(state.replay.remove(i).2);
                }
            }
            (replayed, state.ignore_ranges)
        };
        let mut data = match (replayed, range) {
            (Some(old), None) => old,
            (Some(old), Some(r)) => {
                let len = old.len() as u64;
                old.slice(r.start.min(len) as usize..r.end.min(len) as usize)
            }
            (None, Some(_)) if whole => self.inner.get(key, None).await?,
            (None, range) => self.inner.get(key, range).await?,
        };
        let mut state = self.lock();
        if state.rng.gen::<f64>() < state.config.truncate_reads && !data.is_empty() {
            let len = state.rng.gen_range(0..data.len());
            data.truncate(len);
            state.stats.truncated_reads += 1;
        }
        state.stats.get_bytes += data.len() as u64;
        Ok(data)
    }

    async fn put(&self, key: &str, data: Bytes) -> Result<(), BackendError> {
        self.enter(Call::Put, key).await?;
        let len = data.len() as u64;
        self.inner.put(key, data).await?;
        let mut state = self.lock();
        state.puts_done += 1;
        state.stats.put_bytes += len;
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, BackendError> {
        self.enter(Call::List, prefix).await?;
        self.inner.list(prefix).await
    }

    async fn delete(&self, key: &str) -> Result<(), BackendError> {
        self.enter(Call::Delete, key).await?;
        self.inner.delete(key).await
    }

    /// One call, and one chance of failing, per batch the wrapped store
    /// takes; an injected failure deletes nothing of its batch.
    async fn delete_many(&self, keys: &[String]) -> Result<(), BackendError> {
        let batch = self.inner.delete_batch_max();
        crate::for_each_batch(keys.len(), batch, 1, |range| async move {
            let chunk = &keys[range];
            let first = chunk.first().map_or("", String::as_str);
            self.enter(Call::Delete, first).await?;
            self.inner.delete_many(chunk).await
        })
        .await
    }

    fn delete_batch_max(&self) -> usize {
        self.inner.delete_batch_max()
    }

    async fn stat(&self, key: &str) -> Result<Option<ObjectInfo>, BackendError> {
        self.enter(Call::Stat, key).await?;
        self.inner.stat(key).await
    }

    fn describe(&self) -> String {
        format!("{} (with injected faults)", self.inner.describe())
    }

    fn limits(&self) -> Option<std::sync::Arc<crate::NetLimits>> {
        self.inner.limits()
    }
}

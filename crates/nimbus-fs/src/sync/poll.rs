//! How often the sync loop polls the refs (docs/SYNC.md §1.3): 2 s while
//! things change, the idle interval otherwise (5 s, or the drive's
//! `FsOptions::poll`), a backoff from 2 s doubling to 60 s while the store
//! fails, and ±20 % jitter on each, so devices do not poll in step.

use rand::Rng;
use std::time::{Duration, Instant};

/// The interval while things change.
pub(crate) const HOT: Duration = Duration::from_secs(2);
/// The idle interval when the drive sets none.
pub(crate) const IDLE: Duration = Duration::from_secs(5);
/// How long a local change, a remote change or a merge keeps polling hot.
pub(crate) const HOT_FOR: Duration = Duration::from_secs(120);
/// The first wait after a failed poll, doubled at each failure after it.
pub(crate) const BACKOFF_FIRST: Duration = Duration::from_secs(2);
/// The longest wait while the store fails.
pub(crate) const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// The jitter, as a fraction of the interval either way.
pub(crate) const JITTER: f64 = 0.2;

/// The poll interval's state: when things last changed, and how many polls
/// in a row failed.
#[derive(Debug, Clone)]
pub(crate) struct Interval {
    idle: Duration,
    hot_until: Option<Instant>,
    failures: u32,
}

impl Interval {
    /// `idle` overrides [`IDLE`] (the drive's setting); a shorter one also
    /// shortens the hot interval and the first backoff step, so the fastest
    /// setting is fast everywhere.
    pub fn new(idle: Option<Duration>) -> Interval {
        Interval {
            idle: idle.unwrap_or(IDLE).max(Duration::from_millis(1)),
            hot_until: None,
            failures: 0,
        }
    }

    /// Something changed (here or on another device): poll hot for a while.
    pub fn activity(&mut self, now: Instant) {
        self.hot_until = Some(now + HOT_FOR);
    }

    pub fn succeeded(&mut self) {
        self.failures = 0;
    }

    pub fn failed(&mut self) {
        self.failures = self.failures.saturating_add(1);
    }

    /// How many polls in a row failed.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// The interval before jitter. While paused the drive polls at the idle
    /// interval (it neither commits nor merges, so nothing is hot).
    pub fn base(&self, now: Instant, paused: bool) -> Duration {
        if self.failures > 0 {
            let first = BACKOFF_FIRST.min(self.idle);
            let doublings = (self.failures - 1).min(16);
            return (first * 2u32.pow(doublings)).min(BACKOFF_MAX);
        }
        if !paused && self.hot_until.is_some_and(|t| now < t) {
            return HOT.min(self.idle);
        }
        self.idle
    }

    /// The wait before the next poll: [`Interval::base`] with jitter.
    pub fn next(&self, now: Instant, paused: bool, rng: &mut impl Rng) -> Duration {
        jitter(self.base(now, paused), rng.gen_range(-1.0..=1.0))
    }
}

/// `d` moved by `r` (in -1..=1) times [`JITTER`] of itself.
fn jitter(d: Duration, r: f64) -> Duration {
    d.mul_f64(1.0 + JITTER * r.clamp(-1.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn the_table_of_intervals() {
        let t = Instant::now();
        let mut i = Interval::new(None);
        assert_eq!(i.base(t, false), IDLE, "idle");
        i.activity(t);
        assert_eq!(i.base(t + S(1), false), HOT, "hot after a change");
        assert_eq!(i.base(t + S(1), true), IDLE, "paused polls at the idle interval");
        assert_eq!(i.base(t + HOT_FOR + S(1), false), IDLE, "idle again after two minutes");
        let backoff: Vec<Duration> = (0..7)
            .map(|_| {
                i.failed();
                i.base(t, false)
            })
            .collect();
        assert_eq!(backoff, vec![S(2), S(4), S(8), S(16), S(32), S(60), S(60)]);
        for _ in 0..100 {
            i.failed();
        }
        assert_eq!(i.base(t, true), BACKOFF_MAX, "no overflow, paused or not");
        i.succeeded();
        assert_eq!(i.base(t + S(1), false), HOT, "recovered, still hot");
    }

    #[test]
    fn the_drives_setting_overrides_the_idle_interval() {
        let t = Instant::now();
        let mut slow = Interval::new(Some(S(30)));
        assert_eq!(slow.base(t, false), S(30));
        slow.activity(t);
        assert_eq!(slow.base(t, false), HOT);
        let mut fast = Interval::new(Some(Duration::from_millis(100)));
        fast.activity(t);
        assert_eq!(fast.base(t, false), Duration::from_millis(100));
        fast.failed();
        fast.failed();
        assert_eq!(fast.base(t, false), Duration::from_millis(200));
    }

    #[test]
    fn jitter_stays_within_a_fifth() {
        assert_eq!(jitter(S(5), -1.0), S(4));
        assert_eq!(jitter(S(5), 1.0), S(6));
        assert_eq!(jitter(S(5), 7.0), S(6), "clamped");
        let i = Interval::new(None);
        let mut rng = rand::thread_rng();
        let t = Instant::now();
        let waits: Vec<Duration> = (0..200).map(|_| i.next(t, false, &mut rng)).collect();
        assert!(waits.iter().all(|w| (S(4)..=S(6)).contains(w)), "{waits:?}");
        assert!(waits.iter().any(|w| *w != waits[0]), "no jitter at all");
    }
}

//! The test switches of prune's waits (docs/PRUNE.md §1), read from the
//! environment here so that the vault crate never looks at it: tests run
//! prune in seconds with `NIMBUS_PRUNE_TEST_TIMES=1` (waits below the
//! one-hour floors are then accepted) and give every process the same short
//! publish window with `NIMBUS_PRUNE_TEST_PUBLISH_WINDOW_MS`.

use std::time::Duration;

use nimbus_vault::gc::PruneTimes;
use nimbus_vault::Vault;

/// Set to `1`, prune accepts waits below its floors (tests only).
pub const TEST_TIMES_ENV: &str = "NIMBUS_PRUNE_TEST_TIMES";
/// With [`TEST_TIMES_ENV`]`=1`: the publish window, in milliseconds.
pub const TEST_PUBLISH_WINDOW_ENV: &str = "NIMBUS_PRUNE_TEST_PUBLISH_WINDOW_MS";

/// Whether this process runs prune's waits as a test.
pub fn testing() -> bool {
    std::env::var(TEST_TIMES_ENV).is_ok_and(|v| v == "1")
}

/// The publish window a test asks for, if any.
pub fn test_publish_window() -> Option<Duration> {
    if !testing() {
        return None;
    }
    std::env::var(TEST_PUBLISH_WINDOW_ENV)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map(Duration::from_millis)
}

/// Gives a vault just opened the test publish window, when there is one.
pub fn apply(vault: &Vault) {
    if let Some(w) = test_publish_window() {
        vault.set_prune_times(PruneTimes {
            publish_window: w,
            ..vault.prune_times()
        });
    }
}

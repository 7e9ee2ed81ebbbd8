//! Clocks for prune's rules (docs/PRUNE.md §1): a device's own waits on a
//! clock that counts time suspended, and "now on the store" from the time
//! the store stamps on an object this device writes.

use std::time::{Duration, SystemTime};

use bytes::Bytes;

use super::format;
use crate::error::{Result, VaultError};
use crate::id::DeviceId;
use crate::vault::Vault;

/// Time since boot, suspended time included (`CLOCK_BOOTTIME` on Linux;
/// `CLOCK_MONOTONIC`, which counts sleep, on macOS; the wall clock
/// elsewhere). Only differences of two readings on this machine mean
/// anything.
pub fn boottime() -> Duration {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let clock = Some(rustix::time::ClockId::Boottime);
    #[cfg(target_os = "macos")]
    let clock = Some(rustix::time::ClockId::Monotonic);
    #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "macos")))]
    let clock: Option<()> = None;
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "macos"))]
    if let Some(clock) = clock {
        let ts = rustix::time::clock_gettime(clock);
        return Duration::new(ts.tv_sec.max(0) as u64, ts.tv_nsec.clamp(0, 999_999_999) as u32);
    }
    #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "macos")))]
    let _ = clock;
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
}

/// "Now on the store": writes `clock/<device>` and reads back the time the
/// store gave it. `None` for a store that keeps no times.
pub async fn store_now(vault: &Vault, device: &DeviceId) -> Result<Option<SystemTime>> {
    let key = format::clock_key(device);
    let noise: [u8; 16] = rand::random();
    vault.backend().put(&key, Bytes::copy_from_slice(&noise)).await?;
    match vault.backend().stat(&key).await? {
        Some(info) => Ok(info.modified),
        None => Err(VaultError::missing(key, "it was just written")),
    }
}

/// `later - earlier`, zero when `later` is not later.
pub fn elapsed(earlier: SystemTime, later: SystemTime) -> Duration {
    later.duration_since(earlier).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boottime_goes_forward() {
        let a = boottime();
        std::thread::sleep(Duration::from_millis(5));
        let b = boottime();
        assert!(b > a && b - a >= Duration::from_millis(4), "{a:?} {b:?}");
    }
}

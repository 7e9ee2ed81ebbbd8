//! The Nimbus service (`nimbusd`): one process per user that owns every
//! drive — mounts them at start, runs their sync, keeps their settings in
//! the config file and their secrets in the OS keyring, locks them when
//! asked or when idle — and serves the local API (`nimbus-api`) that the
//! CLI and the desktop shell use.
//!
//! **Architecture invariant:** the service knows nothing of Tauri or the
//! UI; it speaks only `nimbus-api` types to its clients. Secrets it is
//! given go to the keyring and to the drives' memory, never to the config
//! file or a log line.
//!
//! Opening a drive, this device's memory per vault and the keyring are
//! `nimbus-host`'s, which the standalone `nimbus mount` uses too; this
//! crate adds what only a long-running service has: the drive registry,
//! the config file, locking and auto-lock, and the API.

pub mod config;

#[cfg(unix)]
mod conflicts;
#[cfg(unix)]
mod devices;
#[cfg(unix)]
pub mod drive;
#[cfg(unix)]
mod errors;
#[cfg(unix)]
pub mod logging;
#[cfg(unix)]
pub mod restore;
#[cfg(unix)]
pub mod server;
#[cfg(unix)]
pub mod service;

/// `48.2 MB` (defined with the API types, for every client).
pub use nimbus_api::human_bytes;

#[cfg(test)]
mod tests {
    #[test]
    fn bytes_read_like_a_file_manager() {
        assert_eq!(super::human_bytes(0), "0 B");
        assert_eq!(super::human_bytes(999), "999 B");
        assert_eq!(super::human_bytes(48_200_000), "48 MB");
        assert_eq!(super::human_bytes(1_500), "1.5 kB");
    }
}

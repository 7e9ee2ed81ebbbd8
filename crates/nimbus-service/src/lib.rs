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
//! The pieces the CLI shares (device ids, the keyring, mount checks) are
//! public modules here, so the two never drift apart.

pub mod at;
pub mod config;
pub mod device;
pub mod keychain;
#[cfg(unix)]
pub mod mounts;

#[cfg(unix)]
pub mod drive;
#[cfg(unix)]
mod errors;
#[cfg(unix)]
pub mod logging;
#[cfg(unix)]
pub mod private;
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

//! The drive host: what it takes to run a Nimbus drive on this device,
//! shared by the service (`nimbusd`) and the standalone `nimbus mount`
//! (which runs without a service, as `rclone mount` does). Both open a
//! drive with the one recipe in [`open`]; both keep this device's memory
//! per vault in [`device`], secrets in the OS keyring through
//! [`keychain`], their files private with [`private`], and their logs free
//! of file names with [`logs`].
//!
//! **Architecture invariant:** this crate knows nothing of the local API
//! or of clients: it returns its own error types, and the service and the
//! CLI say them in their own words.

pub mod device;
pub mod keychain;
pub mod logs;
#[cfg(unix)]
pub mod open;
#[cfg(unix)]
pub mod private;
pub mod prune_env;

#[cfg(unix)]
pub use open::{current_user, mount, open_drive, DriveOptions, MountError, OpenError, Opened};

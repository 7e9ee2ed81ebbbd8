//! The Nimbus desktop shell (work in progress, issue 6): so far the logic
//! of what the tray and the window show ([`model`]).

pub mod model;

/// Starts the app. The Tauri builder (tray, window, plugins, the link to
/// the service) is not written yet.
pub fn run() {}

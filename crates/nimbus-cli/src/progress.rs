//! Progress bars on stderr; hidden with --quiet or when stderr is not a
//! terminal, so scripts get clean output.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub fn bytes_bar(quiet: bool, total: u64, what: &str) -> ProgressBar {
    bar(
        quiet,
        total,
        what,
        "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
    )
}

pub fn count_bar(quiet: bool, total: u64, what: &str) -> ProgressBar {
    bar(quiet, total, what, "{msg} [{bar:30}] {pos}/{len}")
}

/// A spinner with a message, for waits of unknown length.
#[cfg_attr(not(unix), allow(dead_code))]
pub fn spinner(quiet: bool, what: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(None, target(quiet));
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_message(what.to_string());
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}

fn bar(quiet: bool, total: u64, what: &str, template: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total), target(quiet));
    bar.set_style(
        ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}

fn target(quiet: bool) -> ProgressDrawTarget {
    if quiet {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    }
}

/// `12.3 MB` style sizes: one definition, with the API's types, shared
/// with the service and the desktop app.
pub use nimbus_api::human_bytes;

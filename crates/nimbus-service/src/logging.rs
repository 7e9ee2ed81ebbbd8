//! Logs: a file a day in the log folder (a bounded number kept), and the
//! systemd journal when there is one (else standard error). No secret is
//! ever logged: requests are not logged (a refused one only at debug level,
//! by its error code). No file name is logged either, whatever the level
//! asked for: see [`nimbus_host::logs::filter`].

use nimbus_host::logs::filter;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// Why logging could not start.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("cannot create the log folder {}: {error}", .dir.display())]
    Folder { dir: PathBuf, error: std::io::Error },
    #[error("cannot open a log file in {}: {error}", .dir.display())]
    File {
        dir: PathBuf,
        error: tracing_appender::rolling::InitError,
    },
    #[error("cannot start logging: {0}")]
    Start(tracing_subscriber::util::TryInitError),
}

/// Keep the guard alive: it flushes the file when dropped.
pub fn init(dir: &Path, level: &str, keep: usize) -> Result<tracing_appender::non_blocking::WorkerGuard, LogError> {
    std::fs::create_dir_all(dir).map_err(|error| LogError::Folder {
        dir: dir.to_path_buf(),
        error,
    })?;
    let file = tracing_appender::rolling::Builder::new()
        .rotation(tracing_appender::rolling::Rotation::DAILY)
        .filename_prefix("nimbusd")
        .filename_suffix("log")
        .max_log_files(keep.max(1))
        .build(dir)
        .map_err(|error| LogError::File {
            dir: dir.to_path_buf(),
            error,
        })?;
    let (writer, guard) = tracing_appender::non_blocking(file);
    let file_layer = tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .with_writer(writer)
        .with_filter(filter(level));
    // Under systemd, standard error goes to the journal already; write to
    // the journal directly (with levels) and not to stderr as well.
    let journal = if std::env::var_os("JOURNAL_STREAM").is_some() || std::env::var_os("INVOCATION_ID").is_some() {
        journald()
    } else {
        None
    };
    let registry = tracing_subscriber::registry().with(file_layer);
    match journal {
        Some(j) => registry.with(j.with_filter(filter(level))).try_init(),
        None => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(std::io::stderr().is_terminal())
                    .with_writer(std::io::stderr)
                    .with_filter(filter(level)),
            )
            .try_init(),
    }
    .map_err(LogError::Start)?;
    Ok(guard)
}

#[cfg(target_os = "linux")]
fn journald() -> Option<tracing_journald::Layer> {
    tracing_journald::layer().ok()
}

/// No journal elsewhere (launchd and Windows keep the log file only).
#[cfg(not(target_os = "linux"))]
fn journald() -> Option<tracing_subscriber::layer::Identity> {
    None
}

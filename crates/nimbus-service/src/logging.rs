//! Logs: a file a day in the log folder (a bounded number kept), and the
//! systemd journal when there is one (else standard error). No secret is
//! ever logged: requests are not logged (a refused one only at debug level,
//! by its error code). No file name is logged either, whatever the level
//! asked for: see [`filter`].

use std::io::IsTerminal;
use std::path::Path;
use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::{FilterExt, Targets};
use tracing_subscriber::layer::{Filter, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// The most the libraries may log. At debug level fuser logs every
/// request with its file name (`LOOKUP name "…"`), and the HTTP stack every
/// request; names must never reach a log (review L1), so these caps hold
/// whatever `NIMBUS_LOG` or `log_level` ask for. fuser's own warnings are
/// about unanswered requests, and `fuser::mnt` warns "Unmount failed" on
/// every ordinary unmount (the drive is already gone when its session
/// ends): neither is worth a warning.
const LIBRARY_CAPS: &[(&str, LevelFilter)] = &[
    ("fuser", LevelFilter::ERROR),
    ("opendal", LevelFilter::WARN),
    ("reqwest", LevelFilter::WARN),
    ("hyper", LevelFilter::WARN),
    ("hyper_util", LevelFilter::WARN),
    ("h2", LevelFilter::WARN),
    ("rustls", LevelFilter::WARN),
    ("reqsign", LevelFilter::WARN),
    ("openssh", LevelFilter::WARN),
    ("zbus", LevelFilter::WARN),
];

/// `NIMBUS_LOG` if set, else `level`, with [`LIBRARY_CAPS`] on top. The
/// caps are a filter of their own, not directives of the level's filter,
/// so no directive given (`fuser::ll=trace`) can lift them.
pub fn filter<S>(level: &str) -> impl Filter<S> + Send + Sync + 'static
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    capped(EnvFilter::try_from_env("NIMBUS_LOG").unwrap_or_else(|_| EnvFilter::new(level)))
}

fn capped<S>(asked: EnvFilter) -> impl Filter<S> + Send + Sync + 'static
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    asked.and(library_caps())
}

fn library_caps() -> Targets {
    LIBRARY_CAPS
        .iter()
        .fold(Targets::new().with_default(LevelFilter::TRACE), |t, (target, level)| {
            t.with_target(*target, *level)
        })
}

/// Keep the guard alive: it flushes the file when dropped.
pub fn init(dir: &Path, level: &str, keep: usize) -> Result<tracing_appender::non_blocking::WorkerGuard, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create the log folder {}: {e}", dir.display()))?;
    let file = tracing_appender::rolling::Builder::new()
        .rotation(tracing_appender::rolling::Rotation::DAILY)
        .filename_prefix("nimbusd")
        .filename_suffix("log")
        .max_log_files(keep.max(1))
        .build(dir)
        .map_err(|e| format!("cannot open a log file in {}: {e}", dir.display()))?;
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
    .map_err(|e| format!("cannot start logging: {e}"))?;
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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::Layer;

    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| std::io::Error::other("poisoned"))?
                .extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Whatever the level asked for, even a directive naming fuser's own
    /// request module, no library's debug line gets through.
    #[test]
    fn libraries_never_log_below_their_cap() {
        for asked in [
            "trace",
            "debug",
            "debug,fuser=trace,fuser::ll::request=trace,opendal=trace",
        ] {
            let sink = Sink::default();
            let w = sink.clone();
            let layer = tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(move || w.clone())
                .with_filter(super::capped(tracing_subscriber::EnvFilter::new(asked)));
            let subscriber = tracing_subscriber::registry().with(layer);
            tracing::subscriber::with_default(subscriber, || {
                tracing::debug!(target: "fuser::ll::request", "LOOKUP name \"secret-name.txt\"");
                tracing::warn!(target: "fuser::mnt", "Unmount failed: Invalid argument");
                tracing::debug!(target: "opendal::services::s3", "GET secret-key");
                tracing::debug!(target: "nimbus_fs::sync", "our own debug line");
            });
            let text = String::from_utf8_lossy(&sink.0.lock().expect("lock")).into_owned();
            assert!(!text.contains("secret"), "{asked}: {text}");
            assert!(!text.contains("Unmount failed"), "{asked}: {text}");
            assert!(text.contains("our own debug line"), "{asked}: {text}");
        }
    }
}

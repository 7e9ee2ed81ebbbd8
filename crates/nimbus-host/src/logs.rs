//! What a Nimbus process logs, whoever runs the drive (`nimbusd` or a
//! standalone `nimbus mount`): the level asked for, with the libraries
//! capped so no file name or request reaches a log (review L1).

use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::{FilterExt, Targets};
use tracing_subscriber::layer::Filter;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

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

/// `NIMBUS_LOG` if set, else `level`, with `LIBRARY_CAPS` on top. The
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

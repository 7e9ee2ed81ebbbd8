//! `nimbusd`, the Nimbus service. Runs in the foreground of its process
//! (systemd, launchd or the Windows task scheduler keep it running); stops
//! on SIGTERM or Ctrl-C after unmounting every drive and committing what
//! the store takes within `shutdown_timeout_secs`.

#[cfg(unix)]
fn main() -> std::process::ExitCode {
    match unix::run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("nimbusd: {msg}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(not(unix))]
fn main() -> std::process::ExitCode {
    // The WinFsp adapter is not written yet: without it there is no drive
    // to serve (see installers/README.md).
    eprintln!("nimbusd: drives on Windows need the WinFsp adapter, which this build does not have yet");
    std::process::ExitCode::FAILURE
}

#[cfg(unix)]
mod unix {
    use nimbus_host::{device, private};
    use nimbus_service::{config, logging, server, service::Service};
    use std::path::PathBuf;

    struct Args {
        config: PathBuf,
        socket: PathBuf,
        state_dir: PathBuf,
    }

    const HELP: &str = "nimbusd: the Nimbus service (owns the drives, serves the local API)

Usage: nimbusd [--config FILE] [--socket PATH] [--state-dir DIR]

  --config FILE     the config file (default: nimbusd.toml in the config folder)
  --socket PATH     where to listen (default: $NIMBUS_SOCKET, else $XDG_RUNTIME_DIR/nimbus/nimbusd.sock)
  --state-dir DIR   local state of the drives (default: $NIMBUS_STATE_DIR, else the data folder)
  --version         print the version

Stop it with SIGTERM or Ctrl-C: it unmounts the drives and uploads what is pending first.
Docs: docs/CONFIGURATION.md";

    fn args() -> Result<Option<Args>, String> {
        let mut config = config::default_path();
        let mut socket = nimbus_api::socket_path();
        let mut state_dir = std::env::var_os("NIMBUS_STATE_DIR")
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
            .or_else(device::default_state_dir);
        let mut it = std::env::args_os().skip(1);
        while let Some(a) = it.next() {
            let mut value = |name: &str| {
                it.next()
                    .map(PathBuf::from)
                    .ok_or_else(|| format!("{name} needs a value"))
            };
            match a.to_str() {
                Some("--config") => config = Some(value("--config")?),
                Some("--socket") => socket = value("--socket")?,
                Some("--state-dir") => state_dir = Some(value("--state-dir")?),
                Some("--version" | "-V") => {
                    println!("nimbusd {}", env!("CARGO_PKG_VERSION"));
                    return Ok(None);
                }
                Some("--help" | "-h") => {
                    println!("{HELP}");
                    return Ok(None);
                }
                _ => {
                    return Err(format!(
                        "unknown argument {}; see `nimbusd --help`",
                        a.to_string_lossy()
                    ))
                }
            }
        }
        Ok(Some(Args {
            config: config.ok_or("no home folder to find the config file in; pass --config")?,
            socket,
            state_dir: state_dir.ok_or("no home folder to keep local state in; pass --state-dir")?,
        }))
    }

    pub fn run() -> Result<(), String> {
        // Before any file is made: the config, the logs, the state.
        let hardened = private::harden();
        let Some(args) = args()? else { return Ok(()) };
        let cfg = config::Config::load(&args.config).map_err(|e| e.to_string())?;
        let _guard = logging::init(
            &cfg.log_dir(&args.state_dir),
            &cfg.service.log_level,
            cfg.service.log_files_kept,
        )
        .map_err(|e| e.to_string())?;
        if let Err(e) = hardened {
            tracing::warn!("{e}; a crash could leave a copy of this process's memory on disk");
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("nimbusd")
            .build()
            .map_err(|e| format!("cannot start: {e}"))?;
        rt.block_on(async {
            let listener = server::listen(&args.socket).await.map_err(|e| e.to_string())?;
            tracing::info!(
                "nimbusd {} started: {} drive(s) in {}, listening at {}",
                env!("CARGO_PKG_VERSION"),
                cfg.drives.len(),
                args.config.display(),
                args.socket.display()
            );
            let svc = Service::new(
                args.config.clone(),
                args.state_dir.clone(),
                cfg,
                tokio::runtime::Handle::current(),
            );
            tokio::spawn(server::serve(listener, svc.clone()));
            tokio::spawn(svc.clone().monitor());
            {
                let svc = svc.clone();
                tokio::spawn(async move { svc.start_drives().await });
            }
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .map_err(|e| format!("cannot watch for SIGTERM: {e}"))?;
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            tracing::info!("stopping: unmounting the drives and uploading what is pending");
            svc.stop_all().await;
            let _ = std::fs::remove_file(&args.socket);
            tracing::info!("stopped");
            Ok::<(), String>(())
        })?;
        // Tasks still waiting on a hung store must not hold the exit.
        rt.shutdown_background();
        Ok(())
    }
}

//! `nimbus mount`: the vault as a drive.
//!
//! Without `--foreground` the command starts itself again in the
//! background (its own process group, output to `mount.log` in the state
//! folder), hands over the password through a pipe — never through the
//! environment or the command line, which other processes can read — and
//! returns once the drive answers, or prints why it could not mount.
//!
//! The drive opens and mounts with `nimbus_host`'s recipe, the one the
//! service follows: so the rollback check, the device's memory and the
//! mount lock (`drive.lock`, one mount per vault and device) are the same
//! whoever runs the drive. This process stays a standalone one, like
//! `rclone mount`: it needs no service and no desktop session.

use anyhow::{bail, Context, Result};
use nimbus_fuse::mounts::{self, is_nimbus_mount};
use nimbus_host::DriveOptions;
use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

use crate::args::GlobalArgs;
use crate::{credentials, device, secrets, store};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The vault's store and the folder to mount it on: `nimbus mount <store> <mountpoint>`
    /// (or just the mountpoint, with --store or NIMBUS_STORE).
    #[arg(num_args = 1..=2, required = true, value_name = "STORE> <MOUNTPOINT")]
    places: Vec<String>,
    /// Stay in the foreground (logs to the terminal; Ctrl-C unmounts).
    #[arg(long)]
    foreground: bool,
    /// Seconds without changes before they are committed to the vault.
    #[arg(long, default_value_t = 5, value_name = "SECONDS")]
    commit_delay: u64,
    /// Seconds between looks for other devices' changes while nothing
    /// happens (0: chosen by the store, a few seconds on your own server,
    /// longer on a cloud that bills requests).
    #[arg(long, default_value_t = 0, value_name = "SECONDS")]
    poll_interval: u64,
    /// Size limit of the local cache of downloaded data, in MiB.
    #[arg(long, default_value_t = 4096, value_name = "MIB")]
    cache_size: u64,
    /// Let other users of this computer use the drive (root, or
    /// `user_allow_other` in /etc/fuse.conf).
    #[arg(long)]
    allow_other: bool,
    /// Upload bandwidth limit, in bytes per second (`500k`, `5M`, `1.5MiB`); change it
    /// while mounted with `nimbus limit`.
    #[arg(long, value_name = "RATE", value_parser = crate::rates::parse_rate)]
    upload_limit: Option<u64>,
    /// Download bandwidth limit, in bytes per second.
    #[arg(long, value_name = "RATE", value_parser = crate::rates::parse_rate)]
    download_limit: Option<u64>,
    /// Requests sent to the store at once, at most.
    #[arg(long, default_value_t = nimbus_backend::DEFAULT_IN_FLIGHT, value_name = "N", help_heading = "Advanced")]
    max_requests: usize,
    /// Read the password from standard input (how the background mount gets it).
    #[arg(long, hide = true)]
    password_stdin: bool,
}

fn places(g: &GlobalArgs, a: &Args) -> Result<(GlobalArgs, PathBuf)> {
    let mut g = g.clone();
    let mp = match a.places.as_slice() {
        [store, mp] => {
            g.store = Some(store.clone());
            mp
        }
        [mp] => mp,
        _ => bail!("give the store and the mountpoint: nimbus mount <store> <mountpoint>"),
    };
    let mp = PathBuf::from(mp);
    // A drive whose process died (a crash, kill -9) is still mounted
    // there, answering nothing. Clear it away.
    if mounts::clear_stale(&mp) {
        eprintln!("{}: a stopped drive was left mounted here; unmounted it", mp.display());
    }
    let meta = std::fs::metadata(&mp).with_context(|| {
        format!(
            "the mountpoint {} does not exist: create an empty folder there first",
            mp.display()
        )
    })?;
    if !meta.is_dir() {
        bail!("the mountpoint {} is not a folder", mp.display());
    }
    let mp = mp
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", mp.display()))?;
    if is_nimbus_mount(&mp) {
        bail!(
            "{} is already a Nimbus drive; unmount it first with `nimbus unmount {}`",
            mp.display(),
            mp.display()
        );
    }
    Ok((g, mp))
}

pub fn run(g: &GlobalArgs, a: Args, rt: &tokio::runtime::Runtime) -> Result<ExitCode> {
    let (g, mp) = places(g, &a)?;
    if a.foreground {
        foreground(&g, &a, &mp, rt)
    } else {
        background(&g, &a, &mp)
    }
}

/// Starts `mount --foreground` as a child in the background, hands it the
/// secrets through its standard input, and waits until the drive answers.
fn background(g: &GlobalArgs, a: &Args, mp: &Path) -> Result<ExitCode> {
    let store = g.store.clone().unwrap_or_default();
    let handed = check_store(g)?;
    let pw = secrets::password(g.password_file.as_deref())?;
    let state = device::state_dir(g)?;
    let (log, log_file) = MountLog::open(&state)?;
    let mut child = spawn(child_command(g, a, &store, mp, &state)?, log_file)?;
    hand_secrets(&mut child, &pw, handed.as_deref().map(String::as_str))?;
    wait_until_mounted(&mut child, &store, mp, &log)
}

/// Opens the vault's store and reads its config, so "no vault", "wrong
/// store" and "wrong credentials" are said here rather than in a log file.
/// Returns the store's credentials as text to hand to the background mount
/// (none when the environment or the keyring has them).
fn check_store(g: &GlobalArgs) -> Result<Option<Zeroizing<String>>> {
    let url = store::store_url(g)?;
    let creds = credentials::find(&url, credentials::Ask::IfTerminal)?;
    let handed = credentials::saved_text(&creds);
    let access = nimbus_backend::StoreAccess {
        credentials: creds,
        limits: None,
    };
    let backend = nimbus_backend::open_store_with(&url, &access)?;
    rt_block(nimbus_vault::read_config(&backend))?;
    Ok(handed)
}

/// `mount.log` in the state folder, where the background mount writes its
/// output, and its length before this mount began.
struct MountLog {
    path: PathBuf,
    start: u64,
}

impl MountLog {
    /// Creates the state folder and opens the log for appending.
    fn open(state: &Path) -> Result<(MountLog, std::fs::File)> {
        std::fs::create_dir_all(state).with_context(|| format!("cannot create {}", state.display()))?;
        let path = state.join("mount.log");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        let start = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok((MountLog { path, start }, file))
    }

    /// What the mount wrote to the log since it started, without blank lines.
    fn since_start(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.path) {
            use std::io::Seek;
            let _ = f.seek(std::io::SeekFrom::Start(self.start));
            let _ = f.read_to_string(&mut text);
        }
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        lines.join("\n")
    }
}

/// This program again, as `mount --foreground --password-stdin` with the
/// same settings.
fn child_command(g: &GlobalArgs, a: &Args, store: &str, mp: &Path, state: &Path) -> Result<std::process::Command> {
    let exe = std::env::current_exe().context("cannot find the nimbus program to start in the background")?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("mount")
        .arg("--foreground")
        .arg("--password-stdin")
        .arg("--commit-delay")
        .arg(a.commit_delay.to_string())
        .arg("--poll-interval")
        .arg(a.poll_interval.to_string())
        .arg("--cache-size")
        .arg(a.cache_size.to_string())
        .arg("--state-dir")
        .arg(state);
    if a.allow_other {
        cmd.arg("--allow-other");
    }
    cmd.arg("--max-requests").arg(a.max_requests.to_string());
    if let Some(r) = a.upload_limit {
        cmd.arg("--upload-limit").arg(r.to_string());
    }
    if let Some(r) = a.download_limit {
        cmd.arg("--download-limit").arg(r.to_string());
    }
    if g.quiet {
        cmd.arg("--quiet");
    }
    cmd.arg(store).arg(mp);
    // One malloc arena per core rather than per thread: the drive's worker
    // threads pass megabyte buffers around, and per-thread arenas keep
    // freed ones resident.
    cmd.env("MALLOC_ARENA_MAX", "2");
    Ok(cmd)
}

/// Starts the child in its own process group, with a pipe for its standard
/// input and the log for its output. The password goes through the pipe,
/// never the environment: it is removed from the child's.
fn spawn(mut cmd: std::process::Command, log_file: std::fs::File) -> Result<std::process::Child> {
    cmd.env_remove("NIMBUS_PASSWORD")
        .stdin(std::process::Stdio::piped())
        .stdout(log_file.try_clone()?)
        .stderr(log_file);
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        // Its own process group: Ctrl-C in this terminal does not reach it.
        cmd.process_group(0);
    }
    cmd.spawn().context("cannot start the background mount")
}

/// Writes the vault password, then the store's credentials (an empty line
/// when the environment or the keyring has them), to the child's standard
/// input, and closes it.
fn hand_secrets(child: &mut std::process::Child, pw: &str, handed: Option<&str>) -> Result<()> {
    if let Some(mut stdin) = child.stdin.take() {
        let mut line = Zeroizing::new(pw.as_bytes().to_vec());
        line.push(b'\n');
        if let Some(c) = handed {
            line.extend_from_slice(c.as_bytes());
        }
        line.push(b'\n');
        stdin
            .write_all(&line)
            .context("cannot hand the password to the background mount")?;
    }
    Ok(())
}

/// Waits until the drive answers at `mp`, the child exits (then says why,
/// from its log), or five minutes pass.
fn wait_until_mounted(child: &mut std::process::Child, store: &str, mp: &Path, log: &MountLog) -> Result<ExitCode> {
    let started = Instant::now();
    loop {
        if is_nimbus_mount(mp) {
            println!(
                "Mounted {store} at {}. Unmount with `nimbus unmount {}` (it waits until every change is in the vault).",
                mp.display(),
                mp.display()
            );
            return Ok(ExitCode::SUCCESS);
        }
        if let Some(status) = child.try_wait()? {
            let msg = log.since_start();
            bail!(
                "the drive did not mount ({status}):\n{}",
                if msg.is_empty() { "no message" } else { &msg }
            );
        }
        if started.elapsed() > Duration::from_secs(300) {
            bail!(
                "the drive did not answer within 5 minutes; see {} (the mount is still trying)",
                log.path.display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn rt_block<F: std::future::Future>(f: F) -> F::Output {
    match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt.block_on(f),
        Err(e) => panic!("cannot start a runtime: {e}"),
    }
}

fn foreground(g: &GlobalArgs, a: &Args, mp: &Path, rt: &tokio::runtime::Runtime) -> Result<ExitCode> {
    // The drive's warnings and errors (a read that failed, a commit that
    // will be retried) go to stderr: the terminal, or `mount.log` when the
    // mount runs in the background. NIMBUS_LOG=info (or debug) says more,
    // never a file name (the libraries are capped), and colours only on a
    // terminal: `mount.log` is plain text.
    {
        use std::io::IsTerminal;
        use tracing_subscriber::layer::SubscriberExt;
        use tracing_subscriber::util::SubscriberInitExt;
        use tracing_subscriber::Layer;
        let _ = tracing_subscriber::registry()
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(std::io::stderr().is_terminal())
                    .with_writer(std::io::stderr)
                    .with_filter(nimbus_host::logs::filter("warn")),
            )
            .try_init();
    }
    let url = store::store_url(g)?;
    let (pw, creds) = if a.password_stdin {
        let mut stdin = std::io::stdin().lock();
        let mut line = Zeroizing::new(String::new());
        stdin.read_line(&mut line).context("cannot read the password")?;
        let pw = Zeroizing::new(line.trim_end_matches(['\n', '\r']).to_string());
        let mut line = Zeroizing::new(String::new());
        stdin
            .read_line(&mut line)
            .context("cannot read the store's credentials")?;
        let handed = line.trim_end_matches(['\n', '\r']);
        let creds = if handed.is_empty() {
            credentials::find(&url, credentials::Ask::Never)?
        } else {
            credentials::parse_saved(&url, handed)?
        };
        (pw, creds)
    } else {
        let creds = credentials::find(&url, credentials::Ask::IfTerminal)?;
        (secrets::password(g.password_file.as_deref())?, creds)
    };
    let limits = Arc::new(nimbus_backend::NetLimits::new(a.max_requests));
    limits.set_upload_limit(a.upload_limit);
    limits.set_download_limit(a.download_limit);
    let access = nimbus_backend::StoreAccess {
        credentials: creds,
        limits: Some(limits),
    };
    let backend = nimbus_backend::open_store_with(&url, &access)?;
    let opts = DriveOptions {
        state_dir: device::state_dir(g)?,
        commit_delay: Duration::from_secs(a.commit_delay),
        cache_limit: a.cache_size << 20,
        paused: false,
        poll_interval: (a.poll_interval > 0).then(|| Duration::from_secs(a.poll_interval)),
    };
    let opened = nimbus_host::open_drive(rt.handle(), backend, pw.as_bytes(), &opts, Some(mp))?;
    drop(pw);
    // Held for the life of the mount.
    let _lock = opened.lock;
    let fs = opened.fs;
    let slot = nimbus_fs::Slot::new(Some(fs.clone()), nimbus_host::current_user());
    let session = nimbus_host::mount(&slot, mp, a.allow_other, Some(&opened.vault_id))?;
    eprintln!("nimbus: drive mounted at {}", mp.display());
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        let _ = ctrlc::set_handler(move || stop.store(true, Ordering::SeqCst));
    }
    loop {
        if stop.swap(false, Ordering::SeqCst) {
            eprintln!("nimbus: unmounting {}", mp.display());
            // Unmounting fails while programs have files open on the drive;
            // then the drive keeps serving them.
            if let Err(e) = mounts::unmount(mp, false) {
                eprintln!("nimbus: {e}; the drive stays mounted. Close those programs and press Ctrl-C again");
            }
        }
        if session.guard.is_finished() {
            let _ = session.join();
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("nimbus: committing the last changes");
    fs.shutdown().context(
        "the last changes could not be committed; they stay staged on this device and upload at the next mount",
    )?;
    eprintln!("nimbus: every change is in the vault; drive stopped");
    Ok(ExitCode::SUCCESS)
}

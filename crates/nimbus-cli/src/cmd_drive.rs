//! Commands for a mounted drive: `unmount`, `sync`, `pin`, `unpin`.
//!
//! They talk to the mount through the drive itself, whether `nimbus mount`
//! or the service serves it: `fsync` of the drive's root commits now, the `user.nimbus.status`
//! attribute of the root tells what is pending, and setting or removing
//! `user.nimbus.pin` on a path pins or unpins it.

use anyhow::{bail, Context, Result};
use nimbus_fs::Pending;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use crate::cmd_mount::is_nimbus_mount;
use crate::progress::human_bytes;
use crate::GlobalArgs;

#[derive(clap::Args, Debug)]
pub struct MountpointArgs {
    /// Where the drive is mounted.
    mountpoint: PathBuf,
}

#[derive(clap::Args, Debug)]
pub struct PinArgs {
    /// Files or folders in a mounted drive.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
}

fn drive(mp: &Path) -> Result<PathBuf> {
    let mp = mp
        .canonicalize()
        .with_context(|| format!("{} does not exist", mp.display()))?;
    if !is_nimbus_mount(&mp) {
        bail!(
            "{} is not a mounted Nimbus drive (see `mount | grep nimbus`)",
            mp.display()
        );
    }
    Ok(mp)
}

fn status(mp: &Path) -> Result<Pending> {
    let raw = xattr::get(mp, "user.nimbus.status")
        .with_context(|| format!("cannot ask {} for its status", mp.display()))?
        .unwrap_or_default();
    Ok(serde_json::from_slice(&raw).unwrap_or_default())
}

fn describe(p: &Pending) -> String {
    if !p.dirty && p.files == 0 {
        return "nothing pending".into();
    }
    let mut s = format!(
        "{} changed file{}, {} staged on this device",
        p.files,
        if p.files == 1 { "" } else { "s" },
        human_bytes(p.staged_bytes)
    );
    if let Some(e) = &p.last_error {
        s.push_str(&format!("; last attempt failed: {e}"));
    }
    s
}

/// Commits now (fsync of the root), showing progress; Ctrl-C stops waiting
/// and says what is pending. Retries while the store is unreachable.
/// The drive's own reason, when it has one: the fsync error is only EIO.
fn why_not_committed(e: &std::io::Error, p: &Pending) -> String {
    match &p.last_error {
        Some(msg) => msg.clone(),
        None => e.to_string(),
    }
}

fn commit_with_progress(g: &GlobalArgs, mp: &Path) -> Result<bool> {
    let interrupted = Arc::new(AtomicBool::new(false));
    {
        let i = interrupted.clone();
        let _ = ctrlc::set_handler(move || i.store(true, Ordering::SeqCst));
    }
    let bar = crate::progress::spinner(g.quiet, "committing to the vault");
    let mut told = false;
    loop {
        let (tx, rx) = mpsc::channel();
        let root = mp.to_path_buf();
        std::thread::spawn(move || {
            let r = std::fs::File::open(&root).and_then(|f| f.sync_all());
            let _ = tx.send(r);
        });
        let result = loop {
            if interrupted.load(Ordering::SeqCst) {
                bar.finish_and_clear();
                let p = status(mp).unwrap_or_default();
                eprintln!(
                    "Interrupted: not everything is in the vault yet ({}). It is kept safely on this device \
                     and uploads in the background while the drive is mounted, or at its next mount.",
                    describe(&p)
                );
                return Ok(false);
            }
            match rx.recv_timeout(Duration::from_millis(250)) {
                Ok(r) => break r,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Ok(p) = status(mp) {
                        bar.set_message(format!("committing to the vault: {}", describe(&p)));
                    }
                    bar.tick();
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break Err(std::io::Error::other("lost the worker")),
            }
        };
        match result {
            Ok(()) => {
                bar.finish_and_clear();
                return Ok(true);
            }
            Err(e) => {
                let p = status(mp).unwrap_or_default();
                if bar.is_hidden() && !told {
                    // No progress line to show it in (-q, or not a terminal).
                    eprintln!(
                        "the store did not take the changes ({}); retrying until it does. Ctrl-C to stop waiting",
                        why_not_committed(&e, &p)
                    );
                    told = true;
                }
                bar.set_message(format!(
                    "the store did not take the changes ({e}); retrying — {}; Ctrl-C to stop waiting",
                    describe(&p)
                ));
                std::thread::sleep(Duration::from_secs(2));
            }
        }
    }
}

pub fn sync(g: &GlobalArgs, a: MountpointArgs) -> Result<ExitCode> {
    let mp = drive(&a.mountpoint)?;
    if !commit_with_progress(g, &mp)? {
        return Ok(ExitCode::from(130));
    }
    if warn_set_aside(&mp) {
        return Ok(ExitCode::FAILURE);
    }
    println!("Every change on {} is in the vault.", mp.display());
    Ok(ExitCode::SUCCESS)
}

/// Names the files the drive could not commit because their changes here
/// are damaged; true if there are any.
fn warn_set_aside(mp: &Path) -> bool {
    let p = status(mp).unwrap_or_default();
    if p.set_aside.is_empty() {
        return false;
    }
    eprintln!(
        "Everything else is in the vault, but the changes made on this device to these files are damaged on \
         its disk, so they were not synced (the vault keeps the last version it had):"
    );
    for f in &p.set_aside {
        eprintln!("  {}{f}", mp.display());
    }
    eprintln!("Copy what you can still read from them, then save or delete them; the next sync takes them.");
    true
}

pub fn unmount(g: &GlobalArgs, a: MountpointArgs) -> Result<ExitCode> {
    let mp = drive(&a.mountpoint)?;
    if !commit_with_progress(g, &mp)? {
        return Ok(ExitCode::from(130));
    }
    warn_set_aside(&mp);
    let pid = status(&mp).map(|p| p.pid).unwrap_or(0);
    if is_service(pid) {
        // The service must let go of the drive itself (it stays running).
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        if rt.block_on(crate::cmd_service::unmount_served(&mp))? {
            return Ok(ExitCode::SUCCESS);
        }
    }
    crate::cmd_mount::unmount_now(&mp)?;
    // The mount process makes a last (empty) commit, lets go of the vault
    // and exits; wait for that, so a new mount can start at once.
    let bar = crate::progress::spinner(g.quiet, "waiting for the drive to stop");
    for _ in 0..1200 {
        let running = pid != 0 && alive(pid);
        if !running && !is_nimbus_mount(&mp) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bar.finish_and_clear();
    println!("Unmounted {}; every change is in the vault.", mp.display());
    Ok(ExitCode::SUCCESS)
}

pub fn pin(_g: &GlobalArgs, a: PinArgs, on: bool) -> Result<ExitCode> {
    for p in &a.paths {
        let r = if on {
            xattr::set(p, "user.nimbus.pin", b"1")
        } else {
            match xattr::remove(p, "user.nimbus.pin") {
                Err(e) if e.raw_os_error() == Some(61) => Ok(()), // ENODATA: was not pinned
                r => r,
            }
        };
        r.with_context(|| {
            format!(
                "cannot {} {} (is it inside a mounted Nimbus drive?)",
                if on { "pin" } else { "unpin" },
                p.display()
            )
        })?;
        println!(
            "{} {}",
            if on {
                "Kept on this device:"
            } else {
                "No longer kept on this device:"
            },
            p.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Whether a process runs (a zombie waiting for its parent does not).
/// Whether the process serving a drive is the service.
fn is_service(pid: u32) -> bool {
    pid != 0 && std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "nimbusd")
}

fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(") ")
            .map(|(_, rest)| !rest.starts_with('Z') && !rest.starts_with('X'))
            .unwrap_or(false),
        Err(_) => false,
    }
}

#[derive(clap::Args, Debug)]
pub struct LimitArgs {
    /// Where the drive is mounted.
    mountpoint: PathBuf,
    /// New upload limit in bytes per second (`500k`, `5M`, `1.5MiB`), or `off`.
    #[arg(long, value_name = "RATE", value_parser = parse_rate_or_off)]
    upload: Option<u64>,
    /// New download limit in bytes per second, or `off`.
    #[arg(long, value_name = "RATE", value_parser = parse_rate_or_off)]
    download: Option<u64>,
}

/// `nimbus limit <mountpoint> [--upload R] [--download R]`: the drive's
/// limits, changed at once for the requests waiting and those to come.
pub fn limit(_g: &GlobalArgs, a: LimitArgs) -> Result<ExitCode> {
    let mp = drive(&a.mountpoint)?;
    if a.upload.is_some() || a.download.is_some() {
        let mut v = String::new();
        if let Some(u) = a.upload {
            v.push_str(&format!("up={u} "));
        }
        if let Some(d) = a.download {
            v.push_str(&format!("down={d}"));
        }
        xattr::set(&mp, "user.nimbus.limits", v.trim().as_bytes()).map_err(|e| limit_error(&mp, e))?;
    }
    let raw = xattr::get(&mp, "user.nimbus.limits")
        .map_err(|e| limit_error(&mp, e))?
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&raw);
    let mut up = 0;
    let mut down = 0;
    for part in text.split_whitespace() {
        match part.split_once('=') {
            Some(("up", v)) => up = v.parse().unwrap_or(0),
            Some(("down", v)) => down = v.parse().unwrap_or(0),
            _ => {}
        }
    }
    let show = |r: u64| {
        if r == 0 {
            "no limit".to_string()
        } else {
            format!("{}/s", human_bytes(r))
        }
    };
    if (a.upload.is_some() || a.download.is_some()) && is_service(status(&mp).map(|p| p.pid).unwrap_or(0)) {
        // The service's drive: saved in its config too, for its next start.
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let some = |r: u64| (r > 0).then_some(r);
        rt.block_on(crate::cmd_service::save_limits_served(&mp, some(up), some(down)))?;
    }
    println!("{}: upload {}, download {}", mp.display(), show(up), show(down));
    Ok(ExitCode::SUCCESS)
}

fn limit_error(mp: &Path, e: std::io::Error) -> anyhow::Error {
    if e.raw_os_error() == Some(libc_enotsup()) {
        anyhow::anyhow!(
            "{}: this drive's store is a folder on this device, which has no bandwidth limits",
            mp.display()
        )
    } else {
        anyhow::anyhow!("cannot change the limits of {}: {e}", mp.display())
    }
}

/// ENOTSUP, which the drive answers for a store on this device.
fn libc_enotsup() -> i32 {
    if cfg!(target_os = "linux") {
        95
    } else {
        45
    }
}

/// A rate in bytes per second: `1000`, `500k` / `500K` (×1000), `5M`,
/// `1G`, `64KiB` / `5MiB` (×1024), with an optional `/s` or `B`.
pub fn parse_rate(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim();
    let t = t.strip_suffix("/s").unwrap_or(t);
    let lower = t.to_ascii_lowercase();
    let (num, mult) = [
        ("kib", 1u64 << 10),
        ("mib", 1 << 20),
        ("gib", 1 << 30),
        ("kb", 1000),
        ("mb", 1_000_000),
        ("gb", 1_000_000_000),
        ("k", 1000),
        ("m", 1_000_000),
        ("g", 1_000_000_000),
        ("b", 1),
    ]
    .iter()
    .find_map(|(suffix, m)| lower.strip_suffix(suffix).map(|n| (n.trim().to_string(), *m)))
    .unwrap_or((lower.clone(), 1));
    let v: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a rate; write it as 500k, 5M or 2MiB (bytes per second)"))?;
    if !(v.is_finite() && v > 0.0) {
        return Err(format!("`{s}`: a rate is more than 0 (use `off` for no limit)"));
    }
    Ok((v * mult as f64).round().max(1.0) as u64)
}

/// [`parse_rate`], or `off` / `0` / `none` for no limit (0).
pub fn parse_rate_or_off(s: &str) -> std::result::Result<u64, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "off" | "none" | "0" | "unlimited" => Ok(0),
        _ => parse_rate(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates() {
        assert_eq!(parse_rate("1000"), Ok(1000));
        assert_eq!(parse_rate("500k"), Ok(500_000));
        assert_eq!(parse_rate("5M/s"), Ok(5_000_000));
        assert_eq!(parse_rate("1.5MiB"), Ok(1_572_864));
        assert_eq!(parse_rate("64 KiB"), Ok(65_536));
        assert!(parse_rate("fast").is_err());
        assert!(parse_rate("0").is_err());
        assert_eq!(parse_rate_or_off("off"), Ok(0));
    }
}

//! Commands for a mounted drive: `unmount`, `sync`, `pin`, `unpin`.
//!
//! Until the service exists they talk to the mount through the drive
//! itself: `fsync` of the drive's root commits now, the `user.nimbus.status`
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
fn commit_with_progress(g: &GlobalArgs, mp: &Path) -> Result<bool> {
    let interrupted = Arc::new(AtomicBool::new(false));
    {
        let i = interrupted.clone();
        let _ = ctrlc::set_handler(move || i.store(true, Ordering::SeqCst));
    }
    let bar = crate::progress::spinner(g.quiet, "committing to the vault");
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
    println!("Every change on {} is in the vault.", mp.display());
    Ok(ExitCode::SUCCESS)
}

pub fn unmount(g: &GlobalArgs, a: MountpointArgs) -> Result<ExitCode> {
    let mp = drive(&a.mountpoint)?;
    if !commit_with_progress(g, &mp)? {
        return Ok(ExitCode::from(130));
    }
    let pid = status(&mp).map(|p| p.pid).unwrap_or(0);
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
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(") ")
            .map(|(_, rest)| !rest.starts_with('Z') && !rest.starts_with('X'))
            .unwrap_or(false),
        Err(_) => false,
    }
}

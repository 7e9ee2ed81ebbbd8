//! Commands for a mounted drive, named by its folder: `unmount`, `sync`,
//! `pin`, `unpin`, `limit`.
//!
//! A drive the service (`nimbusd`) serves is controlled through the
//! service's API: commits (`sync_now`, with the drive's status asked for
//! on a second connection to show progress and the files set aside), pins,
//! limits (which the service also keeps in its config) and the unmount
//! itself. A standalone `nimbus mount` has no API, so its drive is
//! controlled through the drive itself: `fsync` of the drive's root
//! commits now and the root's `user.nimbus.status` attribute tells what is
//! pending; setting or removing `user.nimbus.pin` on a path pins or unpins
//! it, and `user.nimbus.limits` on the root reads and sets the limits.

use anyhow::{bail, Context, Result};
use nimbus_api::{ApiError, Client, DriveStatus, ErrorCode, Request};
use nimbus_backend::StoreUrl;
use nimbus_fs::Pending;
use nimbus_fuse::mounts::{self, is_nimbus_mount};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use crate::args::GlobalArgs;
use crate::cmd_service;
use crate::progress::human_bytes;

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

/// What a standalone mount's drive says is pending.
fn status(mp: &Path) -> Result<Pending> {
    let raw = xattr::get(mp, "user.nimbus.status")
        .with_context(|| format!("cannot ask {} for its status", mp.display()))?
        .unwrap_or_default();
    Ok(serde_json::from_slice(&raw).unwrap_or_default())
}

/// What the service says is pending on one of its drives, in the words a
/// standalone drive uses.
fn pending_of(d: &DriveStatus) -> Pending {
    Pending {
        files: d.pending_files,
        staged_bytes: d.pending_bytes,
        dirty: d.changes_pending,
        // With files set aside and no failed commit, the service's last
        // error is its note about them, which `warn_set_aside` tells in
        // full: not a failed attempt.
        last_error: d.last_error.clone().filter(|_| d.set_aside.is_empty()),
        last_sync: d.last_sync,
        set_aside: d.set_aside.clone(),
        ..Pending::default()
    }
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

/// The drive's own reason, when it has one: the fsync error is only EIO.
fn why_not_committed(e: &std::io::Error, p: &Pending) -> String {
    match &p.last_error {
        Some(msg) => msg.clone(),
        None => e.to_string(),
    }
}

/// Set by Ctrl-C, which then stops the wait instead of the process.
fn interrupt_flag() -> Arc<AtomicBool> {
    static FLAG: std::sync::OnceLock<Arc<AtomicBool>> = std::sync::OnceLock::new();
    FLAG.get_or_init(|| {
        let interrupted = Arc::new(AtomicBool::new(false));
        let i = interrupted.clone();
        let _ = ctrlc::set_handler(move || i.store(true, Ordering::SeqCst));
        interrupted
    })
    .clone()
}

fn say_interrupted(p: &Pending) {
    eprintln!(
        "Interrupted: not everything is in the vault yet ({}). It is kept safely on this device \
         and uploads in the background while the drive is mounted, or at its next mount.",
        describe(p)
    );
}

/// Said once when there is no progress line to show the retries in (-q,
/// or not a terminal).
fn say_retrying(why: &str) {
    eprintln!("the store did not take the changes ({why}); retrying until it does. Ctrl-C to stop waiting");
}

/// Commits a standalone mount's drive now (fsync of the root), showing
/// progress; Ctrl-C stops waiting and says what is pending. Retries while
/// the store is unreachable. False when interrupted.
fn commit_with_progress(g: &GlobalArgs, mp: &Path) -> Result<bool> {
    let interrupted = interrupt_flag();
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
                say_interrupted(&status(mp).unwrap_or_default());
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
                    say_retrying(&why_not_committed(&e, &p));
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

/// One drive's status from the service; bounded, so a stuck answer does
/// not stop Ctrl-C from being seen.
async fn served_status(c: &mut Client, drive: &str) -> Result<DriveStatus, ApiError> {
    let ask = c.call(Request::Status {
        drive: Some(drive.to_string()),
    });
    match tokio::time::timeout(Duration::from_secs(5), ask).await {
        Ok(Ok(nimbus_api::Reply::Status(s))) => s.drives.into_iter().next().ok_or_else(|| {
            ApiError::new(
                ErrorCode::NoSuchDrive,
                format!("the service no longer has drive `{drive}`"),
            )
        }),
        Ok(Ok(other)) => Err(ApiError::new(
            ErrorCode::Internal,
            format!("the service answered something unexpected: {other:?}"),
        )),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(ApiError::new(
            ErrorCode::Unavailable,
            "the service did not answer within 5 s",
        )),
    }
}

/// Whether a failed `sync_now` is worth asking again: the commit failed
/// (the store unreachable, or refusing for now) while the service still
/// serves the drive, unlocked. The standalone path retries every failed
/// fsync likewise.
fn worth_retrying(e: &ApiError, d: &DriveStatus) -> bool {
    matches!(e.code, ErrorCode::Unavailable | ErrorCode::Internal) && d.mounted && !d.locked
}

/// Commits a drive the service serves now: `sync_now` on a connection of
/// its own, which answers once the commit is in the vault, while `watch`
/// asks for the drive's status to show progress. As the standalone path:
/// Ctrl-C stops waiting and says what is pending, and a commit the store
/// did not take is asked for again every 2 s. False when interrupted.
async fn commit_served(g: &GlobalArgs, watch: &mut Client, drive: &str) -> Result<bool> {
    let interrupted = interrupt_flag();
    let bar = crate::progress::spinner(g.quiet, "committing to the vault");
    let mut told = false;
    loop {
        let sync = async {
            let mut c = Client::connect().await?;
            c.call(Request::SyncNow {
                drive: drive.to_string(),
            })
            .await
        };
        tokio::pin!(sync);
        let result = loop {
            if let Ok(r) = tokio::time::timeout(Duration::from_millis(250), &mut sync).await {
                break r;
            }
            if interrupted.load(Ordering::SeqCst) {
                bar.finish_and_clear();
                let p = served_status(watch, drive).await.map(|d| pending_of(&d));
                say_interrupted(&p.unwrap_or_default());
                return Ok(false);
            }
            if let Ok(d) = served_status(watch, drive).await {
                bar.set_message(format!("committing to the vault: {}", describe(&pending_of(&d))));
            }
            bar.tick();
        };
        let e = match result {
            Ok(_) => {
                bar.finish_and_clear();
                return Ok(true);
            }
            Err(e) => e,
        };
        // The service's status tells a store that did not take the commit
        // from a service or drive that is gone (both are `unavailable`).
        let d = match served_status(watch, drive).await {
            Ok(d) if worth_retrying(&e, &d) => d,
            _ => {
                bar.finish_and_clear();
                // The service's words say what to do (unlock, mount).
                return Err(e.into());
            }
        };
        if bar.is_hidden() && !told {
            say_retrying(&e.message);
            told = true;
        }
        bar.set_message(format!(
            "the store did not take the changes ({e}); retrying — {}; Ctrl-C to stop waiting",
            describe(&pending_of(&d))
        ));
        for _ in 0..8 {
            if interrupted.load(Ordering::SeqCst) {
                bar.finish_and_clear();
                say_interrupted(&pending_of(&d));
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

pub fn sync(g: &GlobalArgs, a: MountpointArgs) -> Result<ExitCode> {
    let mp = drive(&a.mountpoint)?;
    let rt = runtime()?;
    let set_aside = match rt.block_on(cmd_service::served(&mp)) {
        Some((mut c, d)) => {
            if !rt.block_on(commit_served(g, &mut c, &d.name))? {
                return Ok(ExitCode::from(130));
            }
            rt.block_on(served_status(&mut c, &d.name))?.set_aside
        }
        None => {
            if !commit_with_progress(g, &mp)? {
                return Ok(ExitCode::from(130));
            }
            status(&mp).unwrap_or_default().set_aside
        }
    };
    if warn_set_aside(&mp, &set_aside) {
        return Ok(ExitCode::FAILURE);
    }
    println!("Every change on {} is in the vault.", mp.display());
    Ok(ExitCode::SUCCESS)
}

/// Names the files the drive could not commit because their changes here
/// are damaged (paths in the drive); true if there are any.
fn warn_set_aside(mp: &Path, set_aside: &[String]) -> bool {
    if set_aside.is_empty() {
        return false;
    }
    eprintln!(
        "Everything else is in the vault, but the changes made on this device to these files are damaged on \
         its disk, so they were not synced (the vault keeps the last version it had):"
    );
    for f in set_aside {
        eprintln!("  {}{f}", mp.display());
    }
    eprintln!("Copy what you can still read from them, then save or delete them; the next sync takes them.");
    true
}

pub fn unmount(g: &GlobalArgs, a: MountpointArgs) -> Result<ExitCode> {
    let mp = drive(&a.mountpoint)?;
    let rt = runtime()?;
    if let Some((mut c, d)) = rt.block_on(cmd_service::served(&mp)) {
        // A locked drive cannot commit; the service's unmount says whether
        // changes stay on this device for the next mount.
        if !d.locked {
            if !rt.block_on(commit_served(g, &mut c, &d.name))? {
                return Ok(ExitCode::from(130));
            }
            let set_aside = rt.block_on(served_status(&mut c, &d.name))?.set_aside;
            warn_set_aside(&mp, &set_aside);
        }
        // The service must let go of the drive itself (it stays running).
        return cmd_service::print_done(rt.block_on(c.call(Request::Unmount { drive: d.name }))?);
    }
    if !commit_with_progress(g, &mp)? {
        return Ok(ExitCode::from(130));
    }
    warn_set_aside(&mp, &status(&mp).unwrap_or_default().set_aside);
    let pid = status(&mp).map(|p| p.pid).unwrap_or(0);
    mounts::unmount(&mp, false)?;
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

/// A current-thread runtime for the calls to the service: a client's
/// connection belongs to the runtime it was made in.
fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread().enable_all().build()?)
}

pub fn pin(_g: &GlobalArgs, a: PinArgs, on: bool) -> Result<ExitCode> {
    let rt = runtime()?;
    let mut service = rt.block_on(cmd_service::served_drives()).map(|(c, drives)| {
        let mounts: Vec<_> = drives.into_iter().map(|d| (d.name, d.mount)).collect();
        (c, mounts)
    });
    for p in &a.paths {
        let r = match service
            .as_mut()
            .and_then(|(c, mounts)| inside_served(p, mounts).map(|d| (c, d)))
        {
            Some((c, (drive, path))) => rt
                .block_on(c.call(Request::Pin { drive, path, on }))
                .map(|_| ())
                .map_err(anyhow::Error::from),
            None => pin_by_xattr(p, on).map_err(anyhow::Error::from),
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

/// Pins or unpins through the drive's control attribute.
fn pin_by_xattr(p: &Path, on: bool) -> std::io::Result<()> {
    if on {
        xattr::set(p, "user.nimbus.pin", b"1")
    } else {
        match xattr::remove(p, "user.nimbus.pin") {
            Err(e) if e.raw_os_error() == Some(61) => Ok(()), // ENODATA: was not pinned
            r => r,
        }
    }
}

/// Which of the service's drives (name, mount point) `p` is in, and `p`
/// as a path inside it (`/docs`). Links are followed, as the control
/// attribute would follow them.
fn inside_served(p: &Path, mounts: &[(String, PathBuf)]) -> Option<(String, String)> {
    let p = p.canonicalize().ok()?;
    mounts.iter().find_map(|(name, mount)| {
        let mount = mount.canonicalize().unwrap_or_else(|_| mount.clone());
        let rel = p.strip_prefix(&mount).ok()?.to_str()?;
        Some((name.clone(), format!("/{rel}")))
    })
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

#[derive(clap::Args, Debug)]
pub struct LimitArgs {
    /// Where the drive is mounted.
    mountpoint: PathBuf,
    /// New upload limit in bytes per second (`500k`, `5M`, `1.5MiB`), or `off`.
    #[arg(long, value_name = "RATE", value_parser = crate::rates::parse_rate_or_off)]
    upload: Option<u64>,
    /// New download limit in bytes per second, or `off`.
    #[arg(long, value_name = "RATE", value_parser = crate::rates::parse_rate_or_off)]
    download: Option<u64>,
}

/// `nimbus limit <mountpoint> [--upload R] [--download R]`: the drive's
/// limits, changed at once for the requests waiting and those to come.
pub fn limit(_g: &GlobalArgs, a: LimitArgs) -> Result<ExitCode> {
    let mp = drive(&a.mountpoint)?;
    let rt = runtime()?;
    let (up, down) = match rt.block_on(cmd_service::served(&mp)) {
        Some((mut c, d)) => rt.block_on(limit_served(&mut c, &d, &mp, &a))?,
        None => limit_by_xattr(&mp, &a)?,
    };
    let show = |r: u64| {
        if r == 0 {
            "no limit".to_string()
        } else {
            format!("{}/s", human_bytes(r))
        }
    };
    println!("{}: upload {}, download {}", mp.display(), show(up), show(down));
    Ok(ExitCode::SUCCESS)
}

/// The limits of the service's drive, set through its API, which also
/// keeps them in its config for its next start. 0 is no limit.
async fn limit_served(c: &mut Client, d: &DriveStatus, mp: &Path, a: &LimitArgs) -> Result<(u64, u64)> {
    // As the drive itself answers: a store on this device has no limits.
    if matches!(
        StoreUrl::parse(&d.store),
        Ok(StoreUrl::LocalFolder(_) | StoreUrl::Memory(_))
    ) {
        return Err(no_limits(mp));
    }
    let (mut up, mut down) = (d.upload_limit, d.download_limit);
    if a.upload.is_some() || a.download.is_some() {
        let some = |r: u64| (r > 0).then_some(r);
        up = a.upload.map_or(up, some);
        down = a.download.map_or(down, some);
        c.call(Request::SetLimits {
            drive: d.name.clone(),
            upload: up,
            download: down,
        })
        .await
        .map_err(|e: ApiError| anyhow::anyhow!("cannot change the limits of {}: {e}", mp.display()))?;
    }
    Ok((up.unwrap_or(0), down.unwrap_or(0)))
}

/// The limits of a standalone mount's drive, through its control
/// attribute: `up=<bytes per second> down=<bytes per second>`, 0 for none.
fn limit_by_xattr(mp: &Path, a: &LimitArgs) -> Result<(u64, u64)> {
    if a.upload.is_some() || a.download.is_some() {
        let mut v = String::new();
        if let Some(u) = a.upload {
            v.push_str(&format!("up={u} "));
        }
        if let Some(d) = a.download {
            v.push_str(&format!("down={d}"));
        }
        xattr::set(mp, "user.nimbus.limits", v.trim().as_bytes()).map_err(|e| limit_error(mp, e))?;
    }
    let raw = xattr::get(mp, "user.nimbus.limits")
        .map_err(|e| limit_error(mp, e))?
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
    Ok((up, down))
}

fn no_limits(mp: &Path) -> anyhow::Error {
    anyhow::anyhow!(
        "{}: this drive's store is a folder on this device, which has no bandwidth limits",
        mp.display()
    )
}

fn limit_error(mp: &Path, e: std::io::Error) -> anyhow::Error {
    if e.raw_os_error() == Some(libc_enotsup()) {
        no_limits(mp)
    } else {
        anyhow::anyhow!("cannot change the limits of {}: {e}", mp.display())
    }
}

/// ENOTSUP, which the drive answers for a store on this device.
fn libc_enotsup() -> i32 {
    rustix::io::Errno::NOTSUP.raw_os_error()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_path_is_found_in_the_drive_that_holds_it() {
        let d = tempfile::tempdir().unwrap();
        let (work, photos) = (d.path().join("Work"), d.path().join("Photos"));
        std::fs::create_dir_all(work.join("docs")).unwrap();
        std::fs::create_dir_all(&photos).unwrap();
        std::fs::write(work.join("docs/a.txt"), "a").unwrap();
        std::os::unix::fs::symlink(work.join("docs"), d.path().join("link")).unwrap();
        let mounts = [("photos".to_string(), photos), ("work".to_string(), work.clone())];
        let found = |p: &Path| inside_served(p, &mounts);
        let at = |name: &str, path: &str| Some((name.to_string(), path.to_string()));
        assert_eq!(found(&work.join("docs/a.txt")), at("work", "/docs/a.txt"));
        assert_eq!(found(&work), at("work", "/"));
        assert_eq!(found(&d.path().join("link/a.txt")), at("work", "/docs/a.txt"));
        // Not in one of the service's drives, or not there at all: left to
        // the drive's own attribute, which says what is wrong.
        assert_eq!(found(d.path()), None);
        assert_eq!(found(&work.join("missing")), None);
    }

    fn served_drive() -> DriveStatus {
        DriveStatus {
            name: "work".into(),
            store: "s3://b/work".into(),
            mount: "/home/u/Work".into(),
            state: nimbus_api::DriveState::Syncing,
            mounted: true,
            ..Default::default()
        }
    }

    #[test]
    fn a_served_drive_is_described_as_a_standalone_one() {
        let mut d = served_drive();
        assert_eq!(describe(&pending_of(&d)), "nothing pending");
        // A rename alone: no file's content changed, yet a commit is due.
        d.changes_pending = true;
        assert_eq!(describe(&pending_of(&d)), "0 changed files, 0 B staged on this device");
        d.pending_files = 1;
        d.pending_bytes = 2048;
        d.last_error = Some("the store cannot be reached".into());
        let standalone = Pending {
            files: 1,
            staged_bytes: 2048,
            dirty: true,
            last_error: d.last_error.clone(),
            ..Pending::default()
        };
        assert_eq!(describe(&pending_of(&d)), describe(&standalone));
        assert!(describe(&pending_of(&d)).ends_with("; last attempt failed: the store cannot be reached"));
        // With files set aside, the last error is the service's note about
        // them, told in full by the warning: not a failed attempt.
        d.set_aside = vec!["/docs/a.txt".into()];
        d.last_error = Some("the changes made on this device to /docs/a.txt are damaged".into());
        let p = pending_of(&d);
        assert_eq!(p.last_error, None);
        assert_eq!(p.set_aside, ["/docs/a.txt"]);
    }

    #[test]
    fn a_failed_commit_is_asked_again_only_while_it_can_succeed() {
        let d = served_drive();
        let e = |code| ApiError::new(code, "m");
        assert!(worth_retrying(&e(ErrorCode::Unavailable), &d));
        assert!(worth_retrying(&e(ErrorCode::Internal), &d));
        assert!(!worth_retrying(&e(ErrorCode::Locked), &d));
        assert!(!worth_retrying(&e(ErrorCode::NoSuchDrive), &d));
        // The service let go of the drive, or locked it, meanwhile.
        let gone = DriveStatus {
            mounted: false,
            ..served_drive()
        };
        assert!(!worth_retrying(&e(ErrorCode::Unavailable), &gone));
        let locked = DriveStatus {
            locked: true,
            ..served_drive()
        };
        assert!(!worth_retrying(&e(ErrorCode::Unavailable), &locked));
    }
}

//! The commands that talk to the service (`nimbusd`) through its local API:
//! `status`, `drive add|remove|list|mount|unmount`, `lock`, `unlock`,
//! `pause`, `resume`, `snapshots`, `restore`, `devices`.

use anyhow::{bail, Context, Result};
use nimbus_api::{
    AddDrive, Client, DeviceInfo, DriveChange, DriveState, DriveStatus, Reply, Request, Secret, ServiceStatus,
    StoreSecrets,
};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::args::GlobalArgs;
use crate::{credentials, secrets};

#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    /// Only this drive.
    drive: Option<String>,
    /// Print the status as JSON (the API's `ServiceStatus`).
    #[arg(long, conflicts_with = "live")]
    json: bool,
    /// Keep showing it, with progress bars, until Ctrl-C.
    #[arg(long)]
    live: bool,
}

#[derive(clap::Subcommand, Debug)]
pub enum DriveCommand {
    /// Add a drive for an existing vault and mount it (the vault password from a prompt or NIMBUS_PASSWORD).
    Add(AddArgs),
    /// Unmount a drive (after its changes are in the vault) and forget it; the vault is untouched.
    Remove {
        name: String,
        /// Also delete its saved password and store credentials from the keyring.
        #[arg(long)]
        forget: bool,
    },
    /// List the drives the service knows.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Mount a drive the service knows.
    Mount { name: String },
    /// Unmount a drive (after its changes are in the vault); it stays configured.
    Unmount { name: String },
    /// Change a drive's settings.
    Set(SetArgs),
}

#[derive(clap::Args, Debug)]
pub struct AddArgs {
    /// A short name for the drive (`work`, `photos`).
    name: String,
    /// The vault's store: a folder, s3://…, webdav(s)://…, sftp://…
    #[arg(long)]
    store: String,
    /// The folder to mount it on (created if missing).
    #[arg(long)]
    mount: PathBuf,
    /// Save the vault password in the system keyring, so the drive unlocks by itself at login.
    #[arg(long)]
    remember: bool,
    #[command(flatten)]
    settings: SettingsArgs,
}

/// The settings `drive add` and `drive set` share.
#[derive(clap::Args, Debug)]
pub struct SettingsArgs {
    /// Size limit of the local cache, in MiB.
    #[arg(long, value_name = "MIB")]
    cache_size: Option<u64>,
    /// Lock the drive after this many minutes without use (0: never).
    #[arg(long, value_name = "MINUTES")]
    auto_lock: Option<u64>,
    /// Seconds without changes before they are committed.
    #[arg(long, value_name = "SECONDS")]
    commit_delay: Option<u64>,
}

#[derive(clap::Args, Debug)]
pub struct SetArgs {
    name: String,
    #[command(flatten)]
    settings: SettingsArgs,
    /// Move the mount point (the drive must be unmounted).
    #[arg(long)]
    mount: Option<PathBuf>,
    /// Mount the drive when the service starts.
    #[arg(long)]
    mount_at_start: Option<bool>,
}

#[derive(clap::Args, Debug)]
pub struct OptDrive {
    /// The drive (all drives when left out).
    drive: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct UnlockArgs {
    drive: String,
    /// Save the password in the system keyring.
    #[arg(long)]
    remember: bool,
}

#[derive(clap::Args, Debug)]
pub struct SnapshotsArgs {
    drive: String,
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args, Debug)]
pub struct RestoreArgs {
    drive: String,
    /// The file or folder, as a path inside the drive.
    path: String,
    /// The snapshot: an id (or its start) from `nimbus snapshots`, or a UTC time (the newest snapshot
    /// at or before it).
    #[arg(long)]
    at: String,
    /// Put it in this folder instead of back in its place (nothing is overwritten either way).
    #[arg(long)]
    to: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct DevicesArgs {
    /// The drive (may be left out when the service has only one).
    drive: Option<String>,
    #[command(subcommand)]
    cmd: Option<DevicesCommand>,
}

#[derive(clap::Subcommand, Debug)]
pub enum DevicesCommand {
    /// Rename this device in a drive's vault; the others see the name with its next change.
    Rename {
        name: String,
        /// The drive (may be left out when the service has only one).
        drive: Option<String>,
    },
}

#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ConflictsArgs {
    /// The drive (may be left out when the service has only one).
    drive: Option<String>,
    #[command(subcommand)]
    cmd: Option<ConflictsCommand>,
}

#[derive(clap::Subcommand, Debug)]
pub enum ConflictsCommand {
    /// End a conflict by keeping one version; the other stays in the drive's snapshots.
    Resolve {
        /// The conflict copy, as a path inside the drive (as `nimbus conflicts` lists it).
        path: String,
        /// `original`: keep the file under its own name and delete the copy; `copy`: the copy's
        /// version replaces the original.
        #[arg(long, value_enum)]
        keep: KeepArg,
        /// The drive (may be left out when the service has only one).
        drive: Option<String>,
    },
}

/// Which version `nimbus conflicts resolve` keeps.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum KeepArg {
    Original,
    Copy,
}

async fn client() -> Result<Client> {
    Ok(Client::connect().await?)
}

async fn call(req: Request) -> Result<Reply> {
    Ok(client().await?.call(req).await?)
}

/// Prints a `Done` answer; anything else is a bug of one side.
pub fn print_done(r: Reply) -> Result<ExitCode> {
    match r {
        Reply::Done { message, warnings } => {
            println!("{message}");
            for w in warnings {
                eprintln!("warning: {w}");
            }
            Ok(ExitCode::SUCCESS)
        }
        other => bail!("the service answered something unexpected: {other:?}"),
    }
}

pub async fn status(a: StatusArgs, g: &GlobalArgs) -> Result<ExitCode> {
    let mut c = client().await?;
    let req = || Request::Status { drive: a.drive.clone() };
    if a.live {
        return live(&mut c, req, g.quiet).await;
    }
    let Reply::Status(s) = c.call(req()).await? else {
        bail!("the service answered something unexpected");
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&s)?);
    } else {
        print_status(&s);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_status(s: &ServiceStatus) {
    if s.drives.is_empty() {
        println!("No drives yet. Add one with `nimbus drive add <name> --store <store> --mount <folder>`.");
    }
    for d in &s.drives {
        println!("{:<12} {:<44} {}", d.name, d.message, d.mount.display());
        let t = &d.transfers;
        if t.upload_rate > 0 || t.download_rate > 0 {
            println!(
                "{:<12} ↑ {}/s  ↓ {}/s",
                "",
                crate::progress::human_bytes(t.upload_rate),
                crate::progress::human_bytes(t.download_rate)
            );
        }
        if let Some(e) = &d.last_error {
            if d.state == DriveState::Error || d.state == DriveState::Offline {
                println!("{:<12} {e}", "");
            }
        }
        for line in sync_lines(d) {
            println!("{:<12} {line}", "");
        }
    }
    for w in &s.warnings {
        println!("warning: {w}");
    }
    println!(
        "{}",
        if s.safe_to_shut_down {
            "Every change is in the cloud: safe to shut down."
        } else {
            "Changes are still uploading: shutting down now keeps them on this device until the next start."
        }
    );
}

/// What `nimbus status` says of a drive's other devices and conflicts.
fn sync_lines(d: &DriveStatus) -> Vec<String> {
    let mut out = Vec::new();
    let others: Vec<String> = d
        .sync
        .devices
        .iter()
        .filter(|o| !o.this_device)
        .map(|o| {
            let name = if o.name.is_empty() {
                format!("device {}", o.short_id)
            } else {
                o.name.clone()
            };
            let when = o
                .last_seen
                .map(|secs| {
                    let t = nimbus_vault::Timestamp { secs, nanos: 0 }.format_utc();
                    format!("changed {} UTC, ", t.get(..16).unwrap_or(&t))
                })
                .unwrap_or_default();
            let state = if o.merged { "up to date" } else { "changes waiting" };
            format!("{name} ({when}{state})")
        })
        .collect();
    if !others.is_empty() {
        out.push(format!("other devices: {}", others.join(", ")));
    }
    match d.sync.conflicts {
        0 => {}
        n => out.push(format!(
            "{n} file{} kept in two versions: `nimbus conflicts {}` lists them",
            if n == 1 { "" } else { "s" },
            d.name
        )),
    }
    out
}

/// One progress line per drive, redrawn every half second.
async fn live(c: &mut Client, req: impl Fn() -> Request, quiet: bool) -> Result<ExitCode> {
    let multi = indicatif::MultiProgress::new();
    if quiet {
        multi.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let style = indicatif::ProgressStyle::with_template("{prefix:<12} [{bar:24}] {wide_msg}")
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> ");
    let mut bars: std::collections::BTreeMap<String, indicatif::ProgressBar> = Default::default();
    let footer = multi.add(indicatif::ProgressBar::new_spinner());
    loop {
        let Reply::Status(s) = c.call(req()).await? else {
            bail!("the service answered something unexpected");
        };
        for d in &s.drives {
            let bar = bars.entry(d.name.clone()).or_insert_with(|| {
                let b = multi.insert_before(&footer, indicatif::ProgressBar::new(1));
                b.set_style(style.clone());
                b.set_prefix(d.name.clone());
                b
            });
            let (pos, len) = progress_of(d);
            bar.set_length(len.max(1));
            bar.set_position(pos);
            bar.set_message(line_of(d));
        }
        footer.set_message(if s.safe_to_shut_down {
            "Everything is in the cloud. Ctrl-C to stop watching."
        } else {
            "Uploading. Ctrl-C to stop watching."
        });
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
        }
    }
}

/// Bytes done out of bytes to do, for the bar: uploads under way against
/// what is still staged.
fn progress_of(d: &DriveStatus) -> (u64, u64) {
    if d.state == DriveState::UpToDate {
        return (1, 1);
    }
    let left = d.pending_bytes;
    let doing = d.transfers.uploading_bytes.min(left);
    (doing, left)
}

fn line_of(d: &DriveStatus) -> String {
    let t = &d.transfers;
    if t.upload_rate > 0 || t.download_rate > 0 {
        format!(
            "{}  ↑ {}/s ↓ {}/s",
            d.message,
            crate::progress::human_bytes(t.upload_rate),
            crate::progress::human_bytes(t.download_rate)
        )
    } else {
        d.message.clone()
    }
}

/// The store's credentials to hand to the service: from this terminal's
/// environment or a prompt (the service cannot see either). `None` leaves
/// it to the service's keyring and environment, or SSH's own.
fn handed_credentials(store: &str) -> Result<Option<StoreSecrets>> {
    let url = nimbus_backend::StoreUrl::parse(store)?;
    match &url {
        nimbus_backend::StoreUrl::S3(_) => {
            if let (Ok(id), Ok(secret)) = (
                std::env::var("AWS_ACCESS_KEY_ID"),
                std::env::var("AWS_SECRET_ACCESS_KEY"),
            ) {
                if !id.is_empty() && !secret.is_empty() {
                    return Ok(Some(StoreSecrets {
                        access_key_id: Some(id),
                        secret_access_key: Some(Secret::new(secret)),
                        password: None,
                    }));
                }
            }
        }
        nimbus_backend::StoreUrl::WebDav(_) => {
            if let Ok(pw) = std::env::var("NIMBUS_STORE_PASSWORD") {
                return Ok(Some(StoreSecrets {
                    password: Some(Secret::new(pw)),
                    ..Default::default()
                }));
            }
        }
        _ => return Ok(None),
    }
    let found = credentials::find(&url, credentials::Ask::IfTerminal)?;
    Ok(Some(StoreSecrets {
        access_key_id: found.s3.as_ref().map(|k| k.access_key_id.clone()),
        secret_access_key: found.s3.as_ref().map(|k| Secret::new(k.secret_access_key.to_string())),
        password: found.password.as_ref().map(|p| Secret::new(p.to_string())),
    })
    .filter(|s| s.access_key_id.is_some() || s.password.is_some()))
}

pub async fn drive(g: &GlobalArgs, cmd: DriveCommand) -> Result<ExitCode> {
    match cmd {
        DriveCommand::Add(a) => {
            let mount =
                std::path::absolute(&a.mount).with_context(|| format!("cannot resolve {}", a.mount.display()))?;
            let store = if a.store.contains("://") {
                a.store.clone()
            } else {
                // A folder: the service runs elsewhere, so make it absolute.
                std::path::absolute(&a.store)
                    .with_context(|| format!("cannot resolve {}", a.store))?
                    .to_string_lossy()
                    .into_owned()
            };
            let credentials = handed_credentials(&store)?;
            let pw = secrets::password(g.password_file.as_deref())?;
            let req = Request::AddDrive(AddDrive {
                name: a.name,
                store,
                mount,
                password: Secret::new(pw.as_str()),
                credentials,
                remember: a.remember,
                settings: DriveChange {
                    cache_size_mib: a.settings.cache_size,
                    auto_lock_minutes: a.settings.auto_lock,
                    commit_delay_secs: a.settings.commit_delay,
                    ..Default::default()
                },
            });
            print_done(call(req).await?)
        }
        DriveCommand::Remove { name, forget } => print_done(
            call(Request::RemoveDrive {
                drive: name,
                forget_secrets: forget,
            })
            .await?,
        ),
        DriveCommand::List { json } => {
            let Reply::Drives { drives } = call(Request::ListDrives).await? else {
                bail!("the service answered something unexpected");
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&drives)?);
                return Ok(ExitCode::SUCCESS);
            }
            if drives.is_empty() {
                println!("No drives yet. Add one with `nimbus drive add <name> --store <store> --mount <folder>`.");
            }
            for d in drives {
                println!(
                    "{:<12} {:<40} {}{}",
                    d.name,
                    d.mount.display().to_string(),
                    d.store,
                    if d.remembered { "  (password in keyring)" } else { "" }
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        DriveCommand::Mount { name } => print_done(call(Request::Mount { drive: name }).await?),
        DriveCommand::Unmount { name } => print_done(call(Request::Unmount { drive: name }).await?),
        DriveCommand::Set(s) => print_done(
            call(Request::ChangeDrive {
                drive: s.name,
                change: DriveChange {
                    mount: s.mount,
                    cache_size_mib: s.settings.cache_size,
                    commit_delay_secs: s.settings.commit_delay,
                    auto_lock_minutes: s.settings.auto_lock,
                    mount_at_start: s.mount_at_start,
                },
            })
            .await?,
        ),
    }
}

pub async fn lock(a: OptDrive) -> Result<ExitCode> {
    print_done(call(Request::Lock { drive: a.drive }).await?)
}

pub async fn unlock(g: &GlobalArgs, a: UnlockArgs) -> Result<ExitCode> {
    let mut c = client().await?;
    // The keyring first, if the password is remembered; else ask.
    let first = c
        .call(Request::Unlock {
            drive: a.drive.clone(),
            password: None,
            remember: false,
        })
        .await;
    match first {
        Ok(r) => return print_done(r),
        Err(e) if e.code == nimbus_api::ErrorCode::WrongPassword => {}
        Err(e) => return Err(e.into()),
    }
    let pw = secrets::password(g.password_file.as_deref())?;
    print_done(
        c.call(Request::Unlock {
            drive: a.drive,
            password: Some(Secret::new(pw.as_str())),
            remember: a.remember,
        })
        .await?,
    )
}

pub async fn pause(a: OptDrive, on: bool) -> Result<ExitCode> {
    let req = if on {
        Request::Pause { drive: a.drive }
    } else {
        Request::Resume { drive: a.drive }
    };
    print_done(call(req).await?)
}

pub async fn snapshots(a: SnapshotsArgs) -> Result<ExitCode> {
    let Reply::Snapshots { snapshots } = call(Request::Snapshots { drive: a.drive.clone() }).await? else {
        bail!("the service answered something unexpected");
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&snapshots)?);
        return Ok(ExitCode::SUCCESS);
    }
    if snapshots.is_empty() {
        println!("Drive `{}` has no snapshots yet.", a.drive);
    }
    for s in snapshots.iter().rev() {
        let t = nimbus_vault::Timestamp { secs: s.time, nanos: 0 };
        println!(
            "{}  {}  from device {}",
            &s.id[..s.id.len().min(12)],
            t.format_utc(),
            &s.device[..s.device.len().min(8)]
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn restore(a: RestoreArgs) -> Result<ExitCode> {
    let to = match a.to {
        Some(t) => Some(std::path::absolute(&t).with_context(|| format!("cannot resolve {}", t.display()))?),
        None => None,
    };
    let r = call(Request::Restore {
        drive: a.drive,
        path: a.path.clone(),
        at: a.at,
        to,
    })
    .await?;
    match r {
        Reply::Restored { to, files, bytes } => {
            println!(
                "Restored {} to {} ({files} file{}, {}).",
                a.path,
                to.display(),
                if files == 1 { "" } else { "s" },
                crate::progress::human_bytes(bytes)
            );
            Ok(ExitCode::SUCCESS)
        }
        other => bail!("the service answered something unexpected: {other:?}"),
    }
}

pub async fn devices(a: DevicesArgs) -> Result<ExitCode> {
    let mut c = client().await?;
    match a.cmd {
        Some(DevicesCommand::Rename { name, drive }) => {
            let drive = one_drive(&mut c, drive).await?;
            print_done(c.call(Request::RenameDevice { drive, name }).await?)
        }
        None => {
            let drive = one_drive(&mut c, a.drive).await?;
            let Reply::Devices { devices } = c.call(Request::Devices { drive }).await? else {
                bail!("the service answered something unexpected");
            };
            print!("{}", devices_table(&devices));
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub async fn conflicts(a: ConflictsArgs) -> Result<ExitCode> {
    let mut c = client().await?;
    match a.cmd {
        Some(ConflictsCommand::Resolve { path, keep, drive }) => {
            let drive = one_drive(&mut c, drive).await?;
            let keep = match keep {
                KeepArg::Original => nimbus_api::Keep::Original,
                KeepArg::Copy => nimbus_api::Keep::Copy,
            };
            print_done(c.call(Request::ResolveConflict { drive, path, keep }).await?)
        }
        None => {
            let drive = one_drive(&mut c, a.drive).await?;
            let Reply::Conflicts { conflicts } = c.call(Request::Conflicts { drive: drive.clone() }).await? else {
                bail!("the service answered something unexpected");
            };
            if conflicts.is_empty() {
                println!("No conflicts in drive `{drive}`.");
            } else {
                print!("{}", conflicts_table(&conflicts));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The conflict copies as a table: the copy, the file it is a version of,
/// and whose version it is, from when.
fn conflicts_table(conflicts: &[nimbus_api::ConflictInfo]) -> String {
    let rows: Vec<[String; 3]> = conflicts
        .iter()
        .map(|c| {
            // To the minute, as the copy's name has it.
            let when = c
                .time
                .map(|secs| {
                    let t = nimbus_vault::Timestamp { secs, nanos: 0 }.format_utc();
                    format!(" at {} UTC", t.get(..16).unwrap_or(&t))
                })
                .unwrap_or_default();
            [c.copy.clone(), c.original.clone(), format!("{}{when}", c.device)]
        })
        .collect();
    table(&["COPY", "VERSION OF", "FROM"].map(String::from), &rows)
}

/// Rows in columns as wide as their widest cell; the last is not padded.
fn table<const N: usize>(head: &[String; N], rows: &[[String; N]]) -> String {
    let mut width = [0usize; N];
    for r in std::iter::once(head).chain(rows) {
        for (w, cell) in width.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for r in std::iter::once(head).chain(rows) {
        let mut line = String::new();
        for (i, cell) in r.iter().enumerate() {
            if i + 1 < N {
                line.push_str(&format!("{cell:<w$}  ", w = width[i]));
            } else {
                line.push_str(cell);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `drive`, or the service's only drive.
async fn one_drive(c: &mut Client, drive: Option<String>) -> Result<String> {
    if let Some(d) = drive {
        return Ok(d);
    }
    let Reply::Drives { drives } = c.call(Request::ListDrives).await? else {
        bail!("the service answered something unexpected");
    };
    match drives.as_slice() {
        [] => bail!("the service has no drives yet; add one with `nimbus drive add`"),
        [one] => Ok(one.name.clone()),
        many => {
            let names: Vec<&str> = many.iter().map(|d| d.name.as_str()).collect();
            bail!("the service has several drives; name one of them: {}", names.join(", "))
        }
    }
}

/// The devices as a table: name, short id, this device, last change, and
/// whether this device has taken in that one's latest change.
fn devices_table(devices: &[DeviceInfo]) -> String {
    let rows: Vec<[String; 4]> = devices
        .iter()
        .map(|d| {
            let name = if d.name.is_empty() {
                "(no name yet)".to_string()
            } else {
                d.name.clone()
            };
            let name = if d.this_device {
                format!("{name} (this device)")
            } else {
                name
            };
            let when = d
                .last_seen
                .map(|secs| nimbus_vault::Timestamp { secs, nanos: 0 }.format_utc())
                .unwrap_or_else(|| "-".into());
            let state = if d.this_device || d.merged {
                "up to date"
            } else {
                "changes waiting"
            };
            [name, d.short_id.clone(), when, state.to_string()]
        })
        .collect();
    table(&["NAME", "ID", "LAST CHANGE", "STATE"].map(String::from), &rows)
}

/// The service and its mounted drives, if a service answers.
#[cfg(unix)]
pub async fn served_drives() -> Option<(Client, Vec<DriveStatus>)> {
    let mut c = Client::connect().await.ok()?;
    let Ok(Reply::Status(s)) = c.call(Request::Status { drive: None }).await else {
        return None;
    };
    let drives = s.drives.into_iter().filter(|d| d.mounted).collect();
    Some((c, drives))
}

/// The service, and the drive it serves at `mp`, if it does.
#[cfg(unix)]
pub async fn served(mp: &std::path::Path) -> Option<(Client, DriveStatus)> {
    let (c, drives) = served_drives().await?;
    let same = |p: &std::path::Path| p == mp || p.canonicalize().is_ok_and(|c| c == mp);
    let d = drives.into_iter().find(|d| same(&d.mount))?;
    Some((c, d))
}

#[cfg(test)]
mod devices_tests {
    use super::*;

    fn dev(name: &str, short: &str, this: bool, last: Option<i64>, merged: bool) -> DeviceInfo {
        DeviceInfo {
            id: format!("{short}{}", "0".repeat(25)),
            short_id: short.into(),
            name: name.into(),
            this_device: this,
            last_seen: last,
            merged,
        }
    }

    #[test]
    fn the_table_names_each_device_and_what_waits() {
        let t = devices_table(&[
            dev("desk", "abcdef0", true, None, true),
            dev("ann's laptop", "1234567", false, Some(1_796_652_000), true),
            dev("", "7654321", false, None, false),
        ]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 4, "{t}");
        assert!(lines[0].starts_with("NAME"), "{t}");
        assert!(lines[1].starts_with("desk (this device)"), "{t}");
        assert!(lines[1].contains("abcdef0") && lines[1].ends_with("up to date"), "{t}");
        assert!(lines[2].starts_with("ann's laptop"), "{t}");
        assert!(
            lines[2].contains("2026-12-07") && lines[2].ends_with("up to date"),
            "{t}"
        );
        assert!(lines[3].starts_with("(no name yet)"), "{t}");
        assert!(lines[3].ends_with("changes waiting"), "{t}");
        // Columns line up: every ID starts at the same place.
        let col = lines[0].find("ID").unwrap_or(0);
        assert_eq!(&lines[1][col..col + 7], "abcdef0", "{t}");
        assert_eq!(&lines[2][col..col + 7], "1234567", "{t}");
        assert_eq!(&lines[3][col..col + 7], "7654321", "{t}");
    }

    #[test]
    fn the_conflicts_table_names_the_copy_its_original_and_whose_it_is() {
        let c = |copy: &str, original: &str, device: &str| nimbus_api::ConflictInfo {
            copy: copy.into(),
            original: original.into(),
            device: device.into(),
            time: Some(1_796_652_300),
        };
        let t = conflicts_table(&[
            c("/r (conflict laptop 2026-12-07 14.05 UTC).txt", "/r.txt", "laptop"),
            c("/docs/a (conflict desk 2026-12-07 14.05 UTC)", "/docs/a", "desk"),
        ]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3, "{t}");
        assert!(lines[0].starts_with("COPY") && lines[0].contains("VERSION OF"), "{t}");
        assert!(
            lines[1].contains("/r.txt") && lines[1].ends_with("laptop at 2026-12-07 14:05 UTC"),
            "{t}"
        );
        let col = lines[0].find("VERSION OF").unwrap_or(0);
        assert_eq!(&lines[2][col..col + 7], "/docs/a", "{t}");
    }

    #[test]
    fn status_names_the_other_devices_and_the_conflicts() {
        let mut d = DriveStatus {
            name: "work".into(),
            ..Default::default()
        };
        assert!(sync_lines(&d).is_empty(), "one device, no conflict: nothing to say");
        d.sync.devices = vec![
            dev("desk", "abcdef0", true, None, true),
            dev("laptop", "1234567", false, Some(1_796_652_300), true),
            dev("", "7654321", false, None, false),
        ];
        d.sync.conflicts = 2;
        assert_eq!(
            sync_lines(&d),
            [
                "other devices: laptop (changed 2026-12-07 14:05 UTC, up to date), device 7654321 (changes waiting)",
                "2 files kept in two versions: `nimbus conflicts work` lists them",
            ]
        );
    }
}

//! The kernel's side of mounting: is a folder a Nimbus drive (the
//! `nimbus:<vault id>` source in /proc/self/mountinfo), clearing a drive
//! whose process died, and asking the kernel to unmount (`fusermount3`).

use std::path::{Path, PathBuf};

/// Why a drive could not be unmounted.
#[derive(Debug, thiserror::Error)]
pub enum UnmountError {
    #[error("cannot run fusermount3 or umount ({0}); install the fuse3 package")]
    NoTool(std::io::Error),
    #[error(
        "{} could not be unmounted: {why}. Programs still have files open there (see `fuser -m {}`)",
        .mp.display(),
        .mp.display()
    )]
    Refused { mp: PathBuf, why: String },
}

/// Whether `mp` is a mounted Nimbus drive (from /proc/self/mountinfo).
pub fn is_nimbus_mount(mp: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = mp.to_string_lossy();
    info.lines().any(|l| {
        let fields: Vec<&str> = l.split(' ').collect();
        let Some(sep) = fields.iter().position(|f| *f == "-") else {
            return false;
        };
        // The type is `fuse` or `fuse.nimbus` (the subtype is not always
        // passed on); the source is always `nimbus:<vault id>`.
        fields.get(4).map(|p| unescape(p) == want).unwrap_or(false)
            && fields.get(sep + 1).map(|t| t.starts_with("fuse")).unwrap_or(false)
            && fields.get(sep + 2).map(|s| s.starts_with("nimbus:")).unwrap_or(false)
    })
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && b[i + 1..].len() >= 3 {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 4], 8) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Clears away a drive whose process died (a crash, `kill -9`): the folder
/// then answers ENOTCONN until it is unmounted. True when one was cleared.
/// Only a Nimbus drive: a dead mount of another program at that folder is
/// that program's to clear, and might hold its user's work (review L14).
pub fn clear_stale(mp: &Path) -> bool {
    if !is_nimbus_mount(mp) {
        return false;
    }
    match std::fs::metadata(mp) {
        Err(e) if e.raw_os_error() == Some(libc_enotconn()) => {
            let _ = std::process::Command::new("fusermount3")
                .arg("-u")
                .arg("-z")
                .arg(mp)
                .status();
            true
        }
        _ => false,
    }
}

fn libc_enotconn() -> i32 {
    libc::ENOTCONN
}

/// Asks the kernel to unmount the drive (its session then ends). Fails
/// while programs have files open there, unless `lazy` (the drive then
/// goes away once they close them).
pub fn unmount(mp: &Path, lazy: bool) -> Result<(), UnmountError> {
    let mut cmd = std::process::Command::new("fusermount3");
    cmd.arg("-u");
    if lazy {
        cmd.arg("-z");
    }
    let out = cmd
        .arg(mp)
        .output()
        .or_else(|_| std::process::Command::new("umount").arg(mp).output())
        .map_err(UnmountError::NoTool)?;
    if !out.status.success() {
        return Err(UnmountError::Refused {
            mp: mp.to_path_buf(),
            why: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    /// A dead FUSE mount of another program (its /dev/fuse closed, so the
    /// folder answers ENOTCONN, as after a crash) is left alone.
    #[cfg(target_os = "linux")]
    #[test]
    fn clear_stale_leaves_other_programs_mounts_alone() {
        if !rustix::process::getuid().is_root() {
            // Mounting needs root; CI runs this as root.
            eprintln!("skipped: needs root to mount");
            return;
        }
        let tmp = tempfile::tempdir().expect("tempdir");
        let mp = tmp.path().join("other");
        std::fs::create_dir(&mp).expect("mkdir");
        {
            use std::os::fd::AsRawFd;
            let dev = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/fuse")
                .expect("/dev/fuse");
            let data = std::ffi::CString::new(format!("fd={},rootmode=40000,user_id=0,group_id=0", dev.as_raw_fd()))
                .expect("no NUL");
            rustix::mount::mount(
                "other-program",
                &mp,
                "fuse.other",
                rustix::mount::MountFlags::empty(),
                Some(data.as_c_str()),
            )
            .expect("mount");
            // `dev` closes here: the mount is dead.
        }
        let dead = std::fs::metadata(&mp).err().and_then(|e| e.raw_os_error());
        assert_eq!(dead, Some(super::libc_enotconn()), "not a dead mount");
        let cleared = super::clear_stale(&mp);
        let still = std::fs::read_to_string("/proc/self/mountinfo")
            .expect("mountinfo")
            .contains(&*mp.to_string_lossy());
        let _ = rustix::mount::unmount(&mp, rustix::mount::UnmountFlags::DETACH);
        assert!(!cleared && still, "another program's mount was unmounted");
    }

    #[test]
    fn unescapes_mountinfo() {
        assert_eq!(super::unescape(r"/a\040b"), "/a b");
        assert_eq!(super::unescape(r"/a\\"), r"/a\\");
        assert_eq!(super::unescape(r"x\"), r"x\");
    }
}

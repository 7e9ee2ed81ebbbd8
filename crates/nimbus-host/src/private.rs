//! Keeps what `nimbus` and `nimbusd` leave on this computer private to the
//! user, whatever the shell or the program that started them (review M6).
//!
//! Only the systemd unit set `UMask=0077` and `LimitCORE=0`; the app, a
//! terminal and `nimbus mount` started the same programs without them. So
//! each process sets them itself, first thing:
//! - umask 077: every folder and file it makes (state, staging, cache,
//!   logs, a local-folder vault and its `config`) is the user's alone;
//! - no core dump (`RLIMIT_CORE` 0, soft and hard, inherited by children)
//!   and not dumpable (`PR_SET_DUMPABLE` 0, which also keeps other
//!   processes of the same user from attaching a debugger): a crash must
//!   not write keys and passwords from memory to disk.

/// Which of the settings could not be made.
#[derive(Debug, thiserror::Error)]
pub enum HardenError {
    #[error("cannot turn core dumps off: {0}")]
    CoreDumps(rustix::io::Errno),
    #[error("cannot mark the process as not dumpable: {0}")]
    Dumpable(rustix::io::Errno),
}

/// Sets the three. A failure (a kernel without `prctl`) is not a reason
/// not to run; it is returned so the caller can say so.
pub fn harden() -> Result<(), HardenError> {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    let no_core = rustix::process::Rlimit {
        current: Some(0),
        maximum: Some(0),
    };
    rustix::process::setrlimit(rustix::process::Resource::Core, no_core).map_err(HardenError::CoreDumps)?;
    #[cfg(any(target_os = "linux", target_os = "android"))]
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
        .map_err(HardenError::Dumpable)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    // The process-wide settings are checked in a process of their own
    // (nextest runs each test in one), here and through the real binaries
    // in tests/drive/device.sh.
    #[test]
    fn harden_sets_umask_core_limit_and_dumpable() {
        super::harden().expect("harden");
        let old = rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
        assert_eq!(old.as_raw_mode() & 0o777, 0o077);
        let l = rustix::process::getrlimit(rustix::process::Resource::Core);
        assert_eq!((l.current, l.maximum), (Some(0), Some(0)));
        #[cfg(target_os = "linux")]
        assert_eq!(
            rustix::process::dumpable_behavior().expect("prctl"),
            rustix::process::DumpableBehavior::NotDumpable
        );
    }
}

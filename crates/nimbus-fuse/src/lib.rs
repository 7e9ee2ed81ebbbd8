//! The FUSE adapter of the Nimbus drive (Linux, macOS): mounts a
//! [`nimbus_fs::Fs`] with `fuser`.
//!
//! **Architecture invariant:** this crate translates and nothing more.
//! Kernel requests become `Fs` calls, core attributes become `FileAttr`s,
//! and core errors become errno values through one table (`errno.rs`). Any
//! behaviour belongs in `nimbus-fs`, where it is tested without a mount.
//!
//! On other systems (Windows mounts through WinFsp) this crate is empty.

#[cfg(unix)]
mod errno;
#[cfg(unix)]
mod filesystem;
#[cfg(unix)]
mod kernel;
#[cfg(unix)]
pub mod mounts;
#[cfg(unix)]
mod pool;

use std::time::Duration;

/// How the drive is mounted.
#[derive(Debug, Clone)]
pub struct MountOptions {
    /// Let other users than the one mounting use the drive (`allow_other`;
    /// needs root or `user_allow_other` in `/etc/fuse.conf`).
    pub allow_other: bool,
    /// The kernel refuses every change.
    pub read_only: bool,
    /// Kernel requests handled at once (Linux; one elsewhere).
    pub threads: usize,
    /// How long the kernel may trust attributes and names it was given.
    pub attr_ttl: Duration,
    /// Let the kernel gather writes in its page cache before sending them
    /// (it then keeps files' sizes and times itself, and sends them on).
    pub writeback_cache: bool,
    /// The source shown by `mount` and `df`.
    pub fs_name: String,
}

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions {
            allow_other: false,
            read_only: false,
            threads: 8,
            attr_ttl: Duration::from_secs(1),
            writeback_cache: true,
            fs_name: "nimbus".into(),
        }
    }
}

#[cfg(unix)]
pub use fuser::BackgroundSession;
#[cfg(unix)]
pub use unix::{mount, mount_foreground, mount_slot};

#[cfg(unix)]
mod unix {
    use fuser::{BackgroundSession, Config, MountOption, SessionACL};
    use nimbus_fs::{Ctx, Fs, Slot};
    use std::io;
    use std::path::Path;
    use std::sync::Arc;

    use super::MountOptions;
    use crate::filesystem::NimbusFuse;
    use crate::kernel::FuseKernelCache;

    /// Mounts the drive at `mountpoint` and serves it from background
    /// threads until the returned session is dropped or unmounted
    /// (`umount_and_join`). Errors are the mount's own (no FUSE, not
    /// permitted, no such folder); the caller names the mount point.
    pub fn mount(fs: Arc<Fs>, mountpoint: &Path, opts: &MountOptions) -> io::Result<BackgroundSession> {
        mount_slot(Slot::new(Some(fs), Ctx::ROOT), mountpoint, opts)
    }

    /// Mounts a drive that can be locked and unlocked while mounted: the
    /// adapter serves whatever `Fs` the slot holds, and answers every
    /// request as locked while it holds none.
    ///
    /// The slot gets the mount's kernel caches (`FuseKernelCache`), so the
    /// drive in it, and each one put in later, can invalidate what the
    /// kernel holds.
    pub fn mount_slot(slot: Arc<Slot>, mountpoint: &Path, opts: &MountOptions) -> io::Result<BackgroundSession> {
        let session = fuser::Session::new(NimbusFuse::new(slot.clone(), opts)?, mountpoint, &config(opts))?;
        // Before the first request is served, so nothing the kernel is
        // given escapes an invalidation.
        slot.set_kernel_cache(Arc::new(FuseKernelCache::start(session.notifier())?));
        session.spawn()
    }

    /// Mounts the drive at `mountpoint` and serves it on this thread until
    /// it is unmounted (`umount`, `fusermount3 -u`).
    pub fn mount_foreground(fs: Arc<Fs>, mountpoint: &Path, opts: &MountOptions) -> io::Result<()> {
        let slot = Slot::new(Some(fs), Ctx::ROOT);
        let session = fuser::Session::new(NimbusFuse::new(slot.clone(), opts)?, mountpoint, &config(opts))?;
        slot.set_kernel_cache(Arc::new(FuseKernelCache::start(session.notifier())?));
        session.run()
    }

    fn config(opts: &MountOptions) -> Config {
        let mut options = vec![
            MountOption::FSName(opts.fs_name.clone()),
            MountOption::Subtype("nimbus".into()),
            // The core does not check permissions; the kernel does, from
            // the mode bits.
            MountOption::DefaultPermissions,
            // Set-id bits, file capabilities and device nodes come from the
            // vault, which any key holder writes: never honour them, even
            // when root mounts (review L8). fusermount3 adds these for
            // users; root's mount needs them said.
            MountOption::NoSuid,
            MountOption::NoDev,
        ];
        if opts.read_only {
            options.push(MountOption::RO);
        }
        // Not AutoUnmount, although allow_other would permit it: fuser 0.18
        // then unmounts by closing fusermount3's socket, and fusermount3
        // unmounts only a drive that no longer answers, so
        // `umount_and_join` waits forever (libfuse#1529). Without it, a
        // crashed process leaves a dead mount for `fusermount3 -u`.
        let mut config = Config::default();
        config.mount_options = options;
        config.acl = if opts.allow_other {
            SessionACL::All
        } else {
            SessionACL::Owner
        };
        // Each worker thread reads its own clone of /dev/fuse, so several
        // requests are in the core at once. fuser runs one thread elsewhere.
        if cfg!(target_os = "linux") {
            config.n_threads = Some(opts.threads.max(1));
            config.clone_fd = true;
        } else {
            config.n_threads = Some(1);
        }
        config
    }
}

//! `fuser::Filesystem` over [`Fs`]: each kernel request becomes one core
//! call, and its result one reply. Translation only; the semantics, the
//! `.snapshots` folder included, are the core's.
//!
//! Handlers run on fuser's worker threads, several at once. The core is
//! thread-safe and blocks only the thread that calls it. Requests that may
//! wait for the store or the disk (reads of data not on this device,
//! fsync, anything in `.snapshots`) are handed to a pool of their own
//! (`pool.rs`) and answered from there; the others call the core directly
//! and reply before returning.

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, InitFlags, KernelConfig,
    LockOwner, OpenFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty,
    ReplyEntry, ReplyLseek, ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};
use nimbus_fs::Snapshots;
use nimbus_fs::{Attr, Ctx, Fallocate, Fs, RenameFlags, SetAttr, SetTime, Slot, XattrMode, ROOT};
use nimbus_vault::{EntryKind, Timestamp};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::errno::fail;
use crate::pool::Pool;
use crate::MountOptions;

/// Folder entries asked of the core per `readdir`; about what fits in the
/// kernel's 4 KiB listing buffer. The rest comes with the next request.
const READDIR_BATCH: usize = 128;

/// `fallocate` modes of `linux/falloc.h` (libc defines them only on Linux).
const FALLOC_FL_KEEP_SIZE: i32 = 0x01;
const FALLOC_FL_PUNCH_HOLE: i32 = 0x02;
const FALLOC_FL_ZERO_RANGE: i32 = 0x10;

/// Threads for requests that may wait (see `pool.rs`).
const WAITING_THREADS: usize = 16;

pub(crate) struct NimbusFuse {
    slot: Arc<Slot>,
    ttl: Duration,
    writeback_cache: bool,
    pool: Pool,
}

impl NimbusFuse {
    pub(crate) fn new(slot: Arc<Slot>, opts: &MountOptions) -> std::io::Result<NimbusFuse> {
        Ok(NimbusFuse {
            slot,
            ttl: opts.attr_ttl,
            writeback_cache: opts.writeback_cache,
            pool: Pool::new(WAITING_THREADS)?,
        })
    }

    /// Runs `job` here, or on the pool when it `may_wait` for the store or
    /// the disk, so this thread goes on reading requests meanwhile.
    fn dispatch(&self, fs: Arc<Fs>, may_wait: bool, job: impl FnOnce(&Fs) + Send + 'static) {
        if may_wait {
            self.pool.run(move || job(&fs));
        } else {
            job(&fs);
        }
    }
}

/// The unlocked drive, or else the request is answered as locked.
macro_rules! fs_or {
    ($self:ident, $op:literal, $reply:ident) => {
        match $self.slot.get() {
            Ok(fs) => fs,
            Err(e) => return $reply.error(fail($op, e)),
        }
    };
}

/// Replies with an entry, which the kernel then holds until it forgets it
/// (see `Fs::remember`).
fn entry(fs: &Fs, ttl: Duration, op: &str, res: nimbus_fs::Result<Attr>, reply: ReplyEntry) {
    match res {
        Ok(a) => {
            fs.remember(a.ino);
            reply.entry(&ttl, &attr(&a), Generation(0))
        }
        Err(e) => reply.error(fail(op, e)),
    }
}

fn empty(op: &str, res: nimbus_fs::Result<()>, reply: ReplyEmpty) {
    match res {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(fail(op, e)),
    }
}

/// The owner of what a request creates.
fn ctx(req: &Request) -> Ctx {
    Ctx {
        uid: req.uid(),
        gid: req.gid(),
    }
}

fn file_type(k: EntryKind) -> FileType {
    match k {
        EntryKind::File => FileType::RegularFile,
        EntryKind::Dir => FileType::Directory,
        EntryKind::Symlink => FileType::Symlink,
        EntryKind::Fifo => FileType::NamedPipe,
        EntryKind::CharDevice => FileType::CharDevice,
        EntryKind::BlockDevice => FileType::BlockDevice,
        EntryKind::Socket => FileType::Socket,
    }
}

/// Core attributes as the kernel wants them.
pub(crate) fn attr(a: &Attr) -> FileAttr {
    FileAttr {
        ino: INodeNo(a.ino),
        size: a.size,
        blocks: a.blocks,
        atime: a.atime.to_system(),
        mtime: a.mtime.to_system(),
        ctime: a.ctime.to_system(),
        // The core keeps no birth time; macOS shows this one.
        crtime: a.mtime.to_system(),
        kind: file_type(a.kind),
        perm: (a.perm & 0o7777) as u16,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        rdev: a.rdev as u32,
        blksize: 4096,
        flags: 0,
    }
}

fn set_time(t: TimeOrNow) -> SetTime {
    match t {
        TimeOrNow::Now => SetTime::Now,
        TimeOrNow::SpecificTime(t) => SetTime::At(Timestamp::from_system(t)),
    }
}

/// The core's kind for `mknod`'s file type bits.
fn node_kind(mode: u32) -> Option<EntryKind> {
    // mode_t is u16 on macOS; the file type bits fit.
    match mode as libc::mode_t & libc::S_IFMT {
        libc::S_IFREG => Some(EntryKind::File),
        libc::S_IFIFO => Some(EntryKind::Fifo),
        libc::S_IFCHR => Some(EntryKind::CharDevice),
        libc::S_IFBLK => Some(EntryKind::BlockDevice),
        libc::S_IFSOCK => Some(EntryKind::Socket),
        _ => None,
    }
}

/// `renameat2` flags; `None` for whiteouts (overlayfs only) or unknown bits.
#[cfg(target_os = "linux")]
fn rename_flags(flags: fuser::RenameFlags) -> Option<RenameFlags> {
    use fuser::RenameFlags as F;
    if !(F::RENAME_NOREPLACE | F::RENAME_EXCHANGE).contains(flags) {
        return None;
    }
    Some(RenameFlags {
        noreplace: flags.contains(F::RENAME_NOREPLACE),
        exchange: flags.contains(F::RENAME_EXCHANGE),
    })
}

#[cfg(not(target_os = "linux"))]
fn rename_flags(flags: fuser::RenameFlags) -> Option<RenameFlags> {
    flags.is_empty().then(RenameFlags::default)
}

/// `setxattr` flags (other bits, such as macOS's `XATTR_NOSECURITY`, do
/// not change what is stored).
fn xattr_mode(flags: i32) -> Option<XattrMode> {
    // The BSDs have no such flags (their kernel sends 0); Linux's values are
    // the protocol's there.
    #[cfg(any(target_os = "linux", target_os = "macos"))]
    use libc::{XATTR_CREATE, XATTR_REPLACE};
    #[cfg(not(any(target_os = "linux", target_os = "macos")))]
    const XATTR_CREATE: i32 = 1;
    #[cfg(not(any(target_os = "linux", target_os = "macos")))]
    const XATTR_REPLACE: i32 = 2;
    match (flags & XATTR_CREATE != 0, flags & XATTR_REPLACE != 0) {
        (false, false) => Some(XattrMode::Any),
        (true, false) => Some(XattrMode::Create),
        (false, true) => Some(XattrMode::Replace),
        (true, true) => None,
    }
}

/// The xattr size protocol: size 0 asks for the length; a smaller buffer
/// than the value is `ERANGE`.
fn xattr_reply(value: &[u8], size: u32, reply: ReplyXattr) {
    match u32::try_from(value.len()) {
        Ok(len) if size == 0 => reply.size(len),
        Ok(len) if len <= size => reply.data(value),
        _ => reply.error(Errno::ERANGE),
    }
}

/// The core's mode for `fallocate`'s flags; `None` for collapsing,
/// inserting or unsharing ranges, which the drive does not offer.
fn fallocate_mode(mode: i32) -> Option<Fallocate> {
    let keep_size = mode & FALLOC_FL_KEEP_SIZE != 0;
    match mode & !FALLOC_FL_KEEP_SIZE {
        0 => Some(Fallocate::Allocate { keep_size }),
        // Linux refuses a punch without KEEP_SIZE before it gets here.
        FALLOC_FL_PUNCH_HOLE if keep_size => Some(Fallocate::PunchHole),
        FALLOC_FL_ZERO_RANGE => Some(Fallocate::ZeroRange { keep_size }),
        _ => None,
    }
}

impl Filesystem for NimbusFuse {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        // Refusals leave the kernel's own limits and features, which work.
        let _ = config.set_max_write(1 << 20);
        let _ = config.set_max_readahead(1 << 20);
        let mut want = InitFlags::FUSE_ASYNC_READ
            | InitFlags::FUSE_BIG_WRITES
            | InitFlags::FUSE_MAX_PAGES
            | InitFlags::FUSE_PARALLEL_DIROPS
            | InitFlags::FUSE_DO_READDIRPLUS
            | InitFlags::FUSE_READDIRPLUS_AUTO
            | InitFlags::FUSE_ATOMIC_O_TRUNC;
        // The core is the only writer, so the kernel may keep written pages.
        // Not FUSE_HANDLE_KILLPRIV: the kernel clears set-id bits itself, by
        // a setattr, because the core does not on write. Not FUSE_POSIX_ACL:
        // the drive keeps no ACLs (the core refuses their attributes, so
        // copying tools fall back to chmod; see docs/SEMANTICS.md).
        if self.writeback_cache {
            want |= InitFlags::FUSE_WRITEBACK_CACHE;
        }
        for flag in want.iter() {
            let _ = config.add_capabilities(flag);
        }
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let fs = fs_or!(self, "lookup", reply);
        let ttl = self.ttl;
        let name = name.as_bytes().to_vec();
        let snap = Snapshots::owns(parent.0) || Snapshots::holds(parent.0, &name);
        self.dispatch(fs, snap, move |fs| {
            entry(fs, ttl, "lookup", fs.lookup(parent.0, &name), reply)
        });
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        // A locked drive has no `Fs`; the references die with the one
        // that was taken out of the slot.
        if let Some(fs) = self.slot.peek() {
            if let Err(e) = fs.forget(ino.0, nlookup) {
                // No reply to send; `fail` logs what hides behind EIO.
                let _ = fail("forget", e);
            }
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let ttl = self.ttl;
        if ino.0 == ROOT && self.slot.is_locked() {
            // A locked drive is still a folder (see `nimbus_fs::slot`).
            return reply.attr(&ttl, &attr(&self.slot.locked_root()));
        }
        let fs = fs_or!(self, "getattr", reply);
        self.dispatch(fs, Snapshots::owns(ino.0), move |fs| match fs.getattr(ino.0) {
            Ok(a) => reply.attr(&ttl, &attr(&a)),
            Err(e) => reply.error(fail("getattr", e)),
        });
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        ctime: Option<SystemTime>,
        // The core changes a file's size through its inode, whichever
        // handle (if any) asked.
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let fs = fs_or!(self, "setattr", reply);
        let set = SetAttr {
            mode,
            uid,
            gid,
            size,
            atime: atime.map(set_time),
            mtime: mtime.map(set_time),
            ctime: ctime.map(Timestamp::from_system),
        };
        match fs.setattr(ino.0, &set) {
            Ok(a) => reply.attr(&self.ttl, &attr(&a)),
            Err(e) => reply.error(fail("setattr", e)),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let fs = fs_or!(self, "readlink", reply);
        match fs.readlink(ino.0) {
            Ok(target) => reply.data(&target),
            Err(e) => reply.error(fail("readlink", e)),
        }
    }

    fn mknod(&self, req: &Request, parent: INodeNo, name: &OsStr, mode: u32, umask: u32, rdev: u32, reply: ReplyEntry) {
        let fs = fs_or!(self, "mknod", reply);
        let Some(kind) = node_kind(mode) else {
            return reply.error(Errno::EINVAL);
        };
        let res = fs.mknod(
            ctx(req),
            parent.0,
            name.as_bytes(),
            kind,
            mode & !umask,
            u64::from(rdev),
        );
        entry(&fs, self.ttl, "mknod", res, reply);
    }

    fn mkdir(&self, req: &Request, parent: INodeNo, name: &OsStr, mode: u32, umask: u32, reply: ReplyEntry) {
        let fs = fs_or!(self, "mkdir", reply);
        let res = fs.mkdir(ctx(req), parent.0, name.as_bytes(), mode & !umask);
        entry(&fs, self.ttl, "mkdir", res, reply);
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let fs = fs_or!(self, "unlink", reply);
        empty("unlink", fs.unlink(parent.0, name.as_bytes()), reply);
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let fs = fs_or!(self, "rmdir", reply);
        empty("rmdir", fs.rmdir(parent.0, name.as_bytes()), reply);
    }

    fn symlink(&self, req: &Request, parent: INodeNo, link_name: &OsStr, target: &Path, reply: ReplyEntry) {
        let fs = fs_or!(self, "symlink", reply);
        let res = fs.symlink(ctx(req), parent.0, link_name.as_bytes(), target.as_os_str().as_bytes());
        entry(&fs, self.ttl, "symlink", res, reply);
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: fuser::RenameFlags,
        reply: ReplyEmpty,
    ) {
        let Some(flags) = rename_flags(flags) else {
            return reply.error(Errno::EINVAL);
        };
        let fs = fs_or!(self, "rename", reply);
        let res = fs.rename(parent.0, name.as_bytes(), newparent.0, newname.as_bytes(), flags);
        empty("rename", res, reply);
    }

    fn link(&self, _req: &Request, ino: INodeNo, newparent: INodeNo, newname: &OsStr, reply: ReplyEntry) {
        let fs = fs_or!(self, "link", reply);
        let res = fs.link(ino.0, newparent.0, newname.as_bytes());
        entry(&fs, self.ttl, "link", res, reply);
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let fs = fs_or!(self, "open", reply);
        // Only this process writes the drive, so cached pages stay valid
        // from one open to the next.
        let truncate = flags.0 & libc::O_TRUNC != 0;
        let cached = self.writeback_cache;
        self.dispatch(fs, Snapshots::owns(ino.0), move |fs| {
            let opened = if cached {
                fs.open_cached(ino.0, truncate)
            } else {
                fs.open(ino.0, truncate)
            };
            match opened {
                Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::FOPEN_KEEP_CACHE),
                Err(e) => reply.error(fail("open", e)),
            }
        });
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let fs = fs_or!(self, "read", reply);
        let may_wait = !fs.read_is_local(fh.0, offset, size);
        self.dispatch(fs, may_wait, move |fs| match fs.read(fh.0, offset, size) {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(fail("read", e)),
        });
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let fs = fs_or!(self, "write", reply);
        // From the write-back cache, the kernel owns the file's times.
        let res = if write_flags.contains(WriteFlags::FUSE_WRITE_CACHE) {
            fs.write_cached(fh.0, offset, data)
        } else {
            fs.write(fh.0, offset, data)
        };
        match res {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(fail("write", e)),
        }
    }

    fn flush(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _lock_owner: LockOwner, reply: ReplyEmpty) {
        // Writes are in the core when they return; close has nothing to add.
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        let fs = fs_or!(self, "release", reply);
        empty("release", fs.release(fh.0), reply);
    }

    fn fsync(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        let fs = fs_or!(self, "fsync", reply);
        self.dispatch(fs, true, move |fs| empty("fsync", fs.fsync(ino.0), reply));
    }

    fn opendir(&self, _req: &Request, _ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        // Listings are stateless: each entry's cookie says where to go on.
        reply.opened(FileHandle(0), FopenFlags::empty());
    }

    fn readdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        let fs = fs_or!(self, "readdir", reply);
        self.dispatch(fs, Snapshots::owns(ino.0), move |fs| {
            match fs.readdir(ino.0, offset, READDIR_BATCH) {
                Ok(entries) => {
                    for e in entries {
                        if reply.add(INodeNo(e.ino), e.cookie, file_type(e.kind), OsStr::from_bytes(&e.name)) {
                            break;
                        }
                    }
                    reply.ok();
                }
                Err(e) => reply.error(fail("readdir", e)),
            }
        });
    }

    fn readdirplus(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, offset: u64, mut reply: ReplyDirectoryPlus) {
        let fs = fs_or!(self, "readdirplus", reply);
        let ttl = self.ttl;
        self.dispatch(fs, Snapshots::owns(ino.0), move |fs| {
            match fs.readdir_plus(ino.0, offset, READDIR_BATCH) {
                Ok(entries) => {
                    for (e, a) in entries {
                        let name = OsStr::from_bytes(&e.name);
                        if reply.add(INodeNo(e.ino), e.cookie, name, &ttl, &attr(&a), Generation(0)) {
                            break;
                        }
                        // The kernel holds every entry but `.` and `..`.
                        if e.name != b"." && e.name != b".." {
                            fs.remember(e.ino);
                        }
                    }
                    reply.ok();
                }
                Err(e) => reply.error(fail("readdirplus", e)),
            }
        });
    }

    fn releasedir(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _flags: OpenFlags, reply: ReplyEmpty) {
        reply.ok();
    }

    fn fsyncdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        let fs = fs_or!(self, "fsyncdir", reply);
        self.dispatch(fs, true, move |fs| empty("fsyncdir", fs.fsyncdir(ino.0), reply));
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        // Not counted as use: file managers and `df` poll it, and must not
        // keep a drive from locking itself.
        let Some(fs) = self.slot.peek() else {
            // Locked: an empty drive, so `df` and file managers go on.
            return reply.statfs(0, 0, 0, 0, 0, 4096, 255, 4096);
        };
        match fs.statfs() {
            Ok(s) => reply.statfs(
                s.blocks, s.bfree, s.bavail, s.files, s.ffree, s.bsize, s.namelen, s.bsize,
            ),
            Err(e) => reply.error(fail("statfs", e)),
        }
    }

    fn setxattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        position: u32,
        reply: ReplyEmpty,
    ) {
        let fs = fs_or!(self, "setxattr", reply);
        // `position` is for macOS resource forks, which the drive does not
        // keep; Linux always sends 0.
        let Some(mode) = xattr_mode(flags).filter(|_| position == 0) else {
            return reply.error(Errno::EINVAL);
        };
        empty("setxattr", fs.setxattr(ino.0, name.as_bytes(), value, mode), reply);
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        let fs = fs_or!(self, "getxattr", reply);
        match fs.getxattr(ino.0, name.as_bytes()) {
            Ok(value) => xattr_reply(&value, size, reply),
            Err(e) => reply.error(fail("getxattr", e)),
        }
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let fs = fs_or!(self, "listxattr", reply);
        match fs.listxattr(ino.0) {
            Ok(names) => {
                let mut list = Vec::with_capacity(names.iter().map(|n| n.len() + 1).sum());
                for n in names {
                    list.extend_from_slice(&n);
                    list.push(0);
                }
                xattr_reply(&list, size, reply);
            }
            Err(e) => reply.error(fail("listxattr", e)),
        }
    }

    fn removexattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let fs = fs_or!(self, "removexattr", reply);
        empty("removexattr", fs.removexattr(ino.0, name.as_bytes()), reply);
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: fuser::AccessFlags, reply: ReplyEmpty) {
        // Mounted with default_permissions: the kernel checks the mode bits.
        reply.ok();
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        // O_EXCL is the kernel's to check, and a new file has nothing to
        // truncate.
        _flags: i32,
        reply: ReplyCreate,
    ) {
        let fs = fs_or!(self, "create", reply);
        match fs.create(ctx(req), parent.0, name.as_bytes(), mode & !umask) {
            Ok((a, fh)) => {
                fs.remember(a.ino);
                reply.created(
                    &self.ttl,
                    &attr(&a),
                    Generation(0),
                    FileHandle(fh),
                    FopenFlags::FOPEN_KEEP_CACHE,
                )
            }
            Err(e) => reply.error(fail("create", e)),
        }
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let fs = fs_or!(self, "fallocate", reply);
        let Some(mode) = fallocate_mode(mode) else {
            return reply.error(Errno::EOPNOTSUPP);
        };
        let res = if self.writeback_cache {
            fs.fallocate_cached(ino.0, offset, length, mode)
        } else {
            fs.fallocate(ino.0, offset, length, mode)
        };
        empty("fallocate", res, reply);
    }

    fn lseek(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _offset: i64, _whence: i32, reply: ReplyLseek) {
        // The core tracks no holes; ENOSYS makes the kernel answer
        // SEEK_DATA and SEEK_HOLE itself from then on.
        reply.error(Errno::ENOSYS);
    }

    // No ioctl is supported: ENOTTY is what a file system answers for a
    // request it does not know (programs such as `cp` and `lsattr` probe
    // with them and carry on), and answering here keeps fuser from logging
    // a warning for each one.
    fn ioctl(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: fuser::IoctlFlags,
        _cmd: u32,
        _in_data: &[u8],
        _out_size: u32,
        reply: fuser::ReplyIoctl,
    ) {
        reply.error(Errno::ENOTTY);
    }

    fn copy_file_range(
        &self,
        _req: &Request,
        _ino_in: INodeNo,
        _fh_in: FileHandle,
        _offset_in: u64,
        _ino_out: INodeNo,
        _fh_out: FileHandle,
        _offset_out: u64,
        _len: u64,
        _flags: fuser::CopyFileRangeFlags,
        reply: ReplyWrite,
    ) {
        // ENOSYS: the kernel copies through read and write from then on.
        reply.error(Errno::ENOSYS);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mknod_kinds() {
        assert_eq!(node_kind(0o100644), Some(EntryKind::File));
        assert_eq!(node_kind(0o010600), Some(EntryKind::Fifo));
        assert_eq!(node_kind(0o020000), Some(EntryKind::CharDevice));
        assert_eq!(node_kind(0o060000), Some(EntryKind::BlockDevice));
        assert_eq!(node_kind(0o140777), Some(EntryKind::Socket));
        assert_eq!(node_kind(0o040755), None);
        assert_eq!(node_kind(0o120777), None);
    }

    #[cfg(any(target_os = "linux", target_os = "macos"))]
    #[test]
    fn xattr_flags() {
        assert_eq!(xattr_mode(0), Some(XattrMode::Any));
        assert_eq!(xattr_mode(libc::XATTR_CREATE), Some(XattrMode::Create));
        assert_eq!(xattr_mode(libc::XATTR_REPLACE), Some(XattrMode::Replace));
        assert_eq!(xattr_mode(libc::XATTR_CREATE | libc::XATTR_REPLACE), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn rename_whiteout_is_refused() {
        use fuser::RenameFlags as F;
        assert_eq!(rename_flags(F::empty()), Some(RenameFlags::default()));
        let noreplace = rename_flags(F::RENAME_NOREPLACE).map(|f| (f.noreplace, f.exchange));
        assert_eq!(noreplace, Some((true, false)));
        let exchange = rename_flags(F::RENAME_EXCHANGE).map(|f| (f.noreplace, f.exchange));
        assert_eq!(exchange, Some((false, true)));
        assert_eq!(rename_flags(F::RENAME_WHITEOUT), None);
    }

    #[test]
    fn attr_translates_every_field() {
        let t = Timestamp {
            secs: 1_700_000_000,
            nanos: 5,
        };
        let a = Attr {
            ino: 42,
            kind: EntryKind::Symlink,
            size: 7,
            blocks: 1,
            perm: 0o4755,
            nlink: 3,
            uid: 1000,
            gid: 100,
            rdev: 0x0801,
            atime: t,
            mtime: Timestamp { secs: 1, nanos: 0 },
            ctime: t,
        };
        let f = attr(&a);
        assert_eq!(
            (f.ino, f.size, f.blocks, f.kind),
            (INodeNo(42), 7, 1, FileType::Symlink)
        );
        assert_eq!((f.perm, f.nlink, f.uid, f.gid, f.rdev), (0o4755, 3, 1000, 100, 0x0801));
        assert_eq!((f.atime, f.ctime), (t.to_system(), t.to_system()));
        assert_eq!((f.mtime, f.crtime), (a.mtime.to_system(), a.mtime.to_system()));
        assert_eq!((f.blksize, f.flags), (4096, 0));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn fallocate_flags_are_linux_values() {
        assert_eq!(FALLOC_FL_KEEP_SIZE, libc::FALLOC_FL_KEEP_SIZE);
        assert_eq!(FALLOC_FL_PUNCH_HOLE, libc::FALLOC_FL_PUNCH_HOLE);
        assert_eq!(FALLOC_FL_ZERO_RANGE, libc::FALLOC_FL_ZERO_RANGE);
    }

    #[test]
    fn fallocate_modes() {
        let keep = FALLOC_FL_KEEP_SIZE;
        assert_eq!(fallocate_mode(0), Some(Fallocate::Allocate { keep_size: false }));
        assert_eq!(fallocate_mode(keep), Some(Fallocate::Allocate { keep_size: true }));
        assert_eq!(fallocate_mode(FALLOC_FL_PUNCH_HOLE | keep), Some(Fallocate::PunchHole));
        assert_eq!(fallocate_mode(FALLOC_FL_PUNCH_HOLE), None);
        assert_eq!(
            fallocate_mode(FALLOC_FL_ZERO_RANGE),
            Some(Fallocate::ZeroRange { keep_size: false })
        );
        assert_eq!(
            fallocate_mode(FALLOC_FL_ZERO_RANGE | keep),
            Some(Fallocate::ZeroRange { keep_size: true })
        );
        // FALLOC_FL_COLLAPSE_RANGE, FALLOC_FL_INSERT_RANGE
        assert_eq!(fallocate_mode(0x08), None);
        assert_eq!(fallocate_mode(0x20), None);
    }
}

//! The sealed 4 KiB-slot file: blocks of a file encrypted one by one, at
//! their place. Staging (the changed blocks of a file, until they are
//! packed and uploaded) is one; the decoded-block cache (`decoded.rs`) is
//! the other.
//!
//! A sealed file is an array of slots, one per 4 KiB block:
//! `nonce (12) ‖ AES-256-GCM ciphertext (4096) ‖ tag (16)`. A slot of zeros
//! (a hole in the sparse file) means "not here": for staging, read the
//! stored content instead. The associated data binds each slot to its
//! file's random id and its block number, so slots cannot be moved
//! or swapped. Slots are written with one `pwrite` after their space is
//! allocated, so a full disk fails a write before it touches a slot; but
//! slots are not page aligned, so a write cut short by a crash can leave
//! one slot torn, which then fails authentication (docs/SEMANTICS.md says
//! what the drive does then).

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use std::fs::File;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

use crate::error::{ErrorKind, FsError, Result};

pub const BLOCK: usize = 4096;
const NONCE: usize = 12;
const TAG: usize = 16;
pub const SLOT: usize = NONCE + BLOCK + TAG;

/// The cipher of every sealed file of one kind (staging, or the decoded
/// cache) of one mount.
pub struct SlotKey(Aes256Gcm);

impl SlotKey {
    pub fn new(key: &Zeroizing<[u8; 32]>) -> Self {
        let k: &[u8; 32] = key;
        SlotKey(Aes256Gcm::new(k.into()))
    }
}

/// One open sealed file.
pub struct SealedFile {
    file: File,
    id: [u8; 16],
    path: PathBuf,
}

fn ad(id: &[u8; 16], block: u64) -> [u8; 40] {
    let mut a = [0u8; 40];
    a[..16].copy_from_slice(b"nimbus-staging/1");
    a[16..32].copy_from_slice(id);
    a[32..].copy_from_slice(&block.to_le_bytes());
    a
}

impl SealedFile {
    pub fn path_for(dir: &Path, id: &[u8; 16]) -> PathBuf {
        dir.join(hex::encode(id))
    }

    /// Opens (creating if needed) the staging file with this id.
    pub fn open(dir: &Path, id: [u8; 16]) -> Result<SealedFile> {
        Self::open_named(dir, &hex::encode(id), id)
    }

    /// Opens (creating if needed) a file of this format named `name`, its
    /// slots bound to `id` (the decoded-block cache names files by blob).
    pub fn open_named(dir: &Path, name: &str, id: [u8; 16]) -> Result<SealedFile> {
        let path = dir.join(name);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| FsError::io(format!("cannot open staging file {}", path.display()), e))?;
        Ok(SealedFile { file, id, path })
    }

    /// Opens an existing file of this format; `None` if there is none.
    pub fn open_existing(dir: &Path, name: &str, id: [u8; 16]) -> Result<Option<SealedFile>> {
        let path = dir.join(name);
        match std::fs::OpenOptions::new().read(true).open(&path) {
            Ok(file) => Ok(Some(SealedFile { file, id, path })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(FsError::io(format!("cannot open {}", path.display()), e)),
        }
    }

    pub fn id(&self) -> [u8; 16] {
        self.id
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads blocks `first..first+n` into `out` (n × BLOCK bytes). Returns,
    /// per block, whether it is staged; unstaged blocks are left untouched.
    pub fn read_blocks(&self, key: &SlotKey, first: u64, out: &mut [u8]) -> Result<Vec<bool>> {
        let n = out.len() / BLOCK;
        let mut raw = vec![0u8; n * SLOT];
        let got = read_full_at(&self.file, &mut raw, first * SLOT as u64)
            .map_err(|e| FsError::io(format!("cannot read staging file {}", self.path.display()), e))?;
        let mut present = vec![false; n];
        for (i, p) in present.iter_mut().enumerate() {
            let slot = &raw[i * SLOT..(i + 1) * SLOT];
            if (i + 1) * SLOT > got || slot[..NONCE].iter().all(|&b| b == 0) {
                continue;
            }
            let nonce: [u8; NONCE] = slot[..NONCE].try_into().unwrap_or([0; NONCE]);
            let tag: [u8; TAG] = slot[NONCE + BLOCK..].try_into().unwrap_or([0; TAG]);
            let dst = &mut out[i * BLOCK..(i + 1) * BLOCK];
            dst.copy_from_slice(&slot[NONCE..NONCE + BLOCK]);
            key.0
                .decrypt_inout_detached(
                    &Nonce::from(nonce),
                    &ad(&self.id, first + i as u64),
                    dst.into(),
                    &tag.into(),
                )
                .map_err(|_| {
                    FsError::new(
                        ErrorKind::Corrupt,
                        format!(
                            "block {} of staging file {} fails authentication (damaged on this disk, or \
                             torn by a crash in the middle of a write)",
                            first + i as u64,
                            self.path.display()
                        ),
                    )
                })?;
            *p = true;
        }
        Ok(present)
    }

    /// Encrypts and writes whole blocks starting at block `first`.
    pub fn write_blocks(&self, key: &SlotKey, first: u64, data: &[u8]) -> Result<()> {
        let raw = Self::seal_blocks(key, &self.id, first, data)?;
        self.write_sealed(first, &raw)
    }

    /// The slots of whole blocks `data` starting at block `first` of the
    /// staging file `id`, ready for [`SealedFile::write_sealed`]. Needs no
    /// open file, so writers can seal without holding the file's lock.
    pub fn seal_blocks(key: &SlotKey, id: &[u8; 16], first: u64, data: &[u8]) -> Result<Vec<u8>> {
        let n = data.len() / BLOCK;
        let mut raw = vec![0u8; n * SLOT];
        for i in 0..n {
            let slot = &mut raw[i * SLOT..(i + 1) * SLOT];
            let mut nonce: [u8; NONCE] = rand::random();
            if nonce.iter().all(|&b| b == 0) {
                nonce[0] = 1; // all zeros marks an empty slot
            }
            slot[..NONCE].copy_from_slice(&nonce);
            slot[NONCE..NONCE + BLOCK].copy_from_slice(&data[i * BLOCK..(i + 1) * BLOCK]);
            let tag = key
                .0
                .encrypt_inout_detached(
                    &Nonce::from(nonce),
                    &ad(id, first + i as u64),
                    (&mut slot[NONCE..NONCE + BLOCK]).into(),
                )
                .map_err(|_| FsError::new(ErrorKind::Io, "staging encryption failed"))?;
            slot[NONCE + BLOCK..].copy_from_slice(&tag);
        }
        Ok(raw)
    }

    /// Writes slots sealed by [`SealedFile::seal_blocks`] for this file.
    pub fn write_sealed(&self, first: u64, raw: &[u8]) -> Result<()> {
        // Space first: a full disk then fails the write before any byte of
        // it lands, rather than in the middle of a slot, which would leave
        // a block that no longer authenticates (slots are not page aligned).
        #[cfg(target_os = "linux")]
        match rustix::fs::fallocate(
            &self.file,
            rustix::fs::FallocateFlags::KEEP_SIZE,
            first * SLOT as u64,
            raw.len() as u64,
        ) {
            Err(e) if e == rustix::io::Errno::NOSPC || e == rustix::io::Errno::DQUOT => {
                return Err(FsError::io(
                    format!("cannot write staging file {}", self.path.display()),
                    e.into(),
                ));
            }
            // Not every file system preallocates; the write goes on anyway.
            _ => {}
        }
        write_all_at(&self.file, raw, first * SLOT as u64)
            .map_err(|e| FsError::io(format!("cannot write staging file {}", self.path.display()), e))
    }

    /// Drops every slot from block `blocks` on.
    pub fn truncate_blocks(&self, blocks: u64) -> Result<()> {
        let len = blocks * SLOT as u64;
        let cur = self
            .file
            .metadata()
            .map_err(|e| FsError::io(format!("cannot stat staging file {}", self.path.display()), e))?
            .len();
        if cur > len {
            self.file
                .set_len(len)
                .map_err(|e| FsError::io(format!("cannot truncate staging file {}", self.path.display()), e))?;
        }
        Ok(())
    }

    /// Makes the written slots durable.
    pub fn sync(&self) -> Result<()> {
        self.file
            .sync_data()
            .map_err(|e| FsError::io(format!("cannot sync staging file {}", self.path.display()), e))
    }
}

/// Bytes a file takes on disk (holes excluded where the OS tells).
pub fn disk_usage(m: &std::fs::Metadata) -> u64 {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        m.blocks() * 512
    }
    #[cfg(not(unix))]
    {
        m.len()
    }
}

#[cfg(unix)]
fn read_at(f: &File, buf: &mut [u8], off: u64) -> std::io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(f, buf, off)
}

#[cfg(windows)]
fn read_at(f: &File, buf: &mut [u8], off: u64) -> std::io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(f, buf, off)
}

#[cfg(unix)]
fn write_all_at(f: &File, buf: &[u8], off: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(f, buf, off)
}

#[cfg(windows)]
fn write_all_at(f: &File, mut buf: &[u8], mut off: u64) -> std::io::Result<()> {
    while !buf.is_empty() {
        let n = std::os::windows::fs::FileExt::seek_write(f, buf, off)?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        buf = &buf[n..];
        off += n as u64;
    }
    Ok(())
}

fn read_full_at(f: &File, buf: &mut [u8], off: u64) -> std::io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match read_at(f, &mut buf[done..], off + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_round_trip_and_are_bound_to_place() {
        let dir = tempfile::tempdir().unwrap();
        let key = SlotKey::new(&Zeroizing::new([7u8; 32]));
        let s = SealedFile::open(dir.path(), [1; 16]).unwrap();
        let mut data = vec![0u8; 2 * BLOCK];
        data[..5].copy_from_slice(b"hello");
        data[BLOCK..BLOCK + 5].copy_from_slice(b"world");
        s.write_blocks(&key, 3, &data).unwrap();
        let mut out = vec![9u8; 6 * BLOCK];
        let present = s.read_blocks(&key, 0, &mut out).unwrap();
        assert_eq!(present, vec![false, false, false, true, true, false]);
        assert_eq!(&out[3 * BLOCK..3 * BLOCK + 5], b"hello");
        assert_eq!(&out[4 * BLOCK..4 * BLOCK + 5], b"world");
        assert_eq!(out[0], 9, "absent blocks are left alone");
        // Nothing readable on disk.
        let raw = std::fs::read(s.path()).unwrap();
        assert!(!raw.windows(5).any(|w| w == b"hello" || w == b"world"));
        // A slot copied to another place fails authentication.
        let f = std::fs::OpenOptions::new().write(true).open(s.path()).unwrap();
        write_all_at(&f, &raw[3 * SLOT..4 * SLOT], 0).unwrap();
        let mut one = vec![0u8; BLOCK];
        assert!(s.read_blocks(&key, 0, &mut one).is_err());
        s.truncate_blocks(4).unwrap();
        let mut two = vec![0u8; 2 * BLOCK];
        assert_eq!(s.read_blocks(&key, 3, &mut two).unwrap(), vec![true, false]);
    }
}

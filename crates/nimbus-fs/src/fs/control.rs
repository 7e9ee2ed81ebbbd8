//! Control attributes: how `nimbus sync|pin|unmount|limits` talk to a
//! drive mounted without a service. Reading `user.nimbus.status` on the
//! root gives [`Pending`] as JSON; setting `user.nimbus.pin` on a path pins
//! it, removing it unpins; `user.nimbus.limits` on the root reads and sets
//! the store's bandwidth limits. They are never listed or stored. This
//! side channel lives in this one file, to be deleted once every drive is
//! hosted by the service and its API carries these.

use super::Fs;
use crate::error::{ErrorKind, FsError, Result};
use crate::meta::{inodes, pins};
use crate::types::*;

pub const CONTROL_PREFIX: &[u8] = b"user.nimbus.";
pub const CONTROL_STATUS: &[u8] = b"user.nimbus.status";
pub const CONTROL_PIN: &[u8] = b"user.nimbus.pin";
/// On the root: the store's bandwidth limits, read and set as
/// `up=<bytes/s> down=<bytes/s>` (0 is no limit).
pub const CONTROL_LIMITS: &[u8] = b"user.nimbus.limits";

impl Fs {
    fn limits(&self) -> Result<std::sync::Arc<nimbus_backend::NetLimits>> {
        self.local.vault.backend().limits().ok_or_else(|| {
            FsError::new(
                ErrorKind::NotSupported,
                "this drive's store is on this device and has no bandwidth limits",
            )
        })
    }

    /// `up=<bytes/s> down=<bytes/s>`, either part optional; 0 lifts a limit.
    fn set_limits(&self, value: &[u8]) -> Result<()> {
        let bad = || {
            FsError::new(
                ErrorKind::InvalidArgument,
                "limits are written as `up=<bytes per second> down=<bytes per second>` (0 for none)",
            )
        };
        let text = std::str::from_utf8(value).map_err(|_| bad())?;
        let mut up = None;
        let mut down = None;
        for part in text.split_whitespace() {
            let (k, v) = part.split_once('=').ok_or_else(bad)?;
            let v: u64 = v.parse().map_err(|_| bad())?;
            match k {
                "up" => up = Some(v),
                "down" => down = Some(v),
                _ => return Err(bad()),
            }
        }
        let l = self.limits()?;
        if let Some(v) = up {
            l.set_upload_limit(Some(v).filter(|v| *v > 0));
        }
        if let Some(v) = down {
            l.set_download_limit(Some(v).filter(|v| *v > 0));
        }
        tracing::info!(
            "bandwidth limits now up {:?} down {:?} bytes/s",
            l.upload_limit(),
            l.download_limit()
        );
        Ok(())
    }

    /// Keeps a file (or everything under a folder) on this device.
    pub fn pin(&self, ino: Ino, on: bool) -> Result<()> {
        self.local.db.write(|c| {
            inodes::get(c, ino)?;
            pins::set(c, ino, on)
        })?;
        self.local.refresh_pins()?;
        if on {
            // Fetch now what is not here yet, and wait for it.
            let ids = self.local.db.read(pins::pinned_blobs)?;
            for id in &ids {
                self.local.blobs.get(id)?;
            }
        }
        Ok(())
    }

    /// Setting a control attribute: `Some` with the outcome when `name` is
    /// one (any other `user.nimbus.*` name is refused), `None` for a
    /// person's own attribute.
    pub(super) fn control_set(&self, ino: Ino, name: &[u8], value: &[u8]) -> Option<Result<()>> {
        if name == CONTROL_PIN {
            return Some(self.pin(ino, true));
        }
        if name == CONTROL_LIMITS && ino == ROOT {
            return Some(self.set_limits(value));
        }
        if name.starts_with(CONTROL_PREFIX) {
            return Some(Err(FsError::new(
                ErrorKind::NotPermitted,
                "attributes named user.nimbus.* are Nimbus's own",
            )));
        }
        None
    }

    /// Reading a control attribute: `Some` with its value when `name` is
    /// one this drive answers on `ino`.
    pub(super) fn control_get(&self, ino: Ino, name: &[u8]) -> Option<Result<Vec<u8>>> {
        if name == CONTROL_STATUS && ino == ROOT {
            return Some(
                self.pending()
                    .and_then(|p| serde_json::to_vec(&p).map_err(|e| FsError::new(ErrorKind::Io, e.to_string()))),
            );
        }
        if name == CONTROL_LIMITS && ino == ROOT {
            return Some(self.limits().map(|l| {
                format!(
                    "up={} down={}",
                    l.upload_limit().unwrap_or(0),
                    l.download_limit().unwrap_or(0)
                )
                .into_bytes()
            }));
        }
        if name == CONTROL_PIN {
            return Some(match self.local.db.read(|c| pins::is_pinned(c, ino)) {
                Ok(true) => Ok(b"1".to_vec()),
                Ok(false) => Err(FsError::new(ErrorKind::NoAttribute, "not pinned")),
                Err(e) => Err(e),
            });
        }
        None
    }

    /// Removing a control attribute (unpinning): `Some` with the outcome
    /// when `name` is one.
    pub(super) fn control_remove(&self, ino: Ino, name: &[u8]) -> Option<Result<()>> {
        (name == CONTROL_PIN).then(|| self.pin(ino, false))
    }
}

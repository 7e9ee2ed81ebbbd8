//! What the mount tests share: the skip rule, a runtime, and a drive over a
//! vault in a local folder.

// Each test file uses a part of this.
#![allow(dead_code)]

use nimbus_backend::StoreUrl;
use nimbus_fs::{Fs, FsOptions};
use nimbus_vault::{DeviceId, KdfParams, Vault, VaultParams};
use std::fs;
use std::path::Path;
use std::sync::Arc;

const PASSWORD: &[u8] = b"correct horse";

/// Why the test cannot run here, if it cannot.
pub fn skip_reason() -> Option<&'static str> {
    if !Path::new("/dev/fuse").exists() {
        return Some("/dev/fuse is missing (no FUSE in this kernel or container)");
    }
    // The effective uid is the second field of `Uid:`.
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1));
    if euid != Some("0") {
        return Some("mounting needs root");
    }
    None
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// A new vault in `store` with a cheap password hash.
pub fn create_vault(rt: &tokio::runtime::Runtime, store: &Path) {
    let backend = nimbus_backend::create_store(&StoreUrl::LocalFolder(store.to_path_buf())).expect("the store");
    let kdf = KdfParams::minimum();
    rt.block_on(Vault::create(backend, PASSWORD, VaultParams::default(), kdf))
        .expect("a new vault");
}

/// The drive of the vault in `store`, with its local state in `state`.
pub fn load(rt: &tokio::runtime::Runtime, store: &Path, state: &Path, device: DeviceId) -> Arc<Fs> {
    load_with(rt, store, state, device, |_| {})
}

/// [`load`] with options changed by `change`.
pub fn load_with(
    rt: &tokio::runtime::Runtime,
    store: &Path,
    state: &Path,
    device: DeviceId,
    change: impl FnOnce(&mut FsOptions),
) -> Arc<Fs> {
    let backend = nimbus_backend::open_store(&StoreUrl::LocalFolder(store.to_path_buf())).expect("the store");
    let vault = rt.block_on(Vault::open(backend, PASSWORD)).expect("the vault opens");
    let mut opts = FsOptions::new(state.to_path_buf(), device);
    change(&mut opts);
    Fs::load(vault, rt.handle().clone(), opts).expect("the drive loads")
}

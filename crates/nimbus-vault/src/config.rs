//! The `config` object: the only plaintext object of a vault.
//!
//! It names the format version and the vault, fixes the chunker, pack and
//! compression parameters, and holds the *key slots*: the master key wrapped
//! by a key derived from a password (Argon2id) or from the recovery key. A
//! BLAKE3 MAC under a key derived from the master key covers the parameters
//! (and, from format version 2, every key slot), so a server that edits them
//! is detected once the vault is unlocked. Changing the password rewrites
//! this object and nothing else.
//!
//! Unlocking tries every slot of the asked kind and accepts only when each
//! slot that opens yields the same key and that key verifies the MAC (and,
//! in version 2, each such slot's key check): a slot the store slipped in can
//! make unlocking fail, but never tells the store which slot opened. KDF
//! costs are bounded above (a store cannot make us spend unbounded memory or
//! time) and below (a store cannot make us accept, and Nimbus never writes, a
//! slot cheap to guess).

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::chunker::ChunkerParams;
use crate::crypto::{self, MasterKey, Purpose};
use crate::error::{Result, VaultError};
use crate::id::ShortId;

/// The format version this build writes and the newest it reads. Version
/// 3 changes only commits (`commit3`, see `commit.rs`); version 4 adds
/// prune's plans and acknowledgements (`gc/`, docs/PRUNE.md §3). The
/// `config` of both is version 2's with the number changed.
pub const FORMAT_VERSION: u64 = 4;
/// The oldest format version this build still reads (and can upgrade).
pub const OLDEST_FORMAT_VERSION: u64 = 1;
/// At most this many key slots; Nimbus writes two. More is refused before
/// any key derivation, so a store cannot make unlocking run without end.
pub const MAX_KEY_SLOTS: usize = 8;
/// The `format` field of every vault config.
pub const FORMAT_NAME: &str = "nimbus-vault";
/// The object key of the config.
pub const CONFIG_KEY: &str = "config";

/// Parameters fixed at `init` and covered by the config MAC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaultParams {
    pub chunker: ChunkerParams,
    /// Packs are closed once they reach this many bytes.
    pub pack_target_size: u32,
    /// zstd level for blobs (0 = never compress).
    pub zstd_level: i32,
}

impl Default for VaultParams {
    fn default() -> Self {
        VaultParams {
            chunker: ChunkerParams::default(),
            pack_target_size: 16 << 20,
            zstd_level: 3,
        }
    }
}

impl VaultParams {
    /// Refuses parameters this build cannot honour (and that a hostile server
    /// could use to make the client panic or exhaust memory).
    pub fn validate(&self) -> Result<()> {
        self.chunker.validate()?;
        if !(64 << 10..=1 << 30).contains(&self.pack_target_size) {
            return Err(VaultError::invalid_input(format!(
                "pack target size {} is outside 64 KiB..1 GiB",
                self.pack_target_size
            )));
        }
        if !(0..=19).contains(&self.zstd_level) {
            return Err(VaultError::invalid_input(format!(
                "zstd level {} is outside 0..19",
                self.zstd_level
            )));
        }
        Ok(())
    }
}

/// Why a password-hash cost was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum KdfCostError {
    #[error(
        "its password hash asks for {} KiB of memory, {} passes and {} lanes, more than the {max_mem} KiB, {max_it} passes and {max_par} lanes Nimbus accepts",
        .0.memory_kib, .0.iterations, .0.parallelism,
        max_mem = KDF_MAX_MEMORY_KIB, max_it = KDF_MAX_ITERATIONS, max_par = KDF_MAX_PARALLELISM
    )]
    AboveLimit(KdfParams),
    #[error(
        "its password hash costs {} KiB of memory and {} passes, below the minimum of {} KiB and {} passes that keeps a password hard to guess",
        .cost.memory_kib, .cost.iterations, .floor.memory_kib, .floor.iterations
    )]
    BelowFloor { cost: KdfParams, floor: KdfParams },
}

/// Argon2id cost parameters of one password slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KdfParams {
    pub algorithm: KdfAlgorithm,
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KdfAlgorithm {
    Argon2id,
}

impl Default for KdfParams {
    /// 64 MiB, 3 passes: about half a second on a laptop core, as OWASP
    /// recommends for Argon2id.
    fn default() -> Self {
        KdfParams {
            algorithm: KdfAlgorithm::Argon2id,
            memory_kib: 64 << 10,
            iterations: 3,
            parallelism: 1,
        }
    }
}

/// The most memory one slot may ask for (1 GiB): more is refused before any
/// key derivation, so a hostile `config` cannot exhaust a device's memory.
pub const KDF_MAX_MEMORY_KIB: u32 = 1 << 20;
/// The most passes one slot may ask for.
pub const KDF_MAX_ITERATIONS: u32 = 16;
/// The most lanes one slot may ask for.
pub const KDF_MAX_PARALLELISM: u32 = 16;
/// The most Argon2 work (memory in KiB × passes, summed over the slots one
/// unlock evaluates): 4 GiB·pass, a few seconds. Bounds the CPU a store can
/// make an unlock spend, whatever the number of slots.
pub const KDF_MAX_TOTAL_WORK: u64 = 4 << 20;

impl KdfParams {
    /// The lowest cost Nimbus writes, and the lowest it accepts in a format
    /// version 2 slot: OWASP's minimum for Argon2id (19 MiB, 2 passes).
    pub const fn minimum() -> Self {
        KdfParams {
            algorithm: KdfAlgorithm::Argon2id,
            memory_kib: 19 << 10,
            iterations: 2,
            parallelism: 1,
        }
    }

    /// The lowest cost accepted in a format version 1 slot: 1 MiB, one pass,
    /// the cheapest cost Nimbus's own tests and golden vault used. Version 1
    /// allowed down to 8 KiB, which makes a guess ~6,000 times cheaper; a v1
    /// slot below this is refused as altered. A v1 vault made with a lower
    /// cost can be opened once with an older Nimbus to `passwd` it.
    pub const fn legacy_minimum() -> Self {
        KdfParams {
            algorithm: KdfAlgorithm::Argon2id,
            memory_kib: 1 << 10,
            iterations: 1,
            parallelism: 1,
        }
    }

    /// Argon2 work in KiB × passes.
    fn work(&self) -> u64 {
        self.memory_kib as u64 * self.iterations as u64
    }

    /// The larger of two costs, field by field: used so that `passwd` and
    /// `upgrade` never lower the cost of the slot they replace.
    pub fn max(self, other: KdfParams) -> KdfParams {
        KdfParams {
            algorithm: KdfAlgorithm::Argon2id,
            memory_kib: self.memory_kib.max(other.memory_kib),
            iterations: self.iterations.max(other.iterations),
            parallelism: self.parallelism.max(other.parallelism),
        }
    }

    /// The same cost brought within this build's upper limits.
    fn capped(self) -> KdfParams {
        KdfParams {
            algorithm: KdfAlgorithm::Argon2id,
            memory_kib: self.memory_kib.min(KDF_MAX_MEMORY_KIB),
            iterations: self.iterations.min(KDF_MAX_ITERATIONS),
            parallelism: self.parallelism.min(KDF_MAX_PARALLELISM),
        }
    }

    /// Checks the cost against the upper limits and against `floor`.
    fn check(&self, floor: &KdfParams) -> std::result::Result<(), KdfCostError> {
        if self.memory_kib > KDF_MAX_MEMORY_KIB
            || self.iterations > KDF_MAX_ITERATIONS
            || self.parallelism > KDF_MAX_PARALLELISM
        {
            return Err(KdfCostError::AboveLimit(*self));
        }
        if self.memory_kib < floor.memory_kib
            || self.iterations < floor.iterations
            || self.parallelism < 1
            || self.memory_kib < 8 * self.parallelism
        {
            return Err(KdfCostError::BelowFloor {
                cost: *self,
                floor: *floor,
            });
        }
        Ok(())
    }

    /// Checks a cost for a new slot: within the limits and at least
    /// [`KdfParams::minimum`]. The message says what to do.
    pub fn validate_new(&self) -> Result<()> {
        self.check(&KdfParams::minimum()).map_err(|why| {
            VaultError::invalid_input(format!(
                "refusing these password-hash settings: {why}. Use at least --kdf-memory-kib {} --kdf-iterations {} (the default, {} KiB and {} passes, is better)",
                KdfParams::minimum().memory_kib,
                KdfParams::minimum().iterations,
                KdfParams::default().memory_kib,
                KdfParams::default().iterations
            ))
        })
    }

    fn derive(&self, password: &[u8], salt: &[u8]) -> Result<Zeroizing<[u8; 32]>> {
        let params = argon2::Params::new(self.memory_kib, self.iterations, self.parallelism, Some(32))
            .map_err(|e| VaultError::invalid_input(format!("KDF parameters refused: {e}")))?;
        let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let mut out = Zeroizing::new([0u8; 32]);
        argon
            .hash_password_into(password, salt, out.as_mut())
            .map_err(|e| VaultError::invalid_input(format!("key derivation failed: {e}")))?;
        Ok(out)
    }
}

/// How a slot's wrapping key is obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SlotKind {
    Password,
    Recovery,
}

/// One wrapped copy of the master key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySlot {
    pub kind: SlotKind,
    /// Present on password slots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kdf: Option<KdfParams>,
    /// 16 random bytes, hex.
    pub salt: String,
    /// `nonce ‖ AES-256-GCM(master key) ‖ tag`, hex.
    pub wrapped_key: String,
    /// Format version 2: keyed BLAKE3 of this slot (kind, KDF cost, salt,
    /// wrapped key) under a key derived from the master key, hex. Checked
    /// once the slot opens: it commits the slot to the one master key it was
    /// made for (AES-GCM alone does not) and binds the cost and salt to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_check: Option<String>,
}

/// The `config` object as stored (JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub format: String,
    pub version: u64,
    /// 16 random bytes, hex.
    pub vault_id: String,
    pub params: VaultParams,
    pub key_slots: Vec<KeySlot>,
    /// BLAKE3-keyed MAC of (version, vault id, params), and from version 2
    /// of every key slot too, hex.
    pub params_mac: String,
    /// Unkeyed BLAKE3 of this JSON with `checksum` set to "", hex. Catches
    /// accidental damage (a flipped bit in a key slot would otherwise look
    /// like a wrong password); deliberate edits are caught by the MAC and
    /// the key slots' authentication.
    pub checksum: String,
}

impl ConfigFile {
    pub(crate) fn compute_checksum(&self) -> String {
        let mut copy = self.clone();
        copy.checksum = String::new();
        blake3::hash(&serde_json::to_vec(&copy).unwrap_or_default())
            .to_hex()
            .to_string()
    }
}

/// A recovery key: 32 random bytes, shown once as 13 groups of 4 base32
/// characters. Zeroized on drop; never `Debug`.
pub struct RecoveryKey(Zeroizing<[u8; 32]>);

impl RecoveryKey {
    fn random() -> Self {
        RecoveryKey(Zeroizing::new(rand::random()))
    }

    /// Parses what a person typed: case, spaces and dashes do not matter.
    pub fn parse(text: &str) -> Result<Self> {
        let cleaned: Zeroizing<String> = Zeroizing::new(
            text.chars()
                .filter(|c| !c.is_whitespace() && *c != '-')
                .map(|c| c.to_ascii_uppercase())
                .collect(),
        );
        let bytes = Zeroizing::new(
            data_encoding::BASE32_NOPAD
                .decode(cleaned.as_bytes())
                .map_err(|_| VaultError::WrongRecoveryKey)?,
        );
        let arr: [u8; 32] = bytes.as_slice().try_into().map_err(|_| VaultError::WrongRecoveryKey)?;
        Ok(RecoveryKey(Zeroizing::new(arr)))
    }

    /// The text to show the person, once.
    pub fn display_text(&self) -> Zeroizing<String> {
        let enc = Zeroizing::new(data_encoding::BASE32_NOPAD.encode(self.0.as_ref()));
        let groups: Vec<&str> = enc
            .as_bytes()
            .chunks(4)
            .map(|c| std::str::from_utf8(c).unwrap_or(""))
            .collect();
        Zeroizing::new(groups.join("-"))
    }
}

/// A decoded and structurally valid config (not yet unlocked).
#[derive(Debug, Clone)]
pub struct Config {
    pub file: ConfigFile,
    pub vault_id: ShortId,
}

fn decode_hex<const N: usize>(s: &str, what: &str) -> Result<[u8; N]> {
    let mut out = [0u8; N];
    hex::decode_to_slice(s, &mut out)
        .map_err(|_| VaultError::corrupt(CONFIG_KEY, format!("{what} is not {N} bytes of hex")))?;
    Ok(out)
}

impl Config {
    /// Parses the stored bytes. Checks the format name and version first, so a
    /// vault from a newer Nimbus says so instead of failing to parse. Every
    /// limit (slot count, KDF cost) is checked here, before any key
    /// derivation.
    pub fn decode(bytes: &[u8]) -> Result<Config> {
        let value: serde_json::Value = serde_json::from_slice(bytes)
            .map_err(|e| VaultError::corrupt(CONFIG_KEY, format!("not valid JSON ({e})")))?;
        if value.get("format").and_then(|f| f.as_str()) != Some(FORMAT_NAME) {
            return Err(VaultError::corrupt(CONFIG_KEY, "it is not a Nimbus vault config"));
        }
        let version = match value.get("version").and_then(|v| v.as_u64()) {
            Some(v) if v > FORMAT_VERSION => {
                return Err(VaultError::NewerFormat {
                    found: v,
                    supported: FORMAT_VERSION,
                })
            }
            Some(v) if v >= OLDEST_FORMAT_VERSION => v,
            _ => {
                return Err(VaultError::corrupt(
                    CONFIG_KEY,
                    "the format version is missing or invalid",
                ))
            }
        };
        let file: ConfigFile = serde_json::from_value(value)
            .map_err(|e| VaultError::corrupt(CONFIG_KEY, format!("unexpected structure ({e})")))?;
        if file.checksum != file.compute_checksum() {
            return Err(VaultError::corrupt(
                CONFIG_KEY,
                "its checksum does not match its content",
            ));
        }
        file.params
            .validate()
            .map_err(|e| VaultError::corrupt(CONFIG_KEY, e.to_string()))?;
        let vault_id = ShortId(decode_hex::<16>(&file.vault_id, "vault id")?);
        check_slots(version, &file.key_slots).map_err(|why| VaultError::corrupt(CONFIG_KEY, why.to_string()))?;
        decode_hex::<32>(&file.params_mac, "the parameter MAC")?;
        Ok(Config { file, vault_id })
    }

    /// The format version of this vault.
    pub fn version(&self) -> u64 {
        self.file.version
    }

    /// The bytes to store.
    pub fn encode(&self) -> Vec<u8> {
        let mut file = self.file.clone();
        file.checksum = file.compute_checksum();
        let mut v = serde_json::to_vec_pretty(&file).unwrap_or_default();
        v.push(b'\n');
        v
    }

    /// Creates a new vault's config (format version [`FORMAT_VERSION`]),
    /// master key and recovery key. Refuses a KDF cost below
    /// [`KdfParams::minimum`].
    pub fn create(password: &[u8], params: VaultParams, kdf: KdfParams) -> Result<(Config, MasterKey, RecoveryKey)> {
        params.validate()?;
        kdf.validate_new()?;
        let master = MasterKey::random();
        let recovery = RecoveryKey::random();
        let vault_id = ShortId::random();
        let file = ConfigFile {
            format: FORMAT_NAME.into(),
            version: FORMAT_VERSION,
            vault_id: vault_id.to_hex(),
            params,
            key_slots: vec![
                password_slot(&vault_id, &master, password, kdf)?,
                recovery_slot(&vault_id, &master, &recovery.0),
            ],
            params_mac: String::new(),
            checksum: String::new(),
        };
        let mut cfg = Config { file, vault_id };
        cfg.seal(&master);
        Ok((cfg, master, recovery))
    }

    /// Computes the key checks (version 2) and the MAC under `master`.
    fn seal(&mut self, master: &MasterKey) {
        if self.file.version >= 2 {
            let check_key = key_check_key(master);
            for slot in &mut self.file.key_slots {
                slot.key_check = Some(hex::encode(slot_key_check(&check_key, &self.vault_id, slot)));
            }
        }
        self.file.params_mac = hex::encode(self.params_mac(master));
    }

    fn params_mac(&self, master: &MasterKey) -> [u8; 32] {
        let keys = master.derive();
        let body = if self.file.version >= 2 {
            let slots: Vec<_> = self
                .file
                .key_slots
                .iter()
                .map(|s| (s.kind, s.kdf, &s.salt, &s.wrapped_key, &s.key_check))
                .collect();
            postcard::to_allocvec(&(self.file.version, self.vault_id.0, &self.file.params, slots))
        } else {
            postcard::to_allocvec(&(self.file.version, self.vault_id.0, &self.file.params))
        }
        .unwrap_or_default();
        *blake3::keyed_hash(&keys.config_mac, &body).as_bytes()
    }

    /// Whether `master` is this config's key: the MAC verifies and, in
    /// version 2, so does `slot`'s key check. Constant time in the compared
    /// bytes.
    fn verifies(&self, master: &MasterKey, slot: &KeySlot) -> bool {
        let Ok(stored) = decode_hex::<32>(&self.file.params_mac, "the parameter MAC") else {
            return false;
        };
        let mac_ok = constant_time_eq(&stored, &self.params_mac(master));
        let check_ok = if self.file.version >= 2 {
            match slot.key_check.as_deref().map(|k| decode_hex::<32>(k, "a key check")) {
                Some(Ok(stored)) => {
                    constant_time_eq(&stored, &slot_key_check(&key_check_key(master), &self.vault_id, slot))
                }
                _ => false,
            }
        } else {
            true
        };
        mac_ok & check_ok
    }

    fn check_mac(&self, master: &MasterKey) -> Result<()> {
        let stored = decode_hex::<32>(&self.file.params_mac, "the parameter MAC")?;
        if constant_time_eq(&stored, &self.params_mac(master)) {
            Ok(())
        } else {
            Err(VaultError::corrupt(CONFIG_KEY, "its parameters do not match their MAC"))
        }
    }

    /// Unlocks the master key with a password.
    pub fn unlock_with_password(&self, password: &[u8]) -> Result<MasterKey> {
        self.unlock(SlotKind::Password, |slot| {
            let kdf = slot.kdf.unwrap_or_default();
            let salt = decode_hex::<16>(&slot.salt, "a key slot salt")?;
            kdf.derive(password, &salt)
                .map_err(|e| VaultError::corrupt(CONFIG_KEY, e.to_string()))
        })
        .map_err(|e| match e {
            UnlockError::NoSlotOpened => VaultError::WrongPassword,
            UnlockError::Vault(e) => e,
        })
    }

    /// Unlocks the master key with the recovery key.
    pub fn unlock_with_recovery(&self, recovery: &RecoveryKey) -> Result<MasterKey> {
        self.unlock(SlotKind::Recovery, |slot| {
            let salt = decode_hex::<16>(&slot.salt, "a key slot salt")?;
            Ok(recovery_kek(&recovery.0, &salt))
        })
        .map_err(|e| match e {
            UnlockError::NoSlotOpened => VaultError::WrongRecoveryKey,
            UnlockError::Vault(e) => e,
        })
    }

    /// Tries *every* slot of `kind`, whatever the earlier ones gave, and
    /// decides only afterwards: no slot opened (a wrong secret), or every
    /// slot that opened gave one key that verifies (unlocked), or anything
    /// else (the slots were altered). A slot a store slipped in therefore
    /// changes nothing observable until all the work is done, and then only
    /// turns success into refusal: the store learns nothing about which
    /// slot, if any, opened.
    fn unlock(
        &self,
        kind: SlotKind,
        kek_of: impl Fn(&KeySlot) -> Result<Zeroizing<[u8; 32]>>,
    ) -> std::result::Result<MasterKey, UnlockError> {
        let mut opened: Vec<(usize, MasterKey)> = Vec::new();
        for (i, slot) in self.file.key_slots.iter().enumerate() {
            if slot.kind != kind {
                continue;
            }
            let kek = kek_of(slot).map_err(UnlockError::Vault)?;
            if let Some(master) = self.unwrap_slot(i, &kek).map_err(UnlockError::Vault)? {
                opened.push((i, master));
            }
        }
        let Some((_, first)) = opened.first() else {
            return Err(UnlockError::NoSlotOpened);
        };
        let mut all_good = true;
        for (i, master) in &opened {
            all_good &= constant_time_eq(master.expose(), first.expose());
            all_good &= self.verifies(master, &self.file.key_slots[*i]);
        }
        if !all_good {
            return Err(UnlockError::Vault(VaultError::corrupt(
                CONFIG_KEY,
                "a key slot opens with this secret but does not match the vault's key, so its key slots were altered (by the store, or by damage). Nothing else was read. Put back a copy of `config` you trust, or open the vault with the recovery key",
            )));
        }
        let (_, master) = opened.swap_remove(0);
        Ok(master)
    }

    fn unwrap_slot(&self, index: usize, kek: &[u8; 32]) -> Result<Option<MasterKey>> {
        let slot = &self.file.key_slots[index];
        let wrapped =
            hex::decode(&slot.wrapped_key).map_err(|_| VaultError::corrupt(CONFIG_KEY, "a wrapped key is not hex"))?;
        let ad_id = slot_ad_id(&self.vault_id, slot.kind);
        match crypto::open(&crypto::cipher(kek), Purpose::KeySlot, &ad_id, &wrapped) {
            Ok(plain) => {
                let plain = Zeroizing::new(plain);
                match <[u8; 32]>::try_from(plain.as_slice()) {
                    Ok(arr) => Ok(Some(MasterKey::from_bytes(arr))),
                    // Opened but the wrong length: altered, and handled like
                    // a slot that opens to the wrong key (no early exit).
                    Err(_) => Ok(Some(MasterKey::from_bytes(rand::random()))),
                }
            }
            Err(_) => Ok(None),
        }
    }

    /// A copy of this config whose password slots are replaced by one for
    /// `new_password`, at least as costly as [`Config::password_kdf`]. The
    /// recovery slot and everything else stay as they are; the format
    /// version too.
    pub fn with_new_password(&self, master: &MasterKey, new_password: &[u8], kdf: KdfParams) -> Result<Config> {
        self.check_mac(master)?;
        let kdf = kdf.max(self.password_kdf());
        kdf.validate_new()?;
        let mut cfg = self.clone();
        cfg.file.key_slots.retain(|s| s.kind != SlotKind::Password);
        cfg.file
            .key_slots
            .insert(0, password_slot(&self.vault_id, master, new_password, kdf)?);
        cfg.seal(master);
        Ok(cfg)
    }

    /// This config in format version [`FORMAT_VERSION`] (from 1, 2 or 3): a
    /// new password slot for `password` (cost [`Config::password_kdf`],
    /// never lower than the old one), the recovery slot kept as it is with
    /// its key check (added when coming from version 1), and the MAC over
    /// the new version and every slot. The blobs, packs, commits and
    /// everything else are unchanged: only `config` is rewritten.
    pub fn upgraded(&self, master: &MasterKey, password: &[u8]) -> Result<Config> {
        self.check_mac(master)?;
        if self.file.version >= FORMAT_VERSION {
            return Ok(self.clone());
        }
        let kdf = self.password_kdf();
        kdf.validate_new()?;
        let mut cfg = self.clone();
        cfg.file.version = FORMAT_VERSION;
        cfg.file.key_slots.retain(|s| s.kind != SlotKind::Password);
        cfg.file
            .key_slots
            .insert(0, password_slot(&self.vault_id, master, password, kdf)?);
        cfg.seal(master);
        Ok(cfg)
    }

    /// The cost for a new password slot: the default, or the current
    /// slots' cost where that is higher (so `passwd` never lowers it, even
    /// on a vault made with a low cost), within this build's limits.
    pub fn password_kdf(&self) -> KdfParams {
        self.file
            .key_slots
            .iter()
            .filter_map(|s| s.kdf)
            .fold(KdfParams::default(), KdfParams::max)
            .capped()
    }
}

enum UnlockError {
    NoSlotOpened,
    Vault(VaultError),
}

/// Why the key slots of a config break the structural rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum SlotError {
    #[error("it has no key slot")]
    NoSlot,
    #[error("it has {0} key slots, more than the {max} Nimbus accepts", max = MAX_KEY_SLOTS)]
    TooMany(usize),
    #[error("a key slot salt is not 16 bytes of hex")]
    BadSalt,
    #[error("a password slot has no KDF parameters")]
    PasswordWithoutKdf,
    #[error("a recovery slot has KDF parameters")]
    RecoveryWithKdf,
    #[error(transparent)]
    Cost(#[from] KdfCostError),
    #[error("a key slot has no key check")]
    NoKeyCheck,
    #[error("a version 1 key slot has a key check")]
    KeyCheckInVersion1,
    #[error("a key check is not 32 bytes of hex")]
    BadKeyCheck,
    #[error(
        "its password slots together ask for {0} KiB·passes of password hashing, more than the {max} Nimbus accepts",
        max = KDF_MAX_TOTAL_WORK
    )]
    TooMuchWork(u64),
    #[error("it has more than one {0} slot, which Nimbus never writes in a version 1 vault")]
    SecondInVersion1(&'static str),
}

/// The structural rules on key slots, checked before any key derivation.
fn check_slots(version: u64, slots: &[KeySlot]) -> std::result::Result<(), SlotError> {
    if slots.is_empty() {
        return Err(SlotError::NoSlot);
    }
    if slots.len() > MAX_KEY_SLOTS {
        return Err(SlotError::TooMany(slots.len()));
    }
    let floor = if version >= 2 {
        KdfParams::minimum()
    } else {
        KdfParams::legacy_minimum()
    };
    let mut work = 0u64;
    for slot in slots {
        if decode_hex::<16>(&slot.salt, "a key slot salt").is_err() {
            return Err(SlotError::BadSalt);
        }
        match (slot.kind, slot.kdf) {
            (SlotKind::Password, None) => return Err(SlotError::PasswordWithoutKdf),
            (SlotKind::Recovery, Some(_)) => return Err(SlotError::RecoveryWithKdf),
            (SlotKind::Password, Some(kdf)) => {
                kdf.check(&floor)?;
                work += kdf.work();
            }
            (SlotKind::Recovery, None) => {}
        }
        match (version >= 2, &slot.key_check) {
            (true, None) => return Err(SlotError::NoKeyCheck),
            (false, Some(_)) => return Err(SlotError::KeyCheckInVersion1),
            (true, Some(k)) if decode_hex::<32>(k, "a key check").is_err() => return Err(SlotError::BadKeyCheck),
            _ => {}
        }
    }
    if work > KDF_MAX_TOTAL_WORK {
        return Err(SlotError::TooMuchWork(work));
    }
    // Version 1 has no MAC over the slots, and Nimbus 1 always wrote exactly
    // one password and one recovery slot: another one can only have been
    // slipped in, to copy its cost on `passwd` or to test a guessed password.
    if version < 2 {
        for kind in [SlotKind::Password, SlotKind::Recovery] {
            if slots.iter().filter(|s| s.kind == kind).count() > 1 {
                return Err(SlotError::SecondInVersion1(match kind {
                    SlotKind::Password => "password",
                    SlotKind::Recovery => "recovery",
                }));
            }
        }
    }
    Ok(())
}

fn slot_ad_id(vault_id: &ShortId, kind: SlotKind) -> Vec<u8> {
    let mut v = vault_id.0.to_vec();
    v.push(match kind {
        SlotKind::Password => 0,
        SlotKind::Recovery => 1,
    });
    v
}

/// The key of the version 2 key checks, derived from the master key.
fn key_check_key(master: &MasterKey) -> Zeroizing<[u8; 32]> {
    crypto::hkdf32(master.expose(), b"nimbus/2/key-check")
}

/// Keyed BLAKE3 over the postcard encoding of `(vault id, kind, kdf, salt,
/// wrapped key)`, with the salt and wrapped key as their hex strings.
fn slot_key_check(key: &[u8; 32], vault_id: &ShortId, slot: &KeySlot) -> [u8; 32] {
    let body =
        postcard::to_allocvec(&(vault_id.0, slot.kind, slot.kdf, &slot.salt, &slot.wrapped_key)).unwrap_or_default();
    *blake3::keyed_hash(key, &body).as_bytes()
}

fn recovery_kek(recovery: &[u8; 32], salt: &[u8; 16]) -> Zeroizing<[u8; 32]> {
    let mut ikm = Zeroizing::new(Vec::with_capacity(48));
    ikm.extend_from_slice(recovery);
    ikm.extend_from_slice(salt);
    crypto::hkdf32(&ikm, b"nimbus/1/recovery-slot")
}

fn password_slot(vault_id: &ShortId, master: &MasterKey, password: &[u8], kdf: KdfParams) -> Result<KeySlot> {
    let salt: [u8; 16] = rand::random();
    let kek = kdf.derive(password, &salt)?;
    let sealed = crypto::seal(
        &crypto::cipher(&kek),
        Purpose::KeySlot,
        &slot_ad_id(vault_id, SlotKind::Password),
        master.expose(),
    );
    Ok(KeySlot {
        kind: SlotKind::Password,
        kdf: Some(kdf),
        salt: hex::encode(salt),
        wrapped_key: hex::encode(sealed),
        key_check: None,
    })
}

fn recovery_slot(vault_id: &ShortId, master: &MasterKey, secret: &[u8; 32]) -> KeySlot {
    let salt: [u8; 16] = rand::random();
    let kek = recovery_kek(secret, &salt);
    let sealed = crypto::seal(
        &crypto::cipher(&kek),
        Purpose::KeySlot,
        &slot_ad_id(vault_id, SlotKind::Recovery),
        master.expose(),
    );
    KeySlot {
        kind: SlotKind::Recovery,
        kdf: None,
        salt: hex::encode(salt),
        wrapped_key: hex::encode(sealed),
        key_check: None,
    }
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fast_kdf() -> KdfParams {
        KdfParams::minimum()
    }

    #[test]
    fn create_unlock_change_password() {
        let (cfg, master, recovery) = Config::create(b"pw1", VaultParams::default(), fast_kdf()).unwrap();
        let cfg = Config::decode(&cfg.encode()).unwrap();
        assert_eq!(cfg.unlock_with_password(b"pw1").unwrap().expose(), master.expose());
        assert!(matches!(
            cfg.unlock_with_password(b"pw2"),
            Err(VaultError::WrongPassword)
        ));
        let text = recovery.display_text();
        let parsed = RecoveryKey::parse(&text.to_lowercase().replace('-', " ")).unwrap();
        assert_eq!(cfg.unlock_with_recovery(&parsed).unwrap().expose(), master.expose());
        let cfg2 = cfg.with_new_password(&master, b"pw2", fast_kdf()).unwrap();
        assert!(matches!(
            cfg2.unlock_with_password(b"pw1"),
            Err(VaultError::WrongPassword)
        ));
        assert!(cfg2.unlock_with_password(b"pw2").is_ok());
        assert!(cfg2.unlock_with_recovery(&parsed).is_ok());
    }

    #[test]
    fn tampered_params_detected() {
        let (mut cfg, _m, _r) = Config::create(b"pw", VaultParams::default(), fast_kdf()).unwrap();
        // An attacker who edits the parameters can fix the checksum too; the
        // MAC still catches it.
        cfg.file.params.zstd_level = 5;
        let cfg = Config::decode(&cfg.encode()).unwrap();
        assert!(matches!(
            cfg.unlock_with_password(b"pw"),
            Err(VaultError::Corrupt { .. })
        ));
    }

    #[test]
    fn accidental_damage_is_not_a_wrong_password() {
        let (cfg, _m, _r) = Config::create(b"pw", VaultParams::default(), fast_kdf()).unwrap();
        let bytes = cfg.encode();
        let mut flagged = 0;
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x20;
            match Config::decode(&b) {
                Err(VaultError::Corrupt { .. }) => flagged += 1,
                Ok(c) => assert!(
                    !matches!(c.unlock_with_password(b"pw"), Err(VaultError::WrongPassword)),
                    "flip at {i} looks like a wrong password"
                ),
                Err(e) => panic!("flip at {i}: unexpected {e}"),
            }
        }
        assert!(flagged > bytes.len() / 2);
    }

    #[test]
    fn newer_version_named() {
        let (cfg, _m, _r) = Config::create(b"pw", VaultParams::default(), fast_kdf()).unwrap();
        let text = String::from_utf8(cfg.encode())
            .unwrap()
            .replace("\"version\": 4", "\"version\": 7");
        let err = Config::decode(text.as_bytes()).unwrap_err();
        assert!(
            matches!(err, VaultError::NewerFormat { found: 7, supported: 4 }),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "this vault uses format version 7, but this Nimbus reads only up to version 4. Update Nimbus to open it"
        );
    }

    /// The golden version 1 config (Argon2id 1 MiB, one pass).
    const V1_CONFIG: &str = include_str!("../../../tests/fixtures/vault-v1/config");
    /// The golden version 2 config (Argon2id 19 MiB, two passes).
    const V2_CONFIG: &str = include_str!("../../../tests/fixtures/vault-v2/config");
    const V1_PASSWORD: &[u8] = b"nimbus-golden-fixture";

    /// What a hostile store does to `config` (the review's `cfgtool.py`):
    /// edit it and recompute the unkeyed checksum, which `encode` does.
    fn edited(cfg: &Config, f: impl FnOnce(&mut ConfigFile)) -> Vec<u8> {
        let mut c = cfg.clone();
        f(&mut c.file);
        c.encode()
    }

    /// `cfgtool.py prepend-garbage-slot`: a password slot that opens with
    /// nothing, at the cost the store chooses.
    fn garbage_slot(kdf: KdfParams) -> KeySlot {
        KeySlot {
            kind: SlotKind::Password,
            kdf: Some(kdf),
            salt: hex::encode(rand::random::<[u8; 16]>()),
            wrapped_key: hex::encode((0..60).map(|_| rand::random::<u8>()).collect::<Vec<u8>>()),
            key_check: Some(hex::encode(rand::random::<[u8; 32]>())),
        }
    }

    /// `cfgtool.py prepend-guess-slot`: a slot that opens only under
    /// `guess`, to a key the store knows; with that key the store can also
    /// make the slot's key check and the whole config's MAC verify.
    fn guess_slot(cfg: &Config, guess: &[u8]) -> (KeySlot, MasterKey) {
        let fake = MasterKey::random();
        let mut slot = password_slot(&cfg.vault_id, &fake, guess, KdfParams::minimum()).unwrap();
        if cfg.version() >= 2 {
            slot.key_check = Some(hex::encode(slot_key_check(&key_check_key(&fake), &cfg.vault_id, &slot)));
        }
        (slot, fake)
    }

    fn cheap() -> KdfParams {
        KdfParams {
            memory_kib: 8,
            iterations: 1,
            parallelism: 1,
            ..KdfParams::default()
        }
    }

    #[test]
    fn new_vaults_are_version_4_and_v1_and_v2_still_open() {
        let (cfg, _m, _r) = Config::create(b"pw", VaultParams::default(), fast_kdf()).unwrap();
        assert_eq!(Config::decode(&cfg.encode()).unwrap().version(), 4);
        let v2 = Config::decode(V2_CONFIG.as_bytes()).unwrap();
        assert_eq!(v2.version(), 2);
        assert!(v2.unlock_with_password(V1_PASSWORD).is_ok());
        assert_eq!(v2.encode(), V2_CONFIG.as_bytes());
        let v1 = Config::decode(V1_CONFIG.as_bytes()).unwrap();
        assert_eq!(v1.version(), 1);
        assert!(v1.unlock_with_password(V1_PASSWORD).is_ok());
        // Version 1's bytes are unchanged by a decode and encode.
        assert_eq!(v1.encode(), V1_CONFIG.as_bytes());
    }

    /// M1: a cheap slot slipped in before the real one made `passwd` copy
    /// its cost (8 KiB, one pass). Now the config is refused before any
    /// work, whatever the version, and `passwd` never lowers the cost.
    #[test]
    fn injected_cheap_slot_is_refused() {
        let (cfg, master, _r) = Config::create(b"pw", VaultParams::default(), fast_kdf()).unwrap();
        let bytes = edited(&cfg, |f| f.key_slots.insert(0, garbage_slot(cheap())));
        let err = Config::decode(&bytes).unwrap_err().to_string();
        assert!(err.contains("below the minimum"), "{err}");
        // At the floor, the slot is well formed but not one the vault's key
        // made: the unlock refuses rather than silently skipping it.
        let bytes = edited(&cfg, |f| f.key_slots.insert(0, garbage_slot(KdfParams::minimum())));
        let c = Config::decode(&bytes).unwrap();
        assert!(matches!(c.unlock_with_password(b"pw"), Err(VaultError::Corrupt { .. })));
        // Version 1: exactly one password slot, as Nimbus 1 always wrote.
        let v1 = Config::decode(V1_CONFIG.as_bytes()).unwrap();
        let mut slot = garbage_slot(KdfParams::legacy_minimum());
        slot.key_check = None;
        let err = Config::decode(&edited(&v1, |f| f.key_slots.insert(0, slot)))
            .unwrap_err()
            .to_string();
        assert!(err.contains("more than one password slot"), "{err}");
        // passwd: the default cost at least, even from a vault at the floor.
        let new = cfg.with_new_password(&master, b"pw2", fast_kdf()).unwrap();
        assert_eq!(new.file.key_slots[0].kdf, Some(KdfParams::default()));
        let strong = KdfParams {
            memory_kib: 128 << 10,
            ..KdfParams::default()
        };
        let new = cfg.with_new_password(&master, b"pw2", strong).unwrap();
        let again = new.with_new_password(&master, b"pw3", fast_kdf()).unwrap();
        assert_eq!(again.file.key_slots[0].kdf, Some(strong));
        assert!(Config::decode(&again.encode())
            .unwrap()
            .unlock_with_password(b"pw3")
            .is_ok());
        // v1 vault made at 1 MiB: passwd raises it too, and keeps version 1.
        let m1 = v1.unlock_with_password(V1_PASSWORD).unwrap();
        let v1b = v1.with_new_password(&m1, b"pw2", cheap()).unwrap();
        assert_eq!(v1b.version(), 1);
        assert_eq!(v1b.file.key_slots[0].kdf, Some(KdfParams::default()));
        let v1b = Config::decode(&v1b.encode()).unwrap();
        assert_eq!(v1b.unlock_with_password(b"pw2").unwrap().expose(), m1.expose());
    }

    /// M2: a slot sealed under a guessed password made unlocking stop early
    /// when the guess was right, and go on to read the vault when it was
    /// wrong: a password oracle for the store. Now the outcome is the same
    /// either way, with the store's MAC left alone or forged under its key.
    #[test]
    fn guessed_slot_gives_the_store_no_signal() {
        for version in [1u64, 2] {
            let (cfg, master) = if version == 2 {
                let (c, m, _r) = Config::create(b"right", VaultParams::default(), fast_kdf()).unwrap();
                (c, m)
            } else {
                let c = Config::decode(V1_CONFIG.as_bytes()).unwrap();
                let m = c.unlock_with_password(V1_PASSWORD).unwrap();
                (c, m)
            };
            let password: &[u8] = if version == 2 { b"right" } else { V1_PASSWORD };
            let outcome = |guess: &[u8], forge_mac: bool| {
                let (slot, fake) = guess_slot(&cfg, guess);
                let mut c = cfg.clone();
                c.file.key_slots.insert(0, slot);
                if forge_mac {
                    c.file.params_mac = hex::encode(c.params_mac(&fake));
                }
                match Config::decode(&c.encode()) {
                    // Version 1 refuses the second password slot outright.
                    Err(e) => format!("refused: {e}"),
                    Ok(c) => match c.unlock_with_password(password) {
                        Ok(m) => {
                            assert_eq!(m.expose(), master.expose());
                            "unlocked".to_string()
                        }
                        Err(e) => format!("{e}"),
                    },
                }
            };
            for forge_mac in [false, true] {
                let right = outcome(password, forge_mac);
                let wrong = outcome(b"wrong guess", forge_mac);
                assert_eq!(right, wrong, "v{version}, forged MAC {forge_mac}");
                assert_ne!(right, "unlocked");
            }
        }
    }

    /// A slot whose key check does not match (version 2) is refused even
    /// though it decrypts: the check commits the slot to the vault's key.
    #[test]
    fn key_check_is_verified() {
        let (cfg, _m, _r) = Config::create(b"pw", VaultParams::default(), fast_kdf()).unwrap();
        let bytes = edited(&cfg, |f| {
            f.key_slots[0].key_check = Some(hex::encode([7u8; 32]));
        });
        let c = Config::decode(&bytes).unwrap();
        assert!(matches!(c.unlock_with_password(b"pw"), Err(VaultError::Corrupt { .. })));
        // The slot's cost is bound too: another cost cannot open it, and
        // no slot opening is a wrong password, not an altered config.
        let bytes = edited(&cfg, |f| {
            f.key_slots[0].kdf = Some(KdfParams {
                iterations: 3,
                ..KdfParams::minimum()
            });
        });
        let c = Config::decode(&bytes).unwrap();
        assert!(matches!(c.unlock_with_password(b"pw"), Err(VaultError::WrongPassword)));
        // Missing key check in version 2: refused at decode.
        let bytes = edited(&cfg, |f| f.key_slots[1].key_check = None);
        assert!(Config::decode(&bytes).is_err());
    }

    /// M1 floor and M3 caps: below the floor is refused at `create` and
    /// when read; above the caps, or too many slots, refused before any
    /// key derivation.
    #[test]
    fn kdf_floor_and_caps() {
        let err = Config::create(b"pw", VaultParams::default(), cheap())
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("--kdf-memory-kib 19456"), "{err}");
        let below = KdfParams {
            iterations: 1,
            ..KdfParams::minimum()
        };
        assert!(Config::create(b"pw", VaultParams::default(), below).is_err());
        let (cfg, _m, _r) = Config::create(b"pw", VaultParams::default(), fast_kdf()).unwrap();
        let with = |kdf: KdfParams| {
            Config::decode(&edited(&cfg, |f| f.key_slots[0].kdf = Some(kdf)))
                .map(|_| ())
                .map_err(|e| e.to_string())
        };
        assert!(with(below).unwrap_err().contains("below the minimum"));
        let huge = KdfParams {
            memory_kib: 4 << 20,
            ..KdfParams::default()
        };
        assert!(with(huge).unwrap_err().contains("more than"));
        let slow = KdfParams {
            iterations: 64,
            ..KdfParams::minimum()
        };
        assert!(with(slow).unwrap_err().contains("more than"));
        // Each slot within the limits, but together too much work.
        let big = KdfParams {
            memory_kib: 1 << 20,
            iterations: 2,
            ..KdfParams::default()
        };
        let err = Config::decode(&edited(&cfg, |f| {
            for _ in 0..3 {
                f.key_slots.push(garbage_slot(big));
            }
        }))
        .unwrap_err()
        .to_string();
        assert!(err.contains("together"), "{err}");
        let err = Config::decode(&edited(&cfg, |f| {
            for _ in 0..MAX_KEY_SLOTS {
                f.key_slots.push(garbage_slot(KdfParams::minimum()));
            }
        }))
        .unwrap_err()
        .to_string();
        assert!(err.contains("key slots, more than"), "{err}");
        // Version 1: 1 MiB (the golden vault) is fine, 8 KiB is not.
        let v1 = Config::decode(V1_CONFIG.as_bytes()).unwrap();
        let err = Config::decode(&edited(&v1, |f| f.key_slots[0].kdf = Some(cheap())))
            .unwrap_err()
            .to_string();
        assert!(err.contains("below the minimum of 1024 KiB"), "{err}");
    }

    /// `upgrade`: version 1 → 3, same master key, the recovery slot kept
    /// (with its key check), the password slot at least the default cost.
    #[test]
    fn upgrade_from_v1() {
        let v1 = Config::decode(V1_CONFIG.as_bytes()).unwrap();
        let master = v1.unlock_with_password(V1_PASSWORD).unwrap();
        let v2 = v1.upgraded(&master, V1_PASSWORD).unwrap();
        let v2 = Config::decode(&v2.encode()).unwrap();
        assert_eq!(v2.version(), 4);
        assert_eq!(v2.vault_id, v1.vault_id);
        assert_eq!(v2.file.params, v1.file.params);
        assert_eq!(v2.file.key_slots[0].kdf, Some(KdfParams::default()));
        assert_eq!(v2.file.key_slots[1].wrapped_key, v1.file.key_slots[1].wrapped_key);
        assert_eq!(v2.unlock_with_password(V1_PASSWORD).unwrap().expose(), master.expose());
        // A store that puts version 1 back on the upgraded config is caught
        // (the MAC covers the version).
        let mut down = v2.clone();
        down.file.version = 1;
        for s in &mut down.file.key_slots {
            s.key_check = None;
        }
        let down = Config::decode(&down.encode()).unwrap();
        assert!(matches!(
            down.unlock_with_password(V1_PASSWORD),
            Err(VaultError::Corrupt { .. })
        ));
    }

    /// `upgrade`: version 2 → 3 keeps the master key and the recovery slot
    /// (its key check unchanged), raises the password slot to the default
    /// cost, and a store that puts version 2 back is caught by the MAC.
    #[test]
    fn upgrade_from_v2() {
        let v2 = Config::decode(V2_CONFIG.as_bytes()).unwrap();
        let master = v2.unlock_with_password(V1_PASSWORD).unwrap();
        let v3 = Config::decode(&v2.upgraded(&master, V1_PASSWORD).unwrap().encode()).unwrap();
        assert_eq!(v3.version(), 4);
        assert_eq!(v3.vault_id, v2.vault_id);
        assert_eq!(v3.file.params, v2.file.params);
        assert_eq!(v3.file.key_slots[0].kdf, Some(KdfParams::default()));
        assert_eq!(v3.file.key_slots[1], v2.file.key_slots[1]);
        assert_eq!(v3.unlock_with_password(V1_PASSWORD).unwrap().expose(), master.expose());
        let mut down = v3.clone();
        down.file.version = 2;
        let down = Config::decode(&down.encode()).unwrap();
        assert!(matches!(
            down.unlock_with_password(V1_PASSWORD),
            Err(VaultError::Corrupt { .. })
        ));
    }
}

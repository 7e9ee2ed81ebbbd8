//! The `config` object: the only plaintext object of a vault.
//!
//! It names the format version and the vault, fixes the chunker, pack and
//! compression parameters, and holds the *key slots*: the master key wrapped
//! by a key derived from a password (Argon2id) or from the recovery key. A
//! BLAKE3 MAC under a key derived from the master key covers the parameters,
//! so a server that edits them is detected once the vault is unlocked.
//! Changing the password rewrites this object and nothing else.

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::chunker::ChunkerParams;
use crate::crypto::{self, MasterKey, Purpose};
use crate::error::{Result, VaultError};
use crate::id::ShortId;

/// The format version this build writes and the newest it reads.
pub const FORMAT_VERSION: u64 = 1;
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

impl KdfParams {
    fn validate(&self) -> Result<()> {
        let ok = (8..=(4 << 20)).contains(&self.memory_kib)
            && (1..=64).contains(&self.iterations)
            && (1..=16).contains(&self.parallelism)
            && self.memory_kib >= 8 * self.parallelism;
        if ok {
            Ok(())
        } else {
            Err(VaultError::invalid_input(format!(
                "KDF parameters out of range: {self:?}"
            )))
        }
    }

    fn derive(&self, password: &[u8], salt: &[u8]) -> Result<Zeroizing<[u8; 32]>> {
        self.validate()?;
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
    /// BLAKE3-keyed MAC of (version, vault id, params), hex.
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
    /// vault from a newer Nimbus says so instead of failing to parse.
    pub fn decode(bytes: &[u8]) -> Result<Config> {
        let value: serde_json::Value = serde_json::from_slice(bytes)
            .map_err(|e| VaultError::corrupt(CONFIG_KEY, format!("not valid JSON ({e})")))?;
        if value.get("format").and_then(|f| f.as_str()) != Some(FORMAT_NAME) {
            return Err(VaultError::corrupt(CONFIG_KEY, "it is not a Nimbus vault config"));
        }
        match value.get("version").and_then(|v| v.as_u64()) {
            Some(v) if v > FORMAT_VERSION => {
                return Err(VaultError::NewerFormat {
                    found: v,
                    supported: FORMAT_VERSION,
                })
            }
            Some(v) if v == FORMAT_VERSION => {}
            _ => {
                return Err(VaultError::corrupt(
                    CONFIG_KEY,
                    "the format version is missing or invalid",
                ))
            }
        }
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
        if file.key_slots.is_empty() {
            return Err(VaultError::corrupt(CONFIG_KEY, "it has no key slot"));
        }
        for slot in &file.key_slots {
            decode_hex::<16>(&slot.salt, "a key slot salt")?;
            if slot.kind == SlotKind::Password && slot.kdf.is_none() {
                return Err(VaultError::corrupt(CONFIG_KEY, "a password slot has no KDF parameters"));
            }
        }
        decode_hex::<32>(&file.params_mac, "the parameter MAC")?;
        Ok(Config { file, vault_id })
    }

    /// The bytes to store.
    pub fn encode(&self) -> Vec<u8> {
        let mut file = self.file.clone();
        file.checksum = file.compute_checksum();
        let mut v = serde_json::to_vec_pretty(&file).unwrap_or_default();
        v.push(b'\n');
        v
    }

    /// Creates a new vault's config, master key and recovery key.
    pub fn create(password: &[u8], params: VaultParams, kdf: KdfParams) -> Result<(Config, MasterKey, RecoveryKey)> {
        params.validate()?;
        kdf.validate()?;
        let master = MasterKey::random();
        let recovery = RecoveryKey::random();
        let vault_id = ShortId::random();
        let mut file = ConfigFile {
            format: FORMAT_NAME.into(),
            version: FORMAT_VERSION,
            vault_id: vault_id.to_hex(),
            params,
            key_slots: vec![],
            params_mac: String::new(),
            checksum: String::new(),
        };
        file.key_slots.push(password_slot(&vault_id, &master, password, kdf)?);
        file.key_slots
            .push(wrap_slot(&vault_id, &master, SlotKind::Recovery, None, &recovery.0)?);
        let mut cfg = Config { file, vault_id };
        cfg.file.params_mac = hex::encode(cfg.params_mac(&master));
        Ok((cfg, master, recovery))
    }

    fn params_mac(&self, master: &MasterKey) -> [u8; 32] {
        let keys = master.derive();
        let body = postcard::to_allocvec(&(self.file.version, self.vault_id.0, &self.file.params)).unwrap_or_default();
        *blake3::keyed_hash(&keys.config_mac, &body).as_bytes()
    }

    fn check_mac(&self, master: &MasterKey) -> Result<()> {
        let stored = decode_hex::<32>(&self.file.params_mac, "the parameter MAC")?;
        let expected = self.params_mac(master);
        if constant_time_eq(&stored, &expected) {
            Ok(())
        } else {
            Err(VaultError::corrupt(CONFIG_KEY, "its parameters do not match their MAC"))
        }
    }

    /// Unlocks the master key with a password.
    pub fn unlock_with_password(&self, password: &[u8]) -> Result<MasterKey> {
        for (i, slot) in self.file.key_slots.iter().enumerate() {
            if slot.kind != SlotKind::Password {
                continue;
            }
            let Some(kdf) = slot.kdf else { continue };
            let salt = decode_hex::<16>(&slot.salt, "a key slot salt")?;
            let kek = kdf
                .derive(password, &salt)
                .map_err(|e| VaultError::corrupt(CONFIG_KEY, e.to_string()))?;
            if let Some(master) = self.unwrap_slot(i, &kek)? {
                self.check_mac(&master)?;
                return Ok(master);
            }
        }
        Err(VaultError::WrongPassword)
    }

    /// Unlocks the master key with the recovery key.
    pub fn unlock_with_recovery(&self, recovery: &RecoveryKey) -> Result<MasterKey> {
        for (i, slot) in self.file.key_slots.iter().enumerate() {
            if slot.kind != SlotKind::Recovery {
                continue;
            }
            let salt = decode_hex::<16>(&slot.salt, "a key slot salt")?;
            let kek = recovery_kek(&recovery.0, &salt);
            if let Some(master) = self.unwrap_slot(i, &kek)? {
                self.check_mac(&master)?;
                return Ok(master);
            }
        }
        Err(VaultError::WrongRecoveryKey)
    }

    fn unwrap_slot(&self, index: usize, kek: &[u8; 32]) -> Result<Option<MasterKey>> {
        let slot = &self.file.key_slots[index];
        let wrapped =
            hex::decode(&slot.wrapped_key).map_err(|_| VaultError::corrupt(CONFIG_KEY, "a wrapped key is not hex"))?;
        let ad_id = slot_ad_id(&self.vault_id, slot.kind);
        match crypto::open(&crypto::cipher(kek), Purpose::KeySlot, &ad_id, &wrapped) {
            Ok(plain) => {
                let plain = Zeroizing::new(plain);
                let arr: [u8; 32] = plain
                    .as_slice()
                    .try_into()
                    .map_err(|_| VaultError::corrupt(CONFIG_KEY, "a wrapped key has the wrong length"))?;
                Ok(Some(MasterKey::from_bytes(arr)))
            }
            Err(_) => Ok(None),
        }
    }

    /// A copy of this config whose password slots are replaced by one for
    /// `new_password`. The recovery slot and everything else stay as they are.
    pub fn with_new_password(&self, master: &MasterKey, new_password: &[u8], kdf: KdfParams) -> Result<Config> {
        self.check_mac(master)?;
        let mut file = self.file.clone();
        file.key_slots.retain(|s| s.kind != SlotKind::Password);
        file.key_slots
            .insert(0, password_slot(&self.vault_id, master, new_password, kdf)?);
        Ok(Config {
            file,
            vault_id: self.vault_id,
        })
    }

    /// The KDF parameters of the first password slot (reused on `passwd`).
    pub fn password_kdf(&self) -> KdfParams {
        self.file.key_slots.iter().find_map(|s| s.kdf).unwrap_or_default()
    }
}

fn slot_ad_id(vault_id: &ShortId, kind: SlotKind) -> Vec<u8> {
    let mut v = vault_id.0.to_vec();
    v.push(match kind {
        SlotKind::Password => 0,
        SlotKind::Recovery => 1,
    });
    v
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
    })
}

fn wrap_slot(
    vault_id: &ShortId,
    master: &MasterKey,
    kind: SlotKind,
    kdf: Option<KdfParams>,
    secret: &[u8; 32],
) -> Result<KeySlot> {
    let salt: [u8; 16] = rand::random();
    let kek = recovery_kek(secret, &salt);
    let sealed = crypto::seal(
        &crypto::cipher(&kek),
        Purpose::KeySlot,
        &slot_ad_id(vault_id, kind),
        master.expose(),
    );
    Ok(KeySlot {
        kind,
        kdf,
        salt: hex::encode(salt),
        wrapped_key: hex::encode(sealed),
    })
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fast_kdf() -> KdfParams {
        KdfParams {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
            ..KdfParams::default()
        }
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
            .replace("\"version\": 1", "\"version\": 7");
        assert!(matches!(
            Config::decode(text.as_bytes()),
            Err(VaultError::NewerFormat { found: 7, .. })
        ));
    }
}

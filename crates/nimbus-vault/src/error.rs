//! Errors of the vault layer.
//!
//! Rules: every variant a person can see says what happened and what to do
//! next; an error about stored data names the object it came from; a check
//! that fails never yields the bytes it was checking. Secrets never appear in
//! an error.

use nimbus_backend::BackendError;

/// Everything that can go wrong reading or writing a vault.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("wrong password: no key slot of this vault opens with it. Try again, or use the recovery key shown when the vault was created (`nimbus passwd --recovery`)")]
    WrongPassword,

    #[error(
        "wrong recovery key: it does not open this vault. Check it for typos (letters and digits, dashes optional)"
    )]
    WrongRecoveryKey,

    #[error("no vault at {store}: it has no `config` object. Check the store name, or create a vault there with `nimbus init`")]
    NoVault { store: String },

    #[error("a vault already exists at {store}; refusing to overwrite it")]
    AlreadyExists { store: String },

    #[error("this vault uses format version {found}, but this Nimbus reads only up to version {supported}. Update Nimbus to open it")]
    NewerFormat { found: u64, supported: u64 },

    #[error("another device upgraded this vault to format version {now} after this device opened it (at version {opened}), so this device's changes were not saved in the old format. Nothing is lost: they stay on this device. Open the vault again here (lock and unlock the drive, or restart Nimbus) and they save in the new format")]
    UpgradedElsewhere { opened: u64, now: u64 },

    #[error("object `{object}` is damaged or was altered on the server: {what}. Nothing from it was used. Run `nimbus check` to list every damaged object")]
    Corrupt { object: String, what: String },

    #[error("object `{object}` is missing from the store ({what}). Run `nimbus check` to list every missing object")]
    Missing { object: String, what: String },

    #[error("{0}")]
    Backend(#[from] BackendError),

    #[error("{0}")]
    InvalidInput(String),

    #[error("`{path}` does not exist in this snapshot")]
    PathNotFound { path: String },

    #[error("the vault holds no snapshot yet: put something in it first with `nimbus put`")]
    Empty,
}

impl VaultError {
    pub fn corrupt(object: impl Into<String>, what: impl Into<String>) -> Self {
        VaultError::Corrupt {
            object: object.into(),
            what: what.into(),
        }
    }

    pub fn missing(object: impl Into<String>, what: impl Into<String>) -> Self {
        VaultError::Missing {
            object: object.into(),
            what: what.into(),
        }
    }

    pub fn invalid_input(msg: impl Into<String>) -> Self {
        VaultError::InvalidInput(msg.into())
    }

    /// Turns a backend "not found" for `object` into [`VaultError::Missing`].
    pub fn from_get(object: &str, err: BackendError, what: &str) -> Self {
        if err.kind() == nimbus_backend::BackendErrorKind::NotFound {
            VaultError::missing(object, what)
        } else {
            VaultError::Backend(err)
        }
    }
}

pub type Result<T, E = VaultError> = std::result::Result<T, E>;

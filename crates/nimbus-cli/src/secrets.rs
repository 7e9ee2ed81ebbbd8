//! Reading passwords and recovery keys: from a file or the environment for
//! scripts, else from a prompt that does not echo. Secrets stay in
//! `Zeroizing` buffers and are never printed.

use anyhow::{bail, Context, Result};
use std::io::IsTerminal;
use std::path::Path;
use zeroize::Zeroizing;

fn from_file(path: &Path) -> Result<Zeroizing<String>> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .with_context(|| format!("could not read the password file {}", path.display()))?,
    );
    // A trailing newline is how editors and `echo` end a file; it is not part of the secret.
    Ok(Zeroizing::new(text.trim_end_matches(['\n', '\r']).to_string()))
}

fn prompt(text: &str) -> Result<Zeroizing<String>> {
    if !std::io::stdin().is_terminal() {
        bail!("a password is needed but there is no terminal to ask in: set NIMBUS_PASSWORD or use --password-file");
    }
    Ok(Zeroizing::new(
        rpassword::prompt_password(text).context("could not read the password")?,
    ))
}

/// The vault password, for opening.
pub fn password(file: Option<&Path>) -> Result<Zeroizing<String>> {
    secret(file, "NIMBUS_PASSWORD", "Vault password: ")
}

fn secret(file: Option<&Path>, env: &str, prompt_text: &str) -> Result<Zeroizing<String>> {
    if let Some(f) = file {
        return from_file(f);
    }
    if let Ok(v) = std::env::var(env) {
        return Ok(Zeroizing::new(v));
    }
    prompt(prompt_text)
}

/// A new password: from a file or the environment, or typed twice.
pub fn new_password(file: Option<&Path>, env: &str) -> Result<Zeroizing<String>> {
    let pw = if let Some(f) = file {
        from_file(f)?
    } else if let Ok(v) = std::env::var(env) {
        Zeroizing::new(v)
    } else {
        let a = prompt("New vault password: ")?;
        let b = prompt("Type it again: ")?;
        if *a != *b {
            bail!("the two passwords differ; nothing was changed");
        }
        a
    };
    if pw.is_empty() {
        bail!("the password is empty; choose one (a few random words make a strong one)");
    }
    if pw.chars().count() < 8 {
        eprintln!("warning: this password is short; anyone who gets the vault's files can try to guess it offline");
    }
    Ok(pw)
}

/// The recovery key shown at `init`.
pub fn recovery_key(file: Option<&Path>) -> Result<Zeroizing<String>> {
    secret(file, "NIMBUS_RECOVERY_KEY", "Recovery key: ")
}

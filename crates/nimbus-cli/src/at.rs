//! `--at`: choosing a snapshot by commit id (or a unique prefix of one) or
//! by time (the newest snapshot made at or before it).

use anyhow::{bail, Result};
use nimbus_vault::{Commit, CommitId, Timestamp, Vault, VaultError};

/// The snapshot to read: `--at` if given, else the newest.
pub async fn resolve(vault: &Vault, at: Option<&str>) -> Result<(CommitId, Commit)> {
    let Some(at) = at.map(str::trim).filter(|s| !s.is_empty() && *s != "latest") else {
        return match vault.head().await? {
            Some(c) => Ok(c),
            None => Err(VaultError::Empty.into()),
        };
    };
    let commits = commits_warning_of_damaged(vault).await?;
    if commits.is_empty() {
        return Err(VaultError::Empty.into());
    }
    let is_hex = at.len() >= 4 && at.len() <= 64 && at.chars().all(|c| c.is_ascii_hexdigit());
    if is_hex {
        let lower = at.to_ascii_lowercase();
        let found: Vec<_> = commits
            .iter()
            .filter(|(id, _)| id.to_hex().starts_with(&lower))
            .collect();
        match found.as_slice() {
            [one] => return Ok((one.0, one.1.clone())),
            [] if looks_like_time(at) => {}
            [] => bail!("no snapshot id starts with `{at}`; `nimbus log` lists them"),
            _ => bail!("`{at}` matches {} snapshots; give more digits", found.len()),
        }
    }
    let t = parse_time(at)?;
    // Times are typed to the second: a snapshot made during that second counts.
    match commits.iter().rev().find(|(_, c)| c.time.secs <= t.secs) {
        Some((id, c)) => Ok((*id, c.clone())),
        None => bail!(
            "no snapshot is as old as {at}; the oldest is from {}",
            format_time(commits[0].1.time)
        ),
    }
}

/// Every readable snapshot, oldest first, with a warning on stderr for
/// each commit object that could not be read: one damaged snapshot costs
/// that snapshot, not the history.
pub async fn commits_warning_of_damaged(vault: &Vault) -> Result<Vec<(CommitId, Commit)>> {
    let scan = vault.scan_commits().await?;
    for (_, why) in &scan.damaged {
        eprintln!("warning: skipped one snapshot: {why}");
    }
    Ok(scan.commits)
}

fn looks_like_time(s: &str) -> bool {
    s.len() == 8 && s.chars().all(|c| c.is_ascii_digit())
}

/// Accepts RFC 3339 (`2026-11-23T14:05:00Z`), `2026-11-23 14:05[:00]` and
/// `2026-11-23` (all UTC), or a Unix time in seconds (`@1700000000`).
pub fn parse_time(s: &str) -> Result<Timestamp> {
    if let Some(secs) = s.strip_prefix('@') {
        if let Ok(n) = secs.parse::<i64>() {
            return Ok(Timestamp { secs: n, nanos: 0 });
        }
    }
    let candidates = [s.to_string(), format!("{s}:00"), format!("{s} 23:59:59")];
    for c in candidates {
        if let Ok(t) = humantime::parse_rfc3339_weak(&c) {
            return Ok(Timestamp::from_system(t));
        }
    }
    bail!("`{s}` is neither a snapshot id nor a time; use an id from `nimbus log` or a UTC time like 2026-11-23 14:05")
}

/// `2026-11-23 14:05:09` (UTC).
pub fn format_time(t: Timestamp) -> String {
    t.format_utc()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_any_time() {
        let t = |secs| format_time(Timestamp { secs, nanos: 0 });
        assert_eq!(t(0), "1970-01-01 00:00:00");
        assert_eq!(t(1_700_000_000), "2023-11-14 22:13:20");
        assert_eq!(t(-1), "1969-12-31 23:59:59");
        assert_eq!(t(951_782_400), "2000-02-29 00:00:00");
        assert_eq!(t(253_402_300_800), "10000-01-01 00:00:00");
        let _ = t(i64::MIN / 2);
    }
}

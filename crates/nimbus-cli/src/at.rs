//! `--at`: choosing a snapshot by commit id (or a unique prefix of one) or
//! by time (the newest snapshot made at or before it), with
//! `nimbus_vault::pick`, which the service's restore uses too.

use anyhow::Result;
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
    let (id, commit) = nimbus_vault::pick(&commits, at, "nimbus log", |(id, c)| (id.to_hex(), c.time.secs))?;
    Ok((*id, commit.clone()))
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

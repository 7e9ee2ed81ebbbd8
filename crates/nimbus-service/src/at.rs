//! Choosing a snapshot: by id (or a unique prefix of one), or by time (the
//! newest snapshot made at or before it).

use nimbus_api::SnapshotInfo;
use nimbus_vault::Timestamp;

/// Accepts RFC 3339 (`2026-11-23T14:05:00Z`), `2026-11-23 14:05[:00]` and
/// `2026-11-23` (all UTC), or a Unix time in seconds (`@1700000000`).
pub fn parse_time(s: &str) -> Option<Timestamp> {
    if let Some(secs) = s.strip_prefix('@') {
        if let Ok(n) = secs.parse::<i64>() {
            return Some(Timestamp { secs: n, nanos: 0 });
        }
    }
    let candidates = [s.to_string(), format!("{s}:00"), format!("{s} 23:59:59")];
    candidates
        .iter()
        .find_map(|c| humantime::parse_rfc3339_weak(c).ok())
        .map(Timestamp::from_system)
}

/// `20261123` could be a time or an id prefix.
fn looks_like_time(s: &str) -> bool {
    s.len() == 8 && s.chars().all(|c| c.is_ascii_digit())
}

/// The snapshot `at` names among `snaps` (oldest first), or why none.
pub fn pick<'a>(snaps: &'a [SnapshotInfo], at: &str) -> Result<&'a SnapshotInfo, String> {
    let at = at.trim();
    if snaps.is_empty() {
        return Err("the vault has no snapshots yet".into());
    }
    if at.is_empty() || at == "latest" {
        return snaps.last().ok_or_else(|| "no snapshots".to_string());
    }
    let is_hex = at.len() >= 4 && at.len() <= 64 && at.chars().all(|c| c.is_ascii_hexdigit());
    if is_hex {
        let lower = at.to_ascii_lowercase();
        let found: Vec<_> = snaps.iter().filter(|s| s.id.starts_with(&lower)).collect();
        match found.as_slice() {
            [one] => return Ok(one),
            [] if looks_like_time(at) => {}
            [] => {
                return Err(format!(
                    "no snapshot id starts with `{at}`; `nimbus snapshots` lists them"
                ))
            }
            _ => return Err(format!("`{at}` matches {} snapshots; give more digits", found.len())),
        }
    }
    let t = parse_time(at).ok_or_else(|| {
        format!("`{at}` is neither a snapshot id nor a time; use an id from `nimbus snapshots` or a UTC time like 2026-11-23 14:05")
    })?;
    // Times are typed to the second: a snapshot made during that second counts.
    snaps.iter().rev().find(|s| s.time <= t.secs).ok_or_else(|| {
        format!(
            "no snapshot is as old as {at}; the oldest is from {}",
            Timestamp {
                secs: snaps[0].time,
                nanos: 0
            }
            .format_utc()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(id: &str, time: i64) -> SnapshotInfo {
        SnapshotInfo {
            id: id.into(),
            name: String::new(),
            time,
            device: String::new(),
        }
    }

    #[test]
    fn picks_by_id_prefix_or_time() {
        let s = [
            snap("aaaa11", 1_700_000_000),
            snap("aabb22", 1_700_000_100),
            snap("cc33", 1_700_000_200),
        ];
        assert_eq!(pick(&s, "latest").map(|x| x.id.as_str()), Ok("cc33"));
        assert_eq!(pick(&s, "aabb").map(|x| x.id.as_str()), Ok("aabb22"));
        // Too short for an id, and not a time.
        assert!(pick(&s, "aa").is_err());
        assert!(pick(&s, "aaaa").is_ok());
        assert!(pick(&s, "dddd").is_err());
        assert_eq!(pick(&s, "@1700000150").map(|x| x.id.as_str()), Ok("aabb22"));
        assert_eq!(pick(&s, "2023-11-14 22:13:20").map(|x| x.id.as_str()), Ok("aaaa11"));
        assert!(pick(&s, "2020-01-01").is_err());
        assert!(pick(&[], "latest").is_err());
    }
}

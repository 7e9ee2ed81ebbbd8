//! Choosing a snapshot the way a person names one: by commit id (or a
//! unique prefix of one), or by time (the newest snapshot made at or
//! before it). One implementation for the CLI's `--at` and the service's
//! restore and browse.

use crate::Timestamp;

/// Why no snapshot was picked. `lister` is the command that lists the
/// snapshots in the caller's world (`nimbus log`, `nimbus snapshots`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PickError {
    #[error("the vault has no snapshots yet")]
    Empty,
    #[error("no snapshot id starts with `{at}`; `{lister}` lists them")]
    NoSuchId { at: String, lister: &'static str },
    #[error("`{at}` matches {count} snapshots; give more digits")]
    Ambiguous { at: String, count: usize },
    #[error(
        "`{at}` is neither a snapshot id nor a time; use an id from `{lister}` or a UTC time like 2026-11-23 14:05"
    )]
    NotATime { at: String, lister: &'static str },
    #[error("no snapshot is as old as {at}; the oldest is from {oldest}")]
    TooOld { at: String, oldest: String },
}

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

/// The snapshot `at` names among `snaps` (oldest first); `key` gives a
/// snapshot's id in hex and its time in Unix seconds. Empty or `latest`
/// is the newest.
pub fn pick<'a, T>(
    snaps: &'a [T],
    at: &str,
    lister: &'static str,
    key: impl Fn(&T) -> (String, i64),
) -> Result<&'a T, PickError> {
    let at = at.trim();
    let (Some(oldest), Some(newest)) = (snaps.first(), snaps.last()) else {
        return Err(PickError::Empty);
    };
    if at.is_empty() || at == "latest" {
        return Ok(newest);
    }
    let is_hex = at.len() >= 4 && at.len() <= 64 && at.chars().all(|c| c.is_ascii_hexdigit());
    if is_hex {
        let lower = at.to_ascii_lowercase();
        let found: Vec<_> = snaps.iter().filter(|s| key(s).0.starts_with(&lower)).collect();
        match found.as_slice() {
            [one] => return Ok(one),
            [] if looks_like_time(at) => {}
            [] => {
                return Err(PickError::NoSuchId {
                    at: at.to_string(),
                    lister,
                })
            }
            _ => {
                return Err(PickError::Ambiguous {
                    at: at.to_string(),
                    count: found.len(),
                })
            }
        }
    }
    let t = parse_time(at).ok_or_else(|| PickError::NotATime {
        at: at.to_string(),
        lister,
    })?;
    // Times are typed to the second: a snapshot made during that second counts.
    snaps
        .iter()
        .rev()
        .find(|s| key(s).1 <= t.secs)
        .ok_or_else(|| PickError::TooOld {
            at: at.to_string(),
            oldest: Timestamp {
                secs: key(oldest).1,
                nanos: 0,
            }
            .format_utc(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &(&str, i64)) -> (String, i64) {
        (s.0.to_string(), s.1)
    }

    fn id<'a>(r: Result<&'a (&'a str, i64), PickError>) -> Result<&'a str, PickError> {
        r.map(|s| s.0)
    }

    #[test]
    fn picks_by_id_prefix_or_time() {
        let s = [
            ("aaaa11", 1_700_000_000),
            ("aabb22", 1_700_000_100),
            ("cc33", 1_700_000_200),
        ];
        let p = |at| pick(&s, at, "nimbus snapshots", key);
        assert_eq!(id(p("latest")), Ok("cc33"));
        assert_eq!(id(p("")), Ok("cc33"));
        assert_eq!(id(p("aabb")), Ok("aabb22"));
        // Too short for an id, and not a time.
        assert!(matches!(p("aa"), Err(PickError::NotATime { .. })));
        assert!(p("aaaa").is_ok());
        assert!(matches!(p("aa11"), Err(PickError::NoSuchId { .. })));
        assert!(matches!(p("dddd"), Err(PickError::NoSuchId { .. })));
        assert_eq!(id(p("@1700000150")), Ok("aabb22"));
        assert_eq!(id(p("2023-11-14 22:13:20")), Ok("aaaa11"));
        assert_eq!(
            p("2020-01-01").map_err(|e| e.to_string()),
            Err("no snapshot is as old as 2020-01-01; the oldest is from 2023-11-14 22:13:20".to_string())
        );
        assert_eq!(
            pick(&[] as &[(&str, i64)], "latest", "nimbus log", key),
            Err(PickError::Empty)
        );
    }

    #[test]
    fn an_ambiguous_prefix_and_a_date_like_prefix() {
        let s = [
            ("20261123aa", 1_700_000_000),
            ("20261123bb", 1_700_000_100),
            ("ab", 1_900_000_000),
        ];
        let p = |at| pick(&s, at, "nimbus log", key);
        assert_eq!(
            p("2026112").map_err(|e| e.to_string()),
            Err("`2026112` matches 2 snapshots; give more digits".to_string())
        );
        // Eight digits that match no id are taken for a time, and said
        // to be neither.
        assert!(matches!(p("20231115"), Err(PickError::NotATime { .. })));
        assert_eq!(
            p("zz").map_err(|e| e.to_string()),
            Err(
                "`zz` is neither a snapshot id nor a time; use an id from `nimbus log` or a UTC time like \
                 2026-11-23 14:05"
                    .to_string()
            )
        );
    }
}

//! Bandwidth rates as people type them (`500k`, `5M`, `1.5MiB`, `off`),
//! for `nimbus mount --upload-limit` and `nimbus limit` (clap value
//! parsers: clap shows the error beside the option).

/// A rate that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RateError {
    #[error("`{0}` is not a rate; write it as 500k, 5M or 2MiB (bytes per second)")]
    NotARate(String),
    #[error("`{0}`: a rate is more than 0 (use `off` for no limit)")]
    NotPositive(String),
}

/// A rate in bytes per second: `1000`, `500k` / `500K` (×1000), `5M`,
/// `1G`, `64KiB` / `5MiB` (×1024), with an optional `/s` or `B`.
pub fn parse_rate(s: &str) -> Result<u64, RateError> {
    let t = s.trim();
    let t = t.strip_suffix("/s").unwrap_or(t);
    let lower = t.to_ascii_lowercase();
    let (num, mult) = [
        ("kib", 1u64 << 10),
        ("mib", 1 << 20),
        ("gib", 1 << 30),
        ("kb", 1000),
        ("mb", 1_000_000),
        ("gb", 1_000_000_000),
        ("k", 1000),
        ("m", 1_000_000),
        ("g", 1_000_000_000),
        ("b", 1),
    ]
    .iter()
    .find_map(|(suffix, m)| lower.strip_suffix(suffix).map(|n| (n.trim().to_string(), *m)))
    .unwrap_or((lower.clone(), 1));
    let v: f64 = num.parse().map_err(|_| RateError::NotARate(s.to_string()))?;
    if !(v.is_finite() && v > 0.0) {
        return Err(RateError::NotPositive(s.to_string()));
    }
    Ok((v * mult as f64).round().max(1.0) as u64)
}

/// [`parse_rate`], or `off` / `0` / `none` for no limit (0).
pub fn parse_rate_or_off(s: &str) -> Result<u64, RateError> {
    match s.trim().to_ascii_lowercase().as_str() {
        "off" | "none" | "0" | "unlimited" => Ok(0),
        _ => parse_rate(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates() {
        assert_eq!(parse_rate("1000"), Ok(1000));
        assert_eq!(parse_rate("500k"), Ok(500_000));
        assert_eq!(parse_rate("5M/s"), Ok(5_000_000));
        assert_eq!(parse_rate("1.5MiB"), Ok(1_572_864));
        assert_eq!(parse_rate("64 KiB"), Ok(65_536));
        assert!(parse_rate("fast").is_err());
        assert!(parse_rate("0").is_err());
        assert_eq!(parse_rate_or_off("off"), Ok(0));
    }
}

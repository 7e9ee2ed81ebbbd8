//! Conflict copy names (docs/SYNC.md §3.6):
//! `name (conflict <device> <YYYY-MM-DD HH.MM UTC>).ext`.
//!
//! The name is a function of tree data, commit fields and store times only,
//! so every device that merges the same heads names a copy alike.

use nimbus_vault::tree::MAX_NAME;
use nimbus_vault::{DeviceId, Timestamp};

/// Extensions of two parts that stay together (`x.tar.gz`).
const DOUBLE: [&[u8]; 4] = [b".tar.gz", b".tar.xz", b".tar.zst", b".tar.bz2"];

/// An extension longer than this (after the dot) is no extension.
const MAX_EXT: usize = 16;

/// A device name is at most this long in a commit; a longer one (from a
/// peer that broke the rule) is cut so the stem keeps some room.
const MAX_DEVICE: usize = 64;

/// How a device appears in a conflict name: its name, or the first 7 hex
/// digits of its id when the commit has none (version 2 commits). Any
/// `/`, NUL or other control character becomes `_`, so the result is
/// always usable in a file name.
pub fn device_label(device_name: &str, device: &DeviceId) -> String {
    if device_name.is_empty() {
        device.to_hex()[..7].to_string()
    } else {
        clean(device_name)
    }
}

/// A device name made safe for a file name: `/` and control characters
/// (NUL among them) become `_`, and it is cut to 64 bytes.
fn clean(device: &str) -> String {
    let s: String = device
        .chars()
        .map(|c| if c == '/' || c.is_control() { '_' } else { c })
        .collect();
    cut_str(&s, MAX_DEVICE).to_string()
}

/// `YYYY-MM-DD HH.MM UTC`: to the minute, with `.` between hour and minute
/// (`:` is not allowed in names on Windows and shows oddly in Finder).
pub fn format_time(time: Timestamp) -> String {
    let (y, m, d, h, mi, _) = time.utc_parts();
    format!("{y:04}-{m:02}-{d:02} {h:02}.{mi:02} UTC")
}

/// Splits a name into stem and extension (with its dot) as §3.6 says.
/// Folders and dotfiles keep the whole name as stem.
pub fn split_ext(name: &[u8], is_dir: bool) -> (&[u8], &[u8]) {
    if is_dir {
        return (name, b"");
    }
    for double in DOUBLE {
        if name.len() > double.len() && name[name.len() - double.len()..].eq_ignore_ascii_case(double) {
            return name.split_at(name.len() - double.len());
        }
    }
    match name.iter().rposition(|&b| b == b'.') {
        // A dot first is a dotfile (`.bashrc`), not an extension.
        Some(0) | None => (name, b""),
        Some(i) => {
            let ext = &name[i + 1..];
            if ext.is_empty() || ext.len() > MAX_EXT || ext.contains(&b' ') {
                (name, b"")
            } else {
                name.split_at(i)
            }
        }
    }
}

/// The conflict name of `name` for a copy made by `device` (a
/// [`device_label`]) at `time`, the first of `base`, `base 2`, `base 3`…
/// that `taken` refuses. Callers give copies their names in order of copy
/// id, so the numbers are the same on every device.
///
/// The result is a valid name (not empty, no `/` or NUL, at most 255
/// bytes) for any valid `name`: the stem is cut to fit, on a character
/// boundary when the name is UTF-8, on a byte boundary when it is not.
pub fn conflict_name(
    name: &[u8],
    is_dir: bool,
    device: &str,
    time: Timestamp,
    taken: impl Fn(&[u8]) -> bool,
) -> Vec<u8> {
    let (stem, ext) = split_ext(name, is_dir);
    let utf8 = std::str::from_utf8(name).is_ok();
    // Cleaned again: the name must be valid whatever a peer wrote.
    let device = clean(device);
    let when = format_time(time);
    let mut n: u64 = 1;
    loop {
        let mut tag = format!(" (conflict {device} {when}");
        if n > 1 {
            tag.push_str(&format!(" {n}"));
        }
        tag.push(')');
        let room = MAX_NAME.saturating_sub(tag.len() + ext.len());
        let stem = if utf8 {
            cut_utf8(stem, room)
        } else {
            &stem[..stem.len().min(room)]
        };
        let mut out = Vec::with_capacity(stem.len() + tag.len() + ext.len());
        out.extend_from_slice(stem);
        out.extend_from_slice(tag.as_bytes());
        out.extend_from_slice(ext);
        if !taken(&out) {
            return out;
        }
        n += 1;
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a
/// character boundary.
fn cut_str(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// [`cut_str`] for bytes that are a prefix of valid UTF-8 up to a cut.
fn cut_utf8(b: &[u8], max: usize) -> &[u8] {
    if b.len() <= max {
        return b;
    }
    let mut end = max;
    // A continuation byte (10xxxxxx) is inside a character.
    while end > 0 && (b[end] & 0xC0) == 0x80 {
        end -= 1;
    }
    &b[..end]
}

/// What a conflict copy's name says of itself: the name of the file it is
/// a version of, the device label and the time (to the minute).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConflictTag {
    /// The original's name: the name without the tag. A stem that
    /// [`conflict_name`] cut to fit 255 bytes gives a shorter name than
    /// the original's.
    pub original: Vec<u8>,
    pub device: String,
    pub time: Timestamp,
}

/// Reads a name [`conflict_name`] made: `None` for any other name. The
/// last ` (conflict ` in the name is the tag; the device label is what
/// comes before the date, so labels with spaces read back whole.
pub fn parse_conflict_name(name: &[u8]) -> Option<ConflictTag> {
    const OPEN: &[u8] = b" (conflict ";
    let start = name.windows(OPEN.len()).rposition(|w| w == OPEN)?;
    let rest = &name[start + OPEN.len()..];
    // A device label may hold `)`: the tag ends at the first `)` that
    // closes a tag that reads whole.
    let (close, (device, time)) = rest
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b')')
        .find_map(|(i, _)| Some((i, parse_tag(std::str::from_utf8(&rest[..i]).ok()?)?)))?;
    let mut original = name[..start].to_vec();
    original.extend_from_slice(&rest[close + 1..]);
    if original.is_empty() {
        return None;
    }
    Some(ConflictTag { original, device, time })
}

/// `<device> YYYY-MM-DD HH.MM UTC[ n]`: the device label and the time.
fn parse_tag(inner: &str) -> Option<(String, Timestamp)> {
    let mut words: Vec<&str> = inner.split(' ').collect();
    // ` 2`, ` 3`… after `UTC` when the first name was taken.
    if words.last().is_some_and(|w| *w != "UTC") {
        let n = words.pop()?;
        if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
    }
    if words.len() < 4 || words.pop()? != "UTC" {
        return None;
    }
    let hm = words.pop()?;
    let ymd = words.pop()?;
    let time = parse_time(ymd, hm)?;
    let device = words.join(" ");
    (!device.is_empty()).then_some((device, time))
}

/// `YYYY-MM-DD` and `HH.MM` (UTC) as a time, or `None` if either is not one.
fn parse_time(ymd: &str, hm: &str) -> Option<Timestamp> {
    let num = |s: &str, len: usize| -> Option<i64> {
        (s.len() == len && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok())?
    };
    let mut d = ymd.splitn(3, '-');
    let (y, m, day) = (num(d.next()?, 4)?, num(d.next()?, 2)?, num(d.next()?, 2)?);
    let (h, mi) = hm.split_once('.')?;
    let (h, mi) = (num(h, 2)?, num(mi, 2)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || h > 23 || mi > 59 {
        return None;
    }
    let secs = days_from_civil(y, m, day) * 86_400 + h * 3600 + mi * 60;
    Some(Timestamp { secs, nanos: 0 })
}

/// Days since 1970-01-01 of a date in the proleptic Gregorian calendar
/// (Howard Hinnant's `days_from_civil`, the inverse of the vault's
/// `civil_from_days`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

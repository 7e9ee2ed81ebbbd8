//! Conflict names (docs/SYNC.md §3.6): the format, extensions, dotfiles,
//! long and non-UTF-8 names, and names already taken.

use std::collections::BTreeSet;

use nimbus_merge::names::{conflict_name, device_label, format_time, parse_conflict_name, split_ext};
use nimbus_vault::tree::valid_name;
use nimbus_vault::{ShortId, Timestamp};
use proptest::prelude::*;

/// 2026-12-07 14:05:59 UTC.
const T: Timestamp = Timestamp {
    secs: 1_796_652_359,
    nanos: 0,
};

fn name(n: &str, dir: bool) -> String {
    String::from_utf8(conflict_name(n.as_bytes(), dir, "laptop", T, |_| false)).expect("utf-8")
}

#[test]
fn the_format() {
    assert_eq!(format_time(T), "2026-12-07 14.05 UTC");
    assert_eq!(
        name("report.docx", false),
        "report (conflict laptop 2026-12-07 14.05 UTC).docx"
    );
    assert_eq!(name("notes", false), "notes (conflict laptop 2026-12-07 14.05 UTC)");
}

#[test]
fn extensions() {
    assert_eq!(name(".bashrc", false), ".bashrc (conflict laptop 2026-12-07 14.05 UTC)");
    assert_eq!(
        name("a.tar.gz", false),
        "a (conflict laptop 2026-12-07 14.05 UTC).tar.gz"
    );
    assert_eq!(
        name("a.tar.xz", false),
        "a (conflict laptop 2026-12-07 14.05 UTC).tar.xz"
    );
    assert_eq!(
        name("a.tar.zst", false),
        "a (conflict laptop 2026-12-07 14.05 UTC).tar.zst"
    );
    assert_eq!(
        name("a.TAR.BZ2", false),
        "a (conflict laptop 2026-12-07 14.05 UTC).TAR.BZ2"
    );
    assert_eq!(name("a.b.c", false), "a.b (conflict laptop 2026-12-07 14.05 UTC).c");
    // Longer than 16 bytes, or with a space: not an extension.
    assert_eq!(
        name("x.abcdefghijklmnopq", false),
        "x.abcdefghijklmnopq (conflict laptop 2026-12-07 14.05 UTC)"
    );
    assert_eq!(
        name("x.abcdefghijklmnop", false),
        "x (conflict laptop 2026-12-07 14.05 UTC).abcdefghijklmnop"
    );
    assert_eq!(
        name("v1. final", false),
        "v1. final (conflict laptop 2026-12-07 14.05 UTC)"
    );
    assert_eq!(
        name("trailing.", false),
        "trailing. (conflict laptop 2026-12-07 14.05 UTC)"
    );
    // Folders are not split.
    assert_eq!(
        name("photos.2024", true),
        "photos.2024 (conflict laptop 2026-12-07 14.05 UTC)"
    );
    assert_eq!(split_ext(b"x.tar.gz", true), (&b"x.tar.gz"[..], &b""[..]));
}

#[test]
fn taken_names_get_numbers_inside_the_parenthesis() {
    let first = conflict_name(b"a.txt", false, "laptop", T, |_| false);
    let second = conflict_name(b"a.txt", false, "laptop", T, |n| n == first.as_slice());
    assert_eq!(second, b"a (conflict laptop 2026-12-07 14.05 UTC 2).txt");
    let third = conflict_name(b"a.txt", false, "laptop", T, |n| {
        n == first.as_slice() || n == second.as_slice()
    });
    assert_eq!(third, b"a (conflict laptop 2026-12-07 14.05 UTC 3).txt");
}

#[test]
fn long_names_are_cut_to_255_bytes_on_a_character() {
    // 'é' is two bytes: a cut in the middle of one must move back.
    let long = format!("{}.txt", "é".repeat(200));
    let out = conflict_name(long.as_bytes(), false, "laptop", T, |_| false);
    assert!(out.len() <= 255, "{}", out.len());
    assert!(out.len() >= 254);
    let s = String::from_utf8(out).expect("still UTF-8");
    assert!(s.ends_with(" (conflict laptop 2026-12-07 14.05 UTC).txt"));
    assert!(s.starts_with("éé"));
}

#[test]
fn non_utf8_names_are_cut_on_bytes() {
    let mut long = vec![0xffu8; 250];
    long.extend_from_slice(b".bin");
    let out = conflict_name(&long, false, "laptop", T, |_| false);
    assert_eq!(out.len(), 255);
    assert!(out.ends_with(b" (conflict laptop 2026-12-07 14.05 UTC).bin"));
    assert!(out.starts_with(&[0xff, 0xff]));
}

#[test]
fn device_labels() {
    let id = ShortId([0xab; 16]);
    assert_eq!(device_label("laptop", &id), "laptop");
    assert_eq!(device_label("", &id), "abababa");
    assert_eq!(device_label("a/b\0c", &id), "a_b_c");
    assert_eq!(device_label(&"x".repeat(100), &id).len(), 64);
}

#[test]
fn names_read_back() {
    let minute = Timestamp {
        secs: T.secs - T.secs % 60,
        nanos: 0,
    };
    let tag = parse_conflict_name(b"report (conflict laptop 2026-12-07 14.05 UTC).docx").expect("a copy");
    assert_eq!(tag.original, b"report.docx");
    assert_eq!(tag.device, "laptop");
    assert_eq!(tag.time, minute);
    let tag = parse_conflict_name(b"a (conflict Jo's Mac (2) 2026-12-07 14.05 UTC 3).tar.gz").expect("a copy");
    assert_eq!(tag.original, b"a.tar.gz");
    assert_eq!(tag.device, "Jo's Mac (2)");
    // A copy of a copy names the copy it is a version of.
    let tag = parse_conflict_name(b"a (conflict x 2026-01-01 00.00 UTC) (conflict y 2026-12-07 14.05 UTC).txt")
        .expect("a copy");
    assert_eq!(tag.original, b"a (conflict x 2026-01-01 00.00 UTC).txt");
    assert_eq!(tag.device, "y");
    for not_a_copy in [
        &b"report.docx"[..],
        b"a (conflict laptop).txt",
        b"a (conflict 2026-12-07 14.05 UTC).txt",
        b"a (conflict laptop 2026-13-07 14.05 UTC).txt",
        b"a (conflict laptop 2026-12-07 24.05 UTC).txt",
        b"a (conflict laptop 2026-12-07 14.05 UTC x).txt",
        b" (conflict laptop 2026-12-07 14.05 UTC)",
    ] {
        assert_eq!(
            parse_conflict_name(not_a_copy),
            None,
            "{}",
            String::from_utf8_lossy(not_a_copy)
        );
    }
}

fn any_name() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 1..300),
        "[a-z. ]{1,40}".prop_map(String::into_bytes),
        "\\PC{1,120}".prop_map(String::into_bytes),
    ]
    .prop_map(|mut n| {
        n.retain(|b| *b != b'/' && *b != 0);
        n.truncate(255);
        if n.is_empty() || n == b"." || n == b".." {
            n = b"x".to_vec();
        }
        n
    })
}

proptest! {
    /// Whatever the name, device and taken names, the result is a valid
    /// name that is not taken.
    #[test]
    fn always_a_valid_free_name(
        n in any_name(),
        dir in any::<bool>(),
        device in "\\PC{0,80}|[a-z/\\x00]{0,10}",
        secs in any::<i64>().prop_map(|s| s / 4),
        taken_count in 0usize..5,
    ) {
        prop_assert!(valid_name(&n));
        let time = Timestamp { secs, nanos: 0 };
        let mut taken: BTreeSet<Vec<u8>> = BTreeSet::new();
        for _ in 0..taken_count {
            let next = conflict_name(&n, dir, &device, time, |x| taken.contains(x));
            taken.insert(next);
        }
        let out = conflict_name(&n, dir, &device, time, |x| taken.contains(x));
        prop_assert!(valid_name(&out), "{:?}", String::from_utf8_lossy(&out));
        prop_assert!(!taken.contains(&out));
        prop_assert!(out != n);
        if std::str::from_utf8(&n).is_ok() {
            prop_assert!(std::str::from_utf8(&out).is_ok(), "a UTF-8 name stays UTF-8");
        }
    }

    /// Every name `conflict_name` makes reads back: the device label, the
    /// time to the minute, and the original name (its stem cut as the copy's
    /// was, when it was).
    #[test]
    fn every_copy_name_reads_back(
        n in any_name(),
        dir in any::<bool>(),
        device in "[A-Za-z0-9 ()'._-]{1,30}",
        secs in (-62_000_000_000i64..253_000_000_000),
        taken_count in 0usize..3,
    ) {
        prop_assume!(!device.contains("(conflict"));
        let label = device_label(&device, &ShortId([7; 16]));
        prop_assume!(!label.trim().is_empty() && label.trim() == label && !label.contains("  "));
        let time = Timestamp { secs, nanos: 0 };
        let mut taken: BTreeSet<Vec<u8>> = BTreeSet::new();
        for _ in 0..taken_count {
            let next = conflict_name(&n, dir, &label, time, |x| taken.contains(x));
            taken.insert(next);
        }
        let out = conflict_name(&n, dir, &label, time, |x| taken.contains(x));
        let tag = parse_conflict_name(&out);
        prop_assert!(tag.is_some(), "{:?}", String::from_utf8_lossy(&out));
        let tag = tag.unwrap_or_else(|| unreachable!());
        prop_assert_eq!(&tag.device, &label);
        prop_assert_eq!(tag.time.secs, secs - secs.rem_euclid(60));
        // The stem may be cut (on a character, so up to 3 bytes short of
        // 255); the extension never is.
        let (stem, ext) = split_ext(&n, dir);
        prop_assert!(tag.original.ends_with(ext));
        prop_assert!(stem.starts_with(&tag.original[..tag.original.len() - ext.len()]));
        if out.len() <= 251 {
            prop_assert_eq!(&tag.original, &n);
        }
    }
}

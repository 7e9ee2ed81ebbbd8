//! Tests of the retention rules: restic's documented examples, the
//! calendar edges, the pins, and properties over random histories.

use super::*;
use crate::id::Id;
use proptest::prelude::*;

fn id(n: u32) -> CommitId {
    let mut b = [0u8; 32];
    b[..4].copy_from_slice(&n.to_be_bytes());
    b[4] = 0xAA;
    Id(b)
}

fn num(id: &CommitId) -> u32 {
    u32::from_be_bytes([id.0[0], id.0[1], id.0[2], id.0[3]])
}

fn snap(n: u32, secs: i64, parents: &[u32]) -> Snapshot {
    Snapshot {
        id: id(n),
        time: Timestamp { secs, nanos: 0 },
        parents: parents.iter().map(|&p| id(p)).collect(),
    }
}

/// Seconds of a UTC date and time (Howard Hinnant's `days_from_civil`).
fn utc(y: i64, m: u32, d: u32, h: u32, mi: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86_400 + i64::from(h) * 3600 + i64::from(mi) * 60
}

fn weekday(secs: i64) -> i64 {
    // Monday 0 .. Sunday 6.
    (secs.div_euclid(86_400) + 3).rem_euclid(7)
}

const NOW: i64 = 4_000_000_000;

fn policy(f: impl FnOnce(&mut RetentionPolicy)) -> RetentionPolicy {
    let mut p = RetentionPolicy::nothing();
    f(&mut p);
    p
}

fn plan(snaps: &[Snapshot], p: &RetentionPolicy) -> ForgetDecision {
    plan_at(snaps, p, NOW, 0)
}

fn plan_at(snaps: &[Snapshot], p: &RetentionPolicy, now: i64, offset: i32) -> ForgetDecision {
    let none = HashSet::new();
    plan_forget(snaps, p, &none, &none, Timestamp { secs: now, nanos: 0 }, offset).expect("a non-empty policy")
}

/// The kept snapshots' numbers, oldest first.
fn kept(d: &ForgetDecision) -> Vec<u32> {
    let mut v: Vec<u32> = d.kept().map(|s| num(&s.id)).collect();
    v.reverse();
    v
}

fn reasons(d: &ForgetDecision, n: u32) -> Vec<Reason> {
    d.get(&id(n)).map(|s| s.reasons.clone()).unwrap_or_default()
}

#[test]
fn the_default_is_the_research_table() {
    let p = RetentionPolicy::default();
    assert_eq!(
        (
            p.keep_last,
            p.keep_hourly,
            p.keep_daily,
            p.keep_weekly,
            p.keep_monthly,
            p.keep_yearly
        ),
        (20, 48, 30, 12, 12, 0)
    );
    assert_eq!(p.keep_within, Duration::from_secs(86_400));
    assert!(!p.is_empty());
    assert!(RetentionPolicy::nothing().is_empty());
}

#[test]
fn a_policy_that_keeps_nothing_is_refused() {
    let none = HashSet::new();
    let r = plan_forget(
        &[snap(1, 0, &[])],
        &RetentionPolicy::nothing(),
        &none,
        &none,
        Timestamp::default(),
        0,
    );
    assert_eq!(r, Err(RetentionError::EmptyPolicy));
}

#[test]
fn the_policy_round_trips_and_fills_what_a_config_leaves_out() {
    let p = policy(|p| {
        p.keep_daily = 7;
        p.keep_within = Duration::from_secs(36 * 3600);
    });
    let bytes = postcard::to_allocvec(&p).expect("encode");
    assert_eq!(postcard::from_bytes::<RetentionPolicy>(&bytes).expect("decode"), p);
    let partial: RetentionPolicy = serde_json::from_str(r#"{"keep_daily": 7}"#).expect("json");
    assert_eq!(
        partial,
        RetentionPolicy {
            keep_daily: 7,
            ..RetentionPolicy::default()
        }
    );
}

/// restic's documentation: one backup every Sunday for 12 weeks, then
/// `forget --keep-daily 4` keeps the last four Sundays.
#[test]
fn restic_twelve_sundays_keep_daily_four() {
    let first = utc(2019, 9, 1, 11, 0);
    let snaps: Vec<Snapshot> = (0..12)
        .map(|i| snap(i, first + i64::from(i) * 7 * 86_400, &[]))
        .collect();
    assert_eq!(snaps[11].time.secs, utc(2019, 11, 17, 11, 0));
    let d = plan(&snaps, &policy(|p| p.keep_daily = 4));
    assert_eq!(kept(&d), vec![8, 9, 10, 11]);
    for n in 8..12 {
        assert_eq!(reasons(&d, n), vec![Reason::Daily]);
    }
    assert_eq!(d.forgotten().count(), 8);
}

/// restic's documentation: a backup every day for 100 years and
/// `--keep-daily 7 --keep-weekly 5 --keep-monthly 12 --keep-yearly 75`
/// keeps the 7 newest, the last day of 5 weeks, of 12 months and of 75
/// years (the newest counting for its week, month and year).
#[test]
fn restic_hundred_years_of_dailies() {
    let first = utc(1926, 1, 1, 12, 0);
    let last = utc(2025, 12, 31, 12, 0);
    let days = (last - first) / 86_400 + 1;
    let snaps: Vec<Snapshot> = (0..days as u32)
        .map(|i| snap(i, first + i64::from(i) * 86_400, &[]))
        .collect();
    let p = policy(|p| {
        p.keep_daily = 7;
        p.keep_weekly = 5;
        p.keep_monthly = 12;
        p.keep_yearly = 75;
    });
    let d = plan(&snaps, &p);
    let with = |r: Reason| -> Vec<i64> {
        d.snapshots
            .iter()
            .filter(|s| s.reasons.contains(&r))
            .map(|s| s.time.secs)
            .collect()
    };
    let daily = with(Reason::Daily);
    assert_eq!(daily, (0..7).map(|i| last - i * 86_400).collect::<Vec<_>>());
    let weekly = with(Reason::Weekly);
    assert_eq!(weekly.len(), 5);
    assert_eq!(weekly[0], last, "the newest stands for its own week");
    assert!(weekly[1..].iter().all(|&t| weekday(t) == 6), "the others are Sundays");
    let next_day_is_first = |t: i64| {
        Timestamp {
            secs: t + 86_400,
            nanos: 0,
        }
        .utc_parts()
        .2 == 1
    };
    let monthly = with(Reason::Monthly);
    assert_eq!(monthly.len(), 12);
    assert!(monthly.iter().all(|&t| next_day_is_first(t)));
    let yearly = with(Reason::Yearly);
    assert_eq!(yearly.len(), 75);
    assert!(yearly
        .iter()
        .all(|&t| Timestamp { secs: t, nanos: 0 }.utc_parts().1 == 12 && next_day_is_first(t)));
    assert_eq!(
        Timestamp {
            secs: *yearly.last().unwrap_or(&0),
            nanos: 0
        }
        .utc_parts()
        .0,
        1951
    );
    let union: HashSet<i64> = [daily, weekly, monthly, yearly].concat().into_iter().collect();
    assert_eq!(d.kept().count(), union.len());
}

/// restic 0.17: while a rule's count is not used up, the oldest snapshot
/// is kept too ("oldest daily snapshot").
#[test]
fn the_oldest_is_kept_while_a_count_is_left() {
    let day = utc(2024, 5, 1, 0, 0);
    let snaps = [
        snap(1, day + 9 * 3600, &[]),
        snap(2, day + 10 * 3600, &[]),
        snap(3, day + 11 * 3600, &[]),
    ];
    let d = plan(&snaps, &policy(|p| p.keep_daily = 2));
    assert_eq!(kept(&d), vec![1, 3]);
    assert_eq!(reasons(&d, 1), vec![Reason::Daily]);
    // A count used up by newer buckets leaves the oldest to go.
    let d = plan(&snaps, &policy(|p| p.keep_hourly = 2));
    assert_eq!(kept(&d), vec![2, 3]);
}

#[test]
fn keep_last_keeps_the_newest_n() {
    let snaps: Vec<Snapshot> = (0..10).map(|i| snap(i, 1000 + i64::from(i), &[])).collect();
    let d = plan(&snaps, &policy(|p| p.keep_last = 3));
    assert_eq!(kept(&d), vec![7, 8, 9]);
    let d = plan(&snaps, &policy(|p| p.keep_last = RetentionPolicy::UNLIMITED));
    assert_eq!(d.forgotten().count(), 0);
}

#[test]
fn hours_keep_the_newest_of_each() {
    let h = |hour, min| utc(2024, 5, 1, hour, min);
    let snaps = [
        snap(1, h(10, 5), &[]),
        snap(2, h(10, 55), &[]),
        snap(3, h(11, 10), &[]),
        snap(4, h(12, 59), &[]),
        snap(5, h(13, 0), &[]),
    ];
    assert_eq!(kept(&plan(&snaps, &policy(|p| p.keep_hourly = 3))), vec![3, 4, 5]);
    assert_eq!(kept(&plan(&snaps, &policy(|p| p.keep_hourly = 4))), vec![2, 3, 4, 5]);
}

/// Days are the person's days: 23:30 and 00:30 UTC are one day at UTC+2.
#[test]
fn the_offset_moves_the_day_boundary() {
    let snaps = [
        snap(1, utc(2024, 5, 1, 12, 0), &[]),
        snap(2, utc(2024, 5, 2, 23, 30), &[]),
        snap(3, utc(2024, 5, 3, 0, 30), &[]),
    ];
    let p = policy(|p| p.keep_daily = 2);
    assert_eq!(kept(&plan_at(&snaps, &p, NOW, 0)), vec![2, 3]);
    assert_eq!(kept(&plan_at(&snaps, &p, NOW, 2 * 3600)), vec![1, 3]);
    // At UTC-11 both are on the 2nd, and the 1st is a day of its own.
    assert_eq!(kept(&plan_at(&snaps, &p, NOW, -11 * 3600)), vec![1, 3]);
    // At UTC-0:20 they are on two days again.
    assert_eq!(kept(&plan_at(&snaps, &p, NOW, -20 * 60)), vec![2, 3]);
}

#[test]
fn weeks_run_monday_to_sunday() {
    let snaps = [
        snap(1, utc(2019, 11, 11, 10, 0), &[]), // Monday
        snap(2, utc(2019, 11, 16, 12, 0), &[]), // Saturday
        snap(3, utc(2019, 11, 17, 23, 0), &[]), // Sunday
        snap(4, utc(2019, 11, 18, 1, 0), &[]),  // Monday
    ];
    assert_eq!(weekday(snaps[0].time.secs), 0);
    assert_eq!(weekday(snaps[2].time.secs), 6);
    assert_eq!(kept(&plan(&snaps, &policy(|p| p.keep_weekly = 2))), vec![3, 4]);
    assert_eq!(kept(&plan(&snaps, &policy(|p| p.keep_weekly = 3))), vec![1, 3, 4]);
}

#[test]
fn months_and_years_are_calendar_ones() {
    let snaps = [
        snap(1, utc(2024, 1, 31, 12, 0), &[]),
        snap(2, utc(2024, 2, 1, 12, 0), &[]),
        snap(3, utc(2024, 2, 29, 12, 0), &[]),
        snap(4, utc(2024, 12, 31, 12, 0), &[]),
        snap(5, utc(2025, 1, 1, 0, 0), &[]),
    ];
    assert_eq!(kept(&plan(&snaps, &policy(|p| p.keep_monthly = 3))), vec![3, 4, 5]);
    assert_eq!(kept(&plan(&snaps, &policy(|p| p.keep_monthly = 4))), vec![1, 3, 4, 5]);
    assert_eq!(kept(&plan(&snaps, &policy(|p| p.keep_yearly = 2))), vec![4, 5]);
}

/// `keep_within` counts back from the newest snapshot that is not in the
/// future; a snapshot from a clock ahead is kept, and moves nothing.
#[test]
fn within_counts_back_from_the_newest_past_snapshot() {
    let t = utc(2026, 6, 1, 12, 0);
    let day = 86_400;
    let snaps = [
        snap(1, t - 10 * day, &[]),
        snap(2, t - 3 * day, &[]),
        snap(3, t - 3 * day + 3600, &[]),
        snap(4, t - 2 * day, &[]),
        snap(5, t + 5 * 365 * day, &[]),
    ];
    let p = policy(|p| p.keep_within = Duration::from_secs(86_400));
    let d = plan_at(&snaps, &p, t, 0);
    assert_eq!(kept(&d), vec![2, 3, 4, 5]);
    assert_eq!(reasons(&d, 5), vec![Reason::Within]);
    // Every snapshot in the future: all kept, counted back from now.
    let ahead = [snap(2, t + 3600, &[]), snap(3, t + 2 * day, &[])];
    let p = policy(|p| p.keep_within = Duration::from_secs(3600));
    assert_eq!(kept(&plan_at(&ahead, &p, t, 0)), vec![2, 3]);
    // Once now has passed them, from the newest.
    assert_eq!(kept(&plan_at(&ahead, &p, t + 3 * day, 0)), vec![3]);
}

#[test]
fn heads_and_protected_are_kept_and_say_so() {
    let snaps: Vec<Snapshot> = (0..5).map(|i| snap(i, 1000 + i64::from(i), &[])).collect();
    let heads: HashSet<CommitId> = [id(1), id(4)].into();
    let protected: HashSet<CommitId> = [id(1), id(2), id(99)].into();
    let p = policy(|p| p.keep_last = 1);
    let d = plan_forget(&snaps, &p, &heads, &protected, Timestamp::default(), 0).expect("plan");
    assert_eq!(kept(&d), vec![1, 2, 4]);
    assert_eq!(reasons(&d, 4), vec![Reason::Last, Reason::Head]);
    assert_eq!(reasons(&d, 1), vec![Reason::Head]);
    assert_eq!(reasons(&d, 2), vec![Reason::Protected]);
    assert_eq!(d.forgotten_ids(), vec![id(3), id(0)]);
}

#[test]
fn any_time_a_clock_gives_is_fine() {
    let times = [
        i64::MIN,
        i64::MIN + 1,
        -62_000_000_000,
        -1,
        0,
        1,
        4_102_444_800,
        i64::MAX,
    ];
    let mut snaps: Vec<Snapshot> = times.iter().zip(0..).map(|(&t, n)| snap(n, t, &[])).collect();
    snaps.push(Snapshot {
        id: id(100),
        time: Timestamp {
            secs: i64::MAX,
            nanos: u32::MAX,
        },
        parents: vec![],
    });
    let all = RetentionPolicy {
        keep_last: 2,
        keep_hourly: RetentionPolicy::UNLIMITED,
        keep_daily: 3,
        keep_weekly: 3,
        keep_monthly: 3,
        keep_yearly: 3,
        keep_within: Duration::MAX,
    };
    for offset in [i32::MIN, -50_400, 0, 50_400, i32::MAX] {
        for now in [i64::MIN, 0, i64::MAX] {
            let d = plan_at(&snaps, &all, now, offset);
            assert_eq!(d.snapshots.len(), snaps.len());
            assert_eq!(d.snapshots[0].id, id(100));
            assert_eq!(d.forgotten().count(), 0, "an unbounded keep_within keeps everything");
        }
    }
}

#[test]
fn pins_of_a_line_are_its_head() {
    let g = [snap(1, 1, &[]), snap(2, 2, &[1]), snap(3, 3, &[2])];
    assert_eq!(always_keep(&g, &[id(3)].into()), [id(3)].into());
    // A head behind another is its own merge base.
    assert_eq!(always_keep(&g, &[id(2), id(3)].into()), [id(2), id(3)].into());
}

#[test]
fn pins_of_a_fork_add_its_base() {
    let g = [
        snap(1, 1, &[]),
        snap(2, 2, &[1]),
        snap(3, 3, &[2]),
        snap(4, 4, &[2]),
        snap(5, 5, &[1]),
    ];
    assert_eq!(always_keep(&g, &[id(3), id(4)].into()), [id(2), id(3), id(4)].into());
    assert_eq!(
        always_keep(&g, &[id(3), id(4), id(5)].into()),
        [id(1), id(2), id(3), id(4), id(5)].into()
    );
}

/// The merge walks down from both heads to their base: everything on
/// the way is kept, nothing below the base.
#[test]
fn pins_hold_the_paths_down_to_the_base() {
    let g = [
        snap(1, 1, &[]),
        snap(2, 2, &[1]),
        snap(3, 3, &[2]),
        snap(4, 4, &[2]),
        snap(5, 5, &[3]),
        snap(6, 6, &[4]),
        snap(7, 7, &[6, 1]),
        snap(8, 8, &[1]),
    ];
    assert_eq!(
        always_keep(&g, &[id(5), id(7)].into()),
        [id(2), id(3), id(4), id(5), id(6), id(7)].into()
    );
}

/// Criss-cross: the two heads have two merge bases, which the merge
/// folds against their own base, so that one (and the way to it) is kept
/// too.
#[test]
fn pins_of_a_criss_cross_reach_the_virtual_base() {
    let g = [
        snap(1, 1, &[]),
        snap(2, 2, &[1]),
        snap(3, 3, &[1]),
        snap(4, 4, &[2, 3]),
        snap(5, 5, &[3, 2]),
        snap(6, 6, &[4]),
        snap(7, 7, &[5]),
    ];
    assert_eq!(
        always_keep(&g, &[id(6), id(7)].into()),
        (1..=7).map(id).collect::<HashSet<_>>()
    );
}

#[test]
fn pins_survive_missing_history() {
    // 2's parent 9 is gone; 3 is a head nobody has read.
    let g = [snap(1, 1, &[]), snap(2, 2, &[9]), snap(4, 4, &[1])];
    assert_eq!(
        always_keep(&g, &[id(2), id(3), id(4)].into()),
        [id(2), id(3), id(4)].into()
    );
}

// ---- properties over random histories ----

/// A random history: times from anywhere (mostly plausible, some absurd),
/// parents among earlier commits, some missing.
fn history() -> impl Strategy<Value = Vec<Snapshot>> {
    let time = prop_oneof![
        6 => 1_600_000_000i64..1_600_000_000 + 400 * 86_400,
        1 => any::<i64>(),
        1 => -5_000_000_000i64..0,
    ];
    let one = (
        time,
        0u32..1_000_000_000,
        prop::collection::vec(any::<prop::sample::Index>(), 0..3),
        any::<bool>(),
    );
    prop::collection::vec(one, 1..40).prop_map(|raw| {
        raw.into_iter()
            .enumerate()
            .map(|(i, (secs, nanos, parents, lost_parent))| {
                let mut ps: Vec<CommitId> = if i == 0 {
                    Vec::new()
                } else {
                    parents.iter().map(|p| id(p.index(i) as u32)).collect()
                };
                if lost_parent && i % 5 == 0 {
                    ps.push(id(10_000 + i as u32));
                }
                Snapshot {
                    id: id(i as u32),
                    time: Timestamp { secs, nanos },
                    parents: ps,
                }
            })
            .collect()
    })
}

fn any_policy() -> impl Strategy<Value = RetentionPolicy> {
    (prop::array::uniform6(0u32..6), 0u64..3 * 86_400).prop_map(|(c, within)| RetentionPolicy {
        keep_last: c[0],
        keep_hourly: c[1],
        keep_daily: c[2],
        keep_weekly: c[3],
        keep_monthly: c[4],
        keep_yearly: c[5],
        keep_within: Duration::from_secs(within),
    })
}

fn heads_of(g: &[Snapshot], picks: &[prop::sample::Index]) -> HashSet<CommitId> {
    picks.iter().map(|p| g[p.index(g.len())].id).collect()
}

fn kept_set(d: &ForgetDecision) -> HashSet<CommitId> {
    d.kept().map(|s| s.id).collect()
}

/// Every ancestor of `start` (itself included) in `g`, by brute force.
fn brute_ancestors(g: &[Snapshot], start: CommitId) -> HashSet<CommitId> {
    let by_id: HashMap<CommitId, &Snapshot> = g.iter().map(|s| (s.id, s)).collect();
    let mut seen = HashSet::new();
    let mut stack = vec![start];
    while let Some(c) = stack.pop() {
        if by_id.contains_key(&c) && seen.insert(c) {
            stack.extend(by_id[&c].parents.iter().copied());
        }
    }
    seen
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn pinned_commits_are_always_kept(
        g in history(), p in any_policy(), picks in prop::collection::vec(any::<prop::sample::Index>(), 0..4),
        now in 1_600_000_000i64..1_700_000_000, offset in -50_400i32..50_400,
    ) {
        prop_assume!(!p.is_empty());
        let heads = heads_of(&g, &picks);
        let pins = always_keep(&g, &heads);
        let d = plan_forget(&g, &p, &heads, &pins, Timestamp { secs: now, nanos: 0 }, offset).expect("plan");
        for s in &d.snapshots {
            if pins.contains(&s.id) {
                prop_assert!(s.keep(), "pinned {:?} forgotten", s.id);
            }
        }
    }

    #[test]
    fn a_larger_policy_keeps_a_superset(
        g in history(), p in any_policy(), more in prop::array::uniform6(0u32..4), more_within in 0u64..86_400,
        now in 1_600_000_000i64..1_700_000_000, offset in -50_400i32..50_400,
    ) {
        prop_assume!(!p.is_empty());
        let bigger = RetentionPolicy {
            keep_last: p.keep_last + more[0],
            keep_hourly: p.keep_hourly + more[1],
            keep_daily: p.keep_daily + more[2],
            keep_weekly: p.keep_weekly + more[3],
            keep_monthly: p.keep_monthly + more[4],
            keep_yearly: p.keep_yearly + more[5],
            keep_within: p.keep_within + Duration::from_secs(more_within),
        };
        let small = kept_set(&plan_at(&g, &p, now, offset));
        let large = kept_set(&plan_at(&g, &bigger, now, offset));
        prop_assert!(small.is_subset(&large));
    }

    #[test]
    fn keep_last_n_keeps_exactly_the_n_newest(g in history(), n in 1u32..8, now in any::<i64>()) {
        let mut order: Vec<&Snapshot> = g.iter().collect();
        order.sort_by_key(|s| std::cmp::Reverse((s.time, s.id)));
        let newest: HashSet<CommitId> = order.iter().take(n as usize).map(|s| s.id).collect();
        let d = plan_at(&g, &policy(|p| p.keep_last = n), now, 0);
        prop_assert_eq!(kept_set(&d), newest);
    }

    #[test]
    fn the_order_of_the_input_does_not_matter(
        g in history(), p in any_policy(), now in 1_600_000_000i64..1_700_000_000, offset in -50_400i32..50_400,
        seed in any::<u64>(),
    ) {
        prop_assume!(!p.is_empty());
        let mut shuffled = g.clone();
        // A permutation from the seed (Fisher-Yates with an LCG).
        let mut x = seed | 1;
        for i in (1..shuffled.len()).rev() {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            shuffled.swap(i, (x >> 33) as usize % (i + 1));
        }
        prop_assert_eq!(plan_at(&g, &p, now, offset), plan_at(&shuffled, &p, now, offset));
        let heads: HashSet<CommitId> = g.iter().step_by(3).map(|s| s.id).collect();
        prop_assert_eq!(always_keep(&g, &heads), always_keep(&shuffled, &heads));
    }

    #[test]
    fn some_snapshot_survives_any_rule(g in history(), p in any_policy(), now in any::<i64>(), offset in any::<i32>()) {
        prop_assume!(!p.is_empty());
        prop_assert!(plan_at(&g, &p, now, offset).kept().count() >= 1);
    }

    /// `always_keep` holds every head, every pair's lowest common ancestors
    /// found by brute force and every commit between them and the pair,
    /// and nothing outside the heads' history.
    #[test]
    fn always_keep_matches_brute_force(g in history(), picks in prop::collection::vec(any::<prop::sample::Index>(), 1..5)) {
        let heads = heads_of(&g, &picks);
        let got = always_keep(&g, &heads);
        let anc: HashMap<CommitId, HashSet<CommitId>> =
            g.iter().map(|s| (s.id, brute_ancestors(&g, s.id))).collect();
        let hs: Vec<CommitId> = heads.iter().copied().collect();
        let mut history: HashSet<CommitId> = heads.clone();
        for (i, a) in hs.iter().enumerate() {
            history.extend(anc[a].iter().copied());
            for b in &hs[i + 1..] {
                let common: HashSet<CommitId> = anc[a].intersection(&anc[b]).copied().collect();
                let lowest = common.iter().filter(|c| !common.iter().any(|d| d != *c && anc[d].contains(*c)));
                for l in lowest {
                    prop_assert!(got.contains(l), "LCA {:?} of {:?} and {:?} not pinned", l, a, b);
                    for c in anc[a].union(&anc[b]) {
                        if anc[c].contains(l) {
                            prop_assert!(got.contains(c), "{:?} between {:?} and {:?} not pinned", c, l, a);
                        }
                    }
                }
            }
        }
        prop_assert!(heads.is_subset(&got));
        prop_assert!(got.is_subset(&history));
    }
}

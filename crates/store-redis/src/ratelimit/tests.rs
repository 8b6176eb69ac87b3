use super::*;
use phaze_ratelimit::decide;
use proptest::prelude::*;
use time::Duration;

/// What the script computes from a log, with the log as a plain `Vec`: prune (for a hit), count
/// and find the oldest instant after the window's start, record if allowed.
fn script_model(
    log: &mut Vec<i64>,
    window: Window,
    now_ns: i64,
    record: bool,
) -> (u64, Option<i64>) {
    let period_ns = window.period_nanos();
    let start = now_ns.saturating_sub(period_ns);
    // The script's bound: members strictly above `(<start>;`.
    let bound = format!("{};", encode_instant(start));
    let live = |t: &i64| format!("{}:0", encode_instant(*t)) > bound;
    if record {
        log.retain(|t| live(t));
    }
    let count = log.iter().filter(|t| live(t)).count() as u64;
    let oldest = log
        .iter()
        .filter(|t| live(t))
        .map(|t| format!("{}:0", encode_instant(*t)))
        .min()
        .map(|m| decode_member(m.as_bytes()).unwrap());
    if record && count < u64::from(window.limit) {
        log.push(now_ns);
    }
    (count, oldest)
}

fn check(log: Vec<i64>, window: Window, now_ns: i64, record: bool) {
    let now = OffsetDateTime::from_unix_timestamp_nanos(i128::from(now_ns)).unwrap();
    let mut expected_log = log.clone();
    let expected = decide(&mut expected_log, window, now, record);
    let mut model_log = log;
    let (count, oldest) = script_model(&mut model_log, window, now_ns, record);
    assert_eq!(conclude(count, oldest, window, now_ns, record), expected);
    expected_log.sort_unstable();
    model_log.sort_unstable();
    assert_eq!(model_log, expected_log, "the same instants stay recorded");
}

#[test]
fn encoding_sorts_as_the_numbers_do() {
    let values = [
        i64::MIN,
        i64::MIN + 1,
        -1_000_000_000,
        -1,
        0,
        1,
        999,
        1_000,
        1_767_225_600_000_000_000,
        i64::MAX - 1,
        i64::MAX,
    ];
    for a in values {
        let ea = encode_instant(a);
        assert_eq!(ea.len(), 20, "{a}");
        assert_eq!(decode_member(format!("{ea}:7").as_bytes()), Some(a));
        for b in values {
            assert_eq!(ea.cmp(&encode_instant(b)), a.cmp(&b), "{a} vs {b}");
        }
    }
    assert_eq!(encode_instant(i64::MIN), "00000000000000000000");
    assert_eq!(encode_instant(i64::MAX), "18446744073709551615");
}

#[test]
fn foreign_members_are_rejected() {
    for bad in [
        &b""[..],
        b"123",
        b"0000000000000000000a:0",
        b"00000000000000000000;0",
        b"99999999999999999999:0",
    ] {
        assert_eq!(
            decode_member(bad),
            None,
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn ttl_is_the_period_rounded_up() {
    for (period_ns, ms) in [
        (0, 1),
        (-5, 1),
        (1, 1),
        (999_999, 1),
        (1_000_000, 1),
        (1_000_001, 2),
        (900_000_000_000, 900_000),
        (i64::MAX, 9_223_372_036_855),
    ] {
        assert_eq!(ttl_millis(period_ns), ms, "{period_ns}");
    }
}

#[test]
fn edge_cases_match_decide() {
    let now = 1_767_225_600_000_000_000;
    let w = Window::new(3, Duration::minutes(15));
    let p = 900_000_000_000i64;
    check(vec![], w, now, true);
    check(vec![], w, now, false);
    check(vec![now - p], w, now, true); // exactly at the start: out
    check(vec![now - p + 1], w, now, true); // one ns after: in
    check(vec![now + 5, now + 5, now], w, now, true); // future instants count
    check(vec![now, now, now], w, now, true);
    check(vec![now; 5], Window::new(0, Duration::ZERO), now, true);
    check(
        vec![now - 1; 2],
        Window::new(1, Duration::nanoseconds(1)),
        now,
        false,
    );
    check(
        vec![now - 10],
        Window::new(2, Duration::nanoseconds(-3)),
        now,
        true,
    );
}

proptest! {
    #[test]
    fn finish_matches_decide(
        offsets in proptest::collection::vec(-2_000_000_000_000i64..200_000_000_000, 0..12),
        limit in 0u32..12,
        period_ns in 0i64..1_500_000_000_000,
        now_ns in 1_600_000_000_000_000_000i64..1_900_000_000_000_000_000,
        record: bool,
    ) {
        let log = offsets.iter().map(|o| now_ns + o).collect();
        check(log, Window::new(limit, Duration::nanoseconds(period_ns)), now_ns, record);
    }
}

use super::*;
use time::Duration;

fn check(ns: i64, expected_ns: i128) {
    assert_eq!(
        instant_ceil_micros(ns).unwrap().unix_timestamp_nanos(),
        expected_ns,
        "{ns}"
    );
}

#[test]
fn idle_bounds_round_up_to_the_microsecond() {
    check(1_000, 1_000);
    check(1_001, 2_000);
    check(1_999, 2_000);
    check(0, 0);
    check(-1, 0);
    check(-1_001, -1_000);
    check(i64::MAX, 9_223_372_036_854_776_000);
}

#[test]
fn idle_after_keeps_the_longest_bound() {
    let w = Window::new(5, Duration::minutes(15));
    let t = 1_767_225_600_000_000_000i64;
    let later = instant_ceil_micros(t + 3_600_000_000_000).unwrap();
    assert_eq!(idle_after(&[], w, Some(later)).unwrap(), None);
    assert_eq!(
        idle_after(&[t, t - 5], w, None).unwrap(),
        Some(instant_ceil_micros(t + 900_000_000_000).unwrap())
    );
    assert_eq!(idle_after(&[t], w, Some(later)).unwrap(), Some(later));
}

use super::*;

fn t(secs: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_767_225_600 + secs).unwrap()
}

const FIVE_PER_15_MIN: Window = Window::new(5, Duration::minutes(15));

#[test]
fn allows_exactly_the_limit_then_denies_without_recording() {
    let mut log = Vec::new();
    for i in 0..5u32 {
        let d = decide(&mut log, FIVE_PER_15_MIN, t(i64::from(i)), true);
        assert!(d.allowed);
        assert_eq!(d.remaining, 4 - i);
    }
    for _ in 0..100 {
        let d = decide(&mut log, FIVE_PER_15_MIN, t(10), true);
        assert!(!d.allowed);
        assert_eq!(d.remaining, 0);
        assert_eq!(
            d.retry_after(),
            Some(Duration::minutes(15) - Duration::seconds(10))
        );
    }
    assert_eq!(log.len(), 5, "denied hits are not stored");
}

#[test]
fn the_window_slides() {
    let mut log = Vec::new();
    for i in 0..5 {
        decide(&mut log, FIVE_PER_15_MIN, t(i * 60), true);
    }
    // At 15:00 the first event (0:00) has left: one slot.
    let d = decide(&mut log, FIVE_PER_15_MIN, t(15 * 60), true);
    assert!(d.allowed);
    assert!(!decide(&mut log, FIVE_PER_15_MIN, t(15 * 60 + 30), true).allowed);
    assert!(decide(&mut log, FIVE_PER_15_MIN, t(16 * 60), true).allowed);
    // No fixed-bucket edge: 5 at the end of one "bucket" and 5 at the start of the next never pass.
    let mut log = Vec::new();
    let passed = (0..10)
        .filter(|i| decide(&mut log, FIVE_PER_15_MIN, t(890 + i), true).allowed)
        .count();
    assert_eq!(passed, 5);
}

#[test]
fn peek_records_nothing() {
    let mut log = Vec::new();
    for _ in 0..3 {
        assert!(decide(&mut log, FIVE_PER_15_MIN, t(0), false).allowed);
    }
    assert!(log.is_empty());
    // The same log read with a smaller limit: "3 failures in the hour" over a 10-per-hour log.
    let failures = Window::new(10, Duration::hours(1));
    let challenge = Window::new(3, Duration::hours(1));
    for i in 0..3 {
        decide(&mut log, failures, t(i), true);
    }
    assert!(
        !decide(&mut log, challenge, t(4), false).allowed,
        "challenge required"
    );
    assert!(
        decide(&mut log, failures, t(4), false).allowed,
        "not locked"
    );
}

#[test]
fn a_clock_going_backwards_cannot_grow_the_log() {
    let mut log = Vec::new();
    for i in 0..5 {
        decide(&mut log, FIVE_PER_15_MIN, t(100 + i), true);
    }
    assert!(!decide(&mut log, FIVE_PER_15_MIN, t(50), true).allowed);
    assert!(log.len() <= 5);
}

#[test]
fn zero_limit_denies_everything() {
    let mut log = Vec::new();
    let d = decide(&mut log, Window::new(0, Duration::minutes(1)), t(0), true);
    assert!(!d.allowed);
    assert_eq!(d.retry_after(), Some(Duration::ZERO));
}

#[test]
fn keys_are_keyed_hashes_without_collisions() {
    let h = KeyHasher::new(SecretBox::new(Box::new([7; 32])));
    let a = h.key("login/client", "192.0.2.1/32");
    assert_eq!(a, h.key("login/client", "192.0.2.1/32"));
    assert_ne!(a, h.key("login/id", "192.0.2.1/32"));
    assert_ne!(h.key("ab", "c"), h.key("a", "bc"), "length-prefixed");
    let other = KeyHasher::new(SecretBox::new(Box::new([8; 32])));
    assert_ne!(a, other.key("login/client", "192.0.2.1/32"));
    assert_eq!(a.to_hex().len(), 64);
    assert!(!format!("{a:?}").contains("192.0.2.1"));
}

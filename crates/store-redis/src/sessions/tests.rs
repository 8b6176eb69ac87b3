use super::*;
use time::macros::datetime;
use time::Duration;

#[test]
fn expiry_round_trips_and_sorts() {
    let instants = [
        OffsetDateTime::new_utc(time::Date::MIN, time::Time::MIDNIGHT),
        datetime!(1969-12-31 23:59:59.999999999 UTC),
        OffsetDateTime::UNIX_EPOCH,
        datetime!(2026-01-01 00:00:00 UTC),
        datetime!(2026-01-01 00:00:00.000000001 UTC),
        datetime!(2026-01-01 01:00:00 +01:00) + Duration::nanoseconds(3),
        datetime!(2262-04-11 23:47:16.854775808 UTC), // past i64 nanoseconds
        OffsetDateTime::new_utc(time::Date::MAX, time::Time::MAX),
    ];
    for a in instants {
        let ea = encode_expiry(a);
        assert_eq!(ea.len(), EXP_DIGITS);
        assert_eq!(decode_expiry(ea.as_bytes()), Some(a));
        for b in instants {
            assert_eq!(ea.cmp(&encode_expiry(b)), a.cmp(&b), "{a} vs {b}");
        }
    }
}

#[test]
fn foreign_expiries_are_rejected() {
    for bad in [
        &b""[..],
        b"1767225600",
        &[b'9'; EXP_DIGITS],
        b"17014118346046923173168730371588410572a",
    ] {
        assert_eq!(
            decode_expiry(bad),
            None,
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn user_sets_are_named_by_a_hash() {
    for user in ["alice", "../alice", "*", "alice\0", "", "a:b"] {
        let h = user_hash(user);
        assert_eq!(h.len(), 64);
        assert!(h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
    }
    assert_ne!(user_hash("alice"), user_hash("alice\0"));
}

#[test]
fn records_decode_strictly() {
    let key = SessionKey::from([7; 32]);
    let exp = encode_expiry(datetime!(2026-01-01 00:00:00 UTC));
    let ok = decode_record(key, b"alice", exp.as_bytes(), b"0", vec![1, 2]).unwrap();
    assert_eq!(ok.user_id, "alice");
    assert_eq!(ok.successor, None);
    let next = SessionKey::from([8; 32]);
    let retired = decode_record(
        key,
        b"alice",
        exp.as_bytes(),
        next.to_hex().as_bytes(),
        vec![],
    )
    .unwrap();
    assert_eq!(retired.successor, Some(next));
    // Retired before records named their successor: it leads nowhere.
    let legacy = decode_record(key, b"alice", exp.as_bytes(), b"1", vec![]).unwrap();
    assert_eq!(legacy.successor, Some(key));
    assert!(decode_record(key, b"alice", exp.as_bytes(), b"yes", vec![]).is_err());
    assert!(decode_record(key, b"alice", exp.as_bytes(), &[b'A'; 64], vec![]).is_err());
    assert!(decode_record(key, b"\xff", exp.as_bytes(), b"0", vec![]).is_err());
    assert!(decode_record(key, b"alice", b"soon", b"0", vec![]).is_err());
}

use super::*;
use time::macros::datetime;

fn check(s: &StoredSession) {
    let bytes = encode(s).unwrap();
    assert_eq!(decode(&bytes).unwrap(), *s);
    // Every truncation is refused rather than misread, except cutting into the sealed tail, which
    // the sealer's authentication catches.
    let head = bytes.len() - s.sealed.len();
    for cut in 0..head {
        assert!(decode(&bytes[..cut]).is_err(), "cut at {cut}");
    }
}

#[test]
fn records_round_trip() {
    check(&StoredSession {
        key: SessionKey::from([7; 32]),
        user_id: "user-1".into(),
        expires_at: datetime!(2026-01-01 00:00:00.123456789 UTC),
        superseded: false,
        sealed: vec![1, 2, 3],
    });
    check(&StoredSession {
        key: SessionKey::from([0xff; 32]),
        user_id: "../../ünï\0côdé".into(),
        expires_at: datetime!(1969-12-31 23:59:59 UTC),
        superseded: true,
        sealed: Vec::new(),
    });
}

#[test]
fn foreign_bytes_are_corrupt() {
    for bytes in [&b""[..], b"PZS2", b"{\"key\":1}", b"PZS1\x02"] {
        let e = decode(bytes).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    }
}

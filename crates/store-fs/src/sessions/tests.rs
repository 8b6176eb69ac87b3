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
        successor: None,
        sealed: vec![1, 2, 3],
    });
    check(&StoredSession {
        key: SessionKey::from([0xff; 32]),
        user_id: "../../ünï\0côdé".into(),
        expires_at: datetime!(1969-12-31 23:59:59 UTC),
        successor: Some(SessionKey::from([0x5a; 32])),
        sealed: Vec::new(),
    });
}

#[test]
fn a_record_retired_before_successors_were_named_leads_nowhere() {
    // Magic, flag 1 (the old "superseded"), expiry, key, user id, sealed data.
    let key = SessionKey::from([3; 32]);
    let mut bytes = b"PZS1\x01".to_vec();
    bytes.extend_from_slice(&0i128.to_le_bytes());
    bytes.extend_from_slice(key.as_bytes());
    bytes.extend_from_slice(&1u32.to_le_bytes());
    bytes.extend_from_slice(b"u");
    bytes.extend_from_slice(&[9, 9]);
    let s = decode(&bytes).unwrap();
    assert_eq!(s.successor, Some(key), "retired, naming itself");
    assert_eq!(s.sealed, [9, 9]);
}

#[test]
fn foreign_bytes_are_corrupt() {
    for bytes in [&b""[..], b"PZS2", b"{\"key\":1}", b"PZS1\x02", b"PZS1\x03"] {
        let e = decode(bytes).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    }
}

#[test]
fn a_purge_scan_leaves_the_cache_to_the_hot_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let store = DataDir::open(dir.path(), crate::Sharing::Exclusive)
        .unwrap()
        .sessions()
        .unwrap();
    let live = datetime!(2030-01-01 00:00 UTC);
    for n in 0..5u8 {
        let s = StoredSession {
            key: SessionKey::from([n; 32]),
            user_id: format!("user-{n}"),
            expires_at: live,
            successor: None,
            sealed: vec![n],
        };
        store.dirs.insert(&s).unwrap();
    }
    store
        .dirs
        .read_record(&SessionKey::from([0; 32]).to_hex())
        .unwrap();
    assert_eq!(store.dirs.cache.len(), 1, "the one session read");
    assert_eq!(
        store
            .dirs
            .purge_expired(datetime!(2026-01-01 00:00 UTC))
            .unwrap(),
        0
    );
    assert_eq!(store.dirs.cache.len(), 1, "the scan cached nothing");
}

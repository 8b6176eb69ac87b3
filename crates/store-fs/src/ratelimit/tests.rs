use super::*;

fn log(expiry: i64, instants: &[i64]) -> Log {
    Log {
        expiry,
        instants: instants.to_vec(),
    }
}

/// `bytes` decodes to `expected`, or fails as corrupt data when `expected` is `None`.
fn check(bytes: &[u8], expected: Option<&Log>) {
    match (decode(bytes), expected) {
        (Ok(got), Some(want)) => assert_eq!(&got, want),
        (Err(e), None) => assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}"),
        (got, want) => panic!("{bytes:02x?}: got {got:?}, want {want:?}"),
    }
}

#[test]
fn records_round_trip() {
    check(&[], Some(&Log::EMPTY));
    for l in [
        log(0, &[]),
        log(5, &[1]),
        log(i64::MAX, &[i64::MIN, -1, 0, 7, i64::MAX]),
    ] {
        let bytes = encode(&l);
        assert_eq!(bytes.len(), HEADER + 8 * l.instants.len() + CHECK);
        assert_eq!(bytes[..8], MAGIC);
        check(&bytes, Some(&l));
    }
}

#[test]
fn every_truncation_and_every_flipped_bit_fails_closed() {
    let bytes = encode(&log(99, &[10, 20, 30]));
    for len in 1..bytes.len() {
        check(&bytes[..len], None);
    }
    for i in 0..bytes.len() {
        for bit in 0..8 {
            let mut flipped = bytes.clone();
            flipped[i] ^= 1 << bit;
            check(&flipped, None);
        }
    }
}

#[test]
fn a_torn_rewrite_fails_closed() {
    // A longer record written over a shorter one, stopped after every possible byte.
    let old = encode(&log(50, &[10]));
    let new = encode(&log(60, &[10, 20]));
    for written in 1..new.len() {
        let mut torn = old.clone();
        torn.resize(torn.len().max(written), 0);
        torn[..written].copy_from_slice(&new[..written]);
        if torn == old {
            check(&torn, Some(&log(50, &[10])));
        } else {
            check(&torn, None);
        }
    }
}

#[test]
fn stale_bytes_after_a_whole_record_are_ignored() {
    // A shorter record written over a longer one, killed before the file was cut to length.
    let mut bytes = encode(&log(60, &[10, 20, 30]));
    let short = encode(&log(70, &[30]));
    bytes[..short.len()].copy_from_slice(&short);
    check(&bytes, Some(&log(70, &[30])));
}

#[test]
fn other_versions_and_absurd_counts_fail_closed() {
    let mut bytes = encode(&log(1, &[2]));
    bytes[7] = 2;
    check(&bytes, None);
    let mut bytes = encode(&log(1, &[2]));
    bytes[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
    check(&bytes, None);
    check(b"not a rate limit file at all, just text", None);
}

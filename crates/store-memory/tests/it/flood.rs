//! A flood of distinct keys must not grow memory without bound.

use phaze_ratelimit::{LimitKey, Window};
use phaze_store_memory::MemoryRateLimits;
use time::Duration;

#[test]
fn a_million_distinct_keys_are_swept_after_their_window() {
    let store = MemoryRateLimits::default();
    let window = Window::new(5, Duration::minutes(1));
    let t0 = phaze_testkit::t0();
    for i in 0u32..1_000_000 {
        let mut k = [0u8; 32];
        k[..4].copy_from_slice(&i.to_le_bytes());
        k[31] = (i % 251) as u8;
        let now = t0 + Duration::microseconds(i64::from(i));
        assert!(store.decide(&LimitKey::from(k), window, now, true).allowed);
    }
    assert_eq!(store.len(), 1_000_000);
    // After the window, any traffic on a shard sweeps it; one key per shard is enough.
    let later = t0 + Duration::minutes(2);
    for s in 0u8..64 {
        let mut k = [0xee; 32];
        k[31] = s;
        store.decide(&LimitKey::from(k), window, later, true);
    }
    assert_eq!(store.len(), 64, "only the 64 fresh keys remain");
}

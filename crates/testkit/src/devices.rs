//! Contracts of [`DeviceStore`] and [`AddressPool`].

use phaze_devices::{
    AddressPool, Device, DeviceId, DeviceKeys, DeviceName, DeviceStore, Inserted, TunnelAddress,
};
use phaze_ids::UserId;
use std::collections::HashSet;
use std::sync::Arc;

use crate::t0;

/// A device of `user` named `name`, in `slot` (its sealed key is placeholder bytes).
pub fn device(user: UserId, name: &str, slot: u32) -> Device {
    Device {
        id: DeviceId::generate(),
        user_id: user,
        name: DeviceName::parse(name).unwrap(),
        public_key: DeviceKeys::generate().public(),
        sealed_private_key: vec![1, 2, 3, 0, 255],
        slot,
        address: TunnelAddress {
            v4: std::net::Ipv4Addr::new(10, 0, 0, 2 + slot as u8),
            v6: std::net::Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2 + slot as u16),
        },
        created_at: t0() + time::Duration::seconds(slot.into()),
    }
}

/// Runs the whole [`DeviceStore`] contract against an adapter (see the crate docs).
#[macro_export]
macro_rules! device_store_contract {
    ($make:expr) => {
        mod device_store_contract {
            #[allow(unused_imports)]
            use super::*;
            $crate::__contract_tests!(
                devices,
                $make,
                [
                    devices_round_trip_and_list_oldest_first,
                    lookups_are_scoped_to_the_owner,
                    the_limit_holds_under_sixteen_parallel_inserts,
                    pages_visit_every_device_once_and_reseal_swaps_only_the_key_given,
                ]
            );
        }
    };
}

/// Walking the store a page at a time visits every owner's devices exactly once; `reseal`
/// swaps a private key only while it is the one given, only for its owner, and keeps the rest.
pub async fn pages_visit_every_device_once_and_reseal_swaps_only_the_key_given(
    store: Arc<impl DeviceStore>,
) {
    let (ada, bob) = (UserId::generate(), UserId::generate());
    let mut all = std::collections::HashSet::new();
    for n in 0..5u32 {
        let d = device(if n % 2 == 0 { ada } else { bob }, &format!("d{n}"), n);
        assert_eq!(store.insert(&d, 10).await.unwrap(), Inserted::Yes);
        all.insert(d.id);
    }
    for size in [1, 2, 5, 9] {
        let (mut seen, mut after) = (Vec::new(), None);
        loop {
            let page = store.page(after.as_ref(), size).await.unwrap();
            assert!(page.len() <= size);
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            seen.extend(page.iter().map(|d| d.id));
        }
        assert_eq!(seen.len(), 5, "page size {size}");
        assert_eq!(
            seen.into_iter().collect::<std::collections::HashSet<_>>(),
            all
        );
    }
    let d = store.list(&ada).await.unwrap().remove(0);
    let old = d.sealed_private_key.clone();
    assert!(
        !store.reseal(&bob, &d.id, &old, b"NEW").await.unwrap(),
        "not bob's"
    );
    assert!(!store.reseal(&ada, &d.id, b"stale", b"NEW").await.unwrap());
    assert!(store.reseal(&ada, &d.id, &old, b"NEW").await.unwrap());
    let after = store.get(&ada, &d.id).await.unwrap().unwrap();
    assert_eq!(after.sealed_private_key, b"NEW");
    assert_eq!(
        (after.name, after.slot, after.public_key),
        (d.name, d.slot, d.public_key)
    );
    assert!(!store.reseal(&ada, &d.id, &old, b"AGAIN").await.unwrap());
    store.remove(&ada, &d.id).await.unwrap();
    assert!(!store.reseal(&ada, &d.id, b"NEW", b"AGAIN").await.unwrap());
}

/// Runs the whole [`AddressPool`] contract against an adapter (see the crate docs).
#[macro_export]
macro_rules! address_pool_contract {
    ($make:expr) => {
        mod address_pool_contract {
            #[allow(unused_imports)]
            use super::*;
            $crate::__contract_tests!(
                devices,
                $make,
                [
                    claims_take_the_lowest_free_slot_and_release_frees_it,
                    parallel_claims_never_share_a_slot,
                ]
            );
        }
    };
}

/// A device comes back as stored (names with markup and emoji as typed), the owner's list is
/// oldest first, and removing returns it once.
pub async fn devices_round_trip_and_list_oldest_first(store: Arc<impl DeviceStore>) {
    let ada = UserId::generate();
    let second = device(ada, "<b>phone</b> 😀", 1);
    let first = device(ada, "laptop", 0);
    assert_eq!(store.insert(&second, 5).await.unwrap(), Inserted::Yes);
    assert_eq!(store.insert(&first, 5).await.unwrap(), Inserted::Yes);
    assert_eq!(
        store.get(&ada, &first.id).await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(
        store.list(&ada).await.unwrap(),
        vec![first.clone(), second.clone()]
    );
    assert_eq!(
        store.remove(&ada, &first.id).await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(store.remove(&ada, &first.id).await.unwrap(), None);
    assert_eq!(store.list(&ada).await.unwrap(), vec![second]);
}

/// Another owner's device is not found, not listed, not removed.
pub async fn lookups_are_scoped_to_the_owner(store: Arc<impl DeviceStore>) {
    let (ada, eve) = (UserId::generate(), UserId::generate());
    let d = device(ada, "laptop", 0);
    store.insert(&d, 5).await.unwrap();
    assert_eq!(store.get(&eve, &d.id).await.unwrap(), None);
    assert!(store.list(&eve).await.unwrap().is_empty());
    assert_eq!(store.remove(&eve, &d.id).await.unwrap(), None);
    assert_eq!(store.get(&ada, &d.id).await.unwrap(), Some(d));
}

/// Sixteen inserts for one owner at once against a limit of 5: exactly 5 are stored.
pub async fn the_limit_holds_under_sixteen_parallel_inserts(
    store: Arc<impl DeviceStore + 'static>,
) {
    let ada = UserId::generate();
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.insert(&device(ada, &format!("d{i}"), i), 5).await })
        })
        .collect();
    let mut stored = 0;
    for t in tasks {
        if t.await.unwrap().unwrap() == Inserted::Yes {
            stored += 1;
        }
    }
    assert_eq!(stored, 5);
    assert_eq!(store.list(&ada).await.unwrap().len(), 5);
}

/// Claims take the lowest free slot; release by the holder frees it, by anyone else does not.
pub async fn claims_take_the_lowest_free_slot_and_release_frees_it(pool: Arc<impl AddressPool>) {
    let (a, b, c) = (
        DeviceId::generate(),
        DeviceId::generate(),
        DeviceId::generate(),
    );
    assert_eq!(pool.claim(&a, 2).await.unwrap(), Some(0));
    assert_eq!(pool.claim(&b, 2).await.unwrap(), Some(1));
    assert_eq!(pool.claim(&c, 2).await.unwrap(), None, "full");
    pool.release(0, &b).await.unwrap();
    assert_eq!(pool.claim(&c, 2).await.unwrap(), None, "not b's to free");
    pool.release(0, &a).await.unwrap();
    assert_eq!(pool.claim(&c, 2).await.unwrap(), Some(0));
}

/// Thirty-two claims at once on a pool of 20: 20 distinct slots, 12 refusals.
pub async fn parallel_claims_never_share_a_slot(pool: Arc<impl AddressPool + 'static>) {
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move { pool.claim(&DeviceId::generate(), 20).await })
        })
        .collect();
    let mut slots = Vec::new();
    for t in tasks {
        if let Some(s) = t.await.unwrap().unwrap() {
            slots.push(s);
        }
    }
    assert_eq!(slots.len(), 20);
    assert_eq!(slots.iter().collect::<HashSet<_>>().len(), 20);
}

//! Device use cases over the memory adapters.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use phaze_devices::{
    DeviceError, DeviceId, DeviceKeys, DeviceService, DeviceStore, PoolSettings, PublicKey,
    ServerSettings,
};
use phaze_ids::UserId;
use phaze_sessions::{Sealer, SealingKey};
use phaze_store_memory::{MemoryAddressPool, MemoryDevices, MemoryProvisioner};
use std::collections::HashSet;
use std::sync::Arc;
use time::OffsetDateTime;

fn t0() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_767_225_600).unwrap()
}

struct Kit {
    devices: DeviceService,
    store: Arc<MemoryDevices>,
    provisioner: Arc<MemoryProvisioner>,
    server_key: PublicKey,
}

fn kit(pool: &str, limit: u32) -> Kit {
    kit_on(Arc::new(MemoryDevices::default()), pool, limit, &[[5; 32]])
}

/// A kit over `store`, sealing with the session key list `keys` (the first seals).
fn kit_on(store: Arc<MemoryDevices>, pool: &str, limit: u32, keys: &[[u8; 32]]) -> Kit {
    let provisioner = Arc::new(MemoryProvisioner::default());
    let server_key = DeviceKeys::generate().public();
    let devices = DeviceService::new(
        store.clone(),
        Arc::new(MemoryAddressPool::default()),
        provisioner.clone(),
        Sealer::new(keys.iter().map(SealingKey::new).collect()).unwrap(),
        PoolSettings {
            v4: pool.parse().unwrap(),
            v6: "fd66::/64".parse().unwrap(),
        },
        ServerSettings {
            public_key: server_key,
            endpoint: "vpn.example.com:51820".into(),
            dns: vec!["10.66.0.1".parse().unwrap()],
            allowed_ips: vec!["0.0.0.0/0".parse().unwrap(), "::/0".parse().unwrap()],
            keepalive: Some(25),
        },
        limit,
    );
    Kit {
        devices,
        store,
        provisioner,
        server_key,
    }
}

/// The `key = value` lines of a configuration section.
fn field<'a>(config: &'a str, section: &str, key: &str) -> Option<&'a str> {
    let body = config.split(&format!("[{section}]")).nth(1)?;
    body.lines()
        .take_while(|l| !l.starts_with('['))
        .find_map(|l| l.strip_prefix(&format!("{key} = ")))
}

#[tokio::test]
async fn add_config_delete_and_the_address_is_free_again() {
    let k = kit("10.66.0.0/16", 5);
    let ada = UserId::generate();
    let d = k.devices.add(&ada, "  Ada's laptop ", t0()).await.unwrap();
    assert_eq!(d.name.as_str(), "Ada's laptop");
    assert_eq!(d.address.v4.to_string(), "10.66.0.2");
    assert_eq!(k.provisioner.peers().get(&d.public_key), Some(&d.address));

    let (_, config) = k.devices.config(&ada, &d.id).await.unwrap();
    let private = field(&config, "Interface", "PrivateKey").unwrap();
    assert_eq!(private.len(), 44);
    assert_eq!(
        field(&config, "Interface", "Address"),
        Some("10.66.0.2/32, fd66::2/128")
    );
    assert_eq!(field(&config, "Interface", "DNS"), Some("10.66.0.1"));
    assert_eq!(
        field(&config, "Peer", "PublicKey"),
        Some(k.server_key.to_base64().as_str())
    );
    assert_eq!(
        field(&config, "Peer", "Endpoint"),
        Some("vpn.example.com:51820")
    );
    assert_eq!(
        field(&config, "Peer", "AllowedIPs"),
        Some("0.0.0.0/0, ::/0")
    );
    assert_eq!(field(&config, "Peer", "PersistentKeepalive"), Some("25"));
    // The private key in the file is the one whose public key the server was given.
    use base64::Engine;
    let bytes: [u8; 32] = base64::engine::general_purpose::STANDARD
        .decode(private)
        .unwrap()
        .try_into()
        .unwrap();
    let derived = x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(bytes));
    assert_eq!(derived.as_bytes(), d.public_key.as_bytes());
    let stored = k.store.get(&ada, &d.id).await.unwrap().unwrap();
    let text = format!("{stored:?}");
    assert!(!text.contains(private), "Debug never shows the private key");

    k.devices.delete(&ada, &d.id).await.unwrap();
    assert!(k.provisioner.peers().is_empty());
    assert!(k.devices.list(&ada).await.unwrap().is_empty());
    let again = k.devices.add(&ada, "phone", t0()).await.unwrap();
    assert_eq!(again.slot, 0, "the address was freed");
}

#[tokio::test]
async fn another_accounts_device_is_not_found_and_untouched() {
    let k = kit("10.66.0.0/16", 5);
    let (ada, eve) = (UserId::generate(), UserId::generate());
    let d = k.devices.add(&ada, "laptop", t0()).await.unwrap();
    assert!(matches!(
        k.devices.config(&eve, &d.id).await,
        Err(DeviceError::NotFound)
    ));
    assert!(matches!(
        k.devices.delete(&eve, &d.id).await,
        Err(DeviceError::NotFound)
    ));
    assert!(matches!(
        k.devices.config(&ada, &DeviceId::generate()).await,
        Err(DeviceError::NotFound)
    ));
    assert_eq!(k.devices.list(&ada).await.unwrap().len(), 1);
    assert!(k.devices.list(&eve).await.unwrap().is_empty());
    assert_eq!(k.provisioner.peers().len(), 1);
}

#[tokio::test]
async fn hostile_names_are_refused_or_kept_as_typed() {
    let k = kit("10.66.0.0/16", 5);
    let ada = UserId::generate();
    for bad in ["", "   ", "a\nb", "bidi\u{202E}", &"x".repeat(65)] {
        assert!(
            matches!(
                k.devices.add(&ada, bad, t0()).await,
                Err(DeviceError::InvalidName(_))
            ),
            "{bad:?}"
        );
    }
    assert!(k.provisioner.peers().is_empty(), "nothing provisioned");
    let d = k
        .devices
        .add(&ada, "<script>CON.txt</script>", t0())
        .await
        .unwrap();
    assert_eq!(d.name.as_str(), "<script>CON.txt</script>");
    let emoji = "😀".repeat(64);
    assert_eq!(
        k.devices
            .add(&ada, &emoji, t0())
            .await
            .unwrap()
            .name
            .as_str(),
        emoji
    );
}

#[tokio::test]
async fn fifty_parallel_adds_respect_the_limit_and_never_share_an_address() {
    let k = Arc::new(kit("10.66.0.0/16", 10));
    let users: Vec<UserId> = (0..5).map(|_| UserId::generate()).collect();
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let (k, user) = (k.clone(), users[i % 5]);
            tokio::spawn(async move { k.devices.add(&user, &format!("device {i}"), t0()).await })
        })
        .collect();
    let mut added = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(d) => added.push(d),
            Err(DeviceError::LimitReached) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(added.len(), 50, "10 each for 5 users");
    let one_user = Arc::new(kit("10.66.0.0/16", 10));
    let ada = UserId::generate();
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let k = one_user.clone();
            tokio::spawn(async move { k.devices.add(&ada, &format!("device {i}"), t0()).await })
        })
        .collect();
    let mut ok = Vec::new();
    for t in tasks {
        if let Ok(d) = t.await.unwrap() {
            ok.push(d);
        }
    }
    assert_eq!(ok.len(), 10, "the limit is exact");
    let addresses: HashSet<_> = ok.iter().map(|d| d.address).collect();
    assert_eq!(addresses.len(), 10);
    assert_eq!(
        one_user.provisioner.peers().len(),
        10,
        "refused adds provision nothing"
    );
    let all: HashSet<_> = added.iter().map(|d| d.address.v4).collect();
    assert_eq!(all.len(), 50, "unique addresses");
}

#[tokio::test]
async fn a_full_pool_or_a_failed_provisioning_leaves_nothing_behind() {
    let k = kit("10.0.0.0/29", 100);
    let ada = UserId::generate();
    for i in 0..5 {
        k.devices.add(&ada, &format!("d{i}"), t0()).await.unwrap();
    }
    assert!(matches!(
        k.devices.add(&ada, "sixth", t0()).await,
        Err(DeviceError::PoolExhausted)
    ));

    let k = kit("10.66.0.0/16", 5);
    k.provisioner.fail(true);
    assert!(matches!(
        k.devices.add(&ada, "laptop", t0()).await,
        Err(DeviceError::Provision(_))
    ));
    assert!(k.devices.list(&ada).await.unwrap().is_empty());
    k.provisioner.fail(false);
    assert_eq!(
        k.devices.add(&ada, "laptop", t0()).await.unwrap().slot,
        0,
        "slot released"
    );
}

#[tokio::test]
async fn a_sealed_key_opens_only_for_its_own_device() {
    let k = kit("10.66.0.0/16", 5);
    let ada = UserId::generate();
    let a = k.devices.add(&ada, "a", t0()).await.unwrap();
    let b = k.devices.add(&ada, "b", t0()).await.unwrap();
    let mut grafted = b.clone();
    grafted.sealed_private_key = a.sealed_private_key.clone();
    k.store.remove(&ada, &b.id).await.unwrap();
    k.store.insert(&grafted, 5).await.unwrap();
    assert!(matches!(
        k.devices.config(&ada, &b.id).await,
        Err(DeviceError::Sealed)
    ));
    // A deletion the VPN server does not take keeps the device, for another try.
    k.provisioner.fail(true);
    assert!(matches!(
        k.devices.delete(&ada, &a.id).await,
        Err(DeviceError::Provision(_))
    ));
    assert_eq!(
        k.devices.list(&ada).await.unwrap().len(),
        2,
        "kept for another try"
    );
}

#[tokio::test]
async fn a_refused_add_holds_no_address() {
    // Five addresses, one device per account: refusals must not eat the pool.
    let k = kit("10.0.0.0/29", 1);
    let ada = UserId::generate();
    k.devices.add(&ada, "only", t0()).await.unwrap();
    for i in 0..8 {
        assert!(
            matches!(
                k.devices.add(&ada, &format!("more {i}"), t0()).await,
                Err(DeviceError::LimitReached)
            ),
            "attempt {i}"
        );
    }
    for _ in 0..4 {
        k.devices
            .add(&UserId::generate(), "other", t0())
            .await
            .unwrap();
    }
}

/// A key rotation seals every device's private key again under the newest key, bound to its
/// own device: with only the new key, each configuration still opens and holds the same key;
/// a key list that opens nothing counts them and changes nothing.
#[tokio::test]
async fn a_key_rotation_reseals_private_keys_so_the_old_key_can_go() {
    let (old, new) = ([5; 32], [6; 32]);
    let k = kit("10.66.0.0/16", 5);
    let ada = UserId::generate();
    let mut configs = Vec::new();
    for name in ["a", "b", "c"] {
        let d = k.devices.add(&ada, name, t0()).await.unwrap();
        configs.push((d.id, k.devices.config(&ada, &d.id).await.unwrap().1));
    }
    let lost = kit_on(k.store.clone(), "10.66.0.0/16", 5, &[[7; 32]]);
    let report = lost.devices.reseal_keys().await.unwrap();
    assert_eq!(
        (report.visited, report.resealed, report.unopened),
        (3, 0, 3)
    );
    let rotating = kit_on(k.store.clone(), "10.66.0.0/16", 5, &[new, old]);
    let report = rotating.devices.reseal_keys().await.unwrap();
    assert_eq!(
        (report.visited, report.resealed, report.unopened),
        (3, 3, 0)
    );
    let again = rotating.devices.reseal_keys().await.unwrap();
    assert_eq!((again.visited, again.resealed), (3, 0));
    let after = kit_on(k.store.clone(), "10.66.0.0/16", 5, &[new]);
    for (id, config) in &configs {
        let now = after.devices.config(&ada, id).await.unwrap().1;
        assert_eq!(
            field(&now, "Interface", "PrivateKey"),
            field(config, "Interface", "PrivateKey")
        );
    }
    assert!(matches!(
        k.devices.config(&ada, &configs[0].0).await,
        Err(DeviceError::Sealed)
    ));
}

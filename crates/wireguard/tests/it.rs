//! The provisioners: `wg set` argument by argument (a stand-in `wg` records what it was given),
//! and the peer-list file.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use phaze_devices::{DeviceKeys, Provisioner, TunnelAddress};
use phaze_sanitize::{CommandPolicy, CommandRunner};
use phaze_wireguard::{Interface, PeerFileProvisioner, WgProvisioner};
use std::sync::Arc;
use std::time::Duration;

fn address() -> TunnelAddress {
    TunnelAddress {
        v4: "10.66.0.2".parse().unwrap(),
        v6: "fd66::2".parse().unwrap(),
    }
}

#[test]
fn interface_names_are_what_linux_takes() {
    for ok in ["wg0", "phaze-vpn", "wg_1.2"] {
        assert!(Interface::parse(ok).is_some(), "{ok}");
    }
    for bad in [
        "",
        "-wg0",
        "wg0; rm -rf /",
        "wg 0",
        "a/b",
        "sixteen-chars-xx",
        "wg0\n",
    ] {
        assert!(Interface::parse(bad).is_none(), "{bad:?}");
    }
}

#[cfg(unix)]
#[tokio::test]
async fn wg_gets_one_argument_per_value_and_nothing_else() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("calls");
    let wg = dir.path().join("wg");
    // Each argument on its own line, so an argument that held a space or a newline would show.
    std::fs::write(&wg, "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done >> \"$LOG\"\necho --- >> \"$LOG\"\n").unwrap();
    std::fs::set_permissions(&wg, std::fs::Permissions::from_mode(0o755)).unwrap();
    let runner = CommandRunner::new(CommandPolicy {
        allowed: vec![wg.clone()],
        env: vec![("LOG".into(), log.display().to_string())],
        timeout: Duration::from_secs(5),
        max_output: 4096,
    })
    .unwrap();
    let p = WgProvisioner::new(
        Arc::new(runner),
        wg.clone(),
        Interface::parse("wg0").unwrap(),
    );
    let key = DeviceKeys::generate().public();
    p.add_peer(&key, &address()).await.unwrap();
    p.remove_peer(&key).await.unwrap();
    let calls = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        calls,
        format!(
            "set\nwg0\npeer\n{key}\nallowed-ips\n10.66.0.2/32,fd66::2/128\n---\nset\nwg0\npeer\n{key}\nremove\n---\n"
        )
    );
    // A `wg` not on the allow-list is never run.
    let other = WgProvisioner::new(
        Arc::new(
            CommandRunner::new(CommandPolicy {
                allowed: vec![],
                env: vec![],
                timeout: Duration::from_secs(5),
                max_output: 16,
            })
            .unwrap(),
        ),
        wg,
        Interface::parse("wg0").unwrap(),
    );
    assert!(other.add_peer(&key, &address()).await.is_err());
    assert_eq!(std::fs::read_to_string(&log).unwrap(), calls);
}

#[tokio::test]
async fn the_peer_file_lists_every_peer_and_drops_removed_ones() {
    let dir = tempfile::tempdir().unwrap();
    let p = PeerFileProvisioner::open(dir.path()).unwrap();
    let (a, b) = (
        DeviceKeys::generate().public(),
        DeviceKeys::generate().public(),
    );
    p.add_peer(&a, &address()).await.unwrap();
    p.add_peer(&b, &address()).await.unwrap();
    let list = std::fs::read_to_string(p.peer_list()).unwrap();
    assert_eq!(list.matches("[Peer]").count(), 2);
    assert!(list.contains(&format!(
        "PublicKey = {a}\nAllowedIPs = 10.66.0.2/32, fd66::2/128\n"
    )));
    p.remove_peer(&a).await.unwrap();
    p.remove_peer(&a).await.unwrap();
    let list = std::fs::read_to_string(p.peer_list()).unwrap();
    assert_eq!(list.matches("[Peer]").count(), 1);
    assert!(!list.contains(&a.to_base64()) && list.contains(&b.to_base64()));
    assert!(std::fs::read_dir(dir.path())
        .unwrap()
        .all(|e| { !e.unwrap().file_name().to_string_lossy().ends_with(".tmp") }));
}

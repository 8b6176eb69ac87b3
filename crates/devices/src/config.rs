use ipnet::IpNet;
use std::fmt::Write as _;
use std::net::IpAddr;

use crate::{DeviceKeys, PublicKey, TunnelAddress};

/// What every device's configuration says about the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerSettings {
    /// The server's public key.
    pub public_key: PublicKey,
    /// `host:port` devices connect to; a DNS name or an IP address (IPv6 in brackets).
    pub endpoint: String,
    /// DNS servers the device uses inside the tunnel.
    pub dns: Vec<IpAddr>,
    /// What the device sends through the tunnel (`0.0.0.0/0, ::/0` for everything).
    pub allowed_ips: Vec<IpNet>,
    /// Seconds between keepalives (`None`: off).
    pub keepalive: Option<u16>,
}

impl ServerSettings {
    /// Whether the endpoint is `host:port` with a port above 0 and a host of letters, digits,
    /// dots and dashes, or an IP address: nothing else can reach a configuration line.
    pub fn endpoint_is_valid(endpoint: &str) -> bool {
        let Some((host, port)) = endpoint.rsplit_once(':') else {
            return false;
        };
        let port_ok = port.parse::<u16>().is_ok_and(|p| p > 0);
        let host_ok = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            Some(v6) => v6.parse::<std::net::Ipv6Addr>().is_ok(),
            None => {
                !host.is_empty()
                    && host.len() <= 253
                    && host
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
                    && !host.starts_with(['.', '-'])
            }
        };
        port_ok && host_ok
    }
}

/// The WireGuard configuration of a device (`wg-quick` format): its private key and addresses,
/// the DNS servers, and the server as its one peer. Every value is typed (keys, addresses,
/// networks) or checked ([`ServerSettings::endpoint_is_valid`]), so no line can be injected.
pub fn render_config(
    keys: &DeviceKeys,
    address: &TunnelAddress,
    server: &ServerSettings,
) -> String {
    let mut out = String::with_capacity(512);
    let _ = writeln!(out, "[Interface]");
    let _ = writeln!(out, "PrivateKey = {}", keys.private_base64());
    let _ = writeln!(out, "Address = {}/32, {}/128", address.v4, address.v6);
    if !server.dns.is_empty() {
        let dns: Vec<String> = server.dns.iter().map(ToString::to_string).collect();
        let _ = writeln!(out, "DNS = {}", dns.join(", "));
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "[Peer]");
    let _ = writeln!(out, "PublicKey = {}", server.public_key);
    let _ = writeln!(out, "Endpoint = {}", server.endpoint);
    let allowed: Vec<String> = server.allowed_ips.iter().map(ToString::to_string).collect();
    let _ = writeln!(out, "AllowedIPs = {}", allowed.join(", "));
    if let Some(k) = server.keepalive {
        let _ = writeln!(out, "PersistentKeepalive = {k}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_host_and_port_only() {
        for ok in [
            "vpn.example.com:51820",
            "192.0.2.1:51820",
            "[2001:db8::1]:51820",
        ] {
            assert!(ServerSettings::endpoint_is_valid(ok), "{ok}");
        }
        for bad in [
            "vpn.example.com",
            "vpn.example.com:0",
            "vpn.example.com:70000",
            "vpn.example.com:51820\nPostUp = rm -rf /",
            "vpn example.com:51820",
            ":51820",
            "-vpn.example.com:51820",
            "[not-an-ip]:51820",
        ] {
            assert!(!ServerSettings::endpoint_is_valid(bad), "{bad:?}");
        }
    }
}

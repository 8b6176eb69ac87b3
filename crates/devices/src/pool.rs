use async_trait::async_trait;
use ipnet::{Ipv4Net, Ipv6Net};
use serde::Deserialize;
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::{DeviceId, TunnelAddress};

/// The tunnel networks devices get addresses from. The first host of each is the server; slot
/// `n` is host `n + 2` of both (so slot 0 is `.2`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolSettings {
    /// The IPv4 network (e.g. `10.66.0.0/16`).
    pub v4: Ipv4Net,
    /// The IPv6 network (e.g. `fd66::/64`).
    pub v6: Ipv6Net,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            v4: Ipv4Net::new(Ipv4Addr::new(10, 66, 0, 0), 16).unwrap_or_default(),
            v6: Ipv6Net::new(Ipv6Addr::new(0xfd66, 0, 0, 0, 0, 0, 0, 0), 64).unwrap_or_default(),
        }
    }
}

impl PoolSettings {
    /// How many devices fit: the IPv4 hosts but the network address, the server and the
    /// broadcast address (IPv6 networks are larger), at most `u32::MAX`.
    pub fn capacity(&self) -> u32 {
        let v4_hosts = 1u64 << (32 - u32::from(self.v4.prefix_len()));
        let v6_bits = 128 - u32::from(self.v6.prefix_len());
        let v6_hosts = if v6_bits >= 63 {
            u64::MAX
        } else {
            1u64 << v6_bits
        };
        let fit = v4_hosts.saturating_sub(3).min(v6_hosts.saturating_sub(2));
        u32::try_from(fit).unwrap_or(u32::MAX)
    }

    /// The server's own addresses (the first host of each network).
    pub fn server(&self) -> TunnelAddress {
        self.nth_host(1)
    }

    /// The addresses of `slot`; `None` past [`PoolSettings::capacity`].
    pub fn address(&self, slot: u32) -> Option<TunnelAddress> {
        (slot < self.capacity()).then(|| self.nth_host(u64::from(slot) + 2))
    }

    fn nth_host(&self, n: u64) -> TunnelAddress {
        let v4 = u32::from(self.v4.network()).wrapping_add(n as u32);
        let v6 = u128::from(self.v6.network()).wrapping_add(u128::from(n));
        TunnelAddress {
            v4: Ipv4Addr::from(v4),
            v6: Ipv6Addr::from(v6),
        }
    }
}

/// The pool store failed.
#[derive(Debug, thiserror::Error)]
#[error("address pool unavailable")]
pub struct PoolError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

/// Which slots are taken. Each method is one atomic step across every process sharing the pool:
/// two claims never get one slot.
#[async_trait]
pub trait AddressPool: Send + Sync {
    /// The lowest free slot below `capacity`, now held by `device`; `None` when every one is taken.
    async fn claim(&self, device: &DeviceId, capacity: u32) -> Result<Option<u32>, PoolError>;
    /// Frees `slot` if `device` holds it (anything else: nothing happens).
    async fn release(&self, slot: u32, device: &DeviceId) -> Result<(), PoolError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_map_to_hosts_after_the_server_and_stop_before_broadcast() {
        let pool = PoolSettings {
            v4: "10.0.0.0/29".parse().unwrap_or_default(),
            v6: "fd00::/120".parse().unwrap_or_default(),
        };
        assert_eq!(
            pool.capacity(),
            5,
            "8 addresses: network, server, broadcast out"
        );
        assert_eq!(pool.server().v4, Ipv4Addr::new(10, 0, 0, 1));
        let first = pool.address(0).unwrap_or_else(|| unreachable!());
        assert_eq!(first.v4, Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(
            first.v6,
            "fd00::2"
                .parse::<Ipv6Addr>()
                .unwrap_or(Ipv6Addr::UNSPECIFIED)
        );
        assert_eq!(
            pool.address(4).map(|a| a.v4),
            Some(Ipv4Addr::new(10, 0, 0, 6))
        );
        assert_eq!(pool.address(5), None);
        assert_eq!(PoolSettings::default().capacity(), 65_533);
    }
}

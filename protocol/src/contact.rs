//! Peers as the protocol sees them: an id and an address of the driver's choosing.

use core::fmt::Debug;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::id::Id;

/// A peer address, chosen by the driver: a node index in the simulator, a
/// `SocketAddr` over TCP.
///
/// Addresses travel inside messages (a reply names the contacts it knows), so
/// they must be serialisable; `Ord` keeps every collection of them deterministic.
pub trait Address: Clone + Eq + Ord + Debug + Serialize + DeserializeOwned + 'static {
    /// The network group the address belongs to (an IPv4 /24, an IPv6 /48),
    /// for the limits on how many contacts and records one group may hold;
    /// `None` exempts the address from those limits.
    ///
    /// Why: one operator usually holds addresses in one group, so capping each
    /// group caps what a single operator can place (Amino's diversity filter).
    fn group(&self) -> Option<AddrGroup>;
}

/// A network group (see [`Address::group`]): addresses in one group count
/// against one share of a routing table or a tracker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AddrGroup(pub u64);

/// Test and example addresses: each number is a group of its own.
impl Address for u32 {
    fn group(&self) -> Option<AddrGroup> {
        Some(AddrGroup(u64::from(*self)))
    }
}

/// An IPv4 address's /24, an IPv6 address's /48; loopback, private,
/// link-local and unspecified addresses are exempt (`None`), as in libp2p's
/// diversity filter: a testnet or a LAN shares one group by nature, and those
/// addresses cannot be reached from the open network anyway.
impl Address for std::net::SocketAddr {
    fn group(&self) -> Option<AddrGroup> {
        use std::net::IpAddr;
        match self.ip().to_canonical() {
            IpAddr::V4(ip) => {
                let local = ip.is_loopback()
                    || ip.is_private()
                    || ip.is_link_local()
                    || ip.is_unspecified()
                    || ip.is_broadcast()
                    // 100.64.0.0/10, carrier-grade NAT (RFC 6598).
                    || (ip.octets()[0] == 100 && ip.octets()[1] & 0xc0 == 64);
                let [a, b, c, _] = ip.octets();
                (!local).then(|| AddrGroup(u64::from(u32::from_be_bytes([0, a, b, c]))))
            }
            IpAddr::V6(ip) => {
                let s = ip.segments();
                let local = ip.is_loopback()
                    || ip.is_unspecified()
                    // fc00::/7 unique local, fe80::/10 link-local.
                    || s[0] & 0xfe00 == 0xfc00
                    || s[0] & 0xffc0 == 0xfe80;
                // Tagged apart from IPv4 groups by the top bit.
                let g = (1u64 << 63)
                    | (u64::from(s[0]) << 32)
                    | (u64::from(s[1]) << 16)
                    | u64::from(s[2]);
                (!local).then_some(AddrGroup(g))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    fn group(s: &str) -> Option<AddrGroup> {
        s.parse::<SocketAddr>().map(|a| a.group()).unwrap_or(None)
    }

    #[test]
    fn ipv4_groups_are_slash_24s_and_local_addresses_are_exempt() {
        assert_eq!(group("8.8.8.8:1"), group("8.8.8.200:9"));
        assert_ne!(group("8.8.8.8:1"), group("8.8.9.8:1"));
        assert!(group("8.8.8.8:1").is_some());
        for local in [
            "127.0.0.1:1",
            "10.1.2.3:1",
            "192.168.1.1:1",
            "169.254.0.1:1",
            "100.64.1.1:1",
        ] {
            assert_eq!(group(local), None, "{local}");
        }
    }

    #[test]
    fn ipv6_groups_are_slash_48s_apart_from_ipv4() {
        assert_eq!(group("[2001:db8:1::1]:1"), group("[2001:db8:1:ffff::2]:1"));
        assert_ne!(group("[2001:db8:1::1]:1"), group("[2001:db8:2::1]:1"));
        assert_eq!(group("[::ffff:8.8.8.8]:1"), group("8.8.8.1:1"));
        assert_eq!(group("[::1]:1"), None);
        assert_eq!(group("[fd00::1]:1"), None);
    }
}

/// How a peer can be reached at the address a message came from, as the
/// driver knows it (from the peer's handshake, in the live node).
///
/// Why three kinds: a routing table must hold only peers anyone can dial
/// cheaply, or lookups stall on them; a provider record may also name a peer
/// reached through a relay, since a reader dials it once and the relay carries
/// only that connection; a peer nobody can dial belongs in neither.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub enum Reach {
    /// Dialable at its address: routing tables and records may name it.
    #[default]
    Direct,
    /// Dialable at its address only through a relay there: records may name
    /// it, routing tables may not (every lookup through it would load the relay).
    Relayed,
    /// Not dialable (client mode): no routing table and no record names it.
    Client,
}

impl Reach {
    /// Whether a routing table may hold the peer.
    pub fn routable(self) -> bool {
        self == Reach::Direct
    }

    /// Whether a provider or fetching record may name the peer.
    pub fn recordable(self) -> bool {
        self != Reach::Client
    }
}

/// A peer: who it is and where to reach it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Contact<A> {
    /// The peer's node id.
    pub id: Id,
    /// Where to send messages for it.
    pub addr: A,
}

impl<A> Contact<A> {
    /// A contact for `id` at `addr`.
    pub fn new(id: Id, addr: A) -> Self {
        Contact { id, addr }
    }
}

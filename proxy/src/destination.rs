//! Where the relay and CONNECT may go: names are resolved here, every address is
//! checked, and the caller connects to the checked address itself, so a second
//! resolution (DNS rebinding) cannot differ from the one that was checked.
//!
//! Loopback, link-local, private (RFC 1918, RFC 4193, RFC 6598), multicast,
//! unspecified and reserved addresses are refused unless `relay_allow_private`
//! is set (Squid's default `deny to_localhost`): otherwise any web page could use
//! the relay to reach the user's router, printer or a local development server.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use http::StatusCode;
use tokio::net::TcpStream;

/// Most addresses of one name tried in turn.
const MAX_ADDRESSES_TRIED: usize = 4;

/// Why a destination is not reached.
#[derive(Debug, thiserror::Error)]
pub enum DestinationError {
    /// The name does not resolve.
    #[error("cannot resolve {host}")]
    Resolve {
        /// The name.
        host: String,
        /// Why.
        source: std::io::Error,
    },
    /// Every address of the name is one the relay refuses.
    #[error(
        "{host} is {addr}, a loopback, private, link-local or otherwise local address: \
         the relay does not reach those (start the node with --relay-allow-private to allow it)"
    )]
    Forbidden {
        /// The name.
        host: String,
        /// The first refused address.
        addr: IpAddr,
    },
    /// The address is this proxy itself: relaying would loop, and a tunnel to it
    /// would make a remote client look local.
    #[error("{0} is this proxy itself")]
    Itself(SocketAddr),
    /// A CONNECT to a port outside `connect_ports`.
    #[error("CONNECT reaches only ports {allowed:?} (got {port}); see --connect-ports")]
    Port {
        /// The port asked for.
        port: u16,
        /// The ports allowed.
        allowed: Vec<u16>,
    },
    /// Connecting failed.
    #[error("cannot connect to {host}")]
    Connect {
        /// The name.
        host: String,
        /// Why (the last address's error).
        source: std::io::Error,
    },
    /// Neither resolution nor connecting finished in time.
    #[error("{0} did not accept a connection in time")]
    Timeout(String),
}

impl DestinationError {
    /// The status the client gets.
    pub fn status(&self) -> StatusCode {
        match self {
            DestinationError::Forbidden { .. } | DestinationError::Port { .. } => {
                StatusCode::FORBIDDEN
            }
            DestinationError::Itself(_) => StatusCode::LOOP_DETECTED,
            DestinationError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            DestinationError::Resolve { .. } | DestinationError::Connect { .. } => {
                StatusCode::BAD_GATEWAY
            }
        }
    }
}

/// The relay's rules for destinations.
#[derive(Clone, Debug)]
pub struct Destinations {
    /// Reach local and private addresses too.
    pub allow_private: bool,
    /// Addresses that are this proxy or its node: never reached.
    pub own: Vec<SocketAddr>,
}

impl Destinations {
    /// Whether `addr` may be reached.
    fn check(&self, addr: SocketAddr) -> Result<(), DestinationError> {
        let ip = addr.ip().to_canonical();
        let is_own = self.own.iter().any(|own| {
            own.port() == addr.port()
                && (own.ip().to_canonical() == ip || (own.ip().is_unspecified() && is_local(ip)))
        });
        if is_own {
            return Err(DestinationError::Itself(addr));
        }
        if !self.allow_private && is_local(ip) {
            return Err(DestinationError::Forbidden {
                host: String::new(),
                addr: ip,
            });
        }
        Ok(())
    }

    /// Resolves `host:port`, refuses it if its addresses are all refused, and
    /// connects to the first allowed address that answers, within `timeout`.
    pub async fn connect(
        &self,
        host: &str,
        port: u16,
        timeout: Duration,
    ) -> Result<(TcpStream, SocketAddr), DestinationError> {
        let name = format!("{host}:{port}");
        tokio::time::timeout(timeout, self.connect_now(host, port))
            .await
            .unwrap_or(Err(DestinationError::Timeout(name)))
    }

    async fn connect_now(
        &self,
        host: &str,
        port: u16,
    ) -> Result<(TcpStream, SocketAddr), DestinationError> {
        // `[::1]` arrives with its brackets from a URI authority.
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let resolved: Vec<SocketAddr> = tokio::net::lookup_host((bare, port))
            .await
            .map_err(|source| DestinationError::Resolve {
                host: host.to_string(),
                source,
            })?
            .collect();
        let mut refusal = None;
        let mut allowed = Vec::new();
        for addr in resolved {
            match self.check(addr) {
                Ok(()) => allowed.push(addr),
                Err(DestinationError::Forbidden { addr, .. }) => {
                    refusal.get_or_insert(DestinationError::Forbidden {
                        host: host.to_string(),
                        addr,
                    });
                }
                Err(e) => return Err(e),
            }
        }
        let mut last = None;
        for addr in allowed.into_iter().take(MAX_ADDRESSES_TRIED) {
            match TcpStream::connect(addr).await {
                Ok(stream) => {
                    let _ = stream.set_nodelay(true);
                    return Ok((stream, addr));
                }
                Err(e) => last = Some(e),
            }
        }
        Err(match (last, refusal) {
            (Some(source), _) => DestinationError::Connect {
                host: host.to_string(),
                source,
            },
            (None, Some(refused)) => refused,
            (None, None) => DestinationError::Resolve {
                host: host.to_string(),
                source: std::io::Error::other("no address"),
            },
        })
    }
}

/// Whether `ip` is on this machine or its local networks rather than the
/// internet: loopback, private, link-local, multicast, unspecified, reserved.
pub fn is_local(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(v4) => is_local_v4(v4),
        IpAddr::V6(v6) => is_local_v6(v6),
    }
}

fn is_local_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || a == 0 // "this network", 0.0.0.0/8
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT), RFC 6598
        || a >= 240 // reserved, 240.0.0.0/4
}

fn is_local_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    if let Some(v4) = embedded_v4(ip) {
        return is_local_v4(v4);
    }
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00 // unique local, RFC 4193
        || (first & 0xffc0) == 0xfe80 // link-local
        || (first & 0xffc0) == 0xfec0 // site-local (deprecated, still routed locally)
}

/// The IPv4 address inside an IPv4-compatible (`::a.b.c.d`) or NAT64
/// (`64:ff9b::a.b.c.d`) address, which reach that IPv4 address.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let low = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    let compatible = s[..6] == [0; 6] && !ip.is_loopback() && !ip.is_unspecified();
    let nat64 = s[..6] == [0x64, 0xff9b, 0, 0, 0, 0];
    (compatible || nat64).then_some(low)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_addresses_are_recognised() {
        for local in [
            "127.0.0.1",
            "127.1.2.3",
            "10.0.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "0.0.0.0",
            "0.1.2.3",
            "240.0.0.1",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "fc12::1",
            "ff02::1",
            "fec0::1",
            "::ffff:127.0.0.1",
            "::ffff:192.168.0.1",
            "::127.0.0.1",
            "64:ff9b::10.0.0.1",
        ] {
            assert!(is_local(local.parse().unwrap()), "{local}");
        }
        for public in [
            "1.1.1.1",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "192.0.2.1",
            "2606:4700::1111",
            "::ffff:1.1.1.1",
            "64:ff9b::1.1.1.1",
        ] {
            assert!(!is_local(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn own_addresses_are_refused_even_when_private_is_allowed() {
        let d = Destinations {
            allow_private: true,
            own: vec!["0.0.0.0:1234".parse().unwrap()],
        };
        assert!(matches!(
            d.check("127.0.0.1:1234".parse().unwrap()),
            Err(DestinationError::Itself(_))
        ));
        assert!(d.check("127.0.0.1:1235".parse().unwrap()).is_ok());
        let strict = Destinations {
            allow_private: false,
            own: Vec::new(),
        };
        assert!(matches!(
            strict.check("10.1.1.1:80".parse().unwrap()),
            Err(DestinationError::Forbidden { .. })
        ));
        assert!(strict.check("1.1.1.1:80".parse().unwrap()).is_ok());
    }
}

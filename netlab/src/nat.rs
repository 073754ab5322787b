//! The kinds of NAT a lab's router does, written as nftables rulesets.
//!
//! Linux's `masquerade` keeps a connection's source port when it is free, so
//! one local port maps to one public port whatever the destination: an
//! endpoint-independent mapping, what most home routers do and what TCP hole
//! punching needs. `masquerade fully-random` picks a new port for every
//! connection: a symmetric NAT, which defeats hole punching. Both filter by
//! connection (conntrack): from outside, only replies to connections made from
//! inside, and forwarded ports, come in. Anything else sent to the router is
//! dropped without an answer, as home routers do: a refusal would reset the
//! first of two simultaneous dials before the second had opened the way.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

/// How a router maps its home's connections to its public address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nat {
    /// One public port per local port, whatever the destination.
    EndpointIndependent,
    /// A new public port for every connection (address- and port-dependent mapping).
    Symmetric,
}

/// The router's ruleset: NAT of `lan` traffic leaving by `wan`, inbound
/// traffic only for known connections, and each port in `forwards` forwarded
/// (TCP) to `host`.
pub(crate) fn ruleset(nat: Nat, host: Ipv4Addr, forwards: &[u16]) -> String {
    let masquerade = match nat {
        Nat::EndpointIndependent => "masquerade",
        Nat::Symmetric => "masquerade fully-random",
    };
    let mut dnat = String::new();
    for port in forwards {
        let _ = writeln!(
            dnat,
            "    iifname \"wan\" tcp dport {port} dnat to {host}:{port}"
        );
    }
    format!(
        "table ip lab {{
  chain prerouting {{
    type nat hook prerouting priority dstnat;
{dnat}  }}
  chain postrouting {{
    type nat hook postrouting priority srcnat;
    oifname \"wan\" {masquerade}
  }}
  chain input {{
    type filter hook input priority filter;
    iifname \"wan\" ct state established,related accept
    iifname \"wan\" drop
  }}
  chain forward {{
    type filter hook forward priority filter; policy drop;
    ct state established,related accept
    iifname \"lan\" oifname \"wan\" accept
    ct status dnat accept
  }}
}}
"
    )
}

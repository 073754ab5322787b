//! NATs: a share of the nodes sit behind a NAT of one of three kinds, and a
//! message reaches a NATed node only over a connection it can pass.
//!
//! The model works on connections, as the live node's TCP transport does: a
//! NATed node's table holds one entry per peer it has a connection with (the
//! router's conntrack entry), refreshed by every message either way and
//! forgotten `mapping_timeout` after the last (the live node's idle timeout)
//! or when the table is full and a new one needs the room. A message to a
//! NATed node from a peer without such an entry is unsolicited: the router
//! drops it silently, and the sender waits out its timeout.
//!
//! With relays, a NATed node holds a reservation at a public relay node, and
//! an unsolicited message reaches it through that relay (sender → relay →
//! node, each hop with its latency and the relay's links charged), if the
//! relay has a circuit to spare. On such a first contact the two ends try to
//! upgrade to a direct connection (libp2p's DCUtR): with a public sender the
//! NATed node simply dials it back (a reversal, always works); between two
//! NATed nodes a hole punch works with the probability the [`PunchTable`]
//! gives their pair of kinds. The first message went through the relay
//! either way; later ones go direct after an upgrade, through the relay
//! otherwise.
//!
//! Implementation note: the kinds differ only in what a punch achieves; every
//! kind filters by address (a port-restricted cone, the common home router),
//! so a connection a NATed node opened passes its peer's replies, and no
//! other peer's. A punch is decided at once on the first contact, its own
//! round trips are not simulated, and a failed punch is not retried until
//! the relayed connection expires (libp2p measured 97.6 % of its successes
//! on the first attempt).

use core::time::Duration;
use std::collections::BTreeMap;

use distroweb_protocol::Time;
use serde::{Deserialize, Serialize};

use crate::addr::NodeIdx;
use crate::seed::{below, stream_rng, unit_open, SimRng, Stream};

/// What a node sits behind: nothing, or a NAT of one of the kinds RFC 4787
/// tells apart by how it maps a host's connections to ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum NatKind {
    /// A public address: anyone can dial it.
    Public,
    /// Endpoint-independent mapping: one external port for every
    /// destination, so the port a relay saw is the port a peer can punch to.
    EndpointIndependent,
    /// Address-dependent mapping: a new external port per destination
    /// address; a punch works only if the other side's router is lenient.
    AddressDependent,
    /// Address-and-port-dependent mapping (symmetric): a new port per
    /// destination port; punches practically never work.
    Symmetric,
}

/// How the NATed nodes run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum NatMode {
    /// As if they were public (the behaviour before client mode): their
    /// messages arrive as [`distroweb_protocol::Reach::Direct`], so peers put
    /// them in routing tables and records at an address nobody can dial.
    #[default]
    Naive,
    /// In client mode ([`distroweb_protocol::Reach::Client`]): they ask and
    /// fetch, but enter no routing table and write no record naming
    /// themselves.
    Client,
    /// In client mode while they find no relay; with a reservation at a
    /// public relay, relayed ([`distroweb_protocol::Reach::Relayed`]): records
    /// may name them, and an unsolicited message reaches them through the
    /// relay, upgraded to a direct connection when a punch works.
    Relays,
}

/// The chance that a hole punch between two NATed nodes works, per pair of
/// kinds (the table is symmetric). A pair with a public end is no punch (the
/// NATed end dials back), and always works.
///
/// The defaults, with the default mix of kinds among NATed nodes in the
/// `nat` experiment (80 % endpoint-independent, 10 % address-dependent, 10 %
/// symmetric), give a mean success near 70 % over pairs of NATed nodes, the
/// figure libp2p measured for DCUtR (70 % ± 7 % over 4.4 M attempts).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct PunchTable {
    /// Both endpoint-independent: the simultaneous open meets the ports each
    /// side announced; fails only on timing and stricter firewalls.
    pub eim_eim: f64,
    /// One endpoint-independent, one address-dependent.
    pub eim_address: f64,
    /// One endpoint-independent, one symmetric.
    pub eim_symmetric: f64,
    /// Both address-dependent.
    pub address_address: f64,
    /// One address-dependent, one symmetric.
    pub address_symmetric: f64,
    /// Both symmetric.
    pub symmetric_symmetric: f64,
}

impl Default for PunchTable {
    fn default() -> Self {
        PunchTable {
            eim_eim: 0.95,
            eim_address: 0.5,
            eim_symmetric: 0.1,
            address_address: 0.25,
            address_symmetric: 0.0,
            symmetric_symmetric: 0.0,
        }
    }
}

impl PunchTable {
    /// The chance that a punch between nodes behind `a` and `b` works; 1 if
    /// either is public (no punch is needed).
    pub fn success(&self, a: NatKind, b: NatKind) -> f64 {
        use NatKind::*;
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        match (lo, hi) {
            (Public, _) => 1.0,
            (EndpointIndependent, EndpointIndependent) => self.eim_eim,
            (EndpointIndependent, AddressDependent) => self.eim_address,
            (EndpointIndependent, Symmetric) => self.eim_symmetric,
            (AddressDependent, AddressDependent) => self.address_address,
            (AddressDependent, Symmetric) => self.address_symmetric,
            (Symmetric, _) => self.symmetric_symmetric,
            // `lo <= hi` leaves no other pair.
            (AddressDependent, _) | (EndpointIndependent, _) => 0.0,
        }
    }

    fn probabilities(&self) -> [(&'static str, f64); 6] {
        [
            ("nat.punch.eim_eim", self.eim_eim),
            ("nat.punch.eim_address", self.eim_address),
            ("nat.punch.eim_symmetric", self.eim_symmetric),
            ("nat.punch.address_address", self.address_address),
            ("nat.punch.address_symmetric", self.address_symmetric),
            ("nat.punch.symmetric_symmetric", self.symmetric_symmetric),
        ]
    }
}

/// Who sits behind which NAT, how NATed nodes run, and the bounds of routers
/// and relays. The default puts no node behind a NAT: the model is off, and
/// a run is the same as without it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NatConfig {
    /// Share of the nodes behind an endpoint-independent NAT.
    pub endpoint_independent: f64,
    /// Share behind an address-dependent NAT.
    pub address_dependent: f64,
    /// Share behind a symmetric NAT.
    pub symmetric: f64,
    /// How the NATed nodes run.
    pub mode: NatMode,
    /// A connection through a NAT is forgotten this long after its last
    /// message; default 300 s, the live node's connection `idle_timeout`.
    pub mapping_timeout: Duration,
    /// Connections a NATed node keeps at once (its router's entries for it);
    /// a new one evicts the one idle longest. Default 128: the live node's 64
    /// outbound connections plus as many punched or relayed ones.
    pub max_mappings: u32,
    /// Reservations a relay accepts; default 128, libp2p's circuit relay v2.
    pub relay_reservations: u32,
    /// Circuits (relayed connections) a relay carries at once; default 16,
    /// libp2p's circuit relay v2.
    pub relay_circuits: u32,
    /// Hole-punch success per pair of kinds.
    pub punch: PunchTable,
}

impl Default for NatConfig {
    fn default() -> Self {
        NatConfig {
            endpoint_independent: 0.0,
            address_dependent: 0.0,
            symmetric: 0.0,
            mode: NatMode::Naive,
            mapping_timeout: Duration::from_secs(300),
            max_mappings: 128,
            relay_reservations: 128,
            relay_circuits: 16,
            punch: PunchTable::default(),
        }
    }
}

impl NatConfig {
    /// The share of the nodes behind any NAT.
    pub fn nated_share(&self) -> f64 {
        self.endpoint_independent + self.address_dependent + self.symmetric
    }

    /// `share` of the nodes behind NATs, split over the kinds as `mix`
    /// (endpoint-independent, address-dependent, symmetric; normalised).
    pub fn with_share(mut self, share: f64, mix: [f64; 3]) -> Self {
        let total: f64 = mix.iter().sum();
        let part = |m: f64| if total > 0.0 { share * m / total } else { 0.0 };
        self.endpoint_independent = part(mix[0]);
        self.address_dependent = part(mix[1]);
        self.symmetric = part(mix[2]);
        self
    }

    /// Every probability and share in `[0, 1]`, shares summing to at most 1,
    /// bounds at least 1: `Err` names the first field that is not.
    pub fn check(&self) -> Result<(), &'static str> {
        let shares = [
            ("nat.endpoint_independent", self.endpoint_independent),
            ("nat.address_dependent", self.address_dependent),
            ("nat.symmetric", self.symmetric),
        ];
        for (name, p) in shares.into_iter().chain(self.punch.probabilities()) {
            if !(0.0..=1.0).contains(&p) {
                return Err(name);
            }
        }
        if self.nated_share() > 1.0 + 1e-9 {
            return Err("nat (the three shares together)");
        }
        if self.max_mappings == 0 {
            return Err("nat.max_mappings");
        }
        if self.mapping_timeout.is_zero() {
            return Err("nat.mapping_timeout");
        }
        Ok(())
    }
}

/// How an open connection between a NATed node and a peer runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Path {
    /// The NATed node dialled the peer: direct.
    Outbound,
    /// The peer is public and came through the relay; the NATed node dialled
    /// it back: direct.
    Reversed,
    /// Both NATed, through the relay first, then a hole punch worked: direct.
    Punched,
    /// Through this relay: the punch failed, or was never possible.
    Relayed(NodeIdx),
}

impl Path {
    /// Whether messages on it go direct.
    pub fn is_direct(self) -> bool {
        !matches!(self, Path::Relayed(_))
    }
}

/// Where the network sends one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// Straight to the receiver.
    Direct,
    /// Through this relay.
    Via(NodeIdx),
    /// Nowhere: the receiver's NAT drops it.
    Blocked,
}

/// What the NAT model did, counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct NatStats {
    /// Messages a NAT dropped as unsolicited.
    pub blocked: u64,
    /// Messages carried through a relay.
    pub relayed: u64,
    /// Relayed connections opened.
    pub circuits: u64,
    /// Unsolicited messages dropped because the relay had no circuit to spare.
    pub circuits_refused: u64,
    /// Reversals: a public peer reached a NATed node through its relay, and
    /// the node dialled it back.
    pub reversals: u64,
    /// Hole punches tried between two NATed nodes.
    pub punches: u64,
    /// Those that worked.
    pub punched: u64,
    /// Reservations made.
    pub reservations: u64,
    /// Times a NATed node wanting a relay found none with room.
    pub no_relay: u64,
}

/// One connection in a NATed node's table.
#[derive(Clone, Copy, Debug)]
struct Link {
    remote: NodeIdx,
    path: Path,
    expires: Time,
}

/// A node's NAT and, if it is behind one, its connections and its relay.
#[derive(Debug)]
struct Host {
    kind: NatKind,
    relay: Option<NodeIdx>,
    links: Vec<Link>,
}

/// A circuit: a relayed connection to `node` (NATed, reserved here) from `peer`.
#[derive(Clone, Copy, Debug)]
struct Circuit {
    node: NodeIdx,
    peer: NodeIdx,
    expires: Time,
}

/// A relay's reservations and open circuits.
#[derive(Debug, Default)]
struct Relay {
    reserved: Vec<NodeIdx>,
    circuits: Vec<Circuit>,
}

/// Up nodes a NATed node looks at, at most, for a relay with room.
pub const RELAY_SCAN: usize = 4_096;

/// The NATs of a run: each node's kind, the NATed nodes' connections, the
/// relays' reservations and circuits.
///
/// Per node 40 bytes, plus 24 per open connection of a NATed node (at most
/// `max_mappings`) and 16 per reservation and circuit at a relay.
#[derive(Debug)]
pub struct Nat {
    config: NatConfig,
    hosts: Vec<Host>,
    /// By relay, in slot order.
    relays: BTreeMap<NodeIdx, Relay>,
    rng: SimRng,
    stats: NatStats,
}

impl Nat {
    /// Puts the configured shares of `nodes` behind NATs: a random choice
    /// from the NAT stream of `seed`, so no other stream moves. Slot 0, which
    /// starts the network alone, stays public, as a bootstrap server is.
    pub fn new(config: NatConfig, nodes: usize, seed: u64) -> Self {
        let mut rng = stream_rng(seed, Stream::Nat);
        let mut hosts: Vec<Host> = (0..nodes)
            .map(|_| Host {
                kind: NatKind::Public,
                relay: None,
                links: Vec::new(),
            })
            .collect();
        // A Fisher–Yates shuffle of slots 1.., then the first of them to each kind.
        let mut order: Vec<usize> = (1..nodes).collect();
        for i in 0..order.len() {
            let j = i + below(&mut rng, (order.len() - i) as u64) as usize;
            order.swap(i, j);
        }
        let count = |share: f64| (share * nodes as f64).round() as usize;
        let mut next = order.into_iter();
        for (kind, share) in [
            (NatKind::EndpointIndependent, config.endpoint_independent),
            (NatKind::AddressDependent, config.address_dependent),
            (NatKind::Symmetric, config.symmetric),
        ] {
            for slot in next.by_ref().take(count(share)) {
                hosts[slot].kind = kind;
            }
        }
        Nat {
            config,
            hosts,
            relays: BTreeMap::new(),
            rng,
            stats: NatStats::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &NatConfig {
        &self.config
    }

    /// What the model did so far.
    pub fn stats(&self) -> &NatStats {
        &self.stats
    }

    /// What `node` sits behind (public for a slot out of range).
    pub fn kind(&self, node: NodeIdx) -> NatKind {
        self.hosts
            .get(node.index())
            .map_or(NatKind::Public, |h| h.kind)
    }

    /// Whether `node` sits behind a NAT.
    pub fn is_nated(&self, node: NodeIdx) -> bool {
        self.kind(node) != NatKind::Public
    }

    /// The NATed nodes, in slot order.
    pub fn nated(&self) -> impl Iterator<Item = NodeIdx> + '_ {
        (self.hosts.iter().enumerate())
            .filter(|(_, h)| h.kind != NatKind::Public)
            .map(|(i, _)| NodeIdx(i as u32))
    }

    /// The relay `node` holds a reservation at.
    pub fn relay_of(&self, node: NodeIdx) -> Option<NodeIdx> {
        self.hosts.get(node.index())?.relay
    }

    /// The open connection between NATed `node` and `remote` at `now`, as
    /// `node`'s table holds it.
    pub fn link(&self, node: NodeIdx, remote: NodeIdx, now: Time) -> Option<Path> {
        let h = self.hosts.get(node.index())?;
        let i = find(h, remote, now)?;
        Some(h.links[i].path)
    }

    /// `node` (NATed, just up) reserves a circuit slot at a public relay among
    /// `up`: the first with room after a random place in the list (at most
    /// [`RELAY_SCAN`] looked at, so the cost is bounded); `None` if it found
    /// none. A reservation it held is released.
    pub fn reserve(&mut self, node: NodeIdx, up: &[NodeIdx]) -> Option<NodeIdx> {
        self.release_reservation(node);
        if up.is_empty() || !self.is_nated(node) {
            return None;
        }
        let cap = self.config.relay_reservations as usize;
        let from = below(&mut self.rng, up.len() as u64) as usize;
        for i in 0..up.len().min(RELAY_SCAN) {
            let r = up[(from + i) % up.len()];
            if r == node || self.is_nated(r) {
                continue;
            }
            let relay = self.relays.entry(r).or_default();
            if relay.reserved.len() < cap {
                relay.reserved.push(node);
                self.hosts[node.index()].relay = Some(r);
                self.stats.reservations += 1;
                return Some(r);
            }
        }
        self.stats.no_relay += 1;
        None
    }

    /// `node` went down: its connections and reservation are gone, and if it
    /// was a relay, so are its circuits. Returns the nodes that held a
    /// reservation there (to reserve elsewhere), in the order they reserved.
    pub fn leave(&mut self, node: NodeIdx) -> Vec<NodeIdx> {
        self.release_reservation(node);
        if let Some(h) = self.hosts.get_mut(node.index()) {
            h.links.clear();
        }
        let Some(relay) = self.relays.remove(&node) else {
            return Vec::new();
        };
        for &o in &relay.reserved {
            let h = &mut self.hosts[o.index()];
            h.relay = None;
            h.links.retain(|l| l.path != Path::Relayed(node));
        }
        relay.reserved
    }

    fn release_reservation(&mut self, node: NodeIdx) {
        let Some(r) = self
            .hosts
            .get_mut(node.index())
            .and_then(|h| h.relay.take())
        else {
            return;
        };
        if let Some(relay) = self.relays.get_mut(&r) {
            relay.reserved.retain(|n| *n != node);
            relay.circuits.retain(|c| c.node != node);
        }
        self.hosts[node.index()]
            .links
            .retain(|l| l.path != Path::Relayed(r));
    }

    /// Where a message from `from` to `to` sent at `now` goes, opening,
    /// upgrading and refreshing connections on the way.
    pub fn route(&mut self, now: Time, from: NodeIdx, to: NodeIdx) -> Route {
        let (kf, kt) = (self.kind(from), self.kind(to));
        if kf == NatKind::Public && kt == NatKind::Public {
            return Route::Direct;
        }
        if let Some(path) = self.open_path(from, to, now) {
            self.refresh(from, to, path, now);
            return match path {
                Path::Relayed(r) => {
                    self.stats.relayed += 1;
                    Route::Via(r)
                }
                _ => Route::Direct,
            };
        }
        if kt == NatKind::Public {
            // A NATed node dials a public one: its router opens the way back.
            self.insert(from, to, Path::Outbound, now);
            return Route::Direct;
        }
        // Unsolicited, to a NATed node: only its relay can carry it.
        let Some(relay) = self.hosts[to.index()].relay else {
            self.stats.blocked += 1;
            return Route::Blocked;
        };
        if relay == from {
            // Its relay, over the connection the reservation keeps open.
            return Route::Direct;
        }
        if !self.open_circuit(relay, to, from, now) {
            self.stats.circuits_refused += 1;
            self.stats.blocked += 1;
            return Route::Blocked;
        }
        self.stats.circuits += 1;
        self.stats.relayed += 1;
        let path = if kf == NatKind::Public {
            self.stats.reversals += 1;
            Path::Reversed
        } else {
            self.stats.punches += 1;
            let p = self.config.punch.success(kf, kt);
            // Drawn for every punch, whatever the odds, so the stream's use
            // depends only on which pairs meet.
            if unit_open(&mut self.rng) < p {
                self.stats.punched += 1;
                Path::Punched
            } else {
                Path::Relayed(relay)
            }
        };
        if path.is_direct() {
            // Upgraded: the relayed connection closes after this message.
            self.close_circuit(relay, to, from);
        }
        self.insert(to, from, path, now);
        if kf != NatKind::Public {
            self.insert(from, to, path, now);
        }
        Route::Via(relay)
    }

    /// The connection between `from` and `to` both ends' NATs know, if any:
    /// the NATed end's entry, and with two NATed ends both must hold it.
    fn open_path(&self, from: NodeIdx, to: NodeIdx, now: Time) -> Option<Path> {
        let (nf, nt) = (self.is_nated(from), self.is_nated(to));
        let at_to = if nt {
            Some(self.link(to, from, now)?)
        } else {
            None
        };
        let at_from = if nf {
            Some(self.link(from, to, now)?)
        } else {
            None
        };
        at_to.or(at_from)
    }

    fn refresh(&mut self, a: NodeIdx, b: NodeIdx, path: Path, now: Time) {
        let expires = now + self.config.mapping_timeout;
        for (node, remote) in [(a, b), (b, a)] {
            let h = &mut self.hosts[node.index()];
            if h.kind == NatKind::Public {
                continue;
            }
            if let Some(i) = find(h, remote, now) {
                h.links[i].expires = expires;
            }
        }
        if let Path::Relayed(r) = path {
            if let Some(relay) = self.relays.get_mut(&r) {
                for c in relay.circuits.iter_mut() {
                    if (c.node, c.peer) == (a, b) || (c.node, c.peer) == (b, a) {
                        c.expires = expires;
                    }
                }
            }
        }
    }

    /// Adds (or replaces) `node`'s connection to `remote`, evicting the one
    /// idle longest when the table is full.
    fn insert(&mut self, node: NodeIdx, remote: NodeIdx, path: Path, now: Time) {
        let link = Link {
            remote,
            path,
            expires: now + self.config.mapping_timeout,
        };
        let max = self.config.max_mappings as usize;
        let h = &mut self.hosts[node.index()];
        if let Some(l) = h.links.iter_mut().find(|l| l.remote == remote) {
            *l = link;
            return;
        }
        if h.links.len() < max {
            h.links.push(link);
            return;
        }
        let Some(oldest) = (h.links.iter().enumerate())
            .min_by_key(|(_, l)| (l.expires, l.remote))
            .map(|(i, _)| i)
        else {
            return;
        };
        let evicted = std::mem::replace(&mut h.links[oldest], link);
        if let Path::Relayed(r) = evicted.path {
            self.close_circuit(r, node, evicted.remote);
        }
    }

    /// Opens a circuit at `relay` to `node` from `peer`, if it has room once
    /// expired circuits are gone.
    fn open_circuit(&mut self, relay: NodeIdx, node: NodeIdx, peer: NodeIdx, now: Time) -> bool {
        let cap = self.config.relay_circuits as usize;
        let expires = now + self.config.mapping_timeout;
        let Some(r) = self.relays.get_mut(&relay) else {
            return false;
        };
        r.circuits.retain(|c| c.expires > now);
        if r.circuits.len() >= cap {
            return false;
        }
        r.circuits.push(Circuit {
            node,
            peer,
            expires,
        });
        true
    }

    fn close_circuit(&mut self, relay: NodeIdx, a: NodeIdx, b: NodeIdx) {
        if let Some(r) = self.relays.get_mut(&relay) {
            r.circuits
                .retain(|c| (c.node, c.peer) != (a, b) && (c.node, c.peer) != (b, a));
        }
    }

    /// Circuits open at `relay` at `now`.
    pub fn circuits(&self, relay: NodeIdx, now: Time) -> usize {
        self.relays
            .get(&relay)
            .map_or(0, |r| r.circuits.iter().filter(|c| c.expires > now).count())
    }
}

/// The index of `h`'s live connection to `remote`.
fn find(h: &Host, remote: NodeIdx, now: Time) -> Option<usize> {
    h.links
        .iter()
        .position(|l| l.remote == remote && l.expires > now)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `nodes` nodes, the given share behind endpoint-independent NATs, in `mode`.
    fn nat(nodes: usize, share: f64, mode: NatMode) -> Nat {
        let config = NatConfig {
            endpoint_independent: share,
            mode,
            ..NatConfig::default()
        };
        Nat::new(config, nodes, 7)
    }

    /// A NATed and a public node of `n`.
    fn pair(n: &Nat) -> (NodeIdx, NodeIdx) {
        let nated = n.nated().next().expect("a NATed node");
        let public = (0..n.hosts.len() as u32)
            .map(NodeIdx)
            .find(|i| !n.is_nated(*i))
            .expect("a public node");
        (nated, public)
    }

    #[test]
    fn shares_are_exact_and_slot_zero_stays_public() {
        let config = NatConfig::default().with_share(0.5, [8.0, 1.0, 1.0]);
        let n = Nat::new(config.clone(), 1_000, 3);
        let count = |k| (0..1_000).filter(|i| n.kind(NodeIdx(*i)) == k).count();
        assert_eq!(count(NatKind::EndpointIndependent), 400);
        assert_eq!(count(NatKind::AddressDependent), 50);
        assert_eq!(count(NatKind::Symmetric), 50);
        assert_eq!(n.kind(NodeIdx(0)), NatKind::Public);
        let again = Nat::new(config, 1_000, 3);
        assert!((0..1_000).all(|i| n.kind(NodeIdx(i)) == again.kind(NodeIdx(i))));
    }

    #[test]
    fn unsolicited_messages_are_dropped_and_replies_to_outbound_ones_pass() {
        let mut n = nat(10, 0.5, NatMode::Naive);
        let (a, p) = pair(&n);
        let t = Time::from_secs(1);
        assert_eq!(n.route(t, p, a), Route::Blocked, "unsolicited");
        assert_eq!(n.stats().blocked, 1);
        assert_eq!(n.route(t, a, p), Route::Direct, "outbound opens the way");
        assert_eq!(n.link(a, p, t), Some(Path::Outbound));
        assert_eq!(n.route(t, p, a), Route::Direct, "the reply passes");
        // Only that peer: another public node is still blocked.
        let other = (0..10)
            .map(NodeIdx)
            .find(|i| *i != p && !n.is_nated(*i))
            .expect("another public node");
        assert_eq!(n.route(t, other, a), Route::Blocked);
        // Two public nodes never meet a NAT.
        assert_eq!(n.route(t, p, other), Route::Direct);
    }

    #[test]
    fn a_mapping_expires_after_its_idle_timeout_and_traffic_refreshes_it() {
        let mut n = nat(10, 0.5, NatMode::Naive);
        let (a, p) = pair(&n);
        let timeout = n.config().mapping_timeout;
        let t0 = Time::from_secs(1);
        n.route(t0, a, p);
        // A reply just before the timeout passes and refreshes the entry.
        let t1 = t0 + timeout - Duration::from_secs(1);
        assert_eq!(n.route(t1, p, a), Route::Direct);
        assert_eq!(
            n.route(t1 + timeout - Duration::from_secs(1), p, a),
            Route::Direct
        );
        // Idle for the whole timeout: gone.
        let t2 = t1 + timeout * 2;
        assert_eq!(n.link(a, p, t2), None);
        assert_eq!(n.route(t2, p, a), Route::Blocked);
    }

    #[test]
    fn the_table_is_bounded_and_evicts_the_connection_idle_longest() {
        let config = NatConfig {
            endpoint_independent: 0.1,
            max_mappings: 4,
            ..NatConfig::default()
        };
        let mut n = Nat::new(config, 100, 1);
        let a = n.nated().next().expect("a NATed node");
        let publics: Vec<NodeIdx> = (0..100).map(NodeIdx).filter(|i| !n.is_nated(*i)).collect();
        for (s, p) in publics.iter().take(5).enumerate() {
            n.route(Time::from_secs(s as u64), a, *p);
        }
        let t = Time::from_secs(10);
        assert_eq!(n.hosts[a.index()].links.len(), 4);
        assert_eq!(n.link(a, publics[0], t), None, "the oldest went");
        assert!(publics[1..5].iter().all(|p| n.link(a, *p, t).is_some()));
    }

    #[test]
    fn with_relays_a_public_peer_gets_through_and_the_node_dials_back() {
        let mut n = nat(20, 0.5, NatMode::Relays);
        let (a, p) = pair(&n);
        let up: Vec<NodeIdx> = (0..20).map(NodeIdx).collect();
        let relay = n.reserve(a, &up).expect("a relay");
        assert!(!n.is_nated(relay));
        let t = Time::from_secs(1);
        // The relay itself reaches the node over the reservation.
        assert_eq!(n.route(t, relay, a), Route::Direct);
        let caller = up
            .iter()
            .copied()
            .find(|i| *i != relay && !n.is_nated(*i))
            .unwrap_or(p);
        assert_eq!(n.route(t, caller, a), Route::Via(relay), "first contact");
        assert_eq!(n.link(a, caller, t), Some(Path::Reversed));
        assert_eq!(n.route(t, caller, a), Route::Direct, "then direct");
        assert_eq!(n.stats().reversals, 1);
        assert_eq!(n.circuits(relay, t), 0, "the upgraded circuit closed");
        // Its relay leaves: the reservation is gone, and so is the way in
        // for a new peer.
        assert_eq!(n.leave(relay), vec![a]);
        assert_eq!(n.relay_of(a), None);
        let stranger = up
            .iter()
            .copied()
            .find(|i| *i != relay && *i != caller && !n.is_nated(*i))
            .expect("a third public node");
        assert_eq!(n.route(t, stranger, a), Route::Blocked);
    }

    #[test]
    fn punches_follow_the_table_deterministically_and_failures_stay_relayed() {
        let run = |table: PunchTable| {
            let config = NatConfig {
                endpoint_independent: 0.9,
                mode: NatMode::Relays,
                punch: table,
                ..NatConfig::default()
            };
            let mut n = Nat::new(config, 200, 5);
            let up: Vec<NodeIdx> = (0..200).map(NodeIdx).collect();
            let nated: Vec<NodeIdx> = n.nated().collect();
            for a in &nated {
                n.reserve(*a, &up);
            }
            let t = Time::from_secs(1);
            let mut paths = Vec::new();
            for pair in nated.chunks(2) {
                if let [a, b] = pair {
                    n.route(t, *a, *b);
                    paths.push(n.link(*b, *a, t));
                }
            }
            (paths, *n.stats())
        };
        let always = PunchTable {
            eim_eim: 1.0,
            ..PunchTable::default()
        };
        let never = PunchTable {
            eim_eim: 0.0,
            ..PunchTable::default()
        };
        let (paths, stats) = run(always);
        assert!(paths.iter().all(|p| *p == Some(Path::Punched)), "{paths:?}");
        assert_eq!((stats.punches, stats.punched), (90, 90));
        let (paths, stats) = run(never);
        assert!(
            paths.iter().all(|p| matches!(p, Some(Path::Relayed(_)))),
            "{paths:?}"
        );
        assert_eq!(stats.punched, 0);
        // The default table: near its value, and the same for the same seed.
        let (first, stats) = run(PunchTable::default());
        let rate = stats.punched as f64 / stats.punches as f64;
        assert!((0.85..=1.0).contains(&rate), "{rate}");
        assert_eq!(first, run(PunchTable::default()).0);
    }

    #[test]
    fn a_relay_carries_at_most_its_circuits() {
        let config = NatConfig {
            endpoint_independent: 0.5,
            mode: NatMode::Relays,
            relay_circuits: 2,
            punch: PunchTable {
                eim_eim: 0.0,
                ..PunchTable::default()
            },
            ..NatConfig::default()
        };
        let mut n = Nat::new(config, 40, 9);
        let up: Vec<NodeIdx> = (0..40).map(NodeIdx).collect();
        let nated: Vec<NodeIdx> = n.nated().collect();
        let target = nated[0];
        let relay = n.reserve(target, &up).expect("a relay");
        let t = Time::from_secs(1);
        let routes: Vec<Route> = nated[1..4].iter().map(|c| n.route(t, *c, target)).collect();
        assert_eq!(
            routes,
            vec![Route::Via(relay), Route::Via(relay), Route::Blocked]
        );
        assert_eq!(n.stats().circuits_refused, 1);
        // A circuit that idles out frees its slot.
        let later = t + n.config().mapping_timeout + Duration::from_secs(1);
        assert_eq!(n.route(later, nated[3], target), Route::Via(relay));
    }

    #[test]
    fn the_punch_table_is_symmetric_and_public_pairs_need_none() {
        use NatKind::*;
        let t = PunchTable::default();
        let kinds = [Public, EndpointIndependent, AddressDependent, Symmetric];
        for a in kinds {
            assert_eq!(t.success(Public, a), 1.0);
            for b in kinds {
                assert_eq!(t.success(a, b), t.success(b, a));
            }
        }
        assert_eq!(t.success(Symmetric, Symmetric), 0.0);
        // The default mix of the nat experiment: about libp2p's 70 %.
        let mix = [
            (EndpointIndependent, 0.8),
            (AddressDependent, 0.1),
            (Symmetric, 0.1),
        ];
        let mean: f64 = mix
            .iter()
            .flat_map(|(a, x)| mix.iter().map(move |(b, y)| x * y * t.success(*a, *b)))
            .sum();
        assert!((0.65..0.75).contains(&mean), "{mean}");
    }

    #[test]
    fn a_bad_configuration_is_named() {
        let c = NatConfig {
            endpoint_independent: 0.7,
            symmetric: 0.5,
            ..NatConfig::default()
        };
        assert_eq!(c.check(), Err("nat (the three shares together)"));
        let c = NatConfig {
            punch: PunchTable {
                eim_eim: 1.5,
                ..PunchTable::default()
            },
            ..NatConfig::default()
        };
        assert_eq!(c.check(), Err("nat.punch.eim_eim"));
        assert_eq!(NatConfig::default().check(), Ok(()));
    }
}

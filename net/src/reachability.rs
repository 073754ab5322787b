//! Knowing whether this node can be dialled: dial-backs, AutoNAT's idea.
//!
//! While a node does not know, every handshake it makes asks "dial me back"
//! (a flag). A peer that reads the flag on an inbound connection dials the IP
//! that connection came from, at the port the node states, proves its own id
//! there and hangs up. A dial-back can only reach the asker's own IP, so no
//! one can aim it at a third party, and each peer makes a bounded number at
//! once and one per id.
//!
//! The node is reachable as soon as a peer it asked dials it back: a
//! connection on its listener from an id it asked is the proof, and nothing
//! a peer says can fake it. It is unreachable when `reachability_probes`
//! peers were asked at least `reachability_timeout` ago and none did; it then
//! runs in client mode (see `Node::set_client_mode`).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use distroweb_protocol::Id;
use tokio::net::TcpStream;

use crate::config::NetConfig;
use crate::connection::{Input, Shared};
use crate::handshake::{self, Role};
use crate::stats::TransportStats;

/// What this node knows of its own reachability.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reachability {
    /// Not found out yet (or not probed: see `NetConfig::probe_reachability`).
    Unknown,
    /// A peer dialled this node back at its advertised address.
    Public,
    /// No peer asked could dial it back: it runs in client mode.
    Private,
}

impl std::fmt::Display for Reachability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Reachability::Unknown => "unknown",
            Reachability::Public => "public",
            Reachability::Private => "private",
        })
    }
}

/// Peers remembered as dialled back, so each is dialled back once.
const MAX_DIALED_BACK: usize = 1024;

/// Reports of this node's address kept, the latest from each peer.
const MAX_OBSERVED: usize = 32;

/// Both sides of the dial-back protocol for one node.
#[derive(Debug)]
pub(crate) struct Probes {
    inner: Mutex<Inner>,
    /// Peers to ask before concluding the node is unreachable.
    wanted: usize,
    /// How long an asked peer has to dial back.
    timeout: Duration,
    /// Dial-backs this node makes for others at once, at most.
    max_dialbacks: usize,
}

#[derive(Debug)]
struct Inner {
    state: Reachability,
    /// Whether this node asks for dial-backs while its state is unknown.
    probing: bool,
    /// Peers asked (their handshake carried our flag), and when; at most
    /// `4 × wanted`, the oldest kept.
    asked: BTreeMap<Id, Instant>,
    /// Peers this node has dialled back, in the order it did.
    dialed_back: BTreeSet<Id>,
    dialed_back_order: std::collections::VecDeque<Id>,
    /// Dial-backs running now.
    running: usize,
    /// The IP each of the last peers this node dialled saw it come from,
    /// oldest first, one report per peer.
    observed: std::collections::VecDeque<(Id, IpAddr)>,
}

impl Probes {
    /// The probes `config` asks for.
    pub fn new(config: &NetConfig) -> Self {
        Probes {
            inner: Mutex::new(Inner {
                state: Reachability::Unknown,
                probing: config.probe_reachability && !config.client_mode,
                asked: BTreeMap::new(),
                dialed_back: BTreeSet::new(),
                dialed_back_order: std::collections::VecDeque::new(),
                running: 0,
                observed: std::collections::VecDeque::new(),
            }),
            wanted: config.reachability_probes.max(1),
            timeout: config.reachability_timeout,
            max_dialbacks: config.max_dialbacks,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere cannot leave this state inconsistent: take it.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What the node knows of its reachability.
    pub fn state(&self) -> Reachability {
        self.lock().state
    }

    /// Whether handshakes should ask for a dial-back now.
    pub fn probing(&self) -> bool {
        let inner = self.lock();
        inner.probing && inner.state == Reachability::Unknown
    }

    /// Notes that `peer` was asked (our handshake to it carried the flag).
    pub fn asked(&self, peer: Id, now: Instant) {
        let mut inner = self.lock();
        if inner.asked.len() < 4 * self.wanted {
            inner.asked.entry(peer).or_insert(now);
        }
    }

    /// An authenticated connection from `peer` reached our listener: if we
    /// asked it, the node is reachable. Returns the new state on a change.
    pub fn inbound_from(&self, peer: &Id) -> Option<Reachability> {
        let mut inner = self.lock();
        (inner.probing && inner.state != Reachability::Public && inner.asked.contains_key(peer))
            .then(|| {
                inner.state = Reachability::Public;
                Reachability::Public
            })
    }

    /// Concludes the node is unreachable once enough peers were asked long
    /// enough ago and none dialled back. Returns the new state on a change.
    pub fn check(&self, now: Instant) -> Option<Reachability> {
        let mut inner = self.lock();
        if !inner.probing || inner.state != Reachability::Unknown {
            return None;
        }
        let expired = (inner.asked.values())
            .filter(|&&at| now.saturating_duration_since(at) >= self.timeout)
            .count();
        (expired >= self.wanted).then(|| {
            inner.state = Reachability::Private;
            Reachability::Private
        })
    }

    /// Notes that `peer`, which this node dialled, saw it come from `ip`.
    pub fn observed(&self, peer: Id, ip: IpAddr) {
        let mut inner = self.lock();
        inner.observed.retain(|(id, _)| *id != peer);
        if inner.observed.len() == MAX_OBSERVED {
            inner.observed.pop_front();
        }
        inner.observed.push_back((peer, ip.to_canonical()));
    }

    /// This node's IP as the world sees it: the one most of the peers it
    /// dialled report, if at least two agree (one could lie); the lowest of a
    /// tie, so the answer does not depend on the order of reports.
    pub fn public_ip(&self) -> Option<IpAddr> {
        let inner = self.lock();
        let mut counts: BTreeMap<IpAddr, usize> = BTreeMap::new();
        for (_, ip) in &inner.observed {
            *counts.entry(*ip).or_default() += 1;
        }
        let best = counts.values().copied().max()?;
        (best >= 2)
            .then(|| counts.iter().find(|(_, &n)| n == best).map(|(ip, _)| *ip))
            .flatten()
    }

    /// Room for one dial-back to `peer`: none while `max_dialbacks` run, nor
    /// for a peer dialled back already.
    fn permit(self: &Arc<Self>, peer: Id) -> Option<Permit> {
        let mut inner = self.lock();
        if inner.running >= self.max_dialbacks || inner.dialed_back.contains(&peer) {
            return None;
        }
        inner.running += 1;
        inner.dialed_back.insert(peer);
        inner.dialed_back_order.push_back(peer);
        if inner.dialed_back_order.len() > MAX_DIALED_BACK {
            if let Some(old) = inner.dialed_back_order.pop_front() {
                inner.dialed_back.remove(&old);
            }
        }
        Some(Permit(self.clone()))
    }
}

/// One running dial-back; its drop frees the room.
struct Permit(Arc<Probes>);

impl Drop for Permit {
    fn drop(&mut self) {
        let mut inner = self.0.lock();
        inner.running = inner.running.saturating_sub(1);
    }
}

/// Dials `peer` back at `ip` (the IP its connection came from) and `port`
/// (the port it states), proves our id there and hangs up; in the
/// background, if there is room.
pub(crate) fn dial_back(shared: &Arc<Shared>, ip: IpAddr, port: u16, peer: Id) {
    let addr = SocketAddr::new(ip, port);
    if port == 0 || addr == shared.advertised {
        return;
    }
    let Some(permit) = shared.probes.permit(peer) else {
        return;
    };
    let shared = shared.clone();
    tokio::spawn(async move {
        let _permit = permit;
        let c = &shared.config;
        let dialled = async {
            let mut stream = tokio::time::timeout(c.dial_timeout, TcpStream::connect(addr))
                .await
                .ok()?
                .ok()?;
            let role = Role::Dialer { expect: Some(peer) };
            handshake::run(&mut stream, &shared.local, role, c.handshake_timeout)
                .await
                .ok()
        };
        let ok = dialled.await.is_some();
        TransportStats::bump(if ok {
            &shared.stats.dialbacks
        } else {
            &shared.stats.dialbacks_failed
        });
        tracing::debug!(%addr, peer = %peer.short(), ok, "dialled back");
    });
}

/// Tells the handshake and the node task what the node now knows.
pub(crate) async fn changed(shared: &Shared, state: Reachability) {
    let private = state == Reachability::Private;
    shared.local.set_probe(false);
    shared.local.set_client(private);
    tracing::info!(
        %state,
        advertised = %shared.advertised,
        "reachability found out{}",
        if private {
            ": no peer could dial this node back, so it runs in client mode"
        } else {
            ""
        }
    );
    let _ = shared.inputs.send(Input::Reachability(state)).await;
}

/// Checks, once a second until it is found out, whether the node is unreachable.
pub(crate) async fn watch(shared: Arc<Shared>) {
    let mut shutdown = shared.shutdown.clone();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    while shared.probes.probing() {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        if let Some(state) = shared.probes.check(Instant::now()) {
            changed(&shared, state).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probes() -> Arc<Probes> {
        let config = NetConfig {
            probe_reachability: true,
            reachability_probes: 2,
            reachability_timeout: Duration::from_secs(10),
            max_dialbacks: 2,
            ..NetConfig::loopback()
        };
        Arc::new(Probes::new(&config))
    }

    fn id(n: u8) -> Id {
        Id::hash_of(&[n])
    }

    #[test]
    fn only_a_peer_asked_proves_reachability() {
        let p = probes();
        let t = Instant::now();
        assert_eq!(p.inbound_from(&id(1)), None, "a stranger proves nothing");
        p.asked(id(1), t);
        assert_eq!(p.inbound_from(&id(1)), Some(Reachability::Public));
        assert!(!p.probing());
        assert_eq!(p.check(t + Duration::from_secs(60)), None, "decided");
    }

    #[test]
    fn enough_peers_asked_long_enough_ago_make_it_private() {
        let p = probes();
        let t = Instant::now();
        p.asked(id(1), t);
        assert_eq!(
            p.check(t + Duration::from_secs(60)),
            None,
            "one peer is not enough"
        );
        p.asked(id(2), t + Duration::from_secs(5));
        assert_eq!(
            p.check(t + Duration::from_secs(14)),
            None,
            "the second has time left"
        );
        assert_eq!(
            p.check(t + Duration::from_secs(15)),
            Some(Reachability::Private)
        );
        assert_eq!(p.state(), Reachability::Private);
        // The asked list is bounded: 4 × probes.
        for n in 0..100 {
            p.asked(id(n), t);
        }
        assert!(p.lock().asked.len() <= 8);
    }

    #[test]
    fn dial_backs_are_bounded_and_once_per_peer() {
        let p = probes();
        let a = p.permit(id(1)).expect("room");
        assert!(p.permit(id(1)).is_none(), "once per peer");
        let _b = p.permit(id(2)).expect("room");
        assert!(p.permit(id(3)).is_none(), "two at once at most");
        drop(a);
        assert!(p.permit(id(3)).is_some(), "room again");
        for n in 0..2000u32 {
            drop(p.permit(Id::hash_of(&n.to_le_bytes())));
        }
        assert!(p.lock().dialed_back.len() <= MAX_DIALED_BACK);
    }

    #[test]
    fn the_public_ip_is_what_two_peers_or_more_agree_on() {
        let p = probes();
        let (a, b): (IpAddr, IpAddr) = (
            "198.51.100.1".parse().unwrap(),
            "203.0.113.9".parse().unwrap(),
        );
        p.observed(id(1), b);
        assert_eq!(p.public_ip(), None, "one report is not enough");
        p.observed(id(1), b);
        assert_eq!(p.public_ip(), None, "one peer twice is one report");
        p.observed(id(2), b);
        assert_eq!(p.public_ip(), Some(b));
        p.observed(id(3), a);
        p.observed(id(4), a);
        assert_eq!(p.public_ip(), Some(a), "a tie goes to the lowest");
        for n in 10..100 {
            p.observed(id(n), a);
        }
        assert!(p.lock().observed.len() <= MAX_OBSERVED);
    }
}

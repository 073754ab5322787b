//! Connection slots: separate inbound and outbound budgets, per-IP caps on
//! inbound connections, and eviction of a handshaking inbound connection
//! when the inbound budget is full.
//!
//! Outbound slots are a budget an inbound flood cannot touch, so a node under
//! a flood can still dial out. When they are all taken, the node task closes
//! its least recently used outbound connection and the dial waits for the
//! slot that frees (`Slots::dial_when_free`). An IP may hold only a few inbound connections
//! that have not proven an id yet, and when the inbound budget is full a
//! newcomer takes the slot of the oldest such connection from the IP that
//! holds the most of them: idle connections from one address cannot keep a
//! new node from joining.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use crate::config::NetConfig;
use crate::connection::ConnId;

/// Why an inbound connection got no slot.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Refused {
    #[error("{0} connections from this IP are in their handshake already")]
    Handshaking(usize),
    #[error("{0} inbound connections from this IP already")]
    PerIp(usize),
    #[error("{0} inbound connections open and none to evict")]
    Full(usize),
}

/// One inbound connection's standing.
#[derive(Debug)]
struct Entry {
    ip: IpAddr,
    authenticated: bool,
    evict: Arc<Notify>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Inbound connections by id, which grows with age: the first of an IP is its oldest.
    inbound: BTreeMap<ConnId, Entry>,
}

/// The node's connection slots, shared by the listener, the dialler and every connection.
#[derive(Debug)]
pub(crate) struct Slots {
    inner: Mutex<Inner>,
    /// One permit per outbound slot; a semaphore so that a dial can wait for
    /// the slot of a connection being closed to make room for it.
    outbound: Arc<Semaphore>,
    max_inbound: usize,
    max_outbound: usize,
    max_handshaking_per_ip: usize,
    max_inbound_per_ip: usize,
}

/// What an inbound connection holds while open; dropping it frees the slot.
#[derive(Debug)]
pub(crate) struct InboundSlot {
    slots: Arc<Slots>,
    conn: ConnId,
    /// Notified when a newcomer evicts this connection.
    pub evicted: Arc<Notify>,
}

/// What an outbound connection (or dial) holds while open.
#[derive(Debug)]
pub(crate) struct OutboundSlot {
    _permit: OwnedSemaphorePermit,
}

/// Either kind of slot, held for a connection's life.
#[derive(Debug)]
// The slots are held only for their `Drop`, which frees them.
#[allow(dead_code)]
pub(crate) enum Slot {
    Inbound(InboundSlot),
    Outbound(OutboundSlot),
}

/// A newcomer was admitted by evicting another connection.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Admitted {
    Free,
    Evicted(IpAddr),
}

impl Slots {
    pub fn new(config: &NetConfig) -> Self {
        Slots {
            inner: Mutex::default(),
            outbound: Arc::new(Semaphore::new(
                config.max_outbound_connections.min(Semaphore::MAX_PERMITS),
            )),
            max_inbound: config.max_inbound_connections,
            max_outbound: config.max_outbound_connections.min(Semaphore::MAX_PERMITS),
            max_handshaking_per_ip: config.max_handshaking_per_ip,
            max_inbound_per_ip: config.max_inbound_per_ip,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain counters behind: keep going.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Gives inbound connection `conn` from `ip` a slot, evicting if need be.
    pub fn admit(
        self: &Arc<Self>,
        conn: ConnId,
        ip: IpAddr,
    ) -> Result<(InboundSlot, Admitted), Refused> {
        let mut inner = self.lock();
        let (mut from_ip, mut handshaking) = (0, 0);
        for e in inner.inbound.values().filter(|e| e.ip == ip) {
            from_ip += 1;
            handshaking += usize::from(!e.authenticated);
        }
        if handshaking >= self.max_handshaking_per_ip {
            return Err(Refused::Handshaking(handshaking));
        }
        if from_ip >= self.max_inbound_per_ip {
            return Err(Refused::PerIp(from_ip));
        }
        let mut admitted = Admitted::Free;
        if inner.inbound.len() >= self.max_inbound {
            let victim = evictable(&inner.inbound).ok_or(Refused::Full(inner.inbound.len()))?;
            if let Some(e) = inner.inbound.remove(&victim) {
                e.evict.notify_one();
                admitted = Admitted::Evicted(e.ip);
            }
        }
        let evict = Arc::new(Notify::new());
        inner.inbound.insert(
            conn,
            Entry {
                ip,
                authenticated: false,
                evict: evict.clone(),
            },
        );
        debug_assert!(inner.inbound.len() <= self.max_inbound);
        Ok((
            InboundSlot {
                slots: self.clone(),
                conn,
                evicted: evict,
            },
            admitted,
        ))
    }

    /// Takes an outbound slot, if one is free.
    pub fn dial(&self) -> Option<OutboundSlot> {
        let permit = self.outbound.clone().try_acquire_owned().ok()?;
        Some(OutboundSlot { _permit: permit })
    }

    /// Waits for an outbound slot (first come, first served); the caller
    /// bounds the wait.
    pub async fn dial_when_free(&self) -> Option<OutboundSlot> {
        let permit = self.outbound.clone().acquire_owned().await.ok()?;
        Some(OutboundSlot { _permit: permit })
    }

    /// Whether every outbound slot is taken.
    pub fn outbound_full(&self) -> bool {
        self.outbound.available_permits() == 0
    }

    /// Connections open now, inbound and outbound.
    pub fn open(&self) -> usize {
        let outbound = self
            .max_outbound
            .saturating_sub(self.outbound.available_permits());
        self.lock().inbound.len() + outbound
    }
}

/// The oldest handshaking connection of the IP with the most handshaking connections.
fn evictable(inbound: &BTreeMap<ConnId, Entry>) -> Option<ConnId> {
    let mut per_ip: BTreeMap<IpAddr, (usize, ConnId)> = BTreeMap::new();
    for (conn, e) in inbound.iter().filter(|(_, e)| !e.authenticated) {
        // Ids ascend, so the first seen of an IP is its oldest.
        per_ip.entry(e.ip).or_insert((0, *conn)).0 += 1;
    }
    per_ip
        .into_values()
        .max_by_key(|(count, oldest)| (*count, std::cmp::Reverse(*oldest)))
        .map(|(_, oldest)| oldest)
}

impl InboundSlot {
    /// The connection proved an id: it no longer counts as handshaking and
    /// cannot be evicted.
    pub fn authenticated(&self) {
        if let Some(e) = self.slots.lock().inbound.get_mut(&self.conn) {
            e.authenticated = true;
        }
    }
}

impl Drop for InboundSlot {
    fn drop(&mut self) {
        self.slots.lock().inbound.remove(&self.conn);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slots() -> Arc<Slots> {
        Arc::new(Slots::new(&NetConfig {
            max_inbound_connections: 4,
            max_outbound_connections: 1,
            max_handshaking_per_ip: 3,
            max_inbound_per_ip: 3,
            ..NetConfig::default()
        }))
    }

    #[test]
    fn caps_per_ip_and_eviction_of_the_biggest_handshaker() {
        let s = slots();
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let a1 = s.admit(1, a).unwrap().0;
        let _a2 = s.admit(2, a).unwrap();
        let _a3 = s.admit(3, a).unwrap();
        assert!(matches!(s.admit(4, a), Err(Refused::Handshaking(3))));
        let b1 = s.admit(5, b).unwrap().0;
        b1.authenticated();
        // Full: a newcomer evicts a's oldest, which hears of it.
        let (_c, how) = s.admit(6, "10.0.0.3".parse().unwrap()).unwrap();
        assert_eq!(how, Admitted::Evicted(a));
        assert_eq!(s.open(), 4);
        drop(a1);
        assert_eq!(s.open(), 4, "the evicted slot was handed over already");
        // Outbound has its own budget.
        let o = s.dial().unwrap();
        assert!(s.dial().is_none());
        assert!(s.outbound_full());
        drop(o);
        assert!(s.dial().is_some());
    }

    #[tokio::test]
    async fn a_dial_waiting_for_a_slot_gets_the_one_that_frees() {
        let s = slots();
        let held = s.dial().unwrap();
        let waiting = tokio::spawn({
            let s = s.clone();
            async move { s.dial_when_free().await.is_some() }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "no slot is free yet");
        drop(held);
        assert!(waiting.await.unwrap());
        assert_eq!(s.open(), 0, "the waiter's slot went with it");
    }
}

//! Relaying for nodes nobody can dial: the service a reachable node offers,
//! and the reservation a node behind a NAT keeps.
//!
//! A node in client mode dials a relay with a `Reserve` opening and a normal
//! handshake, and keeps that connection open: it is the reservation. Its
//! records then name it at the relay's address (its handshakes say
//! "relayed", see `handshake`). A reader dials that address with
//! `Connect(its id)`; the relay, which has no such id itself, tells the
//! reserved node over the reservation "a circuit waits, with this secret,
//! from this address"; the node opens a fresh connection to the relay with
//! `Accept(secret)`, and the relay hands it the reader's opening and copies
//! bytes both ways. The handshake that follows runs end to end, between the
//! reader and the node: the relay sees ciphertext and can neither read nor
//! forge a frame, and a reader gets the node it asked for or nothing.
//!
//! Everything a relay gives is capped (`NetConfig::relay`): reservations,
//! circuits at once and per reservation, bytes and time per circuit, and how
//! long a circuit waits for its node. A circuit's secret is 32 random bytes
//! sent only over the reservation's sealed connection, so nobody else can
//! take a circuit over.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use distroweb_protocol::Id;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use crate::config::RelayConfig;
use crate::connection::{self, Input, Shared, Via};
use crate::error::Chain;
use crate::frame::{Opener, Sealer};
use crate::handshake::{self, Authenticated, Opened, Opening};
use crate::slots::Slot;
use crate::stats::TransportStats;

/// Bytes of a control frame at most: they carry a secret and an address.
const MAX_CONTROL_BYTES: usize = 256;

/// Circuit notices queued for one reservation at most; more are refused.
const MAX_QUEUED_NOTICES: usize = 8;

/// What the relay and a reserved node say on the reservation's connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum Control {
    /// The reservation holds for `ttl_s` seconds; `seen` is where the relay
    /// saw the node's connection come from (its public address).
    Reserved { seen: SocketAddr, ttl_s: u32 },
    /// No reservation: the relay is off, full, or itself unreachable.
    Refused,
    /// A reader at `from` waits on circuit `secret`.
    Incoming { secret: [u8; 32], from: SocketAddr },
    /// Keeps the reservation (and the NAT's mapping for it) alive.
    Ping,
}

/// A circuit waiting for its node: the secret the node must bring, and where
/// the reader's connection came from.
type Notice = ([u8; 32], SocketAddr);

/// A reservation's entry at the relay.
#[derive(Debug)]
struct Reservation {
    /// Which reservation connection this is (a newer one replaces it).
    serial: u64,
    notices: mpsc::Sender<Notice>,
    /// Circuits open for it now.
    circuits: usize,
}

/// The relay service's state: reservations and circuits.
#[derive(Debug, Default)]
pub(crate) struct Relay {
    inner: Mutex<Inner>,
    serial: AtomicU64,
}

#[derive(Debug, Default)]
struct Inner {
    reservations: BTreeMap<Id, Reservation>,
    /// Circuits waiting for their node's connection, by secret.
    waiting: BTreeMap<[u8; 32], oneshot::Sender<TcpStream>>,
    circuits: usize,
}

/// A circuit's place at the relay; its drop frees it.
struct CircuitGuard {
    relay: Arc<Relay>,
    target: Id,
}

impl Drop for CircuitGuard {
    fn drop(&mut self) {
        let mut inner = self.relay.lock();
        inner.circuits = inner.circuits.saturating_sub(1);
        if let Some(r) = inner.reservations.get_mut(&self.target) {
            r.circuits = r.circuits.saturating_sub(1);
        }
    }
}

impl Relay {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere cannot leave this state inconsistent: take it.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reservations held now.
    pub fn reservations(&self) -> usize {
        self.lock().reservations.len()
    }

    /// Circuits open now.
    pub fn circuits(&self) -> usize {
        self.lock().circuits
    }

    /// Registers a reservation for `node`, replacing its older one; `None`
    /// when `max_reservations` others hold one.
    fn reserve(&self, node: Id, limits: &RelayConfig) -> Option<(u64, mpsc::Receiver<Notice>)> {
        let mut inner = self.lock();
        if !inner.reservations.contains_key(&node)
            && inner.reservations.len() >= limits.max_reservations
        {
            return None;
        }
        let serial = self.serial.fetch_add(1, Ordering::Relaxed);
        let (notices, rx) = mpsc::channel(MAX_QUEUED_NOTICES);
        let circuits = inner.reservations.get(&node).map_or(0, |r| r.circuits);
        inner.reservations.insert(
            node,
            Reservation {
                serial,
                notices,
                circuits,
            },
        );
        Some((serial, rx))
    }

    /// Ends reservation `serial` of `node`, unless a newer one replaced it.
    fn release(&self, node: Id, serial: u64) {
        let mut inner = self.lock();
        if inner
            .reservations
            .get(&node)
            .is_some_and(|r| r.serial == serial)
        {
            inner.reservations.remove(&node);
        }
    }

    /// Opens a circuit to `target` for a reader at `from`: a place within
    /// the caps, the notice sent, and where its node's connection will come.
    fn open(
        self: &Arc<Self>,
        target: Id,
        from: SocketAddr,
        secret: [u8; 32],
        limits: &RelayConfig,
    ) -> Result<(CircuitGuard, oneshot::Receiver<TcpStream>), &'static str> {
        let mut inner = self.lock();
        if inner.circuits >= limits.max_circuits {
            return Err("every circuit is taken");
        }
        let Some(r) = inner.reservations.get_mut(&target) else {
            return Err("no reservation");
        };
        if r.circuits >= limits.max_circuits_per_reservation {
            return Err("the node's circuits are all taken");
        }
        if r.notices.try_send((secret, from)).is_err() {
            return Err("the node's notices are backed up");
        }
        r.circuits += 1;
        inner.circuits += 1;
        let (tx, rx) = oneshot::channel();
        inner.waiting.insert(secret, tx);
        drop(inner);
        Ok((
            CircuitGuard {
                relay: self.clone(),
                target,
            },
            rx,
        ))
    }

    fn forget(&self, secret: &[u8; 32]) {
        self.lock().waiting.remove(secret);
    }

    fn take(&self, secret: &[u8; 32]) -> Option<oneshot::Sender<TcpStream>> {
        self.lock().waiting.remove(secret)
    }
}

/// Whether this node relays now: configured to, and reachable itself.
fn serving(shared: &Shared) -> bool {
    shared.config.relay.serve && !shared.local.client() && shared.local.relayed().is_none()
}

/// A reader dialled this node for `target`, another node: relays it to that
/// node if it holds a reservation here, else says it is not here.
pub(crate) async fn circuit(
    shared: Arc<Shared>,
    mut stream: TcpStream,
    from: SocketAddr,
    opened: Opened,
    target: Id,
) {
    let limits = &shared.config.relay;
    if !serving(&shared) {
        handshake::refuse(&mut stream).await;
        return;
    }
    let mut secret = [0u8; 32];
    if getrandom::fill(&mut secret).is_err() {
        handshake::refuse(&mut stream).await;
        return;
    }
    let (guard, node) = match shared.relay.open(target, from, secret, limits) {
        Ok(open) => open,
        Err(why) => {
            TransportStats::bump(&shared.stats.circuits_refused);
            tracing::debug!(%from, target = %target.short(), "circuit refused: {why}");
            handshake::refuse(&mut stream).await;
            return;
        }
    };
    let node = tokio::time::timeout(shared.config.handshake_timeout, node).await;
    let Ok(Ok(mut node)) = node else {
        shared.relay.forget(&secret);
        TransportStats::bump(&shared.stats.circuits_refused);
        tracing::debug!(%from, target = %target.short(), "the reserved node did not take its circuit");
        handshake::refuse(&mut stream).await;
        return;
    };
    // The reader's opening goes on to the node, whose preamble answers it.
    if node.write_all(&opened.bytes).await.is_err() {
        return;
    }
    TransportStats::bump(&shared.stats.circuits_relayed);
    let copied = &shared.stats.relayed_bytes;
    splice(
        stream,
        node,
        limits.circuit_bytes,
        limits.circuit_time,
        copied,
    )
    .await;
    drop(guard);
}

/// The reserved node's half of a circuit arrived: hands it to the circuit.
pub(crate) fn accepted(shared: &Shared, stream: TcpStream, secret: &[u8; 32]) {
    if let Some(circuit) = shared.relay.take(secret) {
        let _ = circuit.send(stream);
    }
}

/// Copies bytes both ways until both ends close, `max_bytes` have passed in
/// all, or `max_time` is up, adding what it copies to `copied` as it goes.
async fn splice(
    a: TcpStream,
    b: TcpStream,
    max_bytes: u64,
    max_time: Duration,
    copied: &AtomicU64,
) {
    let budget = AtomicU64::new(max_bytes);
    let (mut ar, mut aw) = a.into_split();
    let (mut br, mut bw) = b.into_split();
    let both = async {
        tokio::join!(
            copy_capped(&mut ar, &mut bw, &budget, copied),
            copy_capped(&mut br, &mut aw, &budget, copied)
        )
    };
    let _ = tokio::time::timeout(max_time, both).await;
}

async fn copy_capped<R, W>(r: &mut R, w: &mut W, budget: &AtomicU64, copied: &AtomicU64)
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; 32 << 10];
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let want = n as u64;
        let granted = budget
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                left.checked_sub(want)
            })
            .is_ok();
        if !granted || w.write_all(&buf[..n]).await.is_err() {
            break;
        }
        copied.fetch_add(want, Ordering::Relaxed);
    }
    let _ = w.shutdown().await;
}

/// Serves a reservation a node asked for with a `Reserve` opening: the
/// handshake, then notices of circuits until either end closes.
pub(crate) async fn serve_reservation(
    shared: Arc<Shared>,
    mut stream: TcpStream,
    seen: SocketAddr,
    opened: Opened,
    slot: Slot,
) {
    let c = &shared.config;
    let auth = handshake::answer(&mut stream, &shared.local, &opened, seen);
    let auth = match tokio::time::timeout(c.handshake_timeout, auth).await {
        Ok(Ok(auth)) => auth,
        Ok(Err(e)) => return shared.handshake_failed(seen, &e),
        Err(_) => return shared.handshake_failed(seen, &handshake::HandshakeError::Timeout),
    };
    if let Slot::Inbound(s) = &slot {
        s.authenticated();
    }
    let node = auth.id;
    let Ok((mut sealer, mut opener)) = auth.session.split() else {
        return;
    };
    let reserved = serving(&shared)
        .then(|| shared.relay.reserve(node, &c.relay))
        .flatten();
    let Some((serial, mut notices)) = reserved else {
        TransportStats::bump(&shared.stats.reservations_refused);
        let _ = write_control(&mut stream, &mut sealer, &Control::Refused).await;
        return;
    };
    TransportStats::bump(&shared.stats.reservations_served);
    tracing::debug!(node = %node.short(), %seen, "relay reservation made");
    let ttl_s = u32::try_from(c.relay.reservation_ttl.as_secs()).unwrap_or(u32::MAX);
    let (mut r, mut w) = stream.into_split();
    let mut ended = write_control(&mut w, &mut sealer, &Control::Reserved { seen, ttl_s })
        .await
        .is_err();
    let expires = tokio::time::sleep(c.relay.reservation_ttl);
    tokio::pin!(expires);
    let mut keepalive = tokio::time::interval(c.relay.keepalive);
    keepalive.reset();
    let mut shutdown = shared.shutdown.clone();
    // The node only pings; reading it also finds out when it leaves.
    let reader = async {
        loop {
            let frame = opener
                .read(
                    &mut r,
                    MAX_CONTROL_BYTES,
                    c.relay.keepalive * 3,
                    c.read_timeout,
                )
                .await;
            if frame.is_err() {
                return;
            }
        }
    };
    tokio::pin!(reader);
    while !ended {
        let control = tokio::select! {
            notice = notices.recv() => match notice {
                Some((secret, from)) => Control::Incoming { secret, from },
                None => break,
            },
            _ = keepalive.tick() => Control::Ping,
            () = &mut reader => break,
            () = &mut expires => break,
            _ = shutdown.wait_for(|stop| *stop) => break,
        };
        ended = write_control(&mut w, &mut sealer, &control).await.is_err();
    }
    shared.relay.release(node, serial);
    drop(slot);
    tracing::debug!(node = %node.short(), "relay reservation ended");
}

async fn write_control<W: tokio::io::AsyncWrite + Unpin>(
    w: &mut W,
    sealer: &mut Sealer,
    control: &Control,
) -> std::io::Result<()> {
    let payload = postcard::to_allocvec(control).map_err(std::io::Error::other)?;
    let mut out = Vec::with_capacity(payload.len() + 64);
    sealer
        .seal(&payload, &mut out)
        .map_err(std::io::Error::other)?;
    w.write_all(&out).await
}

async fn read_control<R: tokio::io::AsyncRead + Unpin>(
    r: &mut R,
    opener: &mut Opener,
    idle: Duration,
    read: Duration,
) -> Result<Control, String> {
    let bytes = opener
        .read(r, MAX_CONTROL_BYTES, idle, read)
        .await
        .map_err(|e| Chain(&e).to_string())?;
    postcard::from_bytes(&bytes).map_err(|e| format!("undecodable control frame: {e}"))
}

/// Keeps this node reachable through a relay while it runs in client mode
/// (and `relay.use_relays` is on): asks the node task for reachable peers,
/// reserves at the first that serves, holds the reservation and takes the
/// circuits it announces; on loss, tries again.
pub(crate) async fn keep_reservation(
    shared: Arc<Shared>,
    candidates: impl Fn() -> oneshot::Receiver<Vec<(SocketAddr, Id)>> + Send,
) {
    let mut shutdown = shared.shutdown.clone();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    // Relays that refused or failed lately, tried again after a while.
    let mut refused: BTreeMap<Id, tokio::time::Instant> = BTreeMap::new();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        if !shared.local.client() {
            continue;
        }
        let Ok(peers) = candidates().await else {
            return;
        };
        let now = tokio::time::Instant::now();
        refused.retain(|_, at| now.saturating_duration_since(*at) < Duration::from_secs(60));
        for (addr, id) in peers {
            if refused.contains_key(&id) {
                continue;
            }
            match hold(&shared, addr, id).await {
                Ok(()) => {}
                Err(e) => tracing::debug!(relay = %addr, "no reservation: {e}"),
            }
            if refused.len() < 1024 {
                refused.insert(id, tokio::time::Instant::now());
            }
            let stopping = *shutdown.borrow();
            if stopping {
                return;
            }
        }
    }
}

/// Holds one reservation at the relay `addr` (which must prove `id`) until
/// it ends; `Err` when none was made.
async fn hold(shared: &Arc<Shared>, addr: SocketAddr, id: Id) -> Result<(), String> {
    let c = &shared.config;
    let mut stream = crate::dial::connect_from_listen_port(shared, addr)
        .await
        .map_err(|e| Chain(&e).to_string())?;
    let auth = handshake::dial(&mut stream, &shared.local, Opening::Reserve(id), Some(id));
    let auth: Authenticated = tokio::time::timeout(c.handshake_timeout, auth)
        .await
        .map_err(|_| "handshake timed out".to_string())?
        .map_err(|e| Chain(&e).to_string())?;
    let (mut sealer, mut opener) = auth.session.split().map_err(|e| e.to_string())?;
    let from_listen_port = crate::dial::from_listen_port(shared, &stream);
    let (mut r, mut w) = stream.into_split();
    let idle = c.relay.keepalive * 3;
    let seen = match read_control(&mut r, &mut opener, c.handshake_timeout, c.read_timeout).await? {
        Control::Reserved { seen, .. } => seen,
        Control::Refused => return Err("the relay refused".into()),
        other => return Err(format!("the relay said {other:?} first")),
    };
    if from_listen_port {
        shared.local.set_public(seen);
    }
    TransportStats::bump(&shared.stats.reservations_made);
    tracing::info!(relay = %addr, %seen, "reachable through a relay");
    shared.local.set_relayed(Some(addr));
    let _ = shared.inputs.send(Input::Relayed(Some(addr))).await;
    let mut shutdown = shared.shutdown.clone();
    let mut keepalive = tokio::time::interval(c.relay.keepalive);
    keepalive.reset();
    let why = loop {
        let control = tokio::select! {
            control = read_control(&mut r, &mut opener, idle, c.read_timeout) => Some(control),
            _ = keepalive.tick() => None,
            _ = shutdown.wait_for(|stop| *stop) => break "shutting down".to_string(),
        };
        match control {
            None => {
                if write_control(&mut w, &mut sealer, &Control::Ping)
                    .await
                    .is_err()
                {
                    break "the relay's connection failed".to_string();
                }
            }
            Some(Ok(Control::Incoming { secret, from })) => {
                tokio::spawn(take_circuit(shared.clone(), addr, secret, from));
            }
            Some(Ok(Control::Ping)) => {}
            Some(Ok(other)) => break format!("the relay said {other:?}"),
            Some(Err(e)) => break e,
        }
    };
    tracing::info!(relay = %addr, "relay reservation lost: {why}");
    shared.local.set_relayed(None);
    let _ = shared.inputs.send(Input::Relayed(None)).await;
    Ok(())
}

/// Takes circuit `secret` at the relay `relay`: a fresh connection to it,
/// then the reader's opening and the listener's side of the handshake.
async fn take_circuit(shared: Arc<Shared>, relay: SocketAddr, secret: [u8; 32], from: SocketAddr) {
    let c = &shared.config;
    let Some(slot) = shared.slots.dial() else {
        tracing::debug!(%from, "no slot for a relayed connection");
        return;
    };
    let taken = async {
        let mut stream = TcpStream::connect(relay).await?;
        let _ = stream.set_nodelay(true);
        stream.write_all(&Opening::Accept(secret).encode()).await?;
        let opened = handshake::read_opening(&mut stream).await?;
        if opened.opening != Opening::Connect(Some(shared.local.id())) {
            return Err(handshake::HandshakeError::Unwanted(opened.opening));
        }
        let auth = handshake::answer(&mut stream, &shared.local, &opened, from).await?;
        Ok::<_, handshake::HandshakeError>((stream, auth))
    };
    let (stream, auth) = match tokio::time::timeout(c.handshake_timeout, taken).await {
        Ok(Ok(taken)) => taken,
        Ok(Err(e)) => return shared.handshake_failed(from, &e),
        Err(_) => return shared.handshake_failed(from, &handshake::HandshakeError::Timeout),
    };
    TransportStats::bump(&shared.stats.connections_relayed);
    let peer = connection::known_at(
        &auth,
        SocketAddr::new(from.ip().to_canonical(), auth.listen.port()),
    );
    if c.relay.hole_punching {
        // Where the reader says its listening port is seen; else where its
        // connection to the relay came from.
        crate::punch::start(&shared, auth.public.unwrap_or(from), auth.id);
    }
    let conn = shared.next_conn();
    connection::run(
        shared.clone(),
        conn,
        stream,
        peer,
        auth,
        Slot::Outbound(slot),
        Via::Relayed,
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> RelayConfig {
        RelayConfig {
            max_reservations: 2,
            max_circuits: 3,
            max_circuits_per_reservation: 2,
            ..RelayConfig::default()
        }
    }

    fn id(n: u8) -> Id {
        Id::hash_of(&[n])
    }

    const FROM: SocketAddr = SocketAddr::new(
        std::net::IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1)),
        4100,
    );

    #[test]
    fn only_the_secret_sent_to_the_reserved_node_takes_its_circuit() {
        let relay = Arc::new(Relay::default());
        let l = limits();
        assert!(
            relay.open(id(1), FROM, [1; 32], &l).is_err(),
            "no reservation"
        );
        let (_, mut notices) = relay.reserve(id(1), &l).expect("room");
        let (_guard, _node) = relay.open(id(1), FROM, [7; 32], &l).expect("a circuit");
        assert_eq!(notices.try_recv().ok(), Some(([7; 32], FROM)));
        assert!(
            relay.take(&[8; 32]).is_none(),
            "a guessed secret takes nothing"
        );
        assert!(relay.take(&[7; 32]).is_some());
        assert!(relay.take(&[7; 32]).is_none(), "a secret works once");
    }

    #[test]
    fn reservations_and_circuits_are_capped_and_freed() {
        let relay = Arc::new(Relay::default());
        let l = limits();
        let (old, _a) = relay.reserve(id(1), &l).expect("room");
        let _b = relay.reserve(id(2), &l).expect("room");
        assert!(relay.reserve(id(3), &l).is_none(), "full");
        let (new, _a2) = relay.reserve(id(1), &l).expect("a node may renew");
        relay.release(id(1), old);
        assert_eq!(relay.reservations(), 2, "an old serial ends nothing");
        let one = relay.open(id(1), FROM, [1; 32], &l).expect("room");
        let _two = relay.open(id(1), FROM, [2; 32], &l).expect("room");
        assert!(
            relay.open(id(1), FROM, [3; 32], &l).is_err(),
            "per-reservation cap"
        );
        let _three = relay.open(id(2), FROM, [4; 32], &l).expect("room");
        assert!(relay.open(id(2), FROM, [5; 32], &l).is_err(), "relay cap");
        drop(one);
        assert_eq!(relay.circuits(), 2);
        assert!(relay.open(id(1), FROM, [6; 32], &l).is_ok(), "room again");
        relay.release(id(1), new);
        assert_eq!(relay.reservations(), 1);
    }
}

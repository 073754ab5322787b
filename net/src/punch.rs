//! Hole punching: two nodes that met through a relay try a direct
//! connection by TCP simultaneous open, the way libp2p's DCUtR does, with
//! the relayed handshake as the synchronisation.
//!
//! Each end learns the other's public address from the relayed handshake
//! (the reserved node's payload carries its address as its relay saw it; the
//! relay tells the reserved node where the reader's connection came from),
//! and as soon as that handshake is done each connects to it from its own
//! listening port. Behind endpoint-independent NATs both SYNs leave through
//! the mappings the relay saw, and the first to arrive at the other's router
//! finds a mapping the other's SYN just made: the two connects meet, and
//! one TCP connection results. Each end then sends a `Punch` opening with
//! its id, the lower id takes the Noise initiator's side, and the proven id
//! must be the one the relayed connection proved. The new connection
//! replaces the relayed one (the node task keeps the newest per id); the
//! relay's stays as the fallback until it idles out. Behind a symmetric NAT
//! the mapping toward the other end differs from the one the relay saw, the
//! SYNs are dropped, and the relayed connection simply stays.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use distroweb_protocol::Id;
use tokio::net::TcpStream;

use crate::connection::{self, Shared, Via};
use crate::handshake::{self, Opened};
use crate::slots::{InboundSlot, Slot};
use crate::stats::TransportStats;

/// Connect attempts per punch: a SYN that met no mapping yet is dropped, and
/// the kernel's own retransmission (after 1 s) usually meets the other's.
const ATTEMPTS: usize = 3;

/// Pause between attempts whose connect failed at once (refused).
const RETRY_PAUSE: Duration = Duration::from_millis(300);

/// Tries, in the background, a direct connection to `peer` (which must prove
/// `id`) at its public address `to`, from this node's listening port.
pub(crate) fn start(shared: &Arc<Shared>, to: SocketAddr, id: Id) {
    if to.port() == 0 || to.ip().is_unspecified() {
        return;
    }
    let shared = shared.clone();
    tokio::spawn(async move {
        TransportStats::bump(&shared.stats.punches_attempted);
        let Some(slot) = shared.slots.dial() else {
            tracing::debug!(%to, "no outbound slot for a hole punch");
            TransportStats::bump(&shared.stats.punches_failed);
            return;
        };
        let c = &shared.config;
        for attempt in 0..ATTEMPTS {
            let stream = match crate::dial::connect_from_listen_port(&shared, to).await {
                Ok(stream) => stream,
                Err(e) => {
                    tracing::debug!(%to, attempt, "hole punch connect failed: {e}");
                    tokio::time::sleep(RETRY_PAUSE).await;
                    continue;
                }
            };
            let mut stream = stream;
            let auth = handshake::punch(&mut stream, &shared.local, None, Some(id), to);
            match tokio::time::timeout(c.handshake_timeout, auth).await {
                Ok(Ok(auth)) => {
                    TransportStats::bump(&shared.stats.punches_succeeded);
                    tracing::debug!(%to, peer = %id.short(), "hole punched");
                    let conn = shared.next_conn();
                    let peer = connection::known_at(&auth, to);
                    connection::run(
                        shared.clone(),
                        conn,
                        stream,
                        peer,
                        auth,
                        Slot::Outbound(slot),
                        Via::Punched,
                    )
                    .await;
                    return;
                }
                Ok(Err(e)) => {
                    shared.handshake_failed(to, &e);
                    break;
                }
                Err(_) => {
                    shared.handshake_failed(to, &handshake::HandshakeError::Timeout);
                    break;
                }
            }
        }
        TransportStats::bump(&shared.stats.punches_failed);
        tracing::debug!(%to, peer = %id.short(), "hole punch failed: the relay stays");
    });
}

/// Our listener accepted a connection that opened with `Punch`: the other
/// end's connect reached us before ours reached it (or ours never left).
pub(crate) async fn accepted(
    shared: Arc<Shared>,
    mut stream: TcpStream,
    remote: SocketAddr,
    opened: Opened,
    slot: InboundSlot,
) {
    let c = &shared.config;
    let auth = handshake::punch(&mut stream, &shared.local, Some(opened), None, remote);
    let auth = match tokio::time::timeout(c.handshake_timeout, auth).await {
        Ok(Ok(auth)) => auth,
        Ok(Err(e)) => return shared.handshake_failed(remote, &e),
        Err(_) => return shared.handshake_failed(remote, &handshake::HandshakeError::Timeout),
    };
    slot.authenticated();
    TransportStats::bump(&shared.stats.punches_succeeded);
    let conn = shared.next_conn();
    let peer = connection::known_at(&auth, remote);
    connection::run(
        shared,
        conn,
        stream,
        peer,
        auth,
        Slot::Inbound(slot),
        Via::Punched,
    )
    .await;
}

//! Accepting peer connections: a slot, the handshake, then the connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

use crate::connection::{self, ConnId, Shared, Via};
use crate::handshake::{self, HandshakeError, Opening};
use crate::slots::{Admitted, InboundSlot, Slot};
use crate::stats::TransportStats;
use crate::{punch, reachability, relay};

/// Accepts connections until shutdown.
pub(crate) async fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    let mut shutdown = shared.shutdown.clone();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.wait_for(|stop| *stop) => break,
        };
        let (stream, remote) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Typically out of file descriptors: back off instead of spinning.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let conn = shared.next_conn();
        let slot = match shared.slots.admit(conn, remote.ip().to_canonical()) {
            Ok((slot, admitted)) => {
                if let Admitted::Evicted(ip) = admitted {
                    TransportStats::bump(&shared.stats.connections_evicted);
                    tracing::debug!(%remote, evicted_from = %ip, "inbound full: evicted a handshaking connection");
                }
                slot
            }
            Err(e) => {
                TransportStats::bump(&shared.stats.connections_refused);
                tracing::debug!(%remote, "refused connection: {e}");
                continue;
            }
        };
        tokio::spawn(inbound(shared.clone(), conn, stream, remote, slot));
    }
    tracing::debug!("listener stopped");
}

async fn inbound(
    shared: Arc<Shared>,
    conn: ConnId,
    mut stream: TcpStream,
    remote: SocketAddr,
    slot: InboundSlot,
) {
    let _ = stream.set_nodelay(true);
    let evicted = slot.evicted.clone();
    let c = &shared.config;
    // What the dialler wants decides who answers: this node, or (as a
    // relay) the node it names, or a hole punch.
    let opened = tokio::select! {
        opened = tokio::time::timeout(c.handshake_timeout, handshake::read_opening(&mut stream)) => opened,
        () = evicted.notified() => {
            tracing::debug!(%remote, "evicted before its handshake finished");
            return;
        }
    };
    let opened = match opened {
        Ok(Ok(opened)) => opened,
        Ok(Err(e)) => return shared.handshake_failed(remote, &e),
        Err(_) => return shared.handshake_failed(remote, &HandshakeError::Timeout),
    };
    let own = shared.local.id();
    match opened.opening {
        Opening::Connect(None) => {}
        Opening::Connect(Some(id)) if id == own => {}
        Opening::Connect(Some(target)) => {
            slot.authenticated();
            return relay::circuit(shared, stream, remote, opened, target).await;
        }
        Opening::Reserve(id) if id == own => {
            return relay::serve_reservation(shared, stream, remote, opened, Slot::Inbound(slot))
                .await;
        }
        Opening::Accept(secret) => {
            slot.authenticated();
            return relay::accepted(&shared, stream, &secret);
        }
        Opening::Punch(_) => return punch::accepted(shared, stream, remote, opened, slot).await,
        Opening::Reserve(_) => {
            handshake::refuse(&mut stream).await;
            return shared.handshake_failed(remote, &HandshakeError::NotHere);
        }
    }
    let auth = tokio::select! {
        auth = tokio::time::timeout(c.handshake_timeout, handshake::answer(&mut stream, &shared.local, &opened, remote)) => auth,
        () = evicted.notified() => {
            tracing::debug!(%remote, "evicted before its handshake finished");
            return;
        }
    };
    let auth = match auth {
        Ok(Ok(auth)) => auth,
        Ok(Err(e)) => return shared.handshake_failed(remote, &e),
        Err(_) => return shared.handshake_failed(remote, &HandshakeError::Timeout),
    };
    slot.authenticated();
    TransportStats::bump(&shared.stats.connections_accepted);
    // A peer is known by the IP its connection comes from and the port it says
    // (inside the authenticated payload) it listens on: it cannot point us at
    // a third party, and one that listens on an unspecified address is still
    // reachable. A relayed peer is known at its relay's address, which only
    // records may name (its messages say `Reach::Relayed`), and which a dial
    // checks by proving the id through the relay. Its traffic is keyed by
    // the id it proved, never by this address.
    let peer = connection::known_at(
        &auth,
        SocketAddr::new(remote.ip().to_canonical(), auth.listen.port()),
    );
    if let Some(state) = shared.probes.inbound_from(&auth.id) {
        reachability::changed(&shared, state).await;
    }
    if auth.probe {
        reachability::dial_back(&shared, peer.ip(), peer.port(), auth.id);
    }
    connection::run(
        shared,
        conn,
        stream,
        peer,
        auth,
        Slot::Inbound(slot),
        Via::Direct,
    )
    .await;
}

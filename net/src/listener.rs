//! Accepting peer connections: a slot, the handshake, then the connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

use crate::connection::{self, ConnId, Shared};
use crate::handshake::{self, Role};
use crate::reachability;
use crate::slots::{Admitted, InboundSlot, Slot};
use crate::stats::TransportStats;

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
    let auth = tokio::select! {
        auth = handshake::run(&mut stream, &shared.local, Role::Listener { seen: remote }, shared.config.handshake_timeout) => auth,
        () = evicted.notified() => {
            tracing::debug!(%remote, "evicted before its handshake finished");
            return;
        }
    };
    let auth = match auth {
        Ok(auth) => auth,
        Err(e) => {
            shared.handshake_failed(remote, &e);
            return;
        }
    };
    slot.authenticated();
    TransportStats::bump(&shared.stats.connections_accepted);
    // A peer is known by the IP its connection comes from and the port it says
    // (inside the authenticated payload) it listens on: it cannot point us at
    // a third party, and one that listens on an unspecified address is still
    // reachable. Its traffic is keyed by the id it proved, never by this address.
    let peer = SocketAddr::new(remote.ip().to_canonical(), auth.listen.port());
    if let Some(state) = shared.probes.inbound_from(&auth.id) {
        reachability::changed(&shared, state).await;
    }
    if auth.probe {
        reachability::dial_back(&shared, peer.ip(), peer.port(), auth.id);
    }
    connection::run(shared, conn, stream, peer, auth, Slot::Inbound(slot)).await;
}

//! Opening connections to peers the node wants to talk to.

use std::net::SocketAddr;
use std::sync::Arc;

use distroweb_protocol::Id;
use tokio::net::{TcpSocket, TcpStream};

use crate::connection::{self, Input, Shared, Via};
use crate::error::Chain;
use crate::handshake::{self, Authenticated, HandshakeError, Opening};
use crate::slots::Slot;
use crate::stats::TransportStats;

/// Why a dial failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DialError {
    #[error("{0} outbound connections open already")]
    AtCapacity(usize),
    #[error("address is not dialable")]
    Unroutable,
    #[error("connect timed out")]
    Timeout,
    #[error("connect failed: {0}")]
    Connect(std::io::Error),
    #[error("handshake failed")]
    Handshake(#[from] HandshakeError),
}

/// Where a dial's outbound slot comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Room {
    /// A free slot now, or no dial.
    Free,
    /// The node task is closing a connection to make room: wait (up to
    /// `dial_timeout`) for the slot it frees.
    Freeing,
}

/// Starts dialling `peer`, which must prove `expect` (`None`: a bootstrap
/// seed), in the background; the node task hears of the outcome as
/// [`Input::Up`] or [`Input::DialFailed`]. Fails at once when the address is
/// unusable, or every outbound slot is taken and none is being freed.
pub(crate) fn start(
    shared: &Arc<Shared>,
    peer: SocketAddr,
    expect: Option<Id>,
    room: Room,
) -> Result<(), DialError> {
    if peer.ip().is_unspecified() || peer.port() == 0 || peer == shared.advertised {
        return Err(DialError::Unroutable);
    }
    let slot = shared.slots.dial();
    if slot.is_none() && room == Room::Free {
        return Err(DialError::AtCapacity(
            shared.config.max_outbound_connections,
        ));
    }
    let shared = shared.clone();
    tokio::spawn(async move {
        let slot = match slot {
            Some(slot) => Some(slot),
            None => tokio::time::timeout(shared.config.dial_timeout, shared.slots.dial_when_free())
                .await
                .ok()
                .flatten(),
        };
        let Some(slot) = slot else {
            // Nothing reached the peer: not its failure.
            tracing::debug!(%peer, "no outbound slot freed in time");
            let _ = shared
                .inputs
                .send(Input::DialFailed {
                    peer,
                    expect,
                    attempted: false,
                })
                .await;
            return;
        };
        let conn = shared.next_conn();
        match connect(&shared, peer, expect).await {
            Ok((stream, auth)) => {
                TransportStats::bump(&shared.stats.connections_dialed);
                // A node that says it is reached through the relay at the
                // address we dialled was reached through that relay.
                let via = if auth.relayed && auth.listen == peer {
                    TransportStats::bump(&shared.stats.connections_relayed);
                    if let Some(public) = auth.public {
                        if shared.config.relay.hole_punching {
                            crate::punch::start(&shared, public, auth.id);
                        }
                    }
                    Via::Relayed
                } else {
                    Via::Direct
                };
                connection::run(shared, conn, stream, peer, auth, Slot::Outbound(slot), via).await;
            }
            Err(e) => {
                drop(slot);
                TransportStats::bump(&shared.stats.dials_failed);
                match &e {
                    DialError::Handshake(h) => shared.handshake_failed(peer, h),
                    _ => tracing::debug!(%peer, "dial failed: {}", Chain(&e)),
                }
                let _ = shared
                    .inputs
                    .send(Input::DialFailed {
                        peer,
                        expect,
                        attempted: true,
                    })
                    .await;
            }
        }
    });
    Ok(())
}

async fn connect(
    shared: &Shared,
    peer: SocketAddr,
    expect: Option<Id>,
) -> Result<(TcpStream, Authenticated), DialError> {
    let c = &shared.config;
    let mut stream = if behind_nat(shared) {
        connect_from_listen_port(shared, peer).await?
    } else {
        tokio::time::timeout(c.dial_timeout, TcpStream::connect(peer))
            .await
            .map_err(|_| DialError::Timeout)?
            .map_err(DialError::Connect)?
    };
    let _ = stream.set_nodelay(true);
    let asked = shared.local.probing();
    let auth = handshake::dial(&mut stream, &shared.local, Opening::Connect(expect), expect);
    let auth = tokio::time::timeout(c.handshake_timeout, auth)
        .await
        .map_err(|_| HandshakeError::Timeout)??;
    if asked {
        shared.probes.asked(auth.id, std::time::Instant::now());
    }
    if let Some(seen) = auth.observed {
        shared.probes.observed(auth.id, seen.ip());
        if from_listen_port(shared, &stream) {
            shared.local.set_public(seen);
        }
    }
    Ok((stream, auth))
}

/// Whether `stream` left from this node's listening port: then what its
/// peer saw is the mapping the node's router keeps for that port.
pub(crate) fn from_listen_port(shared: &Shared, stream: &TcpStream) -> bool {
    stream
        .local_addr()
        .is_ok_and(|a| a.port() == shared.bound.port())
}

/// Whether this node dials from its listening port: only behind a NAT (in
/// client mode or relayed) with hole punching on, so that every peer sees
/// the one mapping its router keeps for that port, the address a hole
/// punch must aim at.
fn behind_nat(shared: &Shared) -> bool {
    shared.config.relay.hole_punching && (shared.local.client() || shared.local.relayed().is_some())
}

/// Connects to `peer` from this node's listening address and port (the
/// listener shares it: `SO_REUSEPORT`); where the kernel will not (the
/// same peer connected from that port already, or one in `TIME_WAIT`),
/// from an ephemeral port.
pub(crate) async fn connect_from_listen_port(
    shared: &Shared,
    peer: SocketAddr,
) -> Result<TcpStream, DialError> {
    let timeout = shared.config.dial_timeout;
    let bound = shared.bound;
    let socket = || -> std::io::Result<TcpSocket> {
        let s = if bound.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        s.set_reuseaddr(true)?;
        s.set_reuseport(true)?;
        s.bind(bound)?;
        Ok(s)
    };
    let reused = match socket() {
        Ok(s) if bound.is_ipv4() == peer.is_ipv4() && shared.config.relay.hole_punching => {
            tokio::time::timeout(timeout, s.connect(peer)).await
        }
        _ => tokio::time::timeout(timeout, TcpStream::connect(peer)).await,
    };
    let stream = match reused {
        Err(_) => return Err(DialError::Timeout),
        Ok(Ok(stream)) => stream,
        Ok(Err(e))
            if matches!(
                e.kind(),
                std::io::ErrorKind::AddrInUse | std::io::ErrorKind::AddrNotAvailable
            ) =>
        {
            tokio::time::timeout(timeout, TcpStream::connect(peer))
                .await
                .map_err(|_| DialError::Timeout)?
                .map_err(DialError::Connect)?
        }
        Ok(Err(e)) => return Err(DialError::Connect(e)),
    };
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

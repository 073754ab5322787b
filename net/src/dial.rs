//! Opening connections to peers the node wants to talk to.

use std::net::SocketAddr;
use std::sync::Arc;

use distroweb_protocol::Id;
use tokio::net::TcpStream;

use crate::connection::{self, Input, Shared};
use crate::error::Chain;
use crate::handshake::{self, Authenticated, HandshakeError, Role};
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
                    attempted: false,
                })
                .await;
            return;
        };
        let conn = shared.next_conn();
        match connect(&shared, peer, expect).await {
            Ok((stream, auth)) => {
                TransportStats::bump(&shared.stats.connections_dialed);
                connection::run(shared, conn, stream, peer, auth, Slot::Outbound(slot)).await;
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
    let mut stream = tokio::time::timeout(c.dial_timeout, TcpStream::connect(peer))
        .await
        .map_err(|_| DialError::Timeout)?
        .map_err(DialError::Connect)?;
    let _ = stream.set_nodelay(true);
    let asked = shared.local.probing();
    let auth = handshake::run(
        &mut stream,
        &shared.local,
        Role::Dialer { expect },
        c.handshake_timeout,
    )
    .await?;
    if asked {
        shared.probes.asked(auth.id, std::time::Instant::now());
    }
    if let Some(seen) = auth.observed {
        shared.probes.observed(auth.id, seen.ip());
    }
    Ok((stream, auth))
}

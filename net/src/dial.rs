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

/// Starts dialling `peer`, which must prove `expect` (`None`: a bootstrap
/// seed), in the background; the node task hears of the outcome as
/// [`Input::Up`] or [`Input::DialFailed`]. Fails at once when the address is
/// unusable or every outbound slot is taken.
pub(crate) fn start(
    shared: &Arc<Shared>,
    peer: SocketAddr,
    expect: Option<Id>,
) -> Result<(), DialError> {
    if peer.ip().is_unspecified() || peer.port() == 0 || peer == shared.advertised {
        return Err(DialError::Unroutable);
    }
    let slot = shared.slots.dial().ok_or(DialError::AtCapacity(
        shared.config.max_outbound_connections,
    ))?;
    let shared = shared.clone();
    tokio::spawn(async move {
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
                let _ = shared.inputs.send(Input::DialFailed { peer }).await;
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
    let auth = handshake::run(
        &mut stream,
        &shared.local,
        Role::Dialer { expect },
        c.handshake_timeout,
    )
    .await?;
    Ok((stream, auth))
}

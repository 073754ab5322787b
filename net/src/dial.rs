//! Opening connections to peers the node wants to talk to.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpStream;

use crate::connection::{self, Input, Shared};
use crate::error::Chain;
use crate::handshake::{self, HandshakeError, Hello};
use crate::stats::TransportStats;

/// Why a dial failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DialError {
    #[error("{0} connections open already")]
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

/// Starts dialling `peer` in the background; the node task hears of the outcome
/// as [`Input::Up`] or [`Input::DialFailed`]. Fails at once when the address is
/// unusable or the connection cap is reached.
pub(crate) fn start(shared: &Arc<Shared>, peer: SocketAddr) -> Result<(), DialError> {
    if peer.ip().is_unspecified() || peer.port() == 0 || peer == shared.hello.listen {
        return Err(DialError::Unroutable);
    }
    let permit = shared
        .permits
        .clone()
        .try_acquire_owned()
        .map_err(|_| DialError::AtCapacity(shared.config.max_connections))?;
    let shared = shared.clone();
    tokio::spawn(async move {
        match connect(&shared, peer).await {
            Ok((stream, hello)) => {
                TransportStats::bump(&shared.stats.connections_dialed);
                connection::run(shared, stream, peer, hello.id, permit).await;
            }
            Err(e) => {
                drop(permit);
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

async fn connect(shared: &Shared, peer: SocketAddr) -> Result<(TcpStream, Hello), DialError> {
    let c = &shared.config;
    let mut stream = tokio::time::timeout(c.dial_timeout, TcpStream::connect(peer))
        .await
        .map_err(|_| DialError::Timeout)?
        .map_err(DialError::Connect)?;
    let _ = stream.set_nodelay(true);
    let hello = handshake::exchange(&mut stream, &shared.hello, c.handshake_timeout).await?;
    Ok((stream, hello))
}

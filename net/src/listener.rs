//! Accepting peer connections: the connection cap, the handshake, then the connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::OwnedSemaphorePermit;

use crate::connection::{self, Shared};
use crate::handshake;
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
        let Ok(permit) = shared.permits.clone().try_acquire_owned() else {
            TransportStats::bump(&shared.stats.connections_refused);
            tracing::debug!(%remote, "refused connection: at the connection cap");
            continue;
        };
        tokio::spawn(inbound(shared.clone(), stream, remote, permit));
    }
    tracing::debug!("listener stopped");
}

async fn inbound(
    shared: Arc<Shared>,
    mut stream: TcpStream,
    remote: SocketAddr,
    permit: OwnedSemaphorePermit,
) {
    let _ = stream.set_nodelay(true);
    let hello = match handshake::exchange(
        &mut stream,
        &shared.hello,
        shared.config.handshake_timeout,
    )
    .await
    {
        Ok(hello) => hello,
        Err(e) => {
            shared.handshake_failed(remote, &e);
            return;
        }
    };
    TransportStats::bump(&shared.stats.connections_accepted);
    // A peer is known by the IP its connection comes from and the port it says it
    // listens on: it cannot point us at a third party, and one that listens on an
    // unspecified address is still reachable.
    let peer = SocketAddr::new(remote.ip().to_canonical(), hello.listen.port());
    connection::run(shared, stream, peer, hello.id, permit).await;
}

//! Live nodes in a lab's namespaces (`distroweb-netlab`), for the NAT and
//! port-mapping tests.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use distroweb_net::reachability::Reachability;
use distroweb_net::{LiveNode, NetConfig, NodeHandle};
use distroweb_netlab::Host;
use tokio::sync::oneshot;

/// A node running on a thread of its own inside a lab host's namespace.
pub struct InLab {
    /// Its handle.
    pub handle: NodeHandle,
    /// Where it listens, in its namespace.
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for InLab {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Starts node `n` in `host`'s namespace, listening on port 4100 there.
pub async fn start_in(host: &Host, n: u8, client_mode: bool) -> InLab {
    let config = NetConfig {
        client_mode,
        ..super::config(n)
    };
    start_with(host, config).await
}

/// Starts a node with `config` in `host`'s namespace, on port 4100 there.
pub async fn start_with(host: &Host, config: NetConfig) -> InLab {
    let addr = SocketAddr::new(IpAddr::V4(host.addr()), 4100);
    let config = NetConfig {
        listen: addr,
        ..config
    };
    let (started, handle) = oneshot::channel();
    let (stop, stopped) = oneshot::channel::<()>();
    let _thread = host.spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(async move {
            let node = LiveNode::start(config).await.expect("the node starts");
            let _ = started.send(node.handle());
            let _ = stopped.await;
            node.stop().await;
        });
    });
    let handle = tokio::time::timeout(Duration::from_secs(10), handle)
        .await
        .expect("started in time")
        .expect("the node thread runs");
    InLab {
        handle,
        addr,
        stop: Some(stop),
    }
}

/// Waits up to `within` for `node`'s reachability to be `want`.
pub async fn found(node: &InLab, want: Reachability, within: Duration) -> bool {
    let end = Instant::now() + within;
    while Instant::now() < end {
        if node.handle.status().await.expect("status").reachability == want {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

//! Behind a NAT, for real: nodes in network namespaces (`distroweb-netlab`),
//! two on a public network and two at home behind endpoint-independent NAT
//! routers. A node in client mode fetches through its router and stays out of
//! every routing table and provider record; a node at home that does not say
//! so (what every node did before client mode) lands in both at its router's
//! address, where nobody can dial it.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use distroweb_net::{LiveNode, NetConfig, NodeHandle};
use distroweb_netlab::{require, Host, Nat};
use tokio::sync::oneshot;

/// A node running on a thread of its own inside a lab host's namespace.
struct InLab {
    handle: NodeHandle,
    addr: SocketAddr,
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
async fn start_in(host: &Host, n: u8, client_mode: bool) -> InLab {
    let addr = SocketAddr::new(IpAddr::V4(host.addr()), 4100);
    let config = NetConfig {
        listen: addr,
        client_mode,
        ..common::config(n)
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

/// Provider and fetching records the two public nodes track.
async fn records(nodes: [&InLab; 2]) -> usize {
    let mut n = 0;
    for node in nodes {
        n += node.handle.status().await.expect("status").tracked_records;
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_behind_a_nat_fetches_and_enters_no_table_or_record() {
    let Some(mut lab) = require("a_client_behind_a_nat_fetches") else {
        return;
    };
    let (p, q) = (
        lab.public_host().expect("host"),
        lab.public_host().expect("host"),
    );
    let home_c = lab.home(Nat::EndpointIndependent, &[]).expect("home");
    let home_s = lab.home(Nat::EndpointIndependent, &[]).expect("home");
    let publisher = start_in(&p, 1, false).await;
    let other = start_in(&q, 2, false).await;
    other
        .handle
        .bootstrap(vec![publisher.addr])
        .await
        .expect("joins");
    let data = common::junk(300_000, 7);
    let root = publisher
        .handle
        .publish_file(Bytes::from(data.clone()), "application/octet-stream".into())
        .await
        .expect("publishes")
        .id;
    let before = records([&publisher, &other]).await;

    let client = start_in(&home_c.host, 3, true).await;
    client
        .handle
        .bootstrap(vec![publisher.addr])
        .await
        .expect("a client joins");
    assert_eq!(
        common::fetch_all(&client.handle, root).await,
        data,
        "byte for byte"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        records([&publisher, &other]).await,
        before,
        "a client writes no record"
    );

    // The same from a home node that does not say it is a client.
    let server = start_in(&home_s.host, 4, false).await;
    server
        .handle
        .bootstrap(vec![publisher.addr])
        .await
        .expect("joins");
    assert_eq!(common::fetch_all(&server.handle, root).await, data);
    let end = Instant::now() + Duration::from_secs(10);
    while records([&publisher, &other]).await == before {
        assert!(
            Instant::now() < end,
            "the non-client's records never arrive"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let (client_id, server_id) = (client.handle.id(), server.handle.id());
    for node in [&publisher, &other] {
        let status = node.handle.status().await.expect("status");
        assert!(
            !status.peers.iter().any(|c| c.id == client_id),
            "the client is in no routing table"
        );
        let dead = status.peers.iter().find(|c| c.id == server_id);
        let dead = dead.expect("the non-client is in the table");
        assert_eq!(
            dead.addr.ip(),
            IpAddr::V4(home_s.router.addr()),
            "at its router's address, which nobody can dial"
        );
    }
    assert!(
        publisher
            .handle
            .status()
            .await
            .expect("status")
            .counters
            .from_clients
            > 0,
        "the client's requests were answered"
    );
}

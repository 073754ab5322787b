//! Behind a NAT, for real: nodes in network namespaces (`distroweb-netlab`),
//! two on a public network and two at home behind endpoint-independent NAT
//! routers. A node in client mode fetches through its router and stays out of
//! every routing table and provider record; a node at home that does not say
//! so (what every node did before client mode) lands in both at its router's
//! address, where nobody can dial it. Nodes that probe find out by dial-backs
//! whether they can be dialled: a public one and one behind a forwarded port
//! can, one behind a NAT without a forward cannot and turns client; each
//! learns its public address from what the peers it dialled saw.

mod common;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::lab::{found, start_in, start_with, InLab};
use distroweb_net::reachability::Reachability;
use distroweb_net::NetConfig;
use distroweb_netlab::{require, Nat};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dial_backs_find_out_who_can_be_dialled() {
    let Some(mut lab) = require("dial_backs_find_out_who_can_be_dialled") else {
        return;
    };
    let (p, q, r) = (
        lab.public_host().expect("host"),
        lab.public_host().expect("host"),
        lab.public_host().expect("host"),
    );
    let forwarded = lab.home(Nat::EndpointIndependent, &[4100]).expect("home");
    let closed = lab.home(Nat::EndpointIndependent, &[]).expect("home");
    let probing = |n| NetConfig {
        probe_reachability: true,
        reachability_probes: 2,
        reachability_timeout: Duration::from_secs(2),
        ..common::config(n)
    };
    let seed = start_in(&p, 1, false).await;
    let other = start_in(&q, 2, false).await;
    other
        .handle
        .bootstrap(vec![seed.addr])
        .await
        .expect("joins");
    let seeds = vec![seed.addr, other.addr];

    let public = start_with(&r, probing(3)).await;
    let behind_forward = start_with(&forwarded.host, probing(4)).await;
    let behind_nat = start_with(&closed.host, probing(5)).await;
    for node in [&public, &behind_forward, &behind_nat] {
        node.handle.bootstrap(seeds.clone()).await.expect("joins");
    }
    let t = Duration::from_secs(10);
    assert!(
        found(&public, Reachability::Public, t).await,
        "a public node is reachable"
    );
    assert!(
        found(&behind_forward, Reachability::Public, t).await,
        "a forwarded port is found reachable"
    );
    assert!(
        found(&behind_nat, Reachability::Private, t).await,
        "a NAT without a forward is found unreachable"
    );
    let expect = [
        (&public, false, r.addr()),
        (&behind_forward, false, forwarded.router.addr()),
        (&behind_nat, true, closed.router.addr()),
    ];
    for (node, client, seen_as) in expect {
        let status = node.handle.status().await.expect("status");
        // Unreachable, it runs in client mode, or is reached through the
        // relay it found by then (see tests/relay.rs).
        assert_eq!(status.client_mode || status.relayed_at.is_some(), client);
        assert_eq!(
            status.public_ip,
            Some(IpAddr::V4(seen_as)),
            "the peers it dialled saw it as its router"
        );
    }
    // The dial-backs were made; those to the closed NAT fail once the dial
    // times out (the router drops them without an answer).
    let dialbacks = || {
        let mut sum = (0, 0);
        for node in [&seed, &other] {
            let t = node.handle.transport_stats().snapshot();
            sum = (sum.0 + t.dialbacks, sum.1 + t.dialbacks_failed);
        }
        sum
    };
    let end = Instant::now() + Duration::from_secs(10);
    while dialbacks().1 == 0 && Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (made, failed) = dialbacks();
    assert!(made >= 2 && failed >= 1, "{made} made, {failed} failed");

    // From now on the unreachable node's connections say client mode: a new
    // public node that it looks up and talks to never adds it.
    let late = start_in(&lab.public_host().expect("host"), 6, false).await;
    late.handle.bootstrap(seeds.clone()).await.expect("joins");
    behind_nat
        .handle
        .find_node(late.handle.id())
        .await
        .expect("a lookup");
    let status = late.handle.status().await.expect("status");
    assert!(status.counters.from_clients > 0, "it heard from the client");
    assert!(!status.peers.iter().any(|c| c.id == behind_nat.handle.id()));
}

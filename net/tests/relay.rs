//! Relays and hole punching, through real NATs in network namespaces
//! (`distroweb-netlab`): a relay on a public network, and nodes at home
//! behind NAT routers that drop every unsolicited packet. A site published
//! from behind one NAT is fetched byte for byte from behind another: the
//! reader meets the publisher through the relay, and then, when both NATs
//! are endpoint-independent, over a hole-punched direct connection (the
//! relay carries almost none of the second site); when the publisher's NAT
//! is symmetric, the punch fails and the relay carries it all. Each case
//! asserts the path from the relay's byte count and the reader's own view
//! of its connection.

mod common;

use std::time::{Duration, Instant};

use common::lab::{start_in, start_with, InLab};
use distroweb_net::{NetConfig, Status, Via};
use distroweb_netlab::{require, Nat};
use distroweb_protocol::{Id, Manifest, SiteFile};

/// A node behind a NAT, in client mode, with relays and hole punching on
/// (their defaults).
fn at_home(n: u8) -> NetConfig {
    NetConfig {
        client_mode: true,
        dial_timeout: Duration::from_secs(2),
        ..common::config(n)
    }
}

/// Waits up to `within` for `test` to hold of `node`'s status.
async fn until(node: &InLab, within: Duration, test: impl Fn(&Status) -> bool) -> Status {
    let end = Instant::now() + within;
    loop {
        let status = node.handle.status().await.expect("status");
        if test(&status) || Instant::now() >= end {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A small site whose bytes depend on `seed`: a page and two larger files.
fn site(seed: u64) -> Vec<SiteFile> {
    vec![
        SiteFile::new(
            "index.html",
            "text/html",
            format!("<h1>site {seed}</h1>").into_bytes(),
        ),
        SiteFile::new(
            "a.bin",
            "application/octet-stream",
            common::junk(400_000, seed),
        ),
        SiteFile::new(
            "b.bin",
            "application/octet-stream",
            common::junk(300_000, seed + 1),
        ),
    ]
}

/// Fetches the site `root` through `reader`, every file whole, by path.
async fn read_site(reader: &InLab, root: Id) -> Vec<(String, Vec<u8>)> {
    let mut f = reader.handle.fetch(root).await.expect("fetch starts");
    tokio::time::timeout(Duration::from_secs(30), f.finished())
        .await
        .expect("the fetch ends in time")
        .expect("the fetch succeeds");
    let Ok(Manifest::Site(site)) = f.manifest(&root).await else {
        panic!("a site manifest");
    };
    let mut files = Vec::new();
    for entry in site.entries() {
        let Ok(Manifest::File(m)) = f.manifest(&entry.file).await else {
            panic!("a file manifest");
        };
        let mut data = Vec::new();
        for chunk in m.chunks() {
            data.extend_from_slice(&f.block(chunk).await.expect("a block"));
        }
        files.push((entry.path.as_str().to_owned(), data));
    }
    files
}

/// What `site` looks like read back: by path, in path order.
fn expected(site: &[SiteFile]) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = site
        .iter()
        .map(|f| {
            (
                String::from_utf8(f.path.clone()).expect("a UTF-8 path"),
                f.data.to_vec(),
            )
        })
        .collect();
    files.sort();
    files
}

/// Publishes a site at `publisher` and waits until a tracker holds its
/// record (which names the publisher at its relay).
async fn publish(publisher: &InLab, files: Vec<SiteFile>) -> Id {
    publisher
        .handle
        .publish_site(files)
        .await
        .expect("publishes")
        .id
}

/// Bytes and circuits the public nodes relayed (either may be a relay).
fn relayed(public: [&InLab; 2]) -> (u64, u64) {
    let mut sum = (0, 0);
    for node in public {
        let t = node.handle.transport_stats().snapshot();
        sum = (sum.0 + t.relayed_bytes, sum.1 + t.circuits_relayed);
    }
    sum
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_behind_one_nat_is_fetched_from_behind_another() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let Some(mut lab) = require("a_site_behind_one_nat_is_fetched") else {
        return;
    };
    let relay_host = lab.public_host().expect("host");
    let other_host = lab.public_host().expect("host");
    let home_a = lab.home(Nat::EndpointIndependent, &[]).expect("home");
    let home_b = lab.home(Nat::EndpointIndependent, &[]).expect("home");
    let home_s = lab.home(Nat::Symmetric, &[]).expect("home");

    let relay = start_in(&relay_host, 1, false).await;
    let other = start_in(&other_host, 2, false).await;
    other
        .handle
        .bootstrap(vec![relay.addr])
        .await
        .expect("joins");
    let seeds = vec![relay.addr, other.addr];
    let publisher = start_with(&home_a.host, at_home(3)).await;
    let symmetric = start_with(&home_s.host, at_home(4)).await;
    let reader = start_with(&home_b.host, at_home(5)).await;
    for node in [&publisher, &symmetric, &reader] {
        node.handle.bootstrap(seeds.clone()).await.expect("joins");
    }
    let t = Duration::from_secs(10);
    for node in [&publisher, &symmetric] {
        let status = until(node, t, |s| s.relayed_at.is_some()).await;
        assert!(
            status.relayed_at.is_some(),
            "a node behind a NAT holds a relay reservation"
        );
    }
    let mut reservations = 0;
    for node in [&relay, &other] {
        let status = node.handle.status().await.expect("status");
        reservations += status.relay_reservations;
        for id in [publisher.handle.id(), symmetric.handle.id()] {
            assert!(
                !status.peers.iter().any(|c| c.id == id),
                "a relayed node is in no routing table"
            );
        }
    }
    assert_eq!(reservations, 3, "each node at home holds one");
    let public = [&relay, &other];

    // Endpoint-independent to endpoint-independent: relayed, then punched.
    let first = site(10);
    let root = publish(&publisher, first.clone()).await;
    assert_eq!(
        read_site(&reader, root).await,
        expected(&first),
        "byte for byte"
    );
    let a = publisher.handle.id();
    let status = until(&reader, t, |s| {
        s.connections
            .iter()
            .any(|c| c.peer == a && c.via == Via::Punched)
    })
    .await;
    assert!(
        status
            .connections
            .iter()
            .any(|c| c.peer == a && c.via == Via::Punched),
        "the reader punched a hole to the publisher: {:?}",
        status.connections
    );
    assert!(
        status.transport.connections_relayed >= 1,
        "met through the relay first"
    );
    // The next site goes over the punched connection, not the relay.
    let second = site(20);
    let size: usize = second.iter().map(|f| f.data.len()).sum();
    let before = relayed(public).0;
    let root = publish(&publisher, second.clone()).await;
    assert_eq!(read_site(&reader, root).await, expected(&second));
    let through_relay = relayed(public).0 - before;
    assert!(
        through_relay < size as u64 / 10,
        "{through_relay} of {size} bytes went through the relay"
    );

    // A symmetric NAT defeats the punch: the relay carries the site.
    let third = site(30);
    let size: usize = third.iter().map(|f| f.data.len()).sum();
    let before = relayed(public).0;
    let root = publish(&symmetric, third.clone()).await;
    assert_eq!(read_site(&reader, root).await, expected(&third));
    let through_relay = relayed(public).0 - before;
    assert!(
        through_relay >= size as u64,
        "only {through_relay} of {size} bytes went through the relay"
    );
    let s = symmetric.handle.id();
    let status = reader.handle.status().await.expect("status");
    assert!(
        status
            .connections
            .iter()
            .any(|c| c.peer == s && c.via == Via::Relayed),
        "the reader reaches the symmetric home through the relay: {:?}",
        status.connections
    );
    assert!(
        !status
            .connections
            .iter()
            .any(|c| c.peer == s && c.via == Via::Punched),
        "and never directly"
    );
    assert!(relayed(public).1 >= 2, "a circuit to each publisher");
}

//! Real nodes on 127.0.0.1: they find each other, and hostile connections are
//! cut off while the node keeps serving.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{closed_within, config, junk, start, RawPeer};
use distroweb_net::handshake::{preamble, Opening};
use distroweb_net::{LiveNode, NetConfig, NetError};
use distroweb_protocol::wire::MAX_MESSAGE_BYTES;
use distroweb_protocol::DhtConfig;
use distroweb_protocol::{Body, Config, Id, Message, QueryError, QueryOutput, RpcId};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_bootstrap_announce_and_find_providers() {
    let nodes = [
        start(0).await,
        start(1).await,
        start(2).await,
        start(3).await,
    ];
    let h: Vec<_> = nodes.iter().map(LiveNode::handle).collect();
    let seed = h[0].listen_addr();
    for node in &h[1..] {
        let done = node.bootstrap(vec![seed]).await.expect("bootstrap");
        assert!(matches!(done.output, QueryOutput::Bootstrapped { contacts } if contacts >= 1));
    }

    let key = Id::hash_of(b"a page");
    let announced = h[2].announce(key).await.expect("announce");
    assert!(matches!(announced.output, QueryOutput::Announced { stored } if stored >= 1));

    let found = h[3].find_providers(key).await.expect("find providers");
    let QueryOutput::Providers(providers) = found.output else {
        panic!("expected providers, got {:?}", found.output);
    };
    assert!(providers
        .iter()
        .any(|p| p.id == h[2].id() && p.addr == h[2].listen_addr()));
    assert_eq!(
        h[1].find_providers(Id::hash_of(b"nobody has this")).await,
        Err(NetError::Query(QueryError::NotFound))
    );

    let closest = h[1].find_node(h[3].id()).await.expect("find node");
    let QueryOutput::Closest(closest) = closest.output else {
        panic!("expected contacts");
    };
    assert_eq!(closest[0].id, h[3].id());
    assert_eq!(closest[0].addr, h[3].listen_addr());

    for node in &h {
        let s = node.status().await.unwrap();
        assert_eq!(s.routing_table_len, 3, "every node knows the other three");
        // Connections are reused: at most one each way per pair, however many messages flowed.
        assert!(
            s.open_connections <= 6,
            "{} connections",
            s.open_connections
        );
        assert!(
            s.transport.frames_in
                > s.transport.connections_accepted + s.transport.connections_dialed
        );
        assert_eq!(s.transport.bad_frames, 0);
    }
    let stopped = h[1].clone();
    for node in nodes {
        node.stop().await;
    }
    assert_eq!(stopped.status().await.err(), Some(NetError::Stopped));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_connections_are_closed_and_the_node_keeps_serving() {
    let a = start(10).await;
    let b = start(11).await;
    let (ha, hb) = (a.handle(), b.handle());
    let server = ha.listen_addr();
    let limit = Duration::from_secs(5);

    // Random bytes instead of a hello.
    let mut s = TcpStream::connect(server).await.unwrap();
    s.write_all(&junk(64, 1)).await.unwrap();
    assert!(closed_within(&mut s, limit).await, "random bytes");

    // A preamble from another protocol version: refused after our own preamble.
    let mut s = TcpStream::connect(server).await.unwrap();
    s.write_all(&preamble(distroweb_net::PROTOCOL_VERSION + 1))
        .await
        .unwrap();
    assert!(closed_within(&mut s, limit).await, "wrong version");

    // Half-open: connects, never says anything.
    let mut s = TcpStream::connect(server).await.unwrap();
    assert!(closed_within(&mut s, limit).await, "silent connection");

    let fake_addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
    // A frame over the size limit after a good handshake: only its header and
    // first piece are sent, and the header alone condemns it.
    let mut p = RawPeer::connect(server, b"big", fake_addr).await;
    let big = vec![0u8; MAX_MESSAGE_BYTES + 1];
    let mut sealed = Vec::new();
    p.sealer.pieces(&big).unwrap().next(&mut sealed).unwrap();
    p.stream.write_all(&sealed).await.unwrap();
    assert!(closed_within(&mut p.stream, limit).await, "oversized frame");

    // Part of a frame, then silence.
    let mut p = RawPeer::connect(server, b"stall", fake_addr).await;
    let mut sealed = Vec::new();
    p.sealer.seal(&[0u8; 100], &mut sealed).unwrap();
    p.stream.write_all(&sealed[..40]).await.unwrap();
    assert!(closed_within(&mut p.stream, limit).await, "stalled frame");

    // A frame whose seal was tampered with.
    let mut p = RawPeer::connect(server, b"tamper", fake_addr).await;
    let mut sealed = Vec::new();
    p.sealer.seal(&[0u8; 100], &mut sealed).unwrap();
    sealed[30] ^= 1;
    p.stream.write_all(&sealed).await.unwrap();
    assert!(closed_within(&mut p.stream, limit).await, "tampered frame");

    // A well-framed message in another node's name.
    let mut p = RawPeer::connect(server, b"liar", fake_addr).await;
    let forged = Message::<SocketAddr> {
        sender: Id::hash_of(b"someone else"),
        rpc: RpcId(1),
        body: Body::Ping,
    };
    p.send(&forged).await;
    assert!(closed_within(&mut p.stream, limit).await, "forged sender");

    let status = ha.status().await.unwrap();
    assert_eq!(status.transport.version_mismatches, 1);
    assert!(
        status.transport.handshakes_failed >= 3,
        "{:?}",
        status.transport
    );
    assert!(status.transport.bad_frames >= 4, "{:?}", status.transport);

    // The node still serves real peers.
    hb.bootstrap(vec![server])
        .await
        .expect("bootstrap after abuse");
    let key = Id::hash_of(b"still works");
    hb.announce(key).await.expect("announce");
    let found = ha.find_providers(key).await.expect("find");
    assert!(matches!(found.output, QueryOutput::Providers(p) if p[0].id == hb.id()));
    a.stop().await;
    b.stop().await;
}

/// A peer that breaks the framing mid-conversation is reported to the node at
/// once: the request waiting on it fails now, not at its (long) deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_fails_pending_requests_at_once() {
    let slow = Config {
        dht: DhtConfig {
            request_timeout: Duration::from_secs(30),
            ..Default::default()
        },
        ..Config::default()
    };
    let a = LiveNode::start(NetConfig {
        protocol: slow,
        ..config(20)
    })
    .await
    .unwrap();
    let ha = a.handle();

    // The fake peer introduces itself with a ping, so A puts it in its table.
    let fake_listen: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let mut s = RawPeer::connect(ha.listen_addr(), b"fake peer", fake_listen).await;
    s.introduce().await;

    // A asks the fake peer (its only contact) something, over the same connection.
    let lookup = tokio::spawn({
        let ha = ha.clone();
        async move { ha.find_node(Id::hash_of(b"anything")).await }
    });
    assert!(matches!(s.recv().await.body, Body::FindNode { .. }));

    // Instead of an answer: garbage, sealed. The connection closes and the request fails.
    let garbage = junk(40, 7);
    assert!(Message::<SocketAddr>::decode(&garbage).is_err());
    s.send_raw(&garbage).await;
    assert!(closed_within(&mut s.stream, Duration::from_secs(5)).await);
    let result = tokio::time::timeout(Duration::from_secs(10), lookup)
        .await
        .expect("the lookup ends long before the 30 s request timeout")
        .unwrap();
    assert_eq!(result, Err(NetError::Query(QueryError::NoPeers)));
    let status = ha.status().await.unwrap();
    assert_eq!(status.counters.requests_failed, 1);
    assert_eq!(status.transport.bad_frames, 1);
    a.stop().await;
}

/// A full inbound budget makes room by evicting the oldest connection still
/// in its handshake; past the per-IP cap on those, connections close at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_slots_evict_the_oldest_handshake_and_cap_each_ip() {
    let a = LiveNode::start(NetConfig {
        max_inbound_connections: 3,
        max_handshaking_per_ip: 2,
        // The silent connections must hold their slots for the whole test.
        handshake_timeout: Duration::from_secs(10),
        ..config(30)
    })
    .await
    .unwrap();
    let addr = a.handle().listen_addr();
    let from = |ip: &str| common::connect_from(ip.parse().unwrap(), addr);
    let mut first = TcpStream::connect(addr).await.unwrap();
    let _second = TcpStream::connect(addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;

    // Two handshaking from 127.0.0.1 is its cap: a third is closed at once.
    let mut over = TcpStream::connect(addr).await.unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_millis(500), over.read_to_end(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "{read:?} {buf:?}");
    assert_eq!(
        a.handle()
            .status()
            .await
            .unwrap()
            .transport
            .connections_refused,
        1
    );

    // Another IP fills the budget; a third IP's newcomer evicts 127.0.0.1's oldest.
    let _other = from("127.30.0.1").await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut newcomer = from("127.31.0.1").await.unwrap();
    assert!(
        closed_within(&mut first, Duration::from_secs(2)).await,
        "the oldest was evicted"
    );
    // The newcomer is served: the listener answers its opening.
    newcomer
        .write_all(&Opening::Connect(None).encode())
        .await
        .unwrap();
    let mut preamble_back = [0u8; 8];
    newcomer.read_exact(&mut preamble_back).await.unwrap();
    let status = a.handle().status().await.unwrap();
    assert_eq!(status.transport.connections_evicted, 1);
    assert_eq!(status.open_connections, 3);
    a.stop().await;
}

/// A peer that asks for more blocks at once than its connection's queue
/// holds, and reads slowly, gets an answer to every request: blocks while the
/// queue has room, then "busy", never the silence that would cost it a block
/// timeout before it tried another provider.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_block_request_is_answered_when_the_queue_is_full() {
    let node = LiveNode::start(NetConfig {
        max_queued_bytes: 1 << 20,
        ..config(40)
    })
    .await
    .unwrap();
    let h = node.handle();
    let data = junk(4 * 262_144, 40);
    h.publish_file(
        bytes::Bytes::from(data.clone()),
        "application/octet-stream".into(),
    )
    .await
    .expect("publish");
    let chunk = Id::hash_of(&data[..262_144]);

    // A small receive buffer, so the kernel cannot soak up what the node sends.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(h.listen_addr()).await.unwrap();
    let listen: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let mut p = RawPeer::over(stream, b"greedy", listen, None)
        .await
        .unwrap();
    const ASKED: u64 = 24;
    for i in 0..ASKED {
        let ask = Message {
            sender: p.id,
            rpc: RpcId(100 + i),
            body: Body::GetBlock { id: chunk },
        };
        p.send(&ask).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (mut blocks, mut busy) = (0, 0);
    while blocks + busy < ASKED {
        match p.recv_within(Duration::from_secs(3)).await.map(|m| m.body) {
            Some(Body::Block { .. }) => blocks += 1,
            Some(Body::Busy { .. }) => busy += 1,
            Some(other) => panic!("unexpected {other:?}"),
            None => break,
        }
    }
    let counters = h.status().await.unwrap().transport;
    assert_eq!(
        blocks + busy,
        ASKED,
        "{blocks} blocks, {busy} busy; {counters:?}"
    );
    assert!(blocks > 0, "the block is served while there is room");
    assert!(counters.busy_for_full_queue > 0, "{counters:?}");
    node.stop().await;
}

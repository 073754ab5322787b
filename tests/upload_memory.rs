//! Publishing a large file through a running `distroweb node` keeps the node's
//! memory flat: the upload streams to the store a few chunks at a time. The
//! content then reads back through the node byte for byte.
//!
//! `DISTROWEB_UPLOAD_MIB` sets the size (256 MiB by default; the 1 GiB figure
//! in the docs comes from `DISTROWEB_UPLOAD_MIB=1024`). Run with `--nocapture`
//! to see the figures.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{distroweb, free_ports, temp_dir, wait_for_port};

/// The most the node's resident memory may grow while publishing, whatever the size.
const MAX_GROWTH_KIB: u64 = 64 * 1024;

/// A field of `/proc/<pid>/status` in KiB (`VmRSS`, `VmHWM`), while the process lives.
fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse().ok())
}

/// Writes `len` pseudo-random bytes (every chunk distinct) to `path`, returning their hash.
fn write_random(path: &PathBuf, len: usize) -> blake3::Hash {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut hasher = blake3::Hasher::new();
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut buf = vec![0u8; 1 << 20];
    for _ in 0..len / buf.len() {
        for b in buf.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b.copy_from_slice(&x.to_le_bytes());
        }
        hasher.update(&buf);
        out.write_all(&buf).unwrap();
    }
    out.flush().unwrap();
    hasher.finalize()
}

/// Reads the site at `url` (`http://<b32>.localhost:<port>/`) through the proxy
/// on `port`, hashing the body as it streams; returns its length and hash.
fn read_back(port: u16, url: &str) -> (u64, blake3::Hash) {
    let host = url
        .strip_prefix("http://")
        .and_then(|u| u.strip_suffix('/'))
        .expect("a site URL");
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(
        s,
        "GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut r = BufReader::with_capacity(1 << 20, s);
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    assert!(line.starts_with("HTTP/1.1 200"), "{line}");
    loop {
        line.clear();
        r.read_line(&mut line).unwrap();
        if line == "\r\n" {
            break;
        }
    }
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0u64;
    loop {
        let n = r.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        len += n as u64;
    }
    (len, hasher.finalize())
}

struct Node(Child);

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn publishing_a_large_file_keeps_the_node_memory_flat() {
    let mib: usize = std::env::var("DISTROWEB_UPLOAD_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let dir = temp_dir("upload-memory");
    let port = free_ports();
    let node = Node(
        distroweb()
            .args(["node", "--listen", "127.0.0.1:0", "--proxy"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data-dir")
            .arg(dir.join("data"))
            .args(["--store-gib", &(mib / 1024 + 1).to_string()])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let pid = node.0.id();
    wait_for_port(port);
    let file = dir.join("big.bin");
    let hash = write_random(&file, mib << 20);
    // Idle, once it has answered a request (its HTTP stack is warm).
    let status = distroweb()
        .args([
            "get",
            &"0".repeat(64),
            "--proxy",
            &format!("127.0.0.1:{port}"),
        ])
        .output()
        .unwrap();
    drop(status);
    std::thread::sleep(Duration::from_millis(300));
    let idle = status_kib(pid, "VmRSS").unwrap();

    let started = Instant::now();
    let mut publish = distroweb()
        .arg("publish")
        .arg(&file)
        .args(["--proxy", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The publisher's own peak, sampled while it runs (a reaped process has no status).
    let mut publisher_peak = 0;
    while publish.try_wait().unwrap().is_none() {
        if let Some(hwm) = status_kib(publish.id(), "VmHWM") {
            publisher_peak = publisher_peak.max(hwm);
        }
        assert!(
            started.elapsed() < Duration::from_secs(60 + 30 * (mib as u64 >> 8)),
            "the publish takes too long"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let elapsed = started.elapsed();
    let out = publish.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let peak = status_kib(pid, "VmHWM").unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let url = stdout.lines().nth(1).expect("the URL").to_string();

    let read = Instant::now();
    let (len, got) = read_back(port, &url);
    eprintln!(
        "published {mib} MiB in {:.1} s ({:.0} MiB/s); node RSS idle {} MiB, peak {} MiB \
         (growth {} MiB); publisher peak {} MiB; read back in {:.1} s",
        elapsed.as_secs_f64(),
        mib as f64 / elapsed.as_secs_f64(),
        idle >> 10,
        peak >> 10,
        peak.saturating_sub(idle) >> 10,
        publisher_peak >> 10,
        read.elapsed().as_secs_f64(),
    );
    assert_eq!(len, (mib as u64) << 20);
    assert_eq!(got, hash, "the content reads back byte for byte");
    assert!(
        peak.saturating_sub(idle) < MAX_GROWTH_KIB,
        "the node grew from {idle} KiB to {peak} KiB while publishing"
    );
    assert!(
        publisher_peak < MAX_GROWTH_KIB,
        "the publisher took {publisher_peak} KiB"
    );
    drop(node);
    let _ = std::fs::remove_dir_all(&dir);
}

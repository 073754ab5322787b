//! Helpers the binary's integration tests share: the binary, a scratch
//! directory, and waiting for a node to listen.

// Each test binary includes this module and uses only some of it.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// The `distroweb` binary cargo built for these tests.
pub fn distroweb() -> Command {
    Command::new(env!("CARGO_BIN_EXE_distroweb"))
}

/// `distroweb testnet --nodes N` with proxies from `port` and `extra`
/// arguments, once it has printed its banner (within 30 s); returns the
/// child and the banner.
pub fn testnet(nodes: u16, port: u16, extra: &[&std::ffi::OsStr]) -> (std::process::Child, String) {
    use std::io::{BufRead, BufReader};
    let mut child = distroweb()
        .args([
            "testnet",
            "--nodes",
            &nodes.to_string(),
            "--proxy-port",
            &port.to_string(),
        ])
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let started = Instant::now();
    let mut banner = String::new();
    while !banner.contains("Press Ctrl-C") {
        let line = lines.next().expect("testnet prints its banner").unwrap();
        banner.push_str(&line);
        banner.push('\n');
        assert!(started.elapsed() < Duration::from_secs(30), "{banner}");
    }
    (child, banner)
}

/// A fresh, empty directory for one test (`name` keeps tests apart).
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("distroweb-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Waits (up to 30 s) until something listens on 127.0.0.1:`port`.
pub fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A port `p` such that `p` to `p + 4` are free on 127.0.0.1 right now.
///
/// Why not ports the kernel hands out: they lie in the ephemeral range, so
/// between this check and the binary binding them, any connection or
/// `bind(0)` of a parallel test could take one. These come from below that
/// range (Linux starts it at 32768), a distinct block per call, starting at
/// a place chosen by the process id so parallel test binaries stay apart.
pub fn free_ports() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    const LOW: u32 = 20_000;
    const WIDTH: u32 = 5;
    const BLOCKS: u32 = 2_400; // 5 ports each: 20,000..32,000
    let start = std::process::id() % BLOCKS;
    for _ in 0..BLOCKS {
        let block = (start + NEXT.fetch_add(1, Ordering::Relaxed)) % BLOCKS;
        let p = (LOW + WIDTH * block) as u16;
        let all: Vec<_> = (0..WIDTH as u16)
            .map(|i| std::net::TcpListener::bind(("127.0.0.1", p + i)))
            .collect();
        if all.iter().all(Result::is_ok) {
            return p;
        }
    }
    panic!("no five consecutive free ports below the ephemeral range");
}

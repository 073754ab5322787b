//! Helpers the binary's integration tests share: the binary, a scratch
//! directory, and waiting for a node to listen.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// The `distroweb` binary cargo built for these tests.
pub fn distroweb() -> Command {
    Command::new(env!("CARGO_BIN_EXE_distroweb"))
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

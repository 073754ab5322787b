//! `distroweb testnet` as a person runs it: many nodes started and joined at
//! once, provider lookups among them (`--bench`), and a refusal that names
//! the open-file limit when it is too low. Timing is printed, never asserted.

mod common;

use common::distroweb;

/// 64 nodes start and join concurrently, every one joins, and every provider
/// lookup from a random node finds the page's publisher.
#[test]
fn a_testnet_of_64_joins_and_every_lookup_finds_its_provider() {
    let out = distroweb()
        .args([
            "testnet",
            "--nodes",
            "64",
            "--proxy-port",
            "0",
            "--bench",
            "--lookups",
            "60",
        ])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("64 nodes started in "), "{stdout}");
    assert!(stdout.contains("64 of 64 nodes joined in "), "{stdout}");
    assert!(
        stdout.contains("published 32 pages from 8 nodes"),
        "{stdout}"
    );
    assert!(
        stdout.contains("60 of 60 provider lookups from random nodes found the publisher"),
        "{stdout}"
    );
    // The connection budget held: no dial failed or was refused.
    let after = stdout
        .lines()
        .find(|l| l.starts_with("after the lookups:"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(after.contains("dials failed 0, dials refused 0"), "{after}");
    println!("{stdout}");
}

/// Below what the nodes need, the testnet refuses at once, naming the limit
/// and how to raise it, rather than failing connections later.
#[cfg(target_os = "linux")]
#[test]
fn too_low_an_open_file_limit_is_refused_with_the_limit_named() {
    let bin = env!("CARGO_BIN_EXE_distroweb");
    // `ulimit -n` sets both limits in the child shell: the hard one too, so
    // the testnet cannot raise it.
    let out = std::process::Command::new("sh")
        .args([
            "-c",
            &format!("ulimit -n 1000 && exec {bin} testnet --nodes 64 --proxy-port 0"),
        ])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("at most 1000 (RLIMIT_NOFILE"), "{stderr}");
    assert!(stderr.contains("ulimit -Hn"), "{stderr}");
    assert!(stderr.contains("Run at most 14 nodes here"), "{stderr}");
}

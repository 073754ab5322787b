//! The `distroweb` binary as a person runs it, on 127.0.0.1: a testnet, then
//! `publish` and `get` against its proxies, then a clean stop on SIGTERM.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{distroweb, free_ports, temp_dir, wait_for_port};

fn same_tree(a: &Path, b: &Path) {
    for entry in std::fs::read_dir(a).unwrap() {
        let entry = entry.unwrap();
        let other = b.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            same_tree(&entry.path(), &other);
        } else {
            assert_eq!(
                std::fs::read(entry.path()).unwrap(),
                std::fs::read(&other).unwrap(),
                "{other:?}"
            );
        }
    }
}

/// `distroweb publish DIR --proxy 127.0.0.1:PORT`.
fn publish(dir: &Path, port: u16) -> std::process::Output {
    distroweb()
        .arg("publish")
        .arg(dir)
        .args(["--proxy", &format!("127.0.0.1:{port}")])
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap()
}

#[test]
fn publish_without_a_node_says_how_to_start_one() {
    let dir = temp_dir("cli-nonode");
    std::fs::write(dir.join("index.html"), "<p>hi</p>").unwrap();
    let port = free_ports();
    let out = publish(&dir, port);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no distroweb node is running"), "{err}");
    assert!(err.contains("distroweb node"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn testnet_then_publish_then_get_through_another_node() {
    let port = free_ports();
    let (testnet, banner) = common::testnet(3, port, &[]);
    for i in 0..3 {
        assert!(
            banner.contains(&format!("proxy http://127.0.0.1:{}/", port + i)),
            "{banner}"
        );
    }

    let site = temp_dir("cli-site");
    std::fs::create_dir_all(site.join("css")).unwrap();
    std::fs::write(
        site.join("index.html"),
        "<link rel=stylesheet href=css/a.css><h1>hi</h1>",
    )
    .unwrap();
    std::fs::write(site.join("css/a.css"), "h1{color:red}").unwrap();
    std::fs::write(site.join(".secret"), "left out").unwrap();
    let out = publish(&site, port);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let mut printed = stdout.lines();
    let id = printed.next().unwrap().to_string();
    assert_eq!(id.len(), 64);
    let id_b32 = distroweb_proxy::origin::to_base32(&id.parse().unwrap());
    assert_eq!(
        printed.next(),
        Some(format!("http://{id_b32}.localhost:{port}/").as_str())
    );

    // A symbolic link that leads out of the directory is refused, naming it;
    // one that stays inside is fine; --follow-symlinks publishes what it points to.
    let outside = temp_dir("cli-outside");
    std::fs::write(outside.join("id_ed25519"), "PRIVATE KEY").unwrap();
    let linked = temp_dir("cli-linked");
    std::fs::write(linked.join("index.html"), "<h1>links</h1>").unwrap();
    std::os::unix::fs::symlink(outside.join("id_ed25519"), linked.join("key.txt")).unwrap();
    std::os::unix::fs::symlink("index.html", linked.join("home.html")).unwrap();
    let out = publish(&linked, port);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("key.txt") && stderr.contains("--follow-symlinks"),
        "{stderr}"
    );
    assert!(!stderr.contains("home.html"), "{stderr}");
    std::fs::remove_file(linked.join("key.txt")).unwrap();
    let out = publish(&linked, port);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::os::unix::fs::symlink(outside.join("id_ed25519"), linked.join("key.txt")).unwrap();
    let out = distroweb()
        .arg("publish")
        .arg(&linked)
        .args(["--proxy", &format!("127.0.0.1:{port}"), "--follow-symlinks"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&outside);
    let _ = std::fs::remove_dir_all(&linked);

    // Either id form names the content.
    let copy = temp_dir("cli-copy").join("site");
    let out = distroweb()
        .args([
            "get",
            &id_b32,
            "-o",
            copy.to_str().unwrap(),
            "--proxy",
            &format!("127.0.0.1:{}", port + 2),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_file(site.join(".secret")).unwrap();
    same_tree(&site, &copy);
    same_tree(&copy, &site);

    // SIGTERM stops every node cleanly.
    terminate(testnet);
    std::fs::remove_dir_all(&site).unwrap();
    let _ = std::fs::remove_dir_all(copy.parent().unwrap());
}

/// `distroweb get ID --proxy 127.0.0.1:PORT` prints `expected`.
fn assert_get(id: &str, port: u16, expected: &str) {
    let out = distroweb()
        .args(["get", id, "--proxy", &format!("127.0.0.1:{port}")])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        expected,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Sends SIGTERM to `child` and checks that it exits cleanly.
fn terminate(mut child: std::process::Child) {
    assert!(Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

/// `distroweb node` on 127.0.0.1 with its proxy on `port`, keeping its data in
/// `data`, with `extra` arguments.
fn spawn_node(port: u16, data: &Path, extra: &[String]) -> std::process::Child {
    distroweb()
        .args(["node", "--listen", "127.0.0.1:0", "--proxy"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(data)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Every file under `dir`, recursively.
fn count_files(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => count_files(&e.path()),
            _ => 1,
        })
        .sum()
}

/// A node killed (SIGKILL) in the middle of publishing leaves blocks that no
/// held content names; the next start on the same data directory deletes them,
/// keeps what was published before, and is not locked out by the dead process
/// (still a zombie here: its pid exists, its flock does not).
#[test]
fn orphan_blocks_are_collected_after_a_crash_during_publish() {
    let dir = temp_dir("cli-crash");
    let data = dir.join("data");
    let port = free_ports();
    let node = || spawn_node(port, &data, &[]);
    let mut first = node();
    wait_for_port(port);
    std::fs::write(dir.join("kept.txt"), "published before the crash").unwrap();
    let out = publish(&dir.join("kept.txt"), port);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let kept_id = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_string();
    let blocks = data.join("blocks");
    let kept_blocks = count_files(&blocks);
    assert!(kept_blocks >= 1);

    // 96 MiB is 384 chunks, each written and fsynced: the kill lands mid-way.
    // Distinct chunks (xorshift), so every one is a block of its own.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let big: Vec<u8> = (0..96usize << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(dir.join("big.bin"), &big).unwrap();
    drop(big);
    let mut publishing = distroweb()
        .arg("publish")
        .arg(dir.join("big.bin"))
        .args(["--proxy", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while count_files(&blocks) < kept_blocks + 8 {
        assert!(
            Instant::now() < deadline,
            "the publish never started writing"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    first.kill().unwrap(); // SIGKILL, not reaped yet
    let _ = publishing.wait();
    let orphaned = count_files(&blocks);
    assert!(orphaned >= kept_blocks + 8, "{orphaned}");

    let second = node();
    wait_for_port(port);
    assert_eq!(
        count_files(&blocks),
        kept_blocks,
        "the blocks of the interrupted publish are gone, the rest kept"
    );
    assert_get(&kept_id, port, "published before the crash");
    let _ = first.wait();
    terminate(second);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `distroweb node --api ADDR`: `publish` works through the API's own address
/// and prints the site's URL on the proxy's port, where `get` reads it back.
#[test]
fn publish_through_the_api_address() {
    let dir = temp_dir("cli-api");
    let port = free_ports();
    let api = port + 1;
    let node = spawn_node(
        port,
        &dir.join("data"),
        &["--api".into(), format!("127.0.0.1:{api}")],
    );
    wait_for_port(port);
    wait_for_port(api);
    std::fs::write(dir.join("note.txt"), "through the API address").unwrap();
    let out = publish(&dir.join("note.txt"), api);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let mut printed = stdout.lines();
    let id = printed.next().unwrap().to_string();
    let id_b32 = distroweb_proxy::origin::to_base32(&id.parse().unwrap());
    assert_eq!(
        printed.next(),
        Some(format!("http://{id_b32}.localhost:{port}/").as_str())
    );
    assert_get(&id, port, "through the API address");
    terminate(node);
    let _ = std::fs::remove_dir_all(&dir);
}

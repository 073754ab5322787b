//! churn and flash-crowd write what they promise: exact columns, rates in range,
//! the swarm sparing the publisher, and byte-identical CSV for the same seed.

use std::fs;
use std::path::PathBuf;

use distroweb_experiments::{churn, flash_crowd, ChurnArgs, Common, FlashCrowdArgs};

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("distroweb-exp-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    d
}

fn common(out: PathBuf, seed: u64) -> Common {
    Common {
        seed,
        out,
        quick: true,
    }
}

#[test]
fn flash_crowd_at_1000_requesters_spares_the_publisher_tenfold() {
    let out = dir("flash");
    let args = FlashCrowdArgs {
        common: common(out.clone(), 4),
        requesters: vec![1_000],
        window_s: 10.0,
        content_bytes: None,
    };
    let runs = flash_crowd::run(&args, "test").expect("flash-crowd");
    let text = fs::read_to_string(out.join("flash_crowd.csv")).expect("csv");
    assert_eq!(
        text.lines().next(),
        Some(
            "mode,requesters,window_s,content_bytes,origin_upload_bytes,origin_copies,\
             completion_s_p50,completion_s_p99,served_by_peers_frac,success_rate"
        )
    );
    assert_eq!(text.lines().count(), 1 + 4);
    let row = |mode: &str| {
        &runs
            .iter()
            .find(|r| r.row.mode == mode)
            .unwrap_or_else(|| panic!("no {mode} row"))
            .row
    };
    let (swarm, origin) = (row("distroweb"), row("origin-only"));
    for r in runs.iter().map(|r| &r.row) {
        assert_eq!(r.requesters, 1_000);
        assert!((0.0..=1.0).contains(&r.success_rate), "{r:?}");
        assert!((0.0..=1.0).contains(&r.served_by_peers_frac), "{r:?}");
        assert!(r.completion_s_p99 >= r.completion_s_p50, "{r:?}");
    }
    assert!(swarm.success_rate >= 0.99, "{swarm:?}");
    assert!(swarm.served_by_peers_frac > 0.8, "{swarm:?}");
    assert_eq!(origin.served_by_peers_frac, 0.0, "{origin:?}");
    assert!(
        swarm.origin_upload_bytes * 10 <= origin.origin_upload_bytes,
        "distroweb {} vs origin-only {}",
        swarm.origin_upload_bytes,
        origin.origin_upload_bytes
    );
    let svg = fs::read_to_string(out.join("flash_crowd.svg")).expect("svg");
    assert!(svg.starts_with("<svg") && svg.contains("origin-only"));
    let json: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(out.join("flash_crowd.json")).expect("json"))
            .expect("json");
    assert_eq!(json["plan"]["seed"], 4);
    assert_eq!(json["config"]["seed"], 4);
    assert_eq!(json["version"], env!("CARGO_PKG_VERSION"));
    let _ = fs::remove_dir_all(out);
}

fn churn_args(out: PathBuf, seed: u64) -> ChurnArgs {
    ChurnArgs {
        common: common(out, seed),
        nodes: Some(200),
        session_median_min: vec![1.4, 15.0],
        warmup_min: Some(5),
        measure_min: Some(3),
    }
}

#[test]
fn churn_csv_is_complete_and_byte_identical_for_a_seed() {
    let (a, b) = (dir("churn-a"), dir("churn-b"));
    let rows = churn::run(&churn_args(a.clone(), 7), "test").expect("churn a");
    churn::run(&churn_args(b.clone(), 7), "test").expect("churn b");
    let csv = fs::read(a.join("churn.csv")).expect("csv a");
    assert_eq!(csv, fs::read(b.join("churn.csv")).expect("csv b"));
    let text = String::from_utf8(csv).expect("utf-8");
    assert_eq!(
        text.lines().next(),
        Some(
            "nodes,session_median_s,session_shape,lookups,success_rate,latency_ms_p50,\
             latency_ms_p99,maintenance_bytes_per_node_s,content_availability"
        )
    );
    assert_eq!(rows.len(), 2);
    for r in &rows {
        assert!(r.lookups > 20, "{r:?}");
        assert!((0.6..=1.0).contains(&r.success_rate), "{r:?}");
        assert!((0.5..=1.0).contains(&r.content_availability), "{r:?}");
        assert!(r.maintenance_bytes_per_node_s > 0.0, "{r:?}");
        assert!(r.latency_ms_p99 >= r.latency_ms_p50 && r.latency_ms_p50 > 0.0);
    }
    // Shorter sessions cost more upkeep: more joins, more refreshes.
    assert!(
        rows[0].maintenance_bytes_per_node_s > rows[1].maintenance_bytes_per_node_s,
        "{rows:?}"
    );
    assert!(fs::read_to_string(a.join("churn.svg"))
        .expect("svg")
        .contains("maintenance"));
    for d in [a, b] {
        let _ = fs::remove_dir_all(d);
    }
}

#[test]
fn flash_crowd_csv_is_byte_identical_for_a_seed() {
    let (a, b) = (dir("flash-a"), dir("flash-b"));
    let args = |out| FlashCrowdArgs {
        common: common(out, 2),
        requesters: vec![30],
        window_s: 5.0,
        content_bytes: Some(100_000),
    };
    flash_crowd::run(&args(a.clone()), "test").expect("flash a");
    flash_crowd::run(&args(b.clone()), "test").expect("flash b");
    assert_eq!(
        fs::read(a.join("flash_crowd.csv")).expect("csv a"),
        fs::read(b.join("flash_crowd.csv")).expect("csv b")
    );
    for d in [a, b] {
        let _ = fs::remove_dir_all(d);
    }
}

//! The experiments write what they promise: exact columns, plausible values, and
//! byte-identical CSV for the same seed.

use std::fs;
use std::path::PathBuf;

use distroweb_experiments::{hops, scale, Common, HopsArgs, ScaleArgs};

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("distroweb-exp-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    d
}

fn hops_args(out: PathBuf, seed: u64) -> HopsArgs {
    HopsArgs {
        common: Common {
            seed,
            out,
            quick: true,
        },
        nodes: vec![40, 120],
        lookups: Some(60),
        join_refreshes: None,
        metrics: Vec::new(),
        strategies: Vec::new(),
        forwarding: None,
        route_width: None,
    }
}

#[test]
fn hops_csv_is_complete_and_byte_identical_for_a_seed() {
    let (a, b, c) = (dir("hops-a"), dir("hops-b"), dir("hops-c"));
    let rows = hops::run(&hops_args(a.clone(), 9), "test").expect("hops a");
    hops::run(&hops_args(b.clone(), 9), "test").expect("hops b");
    hops::run(&hops_args(c.clone(), 10), "test").expect("hops c");
    let csv_a = fs::read(a.join("hops.csv")).expect("csv a");
    assert_eq!(csv_a, fs::read(b.join("hops.csv")).expect("csv b"));
    let text = String::from_utf8(csv_a).expect("utf-8");
    assert_eq!(
        text.lines().next(),
        Some(
            "nodes,strategy,metric,lookups,success_rate,hops_mean,hops_p50,hops_p99,\
             latency_ms_p50,latency_ms_p99,messages_per_lookup,log2_n"
        )
    );
    // Two sizes, both strategies, every registered metric.
    let expected = 2 * 2 * distroweb_protocol::Metric::ALL.len();
    assert_eq!(text.lines().count(), 1 + expected);
    assert_eq!(rows.len(), expected);
    for r in &rows {
        assert_eq!(r.lookups, 60);
        assert!(r.success_rate >= 0.95, "{r:?}");
        assert!(r.hops_mean < r.log2_n, "{r:?}");
        // At 40 nodes half the nodes track every key, so many lookups take no hop.
        assert!(r.latency_ms_p99 > 0.0 && r.latency_ms_p99 >= r.latency_ms_p50);
    }
    let svg = fs::read_to_string(a.join("hops.svg")).expect("svg");
    assert!(svg.starts_with("<svg") && svg.contains("log2 N"));
    let json: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(a.join("hops.json")).expect("json"))
            .expect("json");
    assert_eq!(json["plan"]["seed"], 9);
    assert_eq!(json["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(json["runs"].as_array().map(Vec::len), Some(expected));
    let other: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(c.join("hops.json")).expect("json"))
            .expect("json");
    assert_ne!(json["runs"][0]["digest"], other["runs"][0]["digest"]);
    for d in [a, b, c] {
        let _ = fs::remove_dir_all(d);
    }
}

#[test]
fn scale_csv_has_the_promised_columns() {
    let out = dir("scale");
    let args = ScaleArgs {
        common: Common {
            seed: 3,
            out: out.clone(),
            quick: true,
        },
        nodes: vec![300],
        join_refreshes: 0,
    };
    let rows = scale::run(&args, "test").expect("scale");
    let text = fs::read_to_string(out.join("scale.csv")).expect("csv");
    assert_eq!(
        text.lines().next(),
        Some(
            "nodes,lookups,events,wall_s,events_per_s,peak_rss_bytes,bytes_per_node,\
             success_rate,hops_mean"
        )
    );
    let r = &rows[0];
    assert_eq!((r.nodes, r.lookups), (300, 300));
    assert!(r.events > 10_000 && r.events_per_s > 0.0);
    assert!(r.success_rate >= 0.99, "{r:?}");
    assert!(r.peak_rss_bytes > 0);
    assert!(out.join("scale.svg").exists() && out.join("scale.json").exists());
    let _ = fs::remove_dir_all(out);
}

//! The `--quick` experiments, pinned. Each test runs one experiment at a fixed
//! seed and compares its CSV, byte for byte, and every run's trace digest with
//! the snapshot files in `experiments/tests/snapshots/`; scale's wall-clock and
//! memory columns, which no seed fixes, are left out of its snapshot.
//!
//! A seeded run is an exact function of its seed, so a snapshot that no longer
//! matches is a change in behaviour, however small. Check that the change is
//! the one intended, then regenerate every snapshot with one command:
//!
//! ```sh
//! DISTROWEB_BLESS=1 cargo test -p distroweb-experiments --release --test quick
//! ```
//!
//! and commit the new snapshots with the change that explains them. Beside the
//! snapshots each test checks the claim its experiment exists to show (the swarm
//! spares the publisher, shorter sessions cost more upkeep, ...), so that a
//! regression cannot be blessed without a failing assertion.

use std::fs;
use std::path::{Path, PathBuf};

use distroweb_experiments::nat::{self, NatArgs};
use distroweb_experiments::{
    adversary, churn, flash_crowd, hops, scale, update, AdversaryArgs, ChurnArgs, Common,
    FlashCrowdArgs, HopsArgs, ScaleArgs, UpdateArgs,
};

/// The variable that makes the tests write snapshots instead of comparing.
const BLESS: &str = "DISTROWEB_BLESS";
/// The command that regenerates every snapshot.
const REGENERATE: &str =
    "DISTROWEB_BLESS=1 cargo test -p distroweb-experiments --release --test quick";

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
        overrides: Default::default(),
    }
}

/// Compares `actual` with the snapshot `name`, or writes it when blessing.
fn snapshot(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(name);
    if std::env::var_os(BLESS).is_some_and(|v| v == "1") {
        fs::create_dir_all(path.parent().expect("a parent")).expect("snapshot directory");
        fs::write(&path, actual).expect("write snapshot");
        return;
    }
    let expected = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) => panic!(
            "no snapshot {} ({e}); create it with:\n    {REGENERATE}",
            path.display()
        ),
    };
    if expected != actual {
        panic!(
            "snapshot {name} differs from this run:\n{}\nIf the change is intended, regenerate \
             every snapshot with:\n    {REGENERATE}",
            diff(&expected, actual)
        );
    }
}

/// The first differing line, then every differing line (`-` snapshot, `+` this run).
fn diff(expected: &str, actual: &str) -> String {
    let (e, a): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), actual.lines().collect());
    let mut out = String::new();
    let mut shown = 0;
    for i in 0..e.len().max(a.len()) {
        let (x, y) = (e.get(i), a.get(i));
        if x == y {
            continue;
        }
        if shown == 0 {
            out += &format!("first difference at line {}:\n", i + 1);
        }
        if shown == 20 {
            out += "  ... (more lines differ)\n";
            break;
        }
        if let Some(x) = x {
            out += &format!("  {:>4} - {x}\n", i + 1);
        }
        if let Some(y) = y {
            out += &format!("  {:>4} + {y}\n", i + 1);
        }
        shown += 1;
    }
    if shown == 0 {
        out += "the lines agree; the files differ in line endings or a final newline\n";
    }
    out
}

/// Each run of the experiment whose JSON record is `json`: label, seed, events
/// and trace digest, one line a run.
fn digests(json: &serde_json::Value) -> String {
    let runs = json["runs"].as_array().expect("runs");
    assert!(!runs.is_empty(), "a record without runs");
    let mut out = String::from("label\tseed\tevents\tdigest\n");
    for r in runs {
        out += &format!(
            "{}\t{}\t{}\t{}\n",
            r["label"].as_str().expect("label"),
            r["seed"],
            r["events"],
            r["digest"].as_str().expect("digest")
        );
    }
    out
}

fn read_json(path: PathBuf) -> serde_json::Value {
    serde_json::from_str(&fs::read_to_string(path).expect("json")).expect("valid json")
}

/// Pins experiment `name`'s output in `out`: `figures` of its CSV as
/// `<name>.csv`, its runs' digests as `<name>.digests`. Returns its JSON record.
fn pin(out: &Path, name: &str, figures: impl Fn(&str) -> String) -> serde_json::Value {
    let csv = fs::read_to_string(out.join(format!("{name}.csv"))).expect("csv");
    let json = read_json(out.join(format!("{name}.json")));
    snapshot(&format!("{name}.csv"), &figures(&csv));
    snapshot(&format!("{name}.digests"), &digests(&json));
    json
}

/// Only the named columns of a CSV, in their order.
fn columns(csv: &str, keep: &[&str]) -> String {
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().expect("a header").split(',').collect();
    let at: Vec<usize> = keep
        .iter()
        .map(|k| {
            header
                .iter()
                .position(|h| h == k)
                .unwrap_or_else(|| panic!("no column {k}"))
        })
        .collect();
    let mut out = keep.join(",") + "\n";
    for line in lines {
        let cells: Vec<&str> = line.split(',').collect();
        out += &at.iter().map(|&i| cells[i]).collect::<Vec<_>>().join(",");
        out += "\n";
    }
    out
}

fn hops_args(out: PathBuf, seed: u64) -> HopsArgs {
    HopsArgs {
        common: common(out, seed),
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
fn hops_figures_and_digests_are_pinned() {
    let (a, b) = (dir("hops"), dir("hops-other"));
    let rows = hops::run(&hops_args(a.clone(), 9), "test").expect("hops");
    hops::run(&hops_args(b.clone(), 10), "test").expect("hops, seed 10");
    let json = pin(&a, "hops", str::to_owned);
    // Two sizes, both strategies, every registered metric.
    assert_eq!(rows.len(), 2 * 2 * distroweb_protocol::Metric::ALL.len());
    for r in &rows {
        assert!(r.hops_mean < r.log2_n, "{r:?}");
    }
    let svg = fs::read_to_string(a.join("hops.svg")).expect("svg");
    assert!(svg.starts_with("<svg") && svg.contains("log2 N"));
    assert_eq!(json["plan"]["seed"], 9);
    assert_eq!(json["version"], env!("CARGO_PKG_VERSION"));
    let other = read_json(b.join("hops.json"));
    assert_ne!(json["runs"][0]["digest"], other["runs"][0]["digest"]);
    for d in [a, b] {
        let _ = fs::remove_dir_all(d);
    }
}

#[test]
fn scale_figures_and_digests_are_pinned() {
    let out = dir("scale");
    let args = ScaleArgs {
        common: common(out.clone(), 3),
        nodes: vec![300],
        join_refreshes: 0,
    };
    let rows = scale::run(&args, "test").expect("scale");
    let csv = fs::read_to_string(out.join("scale.csv")).expect("csv");
    assert_eq!(
        csv.lines().next(),
        Some(
            "nodes,lookups,events,wall_s,events_per_s,peak_rss_bytes,bytes_per_node,\
             success_rate,hops_mean"
        )
    );
    let deterministic = ["nodes", "lookups", "events", "success_rate", "hops_mean"];
    pin(&out, "scale", |csv| columns(csv, &deterministic));
    let r = &rows[0];
    assert!(r.events_per_s > 0.0 && r.peak_rss_bytes > 0, "{r:?}");
    assert!(out.join("scale.svg").exists());
    let _ = fs::remove_dir_all(out);
}

#[test]
fn flash_crowd_figures_and_digests_are_pinned_and_the_swarm_spares_the_publisher_tenfold() {
    let out = dir("flash");
    let args = FlashCrowdArgs {
        common: common(out.clone(), 4),
        requesters: vec![1_000],
        window_s: 10.0,
        content_bytes: None,
    };
    let runs = flash_crowd::run(&args, "test").expect("flash-crowd");
    let json = pin(&out, "flash_crowd", str::to_owned);
    let row = |mode: &str| {
        &runs
            .iter()
            .find(|r| r.row.mode == mode)
            .unwrap_or_else(|| panic!("no {mode} row"))
            .row
    };
    let (swarm, origin) = (row("distroweb"), row("origin-only"));
    assert_eq!(origin.served_by_peers_frac, 0.0, "{origin:?}");
    assert!(
        swarm.origin_upload_bytes * 10 <= origin.origin_upload_bytes,
        "distroweb {} vs origin-only {}",
        swarm.origin_upload_bytes,
        origin.origin_upload_bytes
    );
    let svg = fs::read_to_string(out.join("flash_crowd.svg")).expect("svg");
    assert!(svg.starts_with("<svg") && svg.contains("origin-only"));
    assert_eq!(json["plan"]["seed"], 4);
    assert_eq!(json["config"]["seed"], 4);
    assert_eq!(json["version"], env!("CARGO_PKG_VERSION"));
    let _ = fs::remove_dir_all(out);
}

#[test]
fn churn_figures_and_digests_are_pinned_and_short_sessions_cost_more_upkeep() {
    let out = dir("churn");
    let args = ChurnArgs {
        common: common(out.clone(), 7),
        nodes: Some(200),
        session_median_min: vec![1.4, 15.0],
        warmup_min: Some(5),
        measure_min: Some(3),
        adaptive_timeouts: false,
        unsampled_timeout: None,
    };
    let rows = churn::run(&args, "test").expect("churn");
    pin(&out, "churn", str::to_owned);
    // The runs over time, pinned in their own file beside churn's.
    let series = fs::read_to_string(out.join("churn.timeseries.csv")).expect("timeseries");
    snapshot("churn.timeseries.csv", &series);
    assert!(fs::read_to_string(out.join("churn.timeseries.svg"))
        .expect("timeseries svg")
        .contains("p99"));
    assert_eq!(rows.len(), 2);
    // Shorter sessions cost more upkeep: more joins, more refreshes.
    assert!(
        rows[0].maintenance_bytes_per_node_s > rows[1].maintenance_bytes_per_node_s,
        "{rows:?}"
    );
    assert!(fs::read_to_string(out.join("churn.svg"))
        .expect("svg")
        .contains("maintenance"));
    let _ = fs::remove_dir_all(out);
}

#[test]
fn adversary_figures_and_digests_are_pinned_and_disjoint_paths_beat_the_liars() {
    let out = dir("adversary");
    let args = AdversaryArgs {
        nodes: Some(200),
        percents: vec![0, 20],
        lookups: Some(100),
        ..AdversaryArgs::with(common(out.clone(), 5))
    };
    let rows = adversary::run(&args, "test").expect("adversary");
    pin(&out, "adversary", str::to_owned);
    assert_eq!(rows.len(), 4);
    let at = |lookup: &str, pct: u32| {
        rows.iter()
            .find(|r| r.lookup == lookup && r.adversary_percent == pct)
            .unwrap_or_else(|| panic!("no {lookup} {pct} row"))
    };
    assert_eq!(at("plain", 0).success_rate, 1.0);
    assert_eq!(at("disjoint", 0).success_rate, 1.0);
    let (plain, disjoint) = (at("plain", 20), at("disjoint", 20));
    assert!(disjoint.success_rate > plain.success_rate, "{rows:?}");
    assert!(disjoint.success_rate >= 0.95, "{disjoint:?}");
    assert!(rows.iter().all(|r| r.forged == 0));
    assert!(fs::read_to_string(out.join("adversary.svg"))
        .expect("svg")
        .contains("disjoint"));
    let _ = fs::remove_dir_all(out);
}

#[test]
fn update_figures_and_digests_are_pinned_the_same_on_one_and_two_threads_and_every_reader_updates_within_a_minute(
) {
    let (a, b) = (dir("update"), dir("update-one-thread"));
    let args = |out: PathBuf| UpdateArgs {
        nodes: Some(200),
        readers: Some(20),
        ..UpdateArgs::with(common(out, 6))
    };
    let runs = update::run_on(&args(a.clone()), "test", 2).expect("update");
    update::run_on(&args(b.clone()), "test", 1).expect("update, one thread");
    // Same seed, same bytes, whatever the number of threads.
    for file in ["update.csv", "update_readers.csv", "update.json"] {
        let (x, y) = (fs::read(a.join(file)), fs::read(b.join(file)));
        assert_eq!(x.expect(file), y.expect(file), "{file}");
    }
    let json = pin(&a, "update", str::to_owned);
    let readers = fs::read_to_string(a.join("update_readers.csv")).expect("csv");
    snapshot("update_readers.csv", &readers);
    assert_eq!(runs.len(), 2);
    let quiet = &runs[0];
    assert_eq!(quiet.row.churn, "off");
    assert_eq!(quiet.row.resolution_success, 1.0, "{:?}", quiet.row);
    // Every reader of the quiet run is on the new version within 60 s, and
    // learns of it at one of its visits (a resolution walks for well under
    // a second): the visit period sets the pace.
    assert_eq!(quiet.row.updated_60s_frac, 1.0, "{:?}", quiet.row);
    let visit = quiet.row.visit_s;
    for r in &quiet.readers {
        let at = r.updated_s.expect("updated");
        let since_visit = (at - r.first_visit_s).rem_euclid(visit);
        assert!(since_visit < 1.0, "{r:?}");
    }
    assert!(fs::read_to_string(a.join("update.svg"))
        .expect("svg")
        .contains("no churn"));
    assert_eq!(json["plan"]["seed"], 6);
    for d in [a, b] {
        let _ = fs::remove_dir_all(d);
    }
}

#[test]
fn nat_figures_and_digests_are_pinned_and_client_mode_and_relays_win_back_what_nats_cost() {
    let out = dir("nat");
    let args = NatArgs::with(common(out.clone(), 8));
    let rows = nat::run(&args, "test").expect("nat");
    pin(&out, "nat", str::to_owned);
    assert_eq!(rows.len(), 6, "three modes at 0 and 80 %");
    let at = |mode: &str, pct: u32| {
        rows.iter()
            .find(|r| r.mode == mode && r.nated_percent == pct)
            .unwrap_or_else(|| panic!("no {mode} {pct} row"))
    };
    let (naive, client, relays) = (at("naive", 80), at("client", 80), at("relays", 80));
    // Naive NATed nodes sit in routing tables at addresses that drop what
    // they did not ask for: lookups wait out timeouts on them. In client mode
    // nobody routes through them.
    assert!(naive.nat_blocked > 0, "{naive:?}");
    assert!(
        client.lookup_ms_p90 * 2.0 < naive.lookup_ms_p90,
        "client {client:?} naive {naive:?}"
    );
    assert!(client.lookup_success >= naive.lookup_success);
    assert_eq!(client.lookup_success, 1.0, "{client:?}");
    // What a NATed node publishes: no record names it in client mode; with
    // relays, readers reach it through its relay, mostly upgraded to direct.
    assert_eq!(client.nated_fetch_success, 0.0, "{client:?}");
    assert!(relays.nated_fetch_success >= 0.9, "{relays:?}");
    assert!(
        relays.relayed_messages > 0 && relays.punches > 0,
        "{relays:?}"
    );
    assert!(relays.via_direct < 0.5, "the relay, not luck: {relays:?}");
    // Content from public publishers is fetched in every mode that keeps
    // lookups clean.
    assert_eq!(client.public_fetch_success, 1.0, "{client:?}");
    assert!(fs::read_to_string(out.join("nat.svg"))
        .expect("svg")
        .contains("relays"));
    let _ = fs::remove_dir_all(out);
}

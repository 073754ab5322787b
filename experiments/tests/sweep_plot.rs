//! A sweep's declared plot (`[plot]`): checked with the rest of the scenario
//! before anything runs, drawn beside the sweep's CSV, the same bytes on a
//! second run and after a merge of shards; the frontier is the lower-left
//! convex hull; the experiments' columns it checks against are their CSVs'.

use std::fs;
use std::path::{Path, PathBuf};

use distroweb_experiments::scenario::{self, sweep_plot, Options, Problem};

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("distroweb-plot-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    d
}

fn options(out: &Path, quick: bool) -> Options {
    Options {
        set: Vec::new(),
        seed: None,
        out: out.to_path_buf(),
        quick,
    }
}

/// Four hops runs of 24 nodes: a second or so in release mode.
const SWEEP: &str = r#"
experiment = "hops"
seed = 4

[args]
nodes = [24]
lookups = 8
metrics = ["xor"]
strategies = ["iterative"]

[sweep]
"protocol.dht.alpha" = [1, 3]
args.lookups = [5, 10]
"#;

/// The message of the error `text` gives, checked to name the file, line and key.
fn refused(text: &str, line: usize, key: &str) -> String {
    let e =
        scenario::plan(text, "study.toml", &options(Path::new("o"), true)).expect_err("refused");
    let message = e.to_string();
    assert!(
        message.starts_with(&format!("study.toml:{line}: `{key}`: ")),
        "{message}"
    );
    message
}

#[test]
fn an_unknown_column_is_refused_naming_file_line_and_key() {
    // SWEEP has 14 lines before the plot; the [plot] header is line 15.
    let text = format!("{SWEEP}\n[plot]\nx = \"protocol.dht.alpha\"\ny = \"mesages_per_lookup\"\n");
    let message = refused(&text, 17, "plot.y");
    assert!(
        message.contains("no column \"mesages_per_lookup\" in the sweep's CSV; did you mean \"messages_per_lookup\"?"),
        "{message}"
    );
    // An axis that is not a number cannot be an axis of the plot.
    let text = format!("{SWEEP}\n[plot]\nx = \"strategy\"\ny = \"hops_mean\"\n");
    let message = refused(&text, 16, "plot.x");
    assert!(message.contains("holds text"), "{message}");
    // Nor a column the sweep does not have, though another experiment does.
    let text =
        format!("{SWEEP}\n[plot]\nx = \"maintenance_bytes_per_node_s\"\ny = \"hops_mean\"\n");
    refused(&text, 16, "plot.x");
}

#[test]
fn unknown_plot_keys_and_bad_values_are_refused_before_anything_runs() {
    let text = format!("{SWEEP}\n[plot]\nx = \"protocol.dht.alpha\"\ny = \"hops_mean\"\nseries = \"args.lookups\"\nhul = \"lower\"\n");
    let message = refused(&text, 19, "plot.hul");
    assert!(
        message.ends_with("unknown key; did you mean `plot.hull`?"),
        "{message}"
    );
    let text = format!(
        "{SWEEP}\n[plot]\nx = \"protocol.dht.alpha\"\ny = \"hops_mean\"\nhull = \"upper\"\n"
    );
    let message = refused(&text, 18, "plot.hull");
    assert!(message.contains("\"lower\" or \"none\""), "{message}");
    // A key of the second reference curve is found on its own line.
    let text = format!(
        "{SWEEP}\n[plot]\nx = \"protocol.dht.alpha\"\ny = \"hops_mean\"\n\n\
         [[plot.reference]]\nlabel = \"a\"\npoints = [[1, 2]]\n\n\
         [[plot.reference]]\nlabel = \"b\"\npoint = [[1, 2]]\n"
    );
    let message = refused(&text, 25, "plot.reference[2].point");
    assert!(
        message.ends_with("did you mean `plot.reference[2].points`?"),
        "{message}"
    );
    let text = format!(
        "{SWEEP}\n[plot]\nx = \"protocol.dht.alpha\"\ny = \"hops_mean\"\n\
         [[plot.reference]]\nlabel = \"a\"\npoints = [[1, \"x\"]]\n"
    );
    let message = refused(&text, 20, "plot.reference[1].points");
    assert!(message.contains("point 1 is not a pair"), "{message}");
    // A plot draws a sweep.
    let text = SWEEP.split("[sweep]").next().expect("head").to_owned()
        + "[plot]\nx = \"nodes\"\ny = \"hops_mean\"\n";
    let message = refused(&text, 11, "plot");
    assert!(message.contains("add a [sweep]"), "{message}");
    let e = scenario::plan(
        &format!("{SWEEP}\n[plot]\nx = \"protocol.dht.alpha\"\n"),
        "study.toml",
        &options(Path::new("o"), true),
    )
    .expect_err("refused");
    assert!(matches!(e.problem(), Some(Problem::Shape(_))), "{e}");
}

const PLOTTED: &str = r#"
[plot]
title = "messages per lookup against alpha"
x = "protocol.dht.alpha"
y = "messages_per_lookup"
series = "args.lookups"
label = ["protocol.dht.alpha", "args.lookups"]
hull = "lower"

[[plot.reference]]
label = "a published curve"
points = [[1, 1.5], [3, 2.5]]
"#;

/// Every file under `dir`, by relative path, with its bytes.
fn files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).expect("a directory") {
            let path = e.expect("an entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path.strip_prefix(dir).expect("inside").to_path_buf();
                out.push((rel, fs::read(&path).expect("readable")));
            }
        }
    }
    out.sort();
    out
}

/// A small sweep with a plot writes `hops.svg` beside `hops.csv`, with its
/// series, frontier and reference; a second run writes the same bytes, and so
/// does a merge of two shards.
#[test]
fn a_sweep_with_a_plot_writes_the_svg_the_same_every_time() {
    let text = format!("{SWEEP}{PLOTTED}");
    let (a, b) = (dir("a"), dir("b"));
    for out in [&a, &b] {
        let plan = scenario::plan(&text, "plotted.toml", &options(out, false)).expect("plan");
        assert!(plan.plot.is_some());
        scenario::execute(&plan, "test").expect("runs");
    }
    let svg = fs::read_to_string(a.join("hops.svg")).expect("the plot is written");
    assert_eq!(svg, fs::read_to_string(b.join("hops.svg")).expect("svg"));
    for text in [
        "messages per lookup against alpha",
        "lookups = 5",
        "lookups = 10",
        "frontier (lower-left convex hull)",
        "a published curve",
        "protocol.dht.alpha",
        "messages_per_lookup",
    ] {
        assert!(svg.contains(text), "{text:?} missing from the plot");
    }
    // The record names the frontier's rows, and they are the hull of the CSV's points.
    let json: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(a.join("hops.json")).expect("json"))
            .expect("valid JSON");
    let csv = fs::read_to_string(a.join("hops.csv")).expect("csv");
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let head = reader.headers().expect("header").clone();
    let column = |name: &str| head.iter().position(|h| h == name).expect("a column");
    let (x, y) = (column("protocol.dht.alpha"), column("messages_per_lookup"));
    let points: Vec<(f64, f64)> = reader
        .records()
        .map(|r| {
            let r = r.expect("a row");
            (r[x].parse().expect("x"), r[y].parse().expect("y"))
        })
        .collect();
    let rows: Vec<usize> = serde_json::from_value(json["frontier_rows"].clone()).expect("rows");
    assert_eq!(rows, sweep_plot::frontier(&points));
    assert!(!rows.is_empty());
    // The scenario record keeps the plot, so the record runs it again.
    assert_eq!(json["scenario"]["plot"]["hull"], "lower");
    let again = scenario::read(&a.join("hops.json")).expect("reads back");
    let replay = scenario::plan(&again, "hops.json", &options(&a, false)).expect("plan");
    assert_eq!(
        replay.plot,
        scenario::plan(&text, "p.toml", &options(&a, false))
            .expect("plan")
            .plot
    );

    // Two shards, merged: the same files, the plot among them.
    let mut shards = Vec::new();
    for index in 1..=2 {
        let out = dir(&format!("shard-{index}"));
        let plan = scenario::plan(&text, "plotted.toml", &options(&out, false)).expect("plan");
        scenario::execute_shard(&plan, "test", scenario::Shard { index, count: 2 })
            .expect("a shard runs");
        shards.push(out);
    }
    let merged = dir("merged");
    scenario::merge(&scenario::MergeArgs {
        dirs: shards,
        out: merged.clone(),
    })
    .expect("merges");
    let (whole, parts) = (files(&a), files(&merged));
    assert_eq!(
        whole.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>(),
        parts.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>()
    );
    for ((path, x), (_, y)) in whole.iter().zip(&parts) {
        assert!(x == y, "{} differs", path.display());
    }
}

#[test]
fn the_frontier_is_the_lower_left_convex_hull() {
    // Cost, latency: 0 and 3 are the ends; 1 is on the hull; 2 lies above the
    // segment 1–3 (a mix of 1 and 3 beats it); 4 and 5 cost more for more latency;
    // 6 ties 0 on cost with more latency.
    let points = [
        (10.0, 500.0),
        (20.0, 300.0),
        (30.0, 260.0),
        (40.0, 200.0),
        (50.0, 250.0),
        (60.0, 200.0),
        (10.0, 600.0),
    ];
    assert_eq!(sweep_plot::frontier(&points), vec![0, 1, 3]);
    assert_eq!(sweep_plot::frontier(&[]), Vec::<usize>::new());
    assert_eq!(sweep_plot::frontier(&[(1.0, 1.0)]), vec![0]);
    // Points not finite are left out.
    assert_eq!(
        sweep_plot::frontier(&[(f64::NAN, 0.0), (1.0, 1.0)]),
        vec![1]
    );
}

/// The columns a plot is checked against are the experiments' real CSV
/// columns (the pinned `--quick` snapshots'), split into numbers and text.
#[test]
fn the_listed_columns_are_the_experiments_csv_columns() {
    let snapshots = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots");
    for name in [
        "hops",
        "churn",
        "flash_crowd",
        "scale",
        "adversary",
        "update",
        "nat",
    ] {
        let (numeric, text) = sweep_plot::columns(name).expect("listed");
        let csv = fs::read_to_string(snapshots.join(format!("{name}.csv"))).expect("snapshot");
        let mut reader = csv::Reader::from_reader(csv.as_bytes());
        let head: Vec<String> = reader
            .headers()
            .expect("header")
            .iter()
            .map(str::to_owned)
            .collect();
        let mut listed: Vec<&str> = numeric.iter().chain(text).copied().collect();
        listed.sort_unstable();
        let mut real: Vec<&str> = head.iter().map(String::as_str).collect();
        real.sort_unstable();
        assert_eq!(listed, real, "{name}");
        let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("a row")).collect();
        for (i, column) in head.iter().enumerate() {
            // Empty cells are figures a run could not measure.
            let numbers = rows
                .iter()
                .all(|r| r[i].is_empty() || r[i].parse::<f64>().is_ok());
            assert_eq!(
                numbers,
                numeric.contains(&column.as_str()),
                "{name}.{column}"
            );
        }
    }
    assert!(sweep_plot::columns("no-such").is_none());
}

/// The shipped studies plan, full and quick.
#[test]
fn the_shipped_studies_plan() {
    for name in ["study-state-loss", "study-pvc"] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("scenarios")
            .join(format!("{name}.toml"));
        let text = fs::read_to_string(&path).expect("a shipped scenario");
        for quick in [false, true] {
            let plan = scenario::plan(&text, name, &options(Path::new("o"), quick))
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(plan.points.len() >= 2, "{name}");
        }
    }
}

/// A plot with nothing to name (no series, frontier or reference) draws no
/// legend: before, it drew an empty box in the corner.
#[test]
fn a_plot_with_nothing_to_name_has_no_legend_box() {
    let legend_box = "opacity=\"0.85\"";
    let out = dir("bare");
    let text = format!("{SWEEP}\n[plot]\nx = \"protocol.dht.alpha\"\ny = \"hops_mean\"\n");
    let plan = scenario::plan(&text, "bare.toml", &options(&out, false)).expect("plan");
    scenario::execute(&plan, "test").expect("runs");
    let svg = fs::read_to_string(out.join("hops.svg")).expect("the plot is written");
    assert!(!svg.contains(legend_box), "an empty legend box is drawn");
    // The box itself is what the check finds, where there is a legend.
    let named = dir("named");
    let text = format!("{text}series = \"args.lookups\"\n");
    let plan = scenario::plan(&text, "named.toml", &options(&named, false)).expect("plan");
    scenario::execute(&plan, "test").expect("runs");
    let svg = fs::read_to_string(named.join("hops.svg")).expect("the plot is written");
    assert!(svg.contains(legend_box), "the legend box is drawn");
}

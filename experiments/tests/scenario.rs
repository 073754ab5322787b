//! Scenario files: the shipped ones reproduce the built-in experiments, sweeps
//! are byte-identical for a seed with a column per axis, and every mistake is
//! named by file, line and key before anything runs.

use std::fs;
use std::path::{Path, PathBuf};

use clap::Parser;
use distroweb_experiments::builtin::Parsed;
use distroweb_experiments::scenario::{self, Options, Problem, ScenarioError};
use distroweb_experiments::{Experiment, ExperimentArgs};

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("distroweb-scn-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    d
}

fn shipped(name: &str) -> (String, String) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(format!("{name}.toml"));
    let text = fs::read_to_string(&path).expect("a shipped scenario");
    (text, format!("experiments/scenarios/{name}.toml"))
}

fn options(out: &Path, quick: bool, set: &[&str]) -> Options {
    Options {
        set: set.iter().map(|s| (*s).to_owned()).collect(),
        seed: None,
        out: out.to_path_buf(),
        quick,
    }
}

#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    args: ExperimentArgs,
}

/// The plan (defaults filled in) and every point's configuration of an
/// experiment, as JSON: equal JSON means equal runs.
fn planned(e: &dyn Parsed) -> String {
    e.planned().expect("plan").to_string()
}

/// Every shipped scenario plans exactly the built-in's runs, quick and full:
/// the same settings after defaults and the same configuration at every point,
/// so the same seed gives the same CSV.
#[test]
fn shipped_scenarios_are_the_built_ins() {
    let out = dir("shipped");
    for entry in distroweb_experiments::BUILT_INS {
        let name = entry.name();
        let (text, file) = shipped(name);
        assert_eq!(
            text,
            entry.scenario(),
            "{name}: the built-in runs its shipped file"
        );
        for quick in [true, false] {
            let plan = scenario::plan(&text, &file, &options(&out, quick, &[]))
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(plan.points.len(), 1);
            let mut argv = vec!["distroweb", name, "--out"];
            let out_text = out.display().to_string();
            argv.push(&out_text);
            if quick {
                argv.push("--quick");
            }
            let Experiment::BuiltIn(builtin) =
                Cli::try_parse_from(argv).expect("parses").args.experiment
            else {
                panic!("{name} is a built-in");
            };
            assert_eq!(
                planned(plan.points[0].experiment.as_ref()),
                planned(builtin.args.as_ref()),
                "{name}, quick {quick}"
            );
        }
    }
}

/// The shipped hops scenario, at the pinned quick snapshot's sizes and seed,
/// writes the snapshot's CSV byte for byte.
#[test]
fn the_hops_scenario_writes_the_pinned_csv() {
    let out = dir("hops");
    let (text, file) = shipped("hops");
    let mut o = options(&out, true, &["args.nodes=[40, 120]", "args.lookups=60"]);
    o.seed = Some(9);
    let plan = scenario::plan(&text, &file, &o).expect("plan");
    scenario::execute(&plan, "test").expect("runs");
    let csv = fs::read_to_string(out.join("hops.csv")).expect("csv");
    let pinned =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/hops.csv"))
            .expect("snapshot");
    assert_eq!(csv, pinned);
    let json: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(out.join("hops.json")).expect("json"))
            .expect("valid JSON");
    // The record holds the resolved scenario, which runs again as it is.
    assert_eq!(json["scenario"]["args"]["lookups"], 60);
    assert_eq!(json["scenario"]["seed"], 9);
    let again = scenario::read(&out.join("hops.json")).expect("the record reads back");
    let replay = scenario::plan(&again, "hops.json", &options(&out, false, &[])).expect("plan");
    assert_eq!(
        planned(replay.points[0].experiment.as_ref()),
        planned(plan.points[0].experiment.as_ref())
    );
}

const TINY: &str = r#"
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

/// A two-axis sweep: four runs, one CSV with a column per axis, the same bytes
/// on a second run, and each row equal to that point run on its own.
#[test]
fn a_sweep_has_a_column_per_axis_and_repeats_byte_for_byte() {
    let (a, b) = (dir("sweep-a"), dir("sweep-b"));
    for out in [&a, &b] {
        let plan = scenario::plan(TINY, "tiny.toml", &options(out, false, &[])).expect("plan");
        assert_eq!(plan.points.len(), 4);
        scenario::execute(&plan, "test").expect("runs");
    }
    let csv = fs::read_to_string(a.join("hops.csv")).expect("csv");
    assert_eq!(csv, fs::read_to_string(b.join("hops.csv")).expect("csv"));
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 5, "{csv}");
    assert!(
        lines[0].starts_with("protocol.dht.alpha,args.lookups,nodes,"),
        "{csv}"
    );
    assert!(lines[1].starts_with("1,5,24,iterative,xor,5,"), "{csv}");
    assert!(lines[4].starts_with("3,10,24,iterative,xor,10,"), "{csv}");
    // The last point alone, as a plain scenario.
    let single = dir("sweep-single");
    let text =
        TINY.split("[sweep]").next().expect("head").to_owned() + "[protocol.dht]\nalpha = 3\n";
    let plan = scenario::plan(
        &text,
        "single.toml",
        &options(&single, false, &["args.lookups=10"]),
    )
    .expect("plan");
    scenario::execute(&plan, "test").expect("runs");
    let alone = fs::read_to_string(single.join("hops.csv")).expect("csv");
    assert_eq!(
        alone.lines().nth(1).map(|l| format!("3,10,{l}")).as_deref(),
        Some(lines[4])
    );
    // Zipped axes pair their values.
    let zipped = TINY.replace("[sweep]", "[sweep]\nmode = \"zip\"");
    let plan = scenario::plan(&zipped, "zip.toml", &options(&a, false, &[])).expect("plan");
    assert_eq!(plan.points.len(), 2);
}

/// The message of the error `text` gives, checked to name the file, line and key.
fn error_of(text: &str, line: usize, key: &str) -> (String, ScenarioError) {
    let e = scenario::plan(text, "study.toml", &options(Path::new("o"), true, &[]))
        .expect_err("refused");
    let message = e.to_string();
    assert!(
        message.starts_with(&format!("study.toml:{line}: `{key}`: ")),
        "{message}"
    );
    (message, e)
}

#[test]
fn a_misspelt_key_names_file_line_key_and_the_nearest() {
    let (message, e) = error_of(
        "experiment = \"churn\"\n\n[protocol.dht]\nrequest_timout = \"1s\"\n",
        4,
        "protocol.dht.request_timout",
    );
    assert_eq!(
        message,
        "study.toml:4: `protocol.dht.request_timout`: unknown key; did you mean `protocol.dht.request_timeout`?"
    );
    assert!(matches!(e.problem(), Some(Problem::UnknownKey { .. })));
    let (message, _) = error_of(
        "experiment = \"churn\"\n[args]\nnodez = 3\n",
        3,
        "args.nodez",
    );
    assert!(message.ends_with("did you mean `args.nodes`?"), "{message}");
    // A key in the wrong group is found by its name.
    let (message, _) = error_of(
        "experiment = \"churn\"\n[protocol.dht]\nchunk_size = \"64KiB\"\n",
        3,
        "protocol.dht.chunk_size",
    );
    assert!(
        message.ends_with("did you mean `protocol.transfer.chunk_size`?"),
        "{message}"
    );
    let (message, _) = error_of("experimnt = \"churn\"\n", 1, "experimnt");
    assert!(message.ends_with("did you mean `experiment`?"), "{message}");
}

#[test]
fn a_bad_unit_names_file_line_and_key() {
    let (message, e) = error_of(
        "experiment = \"churn\"\n\n[protocol.dht]\nrequest_timeout = \"2 fortnights\"\n",
        4,
        "protocol.dht.request_timeout",
    );
    assert!(message.contains("unknown unit \"fortnights\""), "{message}");
    assert!(matches!(e.problem(), Some(Problem::Unit(_))));
    let (message, _) = error_of(
        "experiment = \"churn\"\n[protocol.dht]\nrequest_timeout = 2\n",
        3,
        "protocol.dht.request_timeout",
    );
    assert!(message.contains("a duration needs a unit"), "{message}");
}

#[test]
fn an_out_of_range_value_names_file_line_and_key() {
    let (message, e) = error_of(
        "experiment = \"churn\"\n[protocol.dht]\nk = 0\n",
        3,
        "protocol.dht.k",
    );
    assert!(message.contains("nonzero"), "{message}");
    assert!(matches!(e.problem(), Some(Problem::Value(_))));
    // A rule between fields (Config::validate) blames the key it names.
    let (message, e) = error_of(
        "experiment = \"churn\"\n[protocol.dht]\nalpha = 2\nreplication = 21\n",
        4,
        "protocol.dht.replication",
    );
    assert!(
        message.contains("replication (21) must be at most k (20)"),
        "{message}"
    );
    assert!(matches!(e.problem(), Some(Problem::Rule(_))));
    // An experiment's own option out of range.
    let (message, _) = error_of(
        "experiment = \"churn\"\n[args]\nnodes = 5\n",
        3,
        "args.nodes",
    );
    assert!(message.ends_with("at least 10"), "{message}");
    // A key the experiment sweeps itself.
    let (message, e) = error_of(
        "experiment = \"hops\"\n[protocol.dht]\nmetric = \"Hamming\"\n",
        3,
        "protocol.dht.metric",
    );
    assert!(
        matches!(e.problem(), Some(Problem::Conflict(_))),
        "{message}"
    );
}

#[test]
fn a_set_argument_is_named_as_such() {
    let (text, file) = shipped("churn");
    let e = scenario::plan(
        &text,
        &file,
        &options(Path::new("o"), true, &["protocol.dht.k=0"]),
    )
    .expect_err("refused");
    assert!(
        e.to_string()
            .starts_with("experiments/scenarios/churn.toml (--set): `protocol.dht.k`: "),
        "{e}"
    );
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// No text makes the reader panic.
    #[test]
    fn any_text_is_an_answer_not_a_panic(text in "\\PC{0,200}") {
        let _ = scenario::plan(&text, "random.toml", &options(Path::new("o"), true, &[]));
    }

    /// No key and value make it panic, TOML-shaped or not.
    #[test]
    fn any_setting_is_an_answer_not_a_panic(
        key in proptest::sample::select(vec![
            "protocol.dht.k", "protocol.dht.request_timeout", "protocol.transfer.chunk_size",
            "protocol.dht.paths_to_finish", "protocol.routing.route_forwarding",
            "sim.network.loss_rate", "sim.network.upload_bytes_per_s", "sim.churn",
            "sim.churn.session", "sim.network.partitions", "sim.nodes", "args.nodes",
            "args.session_median_min", "args.warmup_min", "protocol", "sim", "args",
            "protocol.dht", "nonsense.key", "protocol.dht.k.deeper",
        ]),
        value in proptest::sample::select(vec![
            "0", "1", "-1", "20", "99999999999999999999", "1.5", "nan", "inf", "\"2s\"",
            "\"64KiB\"", "\"1.25MB/s\"", "\"x\"", "true", "[1, 2]", "[]", "{}",
            "{ Weibull = { shape = 0.5, scale_secs = \"1min\" } }", "1979-05-27",
            "[[1], [2]]", "{ a = 1 }", "\"\"",
        ]),
        experiment in proptest::sample::select(vec!["hops", "churn", "update"]),
    ) {
        let text = format!("experiment = \"{experiment}\"\n[args]\nnodes = 50\n");
        let set = format!("{key}={value}");
        let _ = scenario::plan(&text, "random.toml", &options(Path::new("o"), true, &[&set]));
        let sweep = format!("{text}[sweep]\n\"{key}\" = [{value}]\n");
        let _ = scenario::plan(&sweep, "random.toml", &options(Path::new("o"), true, &[]));
    }
}

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

/// A two-axis sweep run as three shards and merged is, file for file and byte
/// for byte, the sweep run at once.
#[test]
fn three_shards_merged_are_the_whole_sweep() {
    let whole = dir("shard-whole");
    let plan = scenario::plan(TINY, "tiny.toml", &options(&whole, false, &[])).expect("plan");
    scenario::execute(&plan, "test").expect("runs");
    let mut shards = Vec::new();
    for index in 1..=3 {
        let out = dir(&format!("shard-{index}"));
        let plan = scenario::plan(TINY, "tiny.toml", &options(&out, false, &[])).expect("plan");
        let shard = scenario::Shard { index, count: 3 };
        scenario::execute_shard(&plan, "test", shard).expect("a shard runs");
        shards.push(out);
    }
    let merged = dir("shard-merged");
    // Shards may be given in any order.
    shards.reverse();
    scenario::merge(&scenario::MergeArgs {
        dirs: shards.clone(),
        out: merged.clone(),
    })
    .expect("merges");
    let (a, b) = (files(&whole), files(&merged));
    assert_eq!(
        a.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>(),
        b.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>()
    );
    for ((path, x), (_, y)) in a.iter().zip(&b) {
        assert!(x == y, "{} differs", path.display());
    }
    // A missing shard is named.
    let e = scenario::merge(&scenario::MergeArgs {
        dirs: shards[..2].to_vec(),
        out: dir("shard-partial"),
    })
    .expect_err("refused");
    assert!(e.to_string().contains("is missing"), "{e}");
}

/// Every file in experiments/scenarios/ (the built-ins and the studies)
/// plans, quick and full: every key, unit and value in it is valid.
#[test]
fn every_shipped_scenario_plans() {
    let out = dir("every");
    let dir_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut files: Vec<PathBuf> = fs::read_dir(&dir_path)
        .expect("scenarios")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 7, "{files:?}");
    for path in files {
        let text = fs::read_to_string(&path).expect("read");
        for quick in [true, false] {
            scenario::plan(
                &text,
                &path.display().to_string(),
                &options(&out, quick, &[]),
            )
            .unwrap_or_else(|e| panic!("{e}"));
        }
    }
}

/// `distroweb experiment hops --nodes 40,120 --lookups 60 --seed 9 --quick`
/// runs the shipped file with the flags over its `[args]`: the pinned CSV,
/// and the command line recorded as given.
#[test]
fn a_built_in_command_line_runs_its_shipped_file() {
    let out = dir("cli-hops");
    let out_text = out.display().to_string();
    let argv = [
        "distroweb",
        "hops",
        "--nodes",
        "40,120",
        "--lookups",
        "60",
        "--seed",
        "9",
        "--quick",
        "--out",
        &out_text,
    ];
    let args = Cli::try_parse_from(argv).expect("parses").args;
    let Experiment::BuiltIn(b) = &args.experiment else {
        panic!("hops is a built-in");
    };
    assert_eq!(
        b.given,
        [r#"args.nodes=["40", "120"]"#, r#"args.lookups=["60"]"#]
    );
    distroweb_experiments::run(&args).expect("runs");
    let csv = fs::read_to_string(out.join("hops.csv")).expect("csv");
    let pinned =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/hops.csv"))
            .expect("snapshot");
    assert_eq!(csv, pinned);
    let json: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(out.join("hops.json")).expect("json"))
            .expect("parses");
    assert_eq!(json["scenario"]["experiment"], "hops");
    let command = json["command"].as_str().expect("command");
    assert!(
        command.starts_with("distroweb experiment hops --seed 9 --out ")
            && command.ends_with("--quick --nodes 40 --nodes 120 --lookups 60"),
        "{command}"
    );
    let _ = fs::remove_dir_all(&out);
}

/// A setting of an optional part applies to the points that have it: update
/// runs once without churn and once with, and `sim.churn.rejoin` changes the
/// churned run only (it was refused as "set differently for each point").
#[test]
fn a_setting_of_an_optional_part_applies_where_the_point_has_it() {
    let out = dir("optional");
    let (text, file) = shipped("update");
    let plan = scenario::plan(
        &text,
        &file,
        &options(&out, true, &[r#"sim.churn.rejoin="LoseState""#]),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let e = plan.points[0].experiment.as_ref();
    let applied: Vec<distroweb_sim::SimConfig> = e
        .configs()
        .expect("configs")
        .into_iter()
        .map(|c| e.common().overrides.apply(c).expect("applies"))
        .collect();
    assert_eq!(applied.len(), 2);
    assert!(applied.iter().any(|c| c.churn.is_none()));
    let churned: Vec<_> = applied.iter().filter_map(|c| c.churn.as_ref()).collect();
    assert_eq!(churned.len(), 1);
    assert_eq!(churned[0].rejoin, distroweb_sim::Rejoin::LoseState);
}

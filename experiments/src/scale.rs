//! `scale`: how fast and how lean the simulator is, on bootstrap, announcements and
//! one provider lookup per node at growing N.

use std::time::Instant;

use distroweb_protocol::QueryKind;
use distroweb_sim::{LookupScenario, Sim, SimConfig};
use serde::Serialize;

use crate::cli::ScaleArgs;
use crate::error::ExperimentError;
use crate::hops::round;
use crate::output::Output;
use crate::progress::Progress;
use crate::record::{Record, RunRecord};
use crate::rss;
use crate::table;

/// One line of `scale.csv`; the column order is the file's.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ScaleRow {
    /// Nodes.
    pub nodes: u32,
    /// Provider lookups issued (one per node).
    pub lookups: u64,
    /// Events processed (deliveries, timeouts, send failures, actions).
    pub events: u64,
    /// Wall-clock seconds for the whole run (set-up included).
    pub wall_s: f64,
    /// `events / wall_s`.
    pub events_per_s: f64,
    /// Peak resident memory during the run, bytes (0 if unknown).
    pub peak_rss_bytes: u64,
    /// (peak RSS − RSS before the run) / nodes.
    pub bytes_per_node: u64,
    /// Share of lookups that found a genuine provider.
    pub success_rate: f64,
    /// Mean hops of successful lookups.
    pub hops_mean: f64,
}

/// The sweep's settings after defaults.
#[derive(Clone, Debug, Serialize)]
pub struct ScalePlan {
    /// Master seed.
    pub seed: u64,
    /// Network sizes, run one after another (never in parallel, so that memory
    /// figures are per run).
    pub nodes: Vec<u32>,
    /// The protocol's `join_refreshes` for these runs.
    pub join_refreshes: usize,
    /// Protocol and simulator settings from a scenario file, applied to every
    /// point's configuration last.
    #[serde(skip)]
    pub overrides: crate::scenario::Overrides,
}

impl ScalePlan {
    /// Fills in the defaults of `args`.
    pub fn from_args(args: &ScaleArgs) -> Result<Self, ExperimentError> {
        let nodes = crate::cli::sizes(
            &args.nodes,
            args.common.quick,
            &[1_000, 5_000],
            &[1_000, 10_000, 100_000],
        )?;
        Ok(ScalePlan {
            seed: args.common.seed,
            nodes,
            join_refreshes: args.join_refreshes,
            overrides: args.common.overrides.clone(),
        })
    }

    /// The simulator configuration for `nodes`.
    pub fn config(&self, nodes: u32) -> SimConfig {
        let mut c = SimConfig {
            seed: self.seed,
            nodes,
            ..SimConfig::default()
        };
        c.protocol.dht.join_refreshes = self.join_refreshes;
        c
    }
}

/// Runs every size, writes `scale.csv`, `scale.json` and `scale.svg`, prints the table.
pub fn run(args: &ScaleArgs, command_line: &str) -> Result<Vec<ScaleRow>, ExperimentError> {
    let plan = ScalePlan::from_args(args)?;
    let out = Output::new(&args.common.out)?;
    let progress = Progress::new("scale", plan.nodes.len());
    let mut rows = Vec::new();
    let mut runs = Vec::new();
    for &n in &plan.nodes {
        let config = plan.overrides.apply(plan.config(n))?;
        let scenario = LookupScenario::per_node(n);
        progress.note(&format!("scale: start {config} scenario={scenario:?}"));
        let reset = rss::reset_peak();
        let before = rss::current_bytes().unwrap_or(0);
        let started = Instant::now();
        let mut sim = Sim::new(config)?;
        sim.set_reproduce(command_line);
        let sim = scenario.run_on(sim, progress.run());
        let wall_s = started.elapsed().as_secs_f64();
        let peak = rss::peak_bytes().unwrap_or(0);
        if !reset {
            progress.note("scale: cannot reset the peak RSS; memory figures include earlier runs");
        }
        let k = sim.metrics().kind(QueryKind::FindProviders);
        let events = sim.stats().events();
        let row = ScaleRow {
            nodes: n,
            lookups: k.issued,
            events,
            wall_s: round(wall_s, 2),
            events_per_s: (events as f64 / wall_s.max(1e-9)).round(),
            peak_rss_bytes: peak,
            bytes_per_node: peak.saturating_sub(before) / u64::from(n),
            success_rate: round(k.success_rate(), 5),
            hops_mean: round(k.hops.mean(), 3),
        };
        let run = RunRecord::of(&sim, format!("{n}"));
        progress.note(&format!(
            "scale: end nodes={n} digest={} {:?}",
            run.digest,
            sim.stats()
        ));
        drop(sim);
        rows.push(row);
        runs.push(run);
    }
    progress.finish();
    let first = plan.nodes[0];
    let (config, scenario) = (
        plan.overrides.apply(plan.config(first))?,
        LookupScenario::per_node(first),
    );
    let record = Record::new("scale", command_line, &plan, &config, &scenario, runs);
    out.publish(
        "scale",
        &rows,
        |svg| crate::plot::scale(svg, &rows),
        &record,
        &render(&rows),
    )?;
    Ok(rows)
}

/// The table printed on stdout.
pub fn render(rows: &[ScaleRow]) -> String {
    let header = [
        "nodes",
        "lookups",
        "events",
        "wall_s",
        "events/s",
        "peak_rss_MiB",
        "bytes/node",
        "success",
        "hops",
    ];
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.nodes.to_string(),
                r.lookups.to_string(),
                r.events.to_string(),
                format!("{:.2}", r.wall_s),
                format!("{:.0}", r.events_per_s),
                format!("{:.0}", r.peak_rss_bytes as f64 / (1 << 20) as f64),
                r.bytes_per_node.to_string(),
                format!("{:.5}", r.success_rate),
                format!("{:.2}", r.hops_mean),
            ]
        })
        .collect();
    table::render(&header, &cells)
}

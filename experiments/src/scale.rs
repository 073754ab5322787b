//! `scale`: how fast and how lean the simulator is, on bootstrap, announcements and
//! one provider lookup per node at growing N.

use std::time::Instant;

use distroweb_protocol::QueryKind;
use distroweb_sim::{LookupScenario, Sim, SimConfig};
use serde::Serialize;

use crate::error::ExperimentError;
use crate::hops::round;
use crate::output::Output;
use crate::progress::Progress;
use crate::record::{Record, RunRecord};
use crate::rss;
use crate::table;

/// How fast and how lean the simulator is: bootstrap, announcements and one
/// provider lookup per node at growing sizes.
#[derive(Debug, Clone, clap::Args)]
pub struct ScaleArgs {
    /// Shared options.
    #[command(flatten)]
    pub common: crate::cli::Common,
    /// Network sizes (repeat or comma-separate); default 1000, 10000, 100000
    /// (quick: 1000, 5000).
    #[arg(long, value_delimiter = ',')]
    pub nodes: Vec<u32>,
    /// Buckets a joining node refreshes after its self-lookup (the protocol's
    /// `join_refreshes`). 0, the default here, makes a join one self-lookup, the
    /// workload the published PeerSim and SimGrid figures were measured on; the
    /// protocol's own default is 16.
    #[arg(long, default_value_t = 0)]
    pub join_refreshes: usize,
}

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
    crate::builtin::run::<ScalePlan>(args, command_line)
}

impl crate::builtin::BuiltIn for ScalePlan {
    const NAME: &'static str = "scale";
    const OUTPUT: &'static str = "scale";
    const SCENARIO: &'static str = include_str!("../scenarios/scale.toml");
    // Its sweep is about the simulator, not the protocol: `all` runs the
    // smallest size.
    const IN_ALL: &'static [&'static str] = &["args.nodes=[1000]"];
    type Args = ScaleArgs;
    type Point = u32;
    type Measured = (ScaleRow, RunRecord);
    type Output = Vec<ScaleRow>;

    fn common(args: &ScaleArgs) -> &crate::cli::Common {
        &args.common
    }

    fn common_mut(args: &mut ScaleArgs) -> &mut crate::cli::Common {
        &mut args.common
    }

    fn plan(args: &ScaleArgs) -> Result<Self, ExperimentError> {
        ScalePlan::from_args(args)
    }

    fn points(&self) -> Vec<u32> {
        self.nodes.clone()
    }

    fn config(&self, nodes: &u32) -> SimConfig {
        ScalePlan::config(self, *nodes)
    }

    /// One at a time: each run's wall time and peak memory are its own.
    fn threads(&self) -> usize {
        1
    }

    fn measure(
        &self,
        n: &u32,
        command: &str,
        progress: &Progress,
    ) -> Result<Self::Measured, ExperimentError> {
        let n = *n;
        let config = self.overrides.apply(ScalePlan::config(self, n))?;
        let scenario = LookupScenario::per_node(n);
        progress.detail(&format!("scale: start {config} scenario={scenario:?}"));
        let reset = rss::reset_peak();
        let before = rss::current_bytes().unwrap_or(0);
        let started = Instant::now();
        let mut sim = Sim::new(config)?;
        sim.set_reproduce(command);
        let sim = scenario.run_on(sim, progress.run());
        let wall_s = started.elapsed().as_secs_f64();
        let peak = rss::peak_bytes().unwrap_or(0);
        if !reset {
            progress.warn("scale: cannot reset the peak RSS; memory figures include earlier runs");
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
        Ok((row, run))
    }

    fn publish(
        &self,
        out: &Output,
        command: &str,
        points: &[u32],
        measured: Vec<Self::Measured>,
    ) -> Result<Vec<ScaleRow>, ExperimentError> {
        let (rows, runs): (Vec<ScaleRow>, Vec<RunRecord>) = measured.into_iter().unzip();
        let first = points[0];
        let (config, scenario) = (
            self.overrides.apply(ScalePlan::config(self, first))?,
            LookupScenario::per_node(first),
        );
        let record = Record::new("scale", command, self, &config, &scenario, runs);
        out.publish(
            "scale",
            &rows,
            |svg| crate::plot::scale(svg, &rows),
            &record,
            &render(&rows),
        )?;
        Ok(rows)
    }
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

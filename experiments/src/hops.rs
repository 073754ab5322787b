//! `hops`: how lookup hop counts and latency grow with N, per strategy and metric.

use distroweb_protocol::{Forwarding, Metric, QueryKind, Strategy};
use distroweb_sim::{LookupScenario, SimConfig};
use serde::Serialize;

use crate::error::ExperimentError;
use crate::output::Output;
use crate::plot;
use crate::progress::Progress;
use crate::record::{Record, RunRecord};
use crate::table;

/// How lookup hop counts and latency grow with network size, per strategy and
/// metric.
#[derive(Debug, Clone, clap::Args)]
pub struct HopsArgs {
    /// Shared options.
    #[command(flatten)]
    pub common: crate::cli::Common,
    /// Network sizes to sweep (repeat or comma-separate); default 100, 1000, 10000
    /// (quick: 100, 1000).
    #[arg(long, value_delimiter = ',')]
    pub nodes: Vec<u32>,
    /// Provider lookups per point; default 1000 (quick: 200).
    #[arg(long)]
    pub lookups: Option<u32>,
    /// Override the protocol's `join_refreshes` (default 16: a Kademlia join
    /// refreshes the buckets beyond its closest neighbour); 0 makes joins cheap at
    /// 100,000 nodes and more.
    #[arg(long)]
    pub join_refreshes: Option<usize>,
    /// Metrics to sweep by name (repeat or comma-separate); default every
    /// registered metric.
    #[arg(long, value_delimiter = ',')]
    pub metrics: Vec<distroweb_protocol::Metric>,
    /// Strategies to sweep (`iterative`, `recursive`; repeat or comma-separate);
    /// default both.
    #[arg(long, value_delimiter = ',')]
    pub strategies: Vec<distroweb_protocol::Strategy>,
    /// Force one forwarding rule for recursive routes (`greedy`, `best-first`, `anchored`)
    /// instead of each metric's own.
    #[arg(long)]
    pub forwarding: Option<distroweb_protocol::Forwarding>,
    /// Override the protocol's `route_width` (best-first and anchored forwarding).
    #[arg(long)]
    pub route_width: Option<core::num::NonZeroUsize>,
}

/// One point of the sweep: a network size, a strategy and a metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HopsPoint {
    /// Nodes.
    pub nodes: u32,
    /// Lookup strategy.
    pub strategy: Strategy,
    /// Distance metric.
    pub metric: Metric,
}

/// One line of `hops.csv`; the column order is the file's.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HopsRow {
    /// Nodes in the network.
    pub nodes: u32,
    /// `iterative` or `recursive`.
    pub strategy: String,
    /// The metric's name (one of `Metric::ALL`).
    pub metric: String,
    /// Provider lookups issued.
    pub lookups: u64,
    /// Share that found a provider that really announced the key.
    pub success_rate: f64,
    /// Mean hops of successful lookups.
    pub hops_mean: f64,
    /// Median hops.
    pub hops_p50: u64,
    /// 99th percentile hops.
    pub hops_p99: u64,
    /// Median lookup latency, ms.
    pub latency_ms_p50: f64,
    /// 99th percentile lookup latency, ms.
    pub latency_ms_p99: f64,
    /// Messages per lookup, as the protocol counts them.
    pub messages_per_lookup: f64,
    /// log2 N, the Kademlia reference.
    pub log2_n: f64,
}

/// Rounds to `digits` decimals, so CSV cells stay short and stable.
pub(crate) fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

/// The sweep's settings after defaults.
#[derive(Clone, Debug, Serialize)]
pub struct HopsPlan {
    /// Master seed (the same for every point, so points differ only in what is swept).
    pub seed: u64,
    /// Network sizes.
    pub nodes: Vec<u32>,
    /// Lookups per point.
    pub lookups: u32,
    /// The protocol's `join_refreshes`, if overridden.
    pub join_refreshes: Option<usize>,
    /// Metrics swept, in registry order (default: all of `Metric::ALL`).
    pub metrics: Vec<Metric>,
    /// Strategies swept (default: all of `Strategy::ALL`).
    pub strategies: Vec<Strategy>,
    /// The forwarding rule forced on recursive routes, if any.
    pub forwarding: Option<Forwarding>,
    /// The protocol's `route_width`, if overridden.
    pub route_width: Option<core::num::NonZeroUsize>,
    /// Protocol and simulator settings from a scenario file, applied to every
    /// point's configuration last.
    #[serde(skip)]
    pub overrides: crate::scenario::Overrides,
}

impl HopsPlan {
    /// Fills in the defaults of `args`.
    pub fn from_args(args: &HopsArgs) -> Result<Self, ExperimentError> {
        let quick = args.common.quick;
        let nodes = crate::cli::sizes(
            &args.nodes,
            args.common.quick,
            &[100, 1_000],
            &[100, 1_000, 10_000],
        )?;
        Ok(HopsPlan {
            seed: args.common.seed,
            nodes,
            lookups: args.lookups.unwrap_or(if quick { 200 } else { 1_000 }),
            join_refreshes: args.join_refreshes,
            metrics: Metric::ALL
                .iter()
                .copied()
                .filter(|m| args.metrics.is_empty() || args.metrics.contains(m))
                .collect(),
            strategies: Strategy::ALL
                .iter()
                .copied()
                .filter(|s| args.strategies.is_empty() || args.strategies.contains(s))
                .collect(),
            forwarding: args.forwarding,
            route_width: args.route_width,
            overrides: args.common.overrides.clone(),
        })
    }

    /// Every point, in CSV order: by N, then strategy, then metric.
    pub fn points(&self) -> Vec<HopsPoint> {
        let mut points = Vec::new();
        for &nodes in &self.nodes {
            for &strategy in &self.strategies {
                for &metric in &self.metrics {
                    points.push(HopsPoint {
                        nodes,
                        strategy,
                        metric,
                    });
                }
            }
        }
        points
    }

    /// The simulator configuration of a point.
    pub fn config(&self, p: &HopsPoint) -> SimConfig {
        let mut c = SimConfig {
            seed: self.seed,
            nodes: p.nodes,
            ..SimConfig::default()
        };
        c.protocol.dht.metric = p.metric;
        c.protocol.dht.strategy = p.strategy;
        if let Some(j) = self.join_refreshes {
            c.protocol.dht.join_refreshes = j;
        }
        if self.forwarding.is_some() {
            c.protocol.routing.route_forwarding = self.forwarding;
        }
        if let Some(w) = self.route_width {
            c.protocol.routing.route_width = w;
        }
        c
    }

    /// The workload of a point.
    pub fn scenario(&self, p: &HopsPoint) -> LookupScenario {
        LookupScenario {
            lookups: Some(self.lookups),
            ..LookupScenario::per_node(p.nodes)
        }
    }
}

/// Runs the sweep, writes `hops.csv`, `hops.svg` and `hops.json`, prints the table.
pub fn run(args: &HopsArgs, command_line: &str) -> Result<Vec<HopsRow>, ExperimentError> {
    crate::builtin::run::<HopsPlan>(args, command_line)
}

impl crate::builtin::BuiltIn for HopsPlan {
    const NAME: &'static str = "hops";
    const OUTPUT: &'static str = "hops";
    const SCENARIO: &'static str = include_str!("../scenarios/hops.toml");
    type Args = HopsArgs;
    type Point = HopsPoint;
    type Measured = (HopsRow, RunRecord);
    type Output = Vec<HopsRow>;

    fn common(args: &HopsArgs) -> &crate::cli::Common {
        &args.common
    }

    fn common_mut(args: &mut HopsArgs) -> &mut crate::cli::Common {
        &mut args.common
    }

    fn plan(args: &HopsArgs) -> Result<Self, ExperimentError> {
        HopsPlan::from_args(args)
    }

    fn points(&self) -> Vec<HopsPoint> {
        HopsPlan::points(self)
    }

    fn config(&self, p: &HopsPoint) -> SimConfig {
        HopsPlan::config(self, p)
    }

    fn weight(&self, p: &HopsPoint) -> u64 {
        u64::from(p.nodes)
    }

    fn measure(
        &self,
        p: &HopsPoint,
        command: &str,
        progress: &Progress,
    ) -> Result<Self::Measured, ExperimentError> {
        measure(self, p, command, progress)
    }

    fn publish(
        &self,
        out: &Output,
        command: &str,
        points: &[HopsPoint],
        measured: Vec<Self::Measured>,
    ) -> Result<Vec<HopsRow>, ExperimentError> {
        let (rows, runs): (Vec<HopsRow>, Vec<RunRecord>) = measured.into_iter().unzip();
        let base = self.overrides.apply(self.config(&points[0]))?;
        let scenario = self.scenario(&points[0]);
        let record = Record::new("hops", command, self, &base, &scenario, runs);
        out.publish(
            "hops",
            &rows,
            |svg| plot::hops(svg, &rows),
            &record,
            &render(&rows),
        )?;
        Ok(rows)
    }
}

fn measure(
    plan: &HopsPlan,
    p: &HopsPoint,
    command_line: &str,
    progress: &Progress,
) -> Result<(HopsRow, RunRecord), ExperimentError> {
    let config = plan.overrides.apply(plan.config(p))?;
    let scenario = plan.scenario(p);
    progress.detail(&format!("hops: start {config} scenario={scenario:?}"));
    let mut sim = distroweb_sim::Sim::new(config)?;
    sim.set_reproduce(command_line);
    let sim = scenario.run_on(sim, progress.run());
    let k = sim.metrics().kind(QueryKind::FindProviders);
    let row = HopsRow {
        nodes: p.nodes,
        strategy: p.strategy.to_string(),
        metric: p.metric.to_string(),
        lookups: k.issued,
        success_rate: round(k.success_rate(), 4),
        hops_mean: round(k.hops.mean(), 3),
        hops_p50: k.hops.value_at_quantile(0.5),
        hops_p99: k.hops.value_at_quantile(0.99),
        latency_ms_p50: round(k.latency_us.value_at_quantile(0.5) as f64 / 1e3, 1),
        latency_ms_p99: round(k.latency_us.value_at_quantile(0.99) as f64 / 1e3, 1),
        messages_per_lookup: round(k.messages_per_query(), 2),
        log2_n: round(f64::from(p.nodes).log2(), 3),
    };
    let run = RunRecord::of(&sim, format!("{}/{}/{}", p.nodes, row.strategy, row.metric));
    progress.note(&format!(
        "hops: end {} digest={} lookup_failures={:?}",
        run.label, run.digest, run.lookup_failures
    ));
    Ok((row, run))
}

/// The table printed on stdout.
pub fn render(rows: &[HopsRow]) -> String {
    let header = [
        "nodes",
        "strategy",
        "metric",
        "lookups",
        "success",
        "hops",
        "p50",
        "p99",
        "lat_p50_ms",
        "lat_p99_ms",
        "msgs",
        "log2_n",
    ];
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.nodes.to_string(),
                r.strategy.clone(),
                r.metric.clone(),
                r.lookups.to_string(),
                format!("{:.4}", r.success_rate),
                format!("{:.2}", r.hops_mean),
                r.hops_p50.to_string(),
                r.hops_p99.to_string(),
                format!("{:.0}", r.latency_ms_p50),
                format!("{:.0}", r.latency_ms_p99),
                format!("{:.1}", r.messages_per_lookup),
                format!("{:.2}", r.log2_n),
            ]
        })
        .collect();
    table::render(&header, &cells)
}

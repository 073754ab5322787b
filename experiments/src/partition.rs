//! `partition`: what happens to provider lookups when the network splits in
//! two, and how fast they recover when it heals? An island of the nodes is cut
//! off from the rest for a while; lookups run before, during and after.
//!
//! A provider record is kept by the key's closest trackers on both sides of
//! the cut, so a lookup may well find a real provider that it cannot reach
//! until the heal. Success is therefore reported twice: a real provider found
//! (as in every experiment), and a *usable* one, on the asker's side of the
//! cut. Of the lookups whose key has a provider on their side (`reachable`),
//! every one should find a usable provider; what the protocol adds to the cut
//! is the time spent on peers across it (requests waiting out their
//! timeouts), which the latency columns show. After the heal everything
//! should return to the level before the cut; the plot shows how fast.

use core::time::Duration;
use std::path::Path;

use distroweb_protocol::{Event, Id, QueryKind, QueryOutput, Time};
use distroweb_sim::network::Partition;
use distroweb_sim::{Action, LookupScenario, Sim, SimConfig, Window, Workload};
use hdrhistogram::Histogram;
use plotters::prelude::*;
use serde::Serialize;

use crate::error::ExperimentError;
use crate::output::Output;
use crate::plot::{draw_legend, plot_error, PALETTE};
use crate::progress::Progress;
use crate::record::{Record, RunRecord};
use crate::hops::round;
use crate::table;

/// What happens to provider lookups when an island of the nodes is cut off
/// from the rest, and how fast they recover when the cut heals.
#[derive(Debug, Clone, clap::Args)]
pub struct PartitionArgs {
    /// Shared options.
    #[command(flatten)]
    pub common: crate::cli::Common,
    /// Nodes; default 1000 (quick: 200).
    #[arg(long)]
    pub nodes: Option<u32>,
    /// Island sizes to sweep, percent of the nodes (repeat or comma-separate);
    /// default 10, 30, 50 (quick: 30).
    #[arg(long, value_delimiter = ',')]
    pub island_percent: Vec<u32>,
    /// Seconds of lookups before the cut; default 120 (quick: 60).
    #[arg(long)]
    pub before_s: Option<u64>,
    /// Seconds the cut lasts; default 300 (quick: 120).
    #[arg(long)]
    pub cut_s: Option<u64>,
    /// Seconds of lookups after the heal; default 300 (quick: 120).
    #[arg(long)]
    pub after_s: Option<u64>,
    /// Provider lookups per second, by random nodes; default 4.
    #[arg(long)]
    pub lookups_per_s: Option<u32>,
    /// Keys, each announced by one random node before the lookups begin;
    /// default 200 (quick: 50).
    #[arg(long)]
    pub keys: Option<u32>,
    /// Seconds per interval of the plot; default 10.
    #[arg(long)]
    pub interval_s: Option<u64>,
}

/// The options with defaults filled in.
#[derive(Clone, Debug, Serialize)]
pub struct PartitionPlan {
    /// Nodes.
    pub nodes: u32,
    /// Island sizes, percent.
    pub island_percent: Vec<u32>,
    /// Seconds before the cut.
    pub before_s: u64,
    /// Seconds of cut.
    pub cut_s: u64,
    /// Seconds after the heal.
    pub after_s: u64,
    /// Lookups per second.
    pub lookups_per_s: u32,
    /// Keys.
    pub keys: u32,
    /// Seconds per plotted interval.
    pub interval_s: u64,
    /// The scenario's protocol and simulator settings.
    #[serde(skip)]
    pub overrides: crate::scenario::Overrides,
}

impl PartitionPlan {
    /// Fills in the defaults and checks the options.
    pub fn from_args(a: &PartitionArgs) -> Result<Self, ExperimentError> {
        let quick = a.common.quick;
        let pick = |given: Option<u64>, full: u64, fast: u64| {
            given.unwrap_or(if quick { fast } else { full })
        };
        let island_percent = match (a.island_percent.is_empty(), quick) {
            (false, _) => a.island_percent.clone(),
            (true, true) => vec![30],
            (true, false) => vec![10, 30, 50],
        };
        let plan = PartitionPlan {
            nodes: a.nodes.unwrap_or(if quick { 200 } else { 1000 }),
            island_percent,
            before_s: pick(a.before_s, 120, 60),
            cut_s: pick(a.cut_s, 300, 120),
            after_s: pick(a.after_s, 300, 120),
            lookups_per_s: a.lookups_per_s.unwrap_or(4),
            keys: a.keys.unwrap_or(if quick { 50 } else { 200 }),
            interval_s: pick(a.interval_s, 10, 10),
            overrides: a.common.overrides.clone(),
        };
        let usage = |m: &str| Err(ExperimentError::Usage(m.into()));
        if plan.nodes < 4 {
            return usage("--nodes: at least 4, two on each side of the cut");
        }
        if plan.island_percent.iter().any(|p| !(1..=50).contains(p)) {
            return usage("--island-percent: from 1 to 50 (the island is the smaller side)");
        }
        if plan.cut_s == 0 || plan.interval_s == 0 || plan.keys == 0 || plan.lookups_per_s == 0 {
            return usage("--cut-s, --interval-s, --keys and --lookups-per-s must be at least 1");
        }
        Ok(plan)
    }

    /// The island of a point: the first `percent` of the node slots (ids are
    /// random, so the island is a random share of the id space).
    fn island(&self, percent: u32) -> u32 {
        (u64::from(self.nodes) * u64::from(percent) / 100).max(1) as u32
    }

    /// When the lookups begin: every node has joined, plus ten seconds.
    fn start(&self) -> Time {
        let join = LookupScenario::per_node(self.nodes).join_interval;
        Time::ZERO + join * self.nodes + Duration::from_secs(10)
    }
}

/// One row of `partition.csv`: a phase of one point.
#[derive(Clone, Debug, Serialize)]
pub struct PartitionRow {
    /// Nodes.
    pub nodes: u32,
    /// Island size, percent.
    pub island_percent: u32,
    /// `before`, `cut` or `healed`, by when the lookup started.
    pub phase: &'static str,
    /// Lookups started in the phase.
    pub lookups: u64,
    /// Share that found a real provider.
    pub success_rate: f64,
    /// Share that found a real provider on the asker's side of the cut, one
    /// it can fetch from now (outside the cut, as `success_rate`).
    pub usable_rate: f64,
    /// Lookups with a provider of their key on the asker's side of the cut
    /// (every lookup outside the cut).
    pub reachable: u64,
    /// Share of those that found a usable provider.
    pub reachable_success_rate: f64,
    /// Median latency of the successful lookups, ms.
    pub latency_ms_p50: f64,
    /// 99th percentile, ms.
    pub latency_ms_p99: f64,
}

/// One point's measurement: its three phase rows and its success per interval.
pub struct PartitionRun {
    /// The rows, in phase order.
    pub rows: Vec<PartitionRow>,
    /// (minutes from the first lookup, success share, usable share) per
    /// interval with lookups.
    pub series: Vec<(f64, f64, f64)>,
}

/// Lookups of one phase or interval.
#[derive(Default)]
struct Count {
    lookups: u64,
    succeeded: u64,
    usable: u64,
    reachable: u64,
    reachable_succeeded: u64,
}

/// Runs the sweep, writes `partition.csv`, `.svg` and `.json`, prints the table.
pub fn run(args: &PartitionArgs, command: &str) -> Result<Vec<PartitionRun>, ExperimentError> {
    crate::builtin::run::<PartitionPlan>(args, command)
}

impl crate::builtin::BuiltIn for PartitionPlan {
    const NAME: &'static str = "partition";
    const OUTPUT: &'static str = "partition";
    const SCENARIO: &'static str = include_str!("../scenarios/partition.toml");
    type Args = PartitionArgs;
    type Point = u32;
    type Measured = (PartitionRun, RunRecord);
    type Output = Vec<PartitionRun>;

    fn common(args: &PartitionArgs) -> &crate::cli::Common {
        &args.common
    }

    fn common_mut(args: &mut PartitionArgs) -> &mut crate::cli::Common {
        &mut args.common
    }

    fn plan(args: &PartitionArgs) -> Result<Self, ExperimentError> {
        PartitionPlan::from_args(args)
    }

    fn points(&self) -> Vec<u32> {
        self.island_percent.clone()
    }

    fn config(&self, percent: &u32) -> SimConfig {
        let mut c = SimConfig {
            nodes: self.nodes,
            keep_events: true,
            ..SimConfig::default()
        };
        let cut = self.start() + Duration::from_secs(self.before_s);
        c.network.partitions = vec![Partition {
            start: cut.saturating_since(Time::ZERO),
            end: (cut + Duration::from_secs(self.cut_s)).saturating_since(Time::ZERO),
            island: 0..self.island(*percent),
        }];
        c
    }

    fn measure(
        &self,
        percent: &u32,
        command: &str,
        progress: &Progress,
    ) -> Result<Self::Measured, ExperimentError> {
        measure(self, *percent, command, progress)
    }

    fn publish(
        &self,
        out: &Output,
        command: &str,
        points: &[u32],
        measured: Vec<Self::Measured>,
    ) -> Result<Vec<PartitionRun>, ExperimentError> {
        let (runs, records): (Vec<PartitionRun>, Vec<RunRecord>) = measured.into_iter().unzip();
        let rows: Vec<PartitionRow> = runs.iter().flat_map(|r| r.rows.clone()).collect();
        let base = self.overrides.apply(self.config(&points[0]))?;
        let record = Record::new("partition", command, self, &base, self, records);
        let (cut_from, cut_to) = (
            self.before_s as f64 / 60.0,
            (self.before_s + self.cut_s) as f64 / 60.0,
        );
        out.publish(
            "partition",
            &rows,
            |svg| draw(svg, points, &runs, (cut_from, cut_to)),
            &record,
            &render(&rows),
        )?;
        Ok(runs)
    }
}

fn measure(
    plan: &PartitionPlan,
    percent: u32,
    command: &str,
    progress: &Progress,
) -> Result<(PartitionRun, RunRecord), ExperimentError> {
    let config = plan.overrides.apply(crate::builtin::BuiltIn::config(plan, &percent))?;
    let nodes = config.nodes;
    progress.detail(&format!("partition: start island={percent}% {config}"));
    let island = plan.island(percent);
    let mut sim = Sim::new(config)?;
    sim.set_reproduce(command);
    let mut w = Workload::new(&sim);
    let join_interval = LookupScenario::per_node(nodes).join_interval;
    w.grow(&mut sim, nodes, Time::ZERO, join_interval, 3);
    let start = plan.start();
    // Announced a little before the lookups, each key by one random node,
    // whose side of the cut decides whether a lookup can reach it.
    let announced = start - Duration::from_secs(5);
    let keys: Vec<(Id, bool)> = (0..plan.keys)
        .map(|n| {
            let key = w.key(n);
            let node = w.node(nodes);
            sim.schedule(announced, Action::Announce { node, key });
            (key, node.0 < island)
        })
        .collect();
    let cut = start + Duration::from_secs(plan.before_s);
    let heal = cut + Duration::from_secs(plan.cut_s);
    let stop = heal + Duration::from_secs(plan.after_s);
    let step = Duration::from_secs(1);
    let mut t = start;
    while t < stop {
        for _ in 0..plan.lookups_per_s {
            let node = w.node(nodes);
            let (key, _) = keys[w.node(plan.keys).index()];
            let at = w.instant(Window::new(t, step));
            sim.schedule(at, Action::FindProviders { node, key });
        }
        t += step;
    }
    // Lookups end within the query timeout.
    let end = stop + Duration::from_secs(65);
    let interval = Duration::from_secs(plan.interval_s);
    let intervals = (stop.saturating_since(start).as_secs() / plan.interval_s + 1) as usize;
    let mut phases: [Count; 3] = Default::default();
    let mut buckets: Vec<Count> = (0..intervals).map(|_| Count::default()).collect();
    let mut latency: Vec<Histogram<u64>> = (0..3)
        .map(|_| Histogram::new_with_max(3_600_000_000, 3))
        .collect::<Result<_, _>>()
        .map_err(|e| ExperimentError::Usage(format!("histogram: {e}")))?;
    let mut tick = progress.run();
    while sim.now() < end {
        sim.run_until((sim.now() + Duration::from_secs(10)).min(end));
        for (_, asker, e) in sim.take_events() {
            let Event::QueryFinished {
                kind: QueryKind::FindProviders,
                target,
                result,
                stats,
                ..
            } = e
            else {
                continue;
            };
            if stats.started < start {
                continue;
            }
            let phase = match stats.started {
                s if s < cut => 0,
                s if s < heal => 1,
                _ => 2,
            };
            let side = asker.0 < island;
            let key_side = keys.iter().find(|(k, _)| *k == target).map(|(_, s)| *s);
            // A provider on the asker's side: always, outside the cut.
            let reachable = phase != 1 || key_side == Some(side);
            let holders = sim.announcers(&target);
            let (found, usable) = match &result {
                Ok(QueryOutput::Providers(p)) => {
                    let mut real = p.iter().filter(|c| holders.contains(&c.addr));
                    let found = real.clone().next().is_some();
                    (found, real.any(|c| phase != 1 || (c.addr.0 < island) == side))
                }
                _ => (false, false),
            };
            let bucket =
                (stats.started.saturating_since(start).as_micros() / interval.as_micros()) as usize;
            for c in [&mut phases[phase]]
                .into_iter()
                .chain(buckets.get_mut(bucket))
            {
                c.lookups += 1;
                c.succeeded += u64::from(found);
                c.usable += u64::from(usable);
                c.reachable += u64::from(reachable);
                c.reachable_succeeded += u64::from(usable && reachable);
            }
            if found {
                let us = stats.finished.saturating_since(stats.started).as_micros();
                latency[phase].saturating_record(u64::try_from(us).unwrap_or(u64::MAX));
            }
        }
        tick(sim.now().as_micros() as f64 / end.as_micros().max(1) as f64);
    }
    let share = |n: u64, of: u64| round(n as f64 / of.max(1) as f64, 4);
    let rows = ["before", "cut", "healed"]
        .iter()
        .zip(phases.iter().zip(&latency))
        .map(|(name, (c, h))| PartitionRow {
            nodes,
            island_percent: percent,
            phase: name,
            lookups: c.lookups,
            success_rate: share(c.succeeded, c.lookups),
            usable_rate: share(c.usable, c.lookups),
            reachable: c.reachable,
            reachable_success_rate: share(c.reachable_succeeded, c.reachable),
            latency_ms_p50: round(h.value_at_quantile(0.5) as f64 / 1e3, 1),
            latency_ms_p99: round(h.value_at_quantile(0.99) as f64 / 1e3, 1),
        })
        .collect();
    let series = buckets
        .iter()
        .enumerate()
        .filter(|(_, c)| c.lookups > 0)
        .map(|(i, c)| {
            (
                (i as u64 * plan.interval_s) as f64 / 60.0,
                share(c.succeeded, c.lookups),
                share(c.usable, c.lookups),
            )
        })
        .collect();
    let run = RunRecord::of(&sim, format!("island {percent}%"));
    progress.note(&format!(
        "partition: end {} digest={} partitioned messages {}",
        run.label,
        run.digest,
        sim.stats().partitioned
    ));
    Ok((PartitionRun { rows, series }, run))
}

/// The table printed on stdout.
pub fn render(rows: &[PartitionRow]) -> String {
    let header = [
        "nodes",
        "island_%",
        "phase",
        "lookups",
        "success",
        "usable",
        "reachable",
        "reach_success",
        "lat_p50_ms",
        "lat_p99_ms",
    ];
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.nodes.to_string(),
                r.island_percent.to_string(),
                r.phase.to_owned(),
                r.lookups.to_string(),
                format!("{:.4}", r.success_rate),
                format!("{:.4}", r.usable_rate),
                r.reachable.to_string(),
                format!("{:.4}", r.reachable_success_rate),
                format!("{:.0}", r.latency_ms_p50),
                format!("{:.0}", r.latency_ms_p99),
            ]
        })
        .collect();
    table::render(&header, &cells)
}

/// `partition.svg`: per interval over time, the share of lookups that found
/// a real provider and the share that found one on their side of the cut,
/// one line per island size, the cut shaded.
fn draw(
    path: &Path,
    points: &[u32],
    runs: &[PartitionRun],
    cut: (f64, f64),
) -> Result<(), ExperimentError> {
    let err = |e: &dyn std::fmt::Display| plot_error(path, e);
    let root = SVGBackend::new(path, (1400, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let panels = root.split_evenly((1, 2));
    let x_hi = runs
        .iter()
        .flat_map(|r| r.series.iter().map(|s| s.0))
        .fold(1.0, f64::max)
        * 1.02;
    let titles = [
        "Provider lookups that found a real provider",
        "... one on the asker's side of the cut (usable now)",
    ];
    for (panel, (area, title)) in panels.iter().zip(titles).enumerate() {
        let mut chart = ChartBuilder::on(area)
            .caption(title, ("sans-serif", 18))
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..x_hi, 0.0..1.02)
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .light_line_style(WHITE)
            .x_desc("minutes from the first lookup (cut shaded)")
            .y_desc("share per interval")
            .draw()
            .map_err(|e| err(&e))?;
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(cut.0, 0.0), (cut.1, 1.02)],
                RGBColor(230, 230, 230).filled(),
            )))
            .map_err(|e| err(&e))?;
        for (i, (percent, run)) in points.iter().zip(runs).enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            let line: Vec<(f64, f64)> = run
                .series
                .iter()
                .map(|s| (s.0, if panel == 0 { s.1 } else { s.2 }))
                .collect();
            chart
                .draw_series(LineSeries::new(line, color.stroke_width(2)))
                .map_err(|e| err(&e))?
                .label(format!("island {percent} %"))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
        }
        draw_legend(&mut chart, SeriesLabelPosition::LowerRight).map_err(|e| err(&e))?;
    }
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

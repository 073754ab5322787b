//! `churn`: does content stay findable when nodes come and go? Weibull sessions
//! (shape 0.5) swept over their median, with a steady provider-lookup and fetch
//! workload; measured after a warm-up, from the protocol's own events.

use core::time::Duration;

use distroweb_protocol::{Event, Id, QueryKind, QueryOutput, Time};
use distroweb_sim::{
    metrics::class_index, Action, ChurnConfig, Distribution, LookupScenario, NodeIdx, Rejoin, Sim,
    SimConfig, Workload,
};
use hdrhistogram::Histogram;
use serde::Serialize;

use crate::error::ExperimentError;
use crate::hops::round;
use crate::output::Output;
use crate::progress::Progress;
use crate::record::{Record, RunRecord};
use crate::table;

/// Does content stay findable when nodes come and go: Weibull sessions swept
/// over their median, with a steady lookup and fetch workload.
#[derive(Debug, Clone, clap::Args)]
pub struct ChurnArgs {
    /// Shared options.
    #[command(flatten)]
    pub common: crate::cli::Common,
    /// Node slots (about half are up at any time); default 2000 (quick: 300).
    #[arg(long)]
    pub nodes: Option<u32>,
    /// Median session times to sweep, minutes (repeat or comma-separate);
    /// default 1.4, 5, 15, 60 (quick: 1.4, 15).
    #[arg(long, value_delimiter = ',')]
    pub session_median_min: Vec<f64>,
    /// Virtual minutes of churn before measuring starts; default 30 (quick: 10).
    #[arg(long)]
    pub warmup_min: Option<u64>,
    /// Virtual minutes measured; default 30 (quick: 5).
    #[arg(long)]
    pub measure_min: Option<u64>,
    /// Adaptive request timeouts (`dht.adaptive_timeouts`): a request waits
    /// its peer's RTO instead of the whole request timeout; default off.
    #[arg(long)]
    pub adaptive_timeouts: bool,
    /// With `--adaptive-timeouts`, the timeout of a request to a peer never
    /// sampled (`dht.unsampled_timeout`): `fixed` or `pooled`; default the
    /// protocol's.
    #[arg(long)]
    pub unsampled_timeout: Option<distroweb_protocol::UnsampledTimeout>,
}

/// One line of `churn.csv`; the column order is the file's.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ChurnRow {
    /// Node slots (about half up at a time).
    pub nodes: u32,
    /// Median session (and down) time, seconds.
    pub session_median_s: f64,
    /// Weibull shape of sessions.
    pub session_shape: f64,
    /// Provider lookups started in the measured window that ended (a lookup whose
    /// asker left before it ended has no outcome and is not counted).
    pub lookups: u64,
    /// Share of those that found a provider that really holds the key.
    pub success_rate: f64,
    /// Median latency of successful lookups, ms.
    pub latency_ms_p50: f64,
    /// 99th percentile, ms.
    pub latency_ms_p99: f64,
    /// Maintenance-class bytes sent per up node per second in the window.
    pub maintenance_bytes_per_node_s: f64,
    /// Mean share of published files held complete by at least one up node.
    pub content_availability: f64,
}

/// The sweep's settings after defaults.
#[derive(Clone, Debug, Serialize)]
pub struct ChurnPlan {
    /// Master seed.
    pub seed: u64,
    /// Node slots.
    pub nodes: u32,
    /// Median session times swept, seconds.
    pub session_median_s: Vec<f64>,
    /// Weibull shape of sessions and of down times.
    pub session_shape: f64,
    /// Warm-up before measuring, seconds: at least this, and at least two median sessions.
    pub warmup_s: u64,
    /// Measured window, seconds.
    pub measure_s: u64,
    /// Synthetic keys announced (one provider each) for the lookups.
    pub keys: u32,
    /// Files published (one publisher each) for the fetches.
    pub files: u32,
    /// Size of each file, bytes.
    pub file_bytes: usize,
    /// Provider lookups per second, all nodes together.
    pub lookups_per_s: f64,
    /// Fetches per second, all nodes together.
    pub fetches_per_s: f64,
    /// Adaptive request timeouts (`dht.adaptive_timeouts`).
    pub adaptive_timeouts: bool,
    /// `dht.unsampled_timeout`, if not the protocol's default.
    pub unsampled_timeout: Option<distroweb_protocol::UnsampledTimeout>,
    /// Seconds between two availability samples.
    pub sample_s: u64,
    /// Seconds per row of `churn.timeseries.csv` (the simulator's time series).
    pub timeseries_s: u64,
    /// Protocol and simulator settings from a scenario file, applied to every
    /// point's configuration last.
    #[serde(skip)]
    pub overrides: crate::scenario::Overrides,
}

impl ChurnPlan {
    /// Fills in the defaults of `args`.
    pub fn from_args(args: &ChurnArgs) -> Result<Self, ExperimentError> {
        let quick = args.common.quick;
        let nodes = args.nodes.unwrap_or(if quick { 300 } else { 2_000 });
        if nodes < 10 {
            return Err(ExperimentError::Usage("--nodes: at least 10".into()));
        }
        let medians = match (args.session_median_min.is_empty(), quick) {
            (false, _) => args.session_median_min.clone(),
            (true, true) => vec![1.4, 15.0],
            (true, false) => vec![1.4, 5.0, 15.0, 60.0],
        };
        if medians.iter().any(|m| !(m.is_finite() && *m > 0.0)) {
            return Err(ExperimentError::Usage(
                "--session-median-min must be positive".into(),
            ));
        }
        let minutes = |v: Option<u64>, quick_default, default| {
            60 * v.unwrap_or(if quick { quick_default } else { default })
        };
        Ok(ChurnPlan {
            seed: args.common.seed,
            nodes,
            session_median_s: medians.iter().map(|m| round(m * 60.0, 1)).collect(),
            session_shape: 0.5,
            warmup_s: minutes(args.warmup_min, 10, 30),
            measure_s: minutes(args.measure_min, 5, 30).max(60),
            keys: (nodes / 10).max(1),
            files: (nodes / 50).max(1),
            file_bytes: 64 * 1024,
            lookups_per_s: f64::from(nodes) / 1_000.0,
            fetches_per_s: f64::from(nodes) / 4_000.0,
            adaptive_timeouts: args.adaptive_timeouts,
            unsampled_timeout: args.unsampled_timeout,
            sample_s: 10,
            timeseries_s: 60,
            overrides: args.common.overrides.clone(),
        })
    }

    /// The simulator configuration for one median: sessions and down times both
    /// Weibull with that median, nodes keep their store (a suspended laptop).
    pub fn config(&self, median_s: f64) -> SimConfig {
        let mut c = SimConfig {
            seed: self.seed,
            nodes: self.nodes,
            churn: Some(sessions(self.session_shape, median_s)),
            keep_events: true,
            ..SimConfig::default()
        };
        c.protocol.transfer.emit_chunk_events = false;
        // It only watches: the run and its digest are the same without it.
        c.timeseries =
            distroweb_sim::TimeSeriesConfig::every(Duration::from_secs(self.timeseries_s));
        c.protocol.dht.adaptive_timeouts = self.adaptive_timeouts;
        if let Some(u) = self.unsampled_timeout {
            c.protocol.dht.unsampled_timeout = u;
        }
        // A node paces its uploads by the uplink it assumes: tell it the model's
        // (an unlimited model uplink, 0, leaves the node's own assumption).
        if let Some(up) = core::num::NonZeroU64::new(c.network.upload_bytes_per_s) {
            c.protocol.transfer.upload_bytes_per_s = up;
        }
        c
    }

    /// Warm-up for one median.
    pub fn warmup(&self, median_s: f64) -> Duration {
        Duration::from_secs(self.warmup_s).max(Duration::from_secs_f64(2.0 * median_s))
    }
}

/// The churn every experiment runs under: sessions and down times both
/// Weibull with `shape` and this median, nodes keep their store while away (a
/// suspended laptop) and rejoin through three established peers.
pub fn sessions(shape: f64, median_s: f64) -> ChurnConfig {
    let dist = Distribution::weibull_with_median(shape, median_s);
    ChurnConfig {
        session: dist,
        downtime: dist,
        rejoin: Rejoin::KeepStore,
        rejoin_seeds: 3,
    }
}

/// Runs the sweep, writes `churn.csv`, `churn.svg`, `churn.json` and the
/// time series, prints the table.
pub fn run(args: &ChurnArgs, command_line: &str) -> Result<Vec<ChurnRow>, ExperimentError> {
    crate::builtin::run::<ChurnPlan>(args, command_line)
}

impl crate::builtin::BuiltIn for ChurnPlan {
    const NAME: &'static str = "churn";
    const OUTPUT: &'static str = "churn";
    const SCENARIO: &'static str = include_str!("../scenarios/churn.toml");
    type Args = ChurnArgs;
    type Point = f64;
    type Measured = (ChurnRow, RunRecord, ChurnSeries);
    type Output = Vec<ChurnRow>;

    fn common(args: &ChurnArgs) -> &crate::cli::Common {
        &args.common
    }

    fn common_mut(args: &mut ChurnArgs) -> &mut crate::cli::Common {
        &mut args.common
    }

    fn plan(args: &ChurnArgs) -> Result<Self, ExperimentError> {
        ChurnPlan::from_args(args)
    }

    fn points(&self) -> Vec<f64> {
        self.session_median_s.clone()
    }

    fn config(&self, p: &f64) -> SimConfig {
        ChurnPlan::config(self, *p)
    }

    // Short sessions mean many joins: the most work.
    fn weight(&self, median_s: &f64) -> u64 {
        (1e6 / median_s) as u64
    }

    fn measure(
        &self,
        p: &f64,
        command: &str,
        progress: &Progress,
    ) -> Result<Self::Measured, ExperimentError> {
        measure(self, *p, command, progress)
    }

    fn publish(
        &self,
        out: &Output,
        command: &str,
        points: &[f64],
        measured: Vec<Self::Measured>,
    ) -> Result<Vec<ChurnRow>, ExperimentError> {
        let mut rows = Vec::new();
        let mut runs = Vec::new();
        let mut series = Vec::new();
        for (row, run, s) in measured {
            rows.push(row);
            runs.push(run);
            series.push(s);
        }
        let base = self.overrides.apply(self.config(points[0]))?;
        let record = Record::new("churn", command, self, &base, self, runs);
        out.publish(
            "churn",
            &rows,
            |svg| crate::churn_plot::draw(svg, &rows),
            &record,
            &render(&rows),
        )?;
        write_timeseries(out, &series)?;
        Ok(rows)
    }
}

/// One run's time series: its session median, and each interval with the
/// phase of the run it starts in.
pub struct ChurnSeries {
    /// Median session time, seconds.
    pub session_median_s: f64,
    /// The phase each row starts in (`grow`, `warmup`, `measure`, `drain`) and the row.
    pub rows: Vec<(&'static str, distroweb_sim::timeseries::Row)>,
}

/// Writes `churn.timeseries.csv` (one block of rows per median) and its plot.
fn write_timeseries(out: &Output, series: &[ChurnSeries]) -> Result<(), ExperimentError> {
    let csv = out.timeseries(
        "churn",
        &["session_median_s", "phase"],
        series.iter().flat_map(|s| {
            s.rows.iter().map(|(phase, row)| {
                (
                    vec![format!("{}", s.session_median_s), (*phase).to_owned()],
                    row,
                )
            })
        }),
    )?;
    let svg = out.path("churn.timeseries", "svg");
    crate::churn_plot::timeseries(&svg, series)?;
    println!("wrote {}, {}", csv.display(), svg.display());
    Ok(())
}

/// What the measured window saw.
struct Tally {
    from: Time,
    lookups: u64,
    succeeded: u64,
    latency_us: Histogram<u64>,
    /// Messages (requests and replies) of the counted lookups, from their stats.
    messages: u64,
    /// Requests of the counted lookups that failed (timed out or refused).
    failures: u64,
}

impl Tally {
    fn take(&mut self, sim: &mut Sim) {
        for (_, _, e) in sim.take_events() {
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
            if stats.started < self.from {
                continue;
            }
            self.lookups += 1;
            self.messages += u64::from(stats.messages);
            self.failures += u64::from(stats.failures);
            let holders = sim.announcers(&target);
            if let Ok(QueryOutput::Providers(p)) = result {
                if p.iter().any(|c| holders.contains(&c.addr)) {
                    self.succeeded += 1;
                    let us = stats.finished.saturating_since(stats.started).as_micros();
                    self.latency_us
                        .saturating_record(u64::try_from(us).unwrap_or(u64::MAX));
                }
            }
        }
    }
}

/// A random node that is up now (or any node after a bounded number of tries).
fn up_node(w: &mut Workload, sim: &Sim, nodes: u32) -> NodeIdx {
    let mut n = w.node(nodes);
    for _ in 0..64 {
        if sim.is_up(n) {
            break;
        }
        n = w.node(nodes);
    }
    n
}

fn measure(
    plan: &ChurnPlan,
    median_s: f64,
    command_line: &str,
    progress: &Progress,
) -> Result<(ChurnRow, RunRecord, ChurnSeries), ExperimentError> {
    let config = plan.overrides.apply(plan.config(median_s))?;
    let nodes = config.nodes;
    progress.detail(&format!("churn: start median={median_s}s {config}"));
    let mut sim = Sim::new(config)?;
    sim.set_reproduce(command_line);
    let mut w = Workload::new(&sim);
    let join_interval = LookupScenario::per_node(nodes).join_interval;
    let grown = w.grow(&mut sim, nodes, Time::ZERO, join_interval, 3);
    sim.run_until(grown + Duration::from_secs(10));
    let _ = sim.take_events();

    // Content: synthetic keys for lookups, small files for fetches, by up nodes.
    let now = sim.now();
    let keys: Vec<Id> = (0..plan.keys)
        .map(|n| {
            let key = w.key(n);
            let node = up_node(&mut w, &sim, nodes);
            sim.schedule(now, Action::Announce { node, key });
            key
        })
        .collect();
    let mut files = Vec::new();
    for _ in 0..plan.files {
        let node = up_node(&mut w, &sim, nodes);
        let data = w.content(plan.file_bytes);
        let root = w
            .publish_file(&mut sim, node, now, data, "text/html")
            .map_err(|e| ExperimentError::Usage(format!("content: {e}")))?;
        files.push(root);
    }

    let start = now + Duration::from_secs(10);
    let measure_from = start + plan.warmup(median_s);
    let measure_to = measure_from + Duration::from_secs(plan.measure_s);
    // Lookups end within the query timeout; fetches of small files well within it.
    let end = measure_to + Duration::from_secs(65);
    let mut tally = Tally {
        from: measure_from,
        lookups: 0,
        succeeded: 0,
        latency_us: Histogram::new_with_max(3_600_000_000, 3).expect("constant bounds"),
        messages: 0,
        failures: 0,
    };
    let maintenance_bytes = |sim: &Sim| {
        sim.metrics().total_traffic()[class_index(distroweb_protocol::TrafficClass::Maintenance)]
            .sent_bytes
    };
    let mut maintenance_from = 0;
    let (mut up_sum, mut up_samples) = (0u64, 0u64);
    let (mut avail_sum, mut avail_samples) = (0.0, 0u64);
    let (mut lookup_debt, mut fetch_debt) = (0.0, 0.0);
    let mut tick = progress.run();
    let step = Duration::from_secs(1);
    let mut second = 0u64;
    sim.run_until(start);
    while sim.now() < end {
        let t = sim.now();
        if t < measure_to {
            // The steady workload: this second's share, by nodes up now.
            lookup_debt += plan.lookups_per_s;
            fetch_debt += plan.fetches_per_s;
            while lookup_debt >= 1.0 {
                lookup_debt -= 1.0;
                let node = up_node(&mut w, &sim, nodes);
                let key = keys[w.node(plan.keys).index()];
                let at = w.instant(distroweb_sim::Window::new(t, step));
                sim.schedule(at, Action::FindProviders { node, key });
            }
            while fetch_debt >= 1.0 {
                fetch_debt -= 1.0;
                let node = up_node(&mut w, &sim, nodes);
                let root = files[w.node(plan.files).index()];
                let at = w.instant(distroweb_sim::Window::new(t, step));
                sim.schedule(at, Action::Fetch { node, root });
            }
        }
        if t == measure_from {
            maintenance_from = maintenance_bytes(&sim);
        }
        if t >= measure_from && t < measure_to {
            up_sum += sim.up_count() as u64;
            up_samples += 1;
            if second.is_multiple_of(plan.sample_s) {
                let held = files
                    .iter()
                    .filter(|root| {
                        (0..nodes).any(|n| {
                            sim.is_up(NodeIdx(n))
                                && sim.node(NodeIdx(n)).is_some_and(|node| node.holds(root))
                        })
                    })
                    .count();
                avail_sum += held as f64 / files.len() as f64;
                avail_samples += 1;
            }
            second += 1;
        }
        if t == measure_to {
            maintenance_from = maintenance_bytes(&sim) - maintenance_from;
        }
        sim.run_until((t + step).min(end));
        tally.take(&mut sim);
        tick(sim.now().as_micros() as f64 / end.as_micros().max(1) as f64);
    }
    let mean_up = up_sum as f64 / up_samples.max(1) as f64;
    let maintenance = maintenance_from as f64 / (mean_up.max(1.0) * plan.measure_s as f64);
    let q = |x: f64| round(tally.latency_us.value_at_quantile(x) as f64 / 1e3, 1);
    let row = ChurnRow {
        nodes,
        session_median_s: median_s,
        session_shape: plan.session_shape,
        lookups: tally.lookups,
        success_rate: round(tally.succeeded as f64 / tally.lookups.max(1) as f64, 4),
        latency_ms_p50: q(0.5),
        latency_ms_p99: q(0.99),
        maintenance_bytes_per_node_s: round(maintenance, 1),
        content_availability: round(avail_sum / avail_samples.max(1) as f64, 4),
    };
    let f = &sim.metrics().fetches;
    let run = RunRecord::of(&sim, format!("median {median_s}s"));
    progress.note(&format!(
        "churn: end {} digest={} mean_up={mean_up:.0} fetches {}/{} ok, failures {:?}",
        run.label, run.digest, f.succeeded, f.finished, f.failures
    ));
    // Beside the CSV's columns (fixed, and pinned by the quick snapshot): the
    // 90th percentile, the lookups' own message and failure counts, and
    // replies that came after an adaptive deadline (false timeouts).
    let (sent, late) = (0..nodes)
        .filter_map(|n| sim.node(NodeIdx(n)))
        .map(|node| node.counters())
        .fold((0, 0), |(s, l), c| {
            (s + c.requests_sent, l + c.late_replies)
        });
    progress.note(&format!(
        "churn: lookups {} p50/p90/p99 ms {}/{}/{} messages/lookup {:.2} failed requests/lookup {:.3} late replies {late} of {sent} requests (all nodes, whole run)",
        run.label,
        q(0.5),
        q(0.9),
        q(0.99),
        tally.messages as f64 / tally.lookups.max(1) as f64,
        tally.failures as f64 / tally.lookups.max(1) as f64,
    ));
    // The run over time, its last (shorter) interval included.
    sim.finish_timeseries();
    let phase = |at: Time| match at {
        at if at < start => "grow",
        at if at < measure_from => "warmup",
        at if at < measure_to => "measure",
        _ => "drain",
    };
    let series = ChurnSeries {
        session_median_s: median_s,
        rows: (sim.timeseries().map_or(&[][..], |t| t.rows()))
            .iter()
            .map(|r| (phase(r.start), r.clone()))
            .collect(),
    };
    Ok((row, run, series))
}

/// The table printed on stdout.
pub fn render(rows: &[ChurnRow]) -> String {
    let header = [
        "nodes",
        "median_s",
        "shape",
        "lookups",
        "success",
        "lat_p50_ms",
        "lat_p99_ms",
        "maint_B/node/s",
        "availability",
    ];
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.nodes.to_string(),
                format!("{}", r.session_median_s),
                format!("{}", r.session_shape),
                r.lookups.to_string(),
                format!("{:.4}", r.success_rate),
                format!("{:.0}", r.latency_ms_p50),
                format!("{:.0}", r.latency_ms_p99),
                format!("{:.1}", r.maintenance_bytes_per_node_s),
                format!("{:.4}", r.content_availability),
            ]
        })
        .collect();
    table::render(&header, &cells)
}

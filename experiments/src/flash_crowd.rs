//! `flash-crowd`: does demand create supply? One publisher, M requesters asking for
//! one page within a window, under the bandwidth model; each point once per mode.

use core::time::Duration;

use distroweb_protocol::Time;
use distroweb_sim::{LookupScenario, NodeIdx, Sim, SimConfig, Window, Workload};
use serde::Serialize;

use crate::error::ExperimentError;
use crate::hops::round;
use crate::output::Output;
use crate::progress::Progress;
use crate::record::{Record, RunRecord};
use crate::table;

/// Does demand create supply: one publisher, M requesters within a window,
/// with and without the swarm (`distroweb` against `origin-only`).
#[derive(Debug, Clone, clap::Args)]
pub struct FlashCrowdArgs {
    /// Shared options.
    #[command(flatten)]
    pub common: crate::cli::Common,
    /// Requester counts M to sweep (repeat or comma-separate); default 10, 100,
    /// 1000, 10000 (quick: 10, 100, 1000).
    #[arg(long, value_delimiter = ',')]
    pub requesters: Vec<u32>,
    /// The window W within which every requester asks, seconds.
    #[arg(long, default_value_t = 10.0)]
    pub window_s: f64,
    /// Size of the page, bytes; default 1 MiB (quick: 256 KiB).
    #[arg(long)]
    pub content_bytes: Option<usize>,
}

/// Which of the flash-crowd switches are on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Mode {
    /// The default: downloaders serve, fetches announce themselves, partial serving.
    Distroweb,
    /// No "fetch in progress" records (CoralCDN's guard) and hence no partial
    /// serving: only complete downloaders serve.
    NoCoral,
    /// Fetch-in-progress records and held requests, but no partial serving.
    NoPartial,
    /// The plain web: only the publisher serves.
    OriginOnly,
}

impl Mode {
    /// Every mode, in CSV order.
    pub const ALL: [Mode; 4] = [
        Mode::Distroweb,
        Mode::NoCoral,
        Mode::NoPartial,
        Mode::OriginOnly,
    ];

    /// The name in the CSV.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Distroweb => "distroweb",
            Mode::NoCoral => "no-coral",
            Mode::NoPartial => "no-partial",
            Mode::OriginOnly => "origin-only",
        }
    }

    /// `(serve_after_fetch, announce_fetching, serve_partial)`.
    pub fn switches(self) -> (bool, bool, bool) {
        match self {
            Mode::Distroweb => (true, true, true),
            Mode::NoCoral => (true, false, true),
            Mode::NoPartial => (true, true, false),
            Mode::OriginOnly => (false, false, false),
        }
    }
}

/// One line of `flash_crowd.csv`; the column order is the file's.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FlashRow {
    /// The mode's name.
    pub mode: String,
    /// Requesters M.
    pub requesters: u32,
    /// The window the requests fall in, seconds.
    pub window_s: f64,
    /// Size of the page, bytes.
    pub content_bytes: u64,
    /// Bytes the publisher sent in the transfer class (blocks and their framing).
    pub origin_upload_bytes: u64,
    /// Verified bytes the publisher delivered, in copies of the page.
    pub origin_copies: f64,
    /// Median time from request to complete verified page, of successful fetches.
    pub completion_s_p50: f64,
    /// 99th percentile of the same.
    pub completion_s_p99: f64,
    /// Share of the verified bytes fetched that came from peers, not the publisher.
    pub served_by_peers_frac: f64,
    /// Requesters that got the whole page, over M.
    pub success_rate: f64,
}

/// One run's results: its row and the completion-time CDF.
#[derive(Clone, Debug)]
pub struct FlashRun {
    /// The CSV line.
    pub row: FlashRow,
    /// `(seconds, share of all M requesters done by then)`, ascending.
    pub cdf: Vec<(f64, f64)>,
}

/// One point of the sweep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlashPoint {
    /// Requesters.
    pub requesters: u32,
    /// Switches.
    pub mode: Mode,
}

/// The sweep's settings after defaults.
#[derive(Clone, Debug, Serialize)]
pub struct FlashPlan {
    /// Master seed.
    pub seed: u64,
    /// Requester counts M.
    pub requesters: Vec<u32>,
    /// The request window W, seconds.
    pub window_s: f64,
    /// Page size, bytes.
    pub content_bytes: usize,
    /// The protocol's `chunk_size` for these runs.
    pub chunk_size: usize,
    /// The modes each point runs in.
    pub modes: Vec<Mode>,
    /// Nodes in a network for M requesters: `M + M/4 + 100`, so that the
    /// requesters are most, not all, of the network.
    pub nodes_rule: String,
    /// Quiet time after growth, and again after publication, seconds.
    pub settle_s: u64,
    /// Protocol and simulator settings from a scenario file, applied to every
    /// point's configuration last.
    #[serde(skip)]
    pub overrides: crate::scenario::Overrides,
}

impl FlashPlan {
    /// Fills in the defaults of `args`.
    pub fn from_args(args: &FlashCrowdArgs) -> Result<Self, ExperimentError> {
        let quick = args.common.quick;
        let requesters = match (args.requesters.is_empty(), quick) {
            (false, _) => args.requesters.clone(),
            (true, true) => vec![10, 100, 1_000],
            (true, false) => vec![10, 100, 1_000, 10_000],
        };
        if requesters.contains(&0) {
            return Err(ExperimentError::Usage(
                "--requesters: at least one requester".into(),
            ));
        }
        if !(args.window_s.is_finite() && args.window_s > 0.0) {
            return Err(ExperimentError::Usage("--window-s must be positive".into()));
        }
        let content_bytes =
            args.content_bytes
                .unwrap_or(if quick { 256 * 1024 } else { 1024 * 1024 });
        if content_bytes == 0 {
            return Err(ExperimentError::Usage("--content-bytes: at least 1".into()));
        }
        Ok(FlashPlan {
            seed: args.common.seed,
            requesters,
            window_s: args.window_s,
            content_bytes,
            chunk_size: 64 * 1024,
            modes: Mode::ALL.to_vec(),
            nodes_rule: "M + M/4 + 100".into(),
            settle_s: 30,
            overrides: args.common.overrides.clone(),
        })
    }

    /// Nodes in the network of a point with `m` requesters.
    pub fn nodes(m: u32) -> u32 {
        m.saturating_add(m / 4).saturating_add(100)
    }

    /// Every point, in CSV order: by M, then mode.
    pub fn points(&self) -> Vec<FlashPoint> {
        self.requesters
            .iter()
            .flat_map(|&requesters| {
                self.modes
                    .iter()
                    .map(move |&mode| FlashPoint { requesters, mode })
            })
            .collect()
    }

    /// The simulator configuration of a point (the default bandwidth model).
    pub fn config(&self, p: &FlashPoint) -> SimConfig {
        let mut c = SimConfig {
            seed: self.seed,
            nodes: Self::nodes(p.requesters),
            ..SimConfig::default()
        };
        let (after, fetching, partial) = p.mode.switches();
        c.protocol.crowd.serve_after_fetch = after;
        c.protocol.crowd.announce_fetching = fetching;
        c.protocol.crowd.serve_partial = partial;
        c.protocol.transfer.chunk_size = self.chunk_size;
        // A node paces its uploads by the uplink it assumes: tell it the model's
        // (an unlimited model uplink, 0, leaves the node's own assumption).
        if let Some(up) = core::num::NonZeroU64::new(c.network.upload_bytes_per_s) {
            c.protocol.transfer.upload_bytes_per_s = up;
        }
        // Nobody streams in the simulator; the totals arrive with `FetchFinished`.
        c.protocol.transfer.emit_chunk_events = false;
        c
    }
}

/// Runs the sweep, writes `flash_crowd.csv`, `.svg` and `.json`, prints the table.
pub fn run(args: &FlashCrowdArgs, command_line: &str) -> Result<Vec<FlashRun>, ExperimentError> {
    crate::builtin::run::<FlashPlan>(args, command_line)
}

impl crate::builtin::BuiltIn for FlashPlan {
    const NAME: &'static str = "flash-crowd";
    const OUTPUT: &'static str = "flash_crowd";
    const SCENARIO: &'static str = include_str!("../scenarios/flash-crowd.toml");
    type Args = FlashCrowdArgs;
    type Point = FlashPoint;
    type Measured = (FlashRun, RunRecord);
    type Output = Vec<FlashRun>;

    fn common(args: &FlashCrowdArgs) -> &crate::cli::Common {
        &args.common
    }

    fn common_mut(args: &mut FlashCrowdArgs) -> &mut crate::cli::Common {
        &mut args.common
    }

    fn plan(args: &FlashCrowdArgs) -> Result<Self, ExperimentError> {
        FlashPlan::from_args(args)
    }

    fn points(&self) -> Vec<FlashPoint> {
        FlashPlan::points(self)
    }

    fn config(&self, p: &FlashPoint) -> SimConfig {
        FlashPlan::config(self, p)
    }

    fn weight(&self, p: &FlashPoint) -> u64 {
        u64::from(p.requesters)
    }

    fn measure(
        &self,
        p: &FlashPoint,
        command: &str,
        progress: &Progress,
    ) -> Result<Self::Measured, ExperimentError> {
        measure(self, p, command, progress)
    }

    fn publish(
        &self,
        out: &Output,
        command: &str,
        points: &[FlashPoint],
        measured: Vec<Self::Measured>,
    ) -> Result<Vec<FlashRun>, ExperimentError> {
        let (runs, records): (Vec<FlashRun>, Vec<RunRecord>) = measured.into_iter().unzip();
        let rows: Vec<FlashRow> = runs.iter().map(|r| r.row.clone()).collect();
        let base = self.overrides.apply(self.config(&points[0]))?;
        let record = Record::new("flash-crowd", command, self, &base, self, records);
        out.publish(
            "flash_crowd",
            &rows,
            |svg| crate::flash_crowd_plot::draw(svg, &runs),
            &record,
            &render(&rows),
        )?;
        Ok(runs)
    }
}

fn measure(
    plan: &FlashPlan,
    p: &FlashPoint,
    command_line: &str,
    progress: &Progress,
) -> Result<(FlashRun, RunRecord), ExperimentError> {
    let config = plan.overrides.apply(plan.config(p))?;
    let nodes = config.nodes;
    let fetch_timeout = config.protocol.transfer.fetch_timeout;
    progress.detail(&format!(
        "flash-crowd: start mode={} requesters={} {config}",
        p.mode.name(),
        p.requesters
    ));
    let mut sim = Sim::new(config)?;
    sim.set_reproduce(command_line);
    let mut w = Workload::new(&sim);
    let join_interval = LookupScenario::per_node(nodes).join_interval;
    let grown = w.grow(&mut sim, nodes, Time::ZERO, join_interval, 3);
    let settle = Duration::from_secs(plan.settle_s);
    let publisher = w.node(nodes);
    let data = w.content(plan.content_bytes);
    let publish_at = grown + settle;
    let root = w
        .publish_file(&mut sim, publisher, publish_at, data, "text/html")
        .map_err(|e| ExperimentError::Usage(format!("content: {e}")))?;
    let window = Window::new(publish_at + settle, Duration::from_secs_f64(plan.window_s));
    w.fetch_crowd(&mut sim, root, p.requesters, nodes, Some(publisher), window);
    // Every fetch ends by its timeout.
    let end = window.end() + fetch_timeout + Duration::from_secs(5);
    let mut tick = progress.run();
    while sim.now() < end {
        sim.run_until((sim.now() + Duration::from_secs(1)).min(end));
        tick(sim.now().as_micros() as f64 / end.as_micros().max(1) as f64);
    }
    let run = summarise(plan, p, &sim, publisher);
    let record = RunRecord::of(&sim, format!("{}/{}", p.requesters, p.mode.name()));
    progress.note(&format!(
        "flash-crowd: end {} digest={}",
        record.label, record.digest
    ));
    Ok((run, record))
}

fn summarise(plan: &FlashPlan, p: &FlashPoint, sim: &Sim, publisher: NodeIdx) -> FlashRun {
    let f = &sim.metrics().fetches;
    let transfer = distroweb_sim::metrics::class_index(distroweb_protocol::TrafficClass::Transfer);
    let origin_upload = sim.metrics().traffic(publisher.index())[transfer].sent_bytes;
    let origin_served = f.served_by(publisher);
    let m = f64::from(p.requesters);
    let q = |x: f64| round(f.completion_us.value_at_quantile(x) as f64 / 1e6, 3);
    let (p50, p99) = if f.succeeded == 0 {
        (0.0, 0.0)
    } else {
        (q(0.5), q(0.99))
    };
    let mut done = 0u64;
    let cdf = f
        .completion_us
        .iter_recorded()
        .map(|v| {
            done += v.count_since_last_iteration();
            (v.value_iterated_to() as f64 / 1e6, done as f64 / m)
        })
        .collect();
    let row = FlashRow {
        mode: p.mode.name().into(),
        requesters: p.requesters,
        window_s: plan.window_s,
        content_bytes: plan.content_bytes as u64,
        origin_upload_bytes: origin_upload,
        origin_copies: round(origin_served as f64 / plan.content_bytes as f64, 2),
        completion_s_p50: p50,
        completion_s_p99: p99,
        served_by_peers_frac: round(1.0 - origin_served as f64 / f.bytes.max(1) as f64, 4),
        success_rate: round(f.succeeded as f64 / m, 4),
    };
    FlashRun { row, cdf }
}

/// The table printed on stdout.
pub fn render(rows: &[FlashRow]) -> String {
    let header = [
        "mode",
        "M",
        "W_s",
        "page_B",
        "origin_up_B",
        "copies",
        "p50_s",
        "p99_s",
        "peers",
        "success",
    ];
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.mode.clone(),
                r.requesters.to_string(),
                format!("{}", r.window_s),
                r.content_bytes.to_string(),
                r.origin_upload_bytes.to_string(),
                format!("{:.2}", r.origin_copies),
                format!("{:.2}", r.completion_s_p50),
                format!("{:.2}", r.completion_s_p99),
                format!("{:.3}", r.served_by_peers_frac),
                format!("{:.4}", r.success_rate),
            ]
        })
        .collect();
    table::render(&header, &cells)
}

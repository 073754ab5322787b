//! `update`: how fast does a site's update reach its readers? A publisher
//! publishes a page and a signed name record for it; readers resolve the name,
//! look up the page's providers and keep visiting (every visit resolves the
//! name again, stale-while-revalidate); at a known time the publisher points
//! the name at a new page, and each reader's time until a resolution returns
//! the new version is measured, with and without churn.

use core::time::Duration;

use distroweb_protocol::names::NameKey;
use distroweb_protocol::{Id, QueryKind, Time};
use distroweb_sim::{Action, LookupScenario, NodeIdx, Sim, SimConfig, Window, Workload};
use hdrhistogram::Histogram;
use serde::Serialize;

use crate::error::ExperimentError;
use crate::hops::round;
use crate::output::Output;
use crate::progress::Progress;
use crate::record::{Record, RunRecord};
use crate::table;

/// How fast a site's update reaches its readers: a publisher updates a signed
/// name while readers keep visiting it, with and without churn.
#[derive(Debug, Clone, clap::Args)]
pub struct UpdateArgs {
    /// Shared options.
    #[command(flatten)]
    pub common: crate::cli::Common,
    /// Nodes; default 10000 (quick: 200).
    #[arg(long)]
    pub nodes: Option<u32>,
    /// Readers of the site, distinct random nodes other than the publisher;
    /// default 200 (quick: 20).
    #[arg(long)]
    pub readers: Option<u32>,
    /// Seconds between two visits of one reader (each visit resolves the name
    /// again); default 30. Each reader's first visit falls at a random phase.
    #[arg(long)]
    pub visit_s: Option<f64>,
    /// Seconds measured after the update; default 300 (quick: 120).
    #[arg(long)]
    pub after_s: Option<u64>,
    /// Runs with churn `off`, `on` or both (repeat or comma-separate);
    /// default both. Under churn the publisher stays up.
    #[arg(long, value_delimiter = ',', value_enum)]
    pub churn: Vec<ChurnMode>,
    /// Median session (and down) time under churn, minutes (Weibull, shape
    /// 0.5, as in `churn`); default 15.
    #[arg(long)]
    pub session_median_min: Option<f64>,
    /// Virtual minutes of churn before the site is published: at least this,
    /// and at least two median sessions; default 30 (quick: 5).
    #[arg(long)]
    pub warmup_min: Option<u64>,
    /// Override the protocol's `records.name_grace` (how long a resolution
    /// waits after its first record for a higher sequence), milliseconds.
    #[arg(long)]
    pub name_grace_ms: Option<u64>,
}

impl UpdateArgs {
    /// The defaults, with these shared options (for tests and `experiment all`).
    pub fn with(common: crate::cli::Common) -> Self {
        UpdateArgs {
            common,
            nodes: None,
            readers: None,
            visit_s: None,
            after_s: None,
            churn: Vec::new(),
            session_median_min: None,
            warmup_min: None,
            name_grace_ms: None,
        }
    }
}

/// Whether a run of `update` has churn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChurnMode {
    /// Every node stays up.
    Off,
    /// Nodes other than the publisher come and go.
    On,
}

/// One line of `update.csv`; the column order is the file's.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct UpdateRow {
    /// `off` or `on`.
    pub churn: String,
    /// Median session (and down) time, seconds; 0 without churn.
    pub session_median_s: f64,
    /// Nodes.
    pub nodes: u32,
    /// Readers.
    pub readers: u32,
    /// Seconds between two visits of a reader.
    pub visit_s: f64,
    /// The protocol's `records.name_grace`, milliseconds.
    pub name_grace_ms: u64,
    /// Name resolutions that ended (every visit of an up reader starts one).
    pub resolutions: u64,
    /// Share of those that returned a record the publisher published.
    pub resolution_success: f64,
    /// Median time of successful resolutions by nodes that held no record of
    /// the name (a walk to its trackers, like a provider lookup), ms.
    pub cold_resolution_ms_p50: f64,
    /// 90th percentile of the same, ms.
    pub cold_resolution_ms_p90: f64,
    /// Median time of successful resolutions by readers that held a record
    /// already (they end the grace after they start), ms.
    pub warm_resolution_ms_p50: f64,
    /// 90th percentile of the same, ms.
    pub warm_resolution_ms_p90: f64,
    /// Median time of every successful resolution, cold and warm, ms.
    pub resolution_ms_p50: f64,
    /// 90th percentile of the same, ms.
    pub resolution_ms_p90: f64,
    /// Provider lookups of the site's roots by readers that ended.
    pub lookups: u64,
    /// Share of those that found a real provider.
    pub lookup_success: f64,
    /// Median time of successful provider lookups, ms.
    pub lookup_ms_p50: f64,
    /// 90th percentile of the same, ms.
    pub lookup_ms_p90: f64,
    /// Cold resolution p50 over provider lookup p50: what a name costs a
    /// first visit over an immutable id (the target is at most 2).
    pub cold_over_lookup_p50: f64,
    /// Every resolution's p50 over provider lookup p50.
    pub all_over_lookup_p50: f64,
    /// Readers up at the update.
    pub readers_up_at_update: u32,
    /// Median time from the update until a reader's resolution first
    /// returned the new version, seconds; empty if half the readers never did.
    pub update_s_p50: Option<f64>,
    /// 90th percentile (readers that never updated count as never), seconds.
    pub update_s_p90: Option<f64>,
    /// 99th percentile, seconds.
    pub update_s_p99: Option<f64>,
    /// Share of all readers on the new version within 1 s of the update.
    pub updated_1s_frac: f64,
    /// Within 10 s.
    pub updated_10s_frac: f64,
    /// Within 60 s (the target is at least 0.99).
    pub updated_60s_frac: f64,
    /// By the end of the run.
    pub updated_end_frac: f64,
    /// Readers up throughout the minute after the update (sampled every second).
    pub readers_up_60s: u32,
    /// Share of those on the new version within 60 s.
    pub updated_60s_of_up_frac: f64,
    /// Resolutions that returned the old version although they started after
    /// the update.
    pub stale_resolutions: u64,
}

/// One run's results: its row, and each reader's outcome.
#[derive(Clone, Debug)]
pub struct UpdateRun {
    /// The CSV line.
    pub row: UpdateRow,
    /// Every reader, in the order drawn.
    pub readers: Vec<ReaderRow>,
}

/// One line of `update_readers.csv`: one reader of one run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReaderRow {
    /// `off` or `on`.
    pub churn: String,
    /// The reader's slot.
    pub reader: u32,
    /// Its first visit, seconds after the update (negative: before it).
    pub first_visit_s: f64,
    /// Whether it was up at the update.
    pub up_at_update: bool,
    /// Whether it stayed up throughout the minute after (sampled every second).
    pub up_60s: bool,
    /// Seconds from the update until a resolution first returned the new
    /// version; empty if none did by the end of the run.
    pub updated_s: Option<f64>,
}

/// The run's settings after defaults.
#[derive(Clone, Debug, Serialize)]
pub struct UpdatePlan {
    /// Master seed.
    pub seed: u64,
    /// Nodes.
    pub nodes: u32,
    /// Readers.
    pub readers: u32,
    /// Seconds between two visits of a reader.
    pub visit_s: f64,
    /// Seconds measured after the update.
    pub after_s: u64,
    /// Runs, by churn.
    pub churn: Vec<ChurnMode>,
    /// Median session and down time under churn, seconds (Weibull).
    pub session_median_s: f64,
    /// Weibull shape of sessions and down times.
    pub session_shape: f64,
    /// Churn before publication, seconds: at least this, and two median sessions.
    pub warmup_s: u64,
    /// Quiet time after growth (and after the warm-up), seconds.
    pub settle_s: u64,
    /// Size of each version of the page, bytes.
    pub page_bytes: usize,
    /// Validity of each name record, seconds.
    pub record_validity_s: u64,
    /// The protocol's `records.name_grace` override, if any, ms.
    pub name_grace_ms: Option<u64>,
    /// Protocol and simulator settings from a scenario file, applied to every
    /// point's configuration last.
    #[serde(skip)]
    pub overrides: crate::scenario::Overrides,
}

impl UpdatePlan {
    /// Fills in the defaults of `args`.
    pub fn from_args(args: &UpdateArgs) -> Result<Self, ExperimentError> {
        let quick = args.common.quick;
        let nodes = args.nodes.unwrap_or(if quick { 200 } else { 10_000 });
        if nodes < 10 {
            return Err(ExperimentError::Usage("--nodes: at least 10".into()));
        }
        let readers = args.readers.unwrap_or(if quick { 20 } else { 200 });
        if readers == 0 || readers >= nodes {
            return Err(ExperimentError::Usage(
                "--readers: at least 1, and fewer than --nodes".into(),
            ));
        }
        let visit_s = args.visit_s.unwrap_or(30.0);
        if !(visit_s.is_finite() && (1.0..=3_600.0).contains(&visit_s)) {
            return Err(ExperimentError::Usage(
                "--visit-s: between 1 and 3600 seconds".into(),
            ));
        }
        let after_s = args.after_s.unwrap_or(if quick { 120 } else { 300 });
        if after_s < 60 {
            return Err(ExperimentError::Usage("--after-s: at least 60".into()));
        }
        let mut churn = if args.churn.is_empty() {
            vec![ChurnMode::Off, ChurnMode::On]
        } else {
            args.churn.clone()
        };
        churn.sort();
        churn.dedup();
        let median_min = args.session_median_min.unwrap_or(15.0);
        if !(median_min.is_finite() && median_min > 0.0) {
            return Err(ExperimentError::Usage(
                "--session-median-min must be positive".into(),
            ));
        }
        Ok(UpdatePlan {
            seed: args.common.seed,
            nodes,
            readers,
            visit_s,
            after_s,
            churn,
            session_median_s: round(median_min * 60.0, 1),
            session_shape: 0.5,
            warmup_s: 60 * args.warmup_min.unwrap_or(if quick { 5 } else { 30 }),
            settle_s: 30,
            page_bytes: 16 * 1024,
            record_validity_s: 48 * 3600,
            name_grace_ms: args.name_grace_ms,
            overrides: args.common.overrides.clone(),
        })
    }

    /// The simulator configuration of one run.
    pub fn config(&self, churn: ChurnMode) -> SimConfig {
        let mut c = SimConfig {
            seed: self.seed,
            nodes: self.nodes,
            churn: (churn == ChurnMode::On)
                .then(|| crate::churn::sessions(self.session_shape, self.session_median_s)),
            ..SimConfig::default()
        };
        c.protocol.transfer.emit_chunk_events = false;
        if let Some(up) = core::num::NonZeroU64::new(c.network.upload_bytes_per_s) {
            c.protocol.transfer.upload_bytes_per_s = up;
        }
        if let Some(ms) = self.name_grace_ms {
            c.protocol.records.name_grace = Duration::from_millis(ms);
        }
        c
    }

    /// Churn before publication: at least the warm-up, and two median sessions.
    pub fn warmup(&self, churn: ChurnMode) -> Duration {
        match churn {
            ChurnMode::Off => Duration::ZERO,
            ChurnMode::On => Duration::from_secs(self.warmup_s)
                .max(Duration::from_secs_f64(2.0 * self.session_median_s)),
        }
    }
}

/// Runs both churn settings on the machine's threads, writes `update.csv`,
/// `update_readers.csv`, `update.svg` and `update.json`, prints the table.
pub fn run(args: &UpdateArgs, command_line: &str) -> Result<Vec<UpdateRun>, ExperimentError> {
    crate::builtin::run::<UpdatePlan>(args, command_line)
}

/// [`run`] on at most `threads` threads: the output is the same for any number.
pub fn run_on(
    args: &UpdateArgs,
    command_line: &str,
    threads: usize,
) -> Result<Vec<UpdateRun>, ExperimentError> {
    crate::builtin::run_on::<UpdatePlan>(args, command_line, Some(threads))
}

impl crate::builtin::BuiltIn for UpdatePlan {
    const NAME: &'static str = "update";
    const OUTPUT: &'static str = "update";
    const SCENARIO: &'static str = include_str!("../scenarios/update.toml");
    type Args = UpdateArgs;
    type Point = ChurnMode;
    type Measured = (UpdateRun, RunRecord);
    type Output = Vec<UpdateRun>;

    fn common(args: &UpdateArgs) -> &crate::cli::Common {
        &args.common
    }

    fn common_mut(args: &mut UpdateArgs) -> &mut crate::cli::Common {
        &mut args.common
    }

    fn plan(args: &UpdateArgs) -> Result<Self, ExperimentError> {
        UpdatePlan::from_args(args)
    }

    fn points(&self) -> Vec<ChurnMode> {
        self.churn.clone()
    }

    fn config(&self, p: &ChurnMode) -> SimConfig {
        UpdatePlan::config(self, *p)
    }

    // Churn means a warm-up and many joins: the most work.
    fn weight(&self, churn: &ChurnMode) -> u64 {
        u64::from(*churn == ChurnMode::On)
    }

    fn measure(
        &self,
        p: &ChurnMode,
        command: &str,
        progress: &Progress,
    ) -> Result<Self::Measured, ExperimentError> {
        measure(self, *p, command, progress)
    }

    fn publish(
        &self,
        out: &Output,
        command: &str,
        points: &[ChurnMode],
        measured: Vec<Self::Measured>,
    ) -> Result<Vec<UpdateRun>, ExperimentError> {
        let (runs, records): (Vec<UpdateRun>, Vec<RunRecord>) = measured.into_iter().unzip();
        let rows: Vec<UpdateRow> = runs.iter().map(|r| r.row.clone()).collect();
        let readers: Vec<ReaderRow> = runs.iter().flat_map(|r| r.readers.clone()).collect();
        out.csv("update_readers", &readers)?;
        let base = self.overrides.apply(UpdatePlan::config(self, points[0]))?;
        let record = Record::new("update", command, self, &base, self, records);
        out.publish(
            "update",
            &rows,
            |svg| crate::update_plot::draw(svg, &runs, self.after_s as f64),
            &record,
            &render(&rows),
        )?;
        Ok(runs)
    }
}

/// What the run loop keeps per reader.
#[derive(Clone, Debug)]
struct Reader {
    node: NodeIdx,
    first_visit: Time,
    /// The root whose providers it looked up last.
    looked_up: Option<Id>,
    up_at_update: bool,
    /// Not seen down at any second of the minute after the update.
    up_60s: bool,
}

fn measure(
    plan: &UpdatePlan,
    churn: ChurnMode,
    command_line: &str,
    progress: &Progress,
) -> Result<(UpdateRun, RunRecord), ExperimentError> {
    let config = plan.overrides.apply(plan.config(churn))?;
    let nodes = config.nodes;
    let label = value_name(churn);
    progress.detail(&format!("update: start churn={label} {config}"));
    let mut sim = Sim::new(config)?;
    sim.set_reproduce(command_line);
    let mut w = Workload::new(&sim);
    let publisher = w.node(nodes);
    sim.keep_up(publisher);
    let join_interval = LookupScenario::per_node(nodes).join_interval;
    let grown = w.grow(&mut sim, nodes, Time::ZERO, join_interval, 3);
    let settle = Duration::from_secs(plan.settle_s);
    let validity = Duration::from_secs(plan.record_validity_s);

    // Version 1: the page, then the name pointing at it.
    let published = grown + settle + plan.warmup(churn);
    let page = |w: &mut Workload, sim: &mut Sim, at: Time| {
        let data = w.content(plan.page_bytes);
        w.publish_file(sim, publisher, at, data, "text/html")
            .map_err(|e| ExperimentError::Usage(format!("content: {e}")))
    };
    let v1 = page(&mut w, &mut sim, published)?;
    let named = published + Duration::from_secs(5);
    let first = w.name_record(&sim, 0, v1, 1, named, validity);
    let name: NameKey = first.name;
    w.publish_name(&mut sim, publisher, named, first);

    // Readers visit from a random phase on, every `visit_s`; the update comes
    // after everyone's second visit.
    let visit = Duration::from_secs_f64(plan.visit_s);
    let reads_from = named + settle;
    let update_at = reads_from + visit * 2;
    let end = update_at + Duration::from_secs(plan.after_s);
    let picked = w.distinct_nodes(plan.readers, nodes, Some(publisher));
    let mut readers: Vec<Reader> = picked
        .into_iter()
        .map(|node| {
            let first_visit = w.instant(Window::new(reads_from, visit));
            let mut at = first_visit;
            while at <= end {
                sim.schedule(at, Action::ResolveName { node, name });
                at += visit;
            }
            Reader {
                node,
                first_visit,
                looked_up: None,
                up_at_update: false,
                up_60s: true,
            }
        })
        .collect();

    // Version 2, announced before the name moves to it.
    let v2 = page(&mut w, &mut sim, update_at - Duration::from_secs(20))?;
    let second = w.name_record(&sim, 0, v2, 2, update_at, validity);
    w.publish_name(&mut sim, publisher, update_at, second);

    // Every second, a reader that resolved a root it has not looked up yet
    // looks up its providers (as it would fetch the page it now serves).
    // Provider lookups end within the query timeout: a tail lets them.
    let tail = end + Duration::from_secs(65);
    let window_end = update_at + Duration::from_secs(60);
    let step = Duration::from_secs(1);
    let mut tick = progress.run();
    while sim.now() < tail {
        let next = (sim.now() + step).min(tail);
        if sim.now() < update_at && next >= update_at {
            sim.run_until(update_at);
            for r in &mut readers {
                r.up_at_update = sim.is_up(r.node);
            }
        }
        sim.run_until(next);
        let now = sim.now();
        for r in &mut readers {
            if now >= update_at && now <= window_end && !sim.is_up(r.node) {
                r.up_60s = false;
            }
            let Some(seen) = sim.metrics().names.resolved(&name, r.node) else {
                continue;
            };
            if r.looked_up != Some(seen.root) && now <= end && sim.is_up(r.node) {
                r.looked_up = Some(seen.root);
                sim.perform(Action::FindProviders {
                    node: r.node,
                    key: seen.root,
                });
            }
        }
        tick(now.as_micros() as f64 / tail.as_micros().max(1) as f64);
    }
    let run = summarise(plan, churn, &sim, &name, update_at, &readers);
    let record = RunRecord::of(&sim, format!("churn {label}"));
    let names = &sim.metrics().names;
    progress.note(&format!(
        "update: end {} digest={} {names:?}",
        record.label, record.digest
    ));
    Ok((run, record))
}

fn summarise(
    plan: &UpdatePlan,
    churn: ChurnMode,
    sim: &Sim,
    name: &NameKey,
    update_at: Time,
    readers: &[Reader],
) -> UpdateRun {
    let m = sim.metrics();
    let names = &m.names;
    let label = value_name(churn);
    let ms = |h: &Histogram<u64>, q: f64| {
        if h.is_empty() {
            0.0
        } else {
            round(h.value_at_quantile(q) as f64 / 1e3, 1)
        }
    };
    let resolutions = m.kind(QueryKind::ResolveName);
    let lookups = m.kind(QueryKind::FindProviders);
    let rows: Vec<ReaderRow> = readers
        .iter()
        .map(|r| {
            let updated = names
                .resolved(name, r.node)
                .filter(|s| s.seq >= 2)
                .map(|s| s.at.saturating_since(update_at).as_secs_f64());
            let first = r.first_visit.as_micros() as f64 - update_at.as_micros() as f64;
            ReaderRow {
                churn: label.clone(),
                reader: r.node.0,
                first_visit_s: round(first / 1e6, 3),
                up_at_update: r.up_at_update,
                up_60s: r.up_60s,
                updated_s: updated.map(|s| round(s, 3)),
            }
        })
        .collect();
    let n = rows.len().max(1) as f64;
    let within = |rows: &[&ReaderRow], s: f64| {
        let done = rows
            .iter()
            .filter(|r| r.updated_s.is_some_and(|u| u <= s))
            .count();
        round(done as f64 / rows.len().max(1) as f64, 4)
    };
    let all: Vec<&ReaderRow> = rows.iter().collect();
    let up: Vec<&ReaderRow> = rows.iter().filter(|r| r.up_60s).collect();
    let mut times: Vec<f64> = rows.iter().filter_map(|r| r.updated_s).collect();
    times.sort_by(f64::total_cmp);
    // The q-quantile over every reader, the never-updated ones last.
    let quantile = |q: f64| {
        let rank = ((q * n).ceil() as usize).max(1);
        times.get(rank - 1).map(|t| round(*t, 3))
    };
    let lookup_p50 = ms(&lookups.latency_us, 0.5);
    let ratio = |x: f64| {
        if lookup_p50 > 0.0 {
            round(x / lookup_p50, 2)
        } else {
            0.0
        }
    };
    let cold_p50 = ms(&names.cold_latency_us, 0.5);
    let all_p50 = ms(&resolutions.latency_us, 0.5);
    let row = UpdateRow {
        churn: label,
        session_median_s: match churn {
            ChurnMode::Off => 0.0,
            ChurnMode::On => plan.session_median_s,
        },
        nodes: plan.nodes,
        readers: rows.len() as u32,
        visit_s: plan.visit_s,
        name_grace_ms: sim.config().protocol.records.name_grace.as_millis() as u64,
        resolutions: resolutions.finished,
        resolution_success: round(resolutions.success_rate(), 4),
        cold_resolution_ms_p50: cold_p50,
        cold_resolution_ms_p90: ms(&names.cold_latency_us, 0.9),
        warm_resolution_ms_p50: ms(&names.warm_latency_us, 0.5),
        warm_resolution_ms_p90: ms(&names.warm_latency_us, 0.9),
        resolution_ms_p50: all_p50,
        resolution_ms_p90: ms(&resolutions.latency_us, 0.9),
        lookups: lookups.finished,
        lookup_success: round(lookups.success_rate(), 4),
        lookup_ms_p50: lookup_p50,
        lookup_ms_p90: ms(&lookups.latency_us, 0.9),
        cold_over_lookup_p50: ratio(cold_p50),
        all_over_lookup_p50: ratio(all_p50),
        readers_up_at_update: rows.iter().filter(|r| r.up_at_update).count() as u32,
        update_s_p50: quantile(0.5),
        update_s_p90: quantile(0.9),
        update_s_p99: quantile(0.99),
        updated_1s_frac: within(&all, 1.0),
        updated_10s_frac: within(&all, 10.0),
        updated_60s_frac: within(&all, 60.0),
        updated_end_frac: within(&all, f64::MAX),
        readers_up_60s: up.len() as u32,
        updated_60s_of_up_frac: within(&up, 60.0),
        stale_resolutions: names.stale,
    };
    UpdateRun { row, readers: rows }
}

/// The name of a churn setting, as on the command line and in the CSV.
fn value_name(churn: ChurnMode) -> String {
    match churn {
        ChurnMode::Off => "off".into(),
        ChurnMode::On => "on".into(),
    }
}

/// The table printed on stdout.
pub fn render(rows: &[UpdateRow]) -> String {
    let header = [
        "churn",
        "nodes",
        "readers",
        "cold_p50/p90_ms",
        "warm_p50_ms",
        "lookup_p50/p90_ms",
        "cold/lookup",
        "update_p50/p90/p99_s",
        "<=1s",
        "<=10s",
        "<=60s",
        "<=60s_up",
        "by_end",
    ];
    let secs = |x: Option<f64>| x.map_or_else(|| "never".into(), |s| format!("{s:.1}"));
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.churn.clone(),
                r.nodes.to_string(),
                r.readers.to_string(),
                format!(
                    "{:.0}/{:.0}",
                    r.cold_resolution_ms_p50, r.cold_resolution_ms_p90
                ),
                format!("{:.0}", r.warm_resolution_ms_p50),
                format!("{:.0}/{:.0}", r.lookup_ms_p50, r.lookup_ms_p90),
                format!("{:.2}", r.cold_over_lookup_p50),
                format!(
                    "{}/{}/{}",
                    secs(r.update_s_p50),
                    secs(r.update_s_p90),
                    secs(r.update_s_p99)
                ),
                format!("{:.3}", r.updated_1s_frac),
                format!("{:.3}", r.updated_10s_frac),
                format!("{:.3}", r.updated_60s_frac),
                format!("{:.3}", r.updated_60s_of_up_frac),
                format!("{:.3}", r.updated_end_frac),
            ]
        })
        .collect();
    table::render(&header, &cells)
}

//! `adversary`: do provider lookups still find real providers when a share of
//! the nodes collude to eclipse lookups and lie about providers, with plain
//! (one path) and disjoint (S/Kademlia, `d` paths) lookups?
//!
//! Adversaries run the unmodified protocol behind an
//! [`distroweb_sim::Adversary`] wrapper: every `FindNode` and `GetProviders`
//! they answer names only fellow adversaries, the closest to the target, and
//! every provider list they give names adversaries, which never serve. They
//! are chosen uniformly among the slots (the same ones for both lookups at a
//! given share), join like everyone else and keep the records they are given
//! to themselves. Honest nodes publish and look up; a lookup succeeds only if
//! it returns a provider that really announced the key, as the simulator's
//! own record of announcements says.

use core::num::NonZeroUsize;
use core::time::Duration;

use distroweb_protocol::{nonzero, QueryKind};
use distroweb_sim::adversary::{install, pick, Attack};
use distroweb_sim::seed::{stream_rng, Stream};
use distroweb_sim::{Action, LookupScenario, NodeIdx, Sim, SimConfig, Window, Workload};
use serde::Serialize;

use crate::cli::AdversaryArgs;
use crate::error::ExperimentError;
use crate::hops::round;
use crate::output::Output;
use crate::plot;
use crate::progress::Progress;
use crate::record::{Record, RunRecord};
use crate::runner;
use crate::table;

/// The attacks every adversary of this experiment mounts.
pub const ATTACKS: [Attack; 2] = [Attack::Eclipse, Attack::FakeProviders];

/// How lookups walk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Lookup {
    /// The protocol's defaults: one path, k = 20, α = 3.
    Plain,
    /// `d` disjoint paths with S/Kademlia's k = 2d and one request in flight
    /// per path (α = 1, so α·d requests in all).
    Disjoint {
        /// `d`.
        paths: NonZeroUsize,
    },
}

impl Lookup {
    /// The name in the CSV.
    pub fn name(self) -> &'static str {
        match self {
            Lookup::Plain => "plain",
            Lookup::Disjoint { .. } => "disjoint",
        }
    }
}

/// One point of the sweep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdversaryPoint {
    /// Adversarial share, percent of the nodes.
    pub percent: u32,
    /// How lookups walk.
    pub lookup: Lookup,
}

/// One line of `adversary.csv`; the column order is the file's.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AdversaryRow {
    /// Nodes in the network, adversaries included.
    pub nodes: u32,
    /// `plain` or `disjoint`.
    pub lookup: String,
    /// `d`: disjoint paths.
    pub disjoint_paths: usize,
    /// `k`.
    pub k: usize,
    /// `alpha`, per path.
    pub alpha: usize,
    /// Adversarial share, percent.
    pub adversary_percent: u32,
    /// Adversaries.
    pub adversaries: usize,
    /// Provider lookups issued (all by honest nodes).
    pub lookups: u64,
    /// Lookups that ended.
    pub finished: u64,
    /// Share of the finished lookups that returned a provider that really
    /// announced the key.
    pub success_rate: f64,
    /// Share that returned providers, none of them real (the adversaries' lie).
    pub fooled_rate: f64,
    /// Share that ended without any provider (not found, no peers, timeout).
    pub failed_rate: f64,
    /// Mean hops of successful lookups.
    pub hops_mean: f64,
    /// Median latency of successful lookups, ms.
    pub latency_ms_p50: f64,
    /// 99th percentile latency, ms.
    pub latency_ms_p99: f64,
    /// Requests per finished lookup, as the protocol counts them.
    pub requests_per_lookup: f64,
    /// Share of the contacts in honest nodes' routing tables, at the end, that
    /// are adversaries (what eclipsed joins and refreshes left behind).
    pub table_adversary_frac: f64,
    /// Messages dropped by the authenticated transport for a forged sender
    /// (the adversaries lie in their own name, so 0).
    pub forged: u64,
}

/// The sweep's settings after defaults.
#[derive(Clone, Debug, Serialize)]
pub struct AdversaryPlan {
    /// Master seed, the same for every point.
    pub seed: u64,
    /// Nodes, adversaries included.
    pub nodes: u32,
    /// Adversarial shares, percent.
    pub percents: Vec<u32>,
    /// `d` of the disjoint lookups.
    pub paths: NonZeroUsize,
    /// `k` and `r` of the disjoint lookups.
    pub k: NonZeroUsize,
    /// Provider lookups per point.
    pub lookups: u32,
    /// Keys published (each by one honest node).
    pub keys: u32,
    /// What every adversary does.
    pub attacks: Vec<&'static str>,
}

impl AdversaryPlan {
    /// Fills in the defaults of `args`.
    pub fn from_args(args: &AdversaryArgs) -> Result<Self, ExperimentError> {
        let quick = args.common.quick;
        let nodes = args.nodes.unwrap_or(if quick { 300 } else { 10_000 });
        if nodes < 20 {
            return Err(ExperimentError::Usage(
                "--nodes: the adversary sweep needs at least 20 nodes".into(),
            ));
        }
        let percents = if args.percents.is_empty() {
            if quick {
                vec![0, 20, 30]
            } else {
                vec![0, 10, 20, 30, 40, 50]
            }
        } else {
            args.percents.clone()
        };
        if percents.iter().any(|p| *p > 90) {
            return Err(ExperimentError::Usage(
                "--percents: at most 90 % adversaries (honest nodes must publish and look up)"
                    .into(),
            ));
        }
        let paths = args.paths.unwrap_or(nonzero!(8));
        let k = args.k.unwrap_or(paths.saturating_mul(nonzero!(2)));
        if k.get() > distroweb_protocol::wire::MAX_LIST_LEN || k < paths {
            return Err(ExperimentError::Usage(
                "--k: k must be at least d and fit a reply's contact list".into(),
            ));
        }
        Ok(AdversaryPlan {
            seed: args.common.seed,
            nodes,
            percents,
            paths,
            k,
            lookups: args.lookups.unwrap_or(if quick { 150 } else { 1_000 }),
            keys: (nodes / 10).max(1),
            attacks: ATTACKS.iter().map(|a| a.name()).collect(),
        })
    }

    /// Every point, in CSV order: by share, plain then disjoint.
    pub fn points(&self) -> Vec<AdversaryPoint> {
        let mut points = Vec::new();
        for &percent in &self.percents {
            for lookup in [Lookup::Plain, Lookup::Disjoint { paths: self.paths }] {
                points.push(AdversaryPoint { percent, lookup });
            }
        }
        points
    }

    /// The simulator configuration of a point.
    pub fn config(&self, p: &AdversaryPoint) -> SimConfig {
        let mut c = SimConfig {
            seed: self.seed,
            nodes: self.nodes,
            ..SimConfig::default()
        };
        if let Lookup::Disjoint { paths } = p.lookup {
            // S/Kademlia §5 evaluates k = 2d (the default here); records go to all k.
            let k = self.k;
            let dht = &mut c.protocol.dht;
            dht.k = k;
            dht.replication = k;
            dht.alpha = nonzero!(1);
            dht.disjoint_paths = paths;
            dht.max_lookup_candidates = dht.max_lookup_candidates.max(k);
        }
        c
    }

    /// The timeline every point follows (the grow–publish–look-up scenario's).
    pub fn scenario(&self) -> LookupScenario {
        LookupScenario {
            lookups: Some(self.lookups),
            keys: self.keys,
            ..LookupScenario::per_node(self.nodes)
        }
    }

    /// The adversaries at `percent`: the same slots for both lookups.
    pub fn adversaries(&self, percent: u32) -> Vec<NodeIdx> {
        let count = (u64::from(self.nodes) * u64::from(percent) / 100) as u32;
        pick(
            self.nodes,
            count,
            &mut stream_rng(self.seed, Stream::Adversary),
        )
    }
}

/// Runs the sweep, writes `adversary.csv`, `.svg` and `.json`, prints the table.
pub fn run(args: &AdversaryArgs, command_line: &str) -> Result<Vec<AdversaryRow>, ExperimentError> {
    let plan = AdversaryPlan::from_args(args)?;
    let out = Output::new(&args.common.out)?;
    let points = plan.points();
    let progress = Progress::new("adversary", points.len());
    let results = runner::parallel(
        &points,
        runner::threads(),
        |p| u64::from(p.percent) + 1,
        |p| measure(&plan, p, command_line, &progress),
    );
    progress.finish();
    let mut rows = Vec::new();
    let mut runs = Vec::new();
    for r in results {
        let (row, run) = r?;
        rows.push(row);
        runs.push(run);
    }
    let base = plan.config(&points[0]);
    let scenario = plan.scenario();
    let record = Record::new("adversary", command_line, &plan, &base, &scenario, runs);
    out.publish(
        "adversary",
        &rows,
        |svg| plot::adversary(svg, &rows),
        &record,
        &render(&rows),
    )?;
    Ok(rows)
}

/// Schedules the scenario with honest publishers and askers only; returns
/// when it is over.
fn schedule(sim: &mut Sim, s: &LookupScenario, bad: &[NodeIdx]) -> distroweb_protocol::Time {
    let mut w = Workload::new(sim);
    let nodes = s.nodes.min(sim.len() as u32);
    let last_join = w.grow(sim, nodes, sim.now(), s.join_interval, s.join_seeds);
    // `bad` is sorted; shares are at most 90 %, so a draw is honest within a
    // few tries, and a bound keeps a pathological plan from spinning.
    let honest = |w: &mut Workload| {
        let mut node = w.node(nodes);
        for _ in 0..1_000 {
            if bad.binary_search(&node).is_err() {
                break;
            }
            node = w.node(nodes);
        }
        node
    };
    let publish = Window::new(last_join + s.settle, s.publish_window);
    let keys: Vec<_> = (0..s.keys).map(|n| w.key(n)).collect();
    for &key in &keys {
        let node = honest(&mut w);
        let at = w.instant(publish);
        sim.schedule(at, Action::Announce { node, key });
    }
    let lookups = Window::new(publish.end() + s.settle, s.lookup_window);
    for _ in 0..s.lookup_count() {
        let node = honest(&mut w);
        // Uniform popularity: a draw among the key indices, from the workload stream.
        let key = keys[w.node(s.keys).index()];
        let at = w.instant(lookups);
        sim.schedule(at, Action::FindProviders { node, key });
    }
    lookups.end() + s.tail
}

fn measure(
    plan: &AdversaryPlan,
    p: &AdversaryPoint,
    command_line: &str,
    progress: &Progress,
) -> Result<(AdversaryRow, RunRecord), ExperimentError> {
    let config = plan.config(p);
    let scenario = plan.scenario();
    let bad = plan.adversaries(p.percent);
    progress.note(&format!(
        "adversary: start {}% {} {config}",
        p.percent,
        p.lookup.name()
    ));
    let dht = config.protocol.dht.clone();
    let mut sim = Sim::new(config)?;
    sim.set_reproduce(command_line);
    install(&mut sim, &bad, &ATTACKS);
    let end = schedule(&mut sim, &scenario, &bad);
    let mut tick = progress.run();
    while sim.now() < end {
        let next = (sim.now() + Duration::from_secs(1)).min(end);
        sim.run_until(next);
        tick(sim.now().as_micros() as f64 / end.as_micros().max(1) as f64);
    }
    let k = sim.metrics().kind(QueryKind::FindProviders);
    let share = |n: u64| {
        if k.finished == 0 {
            0.0
        } else {
            round(n as f64 / k.finished as f64, 4)
        }
    };
    let failed: u64 = k.failures.values().sum();
    let row = AdversaryRow {
        nodes: plan.nodes,
        lookup: p.lookup.name().into(),
        disjoint_paths: dht.disjoint_paths.get(),
        k: dht.k.get(),
        alpha: dht.alpha.get(),
        adversary_percent: p.percent,
        adversaries: bad.len(),
        lookups: k.issued,
        finished: k.finished,
        success_rate: round(k.success_rate(), 4),
        fooled_rate: share(k.wrong),
        failed_rate: share(failed),
        hops_mean: round(k.hops.mean(), 3),
        latency_ms_p50: round(k.latency_us.value_at_quantile(0.5) as f64 / 1e3, 1),
        latency_ms_p99: round(k.latency_us.value_at_quantile(0.99) as f64 / 1e3, 1),
        requests_per_lookup: if k.finished == 0 {
            0.0
        } else {
            round(k.requests as f64 / k.finished as f64, 2)
        },
        table_adversary_frac: round(table_share(&sim, &bad), 4),
        forged: sim.stats().forged,
    };
    let run = RunRecord::of(&sim, format!("{}%/{}", p.percent, row.lookup));
    progress.note(&format!(
        "adversary: end {} digest={} success={}",
        run.label, run.digest, row.success_rate
    ));
    Ok((row, run))
}

/// Over every honest node's routing table, the share of contacts that are
/// adversaries (read through the node's public getters).
fn table_share(sim: &Sim, bad: &[NodeIdx]) -> f64 {
    let (mut all, mut adversarial) = (0u64, 0u64);
    for i in 0..sim.len() as u32 {
        if bad.binary_search(&NodeIdx(i)).is_ok() {
            continue;
        }
        if let Some(node) = sim.node(NodeIdx(i)) {
            for c in node.routing_table().contacts() {
                all += 1;
                adversarial += u64::from(bad.binary_search(&c.addr).is_ok());
            }
        }
    }
    if all == 0 {
        0.0
    } else {
        adversarial as f64 / all as f64
    }
}

/// The table printed on stdout.
pub fn render(rows: &[AdversaryRow]) -> String {
    let header = [
        "nodes",
        "lookup",
        "d",
        "k",
        "alpha",
        "adv_%",
        "lookups",
        "success",
        "fooled",
        "failed",
        "hops",
        "lat_p50_ms",
        "lat_p99_ms",
        "reqs",
        "table_adv",
    ];
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.nodes.to_string(),
                r.lookup.clone(),
                r.disjoint_paths.to_string(),
                r.k.to_string(),
                r.alpha.to_string(),
                r.adversary_percent.to_string(),
                r.lookups.to_string(),
                format!("{:.4}", r.success_rate),
                format!("{:.4}", r.fooled_rate),
                format!("{:.4}", r.failed_rate),
                format!("{:.2}", r.hops_mean),
                format!("{:.0}", r.latency_ms_p50),
                format!("{:.0}", r.latency_ms_p99),
                format!("{:.1}", r.requests_per_lookup),
                format!("{:.3}", r.table_adversary_frac),
            ]
        })
        .collect();
    table::render(&header, &cells)
}

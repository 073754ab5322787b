//! `nat`: what NATs cost lookups and fetches, and what client mode, relays
//! and hole punching win back. A share of the nodes (0 to 80 %) sits behind
//! NATs of three kinds ([`distroweb_sim::network::nat`]); the NATed nodes run
//! in one of three modes:
//!
//! - `naive`: as if public, the behaviour before client mode. Peers put them
//!   in routing tables and records at an address that drops what it did not
//!   ask for, so lookups wait out timeouts on them and their content cannot
//!   be fetched from them, unless they happened to talk to the reader lately.
//! - `client`: client mode. Nobody routes through them and no record names
//!   them, so lookups stay on public nodes; but what they publish has no
//!   provider anyone can find.
//! - `relays`: client mode with a reservation at a public relay: records
//!   name them, a reader reaches them through the relay, and the two ends
//!   upgrade to a direct connection (a reversal with a public reader, a hole
//!   punch between two NATed ones) when they can.
//!
//! Provider lookups are for keys announced by public nodes (they have a
//! record in every mode), by random nodes, public or not. Fetches are of
//! small files, half published by public nodes and half by NATed ones, each
//! fetched once by a random other node; a successful fetch from a NATed
//! publisher is classed by the connection it used (the NAT model's table):
//! direct (the publisher had dialled the reader), reversed, punched or
//! relayed.

use core::time::Duration;
use std::collections::BTreeMap;
use std::path::Path;

use distroweb_protocol::{Event, Id, QueryKind, QueryOutput, Time};
use distroweb_sim::network::{NatConfig, NatMode, Path as NatPath};
use distroweb_sim::{Action, LookupScenario, NodeIdx, Sim, SimConfig, Window, Workload};
use hdrhistogram::Histogram;
use plotters::prelude::*;
use serde::Serialize;

use crate::error::ExperimentError;
use crate::hops::round;
use crate::output::Output;
use crate::plot::{draw_legend, plot_error, PALETTE};
use crate::progress::Progress;
use crate::record::{Record, RunRecord};
use crate::table;

/// Lookups and fetches with a share of the nodes behind NATs: naive, in
/// client mode, and in client mode with relays and hole punching.
#[derive(Debug, Clone, clap::Args)]
pub struct NatArgs {
    /// Shared options.
    #[command(flatten)]
    pub common: crate::cli::Common,
    /// Nodes; default 2000 (quick: 150).
    #[arg(long)]
    pub nodes: Option<u32>,
    /// Shares of the nodes behind NATs to sweep, percent (repeat or
    /// comma-separate); default 0, 20, 40, 60, 80 (quick: 0, 80).
    #[arg(long, value_delimiter = ',')]
    pub nated_percent: Vec<u32>,
    /// How the NATed nodes run (repeat or comma-separate); default all three.
    #[arg(long, value_delimiter = ',', value_enum)]
    pub modes: Vec<RunMode>,
    /// Of the NATed nodes, percent behind endpoint-independent NATs; default 80.
    #[arg(long)]
    pub eim_percent: Option<u32>,
    /// ... behind address-dependent NATs; default 10.
    #[arg(long)]
    pub address_percent: Option<u32>,
    /// ... behind symmetric NATs; default 10.
    #[arg(long)]
    pub symmetric_percent: Option<u32>,
    /// Provider lookups, by random nodes; default 2000 (quick: 150).
    #[arg(long)]
    pub lookups: Option<u32>,
    /// Keys, each announced by a random public node; default 100 (quick: 30).
    #[arg(long)]
    pub keys: Option<u32>,
    /// Files published by public nodes, and as many by NATed ones, each
    /// fetched once; default 200 (quick: 20).
    #[arg(long)]
    pub contents: Option<u32>,
    /// Size of each file, bytes; default 8192.
    #[arg(long)]
    pub content_bytes: Option<usize>,
    /// Seconds over which the lookups and fetches are spread; default 120
    /// (quick: 60).
    #[arg(long)]
    pub window_s: Option<u64>,
    /// Quiet seconds between the last join and the announcements: longer
    /// than the NATs' mapping timeout (300 s), so the connections the joins
    /// opened have closed, as in a network that has run for a while;
    /// default 600.
    #[arg(long)]
    pub settle_s: Option<u64>,
}

impl NatArgs {
    /// Every option at its default, with `common`.
    pub fn with(common: crate::cli::Common) -> Self {
        NatArgs {
            common,
            nodes: None,
            nated_percent: Vec::new(),
            modes: Vec::new(),
            eim_percent: None,
            address_percent: None,
            symmetric_percent: None,
            lookups: None,
            keys: None,
            contents: None,
            content_bytes: None,
            window_s: None,
            settle_s: None,
        }
    }
}

/// How the NATed nodes of a run behave.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunMode {
    /// As if public.
    Naive,
    /// Client mode.
    Client,
    /// Client mode with a relay reservation and hole punching.
    Relays,
}

impl RunMode {
    fn name(self) -> &'static str {
        match self {
            RunMode::Naive => "naive",
            RunMode::Client => "client",
            RunMode::Relays => "relays",
        }
    }

    fn nat_mode(self) -> NatMode {
        match self {
            RunMode::Naive => NatMode::Naive,
            RunMode::Client => NatMode::Client,
            RunMode::Relays => NatMode::Relays,
        }
    }
}

/// The options with defaults filled in.
#[derive(Clone, Debug, Serialize)]
pub struct NatPlan {
    /// Master seed.
    pub seed: u64,
    /// Nodes.
    pub nodes: u32,
    /// NATed shares, percent.
    pub nated_percent: Vec<u32>,
    /// Modes.
    pub modes: Vec<RunMode>,
    /// Mix of kinds among NATed nodes, percent: endpoint-independent,
    /// address-dependent, symmetric.
    pub mix_percent: [u32; 3],
    /// Provider lookups.
    pub lookups: u32,
    /// Keys.
    pub keys: u32,
    /// Files per publisher class.
    pub contents: u32,
    /// Bytes per file.
    pub content_bytes: usize,
    /// Seconds of lookups and fetches.
    pub window_s: u64,
    /// Quiet seconds after the last join.
    pub settle_s: u64,
    /// The scenario's protocol and simulator settings.
    #[serde(skip)]
    pub overrides: crate::scenario::Overrides,
}

/// One run: a mode at a NATed share.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NatPoint {
    /// How NATed nodes run.
    pub mode: RunMode,
    /// Share of the nodes behind NATs, percent.
    pub nated_percent: u32,
}

impl NatPlan {
    /// Fills in the defaults and checks the options.
    pub fn from_args(a: &NatArgs) -> Result<Self, ExperimentError> {
        let quick = a.common.quick;
        let nated_percent = match (a.nated_percent.is_empty(), quick) {
            (false, _) => a.nated_percent.clone(),
            (true, true) => vec![0, 80],
            (true, false) => vec![0, 20, 40, 60, 80],
        };
        let modes = if a.modes.is_empty() {
            vec![RunMode::Naive, RunMode::Client, RunMode::Relays]
        } else {
            a.modes.clone()
        };
        let plan = NatPlan {
            seed: a.common.seed,
            nodes: a.nodes.unwrap_or(if quick { 150 } else { 2000 }),
            nated_percent,
            modes,
            mix_percent: [
                a.eim_percent.unwrap_or(80),
                a.address_percent.unwrap_or(10),
                a.symmetric_percent.unwrap_or(10),
            ],
            lookups: a.lookups.unwrap_or(if quick { 150 } else { 2000 }),
            keys: a.keys.unwrap_or(if quick { 30 } else { 100 }),
            contents: a.contents.unwrap_or(if quick { 20 } else { 200 }),
            content_bytes: a.content_bytes.unwrap_or(8192),
            window_s: a.window_s.unwrap_or(if quick { 60 } else { 120 }),
            settle_s: a.settle_s.unwrap_or(600),
            overrides: a.common.overrides.clone(),
        };
        let usage = |m: &str| Err(ExperimentError::Usage(m.into()));
        if plan.nodes < 10 {
            return usage("--nodes: at least 10");
        }
        if plan.nated_percent.iter().any(|p| *p > 90) {
            return usage("--nated-percent: from 0 to 90 (some nodes must be public)");
        }
        if plan.mix_percent.iter().sum::<u32>() == 0 {
            return usage("--eim-percent, --address-percent, --symmetric-percent: not all 0");
        }
        if plan.window_s == 0 || plan.keys == 0 || plan.content_bytes == 0 {
            return usage("--window-s, --keys and --content-bytes must be at least 1");
        }
        Ok(plan)
    }

    /// When announcements and publications start: every node has joined,
    /// plus the quiet time.
    fn start(&self) -> Time {
        let join = LookupScenario::per_node(self.nodes).join_interval;
        Time::ZERO + join * self.nodes + Duration::from_secs(self.settle_s)
    }
}

/// One row of `nat.csv`: a mode at a NATed share.
#[derive(Clone, Debug, Serialize)]
pub struct NatRow {
    /// `naive`, `client` or `relays`.
    pub mode: &'static str,
    /// Share of the nodes behind NATs, percent.
    pub nated_percent: u32,
    /// Nodes.
    pub nodes: u32,
    /// Nodes behind NATs.
    pub nated_nodes: u32,
    /// Provider lookups started.
    pub lookups: u64,
    /// Share that found a real provider.
    pub lookup_success: f64,
    /// Median latency of the successful lookups, ms.
    pub lookup_ms_p50: f64,
    /// 90th percentile, ms.
    pub lookup_ms_p90: f64,
    /// Median time of the announcements of those keys (by public nodes),
    /// ms: a walk that must hear from the key's closest nodes, where a
    /// provider lookup stops at the first provider.
    pub announce_ms_p50: f64,
    /// 90th percentile, ms.
    pub announce_ms_p90: f64,
    /// Fetches of files published by public nodes.
    pub public_fetches: u64,
    /// Share that completed.
    pub public_fetch_success: f64,
    /// Median time of the completed ones, ms.
    pub public_fetch_ms_p50: f64,
    /// Fetches of files published by NATed nodes.
    pub nated_fetches: u64,
    /// Share that completed.
    pub nated_fetch_success: f64,
    /// Median time of the completed ones, ms.
    pub nated_fetch_ms_p50: f64,
    /// Of the completed fetches from NATed publishers, the share over a
    /// connection the publisher had opened to the reader.
    pub via_direct: f64,
    /// ... over a reversal (public reader, the publisher dialled back).
    pub via_reversed: f64,
    /// ... over a hole punch.
    pub via_punched: f64,
    /// ... through the publisher's relay.
    pub via_relayed: f64,
    /// Hole punches tried (between two NATed nodes).
    pub punches: u64,
    /// Share that worked.
    pub punch_success: f64,
    /// Messages NATs dropped as unsolicited.
    pub nat_blocked: u64,
    /// Messages carried through relays.
    pub relayed_messages: u64,
}

/// Runs the sweep, writes `nat.csv`, `.svg` and `.json`, prints the table.
pub fn run(args: &NatArgs, command: &str) -> Result<Vec<NatRow>, ExperimentError> {
    crate::builtin::run::<NatPlan>(args, command)
}

impl crate::builtin::BuiltIn for NatPlan {
    const NAME: &'static str = "nat";
    const OUTPUT: &'static str = "nat";
    const SCENARIO: &'static str = include_str!("../scenarios/nat.toml");
    type Args = NatArgs;
    type Point = NatPoint;
    type Measured = (NatRow, RunRecord);
    type Output = Vec<NatRow>;

    fn common(args: &NatArgs) -> &crate::cli::Common {
        &args.common
    }

    fn common_mut(args: &mut NatArgs) -> &mut crate::cli::Common {
        &mut args.common
    }

    fn plan(args: &NatArgs) -> Result<Self, ExperimentError> {
        NatPlan::from_args(args)
    }

    fn points(&self) -> Vec<NatPoint> {
        self.modes
            .iter()
            .flat_map(|&mode| {
                self.nated_percent.iter().map(move |&p| NatPoint {
                    mode,
                    nated_percent: p,
                })
            })
            .collect()
    }

    fn config(&self, p: &NatPoint) -> SimConfig {
        let mix = self.mix_percent.map(f64::from);
        let mut c = SimConfig {
            seed: self.seed,
            nodes: self.nodes,
            keep_events: true,
            ..SimConfig::default()
        };
        c.network.nat = NatConfig {
            mode: p.mode.nat_mode(),
            ..NatConfig::default()
        }
        .with_share(f64::from(p.nated_percent) / 100.0, mix);
        c
    }

    fn weight(&self, p: &NatPoint) -> u64 {
        // Naive runs wait out the most timeouts.
        u64::from(p.nated_percent) * if p.mode == RunMode::Naive { 2 } else { 1 }
    }

    fn measure(
        &self,
        p: &NatPoint,
        command: &str,
        progress: &Progress,
    ) -> Result<Self::Measured, ExperimentError> {
        measure(self, *p, command, progress)
    }

    fn publish(
        &self,
        out: &Output,
        command: &str,
        points: &[NatPoint],
        measured: Vec<Self::Measured>,
    ) -> Result<Vec<NatRow>, ExperimentError> {
        let (rows, records): (Vec<NatRow>, Vec<RunRecord>) = measured.into_iter().unzip();
        let base = self.overrides.apply(self.config(&points[0]))?;
        let record = Record::new("nat", command, self, &base, self, records);
        out.publish("nat", &rows, |svg| draw(svg, &rows), &record, &render(&rows))?;
        Ok(rows)
    }
}

/// A published file: who published it, whether from behind a NAT.
struct Content {
    publisher: NodeIdx,
    nated: bool,
}

/// Fetches of one publisher class.
#[derive(Default)]
struct Fetches {
    started: u64,
    done: u64,
    /// Completed fetches from NATed publishers by connection: direct,
    /// reversed, punched, relayed.
    via: [u64; 4],
}

fn histogram() -> Result<Histogram<u64>, ExperimentError> {
    Histogram::new_with_max(3_600_000_000, 3)
        .map_err(|e| ExperimentError::Usage(format!("histogram: {e}")))
}

fn measure(
    plan: &NatPlan,
    point: NatPoint,
    command: &str,
    progress: &Progress,
) -> Result<(NatRow, RunRecord), ExperimentError> {
    let config = plan
        .overrides
        .apply(crate::builtin::BuiltIn::config(plan, &point))?;
    let nodes = config.nodes;
    let label = format!("{} {}%", point.mode.name(), point.nated_percent);
    progress.detail(&format!("nat: start {label} {config}"));
    let mut sim = Sim::new(config)?;
    sim.set_reproduce(command);
    let (public, nated): (Vec<NodeIdx>, Vec<NodeIdx>) =
        (0..nodes).map(NodeIdx).partition(|n| !sim.network().is_nated(*n));
    let mut w = Workload::new(&sim);
    let join_interval = LookupScenario::per_node(nodes).join_interval;
    w.grow(&mut sim, nodes, Time::ZERO, join_interval, 3);
    let start = plan.start();
    let pick = |w: &mut Workload, of: &[NodeIdx]| of[w.node(of.len() as u32).index()];
    // Keys announced by public nodes: a record exists whatever the mode.
    let publish = Window::new(start, Duration::from_secs(20));
    let keys: Vec<Id> = (0..plan.keys)
        .map(|n| {
            let key = w.key(n);
            let node = pick(&mut w, &public);
            let at = w.instant(publish);
            sim.schedule(at, Action::Announce { node, key });
            key
        })
        .collect();
    let mut contents: BTreeMap<Id, Content> = BTreeMap::new();
    let mut files = Vec::new();
    for _ in 0..plan.contents {
        for (class, is_nated) in [(&public, false), (&nated, true)] {
            if class.is_empty() {
                continue;
            }
            let publisher = pick(&mut w, class);
            let data = w.content(plan.content_bytes);
            let at = w.instant(publish);
            let root = w
                .publish_file(&mut sim, publisher, at, data, "application/octet-stream")
                .map_err(|e| ExperimentError::Usage(format!("content: {e}")))?;
            files.push(root);
            contents.insert(
                root,
                Content {
                    publisher,
                    nated: is_nated,
                },
            );
        }
    }
    let measured = start + Duration::from_secs(30);
    let window = Window::new(measured, Duration::from_secs(plan.window_s));
    for _ in 0..plan.lookups {
        let node = w.node(nodes);
        let key = keys[w.node(plan.keys).index()];
        let at = w.instant(window);
        sim.schedule(at, Action::FindProviders { node, key });
    }
    for root in &files {
        let publisher = contents.get(root).map(|c| c.publisher);
        let reader = loop {
            let r = w.node(nodes);
            if Some(r) != publisher {
                break r;
            }
        };
        let at = w.instant(window);
        sim.schedule(at, Action::Fetch { node: reader, root: *root });
    }
    // Lookups end within the query timeout, fetches within the fetch timeout.
    let protocol = &sim.config().protocol;
    let tail = protocol.dht.query_timeout.max(protocol.transfer.fetch_timeout);
    let end = window.end() + tail + Duration::from_secs(5);
    let mut lookups = (0u64, 0u64);
    let mut lookup_ms = histogram()?;
    let mut fetch_ms = [histogram()?, histogram()?];
    let mut announce_ms = histogram()?;
    let mut fetches: [Fetches; 2] = Default::default();
    for c in contents.values() {
        fetches[usize::from(c.nated)].started += 1;
    }
    let mut tick = progress.run();
    while sim.now() < end {
        sim.run_until((sim.now() + Duration::from_secs(5)).min(end));
        let now = sim.now();
        for (_, node, e) in sim.take_events() {
            match e {
                Event::QueryFinished {
                    kind: QueryKind::FindProviders,
                    target,
                    result,
                    stats,
                    ..
                } if stats.started >= measured && keys.contains(&target) => {
                    let holders = sim.announcers(&target);
                    let found = matches!(&result, Ok(QueryOutput::Providers(p))
                        if p.iter().any(|c| holders.contains(&c.addr)));
                    lookups.0 += 1;
                    if found {
                        lookups.1 += 1;
                        let us = stats.finished.saturating_since(stats.started).as_micros();
                        lookup_ms.saturating_record(u64::try_from(us).unwrap_or(u64::MAX));
                    }
                }
                Event::QueryFinished {
                    kind: QueryKind::Announce,
                    target,
                    stats,
                    ..
                } if stats.started >= start && keys.contains(&target) => {
                    let us = stats.finished.saturating_since(stats.started).as_micros();
                    announce_ms.saturating_record(u64::try_from(us).unwrap_or(u64::MAX));
                }
                Event::FetchFinished {
                    root,
                    result: Ok(_),
                    stats,
                    ..
                } => {
                    let Some(c) = contents.get(&root) else {
                        continue;
                    };
                    let f = &mut fetches[usize::from(c.nated)];
                    f.done += 1;
                    let us = stats.finished.saturating_since(stats.started).as_micros();
                    fetch_ms[usize::from(c.nated)]
                        .saturating_record(u64::try_from(us).unwrap_or(u64::MAX));
                    if !c.nated {
                        continue;
                    }
                    let link = (sim.network().nat()).and_then(|n| n.link(c.publisher, node, now));
                    let via = match link {
                        Some(NatPath::Reversed) => 1,
                        Some(NatPath::Punched) => 2,
                        Some(NatPath::Relayed(_)) => 3,
                        Some(NatPath::Outbound) | None => 0,
                    };
                    f.via[via] += 1;
                }
                _ => {}
            }
        }
        tick(sim.now().as_micros() as f64 / end.as_micros().max(1) as f64);
    }
    let share = |n: u64, of: u64| round(n as f64 / of.max(1) as f64, 4);
    let ms = |h: &Histogram<u64>, q: f64| round(h.value_at_quantile(q) as f64 / 1e3, 1);
    let nat_stats = sim.network().nat().map(|n| *n.stats()).unwrap_or_default();
    let [pf, nf] = &fetches;
    let row = NatRow {
        mode: point.mode.name(),
        nated_percent: point.nated_percent,
        nodes,
        nated_nodes: nated.len() as u32,
        lookups: lookups.0,
        lookup_success: share(lookups.1, lookups.0),
        lookup_ms_p50: ms(&lookup_ms, 0.5),
        lookup_ms_p90: ms(&lookup_ms, 0.9),
        announce_ms_p50: ms(&announce_ms, 0.5),
        announce_ms_p90: ms(&announce_ms, 0.9),
        public_fetches: pf.started,
        public_fetch_success: share(pf.done, pf.started),
        public_fetch_ms_p50: ms(&fetch_ms[0], 0.5),
        nated_fetches: nf.started,
        nated_fetch_success: share(nf.done, nf.started),
        nated_fetch_ms_p50: ms(&fetch_ms[1], 0.5),
        via_direct: share(nf.via[0], nf.done),
        via_reversed: share(nf.via[1], nf.done),
        via_punched: share(nf.via[2], nf.done),
        via_relayed: share(nf.via[3], nf.done),
        punches: nat_stats.punches,
        punch_success: share(nat_stats.punched, nat_stats.punches),
        nat_blocked: sim.stats().nat_blocked,
        relayed_messages: nat_stats.relayed,
    };
    let run = RunRecord::of(&sim, label);
    progress.note(&format!(
        "nat: end {} digest={} blocked {} relayed {}",
        run.label, run.digest, row.nat_blocked, row.relayed_messages
    ));
    Ok((row, run))
}

/// The table printed on stdout.
pub fn render(rows: &[NatRow]) -> String {
    let header = [
        "mode",
        "nated_%",
        "lookups",
        "lookup_ok",
        "lk_p50_ms",
        "lk_p90_ms",
        "ann_p50_ms",
        "ann_p90_ms",
        "pub_fetch_ok",
        "pub_fetch_p50_ms",
        "nat_fetch_ok",
        "nat_fetch_p50_ms",
        "direct",
        "reversed",
        "punched",
        "relayed",
        "punches",
        "punch_ok",
    ];
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.mode.to_owned(),
                r.nated_percent.to_string(),
                r.lookups.to_string(),
                format!("{:.3}", r.lookup_success),
                format!("{:.0}", r.lookup_ms_p50),
                format!("{:.0}", r.lookup_ms_p90),
                format!("{:.0}", r.announce_ms_p50),
                format!("{:.0}", r.announce_ms_p90),
                format!("{:.3}", r.public_fetch_success),
                format!("{:.0}", r.public_fetch_ms_p50),
                format!("{:.3}", r.nated_fetch_success),
                format!("{:.0}", r.nated_fetch_ms_p50),
                format!("{:.2}", r.via_direct),
                format!("{:.2}", r.via_reversed),
                format!("{:.2}", r.via_punched),
                format!("{:.2}", r.via_relayed),
                r.punches.to_string(),
                format!("{:.2}", r.punch_success),
            ]
        })
        .collect();
    table::render(&header, &cells)
}

/// `nat.svg`: against the NATed share, one line per mode: lookup success,
/// p90 latency (provider lookups solid, announcements dashed), fetch success (NATed publishers
/// solid, public dashed), and how fetches from NATed publishers connected.
fn draw(path: &Path, rows: &[NatRow]) -> Result<(), ExperimentError> {
    let err = |e: &dyn std::fmt::Display| plot_error(path, e);
    let root = SVGBackend::new(path, (1400, 1000)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let panels = root.split_evenly((2, 2));
    let x_hi = rows.iter().map(|r| r.nated_percent).max().unwrap_or(0).max(10) as f64 * 1.05;
    let mut modes: Vec<&str> = Vec::new();
    for r in rows {
        if !modes.contains(&r.mode) {
            modes.push(r.mode);
        }
    }
    let series = |mode: &str, f: &dyn Fn(&NatRow) -> Option<f64>| -> Vec<(f64, f64)> {
        rows.iter()
            .filter(|r| r.mode == mode)
            .filter_map(|r| f(r).map(|y| (f64::from(r.nated_percent), y)))
            .collect()
    };
    let lat_hi = (rows.iter())
        .map(|r| r.lookup_ms_p90.max(r.announce_ms_p90))
        .fold(100.0, f64::max)
        * 1.1;
    type Line<'a> = (&'a str, &'a dyn Fn(&NatRow) -> Option<f64>, bool);
    let lookup_ok = |r: &NatRow| Some(r.lookup_success);
    let p90 = |r: &NatRow| (r.lookup_success > 0.0).then_some(r.lookup_ms_p90);
    let announce = |r: &NatRow| (r.announce_ms_p90 > 0.0).then_some(r.announce_ms_p90);
    let nated_ok = |r: &NatRow| (r.nated_fetches > 0).then_some(r.nated_fetch_success);
    let public_ok = |r: &NatRow| (r.public_fetches > 0).then_some(r.public_fetch_success);
    let panels_spec: [(&str, &str, f64, Vec<Line<'_>>); 3] = [
        (
            "Provider lookups that found a real provider",
            "share",
            1.02,
            vec![("", &lookup_ok, false)],
        ),
        (
            "p90 latency, ms (provider lookups solid, announcements dashed)",
            "ms",
            lat_hi,
            vec![("", &p90, false), ("", &announce, true)],
        ),
        (
            "Fetches completed (NATed publisher solid, public dashed)",
            "share",
            1.02,
            vec![("", &nated_ok, false), ("", &public_ok, true)],
        ),
    ];
    for (area, (title, y_desc, y_hi, lines)) in panels.iter().zip(panels_spec) {
        let mut chart = ChartBuilder::on(area)
            .caption(title, ("sans-serif", 18))
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..x_hi, 0.0..y_hi)
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .light_line_style(WHITE)
            .x_desc("nodes behind NATs, %")
            .y_desc(y_desc)
            .draw()
            .map_err(|e| err(&e))?;
        for (i, mode) in modes.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            for (n, (_, f, dashed)) in lines.iter().enumerate() {
                let points = series(mode, *f);
                let style = color.stroke_width(2);
                if *dashed {
                    chart
                        .draw_series(DashedLineSeries::new(points, 6, 4, style))
                        .map_err(|e| err(&e))?;
                    continue;
                }
                let drawn = chart
                    .draw_series(LineSeries::new(points, style))
                    .map_err(|e| err(&e))?;
                if n == 0 {
                    drawn.label(*mode).legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                    });
                }
            }
        }
        draw_legend(&mut chart, SeriesLabelPosition::LowerLeft).map_err(|e| err(&e))?;
    }
    // How the completed fetches from NATed publishers connected, with relays.
    let mut chart = ChartBuilder::on(&panels[3])
        .caption(
            "relays: completed fetches from NATed publishers, by connection",
            ("sans-serif", 18),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..x_hi, 0.0..1.02)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .light_line_style(WHITE)
        .x_desc("nodes behind NATs, %")
        .y_desc("share")
        .draw()
        .map_err(|e| err(&e))?;
    type Via = fn(&NatRow) -> f64;
    let vias: [(&str, Via); 4] = [
        ("direct", |r| r.via_direct),
        ("reversed", |r| r.via_reversed),
        ("punched", |r| r.via_punched),
        ("relayed", |r| r.via_relayed),
    ];
    for (i, (name, f)) in vias.into_iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let points = series("relays", &|r| (r.nated_fetches > 0).then(|| f(r)));
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(|e| err(&e))?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    draw_legend(&mut chart, SeriesLabelPosition::UpperRight).map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

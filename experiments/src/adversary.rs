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
//!
//! Two more attacks are axes of the sweep. A record flood (`--flood n`): each
//! adversary announces itself as a provider of `n` looked-up keys once the
//! honest announcements are in, so the keys' trackers hold honest records
//! among many fakes; the rows count the honest records still held at the end.
//! Targeted placement (`--placement targeted`): each adversary's id is ground
//! next to one looked-up key ([`distroweb_sim::adversary::grind`]) with
//! `2^grind_bits` key generations, under an id puzzle of `puzzle_bits` that
//! makes each generation `2^puzzle_bits` times dearer (S/Kademlia §4.1).
//! Nodes join through honest peers by default, as a deployment's configured
//! bootstrap list is; `--seeds any` lets them join through adversaries.

use core::num::NonZeroUsize;
use core::time::Duration;

use distroweb_protocol::{nonzero, Id, Metric, QueryKind};
use distroweb_sim::adversary::{grind, install, pick, Attack};
use distroweb_sim::seed::{content_key, stream_rng, Stream};
use distroweb_sim::{Action, LookupScenario, NodeIdx, Seeds, Sim, SimConfig, Window, Workload};
use serde::Serialize;

use crate::error::ExperimentError;
use crate::hops::round;
use crate::output::Output;
use crate::plot;
use crate::progress::Progress;
use crate::record::{Record, RunRecord};
use crate::table;

/// Do provider lookups find real providers when a share of the nodes eclipse
/// lookups and lie about providers: plain against disjoint (S/Kademlia)
/// lookups, 0 to 50 % adversaries.
#[derive(Debug, Clone, clap::Args)]
pub struct AdversaryArgs {
    /// Shared options.
    #[command(flatten)]
    pub common: crate::cli::Common,
    /// Nodes, adversaries included; default 10000 (quick: 300).
    #[arg(long)]
    pub nodes: Option<u32>,
    /// Adversarial shares to sweep, percent (repeat or comma-separate); default
    /// 0, 10, 20, 30, 40, 50 (quick: 0, 20, 30).
    #[arg(long, value_delimiter = ',')]
    pub percents: Vec<u32>,
    /// `d` of the disjoint lookups (with k = 2d and α = 1 per path); default 8.
    #[arg(long)]
    pub paths: Option<core::num::NonZeroUsize>,
    /// Provider lookups per point, by honest nodes; default 1000 (quick: 150).
    #[arg(long)]
    pub lookups: Option<u32>,
    /// `k` (and `r`) of the disjoint lookups; default 2d (S/Kademlia).
    #[arg(long)]
    pub k: Option<core::num::NonZeroUsize>,
    /// What every adversary does (repeat or comma-separate); default eclipse,
    /// fake-providers.
    #[arg(long, value_delimiter = ',', value_enum)]
    pub attacks: Vec<AttackName>,
    /// Where adversary ids land: `random` (as honest ids) or `targeted`
    /// (each ground next to one of the looked-up keys); default random.
    #[arg(long, value_enum, default_value_t = Placement::Random)]
    pub placement: Placement,
    /// Key generations a targeted adversary affords, as bits (2^b keys);
    /// default 16.
    #[arg(long)]
    pub grind_bits: Option<u32>,
    /// Id puzzle difficulties to sweep with targeted placement, bits (repeat
    /// or comma-separate); default 0 and 8 (the live node's `id_difficulty_bits`).
    #[arg(long, value_delimiter = ',')]
    pub puzzle_bits: Vec<u32>,
    /// Record flood: provider announcements each adversary makes for the
    /// looked-up keys after the honest ones are in; default 0.
    #[arg(long)]
    pub flood: Option<u32>,
    /// Whom nodes join through: `honest` peers (a deployment's configured
    /// bootstrap list) or `any` established peers, adversaries included;
    /// default honest.
    #[arg(long, value_enum, default_value_t = JoinSeeds::Honest)]
    pub seeds: JoinSeeds,
    /// Peers on a disjoint path that must name providers before the path
    /// ends (the protocol's `records.path_provider_answers`); default the
    /// protocol's (2).
    #[arg(long)]
    pub answers: Option<core::num::NonZeroUsize>,
}

impl AdversaryArgs {
    /// The defaults, with these shared options (for tests and `experiment all`).
    pub fn with(common: crate::cli::Common) -> Self {
        AdversaryArgs {
            common,
            nodes: None,
            percents: Vec::new(),
            paths: None,
            lookups: None,
            k: None,
            attacks: Vec::new(),
            placement: Placement::Random,
            grind_bits: None,
            puzzle_bits: Vec::new(),
            flood: None,
            seeds: JoinSeeds::Honest,
            answers: None,
        }
    }
}

/// An adversary's behaviour, by name (`distroweb_sim::Attack`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AttackName {
    /// Swallows everything sent to it.
    DropAll,
    /// Answers lookups with fellow adversaries only.
    Eclipse,
    /// Names fellow adversaries as providers; they never serve.
    FakeProviders,
    /// Serves blocks with their bytes flipped.
    CorruptBlocks,
}

/// Where adversary ids land.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Placement {
    /// Drawn like honest ids.
    Random,
    /// Ground next to a looked-up key (`distroweb_sim::adversary::grind`).
    Targeted,
}

/// Whom nodes join through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum JoinSeeds {
    /// Honest established peers only.
    Honest,
    /// Any established peers, adversaries included.
    Any,
}

/// The attacks every adversary of this experiment mounts by default.
pub const ATTACKS: [Attack; 2] = [Attack::Eclipse, Attack::FakeProviders];

/// Key generations a targeted adversary affords by default, as bits.
pub const GRIND_BITS: u32 = 16;

/// The id puzzle difficulties swept with targeted placement by default: none,
/// and the live node's default (`net`'s `id_difficulty_bits`).
pub const PUZZLE_BITS: [u32; 2] = [0, 8];

fn attack(a: AttackName) -> Attack {
    match a {
        AttackName::DropAll => Attack::DropAll,
        AttackName::Eclipse => Attack::Eclipse,
        AttackName::FakeProviders => Attack::FakeProviders,
        AttackName::CorruptBlocks => Attack::CorruptBlocks,
    }
}

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
    /// Id puzzle difficulty, bits (targeted placement; 0 otherwise).
    pub puzzle_bits: u32,
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
    /// `random` or `targeted` adversary ids.
    pub placement: String,
    /// Key generations a targeted adversary affords, bits (0 with random ids).
    pub grind_bits: u32,
    /// Id puzzle difficulty, bits (0 with random ids).
    pub puzzle_bits: u32,
    /// Share of the looked-up keys' `k` closest nodes that are adversaries
    /// (what placement achieved).
    pub closest_adversary_frac: f64,
    /// Share of the looked-up keys whose closest node is an adversary.
    pub nearest_adversary_frac: f64,
    /// Provider announcements each adversary flooded.
    pub flood: u32,
    /// `honest` or `any`: whom nodes joined through.
    pub seeds: String,
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
    /// Per key, honest trackers still holding the honest announcer's record
    /// at the end (mean over keys).
    pub honest_records_per_key: f64,
    /// Per key, records naming adversaries held by honest trackers at the
    /// end (mean over keys).
    pub adversary_records_per_key: f64,
    /// Record writes honest trackers refused (no token yet, quotas, full lists).
    pub records_refused: u64,
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
    /// Where adversary ids land.
    #[serde(skip)]
    pub placement: Placement,
    /// `placement` by name.
    pub placement_name: &'static str,
    /// Key generations a targeted adversary affords, bits.
    pub grind_bits: u32,
    /// Id puzzle difficulties swept (targeted placement), bits.
    pub puzzle_bits: Vec<u32>,
    /// Provider announcements each adversary floods.
    pub flood: u32,
    /// Whom nodes join through.
    #[serde(skip)]
    pub seeds: JoinSeeds,
    /// `seeds` by name.
    pub seeds_name: &'static str,
    /// Peers on a disjoint path that must name providers before it ends.
    pub answers: NonZeroUsize,
    /// Protocol and simulator settings from a scenario file, applied to every
    /// point's configuration last.
    #[serde(skip)]
    pub overrides: crate::scenario::Overrides,
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
        let mut attacks: Vec<Attack> = args.attacks.iter().map(|a| attack(*a)).collect();
        if attacks.is_empty() {
            attacks = ATTACKS.to_vec();
        }
        attacks.sort();
        attacks.dedup();
        let grind_bits = args.grind_bits.unwrap_or(GRIND_BITS);
        if grind_bits > 64 {
            return Err(ExperimentError::Usage(
                "--grind-bits: at most 64 (2^64 key generations)".into(),
            ));
        }
        let puzzle_bits = match args.placement {
            Placement::Random => vec![0],
            Placement::Targeted if args.puzzle_bits.is_empty() => PUZZLE_BITS.to_vec(),
            Placement::Targeted => args.puzzle_bits.clone(),
        };
        Ok(AdversaryPlan {
            seed: args.common.seed,
            nodes,
            percents,
            paths,
            k,
            lookups: args.lookups.unwrap_or(if quick { 150 } else { 1_000 }),
            keys: (nodes / 10).max(1),
            attacks: attacks.iter().map(|a| a.name()).collect(),
            placement: args.placement,
            placement_name: placement_name(args.placement),
            grind_bits: if args.placement == Placement::Targeted {
                grind_bits
            } else {
                0
            },
            puzzle_bits,
            flood: args.flood.unwrap_or(0),
            seeds: args.seeds,
            answers: args
                .answers
                .unwrap_or(distroweb_protocol::RecordsConfig::default().path_provider_answers),
            seeds_name: match args.seeds {
                JoinSeeds::Honest => "honest",
                JoinSeeds::Any => "any",
            },
            overrides: args.common.overrides.clone(),
        })
    }

    /// The attacks, as the simulator's wrapper takes them.
    pub fn attack_list(&self) -> Vec<Attack> {
        let all = [
            Attack::DropAll,
            Attack::Eclipse,
            Attack::FakeProviders,
            Attack::CorruptBlocks,
        ];
        all.into_iter()
            .filter(|a| self.attacks.contains(&a.name()))
            .collect()
    }

    /// Every point, in CSV order: by share, then puzzle, plain then disjoint.
    pub fn points(&self) -> Vec<AdversaryPoint> {
        let mut points = Vec::new();
        for &percent in &self.percents {
            for &puzzle_bits in &self.puzzle_bits {
                for lookup in [Lookup::Plain, Lookup::Disjoint { paths: self.paths }] {
                    points.push(AdversaryPoint {
                        percent,
                        puzzle_bits,
                        lookup,
                    });
                }
            }
        }
        points
    }

    /// The keys published and looked up, in order.
    pub fn keys(&self) -> Vec<Id> {
        (0..self.keys).map(|n| content_key(self.seed, n)).collect()
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
            c.protocol.records.path_provider_answers = self.answers;
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
        self.cast(percent, 0).into_iter().map(|(n, _)| n).collect()
    }

    /// The adversaries at `percent` and, with targeted placement, the id each
    /// grinds under a puzzle of `puzzle_bits`: adversary `j` (in slot order)
    /// lands next to key `j mod keys`. The slots are the same for every
    /// puzzle; the ids come from the same stream, after the slots.
    pub fn cast(&self, percent: u32, puzzle_bits: u32) -> Vec<(NodeIdx, Option<Id>)> {
        let count = (u64::from(self.nodes) * u64::from(percent) / 100) as u32;
        let mut rng = stream_rng(self.seed, Stream::Adversary);
        let bad = pick(self.nodes, count, &mut rng);
        if self.placement == Placement::Random {
            return bad.into_iter().map(|n| (n, None)).collect();
        }
        let keys = self.keys();
        bad.into_iter()
            .enumerate()
            .map(|(j, n)| {
                let key = keys[j % keys.len()];
                (n, Some(grind(&key, self.grind_bits, puzzle_bits, &mut rng)))
            })
            .collect()
    }
}

fn placement_name(p: Placement) -> &'static str {
    match p {
        Placement::Random => "random",
        Placement::Targeted => "targeted",
    }
}

/// Runs the sweep, writes `adversary.csv`, `.svg` and `.json`, prints the table.
pub fn run(args: &AdversaryArgs, command_line: &str) -> Result<Vec<AdversaryRow>, ExperimentError> {
    crate::builtin::run::<AdversaryPlan>(args, command_line)
}

impl crate::builtin::BuiltIn for AdversaryPlan {
    const NAME: &'static str = "adversary";
    const OUTPUT: &'static str = "adversary";
    const SCENARIO: &'static str = include_str!("../scenarios/adversary.toml");
    type Args = AdversaryArgs;
    type Point = AdversaryPoint;
    type Measured = (AdversaryRow, RunRecord);
    type Output = Vec<AdversaryRow>;

    fn common(args: &AdversaryArgs) -> &crate::cli::Common {
        &args.common
    }

    fn common_mut(args: &mut AdversaryArgs) -> &mut crate::cli::Common {
        &mut args.common
    }

    fn plan(args: &AdversaryArgs) -> Result<Self, ExperimentError> {
        AdversaryPlan::from_args(args)
    }

    fn points(&self) -> Vec<AdversaryPoint> {
        AdversaryPlan::points(self)
    }

    fn config(&self, p: &AdversaryPoint) -> SimConfig {
        AdversaryPlan::config(self, p)
    }

    fn weight(&self, p: &AdversaryPoint) -> u64 {
        u64::from(p.percent) + 1
    }

    fn measure(
        &self,
        p: &AdversaryPoint,
        command: &str,
        progress: &Progress,
    ) -> Result<Self::Measured, ExperimentError> {
        measure(self, p, command, progress)
    }

    fn publish(
        &self,
        out: &Output,
        command: &str,
        points: &[AdversaryPoint],
        measured: Vec<Self::Measured>,
    ) -> Result<Vec<AdversaryRow>, ExperimentError> {
        let (rows, runs): (Vec<AdversaryRow>, Vec<RunRecord>) = measured.into_iter().unzip();
        let base = self.overrides.apply(self.config(&points[0]))?;
        let scenario = self.scenario();
        let record = Record::new("adversary", command, self, &base, &scenario, runs);
        out.publish(
            "adversary",
            &rows,
            |svg| plot::adversary(svg, &rows),
            &record,
            &render(&rows),
        )?;
        Ok(rows)
    }
}

/// Schedules the scenario with honest publishers and askers only (and the
/// adversaries' flood, if any); returns when it is over.
fn schedule(
    sim: &mut Sim,
    plan: &AdversaryPlan,
    s: &LookupScenario,
    bad: &[NodeIdx],
) -> distroweb_protocol::Time {
    let mut w = Workload::new(sim);
    let nodes = s.nodes.min(sim.len() as u32);
    // `bad` is sorted; shares are at most 90 %, so a draw is honest within a
    // few tries, and a bound keeps a pathological plan from spinning.
    let is_bad = |n: NodeIdx| bad.binary_search(&n).is_ok();
    let honest_below = |w: &mut Workload, below: u32| {
        let mut node = w.node(below);
        for _ in 0..1_000 {
            if !is_bad(node) {
                break;
            }
            node = w.node(below);
        }
        node
    };
    let last_join = match plan.seeds {
        JoinSeeds::Any => w.grow(sim, nodes, sim.now(), s.join_interval, s.join_seeds),
        JoinSeeds::Honest => {
            // Like `Workload::grow`, but each node joins through honest nodes
            // that joined before it (established ones when there are any).
            let start = sim.now();
            let settled = (sim.config().seed_min_age.as_micros()
                / s.join_interval.as_micros().max(1)) as u32
                + 1;
            let mut at = start;
            for i in 0..nodes {
                at = start + s.join_interval * i;
                let below = if i > settled { i - settled } else { i };
                let first_honest = (0..i).find(|&j| !is_bad(NodeIdx(j)));
                let seeds = match first_honest {
                    None if i == 0 => Seeds::Alone,
                    None => Seeds::Established(s.join_seeds),
                    Some(_) => {
                        let mut list: Vec<NodeIdx> = Vec::new();
                        for _ in 0..s.join_seeds {
                            let n = honest_below(&mut w, below.max(1));
                            if !is_bad(n) && !list.contains(&n) {
                                list.push(n);
                            }
                        }
                        if list.is_empty() {
                            Seeds::Established(s.join_seeds)
                        } else {
                            Seeds::List(list)
                        }
                    }
                };
                sim.schedule(
                    at,
                    Action::Join {
                        node: NodeIdx(i),
                        seeds,
                    },
                );
            }
            at
        }
    };
    let publish = Window::new(last_join + s.settle, s.publish_window);
    let keys: Vec<_> = (0..s.keys).map(|n| w.key(n)).collect();
    for &key in &keys {
        let node = honest_below(&mut w, nodes);
        let at = w.instant(publish);
        sim.schedule(at, Action::Announce { node, key });
    }
    let mut lookup_start = publish.end() + s.settle;
    if plan.flood > 0 && !bad.is_empty() && !keys.is_empty() {
        // The flood starts once the honest records are in: adversary `j`
        // announces keys `j·n .. j·n + n` (mod keys), so every key gets about
        // as many fakes as the next.
        let flood = Window::new(publish.end() + s.settle / 2, s.publish_window);
        let n = plan.flood as usize;
        for (j, &node) in bad.iter().enumerate() {
            for m in 0..n {
                let key = keys[(j * n + m) % keys.len()];
                let at = w.instant(flood);
                sim.schedule(at, Action::Announce { node, key });
            }
        }
        lookup_start = flood.end() + s.settle;
    }
    let lookups = Window::new(lookup_start, s.lookup_window);
    for _ in 0..s.lookup_count() {
        let node = honest_below(&mut w, nodes);
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
    let config = plan.overrides.apply(plan.config(p))?;
    let scenario = plan.scenario();
    let cast = plan.cast(p.percent, p.puzzle_bits);
    let bad: Vec<NodeIdx> = cast.iter().map(|(n, _)| *n).collect();
    progress.detail(&format!(
        "adversary: start {}% puzzle {} {} {config}",
        p.percent,
        p.puzzle_bits,
        p.lookup.name()
    ));
    let dht = config.protocol.dht.clone();
    let mut sim = Sim::new(config)?;
    sim.set_reproduce(command_line);
    for (n, id) in &cast {
        if let Some(id) = id {
            sim.set_node_id(*n, *id);
        }
    }
    install(&mut sim, &bad, &plan.attack_list());
    let end = schedule(&mut sim, plan, &scenario, &bad);
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
    let records = tracked(&sim, plan, &bad);
    let row = AdversaryRow {
        nodes: plan.nodes,
        lookup: p.lookup.name().into(),
        disjoint_paths: dht.disjoint_paths.get(),
        k: dht.k.get(),
        alpha: dht.alpha.get(),
        adversary_percent: p.percent,
        adversaries: bad.len(),
        placement: plan.placement_name.into(),
        grind_bits: plan.grind_bits,
        puzzle_bits: p.puzzle_bits,
        closest_adversary_frac: round(closest_share(&sim, plan, &bad, dht.k.get()), 4),
        nearest_adversary_frac: round(closest_share(&sim, plan, &bad, 1), 4),
        flood: plan.flood,
        seeds: plan.seeds_name.into(),
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
        honest_records_per_key: round(records.honest, 3),
        adversary_records_per_key: round(records.adversarial, 3),
        records_refused: records.refused,
    };
    let label = if plan.placement == Placement::Targeted {
        format!("{}%/puzzle {}/{}", p.percent, p.puzzle_bits, row.lookup)
    } else {
        format!("{}%/{}", p.percent, row.lookup)
    };
    let run = RunRecord::of(&sim, label);
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

/// Provider records held by honest trackers at the end, per looked-up key.
struct Tracked {
    /// Mean honest trackers holding an honest announcer's record.
    honest: f64,
    /// Mean records naming adversaries.
    adversarial: f64,
    /// Writes honest trackers refused, over all keys.
    refused: u64,
}

fn tracked(sim: &Sim, plan: &AdversaryPlan, bad: &[NodeIdx]) -> Tracked {
    let keys = plan.keys();
    let now = sim.now();
    let max = sim.config().protocol.records.max_providers_per_key.get();
    let (mut honest, mut adversarial, mut refused) = (0u64, 0u64, 0u64);
    for i in 0..sim.len() as u32 {
        if bad.binary_search(&NodeIdx(i)).is_ok() {
            continue;
        }
        let Some(node) = sim.node(NodeIdx(i)) else {
            continue;
        };
        refused += node.counters().records_refused;
        for key in &keys {
            let announcers = sim.announcers(key);
            for c in node.provider_store().get(now, key, max) {
                if bad.binary_search(&c.addr).is_ok() {
                    adversarial += 1;
                } else if announcers.contains(&c.addr) {
                    honest += 1;
                }
            }
        }
    }
    let per_key = |n: u64| n as f64 / keys.len().max(1) as f64;
    Tracked {
        honest: per_key(honest),
        adversarial: per_key(adversarial),
        refused,
    }
}

/// Over the looked-up keys, the share of each key's `k` closest nodes that
/// are adversaries.
fn closest_share(sim: &Sim, plan: &AdversaryPlan, bad: &[NodeIdx], k: usize) -> f64 {
    let keys = plan.keys();
    let ids: Vec<(Id, NodeIdx)> = (0..sim.len() as u32)
        .map(|i| (sim.node_id(NodeIdx(i)), NodeIdx(i)))
        .collect();
    let (mut all, mut adversarial) = (0u64, 0u64);
    let mut ranked = ids.clone();
    for key in &keys {
        let n = k.min(ranked.len());
        if n == 0 {
            break;
        }
        ranked.select_nth_unstable_by_key(n - 1, |(id, _)| Metric::Xor.distance(id, key));
        for (_, node) in &ranked[..n] {
            all += 1;
            adversarial += u64::from(bad.binary_search(node).is_ok());
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
        "place",
        "puzzle",
        "closest_adv",
        "nearest_adv",
        "flood",
        "seeds",
        "lookups",
        "success",
        "fooled",
        "failed",
        "hops",
        "lat_p50_ms",
        "lat_p99_ms",
        "reqs",
        "table_adv",
        "honest_rec",
        "adv_rec",
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
                r.placement.clone(),
                r.puzzle_bits.to_string(),
                format!("{:.3}", r.closest_adversary_frac),
                format!("{:.3}", r.nearest_adversary_frac),
                r.flood.to_string(),
                r.seeds.clone(),
                r.lookups.to_string(),
                format!("{:.4}", r.success_rate),
                format!("{:.4}", r.fooled_rate),
                format!("{:.4}", r.failed_rate),
                format!("{:.2}", r.hops_mean),
                format!("{:.0}", r.latency_ms_p50),
                format!("{:.0}", r.latency_ms_p99),
                format!("{:.1}", r.requests_per_lookup),
                format!("{:.3}", r.table_adversary_frac),
                format!("{:.2}", r.honest_records_per_key),
                format!("{:.2}", r.adversary_records_per_key),
            ]
        })
        .collect();
    table::render(&header, &cells)
}

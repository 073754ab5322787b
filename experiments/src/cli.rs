//! The `distroweb experiment` command line, parsed here so that the binary stays a
//! thin dispatcher.

use std::path::PathBuf;

/// `distroweb experiment <name> [--seed S] [--out DIR] [--quick] [name-specific flags]`.
#[derive(Debug, Clone, clap::Args)]
pub struct ExperimentArgs {
    /// Which experiment.
    #[command(subcommand)]
    pub experiment: Experiment,
}

/// The experiments, one per research question.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Experiment {
    /// How lookup hop counts and latency grow with network size, per strategy and metric.
    Hops(HopsArgs),
    /// How fast and how lean the simulator is: bootstrap, announcements and one
    /// provider lookup per node at growing sizes.
    Scale(ScaleArgs),
    /// Does content stay findable when nodes come and go: Weibull sessions swept
    /// over their median, with a steady lookup and fetch workload.
    Churn(ChurnArgs),
    /// Does demand create supply: one publisher, M requesters within a window,
    /// with and without the swarm (`distroweb` against `origin-only`).
    FlashCrowd(FlashCrowdArgs),
    /// Do provider lookups find real providers when a share of the nodes
    /// eclipse lookups and lie about providers: plain against disjoint
    /// (S/Kademlia) lookups, 0 to 50 % adversaries.
    Adversary(AdversaryArgs),
    /// How fast a site's update reaches its readers: a publisher updates a
    /// signed name while readers keep visiting it, with and without churn.
    Update(UpdateArgs),
    /// Every experiment in turn (hops, churn, flash-crowd, adversary, update,
    /// and scale's smallest size), with the shared options.
    All(Common),
    /// A scenario file: any experiment with its options, protocol parameters
    /// and simulator settings from TOML, and sweeps over any of them.
    Run(crate::scenario::RunArgs),
    /// Combines the outputs of a sweep's shards (`run --shard I/N`) into the
    /// files one run of the whole sweep writes.
    Merge(crate::scenario::MergeArgs),
}

/// Options every experiment takes.
#[derive(Debug, Clone, clap::Args)]
pub struct Common {
    /// The master seed: the same seed gives byte-identical CSV.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Directory for `<name>.csv`, `<name>.svg` and `<name>.json`.
    #[arg(long, default_value = "results")]
    pub out: PathBuf,
    /// A small version that runs in seconds (for CI and smoke tests).
    #[arg(long)]
    pub quick: bool,
    /// Protocol and simulator settings a scenario file changes (none from
    /// the command line).
    #[arg(skip)]
    pub overrides: crate::scenario::Overrides,
}

/// Options of `hops`.
#[derive(Debug, Clone, clap::Args)]
pub struct HopsArgs {
    /// Shared options.
    #[command(flatten)]
    pub common: Common,
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

/// Options of `churn`.
#[derive(Debug, Clone, clap::Args)]
pub struct ChurnArgs {
    /// Shared options.
    #[command(flatten)]
    pub common: Common,
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

/// Options of `flash-crowd`.
#[derive(Debug, Clone, clap::Args)]
pub struct FlashCrowdArgs {
    /// Shared options.
    #[command(flatten)]
    pub common: Common,
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

/// Options of `adversary`.
#[derive(Debug, Clone, clap::Args)]
pub struct AdversaryArgs {
    /// Shared options.
    #[command(flatten)]
    pub common: Common,
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
    pub fn with(common: Common) -> Self {
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

/// Options of `update`.
#[derive(Debug, Clone, clap::Args)]
pub struct UpdateArgs {
    /// Shared options.
    #[command(flatten)]
    pub common: Common,
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
    pub fn with(common: Common) -> Self {
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

/// Options of `scale`.
#[derive(Debug, Clone, clap::Args)]
pub struct ScaleArgs {
    /// Shared options.
    #[command(flatten)]
    pub common: Common,
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

/// The network sizes to sweep: `given` if any, else the (quick) default; every
/// size must be at least 2.
pub fn sizes(
    given: &[u32],
    quick: bool,
    quick_default: &[u32],
    default: &[u32],
) -> Result<Vec<u32>, crate::ExperimentError> {
    let nodes = match (given.is_empty(), quick) {
        (false, _) => given.to_vec(),
        (true, true) => quick_default.to_vec(),
        (true, false) => default.to_vec(),
    };
    if nodes.iter().any(|n| *n < 2) {
        return Err(crate::ExperimentError::Usage(
            "--nodes: a network needs at least 2 nodes".into(),
        ));
    }
    Ok(nodes)
}

impl ExperimentArgs {
    /// The command line that reproduces this invocation.
    pub fn command_line(&self) -> String {
        let common = |name: &str, c: &Common| {
            let mut s = format!(
                "distroweb experiment {name} --seed {} --out {}",
                c.seed,
                c.out.display()
            );
            if c.quick {
                s += " --quick";
            }
            s
        };
        let nodes = |n: &[u32]| {
            n.iter()
                .map(|n| format!(" --nodes {n}"))
                .collect::<String>()
        };
        match &self.experiment {
            Experiment::Hops(a) => {
                let mut s = common("hops", &a.common) + &nodes(&a.nodes);
                if let Some(l) = a.lookups {
                    s += &format!(" --lookups {l}");
                }
                if let Some(j) = a.join_refreshes {
                    s += &format!(" --join-refreshes {j}");
                }
                for m in &a.metrics {
                    s += &format!(" --metrics {m}");
                }
                for m in &a.strategies {
                    s += &format!(" --strategies {m}");
                }
                if let Some(f) = a.forwarding {
                    s += &format!(" --forwarding {f}");
                }
                if let Some(w) = a.route_width {
                    s += &format!(" --route-width {w}");
                }
                s
            }
            Experiment::Scale(a) => {
                common("scale", &a.common)
                    + &nodes(&a.nodes)
                    + &format!(" --join-refreshes {}", a.join_refreshes)
            }
            Experiment::Churn(a) => {
                let mut s = common("churn", &a.common);
                if let Some(n) = a.nodes {
                    s += &format!(" --nodes {n}");
                }
                for m in &a.session_median_min {
                    s += &format!(" --session-median-min {m}");
                }
                if let Some(w) = a.warmup_min {
                    s += &format!(" --warmup-min {w}");
                }
                if let Some(m) = a.measure_min {
                    s += &format!(" --measure-min {m}");
                }
                if a.adaptive_timeouts {
                    s += " --adaptive-timeouts";
                }
                if let Some(u) = a.unsampled_timeout {
                    s += &format!(" --unsampled-timeout {u}");
                }
                s
            }
            Experiment::FlashCrowd(a) => {
                let mut s = common("flash-crowd", &a.common);
                for m in &a.requesters {
                    s += &format!(" --requesters {m}");
                }
                s += &format!(" --window-s {}", a.window_s);
                if let Some(b) = a.content_bytes {
                    s += &format!(" --content-bytes {b}");
                }
                s
            }
            Experiment::Adversary(a) => {
                let mut s = common("adversary", &a.common);
                if let Some(n) = a.nodes {
                    s += &format!(" --nodes {n}");
                }
                for p in &a.percents {
                    s += &format!(" --percents {p}");
                }
                if let Some(d) = a.paths {
                    s += &format!(" --paths {d}");
                }
                if let Some(l) = a.lookups {
                    s += &format!(" --lookups {l}");
                }
                if let Some(k) = a.k {
                    s += &format!(" --k {k}");
                }
                for at in &a.attacks {
                    s += &format!(" --attacks {}", value_name(at));
                }
                s += &format!(" --placement {}", value_name(&a.placement));
                if let Some(g) = a.grind_bits {
                    s += &format!(" --grind-bits {g}");
                }
                for b in &a.puzzle_bits {
                    s += &format!(" --puzzle-bits {b}");
                }
                if let Some(f) = a.flood {
                    s += &format!(" --flood {f}");
                }
                s += &format!(" --seeds {}", value_name(&a.seeds));
                if let Some(n) = a.answers {
                    s += &format!(" --answers {n}");
                }
                s
            }
            Experiment::Update(a) => {
                let mut s = common("update", &a.common);
                if let Some(n) = a.nodes {
                    s += &format!(" --nodes {n}");
                }
                if let Some(r) = a.readers {
                    s += &format!(" --readers {r}");
                }
                if let Some(v) = a.visit_s {
                    s += &format!(" --visit-s {v}");
                }
                if let Some(a) = a.after_s {
                    s += &format!(" --after-s {a}");
                }
                for c in &a.churn {
                    s += &format!(" --churn {}", value_name(c));
                }
                if let Some(m) = a.session_median_min {
                    s += &format!(" --session-median-min {m}");
                }
                if let Some(w) = a.warmup_min {
                    s += &format!(" --warmup-min {w}");
                }
                if let Some(g) = a.name_grace_ms {
                    s += &format!(" --name-grace-ms {g}");
                }
                s
            }
            Experiment::All(c) => common("all", c),
            Experiment::Run(r) => r.command_line(),
            Experiment::Merge(m) => format!(
                "distroweb experiment merge --out {} {}",
                m.out.display(),
                m.dirs
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
        }
    }
}

/// The name a value of a `clap::ValueEnum` is given by on the command line.
fn value_name<V: clap::ValueEnum>(v: &V) -> String {
    v.to_possible_value()
        .map_or_else(String::new, |p| p.get_name().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: ExperimentArgs,
    }

    /// The sidecar's command line, run again, asks for the same experiment:
    /// every flag of the adversary sweep is in it.
    #[test]
    fn the_recorded_command_line_reproduces_the_run() {
        let given = [
            "distroweb",
            "adversary",
            "--seed",
            "3",
            "--out",
            "o",
            "--nodes",
            "500",
            "--percents",
            "10,30",
            "--paths",
            "4",
            "--lookups",
            "50",
            "--k",
            "8",
            "--attacks",
            "eclipse,fake-providers",
            "--placement",
            "targeted",
            "--grind-bits",
            "12",
            "--puzzle-bits",
            "0,8",
            "--flood",
            "20",
            "--seeds",
            "any",
            "--answers",
            "3",
        ];
        let first = Cli::try_parse_from(given).expect("parses").args;
        let line = first.command_line();
        let again: Vec<&str> = line.split(' ').skip(1).collect();
        let second = Cli::try_parse_from(again)
            .expect("the recorded line parses")
            .args;
        assert_eq!(format!("{first:?}"), format!("{second:?}"), "{line}");
        assert!(
            line.contains("--flood 20") && line.contains("--seeds any"),
            "{line}"
        );
    }

    /// The same for `update`: every flag survives the round trip.
    #[test]
    fn the_recorded_update_command_line_reproduces_the_run() {
        let given = [
            "distroweb",
            "update",
            "--seed",
            "2",
            "--out",
            "o",
            "--quick",
            "--nodes",
            "300",
            "--readers",
            "40",
            "--visit-s",
            "12.5",
            "--after-s",
            "90",
            "--churn",
            "on,off",
            "--session-median-min",
            "7.5",
            "--warmup-min",
            "3",
            "--name-grace-ms",
            "400",
        ];
        let first = Cli::try_parse_from(given).expect("parses").args;
        let line = first.command_line();
        let again: Vec<&str> = line.split(' ').skip(1).collect();
        let second = Cli::try_parse_from(again)
            .expect("the recorded line parses")
            .args;
        assert_eq!(format!("{first:?}"), format!("{second:?}"), "{line}");
        assert!(line.contains("--churn on --churn off"), "{line}");
    }
}

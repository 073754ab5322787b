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
    /// Every experiment in turn, with the shared options.
    All(Common),
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
                s
            }
            Experiment::Scale(a) => {
                common("scale", &a.common)
                    + &nodes(&a.nodes)
                    + &format!(" --join-refreshes {}", a.join_refreshes)
            }
            Experiment::All(c) => common("all", c),
        }
    }
}

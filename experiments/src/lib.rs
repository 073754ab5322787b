//! The research experiments (hops, churn, flash crowd, adversary, update, scale), run on
//! `distroweb_sim`, producing CSV, SVG and JSON results.
//!
//! Every number comes from the protocol's own events; experiments never reach
//! inside a node. The same seed gives byte-identical CSV (wall-clock columns of
//! `scale` aside), and each JSON names the seed, the whole configuration, the
//! version and the command that reproduces it.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

/// `adversary`: provider lookups among colluding liars, plain and disjoint.
pub mod adversary;
/// `churn`: lookups and fetches under Weibull sessions.
pub mod churn;
/// The churn plots.
pub mod churn_plot;
/// The `distroweb experiment` command line.
pub mod cli;
/// Why an experiment failed.
pub mod error;
/// `flash-crowd`: one publisher, M requesters, with and without the swarm.
pub mod flash_crowd;
/// The flash-crowd plots.
pub mod flash_crowd_plot;
/// `hops`: hop counts against N.
pub mod hops;
/// Result files.
pub mod output;
/// SVG plots.
pub mod plot;
/// The progress bar.
pub mod progress;
/// The JSON record beside each CSV.
pub mod record;
/// Peak memory.
pub mod rss;
/// Parallel runs, ordered results.
pub mod runner;
/// `scale`: simulator speed and memory against N.
pub mod scale;
/// Scenario files: any experiment, its options and the protocol's and
/// simulator's settings from TOML, with sweeps.
pub mod scenario;
/// Terminal tables.
pub mod table;
/// Durations, byte sizes and rates with units, as scenario files write them.
pub mod units;
/// `update`: how fast a site's update reaches its readers through its name.
pub mod update;
/// The update plot.
pub mod update_plot;

pub use cli::{
    AdversaryArgs, ChurnArgs, ChurnMode, Common, Experiment, ExperimentArgs, FlashCrowdArgs,
    HopsArgs, ScaleArgs, UpdateArgs,
};
pub use error::ExperimentError;
use scale::ScalePlan;

/// Runs the experiment named in `args`.
pub fn run(args: &ExperimentArgs) -> Result<(), ExperimentError> {
    let command = args.command_line();
    match &args.experiment {
        Experiment::Hops(a) => hops::run(a, &command).map(drop),
        Experiment::Scale(a) => scale::run(a, &command).map(drop),
        Experiment::Churn(a) => churn::run(a, &command).map(drop),
        Experiment::FlashCrowd(a) => flash_crowd::run(a, &command).map(drop),
        Experiment::Adversary(a) => adversary::run(a, &command).map(drop),
        Experiment::Update(a) => update::run(a, &command).map(drop),
        Experiment::Run(a) => scenario::run(a),
        Experiment::Merge(a) => scenario::merge(a),
        Experiment::All(common) => {
            let hops_args = HopsArgs {
                common: common.clone(),
                nodes: Vec::new(),
                lookups: None,
                join_refreshes: None,
                metrics: Vec::new(),
                strategies: Vec::new(),
                forwarding: None,
                route_width: None,
            };
            hops::run(&hops_args, &command)?;
            let churn_args = ChurnArgs {
                common: common.clone(),
                nodes: None,
                session_median_min: Vec::new(),
                warmup_min: None,
                measure_min: None,
                adaptive_timeouts: false,
                unsampled_timeout: None,
            };
            churn::run(&churn_args, &command)?;
            let flash_args = FlashCrowdArgs {
                common: common.clone(),
                requesters: Vec::new(),
                window_s: 10.0,
                content_bytes: None,
            };
            flash_crowd::run(&flash_args, &command)?;
            let adversary_args = AdversaryArgs::with(common.clone());
            adversary::run(&adversary_args, &command)?;
            update::run(&UpdateArgs::with(common.clone()), &command)?;
            // Scale's smallest size: its sweep is about the simulator, not the protocol.
            let smallest = ScalePlan::from_args(&ScaleArgs {
                common: common.clone(),
                nodes: Vec::new(),
                join_refreshes: 0,
            })?
            .nodes
            .into_iter()
            .min()
            .into_iter()
            .collect();
            let scale_args = ScaleArgs {
                common: common.clone(),
                nodes: smallest,
                join_refreshes: 0,
            };
            scale::run(&scale_args, &command).map(drop)
        }
    }
}

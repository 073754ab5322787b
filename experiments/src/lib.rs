//! The research experiments (hops, scale; churn and flash crowd come with content
//! transfer), run on `distroweb_sim`, producing CSV, SVG and JSON results.
//!
//! Every number comes from the protocol's own events; experiments never reach
//! inside a node. The same seed gives byte-identical CSV (wall-clock columns of
//! `scale` aside), and each JSON names the seed, the whole configuration, the
//! version and the command that reproduces it.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

/// The `distroweb experiment` command line.
pub mod cli;
/// Why an experiment failed.
pub mod error;
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
/// Terminal tables.
pub mod table;

pub use cli::{Common, Experiment, ExperimentArgs, HopsArgs, ScaleArgs};
pub use error::ExperimentError;

/// Runs the experiment named in `args`.
pub fn run(args: &ExperimentArgs) -> Result<(), ExperimentError> {
    let command = args.command_line();
    match &args.experiment {
        Experiment::Hops(a) => hops::run(a, &command).map(drop),
        Experiment::Scale(a) => scale::run(a, &command).map(drop),
        Experiment::All(common) => {
            let hops_args = HopsArgs {
                common: common.clone(),
                nodes: Vec::new(),
                lookups: None,
                join_refreshes: None,
            };
            hops::run(&hops_args, &command)?;
            let scale_args = ScaleArgs {
                common: common.clone(),
                nodes: Vec::new(),
                join_refreshes: 0,
            };
            scale::run(&scale_args, &command).map(drop)
        }
    }
}

//! The research experiments (hops, churn, flash crowd, adversary, update, scale,
//! partition, nat), run on
//! `distroweb_sim`, producing CSV, SVG and JSON results.
//!
//! Every number comes from the protocol's own events; experiments never reach
//! inside a node. The same seed gives byte-identical CSV (wall-clock columns of
//! `scale` aside), and each JSON names the seed, the whole configuration, the
//! version and the command that reproduces it.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

/// The seam every built-in experiment fits, and its registration.
pub mod builtin;
/// The churn plots.
pub mod churn_plot;
/// The `distroweb experiment` command line.
pub mod cli;
/// Why an experiment failed.
pub mod error;
/// The flash-crowd plots.
pub mod flash_crowd_plot;
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
/// Scenario files: any experiment, its options and the protocol's and
/// simulator's settings from TOML, with sweeps.
pub mod scenario;
/// Terminal tables.
pub mod table;
/// Durations, byte sizes and rates with units, as scenario files write them.
pub mod units;
/// The update plot.
pub mod update_plot;

/// Declares the built-in experiments: each line `module::Plan` is a module
/// (its file says what it measures) and a registration, in the order
/// `experiment all` runs them.
macro_rules! built_ins {
    ($($module:ident :: $plan:ident),* $(,)?) => {
        $(pub mod $module;)*

        /// Every built-in experiment, in the order `experiment all` runs them.
        pub static BUILT_INS: &[&dyn builtin::Entry] =
            &[$(&builtin::Registered::<$module::$plan>::NEW),*];
    };
}

built_ins! {
    hops::HopsPlan,
    churn::ChurnPlan,
    flash_crowd::FlashPlan,
    adversary::AdversaryPlan,
    update::UpdatePlan,
    scale::ScalePlan,
    partition::PartitionPlan,
    nat::NatPlan,
}

pub use adversary::AdversaryArgs;
pub use churn::ChurnArgs;
pub use cli::{Common, Experiment, ExperimentArgs};
pub use error::ExperimentError;
pub use flash_crowd::FlashCrowdArgs;
pub use hops::HopsArgs;
pub use scale::ScaleArgs;
pub use update::{ChurnMode, UpdateArgs};

/// The built-in experiment named `name`.
pub fn built_in(name: &str) -> Option<&'static dyn builtin::Entry> {
    BUILT_INS.iter().copied().find(|e| e.name() == name)
}

/// Runs the experiment named in `args`.
pub fn run(args: &ExperimentArgs) -> Result<(), ExperimentError> {
    match &args.experiment {
        Experiment::BuiltIn(b) => scenario::run_built_in(b),
        Experiment::Run(a) => scenario::run(a),
        Experiment::Merge(a) => scenario::merge(a),
        Experiment::All(common) => {
            for entry in BUILT_INS {
                scenario::run_shipped(*entry, common, entry.in_all(), &args.command_line())?;
            }
            Ok(())
        }
    }
}

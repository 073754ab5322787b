//! The seam every built-in experiment fits: plan, points, measure, publish.
//!
//! An experiment is one file that implements [`BuiltIn`] on its plan and one
//! line in the `built_ins!` list of `lib.rs`. From that line alone it gets its
//! `distroweb experiment <name>` subcommand (its clap options), its place in
//! scenario files (`experiment = "<name>"`, `[args]`, sweeps, shards), in
//! `experiment all`, the progress bar, the parallel runs with results in
//! point order, and the command line recorded in its JSON.

use core::fmt::Debug;
use core::marker::PhantomData;

use clap::{ArgMatches, FromArgMatches};
use distroweb_sim::SimConfig;
use serde::Serialize;

use crate::cli::Common;
use crate::error::ExperimentError;
use crate::output::Output;
use crate::progress::Progress;
use crate::runner;

/// One research question measured on the simulator.
///
/// `Self` is the experiment's plan: its options with every default filled in,
/// which the JSON record keeps beside the results.
pub trait BuiltIn: Serialize + Sized + Sync + 'static {
    /// The subcommand and a scenario's `experiment = "…"`: `flash-crowd`.
    const NAME: &'static str;
    /// The stem of the result files: `flash_crowd` (`flash_crowd.csv`, …).
    const OUTPUT: &'static str;
    /// The shipped scenario (`experiments/scenarios/<NAME>.toml`), which
    /// `distroweb experiment <NAME>` runs; its `[args]` are the defaults a
    /// user sees.
    const SCENARIO: &'static str;
    /// `--set` lines `experiment all` adds to the shipped scenario (scale
    /// runs only its smallest size there: its sweep is about the simulator).
    const IN_ALL: &'static [&'static str] = &[];

    /// The command-line options; the doc comment is the subcommand's help.
    type Args: clap::Args + FromArgMatches + Clone + Debug + Send + Sync + 'static;
    /// One run of the sweep.
    type Point: Sync;
    /// What one run yields.
    type Measured: Send;
    /// What the whole experiment returns to a caller (its rows, for tests).
    type Output;

    /// The options every experiment shares.
    fn common(args: &Self::Args) -> &Common;
    /// The same, to change.
    fn common_mut(args: &mut Self::Args) -> &mut Common;
    /// Fills in the defaults and checks the options.
    fn plan(args: &Self::Args) -> Result<Self, ExperimentError>;
    /// The runs, in output order.
    fn points(&self) -> Vec<Self::Point>;
    /// A point's configuration before the scenario's overrides.
    fn config(&self, point: &Self::Point) -> SimConfig;
    /// Measures one point; `command` reproduces the run.
    fn measure(
        &self,
        point: &Self::Point,
        command: &str,
        progress: &Progress,
    ) -> Result<Self::Measured, ExperimentError>;
    /// Writes the result files (CSV, SVG, JSON and any extra) from every
    /// point's measurement, in point order, and prints the table.
    fn publish(
        &self,
        out: &Output,
        command: &str,
        points: &[Self::Point],
        measured: Vec<Self::Measured>,
    ) -> Result<Self::Output, ExperimentError>;

    /// The relative cost of a point: larger points start first, so a sweep's
    /// longest run does not start last.
    fn weight(&self, _point: &Self::Point) -> u64 {
        0
    }
    /// Points measured at once: the machine's share; 1 for an experiment
    /// that measures wall time or memory.
    fn threads(&self) -> usize {
        runner::threads()
    }
}

/// Runs experiment `E` with `args`: plan, every point (in parallel, results
/// in point order), then publish.
pub fn run<E: BuiltIn>(args: &E::Args, command: &str) -> Result<E::Output, ExperimentError> {
    run_on::<E>(args, command, None)
}

/// [`run`] on at most `threads` threads (`None`: the experiment's own
/// choice); the output is the same for any number.
pub fn run_on<E: BuiltIn>(
    args: &E::Args,
    command: &str,
    threads: Option<usize>,
) -> Result<E::Output, ExperimentError> {
    let plan = E::plan(args)?;
    let out = Output::new(&E::common(args).out)?;
    let points = plan.points();
    if points.is_empty() {
        return Err(ExperimentError::Usage(format!(
            "{}: nothing to run (no points)",
            E::NAME
        )));
    }
    let progress = Progress::new(E::NAME, points.len());
    let results = runner::parallel(
        &points,
        threads.unwrap_or_else(|| plan.threads()),
        |p| plan.weight(p),
        |p| plan.measure(p, command, &progress),
    );
    progress.finish();
    let measured = results.into_iter().collect::<Result<Vec<_>, _>>()?;
    plan.publish(&out, command, &points, measured)
}

/// A built-in experiment as the command line and scenarios see it, without
/// its types: what `built_ins!` registers.
pub trait Entry: Sync {
    /// [`BuiltIn::NAME`].
    fn name(&self) -> &'static str;
    /// [`BuiltIn::OUTPUT`].
    fn output(&self) -> &'static str;
    /// [`BuiltIn::SCENARIO`].
    fn scenario(&self) -> &'static str;
    /// [`BuiltIn::IN_ALL`].
    fn in_all(&self) -> &'static [&'static str];
    /// The subcommand with its options.
    fn command(&self) -> clap::Command;
    /// The options parsed from the subcommand's matches.
    fn parse(&self, matches: &ArgMatches) -> Result<Box<dyn Parsed>, clap::Error>;
}

/// One experiment's options, parsed.
pub trait Parsed: Debug + Send + Sync {
    /// The experiment's name.
    fn name(&self) -> &'static str;
    /// The shared options.
    fn common(&self) -> &Common;
    /// The same, to change.
    fn common_mut(&mut self) -> &mut Common;
    /// Every configuration the experiment would run, before overrides; its
    /// planning errors (options out of range) come out here.
    fn configs(&self) -> Result<Vec<SimConfig>, ExperimentError>;
    /// The plan and every point's configuration, as JSON: equal JSON means
    /// equal runs.
    fn planned(&self) -> Result<serde_json::Value, ExperimentError>;
    /// Runs the experiment.
    fn run(&self, command: &str) -> Result<(), ExperimentError>;
    /// A copy.
    fn boxed_clone(&self) -> Box<dyn Parsed>;
}

impl Clone for Box<dyn Parsed> {
    fn clone(&self) -> Self {
        self.boxed_clone()
    }
}

/// Registers `E`: the one value `built_ins!` makes per experiment.
pub struct Registered<E>(PhantomData<fn() -> E>);

impl<E> Registered<E> {
    /// The registration of `E`.
    pub const NEW: Self = Registered(PhantomData);
}

/// `E`'s options, parsed.
struct Options<E: BuiltIn> {
    args: E::Args,
}

impl<E: BuiltIn> Debug for Options<E> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct(E::NAME).field("args", &self.args).finish()
    }
}

impl<E: BuiltIn> Entry for Registered<E> {
    fn name(&self) -> &'static str {
        E::NAME
    }

    fn output(&self) -> &'static str {
        E::OUTPUT
    }

    fn scenario(&self) -> &'static str {
        E::SCENARIO
    }

    fn in_all(&self) -> &'static [&'static str] {
        E::IN_ALL
    }

    fn command(&self) -> clap::Command {
        <E::Args as clap::Args>::augment_args(clap::Command::new(E::NAME))
    }

    fn parse(&self, matches: &ArgMatches) -> Result<Box<dyn Parsed>, clap::Error> {
        let args = E::Args::from_arg_matches(matches)?;
        Ok(Box::new(Options::<E> { args }))
    }
}

impl<E: BuiltIn> Parsed for Options<E> {
    fn name(&self) -> &'static str {
        E::NAME
    }

    fn common(&self) -> &Common {
        E::common(&self.args)
    }

    fn common_mut(&mut self) -> &mut Common {
        E::common_mut(&mut self.args)
    }

    fn configs(&self) -> Result<Vec<SimConfig>, ExperimentError> {
        let plan = E::plan(&self.args)?;
        Ok(plan.points().iter().map(|p| plan.config(p)).collect())
    }

    fn planned(&self) -> Result<serde_json::Value, ExperimentError> {
        let plan = E::plan(&self.args)?;
        let configs: Vec<SimConfig> = plan.points().iter().map(|p| plan.config(p)).collect();
        serde_json::to_value((&plan, configs))
            .map_err(|e| ExperimentError::Usage(format!("{}: the plan as JSON: {e}", E::NAME)))
    }

    fn run(&self, command: &str) -> Result<(), ExperimentError> {
        run::<E>(&self.args, command).map(drop)
    }

    fn boxed_clone(&self) -> Box<dyn Parsed> {
        Box::new(Options::<E> {
            args: self.args.clone(),
        })
    }
}

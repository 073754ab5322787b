//! The built-in experiments as a scenario sees them: their names, options,
//! configurations and entry points, all from [`crate::BUILT_INS`].

use std::path::Path;

use clap::Parser;
use distroweb_sim::SimConfig;

use super::Overrides;
use crate::builtin::Parsed;
use crate::error::ExperimentError;
use crate::Experiment;

/// The experiments a scenario may name.
pub fn names() -> Vec<&'static str> {
    crate::BUILT_INS.iter().map(|e| e.name()).collect()
}

/// Options every experiment has, which a scenario sets elsewhere.
const COMMON: &[&str] = &["seed", "out", "quick", "help"];

/// The command line, to parse an experiment's options with clap.
#[derive(Debug, Parser)]
#[command(name = "distroweb")]
pub struct Line {
    #[command(flatten)]
    args: crate::ExperimentArgs,
}

/// The options of `experiment`, by their field names (`session_median_min`).
pub fn arg_names(experiment: &str) -> Vec<String> {
    let Some(entry) = crate::built_in(experiment) else {
        return Vec::new();
    };
    entry
        .command()
        .get_arguments()
        .map(|a| a.get_id().as_str().to_owned())
        .filter(|id| !COMMON.contains(&id.as_str()))
        .collect()
}

/// The long flag of an option and whether it is a flag without a value.
pub fn long_of(experiment: &str, id: &str) -> (String, bool) {
    let command = crate::built_in(experiment).map(|e| e.command());
    let arg = command
        .as_ref()
        .and_then(|c| c.get_arguments().find(|a| a.get_id() == id));
    match arg {
        Some(a) => (
            a.get_long().unwrap_or(id).to_owned(),
            !a.get_action().takes_values(),
        ),
        None => (id.replace('_', "-"), false),
    }
}

/// Parses a built-in's command line; `Err` is clap's message, first line,
/// without `error: `.
pub fn parse(argv: &[String]) -> Result<Box<dyn Parsed>, String> {
    let parsed = Line::try_parse_from(argv).map_err(|e| {
        let text = e.to_string();
        let first = text.lines().next().unwrap_or("").trim();
        first.strip_prefix("error: ").unwrap_or(first).to_owned()
    })?;
    match parsed.args.experiment {
        Experiment::BuiltIn(b) => Ok(b.args),
        _ => Err("a scenario runs one built-in experiment".into()),
    }
}

/// Where a parsed experiment writes.
pub fn out_of(e: &dyn Parsed) -> &Path {
    &e.common().out
}

/// Gives the experiment the scenario's overrides.
pub fn set_overrides(e: &mut dyn Parsed, overrides: Overrides) {
    e.common_mut().overrides = overrides;
}

/// The name of an experiment's result files.
pub fn output_name(experiment: &str) -> &'static str {
    crate::built_in(experiment).map_or("results", |e| e.output())
}

/// Every configuration the experiment would run, before overrides; its
/// planning errors (options out of range) come out here.
pub fn configs(e: &dyn Parsed) -> Result<Vec<SimConfig>, ExperimentError> {
    e.configs()
}

/// Runs one experiment, recording `command` as the one that reproduces it.
pub fn execute(e: &dyn Parsed, command: &str) -> Result<(), ExperimentError> {
    e.run(command)
}

//! The built-in experiments as a scenario sees them: their names, options,
//! configurations and entry points.

use std::path::Path;

use clap::Parser;
use distroweb_sim::SimConfig;

use super::Overrides;
use crate::error::ExperimentError;
use crate::{adversary, churn, flash_crowd, hops, scale, update, Common, Experiment};

/// The experiments a scenario may name.
pub const NAMES: &[&str] = &[
    "hops",
    "churn",
    "flash-crowd",
    "scale",
    "adversary",
    "update",
];

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
    let command = super::command();
    let Some(sub) = command.find_subcommand(experiment) else {
        return Vec::new();
    };
    sub.get_arguments()
        .map(|a| a.get_id().as_str().to_owned())
        .filter(|id| !COMMON.contains(&id.as_str()))
        .collect()
}

/// The long flag of an option and whether it is a flag without a value.
pub fn long_of(experiment: &str, id: &str) -> (String, bool) {
    let command = super::command();
    let arg = command
        .find_subcommand(experiment)
        .and_then(|s| s.get_arguments().find(|a| a.get_id() == id));
    match arg {
        Some(a) => (
            a.get_long().unwrap_or(id).to_owned(),
            !a.get_action().takes_values(),
        ),
        None => (id.replace('_', "-"), false),
    }
}

/// Parses a command line; `Err` is clap's message, first line, without `error: `.
pub fn parse(argv: &[String]) -> Result<Experiment, String> {
    Line::try_parse_from(argv)
        .map(|l| l.args.experiment)
        .map_err(|e| {
            let text = e.to_string();
            let first = text.lines().next().unwrap_or("").trim();
            first.strip_prefix("error: ").unwrap_or(first).to_owned()
        })
}

fn common_mut(e: &mut Experiment) -> Option<&mut Common> {
    match e {
        Experiment::Hops(a) => Some(&mut a.common),
        Experiment::Scale(a) => Some(&mut a.common),
        Experiment::Churn(a) => Some(&mut a.common),
        Experiment::FlashCrowd(a) => Some(&mut a.common),
        Experiment::Adversary(a) => Some(&mut a.common),
        Experiment::Update(a) => Some(&mut a.common),
        Experiment::All(c) => Some(c),
        Experiment::Run(_) | Experiment::Merge(_) => None,
    }
}

/// Where a parsed experiment writes.
pub fn out_of(e: &Experiment) -> &Path {
    match e {
        Experiment::Hops(a) => &a.common.out,
        Experiment::Scale(a) => &a.common.out,
        Experiment::Churn(a) => &a.common.out,
        Experiment::FlashCrowd(a) => &a.common.out,
        Experiment::Adversary(a) => &a.common.out,
        Experiment::Update(a) => &a.common.out,
        Experiment::All(c) => &c.out,
        Experiment::Run(r) => &r.out,
        Experiment::Merge(m) => &m.out,
    }
}

/// Gives the experiment the scenario's overrides.
pub fn set_overrides(e: &mut Experiment, overrides: Overrides) {
    if let Some(c) = common_mut(e) {
        c.overrides = overrides;
    }
}

/// The name of an experiment's result files.
pub fn output_name(experiment: &str) -> &'static str {
    match experiment {
        "hops" => "hops",
        "churn" => "churn",
        "flash-crowd" => "flash_crowd",
        "scale" => "scale",
        "adversary" => "adversary",
        _ => "update",
    }
}

/// Every configuration the experiment would run, before overrides; its
/// planning errors (options out of range) come out here.
pub fn configs(e: &Experiment) -> Result<Vec<SimConfig>, ExperimentError> {
    Ok(match e {
        Experiment::Hops(a) => {
            let plan = hops::HopsPlan::from_args(a)?;
            plan.points().iter().map(|p| plan.config(p)).collect()
        }
        Experiment::Churn(a) => {
            let plan = churn::ChurnPlan::from_args(a)?;
            plan.session_median_s
                .iter()
                .map(|m| plan.config(*m))
                .collect()
        }
        Experiment::FlashCrowd(a) => {
            let plan = flash_crowd::FlashPlan::from_args(a)?;
            plan.points().iter().map(|p| plan.config(p)).collect()
        }
        Experiment::Adversary(a) => {
            let plan = adversary::AdversaryPlan::from_args(a)?;
            plan.points().iter().map(|p| plan.config(p)).collect()
        }
        Experiment::Update(a) => {
            let plan = update::UpdatePlan::from_args(a)?;
            plan.churn.iter().map(|c| plan.config(*c)).collect()
        }
        Experiment::Scale(a) => {
            let plan = scale::ScalePlan::from_args(a)?;
            plan.nodes.iter().map(|n| plan.config(*n)).collect()
        }
        Experiment::All(_) | Experiment::Run(_) | Experiment::Merge(_) => Vec::new(),
    })
}

/// Runs one experiment, recording `command` as the one that reproduces it.
pub fn execute(e: &Experiment, command: &str) -> Result<(), ExperimentError> {
    match e {
        Experiment::Hops(a) => hops::run(a, command).map(drop),
        Experiment::Churn(a) => churn::run(a, command).map(drop),
        Experiment::FlashCrowd(a) => flash_crowd::run(a, command).map(drop),
        Experiment::Adversary(a) => adversary::run(a, command).map(drop),
        Experiment::Update(a) => update::run(a, command).map(drop),
        Experiment::Scale(a) => scale::run(a, command).map(drop),
        Experiment::All(_) | Experiment::Run(_) | Experiment::Merge(_) => Err(
            ExperimentError::Usage("a scenario runs one experiment".into()),
        ),
    }
}

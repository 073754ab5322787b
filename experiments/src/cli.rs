//! The `distroweb experiment` command line, parsed here so that the binary stays a
//! thin dispatcher. Its subcommands are the registered built-ins
//! ([`crate::BUILT_INS`]), each with the options its own file declares, and
//! `all`, `run` and `merge`.

use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::{ArgMatches, Args, FromArgMatches};

use crate::builtin::Parsed;
use crate::scenario::{MergeArgs, RunArgs};

/// `distroweb experiment <name> [--seed S] [--out DIR] [--quick] [name-specific flags]`.
#[derive(Debug, Clone)]
pub struct ExperimentArgs {
    /// Which experiment.
    pub experiment: Experiment,
}

/// What `distroweb experiment` was asked to do.
#[derive(Debug, Clone)]
pub enum Experiment {
    /// A built-in experiment: its shipped scenario, with the options given.
    BuiltIn(BuiltInArgs),
    /// Every built-in in turn, each its shipped scenario, with the shared options.
    All(Common),
    /// A scenario file.
    Run(RunArgs),
    /// Combines the outputs of a sweep's shards.
    Merge(MergeArgs),
}

/// A built-in experiment's command line, parsed.
#[derive(Debug, Clone)]
pub struct BuiltInArgs {
    /// The options, every one (defaults included).
    pub args: Box<dyn Parsed>,
    /// The experiment's own options given on the command line, as scenario
    /// settings (`args.nodes=["500"]`) over its shipped file's `[args]`.
    pub given: Vec<String>,
    /// The command line that reproduces the run.
    pub command: String,
}

/// Options every experiment has that a scenario sets elsewhere: its seed,
/// where results go, and `--quick`.
const SHARED: &[&str] = &["seed", "out", "quick", "help"];

impl FromArgMatches for ExperimentArgs {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let Some((name, sub)) = matches.subcommand() else {
            return Err(clap::Error::raw(
                clap::error::ErrorKind::MissingSubcommand,
                "name an experiment",
            ));
        };
        let experiment = match name {
            "all" => Experiment::All(Common::from_arg_matches(sub)?),
            "run" => Experiment::Run(RunArgs::from_arg_matches(sub)?),
            "merge" => Experiment::Merge(MergeArgs::from_arg_matches(sub)?),
            name => {
                let Some(entry) = crate::built_in(name) else {
                    return Err(clap::Error::raw(
                        clap::error::ErrorKind::InvalidSubcommand,
                        format!("no experiment {name:?}"),
                    ));
                };
                let (given, command) = given(&entry.command(), sub);
                Experiment::BuiltIn(BuiltInArgs {
                    args: entry.parse(sub)?,
                    given,
                    command,
                })
            }
        };
        Ok(ExperimentArgs { experiment })
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

impl Args for ExperimentArgs {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        let mut cmd = cmd.subcommand_required(true).arg_required_else_help(true);
        for entry in crate::BUILT_INS {
            cmd = cmd.subcommand(entry.command());
        }
        cmd.subcommand(Common::augment_args(clap::Command::new("all")).about(
            "Every experiment in turn, each its shipped scenario (scale at its smallest size), with the shared options",
        ))
        .subcommand(RunArgs::augment_args(clap::Command::new("run")).about(
            "A scenario file: any experiment with its options, protocol parameters and simulator settings from TOML, and sweeps over any of them",
        ))
        .subcommand(MergeArgs::augment_args(clap::Command::new("merge")).about(
            "Combines the outputs of a sweep's shards (`run --shard I/N`) into the files one run of the whole sweep writes",
        ))
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

/// The options given explicitly on a built-in's command line: as scenario
/// settings, and as the command line that reproduces the run (every given
/// option, in the subcommand's order).
fn given(command: &clap::Command, matches: &ArgMatches) -> (Vec<String>, String) {
    let mut settings = Vec::new();
    let mut line = format!("distroweb experiment {}", command.get_name());
    for arg in command.get_arguments() {
        let id = arg.get_id().as_str();
        if matches.value_source(id) != Some(ValueSource::CommandLine) {
            continue;
        }
        let long = arg.get_long().unwrap_or(id);
        let shared = SHARED.contains(&id);
        if !arg.get_action().takes_values() {
            line += &format!(" --{long}");
            if !shared {
                settings.push(format!("args.{id}=true"));
            }
            continue;
        }
        let raw: Vec<String> = matches
            .get_raw(id)
            .into_iter()
            .flatten()
            .map(|v| v.to_string_lossy().into_owned())
            .collect();
        for v in &raw {
            line += &format!(" --{long} {v}");
        }
        if !shared {
            let list = toml::Value::Array(raw.into_iter().map(toml::Value::String).collect());
            settings.push(format!("args.{id}={list}"));
        }
    }
    (settings, line)
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
        match &self.experiment {
            Experiment::BuiltIn(b) => b.command.clone(),
            Experiment::All(c) => {
                let mut s = format!(
                    "distroweb experiment all --seed {} --out {}",
                    c.seed,
                    c.out.display()
                );
                if c.quick {
                    s += " --quick";
                }
                s
            }
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

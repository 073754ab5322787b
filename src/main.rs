//! The `distroweb` command-line entry point: a thin layer over the workspace crates.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use clap::{Parser, Subcommand};

/// A peer-to-peer static web server: every reader is a server.
#[derive(Debug, Parser)]
#[command(name = "distroweb", version, about)]
struct Cli {
    /// What to do.
    #[command(subcommand)]
    command: Command,
}

/// The subcommands; the node commands arrive later.
#[derive(Debug, Subcommand)]
enum Command {
    /// Print `distroweb <version>` and exit.
    Version,
    /// Run a simulation experiment; writes CSV, SVG and JSON to `--out`.
    Experiment(distroweb_experiments::ExperimentArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Version => println!("distroweb {}", env!("CARGO_PKG_VERSION")),
        Command::Experiment(args) => distroweb_experiments::run(&args)?,
    }
    Ok(())
}

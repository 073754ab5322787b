//! The `distroweb` command-line entry point: a thin layer over the workspace crates.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use clap::{Parser, Subcommand};

mod get;
mod key;
mod local_api;
mod logging;
mod node;
mod publish;
mod testnet;

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
    /// Run a live node with its local HTTP proxy.
    Node(node::Args),
    /// Publish a file or a directory (a site) through the running local node.
    Publish(publish::Args),
    /// Fetch content through the running local node.
    Get(get::Args),
    /// Move a name's secret key between machines: export or import.
    Key(key::Args),
    /// Start N live nodes on 127.0.0.1, wired together, each with a proxy.
    Testnet(testnet::Args),
    /// Run a simulation experiment; writes CSV, SVG and JSON to `--out`.
    Experiment(distroweb_experiments::ExperimentArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Version => println!("distroweb {}", env!("CARGO_PKG_VERSION")),
        Command::Node(args) => node::run(args)?,
        Command::Publish(args) => publish::run(args)?,
        Command::Get(args) => get::run(args)?,
        Command::Key(args) => key::run(args)?,
        Command::Testnet(args) => testnet::run(args)?,
        Command::Experiment(args) => {
            // The run log (`RUST_LOG=info`: each run's digest and counters;
            // `debug`: its whole configuration) stays off unless asked for.
            logging::init_with("warn");
            distroweb_experiments::run(&args)?
        }
    }
    Ok(())
}

//! `distroweb testnet`: N live nodes on 127.0.0.1 in one process, wired together,
//! each with its own proxy — the one-command way to try the live system.

use std::net::SocketAddr;

use anyhow::Context;
use distroweb_net::{LiveNode, NetConfig};
use distroweb_proxy::{Proxy, ProxyConfig};

/// Options of `distroweb testnet`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// How many nodes to start.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..=64))]
    nodes: u16,
    /// The first node's proxy port; node i gets this plus i.
    #[arg(long, default_value_t = 1234)]
    proxy_port: u16,
    /// Each node's upload capacity in Mbit/s (loopback is fast).
    #[arg(long, value_name = "MBIT", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    upload_mbit: u64,
    /// Where node i keeps the keys of the names it publishes (in
    /// `DIR/node-i/names/`); by default a fresh directory under the system's
    /// temporary directory, removed when the testnet stops.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<std::path::PathBuf>,
}

/// Starts the nodes, prints their URLs and runs until Ctrl-C or SIGTERM.
pub fn run(args: Args) -> anyhow::Result<()> {
    crate::logging::init();
    let (dir, temporary) = match &args.data_dir {
        Some(dir) => (dir.clone(), false),
        None => (
            std::env::temp_dir().join(format!("distroweb-testnet-{}", std::process::id())),
            true,
        ),
    };
    let outcome = tokio::runtime::Runtime::new()?.block_on(async {
        let mut running: Vec<(LiveNode, Proxy)> = Vec::new();
        let result = start_all(&args, &dir, &mut running).await;
        if result.is_ok() {
            crate::node::shutdown_signal().await;
            tracing::info!("shutting down the testnet");
        }
        for (node, proxy) in running {
            proxy.stop().await;
            node.stop().await;
        }
        result
    });
    if temporary {
        let _ = std::fs::remove_dir_all(&dir);
    }
    outcome
}

async fn start_all(
    args: &Args,
    dir: &std::path::Path,
    running: &mut Vec<(LiveNode, Proxy)>,
) -> anyhow::Result<()> {
    let mut seed: Option<SocketAddr> = None;
    for i in 0..args.nodes {
        let mut config = NetConfig::loopback();
        config.protocol.transfer.upload_bytes_per_s =
            core::num::NonZeroU64::new(args.upload_mbit * 125_000)
                .context("--upload-mbit must be at least 1")?;
        let node = LiveNode::start(config).await?;
        let port = args
            .proxy_port
            .checked_add(i)
            .context("proxy port out of range")?;
        let config = ProxyConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], port)),
            data_dir: Some(dir.join(format!("node-{i}"))),
            ..ProxyConfig::default()
        };
        let proxy = match Proxy::start(config, node.handle()).await {
            Ok(p) => p,
            Err(e) => {
                node.stop().await;
                return Err(anyhow::Error::new(e)
                    .context(format!("starting node {i}'s proxy (try --proxy-port)")));
            }
        };
        match seed {
            None => seed = Some(node.handle().listen_addr()),
            Some(seed) => {
                node.join(&[seed])
                    .await
                    .with_context(|| format!("node {i} joining"))?;
            }
        }
        running.push((node, proxy));
    }
    println!("{} nodes running on 127.0.0.1:", running.len());
    for (i, (node, proxy)) in running.iter().enumerate() {
        let h = node.handle();
        println!(
            "  node {i}  id {}  peer {}  proxy http://{}/",
            h.id().short(),
            h.listen_addr(),
            proxy.local_addr()
        );
    }
    if let Some((_, first)) = running.first() {
        println!(
            "Publish with `distroweb publish DIR --proxy {}`, then open the URL it prints on any node's proxy.",
            first.local_addr()
        );
    }
    println!("Press Ctrl-C to stop.");
    Ok(())
}

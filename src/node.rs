//! `distroweb node`: one live node with its local proxy, until Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use distroweb_net::{LiveNode, NetConfig};
use distroweb_proxy::{Proxy, ProxyConfig};

/// Options of `distroweb node`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where to accept peer connections.
    #[arg(long, default_value = "0.0.0.0:4100")]
    listen: SocketAddr,
    /// The address to tell peers, if not the listen address (e.g. a public IP).
    #[arg(long)]
    advertise: Option<SocketAddr>,
    /// Client mode, for a node that cannot be dialled (behind a NAT without a
    /// forwarded port): it fetches and serves over connections it opens, but
    /// stays out of other nodes' routing tables and announces nothing.
    #[arg(long)]
    client: bool,
    /// Do not relay for peers behind NATs (a reachable node does by default,
    /// within the caps of distroweb_net::RelayConfig).
    #[arg(long)]
    no_relay_service: bool,
    /// In client mode, do not keep a reservation at a relay: content this
    /// node publishes is then unreachable while it is behind a NAT.
    #[arg(long)]
    no_relays: bool,
    /// Do not try direct connections by hole punching after meeting a peer
    /// through a relay (and keep the listening port to this process alone).
    #[arg(long)]
    no_hole_punching: bool,
    /// Do not ask the home router to forward the listen port. By default the
    /// node asks by PCP or NAT-PMP, else UPnP-IGD (when not --client, without
    /// --advertise, and listening beyond loopback), and advertises the address
    /// the router gives.
    #[arg(long)]
    no_port_mapping: bool,
    /// Where the local HTTP proxy listens. Beyond loopback it serves content
    /// only: the relay and CONNECT stay for this machine unless --relay, and
    /// the status page, metrics and API unless --api names an address for them.
    #[arg(long, default_value = "127.0.0.1:1234")]
    proxy: SocketAddr,
    /// A second address that serves the node's status page, metrics and API
    /// (publish, fetch, pin) to everyone who reaches it, and nothing else; on
    /// the --proxy address they answer this machine only.
    #[arg(long, value_name = "ADDR")]
    api: Option<SocketAddr>,
    /// Another name this proxy answers to (besides 127.0.0.1, localhost and
    /// *.localhost); sites are then at <id>.NAME, which needs a wildcard DNS
    /// entry. Repeat for several. Any other Host gets 421.
    #[arg(long = "proxy-host", value_name = "NAME")]
    proxy_hosts: Vec<String>,
    /// Let the relay and CONNECT reach loopback, private and link-local
    /// addresses (your LAN, local servers); off, web pages cannot reach them
    /// through the relay.
    #[arg(long)]
    relay_allow_private: bool,
    /// The ports CONNECT may reach, comma-separated.
    #[arg(
        long,
        value_name = "PORTS",
        value_delimiter = ',',
        default_value = "443"
    )]
    connect_ports: Vec<u16>,
    /// Relay and tunnel (CONNECT) for clients beyond this machine too, when
    /// --proxy listens beyond loopback: an open proxy to whoever reaches it.
    #[arg(long)]
    relay: bool,
    /// A peer to join through, HOST:PORT; repeat for several.
    #[arg(long = "bootstrap", value_name = "HOST:PORT")]
    bootstrap: Vec<String>,
    /// Where the node key, known peers and content are kept [default: the platform data dir].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// This machine's upload capacity in Mbit/s: past it, peers asking for
    /// blocks are told "busy" and go to other holders.
    #[arg(long, value_name = "MBIT", default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    upload_mbit: u64,
    /// How much content the node keeps, in GiB: what it publishes and pins,
    /// plus a cache of what it fetched (least recently used goes first).
    #[arg(long, value_name = "GIB", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=4096))]
    store_gib: u64,
}

/// Runs the node until a signal.
pub fn run(args: Args) -> anyhow::Result<()> {
    crate::logging::init();
    let data_dir = match args.data_dir {
        Some(dir) => dir,
        None => default_data_dir()?,
    };
    tokio::runtime::Runtime::new()?.block_on(async move {
        let seeds = resolve(&args.bootstrap).await?;
        let mut config = NetConfig {
            listen: args.listen,
            advertise: args.advertise,
            client_mode: args.client,
            // Found out by dial-backs unless --client says it outright.
            probe_reachability: !args.client,
            port_mapping: !args.no_port_mapping,
            data_dir: Some(data_dir.clone()),
            ..NetConfig::default()
        };
        config.relay.serve = !args.no_relay_service;
        config.relay.use_relays = !args.no_relays;
        config.relay.hole_punching = !args.no_hole_punching;
        config.protocol.transfer.upload_bytes_per_s =
            core::num::NonZeroU64::new(args.upload_mbit * 125_000)
                .context("--upload-mbit must be at least 1")?;
        config.protocol.transfer.store_capacity_bytes =
            core::num::NonZeroU64::new(args.store_gib << 30)
                .context("--store-gib must be at least 1")?;
        // The default allows 64 Ki blocks per GiB (16 KiB each on average).
        let gib =
            core::num::NonZeroUsize::new(usize::try_from(args.store_gib).unwrap_or(usize::MAX))
                .context("--store-gib must be at least 1")?;
        config.protocol.transfer.store_max_blocks = config
            .protocol
            .transfer
            .store_max_blocks
            .saturating_mul(gib);
        let node = LiveNode::start(config).await?;
        let proxy_config = ProxyConfig {
            listen: args.proxy,
            hosts: args.proxy_hosts,
            relay_allow_private: args.relay_allow_private,
            connect_ports: args.connect_ports,
            relay_for_remote_clients: args.relay,
            api_listen: args.api,
            data_dir: Some(data_dir),
            ..ProxyConfig::default()
        };
        for warning in distroweb_proxy::exposure::warnings(&proxy_config) {
            tracing::warn!("{warning}");
        }
        let proxy = match Proxy::start(proxy_config, node.handle()).await {
            Ok(p) => p,
            Err(e) => {
                node.stop().await;
                return Err(e.into());
            }
        };
        node.spawn_join(seeds);
        shutdown_signal().await;
        tracing::info!("shutting down");
        proxy.stop().await;
        node.stop().await;
        Ok(())
    })
}

/// `~/.local/share/distroweb` on Linux, the equivalents elsewhere; `distroweb
/// key` uses it too, so it acts on the node's own directory.
pub(crate) fn default_data_dir() -> anyhow::Result<PathBuf> {
    dirs::data_dir()
        .map(|d| d.join("distroweb"))
        .context("no platform data directory is known here; pass --data-dir DIR")
}

/// Resolves `HOST:PORT` strings (names allowed) to socket addresses.
pub async fn resolve(peers: &[String]) -> anyhow::Result<Vec<SocketAddr>> {
    let mut out = Vec::new();
    for peer in peers {
        let found = tokio::net::lookup_host(peer.as_str())
            .await
            .with_context(|| {
                format!("cannot resolve bootstrap peer {peer:?} (expected HOST:PORT)")
            })?;
        out.extend(found);
    }
    Ok(out)
}

/// Resolves on Ctrl-C, or on SIGTERM where there is one.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
                return;
            }
            Err(e) => tracing::warn!("cannot listen for SIGTERM: {e}"),
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

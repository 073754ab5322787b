//! File descriptors: how many N nodes in one process may hold, the process's
//! limit (`RLIMIT_NOFILE`), raising its soft limit to the hard one when that
//! is enough, and a refusal that names the limit when it is not.

use distroweb_net::NetConfig;

/// Descriptors the process holds besides the nodes': stdio, the runtime's
/// epoll and waker, the log, and a few browsers or `curl`s talking to the
/// proxies at once.
const BASE: u64 = 64;

/// The most descriptors `nodes` nodes with `config` hold at once: per node its
/// peer listener and its proxy's listener, and two per outbound connection
/// (the dialled end is another node of this process, whose inbound
/// connections are therefore all counted already; the transport caps a node's
/// outbound connections, dials in progress included, at
/// `max_outbound_connections`).
pub fn needed(nodes: u16, config: &NetConfig) -> u64 {
    let per_node = 2 + 2 * config.max_outbound_connections as u64;
    BASE + u64::from(nodes) * per_node
}

/// The largest testnet that `limit` descriptors hold.
fn fits(limit: u64, config: &NetConfig) -> u64 {
    let per_node = 2 + 2 * config.max_outbound_connections as u64;
    limit.saturating_sub(BASE) / per_node
}

/// Makes sure the process may open what `nodes` nodes need: raises the soft
/// limit (up to the hard one) if it is too low, and refuses, naming both
/// limits and how to raise them, if the hard limit is too low as well.
#[cfg(unix)]
pub fn ensure(nodes: u16, config: &NetConfig) -> anyhow::Result<()> {
    use anyhow::Context;
    use rlimit::Resource;

    let need = needed(nodes, config);
    let (soft, hard) = rlimit::getrlimit(Resource::NOFILE)
        .context("reading the open-file limit (RLIMIT_NOFILE)")?;
    if soft >= need {
        return Ok(());
    }
    if hard < need {
        anyhow::bail!(
            "{nodes} nodes may need {need} open files ({} per node: a peer and a proxy listener and up to {} connections to other nodes, two descriptors each), \
             but this process may open at most {hard} (RLIMIT_NOFILE's hard limit; `ulimit -Hn` shows it). \
             Run at most {} nodes here, or raise the limit: as root, `ulimit -Hn {need}` (and `ulimit -n {need}`) in the shell that starts distroweb, \
             `nofile` in /etc/security/limits.conf, or LimitNOFILE= for a systemd service",
            2 + 2 * config.max_outbound_connections,
            config.max_outbound_connections,
            fits(hard, config),
        );
    }
    // Up to the hard limit when it is a number (the headroom costs nothing);
    // "unlimited" is refused by Linux above fs.nr_open, so then just enough.
    let target = if hard == rlimit::INFINITY { need } else { hard };
    rlimit::setrlimit(Resource::NOFILE, target, hard).with_context(|| {
        format!(
            "raising the open-file limit from {soft} to {target} for {nodes} nodes (they may need {need}); \
             `ulimit -n {need}` before starting distroweb does the same"
        )
    })?;
    tracing::info!(from = soft, to = target, need, "raised the open-file limit");
    Ok(())
}

/// Elsewhere there is no such limit to check.
#[cfg(not(unix))]
pub fn ensure(_nodes: u16, _config: &NetConfig) -> anyhow::Result<()> {
    Ok(())
}

/// One line on descriptors: open now (where `/proc` tells), the soft limit,
/// and the bound [`needed`] gives.
pub fn report(nodes: u16, config: &NetConfig) -> String {
    let open = std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count().to_string())
        .unwrap_or_else(|_| "?".to_string());
    #[cfg(unix)]
    let limit = rlimit::getrlimit(rlimit::Resource::NOFILE)
        .map(|(soft, _)| soft.to_string())
        .unwrap_or_else(|_| "?".to_string());
    #[cfg(not(unix))]
    let limit = "none".to_string();
    format!(
        "file descriptors: {open} open, limit {limit}, at most {} for {nodes} nodes",
        needed(nodes, config)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_and_what_fits_agree() {
        let config = NetConfig::loopback();
        for nodes in [1u16, 5, 64, 256, 1024] {
            let need = needed(nodes, &config);
            assert_eq!(fits(need, &config), u64::from(nodes));
            assert_eq!(fits(need - 1, &config), u64::from(nodes) - 1);
        }
    }
}

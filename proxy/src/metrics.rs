//! The proxy's counters and the Prometheus text exposition of them and the node's.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use distroweb_net::{Status, Via};

/// Counters the proxy bumps as it serves.
#[derive(Debug, Default)]
pub struct ProxyMetrics {
    /// HTTP requests received.
    pub requests: AtomicU64,
    /// Requests refused as malformed (4xx).
    pub bad_requests: AtomicU64,
    /// Requests for distroweb content.
    pub content_requests: AtomicU64,
    /// Content requests answered with the content.
    pub content_served: AtomicU64,
    /// Body bytes of distroweb content sent to clients.
    pub content_bytes: AtomicU64,
    /// Requests relayed to the ordinary web.
    pub upstream_requests: AtomicU64,
    /// Relayed requests that failed (502) or timed out (504).
    pub upstream_failures: AtomicU64,
}

impl ProxyMetrics {
    /// Adds one to `counter`.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Renders Prometheus text (version 0.0.4) for the proxy and the node.
pub fn render(proxy: &ProxyMetrics, node: &Status) -> String {
    let mut out = String::with_capacity(4096);
    let counters = [
        (
            "http_requests_total",
            "HTTP requests received.",
            &proxy.requests,
        ),
        (
            "http_bad_requests_total",
            "HTTP requests refused as malformed.",
            &proxy.bad_requests,
        ),
        (
            "content_requests_total",
            "Requests for distroweb content.",
            &proxy.content_requests,
        ),
        (
            "content_served_total",
            "Content requests answered with the content.",
            &proxy.content_served,
        ),
        (
            "content_bytes_served_total",
            "Content body bytes sent to clients.",
            &proxy.content_bytes,
        ),
        (
            "upstream_requests_total",
            "Requests relayed to the ordinary web.",
            &proxy.upstream_requests,
        ),
        (
            "upstream_failures_total",
            "Relayed requests that failed or timed out.",
            &proxy.upstream_failures,
        ),
    ];
    for (name, help, value) in counters {
        metric(
            &mut out,
            name,
            help,
            "counter",
            value.load(Ordering::Relaxed),
        );
    }
    let via = |via| node.connections.iter().filter(|c| c.via == via).count();
    let gauges = [
        (
            "peers",
            "Contacts in the routing table.",
            node.routing_table_len,
        ),
        (
            "connected_peers",
            "Peers with an open connection.",
            node.connected_peers,
        ),
        (
            "open_connections",
            "Peer connections open or being dialled.",
            node.open_connections,
        ),
        (
            "provided_keys",
            "Keys this node announces as provider.",
            node.provided_keys,
        ),
        (
            "tracked_keys",
            "Keys this node tracks provider records for.",
            node.tracked_keys,
        ),
        (
            "tracked_records",
            "Provider records tracked.",
            node.tracked_records,
        ),
        (
            "queries_running",
            "Lookups in flight.",
            node.queries_running,
        ),
        (
            "fetches_running",
            "Fetches in flight.",
            node.fetches_running,
        ),
        (
            "held_contents",
            "Files and sites held complete.",
            node.held_count,
        ),
        (
            "client_mode",
            "1 when the node runs in client mode (it cannot be dialled).",
            usize::from(node.client_mode),
        ),
        (
            "relayed",
            "1 when the node is reached through a relay reservation.",
            usize::from(node.relayed_at.is_some()),
        ),
        (
            "relay_reservations",
            "Reservations this node holds for others as a relay.",
            node.relay_reservations,
        ),
        (
            "relay_circuits",
            "Circuits this node relays now.",
            node.relay_circuits,
        ),
        (
            "connections_direct",
            "Open connections made directly.",
            via(Via::Direct),
        ),
        (
            "connections_relayed",
            "Open connections through a relay.",
            via(Via::Relayed),
        ),
        (
            "connections_punched",
            "Open connections made by hole punching.",
            via(Via::Punched),
        ),
        (
            "port_mapped",
            "1 while the home router forwards the node's port (PCP, NAT-PMP or UPnP-IGD).",
            usize::from(node.port_mapping.mapping.is_some()),
        ),
    ];
    for (name, help, value) in gauges {
        metric(&mut out, name, help, "gauge", value as u64);
    }
    metric(
        &mut out,
        "store_bytes",
        "Bytes in the block store.",
        "gauge",
        node.store_bytes,
    );
    metric(
        &mut out,
        "uptime_seconds",
        "Seconds since the node started.",
        "gauge",
        node.uptime.as_secs(),
    );
    let c = &node.counters;
    let protocol = [
        (
            "messages_sent_total",
            "Protocol messages sent.",
            c.messages_sent,
        ),
        (
            "messages_received_total",
            "Protocol messages received.",
            c.messages_received,
        ),
        (
            "requests_sent_total",
            "Protocol requests sent.",
            c.requests_sent,
        ),
        (
            "requests_failed_total",
            "Protocol requests unanswered or undeliverable.",
            c.requests_failed,
        ),
        (
            "requests_answered_total",
            "Protocol requests from peers answered.",
            c.requests_answered,
        ),
        (
            "misbehaviour_total",
            "Messages dropped because a peer misbehaved.",
            c.misbehaviour,
        ),
        (
            "messages_from_clients_total",
            "Messages from peers in client mode (answered, kept out of the routing table).",
            c.from_clients,
        ),
        (
            "transmits_dropped_total",
            "Outgoing messages dropped on a full queue.",
            c.transmits_dropped,
        ),
        (
            "blocks_uploaded_total",
            "Blocks served to peers.",
            c.blocks_uploaded,
        ),
        (
            "bytes_uploaded_total",
            "Block bytes served to peers.",
            c.bytes_uploaded,
        ),
        (
            "blocks_downloaded_total",
            "Verified blocks received from peers.",
            c.blocks_downloaded,
        ),
        (
            "bytes_downloaded_total",
            "Verified block bytes received from peers.",
            c.bytes_downloaded,
        ),
        (
            "busy_replies_total",
            "Block requests refused as busy.",
            c.busy_replies,
        ),
        (
            "dont_have_replies_total",
            "Block requests answered with don't-have.",
            c.dont_have_replies,
        ),
        (
            "corrupt_blocks_total",
            "Blocks from peers that failed verification.",
            c.corrupt_blocks,
        ),
        (
            "fetches_succeeded_total",
            "Fetches from the network that completed.",
            node.fetches_succeeded,
        ),
        (
            "fetches_failed_total",
            "Fetches from the network that failed.",
            node.fetches_failed,
        ),
        (
            "port_mappings_attempted_total",
            "Port mappings asked of the home router (first asks and renewals).",
            node.port_mapping.attempts,
        ),
        (
            "port_mappings_succeeded_total",
            "Port mappings the home router granted.",
            node.port_mapping.successes,
        ),
    ];
    for (name, help, value) in protocol {
        metric(&mut out, name, help, "counter", value);
    }
    for (name, value) in node.transport.fields() {
        let name = format!("transport_{name}_total");
        metric(
            &mut out,
            &name,
            "Transport counter (see distroweb_net::stats).",
            "counter",
            value,
        );
    }
    metric(
        &mut out,
        "lookups_succeeded_total",
        "DHT queries that succeeded.",
        "counter",
        node.queries_succeeded,
    );
    metric(
        &mut out,
        "lookups_failed_total",
        "DHT queries that failed.",
        "counter",
        node.queries_failed,
    );
    out
}

fn metric(out: &mut String, name: &str, help: &str, kind: &str, value: u64) {
    let _ = writeln!(out, "# HELP distroweb_{name} {help}");
    let _ = writeln!(out, "# TYPE distroweb_{name} {kind}");
    let _ = writeln!(out, "distroweb_{name} {value}");
}

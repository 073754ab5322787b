//! `GET /`: the node as a person wants to see it.

use std::fmt::Write;
use std::time::Duration;

use distroweb_net::{Status, Via};

use crate::html::{escape, page};

/// Peers listed on the page at most; the count above the table is exact.
const PEERS_SHOWN: usize = 50;

/// Connections listed on the page at most; the counts above the table are exact.
const CONNECTIONS_SHOWN: usize = 50;

/// The open connections, and how each was made: direct, relayed or punched.
fn connection_table(b: &mut String, s: &Status) {
    let count = |via| s.connections.iter().filter(|c| c.via == via).count();
    let _ = write!(
        b,
        "<h2>Connections</h2><p>{} direct, {} relayed, {} hole-punched</p>",
        count(Via::Direct),
        count(Via::Relayed),
        count(Via::Punched)
    );
    if s.connections.is_empty() {
        return;
    }
    b.push_str("<table><tr><th>peer</th><th>address</th><th>opened by</th><th>made</th></tr>");
    for c in s.connections.iter().take(CONNECTIONS_SHOWN) {
        let _ = write!(
            b,
            "<tr><td title=\"{id}\">{short}</td><td>{addr}</td><td>{dir}</td><td>{via}</td></tr>",
            id = c.peer,
            short = c.peer.short(),
            addr = c.addr,
            dir = if c.inbound { "peer" } else { "this node" },
            via = c.via,
        );
    }
    b.push_str("</table>");
}

/// Renders the status page.
pub fn render(s: &Status) -> String {
    let mut b = String::with_capacity(8192);
    let _ = write!(
        b,
        "<table>\
         <tr><th>node id</th><td>{id}</td></tr>\
         <tr><th>listening on</th><td>{listen}</td></tr>\
         <tr><th>advertised as</th><td>{adv}</td></tr>\
         <tr><th>reachability</th><td>{mode}</td></tr>\
         <tr><th>public address</th><td>{public}</td></tr>\
         <tr><th>relay</th><td>{relay}</td></tr>\
         <tr><th>port mapping</th><td>{mapping}</td></tr>\
         <tr><th>uptime</th><td>{uptime}</td></tr>\
         <tr><th>routing table</th><td>{peers} contacts in {buckets} buckets</td></tr>\
         <tr><th>connections</th><td>{conns} open, {connected} peers connected</td></tr>\
         <tr><th>provided</th><td>{provided} keys announced by this node</td></tr>\
         <tr><th>tracked</th><td>{records} provider records for {keys} keys</td></tr>\
         <tr><th>lookups</th><td>{running} running, {ok} succeeded, {failed} failed</td></tr>\
         <tr><th>content held</th><td>{held} files or sites; store {store_mb:.1} of {cap_mb:.0} MB in {blocks} blocks</td></tr>\
         <tr><th>fetches</th><td>{fetching} running</td></tr>\
         </table>",
        id = s.id,
        listen = s.listen,
        adv = s.advertised,
        mode = format_args!(
            "{}; dial-backs: {}",
            if s.client_mode {
                "client mode: not dialable, in no routing table, announcing nothing"
            } else {
                "server: dialable at the advertised address"
            },
            s.reachability
        ),
        public = match s.public_ip {
            Some(ip) => format!("{ip}, as the peers it dialled see it"),
            None => "not known yet (fewer than two peers agree)".to_owned(),
        },
        relay = format_args!(
            "{}; relaying for others: {} reservations, {} circuits",
            match (s.relayed_at, s.public_addr) {
                (Some(relay), Some(public)) => format!(
                    "reached through the relay at {relay}; listening port seen at {public}"
                ),
                (Some(relay), None) => format!("reached through the relay at {relay}"),
                (None, _) => "not reached through a relay".to_owned(),
            },
            s.relay_reservations,
            s.relay_circuits
        ),
        mapping = port_mapping(&s.port_mapping),
        uptime = human(s.uptime),
        peers = s.routing_table_len,
        buckets = s.buckets_in_use,
        conns = s.open_connections,
        connected = s.connected_peers,
        provided = s.provided_keys,
        records = s.tracked_records,
        keys = s.tracked_keys,
        running = s.queries_running,
        ok = s.queries_succeeded,
        failed = s.queries_failed,
        held = s.held_count,
        store_mb = s.store_bytes as f64 / 1e6,
        cap_mb = s.store_capacity_bytes as f64 / 1e6,
        blocks = s.store_blocks,
        fetching = s.fetches_running,
    );
    held_table(&mut b, s);
    connection_table(&mut b, s);
    fetch_table(&mut b, s);
    b.push_str("<h2>Recent lookups</h2>");
    if s.recent.is_empty() {
        b.push_str("<p>None yet.</p>");
    } else {
        b.push_str("<table><tr><th>kind</th><th>target</th><th>result</th><th>hops</th><th>requests</th><th>time</th><th>ago</th></tr>");
        for q in &s.recent {
            let outcome = match &q.outcome {
                Ok(n) => format!("ok ({n})"),
                Err(e) => escape(&e.to_string()),
            };
            let _ = write!(
                b,
                "<tr><td>{kind}</td><td title=\"{t}\">{short}</td><td>{outcome}</td><td>{hops}</td><td>{req}</td><td>{ms} ms</td><td>{ago}</td></tr>",
                kind = q.kind,
                t = q.target,
                short = q.target.short(),
                hops = q.hops,
                req = q.requests,
                ms = q.elapsed.as_millis(),
                ago = human(q.age),
            );
        }
        b.push_str("</table>");
    }
    let _ = write!(b, "<h2>Peers ({})</h2>", s.routing_table_len);
    b.push_str("<table><tr><th>id</th><th>address</th></tr>");
    for p in s.peers.iter().take(PEERS_SHOWN) {
        let _ = write!(b, "<tr><td>{}</td><td>{}</td></tr>", p.id, p.addr);
    }
    b.push_str("</table>");
    b.push_str("<p><a href=\"/metrics\">Prometheus metrics</a> · <a href=\"/api/v1/status\">status as JSON</a></p>");
    page("distroweb node", &b)
}

fn held_table(b: &mut String, s: &Status) {
    b.push_str("<h2>Content held</h2>");
    if s.held.is_empty() {
        b.push_str("<p>Nothing yet: publish with <code>distroweb publish DIR</code>.</p>");
        return;
    }
    b.push_str("<table><tr><th>id</th><th>kept</th><th>size</th><th>last used</th></tr>");
    for (id, h) in &s.held {
        let _ = write!(
            b,
            "<tr><td><a href=\"/distroweb/{id}/\">{short}</a></td><td>{kept}</td><td>{size} B</td><td>{ago} ago</td></tr>",
            short = id.short(),
            kept = if h.pinned { "published or pinned" } else { "cached" },
            size = h.size,
            ago = human(s.uptime.saturating_sub(std::time::Duration::from_micros(h.last_used.as_micros()))),
        );
    }
    b.push_str("</table>");
}

fn fetch_table(b: &mut String, s: &Status) {
    b.push_str("<h2>Recent fetches</h2>");
    if s.fetches.is_empty() {
        b.push_str("<p>None yet.</p>");
        return;
    }
    b.push_str("<table><tr><th>id</th><th>result</th><th>from peers</th><th>providers</th><th>lookups</th><th>first byte</th><th>total</th><th>ago</th></tr>");
    for f in &s.fetches {
        let outcome = match &f.outcome {
            Ok(n) => format!("ok, {n} B"),
            Err(e) => escape(&e.to_string()),
        };
        let _ = write!(
            b,
            "<tr><td title=\"{id}\">{short}</td><td>{outcome}</td><td>{peers} B</td><td>{providers}</td><td>{lookups}</td><td>{ttfb}</td><td>{ms} ms</td><td>{ago}</td></tr>",
            id = f.root,
            short = f.root.short(),
            peers = f.bytes_from_peers,
            providers = f.providers_used,
            lookups = f.lookups,
            ttfb = f.first_byte.map_or("-".to_string(), |d| format!("{} ms", d.as_millis())),
            ms = f.elapsed.as_millis(),
            ago = human(f.age),
        );
    }
    b.push_str("</table>");
}

/// `1h 02m`, `3m 05s`, `42s`.
/// The port the router forwards, or why the page shows none.
fn port_mapping(p: &distroweb_net::port_map::PortMapStatus) -> String {
    let asked = format!("{} asked, {} granted", p.attempts, p.successes);
    match p.mapping {
        Some(m) => format!(
            "{external} by {protocol}, {lease}; {asked}",
            external = m.external,
            protocol = m.protocol,
            lease = match m.expires_in {
                Some(left) => format!("lease ends in {}", human(left)),
                None => "permanent".to_owned(),
            },
        ),
        None if p.attempts == 0 => "not asked for".to_owned(),
        None => format!("none: the router did not grant one; {asked}"),
    }
}

fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        _ => format!("{}h {:02}m", s / 3600, (s / 60) % 60),
    }
}

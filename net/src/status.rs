//! A snapshot of a running node, for status pages, metrics and persistence.

use std::net::SocketAddr;
use std::time::Duration;

use distroweb_protocol::{Contact, Counters, Id, QueryError, QueryKind, QueryOutput};

use crate::stats::TransportCounters;

/// What a node looks like at one moment.
#[derive(Clone, Debug)]
pub struct Status {
    /// The node's id.
    pub id: Id,
    /// Where it accepts connections.
    pub listen: SocketAddr,
    /// The address it tells peers.
    pub advertised: SocketAddr,
    /// Time since the node started.
    pub uptime: Duration,
    /// Contacts in the routing table, at most [`Status::MAX_PEERS`] of them, in id order.
    pub peers: Vec<Contact<SocketAddr>>,
    /// Contacts in the routing table in all.
    pub routing_table_len: usize,
    /// Buckets holding at least one contact.
    pub buckets_in_use: usize,
    /// Peers with an open connection.
    pub connected_peers: usize,
    /// Connections open or being dialled (counted against `max_connections`).
    pub open_connections: usize,
    /// Keys this node announces as provider.
    pub provided_keys: usize,
    /// Keys this node tracks provider records for.
    pub tracked_keys: usize,
    /// Provider records tracked in all.
    pub tracked_records: usize,
    /// Queries in flight.
    pub queries_running: usize,
    /// Queries started by commands that succeeded, since the node started.
    pub queries_succeeded: u64,
    /// Queries started by commands that failed, since the node started.
    pub queries_failed: u64,
    /// The protocol's counters.
    pub counters: Counters,
    /// The transport's counters.
    pub transport: TransportCounters,
    /// The most recently finished queries, newest first.
    pub recent: Vec<QueryRecord>,
}

impl Status {
    /// Most contacts listed in [`Status::peers`].
    pub const MAX_PEERS: usize = 1024;
}

/// One finished query, for the status page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryRecord {
    /// What it was for.
    pub kind: QueryKind,
    /// The id it looked up.
    pub target: Id,
    /// How much it found (providers, contacts or records stored), or why it failed.
    pub outcome: Result<usize, QueryError>,
    /// Hops, as the protocol counts them.
    pub hops: u32,
    /// Requests sent.
    pub requests: u32,
    /// How long it took.
    pub elapsed: Duration,
    /// How long ago it finished, when the snapshot was taken.
    pub age: Duration,
}

/// How many results a query output carries.
pub(crate) fn output_size<A>(output: &QueryOutput<A>) -> usize {
    match output {
        QueryOutput::Bootstrapped { contacts } => *contacts,
        QueryOutput::Closest(c) | QueryOutput::Providers(c) => c.len(),
        QueryOutput::Announced { stored } => *stored,
    }
}

//! A snapshot of a running node, for status pages, metrics and persistence.

use std::net::SocketAddr;
use std::time::Duration;

use distroweb_protocol::{Contact, Counters, FetchError, Id, QueryError, QueryKind, QueryOutput};

pub use crate::holdings::Holding;

pub use crate::connection::Via;

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
    /// Whether the node runs in client mode (it cannot be dialled, so it is
    /// in no routing table and announces nothing).
    pub client_mode: bool,
    /// What the node found out of its own reachability.
    pub reachability: crate::reachability::Reachability,
    /// This node's IP as the peers it dialled saw it, where two or more agree.
    pub public_ip: Option<std::net::IpAddr>,
    /// The relay this node is reached through (client mode with a reservation).
    pub relayed_at: Option<SocketAddr>,
    /// Where peers see this node's listening port from outside its NAT, as
    /// the last peer it dialled from that port said (hole punches aim there).
    pub public_addr: Option<SocketAddr>,
    /// Reservations this node holds for others as a relay.
    pub relay_reservations: usize,
    /// Circuits this node relays now.
    pub relay_circuits: usize,
    /// Open connections, at most [`Status::MAX_CONNECTIONS`], in peer id
    /// order, each with how it was made.
    pub connections: Vec<ConnectionStatus>,
    /// The port the home router forwards to this node, and the requests made.
    pub port_mapping: crate::port_map::PortMapStatus,
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
    /// Content held complete, at most [`Status::MAX_HELD`] entries, in id order.
    pub held: Vec<(Id, Holding)>,
    /// Content held complete in all.
    pub held_count: usize,
    /// Bytes in the block store.
    pub store_bytes: u64,
    /// Blocks in the block store.
    pub store_blocks: usize,
    /// The store's byte capacity.
    pub store_capacity_bytes: u64,
    /// Fetches running.
    pub fetches_running: usize,
    /// Fetches that needed the network and completed, since the node started.
    pub fetches_succeeded: u64,
    /// Fetches that failed, since the node started.
    pub fetches_failed: u64,
    /// The most recently finished fetches, newest first.
    pub fetches: Vec<FetchRecord>,
}

/// One open connection, for the status page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionStatus {
    /// The id the peer proved.
    pub peer: Id,
    /// Where the node knows it (a relayed peer: at its relay).
    pub addr: SocketAddr,
    /// The peer dialled this node.
    pub inbound: bool,
    /// How the connection was made.
    pub via: Via,
}

/// One finished fetch, for the status page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchRecord {
    /// The content id.
    pub root: Id,
    /// `Ok` with the bytes of content, or why it failed.
    pub outcome: Result<u64, FetchError>,
    /// Verified bytes received from peers.
    pub bytes_from_peers: u64,
    /// Providers that delivered at least one block.
    pub providers_used: usize,
    /// Provider lookups made.
    pub lookups: u32,
    /// Time to the first verified byte from a peer.
    pub first_byte: Option<Duration>,
    /// Time to the end.
    pub elapsed: Duration,
    /// How long ago it finished, when the snapshot was taken.
    pub age: Duration,
}

impl Status {
    /// Most contacts listed in [`Status::peers`].
    pub const MAX_PEERS: usize = 1024;
    /// Most held contents listed in [`Status::held`].
    pub const MAX_HELD: usize = 256;
    /// Most connections listed in [`Status::connections`].
    pub const MAX_CONNECTIONS: usize = 512;
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
        QueryOutput::Name(_) => 1,
    }
}

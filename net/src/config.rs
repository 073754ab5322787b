//! Every tunable of the transport, with the bound it sets.

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use distroweb_protocol::wire::MAX_MESSAGE_BYTES;
use distroweb_protocol::Config as ProtocolConfig;

use crate::node_key::KeySeed;

/// How a live node listens, dials and bounds its connections.
#[derive(Clone, Debug)]
pub struct NetConfig {
    /// Where to accept peer connections; port 0 picks a free one.
    pub listen: SocketAddr,
    /// The address peers are told to reach this node at; `None` uses the bound
    /// listen address. Peers always substitute the IP they see the connection
    /// come from, so an unspecified IP (`0.0.0.0`) works for direct neighbours.
    pub advertise: Option<SocketAddr>,
    /// Client mode: this node cannot be dialled (it sits behind a NAT or a
    /// firewall), so it tells peers to keep it out of their routing tables
    /// and announces no content; it still queries, fetches and serves over
    /// the connections it opens.
    pub client_mode: bool,
    /// Find out whether this node can be dialled (`reachability`): ask the
    /// peers it dials to dial it back, and run in client mode when none can.
    /// Ignored with `client_mode`, which says it outright.
    pub probe_reachability: bool,
    /// Peers that must have been asked in vain before the node concludes it
    /// cannot be dialled.
    pub reachability_probes: usize,
    /// How long an asked peer has to dial back.
    pub reachability_timeout: Duration,
    /// Dial-backs this node makes for others at once, at most.
    pub max_dialbacks: usize,
    /// Relaying: the service this node offers when reachable, and whether it
    /// uses relays and hole punching when it is not.
    pub relay: RelayConfig,
    /// Ask the home router to forward the listen port (PCP or NAT-PMP, else
    /// UPnP-IGD: `port_map`) and advertise the address it gives. Off by
    /// default (tests, testnets); `distroweb node` turns it on. Ignored with
    /// `client_mode`, with `advertise`, and for a loopback or IPv6 listener.
    pub port_mapping: bool,
    /// The lease a port mapping asks for, renewed at half; default 1 hour
    /// (RFC 6886 § 3.3 recommends 2 hours; a shorter one frees the port
    /// sooner after a crash).
    pub port_mapping_lease: Duration,
    /// How long a start waits for the router to grant a mapping; default 5 s,
    /// more than the PCP/NAT-PMP retries (1.75 s) and the UPnP search (2 s)
    /// that run side by side, plus two UPnP requests.
    pub port_mapping_timeout: Duration,
    /// This node's Ed25519 secret key seed (its id is BLAKE3 of the public
    /// key); `None` loads the data directory's key, or makes one (saved there
    /// when there is a data directory). Never printed: its `Debug` hides it.
    pub key: Option<KeySeed>,
    /// The S/Kademlia static puzzle, a network-wide parameter: a key is valid
    /// when BLAKE3 of its id starts with this many zero bits, and a peer whose
    /// key does not is refused in the handshake. Making a key takes `2^bits`
    /// tries of about 20 µs each: 8 bits (the default) about 5 ms, and every
    /// extra bit doubles it; an attacker pays the same for each id it tries.
    pub id_difficulty_bits: u32,
    /// Seed for the protocol's RNG; `None` draws one from the OS.
    pub seed: Option<u64>,
    /// Where the key, known peers and content live; `None` keeps everything
    /// in memory and forgets it at exit. A `key` given above overrides a saved one.
    pub data_dir: Option<PathBuf>,
    /// How often the known peers are saved to the data directory (and at shutdown).
    pub persist_interval: Duration,
    /// The protocol state machine's configuration.
    pub protocol: ProtocolConfig,
    /// Inbound connections open at most, handshakes in progress included. When
    /// full, a newcomer evicts the oldest connection still in its handshake
    /// from the IP that has the most of those (Bitcoin Core's eviction in spirit).
    pub max_inbound_connections: usize,
    /// Outbound connections open at most, dials in progress included: a budget
    /// of its own, so an inbound flood never stops this node dialling out.
    pub max_outbound_connections: usize,
    /// Inbound connections from one IP still in their handshake, at most; more
    /// are closed at once. Counts only unauthenticated ones, so it costs honest
    /// peers nothing.
    pub max_handshaking_per_ip: usize,
    /// Inbound connections from one IP at most, established or not: generous,
    /// because a loopback testnet runs every node on one IP.
    pub max_inbound_per_ip: usize,
    /// Dials in progress at most to one IP for (address, id) pairs not verified
    /// recently, plus one for each pair at that IP that was: a third party
    /// named in a message sees at most this many connections at once.
    pub max_unverified_dials_per_ip: usize,
    /// Failed dials to one IP within `dial_failure_window` after which no
    /// unverified dial goes there until the window moves on (plus one for each
    /// verified pair at that IP): failures are limited, successes are not.
    pub max_dial_failures_per_ip: usize,
    /// The window `max_dial_failures_per_ip` counts over.
    pub dial_failure_window: Duration,
    /// An address whose connect or handshake failed is not dialled again
    /// (unless verified) for this long.
    pub failed_dial_backoff: Duration,
    /// Addresses remembered as failed, at most (oldest forgotten first).
    pub max_failed_addresses: usize,
    /// How long a dial that proved the id it expected counts as verified.
    pub verified_ttl: Duration,
    /// (address, id) pairs remembered as verified, at most (oldest forgotten first).
    pub max_verified_peers: usize,
    /// The largest frame accepted or sent, in bytes (length prefix excluded).
    pub max_frame_bytes: usize,
    /// How long a TCP connect may take.
    pub dial_timeout: Duration,
    /// How long the whole handshake (preamble and Noise) may take after the TCP connection opens.
    pub handshake_timeout: Duration,
    /// How long the rest of a frame may take once its length has arrived.
    pub read_timeout: Duration,
    /// How long one frame may take to write before the connection is dropped.
    pub write_timeout: Duration,
    /// A connection that receives nothing for this long is closed.
    pub idle_timeout: Duration,
    /// Frames queued per connection for its writer; past this, frames are dropped.
    pub max_queued_frames: usize,
    /// Bytes queued per connection for its writer; past this, frames are dropped
    /// (a slow reader must not make a node buffer `max_queued_frames` whole blocks).
    pub max_queued_bytes: usize,
    /// Frames held for a peer while it is being dialled; past this, frames are dropped.
    pub max_frames_while_dialing: usize,
    /// Inputs (messages, connection events) queued for the node task.
    pub inbound_queue: usize,
    /// Commands queued for the node task.
    pub command_queue: usize,
    /// Cached content used this recently is not evicted to make room (a page
    /// being served must not vanish under its reader).
    pub eviction_grace: Duration,
    /// Finished queries remembered for the status page.
    pub recent_queries: usize,
    /// Blocking workers that carry out storage operations at once (disk reads,
    /// writes with their fsyncs, hashing), off the node task; also the writes
    /// each upload keeps in flight, so an upload holds at most this many chunks.
    pub store_workers: usize,
    /// Uploads ([`crate::Upload`]) writing blocks at once; more are refused.
    pub max_uploads: usize,
    /// Bytes of recently read blocks kept in memory (`block_cache.rs`), so a
    /// page asked for again is served without a disk read and a re-hash;
    /// default 64 MiB (a bound chosen here: a few hundred pages of a site).
    /// Blocks just written get a window of a quarter of this on top.
    pub block_cache_bytes: usize,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 4100)),
            advertise: None,
            client_mode: false,
            probe_reachability: false,
            reachability_probes: 3,
            reachability_timeout: Duration::from_secs(10),
            max_dialbacks: 4,
            relay: RelayConfig::default(),
            port_mapping: false,
            port_mapping_lease: Duration::from_secs(3600),
            port_mapping_timeout: Duration::from_secs(5),
            key: None,
            id_difficulty_bits: 8,
            seed: None,
            data_dir: None,
            persist_interval: Duration::from_secs(60),
            protocol: live_protocol(),
            max_inbound_connections: 192,
            max_outbound_connections: 64,
            max_handshaking_per_ip: 8,
            max_inbound_per_ip: 128,
            max_unverified_dials_per_ip: 4,
            max_dial_failures_per_ip: 4,
            dial_failure_window: Duration::from_secs(60),
            failed_dial_backoff: Duration::from_secs(60),
            max_failed_addresses: 1024,
            verified_ttl: Duration::from_secs(3600),
            max_verified_peers: 4096,
            max_frame_bytes: MAX_MESSAGE_BYTES,
            dial_timeout: Duration::from_secs(5),
            handshake_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(300),
            max_queued_frames: 256,
            max_queued_bytes: 8 << 20,
            max_frames_while_dialing: 64,
            inbound_queue: 1024,
            command_queue: 256,
            eviction_grace: Duration::from_secs(60),
            recent_queries: 64,
            store_workers: 4,
            max_uploads: 8,
            block_cache_bytes: 64 << 20,
        }
    }
}

/// Relays and hole punching, every cap of the service in one place.
///
/// Why these defaults: a relay is a public node's gift to strangers, so it
/// gives little, as libp2p's circuit relay v2 does (which allows 128 KiB and
/// 2 minutes a circuit); but a distroweb circuit carries a page and its
/// blocks until a hole punch replaces it, so it allows a few MiB more.
#[derive(Clone, Debug)]
pub struct RelayConfig {
    /// Offer relaying while this node is reachable (off: refuse every
    /// reservation and circuit).
    pub serve: bool,
    /// Reservations held for others at once, at most.
    pub max_reservations: usize,
    /// Circuits relayed at once, at most.
    pub max_circuits: usize,
    /// Circuits at once to one reserved node, at most.
    pub max_circuits_per_reservation: usize,
    /// Bytes a circuit carries, both ways together, before it is closed.
    pub circuit_bytes: u64,
    /// How long a circuit lives, at most.
    pub circuit_time: Duration,
    /// How long a reservation lasts before the node must make it again.
    pub reservation_ttl: Duration,
    /// How often a reservation's two ends ping each other (which also keeps
    /// the NAT's mapping alive); three missed pings end it.
    pub keepalive: Duration,
    /// In client mode, keep a reservation at a reachable peer and be reached
    /// through it.
    pub use_relays: bool,
    /// After meeting a peer through a relay, try a direct connection by TCP
    /// simultaneous open; behind a NAT, dial from the listening port so
    /// that peers see the mapping a punch aims at.
    pub hole_punching: bool,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            serve: true,
            max_reservations: 128,
            max_circuits: 32,
            max_circuits_per_reservation: 8,
            circuit_bytes: 32 << 20,
            circuit_time: Duration::from_secs(120),
            reservation_ttl: Duration::from_secs(3600),
            keepalive: Duration::from_secs(30),
            use_relays: true,
            hole_punching: true,
        }
    }
}

/// The protocol's defaults, with a wider block window per fetch than the
/// simulator's: on a live node every block waits on other tasks at both
/// ends (a store read, sealing, opening, hashing), and on two shared cores
/// it also waits to be scheduled, so 8 blocks per source (2 MiB) left the
/// link idle between bursts. 16 per source (4 MiB of 256 KiB chunks) fits a
/// provider connection's queue (`max_queued_bytes`, 8 MiB).
fn live_protocol() -> ProtocolConfig {
    let mut p = ProtocolConfig::default();
    p.transfer.max_blocks_per_provider = NonZeroUsize::new(16).unwrap_or(NonZeroUsize::MIN);
    p.transfer.max_blocks_in_flight = NonZeroUsize::new(32).unwrap_or(NonZeroUsize::MIN);
    p
}

impl NetConfig {
    /// A configuration for a node on loopback with an ephemeral port: what tests
    /// and `distroweb testnet` use.
    pub fn loopback() -> Self {
        NetConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            ..NetConfig::default()
        }
    }
}

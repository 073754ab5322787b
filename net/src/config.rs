//! Every tunable of the transport, with the bound it sets.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use distroweb_protocol::wire::MAX_MESSAGE_BYTES;
use distroweb_protocol::{Config as ProtocolConfig, Id};

/// How a live node listens, dials and bounds its connections.
#[derive(Clone, Debug)]
pub struct NetConfig {
    /// Where to accept peer connections; port 0 picks a free one.
    pub listen: SocketAddr,
    /// The address peers are told to reach this node at; `None` uses the bound
    /// listen address. Peers always substitute the IP they see the connection
    /// come from, so an unspecified IP (`0.0.0.0`) works for direct neighbours.
    pub advertise: Option<SocketAddr>,
    /// This node's id; `None` draws a random one.
    pub id: Option<Id>,
    /// Seed for the protocol's RNG; `None` draws one from the OS.
    pub seed: Option<u64>,
    /// Where the identity, known peers and content live; `None` keeps everything
    /// in memory and forgets it at exit. An `id` given above overrides a saved one.
    pub data_dir: Option<PathBuf>,
    /// How often the known peers are saved to the data directory (and at shutdown).
    pub persist_interval: Duration,
    /// The protocol state machine's configuration.
    pub protocol: ProtocolConfig,
    /// Open connections at most, inbound and outbound together (dials in progress count).
    pub max_connections: usize,
    /// The largest frame accepted or sent, in bytes (length prefix excluded).
    pub max_frame_bytes: usize,
    /// How long a TCP connect may take.
    pub dial_timeout: Duration,
    /// How long the peer has to send its hello after the TCP connection opens.
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
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 4100)),
            advertise: None,
            id: None,
            seed: None,
            data_dir: None,
            persist_interval: Duration::from_secs(60),
            protocol: ProtocolConfig::default(),
            max_connections: 256,
            max_frame_bytes: MAX_MESSAGE_BYTES,
            dial_timeout: Duration::from_secs(5),
            handshake_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(300),
            max_queued_frames: 256,
            max_queued_bytes: 4 << 20,
            max_frames_while_dialing: 64,
            inbound_queue: 1024,
            command_queue: 256,
            eviction_grace: Duration::from_secs(60),
            recent_queries: 64,
            store_workers: 4,
            max_uploads: 8,
        }
    }
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

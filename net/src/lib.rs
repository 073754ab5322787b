//! The live node: tokio TCP connections, a disk store and a data directory
//! around one unmodified protocol `Node`.
//!
//! A single task owns the `Node` (an actor, in `driver`) and everyone else talks
//! to it through a [`NodeHandle`]; the node is never shared behind a lock, and
//! this crate holds no protocol logic. A connection opens with a plaintext
//! preamble (magic and version) and a Noise XX handshake (`handshake`) in which
//! each side proves the id its Ed25519 key (`node_key`) gives it; after that it
//! carries sealed frames (`frame`) of protocol's codec. Connections are keyed
//! by proven id, dials by strangers' say-so are limited (`dial_limits`), and
//! inbound and outbound connections have budgets of their own (`slots`).
//! Content lives in a [`DiskStore`] (any [`BlockStore`]), which a bounded pool
//! of blocking workers reads and writes for the node; the key, known peers and
//! the list of held content in a [`DataDir`], and the keys of the names this
//! machine may update in [`NameKeys`].
//!
//! Start reading at [`LiveNode::start`]; the modules, alphabetically:
#![forbid(unsafe_code)]
#![warn(missing_docs)]

/// Recently read blocks in memory, in front of the store.
pub mod block_cache;
/// The thread-safe block store API, and a memory store.
pub mod block_store;
/// Real time to protocol time.
mod clock;
/// Every transport tunable and its bound.
pub mod config;
/// One established connection's task.
mod connection;
/// The key and known peers on disk, written atomically.
pub mod data_dir;
/// Outbound connections.
mod dial;
/// Which dials an unverified address may cause.
mod dial_limits;
/// Content blocks on disk, verified when written and on first read after a start.
pub mod disk_store;
/// The node task that owns the protocol state machine.
mod driver;
/// Errors starting or talking to a node.
mod error;
/// Reading a fetch as it lands.
mod fetching;
/// Sealed frames with a hard size limit.
pub mod frame;
/// The command handle.
mod handle;
/// The preamble and Noise handshake that open a connection and prove ids.
pub mod handshake;
/// Held content: pinned or cached, and its use order.
mod holdings;
/// Inbound connections.
mod listener;
/// Start and stop.
mod live;
/// Name keys: the secrets that let this machine point a name at a new root.
pub mod name_keys;
/// The Ed25519 node key, the id it proves, and the id puzzle.
pub mod node_key;
/// Collecting blocks that no held content names, at start.
mod orphans;
/// Asking the home router to forward the listen port (PCP, NAT-PMP, UPnP-IGD).
pub mod port_map;
/// Hole punching: a direct connection to a peer met through a relay.
mod punch;
/// Whether this node can be dialled: dial-backs asked for and made.
pub mod reachability;
/// The relay service, and the reservation a node behind a NAT keeps.
mod relay;
/// Inbound and outbound connection budgets, per-IP caps and eviction.
mod slots;
/// Transport counters.
pub mod stats;
/// Node snapshots for status pages and metrics.
pub mod status;
/// Storage operations on a bounded pool of blocking workers.
mod store_pool;
/// Publishing content as it streams in, a few chunks in memory at most.
mod upload;
/// The blocks uploads write, as the node task tracks them.
mod upload_blocks;

pub use block_store::{BlockStore, MemoryBlocks};
pub use config::{NetConfig, RelayConfig};
pub use data_dir::{DataDir, DataDirError, DirLock};
pub use disk_store::DiskStore;
pub use error::{Chain, NetError, StartError};
pub use fetching::{FetchProgress, Fetching};
pub use handle::{NodeHandle, Published, QueryDone};
pub use handshake::PROTOCOL_VERSION;
pub use live::LiveNode;
pub use name_keys::{KeyTextError, NameKeyError, NameKeys, NameSecret, OnExisting};
pub use node_key::{KeySeed, NodeKey};
pub use stats::TransportCounters;
pub use status::{ConnectionStatus, FetchRecord, Holding, QueryRecord, Status, Via};
pub use upload::{Upload, UploadError};

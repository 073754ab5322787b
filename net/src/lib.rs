//! The live node: tokio TCP connections, a disk store and a data directory
//! around one unmodified protocol `Node`.
//!
//! A single task owns the `Node` (an actor, in `driver`) and everyone else talks
//! to it through a [`NodeHandle`]; the node is never shared behind a lock, and
//! this crate holds no protocol logic. Peers speak length-prefixed frames
//! (`frame`) carrying protocol's codec, after a hello (`handshake`) that carries
//! the protocol version, the node id and the address it listens at. Content
//! lives in a [`DiskStore`] (any [`BlockStore`]), which a bounded pool of
//! blocking workers reads and writes for the node; identity, known peers and
//! the list of held content in a [`DataDir`].
//!
//! Start reading at [`LiveNode::start`]; the modules, alphabetically:
#![forbid(unsafe_code)]
#![warn(missing_docs)]

/// The thread-safe block store API, and a memory store.
pub mod block_store;
/// Real time to protocol time.
mod clock;
/// Every transport tunable and its bound.
pub mod config;
/// One established connection's task.
mod connection;
/// Identity and known peers on disk, written atomically.
pub mod data_dir;
/// Outbound connections.
mod dial;
/// Content blocks on disk, verified on every read.
pub mod disk_store;
/// The node task that owns the protocol state machine.
mod driver;
/// Errors starting or talking to a node.
mod error;
/// Reading a fetch as it lands.
mod fetching;
/// Length-prefixed frames with a hard size limit.
pub mod frame;
/// The command handle.
mod handle;
/// The hello exchanged when a connection opens.
pub mod handshake;
/// Held content: pinned or cached, and its use order.
mod holdings;
/// Inbound connections.
mod listener;
/// Start and stop.
mod live;
/// Collecting blocks that no held content names, at start.
mod orphans;
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
pub use config::NetConfig;
pub use data_dir::{DataDir, DataDirError, DirLock};
pub use disk_store::DiskStore;
pub use error::{Chain, NetError, StartError};
pub use fetching::{FetchProgress, Fetching};
pub use handle::{NodeHandle, Published, QueryDone};
pub use handshake::PROTOCOL_VERSION;
pub use live::LiveNode;
pub use stats::TransportCounters;
pub use status::{FetchRecord, Holding, QueryRecord, Status};
pub use upload::{Upload, UploadError};

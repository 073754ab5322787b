//! The distroweb protocol: a pure, deterministic state machine for one peer.
//!
//! A node tracks the content whose hash is close to its id, finds the trackers
//! of other content through a Kademlia-style DHT, and speaks one wire format.
//! The same code runs inside the simulator and in the live TCP node.
//!
//! This crate never reads the clock, draws OS randomness, spawns threads, opens
//! sockets or files, or iterates a hash map: time and a seed come from the driver,
//! and outputs are pulled with [`Node::poll_output`] until it says
//! [`Output::Timeout`]; [`drain`] is that loop (see [`Node`]).
//! `clippy.toml` in this crate bans the offending APIs.
//!
//! Start reading at [`Node`]; the rest, in dependency order:
#![forbid(unsafe_code)]
#![warn(missing_docs)]

/// Every tunable, with the bound it sets.
pub mod config;
/// Peers: an id plus an address of the driver's choosing.
pub mod contact;
/// Files, sites, their manifests and the block store.
pub mod content;
/// Distance metrics over ids, one file each behind one trait (`Metric::ALL` lists them).
pub mod distance;
/// The one drain loop every driver uses.
pub mod drain;
/// Outputs to the driver: transmits and events.
pub mod event;
/// 256-bit ids for nodes and content.
pub mod id;
/// The node's inputs and outputs.
pub mod io;
/// Signed name records: sites that can change, and the tracker's store of them.
pub mod names;
/// The node state machine.
pub mod node;
/// Query ids, kinds, results, statistics; the iterative walk.
pub mod query;
/// Provider records this node tracks, and the keys it provides.
pub mod records;
/// The k-bucket routing table.
pub mod routing;

mod shed;
/// The driver's notion of time.
pub mod time;
/// Fetching content from many providers, and admitting uploads.
pub mod transfer;
/// The wire format and its bounded codec.
pub mod wire;

pub use config::{
    Config, ConfigError, CrowdConfig, DhtConfig, LimitsConfig, ParseStrategyError, RecordsConfig,
    RoutingConfig, Strategy, TransferConfig, UnsampledTimeout,
};
pub use contact::{AddrGroup, Address, Contact, Reach};
pub use content::{
    BlockSource, ContentStore, FileManifest, Manifest, ManifestError, MediaType, MemoryStore,
    PathError, Prepared, ReadError, SiteEntry, SiteError, SiteFile, SiteManifest, SitePath,
    StoreError,
};
pub use distance::{Distance, Metric, ParseMetricError};
pub use drain::{drain, Driver};
pub use event::{Event, Misbehaviour, Transmit};
pub use id::{Id, ParseIdError};
pub use io::{Input, Output, StoreDone, StoreOp};
pub use node::{Basis, CommandError, Counters, MemoryReport, MemoryTerm, Node, PublishError};
pub use query::{
    Forwarding, ParseForwardingError, QueryError, QueryId, QueryKind, QueryOutput, QueryStats,
};
pub use time::Time;
pub use transfer::{Corruption, FetchError, FetchId, FetchStats, ProviderStats};
pub use wire::{Body, DecodeError, EncodeError, Message, Payload, RpcId, TrafficClass};

/// ARCHITECTURE.md's code runs as a doctest, so the loop it shows cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../../ARCHITECTURE.md")]
pub struct ArchitectureDoctests;

//! A deterministic discrete-event simulator that drives the unmodified
//! `distroweb_protocol::Node` through its public API only.
//!
//! Each run is single-threaded and fully determined by its [`SimConfig`] (whose
//! `seed` drives every random stream) and the calls made on the [`Sim`]; the trace
//! digest proves it. The simulator never reads the wall clock and never touches a
//! socket. Parallelism, if any, is across runs.
//!
//! In reading order:
#![forbid(unsafe_code)]
#![warn(missing_docs)]

/// Scheduled actions: joins, leaves, commands (lookups, publications, fetches).
pub mod action;
/// Node addresses: slot indices.
pub mod addr;
/// Adversarial nodes: colluding behaviour wrappers and key grinding.
pub mod adversary;
/// Per-node behaviour wrappers, the hook for adversarial nodes.
pub mod behaviour;
/// The run's configuration.
pub mod config;
/// Session and down-time distributions.
pub mod dist;
/// The engine: slots, event loop, drain.
pub mod engine;
/// Content fetch outcomes, completion times and who served.
pub mod fetch_metrics;
/// A test harness: a few real nodes driven step by step, messages held or dropped.
pub mod harness;
/// Rules that hold or drop messages on their way.
pub mod intercept;
/// Who is up, and bootstrap peer choice.
pub mod membership;
/// Per-kind query outcomes and per-node traffic.
pub mod metrics;
/// Name publications and resolutions: who saw which version, and when.
pub mod name_metrics;
/// Latency, bandwidth, loss and partitions.
pub mod network;
/// The routing graph and its components.
pub mod overlay;
/// The standard grow-publish-lookup scenario.
pub mod scenario;
/// Seed derivation and the named RNG.
pub mod seed;
/// Counts of the engine's work.
pub mod stats;
/// The run over time: per interval, nodes up, lookups, latency, traffic, content.
pub mod timeseries;
/// Growth, publications, lookups and flash crowds.
pub mod workload;

mod digest;
mod queue;

pub use action::Action;
pub use addr::NodeIdx;
pub use adversary::{Adversary, Attack, Coalition};
pub use behaviour::{Behaviour, Unresponsive};
pub use config::{ChurnConfig, Rejoin, SimConfig, SimConfigError};
pub use dist::Distribution;
pub use engine::{Sim, Step};
pub use fetch_metrics::FetchMetrics;
pub use harness::Harness;
pub use intercept::{Envelope, RuleId, Verdict};
pub use membership::Seeds;
pub use metrics::{ClassCounters, KindMetrics, Metrics};
pub use name_metrics::{NameMetrics, Published, Resolved};
pub use network::{BurstLoss, DeadPeer, NetworkConfig, Partition};
pub use overlay::{Overlay, OverlayStats};
pub use scenario::LookupScenario;
pub use stats::EngineStats;
pub use timeseries::{TimeSeries, TimeSeriesConfig};
pub use workload::{Askers, KeySampler, Popularity, Window, Workload};

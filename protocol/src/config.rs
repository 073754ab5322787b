//! Every tunable of a node, with the bound it puts on memory or time.

use core::time::Duration;

use serde::{Deserialize, Serialize};

use crate::distance::Metric;
use crate::query::Forwarding;
use crate::routing::TableConfig;
use crate::wire::{MAX_LIST_LEN, MAX_ROUTE_PATH};

/// How a lookup travels through the network.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub enum Strategy {
    /// Kademlia: the origin asks `alpha` peers at a time and walks towards the key itself.
    #[default]
    Iterative,
    /// The original distroweb design: each hop forwards the request to the closest
    /// peer it knows; the responsible node answers back down the path.
    Recursive,
}

impl Strategy {
    /// Every strategy, for experiments and tests that sweep them.
    pub const ALL: &'static [Strategy] = &[Strategy::Iterative, Strategy::Recursive];

    /// The lowercase name, as shown and parsed.
    pub const fn name(self) -> &'static str {
        match self {
            Strategy::Iterative => "iterative",
            Strategy::Recursive => "recursive",
        }
    }
}

impl core::fmt::Display for Strategy {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// A strategy name that is not one of [`Strategy::ALL`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown strategy {given:?} (known: iterative, recursive)")]
pub struct ParseStrategyError {
    /// What was given.
    pub given: String,
}

impl core::str::FromStr for Strategy {
    type Err = ParseStrategyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Strategy::ALL
            .iter()
            .copied()
            .find(|x| x.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| ParseStrategyError { given: s.into() })
    }
}

/// A node's configuration. `Config::default()` follows the Kademlia paper and IPFS.
///
/// Fields missing from a serialised configuration take their default, so files
/// written by older versions still load.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// How closeness between ids is measured.
    pub metric: Metric,
    /// How lookups travel.
    pub strategy: Strategy,
    /// `k`: bucket size, and how many closest nodes a lookup converges on.
    pub k: usize,
    /// `alpha`: requests in flight at once in an iterative lookup.
    pub alpha: usize,
    /// `r`: how many of the closest nodes store a provider record.
    pub replication: usize,
    /// Stand-in contacts cached per full bucket.
    pub replacement_cache: usize,
    /// Unanswered requests in a row after which a contact is dropped.
    pub max_failures: u8,
    /// How long to wait for any single reply.
    pub request_timeout: Duration,
    /// How long a whole query may run before it fails with `Timeout`.
    pub query_timeout: Duration,
    /// Queries that may run at once; a command past this is refused.
    pub max_queries: usize,
    /// Candidates an iterative lookup remembers; the farthest are forgotten first.
    pub max_lookup_candidates: usize,
    /// Requests awaiting a reply at once (all queries together); past this a query waits.
    pub max_pending_requests: usize,
    /// Outgoing messages queued for the driver; past this, new ones are dropped and counted.
    pub max_transmit_queue: usize,
    /// Misbehaviour reports queued for the driver; past this, new ones are
    /// dropped and counted (terminal and progress events are never dropped).
    pub max_event_queue: usize,
    /// Storage operations handed to the driver at once; the rest wait in order.
    pub max_store_ops: usize,
    /// Publications waiting for their blocks to be stored at once.
    pub max_publishes: usize,
    /// Most forwards along a recursive route before it fails with `HopLimit`.
    pub max_route_hops: usize,
    /// Peers a recursive hop tries before it gives up with `DeadEnd`.
    pub route_attempts: usize,
    /// Sideways steps a greedy recursive provider lookup may take out of a local minimum.
    pub route_detours: usize,
    /// How recursive routes pick their next hop; `None` (the default) lets the
    /// metric choose (greedy for XOR and the ring, best-first for Hamming).
    pub route_forwarding: Option<Forwarding>,
    /// Best-first forwarding: a route ends once this many of the closest nodes
    /// it has seen were visited. 20 (= `k`): see docs/RESULTS.md, hops.
    pub route_width: usize,
    /// Recursive requests a node forwards at once for others; past this it refuses.
    pub max_forwards: usize,
    /// A bucket no lookup touched for this long is refreshed with a random lookup.
    pub refresh_interval: Duration,
    /// How often the node checks for stale buckets, due republishes and expired records.
    pub maintenance_interval: Duration,
    /// Refresh lookups started per maintenance round at most.
    pub max_refreshes_per_round: usize,
    /// Buckets a joining node refreshes after its self-lookup (Kademlia §2.3:
    /// those farther than its closest neighbour), nearest first; 0 skips it.
    pub join_refreshes: usize,
    /// How long a provider record lives at a tracker (IPFS: 48 h).
    pub provider_ttl: Duration,
    /// How often a provider re-announces what it holds (IPFS: 22 h).
    pub republish_interval: Duration,
    /// Keys a tracker keeps provider records for; the least recently announced go first.
    pub max_provider_keys: usize,
    /// Providers a tracker keeps per key; the least recently announced go first.
    pub max_providers_per_key: usize,
    /// Providers returned in one reply and by one `find_providers`.
    pub max_providers_returned: usize,
    /// A provider lookup stops once it knows this many providers.
    pub providers_enough: usize,
    /// Keys this node announces (and republishes) at once.
    pub max_provided_keys: usize,

    // ---- content ----
    /// Bytes per chunk when publishing a file (default 256 KiB); at most one block.
    pub chunk_size: usize,
    /// Bytes the default in-memory store holds at most.
    pub store_capacity_bytes: u64,
    /// Blocks the default in-memory store holds at most.
    pub store_max_blocks: usize,
    /// Publishing a site also announces each of its files (off: only the site's id).
    pub announce_site_files: bool,
    /// "Every downloader is a server": after a complete, verified fetch the node
    /// announces itself as a provider. Off, only publishers serve (the plain-web baseline).
    pub serve_after_fetch: bool,
    /// BitTorrent's swarming: serve blocks of content still being fetched.
    /// Peers learn of a partial holder only through `announce_fetching`.
    pub serve_partial: bool,
    /// CoralCDN's flash-crowd guard: a fetch announces a short-lived "fetch in
    /// progress" record, so later requesters find this node, and this node holds
    /// their requests for blocks it is about to receive instead of refusing them.
    pub announce_fetching: bool,
    /// How long a "fetch in progress" record lives at a tracker.
    pub fetching_ttl: Duration,
    /// Keys a tracker keeps "fetch in progress" records for.
    pub max_fetching_keys: usize,
    /// Block requests held at once while their block is on its way here.
    pub max_held_requests: usize,
    /// How long a held request waits before it is answered "don't have";
    /// shorter than `block_timeout`, so the requester hears before it gives up.
    pub hold_timeout: Duration,
    /// Uploads running at once; past this a block request is answered "busy".
    pub max_uploads: usize,
    /// Upload capacity the node assumes when estimating when an upload ends.
    pub upload_bytes_per_s: u64,
    /// Fetches running at once; a command past this is refused.
    pub max_fetches: usize,
    /// How long a whole fetch may run before it fails with `Timeout`.
    pub fetch_timeout: Duration,
    /// How long to wait for one block.
    pub block_timeout: Duration,
    /// A fetch's provider lookup stops once it knows this many providers.
    pub fetch_providers_wanted: usize,
    /// Block requests one fetch has in flight at once, over all providers.
    pub max_blocks_in_flight: usize,
    /// Block requests one fetch has in flight to any one provider.
    pub max_blocks_per_provider: usize,
    /// How long a provider that answered "busy" (or failed) is left alone.
    pub busy_backoff: Duration,
    /// Rounds through every provider a block may take before the fetch gives up on it.
    pub block_rounds: u32,
    /// Provider lookups one fetch may make (more when providers run out).
    pub max_lookups_per_fetch: u32,
    /// Report every verified chunk, in file order, as an event (for streaming).
    pub emit_chunk_events: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            metric: Metric::Xor,
            strategy: Strategy::Iterative,
            k: 20,
            alpha: 3,
            replication: 20,
            replacement_cache: 4,
            max_failures: 3,
            request_timeout: Duration::from_secs(2),
            query_timeout: Duration::from_secs(60),
            max_queries: 256,
            max_lookup_candidates: 100,
            max_pending_requests: 1024,
            max_transmit_queue: 4096,
            max_event_queue: 4096,
            max_store_ops: 64,
            max_publishes: 16,
            max_route_hops: 32,
            route_attempts: 3,
            route_detours: 4,
            route_forwarding: None,
            route_width: 20,
            max_forwards: 1024,
            refresh_interval: Duration::from_secs(3600),
            maintenance_interval: Duration::from_secs(300),
            max_refreshes_per_round: 8,
            join_refreshes: 16,
            provider_ttl: Duration::from_secs(48 * 3600),
            republish_interval: Duration::from_secs(22 * 3600),
            max_provider_keys: 16_384,
            max_providers_per_key: 20,
            max_providers_returned: 20,
            providers_enough: 1,
            max_provided_keys: 16_384,
            chunk_size: crate::content::DEFAULT_CHUNK_BYTES,
            store_capacity_bytes: 1 << 30,
            store_max_blocks: 65_536,
            announce_site_files: false,
            serve_after_fetch: true,
            serve_partial: true,
            announce_fetching: true,
            fetching_ttl: Duration::from_secs(60),
            max_fetching_keys: 4096,
            max_held_requests: 256,
            hold_timeout: Duration::from_secs(5),
            max_uploads: 16,
            upload_bytes_per_s: 12_500_000,
            max_fetches: 64,
            fetch_timeout: Duration::from_secs(300),
            block_timeout: Duration::from_secs(10),
            fetch_providers_wanted: 8,
            max_blocks_in_flight: 16,
            max_blocks_per_provider: 4,
            busy_backoff: Duration::from_millis(500),
            block_rounds: 3,
            max_lookups_per_fetch: 3,
            emit_chunk_events: true,
        }
    }
}

/// A configuration that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A count that must be at least one is zero.
    #[error("`{0}` must be at least 1")]
    Zero(&'static str),
    /// A value exceeds what the wire format can carry.
    #[error("`{name}` is {value}, more than the wire limit {max}")]
    OverWireLimit {
        /// The field.
        name: &'static str,
        /// Its value.
        value: usize,
        /// The most the codec accepts.
        max: usize,
    },
    /// A duration that must be positive is zero.
    #[error("`{0}` must be longer than zero")]
    ZeroDuration(&'static str),
    /// Records would expire before their provider republishes them.
    #[error("republish_interval must be shorter than provider_ttl")]
    RepublishAfterExpiry,
    /// The chunk size is outside what manifests allow.
    #[error("chunk_size: {0}")]
    ChunkSize(crate::content::FileError),
    /// A held request would outlast the requester's patience.
    #[error("hold_timeout must be shorter than block_timeout")]
    HoldOutlastsRequest,
}

impl Config {
    /// Checks that every bound is usable and fits the wire format.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (name, value) in [
            ("k", self.k),
            ("alpha", self.alpha),
            ("replication", self.replication),
            ("max_failures", self.max_failures as usize),
            ("max_queries", self.max_queries),
            ("max_lookup_candidates", self.max_lookup_candidates),
            ("max_pending_requests", self.max_pending_requests),
            ("max_transmit_queue", self.max_transmit_queue),
            ("max_event_queue", self.max_event_queue),
            ("max_store_ops", self.max_store_ops),
            ("max_publishes", self.max_publishes),
            ("max_route_hops", self.max_route_hops),
            ("route_attempts", self.route_attempts),
            ("route_width", self.route_width),
            ("max_provider_keys", self.max_provider_keys),
            ("max_providers_per_key", self.max_providers_per_key),
            ("max_providers_returned", self.max_providers_returned),
            ("providers_enough", self.providers_enough),
            ("max_provided_keys", self.max_provided_keys),
            ("store_max_blocks", self.store_max_blocks),
            ("max_fetching_keys", self.max_fetching_keys),
            ("max_uploads", self.max_uploads),
            ("max_fetches", self.max_fetches),
            ("fetch_providers_wanted", self.fetch_providers_wanted),
            ("max_blocks_in_flight", self.max_blocks_in_flight),
            ("max_blocks_per_provider", self.max_blocks_per_provider),
            ("block_rounds", self.block_rounds as usize),
            ("max_lookups_per_fetch", self.max_lookups_per_fetch as usize),
            (
                "upload_bytes_per_s",
                self.upload_bytes_per_s.min(usize::MAX as u64) as usize,
            ),
            (
                "store_capacity_bytes",
                self.store_capacity_bytes.min(usize::MAX as u64) as usize,
            ),
        ] {
            if value == 0 {
                return Err(ConfigError::Zero(name));
            }
        }
        for (name, value, max) in [
            ("k", self.k, MAX_LIST_LEN),
            (
                "max_providers_returned",
                self.max_providers_returned,
                MAX_LIST_LEN,
            ),
            ("max_route_hops", self.max_route_hops, MAX_ROUTE_PATH - 1),
        ] {
            if value > max {
                return Err(ConfigError::OverWireLimit { name, value, max });
            }
        }
        for (name, value) in [
            ("request_timeout", self.request_timeout),
            ("query_timeout", self.query_timeout),
            ("refresh_interval", self.refresh_interval),
            ("maintenance_interval", self.maintenance_interval),
            ("provider_ttl", self.provider_ttl),
            ("republish_interval", self.republish_interval),
            ("fetching_ttl", self.fetching_ttl),
            ("hold_timeout", self.hold_timeout),
            ("fetch_timeout", self.fetch_timeout),
            ("block_timeout", self.block_timeout),
            ("busy_backoff", self.busy_backoff),
        ] {
            if value.is_zero() {
                return Err(ConfigError::ZeroDuration(name));
            }
        }
        if self.republish_interval >= self.provider_ttl {
            return Err(ConfigError::RepublishAfterExpiry);
        }
        crate::content::check_chunk_size(self.chunk_size).map_err(ConfigError::ChunkSize)?;
        if self.hold_timeout >= self.block_timeout {
            return Err(ConfigError::HoldOutlastsRequest);
        }
        Ok(())
    }

    /// The forwarding rule recursive routes follow: the configured one, else the metric's.
    pub fn forwarding(&self) -> Forwarding {
        self.route_forwarding
            .unwrap_or_else(|| self.metric.forwarding())
    }

    pub(crate) fn table(&self) -> TableConfig {
        TableConfig {
            k: self.k,
            replacement_cache: self.replacement_cache,
            max_failures: self.max_failures,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid() {
        assert_eq!(Config::default().validate(), Ok(()));
    }

    #[test]
    fn bad_values_are_named() {
        let c = Config {
            k: 0,
            ..Config::default()
        };
        assert_eq!(c.validate(), Err(ConfigError::Zero("k")));
        let c = Config {
            k: MAX_LIST_LEN + 1,
            ..Config::default()
        };
        assert!(matches!(
            c.validate(),
            Err(ConfigError::OverWireLimit { name: "k", .. })
        ));
        let c = Config {
            republish_interval: Duration::from_secs(49 * 3600),
            ..Config::default()
        };
        assert_eq!(c.validate(), Err(ConfigError::RepublishAfterExpiry));
        let c = Config {
            chunk_size: 10,
            ..Config::default()
        };
        assert!(matches!(c.validate(), Err(ConfigError::ChunkSize(_))));
        let c = Config {
            hold_timeout: Duration::from_secs(10),
            ..Config::default()
        };
        assert_eq!(c.validate(), Err(ConfigError::HoldOutlastsRequest));
    }
}

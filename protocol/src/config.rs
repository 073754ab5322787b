//! Every tunable of a node, with the bound it puts on memory or time.

use core::time::Duration;

use serde::{Deserialize, Serialize};

use crate::distance::Metric;
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

/// A node's configuration. `Config::default()` follows the Kademlia paper and IPFS.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
    /// Events queued for the driver; past this, the oldest are dropped and counted.
    pub max_event_queue: usize,
    /// Most forwards along a recursive route before it fails with `HopLimit`.
    pub max_route_hops: usize,
    /// Peers a recursive hop tries before it gives up with `DeadEnd`.
    pub route_attempts: usize,
    /// Sideways steps a recursive provider lookup may take out of a local minimum.
    pub route_detours: usize,
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
            max_route_hops: 32,
            route_attempts: 3,
            route_detours: 4,
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
            ("max_route_hops", self.max_route_hops),
            ("route_attempts", self.route_attempts),
            ("max_provider_keys", self.max_provider_keys),
            ("max_providers_per_key", self.max_providers_per_key),
            ("max_providers_returned", self.max_providers_returned),
            ("providers_enough", self.providers_enough),
            ("max_provided_keys", self.max_provided_keys),
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
        ] {
            if value.is_zero() {
                return Err(ConfigError::ZeroDuration(name));
            }
        }
        if self.republish_interval >= self.provider_ttl {
            return Err(ConfigError::RepublishAfterExpiry);
        }
        Ok(())
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
    }
}

//! Every tunable of a node, grouped by what it governs, each with its unit, its
//! default and where that default comes from.
//!
//! A field's doc says what it is, its unit, its default, and the default's
//! provenance: the Kademlia paper (Maymounkov and Mazières, IPTPS 2002), IPFS
//! (kubo, and Trautwein et al., SIGCOMM 2022), BitTorrent, CoralCDN (Freedman
//! et al., NSDI 2004), a measurement in `docs/RESULTS.md`, or "a bound chosen
//! here" when it is none of those.
//! Counts that cannot be zero have non-zero types; [`Config::validate`] checks
//! the rest (durations, wire limits, and every rule between fields), each with
//! its own [`ConfigError`].
//! [`Config::memory_bound`] states the most memory a configuration lets a node use.
//!
//! In a serialised configuration every group and every field may be left out
//! (it takes its default), and an unknown field is an error, so a typo is caught
//! rather than silently ignored.

use core::num::{NonZeroU32, NonZeroU64, NonZeroU8, NonZeroUsize};
use core::time::Duration;

use serde::{Deserialize, Serialize};

use crate::distance::Metric;
use crate::query::Forwarding;
use crate::routing::TableConfig;
use crate::wire::{MAX_LIST_LEN, MAX_ROUTE_PATH};

/// A non-zero integer constant, checked when the program is compiled:
/// `nonzero!(20)` is a `NonZeroUsize` (or `NonZeroU32`, …, whichever the
/// place needs), and `nonzero!(0)` does not compile.
///
/// ```
/// use distroweb_protocol::{nonzero, Config};
/// let mut config = Config::default();
/// config.dht.k = nonzero!(8);
/// config.dht.replication = nonzero!(8);
/// assert_eq!(config.validate(), Ok(()));
/// ```
#[macro_export]
macro_rules! nonzero {
    ($n:expr) => {
        const {
            match ::core::num::NonZero::new($n) {
                Some(n) => n,
                None => panic!("nonzero!: the value is zero"),
            }
        }
    };
}

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

/// A node's configuration, one group per concern. `Config::default()` follows
/// the Kademlia paper and IPFS where they say something, and measurements here
/// where they do not.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The Kademlia core: metric, lookups, the routing table and its upkeep.
    pub dht: DhtConfig,
    /// Recursive routes (`Strategy::Recursive`): how they forward and how far;
    /// the routing table's diversity limits.
    pub routing: RoutingConfig,
    /// Provider records: those this node tracks for others, and the keys it announces.
    pub records: RecordsConfig,
    /// Content: chunking, the block store, fetching and uploading.
    pub transfer: TransferConfig,
    /// Flash crowds: every downloader serves, even before it has everything.
    pub crowd: CrowdConfig,
    /// Queue bounds that no other group owns.
    pub limits: LimitsConfig,
}

/// The Kademlia core: how closeness is measured, how lookups walk, the routing
/// table and its upkeep.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DhtConfig {
    /// How closeness between ids is measured; default XOR (Kademlia paper §2.1).
    pub metric: Metric,
    /// How lookups travel; default iterative (Kademlia paper §2.3).
    pub strategy: Strategy,
    /// `k`: contacts per bucket, and how many closest nodes a lookup converges on;
    /// default 20 (Kademlia paper §2.2: k = 20).
    pub k: NonZeroUsize,
    /// `alpha`: requests in flight at once in an iterative lookup; default 3
    /// (Kademlia paper §2.3: α = 3).
    pub alpha: NonZeroUsize,
    /// `r`: nodes, of the `k` closest to a key, that store its provider record;
    /// default 20 (IPFS: records go to the 20 closest peers, Trautwein et al. 2022).
    pub replication: NonZeroUsize,
    /// Stand-in contacts cached per full bucket; default 4 (Kademlia paper §4.1
    /// keeps a replacement cache without sizing it; 4 is a bound chosen here).
    pub replacement_cache: usize,
    /// Unanswered requests in a row after which a contact is dropped; default 3
    /// (a bound chosen here).
    pub max_failures: NonZeroU8,
    /// How long to wait for any single reply; default 2 s (a bound chosen here;
    /// docs/RESULTS.md, churn, measures what it costs when a peer has left).
    ///
    /// Not required to be shorter than `query_timeout`: a longer one makes a
    /// query give up before any one request does (tests use that).
    pub request_timeout: Duration,
    /// How long a whole query may run before it fails with `Timeout`; default
    /// 60 s (a bound chosen here).
    pub query_timeout: Duration,
    /// Candidates an iterative lookup remembers and has not asked yet (the farthest
    /// are forgotten first); default 100 = 5·k (a bound chosen here).
    pub max_lookup_candidates: NonZeroUsize,
    /// A bucket no lookup touched for this long is refreshed with a random
    /// lookup; default 1 h (Kademlia paper §2.3: an hour; BEP 5 uses 15 min).
    pub refresh_interval: Duration,
    /// How often the node checks for stale buckets, due republishes and expired
    /// records; default 5 min (a bound chosen here).
    pub maintenance_interval: Duration,
    /// Refresh lookups started per maintenance round at most; default 8 (a bound
    /// chosen here).
    pub max_refreshes_per_round: usize,
    /// Buckets a joining node refreshes after its self-lookup, nearest first; 0
    /// skips it; default 16 (Kademlia paper §2.3 refreshes every bucket farther
    /// than the closest neighbour; 16 of them is a bound chosen here).
    pub join_refreshes: usize,
    /// `d`: disjoint paths every iterative walk (lookups, announces, joins,
    /// refreshes) goes down at once; no node is asked by two paths, so an adversary
    /// on one path cannot steer the others. 1 is plain Kademlia; default 1
    /// (S/Kademlia, Baumgart and Mies 2007, §4.4, evaluates d = 1 to 8 with
    /// k = 2d; docs/RESULTS.md, adversary, measures d = 8 here). At most `k`
    /// (the initial candidates are split over the paths); recursive routes walk
    /// one path, so d > 1 needs the iterative strategy. Joins and refreshes
    /// walk d paths too, so an eclipse cannot fill the table they build.
    pub disjoint_paths: NonZeroUsize,
    /// Paths that must have ended before a lookup with disjoint paths ends (a
    /// provider lookup's path ends once it knows its share of
    /// `providers_enough` providers from `path_provider_answers` peers, any
    /// path once its `k` closest answered or nobody is left to ask);
    /// `None`: every path; default `None` (S/Kademlia §4.4 waits for all `d`
    /// paths; a smaller number trades safety for latency). At most
    /// `disjoint_paths`.
    pub paths_to_finish: Option<NonZeroUsize>,
    /// Adaptive request timeouts: a request to a peer that has answered before
    /// waits its RTO, SRTT + 4·RTTVAR from that peer's round trips (RFC 6298),
    /// within [`min_request_timeout`, `request_timeout`], instead of the whole
    /// `request_timeout`; a timeout doubles the peer's RTO until its next
    /// reply. Samples come only from replies that match a request (block
    /// requests, whose replies carry a block, are neither timed nor sampled).
    /// Default off (on, the churn tail is measured in docs/RESULTS.md, "The
    /// churn tail: adaptive request timeouts"; Bamboo, Rhea et al. 2004,
    /// uses TCP-style timeouts for its lookups).
    ///
    /// [`min_request_timeout`]: DhtConfig::min_request_timeout
    pub adaptive_timeouts: bool,
    /// The floor of an adaptive timeout; default 100 ms (chosen here, measured
    /// in docs/RESULTS.md, "The churn tail": a floor keeps a peer whose round
    /// trips never vary from timing out at its SRTT plus a few microseconds,
    /// since a busy uplink can delay one reply by a block's transmission).
    /// At most `request_timeout`.
    pub min_request_timeout: Duration,
    /// The timeout of a request to a peer without round-trip samples of its
    /// own (with `adaptive_timeouts`); default `Pooled` (measured in
    /// docs/RESULTS.md, "The churn tail": an iterative lookup asks mostly
    /// peers it never asked before, so `Fixed` leaves most of the tail).
    pub unsampled_timeout: UnsampledTimeout,
    /// Peers whose round-trip estimate a node keeps (with
    /// `adaptive_timeouts`); the one sampled longest ago is forgotten first;
    /// default 512 (a bound chosen here: about 300 bytes each).
    pub max_rtt_peers: NonZeroUsize,
}

/// The adaptive timeout of a request to a peer this node has no round-trip
/// samples from (`dht.unsampled_timeout`).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub enum UnsampledTimeout {
    /// The whole `request_timeout`, as without adaptive timeouts.
    Fixed,
    /// The RTO of one estimate fed every sample from every peer (the
    /// network's typical round trip), or `request_timeout` before any sample.
    #[default]
    Pooled,
}

impl UnsampledTimeout {
    /// Both choices, for experiments that compare them.
    pub const ALL: &'static [UnsampledTimeout] =
        &[UnsampledTimeout::Fixed, UnsampledTimeout::Pooled];

    /// The lowercase name, as shown and parsed.
    pub const fn name(self) -> &'static str {
        match self {
            UnsampledTimeout::Fixed => "fixed",
            UnsampledTimeout::Pooled => "pooled",
        }
    }
}

impl core::fmt::Display for UnsampledTimeout {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

impl core::str::FromStr for UnsampledTimeout {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        UnsampledTimeout::ALL
            .iter()
            .copied()
            .find(|x| x.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown unsampled timeout {s:?} (known: fixed, pooled)"))
    }
}

impl Default for DhtConfig {
    fn default() -> Self {
        DhtConfig {
            metric: Metric::Xor,
            strategy: Strategy::Iterative,
            k: nonzero!(20),
            alpha: nonzero!(3),
            replication: nonzero!(20),
            replacement_cache: 4,
            max_failures: nonzero!(3),
            request_timeout: Duration::from_secs(2),
            query_timeout: Duration::from_secs(60),
            max_lookup_candidates: nonzero!(100),
            refresh_interval: Duration::from_secs(3600),
            maintenance_interval: Duration::from_secs(300),
            max_refreshes_per_round: 8,
            join_refreshes: 16,
            disjoint_paths: nonzero!(1),
            paths_to_finish: None,
            adaptive_timeouts: false,
            min_request_timeout: Duration::from_millis(100),
            unsampled_timeout: UnsampledTimeout::Pooled,
            max_rtt_peers: nonzero!(512),
        }
    }
}

/// Recursive routes: how each hop picks the next, and the bounds on a route;
/// and who the routing table may hold (its diversity limits).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RoutingConfig {
    /// How routes pick their next hop; default `None`, the metric's own rule
    /// (greedy for XOR and the ring, anchored for Hamming: measured here,
    /// docs/RESULTS.md, hops, "Why greedy Hamming forwarding got stuck").
    pub route_forwarding: Option<Forwarding>,
    /// Best-first and anchored forwarding: a route ends once this many of the
    /// closest nodes it has seen were visited; default 8 (measured here,
    /// docs/RESULTS.md, hops: anchored routes succeed with 3 and 8 at 10,000
    /// nodes and overrun the hop limit with 20; plain best-first needs 20 there,
    /// width 3 fails a fifth).
    pub route_width: NonZeroUsize,
    /// Sideways steps a greedy provider route may take out of a local minimum;
    /// default 4 (a bound chosen here).
    pub route_detours: usize,
    /// Next hops one hop tries before the route fails with `DeadEnd`; default 3
    /// (a bound chosen here).
    pub route_attempts: NonZeroUsize,
    /// Forwards along a route before it fails with `HopLimit`; default 32 (a bound
    /// chosen here, under the wire's path limit).
    pub max_route_hops: NonZeroUsize,
    /// Routes a node forwards at once (its own and others'); past this it
    /// answers `Busy`; default 1,024 (a bound chosen here).
    pub max_forwards: usize,
    /// Live contacts from one address group (an IPv4 /24, an IPv6 /48; see
    /// [`crate::Address::group`]) one bucket of the routing table holds, its
    /// replacement cache likewise; default 2 (Amino, go-libp2p-kad-dht:
    /// `DefaultMaxPeersPerIPGroupPerCpl` = 2).
    pub max_contacts_per_group_per_bucket: NonZeroUsize,
    /// Live contacts from one address group the whole routing table holds;
    /// default 6 (measured here, against Amino's `DefaultMaxPeersPerIPGroup`
    /// = 3, which assumes far more groups than a table has contacts: with 150
    /// simulated nodes in 10 groups, 3 starves tables to 30 contacts and 7 to
    /// 17 % of recursive XOR lookups fail (`sim/tests/determinism.rs`), 6
    /// fails none; the per-bucket share above is Amino's).
    pub max_contacts_per_group: NonZeroUsize,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        RoutingConfig {
            route_forwarding: None,
            route_width: nonzero!(8),
            route_detours: 4,
            route_attempts: nonzero!(3),
            max_route_hops: nonzero!(32),
            max_forwards: 1024,
            max_contacts_per_group_per_bucket: nonzero!(2),
            max_contacts_per_group: nonzero!(6),
        }
    }
}

/// Provider records: those a node tracks for the keys near its id, and the keys
/// it announces itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecordsConfig {
    /// How long a provider record lives at a tracker after its last announcement;
    /// default 48 h (IPFS: provider records expire after 48 h).
    pub provider_ttl: Duration,
    /// How often a provider re-announces what it holds; default 22 h (IPFS: the
    /// reprovide interval).
    pub republish_interval: Duration,
    /// Keys a tracker keeps provider records for (when full, new keys are
    /// refused until a record expires); default 16,384 (a bound chosen here).
    pub max_provider_keys: NonZeroUsize,
    /// Providers a tracker keeps per key, and "fetch in progress" records per
    /// key; default 20 = `max_providers_returned` (chosen here). When a list
    /// is full the old records stay and new ones are refused, so a flood
    /// cannot push honest records out. A longer list is answered with a
    /// sample weighted by standing: it spreads a popular key's load past its
    /// first providers, but lets a flood that follows soon after the honest
    /// records into the answers (docs/RESULTS.md, adversary, "Record flood":
    /// 256 kept gave 46.5 publisher copies in the flash crowd against 55.5,
    /// and 0.36 plain success under a flood against 0.56).
    pub max_providers_per_key: NonZeroUsize,
    /// Records a tracker keeps over all keys, in each of its two stores
    /// (providers, "fetch in progress"); default 327,680 = 16,384 keys · 20
    /// (a bound chosen here: the most the store held before lists grew past
    /// 20, so a longer list for a popular key costs no memory in the worst
    /// case).
    pub max_records: NonZeroUsize,
    /// Providers in one reply and in one lookup's result; default 20 = k (a bound
    /// chosen here).
    pub max_providers_returned: NonZeroUsize,
    /// A provider lookup stops once it knows this many providers; default 1
    /// (chosen here: one provider lets a fetch start; docs/RESULTS.md, hops,
    /// shows what it does to hop counts).
    pub providers_enough: NonZeroUsize,
    /// With disjoint paths (`dht.disjoint_paths` > 1), the peers on one path
    /// that must have named providers before that path ends (besides its
    /// share of `providers_enough`); a reply that names providers adds no
    /// contacts to its path, so the path goes on from what it knew before.
    /// Default 2 (chosen here: an adversary names fake providers on every
    /// answer, so a path that stopped at the first answer was lost to the
    /// first adversary it asked; with 2, it is lost only if the next peer it
    /// asks, picked from contacts the liar did not give, lies too;
    /// docs/RESULTS.md, adversary). One path ignores it.
    pub path_provider_answers: NonZeroUsize,
    /// Keys this node announces (and republishes) at once; default 16,384 (a bound
    /// chosen here).
    pub max_provided_keys: NonZeroUsize,
    /// Publishing a site also announces each of its files (off: only the site's
    /// id); default off (chosen here: one record per site).
    pub announce_site_files: bool,
    /// How often a tracker draws a new write-token secret; the one before stays
    /// valid, so a token lives between one and two rotations; default 5 min
    /// (BEP 5: "tokens up to ten minutes old are accepted").
    pub token_rotation: Duration,
    /// Records (provider and "fetch in progress", each store apart) one peer id
    /// may hold at a tracker over all keys; default 1,024 (a bound chosen here:
    /// a provider of P keys places about P·r/N records at each tracker, so
    /// 1,024 serves one that provides 500,000 keys in a network of 10,000 nodes).
    pub max_records_per_peer: NonZeroUsize,
    /// Records one address group (see [`crate::Address::group`]) may hold at a
    /// tracker over all keys; default 4,096 = 4 · `max_records_per_peer` (a
    /// bound chosen here: four heavy providers behind one /24, Amino's table
    /// allows three contacts from one).
    pub max_records_per_group: NonZeroUsize,
    /// Records one address group may hold in one key's list; default 2 (Amino's
    /// per-bucket rule for contacts, `DefaultMaxPeersPerIPGroupPerCpl` = 2,
    /// applied to a key's list, which is as long as a bucket).
    pub max_records_per_group_per_key: NonZeroUsize,
    /// Name records a node keeps (as a tracker, and the names it resolved or
    /// published); when full, the names held stay and new ones are refused
    /// until one expires; default 65,536 (a bound chosen here: a record is
    /// about 180 bytes, so 12 MB at most). One peer may have placed at most
    /// `max_records_per_peer` of them and one address group
    /// `max_records_per_group`, as for provider records.
    pub max_names: NonZeroUsize,
    /// Names this node publishes (and republishes) at once; default 256 (a
    /// bound chosen here).
    pub max_published_names: NonZeroUsize,
    /// How long a name resolution waits, after its first valid record, for a
    /// higher sequence from other trackers of the name; default 150 ms (chosen
    /// here, "well under a second": IPNS waits for 16 of 20 replies and takes
    /// about 30 s, kubo #11301; a reader that missed a newer record gets it at
    /// its next resolution).
    pub name_grace: Duration,
}

impl Default for RecordsConfig {
    fn default() -> Self {
        RecordsConfig {
            provider_ttl: Duration::from_secs(48 * 3600),
            republish_interval: Duration::from_secs(22 * 3600),
            max_provider_keys: nonzero!(16_384),
            max_providers_per_key: nonzero!(20),
            max_records: nonzero!(327_680),
            max_providers_returned: nonzero!(20),
            providers_enough: nonzero!(1),
            path_provider_answers: nonzero!(2),
            max_provided_keys: nonzero!(16_384),
            announce_site_files: false,
            token_rotation: Duration::from_secs(300),
            max_records_per_peer: nonzero!(1024),
            max_records_per_group: nonzero!(4096),
            max_records_per_group_per_key: nonzero!(2),
            max_names: nonzero!(65_536),
            max_published_names: nonzero!(256),
            name_grace: Duration::from_millis(150),
        }
    }
}

/// Content: how files are chunked and stored, how fetches move blocks, how
/// uploads are admitted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TransferConfig {
    /// Bytes per chunk when publishing a file, from 1 KiB to one block; default
    /// 256 KiB (IPFS: kubo's default chunker, size-262144).
    pub chunk_size: usize,
    /// Bytes the block store holds at most, counting blocks being written;
    /// default 1 GiB (a bound chosen here).
    pub store_capacity_bytes: NonZeroU64,
    /// Blocks the block store holds at most, counting blocks being written;
    /// default 65,536 (a bound chosen here).
    pub store_max_blocks: NonZeroUsize,
    /// Uploads running at once; past this a block request is answered "busy";
    /// default 16 (a bound chosen here).
    pub max_uploads: NonZeroUsize,
    /// Upload capacity, bytes per second, the node assumes when estimating when an
    /// upload ends; default 12.5 MB/s = 100 Mbit/s (a bound chosen here).
    pub upload_bytes_per_s: NonZeroU64,
    /// Fetches running at once; a command past this is refused; default 64 (a
    /// bound chosen here).
    pub max_fetches: NonZeroUsize,
    /// How long a whole fetch may run before it fails with `Timeout`; default
    /// 300 s (a bound chosen here).
    ///
    /// Not required to be longer than `block_timeout`: a shorter one makes a
    /// fetch give up before any one block request does (tests use that).
    pub fetch_timeout: Duration,
    /// How long to wait for one block; default 10 s (a bound chosen here).
    pub block_timeout: Duration,
    /// A fetch's provider lookup stops once it knows this many providers;
    /// default 8 (a bound chosen here).
    pub fetch_providers_wanted: NonZeroUsize,
    /// Block requests one fetch has in flight at once, over all providers;
    /// default 16 (a bound chosen here).
    pub max_blocks_in_flight: NonZeroUsize,
    /// Block requests one fetch has in flight to any one provider; default 8
    /// (a bound chosen here: 2 MiB of 256 KiB chunks, which on loopback keeps
    /// the pipe full while sealing and opening add latency to every block,
    /// `net/examples/transfer.rs`; 4 left the link idle between blocks). A
    /// provider's connection queues this many replies, so keep it times the
    /// chunk size under `max_queued_bytes` in `net`.
    pub max_blocks_per_provider: NonZeroUsize,
    /// How long a provider that answered "busy" (or failed) is left alone;
    /// default 500 ms (a bound chosen here).
    pub busy_backoff: Duration,
    /// Rounds through every provider a block may take before the fetch gives up
    /// on it; default 3 (a bound chosen here).
    pub block_rounds: NonZeroU32,
    /// Provider lookups one fetch may make when its providers run out; default 3
    /// (a bound chosen here).
    pub max_lookups_per_fetch: NonZeroU32,
    /// Report every verified chunk, in file order, as an event (for streaming);
    /// default on (the proxy streams pages as they land).
    pub emit_chunk_events: bool,
}

impl Default for TransferConfig {
    fn default() -> Self {
        TransferConfig {
            chunk_size: crate::content::DEFAULT_CHUNK_BYTES,
            store_capacity_bytes: nonzero!(1 << 30),
            store_max_blocks: nonzero!(65_536),
            max_uploads: nonzero!(16),
            upload_bytes_per_s: nonzero!(12_500_000),
            max_fetches: nonzero!(64),
            fetch_timeout: Duration::from_secs(300),
            block_timeout: Duration::from_secs(10),
            fetch_providers_wanted: nonzero!(8),
            max_blocks_in_flight: nonzero!(16),
            max_blocks_per_provider: nonzero!(8),
            busy_backoff: Duration::from_millis(500),
            block_rounds: nonzero!(3),
            max_lookups_per_fetch: nonzero!(3),
            emit_chunk_events: true,
        }
    }
}

/// Flash crowds: demand creates supply when every downloader serves, early.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CrowdConfig {
    /// "Every downloader is a server": after a complete, verified fetch the node
    /// announces itself as a provider (off: only publishers serve, the plain-web
    /// baseline); default on (the distroweb design; docs/RESULTS.md, flash-crowd).
    pub serve_after_fetch: bool,
    /// Serve blocks of content still being fetched (BitTorrent's swarming); peers
    /// learn of a partial holder only through `announce_fetching`; default on
    /// (measured here: docs/RESULTS.md, flash-crowd, 7× less publisher upload).
    pub serve_partial: bool,
    /// A fetch announces a short-lived "fetch in progress" record, and this node
    /// holds requests for blocks it is about to receive instead of refusing them;
    /// default on (CoralCDN; measured here: docs/RESULTS.md, flash-crowd, `no-coral`).
    pub announce_fetching: bool,
    /// How long a "fetch in progress" record lives at a tracker; default 60 s (a
    /// bound chosen here).
    pub fetching_ttl: Duration,
    /// Keys a tracker keeps "fetch in progress" records for; default 4,096 (a
    /// bound chosen here).
    pub max_fetching_keys: NonZeroUsize,
    /// Block requests held at once while their block is on its way here; 0 holds
    /// none; default 256 (a bound chosen here).
    pub max_held_requests: usize,
    /// How long a held request waits before it is answered "don't have"; shorter
    /// than `block_timeout`, so the requester hears before it gives up; default
    /// 5 s (a bound chosen here).
    pub hold_timeout: Duration,
}

impl Default for CrowdConfig {
    fn default() -> Self {
        CrowdConfig {
            serve_after_fetch: true,
            serve_partial: true,
            announce_fetching: true,
            fetching_ttl: Duration::from_secs(60),
            max_fetching_keys: nonzero!(4096),
            max_held_requests: 256,
            hold_timeout: Duration::from_secs(5),
        }
    }
}

/// Queue bounds that no other group owns: each caps a collection the node keeps
/// for the driver or for its own commands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Queries that may run at once (commands and the node's own); a command past
    /// this is refused; default 256 (a bound chosen here).
    pub max_queries: NonZeroUsize,
    /// Query requests awaiting a reply at once (all queries together); past this a
    /// query skips the peer; default 1,024 (a bound chosen here).
    pub max_pending_requests: NonZeroUsize,
    /// Outgoing messages queued for the driver; past this, new ones are dropped and
    /// counted; default 4,096 (a bound chosen here).
    pub max_transmit_queue: NonZeroUsize,
    /// Misbehaviour reports queued for the driver; past this, new ones are dropped
    /// and counted (terminal and progress events are never dropped); default
    /// 4,096 (a bound chosen here).
    pub max_event_queue: NonZeroUsize,
    /// Storage operations handed to the driver at once; the rest wait in order;
    /// default 256 (a bound chosen here; `max_records` bounds them all).
    pub max_store_ops: NonZeroUsize,
    /// Publications waiting for their blocks to be stored at once; default 16 (a
    /// bound chosen here).
    pub max_publishes: NonZeroUsize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_queries: nonzero!(256),
            max_pending_requests: nonzero!(1024),
            max_transmit_queue: nonzero!(4096),
            max_event_queue: nonzero!(4096),
            max_store_ops: nonzero!(64),
            max_publishes: nonzero!(16),
        }
    }
}

/// A configuration that cannot work: one variant per rule, each message
/// stating the rule and the values that break it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
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
    /// The chunk size is outside what manifests allow.
    #[error("chunk_size: {0}")]
    ChunkSize(crate::content::FileError),
    /// An announce would store more records than its lookup finds nodes.
    #[error("replication ({replication}) must be at most k ({k}): records go to the closest of the k nodes a lookup finds")]
    ReplicationOverK {
        /// `dht.replication`.
        replication: usize,
        /// `dht.k`.
        k: usize,
    },
    /// A lookup could never have `alpha` requests in flight.
    #[error("alpha ({alpha}) must be at most k ({k}): a lookup asks only among the k closest it has seen")]
    AlphaOverK {
        /// `dht.alpha`.
        alpha: usize,
        /// `dht.k`.
        k: usize,
    },
    /// A lookup would forget candidates it needs to converge on `k` nodes.
    #[error("max_lookup_candidates ({max_lookup_candidates}) must be at least k ({k}): a lookup converges on the k closest")]
    CandidatesUnderK {
        /// `dht.max_lookup_candidates`.
        max_lookup_candidates: usize,
        /// `dht.k`.
        k: usize,
    },
    /// Disjoint paths could not each start from one of the `k` closest contacts.
    #[error("disjoint_paths ({disjoint_paths}) must be at most k ({k}): a lookup splits its k closest contacts over the paths")]
    PathsOverK {
        /// `dht.disjoint_paths`.
        disjoint_paths: usize,
        /// `dht.k`.
        k: usize,
    },
    /// A recursive route walks one path; disjoint paths need the iterative strategy.
    #[error("disjoint_paths ({disjoint_paths}) needs the iterative strategy: a recursive route walks one path")]
    DisjointRecursive {
        /// `dht.disjoint_paths`.
        disjoint_paths: usize,
    },
    /// A lookup would wait for more paths than it walks.
    #[error(
        "paths_to_finish ({paths_to_finish}) must be at most disjoint_paths ({disjoint_paths})"
    )]
    FinishOverPaths {
        /// `dht.paths_to_finish`.
        paths_to_finish: usize,
        /// `dht.disjoint_paths`.
        disjoint_paths: usize,
    },
    /// Records would expire before their provider republishes them.
    #[error("republish_interval ({republish_interval:?}) + maintenance_interval ({maintenance_interval:?}) must be shorter than provider_ttl ({provider_ttl:?}): republishes run at the first maintenance round after they are due")]
    RepublishAfterExpiry {
        /// `records.republish_interval`.
        republish_interval: Duration,
        /// `dht.maintenance_interval`.
        maintenance_interval: Duration,
        /// `records.provider_ttl`.
        provider_ttl: Duration,
    },
    /// A provider lookup would never know enough providers to stop.
    #[error("providers_enough ({providers_enough}) must be at most max_providers_returned ({max_providers_returned}): a lookup keeps no more providers than that")]
    EnoughOverReturned {
        /// `records.providers_enough`.
        providers_enough: usize,
        /// `records.max_providers_returned`.
        max_providers_returned: usize,
    },
    /// A fetch's provider lookup would never know enough providers to stop.
    #[error("fetch_providers_wanted ({fetch_providers_wanted}) must be at most max_providers_returned ({max_providers_returned}): a lookup keeps no more providers than that")]
    WantedOverReturned {
        /// `transfer.fetch_providers_wanted`.
        fetch_providers_wanted: usize,
        /// `records.max_providers_returned`.
        max_providers_returned: usize,
    },
    /// A best-first route could never visit enough nodes to end well (checked
    /// only when routes go best-first or anchored: greedy forwarding ignores the width).
    #[error("route_width ({route_width}) must be at most max_route_hops + 1 ({visits}) under best-first or anchored forwarding: a route visits no more nodes than that")]
    RouteWidthOverPath {
        /// `routing.route_width`.
        route_width: usize,
        /// `routing.max_route_hops` + 1: the most nodes a route visits.
        visits: usize,
    },
    /// The per-provider bound on block requests would never bind.
    #[error("max_blocks_per_provider ({max_blocks_per_provider}) must be at most max_blocks_in_flight ({max_blocks_in_flight})")]
    PerProviderOverInFlight {
        /// `transfer.max_blocks_per_provider`.
        max_blocks_per_provider: usize,
        /// `transfer.max_blocks_in_flight`.
        max_blocks_in_flight: usize,
    },
    /// A lookup would end before its first request could time out, so a dead
    /// peer would cost the whole lookup instead of one candidate.
    #[error("request_timeout ({request_timeout:?}) must be shorter than query_timeout ({query_timeout:?}): a lookup must outlive a request to route around a silent peer")]
    RequestOutlastsQuery {
        /// `dht.request_timeout`.
        request_timeout: Duration,
        /// `dht.query_timeout`.
        query_timeout: Duration,
    },
    /// A fetch would end before a lost block could be asked of another provider.
    #[error("block_timeout ({block_timeout:?}) must be shorter than fetch_timeout ({fetch_timeout:?}): a fetch must outlive a block request to retry it elsewhere")]
    BlockOutlastsFetch {
        /// `transfer.block_timeout`.
        block_timeout: Duration,
        /// `transfer.fetch_timeout`.
        fetch_timeout: Duration,
    },
    /// The floor of an adaptive timeout is above its ceiling.
    #[error("min_request_timeout ({min_request_timeout:?}) must be at most request_timeout ({request_timeout:?}): an adaptive timeout lies between them")]
    FloorOverRequestTimeout {
        /// `dht.min_request_timeout`.
        min_request_timeout: Duration,
        /// `dht.request_timeout`.
        request_timeout: Duration,
    },
    /// A token could expire between the lookup that got it and the write that
    /// uses it.
    #[error("token_rotation ({token_rotation:?}) must be longer than query_timeout ({query_timeout:?}): a token handed out during an announce's lookup must still be good when the announce writes")]
    TokenOutlivedByQuery {
        /// `records.token_rotation`.
        token_rotation: Duration,
        /// `dht.query_timeout`.
        query_timeout: Duration,
    },
    /// A held request would outlast the requester's patience.
    #[error("hold_timeout ({hold_timeout:?}) must be shorter than block_timeout ({block_timeout:?}): the requester must hear before it gives up")]
    HoldOutlastsRequest {
        /// `crowd.hold_timeout`.
        hold_timeout: Duration,
        /// `transfer.block_timeout`.
        block_timeout: Duration,
    },
    /// The store could not hold a single chunk.
    #[error(
        "chunk_size ({chunk_size}) must be at most store_capacity_bytes ({store_capacity_bytes})"
    )]
    StoreUnderChunk {
        /// `transfer.chunk_size`.
        chunk_size: usize,
        /// `transfer.store_capacity_bytes`.
        store_capacity_bytes: u64,
    },
}

/// The rules between `disjoint_paths` and the rest of the configuration.
fn check_disjoint(dht: &DhtConfig) -> Result<(), ConfigError> {
    let paths = dht.disjoint_paths.get();
    if paths > dht.k.get() {
        return Err(ConfigError::PathsOverK {
            disjoint_paths: paths,
            k: dht.k.get(),
        });
    }
    if paths > 1 && dht.strategy == Strategy::Recursive {
        return Err(ConfigError::DisjointRecursive {
            disjoint_paths: paths,
        });
    }
    if let Some(finish) = dht.paths_to_finish {
        if finish.get() > paths {
            return Err(ConfigError::FinishOverPaths {
                paths_to_finish: finish.get(),
                disjoint_paths: paths,
            });
        }
    }
    Ok(())
}

impl Config {
    /// Checks that every duration is positive, every bound fits the wire format,
    /// and the fields agree with each other (one [`ConfigError`] per rule).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let (dht, routing, records) = (&self.dht, &self.routing, &self.records);
        let (transfer, crowd) = (&self.transfer, &self.crowd);
        for (name, value, max) in [
            ("dht.k", dht.k.get(), MAX_LIST_LEN),
            (
                "records.max_providers_returned",
                records.max_providers_returned.get(),
                MAX_LIST_LEN,
            ),
            (
                "routing.max_route_hops",
                routing.max_route_hops.get(),
                MAX_ROUTE_PATH - 1,
            ),
        ] {
            if value > max {
                return Err(ConfigError::OverWireLimit { name, value, max });
            }
        }
        for (name, value) in [
            ("dht.request_timeout", dht.request_timeout),
            ("dht.min_request_timeout", dht.min_request_timeout),
            ("dht.query_timeout", dht.query_timeout),
            ("dht.refresh_interval", dht.refresh_interval),
            ("dht.maintenance_interval", dht.maintenance_interval),
            ("records.provider_ttl", records.provider_ttl),
            ("records.republish_interval", records.republish_interval),
            ("records.token_rotation", records.token_rotation),
            ("crowd.fetching_ttl", crowd.fetching_ttl),
            ("crowd.hold_timeout", crowd.hold_timeout),
            ("transfer.fetch_timeout", transfer.fetch_timeout),
            ("transfer.block_timeout", transfer.block_timeout),
            ("transfer.busy_backoff", transfer.busy_backoff),
        ] {
            if value.is_zero() {
                return Err(ConfigError::ZeroDuration(name));
            }
        }
        crate::content::check_chunk_size(transfer.chunk_size).map_err(ConfigError::ChunkSize)?;
        let k = dht.k.get();
        if dht.replication.get() > k {
            return Err(ConfigError::ReplicationOverK {
                replication: dht.replication.get(),
                k,
            });
        }
        if dht.alpha.get() > k {
            return Err(ConfigError::AlphaOverK {
                alpha: dht.alpha.get(),
                k,
            });
        }
        check_disjoint(dht)?;
        if dht.max_lookup_candidates.get() < k {
            return Err(ConfigError::CandidatesUnderK {
                max_lookup_candidates: dht.max_lookup_candidates.get(),
                k,
            });
        }
        if records
            .republish_interval
            .saturating_add(dht.maintenance_interval)
            >= records.provider_ttl
        {
            return Err(ConfigError::RepublishAfterExpiry {
                republish_interval: records.republish_interval,
                maintenance_interval: dht.maintenance_interval,
                provider_ttl: records.provider_ttl,
            });
        }
        let returned = records.max_providers_returned.get();
        if records.providers_enough.get() > returned {
            return Err(ConfigError::EnoughOverReturned {
                providers_enough: records.providers_enough.get(),
                max_providers_returned: returned,
            });
        }
        if transfer.fetch_providers_wanted.get() > returned {
            return Err(ConfigError::WantedOverReturned {
                fetch_providers_wanted: transfer.fetch_providers_wanted.get(),
                max_providers_returned: returned,
            });
        }
        let visits = routing.max_route_hops.get() + 1;
        if self.forwarding() != Forwarding::Greedy && routing.route_width.get() > visits {
            return Err(ConfigError::RouteWidthOverPath {
                route_width: routing.route_width.get(),
                visits,
            });
        }
        if transfer.max_blocks_per_provider > transfer.max_blocks_in_flight {
            return Err(ConfigError::PerProviderOverInFlight {
                max_blocks_per_provider: transfer.max_blocks_per_provider.get(),
                max_blocks_in_flight: transfer.max_blocks_in_flight.get(),
            });
        }
        if dht.request_timeout >= dht.query_timeout {
            return Err(ConfigError::RequestOutlastsQuery {
                request_timeout: dht.request_timeout,
                query_timeout: dht.query_timeout,
            });
        }
        if dht.min_request_timeout > dht.request_timeout {
            return Err(ConfigError::FloorOverRequestTimeout {
                min_request_timeout: dht.min_request_timeout,
                request_timeout: dht.request_timeout,
            });
        }
        if records.token_rotation <= dht.query_timeout {
            return Err(ConfigError::TokenOutlivedByQuery {
                token_rotation: records.token_rotation,
                query_timeout: dht.query_timeout,
            });
        }
        if transfer.block_timeout >= transfer.fetch_timeout {
            return Err(ConfigError::BlockOutlastsFetch {
                block_timeout: transfer.block_timeout,
                fetch_timeout: transfer.fetch_timeout,
            });
        }
        if crowd.hold_timeout >= transfer.block_timeout {
            return Err(ConfigError::HoldOutlastsRequest {
                hold_timeout: crowd.hold_timeout,
                block_timeout: transfer.block_timeout,
            });
        }
        if transfer.chunk_size as u64 > transfer.store_capacity_bytes.get() {
            return Err(ConfigError::StoreUnderChunk {
                chunk_size: transfer.chunk_size,
                store_capacity_bytes: transfer.store_capacity_bytes.get(),
            });
        }
        Ok(())
    }

    /// The forwarding rule recursive routes follow: the configured one, else the metric's.
    pub fn forwarding(&self) -> Forwarding {
        self.routing
            .route_forwarding
            .unwrap_or_else(|| self.dht.metric.forwarding())
    }

    pub(crate) fn table(&self) -> TableConfig {
        TableConfig {
            k: self.dht.k.get(),
            replacement_cache: self.dht.replacement_cache,
            max_failures: self.dht.max_failures.get(),
            max_per_group_per_bucket: self.routing.max_contacts_per_group_per_bucket.get(),
            max_per_group: self.routing.max_contacts_per_group.get(),
        }
    }

    /// The bounds of the provider store, and of the "fetch in progress" store
    /// (`fetching`), which differ in keys and TTL only.
    pub(crate) fn record_store(&self, fetching: bool) -> crate::records::StoreLimits {
        let r = &self.records;
        crate::records::StoreLimits {
            max_keys: if fetching {
                self.crowd.max_fetching_keys.get()
            } else {
                r.max_provider_keys.get()
            },
            max_per_key: r.max_providers_per_key.get(),
            max_records: r.max_records.get(),
            max_per_group_per_key: r.max_records_per_group_per_key.get(),
            max_per_peer: r.max_records_per_peer.get(),
            max_per_group: r.max_records_per_group.get(),
            ttl: if fetching {
                self.crowd.fetching_ttl
            } else {
                r.provider_ttl
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn broken(change: impl FnOnce(&mut Config)) -> ConfigError {
        let mut c = Config::default();
        change(&mut c);
        match c.validate() {
            Err(e) => e,
            Ok(()) => panic!("accepted {c:?}"),
        }
    }

    #[test]
    fn default_is_valid() {
        assert_eq!(Config::default().validate(), Ok(()));
    }

    #[test]
    fn single_field_rules_are_named() {
        assert!(matches!(
            broken(|c| c.dht.k = nonzero!(MAX_LIST_LEN + 1)),
            ConfigError::OverWireLimit { name: "dht.k", .. }
        ));
        assert!(matches!(
            broken(|c| c.routing.max_route_hops = nonzero!(MAX_ROUTE_PATH)),
            ConfigError::OverWireLimit {
                name: "routing.max_route_hops",
                ..
            }
        ));
        assert_eq!(
            broken(|c| c.transfer.busy_backoff = Duration::ZERO),
            ConfigError::ZeroDuration("transfer.busy_backoff")
        );
        assert!(matches!(
            broken(|c| c.transfer.chunk_size = 10),
            ConfigError::ChunkSize(_)
        ));
    }

    #[test]
    fn each_cross_field_rule_has_its_error() {
        assert_eq!(
            broken(|c| c.dht.replication = nonzero!(21)),
            ConfigError::ReplicationOverK {
                replication: 21,
                k: 20
            }
        );
        assert_eq!(
            broken(|c| {
                c.dht.k = nonzero!(2);
                c.dht.replication = nonzero!(2);
            }),
            ConfigError::AlphaOverK { alpha: 3, k: 2 }
        );
        assert_eq!(
            broken(|c| c.dht.disjoint_paths = nonzero!(21)),
            ConfigError::PathsOverK {
                disjoint_paths: 21,
                k: 20
            }
        );
        assert_eq!(
            broken(|c| {
                c.dht.disjoint_paths = nonzero!(4);
                c.dht.strategy = Strategy::Recursive;
            }),
            ConfigError::DisjointRecursive { disjoint_paths: 4 }
        );
        assert_eq!(
            broken(|c| {
                c.dht.disjoint_paths = nonzero!(4);
                c.dht.paths_to_finish = Some(nonzero!(5));
            }),
            ConfigError::FinishOverPaths {
                paths_to_finish: 5,
                disjoint_paths: 4
            }
        );
        assert_eq!(
            broken(|c| c.dht.max_lookup_candidates = nonzero!(19)),
            ConfigError::CandidatesUnderK {
                max_lookup_candidates: 19,
                k: 20
            }
        );
        // 47 h 56 min + 5 min is past the 48 h TTL, though 47 h 56 min alone is not.
        let late = Duration::from_secs(48 * 3600 - 4 * 60);
        assert_eq!(
            broken(|c| c.records.republish_interval = late),
            ConfigError::RepublishAfterExpiry {
                republish_interval: late,
                maintenance_interval: Duration::from_secs(300),
                provider_ttl: Duration::from_secs(48 * 3600),
            }
        );
        assert_eq!(
            broken(|c| c.records.providers_enough = nonzero!(21)),
            ConfigError::EnoughOverReturned {
                providers_enough: 21,
                max_providers_returned: 20
            }
        );
        assert_eq!(
            broken(|c| c.records.max_providers_returned = nonzero!(7)),
            ConfigError::WantedOverReturned {
                fetch_providers_wanted: 8,
                max_providers_returned: 7
            }
        );
        assert_eq!(
            broken(|c| {
                c.dht.metric = Metric::Hamming;
                c.routing.route_width = nonzero!(34);
            }),
            ConfigError::RouteWidthOverPath {
                route_width: 34,
                visits: 33
            }
        );
        // Greedy forwarding (XOR's) ignores the width.
        let mut c = Config::default();
        c.routing.route_width = nonzero!(34);
        assert_eq!(c.validate(), Ok(()));
        c.routing.route_forwarding = Some(Forwarding::BestFirst);
        assert!(matches!(
            c.validate(),
            Err(ConfigError::RouteWidthOverPath { .. })
        ));
        assert_eq!(
            broken(|c| c.transfer.max_blocks_per_provider = nonzero!(17)),
            ConfigError::PerProviderOverInFlight {
                max_blocks_per_provider: 17,
                max_blocks_in_flight: 16
            }
        );
        assert_eq!(
            broken(|c| c.dht.request_timeout = Duration::from_secs(60)),
            ConfigError::RequestOutlastsQuery {
                request_timeout: Duration::from_secs(60),
                query_timeout: Duration::from_secs(60)
            }
        );
        assert_eq!(
            broken(|c| c.dht.min_request_timeout = Duration::from_secs(3)),
            ConfigError::FloorOverRequestTimeout {
                min_request_timeout: Duration::from_secs(3),
                request_timeout: Duration::from_secs(2)
            }
        );
        assert_eq!(
            broken(|c| c.records.token_rotation = Duration::from_secs(60)),
            ConfigError::TokenOutlivedByQuery {
                token_rotation: Duration::from_secs(60),
                query_timeout: Duration::from_secs(60)
            }
        );
        assert_eq!(
            broken(|c| c.transfer.fetch_timeout = Duration::from_secs(2)),
            ConfigError::BlockOutlastsFetch {
                block_timeout: Duration::from_secs(10),
                fetch_timeout: Duration::from_secs(2)
            }
        );
        assert_eq!(
            broken(|c| c.crowd.hold_timeout = Duration::from_secs(10)),
            ConfigError::HoldOutlastsRequest {
                hold_timeout: Duration::from_secs(10),
                block_timeout: Duration::from_secs(10)
            }
        );
        assert_eq!(
            broken(|c| c.transfer.store_capacity_bytes = nonzero!(200 * 1024)),
            ConfigError::StoreUnderChunk {
                chunk_size: 256 * 1024,
                store_capacity_bytes: 200 * 1024
            }
        );
    }

    #[test]
    fn the_boundaries_of_the_rules_are_allowed() {
        let mut c = Config::default();
        c.routing.route_width = nonzero!(33);
        c.transfer.max_blocks_per_provider = nonzero!(16);
        c.dht.disjoint_paths = nonzero!(20);
        c.dht.paths_to_finish = Some(nonzero!(20));
        c.records.providers_enough = nonzero!(20);
        c.records.max_providers_returned = nonzero!(8);
        c.dht.max_lookup_candidates = nonzero!(20);
        c.transfer.store_capacity_bytes = nonzero!(256 * 1024);
        assert_eq!(
            c.validate(),
            Err(ConfigError::EnoughOverReturned {
                providers_enough: 20,
                max_providers_returned: 8
            })
        );
        c.records.providers_enough = nonzero!(8);
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn serde_round_trips_and_fills_in_defaults() {
        let c = Config::default();
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<Config>(&json).unwrap(), c);
        let partial: Config =
            serde_json::from_str(r#"{"dht": {"k": 8, "alpha": 2}, "crowd": {}}"#).unwrap();
        assert_eq!((partial.dht.k.get(), partial.dht.alpha.get()), (8, 2));
        assert_eq!(partial.dht.replication, c.dht.replication);
        assert_eq!(partial.transfer, c.transfer);
        assert_eq!(serde_json::from_str::<Config>("{}").unwrap(), c);
    }

    #[test]
    fn serde_refuses_unknown_fields_and_zero_counts() {
        for bad in [
            r#"{"dht": {"kk": 8}}"#,
            r#"{"k": 8}"#,
            r#"{"dhtt": {}}"#,
            r#"{"limits": {"max_queries": 0}}"#,
        ] {
            assert!(serde_json::from_str::<Config>(bad).is_err(), "{bad}");
        }
    }

    proptest::proptest! {
        /// Any configuration `validate` accepts survives a serde round trip intact.
        #[test]
        fn valid_configs_round_trip(
            k in 1usize..=64,
            alpha in 1usize..=64,
            replication in 1usize..=64,
            width in 1usize..=40,
            hold_ms in 1u64..20_000,
            chunk_kib in 1usize..=1000,
        ) {
            let mut c = Config::default();
            c.dht.k = NonZeroUsize::new(k).unwrap();
            c.dht.alpha = NonZeroUsize::new(alpha).unwrap();
            c.dht.replication = NonZeroUsize::new(replication).unwrap();
            // Under XOR's greedy forwarding the width is free.
            c.routing.route_width = NonZeroUsize::new(width).unwrap();
            c.crowd.hold_timeout = Duration::from_millis(hold_ms);
            c.transfer.chunk_size = chunk_kib * 1024;
            let valid = c.validate().is_ok();
            proptest::prop_assert_eq!(
                valid,
                alpha <= k && replication <= k && hold_ms < 10_000
            );
            let json = serde_json::to_string(&c).unwrap();
            proptest::prop_assert_eq!(serde_json::from_str::<Config>(&json).unwrap(), c);
        }
    }

    #[test]
    fn an_error_states_its_rule_and_values() {
        let e = broken(|c| c.dht.replication = nonzero!(21));
        assert_eq!(
            e.to_string(),
            "replication (21) must be at most k (20): records go to the closest of the k nodes a lookup finds"
        );
    }
}

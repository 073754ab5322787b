//! The most memory a configuration lets a node use, term by term, and what a
//! running node uses of each term.
//!
//! Every collection a node keeps is one term: its most items, and the bytes one
//! item takes with its container's overhead. [`Config::memory_bound`] gives the
//! bound; [`Node::memory_usage`] counts the same terms in a running node, so a
//! simulator can check each against its bound. One function lists the terms
//! for both, so they cannot drift apart.
//!
//! How containers are charged, conservatively:
//! - a `Vec` or `VecDeque` grown by pushing holds at most twice its length, and at
//!   least four slots, so an item costs twice its size, and a collection of lists
//!   counts at least two items per list (four where each list may hold one);
//! - std's B-tree keeps every node but the root at least 5 of its 11 slots full,
//!   and a node is at most 112 bytes of links plus 11 items, so an entry costs at
//!   most (112 + 11·(key + value)) / 5 bytes, and each map's root one more node;
//! - bytes an item owns elsewhere (a contact list in a message, a block's
//!   payload) are added to the item by the wire format's limits.
//!
//! Block data the store keeps is the store's (on disk, or the simulator's
//! memory), not the node's; block data the node holds itself is counted: blocks
//! being written, and blocks in queued messages.

use core::mem::size_of;

use crate::config::Config;
use crate::contact::{Address, Contact};
use crate::content::{FileManifest, SiteEntry, MAX_SITE_FILES};
use crate::event::Transmit;
use crate::id::Id;
use crate::io::StoreOp;
use crate::query::closest::ClosestPeers;
use crate::query::walk::Path;
use crate::query::{Phase, Query, QueryId};
use crate::records::ProviderStore;
use crate::routing::RoutingTable;
use crate::time::Time;
use crate::transfer::fetch::{Fetch, FileProgress, Slot, Source};
use crate::transfer::held::HeldRequest;
use crate::transfer::FetchId;
use crate::wire::{RpcId, MAX_BLOCK_BYTES, MAX_LIST_LEN, MAX_ROUTE_PATH};

use super::outputs::Events;
use super::publish::Publishing;
use super::rtt::RttTable;
use super::storage::{ReadFor, Write};
use super::{Forward, Node, Pending};

/// Whether a term's item count is enforced by the code or rests on an assumption.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Basis {
    /// The node checks the bound before every insertion.
    Enforced,
    /// The count rests on the assumption in the term's note, which the
    /// configuration alone does not guarantee; the simulator checks it.
    Assumed,
}

/// One collection's share of a node's memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryTerm {
    /// Which collection, as `group.collection`.
    pub name: &'static str,
    /// How the bound on `items` is derived, and any assumption behind it.
    pub note: &'static str,
    /// Whether the bound on `items` is enforced or assumed.
    pub basis: Basis,
    /// Items: the most allowed (in a bound) or held now (in a usage).
    pub items: u64,
    /// Bytes one item takes, its container's overhead included.
    pub item_bytes: u64,
}

impl MemoryTerm {
    /// Bytes of the term: items times bytes per item.
    pub fn bytes(&self) -> u64 {
        self.items.saturating_mul(self.item_bytes)
    }
}

/// A node's memory, term by term: a bound ([`Config::memory_bound`]) or a
/// usage ([`Node::memory_usage`]), with the same terms in the same order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryReport {
    /// Every term, the routing table first, the node's fixed part last.
    pub terms: Vec<MemoryTerm>,
}

impl MemoryReport {
    /// Bytes over all terms.
    pub fn bytes(&self) -> u64 {
        self.terms
            .iter()
            .fold(0u64, |sum, t| sum.saturating_add(t.bytes()))
    }

    /// Bytes over the terms whose bound the code enforces.
    pub fn enforced_bytes(&self) -> u64 {
        self.terms
            .iter()
            .filter(|t| t.basis == Basis::Enforced)
            .fold(0u64, |sum, t| sum.saturating_add(t.bytes()))
    }

    /// The term called `name`.
    pub fn term(&self, name: &str) -> Option<&MemoryTerm> {
        self.terms.iter().find(|t| t.name == name)
    }
}

/// Links of a B-tree node beyond its items: parent pointer, index and length,
/// and (internal nodes) 12 child pointers.
const BTREE_LINK_BYTES: u64 = 112;
/// Items a B-tree node holds at most.
const BTREE_CAPACITY: u64 = 11;
/// Items every B-tree node but the root holds at least.
const BTREE_MIN_LEN: u64 = 5;
/// The longest media type a manifest may carry.
const MAX_MEDIA_TYPE_BYTES: u64 = 255;

/// Bytes one B-tree entry of `kv` bytes (key and value) costs at most.
fn btree(kv: usize) -> u64 {
    (BTREE_LINK_BYTES + BTREE_CAPACITY * kv as u64).div_ceil(BTREE_MIN_LEN)
}

/// Bytes of one B-tree node of `kv`-byte entries: a map's root, charged once.
fn btree_root(kv: usize) -> u64 {
    BTREE_LINK_BYTES + BTREE_CAPACITY * kv as u64
}

/// Bytes one item of `size` bytes costs in a `Vec` grown by pushing.
fn vec(size: usize) -> u64 {
    2 * size as u64
}

/// Items of `lists` lists of at most `each` items each, charged with [`vec`]:
/// at least two per list, since a list that holds one item has room for four.
fn lists(lists: u64, each: u64) -> u64 {
    if each == 0 {
        0
    } else {
        lists * each.max(2)
    }
}

/// Bytes of a `Vec`'s header: pointer, capacity, length.
const VEC_HEADER: usize = size_of::<Vec<u8>>();

/// One term, with its bound and (for a usage) its count.
struct Row {
    name: &'static str,
    basis: Basis,
    note: &'static str,
    item_bytes: u64,
    bound: u64,
    used: u64,
}

impl Config {
    /// The most memory, in bytes, a node with this configuration uses, for the
    /// largest address a driver uses (a `SocketAddr`, over TCP); see
    /// [`Config::memory_bound`] for the terms.
    pub fn memory_bound_bytes(&self) -> u64 {
        self.memory_bound::<core::net::SocketAddr>().bytes()
    }

    /// The most memory a node with this configuration and address type `A`
    /// uses, term by term: every collection it keeps, its most items, and the
    /// bytes per item. Terms marked [`Basis::Assumed`] rest on the assumption
    /// in their note.
    pub fn memory_bound<A: Address>(&self) -> MemoryReport {
        report(rows::<A>(self, None), |r| r.bound)
    }
}

impl<A: Address> Node<A> {
    /// What this node holds of every term of [`Config::memory_bound`] now: the
    /// items counted in its collections, at the bound's bytes per item. What
    /// the driver empties within an input (transmits, events, and the storage
    /// operations a simulator answers at once: queued, in flight, waited for,
    /// being written) counts its most so far instead.
    pub fn memory_usage(&self) -> MemoryReport {
        report(rows(&self.config, Some(self)), |r| r.used)
    }
}

fn report(rows: Vec<Row>, items: impl Fn(&Row) -> u64) -> MemoryReport {
    MemoryReport {
        terms: rows
            .iter()
            .map(|r| MemoryTerm {
                name: r.name,
                note: r.note,
                basis: r.basis,
                items: items(r),
                item_bytes: r.item_bytes,
            })
            .collect(),
    }
}

/// Every term: its bound from `c`, and what `node` holds of it (0 without a node).
fn rows<A: Address>(c: &Config, node: Option<&Node<A>>) -> Vec<Row> {
    use Basis::{Assumed, Enforced};
    let count = |f: &dyn Fn(&Node<A>) -> usize| node.map_or(0, |n| f(n) as u64);
    let (dht, routing, records) = (&c.dht, &c.routing, &c.records);
    let (transfer, crowd, limits) = (&c.transfer, &c.crowd, &c.limits);
    let k = dht.k.get() as u64;
    let buckets = crate::id::ID_BITS as u64;
    let queries = limits.max_queries.get() as u64;
    let fetches = transfer.max_fetches.get() as u64;
    let blocks = transfer.store_max_blocks.get() as u64;
    let uploads = transfer.max_uploads.get() as u64;
    let returned = records.max_providers_returned.get() as u64;
    let per_key = records.max_providers_per_key.get() as u64;
    let sources = u64::from(transfer.max_lookups_per_fetch.get()) * returned;
    let site_files = MAX_SITE_FILES as u64;
    let contact = size_of::<Contact<A>>();
    let id = size_of::<Id>();
    let candidate = ClosestPeers::<A>::CANDIDATE_BYTES;
    let paths = dht.disjoint_paths.get() as u64;
    let mut rows = vec![
        Row {
            name: "routing.buckets",
            basis: Enforced,
            note: "one bucket per bucket index: ID_BITS (256)",
            item_bytes: vec(RoutingTable::<A>::BUCKET_BYTES),
            bound: buckets,
            used: count(&|n| n.table.buckets_in_use()),
        },
        Row {
            name: "routing.contacts",
            basis: Enforced,
            note: "k live contacts per bucket: 256 * k",
            item_bytes: vec(RoutingTable::<A>::ENTRY_BYTES),
            bound: lists(buckets, k),
            used: count(&|n| n.table.len()),
        },
        Row {
            name: "routing.replacements",
            basis: Enforced,
            note: "replacement_cache stand-ins per bucket: 256 * replacement_cache",
            item_bytes: vec(RoutingTable::<A>::REPLACEMENT_BYTES),
            bound: lists(buckets, dht.replacement_cache as u64),
            used: count(&|n| n.table.bucket_sizes().map(|(_, _, r)| r).sum()),
        },
        Row {
            name: "queries",
            basis: Enforced,
            note: "max_queries queries, each with its deadline and its shortlist's root",
            item_bytes: btree(size_of::<QueryId>() + size_of::<Query<A>>())
                + btree(size_of::<(Time, QueryId)>())
                + btree_root(candidate),
            bound: queries,
            used: count(&|n| n.queries.len()),
        },
        Row {
            name: "queries.shortlist",
            basis: Enforced,
            note: "per query, max_lookup_candidates peers not asked yet on each of its \
                   disjoint_paths paths",
            item_bytes: btree(candidate),
            bound: queries * paths * dht.max_lookup_candidates.get() as u64,
            used: count(&|n| shortlists(n, ClosestPeers::not_asked)),
        },
        Row {
            name: "queries.asked",
            basis: Assumed,
            note: "per query, the peers asked, assumed at most 4 * k: a lookup ends once \
                   its k closest answered, which in a network without churn takes k \
                   and a few per round (sim/tests/memory.rs checks it, on average over \
                   a node's queries: about 2.4 * k at most there); \
                   failures, or a peer naming ever closer ids, make it ask more until \
                   query_timeout; with disjoint paths, as much again per path",
            item_bytes: btree(candidate),
            bound: queries * paths * 4 * k,
            used: count(&|n| shortlists(n, ClosestPeers::asked)),
        },
        Row {
            name: "queries.tokens",
            basis: Enforced,
            note: "per announce, the write tokens of the k peers closest to its key",
            item_bytes: vec(size_of::<(
                crate::distance::Distance,
                Id,
                crate::records::Token,
            )>())
                + btree(size_of::<QueryId>() + VEC_HEADER),
            bound: lists(queries, k),
            used: count(&|n| n.announce_tokens.values().map(Vec::len).sum()),
        },
        Row {
            name: "queries.claimed",
            basis: Assumed,
            note: "per query, the nodes its paths asked and which path asked each: \
                   one per asked peer, so the bound of queries.asked",
            item_bytes: btree(id + size_of::<usize>()),
            bound: queries * paths * 4 * k,
            used: count(&|n| {
                n.queries
                    .values()
                    .map(|q| match &q.phase {
                        Phase::Walking(walk) => walk.claimed().map_or(0, |c| c.len()),
                        Phase::Storing { .. } => 0,
                    })
                    .sum()
            }),
        },
        Row {
            name: "queries.paths",
            basis: Enforced,
            note: "per query, disjoint_paths paths: a shortlist's root and the \
                   providers each path found and the peers that named them",
            item_bytes: vec(size_of::<Path<A>>() + 2 * size_of::<u32>()),
            bound: queries * paths,
            used: count(&|n| {
                n.queries
                    .values()
                    .map(|q| match &q.phase {
                        Phase::Walking(walk) => walk.path_count(),
                        Phase::Storing { .. } => 0,
                    })
                    .sum()
            }),
        },
        Row {
            name: "queries.providers",
            basis: Enforced,
            note: "per query, max_providers_returned providers found",
            item_bytes: vec(contact),
            bound: lists(queries, returned),
            used: count(&|n| n.queries.values().map(|q| q.providers.len()).sum()),
        },
        Row {
            name: "pending",
            basis: Assumed,
            note: "max_pending_requests query requests, max_forwards forwards, \
                   max_fetches * max_blocks_in_flight block requests, and eviction \
                   pings assumed one per bucket (256; a ping whose bucket moved on \
                   stays until request_timeout)",
            item_bytes: btree(size_of::<RpcId>() + size_of::<Pending<A>>())
                + btree(size_of::<(Time, RpcId)>()),
            bound: limits.max_pending_requests.get() as u64
                + routing.max_forwards as u64
                + fetches * transfer.max_blocks_in_flight.get() as u64
                + buckets,
            used: count(&|n| n.pending.len()),
        },
        Row {
            name: "rtt.peers",
            basis: Enforced,
            note: "with dht.adaptive_timeouts, max_rtt_peers round-trip estimates \
                   and their eviction index (none without)",
            item_bytes: btree(RttTable::PEER_BYTES) + btree(RttTable::AGE_BYTES),
            bound: if c.dht.adaptive_timeouts {
                c.dht.max_rtt_peers.get() as u64
            } else {
                0
            },
            used: count(&|n| n.rtt.peers()),
        },
        Row {
            name: "rtt.expired",
            basis: Enforced,
            note: "with dht.adaptive_timeouts, max_pending_requests requests that \
                   timed out early, kept for a late reply until request_timeout",
            item_bytes: btree(RttTable::EXPIRED_BYTES) + btree(RttTable::EXPIRY_BYTES),
            bound: if c.dht.adaptive_timeouts {
                limits.max_pending_requests.get() as u64
            } else {
                0
            },
            used: count(&|n| n.rtt.expired()),
        },
        Row {
            name: "pending.forwards",
            basis: Enforced,
            note: "max_forwards routes held until acknowledged, each with a path of up \
                   to MAX_ROUTE_PATH + 1 contacts, a frontier of up to MAX_LIST_LEN + k \
                   and route_attempts next hops tried",
            item_bytes: size_of::<Forward<A>>() as u64
                + vec(contact) * (MAX_ROUTE_PATH as u64 + 1 + MAX_LIST_LEN as u64 + k)
                + vec(id) * routing.route_attempts.get() as u64,
            bound: routing.max_forwards as u64,
            used: count(&|n| n.forwards),
        },
    ];
    rows.extend(store_rows(
        [
            "records.provider_keys",
            "records.providers",
            "records.provider_quotas",
        ],
        records.max_provider_keys.get() as u64,
        per_key,
        records.max_records.get() as u64,
        node.map(|n| &n.providers),
    ));
    rows.extend([
        Row {
            name: "records.provided",
            basis: Enforced,
            note: "max_provided_keys keys announced, each with its republish time",
            item_bytes: btree(id + size_of::<Time>()) + btree(size_of::<(Time, Id)>()),
            bound: records.max_provided_keys.get() as u64,
            used: count(&|n| n.provided.len()),
        },
        Row {
            name: "records.names",
            basis: Enforced,
            note: "max_names name records, one per name, each with its writer, and at \
                   worst one writer count by peer and by group per record",
            item_bytes: btree(
                size_of::<crate::names::NameKey>()
                    + size_of::<(crate::names::NameRecord, Option<crate::names::Writer>)>(),
            ) + btree(id + size_of::<usize>())
                + btree(size_of::<crate::contact::AddrGroup>() + size_of::<usize>()),
            bound: records.max_names.get() as u64,
            used: count(&|n| n.names.len()),
        },
        Row {
            name: "records.published_names",
            basis: Enforced,
            note: "max_published_names names published, each with its record and republish time",
            item_bytes: btree(
                size_of::<crate::names::NameKey>()
                    + size_of::<crate::names::NameRecord>()
                    + size_of::<Time>(),
            ),
            bound: records.max_published_names.get() as u64,
            used: count(&|n| n.published_names.len()),
        },
    ]);
    rows.extend(store_rows(
        [
            "crowd.fetching_keys",
            "crowd.fetching_records",
            "crowd.fetching_quotas",
        ],
        crowd.max_fetching_keys.get() as u64,
        per_key,
        records.max_records.get() as u64,
        node.map(|n| &n.fetching),
    ));
    rows.extend([
        Row {
            name: "crowd.held",
            basis: Enforced,
            note: "max_held_requests requests held, each with its deadline and, at \
                   worst, a block (and a list with room for four) of its own",
            item_bytes: 2 * vec(size_of::<HeldRequest<A>>())
                + btree(size_of::<(Time, Id)>())
                + btree(id + VEC_HEADER),
            bound: crowd.max_held_requests as u64,
            used: count(&|n| n.held.len()),
        },
        Row {
            name: "transfer.uploads",
            basis: Enforced,
            note: "max_uploads uploads running, each with its estimated end",
            item_bytes: vec(size_of::<Time>()),
            bound: lists(1, uploads),
            used: count(&|n| n.uploads.len()),
        },
        Row {
            name: "transfer.fetches",
            basis: Enforced,
            note: "max_fetches fetches, each by id and by root, with the roots of its \
                   three maps",
            item_bytes: btree(size_of::<FetchId>() + size_of::<Fetch<A>>())
                + btree(id + size_of::<FetchId>())
                + 3 * btree_root(id + size_of::<usize>()),
            bound: fetches,
            used: count(&|n| n.fetches.len()),
        },
        Row {
            name: "transfer.fetch_timers",
            basis: Assumed,
            note: "per fetch, its deadline and wake-ups assumed at most one per block \
                   in flight (a later wake-up stays until it fires): \
                   max_fetches * (1 + max_blocks_in_flight)",
            item_bytes: btree(size_of::<(Time, FetchId)>()),
            bound: fetches * (1 + transfer.max_blocks_in_flight.get() as u64),
            used: count(&|n| n.fetch_timers.len()),
        },
        Row {
            name: "transfer.sources",
            basis: Enforced,
            note: "per fetch, max_providers_returned providers from each of \
                   max_lookups_per_fetch lookups",
            item_bytes: vec(size_of::<Source<A>>()),
            bound: lists(fetches, sources),
            used: count(&|n| n.fetches.values().map(|f| f.sizes().sources).sum()),
        },
        Row {
            name: "transfer.slots",
            basis: Enforced,
            note: "per fetch, one slot per block of content, at most store_max_blocks \
                   (a manifest naming more fails the fetch)",
            item_bytes: vec(size_of::<Slot>())
                + btree(id + size_of::<usize>())
                + btree(size_of::<(bool, usize)>()),
            bound: fetches * blocks,
            used: count(&|n| n.fetches.values().map(|f| f.sizes().slots).sum()),
        },
        Row {
            name: "transfer.refusals",
            basis: Assumed,
            note: "per slot, at most every source refused it this round (as \
                   transfer.slots): max_fetches * store_max_blocks * sources",
            item_bytes: vec(size_of::<usize>()),
            bound: lists(fetches * blocks, sources),
            used: count(&|n| n.fetches.values().map(|f| f.refusals()).sum()),
        },
        Row {
            name: "transfer.files",
            basis: Enforced,
            note: "per fetch, MAX_SITE_FILES files, each with its media type and \
                   manifest",
            item_bytes: vec(size_of::<FileProgress>())
                + MAX_MEDIA_TYPE_BYTES
                + size_of::<FileManifest>() as u64
                + MAX_MEDIA_TYPE_BYTES
                + 2 * size_of::<usize>() as u64,
            bound: fetches * site_files,
            used: count(&|n| n.fetches.values().map(|f| f.sizes().files).sum()),
        },
        Row {
            name: "transfer.manifest_chunks",
            basis: Assumed,
            note: "per fetch, the chunk ids its file manifests list, assumed to fit \
                   the store (store_max_blocks), as transfer.slots",
            item_bytes: id as u64,
            bound: fetches * blocks,
            used: count(&|n| n.fetches.values().map(|f| f.sizes().manifest_chunks).sum()),
        },
        Row {
            name: "transfer.site_manifests",
            basis: Enforced,
            note: "per fetch, one decoded site manifest: MAX_SITE_FILES entries and \
                   their paths and media types, at most one block of text",
            item_bytes: site_files * vec(size_of::<SiteEntry>()) + MAX_BLOCK_BYTES as u64,
            bound: fetches,
            used: count(&|n| {
                n.fetches
                    .values()
                    .filter(|f| f.sizes().site_manifest)
                    .count()
            }),
        },
        Row {
            name: "transfer.added",
            basis: Assumed,
            note: "per fetch, the blocks it added to the store, at most its slots",
            item_bytes: vec(id),
            bound: fetches * blocks,
            used: count(&|n| n.fetches.values().map(|f| f.sizes().added).sum()),
        },
        Row {
            name: "storage.blocks",
            basis: Enforced,
            note: "store_max_blocks blocks indexed, each with its length",
            item_bytes: btree(id + size_of::<u32>()),
            bound: blocks,
            used: count(&|n| n.storage.block_count()),
        },
        Row {
            name: "storage.partial",
            basis: Enforced,
            note: "blocks held only for running fetches, a subset of storage.blocks",
            item_bytes: btree(id + size_of::<u32>()),
            bound: blocks,
            used: count(&|n| n.partial.len()),
        },
        Row {
            name: "storage.in_flight",
            basis: Enforced,
            note: "max_store_ops operations handed to the driver",
            item_bytes: btree(id),
            bound: limits.max_store_ops.get() as u64,
            used: count(&|n| n.storage.peaks.in_flight),
        },
        Row {
            name: "storage.reads",
            basis: Enforced,
            note: "who waits for reads: max_uploads peers, and per fetch one manifest \
                   per file and the root; each may wait for a block of its own",
            item_bytes: btree(id + VEC_HEADER) + 2 * vec(size_of::<ReadFor<A>>()),
            bound: uploads + fetches * (site_files + 1),
            used: count(&|n| n.storage.peaks.waiting),
        },
        Row {
            name: "storage.queue",
            basis: Assumed,
            note: "operations not yet handed out (longest so far): the reads of \
                   storage.reads, one write per block being written, and one removal \
                   per block, assumed not removed twice before the driver gets to it",
            item_bytes: vec(size_of::<StoreOp>()),
            bound: uploads + fetches * (site_files + 1) + 2 * blocks,
            used: count(&|n| n.storage.peaks.queue),
        },
        Row {
            name: "storage.writes",
            basis: Enforced,
            note: "blocks being written count against store_max_blocks, each with the \
                   fetches (max_fetches) and publications (max_publishes) waiting",
            item_bytes: btree(id + size_of::<Write>())
                + vec(size_of::<FetchId>()) * fetches
                + vec(id) * limits.max_publishes.get() as u64,
            bound: blocks,
            used: count(&|n| n.storage.peaks.writes),
        },
        Row {
            name: "storage.write_bytes",
            basis: Enforced,
            note: "bytes of blocks being written count against store_capacity_bytes \
                   (a slow disk lets them grow that far)",
            item_bytes: 1,
            bound: transfer.store_capacity_bytes.get(),
            used: node.map_or(0, |n| n.storage.peaks.write_bytes),
        },
        Row {
            name: "content.roots",
            basis: Assumed,
            note: "content held complete, assumed one root per held block \
                   (store_max_blocks)",
            item_bytes: btree(id + VEC_HEADER),
            bound: blocks,
            used: count(&|n| n.held_roots.len()),
        },
        Row {
            name: "content.root_blocks",
            basis: Assumed,
            note: "the blocks each held root lists, assumed each block in at most two \
                   roots (a file, and the site that holds it)",
            item_bytes: vec(id),
            bound: 2 * blocks,
            used: count(&|n| n.held_roots.values().map(Vec::len).sum()),
        },
        Row {
            name: "publishes",
            basis: Enforced,
            note: "max_publishes publications, each listing its blocks twice (all, and \
                   those it wrote; store_max_blocks at most) and the keys to announce",
            item_bytes: btree(id + size_of::<Publishing>())
                + vec(id) * (2 * blocks + site_files + 1),
            bound: limits.max_publishes.get() as u64,
            used: count(&|n| n.publishes.len()),
        },
        Row {
            name: "queues.transmits",
            basis: Enforced,
            note: "max_transmit_queue messages (longest so far), each with up to \
                   MAX_ROUTE_PATH + 1 + MAX_LIST_LEN contacts (a route reply)",
            item_bytes: vec(size_of::<Transmit<A>>())
                + (MAX_ROUTE_PATH as u64 + 1 + MAX_LIST_LEN as u64) * contact as u64,
            bound: limits.max_transmit_queue.get() as u64,
            used: count(&|n| n.peaks.transmits),
        },
        Row {
            name: "queues.transmit_blocks",
            basis: Assumed,
            note: "blocks in queued messages (most so far): an input admits at most \
                   max_uploads uploads and completes at most max_uploads reads, \
                   assuming the driver drains after every input",
            item_bytes: MAX_BLOCK_BYTES as u64,
            bound: 2 * uploads,
            used: count(&|n| n.peaks.blocks),
        },
        Row {
            name: "queues.events",
            basis: Assumed,
            note: "events waiting (longest so far), each with up to MAX_LIST_LEN \
                   contacts: max_event_queue misbehaviour reports, one per query and \
                   publication, three per fetch (a manifest, a chunk run, the end), \
                   assuming the driver drains after every input",
            item_bytes: vec(Events::<A>::ENTRY_BYTES) + (MAX_LIST_LEN * contact) as u64,
            bound: limits.max_event_queue.get() as u64
                + queries
                + limits.max_publishes.get() as u64
                + 3 * fetches,
            used: count(&|n| n.events.peak()),
        },
        Row {
            name: "node",
            basis: Enforced,
            note: "the node itself, and the root node of each of its 28 maps",
            item_bytes: size_of::<Node<A>>() as u64
                + 28 * btree_root(
                    size_of::<Fetch<A>>()
                        .max(size_of::<Query<A>>())
                        .max(size_of::<Pending<A>>())
                        .max(size_of::<Write>())
                        .max(size_of::<Publishing>())
                        + size_of::<u64>(),
                ),
            bound: 1,
            used: count(&|_| 1),
        },
    ]);
    rows
}

/// The three terms of a provider store: its keys, its records (at most
/// `per_key` per key, each in its key's list and in the age index), and its
/// counts per peer id and per address group (at most one of each per record).
fn store_rows<A: Address>(
    names: [&'static str; 3],
    keys: u64,
    per_key: u64,
    max_records: u64,
    store: Option<&ProviderStore<A>>,
) -> [Row; 3] {
    let [keys_name, records_name, quotas_name] = names;
    let records = lists(keys, per_key).min(max_records);
    [
        Row {
            name: quotas_name,
            basis: Basis::Enforced,
            note: "counts per peer id and per address group, at most one of each per \
                   record",
            item_bytes: btree(size_of::<Id>() + size_of::<usize>()),
            bound: 2 * records,
            used: store.map_or(0, |s| {
                let (peers, groups) = s.quota_entries();
                (peers + groups) as u64
            }),
        },
        Row {
            name: keys_name,
            basis: Basis::Enforced,
            note: "keys tracked, at most the configured number of keys",
            item_bytes: btree(size_of::<Id>() + VEC_HEADER),
            bound: keys,
            used: store.map_or(0, |s| s.key_count() as u64),
        },
        Row {
            name: records_name,
            basis: Basis::Enforced,
            note: "records, at most max_providers_per_key per key and max_records in \
                   all, each in its key's list and the age index",
            item_bytes: vec(ProviderStore::<A>::RECORD_BYTES) + btree(size_of::<(Time, Id, Id)>()),
            bound: records,
            used: store.map_or(0, |s| s.record_count() as u64),
        },
    ]
}

/// Over every iterative query of `node`, what `f` counts in its shortlist.
fn shortlists<A: Address>(node: &Node<A>, f: fn(&ClosestPeers<A>) -> usize) -> usize {
    node.queries
        .values()
        .map(|q| match &q.phase {
            Phase::Walking(walk) => walk.shortlists().map(f).sum(),
            Phase::Storing { .. } => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idle_node_is_within_its_bound_term_by_term() {
        let config = Config::default();
        let bound = config.memory_bound::<u32>();
        let node: Node<u32> = Node::new(config, Id::hash_of(b"n"), 1, 1, Time::ZERO).unwrap();
        let used = node.memory_usage();
        assert_eq!(bound.terms.len(), used.terms.len());
        for (b, u) in bound.terms.iter().zip(&used.terms) {
            assert_eq!((b.name, b.item_bytes), (u.name, u.item_bytes));
            assert!(u.items <= b.items, "{}", b.name);
        }
        assert_eq!(used.term("node").map(|t| t.items), Some(1));
        assert!(used.bytes() < bound.bytes());
    }

    #[test]
    fn the_bound_grows_with_what_it_bounds() {
        let small = Config::default();
        let mut big = small.clone();
        big.limits.max_transmit_queue = crate::nonzero!(8192);
        let term = |c: &Config| c.memory_bound::<u32>().term("queues.transmits").copied();
        let (s, b) = (term(&small).unwrap(), term(&big).unwrap());
        assert_eq!((s.items, b.items), (4096, 8192));
        assert_eq!(b.bytes(), 2 * s.bytes());
        assert!(big.memory_bound_bytes() > small.memory_bound_bytes());
        // Wider addresses cost more.
        assert!(small.memory_bound::<u32>().bytes() < small.memory_bound_bytes());
    }

    #[test]
    fn the_b_tree_charge_covers_a_half_full_node() {
        // A node of 5 (the fewest) 40-byte entries: 112 + 11 * 40 bytes over 5.
        assert_eq!(btree(40), (112 + 440_u64).div_ceil(5));
        assert!(5 * btree(40) >= btree_root(40));
    }
}

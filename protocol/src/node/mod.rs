//! The protocol node: one peer's whole state machine, driven from outside.

mod fetch;
mod forget;
mod invariants;
mod lookup;
mod maintenance;
mod memory;
mod names;
mod outputs;
mod publish;
mod requests;
mod route;
mod rtt;
mod serve;
mod storage;
mod trust;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use rand_chacha::ChaCha12Rng;
use rand_core::{RngCore, SeedableRng};

use crate::config::{Config, ConfigError};
use crate::contact::{Address, Contact, Reach};
use crate::event::{Event, Misbehaviour, Transmit};
use crate::id::Id;
use crate::io::{Input, Output};
use crate::query::{Query, QueryId};
use crate::records::{Provided, ProviderStore, TokenSecrets};
use crate::routing::{Observed, RoutingTable};
use crate::time::Time;
use crate::transfer::fetch::Fetch;
use crate::transfer::held::Held;
use crate::transfer::uploads::Uploads;
use crate::transfer::FetchId;
use crate::wire::{Body, Message, Route, RpcId};

pub use memory::{Basis, MemoryReport, MemoryTerm};
pub use publish::PublishError;

use outputs::Events;
use storage::Storage;

/// Why a command was refused. The node's state is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// `max_queries` queries are already running.
    #[error("too many queries running (at most {max})")]
    TooManyQueries {
        /// The configured bound.
        max: usize,
    },
    /// `max_provided_keys` keys are already announced by this node.
    #[error("already providing the most keys allowed ({max})")]
    TooManyProvided {
        /// The configured bound.
        max: usize,
    },
    /// `max_fetches` fetches are already running.
    #[error("too many fetches running (at most {max})")]
    TooManyFetches {
        /// The configured bound.
        max: usize,
    },
    /// `max_publishes` publications are already waiting for their blocks to be stored.
    #[error("too many publications running (at most {max})")]
    TooManyPublishes {
        /// The configured bound.
        max: usize,
    },
    /// `max_published_names` names are already published by this node.
    #[error("already publishing the most names allowed ({max})")]
    TooManyNames {
        /// The configured bound.
        max: usize,
    },
    /// Names need calendar time, and the driver has not given it
    /// ([`Node::set_calendar`]).
    #[error("no calendar time set")]
    NoCalendar,
    /// A name record this node would not keep: a bad signature, an expired or
    /// over-long validity, or a lower sequence than one it holds.
    #[error("name record refused")]
    Name(#[source] crate::names::NameError),
}

/// Counters of what the node did, for experiments and status pages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Messages handed to the driver.
    pub messages_sent: u64,
    /// Messages received from the driver.
    pub messages_received: u64,
    /// Requests sent that expected a reply.
    pub requests_sent: u64,
    /// Requests that got no reply in time (or could not be sent).
    pub requests_failed: u64,
    /// Requests from peers that this node answered.
    pub requests_answered: u64,
    /// Messages dropped because a peer misbehaved.
    pub misbehaviour: u64,
    /// Record writes (`AddProvider`, `AddFetching`) refused: without a token,
    /// or past a bound of the store (full, or the writer's share used up).
    pub records_refused: u64,
    /// Record writes dropped for a token this node never gave that writer
    /// there (also counted in `misbehaviour`).
    pub bad_tokens: u64,
    /// Outgoing messages dropped because the transmit queue was full.
    pub transmits_dropped: u64,
    /// Misbehaviour reports dropped because `max_event_queue` of them were
    /// waiting (terminal and progress events are never dropped).
    pub events_dropped: u64,
    /// Messages from peers in client mode or relayed: answered, but their
    /// senders go in no routing table (and a client's in no record).
    pub from_clients: u64,
    /// Replies to requests whose adaptive deadline (`dht.adaptive_timeouts`)
    /// had passed before they came, within `request_timeout`: each was a
    /// timeout that a fixed `request_timeout` would not have had. The reply
    /// feeds the round-trip estimate and is not charged as unsolicited.
    pub late_replies: u64,
    /// Storage operations completed.
    pub store_ops: u64,
    /// Blocks the store turned out not to have (lost or corrupt on disk).
    pub blocks_lost: u64,
    /// Blocks sent to peers.
    pub blocks_uploaded: u64,
    /// Bytes of blocks sent to peers: this node's upload as a server.
    pub bytes_uploaded: u64,
    /// Verified blocks received from peers.
    pub blocks_downloaded: u64,
    /// Bytes of verified blocks received from peers.
    pub bytes_downloaded: u64,
    /// Block requests answered "busy".
    pub busy_replies: u64,
    /// Block requests answered "don't have".
    pub dont_have_replies: u64,
    /// Block requests held until the block arrived here.
    pub requests_held: u64,
    /// Blocks received that did not match their hash.
    pub corrupt_blocks: u64,
}

/// High-water marks of the queues the driver empties after every input: their
/// current length is zero whenever a driver looks, so the peak is what counts.
#[derive(Clone, Copy, Debug, Default)]
struct Peaks {
    /// The longest the transmit queue has been.
    transmits: usize,
    /// Block messages in the transmit queue now.
    blocks_queued: usize,
    /// The most block messages the transmit queue has held at once.
    blocks: usize,
}

/// Why a pending request was sent, so its reply (or timeout) reaches the right place.
#[derive(Debug)]
enum Purpose<A> {
    /// A request on behalf of a query.
    Query(QueryId),
    /// A ping to the head of a full bucket, deciding whether it may be evicted.
    EvictionPing,
    /// A recursive route forwarded to the next hop, awaiting its acknowledgement.
    Forward(Box<Forward<A>>),
    /// A block requested for a fetch.
    Block {
        /// The fetch.
        fetch: FetchId,
        /// The block asked for.
        block: Id,
    },
}

/// A recursive route this node forwarded and is responsible for until acknowledged.
#[derive(Debug)]
struct Forward<A> {
    route: Route<A>,
    /// Next hops already tried, in order.
    tried: Vec<Id>,
}

#[derive(Debug)]
struct Pending<A> {
    to: A,
    /// `None` for a bootstrap seed whose id we do not know yet.
    to_id: Option<Id>,
    /// When the request left, for its round-trip sample.
    sent: Time,
    deadline: Time,
    purpose: Purpose<A>,
}

/// One distroweb peer as a pure state machine (sans-IO, the quinn-proto and str0m shape).
///
/// The node never reads the clock, never draws OS randomness and never touches a
/// socket or a disk: time arrives as `now` with every input, randomness comes from
/// the seed given to [`Node::new`], and everything the node wants done leaves
/// through [`Node::poll_output`]. Same inputs in the same order give the same
/// outputs, bit for bit.
///
/// # The loop
///
/// After every [`Node::handle_input`] and every command (`bootstrap`, `find_node`,
/// `find_providers`, `announce`, `publish`, `fetch`, …) the driver pulls outputs
/// until [`Output::Timeout`]; [`crate::drain`] is that loop, and every driver uses it.
/// Outputs come in a fixed order: transmits, storage operations, events, then
/// the timeout. Time never goes backwards between calls.
///
/// # Storage
///
/// The node keeps an index of the blocks it holds (id and length) and asks the
/// driver to read, write and remove blocks ([`crate::StoreOp`]); a block counts
/// as held only once its write is confirmed, so a crash loses nothing the node
/// claimed to have. The simulator answers at once from memory; the live node
/// answers from a disk pool off the node's task.
///
/// # Content
///
/// The node serves blocks to any peer that asks (bounded by `max_uploads`), and
/// fetches content from many providers at once, verifying every block against
/// its hash. A fetch reports verified manifests and chunks as they land (in file
/// order, none dropped) and always ends with `Event::FetchFinished`.
#[derive(Debug)]
pub struct Node<A> {
    /// Shared, not copied: a simulator's million nodes of one configuration
    /// hold one copy of it (640 bytes) between them.
    config: Arc<Config>,
    id: Id,
    addr: A,
    rng: ChaCha12Rng,
    /// The latest time an input or command brought; time never goes back.
    now: Time,
    table: RoutingTable<A>,
    providers: ProviderStore<A>,
    /// The secrets this node's write tokens are made with.
    tokens: TokenSecrets,
    /// Per running announce, the tokens its peers gave it (at most `k` each).
    announce_tokens: BTreeMap<QueryId, trust::QueryTokens>,
    provided: Provided,
    queries: BTreeMap<QueryId, Query<A>>,
    query_deadlines: BTreeSet<(Time, QueryId)>,
    next_query: u64,
    pending: BTreeMap<RpcId, Pending<A>>,
    pending_deadlines: BTreeSet<(Time, RpcId)>,
    /// Forwards in `pending`, counted against `max_forwards`.
    forwards: usize,
    next_rpc: u64,
    next_maintenance: Time,
    /// Round-trip estimates for adaptive request timeouts; untouched without
    /// `dht.adaptive_timeouts`.
    rtt: rtt::RttTable,
    transmits: VecDeque<Transmit<A>>,
    /// High-water marks of the queues the driver empties, for [`Node::memory_usage`].
    peaks: Peaks,
    events: Events<A>,
    counters: Counters,
    /// How peers can reach this node (see [`Node::set_reach`]).
    reach: Reach,
    /// While a message from a peer not reached directly is handled: that
    /// peer and its reach, which [`Node::observe`] must not add to the
    /// table, and a record may name only if it is relayed.
    unlisted_sender: Option<(Id, Reach)>,
    /// The index of blocks held, and the storage operations under way.
    storage: Storage<A>,
    /// Content this node holds complete (published, or fetched and verified),
    /// with every block it consists of, in id order.
    held_roots: BTreeMap<Id, Vec<Id>>,
    /// Publications waiting for their blocks to be written, by root.
    publishes: BTreeMap<Id, publish::Publishing>,
    /// Blocks held only for fetches still running, with how many such fetches
    /// share each; dropped from the store if every one of them fails.
    partial: BTreeMap<Id, u32>,
    /// "Fetch in progress" records this node tracks for others.
    fetching: ProviderStore<A>,
    fetches: BTreeMap<FetchId, Fetch<A>>,
    fetch_by_root: BTreeMap<Id, FetchId>,
    /// Name records held: tracked for others, resolved, or published here.
    names: crate::names::NameStore,
    /// Names this node publishes and republishes.
    published_names: names::PublishedNames,
    /// Calendar time: the Unix seconds at a protocol time, once the driver
    /// gave them ([`Node::set_calendar`]).
    calendar: Option<(Time, u64)>,
    /// Deadlines and backoff wake-ups of fetches; stale entries are harmless.
    fetch_timers: BTreeSet<(Time, FetchId)>,
    next_fetch: u64,
    uploads: Uploads,
    held: Held<A>,
}

impl<A: Address> Node<A> {
    /// A node with id `id`, reachable by peers at `addr`, whose randomness all
    /// derives from `seed`, holding no blocks yet (see [`Node::restore_blocks`]).
    pub fn new(config: Config, id: Id, addr: A, seed: u64, now: Time) -> Result<Self, ConfigError> {
        Self::with_shared_config(Arc::new(config), id, addr, seed, now)
    }

    /// As [`Node::new`], with a configuration shared with other nodes: a
    /// driver running many nodes of one configuration keeps one copy of it.
    pub fn with_shared_config(
        config: Arc<Config>,
        id: Id,
        addr: A,
        seed: u64,
        now: Time,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        let mut rng = ChaCha12Rng::seed_from_u64(seed);
        // Stagger maintenance so that nodes started together do not refresh together.
        let jitter = rng.next_u64() % micros(config.dht.maintenance_interval).max(1);
        let next_maintenance =
            now + config.dht.maintenance_interval + core::time::Duration::from_micros(jitter);
        // Implementation note: request, query and fetch ids start at random points
        // of the node's stream, so a reply meant for an earlier run of this node
        // (same id, same address, counters back at zero) matches nothing now.
        let next_rpc = rng.next_u64();
        let next_query = rng.next_u64();
        let next_fetch = rng.next_u64();
        let rtt = rtt::RttTable::new(
            config.dht.max_rtt_peers.get(),
            config.limits.max_pending_requests.get(),
        );
        Ok(Node {
            table: RoutingTable::new(id, config.dht.metric.table_metric(), config.table()),
            providers: ProviderStore::new(config.record_store(false)),
            fetching: ProviderStore::new(config.record_store(true)),
            tokens: TokenSecrets::new(seed, now, config.records.token_rotation),
            announce_tokens: BTreeMap::new(),
            uploads: Uploads::new(
                config.transfer.max_uploads.get(),
                config.transfer.upload_bytes_per_s.get(),
            ),
            held: Held::new(config.crowd.max_held_requests),
            events: Events::new(config.limits.max_event_queue.get()),
            names: crate::names::NameStore::with_limits(crate::names::NameLimits {
                max_names: config.records.max_names.get(),
                max_per_peer: config.records.max_records_per_peer.get(),
                max_per_group: config.records.max_records_per_group.get(),
            }),
            published_names: names::PublishedNames::default(),
            calendar: None,
            storage: Storage::new(config.limits.max_store_ops.get()),
            config,
            id,
            addr,
            rng,
            now,
            held_roots: BTreeMap::new(),
            publishes: BTreeMap::new(),
            partial: BTreeMap::new(),
            fetches: BTreeMap::new(),
            fetch_by_root: BTreeMap::new(),
            fetch_timers: BTreeSet::new(),
            next_fetch,
            provided: Provided::default(),
            queries: BTreeMap::new(),
            query_deadlines: BTreeSet::new(),
            next_query,
            pending: BTreeMap::new(),
            pending_deadlines: BTreeSet::new(),
            forwards: 0,
            rtt,
            next_rpc,
            next_maintenance,
            transmits: VecDeque::new(),
            peaks: Peaks::default(),
            counters: Counters::default(),
            reach: Reach::Direct,
            unlisted_sender: None,
        })
    }

    /// This node's id.
    pub fn id(&self) -> Id {
        self.id
    }

    /// The address peers reach this node at.
    pub fn addr(&self) -> &A {
        &self.addr
    }

    /// This node as a contact.
    pub fn contact(&self) -> Contact<A> {
        Contact::new(self.id, self.addr.clone())
    }

    /// The latest time an input or command brought.
    pub fn now(&self) -> Time {
        self.now
    }

    /// The configuration the node runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The routing table.
    pub fn routing_table(&self) -> &RoutingTable<A> {
        &self.table
    }

    /// The provider records this node tracks for others.
    pub fn provider_store(&self) -> &ProviderStore<A> {
        &self.providers
    }

    /// Keys this node announces as their provider, in id order.
    pub fn provided_keys(&self) -> impl Iterator<Item = &Id> + '_ {
        self.provided.keys()
    }

    /// What the node has done so far.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// How long a request to `peer` sent now would wait for its reply:
    /// `dht.request_timeout`, or with `dht.adaptive_timeouts` the peer's RTO
    /// (or the pooled one, per `dht.unsampled_timeout`).
    pub fn request_timeout_to(&self, peer: &Id) -> core::time::Duration {
        self.request_timeout(Some(peer))
    }

    /// The smoothed round trip (SRTT) to `peer`, if `dht.adaptive_timeouts` is
    /// on and the node keeps an estimate for it.
    pub fn smoothed_rtt(&self, peer: &Id) -> Option<core::time::Duration> {
        self.rtt.estimate(peer).map(|e| e.srtt())
    }

    /// Says how peers can reach this node, as the driver has found out:
    /// directly, through a relay, or not at all (client mode, behind a NAT).
    ///
    /// A node in client mode queries, fetches and serves over the connections
    /// it opens, but writes no provider or fetching record naming itself
    /// (nobody could dial it there), and the driver tells its peers so they
    /// keep it out of their routing tables ([`Input::Message`]'s `reach`).
    /// A relayed node writes its records at other trackers (which name it at
    /// its relay) but never keeps one naming itself, as its own address is
    /// not where peers reach it. Name records, signed and independent of
    /// addresses, are written in every mode.
    pub fn set_reach(&mut self, reach: Reach) {
        self.reach = reach;
    }

    /// How peers can reach this node.
    pub fn reach(&self) -> Reach {
        self.reach
    }

    /// Switches client mode on or off: [`Node::set_reach`] with
    /// [`Reach::Client`] or [`Reach::Direct`].
    pub fn set_client_mode(&mut self, on: bool) {
        self.reach = if on { Reach::Client } else { Reach::Direct };
    }

    /// Whether this node runs in client mode ([`Reach::Client`]).
    pub fn client_mode(&self) -> bool {
        self.reach == Reach::Client
    }

    /// Queries still running.
    pub fn queries_running(&self) -> usize {
        self.queries.len()
    }

    /// Adds a peer known out of band (e.g. remembered from an earlier run) as if it
    /// had just been heard from.
    pub fn add_contact(&mut self, now: Time, contact: Contact<A>) {
        let now = self.tick(now);
        self.observe(now, contact);
    }

    /// Feeds one input to the node; then drain it (see [`crate::drain`]).
    pub fn handle_input(&mut self, now: Time, input: Input<A>) {
        let now = self.tick(now);
        match input {
            Input::Message { from, msg, reach } => {
                if !reach.routable() {
                    self.counters.from_clients += 1;
                    self.unlisted_sender = Some((msg.sender, reach));
                }
                self.handle_message(now, from, msg);
                self.unlisted_sender = None;
            }
            Input::Timeout => self.handle_timeout(now),
            Input::SendFailed { to } => self.handle_send_failed(now, to),
            Input::Stored(done) => self.handle_stored(now, done),
        }
    }

    /// The next thing the node wants done: every transmit, then every storage
    /// operation, then every event, then [`Output::Timeout`] with the time the
    /// node next needs `Input::Timeout`. Pull until the timeout after every
    /// input and command.
    #[must_use]
    pub fn poll_output(&mut self) -> Output<A> {
        if let Some(t) = self.transmits.pop_front() {
            if matches!(t.msg.body, Body::Block { .. }) {
                self.peaks.blocks_queued -= 1;
            }
            return Output::Transmit(t);
        }
        if let Some(op) = self.storage.poll() {
            return Output::Store(op);
        }
        if let Some(e) = self.events.pop() {
            return Output::Event(e);
        }
        self.shed();
        Output::Timeout(self.next_deadline())
    }

    /// Frees the allocations of emptied collections (see [`crate::shed`]): the
    /// end of a drain leaves the node holding only what it uses.
    fn shed(&mut self) {
        use crate::shed::Shed;
        self.transmits.shed();
        self.events.shed();
        self.announce_tokens.shed();
        self.queries.shed();
        self.query_deadlines.shed();
        self.pending.shed();
        self.pending_deadlines.shed();
        self.held_roots.shed();
        self.publishes.shed();
        self.partial.shed();
        self.fetches.shed();
        self.fetch_by_root.shed();
        self.fetch_timers.shed();
        self.storage.shed();
        self.providers.shed();
        self.fetching.shed();
        self.provided.shed();
        self.rtt.shed();
    }

    /// Notes the time of an input or command. Time never goes backwards: a
    /// driver that says otherwise is wrong, and the node keeps its own latest time.
    fn tick(&mut self, now: Time) -> Time {
        debug_assert!(
            now >= self.now,
            "time went backwards: {now:?} after {:?}",
            self.now
        );
        self.now = self.now.max(now);
        self.now
    }

    fn handle_message(&mut self, now: Time, from: A, msg: Message<A>) {
        self.counters.messages_received += 1;
        let sender = Contact::new(msg.sender, from);
        if sender.id == self.id {
            self.misbehaved(sender, Misbehaviour::ClaimsOurId);
            return;
        }
        match msg.body {
            Body::Ping => {
                self.observe(now, sender.clone());
                self.reply(&sender, msg.rpc, Body::Pong);
            }
            Body::FindNode { target } => {
                let metric = self.config.dht.metric;
                self.on_find_node(now, sender, msg.rpc, target, metric)
            }
            Body::FindNeighbours { target } => {
                let metric = self.table.metric();
                self.on_find_node(now, sender, msg.rpc, target, metric)
            }
            Body::GetProviders { key } => self.on_get_providers(now, sender, msg.rpc, key),
            Body::AddProvider { key, token } => self.on_add_record(
                now,
                sender,
                msg.rpc,
                key,
                token,
                trust::RecordKind::Provider,
            ),
            Body::Route(route) => self.on_route(now, sender, msg.rpc, route),
            Body::RouteReply(reply) => self.on_route_reply(now, sender, reply),
            Body::AddFetching { key, token } => self.on_add_record(
                now,
                sender,
                msg.rpc,
                key,
                token,
                trust::RecordKind::Fetching,
            ),
            Body::GetBlock { id } => self.on_get_block(now, sender, msg.rpc, id),
            Body::GetName { name } => self.on_get_name(now, sender, msg.rpc, name),
            Body::PutName { record, token } => {
                self.on_put_name(now, sender, msg.rpc, record, token)
            }
            reply @ (Body::Pong
            | Body::Nodes { .. }
            | Body::Providers { .. }
            | Body::ProviderAdded { .. }
            | Body::RecordRefused { .. }
            | Body::RouteAck
            | Body::Block { .. }
            | Body::DontHave { .. }
            | Body::Busy { .. }
            | Body::Name { .. }
            | Body::NameStored { .. }) => self.on_reply(now, sender, msg.rpc, reply),
        }
    }

    /// Request, query, fetch and hold deadlines, backoffs, maintenance.
    fn handle_timeout(&mut self, now: Time) {
        while let Some(&(deadline, rpc)) = self.pending_deadlines.first() {
            if deadline > now {
                break;
            }
            self.pending_deadlines.pop_first();
            if let Some(p) = self.pending.remove(&rpc) {
                self.note_timeout(now, rpc, &p);
                self.request_failed(now, p);
            }
        }
        while let Some(&(deadline, id)) = self.query_deadlines.first() {
            if deadline > now {
                break;
            }
            self.query_deadlines.pop_first();
            self.query_deadline_passed(now, id);
        }
        self.fetch_timers_due(now);
        self.holds_expired(now);
        if now >= self.next_maintenance {
            self.next_maintenance = now + self.config.dht.maintenance_interval;
            self.maintain(now);
        }
    }

    fn handle_send_failed(&mut self, now: Time, to: A) {
        let failed: Vec<RpcId> = self
            .pending
            .iter()
            .filter(|(_, p)| p.to == to)
            .map(|(rpc, _)| *rpc)
            .collect();
        for rpc in failed {
            if let Some(p) = self.pending.remove(&rpc) {
                self.pending_deadlines.remove(&(p.deadline, rpc));
                self.request_failed(now, p);
            }
        }
    }

    /// When the node next needs `Input::Timeout`.
    fn next_deadline(&self) -> Time {
        let mut t = self.next_maintenance;
        if let Some(&(d, _)) = self.pending_deadlines.first() {
            t = t.min(d);
        }
        if let Some(&(d, _)) = self.query_deadlines.first() {
            t = t.min(d);
        }
        if let Some(&(d, _)) = self.fetch_timers.first() {
            t = t.min(d);
        }
        if let Some(d) = self.held.next_deadline() {
            t = t.min(d);
        }
        t
    }

    // ---- plumbing shared by the handlers ----

    /// Notes that `contact` is alive; pings the head of a full bucket if needed.
    fn observe(&mut self, now: Time, contact: Contact<A>) {
        if self.unlisted_sender.is_some_and(|(id, _)| id == contact.id) {
            // It said it cannot be reached directly where it wrote from: a
            // contact there would send every lookup that meets it to a dead
            // address, or through a relay.
            return;
        }
        if let Observed::PingNeeded(head) = self.table.observe(contact, now) {
            // Eviction pings are bounded by the number of buckets (one each), so
            // they bypass `max_pending_requests`.
            self.send_request(
                now,
                head.addr,
                Some(head.id),
                Body::Ping,
                Purpose::EvictionPing,
                true,
            );
        }
    }

    /// Queues a message for `to`; `to_id` is the id the peer there must prove
    /// (`None` only for a bootstrap seed whose id we have yet to learn).
    fn transmit(&mut self, to: A, to_id: Option<Id>, body: Body<A>, rpc: RpcId) {
        if self.transmits.len() >= self.config.limits.max_transmit_queue.get() {
            self.counters.transmits_dropped += 1;
            return;
        }
        self.counters.messages_sent += 1;
        if matches!(body, Body::Block { .. }) {
            self.peaks.blocks_queued += 1;
            self.peaks.blocks = self.peaks.blocks.max(self.peaks.blocks_queued);
        }
        self.transmits.push_back(Transmit {
            to,
            to_id,
            msg: Message {
                sender: self.id,
                rpc,
                body,
            },
        });
        self.peaks.transmits = self.peaks.transmits.max(self.transmits.len());
    }

    /// Answers `to` over the link its request came in on (its observed address,
    /// its proven id).
    fn reply(&mut self, to: &Contact<A>, rpc: RpcId, body: Body<A>) {
        self.counters.requests_answered += 1;
        self.transmit(to.addr.clone(), Some(to.id), body, rpc);
    }

    /// Sends a request and remembers it until its reply or deadline. Returns
    /// `false` (sending nothing) when `max_pending_requests` are already out.
    fn send_request(
        &mut self,
        now: Time,
        to: A,
        to_id: Option<Id>,
        body: Body<A>,
        purpose: Purpose<A>,
        exempt: bool,
    ) -> bool {
        if !exempt && self.pending.len() >= self.config.limits.max_pending_requests.get() {
            return false;
        }
        let deadline = now + self.request_timeout(to_id.as_ref());
        self.send_request_until(to, to_id, body, purpose, deadline);
        true
    }

    /// How long a request to `to` waits for its reply: `request_timeout`, or
    /// with `dht.adaptive_timeouts` the peer's RTO ([`rtt`]).
    fn request_timeout(&self, to: Option<&Id>) -> core::time::Duration {
        let dht = &self.config.dht;
        if !dht.adaptive_timeouts {
            return dht.request_timeout;
        }
        self.rtt.timeout(
            to,
            dht.unsampled_timeout,
            dht.min_request_timeout,
            dht.request_timeout,
        )
    }

    /// A request's deadline passed: with adaptive timeouts, if that was before
    /// `request_timeout` would have ended it, the peer's RTO backs off and the
    /// request is remembered so that a late reply is known as one.
    fn note_timeout(&mut self, now: Time, rpc: RpcId, p: &Pending<A>) {
        if !self.config.dht.adaptive_timeouts || matches!(p.purpose, Purpose::Block { .. }) {
            return;
        }
        if let Some(to) = p.to_id {
            let until = p.sent + self.config.dht.request_timeout;
            self.rtt.timed_out(now, rpc, to, p.sent, until);
        }
    }

    /// A reply matched a pending request: with adaptive timeouts, its round
    /// trip is a sample (block replies, which carry a block, are not).
    fn note_reply(&mut self, now: Time, p: &Pending<A>) {
        if !self.config.dht.adaptive_timeouts || matches!(p.purpose, Purpose::Block { .. }) {
            return;
        }
        if let Some(to) = p.to_id {
            self.rtt.sample(now, to, now.saturating_since(p.sent));
        }
    }

    /// Sends a request with its own deadline, bypassing `max_pending_requests`
    /// (the caller bounds these requests itself).
    fn send_request_until(
        &mut self,
        to: A,
        to_id: Option<Id>,
        body: Body<A>,
        purpose: Purpose<A>,
        deadline: Time,
    ) {
        let rpc = RpcId(self.next_rpc);
        self.next_rpc = self.next_rpc.wrapping_add(1);
        if matches!(purpose, Purpose::Forward(_)) {
            self.forwards += 1;
        }
        self.pending.insert(
            rpc,
            Pending {
                to: to.clone(),
                to_id,
                sent: self.now,
                deadline,
                purpose,
            },
        );
        self.pending_deadlines.insert((deadline, rpc));
        self.counters.requests_sent += 1;
        self.transmit(to, to_id, body, rpc);
    }

    /// Takes the pending request `rpc` if `sender` is who it was sent to.
    fn take_pending(&mut self, rpc: RpcId, sender: &Contact<A>) -> Option<Pending<A>> {
        let p = self.pending.get(&rpc)?;
        if p.to != sender.addr || p.to_id.is_some_and(|id| id != sender.id) {
            return None;
        }
        let p = self.pending.remove(&rpc)?;
        self.pending_deadlines.remove(&(p.deadline, rpc));
        if matches!(p.purpose, Purpose::Forward(_)) {
            self.forwards -= 1;
        }
        Some(p)
    }

    /// A request got no reply: the contact is charged a failure and its purpose
    /// moves on without it.
    fn request_failed(&mut self, now: Time, p: Pending<A>) {
        self.counters.requests_failed += 1;
        if let Some(id) = p.to_id {
            self.table.record_failure(&id);
        }
        match p.purpose {
            Purpose::EvictionPing => {}
            Purpose::Query(q) => self.query_request_failed(now, q, p.to_id),
            Purpose::Forward(f) => {
                self.forwards -= 1;
                self.forward_failed(now, *f);
            }
            Purpose::Block { fetch, block } => self.block_failed(now, fetch, block),
        }
    }

    /// Drops a message from a misbehaving peer, charges it, and reports it.
    fn misbehaved(&mut self, peer: Contact<A>, reason: Misbehaviour) {
        self.counters.misbehaviour += 1;
        self.table.record_failure(&peer.id);
        self.push_event(Event::PeerMisbehaved { peer, reason });
    }

    fn push_event(&mut self, event: Event<A>) {
        if !self.events.push(event) {
            self.counters.events_dropped += 1;
        }
    }

    fn random_id(&mut self) -> Id {
        Id::random(&mut self.rng)
    }

    fn new_query_id(&mut self) -> QueryId {
        let id = QueryId(self.next_query);
        self.next_query = self.next_query.wrapping_add(1);
        id
    }
}

/// A duration in whole microseconds, saturating.
pub(crate) fn micros(d: core::time::Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Size regressions on the node itself: a simulator holds a million of them.
#[cfg(all(test, target_pointer_width = "64"))]
mod size_tests {
    #[test]
    fn the_node_stays_lean() {
        // 3,152 bytes before the configuration was shared and the token
        // secrets' generator replaced by a keyed hash (2,208 after); client
        // mode (about 48 bytes) and the multi-level fetch's state brought it
        // to 2,384, both merged the same day: the next memory pass should
        // move such cold state out of line.
        let size = core::mem::size_of::<super::Node<u32>>();
        assert!(size <= 2_384, "Node<u32> grew to {size} bytes");
    }
}

//! A test harness on the engine, in the spirit of quinn-proto's `Pair`: a small
//! network of real protocol nodes that a test drives one event at a time, with
//! messages it can hold back, release or drop, and links it can slow down.
//!
//! Everything goes through the engine ([`Sim`]), so a node is only ever made by
//! `Node::new`, fed through `handle_input` and drained by `protocol::drain`, and
//! `Node::check_invariants` runs after every drain, in release builds too. A held
//! or dropped message is one the network kept back: the node cannot tell it
//! from a slow or lossy link, and the protocol has no back door for tests.
//!
//! ```
//! use distroweb_protocol::{Body, Config, Event, QueryOutput};
//! use distroweb_sim::{Harness, NodeIdx};
//!
//! let mut h = Harness::new(8, &Config::default(), 1).expect("a valid config");
//! h.join_all();
//! // Lose node 3's next lookup request: the lookup carries on without it.
//! h.drop_next(|e| e.from == NodeIdx(3) && matches!(e.msg.body, Body::FindNode { .. }));
//! let target = h.node(6).id();
//! let q = h.command(3, |n, now| n.find_node(now, target)).expect("room for a query");
//! h.run();
//! assert_eq!(h.sim().stats().dropped, 1);
//! assert!(matches!(
//!     h.query_finished(3, q),
//!     Some(Event::QueryFinished { result: Ok(QueryOutput::Closest(_)), .. })
//! ));
//! ```
//!
//! `sim/tests/harness.rs` has tests that find real behaviour this way.

use core::time::Duration;

use bytes::Bytes;
use distroweb_protocol::content::{read_file, read_manifest};
use distroweb_protocol::{
    Config, ContentStore, Event, FetchError, FetchId, FetchStats, Id, Manifest, MemoryStore, Node,
    QueryId, ReadError, Time,
};
use rand_core::RngCore;

use crate::action::Action;
use crate::addr::NodeIdx;
use crate::config::{SimConfig, SimConfigError};
use crate::engine::{Sim, Step};
use crate::intercept::{Envelope, RuleId, Verdict};
use crate::membership::Seeds;
use crate::network::NetworkConfig;
use crate::seed::{stream_rng, SimRng, Stream};

/// Steps one `run` or `run_until` may take before it gives up and panics.
pub const DEFAULT_MAX_STEPS: u64 = 50_000_000;

/// A few real protocol nodes on the simulator, driven step by step.
///
/// Nodes are addressed by slot index, a `u32` (the `NodeIdx` of events and
/// envelopes wraps the same number). Nothing runs until the test says so: join
/// the nodes ([`Harness::join_all`]), issue commands ([`Harness::command`]),
/// then drive the network by steps, to a condition, to quiescence or by time.
#[derive(Debug)]
pub struct Harness {
    sim: Sim,
    /// Picks bootstrap peers in [`Harness::join_all`].
    rng: SimRng,
    max_steps: u64,
}

impl Harness {
    /// The network model a harness uses unless given another: a continent
    /// rather than the world (one-way delays near 40 ms, 12 to 74 ms for 98 %
    /// of pairs), 100 Mbit/s downlinks, uplinks that only the nodes' own upload
    /// bounds (`max_uploads`, `upload_bytes_per_s`) limit, no loss.
    pub fn network() -> NetworkConfig {
        NetworkConfig {
            plane_side_ms: 55.0,
            access_median_ms: 5.0,
            upload_bytes_per_s: 0,
            download_bytes_per_s: 12_500_000,
            ..NetworkConfig::default()
        }
    }

    /// `nodes` nodes that run `config`, none joined yet; `seed` drives every
    /// random choice (node ids, node RNGs, latencies, bootstrap peers).
    pub fn new(nodes: u32, config: &Config, seed: u64) -> Result<Harness, SimConfigError> {
        Harness::with_sim_config(SimConfig {
            seed,
            nodes,
            protocol: config.clone(),
            network: Harness::network(),
            ..SimConfig::default()
        })
    }

    /// One node per configuration, in slot order.
    pub fn with_configs(configs: Vec<Config>, seed: u64) -> Result<Harness, SimConfigError> {
        let nodes = u32::try_from(configs.len()).unwrap_or(u32::MAX);
        let first = configs.first().cloned().unwrap_or_default();
        let mut h = Harness::new(nodes, &first, seed)?;
        for (i, c) in (0..nodes).zip(configs) {
            if c != first {
                h.sim.set_protocol(NodeIdx(i), c)?;
            }
        }
        Ok(h)
    }

    /// A harness over any simulator configuration; it keeps every node event and
    /// checks every node's invariants after every drain, whatever `config` says.
    pub fn with_sim_config(mut config: SimConfig) -> Result<Harness, SimConfigError> {
        config.keep_events = true;
        config.check_invariants = true;
        let rng = stream_rng(config.seed, Stream::Harness);
        Ok(Harness {
            sim: Sim::new(config)?,
            rng,
            max_steps: DEFAULT_MAX_STEPS,
        })
    }

    /// Sets how many steps one [`Harness::run`] or [`Harness::run_until`] may
    /// take before it panics (a run that never settles is a bug).
    pub fn set_max_steps(&mut self, steps: u64) {
        self.max_steps = steps;
    }

    /// The simulator underneath, for its metrics, stats and digest.
    pub fn sim(&self) -> &Sim {
        &self.sim
    }

    /// The simulator underneath, to schedule actions or install behaviours.
    pub fn sim_mut(&mut self) -> &mut Sim {
        &mut self.sim
    }

    /// Virtual time now.
    pub fn now(&self) -> Time {
        self.sim.now()
    }

    /// Number of node slots.
    pub fn len(&self) -> usize {
        self.sim.len()
    }

    /// Whether there are no slots (never true: a harness has at least one).
    pub fn is_empty(&self) -> bool {
        self.sim.is_empty()
    }

    /// Node `node` joins now through `seeds`; with none it starts a network of
    /// its own.
    pub fn join(&mut self, node: u32, seeds: &[u32]) {
        let seeds = match seeds {
            [] => Seeds::Alone,
            some => Seeds::List(some.iter().copied().map(NodeIdx).collect()),
        };
        self.sim.perform(Action::Join {
            node: NodeIdx(node),
            seeds,
        });
    }

    /// Joins every node as a network grows: node 0 alone, then each next one
    /// 20 ms after the last through one random node that joined at least a
    /// second earlier (an established peer, as a real seed list names); then
    /// the network settles for 30 s.
    ///
    /// # Panics
    ///
    /// If a node other than the first knows nobody afterwards.
    pub fn join_all(&mut self) {
        let n = self.sim.len() as u32;
        self.join(0, &[]);
        for i in 1..n {
            let established = u64::from(i.saturating_sub(50).max(1));
            let seed = (self.rng.next_u64() % established) as u32;
            self.join(i, &[seed]);
            self.run_for(Duration::from_millis(20));
        }
        self.run_for(Duration::from_secs(30));
        for i in 1..n {
            assert!(
                !self.node(i).routing_table().is_empty(),
                "node {i} joined nobody"
            );
        }
    }

    /// Runs a command on node `node` now and drains the node, as a live driver
    /// would; the closure gets the node's public API and the time.
    ///
    /// # Panics
    ///
    /// If the node is down or has never joined.
    pub fn command<R>(&mut self, node: u32, f: impl FnOnce(&mut Node<NodeIdx>, Time) -> R) -> R {
        let node = NodeIdx(node);
        match self.sim.command(node, f) {
            Some(r) => r,
            None => panic!("node {node} is down or never joined"),
        }
    }

    /// Runs the next entry of the event queue that did something — delivered,
    /// held, dropped or lost a message, or gave a node a timeout, a bounce or
    /// an action — skipping cancelled timers. `None` when nothing is left to run.
    pub fn step(&mut self) -> Option<Step> {
        loop {
            match self.sim.step()? {
                Step::Idle => {}
                step => return Some(step),
            }
        }
    }

    /// Steps until `done` holds; returns the steps taken.
    ///
    /// # Panics
    ///
    /// If the event queue runs dry first, or after the step bound.
    pub fn run_until(&mut self, mut done: impl FnMut(&Harness) -> bool) -> u64 {
        let mut steps = 0;
        while !done(self) {
            self.bounded_step(&mut steps, "the condition");
        }
        steps
    }

    /// Steps until some node reports an event that `wanted` accepts, and returns
    /// it with its time and node. Only events reported from now on count.
    ///
    /// # Panics
    ///
    /// If the event queue runs dry first, or after the step bound.
    pub fn run_until_event(
        &mut self,
        mut wanted: impl FnMut(NodeIdx, &Event<NodeIdx>) -> bool,
    ) -> &(Time, NodeIdx, Event<NodeIdx>) {
        let mut seen = self.sim.events().len();
        let mut steps = 0;
        loop {
            let found = self.sim.events()[seen..]
                .iter()
                .position(|(_, n, e)| wanted(*n, e));
            if let Some(i) = found {
                return &self.sim.events()[seen + i];
            }
            seen = self.sim.events().len();
            self.bounded_step(&mut steps, "the event");
        }
    }

    /// Runs to quiescence: until no message is on the wire (held ones aside)
    /// and no up node has a query, a fetch or a publication running. Periodic
    /// maintenance, which never ends, does not count. Returns the steps taken.
    ///
    /// # Panics
    ///
    /// After the step bound (the network never settled).
    pub fn run(&mut self) -> u64 {
        let mut steps = 0;
        while !self.quiescent() {
            if self.sim.next_due().is_none() {
                break;
            }
            self.bounded_step(&mut steps, "quiescence");
        }
        steps
    }

    /// Runs everything due in the next `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        self.sim.run_for(d);
    }

    /// Runs everything due up to and including `t`.
    pub fn run_to(&mut self, t: Time) {
        self.sim.run_until(t);
    }

    fn bounded_step(&mut self, steps: &mut u64, goal: &str) {
        *steps += 1;
        assert!(
            *steps <= self.max_steps,
            "no {goal} after {} steps, at {:?}",
            self.max_steps,
            self.now()
        );
        if self.step().is_none() {
            panic!("nothing left to run at {:?}, and no {goal}", self.now());
        }
    }

    fn quiescent(&self) -> bool {
        self.sim.in_flight() == 0
            && (0..self.sim.len() as u32)
                .map(NodeIdx)
                .all(|i| match self.sim.node(i) {
                    Some(n) if self.sim.is_up(i) => {
                        n.queries_running() == 0
                            && n.fetches_running() == 0
                            && n.publishes_running() == 0
                    }
                    _ => true,
                })
    }

    /// From now on, holds back every message that `which` accepts when it
    /// reaches an up node, until [`Harness::release`]. `which` sees every
    /// message delivered while the rule stands, so it may also record what it
    /// sees: returning `false` lets a message through.
    pub fn hold(&mut self, which: impl FnMut(&Envelope<'_>) -> bool + 'static) -> RuleId {
        self.sim.add_rule(Verdict::Hold, None, Box::new(which))
    }

    /// Stops holding (removes every hold rule) and delivers everything held, now,
    /// in the order it was held. Returns how many messages it let go.
    pub fn release(&mut self) -> usize {
        self.sim.remove_rules(Verdict::Hold);
        self.sim.release(|_| true)
    }

    /// The messages held back now, in the order they were held.
    pub fn held(&self) -> impl Iterator<Item = Envelope<'_>> + '_ {
        self.sim.held()
    }

    /// Drops the next message that `which` accepts on its arrival; the rule
    /// then goes.
    pub fn drop_next(&mut self, which: impl FnMut(&Envelope<'_>) -> bool + 'static) -> RuleId {
        self.sim.add_rule(Verdict::Drop, Some(1), Box::new(which))
    }

    /// Drops every message that `which` accepts until the rule is removed.
    pub fn drop_all(&mut self, which: impl FnMut(&Envelope<'_>) -> bool + 'static) -> RuleId {
        self.sim.add_rule(Verdict::Drop, None, Box::new(which))
    }

    /// Removes a hold or drop rule; `false` if it was gone already.
    pub fn remove_rule(&mut self, rule: RuleId) -> bool {
        self.sim.remove_rule(rule)
    }

    /// Fixes the one-way delay of the link from `from` to `to`, that direction
    /// only (link queues come on top).
    pub fn set_latency(&mut self, from: u32, to: u32, delay: Duration) {
        self.sim
            .network_mut()
            .set_latency(NodeIdx(from), NodeIdx(to), Some(delay));
    }

    /// Sets `node`'s uplink capacity in bytes/s (0: unlimited).
    pub fn set_upload(&mut self, node: u32, bytes_per_s: u64) {
        self.sim
            .network_mut()
            .set_upload_bytes_per_s(NodeIdx(node), Some(bytes_per_s));
    }

    /// Takes `node` off the network: nothing reaches it, nothing leaves it, its
    /// timers sleep; its state stays for inspection.
    pub fn take_down(&mut self, node: u32) {
        self.sim.crash(NodeIdx(node));
    }

    /// The protocol node in slot `node`.
    ///
    /// # Panics
    ///
    /// If the node has never joined.
    pub fn node(&self, node: u32) -> &Node<NodeIdx> {
        let node = NodeIdx(node);
        match self.sim.node(node) {
            Some(n) => n,
            None => panic!("node {node} never joined"),
        }
    }

    /// Slot `node`'s block store, as its node's storage operations left it.
    ///
    /// # Panics
    ///
    /// If there is no such slot.
    pub fn store(&self, node: u32) -> &MemoryStore {
        let node = NodeIdx(node);
        match self.sim.store(node) {
            Some(s) => s,
            None => panic!("no slot {node}"),
        }
    }

    /// Messages delivered to nodes so far.
    pub fn delivered(&self) -> u64 {
        self.sim.stats().delivered
    }

    /// Every event every node reported, with its time and node, oldest first.
    pub fn events(&self) -> &[(Time, NodeIdx, Event<NodeIdx>)] {
        self.sim.events()
    }

    /// The events `node` reported, oldest first.
    pub fn events_of(&self, node: u32) -> impl Iterator<Item = &Event<NodeIdx>> {
        let node = NodeIdx(node);
        self.sim
            .events()
            .iter()
            .filter(move |(_, n, _)| *n == node)
            .map(|(_, _, e)| e)
    }

    /// Forgets the events reported so far.
    pub fn clear_events(&mut self) {
        drop(self.sim.take_events());
    }

    /// How query `q` of `node` ended, if it did.
    pub fn query_finished(&self, node: u32, q: QueryId) -> Option<&Event<NodeIdx>> {
        self.events_of(node)
            .find(|e| matches!(e, Event::QueryFinished { id, .. } if *id == q))
    }

    /// How fetch `f` of `node` ended, if it did.
    pub fn fetch_result(
        &self,
        node: u32,
        f: FetchId,
    ) -> Option<(&Result<Manifest, FetchError>, &FetchStats<NodeIdx>)> {
        self.events_of(node).find_map(|e| match e {
            Event::FetchFinished {
                id, result, stats, ..
            } if *id == f => Some((result, stats)),
            _ => None,
        })
    }

    /// The chunks `node` reported for `file` in fetch `f`, read back from its
    /// store and joined in the order reported.
    ///
    /// # Panics
    ///
    /// If a chunk does not start where the last one ended, is not in the store,
    /// or has another length than reported.
    pub fn streamed(&self, node: u32, f: FetchId, file: Id) -> Vec<u8> {
        let store = self.store(node);
        let mut out = Vec::new();
        for e in self.events_of(node) {
            let Event::ChunkVerified {
                fetch,
                file: of,
                offset,
                id,
                len,
                ..
            } = e
            else {
                continue;
            };
            if *fetch != f || *of != file {
                continue;
            }
            assert_eq!(*offset, out.len() as u64, "chunks out of order");
            let data = match store.get(id) {
                Ok(Some(data)) => data,
                other => panic!("reported chunk {id:?} is not in the store: {other:?}"),
            };
            assert_eq!(data.len(), *len as usize, "chunk {id:?}'s length");
            out.extend_from_slice(&data);
        }
        out
    }

    /// The whole file `id` as `node`'s store holds it.
    pub fn read_file(&self, node: u32, id: &Id) -> Result<Bytes, ReadError> {
        read_file(self.store(node), id)
    }

    /// The manifest `id` as `node`'s store holds it.
    pub fn read_manifest(&self, node: u32, id: &Id) -> Result<Manifest, ReadError> {
        read_manifest(self.store(node), id)
    }
}

//! The engine: node slots, the event loop, and the one `drain` that honours the
//! protocol's drain contract.
//!
//! The loop can also be driven one entry at a time ([`Sim::step`]), which says
//! what each entry did ([`Step`]); message rules ([`crate::intercept`]) hold or
//! drop messages on their way. The test harness ([`crate::harness`]) rests on both.

mod events;
mod lifecycle;

use std::collections::BTreeMap;
use std::sync::Arc;

use distroweb_protocol::Reach;
use distroweb_protocol::{
    drain, Config, ConfigError, Driver, Event, Id, Input, MemoryStore, Message, Node, RpcId,
    StoreOp, Time, Transmit,
};

use crate::action::Action;
use crate::addr::NodeIdx;
use crate::behaviour::Behaviour;
use crate::config::{SimConfig, SimConfigError};
use crate::digest::TraceDigest;
use crate::intercept::{Envelope, Matcher, RuleId, Rules, Verdict};
use crate::membership::Membership;
use crate::metrics::{class_index, Metrics};
use crate::network::{DeadPeer, Fate, Network};
use crate::queue::{Due, EventQueue, Slab};
use crate::seed::{stream_rng, SimRng, Stream};
use crate::stats::EngineStats;
use crate::timeseries::TimeSeries;

/// A message on the wire.
#[derive(Debug)]
struct InFlight {
    from: NodeIdx,
    to: NodeIdx,
    /// The receiver's incarnation at send time: a message outlives no restart.
    to_incarnation: u32,
    from_incarnation: u32,
    bytes: u32,
    class: u8,
    /// How the sender says it can be reached (its `Node::reach` at send time).
    reach: Reach,
    msg: Message<NodeIdx>,
}

impl InFlight {
    fn envelope(&self) -> Envelope<'_> {
        Envelope {
            from: self.from,
            to: self.to,
            msg: &self.msg,
        }
    }
}

/// What one entry of the event queue did, as [`Sim::step`] reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// A message reached `to` as `Input::Message`.
    Delivered {
        /// Its sender.
        from: NodeIdx,
        /// Its receiver.
        to: NodeIdx,
        /// Its request id.
        rpc: RpcId,
        /// What it is ([`distroweb_protocol::Body::name`]).
        body: &'static str,
    },
    /// A rule held the message back (see [`Sim::held`]).
    Held {
        /// Its sender.
        from: NodeIdx,
        /// Its receiver.
        to: NodeIdx,
        /// What it is.
        body: &'static str,
    },
    /// A rule dropped the message.
    Dropped {
        /// Its sender.
        from: NodeIdx,
        /// Its receiver.
        to: NodeIdx,
        /// What it is.
        body: &'static str,
    },
    /// The message found its receiver down, or restarted since it was sent.
    ToDead {
        /// Its sender.
        from: NodeIdx,
        /// Its receiver.
        to: NodeIdx,
    },
    /// The receiver's behaviour wrapper swallowed the message.
    Swallowed {
        /// Its sender.
        from: NodeIdx,
        /// Its receiver.
        to: NodeIdx,
    },
    /// `node` got `Input::Timeout`: a deadline of its was due.
    Timeout {
        /// The node.
        node: NodeIdx,
    },
    /// `node` got `Input::SendFailed`: its message to `to` bounced.
    SendFailed {
        /// The node.
        node: NodeIdx,
        /// The peer that was down.
        to: NodeIdx,
    },
    /// A scheduled [`Action`] ran.
    Action,
    /// No node got an input: a lazily cancelled or re-armed timer, or a bounce
    /// meant for an earlier incarnation.
    Idle,
}

/// One node's place in the simulator.
#[derive(Debug)]
struct Slot {
    /// The protocol node; `None` before its first join, or while down after
    /// losing state. Boxed, so the drain can lift it out of the slot cheaply.
    node: Option<Box<Node<NodeIdx>>>,
    /// The node's blocks; it answers the node's storage operations at once.
    store: MemoryStore,
    /// When the node last said it next needs a timeout.
    deadline: Time,
    up: bool,
    /// Bumped on every join, so that messages and timers of an old session are ignored.
    incarnation: u32,
    /// The protocol configuration this node runs, if not the run's own.
    protocol: Option<Arc<Config>>,
    /// The time of the one live `Wake` entry for this node in the queue
    /// (`Time::MAX` if none); any other `Wake` for it is stale.
    timer_at: Time,
    behaviour: Option<Box<dyn Behaviour>>,
    /// The id this slot's node runs, if not the one derived from the seed
    /// (an attacker that ground its key, [`crate::adversary::grind`]).
    id: Option<Id>,
    /// Churn never takes this node down ([`Sim::keep_up`]).
    permanent: bool,
}

/// The simulator: thousands of unmodified protocol nodes in virtual time.
///
/// Single-threaded and deterministic: the same [`SimConfig`] and the same calls
/// give the same trace digest, bit for bit.
#[derive(Debug)]
pub struct Sim {
    config: SimConfig,
    /// `config.protocol`, shared by every node that runs it.
    protocol: Arc<Config>,
    now: Time,
    slots: Vec<Slot>,
    queue: EventQueue,
    messages: Slab<InFlight>,
    actions: Slab<Action>,
    network: Network,
    membership: Membership,
    churn_rng: SimRng,
    metrics: Metrics,
    digest: TraceDigest,
    stats: EngineStats,
    /// Who announced each key, to verify provider lookups.
    announcers: BTreeMap<Id, Vec<NodeIdx>>,
    events: Vec<(Time, NodeIdx, Event<NodeIdx>)>,
    /// Scratch: bootstrap peers of the join in progress.
    scratch_seeds: Vec<NodeIdx>,
    /// The progress check: the current instant and events run at it.
    instant: (Time, u64),
    /// Rules that hold or drop messages on delivery.
    rules: Rules,
    /// Messages a rule holds back, in the order they were held.
    held: Vec<InFlight>,
    reproduce: Option<String>,
    /// The run over time, if `config.timeseries` asks for it.
    timeseries: Option<TimeSeries>,
}

impl Sim {
    /// A simulator with `config.nodes` empty slots, all down until they join.
    pub fn new(config: SimConfig) -> Result<Self, SimConfigError> {
        config.validate()?;
        let n = config.nodes as usize;
        let slots = (0..n)
            .map(|_| Slot {
                node: None,
                store: MemoryStore::default(),
                deadline: Time::MAX,
                up: false,
                incarnation: 0,
                timer_at: Time::MAX,
                protocol: None,
                behaviour: None,
                id: None,
                permanent: false,
            })
            .collect();
        Ok(Sim {
            network: Network::new(config.network.clone(), n, config.seed),
            membership: Membership::new(n),
            churn_rng: stream_rng(config.seed, Stream::Churn),
            metrics: Metrics::new(n),
            digest: TraceDigest::default(),
            stats: EngineStats::default(),
            announcers: BTreeMap::new(),
            events: Vec::new(),
            scratch_seeds: Vec::new(),
            instant: (Time::ZERO, 0),
            rules: Rules::default(),
            held: Vec::new(),
            reproduce: None,
            timeseries: TimeSeries::new(&config.timeseries),
            queue: EventQueue::default(),
            messages: Slab::default(),
            actions: Slab::default(),
            slots,
            now: Time::ZERO,
            protocol: Arc::new(config.protocol.clone()),
            config,
        })
    }

    /// Sets the command line printed if the run panics, so the failure can be replayed.
    pub fn set_reproduce(&mut self, command: impl Into<String>) {
        self.reproduce = Some(command.into());
    }

    /// The configuration.
    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    /// Virtual time now.
    pub fn now(&self) -> Time {
        self.now
    }

    /// What the engine did so far.
    pub fn stats(&self) -> &EngineStats {
        &self.stats
    }

    /// What the run measured so far.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The network model and its state.
    pub fn network(&self) -> &Network {
        &self.network
    }

    /// The digest of the event trace so far (64 hex characters).
    pub fn digest(&self) -> String {
        self.digest.hex()
    }

    /// Entries waiting in the event queue (including lazily cancelled timers).
    pub fn pending(&self) -> usize {
        self.queue.len()
    }

    /// Messages on the wire now.
    pub fn in_flight(&self) -> usize {
        self.messages.len()
    }

    /// Number of node slots.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether there are no slots (never true: `nodes` is at least 1).
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Whether `node` is up.
    pub fn is_up(&self, node: NodeIdx) -> bool {
        self.slots.get(node.index()).is_some_and(|s| s.up)
    }

    /// Nodes up now.
    pub fn up_count(&self) -> usize {
        self.membership.len()
    }

    /// The protocol node in slot `node`, if it has ever joined (and kept its state).
    pub fn node(&self, node: NodeIdx) -> Option<&Node<NodeIdx>> {
        self.slots.get(node.index())?.node.as_deref()
    }

    /// The block store of slot `node`, as its node's storage operations left it.
    pub fn store(&self, node: NodeIdx) -> Option<&MemoryStore> {
        self.slots.get(node.index()).map(|s| &s.store)
    }

    /// Installs a behaviour wrapper on `node` (see [`Behaviour`]).
    pub fn set_behaviour(&mut self, node: NodeIdx, behaviour: Box<dyn Behaviour>) {
        if let Some(s) = self.slots.get_mut(node.index()) {
            s.behaviour = Some(behaviour);
        }
    }

    /// Makes `node` run under `id` instead of the id derived from the seed,
    /// from its next fresh start: an attacker that generated keys until one
    /// landed where it wanted ([`crate::adversary::grind`]).
    pub fn set_node_id(&mut self, node: NodeIdx, id: Id) {
        if let Some(s) = self.slots.get_mut(node.index()) {
            s.id = Some(id);
        }
    }

    /// The id slot `node` runs (or will run at its next fresh start).
    pub fn node_id(&self, node: NodeIdx) -> Id {
        self.slots
            .get(node.index())
            .and_then(|s| s.id)
            .unwrap_or_else(|| crate::seed::node_id(self.config.seed, node.0))
    }

    /// Node events collected so far (only with `keep_events`), emptied.
    pub fn take_events(&mut self) -> Vec<(Time, NodeIdx, Event<NodeIdx>)> {
        std::mem::take(&mut self.events)
    }

    /// Node events collected so far (only with `keep_events`), oldest first.
    pub fn events(&self) -> &[(Time, NodeIdx, Event<NodeIdx>)] {
        &self.events
    }

    /// The network model, to change latencies or link speeds mid-run.
    pub fn network_mut(&mut self) -> &mut Network {
        &mut self.network
    }

    /// Makes `node` run `config` instead of the run's protocol configuration,
    /// from its next fresh start (its first join, or a rejoin that lost state).
    pub fn set_protocol(&mut self, node: NodeIdx, config: Config) -> Result<(), ConfigError> {
        config.validate()?;
        if let Some(s) = self.slots.get_mut(node.index()) {
            s.protocol = Some(Arc::new(config));
        }
        Ok(())
    }

    /// Adds a rule: messages that `matches` accepts are held back or dropped
    /// when they reach a node that is up, instead of being delivered. With a
    /// `limit` the rule applies to that many messages and then goes. Rules are
    /// consulted in the order they were added; the first match decides.
    pub fn add_rule(&mut self, verdict: Verdict, limit: Option<u32>, matches: Matcher) -> RuleId {
        self.rules.add(verdict, limit, matches)
    }

    /// Removes a rule; `false` if it was gone already (used up, say).
    pub fn remove_rule(&mut self, id: RuleId) -> bool {
        self.rules.remove(id)
    }

    /// Removes every rule with this verdict; returns how many there were.
    pub fn remove_rules(&mut self, verdict: Verdict) -> usize {
        self.rules.remove_all(verdict)
    }

    /// The messages rules hold back, in the order they were held.
    pub fn held(&self) -> impl Iterator<Item = Envelope<'_>> + '_ {
        self.held.iter().map(InFlight::envelope)
    }

    /// Lets the held messages that `which` accepts go: each is delivered now, in
    /// the order it was held, after what is already due now. Rules still in force
    /// see it again on delivery (remove a hold rule first, or it holds the
    /// message anew). Returns how many were released.
    pub fn release(&mut self, mut which: impl FnMut(&Envelope<'_>) -> bool) -> usize {
        let (go, keep): (Vec<InFlight>, Vec<InFlight>) = std::mem::take(&mut self.held)
            .into_iter()
            .partition(|m| which(&m.envelope()));
        self.held = keep;
        let n = go.len();
        for m in go {
            let i = self.messages.insert(m);
            self.queue.push(self.now, Due::Deliver(i));
        }
        n
    }

    /// Runs `action` now, as if it had been scheduled for this instant and come due.
    pub fn perform(&mut self, action: Action) {
        self.stats.actions += 1;
        self.act(action);
    }

    /// The nodes that announced `key`: through an [`Action::Announce`] or an
    /// [`Action::Publish`], or by completing a fetch with `serve_after_fetch`.
    pub fn announcers(&self, key: &Id) -> &[NodeIdx] {
        self.announcers.get(key).map_or(&[], Vec::as_slice)
    }

    /// Schedules `action` at `at` (not before now).
    pub fn schedule(&mut self, at: Time, action: Action) {
        let i = self.actions.insert(action);
        self.queue.push(at.max(self.now), Due::Action(i));
    }

    /// Runs a command on an up node now, then drains it. `None` if the node is down.
    ///
    /// The closure gets the node's public API, as a live driver would.
    pub fn command<R>(
        &mut self,
        node: NodeIdx,
        f: impl FnOnce(&mut Node<NodeIdx>, Time) -> R,
    ) -> Option<R> {
        let now = self.now;
        let slot = self.slots.get_mut(node.index())?;
        if !slot.up {
            return None;
        }
        let r = f(slot.node.as_deref_mut()?, now);
        self.settle(node);
        Some(r)
    }

    /// Runs every event up to and including `until`, then sets the clock to `until`.
    pub fn run_until(&mut self, until: Time) {
        while self.queue.peek_time().is_some_and(|at| at <= until) {
            self.step();
        }
        self.now = self.now.max(until);
        self.roll_timeseries();
    }

    /// Runs the earliest entry of the event queue and says what it did; `None`
    /// when the queue is empty. The clock moves to the entry's time.
    pub fn step(&mut self) -> Option<Step> {
        let (at, due) = self.queue.pop()?;
        self.advance(at);
        Some(self.dispatch(due))
    }

    /// When the earliest entry of the event queue comes due, if there is one.
    pub fn next_due(&self) -> Option<Time> {
        self.queue.peek_time()
    }

    /// Runs for `d` of virtual time.
    pub fn run_for(&mut self, d: core::time::Duration) {
        self.run_until(self.now + d);
    }

    fn advance(&mut self, at: Time) {
        debug_assert!(at >= self.now, "time went backwards");
        self.now = at;
        if self.instant.0 == at {
            self.instant.1 += 1;
            assert!(
                self.instant.1 <= self.config.max_events_per_instant,
                "no progress: more than {} events at {at:?} (a timer that fires forever?)",
                self.config.max_events_per_instant
            );
        } else {
            self.instant = (at, 1);
        }
        self.roll_timeseries();
    }

    fn dispatch(&mut self, due: Due) -> Step {
        match due {
            Due::Deliver(i) => match self.messages.take(i) {
                Some(m) => self.deliver(m),
                None => Step::Idle,
            },
            Due::Wake(node) => self.wake(node),
            Due::SendFailed {
                node,
                incarnation,
                to,
            } => {
                let now = self.now;
                let slot = &mut self.slots[node.index()];
                if !slot.up || slot.incarnation != incarnation {
                    return Step::Idle;
                }
                let Some(n) = slot.node.as_mut() else {
                    return Step::Idle;
                };
                self.stats.send_failures += 1;
                self.digest
                    .record(&[now.as_micros(), 3, u64::from(node.0), u64::from(to.0)]);
                n.handle_input(now, Input::SendFailed { to });
                self.settle(node);
                Step::SendFailed { node, to }
            }
            Due::Action(i) => match self.actions.take(i) {
                Some(a) => {
                    self.perform(a);
                    Step::Action
                }
                None => Step::Idle,
            },
        }
    }

    fn deliver(&mut self, m: InFlight) -> Step {
        let now = self.now;
        let slot = &mut self.slots[m.to.index()];
        let stale = slot.up && slot.incarnation != m.to_incarnation;
        if stale && self.config.network.deliver_stale {
            // The fault: a message meant for the node's previous run reaches
            // the new one, as a restarted live node at the same address sees.
            self.stats.stale_delivered += 1;
        } else if !slot.up || stale {
            self.stats.to_dead += 1;
            if self.config.network.dead_peer == DeadPeer::Refused {
                let back = self.network.one_way_us(m.to, m.from);
                self.queue.push(
                    now + core::time::Duration::from_micros(back),
                    Due::SendFailed {
                        node: m.from,
                        incarnation: m.from_incarnation,
                        to: m.to,
                    },
                );
            }
            return Step::ToDead {
                from: m.from,
                to: m.to,
            };
        }
        let body = m.msg.body.name();
        if !self.rules.is_empty() {
            match self.rules.verdict(&m.envelope()) {
                Some(Verdict::Hold) => {
                    self.stats.held += 1;
                    let (from, to) = (m.from, m.to);
                    self.held.push(m);
                    return Step::Held { from, to, body };
                }
                Some(Verdict::Drop) => {
                    self.stats.dropped += 1;
                    return Step::Dropped {
                        from: m.from,
                        to: m.to,
                        body,
                    };
                }
                None => {}
            }
        }
        let slot = &mut self.slots[m.to.index()];
        self.metrics
            .received(m.to.index(), m.class as usize, u64::from(m.bytes));
        self.digest.record(&[
            now.as_micros(),
            1,
            u64::from(m.from.0) << 32 | u64::from(m.to.0),
            m.msg.rpc.0,
            u64::from(m.bytes),
        ]);
        let (from, to, rpc, reach) = (m.from, m.to, m.msg.rpc, m.reach);
        let msg = match slot.behaviour.as_mut() {
            Some(b) => match b.inbound(now, m.from, m.msg) {
                Some(msg) => msg,
                None => {
                    self.stats.intercepted += 1;
                    return Step::Swallowed { from, to };
                }
            },
            None => m.msg,
        };
        let Some(node) = slot.node.as_mut() else {
            return Step::Idle;
        };
        self.stats.delivered += 1;
        node.handle_input(now, Input::Message { from, msg, reach });
        self.settle(to);
        Step::Delivered {
            from,
            to,
            rpc,
            body,
        }
    }

    fn wake(&mut self, idx: NodeIdx) -> Step {
        let now = self.now;
        let slot = &mut self.slots[idx.index()];
        if slot.timer_at != now {
            self.stats.stale_wakes += 1;
            return Step::Idle;
        }
        slot.timer_at = Time::MAX;
        if !slot.up {
            // Timers sleep while the node is down; the rejoin's drain re-arms them.
            return Step::Idle;
        }
        let due = slot.deadline <= now;
        let Some(node) = slot.node.as_mut() else {
            return Step::Idle;
        };
        let step = if due {
            self.stats.timeouts += 1;
            self.digest.record(&[now.as_micros(), 2, u64::from(idx.0)]);
            node.handle_input(now, Input::Timeout);
            Step::Timeout { node: idx }
        } else {
            self.stats.rearmed += 1;
            Step::Idle
        };
        self.settle(idx);
        step
    }

    /// Drains a node with the protocol's one loop, then arms its timer.
    fn settle(&mut self, idx: NodeIdx) {
        let now = self.now;
        let Some(mut node) = self.slots[idx.index()].node.take() else {
            return;
        };
        let next = drain(&mut node, now, &mut SimIo { sim: self, idx });
        if self.config.check_invariants {
            node.check_invariants();
        }
        debug_assert!(
            node.counters().transmits_dropped == 0,
            "a node's transmit queue overflowed although the driver drains it"
        );
        let slot = &mut self.slots[idx.index()];
        slot.node = Some(node);
        let t = next.max(now);
        slot.deadline = t;
        if t < slot.timer_at {
            slot.timer_at = t;
            self.queue.push(t, Due::Wake(idx));
        }
    }

    fn send(&mut self, from: NodeIdx, t: Transmit<NodeIdx>, reach: Reach) {
        let Transmit { to, msg, .. } = t;
        let msg = if self.config.network.codec_roundtrip {
            roundtrip(msg)
        } else {
            msg
        };
        let class = class_index(msg.body.class());
        let bytes = msg.encoded_len() as u64 + u64::from(self.config.network.overhead_bytes);
        self.metrics.sent(from.index(), class, bytes);
        if let Some(ts) = self.timeseries.as_mut() {
            ts.sent(class, bytes);
        }
        let Some(to_slot) = self.slots.get(to.index()) else {
            self.stats.unroutable += 1;
            return;
        };
        let to_incarnation = to_slot.incarnation;
        match self.network.send(self.now, from, to, bytes) {
            Fate::Arrives(at) => {
                let i = self.messages.insert(InFlight {
                    from,
                    to,
                    to_incarnation,
                    from_incarnation: self.slots[from.index()].incarnation,
                    bytes: u32::try_from(bytes).unwrap_or(u32::MAX),
                    class: class as u8,
                    reach,
                    msg,
                });
                self.queue.push(at, Due::Deliver(i));
            }
            Fate::Lost => self.stats.lost += 1,
            Fate::Partitioned => self.stats.partitioned += 1,
            Fate::Blocked => self.stats.nat_blocked += 1,
        }
    }
}

/// The simulator as a node's driver: transmits go through the behaviour
/// wrapper onto the network model, storage is answered from the slot's memory
/// store within the same instant, events are tallied.
struct SimIo<'a> {
    sim: &'a mut Sim,
    idx: NodeIdx,
}

impl Driver<NodeIdx> for SimIo<'_> {
    fn transmit(&mut self, node: &mut Node<NodeIdx>, now: Time, t: Transmit<NodeIdx>) {
        let sim = &mut *self.sim;
        let slot = &mut sim.slots[self.idx.index()];
        let t = match slot.behaviour.as_mut() {
            Some(b) => match b.outbound(now, t) {
                Some(t) => t,
                None => {
                    sim.stats.intercepted += 1;
                    return;
                }
            },
            None => t,
        };
        // The authenticated transport: a message goes out only in the name
        // of the key the sending slot holds, whatever its behaviour rewrote.
        if t.msg.sender != node.id() {
            sim.stats.forged += 1;
            return;
        }
        sim.send(self.idx, t, node.reach());
    }

    fn store(&mut self, node: &mut Node<NodeIdx>, now: Time, op: StoreOp) {
        let done = self.sim.slots[self.idx.index()].store.apply(op);
        node.handle_input(now, Input::Stored(done));
    }

    fn event(&mut self, _: &mut Node<NodeIdx>, _: Time, e: Event<NodeIdx>) {
        self.sim.on_event(self.idx, e);
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "simulation panicked at virtual time {:?}; {}",
                self.now,
                match &self.reproduce {
                    Some(cmd) => format!("reproduce with: {cmd}"),
                    None => format!("reproduce with the same calls and {}", self.config),
                }
            );
        }
    }
}

/// Encodes and decodes a message with the real codec, insisting it survives.
fn roundtrip(msg: Message<NodeIdx>) -> Message<NodeIdx> {
    let bytes = match msg.encode() {
        Ok(b) => b,
        Err(e) => panic!("codec round trip: cannot encode {msg:?}: {e}"),
    };
    assert_eq!(
        bytes.len(),
        msg.encoded_len(),
        "encoded_len disagrees with encode"
    );
    match Message::decode(&bytes) {
        Ok(back) if back == msg => back,
        Ok(back) => panic!("codec round trip changed the message: {msg:?} became {back:?}"),
        Err(e) => panic!("codec round trip: cannot decode {msg:?}: {e}"),
    }
}

//! The engine: node slots, the event loop, and the one `drain` that honours the
//! protocol's drain contract.

mod events;
mod lifecycle;

use std::collections::BTreeMap;

use distroweb_protocol::{
    drain, Driver, Event, Id, Input, MemoryStore, Message, Node, StoreOp, Time, Transmit,
};

use crate::action::Action;
use crate::addr::NodeIdx;
use crate::behaviour::Behaviour;
use crate::config::{SimConfig, SimConfigError};
use crate::digest::TraceDigest;
use crate::membership::Membership;
use crate::metrics::{class_index, Metrics};
use crate::network::{DeadPeer, Fate, Network};
use crate::queue::{Due, EventQueue, Slab};
use crate::seed::{stream_rng, SimRng, Stream};
use crate::stats::EngineStats;

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
    msg: Message<NodeIdx>,
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
    /// The time of the one live `Wake` entry for this node in the queue
    /// (`Time::MAX` if none); any other `Wake` for it is stale.
    timer_at: Time,
    behaviour: Option<Box<dyn Behaviour>>,
}

/// The simulator: thousands of unmodified protocol nodes in virtual time.
///
/// Single-threaded and deterministic: the same [`SimConfig`] and the same calls
/// give the same trace digest, bit for bit.
#[derive(Debug)]
pub struct Sim {
    config: SimConfig,
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
    reproduce: Option<String>,
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
                behaviour: None,
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
            reproduce: None,
            queue: EventQueue::default(),
            messages: Slab::default(),
            actions: Slab::default(),
            slots,
            now: Time::ZERO,
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

    /// Node events collected so far (only with `keep_events`), emptied.
    pub fn take_events(&mut self) -> Vec<(Time, NodeIdx, Event<NodeIdx>)> {
        std::mem::take(&mut self.events)
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
        while let Some(at) = self.queue.peek_time() {
            if at > until {
                break;
            }
            let Some((at, due)) = self.queue.pop() else {
                break;
            };
            self.advance(at);
            self.dispatch(due);
        }
        self.now = self.now.max(until);
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
    }

    fn dispatch(&mut self, due: Due) {
        match due {
            Due::Deliver(i) => {
                if let Some(m) = self.messages.take(i) {
                    self.deliver(m);
                }
            }
            Due::Wake(node) => self.wake(node),
            Due::SendFailed {
                node,
                incarnation,
                to,
            } => {
                let now = self.now;
                let slot = &mut self.slots[node.index()];
                if !slot.up || slot.incarnation != incarnation {
                    return;
                }
                if let Some(n) = slot.node.as_mut() {
                    self.stats.send_failures += 1;
                    self.digest
                        .record(&[now.as_micros(), 3, u64::from(node.0), u64::from(to.0)]);
                    n.handle_input(now, Input::SendFailed { to });
                    self.settle(node);
                }
            }
            Due::Action(i) => {
                if let Some(a) = self.actions.take(i) {
                    self.stats.actions += 1;
                    self.act(a);
                }
            }
        }
    }

    fn deliver(&mut self, m: InFlight) {
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
                let back = self.network.placement().one_way_us(m.to, m.from);
                self.queue.push(
                    now + core::time::Duration::from_micros(back),
                    Due::SendFailed {
                        node: m.from,
                        incarnation: m.from_incarnation,
                        to: m.to,
                    },
                );
            }
            return;
        }
        self.metrics
            .received(m.to.index(), m.class as usize, u64::from(m.bytes));
        self.digest.record(&[
            now.as_micros(),
            1,
            u64::from(m.from.0) << 32 | u64::from(m.to.0),
            m.msg.rpc.0,
            u64::from(m.bytes),
        ]);
        let msg = match slot.behaviour.as_mut() {
            Some(b) => match b.inbound(now, m.from, m.msg) {
                Some(msg) => msg,
                None => {
                    self.stats.intercepted += 1;
                    return;
                }
            },
            None => m.msg,
        };
        let Some(node) = slot.node.as_mut() else {
            return;
        };
        self.stats.delivered += 1;
        node.handle_input(now, Input::Message { from: m.from, msg });
        self.settle(m.to);
    }

    fn wake(&mut self, idx: NodeIdx) {
        let now = self.now;
        let slot = &mut self.slots[idx.index()];
        if slot.timer_at != now {
            self.stats.stale_wakes += 1;
            return;
        }
        slot.timer_at = Time::MAX;
        if !slot.up {
            // Timers sleep while the node is down; the rejoin's drain re-arms them.
            return;
        }
        let due = slot.deadline <= now;
        let Some(node) = slot.node.as_mut() else {
            return;
        };
        if due {
            self.stats.timeouts += 1;
            self.digest.record(&[now.as_micros(), 2, u64::from(idx.0)]);
            node.handle_input(now, Input::Timeout);
        } else {
            self.stats.rearmed += 1;
        }
        self.settle(idx);
    }

    /// Drains a node with the protocol's one loop, then arms its timer.
    fn settle(&mut self, idx: NodeIdx) {
        let now = self.now;
        let Some(mut node) = self.slots[idx.index()].node.take() else {
            return;
        };
        let next = drain(&mut node, now, &mut SimIo { sim: self, idx });
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

    fn send(&mut self, from: NodeIdx, t: Transmit<NodeIdx>) {
        let Transmit { to, msg } = t;
        let msg = if self.config.network.codec_roundtrip {
            roundtrip(msg)
        } else {
            msg
        };
        let class = class_index(msg.body.class());
        let bytes = msg.encoded_len() as u64 + u64::from(self.config.network.overhead_bytes);
        self.metrics.sent(from.index(), class, bytes);
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
                    msg,
                });
                self.queue.push(at, Due::Deliver(i));
            }
            Fate::Lost => self.stats.lost += 1,
            Fate::Partitioned => self.stats.partitioned += 1,
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
    fn transmit(&mut self, _: &mut Node<NodeIdx>, now: Time, t: Transmit<NodeIdx>) {
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
        sim.send(self.idx, t);
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

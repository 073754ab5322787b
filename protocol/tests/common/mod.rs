//! An in-memory network of protocol nodes, driven only through the public API
//! (the quinn `Pair` idea, scaled up). Shared by the integration-test binaries.

// Each test binary uses a different part of the harness.
#![allow(dead_code)]

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use bytes::Bytes;
use distroweb_protocol::content::{read_file, read_manifest};
use distroweb_protocol::ContentStore;
use distroweb_protocol::{
    drain, Body, Config, Driver, Event, FetchError, FetchId, FetchStats, Id, Input, Manifest,
    MemoryStore, Message, Node, QueryId, ReadError, StoreOp, Time, Transmit,
};
use rand_chacha::ChaCha12Rng;
use rand_core::{RngCore, SeedableRng};

enum Due {
    Deliver {
        to: u32,
        from: u32,
        msg: Message<u32>,
    },
    Wake {
        node: u32,
    },
}

/// Rewrites a message a node sends, before the network carries it (a test's
/// hook for making a node lie).
pub type Rewrite = Box<dyn FnMut(u32, &mut Message<u32>)>;

/// A tiny deterministic network: one queue ordered by (time, sequence).
pub struct Net {
    pub nodes: Vec<Node<u32>>,
    /// Each node's store, answering its storage operations at once.
    pub stores: Vec<MemoryStore>,
    /// The wake-up time each node last asked for; stale wake-ups are skipped.
    wake_at: Vec<Option<Time>>,
    queue: BinaryHeap<Reverse<(Time, u64, usize)>>,
    slots: Vec<Option<Due>>,
    seq: u64,
    pub now: Time,
    pub events: Vec<(u32, Event<u32>)>,
    pub delivered: u64,
    /// Nodes that left: nothing reaches them, nothing leaves them.
    pub down: Vec<bool>,
    pub rewrite: Option<Rewrite>,
    /// Link speed for block payloads, bytes per second (latency is added on top).
    pub link_bytes_per_s: u64,
}

impl Net {
    /// `n` nodes with one configuration.
    pub fn new(n: usize, config: &Config, seed: u64) -> Net {
        Net::with_configs(vec![config.clone(); n], seed)
    }

    /// One node per configuration.
    pub fn with_configs(configs: Vec<Config>, seed: u64) -> Net {
        let mut rng = ChaCha12Rng::seed_from_u64(seed);
        let n = configs.len();
        let nodes = configs
            .into_iter()
            .enumerate()
            .map(|(i, config)| {
                Node::new(
                    config,
                    Id::random(&mut rng),
                    i as u32,
                    rng.next_u64(),
                    Time::ZERO,
                )
                .unwrap()
            })
            .collect();
        Net {
            nodes,
            stores: (0..n).map(|_| MemoryStore::default()).collect(),
            wake_at: vec![None; n],
            queue: BinaryHeap::new(),
            slots: Vec::new(),
            seq: 0,
            now: Time::ZERO,
            events: Vec::new(),
            delivered: 0,
            down: vec![false; n],
            rewrite: None,
            link_bytes_per_s: 12_500_000,
        }
    }

    /// Joins: every node bootstraps from a random node that joined at least a
    /// second earlier (an established peer, as a real seed would be), 20 ms
    /// apart; then the network settles for 30 s.
    pub fn join_all(&mut self, rng: &mut ChaCha12Rng) {
        let n = self.nodes.len() as u32;
        for i in 1..n {
            let seed_node = (rng.next_u64() % (i as u64).saturating_sub(50).max(1)) as u32;
            self.command(i, |node, now| node.bootstrap(now, &[seed_node]).unwrap());
            self.run_for(Duration::from_millis(20));
        }
        self.run_for(Duration::from_secs(30));
        for i in 1..n {
            assert!(
                !self.nodes[i as usize].routing_table().is_empty(),
                "node {i} joined nobody"
            );
        }
    }

    fn push(&mut self, at: Time, due: Due) {
        self.slots.push(Some(due));
        self.queue
            .push(Reverse((at, self.seq, self.slots.len() - 1)));
        self.seq += 1;
    }

    /// One-way delay between two nodes: 5–80 ms, fixed per pair.
    fn delay(a: u32, b: u32) -> Duration {
        let (x, y) = (a.min(b) as u64, a.max(b) as u64);
        let h =
            (x.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ y.wrapping_mul(0xC2B2_AE3D_27D4_EB4F)) >> 40;
        Duration::from_micros(5_000 + h % 75_000)
    }

    /// Drains node `i` with the protocol's one loop, then checks its invariants.
    pub fn settle(&mut self, i: u32) {
        let mut io = Collect {
            store: &mut self.stores[i as usize],
            transmits: Vec::new(),
            events: Vec::new(),
        };
        let next = drain(&mut self.nodes[i as usize], self.now, &mut io);
        let Collect {
            transmits, events, ..
        } = io;
        self.nodes[i as usize].check_invariants();
        for mut t in transmits {
            if self.down[i as usize] {
                continue;
            }
            if let Some(rewrite) = self.rewrite.as_mut() {
                rewrite(i, &mut t.msg);
            }
            let mut at = self.now + Self::delay(i, t.to);
            if let Body::Block { data, .. } = &t.msg.body {
                at += Duration::from_micros(
                    data.0.len() as u64 * 1_000_000 / self.link_bytes_per_s.max(1),
                );
            }
            self.push(
                at,
                Due::Deliver {
                    to: t.to,
                    from: i,
                    msg: t.msg,
                },
            );
        }
        self.events.extend(events.into_iter().map(|e| (i, e)));
        if Some(next) != self.wake_at[i as usize] {
            self.wake_at[i as usize] = Some(next);
            self.push(next.max(self.now), Due::Wake { node: i });
        }
    }

    pub fn run_until(&mut self, until: Time) {
        while let Some(&Reverse((at, _, slot))) = self.queue.peek() {
            if at > until {
                break;
            }
            self.queue.pop();
            self.now = at;
            match self.slots[slot].take() {
                Some(Due::Deliver { to, .. }) if self.down[to as usize] => {}
                Some(Due::Deliver { to, from, msg }) => {
                    self.delivered += 1;
                    self.nodes[to as usize].handle_input(at, Input::Message { from, msg });
                    self.settle(to);
                }
                Some(Due::Wake { node }) if self.wake_at[node as usize] == Some(at) => {
                    self.wake_at[node as usize] = None;
                    if !self.down[node as usize] {
                        self.nodes[node as usize].handle_input(at, Input::Timeout);
                        self.settle(node);
                    }
                }
                Some(Due::Wake { .. }) => {}
                None => {}
            }
        }
        self.now = until;
    }

    pub fn run_for(&mut self, d: Duration) {
        let t = self.now + d;
        self.run_until(t);
    }

    /// Runs a command on node `i` at the current time and drains it.
    pub fn command<T>(&mut self, i: u32, f: impl FnOnce(&mut Node<u32>, Time) -> T) -> T {
        let now = self.now;
        let out = f(&mut self.nodes[i as usize], now);
        self.settle(i);
        out
    }

    pub fn finished(&self, node: u32, q: QueryId) -> Option<&Event<u32>> {
        self.events
            .iter()
            .find(|(n, e)| *n == node && matches!(e, Event::QueryFinished { id, .. } if *id == q))
            .map(|(_, e)| e)
    }

    /// How fetch `f` on `node` ended, if it did.
    pub fn fetch_result(
        &self,
        node: u32,
        f: FetchId,
    ) -> Option<(&Result<Manifest, FetchError>, &FetchStats<u32>)> {
        self.events.iter().find_map(|(n, e)| match e {
            Event::FetchFinished {
                id, result, stats, ..
            } if *n == node && *id == f => Some((result, stats)),
            _ => None,
        })
    }

    /// The chunks `node` reported for `file` in fetch `f`, concatenated in the
    /// order reported (checking that each starts where the last ended).
    pub fn streamed(&self, node: u32, f: FetchId, file: Id) -> Vec<u8> {
        let mut out = Vec::new();
        for (n, e) in &self.events {
            if let Event::ChunkVerified {
                fetch,
                file: fl,
                offset,
                id,
                len,
                ..
            } = e
            {
                if *n == node && *fetch == f && *fl == file {
                    assert_eq!(*offset, out.len() as u64, "chunks out of order");
                    let data = self.stores[node as usize]
                        .get(id)
                        .unwrap()
                        .expect("a reported chunk is in the store");
                    assert_eq!(data.len(), *len as usize);
                    out.extend_from_slice(&data);
                }
            }
        }
        out
    }

    /// The whole file `id` as node `i`'s store holds it.
    pub fn read_file(&self, i: u32, id: &Id) -> Result<Bytes, ReadError> {
        read_file(&self.stores[i as usize], id)
    }

    /// The manifest `id` as node `i`'s store holds it.
    pub fn read_manifest(&self, i: u32, id: &Id) -> Result<Manifest, ReadError> {
        read_manifest(&self.stores[i as usize], id)
    }

    /// Takes node `i` off the network.
    pub fn take_down(&mut self, i: u32) {
        self.down[i as usize] = true;
    }
}

/// A driver that keeps what a node sends and says, and answers its storage
/// operations from a memory store at once.
pub struct Collect<'a> {
    pub store: &'a mut MemoryStore,
    pub transmits: Vec<Transmit<u32>>,
    pub events: Vec<Event<u32>>,
}

impl Driver<u32> for Collect<'_> {
    fn transmit(&mut self, _: &mut Node<u32>, _: Time, t: Transmit<u32>) {
        self.transmits.push(t);
    }

    fn store(&mut self, node: &mut Node<u32>, now: Time, op: StoreOp) {
        let done = self.store.apply(op);
        node.handle_input(now, Input::Stored(done));
    }

    fn event(&mut self, _: &mut Node<u32>, _: Time, e: Event<u32>) {
        self.events.push(e);
    }
}

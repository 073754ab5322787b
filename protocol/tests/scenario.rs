//! Hundreds of nodes exchanging messages through an in-memory network, driven
//! only through the public API (the quinn `Pair` idea, scaled up).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use distroweb_protocol::{
    Config, Event, Id, Message, Metric, Node, QueryError, QueryId, QueryKind, QueryOutput,
    Strategy, Time,
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

/// A tiny deterministic network: one queue ordered by (time, sequence).
struct Net {
    nodes: Vec<Node<u32>>,
    /// The wake-up time each node last asked for; stale wake-ups are skipped.
    wake_at: Vec<Option<Time>>,
    queue: BinaryHeap<Reverse<(Time, u64, usize)>>,
    slots: Vec<Option<Due>>,
    seq: u64,
    now: Time,
    events: Vec<(u32, Event<u32>)>,
    delivered: u64,
}

impl Net {
    fn new(n: usize, config: &Config, seed: u64) -> Net {
        let mut rng = ChaCha12Rng::seed_from_u64(seed);
        let nodes = (0..n as u32)
            .map(|i| {
                Node::new(
                    config.clone(),
                    Id::random(&mut rng),
                    i,
                    rng.next_u64(),
                    Time::ZERO,
                )
                .unwrap()
            })
            .collect();
        Net {
            nodes,
            wake_at: vec![None; n],
            queue: BinaryHeap::new(),
            slots: Vec::new(),
            seq: 0,
            now: Time::ZERO,
            events: Vec::new(),
            delivered: 0,
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

    /// The drain contract: transmits, then events, then the timeout.
    fn drain(&mut self, i: u32) {
        while let Some(t) = self.nodes[i as usize].poll_transmit() {
            let at = self.now + Self::delay(i, t.to);
            self.push(
                at,
                Due::Deliver {
                    to: t.to,
                    from: i,
                    msg: t.msg,
                },
            );
        }
        while let Some(e) = self.nodes[i as usize].poll_event() {
            self.events.push((i, e));
        }
        let next = self.nodes[i as usize].poll_timeout();
        if next != self.wake_at[i as usize] {
            self.wake_at[i as usize] = next;
            if let Some(t) = next {
                self.push(t.max(self.now), Due::Wake { node: i });
            }
        }
    }

    fn run_until(&mut self, until: Time) {
        while let Some(&Reverse((at, _, slot))) = self.queue.peek() {
            if at > until {
                break;
            }
            self.queue.pop();
            self.now = at;
            match self.slots[slot].take() {
                Some(Due::Deliver { to, from, msg }) => {
                    self.delivered += 1;
                    self.nodes[to as usize].handle_message(at, from, msg);
                    self.drain(to);
                }
                Some(Due::Wake { node }) if self.wake_at[node as usize] == Some(at) => {
                    self.wake_at[node as usize] = None;
                    self.nodes[node as usize].handle_timeout(at);
                    self.drain(node);
                }
                Some(Due::Wake { .. }) => {}
                None => {}
            }
        }
        self.now = until;
    }

    fn command(&mut self, i: u32, f: impl FnOnce(&mut Node<u32>, Time) -> QueryId) -> QueryId {
        let now = self.now;
        let q = f(&mut self.nodes[i as usize], now);
        self.drain(i);
        q
    }

    fn finished(&self, node: u32, q: QueryId) -> Option<&Event<u32>> {
        self.events
            .iter()
            .find(|(n, e)| *n == node && matches!(e, Event::QueryFinished { id, .. } if *id == q))
            .map(|(_, e)| e)
    }
}

struct Outcome {
    lookups: usize,
    found: usize,
    hops: Vec<u32>,
    failures: Vec<QueryError>,
    trace: Vec<String>,
}

/// Builds an `n`-node network, announces keys, then looks them up.
fn scenario(n: usize, metric: Metric, strategy: Strategy, seed: u64, lookups: usize) -> Outcome {
    let config = Config {
        metric,
        strategy,
        ..Config::default()
    };
    let mut net = Net::new(n, &config, seed);
    let mut rng = ChaCha12Rng::seed_from_u64(seed ^ 0xD15C0);
    // Joins: every node bootstraps from a random node that joined at least a
    // second earlier (an established peer, as a real seed would be), 20 ms apart.
    for i in 1..n as u32 {
        let seed_node = (rng.next_u64() % (i as u64).saturating_sub(50).max(1)) as u32;
        net.command(i, |node, now| node.bootstrap(now, &[seed_node]).unwrap());
        let t = net.now + Duration::from_millis(20);
        net.run_until(t);
    }
    let t = net.now + Duration::from_secs(30);
    net.run_until(t);
    for i in 1..n as u32 {
        assert!(
            !net.nodes[i as usize].routing_table().is_empty(),
            "node {i} joined nobody"
        );
    }
    // Announcements: 100 keys from random nodes.
    let mut keys = Vec::new();
    for _ in 0..100 {
        let who = (rng.next_u64() % n as u64) as u32;
        let key = Id::random(&mut rng);
        let q = net.command(who, |node, now| node.announce(now, key).unwrap());
        keys.push((who, key, q));
    }
    let t = net.now + Duration::from_secs(30);
    net.run_until(t);
    for &(who, _, q) in &keys {
        match net.finished(who, q) {
            Some(Event::QueryFinished {
                result: Ok(QueryOutput::Announced { stored }),
                ..
            }) => {
                assert!(*stored >= 1)
            }
            other => panic!("announce did not finish well: {other:?}"),
        }
    }
    // Lookups: random nodes look for random announced keys, 10 ms apart.
    let mut asked = Vec::new();
    for _ in 0..lookups {
        let who = (rng.next_u64() % n as u64) as u32;
        let (_, key, _) = keys[(rng.next_u64() % keys.len() as u64) as usize];
        let q = net.command(who, |node, now| node.find_providers(now, key).unwrap());
        asked.push((who, key, q));
        let t = net.now + Duration::from_millis(10);
        net.run_until(t);
    }
    let t = net.now + Duration::from_secs(120);
    net.run_until(t);
    let mut out = Outcome {
        lookups,
        found: 0,
        hops: Vec::new(),
        failures: Vec::new(),
        trace: Vec::new(),
    };
    for &(who, key, q) in &asked {
        match net.finished(who, q) {
            Some(Event::QueryFinished {
                kind: QueryKind::FindProviders,
                result: Ok(QueryOutput::Providers(p)),
                stats,
                ..
            }) => {
                // The announcer of this key must be among the providers.
                let announcers: Vec<u32> = keys
                    .iter()
                    .filter(|(_, k, _)| *k == key)
                    .map(|(w, _, _)| *w)
                    .collect();
                assert!(
                    p.iter().any(|c| announcers.contains(&c.addr)),
                    "wrong providers {p:?}"
                );
                out.found += 1;
                out.hops.push(stats.hops);
            }
            Some(Event::QueryFinished { result: Err(e), .. }) => out.failures.push(*e),
            other => panic!("lookup did not finish: {other:?}"),
        }
    }
    out.trace = net
        .events
        .iter()
        .map(|(n, e)| format!("{n}:{e:?}"))
        .collect();
    out.trace.push(format!("delivered={}", net.delivered));
    out
}

fn check(n: usize, metric: Metric, strategy: Strategy, min_success: f64) {
    let o = scenario(n, metric, strategy, 7, 1000);
    let rate = o.found as f64 / o.lookups as f64;
    let mean = o.hops.iter().map(|&h| h as f64).sum::<f64>() / o.hops.len().max(1) as f64;
    let log2n = (n as f64).log2();
    println!(
        "{metric}/{strategy:?}: n={n} success={:.4} mean_hops={mean:.2} log2(n)={log2n:.2} failures={:?}",
        rate, o.failures
    );
    assert!(
        rate >= min_success,
        "{metric}/{strategy:?}: success {rate} < {min_success}"
    );
    assert!(
        mean > 0.0 && mean <= log2n,
        "{metric}/{strategy:?}: mean hops {mean} vs log2 n {log2n}"
    );
}

#[test]
fn xor_iterative_lookups_succeed() {
    check(500, Metric::Xor, Strategy::Iterative, 0.999);
}

#[test]
fn xor_recursive_lookups_succeed() {
    check(500, Metric::Xor, Strategy::Recursive, 0.99);
}

#[test]
fn hamming_iterative_lookups_succeed() {
    check(500, Metric::Hamming, Strategy::Iterative, 0.99);
}

#[test]
fn hamming_recursive_lookups_succeed() {
    check(500, Metric::Hamming, Strategy::Recursive, 0.99);
}

#[test]
fn same_seed_same_events_other_seed_different() {
    let a = scenario(200, Metric::Xor, Strategy::Iterative, 11, 100).trace;
    let b = scenario(200, Metric::Xor, Strategy::Iterative, 11, 100).trace;
    let c = scenario(200, Metric::Xor, Strategy::Iterative, 12, 100).trace;
    assert_eq!(a, b);
    assert_ne!(a, c);
    let a = scenario(200, Metric::Hamming, Strategy::Recursive, 11, 100).trace;
    let b = scenario(200, Metric::Hamming, Strategy::Recursive, 11, 100).trace;
    assert_eq!(a, b);
}

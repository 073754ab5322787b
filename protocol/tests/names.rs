//! Names through the protocol: a small network of nodes wired in memory, a
//! publisher, readers, and trackers fed hostile records by hand.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use distroweb_protocol::names::{NameKey, NameRecord, Signature};
use distroweb_protocol::Reach;
use distroweb_protocol::{
    drain, Body, CommandError, Config, Contact, Event, Id, Input, Message, Misbehaviour, Node,
    QueryError, QueryId, QueryOutput, RpcId, Time, Transmit,
};

/// Calendar time at the start of every test (Unix seconds).
const EPOCH: u64 = 1_800_000_000;
/// One way, between any two nodes.
const LATENCY: Duration = Duration::from_millis(20);

fn secret(n: u8) -> [u8; 32] {
    [n; 32]
}

fn root(n: u32) -> Id {
    Id::hash_of(&n.to_le_bytes())
}

fn record(key: u8, seq: u64, site: u32) -> NameRecord {
    NameRecord::sign(&secret(key), root(site), seq, EPOCH + 24 * 3600)
}

mod common;
use common::Collect;

/// Nodes at addresses 0..n, every message delayed by [`LATENCY`], time
/// moved by the earliest delivery or timeout; deterministic.
struct Net {
    nodes: Vec<Node<u32>>,
    up: Vec<bool>,
    now: Time,
    /// (delivery time, sequence) -> (to, from, message)
    queue: BTreeMap<(Time, u64), (u32, u32, Message<u32>)>,
    seq: u64,
    timeouts: Vec<Time>,
    events: Vec<(u32, Event<u32>)>,
    /// One way, between any two nodes.
    latency: Duration,
}

impl Net {
    /// `n` nodes that all know each other.
    fn new(n: u32, config: Config) -> Net {
        let mut nodes: Vec<Node<u32>> = (0..n)
            .map(|a| {
                let id = Id::hash_of(format!("node {a}").as_bytes());
                let mut node = Node::new(config.clone(), id, a, u64::from(a), Time::ZERO)
                    .expect("the config is valid");
                node.set_calendar(Time::ZERO, EPOCH);
                node
            })
            .collect();
        let contacts: Vec<Contact<u32>> = nodes.iter().map(|n| n.contact()).collect();
        for node in &mut nodes {
            for c in &contacts {
                if c.id != node.id() {
                    node.add_contact(Time::ZERO, c.clone());
                }
            }
        }
        let mut net = Net {
            up: vec![true; nodes.len()],
            timeouts: vec![Time::ZERO; nodes.len()],
            nodes,
            now: Time::ZERO,
            queue: BTreeMap::new(),
            seq: 0,
            events: Vec::new(),
            latency: LATENCY,
        };
        for a in 0..n {
            net.drain(a);
        }
        net
    }

    fn drain(&mut self, a: u32) {
        let mut io = Collect::default();
        let now = self.now;
        let node = &mut self.nodes[a as usize];
        self.timeouts[a as usize] = drain(node, now, &mut io);
        for t in io.transmits {
            self.seq += 1;
            self.queue
                .insert((now + self.latency, self.seq), (t.to, a, t.msg));
        }
        self.events.extend(io.events.into_iter().map(|e| (a, e)));
    }

    /// Runs until `until`, delivering messages and timeouts in time order.
    fn run_until(&mut self, until: Time) {
        loop {
            let next_msg = self.queue.keys().next().map(|(t, _)| *t);
            let next_timeout = (0..self.nodes.len())
                .filter(|&a| self.up[a])
                .map(|a| (self.timeouts[a], a))
                .min();
            let msg_first = match (next_msg, next_timeout) {
                (Some(m), Some((t, _))) => m <= t,
                (Some(_), None) => true,
                (None, _) => false,
            };
            if msg_first {
                let Some(((at, _), (to, from, msg))) = self.queue.pop_first() else {
                    return;
                };
                if at > until {
                    self.queue.insert((at, 0), (to, from, msg));
                    break;
                }
                self.now = at;
                if self.up[to as usize] {
                    self.nodes[to as usize].handle_input(
                        at,
                        Input::Message {
                            from,
                            msg,
                            reach: Reach::Direct,
                        },
                    );
                    self.drain(to);
                } else {
                    // A dead peer: its sender hears the send failed.
                    self.nodes[from as usize].handle_input(at, Input::SendFailed { to });
                    self.drain(from);
                }
            } else if let Some((at, a)) = next_timeout {
                if at > until {
                    break;
                }
                self.now = at;
                self.nodes[a].handle_input(at, Input::Timeout);
                self.drain(a as u32);
            } else {
                break;
            }
        }
        self.now = until;
    }

    fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until);
    }

    fn publish(&mut self, a: u32, r: NameRecord) -> QueryId {
        let now = self.now;
        let q = self.nodes[a as usize]
            .publish_name(now, r)
            .expect("a valid record publishes");
        self.drain(a);
        q
    }

    fn resolve(&mut self, a: u32, name: NameKey) -> QueryId {
        let now = self.now;
        let q = self.nodes[a as usize]
            .resolve_name(now, name)
            .expect("resolution starts");
        self.drain(a);
        q
    }

    /// The result of query `q` at node `a`, with its start and end.
    fn result(
        &self,
        a: u32,
        q: QueryId,
    ) -> Option<(Result<QueryOutput<u32>, QueryError>, Time, Time)> {
        self.events.iter().find_map(|(at, e)| match e {
            Event::QueryFinished {
                id, result, stats, ..
            } if *at == a && *id == q => Some((result.clone(), stats.started, stats.finished)),
            _ => None,
        })
    }

    fn resolved(&self, a: u32, q: QueryId) -> Option<NameRecord> {
        match self.result(a, q)?.0 {
            Ok(QueryOutput::Name(r)) => Some(r),
            _ => None,
        }
    }

    /// The nodes (by address) that hold a record of `name`, with its sequence.
    fn holders(&self, name: &NameKey) -> BTreeMap<u32, NameRecord> {
        (0..self.nodes.len() as u32)
            .filter_map(|a| Some((a, self.nodes[a as usize].name_record(name)?)))
            .collect()
    }
}

fn config() -> Config {
    let mut c = Config::default();
    c.dht.k = 8.try_into().expect("nonzero");
    c.dht.replication = 4.try_into().expect("nonzero");
    c
}

#[test]
fn a_reader_resolves_the_latest_record_and_sees_an_update() {
    let mut net = Net::new(30, config());
    let first = record(1, 1, 100);
    let q = net.publish(0, first);
    net.run_for(Duration::from_secs(5));
    match net.result(0, q) {
        Some((Ok(QueryOutput::Announced { stored }), _, _)) => assert!(stored >= 4, "{stored}"),
        other => panic!("publication: {other:?}"),
    }
    let q = net.resolve(17, first.name);
    net.run_for(Duration::from_secs(5));
    assert_eq!(net.resolved(17, q), Some(first));

    // The update: the reader's next resolution finds it, though the reader
    // holds the old record (which it tries first) and some trackers may too.
    let second = record(1, 2, 200);
    net.publish(0, second);
    net.run_for(Duration::from_secs(5));
    let q = net.resolve(17, first.name);
    net.run_for(Duration::from_secs(5));
    assert_eq!(net.resolved(17, q), Some(second));
    let (_, started, finished) = net.result(17, q).expect("finished");
    assert!(
        finished.saturating_since(started) < Duration::from_secs(1),
        "a resolution waits briefly, not for every replica: {:?}",
        finished.saturating_since(started)
    );
}

#[test]
fn an_unknown_name_is_not_found() {
    let mut net = Net::new(12, config());
    let q = net.resolve(3, record(9, 1, 1).name);
    net.run_for(Duration::from_secs(20));
    assert!(matches!(
        net.result(3, q),
        Some((Err(QueryError::NotFound), _, _))
    ));
}

#[test]
fn a_stale_tracker_delays_nobody_past_the_grace_and_rolls_nobody_back() {
    let mut net = Net::new(30, config());
    let old = record(2, 1, 1);
    net.publish(0, old);
    net.run_for(Duration::from_secs(5));
    let new = record(2, 2, 2);
    net.publish(0, new);
    net.run_for(Duration::from_secs(5));
    // Every reader that asks finds the new record.
    for reader in [5, 11, 23] {
        let q = net.resolve(reader, old.name);
        net.run_for(Duration::from_secs(5));
        assert_eq!(net.resolved(reader, q), Some(new), "reader {reader}");
    }
    // And no tracker went back to the old one when offered it again.
    // (Node 7 may hold the new record itself and refuse; either way the old
    // one must not win anywhere.)
    let now = net.now;
    let _ = net.nodes[7].publish_name(now, old);
    net.drain(7);
    net.run_for(Duration::from_secs(5));
    for (a, r) in net.holders(&old.name) {
        if a != 7 {
            assert_eq!(r, new, "node {a} holds a rolled-back record");
        }
    }
}

#[test]
fn a_node_refuses_to_publish_a_rollback_it_knows_of() {
    let mut net = Net::new(5, config());
    net.publish(0, record(3, 5, 1));
    let now = net.now;
    assert!(matches!(
        net.nodes[0].publish_name(now, record(3, 4, 1)),
        Err(CommandError::Name(_))
    ));
}

#[test]
fn racing_publishers_with_one_key_converge_on_the_highest_sequence() {
    let mut net = Net::new(30, config());
    // Two machines with one key: the first at 7 twice over, the second at 7
    // (another root) and then at 8; all at once, from opposite ends.
    let a7 = record(4, 7, 70);
    let b7 = record(4, 7, 71);
    let b8 = record(4, 8, 80);
    net.publish(1, a7);
    net.publish(28, b7);
    net.run_for(Duration::from_millis(30));
    net.publish(28, b8);
    net.run_for(Duration::from_secs(10));
    let holders = net.holders(&a7.name);
    assert!(holders.len() >= 5, "{holders:?}");
    for (a, r) in &holders {
        // Node 1 published a7 and nobody told it better: only readers learn.
        if *a != 1 {
            assert_eq!(*r, b8, "node {a}");
        }
    }
    let q = net.resolve(1, a7.name);
    net.run_for(Duration::from_secs(5));
    assert_eq!(net.resolved(1, q), Some(b8));

    // One sequence only, two roots: every tracker picks the same one.
    let mut net = Net::new(30, config());
    net.publish(2, a7);
    net.publish(27, b7);
    net.run_for(Duration::from_secs(10));
    let winner = if a7.supersedes(&b7) { a7 } else { b7 };
    let held: BTreeSet<Id> = net
        .holders(&a7.name)
        .into_iter()
        .filter(|(a, _)| *a != 2 && *a != 27)
        .map(|(_, r)| r.root)
        .collect();
    assert_eq!(held, BTreeSet::from([winner.root]));
    for reader in [2, 27, 13] {
        let q = net.resolve(reader, a7.name);
        net.run_for(Duration::from_secs(5));
        assert_eq!(net.resolved(reader, q), Some(winner), "reader {reader}");
    }
}

#[test]
fn a_reader_keeps_its_record_when_the_publisher_and_every_tracker_are_gone() {
    let mut net = Net::new(20, config());
    let r = record(5, 3, 33);
    net.publish(0, r);
    net.run_for(Duration::from_secs(5));
    let q = net.resolve(9, r.name);
    net.run_for(Duration::from_secs(5));
    assert_eq!(net.resolved(9, q), Some(r));
    for a in net.holders(&r.name).into_keys() {
        if a != 9 {
            net.up[a as usize] = false;
        }
    }
    let q = net.resolve(9, r.name);
    net.run_for(Duration::from_secs(30));
    // What the reader held answers, as soon as the grace is over.
    assert_eq!(net.resolved(9, q), Some(r));
    assert_eq!(net.nodes[9].name_record(&r.name), Some(r));
}

// ---- a tracker fed hostile records by hand ----

/// A tracker at address 0 with calendar time set, and a peer at address 1
/// that has a token from it.
fn tracker() -> (Node<u32>, Contact<u32>, distroweb_protocol::wire::Token) {
    let mut t = Node::new(config(), Id::hash_of(b"tracker"), 0, 1, Time::ZERO).expect("valid");
    t.set_calendar(Time::ZERO, EPOCH);
    let peer = Contact::new(Id::hash_of(b"writer"), 1);
    let (out, _) = feed(
        &mut t,
        &peer,
        Body::GetName {
            name: record(6, 0, 0).name,
        },
    );
    let token = out
        .iter()
        .find_map(|t| match &t.msg.body {
            Body::Name { token, .. } => Some(*token),
            _ => None,
        })
        .expect("a GetName is answered with a token");
    (t, peer, token)
}

fn feed(
    t: &mut Node<u32>,
    peer: &Contact<u32>,
    body: Body<u32>,
) -> (Vec<Transmit<u32>>, Vec<Event<u32>>) {
    let now = t.now() + Duration::from_millis(1);
    t.handle_input(
        now,
        Input::Message {
            from: peer.addr,
            reach: Reach::Direct,
            msg: Message {
                sender: peer.id,
                rpc: RpcId(9),
                body,
            },
        },
    );
    let mut io = Collect::default();
    drain(t, now, &mut io);
    (io.transmits, io.events)
}

fn put(
    t: &mut Node<u32>,
    peer: &Contact<u32>,
    token: distroweb_protocol::wire::Token,
    r: NameRecord,
) -> Vec<Transmit<u32>> {
    feed(
        t,
        peer,
        Body::PutName {
            record: r,
            token: Some(token),
        },
    )
    .0
}

fn stored(out: &[Transmit<u32>]) -> bool {
    out.iter()
        .any(|t| matches!(t.msg.body, Body::NameStored { .. }))
}

#[test]
fn a_tracker_refuses_forged_lower_expired_and_oversized_records_and_keeps_the_good_one() {
    let (mut t, peer, token) = tracker();
    let good = record(6, 10, 1);
    assert!(stored(&put(&mut t, &peer, token, good)));
    assert_eq!(t.name_record(&good.name), Some(good));

    // A bad signature: dropped, the writer charged.
    let mut forged = record(6, 11, 2);
    forged.root = root(666);
    let (out, events) = feed(
        &mut t,
        &peer,
        Body::PutName {
            record: forged,
            token: Some(token),
        },
    );
    assert!(!stored(&out));
    assert!(events.iter().any(|e| matches!(
        e,
        Event::PeerMisbehaved {
            reason: Misbehaviour::BadNameRecord,
            ..
        }
    )));
    // Signed by another key but claiming this name: a bad signature too.
    let mut other = record(7, 99, 3);
    other.name = good.name;
    assert!(!stored(&put(&mut t, &peer, token, other)));
    // A garbage signature.
    let mut garbage = good;
    garbage.seq = 12;
    garbage.signature = Signature([0x55; 64]);
    assert!(!stored(&put(&mut t, &peer, token, garbage)));

    // A lower sequence: refused.
    let lower = record(6, 9, 4);
    let out = put(&mut t, &peer, token, lower);
    assert!(out
        .iter()
        .any(|t| matches!(t.msg.body, Body::RecordRefused { .. })));

    // Expired, and one that claims too long a validity.
    let expired = NameRecord::sign(&secret(6), root(5), 20, EPOCH - 1);
    assert!(!stored(&put(&mut t, &peer, token, expired)));
    let too_long = NameRecord::sign(&secret(6), root(6), 21, EPOCH + 365 * 24 * 3600);
    assert!(!stored(&put(&mut t, &peer, token, too_long)));

    // Oversized: a PutName with bytes past its record does not decode, so
    // it never reaches the node; the typed error says why.
    let mut bytes = Message {
        sender: peer.id,
        rpc: RpcId(1),
        body: Body::<u32>::PutName {
            record: record(6, 30, 7),
            token: Some(token),
        },
    }
    .encode()
    .expect("encodes");
    bytes.extend_from_slice(&[0u8; 4096]);
    assert!(Message::<u32>::decode(&bytes).is_err());

    // Without a token: refused with one.
    let (out, _) = feed(
        &mut t,
        &peer,
        Body::PutName {
            record: record(6, 40, 8),
            token: None,
        },
    );
    assert!(!stored(&out));

    assert_eq!(
        t.name_record(&good.name),
        Some(good),
        "the good record stays"
    );
    // And a higher one is taken.
    let higher = record(6, 11, 9);
    assert!(stored(&put(&mut t, &peer, token, higher)));
    assert_eq!(t.name_record(&good.name), Some(higher));
}

#[test]
fn a_forged_answer_to_a_resolution_is_ignored_and_charged() {
    let mut n = Node::new(config(), Id::hash_of(b"reader"), 0, 1, Time::ZERO).expect("valid");
    n.set_calendar(Time::ZERO, EPOCH);
    let liar = Contact::new(Id::hash_of(b"liar"), 1);
    n.add_contact(Time::ZERO, liar.clone());
    let good = record(8, 1, 1);
    let q = n.resolve_name(Time::ZERO, good.name).expect("starts");
    let mut io = Collect::default();
    drain(&mut n, Time::ZERO, &mut io);
    let ask = io
        .transmits
        .iter()
        .find(|t| matches!(t.msg.body, Body::GetName { .. }))
        .expect("asks the one peer it knows");
    let mut forged = record(8, 50, 2);
    forged.root = root(666);
    let now = Time::ZERO + Duration::from_millis(5);
    n.handle_input(
        now,
        Input::Message {
            from: liar.addr,
            reach: Reach::Direct,
            msg: Message {
                sender: liar.id,
                rpc: ask.msg.rpc,
                body: Body::Name {
                    name: good.name,
                    record: Some(forged),
                    closer: Vec::new(),
                    token: distroweb_protocol::wire::Token([0; 8]),
                },
            },
        },
    );
    let mut io = Collect::default();
    drain(&mut n, now, &mut io);
    assert!(io.events.iter().any(|e| matches!(
        e,
        Event::PeerMisbehaved {
            reason: Misbehaviour::BadNameRecord,
            ..
        }
    )));
    assert!(io.events.iter().any(|e| matches!(
        e,
        Event::QueryFinished { id, result: Err(QueryError::NotFound | QueryError::NoPeers), .. } if *id == q
    )));
    assert_eq!(n.name_record(&good.name), None);
}

#[test]
fn without_a_calendar_names_are_refused_not_guessed() {
    let mut n = Node::<u32>::new(config(), Id::hash_of(b"n"), 0, 1, Time::ZERO).expect("valid");
    assert_eq!(
        n.resolve_name(Time::ZERO, record(1, 1, 1).name),
        Err(CommandError::NoCalendar)
    );
    assert_eq!(
        n.publish_name(Time::ZERO, record(1, 1, 1)),
        Err(CommandError::NoCalendar)
    );
}

#[test]
fn calendar_time_follows_protocol_time() {
    let mut n = Node::<u32>::new(config(), Id::hash_of(b"n"), 0, 1, Time::ZERO).expect("valid");
    n.set_calendar(Time::ZERO, EPOCH);
    assert_eq!(
        n.calendar_at(Time::ZERO + Duration::from_millis(2500)),
        Some(EPOCH + 2)
    );
    // A record that expires while the node runs stops being served.
    let short = NameRecord::sign(&secret(1), root(1), 1, EPOCH + 60);
    n.publish_name(Time::ZERO, short).expect("valid");
    assert_eq!(n.name_record(&short.name), Some(short));
    n.handle_input(Time::ZERO + Duration::from_secs(61), Input::Timeout);
    let now = n.now();
    drain(&mut n, now, &mut Collect::default());
    assert_eq!(n.name_record(&short.name), None);
}

#[test]
fn a_flood_of_fresh_names_fills_only_the_flooders_share() {
    let mut c = config();
    c.records.max_records_per_peer = 50.try_into().expect("nonzero");
    c.records.max_records_per_group = 80.try_into().expect("nonzero");
    c.records.max_names = 120.try_into().expect("nonzero");
    let mut t = Node::new(c, Id::hash_of(b"tracker"), 0, 1, Time::ZERO).expect("valid");
    t.set_calendar(Time::ZERO, EPOCH);
    // Addresses are their own group here: peers 1 and 2 share address 1,
    // so they share a group.
    let flooders = [
        Contact::new(Id::hash_of(b"flooder one"), 1u32),
        Contact::new(Id::hash_of(b"flooder two"), 1u32),
    ];
    let honest = Contact::new(Id::hash_of(b"honest"), 2u32);
    let token_for = |t: &mut Node<u32>, peer: &Contact<u32>| {
        let (out, _) = feed(
            t,
            peer,
            Body::GetName {
                name: record(1, 0, 0).name,
            },
        );
        out.iter()
            .find_map(|t| match &t.msg.body {
                Body::Name { token, .. } => Some(*token),
                _ => None,
            })
            .expect("a token")
    };
    let mut stored_by = [0usize; 2];
    for (i, f) in flooders.iter().enumerate() {
        let token = token_for(&mut t, f);
        for n in 0..100u32 {
            let mut secret = [0u8; 32];
            secret[..4].copy_from_slice(&n.to_le_bytes());
            secret[4] = i as u8 + 1;
            let r = NameRecord::sign(&secret, root(n), 1, EPOCH + 3600);
            if stored(&put(&mut t, f, token, r)) {
                stored_by[i] += 1;
            }
        }
    }
    // One peer fills its share, the two of one group theirs together.
    assert_eq!(stored_by, [50, 30]);
    // An honest writer from elsewhere still gets its name kept, and
    // updated: an update needs no new share.
    let token = token_for(&mut t, &honest);
    let good = record(9, 1, 1);
    assert!(stored(&put(&mut t, &honest, token, good)));
    assert!(stored(&put(&mut t, &honest, token, record(9, 2, 2))));
    assert_eq!(t.name_record(&good.name).map(|r| r.seq), Some(2));
}

#[test]
fn a_reader_holding_an_old_record_still_hears_the_trackers_on_a_slow_network() {
    let mut net = Net::new(30, config());
    let old = record(10, 1, 1);
    net.publish(0, old);
    net.run_for(Duration::from_secs(5));
    let q = net.resolve(21, old.name);
    net.run_for(Duration::from_secs(5));
    assert_eq!(net.resolved(21, q), Some(old));
    let new = record(10, 2, 2);
    net.publish(0, new);
    net.run_for(Duration::from_secs(5));
    assert_eq!(
        net.nodes[21].name_record(&old.name),
        Some(old),
        "21 is no tracker"
    );
    // A round trip now takes longer than the grace: what the reader holds
    // must not start it, or it answers before any tracker does.
    net.latency = Duration::from_millis(120);
    let q = net.resolve(21, old.name);
    net.run_for(Duration::from_secs(10));
    assert_eq!(net.resolved(21, q), Some(new));
}

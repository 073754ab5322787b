//! One node at a time, fed hand-made messages: the failure paths of the protocol
//! (timeouts, dead peers, misbehaving peers, recursive route failures, bounds).
//! Tests of several nodes run on the simulator's harness, in `sim/tests/`.

use std::time::Duration;

use distroweb_protocol::wire::{Route, RouteFailure, RouteOutcome, RouteReply, RouteWant};
use distroweb_protocol::Reach;
use distroweb_protocol::{drain, Driver, Input, MemoryStore, StoreOp};
use distroweb_protocol::{nonzero, DhtConfig, LimitsConfig};
use distroweb_protocol::{
    Body, CommandError, Config, Contact, Event, Id, Message, Misbehaviour, Node, QueryError,
    QueryOutput, RpcId, Strategy, Time, Transmit,
};

/// An id whose first byte is `b` and last byte `tail`: the first byte decides XOR buckets.
fn id(b: u8, tail: u8) -> Id {
    let mut bytes = [0u8; 32];
    bytes[0] = b;
    bytes[31] = tail;
    Id::from_bytes(bytes)
}

const ME: u32 = 0;

fn node(config: Config) -> Node<u32> {
    Node::new(config, id(0, 0), ME, 1, Time::ZERO).unwrap()
}

/// A driver that keeps what the node sends and says, and answers its storage
/// operations from a memory store at once.
#[derive(Default)]
struct Collect {
    store: MemoryStore,
    transmits: Vec<Transmit<u32>>,
    events: Vec<Event<u32>>,
}

impl Driver<u32> for Collect {
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

/// Drains a node with the protocol's one loop, checks its invariants, and
/// returns what it sent and said.
fn outputs(n: &mut Node<u32>) -> (Vec<Transmit<u32>>, Vec<Event<u32>>) {
    let mut io = Collect::default();
    drain(n, n.now(), &mut io);
    n.check_invariants();
    (io.transmits, io.events)
}

/// The inputs these tests feed, by name.
trait Feed {
    fn handle_message(&mut self, now: Time, from: u32, msg: Message<u32>);
    fn handle_timeout(&mut self, now: Time);
    fn handle_send_failed(&mut self, now: Time, to: u32);
    /// When the node next wants `Input::Timeout`; whatever it still had to
    /// send or say is drained and dropped.
    fn next_timeout(&mut self) -> Time;
}

impl Feed for Node<u32> {
    fn handle_message(&mut self, now: Time, from: u32, msg: Message<u32>) {
        self.handle_input(
            now,
            Input::Message {
                from,
                msg,
                reach: Reach::Direct,
            },
        );
    }
    fn handle_timeout(&mut self, now: Time) {
        self.handle_input(now, Input::Timeout);
    }
    fn handle_send_failed(&mut self, now: Time, to: u32) {
        self.handle_input(now, Input::SendFailed { to });
    }
    fn next_timeout(&mut self) -> Time {
        let next = drain(self, self.now(), &mut Collect::default());
        self.check_invariants();
        next
    }
}

/// A token as a peer's reply carries one (these tests never write records).
const TOKEN: distroweb_protocol::wire::Token = distroweb_protocol::wire::Token([0; 8]);

fn msg(sender: Id, rpc: RpcId, body: Body<u32>) -> Message<u32> {
    Message { sender, rpc, body }
}

fn finished(events: &[Event<u32>]) -> Option<&Result<QueryOutput<u32>, QueryError>> {
    events.iter().find_map(|e| match e {
        Event::QueryFinished { result, .. } => Some(result),
        _ => None,
    })
}

#[test]
fn unsolicited_reply_is_dropped_and_reported() {
    let mut n = node(Config::default());
    n.handle_message(Time::ZERO, 5, msg(id(5, 0), RpcId(99), Body::Pong));
    let (t, e) = outputs(&mut n);
    assert!(t.is_empty());
    assert!(matches!(
        e.as_slice(),
        [Event::PeerMisbehaved {
            reason: Misbehaviour::UnsolicitedReply,
            ..
        }]
    ));
    assert_eq!(n.counters().misbehaviour, 1);
    assert!(
        n.routing_table().is_empty(),
        "a misbehaving stranger is not added"
    );
}

#[test]
fn reply_from_another_peer_is_unsolicited_and_the_real_one_still_counts() {
    let mut n = node(Config::default());
    let b = Contact::new(id(0x80, 1), 1);
    n.add_contact(Time::ZERO, b.clone());
    n.find_node(Time::ZERO, id(0x80, 9)).unwrap();
    let (t, _) = outputs(&mut n);
    let rpc = t[0].msg.rpc;
    assert_eq!(t[0].to, 1);
    // A third party answers in b's place: refused.
    n.handle_message(
        Time::ZERO,
        7,
        msg(
            id(0x40, 7),
            rpc,
            Body::Nodes {
                closer: vec![],
                token: TOKEN,
            },
        ),
    );
    let (_, e) = outputs(&mut n);
    assert!(matches!(
        e.as_slice(),
        [Event::PeerMisbehaved {
            reason: Misbehaviour::UnsolicitedReply,
            ..
        }]
    ));
    n.handle_message(
        Time::from_millis(5),
        1,
        msg(
            b.id,
            rpc,
            Body::Nodes {
                closer: vec![],
                token: TOKEN,
            },
        ),
    );
    let (_, e) = outputs(&mut n);
    assert_eq!(finished(&e), Some(&Ok(QueryOutput::Closest(vec![b]))));
}

#[test]
fn oversized_list_is_penalised_and_the_lookup_goes_on() {
    let mut n = node(Config {
        dht: DhtConfig {
            k: nonzero!(2),
            replication: nonzero!(2),
            alpha: nonzero!(2),
            ..Default::default()
        },
        ..Config::default()
    });
    let b = Contact::new(id(0x80, 1), 1);
    let c = Contact::new(id(0x40, 2), 2);
    n.add_contact(Time::ZERO, b.clone());
    n.add_contact(Time::ZERO, c.clone());
    n.find_node(Time::ZERO, id(0x80, 9)).unwrap();
    let (t, _) = outputs(&mut n);
    assert_eq!(t.len(), 2);
    let too_many: Vec<Contact<u32>> = (10..13)
        .map(|i| Contact::new(id(0x20, i), i as u32))
        .collect();
    n.handle_message(
        Time::ZERO,
        1,
        msg(
            b.id,
            t[0].msg.rpc,
            Body::Nodes {
                closer: too_many,
                token: TOKEN,
            },
        ),
    );
    let (_, e) = outputs(&mut n);
    assert!(matches!(
        e.as_slice(),
        [Event::PeerMisbehaved {
            reason: Misbehaviour::OversizedList,
            ..
        }]
    ));
    n.handle_message(
        Time::ZERO,
        2,
        msg(
            c.id,
            t[1].msg.rpc,
            Body::Nodes {
                closer: vec![],
                token: TOKEN,
            },
        ),
    );
    let (_, e) = outputs(&mut n);
    assert_eq!(finished(&e), Some(&Ok(QueryOutput::Closest(vec![c]))));
}

#[test]
fn a_timeout_moves_the_lookup_to_the_next_candidate() {
    let mut n = node(Config {
        dht: DhtConfig {
            alpha: nonzero!(1),
            ..Default::default()
        },
        ..Config::default()
    });
    let near = Contact::new(id(0x81, 1), 1);
    let far = Contact::new(id(0x01, 2), 2);
    n.add_contact(Time::ZERO, near.clone());
    n.add_contact(Time::ZERO, far.clone());
    n.find_node(Time::ZERO, id(0x80, 0)).unwrap();
    let (t, _) = outputs(&mut n);
    assert_eq!((t.len(), t[0].to), (1, 1));
    let deadline = n.next_timeout();
    assert_eq!(deadline, Time::ZERO + Config::default().dht.request_timeout);
    n.handle_timeout(deadline);
    let (t, _) = outputs(&mut n);
    assert_eq!((t.len(), t[0].to), (1, 2), "the next candidate is asked");
    n.handle_message(
        deadline,
        2,
        msg(
            far.id,
            t[0].msg.rpc,
            Body::Nodes {
                closer: vec![],
                token: TOKEN,
            },
        ),
    );
    let (_, e) = outputs(&mut n);
    match e.as_slice() {
        [Event::QueryFinished {
            result: Ok(QueryOutput::Closest(c)),
            stats,
            ..
        }] => {
            assert_eq!(c, &vec![far]);
            assert_eq!((stats.requests, stats.failures, stats.replies), (2, 1, 1));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_query_that_runs_past_its_deadline_times_out() {
    // One request at a time, each given 3 s: the first candidate times out at
    // 3 s, the second is still pending at the query's 5 s deadline.
    let config = Config {
        dht: DhtConfig {
            query_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(3),
            alpha: nonzero!(1),
            ..Default::default()
        },
        ..Config::default()
    };
    let mut n = node(config);
    n.add_contact(Time::ZERO, Contact::new(id(0x80, 1), 1));
    n.add_contact(Time::ZERO, Contact::new(id(0x80, 2), 2));
    n.find_providers(Time::ZERO, id(0x80, 9)).unwrap();
    outputs(&mut n);
    n.handle_timeout(Time::from_secs(4));
    assert!(
        outputs(&mut n).1.is_empty(),
        "an early timeout call is harmless"
    );
    n.handle_timeout(Time::from_secs(5));
    let (_, e) = outputs(&mut n);
    assert_eq!(finished(&e), Some(&Err(QueryError::Timeout)));
}

#[test]
fn send_failure_fails_the_request_at_once() {
    let mut n = node(Config::default());
    n.add_contact(Time::ZERO, Contact::new(id(0x80, 1), 1));
    n.find_providers(Time::ZERO, id(0x80, 9)).unwrap();
    outputs(&mut n);
    n.handle_send_failed(Time::from_millis(1), 1);
    let (_, e) = outputs(&mut n);
    assert_eq!(finished(&e), Some(&Err(QueryError::NotFound)));
}

#[test]
fn the_head_of_a_full_bucket_is_pinged_and_evicted_if_silent() {
    let mut n = node(Config {
        dht: DhtConfig {
            k: nonzero!(1),
            replication: nonzero!(1),
            alpha: nonzero!(1),
            ..Default::default()
        },
        ..Config::default()
    });
    let old = Contact::new(id(0x80, 1), 1);
    let new = Contact::new(id(0x81, 2), 2);
    n.add_contact(Time::ZERO, old.clone());
    // The newcomer pings us: we answer it and ping the old contact.
    n.handle_message(Time::ZERO, 2, msg(new.id, RpcId(5), Body::Ping));
    let (t, _) = outputs(&mut n);
    assert_eq!(t.len(), 2);
    assert!(t.iter().any(|x| x.to == 2 && x.msg.body == Body::Pong));
    assert!(t.iter().any(|x| x.to == 1 && x.msg.body == Body::Ping));
    assert!(n.routing_table().contains(&old.id) && !n.routing_table().contains(&new.id));
    let t = n.next_timeout();
    n.handle_timeout(t);
    assert!(!n.routing_table().contains(&old.id) && n.routing_table().contains(&new.id));
}

#[test]
fn a_live_head_is_kept() {
    let mut n = node(Config {
        dht: DhtConfig {
            k: nonzero!(1),
            replication: nonzero!(1),
            alpha: nonzero!(1),
            ..Default::default()
        },
        ..Config::default()
    });
    let old = Contact::new(id(0x80, 1), 1);
    n.add_contact(Time::ZERO, old.clone());
    n.handle_message(Time::ZERO, 2, msg(id(0x81, 2), RpcId(5), Body::Ping));
    let (t, _) = outputs(&mut n);
    let ping = t.iter().find(|x| x.to == 1).unwrap();
    n.handle_message(
        Time::from_millis(3),
        1,
        msg(old.id, ping.msg.rpc, Body::Pong),
    );
    n.handle_timeout(Time::from_secs(10));
    assert!(n.routing_table().contains(&old.id));
    assert!(!n.routing_table().contains(&id(0x81, 2)));
}

fn recursive() -> Config {
    Config {
        dht: DhtConfig {
            strategy: Strategy::Recursive,
            ..Default::default()
        },
        ..Config::default()
    }
}

#[test]
fn recursive_route_with_no_acknowledging_hop_is_a_dead_end() {
    let mut n = node({
        let mut config = recursive();
        config.routing.route_attempts = nonzero!(2);
        config
    });
    n.add_contact(Time::ZERO, Contact::new(id(0x80, 1), 1));
    n.add_contact(Time::ZERO, Contact::new(id(0x90, 2), 2));
    n.find_providers(Time::ZERO, id(0x80, 0)).unwrap();
    let (t, _) = outputs(&mut n);
    assert!(matches!(&t[0].msg.body, Body::Route(r) if r.path.len() == 1));
    let mut now = Time::ZERO;
    for _ in 0..2 {
        now = n.next_timeout();
        n.handle_timeout(now);
    }
    let (_, e) = outputs(&mut n);
    assert_eq!(
        finished(&e),
        Some(&Err(QueryError::Route(RouteFailure::DeadEnd)))
    );
    assert!(now < Time::from_secs(10));
}

#[test]
fn a_route_that_comes_back_is_a_loop() {
    let mut n = node(recursive());
    let x = Contact::new(id(0x40, 1), 1);
    let y = Contact::new(id(0x20, 2), 2);
    let route = Route {
        tag: 3,
        target: id(0x80, 0),
        want: RouteWant::Providers,
        path: vec![x.clone(), n.contact(), y.clone()],
        frontier: Vec::new(),
        messages: 1,
    };
    n.handle_message(Time::ZERO, 2, msg(y.id, RpcId(8), Body::Route(route)));
    let (t, _) = outputs(&mut n);
    assert!(t
        .iter()
        .any(|m| m.to == 2 && m.msg.body == Body::RouteAck && m.msg.rpc == RpcId(8)));
    let reply = t.iter().find_map(|m| match &m.msg.body {
        Body::RouteReply(r) => Some((m.to, r.clone())),
        _ => None,
    });
    match reply {
        Some((
            2,
            RouteReply {
                outcome: RouteOutcome::Failed(RouteFailure::Loop),
                path,
                ..
            },
        )) => {
            assert_eq!(path.len(), 4)
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_route_at_the_hop_limit_fails_with_hop_limit() {
    let mut n = node({
        let mut config = recursive();
        config.routing.max_route_hops = nonzero!(1);
        config
    });
    n.add_contact(Time::ZERO, Contact::new(id(0x80, 1), 1));
    let x = Contact::new(id(0x40, 9), 9);
    let route = Route {
        tag: 1,
        target: id(0x80, 0),
        want: RouteWant::Closest,
        path: vec![x.clone()],
        frontier: Vec::new(),
        messages: 1,
    };
    n.handle_message(Time::ZERO, 9, msg(x.id, RpcId(1), Body::Route(route)));
    let (t, _) = outputs(&mut n);
    assert!(t.iter().any(|m| matches!(&m.msg.body,
        Body::RouteReply(RouteReply { outcome: RouteOutcome::Failed(RouteFailure::HopLimit), .. }) if m.to == 9)));
}

#[test]
fn a_route_whose_path_does_not_end_with_its_sender_is_refused() {
    let mut n = node(recursive());
    let route = Route {
        tag: 1,
        target: id(0x80, 0),
        want: RouteWant::Closest,
        path: vec![Contact::new(id(0x40, 9), 9)],
        frontier: Vec::new(),
        messages: 1,
    };
    n.handle_message(
        Time::ZERO,
        4,
        msg(id(0x41, 4), RpcId(1), Body::Route(route)),
    );
    let (t, e) = outputs(&mut n);
    assert!(t.is_empty());
    assert!(matches!(
        e.as_slice(),
        [Event::PeerMisbehaved {
            reason: Misbehaviour::MalformedPath,
            ..
        }]
    ));
}

#[test]
fn commands_past_the_query_bound_are_refused() {
    let mut n = node(Config {
        limits: LimitsConfig {
            max_queries: nonzero!(1),
            ..Default::default()
        },
        ..Config::default()
    });
    n.add_contact(Time::ZERO, Contact::new(id(0x80, 1), 1));
    n.find_node(Time::ZERO, id(1, 1)).unwrap();
    assert_eq!(
        n.find_node(Time::ZERO, id(2, 2)),
        Err(CommandError::TooManyQueries { max: 1 })
    );
}

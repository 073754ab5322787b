//! Adaptive request timeouts (`dht.adaptive_timeouts`), one node fed
//! hand-made messages: a peer whose round trip is known to be about 50 ms
//! times out well before the 2 s `request_timeout`, and the lookup moves on to
//! the next peer; without the option the same script waits the whole 2 s.

use std::time::Duration;

use distroweb_protocol::Reach;
use distroweb_protocol::{drain, Input};
use distroweb_protocol::{
    nonzero, Body, Config, Contact, Event, Id, Message, Node, QueryError, QueryOutput, Time,
    Transmit, UnsampledTimeout,
};

/// An id whose first byte is `b` and last byte `tail`.
fn id(b: u8, tail: u8) -> Id {
    let mut bytes = [0u8; 32];
    bytes[0] = b;
    bytes[31] = tail;
    Id::from_bytes(bytes)
}

mod common;
use common::Collect;

/// What the node sent and said after its last input, and when it next wants
/// `Input::Timeout`.
struct Out {
    transmits: Vec<Transmit<u32>>,
    events: Vec<Event<u32>>,
    next: Time,
}

fn drain_node(n: &mut Node<u32>) -> Out {
    let mut io = Collect::default();
    let next = drain(n, n.now(), &mut io);
    n.check_invariants();
    Out {
        transmits: io.transmits,
        events: io.events,
        next,
    }
}

fn finished(events: &[Event<u32>]) -> Option<&Result<QueryOutput<u32>, QueryError>> {
    events.iter().find_map(|e| match e {
        Event::QueryFinished { result, .. } => Some(result),
        _ => None,
    })
}

fn nodes_reply(sender: Id, to: &Transmit<u32>) -> Input<u32> {
    Input::Message {
        from: to.to,
        reach: Reach::Direct,
        msg: Message {
            sender,
            rpc: to.msg.rpc,
            body: Body::Nodes {
                closer: vec![],
                token: distroweb_protocol::wire::Token([0; 8]),
            },
        },
    }
}

const RTT: Duration = Duration::from_millis(50);

/// B (address 1) near the target, C (address 2) farther; `alpha` = 1, so a
/// lookup asks one peer at a time, B first.
fn config(adaptive: bool) -> Config {
    let mut c = Config::default();
    c.dht.alpha = nonzero!(1);
    c.dht.adaptive_timeouts = adaptive;
    c
}

fn b() -> Contact<u32> {
    Contact::new(id(0x80, 1), 1)
}

fn c() -> Contact<u32> {
    Contact::new(id(0x90, 2), 2)
}

fn target() -> Id {
    id(0x80, 9)
}

/// A node that has asked B five lookups, each answered in 50 ms, then knows C
/// too and starts a lookup whose first request (to B) goes unanswered. Returns
/// the node, that request's send time and what the node said then.
fn silent_b_after_training(adaptive: bool) -> (Node<u32>, Time, Out) {
    let mut n = Node::new(config(adaptive), id(0, 0), 0u32, 1, Time::ZERO).unwrap();
    n.add_contact(Time::ZERO, b());
    let _ = drain_node(&mut n);
    for round in 0..5u64 {
        let t = Time::ZERO + Duration::from_secs(round);
        n.find_node(t, target()).unwrap();
        let out = drain_node(&mut n);
        assert_eq!(out.transmits.len(), 1);
        assert_eq!(out.transmits[0].to, 1);
        n.handle_input(t + RTT, nodes_reply(b().id, &out.transmits[0]));
        let out = drain_node(&mut n);
        assert!(finished(&out.events).is_some_and(|r| r.is_ok()));
    }
    let t = Time::ZERO + Duration::from_secs(10);
    n.add_contact(t, c());
    let _ = drain_node(&mut n);
    n.find_node(t, target()).unwrap();
    let out = drain_node(&mut n);
    assert_eq!(out.transmits.len(), 1, "alpha = 1: one request");
    assert_eq!(out.transmits[0].to, 1, "B, the closest, first");
    (n, t, out)
}

#[test]
fn a_silent_peer_with_a_known_50_ms_round_trip_times_out_early_and_the_lookup_moves_on() {
    let (mut n, sent, out) = silent_b_after_training(true);
    let srtt = n.smoothed_rtt(&b().id).expect("B sampled");
    assert!(
        srtt >= RTT - Duration::from_micros(10) && srtt <= RTT,
        "{srtt:?}"
    );
    // RTO = SRTT + 4·RTTVAR is under the floor here: the floor, 100 ms.
    let rto = n.request_timeout_to(&b().id);
    assert_eq!(rto, n.config().dht.min_request_timeout);
    let deadline = out.next;
    assert_eq!(deadline, sent + rto);
    assert!(deadline.saturating_since(sent) < Duration::from_millis(500));

    // At the adaptive deadline the lookup gives up on B and asks C.
    n.handle_input(deadline, Input::Timeout);
    let out = drain_node(&mut n);
    assert_eq!(out.transmits.len(), 1, "{:?}", out.transmits);
    assert_eq!(out.transmits[0].to, 2, "moved on to C");
    assert_eq!(n.counters().requests_failed, 1);
    n.handle_input(deadline + RTT, nodes_reply(c().id, &out.transmits[0]));
    let out = drain_node(&mut n);
    let finished_at = deadline + RTT;
    assert_eq!(
        finished(&out.events),
        Some(&Ok(QueryOutput::Closest(vec![c()])))
    );
    assert!(finished_at.saturating_since(sent) < Duration::from_millis(200));
}

/// The same script with the option off: B is given the whole 2 s. This is what
/// the test above would see if the option were ignored.
#[test]
fn without_the_option_the_silent_peer_is_waited_for_the_whole_request_timeout() {
    let (mut n, sent, out) = silent_b_after_training(false);
    assert_eq!(
        n.smoothed_rtt(&b().id),
        None,
        "nothing kept without the option"
    );
    assert_eq!(n.request_timeout_to(&b().id), Duration::from_secs(2));
    assert_eq!(out.next, sent + Duration::from_secs(2));
    n.handle_input(sent + Duration::from_millis(500), Input::Timeout);
    let out = drain_node(&mut n);
    assert!(out.transmits.is_empty(), "still waiting for B");
}

#[test]
fn a_late_reply_is_a_sample_not_misbehaviour() {
    let (mut n, sent, out) = silent_b_after_training(true);
    let asked_b = out.transmits[0].clone();
    n.handle_input(out.next, Input::Timeout);
    let out = drain_node(&mut n);
    assert_eq!(out.transmits[0].to, 2);
    // B answers after its deadline, well within request_timeout.
    let late = sent + Duration::from_millis(400);
    n.handle_input(late, nodes_reply(b().id, &asked_b));
    let out = drain_node(&mut n);
    assert!(
        !out.events
            .iter()
            .any(|e| matches!(e, Event::PeerMisbehaved { .. })),
        "{:?}",
        out.events
    );
    assert_eq!(n.counters().late_replies, 1);
    assert_eq!(n.counters().misbehaviour, 0);
    let srtt = n.smoothed_rtt(&b().id).expect("B sampled");
    assert!(
        srtt > RTT,
        "the late round trip raised the estimate: {srtt:?}"
    );
    // After request_timeout it is no longer known: unsolicited.
    n.handle_input(sent + Duration::from_secs(3), nodes_reply(b().id, &asked_b));
    let _ = drain_node(&mut n);
    assert_eq!(n.counters().misbehaviour, 1);
}

#[test]
fn unsampled_peers_wait_the_pooled_rto_or_the_whole_timeout() {
    let (n, _, _) = silent_b_after_training(true);
    let stranger = id(0x40, 4);
    assert_eq!(
        n.request_timeout_to(&stranger),
        n.config().dht.min_request_timeout,
        "pooled over B's samples"
    );
    let mut fixed = config(true);
    fixed.dht.unsampled_timeout = UnsampledTimeout::Fixed;
    let n = Node::<u32>::new(fixed, id(0, 0), 0, 1, Time::ZERO).unwrap();
    assert_eq!(n.request_timeout_to(&stranger), Duration::from_secs(2));
}

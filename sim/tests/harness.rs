//! The test harness at work: messages held, released and dropped, links slowed,
//! the network stepped one delivery at a time, and what the protocol does about it.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use distroweb_protocol::content::DEFAULT_CHUNK_BYTES;
use distroweb_protocol::{Body, Config, Event, Id, Misbehaviour, QueryOutput, Time};
use distroweb_sim::{Harness, NetworkConfig, NodeIdx, SimConfig, Step};
use rand_chacha::ChaCha12Rng;
use rand_core::{RngCore, SeedableRng};

const CS: usize = DEFAULT_CHUNK_BYTES;

fn joined(nodes: u32, seed: u64) -> Harness {
    let mut h = Harness::new(nodes, &Config::default(), seed).expect("valid config");
    h.join_all();
    h
}

fn random_bytes(len: usize, seed: u64) -> Bytes {
    let mut v = vec![0u8; len];
    ChaCha12Rng::seed_from_u64(seed).fill_bytes(&mut v);
    Bytes::from(v)
}

fn publish(h: &mut Harness, node: u32, data: &Bytes) -> Id {
    let id = h.command(node, |n, now| {
        n.publish_file(now, data.clone(), "application/octet-stream")
            .unwrap()
    });
    h.run();
    id
}

/// A lost chunk is asked of the other provider once its request times out;
/// the fetch completes, a block timeout late, and counts the retry.
#[test]
fn a_dropped_block_reply_makes_the_fetch_ask_another_provider() {
    let mut h = joined(20, 31);
    let data = random_bytes(6 * CS, 7);
    let id = publish(&mut h, 4, &data);
    assert_eq!(publish(&mut h, 5, &data), id);
    let fetcher = NodeIdx(12);
    // Lose the first chunk (not a manifest) on its way to the fetcher...
    let lost: Rc<RefCell<Option<(NodeIdx, Id)>>> = Rc::default();
    let seen = lost.clone();
    h.drop_next(move |e| match &e.msg.body {
        Body::Block { id, data } if e.to == fetcher && data.0.len() == CS => {
            *seen.borrow_mut() = Some((e.from, *id));
            true
        }
        _ => false,
    });
    // ...and note who is asked for it after that, holding nothing back.
    let asked: Rc<RefCell<Vec<NodeIdx>>> = Rc::default();
    let (watch, ask) = (lost.clone(), asked.clone());
    h.hold(move |e| {
        let chunk = watch.borrow().map(|(_, chunk)| chunk);
        if let (Body::GetBlock { id }, Some(chunk)) = (&e.msg.body, chunk) {
            if e.from == fetcher && *id == chunk {
                ask.borrow_mut().push(e.to);
            }
        }
        false
    });
    let f = h.command(fetcher.0, |n, now| n.fetch(now, id).unwrap());
    h.run();
    let Some((Ok(_), stats)) = h.fetch_result(fetcher.0, f) else {
        panic!("{:?}", h.fetch_result(fetcher.0, f));
    };
    assert_eq!(h.read_file(fetcher.0, &id).unwrap(), data);
    assert_eq!(h.sim().stats().dropped, 1);
    let (from, _) = lost.borrow().expect("a chunk was dropped");
    let other = if from == NodeIdx(4) {
        NodeIdx(5)
    } else {
        NodeIdx(4)
    };
    assert_eq!(
        *asked.borrow(),
        [other],
        "asked again, of the other provider"
    );
    assert_eq!(stats.chunks_retried, 1, "{stats:?}");
    let failed: Vec<(NodeIdx, u32)> = stats
        .providers
        .iter()
        .map(|p| (p.provider.addr, p.failures))
        .filter(|(_, failures)| *failures > 0)
        .collect();
    assert_eq!(failed, [(from, 1)], "{stats:?}");
    assert!(
        stats.duration() >= Config::default().transfer.block_timeout,
        "the retry waited for the request to time out: {:?}",
        stats.duration()
    );
    assert_eq!(h.held().count(), 0);
}

/// Replies held until their requests timed out arrive after the lookup gave up
/// on them: the node refuses each as unsolicited and reports its sender as
/// misbehaving, although the peer only answered late. (An honest peer behind a
/// slow link is counted as a misbehaving one; the lookup's result stands.)
#[test]
fn replies_held_past_the_request_timeout_are_refused_as_unsolicited() {
    let mut h = joined(20, 32);
    let asker = NodeIdx(7);
    h.hold(move |e| e.to == asker && matches!(e.msg.body, Body::Nodes { .. }));
    let target = Id::hash_of(b"somewhere in the key space");
    let q = h.command(asker.0, |n, now| n.find_node(now, target).unwrap());
    let (finished_at, _, finished) = h
        .run_until_event(|n, e| {
            n == asker && matches!(e, Event::QueryFinished { id, .. } if *id == q)
        })
        .clone();
    let Event::QueryFinished { stats, .. } = finished else {
        unreachable!()
    };
    assert!(stats.requests >= 1);
    assert_eq!(stats.replies, 0, "{stats:?}");
    assert_eq!(stats.failures, stats.requests, "every request timed out");
    assert!(finished_at >= Time::ZERO + Config::default().dht.request_timeout);
    let senders: Vec<NodeIdx> = h.held().map(|e| e.from).collect();
    assert_eq!(
        senders.len(),
        stats.requests as usize,
        "one held reply per request"
    );
    let misbehaved_before = h.node(asker.0).counters().misbehaviour;
    let events_before = h.events().len();
    assert_eq!(h.release(), senders.len());
    h.run();
    let refused: Vec<NodeIdx> = h.events()[events_before..]
        .iter()
        .filter_map(|(_, n, e)| match e {
            Event::PeerMisbehaved {
                peer,
                reason: Misbehaviour::UnsolicitedReply,
            } if *n == asker => Some(peer.addr),
            _ => None,
        })
        .collect();
    assert_eq!(
        refused, senders,
        "each late reply refused, in arrival order"
    );
    assert_eq!(
        h.node(asker.0).counters().misbehaviour,
        misbehaved_before + senders.len() as u64
    );
    let finishes = h
        .events_of(asker.0)
        .filter(|e| matches!(e, Event::QueryFinished { id, .. } if *id == q))
        .count();
    assert_eq!(finishes, 1, "a late reply does not reopen the lookup");
}

/// Stepping shows each delivery at the instant its link's latency says.
#[test]
fn a_request_and_its_reply_cross_links_of_the_latency_set() {
    // Unlimited links, so that the latency is all the delay there is.
    let mut h = Harness::with_sim_config(SimConfig {
        seed: 3,
        nodes: 2,
        network: NetworkConfig {
            upload_bytes_per_s: 0,
            download_bytes_per_s: 0,
            ..Harness::network()
        },
        ..SimConfig::default()
    })
    .expect("valid config");
    h.join(0, &[]);
    h.join(1, &[0]);
    h.run();
    h.set_latency(0, 1, Duration::from_millis(40));
    h.set_latency(1, 0, Duration::from_millis(700));
    let start = h.now();
    let target = Id::hash_of(b"anywhere");
    let q = h.command(0, |n, now| n.find_node(now, target).unwrap());
    assert!(
        matches!(
            h.step(),
            Some(Step::Delivered {
                from: NodeIdx(0),
                to: NodeIdx(1),
                body: "find_node",
                ..
            })
        ),
        "the request first"
    );
    assert_eq!(h.now(), start + Duration::from_millis(40));
    assert!(matches!(
        h.step(),
        Some(Step::Delivered {
            from: NodeIdx(1),
            to: NodeIdx(0),
            body: "nodes",
            ..
        })
    ));
    assert_eq!(h.now(), start + Duration::from_millis(740));
    assert!(matches!(
        h.query_finished(0, q),
        Some(Event::QueryFinished { result: Ok(QueryOutput::Closest(c)), .. }) if c.len() == 1
    ));
}

/// Three nodes, their own timers driving maintenance: a provider record is
/// republished while its provider provides, and expires after it stops.
#[test]
fn records_are_republished_while_provided_and_expire_after() {
    let mut h = Harness::new(3, &Config::default(), 4).expect("valid config");
    h.join(0, &[]);
    h.join(1, &[0]);
    h.join(2, &[0]);
    h.run();
    let key = Id::hash_of(b"a key provided by node 0");
    let q = h.command(0, |n, now| n.announce(now, key).unwrap());
    h.run();
    assert!(matches!(
        h.query_finished(0, q),
        Some(Event::QueryFinished {
            result: Ok(QueryOutput::Announced { stored: 3 }),
            ..
        })
    ));
    let holds = |h: &Harness| !h.node(2).provider_store().get(h.now(), &key, 5).is_empty();
    // Without the 22-hour republish the record would have expired at 48 hours.
    h.run_to(Time::from_secs(60 * 3600));
    assert!(holds(&h), "republished record still held at 60 h");
    assert!(h.command(0, |n, _| n.stop_providing(&key)));
    h.run_to(Time::from_secs(100 * 3600));
    assert!(!holds(&h), "record lapsed after its provider stopped");
    assert_eq!(
        h.node(2).provider_store().record_count(),
        0,
        "expired records are removed, not just hidden"
    );
}

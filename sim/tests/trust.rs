//! Peers you can trust, end to end on the harness: announces earn their write
//! tokens and still store their records under both strategies, lookups still
//! find them, and a flood of writes from one /24 is held to its share.

use std::cell::RefCell;
use std::rc::Rc;

use distroweb_protocol::{Body, Config, Event, Id, QueryOutput, Strategy};
use distroweb_sim::addr::NODES_PER_GROUP;
use distroweb_sim::{Harness, NodeIdx};

/// Messages of each kind the network carried, by name.
#[derive(Default, Debug)]
struct Tally {
    refused: u32,
    with_token: u32,
    without_token: u32,
}

fn announce_and_find(strategy: Strategy) -> Tally {
    let mut config = Config::default();
    config.dht.strategy = strategy;
    let mut h = Harness::new(200, &config, 11).expect("valid config");
    h.join_all();
    let tally: Rc<RefCell<Tally>> = Rc::default();
    let seen = tally.clone();
    h.hold(move |e| {
        let mut t = seen.borrow_mut();
        match &e.msg.body {
            Body::RecordRefused { .. } => t.refused += 1,
            Body::AddProvider { token: Some(_), .. } => t.with_token += 1,
            Body::AddProvider { token: None, .. } => t.without_token += 1,
            _ => {}
        }
        false
    });
    let key = Id::hash_of(b"a page");
    let provider = 3;
    let q = h.command(provider, |n, now| n.announce(now, key).unwrap());
    h.run();
    let stored = match h.query_finished(provider, q) {
        Some(Event::QueryFinished {
            result: Ok(QueryOutput::Announced { stored }),
            ..
        }) => *stored,
        other => panic!("{strategy}: announce ended {other:?}"),
    };
    let r = config.dht.replication.get();
    assert!(stored + 2 >= r, "{strategy}: stored at {stored} of {r}");
    // The trackers hold the record, and a lookup from elsewhere finds it.
    let holders = (0..200)
        .filter(|&i| !h.node(i).provider_store().get(h.now(), &key, 5).is_empty())
        .count();
    assert_eq!(
        holders, stored,
        "{strategy}: the acknowledgements match the stores"
    );
    let asker = 150;
    let q = h.command(asker, |n, now| n.find_providers(now, key).unwrap());
    h.run();
    match h.query_finished(asker, q) {
        Some(Event::QueryFinished {
            result: Ok(QueryOutput::Providers(found)),
            ..
        }) => assert!(
            found.iter().any(|c| c.addr == NodeIdx(provider)),
            "{strategy}: {found:?}"
        ),
        other => panic!("{strategy}: lookup ended {other:?}"),
    }
    let out = std::mem::take(&mut *tally.borrow_mut());
    out
}

/// (e) Iterative: every tracker answered the walk, so every write carries its
/// token and none is refused.
#[test]
fn an_iterative_announce_writes_with_the_tokens_its_walk_earned() {
    let t = announce_and_find(Strategy::Iterative);
    assert_eq!((t.without_token, t.refused), (0, 0), "{t:?}");
    assert!(t.with_token > 0);
}

/// (e) Recursive: the origin hears only from the route's last hop, so it
/// writes to that one with its token and to the rest without; each of those
/// refuses once with a token, and the second write is stored.
#[test]
fn a_recursive_announce_earns_its_tokens_by_refusal() {
    let t = announce_and_find(Strategy::Recursive);
    assert!(t.without_token > 0, "{t:?}");
    assert_eq!(t.refused, t.without_token, "{t:?}");
    assert_eq!(t.with_token, t.without_token + 1, "{t:?}");
}

/// A /24 of the simulator's (16 slots) announces one key from every node:
/// each tracker keeps two of them, and an honest provider outside still
/// gets its record in and found.
#[test]
fn one_group_announcing_a_key_gets_two_places_at_each_tracker() {
    let mut h = Harness::new(160, &Config::default(), 5).expect("valid config");
    h.join_all();
    let key = Id::hash_of(b"a contested page");
    let group = 2;
    for i in group * NODES_PER_GROUP..(group + 1) * NODES_PER_GROUP {
        h.command(i, |n, now| n.announce(now, key).unwrap());
    }
    h.run();
    let honest = 100;
    let q = h.command(honest, |n, now| n.announce(now, key).unwrap());
    h.run();
    assert!(matches!(
        h.query_finished(honest, q),
        Some(Event::QueryFinished {
            result: Ok(QueryOutput::Announced { .. }),
            ..
        })
    ));
    let mut trackers = 0;
    for i in 0..160 {
        let providers = h.node(i).provider_store().get(h.now(), &key, 50);
        if providers.is_empty() {
            continue;
        }
        trackers += 1;
        let from_group = providers
            .iter()
            .filter(|c| c.addr.0 / NODES_PER_GROUP == group)
            .count();
        assert!(
            from_group <= 2,
            "tracker {i} keeps {from_group} of the group"
        );
    }
    assert!(trackers > 0);
    let asker = 150;
    let q = h.command(asker, |n, now| n.find_providers(now, key).unwrap());
    h.run();
    assert!(matches!(
        h.query_finished(asker, q),
        Some(Event::QueryFinished {
            result: Ok(QueryOutput::Providers(_)),
            ..
        })
    ));
}

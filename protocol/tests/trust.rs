//! Peers you can trust: a tracker fed hostile writes by hand. Write tokens
//! (BEP 5), the record store's shares per peer and per address group with old
//! records kept before new ones, and the routing table's diversity limits.

use std::time::Duration;

use distroweb_protocol::wire::Token;
use distroweb_protocol::Reach;
use distroweb_protocol::{drain, Driver, Input, MemoryStore, StoreOp};
use distroweb_protocol::{
    AddrGroup, Address, Body, Config, Contact, Event, Id, Message, Misbehaviour, Node, RpcId, Time,
    Transmit,
};
use serde::{Deserialize, Serialize};

/// An IPv4-like address: groups are /24s (the address shifted right by 8).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
struct Ip(u32);

impl Address for Ip {
    fn group(&self) -> Option<AddrGroup> {
        Some(AddrGroup(u64::from(self.0 >> 8)))
    }
}

/// The /24 the attackers hold.
const ATTACK: u32 = 0x0a0b_0c00;

#[derive(Default)]
struct Collect {
    store: MemoryStore,
    transmits: Vec<Transmit<Ip>>,
    events: Vec<Event<Ip>>,
}

impl Driver<Ip> for Collect {
    fn transmit(&mut self, _: &mut Node<Ip>, _: Time, t: Transmit<Ip>) {
        self.transmits.push(t);
    }
    fn store(&mut self, node: &mut Node<Ip>, now: Time, op: StoreOp) {
        let done = self.store.apply(op);
        node.handle_input(now, Input::Stored(done));
    }
    fn event(&mut self, _: &mut Node<Ip>, _: Time, e: Event<Ip>) {
        self.events.push(e);
    }
}

fn id(n: u32) -> Id {
    Id::hash_of(&n.to_le_bytes())
}

fn key() -> Id {
    Id::hash_of(b"the page everyone wants")
}

fn tracker(config: Config) -> Node<Ip> {
    Node::new(config, key(), Ip(0x0101_0100), 1, Time::ZERO).unwrap()
}

/// Feeds one message from `peer` and returns what the tracker sent and said.
fn send(
    t: &mut Node<Ip>,
    now: Time,
    peer: &Contact<Ip>,
    body: Body<Ip>,
) -> (Vec<Transmit<Ip>>, Vec<Event<Ip>>) {
    let msg = Message {
        sender: peer.id,
        rpc: RpcId(7),
        body,
    };
    t.handle_input(
        now,
        Input::Message {
            from: peer.addr,
            reach: Reach::Direct,
            msg,
        },
    );
    let mut io = Collect::default();
    drain(t, now, &mut io);
    t.check_invariants();
    (io.transmits, io.events)
}

/// What a peer gets by looking the key up at the tracker: its write token.
fn look_up(t: &mut Node<Ip>, now: Time, peer: &Contact<Ip>) -> Token {
    let (sent, _) = send(t, now, peer, Body::FindNode { target: key() });
    match sent.as_slice() {
        [Transmit {
            to,
            msg:
                Message {
                    body: Body::Nodes { token, .. },
                    ..
                },
            ..
        }] if *to == peer.addr => *token,
        other => panic!("expected one Nodes reply to {peer:?}, got {other:?}"),
    }
}

/// The tracker's answer to a write, if any.
fn write(
    t: &mut Node<Ip>,
    now: Time,
    peer: &Contact<Ip>,
    key: Id,
    token: Option<Token>,
) -> Option<Body<Ip>> {
    let (sent, _) = send(t, now, peer, Body::AddProvider { key, token });
    sent.into_iter().next().map(|t| t.msg.body)
}

/// The providers of `key` a stranger is told of.
fn providers(t: &mut Node<Ip>, now: Time, key: Id) -> Vec<Id> {
    let asker = Contact::new(id(999_999), Ip(0x6464_6400));
    let (sent, _) = send(t, now, &asker, Body::GetProviders { key });
    match sent.as_slice() {
        [Transmit {
            msg:
                Message {
                    body: Body::Providers { providers, .. },
                    ..
                },
            ..
        }] => providers.iter().map(|c| c.id).collect(),
        other => panic!("expected a Providers reply, got {other:?}"),
    }
}

/// Five honest providers, each in a /24 of its own, announce as the protocol does.
fn honest(t: &mut Node<Ip>, now: Time) -> Vec<Id> {
    (0..5)
        .map(|i| {
            let p = Contact::new(id(i), Ip(0x2000_0000 + (i << 8)));
            let token = look_up(t, now, &p);
            assert!(matches!(
                write(t, now, &p, key(), Some(token)),
                Some(Body::ProviderAdded { .. })
            ));
            p.id
        })
        .collect()
}

/// (a) The attack as seen: 17,000 AddProvider from one connection's worth of
/// fake ids in one /24. Before tokens and quotas the store kept the newest
/// records and every honest provider was evicted; now none of the flood is
/// stored (none holds a token) and the honest providers are still returned.
#[test]
fn a_flood_of_tokenless_writes_leaves_the_honest_providers() {
    let mut t = tracker(Config::default());
    let now = Time::from_secs(1);
    let honest = honest(&mut t, now);
    for i in 0..17_000u32 {
        let fake = Contact::new(id(1_000_000 + i), Ip(ATTACK + i % 256));
        let answer = write(&mut t, now, &fake, key(), None);
        assert!(
            matches!(answer, Some(Body::RecordRefused { .. })),
            "{answer:?}"
        );
    }
    let mut got = providers(&mut t, now, key());
    got.sort();
    let mut want = honest;
    want.sort();
    assert_eq!(got, want);
    assert_eq!(t.counters().records_refused, 17_000);
    assert_eq!(t.provider_store().record_count(), 5);
}

/// (a') The same flood, each fake id holding a valid token (one round trip
/// each): the /24 gets two places in the key's list and the honest
/// providers keep theirs.
#[test]
fn a_flood_with_tokens_from_one_group_gets_two_places_in_a_key() {
    let mut t = tracker(Config::default());
    let now = Time::from_secs(1);
    let honest = honest(&mut t, now);
    let mut stored = 0;
    for i in 0..1_000u32 {
        let fake = Contact::new(id(1_000_000 + i), Ip(ATTACK + i % 256));
        let token = look_up(&mut t, now, &fake);
        if let Some(Body::ProviderAdded { .. }) = write(&mut t, now, &fake, key(), Some(token)) {
            stored += 1;
        }
    }
    assert_eq!(stored, 2, "max_records_per_group_per_key");
    let got = providers(&mut t, now, key());
    assert!(honest.iter().all(|h| got.contains(h)), "{got:?}");
    assert_eq!(got.len(), 7);
}

/// (b) Valid tokens, many keys: one peer id is held to `max_records_per_peer`
/// and one /24 to `max_records_per_group`, while an honest peer elsewhere
/// still gets in.
#[test]
fn one_peer_and_one_group_are_held_to_their_share_of_the_store() {
    let config = Config::default();
    let (per_peer, per_group) = (
        config.records.max_records_per_peer.get(),
        config.records.max_records_per_group.get(),
    );
    let mut t = tracker(config);
    let now = Time::from_secs(1);
    // One peer, 2,000 keys.
    let flooder = Contact::new(id(5), Ip(ATTACK));
    let token = look_up(&mut t, now, &flooder);
    let stored = (0..2_000u32)
        .filter(|k| {
            matches!(
                write(&mut t, now, &flooder, id(10_000 + k), Some(token)),
                Some(Body::ProviderAdded { .. })
            )
        })
        .count();
    assert_eq!(stored, per_peer);
    // Its /24: 5,000 more ids, one key each.
    for i in 0..5_000u32 {
        let p = Contact::new(id(2_000_000 + i), Ip(ATTACK + 1 + i % 250));
        let token = look_up(&mut t, now, &p);
        write(&mut t, now, &p, id(20_000 + i), Some(token));
    }
    assert_eq!(t.provider_store().record_count(), per_group);
    // Someone else is not crowded out.
    let other = Contact::new(id(6), Ip(0x3000_0000));
    let token = look_up(&mut t, now, &other);
    assert!(matches!(
        write(&mut t, now, &other, id(10_000), Some(token)),
        Some(Body::ProviderAdded { .. })
    ));
    assert!(t.counters().records_refused >= (2_000 - per_peer + 5_000) as u64 - per_group as u64);
}

/// (c) A token is good only for the id and address it was handed to, and for
/// one to two rotations: from another id at that address, from that id at
/// another address, or two rotations later, the write is dropped and the
/// writer charged.
#[test]
fn a_token_is_bound_to_its_id_and_address_and_expires() {
    let mut t = tracker(Config::default());
    let now = Time::from_secs(1);
    let a = Contact::new(id(1), Ip(0x2000_0001));
    let token = look_up(&mut t, now, &a);
    let bad = |t: &mut Node<Ip>, when: Time, who: &Contact<Ip>| {
        let (sent, events) = send(
            t,
            when,
            who,
            Body::AddProvider {
                key: key(),
                token: Some(token),
            },
        );
        assert!(sent.is_empty(), "{sent:?}");
        assert!(
            events.iter().any(|e| matches!(
                e,
                Event::PeerMisbehaved {
                    reason: Misbehaviour::BadToken,
                    ..
                }
            )),
            "{events:?}"
        );
    };
    bad(&mut t, now, &Contact::new(id(2), a.addr));
    bad(&mut t, now, &Contact::new(a.id, Ip(0x3000_0001)));
    assert_eq!(t.provider_store().record_count(), 0);
    assert_eq!(t.counters().bad_tokens, 2);
    // Six minutes on (one rotation): still good.
    let later = now + Duration::from_secs(360);
    assert!(matches!(
        write(&mut t, later, &a, key(), Some(token)),
        Some(Body::ProviderAdded { .. })
    ));
    // Two rotations after the one it was issued in: refused.
    let much_later = now + Duration::from_secs(600);
    bad(&mut t, much_later, &a);
    assert_eq!(t.counters().bad_tokens, 3);
}

/// A writer without a token is told one, and the write with it is stored
/// (the path of a recursive announce, whose origin heard only from the
/// route's last hop).
#[test]
fn a_refusal_hands_out_a_token_that_works() {
    let mut t = tracker(Config::default());
    let now = Time::from_secs(1);
    let a = Contact::new(id(1), Ip(0x2000_0001));
    let Some(Body::RecordRefused { token, .. }) = write(&mut t, now, &a, key(), None) else {
        panic!("a tokenless write is refused with a token");
    };
    assert!(matches!(
        write(&mut t, now, &a, key(), Some(token)),
        Some(Body::ProviderAdded { .. })
    ));
    assert_eq!(providers(&mut t, now, key()), vec![a.id]);
}

/// (d) A node that hears from 50 peers in one /24 keeps at most 2 of them a
/// bucket and 3 in its whole table (Amino's limits), and still takes peers
/// from elsewhere.
#[test]
fn a_table_fed_one_group_keeps_its_share() {
    let config = Config::default();
    let (per_bucket, per_table) = (
        config.routing.max_contacts_per_group_per_bucket.get(),
        config.routing.max_contacts_per_group.get(),
    );
    let mut n = tracker(config);
    let now = Time::from_secs(1);
    for i in 0..50u32 {
        send(
            &mut n,
            now,
            &Contact::new(id(100 + i), Ip(ATTACK + i)),
            Body::Ping,
        );
    }
    let table = n.routing_table();
    let attackers: Vec<&Contact<Ip>> = table
        .contacts()
        .filter(|c| c.addr.group() == Some(AddrGroup(u64::from(ATTACK >> 8))))
        .collect();
    assert_eq!(attackers.len(), per_table);
    assert_eq!(
        table.group_count(&AddrGroup(u64::from(ATTACK >> 8))),
        per_table
    );
    let mut per: std::collections::BTreeMap<usize, usize> = Default::default();
    for c in &attackers {
        *per.entry(table.bucket_index(&c.id).unwrap()).or_default() += 1;
    }
    assert!(per.values().all(|&m| m <= per_bucket), "{per:?}");
    send(
        &mut n,
        now,
        &Contact::new(id(7), Ip(0x3000_0000)),
        Body::Ping,
    );
    assert!(n.routing_table().contains(&id(7)));
}

//! Client mode: a node that cannot be dialled (behind a NAT) is answered but
//! never enters a routing table and never has a provider record stored for
//! it, and a node in client mode writes no record naming its own address; a
//! relayed peer is named in records (at its relay) but kept out of tables.
//! Each check is made beside a reachable peer doing the same thing, which the
//! node does keep: the difference is the flag, nothing else.

use distroweb_protocol::{
    drain, Body, Config, Contact, Driver, Event, Id, Input, MemoryStore, Message, Node, Reach,
    RpcId, StoreOp, Time, Transmit,
};

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

fn peer(n: u32) -> Contact<u32> {
    Contact::new(Id::hash_of(&n.to_le_bytes()), n)
}

fn node(addr: u32) -> Node<u32> {
    Node::new(Config::default(), peer(addr).id, addr, 1, Time::ZERO).expect("a valid config")
}

/// Feeds `body` from `from` (a client or not) and returns what the node sent.
fn deliver(
    n: &mut Node<u32>,
    from: &Contact<u32>,
    reach: Reach,
    rpc: u64,
    body: Body<u32>,
) -> Vec<Transmit<u32>> {
    let msg = Message {
        sender: from.id,
        rpc: RpcId(rpc),
        body,
    };
    n.handle_input(
        Time::ZERO,
        Input::Message {
            from: from.addr,
            msg,
            reach,
        },
    );
    let mut io = Collect::default();
    drain(n, Time::ZERO, &mut io);
    n.check_invariants();
    io.transmits
}

fn key() -> Id {
    Id::hash_of(b"a page")
}

#[test]
fn a_client_is_answered_but_enters_no_table_and_no_record() {
    let mut server = node(1);
    for (who, reach) in [
        (peer(2), Reach::Client),
        (peer(3), Reach::Direct),
        (peer(4), Reach::Relayed),
    ] {
        let asks = [
            Body::Ping,
            Body::FindNode { target: key() },
            Body::GetProviders { key: key() },
        ];
        let mut token = None;
        for (i, body) in asks.into_iter().enumerate() {
            let sent = deliver(&mut server, &who, reach, i as u64, body);
            assert_eq!(sent.len(), 1, "every request is answered: {sent:?}");
            if let Body::Nodes { token: t, .. } = sent[0].msg.body {
                token = Some(t);
            }
        }
        assert_eq!(
            server.routing_table().contains(&who.id),
            reach == Reach::Direct,
            "only the directly reachable peer is in the table ({reach:?})"
        );
        // A write with a valid token: stored unless the peer is a client,
        // which nobody can dial; a relayed peer is named at its relay.
        let sent = deliver(
            &mut server,
            &who,
            reach,
            9,
            Body::AddProvider { key: key(), token },
        );
        let providers = server.provider_store().get(Time::ZERO, &key(), 20);
        let named = providers.iter().find(|p| p.id == who.id);
        assert_eq!(named.is_some(), reach != Reach::Client, "{reach:?}");
        if let Some(p) = named {
            assert_eq!(p.addr, who.addr, "named where its messages came from");
        }
        assert_eq!(
            sent.iter()
                .any(|t| matches!(t.msg.body, Body::ProviderAdded { .. })),
            reach != Reach::Client,
            "{sent:?}"
        );
    }
    assert_eq!(server.counters().from_clients, 8);
}

/// Announces `key()` from a node knowing three peers, answers the lookup,
/// and returns the record writes it then sends.
fn writes_of_an_announce(reach: Reach) -> (Node<u32>, Vec<Transmit<u32>>) {
    let mut n = node(1);
    n.set_reach(reach);
    assert_eq!(n.client_mode(), reach == Reach::Client);
    for p in 2..5 {
        n.add_contact(Time::ZERO, peer(p));
    }
    n.announce(Time::ZERO, key()).expect("starts");
    let mut io = Collect::default();
    drain(&mut n, Time::ZERO, &mut io);
    let mut writes = Vec::new();
    let mut asks = std::mem::take(&mut io.transmits);
    // The lookup walks to the three; each answers with nothing closer.
    while let Some(t) = asks.pop() {
        let from = peer(t.to);
        let body = match t.msg.body {
            Body::FindNode { .. } => Body::Nodes {
                closer: Vec::new(),
                token: distroweb_protocol::wire::Token([t.to as u8; 8]),
            },
            Body::AddProvider { .. } | Body::AddFetching { .. } => {
                writes.push(t);
                continue;
            }
            _ => continue,
        };
        asks.extend(deliver(&mut n, &from, Reach::Direct, t.msg.rpc.0, body));
    }
    (n, writes)
}

#[test]
fn a_node_in_client_mode_writes_no_record_naming_itself() {
    let (direct, writes) = writes_of_an_announce(Reach::Direct);
    assert_eq!(writes.len(), 3, "a reachable node writes");
    // With only three peers it is among the closest, so it keeps its own.
    let own = direct.provider_store().get(Time::ZERO, &key(), 20);
    assert!(own.iter().any(|p| p.id == peer(1).id), "{own:?}");
    let (client, writes) = writes_of_an_announce(Reach::Client);
    assert!(writes.is_empty());
    assert!(client
        .provider_store()
        .get(Time::ZERO, &key(), 20)
        .is_empty());
}

#[test]
fn a_relayed_node_writes_records_elsewhere_but_none_naming_its_own_address() {
    let (relayed, writes) = writes_of_an_announce(Reach::Relayed);
    assert_eq!(writes.len(), 3, "its trackers name it at its relay");
    assert!(
        relayed
            .provider_store()
            .get(Time::ZERO, &key(), 20)
            .is_empty(),
        "its own address is not where readers reach it"
    );
}

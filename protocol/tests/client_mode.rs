//! Client mode: a node that cannot be dialled (behind a NAT) is answered but
//! never enters a routing table and never has a provider record stored for
//! it, and a node in client mode writes no record naming its own address.
//! Each check is made beside a reachable peer doing the same thing, which the
//! node does keep: the difference is the flag, nothing else.

use distroweb_protocol::{
    drain, Body, Config, Contact, Driver, Event, Id, Input, MemoryStore, Message, Node, RpcId,
    StoreOp, Time, Transmit,
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
    client: bool,
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
            client,
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
    for (who, client) in [(peer(2), true), (peer(3), false)] {
        let asks = [
            Body::Ping,
            Body::FindNode { target: key() },
            Body::GetProviders { key: key() },
        ];
        let mut token = None;
        for (i, body) in asks.into_iter().enumerate() {
            let sent = deliver(&mut server, &who, client, i as u64, body);
            assert_eq!(sent.len(), 1, "every request is answered: {sent:?}");
            if let Body::Nodes { token: t, .. } = sent[0].msg.body {
                token = Some(t);
            }
        }
        assert_eq!(
            server.routing_table().contains(&who.id),
            !client,
            "only the reachable peer is in the table"
        );
        // A write with a valid token: stored for the reachable peer only.
        let sent = deliver(
            &mut server,
            &who,
            client,
            9,
            Body::AddProvider { key: key(), token },
        );
        let providers = server.provider_store().get(Time::ZERO, &key(), 20);
        assert_eq!(providers.iter().any(|p| p.id == who.id), !client);
        assert_eq!(
            sent.iter()
                .any(|t| matches!(t.msg.body, Body::ProviderAdded { .. })),
            !client,
            "{sent:?}"
        );
    }
    assert_eq!(server.counters().from_clients, 4);
}

/// Announces `key()` from a node knowing three peers, answers the lookup,
/// and returns the record writes it then sends.
fn writes_of_an_announce(client: bool) -> Vec<Transmit<u32>> {
    let mut n = node(1);
    n.set_client_mode(client);
    assert_eq!(n.client_mode(), client);
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
        asks.extend(deliver(&mut n, &from, false, t.msg.rpc.0, body));
    }
    writes
}

#[test]
fn a_node_in_client_mode_writes_no_record_naming_itself() {
    assert_eq!(
        writes_of_an_announce(false).len(),
        3,
        "a reachable node writes"
    );
    assert!(writes_of_an_announce(true).is_empty());
}

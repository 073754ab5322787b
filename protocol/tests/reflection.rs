//! No one is sent traffic on someone else's say-so: a node answers the peer a
//! message came from, at the address it came from, naming the id that peer
//! must prove, whatever addresses the message itself names.

use distroweb_protocol::wire::{Route, RouteWant};
use distroweb_protocol::Reach;
use distroweb_protocol::{drain, Driver, Input, MemoryStore, StoreOp};
use distroweb_protocol::{Body, Config, Contact, Event, Id, Message, Node, RpcId, Time, Transmit};

const ME: u32 = 0;
/// Where the route really came from.
const PEER: u32 = 5;
/// Third parties the route names, who never asked for anything.
const VICTIMS: [u32; 2] = [77, 99];

#[derive(Default)]
struct Collect {
    store: MemoryStore,
    transmits: Vec<Transmit<u32>>,
}

impl Driver<u32> for Collect {
    fn transmit(&mut self, _: &mut Node<u32>, _: Time, t: Transmit<u32>) {
        self.transmits.push(t);
    }
    fn store(&mut self, node: &mut Node<u32>, now: Time, op: StoreOp) {
        let done = self.store.apply(op);
        node.handle_input(now, Input::Stored(done));
    }
    fn event(&mut self, _: &mut Node<u32>, _: Time, _: Event<u32>) {}
}

#[test]
fn a_route_whose_path_names_third_parties_is_answered_where_it_came_from() {
    let me = Id::hash_of(b"me");
    let peer = Id::hash_of(b"peer");
    let origin = Id::hash_of(b"origin");
    let mut node = Node::new(Config::default(), me, ME, 1, Time::ZERO).expect("valid config");
    // 113 bytes of this made the first version dial whatever the path said:
    // the previous hop claims to live at a victim's address.
    let route = Route {
        tag: 7,
        target: Id::hash_of(b"some content"),
        want: RouteWant::Providers,
        path: vec![
            Contact::new(origin, VICTIMS[1]),
            Contact::new(peer, VICTIMS[0]),
        ],
        frontier: Vec::new(),
        messages: 0,
    };
    let msg = Message {
        sender: peer,
        rpc: RpcId(1),
        body: Body::Route(route),
    };
    node.handle_input(
        Time::ZERO,
        Input::Message {
            from: PEER,
            msg,
            reach: Reach::Direct,
        },
    );
    let mut io = Collect::default();
    drain(&mut node, Time::ZERO, &mut io);
    node.check_invariants();

    // The node knows no one closer, so it acknowledges and answers at once.
    let kinds: Vec<&str> = io
        .transmits
        .iter()
        .map(|t| match t.msg.body {
            Body::RouteAck => "ack",
            Body::RouteReply(_) => "reply",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, ["ack", "reply"], "{:?}", io.transmits);
    for t in &io.transmits {
        assert_eq!(t.to, PEER, "sent to an address the message named: {t:?}");
        assert_eq!(t.to_id, Some(peer), "the answer must go to the proven peer");
    }
}

#[test]
fn a_reply_goes_to_the_proven_sender_at_its_observed_address() {
    let me = Id::hash_of(b"me");
    let peer = Id::hash_of(b"peer");
    let mut node = Node::new(Config::default(), me, ME, 1, Time::ZERO).expect("valid config");
    let msg = Message {
        sender: peer,
        rpc: RpcId(3),
        body: Body::FindNode { target: peer },
    };
    node.handle_input(
        Time::ZERO,
        Input::Message {
            from: PEER,
            msg,
            reach: Reach::Direct,
        },
    );
    let mut io = Collect::default();
    drain(&mut node, Time::ZERO, &mut io);
    let [t] = io.transmits.as_slice() else {
        panic!("one reply expected: {:?}", io.transmits);
    };
    assert!(matches!(t.msg.body, Body::Nodes { .. }));
    assert_eq!((t.to, t.to_id), (PEER, Some(peer)));
}

//! What the protocol's integration tests share: a driver that keeps what a
//! node sends and says.

use distroweb_protocol::{Driver, Event, Input, MemoryStore, Node, StoreOp, Time, Transmit};

/// A driver that keeps what the node sends and says, and answers its storage
/// operations from a memory store at once.
#[derive(Default)]
pub struct Collect {
    /// The node's blocks.
    pub store: MemoryStore,
    /// What it sent, in order.
    pub transmits: Vec<Transmit<u32>>,
    /// What it said, in order.
    pub events: Vec<Event<u32>>,
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

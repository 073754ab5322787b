//! The one drain loop every driver uses: pull outputs until the timeout.
//!
//! The simulator, the protocol's tests and the live node all call [`drain`]
//! after every input and command, so the order of outputs (transmits, storage,
//! events, timeout) is honoured in exactly one place.

use crate::contact::Address;
use crate::event::{Event, Transmit};
use crate::io::{Output, StoreOp};
use crate::node::Node;
use crate::time::Time;

/// What a driver does with each output of a node.
///
/// Each method gets the node back, so a driver may feed inputs (a send that
/// failed at once, a storage operation completed in memory) or issue commands
/// (re-announcements, evictions) right away; [`drain`] keeps pulling outputs
/// until the node has nothing left to say.
pub trait Driver<A: Address> {
    /// Deliver a message (or feed `Input::SendFailed` if it cannot be).
    fn transmit(&mut self, node: &mut Node<A>, now: Time, transmit: Transmit<A>);
    /// Carry out a storage operation; feed its `Input::Stored` now or later.
    fn store(&mut self, node: &mut Node<A>, now: Time, op: StoreOp);
    /// Learn of an event.
    fn event(&mut self, node: &mut Node<A>, now: Time, event: Event<A>);
}

/// Drains `node` after an input or a command at `now`: hands every output to
/// `driver` in the documented order and returns the time at which the node
/// next wants `Input::Timeout`.
pub fn drain<A: Address>(node: &mut Node<A>, now: Time, driver: &mut impl Driver<A>) -> Time {
    loop {
        match node.poll_output() {
            Output::Transmit(t) => driver.transmit(node, now, t),
            Output::Store(op) => driver.store(node, now, op),
            Output::Event(e) => driver.event(node, now, e),
            Output::Timeout(t) => {
                #[cfg(debug_assertions)]
                node.check_invariants();
                return t;
            }
        }
    }
}

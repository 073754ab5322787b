//! The per-node behaviour hook: a wrapper between a node and the network, where
//! adversarial nodes (a later issue) will live.
//!
//! A wrapper sees and may rewrite or swallow what enters and leaves one node. It
//! sits outside the protocol, exactly where a modified live node would tamper with
//! its own traffic, so the protocol gains no back door.

use core::fmt::Debug;

use distroweb_protocol::{Message, Time, Transmit};

use crate::addr::NodeIdx;

/// Intercepts one node's traffic. Both methods default to passing everything through.
pub trait Behaviour: Debug {
    /// A message is about to be handed to the node; `None` swallows it.
    fn inbound(
        &mut self,
        now: Time,
        from: NodeIdx,
        msg: Message<NodeIdx>,
    ) -> Option<Message<NodeIdx>> {
        let _ = (now, from);
        Some(msg)
    }

    /// The node wants to send a message; `None` drops it, or return a rewritten one.
    fn outbound(&mut self, now: Time, transmit: Transmit<NodeIdx>) -> Option<Transmit<NodeIdx>> {
        let _ = now;
        Some(transmit)
    }

    /// Whether what this node announces it really serves: the simulator's
    /// record of real providers, which judges provider lookups, leaves out a
    /// node whose wrapper says no (an adversary that floods provider records
    /// is not a provider). Defaults to yes.
    fn serves(&self) -> bool {
        true
    }
}

/// A node that is up but never answers: it swallows everything sent to it.
///
/// The simplest adversary, and a model of a node behind a broken NAT.
#[derive(Clone, Copy, Debug, Default)]
pub struct Unresponsive;

impl Behaviour for Unresponsive {
    fn inbound(&mut self, _: Time, _: NodeIdx, _: Message<NodeIdx>) -> Option<Message<NodeIdx>> {
        None
    }

    fn serves(&self) -> bool {
        false
    }
}

//! What the node tells its driver: outgoing messages and things that happened.

use crate::contact::Contact;
use crate::id::Id;
use crate::query::{QueryError, QueryId, QueryKind, QueryOutput, QueryStats};
use crate::wire::Message;

/// A message for the driver to deliver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit<A> {
    /// Where to send it.
    pub to: A,
    /// What to send.
    pub msg: Message<A>,
}

/// Something the driver (and the experiments behind it) may want to know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event<A> {
    /// A query started by a command ended.
    QueryFinished {
        /// The id its command returned.
        id: QueryId,
        /// What it was for.
        kind: QueryKind,
        /// The id it looked up.
        target: Id,
        /// What it found, or why it failed.
        result: Result<QueryOutput<A>, QueryError>,
        /// Its cost.
        stats: QueryStats,
    },
    /// A peer broke the protocol; its message was dropped and the peer penalised.
    PeerMisbehaved {
        /// The peer, as far as it identified itself.
        peer: Contact<A>,
        /// What it did.
        reason: Misbehaviour,
    },
}

/// Ways a peer can break the protocol. Never an error for the node: the message
/// is dropped, the peer penalised and the count kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Misbehaviour {
    /// A reply to no request of ours, or from a peer we did not ask.
    UnsolicitedReply,
    /// A reply of the wrong kind for its request.
    WrongReply,
    /// A list longer than the protocol allows.
    OversizedList,
    /// A recursive route or reply whose path does not fit the hop it came from.
    MalformedPath,
    /// A message that claims to come from this node's own id.
    ClaimsOurId,
}

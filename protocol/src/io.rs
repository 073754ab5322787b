//! The node's one input/output loop: what a driver feeds in and pulls out.
//!
//! Everything that crosses the node's boundary is one of these: messages,
//! the passage of time, send failures and storage completions go in through
//! [`Node::handle_input`](crate::Node::handle_input); messages to send, storage
//! operations and events come out of [`Node::poll_output`](crate::Node::poll_output),
//! which always ends a round with [`Output::Timeout`] (the str0m shape).

use bytes::Bytes;

use crate::contact::Reach;
use crate::content::StoreError;
use crate::event::{Event, Transmit};
use crate::id::Id;
use crate::time::Time;
use crate::wire::Message;

/// Something that happened outside the node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input<A> {
    /// A message arrived from the peer at `from`.
    Message {
        /// Where it came from, as the driver observed it.
        from: A,
        /// What it says.
        msg: Message<A>,
        /// How the peer can be reached at `from`, as it said when it
        /// connected: a peer in client mode goes in no routing table and no
        /// record, a relayed one in records only (see [`Reach`] and
        /// [`Node::set_reach`](crate::Node::set_reach)).
        reach: Reach,
    },
    /// Time passed: every deadline up to `now` is due. Early calls are harmless.
    Timeout,
    /// A message to `to` could not be delivered (no connection, reset, peer
    /// gone): every request awaiting `to` fails now instead of at its deadline.
    SendFailed {
        /// The peer.
        to: A,
    },
    /// A storage operation the node asked for has finished.
    Stored(StoreDone),
}

/// A storage operation for the driver to carry out, off the node's own thread
/// if it likes (a disk store), or at once (the simulator's memory store).
///
/// Every operation is answered by exactly one [`StoreDone`], fed back as
/// [`Input::Stored`]. The node never has two operations on one block in
/// flight, and at most `max_store_ops` in flight in all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreOp {
    /// Read the block `id`.
    Read {
        /// The block.
        id: Id,
    },
    /// Store the block `id` durably; the node has verified `Id::hash_of(data) == id`.
    Write {
        /// The block.
        id: Id,
        /// Its bytes.
        data: Bytes,
    },
    /// Drop the block `id`.
    Remove {
        /// The block.
        id: Id,
    },
}

impl StoreOp {
    /// The block the operation is about.
    pub fn id(&self) -> Id {
        match self {
            StoreOp::Read { id } | StoreOp::Write { id, .. } | StoreOp::Remove { id } => *id,
        }
    }
}

/// How a [`StoreOp`] ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreDone {
    /// A read ended: the bytes, `None` if the store does not have the block
    /// (or found it corrupt and dropped it), or the store's failure.
    Read {
        /// The block.
        id: Id,
        /// What was read.
        result: Result<Option<Bytes>, StoreError>,
    },
    /// A write ended; only once it is confirmed does the node count the block as held.
    Written {
        /// The block.
        id: Id,
        /// Whether it is durably stored.
        result: Result<(), StoreError>,
    },
    /// A removal ended (a failed removal leaves an orphan the store may collect).
    Removed {
        /// The block.
        id: Id,
    },
}

impl StoreDone {
    /// The block the operation was about.
    pub fn id(&self) -> Id {
        match self {
            StoreDone::Read { id, .. }
            | StoreDone::Written { id, .. }
            | StoreDone::Removed { id } => *id,
        }
    }
}

/// Something the node wants done, in the order the node emits them: every
/// transmit, then every storage operation, then every event, then one
/// [`Output::Timeout`] that ends the round.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output<A> {
    /// Send this message.
    Transmit(Transmit<A>),
    /// Carry out this storage operation and feed back its [`StoreDone`].
    Store(StoreOp),
    /// Something happened that the driver may want to know.
    Event(Event<A>),
    /// Nothing more for now: call `handle_input(t, Input::Timeout)` at `t`
    /// unless another input comes first. Always the last output of a round.
    Timeout(Time),
}

//! What the node tells its driver: outgoing messages and things that happened.

use crate::contact::Contact;
use crate::content::{Manifest, StoreError};
use crate::id::Id;
use crate::query::{QueryError, QueryId, QueryKind, QueryOutput, QueryStats};
use crate::transfer::{FetchError, FetchId, FetchStats};
use crate::wire::Message;

/// A message for the driver to deliver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit<A> {
    /// Where to send it.
    pub to: A,
    /// The id the peer at `to` must prove before it gets the message: a
    /// driver sends it over that peer's authenticated connection, or dials
    /// `to` and checks the id in the handshake. `None` only for a bootstrap
    /// seed, whose id the node has yet to learn.
    pub to_id: Option<Id>,
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
    /// A fetch verified a manifest: the root's, or (for a site) a file's. A
    /// file's manifest arrives before any of its chunks.
    ManifestVerified {
        /// The fetch.
        fetch: FetchId,
        /// The manifest's id (the root, or a site's file).
        id: Id,
        /// What it says.
        manifest: Manifest,
    },
    /// A fetch verified a chunk of a file, and the store holds it: read it from
    /// there. For each file, chunks are reported in order, each exactly once, so
    /// a proxy can stream the file as it lands (with `emit_chunk_events`).
    ChunkVerified {
        /// The fetch.
        fetch: FetchId,
        /// The file's id (its manifest's).
        file: Id,
        /// The chunk's index in the file.
        index: u32,
        /// Where the chunk starts in the file.
        offset: u64,
        /// The chunk's block id.
        id: Id,
        /// Its length, checked against the file's manifest.
        len: u32,
    },
    /// A publication ended: its blocks are stored and its announcement is under
    /// way, or the store refused them and nothing is announced.
    Published {
        /// The content id [`crate::Node::publish`] returned.
        root: Id,
        /// Whether every block was stored.
        result: Result<(), StoreError>,
    },
    /// A fetch ended: the content is held complete (and announced, with
    /// `serve_after_fetch`), or it failed and its partial blocks are dropped.
    FetchFinished {
        /// The id [`crate::Node::fetch`] returned.
        id: FetchId,
        /// The content id.
        root: Id,
        /// The root manifest, or why the fetch failed.
        result: Result<Manifest, FetchError>,
        /// What it cost.
        stats: FetchStats<A>,
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
    /// A block that does not match the hash it was asked for by.
    CorruptBlock,
    /// A record write (`AddProvider`, `AddFetching`) with a token this node
    /// never gave that peer at that address, or one past its two rotations.
    BadToken,
    /// A name record whose signature does not verify under its name.
    BadNameRecord,
}

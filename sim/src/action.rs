//! Actions: what the simulator does to a node at a scheduled time.

use bytes::Bytes;
use distroweb_protocol::names::{NameKey, NameRecord};
use distroweb_protocol::Id;

use crate::addr::NodeIdx;
use crate::membership::Seeds;

/// Something the simulator does to a node at a scheduled time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// The node joins (or rejoins) through bootstrap peers.
    Join {
        /// Who.
        node: NodeIdx,
        /// Through whom.
        seeds: Seeds,
    },
    /// The node leaves, if it is still in the same session.
    Leave {
        /// Who.
        node: NodeIdx,
        /// The incarnation that should leave; a later one stays.
        incarnation: u32,
    },
    /// The node looks for providers of `key`.
    FindProviders {
        /// Who asks.
        node: NodeIdx,
        /// The content id.
        key: Id,
    },
    /// The node looks for the nodes closest to `target`.
    FindNode {
        /// Who asks.
        node: NodeIdx,
        /// The id.
        target: Id,
    },
    /// The node announces that it holds `key`.
    Announce {
        /// Who.
        node: NodeIdx,
        /// The content id.
        key: Id,
    },
    /// The node publishes one file (chunked with its `chunk_size`) and announces it.
    Publish {
        /// Who.
        node: NodeIdx,
        /// The file's bytes (shared, not copied, between the nodes that hold it).
        data: Bytes,
        /// Its media type.
        media_type: String,
    },
    /// The node fetches the content `root` from whoever holds it.
    Fetch {
        /// Who.
        node: NodeIdx,
        /// The content id.
        root: Id,
    },
    /// The node publishes a signed name record (signed by whoever holds the
    /// name's key; the simulator signs with keys derived from the seed) and
    /// keeps republishing it.
    PublishName {
        /// Who.
        node: NodeIdx,
        /// The record, already signed. Boxed: at 144 bytes it would set the
        /// size of every action, and a run at a million nodes schedules two
        /// million of them up front.
        record: Box<NameRecord>,
    },
    /// The node resolves `name` to its latest record. A node that holds a record
    /// of the name already answers with it after the protocol's short grace
    /// (stale-while-revalidate); one that does not walks to the name's trackers.
    ResolveName {
        /// Who asks.
        node: NodeIdx,
        /// The name.
        name: NameKey,
    },
}

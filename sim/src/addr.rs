//! Node addresses in the simulator: the index of the node's slot.

use core::fmt;

use distroweb_protocol::{AddrGroup, Address};
use serde::{Deserialize, Serialize};

/// A simulated node's address: its slot index, stable across rejoins.
///
/// Serialised as a bare `u32`, so it costs a varint on the wire like any small address.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NodeIdx(pub u32);

/// Simulated nodes whose slots share a block of this many indices share a
/// network group (an IPv4 /24), so the protocol's diversity limits act in the
/// lab as they do on the internet: placement is random, so a group's members
/// have unrelated ids, as hosts in one /24 do.
pub const NODES_PER_GROUP: u32 = 16;

impl Address for NodeIdx {
    fn group(&self) -> Option<AddrGroup> {
        Some(AddrGroup(u64::from(self.0 / NODES_PER_GROUP)))
    }
}

impl NodeIdx {
    /// The slot index as a `usize`, for indexing the simulator's per-node tables.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Debug for NodeIdx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

impl fmt::Display for NodeIdx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

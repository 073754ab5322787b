//! Node addresses in the simulator: the index of the node's slot.

use core::fmt;

use serde::{Deserialize, Serialize};

/// A simulated node's address: its slot index, stable across rejoins.
///
/// Serialised as a bare `u32`, so it costs a varint on the wire like any small address.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NodeIdx(pub u32);

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

//! Partitions: windows of time during which a group of nodes is cut off from the rest.

use core::ops::Range;
use core::time::Duration;

use distroweb_protocol::Time;
use serde::{Deserialize, Serialize};

use crate::addr::NodeIdx;

/// From `start` until `end` (virtual time since the run began), nodes whose index
/// lies in `island` reach each other but no node outside it, and vice versa.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partition {
    /// When the cut begins.
    pub start: Duration,
    /// When it heals.
    pub end: Duration,
    /// Slot indices of the cut-off group.
    pub island: Range<u32>,
}

impl Partition {
    /// Whether this partition stops a message from `a` to `b` sent at `now`.
    pub fn separates(&self, now: Time, a: NodeIdx, b: NodeIdx) -> bool {
        let t = Time::ZERO + self.start..Time::ZERO + self.end;
        t.contains(&now) && self.island.contains(&a.0) != self.island.contains(&b.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_only_across_the_island_and_only_while_active() {
        let p = Partition {
            start: Duration::from_secs(10),
            end: Duration::from_secs(20),
            island: 0..5,
        };
        let mid = Time::from_secs(15);
        assert!(p.separates(mid, NodeIdx(1), NodeIdx(7)));
        assert!(p.separates(mid, NodeIdx(7), NodeIdx(1)));
        assert!(!p.separates(mid, NodeIdx(1), NodeIdx(2)));
        assert!(!p.separates(mid, NodeIdx(6), NodeIdx(7)));
        assert!(!p.separates(Time::from_secs(5), NodeIdx(1), NodeIdx(7)));
        assert!(!p.separates(Time::from_secs(20), NodeIdx(1), NodeIdx(7)));
    }
}

//! Who is up, since when, and how a joining node finds its bootstrap peers.

use core::time::Duration;

use distroweb_protocol::Time;
use serde::{Deserialize, Serialize};

use crate::addr::NodeIdx;
use crate::seed::{below, SimRng};

/// The bootstrap peers a joining node is given.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Seeds {
    /// None: the node starts a network of its own (the first node).
    Alone,
    /// Exactly these.
    List(Vec<NodeIdx>),
    /// This many random nodes that are up, preferring those up for `seed_min_age`.
    Established(usize),
}

/// The set of up nodes, sampled in O(1).
#[derive(Debug)]
pub(crate) struct Membership {
    up: Vec<NodeIdx>,
    /// Position of each node in `up`, or `u32::MAX` when down.
    position: Vec<u32>,
    up_since: Vec<Time>,
}

const DOWN: u32 = u32::MAX;

impl Membership {
    pub fn new(nodes: usize) -> Self {
        Membership {
            up: Vec::new(),
            position: vec![DOWN; nodes],
            up_since: vec![Time::ZERO; nodes],
        }
    }

    pub fn len(&self) -> usize {
        self.up.len()
    }

    /// The up nodes, in no meaningful order (but a deterministic one).
    pub fn up(&self) -> &[NodeIdx] {
        &self.up
    }

    pub fn insert(&mut self, node: NodeIdx, now: Time) {
        if self.position[node.index()] == DOWN {
            self.position[node.index()] = self.up.len() as u32;
            self.up.push(node);
            self.up_since[node.index()] = now;
        }
    }

    pub fn remove(&mut self, node: NodeIdx) {
        let pos = self.position[node.index()];
        if pos == DOWN {
            return;
        }
        self.up.swap_remove(pos as usize);
        if let Some(moved) = self.up.get(pos as usize) {
            self.position[moved.index()] = pos;
        }
        self.position[node.index()] = DOWN;
    }

    /// Resolves `seeds` for `joining` into `out`: random up nodes other than itself
    /// that `eligible` accepts (public ones, when some sit behind NATs),
    /// established ones first (bounded tries, so the cost never depends on luck).
    #[allow(clippy::too_many_arguments)]
    pub fn pick_seeds(
        &self,
        seeds: &Seeds,
        joining: NodeIdx,
        now: Time,
        min_age: Duration,
        rng: &mut SimRng,
        eligible: impl Fn(NodeIdx) -> bool,
        out: &mut Vec<NodeIdx>,
    ) {
        let want = match seeds {
            Seeds::Alone => return,
            Seeds::List(list) => {
                out.extend(list.iter().copied().filter(|n| *n != joining));
                return;
            }
            Seeds::Established(n) => *n,
        };
        if self.up.is_empty() {
            return;
        }
        for established_only in [true, false] {
            for _ in 0..want * 8 {
                if out.len() >= want {
                    return;
                }
                let candidate = self.up[below(rng, self.up.len() as u64) as usize];
                let old_enough = self.up_since[candidate.index()] + min_age <= now;
                if candidate != joining
                    && (old_enough || !established_only)
                    && eligible(candidate)
                    && !out.contains(&candidate)
                {
                    out.push(candidate);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seed::{stream_rng, Stream};

    #[test]
    fn insert_remove_and_established_seeds() {
        let mut m = Membership::new(10);
        for i in 0..10 {
            m.insert(NodeIdx(i), Time::from_secs(u64::from(i)));
        }
        m.remove(NodeIdx(3));
        m.remove(NodeIdx(3));
        assert_eq!(m.len(), 9);
        let mut rng = stream_rng(1, Stream::Churn);
        let mut out = Vec::new();
        // At t=10 with min age 5 s, only nodes 0..=5 (less 3) are established.
        m.pick_seeds(
            &Seeds::Established(3),
            NodeIdx(0),
            Time::from_secs(10),
            Duration::from_secs(5),
            &mut rng,
            |_| true,
            &mut out,
        );
        assert_eq!(out.len(), 3);
        for n in &out {
            assert!([1, 2, 4, 5].contains(&n.0), "{out:?}");
        }
        out.clear();
        m.pick_seeds(
            &Seeds::Established(2),
            NodeIdx(9),
            Time::ZERO,
            Duration::from_secs(5),
            &mut rng,
            |_| true,
            &mut out,
        );
        assert_eq!(out.len(), 2, "falls back to any up node");
        assert!(!out.contains(&NodeIdx(9)) && !out.contains(&NodeIdx(3)));
    }
}

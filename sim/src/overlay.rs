//! The overlay as a graph: who has whom in their routing table, built on demand.

use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};

use crate::addr::NodeIdx;
use crate::engine::Sim;

/// The routing graph of the nodes that are up: an edge `a → b` when `a`'s routing
/// table holds `b` at its current address and id.
#[derive(Debug)]
pub struct Overlay {
    /// The graph; node weights are slot indices.
    pub graph: DiGraph<NodeIdx, ()>,
    /// Table entries pointing at a node that is down or has another id now.
    pub dangling: u64,
}

/// Summary figures of an [`Overlay`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OverlayStats {
    /// Up nodes.
    pub nodes: usize,
    /// Live edges.
    pub edges: usize,
    /// Table entries pointing at nodes that are gone.
    pub dangling: u64,
    /// Strongly connected components; 1 means every node can reach every other.
    pub scc_count: usize,
    /// Nodes in the largest component.
    pub largest_scc: usize,
    /// `in_degree[d]` nodes are held by exactly `d` routing tables.
    pub in_degree: Vec<u64>,
}

impl Overlay {
    /// Builds the graph from the routing tables of the up nodes.
    pub fn of(sim: &Sim) -> Self {
        let mut graph = DiGraph::new();
        let mut index = vec![NodeIndex::end(); sim.len()];
        for i in 0..sim.len() as u32 {
            if sim.is_up(NodeIdx(i)) {
                index[i as usize] = graph.add_node(NodeIdx(i));
            }
        }
        let mut dangling = 0;
        for i in 0..sim.len() as u32 {
            let (from, Some(node)) = (index[i as usize], sim.node(NodeIdx(i))) else {
                continue;
            };
            if from == NodeIndex::end() {
                continue;
            }
            for c in node.routing_table().contacts() {
                let to = index
                    .get(c.addr.index())
                    .copied()
                    .unwrap_or(NodeIndex::end());
                let same_id = sim.node(c.addr).is_some_and(|n| n.id() == c.id);
                if to != NodeIndex::end() && same_id {
                    graph.add_edge(from, to, ());
                } else {
                    dangling += 1;
                }
            }
        }
        Overlay { graph, dangling }
    }

    /// Components and degree distribution.
    pub fn stats(&self) -> OverlayStats {
        let sccs = tarjan_scc(&self.graph);
        let mut in_degree = vec![0u64; 1];
        let mut counts = vec![0usize; self.graph.node_count()];
        for e in self.graph.raw_edges() {
            counts[e.target().index()] += 1;
        }
        for c in counts {
            if c >= in_degree.len() {
                in_degree.resize(c + 1, 0);
            }
            in_degree[c] += 1;
        }
        OverlayStats {
            nodes: self.graph.node_count(),
            edges: self.graph.edge_count(),
            dangling: self.dangling,
            scc_count: sccs.len(),
            largest_scc: sccs.iter().map(Vec::len).max().unwrap_or(0),
            in_degree,
        }
    }
}

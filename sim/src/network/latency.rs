//! Latency from synthetic coordinates plus a per-node access delay.
//!
//! Cheap at any scale (12 bytes per node, no pairwise matrix) and calibrated so
//! that round-trip times have a median near the King data set's ~150 ms.

use crate::addr::NodeIdx;
use crate::seed::{unit_open, SimRng};

use super::NetworkConfig;

/// Where each node sits, and how slow its last mile is.
#[derive(Debug)]
pub struct Placement {
    /// Coordinates in milliseconds of one-way propagation.
    position_ms: Vec<[f32; 2]>,
    /// One-way access delay, µs.
    access_us: Vec<u32>,
}

impl Placement {
    /// Places `nodes` nodes uniformly in the plane, each with a log-normal access delay.
    pub(super) fn new(config: &NetworkConfig, nodes: usize, rng: &mut SimRng) -> Self {
        let side = config.plane_side_ms;
        let mut position_ms = Vec::with_capacity(nodes);
        let mut access_us = Vec::with_capacity(nodes);
        for _ in 0..nodes {
            let x = (unit_open(rng) * side) as f32;
            let y = (unit_open(rng) * side) as f32;
            position_ms.push([x, y]);
            // Box–Muller: one standard normal from two uniforms.
            let (u1, u2) = (unit_open(rng), unit_open(rng));
            let z = (-2.0 * u1.ln()).sqrt() * (core::f64::consts::TAU * u2).cos();
            let ms = config.access_median_ms * (config.access_sigma * z).exp();
            // A cap keeps one unlucky draw from making a node unreachable in practice.
            let ms = ms.min(20.0 * config.access_median_ms.max(1.0));
            access_us.push((ms * 1_000.0) as u32);
        }
        Placement {
            position_ms,
            access_us,
        }
    }

    /// One-way delay from `a` to `b` in µs, at least 1.
    pub fn one_way_us(&self, a: NodeIdx, b: NodeIdx) -> u64 {
        let (pa, pb) = (self.position_ms[a.index()], self.position_ms[b.index()]);
        let dx = f64::from(pa[0] - pb[0]);
        let dy = f64::from(pa[1] - pb[1]);
        let propagation_us = (dx * dx + dy * dy).sqrt() * 1_000.0;
        let access = u64::from(self.access_us[a.index()]) + u64::from(self.access_us[b.index()]);
        (propagation_us as u64 + access).max(1)
    }

    /// A node's one-way access delay in µs.
    pub fn access_us(&self, node: NodeIdx) -> u32 {
        self.access_us[node.index()]
    }
}

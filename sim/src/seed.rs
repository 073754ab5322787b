//! Seed derivation: one master seed drives everything, each consumer gets its own stream.
//!
//! Every stream is a ChaCha12 generator (`rand_chacha::ChaCha12Rng`), named here so
//! that a `rand` upgrade can never silently change old results. Seeds are derived
//! with BLAKE3 in key-derivation mode from the master seed and a label, so adding a
//! consumer or changing the latency model never reshuffles node ids or workloads.

use distroweb_protocol::Id;
use rand_chacha::ChaCha12Rng;
use rand_core::SeedableRng;

/// The random number generator behind every stream in the simulator.
pub type SimRng = ChaCha12Rng;

/// A named subsystem that draws its own random stream from the master seed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// Node placement (coordinates, access delays, bandwidth classes).
    Placement,
    /// Per-message draws: jitter and loss.
    Network,
    /// Session and down times.
    Churn,
    /// Which node asks for which key, and when.
    Workload,
    /// The test harness's own choices (bootstrap peers in `Harness::join_all`).
    Harness,
    /// Who the adversaries are, and where ground ids land.
    Adversary,
    /// Who sits behind which NAT, which relay a NATed node picks, and
    /// whether a hole punch works.
    Nat,
}

impl Stream {
    fn label(self) -> &'static str {
        match self {
            Stream::Placement => "placement",
            Stream::Network => "network",
            Stream::Churn => "churn",
            Stream::Workload => "workload",
            Stream::Harness => "harness",
            Stream::Adversary => "adversary",
            Stream::Nat => "nat",
        }
    }
}

fn derive(master: u64, label: &str, index: u32, incarnation: u32) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key("distroweb-sim 2024 seed derivation");
    h.update(&master.to_le_bytes());
    h.update(label.as_bytes());
    h.update(&[0]);
    h.update(&index.to_le_bytes());
    h.update(&incarnation.to_le_bytes());
    *h.finalize().as_bytes()
}

/// The generator for `stream`, derived from `master`.
pub fn stream_rng(master: u64, stream: Stream) -> SimRng {
    SimRng::from_seed(derive(master, stream.label(), 0, 0))
}

/// The seed a node's protocol RNG starts from: a function of the master seed, the
/// node's slot and its incarnation only.
pub fn node_seed(master: u64, index: u32, incarnation: u32) -> u64 {
    let b = derive(master, "node-rng", index, incarnation);
    u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}

/// A node's id: a function of the master seed and the node's slot, so a node keeps
/// its identity across rejoins (as a live node keeps its key on disk).
pub fn node_id(master: u64, index: u32) -> Id {
    Id::from_bytes(derive(master, "node-id", index, 0))
}

/// The `n`-th content key of a workload.
pub fn content_key(master: u64, n: u32) -> Id {
    Id::from_bytes(derive(master, "content-key", n, 0))
}

/// The Ed25519 secret key of the `n`-th name of a workload: a run signs its
/// name records with keys no other seed shares, and never needs to store them.
pub fn name_secret(master: u64, n: u32) -> [u8; 32] {
    derive(master, "name-key", n, 0)
}

/// A uniform draw in the open interval (0, 1), 53 bits of precision.
pub fn unit_open(rng: &mut impl rand_core::RngCore) -> f64 {
    // (x + 0.5) / 2^53 never reaches 0 or 1, so inverse CDFs never see log(0).
    ((rng.next_u64() >> 11) as f64 + 0.5) * (1.0 / (1u64 << 53) as f64)
}

/// A uniform draw in `0..n` (`n` > 0) by Lemire's multiply-shift, bias below 2^-32.
pub fn below(rng: &mut impl rand_core::RngCore, n: u64) -> u64 {
    ((u128::from(rng.next_u64()) * u128::from(n)) >> 64) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::RngCore;

    #[test]
    fn streams_and_nodes_are_independent_and_stable() {
        let a = stream_rng(1, Stream::Network).next_u64();
        assert_eq!(a, stream_rng(1, Stream::Network).next_u64());
        assert_ne!(a, stream_rng(1, Stream::Churn).next_u64());
        assert_ne!(a, stream_rng(2, Stream::Network).next_u64());
        assert_ne!(node_seed(1, 5, 0), node_seed(1, 5, 1));
        assert_ne!(node_id(1, 5), node_id(1, 6));
        assert_eq!(node_id(1, 5), node_id(1, 5));
    }

    #[test]
    fn unit_draws_stay_inside_the_open_interval() {
        let mut rng = stream_rng(3, Stream::Workload);
        for _ in 0..10_000 {
            let u = unit_open(&mut rng);
            assert!(u > 0.0 && u < 1.0);
            assert!(below(&mut rng, 7) < 7);
        }
    }
}

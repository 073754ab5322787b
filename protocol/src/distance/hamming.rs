//! The original distroweb design: the number of differing bits.
//!
//! Implementation note: many ids share a Hamming distance, so ties are broken
//! by the XOR distance. That keeps the order total and deterministic.

use crate::id::{Id, ID_BITS};
use crate::query::Forwarding;

use super::{Distance, DistanceMetric};

/// The Hamming metric with an XOR tie-break.
pub(crate) struct Hamming;

impl DistanceMetric for Hamming {
    const NAME: &'static str = "hamming";
    const SYMMETRIC: bool = true;
    /// Greedy forwarding gets stuck (docs/RESULTS.md, hops): distance to a node
    /// says little about its distance to the key, so no table is a funnel.
    /// Greedy and plain best-first both fail at scale; a walk that first
    /// funnels by XOR to the key's anchor and then goes best-first by Hamming
    /// makes announce and lookup meet (docs/RESULTS.md, hops).
    const FORWARDING: Forwarding = Forwarding::Anchored;
    /// Buckets by Hamming distance from the node are no funnel: tables are XOR-shaped.
    const FUNNELS: bool = false;

    #[inline]
    fn distance(a: &Id, b: &Id) -> Distance {
        let xor = a.xor(b);
        Distance::new(xor.count_ones() as u16, xor)
    }

    /// Bucket `i` holds ids that differ from `own` in exactly `i + 1` bits.
    #[inline]
    fn bucket_index(own: &Id, other: &Id) -> Option<usize> {
        let ones = own.xor(other).count_ones() as usize;
        (ones > 0).then(|| ones - 1)
    }

    fn random_id_in_bucket(own: &Id, index: usize, random: &Id) -> Id {
        // Flip exactly index + 1 distinct bits, chosen by a partial Fisher-Yates
        // shuffle driven by the random id's bytes.
        let mut positions: [u8; ID_BITS] = core::array::from_fn(|i| i as u8);
        let r = random.as_bytes();
        let mut out = *own;
        for i in 0..=index {
            let seed = u16::from(r[i % 32]) << 8 | u16::from(r[(i * 7 + 3) % 32]);
            let j = i + (seed as usize) % (ID_BITS - i);
            positions.swap(i, j);
            out = out.with_bit_flipped(positions[i] as usize);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distance::any_id as id;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn hamming_obeys_triangle_inequality(a in id(), b in id(), c in id()) {
            let ab = a.xor(&b).count_ones();
            let bc = b.xor(&c).count_ones();
            let ac = a.xor(&c).count_ones();
            prop_assert!(ac <= ab + bc);
            prop_assert_eq!(u32::from(Hamming::distance(&a, &b).primary()), ab);
        }
    }
}

//! Distance metrics over [`Id`]s: which node is "closest" to a key.

use core::fmt;

use serde::{Deserialize, Serialize};

use crate::id::{Id, ID_BITS};

/// How closeness between ids is measured.
///
/// Both metrics produce a [`Distance`] with a total order, so "the closest node"
/// is always unique and independent of the order in which nodes were seen.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub enum Metric {
    /// Kademlia's XOR metric: `d(a, b) = a ⊕ b` read as an integer.
    #[default]
    Xor,
    /// The original distroweb design: the number of differing bits.
    ///
    /// Implementation note: many ids share a Hamming distance, so ties are broken
    /// by the XOR distance. That keeps the order total and deterministic.
    Hamming,
}

/// The distance between two ids under some [`Metric`]; smaller is closer.
///
/// Compare distances only when they were computed with the same metric.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Distance {
    /// Number of differing bits under Hamming; always 0 under XOR.
    primary: u16,
    /// The XOR of the two ids: the whole distance under XOR, the tie-break under Hamming.
    xor: Id,
}

impl Metric {
    /// Distance between `a` and `b`.
    pub fn distance(self, a: &Id, b: &Id) -> Distance {
        let xor = a.xor(b);
        let primary = match self {
            Metric::Xor => 0,
            Metric::Hamming => xor.count_ones() as u16,
        };
        Distance { primary, xor }
    }

    /// The k-bucket that `other` falls into in the routing table of `own`, or
    /// `None` when they are equal.
    ///
    /// Under XOR, bucket `i` holds distances in `[2^i, 2^(i+1))` (Kademlia).
    /// Under Hamming, bucket `i` holds ids that differ in exactly `i + 1` bits.
    pub fn bucket_index(self, own: &Id, other: &Id) -> Option<usize> {
        let xor = own.xor(other);
        match self {
            Metric::Xor => {
                let lz = xor.leading_zeros() as usize;
                (lz < ID_BITS).then(|| ID_BITS - 1 - lz)
            }
            Metric::Hamming => {
                let ones = xor.count_ones() as usize;
                (ones > 0).then(|| ones - 1)
            }
        }
    }

    /// A random id that falls into bucket `index` of `own`'s table, used to
    /// refresh that bucket. Bits are drawn from `random`.
    pub fn random_id_in_bucket(self, own: &Id, index: usize, random: &Id) -> Id {
        debug_assert!(index < ID_BITS);
        match self {
            Metric::Xor => {
                // Keep own's top (255 - index) bits, flip bit `index` (counted from the
                // least significant end), and take the rest from `random`.
                let flip = ID_BITS - 1 - index;
                let mut bytes = *own.as_bytes();
                let r = random.as_bytes();
                for bit in flip + 1..ID_BITS {
                    let mask = 0x80u8 >> (bit % 8);
                    bytes[bit / 8] = (bytes[bit / 8] & !mask) | (r[bit / 8] & mask);
                }
                Id::from_bytes(bytes).with_bit_flipped(flip)
            }
            Metric::Hamming => {
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
    }
}

impl Distance {
    /// The zero distance: an id to itself.
    pub const ZERO: Distance = Distance {
        primary: 0,
        xor: Id::ZERO,
    };
}

impl fmt::Debug for Distance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Distance({}, {})", self.primary, self.xor.short())
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Metric::Xor => "xor",
            Metric::Hamming => "hamming",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn metric() -> impl Strategy<Value = Metric> {
        prop_oneof![Just(Metric::Xor), Just(Metric::Hamming)]
    }

    fn id() -> impl Strategy<Value = Id> {
        any::<[u8; 32]>().prop_map(Id::from_bytes)
    }

    proptest! {
        #[test]
        fn distance_to_self_is_zero(m in metric(), a in id()) {
            prop_assert_eq!(m.distance(&a, &a), Distance::ZERO);
            prop_assert_eq!(m.bucket_index(&a, &a), None);
        }

        #[test]
        fn distance_is_symmetric(m in metric(), a in id(), b in id()) {
            prop_assert_eq!(m.distance(&a, &b), m.distance(&b, &a));
        }

        #[test]
        fn distance_is_zero_only_for_equal_ids(m in metric(), a in id(), b in id()) {
            prop_assert_eq!(m.distance(&a, &b) == Distance::ZERO, a == b);
        }

        /// XOR is unidirectional: for any point and distance there is exactly one
        /// id at that distance, so lookups for one key converge on one path.
        #[test]
        fn xor_is_unidirectional(a in id(), b in id(), c in id()) {
            prop_assume!(b != c);
            prop_assert_ne!(Metric::Xor.distance(&a, &b), Metric::Xor.distance(&a, &c));
        }

        #[test]
        fn hamming_obeys_triangle_inequality(a in id(), b in id(), c in id()) {
            let ab = a.xor(&b).count_ones();
            let bc = b.xor(&c).count_ones();
            let ac = a.xor(&c).count_ones();
            prop_assert!(ac <= ab + bc);
            prop_assert_eq!(Metric::Hamming.distance(&a, &b).primary as u32, ab);
        }

        #[test]
        fn bucket_index_orders_with_distance(m in metric(), own in id(), a in id(), b in id()) {
            let (ia, ib) = (m.bucket_index(&own, &a), m.bucket_index(&own, &b));
            if m.distance(&own, &a) < m.distance(&own, &b) {
                prop_assert!(ia <= ib);
            }
        }

        #[test]
        fn random_id_lands_in_its_bucket(m in metric(), own in id(), r in id(), index in 0usize..256) {
            let target = m.random_id_in_bucket(&own, index, &r);
            prop_assert_eq!(m.bucket_index(&own, &target), Some(index));
        }
    }
}

//! Kademlia's XOR metric: `d(a, b) = a ⊕ b` read as a 256-bit integer.
//!
//! Symmetric and unidirectional (one id at each distance from a point), and its
//! buckets are prefix classes, so greedy forwarding always makes progress and the
//! table can answer `closest` by sorting one bucket instead of all of them.

use crate::contact::Contact;
use crate::id::{Id, ID_BITS};
use crate::routing::BucketView;

use super::{Distance, DistanceMetric};

/// The XOR metric.
pub(crate) struct Xor;

impl DistanceMetric for Xor {
    const NAME: &'static str = "xor";
    const SYMMETRIC: bool = true;

    #[inline]
    fn distance(a: &Id, b: &Id) -> Distance {
        Distance::new(0, a.xor(b))
    }

    /// Bucket `i` holds distances in `[2^i, 2^(i+1))`: ids sharing exactly
    /// `255 - i` leading bits with `own` (Kademlia).
    #[inline]
    fn bucket_index(own: &Id, other: &Id) -> Option<usize> {
        let lz = own.xor(other).leading_zeros() as usize;
        (lz < ID_BITS).then(|| ID_BITS - 1 - lz)
    }

    fn random_id_in_bucket(own: &Id, index: usize, random: &Id) -> Id {
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

    /// The buckets come in distance groups, so usually one bucket is sorted
    /// instead of the whole table. With `i` the bucket of `target`: bucket `i`
    /// holds everything closer than `2^i`; buckets below `i` all lie in
    /// `[2^i, 2^(i+1))`; each bucket `j > i` lies in `[2^j, 2^(j+1))`.
    fn closest<'a, A>(
        table: &BucketView<'a, A>,
        target: &Id,
        n: usize,
        out: &mut Vec<(Distance, &'a Contact<A>)>,
    ) {
        let Some(i) = Self::bucket_index(table.own(), target) else {
            // The target is our own id: bucket j lies in [2^j, 2^(j+1)), in order.
            for j in table.indices() {
                table.take::<Self>(j..=j, target, out);
                if out.len() >= n {
                    return;
                }
            }
            return;
        };
        table.take::<Self>(i..=i, target, out);
        if out.len() >= n {
            return;
        }
        table.take::<Self>(..i, target, out);
        for j in table.indices().filter(|&j| j > i) {
            if out.len() >= n {
                return;
            }
            table.take::<Self>(j..=j, target, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distance::any_id as id;
    use proptest::prelude::*;

    proptest! {
        /// XOR is unidirectional: for any point and distance there is exactly one
        /// id at that distance, so lookups for one key converge on one path.
        #[test]
        fn xor_is_unidirectional(a in id(), b in id(), c in id()) {
            prop_assume!(b != c);
            prop_assert_ne!(Xor::distance(&a, &b), Xor::distance(&a, &c));
        }

        /// The bucket is the position of the highest differing bit.
        #[test]
        fn bucket_is_the_highest_differing_bit(a in id(), b in id()) {
            prop_assume!(a != b);
            let d = Xor::distance(&a, &b);
            let lz = d.rest().leading_zeros() as usize;
            prop_assert_eq!(Xor::bucket_index(&a, &b), Some(ID_BITS - 1 - lz));
        }
    }
}

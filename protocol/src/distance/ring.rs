//! A numeric ring (Chord, Pastry): ids are points on a circle of `2^256`, and
//! the distance runs clockwise, so it is not symmetric.
//!
//! `distance(a, b) = (a − b) mod 2^256`: how far clockwise `a` lies past `b`.
//! A lookup ranks node `n` for key `t` by `distance(n, t)`, so the closest node
//! to a key is its successor, the first node at or clockwise after it: Chord's
//! `successor(key)`, the node that holds the key. Distances from a fixed point
//! are all distinct (subtraction is a bijection), so the order is total and
//! there are no ties to break. For `a ≠ b`,
//! `distance(b, a) = 2^256 − distance(a, b)`.
//!
//! The routing table of `own` files a contact `c` by `distance(own, c)`, how
//! far counter-clockwise from `own` it lies: bucket `i` holds contacts at
//! `own − δ` for `δ` in `[2^i, 2^(i+1))`.
//!
//! Implementation note: Chord's fingers point clockwise (`n + 2^i`) because it
//! walks to the key's predecessor and then takes one more step; here the walk
//! ranks nodes by their clockwise distance past the key, so the fingers are
//! Chord's mirror image. A node `D` past the key forwards to a contact `δ ≤ D`
//! counter-clockwise from itself, which is `D − δ` past the key (the test
//! `a_contact_short_of_the_key_is_closer_by_its_offset` pins that identity), so
//! greedy forwarding makes progress as it does in Chord.

use crate::id::{Id, ID_BITS, ID_BYTES};

use super::{Distance, DistanceMetric};

/// The clockwise ring distance.
pub(crate) struct Ring;

/// An id as four big-endian 64-bit limbs, most significant first.
fn limbs(id: &Id) -> [u64; 4] {
    let b = id.as_bytes();
    core::array::from_fn(|i| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&b[i * 8..i * 8 + 8]);
        u64::from_be_bytes(w)
    })
}

fn from_limbs(l: [u64; 4]) -> Id {
    let mut out = [0u8; ID_BYTES];
    for (chunk, limb) in out.chunks_exact_mut(8).zip(l) {
        chunk.copy_from_slice(&limb.to_be_bytes());
    }
    Id::from_bytes(out)
}

/// `(a − b) mod 2^256`.
fn wrapping_sub(a: &Id, b: &Id) -> Id {
    let (x, y) = (limbs(a), limbs(b));
    let mut out = [0u64; 4];
    let mut borrow = false;
    for i in (0..4).rev() {
        let (d, b1) = x[i].overflowing_sub(y[i]);
        let (d, b2) = d.overflowing_sub(u64::from(borrow));
        out[i] = d;
        borrow = b1 || b2;
    }
    from_limbs(out)
}

impl DistanceMetric for Ring {
    const NAME: &'static str = "ring";
    const SYMMETRIC: bool = false;

    #[inline]
    fn distance(a: &Id, b: &Id) -> Distance {
        Distance::new(0, wrapping_sub(a, b))
    }

    /// Bucket `i` holds the contacts `δ` counter-clockwise from `own`, for `δ`
    /// in `[2^i, 2^(i+1))`.
    #[inline]
    fn bucket_index(own: &Id, other: &Id) -> Option<usize> {
        let lz = wrapping_sub(own, other).leading_zeros() as usize;
        (lz < ID_BITS).then(|| ID_BITS - 1 - lz)
    }

    /// `own − δ` with `δ = 2^index + (random mod 2^index)`.
    fn random_id_in_bucket(own: &Id, index: usize, random: &Id) -> Id {
        // δ: bit `index` (from the least significant end) set, the bits below it
        // from `random`, the bits above it clear.
        let top = ID_BITS - 1 - index;
        let mut delta = *random.as_bytes();
        for bit in 0..=top {
            delta[bit / 8] &= !(0x80u8 >> (bit % 8));
        }
        let delta = Id::from_bytes(delta).with_bit_flipped(top);
        wrapping_sub(own, &delta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distance::any_id as id;
    use proptest::prelude::*;

    #[test]
    fn distance_runs_clockwise_and_wraps() {
        let n = |x: u8| {
            let mut b = [0u8; 32];
            b[31] = x;
            Id::from_bytes(b)
        };
        assert_eq!(Ring::distance(&n(5), &n(3)).rest(), &n(2));
        // 3 − 5 wraps to 2^256 − 2: all ones but the last bit.
        let mut almost = [0xffu8; 32];
        almost[31] = 0xfe;
        assert_eq!(Ring::distance(&n(3), &n(5)).rest(), &Id::from_bytes(almost));
        assert_eq!(Ring::bucket_index(&n(5), &n(3)), Some(1));
        assert_eq!(Ring::bucket_index(&n(3), &n(5)), Some(ID_BITS - 1));
    }

    proptest! {
        /// The asymmetry is exact: the two directions add up to the whole ring.
        #[test]
        fn the_two_directions_add_up_to_the_ring(a in id(), b in id()) {
            let ab = Ring::distance(&a, &b);
            let ba = Ring::distance(&b, &a);
            prop_assert_eq!(wrapping_sub(&Id::ZERO, ab.rest()), *ba.rest());
        }

        /// The closest of a set of nodes to a key is its successor: the first node
        /// at or after the key clockwise, wrapping past the top of the ring.
        #[test]
        fn the_closest_node_is_the_successor(t in id(), mut nodes in proptest::collection::vec(id(), 1..50)) {
            let closest = *nodes.iter().min_by_key(|n| Ring::distance(n, &t)).unwrap();
            nodes.sort();
            let successor = nodes.iter().find(|n| **n >= t).unwrap_or(&nodes[0]);
            prop_assert_eq!(closest, *successor);
        }

        /// Greedy progress: a contact `δ` counter-clockwise from `own`, short of
        /// the key, is closer to the key than `own` by exactly `δ`.
        #[test]
        fn a_contact_short_of_the_key_is_closer_by_its_offset(own in id(), c in id(), t in id()) {
            let (to_c, to_t) = (Ring::distance(&own, &c), Ring::distance(&own, &t));
            prop_assume!(to_c <= to_t);
            prop_assert_eq!(*Ring::distance(&c, &t).rest(), wrapping_sub(to_t.rest(), to_c.rest()));
        }
    }
}

//! Distance metrics over [`Id`]s: which node is "closest" to a key.
//!
//! A metric is one file in this directory implementing [`DistanceMetric`], plus
//! one line in the `metrics!` registry below; the registry generates the
//! [`Metric`] enum, [`Metric::ALL`] and the dispatch, so nothing else in the
//! workspace names a metric (experiments, flags and tests iterate `Metric::ALL`).
//!
//! Conventions every metric keeps, because the routing table and the walks rely
//! on them (a metric need not be symmetric):
//! - lookups rank a node `n` for a target `t` by `distance(n, t)`;
//! - the routing table of `own` files a contact `c` under
//!   `bucket_index(own, c)`, which must not decrease as `distance(own, c)` grows;
//! - `random_id_in_bucket(own, i, _)` lands in bucket `i`.

use core::fmt;
use core::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::contact::Contact;
use crate::id::Id;
use crate::query::Forwarding;
use crate::routing::BucketView;

/// One distance metric: the laws in the module documentation, as code.
///
/// Implementations are unit types; every function is associated (no `self`), so
/// the [`Metric`] dispatch compiles to one `match` and inlines the metric's code.
pub(crate) trait DistanceMetric {
    /// The lowercase name used by flags, CSV columns and `Display`.
    const NAME: &'static str;

    /// Whether `distance(a, b) == distance(b, a)` for all ids.
    const SYMMETRIC: bool;

    /// How recursive routes forward under this metric unless configured
    /// otherwise: greedy where the buckets funnel towards any target.
    const FORWARDING: Forwarding = Forwarding::Greedy;

    /// Whether this metric's own buckets funnel a walk towards any target, so
    /// that routing tables can be shaped and kept fresh under it. A metric that
    /// does not (Hamming: a node's distance to its contacts says nothing about
    /// theirs to a key) has its tables shaped and maintained under XOR instead,
    /// and ranks candidates for keys by its own distance.
    const FUNNELS: bool = true;

    /// The distance from `a` to `b`; zero exactly when `a == b`, and distinct
    /// for distinct `b` at a fixed `a` (so "the closest" is always unique).
    fn distance(a: &Id, b: &Id) -> Distance;

    /// The bucket of `other` in `own`'s routing table, `None` when they are equal.
    fn bucket_index(own: &Id, other: &Id) -> Option<usize>;

    /// An id in bucket `index` of `own`'s table (`index < ID_BITS`), its free
    /// bits taken from `random`; used to refresh that bucket.
    fn random_id_in_bucket(own: &Id, index: usize, random: &Id) -> Id;

    /// Appends to `out` the contacts of `table` closest to `target`, closest
    /// first: at least the `n` closest, possibly more (the caller truncates).
    ///
    /// The default measures the whole table and selects the `n` closest
    /// before sorting them (linear, not `m log m`, in the table's size `m`); a
    /// metric whose buckets come in distance groups overrides it to measure
    /// only the buckets it needs.
    fn closest<'a, A>(
        table: &BucketView<'a, A>,
        target: &Id,
        n: usize,
        out: &mut Vec<(Distance, &'a Contact<A>)>,
    ) {
        scan_closest::<Self, A>(table, target, n, out);
    }
}

/// [`DistanceMetric::closest`] by measuring every contact: right whatever
/// metric shaped the table's buckets.
fn scan_closest<'a, M: DistanceMetric + ?Sized, A>(
    table: &BucketView<'a, A>,
    target: &Id,
    n: usize,
    out: &mut Vec<(Distance, &'a Contact<A>)>,
) {
    let start = out.len();
    table.extend::<M>(.., target, out);
    if n > 0 && out.len() - start > n {
        out[start..].select_nth_unstable_by_key(n - 1, |(d, _)| *d);
        out.truncate(start + n);
    }
    // Ids in the table are unique, so distances are too and the order is total.
    out[start..].sort_unstable_by_key(|(d, _)| *d);
}

/// The registry: `#[doc = ".."] Variant => module::Type,`, one line per metric
/// (the default also carries `#[default]`). It declares the
/// modules and generates [`Metric`] with its dispatch, so adding a metric is a
/// new file plus one line here.
macro_rules! metrics {
    ($( $(#[$attr:meta])* $variant:ident => $module:ident :: $ty:ident, )+) => {
        $( mod $module; )+

        /// How closeness between ids is measured: one variant per registered metric.
        ///
        /// Every metric produces a [`Distance`] with a total order, so "the
        /// closest node" is always unique and independent of the order in which
        /// nodes were seen. Serialised by variant name (`"Xor"`), shown and parsed
        /// by its lowercase name (`xor`).
        #[derive(
            Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
        )]
        pub enum Metric {
            $( $(#[$attr])* $variant, )+
        }

        impl Metric {
            /// Every registered metric, in registry order: what experiments,
            /// flags and tests iterate instead of naming metrics.
            pub const ALL: &'static [Metric] = &[$( Metric::$variant ),+];

            /// The lowercase name, as shown and parsed.
            pub const fn name(self) -> &'static str {
                match self { $( Metric::$variant => <$module::$ty as DistanceMetric>::NAME, )+ }
            }

            /// Whether `distance(a, b) == distance(b, a)` always holds.
            pub const fn is_symmetric(self) -> bool {
                match self { $( Metric::$variant => <$module::$ty as DistanceMetric>::SYMMETRIC, )+ }
            }

            /// How recursive routes forward under this metric by default.
            pub const fn forwarding(self) -> Forwarding {
                match self { $( Metric::$variant => <$module::$ty as DistanceMetric>::FORWARDING, )+ }
            }

            /// The metric that shapes and maintains routing tables for nodes that
            /// rank keys by this one: itself where its buckets funnel, else XOR.
            pub const fn table_metric(self) -> Metric {
                match self { $( Metric::$variant => if <$module::$ty as DistanceMetric>::FUNNELS { self } else { Metric::Xor }, )+ }
            }

            /// Distance from `a` to `b`; a lookup ranks node `n` for target `t` by
            /// `distance(n, t)`.
            #[inline]
            pub fn distance(self, a: &Id, b: &Id) -> Distance {
                match self { $( Metric::$variant => <$module::$ty as DistanceMetric>::distance(a, b), )+ }
            }

            /// The k-bucket that `other` falls into in the routing table of
            /// `own`, or `None` when they are equal; it never decreases as
            /// `distance(own, other)` grows.
            #[inline]
            pub fn bucket_index(self, own: &Id, other: &Id) -> Option<usize> {
                match self { $( Metric::$variant => <$module::$ty as DistanceMetric>::bucket_index(own, other), )+ }
            }

            /// A random id that falls into bucket `index` of `own`'s table, used
            /// to refresh that bucket. Bits are drawn from `random`.
            pub fn random_id_in_bucket(self, own: &Id, index: usize, random: &Id) -> Id {
                debug_assert!(index < crate::id::ID_BITS);
                match self { $( Metric::$variant => <$module::$ty as DistanceMetric>::random_id_in_bucket(own, index, random), )+ }
            }

            /// The metric's `closest` over a routing table's buckets (see
            /// [`DistanceMetric::closest`]).
            pub(crate) fn closest<'a, A>(
                self,
                table: &BucketView<'a, A>,
                target: &Id,
                n: usize,
                out: &mut Vec<(Distance, &'a Contact<A>)>,
            ) {
                match self { $( Metric::$variant => <$module::$ty as DistanceMetric>::closest(table, target, n, out), )+ }
            }

            /// Like [`Metric::closest`] over a table whose buckets another metric
            /// shaped: measures every contact.
            pub(crate) fn closest_in_any_table<'a, A>(
                self,
                table: &BucketView<'a, A>,
                target: &Id,
                n: usize,
                out: &mut Vec<(Distance, &'a Contact<A>)>,
            ) {
                match self { $( Metric::$variant => scan_closest::<$module::$ty, A>(table, target, n, out), )+ }
            }
        }
    };
}

metrics! {
    #[doc = "Kademlia's XOR metric (the default): `d(a, b) = a ⊕ b` read as an integer."] #[default] Xor => xor::Xor,
    #[doc = "The original distroweb design: the number of differing bits, ties broken by XOR."] Hamming => hamming::Hamming,
    #[doc = "A numeric ring (Chord, Pastry): how far clockwise a node lies past a key, so the closest node is the key's successor."] Ring => ring::Ring,
}

/// The distance between two ids under some [`Metric`]; smaller is closer.
///
/// A pair compared lexicographically: a coarse primary (0 where a metric has
/// none) and a 256-bit integer. Compare distances only when they were computed
/// with the same metric.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Distance {
    primary: u16,
    rest: Id,
}

impl Distance {
    /// The zero distance: an id to itself.
    pub const ZERO: Distance = Distance {
        primary: 0,
        rest: Id::ZERO,
    };

    /// A distance from its parts, compared `primary` first, then `rest` as a
    /// big-endian integer.
    pub(crate) const fn new(primary: u16, rest: Id) -> Self {
        Distance { primary, rest }
    }

    /// The coarse part (differing bits under Hamming; 0 for XOR).
    pub fn primary(&self) -> u16 {
        self.primary
    }

    /// The fine part, a 256-bit integer (the XOR under XOR and Hamming).
    pub fn rest(&self) -> &Id {
        &self.rest
    }
}

impl fmt::Debug for Distance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Distance({}, {})", self.primary, self.rest.short())
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A metric name that no registered metric has.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown metric {given:?} (known: {})", known_names())]
pub struct ParseMetricError {
    /// What was given.
    pub given: String,
}

fn known_names() -> String {
    let names: Vec<&str> = Metric::ALL.iter().map(|m| m.name()).collect();
    names.join(", ")
}

impl FromStr for Metric {
    type Err = ParseMetricError;

    /// Parses a lowercase name (`xor`), ignoring ASCII case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Metric::ALL
            .iter()
            .copied()
            .find(|m| m.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| ParseMetricError { given: s.into() })
    }
}

/// A proptest strategy over every registered metric, for the crate's tests.
#[cfg(test)]
pub(crate) fn any_metric() -> impl proptest::strategy::Strategy<Value = Metric> {
    proptest::sample::select(Metric::ALL)
}

/// A proptest strategy over uniformly random ids, for the metrics' tests.
#[cfg(test)]
pub(crate) fn any_id() -> impl proptest::strategy::Strategy<Value = Id> {
    use proptest::strategy::Strategy;
    proptest::prelude::any::<[u8; 32]>().prop_map(Id::from_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::ID_BITS;
    use any_id as id;
    use proptest::prelude::*;

    #[test]
    fn names_are_unique_and_parse_back() {
        for (i, m) in Metric::ALL.iter().enumerate() {
            assert_eq!(m.to_string().parse::<Metric>(), Ok(*m));
            assert_eq!(m.to_string().to_uppercase().parse::<Metric>(), Ok(*m));
            assert!(Metric::ALL[..i].iter().all(|o| o.name() != m.name()));
        }
        let err = "manhattan".parse::<Metric>().unwrap_err();
        assert_eq!(err.given, "manhattan");
        assert!(err.to_string().contains("xor"), "{err}");
    }

    #[test]
    fn serde_names_stay_the_variant_names() {
        // docs/results/*.json hold configurations with "Xor" and "Hamming".
        for m in Metric::ALL {
            let json = serde_json::to_string(m).unwrap();
            assert_eq!(json, format!("\"{m:?}\""));
            assert_eq!(serde_json::from_str::<Metric>(&json).unwrap(), *m);
        }
        assert_eq!(
            serde_json::from_str::<Metric>("\"Xor\"").unwrap(),
            Metric::Xor
        );
        assert_eq!(
            serde_json::from_str::<Metric>("\"Hamming\"").unwrap(),
            Metric::Hamming
        );
    }

    proptest! {
        #[test]
        fn distance_to_self_is_zero(m in any_metric(), a in id()) {
            prop_assert_eq!(m.distance(&a, &a), Distance::ZERO);
            prop_assert_eq!(m.bucket_index(&a, &a), None);
        }

        #[test]
        fn distance_is_zero_only_for_equal_ids(m in any_metric(), a in id(), b in id()) {
            prop_assert_eq!(m.distance(&a, &b) == Distance::ZERO, a == b);
        }

        /// Symmetric metrics say so; the others must really be asymmetric
        /// somewhere, or the flag is wrong.
        #[test]
        fn symmetry_is_as_declared(m in any_metric(), a in id(), b in id()) {
            let (ab, ba) = (m.distance(&a, &b), m.distance(&b, &a));
            if m.is_symmetric() {
                prop_assert_eq!(ab, ba);
            } else if a != b {
                prop_assert_ne!(ab, ba);
            }
        }

        /// The order is total: distinct nodes are never tied for a target, so
        /// "the closest" does not depend on the order nodes were seen in.
        #[test]
        fn distinct_nodes_never_tie(m in any_metric(), t in id(), a in id(), b in id()) {
            prop_assume!(a != b);
            prop_assert_ne!(m.distance(&a, &t), m.distance(&b, &t));
        }

        /// The table files by `distance(own, other)`: the bucket never decreases
        /// as that distance grows, and equal buckets need not mean equal distances.
        #[test]
        fn bucket_index_orders_with_distance(m in any_metric(), own in id(), a in id(), b in id()) {
            prop_assume!(a != own && b != own);
            let (ia, ib) = (m.bucket_index(&own, &a), m.bucket_index(&own, &b));
            prop_assert!(ia.is_some_and(|i| i < ID_BITS) && ib.is_some_and(|i| i < ID_BITS));
            if m.distance(&own, &a) < m.distance(&own, &b) {
                prop_assert!(ia <= ib);
            }
        }

        #[test]
        fn random_id_lands_in_its_bucket(m in any_metric(), own in id(), r in id(), index in 0usize..ID_BITS) {
            let target = m.random_id_in_bucket(&own, index, &r);
            prop_assert_eq!(m.bucket_index(&own, &target), Some(index));
        }
    }
}

//! Giving back the memory of emptied collections.
//!
//! A `BTreeMap` emptied by removals keeps its root node, and a `VecDeque` or
//! `Vec` keeps its capacity. A node that once ran a query keeps a 5.5 KiB
//! B-tree leaf for its query map forever; over a million simulated nodes those
//! leftovers outweigh everything the nodes actually hold. A node sheds its
//! empty collections at the end of every drain ([`crate::Node::poll_output`]
//! returning the timeout), so an idle node holds only what it uses.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// A collection that can drop its allocation once empty.
pub(crate) trait Shed {
    /// Frees the collection's allocation if it holds nothing; a no-op otherwise
    /// (and cheap when nothing was allocated).
    fn shed(&mut self);
}

impl<K, V> Shed for BTreeMap<K, V> {
    fn shed(&mut self) {
        if self.is_empty() {
            *self = BTreeMap::new();
        }
    }
}

impl<T> Shed for BTreeSet<T> {
    fn shed(&mut self) {
        if self.is_empty() {
            *self = BTreeSet::new();
        }
    }
}

impl<T> Shed for VecDeque<T> {
    fn shed(&mut self) {
        if self.is_empty() && self.capacity() > 0 {
            *self = VecDeque::new();
        }
    }
}

impl<T> Shed for Vec<T> {
    fn shed(&mut self) {
        if self.is_empty() && self.capacity() > 0 {
            *self = Vec::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emptied_collections_shed_and_full_ones_keep() {
        let mut m: BTreeMap<u64, u64> = (0..3).map(|i| (i, i)).collect();
        m.shed();
        assert_eq!(m.len(), 3);
        m.clear();
        m.shed();
        assert!(m.is_empty());
        let mut q: VecDeque<u8> = VecDeque::with_capacity(8);
        q.shed();
        assert_eq!(q.capacity(), 0);
        let mut v = vec![1u8];
        v.shed();
        assert_eq!(v, [1]);
    }
}

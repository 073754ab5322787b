//! Checks that the node's counters and indexes mirror its collections, run by
//! tests after every drain (and by [`crate::drain`] in debug builds).

use crate::contact::Address;

use super::{Node, Purpose};

impl<A: Address> Node<A> {
    /// Panics if the node's bookkeeping disagrees with itself: deadlines that do
    /// not match pending work, counters that do not match collections, blocks
    /// claimed but not indexed. A test harness calls it after every step.
    pub fn check_invariants(&self) {
        assert_eq!(self.pending.len(), self.pending_deadlines.len());
        for (deadline, rpc) in &self.pending_deadlines {
            let p = self.pending.get(rpc);
            assert!(
                p.is_some_and(|p| p.deadline == *deadline),
                "a deadline without its request"
            );
        }
        let forwards = self
            .pending
            .values()
            .filter(|p| matches!(p.purpose, Purpose::Forward(_)))
            .count();
        assert_eq!(forwards, self.forwards, "forward count");
        self.rtt.check();
        assert_eq!(self.queries.len(), self.query_deadlines.len());
        for (deadline, q) in &self.query_deadlines {
            let query = self.queries.get(q);
            assert!(
                query.is_some_and(|q| q.deadline == *deadline),
                "a query deadline without its query"
            );
        }
        assert!(self.queries.len() <= self.config.limits.max_queries.get());
        for (q, tokens) in &self.announce_tokens {
            assert!(self.queries.contains_key(q), "tokens of an ended query");
            assert!(tokens.len() <= self.config.dht.k.get(), "tokens over k");
        }
        self.providers.check();
        self.fetching.check();
        assert_eq!(self.fetches.len(), self.fetch_by_root.len());
        for (root, fid) in &self.fetch_by_root {
            let f = self.fetches.get(fid);
            assert!(f.is_some_and(|f| f.root() == *root), "fetch_by_root");
            let f = f.expect("checked above");
            assert!(
                self.fetch_timers.contains(&(f.deadline(), *fid)),
                "a fetch without its deadline timer"
            );
        }
        assert!(self.fetches.len() <= self.config.transfer.max_fetches.get());
        for f in self.fetches.values() {
            f.check();
        }
        self.storage.check();
        for id in self.partial.keys() {
            assert!(
                self.storage.contains(id),
                "a partial block not in the index"
            );
        }
        for root in self.publishes.keys() {
            let waiting = self
                .storage
                .writes
                .values()
                .filter(|w| w.publishes.contains(root))
                .count();
            assert_eq!(
                Some(waiting),
                self.publishing_pending(root),
                "publication {root:?}"
            );
        }
        assert!(self.events.misbehaviour_waiting() == self.events.count_misbehaviour());
        assert!(self.transmits.len() <= self.config.limits.max_transmit_queue.get());
    }
}

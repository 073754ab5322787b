//! Periodic upkeep: expiring records, refreshing idle buckets, republishing.

use crate::config::Strategy;
use crate::contact::Address;
use crate::query::QueryKind;
use crate::time::Time;

use super::Node;

impl<A: Address> Node<A> {
    /// One maintenance round, run every `maintenance_interval`.
    pub(super) fn maintain(&mut self, now: Time) {
        self.providers.expire(now);
        self.fetching.expire(now);
        if self.table.len() < self.config.dht.k.get() && !self.table.is_empty() {
            // A thin table (a join through a seed that knew little, or heavy churn):
            // look for our own neighbourhood again, as a join would.
            if let Ok(q) = self.start(now, QueryKind::Refresh, self.id, Strategy::Iterative) {
                self.launch(now, q);
            }
        }
        self.refresh_stale_buckets(now);
        self.republish_due(now);
    }

    /// Kademlia's bucket refresh: a lookup for a random id in each bucket that no
    /// lookup touched for `refresh_interval`, a bounded number per round.
    fn refresh_stale_buckets(&mut self, now: Time) {
        let stale = self
            .table
            .stale_buckets(now, self.config.dht.refresh_interval);
        for index in stale
            .into_iter()
            .take(self.config.dht.max_refreshes_per_round)
        {
            let random = self.random_id();
            let target = self
                .table
                .metric()
                .random_id_in_bucket(&self.id, index, &random);
            // Implementation note: refreshes walk iteratively under both strategies,
            // since the point is to meet the peers along the way.
            match self.start(now, QueryKind::Refresh, target, Strategy::Iterative) {
                Ok(q) => self.launch(now, q),
                Err(_) => break,
            }
        }
    }

    /// After a join: refresh the buckets farther than the closest neighbour, so the
    /// newcomer knows (and is known by) peers at every distance, not just nearby.
    pub(super) fn join_refresh(&mut self, now: Time) {
        let Some(closest) = self.table.closest(&self.id, 1).first().map(|c| c.id) else {
            return;
        };
        // The scale of the gap to the nearest neighbour: the bucket we fall into
        // in *its* table. Under a symmetric metric that is the bucket it sits in
        // here. Implementation note: under an asymmetric one (the ring), the
        // self-lookup found the nodes that rank us closest (our successors), not
        // the ones we rank closest (our predecessors, our lowest buckets);
        // refreshing the buckets just above that gap reaches them.
        let Some(from) = self.table.metric().bucket_index(&closest, &self.id) else {
            return;
        };
        for index in (from + 1..crate::id::ID_BITS).take(self.config.dht.join_refreshes) {
            let random = self.random_id();
            let target = self
                .table
                .metric()
                .random_id_in_bucket(&self.id, index, &random);
            match self.start(now, QueryKind::Refresh, target, Strategy::Iterative) {
                Ok(q) => self.launch(now, q),
                Err(_) => break,
            }
        }
    }

    /// Re-announces every provided key whose republish time has come.
    fn republish_due(&mut self, now: Time) {
        // Leave room for the user's own queries.
        let room = self
            .config
            .limits
            .max_queries
            .get()
            .saturating_sub(self.queries.len())
            / 2;
        let room = room.saturating_sub(self.republish_names_due(now, room));
        for key in self.provided.take_due(now, room) {
            self.provided
                .insert(key, now + self.config.records.republish_interval);
            match self.start(now, QueryKind::Announce, key, self.config.dht.strategy) {
                Ok(q) => {
                    if let Some(query) = self.queries.get_mut(&q) {
                        query.internal = true;
                    }
                    self.launch(now, q);
                }
                Err(_) => break,
            }
        }
    }
}

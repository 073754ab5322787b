//! Scheduled actions: joins and leaves (churn), and commands on nodes.

use std::sync::Arc;

use distroweb_protocol::{Id, MemoryStore, Node, QueryKind, Reach};

use super::Sim;
use crate::action::Action;
use crate::addr::NodeIdx;
use crate::config::Rejoin;
use crate::membership::Seeds;
use crate::network::NatMode;
use crate::seed::{node_id, node_seed};

impl Sim {
    pub(super) fn act(&mut self, action: Action) {
        let now = self.now;
        match action {
            Action::Join { node, seeds } => self.join(node, seeds),
            Action::Leave { node, incarnation } => {
                let up = self
                    .slots
                    .get(node.index())
                    .is_some_and(|s| s.up && s.incarnation == incarnation);
                if up {
                    self.leave(node);
                }
            }
            Action::FindProviders { node, key } => {
                self.run_command(node, QueryKind::FindProviders, |n| {
                    n.find_providers(now, key)
                })
            }
            Action::FindNode { node, target } => {
                self.run_command(node, QueryKind::FindNode, |n| n.find_node(now, target))
            }
            Action::Announce { node, key } => {
                if self.is_up(node) && self.serves(node) {
                    self.add_announcer(key, node);
                }
                self.run_command(node, QueryKind::Announce, |n| n.announce(now, key))
            }
            Action::Publish {
                node,
                data,
                media_type,
            } => {
                // Success is counted when `Event::Published` says the blocks are stored.
                let published = self.command(node, |n, now| n.publish_file(now, data, &media_type));
                if !matches!(published, Some(Ok(_))) {
                    self.metrics.fetches.publish_failed += 1;
                }
            }
            Action::PublishName { node, record } => {
                let ran = self.command(node, |n, now| n.publish_name(now, *record).is_ok());
                if ran == Some(true) {
                    self.metrics.names.publish(&record, now);
                }
                let k = self.metrics.kind_mut(QueryKind::PublishName);
                match ran {
                    Some(true) => k.issued += 1,
                    Some(false) => k.refused += 1,
                    None => k.skipped += 1,
                }
            }
            Action::ResolveName { node, name } => {
                let ran = self.command(node, |n, now| {
                    // Whether the node serves a version already while it asks.
                    let warm = n.name_record(&name).is_some();
                    n.resolve_name(now, name).map(|q| (q, warm))
                });
                if let Some(Ok((q, warm))) = ran {
                    self.metrics.names.start(node, q, &name, warm);
                }
                let k = self.metrics.kind_mut(QueryKind::ResolveName);
                match ran {
                    Some(Ok(_)) => k.issued += 1,
                    Some(Err(_)) => k.refused += 1,
                    None => k.skipped += 1,
                }
            }
            Action::Fetch { node, root } => {
                let ran = self.command(node, |n, now| n.fetch(now, root).is_ok());
                let f = &mut self.metrics.fetches;
                match ran {
                    Some(true) => f.issued += 1,
                    Some(false) => f.refused += 1,
                    None => f.skipped += 1,
                }
            }
        }
    }

    /// Whether `node`'s behaviour wrapper (if any) serves what it announces.
    pub(super) fn serves(&self, node: NodeIdx) -> bool {
        self.slots
            .get(node.index())
            .and_then(|s| s.behaviour.as_ref())
            .is_none_or(|b| b.serves())
    }

    /// Notes that `node` announced `key`, so provider lookups that name it are right.
    pub(super) fn add_announcer(&mut self, key: Id, node: NodeIdx) {
        let holders = self.announcers.entry(key).or_default();
        if !holders.contains(&node) {
            holders.push(node);
        }
    }

    fn run_command<E>(
        &mut self,
        node: NodeIdx,
        kind: QueryKind,
        f: impl FnOnce(&mut Node<NodeIdx>) -> Result<distroweb_protocol::QueryId, E>,
    ) {
        let ran = self.command(node, |n, _| f(n).is_ok());
        if let (Some(ts), QueryKind::FindProviders, Some(true)) =
            (self.timeseries.as_mut(), kind, ran)
        {
            ts.lookup_issued();
        }
        let k = self.metrics.kind_mut(kind);
        match ran {
            Some(true) => k.issued += 1,
            Some(false) => k.refused += 1,
            None => k.skipped += 1,
        }
    }

    fn join(&mut self, idx: NodeIdx, seeds: Seeds) {
        let now = self.now;
        let Some(slot) = self.slots.get_mut(idx.index()) else {
            return;
        };
        if slot.up {
            return;
        }
        slot.incarnation += 1;
        slot.up = true;
        let fresh = slot.node.is_none()
            || self
                .config
                .churn
                .as_ref()
                .is_some_and(|c| c.rejoin == Rejoin::LoseState);
        if fresh {
            let config = match slot.protocol.as_ref() {
                Some(own) => Arc::clone(own),
                None => Arc::clone(&self.protocol),
            };
            let id = slot.id.unwrap_or_else(|| node_id(self.config.seed, idx.0));
            let node = Node::with_shared_config(
                config,
                id,
                idx,
                node_seed(self.config.seed, idx.0, slot.incarnation),
                now,
            )
            .expect("protocol configs are validated by Sim::new and Sim::set_protocol");
            let mut node = Box::new(node);
            // The calendar a live driver reads from the system clock: the
            // run's fixed epoch plus virtual time.
            let unix = self.config.calendar_epoch + now.as_micros() / 1_000_000;
            node.set_calendar(now, unix);
            slot.node = Some(node);
            slot.store = MemoryStore::default();
        }
        let incarnation = slot.incarnation;
        self.digest
            .record(&[now.as_micros(), 6, u64::from(idx.0), u64::from(incarnation)]);
        let mut peers = std::mem::take(&mut self.scratch_seeds);
        peers.clear();
        // Bootstrap servers are public: a NATed seed could not be dialled.
        let network = &self.network;
        self.membership.pick_seeds(
            &seeds,
            idx,
            now,
            self.config.seed_min_age,
            &mut self.churn_rng,
            |n| !network.is_nated(n),
            &mut peers,
        );
        self.membership.insert(idx, now);
        self.set_nat_reach(idx);
        if !peers.is_empty() {
            if let Some(node) = self.slots[idx.index()].node.as_mut() {
                if node.bootstrap(now, &peers).is_ok() {
                    self.metrics.kind_mut(QueryKind::Bootstrap).issued += 1;
                }
            }
        }
        self.scratch_seeds = peers;
        self.settle(idx);
        let permanent = self.slots[idx.index()].permanent;
        if let (Some(churn), false) = (&self.config.churn, permanent) {
            let session = churn.session.sample(&mut self.churn_rng);
            self.schedule(
                now + session,
                Action::Leave {
                    node: idx,
                    incarnation,
                },
            );
        }
    }

    /// Tells a NATed node that just came up how peers reach it, as a live
    /// node finds out by dial-backs: as public (naive), not at all (client
    /// mode), or through the relay it reserves at now (relays).
    fn set_nat_reach(&mut self, idx: NodeIdx) {
        let Some(nat) = self.network.nat_mut() else {
            return;
        };
        if !nat.is_nated(idx) {
            return;
        }
        let reach = match nat.config().mode {
            NatMode::Naive => Reach::Direct,
            NatMode::Client => Reach::Client,
            NatMode::Relays => match nat.reserve(idx, self.membership.up()) {
                Some(_) => Reach::Relayed,
                None => Reach::Client,
            },
        };
        if let Some(node) = self.slots[idx.index()].node.as_mut() {
            node.set_reach(reach);
        }
    }

    fn leave(&mut self, idx: NodeIdx) {
        let now = self.now;
        let slot = &mut self.slots[idx.index()];
        slot.up = false;
        self.membership.remove(idx);
        if let Some(nat) = self.network.nat_mut() {
            // Its connections close; if it was a relay, its clients reserve
            // elsewhere (or fall back to client mode).
            for orphan in nat.leave(idx) {
                if self.slots[orphan.index()].up {
                    self.set_nat_reach(orphan);
                }
            }
        }
        let slot = &mut self.slots[idx.index()];
        self.digest.record(&[now.as_micros(), 7, u64::from(idx.0)]);
        let Some(churn) = &self.config.churn else {
            return;
        };
        if churn.rejoin == Rejoin::LoseState {
            slot.node = None;
            slot.store = MemoryStore::default();
            self.metrics.names.forget_node(idx);
        }
        let down = churn.downtime.sample(&mut self.churn_rng);
        let seeds = Seeds::Established(churn.rejoin_seeds);
        self.schedule(now + down, Action::Join { node: idx, seeds });
    }

    /// Keeps `node` out of churn: once it joins it never leaves on its own
    /// (a publisher on a server that stays up while its readers come and go).
    /// A [`Sim::crash`] still takes it down. Call before it joins.
    pub fn keep_up(&mut self, node: NodeIdx) {
        if let Some(s) = self.slots.get_mut(node.index()) {
            s.permanent = true;
        }
    }

    /// Takes `node` down now (a crash or departure); with churn configured it comes
    /// back after a down time, otherwise it stays down until joined again.
    pub fn crash(&mut self, node: NodeIdx) {
        if self.is_up(node) {
            self.leave(node);
        }
    }
}

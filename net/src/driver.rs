//! The node task: the only owner of the protocol `Node`.
//!
//! It waits on three things — transport inputs, commands and one timer — feeds
//! each to the node with the current time, and then drains the node as its
//! contract demands: transmits, then events, then the next deadline. The timer
//! is re-armed only when that deadline changes.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use distroweb_protocol::{
    CommandError, Event, FetchId, FetchStats, Id, Manifest, Node, QueryId, QueryKind, Time,
    Transmit,
};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Sleep;

use crate::clock::Clock;
use crate::connection::{ConnId, Established, Input, Outbox, Shared};
use crate::data_dir::{DataDir, MAX_REMEMBERED_PEERS};
use crate::dial;
use crate::error::NetError;
use crate::fetching::FetchProgress;
use crate::frame;
use crate::handle::{Command, Publish, QueryCommand, QueryDone};
use crate::holdings::{manifest_size, Holdings};
use crate::stats::TransportStats;
use crate::status::{output_size, FetchRecord, QueryRecord, Status};

/// A connection the node task can write to.
#[derive(Debug)]
struct Conn {
    id: ConnId,
    frames: Outbox,
}

/// A finished query and when it finished.
#[derive(Debug)]
struct Finished {
    record: QueryRecord,
    at: Time,
}

/// What the node task listens to besides its timers.
pub(crate) struct Inbox {
    /// From the transport.
    pub inputs: mpsc::Receiver<Input>,
    /// From node handles.
    pub commands: mpsc::Receiver<Command>,
}

/// The node task's state.
pub(crate) struct Driver {
    node: Node<SocketAddr>,
    clock: Clock,
    shared: Arc<Shared>,
    /// The address the listener is bound to.
    listen: SocketAddr,
    inputs: mpsc::Receiver<Input>,
    commands: mpsc::Receiver<Command>,
    /// The connection used to reach each peer, by the peer's address.
    conns: BTreeMap<SocketAddr, Conn>,
    /// Frames waiting for a dial in progress, by peer address.
    dialing: BTreeMap<SocketAddr, Vec<Bytes>>,
    /// Callers waiting for their query to finish (bounded by the node's `max_queries`).
    waiters: BTreeMap<QueryId, oneshot::Sender<Result<QueryDone, NetError>>>,
    recent: VecDeque<Finished>,
    queries_succeeded: u64,
    queries_failed: u64,
    /// Peers found unreachable while draining; reported to the node afterwards.
    unreachable: Vec<SocketAddr>,
    /// The deadline the timer is armed for.
    armed: Option<Time>,
    /// Where known peers and held content are saved, if anywhere.
    data_dir: Option<DataDir>,
    /// Content held complete, pinned or cached.
    holdings: Holdings,
    /// Progress signals of running fetches (bounded by the node's `max_fetches`).
    fetch_watch: BTreeMap<FetchId, (Id, watch::Sender<FetchProgress>)>,
    recent_fetches: VecDeque<(FetchRecord, Time)>,
    fetches_succeeded: u64,
    fetches_failed: u64,
    /// Keys to announce again after a (re)join, a few queries at a time.
    reannounce: VecDeque<Id>,
}

impl Driver {
    pub fn new(
        node: Node<SocketAddr>,
        clock: Clock,
        shared: Arc<Shared>,
        listen: SocketAddr,
        inbox: Inbox,
        data_dir: Option<DataDir>,
        holdings: Holdings,
    ) -> Self {
        Driver {
            node,
            clock,
            shared,
            listen,
            inputs: inbox.inputs,
            commands: inbox.commands,
            conns: BTreeMap::new(),
            dialing: BTreeMap::new(),
            waiters: BTreeMap::new(),
            recent: VecDeque::new(),
            queries_succeeded: 0,
            queries_failed: 0,
            unreachable: Vec::new(),
            armed: None,
            data_dir,
            holdings,
            fetch_watch: BTreeMap::new(),
            recent_fetches: VecDeque::new(),
            fetches_succeeded: 0,
            fetches_failed: 0,
            reannounce: VecDeque::new(),
        }
    }

    /// Runs until `shutdown` turns true (or its sender is dropped).
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let sleep = tokio::time::sleep_until(self.clock.instant(Time::MAX));
        tokio::pin!(sleep);
        let mut persist = tokio::time::interval(self.shared.config.persist_interval);
        persist.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        persist.reset();
        self.drain(sleep.as_mut());
        loop {
            tokio::select! {
                _ = shutdown.wait_for(|stop| *stop) => break,
                _ = persist.tick(), if self.data_dir.is_some() => {
                    self.save_peers(false);
                    continue;
                }
                Some(input) = self.inputs.recv() => self.on_input(input),
                Some(command) = self.commands.recv() => self.on_command(command),
                () = &mut sleep => {
                    self.armed = None;
                    self.node.handle_timeout(self.clock.now());
                }
            }
            self.drain(sleep.as_mut());
        }
        self.save_peers(true);
        // Dropping the waiters tells every caller the node stopped.
        tracing::debug!(waiting = self.waiters.len(), "node task stopped");
    }

    /// The drain contract: transmits, then events, then the timer.
    fn drain(&mut self, mut sleep: Pin<&mut Sleep>) {
        // Handling an event may issue commands (re-announcements, evictions) and a
        // failed send is an input: loop until one round finds nothing to do.
        loop {
            let mut busy = false;
            while let Some(t) = self.node.poll_transmit() {
                self.send(t);
                busy = true;
            }
            while let Some(e) = self.node.poll_event() {
                self.on_event(e);
                busy = true;
            }
            if !self.unreachable.is_empty() {
                let now = self.clock.now();
                for peer in std::mem::take(&mut self.unreachable) {
                    self.node.handle_send_failed(now, peer);
                }
                busy = true;
            }
            if !busy {
                break;
            }
        }
        let next = self.node.poll_timeout();
        if next != self.armed {
            self.armed = next;
            sleep
                .as_mut()
                .reset(self.clock.instant(next.unwrap_or(Time::MAX)));
        }
    }

    fn send(&mut self, t: Transmit<SocketAddr>) {
        let payload = match t.msg.encode() {
            Ok(p) if p.len() <= self.shared.config.max_frame_bytes => p,
            Ok(p) => {
                tracing::warn!(to = %t.to, len = p.len(), "dropping a message over the frame limit");
                return self.dropped(1);
            }
            Err(e) => {
                tracing::warn!(to = %t.to, "dropping an unencodable message: {e}");
                return self.dropped(1);
            }
        };
        let frame = frame::encode(&payload);
        let to = t.to;
        let frame = match self.conns.get(&to) {
            None => frame,
            Some(c) => match c.frames.try_send(frame) {
                Ok(()) => return,
                // The peer reads slower than we write: drop, as a lossy network
                // would; the protocol's timeouts and retries take it from here.
                Err(TrySendError::Full(_)) => return self.dropped(1),
                Err(TrySendError::Closed(frame)) => {
                    self.conns.remove(&to);
                    frame
                }
            },
        };
        if let Some(waiting) = self.dialing.get_mut(&to) {
            if waiting.len() < self.shared.config.max_frames_while_dialing {
                waiting.push(frame);
            } else {
                self.dropped(1);
            }
            return;
        }
        match dial::start(&self.shared, to) {
            Ok(()) => {
                self.dialing.insert(to, vec![frame]);
            }
            Err(e) => {
                tracing::debug!(peer = %to, "cannot send: {e}");
                self.dropped(1);
                self.unreachable.push(to);
            }
        }
    }

    fn dropped(&self, n: usize) {
        TransportStats::add(&self.shared.stats.frames_dropped, n);
    }

    fn on_input(&mut self, input: Input) {
        let now = self.clock.now();
        match input {
            Input::Message { from, msg } => self.node.handle_message(now, from, msg),
            Input::Up(est) => self.on_up(est),
            Input::Down { conn, peer, reason } => {
                if self.conns.get(&peer).is_some_and(|c| c.id == conn) {
                    self.conns.remove(&peer);
                    // Requests awaiting this peer will get no answer on this
                    // connection; let them fail now rather than at their deadline.
                    tracing::trace!(%peer, "reporting closed connection: {reason}");
                    self.unreachable.push(peer);
                }
            }
            Input::DialFailed { peer } => {
                if let Some(frames) = self.dialing.remove(&peer) {
                    self.dropped(frames.len());
                }
                if !self.conns.contains_key(&peer) {
                    self.unreachable.push(peer);
                }
            }
        }
    }

    fn on_up(&mut self, est: Established) {
        let Established { conn, peer, frames } = est;
        for frame in self.dialing.remove(&peer).into_iter().flatten() {
            if frames.try_send(frame).is_err() {
                self.dropped(1);
            }
        }
        // A newer connection replaces an older one; the older keeps reading until idle.
        self.conns.insert(peer, Conn { id: conn, frames });
    }

    fn on_command(&mut self, command: Command) {
        let now = self.clock.now();
        match command {
            Command::Query { what, reply } => {
                let started = match what {
                    QueryCommand::Bootstrap(seeds) => self.node.bootstrap(now, &seeds),
                    QueryCommand::FindNode(target) => self.node.find_node(now, target),
                    QueryCommand::FindProviders(key) => self.node.find_providers(now, key),
                    QueryCommand::Announce(key) => self.node.announce(now, key),
                };
                match started {
                    Ok(q) => {
                        self.waiters.insert(q, reply);
                    }
                    Err(e) => {
                        let _ = reply.send(Err(NetError::Refused(e)));
                    }
                }
            }
            Command::AddContact(contact) => self.node.add_contact(now, contact),
            Command::Status(reply) => {
                let _ = reply.send(self.status(now));
            }
            Command::Publish { what, reply } => {
                // Chunking, hashing and writing a large upload take a while:
                // let the runtime move the other tasks off this thread meanwhile.
                let multi_thread = tokio::runtime::Handle::current().runtime_flavor()
                    == tokio::runtime::RuntimeFlavor::MultiThread;
                let published = if multi_thread {
                    tokio::task::block_in_place(|| self.publish(now, what))
                } else {
                    self.publish(now, what)
                };
                let _ = reply.send(published);
            }
            Command::Fetch { root, reply } => {
                self.holdings.touch(&root, now);
                let started = self.node.fetch(now, root).map(|fid| {
                    self.fetch_watch
                        .entry(fid)
                        .or_insert_with(|| (root, watch::channel(FetchProgress::default()).0))
                        .1
                        .subscribe()
                });
                let _ = reply.send(started.map_err(NetError::Refused));
            }
            Command::ReadBlock { id, reply } => {
                let _ = reply.send(self.node.read_block(&id).map_err(NetError::Store));
            }
            Command::Pin { root, reply } => {
                let pinned = self.holdings.pin(&root);
                if pinned {
                    self.save_holdings();
                }
                let _ = reply.send(if pinned {
                    Ok(())
                } else {
                    Err(NetError::NotHeldHere(root))
                });
            }
        }
    }

    fn publish(&mut self, now: Time, what: Publish) -> Result<Id, NetError> {
        let (result, size) = match what {
            Publish::File { data, media_type } => {
                let size = data.len() as u64;
                (self.node.publish_file(now, data, &media_type), size)
            }
            Publish::Site(files) => {
                let size = files.iter().map(|f| f.data.len() as u64).sum();
                (self.node.publish_site(now, files), size)
            }
        };
        let id = result?;
        tracing::info!(id = %id, bytes = size, "published");
        self.holdings.insert(id, true, size, now);
        self.save_holdings();
        Ok(id)
    }

    /// Evicts cached content, least recently used first, until `incoming` more
    /// bytes fit under the store's capacity. Published and pinned content, and
    /// content used within `eviction_grace`, is never evicted.
    fn make_room(&mut self, now: Time, incoming: u64) {
        let capacity = self.node.config().store_capacity_bytes;
        let over =
            |node: &Node<SocketAddr>| node.content_store().byte_count() + incoming > capacity;
        if !over(&self.node) {
            return;
        }
        let mut evicted = false;
        for root in self
            .holdings
            .evictable(now, self.shared.config.eviction_grace)
        {
            if !over(&self.node) {
                break;
            }
            match self.node.forget(&root) {
                Ok(blocks) => {
                    tracing::info!(root = %root.short(), blocks, "evicted cached content to make room");
                    self.holdings.remove(&root);
                    evicted = true;
                }
                Err(e) => tracing::warn!(root = %root.short(), "could not evict: {e}"),
            }
        }
        if evicted {
            self.save_holdings();
        }
        if over(&self.node) {
            tracing::warn!(
                capacity,
                incoming,
                "the store stays full: the rest is published, pinned or in use"
            );
        }
    }

    fn save_holdings(&self) {
        if let Some(dir) = &self.data_dir {
            self.holdings.save(dir);
        }
    }

    /// Announces what this node provides again, a few queries at a time, so that
    /// content published or held while the node was alone becomes findable.
    fn pump_reannounce(&mut self, now: Time) {
        let limit = self.node.config().max_queries / 2;
        while self.node.queries_running() < limit {
            let Some(key) = self.reannounce.pop_front() else {
                return;
            };
            match self.node.announce(now, key) {
                Ok(_) => {}
                Err(CommandError::TooManyQueries { .. }) => {
                    self.reannounce.push_front(key);
                    return;
                }
                Err(e) => tracing::debug!(key = %key.short(), "not re-announcing: {e}"),
            }
        }
    }

    fn on_event(&mut self, event: Event<SocketAddr>) {
        let now = self.clock.now();
        match event {
            Event::QueryFinished {
                id,
                kind,
                target,
                result,
                stats,
            } => {
                tracing::debug!(?kind, target = %target.short(), ok = result.is_ok(), hops = stats.hops, "query finished");
                if result.is_ok() {
                    self.queries_succeeded += 1;
                } else {
                    self.queries_failed += 1;
                }
                if self.recent.len() >= self.shared.config.recent_queries {
                    self.recent.pop_back();
                }
                self.recent.push_front(Finished {
                    record: QueryRecord {
                        kind,
                        target,
                        outcome: result.as_ref().map(output_size).map_err(|e| *e),
                        hops: stats.hops,
                        requests: stats.requests,
                        elapsed: stats.finished.saturating_since(stats.started),
                        age: Default::default(),
                    },
                    at: now,
                });
                let joined = kind == QueryKind::Bootstrap && result.is_ok();
                if let Some(reply) = self.waiters.remove(&id) {
                    let done = result
                        .map(|output| QueryDone { output, stats })
                        .map_err(NetError::Query);
                    let _ = reply.send(done);
                }
                if joined {
                    self.reannounce = self.node.provided_keys().copied().collect();
                    tracing::info!(
                        keys = self.reannounce.len(),
                        "joined: announcing held content"
                    );
                }
                self.pump_reannounce(now);
            }
            Event::ManifestVerified {
                fetch,
                id,
                manifest,
            } => {
                if self
                    .fetch_watch
                    .get(&fetch)
                    .is_some_and(|(root, _)| *root == id)
                {
                    // Now the size is known: make room before the chunks arrive.
                    self.make_room(now, manifest_size(&manifest));
                }
                if let Some((_, tx)) = self.fetch_watch.get(&fetch) {
                    tx.send_modify(|p| p.verified += 1);
                }
            }
            Event::ChunkVerified { fetch, .. } => {
                if let Some((_, tx)) = self.fetch_watch.get(&fetch) {
                    tx.send_modify(|p| p.verified += 1);
                }
            }
            Event::FetchFinished {
                id,
                root,
                result,
                stats,
            } => self.fetch_finished(now, id, root, result, stats),
            Event::PeerMisbehaved { peer, reason } => {
                tracing::warn!(peer = %peer.addr, peer_id = %peer.id.short(), ?reason, "peer misbehaved");
            }
        }
    }

    fn fetch_finished(
        &mut self,
        now: Time,
        id: FetchId,
        root: Id,
        result: Result<Manifest, distroweb_protocol::FetchError>,
        stats: FetchStats<SocketAddr>,
    ) {
        let outcome = result.as_ref().map(manifest_size).map_err(Clone::clone);
        if outcome.is_ok() && stats.lookups == 0 && stats.bytes == 0 {
            // Served from the store without asking anyone: nothing to record.
            self.holdings.touch(&root, now);
            if let Some((_, tx)) = self.fetch_watch.remove(&id) {
                tx.send_modify(|p| p.outcome = Some(Ok(())));
            }
            return;
        }
        match &outcome {
            Ok(_) => self.fetches_succeeded += 1,
            Err(_) => self.fetches_failed += 1,
        }
        match &outcome {
            Ok(size) => {
                tracing::info!(root = %root.short(), bytes = size, from_peers = stats.bytes, "fetched");
                self.holdings.insert(root, false, *size, now);
                self.save_holdings();
            }
            Err(e) => tracing::info!(root = %root.short(), "fetch failed: {e}"),
        }
        if let Some((_, tx)) = self.fetch_watch.remove(&id) {
            tx.send_modify(|p| p.outcome = Some(result.map(|_| ())));
        }
        self.make_room(now, 0);
        if self.recent_fetches.len() >= self.shared.config.recent_queries {
            self.recent_fetches.pop_back();
        }
        let record = FetchRecord {
            root,
            outcome,
            bytes_from_peers: stats.bytes,
            providers_used: stats.providers.iter().filter(|p| p.bytes > 0).count(),
            lookups: stats.lookups,
            first_byte: stats.first_byte.map(|t| t.saturating_since(stats.started)),
            elapsed: stats.finished.saturating_since(stats.started),
            age: Default::default(),
        };
        self.recent_fetches.push_front((record, now));
    }

    /// Saves the routing table's contacts, on a blocking thread unless `now`
    /// (at shutdown, when the runtime may not run another task to completion).
    fn save_peers(&self, now: bool) {
        let Some(dir) = self.data_dir.clone() else {
            return;
        };
        let peers: Vec<_> = self
            .node
            .routing_table()
            .contacts()
            .take(MAX_REMEMBERED_PEERS)
            .cloned()
            .collect();
        if peers.is_empty() {
            // Keep the last run's list rather than forget everyone while isolated.
            return;
        }
        let save = move || {
            if let Err(e) = dir.save_peers(&peers) {
                tracing::warn!("could not save known peers: {e}");
            }
        };
        if now {
            save();
        } else {
            tokio::task::spawn_blocking(save);
        }
    }

    fn status(&self, now: Time) -> Status {
        let table = self.node.routing_table();
        Status {
            id: self.node.id(),
            listen: self.listen,
            advertised: *self.node.addr(),
            uptime: now.saturating_since(Time::ZERO),
            peers: table.contacts().take(Status::MAX_PEERS).cloned().collect(),
            routing_table_len: table.len(),
            buckets_in_use: table.buckets_in_use(),
            connected_peers: self.conns.len(),
            open_connections: self.shared.open_connections(),
            provided_keys: self.node.provided_keys().count(),
            tracked_keys: self.node.provider_store().key_count(),
            tracked_records: self.node.provider_store().record_count(),
            queries_running: self.node.queries_running(),
            queries_succeeded: self.queries_succeeded,
            queries_failed: self.queries_failed,
            counters: *self.node.counters(),
            transport: self.shared.stats.snapshot(),
            recent: self
                .recent
                .iter()
                .map(|f| QueryRecord {
                    age: now.saturating_since(f.at),
                    ..f.record.clone()
                })
                .collect(),
            held: self
                .holdings
                .iter()
                .take(Status::MAX_HELD)
                .map(|(id, h)| (*id, *h))
                .collect(),
            held_count: self.node.held_content().count(),
            store_bytes: self.node.content_store().byte_count(),
            store_blocks: self.node.content_store().block_count(),
            store_capacity_bytes: self.node.config().store_capacity_bytes,
            fetches_running: self.node.fetches_running(),
            fetches_succeeded: self.fetches_succeeded,
            fetches_failed: self.fetches_failed,
            fetches: self
                .recent_fetches
                .iter()
                .map(|(r, at)| FetchRecord {
                    age: now.saturating_since(*at),
                    ..r.clone()
                })
                .collect(),
        }
    }
}

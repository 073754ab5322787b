//! The node task: the only owner of the protocol `Node`.
//!
//! It waits on four things — transport inputs, commands, storage completions
//! and one timer — feeds each to the node with the current time, and then
//! drains the node with the protocol's one loop ([`drain`]): transmits go to
//! connections, storage operations to the [`StorePool`], events to the waiting
//! callers. The timer is re-armed only when the node's deadline changes.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use distroweb_protocol::{
    drain, Body, CommandError, Event, FetchId, FetchStats, Id, Input, Manifest, Message, Node,
    Prepared, QueryId, QueryKind, Reach, StoreDone, StoreOp, Time, Transmit,
};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot, watch, Notify};
use tokio::time::Sleep;

use crate::clock::Clock;
use crate::connection::{
    ConnId, Direction, Established, Input as TransportInput, Outbox, Shared, Via,
};
use crate::data_dir::{DataDir, MAX_REMEMBERED_PEERS};
use crate::dial::{self, Room};
use crate::dial_limits::{DialLimits, Trust};
use crate::error::{Chain, NetError};
use crate::fetching::FetchProgress;
use crate::handle::{Command, Publish, QueryCommand, QueryDone};
use crate::holdings::{content_size, manifest_size, Holdings};
use crate::stats::TransportStats;
use crate::status::{output_size, ConnectionStatus, FetchRecord, QueryRecord, Status};
use crate::store_pool::StorePool;
use crate::upload::UploadId;
use crate::upload_blocks::{Registration, UploadBlocks};

/// Peers offered at once to the relay reservation's search.
const MAX_RELAY_CANDIDATES: usize = 8;

/// A connection the node task can write to.
#[derive(Debug)]
struct Conn {
    id: ConnId,
    /// Where the node knows the peer: the address dialled, or for an inbound
    /// connection the IP seen and the port the peer stated.
    addr: SocketAddr,
    frames: Outbox,
    direction: Direction,
    via: Via,
    /// When it last carried a message either way: the least recently used
    /// outbound connection is closed first to make room.
    last_used: Instant,
    /// Closes the connection.
    close: Arc<Notify>,
}

/// A connection a newer one to the same peer replaced: the peer may still
/// send on it, so it stays open (until idle) unless its slot is needed.
#[derive(Debug)]
struct Lingering {
    direction: Direction,
    close: Arc<Notify>,
}

/// A dial in progress: what it must prove, how it counts against the dial
/// limits, and the frames waiting for it with the id each one requires.
#[derive(Debug)]
struct Dialing {
    expect: Option<Id>,
    trust: Trust,
    frames: Vec<(Option<Id>, Bytes)>,
}

/// A finished query and when it finished.
#[derive(Debug)]
struct Finished {
    record: QueryRecord,
    at: Time,
}

/// A caller waiting for its publication: the content's size, and where to answer.
type PublishWaiter = (u64, oneshot::Sender<Result<Id, NetError>>);

/// What the node task listens to besides its timers.
pub(crate) struct Inbox {
    /// From the transport.
    pub inputs: mpsc::Receiver<TransportInput>,
    /// From node handles (and from the blocking tasks that prepare publications).
    pub commands: mpsc::Receiver<Command>,
    /// A sender of commands, for those blocking tasks.
    pub commands_tx: mpsc::Sender<Command>,
    /// Storage operations go here.
    pub pool: StorePool,
    /// Their completions come back here.
    pub stored: mpsc::Receiver<StoreDone>,
}

/// The node task: the node, and everything that drives it.
pub(crate) struct Driver {
    node: Node<SocketAddr>,
    io: Io,
    inputs: mpsc::Receiver<TransportInput>,
    commands: mpsc::Receiver<Command>,
    stored: mpsc::Receiver<StoreDone>,
}

/// The node task's state besides the node: connections, callers, the store.
struct Io {
    clock: Clock,
    shared: Arc<Shared>,
    /// The address the listener is bound to.
    listen: SocketAddr,
    pool: StorePool,
    commands_tx: mpsc::Sender<Command>,
    /// The connection used to reach each peer, by the id it proved.
    conns: BTreeMap<Id, Conn>,
    /// Connections replaced by newer ones and still open, oldest first (each
    /// holds a connection slot, so the slots bound them).
    lingering: BTreeMap<ConnId, Lingering>,
    /// The ids of outbound connections by the address dialled, for bootstrap
    /// seeds (whose id the node does not know yet).
    dialed: BTreeMap<SocketAddr, Id>,
    /// Dials in progress, by address and the id they must prove: one relay
    /// address reaches the relay and every node it holds a reservation of.
    dialing: BTreeMap<(SocketAddr, Option<Id>), Dialing>,
    /// Which dials may be made.
    limits: DialLimits,
    /// Callers waiting for their query to finish (bounded by the node's `max_queries`).
    waiters: BTreeMap<QueryId, oneshot::Sender<Result<QueryDone, NetError>>>,
    recent: VecDeque<Finished>,
    queries_succeeded: u64,
    queries_failed: u64,
    /// Callers waiting for a publication's blocks to be stored, by root.
    publishing: BTreeMap<Id, Vec<PublishWaiter>>,
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
    /// The blocks uploads write themselves, until the node adopts them.
    uploads: UploadBlocks,
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
        let limits = DialLimits::new(&shared.config);
        Driver {
            node,
            inputs: inbox.inputs,
            commands: inbox.commands,
            stored: inbox.stored,
            io: Io {
                clock,
                shared,
                listen,
                pool: inbox.pool,
                commands_tx: inbox.commands_tx,
                conns: BTreeMap::new(),
                lingering: BTreeMap::new(),
                dialed: BTreeMap::new(),
                dialing: BTreeMap::new(),
                limits,
                waiters: BTreeMap::new(),
                recent: VecDeque::new(),
                queries_succeeded: 0,
                queries_failed: 0,
                publishing: BTreeMap::new(),
                armed: None,
                data_dir,
                holdings,
                fetch_watch: BTreeMap::new(),
                recent_fetches: VecDeque::new(),
                fetches_succeeded: 0,
                fetches_failed: 0,
                reannounce: VecDeque::new(),
                uploads: UploadBlocks::default(),
            },
        }
    }

    /// Runs until `shutdown` turns true (or its sender is dropped).
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let sleep = tokio::time::sleep_until(self.io.clock.instant(Time::MAX));
        tokio::pin!(sleep);
        let mut persist = tokio::time::interval(self.io.shared.config.persist_interval);
        persist.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        persist.reset();
        let now = self.io.clock.now();
        self.io.clock.anchor_calendar(&mut self.node, now);
        self.settle(sleep.as_mut());
        loop {
            tokio::select! {
                _ = shutdown.wait_for(|stop| *stop) => break,
                _ = persist.tick(), if self.io.data_dir.is_some() => {
                    self.io.save_peers(&self.node, false);
                    continue;
                }
                Some(input) = self.inputs.recv() => self.io.on_input(&mut self.node, input),
                Some(command) = self.commands.recv() => self.io.on_command(&mut self.node, command),
                Some(done) = self.stored.recv() => {
                    let now = self.io.clock.now();
                    let waiting = self.io.uploads.node_op_done(&done);
                    self.node.handle_input(now, Input::Stored(done));
                    self.io.retry_parked(&mut self.node, now, waiting);
                }
                () = &mut sleep => {
                    self.io.armed = None;
                    let now = self.io.clock.now();
                    // Maintenance wakes the node at least every
                    // `maintenance_interval`: re-anchoring here keeps the
                    // calendar within that of the system's.
                    self.io.clock.anchor_calendar(&mut self.node, now);
                    self.node.handle_input(now, Input::Timeout);
                }
            }
            self.settle(sleep.as_mut());
        }
        self.io.save_peers(&self.node, true);
        // Dropping the waiters tells every caller the node stopped.
        tracing::debug!(waiting = self.io.waiters.len(), "node task stopped");
    }

    /// Drains the node with the protocol's one loop, then re-arms the timer if
    /// the node's deadline moved.
    fn settle(&mut self, mut sleep: Pin<&mut Sleep>) {
        let now = self.io.clock.now();
        let next = drain(&mut self.node, now, &mut self.io);
        if Some(next) != self.io.armed {
            self.io.armed = Some(next);
            sleep.as_mut().reset(self.io.clock.instant(next));
        }
    }
}

impl distroweb_protocol::Driver<SocketAddr> for Io {
    fn transmit(&mut self, node: &mut Node<SocketAddr>, now: Time, t: Transmit<SocketAddr>) {
        if let Err(peer) = self.send(t) {
            // Requests awaiting this peer fail now, not at their deadline.
            node.handle_input(now, Input::SendFailed { to: peer });
        }
    }

    fn store(&mut self, node: &mut Node<SocketAddr>, now: Time, op: StoreOp) {
        self.submit(node, now, op);
    }

    fn event(&mut self, node: &mut Node<SocketAddr>, _: Time, event: Event<SocketAddr>) {
        self.on_event(node, event);
    }
}

impl Io {
    /// Queues a message on the connection of the id it is for (dialling if
    /// needed, and requiring the dial to prove that id); `Err` names a peer
    /// that cannot be reached at all.
    fn send(&mut self, t: Transmit<SocketAddr>) -> Result<(), SocketAddr> {
        let payload = match t.msg.encode() {
            Ok(p) if p.len() <= self.shared.config.max_frame_bytes => Bytes::from(p),
            Ok(p) => {
                tracing::warn!(to = %t.to, len = p.len(), "dropping a message over the frame limit");
                self.dropped(1);
                return Ok(());
            }
            Err(e) => {
                tracing::warn!(to = %t.to, "dropping an unencodable message: {e}");
                self.dropped(1);
                return Ok(());
            }
        };
        let to = t.to;
        // A message goes only to a connection that proved the id it is for;
        // a seed's (no id yet) to the connection dialled at its address.
        let via = t.to_id.or_else(|| self.dialed.get(&to).copied());
        let payload = match via.and_then(|id| self.conns.get_mut(&id).map(|c| (id, c))) {
            None => payload,
            Some((id, c)) => match c.frames.try_send(payload) {
                Ok(()) => {
                    c.last_used = Instant::now();
                    return Ok(());
                }
                // The peer reads slower than we write. A block is answered
                // "busy" instead, so the asker tries elsewhere at once rather
                // than waiting out its block timeout; anything else is
                // dropped, as a lossy network would, and the protocol's
                // timeouts and retries take it from there.
                Err(TrySendError::Full(_)) => {
                    if let Body::Block { id, .. } = &t.msg.body {
                        let busy: Message<SocketAddr> = Message {
                            sender: t.msg.sender,
                            rpc: t.msg.rpc,
                            body: Body::Busy { id: *id },
                        };
                        if let Ok(p) = busy.encode() {
                            if c.frames.try_send_small(Bytes::from(p)).is_ok() {
                                TransportStats::bump(&self.shared.stats.busy_for_full_queue);
                                return Ok(());
                            }
                        }
                    }
                    self.dropped(1);
                    return Ok(());
                }
                Err(TrySendError::Closed(payload)) => {
                    self.forget_conn(id);
                    payload
                }
            },
        };
        if let Some(waiting) = self.dialing.get_mut(&(to, t.to_id)) {
            if waiting.frames.len() < self.shared.config.max_frames_while_dialing {
                waiting.frames.push((t.to_id, payload));
            } else {
                self.dropped(1);
            }
            return Ok(());
        }
        let trust = match self.limits.start(std::time::Instant::now(), to, t.to_id) {
            Ok(trust) => trust,
            Err(e) => {
                tracing::debug!(peer = %to, "not dialling: {e}");
                TransportStats::bump(&self.shared.stats.dials_refused);
                self.dropped(1);
                return Err(to);
            }
        };
        // Every outbound slot taken: close a connection to make room rather
        // than fail the dial (a node that has talked to many peers must still
        // reach a new one), and have the dial wait for the slot it frees.
        let room = if self.shared.slots.outbound_full() && self.free_outbound_slot() {
            Room::Freeing
        } else {
            Room::Free
        };
        match dial::start(&self.shared, to, t.to_id, room) {
            Ok(()) => {
                self.dialing.insert(
                    (to, t.to_id),
                    Dialing {
                        expect: t.to_id,
                        trust,
                        frames: vec![(t.to_id, payload)],
                    },
                );
                Ok(())
            }
            Err(e) => {
                tracing::debug!(peer = %to, "cannot send: {e}");
                // Nothing reached the address: it neither failed nor succeeded.
                self.limits.abandoned(to, trust);
                self.dropped(1);
                Err(to)
            }
        }
    }

    /// Closes one outbound connection so that a dial can have its slot: the
    /// oldest that a newer connection replaced, else the least recently used.
    /// False when there is none to close (every slot is a dial in progress).
    ///
    /// Implementation note: closing only connections idle for a request
    /// timeout (so nothing could be in flight on them) was tried and failed
    /// the dial instead when none was; at 256 nodes on 37 slots each, a
    /// quarter of the provider lookups then missed. Closing the least
    /// recently used one at once found every provider.
    fn free_outbound_slot(&mut self) -> bool {
        let replaced = self
            .lingering
            .iter()
            .find(|(_, l)| l.direction == Direction::Outbound)
            .map(|(conn, _)| *conn);
        let closing = match replaced {
            Some(conn) => self.lingering.remove(&conn).map(|l| l.close),
            None => {
                let lru = self
                    .conns
                    .iter()
                    .filter(|(_, c)| c.direction == Direction::Outbound)
                    .min_by_key(|(_, c)| c.last_used)
                    .map(|(id, _)| *id);
                lru.and_then(|id| self.forget_conn(id)).map(|c| c.close)
            }
        };
        let Some(close) = closing else {
            return false;
        };
        close.notify_one();
        TransportStats::bump(&self.shared.stats.connections_trimmed);
        true
    }

    /// Closes every connection: their handshakes say what this node no
    /// longer is.
    /// Forgotten at once, so that what is sent next dials anew.
    fn close_all(&mut self) {
        let ids: Vec<Id> = self.conns.keys().copied().collect();
        for id in ids {
            if let Some(c) = self.forget_conn(id) {
                c.close.notify_one();
            }
        }
    }

    /// Forgets the connection of `id`, and the address index pointing to it.
    fn forget_conn(&mut self, id: Id) -> Option<Conn> {
        let c = self.conns.remove(&id)?;
        if self.dialed.get(&c.addr) == Some(&id) {
            self.dialed.remove(&c.addr);
        }
        Some(c)
    }

    fn dropped(&self, n: usize) {
        TransportStats::add(&self.shared.stats.frames_dropped, n);
    }

    fn on_input(&mut self, node: &mut Node<SocketAddr>, input: TransportInput) {
        let now = self.clock.now();
        match input {
            TransportInput::Message { from, msg, reach } => {
                if let Some(c) = self.conns.get_mut(&msg.sender) {
                    c.last_used = Instant::now();
                }
                node.handle_input(now, Input::Message { from, msg, reach });
            }
            TransportInput::Up(est) => self.on_up(node, est),
            TransportInput::Down {
                conn,
                peer_id,
                reason,
            } => {
                if self.conns.get(&peer_id).is_some_and(|c| c.id == conn) {
                    if let Some(c) = self.forget_conn(peer_id) {
                        // Requests awaiting this peer will get no answer on this
                        // connection; let them fail now rather than at their deadline.
                        tracing::trace!(peer = %c.addr, "reporting closed connection: {}", Chain(&reason));
                        node.handle_input(now, Input::SendFailed { to: c.addr });
                    }
                } else {
                    self.lingering.remove(&conn);
                }
            }
            TransportInput::Reachability(state) => {
                let private = state == crate::reachability::Reachability::Private;
                node.set_client_mode(private);
                if private {
                    // Their handshakes did not say client mode, so peers
                    // would keep adding this node to their tables through
                    // them; the connections that replace them say it.
                    self.close_all();
                }
            }
            TransportInput::Relayed(at) => {
                node.set_reach(if at.is_some() {
                    Reach::Relayed
                } else {
                    Reach::Client
                });
                // Their handshakes named no relay: the trackers of this
                // node's content learn its relay from the connections that
                // replace them, as its records are written again.
                self.close_all();
                if at.is_some() {
                    self.reannounce = node.provided_keys().copied().collect();
                    self.pump_reannounce(node, now);
                }
            }
            TransportInput::DialFailed {
                peer,
                expect,
                attempted,
            } => {
                if let Some(d) = self.dialing.remove(&(peer, expect)) {
                    if attempted {
                        self.limits
                            .failed(std::time::Instant::now(), peer, d.expect, d.trust);
                    } else {
                        self.limits.abandoned(peer, d.trust);
                    }
                    self.dropped(d.frames.len());
                }
                node.handle_input(now, Input::SendFailed { to: peer });
            }
        }
    }

    fn on_up(&mut self, node: &mut Node<SocketAddr>, est: Established) {
        let Established {
            conn,
            peer_id,
            peer,
            direction,
            via,
            frames,
            close,
        } = est;
        if direction == Direction::Outbound {
            let dial = (self.dialing.remove(&(peer, Some(peer_id))))
                .or_else(|| self.dialing.remove(&(peer, None)));
            if let Some(d) = dial {
                self.limits
                    .succeeded(std::time::Instant::now(), peer, peer_id, d.trust);
                let mut refused = false;
                for (want, frame) in d.frames {
                    // Frames queued for another id than the one proven never
                    // go out: the address now belongs to someone else.
                    if want.is_some_and(|w| w != peer_id) || frames.try_send(frame).is_err() {
                        refused |= want.is_some_and(|w| w != peer_id);
                        self.dropped(1);
                    }
                }
                if refused {
                    node.handle_input(self.clock.now(), Input::SendFailed { to: peer });
                }
            }
        }
        // A newer authenticated connection for the same id replaces an older
        // one (it is provably the same peer); the older keeps reading until idle.
        if let Some(old) = self.forget_conn(peer_id) {
            tracing::trace!(old = %old.addr, new = %peer, "a newer connection replaces an older one");
            self.lingering.insert(
                old.id,
                Lingering {
                    direction: old.direction,
                    close: old.close,
                },
            );
        }
        // A seed's address is the relay's own when a relayed node was
        // reached there, so only a direct connection names its address.
        if direction == Direction::Outbound && via == Via::Direct {
            self.dialed.insert(peer, peer_id);
        }
        self.conns.insert(
            peer_id,
            Conn {
                id: conn,
                addr: peer,
                frames,
                direction,
                via,
                last_used: Instant::now(),
                close,
            },
        );
    }

    fn on_command(&mut self, node: &mut Node<SocketAddr>, command: Command) {
        let now = self.clock.now();
        match command {
            Command::Query { what, reply } => {
                let started = match what {
                    QueryCommand::Bootstrap(seeds) => node.bootstrap(now, &seeds),
                    QueryCommand::FindNode(target) => node.find_node(now, target),
                    QueryCommand::FindProviders(key) => node.find_providers(now, key),
                    QueryCommand::Announce(key) => node.announce(now, key),
                    QueryCommand::ResolveName(name) => {
                        self.clock.anchor_calendar(node, now);
                        node.resolve_name(now, name)
                    }
                    QueryCommand::PublishName(record) => {
                        self.clock.anchor_calendar(node, now);
                        node.publish_name(now, record)
                    }
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
            Command::AddContact(contact) => node.add_contact(now, contact),
            Command::NameRecord { name, reply } => {
                self.clock.anchor_calendar(node, now);
                let _ = reply.send(node.name_record(&name));
            }
            Command::RelayCandidates(reply) => {
                let own = node.id();
                let metric = node.config().dht.metric;
                let mut peers: Vec<_> = node.routing_table().contacts().cloned().collect();
                peers.sort_by_key(|c| metric.distance(&own, &c.id));
                let peers = peers.into_iter().take(MAX_RELAY_CANDIDATES);
                let _ = reply.send(peers.map(|c| (c.addr, c.id)).collect());
            }
            Command::Status(reply) => {
                let _ = reply.send(self.status(node, now));
            }
            Command::Publish { what, reply } => self.prepare(node, what, reply),
            Command::Prepared {
                prepared,
                size,
                reply,
            } => self.publish(node, now, prepared, size, reply),
            Command::Fetch { root, reply } => {
                self.holdings.touch(&root, now);
                // Held content completes within `node.fetch`, but its event
                // lands only when the node is drained, after this reply: say
                // so now, or the reader, finding the fetch still running,
                // asks for a whole status snapshot to check for room.
                let held = node.holds(&root).then_some(FetchProgress {
                    verified: 0,
                    outcome: Some(Ok(())),
                });
                let started = node.fetch(now, root).map(|fid| {
                    let progress = held.clone().unwrap_or_default();
                    self.fetch_watch
                        .entry(fid)
                        .or_insert_with(|| (root, watch::channel(progress).0))
                        .1
                        .subscribe()
                });
                let _ = reply.send(started.map_err(NetError::Refused));
            }
            Command::Touch { root } => self.holdings.touch(&root, now),
            Command::Prioritise { root, block } => {
                if let Some(fetch) = node.fetch_running(&root) {
                    node.prioritise(now, fetch, block);
                }
            }
            Command::UploadBlock(registration) => self.upload_block(node, now, registration),
            Command::UploadFinish {
                upload,
                root,
                manifests,
                reply,
            } => self.upload_finish(node, now, upload, root, &manifests, reply),
            Command::UploadEnd { upload } => {
                let blocks = self.uploads.end(upload);
                tracing::debug!(upload, blocks = blocks.len(), "upload abandoned");
                self.clean(node, blocks.into_keys());
            }
            Command::UploadCleaned { ids } => {
                let (waiting, ops) = self.uploads.cleaned(&ids);
                for op in ops {
                    self.submit(node, now, op);
                }
                self.retry_parked(node, now, waiting);
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

    /// Chunks and hashes a publication on a blocking thread, off the node
    /// task; the result comes back as [`Command::Prepared`].
    fn prepare(
        &mut self,
        node: &Node<SocketAddr>,
        what: Publish,
        reply: oneshot::Sender<Result<Id, NetError>>,
    ) {
        let chunk_size = node.config().transfer.chunk_size;
        let back = self.commands_tx.clone();
        tokio::spawn(async move {
            let prepared = tokio::task::spawn_blocking(move || {
                let (prepared, size) = match what {
                    Publish::File { data, media_type } => {
                        let size = data.len() as u64;
                        let p = distroweb_protocol::content::prepare_file(
                            data,
                            &media_type,
                            chunk_size,
                        )
                        .map_err(distroweb_protocol::PublishError::from);
                        (p, size)
                    }
                    Publish::Site(files) => {
                        let size = files.iter().map(|f| f.data.len() as u64).sum();
                        let p = distroweb_protocol::content::prepare_site(files, chunk_size)
                            .map_err(distroweb_protocol::PublishError::from);
                        (p, size)
                    }
                };
                (prepared, size)
            })
            .await;
            match prepared {
                Ok((Ok(prepared), size)) => {
                    let command = Command::Prepared {
                        prepared,
                        size,
                        reply,
                    };
                    // A node that stopped meanwhile drops the reply, which says so.
                    let _ = back.send(command).await;
                }
                Ok((Err(e), _)) => {
                    let _ = reply.send(Err(NetError::Publish(e)));
                }
                Err(_) => {
                    let _ = reply.send(Err(NetError::Stopped));
                }
            }
        });
    }

    /// Hands prepared content to the node; the caller hears back once its
    /// blocks are stored (`Event::Published`).
    fn publish(
        &mut self,
        node: &mut Node<SocketAddr>,
        now: Time,
        prepared: Prepared,
        size: u64,
        reply: oneshot::Sender<Result<Id, NetError>>,
    ) {
        match node.publish(now, prepared) {
            Ok(id) => {
                let waiting = self.publishing.entry(id).or_default();
                waiting.push((size, reply));
            }
            Err(e) => {
                let _ = reply.send(Err(NetError::Publish(e)));
            }
        }
    }

    /// Hands one of the node's storage operations to the pool, unless the
    /// blocks uploads write say otherwise (see `upload_blocks.rs`).
    fn submit(&mut self, node: &mut Node<SocketAddr>, now: Time, op: StoreOp) {
        match self.uploads.node_op(op) {
            Ok(op) => self.pool.submit(op),
            Err(Some(done)) => node.handle_input(now, Input::Stored(done)),
            Err(None) => {}
        }
    }

    /// An upload is about to write a block: it may if the store has room
    /// (evicting cached content if need be), and need not if the node holds it.
    /// While the block is being removed, the answer waits.
    fn upload_block(&mut self, node: &mut Node<SocketAddr>, now: Time, r: Registration) {
        if self.uploads.busy(&r.id) {
            self.uploads.park(r);
            return;
        }
        let answer = self.register_upload_block(node, now, &r);
        let _ = r.reply.send(answer);
    }

    fn register_upload_block(
        &mut self,
        node: &mut Node<SocketAddr>,
        now: Time,
        r: &Registration,
    ) -> Result<bool, NetError> {
        if self.uploads.has(r.upload, &r.id) {
            return Ok(false);
        }
        let max = self.shared.config.max_uploads;
        if !self.uploads.is_running(r.upload) && self.uploads.running() >= max {
            return Err(NetError::Refused(CommandError::TooManyPublishes { max }));
        }
        let held = node.has_block(&r.id);
        if !held {
            let (bytes, blocks) = self.uploads.reserved();
            let (bytes, blocks) = (bytes + u64::from(r.len), blocks + 1);
            if node.room_for(bytes, blocks).is_err() {
                self.make_room(node, now, bytes);
            }
            node.room_for(bytes, blocks)
                .map_err(|e| NetError::Publish(e.into()))?;
        }
        self.uploads.register(r.upload, r.id, r.len, !held);
        Ok(!held)
    }

    /// Registrations that waited for a removal of their block, tried again.
    fn retry_parked(&mut self, node: &mut Node<SocketAddr>, now: Time, waiting: Vec<Registration>) {
        for r in waiting {
            self.upload_block(node, now, r);
        }
    }

    /// An upload wrote all of `root`: the node adopts it as published (the
    /// caller hears back on `Event::Published`); what it wrote that the node
    /// did not take is removed.
    fn upload_finish(
        &mut self,
        node: &mut Node<SocketAddr>,
        now: Time,
        upload: UploadId,
        root: Id,
        manifests: &[(Id, Manifest)],
        reply: oneshot::Sender<Result<Id, NetError>>,
    ) {
        let blocks = self.uploads.end(upload);
        let written = blocks.iter().map(|(id, len)| (*id, *len));
        match node.adopt_written(now, root, manifests, written) {
            Ok(()) => {
                let size = content_size(&root, manifests);
                self.publishing.entry(root).or_default().push((size, reply));
            }
            Err(e) => {
                tracing::warn!(id = %root, "refused an upload: {e}");
                let _ = reply.send(Err(NetError::Publish(e)));
            }
        }
        self.clean(node, blocks.into_keys());
    }

    /// Removes, on a blocking thread, the blocks of an ended upload that
    /// nothing else uses; `Command::UploadCleaned` reports back.
    fn clean(&mut self, node: &Node<SocketAddr>, blocks: impl IntoIterator<Item = Id>) {
        let ids = self.uploads.take_unused(blocks, |id| !node.has_block(id));
        if ids.is_empty() {
            return;
        }
        let store = self.pool.store().clone();
        let back = self.commands_tx.clone();
        tokio::task::spawn_blocking(move || {
            for id in &ids {
                if let Err(e) = store.remove(id) {
                    tracing::warn!(block = %id.short(), "could not remove an upload's block: {e}");
                }
            }
            // A node that stopped meanwhile needs no answer.
            let _ = back.blocking_send(Command::UploadCleaned { ids });
        });
    }

    /// A publication's blocks are stored (or could not be).
    fn published(
        &mut self,
        now: Time,
        root: Id,
        result: Result<(), distroweb_protocol::StoreError>,
    ) {
        let waiting = self.publishing.remove(&root).unwrap_or_default();
        match &result {
            Ok(()) => {
                let size = waiting.first().map_or(0, |(s, _)| *s);
                tracing::info!(id = %root, bytes = size, "published");
                self.holdings.insert(root, true, size, now);
                self.save_holdings();
            }
            Err(e) => tracing::warn!(id = %root, "could not store the publication: {e}"),
        }
        for (_, reply) in waiting {
            let _ = reply.send(
                result
                    .clone()
                    .map(|()| root)
                    .map_err(|e| NetError::Publish(e.into())),
            );
        }
    }

    /// Evicts cached content, least recently used first, until `incoming` more
    /// bytes fit under the store's capacity. Published and pinned content, and
    /// content used within `eviction_grace`, is never evicted.
    fn make_room(&mut self, node: &mut Node<SocketAddr>, now: Time, incoming: u64) {
        let capacity = node.config().transfer.store_capacity_bytes.get();
        let over = |node: &Node<SocketAddr>| node.byte_count() + incoming > capacity;
        if !over(node) {
            return;
        }
        let mut evicted = false;
        for root in self
            .holdings
            .evictable(now, self.shared.config.eviction_grace)
        {
            if !over(node) {
                break;
            }
            let blocks = node.forget(&root);
            tracing::info!(root = %root.short(), blocks, "evicted cached content to make room");
            self.holdings.remove(&root);
            evicted = true;
        }
        if evicted {
            self.save_holdings();
        }
        if over(node) {
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
    fn pump_reannounce(&mut self, node: &mut Node<SocketAddr>, now: Time) {
        let limit = node.config().limits.max_queries.get() / 2;
        while node.queries_running() < limit {
            let Some(key) = self.reannounce.pop_front() else {
                return;
            };
            match node.announce(now, key) {
                Ok(_) => {}
                Err(CommandError::TooManyQueries { .. }) => {
                    self.reannounce.push_front(key);
                    return;
                }
                Err(e) => tracing::debug!(key = %key.short(), "not re-announcing: {e}"),
            }
        }
    }

    fn on_event(&mut self, node: &mut Node<SocketAddr>, event: Event<SocketAddr>) {
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
                    self.reannounce = node.provided_keys().copied().collect();
                    tracing::info!(
                        keys = self.reannounce.len(),
                        "joined: announcing held content"
                    );
                }
                self.pump_reannounce(node, now);
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
                    self.make_room(node, now, manifest_size(&manifest));
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
            } => self.fetch_finished(node, now, id, root, result, stats),
            Event::Published { root, result } => self.published(now, root, result),
            Event::PeerMisbehaved { peer, reason } => {
                tracing::warn!(peer = %peer.addr, peer_id = %peer.id.short(), ?reason, "peer misbehaved");
            }
        }
    }

    fn fetch_finished(
        &mut self,
        node: &mut Node<SocketAddr>,
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
        self.make_room(node, now, 0);
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
    fn save_peers(&self, node: &Node<SocketAddr>, now: bool) {
        let Some(dir) = self.data_dir.clone() else {
            return;
        };
        let peers: Vec<_> = node
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

    fn status(&self, node: &Node<SocketAddr>, now: Time) -> Status {
        let table = node.routing_table();
        Status {
            id: node.id(),
            listen: self.listen,
            advertised: *node.addr(),
            client_mode: node.client_mode(),
            reachability: self.shared.probes.state(),
            relayed_at: self.shared.local.relayed(),
            public_addr: self.shared.local.public(),
            relay_reservations: self.shared.relay.reservations(),
            relay_circuits: self.shared.relay.circuits(),
            connections: self
                .conns
                .iter()
                .take(Status::MAX_CONNECTIONS)
                .map(|(id, c)| ConnectionStatus {
                    peer: *id,
                    addr: c.addr,
                    inbound: c.direction == Direction::Inbound,
                    via: c.via,
                })
                .collect(),
            public_ip: self.shared.probes.public_ip(),
            port_mapping: self.shared.port_map.snapshot(std::time::Instant::now()),
            uptime: now.saturating_since(Time::ZERO),
            peers: table.contacts().take(Status::MAX_PEERS).cloned().collect(),
            routing_table_len: table.len(),
            buckets_in_use: table.buckets_in_use(),
            connected_peers: self.conns.len(),
            open_connections: self.shared.open_connections(),
            provided_keys: node.provided_keys().count(),
            tracked_keys: node.provider_store().key_count(),
            tracked_records: node.provider_store().record_count(),
            queries_running: node.queries_running(),
            queries_succeeded: self.queries_succeeded,
            queries_failed: self.queries_failed,
            counters: *node.counters(),
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
            held_count: node.held_content().count(),
            store_bytes: node.byte_count(),
            store_blocks: node.block_count(),
            store_capacity_bytes: node.config().transfer.store_capacity_bytes.get(),
            fetches_running: node.fetches_running(),
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

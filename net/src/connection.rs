//! One established peer connection: a reader, an opener and a writer task,
//! the reader and the opener sharing the receiving half of the session keys
//! (the reader opens length headers, the opener bodies) and the writer holding
//! the sending half, reporting to the node task through its input queue.

use crate::reachability::{Probes, Reachability};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use distroweb_protocol::{DecodeError, Id, Message, Reach};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, watch, Notify};

use crate::config::NetConfig;
use crate::error::Chain;
use crate::frame::{BodyOpener, FrameError, Opener, SealedBody, SealedFrame, Sealer};
use crate::handshake::{Authenticated, HandshakeError, LocalIdentity};
use crate::port_map::PortMapState;
use crate::relay::Relay;
use crate::slots::{Slot, Slots};
use crate::stats::TransportStats;

/// Names one connection for the lifetime of the process.
pub(crate) type ConnId = u64;

/// What the transport tells the node task.
#[derive(Debug)]
pub(crate) enum Input {
    /// A decoded message from the peer at `from`.
    Message {
        from: SocketAddr,
        msg: Message<SocketAddr>,
        /// How the peer said in its handshake it can be reached.
        reach: Reach,
    },
    /// A connection finished its handshake and can carry frames.
    Up(Established),
    /// A connection closed.
    Down {
        conn: ConnId,
        peer_id: Id,
        reason: CloseReason,
    },
    /// A dial to `peer` for `expect` failed (connect, handshake, or the
    /// peer proved another id; `attempted` false: no outbound slot freed in
    /// time, so nothing reached the peer); frames held for it are lost.
    DialFailed {
        peer: SocketAddr,
        expect: Option<Id>,
        attempted: bool,
    },
    /// The node found out whether it can be dialled.
    Reachability(Reachability),
    /// The node holds a relay reservation and is reached there (`None`: it
    /// lost it, and nobody can reach it).
    Relayed(Option<SocketAddr>),
}

/// How a connection was made, for the status page and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Via {
    /// A plain TCP connection, dialled or accepted.
    Direct,
    /// Through a relay's circuit (the handshake runs end to end inside it).
    Relayed,
    /// Made by hole punching, after the two ends met through a relay.
    Punched,
}

impl std::fmt::Display for Via {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Via::Direct => "direct",
            Via::Relayed => "relayed",
            Via::Punched => "punched",
        })
    }
}

/// Which end opened a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Direction {
    /// We dialled its address, so the address is proven to reach the id.
    Outbound,
    /// The peer dialled us; its address is the IP seen and the port it states.
    Inbound,
}

/// A connection ready for frames, as handed to the node task.
#[derive(Debug)]
pub(crate) struct Established {
    pub conn: ConnId,
    /// The id the peer proved in the handshake.
    pub peer_id: Id,
    /// The address the node knows the peer at: dialled, or seen IP and stated port.
    pub peer: SocketAddr,
    pub direction: Direction,
    pub via: Via,
    pub frames: Outbox,
    /// Closes the connection when notified: the node task makes room for a dial.
    pub close: Arc<Notify>,
}

/// The sending side of a connection's writer queue, bounded in frames and in bytes.
#[derive(Clone, Debug)]
pub(crate) struct Outbox {
    tx: mpsc::Sender<Bytes>,
    /// Bytes queued and not yet written; the writer subtracts what it writes.
    queued: Arc<AtomicUsize>,
    max_bytes: usize,
}

impl Outbox {
    /// The largest frame [`Outbox::try_send_small`] lets past the byte bound.
    pub const SMALL_FRAME_BYTES: usize = 256;

    /// Queues a frame of at most [`Outbox::SMALL_FRAME_BYTES`] whenever the
    /// queue has room by count: the byte bound is exceeded by at most that
    /// much a frame, and the frame count still bounds it.
    pub fn try_send_small(&self, frame: Bytes) -> Result<(), TrySendError<Bytes>> {
        if frame.len() > Self::SMALL_FRAME_BYTES {
            return Err(TrySendError::Full(frame));
        }
        let len = frame.len();
        self.queued.fetch_add(len, Ordering::Relaxed);
        self.tx.try_send(frame).inspect_err(|_| {
            self.queued.fetch_sub(len, Ordering::Relaxed);
        })
    }

    /// Queues a frame unless the queue is full (by count, or by bytes once it
    /// holds anything: one frame larger than the byte bound still goes alone).
    pub fn try_send(&self, frame: Bytes) -> Result<(), TrySendError<Bytes>> {
        let len = frame.len();
        let queued = self.queued.load(Ordering::Relaxed);
        if queued > 0 && queued + len > self.max_bytes {
            return Err(TrySendError::Full(frame));
        }
        self.queued.fetch_add(len, Ordering::Relaxed);
        self.tx.try_send(frame).inspect_err(|_| {
            self.queued.fetch_sub(len, Ordering::Relaxed);
        })
    }
}

/// Why a connection closed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CloseReason {
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("sealing a frame failed: {0}")]
    Seal(FrameError),
    #[error("undecodable message: {0}")]
    Garbage(DecodeError),
    #[error("message claims sender {claimed:?}, but the connection belongs to {peer:?}")]
    WrongSender { claimed: Id, peer: Id },
    #[error("write failed: {0}")]
    WriteFailed(std::io::Error),
    #[error("write timed out")]
    WriteTimeout,
    #[error("node shutting down")]
    Shutdown,
    #[error("closed to make room for another connection")]
    Trimmed,
}

impl CloseReason {
    /// Whether the peer broke the framing or the protocol (as opposed to leaving).
    fn is_misbehaviour(&self) -> bool {
        matches!(
            self,
            CloseReason::Garbage(_)
                | CloseReason::WrongSender { .. }
                | CloseReason::Frame(
                    FrameError::TooLarge { .. }
                        | FrameError::Truncated
                        | FrameError::Stalled
                        | FrameError::Forged
                )
        )
    }
}

/// What every transport task shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub config: NetConfig,
    /// What this node proves in every handshake.
    pub local: LocalIdentity,
    /// The address this node tells peers it listens at.
    pub advertised: SocketAddr,
    /// The address its listener is bound to (hole punches connect from it).
    pub bound: SocketAddr,
    /// The relay service this node offers.
    pub relay: Arc<Relay>,
    pub inputs: mpsc::Sender<Input>,
    pub stats: Arc<TransportStats>,
    /// Inbound and outbound connection slots.
    pub slots: Arc<Slots>,
    /// Dial-backs asked for and made.
    pub probes: Arc<Probes>,
    /// The port mapping the router holds, as the status shows it.
    pub port_map: Arc<PortMapState>,
    pub shutdown: watch::Receiver<bool>,
    next_conn: AtomicU64,
}

impl Shared {
    pub fn new(
        config: NetConfig,
        local: LocalIdentity,
        advertised: SocketAddr,
        bound: SocketAddr,
        inputs: mpsc::Sender<Input>,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        Shared {
            bound,
            relay: Arc::default(),
            slots: Arc::new(Slots::new(&config)),
            probes: Arc::new(Probes::new(&config)),
            port_map: Arc::default(),
            config,
            local,
            advertised,
            inputs,
            stats: Arc::new(TransportStats::default()),
            shutdown,
            next_conn: AtomicU64::new(0),
        }
    }

    /// The same, showing `port_map` (made before the transport: `live.rs`).
    pub fn with_port_map(self, port_map: Arc<PortMapState>) -> Self {
        Shared { port_map, ..self }
    }

    /// A name for a new connection; names ascend, so older connections have smaller ones.
    pub fn next_conn(&self) -> ConnId {
        self.next_conn.fetch_add(1, Ordering::Relaxed)
    }

    /// Connections open (or being dialled) right now.
    pub fn open_connections(&self) -> usize {
        self.slots.open()
    }

    /// Counts and logs a failed handshake, once per connection; a version
    /// mismatch is worth a warning because the operator must upgrade one side.
    pub fn handshake_failed(&self, peer: SocketAddr, e: &HandshakeError) {
        TransportStats::bump(&self.stats.handshakes_failed);
        if e.is_auth_failure() {
            TransportStats::bump(&self.stats.auth_failures);
        }
        match e {
            HandshakeError::WrongVersion { theirs, ours } => {
                TransportStats::bump(&self.stats.version_mismatches);
                tracing::warn!(
                    %peer,
                    "refused peer: it speaks protocol version {theirs}, this node speaks {ours}"
                );
            }
            HandshakeError::NotDistroweb | HandshakeError::OwnId => {
                tracing::info!(%peer, "handshake refused: {}", Chain(e));
            }
            e if e.is_auth_failure() => {
                tracing::info!(%peer, "peer failed to prove its id: {}", Chain(e));
            }
            _ => tracing::debug!(%peer, "handshake failed: {}", Chain(e)),
        }
    }
}

/// Where the node knows a peer that proved `auth` on a connection from
/// `seen`: a relayed peer at its relay (the address its records name, so
/// replies match the requests sent there, whichever path they take), any
/// other where the connection showed it.
pub(crate) fn known_at(auth: &Authenticated, seen: SocketAddr) -> SocketAddr {
    if auth.relayed {
        auth.listen
    } else {
        seen
    }
}

/// Runs an authenticated connection until it closes: announces it to the
/// node task, then reads and writes sealed frames. `slot` is held for the
/// connection's life; `via` says how it was made.
pub(crate) async fn run(
    shared: Arc<Shared>,
    conn: ConnId,
    stream: TcpStream,
    peer: SocketAddr,
    auth: Authenticated,
    slot: Slot,
    via: Via,
) {
    let direction = match slot {
        Slot::Inbound(_) => Direction::Inbound,
        Slot::Outbound(_) => Direction::Outbound,
    };
    let peer_id = auth.id;
    let reach = match (auth.relayed, auth.client) {
        (true, _) => Reach::Relayed,
        (false, true) => Reach::Client,
        (false, false) => Reach::Direct,
    };
    let (sealer, opener) = match auth.session.split() {
        Ok(halves) => halves,
        Err(e) => {
            tracing::warn!(%peer, "cannot use the session keys: {e}");
            return;
        }
    };
    let (tx, rx) = mpsc::channel(shared.config.max_queued_frames);
    let queued = Arc::new(AtomicUsize::new(0));
    let close = Arc::new(Notify::new());
    let up = Established {
        conn,
        peer_id,
        peer,
        direction,
        via,
        frames: Outbox {
            tx,
            queued: queued.clone(),
            max_bytes: shared.config.max_queued_bytes,
        },
        close: close.clone(),
    };
    if shared.inputs.send(Input::Up(up)).await.is_err() {
        return;
    }
    tracing::debug!(%peer, peer_id = %peer_id.short(), conn, ?direction, "connection up");
    let (r, w) = stream.into_split();
    // The writer is a task of its own, so sealing what this node sends and
    // opening what it receives run on two threads at once.
    let mut writer = tokio::spawn({
        let shared = shared.clone();
        async move { write_loop(&shared, w, sealer, rx, &queued).await }
    });
    // Bodies are opened on a task of their own, so the socket is read while
    // the last frame is decrypted; one frame waits between them at most.
    let (bodies, sealed) = mpsc::channel(1);
    let mut open = tokio::spawn({
        let shared = shared.clone();
        let body_opener = opener.body_opener();
        async move { open_loop(&shared, body_opener, sealed, peer, peer_id, reach).await }
    });
    let mut shutdown = shared.shutdown.clone();
    let reader_ended = tokio::select! {
        reason = read_loop(&shared, BufReader::new(r), opener, bodies) => Ok(reason),
        reason = &mut open => Err(reason.ok().flatten().unwrap_or(CloseReason::Shutdown)),
        reason = &mut writer => Err(reason.unwrap_or(CloseReason::Shutdown)),
        _ = shutdown.wait_for(|stop| *stop) => Err(CloseReason::Shutdown),
        () = close.notified() => Err(CloseReason::Trimmed),
    };
    let reason = match reader_ended {
        // The reader ended (the peer left, or broke the framing): the opener
        // still passes on what was read before, unless a body fails.
        Ok(reason) => tokio::select! {
            opened = &mut open => match opened {
                Ok(Some(failure)) => failure,
                _ => reason,
            },
            _ = shutdown.wait_for(|stop| *stop) => CloseReason::Shutdown,
        },
        Err(reason) => reason,
    };
    open.abort();
    writer.abort();
    drop(slot);
    if reason.is_misbehaviour() {
        TransportStats::bump(&shared.stats.bad_frames);
        tracing::warn!(%peer, peer_id = %peer_id.short(), "disconnected misbehaving peer: {}", Chain(&reason));
    } else {
        tracing::debug!(%peer, conn, "connection closed: {}", Chain(&reason));
    }
    if !matches!(reason, CloseReason::Shutdown) {
        let _ = shared
            .inputs
            .send(Input::Down {
                conn,
                peer_id,
                reason,
            })
            .await;
    }
}

/// Reads sealed frames off the socket (opening only their length headers)
/// and hands their bodies to [`open_loop`].
async fn read_loop(
    shared: &Shared,
    mut r: BufReader<OwnedReadHalf>,
    mut opener: Opener,
    bodies: mpsc::Sender<SealedBody>,
) -> CloseReason {
    let c = &shared.config;
    loop {
        let body = match opener
            .read_sealed(&mut r, c.max_frame_bytes, c.idle_timeout, c.read_timeout)
            .await
        {
            Ok(body) => body,
            Err(e) => return e.into(),
        };
        if bodies.send(body).await.is_err() {
            // The opening task ended; its reason is the connection's.
            return std::future::pending().await;
        }
    }
}

/// Opens, decodes and checks the bodies [`read_loop`] reads, and passes the
/// messages to the node task; `None` once the reader has ended and every
/// body it read is passed on.
async fn open_loop(
    shared: &Shared,
    body_opener: BodyOpener,
    mut sealed: mpsc::Receiver<SealedBody>,
    peer: SocketAddr,
    peer_id: Id,
    reach: Reach,
) -> Option<CloseReason> {
    while let Some(body) = sealed.recv().await {
        let bytes = match body_opener.open(body) {
            Ok(bytes) => bytes,
            Err(e) => return Some(e.into()),
        };
        let msg = match Message::<SocketAddr>::decode(&bytes) {
            Ok(msg) => msg,
            Err(e) => return Some(CloseReason::Garbage(e)),
        };
        // The handshake bound this connection to one id; a message in another
        // name would let a peer speak for nodes it is not.
        if msg.sender != peer_id {
            return Some(CloseReason::WrongSender {
                claimed: msg.sender,
                peer: peer_id,
            });
        }
        TransportStats::bump(&shared.stats.frames_in);
        TransportStats::add(&shared.stats.bytes_in, bytes.len());
        if shared
            .inputs
            .send(Input::Message {
                from: peer,
                msg,
                reach,
            })
            .await
            .is_err()
        {
            return Some(CloseReason::Shutdown);
        }
    }
    None
}

async fn write_loop(
    shared: &Shared,
    mut w: OwnedWriteHalf,
    mut sealer: Sealer,
    mut rx: mpsc::Receiver<Bytes>,
    queued: &AtomicUsize,
) -> CloseReason {
    // One frame, refilled for every payload: sealed where the payload's bytes
    // lie and written with one vectored write.
    let mut sealed = SealedFrame::new();
    while let Some(payload) = rx.recv().await {
        let len = payload.len();
        // The node task hands over each encoded message alone, so its buffer
        // is ours to seal in place; a shared one is copied first.
        let body = payload
            .try_into_mut()
            .unwrap_or_else(|shared| BytesMut::from(&shared[..]));
        if let Err(e) = sealer.seal_in_place(body, &mut sealed) {
            return CloseReason::Seal(e);
        }
        let written =
            tokio::time::timeout(shared.config.write_timeout, w.write_all_buf(&mut sealed)).await;
        sealed.clear();
        queued.fetch_sub(len, Ordering::Relaxed);
        match written {
            Ok(Ok(())) => {
                TransportStats::bump(&shared.stats.frames_out);
                TransportStats::add(&shared.stats.bytes_out, len);
            }
            Ok(Err(e)) => return CloseReason::WriteFailed(e),
            Err(_) => return CloseReason::WriteTimeout,
        }
    }
    // The node task let go of this connection because a newer one to the same
    // peer replaced it; keep reading what the peer already sent here until the
    // idle timeout closes it.
    std::future::pending().await
}

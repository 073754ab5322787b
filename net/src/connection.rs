//! One established peer connection: a reader and a writer in one task, reporting
//! to the node task through its input queue.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use distroweb_protocol::{DecodeError, Id, Message};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};

use crate::config::NetConfig;
use crate::error::Chain;
use crate::frame::{self, FrameError};
use crate::handshake::{HandshakeError, Hello};
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
    },
    /// A connection finished its handshake and can carry frames.
    Up(Established),
    /// A connection closed.
    Down {
        conn: ConnId,
        peer: SocketAddr,
        reason: CloseReason,
    },
    /// A dial to `peer` failed; frames held for it are lost.
    DialFailed { peer: SocketAddr },
}

/// A connection ready for frames, as handed to the node task.
#[derive(Debug)]
pub(crate) struct Established {
    pub conn: ConnId,
    pub peer: SocketAddr,
    pub frames: Outbox,
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
}

impl CloseReason {
    /// Whether the peer broke the framing or the protocol (as opposed to leaving).
    fn is_misbehaviour(&self) -> bool {
        matches!(
            self,
            CloseReason::Garbage(_)
                | CloseReason::WrongSender { .. }
                | CloseReason::Frame(
                    FrameError::TooLarge { .. } | FrameError::Truncated | FrameError::Stalled
                )
        )
    }
}

/// What every transport task shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub config: NetConfig,
    /// This node's hello, sent on every connection.
    pub hello: Hello,
    pub inputs: mpsc::Sender<Input>,
    pub stats: Arc<TransportStats>,
    /// One permit per open connection or dial in progress (`max_connections`).
    pub permits: Arc<Semaphore>,
    pub shutdown: watch::Receiver<bool>,
    next_conn: AtomicU64,
}

impl Shared {
    pub fn new(
        config: NetConfig,
        hello: Hello,
        inputs: mpsc::Sender<Input>,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        Shared {
            permits: Arc::new(Semaphore::new(config.max_connections)),
            config,
            hello,
            inputs,
            stats: Arc::new(TransportStats::default()),
            shutdown,
            next_conn: AtomicU64::new(0),
        }
    }

    /// Connections open (or being dialled) right now.
    pub fn open_connections(&self) -> usize {
        self.config
            .max_connections
            .saturating_sub(self.permits.available_permits())
    }

    /// Counts and logs a failed handshake; a version mismatch is worth a warning
    /// because the operator must upgrade one side.
    pub fn handshake_failed(&self, peer: SocketAddr, e: &HandshakeError) {
        TransportStats::bump(&self.stats.handshakes_failed);
        match e {
            HandshakeError::WrongVersion { theirs, ours } => {
                TransportStats::bump(&self.stats.version_mismatches);
                tracing::warn!(
                    %peer,
                    "refused peer: it speaks protocol version {theirs}, this node speaks {ours}"
                );
            }
            HandshakeError::NotDistroweb | HandshakeError::Malformed | HandshakeError::OwnId => {
                tracing::info!(%peer, "handshake refused: {}", Chain(e));
            }
            _ => tracing::debug!(%peer, "handshake failed: {}", Chain(e)),
        }
    }
}

/// Runs an established connection until it closes: announces it to the node
/// task, then reads and writes frames. `permit` is held for the connection's life.
pub(crate) async fn run(
    shared: Arc<Shared>,
    stream: TcpStream,
    peer: SocketAddr,
    peer_id: Id,
    permit: OwnedSemaphorePermit,
) {
    let conn = shared.next_conn.fetch_add(1, Ordering::Relaxed);
    let (tx, rx) = mpsc::channel(shared.config.max_queued_frames);
    let queued = Arc::new(AtomicUsize::new(0));
    let up = Established {
        conn,
        peer,
        frames: Outbox {
            tx,
            queued: queued.clone(),
            max_bytes: shared.config.max_queued_bytes,
        },
    };
    if shared.inputs.send(Input::Up(up)).await.is_err() {
        return;
    }
    tracing::debug!(%peer, peer_id = %peer_id.short(), conn, "connection up");
    let (r, w) = stream.into_split();
    let mut shutdown = shared.shutdown.clone();
    let reason = tokio::select! {
        reason = read_loop(&shared, BufReader::new(r), peer, peer_id) => reason,
        reason = write_loop(&shared, w, rx, &queued) => reason,
        _ = shutdown.wait_for(|stop| *stop) => CloseReason::Shutdown,
    };
    drop(permit);
    if reason.is_misbehaviour() {
        TransportStats::bump(&shared.stats.bad_frames);
        tracing::warn!(%peer, peer_id = %peer_id.short(), "disconnected misbehaving peer: {}", Chain(&reason));
    } else {
        tracing::debug!(%peer, conn, "connection closed: {}", Chain(&reason));
    }
    if !matches!(reason, CloseReason::Shutdown) {
        let _ = shared.inputs.send(Input::Down { conn, peer, reason }).await;
    }
}

async fn read_loop(
    shared: &Shared,
    mut r: BufReader<OwnedReadHalf>,
    peer: SocketAddr,
    peer_id: Id,
) -> CloseReason {
    let c = &shared.config;
    loop {
        let bytes =
            match frame::read(&mut r, c.max_frame_bytes, c.idle_timeout, c.read_timeout).await {
                Ok(bytes) => bytes,
                Err(e) => return e.into(),
            };
        let msg = match Message::<SocketAddr>::decode(&bytes) {
            Ok(msg) => msg,
            Err(e) => return CloseReason::Garbage(e),
        };
        // The handshake bound this connection to one id; a message in another
        // name would let a peer speak for nodes it is not.
        if msg.sender != peer_id {
            return CloseReason::WrongSender {
                claimed: msg.sender,
                peer: peer_id,
            };
        }
        TransportStats::bump(&shared.stats.frames_in);
        TransportStats::add(&shared.stats.bytes_in, bytes.len());
        if shared
            .inputs
            .send(Input::Message { from: peer, msg })
            .await
            .is_err()
        {
            return CloseReason::Shutdown;
        }
    }
}

async fn write_loop(
    shared: &Shared,
    mut w: OwnedWriteHalf,
    mut rx: mpsc::Receiver<Bytes>,
    queued: &AtomicUsize,
) -> CloseReason {
    while let Some(frame) = rx.recv().await {
        let written = tokio::time::timeout(shared.config.write_timeout, w.write_all(&frame)).await;
        queued.fetch_sub(frame.len(), Ordering::Relaxed);
        match written {
            Ok(Ok(())) => {
                TransportStats::bump(&shared.stats.frames_out);
                TransportStats::add(
                    &shared.stats.bytes_out,
                    frame.len().saturating_sub(frame::LENGTH_BYTES),
                );
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

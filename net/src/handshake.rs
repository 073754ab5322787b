//! Opening a connection: a plaintext preamble, then a Noise handshake that
//! proves each side's node id and sets up the keys every later frame is
//! sealed with.
//!
//! The preamble is the magic `dweb` and the protocol version as a big-endian
//! `u32`, so that a node can name a peer's version even when the peer speaks
//! nothing else it understands. The dialler's preamble is followed by what
//! the connection is for (an [`Opening`]: a kind byte and 32 bytes, the id it
//! wants to reach), and the listener answers with its own preamble only once
//! it has read that: a relay reads it and passes the connection on to the
//! node it names, whose preamble then answers (see `relay`). Both openings
//! are then the Noise prologue: a man in the middle who rewrote either one
//! makes the handshake fail.
//!
//! The pattern is XX (`-> e`, `<- e, ee, s, es`, `-> s, se`): neither side
//! needs the other's static key beforehand, which a node bootstrapping from
//! a bare address does not have. Each side's handshake payload carries its
//! Ed25519 public key, that key's signature over its Noise static key, a flags
//! byte (bit 0: client mode, the sender cannot be dialled; bit 1: dial me
//! back, see `reachability`; bit 2: relayed, the sender is reached through
//! the relay at the address it states; bit 3: its public address follows)
//! and the address it listens at, then (bit 3) the address its listening
//! port is seen at from outside its NAT, where a hole punch aims; the
//! receiver checks the signature and the puzzle and derives the id. A
//! dialler that expects an id checks it on the second message, before it
//! reveals anything of itself.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use distroweb_protocol::Id;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::frame::{Cipher, Session};
use crate::node_key::{self, KeyError, NodeKey};

/// The version of the wire format this build speaks; peers must match exactly.
/// 2: recursive routes carry a frontier and a message tally.
/// 3: ids are proven by keys and everything after the preamble is encrypted (Noise XX).
/// 4: name records (`GetName`, `Name`, `PutName`, `NameStored`).
/// 5: a flags byte in the handshake payload (client mode).
/// 6: the dialler's opening names what it wants (relays, hole punching).
pub const PROTOCOL_VERSION: u32 = 6;

/// Bytes in the preamble: the magic and the version.
pub const PREAMBLE_BYTES: usize = 8;

/// Bytes in an opening: a preamble, a kind and 32 bytes of argument.
pub const OPENING_BYTES: usize = PREAMBLE_BYTES + 1 + 32;

/// The version a listener puts in its preamble to say that the node a
/// dialler asked for is not here (and no relay reservation names it).
const NOT_HERE: u32 = u32::MAX;

/// The Noise protocol: XX because neither side knows the other's static key
/// beforehand; ChaChaPoly and AESGCM measured alike on this transport (see
/// ARCHITECTURE.md), and ChaChaPoly is constant-time without AES hardware.
pub const NOISE_PARAMS: &str = "Noise_XX_25519_AESGCM_BLAKE2s";

/// The cipher [`NOISE_PARAMS`] names, for the sealed frames.
const CIPHER: Cipher = Cipher::AesGcm;

const MAGIC: [u8; 4] = *b"dweb";

/// The largest handshake message accepted: an unauthenticated peer may not
/// make us buffer more. The largest real one (an ephemeral and a static key,
/// two tags, the payload) is under 250 bytes.
const MAX_HANDSHAKE_MESSAGE_BYTES: usize = 512;

/// Bytes of the key proof in a handshake payload: a public key and a signature.
const PROOF_BYTES: usize = 32 + 64;

/// The payload's flag for client mode: the sender cannot be dialled at the
/// address it states, so it must go in no routing table and no record.
const FLAG_CLIENT: u8 = 1;

/// The payload's flag asking the listener to dial the sender back (see
/// `reachability`): set while a node does not know whether it can be dialled.
const FLAG_PROBE: u8 = 2;

/// The payload's flag for a node reached through a relay: the address it
/// states is its relay's.
const FLAG_RELAYED: u8 = 4;

/// The payload's flag for a public address after the listen address: where
/// peers saw the sender's listening port, behind its NAT (see `punch`).
const FLAG_PUBLIC: u8 = 8;

/// What a dialler wants of the connection, as its opening says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opening {
    /// To talk to the node with this id (`None`: whoever listens, a
    /// bootstrap seed); a relay passes it on to a node it has a reservation of.
    Connect(Option<Id>),
    /// A relay reservation at the listener, which must have this id.
    Reserve(Id),
    /// The reserved node's half of a relay circuit: the circuit's secret.
    Accept([u8; 32]),
    /// A hole-punched connection from a node that claims this id (both
    /// ends send one; the lower id runs the Noise initiator's side).
    Punch(Id),
}

const KIND_CONNECT: u8 = 0;
const KIND_RESERVE: u8 = 1;
const KIND_ACCEPT: u8 = 2;
const KIND_PUNCH: u8 = 3;

impl Opening {
    /// The opening's bytes: preamble, kind, argument.
    pub fn encode(&self) -> [u8; OPENING_BYTES] {
        let mut o = [0u8; OPENING_BYTES];
        o[..PREAMBLE_BYTES].copy_from_slice(&preamble(PROTOCOL_VERSION));
        let (kind, arg) = match self {
            Opening::Connect(id) => (KIND_CONNECT, id.map(|i| *i.as_bytes()).unwrap_or([0; 32])),
            Opening::Reserve(id) => (KIND_RESERVE, *id.as_bytes()),
            Opening::Accept(secret) => (KIND_ACCEPT, *secret),
            Opening::Punch(id) => (KIND_PUNCH, *id.as_bytes()),
        };
        o[PREAMBLE_BYTES] = kind;
        o[PREAMBLE_BYTES + 1..].copy_from_slice(&arg);
        o
    }

    fn decode(o: &[u8; OPENING_BYTES]) -> Result<Opening, HandshakeError> {
        let mut arg = [0u8; 32];
        arg.copy_from_slice(&o[PREAMBLE_BYTES + 1..]);
        let id = Id::from_bytes(arg);
        Ok(match o[PREAMBLE_BYTES] {
            KIND_CONNECT if arg == [0; 32] => Opening::Connect(None),
            KIND_CONNECT => Opening::Connect(Some(id)),
            KIND_RESERVE => Opening::Reserve(id),
            KIND_ACCEPT => Opening::Accept(arg),
            KIND_PUNCH => Opening::Punch(id),
            _ => return Err(HandshakeError::Malformed),
        })
    }
}

/// A dialler's opening as a listener read it: what it asks for, and its
/// bytes (the Noise prologue, or what a relay passes on).
#[derive(Clone, Copy, Debug)]
pub struct Opened {
    /// What the dialler wants.
    pub opening: Opening,
    /// The bytes it sent.
    pub bytes: [u8; OPENING_BYTES],
}

/// The preamble this build sends: `dweb` and `version`.
pub fn preamble(version: u32) -> [u8; PREAMBLE_BYTES] {
    let mut p = [0u8; PREAMBLE_BYTES];
    p[..4].copy_from_slice(&MAGIC);
    p[4..].copy_from_slice(&version.to_be_bytes());
    p
}

/// Why a connection's handshake failed.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// The socket failed or closed.
    #[error("socket i/o failed")]
    Io(#[from] std::io::Error),
    /// The handshake did not finish within the handshake timeout.
    #[error("no handshake within the handshake timeout")]
    Timeout,
    /// The peer does not speak distroweb at all.
    #[error("peer does not speak distroweb (bad magic)")]
    NotDistroweb,
    /// The peer speaks another version of the protocol.
    #[error("peer speaks protocol version {theirs}, this node speaks {ours}")]
    WrongVersion {
        /// The peer's version.
        theirs: u32,
        /// Ours.
        ours: u32,
    },
    /// A handshake message is over the limit.
    #[error("handshake message of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// Its announced length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The Noise handshake failed: a message did not decrypt or authenticate.
    #[error("noise handshake failed: {0}")]
    Noise(snow::Error),
    /// The handshake payload is undecodable.
    #[error("malformed handshake payload")]
    Malformed,
    /// The peer's key proof was refused.
    #[error("peer's key proof refused")]
    Key(#[from] KeyError),
    /// The peer proved an id other than the one this dial expected.
    #[error("peer proved id {proven}, expected {expected}")]
    WrongId {
        /// The id the dial was for.
        expected: Id,
        /// The id the peer proved.
        proven: Id,
    },
    /// The peer has this node's own id (we dialled ourselves).
    #[error("peer has this node's own id")]
    OwnId,
    /// The listener has neither the id dialled for nor a reservation of it.
    #[error("the node dialled for is not at that address")]
    NotHere,
    /// The dialler asked for something this end does not do there.
    #[error("the dialler asked for {0:?}, which this end does not serve here")]
    Unwanted(Opening),
}

impl HandshakeError {
    /// Whether the peer failed to prove an id (as opposed to leaving, being
    /// slow or speaking another version): these are counted as `auth_failures`.
    pub fn is_auth_failure(&self) -> bool {
        matches!(
            self,
            HandshakeError::Noise(_)
                | HandshakeError::Malformed
                | HandshakeError::Key(_)
                | HandshakeError::WrongId { .. }
        )
    }
}

/// What this node proves in every handshake: its key, a Noise static key pair
/// made at start, and the payload binding the two.
pub struct LocalIdentity {
    key: NodeKey,
    noise_private: Vec<u8>,
    /// The key proof: the public key and its signature over the Noise key.
    proof: Vec<u8>,
    /// The listen address as the payload carries it.
    listen: Vec<u8>,
    /// Whether handshakes say this node runs in client mode; it may change
    /// while the node runs, when it learns whether it can be reached.
    client: AtomicBool,
    /// Whether handshakes ask the peer to dial this node back.
    probe: AtomicBool,
    /// The relay the node is reached through while it holds a reservation.
    relayed: Mutex<Option<SocketAddr>>,
    /// Where peers saw this node's listening port from outside its NAT.
    public: Mutex<Option<SocketAddr>>,
    /// The network's puzzle difficulty, required of every peer.
    difficulty_bits: u32,
}

impl std::fmt::Debug for LocalIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalIdentity")
            .field("id", &self.key.id())
            .finish_non_exhaustive()
    }
}

impl LocalIdentity {
    /// This node's handshake identity for `key`, listening at `listen`, in a
    /// network whose ids meet a puzzle of `difficulty_bits`.
    pub fn new(
        key: NodeKey,
        listen: SocketAddr,
        difficulty_bits: u32,
    ) -> Result<Self, snow::Error> {
        let noise = snow::Builder::new(params()).generate_keypair()?;
        let mut proof = Vec::with_capacity(PROOF_BYTES);
        proof.extend_from_slice(&key.public());
        proof.extend_from_slice(&key.sign_static(&noise.public));
        Ok(LocalIdentity {
            key,
            noise_private: noise.private,
            proof,
            // An address always serialises; the fallback is unreachable.
            listen: postcard::to_allocvec(&listen).unwrap_or_default(),
            client: AtomicBool::new(false),
            probe: AtomicBool::new(false),
            relayed: Mutex::new(None),
            public: Mutex::new(None),
            difficulty_bits,
        })
    }

    /// Says in every later handshake whether this node runs in client mode.
    pub fn set_client(&self, on: bool) {
        self.client.store(on, Ordering::Relaxed);
    }

    /// Whether this node runs in client mode (reached, if at all, through a relay).
    pub fn client(&self) -> bool {
        self.client.load(Ordering::Relaxed)
    }

    /// Says in every later handshake whether to dial this node back.
    pub fn set_probe(&self, on: bool) {
        self.probe.store(on, Ordering::Relaxed);
    }

    /// Whether handshakes ask for a dial-back now.
    pub fn probing(&self) -> bool {
        self.probe.load(Ordering::Relaxed)
    }

    /// Says in every later handshake that this node is reached through the
    /// relay at `relay` (`None`: it no longer is).
    pub fn set_relayed(&self, relay: Option<SocketAddr>) {
        *self.relayed.lock().unwrap_or_else(|e| e.into_inner()) = relay;
    }

    /// The relay this node is reached through, while it holds a reservation.
    pub fn relayed(&self) -> Option<SocketAddr> {
        *self.relayed.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Says in every later handshake where peers see this node's listening
    /// port (a peer it dialled from that port said so).
    pub fn set_public(&self, public: SocketAddr) {
        *self.public.lock().unwrap_or_else(|e| e.into_inner()) = Some(public);
    }

    /// Where peers see this node's listening port, if one said.
    pub fn public(&self) -> Option<SocketAddr> {
        *self.public.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The payload of this node's handshake message: proof, flags, address
    /// (and its public address when relayed).
    fn payload(&self) -> Vec<u8> {
        let mut payload = Vec::with_capacity(PROOF_BYTES + 1 + 2 * self.listen.len());
        payload.extend_from_slice(&self.proof);
        let probe = self.probe.load(Ordering::Relaxed);
        let mut flags = if probe { FLAG_PROBE } else { 0 };
        let public = self.public();
        if public.is_some() {
            flags |= FLAG_PUBLIC;
        }
        // Addresses always serialise; the fallbacks are unreachable.
        match self.relayed() {
            Some(relay) => {
                payload.push(flags | FLAG_RELAYED);
                payload.extend_from_slice(&postcard::to_allocvec(&relay).unwrap_or_default());
            }
            None => {
                if self.client.load(Ordering::Relaxed) {
                    flags |= FLAG_CLIENT;
                }
                payload.push(flags);
                payload.extend_from_slice(&self.listen);
            }
        }
        if let Some(public) = public {
            payload.extend_from_slice(&postcard::to_allocvec(&public).unwrap_or_default());
        }
        payload
    }

    /// The id this node proves.
    pub fn id(&self) -> Id {
        self.key.id()
    }
}

/// Which end of the connection this node is.
#[derive(Clone, Copy, Debug)]
pub enum Role {
    /// We dialled; `expect` is the id the peer must prove (`None` for a bootstrap seed).
    Dialer {
        /// The id required of the peer.
        expect: Option<Id>,
    },
    /// The peer dialled us from `seen`: the address its connection comes
    /// from, which our payload tells it (how a node behind a NAT learns the
    /// address the world sees).
    Listener {
        /// The peer's address as this end sees it.
        seen: SocketAddr,
    },
}

/// A finished handshake: who the peer proved to be, and the session keys.
#[derive(Debug)]
pub struct Authenticated {
    /// The id the peer proved.
    pub id: Id,
    /// The address the peer says it listens at (authenticated, not verified).
    pub listen: SocketAddr,
    /// The peer runs in client mode: it cannot be dialled at `listen`.
    pub client: bool,
    /// The peer is reached through the relay at `listen`.
    pub relayed: bool,
    /// Where the peer says its listening port is seen from outside its NAT
    /// (where a hole punch aims); authenticated, not verified.
    pub public: Option<SocketAddr>,
    /// The peer asks to be dialled back at `listen`'s port.
    pub probe: bool,
    /// Where the peer, a listener, saw this connection come from: our address
    /// as the world sees it (`None` from a dialler, which does not say).
    pub observed: Option<SocketAddr>,
    /// The keys for the connection's frames.
    pub session: Session,
}

fn params() -> snow::params::NoiseParams {
    // The constant is a valid pattern name; a test parses it.
    NOISE_PARAMS
        .parse()
        .unwrap_or_else(|_| unreachable!("NOISE_PARAMS parses"))
}

/// Runs the whole handshake on `stream` as `role`, within `timeout`: a
/// dialler asks for the node it expects; a listener serves only a dialler
/// that asks for this node (or for whoever listens).
pub async fn run<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    local: &LocalIdentity,
    role: Role,
    timeout: Duration,
) -> Result<Authenticated, HandshakeError> {
    tokio::time::timeout(timeout, async {
        match role {
            Role::Dialer { expect } => dial(stream, local, Opening::Connect(expect), expect).await,
            Role::Listener { seen } => {
                let opened = read_opening(stream).await?;
                match opened.opening {
                    Opening::Connect(None) => {}
                    Opening::Connect(Some(id)) if id == local.id() => {}
                    Opening::Connect(Some(_)) => {
                        refuse(stream).await;
                        return Err(HandshakeError::NotHere);
                    }
                    other => return Err(HandshakeError::Unwanted(other)),
                }
                answer(stream, local, &opened, seen).await
            }
        }
    })
    .await
    .map_err(|_| HandshakeError::Timeout)?
}

/// A dialler's whole handshake: sends `opening`, reads the listener's
/// preamble and proves ids; `expect` is the id the listener must prove.
pub async fn dial<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    local: &LocalIdentity,
    opening: Opening,
    expect: Option<Id>,
) -> Result<Authenticated, HandshakeError> {
    let ours = opening.encode();
    stream.write_all(&ours).await?;
    let mut theirs = [0u8; PREAMBLE_BYTES];
    stream.read_exact(&mut theirs).await?;
    if theirs[..4] == MAGIC && theirs[4..] == NOT_HERE.to_be_bytes() {
        return Err(HandshakeError::NotHere);
    }
    check_preamble(&theirs)?;
    noise(stream, local, &[&ours, &theirs], Side::Initiator { expect }).await
}

/// Reads a dialler's opening: checks its preamble (answering a peer of
/// another version with ours, so it can name our version, before failing).
pub async fn read_opening<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
) -> Result<Opened, HandshakeError> {
    let mut bytes = [0u8; OPENING_BYTES];
    stream.read_exact(&mut bytes[..PREAMBLE_BYTES]).await?;
    let mut theirs = [0u8; PREAMBLE_BYTES];
    theirs.copy_from_slice(&bytes[..PREAMBLE_BYTES]);
    if theirs[..4] != MAGIC && theirs[4..] == MAGIC {
        // Versions 1 and 2 opened with a hello frame: a length, the magic,
        // then the version. Name that version rather than call it a stranger.
        let mut version = [0u8; 4];
        stream.read_exact(&mut version).await?;
        return Err(HandshakeError::WrongVersion {
            theirs: u32::from_be_bytes(version),
            ours: PROTOCOL_VERSION,
        });
    }
    if let Err(e) = check_preamble(&theirs) {
        if matches!(e, HandshakeError::WrongVersion { .. }) {
            let _ = stream.write_all(&preamble(PROTOCOL_VERSION)).await;
        }
        return Err(e);
    }
    stream.read_exact(&mut bytes[PREAMBLE_BYTES..]).await?;
    let opening = Opening::decode(&bytes)?;
    Ok(Opened { opening, bytes })
}

/// A listener's rest of the handshake once it has read `opened` and serves
/// it itself: its preamble, then the Noise responder's side; `seen` is where
/// the dialler's connection came from.
pub async fn answer<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    local: &LocalIdentity,
    opened: &Opened,
    seen: SocketAddr,
) -> Result<Authenticated, HandshakeError> {
    let ours = preamble(PROTOCOL_VERSION);
    stream.write_all(&ours).await?;
    let side = Side::Responder { seen, expect: None };
    noise(stream, local, &[&opened.bytes, &ours], side).await
}

/// Tells a dialler the node it asked for is not here.
pub async fn refuse<S: AsyncWrite + Unpin>(stream: &mut S) {
    let mut p = [0u8; PREAMBLE_BYTES];
    p[..4].copy_from_slice(&MAGIC);
    p[4..].copy_from_slice(&NOT_HERE.to_be_bytes());
    let _ = stream.write_all(&p).await;
}

/// The handshake of a hole-punched connection, made by a connect that met
/// the peer's (a simultaneous open) or by our listener (`theirs`: the
/// peer's opening, already read): each end sends `Punch` with its own id,
/// and the lower id takes the Noise initiator's side. `expect` is the id the
/// peer must prove (`None` on the listener, which takes the id it claimed);
/// `seen` is the peer's address.
pub async fn punch<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    local: &LocalIdentity,
    theirs: Option<Opened>,
    expect: Option<Id>,
    seen: SocketAddr,
) -> Result<Authenticated, HandshakeError> {
    let ours = Opening::Punch(local.id()).encode();
    stream.write_all(&ours).await?;
    let theirs = match theirs {
        Some(t) => t,
        None => read_opening(stream).await?,
    };
    let Opening::Punch(claimed) = theirs.opening else {
        return Err(HandshakeError::Unwanted(theirs.opening));
    };
    if expect.is_some_and(|e| e != claimed) {
        return Err(HandshakeError::WrongId {
            expected: expect.unwrap_or(claimed),
            proven: claimed,
        });
    }
    let me = local.id();
    if claimed == me {
        return Err(HandshakeError::OwnId);
    }
    if me < claimed {
        let side = Side::Initiator {
            expect: Some(claimed),
        };
        noise(stream, local, &[&ours, &theirs.bytes], side).await
    } else {
        let side = Side::Responder {
            seen,
            expect: Some(claimed),
        };
        noise(stream, local, &[&theirs.bytes, &ours], side).await
    }
}

/// Which side of the Noise handshake this end runs.
#[derive(Clone, Copy, Debug)]
enum Side {
    /// Sends the first message; the responder must prove `expect`, if given.
    Initiator { expect: Option<Id> },
    /// Answers; tells the initiator it came from `seen`, and requires
    /// `expect` of it, if given.
    Responder {
        seen: SocketAddr,
        expect: Option<Id>,
    },
}

async fn noise<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    local: &LocalIdentity,
    prologue: &[&[u8]],
    side: Side,
) -> Result<Authenticated, HandshakeError> {
    let prologue = prologue.concat();
    let builder = snow::Builder::new(params())
        .local_private_key(&local.noise_private)
        .and_then(|b| b.prologue(&prologue))
        .map_err(HandshakeError::Noise)?;
    let mut buf = vec![0u8; MAX_HANDSHAKE_MESSAGE_BYTES];
    let mut payload = vec![0u8; MAX_HANDSHAKE_MESSAGE_BYTES];
    let check = |expected: Option<Id>, peer: &PeerPayload| match expected {
        Some(expected) if peer.id != expected => Err(HandshakeError::WrongId {
            expected,
            proven: peer.id,
        }),
        _ => Ok(()),
    };
    let (noise, peer) = match side {
        Side::Initiator { expect } => {
            let mut hs = builder.build_initiator().map_err(HandshakeError::Noise)?;
            send(stream, &mut hs, &[], &mut buf).await?;
            let n = receive(stream, &mut hs, &mut buf, &mut payload).await?;
            let peer = check_payload(&hs, &payload[..n], local, true)?;
            check(expect, &peer)?;
            send(stream, &mut hs, &local.payload(), &mut buf).await?;
            (hs, peer)
        }
        Side::Responder { seen, expect } => {
            let mut hs = builder.build_responder().map_err(HandshakeError::Noise)?;
            receive(stream, &mut hs, &mut buf, &mut payload).await?;
            let mut ours = local.payload();
            // An address always serialises; the fallback is unreachable.
            ours.extend_from_slice(&postcard::to_allocvec(&seen).unwrap_or_default());
            send(stream, &mut hs, &ours, &mut buf).await?;
            let n = receive(stream, &mut hs, &mut buf, &mut payload).await?;
            let peer = check_payload(&hs, &payload[..n], local, false)?;
            check(expect, &peer)?;
            (hs, peer)
        }
    };
    let mut noise = noise;
    if !noise.is_handshake_finished() {
        return Err(HandshakeError::Malformed);
    }
    // Noise's split: the first key seals what the initiator sends, the second what the responder sends.
    let (to_responder, to_initiator) = noise.dangerously_get_raw_split();
    let session = match side {
        Side::Initiator { .. } => Session::new(CIPHER, to_responder, to_initiator),
        Side::Responder { .. } => Session::new(CIPHER, to_initiator, to_responder),
    };
    Ok(Authenticated {
        id: peer.id,
        listen: peer.listen,
        client: peer.client,
        relayed: peer.relayed,
        public: peer.public,
        probe: peer.probe,
        observed: peer.observed,
        session,
    })
}

/// Checks a peer's preamble: our magic and our version.
pub fn check_preamble(p: &[u8; PREAMBLE_BYTES]) -> Result<(), HandshakeError> {
    if p[..4] != MAGIC {
        return Err(HandshakeError::NotDistroweb);
    }
    let mut v = [0u8; 4];
    v.copy_from_slice(&p[4..]);
    let theirs = u32::from_be_bytes(v);
    if theirs != PROTOCOL_VERSION {
        return Err(HandshakeError::WrongVersion {
            theirs,
            ours: PROTOCOL_VERSION,
        });
    }
    Ok(())
}

/// Writes one handshake message carrying `payload`, as a big-endian `u16` length and the message.
async fn send<S: AsyncWrite + Unpin>(
    stream: &mut S,
    hs: &mut snow::HandshakeState,
    payload: &[u8],
    buf: &mut [u8],
) -> Result<(), HandshakeError> {
    let n = hs
        .write_message(payload, &mut buf[2..])
        .map_err(HandshakeError::Noise)?;
    // `buf` is MAX_HANDSHAKE_MESSAGE_BYTES long, far below u16::MAX.
    let len = u16::try_from(n).unwrap_or(u16::MAX);
    buf[..2].copy_from_slice(&len.to_be_bytes());
    stream.write_all(&buf[..2 + n]).await?;
    Ok(())
}

/// Reads one handshake message, refusing one over the limit before reading it;
/// returns the length of its payload, written to `payload`.
async fn receive<S: AsyncRead + Unpin>(
    stream: &mut S,
    hs: &mut snow::HandshakeState,
    buf: &mut [u8],
    payload: &mut [u8],
) -> Result<usize, HandshakeError> {
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).await?;
    let len = usize::from(u16::from_be_bytes(len));
    if len > buf.len() {
        return Err(HandshakeError::TooLarge {
            len,
            max: buf.len(),
        });
    }
    stream.read_exact(&mut buf[..len]).await?;
    hs.read_message(&buf[..len], payload)
        .map_err(HandshakeError::Noise)
}

/// What a peer's handshake payload says, once checked.
struct PeerPayload {
    id: Id,
    listen: SocketAddr,
    client: bool,
    relayed: bool,
    public: Option<SocketAddr>,
    probe: bool,
    observed: Option<SocketAddr>,
}

/// Checks a peer's payload against the static key it used in this handshake:
/// the id it proves, its flags and the address it listens at; a responder's
/// (`from_responder`) also says where it saw us come from.
fn check_payload(
    hs: &snow::HandshakeState,
    payload: &[u8],
    local: &LocalIdentity,
    from_responder: bool,
) -> Result<PeerPayload, HandshakeError> {
    let remote_static = hs.get_remote_static().ok_or(HandshakeError::Malformed)?;
    if payload.len() <= PROOF_BYTES {
        return Err(HandshakeError::Malformed);
    }
    let mut public = [0u8; 32];
    public.copy_from_slice(&payload[..32]);
    let mut signature = [0u8; 64];
    signature.copy_from_slice(&payload[32..PROOF_BYTES]);
    let id = node_key::verify_proof(&public, &signature, remote_static, local.difficulty_bits)?;
    if id == local.id() {
        return Err(HandshakeError::OwnId);
    }
    let flags = payload[PROOF_BYTES];
    if flags & !(FLAG_CLIENT | FLAG_PROBE | FLAG_RELAYED | FLAG_PUBLIC) != 0
        || flags & (FLAG_CLIENT | FLAG_RELAYED) == FLAG_CLIENT | FLAG_RELAYED
    {
        // No other flag exists in this version, and a node reached through
        // a relay is not one nobody can reach: a peer saying so is broken.
        return Err(HandshakeError::Malformed);
    }
    let (listen, rest): (SocketAddr, _) = postcard::take_from_bytes(&payload[PROOF_BYTES + 1..])
        .map_err(|_| HandshakeError::Malformed)?;
    let (public, rest) = if flags & FLAG_PUBLIC != 0 {
        let (public, rest): (SocketAddr, _) =
            postcard::take_from_bytes(rest).map_err(|_| HandshakeError::Malformed)?;
        (Some(public), rest)
    } else {
        (None, rest)
    };
    // Only a responder says what it saw, and nothing may follow.
    let observed = match (from_responder, rest) {
        (_, []) => None,
        (true, rest) => Some(postcard::from_bytes(rest).map_err(|_| HandshakeError::Malformed)?),
        (false, _) => return Err(HandshakeError::Malformed),
    };
    Ok(PeerPayload {
        id,
        listen,
        relayed: flags & FLAG_RELAYED != 0,
        public,
        client: flags & FLAG_CLIENT != 0,
        probe: flags & FLAG_PROBE != 0,
        observed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node_key::KeySeed;

    fn local(label: &[u8], bits: u32) -> LocalIdentity {
        let key = NodeKey::from_seed(&KeySeed::search(label, bits));
        LocalIdentity::new(key, "127.0.0.1:4100".parse().unwrap(), bits).unwrap()
    }

    const T: Duration = Duration::from_secs(5);
    const SEEN: SocketAddr = SocketAddr::new(
        std::net::IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 7)),
        40_000,
    );

    #[tokio::test]
    async fn both_ends_prove_their_ids() {
        let (a, b) = (local(b"a", 2), local(b"b", 2));
        let (mut x, mut y) = tokio::io::duplex(4096);
        let expect = Some(b.id());
        let (da, lb) = tokio::join!(
            run(&mut x, &a, Role::Dialer { expect }, T),
            run(&mut y, &b, Role::Listener { seen: SEEN }, T)
        );
        assert_eq!(da.unwrap().id, b.id());
        let lb = lb.unwrap();
        assert_eq!(lb.id, a.id());
        assert_eq!(lb.listen, "127.0.0.1:4100".parse().unwrap());
        assert!(!lb.client);
    }

    #[tokio::test]
    async fn a_client_says_so_and_the_listener_learns_it() {
        let (a, b) = (local(b"a", 2), local(b"b", 2));
        a.set_client(true);
        let (mut x, mut y) = tokio::io::duplex(4096);
        let (da, lb) = tokio::join!(
            run(&mut x, &a, Role::Dialer { expect: None }, T),
            run(&mut y, &b, Role::Listener { seen: SEEN }, T)
        );
        let da = da.unwrap();
        assert!(!da.client, "the listener is not a client");
        assert_eq!(da.observed, Some(SEEN), "the listener says what it saw");
        let lb = lb.unwrap();
        assert!(lb.client, "the dialler said it is one");
        assert_eq!(lb.observed, None, "a dialler says nothing of what it saw");
    }

    #[tokio::test]
    async fn a_dial_refuses_an_unexpected_id_and_versions_are_checked() {
        let (a, b) = (local(b"a", 2), local(b"b", 2));
        let (mut x, mut y) = tokio::io::duplex(4096);
        let expect = Some(Id::hash_of(b"someone else"));
        let (da, lb) = tokio::join!(
            run(&mut x, &a, Role::Dialer { expect }, T),
            run(
                &mut y,
                &b,
                Role::Listener { seen: SEEN },
                Duration::from_millis(200)
            )
        );
        // An honest listener says at once that it is not the id asked for.
        assert!(matches!(da, Err(HandshakeError::NotHere)), "{da:?}");
        assert!(matches!(lb, Err(HandshakeError::NotHere)), "{lb:?}");
        // One that answers anyway (a liar, or a relay gone wrong) fails
        // the dialler's check of the id it proves.
        let (mut x, mut y) = tokio::io::duplex(4096);
        let liar = async {
            let opened = read_opening(&mut y).await?;
            answer(&mut y, &b, &opened, SEEN).await
        };
        // The dialler hangs up when it fails, which ends the liar's wait.
        let dialler = async move { dial(&mut x, &a, Opening::Connect(expect), expect).await };
        let (da, _) = tokio::join!(dialler, liar);
        assert!(matches!(da, Err(HandshakeError::WrongId { .. })), "{da:?}");
        assert!(matches!(
            check_preamble(&preamble(2)),
            Err(HandshakeError::WrongVersion {
                theirs: 2,
                ours: PROTOCOL_VERSION
            })
        ));
        assert!(matches!(
            check_preamble(b"GET / HT"),
            Err(HandshakeError::NotDistroweb)
        ));
    }

    #[tokio::test]
    async fn openings_round_trip_and_a_relayed_payload_names_its_relay() {
        let id = Id::hash_of(b"x");
        for o in [
            Opening::Connect(None),
            Opening::Connect(Some(id)),
            Opening::Reserve(id),
            Opening::Accept([7; 32]),
            Opening::Punch(id),
        ] {
            assert_eq!(Opening::decode(&o.encode()).unwrap(), o);
        }
        let mut bad = Opening::Connect(None).encode();
        bad[PREAMBLE_BYTES] = 9;
        assert!(matches!(
            Opening::decode(&bad),
            Err(HandshakeError::Malformed)
        ));

        let (a, b) = (local(b"a", 2), local(b"b", 2));
        let relay: SocketAddr = "198.51.100.9:4100".parse().unwrap();
        let public: SocketAddr = "203.0.113.5:4100".parse().unwrap();
        a.set_client(true);
        a.set_relayed(Some(relay));
        a.set_public(public);
        let (mut x, mut y) = tokio::io::duplex(4096);
        let (da, lb) = tokio::join!(
            run(&mut x, &a, Role::Dialer { expect: None }, T),
            run(&mut y, &b, Role::Listener { seen: SEEN }, T)
        );
        da.unwrap();
        let lb = lb.unwrap();
        assert!(lb.relayed && !lb.client, "relayed is not client");
        assert_eq!(lb.listen, relay, "reached at its relay");
        assert_eq!(lb.public, Some(public), "punched at its public address");
    }

    #[tokio::test]
    async fn a_punch_gives_the_lower_id_the_initiators_side_and_checks_ids() {
        let (a, b) = (local(b"a", 2), local(b"b", 2));
        for (one, two) in [(&a, &b), (&b, &a)] {
            // A simultaneous open: both ends write first.
            let (mut x, mut y) = tokio::io::duplex(4096);
            let (p, q) = tokio::join!(
                punch(&mut x, one, None, Some(two.id()), SEEN),
                punch(&mut y, two, None, Some(one.id()), SEEN)
            );
            assert_eq!(p.unwrap().id, two.id());
            assert_eq!(q.unwrap().id, one.id());
        }
        // Our listener met the other's connect: it read the opening first.
        let (mut x, mut y) = tokio::io::duplex(4096);
        let listener = async {
            let opened = read_opening(&mut y).await?;
            punch(&mut y, &b, Some(opened), None, SEEN).await
        };
        let (p, q) = tokio::join!(punch(&mut x, &a, None, Some(b.id()), SEEN), listener);
        assert_eq!(p.unwrap().id, b.id());
        assert_eq!(q.unwrap().id, a.id());
        // A punch that meets someone else fails on its claim.
        let c = local(b"c", 2);
        let (mut x, mut y) = tokio::io::duplex(4096);
        let ours = async move { punch(&mut x, &a, None, Some(b.id()), SEEN).await };
        let (p, _) = tokio::join!(ours, punch(&mut y, &c, None, None, SEEN));
        assert!(matches!(p, Err(HandshakeError::WrongId { .. })), "{p:?}");
    }

    #[test]
    fn the_noise_params_parse_and_name_the_cipher() {
        let params: snow::params::NoiseParams = NOISE_PARAMS.parse().unwrap();
        let named = match params.cipher {
            snow::params::CipherChoice::AESGCM => Cipher::AesGcm,
            snow::params::CipherChoice::ChaChaPoly => Cipher::ChaChaPoly,
        };
        assert_eq!(named, CIPHER);
    }
}

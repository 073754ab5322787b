//! Opening a connection: a plaintext preamble, then a Noise handshake that
//! proves each side's node id and sets up the keys every later frame is
//! sealed with.
//!
//! The preamble is the magic `dweb` and the protocol version as a big-endian
//! `u32`, sent by both ends first, so that a node can name a peer's version
//! even when the peer speaks nothing else it understands. Both preambles are
//! then the Noise prologue: a man in the middle who rewrote either one makes
//! the handshake fail.
//!
//! The pattern is XX (`-> e`, `<- e, ee, s, es`, `-> s, se`): neither side
//! needs the other's static key beforehand, which a node bootstrapping from
//! a bare address does not have. Each side's handshake payload carries its
//! Ed25519 public key, that key's signature over its Noise static key, a flags
//! byte (bit 0: client mode, the sender cannot be dialled; bit 1: dial me
//! back, see `reachability`) and the address it
//! listens at; the receiver checks the signature and the puzzle and derives
//! the id. A dialler that expects an id checks it on the second
//! message, before it reveals anything of itself.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
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
pub const PROTOCOL_VERSION: u32 = 5;

/// Bytes in the preamble: the magic and the version.
pub const PREAMBLE_BYTES: usize = 8;

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
            difficulty_bits,
        })
    }

    /// Says in every later handshake whether this node runs in client mode.
    pub fn set_client(&self, on: bool) {
        self.client.store(on, Ordering::Relaxed);
    }

    /// Says in every later handshake whether to dial this node back.
    pub fn set_probe(&self, on: bool) {
        self.probe.store(on, Ordering::Relaxed);
    }

    /// Whether handshakes ask for a dial-back now.
    pub fn probing(&self) -> bool {
        self.probe.load(Ordering::Relaxed)
    }

    /// The payload of this node's handshake message: proof, flags, address.
    fn payload(&self) -> Vec<u8> {
        let mut payload = Vec::with_capacity(PROOF_BYTES + 1 + self.listen.len());
        payload.extend_from_slice(&self.proof);
        let client = self.client.load(Ordering::Relaxed);
        let probe = self.probe.load(Ordering::Relaxed);
        payload.push(if client { FLAG_CLIENT } else { 0 } | if probe { FLAG_PROBE } else { 0 });
        payload.extend_from_slice(&self.listen);
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

/// Runs the whole handshake on `stream` as `role`, within `timeout`.
pub async fn run<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    local: &LocalIdentity,
    role: Role,
    timeout: Duration,
) -> Result<Authenticated, HandshakeError> {
    tokio::time::timeout(timeout, handshake(stream, local, role))
        .await
        .map_err(|_| HandshakeError::Timeout)?
}

async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    local: &LocalIdentity,
    role: Role,
) -> Result<Authenticated, HandshakeError> {
    // Both ends write first: 8 bytes fit in any socket buffer, so this cannot deadlock.
    let ours = preamble(PROTOCOL_VERSION);
    stream.write_all(&ours).await?;
    let mut theirs = [0u8; PREAMBLE_BYTES];
    stream.read_exact(&mut theirs).await?;
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
    check_preamble(&theirs)?;
    let prologue: Vec<u8> = match role {
        Role::Dialer { .. } => [ours, theirs].concat(),
        Role::Listener { .. } => [theirs, ours].concat(),
    };
    let builder = snow::Builder::new(params())
        .local_private_key(&local.noise_private)
        .and_then(|b| b.prologue(&prologue))
        .map_err(HandshakeError::Noise)?;
    let mut buf = vec![0u8; MAX_HANDSHAKE_MESSAGE_BYTES];
    let mut payload = vec![0u8; MAX_HANDSHAKE_MESSAGE_BYTES];
    let (noise, peer) = match role {
        Role::Dialer { expect } => {
            let mut hs = builder.build_initiator().map_err(HandshakeError::Noise)?;
            send(stream, &mut hs, &[], &mut buf).await?;
            let n = receive(stream, &mut hs, &mut buf, &mut payload).await?;
            let peer = check_payload(&hs, &payload[..n], local)?;
            if let Some(expected) = expect {
                if peer.id != expected {
                    return Err(HandshakeError::WrongId {
                        expected,
                        proven: peer.id,
                    });
                }
            }
            send(stream, &mut hs, &local.payload(), &mut buf).await?;
            (hs, peer)
        }
        Role::Listener { seen } => {
            let mut hs = builder.build_responder().map_err(HandshakeError::Noise)?;
            receive(stream, &mut hs, &mut buf, &mut payload).await?;
            let mut ours = local.payload();
            // An address always serialises; the fallback is unreachable.
            ours.extend_from_slice(&postcard::to_allocvec(&seen).unwrap_or_default());
            send(stream, &mut hs, &ours, &mut buf).await?;
            let n = receive(stream, &mut hs, &mut buf, &mut payload).await?;
            let peer = check_payload(&hs, &payload[..n], local)?;
            (hs, peer)
        }
    };
    let mut noise = noise;
    if !noise.is_handshake_finished() {
        return Err(HandshakeError::Malformed);
    }
    // Noise's split: the first key seals what the initiator sends, the second what the responder sends.
    let (to_responder, to_initiator) = noise.dangerously_get_raw_split();
    let session = match role {
        Role::Dialer { .. } => Session::new(CIPHER, to_responder, to_initiator),
        Role::Listener { .. } => Session::new(CIPHER, to_initiator, to_responder),
    };
    Ok(Authenticated {
        id: peer.id,
        listen: peer.listen,
        client: peer.client,
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
    probe: bool,
    observed: Option<SocketAddr>,
}

/// Checks a peer's payload against the static key it used in this handshake:
/// the id it proves, its flags and the address it listens at.
fn check_payload(
    hs: &snow::HandshakeState,
    payload: &[u8],
    local: &LocalIdentity,
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
    if flags & !(FLAG_CLIENT | FLAG_PROBE) != 0 {
        // No other flag exists in this version: a peer setting one is broken.
        return Err(HandshakeError::Malformed);
    }
    let (listen, rest): (SocketAddr, _) = postcard::take_from_bytes(&payload[PROOF_BYTES + 1..])
        .map_err(|_| HandshakeError::Malformed)?;
    // Only a listener says what it saw, and nothing may follow.
    let observed = match rest {
        [] => None,
        rest => Some(postcard::from_bytes(rest).map_err(|_| HandshakeError::Malformed)?),
    };
    Ok(PeerPayload {
        id,
        listen,
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
        let (da, _) = tokio::join!(
            run(&mut x, &a, Role::Dialer { expect }, T),
            run(
                &mut y,
                &b,
                Role::Listener { seen: SEEN },
                Duration::from_millis(200)
            )
        );
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

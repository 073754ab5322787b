//! The hello both ends send first on a new connection: protocol version, node id
//! and the address the sender listens at.
//!
//! A hello is a frame of its own: the magic `dweb`, the version as a big-endian
//! `u32`, then the postcard encoding of the id and address. The version
//! sits at a fixed offset so that a node can name a peer's version even when
//! the rest of that peer's hello is in a format it does not know.

use std::net::SocketAddr;
use std::time::Duration;

use distroweb_protocol::Id;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use crate::frame::{self, FrameError};

/// The version of the wire format this build speaks; peers must match exactly.
/// 2: recursive routes carry a frontier and a message tally.
pub const PROTOCOL_VERSION: u32 = 2;

const MAGIC: [u8; 4] = *b"dweb";
/// A hello is tiny; an unauthenticated peer may not make us buffer more.
const MAX_HELLO_BYTES: usize = 128;

/// What a peer says about itself when a connection opens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hello {
    /// The sender's protocol version.
    pub version: u32,
    /// The sender's node id.
    pub id: Id,
    /// The address the sender accepts connections at, as it sees it.
    pub listen: SocketAddr,
}

#[derive(Serialize, Deserialize)]
struct HelloBody {
    id: Id,
    listen: SocketAddr,
}

/// Why a connection's handshake failed.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// The hello frame could not be read.
    #[error("cannot read the hello")]
    Frame(#[from] FrameError),
    /// Writing our hello failed.
    #[error("writing hello: {0}")]
    Write(std::io::Error),
    /// The hello did not arrive within the handshake timeout.
    #[error("no hello within the handshake timeout")]
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
    /// The hello's body is undecodable.
    #[error("malformed hello")]
    Malformed,
    /// The peer has this node's own id (we dialled ourselves, or it lies).
    #[error("peer claims this node's own id")]
    OwnId,
}

impl Hello {
    /// This build's hello for a node with `id` listening at `listen`.
    pub fn new(id: Id, listen: SocketAddr) -> Self {
        Hello {
            version: PROTOCOL_VERSION,
            id,
            listen,
        }
    }

    /// The hello's frame payload (without the length prefix).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&self.version.to_be_bytes());
        let body = HelloBody {
            id: self.id,
            listen: self.listen,
        };
        // An id and an address always serialise; the fallback is unreachable.
        out.extend_from_slice(&postcard::to_allocvec(&body).unwrap_or_default());
        out
    }

    /// Parses a hello payload, refusing any version but [`PROTOCOL_VERSION`].
    pub fn decode(bytes: &[u8]) -> Result<Self, HandshakeError> {
        if bytes.len() < 8 || bytes[..4] != MAGIC {
            return Err(HandshakeError::NotDistroweb);
        }
        let mut v = [0u8; 4];
        v.copy_from_slice(&bytes[4..8]);
        let version = u32::from_be_bytes(v);
        if version != PROTOCOL_VERSION {
            return Err(HandshakeError::WrongVersion {
                theirs: version,
                ours: PROTOCOL_VERSION,
            });
        }
        let body: HelloBody =
            postcard::from_bytes(&bytes[8..]).map_err(|_| HandshakeError::Malformed)?;
        Ok(Hello {
            version,
            id: body.id,
            listen: body.listen,
        })
    }
}

/// Sends `ours`, then reads and checks the peer's hello, all within `timeout`.
pub async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    ours: &Hello,
    timeout: Duration,
) -> Result<Hello, HandshakeError> {
    tokio::time::timeout(timeout, async {
        // Both ends write first: a hello fits in any socket buffer, so this cannot deadlock.
        stream
            .write_all(&frame::encode(&ours.encode()))
            .await
            .map_err(HandshakeError::Write)?;
        let bytes = frame::read(stream, MAX_HELLO_BYTES, timeout, timeout).await?;
        let theirs = Hello::decode(&bytes)?;
        if theirs.id == ours.id {
            return Err(HandshakeError::OwnId);
        }
        Ok(theirs)
    })
    .await
    .map_err(|_| HandshakeError::Timeout)?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_round_trips_and_versions_are_checked() {
        let addr: SocketAddr = "127.0.0.1:4100".parse().unwrap();
        let hello = Hello::new(Id::from_bytes([7; 32]), addr);
        assert_eq!(Hello::decode(&hello.encode()).unwrap(), hello);

        let mut other = hello.encode();
        let theirs = PROTOCOL_VERSION + 1;
        other[4..8].copy_from_slice(&theirs.to_be_bytes());
        assert!(matches!(
            Hello::decode(&other),
            Err(HandshakeError::WrongVersion { theirs: t, ours: PROTOCOL_VERSION }) if t == theirs
        ));
        assert!(matches!(
            Hello::decode(b"GET / HTTP/1.1"),
            Err(HandshakeError::NotDistroweb)
        ));
        let mut cut = hello.encode();
        cut.truncate(20);
        assert!(matches!(
            Hello::decode(&cut),
            Err(HandshakeError::Malformed)
        ));
    }
}

//! Sealed frames: every message after the handshake is encrypted and
//! authenticated with the connection's Noise session keys.
//!
//! A Noise transport message holds at most 65,535 bytes, so a frame is a
//! sealed 4-byte big-endian length (20 bytes on the wire), then the body in
//! sealed pieces of at most [`MAX_PIECE_BYTES`]; each is exactly a Noise
//! transport message (the cipher of [`crate::handshake::NOISE_PARAMS`], a
//! 64-bit counter nonce per direction, no associated data). Each direction
//! keeps its own key and counter, so a reader and a writer task seal and open
//! at the same time without a lock.
//!
//! Implementation note: the pieces are sealed and opened here with `ring`,
//! in place, rather than through `snow`'s transport state, which copies every
//! message into a separate output buffer; on a 1 GiB transfer the copies cost
//! more than the cipher. The handshake is still `snow`'s; it hands over the
//! two keys of its final split.
//!
//! The length is opened and checked against the limit before a byte of the
//! body is read, so a stranger cannot make a node reserve anything; room for
//! the body (at most the limit, plus tags) is reserved once the header has
//! authenticated, which only a holder of the session key can make it do.
//! The reader reads the body whole and sealed ([`SealedBody`]); a
//! [`BodyOpener`] opens it, on another task in a connection, each piece in
//! place with its plaintext moved down over the tags before it, so reading
//! the next frame off the socket overlaps decrypting this one.
//!
//! The writer seals a whole frame where its bytes lie ([`SealedFrame`]) and
//! sends it with one vectored write: no copy, and one system call per frame
//! rather than one per piece.

use std::io::IoSlice;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use ring::aead::{Aad, LessSafeKey, Nonce, Tag, UnboundKey, AES_256_GCM, CHACHA20_POLY1305};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Bytes of authentication tag on every sealed message.
pub const TAG_BYTES: usize = 16;
/// Bytes of a sealed length header.
pub const HEADER_BYTES: usize = 4 + TAG_BYTES;
/// Plaintext bytes in one sealed piece: a Noise message's limit less its tag.
pub const MAX_PIECE_BYTES: usize = 65_535 - TAG_BYTES;

/// The AEAD a session uses, as the Noise protocol name says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cipher {
    /// AES-256-GCM; Noise puts the counter big-endian in the nonce's last 8 bytes.
    AesGcm,
    /// ChaCha20-Poly1305; Noise puts the counter little-endian there.
    ChaChaPoly,
}

impl Cipher {
    fn nonce(self, n: u64) -> Nonce {
        let mut bytes = [0u8; 12];
        match self {
            Cipher::AesGcm => bytes[4..].copy_from_slice(&n.to_be_bytes()),
            Cipher::ChaChaPoly => bytes[4..].copy_from_slice(&n.to_le_bytes()),
        }
        Nonce::assume_unique_for_key(bytes)
    }

    fn key(self, raw: &[u8; 32]) -> Result<LessSafeKey, FrameError> {
        let alg = match self {
            Cipher::AesGcm => &AES_256_GCM,
            Cipher::ChaChaPoly => &CHACHA20_POLY1305,
        };
        UnboundKey::new(alg, raw)
            .map(LessSafeKey::new)
            .map_err(|_| FrameError::Exhausted)
    }
}

/// Why a frame could not be read or sealed.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The announced length is over the limit; the stream cannot be trusted further.
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// The announced length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The peer closed the stream between frames.
    #[error("connection closed by peer")]
    Closed,
    /// The peer closed the stream in the middle of a frame.
    #[error("connection closed in the middle of a frame")]
    Truncated,
    /// Nothing arrived within the idle timeout.
    #[error("connection idle for too long")]
    Idle,
    /// A frame started but did not finish within the read timeout.
    #[error("frame not completed in time")]
    Stalled,
    /// A sealed piece did not authenticate: tampered with, or not ours.
    #[error("frame does not authenticate")]
    Forged,
    /// This direction used up its nonces (2^64 messages; never in practice).
    #[error("session exhausted")]
    Exhausted,
    /// The socket failed.
    #[error("socket i/o failed")]
    Io(#[from] std::io::Error),
}

/// A connection's session keys after the handshake: one per direction.
pub struct Session {
    cipher: Cipher,
    send: [u8; 32],
    receive: [u8; 32],
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Session(..)")
    }
}

impl Session {
    /// The session with the handshake's two keys, as this end uses them.
    pub fn new(cipher: Cipher, send: [u8; 32], receive: [u8; 32]) -> Self {
        Session {
            cipher,
            send,
            receive,
        }
    }

    /// Splits into the sending half and the receiving half.
    pub fn split(self) -> Result<(Sealer, Opener), FrameError> {
        Ok((
            Sealer {
                key: self.cipher.key(&self.send)?,
                cipher: self.cipher,
                nonce: 0,
            },
            Opener {
                key: self.cipher.key(&self.receive)?,
                cipher: self.cipher,
                nonce: 0,
                body: BodyOpener {
                    key: self.cipher.key(&self.receive)?,
                    cipher: self.cipher,
                },
            },
        ))
    }
}

/// Seals outgoing frames.
pub struct Sealer {
    key: LessSafeKey,
    cipher: Cipher,
    nonce: u64,
}

impl Sealer {
    /// Appends `payload`, sealed as one frame, to `out`.
    pub fn seal(&mut self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), FrameError> {
        let mut pieces = self.pieces(payload)?;
        while pieces.next(out)? {}
        Ok(())
    }

    /// Seals `payload` as one frame a piece at a time, so the writer can send
    /// each piece while the next is sealed and the reader can open it.
    pub fn pieces<'a>(&'a mut self, payload: &'a [u8]) -> Result<Pieces<'a>, FrameError> {
        let len = u32::try_from(payload.len()).map_err(|_| FrameError::TooLarge {
            len: payload.len(),
            max: u32::MAX as usize,
        })?;
        Ok(Pieces {
            sealer: self,
            header: Some(len),
            rest: payload.chunks(MAX_PIECE_BYTES),
        })
    }

    /// Seals `body` as one frame where it lies, into `frame` (which forgets
    /// the frame it held): the pieces are encrypted in place and their tags
    /// kept beside them, so nothing is copied.
    pub fn seal_in_place(
        &mut self,
        mut body: BytesMut,
        frame: &mut SealedFrame,
    ) -> Result<(), FrameError> {
        let len = u32::try_from(body.len()).map_err(|_| FrameError::TooLarge {
            len: body.len(),
            max: u32::MAX as usize,
        })?;
        let mut header = [0u8; HEADER_BYTES];
        header[..4].copy_from_slice(&len.to_be_bytes());
        let (plain, tag) = header.split_at_mut(4);
        tag.copy_from_slice(self.seal_piece(plain)?.as_ref());
        frame.tags.clear();
        for piece in body.chunks_mut(MAX_PIECE_BYTES) {
            let mut tag = [0u8; TAG_BYTES];
            tag.copy_from_slice(self.seal_piece(piece)?.as_ref());
            frame.tags.push(tag);
        }
        frame.remaining = HEADER_BYTES + body.len() + frame.tags.len() * TAG_BYTES;
        frame.header = header;
        frame.body = body;
        frame.segment = 0;
        frame.offset = 0;
        Ok(())
    }

    /// Encrypts `piece` in place under the next nonce; returns its tag.
    fn seal_piece(&mut self, piece: &mut [u8]) -> Result<Tag, FrameError> {
        let nonce = self.cipher.nonce(self.nonce);
        self.nonce = self.nonce.checked_add(1).ok_or(FrameError::Exhausted)?;
        self.key
            .seal_in_place_separate_tag(nonce, Aad::empty(), piece)
            .map_err(|_| FrameError::Exhausted)
    }

    fn seal_one(&mut self, plain: &[u8], out: &mut Vec<u8>) -> Result<(), FrameError> {
        let start = out.len();
        out.extend_from_slice(plain);
        let tag = self.seal_piece(&mut out[start..])?;
        out.extend_from_slice(tag.as_ref());
        Ok(())
    }
}

/// A frame sealed in place, ready to go out in one vectored write: the sealed
/// length, then each piece's ciphertext (where its plaintext was) followed by
/// its tag. The writer keeps one and refills it for every frame, so sealing
/// copies nothing and allocates nothing once the tag list has grown.
///
/// As a [`Buf`], it is the frame's wire bytes in order, so
/// `write_all_buf` sends it with as few `writev` calls as the socket allows.
#[derive(Debug, Default)]
pub struct SealedFrame {
    header: [u8; HEADER_BYTES],
    /// The body, each piece sealed where it lies.
    body: BytesMut,
    /// One tag per piece, in order.
    tags: Vec<[u8; TAG_BYTES]>,
    /// The wire segment being written: 0 the header, then `2i + 1` piece `i`
    /// and `2i + 2` its tag.
    segment: usize,
    /// Bytes of that segment already written.
    offset: usize,
    /// Bytes not yet written.
    remaining: usize,
}

impl SealedFrame {
    /// An empty frame, to be filled by [`Sealer::seal_in_place`].
    pub fn new() -> Self {
        SealedFrame::default()
    }

    /// Lets go of the body once it is written, so an idle connection holds
    /// no frame.
    pub fn clear(&mut self) {
        *self = SealedFrame {
            tags: std::mem::take(&mut self.tags),
            ..SealedFrame::default()
        };
        self.tags.clear();
    }

    /// Wire segment `i` (see `segment`), or `None` past the last.
    fn segment(&self, i: usize) -> Option<&[u8]> {
        if i == 0 {
            return Some(&self.header);
        }
        let piece = (i - 1) / 2;
        let tag = self.tags.get(piece)?;
        if i.is_multiple_of(2) {
            return Some(tag);
        }
        let start = piece * MAX_PIECE_BYTES;
        let end = (start + MAX_PIECE_BYTES).min(self.body.len());
        self.body.get(start..end)
    }
}

impl Buf for SealedFrame {
    fn remaining(&self) -> usize {
        self.remaining
    }

    fn chunk(&self) -> &[u8] {
        let mut i = self.segment;
        let mut offset = self.offset;
        while let Some(seg) = self.segment(i) {
            if offset < seg.len() {
                return &seg[offset..];
            }
            i += 1;
            offset = 0;
        }
        &[]
    }

    fn chunks_vectored<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        let mut i = self.segment;
        let mut offset = self.offset;
        while n < dst.len() {
            let Some(seg) = self.segment(i) else { break };
            if offset < seg.len() {
                dst[n] = IoSlice::new(&seg[offset..]);
                n += 1;
            }
            i += 1;
            offset = 0;
        }
        n
    }

    fn advance(&mut self, mut cnt: usize) {
        assert!(cnt <= self.remaining, "advanced past the frame's end");
        self.remaining -= cnt;
        while cnt > 0 {
            let Some(len) = self.segment(self.segment).map(<[u8]>::len) else {
                break;
            };
            let step = (len - self.offset).min(cnt);
            self.offset += step;
            cnt -= step;
            if self.offset == len {
                self.segment += 1;
                self.offset = 0;
            }
        }
    }
}

/// A frame being sealed, piece by piece.
pub struct Pieces<'a> {
    sealer: &'a mut Sealer,
    header: Option<u32>,
    rest: std::slice::Chunks<'a, u8>,
}

impl Pieces<'_> {
    /// Appends the next sealed piece (the length header rides with the first
    /// piece of the body) to `out`; `false` once the frame is complete.
    pub fn next(&mut self, out: &mut Vec<u8>) -> Result<bool, FrameError> {
        let mut sealed = false;
        if let Some(len) = self.header.take() {
            self.sealer.seal_one(&len.to_be_bytes(), out)?;
            sealed = true;
        }
        if let Some(piece) = self.rest.next() {
            out.reserve(piece.len() + TAG_BYTES);
            self.sealer.seal_one(piece, out)?;
            sealed = true;
        }
        Ok(sealed)
    }
}

/// Opens incoming frames.
pub struct Opener {
    key: LessSafeKey,
    cipher: Cipher,
    nonce: u64,
    /// Opens the bodies [`Opener::read`] reads; clones of it may open them
    /// elsewhere ([`Opener::body_opener`]).
    body: BodyOpener,
}

/// A frame's body as read off the socket, still sealed: its pieces back to
/// back, each followed by its tag, with the nonce of the first.
#[derive(Debug)]
pub struct SealedBody {
    bytes: Vec<u8>,
    len: usize,
    first_nonce: u64,
}

impl SealedBody {
    /// The body's plaintext length, as its authenticated header says.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the body is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Opens sealed bodies, apart from the task that reads them: the reader opens
/// only the 20-byte headers (it needs the length), so the socket is read
/// while the previous body is decrypted on another thread.
#[derive(Clone)]
pub struct BodyOpener {
    key: LessSafeKey,
    cipher: Cipher,
}

impl std::fmt::Debug for BodyOpener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BodyOpener(..)")
    }
}

impl BodyOpener {
    /// Opens every piece of `body` in place, each plaintext moved down over
    /// the tags before it; returns the plaintext.
    pub fn open(&self, body: SealedBody) -> Result<Vec<u8>, FrameError> {
        let SealedBody {
            mut bytes,
            len,
            first_nonce,
        } = body;
        for (i, start) in (0..len).step_by(MAX_PIECE_BYTES).enumerate() {
            let plain = (len - start).min(MAX_PIECE_BYTES);
            // Piece i's sealed bytes start after i tags; its plaintext belongs at `start`.
            let shift = i * TAG_BYTES;
            let n = first_nonce
                .checked_add(i as u64)
                .ok_or(FrameError::Exhausted)?;
            let in_out = bytes
                .get_mut(start..start + shift + plain + TAG_BYTES)
                .ok_or(FrameError::Truncated)?;
            self.key
                .open_within(self.cipher.nonce(n), Aad::empty(), in_out, shift..)
                .map_err(|_| FrameError::Forged)?;
        }
        bytes.truncate(len);
        Ok(bytes)
    }
}

impl Opener {
    /// Reads and opens one frame of at most `max` bytes.
    ///
    /// Waits up to `idle` for the frame to start, then up to `read` for the rest.
    pub async fn read<R: AsyncRead + Unpin>(
        &mut self,
        r: &mut R,
        max: usize,
        idle: Duration,
        read: Duration,
    ) -> Result<Vec<u8>, FrameError> {
        let body = self.read_sealed(r, max, idle, read).await?;
        self.body.open(body)
    }

    /// An opener for the bodies [`Opener::read_sealed`] returns, to use on
    /// another task.
    pub fn body_opener(&self) -> BodyOpener {
        self.body.clone()
    }

    /// Reads one frame of at most `max` bytes, opening only its length
    /// header; the body comes back sealed, for a [`BodyOpener`].
    ///
    /// Waits up to `idle` for the frame to start, then up to `read` for the rest.
    pub async fn read_sealed<R: AsyncRead + Unpin>(
        &mut self,
        r: &mut R,
        max: usize,
        idle: Duration,
        read: Duration,
    ) -> Result<SealedBody, FrameError> {
        let mut header = [0u8; HEADER_BYTES];
        let n = tokio::time::timeout(idle, r.read(&mut header))
            .await
            .map_err(|_| FrameError::Idle)??;
        if n == 0 {
            return Err(FrameError::Closed);
        }
        tokio::time::timeout(read, self.rest(r, header, n, max))
            .await
            .map_err(|_| FrameError::Stalled)?
    }

    async fn rest<R: AsyncRead + Unpin>(
        &mut self,
        r: &mut R,
        mut header: [u8; HEADER_BYTES],
        got: usize,
        max: usize,
    ) -> Result<SealedBody, FrameError> {
        r.read_exact(&mut header[got..])
            .await
            .map_err(eof_is_truncation)?;
        let opened = self.open(&mut header)?;
        let mut len = [0u8; 4];
        len.copy_from_slice(opened);
        let len = u32::from_be_bytes(len) as usize;
        if len > max {
            return Err(FrameError::TooLarge { len, max });
        }
        // The body's pieces take the nonces after the header's.
        let pieces = len.div_ceil(MAX_PIECE_BYTES);
        let first_nonce = self.nonce;
        self.nonce = self
            .nonce
            .checked_add(pieces as u64)
            .ok_or(FrameError::Exhausted)?;
        let sealed = len + pieces * TAG_BYTES;
        // The header authenticated, so only a holder of the session key can
        // make this reservation, and at most `max` (plus tags) of it.
        // `read_buf` fills it without zeroing it first.
        let mut bytes = Vec::with_capacity(sealed);
        let mut body = r.take(sealed as u64);
        while bytes.len() < sealed {
            if body.read_buf(&mut bytes).await? == 0 {
                return Err(FrameError::Truncated);
            }
        }
        Ok(SealedBody {
            bytes,
            len,
            first_nonce,
        })
    }

    /// Opens one sealed message in place; returns its plaintext.
    fn open<'a>(&mut self, sealed: &'a mut [u8]) -> Result<&'a mut [u8], FrameError> {
        let nonce = self.cipher.nonce(self.nonce);
        self.nonce = self.nonce.checked_add(1).ok_or(FrameError::Exhausted)?;
        self.key
            .open_in_place(nonce, Aad::empty(), sealed)
            .map_err(|_| FrameError::Forged)
    }
}

fn eof_is_truncation(e: std::io::Error) -> FrameError {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        FrameError::Truncated
    } else {
        FrameError::Io(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handshake::{self, LocalIdentity, Role};
    use crate::node_key::{KeySeed, NodeKey};

    const T: Duration = Duration::from_secs(5);

    /// Two ends of a finished handshake.
    async fn pair() -> (Session, Session) {
        let local = |label: &[u8]| {
            let key = NodeKey::from_seed(&KeySeed::search(label, 0));
            LocalIdentity::new(key, "127.0.0.1:1".parse().unwrap(), 0).unwrap()
        };
        let (a, b) = (local(b"a"), local(b"b"));
        let (mut x, mut y) = tokio::io::duplex(4096);
        let (da, lb) = tokio::join!(
            handshake::run(&mut x, &a, Role::Dialer { expect: None }, T),
            handshake::run(
                &mut y,
                &b,
                Role::Listener {
                    seen: "127.0.0.1:2".parse().unwrap()
                },
                T
            )
        );
        (da.unwrap().session, lb.unwrap().session)
    }

    #[tokio::test]
    async fn round_trip_and_limits() {
        let (a, b) = pair().await;
        let (mut seal, _) = a.split().unwrap();
        let (_, mut open) = b.split().unwrap();
        let big: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        let mut wire = Vec::new();
        seal.seal(b"hello", &mut wire).unwrap();
        seal.seal(b"", &mut wire).unwrap();
        seal.seal(&big, &mut wire).unwrap();
        assert!(
            !wire.windows(5).any(|w| w == b"hello"),
            "sealed bytes are not plaintext"
        );
        let mut r = &wire[..];
        assert_eq!(open.read(&mut r, 1 << 20, T, T).await.unwrap(), b"hello");
        assert_eq!(open.read(&mut r, 1 << 20, T, T).await.unwrap(), b"");
        assert_eq!(open.read(&mut r, 1 << 20, T, T).await.unwrap(), big);
        assert!(matches!(
            open.read(&mut r, 16, T, T).await,
            Err(FrameError::Closed)
        ));

        let mut wire = Vec::new();
        seal.seal(&[0u8; 17], &mut wire).unwrap();
        assert!(matches!(
            open.read(&mut &wire[..], 16, T, T).await,
            Err(FrameError::TooLarge { len: 17, max: 16 })
        ));
    }

    /// Sealing in place puts on the wire exactly what sealing into a buffer
    /// does, however the writes split it.
    #[tokio::test]
    async fn sealed_in_place_matches_sealed_by_copy() {
        let session = || Session::new(Cipher::AesGcm, [3; 32], [4; 32]);
        let (mut by_copy, _) = session().split().unwrap();
        let (mut in_place, _) = session().split().unwrap();
        let (_, mut open) = Session::new(Cipher::AesGcm, [4; 32], [3; 32])
            .split()
            .unwrap();
        let mut frame = SealedFrame::new();
        for len in [
            0,
            1,
            100,
            MAX_PIECE_BYTES,
            MAX_PIECE_BYTES + 1,
            3 * MAX_PIECE_BYTES,
            200_000,
        ] {
            let payload: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            let mut expected = Vec::new();
            by_copy.seal(&payload, &mut expected).unwrap();
            in_place
                .seal_in_place(BytesMut::from(&payload[..]), &mut frame)
                .unwrap();
            assert_eq!(frame.remaining(), expected.len());
            // Drain it in uneven steps, as short writes would.
            let mut wire = Vec::new();
            let mut step = 1;
            while frame.has_remaining() {
                let mut slices = [IoSlice::new(&[]); 4];
                let n = frame.chunks_vectored(&mut slices);
                let gathered: Vec<u8> =
                    slices[..n].iter().flat_map(|s| s.iter().copied()).collect();
                assert!(gathered.starts_with(frame.chunk()));
                let take = step.min(gathered.len());
                wire.extend_from_slice(&gathered[..take]);
                frame.advance(take);
                step = step * 3 + 17;
            }
            assert_eq!(wire, expected, "{len} bytes");
            assert_eq!(
                open.read(&mut &wire[..], 1 << 20, T, T).await.unwrap(),
                payload
            );
            frame.clear();
            assert_eq!(frame.remaining(), 0);
        }
    }

    #[tokio::test]
    async fn tampering_and_truncation_are_caught() {
        let (a, b) = pair().await;
        let (mut seal, _) = a.split().unwrap();
        let (_, mut open) = b.split().unwrap();
        let mut wire = Vec::new();
        seal.seal(b"hello", &mut wire).unwrap();
        let mut bad = wire.clone();
        bad[HEADER_BYTES + 1] ^= 1;
        assert!(matches!(
            open.read(&mut &bad[..], 16, T, T).await,
            Err(FrameError::Forged)
        ));
        let (a, b) = pair().await;
        let (mut seal, _) = a.split().unwrap();
        let (_, mut open) = b.split().unwrap();
        let mut wire = Vec::new();
        seal.seal(b"hello", &mut wire).unwrap();
        assert!(matches!(
            open.read(&mut &wire[..HEADER_BYTES + 3], 16, T, T).await,
            Err(FrameError::Truncated)
        ));
    }
}

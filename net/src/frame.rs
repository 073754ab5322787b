//! Length-prefixed frames on a byte stream: a big-endian `u32` length, then that many bytes.
//!
//! The length is checked against a hard limit before a byte of the body is read,
//! and the body buffer grows only as bytes actually arrive, so a peer that
//! announces a large frame and then stalls costs almost no memory.

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Bytes in a frame's length prefix.
pub const LENGTH_BYTES: usize = 4;

/// Why a frame could not be read.
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
    /// The socket failed.
    #[error("socket i/o failed")]
    Io(#[from] std::io::Error),
}

/// Prefixes `payload` with its length, ready to write in one call.
pub fn encode(payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(LENGTH_BYTES + payload.len());
    // Callers never build payloads over `u32::MAX`: every payload is bounded by
    // `max_frame_bytes`, far below it.
    out.put_u32(u32::try_from(payload.len()).unwrap_or(u32::MAX));
    out.put_slice(payload);
    out.freeze()
}

/// Reads one frame of at most `max` bytes.
///
/// Waits up to `idle` for the frame to start, then up to `read` for the rest.
pub async fn read<R: AsyncRead + Unpin>(
    r: &mut R,
    max: usize,
    idle: Duration,
    read: Duration,
) -> Result<Vec<u8>, FrameError> {
    let mut first = [0u8; 1];
    let n = tokio::time::timeout(idle, r.read(&mut first))
        .await
        .map_err(|_| FrameError::Idle)??;
    if n == 0 {
        return Err(FrameError::Closed);
    }
    tokio::time::timeout(read, rest(r, first[0], max))
        .await
        .map_err(|_| FrameError::Stalled)?
}

async fn rest<R: AsyncRead + Unpin>(
    r: &mut R,
    first: u8,
    max: usize,
) -> Result<Vec<u8>, FrameError> {
    let mut len_bytes = [first, 0, 0, 0];
    r.read_exact(&mut len_bytes[1..])
        .await
        .map_err(eof_is_truncation)?;
    let len = u32::from_be_bytes(len_bytes) as usize;
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    let mut body = Vec::with_capacity(len.min(64 * 1024));
    let got = r.take(len as u64).read_to_end(&mut body).await?;
    if got < len {
        return Err(FrameError::Truncated);
    }
    Ok(body)
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

    const T: Duration = Duration::from_secs(1);

    #[tokio::test]
    async fn round_trip_and_limits() {
        let mut input = Vec::new();
        input.extend_from_slice(&encode(b"hello"));
        input.extend_from_slice(&encode(b""));
        let mut r = &input[..];
        assert_eq!(read(&mut r, 16, T, T).await.unwrap(), b"hello");
        assert_eq!(read(&mut r, 16, T, T).await.unwrap(), b"");
        assert!(matches!(
            read(&mut r, 16, T, T).await,
            Err(FrameError::Closed)
        ));

        let big = encode(&[0u8; 17]);
        assert!(matches!(
            read(&mut &big[..], 16, T, T).await,
            Err(FrameError::TooLarge { len: 17, max: 16 })
        ));
        let cut = encode(b"hello");
        assert!(matches!(
            read(&mut &cut[..6], 16, T, T).await,
            Err(FrameError::Truncated)
        ));
        assert!(matches!(
            read(&mut &cut[..2], 16, T, T).await,
            Err(FrameError::Truncated)
        ));
    }
}

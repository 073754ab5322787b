//! Write tokens (BitTorrent's BEP 5): a tracker stores a record only for a
//! peer that has recently heard from it at the address it writes from.
//!
//! A tracker hands a token out in its replies to lookups (`Nodes`,
//! `Providers`, a recursive route's answer); the token is a keyed hash of the
//! requester's proven id and observed address under a secret only the tracker
//! knows. `AddProvider` and `AddFetching` carry it back, and the tracker stores
//! the record only if the token matches the id and address the write comes
//! from. So a record costs its writer a round trip from a real address under
//! a real id: ids minted by the thousand behind one connection get nothing.
//!
//! The secret rotates every `token_rotation` and the previous one is still
//! accepted, so a token lives between one and two rotations (5 to 10 minutes
//! by default, as BEP 5's).

use core::time::Duration;

use serde::{Deserialize, Serialize};

use crate::contact::Address;
use crate::id::Id;
use crate::time::Time;

/// Bytes of a token on the wire.
pub const TOKEN_BYTES: usize = 8;

/// A write token: the first [`TOKEN_BYTES`] bytes of a keyed BLAKE3 hash of
/// (the tracker's secret; the requester's id, its postcard-encoded address).
///
/// Eight bytes: a forger must guess 2^64 values per (id, address) and per
/// rotation, while the token adds eight bytes to a reply (postcard writes a
/// fixed array without a length).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Token(pub [u8; TOKEN_BYTES]);

/// A tracker's token secrets: the current one and the one before it.
///
/// Rotation is lazy (on the next issue or check), epoch by epoch, so a token
/// issued in one epoch is accepted through the next and refused after that,
/// whenever the node next looks.
#[derive(Clone)]
pub struct TokenSecrets {
    current: [u8; 32],
    previous: [u8; 32],
    /// When the current secret's epoch began.
    epoch: Time,
    rotation: Duration,
    /// Implementation note: the secrets come from a stream of their own,
    /// derived from the node's seed, so that drawing them (whenever a peer
    /// happens to ask) leaves the node's main RNG, and so every lookup and
    /// fetch decision, exactly as it was. The stream is a keyed hash of a
    /// counter rather than a ChaCha generator: 40 bytes per node instead of
    /// 320, for a draw that happens once per rotation.
    key: [u8; 32],
    /// Secrets drawn so far: the next one is the keyed hash of this count.
    drawn: u64,
}

impl core::fmt::Debug for TokenSecrets {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // Secrets never reach a log.
        f.debug_struct("TokenSecrets")
            .field("epoch", &self.epoch)
            .field("rotation", &self.rotation)
            .finish_non_exhaustive()
    }
}

impl TokenSecrets {
    /// Secrets for a node seeded with `seed`, the first epoch starting `now`.
    pub fn new(seed: u64, now: Time, rotation: Duration) -> Self {
        let key = blake3::derive_key("distroweb token secrets v1", &seed.to_le_bytes());
        let mut s = TokenSecrets {
            current: [0; 32],
            previous: [0; 32],
            epoch: now,
            rotation,
            key,
            drawn: 0,
        };
        s.current = s.draw();
        s.previous = s.draw();
        s
    }

    /// The next secret of this node's stream.
    fn draw(&mut self) -> [u8; 32] {
        let secret = *blake3::keyed_hash(&self.key, &self.drawn.to_le_bytes()).as_bytes();
        self.drawn += 1;
        secret
    }

    /// Moves to the epoch `now` falls in: one epoch on, the current secret
    /// becomes the previous; two or more, both are new.
    fn rotate(&mut self, now: Time) {
        let rotation = crate::node::micros(self.rotation).max(1);
        let epochs = now.saturating_since(self.epoch).as_micros() as u64 / rotation;
        if epochs == 0 {
            return;
        }
        if epochs == 1 {
            self.previous = self.current;
        } else {
            self.previous = self.draw();
        }
        self.current = self.draw();
        self.epoch += Duration::from_micros(epochs.saturating_mul(rotation));
    }

    /// The token for `id` writing from `addr`, under the current secret.
    pub fn issue<A: Address>(&mut self, now: Time, id: &Id, addr: &A) -> Token {
        self.rotate(now);
        token(&self.current, id, addr)
    }

    /// Whether `token` is one this node issued to `id` at `addr` in this
    /// epoch or the one before.
    pub fn check<A: Address>(&mut self, now: Time, token: &Token, id: &Id, addr: &A) -> bool {
        self.rotate(now);
        token == &self::token(&self.current, id, addr)
            || token == &self::token(&self.previous, id, addr)
    }
}

fn token<A: Address>(secret: &[u8; 32], id: &Id, addr: &A) -> Token {
    let mut h = blake3::Hasher::new_keyed(secret);
    h.update(id.as_bytes());
    // Our own addresses always serialise; an empty encoding would only make
    // every address of this type share tokens, never accept a forged one.
    h.update(&postcard::to_allocvec(addr).unwrap_or_default());
    let mut out = [0u8; TOKEN_BYTES];
    out.copy_from_slice(&h.finalize().as_bytes()[..TOKEN_BYTES]);
    Token(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::test_id as id;

    const MIN5: Duration = Duration::from_secs(300);

    #[test]
    fn a_token_binds_id_and_address_and_lives_one_to_two_rotations() {
        let mut s = TokenSecrets::new(7, Time::ZERO, MIN5);
        let t = s.issue(Time::from_secs(10), &id(1), &1u32);
        assert!(s.check(Time::from_secs(20), &t, &id(1), &1u32));
        assert!(!s.check(Time::from_secs(20), &t, &id(2), &1u32));
        assert!(!s.check(Time::from_secs(20), &t, &id(1), &2u32));
        // One rotation later: still good.
        assert!(s.check(Time::from_secs(599), &t, &id(1), &1u32));
        // Two rotations after the epoch it was issued in: refused.
        assert!(!s.check(Time::from_secs(600), &t, &id(1), &1u32));
    }

    #[test]
    fn a_long_silence_drops_both_secrets() {
        let mut s = TokenSecrets::new(7, Time::ZERO, MIN5);
        let t = s.issue(Time::from_secs(299), &id(1), &1u32);
        assert!(!s.check(Time::from_secs(3600), &t, &id(1), &1u32));
        let fresh = s.issue(Time::from_secs(3600), &id(1), &1u32);
        assert!(s.check(Time::from_secs(3601), &fresh, &id(1), &1u32));
    }

    #[test]
    fn nodes_with_different_seeds_issue_different_tokens() {
        let mut a = TokenSecrets::new(1, Time::ZERO, MIN5);
        let mut b = TokenSecrets::new(2, Time::ZERO, MIN5);
        assert_ne!(
            a.issue(Time::ZERO, &id(1), &1u32),
            b.issue(Time::ZERO, &id(1), &1u32)
        );
    }
}

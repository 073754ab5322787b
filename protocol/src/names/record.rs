//! One signed name record, and how it is signed and checked.

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::id::Id;

/// Prefix of every signed message, so a name signature can never be taken
/// for a signature over anything else a key signs (a handshake, say).
pub const NAME_DOMAIN: &[u8] = b"distroweb name record v1\0";

/// The longest a record may claim to stay valid past the moment it is
/// checked: 30 days (a bound chosen here). A leaked, long-lived record for
/// an old root would otherwise outlive its author's later updates wherever
/// those do not reach.
pub const MAX_VALIDITY_S: u64 = 30 * 24 * 3600;

/// A name: the Ed25519 public key whose holder may point it at a root.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NameKey(pub [u8; 32]);

impl NameKey {
    /// Where the name's records are tracked: BLAKE3 of the key, apart from
    /// node ids (BLAKE3 of a node's key) by a domain prefix.
    pub fn id(&self) -> Id {
        let mut h = blake3::Hasher::new();
        h.update(b"distroweb name\0");
        h.update(&self.0);
        Id::from_bytes(*h.finalize().as_bytes())
    }
}

/// An Ed25519 signature's 64 bytes, written on the wire as exactly 64 bytes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature(pub [u8; 64]);

impl core::fmt::Debug for Signature {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Signature({:02x}{:02x}..)", self.0[0], self.0[1])
    }
}

impl Serialize for Signature {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Two fixed halves: serde derives arrays up to 32 only, and a tuple
        // costs no length prefix.
        let (a, b) = self.0.split_at(32);
        let mut halves = ([0u8; 32], [0u8; 32]);
        halves.0.copy_from_slice(a);
        halves.1.copy_from_slice(b);
        halves.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Signature {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (a, b) = <([u8; 32], [u8; 32])>::deserialize(d)?;
        let mut out = [0u8; 64];
        out[..32].copy_from_slice(&a);
        out[32..].copy_from_slice(&b);
        Ok(Signature(out))
    }
}

/// "Name `name` points at `root`, as of sequence `seq`, until `expires`."
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameRecord {
    /// The name (its public key).
    pub name: NameKey,
    /// The site's root content id.
    pub root: Id,
    /// Grows with every update; a tracker never goes back to a lower one.
    pub seq: u64,
    /// Unix seconds after which the record is void.
    pub expires: u64,
    /// The name key's signature over all of the above ([`NameRecord::signed_bytes`]).
    pub signature: Signature,
}

/// Why a name record is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The signature does not verify under the record's own key, or the key
    /// is not a valid Ed25519 point.
    #[error("signature does not verify under the name's key")]
    BadSignature,
    /// The record's validity ended.
    #[error("record expired at {expires}, it is now {now} (unix seconds)")]
    Expired {
        /// When it expired.
        expires: u64,
        /// The calendar time it was checked at.
        now: u64,
    },
    /// The record claims validity past [`MAX_VALIDITY_S`] from now.
    #[error("record claims validity until {expires}, more than {MAX_VALIDITY_S} s past {now}")]
    TooLong {
        /// The claimed end.
        expires: u64,
        /// The calendar time it was checked at.
        now: u64,
    },
    /// A lower sequence than the one held: a rollback.
    #[error("sequence {got} is below the {held} already held")]
    Rollback {
        /// The sequence held.
        held: u64,
        /// The sequence offered.
        got: u64,
    },
    /// The same sequence for another root, losing the tie to the record held
    /// ([`NameRecord::supersedes`]): the key signed two versions with one
    /// number, and every node keeps the same one.
    #[error("sequence {seq} is already held for another root")]
    Conflict {
        /// The sequence both claim.
        seq: u64,
    },
    /// The writer (its peer id, or its address group) has placed as many
    /// names in the store as its share allows.
    #[error("the writer's share of the name store is used up")]
    ShareUsed,
    /// The store holds as many names as it may, all live.
    #[error("the name store is full")]
    StoreFull,
}

impl NameRecord {
    /// What the key signs: the domain, then the fields in a fixed layout.
    pub fn signed_bytes(name: &NameKey, root: &Id, seq: u64, expires: u64) -> Vec<u8> {
        let mut m = Vec::with_capacity(NAME_DOMAIN.len() + 32 + 32 + 16);
        m.extend_from_slice(NAME_DOMAIN);
        m.extend_from_slice(&name.0);
        m.extend_from_slice(root.as_bytes());
        m.extend_from_slice(&seq.to_be_bytes());
        m.extend_from_slice(&expires.to_be_bytes());
        m
    }

    /// A record signed with the Ed25519 secret key `secret`.
    pub fn sign(secret: &[u8; 32], root: Id, seq: u64, expires: u64) -> NameRecord {
        let key = SigningKey::from_bytes(secret);
        let name = NameKey(key.verifying_key().to_bytes());
        let sig = key.sign(&Self::signed_bytes(&name, &root, seq, expires));
        NameRecord {
            name,
            root,
            seq,
            expires,
            signature: Signature(sig.to_bytes()),
        }
    }

    /// Whether this record is newer than `other` of the same name: the higher
    /// sequence; between two of one sequence (two machines publishing with
    /// one key at once), the greater root, then the later expiry, so that
    /// every node picks the same winner and the network converges.
    pub fn supersedes(&self, other: &NameRecord) -> bool {
        (self.seq, self.root, self.expires) > (other.seq, other.root, other.expires)
    }

    /// Checks the signature and the validity window at calendar time `now`
    /// (Unix seconds).
    pub fn verify(&self, now: u64) -> Result<(), NameError> {
        if self.expires <= now {
            return Err(NameError::Expired {
                expires: self.expires,
                now,
            });
        }
        if self.expires - now > MAX_VALIDITY_S {
            return Err(NameError::TooLong {
                expires: self.expires,
                now,
            });
        }
        let key = VerifyingKey::from_bytes(&self.name.0).map_err(|_| NameError::BadSignature)?;
        let sig = ed25519_dalek::Signature::from_bytes(&self.signature.0);
        let msg = Self::signed_bytes(&self.name, &self.root, self.seq, self.expires);
        // Strict: no malleable signatures, no small-order keys.
        key.verify_strict(&msg, &sig)
            .map_err(|_| NameError::BadSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;

    fn record(seq: u64) -> NameRecord {
        NameRecord::sign(&[7; 32], Id::hash_of(&seq.to_be_bytes()), seq, NOW + 3600)
    }

    #[test]
    fn a_signed_record_verifies_and_any_changed_field_does_not() {
        let r = record(3);
        assert_eq!(r.verify(NOW), Ok(()));
        let mut bad = r;
        bad.root = Id::hash_of(b"elsewhere");
        assert_eq!(bad.verify(NOW), Err(NameError::BadSignature));
        let mut bad = r;
        bad.seq = 4;
        assert_eq!(bad.verify(NOW), Err(NameError::BadSignature));
        let mut bad = r;
        bad.expires += 1;
        assert_eq!(bad.verify(NOW), Err(NameError::BadSignature));
        let mut bad = r;
        bad.signature.0[5] ^= 1;
        assert_eq!(bad.verify(NOW), Err(NameError::BadSignature));
        // Another key's record cannot speak for this name.
        let mut other = NameRecord::sign(&[8; 32], r.root, 3, r.expires);
        other.name = r.name;
        assert_eq!(other.verify(NOW), Err(NameError::BadSignature));
    }

    #[test]
    fn the_validity_window_is_enforced() {
        let r = record(1);
        assert!(matches!(
            r.verify(NOW + 3600),
            Err(NameError::Expired { .. })
        ));
        let long = NameRecord::sign(&[7; 32], r.root, 1, NOW + MAX_VALIDITY_S + 1);
        assert!(matches!(long.verify(NOW), Err(NameError::TooLong { .. })));
        assert_eq!(long.verify(NOW + 1), Ok(()));
    }

    #[test]
    fn a_record_survives_the_wire_in_a_fixed_size() {
        let r = record(9);
        let bytes = postcard::to_allocvec(&r).unwrap();
        assert_eq!(postcard::from_bytes::<NameRecord>(&bytes).unwrap(), r);
        // 32 + 32 + 64 fixed, two varints.
        assert!(bytes.len() <= 32 + 32 + 64 + 10 + 10, "{}", bytes.len());
        assert!(postcard::from_bytes::<NameRecord>(&bytes[..bytes.len() - 1]).is_err());
    }

    #[test]
    fn names_are_tracked_apart_from_node_ids() {
        let r = record(1);
        assert_ne!(r.name.id(), Id::hash_of(&r.name.0));
    }
}

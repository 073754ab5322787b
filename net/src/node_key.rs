//! The node's Ed25519 key and the id it proves: BLAKE3 of the public key,
//! valid only when it meets the network's static puzzle (S/Kademlia).
//!
//! An id that is a hash of a key cannot be chosen, only searched for: a peer
//! that wants an id next to some content must try keys until one lands there,
//! and the puzzle (BLAKE3 of the id starting with `bits` zero bits) multiplies
//! the cost of every try by `2^bits`.

use core::fmt;

use distroweb_protocol::Id;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};

/// Bytes in a key seed (the Ed25519 secret key).
pub const SEED_BYTES: usize = 32;

/// Domain separation for the signature a node makes over its Noise static key,
/// so the signature can never be replayed as anything else.
const STATIC_KEY_CONTEXT: &[u8] = b"distroweb noise static key v1:";

/// An Ed25519 secret key seed; its `Debug` never shows the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct KeySeed(pub [u8; SEED_BYTES]);

impl fmt::Debug for KeySeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeySeed(..)")
    }
}

impl KeySeed {
    /// The first seed, counting up from BLAKE3(`label`), whose id meets a
    /// puzzle of `bits`: deterministic keys for tests and examples.
    pub fn search(label: &[u8], bits: u32) -> KeySeed {
        let mut n: u64 = 0;
        loop {
            let mut h = blake3::Hasher::new();
            h.update(label);
            h.update(&n.to_le_bytes());
            let seed = KeySeed(*h.finalize().as_bytes());
            if meets_puzzle(&NodeKey::from_seed(&seed).id(), bits) {
                return seed;
            }
            n += 1;
        }
    }
}

/// A node's signing key and the id derived from it.
#[derive(Clone)]
pub struct NodeKey {
    signing: SigningKey,
    id: Id,
}

impl fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Why a peer's key proof was refused.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The public key bytes are not a valid Ed25519 point.
    #[error("not an Ed25519 public key")]
    BadPublicKey,
    /// The signature over the Noise static key does not verify.
    #[error("signature over the Noise static key does not verify")]
    BadSignature,
    /// The id does not meet the network's puzzle.
    #[error("id {id} does not meet the {bits}-bit puzzle")]
    Puzzle {
        /// The id.
        id: Id,
        /// The puzzle's difficulty.
        bits: u32,
    },
}

impl NodeKey {
    /// The key for `seed`.
    pub fn from_seed(seed: &KeySeed) -> Self {
        let signing = SigningKey::from_bytes(&seed.0);
        let id = id_of(&signing.verifying_key());
        NodeKey { signing, id }
    }

    /// A fresh key meeting a puzzle of `bits`, drawn from OS randomness;
    /// about `2^bits` tries.
    pub fn generate(bits: u32) -> Result<(Self, KeySeed), getrandom::Error> {
        loop {
            let mut seed = KeySeed([0; SEED_BYTES]);
            getrandom::fill(&mut seed.0)?;
            let key = NodeKey::from_seed(&seed);
            if meets_puzzle(&key.id, bits) {
                return Ok((key, seed));
            }
        }
    }

    /// The node id this key proves.
    pub fn id(&self) -> Id {
        self.id
    }

    /// The public key, as sent in the handshake.
    pub fn public(&self) -> [u8; 32] {
        self.signing.verifying_key().to_bytes()
    }

    /// Signs a Noise static public key: the binding of the encrypted session to this id.
    pub fn sign_static(&self, noise_static: &[u8]) -> [u8; 64] {
        self.signing.sign(&static_message(noise_static)).to_bytes()
    }
}

/// The id of a public key: BLAKE3 of its 32 bytes.
pub fn id_of(public: &VerifyingKey) -> Id {
    Id::hash_of(public.as_bytes())
}

/// Whether `id` meets the static puzzle: BLAKE3(id) starts with `bits` zero bits.
pub fn meets_puzzle(id: &Id, bits: u32) -> bool {
    bits == 0 || Id::hash_of(id.as_bytes()).leading_zeros() >= bits
}

/// Checks a peer's proof: `public` signed `noise_static` with `signature`, and
/// its id meets the puzzle; returns the id.
pub fn verify_proof(
    public: &[u8; 32],
    signature: &[u8; 64],
    noise_static: &[u8],
    bits: u32,
) -> Result<Id, KeyError> {
    let key = VerifyingKey::from_bytes(public).map_err(|_| KeyError::BadPublicKey)?;
    key.verify(
        &static_message(noise_static),
        &Signature::from_bytes(signature),
    )
    .map_err(|_| KeyError::BadSignature)?;
    let id = id_of(&key);
    if !meets_puzzle(&id, bits) {
        return Err(KeyError::Puzzle { id, bits });
    }
    Ok(id)
}

fn static_message(noise_static: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(STATIC_KEY_CONTEXT.len() + noise_static.len());
    m.extend_from_slice(STATIC_KEY_CONTEXT);
    m.extend_from_slice(noise_static);
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proofs_verify_and_bind_the_static_key() {
        let seed = KeySeed::search(b"a", 4);
        let key = NodeKey::from_seed(&seed);
        assert!(meets_puzzle(&key.id(), 4));
        let sig = key.sign_static(&[9; 32]);
        assert_eq!(
            verify_proof(&key.public(), &sig, &[9; 32], 4).unwrap(),
            key.id()
        );
        assert!(matches!(
            verify_proof(&key.public(), &sig, &[8; 32], 4),
            Err(KeyError::BadSignature)
        ));
        // A key searched for 0 bits almost never meets 16.
        let weak = NodeKey::from_seed(&KeySeed::search(b"b", 0));
        let sig = weak.sign_static(&[9; 32]);
        if !meets_puzzle(&weak.id(), 16) {
            assert!(matches!(
                verify_proof(&weak.public(), &sig, &[9; 32], 16),
                Err(KeyError::Puzzle { bits: 16, .. })
            ));
        }
        assert_eq!(format!("{seed:?}"), "KeySeed(..)");
    }
}

//! The trace digest: a BLAKE3 hash over every event the engine processed, so two
//! runs can be compared by one line of output.

/// Accumulates the event trace into a hash, through a scratch buffer so that
/// BLAKE3 sees large updates.
#[derive(Debug)]
pub(crate) struct TraceDigest {
    hasher: blake3::Hasher,
    buf: Vec<u8>,
    records: u64,
}

const FLUSH_BYTES: usize = 16 * 1024;

impl Default for TraceDigest {
    fn default() -> Self {
        TraceDigest {
            hasher: blake3::Hasher::new(),
            buf: Vec::with_capacity(FLUSH_BYTES + 64),
            records: 0,
        }
    }
}

impl TraceDigest {
    /// Adds one record made of little-endian words.
    pub fn record(&mut self, words: &[u64]) {
        for w in words {
            self.buf.extend_from_slice(&w.to_le_bytes());
        }
        self.records += 1;
        if self.buf.len() >= FLUSH_BYTES {
            self.hasher.update(&self.buf);
            self.buf.clear();
        }
    }

    /// The digest of everything recorded so far, as 64 hex characters.
    pub fn hex(&self) -> String {
        let mut h = self.hasher.clone();
        h.update(&self.buf);
        h.update(&self.records.to_le_bytes());
        h.finalize().to_hex().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_records_same_digest_and_order_matters() {
        let mut a = TraceDigest::default();
        let mut b = TraceDigest::default();
        let mut c = TraceDigest::default();
        for i in 0..5_000u64 {
            a.record(&[i, i * 3]);
            b.record(&[i, i * 3]);
        }
        for i in (0..5_000u64).rev() {
            c.record(&[i, i * 3]);
        }
        assert_eq!(a.hex(), b.hex());
        assert_ne!(a.hex(), c.hex());
    }
}

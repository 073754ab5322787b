//! Transport counters, shared by the connection tasks and read by the status page.
//!
//! Atomics rather than messages to the node task: counting a frame must not cost
//! a trip through the node's input queue.

use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($(#[doc = $doc:literal] $name:ident),* $(,)?) => {
        /// Live transport counters; cheap to bump from any task.
        #[derive(Debug, Default)]
        pub struct TransportStats {
            $(#[doc = $doc] pub $name: AtomicU64,)*
        }

        /// A copy of [`TransportStats`] at one moment.
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct TransportCounters {
            $(#[doc = $doc] pub $name: u64,)*
        }

        impl TransportStats {
            /// The counters' current values.
            pub fn snapshot(&self) -> TransportCounters {
                TransportCounters {
                    $($name: self.$name.load(Ordering::Relaxed),)*
                }
            }
        }

        impl TransportCounters {
            /// Every counter as `(name, value)`, for metrics exporters.
            pub fn fields(&self) -> Vec<(&'static str, u64)> {
                vec![$((stringify!($name), self.$name),)*]
            }
        }
    };
}

counters! {
    /// Inbound connections that completed the handshake.
    connections_accepted,
    /// Outbound connections that completed the handshake.
    connections_dialed,
    /// Inbound connections refused: over a per-IP cap, or inbound full with none to evict.
    connections_refused,
    /// Inbound connections evicted in their handshake to make room for a newcomer.
    connections_evicted,
    /// Dials that failed (refused, timed out, handshake failed, or over the cap).
    dials_failed,
    /// Outbound connections closed to give their slot to a dial (the least recently used, or one a newer connection had replaced).
    connections_trimmed,
    /// Handshakes that failed, in either direction.
    handshakes_failed,
    /// Handshakes refused because the peer spoke another protocol version.
    version_mismatches,
    /// Handshakes in which the peer failed to prove an id (bad Noise message, signature or puzzle; another id than dialled for).
    auth_failures,
    /// Dials not made because of the dial limits (a recently failed address; too many unverified dials or failures at one IP).
    dials_refused,
    /// Connections closed because the peer sent an oversized, truncated, forged or undecodable frame.
    bad_frames,
    /// Frames received and decoded.
    frames_in,
    /// Frames written.
    frames_out,
    /// Payload bytes received.
    bytes_in,
    /// Payload bytes written.
    bytes_out,
    /// Frames dropped because a connection's queue was full or the peer unreachable.
    frames_dropped,
    /// Blocks answered "busy" because the asker's connection queue was full.
    busy_for_full_queue,
    /// Peers that asked for a dial-back and were dialled back (handshake done).
    dialbacks,
    /// Dial-backs that failed: the asker could not be dialled where it said.
    dialbacks_failed,
    /// Relay reservations this node made at a relay.
    reservations_made,
    /// Relay reservations this node held for others.
    reservations_served,
    /// Relay reservations this node refused (off, full, or itself unreachable).
    reservations_refused,
    /// Circuits this node relayed.
    circuits_relayed,
    /// Circuits this node refused or could not complete as a relay.
    circuits_refused,
    /// Bytes this node copied through its circuits.
    relayed_bytes,
    /// Connections made through a relay, as either end.
    connections_relayed,
    /// Hole punches tried after meeting a peer through a relay.
    punches_attempted,
    /// Hole punches that made a direct connection (either end's connect, or our listener's).
    punches_succeeded,
    /// Hole punches that failed: the relayed connection stays.
    punches_failed,
}

impl TransportStats {
    /// Adds one to `counter`.
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds `n` to `counter`.
    pub(crate) fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }
}

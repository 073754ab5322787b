//! Counts of the engine's own work.

/// Counts of what the engine did, for events/s figures and sanity checks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Messages handed to a node as `Input::Message`.
    pub delivered: u64,
    /// `Input::Timeout` inputs that found a deadline due.
    pub timeouts: u64,
    /// Scheduled actions run (joins, leaves, commands).
    pub actions: u64,
    /// `Input::SendFailed` inputs.
    pub send_failures: u64,
    /// Wake-ups that found the node's deadline moved later and only re-armed it.
    pub rearmed: u64,
    /// Lazily cancelled timer entries skipped.
    pub stale_wakes: u64,
    /// Messages the loss model dropped.
    pub lost: u64,
    /// Messages a partition dropped.
    pub partitioned: u64,
    /// Messages a NAT dropped as unsolicited (see [`crate::network::nat`]).
    pub nat_blocked: u64,
    /// Messages that reached a node that was down (or had restarted).
    pub to_dead: u64,
    /// Messages addressed to no slot at all.
    pub unroutable: u64,
    /// Messages a behaviour wrapper swallowed or dropped.
    pub intercepted: u64,
    /// Messages meant for an earlier incarnation that the `deliver_stale`
    /// fault delivered to the current one.
    pub stale_delivered: u64,
    /// Messages a rule held back (see [`crate::Sim::held`]).
    pub held: u64,
    /// Messages a rule dropped.
    pub dropped: u64,
    /// Messages dropped at the sender because their `sender` id was not the
    /// sending slot's node id: the transport is authenticated (ids bound to
    /// keys, as the live node's Noise handshake will), so a node can lie about
    /// anything but who it is.
    pub forged: u64,
}

impl EngineStats {
    /// Events that did work in a node: deliveries, timeouts, send failures and
    /// actions. Stale and re-armed timer entries are not counted.
    pub fn events(&self) -> u64 {
        self.delivered + self.timeouts + self.send_failures + self.actions + self.to_dead
    }
}

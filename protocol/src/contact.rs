//! Peers as the protocol sees them: an id and an address of the driver's choosing.

use core::fmt::Debug;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::id::Id;

/// A peer address, chosen by the driver: a node index in the simulator, a
/// `SocketAddr` over TCP.
///
/// Addresses travel inside messages (a reply names the contacts it knows), so
/// they must be serialisable; `Ord` keeps every collection of them deterministic.
pub trait Address: Clone + Eq + Ord + Debug + Serialize + DeserializeOwned + 'static {}

impl<T: Clone + Eq + Ord + Debug + Serialize + DeserializeOwned + 'static> Address for T {}

/// A peer: who it is and where to reach it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Contact<A> {
    /// The peer's node id.
    pub id: Id,
    /// Where to send messages for it.
    pub addr: A,
}

impl<A> Contact<A> {
    /// A contact for `id` at `addr`.
    pub fn new(id: Id, addr: A) -> Self {
        Contact { id, addr }
    }
}

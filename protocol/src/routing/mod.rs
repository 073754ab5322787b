//! The routing table: who a node knows, organised by distance (Kademlia's k-buckets).
//!
//! Only data structures live here: the table never sends anything. When it wants
//! a liveness check before evicting a contact it says so in its return value, and
//! the node turns that into a ping.

mod bucket;
mod table;

pub(crate) use table::BucketView;
pub use table::{Observed, RoutingTable, TableConfig};

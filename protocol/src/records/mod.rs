//! What a node remembers for the network: provider records it tracks for others,
//! and the keys it announces itself.

mod provided;
mod providers;

pub use provided::Provided;
pub use providers::ProviderStore;

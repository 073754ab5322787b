//! What a node remembers for the network: provider records it tracks for others
//! (bounded, with per-peer and per-group shares, written only with a token),
//! and the keys it announces itself.

mod provided;
mod providers;
mod token;

pub use provided::Provided;
pub use providers::{Admission, ProviderStore, Refusal, StoreLimits};
pub use token::{Token, TokenSecrets, TOKEN_BYTES};

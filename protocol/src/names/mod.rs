//! Names: sites that can change. A name is an Ed25519 public key; its record,
//! signed by that key, says which root the site is at now, with a sequence
//! number that only grows and a time after which nobody should believe it.
//!
//! Records are self-authenticating, so any node may store and pass them on; a
//! tracker keeps, per name, the highest valid sequence it has seen
//! ([`NameStore`]) and refuses a rollback, a forgery, an expired record and
//! one that would outlive the longest validity allowed.
//!
//! Why absolute (Unix) time in the record: a record travels between nodes
//! whose protocol clocks start at different moments, so only a shared calendar
//! can say when it expires. The driver passes the calendar time in with every
//! call that needs it; this crate never reads a clock.

mod record;
mod store;

pub use record::{NameError, NameKey, NameRecord, Signature, MAX_VALIDITY_S, NAME_DOMAIN};
pub use store::{NameAdmission, NameLimits, NameStore, Writer};

//! Network namespaces for tests: a lab of hosts on a "public" network and on
//! "home" networks, each home behind its own router that does NAT with
//! nftables.
//!
//! Why namespaces: NAT traversal, relays and link shaping can only be shown
//! against a real kernel NAT, and a test must not touch the machine's own
//! network. Every address used lives inside namespaces the lab creates, and
//! [`Lab`]'s drop deletes them (and with them every interface and rule).
//!
//! - [`lab`]: the [`Lab`] and its topology: the public segment, hosts, homes.
//! - [`nat`]: the kinds of NAT a router does, as nftables rulesets.
//! - [`igd`]: a router's port-mapping service (`miniupnpd`: UPnP-IGD, NAT-PMP, PCP).
//! - [`host`]: a [`Host`], where a test runs a command or a thread.
//! - [`command`]: running `ip`, `nft` and `sysctl` with errors that say what failed.
//! - [`error`]: what can go wrong ([`LabError`]).
//!
//! A lab needs root and `ip` (iproute2) and `nft` (nftables); where it cannot
//! be made, [`Lab::new`] says why with [`LabError::Unavailable`], and a test
//! decides whether that skips it or, under CI, fails it ([`require`]). A
//! home whose router maps ports also needs `miniupnpd`
//! ([`require_port_mapping`]).

pub mod command;
pub mod error;
pub mod host;
pub mod igd;
pub mod lab;
pub mod nat;

pub use error::LabError;
pub use host::Host;
pub use igd::PortMapping;
pub use lab::{Home, Lab};
pub use nat::Nat;

/// Makes a lab for test `test`, or, where none can be made, returns `None`
/// after saying why; under CI (`CI` set) it panics instead, because CI must be
/// able to run every test (`.ci/run` installs the tools).
pub fn require(test: &str) -> Option<Lab> {
    match Lab::new(test) {
        Ok(lab) => Some(lab),
        Err(e) => unavailable(test, e),
    }
}

/// Like [`require`], for a test whose homes map ports
/// ([`Lab::home_with_port_mapping`]): `miniupnpd` must be installed too.
pub fn require_port_mapping(test: &str) -> Option<Lab> {
    if !command::have("miniupnpd") {
        let why = "`miniupnpd` is not installed (apt-get install miniupnpd-nftables)";
        return unavailable(test, LabError::Unavailable(why.into()));
    }
    require(test)
}

/// Skips `test` (or fails it under CI) for want of a tool; panics on any
/// other error.
fn unavailable(test: &str, e: LabError) -> Option<Lab> {
    match e {
        LabError::Unavailable(_) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "{test}: CI must be able to make network namespaces: {e}"
            );
            eprintln!("SKIPPED {test}: {e}");
            None
        }
        e => panic!("{test}: the lab could not be made: {e}"),
    }
}

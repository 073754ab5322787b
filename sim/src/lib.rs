//! A deterministic discrete-event simulator that drives the unmodified
//! `distroweb_protocol::Node` through its public API only.
//! Each run is single-threaded and fully determined by its seed;
//! the simulator never reads the wall clock and never touches a socket.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

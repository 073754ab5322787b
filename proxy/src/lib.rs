//! The local HTTP proxy (hyper 1.x) on `127.0.0.1:1234` that serves distroweb sites to a browser.
//! It talks to the node only through `distroweb_net`'s command handle;
//! it never touches the protocol state machine or the peer-to-peer sockets directly.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

//! The local HTTP proxy (hyper 1.x) on `127.0.0.1:1234` that serves distroweb sites to a browser.
//!
//! `/distroweb/<id>[/<path>]` is content from the network; `/` is the node's status
//! page, `/metrics` its Prometheus text, `/api/v1/` the local API for the CLI;
//! every other path (`/<host>/<path>`) and every absolute-form request is relayed
//! to the ordinary web, and `CONNECT` opens a tunnel for `https://`.
//! It talks to the node only through `distroweb_net`'s command handle;
//! it never touches the protocol state machine or the peer-to-peer sockets directly.
//!
//! Start reading at [`Proxy::start`], then [`route::route`].
#![forbid(unsafe_code)]
#![warn(missing_docs)]

/// The local API under `/api/v1/`.
pub mod api;
/// The response body type.
pub mod body;
/// Every tunable of the proxy.
pub mod config;
/// `/distroweb/<id>`: content from the network.
pub mod content;
/// Error pages.
pub mod error_page;
/// Hop-by-hop headers and `Via`.
pub mod headers;
/// The HTML page shell.
pub mod html;
/// Counters and the Prometheus exposition.
pub mod metrics;
/// The `Range` header.
pub mod range;
/// Request target parsing.
pub mod route;
/// Accepting and dispatching.
pub mod server;
/// The status page.
pub mod status_page;
/// CONNECT tunnels for `https://` through the forward proxy.
pub mod tunnel;
/// Uploads to publish: tar archives and single files.
pub mod upload;
/// Relaying to origin servers.
pub mod upstream;

pub use config::{ProxyConfig, DEFAULT_LISTEN};
pub use server::{Proxy, ProxyError};

//! The local HTTP proxy (hyper 1.x) on `127.0.0.1:1234` that serves distroweb sites to a browser.
//!
//! Every site has its own origin, `http://<base32 id>.localhost:<port>/`, where
//! every path is a path of that site. The node's own origin (`127.0.0.1`,
//! `localhost`, `[::1]`) holds its status page `/`, `/metrics`, the local API
//! `/api/v1/` for the CLI, the relay `/<host>/<path>` to the ordinary web, and
//! redirects the seed's `/distroweb/<id>/<path>` to the site's origin; any other
//! Host is refused (421). Absolute-form requests are relayed and `CONNECT` opens
//! a tunnel for `https://`, both only to public addresses unless told otherwise.
//! It talks to the node only through `distroweb_net`'s command handle;
//! it never touches the protocol state machine or the peer-to-peer sockets directly.
//!
//! Start reading at [`Proxy::start`], then [`route::route`].
#![forbid(unsafe_code)]
#![warn(missing_docs)]

/// The local API under `/api/v1/`.
pub mod api;
/// `POST /api/v1/name/<name>`: signing and publishing a name record.
pub mod api_names;
/// The response body type.
pub mod body;
/// Every tunable of the proxy.
pub mod config;
/// Content from the network, on its site's origin.
pub mod content;
/// Where the relay and CONNECT may connect.
pub mod destination;
/// Error pages.
pub mod error_page;
/// What each listener serves to whom, and the warnings that say so.
pub mod exposure;
/// Hop-by-hop headers and `Via`.
pub mod headers;
/// The HTML page shell.
pub mod html;
/// Counters and the Prometheus exposition.
pub mod metrics;
/// Which root a name points at now: the node's record at once, refreshed behind.
pub mod names;
/// Site origins, the Host allowlist and fetch metadata.
pub mod origin;
/// The per-client-IP connection cap.
pub mod per_ip;
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

//! The research experiments (hops, churn, flash crowd, scale), run on `distroweb_sim`,
//! producing CSV, SVG and JSON results.
//! Every number comes from the protocol's own events; experiments never reach inside a node.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

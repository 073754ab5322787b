//! The live node's transport: tokio TCP connections around one protocol `Node`.
//! A single task owns the `Node` (an actor) and everyone else talks to it through a command handle;
//! the node is never shared behind a lock, and this crate holds no protocol logic.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

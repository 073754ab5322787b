//! Log output for the long-running subcommands: `RUST_LOG` decides, `info` by default.

use tracing_subscriber::EnvFilter;

/// Sends tracing logs to stderr, filtered by `RUST_LOG` (default `info`).
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

//! Log output for the long-running subcommands: `RUST_LOG` decides, `info` by
//! default (`warn` for experiments, whose run log is for when it is asked for).

use tracing_subscriber::EnvFilter;

/// Sends tracing logs to stderr, filtered by `RUST_LOG` (default `info`).
pub fn init() {
    init_with("info");
}

/// Sends tracing logs to stderr, filtered by `RUST_LOG`, else by `default`.
pub fn init_with(default: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

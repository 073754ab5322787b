//! A progress bar on stderr, hidden when stderr is not a terminal (CI, pipes).

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Steps of progress reported per simulation run.
pub const STEPS_PER_RUN: u64 = 1_000;

/// Progress over a number of simulation runs; cloneable across worker threads.
#[derive(Clone, Debug)]
pub struct Progress {
    bar: ProgressBar,
    /// False for a sweep's bar lent to one of its points: the sweep finishes it.
    owned: bool,
}

std::thread_local! {
    /// The bar of the sweep this thread runs a point of, if any.
    static SWEEP: core::cell::RefCell<Option<ProgressBar>> = const { core::cell::RefCell::new(None) };
}

/// Runs `f` as one point of the sweep whose bar is `sweep`: the experiment's
/// runs advance that one bar (instead of a bar per point, drawn over each
/// other), and it prints no table of its own ([`in_sweep`]).
pub fn within_sweep<R>(sweep: &Progress, f: impl FnOnce() -> R) -> R {
    let before = SWEEP.with(|s| s.replace(Some(sweep.bar.clone())));
    let result = f();
    SWEEP.with(|s| *s.borrow_mut() = before);
    result
}

/// True while this thread runs a point of a sweep.
pub fn in_sweep() -> bool {
    SWEEP.with(|s| s.borrow().is_some())
}

impl Progress {
    /// A bar for `runs` runs of the experiment `name`; within a sweep, the
    /// sweep's bar, grown by `runs`.
    pub fn new(name: &str, runs: usize) -> Self {
        if let Some(bar) = SWEEP.with(|s| s.borrow().clone()) {
            bar.inc_length(runs as u64 * STEPS_PER_RUN);
            return Progress { bar, owned: false };
        }
        let bar = ProgressBar::with_draw_target(
            Some(runs as u64 * STEPS_PER_RUN),
            if std::io::stderr().is_terminal() {
                ProgressDrawTarget::stderr()
            } else {
                ProgressDrawTarget::hidden()
            },
        );
        if let Ok(style) = ProgressStyle::with_template(
            "{prefix} [{elapsed_precise}] {wide_bar} {percent:>3}% {msg}",
        ) {
            bar.set_style(style);
        }
        bar.set_prefix(name.to_string());
        Progress { bar, owned: true }
    }

    /// Tracks one run: returns a callback taking the run's completed fraction.
    pub fn run(&self) -> impl FnMut(f64) + use<> {
        let bar = self.bar.clone();
        let mut done = 0;
        move |fraction| {
            let now = (fraction.clamp(0.0, 1.0) * STEPS_PER_RUN as f64) as u64;
            if now > done {
                bar.inc(now - done);
                done = now;
            }
        }
    }

    /// Logs a line of the run log at `info` (a run's end, its digest and
    /// counters), above the bar. The run log is off unless `RUST_LOG` asks
    /// for it, so a run shows its bar, its table and where its files went.
    pub fn note(&self, line: &str) {
        if tracing::enabled!(tracing::Level::INFO) {
            self.bar.suspend(|| tracing::info!("{line}"));
        }
    }

    /// Logs a line at `debug`: a run's whole configuration, which the JSON
    /// record keeps too.
    pub fn detail(&self, line: &str) {
        if tracing::enabled!(tracing::Level::DEBUG) {
            self.bar.suspend(|| tracing::debug!("{line}"));
        }
    }

    /// Says something the user should see whatever the log level, above the bar.
    pub fn warn(&self, line: &str) {
        if self.bar.is_hidden() {
            eprintln!("{line}");
        } else {
            self.bar.println(line);
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if self.owned {
            self.bar.finish_and_clear();
        }
    }
}

//! Runs independent simulations in parallel, one per thread, and returns their
//! results in input order, so output never depends on scheduling.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Applies `run` to every point on up to `threads` threads (at least one); the
/// result vector is in the order of `points`. Larger points (by `size`) start first.
pub fn parallel<P, R, F>(points: &[P], threads: usize, size: impl Fn(&P) -> u64, run: F) -> Vec<R>
where
    P: Sync,
    R: Send,
    F: Fn(&P) -> R + Sync,
{
    let mut order: Vec<usize> = (0..points.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(size(&points[i])));
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<R>>> = Mutex::new((0..points.len()).map(|_| None).collect());
    let threads = threads.clamp(1, points.len().max(1));
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                let Some(&i) = order.get(k) else {
                    break;
                };
                let r = run(&points[i]);
                if let Ok(mut results) = results.lock() {
                    results[i] = Some(r);
                }
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .into_iter()
        .flatten()
        .collect()
}

/// Threads to use: the machine's parallelism, or the share [`with_threads`]
/// gave the calling thread.
pub fn threads() -> usize {
    BUDGET
        .with(|b| b.get())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

std::thread_local! {
    /// The threads an experiment run on this thread may use, if limited.
    static BUDGET: core::cell::Cell<Option<usize>> = const { core::cell::Cell::new(None) };
}

/// Runs `f` with [`threads`] returning `n` on this thread: a sweep running
/// several experiments at once gives each its share of the cores, not all of
/// them. Results do not depend on it ([`parallel`] keeps input order).
pub fn with_threads<R>(n: usize, f: impl FnOnce() -> R) -> R {
    let before = BUDGET.with(|b| b.replace(Some(n.max(1))));
    let result = f();
    BUDGET.with(|b| b.set(before));
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_back_in_input_order() {
        let points: Vec<u64> = (0..20).collect();
        let out = parallel(&points, 4, |p| *p % 7, |p| p * 10);
        assert_eq!(out, points.iter().map(|p| p * 10).collect::<Vec<_>>());
    }
}

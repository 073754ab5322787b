//! The partition experiment sees a cut: lookups of keys across it fail while
//! it lasts and succeed again once it heals, and the run is byte-identical for
//! a seed.

use std::fs;
use std::path::PathBuf;

use distroweb_experiments::partition::{self, PartitionArgs};
use distroweb_experiments::Common;

fn args(out: PathBuf) -> PartitionArgs {
    PartitionArgs {
        common: Common {
            seed: 3,
            out,
            quick: true,
            overrides: Default::default(),
        },
        nodes: Some(120),
        island_percent: vec![40],
        before_s: Some(40),
        cut_s: Some(60),
        after_s: Some(60),
        lookups_per_s: Some(4),
        keys: Some(30),
        interval_s: Some(10),
    }
}

#[test]
fn a_cut_fails_lookups_across_it_and_healing_restores_them() {
    let dir = std::env::temp_dir().join(format!("distroweb-partition-{}", std::process::id()));
    let (a, b) = (dir.join("a"), dir.join("b"));
    let runs = partition::run(&args(a.clone()), "test").expect("runs");
    let rows = &runs[0].rows;
    let [before, cut, healed] = [&rows[0], &rows[1], &rows[2]];
    assert_eq!(
        (before.phase, cut.phase, healed.phase),
        ("before", "cut", "healed")
    );
    assert!(before.success_rate >= 0.95, "{before:?}");
    // Trackers on both sides keep every record, so lookups still find real
    // providers; but a lookup of a key whose only provider is across the cut
    // cannot find a usable one, so usable falls below success, and every
    // lookup with a provider on its own side finds it.
    assert!(cut.success_rate >= 0.9, "{cut:?}");
    assert!(cut.reachable < cut.lookups, "{cut:?}");
    assert!(
        cut.usable_rate < 0.8 && cut.usable_rate < cut.success_rate,
        "{cut:?}"
    );
    assert!(cut.reachable_success_rate >= 0.95, "{cut:?}");
    // Requests to peers across the cut wait out their timeouts.
    assert!(
        cut.latency_ms_p99 > 2.0 * before.latency_ms_p99,
        "{before:?} {cut:?}"
    );
    assert!(
        healed.success_rate >= 0.95 && healed.usable_rate >= 0.95,
        "{healed:?}"
    );
    partition::run(&args(b.clone()), "test").expect("runs again");
    for f in ["partition.csv", "partition.svg"] {
        assert_eq!(
            fs::read(a.join(f)).expect("first"),
            fs::read(b.join(f)).expect("second"),
            "{f}"
        );
    }
    let _ = fs::remove_dir_all(&dir);
}

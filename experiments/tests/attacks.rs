//! The adversary experiment's record flood and targeted placement, at a few
//! hundred nodes: claims that must hold, not pinned figures.

use std::fs;
use std::path::PathBuf;

use distroweb_experiments::adversary::Placement;
use distroweb_experiments::adversary::{self, AdversaryRow};
use distroweb_experiments::{AdversaryArgs, Common};

fn args(name: &str) -> (AdversaryArgs, PathBuf) {
    let out = std::env::temp_dir().join(format!("distroweb-attacks-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&out);
    let common = Common {
        seed: 3,
        out: out.clone(),
        quick: true,
        overrides: Default::default(),
    };
    let a = AdversaryArgs {
        nodes: Some(300),
        percents: vec![20],
        lookups: Some(150),
        ..AdversaryArgs::with(common)
    };
    (a, out)
}

fn row<'a>(rows: &'a [AdversaryRow], lookup: &str, puzzle: u32) -> &'a AdversaryRow {
    rows.iter()
        .find(|r| r.lookup == lookup && r.puzzle_bits == puzzle)
        .unwrap_or_else(|| panic!("no {lookup} row with puzzle {puzzle}: {rows:?}"))
}

#[test]
fn a_record_flood_leaves_the_honest_records_and_lookups_find_them() {
    let (calm, out_calm) = args("calm");
    let calm_rows = adversary::run(&calm, "test").expect("calm run");
    let (mut flood, out_flood) = args("flood");
    // 60 adversaries × 20 announcements over 30 keys: 40 fakes per key, twice
    // what a tracker's list holds.
    flood.flood = Some(20);
    let flood_rows = adversary::run(&flood, "test").expect("flood run");
    for lookup in ["plain", "disjoint"] {
        let (c, f) = (row(&calm_rows, lookup, 0), row(&flood_rows, lookup, 0));
        assert!(
            f.adversary_records_per_key > 10.0 * c.adversary_records_per_key.max(1.0),
            "the flood reached the trackers: {f:?} against {c:?}"
        );
        assert!(
            f.records_refused > c.records_refused,
            "full lists refused: {f:?}"
        );
        assert!(
            f.honest_records_per_key >= 0.95 * c.honest_records_per_key,
            "honest records stay: {f:?} against {c:?}"
        );
    }
    let disjoint = row(&flood_rows, "disjoint", 0);
    assert!(disjoint.success_rate >= 0.95, "{disjoint:?}");
    let _ = fs::remove_dir_all(out_calm);
    let _ = fs::remove_dir_all(out_flood);
}

#[test]
fn the_id_puzzle_blunts_targeted_placement() {
    let (mut a, out) = args("placement");
    a.placement = Placement::Targeted;
    // 2^12 key generations: 12 shared bits without the puzzle (the very
    // closest of 300 nodes), 4 with an 8-bit puzzle (somewhere among the
    // nearest twenty, as close as random ids are).
    a.grind_bits = Some(12);
    a.puzzle_bits = vec![0, 8];
    let rows = adversary::run(&a, "test").expect("placement run");
    let (free, priced) = (row(&rows, "plain", 0), row(&rows, "plain", 8));
    assert!(
        free.nearest_adversary_frac > 0.9,
        "without the puzzle an adversary is next to every key: {free:?}"
    );
    assert!(
        priced.nearest_adversary_frac < 0.5,
        "with it, few keys have one next to them: {priced:?}"
    );
    assert!(
        free.success_rate + 0.05 < priced.success_rate,
        "and plain lookups fail more: {free:?} against {priced:?}"
    );
    let _ = fs::remove_dir_all(out);
}

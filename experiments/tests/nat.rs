//! The nat experiment changes nothing when no node is behind a NAT, and its
//! run is byte-identical for a seed (its figures and the claims it shows are
//! pinned in `quick.rs`).

use std::fs;
use std::path::PathBuf;

use distroweb_experiments::nat::{self, NatArgs};
use distroweb_experiments::Common;

fn args(out: PathBuf, seed: u64) -> NatArgs {
    NatArgs::with(Common {
        seed,
        out,
        quick: true,
        overrides: Default::default(),
    })
}

#[test]
fn one_seed_gives_the_same_bytes_and_without_nats_the_modes_agree() {
    let dir = std::env::temp_dir().join(format!("distroweb-nat-{}", std::process::id()));
    let (a, b, c) = (dir.join("a"), dir.join("b"), dir.join("c"));
    let rows = nat::run(&args(a.clone(), 2), "test").expect("runs");
    nat::run(&args(b.clone(), 2), "test").expect("runs again");
    for f in ["nat.csv", "nat.svg"] {
        assert_eq!(
            fs::read(a.join(f)).expect("first"),
            fs::read(b.join(f)).expect("second"),
            "{f}"
        );
    }
    nat::run(&args(c.clone(), 3), "test").expect("another seed");
    assert_ne!(
        fs::read(a.join("nat.csv")).expect("first"),
        fs::read(c.join("nat.csv")).expect("other seed"),
    );
    // With no node behind a NAT the mode changes nothing: same figures, same
    // trace.
    let json: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(a.join("nat.json")).expect("json"))
            .expect("valid json");
    let runs = json["runs"].as_array().expect("runs");
    let at_zero: Vec<_> = rows
        .iter()
        .zip(runs)
        .filter(|(r, _)| r.nated_percent == 0)
        .collect();
    assert_eq!(at_zero.len(), 3);
    for (r, run) in &at_zero[1..] {
        let (first, first_run) = at_zero[0];
        assert_eq!(run["digest"], first_run["digest"]);
        assert_eq!(
            (r.lookup_success, r.lookup_ms_p50, r.lookup_ms_p90),
            (
                first.lookup_success,
                first.lookup_ms_p50,
                first.lookup_ms_p90
            )
        );
        assert_eq!((r.nated_nodes, r.nat_blocked, r.punches), (0, 0, 0));
    }
    let _ = fs::remove_dir_all(&dir);
}

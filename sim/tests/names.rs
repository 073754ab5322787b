//! Names in the simulator: a published name resolves everywhere, and an
//! update reaches readers who keep resolving it.

use core::time::Duration;

use distroweb_protocol::{Id, QueryKind, Time};
use distroweb_sim::{Action, NodeIdx, Sim, SimConfig, Workload};

const NODES: u32 = 200;
const PUBLISHER: NodeIdx = NodeIdx(5);

fn grown() -> (Sim, Workload) {
    let config = SimConfig {
        seed: 21,
        nodes: NODES,
        ..SimConfig::default()
    };
    let mut sim = Sim::new(config).expect("valid config");
    let mut w = Workload::new(&sim);
    let end = w.grow(&mut sim, NODES, Time::ZERO, Duration::from_millis(20), 3);
    sim.run_until(end + Duration::from_secs(20));
    (sim, w)
}

#[test]
fn every_node_reads_the_calendar_from_the_runs_epoch() {
    let (sim, _) = grown();
    let epoch = sim.config().calendar_epoch;
    let now_s = sim.now().as_micros() / 1_000_000;
    for n in [0, 17, NODES - 1] {
        let node = sim.node(NodeIdx(n)).expect("joined");
        let unix = node.calendar_at(sim.now()).expect("anchored at start");
        // Anchored to whole seconds when the node started.
        assert!(
            (epoch + now_s - 1..=epoch + now_s).contains(&unix),
            "{unix}"
        );
    }
}

#[test]
fn a_published_name_resolves_and_an_update_is_seen() {
    let (mut sim, mut w) = grown();
    let week = Duration::from_secs(7 * 24 * 3600);
    let (v1, v2) = (Id::hash_of(b"site v1"), Id::hash_of(b"site v2"));
    let at = sim.now();
    let first = w.name_record(&sim, 0, v1, 1, at, week);
    let name = w.name(0);
    assert_eq!(first.name, name);
    w.publish_name(&mut sim, PUBLISHER, at, first);
    sim.run_for(Duration::from_secs(10));
    let published = sim.metrics().kind(QueryKind::PublishName);
    assert_eq!(
        (published.issued, published.succeeded),
        (1, 1),
        "{published:?}"
    );

    // Twenty readers resolve it: those that are not trackers of the name
    // (holding it already) walk to the trackers.
    let readers: Vec<NodeIdx> = (100..120).map(NodeIdx).collect();
    for &r in &readers {
        sim.perform(Action::ResolveName { node: r, name });
    }
    sim.run_for(Duration::from_secs(10));
    let names = &sim.metrics().names;
    let warm_before = names.warm_finished;
    assert!(names.cold_finished >= 15, "{}", names.cold_finished);
    assert_eq!(names.cold_finished + warm_before, 20);
    assert_eq!(names.cold_succeeded + names.warm_succeeded, 20);
    for &r in &readers {
        assert_eq!(names.resolved(&name, r).map(|s| s.root), Some(v1), "{r:?}");
        assert_eq!(sim.node(r).and_then(|n| n.name_record(&name)), Some(first));
    }

    // The update. Ten nodes that never resolved the name resolve it now:
    // they walk to the trackers, which hold version 2.
    let t = sim.now();
    let second = w.name_record(&sim, 0, v2, 2, t, week);
    sim.perform(Action::PublishName {
        node: PUBLISHER,
        record: Box::new(second),
    });
    sim.run_for(Duration::from_secs(5));
    let newcomers: Vec<NodeIdx> = (150..160).map(NodeIdx).collect();
    for &r in &newcomers {
        sim.perform(Action::ResolveName { node: r, name });
    }
    // The first readers hold version 1 and resolve again every 10 s.
    for visit in 1..=6u32 {
        for &r in &readers {
            w.resolve_name(&mut sim, r, t + Duration::from_secs(10) * visit, name);
        }
    }
    sim.run_for(Duration::from_secs(65));
    let names = &sim.metrics().names;
    for &r in &newcomers {
        let seen = names.resolved(&name, r).expect("resolved");
        assert_eq!((seen.seq, seen.root), (2, v2), "{r:?}");
    }
    assert_eq!(names.cold_finished + names.warm_finished, 150);
    assert!(names.warm_finished - warm_before >= 120);
    // A reader that holds version 1 still walks to the trackers (what it
    // holds does not start the grace), so each one sees the update at its
    // first resolution after it, 10 s after the update, within a second.
    for &r in &readers {
        let seen = names.resolved(&name, r).expect("resolved");
        assert_eq!((seen.seq, seen.root), (2, v2), "{r:?}");
        let since = seen.at.saturating_since(t);
        assert!(
            since > Duration::from_secs(10) && since < Duration::from_secs(11),
            "{r:?} {since:?}"
        );
        let held = sim
            .node(r)
            .and_then(|n| n.name_record(&name))
            .map(|h| h.seq);
        assert_eq!(held, Some(2), "{r:?} serves what it resolved last");
    }
    let resolutions = sim.metrics().kind(QueryKind::ResolveName);
    assert_eq!(resolutions.succeeded, 150, "{resolutions:?}");
    assert_eq!(resolutions.wrong, 0);
    // No resolution after the update returned version 1 to anyone.
    assert_eq!(names.stale, 0, "{names:?}");
}

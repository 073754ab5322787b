//! Flash crowds and skewed popularity on a grown network.

use core::time::Duration;

use distroweb_protocol::{QueryKind, Time};
use distroweb_sim::{Action, Askers, NodeIdx, Popularity, Sim, SimConfig, Window, Workload};

fn grown(nodes: u32) -> (Sim, Workload) {
    let config = SimConfig {
        seed: 11,
        nodes,
        ..SimConfig::default()
    };
    let mut sim = Sim::new(config).expect("valid config");
    let mut w = Workload::new(&sim);
    let end = w.grow(&mut sim, nodes, Time::ZERO, Duration::from_millis(20), 3);
    sim.run_until(end + Duration::from_secs(20));
    (sim, w)
}

#[test]
fn a_flash_crowd_finds_the_publisher_and_loads_its_trackers() {
    let (mut sim, mut w) = grown(300);
    let key = w.key(0);
    sim.schedule(
        sim.now(),
        Action::Announce {
            node: NodeIdx(7),
            key,
        },
    );
    sim.run_for(Duration::from_secs(20));
    let before: Vec<u64> = sim.metrics().upload_bytes().collect();
    let window = Window::new(sim.now(), Duration::from_secs(2));
    let crowd = w.flash_crowd(&mut sim, key, 200, 300, window);
    let mut distinct = crowd.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 200);
    sim.run_for(Duration::from_secs(70));
    let lookups = sim.metrics().kind(QueryKind::FindProviders);
    assert_eq!(lookups.issued, 200);
    assert_eq!(lookups.succeeded, 200, "{lookups:?}");
    assert_eq!(sim.announcers(&key), &[NodeIdx(7)]);
    // The crowd's questions land on the key's trackers: the busiest uploader
    // served far more than the typical node during the crowd.
    let mut during: Vec<u64> = sim
        .metrics()
        .upload_bytes()
        .zip(before)
        .map(|(after, before)| after - before)
        .collect();
    during.sort_unstable();
    let (median, max) = (during[during.len() / 2], during[during.len() - 1]);
    assert!(max > 5 * median.max(1), "max {max} median {median}");
}

#[test]
fn zipf_lookups_succeed_like_uniform_ones() {
    for popularity in [Popularity::Uniform, Popularity::Zipf { exponent: 1.2 }] {
        let (mut sim, mut w) = grown(200);
        let window = Window::new(sim.now(), Duration::from_secs(5));
        let keys = w.publish(&mut sim, 50, 200, window);
        sim.run_for(Duration::from_secs(20));
        let window = Window::new(sim.now(), Duration::from_secs(10));
        w.lookups(
            &mut sim,
            &keys,
            Askers::Random(300),
            200,
            popularity,
            window,
        );
        sim.run_for(Duration::from_secs(80));
        let lookups = sim.metrics().kind(QueryKind::FindProviders);
        assert_eq!(lookups.finished, 300, "{popularity:?}");
        assert!(
            lookups.success_rate() >= 0.98,
            "{popularity:?}: {lookups:?}"
        );
    }
}

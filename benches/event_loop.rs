//! The simulator's event loop: a thousand provider lookups on a grown network,
//! reported as events per second.

use core::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use distroweb_protocol::Time;
use distroweb_sim::{Askers, Popularity, Sim, SimConfig, Window, Workload};

const NODES: u32 = 2_000;

/// A grown network with 200 published keys, and the keys.
fn grown() -> (Sim, Vec<distroweb_protocol::Id>) {
    let mut config = SimConfig {
        seed: 1,
        nodes: NODES,
        ..SimConfig::default()
    };
    config.protocol.dht.join_refreshes = 0;
    let mut sim = Sim::new(config).expect("valid config");
    let mut w = Workload::new(&sim);
    let end = w.grow(&mut sim, NODES, Time::ZERO, Duration::from_millis(10), 3);
    sim.run_until(end + Duration::from_secs(30));
    let window = Window::new(sim.now(), Duration::from_secs(10));
    let keys = w.publish(&mut sim, 200, NODES, window);
    sim.run_for(Duration::from_secs(40));
    (sim, keys)
}

fn lookups(sim: &mut Sim, keys: &[distroweb_protocol::Id]) {
    let mut w = Workload::new(sim);
    let window = Window::new(sim.now(), Duration::from_secs(10));
    w.lookups(
        sim,
        keys,
        Askers::Random(1_000),
        NODES,
        Popularity::Zipf { exponent: 1.0 },
        window,
    );
    sim.run_for(Duration::from_secs(80));
}

fn event_loop(c: &mut Criterion) {
    // Events per batch, measured once so criterion can report a rate.
    let (mut probe, keys) = grown();
    let before = probe.stats().events();
    lookups(&mut probe, &keys);
    let events = probe.stats().events() - before;

    let mut g = c.benchmark_group("event_loop");
    g.sample_size(10);
    g.throughput(Throughput::Elements(events));
    g.bench_function(format!("1000_lookups/{NODES}_nodes"), |b| {
        b.iter_batched_ref(
            grown,
            |(sim, keys)| lookups(sim, keys),
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, event_loop);
criterion_main!(benches);

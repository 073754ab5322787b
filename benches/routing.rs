//! Routing-table operations at the size a node reaches in a 100,000-node network.

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion};
use distroweb_protocol::routing::{RoutingTable, TableConfig};
use distroweb_protocol::{Contact, Id, Metric, Time};

fn id(i: u32) -> Id {
    Id::hash_of(&i.to_le_bytes())
}

/// A table that has seen `n` random peers (it keeps at most k per bucket).
fn table(metric: Metric, n: u32) -> RoutingTable<u32> {
    let config = TableConfig {
        k: 20,
        replacement_cache: 4,
        max_failures: 3,
        // Every u32 address is a group of its own: the limits never bind here.
        max_per_group_per_bucket: 2,
        max_per_group: 3,
    };
    let mut t = RoutingTable::new(id(u32::MAX), metric, config);
    for i in 0..n {
        let _ = t.observe(Contact::new(id(i), i), Time::from_secs(u64::from(i)));
    }
    t
}

fn routing(c: &mut Criterion) {
    let mut g = c.benchmark_group("routing");
    for &metric in Metric::ALL {
        let t = table(metric, 100_000);
        let mut target = 0u32;
        g.bench_function(format!("closest_k20/{metric}/{}_contacts", t.len()), |b| {
            b.iter(|| {
                target = target.wrapping_add(1);
                t.closest(black_box(&id(target.wrapping_add(1 << 31))), 20)
            })
        });
        let mut peer = 0u32;
        g.bench_function(format!("observe_known/{metric}"), |b| {
            let mut t = t.clone();
            let known: Vec<Contact<u32>> = t.contacts().cloned().collect();
            b.iter(|| {
                peer = (peer + 1) % known.len() as u32;
                t.observe(known[peer as usize].clone(), Time::from_secs(1 << 20))
            })
        });
        let mut fresh = 200_000u32;
        g.bench_function(format!("observe_new/{metric}"), |b| {
            b.iter_batched_ref(
                || {
                    fresh += 1;
                    (t.clone(), id(fresh))
                },
                |(t, new)| t.observe(Contact::new(*new, 1), Time::from_secs(1 << 20)),
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, routing);
criterion_main!(benches);

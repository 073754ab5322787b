//! Quick speed probe (temporary).
use distroweb_protocol::QueryKind;
use distroweb_sim::{LookupScenario, SimConfig};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Instant;
struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let n = LIVE.fetch_add(l.size(), Relaxed) + l.size();
        PEAK.fetch_max(n, Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        if n > l.size() {
            let v = LIVE.fetch_add(n - l.size(), Relaxed) + n - l.size();
            PEAK.fetch_max(v, Relaxed);
        } else {
            LIVE.fetch_sub(l.size() - n, Relaxed);
        }
        unsafe { System.realloc(p, l, n) }
    }
}
#[global_allocator]
static A: Counting = Counting;
fn main() {
    println!(
        "node={} msg={}",
        std::mem::size_of::<distroweb_protocol::Node<distroweb_sim::NodeIdx>>(),
        std::mem::size_of::<distroweb_protocol::Message<distroweb_sim::NodeIdx>>()
    );
    let n: u32 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    let mut config = SimConfig {
        nodes: n,
        ..SimConfig::default()
    };
    if let Some(j) = std::env::args().nth(2).and_then(|s| s.parse().ok()) {
        config.protocol.join_refreshes = j;
    }
    let t = Instant::now();
    let sim0 = distroweb_sim::Sim::new(config.clone()).unwrap();
    println!(
        "after new: per_node_live={}",
        LIVE.load(Relaxed) / n as usize
    );
    let mut sim0 = sim0;
    let _end = LookupScenario::per_node(n).schedule(&mut sim0);
    println!(
        "after schedule: per_node_live={}",
        LIVE.load(Relaxed) / n as usize
    );
    sim0.run_until(distroweb_protocol::Time::from_secs(u64::from(n) / 100 + 30));
    println!(
        "after growth: per_node_live={} pending={}",
        LIVE.load(Relaxed) / n as usize,
        sim0.pending()
    );
    drop(sim0);
    let sim = LookupScenario::per_node(n).run(config, |_| {}).unwrap();
    let wall = t.elapsed().as_secs_f64();
    let st = sim.stats();
    let k = sim.metrics().kind(QueryKind::FindProviders);
    let b = sim.metrics().kind(QueryKind::Bootstrap);
    let a = sim.metrics().kind(QueryKind::Announce);
    println!(
        "n={n} wall={wall:.2}s events={} ev/s={:.0} {:?}",
        st.events(),
        st.events() as f64 / wall,
        st
    );
    println!(
        "lookups issued={} finished={} ok={} wrong={} fail={:?} hops_mean={:.2} p50lat={}ms",
        k.issued,
        k.finished,
        k.succeeded,
        k.wrong,
        k.failures,
        k.hops.mean(),
        k.latency_us.value_at_quantile(0.5) / 1000
    );
    println!(
        "boot issued={} ok={} fail={:?}; announce issued={} ok={} fail={:?}",
        b.issued, b.succeeded, b.failures, a.issued, a.succeeded, a.failures
    );
    println!("digest={}", sim.digest());
    let mut contacts = 0;
    let mut buckets = 0;
    let mut recs = 0;
    let mut repl = 0;
    for i in 0..n {
        if let Some(node) = sim.node(distroweb_sim::NodeIdx(i)) {
            contacts += node.routing_table().len();
            buckets += node.routing_table().buckets_in_use();
            recs += node.provider_store().record_count();
            repl += node
                .routing_table()
                .bucket_sizes()
                .map(|b| b.2)
                .sum::<usize>();
        }
    }
    println!(
        "avg contacts={} buckets={} records={} replacements={} inflight={} pending={}",
        contacts as f64 / n as f64,
        buckets as f64 / n as f64,
        recs as f64 / n as f64,
        repl as f64 / n as f64,
        sim.in_flight(),
        sim.pending()
    );
    println!(
        "live={} peak={} per_node_live={} per_node_peak={}",
        LIVE.load(Relaxed),
        PEAK.load(Relaxed),
        LIVE.load(Relaxed) / n as usize,
        PEAK.load(Relaxed) / n as usize
    );
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    for l in status
        .lines()
        .filter(|l| l.starts_with("VmHWM") || l.starts_with("VmRSS"))
    {
        println!("{l}");
    }
}
#[allow(dead_code)]
fn sizes() {}

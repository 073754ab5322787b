//! The wire codec: encode, decode and `encoded_len` of typical messages.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use distroweb_protocol::{Body, Contact, Id, Message, RpcId};

fn id(i: u32) -> Id {
    Id::hash_of(&i.to_le_bytes())
}

fn messages() -> Vec<(&'static str, Message<u32>)> {
    let closer: Vec<Contact<u32>> = (0..20).map(|i| Contact::new(id(i), i * 7_919)).collect();
    vec![
        (
            "ping",
            Message {
                sender: id(1),
                rpc: RpcId(42),
                body: Body::Ping,
            },
        ),
        (
            "nodes_k20",
            Message {
                sender: id(2),
                rpc: RpcId(1 << 40),
                body: Body::Nodes {
                    closer: closer.clone(),
                    token: distroweb_protocol::wire::Token([7; 8]),
                },
            },
        ),
        (
            "providers_k20",
            Message {
                sender: id(3),
                rpc: RpcId(7),
                body: Body::Providers {
                    key: id(99),
                    providers: closer[..3].to_vec(),
                    closer,
                    token: distroweb_protocol::wire::Token([7; 8]),
                },
            },
        ),
    ]
}

fn codec(c: &mut Criterion) {
    let mut g = c.benchmark_group("codec");
    for (name, msg) in messages() {
        let bytes = msg.encode().expect("encodable");
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_function(format!("encode/{name}"), |b| {
            b.iter(|| black_box(&msg).encode())
        });
        g.bench_function(format!("encoded_len/{name}"), |b| {
            b.iter(|| black_box(&msg).encoded_len())
        });
        g.bench_function(format!("decode/{name}"), |b| {
            b.iter(|| Message::<u32>::decode(black_box(&bytes)))
        });
    }
    g.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);

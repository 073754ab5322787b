//! Peers you can trust: ids are proven by keys, traffic is sealed, traffic
//! for a peer goes only to the connection that proved its id, nobody gets
//! this node to flood a third party, and a flood of idle connections from one
//! IP cannot lock a new node out. Real nodes on 127.0.0.0/8; attackers are
//! raw sockets or hand-driven handshakes.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::{closed_within, config, connect_from, id_of, start, RawPeer};
use distroweb_net::frame::{Cipher, Session};
use distroweb_net::handshake::{preamble, Opening, NOISE_PARAMS, PREAMBLE_BYTES};
use distroweb_net::{LiveNode, NetConfig, NodeHandle, NodeKey, PROTOCOL_VERSION};
use distroweb_protocol::records::Token;
use distroweb_protocol::{Body, Contact, Id, Message, QueryOutput, RpcId};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const T: Duration = Duration::from_secs(5);

/// Publishes `data` at `node` and returns its id.
async fn publish(node: &NodeHandle, data: &[u8]) -> Id {
    node.publish_file(
        Bytes::copy_from_slice(data),
        "application/octet-stream".into(),
    )
    .await
    .expect("publish")
    .id
}

/// A hand-driven dialler's handshake in which the payload claims the
/// Ed25519 key `public` with `signature` (the key's own signature over our
/// Noise static key only if `sign_with` is that key). On success, the session.
async fn claim(
    stream: &mut TcpStream,
    public: [u8; 32],
    sign_with: &NodeKey,
    listen: SocketAddr,
) -> Option<Session> {
    let params: snow::params::NoiseParams = NOISE_PARAMS.parse().unwrap();
    let builder = snow::Builder::new(params);
    let keys = builder.generate_keypair().unwrap();
    let ours = Opening::Connect(None).encode();
    stream.write_all(&ours).await.ok()?;
    let mut theirs = [0u8; PREAMBLE_BYTES];
    stream.read_exact(&mut theirs).await.ok()?;
    let mut hs = snow::Builder::new(NOISE_PARAMS.parse().unwrap())
        .local_private_key(&keys.private)
        .unwrap()
        .prologue(&[&ours[..], &theirs[..]].concat())
        .unwrap()
        .build_initiator()
        .unwrap();
    let mut buf = vec![0u8; 1024];
    let mut payload = vec![0u8; 1024];
    let n = hs.write_message(&[], &mut buf).unwrap();
    send_len_prefixed(stream, &buf[..n]).await?;
    let msg = recv_len_prefixed(stream).await?;
    hs.read_message(&msg, &mut payload).ok()?;
    let mut ours_payload = public.to_vec();
    ours_payload.extend_from_slice(&sign_with.sign_static(&keys.public));
    ours_payload.extend_from_slice(&postcard::to_allocvec(&listen).unwrap());
    let n = hs.write_message(&ours_payload, &mut buf).unwrap();
    send_len_prefixed(stream, &buf[..n]).await?;
    let (c1, c2) = hs.dangerously_get_raw_split();
    // The listener closes at once when it refuses the proof; a live
    // connection stays open (and silent) for a moment.
    let mut probe = [0u8; 1];
    match tokio::time::timeout(Duration::from_millis(300), stream.read(&mut probe)).await {
        Err(_) => Some(Session::new(Cipher::AesGcm, c1, c2)),
        Ok(_) => None,
    }
}

async fn send_len_prefixed(s: &mut TcpStream, m: &[u8]) -> Option<()> {
    s.write_all(&(m.len() as u16).to_be_bytes()).await.ok()?;
    s.write_all(m).await.ok()
}

async fn recv_len_prefixed(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 2];
    s.read_exact(&mut len).await.ok()?;
    let mut m = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut m).await.ok()?;
    Some(m)
}

/// The requests for its id a raw peer received in `within`: (GetBlock, GetProviders).
async fn requests_seen(p: &mut RawPeer, within: Duration) -> (usize, usize) {
    let (mut blocks, mut providers) = (0, 0);
    let deadline = tokio::time::Instant::now() + within;
    while let Some(left) = deadline.checked_duration_since(tokio::time::Instant::now()) {
        let Some(msg) = p.recv_within(left).await else {
            break;
        };
        match msg.body {
            Body::GetBlock { .. } => blocks += 1,
            Body::GetProviders { .. } => providers += 1,
            _ => {}
        }
    }
    (blocks, providers)
}

/// A peer on the same IP as B, advertising B's port, gets none of the traffic
/// meant for B; one that tries to claim B's id without B's key is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_same_ip_impostor_gets_none_of_its_victims_traffic() {
    let (a, b) = (start(1).await, start(2).await);
    let (ha, hb) = (a.handle(), b.handle());
    let content: Vec<u8> = common::junk(100_000, 3);
    let root = publish(&hb, &content).await;
    ha.bootstrap(vec![hb.listen_addr()])
        .await
        .expect("bootstrap");

    // Claiming B's id: B's public key, signed with another key.
    let mut s = TcpStream::connect(ha.listen_addr()).await.unwrap();
    let b_public = NodeKey::from_seed(&common::seed(&[2])).public();
    let other = NodeKey::from_seed(&common::seed(b"impostor"));
    assert!(claim(&mut s, b_public, &other, hb.listen_addr())
        .await
        .is_none());
    assert!(ha.status().await.unwrap().transport.auth_failures >= 1);

    // A real key of its own, from B's IP, stating B's port. It never
    // introduces itself, so A has nothing to ask it: whatever request reaches
    // it was meant for someone else.
    let mut impostor = RawPeer::connect(ha.listen_addr(), b"impostor", hb.listen_addr()).await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    let fetched = common::fetch_all(&ha, root).await;
    assert_eq!(fetched, content, "the fetch returns B's bytes");
    let (blocks, providers) = requests_seen(&mut impostor, Duration::from_secs(1)).await;
    assert_eq!(
        (blocks, providers),
        (0, 0),
        "the impostor got requests meant for B"
    );
    a.stop().await;
    b.stop().await;
}

/// Whether `needle` occurs in `haystack`.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// A recording relay between two nodes sees no plaintext: not the content,
/// not either id, not a provider request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_relay_sees_no_plaintext() {
    // B tells the world it is at the relay's address, so every message A
    // sends B, lookups and blocks alike, goes through the relay.
    let relay = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let relay_addr = relay.local_addr().unwrap();
    // A states a port nobody listens on, so B cannot dial A directly and
    // replace the relayed connection with a direct one.
    let a = LiveNode::start(NetConfig {
        advertise: Some("127.0.0.1:9".parse().unwrap()),
        ..config(3)
    })
    .await
    .unwrap();
    let b = LiveNode::start(NetConfig {
        advertise: Some(relay_addr),
        ..config(4)
    })
    .await
    .unwrap();
    let (ha, hb) = (a.handle(), b.handle());
    let marker = b"MARKER:distroweb-capture-test:";
    let content: Vec<u8> = marker.iter().copied().cycle().take(50_000).collect();
    let root = publish(&hb, &content).await;

    let recorded = Arc::new(Mutex::new(Vec::new()));
    let target = hb.listen_addr();
    tokio::spawn({
        let recorded = recorded.clone();
        async move {
            while let Ok((inbound, _)) = relay.accept().await {
                let outbound = TcpStream::connect(target).await.unwrap();
                let (ri, wi) = inbound.into_split();
                let (ro, wo) = outbound.into_split();
                tokio::spawn(pump(ri, wo, recorded.clone()));
                tokio::spawn(pump(ro, wi, recorded.clone()));
            }
        }
    });
    // A knows B only by the relay's address.
    ha.bootstrap(vec![relay_addr])
        .await
        .expect("bootstrap through the relay");
    assert_eq!(common::fetch_all(&ha, root).await, content);

    let capture = recorded.lock().unwrap().clone();
    assert!(
        capture.len() > content.len(),
        "the fetch went through the relay"
    );
    let get_providers = Message::<SocketAddr> {
        sender: ha.id(),
        rpc: RpcId(1),
        body: Body::GetProviders { key: root },
    }
    .encode()
    .unwrap();
    // The body's encoding: everything after the sender and the request id.
    let body = &get_providers[get_providers.len() - 33..];
    assert!(contains(&get_providers, body));
    for (what, needle) in [
        ("content", &marker[..]),
        ("A's id", ha.id().as_bytes()),
        ("B's id", hb.id().as_bytes()),
        ("A's id in hex", ha.id().to_string().as_bytes()),
        ("B's id in hex", hb.id().to_string().as_bytes()),
        ("the content id", root.as_bytes()),
        ("a GetProviders body", body),
    ] {
        assert!(
            !contains(&capture, needle),
            "the relay saw {what} in plaintext"
        );
    }
    a.stop().await;
    b.stop().await;
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    recorded: Arc<Mutex<Vec<u8>>>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    while let Ok(n) = from.read(&mut buf).await {
        if n == 0 {
            return;
        }
        // Recorded before it is passed on: the test reads the record as soon
        // as the fetch ends, which may be before this task runs again.
        recorded.lock().unwrap().extend_from_slice(&buf[..n]);
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// Answers every request with nothing: no nodes, no providers, and
/// acknowledges provider records it then forgets.
async fn lie(mut p: RawPeer, id: Id) {
    while let Some(msg) = p.recv_within(Duration::from_secs(60)).await {
        let body = match msg.body {
            Body::Ping => Body::Pong,
            Body::FindNode { .. } | Body::FindNeighbours { .. } => Body::Nodes {
                closer: vec![],
                token: Token([0; 8]),
            },
            Body::GetProviders { key } => Body::Providers {
                key,
                providers: vec![],
                closer: vec![],
                token: Token([0; 8]),
            },
            Body::AddProvider { key, .. } | Body::AddFetching { key, .. } => {
                Body::ProviderAdded { key }
            }
            Body::GetBlock { id } => Body::DontHave { id },
            _ => continue,
        };
        let reply = Message {
            sender: id,
            rpc: msg.rpc,
            body,
        };
        p.send(&reply).await;
    }
}

/// Twenty peers from one IP try to sit next to a content id. Without a key
/// for such an id the handshake fails; with keys their ids are hashes they
/// cannot aim. A fresh node still fetches the content.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sybils_next_to_a_content_id_do_not_hide_it() {
    let (s, b, f) = (start(5).await, start(6).await, start(7).await);
    let (hs, hb, hf) = (s.handle(), b.handle(), f.handle());
    let content: Vec<u8> = common::junk(60_000, 9);
    // The content's id is known before it is published (it is a hash).
    let planned = {
        let probe = LiveNode::start(config(8)).await.unwrap();
        let id = publish(&probe.handle(), &content).await;
        probe.stop().await;
        id
    };
    let attacker_ip: IpAddr = "127.20.0.1".parse().unwrap();
    let mut refused = 0;
    let mut liars = Vec::new();
    for i in 0..20u8 {
        // An id a few bits from the content's: claimed with no key for it.
        let wanted = planned.with_bit_flipped(255 - usize::from(i));
        let mut stream = connect_from(attacker_ip, hs.listen_addr()).await.unwrap();
        let fake_listen = SocketAddr::new(attacker_ip, 5000 + u16::from(i));
        let some_key = NodeKey::from_seed(&common::seed(&[100, i]));
        match claim(&mut stream, *wanted.as_bytes(), &some_key, fake_listen).await {
            None => refused += 1,
            Some(session) => {
                let (sealer, opener) = session.split().unwrap();
                let mut p = RawPeer {
                    stream,
                    sealer,
                    opener,
                    id: wanted,
                    server_id: hs.id(),
                };
                p.introduce().await;
                liars.push(tokio::spawn(lie(p, wanted)));
            }
        }
    }
    assert_eq!(
        refused, 20,
        "claiming an id without its key fails the handshake"
    );
    // With keys of their own: ids are BLAKE3 of keys, wherever they land.
    for i in 0..20u8 {
        let stream = connect_from(attacker_ip, hs.listen_addr()).await.unwrap();
        let fake_listen = SocketAddr::new(attacker_ip, 6000 + u16::from(i));
        let mut p = RawPeer::over(stream, &[200, i], fake_listen, None)
            .await
            .expect("an honest handshake");
        assert_eq!(p.id, id_of(&[200, i]));
        let id = p.id;
        p.introduce().await;
        liars.push(tokio::spawn(lie(p, id)));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    hb.bootstrap(vec![hs.listen_addr()]).await.expect("B joins");
    let root = publish(&hb, &content).await;
    assert_eq!(root, planned);
    hf.bootstrap(vec![hs.listen_addr()]).await.expect("F joins");
    assert_eq!(
        common::fetch_all(&hf, root).await,
        content,
        "the fresh node fetches it"
    );
    assert!(hs.status().await.unwrap().transport.auth_failures >= 20);
    for l in liars {
        l.abort();
    }
    s.stop().await;
    b.stop().await;
    f.stop().await;
}

/// Third-party listeners: `n` TCP listeners on `ip` that count the
/// connections they accept and hold each open, silent.
async fn third_party(ip: IpAddr, n: usize) -> (Vec<SocketAddr>, Arc<AtomicUsize>) {
    let accepted = Arc::new(AtomicUsize::new(0));
    let mut addrs = Vec::new();
    for _ in 0..n {
        let l = TcpListener::bind(SocketAddr::new(ip, 0)).await.unwrap();
        addrs.push(l.local_addr().unwrap());
        let accepted = accepted.clone();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = l.accept().await {
                accepted.fetch_add(1, Ordering::SeqCst);
                held.push(s);
            }
        });
    }
    (addrs, accepted)
}

/// An authenticated peer that answers lookups with forty providers and
/// contacts at a third party's ports, and sends routes naming them, gets this
/// node to open only a handful of connections there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_naming_a_third_party_lead_to_a_handful_of_connections_there() {
    let victim = start(9).await;
    let hv = victim.handle();
    let (targets, accepted) = third_party("127.40.0.1".parse().unwrap(), 40).await;
    let fakes: Vec<Contact<SocketAddr>> = targets
        .iter()
        .enumerate()
        .map(|(i, a)| Contact::new(Id::hash_of(&[40, i as u8]), *a))
        .collect();

    let mut p = RawPeer::connect(hv.listen_addr(), b"lister", "127.0.0.1:9".parse().unwrap()).await;
    let me = p.id;
    // Once the victim answers, the liar is in its table.
    p.introduce().await;
    let fakes_for = fakes.clone();
    let attacker = tokio::spawn(async move {
        while let Some(msg) = p.recv_within(Duration::from_secs(30)).await {
            let body = match msg.body {
                Body::Ping => Body::Pong,
                // Lists over `k` (20) are refused as misbehaviour: forty
                // contacts come as twenty providers and twenty closer nodes.
                Body::FindNode { .. } | Body::FindNeighbours { .. } => Body::Nodes {
                    closer: fakes_for[20..].to_vec(),
                    token: Token([0; 8]),
                },
                Body::GetProviders { key } => Body::Providers {
                    key,
                    providers: fakes_for[..20].to_vec(),
                    closer: fakes_for[20..].to_vec(),
                    token: Token([0; 8]),
                },
                _ => continue,
            };
            p.send(&Message {
                sender: me,
                rpc: msg.rpc,
                body,
            })
            .await;
        }
    });
    // Lookups and a fetch through the liar: each turns up forty third-party contacts.
    let _ = tokio::time::timeout(T, hv.find_node(Id::hash_of(b"x"))).await;
    if let Ok(mut f) = hv.fetch(Id::hash_of(b"some content")).await {
        let _ = tokio::time::timeout(T, f.finished()).await;
    }
    let _ = tokio::time::timeout(T, hv.find_providers(Id::hash_of(b"y"))).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let n = accepted.load(Ordering::SeqCst);
    let status = hv.status().await.unwrap();
    assert!(
        n <= 8,
        "{n} connections to the third party; {:?}",
        status.transport
    );
    assert!(status.transport.dials_refused > 0, "{:?}", status.transport);
    attacker.abort();
    victim.stop().await;
}

/// 234 idle connections from one IP do not stop a new node from joining
/// through the victim and finding a provider, nor the victim from dialling out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_from_one_ip_do_not_lock_out_a_new_node() {
    let victim = LiveNode::start(NetConfig {
        // Idle connections would be held this long without the defences.
        handshake_timeout: Duration::from_secs(30),
        ..config(10)
    })
    .await
    .unwrap();
    let hv = victim.handle();
    let provider = start(11).await;
    provider
        .handle()
        .bootstrap(vec![hv.listen_addr()])
        .await
        .expect("provider joins");
    let key = Id::hash_of(b"findable");
    provider.handle().announce(key).await.expect("announce");

    let flood_ip: IpAddr = "127.66.0.1".parse().unwrap();
    let mut idle = Vec::new();
    for _ in 0..234 {
        if let Ok(s) = connect_from(flood_ip, hv.listen_addr()).await {
            idle.push(s);
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    let newcomer = start(12).await;
    let hn = newcomer.handle();
    tokio::time::timeout(
        Duration::from_secs(10),
        hn.bootstrap(vec![hv.listen_addr()]),
    )
    .await
    .expect("bootstrap in time")
    .expect("the new node joins through the victim");
    let found = hn.find_providers(key).await.expect("find providers");
    assert!(
        matches!(&found.output, QueryOutput::Providers(p) if p.iter().any(|c| c.id == provider.handle().id())),
        "{:?}",
        found.output
    );
    // The victim can still dial out.
    let fresh = start(13).await;
    hv.bootstrap(vec![fresh.handle().listen_addr()])
        .await
        .expect("the victim dials out");
    drop(idle);
    for n in [victim, provider, newcomer, fresh] {
        n.stop().await;
    }
}

/// A peer speaking protocol version 2 gets our preamble, then a closed
/// connection, and the mismatch is counted: whether it sends a version-2
/// preamble or the hello frame real version-2 nodes sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_version_peer_is_refused_and_counted() {
    let a = start(14).await;
    let ha = a.handle();
    let mut s = TcpStream::connect(ha.listen_addr()).await.unwrap();
    s.write_all(&preamble(2)).await.unwrap();
    let mut theirs = [0u8; PREAMBLE_BYTES];
    s.read_exact(&mut theirs).await.unwrap();
    assert_eq!(theirs, preamble(PROTOCOL_VERSION));
    assert!(closed_within(&mut s, T).await, "the connection is closed");
    // A real version-2 node opens with a hello frame: length, magic, version.
    let mut s = TcpStream::connect(ha.listen_addr()).await.unwrap();
    let mut hello = 40u32.to_be_bytes().to_vec();
    hello.extend_from_slice(&preamble(2));
    hello.extend_from_slice(&[0u8; 32]);
    s.write_all(&hello).await.unwrap();
    assert!(closed_within(&mut s, T).await, "the v2 hello is refused");
    let status = ha.status().await.unwrap();
    assert_eq!(status.transport.version_mismatches, 2);
    assert_eq!(status.transport.auth_failures, 0);
    a.stop().await;
}

/// The limits bite failures, not successes: a testnet of 64 honest nodes on
/// 127.0.0.1 joins, announces and finds without a dial refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loopback_testnet_of_64_nodes_on_one_ip_keeps_working() {
    let mut nodes = Vec::new();
    for n in 0..64u8 {
        nodes.push(LiveNode::start(config(100 + n)).await.unwrap());
    }
    let h: Vec<NodeHandle> = nodes.iter().map(LiveNode::handle).collect();
    let seed = h[0].listen_addr();
    for node in &h[1..] {
        node.bootstrap(vec![seed]).await.expect("every node joins");
    }
    let key = Id::hash_of(b"on a crowded IP");
    h[17].announce(key).await.expect("announce");
    for finder in [&h[1], &h[40], &h[63]] {
        let found = finder.find_providers(key).await.expect("find providers");
        assert!(
            matches!(&found.output, QueryOutput::Providers(p) if p.iter().any(|c| c.id == h[17].id())),
            "{:?}",
            found.output
        );
    }
    let mut refused = 0;
    for node in &h {
        refused += node.status().await.unwrap().transport.dials_refused;
    }
    assert_eq!(refused, 0, "no honest dial was refused");
    for node in nodes {
        node.stop().await;
    }
}

/// Writes `n` copies of `body` from `p`, pipelined in batches and draining
/// the replies between batches (so neither side's buffers fill). Returns the
/// replies by kind: (stored, refused with a token, other), and the token the
/// last refusal carried. Stops quietly if the node closes the connection.
async fn write_many(
    p: &mut RawPeer,
    body: &Body<SocketAddr>,
    n: usize,
) -> ((usize, usize, usize), Option<Token>) {
    const BATCH: usize = 500;
    let (mut stored, mut refused, mut other, mut token) = (0, 0, 0, None);
    let mut sent = 0;
    while sent < n {
        let batch = BATCH.min(n - sent);
        let mut frames = Vec::new();
        for i in 0..batch {
            let msg = Message {
                sender: p.id,
                rpc: RpcId((sent + i) as u64 + 1_000),
                body: body.clone(),
            };
            p.sealer.seal(&msg.encode().unwrap(), &mut frames).unwrap();
        }
        if p.stream.write_all(&frames).await.is_err() {
            break;
        }
        sent += batch;
        // Every write is answered, except those with a forged token.
        for _ in 0..batch {
            let Some(reply) = p.recv_within(Duration::from_millis(500)).await else {
                break;
            };
            match reply.body {
                Body::ProviderAdded { .. } => stored += 1,
                Body::RecordRefused { token: t, .. } => {
                    refused += 1;
                    token = Some(t);
                }
                _ => other += 1,
            }
        }
    }
    ((stored, refused, other), token)
}

/// The providers node `tracker` lists for `key`, asked by a peer named `label`.
async fn listed(tracker: SocketAddr, label: &[u8], key: Id) -> Vec<Id> {
    let mut asker = RawPeer::connect(tracker, label, "127.0.0.1:9".parse().unwrap()).await;
    asker
        .send(&Message {
            sender: asker.id,
            rpc: RpcId(7),
            body: Body::GetProviders { key },
        })
        .await;
    loop {
        let reply = asker.recv().await;
        if let (RpcId(7), Body::Providers { providers, .. }) = (reply.rpc, reply.body) {
            return providers.into_iter().map(|c| c.id).collect();
        }
    }
}

/// 17,000 provider records written over one connection without a token, a
/// hundred with a forged one, 17,000 more with a real one, then forty more
/// writers from one IP with tokens of their own: the honest provider's record
/// stays listed (old records are kept over new ones when a key's list is
/// full), and a fresh node fetches the content.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_announcements_leaves_the_honest_record_in_place() {
    // A key's list as long as a reply, so a listing shows all of it.
    let mut tracker = config(15);
    tracker.protocol.records.max_providers_per_key =
        tracker.protocol.records.max_providers_returned;
    let t = LiveNode::start(tracker).await.unwrap();
    let b = start(16).await;
    let (ht, hb) = (t.handle(), b.handle());
    hb.bootstrap(vec![ht.listen_addr()]).await.expect("B joins");
    let content = common::junk(40_000, 15);
    let root = publish(&hb, &content).await;
    let deadline = tokio::time::Instant::now() + T;
    while !listed(ht.listen_addr(), b"observer", root)
        .await
        .contains(&hb.id())
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "B's record reaches T"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let flood_ip: IpAddr = "127.30.0.1".parse().unwrap();
    let stream = connect_from(flood_ip, ht.listen_addr()).await.unwrap();
    let listen = SocketAddr::new(flood_ip, 9);
    let mut p = RawPeer::over(stream, b"flooder", listen, None)
        .await
        .unwrap();
    let tokenless = Body::AddProvider {
        key: root,
        token: None,
    };
    let ((stored, refused, _), token) = write_many(&mut p, &tokenless, 17_000).await;
    assert_eq!(stored, 0, "nothing is stored without a token");
    assert!(refused > 0, "refusals carry a token to earn");
    assert_eq!(
        listed(ht.listen_addr(), b"observer", root).await,
        vec![hb.id()]
    );

    let forged = Body::AddProvider {
        key: root,
        token: Some(Token([7; 8])),
    };
    let ((stored, _, _), _) = write_many(&mut p, &forged, 100).await;
    assert_eq!(stored, 0, "nothing is stored with a forged token");
    let counters = ht.status().await.unwrap().counters;
    assert!(counters.bad_tokens > 0, "{counters:?}");

    // With the token it earned, the flooder is one provider among others,
    // however often it writes.
    let earned = Body::AddProvider {
        key: root,
        token: token.or(Some(Token([0; 8]))),
    };
    write_many(&mut p, &earned, 17_000).await;
    let after = listed(ht.listen_addr(), b"observer", root).await;
    assert!(after.contains(&hb.id()), "{after:?}");
    assert!(after.len() <= 2, "one record per writer: {after:?}");

    // Forty more writers from the flooder's IP, each earning its own token.
    for i in 0..40u8 {
        let stream = connect_from(flood_ip, ht.listen_addr()).await.unwrap();
        let listen = SocketAddr::new(flood_ip, 10 + u16::from(i));
        let Ok(mut s) = RawPeer::over(stream, &[30, i], listen, None).await else {
            continue;
        };
        let (_, token) = write_many(&mut s, &tokenless, 1).await;
        if let Some(token) = token {
            let with = Body::AddProvider {
                key: root,
                token: Some(token),
            };
            write_many(&mut s, &with, 1).await;
        }
    }
    let after = listed(ht.listen_addr(), b"observer", root).await;
    assert!(after.contains(&hb.id()), "B's record stays: {after:?}");
    assert_eq!(after.len(), 20, "the key's list is full, and holds");

    let f = start(17).await;
    let hf = f.handle();
    hf.bootstrap(vec![ht.listen_addr()]).await.expect("F joins");
    assert_eq!(
        common::fetch_all(&hf, root).await,
        content,
        "the fresh node fetches it"
    );
    for n in [t, b, f] {
        n.stop().await;
    }
}

//! The lab's NAT behaves as the kinds it names: homes reach the public network
//! as their router, nothing reaches a home but forwarded ports, an
//! endpoint-independent router keeps a local port's public port for every
//! destination and a symmetric one does not, and two endpoint-independent
//! homes can meet by TCP simultaneous open while a symmetric one cannot.
//! Dropping the lab deletes its namespaces.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use distroweb_netlab::{require, Host, LabError, Nat};
use socket2::{Domain, Socket, Type};

const WAIT: Duration = Duration::from_secs(2);

/// Runs `f` in `host`'s namespace and waits for it.
fn inside<T: Send + 'static>(host: &Host, f: impl FnOnce() -> T + Send + 'static) -> T {
    match host.spawn(f).join() {
        Ok(Ok(t)) => t,
        Ok(Err(e)) => panic!("entering {}: {e}", host.namespace()),
        Err(_) => panic!("the thread in {} panicked", host.namespace()),
    }
}

/// A listener on `port` in `host`'s namespace (it stays there when returned).
fn listen(host: &Host, port: u16) -> TcpListener {
    inside(host, move || TcpListener::bind(("0.0.0.0", port))).expect("binds")
}

/// Accepts one connection within WAIT and says where it came from.
fn accept(listener: &TcpListener) -> Option<SocketAddr> {
    listener.set_nonblocking(true).expect("nonblocking");
    let end = Instant::now() + WAIT;
    while Instant::now() < end {
        match listener.accept() {
            Ok((_, from)) => return Some(from),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
    None
}

/// Connects from `host` to `to`, from local port `from` if given.
fn connect(host: &Host, from: Option<u16>, to: SocketAddrV4) -> std::io::Result<TcpStream> {
    connect_within(host, from, to, WAIT)
}

/// Connects as [`connect`] does, giving up after `within`.
fn connect_within(
    host: &Host,
    from: Option<u16>,
    to: SocketAddrV4,
    within: Duration,
) -> std::io::Result<TcpStream> {
    inside(host, move || {
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
        if let Some(port) = from {
            socket.set_reuse_address(true)?;
            socket.set_reuse_port(true)?;
            socket.bind(&SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port).into())?;
        }
        socket.connect_timeout(&to.into(), within)?;
        Ok(socket.into())
    })
}

#[test]
fn a_home_is_seen_as_its_router_and_reached_only_through_forwarded_ports() {
    let Some(mut lab) = require("a_home_is_seen_as_its_router") else {
        return;
    };
    let public = lab.public_host().expect("a public host");
    let home = lab.home(Nat::EndpointIndependent, &[7002]).expect("a home");

    let listener = listen(&public, 7000);
    let _out = connect(&home.host, None, SocketAddrV4::new(public.addr(), 7000))
        .expect("a home reaches the public network");
    let from = accept(&listener).expect("the connection arrives");
    assert_eq!(from.ip(), home.router.addr(), "seen as its router");

    let _unforwarded = listen(&home.host, 7001);
    let forwarded = listen(&home.host, 7002);
    // Dials that must fail: the router drops them, so they time out.
    let short = Duration::from_millis(300);
    assert!(
        connect_within(
            &public,
            None,
            SocketAddrV4::new(home.host.addr(), 7001),
            short
        )
        .is_err(),
        "a private address is not reachable from outside"
    );
    assert!(
        connect_within(
            &public,
            None,
            SocketAddrV4::new(home.router.addr(), 7001),
            short
        )
        .is_err(),
        "a port that is not forwarded is closed"
    );
    let _in = connect(&public, None, SocketAddrV4::new(home.router.addr(), 7002))
        .expect("a forwarded port is open");
    let from = accept(&forwarded).expect("the connection arrives at home");
    assert_eq!(from.ip(), public.addr(), "the sender's own address");

    let namespaces = [
        public.namespace(),
        home.router.namespace(),
        home.host.namespace(),
    ]
    .map(|n| Path::new("/var/run/netns").join(n));
    assert!(namespaces.iter().all(|n| n.exists()));
    drop(lab);
    assert!(
        namespaces.iter().all(|n| !n.exists()),
        "dropping the lab deletes its namespaces"
    );
}

/// The public ports three public hosts see for connections from one local port.
fn mapped_ports(nat: Nat) -> Vec<u16> {
    let Some(mut lab) = require("mapped_ports") else {
        return Vec::new();
    };
    let home = lab.home(nat, &[]).expect("a home");
    let mut ports = Vec::new();
    for _ in 0..3 {
        let public = lab.public_host().expect("a public host");
        let listener = listen(&public, 7000);
        let _out = connect(
            &home.host,
            Some(40_000),
            SocketAddrV4::new(public.addr(), 7000),
        )
        .expect("connects");
        let from = accept(&listener).expect("arrives");
        assert_eq!(from.ip(), home.router.addr());
        ports.push(from.port());
    }
    ports
}

#[test]
fn endpoint_independent_keeps_the_port_and_symmetric_does_not() {
    let eim = mapped_ports(Nat::EndpointIndependent);
    if eim.is_empty() {
        return;
    }
    assert!(eim.iter().all(|&p| p == eim[0]), "{eim:?}");
    let symmetric = mapped_ports(Nat::Symmetric);
    // Three random ports are all equal with a chance of about 1 in 10^9.
    assert!(
        symmetric.iter().any(|&p| p != symmetric[0]),
        "{symmetric:?}"
    );
}

/// Whether two homes behind `a` and `b` meet by TCP simultaneous open: each
/// dials the other's router from port 41000 until one dial works or `within`
/// passes; the two ends then exchange a byte.
fn punch(a: Nat, b: Nat, within: Duration) -> Option<bool> {
    let mut lab = require("punch")?;
    let (one, two) = (
        lab.home(a, &[]).expect("home"),
        lab.home(b, &[]).expect("home"),
    );
    let dial = |me: &Host, them: Ipv4Addr| {
        me.spawn(move || {
            let end = Instant::now() + within;
            while Instant::now() < end {
                let tried = (|| {
                    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
                    socket.set_reuse_address(true)?;
                    socket.set_reuse_port(true)?;
                    socket.bind(&SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 41_000).into())?;
                    let to = SocketAddrV4::new(them, 41_000);
                    socket.connect_timeout(&to.into(), Duration::from_secs(2))?;
                    let mut stream: TcpStream = socket.into();
                    stream.set_read_timeout(Some(WAIT))?;
                    stream.write_all(b"x")?;
                    let mut byte = [0u8; 1];
                    stream.read_exact(&mut byte)?;
                    Ok::<_, std::io::Error>(byte[0] == b'x')
                })();
                if let Ok(true) = tried {
                    return true;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            false
        })
    };
    let left = dial(&one.host, two.router.addr());
    let right = dial(&two.host, one.router.addr());
    let joined = |h: std::thread::JoinHandle<Result<bool, LabError>>| {
        h.join().expect("no panic").expect("enters")
    };
    let (l, r) = (joined(left), joined(right));
    Some(l && r)
}

#[test]
fn two_endpoint_independent_homes_meet_and_a_symmetric_one_does_not() {
    let eim = Nat::EndpointIndependent;
    let Some(met) = punch(eim, eim, Duration::from_secs(10)) else {
        return;
    };
    assert!(
        met,
        "simultaneous open through two endpoint-independent NATs"
    );
    let met = punch(Nat::Symmetric, eim, Duration::from_secs(3)).expect("a lab");
    assert!(!met, "a symmetric NAT defeats simultaneous open");
}

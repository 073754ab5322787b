//! A home router's `miniupnpd` maps ports for real: a NAT-PMP request from
//! the home (12 bytes, RFC 6886) gets a forward, and a public host then
//! reaches the home host through the router's public address, which it could
//! not before.

use std::io::Read;
use std::net::{SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use distroweb_netlab::{require_port_mapping, Host, Nat, PortMapping};

/// Runs `f` in `host`'s namespace and waits for it.
fn inside<T: Send + 'static>(host: &Host, f: impl FnOnce() -> T + Send + 'static) -> T {
    match host.spawn(f).join() {
        Ok(Ok(t)) => t,
        Ok(Err(e)) => panic!("entering {}: {e}", host.namespace()),
        Err(_) => panic!("the thread in {} panicked", host.namespace()),
    }
}

/// Whether a TCP connection from `from` to `to` opens within a second.
fn reaches(from: &Host, to: SocketAddrV4) -> bool {
    inside(from, move || {
        TcpStream::connect_timeout(&to.into(), Duration::from_secs(1)).is_ok()
    })
}

#[test]
fn a_nat_pmp_request_opens_a_port_through_the_router() {
    let Some(mut lab) = require_port_mapping("a_nat_pmp_request_opens_a_port") else {
        return;
    };
    let public = lab.public_host().expect("a public host");
    let home = lab
        .home_with_port_mapping(Nat::EndpointIndependent, PortMapping::NatPmp)
        .expect("a home whose router maps ports");
    let listener = inside(&home.host, || TcpListener::bind(("0.0.0.0", 7100))).expect("binds");
    let outside = SocketAddrV4::new(home.router.addr(), 7100);
    assert!(!reaches(&public, outside), "nothing is forwarded yet");

    // Map TCP 7100 to 7100 for an hour: version 0, opcode 2 (TCP), reserved,
    // internal port, suggested external port, lifetime.
    let router_lan = {
        let o = home.host.addr().octets();
        SocketAddrV4::new([o[0], o[1], o[2], 1].into(), 5351)
    };
    let reply = inside(&home.host, move || {
        let socket = UdpSocket::bind(("0.0.0.0", 0))?;
        socket.set_read_timeout(Some(Duration::from_secs(2)))?;
        let mut request = vec![0, 2, 0, 0];
        request.extend(7100u16.to_be_bytes());
        request.extend(7100u16.to_be_bytes());
        request.extend(3600u32.to_be_bytes());
        socket.send_to(&request, router_lan)?;
        let mut buf = [0u8; 16];
        let n = socket.recv(&mut buf)?;
        Ok::<_, std::io::Error>(buf[..n].to_vec())
    })
    .expect("the router answers");
    assert_eq!(reply.len(), 16);
    assert_eq!(
        &reply[..4],
        &[0, 130, 0, 0],
        "a TCP mapping response, success"
    );
    assert_eq!(&reply[8..12], &[0x1b, 0xbc, 0x1b, 0xbc], "7100 to 7100");

    assert!(reaches(&public, outside), "the mapped port is forwarded");
    listener.set_nonblocking(true).expect("nonblocking");
    let end = Instant::now() + Duration::from_secs(2);
    let from = loop {
        match listener.accept() {
            Ok((mut stream, from)) => {
                let _ = stream.read(&mut [0u8; 1]);
                break from;
            }
            Err(_) if Instant::now() < end => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => panic!("no connection arrived: {e}"),
        }
    };
    assert_eq!(from.ip(), std::net::IpAddr::V4(public.addr()));
}

//! A router's port-mapping service: the real `miniupnpd` (Debian's
//! `miniupnpd-nftables`), which answers UPnP-IGD, NAT-PMP and PCP on the
//! home side and writes its forwards into the router's nftables ruleset.
//!
//! Three things make it run in a lab:
//! - Its nftables backend adds rules to chains it expects to find, in an
//!   `inet` table of their own ([`RULESET`], loaded beside the lab's `ip lab`
//!   table). Its DNAT runs in a nat prerouting chain at the same priority as
//!   the lab's, which holds no forward on such a router; the lab's forward
//!   chain already accepts what a DNAT let in (`ct status dnat accept`).
//! - It maps ports only when its external address is public, and the lab's
//!   public segment (10.77.0.0/24) is private. It believes a STUN server
//!   instead, so the router answers its own STUN requests: a binding
//!   response naming the address the request came from (the router's), which
//!   is exactly true of a router on the lab's public segment.
//! - Every file it writes (configuration, pid file, leases, log) is in a
//!   directory of its own, deleted when the service stops.

use std::fs;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::command::find;
use crate::{Host, LabError};

/// The protocols a router's `miniupnpd` answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortMapping {
    /// UPnP-IGD, NAT-PMP and PCP.
    All,
    /// NAT-PMP and PCP (UDP 5351 on the router's home address), no UPnP.
    NatPmp,
    /// UPnP-IGD only (SSDP on the home network, then SOAP over HTTP).
    Upnp,
}

/// The chains `miniupnpd` adds its rules to, in a table of their own.
pub(crate) const RULESET: &str = "table inet miniupnpd {
  chain forward {
    type filter hook forward priority filter; policy accept;
    jump miniupnpd
  }
  chain miniupnpd {
  }
  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
    jump prerouting_miniupnpd
  }
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    jump postrouting_miniupnpd
  }
  chain prerouting_miniupnpd {
  }
  chain postrouting_miniupnpd {
  }
}
";

/// Where the router answers its own STUN requests (the standard STUN port).
const STUN_PORT: u16 = 3478;
/// How long the daemon may take to say it listens.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// At most this much of the daemon's log goes into an error.
const LOG_BYTES: usize = 2_000;

/// A running `miniupnpd` in a router's namespace, with its STUN answerer;
/// dropping it stops both and deletes its files.
#[derive(Debug)]
pub(crate) struct Service {
    child: Child,
    dir: PathBuf,
    stop: Arc<AtomicBool>,
    stun: Option<JoinHandle<()>>,
}

impl Service {
    /// Starts `miniupnpd` on `router` (its public interface `wan`, its home
    /// interface `lan` at `lan`/24), answering `protocols` for hosts of that
    /// /24, and waits until it listens. `name` names its directory apart
    /// from other labs'.
    pub(crate) fn start(
        name: &str,
        router: &Host,
        lan: Ipv4Addr,
        protocols: PortMapping,
    ) -> Result<Service, LabError> {
        let subnet = Ipv4Addr::from(u32::from(lan) & 0xffff_ff00);
        let program = find("miniupnpd").ok_or_else(|| {
            LabError::Unavailable(
                "`miniupnpd` is not installed (apt-get install miniupnpd-nftables)".into(),
            )
        })?;
        let stop = Arc::new(AtomicBool::new(false));
        let stun = stun_answerer(router, stop.clone())?;
        let dir = std::env::temp_dir().join(name);
        let io = |source| LabError::Spawn {
            command: format!("writing {}", dir.display()),
            source,
        };
        fs::create_dir_all(&dir).map_err(io)?;
        let (natpmp, upnp) = match protocols {
            PortMapping::All => ("yes", "yes"),
            PortMapping::NatPmp => ("yes", "no"),
            PortMapping::Upnp => ("no", "yes"),
        };
        let config = format!(
            "ext_ifname=wan
listening_ip=lan
http_port=5000
enable_natpmp={natpmp}
enable_upnp={upnp}
secure_mode=yes
ext_perform_stun=yes
ext_stun_host={stun}
ext_stun_port={STUN_PORT}
upnp_table_name=miniupnpd
upnp_nat_table_name=miniupnpd
upnp_forward_chain=miniupnpd
upnp_nat_chain=prerouting_miniupnpd
upnp_nat_postrouting_chain=postrouting_miniupnpd
lease_file={leases}
uuid=6c0f3a4e-1d2b-4c5d-8e9f-{k:012x}
allow 1024-65535 {subnet}/24 1024-65535
deny 0-65535 0.0.0.0/0 0-65535
",
            stun = router.addr(),
            leases = dir.join("leases").display(),
            k = u32::from(subnet),
        );
        let conf = dir.join("miniupnpd.conf");
        fs::write(&conf, config).map_err(io)?;
        let log = dir.join("log");
        let log_file = fs::File::create(&log).map_err(io)?;
        let log_err = log_file.try_clone().map_err(io)?;
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", router.namespace()])
            .arg(&program)
            // -d: in the foreground, logging to standard error.
            .arg("-d")
            .arg("-f")
            .arg(&conf)
            .arg("-P")
            .arg(dir.join("pid"))
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(log_err);
        let child = command.spawn().map_err(|source| LabError::Spawn {
            command: format!("miniupnpd in {}", router.namespace()),
            source,
        })?;
        let mut service = Service {
            child,
            dir,
            stop,
            stun: Some(stun),
        };
        let mut ready = Vec::new();
        if natpmp == "yes" {
            ready.push("Listening for NAT-PMP/PCP traffic");
        }
        if upnp == "yes" {
            ready.push("HTTP listening on port");
        }
        service.wait_for(&log, &ready)?;
        Ok(service)
    }

    /// Waits until the daemon's log holds every line in `ready`; fails if it
    /// exits first or takes longer than `START_TIMEOUT`.
    fn wait_for(&mut self, log: &std::path::Path, ready: &[&str]) -> Result<(), LabError> {
        let end = Instant::now() + START_TIMEOUT;
        loop {
            let text = fs::read_to_string(log).unwrap_or_default();
            if ready.iter().all(|line| text.contains(line)) {
                return Ok(());
            }
            let exited = self.child.try_wait().ok().flatten();
            if exited.is_some() || Instant::now() >= end {
                let start = text.len().saturating_sub(LOG_BYTES);
                let start = (start..text.len())
                    .find(|&i| text.is_char_boundary(i))
                    .unwrap_or(text.len());
                return Err(LabError::Service {
                    service: "miniupnpd",
                    reason: match exited {
                        Some(status) => format!("exited ({status})"),
                        None => format!("not listening after {START_TIMEOUT:?}"),
                    },
                    log: text[start..].trim().to_owned(),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stop.store(true, Ordering::Relaxed);
        if let Some(stun) = self.stun.take() {
            let _ = stun.join();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Answers STUN binding requests on the router's public address with the
/// address each came from, until `stop`: a socket made in the router's
/// namespace (it stays there), served by a thread of the test's.
fn stun_answerer(router: &Host, stop: Arc<AtomicBool>) -> Result<JoinHandle<()>, LabError> {
    let addr = SocketAddr::from((router.addr(), STUN_PORT));
    let bound = router
        .spawn(move || UdpSocket::bind(addr))
        .join()
        .map_err(|_| LabError::Service {
            service: "STUN",
            reason: "the thread binding its socket panicked".into(),
            log: String::new(),
        })??;
    let socket = bound.map_err(|source| LabError::Spawn {
        command: format!("binding STUN at {addr}"),
        source,
    })?;
    socket
        .set_read_timeout(Some(Duration::from_millis(50)))
        .map_err(|source| LabError::Spawn {
            command: "setting the STUN socket's timeout".into(),
            source,
        })?;
    Ok(std::thread::spawn(move || {
        let mut buf = [0u8; 548];
        while !stop.load(Ordering::Relaxed) {
            let Ok((n, from)) = socket.recv_from(&mut buf) else {
                continue;
            };
            if let Some(reply) = binding_response(&buf[..n], from) {
                let _ = socket.send_to(&reply, from);
            }
        }
    }))
}

/// The response to a STUN binding request (RFC 5389 header, RFC 3489
/// MAPPED-ADDRESS naming `from`), or `None` for anything else. A
/// CHANGE-REQUEST is answered from the same address: the daemon only checks
/// that the four answers come and name the same address and its own ports.
fn binding_response(request: &[u8], from: SocketAddr) -> Option<Vec<u8>> {
    const BINDING_REQUEST: [u8; 2] = [0x00, 0x01];
    const BINDING_RESPONSE: [u8; 2] = [0x01, 0x01];
    const MAPPED_ADDRESS: [u8; 2] = [0x00, 0x01];
    if request.len() < 20 || request[..2] != BINDING_REQUEST {
        return None;
    }
    let SocketAddr::V4(from) = from else {
        return None;
    };
    let mut reply = Vec::with_capacity(32);
    reply.extend_from_slice(&BINDING_RESPONSE);
    reply.extend_from_slice(&12u16.to_be_bytes());
    // The magic cookie and the transaction id, as the request had them.
    reply.extend_from_slice(&request[4..20]);
    reply.extend_from_slice(&MAPPED_ADDRESS);
    reply.extend_from_slice(&8u16.to_be_bytes());
    reply.extend_from_slice(&[0, 1]); // reserved, IPv4
    reply.extend_from_slice(&from.port().to_be_bytes());
    reply.extend_from_slice(&from.ip().octets());
    Some(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_binding_request_gets_the_address_it_came_from() {
        let mut request = vec![0x00, 0x01, 0x00, 0x08, 0x21, 0x12, 0xA4, 0x42];
        request.extend(1..=12u8);
        request.extend([0x00, 0x03, 0x00, 0x04, 0, 0, 0, 6]);
        let from = SocketAddr::from(([10, 77, 0, 100], 40000));
        let reply = binding_response(&request, from).expect("a response");
        assert_eq!(&reply[..4], &[0x01, 0x01, 0x00, 12]);
        assert_eq!(&reply[4..20], &request[4..20], "cookie and transaction id");
        assert_eq!(&reply[20..26], &[0x00, 0x01, 0x00, 0x08, 0x00, 0x01]);
        assert_eq!(&reply[26..28], &40000u16.to_be_bytes());
        assert_eq!(&reply[28..32], &[10, 77, 0, 100]);
        assert_eq!(binding_response(&request[..19], from), None, "too short");
        assert_eq!(binding_response(&reply, from), None, "not a request");
    }
}

//! The per-client-IP connection cap: one client that opens (and idles) many
//! sockets fills its own share, not every slot of the proxy.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

/// Counts open connections per client IP, up to a cap each.
#[derive(Clone, Debug)]
pub struct PerIp {
    cap: usize,
    open: Arc<Mutex<BTreeMap<IpAddr, usize>>>,
}

/// One connection's place in its IP's count; released when dropped.
#[derive(Debug)]
pub struct PerIpPermit {
    ip: IpAddr,
    open: Arc<Mutex<BTreeMap<IpAddr, usize>>>,
}

impl PerIp {
    /// At most `cap` connections per IP.
    pub fn new(cap: usize) -> Self {
        PerIp {
            cap,
            open: Arc::default(),
        }
    }

    /// A permit for one more connection from `ip`, or `None` at its cap. The map
    /// holds only IPs with open connections, so it is bounded by the global cap.
    pub fn admit(&self, ip: IpAddr) -> Option<PerIpPermit> {
        let ip = ip.to_canonical();
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(ip).or_insert(0);
        if *count >= self.cap {
            return None;
        }
        *count += 1;
        Some(PerIpPermit {
            ip,
            open: self.open.clone(),
        })
    }
}

impl Drop for PerIpPermit {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.ip) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_ip_has_its_own_cap() {
        let caps = PerIp::new(2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "::ffff:192.0.2.2".parse().unwrap();
        let first = caps.admit(a).unwrap();
        let _second = caps.admit(a).unwrap();
        assert!(caps.admit(a).is_none());
        assert!(caps.admit(b).is_some());
        drop(first);
        assert!(caps.admit(a).is_some());
        assert!(caps.open.lock().unwrap().len() <= 2);
    }
}

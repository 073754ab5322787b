//! Admission of uploads: how many blocks this node is sending at once.

use std::collections::VecDeque;

use core::time::Duration;

use crate::time::Time;

/// Upload slots, released by an estimate of when each upload ends.
///
/// Implementation note: a sans-IO node cannot see its socket drain, so an upload
/// is taken to occupy the link for `len / upload_bytes_per_s` after the uploads
/// queued before it (one link, first come first served). The estimate only
/// decides admission: past `max_uploads` uploads still running, a request is
/// answered "busy" at once and the requester moves on.
#[derive(Clone, Debug)]
pub(crate) struct Uploads {
    /// When each running upload is expected to end, earliest first.
    ends: VecDeque<Time>,
    /// When the link is next free.
    free_at: Time,
    max: usize,
    bytes_per_s: u64,
}

impl Uploads {
    pub fn new(max: usize, bytes_per_s: u64) -> Self {
        Uploads {
            ends: VecDeque::new(),
            free_at: Time::ZERO,
            max,
            bytes_per_s: bytes_per_s.max(1),
        }
    }

    /// Uploads still running at `now`.
    pub fn running(&mut self, now: Time) -> usize {
        while self.ends.front().is_some_and(|&t| t <= now) {
            self.ends.pop_front();
        }
        self.ends.len()
    }

    /// Uploads counted as running when last looked at (expired ones not yet dropped).
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Takes a slot for `len` bytes, or returns `false` if all are in use.
    pub fn try_start(&mut self, now: Time, len: usize) -> bool {
        if self.running(now) >= self.max {
            return false;
        }
        let us = (len as u128 * 1_000_000).div_ceil(u128::from(self.bytes_per_s));
        let start = self.free_at.max(now);
        let end = start + Duration::from_micros(u64::try_from(us).unwrap_or(u64::MAX));
        self.free_at = end;
        self.ends.push_back(end);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_fill_and_drain_with_the_link() {
        // 1 MB/s: a 100 kB block takes 100 ms.
        let mut u = Uploads::new(2, 1_000_000);
        let t0 = Time::from_secs(1);
        assert!(u.try_start(t0, 100_000));
        assert!(u.try_start(t0, 100_000));
        assert!(!u.try_start(t0, 1));
        assert!(!u.try_start(t0 + Duration::from_millis(99), 1));
        assert!(u.try_start(t0 + Duration::from_millis(100), 1));
        assert_eq!(u.running(t0 + Duration::from_millis(200)), 1);
        assert_eq!(u.running(t0 + Duration::from_secs(1)), 0);
    }
}

//! The one place real time becomes protocol time.

use std::time::Duration;

use distroweb_protocol::Time;
use tokio::time::Instant;

/// Maps tokio's clock onto `protocol::Time`: microseconds since the node started.
///
/// tokio's `Instant` (not std's) so that tests with a paused clock drive the node too.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    origin: Instant,
}

impl Clock {
    /// A clock whose origin is now.
    pub fn start() -> Self {
        Clock {
            origin: Instant::now(),
        }
    }

    /// The current protocol time.
    pub fn now(&self) -> Time {
        Time::from_micros(u64::try_from(self.origin.elapsed().as_micros()).unwrap_or(u64::MAX))
    }

    /// Tells `node` the calendar time (the system's Unix seconds) at protocol
    /// time `now`: name records expire in calendar time, which the protocol
    /// cannot read. A system clock before 1970 leaves the node without one
    /// (it then refuses name operations rather than guess).
    pub fn anchor_calendar<A: distroweb_protocol::Address>(
        &self,
        node: &mut distroweb_protocol::Node<A>,
        now: Time,
    ) {
        if let Ok(since) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            node.set_calendar(now, since.as_secs());
        }
    }

    /// The instant at which protocol time `t` falls; far-future times are capped
    /// at a day from now, which a timer may sleep until and harmlessly wake early.
    pub fn instant(&self, t: Time) -> Instant {
        let cap = Instant::now() + Duration::from_secs(24 * 3600);
        self.origin
            .checked_add(Duration::from_micros(t.as_micros()))
            .map_or(cap, |i| i.min(cap))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn time_follows_the_tokio_clock() {
        let clock = Clock::start();
        assert_eq!(clock.now(), Time::ZERO);
        tokio::time::advance(Duration::from_millis(1500)).await;
        assert_eq!(clock.now(), Time::from_millis(1500));
        assert_eq!(
            clock.instant(Time::from_secs(2)) - clock.origin,
            Duration::from_secs(2)
        );
        assert!(clock.instant(Time::MAX) <= Instant::now() + Duration::from_secs(24 * 3600));
    }
}

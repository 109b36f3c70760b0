//! When a drain is over: lbd withdrew its VIPs and keeps forwarding whatever still
//! arrives, until no packet was forwarded for [`QUIET`] (the router moved every flow
//! to the other nodes) or the drain timeout. Pure, on the caller's clock.

use std::time::{Duration, Instant};

/// No packet forwarded for this long: the flows arrive elsewhere now.
pub const QUIET: Duration = Duration::from_secs(2);

/// How often the shell reads the forwarded-packet counters while draining.
pub const CHECK_EVERY: Duration = Duration::from_millis(250);

/// A drain in progress.
#[derive(Clone, Debug)]
pub struct Drain {
    started: Instant,
    deadline: Instant,
    /// Forwarded packets at the last change of the count.
    last_count: Option<u64>,
    last_change: Instant,
}

/// Why a drain ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Done {
    /// Nothing forwarded for [`QUIET`].
    Quiet(Duration),
    /// The timeout passed with traffic still arriving.
    Timeout(Duration),
}

impl Drain {
    /// A drain from `now`, ending at the latest after `timeout`.
    pub fn new(now: Instant, timeout: Duration) -> Self {
        Drain {
            started: now,
            deadline: now + timeout,
            last_count: None,
            last_change: now,
        }
    }

    /// Take in the forwarded-packet count read at `now`; `Some` when the drain is over.
    pub fn observe(&mut self, now: Instant, forwarded: u64) -> Option<Done> {
        if self.last_count != Some(forwarded) {
            self.last_count = Some(forwarded);
            self.last_change = now;
        }
        if now.saturating_duration_since(self.last_change) >= QUIET {
            return Some(Done::Quiet(now - self.started));
        }
        if now >= self.deadline {
            return Some(Done::Timeout(now - self.started));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ends_when_traffic_stops() {
        let t0 = Instant::now();
        let mut d = Drain::new(t0, Duration::from_secs(60));
        let ms = |n| t0 + Duration::from_millis(n);
        assert_eq!(d.observe(ms(0), 100), None);
        assert_eq!(d.observe(ms(1000), 150), None, "still arriving");
        assert_eq!(d.observe(ms(2500), 150), None, "quiet for 1.5 s only");
        assert_eq!(
            d.observe(ms(3000), 150),
            Some(Done::Quiet(Duration::from_secs(3)))
        );
    }

    #[test]
    fn ends_at_the_timeout_when_traffic_keeps_arriving() {
        let t0 = Instant::now();
        let mut d = Drain::new(t0, Duration::from_secs(5));
        for s in 0..5 {
            assert_eq!(d.observe(t0 + Duration::from_secs(s), s * 10), None);
        }
        assert_eq!(
            d.observe(t0 + Duration::from_secs(5), 999),
            Some(Done::Timeout(Duration::from_secs(5)))
        );
    }
}

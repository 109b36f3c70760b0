//! When a drain is over: lbd withdrew its VIPs and keeps forwarding whatever still
//! arrives, until the speaker confirmed the withdrawal and no packet was forwarded for
//! [`QUIET`] since (the router moved every flow to the other nodes), or the drain
//! timeout. Pure, on the caller's clock.

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

    /// Take in the forwarded-packet count read at `now` (`None`: unreadable) and
    /// whether the speaker confirmed the withdrawal; `Some` when the drain is over.
    /// Quiet counts only from a confirmed withdrawal and a readable count: idle flows
    /// whose route still points here are not mistaken for flows that moved away.
    pub fn observe(
        &mut self,
        now: Instant,
        forwarded: Option<u64>,
        withdrawn: bool,
    ) -> Option<Done> {
        if !withdrawn || forwarded.is_none() || self.last_count != forwarded {
            self.last_count = forwarded;
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
        assert_eq!(d.observe(ms(0), Some(100), true), None);
        assert_eq!(d.observe(ms(1000), Some(150), true), None, "still arriving");
        assert_eq!(
            d.observe(ms(2500), Some(150), true),
            None,
            "quiet for 1.5 s only"
        );
        assert_eq!(
            d.observe(ms(3000), Some(150), true),
            Some(Done::Quiet(Duration::from_secs(3)))
        );
    }

    #[test]
    fn quiet_counts_from_the_confirmed_withdrawal() {
        let t0 = Instant::now();
        let mut d = Drain::new(t0, Duration::from_secs(60));
        let s = |n| t0 + Duration::from_secs(n);
        // Idle flows, the speaker not answering: no end but the timeout.
        for n in 0..10 {
            assert_eq!(d.observe(s(n), Some(7), false), None);
        }
        assert_eq!(
            d.observe(s(10), None, true),
            None,
            "unreadable is not quiet"
        );
        assert_eq!(
            d.observe(s(11), Some(7), true),
            None,
            "confirmed: quiet starts now"
        );
        assert_eq!(
            d.observe(s(13), Some(7), true),
            Some(Done::Quiet(Duration::from_secs(13)))
        );
    }

    #[test]
    fn ends_at_the_timeout_when_traffic_keeps_arriving() {
        let t0 = Instant::now();
        let mut d = Drain::new(t0, Duration::from_secs(5));
        for s in 0..5 {
            assert_eq!(
                d.observe(t0 + Duration::from_secs(s), Some(s * 10), true),
                None
            );
        }
        assert_eq!(
            d.observe(t0 + Duration::from_secs(5), Some(999), true),
            Some(Done::Timeout(Duration::from_secs(5)))
        );
    }
}

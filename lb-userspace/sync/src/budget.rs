//! The send budget: a token bucket on the caller's clock. It refills at the configured
//! datagrams per second and holds at most a hundredth of a second's worth (at least one
//! datagram per destination), so over any interval `t` at most `rate * t + capacity`
//! datagrams go out, and a large dump leaves paced, not as one burst a receiver's
//! socket buffer must absorb.

use std::time::Instant;

/// Nano-tokens in one token (a datagram).
const NANO: u128 = 1_000_000_000;

/// A token bucket counting datagrams.
#[derive(Clone, Debug)]
pub struct TokenBucket {
    rate: u32,
    capacity: u32,
    /// Tokens, in nano-tokens.
    tokens: u128,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket refilling at `rate` per second, holding `max(rate / 100, 1) +
    /// min_burst` (a tick's worth plus one batch to every destination, so no refill is
    /// lost to rounding).
    pub fn new(rate: u32, min_burst: u32, now: Instant) -> Self {
        let capacity = (rate / 100).max(1).saturating_add(min_burst);
        TokenBucket {
            rate,
            capacity,
            tokens: u128::from(capacity) * NANO,
            last: now,
        }
    }

    /// The most tokens it holds.
    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    /// Adds what `now - last` earned (a clock going backwards earns nothing).
    pub fn refill(&mut self, now: Instant) {
        if now <= self.last {
            return;
        }
        let elapsed = now.duration_since(self.last).as_nanos().min(3600 * NANO);
        self.last = now;
        // `rate` tokens per second = `rate` nano-tokens per nanosecond.
        let cap = u128::from(self.capacity) * NANO;
        self.tokens = (self.tokens + elapsed * u128::from(self.rate)).min(cap);
    }

    /// Whole tokens available.
    pub fn available(&self) -> u64 {
        (self.tokens / NANO) as u64
    }

    /// Takes `n` tokens if there are that many.
    pub fn take(&mut self, n: u32) -> bool {
        let need = u128::from(n) * NANO;
        if self.tokens >= need {
            self.tokens -= need;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn refills_at_rate_up_to_capacity() {
        let t = Instant::now();
        let mut b = TokenBucket::new(2000, 1, t);
        assert_eq!(b.capacity(), 21);
        assert!(b.take(21));
        assert!(!b.take(1));
        b.refill(t + Duration::from_millis(5));
        assert_eq!(b.available(), 10);
        b.refill(t + Duration::from_secs(10));
        assert_eq!(b.available(), 21);
        // Going backwards earns nothing.
        b.refill(t);
        assert_eq!(b.available(), 21);
    }

    #[test]
    fn small_rates_and_bursts() {
        let t = Instant::now();
        let mut b = TokenBucket::new(1, 3, t);
        assert_eq!(b.capacity(), 4);
        assert!(b.take(4));
        b.refill(t + Duration::from_millis(999));
        assert!(!b.take(1));
        b.refill(t + Duration::from_millis(1000));
        assert!(b.take(1));
    }
}

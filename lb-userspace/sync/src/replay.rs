//! Freshness of a peer's datagrams: the epoch rule (a node's older epoch is refused, a
//! newer one replaces its session) and, per stream, a 64-message sliding window that
//! refuses sequence numbers already seen and notices the ones that never came (loss).

use std::time::{Duration, Instant};

use crate::reject::Reject;

/// Sequence numbers a window remembers: a datagram up to this many behind the newest is
/// still accepted (once), so modest reordering costs nothing.
pub const WINDOW: u64 = 64;

/// How long a hole in a stream may stay open (a reordered datagram still on its way)
/// before it counts as a loss.
pub const REORDER_GRACE: Duration = Duration::from_millis(250);

/// What the epoch of a datagram means for a node whose session has `known` epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EpochCheck {
    /// Same epoch: the session goes on.
    Current,
    /// Newer: the node restarted; a fresh session replaces the old one.
    Restarted,
}

/// Compares a datagram's epoch with the one known for its node.
pub fn check_epoch(known: u64, got: u64) -> Result<EpochCheck, Reject> {
    match got.cmp(&known) {
        std::cmp::Ordering::Less => Err(Reject::OldEpoch),
        std::cmp::Ordering::Equal => Ok(EpochCheck::Current),
        std::cmp::Ordering::Greater => Ok(EpochCheck::Restarted),
    }
}

/// The receive state of one stream of one peer session.
#[derive(Clone, Debug)]
pub struct Window {
    /// Highest sequence number accepted (0: none yet).
    highest: u64,
    /// Bit `i`: `highest - i` was accepted (sequence numbers at or below 0 count as
    /// seen).
    seen: u64,
    /// Highest sequence number the sender said it sent (hellos).
    announced: u64,
    /// Holes at or below this were already reported as a loss.
    floor: u64,
    /// Since when a hole has been open.
    hole_since: Option<Instant>,
    /// Whether any datagram was accepted.
    touched: bool,
}

impl Default for Window {
    fn default() -> Self {
        Window::new()
    }
}

impl Window {
    /// A window that expects the stream from its first sequence number (1).
    pub fn new() -> Self {
        Window {
            highest: 0,
            seen: u64::MAX,
            announced: 0,
            floor: 0,
            hole_since: None,
            touched: false,
        }
    }

    /// Whether any datagram was accepted on it.
    pub fn touched(&self) -> bool {
        self.touched
    }

    /// Forgets what came before `seq` without calling it a loss (the stream joined late
    /// while a full resync is on its way anyway). Only before the first datagram.
    pub fn baseline(&mut self, seq: u64) {
        if !self.touched && seq > 0 {
            self.highest = seq - 1;
            self.seen = u64::MAX;
            self.floor = seq - 1;
            self.announced = self.announced.max(seq - 1);
        }
    }

    /// Whether `seq` would be accepted (not changing anything).
    pub fn check(&self, seq: u64) -> Result<(), Reject> {
        if seq == 0 {
            return Err(Reject::Malformed);
        }
        if seq > self.highest {
            return Ok(());
        }
        let behind = self.highest - seq;
        if behind >= WINDOW {
            return Err(Reject::StaleSequence);
        }
        if self.seen & (1u64 << behind) != 0 {
            return Err(Reject::Replay);
        }
        Ok(())
    }

    /// Records `seq` (which [`Window::check`] accepted). Returns true when a sequence
    /// number slid out of the window without ever arriving (a loss, reported once).
    pub fn accept(&mut self, seq: u64) -> bool {
        self.touched = true;
        if seq <= self.highest {
            let behind = self.highest - seq;
            if behind < WINDOW {
                self.seen |= 1u64 << behind;
            }
            return false;
        }
        // Lowest sequence number still inside the window once `seq` is the newest.
        let new_low = seq.saturating_sub(WINDOW - 1);
        let mut lost = false;
        for i in 0..WINDOW {
            let Some(s) = self.highest.checked_sub(i) else {
                break;
            };
            if s == 0 || s <= self.floor {
                break;
            }
            if s < new_low && self.seen & (1u64 << i) == 0 {
                lost = true;
                break;
            }
        }
        // Never-seen numbers between the old newest and the new window's start.
        if new_low > self.highest + 1 && new_low - 1 > self.floor {
            lost = true;
        }
        let shift = seq - self.highest;
        self.seen = if shift >= WINDOW {
            0
        } else {
            self.seen << shift
        } | 1;
        self.highest = seq;
        if lost {
            self.report();
        }
        lost
    }

    /// The sender says it sent up to `last_seq` (a hello).
    pub fn announce(&mut self, last_seq: u64) {
        self.announced = self.announced.max(last_seq);
    }

    /// Whether some sequence number above the floor is missing (not yet a loss: it may
    /// be reordered).
    pub fn has_hole(&self) -> bool {
        if self.announced > self.highest && self.announced > self.floor {
            return true;
        }
        for i in 0..WINDOW {
            let Some(s) = self.highest.checked_sub(i) else {
                break;
            };
            if s == 0 || s <= self.floor {
                break;
            }
            if self.seen & (1u64 << i) == 0 {
                return true;
            }
        }
        false
    }

    /// Ages holes on the clock: true when one has stayed open longer than
    /// [`REORDER_GRACE`] (a loss, reported once).
    pub fn poll(&mut self, now: Instant) -> bool {
        if !self.has_hole() {
            self.hole_since = None;
            return false;
        }
        let since = *self.hole_since.get_or_insert(now);
        if now.saturating_duration_since(since) >= REORDER_GRACE {
            self.report();
            return true;
        }
        false
    }

    /// Whatever is missing up to now has been reported: do not report it again.
    fn report(&mut self) {
        self.floor = self.highest.max(self.announced);
        self.hole_since = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take(w: &mut Window, seq: u64) -> Result<bool, Reject> {
        w.check(seq)?;
        Ok(w.accept(seq))
    }

    #[test]
    fn epochs() {
        assert_eq!(check_epoch(5, 4), Err(Reject::OldEpoch));
        assert_eq!(check_epoch(5, 5), Ok(EpochCheck::Current));
        assert_eq!(check_epoch(5, 6), Ok(EpochCheck::Restarted));
    }

    #[test]
    fn in_order_no_loss_no_replay() {
        let mut w = Window::new();
        let t = Instant::now();
        for s in 1..=200 {
            assert_eq!(take(&mut w, s), Ok(false));
            assert!(!w.poll(t));
        }
        assert_eq!(take(&mut w, 200), Err(Reject::Replay));
        assert_eq!(take(&mut w, 137), Err(Reject::Replay));
        assert_eq!(take(&mut w, 136), Err(Reject::StaleSequence));
        assert_eq!(w.check(0), Err(Reject::Malformed));
    }

    #[test]
    fn reordering_within_window_accepted_once() {
        let mut w = Window::new();
        let t = Instant::now();
        for s in [1, 3, 2, 5, 4, 40, 6] {
            assert_eq!(take(&mut w, s), Ok(false), "{s}");
        }
        assert!(w.has_hole());
        assert!(!w.poll(t));
        for s in 7..40 {
            assert_eq!(take(&mut w, s), Ok(false));
        }
        assert!(!w.has_hole());
        assert!(!w.poll(t + REORDER_GRACE * 2));
        assert_eq!(take(&mut w, 3), Err(Reject::Replay));
    }

    #[test]
    fn hole_becomes_loss_after_grace_once() {
        let mut w = Window::new();
        let t = Instant::now();
        take(&mut w, 1).unwrap();
        take(&mut w, 3).unwrap();
        assert!(!w.poll(t));
        assert!(!w.poll(t + REORDER_GRACE / 2));
        assert!(w.poll(t + REORDER_GRACE));
        assert!(!w.poll(t + REORDER_GRACE * 3));
        // The late one is still accepted.
        assert_eq!(take(&mut w, 2), Ok(false));
    }

    #[test]
    fn hole_sliding_out_is_immediate_loss() {
        let mut w = Window::new();
        take(&mut w, 1).unwrap();
        assert_eq!(take(&mut w, 3), Ok(false));
        assert_eq!(take(&mut w, 3 + WINDOW), Ok(true));
        // Jump far ahead: the missing ones are a loss, reported once.
        let mut w = Window::new();
        take(&mut w, 1).unwrap();
        assert_eq!(take(&mut w, 1000), Ok(true));
        assert_eq!(take(&mut w, 1001), Ok(false));
        assert!(!w.poll(Instant::now() + REORDER_GRACE));
    }

    #[test]
    fn first_datagram_late_is_a_hole() {
        let mut w = Window::new();
        let t = Instant::now();
        take(&mut w, 5).unwrap();
        assert!(w.has_hole());
        assert!(!w.poll(t));
        assert!(w.poll(t + REORDER_GRACE));
    }

    #[test]
    fn baseline_forgets_the_past() {
        let mut w = Window::new();
        w.baseline(5000);
        assert_eq!(take(&mut w, 5000), Ok(false));
        assert!(!w.has_hole());
        assert_eq!(take(&mut w, 4999), Err(Reject::Replay));
    }

    #[test]
    fn announced_tail_is_a_hole() {
        let mut w = Window::new();
        let t = Instant::now();
        take(&mut w, 1).unwrap();
        take(&mut w, 2).unwrap();
        w.announce(2);
        assert!(!w.has_hole());
        w.announce(4);
        assert!(w.has_hole());
        assert!(!w.poll(t));
        assert!(w.poll(t + REORDER_GRACE));
        assert!(!w.has_hole());
    }
}

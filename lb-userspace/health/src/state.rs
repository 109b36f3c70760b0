//! Pure health-state logic: the result of one check ([`Outcome`]) and the
//! rise/fall counter ([`RiseFall`]) that turns a stream of results into up/down
//! transitions.
//!
//! Kept free of clocks, sockets and tasks so the flapping rules can be tested
//! exhaustively with plain sequences; the scheduling lives in `monitor.rs` and
//! the I/O in `probe.rs`.

use std::fmt;
use std::time::Duration;

/// The result of a single health probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The backend answered as expected.
    Pass {
        /// Time from the start of the probe to its success.
        latency: Duration,
    },
    /// The backend did not answer as expected.
    Fail {
        /// Human-readable cause, e.g. `connection refused`, `timeout after 1s`,
        /// `HTTP status 503`, `TLS error: ...`, `exit status 1`, `script timed out ...`.
        reason: String,
    },
    /// The probe could not even be made on this host (out of file descriptors,
    /// buffers, memory, local ports or processes): it says nothing about the backend,
    /// so it counts neither as a pass nor as a failure.
    Local {
        /// What failed locally, e.g. `connect: Too many open files (os error 24)`.
        reason: String,
    },
}

impl Outcome {
    /// Whether this outcome is a [`Outcome::Pass`].
    pub fn is_pass(&self) -> bool {
        matches!(self, Outcome::Pass { .. })
    }

    /// The latency of a passing probe, `None` for a failure.
    pub fn latency(&self) -> Option<Duration> {
        match self {
            Outcome::Pass { latency } => Some(*latency),
            Outcome::Fail { .. } | Outcome::Local { .. } => None,
        }
    }

    /// Whether this is an [`Outcome::Local`] error (the backend was not checked).
    pub fn is_local(&self) -> bool {
        matches!(self, Outcome::Local { .. })
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Pass { latency } => write!(f, "pass in {latency:?}"),
            Outcome::Fail { reason } => f.write_str(reason),
            Outcome::Local { reason } => write!(f, "not checked (local error: {reason})"),
        }
    }
}

/// A change of a backend's health state, produced by [`RiseFall::observe`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// The new state: `true` = up.
    pub up: bool,
    /// Why: for down, the last failure reason followed by
    /// ` (N consecutive failures)`; for up, `N consecutive passes`.
    pub reason: String,
}

/// Consecutive-result counter with keepalived-style rise/fall thresholds.
///
/// While up, `fall` consecutive failures take the backend down; while down,
/// `rise` consecutive passes bring it up. A pass resets the failure count and
/// a failure resets the pass count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RiseFall {
    rise: u32,
    fall: u32,
    up: bool,
    passes: u32,
    failures: u32,
}

impl RiseFall {
    /// A counter starting in state `start_up`. `rise` and `fall` of 0 are
    /// treated as 1 (a single result decides).
    pub fn new(rise: u32, fall: u32, start_up: bool) -> Self {
        Self {
            rise: rise.max(1),
            fall: fall.max(1),
            up: start_up,
            passes: 0,
            failures: 0,
        }
    }

    /// Record one probe result; returns the transition it caused, if any. An
    /// [`Outcome::Local`] error changes nothing: the backend was not checked.
    pub fn observe(&mut self, outcome: &Outcome) -> Option<Transition> {
        match outcome {
            Outcome::Local { .. } => {}
            Outcome::Pass { .. } => {
                self.passes = self.passes.saturating_add(1);
                self.failures = 0;
                if !self.up && self.passes >= self.rise {
                    self.up = true;
                    return Some(Transition {
                        up: true,
                        reason: format!(
                            "{} consecutive {}",
                            self.passes,
                            plural(self.passes, "pass", "passes")
                        ),
                    });
                }
            }
            Outcome::Fail { reason } => {
                self.failures = self.failures.saturating_add(1);
                self.passes = 0;
                if self.up && self.failures >= self.fall {
                    self.up = false;
                    return Some(Transition {
                        up: false,
                        reason: format!(
                            "{reason} ({} consecutive {})",
                            self.failures,
                            plural(self.failures, "failure", "failures")
                        ),
                    });
                }
            }
        }
        None
    }

    /// The current state: `true` = up.
    pub fn is_up(&self) -> bool {
        self.up
    }

    /// Length of the current streak of identical results (passes if the last
    /// result was a pass, failures otherwise); 0 before the first result.
    pub fn consecutive(&self) -> u32 {
        self.passes.max(self.failures)
    }
}

fn plural(n: u32, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 {
        one
    } else {
        many
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pass() -> Outcome {
        Outcome::Pass {
            latency: Duration::from_millis(1),
        }
    }

    fn fail(reason: &str) -> Outcome {
        Outcome::Fail {
            reason: reason.to_string(),
        }
    }

    /// Run `seq` ('P' = pass, 'F' = fail) and return the state after each step
    /// ('U'/'D') plus, for each step, whether it was a transition ('*').
    fn run(rise: u32, fall: u32, start_up: bool, seq: &str) -> (String, String) {
        let mut rf = RiseFall::new(rise, fall, start_up);
        let mut states = String::new();
        let mut marks = String::new();
        for c in seq.chars() {
            let outcome = if c == 'P' { pass() } else { fail("refused") };
            let t = rf.observe(&outcome);
            if let Some(t) = &t {
                assert_eq!(t.up, rf.is_up());
            }
            states.push(if rf.is_up() { 'U' } else { 'D' });
            marks.push(if t.is_some() { '*' } else { '.' });
        }
        (states, marks)
    }

    #[test]
    fn table() {
        // (rise, fall, start_up, sequence, expected states, expected transitions)
        let cases: &[(u32, u32, bool, &str, &str, &str)] = &[
            // rise 1 / fall 2, starting up
            (1, 2, true, "PPFPFFP", "UUUUUDU", ".....**"),
            (1, 2, true, "FFFF", "UDDD", ".*.."),
            (1, 2, true, "FPFPFP", "UUUUUU", "......"),
            // rise 1 / fall 2, starting down
            (1, 2, false, "P", "U", "*"),
            (1, 2, false, "FFP", "DDU", "..*"),
            // rise 3 / fall 1, starting up
            (3, 1, true, "F", "D", "*"),
            (3, 1, true, "FPPFPPP", "DDDDDDU", "*.....*"),
            (3, 1, true, "PPPF", "UUUD", "...*"),
            // rise 3 / fall 1, starting down
            (3, 1, false, "PPP", "DDU", "..*"),
            (3, 1, false, "PPFPPPPF", "DDDDDUUD", ".....*.*"),
            // zero thresholds behave as 1
            (0, 0, true, "FP", "DU", "**"),
        ];
        for (rise, fall, start_up, seq, states, marks) in cases {
            let got = run(*rise, *fall, *start_up, seq);
            assert_eq!(
                (got.0.as_str(), got.1.as_str()),
                (*states, *marks),
                "rise {rise} fall {fall} start_up {start_up} seq {seq}"
            );
        }
    }

    #[test]
    fn reasons() {
        let mut rf = RiseFall::new(2, 3, true);
        assert!(rf.observe(&fail("connection refused")).is_none());
        assert!(rf.observe(&fail("timeout after 1s")).is_none());
        assert_eq!(rf.consecutive(), 2);
        let down = rf.observe(&fail("HTTP status 503"));
        assert_eq!(
            down,
            Some(Transition {
                up: false,
                reason: "HTTP status 503 (3 consecutive failures)".into()
            })
        );
        assert!(rf.observe(&pass()).is_none());
        assert_eq!(rf.consecutive(), 1);
        let up = rf.observe(&pass());
        assert_eq!(
            up,
            Some(Transition {
                up: true,
                reason: "2 consecutive passes".into()
            })
        );

        let mut rf = RiseFall::new(1, 1, true);
        let down = rf.observe(&fail("exit status 1")).map(|t| t.reason);
        assert_eq!(
            down.as_deref(),
            Some("exit status 1 (1 consecutive failure)")
        );
        let up = rf.observe(&pass()).map(|t| t.reason);
        assert_eq!(up.as_deref(), Some("1 consecutive pass"));
    }

    /// Local errors (the probe could not be made here) never take a backend down, nor
    /// break a streak: `fall` 2 with failures around any number of local errors.
    #[test]
    fn local_errors_change_nothing() {
        let local = Outcome::Local {
            reason: "connect: Too many open files (os error 24)".into(),
        };
        let mut rf = RiseFall::new(1, 1, true);
        for _ in 0..1000 {
            assert_eq!(rf.observe(&local), None);
        }
        assert!(rf.is_up());
        let mut rf = RiseFall::new(2, 2, true);
        assert_eq!(rf.observe(&fail("refused")), None);
        assert_eq!(rf.observe(&local), None);
        assert_eq!(rf.consecutive(), 1);
        assert!(rf.observe(&fail("refused")).is_some_and(|t| !t.up));
        let mut rf = RiseFall::new(1, 1, false);
        assert_eq!(rf.observe(&local), None);
        assert!(!rf.is_up());
        assert!(local.is_local() && !local.is_pass() && local.latency().is_none());
        assert_eq!(
            local.to_string(),
            "not checked (local error: connect: Too many open files (os error 24))"
        );
    }

    #[test]
    fn outcome_display() {
        assert_eq!(fail("exit status 1").to_string(), "exit status 1");
        assert_eq!(pass().to_string(), "pass in 1ms");
        assert_eq!(pass().latency(), Some(Duration::from_millis(1)));
        assert!(fail("x").latency().is_none());
    }
}

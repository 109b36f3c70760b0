//! Tracking: how tracked services and scripts (`vrrp.track` in the config) move an
//! instance's priority or put it in FAULT, with keepalived's semantics.
//!
//! Pure code. The daemon supplies the current facts through a [`TrackInput`]
//! (backend health per service, the settled state of each script) and hands the
//! [`TrackResult`] to the state machine: [`TrackResult::delta`] to
//! [`lb_vrrp::Instance::set_priority_adjustment`] (which clamps the effective
//! priority and never adjusts an address owner), [`TrackResult::fault`] to
//! [`lb_vrrp::Instance::set_fault`].
//!
//! A script's settled state comes from a [`ScriptTrack`] per script: the daemon runs
//! the script every `interval` (killing it at `timeout`), feeds the exit status
//! (0 = success) to [`ScriptTrack::observe`], and re-evaluates when it reports a
//! change.

use std::path::{Path, PathBuf};
use std::time::Duration;

use lb_config::Track;
use lb_health::{Outcome, RiseFall};

/// The facts [`evaluate`] needs, as lookups.
pub struct TrackInput<'a> {
    /// `(healthy, total)` backends of a `[[service]]` by name; `(0, 0)` for a
    /// service that is not (or no longer) known.
    pub service_healthy: &'a dyn Fn(&str) -> (u32, u32),
    /// The settled state of a tracked script: `Some(true)` succeeding,
    /// `Some(false)` failing, `None` not yet known (see [`ScriptTrack::state`]).
    pub script_ok: &'a dyn Fn(&Path) -> Option<bool>,
}

/// The combined effect of an instance's tracked objects.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrackResult {
    /// Sum of the weights in effect: positive weights of succeeding checks and
    /// negative weights of failing ones. Unclamped.
    pub delta: i32,
    /// A weight-0 check is failing: the instance must be in FAULT.
    pub fault: bool,
    /// One human-readable line per check that contributes to `delta` or `fault`,
    /// in configuration order, for logs and `lbctl`.
    pub reasons: Vec<String>,
}

/// Whether one tracked object currently succeeds, and how to describe it.
fn status(track: &Track, input: &TrackInput<'_>) -> (Option<bool>, String) {
    match track {
        Track::Service {
            service,
            min_healthy,
            ..
        } => {
            let (healthy, total) = (input.service_healthy)(service);
            let ok = healthy >= *min_healthy;
            (
                Some(ok),
                format!(
                    "service {service} {} ({healthy}/{total} backends healthy, {min_healthy} needed)",
                    if ok { "up" } else { "down" }
                ),
            )
        }
        Track::Script { script, .. } => {
            let ok = (input.script_ok)(script);
            let word = match ok {
                Some(true) => "succeeding",
                Some(false) => "failing",
                None => "not yet known",
            };
            (ok, format!("script {} {word}", script.display()))
        }
    }
}

/// Evaluates `tracks` with keepalived's rules:
/// - weight > 0: added while the check succeeds;
/// - weight < 0: added (so subtracted) while the check fails;
/// - weight 0: FAULT while the check fails.
///
/// A script whose state is not yet known contributes nothing (no bonus before it
/// has succeeded, no penalty or FAULT before it has failed).
pub fn evaluate(tracks: &[Track], input: &TrackInput<'_>) -> TrackResult {
    let mut result = TrackResult::default();
    for track in tracks {
        let weight = track.weight();
        let (ok, what) = status(track, input);
        match ok {
            Some(true) if weight > 0 => {
                result.delta = result.delta.saturating_add(weight);
                result.reasons.push(format!("{what}: +{weight}"));
            }
            Some(false) if weight < 0 => {
                result.delta = result.delta.saturating_add(weight);
                result.reasons.push(format!("{what}: {weight}"));
            }
            Some(false) if weight == 0 => {
                result.fault = true;
                result.reasons.push(format!("{what}: FAULT"));
            }
            _ => {}
        }
    }
    result
}

/// The settled state of one tracked script over its run results, with
/// keepalived's `fall` / `rise` (via [`RiseFall`]).
///
/// Starts unknown; the first `rise` consecutive successes settle it as succeeding,
/// the first `fall` consecutive failures as failing. After that, `fall` consecutive
/// failures take a succeeding script to failing and `rise` consecutive successes
/// bring a failing one back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptTrack {
    /// The program to run (no arguments; exit status 0 = success).
    pub script: PathBuf,
    /// Time between runs.
    pub interval: Duration,
    /// A run still going after this long is killed and counts as a failure.
    pub timeout: Duration,
    fall: u32,
    counter: RiseFall,
    state: Option<bool>,
}

impl ScriptTrack {
    /// A runner state for `script`; `fall` / `rise` of 0 are treated as 1.
    pub fn new(
        script: PathBuf,
        interval: Duration,
        timeout: Duration,
        fall: u32,
        rise: u32,
    ) -> Self {
        ScriptTrack {
            script,
            interval,
            timeout,
            fall: fall.max(1),
            // Counted as "down" until settled: passes count towards `rise` at once,
            // and failures are counted (without a transition) towards `fall`.
            counter: RiseFall::new(rise, fall, false),
            state: None,
        }
    }

    /// The runner state of a script track; `None` for a service track.
    pub fn from_track(track: &Track) -> Option<Self> {
        match track {
            Track::Script {
                script,
                interval,
                timeout,
                fall,
                rise,
                ..
            } => Some(Self::new(script.clone(), *interval, *timeout, *fall, *rise)),
            Track::Service { .. } => None,
        }
    }

    /// Record one run (`ok` = exit status 0). Returns the new settled state when it
    /// changed (including the first time it becomes known), else `None`.
    pub fn observe(&mut self, ok: bool) -> Option<bool> {
        let outcome = if ok {
            Outcome::Pass {
                latency: Duration::ZERO,
            }
        } else {
            Outcome::Fail {
                reason: "script failed".to_owned(),
            }
        };
        let transition = self.counter.observe(&outcome);
        let next = match transition {
            Some(t) => Some(t.up),
            // Not settled yet and failing: the counter stays "down" without a
            // transition, so settle on the failure count ourselves.
            None if self.state.is_none() && !ok && self.counter.consecutive() >= self.fall => {
                Some(false)
            }
            None => None,
        };
        match next {
            Some(s) if self.state != Some(s) => {
                self.state = Some(s);
                Some(s)
            }
            _ => None,
        }
    }

    /// The settled state: `Some(true)` succeeding, `Some(false)` failing, `None`
    /// before it settled. What [`TrackInput::script_ok`] should return.
    pub fn state(&self) -> Option<bool> {
        self.state
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn service(name: &str, weight: i32, min_healthy: u32) -> Track {
        Track::Service {
            service: name.into(),
            weight,
            min_healthy,
        }
    }

    fn script(path: &str, weight: i32) -> Track {
        Track::Script {
            script: PathBuf::from(path),
            interval: Duration::from_secs(2),
            timeout: Duration::from_secs(2),
            weight,
            fall: 1,
            rise: 1,
        }
    }

    /// Evaluate with fixed service health and script states.
    fn eval(
        tracks: &[Track],
        services: &[(&str, u32, u32)],
        scripts: &[(&str, Option<bool>)],
    ) -> TrackResult {
        let services: HashMap<String, (u32, u32)> = services
            .iter()
            .map(|(n, h, t)| ((*n).to_owned(), (*h, *t)))
            .collect();
        let scripts: HashMap<PathBuf, Option<bool>> = scripts
            .iter()
            .map(|(p, s)| (PathBuf::from(p), *s))
            .collect();
        let service_healthy = |n: &str| services.get(n).copied().unwrap_or((0, 0));
        let script_ok = |p: &Path| scripts.get(p).copied().flatten();
        evaluate(
            tracks,
            &TrackInput {
                service_healthy: &service_healthy,
                script_ok: &script_ok,
            },
        )
    }

    #[test]
    fn no_tracks_no_effect() {
        assert_eq!(eval(&[], &[], &[]), TrackResult::default());
    }

    #[test]
    fn negative_weight_subtracts_while_failing_only() {
        let t = [service("api", -60, 1)];
        let up = eval(&t, &[("api", 1, 3)], &[]);
        assert_eq!((up.delta, up.fault), (0, false));
        assert!(up.reasons.is_empty());
        let down = eval(&t, &[("api", 0, 3)], &[]);
        assert_eq!((down.delta, down.fault), (-60, false));
        assert_eq!(
            down.reasons,
            ["service api down (0/3 backends healthy, 1 needed): -60"]
        );
    }

    #[test]
    fn positive_weight_adds_while_succeeding_only() {
        let t = [script("/c.sh", 10)];
        let ok = eval(&t, &[], &[("/c.sh", Some(true))]);
        assert_eq!((ok.delta, ok.fault), (10, false));
        assert_eq!(ok.reasons, ["script /c.sh succeeding: +10"]);
        let bad = eval(&t, &[], &[("/c.sh", Some(false))]);
        assert_eq!((bad.delta, bad.fault), (0, false));
        assert!(bad.reasons.is_empty());
    }

    #[test]
    fn weight_zero_faults_while_failing() {
        let t = [script("/c.sh", 0), service("api", 0, 1)];
        let ok = eval(&t, &[("api", 2, 2)], &[("/c.sh", Some(true))]);
        assert_eq!((ok.delta, ok.fault), (0, false));
        let bad = eval(&t, &[("api", 2, 2)], &[("/c.sh", Some(false))]);
        assert_eq!((bad.delta, bad.fault), (0, true));
        assert_eq!(bad.reasons, ["script /c.sh failing: FAULT"]);
        let svc_down = eval(&t, &[("api", 0, 2)], &[("/c.sh", Some(true))]);
        assert!(svc_down.fault);
    }

    #[test]
    fn unknown_script_contributes_nothing() {
        let t = [
            script("/a.sh", 10),
            script("/b.sh", -10),
            script("/c.sh", 0),
        ];
        let r = eval(&t, &[], &[]);
        assert_eq!(r, TrackResult::default());
    }

    #[test]
    fn min_healthy_and_unknown_service() {
        let t = [service("api", -20, 2)];
        assert_eq!(eval(&t, &[("api", 2, 3)], &[]).delta, 0);
        assert_eq!(eval(&t, &[("api", 1, 3)], &[]).delta, -20);
        // A service the lookup does not know counts as (0, 0): failing.
        assert_eq!(eval(&t, &[], &[]).delta, -20);
    }

    #[test]
    fn weights_sum_in_order() {
        let t = [
            service("api", -60, 1),
            script("/a.sh", -20),
            script("/b.sh", 15),
            service("dns", 5, 1),
        ];
        let r = eval(
            &t,
            &[("api", 0, 3), ("dns", 1, 1)],
            &[("/a.sh", Some(false)), ("/b.sh", Some(true))],
        );
        assert_eq!(r.delta, -60 - 20 + 15 + 5);
        assert!(!r.fault);
        assert_eq!(r.reasons.len(), 4);
        assert!(
            r.reasons[0].starts_with("service api down"),
            "{:?}",
            r.reasons
        );
        assert!(
            r.reasons[3].starts_with("service dns up"),
            "{:?}",
            r.reasons
        );
    }

    #[test]
    fn script_track_settles_on_first_results() {
        let mut s = ScriptTrack::new(
            "/c.sh".into(),
            Duration::from_secs(1),
            Duration::from_secs(1),
            2,
            3,
        );
        assert_eq!(s.state(), None);
        // Failures: unknown until `fall` of them.
        assert_eq!(s.observe(false), None);
        assert_eq!(s.state(), None);
        assert_eq!(s.observe(false), Some(false));
        assert_eq!(s.observe(false), None);
        assert_eq!(s.state(), Some(false));
        // `rise` consecutive successes bring it up; a failure resets the streak.
        assert_eq!(s.observe(true), None);
        assert_eq!(s.observe(true), None);
        assert_eq!(s.observe(false), None);
        assert_eq!(s.observe(true), None);
        assert_eq!(s.observe(true), None);
        assert_eq!(s.observe(true), Some(true));
        assert_eq!(s.state(), Some(true));
        // `fall` consecutive failures take it down.
        assert_eq!(s.observe(false), None);
        assert_eq!(s.observe(true), None);
        assert_eq!(s.observe(false), None);
        assert_eq!(s.observe(false), Some(false));
        assert_eq!(s.state(), Some(false));
    }

    #[test]
    fn script_track_first_successes_settle_up() {
        let mut s = ScriptTrack::new(
            "/c.sh".into(),
            Duration::from_secs(1),
            Duration::from_secs(1),
            1,
            2,
        );
        assert_eq!(s.observe(true), None);
        assert_eq!(s.state(), None);
        assert_eq!(s.observe(true), Some(true));
        assert_eq!(s.observe(false), Some(false));
        // rise/fall of 0 act as 1.
        let mut s = ScriptTrack::new(
            "/c.sh".into(),
            Duration::from_secs(1),
            Duration::from_secs(1),
            0,
            0,
        );
        assert_eq!(s.observe(false), Some(false));
        assert_eq!(s.observe(true), Some(true));
    }

    #[test]
    fn script_track_from_config() {
        let t = Track::Script {
            script: PathBuf::from("/c.sh"),
            interval: Duration::from_secs(2),
            timeout: Duration::from_secs(1),
            weight: -20,
            fall: 2,
            rise: 1,
        };
        let s = ScriptTrack::from_track(&t).expect("script track");
        assert_eq!(s.script, PathBuf::from("/c.sh"));
        assert_eq!(s.interval, Duration::from_secs(2));
        assert_eq!(s.timeout, Duration::from_secs(1));
        assert_eq!(ScriptTrack::from_track(&service("api", 0, 1)), None);
    }
}

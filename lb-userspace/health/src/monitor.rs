//! Scheduling of health checks: one Tokio task per backend running its probe
//! at a fixed interval, feeding [`RiseFall`] and reporting transitions as
//! [`HealthEvent`]s on a channel the daemon consumes.
//!
//! Probes run under a semaphore shared by all tasks, so a large backend set (or
//! slow scripts) cannot open unbounded sockets or processes at once. The probe
//! function is injectable ([`HealthMonitor::with_prober`]) so the scheduling
//! can be tested on a paused clock without real I/O.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::future::Future;
use std::hash::BuildHasher;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tracing::{debug, info, warn};

use super::probe::{probe, Probe};
use super::state::{Outcome, RiseFall};

/// Identifies one checked backend: (service name, backend address).
pub type BackendKey = (String, IpAddr);

/// A boxed, sendable future, as returned by a [`Prober`].
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The function that performs one probe; [`probe`] in production, a fake in tests.
pub type Prober =
    Arc<dyn Fn(&Probe, SocketAddr, Duration) -> BoxFuture<'static, Outcome> + Send + Sync>;

/// Intervals below this are raised to it (a zero interval would spin).
pub const MIN_INTERVAL: Duration = Duration::from_millis(10);

/// Extra time granted to a prober past the check's timeout before the monitor
/// gives up on it (the real [`probe`] enforces the timeout itself; this only
/// guards against a misbehaving prober stalling a check forever).
const PROBE_GRACE: Duration = Duration::from_secs(1);

/// Everything needed to check one backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckSpec {
    /// What to probe.
    pub probe: Probe,
    /// Where to connect (the backend IP and the check port).
    pub target: SocketAddr,
    /// Time between the starts of two consecutive checks.
    pub interval: Duration,
    /// Deadline of one check.
    pub timeout: Duration,
    /// Consecutive passes needed to go from down to up.
    pub rise: u32,
    /// Consecutive failures needed to go from up to down.
    pub fall: u32,
    /// Initial state of a new backend: `true` = up until proven otherwise.
    pub start_up: bool,
}

impl CheckSpec {
    /// Whether `other` describes the same check: every field but the start state,
    /// which only a newly started check uses (a reload passes the current state there,
    /// and that must not restart a running check).
    fn same_check(&self, other: &CheckSpec) -> bool {
        let other = CheckSpec {
            start_up: self.start_up,
            ..other.clone()
        };
        *self == other
    }
}

/// A health state change (or initial state) of one backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthEvent {
    /// Which backend.
    pub key: BackendKey,
    /// The new state: `true` = up.
    pub up: bool,
    /// Why, e.g. `initial state (start = down)`, `3 consecutive passes`,
    /// `connection refused (2 consecutive failures)`.
    pub reason: String,
    /// Latency of the passing check that brought the backend up; `None` for
    /// initial and down events.
    pub latency: Option<Duration>,
}

/// Snapshot of one backend's health, for `lbctl health`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthStatus {
    /// Current state: `true` = up.
    pub up: bool,
    /// Text of the last outcome (`pass in 1.2ms`, `connection refused`, ...),
    /// or `not checked yet`.
    pub last: String,
    /// Latency of the last check if it passed.
    pub latency: Option<Duration>,
    /// Length of the current streak of identical results.
    pub consecutive: u32,
    /// Number of checks run since this check (re)started.
    pub checks: u64,
    /// Probes that could not be made on this host (out of descriptors, memory...)
    /// since this check (re)started; not counted in `checks`, never a failure.
    pub local_errors: u64,
    /// When the state last changed (or the check started).
    pub since: SystemTime,
}

/// Read-only handles on the checks' live statuses (see [`HealthMonitor::statuses`]).
#[derive(Clone, Debug, Default)]
pub struct Statuses(Arc<Vec<(BackendKey, Arc<Mutex<HealthStatus>>)>>);

impl Statuses {
    /// Current state of every checked backend, sorted by key.
    pub fn read(&self) -> Vec<(BackendKey, HealthStatus)> {
        self.0
            .iter()
            .map(|(k, s)| (k.clone(), lock(s).clone()))
            .collect()
    }
}

/// A running check task and its shared status.
struct Running {
    spec: CheckSpec,
    status: Arc<Mutex<HealthStatus>>,
    task: JoinHandle<()>,
}

/// Owns the health-check tasks of all backends. Dropping it stops them.
pub struct HealthMonitor {
    semaphore: Arc<Semaphore>,
    events: mpsc::Sender<HealthEvent>,
    prober: Prober,
    running: HashMap<BackendKey, Running>,
}

impl HealthMonitor {
    /// A monitor running at most `max_concurrent` probes at once (0 is
    /// treated as 1), sending events to `events`.
    pub fn new(max_concurrent: usize, events: mpsc::Sender<HealthEvent>) -> Self {
        let prober: Prober = Arc::new(|p: &Probe, target, timeout| {
            let p = p.clone();
            Box::pin(async move { probe(&p, target, timeout).await })
        });
        Self::with_prober(max_concurrent, events, prober)
    }

    /// Like [`HealthMonitor::new`] with a custom probe function (for tests).
    pub fn with_prober(
        max_concurrent: usize,
        events: mpsc::Sender<HealthEvent>,
        prober: Prober,
    ) -> Self {
        Self {
            semaphore: Arc::new(Semaphore::new(max_concurrent.max(1))),
            events,
            prober,
            running: HashMap::new(),
        }
    }

    /// Replace the whole set of checks (on start and reload). Keys that stay
    /// with an identical [`CheckSpec`] keep their task and state; changed or
    /// new keys start fresh (initial state from `start_up`, first check after a
    /// random jitter in `[0, interval)`); removed keys stop. If a key appears
    /// more than once, the last one wins.
    ///
    /// Must be called from within a Tokio runtime (it spawns tasks).
    pub fn set_checks(&mut self, checks: Vec<(BackendKey, CheckSpec)>) {
        let mut wanted: HashMap<BackendKey, CheckSpec> = HashMap::with_capacity(checks.len());
        for (key, spec) in checks {
            if wanted.insert(key.clone(), spec).is_some() {
                warn!(service = %key.0, backend = %key.1, "health: duplicate check, keeping the last one");
            }
        }

        let mut old = std::mem::take(&mut self.running);
        for (key, spec) in wanted {
            match old.remove(&key) {
                Some(r) if r.spec.same_check(&spec) && !r.task.is_finished() => {
                    self.running.insert(key, r);
                }
                previous => {
                    if let Some(r) = previous {
                        info!(service = %key.0, backend = %key.1, "health: check changed, restarting");
                        r.task.abort();
                    }
                    let r = self.spawn(key.clone(), spec);
                    self.running.insert(key, r);
                }
            }
        }
        for (key, r) in old {
            info!(service = %key.0, backend = %key.1, "health: check removed, stopping");
            r.task.abort();
        }
    }

    /// Current state of every checked backend, sorted by key.
    pub fn snapshot(&self) -> Vec<(BackendKey, HealthStatus)> {
        self.statuses().read()
    }

    /// Live handles on every running check's status, for observers that must not ask
    /// the monitor's owner: valid until the next [`set_checks`](Self::set_checks).
    pub fn statuses(&self) -> Statuses {
        let mut list: Vec<_> = self
            .running
            .iter()
            .map(|(k, r)| (k.clone(), r.status.clone()))
            .collect();
        list.sort_by(|a, b| a.0.cmp(&b.0));
        Statuses(Arc::new(list))
    }

    /// Start the check. `Running` keeps `spec` as configured, so the next
    /// [`set_checks`](Self::set_checks) compares like with like; only the task sees a
    /// raised interval.
    fn spawn(&self, key: BackendKey, spec: CheckSpec) -> Running {
        let mut task_spec = spec.clone();
        if task_spec.interval < MIN_INTERVAL {
            warn!(service = %key.0, backend = %key.1, interval = ?spec.interval, min = ?MIN_INTERVAL,
                "health: interval too short, raised");
            task_spec.interval = MIN_INTERVAL;
        }
        let status = Arc::new(Mutex::new(HealthStatus {
            up: spec.start_up,
            last: "not checked yet".to_string(),
            latency: None,
            consecutive: 0,
            checks: 0,
            local_errors: 0,
            since: SystemTime::now(),
        }));
        let ctx = CheckTask {
            key,
            jitter: jitter(task_spec.interval),
            spec: task_spec,
            status: status.clone(),
            semaphore: self.semaphore.clone(),
            events: self.events.clone(),
            prober: self.prober.clone(),
        };
        Running {
            spec,
            status,
            task: tokio::spawn(ctx.run()),
        }
    }
}

impl Drop for HealthMonitor {
    fn drop(&mut self) {
        for r in self.running.values() {
            r.task.abort();
        }
    }
}

impl std::fmt::Debug for HealthMonitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthMonitor")
            .field("checks", &self.running.len())
            .field("available_permits", &self.semaphore.available_permits())
            .finish_non_exhaustive()
    }
}

/// Lock a status mutex, ignoring poisoning (the data is a plain snapshot).
fn lock(m: &Mutex<HealthStatus>) -> MutexGuard<'_, HealthStatus> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A random delay in `[0, interval)`, spreading checks of many backends.
fn jitter(interval: Duration) -> Duration {
    let nanos = u64::try_from(interval.as_nanos()).unwrap_or(u64::MAX);
    if nanos == 0 {
        return Duration::ZERO;
    }
    // RandomState is seeded randomly per instance: good enough for jitter
    // without a dependency on a RNG crate.
    let r = RandomState::new().hash_one(SystemTime::now());
    Duration::from_nanos(r % nanos)
}

fn state_word(up: bool) -> &'static str {
    if up {
        "up"
    } else {
        "down"
    }
}

/// The state of one check task.
struct CheckTask {
    key: BackendKey,
    spec: CheckSpec,
    status: Arc<Mutex<HealthStatus>>,
    semaphore: Arc<Semaphore>,
    events: mpsc::Sender<HealthEvent>,
    prober: Prober,
    jitter: Duration,
}

impl CheckTask {
    async fn run(self) {
        let (service, backend) = (&self.key.0, self.key.1);
        let spec = &self.spec;
        let mut rise_fall = RiseFall::new(spec.rise, spec.fall, spec.start_up);
        let reason = format!("initial state (start = {})", state_word(spec.start_up));
        info!(%service, %backend, target = %spec.target, probe = spec.probe.kind(),
            up = spec.start_up, %reason, "health: check started");
        self.send(spec.start_up, reason, None).await;

        tokio::time::sleep(self.jitter).await;
        let mut ticker = tokio::time::interval(spec.interval);
        let mut local_streak: u64 = 0;
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let outcome = {
                let Ok(_permit) = self.semaphore.acquire().await else {
                    return; // semaphore closed: shutting down
                };
                let fut = (self.prober)(&spec.probe, spec.target, spec.timeout);
                match tokio::time::timeout(spec.timeout + PROBE_GRACE, fut).await {
                    Ok(outcome) => outcome,
                    Err(_) => Outcome::Fail {
                        reason: format!("timeout after {:?}", spec.timeout),
                    },
                }
            };
            if outcome.is_local() {
                // Not a check: the backend's state, streak and check count stay.
                lock(&self.status).local_errors += 1;
                local_streak += 1;
                if local_streak == 1 {
                    warn!(%service, %backend, outcome = %outcome,
                        "health: probe could not be made on this host; backend state kept, not counted as a failure (logged once until probes work again)");
                } else {
                    debug!(%service, %backend, outcome = %outcome, "health: probe not made");
                }
                lock(&self.status).last = outcome.to_string();
                continue;
            }
            if local_streak > 0 {
                info!(%service, %backend, local_errors = local_streak, "health: probes work again");
                local_streak = 0;
            }
            let transition = rise_fall.observe(&outcome);
            {
                let mut st = lock(&self.status);
                st.up = rise_fall.is_up();
                st.last = outcome.to_string();
                st.latency = outcome.latency();
                st.consecutive = rise_fall.consecutive();
                st.checks = st.checks.saturating_add(1);
                if transition.is_some() {
                    st.since = SystemTime::now();
                }
            }
            debug!(%service, %backend, outcome = %outcome, up = rise_fall.is_up(),
                consecutive = rise_fall.consecutive(), "health: check done");
            if let Some(t) = transition {
                if t.up {
                    info!(%service, %backend, reason = %t.reason, "health: backend up");
                } else {
                    warn!(%service, %backend, reason = %t.reason, "health: backend down");
                }
                let latency = if t.up { outcome.latency() } else { None };
                self.send(t.up, t.reason, latency).await;
            }
        }
    }

    async fn send(&self, up: bool, reason: String, latency: Option<Duration>) {
        let event = HealthEvent {
            key: self.key.clone(),
            up,
            reason,
            latency,
        };
        if self.events.send(event).await.is_err() {
            debug!(service = %self.key.0, backend = %self.key.1, "health: event receiver gone");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use tokio::time::Instant;

    /// A fake prober whose per-target result the test controls, recording
    /// every call.
    #[derive(Clone, Default)]
    struct Fake {
        down: Arc<Mutex<HashSet<SocketAddr>>>,
        calls: Arc<Mutex<Vec<(SocketAddr, Instant)>>>,
        /// Virtual time each probe takes.
        delay: Duration,
        in_flight: Arc<Mutex<(usize, usize)>>, // (current, max)
    }

    /// Counts a probe as in flight until dropped (also when the monitor
    /// abandons it at the timeout).
    struct InFlight(Arc<Mutex<(usize, usize)>>);

    impl InFlight {
        fn enter(counter: &Arc<Mutex<(usize, usize)>>) -> Self {
            let mut c = counter.lock().expect("lock");
            c.0 += 1;
            c.1 = c.1.max(c.0);
            Self(counter.clone())
        }
    }

    impl Drop for InFlight {
        fn drop(&mut self) {
            if let Ok(mut c) = self.0.lock() {
                c.0 -= 1;
            }
        }
    }

    impl Fake {
        fn prober(&self) -> Prober {
            let fake = self.clone();
            Arc::new(move |_p: &Probe, target, _timeout| {
                let fake = fake.clone();
                Box::pin(async move {
                    fake.calls
                        .lock()
                        .expect("lock")
                        .push((target, Instant::now()));
                    let _in_flight = InFlight::enter(&fake.in_flight);
                    tokio::time::sleep(fake.delay).await;
                    if fake.down.lock().expect("lock").contains(&target) {
                        Outcome::Fail {
                            reason: "fake refused".into(),
                        }
                    } else {
                        Outcome::Pass {
                            latency: Duration::from_millis(5),
                        }
                    }
                })
            })
        }

        fn set_down(&self, target: SocketAddr, down: bool) {
            let mut d = self.down.lock().expect("lock");
            if down {
                d.insert(target);
            } else {
                d.remove(&target);
            }
        }

        fn calls_to(&self, target: SocketAddr) -> Vec<Instant> {
            let calls = self.calls.lock().expect("lock");
            calls
                .iter()
                .filter(|c| c.0 == target)
                .map(|c| c.1)
                .collect()
        }
    }

    const INTERVAL: Duration = Duration::from_secs(10);

    fn key(n: u8) -> BackendKey {
        ("web".to_string(), IpAddr::from([10, 0, 0, n]))
    }

    fn target(n: u8) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, n], 80))
    }

    fn spec(n: u8, rise: u32, fall: u32, start_up: bool) -> CheckSpec {
        CheckSpec {
            probe: Probe::Tcp,
            target: target(n),
            interval: INTERVAL,
            timeout: Duration::from_secs(1),
            rise,
            fall,
            start_up,
        }
    }

    async fn next(rx: &mut mpsc::Receiver<HealthEvent>) -> HealthEvent {
        tokio::time::timeout(Duration::from_secs(3600), rx.recv())
            .await
            .expect("event within an hour of virtual time")
            .expect("channel open")
    }

    fn status(m: &HealthMonitor, k: &BackendKey) -> HealthStatus {
        m.snapshot()
            .into_iter()
            .find(|(key, _)| key == k)
            .map(|(_, s)| s)
            .expect("key in snapshot")
    }

    #[tokio::test(start_paused = true)]
    async fn interval_fall_and_rise() {
        let fake = Fake::default();
        let (tx, mut rx) = mpsc::channel(16);
        let mut m = HealthMonitor::with_prober(4, tx, fake.prober());
        m.set_checks(vec![(key(1), spec(1, 2, 3, true))]);

        let ev = next(&mut rx).await;
        assert_eq!(
            ev,
            HealthEvent {
                key: key(1),
                up: true,
                reason: "initial state (start = up)".into(),
                latency: None
            }
        );
        let st = status(&m, &key(1));
        assert!(st.up);
        assert_eq!((st.checks, st.last.as_str()), (0, "not checked yet"));

        // First check within one interval (jitter), then exactly every interval.
        let t0 = Instant::now();
        tokio::time::sleep(6 * INTERVAL).await;
        let calls = fake.calls_to(target(1));
        assert!((6..=7).contains(&calls.len()), "{} calls", calls.len());
        assert!(calls[0] - t0 < INTERVAL);
        for w in calls.windows(2) {
            assert_eq!(w[1] - w[0], INTERVAL);
        }
        let st = status(&m, &key(1));
        assert_eq!(st.checks, calls.len() as u64);
        assert_eq!(st.last, "pass in 5ms");
        assert_eq!(st.latency, Some(Duration::from_millis(5)));
        assert!(rx.try_recv().is_err(), "no event while steady");

        // Down after `fall` = 3 failures: 2 to 3 intervals after the flip.
        fake.set_down(target(1), true);
        let t1 = Instant::now();
        let ev = next(&mut rx).await;
        let waited = Instant::now() - t1;
        assert!(!ev.up);
        assert_eq!(ev.reason, "fake refused (3 consecutive failures)");
        assert_eq!(ev.latency, None);
        assert!(
            waited > 2 * INTERVAL && waited <= 3 * INTERVAL,
            "{waited:?}"
        );
        let st = status(&m, &key(1));
        assert!(!st.up);
        assert_eq!((st.last.as_str(), st.consecutive), ("fake refused", 3));

        // Up after `rise` = 2 passes.
        fake.set_down(target(1), false);
        let t2 = Instant::now();
        let ev = next(&mut rx).await;
        let waited = Instant::now() - t2;
        assert!(ev.up);
        assert_eq!(ev.reason, "2 consecutive passes");
        assert_eq!(ev.latency, Some(Duration::from_millis(5)));
        assert!(waited > INTERVAL && waited <= 2 * INTERVAL, "{waited:?}");
        assert!(rx.try_recv().is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn start_down_needs_rise() {
        let fake = Fake::default();
        let (tx, mut rx) = mpsc::channel(16);
        let mut m = HealthMonitor::with_prober(4, tx, fake.prober());
        m.set_checks(vec![(key(1), spec(1, 3, 1, false))]);
        let ev = next(&mut rx).await;
        assert_eq!(
            (ev.up, ev.reason.as_str()),
            (false, "initial state (start = down)")
        );
        let ev = next(&mut rx).await;
        assert_eq!((ev.up, ev.reason.as_str()), (true, "3 consecutive passes"));
        assert_eq!(fake.calls_to(target(1)).len(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn set_checks_keeps_restarts_and_stops() {
        let fake = Fake::default();
        let (tx, mut rx) = mpsc::channel(16);
        let mut m = HealthMonitor::with_prober(4, tx, fake.prober());
        m.set_checks(vec![
            (key(1), spec(1, 1, 1, true)),
            (key(2), spec(2, 1, 1, true)),
        ]);
        let mut initial: Vec<_> = vec![next(&mut rx).await.key, next(&mut rx).await.key];
        initial.sort();
        assert_eq!(initial, vec![key(1), key(2)]);

        tokio::time::sleep(3 * INTERVAL).await;
        let before = status(&m, &key(1)).checks;
        assert!(before >= 3);

        // Keep 1 unchanged, drop 2, add 3.
        m.set_checks(vec![
            (key(1), spec(1, 1, 1, true)),
            (key(3), spec(3, 1, 1, false)),
        ]);
        let ev = next(&mut rx).await;
        assert_eq!(
            (ev.key, ev.reason.as_str()),
            (key(3), "initial state (start = down)")
        );
        let removed_calls = fake.calls_to(target(2)).len();

        tokio::time::sleep(3 * INTERVAL).await;
        assert_eq!(
            fake.calls_to(target(2)).len(),
            removed_calls,
            "removed check stopped"
        );
        let keys: Vec<_> = m.snapshot().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, vec![key(1), key(3)]);
        assert!(
            status(&m, &key(1)).checks >= before + 3,
            "kept check kept its state"
        );
        // Key 3 came up (rise 1); no event for key 1.
        let ev = next(&mut rx).await;
        assert_eq!((ev.key, ev.up), (key(3), true));
        assert!(rx.try_recv().is_err());

        // A reload passes each backend's current state as the start state (key 3 is
        // up now): that is not a change, the running check keeps its counters.
        let checks_3 = status(&m, &key(3)).checks;
        m.set_checks(vec![
            (key(1), spec(1, 1, 1, true)),
            (key(3), spec(3, 1, 1, true)),
        ]);
        tokio::time::sleep(INTERVAL).await;
        assert!(
            status(&m, &key(3)).checks > checks_3,
            "key 3's check kept running, not restarted"
        );
        assert!(
            rx.try_recv().is_err(),
            "no initial-state event: nothing restarted"
        );

        // A changed spec restarts the check from scratch.
        m.set_checks(vec![
            (key(1), spec(1, 2, 1, false)),
            (key(3), spec(3, 1, 1, false)),
        ]);
        let ev = next(&mut rx).await;
        assert_eq!(
            (ev.key, ev.reason.as_str()),
            (key(1), "initial state (start = down)")
        );
        assert_eq!(status(&m, &key(1)).checks, 0);

        // Dropping the monitor stops everything.
        drop(m);
        tokio::task::yield_now().await;
        let total = fake.calls.lock().expect("lock").len();
        tokio::time::sleep(3 * INTERVAL).await;
        assert_eq!(fake.calls.lock().expect("lock").len(), total);
    }

    #[tokio::test(start_paused = true)]
    async fn concurrency_is_bounded() {
        let fake = Fake {
            delay: Duration::from_secs(4),
            ..Fake::default()
        };
        let (tx, _rx) = mpsc::channel(64);
        let mut m = HealthMonitor::with_prober(2, tx, fake.prober());
        m.set_checks((1..=8).map(|n| (key(n), spec(n, 1, 1, true))).collect());
        tokio::time::sleep(5 * INTERVAL).await;
        let (_, max) = *fake.in_flight.lock().expect("lock");
        assert_eq!(max, 2);
        assert!(fake.calls.lock().expect("lock").len() >= 8);
        // Probes overrunning timeout + grace are abandoned and count as failures.
        for (_, st) in m.snapshot() {
            assert_eq!((st.up, st.last.as_str()), (false, "timeout after 1s"));
        }
    }

    async fn recv_real(rx: &mut mpsc::Receiver<HealthEvent>) -> HealthEvent {
        tokio::time::timeout(Duration::from_secs(2), rx.recv())
            .await
            .expect("event in time")
            .expect("channel open")
    }

    /// End to end with the real TCP probe on a real clock (short interval).
    #[tokio::test]
    async fn real_tcp_backend() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, mut rx) = mpsc::channel(16);
        let mut m = HealthMonitor::new(4, tx);
        let k: BackendKey = ("web".into(), addr.ip());
        m.set_checks(vec![(
            k.clone(),
            CheckSpec {
                probe: Probe::Tcp,
                target: addr,
                interval: Duration::from_millis(50),
                timeout: Duration::from_millis(500),
                rise: 1,
                fall: 1,
                start_up: false,
            },
        )]);
        assert!(!recv_real(&mut rx).await.up);
        let ev = recv_real(&mut rx).await;
        assert_eq!(
            (ev.key.clone(), ev.up, ev.reason.as_str()),
            (k.clone(), true, "1 consecutive pass")
        );
        assert!(ev.latency.is_some());
        drop(listener);
        let ev = recv_real(&mut rx).await;
        assert!(!ev.up);
        assert_eq!(ev.reason, "connection refused (1 consecutive failure)");
    }
    /// A probe that cannot be made locally (EMFILE...) never takes a backend down:
    /// counted, the state kept.
    #[tokio::test(start_paused = true)]
    async fn local_errors_keep_the_state() {
        let prober: Prober = Arc::new(|_p: &Probe, _target, _timeout| {
            Box::pin(async {
                Outcome::Local {
                    reason: "connect: Too many open files (os error 24)".into(),
                }
            })
        });
        let (tx, mut rx) = mpsc::channel(16);
        let mut m = HealthMonitor::with_prober(4, tx, prober);
        m.set_checks(vec![(key(1), spec(1, 1, 1, true))]);
        assert!(next(&mut rx).await.up);
        tokio::time::sleep(10 * INTERVAL).await;
        assert!(rx.try_recv().is_err(), "no transition");
        let st = status(&m, &key(1));
        assert!(st.up);
        assert_eq!(st.checks, 0);
        assert!(st.local_errors >= 10, "{}", st.local_errors);
        assert!(
            st.last.starts_with("not checked (local error: "),
            "{}",
            st.last
        );
    }
}

//! lbd's observers: the control socket's read requests (`status`, `list`, `conns`,
//! `explain`, `health`, `vrrp`) and the metrics endpoint, answered from the latest
//! [`Snapshot`] the node published (names, weights, health, VRRP) plus the observer's own
//! read-only handle on the pinned maps (counters, tables, tracked connections). Nothing
//! here goes through the loop that owns the data plane: only writes
//! ([`Request::Reload`]) are handed to it ([`Routed::ToLoop`]).
//!
//! Map walks run on tokio's blocking pool ([`tokio::task::spawn_blocking`]), never on
//! the runtime's worker threads, and take no lock the loop needs (the observer's map
//! handle is its own). The one expensive read, the per-backend tracked-connection
//! counts, is one walk of the connection table shared by every request within
//! [`TRACKED_TTL`] (see [`PinnedMaps`]).

use std::{
    collections::HashMap,
    future::Future,
    net::SocketAddr,
    path::Path,
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime},
};

use tokio::{net::UnixListener, sync::watch};

use lb_api::{
    control::{self, Request, RequestTx, Response},
    fmt::protocol_name,
    view::{ConnView, Counters, ExplainView, HealthView, ServiceView, StatusView},
};
use lb_config::Config;
use lb_dataplane::{
    views::{self, ExplainError, TrackedCounts},
    Dataplane, DataplaneError, DataplaneRead,
};

use crate::{metrics::Scrape, node::snapshot::Snapshot};

/// How long one walk of the connection table serves the per-backend tracked counts of
/// `list` and metrics: requests within this time of the last walk's end reuse it, so a
/// client polling in a loop costs at most one walk per interval (at 1M entries a walk
/// takes about a second of one blocking-pool thread) instead of one per request.
pub const TRACKED_TTL: Duration = Duration::from_secs(1);

/// What the observers read from the data plane's maps: the pinned maps in lbd
/// ([`PinnedMaps`]), canned views in tests.
pub trait MapSource: Send + Sync + 'static {
    /// Services and backends as the maps hold them (no names, weights or health),
    /// with tracked-connection counts.
    fn services(&self) -> Result<Vec<ServiceView>, DataplaneError>;
    /// Tracked connections, at most `limit`.
    fn conns(&self, limit: usize) -> Result<Vec<ConnView>, DataplaneError>;
    /// Whether the data plane forwards (the config map's switch).
    fn forwarding(&self) -> Result<bool, DataplaneError>;
    /// Outcome counters by name.
    fn counters(&self) -> Result<Counters, DataplaneError>;
    /// Explain a flow against the maps (service named by its key only).
    fn explain(
        &self,
        src: SocketAddr,
        dst: SocketAddr,
        protocol: &str,
        syn: bool,
    ) -> Result<ExplainView, ExplainError>;
}

/// Tracked counts and when their walk finished.
type CachedCounts = Option<(Instant, Arc<TrackedCounts>)>;

/// A read-only handle on the maps lbd pinned, opened like lbctl's pinned fallback
/// ([`Dataplane::open_pinned`]), separate from the loop's own handle (any
/// [`DataplaneRead`] in tests: the in-memory data plane).
///
/// Tracked-connection counts are cached for [`TRACKED_TTL`]: one walk of the whole
/// connection table counts every backend at once ([`views::tracked_counts`]), and
/// concurrent requests that find the cache stale wait for the same walk instead of
/// starting their own. The counts are exact as of the walk, at most `TRACKED_TTL`
/// (plus one walk) old; nothing is sampled.
pub struct PinnedMaps<D: DataplaneRead + Send + 'static = Dataplane> {
    dp: Mutex<D>,
    tracked: Mutex<CachedCounts>,
    ttl: Duration,
}

/// A poisoned observer lock means a panic in a read: the data is maps, still valid.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl PinnedMaps {
    /// Open the maps pinned under `pin_dir` for reading. Fails if they are not pinned.
    pub fn open(pin_dir: &Path) -> Result<PinnedMaps, DataplaneError> {
        Ok(Self::new(Dataplane::open_pinned(pin_dir)?, TRACKED_TTL))
    }
}

impl<D: DataplaneRead + Send + 'static> PinnedMaps<D> {
    /// Observe through `dp` (a handle the loop does not use), caching tracked counts
    /// for `ttl`.
    pub fn new(dp: D, ttl: Duration) -> PinnedMaps<D> {
        PinnedMaps {
            dp: Mutex::new(dp),
            tracked: Mutex::new(None),
            ttl,
        }
    }

    /// The tracked counts, walking the table only if the cached ones are older than
    /// the TTL. The cache lock is held across the walk (single flight).
    fn tracked(&self, dp: &D) -> Result<Arc<TrackedCounts>, DataplaneError> {
        let mut cache = lock(&self.tracked);
        if let Some((at, counts)) = cache.as_ref() {
            if at.elapsed() < self.ttl {
                return Ok(counts.clone());
            }
        }
        let counts = Arc::new(views::tracked_counts(dp)?);
        *cache = Some((Instant::now(), counts.clone()));
        Ok(counts)
    }
}

impl<D: DataplaneRead + Send + 'static> MapSource for PinnedMaps<D> {
    fn services(&self) -> Result<Vec<ServiceView>, DataplaneError> {
        let dp = lock(&self.dp);
        let tracked = self.tracked(&dp)?;
        views::from_maps_with(&*dp, &tracked)
    }

    fn conns(&self, limit: usize) -> Result<Vec<ConnView>, DataplaneError> {
        let dp = lock(&self.dp);
        views::conns(&*dp, limit, dp.now_ns())
    }

    fn forwarding(&self) -> Result<bool, DataplaneError> {
        Ok(lock(&self.dp).config()?.forwarding != 0)
    }

    fn counters(&self) -> Result<Counters, DataplaneError> {
        views::counters(&*lock(&self.dp))
    }

    fn explain(
        &self,
        src: SocketAddr,
        dst: SocketAddr,
        protocol: &str,
        syn: bool,
    ) -> Result<ExplainView, ExplainError> {
        views::explain_flow(&*lock(&self.dp), src, dst, protocol, syn)
    }
}

/// Where a control request is answered.
#[derive(Debug)]
pub enum Routed {
    /// An observer answered it (a read).
    Read(Response),
    /// It changes the node: the loop must answer it.
    ToLoop(Request),
}

/// Answers read requests from snapshots and its own map handle. Cheap to clone (every
/// control connection and the metrics endpoint hold one).
pub struct Observer<M: MapSource = PinnedMaps> {
    snapshots: watch::Receiver<Arc<Snapshot>>,
    maps: Arc<M>,
}

impl<M: MapSource> Clone for Observer<M> {
    fn clone(&self) -> Self {
        Observer {
            snapshots: self.snapshots.clone(),
            maps: self.maps.clone(),
        }
    }
}

impl Observer<PinnedMaps> {
    /// An observer of the maps pinned under the snapshot's `pin_dir`, reading the
    /// snapshots the node publishes on `snapshots`.
    pub fn open(snapshots: watch::Receiver<Arc<Snapshot>>) -> Result<Self, DataplaneError> {
        let pin_dir = snapshots.borrow().config.global.pin_dir.clone();
        Ok(Observer::new(snapshots, PinnedMaps::open(&pin_dir)?))
    }
}

/// Run `f` on the blocking pool; a panic in it becomes an error message.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, String> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| format!("observer task failed: {e}"))
}

impl<M: MapSource> Observer<M> {
    /// An observer reading `snapshots` and `maps`.
    pub fn new(snapshots: watch::Receiver<Arc<Snapshot>>, maps: M) -> Self {
        Observer {
            snapshots,
            maps: Arc::new(maps),
        }
    }

    /// The latest snapshot (the watch's lock is released at once).
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshots.borrow().clone()
    }

    /// Answer `request` if it is a read (on the blocking pool), else hand it back for
    /// the loop.
    pub async fn answer(&self, request: Request) -> Routed {
        if matches!(request, Request::Reload | Request::Drain { .. }) {
            return Routed::ToLoop(request);
        }
        let (snap, maps) = (self.snapshot(), self.maps.clone());
        match blocking(move || read(&*maps, &snap, request)).await {
            Ok(routed) => routed,
            Err(message) => Routed::Read(Response::Error { message }),
        }
    }

    /// Answer `request`: reads here, writes through the loop at `loop_tx`.
    pub async fn respond(&self, request: Request, loop_tx: &RequestTx) -> Response {
        match self.answer(request).await {
            Routed::Read(response) => response,
            Routed::ToLoop(request) => control::ask(loop_tx, request).await,
        }
    }

    /// What one metrics scrape renders, all from one snapshot.
    pub async fn scrape(&self) -> Result<Scrape, String> {
        let (snap, maps) = (self.snapshot(), self.maps.clone());
        blocking(move || scrape(&*maps, &snap)).await?
    }
}

impl<M: MapSource> crate::metrics::Source for Observer<M> {
    fn scrape(&self) -> impl Future<Output = Result<Scrape, String>> + Send {
        Observer::scrape(self)
    }
}

/// Serve lbctl on `listener` forever: reads answered by `observer`, writes
/// ([`Request::Reload`]) by the loop at `loop_tx`. Same wire format as
/// [`control::serve`].
pub async fn serve<M: MapSource>(
    listener: UnixListener,
    observer: Observer<M>,
    loop_tx: RequestTx,
) {
    control::serve_with(listener, move |request| {
        let (observer, loop_tx) = (observer.clone(), loop_tx.clone());
        async move { observer.respond(request, &loop_tx).await }
    })
    .await
}

/// Answer a request from `snap` and `maps`, synchronously (callers run it off the
/// runtime's workers). Map errors become [`Response::Error`]; a write is handed back.
pub fn read<M: MapSource + ?Sized>(maps: &M, snap: &Snapshot, request: Request) -> Routed {
    let result: Result<Response, DataplaneError> = match request {
        Request::Reload | Request::Drain { .. } => return Routed::ToLoop(request),
        Request::Status => maps
            .forwarding()
            .and_then(|on| Ok((on, maps.counters()?)))
            .map(|(on, counters)| Response::Status(status_view(snap, on, counters))),
        Request::List => maps.services().map(|mut services| {
            enrich_services(&mut services, snap);
            Response::List { services }
        }),
        Request::Conns { limit } => maps.conns(limit).map(|conns| Response::Conns { conns }),
        Request::Explain {
            src,
            dst,
            protocol,
            syn,
        } => match maps.explain(src, dst, &protocol, syn) {
            Ok(mut view) => {
                name_explained(&mut view, &snap.config, dst, &protocol);
                Ok(Response::Explain(view))
            }
            Err(ExplainError::Dataplane(e)) => Err(e),
            Err(e) => Ok(Response::Error {
                message: e.to_string(),
            }),
        },
        Request::Health => Ok(Response::Health {
            backends: health_views(snap, SystemTime::now()),
        }),
        Request::Vrrp => Ok(Response::Vrrp {
            instances: snap.vrrp_views(),
        }),
        Request::Sync => Ok(Response::Sync(snap.sync_view())),
        Request::Bgp => Ok(Response::Bgp(snap.bgp_view())),
    };
    Routed::Read(result.unwrap_or_else(|e| Response::Error {
        message: e.to_string(),
    }))
}

/// Services, status, health and VRRP for one metrics scrape, from one snapshot.
pub fn scrape<M: MapSource + ?Sized>(maps: &M, snap: &Snapshot) -> Result<Scrape, String> {
    let err = |e: DataplaneError| e.to_string();
    let mut services = maps.services().map_err(err)?;
    enrich_services(&mut services, snap);
    Ok(Scrape {
        services,
        status: status_view(
            snap,
            maps.forwarding().map_err(err)?,
            maps.counters().map_err(err)?,
        ),
        health: health_views(snap, SystemTime::now()),
        vrrp: snap.vrrp_views(),
        sync: snap.sync_view(),
        bgp: snap.bgp_view(),
    })
}

/// `lbctl status`: the node as the snapshot describes it, with the data plane's
/// forwarding switch and outcome counters.
pub fn status_view(snap: &Snapshot, forwarding: bool, counters: Counters) -> StatusView {
    StatusView {
        node: snap.node.clone(),
        config: snap.config_path.display().to_string(),
        forwarding,
        interfaces: snap.interfaces.clone(),
        pin_dir: snap.config.global.pin_dir.display().to_string(),
        counters,
        last_reload: snap.last_reload.clone(),
    }
}

/// `lbctl health`: every checked backend's state, `since_s` counted up to `now`.
pub fn health_views(snap: &Snapshot, now: SystemTime) -> Vec<HealthView> {
    snap.health
        .read()
        .into_iter()
        .map(|((service, backend), s)| HealthView {
            service,
            backend,
            up: s.up,
            last: s.last,
            latency_us: s.latency.map(|l| l.as_micros() as u64),
            checks: s.checks,
            local_errors: s.local_errors,
            since_s: now
                .duration_since(s.since)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        })
        .collect()
}

/// Add what the maps do not know to their views: each service's configured name, each
/// backend's name, weight and health (`up: <last result>`, `down: <last result>`, `no
/// check`, or `removed from config` for a backend still in the maps but no longer
/// configured). Services not in the config are left as the maps show them.
pub fn enrich_services(services: &mut [ServiceView], snap: &Snapshot) {
    let health: HashMap<lb_health::BackendKey, String> = snap
        .health
        .read()
        .into_iter()
        .map(|(k, s)| {
            (
                k,
                format!("{}: {}", if s.up { "up" } else { "down" }, s.last),
            )
        })
        .collect();
    for view in services {
        let Some(svc) = snap.config.services.iter().find(|s| {
            s.vip == view.vip
                && s.port == view.port
                && protocol_name(s.protocol.number()) == view.protocol
        }) else {
            continue;
        };
        view.name = Some(svc.name.clone());
        for b in &mut view.backends {
            if let Some(conf) = svc.backends.iter().find(|c| c.address == b.address) {
                b.name = conf.name.clone();
                b.weight = Some(conf.weight);
                b.health = Some(
                    health
                        .get(&(svc.name.clone(), b.address))
                        .cloned()
                        .unwrap_or_else(|| "no check".into()),
                );
            } else {
                b.health = Some("removed from config".into());
            }
        }
    }
}

/// Name the service an explained flow to `dst` over `protocol` hit, as
/// `<name> (<vip:port/proto>)`, looking the config up in the data plane's order: the
/// service on the exact port, then the whole-VIP service (port 0).
pub fn name_explained(view: &mut ExplainView, config: &Config, dst: SocketAddr, protocol: &str) {
    if view.service.is_none() {
        return;
    }
    let on_vip = |port: u16| {
        config.services.iter().find(|s| {
            s.vip == dst.ip() && protocol_name(s.protocol.number()) == protocol && s.port == port
        })
    };
    if let Some(svc) = on_vip(dst.port()).or_else(|| on_vip(0)) {
        view.service = Some(format!(
            "{} ({})",
            svc.name,
            view.service.take().unwrap_or_default()
        ));
    }
}

#[cfg(test)]
mod tests {
    use std::{net::IpAddr, path::PathBuf, sync::Mutex as StdMutex};

    use lb_api::view::{BackendView, Traffic};
    use lb_health::{CheckSpec, HealthMonitor, Outcome, Probe, Prober};

    use super::*;
    use crate::node::snapshot::VrrpSource;

    const CONFIG: &str = r#"
[global]
node_name = "lb1"
pin_dir = "/sys/fs/bpf/lbd-test"

[[interface]]
name = "eth0"

[[service]]
name = "web"
vip = "198.51.100.10"
port = 80
protocol = "tcp"
[service.health]
kind = "tcp"
[[service.backend]]
address = "10.0.0.1"
name = "b1"
weight = 100
[[service.backend]]
address = "10.0.0.2"
weight = 50

[[service]]
name = "web-all-ports"
vip = "198.51.100.10"
port = 0
protocol = "tcp"
health = { kind = "none" }
[[service.backend]]
address = "10.0.0.3"

[[service]]
name = "dns"
vip = "198.51.100.10"
port = 53
protocol = "udp"
health = { kind = "none" }
[[service.backend]]
address = "10.0.0.4"

[[vrrp]]
name = "VI_1"
interface = "eth0"
virtual_router_id = 51
priority = 150
virtual_addresses = ["198.51.100.10/24"]
"#;

    fn config() -> Config {
        lb_config::parse(CONFIG, Path::new("test.toml")).expect("test config parses")
    }

    /// A monitor whose probes never finish: every check stays at its start state.
    fn monitor(checks: &[(&str, &str, bool)]) -> HealthMonitor {
        let (tx, _rx) = tokio::sync::mpsc::channel(8);
        let prober: Prober =
            Arc::new(|_: &Probe, _, _| Box::pin(std::future::pending::<Outcome>()));
        let mut m = HealthMonitor::with_prober(4, tx, prober);
        m.set_checks(
            checks
                .iter()
                .map(|(svc, addr, up)| {
                    let ip: IpAddr = addr.parse().expect("address");
                    (
                        (svc.to_string(), ip),
                        CheckSpec {
                            probe: Probe::Tcp,
                            target: SocketAddr::new(ip, 80),
                            interval: Duration::from_secs(3600),
                            timeout: Duration::from_secs(1),
                            rise: 1,
                            fall: 1,
                            start_up: *up,
                        },
                    )
                })
                .collect(),
        );
        m
    }

    fn snapshot(m: &HealthMonitor) -> Snapshot {
        let config = config();
        let vrrp = config
            .vrrp
            .iter()
            .map(|v| VrrpSource {
                config: v.clone(),
                status: Arc::new(StdMutex::new(crate::daemon::vrrp::Status {
                    state: "MASTER".into(),
                    priority: 150,
                    ..Default::default()
                })),
                tracking: vec!["service web: 2/2 healthy".into()],
            })
            .collect();
        Snapshot {
            node: "lb1".into(),
            config_path: PathBuf::from("/etc/lbd/lbd.toml"),
            config: Arc::new(config),
            interfaces: vec![("eth0".into(), "driver".into())],
            last_reload: "started".into(),
            health: m.statuses(),
            vrrp,
            sync: None,
            bgp: None,
        }
    }

    fn backend(address: &str, index: u16, tracked: usize) -> BackendView {
        BackendView {
            address: address.parse().expect("address"),
            name: None,
            index,
            weight: None,
            state: "up".into(),
            slots: 10,
            health: None,
            mac: None,
            ifindex: 2,
            tracked,
            traffic: Traffic::default(),
        }
    }

    fn service(port: u16, protocol: &str, backends: Vec<BackendView>) -> ServiceView {
        ServiceView {
            name: None,
            vip: "198.51.100.10".parse().expect("vip"),
            port,
            protocol: protocol.into(),
            scheduler: "maglev".into(),
            id: u32::from(port),
            table_size: 251,
            dirty_slots: 0,
            traffic: Traffic::default(),
            backends,
        }
    }

    /// Canned map views; counts the reads so tests can see what was asked.
    struct FakeMaps {
        services: Vec<ServiceView>,
        explained: ExplainView,
        reads: StdMutex<usize>,
    }

    impl FakeMaps {
        fn new() -> FakeMaps {
            FakeMaps {
                services: vec![
                    service(
                        80,
                        "tcp",
                        vec![
                            backend("10.0.0.1", 0, 3),
                            backend("10.0.0.2", 1, 0),
                            backend("10.0.0.9", 2, 1),
                        ],
                    ),
                    service(53, "udp", vec![backend("10.0.0.4", 3, 0)]),
                    // In the maps, not (or no longer) in the config.
                    ServiceView {
                        vip: "203.0.113.1".parse().expect("vip"),
                        ..service(443, "tcp", vec![backend("10.0.0.7", 4, 0)])
                    },
                ],
                explained: ExplainView {
                    verdict: "forward".into(),
                    service: Some("198.51.100.10:0/tcp".into()),
                    backend: Some("10.0.0.3".parse().expect("backend")),
                    backend_index: Some(5),
                    slot: Some(7),
                    reason: "Maglev slot 7 belongs to this backend".into(),
                },
                reads: StdMutex::new(0),
            }
        }
    }

    impl MapSource for FakeMaps {
        fn services(&self) -> Result<Vec<ServiceView>, DataplaneError> {
            *lock(&self.reads) += 1;
            Ok(self.services.clone())
        }
        fn conns(&self, _limit: usize) -> Result<Vec<ConnView>, DataplaneError> {
            Ok(Vec::new())
        }
        fn forwarding(&self) -> Result<bool, DataplaneError> {
            Ok(true)
        }
        fn counters(&self) -> Result<Counters, DataplaneError> {
            Ok(Counters(vec![("forwarded".into(), 7)]))
        }
        fn explain(
            &self,
            _src: SocketAddr,
            _dst: SocketAddr,
            protocol: &str,
            _syn: bool,
        ) -> Result<ExplainView, ExplainError> {
            match protocol {
                "tcp" | "udp" => Ok(self.explained.clone()),
                other => Err(ExplainError::Protocol(other.into())),
            }
        }
    }

    #[tokio::test]
    async fn list_adds_names_weights_and_health() {
        let m = monitor(&[("web", "10.0.0.1", true), ("web", "10.0.0.2", false)]);
        let snap = snapshot(&m);
        let mut services = FakeMaps::new().services;
        enrich_services(&mut services, &snap);

        let web = &services[0];
        assert_eq!(web.name.as_deref(), Some("web"));
        let b = &web.backends;
        assert_eq!(b[0].name.as_deref(), Some("b1"));
        assert_eq!(b[0].weight, Some(100));
        assert_eq!(b[0].health.as_deref(), Some("up: not checked yet"));
        assert_eq!(b[0].tracked, 3, "counts are the maps'");
        assert_eq!(b[1].name, None);
        assert_eq!(b[1].weight, Some(50));
        assert_eq!(b[1].health.as_deref(), Some("down: not checked yet"));
        assert_eq!(b[2].health.as_deref(), Some("removed from config"));
        assert_eq!(b[2].weight, None);

        // Same VIP, other protocol and port: its own service, no check.
        let dns = &services[1];
        assert_eq!(dns.name.as_deref(), Some("dns"));
        assert_eq!(dns.backends[0].weight, Some(1));
        assert_eq!(dns.backends[0].health.as_deref(), Some("no check"));

        // Unknown to the config: as the maps show it.
        assert_eq!(services[2].name, None);
        assert_eq!(services[2].backends[0].health, None);
    }

    #[tokio::test]
    async fn explain_names_the_service_in_data_plane_order() {
        let m = monitor(&[]);
        let snap = snapshot(&m);
        let mut view = FakeMaps::new().explained;
        let label = view.service.clone();
        // Port 80 has its own service: it wins over the whole-VIP one.
        name_explained(
            &mut view,
            &snap.config,
            "198.51.100.10:80".parse().expect("dst"),
            "tcp",
        );
        assert_eq!(
            view.service,
            Some(format!("web ({})", label.clone().unwrap_or_default()))
        );

        // Port 8080 has none: the port-0 service.
        let mut view = FakeMaps::new().explained;
        name_explained(
            &mut view,
            &snap.config,
            "198.51.100.10:8080".parse().expect("dst"),
            "tcp",
        );
        assert_eq!(
            view.service,
            Some(format!(
                "web-all-ports ({})",
                label.clone().unwrap_or_default()
            ))
        );

        // UDP 53 is the dns service; UDP 54 has no service at all (no port-0 UDP one).
        let mut view = FakeMaps::new().explained;
        name_explained(
            &mut view,
            &snap.config,
            "198.51.100.10:53".parse().expect("dst"),
            "udp",
        );
        assert!(view
            .service
            .as_deref()
            .is_some_and(|s| s.starts_with("dns (")));
        let mut view = FakeMaps::new().explained;
        name_explained(
            &mut view,
            &snap.config,
            "198.51.100.10:54".parse().expect("dst"),
            "udp",
        );
        assert_eq!(view.service, label);

        // Not a service in the maps: nothing to name.
        let mut view = ExplainView {
            service: None,
            ..FakeMaps::new().explained
        };
        name_explained(
            &mut view,
            &snap.config,
            "198.51.100.10:80".parse().expect("dst"),
            "tcp",
        );
        assert_eq!(view.service, None);
    }

    #[tokio::test]
    async fn reads_are_answered_here_and_reload_goes_to_the_loop() {
        let m = monitor(&[("web", "10.0.0.1", true)]);
        let (_tx, rx) = watch::channel(Arc::new(snapshot(&m)));
        let observer = Observer::new(rx, FakeMaps::new());

        match observer.answer(Request::Status).await {
            Routed::Read(Response::Status(s)) => {
                assert_eq!(s.node, "lb1");
                assert_eq!(s.config, "/etc/lbd/lbd.toml");
                assert!(s.forwarding);
                assert_eq!(s.pin_dir, "/sys/fs/bpf/lbd-test");
                assert_eq!(s.interfaces, vec![("eth0".into(), "driver".into())]);
                assert_eq!(s.counters, Counters(vec![("forwarded".into(), 7)]));
                assert_eq!(s.last_reload, "started");
            }
            other => panic!("{other:?}"),
        }
        match observer.answer(Request::Health).await {
            Routed::Read(Response::Health { backends }) => {
                assert_eq!(backends.len(), 1);
                assert_eq!(backends[0].service, "web");
                assert!(backends[0].up);
                assert_eq!(backends[0].checks, 0);
            }
            other => panic!("{other:?}"),
        }
        match observer.answer(Request::Vrrp).await {
            Routed::Read(Response::Vrrp { instances }) => {
                assert_eq!(instances.len(), 1);
                assert_eq!(instances[0].name, "VI_1");
                assert_eq!(instances[0].state, "MASTER");
                assert_eq!(
                    instances[0].tracking,
                    vec!["service web: 2/2 healthy".to_string()]
                );
            }
            other => panic!("{other:?}"),
        }
        let explain = |protocol: &str| Request::Explain {
            src: "192.0.2.1:4000".parse().expect("src"),
            dst: "198.51.100.10:80".parse().expect("dst"),
            protocol: protocol.into(),
            syn: true,
        };
        match observer.answer(explain("tcp")).await {
            Routed::Read(Response::Explain(v)) => {
                assert!(v.service.is_some_and(|s| s.starts_with("web (")))
            }
            other => panic!("{other:?}"),
        }
        match observer.answer(explain("sctp")).await {
            Routed::Read(Response::Error { message }) => assert!(message.contains("sctp")),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            observer.answer(Request::Reload).await,
            Routed::ToLoop(Request::Reload)
        ));
    }

    #[tokio::test]
    async fn a_new_snapshot_is_seen_by_the_next_request() {
        let m = monitor(&[]);
        let first = snapshot(&m);
        let (tx, rx) = watch::channel(Arc::new(first.clone()));
        let observer = Observer::new(rx, FakeMaps::new());
        tx.send_replace(Arc::new(Snapshot {
            last_reload: "reloaded".into(),
            ..first
        }));
        match observer.answer(Request::Status).await {
            Routed::Read(Response::Status(s)) => assert_eq!(s.last_reload, "reloaded"),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn scrape_takes_everything_from_one_snapshot() {
        let m = monitor(&[("web", "10.0.0.1", true), ("web", "10.0.0.2", false)]);
        let (_tx, rx) = watch::channel(Arc::new(snapshot(&m)));
        let observer = Observer::new(rx, FakeMaps::new());
        let s = observer.scrape().await.expect("scrape");
        assert_eq!(s.services[0].name.as_deref(), Some("web"));
        assert_eq!(s.health.len(), 2);
        assert_eq!(s.vrrp.len(), 1);
        assert!(s.status.forwarding);
        let text =
            crate::metrics::render(&s.services, &s.status, &s.health, &s.vrrp, &s.sync, &s.bgp);
        assert!(
            text.contains(r#"lb_backend_weight{service="web",backend="10.0.0.1"} 100"#),
            "{text}"
        );
        assert!(
            text.contains(r#"lb_backend_tracked_connections{service="web",backend="10.0.0.1"} 3"#),
            "{text}"
        );
    }

    /// The control socket: reads never reach the loop; reload does.
    #[tokio::test]
    async fn serve_routes_reads_to_the_observer_and_reload_to_the_loop() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("lbd.sock");
        let listener = control::bind(&path).expect("bind");
        let m = monitor(&[]);
        let (_snap_tx, rx) = watch::channel(Arc::new(snapshot(&m)));
        let observer = Observer::new(rx, FakeMaps::new());
        let (loop_tx, mut loop_rx) =
            tokio::sync::mpsc::channel::<(Request, tokio::sync::oneshot::Sender<Response>)>(4);
        let seen = Arc::new(StdMutex::new(Vec::new()));
        let fake_loop = {
            let seen = seen.clone();
            tokio::spawn(async move {
                while let Some((request, reply)) = loop_rx.recv().await {
                    lock(&seen).push(request);
                    let _ = reply.send(Response::Done {
                        message: "reloaded".into(),
                    });
                }
            })
        };
        let server = tokio::spawn(serve(listener, observer, loop_tx));

        let list = control::call(&path, &Request::List).await.expect("list");
        match list {
            Response::List { services } => assert_eq!(services[0].name.as_deref(), Some("web")),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            control::call(&path, &Request::Vrrp).await.expect("vrrp"),
            Response::Vrrp { .. }
        ));
        assert!(lock(&seen).is_empty(), "reads went to the loop");
        match control::call(&path, &Request::Reload)
            .await
            .expect("reload")
        {
            Response::Done { message } => assert_eq!(message, "reloaded"),
            other => panic!("{other:?}"),
        }
        assert_eq!(*lock(&seen), vec![Request::Reload]);
        server.abort();
        fake_loop.abort();
    }

    /// One walk counts every backend; within the TTL the walk is not repeated.
    #[test]
    fn tracked_counts_are_one_walk_cached_for_the_ttl() {
        use lb_common::maps::{ConnKey, ConnValue};
        use lb_dataplane::memory::MemoryDataplane;

        let conn = |sport: u16, backend: u16, gen: u32| {
            (
                ConnKey {
                    src: [0, 0, 0, 1],
                    dst: [0, 0, 0, 2],
                    sport,
                    dport: 80,
                    proto: lb_common::maps::proto::TCP,
                    _pad: 0,
                    _pad2: 0,
                },
                ConnValue {
                    backend,
                    flags: 0,
                    gen,
                    last_seen_ns: 0,
                },
            )
        };
        let mut dp = MemoryDataplane::new(4);
        dp.conns
            .extend([conn(1, 0, 1), conn(2, 0, 1), conn(3, 0, 2), conn(4, 1, 1)]);
        let maps = PinnedMaps::new(dp, Duration::from_secs(3600));
        let counts = maps.tracked(&lock(&maps.dp)).expect("counts");
        assert_eq!(counts.get(&(0, 1)), Some(&2));
        assert_eq!(
            counts.get(&(0, 2)),
            Some(&1),
            "another generation of index 0"
        );
        assert_eq!(counts.get(&(1, 1)), Some(&1));

        // A new connection is not seen until the TTL has passed.
        let (k, v) = conn(5, 1, 1);
        lock(&maps.dp).conns.insert(k, v);
        let again = maps.tracked(&lock(&maps.dp)).expect("counts");
        assert!(Arc::ptr_eq(&counts, &again), "cached");
        *lock(&maps.tracked) = None; // as if the TTL had passed
        let fresh = maps.tracked(&lock(&maps.dp)).expect("counts");
        assert_eq!(fresh.get(&(1, 1)), Some(&2));

        // With a zero TTL every read walks.
        let maps = PinnedMaps::new(MemoryDataplane::new(4), Duration::ZERO);
        let a = maps.tracked(&lock(&maps.dp)).expect("counts");
        let b = maps.tracked(&lock(&maps.dp)).expect("counts");
        assert!(!Arc::ptr_eq(&a, &b));
        assert!(maps.services().expect("services").is_empty());
    }
}

//! The Prometheus endpoint of lbd: `GET /metrics` over HTTP/1.1.
//!
//! Nothing is kept between scrapes: each scrape takes the service list, the status, the
//! health of every backend and the VRRP instances from a [`Source`] (in lbd, the
//! observer of `crate::observe`, which reads the node's latest snapshot and its own
//! map handle: a scrape never waits for lbd's main loop), and [`render`] turns them
//! into a fresh `prometheus-client` registry encoded in the text exposition format (OpenMetrics
//! flavour, which Prometheus negotiates). The counters are the data plane's own, so
//! they survive restarts of lbd; they restart from zero only when the maps do.
//!
//! Exported series (labels in braces):
//! - `lb_service_packets_total`, `lb_service_bytes_total`, `lb_service_new_flows_total`
//!   `{service,vip,port,protocol}`, `lb_service_dirty_slots` (gauge) with the same labels;
//! - `lb_backend_packets_total`, `lb_backend_bytes_total`, `lb_backend_new_flows_total`,
//!   `lb_backend_tracked_connections`, `lb_backend_weight` `{service,backend}`,
//!   `lb_backend_state{service,backend,state}` (1 for the current state, 0 for the others);
//! - `lb_backend_up`, `lb_health_check_latency_seconds`, `lb_health_checks_total`
//!   `{service,backend}` from the health checker, and
//!   `lb_health_check_local_errors_total` (probes lbd could not make: out of
//!   descriptors, memory...; never counted as a backend failure);
//! - `lb_dataplane_packets_total{outcome}` and `lb_forwarding`.

use std::{convert::Infallible, net::SocketAddr, sync::atomic::AtomicU64, time::Duration};

use http_body_util::Full;
use hyper::{
    body::{Bytes, Incoming},
    header::{HeaderValue, ALLOW, CONTENT_TYPE},
    server::conn::http1,
    service::service_fn,
    Method, StatusCode,
};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::{
    encoding::text::encode,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::{Registry, Unit},
};
use tokio::net::TcpListener;

use lb_api::view::{BgpView, HealthView, ServiceView, StatusView, SyncView, VrrpView};

/// The content type of [`render`]'s output.
pub const CONTENT_TYPE_OPENMETRICS: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// How long a scrape waits for its [`Source`] before answering 503.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a client may take to send its request headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Backend states exported by `lb_backend_state` (besides any other state seen).
const STATES: [&str; 3] = ["up", "draining", "down"];

type Labels = Vec<(&'static str, String)>;

/// Everything one scrape shows.
#[derive(Clone, Debug)]
pub struct Scrape {
    /// Services and backends with their counters, names, weights and health.
    pub services: Vec<ServiceView>,
    /// lbd's status (forwarding, outcome counters).
    pub status: StatusView,
    /// Health of every checked backend.
    pub health: Vec<HealthView>,
    /// VRRP instances.
    pub vrrp: Vec<VrrpView>,
    /// The flow sync.
    pub sync: SyncView,
    /// The BGP announcer.
    pub bgp: BgpView,
}

/// Where the metrics endpoint takes a scrape's data from.
pub trait Source: Clone + Send + Sync + 'static {
    /// Everything one scrape shows, or why it cannot be had (answered with 503).
    fn scrape(&self) -> impl std::future::Future<Output = Result<Scrape, String>> + Send;
}

fn counter_family(reg: &mut Registry, name: &str, help: &str) -> Family<Labels, Counter> {
    let family = Family::<Labels, Counter>::default();
    reg.register(name, help, family.clone());
    family
}

/// The flow sync's `lb_sync_*` metrics.
fn sync_metrics(reg: &mut Registry, sync: &SyncView) {
    let totals = counter_family(
        reg,
        "lb_sync_entries",
        "Connection entries synced, by direction (sent, received, dropped = queue full)",
    );
    for (dir, n) in [
        ("sent", sync.entries_sent),
        ("received", sync.entries_received),
        ("dropped", sync.entries_dropped),
    ] {
        totals
            .get_or_create(&vec![("direction", dir.into())])
            .inc_by(n);
    }
    counter_family(reg, "lb_sync_datagrams_sent", "Sync datagrams sent")
        .get_or_create(&vec![])
        .inc_by(sync.datagrams_sent);
    let rejected = counter_family(
        reg,
        "lb_sync_rejected_datagrams",
        "Sync datagrams dropped, by reason (bad tag, replay, truncated...)",
    );
    for (reason, n) in &sync.rejected {
        rejected
            .get_or_create(&vec![("reason", reason.clone())])
            .inc_by(*n);
    }
    let resyncs = counter_family(
        reg,
        "lb_sync_resyncs",
        "Full resyncs, by role (requested from peers, served to peers)",
    );
    resyncs
        .get_or_create(&vec![("role", "requested".into())])
        .inc_by(sync.resyncs_requested);
    resyncs
        .get_or_create(&vec![("role", "served".into())])
        .inc_by(sync.resyncs_served);
    gauge_family(reg, "lb_sync_queue", "Entries waiting to be sent")
        .get_or_create(&vec![])
        .set(sync.queue as i64);
    let alive = gauge_family(reg, "lb_sync_peer_up", "1 while the peer is alive");
    let seen = gauge_family(
        reg,
        "lb_sync_peer_last_seen_seconds",
        "Seconds since the peer's last valid message",
    );
    for p in &sync.peers {
        let labels = vec![("peer", p.address.to_string())];
        alive
            .get_or_create(&labels)
            .set(i64::from(p.state == "alive"));
        if let Some(s) = p.last_seen_secs {
            seen.get_or_create(&labels).set(s as i64);
        }
    }
}

/// The BGP announcer's `lb_bgp_*` metrics.
fn bgp_metrics(reg: &mut Registry, bgp: &BgpView) {
    let wanted = gauge_family(
        reg,
        "lb_bgp_vip_wanted",
        "1 while lbd wants the VIP announced (it can serve it), by VIP",
    );
    let announced = gauge_family(
        reg,
        "lb_bgp_vip_announced",
        "1 while the speaker was last told to announce the VIP, by VIP",
    );
    for v in &bgp.vips {
        let labels = vec![("vip", v.vip.to_string())];
        wanted.get_or_create(&labels).set(i64::from(v.wanted));
        announced.get_or_create(&labels).set(i64::from(v.announced));
    }
    gauge_family(
        reg,
        "lb_bgp_speaker_ok",
        "1 while the speaker is reachable and holds what lbd wants",
    )
    .get_or_create(&vec![])
    .set(i64::from(bgp.speaker_ok));
    gauge_family(reg, "lb_bgp_draining", "1 while this node drains")
        .get_or_create(&vec![])
        .set(i64::from(bgp.draining));
    counter_family(
        reg,
        "lb_bgp_speaker_errors",
        "Requests to the speaker that failed (each is retried)",
    )
    .get_or_create(&vec![])
    .inc_by(bgp.errors);
    counter_family(
        reg,
        "lb_bgp_announcement_changes",
        "VIPs announced or withdrawn",
    )
    .get_or_create(&vec![])
    .inc_by(bgp.changes);
    let session = gauge_family(
        reg,
        "lb_bgp_session_up",
        "1 while the speaker reports the BGP session up, by session",
    );
    for x in bgp.sessions.iter().filter(|x| !x.name.is_empty()) {
        session
            .get_or_create(&vec![("session", x.name.clone())])
            .set(i64::from(x.state == "up"));
    }
}

fn gauge_family(reg: &mut Registry, name: &str, help: &str) -> Family<Labels, Gauge> {
    let family = Family::<Labels, Gauge>::default();
    reg.register(name, help, family.clone());
    family
}

fn gauge_i64(v: impl TryInto<i64>) -> i64 {
    v.try_into().unwrap_or(i64::MAX)
}

/// The `service` label of a service: its configured name, else `vip:port/protocol`.
fn service_label(s: &ServiceView) -> String {
    match &s.name {
        Some(name) => name.clone(),
        None => format!("{}/{}", lb_api::fmt::endpoint(s.vip, s.port), s.protocol),
    }
}

/// Encode one scrape: services and backends with their counters, lbd's status and the
/// health of every backend, in the Prometheus (OpenMetrics) text format, `# EOF` last.
pub fn render(
    services: &[ServiceView],
    status: &StatusView,
    health: &[HealthView],
    vrrp: &[VrrpView],
    sync: &SyncView,
    bgp: &BgpView,
) -> String {
    let mut reg = Registry::default();
    if sync.enabled {
        sync_metrics(&mut reg, sync);
    }
    if bgp.enabled {
        bgp_metrics(&mut reg, bgp);
    }
    let vrrp_state = gauge_family(
        &mut reg,
        "lb_vrrp_state",
        "1 for the VRRP instance's current state (MASTER, BACKUP, FAULT, INIT/STOP)",
    );
    let vrrp_priority = gauge_family(
        &mut reg,
        "lb_vrrp_priority",
        "Effective VRRP priority (after tracking)",
    );
    let vrrp_master = gauge_family(
        &mut reg,
        "lb_vrrp_master",
        "1 for the address this node sees as the VRRP master",
    );
    let vrrp_transitions =
        counter_family(&mut reg, "lb_vrrp_transitions", "VRRP state transitions");
    let vrrp_adverts = counter_family(
        &mut reg,
        "lb_vrrp_adverts",
        "VRRP adverts by direction (received = accepted)",
    );
    let vrrp_dropped = counter_family(
        &mut reg,
        "lb_vrrp_dropped_adverts",
        "VRRP adverts dropped, by reason",
    );
    for v in vrrp {
        let instance: Labels = vec![("instance", v.name.clone())];
        for state in ["MASTER", "BACKUP", "FAULT", "INIT", "STOP"] {
            let mut l = instance.clone();
            l.push(("state", state.to_owned()));
            vrrp_state
                .get_or_create(&l)
                .set(i64::from(v.state == state));
        }
        vrrp_priority
            .get_or_create(&instance)
            .set(i64::from(v.priority));
        if let Some(m) = v.master {
            let mut l = instance.clone();
            l.push(("master", m.to_string()));
            vrrp_master.get_or_create(&l).set(1);
        }
        vrrp_transitions
            .get_or_create(&instance)
            .inc_by(v.transitions);
        for (dir, n) in [("received", v.adverts_received), ("sent", v.adverts_sent)] {
            let mut l = instance.clone();
            l.push(("direction", dir.to_owned()));
            vrrp_adverts.get_or_create(&l).inc_by(n);
        }
        for (reason, n) in &v.dropped {
            let mut l = instance.clone();
            l.push(("reason", reason.clone()));
            vrrp_dropped.get_or_create(&l).inc_by(*n);
        }
    }

    let svc_packets = counter_family(
        &mut reg,
        "lb_service_packets",
        "Packets the data plane forwarded for the service",
    );
    let svc_bytes = counter_family(
        &mut reg,
        "lb_service_bytes",
        "Bytes the data plane forwarded for the service",
    );
    let svc_flows = counter_family(
        &mut reg,
        "lb_service_new_flows",
        "New flows (TCP SYNs) the data plane forwarded for the service",
    );
    let svc_dirty = gauge_family(
        &mut reg,
        "lb_service_dirty_slots",
        "Maglev slots of the service that moved in a recent change and still consult the connection table",
    );
    let be_packets = counter_family(
        &mut reg,
        "lb_backend_packets",
        "Packets the data plane forwarded to the backend",
    );
    let be_bytes = counter_family(
        &mut reg,
        "lb_backend_bytes",
        "Bytes the data plane forwarded to the backend",
    );
    let be_flows = counter_family(
        &mut reg,
        "lb_backend_new_flows",
        "New flows (TCP SYNs) the data plane sent to the backend",
    );
    let be_tracked = gauge_family(
        &mut reg,
        "lb_backend_tracked_connections",
        "Connections the data plane's connection table tracks to the backend",
    );
    let be_weight = gauge_family(
        &mut reg,
        "lb_backend_weight",
        "Configured weight of the backend",
    );
    let be_state = gauge_family(
        &mut reg,
        "lb_backend_state",
        "Data-plane state of the backend: 1 for the current state (up, draining or down), 0 for the others",
    );
    let be_up = gauge_family(
        &mut reg,
        "lb_backend_up",
        "Whether the backend passes its health check (1) or not (0)",
    );
    let hc_latency = Family::<Labels, Gauge<f64, AtomicU64>>::default();
    reg.register_with_unit(
        "lb_health_check_latency",
        "Duration of the backend's last health check",
        Unit::Seconds,
        hc_latency.clone(),
    );
    let hc_checks = counter_family(
        &mut reg,
        "lb_health_checks",
        "Health checks run against the backend since lbd started",
    );
    let hc_local = counter_family(
        &mut reg,
        "lb_health_check_local_errors",
        "Health probes of the backend that could not be made on this host (out of descriptors, memory...): not counted as checks or failures",
    );
    let outcomes = counter_family(
        &mut reg,
        "lb_dataplane_packets",
        "Packets seen by the XDP program, by outcome (forwarded, passed, dropped and why)",
    );
    let forwarding = Gauge::<i64>::default();
    reg.register(
        "lb_forwarding",
        "Whether this node forwards VIP traffic (1) or passes it to the kernel as a standby (0)",
        forwarding.clone(),
    );

    for s in services {
        let service = service_label(s);
        let labels: Labels = vec![
            ("service", service.clone()),
            ("vip", s.vip.to_string()),
            ("port", s.port.to_string()),
            ("protocol", s.protocol.clone()),
        ];
        svc_packets.get_or_create(&labels).inc_by(s.traffic.packets);
        svc_bytes.get_or_create(&labels).inc_by(s.traffic.bytes);
        svc_flows.get_or_create(&labels).inc_by(s.traffic.new_flows);
        svc_dirty
            .get_or_create(&labels)
            .set(gauge_i64(s.dirty_slots));
        for b in &s.backends {
            let labels: Labels = vec![
                ("service", service.clone()),
                ("backend", b.address.to_string()),
            ];
            be_packets.get_or_create(&labels).inc_by(b.traffic.packets);
            be_bytes.get_or_create(&labels).inc_by(b.traffic.bytes);
            be_flows.get_or_create(&labels).inc_by(b.traffic.new_flows);
            be_tracked.get_or_create(&labels).set(gauge_i64(b.tracked));
            if let Some(w) = b.weight {
                be_weight.get_or_create(&labels).set(i64::from(w));
            }
            let current = b.state.as_str();
            let others = STATES.iter().copied().filter(|st| *st != current);
            for (state, value) in std::iter::once((current, 1)).chain(others.map(|st| (st, 0))) {
                let mut l = labels.clone();
                l.push(("state", state.to_owned()));
                be_state.get_or_create(&l).set(value);
            }
        }
    }
    for h in health {
        let labels: Labels = vec![
            ("service", h.service.clone()),
            ("backend", h.backend.to_string()),
        ];
        be_up.get_or_create(&labels).set(i64::from(h.up));
        hc_checks.get_or_create(&labels).inc_by(h.checks);
        hc_local.get_or_create(&labels).inc_by(h.local_errors);
        if let Some(us) = h.latency_us {
            hc_latency.get_or_create(&labels).set(us as f64 / 1e6);
        }
    }
    for (outcome, value) in &status.counters.0 {
        outcomes
            .get_or_create(&vec![("outcome", outcome.clone())])
            .inc_by(*value);
    }
    forwarding.set(i64::from(status.forwarding));

    let mut out = String::new();
    // Writing to a String cannot fail; an encoder error would leave a partial page,
    // which is still better than none.
    if let Err(e) = encode(&mut out, &reg) {
        tracing::warn!(error = %e, "encoding metrics failed");
    }
    out
}

/// The old path, kept while lbd still hands the endpoint its main loop's request
/// channel: four requests through the loop per scrape. Prefer the observer.
impl Source for lb_api::control::RequestTx {
    async fn scrape(&self) -> Result<Scrape, String> {
        use lb_api::control::{ask, Request, Response};
        fn unexpected(what: &str, r: Response) -> String {
            match r {
                Response::Error { message } => message,
                other => format!("unexpected answer to {what}: {other:?}"),
            }
        }
        let services = match ask(self, Request::List).await {
            Response::List { services } => services,
            other => return Err(unexpected("list", other)),
        };
        let status = match ask(self, Request::Status).await {
            Response::Status(status) => status,
            other => return Err(unexpected("status", other)),
        };
        let health = match ask(self, Request::Health).await {
            Response::Health { backends } => backends,
            other => return Err(unexpected("health", other)),
        };
        let vrrp = match ask(self, Request::Vrrp).await {
            Response::Vrrp { instances } => instances,
            other => return Err(unexpected("vrrp", other)),
        };
        let sync = match ask(self, Request::Sync).await {
            Response::Sync(sync) => sync,
            other => return Err(unexpected("sync", other)),
        };
        let bgp = match ask(self, Request::Bgp).await {
            Response::Bgp(bgp) => bgp,
            other => return Err(unexpected("bgp", other)),
        };
        Ok(Scrape {
            services,
            status,
            health,
            vrrp,
            sync,
            bgp,
        })
    }
}

/// Take everything a scrape shows from `source` and render it.
async fn scrape(source: &impl Source) -> Result<String, String> {
    let s = source.scrape().await?;
    Ok(render(
        &s.services,
        &s.status,
        &s.health,
        &s.vrrp,
        &s.sync,
        &s.bgp,
    ))
}

fn reply(
    status: StatusCode,
    content_type: &'static str,
    body: String,
) -> hyper::Response<Full<Bytes>> {
    let mut resp = hyper::Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

async fn handle(
    req: hyper::Request<Incoming>,
    source: impl Source,
) -> hyper::Response<Full<Bytes>> {
    const TEXT: &str = "text/plain; charset=utf-8";
    if req.uri().path() != "/metrics" {
        return reply(
            StatusCode::NOT_FOUND,
            TEXT,
            "not found: metrics are at /metrics\n".into(),
        );
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut resp = reply(StatusCode::METHOD_NOT_ALLOWED, TEXT, "only GET\n".into());
        resp.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return resp;
    }
    match tokio::time::timeout(SCRAPE_TIMEOUT, scrape(&source)).await {
        Ok(Ok(body)) => reply(StatusCode::OK, CONTENT_TYPE_OPENMETRICS, body),
        Ok(Err(message)) => reply(
            StatusCode::SERVICE_UNAVAILABLE,
            TEXT,
            format!("{message}\n"),
        ),
        Err(_) => reply(
            StatusCode::SERVICE_UNAVAILABLE,
            TEXT,
            "lbd did not answer in time\n".into(),
        ),
    }
}

/// Serve `GET /metrics` on `addr` until the task is dropped; fails only if `addr`
/// cannot be bound.
pub async fn serve(addr: SocketAddr, source: impl Source) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    tracing::info!(%addr, "metrics endpoint listening");
    serve_listener(listener, source).await
}

/// Scrapers served at once (Prometheus keeps one connection per target); more are
/// answered 503 and closed, so clients cannot take the descriptors health checks need.
pub const MAX_CONNECTIONS: usize = 64;

/// A connection is asked to close (after the response in flight) once this old; a
/// keep-alive scraper simply reconnects.
const CONNECTION_LIFETIME: Duration = Duration::from_secs(300);

/// Request bytes buffered per connection at most (hyper's minimum is 8 KiB).
const MAX_REQUEST_BUFFER: usize = 16 * 1024;

/// What an over-the-cap client gets before the connection is closed.
const BUSY: &str = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n\
                    Content-Length: 34\r\nConnection: close\r\n\r\ntoo many metrics connections open\n";

/// [`serve`] on an already bound listener (tests bind port 0 and read the port back).
/// At most [`MAX_CONNECTIONS`] at once; each must send its request headers within
/// [`HEADER_TIMEOUT`] (also between keep-alive requests, so idle ones are closed) and
/// lives at most [`CONNECTION_LIFETIME`]; accept errors back off.
pub async fn serve_listener(listener: TcpListener, source: impl Source) -> std::io::Result<()> {
    let mut gate = lb_api::listen::Gate::new(listener, "metrics", MAX_CONNECTIONS);
    loop {
        let (stream, permit) = match gate.next().await {
            lb_api::listen::Accepted::Serve(stream, permit) => (stream, permit),
            lb_api::listen::Accepted::Refuse(stream) => {
                gate.refuse(stream, BUSY.as_bytes());
                continue;
            }
        };
        let source = source.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let service = service_fn(move |req| {
                let source = source.clone();
                async move { Ok::<_, Infallible>(handle(req, source).await) }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                // A scrape request is a few hundred bytes: bound what one client can
                // make lbd buffer (hyper's default is about 400 KiB).
                .max_buf_size(MAX_REQUEST_BUFFER)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            let ended = tokio::select! {
                r = conn.as_mut() => Some(r),
                _ = tokio::time::sleep(CONNECTION_LIFETIME) => None,
            };
            let result = match ended {
                Some(r) => r,
                None => {
                    conn.as_mut().graceful_shutdown();
                    match tokio::time::timeout(SCRAPE_TIMEOUT + HEADER_TIMEOUT, conn).await {
                        Ok(r) => r,
                        Err(_) => return,
                    }
                }
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, "metrics connection ended with an error");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::TcpStream,
    };

    use super::*;
    use lb_api::view::{BackendView, Counters, Traffic};

    fn services() -> Vec<ServiceView> {
        let backend = |addr: &str, index: u16, state: &str, packets: u64| BackendView {
            address: addr.parse().unwrap(),
            name: None,
            index,
            weight: Some(100),
            state: state.into(),
            slots: 100,
            health: None,
            mac: None,
            ifindex: 2,
            tracked: 3,
            traffic: Traffic {
                packets,
                bytes: packets * 100,
                new_flows: packets / 10,
            },
        };
        vec![
            ServiceView {
                name: Some("web".into()),
                vip: "198.51.100.10".parse().unwrap(),
                port: 80,
                protocol: "tcp".into(),
                scheduler: "maglev".into(),
                id: 0,
                table_size: 251,
                dirty_slots: 4,
                traffic: Traffic {
                    packets: 1500,
                    bytes: 150_000,
                    new_flows: 150,
                },
                backends: vec![
                    backend("10.0.0.1", 0, "up", 1000),
                    backend("10.0.0.2", 1, "draining", 500),
                ],
            },
            ServiceView {
                name: Some("dns \"v6\"".into()),
                vip: "2001:db8::10".parse().unwrap(),
                port: 53,
                protocol: "udp".into(),
                scheduler: "maglev".into(),
                id: 1,
                table_size: 251,
                dirty_slots: 0,
                traffic: Traffic::default(),
                backends: vec![backend("2001:db8::11", 2, "down", 0)],
            },
        ]
    }

    fn status() -> StatusView {
        StatusView {
            node: "lb1".into(),
            config: "/etc/lbd/lbd.toml".into(),
            forwarding: true,
            interfaces: vec![("eth0".into(), "driver".into())],
            pin_dir: "/sys/fs/bpf/lbd".into(),
            counters: Counters(vec![("forwarded".into(), 1500), ("passed".into(), 42)]),
            last_reload: "ok".into(),
        }
    }

    fn health() -> Vec<HealthView> {
        vec![
            HealthView {
                service: "web".into(),
                backend: "10.0.0.1".parse().unwrap(),
                up: true,
                last: "ok".into(),
                latency_us: Some(1_500),
                checks: 12,
                local_errors: 0,
                since_s: 60,
            },
            HealthView {
                service: "web".into(),
                backend: "10.0.0.2".parse().unwrap(),
                up: false,
                last: "connection refused".into(),
                latency_us: None,
                checks: 12,
                local_errors: 0,
                since_s: 5,
            },
        ]
    }

    /// Parse Prometheus/OpenMetrics text strictly enough to catch malformed output:
    /// every sample belongs to a family declared by `# TYPE` (and `# HELP`), label sets
    /// are well formed, values are numbers, and the page ends with `# EOF`.
    /// Returns sample -> value, the sample written exactly as in the text.
    fn parse(text: &str) -> HashMap<String, f64> {
        let mut typed: HashMap<String, String> = HashMap::new();
        let mut helped: HashSet<String> = HashSet::new();
        let mut samples = HashMap::new();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.last(), Some(&"# EOF"), "{text}");
        for line in &lines[..lines.len() - 1] {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, help) = rest.split_once(' ').unwrap();
                assert!(!help.trim().is_empty(), "empty help for {name}");
                helped.insert(name.to_owned());
                continue;
            }
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                assert!(["counter", "gauge"].contains(&kind), "{line}");
                typed.insert(name.to_owned(), kind.to_owned());
                continue;
            }
            if line.starts_with("# UNIT ") {
                continue;
            }
            assert!(!line.starts_with('#'), "unexpected comment {line}");
            let (series, value) = line.rsplit_once(' ').unwrap();
            let value: f64 = value
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line}"));
            let name = series.split('{').next().unwrap();
            assert!(
                name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "{line}"
            );
            let family = match typed.get(name) {
                Some(_) => name,
                None => name
                    .strip_suffix("_total")
                    .filter(|f| typed.get(*f).map(String::as_str) == Some("counter"))
                    .unwrap_or_else(|| panic!("no TYPE for {line}")),
            };
            assert!(helped.contains(family), "no HELP for {family}");
            if let Some(labels) = series.strip_prefix(name) {
                if !labels.is_empty() {
                    assert!(labels.starts_with('{') && labels.ends_with('}'), "{line}");
                    // key="value" pairs, values with \" escapes.
                    let mut rest = &labels[1..labels.len() - 1];
                    while !rest.is_empty() {
                        let (key, after) = rest
                            .split_once("=\"")
                            .unwrap_or_else(|| panic!("bad labels in {line}"));
                        assert!(
                            key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                            "{line}"
                        );
                        let mut end = None;
                        let mut escaped = false;
                        for (i, c) in after.char_indices() {
                            match (escaped, c) {
                                (true, _) => escaped = false,
                                (false, '\\') => escaped = true,
                                (false, '"') => {
                                    end = Some(i);
                                    break;
                                }
                                _ => {}
                            }
                        }
                        let end = end.unwrap_or_else(|| panic!("unterminated label in {line}"));
                        rest = after[end + 1..]
                            .strip_prefix(',')
                            .unwrap_or(&after[end + 1..]);
                    }
                }
            }
            assert!(
                samples.insert(series.to_owned(), value).is_none(),
                "duplicate {series}"
            );
        }
        samples
    }

    #[test]
    fn render_parses_and_has_every_metric() {
        let text = render(
            &services(),
            &status(),
            &health(),
            &[],
            &SyncView::default(),
            &BgpView::default(),
        );
        let m = parse(&text);
        let get = |s: &str| *m.get(s).unwrap_or_else(|| panic!("missing {s} in\n{text}"));
        assert_eq!(
            get(r#"lb_backend_up{service="web",backend="10.0.0.1"}"#),
            1.0
        );
        assert_eq!(
            get(r#"lb_backend_up{service="web",backend="10.0.0.2"}"#),
            0.0
        );
        assert_eq!(
            get(
                r#"lb_service_packets_total{service="web",vip="198.51.100.10",port="80",protocol="tcp"}"#
            ),
            1500.0
        );
        assert_eq!(
            get(
                r#"lb_service_bytes_total{service="web",vip="198.51.100.10",port="80",protocol="tcp"}"#
            ),
            150_000.0
        );
        assert_eq!(
            get(
                r#"lb_service_new_flows_total{service="web",vip="198.51.100.10",port="80",protocol="tcp"}"#
            ),
            150.0
        );
        assert_eq!(
            get(
                r#"lb_service_dirty_slots{service="web",vip="198.51.100.10",port="80",protocol="tcp"}"#
            ),
            4.0
        );
        assert_eq!(
            get(
                r#"lb_service_packets_total{service="dns \"v6\"",vip="2001:db8::10",port="53",protocol="udp"}"#
            ),
            0.0
        );
        assert_eq!(
            get(r#"lb_backend_packets_total{service="web",backend="10.0.0.1"}"#),
            1000.0
        );
        assert_eq!(
            get(r#"lb_backend_bytes_total{service="web",backend="10.0.0.2"}"#),
            50_000.0
        );
        assert_eq!(
            get(r#"lb_backend_new_flows_total{service="web",backend="10.0.0.1"}"#),
            100.0
        );
        assert_eq!(
            get(r#"lb_backend_tracked_connections{service="web",backend="10.0.0.1"}"#),
            3.0
        );
        assert_eq!(
            get(r#"lb_backend_weight{service="web",backend="10.0.0.1"}"#),
            100.0
        );
        assert_eq!(
            get(r#"lb_backend_state{service="web",backend="10.0.0.2",state="draining"}"#),
            1.0
        );
        assert_eq!(
            get(r#"lb_backend_state{service="web",backend="10.0.0.2",state="up"}"#),
            0.0
        );
        assert_eq!(
            get(r#"lb_backend_state{service="dns \"v6\"",backend="2001:db8::11",state="down"}"#),
            1.0
        );
        assert_eq!(
            get(r#"lb_health_check_latency_seconds{service="web",backend="10.0.0.1"}"#),
            0.0015
        );
        assert!(
            !m.contains_key(r#"lb_health_check_latency_seconds{service="web",backend="10.0.0.2"}"#)
        );
        assert_eq!(
            get(r#"lb_health_checks_total{service="web",backend="10.0.0.2"}"#),
            12.0
        );
        assert_eq!(
            get(r#"lb_health_check_local_errors_total{service="web",backend="10.0.0.2"}"#),
            0.0
        );
        assert_eq!(
            get(r#"lb_dataplane_packets_total{outcome="forwarded"}"#),
            1500.0
        );
        assert_eq!(get(r#"lb_dataplane_packets_total{outcome="passed"}"#), 42.0);
        assert_eq!(get("lb_forwarding"), 1.0);
        // Exactly one state is current per backend.
        let current = m
            .iter()
            .filter(|(k, v)| k.starts_with("lb_backend_state{") && **v == 1.0)
            .count();
        assert_eq!(current, 3);
        assert!(text.contains("# HELP lb_backend_up "), "{text}");
        assert!(text.contains("# TYPE lb_service_packets counter"), "{text}");
    }

    #[test]
    fn vrrp_instances_are_exported() {
        let v = VrrpView {
            name: "VI_1".into(),
            interface: "eth0".into(),
            vrid: 51,
            version: 3,
            state: "MASTER".into(),
            priority: 140,
            base_priority: 150,
            master: Some("10.0.0.2".parse().unwrap()),
            source: Some("10.0.0.2".parse().unwrap()),
            vips: vec!["10.0.0.100/24".into()],
            transitions: 2,
            adverts_received: 5,
            adverts_sent: 40,
            dropped: vec![("bad_checksum".into(), 3)],
            tracking: vec![],
            last_error: None,
        };
        let m = parse(&render(
            &[],
            &status(),
            &[],
            &[v],
            &SyncView::default(),
            &BgpView::default(),
        ));
        assert_eq!(
            m.get(r#"lb_vrrp_state{instance="VI_1",state="MASTER"}"#),
            Some(&1.0)
        );
        assert_eq!(
            m.get(r#"lb_vrrp_state{instance="VI_1",state="BACKUP"}"#),
            Some(&0.0)
        );
        assert_eq!(m.get(r#"lb_vrrp_priority{instance="VI_1"}"#), Some(&140.0));
        assert_eq!(
            m.get(r#"lb_vrrp_transitions_total{instance="VI_1"}"#),
            Some(&2.0)
        );
        assert_eq!(
            m.get(r#"lb_vrrp_dropped_adverts_total{instance="VI_1",reason="bad_checksum"}"#),
            Some(&3.0)
        );
        assert_eq!(
            m.get(r#"lb_vrrp_master{instance="VI_1",master="10.0.0.2"}"#),
            Some(&1.0)
        );
    }

    #[test]
    fn the_flow_sync_is_rendered_when_enabled() {
        let mut sync = SyncView {
            enabled: true,
            entries_sent: 100,
            entries_received: 40,
            datagrams_sent: 3,
            queue: 5,
            rejected: [("bad_tag".to_string(), 2)].into(),
            peers: vec![lb_api::view::SyncPeerView {
                address: "10.0.0.2:8848".parse().unwrap(),
                node_id: 1,
                epoch: 1,
                state: "alive".into(),
                last_seen_secs: Some(2),
                entries_received: 40,
                datagrams_received: 1,
                resyncs_requested: 0,
                resyncs_served: 0,
                restarts: 0,
            }],
            ..SyncView::default()
        };
        let m = parse(&render(
            &[],
            &status(),
            &[],
            &[],
            &sync,
            &BgpView::default(),
        ));
        assert_eq!(m["lb_sync_entries_total{direction=\"sent\"}"], 100.0);
        assert_eq!(m["lb_sync_entries_total{direction=\"received\"}"], 40.0);
        assert_eq!(
            m["lb_sync_rejected_datagrams_total{reason=\"bad_tag\"}"],
            2.0
        );
        assert_eq!(m["lb_sync_peer_up{peer=\"10.0.0.2:8848\"}"], 1.0);
        let queue: Vec<_> = m
            .iter()
            .filter(|(k, _)| k.starts_with("lb_sync_queue"))
            .collect();
        assert_eq!(queue.len(), 1, "{queue:?}");
        assert_eq!(*queue[0].1, 5.0);
        sync.enabled = false;
        let off = render(&[], &status(), &[], &[], &sync, &BgpView::default());
        assert!(!off.contains("lb_sync_"), "no sync, no sync metrics");
    }

    #[test]
    fn render_empty() {
        let text = render(
            &[],
            &StatusView {
                forwarding: false,
                counters: Counters::default(),
                ..status()
            },
            &[],
            &[],
            &SyncView::default(),
            &BgpView::default(),
        );
        let m = parse(&text);
        assert_eq!(m.get("lb_forwarding"), Some(&0.0));
        assert_eq!(m.len(), 1, "{text}");
    }

    /// A stand-in for lbd's observer: canned answers, or lbd going away.
    #[derive(Clone)]
    struct Canned(bool);

    impl Source for Canned {
        async fn scrape(&self) -> Result<Scrape, String> {
            if !self.0 {
                return Err("lbd is shutting down".into());
            }
            Ok(Scrape {
                services: services(),
                status: status(),
                health: health(),
                vrrp: Vec::new(),
                sync: SyncView::default(),
                bgp: BgpView::default(),
            })
        }
    }

    async fn get(port: u16, method: &str, path: &str) -> String {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let request =
            format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        tokio::time::timeout(Duration::from_secs(10), stream.read_to_string(&mut answer))
            .await
            .unwrap()
            .unwrap();
        answer
    }

    #[tokio::test]
    async fn serves_metrics_over_http() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(serve_listener(listener, Canned(true)));

        let answer = get(port, "GET", "/metrics").await;
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(
            head.to_ascii_lowercase()
                .contains("content-type: application/openmetrics-text"),
            "{head}"
        );
        let m = parse(body);
        assert_eq!(
            m.get(r#"lb_backend_up{service="web",backend="10.0.0.1"}"#),
            Some(&1.0)
        );
        assert_eq!(
            m.get(r#"lb_dataplane_packets_total{outcome="forwarded"}"#),
            Some(&1500.0)
        );

        assert!(get(port, "GET", "/").await.starts_with("HTTP/1.1 404"));
        assert!(get(port, "GET", "/metrics/x")
            .await
            .starts_with("HTTP/1.1 404"));
        let post = get(port, "POST", "/metrics").await;
        assert!(post.starts_with("HTTP/1.1 405"), "{post}");
        server.abort();
    }

    #[tokio::test]
    async fn answers_503_when_lbd_is_gone() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(serve_listener(listener, Canned(false)));
        let answer = get(port, "GET", "/metrics").await;
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
        assert!(answer.contains("shutting down"), "{answer}");
        server.abort();
    }
    /// Over the cap a client gets a 503 at once and its connection is closed; the
    /// held connections still count, and once they go a scrape is served again.
    #[tokio::test]
    async fn connection_cap() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(serve_listener(listener, Canned(true)));
        let mut held = Vec::new();
        for _ in 0..MAX_CONNECTIONS {
            held.push(TcpStream::connect(("127.0.0.1", port)).await.unwrap());
        }
        // The server takes connections in order: a scrape on a held one is answered,
        // which also shows every held one was accepted before the next connect.
        let mut last = held.pop().unwrap();
        last.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 12];
        last.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"HTTP/1.1 200");
        held.push(last);
        let busy = get(port, "GET", "/metrics").await;
        assert!(busy.starts_with("HTTP/1.1 503"), "{busy}");
        assert!(
            busy.ends_with("too many metrics connections open\n"),
            "{busy}"
        );
        drop(held);
        // Freed: served again (the server notices the closes as it reads).
        let mut ok = String::new();
        for _ in 0..100 {
            ok = get(port, "GET", "/metrics").await;
            if ok.starts_with("HTTP/1.1 200") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
        server.abort();
    }
}

//! lbd's runtime. One task owns the data plane, the reconciler and everything lbd has
//! learned (health, backend MACs); it reacts to events, one at a time:
//! health transitions, neighbour changes and resolutions, lbctl requests, SIGHUP
//! (reload), the settle timer, and SIGTERM/SIGINT (exit, leaving the pinned data plane
//! forwarding). Side tasks (health checks, netlink, the control socket, metrics) only
//! send events.
//!
//! Restart without a gap: maps and attach links are pinned under `pin_dir`. A new lbd
//! reuses the pinned maps, takes each backend's health and MAC from its pinned entry
//! (so the first apply writes nothing), and swaps its program into the pinned links.

pub mod translate;
pub mod vrrp;

use std::{
    collections::HashMap,
    net::IpAddr,
    path::{Path, PathBuf},
    time::{Duration, Instant, SystemTime},
};

use lb_common::maps::{words_addr, BACKEND_DOWN};
use tokio::{
    signal::unix::{signal, SignalKind},
    sync::{mpsc, oneshot},
};

use lb_api::{
    control::{self, Request, Response},
    view::{HealthView, StatusView},
};
use lb_config::{self as config, Config, Forwarding, XdpMode};
use lb_dataplane::{
    reconcile::{self as sync, Limits, Link, Reconciler, SyncError},
    views, AttachMode, AttachedMode, Capacities, Dataplane, DataplaneError, DataplaneOptions,
};
use lb_health::{BackendKey, HealthEvent, HealthMonitor};
use lb_netlink::neigh::{self, NetlinkHandle};

/// Errors that stop lbd.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The config is invalid.
    #[error("{0}")]
    Config(#[from] config::ConfigError),
    /// The data plane could not be loaded or attached.
    #[error(transparent)]
    Dataplane(#[from] DataplaneError),
    /// The first sync failed.
    #[error(transparent)]
    Sync(#[from] SyncError),
    /// Netlink could not be opened.
    #[error(transparent)]
    Netlink(#[from] neigh::NeighError),
    /// A socket or signal could not be set up.
    #[error("{what}: {source}")]
    Io {
        /// What was being set up.
        what: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The pin directory is not on a BPF filesystem.
    #[error("pin_dir {0} is not on a bpf filesystem; mount one (mount -t bpf bpf /sys/fs/bpf) or set [global] pin_dir")]
    NotBpffs(PathBuf),
}

const BPF_FS_MAGIC: i64 = 0xcafe_4a11;
const RESOLVE_WAIT: Duration = Duration::from_secs(3);
const RESOLVE_RETRY: Duration = Duration::from_secs(5);

/// True if `path` (or its nearest existing ancestor) is on a bpffs.
fn on_bpffs(path: &Path) -> bool {
    let mut p = path;
    loop {
        if p.exists() {
            let Ok(c) = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()) else {
                return false;
            };
            // SAFETY: zeroed statfs is a valid out-parameter; c is NUL-terminated.
            let mut st: libc::statfs = unsafe { std::mem::zeroed() };
            // SAFETY: as above.
            return unsafe { libc::statfs(c.as_ptr(), &mut st) } == 0
                && st.f_type as i64 == BPF_FS_MAGIC;
        }
        match p.parent() {
            Some(parent) => p = parent,
            None => return false,
        }
    }
}

fn attach_mode(mode: XdpMode) -> AttachMode {
    match mode {
        XdpMode::Driver => AttachMode::Driver,
        XdpMode::Skb => AttachMode::Skb,
        XdpMode::Auto => AttachMode::Auto,
    }
}

fn mode_name(mode: AttachedMode) -> &'static str {
    match mode {
        AttachedMode::Driver => "driver",
        AttachedMode::Skb => "skb",
        AttachedMode::Adopted => "adopted",
    }
}

/// At most this many queued events are taken in before the maps are written.
const BURST: usize = 4096;

/// A resolution result: backend address and its link, or why not.
type Resolved = (IpAddr, Result<Link, String>);

struct Daemon {
    config_path: PathBuf,
    config: Config,
    dp: Dataplane,
    reconciler: Reconciler,
    health: HashMap<BackendKey, bool>,
    monitor: HealthMonitor,
    links: HashMap<IpAddr, Link>,
    resolving: std::collections::HashSet<IpAddr>,
    netlink: NetlinkHandle,
    resolved_tx: mpsc::Sender<Resolved>,
    attached: Vec<(String, AttachedMode)>,
    last_reload: String,
    /// Running VRRP instances.
    vrrp: Vec<vrrp::Handle>,
    /// Instances that want forwarding (master, or inherited master after a restart).
    masters: HashMap<String, bool>,
    /// Interface carrier state, for FAULT.
    links_up: HashMap<String, bool>,
    /// Script tracks' current results.
    scripts_ok: HashMap<PathBuf, bool>,
    /// Tracking last sent to each instance, with its reasons.
    tracked: HashMap<String, (i32, bool, Vec<String>)>,
    /// A health, MAC or neighbour event changed the desired state; the maps are
    /// written once the burst of events already queued has been taken in.
    apply_pending: bool,
}

/// `lbd --check-config`: validate and summarise.
pub fn check_config(path: &Path) -> Result<String, config::ConfigError> {
    let c = config::load(path)?;
    let backends: usize = c.services.iter().map(|s| s.backends.len()).sum();
    Ok(format!(
        "{}: ok ({} services, {} backends, {} interfaces)",
        path.display(),
        c.services.len(),
        backends,
        c.interfaces.len()
    ))
}

/// `lbd --detach`: remove the pinned links (detaching XDP) and maps.
pub fn detach(config_path: &Path) -> Result<Vec<PathBuf>, DaemonError> {
    let c = config::load(config_path)?;
    Dataplane::remove_pinned(&c.global.pin_dir).map_err(|source| DaemonError::Io {
        what: format!("removing pins in {}", c.global.pin_dir.display()),
        source,
    })
}

/// Run lbd until SIGTERM/SIGINT.
pub async fn run(config_path: PathBuf) -> Result<(), DaemonError> {
    let config = config::load(&config_path)?;
    let pin_dir = config.global.pin_dir.clone();
    if !on_bpffs(&pin_dir) {
        return Err(DaemonError::NotBpffs(pin_dir));
    }
    let adopting = Dataplane::pin_paths(&pin_dir)
        .iter()
        .all(|(_, p)| p.exists());
    let dp = Dataplane::load(&DataplaneOptions {
        pin_dir: Some(pin_dir.clone()),
        capacities: Capacities {
            services: config.global.max_services,
            backends: config.global.max_backends,
            conns: config.global.conn_table_size,
            tx_ports: lb_common::maps::capacity::TX_PORTS,
        },
    })?;
    let limits = Limits {
        max_services: config.global.max_services,
        max_backends: config.global.max_backends,
    };
    let reconciler = Reconciler::adopt(&dp, limits, Instant::now())?;

    // What the pinned data plane already does is the starting point.
    let mut health = HashMap::new();
    let mut links = HashMap::new();
    if adopting {
        let pinned = dp.backends()?;
        for svc in &config.services {
            let key = translate::service_key(svc);
            for b in &svc.backends {
                let Some(index) = reconciler.index_of(&key, b.address) else {
                    continue;
                };
                let Some(entry) = pinned.get(index as usize) else {
                    continue;
                };
                if words_addr(&entry.addr) != b.address {
                    continue;
                }
                health.insert((svc.name.clone(), b.address), entry.state != BACKEND_DOWN);
                if entry.mac != [0; 6] || entry.ifindex == lb_common::maps::IFINDEX_LOCAL {
                    links.insert(
                        b.address,
                        Link {
                            mac: entry.mac,
                            ifindex: entry.ifindex,
                            src_mac: entry.src_mac,
                        },
                    );
                }
            }
        }
        tracing::info!(pin_dir = %pin_dir.display(), backends = links.len(), "adopting the pinned data plane");
    }

    let netlink = NetlinkHandle::new().await?;
    let (health_tx, mut health_rx) = mpsc::channel::<HealthEvent>(1024);
    let (resolved_tx, mut resolved_rx) = mpsc::channel::<Resolved>(1024);
    let (req_tx, mut req_rx) = mpsc::channel::<(Request, oneshot::Sender<Response>)>(64);
    let mut monitor = HealthMonitor::new(64, health_tx);
    monitor.set_checks(translate::checks(&config, &health));

    let mut d = Daemon {
        config_path,
        config,
        dp,
        reconciler,
        health,
        monitor,
        links,
        resolving: Default::default(),
        netlink,
        resolved_tx,
        attached: Vec::new(),
        last_reload: "started".into(),
        vrrp: Vec::new(),
        masters: HashMap::new(),
        links_up: HashMap::new(),
        apply_pending: false,
        scripts_ok: HashMap::new(),
        tracked: HashMap::new(),
    };
    // An instance whose VIPs are all still on its interface was master before this lbd
    // started: keep forwarding until its election settles (see daemon::vrrp).
    if !d.config.vrrp.is_empty() {
        if let Ok(addr) = lb_netlink::addr::AddrHandle::new().await {
            for v in &d.config.vrrp {
                let mut all = !v.virtual_addresses.is_empty();
                for (ip, _) in &v.virtual_addresses {
                    all &= addr.has(&v.interface, *ip).await.unwrap_or(false);
                }
                d.masters.insert(v.name.clone(), all);
            }
        }
    }
    d.apply()?;
    d.attach_interfaces()?;
    d.resolve_missing();

    let mut neigh_rx = neigh::watch_neighbors().await?;
    let (vrrp_tx, mut vrrp_rx) = mpsc::channel::<vrrp::Event>(64);
    let (script_tx, mut script_rx) = mpsc::channel::<(PathBuf, bool)>(64);
    let mut link_rx = if d.config.vrrp.is_empty() {
        mpsc::channel(1).1
    } else {
        lb_netlink::addr::watch_links()
            .await
            .map_err(|e| DaemonError::Io {
                what: "watching links for VRRP".into(),
                source: std::io::Error::other(e.to_string()),
            })?
    };
    for v in d.config.vrrp.clone() {
        let handle = vrrp::spawn(v, vrrp_tx.clone()).map_err(|e| DaemonError::Io {
            what: e,
            source: std::io::Error::other("VRRP"),
        })?;
        d.vrrp.push(handle);
    }
    spawn_script_tracks(&d.config, script_tx);
    d.update_tracking();
    let listener =
        control::bind(&d.config.global.control_socket).map_err(|source| DaemonError::Io {
            what: format!(
                "control socket {}",
                d.config.global.control_socket.display()
            ),
            source,
        })?;
    tokio::spawn(control::serve(listener, req_tx.clone()));
    if let Some(addr) = d.config.global.metrics_listen {
        let tx = req_tx.clone();
        tokio::spawn(async move {
            if let Err(e) = crate::metrics::serve(addr, tx).await {
                tracing::error!(%addr, error = %e, "metrics endpoint failed");
            }
        });
    }
    let sig = |kind: SignalKind, name: &str| {
        signal(kind).map_err(|source| DaemonError::Io {
            what: format!("{name} handler"),
            source,
        })
    };
    let mut hup = sig(SignalKind::hangup(), "SIGHUP")?;
    let mut term = sig(SignalKind::terminate(), "SIGTERM")?;
    let mut int = sig(SignalKind::interrupt(), "SIGINT")?;
    let settle_every =
        (d.config.global.settle_after / 4).clamp(Duration::from_secs(1), Duration::from_secs(30));
    let mut settle = tokio::time::interval(settle_every);
    tracing::info!(node = %d.config.global.node_name, services = d.config.services.len(), "lbd running");

    loop {
        tokio::select! {
            Some(ev) = health_rx.recv() => d.on_health(ev),
            Some((ip, result)) = resolved_rx.recv() => d.on_resolved(ip, result),
            Some(n) = neigh_rx.recv() => d.on_neighbor(n),
            Some((name, forward)) = vrrp_rx.recv() => {
                d.masters.insert(name, forward);
                d.apply_logged();
            }
            Some((ifname, up)) = link_rx.recv() => {
                if d.links_up.insert(ifname.clone(), up) != Some(up) {
                    tracing::info!(interface = %ifname, up, "link state");
                    d.update_tracking();
                }
            }
            Some((script, ok)) = script_rx.recv() => {
                tracing::info!(script = %script.display(), ok, "VRRP track script result");
                d.scripts_ok.insert(script, ok);
                d.update_tracking();
            }
            Some((request, reply)) = req_rx.recv() => {
                let response = d.handle(request);
                let _ = reply.send(response);
            }
            _ = hup.recv() => { let _ = d.reload(); }
            _ = settle.tick() => {
                let after = d.config.global.settle_after;
                if let Err(e) = d.reconciler.settle(&mut d.dp, after, Instant::now()) {
                    tracing::warn!(error = %e, "settling dirty slots failed");
                }
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
        // Coalesce a burst (thousands of MACs resolving at start, a switch failing
        // many health checks at once): take in what is already queued, then write the
        // maps once instead of rebuilding tables per event.
        if d.apply_pending {
            for _ in 0..BURST {
                if let Ok((ip, result)) = resolved_rx.try_recv() {
                    d.on_resolved(ip, result);
                } else if let Ok(ev) = health_rx.try_recv() {
                    d.on_health(ev);
                } else if let Ok(n) = neigh_rx.try_recv() {
                    d.on_neighbor(n);
                } else {
                    break;
                }
            }
            d.apply_logged();
        }
    }
    // A graceful stop hands the VIPs over (priority 0: the backup takes over within
    // skew time). The data plane keeps forwarding whatever still arrives here, to the
    // same backends the new master picks.
    for h in &d.vrrp {
        let (done, wait) = oneshot::channel();
        if h.commands.send(vrrp::Command::Shutdown(done)).await.is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(3), wait).await;
        }
    }
    let _ = std::fs::remove_file(&d.config.global.control_socket);
    tracing::info!(pin_dir = %d.config.global.pin_dir.display(), "lbd exiting; the pinned data plane keeps forwarding (lbd --detach removes it)");
    Ok(())
}

impl Daemon {
    /// Without VRRP the node forwards per `[global] forwarding` (always-active mode);
    /// with VRRP, while any instance is master.
    fn forwarding(&self) -> bool {
        if self.config.vrrp.is_empty() {
            self.config.global.forwarding == Forwarding::Active
        } else {
            self.masters.values().any(|m| *m)
        }
    }

    /// Re-evaluate every instance's tracking (service health, scripts, interface) and
    /// tell the instances whose result changed.
    fn update_tracking(&mut self) {
        for h in &self.vrrp {
            let config = &self.config;
            let health = &self.health;
            let service_healthy = |name: &str| -> (u32, u32) {
                let Some(svc) = config.services.iter().find(|s| s.name == name) else {
                    return (0, 0);
                };
                let up = svc
                    .backends
                    .iter()
                    .filter(|b| translate::healthy(svc, b.address, health))
                    .count();
                (up as u32, svc.backends.len() as u32)
            };
            let scripts = &self.scripts_ok;
            let script_ok = |p: &Path| scripts.get(p).copied();
            let input = crate::node::track::TrackInput {
                service_healthy: &service_healthy,
                script_ok: &script_ok,
            };
            let mut result = crate::node::track::evaluate(&h.config.track, &input);
            if self.links_up.get(&h.config.interface) == Some(&false) {
                result.fault = true;
                result
                    .reasons
                    .push(format!("interface {} is down", h.config.interface));
            }
            let now = (result.delta, result.fault, result.reasons.clone());
            if self.tracked.get(&h.name) != Some(&now) {
                tracing::info!(instance = %h.name, delta = result.delta, fault = result.fault, reasons = ?result.reasons, "VRRP tracking changed");
                let _ = h.commands.try_send(vrrp::Command::Track {
                    delta: result.delta,
                    fault: result.fault,
                });
                self.tracked.insert(h.name.clone(), now);
            }
        }
    }

    fn vrrp_views(&self) -> Vec<lb_api::view::VrrpView> {
        self.vrrp
            .iter()
            .map(|h| {
                let st = h.status.lock().map(|s| s.clone()).unwrap_or_default();
                lb_api::view::VrrpView {
                    name: h.name.clone(),
                    interface: h.config.interface.clone(),
                    vrid: h.config.vrid,
                    version: match h.config.version {
                        lb_vrrp::Version::V2 => 2,
                        lb_vrrp::Version::V3 => 3,
                    },
                    state: st.state,
                    priority: st.priority,
                    base_priority: h.config.priority,
                    master: st.master,
                    source: st.source,
                    vips: h
                        .config
                        .virtual_addresses
                        .iter()
                        .map(|(a, p)| format!("{a}/{p}"))
                        .collect(),
                    transitions: st.transitions,
                    adverts_received: st.counters.adverts_received,
                    adverts_sent: st.counters.adverts_sent,
                    dropped: st
                        .counters
                        .drops()
                        .map(|(r, n)| (r.name().to_string(), n))
                        .collect(),
                    tracking: self
                        .tracked
                        .get(&h.name)
                        .map(|t| t.2.clone())
                        .unwrap_or_default(),
                    last_error: st.last_error,
                }
            })
            .collect()
    }

    fn apply(&mut self) -> Result<(), SyncError> {
        self.apply_pending = false;
        let desired =
            translate::desired(&self.config, &self.health, &self.links, self.forwarding());
        let report = self
            .reconciler
            .apply(&mut self.dp, &desired, Instant::now())?;
        if report != sync::ApplyReport::default() {
            tracing::info!(?report, "data plane updated");
        }
        Ok(())
    }

    fn apply_logged(&mut self) {
        if let Err(e) = self.apply() {
            tracing::error!(error = %e, "data plane update failed; will retry on the next event");
        }
    }

    fn attach_interfaces(&mut self) -> Result<(), DaemonError> {
        let pin_dir = self.config.global.pin_dir.clone();
        for iface in self.config.interfaces.clone() {
            if self.attached.iter().any(|(n, _)| *n == iface.name) {
                continue;
            }
            let got = self
                .dp
                .attach_pinned(&iface.name, attach_mode(iface.xdp_mode), &pin_dir)?;
            tracing::info!(interface = %iface.name, mode = mode_name(got), "XDP program attached");
            self.attached.push((iface.name, got));
        }
        Ok(())
    }

    /// Start resolving every configured backend that has no MAC yet.
    fn resolve_missing(&mut self) {
        let wanted: Vec<IpAddr> = self
            .config
            .services
            .iter()
            .flat_map(|s| s.backends.iter().map(|b| b.address))
            .collect();
        for ip in wanted {
            if !self.links.contains_key(&ip) {
                self.resolve(ip, Duration::ZERO);
            }
        }
    }

    fn resolve(&mut self, ip: IpAddr, delay: Duration) {
        if !self.resolving.insert(ip) {
            return;
        }
        let netlink = self.netlink.clone();
        let tx = self.resolved_tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let result = async {
                let n = match netlink.resolve(ip, RESOLVE_WAIT).await {
                    Ok(n) => n,
                    // The backend is this host (an API server on the LB node): packets
                    // for it go to the local stack.
                    Err(neigh::NeighError::LocalAddress { .. }) => {
                        return Ok(Link {
                            mac: [0; 6],
                            ifindex: lb_common::maps::IFINDEX_LOCAL,
                            src_mac: [0; 6],
                        })
                    }
                    Err(e) => return Err(e.to_string()),
                };
                let mac = n.mac.ok_or_else(|| "no MAC".to_string())?;
                let link = netlink.link(n.ifindex).await.map_err(|e| e.to_string())?;
                Ok(Link {
                    mac,
                    ifindex: n.ifindex,
                    src_mac: link.mac,
                })
            }
            .await;
            let _ = tx.send((ip, result)).await;
        });
    }

    fn is_backend(&self, ip: IpAddr) -> bool {
        self.config
            .services
            .iter()
            .any(|s| s.backends.iter().any(|b| b.address == ip))
    }

    fn on_resolved(&mut self, ip: IpAddr, result: Result<Link, String>) {
        self.resolving.remove(&ip);
        if !self.is_backend(ip) {
            return;
        }
        match result {
            Ok(link) => {
                if self.links.get(&ip) != Some(&link) {
                    if link.ifindex == lb_common::maps::IFINDEX_LOCAL {
                        tracing::info!(backend = %ip, "backend is this host: its packets go to the local stack");
                    } else {
                        tracing::info!(backend = %ip, mac = %neigh::format_mac(&link.mac), ifindex = link.ifindex, "backend MAC resolved");
                        if let Err(e) = self.dp.add_tx_port(link.ifindex) {
                            tracing::warn!(backend = %ip, error = %e, "could not add the egress port for redirects");
                        }
                    }
                    self.links.insert(ip, link);
                    self.apply_pending = true;
                }
            }
            Err(reason) => {
                if self.links.remove(&ip).is_some() {
                    tracing::warn!(backend = %ip, %reason, "backend MAC lost; backend unusable until resolved");
                    self.apply_pending = true;
                } else {
                    tracing::warn!(backend = %ip, %reason, "backend MAC unknown; backend unusable until resolved; retrying");
                }
                self.resolve(ip, RESOLVE_RETRY);
            }
        }
    }

    /// Neighbour table changes: a new MAC is taken at once; a failed or deleted entry
    /// is re-resolved (the XDP path bypasses the neighbour table, so entries age out
    /// while the backend is fine) and the old MAC is kept until that fails.
    fn on_neighbor(&mut self, n: neigh::Neighbor) {
        if !self.is_backend(n.ip) {
            return;
        }
        match (neigh::usable(&n), n.mac) {
            (true, Some(mac)) => {
                if let Some(link) = self.links.get(&n.ip).copied() {
                    if link.mac != mac && link.ifindex == n.ifindex {
                        tracing::info!(backend = %n.ip, old = %neigh::format_mac(&link.mac), new = %neigh::format_mac(&mac), "backend MAC changed");
                        self.links.insert(n.ip, Link { mac, ..link });
                        self.apply_pending = true;
                    }
                } else {
                    self.resolve(n.ip, Duration::ZERO);
                }
            }
            _ => self.resolve(n.ip, Duration::ZERO),
        }
    }

    /// A health transition (the monitor has logged it with its reason).
    fn on_health(&mut self, ev: HealthEvent) {
        let before = self.health.insert(ev.key.clone(), ev.up);
        if before != Some(ev.up) {
            self.apply_pending = true;
            self.update_tracking();
        }
    }

    /// Re-read the config. A bad config changes nothing and says why.
    fn reload(&mut self) -> Result<String, String> {
        let new = match config::load(&self.config_path) {
            Ok(c) => c,
            Err(e) => {
                let msg = format!("reload rejected, running config kept: {e}");
                tracing::error!("{msg}");
                self.last_reload = msg.clone();
                return Err(msg);
            }
        };
        let old = &self.config.global;
        let fixed = [
            (old.pin_dir != new.global.pin_dir, "pin_dir"),
            (old.max_services != new.global.max_services, "max_services"),
            (old.max_backends != new.global.max_backends, "max_backends"),
            (
                old.conn_table_size != new.global.conn_table_size,
                "conn_table_size",
            ),
            (
                old.control_socket != new.global.control_socket,
                "control_socket",
            ),
            (
                old.metrics_listen != new.global.metrics_listen,
                "metrics_listen",
            ),
        ];
        let mut new = new;
        for (changed, name) in fixed {
            if changed {
                tracing::warn!(
                    setting = name,
                    "changing this setting needs a restart; keeping the running value"
                );
            }
        }
        new.global.pin_dir = old.pin_dir.clone();
        new.global.max_services = old.max_services;
        new.global.max_backends = old.max_backends;
        new.global.conn_table_size = old.conn_table_size;
        new.global.control_socket = old.control_socket.clone();
        new.global.metrics_listen = old.metrics_listen;
        // Re-creating a VRRP instance restarts its election (a failover for nothing);
        // instance changes wait for a restart, and the running instances stay.
        let vrrp_changed = self.config.vrrp != new.vrrp;
        if vrrp_changed {
            tracing::warn!(
                "[[vrrp]] changes need an lbd restart; keeping the running VRRP instances"
            );
            new.vrrp = self.config.vrrp.clone();
        }
        let previous = std::mem::replace(&mut self.config, new);
        let checks = translate::checks(&self.config, &self.health);
        let checked: std::collections::HashSet<BackendKey> =
            checks.iter().map(|(key, _)| key.clone()).collect();
        self.monitor.set_checks(checks);
        if let Err(e) = self.attach_interfaces() {
            tracing::error!(error = %e, "attaching a new interface failed");
        }
        self.resolve_missing();
        if let Err(e) = self.apply() {
            let msg = format!("reload failed applying, running config restored: {e}");
            tracing::error!("{msg}");
            self.config = previous;
            self.monitor
                .set_checks(translate::checks(&self.config, &self.health));
            self.apply_logged();
            self.last_reload = msg.clone();
            return Err(msg);
        }
        // Forget what belonged to backends the new config removed: a backend added
        // back later is resolved and checked afresh, not given a stale MAC or state.
        self.health.retain(|key, _| checked.contains(key));
        let gone: Vec<IpAddr> = self
            .links
            .keys()
            .copied()
            .filter(|ip| !self.is_backend(*ip))
            .collect();
        for ip in gone {
            self.links.remove(&ip);
        }
        let msg = format!(
            "reloaded {} ({} services){}",
            self.config_path.display(),
            self.config.services.len(),
            if vrrp_changed {
                "; [[vrrp]] changes need a restart"
            } else {
                ""
            }
        );
        tracing::info!("{msg}");
        self.last_reload = msg.clone();
        Ok(msg)
    }

    fn handle(&mut self, request: Request) -> Response {
        let result: Result<Response, DataplaneError> = (|| {
            Ok(match request {
                Request::Status => Response::Status(StatusView {
                    node: self.config.global.node_name.clone(),
                    config: self.config_path.display().to_string(),
                    forwarding: self.dp.config()?.forwarding != 0,
                    interfaces: self
                        .attached
                        .iter()
                        .map(|(n, m)| (n.clone(), mode_name(*m).to_string()))
                        .collect(),
                    pin_dir: self.config.global.pin_dir.display().to_string(),
                    counters: views::counters(&self.dp)?,
                    last_reload: self.last_reload.clone(),
                }),
                Request::List => Response::List {
                    services: self.list()?,
                },
                Request::Conns { limit } => Response::Conns {
                    conns: views::conns(&self.dp, limit, sync::monotonic_ns())?,
                },
                Request::Explain {
                    src,
                    dst,
                    protocol,
                    syn,
                } => {
                    let mut view = match views::explain_flow(&self.dp, src, dst, &protocol, syn) {
                        Ok(view) => view,
                        Err(views::ExplainError::Dataplane(e)) => return Err(e),
                        Err(e) => {
                            return Ok(Response::Error {
                                message: e.to_string(),
                            })
                        }
                    };
                    // The data plane's order: the exact port, then the whole-VIP service.
                    let on_vip = |port: u16| {
                        self.config.services.iter().find(|s| {
                            s.vip == dst.ip()
                                && s.protocol.to_string() == protocol
                                && s.port == port
                        })
                    };
                    if let Some(svc) = on_vip(dst.port()).or_else(|| on_vip(0)) {
                        view.service = Some(format!(
                            "{} ({})",
                            svc.name,
                            view.service.unwrap_or_default()
                        ));
                    }
                    Response::Explain(view)
                }
                Request::Vrrp => Response::Vrrp {
                    instances: self.vrrp_views(),
                },
                Request::Health => Response::Health {
                    backends: self.health_views(),
                },
                Request::Reload => match self.reload() {
                    Ok(message) => Response::Done { message },
                    Err(message) => Response::Error { message },
                },
            })
        })();
        result.unwrap_or_else(|e| Response::Error {
            message: e.to_string(),
        })
    }

    fn health_views(&self) -> Vec<HealthView> {
        let now = SystemTime::now();
        self.monitor
            .snapshot()
            .into_iter()
            .map(|((service, backend), s)| HealthView {
                service,
                backend,
                up: s.up,
                last: s.last,
                latency_us: s.latency.map(|l| l.as_micros() as u64),
                checks: s.checks,
                since_s: now
                    .duration_since(s.since)
                    .map(|d| d.as_secs())
                    .unwrap_or(0),
            })
            .collect()
    }

    /// Map views enriched with names, weights and health from the config.
    fn list(&self) -> Result<Vec<lb_api::view::ServiceView>, DataplaneError> {
        let mut services = views::from_maps(&self.dp)?;
        let snapshot: HashMap<BackendKey, String> = self
            .monitor
            .snapshot()
            .into_iter()
            .map(|(k, s)| {
                (
                    k,
                    format!("{}: {}", if s.up { "up" } else { "down" }, s.last),
                )
            })
            .collect();
        for view in &mut services {
            let Some(svc) = self.config.services.iter().find(|s| {
                s.vip == view.vip && s.port == view.port && s.protocol.to_string() == view.protocol
            }) else {
                continue;
            };
            view.name = Some(svc.name.clone());
            for b in &mut view.backends {
                if let Some(conf) = svc.backends.iter().find(|c| c.address == b.address) {
                    b.name = conf.name.clone();
                    b.weight = Some(conf.weight);
                    b.health = Some(
                        snapshot
                            .get(&(svc.name.clone(), b.address))
                            .cloned()
                            .unwrap_or_else(|| "no check".into()),
                    );
                } else {
                    b.health = Some("removed from config".into());
                }
            }
        }
        Ok(services)
    }
}

/// Run every VRRP track script (each distinct script once) at its interval, with its
/// timeout, and report its rise/fall-filtered result to the main loop.
fn spawn_script_tracks(config: &Config, tx: mpsc::Sender<(PathBuf, bool)>) {
    let mut seen = std::collections::HashSet::new();
    for v in &config.vrrp {
        for t in &v.track {
            let Some(mut track) = crate::node::track::ScriptTrack::from_track(t) else {
                continue;
            };
            if !seen.insert(track.script.clone()) {
                continue;
            }
            let tx = tx.clone();
            tokio::spawn(async move {
                loop {
                    let mut cmd = tokio::process::Command::new(&track.script);
                    cmd.kill_on_drop(true)
                        .stdin(std::process::Stdio::null())
                        .stdout(std::process::Stdio::null())
                        .stderr(std::process::Stdio::null());
                    let ok = match cmd.spawn() {
                        Ok(mut child) => {
                            matches!(tokio::time::timeout(track.timeout, child.wait()).await, Ok(Ok(status)) if status.success())
                        }
                        Err(_) => false,
                    };
                    if let Some(result) = track.observe(ok) {
                        if tx.send((track.script.clone(), result)).await.is_err() {
                            return;
                        }
                    }
                    tokio::time::sleep(track.interval).await;
                }
            });
        }
    }
}

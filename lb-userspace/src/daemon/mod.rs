//! lbd's async shell around the node core (`crate::node`): it sets up the data plane
//! and the side tasks (health checks, netlink, VRRP instances, track scripts, the
//! control socket, metrics, signals), feeds what they report to the node as events,
//! carries out the node's effects, and publishes a snapshot for observers after every
//! step. The decisions are the node's; this file only does I/O.
//!
//! Restart without a gap: maps and attach links are pinned under `pin_dir`. A new lbd
//! reuses the pinned maps, takes each backend's health and MAC from its pinned entry
//! (`node::adopt`, so the first apply writes nothing), and swaps its program into the
//! pinned links.

pub mod bgp;
mod commands;
pub mod sync;
mod tasks;
pub mod vrrp;

use std::{
    net::IpAddr,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use lb_api::control::{Request, Response};
use lb_config::{self as config, Config};
use lb_dataplane::{
    reconcile::{ApplyReport, Limits, Link, Reconciler, SyncError},
    AttachedMode, Capacities, Dataplane, DataplaneError, DataplaneOptions,
};
use lb_health::{HealthEvent, HealthMonitor};
use lb_netlink::neigh::{self, NetlinkHandle};
use tokio::{
    signal::unix::{signal, SignalKind},
    sync::{mpsc, oneshot, watch},
};

use crate::node::{
    adopt,
    snapshot::{Snapshot, VrrpSource},
    Effect, Event, Node, Start,
};

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
    /// The pin directory cannot hold the data plane.
    #[error(transparent)]
    Bpffs(#[from] crate::bpffs::BpffsError),
    /// A socket, signal or task could not be set up.
    #[error("{what}: {source}")]
    Io {
        /// What was being set up.
        what: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

fn io_error(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> DaemonError {
    let what = what.into();
    move |source| DaemonError::Io { what, source }
}

/// At most this many queued events are taken in before the maps are written.
const BURST: usize = 4096;

/// A request the observers hand to the loop (only requests that change something).
pub type LoopRequest = (Request, oneshot::Sender<Response>);

pub use commands::{check_config, detach};

/// The I/O side: everything the node's effects act on.
struct Shell {
    dp: Dataplane,
    reconciler: Reconciler,
    monitor: HealthMonitor,
    netlink: NetlinkHandle,
    resolved_tx: mpsc::Sender<(IpAddr, Result<Link, String>)>,
    attached: Vec<(String, AttachedMode)>,
    vrrp: Vec<vrrp::Handle>,
    sync: Option<(
        sync::SyncStatus,
        mpsc::Sender<lb_dataplane::reconcile::PeerDirty>,
    )>,
    bgp: Option<bgp::Handle>,
    /// Where [`Effect::HoldTimer`]s answer.
    hold_tx: mpsc::Sender<(IpAddr, u64)>,
    snapshot: watch::Sender<Arc<Snapshot>>,
}

/// Run lbd until SIGTERM/SIGINT.
pub async fn run(config_path: PathBuf) -> Result<(), DaemonError> {
    let config = config::load(&config_path)?;
    let pin_dir = config.global.pin_dir.clone();
    crate::bpffs::ensure(&pin_dir)?;
    // A running data plane is there when its service map is pinned; maps a newer
    // lbd adds (e.g. LB_BIG_TABLES) are created beside an older lbd's pins.
    let adopting = pin_dir.join(lb_common::maps::names::SERVICES).exists();
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
    let mut start = Start::default();
    if adopting {
        let pinned = dp.backends()?;
        start = adopt::from_pinned(&config, |k, a| reconciler.index_of(k, a), &pinned);
        tracing::info!(pin_dir = %pin_dir.display(), backends = start.links.len(), "adopting the pinned data plane");
    }
    start.adopted = adopting;
    start.cpus = aya::util::nr_cpus().map_or(1, |n| n as u32);
    start.inherited_masters = vrrp::inherited_masters(&config).await;

    let (health_tx, mut health_rx) = mpsc::channel::<HealthEvent>(1024);
    let (resolved_tx, mut resolved_rx) = mpsc::channel(1024);
    let (loop_tx, mut loop_rx) = mpsc::channel::<LoopRequest>(64);
    let (vrrp_tx, mut vrrp_rx) = mpsc::channel::<vrrp::Event>(64);
    let (script_tx, mut script_rx) = mpsc::channel::<(PathBuf, bool)>(64);
    let (hold_tx, mut hold_rx) = mpsc::channel::<(IpAddr, u64)>(64);
    let mut vrrp_handles = Vec::new();
    for v in &config.vrrp {
        let inherited = start.inherited_masters.contains(&v.name);
        let handle =
            vrrp::spawn(v.clone(), inherited, vrrp_tx.clone()).map_err(|e| DaemonError::Io {
                what: e,
                source: std::io::Error::other("VRRP"),
            })?;
        vrrp_handles.push(handle);
    }
    let mut link_rx = if config.vrrp.is_empty() {
        mpsc::channel(1).1
    } else {
        lb_netlink::addr::watch_links().await.map_err(|e| {
            io_error("watching links for VRRP")(std::io::Error::other(e.to_string()))
        })?
    };
    tasks::spawn_script_tracks(&config, script_tx);
    let control_socket = config.global.control_socket.clone();
    let metrics_listen = config.global.metrics_listen;

    let bgp = bgp::spawn(&config);
    let (node, effects) = Node::new(config_path, config, start);
    let mut node = node;
    let mut shell = Shell {
        dp,
        reconciler,
        monitor: HealthMonitor::new(64, health_tx),
        netlink: NetlinkHandle::new().await?,
        resolved_tx,
        attached: Vec::new(),
        vrrp: vrrp_handles,
        sync: None,
        bgp,
        hold_tx,
        snapshot: watch::channel(Arc::new(Snapshot::empty(&node))).0,
    };
    // The first apply and attach must work, or lbd does not start.
    shell.execute(&mut node, effects, true)?;
    let (mut peer_rx, mut sync_ready) = match sync::spawn(node.config(), pin_dir.clone())
        .map_err(|e| io_error("flow sync")(std::io::Error::other(e)))?
    {
        Some(handle) => {
            shell.sync = Some((handle.status, handle.settled));
            (handle.updates, Some(handle.ready))
        }
        None => (mpsc::channel(1).1, None),
    };
    let startup = tokio::time::sleep(if adopting {
        Duration::ZERO
    } else {
        node.startup_grace()
    });
    tokio::pin!(startup);
    let mut started = false;
    let mut neigh_rx = neigh::watch_neighbors().await?;

    let listener = lb_api::control::bind(&control_socket).map_err(io_error(format!(
        "control socket {}",
        control_socket.display()
    )))?;
    let observer = crate::observe::Observer::open(shell.snapshot.subscribe())?;
    tokio::spawn(crate::observe::serve(
        listener,
        observer.clone(),
        loop_tx.clone(),
    ));
    if let Some(addr) = metrics_listen {
        tokio::spawn(async move {
            if let Err(e) = crate::metrics::serve(addr, observer).await {
                tracing::error!(%addr, error = %e, "metrics endpoint failed");
            }
        });
    }
    let sig =
        |kind: SignalKind, name: &str| signal(kind).map_err(io_error(format!("{name} handler")));
    let mut hup = sig(SignalKind::hangup(), "SIGHUP")?;
    let mut term = sig(SignalKind::terminate(), "SIGTERM")?;
    let mut int = sig(SignalKind::interrupt(), "SIGINT")?;
    let mut settle = tokio::time::interval(node.settle_every());
    // A drain in progress (`lbctl drain`, SIGTERM with `[bgp] drain_on_stop`).
    let mut drain: Option<crate::node::drain::Drain> = None;
    // Ticks missed while not polled are skipped, not fired in a burst.
    let mut drain_check = tokio::time::interval(crate::node::drain::CHECK_EVERY);
    drain_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    // `[bgp] isolated_after`: when a sync peer was last heard.
    let mut isolation_check = tokio::time::interval(Duration::from_secs(1));
    isolation_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut last_heard = Instant::now();
    let mut was_isolated = false;
    let (reload_tx, reload_rx) = mpsc::channel::<tasks::ReloadReply>(tasks::RELOADS_QUEUED);
    let (loaded_tx, mut loaded_rx) = mpsc::channel(tasks::RELOADS_QUEUED);
    tasks::spawn_config_reader(node.config_path().to_path_buf(), reload_rx, loaded_tx);
    tracing::info!(node = %node.config().global.node_name, services = node.config().services.len(), "lbd running");

    loop {
        // A new VRRP master waits for its forwarding to be applied before adding VIPs.
        let mut applied: Option<oneshot::Sender<()>> = None;
        let event = tokio::select! {
            Some(ev) = health_rx.recv() => Event::Health { key: ev.key, up: ev.up },
            Some((ip, result)) = resolved_rx.recv() => Event::Resolved { ip, result },
            Some(n) = neigh_rx.recv() => Event::Neighbor(n),
            Some((instance, forward, done)) = vrrp_rx.recv() => {
                applied = done;
                Event::Vrrp { instance, forward }
            }
            Some((interface, up)) = link_rx.recv() => Event::Link { interface, up },
            Some((script, ok)) = script_rx.recv() => Event::Script { script, ok },
            Some(update) = peer_rx.recv() => Event::Peer(update),
            Some((vip, generation)) = hold_rx.recv() => Event::HoldOver { vip, generation },
            _ = async {
                match sync_ready.as_mut() {
                    Some(ready) => drop(ready.await),
                    None => std::future::pending().await,
                }
            }, if sync_ready.is_some() => {
                sync_ready = None;
                Event::SyncReady
            }
            _ = &mut startup, if !started => {
                started = true;
                Event::StartupDone
            }
            Some((request, reply)) = loop_rx.recv() => {
                match request {
                    Request::Drain { timeout_secs } => {
                        let Some(b) = &node.config().bgp else {
                            let _ = reply.send(Response::Error {
                                message: "drain withdraws this node's BGP announcements: it has no [bgp] (with VRRP, stop lbd: a graceful stop hands the VIPs over)".into(),
                            });
                            continue;
                        };
                        let timeout = timeout_secs.map_or(b.drain_timeout, Duration::from_secs);
                        let message = shell.start_drain(&mut drain, timeout);
                        let _ = reply.send(Response::Done { message });
                        let effects = node.handle(Event::Drain);
                        let _ = shell.execute(&mut node, effects, false);
                    }
                    // Answered when the read is done and the node has the result.
                    Request::Reload => {
                        if let Err(
                            mpsc::error::TrySendError::Full(Some(reply))
                            | mpsc::error::TrySendError::Closed(Some(reply)),
                        ) = reload_tx.try_send(Some(reply))
                        {
                            let _ = reply.send(Response::Error {
                                message: "reloads are already waiting for the config file to be read: try again later".into(),
                            });
                        }
                    }
                    other => {
                        let _ = reply.send(Response::Error {
                            message: format!("lbd's loop does not answer {other:?}; observers do"),
                        });
                    }
                }
                continue;
            }
            _ = hup.recv() => {
                if reload_tx.try_send(None).is_err() {
                    tracing::warn!("SIGHUP: reloads are already waiting for the config file to be read; this one is dropped");
                }
                continue;
            }
            Some((loaded, reply)) = loaded_rx.recv() => {
                let outcome = shell.reload(&mut node, loaded);
                if let Some(reply) = reply {
                    let _ = reply.send(match outcome {
                        Ok(message) => Response::Done { message },
                        Err(message) => Response::Error { message },
                    });
                }
                continue;
            }
            _ = settle.tick() => Event::SettleTick,
            _ = drain_check.tick(), if drain.is_some() => {
                let forwarded = shell.forwarded();
                let withdrawn = shell.withdrawn();
                if let Some(done) = drain.as_mut().and_then(|d| d.observe(Instant::now(), forwarded, withdrawn)) {
                    tracing::info!(?done, "drain over: lbd stops");
                    break;
                }
                continue;
            }
            _ = isolation_check.tick(), if shell.sync.is_some() => {
                let Some(after) = node.config().bgp.as_ref().and_then(|b| b.isolated_after) else {
                    continue;
                };
                if shell.peer_heard_within(after) {
                    last_heard = Instant::now();
                }
                let isolated = last_heard.elapsed() > after;
                if std::mem::replace(&mut was_isolated, isolated) == isolated {
                    continue;
                }
                Event::Isolated(isolated)
            }
            _ = term.recv() => {
                match &node.config().bgp {
                    Some(b) if b.drain_on_stop && drain.is_none() => {
                        let message = shell.start_drain(&mut drain, b.drain_timeout);
                        tracing::info!("SIGTERM: {message} (a second SIGTERM stops at once)");
                        Event::Drain
                    }
                    _ => break,
                }
            }
            _ = int.recv() => break,
        };
        let mut effects = node.handle(event);
        // Coalesce a burst (thousands of MACs resolving at start, a switch failing
        // many health checks at once): take in what is already queued, then write the
        // maps once instead of rebuilding tables per event.
        for _ in 0..BURST {
            let queued = if let Ok((ip, result)) = resolved_rx.try_recv() {
                Event::Resolved { ip, result }
            } else if let Ok(ev) = health_rx.try_recv() {
                Event::Health {
                    key: ev.key,
                    up: ev.up,
                }
            } else if let Ok(n) = neigh_rx.try_recv() {
                Event::Neighbor(n)
            } else {
                break;
            };
            effects.extend(node.handle(queued));
        }
        effects.extend(node.flush());
        // After start, effects only fail in ways the node logs and retries.
        let _ = shell.execute(&mut node, effects, false);
        if let Some(done) = applied {
            let _ = done.send(());
        }
    }
    // Withdraw before anything else stops: the router moves the flows to the other
    // nodes while this data plane still forwards what arrives meanwhile.
    if let Some(b) = shell.bgp.as_mut() {
        bgp::withdraw_at_exit(b, node.config()).await;
    }
    // A graceful stop hands the VIPs over (priority 0: the backup takes over within
    // skew time). The data plane keeps forwarding whatever still arrives here, to the
    // same backends the new master picks.
    for h in &shell.vrrp {
        let (done, wait) = oneshot::channel();
        if h.commands.send(vrrp::Command::Shutdown(done)).await.is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(3), wait).await;
        }
    }
    let _ = std::fs::remove_file(&control_socket);
    tracing::info!(pin_dir = %node.config().global.pin_dir.display(), "lbd exiting; the pinned data plane keeps forwarding (lbd --detach removes it)");
    Ok(())
}

impl Shell {
    /// Hand a re-read config file (read off the loop, see [`tasks::spawn_config_reader`])
    /// to the node; the reload's outcome.
    fn reload(
        &mut self,
        node: &mut Node,
        loaded: Result<Config, config::ConfigError>,
    ) -> Result<String, String> {
        let effects = node.handle(Event::Reload(Box::new(loaded)));
        self.execute(node, effects, false)
            .unwrap_or_else(|e| Some(Err(e.to_string())))
            .unwrap_or_else(|| Err("the reload did not finish".into()))
    }

    /// Carry out `effects` in order, feeding results back to the node; then publish.
    /// At start (`starting`), a failed apply or attach is an error; later the node
    /// logs it and retries. Returns a reload's outcome if one finished.
    fn execute(
        &mut self,
        node: &mut Node,
        effects: Vec<Effect>,
        starting: bool,
    ) -> Result<Option<Result<String, String>>, DaemonError> {
        let mut queue: std::collections::VecDeque<Effect> = effects.into();
        let mut reload = None;
        while let Some(effect) = queue.pop_front() {
            match effect {
                Effect::Apply(desired) => {
                    let result = match self
                        .reconciler
                        .apply(&mut self.dp, &desired, Instant::now())
                    {
                        Ok(report) => {
                            if report != ApplyReport::default() {
                                tracing::info!(?report, "data plane updated");
                            }
                            Ok(())
                        }
                        Err(e) if starting => return Err(e.into()),
                        Err(e) => Err(e.to_string()),
                    };
                    queue.extend(node.handle(Event::Applied(result)));
                }
                Effect::SetChecks(checks) => self.monitor.set_checks(checks),
                Effect::Attach(interfaces) => {
                    if let Err(e) = self.attach(&interfaces, &node.config().global.pin_dir) {
                        if starting {
                            return Err(e);
                        }
                        tracing::error!(error = %e, "attaching a new interface failed");
                    }
                }
                Effect::Resolve { ip, delay } => {
                    tasks::resolve(self.netlink.clone(), ip, delay, self.resolved_tx.clone())
                }
                Effect::AddTxPort(ifindex) => {
                    if let Err(e) = self.dp.add_tx_port(ifindex) {
                        tracing::warn!(ifindex, error = %e, "could not add the egress port for redirects");
                    }
                }
                Effect::Track {
                    instance,
                    delta,
                    fault,
                } => {
                    if let Some(h) = self.vrrp.iter().find(|h| h.name == instance) {
                        let _ = h.commands.try_send(vrrp::Command::Track { delta, fault });
                    }
                }
                Effect::Settle(timeouts) => self.settle(&timeouts),
                Effect::InstallPeer(update) => {
                    self.install_peer(update, &node.timeouts(), node.carries_flows())
                }
                Effect::ReloadDone(result) => reload = Some(result),
                Effect::HoldTimer {
                    vip,
                    generation,
                    after,
                } => {
                    let tx = self.hold_tx.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(after).await;
                        let _ = tx.send((vip, generation)).await;
                    });
                }
                Effect::Announce(decisions) => {
                    if let Some(b) = &self.bgp {
                        b.set(decisions);
                    }
                }
            }
        }
        self.publish(node);
        Ok(reload)
    }

    fn attach(
        &mut self,
        interfaces: &[lb_config::Interface],
        pin_dir: &Path,
    ) -> Result<(), DaemonError> {
        for iface in interfaces {
            if self.attached.iter().any(|(n, _)| *n == iface.name) {
                continue;
            }
            let got = self
                .dp
                .attach_pinned(&iface.name, iface.xdp_mode, pin_dir)?;
            tracing::info!(interface = %iface.name, mode = got.name(), "XDP program attached");
            self.attached.push((iface.name.clone(), got));
        }
        Ok(())
    }

    /// Begin a drain (once): the node withdraws its VIPs, and lbd stops when traffic
    /// stops arriving or at `timeout`.
    fn start_drain(
        &mut self,
        drain: &mut Option<crate::node::drain::Drain>,
        timeout: Duration,
    ) -> String {
        if drain.is_some() {
            return "already draining".into();
        }
        *drain = Some(crate::node::drain::Drain::new(Instant::now(), timeout));
        format!(
            "draining: withdrawing the VIPs; forwarding what still arrives; lbd stops once the speaker confirmed and nothing arrived for {:?}, or in {timeout:?}",
            crate::node::drain::QUIET
        )
    }

    /// Packets the data plane forwarded, all CPUs, all outcomes (`None` if unreadable,
    /// which a drain does not take for quiet).
    fn forwarded(&self) -> Option<u64> {
        use lb_common::maps::outcome::{FWD_LOCAL, FWD_REDIRECT, FWD_TX};
        let counts = self.dp.global_stats().ok()?;
        Some(
            [FWD_TX, FWD_REDIRECT, FWD_LOCAL]
                .iter()
                .map(|&i| counts[i as usize])
                .sum(),
        )
    }

    /// Whether the speaker confirmed the node's latest decisions (the drain's
    /// withdrawal); true without `[bgp]`.
    fn withdrawn(&self) -> bool {
        self.bgp.as_ref().is_none_or(|b| b.applied(b.generation()))
    }

    /// Whether any sync peer sent a valid datagram within `window`.
    fn peer_heard_within(&self, window: Duration) -> bool {
        let Some((status, _)) = &self.sync else {
            return false;
        };
        status.lock().is_ok_and(|v| {
            v.peers.iter().any(|p| {
                p.last_seen_secs
                    .is_some_and(|s| Duration::from_secs(s) < window)
            })
        })
    }

    /// Publish what observers read.
    fn publish(&self, node: &Node) {
        if let Some(b) = &self.bgp {
            b.set_draining(node.draining());
        }
        let snapshot = Snapshot {
            node: node.config().global.node_name.clone(),
            config_path: node.config_path().to_path_buf(),
            config: node.config().clone(),
            interfaces: self
                .attached
                .iter()
                .map(|(n, m)| (n.clone(), m.name().to_string()))
                .collect(),
            last_reload: node.last_reload().to_string(),
            health: self.monitor.statuses(),
            vrrp: self
                .vrrp
                .iter()
                .map(|h| VrrpSource {
                    config: h.config.clone(),
                    status: h.status.clone(),
                    tracking: node.tracking(&h.name),
                })
                .collect(),
            sync: self.sync.as_ref().map(|(status, _)| status.clone()),
            bgp: self.bgp.as_ref().map(|b| b.status.clone()),
        };
        self.snapshot.send_replace(Arc::new(snapshot));
    }
}

//! lbd's behaviour as a state machine, with no I/O: [`Event`]s in (config loaded or
//! rejected, health changed, MAC resolved, neighbour changed, VRRP state changed, link
//! state, track script result, settle tick, an apply's result), [`Effect`]s out
//! (reconcile the maps, set the health checks, resolve a MAC, attach interfaces, tell a
//! VRRP instance its tracking, settle, finish a reload). The async shell
//! (`crate::daemon`) does the I/O and feeds the results back as events, so every rule
//! here — reload (a bad reload changes nothing), restart-only settings, tracking ->
//! priority, adoption after a restart, settle, MAC following — is unit-tested without
//! root (`node/tests.rs`).
//!
//! - [`translate`]: config + what the node learned -> the reconciler's input and the
//!   health checks (pure);
//! - [`track`]: tracked services and scripts -> a VRRP priority delta or FAULT;
//! - [`adopt`]: what a pinned data plane already does -> the starting health and MACs;
//! - [`announce`]: which VIPs the BGP speaker should announce, and why;
//! - [`drain`]: when a drain is over;
//! - [`snapshot`]: what observers read.
//!
//! A new subsystem (flow sync, a BGP announcer) plugs in as one module: its events
//! become [`Event`] variants, its actions [`Effect`] variants, its state a field here.

pub mod adopt;
pub mod announce;
pub mod drain;
pub mod snapshot;
pub mod track;
pub mod translate;

#[cfg(test)]
mod tests;

use std::{
    collections::{HashMap, HashSet},
    net::IpAddr,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use lb_config::{Config, ConfigError, Forwarding, Global, Interface};
use lb_dataplane::reconcile::{Desired, Link, PeerDirty, PeerEntry, Timeouts};
use lb_health::{BackendKey, CheckSpec};
use lb_netlink::neigh::{self, Neighbor};

/// How long to wait before re-resolving a MAC that could not be resolved.
pub const RESOLVE_RETRY: Duration = Duration::from_secs(5);

/// What a peer LB node synced (flow sync, `[sync]`), for the data plane.
#[derive(Debug, Clone, PartialEq)]
pub enum PeerUpdate {
    /// Connection entries.
    Entries(Vec<PeerEntry>),
    /// A service's dirty slots (a full resync to this node).
    Dirty(PeerDirty),
    /// Slots a peer settled, with their current backends.
    Settled(PeerDirty),
}

/// Something that happened, fed to [`Node::handle`].
#[derive(Debug)]
pub enum Event {
    /// The config file was re-read (SIGHUP, `lbctl reload`): the parsed config, or why
    /// it was rejected.
    Reload(Box<Result<Config, ConfigError>>),
    /// A backend's health check changed state (the monitor logged the reason).
    Health {
        /// Service and backend.
        key: BackendKey,
        /// Passing.
        up: bool,
    },
    /// A MAC resolution finished: the backend's link, or why not.
    Resolved {
        /// Backend address.
        ip: IpAddr,
        /// Its link.
        result: Result<Link, String>,
    },
    /// The kernel's neighbour table changed.
    Neighbor(Neighbor),
    /// A VRRP instance wants forwarding on (master, or inherited master) or off.
    Vrrp {
        /// Instance name.
        instance: String,
        /// Forwarding wanted.
        forward: bool,
    },
    /// An interface's carrier changed (VRRP FAULT on link down).
    Link {
        /// Interface name.
        interface: String,
        /// Carrier up.
        up: bool,
    },
    /// A VRRP track script's rise/fall-filtered result.
    Script {
        /// The script.
        script: PathBuf,
        /// Succeeding.
        ok: bool,
    },
    /// The settle timer fired.
    SettleTick,
    /// The node's first health results are in (a grace after a fresh start): table
    /// changes from now on are ones flows in the cluster may have seen.
    StartupDone,
    /// A peer LB node synced connection entries or dirty slots.
    Peer(PeerUpdate),
    /// The flow sync holds the peers' state (a full resync from each live peer ended,
    /// or none answered): this node may take over flows now.
    SyncReady,
    /// The result of the last [`Effect::Apply`].
    Applied(Result<(), String>),
    /// Drain (`lbctl drain`, SIGTERM with `[bgp] drain_on_stop`), or stop: withdraw
    /// every VIP; the data plane keeps forwarding.
    Drain,
    /// Whether the flow sync has heard no peer for longer than `[bgp] isolated_after`.
    Isolated(bool),
    /// An [`Effect::HoldTimer`] ran out.
    HoldOver {
        /// The VIP.
        vip: IpAddr,
        /// The health generation the timer was set for.
        generation: u64,
    },
}

/// Something the shell must do, returned by [`Node::handle`] and [`Node::flush`], in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Reconcile the data plane to this state; answer with [`Event::Applied`].
    Apply(Desired),
    /// Run exactly these health checks (unchanged ones keep running).
    SetChecks(Vec<(BackendKey, CheckSpec)>),
    /// Attach XDP to these interfaces (those not attached yet).
    Attach(Vec<Interface>),
    /// Resolve this backend's MAC after `delay`; answer with [`Event::Resolved`].
    Resolve {
        /// Backend address.
        ip: IpAddr,
        /// Wait first.
        delay: Duration,
    },
    /// Add an egress interface to the redirect map (a backend behind another link).
    AddTxPort(u32),
    /// Tell a VRRP instance its tracking result.
    Track {
        /// Instance name.
        instance: String,
        /// Priority adjustment.
        delta: i32,
        /// FAULT wanted.
        fault: bool,
    },
    /// Settle dirty slots that no live tracked flow needs, per protocol's timeouts.
    Settle(Timeouts),
    /// Install what a peer synced.
    InstallPeer(PeerUpdate),
    /// A reload finished: its message for the operator (`Ok` applied, `Err` rejected).
    ReloadDone(Result<String, String>),
    /// Make the BGP speaker announce exactly the VIPs decided so (`[bgp]`).
    Announce(Vec<announce::VipDecision>),
    /// Answer with [`Event::HoldOver`] after `after` (a VIP's health view settling).
    HoldTimer {
        /// The VIP.
        vip: IpAddr,
        /// Its health generation now.
        generation: u64,
        /// Wait.
        after: Duration,
    },
}

/// A tracking result as last sent to an instance.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Tracked {
    delta: i32,
    fault: bool,
    reasons: Vec<String>,
}

/// A reload whose apply has not answered yet.
#[derive(Debug)]
struct PendingReload {
    previous: Arc<Config>,
    vrrp_changed: bool,
}

/// Everything lbd knows and decides. See the module docs.
#[derive(Debug)]
pub struct Node {
    config_path: PathBuf,
    config: Arc<Config>,
    /// Every configured backend address (neighbour events for others are ignored).
    backends: HashSet<IpAddr>,
    health: HashMap<BackendKey, bool>,
    links: HashMap<IpAddr, Link>,
    resolving: HashSet<IpAddr>,
    /// Instances that want forwarding (master, or inherited master after a restart).
    masters: HashMap<String, bool>,
    /// Interface carrier state, for FAULT.
    links_up: HashMap<String, bool>,
    /// Track scripts' current results.
    scripts_ok: HashMap<PathBuf, bool>,
    tracked: HashMap<String, Tracked>,
    last_reload: String,
    /// The desired state changed; [`Node::flush`] emits one apply for a burst.
    dirty: bool,
    /// Past startup (or adopted a running data plane): table changes mark moved slots
    /// dirty on every node, forwarding or not.
    up: bool,
    /// CPUs the data plane runs on.
    cpus: u32,
    /// The flow sync holds the peers' state (always, without `[sync]`). Until then a
    /// VRRP instance runs at the lowest priority: a node that comes back does not take
    /// the VIPs (preempt) before it knows the flows its peer tracks.
    sync_ready: bool,
    reload: Option<PendingReload>,
    /// The first apply succeeded.
    installed: bool,
    /// Draining or stopping: every VIP withdrawn.
    draining: bool,
    /// No sync peer heard for longer than `[bgp] isolated_after`.
    isolated: bool,
    /// The announcement decisions last emitted (`[bgp]`).
    announced: Vec<announce::VipDecision>,
    /// Per VIP: health or MAC changes in its services so far (`[bgp]` hold-down).
    vip_changes: HashMap<IpAddr, u64>,
    /// Per VIP: the generation a hold timer confirmed quiet.
    vip_quiet: HashMap<IpAddr, u64>,
    /// Per VIP: the generation a hold timer was asked for.
    vip_timer: HashMap<IpAddr, u64>,
}

/// What a node starts from: the config, and what a pinned data plane already does
/// (see [`adopt`]).
#[derive(Debug, Default)]
pub struct Start {
    /// Backend health taken from the pinned data plane.
    pub health: HashMap<BackendKey, bool>,
    /// Backend MACs taken from the pinned data plane.
    pub links: HashMap<IpAddr, Link>,
    /// VRRP instances whose VIPs were all still on their interface: this node was
    /// master before it restarted and keeps forwarding until the election settles.
    pub inherited_masters: HashSet<String>,
    /// A running data plane was adopted: its tables are the cluster's, so changes
    /// count from the first apply (no startup grace).
    pub adopted: bool,
    /// CPUs the data plane runs on (the flood guard's budget is per CPU); 0 = 1.
    pub cpus: u32,
}

impl Node {
    /// A node for `config`, and the effects that start it: checks, attach, MAC
    /// resolution, tracking and the first apply.
    pub fn new(config_path: PathBuf, config: Config, start: Start) -> (Self, Vec<Effect>) {
        let masters = config
            .vrrp
            .iter()
            .map(|v| (v.name.clone(), start.inherited_masters.contains(&v.name)))
            .collect();
        let sync_ready = config.sync.is_none();
        let mut node = Node {
            config_path,
            backends: backends_of(&config),
            config: Arc::new(config),
            health: start.health,
            links: start.links,
            resolving: HashSet::new(),
            masters,
            links_up: HashMap::new(),
            scripts_ok: HashMap::new(),
            tracked: HashMap::new(),
            last_reload: "started".into(),
            dirty: true,
            reload: None,
            up: start.adopted,
            cpus: start.cpus.max(1),
            sync_ready,
            installed: false,
            draining: false,
            isolated: false,
            announced: Vec::new(),
            vip_changes: HashMap::new(),
            vip_quiet: HashMap::new(),
            vip_timer: HashMap::new(),
        };
        let mut effects = vec![node.checks()];
        effects.extend(node.flush());
        effects.push(Effect::Attach(node.config.interfaces.clone()));
        effects.extend(node.resolve_missing());
        effects.extend(node.update_tracking());
        (node, effects)
    }

    /// The running config.
    pub fn config(&self) -> &Arc<Config> {
        &self.config
    }

    /// The config file.
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// The last reload's result, in words.
    pub fn last_reload(&self) -> &str {
        &self.last_reload
    }

    /// An instance's current tracking reasons.
    pub fn tracking(&self, instance: &str) -> Vec<String> {
        self.tracked
            .get(instance)
            .map(|t| t.reasons.clone())
            .unwrap_or_default()
    }

    /// How often the settle timer should fire: a quarter of the shortest settle time,
    /// within 1 s and 30 s.
    pub fn settle_every(&self) -> Duration {
        self.timeouts().check_every()
    }

    /// The VIP announcement decisions last emitted (`[bgp]`; empty without).
    pub fn announcements(&self) -> &[announce::VipDecision] {
        &self.announced
    }

    /// Draining or stopping.
    pub fn draining(&self) -> bool {
        self.draining
    }

    /// The per-protocol timeouts from `[global]`.
    pub fn timeouts(&self) -> Timeouts {
        translate::timeouts(&self.config.global)
    }

    /// How long after a fresh start table changes are still the node coming up.
    pub fn startup_grace(&self) -> Duration {
        translate::startup_grace(&self.config)
    }

    /// Without VRRP the node forwards per `[global] forwarding` (always-active mode);
    /// with VRRP, while any instance is master.
    pub fn forwarding(&self) -> bool {
        if self.config.vrrp.is_empty() {
            self.config.global.forwarding == Forwarding::Active
        } else {
            self.masters.values().any(|m| *m)
        }
    }

    /// Whether flows of this node's own may cross its data plane: it forwards, and
    /// with `[bgp]` it may have been announced (it is announced only once the flow sync
    /// holds its peers' state, so before that the router sends it nothing). A node
    /// that carries none takes its peers' dirty slots on a resync.
    pub fn carries_flows(&self) -> bool {
        self.forwarding() && (self.config.bgp.is_none() || self.sync_ready)
    }

    /// What the data plane should hold now.
    pub fn desired(&self) -> Desired {
        let mut desired =
            translate::desired(&self.config, &self.health, &self.links, self.forwarding());
        desired.keep_moved = self.up;
        desired.insert_limit = translate::insert_limit(&self.config.global, self.cpus);
        desired
    }

    /// Take in one event. Health, MAC and neighbour changes only mark the desired
    /// state dirty (the shell takes in the rest of a burst, then calls
    /// [`flush`](Self::flush)); everything else answers at once.
    pub fn handle(&mut self, event: Event) -> Vec<Effect> {
        match event {
            Event::Reload(result) => self.on_reload(*result),
            Event::Health { key, up } => {
                if self.health.insert(key.clone(), up) != Some(up) {
                    self.dirty = true;
                    self.vip_changed(|s| s.name == key.0);
                    return self.update_tracking();
                }
                Vec::new()
            }
            Event::Resolved { ip, result } => self.on_resolved(ip, result),
            Event::Neighbor(n) => self.on_neighbor(n),
            Event::Vrrp { instance, forward } => {
                if self.masters.insert(instance, forward) != Some(forward) {
                    self.dirty = true;
                }
                self.flush()
            }
            Event::Link { interface, up } => {
                if self.links_up.insert(interface.clone(), up) == Some(up) {
                    return Vec::new();
                }
                tracing::info!(%interface, up, "link state");
                self.update_tracking()
            }
            Event::Script { script, ok } => {
                tracing::info!(script = %script.display(), ok, "VRRP track script result");
                self.scripts_ok.insert(script, ok);
                self.update_tracking()
            }
            Event::SettleTick => vec![Effect::Settle(self.timeouts())],
            Event::StartupDone => {
                if !self.up {
                    tracing::info!(
                        "startup done: table changes now keep moved flows on every node"
                    );
                    self.up = true;
                }
                self.announce_changes()
            }
            Event::Peer(update) => vec![Effect::InstallPeer(update)],
            Event::SyncReady => {
                if std::mem::replace(&mut self.sync_ready, true) {
                    return Vec::new();
                }
                tracing::info!("flow sync: holding the peers' state; VRRP priority restored");
                let mut effects = self.update_tracking();
                effects.extend(self.announce_changes());
                effects
            }
            Event::Applied(result) => self.on_applied(result),
            Event::Drain => {
                if !std::mem::replace(&mut self.draining, true) {
                    tracing::info!("draining: withdrawing every VIP; forwarding continues");
                }
                self.announce_changes()
            }
            Event::HoldOver { vip, generation } => {
                if self.vip_changes.get(&vip).copied().unwrap_or(0) == generation {
                    self.vip_quiet.insert(vip, generation);
                }
                self.announce_changes()
            }
            Event::Isolated(isolated) => {
                if std::mem::replace(&mut self.isolated, isolated) != isolated {
                    tracing::warn!(isolated, "flow sync: isolation from every peer changed");
                }
                self.announce_changes()
            }
        }
    }

    /// The VIP announcements, if they changed since last emitted (`[bgp]`).
    fn announce_changes(&mut self) -> Vec<Effect> {
        if self.config.bgp.is_none() && self.announced.is_empty() {
            return Vec::new();
        }
        let state = announce::NodeState {
            installed: self.installed,
            started: self.up,
            forwarding: self.forwarding(),
            sync_ready: self.sync_ready,
            isolated: self.isolated,
            draining: self.draining,
        };
        let announced: HashSet<IpAddr> = self
            .announced
            .iter()
            .filter(|d| d.announce)
            .map(|d| d.vip)
            .collect();
        let settled = |vip: IpAddr| {
            announced.contains(&vip)
                || self.vip_quiet.get(&vip)
                    == Some(&self.vip_changes.get(&vip).copied().unwrap_or(0))
        };
        let now = announce::decide(&self.config, &self.health, &self.links, state, &settled);
        let mut effects = Vec::new();
        // Every VIP's health view is timed from its last change, whatever else holds
        // the announcement back, so a node that catches up with its peers later is
        // not held again.
        for d in &now {
            let generation = self.vip_changes.get(&d.vip).copied().unwrap_or(0);
            if self.vip_quiet.get(&d.vip) != Some(&generation)
                && self.vip_timer.insert(d.vip, generation) != Some(generation)
            {
                effects.push(Effect::HoldTimer {
                    vip: d.vip,
                    generation,
                    after: announce::hold(&self.config, d.vip),
                });
            }
        }
        if now == self.announced {
            return effects;
        }
        for d in &now {
            let before = self.announced.iter().find(|b| b.vip == d.vip);
            if before.map(|b| b.announce) != Some(d.announce) {
                tracing::info!(vip = %d.vip, announce = d.announce, reason = %d.reason, "BGP announcement changed");
            }
        }
        self.announced = now.clone();
        effects.push(Effect::Announce(now));
        effects
    }

    /// A health or MAC change in the services `which` selects: their VIPs' health
    /// views start settling again (`[bgp]` hold-down).
    fn vip_changed(&mut self, which: impl Fn(&lb_config::Service) -> bool) {
        if self.config.bgp.is_none() {
            return;
        }
        let vips: HashSet<IpAddr> = self
            .config
            .services
            .iter()
            .filter(|s| which(s))
            .map(|s| s.vip)
            .collect();
        for vip in vips {
            *self.vip_changes.entry(vip).or_insert(0) += 1;
        }
    }

    /// One apply for everything that changed since the last one, if anything did.
    pub fn flush(&mut self) -> Vec<Effect> {
        let mut effects = Vec::new();
        if std::mem::take(&mut self.dirty) {
            effects.push(Effect::Apply(self.desired()));
        }
        effects.extend(self.announce_changes());
        effects
    }

    fn checks(&self) -> Effect {
        Effect::SetChecks(translate::checks(&self.config, &self.health))
    }

    /// Resolve every configured backend that has no MAC yet.
    fn resolve_missing(&mut self) -> Vec<Effect> {
        let mut wanted: Vec<IpAddr> = self
            .backends
            .iter()
            .copied()
            .filter(|ip| !self.links.contains_key(ip))
            .collect();
        wanted.sort();
        wanted
            .into_iter()
            .filter_map(|ip| self.resolve(ip, Duration::ZERO))
            .collect()
    }

    fn resolve(&mut self, ip: IpAddr, delay: Duration) -> Option<Effect> {
        self.resolving
            .insert(ip)
            .then_some(Effect::Resolve { ip, delay })
    }

    fn on_resolved(&mut self, ip: IpAddr, result: Result<Link, String>) -> Vec<Effect> {
        self.resolving.remove(&ip);
        if !self.backends.contains(&ip) {
            return Vec::new();
        }
        match result {
            Ok(link) => {
                if self.links.get(&ip) == Some(&link) {
                    return Vec::new();
                }
                let mut effects = Vec::new();
                if link.ifindex == lb_common::maps::IFINDEX_LOCAL {
                    tracing::info!(backend = %ip, "backend is this host: its packets go to the local stack");
                } else {
                    tracing::info!(backend = %ip, mac = %neigh::format_mac(&link.mac), ifindex = link.ifindex, "backend MAC resolved");
                    effects.push(Effect::AddTxPort(link.ifindex));
                }
                self.links.insert(ip, link);
                self.dirty = true;
                self.vip_changed(|s| s.backends.iter().any(|b| b.address == ip));
                effects
            }
            Err(reason) => {
                if self.links.remove(&ip).is_some() {
                    tracing::warn!(backend = %ip, %reason, "backend MAC lost; backend unusable until resolved");
                    self.dirty = true;
                    self.vip_changed(|s| s.backends.iter().any(|b| b.address == ip));
                } else {
                    tracing::warn!(backend = %ip, %reason, "backend MAC unknown; backend unusable until resolved; retrying");
                }
                self.resolve(ip, RESOLVE_RETRY).into_iter().collect()
            }
        }
    }

    /// Neighbour table changes: a new MAC is taken at once; a failed or deleted entry
    /// is re-resolved (the XDP path bypasses the neighbour table, so entries age out
    /// while the backend is fine) and the old MAC is kept until that fails.
    fn on_neighbor(&mut self, n: Neighbor) -> Vec<Effect> {
        if !self.backends.contains(&n.ip) {
            return Vec::new();
        }
        if let (true, Some(mac)) = (neigh::usable(&n), n.mac) {
            match self.links.get(&n.ip).copied() {
                Some(link) if link.mac != mac && link.ifindex == n.ifindex => {
                    tracing::info!(backend = %n.ip, old = %neigh::format_mac(&link.mac), new = %neigh::format_mac(&mac), "backend MAC changed");
                    self.links.insert(n.ip, Link { mac, ..link });
                    self.dirty = true;
                    return Vec::new();
                }
                Some(_) => return Vec::new(),
                None => {}
            }
        }
        self.resolve(n.ip, Duration::ZERO).into_iter().collect()
    }

    /// Re-evaluate every instance's tracking (service health, scripts, interface) and
    /// tell the instances whose result changed.
    fn update_tracking(&mut self) -> Vec<Effect> {
        let mut effects = Vec::new();
        let config = self.config.clone();
        for v in &config.vrrp {
            let service_healthy = |name: &str| -> (u32, u32) {
                let Some(svc) = config.services.iter().find(|s| s.name == name) else {
                    return (0, 0);
                };
                let up = svc
                    .backends
                    .iter()
                    .filter(|b| translate::healthy(svc, b.address, &self.health))
                    .count();
                (up as u32, svc.backends.len() as u32)
            };
            let script_ok = |p: &Path| self.scripts_ok.get(p).copied();
            let input = track::TrackInput {
                service_healthy: &service_healthy,
                script_ok: &script_ok,
            };
            let mut result = track::evaluate(&v.track, &input);
            if !self.sync_ready {
                result.delta -= i32::from(u8::MAX);
                result
                    .reasons
                    .push("flow sync: waiting for the peers' state (lowest priority)".into());
            }
            if self.links_up.get(&v.interface) == Some(&false) {
                result.fault = true;
                result
                    .reasons
                    .push(format!("interface {} is down", v.interface));
            }
            let now = Tracked {
                delta: result.delta,
                fault: result.fault,
                reasons: result.reasons,
            };
            if self.tracked.get(&v.name) != Some(&now) {
                tracing::info!(instance = %v.name, delta = now.delta, fault = now.fault, reasons = ?now.reasons, "VRRP tracking changed");
                effects.push(Effect::Track {
                    instance: v.name.clone(),
                    delta: now.delta,
                    fault: now.fault,
                });
                self.tracked.insert(v.name.clone(), now);
            }
        }
        effects
    }

    /// Re-read config: a bad one changes nothing and says why; a good one is applied
    /// (restart-only settings and `[[vrrp]]` keep their running values).
    fn on_reload(&mut self, result: Result<Config, ConfigError>) -> Vec<Effect> {
        let mut new = match result {
            Ok(c) => c,
            Err(e) => {
                let msg = format!("reload rejected, running config kept: {e}");
                tracing::error!("{msg}");
                self.last_reload = msg.clone();
                return vec![Effect::ReloadDone(Err(msg))];
            }
        };
        for name in keep_restart_only(&self.config.global, &mut new.global) {
            tracing::warn!(
                setting = name,
                "changing this setting needs a restart; keeping the running value"
            );
        }
        // Re-creating a VRRP instance restarts its election (a failover for nothing);
        // instance changes wait for a restart, and the running instances stay.
        let vrrp_changed = self.config.vrrp != new.vrrp;
        if vrrp_changed {
            tracing::warn!(
                "[[vrrp]] changes need an lbd restart; keeping the running VRRP instances"
            );
            new.vrrp = self.config.vrrp.clone();
        }
        // The sync task runs with the settings it started with.
        if self.config.sync != new.sync {
            tracing::warn!("[sync] changes need an lbd restart; keeping the running flow sync");
            new.sync = self.config.sync.clone();
        }
        // The BGP task drives the speaker it started with; VIPs, min_healthy and the
        // drain settings follow the new file.
        match (&self.config.bgp, &mut new.bgp) {
            (Some(running), Some(b)) if running.speaker != b.speaker => {
                tracing::warn!(
                    "[bgp] speaker changes need an lbd restart; keeping the running speaker"
                );
                b.speaker = running.speaker.clone();
            }
            (Some(_), None) | (None, Some(_)) => {
                tracing::warn!(
                    "adding or removing [bgp] needs an lbd restart; keeping the running [bgp]"
                );
                new.bgp = self.config.bgp.clone();
            }
            _ => {}
        }
        let previous = std::mem::replace(&mut self.config, Arc::new(new));
        self.backends = backends_of(&self.config);
        self.reload = Some(PendingReload {
            previous,
            vrrp_changed,
        });
        self.dirty = true;
        let mut effects = vec![
            self.checks(),
            Effect::Attach(self.config.interfaces.clone()),
        ];
        effects.extend(self.resolve_missing());
        effects.extend(self.flush());
        effects
    }

    fn on_applied(&mut self, result: Result<(), String>) -> Vec<Effect> {
        // The announcements follow the data plane: a failed apply (retried at the
        // next event) withdraws until one succeeds.
        self.installed = result.is_ok();
        let Some(reload) = self.reload.take() else {
            if let Err(e) = result {
                tracing::error!(error = %e, "data plane update failed; will retry on the next event");
            }
            return self.announce_changes();
        };
        match result {
            Err(e) => {
                let msg = format!("reload failed applying, running config restored: {e}");
                tracing::error!("{msg}");
                self.config = reload.previous;
                self.backends = backends_of(&self.config);
                self.last_reload = msg.clone();
                self.dirty = true;
                let mut effects = vec![self.checks()];
                effects.extend(self.flush());
                effects.push(Effect::ReloadDone(Err(msg)));
                effects
            }
            Ok(()) => {
                // Forget what belonged to backends the new config removed: a backend
                // added back later is resolved and checked afresh, not given a stale
                // MAC or state.
                let checked: HashSet<BackendKey> = self
                    .config
                    .services
                    .iter()
                    .flat_map(|s| s.backends.iter().map(|b| (s.name.clone(), b.address)))
                    .collect();
                self.health.retain(|key, _| checked.contains(key));
                let backends = &self.backends;
                self.links.retain(|ip, _| backends.contains(ip));
                let msg = format!(
                    "reloaded {} ({} services){}",
                    self.config_path.display(),
                    self.config.services.len(),
                    if reload.vrrp_changed {
                        "; [[vrrp]] changes need a restart"
                    } else {
                        ""
                    }
                );
                tracing::info!("{msg}");
                self.last_reload = msg.clone();
                let mut effects = self.update_tracking();
                effects.extend(self.announce_changes());
                effects.push(Effect::ReloadDone(Ok(msg)));
                effects
            }
        }
    }
}

fn backends_of(config: &Config) -> HashSet<IpAddr> {
    config
        .services
        .iter()
        .flat_map(|s| s.backends.iter().map(|b| b.address))
        .collect()
}

/// Settings a running lbd cannot change (map sizes, pins, sockets): keep the running
/// values in `new` and name those the new file changed. The one list of them.
pub fn keep_restart_only(running: &Global, new: &mut Global) -> Vec<&'static str> {
    let mut changed = Vec::new();
    macro_rules! keep {
        ($($field:ident),* $(,)?) => {$(
            if running.$field != new.$field {
                changed.push(stringify!($field));
                new.$field = running.$field.clone();
            }
        )*};
    }
    keep!(
        pin_dir,
        max_services,
        max_backends,
        conn_table_size,
        control_socket,
        metrics_listen,
    );
    changed
}

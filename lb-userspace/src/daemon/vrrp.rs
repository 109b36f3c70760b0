//! One VRRP instance at run time: a task that owns its raw socket and the pure state
//! machine (`lb_vrrp::state`), feeds it adverts and timers, and carries out its
//! actions: adverts out, VIPs added and removed over netlink, gratuitous ARP /
//! unsolicited NA bursts, notify scripts. State changes go to lbd's loop, which
//! switches the data plane's forwarding flag (forward while any instance is master).
//!
//! Restart without a gap: an lbd killed while master leaves its VIPs on the interface
//! and the data plane forwarding. A new instance that finds all its VIPs present
//! inherits mastership (forwarding stays on) until it either becomes master or hears
//! another master, in which case it steps down cleanly.

use std::{
    net::IpAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::{
    sync::{mpsc, oneshot},
    time::Instant,
};

use lb_config::VrrpConfig;
use lb_netlink::addr::AddrHandle;
use lb_vrrp::{
    announce::announce,
    io::VrrpSocket,
    notify::notify,
    packet::{decode, encode, MCAST_V4, MCAST_V6},
    state::{Action, Instance, State},
    Counters,
};

/// What lbd's loop tells an instance.
#[derive(Debug)]
pub enum Command {
    /// Tracking result: priority adjustment and whether the instance must be in FAULT.
    Track {
        /// Added to the base priority (clamped by the state machine).
        delta: i32,
        /// A weight-0 check failing, or the interface down.
        fault: bool,
    },
    /// Leave gracefully (priority-0 advert, VIPs removed); answered when done.
    Shutdown(oneshot::Sender<()>),
}

/// An instance's state as lbctl and metrics show it.
#[derive(Clone, Debug, Default)]
pub struct Status {
    /// "MASTER", "BACKUP", "FAULT", "INIT"/"STOP".
    pub state: String,
    /// Effective priority.
    pub priority: u8,
    /// Current master's address, if known.
    pub master: Option<IpAddr>,
    /// Our own address (tie-breaks, adverts' source).
    pub source: Option<IpAddr>,
    /// State transitions so far.
    pub transitions: u64,
    /// Adverts and drops.
    pub counters: Counters,
    /// The last error (socket, netlink), if any.
    pub last_error: Option<String>,
}

/// A running instance.
pub struct Handle {
    /// Instance name.
    pub name: String,
    /// Its config.
    pub config: VrrpConfig,
    /// Commands to it.
    pub commands: mpsc::Sender<Command>,
    /// Its status, updated by the task.
    pub status: Arc<Mutex<Status>>,
}

/// A state change reported to lbd's loop: (instance, forwarding wanted, told once the
/// loop has applied it).
pub type Event = (String, bool, Option<oneshot::Sender<()>>);

/// How long a new master waits for the data plane to forward before it adds the VIPs
/// (so the kernel never owns a VIP the XDP program is not yet forwarding for: it would
/// reset established connections that arrive in between).
const FORWARDING_BEFORE_VIPS: Duration = Duration::from_secs(1);

fn set_status(status: &Arc<Mutex<Status>>, f: impl FnOnce(&mut Status)) {
    if let Ok(mut s) = status.lock() {
        f(&mut s);
    }
}

/// Start an instance. Fails only if its socket cannot be opened.
/// `inherited`: all its VIPs were on the interface when lbd started (it was master
/// before a restart): forwarding stays on until the election settles.
pub fn spawn(
    config: VrrpConfig,
    inherited: bool,
    events: mpsc::Sender<Event>,
) -> Result<Handle, String> {
    let ipv6 = config
        .virtual_addresses
        .first()
        .is_some_and(|(a, _)| a.is_ipv6());
    let socket = VrrpSocket::open(
        &config.interface,
        ipv6,
        config.unicast_source,
        config.unicast_peers.is_empty(),
    )
    .map_err(|e| {
        format!(
            "VRRP instance {}: socket on {}: {e}",
            config.name, config.interface
        )
    })?;
    let (tx, rx) = mpsc::channel(16);
    let status = Arc::new(Mutex::new(Status {
        state: "INIT".into(),
        source: Some(socket.source()),
        ..Status::default()
    }));
    let handle = Handle {
        name: config.name.clone(),
        config: config.clone(),
        commands: tx,
        status: status.clone(),
    };
    tokio::spawn(run(config, socket, inherited, rx, events, status));
    Ok(handle)
}

struct Runner {
    config: VrrpConfig,
    socket: VrrpSocket,
    instance: Instance,
    auth: Option<[u8; 8]>,
    addr: Option<AddrHandle>,
    events: mpsc::Sender<Event>,
    status: Arc<Mutex<Status>>,
    counters: Counters,
    inherited: bool,
}

impl Runner {
    fn destinations(&self) -> Vec<IpAddr> {
        if !self.config.unicast_peers.is_empty() {
            return self.config.unicast_peers.clone();
        }
        if self.socket.source().is_ipv6() {
            vec![IpAddr::V6(MCAST_V6)]
        } else {
            vec![IpAddr::V4(MCAST_V4)]
        }
    }

    async fn vips(&self, add: bool) {
        let Some(addr) = &self.addr else { return };
        for (ip, prefix) in &self.config.virtual_addresses {
            let result = if add {
                addr.add(&self.config.interface, *ip, *prefix).await
            } else {
                addr.remove(&self.config.interface, *ip, *prefix).await
            };
            if let Err(e) = result {
                tracing::error!(instance = %self.config.name, vip = %ip, error = %e, add, "changing a VIP failed");
                set_status(&self.status, |s| s.last_error = Some(e.to_string()));
            }
        }
    }

    async fn execute(&mut self, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::SendAdvert { priority } => {
                    let advert = self.instance.make_advert(priority, self.auth);
                    for dst in self.destinations() {
                        match encode(
                            &advert,
                            self.socket.source(),
                            dst,
                            self.config.checksum_mode(),
                        ) {
                            Ok(bytes) => match self.socket.send(&bytes, dst).await {
                                Ok(()) => self.counters.record_sent(),
                                Err(e) => {
                                    tracing::warn!(instance = %self.config.name, %dst, error = %e, "sending an advert failed");
                                    set_status(&self.status, |s| {
                                        s.last_error = Some(e.to_string())
                                    });
                                }
                            },
                            Err(e) => {
                                tracing::error!(instance = %self.config.name, error = %e, "encoding an advert failed")
                            }
                        }
                    }
                }
                Action::BecomeMaster => {
                    tracing::info!(instance = %self.config.name, priority = self.instance.effective_priority(), "becoming MASTER: adding VIPs, forwarding on");
                    let (done, applied) = oneshot::channel();
                    let _ = self
                        .events
                        .send((self.config.name.clone(), true, Some(done)))
                        .await;
                    if tokio::time::timeout(FORWARDING_BEFORE_VIPS, applied)
                        .await
                        .is_err()
                    {
                        tracing::warn!(instance = %self.config.name, "forwarding was not on within 1 s; adding the VIPs anyway");
                    }
                    self.vips(true).await;
                }
                Action::LeaveMaster => {
                    tracing::info!(instance = %self.config.name, state = ?self.instance.state(), "leaving MASTER: forwarding off, removing VIPs");
                    let _ = self
                        .events
                        .send((self.config.name.clone(), false, None))
                        .await;
                    self.vips(false).await;
                }
                Action::SendGratuitous => {
                    let interface = self.config.interface.clone();
                    let addresses: Vec<IpAddr> = self
                        .config
                        .virtual_addresses
                        .iter()
                        .map(|(a, _)| *a)
                        .collect();
                    let repeat = self.config.garp_master_repeat.max(1);
                    let name = self.config.name.clone();
                    tokio::task::spawn_blocking(move || {
                        for _ in 0..repeat {
                            if let Err(e) = announce(&interface, &addresses) {
                                tracing::warn!(instance = %name, error = %e, "gratuitous ARP/NA failed");
                                break;
                            }
                        }
                    });
                }
                Action::Notify { state, priority } => {
                    tracing::info!(instance = %self.config.name, state = state.keepalived_name(), priority, "VRRP state");
                    notify(&self.config.notify, &self.config.name, state, priority);
                }
            }
        }
        self.resolve_inherited().await;
        self.publish();
    }

    /// Make the state and counters visible to `lbctl vrrp` and metrics now (after
    /// actions, and after every dropped packet, which runs no actions).
    fn publish(&mut self) {
        self.counters.sync_transitions(&self.instance);
        let (state, priority, master, transitions, counters) = (
            self.instance.state(),
            self.instance.effective_priority(),
            self.instance.master(),
            self.instance.transitions(),
            self.counters.clone(),
        );
        set_status(&self.status, |s| {
            s.state = state.keepalived_name().into();
            s.priority = priority;
            s.master = master;
            s.transitions = transitions;
            s.counters = counters;
        });
    }

    /// An inherited mastership ends when we become master for real, or when another
    /// live master is heard (then we step down: forwarding off, VIPs removed).
    async fn resolve_inherited(&mut self) {
        if !self.inherited {
            return;
        }
        let other_master = self
            .instance
            .master()
            .is_some_and(|m| m != self.socket.source());
        match self.instance.state() {
            State::Master => self.inherited = false,
            State::Backup | State::Fault
                if other_master || self.instance.state() == State::Fault =>
            {
                self.inherited = false;
                tracing::info!(instance = %self.config.name, "another master is active: releasing the inherited VIPs");
                let _ = self
                    .events
                    .send((self.config.name.clone(), false, None))
                    .await;
                self.vips(false).await;
            }
            _ => {}
        }
    }
}

async fn run(
    config: VrrpConfig,
    socket: VrrpSocket,
    inherited: bool,
    mut commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<Event>,
    status: Arc<Mutex<Status>>,
) {
    let icfg = config.instance_config(socket.source());
    let auth = config.auth();
    let expect = icfg.expect(auth);
    let addr = match AddrHandle::new().await {
        Ok(a) => Some(a),
        Err(e) => {
            tracing::error!(instance = %config.name, error = %e, "netlink for VIPs unavailable; VIPs will not be managed");
            None
        }
    };
    let mut r = Runner {
        instance: Instance::new(icfg, std::time::Instant::now()),
        config,
        socket,
        auth,
        addr,
        events,
        status,
        counters: Counters::default(),
        inherited,
    };
    if inherited {
        tracing::info!(instance = %r.config.name, "VIPs already on the interface (lbd restarted as master): keeping forwarding until the election settles");
        let _ = r.events.send((r.config.name.clone(), true, None)).await;
    }
    loop {
        let deadline = Instant::from_std(r.instance.next_deadline());
        tokio::select! {
            received = r.socket.recv() => match received {
                Ok(Ok(rx)) => {
                    // Our own (looped) adverts are not ours to count. Everything else
                    // is decoded and counted: other VRIDs as wrong_vrid, an empty or
                    // short payload as truncated, a stranger's advert with unicast
                    // peers set as not_a_peer.
                    if rx.src == r.socket.source() {
                        continue;
                    }
                    let decoded = decode(&rx, &expect);
                    r.counters.record_decode(&decoded);
                    match decoded {
                        Ok(advert) => {
                            let actions = r.instance.on_advert(rx.src, &advert, std::time::Instant::now());
                            r.execute(actions).await;
                        }
                        Err(reason) => {
                            tracing::debug!(instance = %r.config.name, from = %rx.src, reason = reason.name(), "advert dropped");
                            r.publish();
                        }
                    }
                }
                Ok(Err(reason)) => {
                    r.counters.record_drop(reason);
                    r.publish();
                }
                Err(e) => {
                    tracing::warn!(instance = %r.config.name, error = %e, "VRRP receive failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = tokio::time::sleep_until(deadline) => {
                let actions = r.instance.on_timer(std::time::Instant::now());
                r.execute(actions).await;
            }
            command = commands.recv() => match command {
                Some(Command::Track { delta, fault }) => {
                    let now = std::time::Instant::now();
                    let mut actions = r.instance.set_priority_adjustment(delta, now);
                    actions.extend(r.instance.set_fault(fault, now));
                    r.execute(actions).await;
                }
                Some(Command::Shutdown(done)) => {
                    let actions = r.instance.shutdown(std::time::Instant::now());
                    r.execute(actions).await;
                    let _ = done.send(());
                    return;
                }
                None => return,
            },
        }
    }
}

/// VRRP instances whose VIPs are all still on their interface: this node was master
/// before lbd (re)started, and keeps forwarding until the election settles.
pub(super) async fn inherited_masters(
    config: &lb_config::Config,
) -> std::collections::HashSet<String> {
    let mut out = std::collections::HashSet::new();
    if config.vrrp.is_empty() {
        return out;
    }
    let Ok(addr) = lb_netlink::addr::AddrHandle::new().await else {
        return out;
    };
    for v in &config.vrrp {
        let mut all = !v.virtual_addresses.is_empty();
        for (ip, _) in &v.virtual_addresses {
            all &= addr.has(&v.interface, *ip).await.unwrap_or(false);
        }
        if all {
            out.insert(v.name.clone());
        }
    }
    out
}

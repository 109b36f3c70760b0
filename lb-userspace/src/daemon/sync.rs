//! The flow sync's I/O, around `lb_sync::SyncCore` (the protocol, sans-IO): a UDP
//! socket to the peer LB nodes, the data plane's event ring (entries the XDP program
//! just created), a read-only handle on the pinned maps for refresh scans and full
//! dumps, and a channel to lbd's loop, which installs what peers send (the loop owns
//! the writes). Its own task: a flood of events or datagrams never stalls the loop;
//! overload drops sync messages (counted), never packets.
//!
//! What is sent: every entry the data plane creates (at once, from the ring), every
//! entry touched since the last scan (every `refresh_every`, so peers see long-lived
//! flows as alive and do not settle their slots; every second while the flood guard
//! refuses entries, see [`FLOOD_REFRESH`]), and everything, with the dirty slots, to a
//! peer that asks (its restart, or messages it missed).

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use aya::maps::{MapData, RingBuf};
use lb_api::view::SyncView;
use lb_common::maps::{addr_words, words_addr, Backend, ConnEvent, ConnKey, ServiceKey};
use lb_config::{Config, SyncPeer};
use lb_dataplane::{
    reconcile::{peer_dirty, peer_entries, PeerDirty, PeerEntry},
    Dataplane,
};
use lb_sync::{DirtySlots, FlowEntry, Settings, SyncCore, SyncEffect};
use tokio::{io::unix::AsyncFd, net::UdpSocket, sync::mpsc};

use crate::node::PeerUpdate;

/// Live sync status for observers.
pub type SyncStatus = Arc<Mutex<SyncView>>;

/// The loop's side of a running sync.
pub struct SyncHandle {
    /// Status for observers.
    pub status: SyncStatus,
    /// What peers sent, for the loop to install.
    pub updates: mpsc::Receiver<PeerUpdate>,
    /// Slots this node settled, for peers.
    pub settled: mpsc::Sender<PeerDirty>,
    /// Fires once the sync holds the peers' state (or gave up waiting).
    pub ready: tokio::sync::oneshot::Receiver<()>,
}

/// How long a start waits for the peers' state before it gives up (and says so).
const READY_AT_MOST: Duration = Duration::from_secs(30);

/// Installs waiting for the loop, at most (a burst beyond is dropped and counted).
const INSTALLS_QUEUED: usize = 256;
/// How often the core is ticked (hellos, paced sends, liveness).
const TICK: Duration = lb_sync::TICK_EVERY;
/// How often entries touched since the last scan are re-sent while the flood guard
/// refuses entries. A flood's synced entries churn a peer's connection table at the
/// guard's rate, and there no traffic references (protects) the real entries: re-sent
/// (re-inserted at the head of the peer's LRU) this often, they outlive the churn while
/// a table turns over in more than twice this time (`conn_table_size /
/// (conn_insert_limit x CPUs)`: 8 s by default on 2 CPUs).
pub const FLOOD_REFRESH: Duration = Duration::from_secs(1);

/// Ring events drained per wake-up before the task yields.
const EVENTS_PER_WAKE: usize = 4096;

/// Start the sync task if `[sync]` is configured.
pub fn spawn(config: &Config, dp_pin_dir: PathBuf) -> Result<Option<SyncHandle>, String> {
    let Some(sync) = &config.sync else {
        return Ok(None);
    };
    let peers = config.sync_peers();
    if peers.is_empty() {
        return Err("[sync]: no peers (none configured, and no VRRP instance names any)".into());
    }
    let port = sync.port;
    let mut destinations = Vec::new();
    let mut multicast: Option<(IpAddr, String)> = None;
    for p in &peers {
        match p {
            SyncPeer::Unicast(addr) => destinations.push(*addr),
            SyncPeer::Multicast { group, interface } => {
                destinations.push(*group);
                multicast = Some((group.ip(), interface.clone()));
            }
        }
    }
    let v6 = destinations.iter().any(|d| d.is_ipv6());
    let socket = bind(port, v6, multicast.as_ref())
        .map_err(|e| format!("sync socket on port {port}: {e}"))?;
    let epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1);
    let mut settings = Settings::new(node_id(config), sync.key.clone(), destinations);
    settings.max_messages_per_sec = sync.max_rate;
    settings.max_queue = sync.max_queue as usize;
    let core =
        SyncCore::new(settings, epoch, Instant::now()).map_err(|e| format!("[sync]: {e}"))?;
    let mut dp = Dataplane::open_pinned(&dp_pin_dir).map_err(|e| format!("sync: {e}"))?;
    let ring = dp.take_conn_events().map_err(|e| format!("sync: {e}"))?;
    // SAFETY: the ring owns its map's file descriptor, which stays open and the same
    // for as long as the AsyncFd owns the ring.
    let ring = unsafe { AsyncFd::register(ring) }.map_err(|e| format!("sync: event ring: {e}"))?;
    let status: SyncStatus = Arc::new(Mutex::new(core.view(Instant::now())));
    let (tx, rx) = mpsc::channel(INSTALLS_QUEUED);
    let (settled_tx, settled_rx) = mpsc::channel(INSTALLS_QUEUED);
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    // Entries touched since the last scan are re-sent as often as settling is checked:
    // peers then never see a live flow as idle for a settle or alive time.
    let refresh_every = crate::node::translate::timeouts(&config.global).check_every();
    let task = Task {
        core,
        socket,
        ring,
        dp: Some(dp),
        backends: Vec::new(),
        backends_read: None,
        installs: tx,
        settled: settled_rx,
        ready: Some(ready_tx),
        started: Instant::now(),
        status: status.clone(),
        refresh_every,
        last_scan_ns: None,
        install_drops: 0,
        looped_back: 0,
        unresolved: Vec::new(),
    };
    tokio::spawn(task.run());
    tracing::info!(peers = ?peers, port, "flow sync started");
    Ok(Some(SyncHandle {
        status,
        updates: rx,
        settled: settled_tx,
        ready: ready_rx,
    }))
}

/// This node's sync id: stable across restarts (a restart shows as a newer epoch), so
/// derived from `node_name` and the host name. Nodes that sync must differ in one of
/// them (a clash is logged: see [`Task::publish`]).
fn node_id(config: &Config) -> u64 {
    let mut host = [0u8; 256];
    // SAFETY: a valid buffer of its length; gethostname NUL-terminates what fits.
    unsafe { libc::gethostname(host.as_mut_ptr().cast(), host.len()) };
    let host = host.split(|b| *b == 0).next().unwrap_or_default();
    lb_sync::node_id(&[config.global.node_name.as_bytes(), host])
}

/// The sync socket: bound to the sync port on every address (IPv6 sockets take IPv4
/// too), joined to the multicast group on the VRRP interface if peers are a group.
fn bind(port: u16, v6: bool, multicast: Option<&(IpAddr, String)>) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let domain = if v6 || multicast.is_some_and(|(g, _)| g.is_ipv6()) {
        Domain::IPV6
    } else {
        Domain::IPV4
    };
    let socket = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
    // A full resync arrives paced, but a peer's dump of a large table still holds
    // hundreds of datagrams: room for them beyond the kernel's default (rmem_max
    // would cap a plain SO_RCVBUF; lbd runs with CAP_NET_ADMIN, so force it).
    force_buffer(&socket, libc::SO_RCVBUFFORCE, SOCKET_BUFFER);
    force_buffer(&socket, libc::SO_SNDBUFFORCE, SOCKET_BUFFER);
    socket.set_nonblocking(true)?;
    let any: SocketAddr = if domain == Domain::IPV6 {
        socket.set_only_v6(false)?;
        (Ipv6Addr::UNSPECIFIED, port).into()
    } else {
        (Ipv4Addr::UNSPECIFIED, port).into()
    };
    if let Some((group, interface)) = multicast {
        // Multicast leaves and arrives on the VRRP interface only.
        socket.bind_device(Some(interface.as_bytes()))?;
        let index = if_index(interface)?;
        match group {
            IpAddr::V4(g) => {
                socket.join_multicast_v4_n(g, &socket2::InterfaceIndexOrAddress::Index(index))?;
                socket.set_multicast_loop_v4(false)?;
                socket.set_multicast_ttl_v4(1)?;
            }
            IpAddr::V6(g) => {
                socket.join_multicast_v6(g, index)?;
                socket.set_multicast_if_v6(index)?;
                socket.set_multicast_loop_v6(false)?;
            }
        }
    }
    socket.bind(&any.into())?;
    UdpSocket::from_std(socket.into())
}

/// Bytes of the sync socket's receive and send buffers.
const SOCKET_BUFFER: libc::c_int = 4 << 20;

/// Set a socket buffer size past `rmem_max`/`wmem_max` (needs CAP_NET_ADMIN); without
/// the capability the kernel's default stays, which is logged.
fn force_buffer(socket: &socket2::Socket, option: libc::c_int, bytes: libc::c_int) {
    use std::os::fd::AsRawFd;
    // SAFETY: a valid socket descriptor and a c_int option value of its size.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            option,
            (&bytes as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        tracing::warn!(error = %std::io::Error::last_os_error(), bytes, "sync socket: could not enlarge its buffer; a large resync may lose datagrams (and is asked for again)");
    }
}

fn if_index(name: &str) -> std::io::Result<u32> {
    let c = std::ffi::CString::new(name).map_err(std::io::Error::other)?;
    // SAFETY: a valid NUL-terminated string.
    match unsafe { libc::if_nametoindex(c.as_ptr()) } {
        0 => Err(std::io::Error::last_os_error()),
        i => Ok(i),
    }
}

struct Task {
    core: SyncCore,
    socket: UdpSocket,
    ring: AsyncFd<RingBuf<MapData>>,
    /// Read-only maps; lent to the blocking pool for scans.
    dp: Option<Dataplane>,
    /// Backends as last read (an event names a backend by index).
    backends: Vec<Backend>,
    backends_read: Option<Instant>,
    installs: mpsc::Sender<PeerUpdate>,
    settled: mpsc::Receiver<PeerDirty>,
    /// Told once the peers' state is in.
    ready: Option<tokio::sync::oneshot::Sender<()>>,
    started: Instant,
    status: SyncStatus,
    refresh_every: Duration,
    /// The data plane's clock at the last refresh scan.
    last_scan_ns: Option<u64>,
    install_drops: u64,
    /// Own-id datagrams seen (a node-id clash), as last logged.
    looped_back: u64,
    /// Ring events naming a backend not read yet, tried again at the next tick.
    unresolved: Vec<ConnEvent>,
}

/// What a scan of the maps found.
struct Scan {
    entries: Vec<PeerEntry>,
    dirty: Vec<PeerDirty>,
    now_ns: u64,
}

impl Task {
    async fn run(mut self) {
        let mut tick = tokio::time::interval(TICK);
        let mut refresh = tokio::time::interval(FLOOD_REFRESH.min(self.refresh_every));
        let mut last_refresh = Instant::now();
        let mut refused = 0;
        let mut buf = vec![0u8; 65536];
        let effects = self.core.start(Instant::now());
        self.act(effects).await;
        loop {
            tokio::select! {
                received = self.socket.recv_from(&mut buf) => match received {
                    Ok((n, from)) => {
                        let from = unmap(from);
                        let effects = self.core.receive(from, &buf[..n], Instant::now());
                        self.act(effects).await;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "sync socket receive failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                ready = self.ring.readable_mut() => match ready {
                    Ok(mut guard) => {
                        let events = drain(guard.get_inner_mut());
                        // Readiness is cleared only once the ring is empty: events
                        // left over wake the task again at once.
                        if events.len() < EVENTS_PER_WAKE {
                            guard.clear_ready();
                        }
                        if !events.is_empty() {
                            let entries = self.entries_of(&events);
                            self.core.push(entries);
                            // Send now (within the budget), not at the next tick.
                            let effects = self.core.tick(Instant::now());
                            self.act(effects).await;
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "sync: the event ring failed; new entries are synced by scans only");
                        tokio::time::sleep(self.refresh_every).await;
                    }
                },
                _ = tick.tick() => {
                    if !self.unresolved.is_empty() {
                        let events = std::mem::take(&mut self.unresolved);
                        let entries = self.entries_of(&events);
                        self.core.push(entries);
                    }
                    let now = Instant::now();
                    let effects = self.core.tick(now);
                    self.act(effects).await;
                    self.publish();
                    self.check_ready(now);
                }
                _ = refresh.tick() => {
                    // Every refresh_every, or every tick while a flood is refused.
                    let now_refused = self.guard_refused();
                    let flood = std::mem::replace(&mut refused, now_refused) != now_refused;
                    if flood || last_refresh.elapsed() >= self.refresh_every {
                        last_refresh = Instant::now();
                        self.refresh().await;
                    }
                }
                Some(settled) = self.settled.recv() => self.core.push_settled(dirty_slots(&settled)),
            }
        }
    }

    /// Carry out the core's effects.
    async fn act(&mut self, effects: Vec<SyncEffect>) {
        for effect in effects {
            match effect {
                SyncEffect::Send { to, datagram } => {
                    // A full socket buffer drops the datagram (the core's sequence
                    // numbers let the peer notice and ask for a resync).
                    if let Err(e) = self.socket.try_send_to(&datagram, to) {
                        tracing::debug!(%to, error = %e, "sync datagram not sent");
                    }
                }
                SyncEffect::Install(entries) => {
                    let entries = entries.iter().filter_map(peer_entry).collect();
                    self.install(PeerUpdate::Entries(entries)).await;
                }
                SyncEffect::InstallDirty(d) => {
                    self.install(PeerUpdate::Dirty(peer_dirty_of(&d))).await
                }
                SyncEffect::InstallSettled(d) => {
                    self.install(PeerUpdate::Settled(peer_dirty_of(&d))).await
                }
                SyncEffect::DumpWanted { to } => {
                    if let Some(scan) = self.scan().await {
                        let entries = scan.entries.iter().map(flow_entry).collect();
                        let dirty = scan.dirty.iter().map(dirty_slots).collect();
                        self.core.push_full(to, entries, dirty);
                        tracing::info!(to = ?to, entries = scan.entries.len(), "sync: full state queued for a peer");
                    }
                }
            }
        }
    }

    /// Tell the loop once the peers' state is in (or the wait is over).
    fn check_ready(&mut self, now: Instant) {
        if self.ready.is_none() {
            return;
        }
        let caught_up = self.core.caught_up(now);
        if caught_up || now.duration_since(self.started) >= READY_AT_MOST {
            if !caught_up {
                tracing::warn!(waited = ?READY_AT_MOST, "flow sync: a peer's full resync did not finish; going on without it");
            }
            if let Some(tx) = self.ready.take() {
                let _ = tx.send(());
            }
        }
    }

    /// Hand an update to the loop. While the loop is behind this waits (backpressure:
    /// datagrams queue in the socket's buffer, and beyond it the kernel drops them,
    /// which the sequence numbers turn into a resync), so nothing the core counted as
    /// received is lost silently.
    async fn install(&mut self, update: PeerUpdate) {
        if self.installs.send(update).await.is_err() {
            self.install_drops += 1;
            tracing::warn!("sync: lbd's loop is gone; a peer update was dropped");
        }
    }

    /// The flood guard's refusals so far (0 if unreadable).
    fn guard_refused(&self) -> u64 {
        self.dp
            .as_ref()
            .and_then(|dp| lb_dataplane::DataplaneRead::flow_guard(dp).ok())
            .map_or(0, |g| g.refused)
    }

    /// Re-send entries touched since the last scan.
    async fn refresh(&mut self) {
        let Some(scan) = self.scan().await else {
            return;
        };
        let since = self.last_scan_ns.replace(scan.now_ns);
        let touched: Vec<FlowEntry> = scan
            .entries
            .iter()
            .filter(|e| since.is_none_or(|t| scan.now_ns.saturating_sub(e.idle_ns) > t))
            .map(flow_entry)
            .collect();
        if !touched.is_empty() {
            self.core.push(touched);
        }
    }

    /// Read the maps on the blocking pool.
    async fn scan(&mut self) -> Option<Scan> {
        let dp = self.dp.take()?;
        let (dp, result) = tokio::task::spawn_blocking(move || {
            let result = (|| {
                Ok::<_, lb_dataplane::DataplaneError>(Scan {
                    entries: peer_entries(&dp)?,
                    dirty: peer_dirty(&dp)?,
                    now_ns: lb_dataplane::reconcile::monotonic_ns(),
                })
            })();
            (dp, result)
        })
        .await
        .ok()?;
        self.dp = Some(dp);
        match result {
            Ok(scan) => Some(scan),
            Err(e) => {
                tracing::warn!(error = %e, "sync: reading the maps failed");
                None
            }
        }
    }

    /// Entries for the ring's events, backends by address. An event naming a backend
    /// this task has not read yet (or another generation) re-reads the backends, at
    /// most every 100 ms; events still unresolved wait (at most [`EVENTS_PER_WAKE`]) and
    /// are tried again at the next tick, or left to the next scan.
    fn entries_of(&mut self, events: &[ConnEvent]) -> Vec<FlowEntry> {
        let stale = |b: &[Backend], e: &ConnEvent| {
            b.get(e.value.backend as usize)
                .is_none_or(|b| b.gen != e.value.gen)
        };
        if events.iter().any(|e| stale(&self.backends, e))
            && self
                .backends_read
                .is_none_or(|t| t.elapsed() > Duration::from_millis(100))
        {
            if let Some(dp) = &self.dp {
                if let Ok(b) = lb_dataplane::DataplaneRead::backends(dp) {
                    self.backends = b;
                    self.backends_read = Some(Instant::now());
                }
            }
        }
        let mut out = Vec::with_capacity(events.len());
        for e in events {
            if stale(&self.backends, e) {
                if self.unresolved.len() < EVENTS_PER_WAKE {
                    self.unresolved.push(*e);
                }
                continue;
            }
            out.push(flow_entry(&PeerEntry {
                key: e.key,
                backend: words_addr(&self.backends[e.value.backend as usize].addr),
                idle_ns: 0,
            }));
        }
        out
    }

    fn publish(&mut self) {
        let mut view = self.core.view(Instant::now());
        view.enabled = true;
        // Multicast loop is off and peers are others: a datagram with our own id means
        // another node has the same node_name and host name, and each ignores the other.
        if view.looped_back > self.looped_back {
            if self.looped_back == 0 {
                tracing::error!("flow sync: datagrams carrying this node's own id arrive: another LB node has the same node_name and host name, and the two ignore each other; give each node its own node_name");
            }
            self.looped_back = view.looped_back;
        }
        if let Ok(mut s) = self.status.lock() {
            *s = view;
        }
    }
}

impl super::Shell {
    /// Settle dirty slots, and tell peers which (so they route those slots' untracked
    /// flows the same way at once, not at their own next settle).
    pub(super) fn settle(&mut self, timeouts: &lb_dataplane::reconcile::Timeouts) {
        match self
            .reconciler
            .settle(&mut self.dp, timeouts, Instant::now())
        {
            Ok(settled) => {
                if let Some((_, tx)) = &self.sync {
                    for s in settled {
                        if tx.try_send(s).is_err() {
                            tracing::warn!(
                                "sync: a settle notice for peers was dropped (queue full)"
                            );
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "settling dirty slots failed"),
        }
    }

    /// Install what a peer synced (a failure is logged; the peer's next refresh or
    /// resync brings it again). `carries_flows`: flows of this node's own may cross
    /// its data plane (`Node::carries_flows`); it then keeps its own dirty-slot state
    /// over a peer's.
    pub(super) fn install_peer(
        &mut self,
        update: PeerUpdate,
        timeouts: &lb_dataplane::reconcile::Timeouts,
        carries_flows: bool,
    ) {
        let now = Instant::now();
        let result = match &update {
            PeerUpdate::Entries(e) => self
                .reconciler
                .install_peer_entries(&mut self.dp, e, now)
                .map(|r| r.slots_marked),
            PeerUpdate::Dirty(d) => {
                self.reconciler
                    .install_peer_dirty(&mut self.dp, d, carries_flows, now)
            }
            PeerUpdate::Settled(d) => {
                self.reconciler
                    .install_peer_settled(&mut self.dp, d, timeouts, now)
            }
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "installing a peer's sync update failed");
        }
    }
}

/// Up to [`EVENTS_PER_WAKE`] events from the ring.
fn drain(ring: &mut RingBuf<MapData>) -> Vec<ConnEvent> {
    let mut out = Vec::new();
    while out.len() < EVENTS_PER_WAKE {
        let Some(item) = ring.next() else {
            break;
        };
        if item.len() >= std::mem::size_of::<ConnEvent>() {
            // SAFETY: the program writes whole ConnEvents (plain integers).
            out.push(unsafe { std::ptr::read_unaligned(item.as_ptr() as *const ConnEvent) });
        }
    }
    out
}

/// An IPv4-mapped source (an IPv6 socket receiving IPv4) as the IPv4 address it is.
fn unmap(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), v6.port()),
            None => addr,
        },
        v4 => v4,
    }
}

fn flow_entry(e: &PeerEntry) -> FlowEntry {
    FlowEntry {
        client: words_addr(&e.key.src),
        client_port: e.key.sport,
        vip: words_addr(&e.key.dst),
        vip_port: e.key.dport,
        proto: e.key.proto,
        backend: e.backend,
        idle_ms: (e.idle_ns / 1_000_000).min(u32::MAX as u64) as u32,
    }
}

fn peer_entry(e: &FlowEntry) -> Option<PeerEntry> {
    if e.client.is_ipv4() != e.vip.is_ipv4() {
        return None;
    }
    Some(PeerEntry {
        key: ConnKey {
            src: addr_words(e.client),
            dst: addr_words(e.vip),
            sport: e.client_port,
            dport: e.vip_port,
            proto: e.proto,
            _pad: 0,
            _pad2: 0,
        },
        backend: e.backend,
        idle_ns: e.idle_ms as u64 * 1_000_000,
    })
}

fn dirty_slots(d: &PeerDirty) -> DirtySlots {
    DirtySlots {
        vip: words_addr(&d.key.vip),
        port: d.key.port,
        proto: d.key.proto,
        table_len: d.table_len,
        slots: d.slots.clone(),
    }
}

fn peer_dirty_of(d: &DirtySlots) -> PeerDirty {
    PeerDirty {
        key: ServiceKey {
            vip: addr_words(d.vip),
            port: d.port,
            proto: d.proto,
            _pad: 0,
        },
        table_len: d.table_len,
        slots: d.slots.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_between_map_and_wire_form() {
        let e = PeerEntry {
            key: ConnKey {
                src: addr_words("192.0.2.1".parse().unwrap()),
                dst: addr_words("198.51.100.10".parse().unwrap()),
                sport: 40000,
                dport: 443,
                proto: 6,
                _pad: 0,
                _pad2: 0,
            },
            backend: "10.0.0.3".parse().unwrap(),
            idle_ns: 2_000_000_000,
        };
        assert_eq!(peer_entry(&flow_entry(&e)), Some(e));
        assert_eq!(
            unmap("[::ffff:10.0.0.1]:8848".parse().unwrap()),
            "10.0.0.1:8848".parse::<SocketAddr>().unwrap()
        );
    }
}

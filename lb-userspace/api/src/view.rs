//! Every view lbctl shows and the metrics export: services, backends, tracked
//! connections, counters, health, VRRP and daemon status. lbd and lbctl's pinned-map
//! fallback fill them; the CLI renders them; they travel as JSON on the control socket.

use std::net::{IpAddr, SocketAddr};

use lb_common::maps::TrafficStats;
use serde::{Deserialize, Serialize};

/// Traffic counters (summed over CPUs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Traffic {
    /// Packets forwarded.
    pub packets: u64,
    /// Bytes forwarded.
    pub bytes: u64,
    /// New flows (TCP SYNs).
    pub new_flows: u64,
}

impl From<TrafficStats> for Traffic {
    fn from(s: TrafficStats) -> Self {
        Traffic {
            packets: s.packets,
            bytes: s.bytes,
            new_flows: s.new_flows,
        }
    }
}

/// One backend of a service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackendView {
    /// Address.
    pub address: IpAddr,
    /// Operator's name, if configured.
    pub name: Option<String>,
    /// Data-plane index.
    pub index: u16,
    /// Configured weight (`None` when read from maps alone).
    pub weight: Option<u32>,
    /// "up", "draining" or "down".
    pub state: String,
    /// Maglev slots it holds.
    pub slots: usize,
    /// Health as the daemon sees it ("up: 1 consecutive passes", "down: connection refused").
    pub health: Option<String>,
    /// Backend MAC ("aa:bb:..."), if resolved.
    pub mac: Option<String>,
    /// Egress interface index.
    pub ifindex: u32,
    /// Connections the connection table tracks to it.
    pub tracked: usize,
    /// Counters.
    pub traffic: Traffic,
}

/// One service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceView {
    /// Operator's name, if known.
    pub name: Option<String>,
    /// VIP.
    pub vip: IpAddr,
    /// Port (0 = every port).
    pub port: u16,
    /// "tcp" or "udp".
    pub protocol: String,
    /// "maglev" or "source-hash".
    pub scheduler: String,
    /// Counter id.
    pub id: u32,
    /// Maglev table size.
    pub table_size: u32,
    /// Slots still consulting the connection table after a change.
    pub dirty_slots: usize,
    /// Counters.
    pub traffic: Traffic,
    /// Backends (including draining and down ones).
    pub backends: Vec<BackendView>,
}

/// A tracked connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnView {
    /// Client.
    pub client: SocketAddr,
    /// VIP side.
    pub vip: SocketAddr,
    /// "tcp" or "udp".
    pub protocol: String,
    /// Backend index.
    pub backend_index: u32,
    /// Backend address, if the index is in use.
    pub backend: Option<IpAddr>,
    /// Milliseconds since the data plane last refreshed the entry.
    pub idle_ms: u64,
}

/// The answer to `explain`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExplainView {
    /// "forward", "pass" or "drop".
    pub verdict: String,
    /// Matching service, if any.
    pub service: Option<String>,
    /// Chosen backend address.
    pub backend: Option<IpAddr>,
    /// Chosen backend index.
    pub backend_index: Option<u16>,
    /// Maglev slot.
    pub slot: Option<u32>,
    /// Why, in words.
    pub reason: String,
}

/// Data-plane outcome counters by name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters(pub Vec<(String, u64)>);

impl Counters {
    /// The counter called `name`, if there is one.
    pub fn get(&self, name: &str) -> Option<u64> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
    }
}

/// Health of one backend.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthView {
    /// Service name.
    pub service: String,
    /// Backend address.
    pub backend: std::net::IpAddr,
    /// Passing.
    pub up: bool,
    /// Last result.
    pub last: String,
    /// Last check latency in microseconds.
    pub latency_us: Option<u64>,
    /// Checks run.
    pub checks: u64,
    /// Probes that could not be made on lbd's host (out of descriptors, memory...):
    /// not checks, never failures.
    #[serde(default)]
    pub local_errors: u64,
    /// Seconds in this state.
    pub since_s: u64,
}

/// Daemon status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusView {
    /// Node name.
    pub node: String,
    /// Config file in use.
    pub config: String,
    /// VIP traffic forwarded (true) or passed to the kernel.
    pub forwarding: bool,
    /// Interfaces and attach mode ("driver", "skb", "adopted").
    pub interfaces: Vec<(String, String)>,
    /// Pin directory.
    pub pin_dir: String,
    /// Outcome counters.
    pub counters: Counters,
    /// Last reload result.
    pub last_reload: String,
}

/// One VRRP instance, for `lbctl vrrp` and metrics.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VrrpView {
    /// Instance name.
    pub name: String,
    /// Interface it runs on.
    pub interface: String,
    /// Virtual router id.
    pub vrid: u8,
    /// 2 or 3.
    pub version: u8,
    /// MASTER, BACKUP, FAULT, INIT or STOP (keepalived's names).
    pub state: String,
    /// Effective priority (after tracking).
    pub priority: u8,
    /// Configured priority.
    pub base_priority: u8,
    /// Current master, if known.
    pub master: Option<std::net::IpAddr>,
    /// Our source address.
    pub source: Option<std::net::IpAddr>,
    /// Virtual addresses ("ip/prefix").
    pub vips: Vec<String>,
    /// State transitions.
    pub transitions: u64,
    /// Adverts accepted.
    pub adverts_received: u64,
    /// Adverts sent.
    pub adverts_sent: u64,
    /// Adverts dropped, by reason.
    pub dropped: Vec<(String, u64)>,
    /// Tracking: priority adjustment and why.
    pub tracking: Vec<String>,
    /// Last socket or netlink error.
    pub last_error: Option<String>,
}

/// Flow sync between lbd nodes (`lb-sync`), for `lbctl status` and metrics: who we
/// exchange connection-table entries with, and what was sent, received and refused.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncView {
    /// Whether flow sync is configured at all (all other fields are empty when not).
    pub enabled: bool,
    /// This node's sync id.
    pub node_id: u64,
    /// This node's epoch (unix time in ns of this lbd's start).
    pub epoch: u64,
    /// Peers: nodes heard from, and configured unicast peers not heard from yet.
    #[serde(default)]
    pub peers: Vec<SyncPeerView>,
    /// Entries sent (counted once per datagram they went out in).
    #[serde(default)]
    pub entries_sent: u64,
    /// Datagrams sent.
    #[serde(default)]
    pub datagrams_sent: u64,
    /// Entries accepted from peers.
    #[serde(default)]
    pub entries_received: u64,
    /// Entries dropped before sending (send queue full, or a dump larger than the queue).
    #[serde(default)]
    pub entries_dropped: u64,
    /// Rejected datagrams, by reason ("bad_tag", "replay", "old_epoch", ...).
    #[serde(default)]
    pub rejected: std::collections::BTreeMap<String, u64>,
    /// Full resyncs we asked peers for.
    #[serde(default)]
    pub resyncs_requested: u64,
    /// Full resyncs we were asked for and answered.
    #[serde(default)]
    pub resyncs_served: u64,
    /// Entries (and dirty slots) waiting to be sent.
    #[serde(default)]
    pub queue: usize,
    /// Our own datagrams that came back to us (multicast loopback), ignored.
    #[serde(default)]
    pub looped_back: u64,
}

/// One flow-sync peer, as [`SyncView`] shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncPeerView {
    /// Address its datagrams come from (or the configured address, when not heard from).
    pub address: SocketAddr,
    /// Its node id (0 when not heard from).
    pub node_id: u64,
    /// Its current epoch (0 when not heard from).
    pub epoch: u64,
    /// "alive", "dead" or "unknown" (configured, never heard from).
    pub state: String,
    /// Seconds since its last valid datagram (`None` when never heard from).
    #[serde(default)]
    pub last_seen_secs: Option<u64>,
    /// Entries accepted from it.
    #[serde(default)]
    pub entries_received: u64,
    /// Datagrams accepted from it.
    #[serde(default)]
    pub datagrams_received: u64,
    /// Full resyncs we asked it for.
    #[serde(default)]
    pub resyncs_requested: u64,
    /// Full resyncs it asked us for, answered.
    #[serde(default)]
    pub resyncs_served: u64,
    /// Times it restarted (a newer epoch replaced its session).
    #[serde(default)]
    pub restarts: u64,
}

/// BGP announcement (`[bgp]`), as `lbctl bgp` shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BgpView {
    /// Whether `[bgp]` is configured (all other fields are empty when not).
    pub enabled: bool,
    /// The speaker lbd drives ("bird" or "command") and where (socket or program).
    pub speaker: String,
    /// Whether the last request to the speaker succeeded.
    pub speaker_ok: bool,
    /// The last error talking to the speaker, if the last attempt failed.
    #[serde(default)]
    pub last_error: Option<String>,
    /// Requests to the speaker that failed (each is retried).
    #[serde(default)]
    pub errors: u64,
    /// Announcement changes made (VIPs announced or withdrawn).
    #[serde(default)]
    pub changes: u64,
    /// This node is draining (withdrawn; exits when traffic stops or at the timeout).
    #[serde(default)]
    pub draining: bool,
    /// Each VIP: wanted announced or not, and what the speaker holds.
    #[serde(default)]
    pub vips: Vec<BgpVipView>,
    /// The speaker's BGP sessions as it reports them (BIRD's `show protocols`; a
    /// command speaker's `status_command` output, one line each).
    #[serde(default)]
    pub sessions: Vec<BgpSessionView>,
}

/// One VIP in [`BgpView`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BgpVipView {
    /// The VIP.
    pub vip: IpAddr,
    /// lbd wants it announced.
    pub wanted: bool,
    /// The speaker was last told to announce it (it holds what lbd wants when the
    /// last request succeeded).
    pub announced: bool,
    /// Why it is (or is not) wanted, in words.
    pub reason: String,
}

/// One BGP session in [`BgpView`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BgpSessionView {
    /// The speaker's name for it (BIRD's protocol name).
    pub name: String,
    /// Its state ("up", "start", ...).
    pub state: String,
    /// Details ("Established", "Active", the error, ...).
    pub info: String,
}

//! The `lbd` configuration: typed model, TOML parsing and validation.
//!
//! The file is TOML (see `example.toml` beside this file for every key, its default
//! and its meaning). [`parse`] turns text into a fully validated [`Config`] with every
//! default filled in, so the rest of the daemon never sees an optional setting or an
//! inconsistent one. The only file it reads is the one `[sync] key_file` names (so a
//! [`Config`] always holds its sync key); every other file the configuration names
//! (CA files, scripts) is found out when used. [`load`] reads the configuration file
//! and [`parse`]s it.
//!
//! Every error names the file, the 1-based line and the dotted field path
//! (`lbd.toml:23: service[1].backend[0].port: ...`), whether it is a TOML syntax error,
//! an unknown key, a value of the wrong type or a failed semantic check: an operator
//! editing a long file on a console should never have to guess which `port` is wrong.
//!
//! [`load`] reads regular files only, at most [`read::MAX_FILE_BYTES`], without
//! blocking on a FIFO (see [`read`]); every limit the kernel or the OS enforces later
//! (map sizes, the Unix socket path length) is checked here, so `lbd --check-config`
//! catches it before lbd attaches anything. The bounds are in [`limits`].
//!
//! The sync key (`[sync] key` or the content of `key_file`) is a secret: it is in
//! no error message, [`SyncConfig`]'s `Debug` shows it as `<redacted>`, and it is
//! not serialized (`lbctl --json` and anything else that serializes a [`Config`]
//! never sees it).

pub mod import;
mod raw;
pub mod read;
#[cfg(test)]
mod tests;
mod validate;

use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize, Serializer};

/// Upper bounds of the `[global]` capacities and paths, checked by [`parse`]: what
/// the kernel (map sizes) or the OS (socket paths) would refuse after lbd started.
pub mod limits {
    /// `maglev_table_size`: the largest table (a big table, in its own map element;
    /// up to [`lb_common::maps::MAX_TABLE_SIZE`] a table is in the service's value).
    pub const MAX_TABLE_SIZE: u32 = lb_common::maps::MAX_BIG_TABLE_SIZE as u32;
    /// `max_backends`: backend indices are 16-bit (`u16::MAX` means none).
    pub const MAX_BACKENDS: u32 = lb_common::maps::MAX_BACKENDS;
    /// `max_services`: service ids index the preallocated per-CPU service counters
    /// and size the preallocated fragment-route map; each service in use holds a
    /// 256 KiB Maglev table in kernel memory (65536 of them would be 16 GiB).
    pub const MAX_SERVICES: u32 = 1 << 16;
    /// `conn_table_size`: the LRU connection table is preallocated (about 104 bytes
    /// of kernel memory per entry: 2^26 is about 6.5 GiB), and the kernel refuses a
    /// hash map of more than 2^27 buckets after rounding the size up to a multiple
    /// of the CPU count and then to a power of two.
    pub const MAX_CONN_TABLE_SIZE: u32 = 1 << 26;
    /// `control_socket`: bytes of a Unix socket path (`sun_path` is 108 bytes,
    /// including the terminating NUL).
    pub const MAX_SOCKET_PATH: usize = 107;
    /// `timeout_tcp`, `timeout_tcpfin`, `timeout_udp`: at least 1 second...
    pub const MIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);
    /// ...and at most 31 days, keepalived's bound for `lvs_timeouts`.
    pub const MAX_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(31 * 86_400);
    /// `[sync] key` (or the content of `key_file`): at least 16 bytes...
    pub const MIN_SYNC_KEY_BYTES: usize = 16;
    /// ...and at most 4 KiB (also the most of `key_file` that is read).
    pub const MAX_SYNC_KEY_BYTES: usize = 4096;
    /// `[sync] max_rate`: datagrams per second.
    pub const MAX_SYNC_RATE: u32 = 1_000_000;
    /// `[sync] max_queue`: entries waiting to be sent.
    pub const MAX_SYNC_QUEUE: u32 = 1 << 24;
}

/// A complete, validated configuration with all defaults applied.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Config {
    /// Node-wide settings (`[global]`).
    pub global: Global,
    /// Interfaces the XDP program is attached to (`[[interface]]`, at least one).
    pub interfaces: Vec<Interface>,
    /// Virtual services (`[[service]]`), in file order.
    pub services: Vec<Service>,
    /// VRRP instances (`[[vrrp]]`), in file order. Empty: always-active mode, no
    /// VRRP; the node forwards per [`Global::forwarding`].
    pub vrrp: Vec<VrrpConfig>,
    /// Flow sync between LB nodes (`[sync]`); `None` when the section is absent
    /// (no sync). Where messages go: [`Config::sync_peers`].
    pub sync: Option<SyncConfig>,
    /// VIP announcement through a BGP speaker (`[bgp]`); `None` when the section is
    /// absent.
    pub bgp: Option<BgpConfig>,
}

/// Node-wide settings (`[global]`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Global {
    /// Name of this load-balancer node in logs, metrics and `lbctl` output (default `lbd`).
    pub node_name: String,
    /// Unix socket `lbctl` talks to (default `/run/lbd/lbd.sock`).
    pub control_socket: PathBuf,
    /// Prometheus listen address; `None` when disabled (`""` or `"off"`).
    /// Default `127.0.0.1:9469`.
    pub metrics_listen: Option<SocketAddr>,
    /// bpffs directory where maps and links are pinned so forwarding survives a
    /// restart of `lbd` (default `/sys/fs/bpf/lbd`).
    pub pin_dir: PathBuf,
    /// Seed of the flow hash; must be identical on every LB node so that flows keep
    /// their backend across a failover (default `0x4c42_5345`).
    pub hash_seed: u32,
    /// Maglev lookup table size M: a prime no larger than
    /// [`lb_common::maps::MAX_BIG_TABLE_SIZE`], or [`lb_common::maglev::AUTO_TABLE_SIZE`]
    /// (0, `"auto"`, the default: per service by [`lb_common::maglev::table_size`]).
    pub maglev_table_size: u32,
    /// Capacity of the service map (default 256).
    pub max_services: u32,
    /// Capacity of the backend map, at most [`lb_common::maps::MAX_BACKENDS`]
    /// (default 4096). Counts distinct backend addresses across all services.
    pub max_backends: u32,
    /// Capacity of the connection table (default 2^20).
    pub conn_table_size: u32,
    /// Flood guard: new connection-table entries allowed per CPU per second
    /// (`conn_insert_limit`); `None` (the key absent or 0) = automatic, computed by lbd.
    pub conn_insert_limit: Option<u32>,
    /// Idle timeout of a tracked TCP connection (`ipvsadm --set` tcp; default 900s,
    /// 1s..=31 days).
    #[serde(serialize_with = "serialize_duration")]
    pub timeout_tcp: Duration,
    /// Timeout of a TCP connection after a FIN (`ipvsadm --set` tcpfin; default
    /// 120s, 1s..=31 days).
    #[serde(serialize_with = "serialize_duration")]
    pub timeout_tcpfin: Duration,
    /// Idle timeout of a tracked UDP flow (`ipvsadm --set` udp; default 300s,
    /// 1s..=31 days).
    #[serde(serialize_with = "serialize_duration")]
    pub timeout_udp: Duration,
    /// How long Maglev slots that moved keep consulting the connection table for
    /// TCP services before they are settled; defaults to [`Global::timeout_tcp`].
    #[serde(serialize_with = "serialize_duration")]
    pub settle_after: Duration,
    /// Whether this node forwards VIP traffic at start (default [`Forwarding::Active`]).
    pub forwarding: Forwarding,
}

impl Default for Global {
    /// The documented defaults of every `[global]` key.
    fn default() -> Self {
        Global {
            node_name: "lbd".to_owned(),
            control_socket: PathBuf::from("/run/lbd/lbd.sock"),
            metrics_listen: Some(SocketAddr::from(([127, 0, 0, 1], 9469))),
            pin_dir: PathBuf::from("/sys/fs/bpf/lbd"),
            hash_seed: 0x4c42_5345,
            maglev_table_size: lb_common::maglev::AUTO_TABLE_SIZE,
            max_services: lb_common::maps::capacity::SERVICES,
            max_backends: lb_common::maps::capacity::BACKENDS,
            conn_table_size: lb_common::maps::capacity::CONNS,
            conn_insert_limit: None,
            timeout_tcp: Self::DEFAULT_TIMEOUT_TCP,
            timeout_tcpfin: Self::DEFAULT_TIMEOUT_TCPFIN,
            timeout_udp: Self::DEFAULT_TIMEOUT_UDP,
            settle_after: Self::DEFAULT_TIMEOUT_TCP,
            forwarding: Forwarding::Active,
        }
    }
}

impl Global {
    /// Default of `timeout_tcp` (and so of `settle_after`): 900s, IPVS's.
    pub const DEFAULT_TIMEOUT_TCP: Duration = Duration::from_secs(900);
    /// Default of `timeout_tcpfin`: 120s, IPVS's.
    pub const DEFAULT_TIMEOUT_TCPFIN: Duration = Duration::from_secs(120);
    /// Default of `timeout_udp`: 300s, IPVS's.
    pub const DEFAULT_TIMEOUT_UDP: Duration = Duration::from_secs(300);
}

/// Whether VIP traffic is forwarded by this node (`global.forwarding`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Forwarding {
    /// Forward VIP traffic to backends.
    Active,
    /// Pass VIP traffic to the kernel until told otherwise (a standby node).
    Standby,
}

/// One interface the XDP program is attached to (`[[interface]]`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Interface {
    /// Kernel interface name, e.g. `eth0`.
    pub name: String,
    /// XDP attach mode (default [`XdpMode::Auto`]).
    pub xdp_mode: XdpMode,
}

pub use lb_api::mode::XdpMode;

/// One virtual service: a VIP, port and protocol with its backends (`[[service]]`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Service {
    /// Unique display name, used by `lbctl` to refer to the service.
    pub name: String,
    /// Virtual IP (IPv4 or IPv6); backends are of the same family.
    pub vip: IpAddr,
    /// Destination port; 0 means every port of the VIP.
    pub port: u16,
    /// Transport protocol (default [`Protocol::Tcp`]).
    pub protocol: Protocol,
    /// Backend selection (default [`Scheduler::Maglev`]).
    pub scheduler: Scheduler,
    /// Health check applied to every backend.
    pub health: HealthCheck,
    /// Backends in file order; may be empty.
    pub backends: Vec<BackendConfig>,
}

/// Transport protocol of a service (`service.protocol`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP (IP protocol 6).
    Tcp,
    /// UDP (IP protocol 17).
    Udp,
}

impl Protocol {
    /// The IP protocol number used in map keys (6 for TCP, 17 for UDP).
    pub fn number(&self) -> u8 {
        match self {
            Protocol::Tcp => lb_common::maps::proto::TCP,
            Protocol::Udp => lb_common::maps::proto::UDP,
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        })
    }
}

/// How a backend is chosen for a new flow (`service.scheduler`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scheduler {
    /// Maglev consistent hashing over the 5-tuple.
    Maglev,
    /// Maglev consistent hashing over the client IP only (`source-hash`).
    SourceHash,
}

/// Health check of a service's backends (`[service.health]`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HealthCheck {
    /// What is checked (serialized flattened, as `kind` plus the kind's settings).
    #[serde(flatten)]
    pub kind: CheckKind,
    /// Time between the starts of two checks (default 2s, > 0).
    #[serde(serialize_with = "serialize_duration")]
    pub interval: Duration,
    /// Time after which a check counts as failed (default 1s, > 0, <= interval).
    #[serde(serialize_with = "serialize_duration")]
    pub timeout: Duration,
    /// Consecutive successes that bring a down backend up (default 1, >= 1).
    pub rise: u32,
    /// Consecutive failures that take an up backend down (default 2, >= 1).
    pub fall: u32,
    /// State before the first check: `false` = down (`start = "down"`, the default).
    pub start_up: bool,
    /// Port checked instead of the service port; required when the service port is
    /// 0 and the check is TCP, HTTP or HTTPS.
    pub port: Option<u16>,
}

impl Default for HealthCheck {
    /// The check a service gets without a `[service.health]` table: TCP connect,
    /// every 2s, 1s timeout, rise 1, fall 2, starting down, on the service port.
    fn default() -> Self {
        HealthCheck {
            kind: CheckKind::Tcp,
            interval: Duration::from_secs(2),
            timeout: Duration::from_secs(1),
            rise: 1,
            fall: 2,
            start_up: false,
            port: None,
        }
    }
}

/// What a health check does (`service.health.kind` and its settings).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum CheckKind {
    /// No check: backends are always considered up.
    None,
    /// TCP connect.
    Tcp,
    /// Plain HTTP GET.
    Http {
        /// Request path (default `/`).
        path: String,
        /// Status codes that count as healthy (default `[200]`).
        expect_status: Vec<u16>,
        /// `Host` header; the backend address when absent.
        host: Option<String>,
    },
    /// HTTP GET over TLS.
    Https {
        /// Request path (default `/`).
        path: String,
        /// Status codes that count as healthy (default `[200]`).
        expect_status: Vec<u16>,
        /// `Host` header and TLS server name; the backend address when absent.
        host: Option<String>,
        /// Verify the server certificate (default `false`, like keepalived's
        /// `SSL_GET`); against `ca_file` when given, else the system roots.
        tls_verify: bool,
        /// CA bundle for verification (existence is checked when used, not here).
        ca_file: Option<PathBuf>,
    },
    /// Run a program with arguments `<backend address> <port>`; exit 0 = healthy.
    Exec {
        /// Program to run.
        script: PathBuf,
    },
}

/// One backend of a service (`[[service.backend]]`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BackendConfig {
    /// Backend address, of the VIP's family (DR forwards at layer 2).
    pub address: IpAddr,
    /// Relative share of new flows, 0..=65535 (default 1); 0 drains the backend.
    pub weight: u32,
    /// Optional display name.
    pub name: Option<String>,
}

/// One VRRP instance (`[[vrrp]]`, keepalived's `vrrp_instance`).
///
/// Validated against what the VRRP core accepts ([`lb_vrrp::InstanceConfig::validate`]);
/// [`VrrpConfig::instance_config`] turns it into the state machine's configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VrrpConfig {
    /// Unique instance name (notify argument `INSTANCE <name> ...`, `lbctl`).
    pub name: String,
    /// Interface VRRP runs on: any valid interface name, not necessarily an
    /// `[[interface]]` the XDP program is attached to.
    pub interface: String,
    /// Virtual router id, 1..=255 (`virtual_router_id`).
    pub vrid: u8,
    /// Base priority, 1..=255; 255 = address owner (default 100).
    pub priority: u8,
    /// VRRP version (default 2; 2 carries IPv4 only).
    #[serde(serialize_with = "serialize_version")]
    pub version: lb_vrrp::Version,
    /// Advert interval (default 1s). v2: whole seconds 1..=255; v3: a multiple of
    /// 10ms, 10ms..=40.95s.
    #[serde(serialize_with = "serialize_duration")]
    pub advert_interval: Duration,
    /// Preempt a lower-priority master (default true; false = keepalived `nopreempt`).
    pub preempt: bool,
    /// How long a backup that would preempt waits first (default 0s, at most 1000s).
    #[serde(serialize_with = "serialize_duration")]
    pub preempt_delay: Duration,
    /// v2 `auth_type PASS` password, 1 to 8 bytes (never truncated).
    pub auth_pass: Option<String>,
    /// Source address of the adverts (keepalived `unicast_src_ip`); the interface's
    /// primary address of the family when absent.
    pub unicast_source: Option<IpAddr>,
    /// Unicast peers; empty = multicast (224.0.0.18 / ff02::12).
    pub unicast_peers: Vec<IpAddr>,
    /// The virtual addresses with their prefix length, all of one family; at least
    /// one. Serialized as `"ip/prefix"`.
    #[serde(serialize_with = "serialize_prefixes")]
    pub virtual_addresses: Vec<(IpAddr, u8)>,
    /// Tracked services and scripts that adjust the priority or force FAULT.
    pub track: Vec<Track>,
    /// Notify scripts.
    pub notify: Notify,
    /// Delay of the second gratuitous ARP / NA burst after becoming master
    /// (default 5s; 0 = no second burst).
    #[serde(serialize_with = "serialize_duration")]
    pub garp_master_delay: Duration,
    /// Gratuitous ARPs / unsolicited NAs per burst (default 5; 0 = none).
    pub garp_master_repeat: u32,
    /// How VRRPv3 over IPv4 is checksummed when sending (default
    /// [`V3Checksum::PseudoHeader`]); both forms are accepted on receive.
    pub v3_checksum: V3Checksum,
}

impl VrrpConfig {
    /// Address family of the instance (that of its virtual addresses): `true` = IPv4.
    pub fn is_ipv4(&self) -> bool {
        self.virtual_addresses
            .first()
            .is_none_or(|(ip, _)| ip.is_ipv4())
    }

    /// The 8 bytes of `auth_pass` as keepalived puts them on the wire (zero-padded);
    /// `None` without a password. Validation guarantees 1 to 8 bytes.
    pub fn auth(&self) -> Option<[u8; 8]> {
        self.auth_pass
            .as_deref()
            .and_then(|p| lb_vrrp::auth_from_password(p).ok())
    }

    /// The checksum form to send VRRPv3 over IPv4 with.
    pub fn checksum_mode(&self) -> lb_vrrp::ChecksumMode {
        self.v3_checksum.send_mode()
    }

    /// The state machine's configuration, with `primary` as our own address (the
    /// advert source and election tie-breaker: [`VrrpConfig::unicast_source`] when
    /// set, else the interface's primary address of the instance's family).
    pub fn instance_config(&self, primary: IpAddr) -> lb_vrrp::InstanceConfig {
        lb_vrrp::InstanceConfig {
            priority: self.priority,
            advert_int: self.advert_interval,
            preempt: self.preempt,
            preempt_delay: self.preempt_delay,
            unicast_peers: self.unicast_peers.clone(),
            garp_repeat: self.garp_master_repeat,
            garp_refresh_delay: self.garp_master_delay,
            ..lb_vrrp::InstanceConfig::new(
                self.name.clone(),
                self.vrid,
                self.version,
                primary,
                self.virtual_addresses.iter().map(|(ip, _)| *ip).collect(),
            )
        }
    }
}

/// One tracked object of a VRRP instance (`vrrp.track`), with keepalived's weight
/// semantics: a positive weight is added to the priority while the check succeeds,
/// a negative one while it fails; weight 0 puts the instance in FAULT while it
/// fails. See [`lb_vrrp::track::evaluate`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Track {
    /// A `[[service]]`: failing while fewer than `min_healthy` of its backends are
    /// healthy.
    Service {
        /// Name of a `[[service]]`.
        service: String,
        /// -253..=253 (default 0 = FAULT while failing).
        weight: i32,
        /// Healthy backends needed for the service to count as up (default 1, >= 1).
        min_healthy: u32,
    },
    /// A script (keepalived `vrrp_script`): exit status 0 = success.
    Script {
        /// Program to run (no arguments).
        script: PathBuf,
        /// Time between runs (default 1s, > 0).
        #[serde(serialize_with = "serialize_duration")]
        interval: Duration,
        /// Time after which a run counts as failed (default = interval, > 0, <= interval).
        #[serde(serialize_with = "serialize_duration")]
        timeout: Duration,
        /// -253..=253 (default 0 = FAULT while failing).
        weight: i32,
        /// Consecutive failures before the script counts as failing (default 1, >= 1).
        fall: u32,
        /// Consecutive successes before it counts as succeeding (default 1, >= 1).
        rise: u32,
    },
}

impl Track {
    /// The weight of either kind.
    pub fn weight(&self) -> i32 {
        match self {
            Track::Service { weight, .. } | Track::Script { weight, .. } => *weight,
        }
    }
}

pub use lb_vrrp::notify::Notify;

/// How VRRPv3 adverts over IPv4 are checksummed when sent (`vrrp.v3_checksum`).
/// IPv6 always includes the pseudo-header; v2 never does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum V3Checksum {
    /// Include the IPv4 pseudo-header, as keepalived and FRR do (and require).
    #[default]
    PseudoHeader,
    /// The VRRP message only, as RFC 9568 specifies.
    MessageOnly,
}

impl V3Checksum {
    /// The codec's send mode.
    pub fn send_mode(self) -> lb_vrrp::ChecksumMode {
        match self {
            V3Checksum::PseudoHeader => lb_vrrp::ChecksumMode::PseudoHeader,
            V3Checksum::MessageOnly => lb_vrrp::ChecksumMode::MessageOnly,
        }
    }
}

/// Flow sync between LB nodes (`[sync]`): which connections this node tracks, sent
/// to the other nodes so that a flow keeps its backend when its traffic moves.
///
/// `Debug` redacts the key and `Serialize` leaves it out: it never appears in logs,
/// `lbctl --json` or any other output.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct SyncConfig {
    /// The shared secret sync messages are authenticated with (`key`, or the content
    /// of `key_file` without its trailing whitespace): 16 to 4096 bytes, the same on
    /// every node. Never serialized, redacted by `Debug`.
    #[serde(skip)]
    pub key: Vec<u8>,
    /// The file the key was read from; `None` when it was written inline (`key`).
    pub key_file: Option<PathBuf>,
    /// UDP port sync messages are sent to and received on (default 8848, the IPVS
    /// sync daemon's).
    pub port: u16,
    /// Explicit peers (`"IP"`, `"IP:port"`, `"[IPv6]:port"`; the port defaults to
    /// [`SyncConfig::port`]), in file order, each once. Empty: taken from VRRP.
    pub peers: Vec<SocketAddr>,
    /// The VRRP instance whose peers receive sync messages (when `peers` is empty);
    /// `None` = every instance. Names a configured `[[vrrp]]`.
    pub instance: Option<String>,
    /// Multicast group used for a VRRP instance without unicast peers (default
    /// 224.0.0.81, the IPVS sync group). Always a multicast address.
    pub group: IpAddr,
    /// Sync datagrams sent per second, at most (default 2000, 1..=1000000).
    pub max_rate: u32,
    /// Entries waiting to be sent, at most (default 65536, 1..=16777216).
    pub max_queue: u32,
}

impl SyncConfig {
    /// Default `port`: the IPVS sync daemon's.
    pub const DEFAULT_PORT: u16 = 8848;
    /// Default `group`: the IPVS sync daemon's multicast group.
    pub const DEFAULT_GROUP: IpAddr = IpAddr::V4(Ipv4Addr::new(224, 0, 0, 81));
    /// Default `max_rate` (datagrams per second).
    pub const DEFAULT_MAX_RATE: u32 = 2000;
    /// Default `max_queue` (entries).
    pub const DEFAULT_MAX_QUEUE: u32 = 65536;
}

impl fmt::Debug for SyncConfig {
    /// Every field but the key, which is shown as `<redacted>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SyncConfig")
            .field("key", &format_args!("<redacted>"))
            .field("key_file", &self.key_file)
            .field("port", &self.port)
            .field("peers", &self.peers)
            .field("instance", &self.instance)
            .field("group", &self.group)
            .field("max_rate", &self.max_rate)
            .field("max_queue", &self.max_queue)
            .finish()
    }
}

/// Announcing VIPs through a BGP speaker the operator runs (`[bgp]`): lbd asks the
/// speaker to announce a VIP while this node can serve it and to withdraw it when it
/// cannot (see the node core's `announce` module for the rule).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BgpConfig {
    /// How lbd tells the speaker.
    pub speaker: Speaker,
    /// The VIPs announced; every service VIP when the file lists none.
    pub vips: Vec<IpAddr>,
    /// Usable backends each of a VIP's services needs for the VIP to be announced
    /// (default 1).
    pub min_healthy: u32,
    /// `lbctl drain` (and SIGTERM with `drain_on_stop`): how long lbd keeps forwarding
    /// after the withdrawal, at most, before it exits (default 60 s). It exits sooner
    /// once no packet for a VIP arrived for a few seconds.
    pub drain_timeout: Duration,
    /// SIGTERM drains (withdraw, forward until quiet or `drain_timeout`) before lbd
    /// exits (default false: withdraw and exit).
    pub drain_on_stop: bool,
    /// With `[sync]`: a node that has heard none of its sync peers for this long
    /// withdraws (it cannot learn the flows the router moves to it). `None` (the
    /// default) never withdraws for that: a node cannot tell a partition from its
    /// peers' deaths, and the last node standing must keep serving.
    pub isolated_after: Option<Duration>,
}

/// The speaker lbd drives (`[bgp] speaker`): the driver's own description.
pub use lb_bgp::speaker::Driver as Speaker;

impl BgpConfig {
    /// Default BIRD control socket (Debian's bird2).
    pub const DEFAULT_BIRD_SOCKET: &str = "/run/bird/bird.ctl";
    /// Default file for the announced routes.
    pub const DEFAULT_ROUTES_FILE: &str = "/var/lib/lbd/bird-vips.conf";
    /// Default `drain_timeout`.
    pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(60);
}

/// Where this node sends sync messages ([`Config::sync_peers`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum SyncPeer {
    /// A unicast peer. An IPv6 link-local address taken from a VRRP instance's
    /// unicast peers is on that instance's interface (its scope is not set here).
    Unicast(SocketAddr),
    /// The sync multicast group, sent on `interface` (a VRRP instance's).
    Multicast {
        /// `[sync] group` at `[sync] port`.
        group: SocketAddr,
        /// The interface to send on.
        interface: String,
    },
}

impl Config {
    /// Where sync messages go, each destination once, in file order; empty without
    /// `[sync]`:
    /// - the explicit `[sync] peers`, when there are any (their port defaults to
    ///   `[sync] port`);
    /// - else, for the VRRP instance named by `[sync] instance` (every instance
    ///   when none is named): its unicast peers at `[sync] port`, or, for an
    ///   instance without unicast peers, `[sync] group` at `[sync] port` on the
    ///   instance's interface.
    pub fn sync_peers(&self) -> Vec<SyncPeer> {
        let Some(sync) = &self.sync else {
            return Vec::new();
        };
        if !sync.peers.is_empty() {
            return sync.peers.iter().copied().map(SyncPeer::Unicast).collect();
        }
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        let chosen = self
            .vrrp
            .iter()
            .filter(|v| sync.instance.as_ref().is_none_or(|name| *name == v.name));
        for v in chosen {
            let peers: Vec<SyncPeer> = if v.unicast_peers.is_empty() {
                vec![SyncPeer::Multicast {
                    group: SocketAddr::new(sync.group, sync.port),
                    interface: v.interface.clone(),
                }]
            } else {
                v.unicast_peers
                    .iter()
                    .map(|ip| SyncPeer::Unicast(SocketAddr::new(*ip, sync.port)))
                    .collect()
            };
            for p in peers {
                if seen.insert(p.clone()) {
                    out.push(p);
                }
            }
        }
        out
    }
}

/// A configuration error, located by file, line and dotted field path.
///
/// Displays as `FILE:LINE: FIELD: MESSAGE`; `:LINE` is left out when no line is
/// known (e.g. a missing section, an unreadable file) and `FIELD: ` when the error
/// is not about one field (e.g. a TOML syntax error).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.render())]
pub struct ConfigError {
    /// The file the text came from (as given to [`parse`] or [`load`]).
    pub file: PathBuf,
    /// 1-based line of the offending key or value, when known.
    pub line: Option<usize>,
    /// Dotted field path such as `service[1].health.interval`; empty when none applies.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl ConfigError {
    fn render(&self) -> String {
        let mut out = self.file.display().to_string();
        if let Some(line) = self.line {
            out.push_str(&format!(":{line}"));
        }
        out.push_str(": ");
        if !self.field.is_empty() {
            out.push_str(&self.field);
            out.push_str(": ");
        }
        out.push_str(&self.message);
        out
    }
}

/// Parses and validates configuration text; `file` is only used in error messages.
///
/// The one file it reads is the sync key, `[sync] key_file` (an absolute path), with
/// the bounded reader of [`read`]; nothing else the configuration names is read.
pub fn parse(text: &str, file: &Path) -> Result<Config, ConfigError> {
    parse_with(text, file, KeyFiles::Read)
}

/// Whether [`parse_with`] reads `[sync] key_file`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeyFiles {
    /// Read it (what [`parse`] does).
    Read,
    /// Check the path but do not read it: the resulting [`SyncConfig::key`] is
    /// empty. For the keepalived importer, whose output names a key file the
    /// operator creates afterwards; such a [`Config`] must not be used to run.
    NotRead,
}

/// [`parse`], reading `[sync] key_file` or not.
pub(crate) fn parse_with(
    text: &str,
    file: &Path,
    key_files: KeyFiles,
) -> Result<Config, ConfigError> {
    check_characters(text, file)?;
    let de = toml::Deserializer::new(text);
    let raw: raw::RawConfig =
        serde_path_to_error::deserialize(de).map_err(|e| serde_error(text, file, e))?;
    validate::build(
        &validate::Ctx {
            text,
            file,
            key_files,
        },
        raw,
    )
}

/// Reads `path` (a regular file of at most [`read::MAX_FILE_BYTES`], UTF-8; a FIFO
/// or a device is refused without blocking) and [`parse`]s it (which reads
/// `[sync] key_file` too).
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = read::read_text(path, read::MAX_FILE_BYTES).map_err(|e| ConfigError {
        file: path.to_owned(),
        line: e.line,
        field: String::new(),
        message: format!("cannot read the configuration: {}", e.reason),
    })?;
    parse(&text, path)
}

/// TOML allows no control character but tab, outside escapes (line ends aside:
/// LF, and CR only before LF). The TOML parser rejects them with an empty message,
/// so they are found first, with their line and column.
fn check_characters(text: &str, file: &Path) -> Result<(), ConfigError> {
    let bytes = text.as_bytes();
    for (i, c) in text.char_indices() {
        let bad = match c {
            '\t' | '\n' => false,
            '\r' => bytes.get(i + 1) != Some(&b'\n'),
            c => c.is_ascii_control(),
        };
        if bad {
            let (line, column) = read::line_column(bytes, i);
            return Err(ConfigError {
                file: file.to_owned(),
                line: Some(line),
                field: String::new(),
                message: format!(
                    "control character U+{:04X} at column {column}: TOML allows none but tab (inside a string write it escaped, e.g. \"\\u{:04X}\")",
                    u32::from(c),
                    u32::from(c)
                ),
            });
        }
    }
    Ok(())
}

/// 1-based line of byte offset `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    let bytes = text.as_bytes();
    let end = offset.min(bytes.len());
    bytes[..end].iter().filter(|&&b| b == b'\n').count() + 1
}

/// Turns a deserialization error (syntax, unknown key, wrong type, missing key)
/// into a located [`ConfigError`].
fn serde_error(
    text: &str,
    file: &Path,
    err: serde_path_to_error::Error<toml::de::Error>,
) -> ConfigError {
    let mut field = String::new();
    for segment in err.path().iter() {
        match segment {
            serde_path_to_error::Segment::Seq { index } => field.push_str(&format!("[{index}]")),
            serde_path_to_error::Segment::Map { key: name }
            | serde_path_to_error::Segment::Enum { variant: name } => {
                // `toml::Spanned` shows up as an internal map layer: not a user key.
                if name.starts_with("$__serde_spanned") {
                    continue;
                }
                if !field.is_empty() {
                    field.push('.');
                }
                field.push_str(name);
            }
            serde_path_to_error::Segment::Unknown => {}
        }
    }
    let inner = err.into_inner();
    ConfigError {
        file: file.to_owned(),
        line: inner.span().map(|s| line_of(text, s.start)),
        field,
        message: match inner.message().trim_end() {
            "" => "invalid TOML here".to_owned(),
            m => m.to_owned(),
        },
    }
}

/// Serializes a duration the way the file spells it (`"15m"`, `"2s"`).
fn serialize_duration<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_duration(*d))
}

/// Serializes a VRRP version as its number (2 or 3).
fn serialize_version<S: Serializer>(v: &lb_vrrp::Version, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u8(v.number())
}

/// Serializes `(address, prefix)` pairs the way the file spells them (`"10.0.0.1/24"`).
fn serialize_prefixes<S: Serializer>(list: &[(IpAddr, u8)], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(list.iter().map(|(ip, len)| format!("{ip}/{len}")))
}

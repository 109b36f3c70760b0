//! The configuration file exactly as written: serde targets for the TOML text.
//!
//! Every leaf value is a [`Spanned`] so validation can point at the line it came
//! from; tables are not (a spanned table breaks TOML dotted keys), and every struct
//! denies unknown keys so a typo is an error instead of a silently ignored setting.
//! Defaults and meaning are applied in `validate.rs`, not here.

use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use super::{Forwarding, Protocol, Scheduler, V3Checksum, XdpMode};

/// An optional value that remembers where it was written.
pub(super) type Opt<T> = Option<Spanned<T>>;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(super) struct RawConfig {
    /// `[global]`.
    pub global: Option<RawGlobal>,
    /// `[[interface]]`.
    #[serde(default)]
    pub interface: Vec<RawInterface>,
    /// `[[service]]`.
    #[serde(default)]
    pub service: Vec<RawService>,
    /// `[[vrrp]]`.
    #[serde(default)]
    pub vrrp: Vec<RawVrrp>,
    /// `[sync]`.
    pub sync: Option<RawSync>,
    /// `[bgp]`.
    pub bgp: Option<RawBgp>,
}

/// `[global]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(super) struct RawGlobal {
    pub node_name: Opt<String>,
    pub control_socket: Opt<PathBuf>,
    pub metrics_listen: Opt<String>,
    pub pin_dir: Opt<PathBuf>,
    pub hash_seed: Opt<u32>,
    pub maglev_table_size: Opt<RawTableSize>,
    pub max_services: Opt<u32>,
    pub max_backends: Opt<u32>,
    pub conn_table_size: Opt<u32>,
    pub settle_after: Opt<String>,
    pub forwarding: Opt<Forwarding>,
    pub timeout_tcp: Opt<String>,
    pub timeout_tcpfin: Opt<String>,
    pub timeout_udp: Opt<String>,
    pub conn_insert_limit: Opt<u32>,
}

/// `[sync]`. Integers are read as `i64` so that range errors carry our message.
/// `key` is the secret: never put it in a message.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(super) struct RawSync {
    pub key: Opt<String>,
    pub key_file: Opt<PathBuf>,
    pub port: Opt<i64>,
    pub peers: Opt<Vec<Spanned<String>>>,
    pub instance: Opt<String>,
    pub group: Opt<String>,
    pub max_rate: Opt<i64>,
    pub max_queue: Opt<i64>,
}

impl std::fmt::Debug for RawSync {
    /// Everything but the key, which is shown as `<redacted>`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawSync")
            .field("key", &self.key.as_ref().map(|_| "<redacted>"))
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

/// `[bgp]`. Integers are read as `i64` so that range errors carry our message.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(super) struct RawBgp {
    pub speaker: Opt<String>,
    pub bird_socket: Opt<PathBuf>,
    pub routes_file: Opt<PathBuf>,
    pub announce_command: Opt<Vec<Spanned<String>>>,
    pub withdraw_command: Opt<Vec<Spanned<String>>>,
    pub status_command: Opt<Vec<Spanned<String>>>,
    pub vips: Opt<Vec<Spanned<String>>>,
    pub min_healthy: Opt<i64>,
    pub drain_timeout: Opt<String>,
    pub drain_on_stop: Opt<bool>,
    pub isolated_after: Opt<String>,
}

/// `[[interface]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(super) struct RawInterface {
    pub name: Spanned<String>,
    pub xdp_mode: Opt<XdpMode>,
}

/// `[[service]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(super) struct RawService {
    pub name: Spanned<String>,
    pub vip: Spanned<String>,
    pub port: Spanned<u16>,
    pub protocol: Opt<Protocol>,
    pub scheduler: Opt<Scheduler>,
    pub health: Option<RawHealth>,
    #[serde(default)]
    pub backend: Vec<RawBackend>,
}

/// `service.health.kind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum RawKind {
    None,
    Tcp,
    Http,
    Https,
    Exec,
}

/// `service.health.start`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum RawStart {
    Down,
    Up,
}

/// `[service.health]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(super) struct RawHealth {
    pub kind: Opt<RawKind>,
    pub path: Opt<String>,
    pub expect_status: Opt<Vec<Spanned<u16>>>,
    pub host: Opt<String>,
    pub tls_verify: Opt<bool>,
    pub ca_file: Opt<PathBuf>,
    pub script: Opt<PathBuf>,
    pub port: Opt<u16>,
    pub interval: Opt<String>,
    pub timeout: Opt<String>,
    pub rise: Opt<u32>,
    pub fall: Opt<u32>,
    pub start: Opt<RawStart>,
}

/// `[[service.backend]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(super) struct RawBackend {
    pub address: Spanned<String>,
    pub weight: Opt<u32>,
    pub port: Opt<u16>,
    pub name: Opt<String>,
}

/// `[[vrrp]]`. Integers are read as `i64` so that range errors carry our message
/// (with the allowed range) rather than serde's.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(super) struct RawVrrp {
    pub name: Spanned<String>,
    pub interface: Spanned<String>,
    pub virtual_router_id: Spanned<i64>,
    pub priority: Opt<i64>,
    pub version: Opt<i64>,
    pub advert_interval: Opt<String>,
    pub preempt: Opt<bool>,
    pub preempt_delay: Opt<String>,
    pub auth_pass: Opt<String>,
    pub unicast_source: Opt<String>,
    pub unicast_peers: Opt<Vec<Spanned<String>>>,
    pub virtual_addresses: Opt<Vec<Spanned<String>>>,
    #[serde(default)]
    pub track: Vec<RawTrack>,
    pub notify: Opt<PathBuf>,
    pub notify_master: Opt<PathBuf>,
    pub notify_backup: Opt<PathBuf>,
    pub notify_fault: Opt<PathBuf>,
    pub garp_master_delay: Opt<String>,
    pub garp_master_repeat: Opt<u32>,
    pub v3_checksum: Opt<V3Checksum>,
}

/// One entry of `vrrp.track`: a service (`service`, `weight`, `min_healthy`) or a
/// script (`script`, `interval`, `timeout`, `weight`, `fall`, `rise`). Which one is
/// decided, and misplaced keys reported, in validation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(super) struct RawTrack {
    pub service: Opt<String>,
    pub min_healthy: Opt<u32>,
    pub script: Opt<PathBuf>,
    pub interval: Opt<String>,
    pub timeout: Opt<String>,
    pub fall: Opt<u32>,
    pub rise: Opt<u32>,
    pub weight: Opt<i64>,
}

/// `[global] maglev_table_size` as written: a number or a word (`"auto"`), judged in
/// validation so the error names the line.
#[derive(Debug)]
pub(super) enum RawTableSize {
    /// An integer.
    Size(i64),
    /// A string.
    Word(String),
}

impl<'de> Deserialize<'de> for RawTableSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = RawTableSize;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a prime table size or \"auto\"")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<RawTableSize, E> {
                Ok(RawTableSize::Size(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<RawTableSize, E> {
                Ok(RawTableSize::Size(i64::try_from(v).unwrap_or(i64::MAX)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawTableSize, E> {
                Ok(RawTableSize::Word(v.to_owned()))
            }
        }
        d.deserialize_any(Visitor)
    }
}

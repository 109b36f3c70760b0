//! The configuration file exactly as written: serde targets for the TOML text.
//!
//! Every leaf value is a [`Spanned`] so validation can point at the line it came
//! from; tables are not (a spanned table breaks TOML dotted keys), and every struct
//! denies unknown keys so a typo is an error instead of a silently ignored setting.
//! Defaults and meaning are applied in `validate.rs`, not here.

use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use super::{Forwarding, Protocol, Scheduler, XdpMode};

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
    pub maglev_table_size: Opt<u32>,
    pub max_services: Opt<u32>,
    pub max_backends: Opt<u32>,
    pub conn_table_size: Opt<u32>,
    pub settle_after: Opt<String>,
    pub forwarding: Opt<Forwarding>,
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

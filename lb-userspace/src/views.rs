//! What `lbctl` shows and the metrics export: services, backends, tracked connections
//! and counters, read from the data plane's maps. [`from_maps`] needs nothing but the
//! maps, so `lbctl` can answer from pinned maps when lbd is down; the daemon then adds
//! names and health ([`ServiceView::name`], [`BackendView::health`]).

use std::net::{IpAddr, SocketAddr};

use lb_common::{
    maps::{
        outcome, words_addr, Backend, ServiceKey, TrafficStats, BACKEND_DOWN, BACKEND_DRAINING,
        BACKEND_UP, SVC_F_SOURCE_HASH,
    },
    select::How,
};
use serde::{Deserialize, Serialize};

use crate::{
    dataplane::{Dataplane, DataplaneError},
    explain::Explanation,
};

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

/// Protocol name of an IP protocol number.
pub fn protocol_name(proto: u8) -> String {
    match proto {
        6 => "tcp".into(),
        17 => "udp".into(),
        p => format!("proto-{p}"),
    }
}

fn state_name(state: u32) -> &'static str {
    match state {
        BACKEND_UP => "up",
        BACKEND_DRAINING => "draining",
        BACKEND_DOWN => "down",
        _ => "unknown",
    }
}

fn service_label(key: &ServiceKey) -> String {
    let vip = words_addr(&key.vip);
    match vip {
        IpAddr::V6(_) => format!("[{vip}]:{}/{}", key.port, protocol_name(key.proto)),
        IpAddr::V4(_) => format!("{vip}:{}/{}", key.port, protocol_name(key.proto)),
    }
}

/// Services, backends and counters as the maps hold them.
pub fn from_maps(dp: &Dataplane) -> Result<Vec<ServiceView>, DataplaneError> {
    let backends = dp.backends()?;
    let conns = dp.conns()?;
    let mut keys: Vec<ServiceKey> = dp.service_keys()?;
    keys.sort();
    let mut out = Vec::new();
    for key in keys {
        let Some(table) = dp.service(&key)? else {
            continue;
        };
        let mut slot_counts = std::collections::BTreeMap::new();
        for e in table.slots() {
            *slot_counts.entry(e.backend).or_insert(0usize) += 1;
        }
        let mut views = Vec::new();
        for (index, b) in backends.iter().enumerate() {
            if b.gen == 0
                || b.service != table.id
                || (b.state == BACKEND_DOWN && b.mac == [0; 6] && b.addr == [0; 4])
            {
                continue;
            }
            let index = index as u16;
            views.push(backend_view(
                dp,
                index,
                b,
                slot_counts.get(&index).copied().unwrap_or(0),
                conns
                    .values()
                    .filter(|c| c.backend == index as u32 && c.gen == b.gen)
                    .count(),
            )?);
        }
        out.push(ServiceView {
            name: None,
            vip: words_addr(&key.vip),
            port: key.port,
            protocol: protocol_name(key.proto),
            scheduler: if table.flags & SVC_F_SOURCE_HASH != 0 {
                "source-hash".into()
            } else {
                "maglev".into()
            },
            id: table.id,
            table_size: table.len,
            dirty_slots: table.slots().iter().filter(|e| e.is_dirty()).count(),
            traffic: dp.service_stats(table.id)?.into(),
            backends: views,
        });
    }
    Ok(out)
}

fn backend_view(
    dp: &Dataplane,
    index: u16,
    b: &Backend,
    slots: usize,
    tracked: usize,
) -> Result<BackendView, DataplaneError> {
    Ok(BackendView {
        address: words_addr(&b.addr),
        name: None,
        index,
        weight: None,
        state: state_name(b.state).into(),
        slots,
        health: None,
        mac: if b.ifindex == lb_common::maps::IFINDEX_LOCAL {
            Some("local".into())
        } else {
            (b.mac != [0; 6]).then(|| crate::neigh::format_mac(&b.mac))
        },
        ifindex: b.ifindex,
        tracked,
        traffic: dp.backend_stats(index)?.into(),
    })
}

/// Tracked connections, at most `limit`.
pub fn conns(dp: &Dataplane, limit: usize, now_ns: u64) -> Result<Vec<ConnView>, DataplaneError> {
    let backends = dp.backends()?;
    let mut out: Vec<ConnView> = dp
        .conns()?
        .into_iter()
        .map(|(k, v)| ConnView {
            client: SocketAddr::new(words_addr(&k.src), k.sport),
            vip: SocketAddr::new(words_addr(&k.dst), k.dport),
            protocol: protocol_name(k.proto),
            backend_index: v.backend,
            backend: backends
                .get(v.backend as usize)
                .filter(|b| b.gen == v.gen)
                .map(|b| words_addr(&b.addr)),
            idle_ms: now_ns.saturating_sub(v.last_seen_ns) / 1_000_000,
        })
        .collect();
    out.sort_by_key(|c| (c.vip, c.client));
    out.truncate(limit);
    Ok(out)
}

/// Outcome counters by name.
pub fn counters(dp: &Dataplane) -> Result<Counters, DataplaneError> {
    let values = dp.global_stats()?;
    Ok(Counters(
        outcome::NAMES
            .iter()
            .zip(values)
            .filter(|(n, _)| !n.starts_with("reserved"))
            .map(|(n, v)| (n.to_string(), v))
            .collect(),
    ))
}

/// Why an explain request could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    /// The protocol is not tcp or udp.
    #[error("unknown protocol {0:?} (tcp or udp)")]
    Protocol(String),
    /// Reading the maps failed.
    #[error(transparent)]
    Dataplane(#[from] DataplaneError),
}

/// Explain the flow `src` -> `dst` over `protocol` ("tcp" | "udp") against the live
/// maps: what `lbctl explain` asks, answered the same way by lbd and by lbctl's
/// pinned-map fallback.
pub fn explain_flow(
    dp: &Dataplane,
    src: SocketAddr,
    dst: SocketAddr,
    protocol: &str,
    syn: bool,
) -> Result<ExplainView, ExplainError> {
    let proto = match protocol {
        "tcp" => lb_common::maps::proto::TCP,
        "udp" => lb_common::maps::proto::UDP,
        other => return Err(ExplainError::Protocol(other.to_string())),
    };
    let flow = lb_common::maps::ConnKey {
        src: lb_common::maps::addr_words(src.ip()),
        dst: lb_common::maps::addr_words(dst.ip()),
        sport: src.port(),
        dport: dst.port(),
        proto,
        _pad: 0,
        _pad2: 0,
    };
    Ok(explain_view(&crate::explain::explain(dp, &flow, syn)?))
}

/// An [`Explanation`] in words.
pub fn explain_view(e: &Explanation) -> ExplainView {
    match e {
        Explanation::NotAService => ExplainView {
            verdict: "pass".into(),
            service: None,
            backend: None,
            backend_index: None,
            slot: None,
            reason: "no service matches this destination; the kernel handles it".into(),
        },
        Explanation::ForwardingOff { service } => ExplainView {
            verdict: "pass".into(),
            service: Some(service_label(service)),
            backend: None,
            backend_index: None,
            slot: None,
            reason:
                "forwarding is off on this node (standby or VRRP backup); the kernel handles it"
                    .into(),
        },
        Explanation::NoBackend { service } => ExplainView {
            verdict: "drop".into(),
            service: Some(service_label(service)),
            backend: None,
            backend_index: None,
            slot: None,
            reason: "the service has no usable backend".into(),
        },
        Explanation::Forward {
            service,
            choice,
            backend,
        } => ExplainView {
            verdict: "forward".into(),
            service: Some(service_label(service)),
            backend: Some(words_addr(&backend.addr)),
            backend_index: Some(choice.backend),
            slot: Some(choice.slot),
            reason: match choice.how {
                How::CleanSlot => format!("Maglev slot {} belongs to this backend", choice.slot),
                How::NewConnection => format!(
                    "new connection (SYN) on changed slot {}: the slot's current backend",
                    choice.slot
                ),
                How::Tracked => "the connection table tracks this flow on this backend".into(),
                How::PreChange => format!(
                    "slot {} changed; the flow predates the change and stays on its backend",
                    choice.slot
                ),
                How::Current => format!(
                    "slot {} changed and its previous backend is gone: the current backend",
                    choice.slot
                ),
                How::Rebalanced => {
                    "the tracked backend is down or replaced: re-balanced to the slot's backend"
                        .into()
                }
            },
        },
    }
}

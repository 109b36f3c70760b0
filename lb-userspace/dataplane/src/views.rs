//! The views lbctl and metrics show ([`lb_api::view`]), read from the data plane's maps.
//! [`from_maps`] needs nothing but the maps, so `lbctl` can answer from pinned maps when
//! lbd is down; lbd's observers then add names and health.
//!
//! Per-backend connection counts cost one walk of the connection table (see
//! [`tracked_counts`]), never one walk per backend.

use std::{collections::HashMap, net::SocketAddr};

use lb_api::fmt::{endpoint, format_mac, protocol_name};
use lb_api::view::{BackendView, ConnView, Counters, ExplainView, ServiceView};
use lb_common::{
    maps::{
        outcome, words_addr, Backend, ServiceKey, BACKEND_DOWN, BACKEND_DRAINING, BACKEND_UP,
        SVC_F_SOURCE_HASH,
    },
    select::How,
};

use crate::{explain::Explanation, DataplaneError, DataplaneRead};

fn state_name(state: u32) -> &'static str {
    match state {
        BACKEND_UP => "up",
        BACKEND_DRAINING => "draining",
        BACKEND_DOWN => "down",
        _ => "unknown",
    }
}

fn service_label(key: &ServiceKey) -> String {
    format!(
        "{}/{}",
        endpoint(words_addr(&key.vip), key.port),
        protocol_name(key.proto)
    )
}

/// Tracked connections per `(backend index, generation)`, as [`tracked_counts`] counts
/// them.
pub type TrackedCounts = HashMap<(u32, u32), usize>;

/// Count the connection table's entries per `(backend index, generation)` in one pass.
/// The cost is one walk of the table (two syscalls per entry: about a second at 1M
/// entries), independent of the number of backends; callers that answer often cache
/// the result (lbd's observer does, see `lb_userspace::observe`).
pub fn tracked_counts(dp: &(impl DataplaneRead + ?Sized)) -> Result<TrackedCounts, DataplaneError> {
    let mut counts = TrackedCounts::new();
    for v in dp.conns()?.values() {
        *counts.entry((u32::from(v.backend), v.gen)).or_insert(0) += 1;
    }
    Ok(counts)
}

/// Services, backends and counters as the maps hold them (walks the connection table
/// once for the tracked counts).
pub fn from_maps(dp: &(impl DataplaneRead + ?Sized)) -> Result<Vec<ServiceView>, DataplaneError> {
    from_maps_with(dp, &tracked_counts(dp)?)
}

/// [`from_maps`] with tracked-connection counts taken earlier (possibly cached): reads
/// the backends, service tables and counters but not the connection table.
pub fn from_maps_with(
    dp: &(impl DataplaneRead + ?Sized),
    tracked: &TrackedCounts,
) -> Result<Vec<ServiceView>, DataplaneError> {
    let backends = dp.backends()?;
    let mut keys: Vec<ServiceKey> = dp.service_keys()?;
    keys.sort();
    let mut out = Vec::new();
    for key in keys {
        let Some(table) = dp.service(&key)? else {
            continue;
        };
        let slot_counts = lb_common::maglev::slot_counts(table.slots().iter().map(|e| e.backend));
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
                tracked
                    .get(&(u32::from(index), b.gen))
                    .copied()
                    .unwrap_or(0),
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
            table_size: table.len(),
            dirty_slots: table.slots().iter().filter(|e| e.is_dirty()).count(),
            traffic: dp.service_stats(table.id)?.into(),
            backends: views,
        });
    }
    Ok(out)
}

fn backend_view(
    dp: &(impl DataplaneRead + ?Sized),
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
            (b.mac != [0; 6]).then(|| format_mac(&b.mac))
        },
        ifindex: b.ifindex,
        tracked,
        traffic: dp.backend_stats(index)?.into(),
    })
}

/// Tracked connections, at most `limit`.
pub fn conns(
    dp: &(impl DataplaneRead + ?Sized),
    limit: usize,
    now_ns: u64,
) -> Result<Vec<ConnView>, DataplaneError> {
    let backends = dp.backends()?;
    let mut out: Vec<ConnView> = dp
        .conns()?
        .into_iter()
        .map(|(k, v)| ConnView {
            client: SocketAddr::new(words_addr(&k.src), k.sport),
            vip: SocketAddr::new(words_addr(&k.dst), k.dport),
            protocol: protocol_name(k.proto),
            backend_index: u32::from(v.backend),
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
pub fn counters(dp: &(impl DataplaneRead + ?Sized)) -> Result<Counters, DataplaneError> {
    let values = dp.global_stats()?;
    let guard = dp.flow_guard()?;
    let mut counters: Vec<(String, u64)> = outcome::NAMES
        .iter()
        .zip(values)
        .filter(|(n, _)| !n.starts_with("reserved"))
        .map(|(n, v)| (n.to_string(), v))
        .collect();
    // Events of the flood guard and of the flow sync's event ring.
    counters.push(("conntrack_flood_refused".into(), guard.refused));
    counters.push(("sync_events_lost".into(), guard.events_lost));
    Ok(Counters(counters))
}

/// Why an explain request could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    /// The protocol is not tcp or udp.
    #[error("unknown protocol {0:?} (tcp or udp)")]
    Protocol(String),
    /// Client and VIP are of different address families: no packet carries such a flow.
    #[error("client {src} and VIP {dst} are of different address families")]
    MixedFamilies {
        /// The client address.
        src: std::net::IpAddr,
        /// The VIP address.
        dst: std::net::IpAddr,
    },
    /// Reading the maps failed.
    #[error(transparent)]
    Dataplane(#[from] DataplaneError),
}

/// Explain the flow `src` -> `dst` over `protocol` ("tcp" | "udp") against the live
/// maps: what `lbctl explain` asks, answered the same way by lbd and by lbctl's
/// pinned-map fallback.
pub fn explain_flow(
    dp: &(impl DataplaneRead + ?Sized),
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
    if src.is_ipv4() != dst.is_ipv4() {
        return Err(ExplainError::MixedFamilies {
            src: src.ip(),
            dst: dst.ip(),
        });
    }
    // An IPv6 packet to an IPv4-mapped address is no VIP's (the XDP parser passes it):
    // its flow key would equal the IPv4 flow's, so it must not be looked up.
    if let std::net::IpAddr::V6(v6) = dst.ip() {
        if v6.to_ipv4_mapped().is_some() {
            return Ok(explain_view(&Explanation::NotAService));
        }
    }
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

#[cfg(test)]
mod tests {
    use lb_common::maps::{addr_words, proto, ServiceKey, TableEntry, BACKEND_UP};

    use super::*;
    use crate::memory::MemoryDataplane;

    /// A data plane with one TCP service on 10.0.0.1:80 whose every slot is backend 0.
    fn one_service() -> MemoryDataplane {
        let mut dp = MemoryDataplane::new(1);
        dp.config.forwarding = 1;
        dp.backends[0].state = BACKEND_UP;
        let key = ServiceKey {
            vip: addr_words("10.0.0.1".parse().unwrap()),
            port: 80,
            proto: proto::TCP,
            _pad: 0,
        };
        let slots = [TableEntry {
            backend: 0,
            prev: lb_common::maps::NO_BACKEND,
        }; 7];
        dp.services
            .insert(key, crate::Table::new(1, 0, slots.to_vec()));
        dp
    }

    #[test]
    fn an_ipv4_flow_to_the_vip_is_forwarded() {
        let view = explain_flow(
            &one_service(),
            "192.0.2.1:4000".parse().unwrap(),
            "10.0.0.1:80".parse().unwrap(),
            "tcp",
            true,
        )
        .unwrap();
        assert_eq!(view.verdict, "forward");
    }

    /// The XDP parser passes IPv6 packets to IPv4-mapped addresses (their flow key
    /// would be the IPv4 flow's); explain says the same.
    #[test]
    fn an_ipv6_flow_to_an_ipv4_mapped_vip_is_passed() {
        let view = explain_flow(
            &one_service(),
            "[2001:db8::1]:4000".parse().unwrap(),
            "[::ffff:10.0.0.1]:80".parse().unwrap(),
            "tcp",
            true,
        )
        .unwrap();
        assert_eq!(view.verdict, "pass");
        assert!(view.backend.is_none());
    }

    #[test]
    fn mixed_families_are_refused() {
        for (src, dst) in [
            ("192.0.2.1:4000", "[2001:db8::10]:80"),
            ("[2001:db8::1]:4000", "10.0.0.1:80"),
        ] {
            let err = explain_flow(
                &one_service(),
                src.parse().unwrap(),
                dst.parse().unwrap(),
                "tcp",
                true,
            )
            .unwrap_err();
            assert!(
                matches!(err, ExplainError::MixedFamilies { .. }),
                "{src} -> {dst}: {err}"
            );
            assert!(err.to_string().contains("different address families"));
        }
    }
}

//! Which VIPs this node announces through its BGP speaker (`[bgp]`), and why each is or
//! is not announced. Pure: the node core calls [`decide`] after every change and emits
//! the result when it differs from the last.
//!
//! A VIP is announced while this node can serve it:
//! - the data plane is installed (the last apply succeeded: XDP attached, maps as
//!   decided) and past its start-up grace (table changes keep moved flows);
//! - the node forwards (always-active mode, or a VRRP master);
//! - with `[sync]`, the node holds its peers' flows (caught up after a start), and is
//!   not isolated from every peer past `isolated_after` (when set);
//! - it is not draining or stopping;
//! - each of the VIP's services has at least `min_healthy` usable backends (healthy,
//!   weight above 0, MAC known);
//! - to be announced anew (at start, or after a withdrawal), the VIP's health view has
//!   been *settled*: no health or MAC change in its services for one check round
//!   ([`hold`]). Backends come up one check at a time; a node announced after the first
//!   would take the router's share of established flows with a table of one backend and
//!   send the others' flows to it. A VIP already announced stays announced through
//!   changes that keep `min_healthy`; a withdrawal is never held.
//!
//! A dead lbd or node is the router's to notice (the BGP session, faster with BFD).

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

use lb_config::{BgpConfig, Config};
use lb_dataplane::reconcile::Link;
use lb_health::BackendKey;

use super::translate;

/// One VIP's decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VipDecision {
    /// The VIP.
    pub vip: IpAddr,
    /// Announce it.
    pub announce: bool,
    /// Why (or why not), in words.
    pub reason: String,
}

/// What the node knows that the decision depends on, besides config and health.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeState {
    /// The last apply succeeded (XDP attached, maps as decided).
    pub installed: bool,
    /// Past the start-up grace (or adopted a running data plane): table changes keep
    /// moved flows from now on.
    pub started: bool,
    /// The node forwards.
    pub forwarding: bool,
    /// The flow sync holds the peers' state (always true without `[sync]`).
    pub sync_ready: bool,
    /// No sync peer heard for longer than `isolated_after`.
    pub isolated: bool,
    /// `lbctl drain`, or SIGTERM: withdraw everything.
    pub draining: bool,
}

/// The VIPs `[bgp]` may announce: those it lists, else every service VIP; sorted.
pub fn candidates(config: &Config, bgp: &BgpConfig) -> BTreeSet<IpAddr> {
    if bgp.vips.is_empty() {
        config.services.iter().map(|s| s.vip).collect()
    } else {
        bgp.vips.iter().copied().collect()
    }
}

/// How long a VIP's health view must go without a change before it is announced anew:
/// one check round of its slowest service (`interval x (rise + 1) + timeout`), at most
/// 2 minutes.
pub fn hold(config: &Config, vip: IpAddr) -> std::time::Duration {
    config
        .services
        .iter()
        .filter(|s| s.vip == vip)
        .map(translate::check_round)
        .max()
        .unwrap_or_default()
        .min(std::time::Duration::from_secs(120))
}

/// The decision for every candidate VIP, in address order. Empty without `[bgp]`.
/// `settled(vip)`: the VIP is announced already, or its health view was quiet for
/// [`hold`].
pub fn decide(
    config: &Config,
    health: &HashMap<BackendKey, bool>,
    links: &HashMap<IpAddr, Link>,
    state: NodeState,
    settled: &dyn Fn(IpAddr) -> bool,
) -> Vec<VipDecision> {
    let Some(bgp) = &config.bgp else {
        return Vec::new();
    };
    // Node-wide reasons first: they hold for every VIP.
    let node_wide = if state.draining {
        Some("draining: withdrawn until lbd stops".to_owned())
    } else if !state.installed {
        Some("the data plane is not installed (or the last update failed)".to_owned())
    } else if !state.started {
        Some("starting: the first health results are not in yet (start-up grace)".to_owned())
    } else if !state.forwarding {
        Some(if config.vrrp.is_empty() {
            "forwarding is off ([global] forwarding)".to_owned()
        } else {
            "not a VRRP master: the master announces".to_owned()
        })
    } else if !state.sync_ready {
        Some("flow sync: waiting for the peers' state".to_owned())
    } else if state.isolated {
        Some("flow sync: no peer heard for longer than isolated_after".to_owned())
    } else {
        None
    };
    candidates(config, bgp)
        .into_iter()
        .map(|vip| {
            if let Some(reason) = &node_wide {
                return VipDecision {
                    vip,
                    announce: false,
                    reason: reason.clone(),
                };
            }
            let mut short = Vec::new();
            let mut counts = Vec::new();
            for svc in config.services.iter().filter(|s| s.vip == vip) {
                let usable = svc
                    .backends
                    .iter()
                    .filter(|b| {
                        b.weight > 0
                            && links.contains_key(&b.address)
                            && translate::healthy(svc, b.address, health)
                    })
                    .count() as u32;
                counts.push(format!("{} {}/{}", svc.name, usable, svc.backends.len()));
                if usable < bgp.min_healthy {
                    short.push(format!(
                        "service {}: {usable} of {} backends usable, min_healthy {}",
                        svc.name,
                        svc.backends.len(),
                        bgp.min_healthy
                    ));
                }
            }
            if short.is_empty() && !settled(vip) {
                VipDecision {
                    vip,
                    announce: false,
                    reason: format!(
                        "health view settling: announced once no check changed for {:?} ({} usable)",
                        hold(config, vip),
                        counts.join(", ")
                    ),
                }
            } else if short.is_empty() {
                VipDecision {
                    vip,
                    announce: true,
                    reason: format!("serving ({} usable)", counts.join(", ")),
                }
            } else {
                VipDecision {
                    vip,
                    announce: false,
                    reason: short.join("; "),
                }
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> Config {
        let text = format!(
            r#"
[[interface]]
name = "eth0"
[[service]]
name = "web"
vip = "10.0.0.100"
port = 80
health = {{ kind = "tcp", interval = "1s" }}
backend = [{{ address = "10.0.0.11" }}, {{ address = "10.0.0.12" }}]
[[service]]
name = "dns"
vip = "10.0.0.53"
port = 53
protocol = "udp"
health = {{ kind = "none" }}
backend = [{{ address = "10.0.0.21" }}]
[bgp]
speaker = "bird"
{extra}
"#
        );
        lb_config::parse(&text, std::path::Path::new("t.toml")).unwrap()
    }

    fn link() -> Link {
        Link {
            mac: [2, 0, 0, 0, 0, 1],
            ifindex: 2,
            src_mac: [2, 0, 0, 0, 0, 2],
        }
    }

    fn links(ips: &[&str]) -> HashMap<IpAddr, Link> {
        ips.iter().map(|s| (s.parse().unwrap(), link())).collect()
    }

    fn up() -> NodeState {
        NodeState {
            installed: true,
            started: true,
            forwarding: true,
            sync_ready: true,
            isolated: false,
            draining: false,
        }
    }

    fn announced(d: &[VipDecision]) -> Vec<String> {
        d.iter()
            .filter(|v| v.announce)
            .map(|v| v.vip.to_string())
            .collect()
    }

    #[test]
    fn every_service_vip_with_usable_backends() {
        let c = config("");
        let l = links(&["10.0.0.11", "10.0.0.12", "10.0.0.21"]);
        let d = decide(&c, &HashMap::new(), &l, up(), &|_| true);
        // Start-up state of a checked backend is down until its first check.
        assert_eq!(announced(&d), ["10.0.0.53"]);
        let health: HashMap<BackendKey, bool> =
            [(("web".to_owned(), "10.0.0.12".parse().unwrap()), true)].into();
        let d = decide(&c, &health, &l, up(), &|_| true);
        assert_eq!(announced(&d), ["10.0.0.53", "10.0.0.100"]);
        assert_eq!(d[1].reason, "serving (web 1/2 usable)");
    }

    #[test]
    fn min_healthy_and_unknown_macs() {
        // Only web's VIP is announced (dns has one backend, below min_healthy).
        let c = config("vips = [\"10.0.0.100\"]\nmin_healthy = 2");
        let health: HashMap<BackendKey, bool> = [
            (("web".to_owned(), "10.0.0.11".parse().unwrap()), true),
            (("web".to_owned(), "10.0.0.12".parse().unwrap()), true),
        ]
        .into();
        let d = decide(
            &c,
            &health,
            &links(&["10.0.0.11", "10.0.0.21"]),
            up(),
            &|_| true,
        );
        assert!(announced(&d).is_empty(), "{d:?}");
        assert_eq!(d.len(), 1, "{d:?}");
        assert!(
            d[0].reason
                .contains("web: 1 of 2 backends usable, min_healthy 2"),
            "{}",
            d[0].reason
        );
        let d = decide(
            &c,
            &health,
            &links(&["10.0.0.11", "10.0.0.12"]),
            up(),
            &|_| true,
        );
        assert_eq!(announced(&d), ["10.0.0.100"]);
    }

    #[test]
    fn node_wide_reasons_withdraw_everything() {
        let c = config("");
        let l = links(&["10.0.0.21"]);
        for (state, why) in [
            (
                NodeState {
                    draining: true,
                    ..up()
                },
                "draining",
            ),
            (
                NodeState {
                    installed: false,
                    ..up()
                },
                "not installed",
            ),
            (
                NodeState {
                    started: false,
                    ..up()
                },
                "start-up grace",
            ),
            (
                NodeState {
                    forwarding: false,
                    ..up()
                },
                "forwarding is off",
            ),
            (
                NodeState {
                    sync_ready: false,
                    ..up()
                },
                "waiting for the peers",
            ),
            (
                NodeState {
                    isolated: true,
                    ..up()
                },
                "isolated_after",
            ),
        ] {
            let d = decide(&c, &HashMap::new(), &l, state, &|_| true);
            assert!(announced(&d).is_empty(), "{why}");
            assert!(d.iter().all(|v| v.reason.contains(why)), "{why}: {d:?}");
        }
    }

    #[test]
    fn only_the_listed_vips() {
        let c = config(r#"vips = ["10.0.0.53"]"#);
        let d = decide(&c, &HashMap::new(), &links(&["10.0.0.21"]), up(), &|_| true);
        assert_eq!(d.len(), 1);
        assert_eq!(announced(&d), ["10.0.0.53"]);
    }

    #[test]
    fn a_vip_is_announced_anew_only_once_its_health_view_settled() {
        let c = config("");
        let d = decide(&c, &HashMap::new(), &links(&["10.0.0.21"]), up(), &|_| {
            false
        });
        assert!(announced(&d).is_empty());
        assert!(
            d[0].reason.starts_with("health view settling"),
            "{}",
            d[0].reason
        );
        // dns: health kind none, interval 2 s (the default), rise 1, timeout 1 s.
        assert_eq!(
            hold(&c, "10.0.0.53".parse().unwrap()),
            std::time::Duration::from_secs(5)
        );
    }

    #[test]
    fn without_bgp_nothing() {
        let mut c = config("");
        c.bgp = None;
        assert!(decide(&c, &HashMap::new(), &HashMap::new(), up(), &|_| true).is_empty());
    }
}

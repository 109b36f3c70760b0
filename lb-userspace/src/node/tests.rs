//! The node core driven through events, without root or I/O: each test feeds events and
//! asserts the effects the shell would carry out.

use std::{collections::HashMap, net::IpAddr, path::Path, time::Duration};

use lb_common::maps::{addr_words, Backend, BACKEND_DOWN, BACKEND_UP};
use lb_config::Config;
use lb_dataplane::reconcile::{Link, Timeouts};
use lb_netlink::neigh::{NeighState, Neighbor};

use super::*;

const BASE: &str = r#"
[global]
settle_after = "8s"

[[interface]]
name = "eth0"

[[service]]
name = "web"
vip = "10.0.0.100"
port = 80
[service.health]
kind = "tcp"
start = "down"
[[service.backend]]
address = "10.0.0.1"
[[service.backend]]
address = "10.0.0.2"
"#;

const VRRP: &str = r#"
[[vrrp]]
name = "VI"
interface = "eth0"
virtual_router_id = 7
priority = 150
virtual_addresses = ["10.0.0.100/24"]
track = [{ service = "web", weight = -60 }]
"#;

fn parse(text: &str) -> Config {
    lb_config::parse(text, Path::new("lbd.toml")).expect("valid test config")
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

fn link(last: u8) -> Link {
    Link {
        mac: [2, 0, 0, 0, 0, last],
        ifindex: 3,
        src_mac: [2, 0, 0, 0, 0, 0xff],
    }
}

fn node(text: &str) -> (Node, Vec<Effect>) {
    Node::new("lbd.toml".into(), parse(text), Start::default())
}

fn applies(effects: &[Effect]) -> Vec<&Desired> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Apply(d) => Some(d),
            _ => None,
        })
        .collect()
}

fn one_apply(effects: &[Effect]) -> &Desired {
    let a = applies(effects);
    assert_eq!(a.len(), 1, "exactly one apply in {effects:?}");
    a[0]
}

/// Feed `Applied(Ok)` until the node has nothing left to say.
fn settle_applies(node: &mut Node, mut effects: Vec<Effect>) -> Vec<Effect> {
    let mut all = Vec::new();
    while !effects.is_empty() {
        let mut next = Vec::new();
        for e in effects {
            if matches!(e, Effect::Apply(_)) {
                next.extend(node.handle(Event::Applied(Ok(()))));
            }
            all.push(e);
        }
        effects = next;
    }
    all
}

fn up(node: &mut Node, backend: &str, is_up: bool) -> Vec<Effect> {
    node.handle(Event::Health {
        key: ("web".into(), ip(backend)),
        up: is_up,
    })
}

#[test]
fn start_sets_checks_applies_attaches_and_resolves_every_backend() {
    let (_, effects) = node(BASE);
    let Effect::SetChecks(checks) = &effects[0] else {
        panic!("checks first: {effects:?}")
    };
    assert_eq!(checks.len(), 2);
    let d = one_apply(&effects);
    assert!(d.forwarding, "no VRRP: forwarding = active");
    assert!(
        d.services[0]
            .backends
            .iter()
            .all(|b| !b.healthy && b.link.is_none()),
        "start = down, no MAC yet"
    );
    assert!(effects.contains(&Effect::Attach(parse(BASE).interfaces)));
    for b in ["10.0.0.1", "10.0.0.2"] {
        assert!(effects.contains(&Effect::Resolve {
            ip: ip(b),
            delay: Duration::ZERO
        }));
    }
}

#[test]
fn a_burst_of_health_and_mac_events_is_one_apply() {
    let (mut n, _) = node(BASE);
    let mut effects = Vec::new();
    effects.extend(up(&mut n, "10.0.0.1", true));
    effects.extend(up(&mut n, "10.0.0.2", true));
    effects.extend(n.handle(Event::Resolved {
        ip: ip("10.0.0.1"),
        result: Ok(link(1)),
    }));
    assert!(applies(&effects).is_empty(), "nothing written mid-burst");
    assert!(effects.contains(&Effect::AddTxPort(3)));
    let flushed = n.flush();
    let d = one_apply(&flushed);
    let b = &d.services[0].backends;
    assert!(b[0].healthy && b[1].healthy);
    assert_eq!(b[0].link, Some(link(1)));
    assert!(n.flush().is_empty(), "nothing left after the flush");
    // A repeated state changes nothing.
    assert!(up(&mut n, "10.0.0.1", true).is_empty());
    assert!(n.flush().is_empty());
}

#[test]
fn macs_follow_resolution_failures_and_the_neighbour_table() {
    let (mut n, _) = node(BASE);
    n.handle(Event::Resolved {
        ip: ip("10.0.0.1"),
        result: Ok(link(1)),
    });
    n.flush();
    // A failed resolution of a known backend drops its MAC and retries later.
    let e = n.handle(Event::Resolved {
        ip: ip("10.0.0.1"),
        result: Err("no answer".into()),
    });
    assert_eq!(
        e,
        vec![Effect::Resolve {
            ip: ip("10.0.0.1"),
            delay: RESOLVE_RETRY
        }]
    );
    assert_eq!(one_apply(&n.flush()).services[0].backends[0].link, None);
    // A MAC change seen in the neighbour table is taken at once.
    n.handle(Event::Resolved {
        ip: ip("10.0.0.1"),
        result: Ok(link(1)),
    });
    n.flush();
    let neighbour = |addr: &str, mac: [u8; 6]| Neighbor {
        ip: ip(addr),
        mac: Some(mac),
        ifindex: 3,
        state: NeighState::Reachable,
    };
    assert!(n
        .handle(Event::Neighbor(neighbour("10.0.0.1", link(9).mac)))
        .is_empty());
    assert_eq!(
        one_apply(&n.flush()).services[0].backends[0].link,
        Some(link(9))
    );
    // Neighbours that are not backends are none of lbd's business.
    assert!(n
        .handle(Event::Neighbor(neighbour("10.0.0.77", [1; 6])))
        .is_empty());
    assert!(n.flush().is_empty());
}

#[test]
fn a_good_reload_applies_and_forgets_removed_backends() {
    let (mut n, _) = node(BASE);
    up(&mut n, "10.0.0.2", true);
    n.handle(Event::Resolved {
        ip: ip("10.0.0.2"),
        result: Ok(link(2)),
    });
    n.flush();
    let text = BASE.replace("10.0.0.2", "10.0.0.3");
    let effects = n.handle(Event::Reload(Box::new(Ok(parse(&text)))));
    let Effect::SetChecks(checks) = &effects[0] else {
        panic!("checks first: {effects:?}")
    };
    assert!(checks.iter().any(|(k, _)| k.1 == ip("10.0.0.3")));
    assert!(effects.contains(&Effect::Resolve {
        ip: ip("10.0.0.3"),
        delay: Duration::ZERO
    }));
    let d = one_apply(&effects);
    assert_eq!(d.services[0].backends[1].address, ip("10.0.0.3"));
    let done = n.handle(Event::Applied(Ok(())));
    assert!(
        matches!(done.last(), Some(Effect::ReloadDone(Ok(m))) if m.starts_with("reloaded lbd.toml (1 services)"))
    );
    assert!(n.last_reload().starts_with("reloaded"));
    // 10.0.0.2 comes back later: checked and resolved afresh, not given its old state.
    let effects = n.handle(Event::Reload(Box::new(Ok(parse(BASE)))));
    assert!(effects.contains(&Effect::Resolve {
        ip: ip("10.0.0.2"),
        delay: Duration::ZERO
    }));
    let back = &one_apply(&effects).services[0].backends[1];
    assert_eq!((back.healthy, back.link), (false, None));
}

#[test]
fn a_bad_reload_changes_nothing_and_says_why() {
    let (mut n, _) = node(BASE);
    let before = n.desired();
    let err =
        lb_config::parse("[[service]]\nname = 1\n", Path::new("lbd.toml")).expect_err("invalid");
    let effects = n.handle(Event::Reload(Box::new(Err(err))));
    assert_eq!(effects.len(), 1, "{effects:?}");
    let Effect::ReloadDone(Err(msg)) = &effects[0] else {
        panic!("{effects:?}")
    };
    assert!(
        msg.starts_with("reload rejected, running config kept: lbd.toml:2"),
        "{msg}"
    );
    assert_eq!(n.desired(), before);
    assert!(n.flush().is_empty());
    assert_eq!(n.last_reload(), msg);
}

#[test]
fn a_reload_that_fails_to_apply_restores_the_running_config() {
    let (mut n, _) = node(BASE);
    let before = n.desired();
    let text = BASE.replace("port = 80", "port = 81");
    let effects = n.handle(Event::Reload(Box::new(Ok(parse(&text)))));
    assert_eq!(one_apply(&effects).services[0].key.port, 81);
    let effects = n.handle(Event::Applied(Err("map full".into())));
    assert!(
        matches!(effects[0], Effect::SetChecks(_)),
        "old checks back"
    );
    assert_eq!(*one_apply(&effects), before, "old tables re-applied");
    assert!(
        matches!(effects.last(), Some(Effect::ReloadDone(Err(m))) if m.contains("running config restored: map full"))
    );
    assert_eq!(n.config().services[0].port, 80);
}

#[test]
fn restart_only_settings_and_vrrp_keep_their_running_values() {
    let (mut n, _) = node(&format!("{BASE}{VRRP}"));
    let text = format!("{BASE}{VRRP}")
        .replace(
            "settle_after = \"8s\"",
            "settle_after = \"8s\"\nconn_table_size = 4096\npin_dir = \"/run/other\"",
        )
        .replace("priority = 150", "priority = 120");
    let reloaded = n_reload(&mut n, &text);
    let effects = settle_applies(&mut n, reloaded);
    let Some(Effect::ReloadDone(Ok(msg))) = effects.last() else {
        panic!("{effects:?}")
    };
    assert!(msg.ends_with("; [[vrrp]] changes need a restart"), "{msg}");
    let running = parse(BASE);
    assert_eq!(
        n.config().global.conn_table_size,
        running.global.conn_table_size
    );
    assert_eq!(n.config().global.pin_dir, running.global.pin_dir);
    assert_eq!(n.config().vrrp[0].priority, 150);
    // The list names each setting once, in both directions.
    let mut new = parse(&text).global;
    assert_eq!(
        keep_restart_only(&running.global, &mut new),
        vec!["pin_dir", "conn_table_size"]
    );
    assert_eq!(new, running.global);
}

fn n_reload(n: &mut Node, text: &str) -> Vec<Effect> {
    n.handle(Event::Reload(Box::new(Ok(parse(text)))))
}

#[test]
fn tracking_moves_priority_with_service_health_and_faults_on_link_down() {
    let (mut n, effects) = node(&format!("{BASE}{VRRP}"));
    // Both backends start down: the tracked service is failing from the start.
    assert!(effects.contains(&Effect::Track {
        instance: "VI".into(),
        delta: -60,
        fault: false
    }));
    assert!(!one_apply(&effects).forwarding, "VRRP backup until elected");
    let e = up(&mut n, "10.0.0.1", true);
    assert_eq!(
        e,
        vec![Effect::Track {
            instance: "VI".into(),
            delta: 0,
            fault: false
        }]
    );
    assert!(
        up(&mut n, "10.0.0.2", true).is_empty(),
        "still passing: no news"
    );
    up(&mut n, "10.0.0.2", false);
    let e = up(&mut n, "10.0.0.1", false);
    assert_eq!(
        e,
        vec![Effect::Track {
            instance: "VI".into(),
            delta: -60,
            fault: false
        }]
    );
    assert!(
        n.tracking("VI").iter().any(|r| r.contains("web")),
        "{:?}",
        n.tracking("VI")
    );
    let e = n.handle(Event::Link {
        interface: "eth0".into(),
        up: false,
    });
    assert_eq!(
        e,
        vec![Effect::Track {
            instance: "VI".into(),
            delta: -60,
            fault: true
        }]
    );
    assert!(n
        .handle(Event::Link {
            interface: "eth0".into(),
            up: false
        })
        .is_empty());
}

#[test]
fn forwarding_follows_vrrp_mastership() {
    let (mut n, _) = node(&format!("{BASE}{VRRP}"));
    let on = |n: &mut Node, forward| {
        n.handle(Event::Vrrp {
            instance: "VI".into(),
            forward,
        })
    };
    assert!(one_apply(&on(&mut n, true)).forwarding);
    assert!(on(&mut n, true).is_empty(), "no change, no write");
    assert!(!one_apply(&on(&mut n, false)).forwarding);
}

#[test]
fn an_inherited_master_keeps_forwarding_from_the_first_apply() {
    let start = Start {
        inherited_masters: ["VI".to_string()].into(),
        ..Start::default()
    };
    let (_, effects) = Node::new("lbd.toml".into(), parse(&format!("{BASE}{VRRP}")), start);
    assert!(one_apply(&effects).forwarding);
}

#[test]
fn adoption_starts_from_what_the_pinned_data_plane_does() {
    let config = parse(BASE);
    let entry = |addr: &str, state, mac: [u8; 6]| Backend {
        mac,
        src_mac: [2, 0, 0, 0, 0, 0xff],
        ifindex: 3,
        state,
        gen: 1,
        service: 1,
        addr: addr_words(ip(addr)),
    };
    let pinned = vec![
        Backend::default(),
        entry("10.0.0.1", BACKEND_UP, link(1).mac),
        entry("10.0.0.2", BACKEND_DOWN, [0; 6]),
        // Index 3 holds another address: the config changed while lbd was down.
        entry("10.0.0.9", BACKEND_UP, link(9).mac),
    ];
    let index: HashMap<IpAddr, u16> = [(ip("10.0.0.1"), 1), (ip("10.0.0.2"), 2)].into();
    let start = adopt::from_pinned(&config, |_, a| index.get(&a).copied(), &pinned);
    assert_eq!(
        start.health.get(&("web".into(), ip("10.0.0.1"))),
        Some(&true)
    );
    assert_eq!(
        start.health.get(&("web".into(), ip("10.0.0.2"))),
        Some(&false)
    );
    assert_eq!(start.links.get(&ip("10.0.0.1")), Some(&link(1)));
    assert!(!start.links.contains_key(&ip("10.0.0.2")), "no MAC pinned");
    let (_, effects) = Node::new("lbd.toml".into(), config, start);
    let Effect::SetChecks(checks) = &effects[0] else {
        panic!("{effects:?}")
    };
    assert!(
        checks[0].1.start_up,
        "the adopted backend's check starts up"
    );
    let b = &one_apply(&effects).services[0].backends;
    assert!(
        b[0].healthy && b[0].link == Some(link(1)),
        "the first apply keeps it"
    );
    // Only the backend without a MAC is resolved.
    let resolves: Vec<_> = effects
        .iter()
        .filter(|e| matches!(e, Effect::Resolve { .. }))
        .collect();
    assert_eq!(
        resolves,
        vec![&Effect::Resolve {
            ip: ip("10.0.0.2"),
            delay: Duration::ZERO
        }]
    );
}

#[test]
fn the_settle_timer_settles_after_the_configured_times() {
    let (mut n, _) = node(BASE);
    assert_eq!(
        n.handle(Event::SettleTick),
        vec![Effect::Settle(Timeouts {
            settle_tcp: Duration::from_secs(8),
            tcp: Duration::from_secs(900),
            tcpfin: Duration::from_secs(120),
            udp: Duration::from_secs(300),
        })]
    );
    assert_eq!(n.settle_every(), Duration::from_secs(2));
    // A short UDP timeout makes the timer fire sooner.
    let (n, _) = node(&BASE.replace("settle_after", "timeout_udp = \"4s\"\nsettle_after"));
    assert_eq!(n.timeouts().udp, Duration::from_secs(4));
    assert_eq!(n.settle_every(), Duration::from_secs(1));
}

#[test]
fn a_fresh_node_keeps_moved_slots_only_after_startup() {
    let (mut n, effects) = node(BASE);
    assert!(
        !one_apply(&effects).keep_moved,
        "coming up: no flows to keep yet"
    );
    assert!(n.handle(Event::StartupDone).is_empty());
    assert!(n.desired().keep_moved);
    // A node that adopted a running data plane keeps them from the start.
    let (n, _) = Node::new(
        "lbd.toml".into(),
        parse(BASE),
        Start {
            adopted: true,
            ..Start::default()
        },
    );
    assert!(n.desired().keep_moved);
}

#[test]
fn peer_updates_are_installed() {
    let (mut n, _) = node(BASE);
    let update = PeerUpdate::Entries(Vec::new());
    assert_eq!(
        n.handle(Event::Peer(update.clone())),
        vec![Effect::InstallPeer(update)]
    );
}

#[test]
fn with_sync_a_vrrp_node_waits_at_the_lowest_priority_for_its_peers_state() {
    let text = format!("{BASE}{VRRP}\n[sync]\nkey = \"0123456789abcdef0123\"\n");
    let (mut n, effects) = node(&text);
    let waiting = effects
        .iter()
        .find_map(|e| match e {
            Effect::Track { delta, .. } => Some(*delta),
            _ => None,
        })
        .expect("tracking sent at start");
    assert!(waiting <= -255, "lowest priority while waiting: {waiting}");
    assert!(n.tracking("VI").iter().any(|r| r.contains("flow sync")));
    let effects = n.handle(Event::SyncReady);
    assert!(
        effects
            .iter()
            .any(|e| matches!(e, Effect::Track { delta, .. } if *delta > -255)),
        "{effects:?}"
    );
    assert!(n.handle(Event::SyncReady).is_empty(), "once");
}

const BGP: &str = r#"
[bgp]
speaker = "bird"
bird_socket = "/run/bird/t.ctl"
routes_file = "/tmp/lbd-vips.conf"
"#;

/// Flush, then answer every apply.
fn flushed(n: &mut Node) -> Vec<Effect> {
    let effects = n.flush();
    settle_applies(n, effects)
}

/// The hold timers in `effects` run out (time passes with no health change): the
/// node's answers.
fn holds_over(n: &mut Node, effects: &[Effect]) -> Vec<Effect> {
    let mut out = Vec::new();
    for e in effects {
        if let Effect::HoldTimer {
            vip, generation, ..
        } = e
        {
            out.extend(n.handle(Event::HoldOver {
                vip: *vip,
                generation: *generation,
            }));
        }
    }
    out
}

/// The last announcement effect: VIPs to announce.
fn last_announce(effects: &[Effect]) -> Option<Vec<IpAddr>> {
    effects.iter().rev().find_map(|e| match e {
        Effect::Announce(d) => Some(d.iter().filter(|v| v.announce).map(|v| v.vip).collect()),
        _ => None,
    })
}

#[test]
fn bgp_announces_after_install_while_backends_are_usable_and_withdraws_on_drain() {
    let (mut n, effects) = node(&format!("{BASE}{BGP}"));
    assert_eq!(
        last_announce(&effects),
        Some(vec![]),
        "nothing before the data plane is installed"
    );
    settle_applies(&mut n, effects);
    assert!(n.announcements()[0].reason.contains("start-up grace"));
    let effects = n.handle(Event::StartupDone);
    assert_eq!(
        last_announce(&effects),
        Some(vec![]),
        "installed and started, but no usable backend: a new reason, nothing announced"
    );
    assert!(n.announcements()[0]
        .reason
        .contains("0 of 2 backends usable"));
    let mut effects = n.handle(Event::Resolved {
        ip: ip("10.0.0.1"),
        result: Ok(link(1)),
    });
    effects.extend(up(&mut n, "10.0.0.1", true));
    assert_eq!(last_announce(&effects), None, "health only marks dirty");
    let effects = flushed(&mut n);
    assert_eq!(
        last_announce(&effects),
        Some(vec![]),
        "usable, but its health view is settling"
    );
    assert!(n.announcements()[0]
        .reason
        .starts_with("health view settling"));
    let timers: Vec<_> = effects
        .iter()
        .filter_map(|e| match e {
            Effect::HoldTimer { after, .. } => Some(*after),
            _ => None,
        })
        .collect();
    // start = down, interval 2 s (default), rise 1, timeout 1 s: one round is 5 s.
    assert_eq!(timers, [Duration::from_secs(5)]);
    // The other backend comes up during the hold: the timer that ends now is stale.
    let mut later = n.handle(Event::Resolved {
        ip: ip("10.0.0.2"),
        result: Ok(link(2)),
    });
    later.extend(up(&mut n, "10.0.0.2", true));
    later.extend(flushed(&mut n));
    assert_eq!(
        last_announce(&holds_over(&mut n, &effects)),
        None,
        "a stale timer"
    );
    let effects = holds_over(&mut n, &later);
    assert_eq!(last_announce(&effects), Some(vec![ip("10.0.0.100")]));
    // Announced: a backend failing that keeps min_healthy keeps it announced.
    up(&mut n, "10.0.0.2", false);
    assert_eq!(
        last_announce(&flushed(&mut n)),
        Some(vec![ip("10.0.0.100")]),
        "only the reason changed"
    );
    // The last backend fails: withdrawn at once.
    up(&mut n, "10.0.0.1", false);
    let effects = flushed(&mut n);
    assert_eq!(last_announce(&effects), Some(vec![]));
    up(&mut n, "10.0.0.1", true);
    let effects = flushed(&mut n);
    assert_eq!(
        last_announce(&effects),
        Some(vec![]),
        "held again after the withdrawal"
    );
    assert_eq!(
        last_announce(&holds_over(&mut n, &effects)),
        Some(vec![ip("10.0.0.100")])
    );
    // Drain: withdrawn, and it stays withdrawn whatever health does.
    let effects = n.handle(Event::Drain);
    assert_eq!(last_announce(&effects), Some(vec![]));
    assert!(n.draining());
    n.handle(Event::Resolved {
        ip: ip("10.0.0.2"),
        result: Ok(link(2)),
    });
    up(&mut n, "10.0.0.2", true);
    assert_eq!(last_announce(&flushed(&mut n)), None);
    assert!(n.announcements()[0].reason.contains("draining"));
}

#[test]
fn bgp_with_sync_waits_for_the_peers_state_and_withdraws_when_isolated() {
    let text = format!(
        "{BASE}{BGP}isolated_after = \"10s\"\n[sync]\nkey = \"0123456789abcdef0123\"\npeers = [\"10.0.0.9\"]\n"
    );
    let (mut n, effects) = node(&text);
    settle_applies(&mut n, effects);
    n.handle(Event::StartupDone);
    n.handle(Event::Resolved {
        ip: ip("10.0.0.1"),
        result: Ok(link(1)),
    });
    up(&mut n, "10.0.0.1", true);
    let effects = flushed(&mut n);
    assert!(n.announcements()[0]
        .reason
        .contains("waiting for the peers"));
    // The hold runs while the node catches up.
    holds_over(&mut n, &effects);
    assert!(
        !n.carries_flows(),
        "not announced yet: a resync's dirty slots are taken"
    );
    let effects = n.handle(Event::SyncReady);
    assert_eq!(last_announce(&effects), Some(vec![ip("10.0.0.100")]));
    assert!(n.carries_flows());
    assert_eq!(
        last_announce(&n.handle(Event::Isolated(true))),
        Some(vec![])
    );
    assert_eq!(last_announce(&n.handle(Event::Isolated(true))), None);
    assert_eq!(
        last_announce(&n.handle(Event::Isolated(false))),
        Some(vec![ip("10.0.0.100")])
    );
}

#[test]
fn bgp_with_vrrp_announces_on_the_master_only() {
    let (mut n, effects) = node(&format!("{BASE}{VRRP}{BGP}"));
    settle_applies(&mut n, effects);
    n.handle(Event::StartupDone);
    n.handle(Event::Resolved {
        ip: ip("10.0.0.1"),
        result: Ok(link(1)),
    });
    up(&mut n, "10.0.0.1", true);
    let effects = flushed(&mut n);
    holds_over(&mut n, &effects);
    assert!(n.announcements()[0].reason.contains("not a VRRP master"));
    let effects = n.handle(Event::Vrrp {
        instance: "VI".into(),
        forward: true,
    });
    let effects = settle_applies(&mut n, effects);
    assert_eq!(last_announce(&effects), Some(vec![ip("10.0.0.100")]));
}

#[test]
fn bgp_speaker_changes_wait_for_a_restart_but_vips_follow_a_reload() {
    let (mut n, effects) = node(&format!("{BASE}{BGP}"));
    settle_applies(&mut n, effects);
    let changed = format!("{BASE}{BGP}min_healthy = 2\n").replace("t.ctl", "other.ctl");
    let effects = n_reload(&mut n, &changed);
    settle_applies(&mut n, effects);
    let bgp = n.config().bgp.as_ref().unwrap();
    assert_eq!(bgp.min_healthy, 2);
    assert!(
        matches!(&bgp.speaker, lb_config::Speaker::Bird { socket, .. } if socket.ends_with("t.ctl"))
    );
}

//! The text views of `lbctl`: one pure function per command, from the control
//! protocol's views to the lines printed.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::{duration, endpoint, human, latency, table::Table};
use lb_api::view::{
    BackendView, BgpView, ConnView, ExplainView, HealthView, ServiceView, StatusView, SyncView,
    Traffic, VrrpView,
};

/// Per-second traffic over a sampling interval.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PerSecond {
    /// Packets per second.
    pub packets: f64,
    /// Bytes per second.
    pub bytes: f64,
    /// New flows (TCP SYNs) per second.
    pub new_flows: f64,
}

/// Rates of one backend between two samples.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BackendRate {
    /// Backend address.
    pub address: IpAddr,
    /// Operator's name, if known.
    pub name: Option<String>,
    /// Rates; `None` when the backend was not in the first sample.
    pub rate: Option<PerSecond>,
}

/// Rates of one service (and its backends) between two samples.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServiceRate {
    /// Operator's name, if known.
    pub name: Option<String>,
    /// VIP.
    pub vip: IpAddr,
    /// Port (0 = every port).
    pub port: u16,
    /// "tcp" or "udp".
    pub protocol: String,
    /// Rates; `None` when the service was not in the first sample.
    pub rate: Option<PerSecond>,
    /// Backends, in the order of the second sample.
    pub backends: Vec<BackendRate>,
}

fn per_second(before: &Traffic, after: &Traffic, secs: f64) -> Option<PerSecond> {
    if secs.is_nan() || secs <= 0.0 {
        return None;
    }
    // A counter that went down was reset (the service or backend was re-created).
    let d = |a: u64, b: u64| b.saturating_sub(a) as f64 / secs;
    Some(PerSecond {
        packets: d(before.packets, after.packets),
        bytes: d(before.bytes, after.bytes),
        new_flows: d(before.new_flows, after.new_flows),
    })
}

fn same_service(a: &ServiceView, b: &ServiceView) -> bool {
    (a.vip, a.port, &a.protocol, a.id) == (b.vip, b.port, &b.protocol, b.id)
}

fn same_backend(a: &BackendView, b: &BackendView) -> bool {
    (a.address, a.index) == (b.address, b.index)
}

/// Per-second rates from two samples of [`lb_api::control::Request::List`] taken `secs`
/// seconds apart, one entry per service of `after` (in its order). Services and
/// backends are matched by VIP/port/protocol/counter id and by address/index.
pub fn rates(before: &[ServiceView], after: &[ServiceView], secs: f64) -> Vec<ServiceRate> {
    after
        .iter()
        .map(|svc| {
            let prev = before.iter().find(|p| same_service(p, svc));
            ServiceRate {
                name: svc.name.clone(),
                vip: svc.vip,
                port: svc.port,
                protocol: svc.protocol.clone(),
                rate: prev.and_then(|p| per_second(&p.traffic, &svc.traffic, secs)),
                backends: svc
                    .backends
                    .iter()
                    .map(|b| BackendRate {
                        address: b.address,
                        name: b.name.clone(),
                        rate: prev
                            .and_then(|p| p.backends.iter().find(|pb| same_backend(pb, b)))
                            .and_then(|pb| per_second(&pb.traffic, &b.traffic, secs)),
                    })
                    .collect(),
            }
        })
        .collect()
}

fn dash<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
}

/// The service/backend table shared by `list`, `list --stats` and `list --rate`:
/// `extra` names numeric columns shown right after the address, filled per service and
/// per backend by `svc_extra` and `be_extra`.
fn list_table(
    services: &[ServiceView],
    extra: &[&str],
    svc_extra: impl Fn(usize, &ServiceView) -> Vec<String>,
    be_extra: impl Fn(usize, usize, &BackendView) -> Vec<String>,
) -> String {
    let k = extra.len();
    // address, extras (right), Forward, Weight (right), State, Health, MAC, Slots
    // (right), Tracked (right), Name.
    let mut right = vec![false];
    right.extend(std::iter::repeat_n(true, k));
    right.extend([false, true, false, false, false, true, true, false]);
    let mut t = Table::new(&right);
    let mut head: Vec<String> = vec!["Prot LocalAddress:Port".into()];
    head.extend(extra.iter().map(|s| s.to_string()));
    t.row_with_tail(head, "Scheduler  Name".into());
    let mut head: Vec<String> = vec!["  -> RemoteAddress:Port".into()];
    head.extend(std::iter::repeat_n(String::new(), k));
    head.extend(
        [
            "Forward", "Weight", "State", "Health", "MAC", "Slots", "Tracked", "Name",
        ]
        .map(String::from),
    );
    t.row(head);
    for (si, svc) in services.iter().enumerate() {
        let mut cells = vec![format!(
            "{:<4} {}",
            svc.protocol.to_uppercase(),
            endpoint(svc.vip, svc.port)
        )];
        cells.extend(svc_extra(si, svc));
        let mut tail = format!(
            "{}  {}",
            svc.scheduler,
            svc.name
                .as_ref()
                .map(|n| format!("({n})"))
                .unwrap_or_else(|| "-".into())
        );
        if svc.dirty_slots > 0 {
            tail.push_str(&format!("  dirty={}", svc.dirty_slots));
        }
        t.row_with_tail(cells, tail);
        for (bi, b) in svc.backends.iter().enumerate() {
            let mut cells = vec![format!("  -> {}", endpoint(b.address, svc.port))];
            cells.extend(be_extra(si, bi, b));
            cells.extend([
                "Route".into(),
                dash(b.weight),
                b.state.clone(),
                dash(b.health.as_ref()),
                dash(b.mac.as_ref()),
                b.slots.to_string(),
                b.tracked.to_string(),
                dash(b.name.as_ref()),
            ]);
            t.row(cells);
        }
    }
    t.render()
}

/// `lbctl list` (like `ipvsadm -Ln`): a line per service, then a line per backend with
/// forwarding method, weight, state, health, MAC, Maglev slots and tracked connections.
/// With `stats`, Packets/Bytes/NewFlows counters per service and backend.
pub fn render_list(services: &[ServiceView], stats: bool) -> String {
    fn counters(t: &Traffic) -> Vec<String> {
        vec![
            t.packets.to_string(),
            t.bytes.to_string(),
            t.new_flows.to_string(),
        ]
    }
    if stats {
        list_table(
            services,
            &["Packets", "Bytes", "NewFlows"],
            |_, s| counters(&s.traffic),
            |_, _, b| counters(&b.traffic),
        )
    } else {
        list_table(services, &[], |_, _| Vec::new(), |_, _, _| Vec::new())
    }
}

/// `lbctl list --rate`: the `after` sample with per-second rates (packets, bytes and new
/// flows per second) over the `secs` seconds since `before`.
pub fn render_rates(before: &[ServiceView], after: &[ServiceView], secs: f64) -> String {
    let rates = rates(before, after, secs);
    let cells = |r: Option<&PerSecond>| match r {
        Some(r) => vec![human(r.packets), human(r.bytes), human(r.new_flows)],
        None => vec!["-".into(), "-".into(), "-".into()],
    };
    list_table(
        after,
        &["pps", "Bps", "NewFlows/s"],
        |si, _| cells(rates.get(si).and_then(|r| r.rate.as_ref())),
        |si, bi, _| {
            cells(
                rates
                    .get(si)
                    .and_then(|r| r.backends.get(bi))
                    .and_then(|b| b.rate.as_ref()),
            )
        },
    )
}

/// `lbctl status`: node, config, forwarding, interfaces, pin directory, last reload,
/// then the data plane's outcome counters.
pub fn render_status(status: &StatusView) -> String {
    let interfaces = if status.interfaces.is_empty() {
        "-".to_owned()
    } else {
        status
            .interfaces
            .iter()
            .map(|(name, mode)| format!("{name} ({mode})"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let forwarding = if status.forwarding {
        "on"
    } else {
        "off (VIP traffic is passed to the kernel)"
    };
    let mut t = Table::new(&[]);
    for (k, v) in [
        ("Node", status.node.as_str()),
        ("Config", status.config.as_str()),
        ("Forwarding", forwarding),
        ("Interfaces", interfaces.as_str()),
        ("Pin dir", status.pin_dir.as_str()),
        ("Last reload", status.last_reload.as_str()),
    ] {
        t.row(vec![format!("{k}:"), v.to_owned()]);
    }
    let mut c = Table::new(&[false, true]);
    c.row(vec!["Outcome".into(), "Packets".into()]);
    for (name, value) in &status.counters.0 {
        c.row(vec![name.clone(), value.to_string()]);
    }
    format!("{}\n{}", t.render(), c.render())
}

fn idle(ms: u64) -> String {
    if ms < 1_000 {
        format!("{ms}ms")
    } else {
        duration(ms / 1_000)
    }
}

/// `lbctl conns`: one line per tracked connection.
pub fn render_conns(conns: &[ConnView]) -> String {
    let mut t = Table::new(&[false, false, false, false, true]);
    t.row(
        ["Prot", "Client", "VIP", "Backend", "Idle"]
            .map(String::from)
            .to_vec(),
    );
    for c in conns {
        t.row(vec![
            c.protocol.to_uppercase(),
            endpoint(c.client.ip(), c.client.port()),
            endpoint(c.vip.ip(), c.vip.port()),
            match c.backend {
                Some(ip) => ip.to_string(),
                None => format!("#{} (gone)", c.backend_index),
            },
            idle(c.idle_ms),
        ]);
    }
    t.render()
}

/// `lbctl explain`: verdict, service, backend, slot and the reason.
pub fn render_explain(e: &ExplainView) -> String {
    let backend = match (e.backend, e.backend_index) {
        (Some(ip), Some(i)) => format!("{ip} (index {i})"),
        (Some(ip), None) => ip.to_string(),
        (None, Some(i)) => format!("index {i}"),
        (None, None) => "-".into(),
    };
    let mut t = Table::new(&[]);
    for (k, v) in [
        ("Verdict", e.verdict.clone()),
        ("Service", dash(e.service.as_ref())),
        ("Backend", backend),
        ("Slot", dash(e.slot)),
        ("Reason", e.reason.clone()),
    ] {
        t.row(vec![format!("{k}:"), v]);
    }
    t.render()
}

/// `lbctl health`: per backend its service, address, up/down, last result, latency of
/// the last check, checks run and time in the current state.
pub fn render_health(backends: &[HealthView]) -> String {
    let mut t = Table::new(&[false, false, false, true, true, true, false]);
    t.row(
        [
            "Service", "Backend", "State", "Latency", "Checks", "Since", "Last",
        ]
        .map(String::from)
        .to_vec(),
    );
    for h in backends {
        t.row(vec![
            h.service.clone(),
            h.backend.to_string(),
            if h.up { "up" } else { "down" }.into(),
            latency(h.latency_us),
            h.checks.to_string(),
            duration(h.since_s),
            h.last.clone(),
        ]);
    }
    t.render()
}

/// `lbctl sync`: totals, then one row per peer, then rejected datagrams by reason.
pub fn render_sync(v: &SyncView) -> String {
    if !v.enabled {
        return "flow sync is off: no [sync] section in the config\n".into();
    }
    let mut out = format!(
        "node {:016x} epoch {}: sent {} entries in {} datagrams, received {}, dropped {} (queue full), queue {}, resyncs requested {} served {}\n",
        v.node_id,
        v.epoch,
        v.entries_sent,
        v.datagrams_sent,
        v.entries_received,
        v.entries_dropped,
        v.queue,
        v.resyncs_requested,
        v.resyncs_served,
    );
    let mut t = Table::new(&[false, false, false, true, true, true, true, true]);
    t.row(
        [
            "Peer",
            "Node",
            "State",
            "LastSeen",
            "Entries",
            "Datagrams",
            "ResyncReq",
            "ResyncSrv",
        ]
        .map(String::from)
        .to_vec(),
    );
    for p in &v.peers {
        t.row(vec![
            p.address.to_string(),
            format!("{:016x}", p.node_id),
            p.state.clone(),
            p.last_seen_secs
                .map_or("never".into(), |s| format!("{s}s ago")),
            p.entries_received.to_string(),
            p.datagrams_received.to_string(),
            p.resyncs_requested.to_string(),
            p.resyncs_served.to_string(),
        ]);
    }
    out.push_str(&t.render());
    for (reason, n) in &v.rejected {
        out.push_str(&format!("rejected {reason}: {n}\n"));
    }
    out
}

/// `lbctl bgp`: the speaker, one row per VIP (wanted, told, why), then the speaker's
/// sessions.
pub fn render_bgp(v: &BgpView) -> String {
    if !v.enabled {
        return "BGP announcement is off: no [bgp] section in the config\n".into();
    }
    let mut out = format!(
        "speaker {}: {}{}; {} changes, {} failed requests\n",
        v.speaker,
        if v.speaker_ok {
            "in sync"
        } else {
            "NOT in sync"
        },
        v.last_error
            .as_ref()
            .map_or(String::new(), |e| format!(" (last error: {e})")),
        v.changes,
        v.errors,
    );
    if v.draining {
        out.push_str("draining: every VIP withdrawn; lbd stops when traffic stops\n");
    }
    let mut t = Table::new(&[false, false, false, false]);
    t.row(
        ["VIP", "Wanted", "Announced", "Why"]
            .map(String::from)
            .to_vec(),
    );
    for x in &v.vips {
        let yes = |b: bool| if b { "yes" } else { "no" }.to_owned();
        t.row(vec![
            x.vip.to_string(),
            yes(x.wanted),
            yes(x.announced),
            x.reason.clone(),
        ]);
    }
    out.push_str(&t.render());
    // BIRD's sessions have names; a command speaker's status is its output's lines.
    let (named, raw): (Vec<_>, Vec<_>) = v.sessions.iter().partition(|x| !x.name.is_empty());
    if !named.is_empty() {
        let mut t = Table::new(&[false, false, false]);
        t.row(["Session", "State", "Info"].map(String::from).to_vec());
        for x in named {
            t.row(vec![x.name.clone(), x.state.clone(), x.info.clone()]);
        }
        out.push_str(&t.render());
    }
    if !raw.is_empty() {
        out.push_str("speaker status (status_command, as of the last poll):\n");
        for x in raw {
            out.push_str(&format!("  {}\n", x.info));
        }
    }
    out
}

/// `lbctl vrrp`: one row per instance, then its drops and tracking.
pub fn render_vrrp(instances: &[VrrpView]) -> String {
    if instances.is_empty() {
        return "no VRRP instances: this node forwards per [global] forwarding\n".into();
    }
    let mut t = Table::new(&[
        false, false, true, false, true, false, true, true, true, false,
    ]);
    t.row(
        [
            "Instance",
            "Interface",
            "VRID",
            "State",
            "Prio",
            "Master",
            "Trans",
            "RxAdv",
            "TxAdv",
            "VIPs",
        ]
        .map(String::from)
        .to_vec(),
    );
    for v in instances {
        let prio = if v.priority == v.base_priority {
            v.priority.to_string()
        } else {
            format!("{}({})", v.priority, v.base_priority)
        };
        t.row(vec![
            v.name.clone(),
            v.interface.clone(),
            format!("{} v{}", v.vrid, v.version),
            v.state.clone(),
            prio,
            v.master.map_or("-".into(), |m| m.to_string()),
            v.transitions.to_string(),
            v.adverts_received.to_string(),
            v.adverts_sent.to_string(),
            v.vips.join(","),
        ]);
    }
    let mut out = t.render();
    for v in instances {
        let drops: Vec<String> = v
            .dropped
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(r, n)| format!("{r}={n}"))
            .collect();
        if !drops.is_empty() {
            out.push_str(&format!(
                "{}: dropped adverts: {}\n",
                v.name,
                drops.join(" ")
            ));
        }
        for reason in &v.tracking {
            out.push_str(&format!("{}: tracking: {reason}\n", v.name));
        }
        if let Some(e) = &v.last_error {
            out.push_str(&format!("{}: last error: {e}\n", v.name));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use lb_api::view::Counters;

    #[test]
    fn sync_shows_totals_peers_and_rejections() {
        assert!(render_sync(&SyncView::default()).contains("flow sync is off"));
        let view = SyncView {
            enabled: true,
            node_id: 0xab,
            epoch: 7,
            peers: vec![lb_api::view::SyncPeerView {
                address: "10.0.0.2:8848".parse().unwrap(),
                node_id: 0xcd,
                epoch: 9,
                state: "alive".into(),
                last_seen_secs: Some(1),
                entries_received: 42,
                datagrams_received: 3,
                resyncs_requested: 1,
                resyncs_served: 0,
                restarts: 0,
            }],
            entries_sent: 100,
            datagrams_sent: 2,
            rejected: [("bad_tag".to_string(), 5)].into(),
            ..SyncView::default()
        };
        let text = render_sync(&view);
        assert!(text.contains("sent 100 entries in 2 datagrams"), "{text}");
        let row = text.lines().find(|l| l.contains("10.0.0.2:8848")).unwrap();
        for cell in ["00000000000000cd", "alive", "1s ago", "42"] {
            assert!(row.contains(cell), "{row}");
        }
        assert!(text.contains("rejected bad_tag: 5"), "{text}");
    }

    fn traffic(packets: u64, bytes: u64, new_flows: u64) -> Traffic {
        Traffic {
            packets,
            bytes,
            new_flows,
        }
    }

    fn backend(addr: &str, index: u16, t: Traffic) -> BackendView {
        BackendView {
            address: addr.parse().unwrap(),
            name: Some(format!("app{index}")),
            index,
            weight: Some(100),
            state: "up".into(),
            slots: 32768,
            health: Some("up: 3 consecutive passes".into()),
            mac: Some("02:00:00:00:00:0b".into()),
            ifindex: 2,
            tracked: 17,
            traffic: t,
        }
    }

    fn services() -> Vec<ServiceView> {
        vec![
            ServiceView {
                name: Some("web".into()),
                vip: "198.51.100.10".parse().unwrap(),
                port: 80,
                protocol: "tcp".into(),
                scheduler: "maglev".into(),
                id: 0,
                table_size: 65537,
                dirty_slots: 0,
                traffic: traffic(1000, 64000, 10),
                backends: vec![
                    backend("10.0.0.11", 0, traffic(600, 38400, 6)),
                    BackendView {
                        state: "draining".into(),
                        ..backend("10.0.0.12", 1, traffic(400, 25600, 4))
                    },
                ],
            },
            ServiceView {
                name: None,
                vip: "2001:db8::10".parse().unwrap(),
                port: 443,
                protocol: "udp".into(),
                scheduler: "source-hash".into(),
                id: 1,
                table_size: 65537,
                dirty_slots: 12,
                traffic: traffic(5, 500, 0),
                backends: vec![BackendView {
                    name: None,
                    weight: None,
                    health: None,
                    mac: None,
                    ..backend("2001:db8::11", 2, traffic(5, 500, 0))
                }],
            },
        ]
    }

    fn line_with<'a>(text: &'a str, needle: &str) -> &'a str {
        text.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle:?} in\n{text}"))
    }

    #[test]
    fn list_is_ipvsadm_like() {
        let text = render_list(&services(), false);
        let header = line_with(&text, "RemoteAddress:Port");
        for col in [
            "Forward", "Weight", "State", "Health", "MAC", "Slots", "Tracked",
        ] {
            assert!(header.contains(col), "{col} missing in {header}");
        }
        assert!(!text.contains("Packets"));
        let svc = line_with(&text, "198.51.100.10:80");
        assert!(svc.starts_with("TCP  198.51.100.10:80"), "{svc}");
        assert!(svc.contains("maglev") && svc.contains("(web)"), "{svc}");
        let be = line_with(&text, "10.0.0.11:80");
        assert!(be.starts_with("  -> 10.0.0.11:80"), "{be}");
        for v in [
            "Route",
            "100",
            "up",
            "up: 3 consecutive passes",
            "02:00:00:00:00:0b",
            "32768",
            "17",
            "app0",
        ] {
            assert!(be.contains(v), "{v} missing in {be}");
        }
        assert!(line_with(&text, "10.0.0.12:80").contains("draining"));
        // IPv6, fallback-style backend ('-' for what only lbd knows), dirty slots.
        let svc6 = line_with(&text, "[2001:db8::10]:443");
        assert!(
            svc6.starts_with("UDP  ") && svc6.contains("source-hash") && svc6.contains("dirty=12"),
            "{svc6}"
        );
        let be6 = line_with(&text, "[2001:db8::11]:443");
        let cols: Vec<&str> = be6.split_whitespace().collect();
        assert_eq!(
            cols,
            [
                "->",
                "[2001:db8::11]:443",
                "Route",
                "-",
                "up",
                "-",
                "-",
                "32768",
                "17",
                "-"
            ]
        );
        // Columns line up: the Route column starts at the same offset on every backend line.
        let offsets: Vec<usize> = text
            .lines()
            .filter(|l| l.contains("  -> "))
            .filter_map(|l| l.find("Route").or(l.find("Forward")))
            .collect();
        assert!(offsets.windows(2).all(|w| w[0] == w[1]), "{text}");
    }

    #[test]
    fn list_stats_adds_counters() {
        let text = render_list(&services(), true);
        let header = line_with(&text, "LocalAddress:Port");
        for col in ["Packets", "Bytes", "NewFlows"] {
            assert!(header.contains(col), "{col} missing in {header}");
        }
        let svc: Vec<&str> = line_with(&text, "198.51.100.10:80")
            .split_whitespace()
            .collect();
        assert_eq!(
            &svc[..5],
            ["TCP", "198.51.100.10:80", "1000", "64000", "10"]
        );
        let be: Vec<&str> = line_with(&text, "10.0.0.12:80")
            .split_whitespace()
            .collect();
        assert_eq!(
            &be[..6],
            ["->", "10.0.0.12:80", "400", "25600", "4", "Route"]
        );
    }

    #[test]
    fn rates_are_deltas_per_second() {
        let before = services();
        let mut after = services();
        after[0].traffic = traffic(3000, 2_064_000, 30);
        after[0].backends[0].traffic = traffic(2600, 2_038_400, 26);
        let r = rates(&before, &after, 2.0);
        assert_eq!(
            r[0].rate,
            Some(PerSecond {
                packets: 1000.0,
                bytes: 1_000_000.0,
                new_flows: 10.0
            })
        );
        assert_eq!(r[0].backends[0].rate.unwrap().packets, 1000.0);
        assert_eq!(r[0].backends[1].rate.unwrap().packets, 0.0);
        let text = render_rates(&before, &after, 2.0);
        let header = line_with(&text, "LocalAddress:Port");
        for col in ["pps", "Bps", "NewFlows/s"] {
            assert!(header.contains(col), "{col} missing in {header}");
        }
        let svc: Vec<&str> = line_with(&text, "198.51.100.10:80")
            .split_whitespace()
            .collect();
        assert_eq!(&svc[..5], ["TCP", "198.51.100.10:80", "1.0K", "1.0M", "10"]);
        // A service that was not in the first sample has no rate yet; a reset counter
        // gives 0, not a huge number.
        let mut fresh = services();
        fresh[1].id = 7;
        fresh[0].traffic = traffic(1, 1, 1);
        let r = rates(&before, &fresh, 1.0);
        assert_eq!(r[1].rate, None);
        assert_eq!(r[0].rate.unwrap().packets, 0.0);
        assert!(
            line_with(&render_rates(&before, &fresh, 1.0), "[2001:db8::10]:443").contains(" -  ")
        );
        assert_eq!(rates(&before, &after, 0.0)[0].rate, None);
    }

    #[test]
    fn empty_list_has_headers() {
        let text = render_list(&[], true);
        assert_eq!(text.lines().count(), 2, "{text}");
    }

    #[test]
    fn status() {
        let s = StatusView {
            node: "lb1".into(),
            config: "/etc/lbd/lbd.toml".into(),
            forwarding: true,
            interfaces: vec![
                ("eth0".into(), "driver".into()),
                ("eth1".into(), "skb".into()),
            ],
            pin_dir: "/sys/fs/bpf/lbd".into(),
            counters: Counters(vec![("forwarded".into(), 123456), ("passed".into(), 7)]),
            last_reload: "ok".into(),
        };
        let text = render_status(&s);
        for (k, v) in [
            ("Node:", "lb1"),
            ("Config:", "/etc/lbd/lbd.toml"),
            ("Forwarding:", "on"),
            ("Interfaces:", "eth0 (driver), eth1 (skb)"),
            ("Pin dir:", "/sys/fs/bpf/lbd"),
            ("Last reload:", "ok"),
        ] {
            let l = line_with(&text, k);
            assert!(l.contains(v), "{v} missing in {l}");
        }
        assert!(line_with(&text, "Outcome").contains("Packets"));
        assert_eq!(
            line_with(&text, "forwarded")
                .split_whitespace()
                .collect::<Vec<_>>(),
            ["forwarded", "123456"]
        );
        let off = render_status(&StatusView {
            forwarding: false,
            interfaces: vec![],
            ..s
        });
        assert!(line_with(&off, "Forwarding:").contains("off"));
        assert!(line_with(&off, "Interfaces:").contains('-'));
    }

    #[test]
    fn conns() {
        let c = vec![
            ConnView {
                client: "192.0.2.1:40000".parse().unwrap(),
                vip: "198.51.100.10:80".parse().unwrap(),
                protocol: "tcp".into(),
                backend_index: 3,
                backend: Some("10.0.0.11".parse().unwrap()),
                idle_ms: 1_500,
            },
            ConnView {
                client: "[2001:db8::1]:4000".parse().unwrap(),
                vip: "[2001:db8::10]:443".parse().unwrap(),
                protocol: "udp".into(),
                backend_index: 9,
                backend: None,
                idle_ms: 20,
            },
        ];
        let text = render_conns(&c);
        let header: Vec<&str> = text.lines().next().unwrap().split_whitespace().collect();
        assert_eq!(header, ["Prot", "Client", "VIP", "Backend", "Idle"]);
        let l: Vec<&str> = line_with(&text, "192.0.2.1").split_whitespace().collect();
        assert_eq!(
            l,
            [
                "TCP",
                "192.0.2.1:40000",
                "198.51.100.10:80",
                "10.0.0.11",
                "1s"
            ]
        );
        let l = line_with(&text, "[2001:db8::1]:4000");
        assert!(
            l.contains("UDP") && l.contains("#9 (gone)") && l.contains("20ms"),
            "{l}"
        );
    }

    #[test]
    fn explain() {
        let e = ExplainView {
            verdict: "forward".into(),
            service: Some("198.51.100.10:80/tcp".into()),
            backend: Some("10.0.0.11".parse().unwrap()),
            backend_index: Some(3),
            slot: Some(4242),
            reason: "Maglev slot 4242 belongs to this backend".into(),
        };
        let text = render_explain(&e);
        assert!(line_with(&text, "Verdict:").contains("forward"));
        assert!(line_with(&text, "Service:").contains("198.51.100.10:80/tcp"));
        assert!(line_with(&text, "Backend:").contains("10.0.0.11 (index 3)"));
        assert!(line_with(&text, "Slot:").contains("4242"));
        assert!(line_with(&text, "Reason:").contains("belongs to this backend"));
        let pass = render_explain(&ExplainView {
            verdict: "pass".into(),
            service: None,
            backend: None,
            backend_index: None,
            slot: None,
            reason: "no service matches".into(),
        });
        assert!(line_with(&pass, "Backend:").ends_with('-'));
        assert!(line_with(&pass, "Slot:").ends_with('-'));
    }

    #[test]
    fn health() {
        let h = vec![
            HealthView {
                service: "web".into(),
                backend: "10.0.0.11".parse().unwrap(),
                up: true,
                last: "ok: HTTP 200".into(),
                latency_us: Some(1_234),
                checks: 42,
                local_errors: 0,
                since_s: 192,
            },
            HealthView {
                service: "web".into(),
                backend: "10.0.0.12".parse().unwrap(),
                up: false,
                last: "connection refused".into(),
                latency_us: None,
                checks: 7,
                local_errors: 0,
                since_s: 5,
            },
        ];
        let text = render_health(&h);
        let header = text.lines().next().unwrap();
        for col in [
            "Service", "Backend", "State", "Last", "Latency", "Checks", "Since",
        ] {
            assert!(header.contains(col), "{col} missing in {header}");
        }
        let up: Vec<&str> = line_with(&text, "10.0.0.11").split_whitespace().collect();
        assert_eq!(
            up,
            [
                "web",
                "10.0.0.11",
                "up",
                "1.2ms",
                "42",
                "3m12s",
                "ok:",
                "HTTP",
                "200"
            ]
        );
        let down = line_with(&text, "10.0.0.12");
        assert!(
            down.contains("down") && down.contains("connection refused") && down.contains(" - "),
            "{down}"
        );
    }
}

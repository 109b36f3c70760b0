//! Flow sync between LB nodes, end to end, as root, in network namespaces
//! (tests/src/lab.rs with two LB nodes running the real lbd, VRRP v3 at 100 ms):
//! no established flow is lost when a backend change is followed by a failover.
//!
//! The issue: "Two lbd nodes with VRRP v3 at 100 ms, 60 long-lived TCP connections
//! through the master, a backend added on both nodes by reload, each connection
//! exchanging data after the change; then the master dies. Today 24 of the 60
//! connections break. Expected: 60/60 kept, each still on its backend."
//!
//! Why they break without sync: after the change the master's Maglev table has dirty
//! slots that keep the connections that predate it on their old backend (recorded in
//! its connection table once they send), while a backup built its table clean, so at
//! takeover it sends every flow on a moved slot to the slot's new backend, which
//! answers with a reset. With `[sync]` the master shares its tracked flows with the
//! backup and the backup holds the same dirty tables, so it maps them as the master
//! did.
//!
//! Each case: 60 connections from fixed client ports to VIP:8080, held by the
//! `lb-conns` helper (tests/src/bin/lb-conns.rs) in the client namespace; every
//! backend runs `lb-conns serve`, which answers every line with its name, so each
//! connection knows its backend and notices at once if it is reset, closed, goes
//! silent or is answered by another backend. Every connection exchanges a line every
//! 200 ms for the whole test, and on command all of them exchange one at a checkpoint:
//! after the change (through the master), after the takeover (through lb2) and once
//! more at the end. The change is made on both nodes (config written, reload) a few
//! seconds before the master dies (lbd killed with SIGKILL, its link set down, as in
//! vrrp_e2e), so well within `settle_after`. Right after the change 30 more
//! connections open through the master: the ones on moved slots are new flows that
//! only the master's connection table knows (a backup with the same dirty tables but
//! no sync would send them to the slot's previous backend), and they must survive the
//! failover too.
//!
//! Cases: a backend added (60/60 and 30/30 kept), a backend drained with weight 0
//! (60/60 and 30/30 kept), a backend removed (every connection on the remaining
//! backends kept; those on the removed one may break or be re-balanced and are not
//! asserted on). The add and drain
//! cases find the VRRP peer by multicast, the removal case by unicast peers.
//!
//! More cases (the list): a rolling restart of the three backends with a
//! failover between the first two and a failback (lb restarted on its pinned maps,
//! resyncing from lb2, then preempting) between the last two, where only the
//! connections on the backend being restarted may break; the backup's lbd killed with
//! SIGKILL while a backend is added, restarted and resynced, then a failover (90/90
//! kept); bad datagrams sent to the backup's sync port (counted by reason, nothing
//! installed, lbd running), then a failover (90/90 kept). A restarted node's flow sync
//! readiness (its VRRP priority restored) must come with its peer's entries in.
//!
//! Set `LB_SYNC_E2E_NO_SYNC_SECTION=1` to run the same scenario without the `[sync]`
//! section (on a tree without flow sync, where lbd rejects that section, this shows
//! how many connections break).

use std::{
    net::{IpAddr, SocketAddr},
    path::Path,
    sync::{Mutex, MutexGuard},
    time::{Duration, Instant},
};

use lb_api::{
    control::{Request, Response},
    view::{SyncView, VrrpView},
};
use lb_tests::{
    conns::{tally, ConnState, Holder},
    lab::{binary, wait_until, Lab, BACKENDS, CLIENT, VIP},
    netns::sh,
};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The helper that holds the connections and serves them on the backends.
const LB_CONNS: &str = env!("CARGO_BIN_EXE_lb-conns");
/// The service port (backends listen on it too: DR does not translate ports).
const PORT: u16 = 8080;
/// Connections held through the test.
const CONNS: u16 = 60;
/// Their first client port.
const FIRST_PORT: u16 = 41000;
/// Connections opened after the change (new flows on moved slots are recorded by the
/// master alone), and their first client port.
const NEW_CONNS: u16 = 30;
const NEW_FIRST_PORT: u16 = 42000;
/// The sync key both nodes share.
const SYNC_KEY: &str = "0123456789abcdef0123456789abcdef";
/// How long the connections keep exchanging data through the master after the change
/// and its checkpoint before the master dies (a failover can come at any time; this
/// gives the master a moment to share what it tracked).
const AFTER_CHANGE: Duration = Duration::from_secs(2);

#[derive(Clone, Copy)]
enum Peers {
    Multicast,
    Unicast,
}

/// The address of LB node `node` (scripts/lab.sh).
fn node_addr(node: &str) -> &'static str {
    if node == "lb" {
        "10.99.0.2"
    } else {
        "10.99.0.3"
    }
}

/// Node `node`'s config after `[global]` and `[[interface]]`: `[sync]` (unless
/// LB_SYNC_E2E_NO_SYNC_SECTION is set), the VRRP instance (v3, 100 ms; lb 150, lb2 100)
/// and the service VIP:8080/tcp over the backends with `weights`, TCP checks every
/// 300 ms.
fn node_config(node: &str, peers: Peers, weights: [Option<u32>; 3]) -> String {
    let mut s = String::new();
    if std::env::var_os("LB_SYNC_E2E_NO_SYNC_SECTION").is_none() {
        s.push_str(&format!("[sync]\nkey = \"{SYNC_KEY}\"\n\n"));
    }
    let priority = if node == "lb" { 150 } else { 100 };
    s.push_str(&format!(
        "[[vrrp]]\nname = \"VI_1\"\ninterface = \"eth0\"\nvirtual_router_id = 51\n\
         priority = {priority}\nversion = 3\nadvert_interval = \"100ms\"\n\
         virtual_addresses = [\"{VIP}/24\"]\n"
    ));
    if let Peers::Unicast = peers {
        let other = if node == "lb" { "lb2" } else { "lb" };
        s.push_str(&format!(
            "unicast_source = \"{}\"\nunicast_peers = [\"{}\"]\n",
            node_addr(node),
            node_addr(other)
        ));
    }
    s.push_str(&format!(
        "\n[[service]]\nname = \"conns\"\nvip = \"{VIP}\"\nport = {PORT}\n\n\
         [service.health]\nkind = \"tcp\"\ninterval = \"300ms\"\ntimeout = \"250ms\"\n\
         rise = 1\nfall = 2\n\n"
    ));
    for (i, w) in weights.iter().enumerate() {
        if let Some(w) = w {
            s.push_str(&format!(
                "[[service.backend]]\naddress = \"{}\"\nname = \"b{}\"\nweight = {w}\n\n",
                BACKENDS[i],
                i + 1
            ));
        }
    }
    s
}

/// Write node `node`'s config and have `lbd --check-config` accept it.
fn write_config(lab: &Lab, node: &str, peers: Peers, weights: [Option<u32>; 3]) {
    lab.write_config_for(node, &node_config(node, peers, weights));
    let path = lab.config_path_for(node);
    let out = lab
        .command_in(node, &binary("lbd"))
        .arg("--check-config")
        .arg(&path)
        .output()
        .expect("lbd --check-config");
    assert!(
        out.status.success(),
        "lbd rejects {node}'s config (the [sync] section with `key` is what flow sync \
         needs):\n{}{}\n--- {} ---\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        path.display(),
        std::fs::read_to_string(&path).unwrap_or_default()
    );
}

fn vrrp_view(lab: &Lab, node: &str) -> Option<VrrpView> {
    match lab.ask_on(node, Request::Vrrp)? {
        Response::Vrrp { instances } => instances.into_iter().next(),
        _ => None,
    }
}

fn vrrp_state(lab: &Lab, node: &str) -> Option<String> {
    vrrp_view(lab, node).map(|v| v.state)
}

/// Wait (at most 20 s) until the election has settled: lb MASTER at its configured
/// priority 150, lb2 BACKUP at 100 (nothing lowers either any more).
fn wait_for_roles(lab: &Lab) {
    let settled = |node: &str, state: &str, priority: u8| {
        vrrp_view(lab, node).is_some_and(|v| v.state == state && v.priority == priority)
    };
    for _ in 0..200 {
        if settled("lb", "MASTER", 150) && settled("lb2", "BACKUP", 100) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "after 20 s the election has not settled at lb MASTER (priority 150), lb2 BACKUP \
         (100): lb {:?}, lb2 {:?}",
        vrrp_view(lab, "lb"),
        vrrp_view(lab, "lb2")
    );
}

fn vip_on(lab: &Lab, node: &str) -> bool {
    sh(&format!("ip -n {} addr show dev eth0", lab.ns(node))).contains(&format!("{VIP}/24"))
}

/// Wait until node `node`'s data plane has the service as `weights` say: a backend with
/// weight > 0 up and holding slots, one with weight 0 or none (removed) holding none.
fn wait_table(lab: &Lab, node: &str, weights: [Option<u32>; 3]) {
    wait_until(
        Duration::from_secs(20),
        &format!("{node}'s table for the backends {weights:?}"),
        || {
            let Some(Response::List { services }) = lab.ask_on(node, Request::List) else {
                return false;
            };
            let Some(service) = services.iter().find(|s| s.name.as_deref() == Some("conns")) else {
                return false;
            };
            weights.iter().enumerate().all(|(i, w)| {
                let b = service
                    .backends
                    .iter()
                    .find(|b| b.address.to_string() == BACKENDS[i]);
                match (w, b) {
                    // A removed backend stays listed while dirty slots remember it.
                    (None, b) => b.is_none_or(|b| b.slots == 0),
                    (Some(0), Some(b)) => b.slots == 0,
                    (Some(_), Some(b)) => b.slots > 0 && b.state == "up",
                    (Some(_), None) => false,
                }
            })
        },
    );
}

/// Which backend ("b1".."b3") node `node` maps client port `port`'s established flow
/// to now, for the failure messages.
fn explain(lab: &Lab, node: &str, port: u16) -> String {
    let request = Request::Explain {
        src: SocketAddr::new(CLIENT.parse().expect("client"), port),
        dst: SocketAddr::new(VIP.parse().expect("vip"), PORT),
        protocol: "tcp".into(),
        syn: false,
    };
    match lab.ask_on(node, request) {
        Some(Response::Explain(view)) => match view.backend {
            Some(b) => BACKENDS
                .iter()
                .position(|a| *a == b.to_string())
                .map(|i| format!("b{}", i + 1))
                .unwrap_or_else(|| b.to_string()),
            None => format!("no backend ({})", view.verdict),
        },
        _ => "? (no answer)".into(),
    }
}

/// Assert every connection of `opened` opened, on a backend that takes new flows
/// according to `weights`.
fn assert_opened(opened: &[ConnState], count: u16, weights: [Option<u32>; 3], what: &str) {
    let failed: Vec<_> = opened.iter().filter(|c| c.broken.is_some()).collect();
    assert!(
        failed.is_empty() && opened.len() == count as usize,
        "{what}: {} of {count} connections opened; failed: {failed:?}",
        opened.len() - failed.len()
    );
    for c in opened {
        let i = c.backend.trim_start_matches('b').parse::<usize>().ok();
        assert!(
            i.is_some_and(|i| (1..=3).contains(&i) && weights[i - 1].is_some_and(|w| w > 0)),
            "{what}: client port {} answered by {:?}, not a backend taking new flows \
             ({weights:?})",
            c.port,
            c.backend
        );
    }
}

/// The broken ones among `conns` whose backend is still configured in `after`, one
/// line each, and how many connections were on a backend `after` removes.
fn broken_on_kept_backends(
    lab: &Lab,
    conns: &[ConnState],
    after: [Option<u32>; 3],
) -> (Vec<String>, usize) {
    let kept = |b: &str| (0..3).any(|i| format!("b{}", i + 1) == b && after[i].is_some());
    let broken = conns
        .iter()
        .filter(|c| kept(&c.backend))
        .filter_map(|c| {
            let (phase, reason) = c.broken.as_ref()?;
            Some(format!(
                "  client port {} on {}: broken in phase {phase} ({reason}); lb2 maps it \
                 to {} now",
                c.port,
                c.backend,
                explain(lab, "lb2", c.port)
            ))
        })
        .collect();
    (broken, conns.iter().filter(|c| !kept(&c.backend)).count())
}

/// The scenario. `before` and `after` are the backends' weights (None: not
/// configured) before and after the change. Besides the 60 connections opened
/// before the change, 30 more are opened through the master right after it: those
/// on slots the change moved are new flows the master recorded, which the backup knows
/// of only through sync.
fn backend_change_then_failover(
    tag: &str,
    peers: Peers,
    before: [Option<u32>; 3],
    after: [Option<u32>; 3],
) {
    let _s = serial();
    let mut lab = Lab::up_with(tag, 2);
    lab.start_conn_servers(Path::new(LB_CONNS), PORT);
    for node in ["lb", "lb2"] {
        write_config(&lab, node, peers, before);
    }
    lab.start_lbd_on("lb");
    lab.start_lbd_on("lb2");
    wait_for_roles(&lab);
    wait_table(&lab, "lb", before);
    wait_table(&lab, "lb2", before);
    assert!(
        vip_on(&lab, "lb") && !vip_on(&lab, "lb2"),
        "only the master holds the VIP"
    );

    // 60 connections through the master, each on its backend.
    let (mut old, opened) =
        Holder::start(&lab, Path::new(LB_CONNS), PORT, FIRST_PORT, CONNS).expect("lb-conns hold");
    assert_opened(&opened, CONNS, before, "before the change");
    eprintln!("opened before the change: {}", tally(&opened));

    // The change, on both nodes; then every connection exchanges data through the
    // master, 30 new ones open, and all keep exchanging data for a moment.
    old.phase("change").expect("lb-conns hold");
    for node in ["lb", "lb2"] {
        write_config(&lab, node, peers, after);
    }
    for node in ["lb", "lb2"] {
        let answer = lab.ask_on(node, Request::Reload);
        assert!(
            matches!(answer, Some(Response::Done { .. })),
            "reload on {node}: {answer:?}"
        );
    }
    wait_table(&lab, "lb", after);
    wait_table(&lab, "lb2", after);
    let after_change = old.check("after-change").expect("lb-conns hold");
    eprintln!("after the change: {}", tally(&after_change));
    let (mut new, opened_new) =
        Holder::start(&lab, Path::new(LB_CONNS), PORT, NEW_FIRST_PORT, NEW_CONNS)
            .expect("lb-conns hold");
    assert_opened(&opened_new, NEW_CONNS, after, "after the change");
    eprintln!("opened after the change: {}", tally(&opened_new));
    new.phase("after-change").expect("lb-conns hold");
    std::thread::sleep(AFTER_CHANGE);

    // The master dies: lbd killed, its node off the wire. lb2 takes over.
    assert!(
        vrrp_state(&lab, "lb").as_deref() == Some("MASTER") && vip_on(&lab, "lb"),
        "lb is no longer the master before it dies: lb {:?}, lb2 {:?}",
        vrrp_view(&lab, "lb"),
        vrrp_view(&lab, "lb2")
    );
    for h in [&mut old, &mut new] {
        h.phase("failover").expect("lb-conns hold");
    }
    lab.kill_lbd_on("lb");
    sh(&format!("ip -n {} link set eth0 down", lab.ns("lb")));
    wait_until(Duration::from_secs(5), "lb2 MASTER", || {
        vrrp_state(&lab, "lb2").as_deref() == Some("MASTER")
    });
    wait_until(Duration::from_secs(5), "the VIP on lb2", || {
        vip_on(&lab, "lb2")
    });
    for (h, what) in [(&mut old, "before"), (&mut new, "after")] {
        let now = h.check("after-failover").expect("lb-conns hold");
        eprintln!(
            "after the failover, opened {what} the change: {}",
            tally(&now)
        );
        h.phase("after-failover").expect("lb-conns hold");
    }
    std::thread::sleep(Duration::from_secs(1));
    let mut last = Vec::new();
    for h in [&mut old, &mut new] {
        last.push(h.check("final").expect("lb-conns hold"));
        h.send("quit").expect("lb-conns hold");
    }

    // Every connection whose backend is still configured (up or draining) is kept, on
    // its backend (lb-conns checks every answer's backend).
    let (broken_old, removed) = broken_on_kept_backends(&lab, &last[0], after);
    let (broken_new, _) = broken_on_kept_backends(&lab, &last[1], after);
    assert!(
        broken_old.is_empty() && broken_new.is_empty(),
        "connections on backends that stay configured broke across the change and the \
         failover:\n\
         opened before the change: {} of {} broken (per backend: {}){}\n{}\n\
         opened after the change: {} of {} broken (per backend: {})\n{}",
        broken_old.len(),
        last[0].len() - removed,
        tally(&last[0]),
        if removed > 0 {
            format!("; the {removed} on the removed backend are not asserted on")
        } else {
            String::new()
        },
        broken_old.join("\n"),
        broken_new.len(),
        last[1].len(),
        tally(&last[1]),
        broken_new.join("\n"),
    );
}

#[test]
fn a_backend_added_then_a_failover_keeps_every_connection() {
    backend_change_then_failover(
        "sa",
        Peers::Multicast,
        [Some(1), Some(1), None],
        [Some(1), Some(1), Some(1)],
    );
}

#[test]
fn a_backend_drained_then_a_failover_keeps_every_connection() {
    backend_change_then_failover(
        "sd",
        Peers::Multicast,
        [Some(1), Some(1), Some(1)],
        [Some(1), Some(1), Some(0)],
    );
}

#[test]
fn a_backend_removed_then_a_failover_keeps_the_connections_on_the_others() {
    backend_change_then_failover(
        "sr",
        Peers::Unicast,
        [Some(1), Some(1), Some(1)],
        [Some(1), Some(1), None],
    );
}

// More cases: rolling backend restarts across a failover and a failback, the backup's
// lbd killed during a change, and bad sync input sent to a running pair.

/// Connections opened later in the rolling restart: after b1 is back (through lb) and
/// after b2 is back (through lb2, while lb is down), and their first client ports.
const LATER_CONNS: u16 = 30;
const AFTER_B1_FIRST_PORT: u16 = 42000;
const AFTER_B2_FIRST_PORT: u16 = 43000;
/// The sync port (`[sync] port`'s default).
const SYNC_PORT: u16 = 8848;
/// Client ports of the flows the forged sync datagrams carry (never opened), and how
/// many: as many as one datagram holds.
const FORGED_FIRST_PORT: u16 = 47000;
const FORGED: u16 = lb_sync::wire::ENTRIES_PER_DATAGRAM_V4 as u16;

fn sync_view(lab: &Lab, node: &str) -> Option<SyncView> {
    match lab.ask_on(node, Request::Sync)? {
        Response::Sync(view) => Some(view),
        _ => None,
    }
}

/// Entries node `node` accepted from peer `peer` ("lb", "lb2"), by its sync view.
fn entries_from(lab: &Lab, node: &str, peer: &str) -> Option<u64> {
    let view = sync_view(lab, node)?;
    view.peers
        .iter()
        .find(|p| p.address.ip().to_string() == node_addr(peer))
        .map(|p| p.entries_received)
}

/// What `lbctl sync`, `lbctl vrrp` and `lbctl conns` say on `node`, for failure
/// messages.
fn lbctl_report(lab: &Lab, node: &str) -> String {
    let mut s = String::new();
    for args in [&["sync"][..], &["vrrp"], &["conns", "--limit", "200"]] {
        let out = lab.lbctl_on(node, args);
        s.push_str(&format!(
            "--- lbctl {} on {node} ---\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    // Datagrams the kernel dropped (RcvbufErrors: a socket's receive buffer was full).
    let snmp = std::process::Command::new("ip")
        .args(["netns", "exec", &lab.ns(node), "cat", "/proc/net/snmp"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    s.push_str(&format!("--- UDP counters on {node} ---\n"));
    for line in snmp.lines().filter(|l| l.starts_with("Udp:")) {
        s.push_str(line);
        s.push('\n');
    }
    s
}

/// Like `wait_until`, but a timeout's message carries `lbctl sync`, `vrrp` and
/// `conns` of the nodes that run lbd.
fn wait_or_report(lab: &Lab, timeout: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut report = String::new();
    for node in ["lb", "lb2"] {
        if lab.ask_on(node, Request::Status).is_some() {
            report.push_str(&lbctl_report(lab, node));
        }
    }
    panic!("timed out after {timeout:?} waiting for: {what}\n{report}");
}

/// Wait (at most 20 s per node) until every node of `nodes` sees backend `i` (0-based)
/// up or down: its health check says so, and its data plane gives the backend slots
/// (up) or none (down).
fn wait_backend(lab: &Lab, nodes: &[&str], i: usize, up: bool) {
    let addr = BACKENDS[i];
    for node in nodes {
        let what = format!("{node} sees b{} {}", i + 1, if up { "up" } else { "down" });
        wait_or_report(lab, Duration::from_secs(20), &what, || {
            let Some(Response::Health { backends }) = lab.ask_on(node, Request::Health) else {
                return false;
            };
            if !backends
                .iter()
                .any(|h| h.service == "conns" && h.backend.to_string() == addr && h.up == up)
            {
                return false;
            }
            let Some(Response::List { services }) = lab.ask_on(node, Request::List) else {
                return false;
            };
            services
                .iter()
                .filter(|s| s.name.as_deref() == Some("conns"))
                .flat_map(|s| &s.backends)
                .filter(|b| b.address.to_string() == addr)
                .any(|b| {
                    if up {
                        b.state == "up" && b.slots > 0
                    } else {
                        b.slots == 0
                    }
                })
        });
    }
}

/// Wait (at most 20 s) until node `node`, restarted, has its flow sync ready: its VRRP
/// priority is back at `priority` (it runs at the lowest until then). Readiness means
/// a full resync from each live peer ended (lb-userspace/src/node/mod.rs), so by then
/// `node` holds entries from `peer`, whose connection table has some.
fn wait_sync_ready(lab: &Lab, node: &str, priority: u8, peer: &str) {
    assert!(
        !table_of(lab, peer).is_empty(),
        "{peer} tracks no connection: nothing to resync"
    );
    wait_or_report(
        lab,
        Duration::from_secs(20),
        &format!("{node}'s VRRP priority back at {priority} (flow sync ready)"),
        || vrrp_view(lab, node).is_some_and(|v| v.priority == priority),
    );
    let entries = entries_from(lab, node, peer);
    assert!(
        entries.is_some_and(|n| n > 0),
        "{node} restored its VRRP priority (flow sync ready) holding no entries from {peer} \
         ({entries:?} received), whose connection table has some: its readiness came \
         before {peer}'s full resync did\n{}{}",
        lbctl_report(lab, node),
        lbctl_report(lab, peer)
    );
}

/// The master dies as in the issue (lbd killed with SIGKILL, its link set down); waits
/// until lb2 is MASTER and holds the VIP.
fn fail_over(lab: &mut Lab) {
    assert!(
        vrrp_state(lab, "lb").as_deref() == Some("MASTER") && vip_on(lab, "lb"),
        "lb is not the master before it dies: lb {:?}, lb2 {:?}",
        vrrp_view(lab, "lb"),
        vrrp_view(lab, "lb2")
    );
    lab.kill_lbd_on("lb");
    sh(&format!("ip -n {} link set eth0 down", lab.ns("lb")));
    wait_or_report(lab, Duration::from_secs(5), "lb2 MASTER", || {
        vrrp_state(lab, "lb2").as_deref() == Some("MASTER")
    });
    wait_or_report(lab, Duration::from_secs(5), "the VIP on lb2", || {
        vip_on(lab, "lb2")
    });
}

/// A set of held connections and when it was opened.
struct Held {
    holder: Holder,
    what: &'static str,
}

fn phase_all(held: &mut [Held], name: &str) {
    for h in held.iter_mut() {
        h.holder.phase(name).expect("lb-conns hold");
    }
}

/// Every held connection exchanges a line now; the state of each set.
fn check_all(held: &mut [Held], name: &str) -> Vec<Vec<ConnState>> {
    held.iter_mut()
        .map(|h| {
            let now = h.holder.check(name).expect("lb-conns hold");
            eprintln!("{name}, opened {}: {}", h.what, tally(&now));
            now
        })
        .collect()
}

/// The last failover with every held set: a check after it, one a second later
/// (`final`), then the helpers quit. The state of each set at the end.
fn final_failover(lab: &mut Lab, held: &mut [Held]) -> Vec<Vec<ConnState>> {
    phase_all(held, "failover");
    fail_over(lab);
    check_all(held, "after-failover");
    phase_all(held, "after-failover");
    std::thread::sleep(Duration::from_secs(1));
    let last = check_all(held, "final");
    for h in held.iter_mut() {
        h.holder.send("quit").expect("lb-conns hold");
    }
    last
}

/// Assert no connection of `last` (the final state of each set of `held`) broke,
/// with how lb2 maps each broken one; `run` names the run in the summary line,
/// `across` what the connections went through.
fn assert_none_broken(
    lab: &Lab,
    held: &[Held],
    last: &[Vec<ConnState>],
    run: &str,
    across: &str,
    started: Instant,
) {
    let broken: Vec<String> = held
        .iter()
        .zip(last)
        .flat_map(|(h, conns)| {
            conns.iter().filter_map(move |c| {
                let (phase, reason) = c.broken.as_ref()?;
                Some(format!(
                    "  client port {} on {} (opened {}): broken in phase {phase} ({reason}); \
                     lb2 maps it to {}",
                    c.port,
                    c.backend,
                    h.what,
                    explain(lab, "lb2", c.port)
                ))
            })
        })
        .collect();
    let total: usize = last.iter().map(Vec::len).sum();
    eprintln!(
        "{run}: {} of {total} kept; {:.1} s",
        total - broken.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        broken.is_empty(),
        "{} of {total} connections broke across {across}:\n{}\n{}",
        broken.len(),
        broken.join("\n"),
        lbctl_report(lab, "lb2")
    );
}

/// Restart backend `i`'s `lb-conns serve` (0-based): stopped (its connections break;
/// the phase is `restart-bN` meanwhile), until every node of `nodes` marks it down,
/// then started again, until they mark it up; then every held connection exchanges a
/// line (those on the restarted backend report broken, in that phase).
fn restart_backend(
    lab: &mut Lab,
    held: &mut [Held],
    servers: &mut [u32; 3],
    i: usize,
    nodes: &[&str],
) {
    let phase = format!("restart-b{}", i + 1);
    phase_all(held, &phase);
    assert!(
        lab.stop_process(servers[i]),
        "b{}'s lb-conns serve is not running",
        i + 1
    );
    wait_backend(lab, nodes, i, false);
    servers[i] = lab.start_conn_server(Path::new(LB_CONNS), PORT, i);
    wait_backend(lab, nodes, i, true);
    check_all(held, &format!("after-{phase}"));
}

/// The list, 1: a rolling restart of all three backends, with an LB failover
/// between the first two and a failback between the last two. Only the connections
/// on the backend being restarted may break: every other one keeps its backend across
/// the failover (lb2 learned lb's flows live) and the failback (lb, restarted on its
/// pinned maps, learns lb2's by resync before it preempts).
///
/// Connections: 60 through lb at the start, 30 more through lb after b1 is back, 30
/// more through lb2 after b2 is back (while lb is down: new flows only lb2 knows, which
/// lb must learn at its restart).
#[test]
fn a_rolling_backend_restart_with_a_failover_and_a_failback_keeps_every_other_connection() {
    let _s = serial();
    let started = Instant::now();
    let all = [Some(1), Some(1), Some(1)];
    let mut lab = Lab::up_with("sk", 2);
    let mut servers = [0u32; 3];
    for (i, s) in servers.iter_mut().enumerate() {
        *s = lab.start_conn_server(Path::new(LB_CONNS), PORT, i);
    }
    for node in ["lb", "lb2"] {
        write_config(&lab, node, Peers::Multicast, all);
    }
    lab.start_lbd_on("lb");
    lab.start_lbd_on("lb2");
    wait_for_roles(&lab);
    wait_table(&lab, "lb", all);
    wait_table(&lab, "lb2", all);

    let (holder, opened) =
        Holder::start(&lab, Path::new(LB_CONNS), PORT, FIRST_PORT, CONNS).expect("lb-conns hold");
    assert_opened(&opened, CONNS, all, "at the start");
    eprintln!("opened at the start: {}", tally(&opened));
    let mut held = vec![Held {
        holder,
        what: "at the start",
    }];

    // b1, with both nodes up; then 30 more connections through lb.
    restart_backend(&mut lab, &mut held, &mut servers, 0, &["lb", "lb2"]);
    let (holder, opened) = Holder::start(
        &lab,
        Path::new(LB_CONNS),
        PORT,
        AFTER_B1_FIRST_PORT,
        LATER_CONNS,
    )
    .expect("lb-conns hold");
    assert_opened(&opened, LATER_CONNS, all, "after b1 is back");
    eprintln!("opened after b1 is back: {}", tally(&opened));
    held.push(Held {
        holder,
        what: "after b1 is back",
    });
    std::thread::sleep(AFTER_CHANGE);

    // Failover: lb dies, lb2 takes over.
    phase_all(&mut held, "failover");
    fail_over(&mut lab);
    check_all(&mut held, "after-failover");

    // b2, with lb2 alone; then 30 more connections through lb2.
    restart_backend(&mut lab, &mut held, &mut servers, 1, &["lb2"]);
    let (holder, opened) = Holder::start(
        &lab,
        Path::new(LB_CONNS),
        PORT,
        AFTER_B2_FIRST_PORT,
        LATER_CONNS,
    )
    .expect("lb-conns hold");
    assert_opened(&opened, LATER_CONNS, all, "after b2 is back");
    eprintln!("opened after b2 is back (through lb2): {}", tally(&opened));
    held.push(Held {
        holder,
        what: "after b2 is back",
    });
    std::thread::sleep(AFTER_CHANGE);

    // Failback: lb's link comes back and its lbd restarts on the maps it pinned; it
    // resyncs from lb2, then preempts at 150 once its priority is restored.
    phase_all(&mut held, "failback");
    let vip_left = vip_on(&lab, "lb");
    sh(&format!("ip -n {} link set eth0 up", lab.ns("lb")));
    lab.start_lbd_on("lb");
    let run = lab.lbd_runs();
    let first = vrrp_view(&lab, "lb");
    eprintln!(
        "failback: the VIP was still on lb's eth0 when its lbd restarted: {vip_left}; \
         lb right after the restart: {:?}",
        first.map(|v| (v.state, v.priority, v.tracking))
    );
    wait_sync_ready(&lab, "lb", 150, "lb2");
    wait_or_report(
        &lab,
        Duration::from_secs(20),
        "lb MASTER at 150 and lb2 BACKUP at 100 again (lb resynced, then preempted)",
        || {
            vrrp_view(&lab, "lb").is_some_and(|v| v.state == "MASTER" && v.priority == 150)
                && vrrp_view(&lab, "lb2").is_some_and(|v| v.state == "BACKUP" && v.priority == 100)
        },
    );
    wait_or_report(&lab, Duration::from_secs(5), "the VIP on lb alone", || {
        vip_on(&lab, "lb") && !vip_on(&lab, "lb2")
    });
    let log = lab.lbd_log(run);
    eprintln!(
        "failback: lb's lbd log: inherited master: {}, released the inherited VIPs: {}, \
         sync ready: {}, gave up waiting for the resync: {}; entries lb took from lb2: \
         {:?}",
        log.contains("VIPs already on the interface"),
        log.contains("releasing the inherited VIPs"),
        log.contains("VRRP priority restored"),
        log.contains("did not finish"),
        entries_from(&lab, "lb", "lb2"),
    );
    assert!(
        !log.contains("did not finish"),
        "lb took over again without lb2's full resync:\n{}",
        lbctl_report(&lab, "lb")
    );
    check_all(&mut held, "after-failback");

    // b3, with both nodes up again.
    restart_backend(&mut lab, &mut held, &mut servers, 2, &["lb", "lb2"]);
    phase_all(&mut held, "final");
    std::thread::sleep(Duration::from_secs(1));
    let last = check_all(&mut held, "final");
    for h in held.iter_mut() {
        h.holder.send("quit").expect("lb-conns hold");
    }

    // Set k was opened before the restarts of b(k+1).. : a connection on one of those
    // breaks in its backend's restart, and only then; every other one is kept.
    let mut lost = Vec::new();
    let mut survived_restart = Vec::new();
    let (mut kept, mut expected_broken) = (0, 0);
    for (k, (h, conns)) in held.iter().zip(&last).enumerate() {
        for c in conns {
            let b: usize = c.backend.trim_start_matches('b').parse().expect("backend");
            let restarted_since_open = b > k;
            let own = format!("restart-{}", c.backend);
            match &c.broken {
                Some((phase, _)) if restarted_since_open && *phase == own => expected_broken += 1,
                Some((phase, reason)) => lost.push(format!(
                    "  client port {} on {} (opened {}): broken in phase {phase} ({reason}); \
                     lb maps it to {}, lb2 to {}",
                    c.port,
                    c.backend,
                    h.what,
                    explain(&lab, "lb", c.port),
                    explain(&lab, "lb2", c.port)
                )),
                None if restarted_since_open => survived_restart.push(c.port),
                None => kept += 1,
            }
        }
    }
    eprintln!(
        "rolling restart: {kept} connections kept, {expected_broken} broken by their own \
         backend's restart, {} lost; {:.1} s",
        lost.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        lost.is_empty(),
        "{} connections broke while their backend was healthy (across b1's restart, the \
         failover, b2's restart, the failback and b3's restart):\n{}\n{}{}",
        lost.len(),
        lost.join("\n"),
        lbctl_report(&lab, "lb"),
        lbctl_report(&lab, "lb2")
    );
    assert!(
        survived_restart.is_empty(),
        "connections on a backend restarted after they opened did not break (was the \
         restart real?): client ports {survived_restart:?}"
    );
}

/// The list, 2: the backup's lbd is killed with SIGKILL, a backend is added
/// while it is down (both configs written, lb reloaded; lb2 reads the new one when it
/// starts), 30 connections open after the change, lb2's lbd starts again (on its
/// pinned maps) and resyncs from lb; then lb dies. Every connection is kept: the 60
/// from before the change and the 30 after, some of them new flows on moved slots
/// that lb2 can only know from the resync.
#[test]
fn the_backups_lbd_killed_during_a_change_resyncs_and_a_failover_keeps_every_flow() {
    let _s = serial();
    let started = Instant::now();
    let (peers, before, after) = (
        Peers::Unicast,
        [Some(1), Some(1), None],
        [Some(1), Some(1), Some(1)],
    );
    let mut lab = Lab::up_with("sb", 2);
    lab.start_conn_servers(Path::new(LB_CONNS), PORT);
    for node in ["lb", "lb2"] {
        write_config(&lab, node, peers, before);
    }
    lab.start_lbd_on("lb");
    lab.start_lbd_on("lb2");
    wait_for_roles(&lab);
    wait_table(&lab, "lb", before);
    wait_table(&lab, "lb2", before);

    let (old, opened) =
        Holder::start(&lab, Path::new(LB_CONNS), PORT, FIRST_PORT, CONNS).expect("lb-conns hold");
    assert_opened(&opened, CONNS, before, "before the change");
    eprintln!("opened before the change: {}", tally(&opened));
    let mut held = vec![Held {
        holder: old,
        what: "before the change",
    }];

    // lb2's lbd dies; the change is made on both nodes (lb2's only on disk).
    phase_all(&mut held, "backup-down");
    lab.kill_lbd_on("lb2");
    for node in ["lb", "lb2"] {
        write_config(&lab, node, peers, after);
    }
    let answer = lab.ask_on("lb", Request::Reload);
    assert!(
        matches!(answer, Some(Response::Done { .. })),
        "reload on lb: {answer:?}"
    );
    wait_table(&lab, "lb", after);
    check_all(&mut held, "after-change");
    let (new, opened) = Holder::start(&lab, Path::new(LB_CONNS), PORT, NEW_FIRST_PORT, NEW_CONNS)
        .expect("lb-conns hold");
    assert_opened(&opened, NEW_CONNS, after, "after the change");
    eprintln!("opened after the change: {}", tally(&opened));
    held.push(Held {
        holder: new,
        what: "after the change",
    });
    phase_all(&mut held, "backup-restart");

    // lb2's lbd starts again and must hold lb's state: a full resync from lb, after
    // which its VRRP priority is restored (100).
    let restart = Instant::now();
    lab.start_lbd_on("lb2");
    let run = lab.lbd_runs();
    wait_sync_ready(&lab, "lb2", 100, "lb");
    let log = lab.lbd_log(run);
    assert!(
        !log.contains("did not finish"),
        "lb2 restored its priority without lb's full resync:\n{}",
        lbctl_report(&lab, "lb2")
    );
    eprintln!(
        "lb2 restarted: entries received from lb {:?}, sync ready: {}, {:.1} s after the \
         restart",
        entries_from(&lab, "lb2", "lb"),
        log.contains("VRRP priority restored"),
        restart.elapsed().as_secs_f64()
    );
    wait_table(&lab, "lb2", after);
    wait_for_roles(&lab);
    check_all(&mut held, "after-backup-restart");
    std::thread::sleep(AFTER_CHANGE);

    let last = final_failover(&mut lab, &mut held);
    assert_none_broken(
        &lab,
        &held,
        &last,
        "backup killed and restarted",
        "the backup's restart and the failover",
        started,
    );
}

/// The UDP payload of an IPv4 packet from lb to the sync port, unfragmented.
fn sync_payload(ip: &[u8]) -> Option<Vec<u8>> {
    if ip.len() < 20 || ip[0] >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    let fragment = u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff != 0;
    let lb: [u8; 4] = node_addr("lb")
        .parse::<std::net::Ipv4Addr>()
        .expect("lb")
        .octets();
    if ip[9] != 17 || ip[12..16] != lb || fragment || total > ip.len() || ihl + 8 > total {
        return None;
    }
    let udp = &ip[ihl..total];
    if u16::from_be_bytes([udp[2], udp[3]]) != SYNC_PORT {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([udp[4], udp[5]])).clamp(8, udp.len());
    Some(udp[8..len].to_vec())
}

/// Capture, on lb2's eth0 (a packet socket in its namespace), the sync datagrams lb
/// sends, for at most `within`; stops at the first `Entries` datagram. Join the handle
/// for them.
fn capture_sync(lab: &Lab, within: Duration) -> std::thread::JoinHandle<Vec<Vec<u8>>> {
    lab.spawn_in("lb2", move || {
        let protocol = (libc::ETH_P_IP as u16).to_be();
        // SAFETY: plain socket calls on a descriptor owned here, with buffers and
        // structures of the sizes passed.
        unsafe {
            let fd = libc::socket(
                libc::AF_PACKET,
                libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
                i32::from(protocol),
            );
            assert!(
                fd >= 0,
                "packet socket: {}",
                std::io::Error::last_os_error()
            );
            let mut sll: libc::sockaddr_ll = std::mem::zeroed();
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_protocol = protocol;
            sll.sll_ifindex = libc::if_nametoindex(c"eth0".as_ptr()) as i32;
            let bound = libc::bind(
                fd,
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            );
            assert!(bound == 0, "bind: {}", std::io::Error::last_os_error());
            let tv = libc::timeval {
                tv_sec: 0,
                tv_usec: 200_000,
            };
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as u32,
            );
            let deadline = Instant::now() + within;
            let mut out = Vec::new();
            let mut buf = vec![0u8; 65536];
            while Instant::now() < deadline {
                let n = libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0);
                let Ok(n) = usize::try_from(n) else { continue };
                if let Some(payload) = sync_payload(&buf[..n]) {
                    let entries = payload.get(5) == Some(&(lb_sync::wire::Kind::Entries as u8));
                    out.push(payload);
                    if entries {
                        break;
                    }
                }
            }
            libc::close(fd);
            out
        }
    })
}

/// Send `datagrams` to lb2's sync port from lab node `node`'s namespace.
fn send_to_lb2(lab: &Lab, node: &str, datagrams: Vec<Vec<u8>>) {
    let to = SocketAddr::new(node_addr("lb2").parse().expect("lb2"), SYNC_PORT);
    lab.spawn_in(node, move || {
        let socket = std::net::UdpSocket::bind("0.0.0.0:0").expect("bind a UDP socket");
        for d in &datagrams {
            socket.send_to(d, to).expect("send a datagram to lb2");
            std::thread::sleep(Duration::from_millis(5));
        }
    })
    .join()
    .expect("the sender thread");
}

/// Flows that were never opened (client ports FORGED_FIRST_PORT..), as sync entries.
fn forged_entries(count: u16) -> Vec<lb_sync::FlowEntry> {
    (0..count)
        .map(|i| lb_sync::FlowEntry {
            client: CLIENT.parse().expect("client"),
            client_port: FORGED_FIRST_PORT + i,
            vip: VIP.parse().expect("vip"),
            vip_port: PORT,
            proto: 6,
            backend: BACKENDS[usize::from(i) % 3].parse().expect("backend"),
            idle_ms: 0,
        })
        .collect()
}

/// Client ports in the forged range among node `node`'s tracked connections.
fn forged_in_table(lab: &Lab, node: &str) -> Vec<u16> {
    let Some(Response::Conns { conns }) = lab.ask_on(node, Request::Conns { limit: 1 << 20 })
    else {
        panic!("{node} does not list its connections");
    };
    conns
        .iter()
        .filter(|c| {
            c.client.ip().to_string() == CLIENT
                && (FORGED_FIRST_PORT..FORGED_FIRST_PORT + FORGED).contains(&c.client.port())
        })
        .map(|c| c.client.port())
        .collect()
}

/// Tracked connections of node `node`: client port -> backend.
fn table_of(lab: &Lab, node: &str) -> std::collections::BTreeMap<u16, Option<IpAddr>> {
    match lab.ask_on(node, Request::Conns { limit: 1 << 20 }) {
        Some(Response::Conns { conns }) => conns
            .iter()
            .filter(|c| c.client.ip().to_string() == CLIENT)
            .map(|c| (c.client.port(), c.backend))
            .collect(),
        _ => Default::default(),
    }
}

/// The bad datagrams, each with the reason lb2 must count it under: random bytes,
/// copies of `genuine` (a datagram lb sent, already received) truncated below a header
/// and cut by one byte, `genuine` itself (a replay), and datagrams carrying forged
/// entries under lb's node id and epoch: signed with the wrong key, oversized (signed
/// with the right key), and of an unknown version (signed with the right key).
fn bad_datagrams(genuine: &[u8], lb_id: u64, lb_epoch: u64) -> Vec<(&'static str, Vec<u8>)> {
    use lb_sync::{
        auth::{Key, TAG_LEN},
        wire::{self, Header, Kind, Payload, OVERHEAD},
    };
    use rand::Rng;
    let mut rng = rand::thread_rng();
    let mut out = Vec::new();
    for _ in 0..8 {
        let mut d = vec![0u8; rng.gen_range(OVERHEAD..=wire::MAX_DATAGRAM)];
        rng.fill(&mut d[..]);
        if d[0] == wire::MAGIC[0] {
            d[0] ^= 0x80;
        }
        out.push(("bad_magic", d));
    }
    for _ in 0..4 {
        let mut d = vec![0u8; rng.gen_range(1..OVERHEAD)];
        rng.fill(&mut d[..]);
        out.push(("truncated", d));
    }
    out.push((
        "truncated",
        genuine[..wire::HEADER_LEN.min(genuine.len())].to_vec(),
    ));
    assert!(
        genuine.len() > OVERHEAD,
        "a genuine datagram is longer than its overhead"
    );
    out.push(("bad_tag", genuine[..genuine.len() - 1].to_vec()));
    out.push(("replay", genuine.to_vec()));

    let key = Key::new(SYNC_KEY.as_bytes()).expect("key");
    // Far ahead of anything lb sent: accepting one would also move lb2's window.
    let header = Header {
        kind: Kind::Entries,
        flags: 0,
        node_id: lb_id,
        dest_node: 0,
        epoch: lb_epoch,
        seq: 1 << 40,
    };
    let payload = Payload::Entries(forged_entries(FORGED)).encode();
    let wrong = Key::new(b"not the key the nodes share, no").expect("wrong key");
    out.push((
        "bad_tag",
        wire::seal(&wrong, &header, &payload).expect("seal"),
    ));
    let retag = |d: &mut Vec<u8>| {
        d.truncate(d.len() - TAG_LEN);
        let tag = key.tag(d);
        d.extend_from_slice(&tag);
    };
    // 1466 bytes: over the limit, under the link's MTU (no fragments).
    let mut big = wire::seal(&key, &header, &payload).expect("seal");
    big.truncate(big.len() - TAG_LEN);
    for e in forged_entries(3) {
        wire::put_entry(&mut big, &e);
    }
    big.extend_from_slice(&[0u8; TAG_LEN]);
    retag(&mut big);
    assert!(big.len() > wire::MAX_DATAGRAM && big.len() + 28 <= 1500);
    out.push(("oversized", big));
    let mut future = wire::seal(&key, &header, &payload).expect("seal");
    future[4] = wire::VERSION + 1;
    retag(&mut future);
    out.push(("unknown_version", future));
    out
}

/// The list, 3: bad sync input, live. A running pair after a backend was
/// added (so lb tracks flows on moved slots and syncs them); lb2's sync port gets,
/// from the client's namespace and from lb's, random bytes, a truncated copy of a
/// datagram lb sent (captured on lb2's eth0), that copy cut by a byte, the datagram
/// itself again (a replay), and forged entries under lb's identity signed with the
/// wrong key, oversized, and of an unknown version. lb2 counts each by its reason,
/// installs none of the forged flows, keeps running with lb's session intact (30
/// connections opened afterwards are synced), and a failover keeps every connection.
#[test]
fn bad_sync_datagrams_are_counted_and_ignored_and_a_failover_keeps_every_connection() {
    let _s = serial();
    let started = Instant::now();
    let (peers, before, after) = (
        Peers::Multicast,
        [Some(1), Some(1), None],
        [Some(1), Some(1), Some(1)],
    );
    let mut lab = Lab::up_with("sx", 2);
    lab.start_conn_servers(Path::new(LB_CONNS), PORT);
    for node in ["lb", "lb2"] {
        write_config(&lab, node, peers, before);
    }
    lab.start_lbd_on("lb");
    lab.start_lbd_on("lb2");
    wait_for_roles(&lab);
    wait_table(&lab, "lb", before);
    wait_table(&lab, "lb2", before);

    let (old, opened) =
        Holder::start(&lab, Path::new(LB_CONNS), PORT, FIRST_PORT, CONNS).expect("lb-conns hold");
    assert_opened(&opened, CONNS, before, "before the change");
    eprintln!("opened before the change: {}", tally(&opened));
    let mut held = vec![Held {
        holder: old,
        what: "before the change",
    }];

    // A backend added on both; the connections on moved slots are recorded by lb as
    // they send, and synced: capture those datagrams on lb2's wire.
    let capture = capture_sync(&lab, Duration::from_secs(8));
    phase_all(&mut held, "change");
    for node in ["lb", "lb2"] {
        write_config(&lab, node, peers, after);
    }
    for node in ["lb", "lb2"] {
        let answer = lab.ask_on(node, Request::Reload);
        assert!(
            matches!(answer, Some(Response::Done { .. })),
            "reload on {node}: {answer:?}"
        );
    }
    wait_table(&lab, "lb", after);
    wait_table(&lab, "lb2", after);
    check_all(&mut held, "after-change");
    let captured = capture.join().expect("the capture thread");
    let genuine = captured
        .iter()
        .rev()
        .find(|d| d.get(5) == Some(&(lb_sync::wire::Kind::Entries as u8)))
        .or(captured.last())
        .unwrap_or_else(|| panic!("no sync datagram from lb captured on lb2's eth0 in 8 s"))
        .clone();
    eprintln!(
        "captured {} datagrams from lb on lb2's eth0; replaying one of kind {} ({} bytes)",
        captured.len(),
        genuine[5],
        genuine.len()
    );
    wait_or_report(
        &lab,
        Duration::from_secs(10),
        "lb2 received entries from lb",
        || entries_from(&lab, "lb2", "lb").is_some_and(|n| n > 0),
    );

    // The attack.
    phase_all(&mut held, "attack");
    let lb_view = sync_view(&lab, "lb").expect("lb's sync view");
    let before_view = sync_view(&lab, "lb2").expect("lb2's sync view");
    let lb_session = |v: &SyncView| {
        v.peers
            .iter()
            .find(|p| p.node_id == lb_view.node_id)
            .map(|p| (p.epoch, p.restarts))
    };
    assert_eq!(
        forged_in_table(&lab, "lb2"),
        Vec::<u16>::new(),
        "forged flows before the attack"
    );
    let bad = bad_datagrams(&genuine, lb_view.node_id, lb_view.epoch);
    let mut expected: std::collections::BTreeMap<&str, u64> = Default::default();
    for (reason, _) in &bad {
        *expected.entry(reason).or_default() += 2;
    }
    let datagrams: Vec<Vec<u8>> = bad.into_iter().map(|(_, d)| d).collect();
    send_to_lb2(&lab, "client", datagrams.clone());
    send_to_lb2(&lab, "lb", datagrams);
    let grown = |v: &SyncView, reason: &str| {
        v.rejected.get(reason).copied().unwrap_or(0)
            - before_view.rejected.get(reason).copied().unwrap_or(0)
    };
    wait_or_report(
        &lab,
        Duration::from_secs(10),
        &format!("lb2 counts the bad datagrams as rejected: {expected:?}"),
        || sync_view(&lab, "lb2").is_some_and(|v| expected.iter().all(|(r, n)| grown(&v, r) >= *n)),
    );
    std::thread::sleep(Duration::from_millis(500));
    let after_view = sync_view(&lab, "lb2").expect("lb2's sync view");
    let counted: std::collections::BTreeMap<&str, u64> = after_view
        .rejected
        .keys()
        .map(|r| (r.as_str(), grown(&after_view, r)))
        .filter(|(_, n)| *n > 0)
        .collect();
    eprintln!("lb2 rejected: {counted:?} (sent: {expected:?})");
    assert_eq!(
        counted, expected,
        "lb2 counts the bad datagrams by reason (grown counters vs. sent)"
    );

    // Nothing of them installed; lbd running, lb's session as it was.
    assert!(
        lab.lbd_running_on("lb2") && lab.ask_on("lb2", Request::Status).is_some(),
        "lb2's lbd did not survive the bad datagrams"
    );
    assert_eq!(after_view.epoch, before_view.epoch, "lb2's lbd restarted");
    assert_eq!(
        lb_session(&after_view),
        lb_session(&before_view),
        "lb2's session of lb (epoch, restarts) changed"
    );
    assert_eq!(
        forged_in_table(&lab, "lb2"),
        Vec::<u16>::new(),
        "lb2 installed forged flows from the bad datagrams:\n{}",
        lbctl_report(&lab, "lb2")
    );
    assert_eq!(
        forged_in_table(&lab, "lb"),
        Vec::<u16>::new(),
        "lb has forged flows"
    );

    // The sync still works: 30 new connections; those lb tracks reach lb2.
    let (new, opened) = Holder::start(&lab, Path::new(LB_CONNS), PORT, NEW_FIRST_PORT, NEW_CONNS)
        .expect("lb-conns hold");
    assert_opened(&opened, NEW_CONNS, after, "after the attack");
    eprintln!("opened after the attack: {}", tally(&opened));
    held.push(Held {
        holder: new,
        what: "after the attack",
    });
    let new_ports = NEW_FIRST_PORT..NEW_FIRST_PORT + NEW_CONNS;
    let tracked_new = |node: &str| -> Vec<(u16, Option<IpAddr>)> {
        table_of(&lab, node)
            .into_iter()
            .filter(|(p, _)| new_ports.contains(p))
            .collect()
    };
    wait_or_report(
        &lab,
        Duration::from_secs(10),
        "lb2 holds the new connections lb tracks, on the same backends",
        || {
            let on_lb = tracked_new("lb");
            let on_lb2 = table_of(&lab, "lb2");
            !on_lb.is_empty() && on_lb.iter().all(|(p, b)| on_lb2.get(p) == Some(b))
        },
    );
    eprintln!(
        "after the attack lb tracks {} of the new connections, all synced to lb2",
        tracked_new("lb").len()
    );
    phase_all(&mut held, "after-attack");
    std::thread::sleep(AFTER_CHANGE);

    let last = final_failover(&mut lab, &mut held);
    assert!(lab.lbd_running_on("lb2"), "lb2's lbd exited");
    assert_none_broken(
        &lab,
        &held,
        &last,
        "bad sync input",
        "the attack and the failover",
        started,
    );
}

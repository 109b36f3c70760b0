//! Active-active scale-out (issue 14), end to end, as root, in network namespaces
//! (tests/src/ecmp.rs): a router spreads the VIP's flows over three LB nodes with ECMP,
//! each node's lbd announcing the VIP through a real BIRD over eBGP (BFD, short
//! timers), flow sync between the nodes, DSR to three backends running `lb-conns
//! serve`.
//!
//! With plain Linux multipath (hash-threshold), every join or leave of a node moves
//! flows between the nodes that stay too (ecmp-notes.md): what keeps them alive is the
//! identical Maglev tables and the synced connection entries. So in every case below
//! long-lived connections (the `lb-conns` helper, a line every 200 ms each, checking
//! that the same backend answers) are held through the change and must all survive,
//! and new flows from fresh client ports are opened all along and must all be answered.
//!
//! Cases, each in its own lab, one at a time (about two minutes in all):
//! - `ecmp_lab_plumbing`: no lbd; BIRD on the router and the nodes, routes files
//!   written by hand + `birdc configure`, as lbd does: 3 nexthops, a withdrawal leaves
//!   2, the router's 5-tuple hash uses all three nodes, a node cut off on the bridge is
//!   dropped (BFD), a killed speaker too;
//! - `spread`: 90 new flows reach every node (the router's choice per flow, and each
//!   node's `forwarded_tx` counter) and every backend;
//! - `node_dies` (bridge port down, lbd and BIRD killed), `node_drained` (`lbctl
//!   drain`: withdrawn at once, lbd exits when traffic stops, long before the drain
//!   timeout of 10 minutes; BIRD runs on, the VIP stays withdrawn): 0 of 60
//!   connections lost;
//! - `node_joins`: lb3 starts (BIRD, then lbd) after a backend was added on lb1 and lb2,
//!   with 60 connections from before the change and 30 from after it: lb3 announces
//!   only with their state, 0 lost;
//! - `backend_added_then_node_dies`, `backend_removed_then_node_dies`: the change by
//!   reload on every node, 30 more connections, then lb1 dies, within `settle_after`:
//!   0 lost (on the removal, connections on the removed backend are not asserted on);
//! - `one_node_loses_its_backends`: lb1's health checks (only they: a policy rule
//!   rejects its TCP to the backends' port) fail: lb1 withdraws, the connections
//!   through lb2 and lb3 are kept, new flows work; the checks pass again: lb1
//!   re-announces and no connection the router moves back to it breaks. (Those lb1
//!   carried while its checks failed one by one are reported, not asserted: lb1 re-
//!   balances the flows of each backend it sees down before its last one fails.)
//! - `speaker_goes_away`: lb1's BIRD socket vanishes (BIRD runs on: lbd reports it
//!   and keeps forwarding what the router still sends it), then BIRD dies (the router
//!   drops lb1, lbd runs on), then BIRD is back (lb1 announced again, lbd reports it):
//!   0 lost.
//!
//! `LB_ECMP_E2E_NO_SYNC=1` runs them without `[sync]`: then `node_joins` and
//! `backend_added_then_node_dies` lose connections (5 of 60 and 1 of 30 here).

use std::{
    collections::BTreeSet,
    fs,
    path::Path,
    sync::{Mutex, MutexGuard},
    time::{Duration, Instant},
};

use lb_api::{
    control::{Request, Response},
    view::BgpView,
};
use lb_tests::{
    conns::{tally, ConnState, Holder},
    ecmp::{addrs, failed_probes, services, EcmpLab, FlowProber, Held, NODES, VIP},
    lab::wait_until,
};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The helper that holds the connections and serves them on the backends.
const LB_CONNS: &str = env!("CARGO_BIN_EXE_lb-conns");

/// How long the router may take to follow an announcement or a withdrawal (BFD reacts
/// in 0.3 s, a closed session at once; generous for a loaded CI machine).
const ROUTE_WAIT: Duration = Duration::from_secs(15);

fn lb_conns() -> &'static Path {
    Path::new(LB_CONNS)
}

/// BIRD on the router and on `nodes`; waits until the router has a BGP session with
/// each of them.
fn start_birds(lab: &mut EcmpLab, nodes: &[&str]) {
    lab.start_bird("rtr");
    for node in nodes {
        lab.start_bird(node);
    }
    wait_until(
        Duration::from_secs(20),
        "the router's BGP sessions established",
        || lab.router_sessions() == nodes.len(),
    );
}

#[test]
fn ecmp_lab_plumbing() {
    let _s = serial();
    let started = Instant::now();
    let mut lab = EcmpLab::up("plumb");
    start_birds(&mut lab, &NODES);
    assert!(
        lab.router_nexthops().is_empty(),
        "nothing announced yet, but the router routes {VIP} via {:?}",
        lab.router_nexthops()
    );

    // Announce on every node by hand, as lbd does: rewrite the routes file, configure.
    for node in NODES {
        lab.write_routes(node, true);
        let out = lab.birdc(node, "configure").expect("birdc configure");
        assert!(
            out.contains("Reconfigured"),
            "{node}: configure said {out:?}"
        );
    }
    lab.wait_nexthops(&NODES, ROUTE_WAIT);
    wait_until(
        Duration::from_secs(10),
        "3 BFD sessions up on the router",
        || lab.router_bfd_up() == 3,
    );

    // The router's hash spreads flows over all three, by 5-tuple: 60 source ports, each
    // asked twice, land on every node and each on the same node both times.
    let choices: Vec<Option<String>> = (0..60).map(|i| lab.router_choice(30000 + i, 80)).collect();
    let again: Vec<Option<String>> = (0..60).map(|i| lab.router_choice(30000 + i, 80)).collect();
    assert_eq!(
        choices, again,
        "the router's choice of node is not a function of the 5-tuple"
    );
    let used: BTreeSet<String> = choices.iter().flatten().cloned().collect();
    assert_eq!(
        used,
        NODES.iter().map(|n| n.to_string()).collect(),
        "60 flows do not use every nexthop: {choices:?}"
    );

    // Withdraw on lb2: routes file without the route, configure.
    lab.write_routes("lb2", false);
    let out = lab.birdc("lb2", "configure").expect("birdc configure");
    assert!(out.contains("Reconfigured"), "lb2: configure said {out:?}");
    lab.wait_nexthops(&["lb1", "lb3"], ROUTE_WAIT);

    // Announce again, then cut lb3 off on the bridge (it cannot say goodbye): BFD.
    lab.write_routes("lb2", true);
    lab.birdc("lb2", "configure").expect("birdc configure");
    lab.wait_nexthops(&NODES, ROUTE_WAIT);
    let cut = Instant::now();
    lab.node_down("lb3");
    lab.wait_nexthops(&["lb1", "lb2"], ROUTE_WAIT);
    eprintln!(
        "lb3 cut off: dropped by the router after {:?}",
        cut.elapsed()
    );

    // A killed speaker (its TCP session closed by the kernel) is dropped too.
    lab.kill_bird("lb1");
    lab.wait_nexthops(&["lb2"], ROUTE_WAIT);
    eprintln!("ecmp_lab_plumbing took {:?}", started.elapsed());
}

// ---------------------------------------------------------------------------------
// With lbd.

/// Client ports: the long-lived connections, those opened after a change, bursts of
/// new flows, the background prober.
const HELD_PORT: u16 = 41000;
const HELD: u16 = 60;
const NEW_HELD_PORT: u16 = 42000;
const NEW_HELD: u16 = 30;
const BURST_PORT: u16 = 45000;
const PROBE_PORT: u16 = 50000;
/// `[bgp] drain_timeout` in the lab: long, so that a drain that ends (within
/// [`DRAIN_WAIT`]) ended because traffic stopped arriving.
const DRAIN_TIMEOUT_S: u64 = 600;
/// How long the drained lbd may take to exit (it exits 2 s after the last packet).
const DRAIN_WAIT: Duration = Duration::from_secs(60);

fn write_configs(lab: &EcmpLab, members: [bool; 3]) {
    for node in NODES {
        lab.write_lbd_config(
            node,
            "settle_after = \"10m\"",
            &format!("min_healthy = 1\ndrain_timeout = \"{DRAIN_TIMEOUT_S}s\""),
            &services(members),
        );
    }
}

/// A lab with the backends serving, every node configured for `members`, BIRD on the
/// router and on `running`, lbd on `running`; returns once each of them has the
/// backends up in its data plane and the router routes the VIP via exactly them.
fn lab_with(tag: &str, running: &[&str], members: [bool; 3]) -> EcmpLab {
    let mut lab = EcmpLab::up(tag);
    lab.start_servers(lb_conns());
    write_configs(&lab, members);
    start_birds(&mut lab, running);
    for node in running {
        lab.start_lbd(node);
    }
    let healthy = members.iter().filter(|m| **m).count();
    for node in running {
        lab.wait_healthy(node, healthy);
    }
    lab.wait_nexthops(running, Duration::from_secs(40));
    lab
}

fn bgp_view(lab: &EcmpLab, node: &str) -> Option<BgpView> {
    match lab.ask(node, Request::Bgp)? {
        Response::Bgp(v) => Some(v),
        _ => None,
    }
}

/// Whether node `node`'s lbd wants the VIP announced and the speaker holds it.
fn announced(v: &BgpView) -> bool {
    v.speaker_ok
        && v.vips
            .iter()
            .any(|x| x.vip.to_string() == VIP && x.wanted && x.announced)
}

/// (client port, the LB node the router sends that connection to).
type Routes = Vec<(u16, String)>;

/// The node the router sends each of `conns` to now.
fn nodes_of(lab: &EcmpLab, conns: &[ConnState]) -> Routes {
    conns
        .iter()
        .map(|c| {
            (
                c.port,
                lab.router_choice(c.port, 80).unwrap_or_else(|| "-".into()),
            )
        })
        .collect()
}

fn count_on(nodes: &[(u16, String)], node: &str) -> usize {
    nodes.iter().filter(|(_, n)| n == node).count()
}

/// Open `count` long-lived connections from `first_port`; all must open, on a backend
/// in `members`.
fn hold(
    lab: &EcmpLab,
    first_port: u16,
    count: u16,
    members: [bool; 3],
) -> (Holder, Vec<ConnState>) {
    let (held, opened) = Held::start(lab, lb_conns(), first_port, count).expect("lb-conns hold");
    let failed: Vec<_> = opened.iter().filter(|c| c.broken.is_some()).collect();
    assert!(
        failed.is_empty() && opened.len() == count as usize,
        "{} of {count} connections opened; failed: {failed:?}",
        opened.len() - failed.len()
    );
    for c in &opened {
        let i = c
            .backend
            .trim_start_matches('b')
            .parse::<usize>()
            .unwrap_or(0);
        assert!(
            (1..=3).contains(&i) && members[i - 1],
            "client port {} answered by {:?}, not one of the backends {members:?}",
            c.port,
            c.backend
        );
    }
    (held, opened)
}

/// Panic with every broken connection of `conns` (whose backend `counts` says to
/// count), and where the router sends it now.
fn assert_kept(lab: &EcmpLab, what: &str, conns: &[ConnState], counts: impl Fn(&str) -> bool) {
    let broken: Vec<String> = conns
        .iter()
        .filter(|c| counts(&c.backend))
        .filter_map(|c| {
            let (phase, reason) = c.broken.as_ref()?;
            Some(format!(
                "  client port {} on {}: broken in phase {phase} ({reason}); the router sends \
                 it to {} now",
                c.port,
                c.backend,
                lab.router_choice(c.port, 80).unwrap_or_else(|| "-".into())
            ))
        })
        .collect();
    eprintln!("{what}: {}", tally(conns));
    assert!(
        broken.is_empty(),
        "{what}: {} of {} connections broke ({}):\n{}",
        broken.len(),
        conns.len(),
        tally(conns),
        broken.join("\n")
    );
}

/// Panic if any of the prober's new flows failed; returns how many there were.
fn assert_probes(what: &str, prober: FlowProber) -> usize {
    let probes = prober.finish();
    let failed = failed_probes(&probes);
    assert!(
        failed.is_empty(),
        "{what}: {} of {} new flows failed:\n{}",
        failed.len(),
        probes.len(),
        failed.join("\n")
    );
    assert!(!probes.is_empty(), "{what}: no new flow was tried");
    eprintln!("{what}: {} new flows, all answered", probes.len());
    probes.len()
}

#[test]
fn spread() {
    let _s = serial();
    let started = Instant::now();
    let lab = lab_with("spread", &NODES, [true; 3]);
    for node in NODES {
        let v = bgp_view(&lab, node).expect("lbctl bgp answer");
        assert!(announced(&v), "{node}: the VIP is not announced: {v:?}");
    }
    let out = lab.lbctl("lb1", &["bgp"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains(VIP),
        "lbctl bgp: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let before: Vec<u64> = NODES
        .iter()
        .map(|n| lab.counter(n, "forwarded_tx").expect("forwarded_tx"))
        .collect();
    let probes = lab.new_flows(BURST_PORT, 90, Duration::from_secs(6));
    let failed = failed_probes(&probes);
    assert!(
        failed.is_empty(),
        "new flows failed:\n{}",
        failed.join("\n")
    );
    let backends: BTreeSet<&str> = probes
        .iter()
        .filter_map(|p| p.result.as_deref().ok())
        .collect();
    assert_eq!(
        backends,
        ["b1", "b2", "b3"].into_iter().collect(),
        "90 new flows do not reach every backend"
    );
    let routed: Vec<String> = probes
        .iter()
        .map(|p| lab.router_choice(p.port, 80).unwrap_or_default())
        .collect();
    for (i, node) in NODES.iter().enumerate() {
        let after = lab.counter(node, "forwarded_tx").expect("forwarded_tx");
        let flows = routed.iter().filter(|n| n == node).count();
        eprintln!(
            "{node}: {flows} of 90 new flows routed here, {} packets forwarded",
            after - before[i]
        );
        assert!(
            flows > 0,
            "the router sends none of 90 new flows to {node}: {routed:?}"
        );
        assert!(
            after > before[i],
            "{node} forwarded nothing of the {flows} new flows the router sent it"
        );
    }
    eprintln!("spread took {:?}", started.elapsed());
}

/// Held connections and new flows through `event`, which must leave the router with
/// nexthops `after`; all must survive. Returns the nodes of the connections before the
/// event.
fn through(
    lab: &mut EcmpLab,
    name: &str,
    event: impl FnOnce(&mut EcmpLab),
    after: &[&str],
) -> (Routes, Routes) {
    let (mut held, opened) = hold(lab, HELD_PORT, HELD, [true; 3]);
    let before = nodes_of(lab, &opened);
    eprintln!(
        "{HELD} connections: {}; via lb1/lb2/lb3: {}/{}/{}",
        tally(&opened),
        count_on(&before, "lb1"),
        count_on(&before, "lb2"),
        count_on(&before, "lb3")
    );
    let prober = FlowProber::start(lab, PROBE_PORT, 1000);
    std::thread::sleep(Duration::from_millis(500));
    held.phase(name).expect("lb-conns hold");
    event(lab);
    lab.wait_nexthops(after, Duration::from_secs(40));
    std::thread::sleep(Duration::from_secs(1));
    let now = held.check(name).expect("lb-conns hold");
    assert_kept(lab, &format!("after {name}"), &now, |_| true);
    held.phase("after").expect("lb-conns hold");
    std::thread::sleep(Duration::from_secs(1));
    let last = held.check("final").expect("lb-conns hold");
    assert_kept(lab, "at the end", &last, |_| true);
    assert_probes(name, prober);
    let moved = nodes_of(lab, &opened);
    let changed = before
        .iter()
        .zip(&moved)
        .filter(|(a, b)| a.1 != b.1)
        .count();
    eprintln!("{changed} of {HELD} connections changed node");
    (before, moved)
}

#[test]
fn node_dies() {
    let _s = serial();
    let started = Instant::now();
    let mut lab = lab_with("dies", &NODES, [true; 3]);
    let (before, _) = through(
        &mut lab,
        "node-down",
        |lab| lab.node_down("lb1"),
        &["lb2", "lb3"],
    );
    assert!(
        count_on(&before, "lb1") > 0,
        "no connection went through lb1, the node that died: the case tests nothing"
    );
    eprintln!("node_dies took {:?}", started.elapsed());
}

#[test]
fn node_drained() {
    let _s = serial();
    let started = Instant::now();
    let mut lab = lab_with("drain", &NODES, [true; 3]);
    let (before, _) = through(
        &mut lab,
        "drain",
        |lab| {
            let out = lab.lbctl("lb1", &["drain"]);
            assert!(
                out.status.success(),
                "lbctl drain: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        },
        &["lb2", "lb3"],
    );
    assert!(
        count_on(&before, "lb1") > 0,
        "no connection went through lb1, the drained node: the case tests nothing"
    );
    // lbd exits once traffic stopped arriving, well before the drain timeout; the VIP
    // stays withdrawn (the routes file says so, and BIRD still runs).
    let waited = Instant::now();
    let status = lab.wait_lbd_exit("lb1", DRAIN_WAIT);
    assert!(
        status.is_some_and(|s| s.success()),
        "lbd on lb1 after the drain: {status:?} (None: still running {DRAIN_WAIT:?} after \
         the withdrawal, with drain_timeout {DRAIN_TIMEOUT_S} s, though no flow arrives \
         any more)\n{}",
        lab.lbd_log("lb1")
    );
    eprintln!(
        "lbd on lb1 exited {:?} after the withdrawal and the checks",
        waited.elapsed()
    );
    assert!(lab.bird_running("lb1"), "lb1's BIRD is gone");
    assert_eq!(
        lab.router_nexthops(),
        addrs(&["lb2", "lb3"]),
        "after lbd on lb1 exited"
    );
    eprintln!("node_drained took {:?}", started.elapsed());
}

#[test]
fn node_joins() {
    // lb3 joins after a backend change on lb1 and lb2 (b3 added, reload), with
    // connections opened before and after it: lb3 must map them as they do (the same
    // tables, dirty slots included, and their tracked flows, from the sync) before it
    // announces, or the flows the router moves to it break.
    let _s = serial();
    let started = Instant::now();
    let mut lab = lab_with("join", &["lb1", "lb2"], [true, true, false]);
    let (mut old, opened) = hold(&lab, HELD_PORT, HELD, [true, true, false]);
    eprintln!("before the change: {}", tally(&opened));
    old.phase("change").expect("lb-conns hold");
    write_configs(&lab, [true; 3]);
    for node in ["lb1", "lb2"] {
        let answer = lab.ask(node, Request::Reload);
        assert!(
            matches!(answer, Some(Response::Done { .. })),
            "reload on {node}: {answer:?}"
        );
    }
    for node in ["lb1", "lb2"] {
        lab.wait_healthy(node, 3);
    }
    let (mut new, opened_new) = hold(&lab, NEW_HELD_PORT, NEW_HELD, [true; 3]);
    eprintln!("opened after the change: {}", tally(&opened_new));
    assert!(
        opened_new.iter().any(|c| c.backend == "b3"),
        "none of {NEW_HELD} new connections went to the added backend b3"
    );
    std::thread::sleep(Duration::from_secs(1));
    let prober = FlowProber::start(&lab, PROBE_PORT, 1000);
    for h in [&mut old, &mut new] {
        h.phase("join").expect("lb-conns hold");
    }
    lab.start_bird("lb3");
    lab.start_lbd("lb3");
    lab.wait_nexthops(&NODES, Duration::from_secs(40));
    std::thread::sleep(Duration::from_secs(1));
    let last_old = old.check("final").expect("lb-conns hold");
    let last_new = new.check("final").expect("lb-conns hold");
    assert_kept(&lab, "opened before the change", &last_old, |_| true);
    assert_kept(&lab, "opened after the change", &last_new, |_| true);
    assert_probes("join", prober);
    let moved =
        count_on(&nodes_of(&lab, &opened), "lb3") + count_on(&nodes_of(&lab, &opened_new), "lb3");
    assert!(
        moved > 0,
        "no connection moved to lb3, the node that joined: the case tests nothing"
    );
    eprintln!("{moved} connections moved to lb3");
    let v = bgp_view(&lab, "lb3").expect("lbctl bgp on lb3");
    assert!(announced(&v), "lb3: {v:?}");
    eprintln!("node_joins took {:?}", started.elapsed());
}

/// A backend change on every node (config rewritten, reload), 30 more connections
/// opened after it, then lb1 dies: within `settle_after`, so the moved slots are dirty
/// and their flows are known by the synced entries and the identical tables.
fn change_then_node_dies(tag: &str, before: [bool; 3], after: [bool; 3]) {
    let _s = serial();
    let started = Instant::now();
    let mut lab = lab_with(tag, &NODES, before);
    let (mut old, opened) = hold(&lab, HELD_PORT, HELD, before);
    let nodes_old = nodes_of(&lab, &opened);
    eprintln!("before the change: {}", tally(&opened));
    let prober = FlowProber::start(&lab, PROBE_PORT, 1000);
    old.phase("change").expect("lb-conns hold");
    write_configs(&lab, after);
    for node in NODES {
        let answer = lab.ask(node, Request::Reload);
        assert!(
            matches!(answer, Some(Response::Done { .. })),
            "reload on {node}: {answer:?}"
        );
    }
    let healthy = after.iter().filter(|m| **m).count();
    for node in NODES {
        lab.wait_healthy(node, healthy);
    }
    let (mut new, opened_new) = hold(&lab, NEW_HELD_PORT, NEW_HELD, after);
    let nodes_new = nodes_of(&lab, &opened_new);
    eprintln!("opened after the change: {}", tally(&opened_new));
    if let Some(added) = (0..3).find(|&i| after[i] && !before[i]) {
        let name = format!("b{}", added + 1);
        assert!(
            opened_new.iter().any(|c| c.backend == name),
            "none of {NEW_HELD} new connections went to the added backend {name}: the case \
             tests nothing"
        );
    }
    new.phase("change").expect("lb-conns hold");
    std::thread::sleep(Duration::from_secs(2));
    for h in [&mut old, &mut new] {
        h.phase("node-down").expect("lb-conns hold");
    }
    lab.node_down("lb1");
    lab.wait_nexthops(&["lb2", "lb3"], ROUTE_WAIT);
    std::thread::sleep(Duration::from_secs(1));
    let kept_backend = |b: &str| (0..3).any(|i| after[i] && b == format!("b{}", i + 1));
    let last_old = old.check("final").expect("lb-conns hold");
    let last_new = new.check("final").expect("lb-conns hold");
    assert_kept(&lab, "opened before the change", &last_old, kept_backend);
    assert_kept(&lab, "opened after the change", &last_new, kept_backend);
    assert_probes("change, then lb1 down", prober);
    assert!(
        count_on(&nodes_old, "lb1") + count_on(&nodes_new, "lb1") > 0,
        "no connection went through lb1, the node that died: the case tests nothing"
    );
    eprintln!("{tag} took {:?}", started.elapsed());
}

#[test]
fn backend_added_then_node_dies() {
    change_then_node_dies("added", [true, true, false], [true; 3]);
}

#[test]
fn backend_removed_then_node_dies() {
    change_then_node_dies("removed", [true; 3], [true, true, false]);
}

#[test]
fn one_node_loses_its_backends() {
    let _s = serial();
    let started = Instant::now();
    let mut lab = lab_with("health", &NODES, [true; 3]);
    let (mut held, opened) = hold(&lab, HELD_PORT, HELD, [true; 3]);
    let before = nodes_of(&lab, &opened);
    assert!(
        count_on(&before, "lb1") > 0,
        "no connection goes through lb1"
    );
    let prober = FlowProber::start(&lab, PROBE_PORT, 1000);
    held.phase("checks-fail").expect("lb-conns hold");
    lab.block_health("lb1");
    lab.wait_nexthops(&["lb2", "lb3"], ROUTE_WAIT);
    std::thread::sleep(Duration::from_secs(1));
    let now = held.check("checks-fail").expect("lb-conns hold");
    let via = |port: u16| {
        before
            .iter()
            .find(|(p, _)| *p == port)
            .map(|(_, n)| n.as_str())
    };
    let (through_lb1, others): (Vec<ConnState>, Vec<ConnState>) =
        now.into_iter().partition(|c| via(c.port) == Some("lb1"));
    // The connections the router sent through lb2 and lb3 are not lb1's business.
    assert_kept(
        &lab,
        "through lb2 and lb3 while lb1's checks fail",
        &others,
        |_| true,
    );
    // Those through lb1: lb1 sees its backends fail one after the other (within a
    // check interval) and re-balances the flows of each that it sees down, as a
    // single LB would, before its last one fails and it withdraws; the router then
    // moves them to lb2 and lb3. Reported, not asserted: lb1 cannot tell its own
    // view's failure from its backends'.
    let lost = through_lb1.iter().filter(|c| c.broken.is_some()).count();
    eprintln!(
        "through lb1 while its checks failed: {lost} of {} broke ({})",
        through_lb1.len(),
        tally(&through_lb1)
    );
    let v = bgp_view(&lab, "lb1").expect("lbctl bgp on lb1");
    assert!(
        v.vips
            .iter()
            .any(|x| x.vip.to_string() == VIP && !x.wanted && !x.announced),
        "lb1 withdrew, but says {v:?}"
    );
    for node in ["lb2", "lb3"] {
        let v = bgp_view(&lab, node).expect("lbctl bgp");
        assert!(announced(&v), "{node}: {v:?}");
    }
    assert_probes("lb1's checks fail", prober);

    // Its checks pass again: it announces again, and flows move back to it.
    let (mut held2, opened2) = hold(&lab, NEW_HELD_PORT, NEW_HELD, [true; 3]);
    let prober = FlowProber::start(&lab, PROBE_PORT + 2000, 1000);
    held.phase("recovery").expect("lb-conns hold");
    held2.phase("recovery").expect("lb-conns hold");
    lab.unblock_health("lb1");
    lab.wait_nexthops(&NODES, Duration::from_secs(20));
    std::thread::sleep(Duration::from_secs(1));
    let last = held.check("final").expect("lb-conns hold");
    let last2 = held2.check("final").expect("lb-conns hold");
    let recovered: Vec<ConnState> = last
        .into_iter()
        .filter(|c| {
            c.broken
                .as_ref()
                .is_none_or(|(phase, _)| phase != "checks-fail")
        })
        .collect();
    assert_kept(
        &lab,
        "through the recovery (opened before)",
        &recovered,
        |_| true,
    );
    assert_kept(
        &lab,
        "through the recovery (opened while lb1 was out)",
        &last2,
        |_| true,
    );
    assert_probes("recovery", prober);
    let now = nodes_of(&lab, &opened2);
    assert!(count_on(&now, "lb1") > 0, "no connection moved back to lb1");
    eprintln!("one_node_loses_its_backends took {:?}", started.elapsed());
}

#[test]
fn speaker_goes_away() {
    let _s = serial();
    let started = Instant::now();
    let mut lab = lab_with("speaker", &NODES, [true; 3]);
    let (mut held, opened) = hold(&lab, HELD_PORT, HELD, [true; 3]);
    let nodes = nodes_of(&lab, &opened);
    assert!(
        count_on(&nodes, "lb1") > 0,
        "no connection goes through lb1"
    );
    let prober = FlowProber::start(&lab, PROBE_PORT, 1000);
    let v0 = bgp_view(&lab, "lb1").expect("lbctl bgp on lb1");
    assert!(announced(&v0), "lb1 before: {v0:?}");

    // 1. BIRD's socket vanishes (BIRD runs on, the router keeps lb1): lbd notices and
    // says so, and keeps forwarding the flows the router still sends it.
    held.phase("socket-gone").expect("lb-conns hold");
    fs::remove_file(lab.bird_socket("lb1")).expect("remove BIRD's socket");
    wait_until(
        Duration::from_secs(15),
        "lb1's lbd reporting the speaker unreachable",
        || bgp_view(&lab, "lb1").is_some_and(|v| !v.speaker_ok && v.last_error.is_some()),
    );
    let out = lab.lbctl("lb1", &["bgp"]);
    eprintln!(
        "lbctl bgp on lb1 without a socket:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(
        lab.router_nexthops(),
        addrs(&NODES),
        "the router still has every node"
    );
    let forwarded = lab.counter("lb1", "forwarded_tx").expect("forwarded_tx");
    std::thread::sleep(Duration::from_secs(1));
    let now = held.check("socket-gone").expect("lb-conns hold");
    assert_kept(&lab, "BIRD's socket gone on lb1", &now, |_| true);
    let forwarded2 = lab.counter("lb1", "forwarded_tx").expect("forwarded_tx");
    assert!(
        forwarded2 > forwarded,
        "lb1 forwarded nothing for its connections while its speaker's socket was gone"
    );

    // 2. BIRD dies: the router drops lb1 (the session closes); lbd runs on.
    held.phase("speaker-dead").expect("lb-conns hold");
    lab.kill_bird("lb1");
    lab.wait_nexthops(&["lb2", "lb3"], ROUTE_WAIT);
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        lab.lbd_running("lb1"),
        "lbd on lb1 exited:\n{}",
        lab.lbd_log("lb1")
    );
    let v = bgp_view(&lab, "lb1").expect("lbctl bgp on lb1");
    assert!(
        !v.speaker_ok && v.last_error.is_some(),
        "lb1 with its speaker dead: {v:?}"
    );
    let now = held.check("speaker-dead").expect("lb-conns hold");
    assert_kept(&lab, "lb1's BIRD dead", &now, |_| true);

    // 3. BIRD is back: lb1 announces again, lbd says so, flows move back. The routes
    // file is emptied first (as the systemd drop-in does at BIRD's start), so the
    // route comes back only if lbd tells the returning BIRD again.
    held.phase("speaker-back").expect("lb-conns hold");
    fs::write(lab.routes_file("lb1"), "").expect("empty lb1's routes file");
    lab.start_bird("lb1");
    lab.wait_nexthops(&NODES, Duration::from_secs(20));
    wait_until(
        Duration::from_secs(15),
        "lb1's lbd reporting the VIP announced again",
        || bgp_view(&lab, "lb1").is_some_and(|v| announced(&v) && v.last_error.is_none()),
    );
    std::thread::sleep(Duration::from_secs(1));
    let last = held.check("final").expect("lb-conns hold");
    assert_kept(&lab, "lb1's BIRD back", &last, |_| true);
    assert_probes("speaker goes away", prober);
    eprintln!("speaker_goes_away took {:?}", started.elapsed());
}

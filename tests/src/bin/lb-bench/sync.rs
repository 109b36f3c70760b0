//! Flow sync between two LB nodes (the issue "No established flow lost"), measured in
//! the e2e lab (tests/src/lab.rs: a client, LB nodes "lb" and "lb2", backends b1..b3 on
//! one bridge) with the release lbd on both LB nodes, VRRP v3 at 100 ms (lb 150, lb2
//! 100, multicast), one TCP service VIP:8080 without health checks (every configured
//! backend is up, so only the bench's changes move slots; the check interval only sets
//! lbd's start-up grace, 2 s), and `[sync]` (key only: the multicast group on the VRRP
//! interface, default rate and queue) unless said otherwise. lb starts first and is
//! MASTER before lb2 starts (started together, each asks the other for its state before
//! the other listens and waits seconds for it), and every change comes once both are
//! past their start-up grace (lbd logs "startup done"), as on a pair that has been
//! running. Long-lived connections are held by the `lb-conns` helper
//! (tests/src/bin/lb-conns.rs) as in tests/tests/sync_e2e.rs: every backend answers each
//! line with its name, so a connection notices at once if it is reset, closed, or
//! answered by another backend.
//!
//! 1. **Flows kept on a failover after a change**: 60 connections through the master,
//!    b3 added on both nodes by reload, every connection exchanges a line after the
//!    change, 30 more open through the master (those on b3 are new flows on moved slots,
//!    known to the master's connection table alone), 1 s of data, then the master dies
//!    (lbd killed with SIGKILL, its link set down, as sync_e2e does). Kept = still
//!    exchanging lines with their own backend 1 s after lb2 took over. With `[sync]`,
//!    without it (same lab and scenario, configs without the section), and a failover
//!    alone (no change before it, `[sync]` on).
//! 2. **Sync cost**: a pair up, b3 added (a third of the slots dirty). SYNs from spoofed
//!    sources, every one on a moved slot (picked with the master's own table and hash
//!    seed, read from its pinned maps), so every SYN creates exactly one
//!    connection-table entry that is synced, are sent at a known rate out of the
//!    client's eth0 to the master's MAC (AF_PACKET; DSR: the backends' answers to the
//!    spoofed sources go nowhere). Per window: the master's sync datagrams captured with
//!    tcpdump on its eth0 (every one of them, parsed, so bytes and entries are exact),
//!    `Request::Sync` on both nodes (entries sent, received, dropped), the
//!    `sync_events_lost` counter, and both lbd's CPU time (the sum of their threads'
//!    `/proc/<pid>/task/*/schedstat`, ns) minus their idle CPU over an idle window
//!    measured first. And the latency from one SYN on a moved slot to its entry in lb2's
//!    connection table (its pinned map, read by key).
//! 3. **Flood**: a pair with a small `conn_table_size` (the flood guard then allows
//!    conn_table_size/16 new entries per CPU per second), 30 connections from before the
//!    change and 30 opened after it (those on b3 are kept there by their entries
//!    alone), then spoofed flows on moved slots (two ACKs per flow; a SYN then an ACK)
//!    at a few rates. Lost = connections that broke during that flood;
//!    `conntrack_flood_refused` from `lbctl --json status`; then the master dies and the
//!    connections kept through the floods and the failover are counted, with how many
//!    of the real connections' entries lb2 still held (its pinned map, by key).

use std::{
    collections::HashMap,
    fs,
    io::{BufRead, BufReader, Read},
    net::{Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use anyhow::{anyhow, bail, ensure, Context, Result};
use lb_api::{
    control::{Request, Response},
    view::{SyncView, VrrpView},
};
use lb_common::{
    hash::reduce,
    maps::{proto, ConnKey, ServiceKey},
    select::slot_hash,
};
use lb_dataplane::Dataplane;
use lb_tests::{
    conns::{kept, ConnState, Holder},
    flood::{self, RawSocket, TCP_ACK, TCP_SYN},
    lab::{binary, Lab, BACKENDS, CLIENT, LB, VIP},
    netns::sh,
};

use crate::{Args, Figure};

/// The service port (the backends' `lb-conns serve` listens on it: DR keeps ports).
const PORT: u16 = 8080;
/// The sync key both nodes share.
const SYNC_KEY: &str = "0123456789abcdef0123456789abcdef";
/// The sync's UDP port (lbd's default).
const SYNC_PORT: u16 = 8848;
/// Backends before and after the change: b3 is added.
const BEFORE: [bool; 3] = [true, true, false];
const AFTER: [bool; 3] = [true, true, true];
/// Part 1: connections through the master before the change (the 60) and
/// after it.
const OLD_CONNS: u16 = 60;
const NEW_CONNS: u16 = 30;
/// Part 3: connections before and after the change.
const FLOOD_OLD: u16 = 30;
const FLOOD_NEW: u16 = 30;
/// The longest any paced send may take, whatever its size.
const SEND_MAX: Duration = Duration::from_secs(20);

/// How much of everything, full or quick.
struct Plan {
    /// Failovers per case (part 1).
    failover_runs: usize,
    /// Data exchanged through the master after the change, before it dies; and after
    /// the takeover, before the last check.
    after_change: Duration,
    after_failover: Duration,
    /// Latency samples (part 2).
    latency_samples: usize,
    /// The idle window the CPU baseline is measured over.
    idle: Duration,
    /// SYNs per second (every one a synced entry) and how long each window lasts.
    syn_rates: &'static [u64],
    window: Duration,
    /// Windows per rate.
    cost_repeats: usize,
    /// Connection-table sizes (part 3).
    table_sizes: &'static [u32],
    /// Spoofed frames per second per flood, and how long each flood lasts.
    flood_rates: &'static [u64],
    flood_for: Duration,
}

impl Plan {
    fn of(args: &Args) -> Plan {
        if args.quick {
            Plan {
                failover_runs: 1,
                after_change: Duration::from_secs(1),
                after_failover: Duration::from_millis(500),
                latency_samples: 10,
                idle: Duration::from_millis(500),
                syn_rates: &[20_000],
                window: Duration::from_secs(1),
                cost_repeats: 1,
                table_sizes: &[1024],
                flood_rates: &[40_000],
                flood_for: Duration::from_secs(1),
            }
        } else {
            Plan {
                failover_runs: 3,
                after_change: Duration::from_secs(1),
                after_failover: Duration::from_secs(1),
                latency_samples: 20,
                idle: Duration::from_secs(2),
                syn_rates: &[10_000, 30_000],
                window: Duration::from_secs(3),
                cost_repeats: 3,
                table_sizes: &[1024, 4096],
                flood_rates: &[10_000, 50_000],
                flood_for: Duration::from_secs(3),
            }
        }
    }
}

/// The `sync` section.
pub fn flow_sync(args: &Args, figures: &mut Vec<Figure>) -> Result<()> {
    let plan = Plan::of(args);
    let lb_conns = lb_conns()?;
    binary("lbd"); // built before any clock starts
    let started = Instant::now();
    failovers(&plan, &lb_conns, figures)?;
    eprintln!("sync: failovers done after {:.1?}", started.elapsed());
    sync_cost(&plan, figures)?;
    eprintln!("sync: cost done after {:.1?}", started.elapsed());
    floods(&plan, &lb_conns, figures)?;
    eprintln!("sync: section done in {:.1?}", started.elapsed());
    Ok(())
}

/// The one-line summary for the report's headlines, if part 1 ran.
pub fn headlines(figures: &[Figure]) -> Vec<String> {
    let get = |name: &str| figures.iter().find(|f| f.name == name).map(|f| f.median);
    match (
        get(KEPT_SYNC),
        get(KEPT_NO_SYNC),
        get(NEW_KEPT_SYNC),
        get(NEW_KEPT_NO_SYNC),
        get(KEPT_ALONE),
    ) {
        (Some(with), Some(without), Some(new_with), Some(new_without), Some(alone)) => {
            vec![format!(
                "flows kept when the master dies after a backend was added: with [sync] \
                 {with:.0}% of those from before the change and {new_with:.0}% of those opened \
                 after it; without [sync] {without:.0}% and {new_without:.0}% (a failover \
                 alone: {alone:.0}%)"
            )]
        }
        _ => Vec::new(),
    }
}

// ---------------------------------------------------------------------------------
// The lab

/// The `lb-conns` helper, built with this bench's profile (release); the `ecmp`
/// section's too.
pub(crate) fn lb_conns() -> Result<PathBuf> {
    let workspace = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    let mut cargo = Command::new(env!("CARGO"));
    cargo.args(["build", "-q", "-p", "lb-tests", "--bin", "lb-conns"]);
    if !cfg!(debug_assertions) {
        cargo.arg("--release");
    }
    let built = cargo.current_dir(&workspace).status();
    ensure!(
        built.as_ref().is_ok_and(|s| s.success()),
        "building lb-conns failed: {built:?}"
    );
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"));
    let path = target
        .join(if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        })
        .join("lb-conns");
    ensure!(path.is_file(), "no lb-conns at {}", path.display());
    Ok(path)
}

/// Node `node`'s config after `[global]` and `[[interface]]`: `[sync]` if `sync`, the
/// VRRP instance (v3, 100 ms, multicast; lb 150, lb2 100) and the service VIP:8080/tcp
/// over the backends in `members`, without health checks.
fn node_config(node: &str, sync: bool, members: [bool; 3]) -> String {
    let mut s = String::new();
    if sync {
        s.push_str(&format!("[sync]\nkey = \"{SYNC_KEY}\"\n\n"));
    }
    let priority = if node == "lb" { 150 } else { 100 };
    s.push_str(&format!(
        "[[vrrp]]\nname = \"VI_1\"\ninterface = \"eth0\"\nvirtual_router_id = 51\n\
         priority = {priority}\nversion = 3\nadvert_interval = \"100ms\"\n\
         virtual_addresses = [\"{VIP}/24\"]\n\n\
         [[service]]\nname = \"conns\"\nvip = \"{VIP}\"\nport = {PORT}\n\n\
         [service.health]\nkind = \"none\"\ninterval = \"300ms\"\ntimeout = \"250ms\"\n\n"
    ));
    for (i, on) in members.iter().enumerate() {
        if *on {
            s.push_str(&format!(
                "[[service.backend]]\naddress = \"{}\"\nname = \"b{}\"\nweight = 1\n\n",
                BACKENDS[i],
                i + 1
            ));
        }
    }
    s
}

/// Write node `node`'s config (`global`: extra `[global]` lines) and have `lbd
/// --check-config` accept it.
fn write_config(lab: &Lab, node: &str, global: &str, sync: bool, members: [bool; 3]) -> Result<()> {
    lab.write_config_with_global(node, global, &node_config(node, sync, members));
    let path = lab.config_path_for(node);
    let out = lab
        .command_in(node, &binary("lbd"))
        .arg("--check-config")
        .arg(&path)
        .output()
        .context("lbd --check-config")?;
    ensure!(
        out.status.success(),
        "lbd rejects {node}'s config:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

fn vrrp_view(lab: &Lab, node: &str) -> Option<VrrpView> {
    match lab.ask_on(node, Request::Vrrp)? {
        Response::Vrrp { instances } => instances.into_iter().next(),
        _ => None,
    }
}

fn vip_on(lab: &Lab, node: &str) -> bool {
    sh(&format!("ip -n {} addr show dev eth0", lab.ns(node))).contains(&format!("{VIP}/24"))
}

/// Poll `f` every 20 ms until it holds, at most `timeout`.
fn wait(timeout: Duration, what: &str, mut f: impl FnMut() -> bool) -> Result<()> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if f() {
            return Ok(());
        }
        thread::sleep(Duration::from_millis(20));
    }
    bail!("timed out after {timeout:?} waiting for {what}")
}

/// Wait until node `node`'s data plane has the service with exactly the backends in
/// `members` up and holding slots.
fn wait_table(lab: &Lab, node: &str, members: [bool; 3]) -> Result<()> {
    wait(
        Duration::from_secs(20),
        &format!("{node}'s table with backends {members:?}"),
        || {
            let Some(Response::List { services }) = lab.ask_on(node, Request::List) else {
                return false;
            };
            let Some(s) = services.iter().find(|s| s.name.as_deref() == Some("conns")) else {
                return false;
            };
            (0..3).all(|i| {
                let b = s
                    .backends
                    .iter()
                    .find(|b| b.address.to_string() == BACKENDS[i]);
                match (members[i], b) {
                    (true, Some(b)) => b.state == "up" && b.slots > 0,
                    (true, None) => false,
                    (false, b) => b.is_none_or(|b| b.slots == 0),
                }
            })
        },
    )
}

/// A lab with two LB nodes running lbd (`global`: extra `[global]` lines; `[sync]` or
/// not) over the backends in `BEFORE`; `lb-conns serve` on the backends if given. Returns
/// once lb is MASTER (priority 150) holding the VIP, lb2 BACKUP, both tables installed.
fn pair(tag: &str, global: &str, sync: bool, lb_conns: Option<&Path>) -> Result<Lab> {
    let mut lab = Lab::up_with(tag, 2);
    if let Some(lb_conns) = lb_conns {
        lab.start_conn_servers(lb_conns, PORT);
    }
    for node in ["lb", "lb2"] {
        write_config(&lab, node, global, sync, BEFORE)?;
    }
    // lb first, until it is MASTER: started together, each asks the other for its
    // state before the other listens, and a node waits for its peers' state (or for
    // them to be dead) before it takes part in VRRP.
    let settled = |lab: &Lab, node: &str, state: &str, priority: u8| {
        vrrp_view(lab, node).is_some_and(|v| v.state == state && v.priority == priority)
    };
    lab.start_lbd_on("lb");
    wait(Duration::from_secs(20), "lb MASTER", || {
        settled(&lab, "lb", "MASTER", 150)
    })?;
    lab.start_lbd_on("lb2");
    wait(Duration::from_secs(20), "lb MASTER and lb2 BACKUP", || {
        settled(&lab, "lb", "MASTER", 150) && settled(&lab, "lb2", "BACKUP", 100)
    })?;
    wait_table(&lab, "lb", BEFORE)?;
    wait_table(&lab, "lb2", BEFORE)?;
    wait(Duration::from_secs(5), "the VIP on lb", || {
        vip_on(&lab, "lb")
    })?;
    // Past the start-up grace on both (a change then keeps moved flows on every node,
    // as on a pair that has been running: lbd logs it), runs 1 and 2 of this lab.
    wait(
        Duration::from_secs(10),
        "both lbd past their start-up",
        || (1..=2).all(|run| lab.lbd_log(run).contains("startup done")),
    )?;
    Ok(lab)
}

/// Add b3 on both nodes (config written, reload) and wait until both tables have it.
fn add_b3(lab: &Lab, global: &str, sync: bool) -> Result<()> {
    for node in ["lb", "lb2"] {
        write_config(lab, node, global, sync, AFTER)?;
    }
    for node in ["lb", "lb2"] {
        let answer = lab.ask_on(node, Request::Reload);
        ensure!(
            matches!(answer, Some(Response::Done { .. })),
            "reload on {node}: {answer:?}"
        );
    }
    wait_table(lab, "lb", AFTER)?;
    wait_table(lab, "lb2", AFTER)
}

/// The master dies (lbd killed with SIGKILL, its link down, as sync_e2e does); returns
/// once lb2 is MASTER holding the VIP.
fn kill_master(lab: &mut Lab) -> Result<()> {
    ensure!(
        vrrp_view(lab, "lb").is_some_and(|v| v.state == "MASTER") && vip_on(lab, "lb"),
        "lb is no longer the master before it dies: lb {:?}, lb2 {:?}",
        vrrp_view(lab, "lb"),
        vrrp_view(lab, "lb2")
    );
    lab.kill_lbd_on("lb");
    sh(&format!("ip -n {} link set eth0 down", lab.ns("lb")));
    wait(Duration::from_secs(5), "lb2 MASTER holding the VIP", || {
        vrrp_view(lab, "lb2").is_some_and(|v| v.state == "MASTER") && vip_on(lab, "lb2")
    })
}

/// Which backend ("b1".."b3") node `node` sends the flow from CLIENT:`port` to now
/// (`syn`: as a new connection, i.e. the slot's current backend).
fn backend_for(lab: &Lab, node: &str, port: u16, syn: bool) -> Option<String> {
    let request = Request::Explain {
        src: SocketAddr::new(CLIENT.parse().ok()?, port),
        dst: SocketAddr::new(VIP.parse().ok()?, PORT),
        protocol: "tcp".into(),
        syn,
    };
    match lab.ask_on(node, request)? {
        Response::Explain(view) => {
            let b = view.backend?.to_string();
            BACKENDS
                .iter()
                .position(|a| *a == b)
                .map(|i| format!("b{}", i + 1))
        }
        _ => None,
    }
}

/// The pid of the lbd running in LB node `node`'s namespace.
fn lbd_pid(lab: &Lab, node: &str) -> Result<u32> {
    sh(&format!("ip netns pids {}", lab.ns(node)))
        .split_whitespace()
        .filter_map(|p| p.parse::<u32>().ok())
        .find(|pid| {
            fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "lbd")
        })
        .with_context(|| format!("no lbd in {}", lab.ns(node)))
}

// ---------------------------------------------------------------------------------
// ---------------------------------------------------------------------------------
// 1. Flows kept on a failover after a change

const KEPT_SYNC: &str = "flows kept when the master dies after a backend was added, with [sync]";
const KEPT_NO_SYNC: &str =
    "flows kept when the master dies after a backend was added, without [sync]";
const KEPT_ALONE: &str = "flows kept when the master dies, no change before it, with [sync]";
const NEW_KEPT_SYNC: &str =
    "flows opened after a backend was added kept when the master dies, with [sync]";
const NEW_KEPT_NO_SYNC: &str =
    "flows opened after a backend was added kept when the master dies, without [sync]";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Case {
    AddedWithSync,
    AddedWithoutSync,
    Alone,
}

/// What one failover kept.
struct Kept {
    /// Of the 60 opened before the change: kept, opened, on slots the change moved.
    old_kept: usize,
    old: usize,
    old_moved: usize,
    old_moved_kept: usize,
    /// Of the 30 opened after it: kept, opened, on b3 (moved slots).
    new_kept: usize,
    new: usize,
    new_on_b3: usize,
}

fn failovers(plan: &Plan, lb_conns: &Path, figures: &mut Vec<Figure>) -> Result<()> {
    let pct = |a: usize, b: usize| {
        if b == 0 {
            0.0
        } else {
            100.0 * a as f64 / b as f64
        }
    };
    for case in [Case::AddedWithSync, Case::AddedWithoutSync, Case::Alone] {
        let mut runs = Vec::new();
        for _ in 0..plan.failover_runs {
            let t = Instant::now();
            let k = failover_run(plan, lb_conns, case).with_context(|| format!("{case:?}"))?;
            eprintln!(
                "sync: {case:?}: kept {}/{} ({}/{} on moved slots), opened after the change \
                 {}/{} ({} on b3), in {:.1?}",
                k.old_kept,
                k.old,
                k.old_moved_kept,
                k.old_moved,
                k.new_kept,
                k.new,
                k.new_on_b3,
                t.elapsed()
            );
            runs.push(k);
        }
        let per_run =
            |f: &dyn Fn(&Kept) -> String| runs.iter().map(f).collect::<Vec<_>>().join(", ");
        let scenario = format!(
            "{OLD_CONNS} connections through the master (lb-conns, a line every 200 ms), b3 \
             added on both nodes by reload, a line exchanged on each, {NEW_CONNS} more opened \
             through the master, {:.0} s of data, master killed (SIGKILL, link down), lb2 takes \
             over (VRRP v3, 100 ms); kept = still answered by their own backend {:.1} s later",
            plan.after_change.as_secs_f64(),
            plan.after_failover.as_secs_f64()
        );
        let (name, new_name, why) = match case {
            Case::Alone => {
                figures.push(Figure::new(
                    KEPT_ALONE.into(),
                    "% kept",
                    runs.iter().map(|k| pct(k.old_kept, k.old)).collect(),
                    format!(
                        "the baseline: {OLD_CONNS} connections through the master, {:.0} s of \
                         data, master killed (SIGKILL, link down), lb2 takes over (VRRP v3, \
                         100 ms), no change before; kept per run: {}",
                        plan.after_change.as_secs_f64(),
                        per_run(&|k| format!("{}/{}", k.old_kept, k.old))
                    ),
                ));
                continue;
            }
            Case::AddedWithSync => (KEPT_SYNC, NEW_KEPT_SYNC, "the master synced its entries"),
            Case::AddedWithoutSync => (
                KEPT_NO_SYNC,
                NEW_KEPT_NO_SYNC,
                "same lab and scenario, configs without [sync]: lb2's own reload keeps the \
                 moved slots (both nodes past start-up), so a flow it has no entry for goes \
                 to the slot's previous backend: right for flows from before the change, a \
                 reset for new ones on b3 (a backup still in its start-up grace at the change \
                 builds a clean table, and then the older flows on moved slots break too)",
            ),
        };
        figures.push(Figure::new(
            name.into(),
            "% kept",
            runs.iter().map(|k| pct(k.old_kept, k.old)).collect(),
            format!(
                "the {OLD_CONNS} opened before the change; {scenario}; {why}; kept per run (on \
                 slots the change moved): {}",
                per_run(&|k| format!(
                    "{}/{} ({}/{})",
                    k.old_kept, k.old, k.old_moved_kept, k.old_moved
                ))
            ),
        ));
        figures.push(Figure::new(
            new_name.into(),
            "% kept",
            runs.iter().map(|k| pct(k.new_kept, k.new)).collect(),
            format!(
                "the {NEW_CONNS} opened through the master after the change; those on b3 are \
                 on moved slots, known to the master's connection table alone; same failovers \
                 as the row above; kept per run: {}",
                per_run(&|k| format!("{}/{} ({} on b3)", k.new_kept, k.new, k.new_on_b3))
            ),
        ));
    }
    Ok(())
}

fn failover_run(plan: &Plan, lb_conns: &Path, case: Case) -> Result<Kept> {
    const OLD_FIRST: u16 = 41000;
    const NEW_FIRST: u16 = 42000;
    let sync = case != Case::AddedWithoutSync;
    let mut lab = pair("sy", "", sync, Some(lb_conns))?;
    let (mut old, opened) = Holder::start(&lab, lb_conns, PORT, OLD_FIRST, OLD_CONNS)?;
    ensure!(
        opened.len() == OLD_CONNS as usize && kept(&opened) == opened.len(),
        "connections before the change did not all open: {opened:?}"
    );
    let mut new = None;
    let mut moved = Vec::new();
    let mut new_on_b3 = 0;
    if case == Case::Alone {
        old.check("before")?;
    } else {
        old.phase("change")?;
        add_b3(&lab, "", sync)?;
        old.check("after-change")?;
        moved = opened
            .iter()
            .filter(|c| backend_for(&lab, "lb", c.port, true).is_some_and(|b| b != c.backend))
            .map(|c| c.port)
            .collect();
        let (mut h, opened_new) = Holder::start(&lab, lb_conns, PORT, NEW_FIRST, NEW_CONNS)?;
        new_on_b3 = opened_new.iter().filter(|c| c.backend == "b3").count();
        h.phase("after-change")?;
        new = Some(h);
    }
    thread::sleep(plan.after_change);
    old.phase("failover")?;
    if let Some(h) = &mut new {
        h.phase("failover")?;
    }
    kill_master(&mut lab)?;
    old.check("after-failover")?;
    if let Some(h) = &mut new {
        h.check("after-failover")?;
    }
    thread::sleep(plan.after_failover);
    let old_last = old.check("final")?;
    let new_last = match &mut new {
        Some(h) => h.check("final")?,
        None => Vec::new(),
    };
    let on_moved: Vec<&ConnState> = old_last
        .iter()
        .filter(|c| moved.contains(&c.port))
        .collect();
    Ok(Kept {
        old_kept: kept(&old_last),
        old: old_last.len(),
        old_moved: on_moved.len(),
        old_moved_kept: on_moved.iter().filter(|c| c.broken.is_none()).count(),
        new_kept: kept(&new_last),
        new: new_last.len(),
        new_on_b3,
    })
}

// ---------------------------------------------------------------------------------
// Spoofed frames

/// An Ethernet + IPv4 + TCP frame to VIP:PORT without payload, real checksums.
fn tcp_frame(macs: ([u8; 6], [u8; 6]), flow: &Flow, seq: u32, flags: u8) -> [u8; 54] {
    let (src_mac, dst_mac) = macs;
    flood::tcp_frame(
        src_mac,
        dst_mac,
        flow.src,
        vip_v4(),
        flow.sport,
        PORT,
        seq,
        flags,
    )
}

fn vip_v4() -> [u8; 4] {
    VIP.parse::<Ipv4Addr>().map_or([0; 4], |a| a.octets())
}

/// A spoofed flow to VIP:PORT.
#[derive(Clone, Copy)]
struct Flow {
    src: [u8; 4],
    sport: u16,
    key: ConnKey,
}

/// Fresh spoofed flows (sources in 198.18.0.0/15, never repeated within a lab), each
/// on a slot the change moved, by the master's own table and hash seed.
struct DirtyFlows {
    table: lb_dataplane::Table,
    seed: u32,
    next: u64,
}

impl DirtyFlows {
    fn of(master: &Dataplane) -> Result<DirtyFlows> {
        let key = ServiceKey {
            vip: lb_tests::words(VIP),
            port: PORT,
            proto: proto::TCP,
            _pad: 0,
        };
        let table = master
            .service(&key)?
            .context("the service is not in the master's maps")?;
        let dirty = table.slots().iter().filter(|e| e.is_dirty()).count();
        ensure!(dirty > 0, "the change moved no slot on the master");
        Ok(DirtyFlows {
            seed: master.config()?.hash_seed,
            table,
            next: 0,
        })
    }

    fn next_flow(&mut self) -> Result<Flow> {
        // A third of all flows land on moved slots; give up after far more tries.
        for _ in 0..10_000 {
            let i = self.next;
            self.next += 1;
            let host = (i / 60_000) as u32;
            ensure!(host < 1 << 17, "out of spoofed sources");
            let src = (u32::from(Ipv4Addr::new(198, 18, 0, 1)) + host).to_be_bytes();
            let sport = 1024 + (i % 60_000) as u16;
            let key = lb_tests::flow(
                &format!("{}:{sport}", Ipv4Addr::from(src)),
                &format!("{VIP}:{PORT}"),
                proto::TCP,
            );
            let slot = reduce(
                slot_hash(self.seed, self.table.flags, &key),
                self.table.len(),
            );
            if self.table.entries[slot as usize].is_dirty() {
                return Ok(Flow { src, sport, key });
            }
        }
        bail!("no flow on a moved slot in 10,000 tries")
    }
}

/// An AF_PACKET socket made in a lab node's namespace (a socket stays in the
/// namespace it was made in), sending frames out of its eth0 as they are.
struct RawSender(RawSocket);

/// What a paced send did.
struct Sent {
    frames: u64,
    errors: u64,
    took: Duration,
}

impl Sent {
    fn pps(&self) -> f64 {
        self.frames as f64 / self.took.as_secs_f64().max(1e-9)
    }
}

impl RawSender {
    fn open(lab: &Lab, node: &str) -> Result<RawSender> {
        lab.spawn_in(node, || RawSocket::open("eth0").map(RawSender))
            .join()
            .map_err(|_| anyhow!("the socket thread panicked"))?
    }

    fn send(&self, frame: &[u8]) -> bool {
        self.0.send(frame)
    }

    /// Send `frames` in order at about `pps`, for at most [`SEND_MAX`].
    fn paced(&self, frames: &[[u8; 54]], pps: u64) -> Sent {
        let start = Instant::now();
        let (mut sent, mut errors) = (0u64, 0u64);
        for chunk in frames.chunks(32) {
            if start.elapsed() > SEND_MAX {
                break;
            }
            for frame in chunk {
                if self.send(frame) {
                    sent += 1;
                } else {
                    errors += 1;
                }
            }
            let due = Duration::from_micros((sent + errors) * 1_000_000 / pps.max(1));
            let ahead = due.saturating_sub(start.elapsed());
            if !ahead.is_zero() {
                thread::sleep(ahead);
            }
        }
        Sent {
            frames: sent,
            errors,
            took: start.elapsed(),
        }
    }
}

// ---------------------------------------------------------------------------------
// 2. Sync cost

fn sync_view(lab: &Lab, node: &str) -> Result<SyncView> {
    match lab.ask_on(node, Request::Sync) {
        Some(Response::Sync(view)) => Ok(view),
        other => bail!("sync view of {node}: {other:?}"),
    }
}

fn counter(lab: &Lab, node: &str, name: &str) -> Result<u64> {
    lab.counter_on(node, name)
        .with_context(|| format!("counter {name} of {node}"))
}

/// CPU time of every thread of process `pid` (ns on CPU, per thread id).
fn thread_cpu(pid: u32) -> Result<HashMap<u32, u64>> {
    let mut out = HashMap::new();
    for entry in fs::read_dir(format!("/proc/{pid}/task"))? {
        let entry = entry?;
        let Some(tid) = entry.file_name().to_str().and_then(|t| t.parse().ok()) else {
            continue;
        };
        // A thread may be gone by now.
        if let Ok(s) = fs::read_to_string(entry.path().join("schedstat")) {
            if let Some(ns) = s.split_whitespace().next().and_then(|n| n.parse().ok()) {
                out.insert(tid, ns);
            }
        }
    }
    Ok(out)
}

/// utime + stime of process `pid` from /proc/<pid>/stat, in seconds (clock ticks:
/// 10 ms resolution; dead threads included).
fn stat_cpu(pid: u32) -> Result<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) start at field 3 (state);
    // utime and stime are fields 14 and 15.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("malformed /proc/pid/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> Result<u64> {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .context("malformed /proc/pid/stat")
    };
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Ok((ticks(11)? + ticks(12)?) as f64 / hz)
}

/// CPU seconds process `pid`'s threads used between two readings. A thread gone by
/// the second reading is missed: tokio's blocking threads exit after 10 s idle, so one
/// that exits within a window this short did not run in it.
fn cpu_between(before: &HashMap<u32, u64>, after: &HashMap<u32, u64>) -> f64 {
    after
        .iter()
        .map(|(tid, ns)| ns.saturating_sub(before.get(tid).copied().unwrap_or(0)))
        .sum::<u64>() as f64
        / 1e9
}

/// tcpdump writing the sync datagrams LB node `node` sends to a pcap file.
struct Capture {
    child: Child,
    path: PathBuf,
    stderr: mpsc::Receiver<String>,
}

/// What the sync sent in a capture.
#[derive(Default, Debug)]
struct Captured {
    /// Every sync datagram: count, frame bytes (Ethernet, IP, UDP, payload).
    datagrams: u64,
    frame_bytes: u64,
    /// `Entries` datagrams: count, UDP payload bytes, entries they carry.
    entry_datagrams: u64,
    entry_payload: u64,
    entries: u64,
}

impl Drop for Capture {
    /// Also on an error between start and stop: tcpdump is our child, killed by pid.
    fn drop(&mut self) {
        self.kill();
    }
}

impl Capture {
    fn start(lab: &Lab, node: &str, addr: &str, name: &str) -> Result<Capture> {
        let path = lab.dir.join(format!("{name}.pcap"));
        let mut child = Command::new("ip")
            .args(["netns", "exec", &lab.ns(node)])
            .args([
                "tcpdump",
                "-i",
                "eth0",
                "-n",
                "-s",
                "128",
                "--immediate-mode",
            ])
            .args(["-U", "-Z", "root", "-w"])
            .arg(&path)
            .arg(format!("udp and src host {addr} and src port {SYNC_PORT}"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("start tcpdump")?;
        let stderr = child.stderr.take().context("tcpdump stderr")?;
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut capture = Capture {
            child,
            path,
            stderr: rx,
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match capture.stderr.recv_timeout(left) {
                Ok(line) if line.contains("listening on") => return Ok(capture),
                Ok(_) => {}
                Err(_) => {
                    capture.kill();
                    bail!("tcpdump did not start listening within 5 s");
                }
            }
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stop tcpdump (SIGINT: it flushes and reports its drops) and read the file.
    fn stop(mut self) -> Result<Captured> {
        // SAFETY: kill(2) on the pid of our own child, not yet waited for.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let deadline = Instant::now() + Duration::from_secs(3);
        while self.child.try_wait()?.is_none() {
            if Instant::now() > deadline {
                self.kill();
                bail!("tcpdump did not stop within 3 s");
            }
            thread::sleep(Duration::from_millis(10));
        }
        // The stderr reader ends with tcpdump.
        let report: Vec<String> = self.stderr.iter().take(100).collect();
        let stat = |what: &str| {
            report
                .iter()
                .find(|l| l.contains(what))
                .and_then(|l| l.split_whitespace().next()?.parse::<u64>().ok())
        };
        let (captured, filtered, dropped) = (
            stat("captured"),
            stat("received by filter"),
            stat("dropped by kernel"),
        );
        ensure!(
            captured.is_some() && captured == filtered && dropped == Some(0),
            "tcpdump lost packets (or said nothing about it): {report:?}"
        );
        let mut data = Vec::new();
        fs::File::open(&self.path)?.read_to_end(&mut data)?;
        let _ = fs::remove_file(&self.path);
        parse_pcap(&data)
    }
}

/// Count the sync datagrams of a pcap file (Ethernet, IPv4/UDP).
fn parse_pcap(data: &[u8]) -> Result<Captured> {
    ensure!(data.len() >= 24, "pcap file too short");
    let le = match &data[..4] {
        [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1] => true,
        [0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d] => false,
        m => bail!("not a pcap file (magic {m:?})"),
    };
    let u32_at = |b: &[u8], at: usize| {
        let w = [b[at], b[at + 1], b[at + 2], b[at + 3]];
        if le {
            u32::from_le_bytes(w)
        } else {
            u32::from_be_bytes(w)
        }
    };
    let mut out = Captured::default();
    let mut at = 24;
    while at + 16 <= data.len() {
        let incl = u32_at(data, at + 8) as usize;
        let orig = u32_at(data, at + 12) as u64;
        let frame = data
            .get(at + 16..at + 16 + incl)
            .context("truncated pcap record")?;
        at += 16 + incl;
        out.datagrams += 1;
        out.frame_bytes += orig;
        // Ethernet, IPv4 (IHL), UDP, then the sync header: magic, version, kind.
        if frame.len() < 34 || frame[12..14] != [0x08, 0x00] {
            continue;
        }
        let ihl = usize::from(frame[14] & 0x0f) * 4;
        let udp = 14 + ihl;
        let Some(payload) = frame.get(udp + 8..) else {
            continue;
        };
        let udp_len = u64::from(u16::from_be_bytes([frame[udp + 4], frame[udp + 5]]));
        // Entries: kind 1; count (u16) right after the 39-byte header.
        if payload.len() >= 41 && &payload[..4] == b"LBSY" && payload[5] == 1 {
            out.entry_datagrams += 1;
            out.entry_payload += udp_len.saturating_sub(8);
            out.entries += u64::from(u16::from_be_bytes([payload[39], payload[40]]));
        }
    }
    Ok(out)
}

/// One window of SYNs at a rate.
struct Window {
    /// SYNs sent, and at what rate they went.
    sent: Sent,
    /// Entries the master created (SYNs forwarded on moved slots, none refused).
    created: u64,
    /// What the sync's counters say: sent by the master, received by lb2, dropped
    /// (send queue) plus ring events lost.
    entries_sent: u64,
    datagrams_sent: u64,
    received: u64,
    dropped: u64,
    /// The capture.
    captured: Captured,
    /// CPU seconds of both lbds over the window, idle share removed.
    cpu_master: f64,
    cpu_backup: f64,
    /// The master's, from /proc/<pid>/stat (utime + stime), idle share removed.
    stat_master: f64,
}

/// The pair, with its pinned maps and the spoofed-flow source.
struct CostLab {
    lab: Lab,
    master: Dataplane,
    peer: Dataplane,
    flows: DirtyFlows,
    raw: RawSender,
    macs: ([u8; 6], [u8; 6]),
    pids: (u32, u32),
    /// Idle CPU of each lbd, in CPU seconds per second.
    idle: (f64, f64),
}

impl CostLab {
    /// Wait until the master's sync queue is empty and its counters stay put for 100 ms
    /// (at most 5 s).
    fn drained(&self) -> Result<SyncView> {
        let start = Instant::now();
        let mut last = sync_view(&self.lab, "lb")?;
        while start.elapsed() < Duration::from_secs(5) {
            thread::sleep(Duration::from_millis(100));
            let now = sync_view(&self.lab, "lb")?;
            if now.queue == 0 && now.entries_sent == last.entries_sent {
                return Ok(now);
            }
            last = now;
        }
        bail!("the master's sync queue did not drain within 5 s: {last:?}")
    }

    fn window(&mut self, rate: u64, length: Duration, name: &str) -> Result<Window> {
        let count = (rate as f64 * length.as_secs_f64()) as usize;
        let mut frames = Vec::with_capacity(count);
        for i in 0..count {
            let flow = self.flows.next_flow()?;
            frames.push(tcp_frame(self.macs, &flow, i as u32, TCP_SYN));
        }
        self.drained()?;
        let capture = Capture::start(&self.lab, "lb", LB, name)?;
        let sync0 = (sync_view(&self.lab, "lb")?, sync_view(&self.lab, "lb2")?);
        let fwd0 = counter(&self.lab, "lb", "forwarded_tx")?;
        let lost0 = counter(&self.lab, "lb", "sync_events_lost")?;
        let refused0 = counter(&self.lab, "lb", "conntrack_flood_refused")?
            + counter(&self.lab, "lb", "conntrack_insert_failed")?;
        let cpu0 = (thread_cpu(self.pids.0)?, thread_cpu(self.pids.1)?);
        let stat0 = stat_cpu(self.pids.0)?;
        let t0 = Instant::now();
        let sent = self.raw.paced(&frames, rate);
        let end = self.drained()?;
        // lb2 counts a datagram's entries as it accepts it: the 100 ms the counters
        // stayed put covers the last one's flight.
        let took = t0.elapsed();
        let cpu1 = (thread_cpu(self.pids.0)?, thread_cpu(self.pids.1)?);
        let stat1 = stat_cpu(self.pids.0)?;
        let peer1 = sync_view(&self.lab, "lb2")?;
        let fwd1 = counter(&self.lab, "lb", "forwarded_tx")?;
        let lost1 = counter(&self.lab, "lb", "sync_events_lost")?;
        let refused1 = counter(&self.lab, "lb", "conntrack_flood_refused")?
            + counter(&self.lab, "lb", "conntrack_insert_failed")?;
        let captured = capture.stop()?;
        let secs = took.as_secs_f64();
        Ok(Window {
            created: (fwd1 - fwd0).saturating_sub(refused1 - refused0),
            entries_sent: end.entries_sent - sync0.0.entries_sent,
            datagrams_sent: end.datagrams_sent - sync0.0.datagrams_sent,
            received: peer1.entries_received - sync0.1.entries_received,
            dropped: end.entries_dropped - sync0.0.entries_dropped + (lost1 - lost0),
            captured,
            cpu_master: cpu_between(&cpu0.0, &cpu1.0) - self.idle.0 * secs,
            cpu_backup: cpu_between(&cpu0.1, &cpu1.1) - self.idle.1 * secs,
            stat_master: stat1 - stat0 - self.idle.0 * secs,
            sent,
        })
    }
}

fn sync_cost(plan: &Plan, figures: &mut Vec<Figure>) -> Result<()> {
    let lab = pair("sc", "", true, None)?;
    add_b3(&lab, "", true)?;
    let master = Dataplane::open_pinned(&lab.pin_dir_for("lb"))?;
    let peer = Dataplane::open_pinned(&lab.pin_dir_for("lb2"))?;
    let flows = DirtyFlows::of(&master)?;
    let raw = RawSender::open(&lab, "client")?;
    let macs = (lab.mac_of("client", "eth0"), lab.mac_of("lb", "eth0"));
    let pids = (lbd_pid(&lab, "lb")?, lbd_pid(&lab, "lb2")?);
    let mut c = CostLab {
        lab,
        master,
        peer,
        flows,
        raw,
        macs,
        pids,
        idle: (0.0, 0.0),
    };
    // Let the start-up resyncs finish.
    c.drained()?;

    // Latency: one SYN on a moved slot, then lb2's map read by key until the entry is
    // there.
    let mut latencies = Vec::new();
    let (mut missed, mut not_on_master, mut polls) = (0, 0, 0u64);
    let mut polling = Duration::ZERO;
    for i in 0..plan.latency_samples {
        let flow = c.flows.next_flow()?;
        let frame = tcp_frame(c.macs, &flow, i as u32, TCP_SYN);
        let t0 = Instant::now();
        ensure!(c.raw.send(&frame), "sending a SYN failed");
        loop {
            if c.peer.conn(&flow.key)?.is_some() {
                latencies.push(t0.elapsed().as_secs_f64() * 1e3);
                break;
            }
            if t0.elapsed() > Duration::from_secs(2) {
                missed += 1;
                break;
            }
            thread::sleep(Duration::from_micros(200));
            polls += 1;
        }
        polling += t0.elapsed();
        if c.master.conn(&flow.key)?.is_none() {
            not_on_master += 1;
        }
        // Off the sync's 10 ms tick by a varying amount.
        thread::sleep(Duration::from_millis(23 + 7 * (i as u64 % 3)));
    }
    let poll_us = polling.as_secs_f64() * 1e6 / polls.max(1) as f64;
    eprintln!("sync: latency {latencies:?} ms, {missed} missed, poll every {poll_us:.0} µs");
    if latencies.is_empty() {
        bail!("no entry reached lb2 within 2 s ({missed} SYNs sent)");
    }
    figures.push(Figure::new(
        "sync latency: new entry on the master to installed on the peer".into(),
        "ms",
        latencies,
        format!(
            "one SYN of a fresh flow on a moved slot sent at a time; lb2's connection table \
             (pinned map) read by key every {poll_us:.0} µs on average (that is the \
             resolution); {} samples, {missed} never arrived within 2 s, {not_on_master} not \
             in the master's table; entries go out as the event ring delivers them",
            plan.latency_samples
        ),
    ));

    // The idle CPU of both lbds (VRRP adverts every 100 ms, sync hellos, no traffic).
    let cpu0 = (thread_cpu(c.pids.0)?, thread_cpu(c.pids.1)?);
    let t0 = Instant::now();
    thread::sleep(plan.idle);
    let cpu1 = (thread_cpu(c.pids.0)?, thread_cpu(c.pids.1)?);
    let secs = t0.elapsed().as_secs_f64();
    c.idle = (
        cpu_between(&cpu0.0, &cpu1.0) / secs,
        cpu_between(&cpu0.1, &cpu1.1) / secs,
    );
    figures.push(Figure::new(
        "baseline: lbd CPU, idle pair (master / backup)".into(),
        "% of a CPU",
        vec![100.0 * c.idle.0],
        format!(
            "master {:.2}%, backup {:.2}% over {secs:.1} s: VRRP v3 adverts every 100 ms, sync \
             hellos, no traffic; subtracted from the figures below",
            100.0 * c.idle.0,
            100.0 * c.idle.1
        ),
    ));

    for &rate in plan.syn_rates {
        let mut windows = Vec::new();
        for rep in 0..plan.cost_repeats {
            // A refresh scan (every 30 s with these timeouts) re-sends every entry
            // touched since the last one: a window it falls in is measured again, once.
            let mut w = c.window(rate, plan.window, &format!("w{rate}-{rep}"))?;
            if w.entries_sent > w.created + w.created / 20 + 10 {
                eprintln!(
                    "sync: window at {rate}/s had a refresh scan ({} sent for {} created); again",
                    w.entries_sent, w.created
                );
                w = c.window(rate, plan.window, &format!("w{rate}-{rep}b"))?;
            }
            eprintln!(
                "sync: {rate} SYN/s: sent {} at {:.0}/s ({} errors), created {}, entries sent {} in \
                 {} datagrams, received {}, dropped {}, captured {:?}, cpu {:.3}/{:.3} s",
                w.sent.frames,
                w.sent.pps(),
                w.sent.errors,
                w.created,
                w.entries_sent,
                w.datagrams_sent,
                w.received,
                w.dropped,
                w.captured,
                w.cpu_master,
                w.cpu_backup
            );
            windows.push(w);
        }
        let per = |f: &dyn Fn(&Window) -> f64| windows.iter().map(f).collect::<Vec<f64>>();
        let entries = |w: &Window| w.captured.entries.max(1) as f64;
        let achieved = crate::median(per(&|w| w.sent.pps()));
        let label = format!("{rate} new flows/s on moved slots");
        let list =
            |f: &dyn Fn(&Window) -> String| windows.iter().map(f).collect::<Vec<_>>().join("; ");
        figures.push(Figure::new(
            format!("sync bytes on the wire per synced entry, {label}"),
            "bytes/entry",
            per(&|w| w.captured.frame_bytes as f64 / entries(w)),
            format!(
                "every sync datagram the master sent (tcpdump on its eth0: Ethernet + IP + UDP + \
                 payload, hellos included) / entries in them; Entries datagrams alone: {} UDP \
                 payload bytes per entry (22 per IPv4 entry + 57 per datagram); SYNs sent at \
                 {achieved:.0}/s median, {:.1} s per window",
                list(&|w| format!("{:.1}", w.captured.entry_payload as f64 / entries(w))),
                plan.window.as_secs_f64()
            ),
        ));
        figures.push(Figure::new(
            format!("sync datagrams per 1000 synced entries, {label}"),
            "datagrams/1k entries",
            per(&|w| 1000.0 * w.captured.entry_datagrams as f64 / entries(w)),
            format!(
                "Entries datagrams / entries they carried (16.4 = full 61-entry datagrams); \
                 lbctl sync's datagrams_sent / entries_sent per window: {}",
                list(&|w| format!("{}/{}", w.datagrams_sent, w.entries_sent))
            ),
        ));
        figures.push(Figure::new(
            format!("lbd CPU per 10k synced entries/s, master, {label}"),
            "% of a CPU",
            per(&|w| w.cpu_master / entries(w) * 1e6),
            format!(
                "master lbd's CPU time (its threads' schedstat) over the window and until its \
                 queue drained, minus its idle CPU, per entry (µs per entry = % of a CPU at 10k \
                 entries/s); the same from /proc/<pid>/stat utime+stime (10 ms ticks): {} %; \
                 backup lbd (receiving, installing): {} %",
                list(&|w| format!("{:.1}", w.stat_master / entries(w) * 1e6)),
                list(&|w| format!("{:.2}", w.cpu_backup / entries(w) * 1e6))
            ),
        ));
        figures.push(Figure::new(
            format!("synced entries dropped, {label}"),
            "entries",
            per(&|w| (w.dropped + w.created.saturating_sub(w.received)) as f64),
            format!(
                "send-queue drops + ring events lost on the master, plus entries created and \
                 not received by lb2; per window created / sent / received by lb2 / dropped: {}",
                list(&|w| format!(
                    "{} / {} / {} / {}",
                    w.created, w.entries_sent, w.received, w.dropped
                ))
            ),
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------
// 3. Floods

#[derive(Clone, Copy, Debug)]
enum Flood {
    /// Two ACKs per flow (mid-connection packets of flows nobody knows).
    AckAck,
    /// A SYN, then an ACK per flow.
    SynAck,
}

/// `conntrack_flood_refused` as `lbctl --json status` on node `node` shows it.
fn refused_per_lbctl(lab: &Lab, node: &str) -> Result<u64> {
    let out = lab.lbctl_on(node, &["--json", "status"]);
    ensure!(
        out.status.success(),
        "lbctl --json status: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    json["counters"]
        .as_array()
        .and_then(|c| {
            c.iter().find_map(|pair| {
                (pair[0] == "conntrack_flood_refused")
                    .then(|| pair[1].as_u64())
                    .flatten()
            })
        })
        .with_context(|| format!("no conntrack_flood_refused in lbctl --json status: {json}"))
}

/// Frames of `flows` spoofed flows of kind `kind`, in batches of 64 flows: every
/// flow's first packet, then every flow's second, so the second finds whatever the
/// first left in the connection table.
fn flood_frames(
    flows: &mut DirtyFlows,
    macs: ([u8; 6], [u8; 6]),
    kind: Flood,
    count: usize,
) -> Result<Vec<[u8; 54]>> {
    let mut frames = Vec::with_capacity(count * 2);
    let mut done = 0;
    while done < count {
        let n = 64.min(count - done);
        let batch = (0..n)
            .map(|_| flows.next_flow())
            .collect::<Result<Vec<_>>>()?;
        for second in [false, true] {
            for (i, flow) in batch.iter().enumerate() {
                let seq = (done + i) as u32 * 7919;
                let (flags, seq) = match (kind, second) {
                    (Flood::AckAck, false) => (TCP_ACK, seq),
                    (Flood::AckAck, true) => (TCP_ACK, seq.wrapping_add(1)),
                    (Flood::SynAck, false) => (TCP_SYN, seq),
                    (Flood::SynAck, true) => (TCP_ACK, seq.wrapping_add(1)),
                };
                frames.push(tcp_frame(macs, flow, seq, flags));
            }
        }
        done += n;
    }
    Ok(frames)
}

fn floods(plan: &Plan, lb_conns: &Path, figures: &mut Vec<Figure>) -> Result<()> {
    for &size in plan.table_sizes {
        let t = Instant::now();
        let global = format!("conn_table_size = {size}\n");
        let mut lab = pair("sf", &global, true, Some(lb_conns))?;
        let (mut old, opened) = Holder::start(&lab, lb_conns, PORT, 41000, FLOOD_OLD)?;
        ensure!(
            kept(&opened) == FLOOD_OLD as usize,
            "connections before the change did not all open: {opened:?}"
        );
        old.phase("change")?;
        add_b3(&lab, &global, true)?;
        old.check("after-change")?;
        let (mut new, opened_new) = Holder::start(&lab, lb_conns, PORT, 42000, FLOOD_NEW)?;
        ensure!(
            kept(&opened_new) == FLOOD_NEW as usize,
            "connections after the change did not all open: {opened_new:?}"
        );
        let on_b3 = opened_new.iter().filter(|c| c.backend == "b3").count();
        let old_moved = opened
            .iter()
            .filter(|c| backend_for(&lab, "lb", c.port, true).is_some_and(|b| b != c.backend))
            .count();
        old.check("tracked")?;
        new.check("tracked")?;
        let master = Dataplane::open_pinned(&lab.pin_dir_for("lb"))?;
        let peer = Dataplane::open_pinned(&lab.pin_dir_for("lb2"))?;
        let mut flows = DirtyFlows::of(&master)?;
        // The real connections' entries: on the master (those on moved slots), and on
        // lb2 by sync.
        let real: Vec<(u16, ConnKey)> = opened
            .iter()
            .chain(&opened_new)
            .map(|c| {
                let key = lb_tests::flow(
                    &format!("{CLIENT}:{}", c.port),
                    &format!("{VIP}:{PORT}"),
                    proto::TCP,
                );
                (c.port, key)
            })
            .collect();
        let tracked_on = |dp: &Dataplane| -> Result<Vec<u16>> {
            let mut ports = Vec::new();
            for (port, key) in &real {
                if dp.conn(key)?.is_some() {
                    ports.push(*port);
                }
            }
            Ok(ports)
        };
        let on_master = tracked_on(&master)?;
        let on_peer_before = tracked_on(&peer)?.len();
        let raw = RawSender::open(&lab, "client")?;
        let macs = (lab.mac_of("client", "eth0"), lab.mac_of("lb", "eth0"));
        let total = (FLOOD_OLD + FLOOD_NEW) as usize;
        let mut open = total;
        for kind in [Flood::AckAck, Flood::SynAck] {
            for &rate in plan.flood_rates {
                let phase = format!("flood-{kind:?}-{rate}");
                old.phase(&phase)?;
                new.phase(&phase)?;
                let flows_n = (rate as f64 * plan.flood_for.as_secs_f64() / 2.0) as usize;
                let frames = flood_frames(&mut flows, macs, kind, flows_n)?;
                let refused0 = refused_per_lbctl(&lab, "lb")?;
                let synced0 = sync_view(&lab, "lb")?.entries_sent;
                let sent = raw.paced(&frames, rate);
                let refused = refused_per_lbctl(&lab, "lb")? - refused0;
                let synced = sync_view(&lab, "lb")?.entries_sent - synced0;
                let mut last = old.check(&format!("after-{phase}"))?;
                last.extend(new.check(&format!("after-{phase}"))?);
                let lost = last
                    .iter()
                    .filter(|c| c.broken.as_ref().is_some_and(|(p, _)| *p == phase))
                    .count();
                let at_start = open;
                open = kept(&last);
                eprintln!(
                    "sync: flood {kind:?} at {rate}/s, table {size}: sent {} at {:.0}/s, lost {lost} \
                     of {at_start}, refused {refused}, synced {synced}",
                    sent.frames,
                    sent.pps()
                );
                let what = match kind {
                    Flood::AckAck => "two ACKs per flow",
                    Flood::SynAck => "SYN then ACK per flow",
                };
                figures.push(Figure::new(
                    format!(
                        "flood ({what}), {rate} frames/s, conn_table_size {size}: real \
                         connections lost"
                    ),
                    "% lost",
                    vec![100.0 * lost as f64 / at_start.max(1) as f64],
                    format!(
                        "{lost} of {at_start} open connections broke ({on_b3} opened after the \
                         change are on b3, kept there by their entries alone; {old_moved} from \
                         before it on moved slots); {} spoofed flows, every one on a moved slot \
                         (the worst case: a random flood hits them a third of the time), {} \
                         frames at {:.0}/s ({} send errors); conntrack_flood_refused +{refused} \
                         (the guard allows {} new entries per CPU per second); entries synced \
                         meanwhile {synced}",
                        flows_n,
                        sent.frames,
                        sent.pps(),
                        sent.errors,
                        size / 16
                    ),
                ));
            }
        }
        let on_peer = tracked_on(&peer)?;
        let peer_entries = peer.conns()?.len();
        let missing: Vec<u16> = on_master
            .iter()
            .filter(|p| !on_peer.contains(p))
            .copied()
            .collect();
        drop((master, peer));
        old.phase("failover")?;
        new.phase("failover")?;
        kill_master(&mut lab)?;
        old.check("after-failover")?;
        new.check("after-failover")?;
        thread::sleep(Duration::from_secs(1));
        let mut last = old.check("final")?;
        last.extend(new.check("final")?);
        let survived = kept(&last);
        let lost_at_failover: Vec<&ConnState> = last
            .iter()
            .filter(|c| {
                c.broken
                    .as_ref()
                    .is_some_and(|(p, _)| p == "failover" || p == "after-failover")
            })
            .collect();
        let lost_missing = lost_at_failover
            .iter()
            .filter(|c| missing.contains(&c.port))
            .count();
        let lost_on_b3 = lost_at_failover
            .iter()
            .filter(|c| c.backend == "b3")
            .count();
        eprintln!(
            "sync: table {size}: real entries on the master {}, on lb2 before the floods \
             {on_peer_before}, after {} (lb2 holds {peer_entries}); lost at the failover {} \
             ({lost_on_b3} on b3, {lost_missing} missing on lb2)",
            on_master.len(),
            on_master.len() - missing.len(),
            lost_at_failover.len()
        );
        figures.push(Figure::new(
            format!("flows kept through the floods and then a failover, conn_table_size {size}"),
            "% kept",
            vec![100.0 * survived as f64 / total as f64],
            format!(
                "{survived} of {total} connections ({FLOOD_OLD} from before the change, \
                 {FLOOD_NEW} after it, {on_b3} of them on b3) still answered by their backend \
                 after the master died following the floods above; {} broke at the failover \
                 ({lost_on_b3} of them on b3). The master tracked {} of the real connections \
                 (those on moved slots); lb2 held {on_peer_before} of those entries before the \
                 floods and {} after them, its table then full of synced flood entries \
                 ({peer_entries} entries, conn_table_size {size}); {lost_missing} of the broken \
                 ones had lost their entry on lb2. lb2 installs every synced entry; no traffic \
                 references (protects) the real ones there, so while the guard refuses the \
                 master re-sends its live entries every second, which keeps them ahead of the \
                 flood's churn of lb2's LRU table",
                lost_at_failover.len(),
                on_master.len(),
                on_master.len() - missing.len()
            ),
        ));
        eprintln!("sync: floods with table {size} done in {:.1?}", t.elapsed());
    }
    Ok(())
}

//! Active-active behind ECMP (issue 14), measured in the ECMP lab (tests/src/ecmp.rs: a
//! router namespace running BIRD with multipath, three LB nodes each running the
//! release lbd with `[bgp]` (through a BIRD of its own, eBGP, hold 3 s, keepalive 1 s,
//! BFD 100 ms x 3, graceful restart off) and, unless said otherwise, `[sync]`; three
//! backends running `lb-conns serve`; the router's hash is the 5-tuple
//! (`fib_multipath_hash_policy=3`, fields 0x37)). The service is VIP:80/tcp with TCP
//! health checks every 300 ms.
//!
//! 1. **Spread**: new flows from fresh client ports opened at once; the node each went
//!    through (the router's own choice, `ip route get` with the flow's 5-tuple); every
//!    one must be answered. Reported: the largest and smallest node's share and their
//!    ratio.
//! 2. **Sync traffic**: the nodes start with backends b1 and b2, b3 is added (config
//!    rewritten, reload: a third of the Maglev slots dirty), then new flows are opened:
//!    those on moved slots become connection entries the node that saw the SYN sends
//!    to both peers. Every sync datagram is captured on the bridge (tcpdump, UDP 8848)
//!    over the window and over an idle window of the same length before it (peer
//!    keepalives, subtracted); entries and datagrams come from `Request::Sync` (`lbctl
//!    sync`) on the three nodes.
//! 3. **Detection**: a node dies silently (its bridge port down first, so neither BIRD's
//!    FIN nor anything else gets out, then lbd and BIRD killed with SIGKILL); the time
//!    from the port going down to the router's route losing the node's nexthop (polled
//!    every few ms with `ip route`), with BFD, then with the router's BFD turned off
//!    (`bfd off` + `birdc configure`: the 3 s hold timer alone). And `lbctl drain`: from
//!    the command to the router's withdrawal, and to lbd's exit (no packet for 2 s).
//!    Between runs the node comes back (port up, BIRD, lbd): the time from lbd's start
//!    to the router's route including it again is reported too (health checks, sync
//!    catch-up, announcement).
//! 4. **Flows kept**: the nodes start with b1 and b2; 30 long-lived connections (the
//!    `lb-conns hold` helper, a line every 200 ms each, answered by the backend's name)
//!    are opened, b3 is added on every node (reload), 30 more are opened (some on b3,
//!    on moved slots: known by the node that saw the SYN, and its peers with `[sync]`),
//!    then a node dies (lb1, as above), drains (`lbctl drain` on lb1) or joins (lb3,
//!    not running before). With plain Linux multipath every such change moves flows
//!    between the nodes that stay too (ecmp-notes.md). Kept = connections still
//!    answered by their own backend 1 s after the router's route changed; with `[sync]`
//!    and without it (the same configs without the section). Each run uses other
//!    client ports, so other connections move (the lab is otherwise deterministic).
//!
//! Quick mode (CI): one run of each of 1-3 and the node-death case of 4, with and
//! without `[sync]`.

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, ensure, Context, Result};
use lb_api::{
    control::{Request, Response},
    view::SyncView,
};
use lb_tests::{
    conns::{kept, tally, ConnState},
    ecmp::{addrs, services, EcmpLab, Held, NODES},
    lab::binary,
};

use crate::{sync::lb_conns, Args, Figure};

/// `[bgp] drain_timeout` in the lab (a drain ends sooner, once traffic stops).
const DRAIN_TIMEOUT_S: u64 = 20;
/// The longest the router may take to follow a change before a run fails.
const ROUTE_WAIT: Duration = Duration::from_secs(40);
/// Connections held before and after the backend change (part 4).
const OLD_CONNS: u16 = 30;
const NEW_CONNS: u16 = 30;
/// Flow sync's UDP port (lbd's default).
const SYNC_PORT: u16 = 8848;

const KEPT_PREFIX: &str = "ECMP flows kept";

/// How much of everything, full or quick.
struct Plan {
    /// Runs of the spread, detection and drain figures.
    runs: usize,
    /// New flows per spread run.
    spread_flows: u16,
    /// New flows in the sync-traffic window.
    sync_flows: u16,
    /// Part 4: (event, with `[sync]`) cases, each `kept_runs` times.
    cases: Vec<(Event, bool)>,
    kept_runs: usize,
}

impl Plan {
    fn of(args: &Args) -> Plan {
        if args.quick {
            Plan {
                runs: 1,
                spread_flows: 90,
                sync_flows: 150,
                cases: vec![(Event::Dies, true), (Event::Dies, false)],
                kept_runs: 1,
            }
        } else {
            let mut cases = Vec::new();
            for event in [Event::Dies, Event::Drains, Event::Joins] {
                for sync in [true, false] {
                    cases.push((event, sync));
                }
            }
            Plan {
                runs: 5,
                spread_flows: 300,
                sync_flows: 600,
                cases,
                kept_runs: 3,
            }
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Event {
    Dies,
    Drains,
    Joins,
}

impl Event {
    fn name(self) -> &'static str {
        match self {
            Event::Dies => "a node dies",
            Event::Drains => "a node is drained",
            Event::Joins => "a node joins",
        }
    }
}

/// The ECMP section of the bench.
pub fn ecmp(args: &Args, figures: &mut Vec<Figure>) -> Result<()> {
    let plan = Plan::of(args);
    let lb_conns = lb_conns()?;
    binary("lbd"); // built before any clock starts
    let started = Instant::now();
    main_lab(&plan, &lb_conns, figures)?;
    eprintln!(
        "ecmp: spread, sync and detection done after {:.1?}",
        started.elapsed()
    );
    for (event, sync) in &plan.cases {
        let mut samples = Vec::new();
        let mut notes = Vec::new();
        for run in 0..plan.kept_runs {
            let (old, new) = kept_case(&lb_conns, *event, *sync, run)?;
            samples.push(100.0 * (kept(&old) + kept(&new)) as f64 / (old.len() + new.len()) as f64);
            notes.push(format!(
                "{}/{} from before the change, {}/{} after",
                kept(&old),
                old.len(),
                kept(&new),
                new.len()
            ));
        }
        figures.push(Figure::new(
            format!(
                "{KEPT_PREFIX} when {}, {} [sync]",
                event.name(),
                if *sync { "with" } else { "without" }
            ),
            "%",
            samples,
            format!(
                "{} long-lived connections ({OLD_CONNS} opened before b3 was added, {NEW_CONNS} after); kept per run: {}",
                OLD_CONNS + NEW_CONNS,
                notes.join("; ")
            ),
        ));
    }
    eprintln!("ecmp: section done in {:.1?}", started.elapsed());
    Ok(())
}

/// The one-line summaries for the report's headlines.
pub fn headlines(figures: &[Figure]) -> Vec<String> {
    let get = |name: &str| figures.iter().find(|f| f.name == name).map(|f| f.median);
    let mut out = Vec::new();
    if let (Some(bfd), Some(hold), Some(drain)) =
        (get(DETECT_BFD), get(DETECT_HOLD), get(DRAIN_WITHDRAWN))
    {
        out.push(format!(
            "ECMP: a silently dead LB node leaves the router's route after {bfd:.0} ms with BFD \
             (100 ms x 3), {hold:.0} ms on the 3 s hold timer alone; lbctl drain withdraws in {drain:.0} ms"
        ));
    }
    let kept: Vec<String> = figures
        .iter()
        .filter(|f| f.name.starts_with(KEPT_PREFIX))
        .map(|f| format!("{} {:.0}%", &f.name[KEPT_PREFIX.len() + 1..], f.median))
        .collect();
    if !kept.is_empty() {
        out.push(format!("ECMP flows kept: {}", kept.join(", ")));
    }
    out
}

const DETECT_BFD: &str =
    "ECMP: silent node loss to the router dropping its nexthop, BFD 100 ms x 3";
const DETECT_HOLD: &str =
    "ECMP: silent node loss to the router dropping its nexthop, hold timer 3 s (no BFD)";
const DRAIN_WITHDRAWN: &str = "ECMP: lbctl drain to the router dropping the node";

// ---------------------------------------------------------------------------------
// The lab

/// Write every node's config for `members`, with or without `[sync]`.
fn write_configs(lab: &EcmpLab, members: [bool; 3], sync: bool) -> Result<()> {
    let bgp = format!("min_healthy = 1\ndrain_timeout = \"{DRAIN_TIMEOUT_S}s\"");
    for node in NODES {
        let mut text = lab.lbd_config_text(node, "", &bgp, &services(members));
        if !sync {
            let start = text
                .find("[sync]\n")
                .context("[sync] in the lab's config")?;
            let end = start
                + text[start..]
                    .find("\n\n")
                    .context("the end of [sync] in the lab's config")?
                + 2;
            text.replace_range(start..end, "");
        }
        let path = lab.config_path(node);
        fs::write(&path, &text)?;
        lab.check_config(node)
            .map_err(|e| anyhow::anyhow!("lbd rejects {node}'s config: {e}\n{text}"))?;
    }
    Ok(())
}

/// A lab with the backends serving, every node configured for `members` (with `[sync]`
/// or not), BIRD on the router and on `running`, lbd on `running`; returns once each
/// has the backends up and the router routes the VIP via exactly them.
fn lab_with(
    tag: &str,
    lb_conns: &Path,
    running: &[&str],
    members: [bool; 3],
    sync: bool,
) -> Result<EcmpLab> {
    let mut lab = EcmpLab::up(tag);
    lab.start_servers(lb_conns);
    write_configs(&lab, members, sync)?;
    lab.start_bird("rtr");
    for node in running {
        lab.start_bird(node);
    }
    wait(Duration::from_secs(20), "the router's BGP sessions", || {
        lab.router_sessions() == running.len()
    })?;
    for node in running {
        lab.start_lbd(node);
    }
    let healthy = members.iter().filter(|m| **m).count();
    for node in running {
        lab.wait_healthy(node, healthy);
    }
    wait_route(&lab, running, ROUTE_WAIT)?;
    Ok(lab)
}

fn wait(timeout: Duration, what: &str, mut f: impl FnMut() -> bool) -> Result<()> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if f() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("timed out after {timeout:?} waiting for {what}")
}

/// Wait until the router routes the VIP via exactly `nodes`; how long it took (polled
/// every few milliseconds).
fn wait_route(lab: &EcmpLab, nodes: &[&str], timeout: Duration) -> Result<Duration> {
    let want = addrs(nodes);
    let start = Instant::now();
    while start.elapsed() < timeout {
        if lab.router_nexthops() == want {
            return Ok(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    bail!(
        "after {timeout:?} the router's nexthops are {:?}, not {nodes:?}\n{}",
        lab.router_nexthops(),
        lab.bgp_debug()
    )
}

fn reload(lab: &EcmpLab, nodes: &[&str], members: [bool; 3]) -> Result<()> {
    for node in nodes {
        let answer = lab.ask(node, Request::Reload);
        ensure!(
            matches!(answer, Some(Response::Done { .. })),
            "reload on {node}: {answer:?}"
        );
    }
    let healthy = members.iter().filter(|m| **m).count();
    for node in nodes {
        lab.wait_healthy(node, healthy);
    }
    Ok(())
}

fn lbctl_ok(lab: &EcmpLab, node: &str, args: &[&str]) -> Result<()> {
    let out = lab.lbctl(node, args);
    ensure!(
        out.status.success(),
        "lbctl {args:?} on {node}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// Bring node `node` back after it died (port up, BIRD, its BGP session) or after its
/// lbd exited (lbd only); the time from lbd's start to the router's route including it.
fn rejoin(lab: &mut EcmpLab, node: &str) -> Result<Duration> {
    if !lab.bird_running(node) {
        lab.link_up(node);
        lab.start_bird(node);
        wait(Duration::from_secs(20), "the router's BGP sessions", || {
            lab.router_sessions() == NODES.len()
        })?;
    }
    let t = Instant::now();
    lab.start_lbd(node);
    wait_route(lab, &NODES, ROUTE_WAIT)?;
    Ok(t.elapsed())
}

// ---------------------------------------------------------------------------------
// 1-3. Spread, sync traffic, detection

fn main_lab(plan: &Plan, lb_conns: &Path, figures: &mut Vec<Figure>) -> Result<()> {
    let before = [true, true, false];
    let mut lab = lab_with("bm", lb_conns, &NODES, before, true)?;

    // 1. Spread.
    let mut ratio = Vec::new();
    let mut largest = Vec::new();
    let mut smallest = Vec::new();
    for run in 0..plan.runs {
        let first = 20000 + run as u16 * plan.spread_flows;
        let probes = lab.new_flows(first, plan.spread_flows, Duration::from_secs(6));
        let failed = lb_tests::ecmp::failed_probes(&probes);
        ensure!(
            failed.is_empty(),
            "new flows failed:\n{}",
            failed.join("\n")
        );
        let mut per: BTreeMap<String, usize> = NODES.iter().map(|n| (n.to_string(), 0)).collect();
        for p in &probes {
            let node = lab.router_choice(p.port, 80).unwrap_or_default();
            *per.entry(node).or_insert(0) += 1;
        }
        let n = probes.len() as f64;
        let max = *per.values().max().unwrap_or(&0) as f64;
        let min = *per.values().min().unwrap_or(&0) as f64;
        eprintln!("ecmp: spread run {run}: {per:?}");
        largest.push(100.0 * max / n);
        smallest.push(100.0 * min / n);
        ratio.push(if min > 0.0 { max / min } else { f64::INFINITY });
    }
    let spread_note = format!(
        "{} new flows per run from consecutive client ports, 3 nodes (fair: 33.3%); the node is the router's choice (ip route get, 5-tuple hash)",
        plan.spread_flows
    );
    figures.push(Figure::new(
        "ECMP spread of new flows: largest node's share / smallest's".into(),
        "x",
        ratio,
        spread_note.clone(),
    ));
    figures.push(Figure::new(
        "ECMP spread of new flows: largest node's share".into(),
        "%",
        largest,
        spread_note.clone(),
    ));
    figures.push(Figure::new(
        "ECMP spread of new flows: smallest node's share".into(),
        "%",
        smallest,
        spread_note,
    ));

    // 2. Sync traffic: b3 added, new flows on moved slots become synced entries.
    write_configs(&lab, [true; 3], true)?;
    reload(&lab, &NODES, [true; 3])?;
    let window = Duration::from_secs(3);
    let idle = {
        let cap = Capture::start(&lab)?;
        std::thread::sleep(window);
        cap.stop()?
    };
    let sync_before = sync_views(&lab)?;
    let cap = Capture::start(&lab)?;
    let t = Instant::now();
    let probes = lab.new_flows(30000, plan.sync_flows, Duration::from_secs(6));
    std::thread::sleep(window.saturating_sub(t.elapsed()));
    let busy = cap.stop()?;
    let sync_after = sync_views(&lab)?;
    let failed = lb_tests::ecmp::failed_probes(&probes);
    ensure!(
        failed.is_empty(),
        "new flows failed:\n{}",
        failed.join("\n")
    );
    let delta = |f: fn(&SyncView) -> u64| -> u64 {
        sync_after.iter().map(f).sum::<u64>() - sync_before.iter().map(f).sum::<u64>()
    };
    let entries_sent = delta(|v| v.entries_sent);
    let datagrams_sent = delta(|v| v.datagrams_sent);
    let entries_received = delta(|v| v.entries_received);
    let dropped = delta(|v| v.entries_dropped);
    let bytes = busy.payload_bytes.saturating_sub(idle.payload_bytes);
    let datagrams = busy.datagrams.saturating_sub(idle.datagrams);
    eprintln!(
        "ecmp: sync window: {} flows, entries sent {entries_sent} (in {datagrams_sent} datagrams), received {entries_received}, dropped {dropped}; captured {} datagrams / {} payload bytes (idle window: {} / {})",
        probes.len(),
        busy.datagrams,
        busy.payload_bytes,
        idle.datagrams,
        idle.payload_bytes
    );
    ensure!(
        entries_sent > 0,
        "no sync entry was sent for {} new flows after b3 was added",
        probes.len()
    );
    let note = format!(
        "{} new flows over 3 nodes after b3 was added (a third of the slots moved); lbctl sync over the 3 nodes: {entries_sent} entries sent (the copy to each of the 2 peers counts) in {datagrams_sent} datagrams, {entries_received} received, {dropped} dropped; on the wire {datagrams} datagrams, {bytes} B of UDP payload (the bridge's ports, an idle window's {} datagrams subtracted)",
        probes.len(),
        idle.datagrams
    );
    figures.push(Figure::new(
        "ECMP sync, 3 nodes: UDP payload bytes per entry sent (per peer copy)".into(),
        "B",
        vec![bytes as f64 / entries_sent as f64],
        note.clone(),
    ));
    figures.push(Figure::new(
        "ECMP sync, 3 nodes: datagrams on the wire per entry sent".into(),
        "datagrams",
        vec![datagrams as f64 / entries_sent as f64],
        note.clone(),
    ));
    figures.push(Figure::new(
        "ECMP sync, 3 nodes: entries received per entry sent".into(),
        "entries",
        vec![entries_received as f64 / entries_sent as f64],
        note.clone(),
    ));
    figures.push(Figure::new(
        "ECMP sync, 3 nodes: entry copies sent per new flow".into(),
        "entries",
        vec![entries_sent as f64 / probes.len() as f64],
        note,
    ));

    // 3. Drain, death with BFD, death on the hold timer.
    let mut drain_route = Vec::new();
    let mut drain_exit = Vec::new();
    let mut joins = Vec::new();
    for _ in 0..plan.runs {
        let t = Instant::now();
        lbctl_ok(&lab, "lb1", &["drain"])?;
        drain_route.push(ms(
            wait_route(&lab, &["lb2", "lb3"], ROUTE_WAIT)?.max(t.elapsed())
        ));
        let status = lab.wait_lbd_exit("lb1", Duration::from_secs(DRAIN_TIMEOUT_S + 10));
        ensure!(
            status.is_some_and(|s| s.success()),
            "lbd on lb1 after a drain: {status:?}\n{}",
            lab.lbd_log("lb1")
        );
        drain_exit.push(t.elapsed().as_secs_f64());
        joins.push(ms(rejoin(&mut lab, "lb1")?));
    }
    figures.push(Figure::new(
        DRAIN_WITHDRAWN.into(),
        "ms",
        drain_route,
        "from starting `lbctl drain` on lb1 to the router's route without it (routes file rewritten, birdc configure, BGP withdraw)".into(),
    ));
    figures.push(Figure::new(
        "ECMP: lbctl drain to lbd's exit (idle node)".into(),
        "s",
        drain_exit,
        format!("lbd exits once no packet for a VIP arrived for 2 s (drain_timeout {DRAIN_TIMEOUT_S} s); no traffic was running"),
    ));
    let mut bfd = Vec::new();
    for _ in 0..plan.runs {
        let t = Instant::now();
        lab.node_down("lb1");
        bfd.push(ms(
            wait_route(&lab, &["lb2", "lb3"], ROUTE_WAIT)?.max(t.elapsed())
        ));
        joins.push(ms(rejoin(&mut lab, "lb1")?));
    }
    figures.push(Figure::new(
        DETECT_BFD.into(),
        "ms",
        bfd,
        "lb1's bridge port down, then its lbd and BIRD killed -9; polled with ip route every ~3 ms"
            .into(),
    ));
    // The router without BFD: the hold timer alone (3 s, keepalive 1 s).
    let conf = lab.bird_config("rtr");
    let text = fs::read_to_string(&conf)?;
    ensure!(
        text.contains("bfd on;"),
        "the router's config has no `bfd on;`"
    );
    fs::write(&conf, text.replace("bfd on;", "bfd off;"))?;
    let answer = lab.birdc("rtr", "configure").unwrap_or_default();
    ensure!(
        answer.contains("Reconfigur"),
        "birdc configure on the router: {answer}"
    );
    wait(
        Duration::from_secs(20),
        "the router's sessions after bfd off",
        || lab.router_sessions() == 3 && lab.router_bfd_up() == 0,
    )?;
    wait_route(&lab, &NODES, ROUTE_WAIT)?;
    let mut hold = Vec::new();
    for run in 0..plan.runs {
        let t = Instant::now();
        lab.node_down("lb1");
        hold.push(ms(
            wait_route(&lab, &["lb2", "lb3"], ROUTE_WAIT)?.max(t.elapsed())
        ));
        if run + 1 < plan.runs {
            joins.push(ms(rejoin(&mut lab, "lb1")?));
        }
    }
    figures.push(Figure::new(
        DETECT_HOLD.into(),
        "ms",
        hold,
        "as above with `bfd off` on the router: the BGP hold timer (3 s, keepalive 1 s) notices"
            .into(),
    ));
    figures.push(Figure::new(
        "ECMP: lbd start to the router routing via the node again".into(),
        "ms",
        joins,
        "lb1 rejoining two running nodes with [sync] (BIRD up first): health checks (300 ms), catching up with the peers' state, announcement".into(),
    ));
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn sync_views(lab: &EcmpLab) -> Result<Vec<SyncView>> {
    NODES
        .iter()
        .map(|n| match lab.ask(n, Request::Sync) {
            Some(Response::Sync(v)) => Ok(v),
            other => bail!("sync view of {n}: {other:?}"),
        })
        .collect()
}

/// Sync datagrams captured on the bridge's ports, frames coming in only: each datagram
/// once (tcpdump on br0 itself sees only what the bridge floods or delivers locally).
struct Capture {
    child: Option<Child>,
    file: PathBuf,
}

struct Captured {
    datagrams: u64,
    /// UDP payload bytes (frame length minus link-layer, IPv4 and UDP headers).
    payload_bytes: u64,
}

impl Drop for Capture {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = fs::remove_file(&self.file);
    }
}

impl Capture {
    fn start(lab: &EcmpLab) -> Result<Capture> {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let file = lab.dir.join(format!("sync-{n}.pcap"));
        let _ = fs::remove_file(&file);
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &lab.ns("br"),
                "tcpdump",
                "-i",
                "any",
                "-Q",
                "in",
                "-n",
                "-s",
                "128",
            ])
            .args(["-U", "-w"])
            .arg(&file)
            .args(["udp", "port", &SYNC_PORT.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("start tcpdump")?;
        let mut cap = Capture {
            child: Some(child),
            file,
        };
        // tcpdump writes the file header once it listens.
        wait(Duration::from_secs(5), "tcpdump listening", || {
            fs::metadata(&cap.file).is_ok_and(|m| m.len() >= 24)
        })?;
        std::thread::sleep(Duration::from_millis(200));
        if let Some(c) = cap.child.as_mut() {
            ensure!(matches!(c.try_wait(), Ok(None)), "tcpdump exited");
        }
        Ok(cap)
    }

    fn stop(mut self) -> Result<Captured> {
        std::thread::sleep(Duration::from_millis(200));
        if let Some(c) = self.child.take() {
            let pid = c.id();
            let _ = Command::new("kill")
                .args(["-INT", &pid.to_string()])
                .status();
            let mut c = c;
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline && matches!(c.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        let data = fs::read(&self.file)?;
        parse_pcap(&data)
    }
}

/// Datagrams and UDP payload bytes of a classic pcap file (Ethernet or Linux cooked
/// capture v1/v2, IPv4).
fn parse_pcap(data: &[u8]) -> Result<Captured> {
    ensure!(data.len() >= 24, "short pcap file");
    let magic = u32::from_le_bytes(data[0..4].try_into()?);
    let le = match magic {
        0xa1b2_c3d4 | 0xa1b2_3c4d => true,
        0xd4c3_b2a1 | 0x4d3c_b2a1 => false,
        _ => bail!("not a pcap file (magic {magic:#x})"),
    };
    let word = |b: &[u8]| -> u32 {
        let a: [u8; 4] = b.try_into().unwrap_or_default();
        if le {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        }
    };
    let link = match word(&data[20..24]) {
        1 => 14,   // Ethernet
        113 => 16, // Linux cooked capture (tcpdump -i any)
        276 => 20, // Linux cooked capture v2
        other => bail!("pcap link type {other}"),
    };
    let mut off = 24;
    let mut out = Captured {
        datagrams: 0,
        payload_bytes: 0,
    };
    while off + 16 <= data.len() {
        let incl = word(&data[off + 8..off + 12]) as usize;
        let orig = word(&data[off + 12..off + 16]) as u64;
        out.datagrams += 1;
        out.payload_bytes += orig.saturating_sub(link + 20 + 8);
        off += 16 + incl;
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------
// 4. Flows kept

/// One run of a case: the connections from before the change and from after it, as
/// they stand 1 s after the router's route changed.
fn kept_case(
    lb_conns: &Path,
    event: Event,
    sync: bool,
    run: usize,
) -> Result<(Vec<ConnState>, Vec<ConnState>)> {
    let before = [true, true, false];
    let after = [true; 3];
    let running: &[&str] = if event == Event::Joins {
        &["lb1", "lb2"]
    } else {
        &NODES
    };
    let tag = format!(
        "k{}{}{run}",
        match event {
            Event::Dies => "d",
            Event::Drains => "r",
            Event::Joins => "j",
        },
        if sync { "s" } else { "n" }
    );
    let mut lab = lab_with(&tag, lb_conns, running, before, sync)?;
    let (mut old, opened) = Held::start(&lab, lb_conns, 31000 + 100 * run as u16, OLD_CONNS)?;
    ensure!(
        opened.iter().all(|c| c.broken.is_none()),
        "connections failed to open: {}",
        tally(&opened)
    );
    old.phase("change")?;
    write_configs(&lab, after, sync)?;
    reload(&lab, running, after)?;
    let (mut new, opened_new) = Held::start(&lab, lb_conns, 33000 + 100 * run as u16, NEW_CONNS)?;
    ensure!(
        opened_new.iter().all(|c| c.broken.is_none()),
        "connections failed to open after the change: {}",
        tally(&opened_new)
    );
    std::thread::sleep(Duration::from_secs(1));
    let _ = old.check("settled")?;
    for h in [&mut old, &mut new] {
        h.phase("event")?;
    }
    let routed = |lab: &EcmpLab| -> String {
        let mut per: BTreeMap<String, usize> = BTreeMap::new();
        for c in opened.iter().chain(&opened_new) {
            *per.entry(lab.router_choice(c.port, 80).unwrap_or_default())
                .or_insert(0) += 1;
        }
        format!("{per:?}")
    };
    let via_before = routed(&lab);
    match event {
        Event::Dies => {
            lab.node_down("lb1");
            wait_route(&lab, &["lb2", "lb3"], ROUTE_WAIT)?;
        }
        Event::Drains => {
            lbctl_ok(&lab, "lb1", &["drain"])?;
            wait_route(&lab, &["lb2", "lb3"], ROUTE_WAIT)?;
        }
        Event::Joins => {
            lab.start_bird("lb3");
            lab.start_lbd("lb3");
            wait_route(&lab, &NODES, ROUTE_WAIT)?;
        }
    }
    std::thread::sleep(Duration::from_secs(1));
    let old_now = old.check("final")?;
    let new_now = new.check("final")?;
    eprintln!(
        "ecmp: {} ({} [sync]) run {run}: routed {via_before} -> {}; from before the change: {}; after: {}",
        event.name(),
        if sync { "with" } else { "without" },
        routed(&lab),
        tally(&old_now),
        tally(&new_now)
    );
    Ok((old_now, new_now))
}

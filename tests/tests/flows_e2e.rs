//! Per-protocol timeouts and the flood guard, end to end, as root, in network
//! namespaces (tests/src/lab.rs: a client, the LB node "lb" running the real lbd with
//! XDP in driver mode, backends b1..b3 on one bridge). Each case builds its own lab and
//! removes it, also on failure; the cases run one at a time (they share two cores).
//!
//! 1. `udp_flows_rebalance_after_the_udp_timeout`: a UDP service (VIP:5353, Maglev
//!    table of 251 slots, `timeout_udp = "3s"`) over b1 and b2, each backend running a
//!    UDP responder that answers with its name. The client sends a continuous stream of
//!    new flows (one datagram from each fresh source port, about 400 a second) and 20
//!    long-lived flows (fixed source ports, a datagram every 100 ms each). b3 is added
//!    by reload. Right after the change the moved slots keep the flows that predate it
//!    on their previous backend, and a new UDP flow cannot be told from an old one, so
//!    b3 gets (almost) nothing; once the change is a UDP timeout old, lbd settles the
//!    slots: those no live flow needs are cleaned, those a live flow holds send
//!    untracked flows to their current backend. Asserted: the share of new flows b3
//!    answers reaches 20% (its weight share is a third) within 30 s, the moved slots
//!    are cleaned down to the ones the long-lived flows hold, and every long-lived flow,
//!    including those on moved slots, is answered by one backend throughout.
//! 2. `a_flood_does_not_break_established_connections`: `conn_table_size = 1024` (so
//!    the flood guard allows 64 new entries per CPU per second), a TCP service
//!    (VIP:8080) over b1 and b2, 8 long-lived connections (the `lb-conns` helper, a line
//!    exchanged every 200 ms on each); b3 added by reload; 10 more connections opened
//!    after the change, at least 3 of them on b3 (slots that moved: tracked in the
//!    connection table, and sent to the slot's previous backend, which would reset
//!    them, if their entries were lost). Then spoofed flows from random sources in
//!    198.18.0.0/15 are sent from the client with AF_PACKET: 40000 flows of two ACKs,
//!    then 40000 flows of a SYN and an ACK. Asserted: all 18 connections keep
//!    exchanging data with their backend through the floods, and the flood guard
//!    refused entries (`conntrack_flood_refused` > 0 in `lbctl --json status`).
//!    Set `LB_FLOWS_E2E_INSERT_LIMIT=100000000` to run it with the guard out of the way
//!    (`conn_insert_limit` that high): the flood then churns the 1024-entry table and
//!    the connections opened on b3 after the change are reset (4 of 18 here).

use std::{
    collections::{BTreeMap, BTreeSet, VecDeque},
    net::{SocketAddr, UdpSocket},
    path::Path,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex, MutexGuard,
    },
    time::{Duration, Instant},
};

use lb_api::control::{Request, Response};
use lb_tests::{
    conns::{tally, Holder},
    flood::{tcp_frame, RawSocket, TCP_ACK, TCP_SYN},
    lab::{wait_until, Lab, BACKENDS, CLIENT, VIP},
};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The helper that holds TCP connections (client) and serves them (backends).
const LB_CONNS: &str = env!("CARGO_BIN_EXE_lb-conns");

/// Name ("b1".."b3") of a backend address.
fn name_of(address: &str) -> String {
    BACKENDS
        .iter()
        .position(|a| *a == address)
        .map(|i| format!("b{}", i + 1))
        .unwrap_or_else(|| address.to_string())
}

/// A service `name` on VIP:`port`/`protocol` over the backends marked in `members`
/// (weight 1 each), without health checks (every configured backend is up), so only
/// the changes the test makes move slots.
fn service(name: &str, port: u16, protocol: &str, members: [bool; 3]) -> String {
    let mut s = format!(
        "[[service]]\nname = \"{name}\"\nvip = \"{VIP}\"\nport = {port}\nprotocol = \"{protocol}\"\n\n\
         [service.health]\nkind = \"none\"\n\n"
    );
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

/// The service `name` as node "lb" lists it.
fn listed(lab: &Lab, name: &str) -> Option<lb_api::view::ServiceView> {
    match lab.ask(Request::List)? {
        Response::List { services } => services
            .into_iter()
            .find(|s| s.name.as_deref() == Some(name)),
        _ => None,
    }
}

/// Wait until the data plane has service `name` with exactly the backends in
/// `members` up and holding slots.
fn wait_table(lab: &Lab, name: &str, members: [bool; 3]) {
    wait_until(
        Duration::from_secs(20),
        &format!("service {name} with backends {members:?} in the data plane"),
        || {
            let Some(s) = listed(lab, name) else {
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
    );
}

/// The service's dirty slots (moved by a change, not settled yet).
fn dirty_slots(lab: &Lab, name: &str) -> usize {
    listed(lab, name).map_or(usize::MAX, |s| s.dirty_slots)
}

/// What node "lb" says about the flow from CLIENT:`port` to VIP:`vip_port`: (backend
/// name, slot, reason). `syn`: as a new connection (for a dirty slot, its current
/// backend).
fn explain(
    lab: &Lab,
    port: u16,
    vip_port: u16,
    protocol: &str,
    syn: bool,
) -> (String, u32, String) {
    let request = Request::Explain {
        src: SocketAddr::new(CLIENT.parse().expect("client"), port),
        dst: SocketAddr::new(VIP.parse().expect("vip"), vip_port),
        protocol: protocol.into(),
        syn,
    };
    match lab.ask(request) {
        Some(Response::Explain(view)) => (
            view.backend
                .map(|b| name_of(&b.to_string()))
                .unwrap_or_else(|| format!("none ({})", view.verdict)),
            view.slot.unwrap_or(u32::MAX),
            view.reason,
        ),
        other => panic!("explain {port}: {other:?}"),
    }
}

/// Sets the flag on drop: stops a traffic thread also when the test fails.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

// ---------------------------------------------------------------------------------
// 1. UDP

/// The UDP service's port.
const UDP_PORT: u16 = 5353;
/// Source ports of the long-lived UDP flows.
const LONG_PORTS: std::ops::Range<u16> = 61000..61020;
/// Source ports the new flows take, each once, in order.
const FRESH_PORTS: std::ops::Range<u16> = 20000..60000;
/// New flows started per second.
const FRESH_PER_SEC: u64 = 400;
/// A new flow with no answer after this is counted lost.
const LOSS_AFTER: Duration = Duration::from_secs(1);
/// The longest the UDP traffic runs, whatever happens.
const UDP_TRAFFIC_MAX: Duration = Duration::from_secs(100);

/// What the client's UDP traffic saw.
#[derive(Default)]
struct UdpLog {
    /// New flows sent.
    sent: u64,
    /// New flows answered: when, and by which backend.
    answered: Vec<(Instant, String)>,
    /// New flows not answered within [`LOSS_AFTER`].
    lost: u64,
    /// Per long-lived source port: its answers (when, which backend).
    long: BTreeMap<u16, Vec<(Instant, String)>>,
    /// Datagrams sent per long-lived flow.
    long_sent: u64,
    /// Answers that did not echo what was sent, or socket errors.
    odd: Vec<String>,
}

impl UdpLog {
    /// New flows answered in `[from, to)`: (by b3, all).
    fn b3_share(&self, from: Instant, to: Instant) -> (usize, usize) {
        let window: Vec<_> = self
            .answered
            .iter()
            .filter(|(t, _)| *t >= from && *t < to)
            .collect();
        (
            window.iter().filter(|(_, b)| b == "b3").count(),
            window.len(),
        )
    }

    /// New flows answered per backend.
    fn per_backend(&self) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for (_, b) in &self.answered {
            *m.entry(b.clone()).or_insert(0) += 1;
        }
        m
    }
}

/// Read every waiting answer on `socket`; each must be `NAME <expected>`.
fn answers(
    socket: &UdpSocket,
    expected: impl Fn(&str) -> bool,
    odd: &mut Vec<String>,
) -> Vec<String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    // Bounded: a socket holds few datagrams.
    for _ in 0..64 {
        match socket.recv(&mut buf) {
            Ok(n) => {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                match text.split_once(' ') {
                    Some((who, what)) if expected(what) => got.push(who.to_string()),
                    _ => odd.push(format!("unexpected answer {text:?}")),
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => {
                odd.push(format!("recv: {e}"));
                break;
            }
        }
    }
    got
}

fn udp_socket(port: u16) -> std::io::Result<UdpSocket> {
    let s = UdpSocket::bind(("0.0.0.0", port))?;
    s.connect((VIP, UDP_PORT))?;
    s.set_nonblocking(true)?;
    Ok(s)
}

/// The client's UDP traffic (run inside the client namespace) until `stop` or
/// [`UDP_TRAFFIC_MAX`]: the long-lived flows send every 100 ms, and [`FRESH_PER_SEC`]
/// new flows a second each send one datagram from a port not used before.
fn udp_traffic(stop: Arc<AtomicBool>, log: Arc<Mutex<UdpLog>>) {
    let start = Instant::now();
    let long: Vec<(u16, UdpSocket)> = LONG_PORTS
        .map(|p| (p, udp_socket(p).expect("long-lived flow socket")))
        .collect();
    let mut pending: VecDeque<(u16, UdpSocket, Instant)> = VecDeque::new();
    let mut next_port = FRESH_PORTS.start;
    let mut fresh_sent = 0u64;
    let mut long_round = 0u64;
    let mut odd = Vec::new();
    while !stop.load(Ordering::Relaxed) && start.elapsed() < UDP_TRAFFIC_MAX {
        let now = Instant::now();
        let elapsed = now - start;
        // The long-lived flows, every 100 ms.
        if (elapsed.as_millis() / 100) as u64 >= long_round {
            long_round += 1;
            for (port, s) in &long {
                if let Err(e) = s.send(format!("L{port} {long_round}").as_bytes()) {
                    odd.push(format!("long-lived {port}: send: {e}"));
                }
            }
            log.lock().expect("log").long_sent = long_round;
        }
        // New flows, at most 20 per turn.
        let due = (elapsed.as_millis() as u64 * FRESH_PER_SEC / 1000).saturating_sub(fresh_sent);
        for _ in 0..due.min(20) {
            if next_port >= FRESH_PORTS.end {
                break;
            }
            let port = next_port;
            next_port += 1;
            fresh_sent += 1;
            match udp_socket(port).and_then(|s| s.send(format!("F{port}").as_bytes()).map(|_| s)) {
                Ok(s) => pending.push_back((port, s, now)),
                Err(e) => odd.push(format!("new flow from {port}: {e}")),
            }
        }
        // Answers.
        let mut lg = log.lock().expect("log");
        lg.sent = fresh_sent;
        for (port, s) in &long {
            let prefix = format!("L{port} ");
            for who in answers(s, |w| w.starts_with(&prefix), &mut odd) {
                lg.long.entry(*port).or_default().push((now, who));
            }
        }
        let mut still = VecDeque::with_capacity(pending.len());
        for (port, s, sent) in pending.drain(..) {
            let expected = format!("F{port}");
            let got = answers(&s, |w| w == expected, &mut odd);
            if let Some(who) = got.into_iter().next() {
                lg.answered.push((now, who));
            } else if now - sent > LOSS_AFTER {
                lg.lost += 1;
            } else {
                still.push_back((port, s, sent));
            }
        }
        pending = still;
        lg.odd.append(&mut odd);
        drop(lg);
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn udp_flows_rebalance_after_the_udp_timeout() {
    let _s = serial();
    let mut lab = Lab::up("fu");
    lab.start_udp_responders(UDP_PORT);
    let global = "maglev_table_size = 251\ntimeout_udp = \"3s\"\n";
    lab.write_config_with_global(
        "lb",
        global,
        &service("dns", UDP_PORT, "udp", [true, true, false]),
    );
    lab.start_lbd();
    wait_table(&lab, "dns", [true, true, false]);

    let stop = Arc::new(AtomicBool::new(false));
    let log = Arc::new(Mutex::new(UdpLog::default()));
    let traffic = lab.spawn_in("client", {
        let (stop, log) = (stop.clone(), log.clone());
        move || udp_traffic(stop, log)
    });
    let _stopper = StopOnDrop(stop.clone());
    let summary = |log: &UdpLog| {
        format!(
            "new flows sent {}, answered {} ({:?}), lost {}; odd: {:?}",
            log.sent,
            log.answered.len(),
            log.per_backend(),
            log.lost,
            log.odd.iter().take(5).collect::<Vec<_>>()
        )
    };

    // Before the change: new flows spread over b1 and b2, every long-lived flow
    // answered.
    wait_until(
        Duration::from_secs(20),
        "300 new flows and every long-lived flow answered",
        || {
            let l = log.lock().expect("log");
            l.answered.len() >= 300 && l.long.len() == LONG_PORTS.len()
        },
    );
    {
        let l = log.lock().expect("log");
        let per = l.per_backend();
        assert!(
            per.contains_key("b1") && per.contains_key("b2") && !per.contains_key("b3"),
            "before the change: {}",
            summary(&l)
        );
    }

    // b3 added by reload.
    lab.write_config_with_global(
        "lb",
        global,
        &service("dns", UDP_PORT, "udp", [true, true, true]),
    );
    let changed = Instant::now();
    let answer = lab.ask(Request::Reload);
    assert!(
        matches!(answer, Some(Response::Done { .. })),
        "reload: {answer:?}"
    );
    wait_table(&lab, "dns", [true, true, true]);
    let dirty_after_change = dirty_slots(&lab, "dns");
    assert!(
        dirty_after_change > 0 && dirty_after_change != usize::MAX,
        "adding b3 moved no slot: {dirty_after_change}"
    );

    // The long-lived flows whose slot moved to b3: they predate the change and must
    // stay on their backend, which is not the slot's current one.
    let first_backend: BTreeMap<u16, String> = {
        let l = log.lock().expect("log");
        l.long.iter().map(|(p, a)| (*p, a[0].1.clone())).collect()
    };
    let mut moved: BTreeMap<u16, (String, u32)> = BTreeMap::new();
    for port in LONG_PORTS {
        let (current, slot, _) = explain(&lab, port, UDP_PORT, "udp", true);
        if current != first_backend[&port] {
            moved.insert(port, (current, slot));
        }
    }
    let held_slots: BTreeSet<u32> = moved.values().map(|(_, s)| *s).collect();
    eprintln!(
        "after the change: {dirty_after_change} dirty slots; long-lived flows on moved slots: {:?}",
        moved
            .iter()
            .map(|(p, (cur, slot))| format!("{p} ({} -> {cur}, slot {slot})", first_backend[p]))
            .collect::<Vec<_>>()
    );
    assert!(
        !moved.is_empty(),
        "no long-lived flow is on a slot that moved (the case would prove nothing)"
    );

    // New flows: b3's share reaches its weight share once the change is a UDP timeout
    // old (judged over the last second of answers).
    let mut first_second = None;
    wait_until(
        Duration::from_secs(30),
        "b3 answering at least 20% of the new flows of the last second",
        || {
            let now = Instant::now();
            let l = log.lock().expect("log");
            if first_second.is_none() && now - changed >= Duration::from_secs(1) {
                first_second = Some(l.b3_share(changed, changed + Duration::from_secs(1)));
            }
            let (b3, all) = l.b3_share(now - Duration::from_secs(1), now);
            all >= 50 && b3 * 5 >= all
        },
    );
    let rebalanced_after = changed.elapsed();
    {
        let l = log.lock().expect("log");
        let now = Instant::now();
        eprintln!(
            "b3's share of new flows: {:?} in the first second after the change, {:?} in the \
             last second; reached 20% after {rebalanced_after:?} (timeout_udp 3s); {}",
            first_second,
            l.b3_share(now - Duration::from_secs(1), now),
            summary(&l)
        );
    }

    // The moved slots no live flow needs are cleaned: only those the long-lived flows on
    // moved slots hold stay dirty.
    wait_until(
        Duration::from_secs(30),
        "the moved slots cleaned down to those the long-lived flows hold",
        || dirty_slots(&lab, "dns") <= held_slots.len(),
    );
    let cleaned_at = Instant::now();
    eprintln!(
        "dirty slots down to {} (the long-lived flows hold {}) after {:?}",
        dirty_slots(&lab, "dns"),
        held_slots.len(),
        changed.elapsed()
    );
    // Traffic goes on a moment after the clean-up, then stops.
    wait_until(
        Duration::from_secs(20),
        "every long-lived flow answered after the clean-up",
        || {
            let l = log.lock().expect("log");
            l.long
                .values()
                .all(|a| a.iter().filter(|(t, _)| *t > cleaned_at).count() >= 10)
        },
    );
    stop.store(true, Ordering::Relaxed);
    traffic.join().expect("the UDP traffic thread");
    {
        let l = log.lock().expect("log");
        eprintln!(
            "b3's share of new flows after the clean-up: {:?}",
            l.b3_share(cleaned_at, Instant::now())
        );
    }

    let l = log.lock().expect("log");
    // Every long-lived flow answered by one backend throughout.
    let mut split = Vec::new();
    for (port, answers) in &l.long {
        let backends: BTreeSet<&str> = answers.iter().map(|(_, b)| b.as_str()).collect();
        if backends.len() != 1 {
            let mut changes = Vec::new();
            let mut last = "";
            for (t, b) in answers {
                if b != last {
                    let at = if *t >= changed {
                        (*t - changed).as_secs_f64()
                    } else {
                        -(changed - *t).as_secs_f64()
                    };
                    changes.push(format!("{b} from {at:+.1}s"));
                    last = b;
                }
            }
            split.push(format!(
                "  {port}{}: {}",
                if moved.contains_key(port) {
                    " (moved slot)"
                } else {
                    ""
                },
                changes.join(", ")
            ));
        }
    }
    assert!(
        split.is_empty(),
        "long-lived UDP flows answered by more than one backend (times relative to the \
         change):\n{}",
        split.join("\n")
    );
    // The moved ones are still tracked on their backend, not the slot's.
    for (port, (current, _)) in &moved {
        let (now, _, reason) = explain(&lab, *port, UDP_PORT, "udp", false);
        assert_eq!(
            now, first_backend[port],
            "long-lived flow {port} (slot moved to {current}): lbd now maps it to {now} ({reason})"
        );
    }
    assert!(
        l.odd.is_empty(),
        "odd answers or socket errors: {:?}",
        l.odd.iter().take(10).collect::<Vec<_>>()
    );
    eprintln!("{}", summary(&l));
}

// ---------------------------------------------------------------------------------
// 2. TCP and the flood guard

/// The TCP service's port (the backends' `lb-conns serve` listens on it too).
const TCP_PORT: u16 = 8080;
/// Connections opened before the change, from this port on (a window where, with the
/// default hash seed, 5 of the 8 are on slots that move to b3).
const BEFORE_FIRST: u16 = 42014;
const BEFORE_COUNT: u16 = 8;
/// Connections opened after the change (a window of ports with at least 3 on b3).
const AFTER_COUNT: u16 = 10;
/// Spoofed flows per flood.
const FLOOD_FLOWS: u32 = 40_000;
/// Frames per second the flood sender aims at.
const FLOOD_PPS: u64 = 40_000;
/// The longest one flood may take.
const FLOOD_MAX: Duration = Duration::from_secs(20);

/// xorshift64*: the spoofed sources need no more.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[derive(Clone, Copy, Debug)]
enum Flood {
    /// Two ACKs per flow (mid-connection packets of flows nobody knows).
    AckAck,
    /// A SYN, then an ACK per flow.
    SynAck,
}

/// What a flood sent.
struct FloodReport {
    flows: u32,
    frames: u64,
    send_errors: u64,
    took: Duration,
}

impl std::fmt::Display for FloodReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} flows, {} frames sent ({} send errors) in {:.1?}",
            self.flows, self.frames, self.send_errors, self.took
        )
    }
}

/// Send `flows` spoofed flows of kind `kind` to VIP:TCP_PORT out of the client's
/// eth0 (run inside the client namespace), addressed to the LB's MAC, at about
/// [`FLOOD_PPS`], for at most [`FLOOD_MAX`]. Sources: random addresses in
/// 198.18.0.0/15 (the backends have no route back: no backscatter) and random ports.
fn flood(kind: Flood, flows: u32, client_mac: [u8; 6], lb_mac: [u8; 6], seed: u64) -> FloodReport {
    let raw = RawSocket::open("eth0").unwrap_or_else(|e| panic!("{e:#} (in the client namespace)"));
    let vip: [u8; 4] = VIP.parse::<std::net::Ipv4Addr>().expect("vip").octets();
    let mut rng = Rng(seed | 1);
    let start = Instant::now();
    let (mut frames, mut send_errors, mut done) = (0u64, 0u64, 0u32);
    // Batches of 64 flows: every flow's first packet, then every flow's second, so the
    // second finds whatever the first left in the connection table.
    const BATCH: u32 = 64;
    while done < flows && start.elapsed() < FLOOD_MAX {
        let n = BATCH.min(flows - done);
        let batch: Vec<([u8; 4], u16, u32)> = (0..n)
            .map(|_| {
                let r = rng.next();
                let src = [198, 18 + (r & 1) as u8, (r >> 8) as u8, (r >> 16) as u8];
                let sport = 1024 + ((r >> 24) as u16 % 64000);
                (src, sport, (r >> 40) as u32)
            })
            .collect();
        for second in [false, true] {
            for (src, sport, seq) in &batch {
                let (flags, seq) = match (kind, second) {
                    (Flood::AckAck, false) => (TCP_ACK, *seq),
                    (Flood::AckAck, true) => (TCP_ACK, seq.wrapping_add(1)),
                    (Flood::SynAck, false) => (TCP_SYN, *seq),
                    (Flood::SynAck, true) => (TCP_ACK, seq.wrapping_add(1)),
                };
                let frame = tcp_frame(client_mac, lb_mac, *src, vip, *sport, TCP_PORT, seq, flags);
                if raw.send(&frame) {
                    frames += 1;
                } else {
                    send_errors += 1;
                }
            }
        }
        done += n;
        // Pace: no faster than FLOOD_PPS.
        let ahead =
            Duration::from_micros(frames * 1_000_000 / FLOOD_PPS).saturating_sub(start.elapsed());
        if !ahead.is_zero() {
            std::thread::sleep(ahead);
        }
    }
    FloodReport {
        flows: done,
        frames,
        send_errors,
        took: start.elapsed(),
    }
}

/// `conntrack_flood_refused` as `lbctl --json status` shows it.
fn refused_per_lbctl(lab: &Lab) -> u64 {
    let out = lab.lbctl(&["--json", "status"]);
    assert!(
        out.status.success(),
        "lbctl --json status: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("lbctl --json status is JSON");
    json["counters"]
        .as_array()
        .and_then(|c| {
            c.iter().find_map(|pair| {
                (pair[0] == "conntrack_flood_refused")
                    .then(|| pair[1].as_u64())
                    .flatten()
            })
        })
        .unwrap_or_else(|| panic!("no conntrack_flood_refused in lbctl --json status: {json}"))
}

/// Selected outcome counters of node "lb", for the report.
fn counters(lab: &Lab) -> String {
    [
        "forwarded_tx",
        "conntrack_hit",
        "conntrack_miss",
        "conntrack_rebalanced",
        "conntrack_insert_failed",
        "conntrack_flood_refused",
    ]
    .iter()
    .map(|n| {
        format!(
            "{n} {}",
            lab.counter_on("lb", n)
                .map_or("?".into(), |v| v.to_string())
        )
    })
    .collect::<Vec<_>>()
    .join(", ")
}

/// The tracked connections of the TCP service from the client: client port ->
/// backend name.
fn tracked(lab: &Lab) -> BTreeMap<u16, String> {
    match lab.ask(Request::Conns { limit: 1 << 20 }) {
        Some(Response::Conns { conns }) => conns
            .into_iter()
            .filter(|c| c.client.ip().to_string() == CLIENT && c.vip.port() == TCP_PORT)
            .map(|c| {
                (
                    c.client.port(),
                    c.backend
                        .map(|b| name_of(&b.to_string()))
                        .unwrap_or_else(|| format!("index {}", c.backend_index)),
                )
            })
            .collect(),
        other => panic!("conns: {other:?}"),
    }
}

#[test]
fn a_flood_does_not_break_established_connections() {
    let _s = serial();
    let mut lab = Lab::up("ff");
    lab.start_conn_servers(Path::new(LB_CONNS), TCP_PORT);
    let mut global = "conn_table_size = 1024\n".to_string();
    if let Ok(limit) = std::env::var("LB_FLOWS_E2E_INSERT_LIMIT") {
        global.push_str(&format!("conn_insert_limit = {limit}\n"));
    }
    let global = global.as_str();
    lab.write_config_with_global(
        "lb",
        global,
        &service("conns", TCP_PORT, "tcp", [true, true, false]),
    );
    lab.start_lbd();
    wait_table(&lab, "conns", [true, true, false]);

    // Connections from before the change.
    let (mut before, opened) = Holder::start(
        &lab,
        Path::new(LB_CONNS),
        TCP_PORT,
        BEFORE_FIRST,
        BEFORE_COUNT,
    )
    .expect("lb-conns hold");
    assert!(
        opened.len() == BEFORE_COUNT as usize && opened.iter().all(|c| c.broken.is_none()),
        "connections before the change: {opened:?}"
    );

    // b3 added by reload: a third of the slots move to it.
    before.phase("change").expect("lb-conns hold");
    lab.write_config_with_global(
        "lb",
        global,
        &service("conns", TCP_PORT, "tcp", [true, true, true]),
    );
    let answer = lab.ask(Request::Reload);
    assert!(
        matches!(answer, Some(Response::Done { .. })),
        "reload: {answer:?}"
    );
    wait_table(&lab, "conns", [true, true, true]);
    let dirty = dirty_slots(&lab, "conns");
    let after_change = before.check("after-change").expect("lb-conns hold");
    assert!(
        after_change.iter().all(|c| c.broken.is_none()),
        "connections broke at the change itself: {after_change:?}"
    );

    // Connections opened after the change, from a window of ports with at least 3 on b3
    // (new connections on moved slots: only their entries keep them on b3).
    let after_first = (0..200u16)
        .map(|i| 43000 + i * AFTER_COUNT)
        .find(|first| {
            (*first..first + AFTER_COUNT)
                .filter(|p| explain(&lab, *p, TCP_PORT, "tcp", true).0 == "b3")
                .count()
                >= 3
        })
        .expect("a window of client ports with 3 new connections on b3");
    let (mut after, opened_after) = Holder::start(
        &lab,
        Path::new(LB_CONNS),
        TCP_PORT,
        after_first,
        AFTER_COUNT,
    )
    .expect("lb-conns hold");
    assert!(
        opened_after.len() == AFTER_COUNT as usize
            && opened_after.iter().all(|c| c.broken.is_none()),
        "connections after the change: {opened_after:?}"
    );
    let on_b3: Vec<u16> = opened_after
        .iter()
        .filter(|c| c.backend == "b3")
        .map(|c| c.port)
        .collect();
    assert!(on_b3.len() >= 3, "new connections on b3: {opened_after:?}");
    // Which connections the table tracks (those on moved slots), once each has sent.
    before.check("tracked").expect("lb-conns hold");
    after.check("tracked").expect("lb-conns hold");
    let moved_before: Vec<u16> = after_change
        .iter()
        .filter(|c| explain(&lab, c.port, TCP_PORT, "tcp", true).0 != c.backend)
        .map(|c| c.port)
        .collect();
    let table = tracked(&lab);
    eprintln!(
        "after the change: {dirty} dirty slots; connections before it on moved slots {moved_before:?}, \
         after it on b3 {on_b3:?}; tracked {table:?}"
    );
    assert!(
        !moved_before.is_empty(),
        "no connection from before the change is on a slot that moved (the flow hash or \
         Maglev changed? pick another BEFORE_FIRST): {after_change:?}"
    );
    for port in on_b3.iter().chain(&moved_before) {
        assert!(
            table.contains_key(port),
            "connection from {port} on a moved slot is not tracked: {table:?}"
        );
    }
    let refused_before = lab
        .counter_on("lb", "conntrack_flood_refused")
        .expect("counter");
    eprintln!("before the floods: {}", counters(&lab));

    // The floods, the connections exchanging data all along.
    let client_mac = lab.mac_of("client", "eth0");
    let lb_mac = lab.mac_of("lb", "eth0");
    let mut refused = refused_before;
    let mut reports = Vec::new();
    let mut refused_by_flood = Vec::new();
    for (i, kind) in [Flood::AckAck, Flood::SynAck].into_iter().enumerate() {
        let phase = format!("flood-{kind:?}");
        before.phase(&phase).expect("lb-conns hold");
        after.phase(&phase).expect("lb-conns hold");
        let report = lab
            .spawn_in("client", move || {
                flood(kind, FLOOD_FLOWS, client_mac, lb_mac, 0x5eed + i as u64)
            })
            .join()
            .expect("the flood thread");
        let now = lab
            .counter_on("lb", "conntrack_flood_refused")
            .expect("counter");
        eprintln!("{kind:?} flood: {report}; {}", counters(&lab));
        assert!(
            report.flows == FLOOD_FLOWS && report.send_errors == 0,
            "the {kind:?} flood was not sent whole: {report}"
        );
        refused_by_flood.push((kind, now - refused));
        refused = now;
        reports.push(report);
        let mid = format!("after-{phase}");
        before.check(&mid).expect("lb-conns hold");
        after.check(&mid).expect("lb-conns hold");
    }
    before.phase("end").expect("lb-conns hold");
    after.phase("end").expect("lb-conns hold");
    std::thread::sleep(Duration::from_secs(1));
    let mut last = before.check("final").expect("lb-conns hold");
    last.extend(after.check("final").expect("lb-conns hold"));
    before.send("quit").expect("lb-conns hold");
    after.send("quit").expect("lb-conns hold");

    let broken: Vec<String> = last
        .iter()
        .filter_map(|c| {
            let (phase, reason) = c.broken.as_ref()?;
            Some(format!(
                "  client port {} on {}{}: broken in phase {phase} ({reason}); lbd maps it to {} now",
                c.port,
                c.backend,
                if on_b3.contains(&c.port) || moved_before.contains(&c.port) {
                    " (moved slot)"
                } else {
                    ""
                },
                explain(&lab, c.port, TCP_PORT, "tcp", false).0
            ))
        })
        .collect();
    assert!(
        broken.is_empty(),
        "{} of {} connections broke during the floods ({}; {}; still tracked: {:?}):\n{}",
        broken.len(),
        last.len(),
        tally(&last),
        counters(&lab),
        tracked(&lab),
        broken.join("\n")
    );
    assert_eq!(
        last.len(),
        (BEFORE_COUNT + AFTER_COUNT) as usize,
        "every connection reported"
    );
    // The guard did refuse entries: each flood was one.
    for (kind, n) in &refused_by_flood {
        assert!(
            *n > 0,
            "the flood guard refused nothing during the {kind:?} flood ({})",
            counters(&lab)
        );
    }
    let per_lbctl = refused_per_lbctl(&lab);
    assert!(
        per_lbctl > 0,
        "lbctl --json status shows no conntrack_flood_refused"
    );
    eprintln!(
        "all {} connections kept ({}); floods: {}; {}",
        last.len(),
        tally(&last),
        reports
            .iter()
            .map(|r| r.to_string())
            .collect::<Vec<_>>()
            .join("; "),
        counters(&lab)
    );
}

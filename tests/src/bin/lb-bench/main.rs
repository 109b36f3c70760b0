//! `cargo xtask bench`: per-packet cost of each data-plane path through
//! BPF_PROG_TEST_RUN, each next to the MAC-swap baseline and the XDP_PASS floor
//! measured in the same run (one hot flow, and 1M flows rotating through the
//! bench object's rotator), and control-plane figures (Maglev build time, slots moved). Writes `report.md`
//! and `report.json` (machine, kernel, min/median/max per figure) to `--out`.
//! Needs root. Numbers are reported, never asserted.

mod bpfstats;
mod controller;
mod ecmp;
mod maglev;
mod observers;
mod proxies;
mod rate;
mod sync;

use std::{fmt::Write as _, fs, path::PathBuf, time::Instant};

use anyhow::{Context, Result};
use clap::Parser;
use lb_common::maps::{outcome, proto, BACKEND_DRAINING, BACKEND_UP};
use lb_dataplane::{
    testing::{BenchProgram, BenchPrograms},
    Dataplane,
};
use lb_tests::{packet::Packet, Fixture};
use serde_json::json;

#[derive(Parser)]
#[command(about = "Data-plane and control-plane benchmarks")]
struct Args {
    /// Fewer repetitions: checks the harness runs (CI), numbers are rough.
    #[arg(long)]
    quick: bool,
    /// Run only the sections whose name contains this (packet, maglev, scale, rate,
    /// proxies, control, observers, backend, vrrp, sync, ecmp).
    #[arg(long)]
    only: Option<String>,
    /// Output directory for report.md and report.json.
    #[arg(long, default_value = "bench-results")]
    out: PathBuf,
}

/// The median of samples (at least one).
fn median(v: Vec<f64>) -> f64 {
    stats(v).1
}

/// min, median, max of samples.
fn stats(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    (v[0], v[v.len() / 2], v[v.len() - 1])
}

/// One reported figure: min / median / max of its samples, and its median as a
/// multiple of what it is compared with, if anything.
struct Figure {
    name: String,
    unit: &'static str,
    min: f64,
    median: f64,
    max: f64,
    ratio: Option<f64>,
    /// Per-packet figures: median - floor, the program's own cost above the XDP_PASS
    /// floor (the test harness's own per-run work), in ns.
    above_floor: Option<f64>,
    /// Per-packet figures: (median - floor) / (baseline - floor), the cost above the
    /// floor as a multiple of the baseline's; `None` where the baseline is too close to
    /// the floor to divide by.
    net_ratio: Option<f64>,
    note: String,
}

impl Figure {
    /// A figure from its samples (at least one).
    fn new(name: String, unit: &'static str, samples: Vec<f64>, note: String) -> Figure {
        let (min, median, max) = stats(samples);
        Figure {
            name,
            unit,
            min,
            median,
            max,
            ratio: None,
            above_floor: None,
            net_ratio: None,
            note,
        }
    }

    /// A per-packet figure next to the MAC-swap baseline (median `swap`) and the
    /// XDP_PASS floor (median `floor`), both measured in the same run: the raw ratio,
    /// and the ratio net of the floor when the baseline is at least
    /// [`MIN_NET_DENOMINATOR_NS`] above it (the kernel reports whole nanoseconds).
    fn vs_floor(self, swap: f64, floor: f64) -> Figure {
        let mut f = self.vs(swap);
        f.above_floor = Some(f.median - floor);
        let denominator = swap - floor;
        f.net_ratio =
            (denominator >= MIN_NET_DENOMINATOR_NS).then(|| (f.median - floor) / denominator);
        f
    }

    /// Compared with something whose median is `base` (no ratio if `base` is 0).
    fn vs(mut self, base: f64) -> Figure {
        self.ratio = (base > 0.0).then(|| self.median / base);
        self
    }
}

/// The least (MAC swap - floor) a net ratio is computed with, in ns: below it, one
/// nanosecond of rounding (the kernel reports whole nanoseconds) would swing the ratio
/// by a third or more.
const MIN_NET_DENOMINATOR_NS: f64 = 3.0;

/// What a per-packet figure times: the balancer, or a program of the bench object
/// (the MAC-swap baseline, the XDP_PASS floor; never shipped in lbd's object).
#[derive(Clone, Copy)]
enum Timed<'a> {
    Lb(&'a Dataplane),
    Bench(&'a BenchPrograms, BenchProgram),
}

/// A client port whose new TCP flow 192.0.2.1:port -> 198.51.100.10:80 goes to
/// `backend`, by the selection the program runs (lbctl explain's).
fn flow_on(f: &Fixture, backend: u16) -> Result<u16> {
    (1000..60000u16)
        .find(|p| {
            let flow = lb_tests::flow(&format!("192.0.2.1:{p}"), "198.51.100.10:80", proto::TCP);
            matches!(
                lb_dataplane::explain::explain(&f.dp, &flow, true),
                Ok(lb_dataplane::explain::Explanation::Forward { choice, .. }) if choice.backend == backend
            )
        })
        .context("a flow on the backend")
}

fn per_packet(timed: Timed<'_>, frame: &[u8], repeat: u32, runs: usize) -> Result<Vec<f64>> {
    (0..runs)
        .map(|_| {
            let out = match timed {
                Timed::Lb(dp) => dp.test_run(frame, repeat)?,
                Timed::Bench(bench, program) => bench.test_run(program, frame, repeat)?,
            };
            Ok(out.duration_ns as f64)
        })
        .collect()
}

fn main() -> Result<()> {
    let args = Args::parse();
    let (repeat, runs) = if args.quick {
        (20_000, 3)
    } else {
        (2_000_000, 7)
    };
    let mut figures = Vec::new();
    let want = |section: &str| {
        args.only
            .as_deref()
            .is_none_or(|only| section.contains(only))
    };

    // ---- per-packet cost ----
    if want("packet") {
        let mut f = Fixture::new();
        let bench = BenchPrograms::load()?;
        for i in 0..3 {
            f.backend_state(i, BACKEND_UP, 1);
            f.loop_back_mac(i);
        }
        let all = [(0u16, 1u32), (1, 1), (2, 1)];
        f.service("198.51.100.10", 80, proto::TCP, 0, 0, &all);
        f.service("198.51.100.10", 53, proto::UDP, 1, 0, &all);
        f.service("2001:db8::10", 443, proto::TCP, 2, 0, &all);

        let syn = Packet::tcp("192.0.2.1:40000", "198.51.100.10:80")
            .syn()
            .build();
        let seg = Packet::tcp("192.0.2.1:40000", "198.51.100.10:80")
            .payload(&[0; 64])
            .build();
        let udp = Packet::udp("192.0.2.1:40000", "198.51.100.10:53")
            .payload(&[0; 64])
            .build();
        let v6 = Packet::tcp("[2001:db8:1::1]:40000", "[2001:db8::10]:443").build();
        let other = Packet::tcp("192.0.2.1:40000", "198.51.100.99:80").build();

        // The floor (a program that only returns XDP_PASS: what BPF_PROG_TEST_RUN
        // itself costs per run) and the MAC-swap baseline, each measured before and
        // after the balancer's figures, the samples pooled.
        let floor_samples =
            per_packet(Timed::Bench(&bench, BenchProgram::Pass), &syn, repeat, runs)?;
        let swap_samples = per_packet(
            Timed::Bench(&bench, BenchProgram::MacSwap),
            &syn,
            repeat,
            runs,
        )?;
        let mut lb_figures = Vec::new();
        // Each figure states the path its timed runs must take (the counters that may
        // move); the bench fails if they took another.
        let mut measure =
            |name: &str, frame: &[u8], note: &str, expect: &[&str], f: &Fixture| -> Result<()> {
                let before = f.dp.global_stats()?;
                let samples = per_packet(Timed::Lb(&f.dp), frame, repeat, runs)?;
                let after = f.dp.global_stats()?;
                let paths: Vec<&str> = (0..outcome::COUNT as usize)
                    .filter(|i| after[*i] > before[*i])
                    .map(|i| outcome::NAMES[i])
                    .collect();
                let mut want = expect.to_vec();
                want.sort_unstable();
                let mut got = paths.clone();
                got.sort_unstable();
                anyhow::ensure!(
                    got == want,
                    "{name}: the timed runs moved counters {paths:?}, expected {expect:?}"
                );
                lb_figures.push(Figure::new(
                    name.into(),
                    "ns/packet",
                    samples,
                    format!("{note}; counters moved: {}", paths.join(", ")),
                ));
                Ok(())
            };
        measure(
            "new TCP flow (SYN), clean slot",
            &syn,
            "Maglev slot, no connection-table access",
            &["forwarded_tx"],
            &f,
        )?;
        measure(
            "established TCP flow, clean slot",
            &seg,
            "no connection-table access",
            &["forwarded_tx"],
            &f,
        )?;
        measure("UDP datagram, clean slot", &udp, "", &["forwarded_tx"], &f)?;
        measure(
            "IPv6 TCP segment, clean slot",
            &v6,
            "",
            &["forwarded_tx"],
            &f,
        )?;
        measure(
            "non-VIP packet (XDP_PASS)",
            &other,
            "the VIP filter misses: no service lookup",
            &["passed_not_vip"],
            &f,
        )?;

        // Dirty slots: drain backend 2 so a third of slots move; pick flows on them.
        let moved = flow_on(&f, 2)?;
        f.backend_state(2, BACKEND_DRAINING, 1);
        f.loop_back_mac(2);
        f.service(
            "198.51.100.10",
            80,
            proto::TCP,
            0,
            0,
            &[(0, 1), (1, 1), (2, 0)],
        );
        let tracked = Packet::tcp(&format!("192.0.2.1:{moved}"), "198.51.100.10:80")
            .payload(&[0; 64])
            .build();
        f.run(&tracked); // first packet records the flow
        measure(
            "tracked TCP flow, dirty slot (connection-table hit)",
            &tracked,
            "after a drain",
            &["forwarded_tx", "conntrack_hit"],
            &f,
        )?;
        let dirty_syn = Packet::tcp(&format!("192.0.2.1:{moved}"), "198.51.100.10:80")
            .syn()
            .build();
        measure(
            "TCP SYN again, dirty slot (its connection-table entry rewritten)",
            &dirty_syn,
            "after a drain; one SYN repeated: after the first run an existing, unchanged \
             entry (a retransmitted SYN: no new entry, no event); the rotating SYN figure \
             below inserts",
            &["forwarded_tx"],
            &f,
        )?;
        let rotating = [
            rotating_flows(&args, repeat, runs, false)?,
            rotating_flows(&args, repeat, runs, true)?,
        ];

        let mut floor_samples = floor_samples;
        floor_samples.extend(per_packet(
            Timed::Bench(&bench, BenchProgram::Pass),
            &syn,
            repeat,
            runs,
        )?);
        let mut swap_samples = swap_samples;
        swap_samples.extend(per_packet(
            Timed::Bench(&bench, BenchProgram::MacSwap),
            &syn,
            repeat,
            runs,
        )?);
        let (floor, base) = (median(floor_samples.clone()), median(swap_samples.clone()));
        figures.push(
            Figure::new(
                "floor: XDP_PASS only".into(),
                "ns/packet",
                floor_samples,
                "what BPF_PROG_TEST_RUN costs per run with a program that does nothing; \
                 measured before and after the figures below"
                    .into(),
            )
            .vs(base),
        );
        figures.push(
            Figure::new(
                "baseline: MAC swap + XDP_TX".into(),
                "ns/packet",
                swap_samples,
                "minimal DR forwarder, same harness; measured before and after the figures below"
                    .into(),
            )
            .vs_floor(base, floor),
        );
        figures.extend(lb_figures.into_iter().map(|f| f.vs_floor(base, floor)));
        for r in rotating {
            let (rot_floor, rot_lb) = r.figures(floor);
            figures.push(rot_floor.vs(base));
            figures.push(rot_lb.vs_floor(base, floor));
        }
    }

    // ---- control plane: Maglev ----
    if want("maglev") {
        maglev::maglev(&args, repeat, runs, &mut figures)?;
    }
    if want("scale") {
        per_packet_scaling(&args, repeat, runs, &mut figures)?;
    }
    if want("rate") {
        rate::forwarding_rate(&args, &mut figures)?;
    }
    if want("proxies") {
        proxies::versus_proxies(&args, &mut figures)?;
    }
    if want("control") {
        control_plane(&args, runs, &mut figures)?;
        controller::lbd_at_scale(&args, &mut figures)?;
    }
    if want("observers") {
        observers::observers(&args, &mut figures)?;
    }
    if want("backend") {
        failover_of_a_backend(&args, &mut figures)?;
    }
    if want("vrrp") {
        vrrp_failover(&args, &mut figures)?;
    }
    if want("sync") {
        sync::flow_sync(&args, &mut figures)?;
    }
    if want("ecmp") {
        ecmp::ecmp(&args, &mut figures)?;
    }

    write_report(&args, repeat, runs, &figures)
}

/// The rotating-flows runs: the balancer behind the flow rotator, and the rotator in
/// front of the floor program.
struct Rotating {
    /// The balancer's figure: its name and what it measures.
    name: String,
    note: String,
    /// Rotator + tail call + balancer, per run.
    lb: Vec<f64>,
    /// Rotator + tail call + `lb_pass`, per run.
    floor: Vec<f64>,
}

impl Rotating {
    /// The rotating floor, and the balancer's figure net of the rotator: each run less
    /// the rotating floor's median, plus the plain floor's (`floor`), so it reads like
    /// the one-flow figures.
    fn figures(self, floor: f64) -> (Figure, Figure) {
        let rot_floor = median(self.floor.clone());
        let raw = median(self.lb.clone());
        let net: Vec<f64> = self.lb.iter().map(|x| x - rot_floor + floor).collect();
        (
            Figure::new(
                format!(
                    "floor for \"{}\": rotator + tail call + XDP_PASS",
                    self.name
                ),
                "ns/packet",
                self.floor,
                "what the rotating runs cost without the balancer".into(),
            ),
            Figure::new(
                self.name,
                "ns/packet",
                net,
                format!(
                    "{}; per run: rotator + balancer ({raw:.0} ns median) less the rotating \
                     floor ({rot_floor:.0} ns) plus the XDP_PASS floor",
                    self.note
                ),
            ),
        )
    }
}

/// Packets on dirty slots over many flows (1,048,576; 65,536 with `--quick`): the
/// bench object's rotator moves each run's frame to the next flow and tail-calls the
/// balancer. ACKs (`syn` false): the connection table holds every flow (a warm-up pass
/// records them), each packet a hit. SYNs: the table holds a sixteenth of the flows,
/// so each packet is a new entry (and an LRU eviction). The same frame through the
/// rotator into `lb_pass` is the floor to subtract. Each run repeats at least once per
/// flow.
fn rotating_flows(args: &Args, repeat: u32, runs: usize, syn: bool) -> Result<Rotating> {
    use lb_common::{
        bench::{Trailer, MAGIC},
        maps::ServiceKey,
    };
    use lb_dataplane::{Capacities, DataplaneOptions};

    let flows: u32 = if args.quick { 1 << 16 } else { 1 << 20 };
    let dp = Dataplane::load(&DataplaneOptions {
        pin_dir: None,
        capacities: Capacities {
            services: 8,
            backends: 64,
            conns: if syn { flows / 16 } else { flows * 2 },
            tx_ports: 8,
        },
    })?;
    let mut f = Fixture::from_dataplane(dp);
    let mut config = f.dp.config()?;
    config.insert_limit = 0;
    f.dp.set_config(&config)?;
    for i in 0..3 {
        f.backend_state(i, BACKEND_UP, 1);
        f.loop_back_mac(i);
    }
    f.service(
        "198.51.100.10",
        80,
        proto::TCP,
        0,
        0,
        &[(0, 1), (1, 1), (2, 1)],
    );
    // Every slot dirty, as right after a change and before settling (each slot's
    // previous backend is its current one, so a flow stays where it is).
    let key = ServiceKey {
        vip: lb_tests::words("198.51.100.10"),
        port: 80,
        proto: proto::TCP,
        _pad: 0,
    };
    let mut table = f.dp.service(&key)?.context("the service's table")?;
    let len = table.len() as usize;
    for e in &mut table.entries[..len] {
        e.prev = e.backend;
    }
    f.dp.set_service(&key, &table)?;

    let trailer = Trailer {
        magic: MAGIC,
        dst_mac: lb_tests::packet::LB_MAC,
        src_mac: lb_tests::packet::LB_MAC,
        src_ip: [192, 0, 2, 1],
        src_port: 40000u16.to_be_bytes(),
        _pad: 0,
        flow_mask: flows - 1,
    };
    let mut payload = trailer.to_bytes().to_vec();
    payload.extend_from_slice(&0u32.to_ne_bytes());
    let frame = Packet::tcp("192.0.2.1:40000", "198.51.100.10:80");
    let frame = if syn { frame.syn() } else { frame }
        .payload(&payload)
        .build();

    // Its own bench object: the rotator's program array belongs to these runs.
    let mut bench = BenchPrograms::load()?;
    bench.rotate_into(Some(f.dp.program_fd()?))?;
    // Warm up: one pass over every flow records it (untracked on a dirty slot), or
    // fills the table.
    bench.test_run(BenchProgram::Rotate, &frame, flows)?;
    let before = f.dp.global_stats()?;
    let lb = per_packet(
        Timed::Bench(&bench, BenchProgram::Rotate),
        &frame,
        repeat.max(flows),
        runs,
    )?;
    let after = f.dp.global_stats()?;
    let moved: Vec<&str> = (0..outcome::COUNT as usize)
        .filter(|i| after[*i] > before[*i])
        .map(|i| outcome::NAMES[i])
        .collect();
    let expect: &[&str] = if syn {
        &["forwarded_tx"]
    } else {
        &["forwarded_tx", "conntrack_hit"]
    };
    anyhow::ensure!(
        moved == expect,
        "rotating flows: the timed runs moved counters {moved:?}, expected {expect:?}"
    );
    bench.rotate_into(None)?;
    let floor = per_packet(
        Timed::Bench(&bench, BenchProgram::Rotate),
        &frame,
        repeat.max(flows),
        runs,
    )?;
    let (name, note) = if syn {
        (
            format!("new TCP flow (SYN), dirty slot, {flows} flows rotating: every packet a connection-table insert"),
            format!(
                "every slot dirty; a {}-entry table, so each SYN inserts (evicting the \
                 least recently used); the event ring is not drained here, so the event \
                 is reserved but not written; counters moved: forwarded_tx",
                flows / 16
            ),
        )
    } else {
        (
            format!("tracked TCP flow, dirty slot, {flows} flows rotating (cache misses)"),
            "every slot dirty, every flow tracked, each packet the next flow in a scattered \
             order; counters moved: forwarded_tx, conntrack_hit"
                .to_string(),
        )
    };
    Ok(Rotating {
        name,
        note,
        lb,
        floor,
    })
}

/// Cold apply of many services through the real reconciler and maps, then a no-op
/// apply.
fn control_plane(args: &Args, runs: usize, figures: &mut Vec<Figure>) -> Result<()> {
    use lb_common::maps::addr_words;
    use lb_dataplane::{
        reconcile::{BackendInput, Desired, Limits, Link, Reconciler, ServiceInput},
        Capacities, Dataplane, DataplaneOptions,
    };
    let (services, per) = if args.quick {
        (50usize, 16usize)
    } else {
        (1000, 16)
    };
    let desired = Desired {
        services: (0..services)
            .map(|i| ServiceInput {
                name: format!("svc{i}"),
                key: lb_common::maps::ServiceKey {
                    vip: addr_words(std::net::IpAddr::from([
                        10,
                        200,
                        (i / 250) as u8,
                        (i % 250) as u8 + 1,
                    ])),
                    port: 80,
                    proto: proto::TCP,
                    _pad: 0,
                },
                flags: 0,
                backends: (0..per)
                    .map(|b| BackendInput {
                        address: std::net::IpAddr::from([
                            10,
                            201,
                            (i / 250) as u8,
                            ((i % 250) as u8).wrapping_add(b as u8),
                        ]),
                        weight: 1,
                        healthy: true,
                        link: Some(Link {
                            mac: [2, 0, 0, 0, (b >> 8) as u8, b as u8],
                            ifindex: 1,
                            src_mac: [2, 1, 0, 0, 0, 1],
                        }),
                    })
                    .collect(),
            })
            .collect(),
        table_size: 65537,
        maglev_seed: 1,
        hash_seed: 1,
        forwarding: true,
        insert_limit: 0,
        keep_moved: true,
    };
    let caps = Capacities {
        services: services as u32 + 8,
        backends: (services * per) as u32 + 8,
        conns: 1 << 16,
        tx_ports: 8,
    };
    let mut cold = Vec::new();
    let mut noop = Vec::new();
    for _ in 0..runs.min(3) {
        let mut dp = Dataplane::load(&DataplaneOptions {
            pin_dir: None,
            capacities: caps,
        })?;
        let mut r = Reconciler::new(Limits {
            max_services: caps.services,
            max_backends: caps.backends,
        });
        let t = Instant::now();
        r.apply(&mut dp, &desired, Instant::now())?;
        cold.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        r.apply(&mut dp, &desired, Instant::now())?;
        noop.push(t.elapsed().as_secs_f64() * 1e3);
    }
    figures.push(Figure::new(
        format!("cold apply, {services} services x {per} backends"),
        "s",
        cold,
        "Maglev M=65537 per service, every table and backend written through the reconciler".into(),
    ));
    figures.push(Figure::new(
        format!("apply with nothing changed, {services} services"),
        "ms",
        noop,
        "what every health or neighbour event costs when it changes nothing".into(),
    ));
    Ok(())
}

/// Time from a backend's server dying to lbd removing it from the Maglev table, in a
/// real lab with HTTP checks every 300 ms and fall = 2.
fn failover_of_a_backend(args: &Args, figures: &mut Vec<Figure>) -> Result<()> {
    use lb_api::control::{Request, Response};
    use lb_tests::lab::Lab;
    let rounds = if args.quick { 1 } else { 5 };
    let mut lab = Lab::up("bn");
    lab.write_config(&Lab::web_service([Some(1), Some(1), Some(1)]));
    lab.start_lbd();
    lab.wait_healthy(3);
    let slots_of_b2 = |lab: &Lab| match lab.ask(Request::List) {
        Some(Response::List { services }) => services[0]
            .backends
            .iter()
            .find(|b| b.address.to_string() == "10.99.0.12")
            .map_or(0, |b| b.slots),
        _ => usize::MAX,
    };
    let mut samples = Vec::new();
    for _ in 0..rounds {
        let t = Instant::now();
        lab.stop_backend(1);
        while slots_of_b2(&lab) != 0 {
            if t.elapsed() > std::time::Duration::from_secs(20) {
                anyhow::bail!("backend never removed");
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        samples.push(t.elapsed().as_secs_f64() * 1e3);
        lab.start_backend(1);
        lab.wait_healthy(3);
    }
    figures.push(Figure::new(
        "backend failure to removal from the table".into(),
        "ms",
        samples,
        "HTTP check interval 300 ms, fall 2: expected between 300 and 600 ms plus check timeout"
            .into(),
    ));
    Ok(())
}

fn machine() -> (String, String) {
    let cpu = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string();
    (cpu, kernel)
}

/// First line of each comparison tool's version output.
fn tool_versions() -> Vec<String> {
    [
        ("haproxy", "-v"),
        ("nginx", "-v"),
        ("wrk", "-v"),
        ("keepalived", "--version"),
    ]
    .iter()
    .filter_map(|(tool, flag)| {
        let out = std::process::Command::new(tool).arg(flag).output().ok()?;
        let text = [out.stdout, out.stderr].concat();
        let line = String::from_utf8_lossy(&text)
            .lines()
            .next()?
            .trim()
            .to_string();
        Some(line)
    })
    .collect()
}

/// The few comparisons a reader wants first, from the figures this run produced.
fn headlines(figures: &[Figure]) -> Vec<String> {
    let get = |name: &str| figures.iter().find(|f| f.name == name);
    let mut out = Vec::new();
    if let (Some(base), Some(lb)) = (
        get("forwarding rate, MAC-swap baseline"),
        get("forwarding rate, lbd, 1,048,576 flows"),
    ) {
        out.push(format!(
            "forwarding rate over 1M flows: lbd {:.2} Mpps, {:.2}x the MAC-swap baseline's {:.2} Mpps on the same wires",
            lb.median,
            lb.median / base.median,
            base.median
        ));
    }
    if let (Some(new), Some(est)) = (
        get("new TCP flow (SYN), clean slot"),
        get("established TCP flow, clean slot"),
    ) {
        let floor = get("floor: XDP_PASS only").map_or(0.0, |f| f.median);
        out.push(format!(
            "per packet (BPF_PROG_TEST_RUN): new flow {:.0} ns ({:.1}x), established flow {:.0} ns ({:.1}x) the MAC-swap baseline; the XDP_PASS floor {floor:.0} ns",
            new.median,
            new.ratio.unwrap_or_default(),
            est.median,
            est.ratio.unwrap_or_default()
        ));
    }
    // lbd next to the proxies, one line per comparison.
    for (what, workload, suffix, unit) in [
        (
            "LB CPU per short connection",
            "short connections",
            ": LB CPU per request",
            " µs",
        ),
        (
            "LB CPU per 1 MiB download",
            "1 MiB downloads",
            ": LB CPU per MiB",
            " µs",
        ),
        ("short connections per second", "short connections", "", ""),
    ] {
        let of = |lb: &str| get(&format!("{workload} via {lb}{suffix}"));
        if let (Some(lbd), Some(hap), Some(ngx)) = (
            of("lbd (XDP DR)"),
            of("haproxy (TCP mode)"),
            of("nginx stream"),
        ) {
            out.push(format!(
                "{what}: lbd {:.1}{unit}, haproxy {:.1}{unit} ({:.2}x lbd), nginx stream {:.1}{unit} ({:.2}x lbd)",
                lbd.median,
                hap.median,
                hap.median / lbd.median,
                ngx.median,
                ngx.median / lbd.median
            ));
        }
    }
    for f in figures {
        if f.name.starts_with("lbd start to") || f.name.starts_with("lbd resident memory") {
            out.push(format!("{}: {:.1} {}", f.name, f.median, f.unit));
        }
    }
    out.extend(sync::headlines(figures));
    out.extend(ecmp::headlines(figures));
    out
}

fn write_report(args: &Args, repeat: u32, runs: usize, figures: &[Figure]) -> Result<()> {
    let (cpu, kernel) = machine();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    fs::create_dir_all(&args.out).with_context(|| format!("create {}", args.out.display()))?;
    let mut md = String::new();
    writeln!(md, "# lb bench report\n")?;
    let tools = tool_versions();
    let headlines = headlines(figures);
    writeln!(md, "- CPU: {cpu} ({cores} cores)\n- kernel: {kernel}")?;
    writeln!(md, "- compared against: {}", tools.join("; "))?;
    writeln!(
        md,
        "- mode: {} (BPF_PROG_TEST_RUN repeat {repeat}, {runs} runs per figure)\n",
        if args.quick { "quick" } else { "full" }
    )?;
    if !headlines.is_empty() {
        writeln!(md, "## Headlines (medians)\n")?;
        for line in &headlines {
            writeln!(md, "- {line}")?;
        }
        writeln!(md, "\n## All figures\n")?;
    }
    writeln!(
        md,
        "| figure | unit | min | median | max | x baseline | above floor | x baseline, net of floor | note |\n|---|---|---|---|---|---|---|---|---|"
    )?;
    for fig in figures {
        let ratio = fig.ratio.map(|r| format!("{r:.2}x")).unwrap_or_default();
        let above = fig
            .above_floor
            .map(|a| format!("{a:.0}"))
            .unwrap_or_default();
        let net = match (fig.above_floor, fig.net_ratio) {
            (_, Some(r)) => format!("{r:.2}x"),
            (Some(_), None) => "(baseline within 3 ns of the floor)".into(),
            _ => String::new(),
        };
        writeln!(
            md,
            "| {} | {} | {:.1} | {:.1} | {:.1} | {} | {} | {} | {} |",
            fig.name, fig.unit, fig.min, fig.median, fig.max, ratio, above, net, fig.note
        )?;
    }
    let json = json!({
        "cpu": cpu, "cores": cores, "kernel": kernel, "tools": tools, "headlines": headlines,
        "quick": args.quick, "repeat": repeat, "runs": runs,
        "figures": figures.iter().map(|f| json!({
            "name": f.name, "unit": f.unit, "min": f.min, "median": f.median, "max": f.max,
            "ratio_to_baseline": f.ratio, "above_floor": f.above_floor,
            "ratio_to_baseline_net_of_floor": f.net_ratio,
            "note": f.note,
        })).collect::<Vec<_>>(),
    });
    fs::write(args.out.join("report.md"), &md)?;
    fs::write(
        args.out.join("report.json"),
        serde_json::to_string_pretty(&json)?,
    )?;
    print!("{md}");
    println!("\nwritten to {}", args.out.display());
    Ok(())
}

/// VRRP failover: the master LB node dies (lbd killed, link down) while a prober
/// connects to the VIP every 10 ms and 10 downloads stream. Reported: the gap between
/// the last answer before and the first after (a SYN-ACK, or an RST from a node that
/// holds the VIP without a load balancer), and the downloads that survive. Side by
/// side: lbd as the backup, and keepalived 2.2.7 as the backup (it only moves the VIP;
/// IPVS is not available here, so its connections cannot survive).
fn vrrp_failover(args: &Args, figures: &mut Vec<Figure>) -> Result<()> {
    use std::{
        net::{SocketAddr, TcpStream},
        sync::{
            atomic::{AtomicBool, Ordering},
            Arc, Mutex,
        },
        time::Duration,
    };

    use lb_api::control::{Request, Response};
    use lb_tests::{
        lab::{wait_until, Lab},
        netns::{enter_existing, sh},
    };

    let runs = if args.quick { 1 } else { 3 };
    let versions = [
        (
            "v2, 1 s",
            "version = 2\nadvert_interval = \"1s\"\n",
            "2",
            "1",
        ),
        (
            "v3, 100 ms",
            "version = 3\nadvert_interval = \"100ms\"\n",
            "3",
            "0.1",
        ),
    ];
    for (label, lbd_vrrp, k_version, k_interval) in versions {
        for backup in ["lbd", "keepalived"] {
            let mut gaps = Vec::new();
            let mut survived = Vec::new();
            for _ in 0..runs {
                let mut lab = Lab::up_with("fo", 2);
                let web = Lab::web_service([Some(1), Some(1), Some(1)]);
                let instance = |prio: u8| {
                    format!("[[vrrp]]\nname = \"VI_1\"\ninterface = \"eth0\"\nvirtual_router_id = 51\npriority = {prio}\nvirtual_addresses = [\"10.99.0.100/24\"]\n{lbd_vrrp}\n")
                };
                lab.write_config_for("lb", &format!("{}{web}", instance(150)));
                lab.start_lbd_on("lb");
                let vrrp_state = |lab: &Lab, node: &str| match lab.ask_on(node, Request::Vrrp) {
                    Some(Response::Vrrp { instances }) => {
                        instances.first().map(|v| v.state.clone())
                    }
                    _ => None,
                };
                wait_until(Duration::from_secs(15), "lb MASTER", || {
                    vrrp_state(&lab, "lb").as_deref() == Some("MASTER")
                });
                lab.wait_healthy_on("lb", 3);
                if backup == "lbd" {
                    lab.write_config_for("lb2", &format!("{}{web}", instance(100)));
                    lab.start_lbd_on("lb2");
                    wait_until(Duration::from_secs(15), "lb2 BACKUP", || {
                        vrrp_state(&lab, "lb2").as_deref() == Some("BACKUP")
                    });
                    lab.wait_healthy_on("lb2", 3);
                } else {
                    let conf = lab.dir.join("keepalived.conf");
                    fs::write(
                        &conf,
                        format!(
                            "vrrp_instance VI_1 {{\n version {k_version}\n state BACKUP\n interface eth0\n virtual_router_id 51\n priority 100\n advert_int {k_interval}\n virtual_ipaddress {{\n 10.99.0.100/24 dev eth0\n }}\n}}\n"
                        ),
                    )?;
                    let child = std::process::Command::new("ip")
                        .args([
                            "netns",
                            "exec",
                            &lab.ns("lb2"),
                            "/usr/sbin/keepalived",
                            "-n",
                            "-l",
                            "-D",
                            "-P",
                            "-f",
                        ])
                        .arg(&conf)
                        .arg("-p")
                        .arg(lab.dir.join("k.pid"))
                        .arg("-r")
                        .arg(lab.dir.join("kv.pid"))
                        .stdout(std::process::Stdio::null())
                        .stderr(std::process::Stdio::null())
                        .spawn()?;
                    lab.adopt_process(child);
                    std::thread::sleep(Duration::from_secs(3));
                }
                // Prober: connect to the VIP every 10 ms from the client's namespace.
                let answers: Arc<Mutex<Vec<Instant>>> = Arc::default();
                let stop = Arc::new(AtomicBool::new(false));
                let prober = {
                    let (answers, stop, client) = (answers.clone(), stop.clone(), lab.ns("client"));
                    std::thread::spawn(move || {
                        let _inside = enter_existing(&client);
                        let vip: SocketAddr = "10.99.0.100:80".parse().expect("vip");
                        while !stop.load(Ordering::Relaxed) {
                            let answered =
                                match TcpStream::connect_timeout(&vip, Duration::from_millis(50)) {
                                    Ok(_) => true,
                                    Err(e) => e.kind() == std::io::ErrorKind::ConnectionRefused,
                                };
                            if answered {
                                if let Ok(mut a) = answers.lock() {
                                    a.push(Instant::now());
                                }
                            }
                            std::thread::sleep(Duration::from_millis(10));
                        }
                    })
                };
                let downloads: Vec<_> = (0..10)
                    .map(|i| lab.slow_download(40000 + i, "250k"))
                    .collect();
                std::thread::sleep(Duration::from_secs(1));
                // The master node dies: its link first (nothing it does reaches anyone
                // from then on), then its lbd.
                sh(&format!("ip -n {} link set eth0 down", lab.ns("lb")));
                let killed = Instant::now();
                lab.kill_lbd_on("lb");
                let answered_after = || {
                    answers
                        .lock()
                        .map(|a| a.iter().any(|t| *t > killed))
                        .unwrap_or(false)
                };
                let deadline = Instant::now() + Duration::from_secs(15);
                while !answered_after() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(20));
                }
                stop.store(true, Ordering::Relaxed);
                let _ = prober.join();
                let a = answers.lock().map(|a| a.clone()).unwrap_or_default();
                let before = a.iter().filter(|t| **t <= killed).max().copied();
                let after = a.iter().filter(|t| **t > killed).min().copied();
                if let (Some(b), Some(f)) = (before, after) {
                    gaps.push(f.duration_since(b).as_secs_f64() * 1e3);
                }
                let vip_moved = sh(&format!("ip -n {} addr show dev eth0", lab.ns("lb2")))
                    .contains("10.99.0.100/");
                if !vip_moved {
                    anyhow::bail!(
                        "VRRP failover ({label}, {backup} backup): the backup never took the VIP"
                    );
                }
                let ok = downloads
                    .into_iter()
                    .filter_map(|d| d.wait_with_output().ok())
                    .filter(|o| String::from_utf8_lossy(&o.stdout) == "1048576 200")
                    .count();
                survived.push(ok as f64 * 10.0);
                // keepalived forks; stop every process of it by its pid files.
                for pid in ["k.pid", "kv.pid"] {
                    if let Ok(p) = fs::read_to_string(lab.dir.join(pid)) {
                        let _ = std::process::Command::new("kill")
                            .args(["-9", p.trim()])
                            .status();
                    }
                }
            }
            if gaps.is_empty() {
                anyhow::bail!(
                    "VRRP failover ({label}, {backup} backup): the VIP never answered again"
                );
            }
            let kept = median(survived);
            figures.push(Figure::new(
                format!("VRRP failover {label}, {backup} as backup"),
                "ms",
                gaps,
                format!(
                    "last answer before to first after; established connections surviving: {kept:.0}%"
                ),
            ));
        }
    }
    Ok(())
}

/// Per-packet cost as a service grows (3, 100, 1000 backends), and of the tracked path
/// with a connection table holding many entries; each next to the MAC-swap baseline
/// measured here.
fn per_packet_scaling(
    args: &Args,
    repeat: u32,
    runs: usize,
    figures: &mut Vec<Figure>,
) -> Result<()> {
    use lb_common::maps::{addr_words, ConnKey, ConnValue};
    use lb_dataplane::{reconcile::install_service, Capacities, DataplaneOptions, ServiceSpec};

    let syn = Packet::tcp("192.0.2.1:40000", "198.51.100.10:80")
        .syn()
        .build();
    let bench = BenchPrograms::load()?;
    for n in [3u16, 100, 1000] {
        let mut dp = Dataplane::load(&DataplaneOptions {
            pin_dir: None,
            capacities: Capacities {
                services: 8,
                backends: 1024,
                conns: 1 << 16,
                tx_ports: 8,
            },
        })?;
        let mut config = dp.config()?;
        config.forwarding = 1;
        dp.set_config(&config)?;
        let mut members = Vec::new();
        for i in 0..n {
            // Destination and source the LB's MAC: a repeated run's frame stays
            // addressed to the LB (see Fixture::loop_back_mac).
            let b = lb_common::maps::Backend {
                mac: lb_tests::packet::LB_MAC,
                src_mac: lb_tests::packet::LB_MAC,
                ifindex: 0,
                state: BACKEND_UP,
                gen: 1,
                service: 0,
                addr: [0; 4],
            };
            dp.set_backend(i, &b)?;
            members.push(lb_common::maglev::MaglevBackend {
                id: format!("b{i}").into_bytes(),
                index: i,
                weight: 1,
            });
        }
        let key = lb_common::maps::ServiceKey {
            vip: addr_words("198.51.100.10".parse()?),
            port: 80,
            proto: proto::TCP,
            _pad: 0,
        };
        install_service(
            &mut dp,
            &key,
            &ServiceSpec {
                id: 0,
                flags: 0,
                backends: &members,
                table_size: 65537,
                seed: 1,
            },
            true,
        )?;
        let base = median(per_packet(
            Timed::Bench(&bench, BenchProgram::MacSwap),
            &syn,
            repeat,
            runs,
        )?);
        let samples = per_packet(Timed::Lb(&dp), &syn, repeat, runs)?;
        figures.push(
            Figure::new(
                format!("new TCP flow (SYN), {n} backends"),
                "ns/packet",
                samples,
                format!("baseline in this run {base:.0} ns"),
            )
            .vs(base),
        );
    }

    // A large connection table: a drain makes slots dirty, the table is prefilled with
    // many other flows, and one tracked flow is timed (its entry is cache-hot).
    // The fixture's connection table holds 65536 entries.
    let entries: u32 = if args.quick { 20_000 } else { 60_000 };
    let mut f = Fixture::new();
    for i in 0..3 {
        f.backend_state(i, BACKEND_UP, 1);
    }
    f.service(
        "198.51.100.10",
        80,
        proto::TCP,
        0,
        0,
        &[(0, 1), (1, 1), (2, 1)],
    );
    let moved = flow_on(&f, 2)?;
    f.backend_state(2, lb_common::maps::BACKEND_DRAINING, 1);
    for i in 0..3 {
        f.loop_back_mac(i);
    }
    f.service(
        "198.51.100.10",
        80,
        proto::TCP,
        0,
        0,
        &[(0, 1), (1, 1), (2, 0)],
    );
    let tracked = Packet::tcp(&format!("192.0.2.1:{moved}"), "198.51.100.10:80").build();
    f.run(&tracked);
    let vip = addr_words("198.51.100.10".parse()?);
    for i in 0..entries {
        let src = addr_words(std::net::IpAddr::from([10, 50, (i >> 8) as u8, i as u8]));
        let key = ConnKey {
            src,
            dst: vip,
            sport: (i % 60000) as u16 + 1,
            dport: 80,
            proto: proto::TCP,
            _pad: 0,
            _pad2: 0,
        };
        f.dp.set_conn(
            &key,
            &ConnValue {
                backend: (i % 2) as u16,
                flags: 0,
                gen: 1,
                last_seen_ns: 0,
            },
        )?;
    }
    let base = median(per_packet(
        Timed::Bench(&bench, BenchProgram::MacSwap),
        &tracked,
        repeat,
        runs,
    )?);
    figures.push(
        Figure::new(
            format!("tracked TCP flow, dirty slot, {entries} other connections tracked"),
            "ns/packet",
            per_packet(Timed::Lb(&f.dp), &tracked, repeat, runs)?,
            "one hot flow: the entry stays in cache; the rate section's 1M-flow figures \
             measure cache misses"
                .into(),
        )
        .vs(base),
    );
    Ok(())
}

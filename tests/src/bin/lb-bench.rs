//! `cargo xtask bench`: per-packet cost of each data-plane path through
//! BPF_PROG_TEST_RUN, each next to the MAC-swap baseline measured in the same run,
//! and control-plane figures (Maglev build time, slots moved). Writes `report.md`
//! and `report.json` (machine, kernel, min/median/max per figure) to `--out`.
//! Needs root. Numbers are reported, never asserted.

use std::{fmt::Write as _, fs, path::PathBuf, time::Instant};

use anyhow::{Context, Result};
use clap::Parser;
use lb_common::{
    maglev::{build, MaglevBackend},
    maps::{outcome, programs, proto, BACKEND_DRAINING, BACKEND_UP},
};
use lb_tests::{packet::Packet, Fixture};
use serde_json::json;

#[derive(Parser)]
#[command(about = "Data-plane and control-plane benchmarks")]
struct Args {
    /// Fewer repetitions: checks the harness runs (CI), numbers are rough.
    #[arg(long)]
    quick: bool,
    /// Output directory for report.md and report.json.
    #[arg(long, default_value = "bench-results")]
    out: PathBuf,
}

/// min, median, max of samples.
fn stats(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    (v[0], v[v.len() / 2], v[v.len() - 1])
}

struct Figure {
    name: String,
    unit: &'static str,
    min: f64,
    median: f64,
    max: f64,
    ratio: Option<f64>,
    note: String,
}

fn per_packet(
    f: &Fixture,
    program: &str,
    frame: &[u8],
    repeat: u32,
    runs: usize,
) -> Result<Vec<f64>> {
    (0..runs)
        .map(|_| Ok(f.dp.test_run(program, frame, repeat)?.duration_ns as f64))
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

    // ---- per-packet cost ----
    let mut f = Fixture::new();
    f.dp.load_program(programs::MACSWAP)?;
    for i in 0..3 {
        f.backend_state(i, BACKEND_UP, 1);
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

    let baseline = stats(per_packet(&f, programs::MACSWAP, &syn, repeat, runs)?);
    figures.push(Figure {
        name: "baseline: MAC swap + XDP_TX".into(),
        unit: "ns/packet",
        min: baseline.0,
        median: baseline.1,
        max: baseline.2,
        ratio: Some(1.0),
        note: "minimal DR forwarder, same harness".into(),
    });
    let mut measure = |name: &str, frame: &[u8], note: &str, f: &Fixture| -> Result<()> {
        let before = f.dp.global_stats()?;
        let (min, median, max) = stats(per_packet(f, programs::LB, frame, repeat, runs)?);
        let after = f.dp.global_stats()?;
        let paths: Vec<String> = (0..outcome::COUNT as usize)
            .filter(|i| after[*i] > before[*i])
            .map(|i| outcome::NAMES[i].to_string())
            .collect();
        figures.push(Figure {
            name: name.into(),
            unit: "ns/packet",
            min,
            median,
            max,
            ratio: Some(median / baseline.1),
            note: format!("{note}; counters moved: {}", paths.join(", ")),
        });
        Ok(())
    };
    measure(
        "new TCP flow (SYN), clean slot",
        &syn,
        "Maglev slot, no connection-table access",
        &f,
    )?;
    measure(
        "established TCP flow, clean slot",
        &seg,
        "no connection-table access",
        &f,
    )?;
    measure("UDP datagram, clean slot", &udp, "", &f)?;
    measure("IPv6 TCP segment, clean slot", &v6, "", &f)?;
    measure(
        "non-VIP packet (XDP_PASS)",
        &other,
        "two service lookups miss",
        &f,
    )?;

    // Dirty slots: drain backend 2 so a third of slots move; pick flows on them.
    let moved = (1000..60000u16)
        .find(|p| {
            let fr = Packet::tcp(&format!("192.0.2.1:{p}"), "198.51.100.10:80")
                .syn()
                .build();
            f.forwarded_to(&fr) == 2
        })
        .context("a flow on backend 2")?;
    f.backend_state(2, BACKEND_DRAINING, 1);
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
        &f,
    )?;
    let dirty_syn = Packet::tcp(&format!("192.0.2.1:{moved}"), "198.51.100.10:80")
        .syn()
        .build();
    measure(
        "new TCP flow (SYN), dirty slot (connection-table insert)",
        &dirty_syn,
        "after a drain",
        &f,
    )?;

    // ---- control plane: Maglev ----
    for n in [3usize, 100, 1000] {
        let backends: Vec<MaglevBackend> = (0..n)
            .map(|i| MaglevBackend {
                id: format!("10.0.{}.{}", i / 250, i % 250).into_bytes(),
                index: i as u16,
                weight: 1,
            })
            .collect();
        let samples: Vec<f64> = (0..runs)
            .map(|_| {
                let t = Instant::now();
                let _ = build(&backends, 65537, 1);
                t.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        let (min, median, max) = stats(samples);
        let full = build(&backends, 65537, 1)?;
        let less = build(&backends[1..], 65537, 1)?;
        let moved = full.iter().zip(&less).filter(|(a, b)| a != b).count();
        let removed_slots = full.iter().filter(|b| **b == 0).count();
        figures.push(Figure {
            name: format!("Maglev build, M=65537, {n} backends"),
            unit: "ms",
            min,
            median,
            max,
            ratio: None,
            note: format!(
                "removing one backend moves {moved} slots ({:.2}% of M; its own share {:.2}%, ideal 1/N = {:.2}%)",
                100.0 * moved as f64 / 65537.0,
                100.0 * removed_slots as f64 / 65537.0,
                100.0 / n as f64
            ),
        });
    }

    control_plane(&args, runs, &mut figures)?;
    failover_of_a_backend(&args, &mut figures)?;

    write_report(&args, repeat, runs, &figures)
}

fn rss_mib() -> f64 {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

/// Cold apply of many services through the real reconciler and maps, then a no-op
/// apply, and the controller's resident memory afterwards.
fn control_plane(args: &Args, runs: usize, figures: &mut Vec<Figure>) -> Result<()> {
    use lb_common::maps::addr_words;
    use lb_userspace::{
        dataplane::{Capacities, Dataplane, DataplaneOptions},
        sync::{BackendInput, Desired, Limits, Link, Reconciler, ServiceInput},
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
    };
    let caps = Capacities {
        services: services as u32 + 8,
        backends: (services * per) as u32 + 8,
        conns: 1 << 16,
        tx_ports: 8,
    };
    let mut cold = Vec::new();
    let mut noop = Vec::new();
    let mut rss = 0.0;
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
        rss = rss_mib();
    }
    let (min, median, max) = stats(cold);
    figures.push(Figure {
        name: format!("cold apply, {services} services x {per} backends"),
        unit: "s",
        min,
        median,
        max,
        ratio: None,
        note: "Maglev M=65537 per service, every table and backend written through the reconciler"
            .into(),
    });
    let (min, median, max) = stats(noop);
    figures.push(Figure {
        name: format!("apply with nothing changed, {services} services"),
        unit: "ms",
        min,
        median,
        max,
        ratio: None,
        note: "what every health or neighbour event costs when it changes nothing".into(),
    });
    figures.push(Figure {
        name: format!("controller resident memory after applying {services} services"),
        unit: "MiB",
        min: rss,
        median: rss,
        max: rss,
        ratio: None,
        note: "this process (reconciler + maps API); table memory itself lives in the kernel"
            .into(),
    });
    Ok(())
}

/// Time from a backend's server dying to lbd removing it from the Maglev table, in a
/// real lab with HTTP checks every 300 ms and fall = 2.
fn failover_of_a_backend(args: &Args, figures: &mut Vec<Figure>) -> Result<()> {
    use lb_tests::lab::Lab;
    use lb_userspace::control::{Request, Response};
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
    let (min, median, max) = stats(samples);
    figures.push(Figure {
        name: "backend failure to removal from the table".into(),
        unit: "ms",
        min,
        median,
        max,
        ratio: None,
        note:
            "HTTP check interval 300 ms, fall 2: expected between 300 and 600 ms plus check timeout"
                .into(),
    });
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

fn write_report(args: &Args, repeat: u32, runs: usize, figures: &[Figure]) -> Result<()> {
    let (cpu, kernel) = machine();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    fs::create_dir_all(&args.out).with_context(|| format!("create {}", args.out.display()))?;
    let mut md = String::new();
    writeln!(md, "# lb bench report\n")?;
    writeln!(md, "- CPU: {cpu} ({cores} cores)\n- kernel: {kernel}")?;
    writeln!(
        md,
        "- mode: {} (BPF_PROG_TEST_RUN repeat {repeat}, {runs} runs per figure)\n",
        if args.quick { "quick" } else { "full" }
    )?;
    writeln!(
        md,
        "| figure | unit | min | median | max | x baseline | note |\n|---|---|---|---|---|---|---|"
    )?;
    for fig in figures {
        let ratio = fig.ratio.map(|r| format!("{r:.2}x")).unwrap_or_default();
        writeln!(
            md,
            "| {} | {} | {:.1} | {:.1} | {:.1} | {} | {} |",
            fig.name, fig.unit, fig.min, fig.median, fig.max, ratio, fig.note
        )?;
    }
    let json = json!({
        "cpu": cpu, "cores": cores, "kernel": kernel, "quick": args.quick, "repeat": repeat, "runs": runs,
        "figures": figures.iter().map(|f| json!({
            "name": f.name, "unit": f.unit, "min": f.min, "median": f.median, "max": f.max,
            "ratio_to_baseline": f.ratio, "note": f.note,
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

//! The `maglev` section: table build time at every size `auto` chooses from (65537,
//! 131071, 262139, 655373; the Maglev paper reports 1.8 ms at 65537 and 22.9 ms at
//! 655373), and the slots a backend removal moves at 100, 1000 and 4000 backends for
//! each size, as a multiple of the ideal `M/N` (what the removed backend owned); and
//! the per-packet cost of a service whose table is inline (65537) or big (655373).

use std::time::Instant;

use anyhow::Result;
use lb_common::maglev::{build, table_size, MaglevBackend, AUTO_TABLE_SIZE, TABLE_SIZES};

use crate::{per_packet, Args, Figure, Timed};

/// `n` backends of weight 1, ids like real addresses.
fn backends(n: usize) -> Vec<MaglevBackend> {
    (0..n)
        .map(|i| MaglevBackend {
            id: format!("10.{}.{}.{}", i / 65536, (i / 256) % 256, i % 256).into_bytes(),
            index: i as u16,
            weight: 1,
        })
        .collect()
}

/// Build times, removal disruption and the per-packet cost of a big table, pushed onto
/// `figures` (`repeat` runs per timed sample).
pub fn maglev(args: &Args, repeat: u32, runs: usize, figures: &mut Vec<Figure>) -> Result<()> {
    let thousand = backends(1000);
    for m in TABLE_SIZES {
        let _ = build(&thousand, m, 0)?;
        let samples: Vec<f64> = (0..runs.max(3))
            .map(|seed| {
                let t = Instant::now();
                let _ = std::hint::black_box(build(&thousand, m, seed as u64));
                t.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        let paper = match m {
            65537 => "; the paper: 1.8 ms",
            655373 => "; the paper: 22.9 ms",
            _ => "",
        };
        figures.push(Figure::new(
            format!("Maglev build, M={m}, 1000 backends"),
            "ms",
            samples,
            format!("equal weights, one table per sample{paper}"),
        ));
    }

    // Each sample removes a different backend (spread over the id order) from the
    // same table.
    let removals = if args.quick { 2 } else { 5 };
    for n in [100usize, 1000, 4000] {
        let set = backends(n);
        let auto = table_size(AUTO_TABLE_SIZE, n);
        for m in TABLE_SIZES {
            let full = build(&set, m, 1)?;
            let ideal = m as f64 / n as f64;
            let mut moved_pct = Vec::new();
            let samples: Vec<f64> = (0..removals)
                .map(|k| {
                    let victim = k * n / removals + n / (2 * removals);
                    let mut rest = set.clone();
                    rest.remove(victim);
                    let less = build(&rest, m, 1)?;
                    let moved = full.iter().zip(&less).filter(|(a, b)| a != b).count();
                    moved_pct.push(100.0 * moved as f64 / m as f64);
                    Ok(moved as f64 / ideal)
                })
                .collect::<Result<_>>()?;
            moved_pct.sort_by(|a, b| a.total_cmp(b));
            figures.push(Figure::new(
                format!("Maglev removal, {n} backends, M={m}: slots moved / ideal"),
                "x",
                samples,
                format!(
                    "median {:.3}% of M moved, ideal 1/N = {:.3}%; M/N = {:.0}, M/N² = {:.2}{}",
                    moved_pct[moved_pct.len() / 2],
                    100.0 / n as f64,
                    ideal,
                    m as f64 / (n * n) as f64,
                    if m == auto { "; the auto size" } else { "" }
                ),
            ));
        }
    }
    per_packet_big(repeat, runs, figures)
}

/// An established flow on a clean slot of a 1000-backend service, its table inline
/// (65537 slots) or big (655373, in chunks: one more hash lookup).
fn per_packet_big(repeat: u32, runs: usize, figures: &mut Vec<Figure>) -> Result<()> {
    use lb_common::maps::{addr_words, proto, Backend, ServiceKey, BACKEND_UP};
    use lb_dataplane::{
        reconcile::install_service, Capacities, Dataplane, DataplaneOptions, ServiceSpec,
    };
    use lb_tests::packet::{Packet, LB_MAC};

    let frame = Packet::tcp("192.0.2.1:40000", "198.51.100.10:80").build();
    let members = backends(1000);
    let mut medians = Vec::new();
    for m in [65537u32, 655373] {
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
        for b in &members {
            // The LB's own MAC both ways: a repeated run's frame stays addressed to it.
            let backend = Backend {
                mac: LB_MAC,
                src_mac: LB_MAC,
                ifindex: 0,
                state: BACKEND_UP,
                gen: 1,
                service: 0,
                addr: [0; 4],
            };
            dp.set_backend(b.index, &backend)?;
        }
        let key = ServiceKey {
            vip: addr_words("198.51.100.10".parse()?),
            port: 80,
            proto: proto::TCP,
            _pad: 0,
        };
        let spec = ServiceSpec {
            id: 0,
            flags: 0,
            backends: &members,
            table_size: m,
            seed: 1,
        };
        install_service(&mut dp, &key, &spec, false)?;
        let out = dp.test_run(&frame, 1)?;
        anyhow::ensure!(
            out.action == 3,
            "M={m}: the frame is not forwarded ({out:?})"
        );
        let samples = per_packet(Timed::Lb(&dp), &frame, repeat, runs)?;
        let figure = Figure::new(
            format!("per packet, established flow, 1000 backends, M={m}"),
            "ns/packet",
            samples,
            if m == 65537 {
                "the table inline in the service's value".into()
            } else {
                "a big table: one more hash lookup (its chunk)".into()
            },
        );
        medians.push(figure.median);
        let base = medians[0];
        figures.push(figure.vs(base));
    }
    Ok(())
}

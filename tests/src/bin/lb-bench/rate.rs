//! Forwarding rate on real wires. Two namespaces joined by one veth pair:
//!
//! ```text
//!   gen ns: g0 (client 10.98.0.10) + macvlans m1..m3 (backends 10.98.0.11-13)
//!      |  veth
//!   lb ns:  l0 (10.98.0.2): lbd in native XDP mode, or the MAC-swap baseline
//! ```
//!
//! The generator (`lb_bench_gen`, live-frames `BPF_PROG_TEST_RUN` on g0) sends TCP
//! segments to VIP:9 from random source ports and addresses; the LB forwards them
//! back out l0 (`XDP_TX`, DR style: only the MACs change); the sink (`lb_bench_sink`,
//! native XDP on g0) drops them, and the veth counts the drops: that is what reached
//! the backends' wire. The LB program's own time per packet comes from bpf_stats.

use std::{
    ffi::CString,
    fs,
    path::PathBuf,
    process::{Child, Command},
    thread,
    time::{Duration, Instant},
};

use anyhow::{ensure, Context, Result};
use lb_api::control::{Request, Response};
use lb_common::bench::{Trailer, MAGIC};
use lb_dataplane::{
    testing::{BenchProgram, BenchPrograms},
    AttachMode,
};
use lb_tests::{
    lab::{ask_socket, spawn_lbd, wait_until},
    netns::{sh, Netns},
    packet::Packet,
};

use crate::{bpfstats, median, Args, Figure};

const VIP: &str = "10.98.0.100";
const PORT: u16 = 9;
const CLIENT: &str = "10.98.0.10";
const BACKENDS: [&str; 3] = ["10.98.0.11", "10.98.0.12", "10.98.0.13"];

/// One measured blast of frames.
struct Sample {
    /// Frames that reached the sink per second, in millions.
    mpps: f64,
    /// The LB program's run time per packet (bpf_stats), ns.
    lb_ns: f64,
    /// Frames delivered / frames sent.
    delivered: f64,
}

/// Mpps for lbd and for the MAC-swap baseline on the same wires, and the LB
/// program's time per packet under that load, with one flow and with many.
pub fn forwarding_rate(args: &Args, figures: &mut Vec<Figure>) -> Result<()> {
    let (frames, runs): (u32, usize) = if args.quick {
        (100_000, 1)
    } else {
        (4_000_000, 5)
    };
    let mut wire = Wire::up()?;

    // The generator and the sink, loaded and attached from inside the gen namespace.
    let (generator, ifindex) = {
        let _in = wire.gen.enter();
        let mut bench = BenchPrograms::load()?;
        bench.attach(BenchProgram::Sink, "g0", AttachMode::Driver)?;
        (bench, ifindex("g0")?)
    };
    let measure = |wire: &Wire, mask: u32| -> Result<Vec<Sample>> {
        let frame = template(wire, mask)?;
        (0..runs)
            .map(|_| blast(wire, &generator, &frame, frames, ifindex))
            .collect()
    };

    // Baseline: the MAC swap on l0.
    let baseline = {
        let dp = {
            let _in = wire.lb.enter();
            let mut bench = BenchPrograms::load()?;
            bench.attach(BenchProgram::MacSwap, "l0", AttachMode::Driver)?;
            bench
        };
        let samples = measure(&wire, 0xffff)?;
        drop(dp); // detaches the baseline from l0
        samples
    };
    let base_mpps = median(baseline.iter().map(|s| s.mpps).collect());
    let base_ns = median(baseline.iter().map(|s| s.lb_ns).collect());
    push(
        figures,
        "MAC-swap baseline",
        &baseline,
        base_mpps,
        base_ns,
        "",
    );

    // lbd.
    wire.start_lbd()?;
    for (what, mask, note) in [
        ("lbd, one flow", 0, "one hot flow"),
        ("lbd, 65,536 flows", 0xffff, "random source ports"),
        (
            "lbd, 1,048,576 flows",
            0xf_ffff,
            "random source ports and addresses",
        ),
    ] {
        let samples = measure(&wire, mask)?;
        push(figures, what, &samples, base_mpps, base_ns, note);
    }
    wire.drain_third_backend()?;
    let samples = measure(&wire, 0xf_ffff)?;
    push(
        figures,
        "lbd, 1,048,576 flows, dirty slots",
        &samples,
        base_mpps,
        base_ns,
        "after a drain: a third of the slots consult the connection table, every new flow is inserted (LRU churn)",
    );
    Ok(())
}

/// The generator's template frame: a TCP segment to VIP:9 whose trailer spreads it
/// over the flows `mask` allows.
fn template(wire: &Wire, mask: u32) -> Result<Vec<u8>> {
    let trailer = Trailer {
        magic: MAGIC,
        dst_mac: mac(&wire.lb, "l0")?,
        src_mac: mac(&wire.gen, "g0")?,
        src_ip: CLIENT.parse::<std::net::Ipv4Addr>()?.octets(),
        src_port: 40000u16.to_be_bytes(),
        _pad: 0,
        flow_mask: mask,
    };
    Ok(
        Packet::tcp(&format!("{CLIENT}:40000"), &format!("{VIP}:{PORT}"))
            .payload(&trailer.to_bytes())
            .build(),
    )
}

/// Two figures per case: the rate at the sink and the LB program's time per packet.
fn push(
    figures: &mut Vec<Figure>,
    what: &str,
    samples: &[Sample],
    base_mpps: f64,
    base_ns: f64,
    note: &str,
) {
    let worst = samples.iter().map(|s| s.delivered).fold(1.0, f64::min);
    let note = format!(
        "{note}{}generator, LB and sink share the machine's CPUs; worst run lost {:.2}% of frames",
        if note.is_empty() { "" } else { "; " },
        (1.0 - worst) * 100.0
    );
    figures.push(
        Figure::new(
            format!("forwarding rate, {what}"),
            "Mpps",
            samples.iter().map(|s| s.mpps).collect(),
            note,
        )
        .vs(base_mpps),
    );
    figures.push(
        Figure::new(
            format!("LB program time per packet under load, {what}"),
            "ns/packet",
            samples.iter().map(|s| s.lb_ns).collect(),
            "bpf_stats run time / run count of the program attached to l0".into(),
        )
        .vs(base_ns),
    );
}

/// Send `frames` generated frames and count what the sink received; then send them
/// again with bpf_stats on for the LB program's time per packet (run-time accounting
/// costs every program two clock reads, so the rate is measured without it).
fn blast(
    wire: &Wire,
    generator: &BenchPrograms,
    frame: &[u8],
    frames: u32,
    ifindex: u32,
) -> Result<Sample> {
    let send = || -> Result<(f64, u64)> {
        let sunk0 = wire.delivered()?;
        let t = Instant::now();
        {
            let _in = wire.gen.enter();
            generator.send_live_frames(frame, frames, ifindex)?;
        }
        let secs = t.elapsed().as_secs_f64();
        // Let the last batches drain through both veth queues.
        thread::sleep(Duration::from_millis(100));
        Ok((secs, wire.delivered()? - sunk0))
    };
    let (secs, sunk) = send()?;
    ensure!(
        sunk > 0,
        "none of {frames} generated frames came back to the sink: the LB on l0 forwarded nothing"
    );

    let lb_prog = wire.lb_program_id()?;
    let stats_on = aya::sys::enable_stats(aya::sys::Stats::RunTime).context("enable bpf_stats")?;
    let (runs0, time0) = bpfstats::program_stats(lb_prog)?;
    send()?;
    let (runs1, time1) = bpfstats::program_stats(lb_prog)?;
    drop(stats_on);
    ensure!(
        runs1 > runs0,
        "the LB program on l0 did not run: nothing reached it"
    );
    Ok(Sample {
        mpps: sunk as f64 / secs / 1e6,
        lb_ns: (time1 - time0).as_nanos() as f64 / (runs1 - runs0) as f64,
        delivered: sunk as f64 / f64::from(frames),
    })
}

/// Interface index of `name` in the calling thread's namespace.
fn ifindex(name: &str) -> Result<u32> {
    let c = CString::new(name)?;
    // SAFETY: a valid NUL-terminated string.
    let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
    ensure!(index != 0, "no interface {name}");
    Ok(index)
}

/// MAC address of `dev` in namespace `ns`.
fn mac(ns: &Netns, dev: &str) -> Result<[u8; 6]> {
    let text = ns.exec(&format!("cat /sys/class/net/{dev}/address"));
    let bytes: Vec<u8> = text
        .trim()
        .split(':')
        .map(|b| u8::from_str_radix(b, 16))
        .collect::<Result<_, _>>()
        .with_context(|| format!("MAC of {dev}: {text:?}"))?;
    bytes
        .try_into()
        .map_err(|_| anyhow::anyhow!("MAC of {dev}: {text:?}"))
}

/// The two namespaces, the veth between them, and lbd once started; all removed on
/// drop, also when the bench fails.
struct Wire {
    gen: Netns,
    lb: Netns,
    /// Config, socket and log.
    dir: PathBuf,
    /// A bpffs for lbd's pins, shared by the namespaces.
    bpffs: PathBuf,
    lbd: Option<Child>,
}

impl Wire {
    fn up() -> Result<Wire> {
        let pid = std::process::id();
        let wire = Wire {
            gen: Netns::new("rg"),
            lb: Netns::new("rl"),
            dir: PathBuf::from(format!("/run/lbt-rate-{pid}")),
            bpffs: PathBuf::from(format!("/run/lbt-rate-{pid}-bpf")),
            lbd: None,
        };
        fs::create_dir_all(&wire.dir)?;
        fs::create_dir_all(&wire.bpffs)?;
        sh(&format!(
            "mountpoint -q {0} || mount -t bpf bpf {0}",
            wire.bpffs.display()
        ));
        sh(&format!(
            "ip link add g0 netns {} type veth peer name l0 netns {}",
            wire.gen.name, wire.lb.name
        ));
        // Only the interface holding an address answers ARP for it, so each backend
        // address resolves to its own macvlan's MAC.
        let mut gen = format!(
            "sysctl -qw net.ipv4.conf.all.arp_ignore=1 && ip link set g0 up && \
             ip addr add {CLIENT}/24 dev g0"
        );
        for (i, b) in BACKENDS.iter().enumerate() {
            gen.push_str(&format!(
                " && ip link add m{i} link g0 type macvlan mode bridge && \
                 ip addr add {b}/24 dev m{i} && ip link set m{i} up"
            ));
        }
        wire.gen.exec(&gen);
        wire.lb
            .exec("ip link set l0 up && ip addr add 10.98.0.2/24 dev l0");
        Ok(wire)
    }

    fn config_path(&self) -> PathBuf {
        self.dir.join("lbd.toml")
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("lbd.sock")
    }

    /// lbd's config: VIP:9/tcp over the three backends (no health checks: the
    /// backends are addresses only), the third with `third_weight`.
    fn write_config(&self, third_weight: u32) -> Result<()> {
        let mut text = format!(
            "[global]\nnode_name = \"bench-rate\"\ncontrol_socket = \"{sock}\"\n\
             metrics_listen = \"off\"\npin_dir = \"{pins}\"\nsettle_after = \"10m\"\n\n\
             [[interface]]\nname = \"l0\"\nxdp_mode = \"driver\"\n\n\
             [[service]]\nname = \"rate\"\nvip = \"{VIP}\"\nport = {PORT}\nprotocol = \"tcp\"\n\
             health = {{ kind = \"none\" }}\n\n",
            sock = self.socket().display(),
            pins = self.bpffs.join("lbd").display(),
        );
        for (i, b) in BACKENDS.iter().enumerate() {
            let weight = if i == 2 { third_weight } else { 1 };
            text.push_str(&format!(
                "[[service.backend]]\naddress = \"{b}\"\nweight = {weight}\n\n"
            ));
        }
        fs::write(self.config_path(), text)?;
        Ok(())
    }

    /// Slots per backend, as lbd reports them.
    fn slots(&self) -> Option<Vec<usize>> {
        match ask_socket(&self.socket(), Request::List)? {
            Response::List { services } => {
                Some(services.first()?.backends.iter().map(|b| b.slots).collect())
            }
            _ => None,
        }
    }

    /// Start lbd on l0 and wait until all three backends have slots (MACs resolved).
    fn start_lbd(&mut self) -> Result<()> {
        self.write_config(1)?;
        let child = spawn_lbd(
            &self.lb.name,
            &self.config_path(),
            &self.dir.join("lbd.log"),
        )
        .context("start lbd")?;
        self.lbd = Some(child);
        wait_until(
            Duration::from_secs(30),
            "lbd forwarding to 3 backends",
            || {
                self.slots()
                    .is_some_and(|s| s.len() == 3 && s.iter().all(|n| *n > 0))
            },
        );
        Ok(())
    }

    /// Reload lbd with the third backend at weight 0 (draining).
    fn drain_third_backend(&self) -> Result<()> {
        self.write_config(0)?;
        ensure!(
            matches!(
                ask_socket(&self.socket(), Request::Reload),
                Some(Response::Done { .. })
            ),
            "lbd refused the reload; see {}",
            self.dir.join("lbd.log").display()
        );
        wait_until(Duration::from_secs(10), "third backend drained", || {
            self.slots().is_some_and(|s| s.get(2) == Some(&0))
        });
        Ok(())
    }

    /// Id of the XDP program attached to l0.
    fn lb_program_id(&self) -> Result<u32> {
        bpfstats::attached_program(&self.lb.name, "l0")?
            .map(|(id, _)| id)
            .context("no XDP program on l0")
    }

    /// Generated frames the sink on g0 has dropped (the veth's XDP drop counters).
    fn delivered(&self) -> Result<u64> {
        let out = self.gen.exec("ethtool -S g0");
        let mut total = None;
        for line in out.lines() {
            let Some((name, value)) = line.trim().split_once(':') else {
                continue;
            };
            if name.starts_with("rx_queue_") && name.ends_with("_xdp_drops") {
                *total.get_or_insert(0) += value.trim().parse::<u64>()?;
            }
        }
        total.with_context(|| format!("no XDP drop counters on g0: {out}"))
    }
}

impl Drop for Wire {
    fn drop(&mut self) {
        if let Some(mut lbd) = self.lbd.take() {
            let _ = lbd.kill();
            let _ = lbd.wait();
        }
        // Deleting the namespaces (Netns's drop) removes the veth and with it the
        // attachments; the pins go with the bpffs.
        let _ = Command::new("umount").arg(&self.bpffs).status();
        let _ = fs::remove_dir_all(&self.bpffs);
        let _ = fs::remove_dir_all(&self.dir);
    }
}

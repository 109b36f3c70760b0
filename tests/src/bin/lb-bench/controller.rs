//! lbd itself at scale: a release lbd started on a config of many services (1000 x 16
//! in full mode), timed from start until every table is installed, then its resident
//! memory once idle. Backends are addresses with permanent neighbour entries (no
//! health checks), so what is measured is lbd: config, MAC lookup, Maglev tables, maps.

use std::{
    fs,
    path::PathBuf,
    process::Child,
    thread,
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use lb_api::control::{Request, Response};
use lb_tests::{
    lab::{ask_socket, binary, spawn_lbd},
    netns::{sh, Netns},
};

use crate::{Args, Figure};

/// Address of backend `k` (distinct for every service and backend).
pub fn backend(k: usize) -> String {
    format!("10.201.{}.{}", k / 250, k % 250 + 1)
}

/// lbd's start-to-installed time and idle RSS at `services` x 16 backends.
pub fn lbd_at_scale(args: &Args, figures: &mut Vec<Figure>) -> Result<()> {
    let (services, per, runs) = if args.quick {
        (50usize, 16usize, 1usize)
    } else {
        (1000, 16, 3)
    };
    let ns = Netns::new("rs");
    let dir = PathBuf::from(format!("/run/lbt-scale-{}", std::process::id()));
    let _cleanup = Cleanup(dir.clone());
    fs::create_dir_all(&dir)?;

    // One veth end holds the backends' subnet; every backend gets a permanent
    // neighbour entry there.
    ns.exec("ip link add l0 type veth peer name l1 && ip link set l0 up && ip link set l1 up && ip addr add 10.201.0.254/16 dev l0");
    fs::write(dir.join("neigh.batch"), neigh_batch(services * per))?;
    ns.exec(&format!("ip -batch {}", dir.join("neigh.batch").display()));

    let config = dir.join("lbd.toml");
    let socket = dir.join("lbd.sock");
    let mut text = format!(
        "[global]\nnode_name = \"bench-scale\"\ncontrol_socket = \"{}\"\nmetrics_listen = \"off\"\n\
         pin_dir = \"{}\"\nmax_services = {}\nmax_backends = {}\n\n\
         [[interface]]\nname = \"l0\"\nxdp_mode = \"driver\"\n\n",
        socket.display(),
        dir.join("pins/lbd").display(),
        services + 8,
        services * per + 8,
    );
    text.push_str(&scale_services(services, per));
    fs::write(&config, text)?;

    binary("lbd"); // built before the clock starts
    let mut ready = Vec::new();
    let mut rss = Vec::new();
    for run in 0..runs {
        // A bpffs of its own per run, so nothing is adopted from the previous run;
        // private (0700), with lbd's pins in a directory below (lbd refuses a
        // world-writable pin directory).
        let pins = dir.join("pins");
        fs::create_dir_all(&pins)?;
        sh(&format!(
            "umount {0} 2>/dev/null; mount -t bpf -o mode=0700 bpf {0}",
            pins.display()
        ));
        let t = Instant::now();
        let lbd = Lbd(spawn_lbd(
            &ns.name,
            &config,
            &dir.join(format!("lbd-{run}.log")),
        )?);
        loop {
            if installed(&socket, services, per) {
                break;
            }
            if t.elapsed() > Duration::from_secs(120) {
                let log = fs::read_to_string(dir.join(format!("lbd-{run}.log")))?;
                let tail: Vec<&str> = log.lines().rev().take(10).collect();
                bail!(
                    "lbd did not install {services} services in 120 s ({}); its log ends:\n{}",
                    progress(&socket),
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
            thread::sleep(Duration::from_millis(250));
        }
        ready.push(t.elapsed().as_secs_f64());
        thread::sleep(Duration::from_secs(2));
        rss.push(vm_rss_mib(lbd.0.id())?);
        drop(lbd);
    }
    figures.push(Figure::new(
        format!("lbd start to {services} services x {per} backends installed"),
        "s",
        ready,
        "release lbd: config, neighbour lookup, Maglev tables, map writes; polled every 250 ms \
         with `lbctl list`'s request (which itself costs lbd time at this size)"
            .into(),
    ));
    figures.push(Figure::new(
        format!("lbd resident memory, idle, {services} services x {per} backends"),
        "MiB",
        rss,
        "VmRSS 2 s after every table was installed; the tables themselves live in kernel maps"
            .into(),
    ));
    Ok(())
}

/// `ip -batch` lines giving backends `0..n` (on `l0`) permanent neighbour entries.
pub fn neigh_batch(n: usize) -> String {
    (0..n)
        .map(|k| {
            format!(
                "neigh add {} lladdr 02:00:00:00:{:02x}:{:02x} dev l0 nud permanent\n",
                backend(k),
                k >> 8 & 0xff,
                k & 0xff
            )
        })
        .collect()
}

/// `services` TCP services on VIPs 10.200.x.y:80 with `per` backends each, no checks.
pub fn scale_services(services: usize, per: usize) -> String {
    let mut text = String::new();
    for i in 0..services {
        text.push_str(&format!(
            "[[service]]\nname = \"svc{i}\"\nvip = \"10.200.{}.{}\"\nport = 80\nprotocol = \"tcp\"\n\
             health = {{ kind = \"none\" }}\n",
            i / 250,
            i % 250 + 1
        ));
        for j in 0..per {
            text.push_str(&format!(
                "[[service.backend]]\naddress = \"{}\"\n",
                backend(i * per + j)
            ));
        }
        text.push('\n');
    }
    text
}

/// Whether lbd reports all `services` with every backend holding slots.
fn installed(socket: &std::path::Path, services: usize, per: usize) -> bool {
    match ask_socket(socket, Request::List) {
        Some(Response::List { services: list }) => {
            list.len() == services
                && list
                    .iter()
                    .all(|s| s.backends.len() == per && s.backends.iter().all(|b| b.slots > 0))
        }
        _ => false,
    }
}

/// What lbd has installed so far, for an error message.
fn progress(socket: &std::path::Path) -> String {
    match ask_socket(socket, Request::List) {
        Some(Response::List { services }) => {
            let backends: Vec<usize> = services
                .iter()
                .flat_map(|s| s.backends.iter().map(|b| b.slots))
                .collect();
            format!(
                "{} services listed, {} of {} backends without slots",
                services.len(),
                backends.iter().filter(|n| **n == 0).count(),
                backends.len()
            )
        }
        other => format!("lbd answered {other:?}"),
    }
}

fn vm_rss_mib(pid: u32) -> Result<f64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .context("no VmRSS")?;
    Ok(kib / 1024.0)
}

/// Kills lbd on drop.
struct Lbd(Child);

impl Drop for Lbd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Unmounts the pins' bpffs and removes the scratch directory on drop.
struct Cleanup(PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.0.join("pins"))
            .stderr(std::process::Stdio::null())
            .status();
        let _ = fs::remove_dir_all(&self.0);
    }
}

//! End to end against the seeds' alternatives: the same client, the same three nginx
//! backends and the same VIP, through (a) lbd XDP DR, (b) haproxy in TCP mode as seed
//! 002 configures it, (c) nginx stream as seed 003 configures it. wrk in the client's
//! namespace drives short connections, keep-alive connections and 1 MiB downloads;
//! reported are requests/s (MiB/s for downloads), p50/p99 latency and the LB's CPU time
//! per request: the XDP program's bpf_stats run time for lbd, the proxy processes'
//! utime+stime for haproxy and nginx. The proxies carry every byte both ways; with lbd
//! replies go straight from the backend to the client (DSR), which is the point of the
//! comparison. Numbers are reported, never asserted; broken runs (no requests, socket
//! errors, non-2xx answers, a proxy that does not start) fail the bench.

use std::{
    ffi::OsString,
    fs,
    path::Path,
    process::{Command, Stdio},
    sync::atomic::{AtomicU16, Ordering},
    time::{Duration, Instant},
};

use anyhow::{bail, ensure, Context, Result};
use lb_tests::{
    lab::{Lab, BACKENDS, VIP},
    netns::sh,
};

use crate::{bpfstats, median, Args, Figure};

/// How long each measurement runs and how often it is repeated.
struct Plan {
    runs: usize,
    secs: u32,
}

/// A traffic pattern wrk generates against http://VIP{path}.
struct Workload {
    name: &'static str,
    path: &'static str,
    connections: u32,
    /// One request per TCP connection (`Connection: close`).
    close: bool,
    /// The figures reported for it.
    metrics: &'static [Metric],
    /// Downloads are reported in MiB/s and CPU per MiB (each request is 1 MiB).
    per_mib: bool,
}

const WORKLOADS: [Workload; 3] = [
    Workload {
        name: "short connections",
        path: "/",
        connections: 16,
        close: true,
        metrics: &[Metric::Rate, Metric::P50, Metric::P99, Metric::Cpu],
        per_mib: false,
    },
    Workload {
        name: "keep-alive connections",
        path: "/",
        connections: 16,
        close: false,
        metrics: &[Metric::Rate, Metric::P99, Metric::Cpu],
        per_mib: false,
    },
    Workload {
        name: "1 MiB downloads",
        path: "/big",
        connections: 4,
        close: false,
        metrics: &[Metric::Rate, Metric::Cpu],
        per_mib: true,
    },
];

/// A load balancer under test, in report order (lbd first: the ratios are against it).
struct Contender {
    name: &'static str,
    /// How it is configured.
    setup: &'static str,
    /// What its CPU figure counts.
    cpu: &'static str,
}

const CONTENDERS: [Contender; 3] = [
    Contender {
        name: "lbd (XDP DR)",
        setup: "lbd XDP driver mode, HTTP checks every 300 ms; replies bypass the LB (DSR)",
        cpu: "bpf_stats run time of lb_xdp on the LB's eth0: the XDP program only, \
              kernel veth/softirq work excluded",
    },
    Contender {
        name: "haproxy (TCP mode)",
        setup: "seed 002's haproxy.cfg on VIP:80 (no log lines, no ssl-hello-chk: plain HTTP \
                backends), haproxy -db, default nbthread",
        cpu: "utime+stime of the haproxy process (all threads), its kernel socket work included",
    },
    Contender {
        name: "nginx stream",
        setup: "seed 003's nginx stream config on VIP:80, worker_processes auto",
        cpu: "utime+stime of the nginx master and workers, their kernel socket work included",
    },
];

#[derive(Clone, Copy)]
enum Metric {
    Rate,
    P50,
    P99,
    Cpu,
}

/// One wrk run through one LB.
#[derive(Clone, Copy, Default)]
struct Sample {
    /// Requests/s, or MiB/s for downloads.
    rate: f64,
    p50_us: f64,
    p99_us: f64,
    /// LB CPU µs per request (per MiB for downloads).
    cpu_us: f64,
    /// XDP program runs per request (lbd only).
    xdp_runs: f64,
}

impl Metric {
    fn of(self, s: &Sample) -> f64 {
        match self {
            Metric::Rate => s.rate,
            Metric::P50 => s.p50_us,
            Metric::P99 => s.p99_us,
            Metric::Cpu => s.cpu_us,
        }
    }
}

/// Short connections, keep-alive connections and downloads through lbd, haproxy and
/// nginx stream, in one lab with nginx backends; figures grouped by workload and metric,
/// each LB next to lbd.
pub fn versus_proxies(args: &Args, figures: &mut Vec<Figure>) -> Result<()> {
    let plan = if args.quick {
        Plan { runs: 1, secs: 2 }
    } else {
        Plan { runs: 3, secs: 6 }
    };
    let mut lab = Lab::up("px");
    // lab.sh shrinks the client's receive buffer (for its connection-survival tests);
    // downloads here get the kernel's default instead.
    sh(&format!(
        "ip netns exec {} sysctl -qw net.ipv4.tcp_rmem='4096 131072 6291456'",
        lab.ns("client")
    ));
    serve_with_nginx(&mut lab)?;
    let lbd = through_lbd(&mut lab, &plan).context("through lbd")?;
    sh(&format!("ip -n {} addr add {VIP}/32 dev lo", lab.ns("lb")));
    let haproxy = through_haproxy(&mut lab, &plan).context("through haproxy")?;
    let nginx = through_nginx_stream(&mut lab, &plan).context("through nginx stream")?;
    sh(&format!("ip -n {} addr del {VIP}/32 dev lo", lab.ns("lb")));
    push_figures(&plan, &[lbd, haproxy, nginx], figures);
    Ok(())
}

/// Replace the lab's python servers by one single-process nginx per backend: `/` (its
/// name, 2 bytes), `/healthz` ("ok") and `/big` (1 MiB) from the lab's web roots.
fn serve_with_nginx(lab: &mut Lab) -> Result<()> {
    for i in 0..3 {
        lab.stop_backend(i);
        let node = format!("b{}", i + 1);
        let dir = lab.dir.display().to_string();
        let temp: String = ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"]
            .iter()
            .map(|t| format!("  {t}_temp_path {dir}/{node}-tmp/{t};\n"))
            .collect();
        let conf = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\npid {dir}/{node}-nginx.pid;\n\
             error_log {dir}/{node}-nginx.err warn;\nevents {{ worker_connections 4096; }}\n\
             http {{\n  access_log off;\n{temp}  default_type text/plain;\n  sendfile on;\n\
               keepalive_requests 1000000;\n  server {{\n    listen 80 backlog=4096;\n\
                 root {dir}/{node};\n  }}\n}}\n"
        );
        let file = lab.dir.join(format!("{node}-nginx.conf"));
        fs::write(&file, conf).with_context(|| format!("write {}", file.display()))?;
        fs::create_dir_all(lab.dir.join(format!("{node}-tmp")))?;
        let log = lab.dir.join(format!("{node}-nginx.err"));
        let pid = spawn_in(
            lab,
            &node,
            &log,
            &[
                "nginx".into(),
                "-e".into(),
                log.clone().into(),
                "-c".into(),
                file.into(),
            ],
        )?;
        wait_listening(lab, &node, "0.0.0.0:80", pid, &log)?;
    }
    Ok(())
}

/// (a) lbd in XDP driver mode over the three backends; CPU from bpf_stats. Stops lbd
/// and detaches its XDP program afterwards (lbd keeps its pinned link on exit).
fn through_lbd(lab: &mut Lab, plan: &Plan) -> Result<Vec<Vec<Sample>>> {
    lab.write_config(&Lab::web_service([Some(1), Some(1), Some(1)]));
    lab.start_lbd();
    lab.wait_healthy(3);
    let prog_id = xdp_prog_on_lb(lab)?.context("lbd attached no XDP program to eth0")?;
    let samples = aya::sys::enable_stats(aya::sys::Stats::RunTime)
        .context("enable bpf_stats run time")
        .and_then(|_stats| measure(lab, &CpuMeter::Xdp { prog_id }, plan));
    lab.stop_lbd_on("lb");
    let out = lab.lbctl(&["detach"]);
    ensure!(
        out.status.success(),
        "lbctl detach failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(
        xdp_prog_on_lb(lab)?.is_none(),
        "an XDP program is still attached to the LB's eth0 after lbctl detach"
    );
    samples
}

/// (b) haproxy as seed 002 runs it (TCP frontend, HTTP checks of /healthz, round robin),
/// on port 80 of the VIP instead of 8443 -> 6443, in the foreground, without syslog.
fn through_haproxy(lab: &mut Lab, plan: &Plan) -> Result<Vec<Vec<Sample>>> {
    let servers: String = BACKENDS
        .iter()
        .enumerate()
        .map(|(i, b)| format!("    server master0{} {b}:80 check\n", i + 1))
        .collect();
    let conf = format!(
        "defaults\n    mode http\n    option dontlognull\n    option http-server-close\n\
         \x20   option forwardfor except 127.0.0.0/8\n    option redispatch\n    retries 1\n\
         \x20   timeout http-request 10s\n    timeout queue 20s\n    timeout connect 5s\n\
         \x20   timeout client 20s\n    timeout server 20s\n    timeout http-keep-alive 10s\n\
         \x20   timeout check 10s\n\
         frontend apiserver\n    bind {VIP}:80\n    mode tcp\n    default_backend apiserver\n\
         backend apiserver\n    option httpchk GET /healthz\n    http-check expect status 200\n\
         \x20   mode tcp\n    balance roundrobin\n{servers}"
    );
    let file = lab.dir.join("haproxy.cfg");
    fs::write(&file, conf).with_context(|| format!("write {}", file.display()))?;
    let log = lab.dir.join("haproxy.log");
    let pid = spawn_in(
        lab,
        "lb",
        &log,
        &["haproxy".into(), "-db".into(), "-f".into(), file.into()],
    )?;
    wait_listening(lab, "lb", &format!("{VIP}:80"), pid, &log)?;
    let samples = measure(lab, &CpuMeter::Processes { root: pid }, plan);
    stop_tree(pid)?;
    samples
}

/// (c) nginx stream as seed 003 (kubeadm-ha's nginx-default.conf) runs it: weighted
/// upstream with passive checks, 1 s connect and 3 s idle timeouts, worker_processes
/// auto. It runs as init of its own PID namespace (`unshare --kill-child`), so killing
/// the adopted process also takes the workers with it.
fn through_nginx_stream(lab: &mut Lab, plan: &Plan) -> Result<Vec<Vec<Sample>>> {
    let dir = lab.dir.display().to_string();
    let upstream: String = BACKENDS
        .iter()
        .map(|b| format!("        server {b}:80 weight=5 max_fails=3 fail_timeout=30s;\n"))
        .collect();
    let conf = format!(
        "load_module /usr/lib/nginx/modules/ngx_stream_module.so;\n\
         worker_processes auto;\ndaemon off;\npid {dir}/lb-nginx.pid;\n\
         error_log {dir}/lb-nginx.err warn;\nevents {{\n    worker_connections 1024;\n}}\n\
         stream {{\n    upstream apiserver {{\n{upstream}    }}\n    server {{\n\
         \x20       listen {VIP}:80;\n        proxy_connect_timeout 1s;\n\
         \x20       proxy_timeout 3s;\n        proxy_pass apiserver;\n    }}\n}}\n"
    );
    let file = lab.dir.join("lb-nginx.conf");
    fs::write(&file, conf).with_context(|| format!("write {}", file.display()))?;
    let log = lab.dir.join("lb-nginx.err");
    let argv: Vec<OsString> = vec![
        "unshare".into(),
        "--pid".into(),
        "--fork".into(),
        "--kill-child".into(),
        "nginx".into(),
        "-e".into(),
        log.clone().into(),
        "-c".into(),
        file.into(),
    ];
    let pid = spawn_in(lab, "lb", &log, &argv)?;
    wait_listening(lab, "lb", &format!("{VIP}:80"), pid, &log)?;
    let samples = measure(lab, &CpuMeter::Processes { root: pid }, plan);
    stop_tree(pid)?;
    samples
}

/// Every workload `plan.runs` times through whatever LB serves the VIP now, the LB's
/// CPU read with `meter` around each wrk run. Result: samples per workload.
fn measure(lab: &Lab, meter: &CpuMeter, plan: &Plan) -> Result<Vec<Vec<Sample>>> {
    // Fresh client ports each time, below the ephemeral range wrk draws from: a port
    // used before may be in TIME_WAIT.
    static NEXT_PORT: AtomicU16 = AtomicU16::new(21000);
    for _ in 0..3 {
        let body = lab.curl(NEXT_PORT.fetch_add(1, Ordering::Relaxed), "/");
        ensure!(
            ["b1", "b2", "b3"].contains(&body.as_str()),
            "GET http://{VIP}/ through the LB answered {body:?}, not a backend's name"
        );
    }
    wrk(lab, &WORKLOADS[0], 1)?; // warm-up
    let mut samples = vec![Vec::new(); WORKLOADS.len()];
    for _ in 0..plan.runs {
        for (w, workload) in WORKLOADS.iter().enumerate() {
            let before = meter.read()?;
            let run = wrk(lab, workload, plan.secs)?;
            let after = meter.read()?;
            let cpu = after.time.saturating_sub(before.time);
            let runs = after.xdp_runs.saturating_sub(before.xdp_runs);
            match meter {
                CpuMeter::Xdp { .. } => ensure!(
                    runs > 0,
                    "{}: lb_xdp never ran, the traffic did not cross lbd",
                    workload.name
                ),
                CpuMeter::Processes { .. } => ensure!(
                    !cpu.is_zero(),
                    "{}: the proxy used no CPU, the traffic did not cross it",
                    workload.name
                ),
            }
            samples[w].push(Sample {
                rate: if workload.per_mib {
                    run.mib_per_sec
                } else {
                    run.requests_per_sec
                },
                p50_us: run.p50_us,
                p99_us: run.p99_us,
                cpu_us: cpu.as_secs_f64() * 1e6 / run.requests,
                xdp_runs: runs as f64 / run.requests,
            });
        }
    }
    Ok(samples)
}

/// One figure per workload, metric and LB (in that order), ratio against lbd.
fn push_figures(plan: &Plan, results: &[Vec<Vec<Sample>>], figures: &mut Vec<Figure>) {
    for (w, workload) in WORKLOADS.iter().enumerate() {
        for &metric in workload.metrics {
            let lbd_median = median_of(&results[0][w], |s| metric.of(s));
            for (lb, contender) in CONTENDERS.iter().enumerate() {
                let samples = &results[lb][w];
                let (what, unit, how) = describe(metric, workload, contender, samples, plan);
                figures.push(
                    Figure::new(
                        format!("{} via {}{what}", workload.name, contender.name),
                        unit,
                        samples.iter().map(|s| metric.of(s)).collect(),
                        format!("{how}; ratio: vs lbd"),
                    )
                    .vs(lbd_median),
                );
            }
        }
    }
}

/// A figure's name suffix, unit and note.
fn describe(
    metric: Metric,
    workload: &Workload,
    contender: &Contender,
    samples: &[Sample],
    plan: &Plan,
) -> (&'static str, &'static str, String) {
    let per = if workload.per_mib { "MiB" } else { "request" };
    match metric {
        Metric::Rate => (
            "",
            if workload.per_mib { "MiB/s" } else { "req/s" },
            format!(
                "{}; {}; 2 vCPUs shared by client, LB and the 3 nginx backends",
                wrk_note(workload, plan),
                contender.setup
            ),
        ),
        Metric::P50 => (": p50 latency", "µs", "wrk --latency".into()),
        Metric::P99 => (
            ": p99 latency",
            "µs",
            format!(
                "wrk --latency; p50 {:.0} µs",
                median_of(samples, |s| s.p50_us)
            ),
        ),
        Metric::Cpu => {
            let packets = median_of(samples, |s| s.xdp_runs);
            let packets = if packets > 0.0 {
                format!("; {packets:.1} packets through XDP per {per}")
            } else {
                String::new()
            };
            (
                if workload.per_mib {
                    ": LB CPU per MiB"
                } else {
                    ": LB CPU per request"
                },
                "µs",
                format!("{}{packets}", contender.cpu),
            )
        }
    }
}

/// The median of `f` over `samples`.
fn median_of(samples: &[Sample], f: impl Fn(&Sample) -> f64) -> f64 {
    median(samples.iter().map(f).collect())
}

/// How a workload was driven, for the notes.
fn wrk_note(workload: &Workload, plan: &Plan) -> String {
    format!(
        "wrk -t1 -c{} -d{}s --latency{} http://{VIP}{} from the client netns, {} run(s)",
        workload.connections,
        plan.secs,
        if workload.close {
            " -H 'Connection: close'"
        } else {
            ""
        },
        workload.path,
        plan.runs
    )
}

/// What wrk reported.
struct WrkRun {
    requests: f64,
    requests_per_sec: f64,
    mib_per_sec: f64,
    p50_us: f64,
    p99_us: f64,
}

/// Run wrk from the client's namespace for `secs` and parse its report; fails when it
/// made no requests or more than 1% of them hit socket errors or non-2xx/3xx answers.
fn wrk(lab: &Lab, workload: &Workload, secs: u32) -> Result<WrkRun> {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &lab.ns("client"), "wrk", "-t1"])
        .arg(format!("-c{}", workload.connections))
        .arg(format!("-d{secs}s"))
        .arg("--latency");
    if workload.close {
        cmd.args(["-H", "Connection: close"]);
    }
    let out = cmd
        .arg(format!("http://{VIP}{}", workload.path))
        .output()
        .context("run wrk")?;
    let text = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success(),
        "wrk failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    parse_wrk(&text).with_context(|| format!("{}: wrk said:\n{text}", workload.name))
}

/// Parse wrk 4.1's report (`--latency`).
fn parse_wrk(text: &str) -> Result<WrkRun> {
    let field = |prefix: &str| -> Option<&str> {
        text.lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(prefix))
            .map(str::trim)
    };
    let requests: f64 = text
        .lines()
        .find(|l| l.contains(" requests in "))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .context("no \"N requests in\" line")?;
    ensure!(requests > 0.0, "wrk made no requests");
    let errors: f64 = field("Socket errors:").map_or(0.0, |s| {
        s.split(',')
            .filter_map(|kv| kv.split_whitespace().nth(1)?.parse::<f64>().ok())
            .sum()
    });
    let bad: f64 = field("Non-2xx or 3xx responses:").map_or(Ok(0.0), str::parse)?;
    ensure!(
        errors <= requests / 100.0 && bad <= requests / 100.0,
        "{errors} socket errors and {bad} non-2xx/3xx answers in {requests} requests"
    );
    let latency = |q: &str| -> Result<f64> {
        field(q)
            .and_then(micros)
            .with_context(|| format!("no {q} latency"))
    };
    Ok(WrkRun {
        requests,
        requests_per_sec: field("Requests/sec:").context("no Requests/sec")?.parse()?,
        mib_per_sec: field("Transfer/sec:")
            .and_then(mebibytes)
            .context("no Transfer/sec")?,
        p50_us: latency("50%")?,
        p99_us: latency("99%")?,
    })
}

/// Split wrk's "12.34ms" into number and unit.
fn number_unit(s: &str) -> Option<(f64, &str)> {
    let at = s.find(|c: char| c.is_ascii_alphabetic())?;
    Some((s[..at].parse().ok()?, &s[at..]))
}

/// wrk's time ("812.00us", "1.20ms", "2.00s", "1.00m") in µs.
fn micros(s: &str) -> Option<f64> {
    let (n, unit) = number_unit(s)?;
    let scale = match unit {
        "us" => 1.0,
        "ms" => 1e3,
        "s" => 1e6,
        "m" => 60e6,
        "h" => 3600e6,
        _ => return None,
    };
    Some(n * scale)
}

/// wrk's byte count ("617.25KB", binary units) in MiB.
fn mebibytes(s: &str) -> Option<f64> {
    let (n, unit) = number_unit(s)?;
    let exp = ["B", "KB", "MB", "GB", "TB"]
        .iter()
        .position(|u| *u == unit)?;
    Some(n * 1024f64.powi(exp as i32) / (1024.0 * 1024.0))
}

/// How to read the LB's CPU time.
enum CpuMeter {
    /// bpf_stats of one XDP program (needs `enable_stats` held).
    Xdp { prog_id: u32 },
    /// utime+stime of a process and all its descendants.
    Processes { root: u32 },
}

/// A cumulative CPU reading.
struct CpuReading {
    time: Duration,
    /// Cumulative XDP program runs (0 for processes).
    xdp_runs: u64,
}

impl CpuMeter {
    fn read(&self) -> Result<CpuReading> {
        match *self {
            CpuMeter::Xdp { prog_id } => {
                let (runs, time) = bpfstats::program_stats(prog_id)?;
                Ok(CpuReading {
                    time,
                    xdp_runs: runs,
                })
            }
            CpuMeter::Processes { root } => {
                // SAFETY: sysconf has no preconditions.
                let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
                let ticks: u64 = tree(root)
                    .iter()
                    .filter_map(|p| proc_stat(*p))
                    .map(|s| s.ticks)
                    .sum();
                Ok(CpuReading {
                    time: Duration::from_secs_f64(ticks as f64 / hz),
                    xdp_runs: 0,
                })
            }
        }
    }
}

/// The id of the XDP program attached to the LB namespace's eth0, named lb_xdp.
fn xdp_prog_on_lb(lab: &Lab) -> Result<Option<u32>> {
    let Some((id, name)) = bpfstats::attached_program(&lab.ns("lb"), "eth0")? else {
        return Ok(None);
    };
    ensure!(
        name == lb_common::maps::programs::LB,
        "eth0 runs XDP program {name:?}, not lbd's"
    );
    Ok(Some(id))
}

/// Start `argv` in `node`'s namespace, stderr appended to `log`, owned by the lab (killed when it
/// goes away). Returns its pid (`ip netns exec` execs, so it is `argv[0]`'s).
fn spawn_in(lab: &mut Lab, node: &str, log: &Path, argv: &[OsString]) -> Result<u32> {
    let stderr = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("create {}", log.display()))?;
    let child = Command::new("ip")
        .args(["netns", "exec", &lab.ns(node)])
        .args(argv)
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .with_context(|| format!("start {argv:?} in {node}"))?;
    let pid = child.id();
    lab.adopt_process(child);
    Ok(pid)
}

/// Wait until something listens on `addr` in `node`'s namespace; fails with `log` if
/// process `pid` exits first or nothing listens within 10 s.
fn wait_listening(lab: &Lab, node: &str, addr: &str, pid: u32, log: &Path) -> Result<()> {
    let start = Instant::now();
    loop {
        let listening = sh(&format!("ip netns exec {} ss -ltnH", lab.ns(node)));
        if listening.contains(&format!("{addr} ")) {
            return Ok(());
        }
        if !alive(pid) || start.elapsed() > Duration::from_secs(10) {
            bail!(
                "nothing listens on {addr} in {node}; {}:\n{}",
                log.display(),
                fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// SIGKILL process `pid` (the lab reaps it later) and wait until it and every
/// descendant are gone.
fn stop_tree(pid: u32) -> Result<()> {
    let pids = tree(pid);
    // SAFETY: plain kill(2) of a process this bench started.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    let start = Instant::now();
    while pids.iter().any(|p| alive(*p)) {
        ensure!(
            start.elapsed() < Duration::from_secs(10),
            "processes {pids:?} still running 10 s after SIGKILL"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// What /proc/PID/stat tells.
struct ProcStat {
    ppid: u32,
    zombie: bool,
    /// utime + stime, clock ticks.
    ticks: u64,
}

/// /proc/PID/stat (fields 3, 4, 14 and 15), or None if there is no such process.
fn proc_stat(pid: u32) -> Option<ProcStat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces; fields after it are plain.
    let rest: Vec<&str> = text.rsplit_once(')')?.1.split_whitespace().collect();
    Some(ProcStat {
        zombie: rest.first()? == &"Z",
        ppid: rest.get(1)?.parse().ok()?,
        ticks: rest.get(11)?.parse::<u64>().ok()? + rest.get(12)?.parse::<u64>().ok()?,
    })
}

/// Whether `pid` runs (exists and is not a zombie).
fn alive(pid: u32) -> bool {
    proc_stat(pid).is_some_and(|s| !s.zombie)
}

/// `root` and all its descendants.
fn tree(root: u32) -> Vec<u32> {
    let all: Vec<(u32, u32)> = fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| Some((pid, proc_stat(pid)?.ppid)))
        .collect();
    let mut pids = vec![root];
    let mut i = 0;
    while i < pids.len() {
        let parent = pids[i];
        pids.extend(all.iter().filter(|(_, pp)| *pp == parent).map(|(p, _)| *p));
        i += 1;
    }
    pids
}

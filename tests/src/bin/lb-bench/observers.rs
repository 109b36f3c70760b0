//! Observers never stall the loop (issue 10, point 2): a release lbd at 1000 services x
//! 16 backends (quick: 50 x 16) with 1M (quick: 100k) tracked connections in its pinned
//! table, one VRRP v3 instance advertising every 100 ms and one TCP-checked service
//! whose backend (a listener of this bench) lives in a second namespace. Measured: one
//! `lbctl list` request and one metrics scrape alone, then while threads send both
//! back-to-back; meanwhile the gaps between VRRP adverts (captured on the veth's peer
//! end) and the time from the checked backend's listener closing to its state DOWN in
//! the data plane's backend map (read directly, not through lbd). `LB_BENCH_LBD=/path`
//! runs the same figures against another lbd binary (before/after a change).

use std::{
    ffi::CString,
    fs,
    io::{Read, Write},
    net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream},
    os::{
        fd::{AsRawFd, FromRawFd, OwnedFd},
        unix::net::UnixStream,
    },
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicBool, Ordering},
        mpsc, Arc,
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{anyhow, bail, ensure, Context, Result};
use lb_api::control::Request;
use lb_common::maps::{addr_words, names, proto, Backend, ConnKey, ConnValue, BACKEND_DOWN};
use lb_tests::{
    lab::binary,
    netns::{enter_existing, sh, Netns},
};
use serde_json::Value;

use crate::{Args, Figure};

/// The checked backend: an address on the peer namespace's veth end.
const CHECKED: Ipv4Addr = Ipv4Addr::new(10, 201, 255, 1);
/// Its service's port (the other services use 80).
const CHECKED_PORT: u16 = 8080;
/// Where lbd serves metrics inside its namespace.
const METRICS_PORT: u16 = 9469;
/// Request threads of each kind while hammering.
const HAMMER_THREADS: usize = 2;
/// At most this many requests per hammer thread.
const HAMMER_MAX_REQUESTS: usize = 100_000;
/// How long one start of lbd may take to install everything...
const INSTALL_WAIT: Duration = Duration::from_secs(90);
/// ... and how many starts it gets.
const INSTALL_ATTEMPTS: usize = 3;

/// Sizes and durations of one mode.
struct Plan {
    services: usize,
    per: usize,
    entries: usize,
    /// Single requests of each kind, alone.
    samples: usize,
    /// Health failures timed without load.
    idle_failures: usize,
    /// Nothing asked of lbd for this long (advert gaps, idle).
    idle: Duration,
    /// The hammer.
    hammer: Duration,
    /// A request (or a health failure) not answered (applied) within this is counted
    /// as this long, a lower bound.
    timeout: Duration,
}

impl Plan {
    fn of(args: &Args) -> Plan {
        if args.quick {
            Plan {
                services: 50,
                per: 16,
                entries: 100_000,
                samples: 3,
                idle_failures: 1,
                idle: Duration::from_millis(1500),
                hammer: Duration::from_secs(3),
                timeout: Duration::from_secs(10),
            }
        } else {
            Plan {
                services: 1000,
                per: 16,
                entries: 1_000_000,
                samples: 5,
                idle_failures: 3,
                idle: Duration::from_secs(3),
                hammer: Duration::from_secs(10),
                timeout: Duration::from_secs(120),
            }
        }
    }
}

/// Wall-clock seconds (the capture's kernel timestamps are wall-clock too).
fn now_s() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The observer figures, for the workspace's lbd or `LB_BENCH_LBD`.
pub fn observers(args: &Args, figures: &mut Vec<Figure>) -> Result<()> {
    let plan = Plan::of(args);
    let (lbd_bin, tag) = match std::env::var_os("LB_BENCH_LBD") {
        Some(p) => {
            let p = PathBuf::from(p);
            ensure!(p.is_file(), "LB_BENCH_LBD={} is not a file", p.display());
            let tag = format!(" [lbd {}]", p.display());
            (p, tag)
        }
        None => (binary("lbd"), String::new()),
    };
    let section = Instant::now();
    let first_figure = figures.len();
    let (services, per) = (plan.services, plan.per);

    // lbd's namespace holds l0 (XDP, VRRP, every backend's permanent neighbour entry);
    // the peer namespace holds l1, the checked backend's address and listener, and
    // the advert capture.
    let ns = Netns::new("ob");
    let peer = Netns::new("obp");
    let dir = PathBuf::from(format!("/run/lbt-obs-{}", std::process::id()));
    let _cleanup = Cleanup(dir.clone());
    fs::create_dir_all(&dir)?;
    ns.exec(&format!(
        "ip link add l0 type veth peer name l1 && ip link set l1 netns {} && ip link set l0 up \
         && ip addr add 10.201.0.254/16 dev l0",
        peer.name
    ));
    peer.exec(&format!(
        "ip link set l1 up && ip addr add {CHECKED}/16 dev l1"
    ));
    let peer_mac = peer
        .exec("cat /sys/class/net/l1/address")
        .trim()
        .to_string();
    let mut batch = crate::controller::neigh_batch(services * per);
    batch.push_str(&format!(
        "neigh add {CHECKED} lladdr {peer_mac} dev l0 nud permanent\n"
    ));
    fs::write(dir.join("neigh.batch"), batch)?;
    ns.exec(&format!("ip -batch {}", dir.join("neigh.batch").display()));

    let config = dir.join("lbd.toml");
    let socket = dir.join("lbd.sock");
    // A bpffs of this run's own; lbd pins in a directory below its root (which holds
    // the kernel's progs.debug and maps.debug), mode 0700: lbd refuses a pin directory
    // that holds anything else or that others may write to.
    let bpffs = dir.join("bpffs");
    let pins = bpffs.join("lbd");
    fs::write(&config, config_text(&plan, &socket, &pins))?;
    fs::create_dir_all(&bpffs)?;

    let checked = SocketAddr::from((CHECKED, CHECKED_PORT));
    let mut listener = Some(Listener::start(&peer.name, checked)?);
    let log = dir.join("lbd.log");
    let mut restarts = Vec::new();
    let mut installed_in = Duration::ZERO;
    let lbd = loop {
        // A fresh bpffs per start: nothing is adopted from a previous attempt.
        sh(&format!(
            "umount {0} 2>/dev/null; mount -t bpf -o mode=0700 bpf {0}",
            bpffs.display()
        ));
        let mut lbd = Lbd(spawn(&ns.name, &lbd_bin, &config, &log)?);
        let attempt = Instant::now();
        while attempt.elapsed() < INSTALL_WAIT {
            if installed(&socket, services, per) {
                installed_in = attempt.elapsed();
                break;
            }
            if let Some(status) = lbd.0.try_wait()? {
                bail!("lbd exited ({status}); its log ends:\n{}", tail(&log));
            }
            thread::sleep(Duration::from_millis(500));
        }
        if !installed_in.is_zero() {
            break lbd;
        }
        // Seen at 1000 x 16: some backends never get a MAC (their resolution waits
        // forever for a netlink answer lost when the socket's buffer overflowed).
        // Say so, keep the log, and start again.
        let why = progress(&socket);
        let kept = std::env::temp_dir().join(format!(
            "lbt-observers-{}-start{}.log",
            std::process::id(),
            restarts.len() + 1
        ));
        let _ = fs::copy(&log, &kept);
        restarts.push(format!("{why}; its log is kept in {}", kept.display()));
        drop(lbd);
        if restarts.len() == INSTALL_ATTEMPTS {
            bail!(
                "lbd did not install {services} services x {per} backends and the checked one \
                 in {INSTALL_ATTEMPTS} starts of {} s each:\n{}\nits last log ends:\n{}",
                INSTALL_WAIT.as_secs(),
                restarts.join("\n"),
                tail(&log)
            );
        }
        eprintln!(
            "observers{tag}: lbd did not install everything in {} s ({}); starting it again",
            INSTALL_WAIT.as_secs(),
            restarts[restarts.len() - 1]
        );
        let _ = fs::remove_file(&socket);
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while vrrp_state(&socket).as_deref() != Some("MASTER") {
        if Instant::now() > deadline {
            bail!(
                "the VRRP instance never became MASTER ({:?}); lbd's log ends:\n{}",
                vrrp_state(&socket),
                tail(&log)
            );
        }
        thread::sleep(Duration::from_millis(100));
    }

    // Capture adverts from here on; every window below is cut from this one capture.
    let capture = Capture::start(&peer.name, "l1")?;
    let fill = Instant::now();
    let (checked_index, targets) = fill_conns(&socket, &pins, plan.entries, services * per)?;
    let fill_s = fill.elapsed().as_secs_f64();
    let watch = BackendWatch::open(&pins, checked_index)?;
    eprintln!(
        "observers{tag}: lbd installed in {:.1} s; {} tracked entries written in {fill_s:.1} s",
        installed_in.as_secs_f64(),
        plan.entries
    );

    // ---- idle: nothing asks lbd anything ----
    let idle_from = now_s();
    thread::sleep(plan.idle);
    let idle_to = now_s();
    let (idle_health, idle_health_missed) = health_failures(
        plan.idle_failures,
        &mut listener,
        &peer.name,
        checked,
        &watch,
        plan.timeout,
        || true,
    )?;

    // ---- single requests, one at a time, spaced beyond lbd's 1 s tracked-count cache
    // so each pays the walk of the connection table ----
    let single_from = now_s();
    let list_alone = single_requests(plan.samples, || {
        ask_raw(&socket, &Request::List, plan.timeout)
    });
    let counted = list_alone.first_answer.as_deref().map(tracked_total);
    let scrape_alone = {
        let (name, timeout, samples) = (ns.name.clone(), plan.timeout, plan.samples);
        thread::spawn(move || {
            let _inside = enter_existing(&name);
            single_requests(samples, || scrape(timeout))
        })
        .join()
        .map_err(|_| anyhow!("the scrape thread panicked"))?
    };
    let single_to = now_s();

    // ---- hammer: list and scrape threads back-to-back, a health failure meanwhile ----
    let hammer_from = now_s();
    let until = Instant::now() + plan.hammer;
    let mut hammers = Vec::new();
    for i in 0..2 * HAMMER_THREADS {
        let (socket, name, timeout) = (socket.clone(), ns.name.clone(), plan.timeout);
        let scraper = i % 2 == 1;
        hammers.push((
            scraper,
            thread::spawn(move || {
                let _inside = scraper.then(|| enter_existing(&name));
                hammer(until, || {
                    if scraper {
                        scrape(timeout)
                    } else {
                        ask_raw(&socket, &Request::List, timeout)
                    }
                })
            }),
        ));
    }
    thread::sleep(Duration::from_secs(1).min(plan.hammer / 3));
    // Failures while the hammer lasts (at least one, however long it takes).
    let (loaded_health, loaded_health_missed) = health_failures(
        5,
        &mut listener,
        &peer.name,
        checked,
        &watch,
        plan.timeout,
        || Instant::now() + Duration::from_millis(800) < until,
    )?;
    let mut list_loaded = Tally::default();
    let mut scrape_loaded = Tally::default();
    for (scraper, h) in hammers {
        let t = h.join().map_err(|_| anyhow!("a hammer thread panicked"))?;
        if scraper {
            scrape_loaded.merge(t);
        } else {
            list_loaded.merge(t);
        }
    }
    let hammer_to = now_s();
    let hammer_s = hammer_to - hammer_from;
    thread::sleep(Duration::from_millis(300));
    let adverts = capture.stop()?;
    let stopped = now_s();
    drop(listener);
    drop(lbd);

    // ---- figures ----
    let scale = format!("{services} x {per}, {} tracked", plan.entries);
    let counted = match counted {
        Some(n) => format!("lbctl list counted {n} tracked"),
        None => "no list answer to count tracked entries in".into(),
    };
    let timeout_s = plan.timeout.as_secs();
    let alone = [
        (
            &list_alone,
            "`lbctl list`",
            "one request at a time over the control socket",
            format!("; {counted}"),
        ),
        (
            &scrape_alone,
            "metrics scrape",
            "one GET /metrics at a time, read to the end",
            String::new(),
        ),
    ];
    for (singles, what, how, extra) in alone {
        let cold = singles.cold.figure(
            format!("observers: {what} alone, {scale}{tag}"),
            format!(
                "{how}, > 1 s after the previous one (past lbd's 1 s cache of tracked \
                 counts, so each pays a walk of the connection table); {}{extra}",
                singles.cold.misses(plan.timeout)
            ),
            plan.timeout,
        )?;
        let warm = singles.warm.figure(
            format!("observers: {what} alone, repeated at once, {scale}{tag}"),
            format!(
                "{how}, right after the previous one (an lbd that caches tracked counts \
                 reuses them); {}{extra}",
                singles.warm.misses(plan.timeout)
            ),
            plan.timeout,
        )?;
        figures.extend(cold.into_iter().chain(warm));
    }
    let gap_note = |from: f64, to: f64, what: &str| {
        let n = adverts.iter().filter(|t| **t >= from && **t <= to).count();
        format!(
            "VRRP v3, advert_interval 100 ms; {n} adverts in {:.1} s {what} (captured on the \
             veth peer); a stalled loop shows gaps of seconds",
            to - from
        )
    };
    let idle_gaps = gaps(&adverts, idle_from, idle_to, stopped);
    ensure!(
        !idle_gaps.is_empty(),
        "no VRRP advert captured in the idle window"
    );
    figures.push(Figure::new(
        format!("observers: VRRP advert gap, idle{tag}"),
        "ms",
        idle_gaps,
        gap_note(idle_from, idle_to, "with nothing asked of lbd"),
    ));
    figures.push(Figure::new(
        format!("observers: VRRP advert gap, during the single requests{tag}"),
        "ms",
        gaps(&adverts, single_from, single_to, stopped),
        gap_note(single_from, single_to, "of single list/scrape requests"),
    ));
    let health_note = |missed: usize, load: &str| {
        let mut s = format!(
            "TCP check every 200 ms (timeout 200 ms), fall 1: listener closed to backend state DOWN in the \
             data plane's backend map (polled every 5 ms, not through lbd), {load}"
        );
        if missed > 0 {
            s.push_str(&format!(
                "; {missed} failure(s) not applied within {timeout_s} s, counted as {timeout_s} s"
            ));
        }
        s
    };
    figures.push(Figure::new(
        format!("observers: health failure applied, idle{tag}"),
        "ms",
        idle_health,
        health_note(idle_health_missed, "nothing else asked of lbd"),
    ));
    let load = format!(
        "{HAMMER_THREADS} threads sending `lbctl list` and {HAMMER_THREADS} scraping, \
         back-to-back, new requests for {:.1} s (the last may run on up to the timeout)",
        plan.hammer.as_secs_f64()
    );
    for (tally, what) in [
        (&list_loaded, "`lbctl list`"),
        (&scrape_loaded, "metrics scrape"),
    ] {
        figures.extend(tally.figure(
            format!("observers: {what} under load, {scale}{tag}"),
            format!(
                "{load}; {} answered ({:.1}/s); {}",
                tally.ok.len(),
                tally.ok.len() as f64 / hammer_s,
                tally.misses(plan.timeout)
            ),
            plan.timeout,
        )?);
    }
    figures.push(Figure::new(
        format!("observers: VRRP advert gap under load{tag}"),
        "ms",
        gaps(&adverts, hammer_from, hammer_to, stopped),
        gap_note(hammer_from, hammer_to, &format!("under load ({load})")),
    ));
    figures.push(Figure::new(
        format!("observers: health failure applied under load{tag}"),
        "ms",
        loaded_health,
        health_note(loaded_health_missed, &format!("under load ({load})")),
    ));
    if !restarts.is_empty() {
        let note = format!(
            "; lbd was started {} times before it installed everything: {}",
            restarts.len() + 1,
            restarts.join("; ")
        );
        for f in &mut figures[first_figure..] {
            f.note.push_str(&note);
        }
    }
    eprintln!(
        "observers{tag}: {} entries over {targets} backends; section took {:.0} s",
        plan.entries,
        section.elapsed().as_secs_f64()
    );
    Ok(())
}

/// lbd's config: the services, the checked service, one VRRP instance (keys that lbd
/// has had since before the observers; `LB_BENCH_LBD` may be an older lbd).
fn config_text(plan: &Plan, socket: &Path, pins: &Path) -> String {
    let (services, per) = (plan.services, plan.per);
    let mut text = format!(
        "[global]\nnode_name = \"bench-observers\"\ncontrol_socket = \"{}\"\n\
         metrics_listen = \"127.0.0.1:{METRICS_PORT}\"\npin_dir = \"{}\"\nmax_services = {}\n\
         max_backends = {}\nconn_table_size = 1048576\n\n\
         [[interface]]\nname = \"l0\"\nxdp_mode = \"driver\"\n\n\
         [[vrrp]]\nname = \"VI_BENCH\"\ninterface = \"l0\"\nvirtual_router_id = 77\n\
         priority = 200\nversion = 3\nadvert_interval = \"100ms\"\n\
         virtual_addresses = [\"10.210.0.1/24\"]\n\n\
         [[service]]\nname = \"checked\"\nvip = \"10.202.0.1\"\nport = {CHECKED_PORT}\n\
         protocol = \"tcp\"\n\n[service.health]\nkind = \"tcp\"\ninterval = \"200ms\"\n\
         timeout = \"200ms\"\nrise = 1\nfall = 1\n\n[[service.backend]]\naddress = \"{CHECKED}\"\n\n",
        socket.display(),
        pins.display(),
        services + 8,
        services * per + 8,
    );
    text.push_str(&crate::controller::scale_services(services, per));
    text
}

/// Start `lbd` in namespace `ns`; `ip netns exec` execs it, so the child is lbd.
fn spawn(ns: &str, lbd: &Path, config: &Path, log: &Path) -> Result<Child> {
    Command::new("ip")
        .args(["netns", "exec", ns])
        .arg(lbd)
        .arg("--config")
        .arg(config)
        .env("LBD_LOG", "info")
        .stdout(Stdio::null())
        .stderr(fs::File::create(log)?)
        .spawn()
        .with_context(|| format!("start {}", lbd.display()))
}

/// The last lines of a log, for an error message.
fn tail(log: &Path) -> String {
    let text = fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().rev().take(15).collect();
    lines.into_iter().rev().collect::<Vec<_>>().join("\n")
}

/// One request on the control socket, the answer line as it came (parsed loosely by
/// the callers, so an older lbd's views do too). Fails if not answered in `timeout`.
fn ask_raw(socket: &Path, request: &Request, timeout: Duration) -> Result<String> {
    let deadline = Instant::now() + timeout;
    let mut stream = UnixStream::connect(socket)?;
    stream.set_write_timeout(Some(timeout))?;
    let mut line = serde_json::to_string(request)?;
    line.push('\n');
    stream.write_all(line.as_bytes())?;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    while !out.ends_with(b"\n") {
        let left = deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or(Miss::TimedOut)?;
        stream.set_read_timeout(Some(left))?;
        let n = stream.read(&mut buf).map_err(|e| match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                anyhow::Error::from(Miss::TimedOut)
            }
            _ => e.into(),
        })?;
        ensure!(n > 0, "lbd closed the connection");
        out.extend_from_slice(&buf[..n]);
    }
    let out = String::from_utf8(out)?;
    ensure!(
        !out.starts_with("{\"kind\":\"error\""),
        "lbd answered {}",
        out.trim()
    );
    Ok(out)
}

/// One GET /metrics from lbd's namespace (the calling thread must be in it); the
/// whole answer. Fails unless it is a 200 within `timeout`.
fn scrape(timeout: Duration) -> Result<String> {
    let deadline = Instant::now() + timeout;
    let mut stream = TcpStream::connect_timeout(
        &SocketAddr::from((Ipv4Addr::LOCALHOST, METRICS_PORT)),
        timeout,
    )?;
    stream.set_write_timeout(Some(timeout))?;
    stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")?;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let left = deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or(Miss::TimedOut)?;
        stream.set_read_timeout(Some(left))?;
        let n = stream.read(&mut buf).map_err(|e| match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                anyhow::Error::from(Miss::TimedOut)
            }
            _ => e.into(),
        })?;
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    let out = String::from_utf8_lossy(&out).into_owned();
    let status = out.lines().next().unwrap_or("nothing").trim().to_string();
    if status.starts_with("HTTP/1.1 503") {
        return Err(Miss::GaveUp(status).into());
    }
    ensure!(
        status.starts_with("HTTP/1.1 200"),
        "metrics answered {status}"
    );
    Ok(out)
}

/// Why a request got no answer.
#[derive(Debug)]
enum Miss {
    /// None within our timeout.
    TimedOut,
    /// lbd answered that it gave up (the metrics endpoint's 503 after its own timeout).
    GaveUp(String),
}

impl std::fmt::Display for Miss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Miss::TimedOut => write!(f, "timed out"),
            Miss::GaveUp(what) => write!(f, "lbd gave up: {what}"),
        }
    }
}

impl std::error::Error for Miss {}

/// Latencies of answered requests and what became of the others.
#[derive(Default)]
struct Tally {
    ok: Vec<f64>,
    timed_out: usize,
    /// Times after which lbd answered that it gave up.
    gave_up: Vec<f64>,
    failed: usize,
    last_error: Option<String>,
}

impl Tally {
    /// Count one request's outcome; whether it was answered.
    fn record(&mut self, started: Instant, result: &Result<String>) -> bool {
        let took = ms(started.elapsed());
        match result.as_ref().map_err(|e| e.downcast_ref::<Miss>()) {
            Ok(_) => {
                self.ok.push(took);
                return true;
            }
            Err(Some(Miss::TimedOut)) => self.timed_out += 1,
            Err(Some(Miss::GaveUp(_))) => self.gave_up.push(took),
            Err(None) => self.failed += 1,
        }
        if let Err(e) = result {
            self.last_error = Some(e.to_string());
        }
        false
    }

    /// Whether a request went unanswered because lbd was busy (it may still be).
    fn busy(&self) -> bool {
        self.timed_out > 0 || !self.gave_up.is_empty()
    }

    fn merge(&mut self, other: Tally) {
        self.ok.extend(other.ok);
        self.timed_out += other.timed_out;
        self.gave_up.extend(other.gave_up);
        self.failed += other.failed;
        self.last_error = other.last_error.or(self.last_error.take());
    }

    fn misses(&self, timeout: Duration) -> String {
        let t = timeout.as_secs();
        let mut s = format!(
            "{} not answered within {t} s (counted as {t} s, a lower bound)",
            self.timed_out
        );
        if !self.gave_up.is_empty() {
            s.push_str(&format!(
                ", {} answered 503 (lbd's own scrape timeout; counted at that time, a lower \
                 bound)",
                self.gave_up.len()
            ));
        }
        if self.failed > 0 {
            s.push_str(&format!(
                ", {} failed (last: {})",
                self.failed,
                self.last_error.as_deref().unwrap_or("")
            ));
        }
        s
    }

    /// The figure: answered latencies, plus lower bounds for unanswered requests.
    /// `None` if nothing was asked; fails if every request failed outright.
    fn figure(&self, name: String, note: String, timeout: Duration) -> Result<Option<Figure>> {
        let mut samples = self.ok.clone();
        samples.extend(std::iter::repeat_n(ms(timeout), self.timed_out));
        samples.extend(&self.gave_up);
        if samples.is_empty() && self.failed == 0 {
            return Ok(None);
        }
        ensure!(
            !samples.is_empty(),
            "{name}: no sample ({} failed, last: {})",
            self.failed,
            self.last_error.as_deref().unwrap_or("")
        );
        Ok(Some(Figure::new(name, "ms", samples, note)))
    }
}

/// Single requests, each alone, and the first answer.
struct Singles {
    /// Each > 1 s after the previous one.
    cold: Tally,
    /// Each at once after a cold one.
    warm: Tally,
    first_answer: Option<String>,
}

/// `samples` pairs of requests, one at a time: one at least 1.2 s after the previous
/// pair (lbd's tracked counts are cached for 1 s, so it pays a walk of the connection
/// table), then one at once (it may use the cache). After a request that lbd did not
/// answer in time it may still be busy with it: no more are sent.
fn single_requests(samples: usize, mut ask: impl FnMut() -> Result<String>) -> Singles {
    let mut singles = Singles {
        cold: Tally::default(),
        warm: Tally::default(),
        first_answer: None,
    };
    for i in 0..samples {
        if i > 0 {
            thread::sleep(Duration::from_millis(1200));
        }
        let t = Instant::now();
        let result = ask();
        singles.cold.record(t, &result);
        if let Ok(answer) = result {
            singles.first_answer.get_or_insert(answer);
        }
        if singles.cold.busy() {
            break;
        }
        let t = Instant::now();
        let result = ask();
        singles.warm.record(t, &result);
        if singles.warm.busy() {
            break;
        }
    }
    singles
}

/// Requests back-to-back until `until` (or [`HAMMER_MAX_REQUESTS`]); each bounded by
/// its own timeout inside `ask`.
fn hammer(until: Instant, mut ask: impl FnMut() -> Result<String>) -> Tally {
    let mut tally = Tally::default();
    for _ in 0..HAMMER_MAX_REQUESTS {
        if Instant::now() >= until {
            break;
        }
        let t = Instant::now();
        let result = ask();
        tally.record(t, &result);
        if tally.ok.is_empty() && tally.failed >= 100 {
            break; // it keeps failing outright (not slow): stop hammering
        }
    }
    tally
}

/// Whether lbd lists every service (and the checked one) with every backend holding
/// slots (so the checked backend is up).
fn installed(socket: &Path, services: usize, per: usize) -> bool {
    let Ok(answer) = ask_raw(socket, &Request::List, Duration::from_secs(30)) else {
        return false;
    };
    let Ok(v) = serde_json::from_str::<Value>(&answer) else {
        return false;
    };
    let Some(list) = v["services"].as_array() else {
        return false;
    };
    let slots = |b: &Value| b["slots"].as_u64().unwrap_or(0) > 0;
    list.len() == services + 1
        && list.iter().all(|s| {
            let backends = s["backends"].as_array().map_or(&[][..], |b| b.as_slice());
            let want = if s["port"].as_u64() == Some(u64::from(CHECKED_PORT)) {
                1
            } else {
                per
            };
            backends.len() == want && backends.iter().all(slots)
        })
}

/// What lbd has installed so far and the checked backend's health, for an error.
fn progress(socket: &Path) -> String {
    let list = ask_raw(socket, &Request::List, Duration::from_secs(30))
        .ok()
        .and_then(|a| serde_json::from_str::<Value>(&a).ok());
    let Some(list) = list else {
        return "lbd does not answer `list`".into();
    };
    let services = list["services"]
        .as_array()
        .map_or(&[][..], |s| s.as_slice());
    let backends: Vec<&Value> = services
        .iter()
        .flat_map(|s| s["backends"].as_array().into_iter().flatten())
        .collect();
    let checked = backends
        .iter()
        .find(|b| b["address"].as_str() == Some(&CHECKED.to_string()))
        .map_or("not listed".to_string(), |b| {
            format!("state {}, health {}", b["state"], b["health"])
        });
    let empty: Vec<&&Value> = backends
        .iter()
        .filter(|b| b["slots"].as_u64().unwrap_or(0) == 0)
        .collect();
    let some: Vec<String> = empty
        .iter()
        .take(5)
        .map(|b| format!("{} {} mac {}", b["address"], b["state"], b["mac"]))
        .collect();
    let some = if some.is_empty() {
        String::new()
    } else {
        format!(" (e.g. {})", some.join(", "))
    };
    format!(
        "{} services listed, {} of {} backends without slots{some}; checked backend: {checked}",
        services.len(),
        empty.len(),
        backends.len(),
    )
}

/// The first VRRP instance's state, as lbd reports it.
fn vrrp_state(socket: &Path) -> Option<String> {
    let answer = ask_raw(socket, &Request::Vrrp, Duration::from_secs(10)).ok()?;
    let v: Value = serde_json::from_str(&answer).ok()?;
    v["instances"][0]["state"].as_str().map(str::to_string)
}

/// Tracked connections summed over every backend of a `list` answer.
fn tracked_total(answer: &str) -> u64 {
    let Ok(v) = serde_json::from_str::<Value>(answer) else {
        return 0;
    };
    v["services"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["backends"].as_array().into_iter().flatten())
        .map(|b| b["tracked"].as_u64().unwrap_or(0))
        .sum()
}

/// Write `entries` tracked connections into the pinned table, spread over the port-80
/// services' backends (each to its service's VIP, with the backend's index and
/// generation, so `lbctl list` counts them). Indices come from lbd's `list` answer, the
/// rest straight from the pinned maps through aya (not [`lb_dataplane::Dataplane`],
/// whose set of maps may be newer than `LB_BENCH_LBD`'s). Returns the checked
/// backend's index and how many backends the entries went to.
fn fill_conns(socket: &Path, pins: &Path, entries: usize, expect: usize) -> Result<(u32, usize)> {
    let answer = ask_raw(socket, &Request::List, Duration::from_secs(60))?;
    let list: Value = serde_json::from_str(&answer)?;
    let mut checked_index = None;
    let mut members = Vec::new();
    for s in list["services"].as_array().into_iter().flatten() {
        let vip: IpAddr = s["vip"]
            .as_str()
            .context("a service without vip")?
            .parse()?;
        for b in s["backends"].as_array().into_iter().flatten() {
            let index = b["index"].as_u64().context("a backend without index")? as u32;
            match s["port"].as_u64() {
                Some(80) => members.push((addr_words(vip), index)),
                _ => checked_index = Some(index),
            }
        }
    }
    let checked_index = checked_index.context("the checked backend is not listed")?;
    ensure!(
        members.len() == expect,
        "{} backends of port-80 services listed, expected {expect}",
        members.len()
    );
    let backends = pinned_backends(pins)?;
    let mut targets = Vec::new();
    for (vip, index) in members {
        let gen = backends.get(&index, 0)?.gen;
        targets.push((vip, index, gen));
    }
    let data = aya::maps::MapData::from_pin(pins.join(names::CONNS))?;
    let mut conns: aya::maps::HashMap<_, ConnKey, ConnValue> =
        aya::maps::HashMap::try_from(aya::maps::Map::from_map_data(data)?)?;
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec. CLOCK_MONOTONIC is bpf_ktime_get_ns's.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    let now_ns = now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64;
    for i in 0..entries {
        let (vip, backend, gen) = targets[i % targets.len()];
        let key = ConnKey {
            src: addr_words(IpAddr::from([
                10,
                60 + (i >> 16) as u8,
                (i >> 8) as u8,
                i as u8,
            ])),
            dst: vip,
            sport: 1024 + (i % 50_000) as u16,
            dport: 80,
            proto: proto::TCP,
            _pad: 0,
            _pad2: 0,
        };
        let value = ConnValue {
            backend: u16::try_from(backend).context("backend index")?,
            flags: 0,
            gen,
            last_seen_ns: now_ns,
        };
        conns.insert(key, value, 0)?;
    }
    Ok((checked_index, targets.len()))
}

/// lbd's pinned backend array.
fn pinned_backends(pins: &Path) -> Result<aya::maps::Array<aya::maps::MapData, Backend>> {
    let data = aya::maps::MapData::from_pin(pins.join(names::BACKENDS))?;
    Ok(aya::maps::Array::try_from(aya::maps::Map::from_map_data(
        data,
    )?)?)
}

/// Reads one backend's entry straight from the pinned backend map.
struct BackendWatch {
    map: aya::maps::Array<aya::maps::MapData, Backend>,
    index: u32,
}

impl BackendWatch {
    fn open(pins: &Path, index: u32) -> Result<BackendWatch> {
        Ok(BackendWatch {
            map: pinned_backends(pins)?,
            index,
        })
    }

    fn down(&self) -> Result<bool> {
        Ok(self.map.get(&self.index, 0)?.state == BACKEND_DOWN)
    }

    /// Poll every 5 ms until the backend is (not) down; the time it took, or `None`
    /// after `timeout`.
    fn wait(&self, down: bool, from: Instant, timeout: Duration) -> Result<Option<f64>> {
        while from.elapsed() < timeout {
            if self.down()? == down {
                return Ok(Some(ms(from.elapsed())));
            }
            thread::sleep(Duration::from_millis(5));
        }
        Ok(None)
    }
}

/// What became of one health failure.
struct Failure {
    /// Listener closed to backend DOWN in the map (ms); `None`: not within the timeout.
    applied: Option<f64>,
    /// The backend was up again within the timeout after the listener came back.
    recovered: bool,
}

/// Close the checked backend's listener and time until lbd marks the backend down in
/// the data plane; then listen again and wait (at most `timeout`) until it is up.
fn health_failure(
    listener: &mut Option<Listener>,
    ns: &str,
    addr: SocketAddr,
    watch: &BackendWatch,
    timeout: Duration,
) -> Result<Failure> {
    // A check that timed out on a busy machine may have taken it down (fall 1): let it
    // come back first.
    ensure!(
        watch.wait(false, Instant::now(), timeout)?.is_some(),
        "the checked backend is down before its failure and stays down"
    );
    let t = Instant::now();
    drop(listener.take());
    let applied = watch.wait(true, t, timeout)?;
    *listener = Some(Listener::start(ns, addr)?);
    let recovered = applied.is_some() && watch.wait(false, Instant::now(), timeout)?.is_some();
    Ok(Failure { applied, recovered })
}

/// Up to `rounds` health failures (at least one), while `more()` holds; the times and
/// how many were not applied within `timeout` (counted as `timeout`, a lower bound).
/// Stops after a failure the backend did not recover from.
fn health_failures(
    rounds: usize,
    listener: &mut Option<Listener>,
    ns: &str,
    addr: SocketAddr,
    watch: &BackendWatch,
    timeout: Duration,
    more: impl Fn() -> bool,
) -> Result<(Vec<f64>, usize)> {
    let (mut times, mut missed) = (Vec::new(), 0);
    for round in 0..rounds.max(1) {
        if round > 0 && !more() {
            break;
        }
        let f = health_failure(listener, ns, addr, watch, timeout)?;
        match f.applied {
            Some(t) => times.push(t),
            None => {
                missed += 1;
                times.push(ms(timeout));
            }
        }
        if !f.recovered {
            break;
        }
    }
    Ok((times, missed))
}

/// A TCP listener in a namespace that accepts and closes (the checked backend);
/// dropping it closes the listening socket, so checks are refused from then on.
struct Listener {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Listener {
    fn start(ns: &str, addr: SocketAddr) -> Result<Listener> {
        let stop = Arc::new(AtomicBool::new(false));
        let (bound_tx, bound) = mpsc::channel();
        let thread = {
            let (ns, stop) = (ns.to_string(), stop.clone());
            thread::spawn(move || {
                let _inside = enter_existing(&ns);
                let listener = match TcpListener::bind(addr).and_then(|l| {
                    l.set_nonblocking(true)?;
                    Ok(l)
                }) {
                    Ok(l) => {
                        let _ = bound_tx.send(Ok(()));
                        l
                    }
                    Err(e) => {
                        let _ = bound_tx.send(Err(e));
                        return;
                    }
                };
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok(_) => {} // accepted and closed: the check passes
                        Err(_) => thread::sleep(Duration::from_millis(2)),
                    }
                }
            })
        };
        bound
            .recv_timeout(Duration::from_secs(5))
            .context("the listener thread did not start")?
            .with_context(|| format!("listen on {addr}"))?;
        Ok(Listener {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// VRRP adverts (IPv4 protocol 112) arriving on an interface of a namespace, with
/// the kernel's receive timestamps, from an AF_PACKET socket.
struct Capture {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<Vec<f64>>>>,
}

/// SIOCGSTAMPNS: the last packet's receive time (linux/sockios.h).
const SIOCGSTAMPNS: libc::c_ulong = 0x8907;
/// At most this many adverts (a bound for the capture loop).
const MAX_ADVERTS: usize = 100_000;

impl Capture {
    fn start(ns: &str, interface: &str) -> Result<Capture> {
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready) = mpsc::channel();
        let thread = {
            let (ns, interface, stop) = (ns.to_string(), interface.to_string(), stop.clone());
            thread::spawn(move || {
                let _inside = enter_existing(&ns);
                let fd = match packet_socket(&interface) {
                    Ok(fd) => {
                        let _ = ready_tx.send(Ok(()));
                        fd
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return Ok(Vec::new());
                    }
                };
                let mut times = Vec::new();
                let mut buf = [0u8; 2048];
                let started = Instant::now();
                while !stop.load(Ordering::Relaxed)
                    && times.len() < MAX_ADVERTS
                    && started.elapsed() < Duration::from_secs(1800)
                {
                    // SAFETY: recv into a buffer of the given length.
                    let n = unsafe {
                        libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0)
                    };
                    if n < 0 {
                        let e = std::io::Error::last_os_error();
                        match e.kind() {
                            std::io::ErrorKind::WouldBlock
                            | std::io::ErrorKind::TimedOut
                            | std::io::ErrorKind::Interrupted => continue,
                            _ => return Err(e).context("recv on the capture socket"),
                        }
                    }
                    if n < 20 || buf[0] >> 4 != 4 || buf[9] != 112 {
                        continue;
                    }
                    let mut ts = libc::timespec {
                        tv_sec: 0,
                        tv_nsec: 0,
                    };
                    // SAFETY: SIOCGSTAMPNS writes one timespec.
                    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), SIOCGSTAMPNS as _, &mut ts) };
                    times.push(if rc == 0 {
                        ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
                    } else {
                        now_s()
                    });
                }
                Ok(times)
            })
        };
        ready
            .recv_timeout(Duration::from_secs(5))
            .context("the capture thread did not start")??;
        Ok(Capture {
            stop,
            thread: Some(thread),
        })
    }

    /// Stop; every advert's receive time (wall-clock seconds).
    fn stop(mut self) -> Result<Vec<f64>> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .context("capture already stopped")?
            .join()
            .map_err(|_| anyhow!("the capture thread panicked"))?
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// An AF_PACKET socket receiving IPv4 on `interface` (of the calling thread's
/// namespace), with 100 ms receive timeouts and kernel timestamps.
fn packet_socket(interface: &str) -> Result<OwnedFd> {
    let protocol = (libc::ETH_P_IP as u16).to_be();
    // SAFETY: plain socket(2); the fd is owned right after.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_DGRAM, i32::from(protocol)) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error()).context("AF_PACKET socket");
    }
    // SAFETY: fd is a fresh socket nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let name = CString::new(interface)?;
    // SAFETY: a NUL-terminated name.
    let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
    ensure!(ifindex != 0, "no interface {interface}");
    // SAFETY: sockaddr_ll is plain data; zero is a valid start.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = protocol;
    sll.sll_ifindex = ifindex as i32;
    // SAFETY: bind with a sockaddr_ll of its size.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sll as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).context("bind the capture socket");
    }
    let timeout = libc::timeval {
        tv_sec: 0,
        tv_usec: 100_000,
    };
    let one: libc::c_int = 1;
    // SAFETY: setsockopt with values of the sizes given.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&timeout as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as u32,
        );
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as u32,
        );
    }
    Ok(fd)
}

/// Gaps (ms) between consecutive adverts that overlap the window `from..to`; if the
/// last advert before `to` has no successor, the gap up to `stopped` (when the capture
/// ended) counts too, as a lower bound: a silent window still shows.
fn gaps(adverts: &[f64], from: f64, to: f64, stopped: f64) -> Vec<f64> {
    let mut out: Vec<f64> = adverts
        .windows(2)
        .filter(|w| w[1] > from && w[0] < to)
        .map(|w| (w[1] - w[0]) * 1e3)
        .collect();
    match adverts.iter().rev().find(|t| **t < to) {
        Some(last) if !adverts.iter().any(|t| *t > *last) => out.push((stopped - last) * 1e3),
        None => out.push((stopped - from) * 1e3),
        _ => {}
    }
    out
}

/// Kills lbd on drop.
struct Lbd(Child);

impl Drop for Lbd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Unmounts the run's bpffs and removes the scratch directory on drop.
struct Cleanup(PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg(self.0.join("bpffs"))
            .stderr(Stdio::null())
            .status();
        let _ = fs::remove_dir_all(&self.0);
    }
}

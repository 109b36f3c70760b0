//! lbd under hostile local clients and without privileges, as root, in namespaces this
//! test makes (tests/src/lab.rs; torn down on drop, also on failure):
//!
//! - more connections than the cap to the metrics port and to the control socket,
//!   held open, with lbd's hard descriptor limit set so low that the old unbounded
//!   accept loops would run it out of descriptors: lbd's descriptors stay bounded,
//!   over-cap clients are told "busy", idle control connections are closed, lbctl is
//!   answered, health checks keep passing (no backend goes down), a scrape is served
//!   once the flood is gone, and the log holds a bounded number of lines about it;
//! - a control request line far over the size limit gets an error and the connection
//!   is closed without lbd buffering it (its RSS stays bounded);
//! - lbd started as nobody says which errno it got and what it needs.

use std::{
    fs,
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    os::unix::{fs::PermissionsExt as _, net::UnixStream},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::Mutex,
    time::{Duration, Instant},
};

use lb_api::control::{Request, Response};
use lb_tests::{
    lab::{binary, wait_until, Lab, BACKENDS},
    netns::{enter_existing, sh, Netns},
};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// lbd's caps (lb_api::control::MAX_CONNECTIONS, lb_userspace::metrics::MAX_CONNECTIONS).
const CAP: usize = 64;
/// Connections opened per listener: well over the cap, bounded.
const FLOOD: usize = CAP + 200;
/// lbd's hard (and so soft) descriptor limit in the flood test: below the two floods
/// together, so without caps lbd would run out of descriptors.
const NOFILE: usize = 512;
/// Where node "lb" serves metrics (inside its namespace).
const METRICS: &str = "127.0.0.1:9469";

/// The lbd under test: the workspace's, or `LB_TEST_LBD` (to show these tests fail
/// on another build, e.g. one from before the limits).
fn lbd() -> PathBuf {
    std::env::var_os("LB_TEST_LBD")
        .map(PathBuf::from)
        .unwrap_or_else(|| binary("lbd"))
}

fn open_fds(pid: u32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

fn rss_kib(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// What a connection said so far, read without blocking.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Heard {
    Nothing,
    Busy,
    Closed,
}

/// Read whatever `s` has (non-blocking): `needle` seen, closed, or nothing yet.
fn heard(s: &mut impl Read, seen: &mut Vec<u8>, needle: &str) -> Heard {
    let mut buf = [0u8; 512];
    loop {
        match s.read(&mut buf) {
            Ok(0) => {
                return if String::from_utf8_lossy(seen).contains(needle) {
                    Heard::Busy
                } else {
                    Heard::Closed
                }
            }
            Ok(n) => seen.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                return if String::from_utf8_lossy(seen).contains(needle) {
                    Heard::Busy
                } else {
                    Heard::Nothing
                }
            }
            Err(_) => return Heard::Closed,
        }
    }
}

/// Poll `streams` (bounded by `timeout`) until `done` holds for what they heard.
fn listen_to<S: Read>(
    streams: &mut [S],
    needle: &str,
    timeout: Duration,
    done: impl Fn(&[Heard]) -> bool,
) -> Vec<Heard> {
    let mut seen = vec![Vec::new(); streams.len()];
    let mut state = vec![Heard::Nothing; streams.len()];
    let start = Instant::now();
    loop {
        for (i, s) in streams.iter_mut().enumerate() {
            if state[i] != Heard::Closed {
                state[i] = heard(s, &mut seen[i], needle);
            }
        }
        if done(&state) || start.elapsed() > timeout {
            return state;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn count(state: &[Heard], what: Heard) -> usize {
    state.iter().filter(|h| **h == what).count()
}

/// `GET /metrics` from inside node "lb"'s namespace: the status line and body.
fn scrape(lab: &Lab) -> String {
    let ns = lab.ns("lb");
    std::thread::scope(|s| {
        s.spawn(|| {
            let _in = enter_existing(&ns);
            let addr: SocketAddr = METRICS.parse().unwrap();
            let Ok(mut c) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
                return String::new();
            };
            let _ = c.set_read_timeout(Some(Duration::from_secs(15)));
            let _ = c.write_all(b"GET /metrics HTTP/1.1\r\nHost: lb\r\nConnection: close\r\n\r\n");
            let mut out = String::new();
            let _ = c.read_to_string(&mut out);
            out
        })
        .join()
        .unwrap_or_default()
    })
}

/// Open up to `n` TCP connections to the metrics port from inside node "lb"'s
/// namespace (each connect bounded), non-blocking.
fn metrics_flood(lab: &Lab, n: usize) -> Vec<TcpStream> {
    let ns = lab.ns("lb");
    std::thread::scope(|s| {
        s.spawn(|| {
            let _in = enter_existing(&ns);
            let addr: SocketAddr = METRICS.parse().unwrap();
            (0..n)
                .filter_map(|_| TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok())
                .inspect(|c| c.set_nonblocking(true).unwrap())
                .collect()
        })
        .join()
        .unwrap()
    })
}

/// Open up to `n` connections to the control socket (each connect bounded), non-blocking.
fn control_flood(socket: &Path, n: usize) -> Vec<UnixStream> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut out = Vec::new();
        for _ in 0..n {
            let c = tokio::time::timeout(
                Duration::from_secs(2),
                tokio::net::UnixStream::connect(socket),
            )
            .await;
            if let Ok(Ok(c)) = c {
                out.push(c.into_std().unwrap());
            }
        }
        out
    })
}

fn health(lab: &Lab) -> Vec<lb_api::view::HealthView> {
    match lab.ask(Request::Health) {
        Some(Response::Health { backends }) => backends,
        other => panic!("lbd did not answer health: {other:?}"),
    }
}

/// Start node "lb"'s lbd with its descriptor limit at `nofile` (soft and hard); kept
/// by the lab (killed on drop). Returns its pid and log path.
fn start_lbd_limited(lab: &mut Lab, nofile: usize) -> (u32, PathBuf) {
    let log = lab.dir.join("lbd-limited.log");
    let child = Command::new("prlimit")
        .arg(format!("--nofile={nofile}:{nofile}"))
        .args(["ip", "netns", "exec", &lab.ns("lb")])
        .arg(lbd())
        .arg("--config")
        .arg(lab.config_path())
        .env("LBD_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(&log).unwrap())
        .spawn()
        .expect("start lbd under prlimit");
    // prlimit and `ip netns exec` exec: the child is lbd.
    let pid = child.id();
    lab.adopt_process(child);
    wait_until(Duration::from_secs(20), "lbd answering", || {
        matches!(lab.ask(Request::Status), Some(Response::Status(_)))
    });
    (pid, log)
}

#[test]
fn connection_floods_and_huge_requests_do_not_take_lbd_down() {
    let _s = serial();
    let mut lab = Lab::up("hd");
    lab.write_config(&Lab::web_service([Some(1), Some(1), Some(1)]));
    let config = fs::read_to_string(lab.config_path()).unwrap();
    fs::write(
        lab.config_path(),
        config.replace(
            "metrics_listen = \"off\"",
            &format!("metrics_listen = \"{METRICS}\""),
        ),
    )
    .unwrap();
    let (pid, log) = start_lbd_limited(&mut lab, NOFILE);
    lab.wait_healthy(3);
    assert!(
        scrape(&lab).starts_with("HTTP/1.1 200"),
        "no scrape at start"
    );
    let base_fds = open_fds(pid);
    let base_checks: Vec<u64> = health(&lab).iter().map(|h| h.checks).collect();

    // Both floods at once, held open.
    let mut metrics = metrics_flood(&lab, FLOOD);
    let mut control = control_flood(&lab.socket(), FLOOD);
    assert!(
        metrics.len() > CAP + 100 && control.len() > CAP + 100,
        "flood connections made: metrics {}, control {}",
        metrics.len(),
        control.len()
    );
    // Over the cap, each client is told so and closed at once.
    let m_state = listen_to(&mut metrics, "HTTP/1.1 503", Duration::from_secs(10), |s| {
        count(s, Heard::Busy) >= s.len().saturating_sub(CAP)
    });
    let c_state = listen_to(
        &mut control,
        "the most it takes",
        Duration::from_secs(10),
        |s| count(s, Heard::Busy) >= s.len().saturating_sub(CAP),
    );
    let fds = open_fds(pid);
    assert!(
        fds <= base_fds + 2 * CAP + 32,
        "lbd holds {fds} descriptors (before the floods: {base_fds}; caps {CAP} + {CAP})"
    );
    assert!(
        count(&m_state, Heard::Busy) >= metrics.len() - CAP,
        "metrics: {} of {} over-cap clients got a 503",
        count(&m_state, Heard::Busy),
        metrics.len()
    );
    assert!(
        count(&c_state, Heard::Busy) >= control.len() - CAP,
        "control: {} of {} over-cap clients were told lbd is busy",
        count(&c_state, Heard::Busy),
        control.len()
    );

    // Idle control connections are closed by lbd, while the client still holds them.
    let c_state = listen_to(
        &mut control,
        "the most it takes",
        Duration::from_secs(60),
        |s| count(s, Heard::Nothing) == 0,
    );
    assert_eq!(
        count(&c_state, Heard::Nothing),
        0,
        "lbd never closed idle control connections"
    );
    // lbctl is answered (the flood's sockets are still open on the client side).
    let out = lab.lbctl(&["status"]);
    assert!(
        out.status.success(),
        "lbctl status during the flood: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Health checks kept running and passing: nothing went down.
    wait_until(Duration::from_secs(20), "health checks running", || {
        let now = health(&lab);
        now.len() == 3 && now.iter().zip(&base_checks).all(|(h, b)| h.checks > b + 3)
    });
    let now = health(&lab);
    assert!(now.iter().all(|h| h.up), "a backend went down: {now:?}");
    assert!(
        now.iter().all(|h| h.local_errors == 0),
        "probes failed locally: {now:?}"
    );

    // The metrics flood goes; a scrape is served again.
    drop(metrics);
    drop(control);
    let mut page = String::new();
    wait_until(Duration::from_secs(30), "a scrape after the flood", || {
        page = scrape(&lab);
        page.starts_with("HTTP/1.1 200")
    });
    for b in BACKENDS {
        let series = format!("lb_backend_up{{service=\"web\",backend=\"{b}\"}} 1");
        assert!(page.contains(&series), "{series} not in:\n{page}");
    }

    // A request line far over the limit: an error, the connection closed, nothing
    // buffered (the writer finds the socket closed long before it is done).
    let rss_before = rss_kib(pid);
    let mut c = UnixStream::connect(lab.socket()).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut writer = c.try_clone().unwrap();
    const HUGE: usize = 100 << 20;
    let sender = std::thread::spawn(move || {
        let chunk = vec![b'a'; 1 << 20];
        let mut sent = 0;
        while sent < HUGE {
            match writer.write(&chunk) {
                Ok(n) => sent += n,
                Err(_) => break,
            }
        }
        sent
    });
    let mut answer = Vec::new();
    let _ = c.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer).into_owned();
    drop(c);
    let sent = sender.join().unwrap();
    assert!(
        answer.contains("request longer than 65536 bytes"),
        "answer to an over-long line: {answer:?}"
    );
    assert!(sent < HUGE, "lbd read all {sent} bytes of one line");
    let rss_after = rss_kib(pid);
    assert!(
        rss_after < rss_before + 64 * 1024,
        "lbd's RSS grew from {rss_before} KiB to {rss_after} KiB"
    );
    let out = lab.lbctl(&["status"]);
    assert!(out.status.success(), "lbctl status after the long line");
    lab.wait_healthy(3);

    // The log: a bounded number of lines about all this, and no backend down.
    let text = fs::read_to_string(&log).unwrap_or_default();
    let about = |what: &str| text.lines().filter(|l| l.contains(what)).count();
    for l in text
        .lines()
        .filter(|l| l.contains("connection cap") || l.contains("accept") || l.contains("open-file"))
    {
        eprintln!("lbd said: {l}");
    }
    assert!(about("accept failed") <= 5, "accept errors logged:\n{text}");
    assert!(
        about("at the connection cap") <= 4,
        "refusals logged too often:\n{text}"
    );
    assert_eq!(about("backend down"), 0, "{text}");
    assert!(
        text.lines().count() < 300,
        "lbd logged {} lines",
        text.lines().count()
    );
}

/// Removes what [`lbd_as_nobody_names_errno_and_capabilities`] made, also on failure.
struct Scratch {
    dir: PathBuf,
    bpffs: PathBuf,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.bpffs).status();
        let _ = fs::remove_dir(&self.bpffs);
        let _ = fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn lbd_as_nobody_names_errno_and_capabilities() {
    let _s = serial();
    let ns = Netns::new("nr");
    let tag = format!("lbt-nr-{}", std::process::id());
    let scratch = Scratch {
        dir: PathBuf::from(format!("/tmp/{tag}")),
        bpffs: PathBuf::from(format!("/run/{tag}-bpf")),
    };
    let _ = fs::remove_dir_all(&scratch.dir);
    fs::create_dir_all(&scratch.dir).unwrap();
    fs::set_permissions(&scratch.dir, fs::Permissions::from_mode(0o755)).unwrap();
    fs::create_dir_all(&scratch.bpffs).unwrap();
    // A bpffs nobody may write to: lbd gets as far as creating its maps.
    sh(&format!(
        "mount -t bpf bpf {0} -o mode=1777",
        scratch.bpffs.display()
    ));
    let config = scratch.dir.join("lbd.toml");
    fs::write(
        &config,
        format!(
            "[global]\nnode_name = \"nobody\"\ncontrol_socket = \"{dir}/lbd.sock\"\n\
             metrics_listen = \"off\"\npin_dir = \"{pins}/lbd\"\n\n[[interface]]\nname = \"lo\"\n\n\
             [[service]]\nname = \"web\"\nvip = \"10.98.0.100\"\nport = 80\n\n\
             [[service.backend]]\naddress = \"10.98.0.11\"\n",
            dir = scratch.dir.display(),
            pins = scratch.bpffs.display(),
        ),
    )
    .unwrap();
    fs::set_permissions(&config, fs::Permissions::from_mode(0o644)).unwrap();
    let check = Command::new(binary("lbd"))
        .arg("--check-config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "the config is valid: {}",
        String::from_utf8_lossy(&check.stderr)
    );

    let mut child = Command::new("ip")
        .args(["netns", "exec", &ns.name, "setpriv"])
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(lbd())
        .arg("--config")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    let status = status.unwrap_or_else(|| panic!("lbd as nobody kept running:\n{err}"));
    assert!(!status.success(), "lbd as nobody exited 0:\n{err}");
    let last = err
        .lines()
        .rev()
        .find(|l| l.starts_with("lbd: "))
        .unwrap_or_else(|| panic!("no error line:\n{err}"));
    eprintln!("{last}");
    assert!(last.contains("(os error 1)"), "no errno: {last}");
    assert!(last.contains("EPERM: lbd needs root"), "no hint: {last}");
    assert!(
        last.contains("CAP_BPF") && last.contains("CAP_NET_ADMIN"),
        "capabilities not named: {last}"
    );
    assert!(
        last.contains("runs as uid 65534 without CAP_BPF"),
        "what it lacks: {last}"
    );
    drop(scratch);
}

/// The unit gives lbd room for its capped listeners plus the reserve.
#[test]
fn unit_raises_the_descriptor_limit() {
    let unit = fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../scripts/deploy/lbd.service"
    ))
    .unwrap();
    let value: u64 = unit
        .lines()
        .find_map(|l| l.trim().strip_prefix("LimitNOFILE="))
        .expect("LimitNOFILE= in lbd.service")
        .parse()
        .expect("a number");
    assert!(value >= 2 * CAP as u64 + 512, "LimitNOFILE={value}");
}

//! `cargo xtask demo`: the README's main command. Builds everything, then runs a
//! narrated lab in network namespaces (the project's own scripts/lab.sh and
//! scripts/realserver.sh): a client, two LB nodes running lbd with VRRP (as a pair of
//! keepalived nodes would), and three HTTPS "kube-apiserver" backends with /healthz.
//! It shows traffic spread over the backends, a backend failing and being taken out,
//! the master LB dying while a long download streams (the backup takes the VIP and
//! the download completes), and the final `lbctl list --stats`. Each step checks its
//! outcome; the lab is torn down at the end, on failure and on Ctrl-C (`--keep`
//! leaves it running).

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::Mutex,
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};

use crate::{bootstrap, cmd::Cmd, repo_root};

const PREFIX: &str = "lbdemo";
const STATE: &str = "/run/lbdemo";
const BPFFS: &str = "/run/lbdemo-bpf";
const VIP: &str = "10.99.0.100";
const PORT: u16 = 6443;
const STEPS: usize = 7;
pub(crate) const DEMO_PACKAGES: &[&str] = &[
    "iproute2",
    "ethtool",
    "curl",
    "python3",
    "xdp-tools",
    "openssl",
];

/// Processes to kill on teardown (also from the Ctrl-C handler).
pub(crate) static CHILDREN: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// Command-line options.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Leave the lab running at the end and print how to explore it.
    #[arg(long)]
    keep: bool,
    /// Only tear down a lab left by `--keep`.
    #[arg(long)]
    down: bool,
    /// The active-active scene instead: three LB nodes behind an ECMP router, each
    /// announcing the VIP over BGP through BIRD (`[bgp]`, `[sync]`).
    #[arg(long)]
    ecmp: bool,
}

fn ns(node: &str) -> String {
    format!("{PREFIX}-{node}")
}

pub(crate) fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
}

pub(crate) fn say(text: &str) {
    println!("{text}");
}

fn step(n: usize, text: &str) {
    println!("\n[{n}/{STEPS}] {text}");
}

/// Run a command quietly; its stdout.
pub(crate) fn output(program: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("running {program}"))?;
    if !out.status.success() {
        bail!(
            "`{program} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

pub(crate) fn spawn(program: &str, args: &[&str], dir: Option<&Path>, log: &Path) -> Result<Child> {
    let mut c = Command::new(program);
    c.args(args)
        .stdout(Stdio::null())
        .stderr(fs::File::create(log)?);
    if let Some(d) = dir {
        c.current_dir(d);
    }
    let child = c.spawn().with_context(|| format!("starting {program}"))?;
    if let Ok(mut list) = CHILDREN.lock() {
        list.push(child.id());
    }
    Ok(child)
}

/// A demo's state directory, and its bpffs (mounted once) for the pins lbd leaves.
pub(crate) fn state_dirs(state: &str, bpffs: &str) -> Result<()> {
    fs::create_dir_all(state)?;
    fs::create_dir_all(bpffs)?;
    let mounted = Command::new("mountpoint")
        .args(["-q", bpffs])
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        output("mount", &["-t", "bpf", "bpf", bpffs])?;
    }
    Ok(())
}

pub(crate) fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) -> Result<()> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if f() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("timed out after {timeout:?} waiting for {what}")
}

fn teardown(root: &Path) {
    if let Ok(list) = CHILDREN.lock() {
        for pid in list.iter() {
            let _ = Command::new("kill")
                .args(["-9", &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
    }
    let _ = Command::new("pkill")
        .args(["-9", "-f", &format!("{STATE}/lbd-")])
        .status();
    for node in ["b1", "b2", "b3", "lb", "lb2"] {
        if let Ok(o) = Command::new("ip")
            .args(["netns", "pids", &ns(node)])
            .output()
        {
            for pid in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                let _ = Command::new("kill")
                    .args(["-9", pid])
                    .stderr(Stdio::null())
                    .status();
            }
        }
    }
    let _ = Command::new(root.join("scripts/lab.sh"))
        .args(["down", PREFIX])
        .stdout(Stdio::null())
        .status();
    for node in ["lb", "lb2"] {
        let _ = fs::remove_dir_all(format!("{BPFFS}/{node}"));
    }
    let _ = Command::new("umount")
        .arg(BPFFS)
        .stderr(Stdio::null())
        .status();
    let _ = fs::remove_dir(BPFFS);
    let _ = fs::remove_dir_all(STATE);
}

/// `cargo xtask demo`.
pub fn run(args: Args) -> Result<()> {
    if args.ecmp {
        return crate::demo_ecmp::run(args.keep, args.down);
    }
    let root = repo_root()?;
    if args.down {
        teardown(&root);
        say("demo lab removed");
        return Ok(());
    }
    println!("== lb demo: an XDP direct-server-return load balancer for a Kubernetes API VIP, in network namespaces ==");
    step(
        1,
        "toolchain and build (installs what is missing: nightly rust-src, bpf-linker, packages)",
    );
    bootstrap::bootstrap(bootstrap::Needs::default())?;
    bootstrap::ensure_test_packages(DEMO_PACKAGES)?;
    // Cargo's hundreds of lines go to a log, not into the narration.
    Cmd::new("cargo")
        .args(["build", "--release", "-p", "lb-userspace"])
        .current_dir(&root)
        .run_logged(
            "building lbd and lbctl (release)",
            &target_dir(&root).join("demo-build.log"),
        )?;

    teardown(&root);
    {
        let root = root.clone();
        ctrlc::set_handler(move || {
            eprintln!("\ninterrupted: tearing the demo lab down");
            teardown(&root);
            std::process::exit(130);
        })
        .context("installing the Ctrl-C handler")?;
    }
    let result = demo(&root);
    match (&result, args.keep) {
        (Ok(()), true) => explore_hint(&root),
        _ => {
            say("\ntearing the demo lab down");
            teardown(&root);
        }
    }
    result
}

fn explore_hint(root: &Path) {
    let lbctl = target_dir(root).join("release/lbctl");
    println!(
        "\nThe lab is still running (lb2 is the VRRP master now; lb's link is down). Explore it:"
    );
    for args in ["list --stats", "vrrp", "health"] {
        println!(
            "  ip netns exec {} {} --socket {STATE}/lbd-lb2.sock --config {STATE}/lbd-lb2.toml {args}",
            ns("lb2"),
            lbctl.display()
        );
    }
    println!(
        "  ip netns exec {} curl -sk https://{VIP}:{PORT}/",
        ns("client")
    );
    println!("  logs and configs: {STATE}/ (edit a config, then lbctl reload)");
    println!("Tear it down: cargo xtask demo --down");
}

struct Demo {
    nodes: Nodes,
    servers: Vec<Option<Child>>,
}

/// lbd and lbctl on a demo's LB nodes: node `n` is the namespace `{prefix}-n`, its
/// config, control socket and log are `{state}/lbd-n.{toml,sock,log}`, and its
/// `node_name` is `{name}-n`.
pub(crate) struct Nodes {
    pub(crate) lbd: PathBuf,
    pub(crate) lbctl: PathBuf,
    pub(crate) prefix: &'static str,
    pub(crate) state: &'static str,
    pub(crate) name: &'static str,
}

impl Nodes {
    /// `lbctl ARGS` on `node`; its standard output.
    pub(crate) fn lbctl(&self, node: &str, args: &[&str]) -> Result<String> {
        let (space, state) = (format!("{}-{node}", self.prefix), self.state);
        let sock = format!("{state}/lbd-{node}.sock");
        let conf = format!("{state}/lbd-{node}.toml");
        let mut full = vec![
            "netns",
            "exec",
            &space,
            self.lbctl.to_str().unwrap_or("lbctl"),
        ];
        full.extend(["--socket", &sock, "--config", &conf]);
        full.extend(args);
        output("ip", &full)
    }

    /// `lbctl --json ARGS` on `node`, parsed.
    pub(crate) fn json(&self, node: &str, args: &[&str]) -> Result<serde_json::Value> {
        let mut full = vec!["--json"];
        full.extend(args);
        let text = self.lbctl(node, &full)?;
        serde_json::from_str(&text).with_context(|| format!("lbctl --json {args:?}: {text}"))
    }

    /// Start lbd on `node` and wait until it answers on its control socket.
    pub(crate) fn start_lbd(&self, node: &str) -> Result<Child> {
        let state = self.state;
        let child = spawn(
            "ip",
            &[
                "netns",
                "exec",
                &format!("{}-{node}", self.prefix),
                self.lbd.to_str().unwrap_or("lbd"),
                "--config",
                &format!("{state}/lbd-{node}.toml"),
            ],
            None,
            Path::new(&format!("{state}/lbd-{node}.log")),
        )?;
        // lbctl falls back to the pinned maps when lbd is down; only a live lbd knows
        // its node name, so wait for that.
        wait_for(
            &format!("lbd on {node} answering on its control socket"),
            Duration::from_secs(20),
            || {
                self.lbctl(node, &["--json", "status"])
                    .is_ok_and(|s| s.contains(&format!("{}-{node}", self.name)))
            },
        )?;
        Ok(child)
    }
}

impl Demo {
    fn lbctl(&self, node: &str, args: &[&str]) -> Result<String> {
        self.nodes.lbctl(node, args)
    }

    fn start_lbd(&mut self, node: &str) -> Result<()> {
        self.nodes.start_lbd(node).map(drop)
    }

    fn json(&self, node: &str, args: &[&str]) -> Result<serde_json::Value> {
        self.nodes.json(node, args)
    }

    fn health(&self, node: &str) -> BTreeMap<String, bool> {
        self.json(node, &["health"])
            .map(|v| {
                v["backends"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .map(|b| {
                                (
                                    b["backend"].as_str().unwrap_or("").to_string(),
                                    b["up"] == true,
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default()
            })
            .unwrap_or_default()
    }

    fn healthy(&self, node: &str) -> usize {
        self.health(node).values().filter(|u| **u).count()
    }

    fn vrrp_state(&self, node: &str) -> String {
        self.json(node, &["vrrp"])
            .ok()
            .and_then(|v| v["instances"][0]["state"].as_str().map(String::from))
            .unwrap_or_default()
    }

    fn start_server(&mut self, i: usize) -> Result<()> {
        let dir = PathBuf::from(format!("{STATE}/b{}", i + 1));
        let log = PathBuf::from(format!("{STATE}/b{}.log", i + 1));
        let name = ns(&format!("b{}", i + 1));
        let script = format!("{STATE}/https_server.py");
        let child = spawn(
            "ip",
            &["netns", "exec", &name, "python3", &script],
            Some(&dir),
            &log,
        )?;
        self.servers[i] = Some(child);
        wait_for("a backend HTTPS server", Duration::from_secs(10), || {
            output("ip", &["netns", "exec", &name, "ss", "-ltn"])
                .map(|s| s.contains(&format!(":{PORT} ")))
                .unwrap_or(false)
        })
    }

    /// `n` requests from the client; responses counted per backend.
    fn requests(&self, n: usize) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for _ in 0..n {
            let body = output(
                "ip",
                &[
                    "netns",
                    "exec",
                    &ns("client"),
                    "curl",
                    "-sk",
                    "-m",
                    "3",
                    &format!("https://{VIP}:{PORT}/"),
                ],
            )
            .unwrap_or_default();
            *counts
                .entry(if body.is_empty() {
                    "failed".to_string()
                } else {
                    body
                })
                .or_insert(0) += 1;
        }
        counts
    }
}

fn show(counts: &BTreeMap<String, usize>) -> String {
    counts
        .iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect::<Vec<_>>()
        .join("   ")
}

const HTTPS_SERVER: &str = r#"# A stand-in kube-apiserver: HTTPS on 6443, serving this directory (index.html names
# the backend, /healthz answers ok). Started by cargo xtask demo in a backend namespace.
import http.server, ssl
server = http.server.ThreadingHTTPServer(("0.0.0.0", 6443), http.server.SimpleHTTPRequestHandler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain("/run/lbdemo/apiserver.crt", "/run/lbdemo/apiserver.key")
server.socket = context.wrap_socket(server.socket, server_side=True)
server.serve_forever()
"#;

fn config(node: &str, priority: u8) -> String {
    format!(
        r#"# lbd on {node}: the kube-apiserver VIP of seed 000, with VRRP as the keepalived pair had.
[global]
node_name = "demo-{node}"
control_socket = "{STATE}/lbd-{node}.sock"
metrics_listen = "127.0.0.1:9469"
pin_dir = "{BPFFS}/{node}"

[[interface]]
name = "eth0"
xdp_mode = "driver"

[[vrrp]]
name = "VI_API"
interface = "eth0"
virtual_router_id = 51
priority = {priority}
version = 2
advert_interval = "1s"
auth_pass = "secret12"
virtual_addresses = ["{VIP}/24"]
track = [{{ service = "apiserver", weight = -60 }}]

[[service]]
name = "apiserver"
vip = "{VIP}"
port = {PORT}

[service.health]
kind = "https"
path = "/healthz"
interval = "500ms"
timeout = "400ms"
fall = 2
rise = 1

[[service.backend]]
address = "10.99.0.11"
name = "master1"

[[service.backend]]
address = "10.99.0.12"
name = "master2"

[[service.backend]]
address = "10.99.0.13"
name = "master3"
"#
    )
}

fn demo(root: &Path) -> Result<()> {
    let target = target_dir(root).join("release");
    let mut d = Demo {
        nodes: Nodes {
            lbd: target.join("lbd"),
            lbctl: target.join("lbctl"),
            prefix: PREFIX,
            state: STATE,
            name: "demo",
        },
        servers: vec![None, None, None],
    };

    step(2, "lab: a client, two LB nodes and three HTTPS kube-apiserver backends on one bridge (scripts/lab.sh); the backends hold the VIP on lo with the DR ARP sysctls (scripts/realserver.sh)");
    Command::new(root.join("scripts/lab.sh"))
        .args(["up", PREFIX])
        .env("LAB_LBS", "2")
        .env("LAB_VIP_ROUTE", "0")
        .stdout(Stdio::null())
        .status()
        .context("scripts/lab.sh up")?
        .success()
        .then_some(())
        .context("scripts/lab.sh up failed")?;
    state_dirs(STATE, BPFFS)?;
    output(
        "openssl",
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=kubernetes",
            "-keyout",
            &format!("{STATE}/apiserver.key"),
            "-out",
            &format!("{STATE}/apiserver.crt"),
        ],
    )?;
    fs::write(format!("{STATE}/https_server.py"), HTTPS_SERVER)?;
    for i in 0..3 {
        let dir = PathBuf::from(format!("{STATE}/b{}", i + 1));
        fs::create_dir_all(&dir)?;
        fs::write(dir.join("index.html"), format!("master{}", i + 1))?;
        fs::write(dir.join("healthz"), "ok")?;
        fs::write(dir.join("big"), vec![b'x'; 1 << 20])?;
        d.start_server(i)?;
    }
    say(&format!("      client 10.99.0.10; LBs lb 10.99.0.2 and lb2 10.99.0.3; apiservers master1..3 10.99.0.11-13; VIP {VIP}:{PORT}"));
    fs::write(format!("{STATE}/lbd-lb.toml"), config("lb", 150))?;
    fs::write(format!("{STATE}/lbd-lb2.toml"), config("lb2", 100))?;

    step(3, "lbd starts on both LB nodes: XDP on eth0 (driver mode), backend MACs resolved, HTTPS /healthz checks, VRRP elects a master");
    d.start_lbd("lb")?;
    d.start_lbd("lb2")?;
    wait_for("lb MASTER and lb2 BACKUP", Duration::from_secs(20), || {
        d.vrrp_state("lb") == "MASTER" && d.vrrp_state("lb2") == "BACKUP"
    })?;
    wait_for(
        "3 healthy backends on both nodes",
        Duration::from_secs(20),
        || d.healthy("lb") == 3 && d.healthy("lb2") == 3,
    )?;
    print!("{}", d.lbctl("lb", &["vrrp"])?);
    print!("{}", d.lbctl("lb", &["list"])?);
    let metrics = output(
        "ip",
        &[
            "netns",
            "exec",
            &ns("lb"),
            "curl",
            "-s",
            "http://127.0.0.1:9469/metrics",
        ],
    )?;
    let up: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("lb_backend_up{"))
        .collect();
    if up.len() != 3 || !up.iter().all(|l| l.ends_with(" 1")) {
        bail!("metrics should show 3 backends up:\n{metrics}");
    }
    say(&format!(
        "      metrics at http://127.0.0.1:9469/metrics on each LB node, e.g. {}",
        up[0]
    ));

    step(4, "30 new HTTPS connections from the client to the VIP");
    let counts = d.requests(30);
    say(&format!("      {}", show(&counts)));
    for b in ["master1", "master2", "master3"] {
        if counts.get(b).copied().unwrap_or(0) == 0 {
            bail!("{b} answered none of 30 requests: {}", show(&counts));
        }
    }
    if counts.contains_key("failed") {
        bail!("some requests failed: {}", show(&counts));
    }
    say("      every apiserver answered, seeing the client's own address; replies went straight to the client (DR)");

    step(5, "apiserver master2 dies");
    if let Some(mut c) = d.servers[1].take() {
        let _ = c.kill();
        let _ = c.wait();
    }
    let t = Instant::now();
    wait_for("lbd to mark master2 down", Duration::from_secs(20), || {
        d.health("lb").get("10.99.0.12") == Some(&false)
    })?;
    say(&format!(
        "      lbd took master2 out after {} ms (2 failed HTTPS checks, 500 ms apart)",
        t.elapsed().as_millis()
    ));
    let counts = d.requests(30);
    say(&format!("      30 new connections: {}", show(&counts)));
    if counts.contains_key("master2") || counts.contains_key("failed") {
        bail!("after master2 failed: {}", show(&counts));
    }

    step(6, "the master LB node dies (link down, lbd killed) while a 1 MiB download streams through the VIP");
    let download = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns("client"),
            "curl",
            "-sk",
            "-o",
            "/dev/null",
            "-m",
            "60",
            "-w",
            "%{size_download} %{http_code}",
        ])
        .args(["--limit-rate", "100k", &format!("https://{VIP}:{PORT}/big")])
        .stdout(Stdio::piped())
        .spawn()?;
    std::thread::sleep(Duration::from_millis(1500));
    output("ip", &["-n", &ns("lb"), "link", "set", "eth0", "down"])?;
    let t = Instant::now();
    let _ = Command::new("pkill")
        .args(["-9", "-f", &format!("{STATE}/lbd-lb.toml")])
        .status();
    wait_for("lb2 to become MASTER", Duration::from_secs(10), || {
        d.vrrp_state("lb2") == "MASTER"
    })?;
    say(&format!("      lb2 took over the VIP after {} ms (VRRP v2: 3 x 1 s + skew) and announced it with gratuitous ARP", t.elapsed().as_millis()));
    let counts = d.requests(10);
    say(&format!(
        "      10 new connections through lb2: {}",
        show(&counts)
    ));
    if counts.contains_key("failed") {
        bail!(
            "new connections failed after the failover: {}",
            show(&counts)
        );
    }
    let out = download.wait_with_output()?;
    let result = String::from_utf8_lossy(&out.stdout).to_string();
    if result != "1048576 200" {
        bail!("the download broke in the failover: {result}");
    }
    say("      the download completed intact (1048576 bytes, HTTP 200): both LBs map every flow to the same apiserver");

    step(7, "lbctl list --stats on the new master");
    print!("{}", d.lbctl("lb2", &["list", "--stats"])?);
    println!("\n== demo passed ==");
    Ok(())
}

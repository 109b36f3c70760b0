//! `cargo xtask demo`: the README's main command. Builds everything, then runs a
//! narrated lab in network namespaces (the project's own scripts/lab.sh and
//! scripts/realserver.sh): a client, one LB running lbd, three HTTP backends. It shows
//! traffic spread over the backends, a backend failing and being taken out, and lbd
//! killed with -9 while a download streams (forwarding continues; a new lbd adopts
//! the pinned state), then `lbctl list --stats`. Each step checks its outcome; the lab
//! is torn down at the end, on failure and on Ctrl-C (`--keep` leaves it running).

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
const DEMO_PACKAGES: &[&str] = &["iproute2", "ethtool", "curl", "python3", "xdp-tools"];

/// Processes to kill on teardown (also from the Ctrl-C handler).
static CHILDREN: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// Command-line options.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Leave the lab running at the end and print how to explore it.
    #[arg(long)]
    keep: bool,
    /// Only tear down a lab left by `--keep`.
    #[arg(long)]
    down: bool,
}

fn ns(node: &str) -> String {
    format!("{PREFIX}-{node}")
}

fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
}

fn say(text: &str) {
    println!("{text}");
}

fn step(n: usize, text: &str) {
    println!("\n[{n}/6] {text}");
}

/// Run a command quietly; its stdout.
fn output(program: &str, args: &[&str]) -> Result<String> {
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

fn spawn(program: &str, args: &[&str], dir: Option<&Path>, log: &Path) -> Result<Child> {
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

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) -> Result<()> {
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
        .args(["-9", "-f", &format!("{STATE}/lbd.toml")])
        .status();
    for b in ["b1", "b2", "b3"] {
        let _ = Command::new("ip")
            .args(["netns", "pids", &ns(b)])
            .output()
            .map(|o| {
                for pid in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                    let _ = Command::new("kill")
                        .args(["-9", pid])
                        .stderr(Stdio::null())
                        .status();
                }
            });
    }
    let _ = Command::new(root.join("scripts/lab.sh"))
        .args(["down", PREFIX])
        .stdout(Stdio::null())
        .status();
    let _ = fs::remove_dir_all(format!("{BPFFS}/lbd"));
    let _ = Command::new("umount")
        .arg(BPFFS)
        .stderr(Stdio::null())
        .status();
    let _ = fs::remove_dir(BPFFS);
    let _ = fs::remove_dir_all(STATE);
}

/// `cargo xtask demo`.
pub fn run(args: Args) -> Result<()> {
    let root = repo_root()?;
    if args.down {
        teardown(&root);
        say("demo lab removed");
        return Ok(());
    }
    println!("== lb demo: an XDP direct-server-return load balancer, in network namespaces ==");
    step(
        1,
        "toolchain and build (installs what is missing: nightly rust-src, bpf-linker, packages)",
    );
    bootstrap::bootstrap(bootstrap::Needs::default())?;
    bootstrap::ensure_test_packages(DEMO_PACKAGES)?;
    Cmd::new("cargo")
        .args(["build", "--release", "-p", "lb-userspace"])
        .current_dir(&root)
        .run()?;

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
    println!("\nThe lab is still running. Explore it:");
    println!(
        "  ip netns exec {} {} --socket {STATE}/lbd.sock --config {STATE}/lbd.toml list --stats",
        ns("lb"),
        lbctl.display()
    );
    println!(
        "  ip netns exec {} {} --socket {STATE}/lbd.sock health",
        ns("lb"),
        lbctl.display()
    );
    println!("  ip netns exec {} curl http://{VIP}/", ns("client"));
    println!("  lbd's log: {STATE}/lbd-*.log; config: {STATE}/lbd.toml (edit, then lbctl reload)");
    println!("Tear it down: cargo xtask demo --down");
}

struct Demo {
    lbd: PathBuf,
    lbctl: PathBuf,
    lbd_runs: u32,
    servers: Vec<Option<Child>>,
}

impl Demo {
    fn lbctl(&self, args: &[&str]) -> Result<String> {
        let lb = ns("lb");
        let mut full = vec!["netns", "exec", &lb, self.lbctl.to_str().unwrap_or("lbctl")];
        full.extend([
            "--socket",
            "/run/lbdemo/lbd.sock",
            "--config",
            "/run/lbdemo/lbd.toml",
        ]);
        full.extend(args);
        output("ip", &full)
    }

    fn start_lbd(&mut self) -> Result<()> {
        self.lbd_runs += 1;
        let log = PathBuf::from(format!("{STATE}/lbd-{}.log", self.lbd_runs));
        let lbd = self.lbd.to_str().unwrap_or("lbd").to_string();
        spawn(
            "ip",
            &[
                "netns",
                "exec",
                &ns("lb"),
                &lbd,
                "--config",
                &format!("{STATE}/lbd.toml"),
            ],
            None,
            &log,
        )?;
        wait_for(
            "lbd to answer on its control socket",
            Duration::from_secs(20),
            // lbctl falls back to the pinned maps when lbd is down; only a live lbd
            // knows its node name, so wait for that.
            || {
                self.lbctl(&["--json", "status"])
                    .map(|s| s.contains("demo-lb"))
                    .unwrap_or(false)
            },
        )
    }

    fn health(&self) -> Result<BTreeMap<String, bool>> {
        let v: serde_json::Value = serde_json::from_str(&self.lbctl(&["--json", "health"])?)?;
        Ok(v["backends"]
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
            .unwrap_or_default())
    }

    fn healthy(&self) -> usize {
        self.health()
            .map(|h| h.values().filter(|u| **u).count())
            .unwrap_or(0)
    }

    fn start_server(&mut self, i: usize) -> Result<()> {
        let dir = PathBuf::from(format!("{STATE}/b{}", i + 1));
        let log = PathBuf::from(format!("{STATE}/b{}.log", i + 1));
        let name = ns(&format!("b{}", i + 1));
        let child = spawn(
            "ip",
            &[
                "netns",
                "exec",
                &name,
                "python3",
                "-m",
                "http.server",
                "80",
                "--bind",
                "0.0.0.0",
            ],
            Some(&dir),
            &log,
        )?;
        self.servers[i] = Some(child);
        wait_for("a backend web server", Duration::from_secs(10), || {
            output("ip", &["netns", "exec", &name, "ss", "-ltn"])
                .map(|s| s.contains(":80 "))
                .unwrap_or(false)
        })
    }

    /// `n` requests from the client; responses counted per backend.
    fn requests(&self, n: usize) -> Result<BTreeMap<String, usize>> {
        let mut counts = BTreeMap::new();
        for _ in 0..n {
            let body = output(
                "ip",
                &[
                    "netns",
                    "exec",
                    &ns("client"),
                    "curl",
                    "-s",
                    "-m",
                    "3",
                    &format!("http://{VIP}/"),
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
        Ok(counts)
    }
}

fn show(counts: &BTreeMap<String, usize>) -> String {
    counts
        .iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect::<Vec<_>>()
        .join("   ")
}

fn demo(root: &Path) -> Result<()> {
    let target = target_dir(root).join("release");
    let mut d = Demo {
        lbd: target.join("lbd"),
        lbctl: target.join("lbctl"),
        lbd_runs: 0,
        servers: vec![None, None, None],
    };

    step(2, "lab: a client, an LB and three backends on one bridge (scripts/lab.sh); the backends hold the VIP on lo with the DR ARP sysctls (scripts/realserver.sh)");
    output(
        root.join("scripts/lab.sh")
            .to_str()
            .unwrap_or("scripts/lab.sh"),
        &["up", PREFIX],
    )?;
    fs::create_dir_all(STATE)?;
    fs::create_dir_all(BPFFS)?;
    if Command::new("mountpoint")
        .args(["-q", BPFFS])
        .status()
        .map(|s| !s.success())
        .unwrap_or(true)
    {
        output("mount", &["-t", "bpf", "bpf", BPFFS])?;
    }
    for i in 0..3 {
        let dir = PathBuf::from(format!("{STATE}/b{}", i + 1));
        fs::create_dir_all(&dir)?;
        fs::write(dir.join("index.html"), format!("b{}", i + 1))?;
        fs::write(dir.join("healthz"), "ok")?;
        fs::write(dir.join("big"), vec![b'x'; 1 << 20])?;
        d.start_server(i)?;
    }
    say("      client 10.99.0.10, LB 10.99.0.2, backends b1 10.99.0.11, b2 10.99.0.12, b3 10.99.0.13; VIP 10.99.0.100:80");
    fs::write(
        format!("{STATE}/lbd.toml"),
        format!(
            "[global]\nnode_name = \"demo-lb\"\ncontrol_socket = \"{STATE}/lbd.sock\"\nmetrics_listen = \"127.0.0.1:9469\"\npin_dir = \"{BPFFS}/lbd\"\n\n\
             [[interface]]\nname = \"eth0\"\nxdp_mode = \"driver\"\n\n\
             [[service]]\nname = \"web\"\nvip = \"{VIP}\"\nport = 80\n\n[service.health]\nkind = \"http\"\npath = \"/healthz\"\ninterval = \"500ms\"\ntimeout = \"400ms\"\nfall = 2\nrise = 1\n\n\
             [[service.backend]]\naddress = \"10.99.0.11\"\nname = \"b1\"\n\n[[service.backend]]\naddress = \"10.99.0.12\"\nname = \"b2\"\n\n[[service.backend]]\naddress = \"10.99.0.13\"\nname = \"b3\"\n"
        ),
    )?;

    step(3, "lbd starts: attaches the XDP program to the LB's eth0 (driver mode), resolves the backends' MACs, health-checks them");
    d.start_lbd()?;
    wait_for("3 healthy backends", Duration::from_secs(20), || {
        d.healthy() == 3
    })?;
    print!("{}", d.lbctl(&["list"])?);
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
        "      metrics at http://127.0.0.1:9469/metrics (in the LB namespace), e.g. {}",
        up[0]
    ));

    step(4, "30 new connections from the client to the VIP");
    let counts = d.requests(30)?;
    say(&format!("      {}", show(&counts)));
    for b in ["b1", "b2", "b3"] {
        if counts.get(b).copied().unwrap_or(0) == 0 {
            bail!(
                "backend {b} answered none of 30 requests: {}",
                show(&counts)
            );
        }
    }
    if counts.contains_key("failed") {
        bail!("some requests failed: {}", show(&counts));
    }
    say("      every backend answered, seeing the client's own address; replies went straight to the client (DR), the LB only forwarded the requests");

    step(5, "backend b2's web server dies");
    if let Some(mut c) = d.servers[1].take() {
        let _ = c.kill();
        let _ = c.wait();
    }
    let t = Instant::now();
    wait_for("lbd to mark b2 down", Duration::from_secs(20), || {
        d.health()
            .map(|h| h.get("10.99.0.12") == Some(&false))
            .unwrap_or(false)
    })?;
    say(&format!(
        "      lbd took b2 out after {} ms (2 failed checks, 500 ms apart)",
        t.elapsed().as_millis()
    ));
    let counts = d.requests(30)?;
    say(&format!("      30 new connections: {}", show(&counts)));
    if counts.contains_key("b2") || counts.contains_key("failed") {
        bail!("after b2 failed: {}", show(&counts));
    }

    step(
        6,
        "kill -9 lbd while a 1 MiB download streams through the VIP",
    );
    let download = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns("client"),
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-m",
            "60",
            "-w",
            "%{size_download} %{http_code}",
        ])
        .args(["--limit-rate", "200k", &format!("http://{VIP}/big")])
        .stdout(Stdio::piped())
        .spawn()?;
    std::thread::sleep(Duration::from_millis(800));
    output("pkill", &["-9", "-f", &format!("{STATE}/lbd.toml")])?;
    say("      lbd killed; the XDP program and its maps stay pinned and keep forwarding");
    let counts = d.requests(10)?;
    say(&format!(
        "      10 new connections with no lbd running: {}",
        show(&counts)
    ));
    if counts.contains_key("failed") {
        bail!("forwarding stopped without lbd: {}", show(&counts));
    }
    d.start_lbd()?;
    let log = fs::read_to_string(format!("{STATE}/lbd-2.log")).unwrap_or_default();
    if !log.contains("adopted the pinned XDP link") {
        bail!("the restarted lbd did not adopt the pinned link:\n{log}");
    }
    say("      lbd restarted and adopted the pinned maps and link without a gap");
    let out = download.wait_with_output()?;
    let result = String::from_utf8_lossy(&out.stdout).to_string();
    if result != "1048576 200" {
        bail!("the download broke: {result}");
    }
    say("      the download completed intact: 1048576 bytes, HTTP 200");
    print!("\n{}", d.lbctl(&["list", "--stats"])?);
    println!("\n== demo passed ==");
    Ok(())
}

//! `cargo xtask demo --ecmp`: the active-active scene (issue 14). Three LB nodes run
//! lbd with `[bgp]` and `[sync]` next to a BIRD each; a router namespace runs BIRD with
//! multipath and spreads the VIP's flows over the nodes by the 5-tuple (ECMP). Narrated
//! steps, each checking its outcome: the router's route with three nexthops, new flows
//! spread over the nodes (their forwarded-packet counters) and the backends, a long
//! download through a node that dies (link down, lbd and BIRD killed) and completes,
//! `lbctl bgp`, `lbctl drain` on another node (the router drops it, lbd exits once
//! traffic stopped), teardown. `--keep` leaves the lab running, `--down` removes it.
//!
//! ```text
//!  client 10.88.1.10 ── 10.88.1.1  router (BIRD AS 65000, merge paths, BFD)
//!                                  10.88.2.1
//!                                      │  bridge br0 (its own namespace)
//!       ┌──────────┬──────────┬────────┴─┬──────────┬──────────┐
//!      lb1        lb2        lb3         b1         b2         b3
//!   10.88.2.11  .12        .13         .21        .22        .23  (VIP on lo)
//!   lbd + BIRD (AS 65100) on each       python3 http.server on each
//! ```
//!
//! The same plumbing as the ECMP test lab (tests/src/ecmp.rs; the measured configs and
//! traps are in shared/reference/ecmp-notes.md), built here with `ip` commands: xtask
//! depends on nothing in the workspace.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, ensure, Context, Result};

use crate::{
    bootstrap,
    cmd::Cmd,
    demo::{output, say, spawn, state_dirs, target_dir, wait_for, Nodes, CHILDREN, DEMO_PACKAGES},
    repo_root,
};

const PREFIX: &str = "lbecmp";
const STATE: &str = "/run/lbecmp";
const BPFFS: &str = "/run/lbecmp-bpf";
const VIP: &str = "10.88.9.100";
const PORT: u16 = 80;
const CLIENT: &str = "10.88.1.10";
const ROUTER: &str = "10.88.2.1";
const NODES: [&str; 3] = ["lb1", "lb2", "lb3"];
const NODE_ADDRS: [&str; 3] = ["10.88.2.11", "10.88.2.12", "10.88.2.13"];
const BACKENDS: [&str; 3] = ["b1", "b2", "b3"];
const BACKEND_ADDRS: [&str; 3] = ["10.88.2.21", "10.88.2.22", "10.88.2.23"];
/// Every namespace, by role.
const ROLES: [&str; 9] = ["br", "rtr", "client", "lb1", "lb2", "lb3", "b1", "b2", "b3"];
const STEPS: usize = 8;
const SYNC_KEY: &str = "ecmp-demo-sync-key-0123456789abcdef";
/// The size of the download that runs through a node's death.
const BIG: usize = 1 << 20;
/// How long the router may take to follow a change (BFD: 0.3 s; generous for CI).
const ROUTE_WAIT: Duration = Duration::from_secs(15);

fn ns(role: &str) -> String {
    format!("{PREFIX}-{role}")
}

fn node_of(addr: &str) -> String {
    NODE_ADDRS
        .iter()
        .position(|a| *a == addr)
        .map(|i| NODES[i].to_string())
        .unwrap_or_else(|| addr.to_string())
}

fn step(n: usize, text: &str) {
    println!("\n[{n}/{STEPS}] {text}");
}

/// Run a shell command in namespace `role` (fails on a non-zero exit).
fn exec(role: &str, cmd: &str) -> Result<String> {
    output("ip", &["netns", "exec", &ns(role), "sh", "-c", cmd])
}

/// `cargo xtask demo --ecmp [--keep | --down]`.
pub fn run(keep: bool, down: bool) -> Result<()> {
    let root = repo_root()?;
    if down {
        teardown();
        say("ECMP demo lab removed");
        return Ok(());
    }
    let started = Instant::now();
    println!("== lb demo --ecmp: three active LB nodes behind an ECMP router, the VIP announced over BGP by lbd through BIRD ==");
    step(
        1,
        "toolchain and build (installs what is missing: nightly rust-src, bpf-linker, bird2, packages)",
    );
    bootstrap::bootstrap(bootstrap::Needs::default())?;
    let mut packages = DEMO_PACKAGES.to_vec();
    packages.push("bird2");
    bootstrap::ensure_test_packages(&packages)?;
    Cmd::new("cargo")
        .args(["build", "--release", "-p", "lb-userspace"])
        .current_dir(&root)
        .run_logged(
            "building lbd and lbctl (release)",
            &target_dir(&root).join("demo-build.log"),
        )?;

    teardown();
    ctrlc::set_handler(|| {
        eprintln!("\ninterrupted: tearing the ECMP demo lab down");
        teardown();
        std::process::exit(130);
    })
    .context("installing the Ctrl-C handler")?;
    let target = target_dir(&root).join("release");
    let mut d = Demo {
        root: root.clone(),
        nodes: Nodes {
            lbd: target.join("lbd"),
            lbctl: target.join("lbctl"),
            prefix: PREFIX,
            state: STATE,
            name: "ecmp",
        },
        lbds: BTreeMap::new(),
        birds: BTreeMap::new(),
    };
    let result = d.scene();
    if let Err(e) = &result {
        eprintln!("\nthe ECMP demo failed: {e:#}");
        d.dump();
    }
    match (&result, keep) {
        (Ok(()), true) => {
            explore_hint(&d);
            // Leave the processes running: dropping a `Child` does not kill it.
            d.lbds.clear();
            d.birds.clear();
        }
        _ => {
            say("\ntearing the ECMP demo lab down");
            drop(d);
            teardown();
        }
    }
    if result.is_ok() {
        println!(
            "\n== ECMP demo passed in {:.1} s ==",
            started.elapsed().as_secs_f64()
        );
    }
    result
}

/// Remove everything the demo made (also what a `--keep` run left): its processes
/// (by id), every process in its namespaces, the namespaces, the bpffs, the files.
fn teardown() {
    if let Ok(mut list) = CHILDREN.lock() {
        for pid in list.drain(..) {
            let _ = Command::new("kill")
                .args(["-9", &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
    }
    for role in ROLES {
        if let Ok(o) = Command::new("ip")
            .args(["netns", "pids", &ns(role)])
            .stderr(Stdio::null())
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
    for role in ROLES {
        let _ = Command::new("ip")
            .args(["netns", "del", &ns(role)])
            .stderr(Stdio::null())
            .status();
    }
    let _ = Command::new("umount")
        .arg(BPFFS)
        .stderr(Stdio::null())
        .status();
    let _ = fs::remove_dir_all(BPFFS);
    let _ = fs::remove_dir_all(STATE);
}

fn explore_hint(d: &Demo) {
    println!(
        "\nThe lab is still running (lb1 died, lb2 was drained: lb3 carries the VIP). Explore it:"
    );
    for args in ["bgp", "list --stats", "sync"] {
        println!(
            "  ip netns exec {} {} --socket {STATE}/lbd-lb3.sock --config {STATE}/lbd-lb3.toml {args}",
            ns("lb3"),
            d.nodes.lbctl.display()
        );
    }
    println!(
        "  birdc -s {STATE}/bird-rtr.ctl show route all; ip -n {} route show {VIP}",
        ns("rtr")
    );
    println!("  ip netns exec {} curl -s http://{VIP}/", ns("client"));
    println!("  logs and configs: {STATE}/");
    println!("Tear it down: cargo xtask demo --ecmp --down");
}

struct Demo {
    root: PathBuf,
    nodes: Nodes,
    lbds: BTreeMap<String, Child>,
    birds: BTreeMap<String, Child>,
}

impl Drop for Demo {
    fn drop(&mut self) {
        for c in self.lbds.values_mut().chain(self.birds.values_mut()) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn bird_config(role: &str) -> String {
    let timers = "hold time 3; keepalive time 1; connect delay time 1; connect retry time 2;\n  \
                  error wait time 1, 5; graceful restart off; long lived graceful restart off; bfd on;";
    let bfd = "min rx interval 100 ms; min tx interval 100 ms; multiplier 3;";
    if role == "rtr" {
        format!(
            "# The router: dynamic eBGP peers from the LB segment, /32s of 10.88.9.0/24 only,\n\
             # installed as one multipath route (merge paths); BFD 100 ms x 3; no graceful restart.\n\
             log \"{STATE}/bird-rtr.log\" all;\nrouter id {ROUTER};\n\
             protocol device {{}}\n\
             protocol kernel k4 {{ merge paths on limit 16; ipv4 {{ import none; export where source = RTS_BGP; }}; }}\n\
             protocol bfd {{ interface \"eth-lb\" {{ {bfd} }}; }}\n\
             filter vip_only {{ if net ~ [ 10.88.9.0/24{{32,32}} ] then accept; reject; }}\n\
             template bgp LB {{ local {ROUTER} as 65000; {timers}\n  ipv4 {{ import filter vip_only; export none; }}; }}\n\
             protocol bgp lbs from LB {{ neighbor range 10.88.2.0/24 as 65100; dynamic name \"dyn\"; }}\n"
        )
    } else {
        let addr = NODE_ADDRS[NODES.iter().position(|n| *n == role).unwrap_or(0)];
        format!(
            "# LB node {role}: lbd writes {STATE}/vips-{role}.conf (protocol static lb_vips4) and\n\
             # runs `configure`; this BIRD exports that protocol's routes only.\n\
             log \"{STATE}/bird-{role}.log\" all;\nrouter id {addr};\n\
             protocol device {{}}\n\
             protocol bfd {{ interface \"eth0\" {{ {bfd} }}; }}\n\
             include \"{STATE}/vips-{role}.conf\";\n\
             protocol bgp rtr {{ local {addr} as 65100; neighbor {ROUTER} as 65000; {timers}\n  \
             ipv4 {{ import none; export where proto = \"lb_vips4\"; }}; }}\n"
        )
    }
}

fn lbd_config(node: &str) -> String {
    let peers: Vec<String> = NODES
        .iter()
        .zip(NODE_ADDRS)
        .filter(|(n, _)| **n != node)
        .map(|(_, a)| format!("\"{a}\""))
        .collect();
    let mut s = format!(
        r#"# lbd on {node}: always active (no VRRP), the same hash seed as its peers (the same
# Maglev tables), connection entries shared over [sync], the VIP announced through
# this node's BIRD while the node can serve it.
[global]
node_name = "ecmp-{node}"
control_socket = "{STATE}/lbd-{node}.sock"
metrics_listen = "off"
pin_dir = "{BPFFS}/{node}"
hash_seed = 0x5eed
forwarding = "active"

[[interface]]
name = "eth0"
xdp_mode = "driver"

[sync]
key = "{SYNC_KEY}"
peers = [{peers}]

[bgp]
speaker = "bird"
bird_socket = "{STATE}/bird-{node}.ctl"
routes_file = "{STATE}/vips-{node}.conf"
min_healthy = 1
drain_timeout = "20s"

[[service]]
name = "web"
vip = "{VIP}"
port = {PORT}

[service.health]
kind = "tcp"
interval = "300ms"
timeout = "250ms"
rise = 1
fall = 2
"#,
        peers = peers.join(", ")
    );
    for (b, addr) in BACKENDS.iter().zip(BACKEND_ADDRS) {
        s.push_str(&format!(
            "\n[[service.backend]]\naddress = \"{addr}\"\nname = \"{b}\"\n"
        ));
    }
    s
}

impl Demo {
    fn lbctl(&self, node: &str, args: &[&str]) -> Result<String> {
        self.nodes.lbctl(node, args)
    }

    fn json(&self, node: &str, args: &[&str]) -> Result<serde_json::Value> {
        self.nodes.json(node, args)
    }

    /// Data-plane counter `name` of `node`'s lbd (`lbctl --json status`).
    fn counter(&self, node: &str, name: &str) -> Result<u64> {
        let v = self.json(node, &["status"])?;
        let counters = &v["counters"];
        let found = match counters {
            serde_json::Value::Array(pairs) => pairs
                .iter()
                .find(|p| p[0] == name)
                .and_then(|p| p[1].as_u64()),
            serde_json::Value::Object(map) => map.get(name).and_then(|x| x.as_u64()),
            _ => None,
        };
        found.with_context(|| format!("no counter {name} in {node}'s status: {counters}"))
    }

    /// Whether `node`'s lbd wants the VIP announced and its BIRD holds it.
    fn announced(&self, node: &str) -> bool {
        self.json(node, &["bgp"])
            .map(|v| {
                v["speaker_ok"] == true
                    && v["vips"].as_array().is_some_and(|a| {
                        a.iter().any(|x| {
                            x["vip"] == VIP && x["wanted"] == true && x["announced"] == true
                        })
                    })
            })
            .unwrap_or(false)
    }

    fn start_bird(&mut self, role: &str) -> Result<()> {
        if role != "rtr" {
            let routes = format!("{STATE}/vips-{role}.conf");
            if !Path::new(&routes).exists() {
                fs::write(&routes, "")?;
            }
        }
        let conf = format!("{STATE}/bird-{role}.conf");
        fs::write(&conf, bird_config(role))?;
        let sock = format!("{STATE}/bird-{role}.ctl");
        let child = spawn(
            "ip",
            &[
                "netns",
                "exec",
                &ns(role),
                "bird",
                "-f",
                "-c",
                &conf,
                "-s",
                &sock,
                "-P",
                &format!("{STATE}/bird-{role}.pid"),
            ],
            None,
            Path::new(&format!("{STATE}/bird-{role}.stderr")),
        )?;
        self.birds.insert(role.to_string(), child);
        wait_for(
            &format!("BIRD on {role} answering"),
            Duration::from_secs(10),
            || birdc(role, "show status").is_ok_and(|s| s.contains("Daemon is up")),
        )
    }

    fn start_lbd(&mut self, node: &str) -> Result<()> {
        let child = self.nodes.start_lbd(node)?;
        self.lbds.insert(node.to_string(), child);
        Ok(())
    }

    fn kill(map: &mut BTreeMap<String, Child>, role: &str) {
        if let Some(mut c) = map.remove(role) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Print what helps when a step failed: the router's route and sessions, each
    /// node's routes file and the tail of its lbd log.
    fn dump(&self) {
        eprintln!(
            "--- router: ip route ---\n{}",
            output("ip", &["-n", &ns("rtr"), "route"]).unwrap_or_default()
        );
        eprintln!(
            "--- router: birdc show protocols ---\n{}",
            birdc("rtr", "show protocols").unwrap_or_default()
        );
        for node in NODES {
            eprintln!(
                "--- {node}: routes file ---\n{}",
                fs::read_to_string(format!("{STATE}/vips-{node}.conf")).unwrap_or_default()
            );
            let log = fs::read_to_string(format!("{STATE}/lbd-{node}.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(25).collect();
            eprintln!(
                "--- {node}: lbd log (last 25 lines) ---\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
    }

    fn scene(&mut self) -> Result<()> {
        step(2, "lab: a client, a router, three LB nodes and three backends on a bridge, each in its own network namespace");
        lab_up(&self.root)?;
        say(&format!(
            "      client {CLIENT} -> router {ROUTER} -> LB nodes lb1..lb3 {} -> backends b1..b3 {}; VIP {VIP}:{PORT}",
            NODE_ADDRS.join(" "),
            BACKEND_ADDRS.join(" ")
        ));
        say("      router: fib_multipath_hash_policy=3, fib_multipath_hash_fields=0x37 (the 5-tuple picks the LB node)");

        step(3, "BIRD on the router (dynamic eBGP peers, merge paths, BFD 100 ms x 3) and on each LB node; lbd on each node writes its routes file and asks its BIRD to configure");
        self.start_bird("rtr")?;
        for node in NODES {
            fs::write(format!("{STATE}/lbd-{node}.toml"), lbd_config(node))?;
            self.start_bird(node)?;
        }
        wait_for(
            "the router's three BGP sessions established",
            Duration::from_secs(20),
            || {
                birdc("rtr", "show protocols")
                    .map(|s| s.lines().filter(|l| l.contains("Established")).count())
                    .unwrap_or(0)
                    == 3
            },
        )?;
        let t = Instant::now();
        for node in NODES {
            self.start_lbd(node)?;
        }
        wait_nexthops(&NODES, Duration::from_secs(40))?;
        for node in NODES {
            ensure!(
                self.announced(node),
                "{node}: lbd does not report the VIP announced"
            );
        }
        say(&format!(
            "      the router routes the VIP over all three nodes, {:.1} s after the first lbd started (health checks pass, sync peers heard):",
            t.elapsed().as_secs_f64()
        ));
        for line in output(
            "ip",
            &["-n", &ns("rtr"), "route", "show", &format!("{VIP}/32")],
        )?
        .lines()
        {
            say(&format!("      {}", line.trim_end()));
        }
        say(&format!(
            "      lb1's routes file: {}",
            fs::read_to_string(format!("{STATE}/vips-lb1.conf"))?
                .lines()
                .filter(|l| !l.starts_with('#'))
                .map(str::trim)
                .collect::<Vec<_>>()
                .join(" ")
        ));

        step(
            4,
            "30 new connections from the client, each from its own source port",
        );
        let before: Vec<u64> = NODES
            .iter()
            .map(|n| self.counter(n, "forwarded_tx"))
            .collect::<Result<_>>()?;
        let mut by_backend: BTreeMap<String, usize> = BTreeMap::new();
        let mut by_node: BTreeMap<String, usize> = BTreeMap::new();
        for i in 0..30u16 {
            let sport = 40000 + i;
            let body = curl(sport, "/", 3).unwrap_or_else(|_| "failed".into());
            *by_backend.entry(body).or_insert(0) += 1;
            *by_node
                .entry(router_choice(sport).unwrap_or_else(|| "-".into()))
                .or_insert(0) += 1;
        }
        say(&format!("      answered by: {}", show(&by_backend)));
        say(&format!("      routed via:  {}", show(&by_node)));
        ensure!(
            !by_backend.contains_key("failed"),
            "some connections failed: {}",
            show(&by_backend)
        );
        for b in BACKENDS {
            ensure!(
                by_backend.get(b).copied().unwrap_or(0) > 0,
                "{b} answered none of 30 new connections: {}",
                show(&by_backend)
            );
        }
        let mut forwarded = Vec::new();
        for (i, node) in NODES.iter().enumerate() {
            let delta = self.counter(node, "forwarded_tx")? - before[i];
            let flows = by_node.get(*node).copied().unwrap_or(0);
            ensure!(
                flows > 0 && delta > 0,
                "{node}: {flows} of 30 flows routed there, {delta} packets forwarded: every node should take some"
            );
            forwarded.push(format!("{node} {delta}"));
        }
        say(&format!(
            "      packets forwarded per node (lbctl --json status, forwarded_tx): {}",
            forwarded.join(", ")
        ));
        say("      every node took new flows and every backend answered: one flow, one node (the router's hash), one backend (the same Maglev table everywhere)");

        step(5, "a 1 MiB download streams through lb1 when lb1 dies: its bridge port goes down (a silent loss), lbd and BIRD are killed -9");
        let sport = (41000..42000u16)
            .find(|p| router_choice(*p).as_deref() == Some("lb1"))
            .context("no client port the router sends to lb1")?;
        let download = Command::new("ip")
            .args([
                "netns",
                "exec",
                &ns("client"),
                "curl",
                "-s",
                "-o",
                "/dev/null",
            ])
            .args(["--local-port", &sport.to_string(), "-m", "40"])
            .args([
                "-w",
                "%{size_download} %{http_code}",
                "--limit-rate",
                "150k",
            ])
            .arg(format!("http://{VIP}:{PORT}/big"))
            .stdout(Stdio::piped())
            .spawn()
            .context("starting the download")?;
        if let Ok(mut list) = CHILDREN.lock() {
            list.push(download.id());
        }
        std::thread::sleep(Duration::from_millis(2000));
        let t = Instant::now();
        output("ip", &["-n", &ns("br"), "link", "set", "v-lb1", "down"])?;
        Self::kill(&mut self.lbds, "lb1");
        Self::kill(&mut self.birds, "lb1");
        wait_nexthops(&["lb2", "lb3"], ROUTE_WAIT)?;
        say(&format!(
            "      the router dropped lb1 after {} ms (BFD: 3 x 100 ms); the download now goes via {}",
            t.elapsed().as_millis(),
            router_choice(sport).unwrap_or_else(|| "-".into())
        ));
        let out = download.wait_with_output()?;
        let result = String::from_utf8_lossy(&out.stdout).to_string();
        ensure!(
            result == format!("{BIG} 200"),
            "the download broke when lb1 died: {result:?} (want \"{BIG} 200\")"
        );
        say(&format!(
            "      the download completed intact ({BIG} bytes, HTTP 200): the node it moved to maps it to the same backend"
        ));
        let mut after: BTreeMap<String, usize> = BTreeMap::new();
        for i in 0..10u16 {
            let body = curl(43000 + i, "/", 3).unwrap_or_else(|_| "failed".into());
            *after.entry(body).or_insert(0) += 1;
        }
        say(&format!("      10 new connections: {}", show(&after)));
        ensure!(
            !after.contains_key("failed"),
            "new connections failed after lb1 died: {}",
            show(&after)
        );

        step(
            6,
            "lbctl bgp on lb2: the VIP, why it is announced, BIRD's sessions",
        );
        for line in self.lbctl("lb2", &["bgp"])?.lines() {
            say(&format!("      {line}"));
        }

        step(7, "lbctl drain on lb2: the VIP is withdrawn, lb2 forwards what still arrives, then lbd exits");
        let t = Instant::now();
        for line in self.lbctl("lb2", &["drain"])?.lines() {
            say(&format!("      {line}"));
        }
        wait_nexthops(&["lb3"], ROUTE_WAIT)?;
        say(&format!(
            "      the router dropped lb2 after {} ms; the route now:",
            t.elapsed().as_millis()
        ));
        for line in output(
            "ip",
            &["-n", &ns("rtr"), "route", "show", &format!("{VIP}/32")],
        )?
        .lines()
        {
            say(&format!("      {}", line.trim_end()));
        }
        let mut exited = None;
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(c) = self.lbds.get_mut("lb2") {
                if let Ok(Some(status)) = c.try_wait() {
                    exited = Some(status);
                    break;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let Some(status) = exited else {
            bail!("lbd on lb2 still runs 30 s after the drain");
        };
        self.lbds.remove("lb2");
        ensure!(status.success(), "lbd on lb2 exited with {status}");
        say(&format!(
            "      lbd on lb2 exited ({status}) {:.1} s after the drain: no packet for the VIP for 2 s (drain_timeout 20 s); lb2's BIRD runs on, announcing nothing",
            t.elapsed().as_secs_f64()
        ));
        let mut last: BTreeMap<String, usize> = BTreeMap::new();
        for i in 0..10u16 {
            let body = curl(44000 + i, "/", 3).unwrap_or_else(|_| "failed".into());
            *last.entry(body).or_insert(0) += 1;
        }
        say(&format!(
            "      10 new connections, all via lb3: {}",
            show(&last)
        ));
        ensure!(
            !last.contains_key("failed"),
            "new connections failed after the drain: {}",
            show(&last)
        );

        step(8, "lbctl list --stats and lbctl sync on lb3, the node left");
        print!("{}", self.lbctl("lb3", &["list", "--stats"])?);
        print!("{}", self.lbctl("lb3", &["sync"])?);
        Ok(())
    }
}

/// `birdc -s <role's socket> <command>` (fails when BIRD does not answer).
fn birdc(role: &str, command: &str) -> Result<String> {
    let sock = format!("{STATE}/bird-{role}.ctl");
    let mut args = vec!["-s", sock.as_str()];
    args.extend(command.split_whitespace());
    output("birdc", &args)
}

/// The LB nodes the router's route to the VIP points to now.
fn nexthops() -> BTreeSet<String> {
    let text = output(
        "ip",
        &["-n", &ns("rtr"), "route", "show", &format!("{VIP}/32")],
    )
    .unwrap_or_default();
    let words: Vec<&str> = text.split_whitespace().collect();
    words
        .windows(2)
        .filter(|w| w[0] == "via")
        .map(|w| node_of(w[1]))
        .collect()
}

fn wait_nexthops(nodes: &[&str], timeout: Duration) -> Result<()> {
    let want: BTreeSet<String> = nodes.iter().map(|n| n.to_string()).collect();
    wait_for(
        &format!("the router's route to {VIP} via exactly {nodes:?}"),
        timeout,
        || nexthops() == want,
    )
    .with_context(|| format!("the route is via {:?}", nexthops()))
}

/// The LB node the router sends the client's TCP flow from `sport` to VIP:PORT to.
fn router_choice(sport: u16) -> Option<String> {
    let text = output(
        "ip",
        &[
            "-n",
            &ns("rtr"),
            "route",
            "get",
            VIP,
            "from",
            CLIENT,
            "iif",
            "eth-c",
            "ipproto",
            "tcp",
            "sport",
            &sport.to_string(),
            "dport",
            &PORT.to_string(),
        ],
    )
    .ok()?;
    let words: Vec<&str> = text.split_whitespace().collect();
    words
        .windows(2)
        .find(|w| w[0] == "via")
        .map(|w| node_of(w[1]))
}

/// One HTTP request from the client, from source port `sport`; the body.
fn curl(sport: u16, path: &str, timeout_s: u32) -> Result<String> {
    let body = output(
        "ip",
        &[
            "netns",
            "exec",
            &ns("client"),
            "curl",
            "-s",
            "--local-port",
            &sport.to_string(),
            "-m",
            &timeout_s.to_string(),
            &format!("http://{VIP}:{PORT}{path}"),
        ],
    )?;
    ensure!(!body.is_empty(), "empty answer");
    Ok(body.trim().to_string())
}

fn show(counts: &BTreeMap<String, usize>) -> String {
    counts
        .iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect::<Vec<_>>()
        .join("   ")
}

/// Namespaces, links, addresses, sysctls, the backends' servers.
fn lab_up(root: &Path) -> Result<()> {
    state_dirs(STATE, BPFFS)?;
    for role in ROLES {
        output("ip", &["netns", "add", &ns(role)])?;
        output("ip", &["-n", &ns(role), "link", "set", "lo", "up"])?;
    }
    let (br, rtr, client) = (ns("br"), ns("rtr"), ns("client"));
    let sh = |cmd: String| -> Result<String> { output("sh", &["-c", &cmd]) };
    sh(format!(
        "ip -n {br} link add br0 type bridge && ip -n {br} link set br0 type bridge \
         nf_call_iptables 0 nf_call_ip6tables 0 nf_call_arptables 0 && ip -n {br} link set br0 up"
    ))?;
    sh(format!(
        "ip -n {rtr} link add eth-c type veth peer name eth0 netns {client}"
    ))?;
    sh(format!(
        "ip -n {br} link add v-rtr type veth peer name eth-lb netns {rtr} && \
         ip -n {br} link set v-rtr master br0 up"
    ))?;
    for (role, addr) in NODES
        .iter()
        .zip(NODE_ADDRS)
        .chain(BACKENDS.iter().zip(BACKEND_ADDRS))
    {
        let n = ns(role);
        sh(format!(
            "ip -n {br} link add v-{role} type veth peer name eth0 netns {n} && \
             ip -n {br} link set v-{role} master br0 up && \
             ip -n {n} addr add {addr}/24 dev eth0 && ip -n {n} link set eth0 up && \
             ip -n {n} route add default via {ROUTER}"
        ))?;
    }
    sh(format!(
        "ip -n {client} addr add {CLIENT}/24 dev eth0 && ip -n {client} link set eth0 up && \
         ip -n {client} route add default via 10.88.1.1 && \
         ip -n {rtr} addr add 10.88.1.1/24 dev eth-c && ip -n {rtr} link set eth-c up && \
         ip -n {rtr} addr add {ROUTER}/24 dev eth-lb && ip -n {rtr} link set eth-lb up"
    ))?;
    // The router: forwarding, the 5-tuple multipath hash (with policy 1, locally
    // generated packets hash by socket), no reverse-path filter, no redirects.
    exec(
        "rtr",
        "sysctl -qw net.ipv4.ip_forward=1 net.ipv4.fib_multipath_hash_policy=3 \
         net.ipv4.fib_multipath_hash_fields=0x37 net.ipv4.conf.all.rp_filter=0 \
         net.ipv4.conf.default.rp_filter=0 net.ipv4.conf.eth-c.rp_filter=0 \
         net.ipv4.conf.eth-lb.rp_filter=0 net.ipv4.conf.all.send_redirects=0 \
         net.ipv4.conf.eth-lb.send_redirects=0",
    )?;
    // A small receive buffer on the client: a backend cannot push a download ahead
    // into it, so the stream needs its ACKs to cross an LB node until the last byte.
    exec("client", "sysctl -qw net.ipv4.tcp_rmem='4096 8192 16384'")?;
    // Offloads off on every veth: XDP sees real checksums and no GSO super-packets.
    let off = "tx off gso off tso off txvlan off";
    exec(
        "client",
        &format!("ethtool -K eth0 {off} >/dev/null 2>&1 || true"),
    )?;
    exec(
        "rtr",
        &format!("ethtool -K eth-c {off} >/dev/null 2>&1; ethtool -K eth-lb {off} >/dev/null 2>&1 || true"),
    )?;
    for role in NODES.iter().chain(BACKENDS.iter()).chain(["rtr"].iter()) {
        exec(
            "br",
            &format!("ethtool -K v-{role} {off} >/dev/null 2>&1 || true"),
        )?;
        if *role != "rtr" {
            exec(
                role,
                &format!("ethtool -K eth0 {off} >/dev/null 2>&1 || true"),
            )?;
        }
    }
    // A veth hands its peer's XDP_TX frames on only to an XDP program of its own: a
    // pass-everything one (xdp-filter) on the bridge side of each LB node's link.
    for node in NODES {
        exec(
            "br",
            &format!(
                "mount -t bpf bpf /sys/fs/bpf && xdp-filter load -m native v-{node} >/dev/null"
            ),
        )
        .context("xdp-filter (Debian xdp-tools) on the bridge side of an LB node")?;
    }
    // The backends: the VIP on lo with the DR ARP sysctls, a web server naming itself.
    let realserver = root.join("scripts/realserver.sh");
    for b in BACKENDS {
        output(
            "ip",
            &[
                "netns",
                "exec",
                &ns(b),
                realserver.to_str().unwrap_or("realserver.sh"),
                "up",
                VIP,
            ],
        )?;
        let dir = PathBuf::from(format!("{STATE}/www-{b}"));
        fs::create_dir_all(&dir)?;
        fs::write(dir.join("index.html"), b)?;
        fs::write(dir.join("big"), vec![b'x'; BIG])?;
        let dir_s = dir.to_string_lossy().to_string();
        spawn(
            "ip",
            &[
                "netns",
                "exec",
                &ns(b),
                "python3",
                "-m",
                "http.server",
                &PORT.to_string(),
                "--bind",
                "0.0.0.0",
                "--directory",
                &dir_s,
            ],
            None,
            Path::new(&format!("{STATE}/www-{b}.log")),
        )?;
    }
    for b in BACKENDS {
        wait_for(
            &format!("the web server on {b}"),
            Duration::from_secs(10),
            || exec(b, "ss -ltn").is_ok_and(|s| s.contains(&format!(":{PORT} "))),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_node_syncs_with_the_other_two_and_announces_through_its_own_bird() {
        for (node, addr) in NODES.iter().zip(NODE_ADDRS) {
            let config = lbd_config(node);
            let peers = config
                .lines()
                .find(|l| l.starts_with("peers = "))
                .expect("sync peers");
            for other in NODE_ADDRS {
                assert_eq!(peers.contains(other), other != addr, "{node}: {peers}");
            }
            assert!(config.contains(&format!("bird_socket = \"{STATE}/bird-{node}.ctl\"")));
            let bird = bird_config(node);
            assert!(bird.contains(&format!("include \"{STATE}/vips-{node}.conf\";")));
            assert!(bird.contains(&format!("local {addr} as 65100")));
            assert!(bird.contains("export where proto = \"lb_vips4\""));
        }
        let router = bird_config("rtr");
        for want in [
            "merge paths on",
            "neighbor range 10.88.2.0/24",
            "bfd on",
            "graceful restart off",
        ] {
            assert!(router.contains(want), "router config: no {want}");
        }
    }
}

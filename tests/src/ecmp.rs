//! An active-active lab (issue 14): N lbd nodes behind a router that spreads the VIP's
//! flows over them with ECMP, the VIP announced to the router over eBGP by a real BIRD
//! on each LB node (tests/tests/ecmp_e2e.rs; measured configs and traps in
//! shared/reference/ecmp-notes.md).
//!
//! ```text
//!  client 10.88.1.10 ── eth-c 10.88.1.1  router (BIRD AS 65000, kernel multipath)
//!                                  eth-lb 10.88.2.1
//!                                      │
//!           bridge br0 (its own namespace; v-rtr, v-lb1..3, v-b1..3)
//!       ┌──────────┬──────────┬────────┴─┬──────────┬──────────┐
//!      lb1        lb2        lb3         b1         b2         b3
//!   10.88.2.11  .12        .13         .21        .22        .23   (VIP 10.88.9.100/32 on lo)
//!   lbd + BIRD (AS 65100) on each       lb-conns serve on each
//! ```
//!
//! A client's packet to the VIP goes to the router, which picks an LB node by the
//! flow's 5-tuple (`fib_multipath_hash_policy=3`, `fib_multipath_hash_fields=0x37`:
//! with policy 1 the router reuses the hash the client's socket left on the packet,
//! which a veth carries across namespaces: random per socket, redrawn on retransmits);
//! the node's XDP program rewrites the destination MAC to a backend's and sends it back
//! out eth0; the backend answers straight to the client through the router (DSR).
//!
//! BIRD: the router accepts dynamic eBGP peers from 10.88.2.0/24 (no per-node config),
//! imports only /32s of 10.88.9.0/24, and installs them with `merge paths on` (one
//! multipath route). Each LB node's BIRD has `include "<routes file>";` at top level and
//! exports the routes of protocol `lb_vips4` only; the file starts empty and is what
//! lbd (or a test, by hand) writes before `birdc configure`. Hold 3 s, keepalive 1 s,
//! BFD 100 ms x 3, graceful restart off, short connect timers, explicit socket, pid and
//! log paths per namespace (the packaged defaults under /run/bird are shared by every
//! namespace and never used here).
//!
//! A node failure is simulated on the bridge's port (`ip link set eth0 down` inside a
//! node would delete its default route). Everything is removed on drop, also when a
//! test fails: processes (by their own ids), namespaces, the bpffs mount, files; a
//! failing test's output ends with the router's routes, every BIRD's protocols and the
//! lbd and BIRD logs.
//!
//! The API: [`EcmpLab::up`] (topology only) and [`EcmpLab::start_servers`] (`lb-conns
//! serve` on the backends); BIRD: [`EcmpLab::start_bird`], [`EcmpLab::kill_bird`],
//! [`EcmpLab::birdc`], [`EcmpLab::write_routes`] (by hand, as lbd does),
//! [`EcmpLab::router_nexthops`], [`EcmpLab::wait_nexthops`],
//! [`EcmpLab::router_choice`] (the node a 5-tuple goes to); lbd:
//! [`EcmpLab::write_lbd_config`] (checked with `lbd --check-config`),
//! [`EcmpLab::start_lbd`], [`EcmpLab::kill_lbd`], [`EcmpLab::stop_lbd`],
//! [`EcmpLab::wait_lbd_exit`], [`EcmpLab::ask`], [`EcmpLab::lbctl`],
//! [`EcmpLab::counter`], [`EcmpLab::wait_healthy`]; failures: [`EcmpLab::node_down`],
//! [`EcmpLab::node_up`], [`EcmpLab::block_health`]; traffic: [`Held`] (long-lived
//! connections), [`EcmpLab::new_flows`] (a burst), [`FlowProber`] (new flows all
//! along).

use std::{
    collections::{BTreeSet, HashMap},
    fs,
    net::{Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use anyhow::Result;
use lb_api::control::{Request, Response};
use lb_dataplane::{
    testing::{BenchProgram, BenchPrograms},
    AttachMode,
};

use crate::{
    conns::{ConnState, Holder},
    lab::{ask_socket, binary, spawn_lbd, wait_until},
    netns::{sh, Netns},
};

/// The VIP the LB nodes announce.
pub const VIP: &str = "10.88.9.100";
/// The client's address.
pub const CLIENT: &str = "10.88.1.10";
/// The router's address on the LB segment (the LB nodes' BGP neighbour and gateway).
pub const ROUTER: &str = "10.88.2.1";
/// The LB nodes.
pub const NODES: [&str; 3] = ["lb1", "lb2", "lb3"];
/// Their addresses (eth0).
pub const NODE_ADDRS: [&str; 3] = ["10.88.2.11", "10.88.2.12", "10.88.2.13"];
/// Backend addresses b1..b3.
pub const BACKENDS: [&str; 3] = ["10.88.2.21", "10.88.2.22", "10.88.2.23"];
/// The service port: `lb-conns serve` listens on it on every backend.
pub const PORT: u16 = 80;
/// The flow-sync key every node shares.
pub const SYNC_KEY: &str = "ecmp-lab-sync-key-0123456789abcdef";
/// The Maglev/flow hash seed every node shares.
pub const HASH_SEED: u32 = 0x4543_4d50;

/// The address of LB node `node` ("lb1".."lb3").
pub fn node_addr(node: &str) -> &'static str {
    NODE_ADDRS[node_index(node)]
}

fn node_index(node: &str) -> usize {
    NODES
        .iter()
        .position(|n| *n == node)
        .unwrap_or_else(|| panic!("not an LB node: {node}"))
}

/// The LB node ("lb1".."lb3") with address `addr`, or the address itself.
pub fn node_of(addr: &str) -> String {
    NODE_ADDRS
        .iter()
        .position(|a| *a == addr)
        .map(|i| NODES[i].to_string())
        .unwrap_or_else(|| addr.to_string())
}

/// The addresses of `nodes` (for [`EcmpLab::wait_nexthops`]).
pub fn addrs(nodes: &[&str]) -> BTreeSet<Ipv4Addr> {
    nodes
        .iter()
        .map(|n| node_addr(n).parse().expect("node address"))
        .collect()
}

/// Every namespace of the lab, by role: the bridge, the router, the client, the LB
/// nodes, the backends.
const ALL: [&str; 9] = ["br", "rtr", "client", "lb1", "lb2", "lb3", "b1", "b2", "b3"];

/// A running ECMP lab.
pub struct EcmpLab {
    /// Tag + process id: names of namespaces and files.
    pub prefix: String,
    /// Scratch directory: configs, routes files, logs.
    pub dir: PathBuf,
    /// Where sockets and pid files live (short paths for unix sockets).
    run: PathBuf,
    bpffs: PathBuf,
    namespaces: HashMap<String, Netns>,
    birds: HashMap<String, Child>,
    bird_runs: HashMap<String, u32>,
    lbds: HashMap<String, Child>,
    /// Every lbd log, in start order: (node, path).
    lbd_logs: Vec<(String, PathBuf)>,
    others: Vec<Child>,
    /// The pass-only program on the bridge side of each LB node's veth (a veth hands
    /// its peer's XDP_TX frames on only to an XDP program); detached on drop.
    peer_xdp: Option<BenchPrograms>,
}

impl EcmpLab {
    /// Build the topology (no process runs yet). `tag` must be unique per test.
    pub fn up(tag: &str) -> EcmpLab {
        let prefix = format!("{tag}-{}", std::process::id());
        let mut lab = EcmpLab {
            dir: PathBuf::from(format!("/tmp/lbt-ecmp-{prefix}")),
            run: PathBuf::from(format!("/run/lbt-ecmp-{prefix}")),
            bpffs: PathBuf::from(format!("/run/lbt-ecmp-{prefix}-bpf")),
            prefix,
            namespaces: HashMap::new(),
            birds: HashMap::new(),
            bird_runs: HashMap::new(),
            lbds: HashMap::new(),
            lbd_logs: Vec::new(),
            others: Vec::new(),
            peer_xdp: None,
        };
        for d in [&lab.dir, &lab.run] {
            let _ = fs::remove_dir_all(d);
            fs::create_dir_all(d).expect("lab directory");
        }
        for role in ALL {
            let ns = Netns::new(&format!("e{tag}-{role}"));
            lab.namespaces.insert(role.to_string(), ns);
        }
        lab.wire();
        lab.peer_xdp = Some(BenchPrograms::load().expect("load the bench object (pass program)"));
        {
            let _inside = lab.namespaces["br"].enter();
            let programs = lab.peer_xdp.as_mut().expect("loaded");
            for node in NODES {
                programs
                    .attach(BenchProgram::Pass, &format!("v-{node}"), AttachMode::Driver)
                    .expect("attach the pass program on the bridge side");
            }
        }
        fs::create_dir_all(&lab.bpffs).expect("bpffs dir");
        sh(&format!(
            "mountpoint -q {0} || mount -t bpf bpf {0}",
            lab.bpffs.display()
        ));
        lab
    }

    fn wire(&self) {
        let br = self.ns("br");
        let rtr = self.ns("rtr");
        let client = self.ns("client");
        sh(&format!(
            "ip -n {br} link add br0 type bridge && ip -n {br} link set br0 type bridge \
             nf_call_iptables 0 nf_call_ip6tables 0 nf_call_arptables 0 && \
             ip -n {br} link set br0 up"
        ));
        // client <-> router
        sh(&format!(
            "ip -n {rtr} link add eth-c type veth peer name eth0 netns {client}"
        ));
        // router <-> bridge
        sh(&format!(
            "ip -n {br} link add v-rtr type veth peer name eth-lb netns {rtr} && \
             ip -n {br} link set v-rtr master br0 up"
        ));
        for (node, addr) in NODES
            .iter()
            .zip(NODE_ADDRS)
            .chain(["b1", "b2", "b3"].iter().zip(BACKENDS))
        {
            let ns = self.ns(node);
            sh(&format!(
                "ip -n {br} link add v-{node} type veth peer name eth0 netns {ns} && \
                 ip -n {br} link set v-{node} master br0 up && \
                 ip -n {ns} addr add {addr}/24 dev eth0 && ip -n {ns} link set eth0 up && \
                 ip -n {ns} route add default via {ROUTER}"
            ));
        }
        sh(&format!(
            "ip -n {client} addr add {CLIENT}/24 dev eth0 && ip -n {client} link set eth0 up && \
             ip -n {client} route add default via 10.88.1.1 && \
             ip -n {rtr} addr add 10.88.1.1/24 dev eth-c && ip -n {rtr} link set eth-c up && \
             ip -n {rtr} addr add {ROUTER}/24 dev eth-lb && ip -n {rtr} link set eth-lb up"
        ));
        // The router: forwarding, 5-tuple multipath hash (also for the few locally
        // generated packets), no reverse-path filter (replies come from the VIP, whose
        // route points into the same segment anyway), no redirects.
        self.exec(
            "rtr",
            "sysctl -qw net.ipv4.ip_forward=1 net.ipv4.fib_multipath_hash_policy=3 \
             net.ipv4.fib_multipath_hash_fields=0x37 net.ipv4.conf.all.rp_filter=0 \
             net.ipv4.conf.default.rp_filter=0 net.ipv4.conf.eth-c.rp_filter=0 \
             net.ipv4.conf.eth-lb.rp_filter=0 net.ipv4.conf.all.send_redirects=0 \
             net.ipv4.conf.eth-lb.send_redirects=0",
        );
        // Offloads off on every veth: frames seen by XDP carry real checksums and are
        // not GSO super-packets (scripts/lab.sh).
        let off = "tx off gso off tso off txvlan off";
        for (role, dev) in [("client", "eth0"), ("rtr", "eth-c"), ("rtr", "eth-lb")] {
            self.exec(
                role,
                &format!("ethtool -K {dev} {off} >/dev/null 2>&1 || true"),
            );
        }
        for node in NODES.iter().chain(["b1", "b2", "b3"].iter()) {
            self.exec(
                node,
                &format!("ethtool -K eth0 {off} >/dev/null 2>&1 || true"),
            );
            self.exec(
                "br",
                &format!("ethtool -K v-{node} {off} >/dev/null 2>&1 || true"),
            );
        }
        self.exec(
            "br",
            &format!("ethtool -K v-rtr {off} >/dev/null 2>&1 || true"),
        );
        let realserver = workspace().join("scripts/realserver.sh");
        for b in ["b1", "b2", "b3"] {
            self.exec(b, &format!("{} up {VIP} >/dev/null", realserver.display()));
        }
    }

    /// Namespace name of lab node `role` ("br", "rtr", "client", "lb1".., "b1"..).
    pub fn ns(&self, role: &str) -> String {
        self.namespaces
            .get(role)
            .unwrap_or_else(|| panic!("no lab node {role}"))
            .name
            .clone()
    }

    /// Run a shell command in lab node `role`'s namespace (panics if it fails).
    pub fn exec(&self, role: &str, cmd: &str) -> String {
        self.namespaces
            .get(role)
            .unwrap_or_else(|| panic!("no lab node {role}"))
            .exec(cmd)
    }

    /// A command that runs `program` in lab node `role`'s namespace.
    pub fn command_in(&self, role: &str, program: &Path) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns(role)]).arg(program);
        c
    }

    /// Start `lb-conns serve` on [`PORT`] on every backend (each answers with its name);
    /// stopped on drop. Waits (at most 10 s) until all three listen.
    pub fn start_servers(&mut self, lb_conns: &Path) {
        for b in ["b1", "b2", "b3"] {
            let log = self.file(&format!("conns-{b}.log"));
            let child = self
                .command_in(b, lb_conns)
                .args(["serve", "--port", &PORT.to_string(), "--name", b])
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start lb-conns serve");
            self.others.push(child);
        }
        for b in ["b1", "b2", "b3"] {
            let ns = self.ns(b);
            wait_until(Duration::from_secs(10), "lb-conns serve listening", || {
                sh(&format!("ip netns exec {ns} ss -ltn")).contains(&format!(":{PORT} "))
            });
        }
    }

    fn file(&self, name: &str) -> fs::File {
        fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(name))
            .expect("lab file")
    }
}

/// BIRD on the router and the LB nodes.
impl EcmpLab {
    /// BIRD's control socket on `role` ("rtr", "lb1"..).
    pub fn bird_socket(&self, role: &str) -> PathBuf {
        self.run.join(format!("bird-{role}.ctl"))
    }

    /// The routes file LB node `node`'s BIRD includes (lbd's `routes_file`).
    pub fn routes_file(&self, node: &str) -> PathBuf {
        self.dir.join(format!("vips-{node}.conf"))
    }

    /// BIRD's config file on `role`.
    pub fn bird_config(&self, role: &str) -> PathBuf {
        self.dir.join(format!("bird-{role}.conf"))
    }

    fn bird_config_text(&self, role: &str) -> String {
        let log = self.dir.join(format!("bird-{role}.log"));
        let timers = "hold time 3; keepalive time 1; connect delay time 1; \
                      connect retry time 2; error wait time 1, 5; \
                      graceful restart off; long lived graceful restart off; bfd on;";
        let bfd = "min rx interval 100 ms; min tx interval 100 ms; multiplier 3;";
        if role == "rtr" {
            format!(
                "log \"{log}\" all;\nrouter id {ROUTER};\n\
                 protocol device {{}}\n\
                 protocol kernel k4 {{ merge paths on limit 16; \
                 ipv4 {{ import none; export where source = RTS_BGP; }}; }}\n\
                 protocol bfd {{ interface \"eth-lb\" {{ {bfd} }}; }}\n\
                 filter vip_only {{ if net ~ [ 10.88.9.0/24{{32,32}} ] then accept; reject; }}\n\
                 template bgp LB {{ local {ROUTER} as 65000; {timers}\n  \
                 ipv4 {{ import filter vip_only; export none; }}; }}\n\
                 protocol bgp lbs from LB {{ neighbor range 10.88.2.0/24 as 65100; \
                 dynamic name \"dyn\"; }}\n",
                log = log.display()
            )
        } else {
            let addr = node_addr(role);
            format!(
                "log \"{log}\" all;\nrouter id {addr};\n\
                 protocol device {{}}\n\
                 protocol bfd {{ interface \"eth0\" {{ {bfd} }}; }}\n\
                 include \"{routes}\";\n\
                 protocol bgp rtr {{ local {addr} as 65100; neighbor {ROUTER} as 65000; \
                 {timers}\n  ipv4 {{ import none; export where proto = \"lb_vips4\"; }}; }}\n",
                log = log.display(),
                routes = self.routes_file(role).display()
            )
        }
    }

    /// Start BIRD on `role` ("rtr" or an LB node) in the foreground of a child process,
    /// with this lab's config, socket and pid file; an LB node's routes file is created
    /// empty if missing. Waits (at most 10 s) until it answers on its socket.
    pub fn start_bird(&mut self, role: &str) {
        assert!(
            !self.birds.contains_key(role),
            "BIRD already runs on {role}"
        );
        if role != "rtr" && !self.routes_file(role).exists() {
            fs::write(self.routes_file(role), "").expect("routes file");
        }
        fs::write(self.bird_config(role), self.bird_config_text(role)).expect("bird config");
        let run = self.bird_runs.entry(role.to_string()).or_insert(0);
        *run += 1;
        let log = self.file(&format!("bird-{role}.stderr"));
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns(role)])
            .args(["bird", "-f", "-c"])
            .arg(self.bird_config(role))
            .arg("-s")
            .arg(self.bird_socket(role))
            .arg("-P")
            .arg(self.run.join(format!("bird-{role}.pid")))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start bird (Debian bird2)");
        self.birds.insert(role.to_string(), child);
        wait_until(
            Duration::from_secs(10),
            &format!("BIRD on {role} answering"),
            || {
                self.birdc(role, "show status")
                    .is_some_and(|s| s.contains("Daemon is up"))
            },
        );
    }

    /// Kill `role`'s BIRD with SIGKILL (its TCP sessions are closed by the kernel).
    pub fn kill_bird(&mut self, role: &str) {
        if let Some(mut c) = self.birds.remove(role) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Whether this lab runs a BIRD on `role`.
    pub fn bird_running(&mut self, role: &str) -> bool {
        self.birds
            .get_mut(role)
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// `birdc -s SOCK <command>` against `role`'s BIRD; its output, `None` if it fails.
    pub fn birdc(&self, role: &str, command: &str) -> Option<String> {
        let out = Command::new("birdc")
            .arg("-s")
            .arg(self.bird_socket(role))
            .args(command.split_whitespace())
            .stdin(Stdio::null())
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// BGP sessions the router has in state Established.
    pub fn router_sessions(&self) -> usize {
        self.birdc("rtr", "show protocols")
            .map(|s| s.lines().filter(|l| l.contains("Established")).count())
            .unwrap_or(0)
    }

    /// BFD sessions the router has Up.
    pub fn router_bfd_up(&self) -> usize {
        self.birdc("rtr", "show bfd sessions")
            .map(|s| {
                s.lines()
                    .filter(|l| l.split_whitespace().any(|w| w == "Up"))
                    .count()
            })
            .unwrap_or(0)
    }

    /// Write LB node `node`'s routes file by hand: protocol `lb_vips4` with the VIP (a
    /// blackhole route: only exported, there is no kernel protocol on the node) if
    /// `announce`, else the protocol without routes. `birdc configure` makes it count.
    pub fn write_routes(&self, node: &str, announce: bool) {
        let route = if announce {
            format!(" route {VIP}/32 blackhole;")
        } else {
            String::new()
        };
        fs::write(
            self.routes_file(node),
            format!("protocol static lb_vips4 {{ ipv4;{route} }}\n"),
        )
        .expect("routes file");
    }

    /// The nexthops of the router's route to the VIP (none if it has no route).
    pub fn router_nexthops(&self) -> BTreeSet<Ipv4Addr> {
        let text = sh(&format!("ip -n {} route show {VIP}/32", self.ns("rtr")));
        let words: Vec<&str> = text.split_whitespace().collect();
        words
            .windows(2)
            .filter(|w| w[0] == "via")
            .filter_map(|w| w[1].parse().ok())
            .collect()
    }

    /// Wait (at most `timeout`) until the router's nexthops for the VIP are exactly
    /// those of `nodes`; panics with the router's and the nodes' BGP state if not.
    pub fn wait_nexthops(&self, nodes: &[&str], timeout: Duration) {
        let want = addrs(nodes);
        let start = Instant::now();
        while start.elapsed() < timeout {
            if self.router_nexthops() == want {
                eprintln!("router nexthops {nodes:?} after {:?}", start.elapsed());
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "after {timeout:?} the router's nexthops for {VIP} are {:?}, not {nodes:?}\n\
             --- router: ip route ---\n{}\n--- router: birdc show protocols ---\n{}\n{}",
            self.router_nexthops(),
            sh(&format!("ip -n {} route", self.ns("rtr"))),
            self.birdc("rtr", "show protocols").unwrap_or_default(),
            self.bgp_debug()
        );
    }

    /// Every LB node's routes file and BIRD protocols, for failure messages.
    pub fn bgp_debug(&self) -> String {
        let mut s = String::new();
        for node in NODES {
            s.push_str(&format!(
                "--- {node}: routes file ---\n{}\n--- {node}: birdc show protocols ---\n{}\n",
                fs::read_to_string(self.routes_file(node)).unwrap_or_default(),
                self.birdc(node, "show protocols")
                    .unwrap_or_else(|| "(no answer)".into())
            ));
        }
        s
    }

    /// The LB node the router sends a client's TCP flow from `sport` to VIP:`dport`
    /// to now (`ip route get` with the flow's 5-tuple, the hash the router uses).
    pub fn router_choice(&self, sport: u16, dport: u16) -> Option<String> {
        let text = sh(&format!(
            "ip -n {} route get {VIP} from {CLIENT} iif eth-c ipproto tcp sport {sport} \
             dport {dport}",
            self.ns("rtr")
        ));
        let words: Vec<&str> = text.split_whitespace().collect();
        words
            .windows(2)
            .find(|w| w[0] == "via")
            .map(|w| node_of(w[1]))
    }
}

/// lbd on the LB nodes.
impl EcmpLab {
    /// The config file of LB node `node`.
    pub fn config_path(&self, node: &str) -> PathBuf {
        self.dir.join(format!("lbd-{node}.toml"))
    }

    /// The control socket of LB node `node`.
    pub fn socket(&self, node: &str) -> PathBuf {
        self.run.join(format!("lbd-{node}.sock"))
    }

    /// Where LB node `node` pins its maps and links.
    pub fn pin_dir(&self, node: &str) -> PathBuf {
        self.bpffs.join(format!("lbd-{node}"))
    }

    /// Node `node`'s lbd config: `[global]` (same hash seed and Maglev table size everywhere; `global`, TOML
    /// `key = value` lines, added), `[[interface]]` eth0 in driver mode, `[sync]` with
    /// the other two nodes as peers (left out when `LB_ECMP_E2E_NO_SYNC` is set, to
    /// see what breaks without it), `[bgp]` through this node's BIRD (`bgp`, more
    /// `key = value` lines, added), then `services` (TOML text).
    pub fn lbd_config_text(&self, node: &str, global: &str, bgp: &str, services: &str) -> String {
        let peers: Vec<String> = NODES
            .iter()
            .filter(|n| **n != node)
            .map(|n| format!("\"{}\"", node_addr(n)))
            .collect();
        format!(
            "[global]\nnode_name = \"{node}\"\ncontrol_socket = \"{sock}\"\n\
             metrics_listen = \"off\"\npin_dir = \"{pins}\"\nhash_seed = {HASH_SEED:#x}\n\
             maglev_table_size = 65537\nforwarding = \"active\"\n{global}\n\n\
             [[interface]]\nname = \"eth0\"\nxdp_mode = \"driver\"\n\n\
             {sync}\
             [bgp]\nspeaker = \"bird\"\nbird_socket = \"{bird}\"\nroutes_file = \"{routes}\"\n\
             {bgp}\n\n{services}",
            sock = self.socket(node).display(),
            pins = self.pin_dir(node).display(),
            sync = if std::env::var_os("LB_ECMP_E2E_NO_SYNC").is_some() {
                String::new()
            } else {
                format!(
                    "[sync]\nkey = \"{SYNC_KEY}\"\npeers = [{}]\n\n",
                    peers.join(", ")
                )
            },
            bird = self.bird_socket(node).display(),
            routes = self.routes_file(node).display(),
        )
    }

    /// Write node `node`'s config (see [`EcmpLab::lbd_config_text`]) and have
    /// `lbd --check-config` accept it (panics with lbd's answer if not).
    pub fn write_lbd_config(&self, node: &str, global: &str, bgp: &str, services: &str) {
        let path = self.config_path(node);
        fs::write(&path, self.lbd_config_text(node, global, bgp, services)).expect("config");
        if let Err(e) = self.check_config(node) {
            panic!(
                "lbd rejects {node}'s config: {e}\n--- {} ---\n{}",
                path.display(),
                fs::read_to_string(&path).unwrap_or_default()
            );
        }
    }

    /// `lbd --check-config` on node `node`'s config file.
    pub fn check_config(&self, node: &str) -> std::result::Result<(), String> {
        let out = self
            .command_in(node, &binary("lbd"))
            .arg("--check-config")
            .arg(self.config_path(node))
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    /// Start lbd on LB node `node` with its config; waits (at most 20 s) until it
    /// answers on its control socket.
    pub fn start_lbd(&mut self, node: &str) {
        assert!(!self.lbds.contains_key(node), "lbd already runs on {node}");
        let log = self
            .dir
            .join(format!("lbd-{node}-{}.log", self.lbd_logs.len() + 1));
        let child = spawn_lbd(&self.ns(node), &self.config_path(node), &log).expect("start lbd");
        self.lbds.insert(node.to_string(), child);
        self.lbd_logs.push((node.to_string(), log));
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            if matches!(self.ask(node, Request::Status), Some(Response::Status(_))) {
                return;
            }
            if !self.lbd_running(node) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "lbd on {node} does not answer (running: {}); its log:\n{}",
            self.lbd_running(node),
            self.lbd_log(node)
        );
    }

    /// Kill LB node `node`'s lbd with SIGKILL (its pinned program keeps forwarding).
    pub fn kill_lbd(&mut self, node: &str) {
        if let Some(mut c) = self.lbds.remove(node) {
            // `ip netns exec` execs lbd, so the child is lbd itself.
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stop LB node `node`'s lbd with SIGTERM and wait (at most `timeout`) for it to
    /// exit; then SIGKILL. Its exit status, `None` if it had to be killed (or was not
    /// running).
    pub fn stop_lbd(&mut self, node: &str, timeout: Duration) -> Option<ExitStatus> {
        let pid = self.lbds.get(node)?.id();
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
        let status = self.wait_lbd_exit(node, timeout);
        if status.is_none() {
            self.kill_lbd(node);
        }
        status
    }

    /// Whether LB node `node`'s lbd, as this lab last started it, still runs.
    pub fn lbd_running(&mut self, node: &str) -> bool {
        self.lbds
            .get_mut(node)
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Wait (at most `timeout`) for LB node `node`'s lbd to exit by itself; its exit
    /// status, or `None` if it still runs (or was not started).
    pub fn wait_lbd_exit(&mut self, node: &str, timeout: Duration) -> Option<ExitStatus> {
        let start = Instant::now();
        loop {
            let child = self.lbds.get_mut(node)?;
            if let Ok(Some(status)) = child.try_wait() {
                self.lbds.remove(node);
                return Some(status);
            }
            if start.elapsed() >= timeout {
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The log of LB node `node`'s latest lbd run.
    pub fn lbd_log(&self, node: &str) -> String {
        self.lbd_logs
            .iter()
            .rev()
            .find(|(n, _)| n == node)
            .map(|(_, p)| fs::read_to_string(p).unwrap_or_default())
            .unwrap_or_default()
    }

    /// Ask LB node `node`'s lbd; `None` if it does not answer within 5 s.
    pub fn ask(&self, node: &str, request: Request) -> Option<Response> {
        ask_socket(&self.socket(node), request)
    }

    /// Run lbctl on LB node `node` against its lbd.
    pub fn lbctl(&self, node: &str, args: &[&str]) -> std::process::Output {
        self.command_in(node, &binary("lbctl"))
            .arg("--socket")
            .arg(self.socket(node))
            .arg("--config")
            .arg(self.config_path(node))
            .args(args)
            .output()
            .expect("lbctl")
    }

    /// Data-plane outcome counter `name` of LB node `node` (as `lbctl status` shows
    /// them, e.g. "forwarded_tx"); `None` if lbd does not answer.
    pub fn counter(&self, node: &str, name: &str) -> Option<u64> {
        match self.ask(node, Request::Status)? {
            Response::Status(status) => status.counters.get(name),
            _ => None,
        }
    }

    /// Wait (at most 30 s) until LB node `node`'s lbd has `healthy` backends up and
    /// holding Maglev slots in its data plane.
    pub fn wait_healthy(&self, node: &str, healthy: usize) {
        wait_until(
            Duration::from_secs(30),
            &format!("{healthy} healthy backends in {node}'s data plane"),
            || {
                let Some(Response::List { services }) = self.ask(node, Request::List) else {
                    return false;
                };
                services.iter().all(|s| {
                    s.backends
                        .iter()
                        .filter(|b| b.state == "up" && b.slots > 0)
                        .count()
                        == healthy
                })
            },
        );
    }

    /// Stop node `node` the hard way: its bridge port down (the router's BFD notices),
    /// then its lbd and BIRD killed with SIGKILL.
    pub fn node_down(&mut self, node: &str) {
        self.exec("br", &format!("ip link set v-{node} down"));
        self.kill_lbd(node);
        self.kill_bird(node);
    }

    /// Bring node `node`'s bridge port back up (its processes are started separately).
    pub fn link_up(&mut self, node: &str) {
        self.exec("br", &format!("ip link set v-{node} up"));
    }

    /// Undo [`EcmpLab::node_down`]: bridge port up, BIRD started, lbd started (on the
    /// maps its killed predecessor pinned).
    pub fn node_up(&mut self, node: &str) {
        self.link_up(node);
        self.start_bird(node);
        self.start_lbd(node);
    }

    /// Make LB node `node`'s health checks to the backends fail, and only them: a
    /// policy rule there rejects locally sent TCP to the backends' service port (the
    /// XDP program forwards by MAC before any routing and is unaffected, as are BGP,
    /// BFD and sync).
    pub fn block_health(&mut self, node: &str) {
        self.exec(
            node,
            &format!("ip rule add priority 100 to 10.88.2.16/28 ipproto tcp dport {PORT} prohibit"),
        );
    }

    /// Undo [`EcmpLab::block_health`].
    pub fn unblock_health(&mut self, node: &str) {
        self.exec(
            node,
            &format!("ip rule del priority 100 to 10.88.2.16/28 ipproto tcp dport {PORT} prohibit"),
        );
    }
}

impl Drop for EcmpLab {
    fn drop(&mut self) {
        let panicking = std::thread::panicking();
        if panicking {
            eprintln!("ecmp lab {} failed; state before teardown:", self.prefix);
            if self.namespaces.contains_key("rtr") {
                if let Ok(out) = Command::new("ip")
                    .args(["-n", &self.ns("rtr"), "route"])
                    .output()
                {
                    eprintln!(
                        "--- router: ip route ---\n{}",
                        String::from_utf8_lossy(&out.stdout)
                    );
                }
            }
            for role in ["rtr", "lb1", "lb2", "lb3"] {
                if self.birds.contains_key(role) {
                    eprintln!(
                        "--- {role}: birdc show protocols ---\n{}",
                        self.birdc(role, "show protocols").unwrap_or_default()
                    );
                }
            }
        }
        let nodes: Vec<String> = self.lbds.keys().cloned().collect();
        for node in nodes {
            self.kill_lbd(&node);
        }
        let roles: Vec<String> = self.birds.keys().cloned().collect();
        for role in roles {
            self.kill_bird(&role);
        }
        for mut c in self.others.drain(..) {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.peer_xdp = None;
        if self.namespaces.len() == ALL.len() {
            let realserver = workspace().join("scripts/realserver.sh");
            for b in ["b1", "b2", "b3"] {
                let _ = Command::new("ip")
                    .args(["netns", "exec", &self.ns(b)])
                    .arg(&realserver)
                    .args(["down", VIP])
                    .stdout(Stdio::null())
                    .status();
            }
        }
        self.namespaces.clear();
        let _ = Command::new("umount").arg(&self.bpffs).status();
        let _ = fs::remove_dir(&self.bpffs);
        let _ = fs::remove_dir_all(&self.run);
        if panicking {
            for (node, path) in &self.lbd_logs {
                eprintln!(
                    "--- lbd on {node} ({}) ---\n{}",
                    path.display(),
                    fs::read_to_string(path).unwrap_or_default()
                );
            }
            for role in ["rtr", "lb1", "lb2", "lb3"] {
                let log = self.dir.join(format!("bird-{role}.log"));
                if let Ok(text) = fs::read_to_string(&log) {
                    let tail: Vec<&str> = text.lines().rev().take(40).collect();
                    eprintln!(
                        "--- BIRD on {role} (last 40 lines) ---\n{}",
                        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                    );
                }
            }
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn workspace() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// One new flow: a connection from a fresh client port that exchanges one line.
#[derive(Debug, Clone)]
pub struct Probe {
    /// The client port.
    pub port: u16,
    /// The backend that answered ("b1".."b3"), or why none did.
    pub result: std::result::Result<String, String>,
    /// From the start of the connect to the answer (or the failure).
    pub took: Duration,
}

/// Connect from `port` to VIP:[`PORT`], send one line, return who answered.
async fn exchange_once(port: u16, timeout: Duration) -> std::result::Result<String, String> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let round = async {
        let socket = tokio::net::TcpSocket::new_v4().map_err(|e| format!("socket: {e}"))?;
        socket
            .set_reuseaddr(true)
            .map_err(|e| format!("reuseaddr: {e}"))?;
        socket
            .bind(SocketAddr::from(([0, 0, 0, 0], port)))
            .map_err(|e| format!("bind :{port}: {e}"))?;
        let to: SocketAddr = format!("{VIP}:{PORT}").parse().expect("vip");
        let mut stream = socket
            .connect(to)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        stream
            .write_all(b"1\n")
            .await
            .map_err(|e| format!("send: {e}"))?;
        let mut answer = String::new();
        tokio::io::BufReader::new(&mut stream)
            .read_line(&mut answer)
            .await
            .map_err(|e| format!("receive: {e}"))?;
        match answer.trim_end().rsplit_once(' ') {
            Some((who, "1")) => Ok(who.to_string()),
            _ => Err(format!("unexpected answer {answer:?}")),
        }
    };
    tokio::time::timeout(timeout, round)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {timeout:?}")))
}

impl EcmpLab {
    /// Open `count` new flows at once from client ports `first_port`.., each exchanging
    /// one line (at most `timeout` each), and close them.
    pub fn new_flows(&self, first_port: u16, count: u16, timeout: Duration) -> Vec<Probe> {
        let ns = self.ns("client");
        std::thread::spawn(move || {
            let _inside = crate::netns::enter_existing(&ns);
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                let mut set = tokio::task::JoinSet::new();
                for i in 0..count {
                    let port = first_port + i;
                    set.spawn(async move {
                        let start = Instant::now();
                        let result = exchange_once(port, timeout).await;
                        Probe {
                            port,
                            result,
                            took: start.elapsed(),
                        }
                    });
                }
                let mut out = Vec::new();
                while let Some(p) = set.join_next().await {
                    out.push(p.expect("probe task"));
                }
                out.sort_by_key(|p| p.port);
                out
            })
        })
        .join()
        .expect("new flows thread")
    }
}

/// New flows opened one after the other in the background (one every 100 ms, each
/// from a fresh client port, each given 6 s: a SYN sent to a node that just died is
/// retransmitted after 1 s, by when the router has moved on), until stopped; at most
/// `max` flows or 120 s.
pub struct FlowProber {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<Vec<Probe>>>,
}

impl FlowProber {
    /// Start probing from client ports `first_port`..`first_port + max`.
    pub fn start(lab: &EcmpLab, first_port: u16, max: u16) -> FlowProber {
        let ns = lab.ns("client");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let _inside = crate::netns::enter_existing(&ns);
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            let start = Instant::now();
            let mut out = Vec::new();
            for i in 0..max {
                if flag.load(Ordering::Relaxed) || start.elapsed() > Duration::from_secs(120) {
                    break;
                }
                let port = first_port + i;
                let t = Instant::now();
                let result = rt.block_on(exchange_once(port, Duration::from_secs(6)));
                out.push(Probe {
                    port,
                    result,
                    took: t.elapsed(),
                });
                std::thread::sleep(Duration::from_millis(100));
            }
            out
        });
        FlowProber {
            stop,
            handle: Some(handle),
        }
    }

    /// Stop and return every probe made (waits for the one under way, at most 6 s).
    pub fn finish(mut self) -> Vec<Probe> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle
            .take()
            .map(|h| h.join().expect("prober thread"))
            .unwrap_or_default()
    }
}

impl Drop for FlowProber {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// The failed ones among `probes`, one line each.
pub fn failed_probes(probes: &[Probe]) -> Vec<String> {
    probes
        .iter()
        .filter_map(|p| {
            p.result
                .as_ref()
                .err()
                .map(|e| format!("client port {}: {e} (after {:?})", p.port, p.took))
        })
        .collect()
}

/// The lab's service: VIP:80/tcp over the backends marked in `members`, TCP checks
/// every 300 ms (fall 2, rise 1).
pub fn services(members: [bool; 3]) -> String {
    let mut s = format!(
        "[[service]]\nname = \"web\"\nvip = \"{VIP}\"\nport = 80\n\n\
         [service.health]\nkind = \"tcp\"\ninterval = \"300ms\"\ntimeout = \"250ms\"\n\
         rise = 1\nfall = 2\n\n"
    );
    for (i, on) in members.iter().enumerate() {
        if *on {
            s.push_str(&format!(
                "[[service.backend]]\naddress = \"{}\"\nname = \"b{}\"\n\n",
                BACKENDS[i],
                i + 1
            ));
        }
    }
    s
}

/// Long-lived connections from the client to VIP:[`PORT`], each exchanging a line
/// every 200 ms and reporting when it breaks: [`crate::conns::Holder`] started in this
/// lab's client namespace. Killed on drop.
pub struct Held;

impl Held {
    /// Open `count` connections from client ports `first_port`.. with the `lb_conns`
    /// binary. Returns the holder and each connection's backend.
    pub fn start(
        lab: &EcmpLab,
        lb_conns: &Path,
        first_port: u16,
        count: u16,
    ) -> Result<(Holder, Vec<ConnState>)> {
        Holder::start_in(
            lab.command_in("client", lb_conns),
            &format!("{VIP}:{PORT}"),
            first_port,
            count,
        )
    }
}

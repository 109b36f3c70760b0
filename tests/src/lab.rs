//! An end-to-end lab: the project's own `scripts/lab.sh` topology (client, one or two
//! LB nodes and three backends on one bridge, VIP on the backends' lo via
//! `scripts/realserver.sh`), real HTTP servers on the backends (python3's http.server,
//! each serving its own name), the real `lbd` on the LB nodes, and a bpffs under /run
//! shared by every namespace (so pins outlive an lbd that is killed). Everything is torn
//! down on drop, also when a test fails.

use std::{
    collections::HashMap,
    fs,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::Once,
    time::{Duration, Instant},
};

use lb_api::control::{self, Request, Response};
use lb_dataplane::{
    testing::{BenchProgram, BenchPrograms},
    AttachMode,
};

use crate::netns::sh;

/// The VIP of the lab (scripts/lab.sh).
pub const VIP: &str = "10.99.0.100";
/// Backend addresses b1..b3.
pub const BACKENDS: [&str; 3] = ["10.99.0.11", "10.99.0.12", "10.99.0.13"];
/// The LB node's own address (node "lb").
pub const LB: &str = "10.99.0.2";
/// The client's address.
pub const CLIENT: &str = "10.99.0.10";

fn workspace() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// Path of a workspace binary (lbd, lbctl), built once per process with this crate's
/// profile: debug for the tests, release for the bench (whose figures must be a
/// release lbd's).
pub fn binary(name: &str) -> PathBuf {
    const RELEASE: bool = !cfg!(debug_assertions);
    static BUILD: Once = Once::new();
    BUILD.call_once(|| {
        let mut cargo = Command::new(env!("CARGO"));
        cargo.args(["build", "-q", "-p", "lb-userspace", "--bins"]);
        if RELEASE {
            cargo.arg("--release");
        }
        let status = cargo
            .current_dir(workspace())
            .status()
            .expect("run cargo build");
        assert!(status.success(), "building lbd/lbctl failed");
    });
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"));
    target
        .join(if RELEASE { "release" } else { "debug" })
        .join(name)
}

/// Start lbd (the workspace's build) in namespace `ns` with `config`, logging at info
/// level to `log`. `ip netns exec` execs lbd, so the child is lbd itself.
pub fn spawn_lbd(ns: &str, config: &Path, log: &Path) -> std::io::Result<Child> {
    Command::new("ip")
        .args(["netns", "exec", ns])
        .arg(binary("lbd"))
        .arg("--config")
        .arg(config)
        .env("LBD_LOG", "info")
        .stdout(Stdio::null())
        .stderr(fs::File::create(log)?)
        .spawn()
}

/// Ask the lbd listening on control socket `socket`; `None` if it does not answer
/// within 5 s.
pub fn ask_socket(socket: &Path, request: Request) -> Option<Response> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(5), control::call(socket, &request))
            .await
            .ok()?
            .ok()
    })
}

/// A running lab.
pub struct Lab {
    /// Namespace prefix (`<prefix>-client`, `-lb`, `-lb2`, `-b1`..`-b3`, `-br`).
    pub prefix: String,
    /// Scratch directory: web roots, configs, logs.
    pub dir: PathBuf,
    bpffs: PathBuf,
    servers: [Option<Child>; 3],
    /// Running lbd per LB node ("lb", "lb2").
    lbds: HashMap<String, Child>,
    lbd_runs: u32,
    /// Other processes to kill on drop (keepalived...).
    others: Vec<Child>,
    /// The pass-only program on the bridge side of each LB node's veth (a veth hands
    /// its peer's XDP_TX frames on only to an XDP program); detached on drop.
    _peer_xdp: BenchPrograms,
}

impl Lab {
    /// Build the lab (one LB node) and start the three backends' web servers.
    pub fn up(tag: &str) -> Lab {
        Self::up_with(tag, 1)
    }

    /// Build a lab with `lbs` LB nodes: 1 ("lb"; the client routes the VIP via it), or 2
    /// ("lb" and "lb2"; the client finds the VIP by ARP, as with VRRP).
    pub fn up_with(tag: &str, lbs: usize) -> Lab {
        let prefix = format!("{tag}{}", std::process::id() % 100_000);
        let dir = PathBuf::from(format!("/tmp/lbt-{prefix}"));
        let bpffs = PathBuf::from(format!("/run/lbt-{prefix}-bpf"));
        let peer_xdp = BenchPrograms::load().expect("load the bench object (pass program)");
        let mut lab = Lab {
            _peer_xdp: peer_xdp,
            prefix,
            dir,
            bpffs,
            servers: [None, None, None],
            lbds: HashMap::new(),
            lbd_runs: 0,
            others: Vec::new(),
        };
        let _ = fs::remove_dir_all(&lab.dir);
        fs::create_dir_all(&lab.dir).expect("lab dir");
        let env = if lbs == 2 {
            "LAB_PEER_XDP=none LAB_LBS=2 LAB_VIP_ROUTE=0"
        } else {
            "LAB_PEER_XDP=none"
        };
        sh(&format!(
            "{env} {}/scripts/lab.sh up {} >/dev/null",
            workspace().display(),
            lab.prefix
        ));
        {
            let _inside = crate::netns::enter_existing(&lab.ns("br"));
            let peers: Vec<&str> = ["lb", "lb2"][..lbs].to_vec();
            for node in peers {
                lab._peer_xdp
                    .attach(BenchProgram::Pass, &format!("v-{node}"), AttachMode::Driver)
                    .expect("attach the pass program on the bridge side");
            }
        }
        fs::create_dir_all(&lab.bpffs).expect("bpffs dir");
        sh(&format!(
            "mountpoint -q {0} || mount -t bpf bpf {0}",
            lab.bpffs.display()
        ));
        for i in 0..3 {
            let root = lab.dir.join(format!("b{}", i + 1));
            fs::create_dir_all(&root).expect("web root");
            fs::write(root.join("index.html"), format!("b{}", i + 1)).expect("index");
            fs::write(root.join("healthz"), "ok").expect("healthz");
            fs::write(root.join("big"), vec![b'x'; 1 << 20]).expect("big");
            lab.start_backend(i);
        }
        lab
    }

    /// Namespace name of a node ("client", "lb", "lb2", "b1"...).
    pub fn ns(&self, node: &str) -> String {
        format!("{}-{node}", self.prefix)
    }

    /// Start backend `i`'s web server (0-based).
    pub fn start_backend(&mut self, i: usize) {
        let root = self.dir.join(format!("b{}", i + 1));
        let log = fs::File::create(self.dir.join(format!("b{}.log", i + 1))).expect("log");
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns(&format!("b{}", i + 1))])
            .args(["python3", "-m", "http.server", "80", "--bind", "0.0.0.0"])
            .current_dir(root)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start web server");
        self.servers[i] = Some(child);
        let ns = self.ns(&format!("b{}", i + 1));
        wait_until(Duration::from_secs(10), "web server listening", || {
            sh(&format!("ip netns exec {ns} ss -ltn")).contains(":80 ")
        });
    }

    /// Stop backend `i`'s web server.
    pub fn stop_backend(&mut self, i: usize) {
        if let Some(mut c) = self.servers[i].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// A backend's access log.
    pub fn backend_log(&self, i: usize) -> String {
        fs::read_to_string(self.dir.join(format!("b{}.log", i + 1))).unwrap_or_default()
    }

    /// The config file of node "lb".
    pub fn config_path(&self) -> PathBuf {
        self.config_path_for("lb")
    }

    /// The config file of LB node `node`.
    pub fn config_path_for(&self, node: &str) -> PathBuf {
        self.dir.join(format!("lbd-{node}.toml"))
    }

    /// The control socket of node "lb".
    pub fn socket(&self) -> PathBuf {
        self.socket_for("lb")
    }

    /// The control socket of LB node `node`.
    pub fn socket_for(&self, node: &str) -> PathBuf {
        PathBuf::from(format!("/run/lbt-{}/lbd-{node}.sock", self.prefix))
    }

    /// Where node "lb" pins its maps and links.
    pub fn pin_dir(&self) -> PathBuf {
        self.pin_dir_for("lb")
    }

    /// Where LB node `node` pins its maps and links.
    pub fn pin_dir_for(&self, node: &str) -> PathBuf {
        self.bpffs.join(format!("lbd-{node}"))
    }

    /// Write node "lb"'s config: `[global]` for this lab plus `rest` (TOML text).
    pub fn write_config(&self, rest: &str) {
        self.write_config_for("lb", rest);
    }

    /// Write LB node `node`'s config: `[global]` for this lab plus `rest` (TOML text:
    /// services, VRRP instances).
    pub fn write_config_for(&self, node: &str, rest: &str) {
        let text = format!(
            "[global]\nnode_name = \"{name}\"\ncontrol_socket = \"{sock}\"\nmetrics_listen = \"off\"\n\
             pin_dir = \"{pins}\"\nsettle_after = \"10m\"\n\n[[interface]]\nname = \"eth0\"\n\
             xdp_mode = \"driver\"\n\n{rest}",
            name = self.ns(node),
            sock = self.socket_for(node).display(),
            pins = self.pin_dir_for(node).display(),
        );
        fs::write(self.config_path_for(node), text).expect("write config");
    }

    /// The usual web service: VIP:80/tcp over b1..b3 with the given weights, HTTP
    /// checks every 300 ms.
    pub fn web_service(weights: [Option<u32>; 3]) -> String {
        let mut s = String::from(
            "[[service]]\nname = \"web\"\nvip = \"10.99.0.100\"\nport = 80\n\n[service.health]\n\
             kind = \"http\"\npath = \"/healthz\"\ninterval = \"300ms\"\ntimeout = \"250ms\"\n\
             rise = 1\nfall = 2\n\n",
        );
        for (i, w) in weights.iter().enumerate() {
            if let Some(w) = w {
                s.push_str(&format!(
                    "[[service.backend]]\naddress = \"{}\"\nweight = {w}\n\n",
                    BACKENDS[i]
                ));
            }
        }
        s
    }

    /// Start lbd on node "lb".
    pub fn start_lbd(&mut self) {
        self.start_lbd_on("lb");
    }

    /// Start lbd on LB node `node` with its config; waits until it answers.
    pub fn start_lbd_on(&mut self, node: &str) {
        self.lbd_runs += 1;
        let child = spawn_lbd(
            &self.ns(node),
            &self.config_path_for(node),
            &self.dir.join(format!("lbd-{}.log", self.lbd_runs)),
        )
        .expect("start lbd");
        self.lbds.insert(node.to_string(), child);
        wait_until(Duration::from_secs(20), "lbd answering", || {
            matches!(
                self.ask_on(node, Request::Status),
                Some(Response::Status(_))
            )
        });
    }

    /// Kill node "lb"'s lbd with SIGKILL (no cleanup at all).
    pub fn kill_lbd(&mut self) {
        self.kill_lbd_on("lb");
    }

    /// Kill LB node `node`'s lbd with SIGKILL.
    pub fn kill_lbd_on(&mut self, node: &str) {
        if let Some(mut c) = self.lbds.remove(node) {
            // `ip netns exec` execs lbd, so the child is lbd itself.
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stop LB node `node`'s lbd with SIGTERM (graceful) and wait for it.
    pub fn stop_lbd_on(&mut self, node: &str) {
        if let Some(mut c) = self.lbds.remove(node) {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let _ = c.wait();
        }
    }

    /// Keep a process to kill when the lab goes away (keepalived...).
    pub fn adopt_process(&mut self, child: Child) {
        self.others.push(child);
    }

    /// lbd's log of run `n` (1-based, in start order over all nodes).
    pub fn lbd_log(&self, n: u32) -> String {
        fs::read_to_string(self.dir.join(format!("lbd-{n}.log"))).unwrap_or_default()
    }

    /// Ask node "lb"'s lbd; `None` if it does not answer.
    pub fn ask(&self, request: Request) -> Option<Response> {
        self.ask_on("lb", request)
    }

    /// Ask LB node `node`'s lbd over its control socket; `None` if it does not answer.
    pub fn ask_on(&self, node: &str, request: Request) -> Option<Response> {
        ask_socket(&self.socket_for(node), request)
    }

    /// Wait until node "lb"'s lbd reports `n` backends healthy.
    pub fn wait_healthy(&self, n: usize) {
        self.wait_healthy_on("lb", n);
    }

    /// Wait until LB node `node`'s lbd reports `n` backends healthy and the data plane
    /// has them: each healthy backend holds Maglev slots in its service's installed
    /// table (health can pass before the backend's MAC resolves and its table is written).
    pub fn wait_healthy_on(&self, node: &str, n: usize) {
        wait_until(
            Duration::from_secs(20),
            &format!("{n} healthy backends in the data plane"),
            || {
                let Some(Response::Health { backends }) = self.ask_on(node, Request::Health) else {
                    return false;
                };
                let up: Vec<_> = backends.iter().filter(|b| b.up).collect();
                if up.len() != n {
                    return false;
                }
                let Some(Response::List { services }) = self.ask_on(node, Request::List) else {
                    return false;
                };
                up.iter().all(|h| {
                    services.iter().any(|s| {
                        s.name.as_deref() == Some(h.service.as_str())
                            && s.backends
                                .iter()
                                .any(|b| b.address == h.backend && b.slots > 0)
                    })
                })
            },
        );
    }

    /// Which backend node "lb"'s lbd says a client port's flow goes to ("b1".."b3", or
    /// "lb" for the LB node itself).
    pub fn explain(&self, client_port: u16, syn: bool) -> Option<String> {
        let request = Request::Explain {
            src: SocketAddr::new(CLIENT.parse().ok()?, client_port),
            dst: format!("{VIP}:80").parse().ok()?,
            protocol: "tcp".into(),
            syn,
        };
        match self.ask(request)? {
            Response::Explain(view) => {
                let b = view.backend?.to_string();
                if b == LB {
                    return Some("lb".into());
                }
                BACKENDS
                    .iter()
                    .position(|a| *a == b)
                    .map(|i| format!("b{}", i + 1))
            }
            _ => None,
        }
    }

    /// GET `path` from the VIP using `client_port`; the body, or "" on failure.
    pub fn curl(&self, client_port: u16, path: &str) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns("client"), "curl", "-s", "-m", "5"])
            .args(["--local-port", &client_port.to_string()])
            .arg(format!("http://{VIP}{path}"))
            .output()
            .expect("curl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Start a rate-limited download of /big (1 MiB) from `client_port`; returns the
    /// child whose stdout is "<bytes> <http code>".
    pub fn slow_download(&self, client_port: u16, rate: &str) -> Child {
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns("client"),
                "curl",
                "-s",
                "-o",
                "/dev/null",
                "-m",
                "60",
            ])
            .args(["-w", "%{size_download} %{http_code}", "--limit-rate", rate])
            .args(["--local-port", &client_port.to_string()])
            .arg(format!("http://{VIP}/big"))
            .stdout(Stdio::piped())
            .spawn()
            .expect("curl")
    }

    /// Run lbctl in node "lb"'s namespace against its lbd.
    pub fn lbctl(&self, args: &[&str]) -> std::process::Output {
        self.lbctl_on("lb", args)
    }

    /// Run lbctl on LB node `node` against its lbd.
    pub fn lbctl_on(&self, node: &str, args: &[&str]) -> std::process::Output {
        Command::new("ip")
            .args(["netns", "exec", &self.ns(node)])
            .arg(binary("lbctl"))
            .arg("--socket")
            .arg(self.socket_for(node))
            .arg("--config")
            .arg(self.config_path_for(node))
            .args(args)
            .output()
            .expect("lbctl")
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let nodes: Vec<String> = self.lbds.keys().cloned().collect();
        for node in nodes {
            self.kill_lbd_on(&node);
        }
        for mut c in self.others.drain(..) {
            let _ = c.kill();
            let _ = c.wait();
        }
        for i in 0..3 {
            self.stop_backend(i);
        }
        for node in ["lb", "lb2"] {
            let _ = fs::remove_dir_all(self.pin_dir_for(node));
        }
        let _ = Command::new("umount").arg(&self.bpffs).status();
        let _ = fs::remove_dir(&self.bpffs);
        let _ = Command::new(workspace().join("scripts/lab.sh"))
            .args(["down", &self.prefix])
            .stdout(Stdio::null())
            .status();
        let _ = fs::remove_dir_all(format!("/run/lbt-{}", self.prefix));
        if std::thread::panicking() {
            eprintln!(
                "lab {} torn down; logs were in {}",
                self.prefix,
                self.dir.display()
            );
            for n in 1..=self.lbd_runs {
                eprintln!("--- lbd run {n} ---\n{}", self.lbd_log(n));
            }
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Poll `f` every 100 ms until it holds or `timeout` passes (then panic with `what`).
pub fn wait_until(timeout: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out after {timeout:?} waiting for: {what}");
}

/// Long-lived connections that know their backend: the `lb-conns` helper
/// (tests/src/bin/lb-conns.rs), whose path the caller passes (an integration test has
/// it as `env!("CARGO_BIN_EXE_lb-conns")`).
impl Lab {
    /// A command that runs `program` in LB lab node `node`'s namespace ("client",
    /// "b1"...).
    pub fn command_in(&self, node: &str, program: &Path) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns(node)]).arg(program);
        c
    }

    /// Start `lb-conns serve` on TCP `port` on every backend, each answering with its
    /// name ("b1".."b3") on connections that stay open as long as the client wants;
    /// stopped when the lab goes away. Waits until all three listen.
    pub fn start_conn_servers(&mut self, lb_conns: &Path, port: u16) {
        for i in 0..3 {
            self.start_conn_server(lb_conns, port, i);
        }
    }
}

/// Extra `[global]` keys, UDP responders, counters by name, MACs and threads inside a
/// node's namespace (tests/tests/flows_e2e.rs).
impl Lab {
    /// Write LB node `node`'s config as [`Lab::write_config_for`] does, with `global`
    /// (TOML `key = value` lines, e.g. `timeout_udp = "3s"`) added to its `[global]`
    /// section. Keys the lab already sets there (node_name, control_socket,
    /// metrics_listen, pin_dir, settle_after) must not be repeated.
    pub fn write_config_with_global(&self, node: &str, global: &str, rest: &str) {
        self.write_config_for(node, rest);
        let path = self.config_path_for(node);
        let text = fs::read_to_string(&path).expect("read config");
        // `[global]` is the first section; it ends where `[[interface]]` begins.
        let at = text
            .find("\n[[interface]]")
            .expect("the lab's config has an [[interface]] section");
        let mut global = global.trim_end().to_string();
        global.push('\n');
        let text = format!("{}{global}{}", &text[..at], &text[at..]);
        fs::write(&path, text).expect("write config");
    }

    /// Start a UDP responder on every backend, bound to VIP:`port` (so its answers
    /// leave from the VIP, as DSR needs): every datagram is answered with
    /// `NAME <datagram>` ("b1".."b3"). Stopped when the lab goes away. Waits until all
    /// three are bound.
    pub fn start_udp_responders(&mut self, port: u16) {
        const SERVE: &str = concat!(
            "import socket, sys\n",
            "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n",
            "s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)\n",
            "s.bind((sys.argv[1], int(sys.argv[2])))\n",
            "name = sys.argv[3].encode() + b' '\n",
            "while True:\n",
            "    data, peer = s.recvfrom(2048)\n",
            "    s.sendto(name + data, peer)\n",
        );
        for i in 0..3 {
            let name = format!("b{}", i + 1);
            let mut command = Command::new("ip");
            command.args(["netns", "exec", &self.ns(&name)]).args([
                "python3",
                "-c",
                SERVE,
                VIP,
                &port.to_string(),
                &name,
            ]);
            let log = format!("udp-{name}.log");
            let listening = format!("{VIP}:{port} ");
            self.serve_on(&name, command, &log, "UDP responder", ("-lun", &listening));
        }
    }

    /// Data-plane outcome counter `name` of LB node `node` (as `lbctl status` shows
    /// them, e.g. "conntrack_flood_refused"); `None` if lbd does not answer or has no
    /// such counter.
    pub fn counter_on(&self, node: &str, name: &str) -> Option<u64> {
        match self.ask_on(node, Request::Status)? {
            Response::Status(status) => status.counters.get(name),
            _ => None,
        }
    }

    /// The MAC of interface `iface` in lab node `node`'s namespace.
    pub fn mac_of(&self, node: &str, iface: &str) -> [u8; 6] {
        let text = sh(&format!("ip -n {} -br link show {iface}", self.ns(node)));
        let mac = text
            .split_whitespace()
            .nth(2)
            .unwrap_or_else(|| panic!("no MAC for {node}/{iface}: {text:?}"));
        lb_api::fmt::parse_mac(mac).unwrap_or_else(|| panic!("bad MAC {mac:?}"))
    }

    /// Run `f` on a new thread inside lab node `node`'s network namespace (sockets it
    /// opens live there). The caller bounds what `f` does and joins the thread.
    pub fn spawn_in<T: Send + 'static>(
        &self,
        node: &str,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> std::thread::JoinHandle<T> {
        let ns = self.ns(node);
        std::thread::spawn(move || {
            let _inside = crate::netns::enter_existing(&ns);
            f()
        })
    }
}

/// One backend's `lb-conns serve` at a time, stopping an adopted process, and whether
/// an lbd still runs (tests/tests/sync_e2e.rs: rolling backend restarts, bad sync
/// input).
impl Lab {
    /// Start `lb-conns serve` on TCP `port` on backend `i` (0-based) only, answering
    /// with its name as [`Lab::start_conn_servers`] does for all three; stopped when
    /// the lab goes away, or earlier by [`Lab::stop_process`] with the id returned.
    /// Waits (at most 10 s) until it listens.
    pub fn start_conn_server(&mut self, lb_conns: &Path, port: u16, i: usize) -> u32 {
        let name = format!("b{}", i + 1);
        let mut command = self.command_in(&name, lb_conns);
        command.args(["serve", "--port", &port.to_string(), "--name", &name]);
        let log = format!("conns-{name}.log");
        self.serve_on(
            &name,
            command,
            &log,
            "lb-conns",
            ("-ltn", &format!(":{port} ")),
        )
    }

    /// Start `command` (a server in backend `name`'s namespace; `what` names it), its
    /// stdout discarded and its stderr appended to `log` in the lab's directory;
    /// stopped when the lab goes away. Waits (at most 10 s) until `ss <flags>` there
    /// shows `needle`, as `(flags, needle)`. Returns its process id.
    fn serve_on(
        &mut self,
        name: &str,
        mut command: Command,
        log: &str,
        what: &str,
        (flags, needle): (&str, &str),
    ) -> u32 {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(log))
            .expect("log");
        let child = command
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {what}: {e}"));
        let id = child.id();
        self.adopt_process(child);
        let ns = self.ns(name);
        wait_until(
            Duration::from_secs(10),
            &format!("{what} listening"),
            || sh(&format!("ip netns exec {ns} ss {flags}")).contains(needle),
        );
        id
    }

    /// Kill (SIGKILL) and reap the adopted process with id `id` (as returned by
    /// [`Lab::start_conn_server`] or `Child::id` before [`Lab::adopt_process`]);
    /// false if this lab holds no such process.
    pub fn stop_process(&mut self, id: u32) -> bool {
        let Some(at) = self.others.iter().position(|c| c.id() == id) else {
            return false;
        };
        let mut child = self.others.remove(at);
        let _ = child.kill();
        let _ = child.wait();
        true
    }

    /// Whether LB node `node`'s lbd, as this lab last started it, is still running
    /// (false once it exited, or if the lab did not start one or killed it).
    pub fn lbd_running_on(&mut self, node: &str) -> bool {
        self.lbds
            .get_mut(node)
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// How many lbd runs this lab has started (the last one's log is
    /// [`Lab::lbd_log`] of this number).
    pub fn lbd_runs(&self) -> u32 {
        self.lbd_runs
    }
}

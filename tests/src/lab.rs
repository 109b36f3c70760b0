//! An end-to-end lab: the project's own `scripts/lab.sh` topology (client, LB and three
//! backends on one bridge, VIP on the backends' lo via `scripts/realserver.sh`), real
//! HTTP servers on the backends (python3's http.server, each serving its own name), the
//! real `lbd` in the LB namespace, and a bpffs under /run shared by every namespace (so
//! pins outlive an lbd that is killed). Everything is torn down on drop, also when a
//! test fails.

use std::{
    fs,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::Once,
    time::{Duration, Instant},
};

use lb_userspace::control::{self, Request, Response};

use crate::netns::sh;

/// The VIP of the lab (scripts/lab.sh).
pub const VIP: &str = "10.99.0.100";
/// Backend addresses b1..b3.
pub const BACKENDS: [&str; 3] = ["10.99.0.11", "10.99.0.12", "10.99.0.13"];
/// The client's address.
pub const CLIENT: &str = "10.99.0.10";

fn workspace() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// Path of a workspace binary (lbd, lbctl), built once per test process.
pub fn binary(name: &str) -> PathBuf {
    static BUILD: Once = Once::new();
    BUILD.call_once(|| {
        let status = Command::new(env!("CARGO"))
            .args(["build", "-q", "-p", "lb-userspace", "--bins"])
            .current_dir(workspace())
            .status()
            .expect("run cargo build");
        assert!(status.success(), "building lbd/lbctl failed");
    });
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"));
    target.join("debug").join(name)
}

/// A running lab.
pub struct Lab {
    /// Namespace prefix (`<prefix>-client`, `-lb`, `-b1`..`-b3`, `-br`).
    pub prefix: String,
    /// Scratch directory: web roots, config, logs.
    pub dir: PathBuf,
    bpffs: PathBuf,
    servers: [Option<Child>; 3],
    lbd: Option<Child>,
    lbd_runs: u32,
}

impl Lab {
    /// Build the lab and start the three backends' web servers.
    pub fn up(tag: &str) -> Lab {
        let prefix = format!("{tag}{}", std::process::id() % 100_000);
        let dir = PathBuf::from(format!("/tmp/lbt-{prefix}"));
        let bpffs = PathBuf::from(format!("/run/lbt-{prefix}-bpf"));
        let mut lab = Lab {
            prefix,
            dir,
            bpffs,
            servers: [None, None, None],
            lbd: None,
            lbd_runs: 0,
        };
        let _ = fs::remove_dir_all(&lab.dir);
        fs::create_dir_all(&lab.dir).expect("lab dir");
        sh(&format!(
            "{}/scripts/lab.sh up {} >/dev/null",
            workspace().display(),
            lab.prefix
        ));
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

    /// Namespace name of a node ("client", "lb", "b1"...).
    pub fn ns(&self, node: &str) -> String {
        format!("{}-{node}", self.prefix)
    }

    /// Start backend `i`'s web server (0-based).
    pub fn start_backend(&mut self, i: usize) {
        let root = self.dir.join(format!("b{}", i + 1));
        let log = fs::File::create(self.dir.join(format!("b{}.log", i + 1))).expect("log");
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns(&format!("b{}", i + 1)),
                "python3",
                "-m",
                "http.server",
                "80",
                "--bind",
                "0.0.0.0",
            ])
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

    /// The config file path.
    pub fn config_path(&self) -> PathBuf {
        self.dir.join("lbd.toml")
    }

    /// The control socket.
    pub fn socket(&self) -> PathBuf {
        PathBuf::from(format!("/run/lbt-{}/lbd.sock", self.prefix))
    }

    /// Write an lbd config: `[global]` for this lab plus `services` (TOML text).
    pub fn write_config(&self, services: &str) {
        let text = format!(
            "[global]\nnode_name = \"{p}\"\ncontrol_socket = \"{sock}\"\nmetrics_listen = \"off\"\npin_dir = \"{pins}\"\n\
             settle_after = \"10m\"\n\n[[interface]]\nname = \"eth0\"\nxdp_mode = \"driver\"\n\n{services}",
            p = self.prefix,
            sock = self.socket().display(),
            pins = self.bpffs.join("lbd").display(),
        );
        fs::write(self.config_path(), text).expect("write config");
    }

    /// The usual web service: VIP:80/tcp over b1..b3 with the given weights, HTTP
    /// checks every 300 ms.
    pub fn web_service(weights: [Option<u32>; 3]) -> String {
        let mut s = String::from(
            "[[service]]\nname = \"web\"\nvip = \"10.99.0.100\"\nport = 80\n\n[service.health]\nkind = \"http\"\npath = \"/healthz\"\n\
             interval = \"300ms\"\ntimeout = \"250ms\"\nrise = 1\nfall = 2\n\n",
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

    /// Start lbd in the LB namespace.
    pub fn start_lbd(&mut self) {
        self.lbd_runs += 1;
        let log =
            fs::File::create(self.dir.join(format!("lbd-{}.log", self.lbd_runs))).expect("log");
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns("lb")])
            .arg(binary("lbd"))
            .arg("--config")
            .arg(self.config_path())
            .env("LBD_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start lbd");
        self.lbd = Some(child);
        wait_until(Duration::from_secs(20), "lbd answering", || {
            matches!(self.ask(Request::Status), Some(Response::Status(_)))
        });
    }

    /// Kill lbd with SIGKILL (no cleanup at all).
    pub fn kill_lbd(&mut self) {
        if let Some(mut c) = self.lbd.take() {
            // `ip netns exec` execs lbd, so the child is lbd itself.
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// lbd's log of run `n` (1-based).
    pub fn lbd_log(&self, n: u32) -> String {
        fs::read_to_string(self.dir.join(format!("lbd-{n}.log"))).unwrap_or_default()
    }

    /// Ask lbd over its control socket; `None` if it does not answer.
    pub fn ask(&self, request: Request) -> Option<Response> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()?;
        rt.block_on(async {
            tokio::time::timeout(
                Duration::from_secs(5),
                control::call(&self.socket(), &request),
            )
            .await
            .ok()?
            .ok()
        })
    }

    /// Wait until lbd reports `n` backends of the web service healthy.
    pub fn wait_healthy(&self, n: usize) {
        wait_until(
            Duration::from_secs(20),
            &format!("{n} healthy backends"),
            || match self.ask(Request::Health) {
                Some(Response::Health { backends }) => {
                    backends.iter().filter(|b| b.up).count() == n
                }
                _ => false,
            },
        );
    }

    /// Which backend lbd says a client port's flow goes to ("b1".."b3").
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
            .args([
                "netns",
                "exec",
                &self.ns("client"),
                "curl",
                "-s",
                "-m",
                "5",
                "--local-port",
                &client_port.to_string(),
            ])
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
            .args([
                "-w",
                "%{size_download} %{http_code}",
                "--limit-rate",
                rate,
                "--local-port",
                &client_port.to_string(),
            ])
            .arg(format!("http://{VIP}/big"))
            .stdout(Stdio::piped())
            .spawn()
            .expect("curl")
    }

    /// Run lbctl in the LB namespace against this lab's lbd.
    pub fn lbctl(&self, args: &[&str]) -> std::process::Output {
        Command::new("ip")
            .args(["netns", "exec", &self.ns("lb")])
            .arg(binary("lbctl"))
            .arg("--socket")
            .arg(self.socket())
            .arg("--config")
            .arg(self.config_path())
            .args(args)
            .output()
            .expect("lbctl")
    }

    /// Where lbd pins its maps and links.
    pub fn pin_dir(&self) -> PathBuf {
        self.bpffs.join("lbd")
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.kill_lbd();
        for i in 0..3 {
            self.stop_backend(i);
        }
        let _ = fs::remove_dir_all(self.bpffs.join("lbd"));
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

/// True if `path` exists (for pin checks).
pub fn exists(path: &Path) -> bool {
    path.exists()
}

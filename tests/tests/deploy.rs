//! The deployment files under `scripts/`:
//!
//! - every `scripts/examples/*.toml` passes `lbd --check-config` and names its seed;
//! - the Kubernetes manifests parse as YAML (python3-yaml; skipped with a note when
//!   it is missing), have the shape the docs promise, ask for the unit's capabilities,
//!   and the DaemonSet's embedded lbd.toml passes `lbd --check-config`;
//! - `scripts/deploy/lbd.service` has the promised hardening, documents each of its
//!   capabilities, and passes `systemd-analyze verify` (skipped with a note when
//!   systemd-analyze is missing) with an exposure score that stays low;
//! - the unit's capability set is exactly what lbd needs: lbd run as nobody (uid
//!   65534) with only those capabilities (ambient) loads and pins the data plane,
//!   attaches XDP, resolves a backend, becomes VRRP master, adds the VIP, reloads and
//!   stops; without any one of them it exits with an error;
//! - BGP (`[bgp]` with BIRD): `scripts/deploy/bird-lb-node.conf` and the DaemonSet's
//!   bird.conf parse with `bird -p` (lbd's routes file empty, and as lbd writes it),
//!   the drop-ins `lbd.service.d/bgp.conf` and `bird.service.d/lbd.conf` pass
//!   `systemd-analyze verify` with their units and bind BIRD to lbd, and
//!   `k8s/lbd-bgp-daemonset.yaml` embeds an lbd.toml lbd accepts and puts BIRD next to
//!   lbd, sharing the routes file and the socket (each skipped with a note when bird,
//!   systemd-analyze or python3-yaml is missing).
//!
//! The last test needs root, setpriv and iproute2. It works in two network
//! namespaces it creates (veth lbc0 10.97.0.1/24 <-> lbc1 10.97.0.2/24) with a bpffs
//! of its own under /run/lbt-deploy-<pid>; all of it is removed on drop, also when
//! the test fails.

use std::{
    fs,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use lb_tests::{
    lab::binary,
    netns::{sh, Netns},
};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

fn output_text(out: &Output) -> String {
    format!(
        "exit {:?}\n{}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `lbd --check-config FILE`; `Err` with lbd's message when it is rejected.
fn check_config(file: &Path) -> Result<(), String> {
    let out = Command::new(binary("lbd"))
        .arg("--check-config")
        .arg(file)
        .output()
        .expect("run lbd");
    if out.status.success() {
        Ok(())
    } else {
        Err(output_text(&out))
    }
}

/// A scratch directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("lbt-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

// ---------------------------------------------------------------------------------
// Examples

#[test]
fn examples_pass_check_config() {
    let mut files: Vec<PathBuf> = fs::read_dir(repo("scripts/examples"))
        .expect("scripts/examples")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    let names: Vec<String> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for seed in ["seed000", "seed001", "seed002", "seed003", "seed004"] {
        assert!(
            names.iter().any(|n| n.starts_with(seed)),
            "no example for {seed}: {names:?}"
        );
    }
    assert!(
        names.iter().filter(|n| n.starts_with("seed000")).count() >= 2,
        "seed000 needs a master and a backup config: {names:?}"
    );
    for (file, name) in files.iter().zip(&names) {
        if let Err(e) = check_config(file) {
            panic!("{name} fails lbd --check-config:\n{e}");
        }
        let text = fs::read_to_string(file).unwrap();
        assert!(
            text.starts_with(&format!("# {name}:")),
            "{name}: the header comment must start with `# {name}:`"
        );
        let seed = &name[4..7];
        assert!(
            text.contains(&format!("Replaces seed {seed}")),
            "{name}: the header must say which seed setup it replaces"
        );
    }
    // seed001: the VIP belongs to someone else, so no VRRP and forwarding on.
    let slb = fs::read_to_string(repo("scripts/examples/seed001-slb-owns-vip.toml")).unwrap();
    assert!(
        !slb.lines().any(|l| l.trim() == "[[vrrp]]"),
        "seed001: no VRRP"
    );
    assert!(slb.contains("forwarding = \"active\""));
    // seed002..004: VRRP with HTTPS /healthz checks.
    for name in names.iter().filter(|n| {
        n.starts_with("seed002") || n.starts_with("seed003") || n.starts_with("seed004")
    }) {
        let text = fs::read_to_string(repo(&format!("scripts/examples/{name}"))).unwrap();
        assert!(text.lines().any(|l| l.trim() == "[[vrrp]]"), "{name}");
        assert!(text.contains("kind = \"https\""), "{name}");
        assert!(text.contains("path = \"/healthz\""), "{name}");
    }
}

// ---------------------------------------------------------------------------------
// The systemd unit

const UNIT: &str = "scripts/deploy/lbd.service";

/// Values of every `Key=` line of the unit (comments skipped).
fn unit_values(text: &str, key: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .map(|v| v.trim().to_owned())
        .collect()
}

/// The unit's capabilities, e.g. `["CAP_BPF", ...]`.
fn unit_caps() -> Vec<String> {
    let text = fs::read_to_string(repo(UNIT)).expect(UNIT);
    let bounding = unit_values(&text, "CapabilityBoundingSet");
    assert_eq!(bounding.len(), 1, "one CapabilityBoundingSet= line");
    let caps: Vec<String> = bounding[0].split_whitespace().map(str::to_owned).collect();
    let mut ambient: Vec<String> = unit_values(&text, "AmbientCapabilities")
        .iter()
        .flat_map(|v| v.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .collect();
    let mut sorted = caps.clone();
    sorted.sort();
    ambient.sort();
    assert_eq!(
        ambient, sorted,
        "AmbientCapabilities= must equal the bounding set"
    );
    caps
}

#[test]
fn unit_is_hardened_as_documented() {
    let text = fs::read_to_string(repo(UNIT)).expect(UNIT);
    assert!(text.starts_with("# lbd.service:"), "header comment");
    for (key, want) in [
        ("Type", "simple"),
        (
            "ExecStart",
            "/usr/local/sbin/lbd --config /etc/lbd/lbd.toml",
        ),
        ("ExecReload", "/bin/kill -HUP $MAINPID"),
        ("Restart", "always"),
        ("KillMode", "process"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ReadWritePaths", "/sys/fs/bpf /run/lbd"),
        ("RuntimeDirectory", "lbd"),
        ("PrivateTmp", "yes"),
        ("ProtectHome", "yes"),
        (
            "RestrictAddressFamilies",
            "AF_UNIX AF_INET AF_INET6 AF_NETLINK AF_PACKET",
        ),
        ("LimitMEMLOCK", "infinity"),
    ] {
        assert_eq!(unit_values(&text, key), [want], "{key}=");
    }
    let caps = unit_caps();
    let mut sorted = caps.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        ["CAP_BPF", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_PERFMON"]
    );
    // Each capability is explained in a comment (`#   CAP_X   what for`).
    for cap in &caps {
        assert!(
            text.lines()
                .any(|l| l.trim_start().starts_with('#') && l.contains(&format!(" {cap} "))),
            "{cap} is not explained in a comment"
        );
    }

    let Ok(probe) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("NOTE: systemd-analyze is not installed; `systemd-analyze verify` skipped");
        return;
    };
    assert!(probe.status.success());
    // verify wants ExecStart's binary to exist: point it at the one just built.
    let dir = TempDir::new("unit");
    let unit = dir.0.join("lbd.service");
    let lbd = binary("lbd");
    fs::write(
        &unit,
        text.replace("/usr/local/sbin/lbd", &lbd.display().to_string()),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&unit)
        .output()
        .expect("systemd-analyze verify");
    // Bad settings are only warned about ("..., ignoring"), so any word about our unit
    // fails the test; other units' complaints are the host's business.
    let said = output_text(&out);
    assert!(out.status.success(), "systemd-analyze verify: {said}");
    assert!(
        !said.contains("lbd.service"),
        "systemd-analyze verify complains: {said}"
    );
    // The exposure score (systemd 250+ can rate a unit file offline).
    let sec = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(&unit)
        .output()
        .expect("systemd-analyze security");
    let sec_text = String::from_utf8_lossy(&sec.stdout);
    match sec_text
        .lines()
        .find_map(|l| l.split("Overall exposure level for lbd.service:").nth(1))
    {
        Some(rest) => {
            let score: f64 = rest
                .split_whitespace()
                .next()
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("exposure score in {rest:?}"));
            eprintln!("systemd-analyze security: exposure {score}");
            assert!(score <= 3.5, "exposure {score} (was 2.8): {sec_text}");
        }
        None => eprintln!(
            "NOTE: this systemd-analyze cannot rate a unit file offline: {}",
            output_text(&sec)
        ),
    }
}

// ---------------------------------------------------------------------------------
// Kubernetes manifests

const DAEMONSET: &str = "scripts/deploy/k8s/lbd-daemonset.yaml";
const STATIC_POD: &str = "scripts/deploy/k8s/lbd-static-pod.yaml";

/// The block scalar under `key: |` in a YAML text, dedented (without a YAML parser,
/// so this works where python3-yaml is missing).
fn block_scalar(text: &str, key: &str) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.iter().position(|l| l.trim() == format!("{key}: |"))?;
    let key_indent = lines[start].len() - lines[start].trim_start().len();
    let body: Vec<&str> = lines[start + 1..]
        .iter()
        .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() > key_indent)
        .copied()
        .collect();
    let indent = body
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()?;
    let mut out: String = body
        .iter()
        .map(|l| if l.len() >= indent { &l[indent..] } else { "" })
        .collect::<Vec<_>>()
        .join("\n");
    out.push('\n');
    Some(out)
}

/// The documents of YAML files, through python3-yaml, as JSON; `None` (with a note)
/// when python3 or its yaml module is missing.
fn parse_yaml(files: &[PathBuf]) -> Option<Vec<Vec<serde_json::Value>>> {
    const SCRIPT: &str = "import json, sys, yaml\n\
        print(json.dumps([[d for d in yaml.safe_load_all(open(f)) if d is not None] \
        for f in sys.argv[1:]]))";
    for python in ["python3", "/usr/bin/python3"] {
        let Ok(out) = Command::new(python)
            .arg("-c")
            .arg(SCRIPT)
            .args(files)
            .output()
        else {
            continue;
        };
        if out.status.success() {
            return Some(serde_json::from_slice(&out.stdout).expect("python's JSON"));
        }
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("No module named 'yaml'"),
            "a manifest does not parse as YAML ({python}): {err}"
        );
    }
    eprintln!("NOTE: python3 with the yaml module (python3-yaml) is missing; YAML parse skipped");
    None
}

/// The first container's spec and the pod spec of a manifest document.
fn pod_spec(doc: &serde_json::Value) -> &serde_json::Value {
    match doc["kind"].as_str() {
        Some("Pod") => &doc["spec"],
        _ => &doc["spec"]["template"]["spec"],
    }
}

fn check_pod(spec: &serde_json::Value, what: &str, caps: &[String]) {
    assert_eq!(spec["hostNetwork"], true, "{what}: hostNetwork");
    let c = &spec["containers"][0];
    let sc = &c["securityContext"];
    assert_eq!(sc["privileged"], false, "{what}: not privileged");
    assert_eq!(sc["allowPrivilegeEscalation"], false, "{what}");
    assert_eq!(
        sc["capabilities"]["drop"],
        serde_json::json!(["ALL"]),
        "{what}"
    );
    let mut add: Vec<String> = sc["capabilities"]["add"]
        .as_array()
        .unwrap_or_else(|| panic!("{what}: capabilities.add"))
        .iter()
        .map(|v| format!("CAP_{}", v.as_str().unwrap()))
        .collect();
    add.sort();
    let mut want = caps.to_vec();
    want.sort();
    assert_eq!(add, want, "{what}: the same capabilities as lbd.service");
    let probe = c["readinessProbe"]["exec"]["command"].to_string();
    assert!(
        probe.contains("lbctl") && (probe.contains("status") || probe.contains("bgp")),
        "{what}: readiness via lbctl status or bgp: {probe}"
    );
    let host_paths: Vec<String> = spec["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["hostPath"]["path"].as_str().map(str::to_owned))
        .collect();
    for path in ["/sys/fs/bpf", "/run/lbd"] {
        assert!(
            host_paths.iter().any(|p| p == path),
            "{what}: hostPath {path}: {host_paths:?}"
        );
    }
    let mounts = c["volumeMounts"].to_string();
    assert!(mounts.contains("/etc/lbd") && mounts.contains("/sys/fs/bpf"));
}

#[test]
fn manifests_parse_and_embed_a_valid_config() {
    let ds_text = fs::read_to_string(repo(DAEMONSET)).expect(DAEMONSET);
    let pod_text = fs::read_to_string(repo(STATIC_POD)).expect(STATIC_POD);
    assert!(
        ds_text.starts_with("# lbd-daemonset.yaml:"),
        "header comment"
    );
    assert!(
        pod_text.starts_with("# lbd-static-pod.yaml:"),
        "header comment"
    );

    let embedded = block_scalar(&ds_text, "lbd.toml").expect("the ConfigMap's lbd.toml");
    let dir = TempDir::new("k8s");
    let config = dir.0.join("lbd.toml");
    fs::write(&config, &embedded).unwrap();
    if let Err(e) = check_config(&config) {
        panic!("the DaemonSet's lbd.toml fails lbd --check-config:\n{e}\n{embedded}");
    }

    let caps = unit_caps();
    let Some(docs) = parse_yaml(&[repo(DAEMONSET), repo(STATIC_POD)]) else {
        return;
    };
    let (ds_docs, pod_docs) = (&docs[0], &docs[1]);
    let kinds: Vec<&str> = ds_docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    assert_eq!(kinds, ["ConfigMap", "DaemonSet"]);
    let cm = &ds_docs[0];
    assert_eq!(
        cm["data"]["lbd.toml"].as_str(),
        Some(embedded.as_str()),
        "the YAML parser and the test's extraction disagree"
    );
    let ds = &ds_docs[1];
    let spec = pod_spec(ds);
    assert_eq!(
        spec["nodeSelector"]["node-role.kubernetes.io/control-plane"], "",
        "control-plane nodes only"
    );
    assert!(spec["tolerations"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["key"] == "node-role.kubernetes.io/control-plane"));
    let volumes = spec["volumes"].to_string();
    assert!(
        volumes.contains(cm["metadata"]["name"].as_str().unwrap()),
        "the DaemonSet mounts the ConfigMap: {volumes}"
    );
    check_pod(spec, "DaemonSet", &caps);

    assert_eq!(pod_docs.len(), 1);
    let pod = &pod_docs[0];
    assert_eq!(pod["kind"], "Pod");
    assert_eq!(pod["metadata"]["namespace"], "kube-system");
    let spec = pod_spec(pod);
    assert!(
        !spec["volumes"].to_string().contains("configMap"),
        "a static pod cannot use a ConfigMap"
    );
    assert!(spec["volumes"].to_string().contains("\"/etc/lbd\""));
    check_pod(spec, "static pod", &caps);
}

// ---------------------------------------------------------------------------------
// The capability set, for real

const NOBODY: u32 = 65534;

/// Two namespaces joined by a veth pair, a private bpffs and a run directory owned
/// by nobody, an lbd config using them. Everything goes on drop.
struct CapLab {
    lb: Netns,
    be: Netns,
    dir: PathBuf,
    bpffs: PathBuf,
    lbd: PathBuf,
    config: PathBuf,
    socket: PathBuf,
    runs: u32,
}

impl CapLab {
    fn new() -> CapLab {
        let lb = Netns::new("caplb");
        let be = Netns::new("capbe");
        sh(&format!(
            "ip link add lbc0 netns {} type veth peer name lbc1 netns {}",
            lb.name, be.name
        ));
        lb.exec("ip addr add 10.97.0.1/24 dev lbc0 && ip link set lbc0 up");
        be.exec("ip addr add 10.97.0.2/24 dev lbc1 && ip link set lbc1 up");
        let dir = PathBuf::from(format!("/run/lbt-deploy-{}", std::process::id()));
        let _ = Command::new("umount").arg(dir.join("bpffs")).output();
        let _ = fs::remove_dir_all(&dir);
        let bpffs = dir.join("bpffs");
        let run = dir.join("run");
        fs::create_dir_all(&bpffs).unwrap();
        fs::create_dir_all(&run).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        let mut lab = CapLab {
            lb,
            be,
            bpffs: bpffs.clone(),
            lbd: dir.join("lbd"),
            config: dir.join("lbd.toml"),
            socket: run.join("lbd.sock"),
            dir,
            runs: 0,
        };
        sh(&format!("mount -t bpf bpf {}", bpffs.display()));
        for d in [&bpffs, &run] {
            std::os::unix::fs::chown(d, Some(NOBODY), Some(NOBODY)).unwrap();
        }
        // A copy nobody can run, whatever the checkout's permissions.
        fs::copy(binary("lbd"), &lab.lbd).unwrap();
        fs::set_permissions(&lab.lbd, fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(
            &lab.config,
            format!(
                r#"[global]
node_name = "capcheck"
control_socket = "{socket}"
pin_dir = "{pins}"
metrics_listen = "127.0.0.1:9469"

[[interface]]
name = "lbc0"

[[service]]
name = "api"
vip = "10.97.0.100"
port = 6443

[service.health]
kind = "none"

[[service.backend]]
address = "10.97.0.2"

[[vrrp]]
name = "VI_CAP"
interface = "lbc0"
virtual_router_id = 97
priority = 255
version = 3
advert_interval = "100ms"
virtual_addresses = ["10.97.0.100/24"]
"#,
                socket = lab.socket.display(),
                pins = lab.bpffs.join("lbd").display(),
            ),
        )
        .unwrap();
        fs::set_permissions(&lab.config, fs::Permissions::from_mode(0o644)).unwrap();
        lab.runs = 0;
        lab
    }

    /// Start lbd in the LB namespace as nobody with exactly `caps` (e.g. "CAP_BPF")
    /// as its ambient, inheritable and bounding sets. Its output goes to a log file.
    fn start(&mut self, caps: &[String]) -> (Child, PathBuf) {
        self.runs += 1;
        let log = self.dir.join(format!("lbd-{}.log", self.runs));
        let spec = std::iter::once("-all".to_owned())
            .chain(
                caps.iter()
                    .map(|c| format!("+{}", c.trim_start_matches("CAP_").to_lowercase())),
            )
            .collect::<Vec<_>>()
            .join(",");
        let file = fs::File::create(&log).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &self.lb.name, "setpriv"])
            .arg(format!("--reuid={NOBODY}"))
            .arg(format!("--regid={NOBODY}"))
            .arg("--clear-groups")
            .arg(format!("--inh-caps={spec}"))
            .arg(format!("--ambient-caps={spec}"))
            .arg(format!("--bounding-set={spec}"))
            .arg(&self.lbd)
            .arg("--config")
            .arg(&self.config)
            .env("LBD_LOG", "info")
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("start lbd under setpriv");
        (child, log)
    }

    /// lbctl in the LB namespace against this lbd (as root).
    fn lbctl(&self, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.lb.name])
            .arg(binary("lbctl"))
            .arg("--socket")
            .arg(&self.socket)
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .output()
            .expect("run lbctl")
    }

    /// Remove the pinned data plane (as root), so the next lbd starts fresh.
    fn detach(&self) {
        let _ = Command::new(&self.lbd)
            .arg("--detach")
            .arg("--config")
            .arg(&self.config)
            .output();
    }
}

impl Drop for CapLab {
    fn drop(&mut self) {
        self.detach();
        let _ = Command::new("umount").arg(&self.bpffs).output();
        let _ = fs::remove_dir_all(&self.dir);
        // The namespaces (and the veth pair) go when `lb` and `be` drop.
    }
}

/// SIGTERM `child` and wait for it (SIGKILL after 10 s).
fn stop(child: &mut Child) {
    // SAFETY: kill(2) on the pid of our own child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if child.try_wait().ok().flatten().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn unit_capabilities_are_sufficient_and_each_is_necessary() {
    let caps = unit_caps();
    let mut lab = CapLab::new();

    // With all of them: up, attached, resolved, VRRP master with the VIP.
    let (mut child, log) = lab.start(&caps);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut vrrp = String::new();
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "lbd with {caps:?} exited ({status}):\n{}",
                fs::read_to_string(&log).unwrap_or_default()
            );
        }
        vrrp = String::from_utf8_lossy(&lab.lbctl(&["vrrp"]).stdout).into_owned();
        if vrrp.contains("MASTER") {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let log_text = || fs::read_to_string(&log).unwrap_or_default();
    assert!(
        vrrp.contains("MASTER"),
        "lbd did not become VRRP master: {vrrp}\n{}",
        log_text()
    );
    let addrs = lab.lb.exec("ip -o addr show dev lbc0");
    assert!(addrs.contains("10.97.0.100/24"), "VIP not added: {addrs}");
    let link = lab.lb.exec("ip link show dev lbc0");
    assert!(link.contains("xdp"), "XDP not attached: {link}");
    let status = output_text(&lab.lbctl(&["status"]));
    assert!(
        status.contains("lbc0 (driver)") || status.contains("lbc0 (skb)"),
        "{status}"
    );
    let mac = lab
        .be
        .exec("cat /sys/class/net/lbc1/address")
        .trim()
        .to_owned();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut list = String::new();
    while Instant::now() < deadline && !list.contains(&mac) {
        list = output_text(&lab.lbctl(&["list"]));
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        list.contains(&mac),
        "backend MAC {mac} not resolved: {list}"
    );
    let reload = lab.lbctl(&["reload"]);
    assert!(reload.status.success(), "reload: {}", output_text(&reload));
    for name in fs::read_dir(lab.bpffs.join("lbd")).unwrap().flatten() {
        let meta = name.metadata().unwrap();
        assert_eq!(
            std::os::unix::fs::MetadataExt::uid(&meta),
            NOBODY,
            "pinned by nobody: {}",
            name.path().display()
        );
    }
    stop(&mut child);
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "lbd stopped with {status}:\n{}",
        log_text()
    );
    let addrs = lab.lb.exec("ip -o addr show dev lbc0");
    assert!(!addrs.contains("10.97.0.100"), "VIP left behind: {addrs}");
    assert!(
        !log_text().contains(" WARN ") && !log_text().contains("ERROR"),
        "lbd complained with {caps:?}:\n{}",
        log_text()
    );

    // Without any one of them: lbd gives up with an error.
    for missing in &caps {
        lab.detach();
        let fewer: Vec<String> = caps.iter().filter(|c| *c != missing).cloned().collect();
        let (mut child, log) = lab.start(&fewer);
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Ok(Some(status)) = child.try_wait() {
                break Some(status);
            }
            if Instant::now() > deadline {
                break None;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let text = fs::read_to_string(&log).unwrap_or_default();
        match status {
            Some(s) => assert!(!s.success(), "lbd without {missing} exited 0:\n{text}"),
            None => {
                stop(&mut child);
                panic!("lbd without {missing} kept running:\n{text}");
            }
        }
        assert!(
            text.contains("lbd: "),
            "lbd without {missing}: no error message:\n{text}"
        );
        eprintln!(
            "without {missing}: {}",
            text.lines()
                .rev()
                .find(|l| l.starts_with("lbd: "))
                .unwrap_or("")
                .chars()
                .take(160)
                .collect::<String>()
        );
    }
}

// ---------------------------------------------------------------------------------
// BGP: BIRD's config for an LB node, the systemd drop-ins, the DaemonSet with BIRD

const BIRD_NODE: &str = "scripts/deploy/bird-lb-node.conf";
const BIRD_DROPIN: &str = "scripts/deploy/bird.service.d/lbd.conf";
const LBD_DROPIN: &str = "scripts/deploy/lbd.service.d/bgp.conf";
const BGP_DAEMONSET: &str = "scripts/deploy/k8s/lbd-bgp-daemonset.yaml";
/// The routes file the deploy files agree on: lbd's default `routes_file`.
const ROUTES_FILE: &str = lb_config::BgpConfig::DEFAULT_ROUTES_FILE;

/// `bird -p -c` (parse only) on `config` with lbd's routes file replaced by a scratch
/// file holding each of: nothing (before lbd wrote it), an IPv4 VIP, both families.
/// The contents are what lbd writes (`lb_bgp::bird::routes_file`). Skipped (with a
/// note) when BIRD is not installed. `tag` names the scratch directory.
fn bird_parses(config: &str, what: &str, tag: &str) {
    assert!(
        config.contains(&format!("include \"{ROUTES_FILE}\";")),
        "{what} includes lbd's routes file {ROUTES_FILE}"
    );
    if Command::new("bird").arg("--version").output().is_err() {
        eprintln!("NOTE: bird (Debian bird2) is not installed; BIRD parse of {what} skipped");
        return;
    }
    let dir = TempDir::new(tag);
    let routes = dir.0.join("vips.conf");
    let file = dir.0.join("bird.conf");
    fs::write(
        &file,
        config.replace(ROUTES_FILE, &routes.display().to_string()),
    )
    .unwrap();
    let vips = |list: &[&str]| -> String {
        let set: std::collections::BTreeSet<std::net::IpAddr> =
            list.iter().map(|v| v.parse().unwrap()).collect();
        lb_bgp::bird::routes_file(&set)
    };
    for content in [
        String::new(),
        vips(&[]),
        vips(&["10.0.9.100"]),
        vips(&["10.0.9.100", "2001:db8:9::100"]),
    ] {
        fs::write(&routes, &content).unwrap();
        let out = Command::new("bird")
            .arg("-p")
            .arg("-c")
            .arg(&file)
            .output()
            .expect("bird -p");
        assert!(
            out.status.success(),
            "bird -p rejects {what} with routes file {content:?}: {}",
            output_text(&out)
        );
    }
    // The check is real: a broken include is refused.
    fs::write(
        &routes,
        "protocol static lb_vips4 { ipv4; route 10.0.9.100/32 }\n",
    )
    .unwrap();
    let out = Command::new("bird")
        .arg("-p")
        .arg("-c")
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "bird -p accepts a broken routes file"
    );
}

/// What every BIRD config for an LB node must say (ecmp-notes.md's measured setup).
fn check_bird_settings(text: &str, what: &str) {
    for want in [
        "protocol bfd",
        "min rx interval 100 ms",
        "multiplier 3",
        "hold time 3",
        "keepalive time 1",
        "graceful restart off",
        "bfd on",
        "import none",
        "proto = \"lb_vips4\"",
    ] {
        assert!(text.contains(want), "{what}: no `{want}`");
    }
}

#[test]
fn bird_node_config_parses() {
    let text = fs::read_to_string(repo(BIRD_NODE)).expect(BIRD_NODE);
    assert!(text.starts_with("# bird-lb-node.conf:"), "header comment");
    check_bird_settings(&text, BIRD_NODE);
    bird_parses(&text, BIRD_NODE, "bird-node");
}

#[test]
fn bgp_dropins_verify() {
    let bird_in = fs::read_to_string(repo(BIRD_DROPIN)).expect(BIRD_DROPIN);
    let lbd_in = fs::read_to_string(repo(LBD_DROPIN)).expect(LBD_DROPIN);
    assert!(
        bird_in.starts_with("# bird.service.d/lbd.conf:"),
        "header comment"
    );
    assert!(
        lbd_in.starts_with("# lbd.service.d/bgp.conf:"),
        "header comment"
    );
    assert_eq!(unit_values(&bird_in, "BindsTo"), ["lbd.service"]);
    // lbd stops first (it withdraws through a running BIRD): lbd is ordered after BIRD.
    assert!(unit_values(&bird_in, "After").is_empty());
    // The unit's own ExecStartPre list is reset, then the routes file exists before
    // `bird -p` parses the config that includes it.
    let pre = unit_values(&bird_in, "ExecStartPre");
    assert_eq!(
        pre.first().map(String::as_str),
        Some(""),
        "ExecStartPre= reset first"
    );
    let touch = pre
        .iter()
        .position(|p| p.contains("truncate") && p.contains(ROUTES_FILE));
    let parse = pre.iter().position(|p| p.ends_with("bird -p"));
    assert!(
        touch.is_some() && parse.is_some() && touch < parse,
        "the routes file is created before `bird -p`: {pre:?}"
    );
    assert_eq!(unit_values(&lbd_in, "Wants"), ["bird.service"]);
    assert_eq!(unit_values(&lbd_in, "After"), ["bird.service"]);
    assert_eq!(unit_values(&lbd_in, "StateDirectory"), ["lbd"]);
    assert_eq!(unit_values(&lbd_in, "SupplementaryGroups"), ["bird"]);

    let Ok(probe) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("NOTE: systemd-analyze is not installed; `systemd-analyze verify` skipped");
        return;
    };
    assert!(probe.status.success());
    // verify loads DIR/<unit>.d/*.conf next to the units it is given.
    let dir = TempDir::new("dropins");
    let unit = fs::read_to_string(repo(UNIT)).expect(UNIT);
    fs::write(
        dir.0.join("lbd.service"),
        unit.replace("/usr/local/sbin/lbd", &binary("lbd").display().to_string()),
    )
    .unwrap();
    fs::create_dir_all(dir.0.join("lbd.service.d")).unwrap();
    fs::write(dir.0.join("lbd.service.d/bgp.conf"), &lbd_in).unwrap();
    let mut units = vec![dir.0.join("lbd.service")];
    match fs::read_to_string("/lib/systemd/system/bird.service") {
        Ok(bird_unit) => {
            fs::write(dir.0.join("bird.service"), bird_unit).unwrap();
            fs::create_dir_all(dir.0.join("bird.service.d")).unwrap();
            fs::write(dir.0.join("bird.service.d/lbd.conf"), &bird_in).unwrap();
            units.push(dir.0.join("bird.service"));
        }
        Err(_) => eprintln!("NOTE: no bird.service (Debian bird2); its drop-in is not verified"),
    }
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(&units)
        .output()
        .expect("systemd-analyze verify");
    let said = output_text(&out);
    assert!(out.status.success(), "systemd-analyze verify: {said}");
    for name in ["lbd.service", "bgp.conf", "bird.service", "lbd.conf"] {
        assert!(
            !said.contains(name),
            "systemd-analyze verify complains about {name}: {said}"
        );
    }
}

#[test]
fn bgp_manifest_parses_and_embeds_valid_configs() {
    let text = fs::read_to_string(repo(BGP_DAEMONSET)).expect(BGP_DAEMONSET);
    assert!(
        text.starts_with("# lbd-bgp-daemonset.yaml:"),
        "header comment"
    );
    let lbd_toml = block_scalar(&text, "lbd.toml").expect("the ConfigMap's lbd.toml");
    let bird_conf = block_scalar(&text, "bird.conf").expect("the ConfigMap's bird.conf");
    let dir = TempDir::new("k8s-bgp");
    let config = dir.0.join("lbd.toml");
    fs::write(&config, &lbd_toml).unwrap();
    if let Err(e) = check_config(&config) {
        panic!("the BGP DaemonSet's lbd.toml fails lbd --check-config:\n{e}\n{lbd_toml}");
    }
    for want in [
        "[bgp]",
        "[sync]",
        "forwarding = \"active\"",
        "bird_socket = \"/run/bird/bird.ctl\"",
    ] {
        assert!(lbd_toml.contains(want), "lbd.toml: no `{want}`");
    }
    assert!(lbd_toml.contains(&format!("routes_file = \"{ROUTES_FILE}\"")));
    check_bird_settings(&bird_conf, "the DaemonSet's bird.conf");
    bird_parses(&bird_conf, "the DaemonSet's bird.conf", "bird-k8s");

    let caps = unit_caps();
    let Some(docs) = parse_yaml(&[repo(BGP_DAEMONSET)]) else {
        return;
    };
    let kinds: Vec<&str> = docs[0].iter().filter_map(|d| d["kind"].as_str()).collect();
    assert_eq!(kinds, ["ConfigMap", "DaemonSet"]);
    assert_eq!(
        docs[0][0]["data"]["lbd.toml"].as_str(),
        Some(lbd_toml.as_str())
    );
    assert_eq!(
        docs[0][0]["data"]["bird.conf"].as_str(),
        Some(bird_conf.as_str())
    );
    let spec = pod_spec(&docs[0][1]);
    check_pod(spec, "BGP DaemonSet", &caps);
    let names: Vec<&str> = spec["containers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names, ["lbd", "bird"]);
    // Both containers see the routes file's directory and BIRD's socket directory
    // through the same pod volume.
    for c in spec["containers"].as_array().unwrap() {
        let mounts: Vec<(String, String)> = c["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["name"].as_str().unwrap_or("").to_owned(),
                    m["mountPath"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect();
        for path in ["/var/lib/lbd", "/run/bird"] {
            assert!(
                mounts.iter().any(|(n, p)| n == "bgp" && p == path),
                "container {}: volume bgp at {path}: {mounts:?}",
                c["name"]
            );
        }
    }
    let bird = &spec["containers"][1];
    let command = bird["command"].to_string();
    assert!(
        command.contains("lbctl") && command.contains("touch") && command.contains("bird -f"),
        "the BIRD container waits for lbd, creates the include, runs BIRD: {command}"
    );
    assert!(
        bird["livenessProbe"].to_string().contains("lbctl"),
        "BIRD's liveness follows lbd"
    );
}

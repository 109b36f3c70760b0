//! End to end, as root, in network namespaces: real TCP from a client through the VIP
//! to real HTTP backends via the real lbd and XDP program (driver mode on veth).
//! Each test builds its own lab (tests/src/lab.rs) and removes it, also on failure.
//! The labs run one at a time: they share the machine's two cores.

use std::{sync::Mutex, time::Duration};

use lb_api::control::{Request, Response};
use lb_tests::lab::{Lab, CLIENT};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn lab_with(tag: &str, weights: [Option<u32>; 3]) -> Lab {
    let mut lab = Lab::up(tag);
    lab.write_config(&Lab::web_service(weights));
    lab.start_lbd();
    lab.wait_healthy(weights.iter().filter(|w| w.is_some()).count());
    lab
}

/// Backend (b1..b3) of `n` new connections from ports `from..`, per lbd's explain,
/// checked against the body each backend serves.
fn spread(lab: &Lab, from: u16, n: u16) -> Vec<String> {
    (from..from + n)
        .map(|port| {
            let predicted = lab.explain(port, true).expect("explain answers");
            let got = lab.curl(port, "/");
            assert_eq!(
                got, predicted,
                "client port {port}: explain said {predicted}, the response came from {got:?}"
            );
            got
        })
        .collect()
}

fn finished(child: std::process::Child) -> String {
    let out = child.wait_with_output().expect("curl finished");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const COMPLETE: &str = "1048576 200";

#[test]
fn dsr_forwards_as_maglev_says_and_replies_bypass_the_lb() {
    let _s = serial();
    let lab = lab_with("sp", [Some(1), Some(1), Some(1)]);
    let got = spread(&lab, 20000, 30);
    for b in ["b1", "b2", "b3"] {
        assert!(
            got.iter().any(|g| g == b),
            "{b} answered none of 30 requests: {got:?}"
        );
    }
    // Each backend saw the client's own address (no SNAT in DR).
    for i in 0..3 {
        assert!(
            lab.backend_log(i).contains(&format!("{CLIENT} - -")),
            "backend b{} log:\n{}",
            i + 1,
            lab.backend_log(i)
        );
    }
    // A 1 MiB download: the LB forwards only the client's side (ACKs), the MiB goes
    // straight from the backend to the client.
    let Some(Response::List { services }) = lab.ask(Request::List) else {
        panic!("list")
    };
    let before: u64 = services[0].backends.iter().map(|b| b.traffic.bytes).sum();
    assert_eq!(lab.curl(21000, "/big").len(), 1 << 20);
    let Some(Response::List { services }) = lab.ask(Request::List) else {
        panic!("list")
    };
    let after: u64 = services[0].backends.iter().map(|b| b.traffic.bytes).sum();
    assert!(after > before, "the LB forwarded the request");
    assert!(
        after - before < 200_000,
        "the LB carried {} bytes for a 1 MiB reply: replies must bypass it",
        after - before
    );
}

#[test]
fn a_failed_backend_is_avoided_and_rejoins_after_rise() {
    let _s = serial();
    let mut lab = lab_with("fa", [Some(1), Some(1), Some(1)]);
    // A long download on a flow to b1 runs through the whole episode.
    let port_b1 = (30000..31000)
        .find(|p| lab.explain(*p, true).as_deref() == Some("b1"))
        .expect("a b1 flow");
    let stream = lab.slow_download(port_b1, "150k");
    lab.stop_backend(1);
    lab.wait_healthy(2);
    let got = spread(&lab, 22000, 20);
    assert!(
        got.iter().all(|g| g != "b2"),
        "a down backend got new connections: {got:?}"
    );
    lab.start_backend(1);
    lab.wait_healthy(3);
    let got = spread(&lab, 23000, 30);
    assert!(got.iter().any(|g| g == "b2"), "b2 rejoined: {got:?}");
    assert_eq!(
        finished(stream),
        COMPLETE,
        "the stream to b1 survived b2's failure"
    );
}

#[test]
fn draining_keeps_the_open_connection_and_sends_new_ones_elsewhere() {
    let _s = serial();
    let lab = lab_with("dr", [Some(1), Some(1), Some(1)]);
    let port_b1 = (30000..31000)
        .find(|p| lab.explain(*p, true).as_deref() == Some("b1"))
        .expect("a b1 flow");
    let stream = lab.slow_download(port_b1, "200k");
    std::thread::sleep(Duration::from_millis(500));
    lab.write_config(&Lab::web_service([Some(0), Some(1), Some(1)]));
    assert!(
        matches!(lab.ask(Request::Reload), Some(Response::Done { .. })),
        "reload"
    );
    let got = spread(&lab, 24000, 30);
    assert!(
        got.iter().all(|g| g != "b1"),
        "a drained backend got new connections: {got:?}"
    );
    assert_eq!(
        finished(stream),
        COMPLETE,
        "the drained backend's open connection completed"
    );
}

#[test]
fn adding_a_backend_by_reload_breaks_no_established_connection() {
    let _s = serial();
    let lab = lab_with("ad", [Some(1), Some(1), None]);
    let streams: Vec<_> = (0..6)
        .map(|i| lab.slow_download(32000 + i, "250k"))
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    lab.write_config(&Lab::web_service([Some(1), Some(1), Some(1)]));
    assert!(
        matches!(lab.ask(Request::Reload), Some(Response::Done { .. })),
        "reload"
    );
    lab.wait_healthy(3);
    let got = spread(&lab, 25000, 30);
    assert!(
        got.iter().any(|g| g == "b3"),
        "the new backend takes new connections: {got:?}"
    );
    for s in streams {
        assert_eq!(
            finished(s),
            COMPLETE,
            "an established connection broke when a backend was added"
        );
    }
}

#[test]
fn kill_9_lbd_keeps_streams_and_a_new_lbd_adopts_without_a_gap() {
    let _s = serial();
    let mut lab = lab_with("k9", [Some(1), Some(1), Some(1)]);
    let stream = lab.slow_download(33000, "150k");
    std::thread::sleep(Duration::from_millis(500));
    let Some(Response::List { services: before }) = lab.ask(Request::List) else {
        panic!("list")
    };
    lab.kill_lbd();
    // With no lbd at all, new connections are still served.
    let got = (26000..26010).map(|p| lab.curl(p, "/")).collect::<Vec<_>>();
    assert!(
        got.iter().all(|g| g.starts_with('b')),
        "forwarding continued without lbd: {got:?}"
    );
    lab.start_lbd();
    assert!(
        lab.lbd_log(2).contains("adopting the pinned data plane"),
        "{}",
        lab.lbd_log(2)
    );
    assert!(
        lab.lbd_log(2).contains("adopted the pinned XDP link"),
        "{}",
        lab.lbd_log(2)
    );
    let Some(Response::List { services: after }) = lab.ask(Request::List) else {
        panic!("list")
    };
    let idx = |s: &Vec<lb_api::view::ServiceView>| {
        s[0].backends
            .iter()
            .map(|b| (b.address, b.index, b.state.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        idx(&before),
        idx(&after),
        "the new lbd kept every backend's index and state"
    );
    spread(&lab, 27000, 10);
    assert_eq!(
        finished(stream),
        COMPLETE,
        "the stream survived kill -9 and the restart"
    );
}

#[test]
fn a_bad_reload_changes_nothing_and_says_why() {
    let _s = serial();
    let lab = lab_with("br", [Some(1), Some(1), Some(1)]);
    let Some(Response::List { services: before }) = lab.ask(Request::List) else {
        panic!("list")
    };
    let good = std::fs::read_to_string(lab.config_path()).expect("config");
    std::fs::write(
        lab.config_path(),
        good.replace("port = 80", "port = 80\nbogus = 1"),
    )
    .expect("write");
    match lab.ask(Request::Reload) {
        Some(Response::Error { message }) => {
            assert!(
                message.contains(&format!("{}:", lab.config_path().display()))
                    && message.contains("bogus"),
                "{message}"
            );
        }
        other => panic!("a bad reload must be refused: {other:?}"),
    }
    let Some(Response::List { services: after }) = lab.ask(Request::List) else {
        panic!("list")
    };
    assert_eq!(before.len(), after.len());
    assert_eq!(before[0].backends.len(), after[0].backends.len());
    spread(&lab, 28000, 6);
}

fn stdout(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "lbctl failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn lbctl_answers_from_lbd_and_from_pinned_maps_when_lbd_is_gone() {
    let _s = serial();
    let mut lab = lab_with("ct", [Some(1), Some(1), Some(1)]);
    spread(&lab, 29000, 6);
    let list = stdout(&lab.lbctl(&["list", "--stats"]));
    assert!(
        list.contains("10.99.0.100:80") && list.contains("web"),
        "{list}"
    );
    for b in ["10.99.0.11", "10.99.0.12", "10.99.0.13"] {
        assert!(list.contains(b), "{list}");
    }
    let json: serde_json::Value =
        serde_json::from_str(&stdout(&lab.lbctl(&["--json", "list"]))).expect("list --json");
    let backends = json["services"][0]["backends"]
        .as_array()
        .expect("backends");
    assert_eq!(backends.len(), 3);
    assert!(
        backends
            .iter()
            .all(|b| b["state"] == "up" && b["mac"].is_string()),
        "{json}"
    );
    stdout(&lab.lbctl(&["health"]));
    let health: serde_json::Value =
        serde_json::from_str(&stdout(&lab.lbctl(&["--json", "health"]))).expect("health --json");
    let checked = health["backends"].as_array().expect("backends");
    assert_eq!(checked.len(), 3, "{health}");
    assert!(
        checked
            .iter()
            .all(|b| b["up"] == true && b["checks"].as_u64().unwrap_or(0) > 0),
        "{health}"
    );
    let status = stdout(&lab.lbctl(&["status"]));
    assert!(
        status.contains("eth0") && status.contains("forwarded_tx"),
        "{status}"
    );
    // explain agrees with where a real connection goes.
    let said = stdout(&lab.lbctl(&[
        "--json",
        "explain",
        "10.99.0.10:29500",
        "10.99.0.100:80/tcp",
        "--syn",
    ]));
    let said: serde_json::Value = serde_json::from_str(&said).expect("explain --json");
    let backend = said["backend"].as_str().expect("backend").to_string();
    let body = lab.curl(29500, "/");
    let index = ["10.99.0.11", "10.99.0.12", "10.99.0.13"]
        .iter()
        .position(|a| *a == backend)
        .expect("known backend");
    assert_eq!(body, format!("b{}", index + 1), "explain said {backend}");
    stdout(&lab.lbctl(&["conns"]));
    // Reload through lbctl.
    let out = lab.lbctl(&["reload"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // lbd gone: list and explain still answer, from the pinned maps.
    lab.kill_lbd();
    let out = lab.lbctl(&["list"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && err.contains("not running"), "{err}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("10.99.0.12"));
    let out = lab.lbctl(&["explain", "10.99.0.10:29500", "10.99.0.100:80/tcp", "--syn"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&backend),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(!lab.lbctl(&["health"]).status.success(), "health needs lbd");
    // detach removes the links and maps: XDP is gone from the interface.
    let out = lab.lbctl(&["detach", "--pin-dir", &lab.pin_dir().display().to_string()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!lab.pin_dir().exists());
    let link = lb_tests::netns::sh(&format!("ip -n {} link show eth0", lab.ns("lb")));
    assert!(!link.contains("prog/xdp"), "{link}");
}

#[test]
fn the_lb_host_itself_can_be_a_backend() {
    let _s = serial();
    let mut lab = Lab::up("lo");
    // The LB node also runs the service (an API server on a control-plane node).
    let root = lab.dir.join("lbweb");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("index.html"), "lb").unwrap();
    std::fs::write(root.join("healthz"), "ok").unwrap();
    let server = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &lab.ns("lb"),
            "python3",
            "-m",
            "http.server",
            "80",
            "--bind",
            "0.0.0.0",
        ])
        .current_dir(&root)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    lab.adopt_process(server);
    lb_tests::netns::sh(&format!(
        "ip -n {} addr replace 10.99.0.100/32 dev lo",
        lab.ns("lb")
    ));
    let mut config = Lab::web_service([Some(1), Some(1), Some(1)]);
    config.push_str("[[service.backend]]\naddress = \"10.99.0.2\"\nweight = 1\n");
    lab.write_config(&config);
    lab.start_lbd();
    lab.wait_healthy(4);
    let got: Vec<String> = (41000..41040u16)
        .map(|port| {
            // Each backend serves its own name; the LB node's serves "lb".
            let expected = lab
                .explain(port, true)
                .unwrap_or_else(|| panic!("port {port}: explain names no backend"));
            let body = lab.curl(port, "/");
            assert_eq!(
                body, expected,
                "port {port}: answered by the backend explain named"
            );
            body
        })
        .collect();
    assert!(
        got.iter().any(|g| g == "lb"),
        "the LB's own server got connections: {got:?}"
    );
    assert!(
        got.iter().all(|g| !g.is_empty()),
        "every request answered: {got:?}"
    );
}

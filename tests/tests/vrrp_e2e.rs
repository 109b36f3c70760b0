//! VRRP end to end, as root, in network namespaces (tests/src/lab.rs with two LB nodes):
//! two lbd nodes fail over without losing established connections (identical Maglev
//! mappings), and lbd interoperates with real keepalived 2.2.7 as the other node.

use std::{
    process::Child,
    sync::Mutex,
    time::{Duration, Instant},
};

use lb_api::{
    control::{Request, Response},
    view::VrrpView,
};
use lb_tests::{
    keepalived::Keepalived,
    lab::{wait_until, Lab},
    netns::sh,
};

static SERIAL: Mutex<()> = Mutex::new(());
const COMPLETE: &str = "1048576 200";

fn vrrp_instance(extra: &str, priority: u8) -> String {
    format!(
        "[[vrrp]]\nname = \"VI_1\"\ninterface = \"eth0\"\nvirtual_router_id = 51\npriority = {priority}\n\
         virtual_addresses = [\"10.99.0.100/24\"]\n{extra}\n"
    )
}

fn vrrp_state(lab: &Lab, node: &str) -> Option<VrrpView> {
    match lab.ask_on(node, Request::Vrrp)? {
        Response::Vrrp { instances } => instances.into_iter().next(),
        _ => None,
    }
}

fn state_is(lab: &Lab, node: &str, state: &str) -> bool {
    vrrp_state(lab, node).is_some_and(|v| v.state == state)
}

fn vip_on(lab: &Lab, node: &str) -> bool {
    sh(&format!("ip -n {} addr show dev eth0", lab.ns(node))).contains("10.99.0.100/24")
}

fn finished(child: Child) -> String {
    let out = child.wait_with_output().expect("curl finished");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn all_ok(lab: &Lab, from: u16, n: u16) -> Vec<String> {
    (from..from + n).map(|p| lab.curl(p, "/")).collect()
}

#[test]
fn two_lbd_nodes_fail_over_without_losing_established_connections() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut lab = Lab::up_with("vf", 2);
    let v3 = "version = 3\nadvert_interval = \"100ms\"\n";
    let web = Lab::web_service([Some(1), Some(1), Some(1)]);
    lab.write_config_for("lb", &format!("{}{web}", vrrp_instance(v3, 150)));
    lab.write_config_for("lb2", &format!("{}{web}", vrrp_instance(v3, 100)));
    lab.start_lbd_on("lb");
    lab.start_lbd_on("lb2");
    wait_until(Duration::from_secs(10), "lb MASTER, lb2 BACKUP", || {
        state_is(&lab, "lb", "MASTER") && state_is(&lab, "lb2", "BACKUP")
    });
    lab.wait_healthy_on("lb", 3);
    lab.wait_healthy_on("lb2", 3);
    assert!(
        vip_on(&lab, "lb") && !vip_on(&lab, "lb2"),
        "only the master holds the VIP"
    );
    let got = all_ok(&lab, 35000, 10);
    assert!(
        got.iter().all(|g| g.starts_with('b')),
        "through the master: {got:?}"
    );

    // Long-lived connections, then the master node dies (lbd killed, link down).
    let streams: Vec<Child> = (0..4)
        .map(|i| lab.slow_download(36000 + i, "200k"))
        .collect();
    std::thread::sleep(Duration::from_millis(800));
    let t = Instant::now();
    lab.kill_lbd_on("lb");
    sh(&format!("ip -n {} link set eth0 down", lab.ns("lb")));
    wait_until(Duration::from_secs(5), "lb2 MASTER", || {
        state_is(&lab, "lb2", "MASTER")
    });
    let takeover = t.elapsed();
    assert!(vip_on(&lab, "lb2"), "the backup owns the VIP");
    assert!(
        takeover < Duration::from_secs(2),
        "v3 at 100 ms took over in {takeover:?}"
    );
    let got = all_ok(&lab, 37000, 10);
    assert!(
        got.iter().all(|g| g.starts_with('b')),
        "new connections through the new master: {got:?}"
    );
    let lost = streams
        .into_iter()
        .map(finished)
        .filter(|r| r != COMPLETE)
        .count();
    assert_eq!(lost, 0, "established connections lost in the failover");
}

const KEEPALIVED_V2: &str = r#"
global_defs {
    router_id lb2
}
vrrp_instance VI_1 {
    state BACKUP
    interface eth0
    virtual_router_id 51
    priority 100
    advert_int 1
    authentication {
        auth_type PASS
        auth_pass secret12
    }
    virtual_ipaddress {
        10.99.0.100/24 dev eth0
    }
}
"#;

#[test]
fn lbd_and_keepalived_elect_hand_over_and_preempt() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut lab = Lab::up_with("vk", 2);
    let web = Lab::web_service([Some(1), Some(1), Some(1)]);
    lab.write_config_for(
        "lb",
        &format!(
            "{}{web}",
            vrrp_instance("version = 2\nauth_pass = \"secret12\"\n", 150)
        ),
    );
    // keepalived first: it becomes master alone, then lbd (higher priority) preempts.
    let keepalived = Keepalived::start(&lab.ns("lb2"), "e2e-v2", KEEPALIVED_V2);
    wait_until(Duration::from_secs(10), "keepalived MASTER alone", || {
        vip_on(&lab, "lb2")
    });
    lab.start_lbd_on("lb");
    wait_until(Duration::from_secs(10), "lbd preempts keepalived", || {
        state_is(&lab, "lb", "MASTER") && !vip_on(&lab, "lb2")
    });
    assert!(vip_on(&lab, "lb"));
    lab.wait_healthy_on("lb", 3);
    let got = all_ok(&lab, 38000, 6);
    assert!(got.iter().all(|g| g.starts_with('b')), "{got:?}");

    // Graceful stop: priority 0, keepalived takes over within its skew time.
    let t = Instant::now();
    lab.stop_lbd_on("lb");
    wait_until(Duration::from_secs(5), "keepalived takes over", || {
        vip_on(&lab, "lb2")
    });
    let handover = t.elapsed();
    assert!(
        handover < Duration::from_millis(2500),
        "graceful handover took {handover:?}"
    );
    assert!(!vip_on(&lab, "lb"), "the stopping master removed its VIP");

    // lbd returns with the higher priority and preempts.
    lab.start_lbd_on("lb");
    wait_until(Duration::from_secs(10), "lbd preempts again", || {
        state_is(&lab, "lb", "MASTER") && !vip_on(&lab, "lb2")
    });
    let view = vrrp_state(&lab, "lb").expect("vrrp view");
    assert!(view.adverts_received > 0, "lbd heard keepalived: {view:?}");
    assert_eq!(
        view.dropped.iter().map(|(_, n)| n).sum::<u64>(),
        0,
        "lbd dropped none of keepalived's adverts: {view:?}"
    );
    let log = keepalived.log();
    for bad in ["invalid", "Invalid", "bad ", "mismatch", "error"] {
        assert!(!log.contains(bad), "keepalived complained ({bad}):\n{log}");
    }
}

const KEEPALIVED_V3_UNICAST_NOPREEMPT: &str = r#"
global_defs {
    router_id lb2
}
vrrp_instance VI_1 {
    version 3
    state BACKUP
    nopreempt
    interface eth0
    virtual_router_id 51
    priority 200
    advert_int 0.1
    unicast_src_ip 10.99.0.3
    unicast_peer {
        10.99.0.2
    }
    virtual_ipaddress {
        10.99.0.100/24 dev eth0
    }
}
"#;

#[test]
fn keepalived_v3_unicast_with_nopreempt_does_not_take_over_a_live_lbd_master() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut lab = Lab::up_with("vu", 2);
    let web = Lab::web_service([Some(1), Some(1), Some(1)]);
    let unicast = "version = 3\nadvert_interval = \"100ms\"\nunicast_source = \"10.99.0.2\"\nunicast_peers = [\"10.99.0.3\"]\n";
    lab.write_config_for("lb", &format!("{}{web}", vrrp_instance(unicast, 100)));
    lab.start_lbd_on("lb");
    wait_until(Duration::from_secs(10), "lbd MASTER alone", || {
        state_is(&lab, "lb", "MASTER") && vip_on(&lab, "lb")
    });
    // keepalived with a higher priority but nopreempt stays backup behind a live master.
    let keepalived = Keepalived::start(&lab.ns("lb2"), "e2e-v3", KEEPALIVED_V3_UNICAST_NOPREEMPT);
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        state_is(&lab, "lb", "MASTER") && vip_on(&lab, "lb") && !vip_on(&lab, "lb2"),
        "nopreempt respected"
    );
    // A backup sends nothing; that keepalived (priority 200) never took over shows it
    // accepts lbd's v3 unicast adverts (pseudo-header checksum) as a live master's.
    let view = vrrp_state(&lab, "lb").expect("view");
    assert_eq!(
        view.dropped.iter().map(|(_, n)| n).sum::<u64>(),
        0,
        "{view:?}"
    );
    // lbd dies (kill -9, link down): keepalived takes over within Master_Down_Interval.
    let t = Instant::now();
    lab.kill_lbd_on("lb");
    sh(&format!("ip -n {} link set eth0 down", lab.ns("lb")));
    wait_until(Duration::from_secs(5), "keepalived takes over", || {
        vip_on(&lab, "lb2")
    });
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "v3 at 100 ms: {:?}",
        t.elapsed()
    );
    let log = keepalived.log();
    for bad in ["invalid", "Invalid", "bad ", "mismatch", "error"] {
        assert!(!log.contains(bad), "keepalived complained ({bad}):\n{log}");
    }
}

#[test]
fn tracking_a_failing_service_moves_mastership_and_back() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut lab = Lab::up_with("vt", 2);
    let v3 = "version = 3\nadvert_interval = \"100ms\"\n";
    let web = Lab::web_service([Some(1), Some(1), Some(1)]);
    let tracked = format!("{v3}track = [{{ service = \"web\", weight = -60 }}]\n");
    lab.write_config_for("lb", &format!("{}{web}", vrrp_instance(&tracked, 150)));
    lab.write_config_for("lb2", &format!("{}{web}", vrrp_instance(v3, 100)));
    lab.start_lbd_on("lb");
    lab.start_lbd_on("lb2");
    wait_until(Duration::from_secs(10), "lb MASTER", || {
        state_is(&lab, "lb", "MASTER") && state_is(&lab, "lb2", "BACKUP")
    });
    lab.wait_healthy_on("lb", 3);
    let out = lab.lbctl_on("lb", &["vrrp"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("VI_1") && text.contains("MASTER"),
        "{text}"
    );
    // Every backend fails: the tracked service is down, lb's priority drops to 90.
    for i in 0..3 {
        lab.stop_backend(i);
    }
    wait_until(Duration::from_secs(10), "lb2 preempts", || {
        state_is(&lab, "lb2", "MASTER") && state_is(&lab, "lb", "BACKUP")
    });
    let view = vrrp_state(&lab, "lb").expect("view");
    assert_eq!((view.priority, view.base_priority), (90, 150), "{view:?}");
    assert!(view.tracking.iter().any(|t| t.contains("web")), "{view:?}");
    assert!(vip_on(&lab, "lb2") && !vip_on(&lab, "lb"));
    // They come back: lb's priority returns to 150 and it preempts.
    for i in 0..3 {
        lab.start_backend(i);
    }
    wait_until(Duration::from_secs(10), "lb preempts back", || {
        state_is(&lab, "lb", "MASTER") && state_is(&lab, "lb2", "BACKUP")
    });
    assert_eq!(vrrp_state(&lab, "lb").expect("view").priority, 150);
}

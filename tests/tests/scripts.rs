//! The operator scripts under `scripts/` against a real kernel: `realserver.sh` in a
//! fresh network namespace (idempotent `up`, `down` restoring the sysctls it found)
//! and `lab.sh` (namespaces present after `up`, all gone after `down`). Needs root;
//! everything happens in namespaces the test creates and removes, also on failure.

use std::process::Command;

use lb_tests::netns::{sh, Netns};

const REALSERVER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/realserver.sh");
const LAB: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/lab.sh");

const SYSCTLS: [&str; 4] = [
    "net/ipv4/conf/all/arp_ignore",
    "net/ipv4/conf/lo/arp_ignore",
    "net/ipv4/conf/all/arp_announce",
    "net/ipv4/conf/lo/arp_announce",
];

fn sysctls(ns: &Netns) -> Vec<String> {
    SYSCTLS
        .iter()
        .map(|k| ns.exec(&format!("cat /proc/sys/{k}")).trim().to_owned())
        .collect()
}

fn lo_addrs(ns: &Netns) -> String {
    ns.exec("ip -o addr show dev lo")
}

#[test]
fn realserver_up_is_idempotent_and_down_restores() {
    let ns = Netns::new("rsrv");
    // Non-default starting values, so restoring is distinguishable from resetting.
    ns.exec("echo 1 > /proc/sys/net/ipv4/conf/all/arp_announce");
    ns.exec("echo 2 > /proc/sys/net/ipv4/conf/lo/arp_ignore");
    let before = sysctls(&ns);
    let inode = ns.exec("stat -L -c %i /proc/self/ns/net").trim().to_owned();
    let state_dir = format!("/run/lbd-realserver/{inode}");

    for _ in 0..2 {
        ns.exec(&format!("{REALSERVER} up 10.98.0.100 fd98::100"));
    }
    let lo = lo_addrs(&ns);
    assert_eq!(lo.matches("10.98.0.100/32").count(), 1, "{lo}");
    assert_eq!(lo.matches("fd98::100/128").count(), 1, "{lo}");
    assert_eq!(sysctls(&ns), ["1", "1", "2", "2"]);
    let status = ns.exec(&format!("{REALSERVER} status"));
    assert!(status.contains("10.98.0.100/32"), "{status}");
    assert!(std::path::Path::new(&state_dir).is_dir());

    // Removing one of two VIPs keeps the sysctls; removing the last restores them.
    ns.exec(&format!("{REALSERVER} down 10.98.0.100"));
    assert!(!lo_addrs(&ns).contains("10.98.0.100/32"));
    assert_eq!(sysctls(&ns), ["1", "1", "2", "2"]);
    ns.exec(&format!("{REALSERVER} down fd98::100"));
    let lo = lo_addrs(&ns);
    assert!(
        !lo.contains("10.98.0.100") && !lo.contains("fd98::100"),
        "{lo}"
    );
    assert_eq!(sysctls(&ns), before, "sysctls restored");
    assert!(!std::path::Path::new(&state_dir).exists(), "state removed");
    // down again: nothing to do, still fine.
    ns.exec(&format!("{REALSERVER} down 10.98.0.100"));

    // Bad arguments: usage, exit 2; a bad address: exit 1.
    for (args, code) in [("", 2), ("up", 2), ("frob", 2), ("up 10.98.0", 1)] {
        let out = Command::new("ip")
            .args(["netns", "exec", &ns.name, REALSERVER])
            .args(args.split_whitespace())
            .output()
            .expect("run realserver.sh");
        assert_eq!(out.status.code(), Some(code), "realserver.sh {args}");
        assert!(!out.stderr.is_empty(), "realserver.sh {args} explains");
    }
}

/// Runs `lab.sh down` on drop, so a failing test leaves no namespaces behind.
struct Lab {
    prefix: String,
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = Command::new(LAB).args(["down", &self.prefix]).output();
    }
}

fn lab_namespaces(prefix: &str) -> Vec<String> {
    let list = sh("ip netns list");
    let mut names: Vec<String> = list
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(&format!("{prefix}-")))
        .map(str::to_owned)
        .collect();
    names.sort();
    names
}

#[test]
fn lab_up_and_down() {
    let lab = Lab {
        prefix: format!("lbs{}", std::process::id()),
    };
    let p = &lab.prefix;
    let mut want: Vec<String> = ["br", "client", "lb", "b1", "b2", "b3"]
        .iter()
        .map(|n| format!("{p}-{n}"))
        .collect();
    want.sort();

    for _ in 0..2 {
        sh(&format!("{LAB} up {p}"));
        assert_eq!(lab_namespaces(p), want);
    }
    for b in ["b1", "b2", "b3"] {
        let lo = sh(&format!("ip -n {p}-{b} -o addr show dev lo"));
        assert_eq!(lo.matches("10.99.0.100/32").count(), 1, "{b}: {lo}");
    }
    let lb = sh(&format!("ip -n {p}-lb -o addr show dev eth0"));
    assert!(lb.contains("10.99.0.2/24"), "{lb}");
    let route = sh(&format!("ip -n {p}-client route show 10.99.0.100"));
    assert!(route.contains("via 10.99.0.2"), "{route}");
    let status = sh(&format!("{LAB} status {p}"));
    assert!(!status.contains("missing"), "{status}");

    for _ in 0..2 {
        sh(&format!("{LAB} down {p}"));
        assert!(lab_namespaces(p).is_empty());
    }
}

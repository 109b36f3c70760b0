//! Tests of the keepalived importer: the real configs of the seed blog posts
//! (`tests/fixtures/keepalived/`), a table of small snippets with the TOML and
//! warnings each must produce, and `include` handling on real files.
//!
//! Every conversion is also checked with `config::parse`, the `lbd --check-config`
//! code path.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use super::*;
use crate::{CheckKind, Config, Scheduler, Track};

const SEED000_MASTER: &str =
    include_str!("../../../../tests/fixtures/keepalived/seed000_master.conf");
const SEED000_BACKUP: &str =
    include_str!("../../../../tests/fixtures/keepalived/seed000_backup.conf");
const SEED002: &str = include_str!("../../../../tests/fixtures/keepalived/seed002.conf");
const SEED004: &str = include_str!("../../../../tests/fixtures/keepalived/seed004.conf");
const SEED004_UNICAST: &str =
    include_str!("../../../../tests/fixtures/keepalived/seed004_unicast.conf");

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

/// Converts `text` as `keepalived.conf`; panics on an error.
fn conv(text: &str) -> Imported {
    match import_str(text, Path::new("keepalived.conf")) {
        Ok(i) => i,
        Err(e) => panic!("conversion failed: {e}"),
    }
}

/// The converted TOML parsed and validated by lbd's own loader, as the importer
/// checks it: without reading the key file a converted `[sync]` names (the operator
/// creates it afterwards; `sync_with_a_key_file_passes_check_config` reads it).
fn check(imported: &Imported) -> Config {
    match crate::parse_with(
        &imported.toml,
        Path::new("out.toml"),
        crate::KeyFiles::NotRead,
    ) {
        Ok(c) => c,
        Err(e) => panic!("lbd refuses the output: {e}\n{}", imported.toml),
    }
}

/// The warning about `option` whose reason contains `needle`, if any.
fn warning<'a>(imported: &'a Imported, option: &str, needle: &str) -> Option<&'a Warning> {
    imported
        .warnings
        .iter()
        .find(|w| w.option == option && w.reason.contains(needle))
}

#[track_caller]
fn assert_warning(imported: &Imported, option: &str, needle: &str) -> usize {
    match warning(imported, option, needle) {
        Some(w) => w.line,
        None => panic!(
            "no warning {option}: ...{needle}... among:\n{}",
            list(imported)
        ),
    }
}

fn list(imported: &Imported) -> String {
    imported
        .warnings
        .iter()
        .map(|w| format!("  {w}\n"))
        .collect()
}

// ----- the seed configs -----

#[test]
fn seed000_master_lvs_dr_with_vrrp() {
    let got = import_str(SEED000_MASTER, Path::new("seed000_master.conf")).expect("converts");
    let cfg = check(&got);

    assert_eq!(cfg.global.node_name, "LVS_DR01");
    assert_eq!(cfg.interfaces.len(), 1);
    assert_eq!(cfg.interfaces[0].name, "eth0");

    assert_eq!(cfg.vrrp.len(), 1);
    let v = &cfg.vrrp[0];
    assert_eq!(v.name, "LVS_DR");
    assert_eq!(v.interface, "eth0");
    assert_eq!(v.vrid, 50);
    assert_eq!(v.priority, 150);
    assert_eq!(v.version.number(), 2);
    assert_eq!(v.advert_interval, Duration::from_secs(5));
    assert!(v.preempt);
    // keepalived put the first 8 bytes of "adminroot888" on the wire.
    assert_eq!(v.auth_pass.as_deref(), Some("adminroo"));
    assert_eq!(v.unicast_source, Some(ip("192.168.100.44")));
    assert!(v.unicast_peers.is_empty());
    assert_eq!(v.virtual_addresses, vec![(ip("192.168.100.40"), 24)]);

    assert_eq!(cfg.services.len(), 1);
    let s = &cfg.services[0];
    assert_eq!(s.name, "vs-192.168.100.40-6443");
    assert_eq!(s.vip, ip("192.168.100.40"));
    assert_eq!(s.port, 6443);
    assert_eq!(s.scheduler, Scheduler::Maglev);
    let backends: Vec<(IpAddr, u32)> = s.backends.iter().map(|b| (b.address, b.weight)).collect();
    assert_eq!(
        backends,
        vec![
            (ip("192.168.100.41"), 1),
            (ip("192.168.100.42"), 1),
            (ip("192.168.100.43"), 1)
        ]
    );
    assert_eq!(s.health.kind, CheckKind::Tcp);
    assert_eq!(s.health.interval, Duration::from_secs(10));
    assert_eq!(s.health.timeout, Duration::from_secs(3));
    assert_eq!((s.health.rise, s.health.fall), (1, 2));
    assert!(s.health.start_up);

    assert_eq!(assert_warning(&got, "auth_pass", "truncated"), 23);
    assert_eq!(assert_warning(&got, "lvs_sched", "\"rr\""), 34);
    assert_eq!(assert_warning(&got, "state", "start hint"), 15);
    // persistence_timeout is commented out in this file: nothing to report.
    assert!(!got
        .warnings
        .iter()
        .any(|w| w.option == "persistence_timeout"));
    assert_eq!(got.warnings.len(), 3, "{}", list(&got));
    assert_eq!(
        got.warnings[0].to_string(),
        "seed000_master.conf:15: state: state MASTER is a start hint; lbd elects: every instance starts as backup (an address owner, priority 255, as master) and the highest priority wins: not carried over"
    );
    // The header repeats the warnings for whoever reads the file later.
    assert!(got.toml.contains("#   seed000_master.conf:23: auth_pass:"));
}

#[test]
fn seed000_backup_differs_where_the_files_differ() {
    let master = check(&conv(SEED000_MASTER));
    let got = conv(SEED000_BACKUP);
    let backup = check(&got);
    assert_eq!(backup.global.node_name, "LVS_DR02");
    let v = &backup.vrrp[0];
    assert_eq!((v.vrid, v.priority), (50, 100));
    assert_eq!(v.auth_pass.as_deref(), Some("adminroo"));
    assert_eq!(v.unicast_source, Some(ip("192.168.100.45")));
    assert_eq!(v.virtual_addresses, master.vrrp[0].virtual_addresses);
    assert_eq!(backup.services, master.services);
    assert_warning(&got, "state", "state BACKUP is a start hint");
}

#[test]
fn seed002_vrrp_with_a_tracked_script() {
    let got = conv(SEED002);
    let cfg = check(&got);
    assert_eq!(cfg.global.node_name, "LVS_DEVEL");
    assert_eq!(cfg.interfaces[0].name, "br0");
    assert!(cfg.services.is_empty());
    let v = &cfg.vrrp[0];
    assert_eq!(v.name, "VI_1");
    assert_eq!((v.vrid, v.priority), (51, 101));
    assert_eq!(v.auth_pass.as_deref(), Some("42"));
    assert_eq!(v.advert_interval, Duration::from_secs(1));
    assert_eq!(v.virtual_addresses, vec![(ip("10.150.0.170"), 32)]);
    assert_eq!(
        v.track,
        vec![Track::Script {
            script: "/etc/keepalived/check_apiserver.sh".into(),
            interval: Duration::from_secs(3),
            timeout: Duration::from_secs(3),
            weight: -2,
            fall: 10,
            rise: 2,
        }]
    );
    assert_warning(&got, "state", "start hint");
    assert_eq!(got.warnings.len(), 1, "{}", list(&got));
}

#[test]
fn seed004_configmap() {
    let got = conv(SEED004);
    let cfg = check(&got);
    assert_eq!(cfg.global.node_name, "kube-apiserver");
    let v = &cfg.vrrp[0];
    assert_eq!(v.name, "VI_API");
    assert_eq!((v.vrid, v.priority), (51, 100));
    assert_eq!(v.virtual_addresses, vec![(ip("192.168.1.100"), 24)]);
    // keepalived reads "YourStrongPass123!" as "YourStrongPass123" (the "!" starts a
    // comment) and sends its first 8 bytes.
    assert_eq!(v.auth_pass.as_deref(), Some("YourStro"));
    assert_warning(&got, "auth_pass", "17 bytes");
    // keepalived ignores preempt_delay with state MASTER.
    assert_eq!(v.preempt_delay, Duration::ZERO);
    assert_warning(&got, "preempt_delay", "state MASTER");
    assert_eq!(
        v.track,
        vec![Track::Script {
            script: "/usr/local/bin/health_check.sh".into(),
            interval: Duration::from_secs(2),
            timeout: Duration::from_secs(2),
            weight: -5,
            fall: 2,
            rise: 1,
        }]
    );
    assert_warning(&got, "script_user", "own user");
    assert_warning(&got, "enable_script_security", "own user");
    assert_warning(&got, "state", "start hint");
}

#[test]
fn seed004_unicast_fragment() {
    let got = conv(SEED004_UNICAST);
    let cfg = check(&got);
    let v = &cfg.vrrp[0];
    assert_eq!(v.unicast_source, Some(ip("10.0.0.10")));
    assert_eq!(v.unicast_peers, vec![ip("10.0.0.11"), ip("10.0.0.12")]);
    // chk_apiserver is defined in the other version of the file only.
    assert!(v.track.is_empty());
    assert_warning(&got, "track_script", "no vrrp_script chk_apiserver");
    assert_eq!(v.auth_pass.as_deref(), Some("YourStro"));
}

#[test]
fn every_seed_fixture_converts_and_validates() {
    for (name, text) in [
        ("seed000_master.conf", SEED000_MASTER),
        ("seed000_backup.conf", SEED000_BACKUP),
        ("seed002.conf", SEED002),
        ("seed004.conf", SEED004),
        ("seed004_unicast.conf", SEED004_UNICAST),
    ] {
        let got = import_str(text, Path::new(name)).expect("converts");
        check(&got);
        for w in &got.warnings {
            assert_eq!(w.file, Path::new(name));
            assert!(
                w.line > 0 && !w.option.is_empty() && !w.reason.is_empty(),
                "{w}"
            );
        }
    }
}

// ----- snippets -----

/// One snippet: keepalived text, TOML fragments the output must contain, and
/// warnings (option, part of the reason) it must report.
struct Case {
    name: &'static str,
    conf: &'static str,
    toml: &'static [&'static str],
    not_toml: &'static [&'static str],
    warnings: &'static [(&'static str, &'static str)],
}

const VS_HEAD: &str = "virtual_server 10.0.0.100 80 {\n lb_kind DR\n";

const CASES: &[Case] = &[
    Case {
        name: "nopreempt on a backup",
        conf: "vrrp_instance VI { state BACKUP\n interface eth1\n virtual_router_id 7\n priority 90\n nopreempt\n virtual_ipaddress { 10.0.0.1/24 } }",
        toml: &["preempt = false", "priority = 90", "virtual_router_id = 7", "interface = \"eth1\"", "name = \"eth1\""],
        not_toml: &[],
        warnings: &[("state", "start hint")],
    },
    Case {
        name: "nopreempt with state MASTER is ignored by keepalived",
        conf: "vrrp_instance VI { state MASTER\n interface eth0\n virtual_router_id 7\n priority 90\n nopreempt\n virtual_ipaddress { 10.0.0.1 } }",
        toml: &["preempt = true"],
        not_toml: &["preempt = false"],
        warnings: &[("nopreempt", "state MASTER")],
    },
    Case {
        name: "state MASTER without priority is the address owner",
        conf: "vrrp_instance VI { state MASTER\n interface eth0\n virtual_router_id 7\n virtual_ipaddress { 10.0.0.1 } }",
        toml: &["priority = 255"],
        not_toml: &[],
        warnings: &[("state", "priority 255")],
    },
    Case {
        name: "unicast peers",
        conf: "vrrp_instance VI {\n interface eth0\n virtual_router_id 9\n unicast_src_ip 10.0.0.10\n unicast_peer {\n  10.0.0.11\n  10.0.0.12 min_ttl 250\n  10.0.0.11\n }\n virtual_ipaddress { 10.0.0.1/24 }\n}",
        toml: &["unicast_source = \"10.0.0.10\"\n", "unicast_peers = [\"10.0.0.11\", \"10.0.0.12\"]"],
        not_toml: &["mcast_src_ip"],
        warnings: &[("unicast_peer", "min_ttl 250"), ("unicast_peer", "listed twice")],
    },
    Case {
        name: "mcast_src_ip is the advert source",
        conf: "vrrp_instance VI { interface eth0\n virtual_router_id 9\n mcast_src_ip 10.0.0.10\n virtual_ipaddress { 10.0.0.1 } }",
        toml: &["unicast_source = \"10.0.0.10\"   # keepalived mcast_src_ip"],
        not_toml: &["unicast_peers"],
        warnings: &[],
    },
    Case {
        name: "password longer than 8 bytes",
        conf: "vrrp_instance VI { interface eth0\n virtual_router_id 9\n authentication {\n auth_type PASS\n auth_pass 0123456789\n }\n virtual_ipaddress { 10.0.0.1 } }",
        toml: &["auth_pass = \"01234567\""],
        not_toml: &["0123456789"],
        warnings: &[("auth_pass", "silently truncated")],
    },
    Case {
        name: "password with version 3",
        conf: "vrrp_instance VI { interface eth0\n virtual_router_id 9\n version 3\n advert_int 0.5\n authentication {\n auth_type PASS\n auth_pass secret\n }\n virtual_ipaddress { 10.0.0.1 } }",
        toml: &["version = 3", "advert_interval = \"500ms\""],
        not_toml: &["auth_pass"],
        warnings: &[("auth_pass", "version 3")],
    },
    Case {
        name: "AH authentication",
        conf: "vrrp_instance VI { interface eth0\n virtual_router_id 9\n authentication {\n auth_type AH\n auth_pass secret\n }\n virtual_ipaddress { 10.0.0.1 } }",
        toml: &[],
        not_toml: &["auth_pass"],
        warnings: &[("auth_type", "AH")],
    },
    Case {
        name: "fractional advert_int with version 2 is rounded",
        conf: "vrrp_instance VI { interface eth0\n virtual_router_id 9\n advert_int 1.6\n virtual_ipaddress { 10.0.0.1 } }",
        toml: &["advert_interval = \"2s\"", "version = 2"],
        not_toml: &[],
        warnings: &[("advert_int", "2s")],
    },
    Case {
        name: "global vrrp_version and garp defaults",
        conf: "global_defs { vrrp_version 3\n vrrp_garp_master_delay 2\n vrrp_garp_master_repeat 3 }\nvrrp_instance VI { interface eth0\n virtual_router_id 9\n virtual_ipaddress { 10.0.0.1 } }",
        toml: &["version = 3", "garp_master_delay = \"2s\"", "garp_master_repeat = 3"],
        not_toml: &[],
        warnings: &[],
    },
    Case {
        name: "IPv6 instance is version 3",
        conf: "vrrp_instance V6 { interface eth0\n virtual_router_id 9\n version 2\n virtual_ipaddress { 2001:db8::1/64 } }",
        toml: &["version = 3", "virtual_addresses = [\"2001:db8::1/64\"]"],
        not_toml: &[],
        warnings: &[("version", "IPv4 only")],
    },
    Case {
        name: "virtual addresses: dev, label, family, duplicates",
        conf: "vrrp_instance VI { interface eth0\n virtual_router_id 9\n virtual_ipaddress {\n 10.0.0.1/24 dev eth1 label eth1:vip\n 2001:db8::1\n 10.0.0.1\n 10.0.0.2/33\n 10.0.0.3 scope global\n } }",
        toml: &["virtual_addresses = [\"10.0.0.1/24\", \"10.0.0.3/32\"]"],
        not_toml: &[],
        warnings: &[("dev", "not on eth1"), ("label", "eth1:vip"), ("virtual_ipaddress", "one family"), ("virtual_ipaddress", "listed twice"), ("virtual_ipaddress", "prefix length"), ("scope", "global")],
    },
    Case {
        name: "track_script weight override, script arguments, timeout",
        conf: "vrrp_script chk { script \"/usr/bin/chk --port 80\"\n interval 5\n timeout 9\n weight 10 }\nvrrp_instance VI { interface eth0\n virtual_router_id 9\n virtual_ipaddress { 10.0.0.1 }\n track_script {\n chk weight -20\n } }",
        toml: &["{ script = \"/usr/bin/chk\", interval = \"5s\", timeout = \"5s\", weight = -20, fall = 1, rise = 1 }"],
        not_toml: &["--port"],
        warnings: &[("script", "[\"--port\", \"80\"]"), ("timeout", "timeout = interval")],
    },
    Case {
        name: "reversed weights and unused scripts",
        conf: "vrrp_script a { script /bin/a\n weight 5 reverse }\nvrrp_script b { script /bin/b }\nvrrp_instance VI { interface eth0\n virtual_router_id 9\n virtual_ipaddress { 10.0.0.1 }\n track_script { a } }",
        toml: &[],
        not_toml: &["track ="],
        warnings: &[("track_script", "reverse"), ("vrrp_script", "b is not tracked"), ("vrrp_script", "a is not tracked")],
    },
    Case {
        name: "notify scripts",
        conf: "vrrp_instance VI { interface eth0\n virtual_router_id 9\n virtual_ipaddress { 10.0.0.1 }\n notify_master \"/etc/ka/master.sh up now\"\n notify_backup /etc/ka/backup.sh\n notify_fault /etc/ka/fault.sh\n notify /etc/ka/notify.sh\n notify_stop /etc/ka/stop.sh }",
        toml: &["notify_master = \"/etc/ka/master.sh\"", "notify_backup = \"/etc/ka/backup.sh\"", "notify_fault = \"/etc/ka/fault.sh\"", "notify = \"/etc/ka/notify.sh\""],
        not_toml: &["stop.sh"],
        warnings: &[("notify_master", "[\"up\", \"now\"]"), ("notify_stop", "not carried over")],
    },
    Case {
        name: "track_interface and other instance options",
        conf: "vrrp_instance VI { interface eth0\n virtual_router_id 9\n virtual_ipaddress { 10.0.0.1 }\n track_interface { eth1 }\n use_vmac\n smtp_alert\n garp_master_delay 1\n garp_master_repeat 0\n frobnicate 3 }",
        toml: &["garp_master_delay = \"1s\"", "garp_master_repeat = 1"],
        not_toml: &[],
        warnings: &[("track_interface", "own interface"), ("use_vmac", "MAC"), ("smtp_alert", "e-mail"), ("garp_master_repeat", "uses 1"), ("frobnicate", "not carried over")],
    },
    Case {
        name: "instance without virtual addresses",
        conf: "vrrp_instance VI { interface eth0\n virtual_router_id 9 }",
        toml: &["name = \"eth0\""],
        not_toml: &["[[vrrp]]"],
        warnings: &[("vrrp_instance", "no usable virtual_ipaddress"), ("interface", "eth0")],
    },
    Case {
        name: "same VRID twice on one interface",
        conf: "vrrp_instance A { interface eth0\n virtual_router_id 9\n virtual_ipaddress { 10.0.0.1 } }\nvrrp_instance B { interface eth0\n virtual_router_id 9\n virtual_ipaddress { 10.0.0.2 } }",
        toml: &["name = \"A\""],
        not_toml: &["name = \"B\""],
        warnings: &[("vrrp_instance", "already used on eth0")],
    },
    Case {
        name: "SSL_GET is https without verification",
        conf: "virtual_server 10.0.0.100 443 {\n lb_kind DR\n delay_loop 5\n real_server 10.0.0.11 443 {\n  SSL_GET {\n   url {\n    path /healthz\n    status_code 200\n   }\n   connect_timeout 2\n   retry 2\n   virtualhost api.example\n  }\n }\n}",
        toml: &["kind = \"https\"", "path = \"/healthz\"", "expect_status = [200]", "host = \"api.example\"", "tls_verify = false", "interval = \"5s\"", "timeout = \"2s\"", "fall = 3", "rise = 1", "start = \"up\""],
        not_toml: &[],
        warnings: &[],
    },
    Case {
        name: "HTTP_GET defaults to any 2xx; digest not carried",
        conf: "virtual_server 10.0.0.100 80 {\n lb_kind DR\n real_server 10.0.0.11 80 {\n  HTTP_GET {\n   url {\n    path /\n    digest 9b3a0c85a887a256d6939da88aabd8cd\n   }\n   url { path /other }\n  }\n }\n}",
        toml: &["kind = \"http\"", "expect_status = [200, 201, 202", "299]", "interval = \"60s\"", "timeout = \"5s\"", "fall = 2"],
        not_toml: &["/other"],
        warnings: &[("digest", "status code only"), ("url", "one URL")],
    },
    Case {
        name: "MISC_CHECK is exec",
        conf: "virtual_server 10.0.0.100 80 {\n lb_kind DR\n delay_loop 6\n real_server 10.0.0.11 80 {\n  MISC_CHECK {\n   misc_path \"/usr/local/bin/check.sh 10.0.0.11\"\n   misc_timeout 4\n  }\n }\n}",
        toml: &["kind = \"exec\"", "script = \"/usr/local/bin/check.sh\"", "timeout = \"4s\"", "interval = \"6s\"", "fall = 1"],
        not_toml: &[],
        warnings: &[("MISC_CHECK", "<backend address> <port>"), ("MISC_CHECK", "[\"10.0.0.11\"]")],
    },
    Case {
        name: "alpha starts backends down",
        conf: "virtual_server 10.0.0.100 80 {\n lb_kind DR\n alpha\n real_server 10.0.0.11 80 { TCP_CHECK { connect_port 8080 } }\n}",
        toml: &["start = \"down\"", "port = 8080"],
        not_toml: &[],
        warnings: &[],
    },
    Case {
        name: "NAT is not DR",
        conf: "virtual_server 10.0.0.100 80 {\n lb_kind NAT\n real_server 10.0.0.11 80 { TCP_CHECK { } }\n}",
        toml: &["vip = \"10.0.0.100\"", "address = \"10.0.0.11\""],
        not_toml: &[],
        warnings: &[("lb_kind", "not NAT")],
    },
    Case {
        name: "no forwarding method is keepalived's NAT",
        conf: "virtual_server 10.0.0.100 80 {\n real_server 10.0.0.11 80 { }\n}",
        toml: &["kind = \"none\""],
        not_toml: &[],
        warnings: &[("virtual_server", "defaults to NAT")],
    },
    Case {
        name: "real port differs from the virtual port",
        conf: "virtual_server 10.0.0.100 80 {\n lb_kind DR\n real_server 10.0.0.11 8080 { weight 3 }\n real_server 10.0.0.12 80 { weight 2 }\n}",
        toml: &["address = \"10.0.0.12\"\nweight = 2"],
        not_toml: &["10.0.0.11"],
        warnings: &[("real_server", "port 8080 differs")],
    },
    Case {
        name: "schedulers and persistence",
        conf: "virtual_server 10.0.0.100 80 {\n lb_kind DR\n lb_algo wlc\n persistence_timeout 300\n real_server 10.0.0.11 80 { }\n}\nvirtual_server 10.0.0.100 53 {\n lb_kind DR\n protocol UDP\n lvs_sched sh\n persistence_timeout\n real_server 10.0.0.11 53 { }\n}\nvirtual_server 10.0.0.100 81 {\n lb_kind DR\n lb_algo mh\n real_server 10.0.0.11 81 { }\n}\nvirtual_server 10.0.0.100 82 {\n lb_kind DR\n lb_algo mh\n mh-port\n real_server 10.0.0.11 82 { }\n}",
        toml: &["name = \"vs-10.0.0.100-80\"\nvip = \"10.0.0.100\"\nport = 80\nprotocol = \"tcp\"\nscheduler = \"maglev\"", "name = \"vs-10.0.0.100-53-udp\"\nvip = \"10.0.0.100\"\nport = 53\nprotocol = \"udp\"\nscheduler = \"source-hash\"", "port = 81\nprotocol = \"tcp\"\nscheduler = \"source-hash\"", "port = 82\nprotocol = \"tcp\"\nscheduler = \"maglev\""],
        not_toml: &[],
        warnings: &[("lb_algo", "\"wlc\""), ("persistence_timeout", "source-hash\" for client affinity"), ("persistence_timeout", "already sends every connection")],
    },
    Case {
        name: "virtual_server options without lbd equivalents",
        conf: "virtual_server 10.0.0.100 80 {\n lb_kind DR\n quorum 2\n sorry_server 10.0.0.99 80\n inhibit_on_failure\n delay_before_retry 3\n real_server 10.0.0.11 80 { TCP_CHECK { } notify_up /bin/up }\n}",
        toml: &["kind = \"tcp\""],
        not_toml: &["10.0.0.99"],
        warnings: &[("quorum", "quorum"), ("sorry_server", "sorry server"), ("inhibit_on_failure", "weight 0"), ("delay_before_retry", "re-checks"), ("notify_up", "notify")],
    },
    Case {
        name: "timeout longer than delay_loop is clamped",
        conf: "virtual_server 10.0.0.100 80 {\n lb_kind DR\n delay_loop 2\n real_server 10.0.0.11 80 { TCP_CHECK { connect_timeout 5 } }\n}",
        toml: &["interval = \"2s\"\ntimeout = \"2s\""],
        not_toml: &[],
        warnings: &[("TCP_CHECK", "timeout = interval")],
    },
    Case {
        name: "real servers checked differently",
        conf: "virtual_server 10.0.0.100 80 {\n lb_kind DR\n real_server 10.0.0.11 80 { TCP_CHECK { connect_timeout 2 } }\n real_server 10.0.0.12 80 { HTTP_GET { url { path / } } }\n real_server 10.0.0.13 80 { PING_CHECK { } }\n}",
        toml: &["kind = \"tcp\"", "timeout = \"2s\"", "address = \"10.0.0.13\""],
        not_toml: &[],
        warnings: &[("real_server", "checked differently"), ("PING_CHECK", "not carried over")],
    },
    Case {
        name: "fwmark and group virtual servers, SCTP",
        conf: "virtual_server fwmark 1 { lb_kind DR }\nvirtual_server group G { lb_kind DR }\nvirtual_server 10.0.0.100 80 { lb_kind DR\n protocol SCTP }",
        toml: &[],
        not_toml: &["[[service]]"],
        warnings: &[("virtual_server", "fwmark 1"), ("virtual_server", "group G"), ("protocol", "SCTP")],
    },
    Case {
        name: "unknown blocks and keywords",
        conf: "vrrp_sync_group G { group { VI } }\nfoo_block X { a 1 }\nstatic_ipaddress { 10.9.9.9/24 dev eth0 }",
        toml: &["name = \"eth0\""],
        not_toml: &["10.9.9.9"],
        warnings: &[("vrrp_sync_group", "sync groups"), ("foo_block", "not carried over"), ("static_ipaddress", "static"), ("interface", "guess")],
    },
    Case {
        name: "unbalanced braces",
        conf: "}\nvrrp_instance VI { interface eth0\n virtual_router_id 9\n virtual_ipaddress { 10.0.0.1 }\n",
        toml: &["[[vrrp]]"],
        not_toml: &[],
        warnings: &[("}", "extra"), ("vrrp_instance", "not closed")],
    },
    Case {
        name: "comments, escapes and definitions",
        conf: "$VIP=10.0.0.1\n$IF = eth0\nvrrp_instance VI { # comment { not a brace\n interface $IF\n virtual_router_id 9 ! also a comment\n authentication { auth_type PASS\n auth_pass a\\#b!c\n }\n virtual_ipaddress { ${VIP}/24 }\n}\n@lb1 priority 200\n",
        toml: &["interface = \"eth0\"", "virtual_addresses = [\"10.0.0.1/24\"]", "auth_pass = \"a#b\""],
        not_toml: &["priority = 200"],
        warnings: &[("@lb1", "config id")],
    },
    Case {
        name: "include is not followed by import_str",
        conf: "include /etc/keepalived/conf.d/*.conf\n",
        toml: &[],
        not_toml: &[],
        warnings: &[("include", "not followed")],
    },
    Case {
        name: "instance without interface",
        conf: "global_defs { default_interface bond0 }\nvrrp_instance VI { virtual_router_id 9\n virtual_ipaddress { 10.0.0.1 } }",
        toml: &["interface = \"bond0\"", "[[interface]]\nname = \"bond0\""],
        not_toml: &[],
        warnings: &[("vrrp_instance", "default_interface bond0")],
    },
    Case {
        name: "real_server settings apply to a checker written before them",
        conf: "virtual_server 10.0.0.100 80 {\n lb_kind DR\n real_server 10.0.0.11 80 {\n  TCP_CHECK { }\n  delay_loop 7\n  retry 3\n }\n}",
        toml: &["interval = \"7s\"\ntimeout = \"5s\"\nrise = 1\nfall = 4"],
        not_toml: &[],
        warnings: &[],
    },
    Case {
        name: "global_defs",
        conf: "global_defs {\n router_id lb-a\n notification_email { ops@example.com }\n vrrp_strict\n lvs_id LB1\n lvs_flush\n}",
        toml: &["node_name = \"lb-a\""],
        not_toml: &[],
        warnings: &[("notification_email", "e-mail"), ("vrrp_strict", "strict mode"), ("lvs_id", "IPVS"), ("lvs_flush", "IPVS")],
    },
    Case {
        name: "lvs_timeouts, every value",
        conf: "global_defs { lvs_timeouts tcp 7200 tcpfin 30 udp 60 }",
        toml: &["[global]\ntimeout_tcp = \"7200s\"\ntimeout_tcpfin = \"30s\"\ntimeout_udp = \"60s\"\n"],
        not_toml: &["settle_after", "[sync]"],
        warnings: &[],
    },
    Case {
        name: "lvs_timeouts, a subset in another order",
        conf: "global_defs { lvs_timeouts udp 45 tcp 600 }",
        toml: &["timeout_tcp = \"600s\"\ntimeout_udp = \"45s\"\n"],
        not_toml: &["timeout_tcpfin"],
        warnings: &[],
    },
    Case {
        name: "lvs_timeouts, 0 and bad values",
        conf: "global_defs {\n lvs_timeouts tcp 0 tcpfin 2678401 udp -1 tcp_fin 10 tcpfin\n lvs_timeouts\n}",
        toml: &[],
        not_toml: &["timeout_"],
        warnings: &[
            ("lvs_timeouts", "tcp 0 leaves IPVS's timeout as it was: lbd's timeout_tcp keeps its default 900s"),
            ("lvs_timeouts", "tcpfin \"2678401\" is not a whole number of seconds in 0..=2678400: ignored"),
            ("lvs_timeouts", "udp \"-1\" is not a whole number"),
            ("lvs_timeouts", "unknown option \"tcp_fin\""),
            ("lvs_timeouts", "unknown option \"10\""),
            ("lvs_timeouts", "tcpfin without a value"),
            ("lvs_timeouts", "needs at least one of tcp, tcpfin, udp"),
        ],
    },
    Case {
        name: "lvs_timeouts twice: the last value counts",
        conf: "global_defs {\n lvs_timeouts tcp 100\n lvs_timeouts tcp 200 udp 2678400\n}",
        toml: &["timeout_tcp = \"200s\"", "timeout_udp = \"2678400s\""],
        not_toml: &["\"100s\""],
        warnings: &[("lvs_timeouts", "tcp was already set at line 2: keepalived uses the last value, so does lbd")],
    },
    Case {
        name: "lvs_sync_daemon with every option",
        conf: "global_defs { lvs_sync_daemon eth0 VI_1 id 5 maxlen 1400 port 8849 ttl 2 group 239.1.1.1 }\nvrrp_instance VI_1 { interface eth0\n virtual_router_id 9\n virtual_ipaddress { 10.0.0.1 } }",
        toml: &["[sync]\nkey_file = \"/etc/lbd/sync.key\"\ninstance = \"VI_1\"\nport = 8849\ngroup = \"239.1.1.1\"\n"],
        not_toml: &["maxlen", "ttl", "\nid ="],
        warnings: &[
            ("id", "lvs_sync_daemon id 5: lbd has no sync id"),
            ("maxlen", "lvs_sync_daemon maxlen 1400"),
            ("ttl", "lvs_sync_daemon ttl 2: no lbd equivalent"),
            ("lvs_sync_daemon", "lbd authenticates sync messages (IPVS's sync daemon does not)"),
            ("lvs_sync_daemon", "install -m 600 /dev/null /etc/lbd/sync.key && head -c 32 /dev/urandom | base64 > /etc/lbd/sync.key"),
            ("lvs_sync_daemon", "the same file on every LB node"),
        ],
    },
    Case {
        name: "lvs_sync_daemon with inst, IPv6 group, defaults",
        conf: "global_defs { lvs_sync_daemon eth0 inst VI_1 group ff02::81 }\nvrrp_instance VI_1 { interface eth0\n virtual_router_id 9\n virtual_ipaddress { 10.0.0.1 } }",
        toml: &["[sync]\nkey_file = \"/etc/lbd/sync.key\"\ninstance = \"VI_1\"\ngroup = \"ff02::81\"\n"],
        not_toml: &["port = "],
        warnings: &[("lvs_sync_daemon", "converted to [sync]")],
    },
    Case {
        name: "lvs_sync_daemon: the older form with a bare sync id, bad values",
        conf: "global_defs { lvs_sync_daemon eth0 VI_1 7 port 0 group 10.0.0.81 ttl }\nvrrp_instance VI_1 { interface eth0\n virtual_router_id 9\n virtual_ipaddress { 10.0.0.1 } }",
        toml: &["instance = \"VI_1\""],
        not_toml: &["port = ", "group = "],
        warnings: &[
            ("id", "sync id 7"),
            ("lvs_sync_daemon", "port \"0\" is not 1..=65535"),
            ("lvs_sync_daemon", "group 10.0.0.81 is not a multicast address"),
            ("lvs_sync_daemon", "ttl without a value"),
        ],
    },
    Case {
        name: "lvs_sync_daemon on another interface than the instance",
        conf: "global_defs { lvs_sync_daemon eth1 VI_1 }\nvrrp_instance VI_1 { interface eth0\n virtual_router_id 9\n virtual_ipaddress { 10.0.0.1 } }",
        toml: &["instance = \"VI_1\""],
        not_toml: &[],
        warnings: &[("lvs_sync_daemon", "on the instance's interface (eth0), not on eth1: the interface is not carried over")],
    },
    Case {
        name: "lvs_sync_daemon naming an unknown instance",
        conf: "global_defs { lvs_sync_daemon eth0 VI_9 }\nvrrp_instance VI_1 { interface eth0\n virtual_router_id 9\n virtual_ipaddress { 10.0.0.1 } }",
        toml: &["[sync]\nkey_file = \"/etc/lbd/sync.key\"\n"],
        not_toml: &["instance = "],
        warnings: &[("lvs_sync_daemon", "VI_9 is not a carried-over vrrp_instance: lbd's [sync] takes its peers from every instance instead")],
    },
    Case {
        name: "lvs_sync_daemon without an instance",
        conf: "global_defs { lvs_sync_daemon eth0 }\nvrrp_instance VI_1 { interface eth0\n virtual_router_id 9\n virtual_ipaddress { 10.0.0.1 } }",
        toml: &["[sync]\nkey_file = \"/etc/lbd/sync.key\"\n"],
        not_toml: &["instance = "],
        warnings: &[("lvs_sync_daemon", "no VRRP instance named: lbd's [sync] takes its peers from every instance")],
    },
    Case {
        name: "lvs_sync_daemon without any vrrp_instance",
        conf: "global_defs { lvs_sync_daemon eth0 VI_1 }",
        toml: &[],
        not_toml: &["[sync]", "key_file"],
        warnings: &[("lvs_sync_daemon", "no vrrp_instance was carried over, and lbd takes the sync peers from one: [sync] is not carried over")],
    },
    Case {
        name: "lvs_sync_daemon twice: the first counts",
        conf: "global_defs {\n lvs_sync_daemon eth0 VI_1\n lvs_sync_daemon eth1 VI_2\n lvs_sync_daemon\n}\nvrrp_instance VI_1 { interface eth0\n virtual_router_id 9\n virtual_ipaddress { 10.0.0.1 } }\nvrrp_instance VI_2 { interface eth1\n virtual_router_id 9\n virtual_ipaddress { 10.0.0.2 } }",
        toml: &["instance = \"VI_1\""],
        not_toml: &["instance = \"VI_2\""],
        warnings: &[("lvs_sync_daemon", "already given at line 2: keepalived uses the first one")],
    },
];

#[test]
fn snippets() {
    for case in CASES {
        let got = match import_str(case.conf, Path::new("keepalived.conf")) {
            Ok(g) => g,
            Err(e) => panic!("{}: {e}", case.name),
        };
        check(&got);
        for frag in case.toml {
            assert!(
                got.toml.contains(frag),
                "{}: the TOML lacks {frag:?}:\n{}",
                case.name,
                got.toml
            );
        }
        for frag in case.not_toml {
            let body: String = got
                .toml
                .lines()
                .filter(|l| !l.starts_with('#'))
                .collect::<Vec<_>>()
                .join("\n");
            assert!(
                !body.contains(frag),
                "{}: the TOML has {frag:?}:\n{}",
                case.name,
                got.toml
            );
        }
        for (option, needle) in case.warnings {
            assert!(
                warning(&got, option, needle).is_some(),
                "{}: no warning {option}: ...{needle}... among:\n{}",
                case.name,
                list(&got)
            );
        }
    }
}

#[test]
fn the_virtual_server_snippet_head_is_valid() {
    // The shortest virtual_server: nothing to report but keepalived's NAT default
    // (absent here) and the missing interface.
    let got = conv(&format!(
        "{VS_HEAD} real_server 10.0.0.11 80 {{ TCP_CHECK {{ }} }}\n}}"
    ));
    check(&got);
    assert_eq!(got.warnings.len(), 1, "{}", list(&got));
    assert_warning(&got, "interface", "guess");
}

#[test]
fn nothing_is_dropped_silently() {
    // Each line marked `# W` holds something lbd does not carry over as written:
    // each must be reported at its own line.
    let conf = "\
global_defs {
    router_id lb-a
    enable_script_security # W
    smtp_server 10.0.0.5 # W
}
vrrp_script chk {
    script \"/bin/chk arg\" # W
    interval 2
    user nobody # W
    init_fail # W
}
vrrp_instance VI {
    state BACKUP # W
    interface eth0
    virtual_router_id 5
    priority 100
    track_interface { # W
        eth1
    }
    virtual_ipaddress {
        10.0.0.1/24 dev eth0 label eth0:1 # W
    }
    virtual_ipaddress_excluded { # W
        10.0.0.50
    }
    virtual_routes { # W
        10.1.0.0/16 via 10.0.0.254
    }
    track_script {
        chk
    }
    strict_mode # W
    debug 2 # W
}
virtual_server 10.0.0.1 80 {
    delay_loop 3
    lb_algo lc # W
    lb_kind DR
    persistence_timeout 50 # W
    hysteresis 1 # W
    real_server 10.0.0.21 80 {
        weight 2
        uthreshold 100 # W
        HTTP_GET {
            url {
                path /ping
                status_code 200-204
                regex ok # W
            }
            bindto 10.0.0.1 # W
            warmup 5 # W
        }
        SMTP_CHECK { # W
        }
    }
    real_server 10.0.0.22 81 { # W
    }
}
";
    let got = conv(conf);
    check(&got);
    for (n, line) in conf.lines().enumerate() {
        if line.ends_with("# W") {
            assert!(
                got.warnings.iter().any(|w| w.line == n + 1),
                "line {} ({}) is not reported:\n{}",
                n + 1,
                line.trim(),
                list(&got)
            );
        }
    }
    assert!(got
        .toml
        .contains("expect_status = [200, 201, 202, 203, 204]"));
    // Warnings come in file order.
    let lines: Vec<usize> = got.warnings.iter().map(|w| w.line).collect();
    let mut sorted = lines.clone();
    sorted.sort_unstable();
    assert_eq!(lines, sorted);
}

#[test]
fn many_services_raise_the_capacity() {
    let mut conf = String::new();
    for k in 0..300u32 {
        conf.push_str(&format!(
            "virtual_server 10.1.{}.{} 80 {{ lb_kind DR\n real_server 10.2.{}.{} 80 {{ }} }}\n",
            k / 250,
            k % 250 + 1,
            k / 250,
            k % 250 + 1
        ));
    }
    let got = conv(&conf);
    let cfg = check(&got);
    assert_eq!(cfg.services.len(), 300);
    assert_eq!(cfg.global.max_services, 300);
}

// ----- files and includes -----

#[test]
fn include_with_a_relative_glob() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    std::fs::create_dir_all(root.join("conf.d/more")).expect("mkdir");
    std::fs::write(
        root.join("keepalived.conf"),
        "global_defs { router_id lb-inc }\ninclude conf.d/*.conf\n",
    )
    .expect("write");
    std::fs::write(
        root.join("conf.d/10-vrrp.conf"),
        "vrrp_instance VI {\n interface eth0\n virtual_router_id 3\n virtual_ipaddress { 10.0.0.1/24 }\n include more/peers.inc\n}\n",
    )
    .expect("write");
    // Relative to the including file's directory (conf.d), inside a block.
    std::fs::write(
        root.join("conf.d/more/peers.inc"),
        "unicast_peer { 10.0.0.12 }\n",
    )
    .expect("write");
    std::fs::write(
        root.join("conf.d/20-vs.conf"),
        "virtual_server 10.0.0.1 443 {\n lb_kind DR\n lb_algo rr\n real_server 10.0.0.21 443 { TCP_CHECK { } }\n}\n",
    )
    .expect("write");
    std::fs::write(root.join("conf.d/ignored.txt"), "garbage {").expect("write");

    let got = import_file(&root.join("keepalived.conf")).expect("converts");
    let cfg = check(&got);
    assert_eq!(cfg.global.node_name, "lb-inc");
    assert_eq!(cfg.vrrp[0].unicast_peers, vec![ip("10.0.0.12")]);
    assert_eq!(cfg.services[0].port, 443);
    let w = warning(&got, "lb_algo", "\"rr\"").expect("rr warning");
    assert_eq!(w.file, root.join("conf.d/20-vs.conf"));
    assert_eq!(w.line, 3);
}

#[test]
fn include_brace_alternatives_and_no_match() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    std::fs::write(
        root.join("main.conf"),
        "include {a,b}.inc\ninclude none/*.conf\n",
    )
    .expect("write");
    std::fs::write(
        root.join("a.inc"),
        "vrrp_instance A { interface eth0\n virtual_router_id 1\n virtual_ipaddress { 10.0.0.1 } }\n",
    )
    .expect("write");
    std::fs::write(
        root.join("b.inc"),
        "vrrp_instance B { interface eth0\n virtual_router_id 2\n virtual_ipaddress { 10.0.0.2 } }\n",
    )
    .expect("write");
    let got = import_file(&root.join("main.conf")).expect("converts");
    let cfg = check(&got);
    let names: Vec<&str> = cfg.vrrp.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, ["A", "B"]);
    assert_eq!(assert_warning(&got, "include", "no file matches"), 2);
}

#[test]
fn include_loop_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    std::fs::create_dir(root.join("sub")).expect("mkdir");
    std::fs::write(root.join("main.conf"), "include sub/*.conf\n").expect("write");
    std::fs::write(root.join("sub/a.conf"), "# a\ninclude ../main.conf\n").expect("write");
    match import_file(&root.join("main.conf")) {
        Err(ImportError::IncludeLoop {
            file, line, chain, ..
        }) => {
            assert_eq!(file, root.join("sub/a.conf"));
            assert_eq!(line, 2);
            assert_eq!(chain.first(), Some(&root.join("main.conf")));
            assert_eq!(chain.len(), 3);
        }
        other => panic!("expected an include loop, got {other:?}"),
    }
    // A file including itself through a glob.
    std::fs::write(root.join("self.conf"), "include *.conf\n").expect("write");
    let err = import_file(&root.join("self.conf")).expect_err("loop");
    assert!(err.to_string().contains("include loop"), "{err}");
}

#[test]
fn unreadable_top_level_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = import_file(&dir.path().join("missing.conf")).expect_err("no file");
    assert!(matches!(err, ImportError::Read { .. }));
    assert!(
        err.to_string().contains("missing.conf: cannot read"),
        "{err}"
    );
}

#[test]
fn seed_fixtures_through_import_file() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/keepalived/seed000_master.conf");
    let from_file = import_file(&path).expect("converts");
    let from_str = import_str(SEED000_MASTER, &path).expect("converts");
    assert_eq!(from_file, from_str);
}

/// Random statements built from keepalived's vocabulary (well-formed blocks and
/// garbage alike): the converter must never panic, and whatever it produces must
/// pass lbd's validation (`ImportError::Invalid` would be a converter bug).
#[test]
fn random_configs_always_give_a_valid_config() {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    const KEYWORDS: &[&str] = &[
        "global_defs",
        "router_id",
        "vrrp_version",
        "default_interface",
        "vrrp_garp_master_delay",
        "vrrp_instance",
        "vrrp_script",
        "virtual_server",
        "real_server",
        "state",
        "interface",
        "virtual_router_id",
        "priority",
        "advert_int",
        "version",
        "nopreempt",
        "preempt",
        "preempt_delay",
        "unicast_src_ip",
        "mcast_src_ip",
        "unicast_peer",
        "authentication",
        "auth_type",
        "auth_pass",
        "virtual_ipaddress",
        "track_script",
        "track_interface",
        "notify",
        "notify_master",
        "garp_master_delay",
        "garp_master_repeat",
        "script",
        "interval",
        "timeout",
        "weight",
        "fall",
        "rise",
        "delay_loop",
        "lb_algo",
        "lvs_sched",
        "lb_kind",
        "protocol",
        "persistence_timeout",
        "alpha",
        "quorum",
        "TCP_CHECK",
        "HTTP_GET",
        "SSL_GET",
        "MISC_CHECK",
        "url",
        "path",
        "status_code",
        "virtualhost",
        "connect_timeout",
        "connect_port",
        "retry",
        "delay_before_retry",
        "misc_path",
        "misc_timeout",
        "v3_checksum_as_v2",
        "sh-port",
        "lvs_timeouts",
        "lvs_sync_daemon",
        "tcp",
        "tcpfin",
        "udp",
        "inst",
        "group",
        "port",
        "include",
        "$X=1",
        "@id",
        "bogus",
    ];
    const VALUES: &[&str] = &[
        "0",
        "1",
        "2",
        "3",
        "7",
        "60",
        "255",
        "256",
        "-5",
        "300",
        "0.5",
        "1.25",
        "65536",
        "10.0.0.1",
        "10.0.0.1/24",
        "10.0.0.2",
        "10.0.0.3",
        "10.0.0.1/0",
        "10.0.0.1/33",
        "2001:db8::1",
        "2001:db8::2/64",
        "0.0.0.0",
        "224.0.0.18",
        "239.1.1.1",
        "2678400",
        "255.255.255.255",
        "::ffff:10.0.0.9",
        "eth0",
        "eth1",
        "bad/if",
        "averyveryverylongifname",
        "MASTER",
        "BACKUP",
        "PASS",
        "AH",
        "DR",
        "NAT",
        "TCP",
        "UDP",
        "SCTP",
        "sh",
        "mh",
        "rr",
        "wlc",
        "\"/bin/chk a b\"",
        "/bin/chk",
        "/",
        "/healthz",
        "200",
        "200-204",
        "x",
        "weight",
        "reverse",
        "dev",
        "label",
        "fwmark",
        "VI",
        "VI2",
        "chk",
        "$X",
        "é",
        "\"\"",
        "0123456789",
        "80",
        "443",
        "8080",
    ];

    fn statement(rng: &mut StdRng, depth: u32, out: &mut String) {
        let kw = KEYWORDS[rng.gen_range(0..KEYWORDS.len())];
        out.push_str(kw);
        for _ in 0..rng.gen_range(0..4) {
            out.push(' ');
            out.push_str(VALUES[rng.gen_range(0..VALUES.len())]);
        }
        match rng.gen_range(0..10) {
            0..=3 if depth < 4 => {
                out.push_str(" {\n");
                for _ in 0..rng.gen_range(0..6) {
                    statement(rng, depth + 1, out);
                }
                out.push_str("}\n");
            }
            4 => out.push_str(" }\n"),
            5 => out.push_str(" { # x\n"),
            _ => out.push('\n'),
        }
    }

    let mut rng = StdRng::seed_from_u64(0x6b65_6570);
    for round in 0..3000 {
        let mut conf = String::new();
        for _ in 0..rng.gen_range(1..8) {
            statement(&mut rng, 0, &mut conf);
        }
        match import_str(&conf, Path::new("fuzz.conf")) {
            Ok(got) => {
                check(&got);
            }
            Err(e) => panic!("round {round}: {e}\n--- input:\n{conf}"),
        }
    }
}

/// Well-formed random instances and services: exercises the value checks rather
/// than the block structure.
#[test]
fn random_wellformed_configs_always_give_a_valid_config() {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn pick<'a>(rng: &mut StdRng, from: &[&'a str]) -> &'a str {
        from[rng.gen_range(0..from.len())]
    }
    let addrs = [
        "10.0.0.1",
        "10.0.0.2",
        "10.0.0.3",
        "10.0.0.1/24",
        "2001:db8::1",
        "2001:db8::5/64",
        "0.0.0.0",
        "224.0.0.5",
        "10.0.0.200",
    ];
    let mut rng = StdRng::seed_from_u64(0x6c62_6421);
    let (mut vrrp, mut services, mut backends) = (0usize, 0usize, 0usize);
    for round in 0..2000 {
        let mut conf = String::new();
        for k in 0..rng.gen_range(0..4) {
            conf.push_str(&format!(
                "vrrp_instance I{} {{\n interface {}\n virtual_router_id {}\n priority {}\n advert_int {}\n version {}\n {}\n unicast_src_ip {}\n unicast_peer {{\n {}\n {}\n }}\n authentication {{\n auth_type PASS\n auth_pass {}\n }}\n virtual_ipaddress {{\n {}\n {}\n }}\n preempt_delay {}\n state {}\n}}\n",
                rng.gen_range(0..3) + k,
                pick(&mut rng, &["eth0", "eth1"]),
                pick(&mut rng, &["1", "2", "0", "255"]),
                pick(&mut rng, &["1", "100", "255", "0", "300"]),
                pick(&mut rng, &["1", "0.5", "0.004", "41", "300", "2.5"]),
                pick(&mut rng, &["2", "3"]),
                pick(&mut rng, &["nopreempt", "preempt", ""]),
                pick(&mut rng, &addrs),
                pick(&mut rng, &addrs),
                pick(&mut rng, &addrs),
                pick(&mut rng, &["x", "12345678", "123456789", "ééééé"]),
                pick(&mut rng, &addrs),
                pick(&mut rng, &addrs),
                pick(&mut rng, &["0", "30", "2000"]),
                pick(&mut rng, &["MASTER", "BACKUP"]),
            ));
        }
        for _ in 0..rng.gen_range(0..4) {
            let check = pick(
                &mut rng,
                &[
                    "TCP_CHECK { connect_timeout 9 }",
                    "HTTP_GET { url { path /x status_code 200-299 } connect_port 8080 }",
                    "SSL_GET { url { path bad } virtualhost \"a b\" }",
                    "MISC_CHECK { misc_path \"/bin/c 1\" misc_timeout 100 }",
                    "",
                ],
            );
            conf.push_str(&format!(
                "virtual_server {} {} {{\n delay_loop {}\n lb_algo {}\n protocol {}\n real_server {} {} {{ weight {} {} }}\n real_server {} {} {{ {} }}\n}}\n",
                pick(&mut rng, &addrs),
                pick(&mut rng, &["0", "80", "443"]),
                pick(&mut rng, &["1", "0.5", "60"]),
                pick(&mut rng, &["rr", "sh", "mh"]),
                pick(&mut rng, &["TCP", "UDP"]),
                pick(&mut rng, &addrs),
                pick(&mut rng, &["0", "80", "443"]),
                pick(&mut rng, &["0", "1", "70000"]),
                check,
                pick(&mut rng, &addrs),
                pick(&mut rng, &["0", "80", "443"]),
                check,
            ));
        }
        match import_str(&conf, Path::new("fuzz.conf")) {
            Ok(got) => {
                let cfg = check(&got);
                vrrp += cfg.vrrp.len();
                services += cfg.services.len();
                backends += cfg.services.iter().map(|s| s.backends.len()).sum::<usize>();
            }
            Err(e) => panic!("round {round}: {e}\n--- input:\n{conf}"),
        }
    }
    // The generator does reach the interesting paths.
    assert!(
        vrrp > 500 && services > 500 && backends > 200,
        "{vrrp} {services} {backends}"
    );
}

// ----- flow sync and timeouts -----

/// A keepalived LVS-DR node with IPVS timeouts and the sync daemon.
const WITH_SYNC: &str = "\
global_defs {
    router_id lb-a
    lvs_timeouts tcp 7200 tcpfin 60 udp 120
    lvs_sync_daemon eth0 VI_1 id 51 maxlen 1400 ttl 1
}
vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 51
    unicast_src_ip 10.0.0.10
    unicast_peer {
        10.0.0.11
    }
    virtual_ipaddress { 10.0.0.100/24 }
}
";

#[test]
fn lvs_timeouts_and_sync_daemon_convert() {
    let got = conv(WITH_SYNC);
    let cfg = check(&got);
    assert_eq!(cfg.global.timeout_tcp, Duration::from_secs(7200));
    assert_eq!(cfg.global.timeout_tcpfin, Duration::from_secs(60));
    assert_eq!(cfg.global.timeout_udp, Duration::from_secs(120));
    // settle_after is not written: it follows timeout_tcp.
    assert_eq!(cfg.global.settle_after, Duration::from_secs(7200));
    let sync = cfg.sync.as_ref().expect("[sync]");
    assert_eq!(
        sync.key_file.as_deref(),
        Some(Path::new("/etc/lbd/sync.key"))
    );
    assert_eq!(sync.instance.as_deref(), Some("VI_1"));
    assert_eq!((sync.port, sync.group), (8848, ip("224.0.0.81")));
    assert!(sync.peers.is_empty());
    assert_eq!(
        cfg.sync_peers(),
        vec![crate::SyncPeer::Unicast("10.0.0.11:8848".parse().unwrap())]
    );
    // Reported at the lvs_sync_daemon line: id, maxlen, ttl and the key to create.
    assert_eq!(assert_warning(&got, "id", "lvs_sync_daemon id 51"), 4);
    assert_eq!(
        assert_warning(&got, "maxlen", "lvs_sync_daemon maxlen 1400"),
        4
    );
    assert_eq!(assert_warning(&got, "ttl", "lvs_sync_daemon ttl 1"), 4);
    assert_eq!(
        assert_warning(&got, "lvs_sync_daemon", "authenticates sync messages"),
        4
    );
    assert_eq!(got.warnings.len(), 4, "{}", list(&got));
    assert_eq!(
        got.warnings[3].to_string(),
        "keepalived.conf:4: lvs_sync_daemon: converted to [sync] with key_file = \"/etc/lbd/sync.key\": lbd authenticates sync messages (IPVS's sync daemon does not), so create the key before lbd starts: install -m 600 /dev/null /etc/lbd/sync.key && head -c 32 /dev/urandom | base64 > /etc/lbd/sync.key, and put the same file on every LB node (lbd refuses the configuration while it is missing)"
    );
    // The [sync] table says so too, and comes from the keepalived line.
    assert!(got
        .toml
        .contains("# from keepalived.conf:4: lvs_sync_daemon eth0 VI_1 id 51 maxlen 1400 ttl 1\n"));
    assert!(got
        .toml
        .contains("head -c 32 /dev/urandom | base64 > /etc/lbd/sync.key)"));
}

/// The importer succeeds although /etc/lbd/sync.key does not exist (it checks its
/// output without reading key files); `lbd --check-config` (`crate::parse`) then
/// refuses the output until the key exists, and accepts it once it does.
#[test]
fn sync_with_a_key_file_passes_check_config() {
    let got = conv(WITH_SYNC);
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("sync.key");
    let text = got
        .toml
        .replace("/etc/lbd/sync.key", &key.display().to_string());
    let err = crate::parse(&text, Path::new("out.toml")).expect_err("no key yet");
    assert_eq!(err.field, "sync.key_file");
    assert!(err.message.contains("cannot open"), "{err}");
    std::fs::write(&key, "bm90LWEtcmVhbC1rZXktYnV0LWxvbmctZW5vdWdo\n").expect("write");
    let cfg = crate::parse(&text, Path::new("out.toml")).expect("valid with the key");
    assert_eq!(
        cfg.sync.expect("[sync]").key,
        b"bm90LWEtcmVhbC1rZXktYnV0LWxvbmctZW5vdWdo"
    );
}

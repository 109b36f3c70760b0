//! Unit tests of the config module: a full example, the defaults, the shipped
//! `example.toml`, and a table of bad configs with the exact `file:line: field`
//! each one must be reported at.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

fn p(text: &str) -> Result<Config, ConfigError> {
    parse(text, Path::new("lbd.toml"))
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// The example of the design brief, verbatim.
const FULL: &str = r#"
[global]
node_name = "lb-a"                      # default: hostname is NOT read here; default "lbd"
control_socket = "/run/lbd/lbd.sock"    # default
metrics_listen = "127.0.0.1:9469"       # default; "" or "off" disables
pin_dir = "/sys/fs/bpf/lbd"             # default; where maps and links are pinned (restart survival)
hash_seed = 0x5eed                      # u32, default 0x4c42_5345; must be identical on every LB node (flows survive failover)
maglev_table_size = 65537               # default "auto"; else a prime <= 655373
max_services = 256                      # default 256 (map capacity)
max_backends = 4096                     # default 4096, <= 65535
conn_table_size = 1048576               # default 1<<20
settle_after = "15m"                    # default 15m
forwarding = "active"                   # active | standby; default active

[[interface]]
name = "eth0"
xdp_mode = "driver"        # driver | skb | auto (default auto)

[[service]]
name = "apiserver"
vip = "192.168.100.40"     # IPv4 or IPv6
port = 6443                # 0 = every port of the VIP
protocol = "tcp"           # tcp | udp  (default tcp)
scheduler = "maglev"       # maglev (5-tuple) | source-hash (client IP only); default maglev

[service.health]            # optional; default: kind = "tcp" with the defaults below
kind = "https"             # tcp | http | https | exec | none
path = "/healthz"          # http/https, default "/"
expect_status = [200]      # http/https, default [200]
host = "kubernetes"        # optional Host header / TLS server name
tls_verify = false         # https: default false
ca_file = "/etc/kubernetes/pki/ca.crt"   # optional
script = "/etc/lbd/check.sh"             # exec: required; run with args: backend address, port
port = 6443                # optional check port
interval = "2s"            # default 2s
timeout = "1s"             # default 1s
rise = 1                   # default 1, >= 1
fall = 2                   # default 2, >= 1
start = "down"             # down | up; default down

[[service.backend]]
address = "192.168.100.41"
weight = 1                 # default 1; 0 = drain; max 65535
port = 6443                # optional; if given must equal the service port
name = "master1"           # optional display name
"#;

#[test]
fn full_example_parses_to_expected_struct() {
    let cfg = p(FULL).unwrap();
    let expected = Config {
        global: Global {
            node_name: "lb-a".into(),
            control_socket: PathBuf::from("/run/lbd/lbd.sock"),
            metrics_listen: Some(SocketAddr::from(([127, 0, 0, 1], 9469))),
            pin_dir: PathBuf::from("/sys/fs/bpf/lbd"),
            hash_seed: 0x5eed,
            maglev_table_size: 65537,
            max_services: 256,
            max_backends: 4096,
            conn_table_size: 1 << 20,
            conn_insert_limit: None,
            timeout_tcp: Duration::from_secs(900),
            timeout_tcpfin: Duration::from_secs(120),
            timeout_udp: Duration::from_secs(300),
            settle_after: Duration::from_secs(900),
            forwarding: Forwarding::Active,
        },
        interfaces: vec![Interface {
            name: "eth0".into(),
            xdp_mode: XdpMode::Driver,
        }],
        services: vec![Service {
            name: "apiserver".into(),
            vip: ip("192.168.100.40"),
            port: 6443,
            protocol: Protocol::Tcp,
            scheduler: Scheduler::Maglev,
            health: HealthCheck {
                kind: CheckKind::Https {
                    path: "/healthz".into(),
                    expect_status: vec![200],
                    host: Some("kubernetes".into()),
                    tls_verify: false,
                    ca_file: Some(PathBuf::from("/etc/kubernetes/pki/ca.crt")),
                },
                interval: Duration::from_secs(2),
                timeout: Duration::from_secs(1),
                rise: 1,
                fall: 2,
                start_up: false,
                port: Some(6443),
            },
            backends: vec![BackendConfig {
                address: ip("192.168.100.41"),
                weight: 1,
                name: Some("master1".into()),
            }],
        }],
        vrrp: vec![],
        sync: None,
        bgp: None,
    };
    assert_eq!(cfg, expected);
}

const MINIMAL: &str = r#"
[[interface]]
name = "eth0"

[[service]]
name = "web"
vip = "10.0.0.1"
port = 80

[[service.backend]]
address = "10.0.0.2"
"#;

#[test]
fn minimal_config_gets_documented_defaults() {
    let cfg = p(MINIMAL).unwrap();
    let expected = Config {
        global: Global {
            node_name: "lbd".into(),
            control_socket: PathBuf::from("/run/lbd/lbd.sock"),
            metrics_listen: Some(SocketAddr::from(([127, 0, 0, 1], 9469))),
            pin_dir: PathBuf::from("/sys/fs/bpf/lbd"),
            hash_seed: 0x4c42_5345,
            maglev_table_size: lb_common::maglev::AUTO_TABLE_SIZE,
            max_services: 256,
            max_backends: 4096,
            conn_table_size: 1 << 20,
            conn_insert_limit: None,
            timeout_tcp: Duration::from_secs(900),
            timeout_tcpfin: Duration::from_secs(120),
            timeout_udp: Duration::from_secs(300),
            settle_after: Duration::from_secs(15 * 60),
            forwarding: Forwarding::Active,
        },
        interfaces: vec![Interface {
            name: "eth0".into(),
            xdp_mode: XdpMode::Auto,
        }],
        services: vec![Service {
            name: "web".into(),
            vip: ip("10.0.0.1"),
            port: 80,
            protocol: Protocol::Tcp,
            scheduler: Scheduler::Maglev,
            health: HealthCheck {
                kind: CheckKind::Tcp,
                interval: Duration::from_secs(2),
                timeout: Duration::from_secs(1),
                rise: 1,
                fall: 2,
                start_up: false,
                port: None,
            },
            backends: vec![BackendConfig {
                address: ip("10.0.0.2"),
                weight: 1,
                name: None,
            }],
        }],
        vrrp: vec![],
        sync: None,
        bgp: None,
    };
    assert_eq!(cfg, expected);
    assert_eq!(cfg.global, Global::default());
    assert_eq!(cfg.services[0].health, HealthCheck::default());
}

#[test]
fn example_file_parses() {
    // The example's [sync] reads /etc/lbd/sync.key: point it at a key made here.
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("sync.key");
    std::fs::write(&key, "c2VjcmV0LXN5bmMta2V5LWZvci10aGUtdGVzdHM=\n").unwrap();
    let text = include_str!("example.toml");
    assert!(text.contains("key_file = \"/etc/lbd/sync.key\""));
    let cfg = p(&text.replace("/etc/lbd/sync.key", &key.display().to_string())).unwrap();
    let sync = cfg.sync.as_ref().expect("the example has [sync]");
    assert_eq!(sync.key, b"c2VjcmV0LXN5bmMta2V5LWZvci10aGUtdGVzdHM=");
    assert_eq!(sync.instance.as_deref(), Some("VI_API"));
    assert_eq!(
        cfg.sync_peers(),
        vec![SyncPeer::Unicast("10.0.0.11:8848".parse().unwrap())]
    );
    assert_eq!(cfg.global.timeout_tcp, Duration::from_secs(900));
    assert_eq!(cfg.global.settle_after, Duration::from_secs(900));
    assert_eq!(cfg.global.conn_insert_limit, None);
    assert_eq!(cfg.global.node_name, "lb-a");
    assert_eq!(cfg.interfaces.len(), 1);
    assert_eq!(cfg.services.len(), 3);
    let api = &cfg.services[0];
    assert_eq!(api.backends.len(), 3);
    assert_eq!(api.backends[2].weight, 0);
    assert!(matches!(
        api.health.kind,
        CheckKind::Https {
            tls_verify: true,
            ..
        }
    ));
    let dns = &cfg.services[1];
    assert_eq!(dns.protocol, Protocol::Udp);
    assert_eq!(dns.protocol.number(), 17);
    assert_eq!(dns.scheduler, Scheduler::SourceHash);
    assert!(dns.vip.is_ipv6());
    assert_eq!(
        dns.health.kind,
        CheckKind::Exec {
            script: PathBuf::from("/etc/lbd/check-dns.sh")
        }
    );
    assert_eq!(dns.health.fall, 3);
    let all = &cfg.services[2];
    assert_eq!(all.port, 0);
    assert_eq!(all.health.port, Some(80));
    assert_eq!(cfg.vrrp.len(), 1);
    let v = &cfg.vrrp[0];
    assert_eq!((v.name.as_str(), v.vrid, v.priority), ("VI_API", 51, 150));
    assert_eq!(
        v.virtual_addresses,
        vec![(ip("192.168.100.40"), 24), (ip("192.168.100.50"), 32)]
    );
    assert_eq!(v.track.len(), 2);
    assert_eq!(v.notify.any, Some(PathBuf::from("/etc/lbd/notify.sh")));
    assert_eq!(v.notify.master, None);
}

#[test]
fn assorted_valid_settings() {
    let text = r#"
[global]
metrics_listen = "off"
forwarding = "standby"
settle_after = "1m 30s"
maglev_table_size = 251
[[interface]]
name = "eth0"
[[interface]]
name = "eth1"
xdp_mode = "skb"
[[service]]
name = "web"
vip = "10.0.0.1"
port = 0
health = { kind = "none" }
[[service]]
name = "web-udp"              # same VIP and port, other protocol: a different service
vip = "10.0.0.1"
port = 0
protocol = "udp"
health.kind = "exec"           # dotted keys work too
health.script = "/bin/true"
[[service]]
name = "empty"                 # no backends is fine
vip = "2001:db8::10"
port = 443
[service.health]
kind = "http"
start = "up"
rise = 3
expect_status = [200, 204]
"#;
    let cfg = p(text).unwrap();
    assert_eq!(cfg.global.metrics_listen, None);
    assert_eq!(cfg.global.forwarding, Forwarding::Standby);
    assert_eq!(cfg.global.settle_after, Duration::from_secs(90));
    assert_eq!(cfg.global.maglev_table_size, 251);
    assert_eq!(cfg.interfaces[1].xdp_mode, XdpMode::Skb);
    assert_eq!(cfg.services[0].health.kind, CheckKind::None);
    assert_eq!(cfg.services[1].protocol, Protocol::Udp);
    assert!(cfg.services[2].backends.is_empty());
    let h = &cfg.services[2].health;
    assert!(h.start_up);
    assert_eq!(h.rise, 3);
    assert_eq!(
        h.kind,
        CheckKind::Http {
            path: "/".into(),
            expect_status: vec![200, 204],
            host: None
        }
    );
    let off = p(&MINIMAL.replace(
        "[[interface]]",
        "[global]\nmetrics_listen = \"\"\n[[interface]]",
    ));
    assert_eq!(off.unwrap().global.metrics_listen, None);
    let v6 = p(&MINIMAL.replace(
        "[[interface]]",
        "[global]\nmetrics_listen = \"[::1]:9000\"\n[[interface]]",
    ));
    assert_eq!(
        v6.unwrap().global.metrics_listen,
        Some("[::1]:9000".parse().unwrap())
    );
}

#[test]
fn serializes_for_lbctl_json() {
    let cfg = p(FULL).unwrap();
    let json = serde_json::to_value(&cfg).unwrap();
    assert_eq!(json["global"]["settle_after"], "15m");
    assert_eq!(json["global"]["forwarding"], "active");
    assert_eq!(json["interfaces"][0]["xdp_mode"], "driver");
    let svc = &json["services"][0];
    assert_eq!(svc["vip"], "192.168.100.40");
    assert_eq!(svc["protocol"], "tcp");
    assert_eq!(svc["scheduler"], "maglev");
    assert_eq!(svc["health"]["kind"], "https");
    assert_eq!(svc["health"]["path"], "/healthz");
    assert_eq!(svc["health"]["interval"], "2s");
    assert_eq!(svc["backends"][0]["address"], "192.168.100.41");
    let json = serde_json::to_value(Scheduler::SourceHash).unwrap();
    assert_eq!(json, "source-hash");
    let json = serde_json::to_value(p(MINIMAL).unwrap()).unwrap();
    assert_eq!(json["global"]["timeout_tcp"], "15m");
    assert_eq!(json["global"]["timeout_tcpfin"], "2m");
    assert_eq!(json["global"]["timeout_udp"], "5m");
    assert_eq!(json["global"]["conn_insert_limit"], serde_json::Value::Null);
    assert_eq!(json["sync"], serde_json::Value::Null);
}

#[test]
fn timeouts_and_flood_guard() {
    // Defaults: IPVS's timeouts; settle_after follows timeout_tcp.
    let cfg = p(MINIMAL).unwrap();
    assert_eq!(cfg.global.timeout_tcp, Global::DEFAULT_TIMEOUT_TCP);
    assert_eq!(cfg.global.timeout_tcpfin, Global::DEFAULT_TIMEOUT_TCPFIN);
    assert_eq!(cfg.global.timeout_udp, Global::DEFAULT_TIMEOUT_UDP);
    assert_eq!(cfg.global.settle_after, cfg.global.timeout_tcp);
    assert_eq!(cfg.global.conn_insert_limit, None);

    let with = |global: &str| p(&format!("[global]\n{global}\n{MINIMAL}")).unwrap().global;
    let g = with("timeout_tcp = \"2h\"\ntimeout_tcpfin = \"30s\"\ntimeout_udp = \"1m\"");
    assert_eq!(g.timeout_tcp, Duration::from_secs(7200));
    assert_eq!(g.timeout_tcpfin, Duration::from_secs(30));
    assert_eq!(g.timeout_udp, Duration::from_secs(60));
    assert_eq!(
        g.settle_after,
        Duration::from_secs(7200),
        "follows timeout_tcp"
    );
    let g = with("timeout_tcp = \"2h\"\nsettle_after = \"10m\"");
    assert_eq!(g.settle_after, Duration::from_secs(600), "set: kept");
    // The bounds are accepted.
    let g = with("timeout_tcp = \"1s\"\ntimeout_udp = \"31days\"");
    assert_eq!(g.timeout_tcp, crate::limits::MIN_TIMEOUT);
    assert_eq!(g.timeout_udp, crate::limits::MAX_TIMEOUT);

    assert_eq!(
        with("conn_insert_limit = 0").conn_insert_limit,
        None,
        "0 = auto"
    );
    assert_eq!(
        with("conn_insert_limit = 50000").conn_insert_limit,
        Some(50_000)
    );
    let json = serde_json::to_value(with("conn_insert_limit = 7\ntimeout_tcp = \"1h\"")).unwrap();
    assert_eq!(json["conn_insert_limit"], 7);
    assert_eq!(json["timeout_tcp"], "1h");
    assert_eq!(json["settle_after"], "1h");
}

#[test]
fn error_display_format() {
    let e = ConfigError {
        file: PathBuf::from("/etc/lbd/lbd.toml"),
        line: Some(23),
        field: "service[1].backend[0].port".into(),
        message: "boom".into(),
    };
    assert_eq!(
        e.to_string(),
        "/etc/lbd/lbd.toml:23: service[1].backend[0].port: boom"
    );
    let e = ConfigError {
        line: None,
        field: String::new(),
        ..e
    };
    assert_eq!(e.to_string(), "/etc/lbd/lbd.toml: boom");
}

#[test]
fn load_reads_the_file_and_names_it() {
    let dir = std::env::temp_dir().join(format!("lbd-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("lbd.toml");
    std::fs::write(&file, MINIMAL).unwrap();
    assert_eq!(load(&file).unwrap(), p(MINIMAL).unwrap());
    std::fs::write(&file, "[global]\nbogus = 1\n").unwrap();
    let err = load(&file).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!(
            "{}:2: global.bogus: unknown field",
            file.display()
        )),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
    let err = load(&file).unwrap_err();
    assert_eq!(err.line, None);
    assert!(err.to_string().contains("cannot read"), "{err}");
}

#[test]
fn load_reads_regular_files_only() {
    let dir = tempfile::tempdir().unwrap();
    let err = load(Path::new("/dev/zero")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "/dev/zero: cannot read the configuration: a character device, not a regular file: only regular files are read (a FIFO or a device may never end or block)"
    );
    let big = dir.path().join("big.toml");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(crate::read::MAX_FILE_BYTES + 1)
        .unwrap();
    let err = load(&big).unwrap_err().to_string();
    assert!(err.contains("larger than the 16 MiB limit"), "{err}");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, b"[[interface]]\nname = \"eth\xc3\"\n").unwrap();
    let err = load(&bad).unwrap_err();
    assert_eq!(err.line, Some(2));
    assert!(
        err.to_string().starts_with(&format!(
            "{}:2: cannot read the configuration: not UTF-8 text: byte 0xc3 at column 12",
            bad.display()
        )),
        "{err}"
    );
    // At the bounds: accepted.
    let ok = with_iface(&format!(
        "[global]\ncontrol_socket = \"/{}\"\nconn_table_size = 67108864\nmax_services = 65536\nmax_backends = 65535\n",
        "s".repeat(106)
    ));
    let cfg = p(&ok).unwrap();
    assert_eq!(
        cfg.global.conn_table_size,
        crate::limits::MAX_CONN_TABLE_SIZE
    );
    assert_eq!(cfg.global.max_services, crate::limits::MAX_SERVICES);
}

/// `[[interface]]` on lines 1-2; `rest` starts on line 3.
fn with_iface(rest: &str) -> String {
    format!("[[interface]]\nname = \"eth0\"\n{rest}")
}

/// Interface on lines 1-2, service `web` 10.0.0.1:80/tcp on lines 3-6; `extra` starts
/// on line 7.
fn svc(extra: &str) -> String {
    with_iface(&format!(
        "[[service]]\nname = \"web\"\nvip = \"10.0.0.1\"\nport = 80\n{extra}"
    ))
}

#[test]
fn bad_configs_name_file_line_and_field() {
    let b = |extra: &str| {
        svc(&format!(
            "[[service.backend]]\naddress = \"10.0.0.2\"\n{extra}"
        ))
    };
    let cases: Vec<(&str, String, &str)> = vec![
        // --- characters TOML refuses (the parser itself gives no message) ---
        (
            "control character in a comment",
            with_iface("# note \u{1}\n"),
            "lbd.toml:3: control character U+0001 at column 8: TOML allows none but tab",
        ),
        (
            "DEL in a string",
            "[[interface]]\nname = \"et\u{7f}h0\"\n".to_owned(),
            "lbd.toml:2: control character U+007F at column 11",
        ),
        (
            "lone CR",
            with_iface("\r[global]\n"),
            "lbd.toml:3: control character U+000D at column 1",
        ),
        // --- limits the OS and the kernel enforce after start ---
        (
            "control socket longer than sun_path",
            with_iface(&format!(
                "[global]\ncontrol_socket = \"/{}\"\n",
                "s".repeat(107)
            )),
            "lbd.toml:4: global.control_socket: the path is 108 bytes: a Unix socket path holds at most 107 (sun_path is 108 bytes with the terminating NUL)",
        ),
        (
            "NUL in a path",
            with_iface("[global]\npin_dir = \"/sys/fs/bpf/a\\u0000b\"\n"),
            "lbd.toml:4: global.pin_dir: contains a NUL character",
        ),
        (
            "conn table too large",
            with_iface("[global]\nconn_table_size = 67108865\n"),
            "lbd.toml:4: global.conn_table_size: 67108865 is out of range 1..=67108864",
        ),
        (
            "conn table empty",
            with_iface("[global]\nconn_table_size = 0\n"),
            "lbd.toml:4: global.conn_table_size: 0 is out of range 1..=67108864",
        ),
        (
            "too many services",
            with_iface("[global]\nmax_services = 65537\n"),
            "lbd.toml:4: global.max_services: 65537 is out of range 1..=65536",
        ),
        (
            "no services",
            with_iface("[global]\nmax_services = 0\n"),
            "lbd.toml:4: global.max_services: 0 is out of range 1..=65536",
        ),
        // --- TOML level: syntax, unknown keys, types, missing keys ---
        (
            "syntax error",
            with_iface("[[service]]\nname = \"web\n"),
            "lbd.toml:4: ",
        ),
        (
            "duplicate key",
            svc("port = 81\n"),
            "lbd.toml:7: duplicate key `port`",
        ),
        (
            "unknown top-level key",
            with_iface("[servce]\n"),
            "lbd.toml:3: servce: unknown field `servce`",
        ),
        (
            "unknown global key",
            with_iface("[global]\nfoo = 1\n"),
            "lbd.toml:4: global.foo: unknown field `foo`",
        ),
        (
            "unknown backend key",
            b("wieght = 2\n"),
            "lbd.toml:9: service[0].backend[0].wieght: unknown field `wieght`",
        ),
        (
            "unknown health key",
            svc("[service.health]\nintervall = \"1s\"\n"),
            "lbd.toml:8: service[0].health.intervall: unknown field",
        ),
        (
            "wrong type in global",
            "[global]\nmax_services = \"many\"\n".to_owned() + &with_iface(""),
            "lbd.toml:2: global.max_services: invalid type: string \"many\"",
        ),
        (
            "wrong type for a port",
            b("port = \"80\"\n"),
            "lbd.toml:9: service[0].backend[0].port: invalid type: string \"80\"",
        ),
        (
            "negative weight",
            b("weight = -1\n"),
            "lbd.toml:9: service[0].backend[0].weight: invalid value: integer `-1`",
        ),
        (
            "port out of u16",
            with_iface("[[service]]\nname = \"web\"\nvip = \"10.0.0.1\"\nport = 70000\n"),
            "lbd.toml:6: service[0].port: invalid value: integer `70000`",
        ),
        (
            "hash_seed out of u32",
            "[global]\nhash_seed = 0x1_0000_0000\n".to_owned() + &with_iface(""),
            "lbd.toml:2: global.hash_seed: invalid value",
        ),
        (
            "table where a value belongs",
            "global = 3\n".to_owned() + &with_iface(""),
            "lbd.toml:1: global: invalid type: integer `3`, expected a table",
        ),
        (
            "wrong element type in a list",
            svc("[service.health]\nkind = \"http\"\nexpect_status = [200, \"ok\"]\n"),
            "lbd.toml:9: service[0].health.expect_status[1]: invalid type",
        ),
        (
            "unknown enum value",
            "[[interface]]\nname = \"eth0\"\nxdp_mode = \"native\"\n".to_owned(),
            "lbd.toml:3: interface[0].xdp_mode: unknown variant `native`",
        ),
        (
            "unknown scheduler",
            svc("scheduler = \"round-robin\"\n"),
            "lbd.toml:7: service[0].scheduler: unknown variant `round-robin`",
        ),
        (
            "unknown check kind",
            svc("[service.health]\nkind = \"ping\"\n"),
            "lbd.toml:8: service[0].health.kind: unknown variant `ping`",
        ),
        (
            "missing vip",
            with_iface("[[service]]\nname = \"web\"\nport = 80\n"),
            "lbd.toml:3: service[0]: missing field `vip`",
        ),
        // --- values ---
        (
            "bad duration in global",
            "[global]\nsettle_after = \"soon\"\n".to_owned() + &with_iface(""),
            "lbd.toml:2: global.settle_after: invalid duration \"soon\"",
        ),
        (
            "bad duration in health",
            svc("[service.health]\ninterval = \"2 parsecs\"\n"),
            "lbd.toml:8: service[0].health.interval: invalid duration",
        ),
        (
            "zero interval",
            svc("[service.health]\ninterval = \"0s\"\n"),
            "lbd.toml:8: service[0].health.interval: must be greater than 0",
        ),
        (
            "bad VIP",
            with_iface("[[service]]\nname = \"web\"\nvip = \"10.0.0.256\"\nport = 80\n"),
            "lbd.toml:5: service[0].vip: \"10.0.0.256\" is not an IPv4 or IPv6 address",
        ),
        (
            "IPv4-mapped VIP",
            with_iface("[[service]]\nname = \"web\"\nvip = \"::ffff:10.0.0.1\"\nport = 80\n"),
            "lbd.toml:5: service[0].vip: ::ffff:10.0.0.1 is IPv4-mapped",
        ),
        (
            "bad backend address",
            svc("[[service.backend]]\naddress = \"bogus\"\n"),
            "lbd.toml:8: service[0].backend[0].address: \"bogus\" is not an IPv4 or IPv6 address",
        ),
        (
            "bad metrics address",
            "[global]\nmetrics_listen = \"localhost\"\n".to_owned() + &with_iface(""),
            "lbd.toml:2: global.metrics_listen: \"localhost\" is not an address:port",
        ),
        (
            "bad interface name",
            "[[interface]]\nname = \"a-very-long-ifname0\"\n".to_owned(),
            "lbd.toml:2: interface[0].name: \"a-very-long-ifname0\" is not a valid interface name",
        ),
        (
            "duplicate interface",
            with_iface("[[interface]]\nname = \"eth0\"\n"),
            "lbd.toml:4: interface[1].name: interface \"eth0\" is already listed as interface[0]",
        ),
        // --- semantic checks ---
        (
            "backend port differs from service port",
            b("port = 8080\n"),
            "lbd.toml:9: service[0].backend[0].port: backend port 8080 differs from service port 80 (DR forwards without port translation)",
        ),
        (
            "duplicate service",
            svc("[[service]]\nname = \"web2\"\nvip = \"10.0.0.1\"\nport = 80\nprotocol = \"tcp\"\n"),
            "lbd.toml:9: service[1].vip: duplicate service 10.0.0.1:80/tcp (already defined by service[0] \"web\")",
        ),
        (
            "duplicate service name",
            svc("[[service]]\nname = \"web\"\nvip = \"10.0.0.9\"\nport = 80\n"),
            "lbd.toml:8: service[1].name: service name \"web\" is already used by service[0]",
        ),
        (
            "duplicate backend address",
            b("[[service.backend]]\naddress = \"10.0.0.2\"\n"),
            "lbd.toml:10: service[0].backend[1].address: duplicate backend 10.0.0.2",
        ),
        (
            "weight too large",
            b("weight = 65536\n"),
            "lbd.toml:9: service[0].backend[0].weight: weight 65536 exceeds the maximum 65535",
        ),
        (
            "table size not prime",
            "[global]\nmaglev_table_size = 65536\n".to_owned() + &with_iface(""),
            "lbd.toml:2: global.maglev_table_size: 65536 is not a prime",
        ),
        (
            "table size too big",
            "[global]\nmaglev_table_size = 655379\n".to_owned() + &with_iface(""),
            "lbd.toml:2: global.maglev_table_size: 655379 exceeds the maximum 655373",
        ),
        (
            "table size 0",
            "[global]\nmaglev_table_size = 0\n".to_owned() + &with_iface(""),
            "lbd.toml:2: global.maglev_table_size: 0 is not a prime",
        ),
        (
            "table size negative",
            "[global]\nmaglev_table_size = -7\n".to_owned() + &with_iface(""),
            "lbd.toml:2: global.maglev_table_size: -7 is not a prime",
        ),
        (
            "table size a word",
            "[global]\nmaglev_table_size = \"large\"\n".to_owned() + &with_iface(""),
            "lbd.toml:2: global.maglev_table_size: \"large\" is not a table size: \"auto\" or a prime up to 655373",
        ),
        (
            "rise 0",
            svc("[service.health]\nrise = 0\n"),
            "lbd.toml:8: service[0].health.rise: must be at least 1",
        ),
        (
            "fall 0",
            svc("[service.health]\nrise = 2\nfall = 0\n"),
            "lbd.toml:9: service[0].health.fall: must be at least 1",
        ),
        (
            "timeout > interval",
            svc("[service.health]\ninterval = \"1s\"\ntimeout = \"1500ms\"\n"),
            "lbd.toml:9: service[0].health.timeout: timeout 1s 500ms is longer than interval 1s",
        ),
        (
            "default timeout > interval",
            svc("[service.health]\ninterval = \"500ms\"\n"),
            "lbd.toml:8: service[0].health.interval: timeout 1s is longer than interval 500ms",
        ),
        (
            "exec without script",
            svc("[service.health]\nkind = \"exec\"\n"),
            "lbd.toml:8: service[0].health.script: an exec check needs script",
        ),
        (
            "port 0 service with the default tcp check",
            with_iface("[[service]]\nname = \"all\"\nvip = \"10.0.0.1\"\nport = 0\n"),
            "lbd.toml:6: service[0].health.port: the service port is 0 (every port), so a tcp check needs health.port",
        ),
        (
            "port 0 service with an https check",
            with_iface(
                "[[service]]\nname = \"all\"\nvip = \"10.0.0.1\"\nport = 0\n[service.health]\nkind = \"https\"\n",
            ),
            "lbd.toml:8: service[0].health.port: the service port is 0 (every port), so an https check needs health.port",
        ),
        (
            "health port 0",
            svc("[service.health]\nport = 0\n"),
            "lbd.toml:8: service[0].health.port: must be 1..=65535",
        ),
        (
            "bad status code",
            svc("[service.health]\nkind = \"http\"\nexpect_status = [200, 99]\n"),
            "lbd.toml:9: service[0].health.expect_status[1]: 99 is not an HTTP status code",
        ),
        (
            "bad http path",
            svc("[service.health]\nkind = \"http\"\npath = \"healthz\"\n"),
            "lbd.toml:9: service[0].health.path: \"healthz\" is not a request path",
        ),
        (
            "no interface",
            String::new(),
            "lbd.toml: interface: at least one [[interface]] is required",
        ),
        // --- connection timeouts and the flood guard ---
        (
            "timeout_tcp 0",
            "[global]\ntimeout_tcp = \"0s\"\n".to_owned() + &with_iface(""),
            "lbd.toml:2: global.timeout_tcp: \"0s\" is too short: at least 1s",
        ),
        (
            "timeout_tcpfin below a second",
            "[global]\ntimeout_tcpfin = \"500ms\"\n".to_owned() + &with_iface(""),
            "lbd.toml:2: global.timeout_tcpfin: \"500ms\" is too short: at least 1s",
        ),
        (
            "timeout_udp above 31 days",
            "[global]\n\ntimeout_udp = \"32days\"\n".to_owned() + &with_iface(""),
            "lbd.toml:3: global.timeout_udp: \"32days\" exceeds the maximum 31 days (keepalived's lvs_timeouts bound)",
        ),
        (
            "bad timeout",
            "[global]\ntimeout_tcp = \"forever\"\n".to_owned() + &with_iface(""),
            "lbd.toml:2: global.timeout_tcp: invalid duration \"forever\"",
        ),
        (
            "timeout as a number",
            "[global]\ntimeout_tcp = 900\n".to_owned() + &with_iface(""),
            "lbd.toml:2: global.timeout_tcp: invalid type: integer `900`, expected a string",
        ),
        (
            "negative conn_insert_limit",
            "[global]\nconn_insert_limit = -1\n".to_owned() + &with_iface(""),
            "lbd.toml:2: global.conn_insert_limit: invalid value: integer `-1`",
        ),
        (
            "max_backends > 65535",
            "[global]\nmax_backends = 65536\n".to_owned() + &with_iface(""),
            "lbd.toml:2: global.max_backends: 65536 is out of range 1..=65535",
        ),
        (
            "IPv4 VIP with an IPv6 backend",
            svc("[[service.backend]]\naddress = \"2001:db8::2\"\n"),
            "lbd.toml:8: service[0].backend[0].address: backend 2001:db8::2 is IPv6 but the VIP 10.0.0.1 is IPv4",
        ),
        (
            "IPv6 VIP with an IPv4 backend",
            with_iface(
                "[[service]]\nname = \"v6\"\nvip = \"2001:db8::1\"\nport = 80\n[[service.backend]]\naddress = \"10.0.0.2\"\n",
            ),
            "lbd.toml:8: service[0].backend[0].address: backend 10.0.0.2 is IPv4 but the VIP 2001:db8::1 is IPv6",
        ),
        (
            "backend is the VIP",
            svc("[[service.backend]]\naddress = \"10.0.0.1\"\n"),
            "lbd.toml:8: service[0].backend[0].address: a backend cannot be the VIP itself",
        ),
        (
            "more services than max_services",
            "[global]\nmax_services = 1\n".to_owned()
                + &with_iface(
                    "[[service]]\nname = \"a\"\nvip = \"10.0.0.1\"\nport = 80\n\
                     [[service]]\nname = \"b\"\nvip = \"10.0.0.2\"\nport = 80\n",
                ),
            "lbd.toml:10: service[1].name: more than global.max_services = 1 services",
        ),
        (
            "more distinct backends than max_backends",
            "[global]\nmax_backends = 2\n".to_owned()
                + &with_iface(
                    "[[service]]\nname = \"a\"\nvip = \"10.0.0.1\"\nport = 80\n\
                     [[service.backend]]\naddress = \"10.0.1.1\"\n\
                     [[service.backend]]\naddress = \"10.0.1.2\"\n\
                     [[service]]\nname = \"b\"\nvip = \"10.0.0.1\"\nport = 443\n\
                     [[service.backend]]\naddress = \"10.0.1.2\"\n\
                     [[service.backend]]\naddress = \"10.0.1.3\"\n",
                ),
            "lbd.toml:20: service[1].backend[1].address: more than global.max_backends = 2 distinct backend addresses",
        ),
    ];
    let mut failures = Vec::new();
    for (name, text, prefix) in &cases {
        match p(text) {
            Ok(_) => failures.push(format!("{name}: parsed, expected error {prefix:?}")),
            Err(e) if !e.to_string().starts_with(prefix) => {
                failures.push(format!("{name}:\n   got {e}\n  want {prefix}"))
            }
            Err(_) => {}
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn error_fields_are_structured() {
    let err = p(&svc(
        "[[service.backend]]\naddress = \"10.0.0.2\"\nport = 8443\n",
    ))
    .unwrap_err();
    assert_eq!(err.file, PathBuf::from("lbd.toml"));
    assert_eq!(err.line, Some(9));
    assert_eq!(err.field, "service[0].backend[0].port");
    assert!(err.message.starts_with("backend port 8443"), "{err}");
    let err = p("[[interface]]\nname = 3\n").unwrap_err();
    assert_eq!(err.line, Some(2));
    assert_eq!(err.field, "interface[0].name");
}

#[test]
fn crlf_and_unicode_do_not_confuse_lines() {
    let text =
        "# héllo wörld\r\n[[interface]]\r\nname = \"eth0\"\r\n[global]\r\nmax_backends = 0\r\n";
    let err = p(text).unwrap_err();
    assert_eq!(
        (err.line, err.field.as_str()),
        (Some(5), "global.max_backends")
    );
    // Out-of-range offsets are clamped rather than panicking.
    assert_eq!(super::line_of("a\nb", 100), 2);
}

// ---------------------------------------------------------------- [[vrrp]]

/// The `[[vrrp]]` example of the design brief, verbatim, after the service it tracks.
const VRRP_FULL: &str = r#"
[[interface]]
name = "eth0"

[[service]]
name = "apiserver"
vip = "192.168.100.40"
port = 6443

[[vrrp]]
name = "VI_API"
interface = "eth0"                  # must be one of the [[interface]] names? NO — VRRP may run on any interface; just a valid interface name
virtual_router_id = 51              # 1..255
priority = 150                      # 1..255 (255 = address owner), default 100
version = 2                         # 2 | 3, default 2
advert_interval = "1s"              # default 1s; v2: whole seconds 1..255 (error otherwise); v3: multiple of 10ms, 10ms..40.95s
preempt = true                      # default true; false = keepalived nopreempt
preempt_delay = "0s"                # default 0s, <= 1000s
auth_pass = "secret12"              # v2 only (error with version 3); at most 8 bytes (longer is an error: keepalived silently truncates, we refuse)
unicast_source = "10.0.0.10"        # optional
unicast_peers = ["10.0.0.11"]       # default [] = multicast; same family as the VIPs
virtual_addresses = ["192.168.100.40/24"]   # ip/prefix, at least one; all the same family; prefix defaults to /32 or /128 when omitted
track = [{ service = "apiserver", weight = -60 }, { script = "/etc/lbd/check.sh", interval = "2s", weight = -20, fall = 2, rise = 1 }]
notify = "/etc/lbd/notify.sh"       # optional; also notify_master / notify_backup / notify_fault
garp_master_delay = "5s"            # default 5s (second burst)
garp_master_repeat = 5              # default 5
v3_checksum = "pseudo-header"       # pseudo-header (keepalived/FRR, default) | message-only (RFC 9568); receive accepts both unless "strict"
"#;

#[test]
fn vrrp_full_example_parses_to_expected_struct() {
    let cfg = p(VRRP_FULL).unwrap();
    let expected = VrrpConfig {
        name: "VI_API".into(),
        interface: "eth0".into(),
        vrid: 51,
        priority: 150,
        version: lb_vrrp::Version::V2,
        advert_interval: Duration::from_secs(1),
        preempt: true,
        preempt_delay: Duration::ZERO,
        auth_pass: Some("secret12".into()),
        unicast_source: Some(ip("10.0.0.10")),
        unicast_peers: vec![ip("10.0.0.11")],
        virtual_addresses: vec![(ip("192.168.100.40"), 24)],
        track: vec![
            Track::Service {
                service: "apiserver".into(),
                weight: -60,
                min_healthy: 1,
            },
            Track::Script {
                script: PathBuf::from("/etc/lbd/check.sh"),
                interval: Duration::from_secs(2),
                timeout: Duration::from_secs(2),
                weight: -20,
                fall: 2,
                rise: 1,
            },
        ],
        notify: Notify {
            any: Some(PathBuf::from("/etc/lbd/notify.sh")),
            master: None,
            backup: None,
            fault: None,
        },
        garp_master_delay: Duration::from_secs(5),
        garp_master_repeat: 5,
        v3_checksum: V3Checksum::PseudoHeader,
    };
    assert_eq!(cfg.vrrp, vec![expected]);
    let v = &cfg.vrrp[0];
    assert_eq!(v.auth(), Some(*b"secret12"));
    assert!(v.is_ipv4());
    assert_eq!(v.checksum_mode(), lb_vrrp::ChecksumMode::PseudoHeader);
}

/// `[[vrrp]]` with only the required keys gets the documented defaults, and
/// converts into the VRRP core's configuration.
#[test]
fn vrrp_defaults_and_instance_config() {
    let text = with_iface(
        "[[vrrp]]\nname = \"VI\"\ninterface = \"bond0.100\"\nvirtual_router_id = 7\nvirtual_addresses = [\"10.0.0.100\"]\n",
    );
    let cfg = p(&text).unwrap();
    let expected = VrrpConfig {
        name: "VI".into(),
        interface: "bond0.100".into(),
        vrid: 7,
        priority: 100,
        version: lb_vrrp::Version::V2,
        advert_interval: Duration::from_secs(1),
        preempt: true,
        preempt_delay: Duration::ZERO,
        auth_pass: None,
        unicast_source: None,
        unicast_peers: vec![],
        virtual_addresses: vec![(ip("10.0.0.100"), 32)],
        track: vec![],
        notify: Notify::default(),
        garp_master_delay: Duration::from_secs(5),
        garp_master_repeat: 5,
        v3_checksum: V3Checksum::PseudoHeader,
    };
    assert_eq!(cfg.vrrp, vec![expected]);
    let v = &cfg.vrrp[0];
    assert_eq!(v.auth(), None);
    let ic = v.instance_config(ip("10.0.0.10"));
    let mut want = lb_vrrp::InstanceConfig::new(
        "VI",
        7,
        lb_vrrp::Version::V2,
        ip("10.0.0.10"),
        vec![ip("10.0.0.100")],
    );
    assert_eq!(ic, want);
    assert_eq!(ic.validate(), Ok(()));
    // Every setting reaches the core.
    let text = with_iface(
        "[[vrrp]]\nname = \"VI\"\ninterface = \"eth0\"\nvirtual_router_id = 7\n\
         virtual_addresses = [\"10.0.0.100\"]\npriority = 90\nadvert_interval = \"3s\"\n\
         preempt = false\npreempt_delay = \"30s\"\nunicast_peers = [\"10.0.0.11\"]\n\
         garp_master_delay = \"0s\"\ngarp_master_repeat = 2\n",
    );
    let ic = p(&text).unwrap().vrrp[0].instance_config(ip("10.0.0.10"));
    want.priority = 90;
    want.advert_int = Duration::from_secs(3);
    want.preempt = false;
    want.preempt_delay = Duration::from_secs(30);
    want.unicast_peers = vec![ip("10.0.0.11")];
    want.garp_refresh_delay = Duration::ZERO;
    want.garp_repeat = 2;
    assert_eq!(ic, want);
}

#[test]
fn vrrp_assorted_valid_settings() {
    let text = svc(r#"
[[vrrp]]
name = "V6"
interface = "eth0"
virtual_router_id = 51               # same VRID and interface as V4 below: other family
version = 3
advert_interval = "10ms"
priority = 255
preempt = false
virtual_addresses = ["2001:db8::40/64", "2001:db8::41"]
unicast_source = "2001:db8::10"
unicast_peers = ["2001:db8::11", "fe80::1"]
v3_checksum = "message-only"
notify_master = "/m.sh"
notify_backup = "/b.sh"
notify_fault = "/f.sh"

[[vrrp.track]]                       # the array-of-tables form works too
service = "web"
weight = 253
min_healthy = 2

[[vrrp.track]]
script = "/bin/true"
weight = 0
timeout = "200ms"

[[vrrp]]
name = "V4"
interface = "eth0"
virtual_router_id = 51
version = 3
advert_interval = "40.95s"
virtual_addresses = ["10.0.0.100/24"]
track = [{ service = "web", weight = -253 }]

[[vrrp]]
name = "V4-other-if"
interface = "eth1"                   # same VRID on another interface
virtual_router_id = 51
advert_interval = "255s"
auth_pass = "k"
virtual_addresses = ["10.0.0.101/32"]
"#);
    let cfg = p(&text).unwrap();
    assert_eq!(cfg.vrrp.len(), 3);
    let v6 = &cfg.vrrp[0];
    assert_eq!(v6.version, lb_vrrp::Version::V3);
    assert_eq!(v6.advert_interval, Duration::from_millis(10));
    assert_eq!(v6.priority, 255);
    assert!(!v6.preempt);
    assert!(!v6.is_ipv4());
    assert_eq!(
        v6.virtual_addresses,
        vec![(ip("2001:db8::40"), 64), (ip("2001:db8::41"), 128)]
    );
    assert_eq!(v6.unicast_peers, vec![ip("2001:db8::11"), ip("fe80::1")]);
    assert_eq!(v6.v3_checksum, V3Checksum::MessageOnly);
    assert_eq!(v6.checksum_mode(), lb_vrrp::ChecksumMode::MessageOnly);
    assert_eq!(
        v6.notify,
        Notify {
            any: None,
            master: Some("/m.sh".into()),
            backup: Some("/b.sh".into()),
            fault: Some("/f.sh".into()),
        }
    );
    assert_eq!(
        v6.track,
        vec![
            Track::Service {
                service: "web".into(),
                weight: 253,
                min_healthy: 2
            },
            Track::Script {
                script: "/bin/true".into(),
                interval: Duration::from_secs(1),
                timeout: Duration::from_millis(200),
                weight: 0,
                fall: 1,
                rise: 1,
            },
        ]
    );
    assert_eq!(v6.instance_config(ip("2001:db8::10")).validate(), Ok(()));
    assert_eq!(cfg.vrrp[1].advert_interval, Duration::from_millis(40_950));
    assert_eq!(cfg.vrrp[1].track[0].weight(), -253);
    assert_eq!(cfg.vrrp[2].advert_interval, Duration::from_secs(255));
    assert_eq!(cfg.vrrp[2].auth(), Some(*b"k\0\0\0\0\0\0\0"));
}

#[test]
fn vrrp_serializes_for_lbctl_json() {
    let cfg = p(VRRP_FULL).unwrap();
    let json = serde_json::to_value(&cfg).unwrap();
    let v = &json["vrrp"][0];
    assert_eq!(v["name"], "VI_API");
    assert_eq!(v["vrid"], 51);
    assert_eq!(v["version"], 2);
    assert_eq!(v["advert_interval"], "1s");
    assert_eq!(v["preempt_delay"], "0s");
    assert_eq!(v["virtual_addresses"][0], "192.168.100.40/24");
    assert_eq!(v["unicast_peers"][0], "10.0.0.11");
    assert_eq!(v["track"][0]["service"], "apiserver");
    assert_eq!(v["track"][0]["weight"], -60);
    assert_eq!(v["track"][0]["min_healthy"], 1);
    assert_eq!(v["track"][1]["script"], "/etc/lbd/check.sh");
    assert_eq!(v["track"][1]["interval"], "2s");
    assert_eq!(v["notify"]["any"], "/etc/lbd/notify.sh");
    assert_eq!(v["notify"]["master"], serde_json::Value::Null);
    assert_eq!(v["garp_master_delay"], "5s");
    assert_eq!(v["v3_checksum"], "pseudo-header");
    assert_eq!(json["vrrp"].as_array().map(Vec::len), Some(1));
    let empty = serde_json::to_value(p(MINIMAL).unwrap()).unwrap();
    assert_eq!(empty["vrrp"], serde_json::json!([]));
}

/// Service `web` on lines 1-6, `[[vrrp]]` on line 7; `body` starts on line 8.
fn vrrp_raw(body: &str) -> String {
    svc(&format!("[[vrrp]]\n{body}"))
}

/// A valid instance `VI` (VRID 51 on eth0, 10.0.0.100/24) on lines 7-11; `extra`
/// starts on line 12.
fn vr(extra: &str) -> String {
    vrrp_raw(&format!(
        "name = \"VI\"\ninterface = \"eth0\"\nvirtual_router_id = 51\nvirtual_addresses = [\"10.0.0.100/24\"]\n{extra}"
    ))
}

/// A second instance on lines 12-16 (VRID on line 15, VIP on line 16).
fn second(name: &str, interface: &str, vrid: u8, vip: &str) -> String {
    format!(
        "[[vrrp]]\nname = \"{name}\"\ninterface = \"{interface}\"\nvirtual_router_id = {vrid}\nvirtual_addresses = [\"{vip}\"]\n"
    )
}

#[test]
fn bad_vrrp_configs_name_file_line_and_field() {
    assert!(p(&vr("")).is_ok(), "the base of the cases must be valid");
    let cases: Vec<(&str, String, &str)> = vec![
        // --- TOML level ---
        (
            "unknown key",
            vr("nopreempt = true\n"),
            "lbd.toml:12: vrrp[0].nopreempt: unknown field `nopreempt`",
        ),
        (
            "unknown key in a track entry",
            vr("track = [{ service = \"web\", wieght = 1 }]\n"),
            "lbd.toml:12: vrrp[0].track[0].wieght: unknown field `wieght`",
        ),
        (
            "missing virtual_router_id",
            vrrp_raw("name = \"VI\"\ninterface = \"eth0\"\nvirtual_addresses = [\"10.0.0.100\"]\n"),
            "lbd.toml:7: vrrp[0]: missing field `virtual_router_id`",
        ),
        (
            "unknown v3_checksum",
            vr("v3_checksum = \"strict\"\n"),
            "lbd.toml:12: vrrp[0].v3_checksum: unknown variant `strict`",
        ),
        (
            "wrong type for priority",
            vr("priority = \"high\"\n"),
            "lbd.toml:12: vrrp[0].priority: invalid type: string \"high\"",
        ),
        // --- identity ---
        (
            "duplicate instance name",
            vr(&second("VI", "eth0", 52, "10.0.0.101")),
            "lbd.toml:13: vrrp[1].name: VRRP instance name \"VI\" is already used by vrrp[0]",
        ),
        (
            "empty instance name",
            vrrp_raw("name = \" \"\ninterface = \"eth0\"\nvirtual_router_id = 51\nvirtual_addresses = [\"10.0.0.100\"]\n"),
            "lbd.toml:8: vrrp[0].name: must not be empty",
        ),
        (
            "bad interface name",
            vrrp_raw("name = \"VI\"\ninterface = \"eth0:1\"\nvirtual_router_id = 51\nvirtual_addresses = [\"10.0.0.100\"]\n"),
            "lbd.toml:9: vrrp[0].interface: \"eth0:1\" is not a valid interface name",
        ),
        (
            "vrid 0",
            vrrp_raw("name = \"VI\"\ninterface = \"eth0\"\nvirtual_router_id = 0\nvirtual_addresses = [\"10.0.0.100\"]\n"),
            "lbd.toml:10: vrrp[0].virtual_router_id: 0 is out of range 1..=255",
        ),
        (
            "vrid 256",
            vrrp_raw("name = \"VI\"\ninterface = \"eth0\"\nvirtual_router_id = 256\nvirtual_addresses = [\"10.0.0.100\"]\n"),
            "lbd.toml:10: vrrp[0].virtual_router_id: 256 is out of range 1..=255",
        ),
        (
            "duplicate vrid on one interface and family",
            vr(&second("VI2", "eth0", 51, "10.0.0.101")),
            "lbd.toml:15: vrrp[1].virtual_router_id: virtual_router_id 51 is already used on eth0 for IPv4 by vrrp[0] \"VI\"",
        ),
        (
            "a VIP in two instances",
            vr(&second("VI2", "eth1", 52, "10.0.0.100/32")),
            "lbd.toml:16: vrrp[1].virtual_addresses[0]: 10.0.0.100 is already a virtual address of vrrp[0] \"VI\"",
        ),
        // --- priority, version, timers ---
        (
            "priority 0",
            vr("priority = 0\n"),
            "lbd.toml:12: vrrp[0].priority: 0 is out of range 1..=255 (255 = address owner; 0 is reserved for a master leaving)",
        ),
        (
            "priority 256",
            vr("priority = 256\n"),
            "lbd.toml:12: vrrp[0].priority: 256 is out of range 1..=255",
        ),
        (
            "version 4",
            vr("version = 4\n"),
            "lbd.toml:12: vrrp[0].version: VRRP version 4 does not exist (2 or 3)",
        ),
        (
            "v2 interval not whole seconds",
            vr("advert_interval = \"1500ms\"\n"),
            "lbd.toml:12: vrrp[0].advert_interval: 1s 500ms is not allowed with version 2: whole seconds 1s..=255s",
        ),
        (
            "v2 interval above 255s",
            vr("advert_interval = \"256s\"\n"),
            "lbd.toml:12: vrrp[0].advert_interval: 4m 16s is not allowed with version 2",
        ),
        (
            "v2 interval 0",
            vr("advert_interval = \"0s\"\n"),
            "lbd.toml:12: vrrp[0].advert_interval: 0s is not allowed with version 2",
        ),
        (
            "v3 interval below 10ms",
            vr("version = 3\nadvert_interval = \"5ms\"\n"),
            "lbd.toml:13: vrrp[0].advert_interval: 5ms is not allowed with version 3: a multiple of 10ms, 10ms..=40s 950ms",
        ),
        (
            "v3 interval above 40.95s",
            vr("version = 3\nadvert_interval = \"41s\"\n"),
            "lbd.toml:13: vrrp[0].advert_interval: 41s is not allowed with version 3",
        ),
        (
            "v3 interval not a multiple of 10ms",
            vr("version = 3\nadvert_interval = \"15ms\"\n"),
            "lbd.toml:13: vrrp[0].advert_interval: 15ms is not allowed with version 3",
        ),
        (
            "bad interval duration",
            vr("advert_interval = \"fast\"\n"),
            "lbd.toml:12: vrrp[0].advert_interval: invalid duration \"fast\"",
        ),
        (
            "preempt_delay above 1000s",
            vr("preempt_delay = \"1001s\"\n"),
            "lbd.toml:12: vrrp[0].preempt_delay: 16m 41s exceeds the maximum 1000s",
        ),
        (
            "bad garp_master_delay",
            vr("garp_master_delay = \"later\"\n"),
            "lbd.toml:12: vrrp[0].garp_master_delay: invalid duration \"later\"",
        ),
        // --- authentication ---
        (
            "auth with version 3",
            vr("version = 3\nauth_pass = \"secret\"\n"),
            "lbd.toml:13: vrrp[0].auth_pass: VRRP version 3 has no authentication",
        ),
        (
            "password longer than 8 bytes",
            vr("auth_pass = \"secret123\"\n"),
            "lbd.toml:12: vrrp[0].auth_pass: the password is 9 bytes, at most 8 fit in a VRRPv2 advert (keepalived would silently truncate it; lbd refuses)",
        ),
        (
            "password of 8 bytes in multi-byte characters",
            vr("auth_pass = \"pässwort\"\n"),
            "lbd.toml:12: vrrp[0].auth_pass: the password is 9 bytes",
        ),
        (
            "empty password",
            vr("auth_pass = \"\"\n"),
            "lbd.toml:12: vrrp[0].auth_pass: ",
        ),
        // --- addresses ---
        (
            "no virtual_addresses",
            vrrp_raw("name = \"VI\"\ninterface = \"eth0\"\nvirtual_router_id = 51\n"),
            "lbd.toml:8: vrrp[0].virtual_addresses: at least one virtual address is required",
        ),
        (
            "empty virtual_addresses",
            vrrp_raw("name = \"VI\"\ninterface = \"eth0\"\nvirtual_router_id = 51\nvirtual_addresses = []\n"),
            "lbd.toml:11: vrrp[0].virtual_addresses: at least one virtual address is required",
        ),
        (
            "mixed families",
            vrrp_raw("name = \"VI\"\ninterface = \"eth0\"\nvirtual_router_id = 51\nversion = 3\nvirtual_addresses = [\"10.0.0.100\",\n  \"2001:db8::1\"]\n"),
            "lbd.toml:13: vrrp[0].virtual_addresses[1]: 2001:db8::1 is IPv6 but virtual_addresses[0] 10.0.0.100 is IPv4",
        ),
        (
            "prefix too long",
            vrrp_raw("name = \"VI\"\ninterface = \"eth0\"\nvirtual_router_id = 51\nvirtual_addresses = [\"10.0.0.100/33\"]\n"),
            "lbd.toml:11: vrrp[0].virtual_addresses[0]: \"10.0.0.100/33\" has a bad prefix length \"33\" (1..=32 for IPv4",
        ),
        (
            "prefix not a number",
            vrrp_raw("name = \"VI\"\ninterface = \"eth0\"\nvirtual_router_id = 51\nvirtual_addresses = [\"10.0.0.100/x\"]\n"),
            "lbd.toml:11: vrrp[0].virtual_addresses[0]: \"10.0.0.100/x\" has a bad prefix length \"x\"",
        ),
        (
            "prefix 0",
            vrrp_raw("name = \"VI\"\ninterface = \"eth0\"\nvirtual_router_id = 51\nvirtual_addresses = [\"10.0.0.100/0\"]\n"),
            "lbd.toml:11: vrrp[0].virtual_addresses[0]: \"10.0.0.100/0\" has a bad prefix length \"0\"",
        ),
        (
            "IPv6 prefix too long",
            vrrp_raw("name = \"VI\"\ninterface = \"eth0\"\nvirtual_router_id = 51\nversion = 3\nvirtual_addresses = [\"2001:db8::1/129\"]\n"),
            "lbd.toml:12: vrrp[0].virtual_addresses[0]: \"2001:db8::1/129\" has a bad prefix length \"129\" (1..=128 for IPv6",
        ),
        (
            "bad virtual address",
            vrrp_raw("name = \"VI\"\ninterface = \"eth0\"\nvirtual_router_id = 51\nvirtual_addresses = [\"10.0.0.300/24\"]\n"),
            "lbd.toml:11: vrrp[0].virtual_addresses[0]: \"10.0.0.300\" is not an IPv4 or IPv6 address",
        ),
        (
            "multicast virtual address",
            vrrp_raw("name = \"VI\"\ninterface = \"eth0\"\nvirtual_router_id = 51\nvirtual_addresses = [\"224.0.0.18\"]\n"),
            "lbd.toml:11: vrrp[0].virtual_addresses[0]: 224.0.0.18 is an unspecified, multicast or broadcast address",
        ),
        (
            "duplicate virtual address",
            vrrp_raw("name = \"VI\"\ninterface = \"eth0\"\nvirtual_router_id = 51\nvirtual_addresses = [\"10.0.0.100/24\", \"10.0.0.100\"]\n"),
            "lbd.toml:11: vrrp[0].virtual_addresses[1]: 10.0.0.100 is already listed as virtual_addresses[0]",
        ),
        (
            "IPv6 with the default version 2",
            vrrp_raw("name = \"VI\"\ninterface = \"eth0\"\nvirtual_router_id = 51\nvirtual_addresses = [\"2001:db8::1\"]\n"),
            "lbd.toml:11: vrrp[0].virtual_addresses[0]: VRRP version 2 carries IPv4 only",
        ),
        (
            "IPv6 with an explicit version 2",
            vrrp_raw("name = \"VI\"\ninterface = \"eth0\"\nvirtual_router_id = 51\nversion = 2\nvirtual_addresses = [\"2001:db8::1\"]\n"),
            "lbd.toml:11: vrrp[0].version: VRRP version 2 carries IPv4 only: IPv6 virtual addresses need version = 3",
        ),
        (
            "unicast peer of the other family",
            vr("unicast_peers = [\"10.0.0.11\", \"2001:db8::2\"]\n"),
            "lbd.toml:12: vrrp[0].unicast_peers[1]: 2001:db8::2 is IPv6 but the virtual addresses are IPv4",
        ),
        (
            "unicast source of the other family",
            vr("unicast_source = \"2001:db8::2\"\n"),
            "lbd.toml:12: vrrp[0].unicast_source: 2001:db8::2 is IPv6 but the virtual addresses are IPv4",
        ),
        (
            "bad unicast peer",
            vr("unicast_peers = [\"peer1\"]\n"),
            "lbd.toml:12: vrrp[0].unicast_peers[0]: \"peer1\" is not an IPv4 or IPv6 address",
        ),
        (
            "duplicate unicast peer",
            vr("unicast_peers = [\"10.0.0.11\", \"10.0.0.11\"]\n"),
            "lbd.toml:12: vrrp[0].unicast_peers[1]: 10.0.0.11 is already listed as unicast_peers[0]",
        ),
        (
            "unicast peer is the source",
            vr("unicast_source = \"10.0.0.10\"\nunicast_peers = [\"10.0.0.10\"]\n"),
            "lbd.toml:13: vrrp[0].unicast_peers[0]: 10.0.0.10 is the unicast_source itself",
        ),
        (
            "unicast source is a virtual address",
            vr("unicast_source = \"10.0.0.100\"\n"),
            "lbd.toml:12: vrrp[0].unicast_source: 10.0.0.100 is one of the virtual addresses",
        ),
        (
            "unicast peer is a virtual address",
            vr("unicast_peers = [\"10.0.0.100\"]\n"),
            "lbd.toml:12: vrrp[0].unicast_peers[0]: 10.0.0.100 is one of the virtual addresses",
        ),
        // --- tracking ---
        (
            "tracked service unknown",
            vr("track = [{ service = \"nope\", weight = -10 }]\n"),
            "lbd.toml:12: vrrp[0].track[0].service: no [[service]] is named \"nope\"",
        ),
        (
            "weight above 253",
            vr("track = [{ service = \"web\", weight = 254 }]\n"),
            "lbd.toml:12: vrrp[0].track[0].weight: 254 is out of range -253..=253 (keepalived's range; 0 = FAULT while failing)",
        ),
        (
            "weight below -253",
            vr("track = [\n  { service = \"web\" },\n  { script = \"/c.sh\", weight = -254 },\n]\n"),
            "lbd.toml:14: vrrp[0].track[1].weight: -254 is out of range -253..=253",
        ),
        (
            "script track without script",
            vr("track = [{ interval = \"2s\", weight = -20 }]\n"),
            "lbd.toml:12: vrrp[0].track[0].script: a script track needs script",
        ),
        (
            "track entry with neither service nor script",
            vr("[[vrrp.track]]\nweight = 5\n"),
            "lbd.toml:13: vrrp[0].track[0].service: a track entry needs service (a [[service]] name) or script",
        ),
        (
            "track entry with both service and script",
            vr("track = [{ service = \"web\", script = \"/c.sh\" }]\n"),
            "lbd.toml:12: vrrp[0].track[0].script: a track entry is either a service or a script, not both",
        ),
        (
            "script setting on a service track",
            vr("[[vrrp.track]]\nservice = \"web\"\nfall = 2\n"),
            "lbd.toml:14: vrrp[0].track[0].fall: fall applies to a script track, not a service track",
        ),
        (
            "min_healthy on a script track",
            vr("track = [{ script = \"/c.sh\", min_healthy = 2 }]\n"),
            "lbd.toml:12: vrrp[0].track[0].min_healthy: min_healthy applies to a service track",
        ),
        (
            "min_healthy 0",
            vr("track = [{ service = \"web\", min_healthy = 0 }]\n"),
            "lbd.toml:12: vrrp[0].track[0].min_healthy: must be at least 1",
        ),
        (
            "empty script",
            vr("track = [{ script = \"\" }]\n"),
            "lbd.toml:12: vrrp[0].track[0].script: must not be empty",
        ),
        (
            "script interval 0",
            vr("track = [{ script = \"/c.sh\", interval = \"0s\" }]\n"),
            "lbd.toml:12: vrrp[0].track[0].interval: must be greater than 0",
        ),
        (
            "script timeout above interval",
            vr("[[vrrp.track]]\nscript = \"/c.sh\"\ninterval = \"1s\"\ntimeout = \"2s\"\n"),
            "lbd.toml:15: vrrp[0].track[0].timeout: timeout 2s is longer than interval 1s",
        ),
        (
            "script fall 0",
            vr("track = [{ script = \"/c.sh\", fall = 0 }]\n"),
            "lbd.toml:12: vrrp[0].track[0].fall: must be at least 1",
        ),
        (
            "script rise 0",
            vr("track = [{ script = \"/c.sh\", rise = 0 }]\n"),
            "lbd.toml:12: vrrp[0].track[0].rise: must be at least 1",
        ),
        // --- notify ---
        (
            "empty notify path",
            vr("notify_fault = \"\"\n"),
            "lbd.toml:12: vrrp[0].notify_fault: must not be empty",
        ),
    ];
    let mut failures = Vec::new();
    for (name, text, prefix) in &cases {
        match p(text) {
            Ok(_) => failures.push(format!("{name}: parsed, expected error {prefix:?}")),
            Err(e) if !e.to_string().starts_with(prefix) => {
                failures.push(format!("{name}:\n   got {e}\n  want {prefix}"))
            }
            Err(_) => {}
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

// ---------------------------------------------------------------- [sync]

/// A key of 16 bytes, the shortest accepted.
const KEY16: &str = "0123456789abcdef";

#[test]
fn sync_defaults() {
    let cfg = p(&vr(&format!("[sync]\nkey = \"{KEY16}\"\n"))).unwrap();
    let sync = cfg.sync.as_ref().unwrap();
    assert_eq!(
        *sync,
        SyncConfig {
            key: KEY16.as_bytes().to_vec(),
            key_file: None,
            port: 8848,
            peers: vec![],
            instance: None,
            group: ip("224.0.0.81"),
            max_rate: 2000,
            max_queue: 65536,
        }
    );
    assert_eq!(sync.port, SyncConfig::DEFAULT_PORT);
    assert_eq!(sync.group, SyncConfig::DEFAULT_GROUP);
    // Without [sync]: none, and nowhere to send.
    let cfg = p(&vr("")).unwrap();
    assert_eq!(cfg.sync, None);
    assert!(cfg.sync_peers().is_empty());
}

#[test]
fn sync_settings() {
    let text = vr(&format!(
        "[sync]\nkey = \"{KEY16}-and-more\"\nport = 9000\n\
         peers = [\"10.0.0.11\", \"10.0.0.12:9001\", \"[2001:db8::12]:9002\", \"2001:db8::13\", \"[2001:db8::14]\"]\n\
         instance = \"VI\"\ngroup = \"ff02::81\"\nmax_rate = 1000000\nmax_queue = 16777216\n"
    ));
    let sync = p(&text).unwrap().sync.unwrap();
    assert_eq!(sync.key, format!("{KEY16}-and-more").into_bytes());
    assert_eq!(sync.port, 9000);
    let peers: Vec<SocketAddr> = [
        "10.0.0.11:9000",
        "10.0.0.12:9001",
        "[2001:db8::12]:9002",
        "[2001:db8::13]:9000",
        "[2001:db8::14]:9000",
    ]
    .iter()
    .map(|s| s.parse().unwrap())
    .collect();
    assert_eq!(sync.peers, peers);
    assert_eq!(sync.instance.as_deref(), Some("VI"));
    assert_eq!(sync.group, ip("ff02::81"));
    assert_eq!((sync.max_rate, sync.max_queue), (1_000_000, 1 << 24));
    // Explicit peers need no [[vrrp]].
    let cfg = p(&svc(&format!(
        "[sync]\nkey = \"{KEY16}\"\npeers = [\"10.0.0.11\"]\n"
    )))
    .unwrap();
    assert_eq!(
        cfg.sync_peers(),
        vec![SyncPeer::Unicast("10.0.0.11:8848".parse().unwrap())]
    );
}

#[test]
fn sync_key_file_is_read_and_trimmed() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sync.key");
    std::fs::write(&file, "c2VjcmV0LWtleS1vZi0zMi1ieXRlcw==\n\n \t").unwrap();
    let text = vr(&format!("[sync]\nkey_file = \"{}\"\n", file.display()));
    let sync = p(&text).unwrap().sync.unwrap();
    assert_eq!(sync.key, b"c2VjcmV0LWtleS1vZi0zMi1ieXRlcw==");
    assert_eq!(sync.key_file.as_deref(), Some(file.as_path()));
    // load reads it too.
    let conf = dir.path().join("lbd.toml");
    std::fs::write(&conf, &text).unwrap();
    assert_eq!(load(&conf).unwrap().sync.unwrap().key, sync.key);
    // A binary key is used as it is (only trailing whitespace goes).
    let binary: Vec<u8> = (0u8..=255).rev().collect();
    std::fs::write(&file, &binary).unwrap();
    assert_eq!(p(&text).unwrap().sync.unwrap().key, binary);
    std::fs::write(&file, [&binary[..], b" \t\r\n\x0c\n"].concat()).unwrap();
    assert_eq!(p(&text).unwrap().sync.unwrap().key, binary);
}

#[test]
fn sync_key_file_not_read_for_the_importer() {
    let text = vr("[sync]\nkey_file = \"/nonexistent/lbd/sync.key\"\n");
    let err = p(&text).unwrap_err();
    assert!(
        err.to_string().starts_with(
            "lbd.toml:13: sync.key_file: cannot read /nonexistent/lbd/sync.key: cannot open: No such file or directory"
        ),
        "{err}"
    );
    let cfg = parse_with(&text, Path::new("lbd.toml"), KeyFiles::NotRead).unwrap();
    let sync = cfg.sync.unwrap();
    assert!(sync.key.is_empty());
    assert_eq!(
        sync.key_file.as_deref(),
        Some(Path::new("/nonexistent/lbd/sync.key"))
    );
    // The path is still checked.
    let err = parse_with(
        &vr("[sync]\nkey_file = \"sync.key\"\n"),
        Path::new("lbd.toml"),
        KeyFiles::NotRead,
    )
    .unwrap_err();
    assert_eq!(err.field, "sync.key_file");
}

#[test]
fn the_sync_key_is_never_shown() {
    const SECRET: &str = "very-secret-sync-key-0123456789";
    let cfg = p(&vr(&format!("[sync]\nkey = \"{SECRET}\"\n"))).unwrap();
    let sync = cfg.sync.as_ref().unwrap();
    assert_eq!(sync.key, SECRET.as_bytes());
    for shown in [
        format!("{cfg:?}"),
        format!("{cfg:#?}"),
        format!("{sync:?}"),
        serde_json::to_string(&cfg).unwrap(),
        serde_json::to_string_pretty(sync).unwrap(),
        toml::to_string(sync).unwrap(),
    ] {
        assert!(!shown.contains(SECRET), "{shown}");
        assert!(!shown.contains("very-secret"), "{shown}");
    }
    assert!(format!("{sync:?}").contains("key: <redacted>"));
    let json = serde_json::to_value(&cfg).unwrap();
    assert_eq!(json["sync"].get("key"), None);
    assert_eq!(json["sync"]["key_file"], serde_json::Value::Null);
    assert_eq!(json["sync"]["port"], 8848);
    assert_eq!(json["sync"]["group"], "224.0.0.81");
    // Nor in an error: a key that is too short, a config with another error.
    let short = "short-secret";
    let err = p(&vr(&format!("[sync]\nkey = \"{short}\"\n"))).unwrap_err();
    assert!(!err.to_string().contains(short), "{err}");
    assert!(!format!("{err:?}").contains(short), "{err:?}");
    let err = p(&vr(&format!("[sync]\nkey = \"{SECRET}\"\nport = 0\n"))).unwrap_err();
    assert!(!err.to_string().contains(SECRET), "{err}");
    let err = p(&vr(&format!("[sync]\nkey = \"{SECRET}\"\nbogus = 1\n"))).unwrap_err();
    assert!(!err.to_string().contains(SECRET), "{err}");
    // A key file's content is not echoed either.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("k");
    std::fs::write(&file, "tiny-secret\n").unwrap();
    let err = p(&vr(&format!("[sync]\nkey_file = \"{}\"\n", file.display()))).unwrap_err();
    assert!(!err.to_string().contains("tiny-secret"), "{err}");
}

/// Three instances: `VI` (multicast, eth0), `U1` (unicast to 10.0.0.11 and
/// 10.0.0.12, eth1) and `U2` (unicast to 10.0.0.12 and 10.0.0.13, eth1), then `sync`.
fn three_instances(sync: &str) -> Config {
    let text = vr(&format!(
        "{}unicast_peers = [\"10.0.0.11\", \"10.0.0.12\"]\n{}unicast_peers = [\"10.0.0.12\", \"10.0.0.13\"]\n\
         [[vrrp]]\nname = \"M2\"\ninterface = \"eth0\"\nvirtual_router_id = 54\nvirtual_addresses = [\"10.0.1.103\"]\n\
         [sync]\nkey = \"{KEY16}\"\n{sync}",
        second("U1", "eth1", 52, "10.0.1.101"),
        second("U2", "eth1", 53, "10.0.1.102"),
    ));
    p(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

#[test]
fn sync_peers_resolution() {
    let uni = |s: &str| SyncPeer::Unicast(s.parse().unwrap());
    let multi = |group: &str, interface: &str| SyncPeer::Multicast {
        group: group.parse().unwrap(),
        interface: interface.into(),
    };

    // Explicit peers win, whatever the instances.
    let cfg = three_instances("peers = [\"10.0.9.1\", \"10.0.9.2:7000\"]\ninstance = \"U1\"\n");
    assert_eq!(
        cfg.sync_peers(),
        vec![uni("10.0.9.1:8848"), uni("10.0.9.2:7000")]
    );
    // The named instance's unicast peers, at the sync port.
    let cfg = three_instances("instance = \"U1\"\nport = 8850\n");
    assert_eq!(
        cfg.sync_peers(),
        vec![uni("10.0.0.11:8850"), uni("10.0.0.12:8850")]
    );
    // A named instance without unicast peers: the group on its interface.
    let cfg = three_instances("instance = \"VI\"\n");
    assert_eq!(cfg.sync_peers(), vec![multi("224.0.0.81:8848", "eth0")]);
    let cfg = three_instances("instance = \"VI\"\ngroup = \"239.1.2.3\"\nport = 9\n");
    assert_eq!(cfg.sync_peers(), vec![multi("239.1.2.3:9", "eth0")]);
    // No instance named: every instance, in file order, each destination once
    // (10.0.0.12 is a peer of U1 and U2; VI and M2 multicast on the same eth0).
    let cfg = three_instances("");
    assert_eq!(
        cfg.sync_peers(),
        vec![
            multi("224.0.0.81:8848", "eth0"),
            uni("10.0.0.11:8848"),
            uni("10.0.0.12:8848"),
            uni("10.0.0.13:8848"),
        ]
    );
    // IPv6 unicast peers.
    let text = svc(&format!(
        "[[vrrp]]\nname = \"V6\"\ninterface = \"eth2\"\nvirtual_router_id = 1\nversion = 3\n\
         virtual_addresses = [\"2001:db8::40\"]\nunicast_peers = [\"2001:db8::11\"]\n\
         [sync]\nkey = \"{KEY16}\"\n"
    ));
    assert_eq!(
        p(&text).unwrap().sync_peers(),
        vec![uni("[2001:db8::11]:8848")]
    );
}

#[test]
fn bad_sync_configs_name_file_line_and_field() {
    let k = format!("key = \"{KEY16}\"\n");
    // With the instance VI: [sync] on line 12, the next key on 13 (14 after `k`).
    let s = |body: &str| vr(&format!("[sync]\n{body}"));
    let sk = |body: &str| vr(&format!("[sync]\n{k}{body}"));
    let dir = tempfile::tempdir().unwrap();
    let short = dir.path().join("short.key");
    std::fs::write(&short, "0123456789abcde \n").unwrap();
    let long = dir.path().join("long.key");
    std::fs::write(&long, "k".repeat(4097)).unwrap();
    let empty = dir.path().join("empty.key");
    std::fs::write(&empty, "\n\n").unwrap();
    let cases: Vec<(&str, String, String)> = vec![
        // --- TOML level ---
        (
            "unknown key",
            sk("peer = [\"10.0.0.11\"]\n"),
            "lbd.toml:14: sync.peer: unknown field `peer`".into(),
        ),
        (
            "not a table",
            format!("sync = 1\n{}", vr("")),
            "lbd.toml:1: sync: invalid type: integer `1`, expected a table".into(),
        ),
        (
            "wrong type for the key",
            s("key = 1234567890123456\n"),
            "lbd.toml:13: sync.key: invalid type: integer `1234567890123456`, expected a string".into(),
        ),
        // --- the key ---
        (
            "no key",
            s("port = 8848\n"),
            "lbd.toml:12: sync.key: [sync] needs key (a shared secret of at least 16 bytes, the same on every node) or key_file (a file holding it); make one with: install -m 600 /dev/null /etc/lbd/sync.key && head -c 32 /dev/urandom | base64 > /etc/lbd/sync.key".into(),
        ),
        (
            "empty [sync]",
            vr("\n[ sync ]   # flow sync\n"),
            "lbd.toml:13: sync.key: [sync] needs key".into(),
        ),
        (
            "key and key_file",
            s(&format!("{k}key_file = \"/etc/lbd/sync.key\"\n")),
            "lbd.toml:14: sync.key_file: give key or key_file, not both".into(),
        ),
        (
            "key too short",
            s("key = \"0123456789abcde\"\n"),
            "lbd.toml:13: sync.key: the key is 15 bytes: at least 16 are needed (make one with: install -m 600".into(),
        ),
        (
            "key too long",
            s(&format!("key = \"{}\"\n", "k".repeat(4097))),
            "lbd.toml:13: sync.key: the key is 4097 bytes: at most 4096".into(),
        ),
        (
            "key_file relative",
            s("key_file = \"sync.key\"\n"),
            "lbd.toml:13: sync.key_file: sync.key is not an absolute path".into(),
        ),
        (
            "key_file empty",
            s("key_file = \"\"\n"),
            "lbd.toml:13: sync.key_file: must not be empty".into(),
        ),
        (
            "key_file missing",
            s(&format!("key_file = \"{}/missing\"\n", dir.path().display())),
            format!(
                "lbd.toml:13: sync.key_file: cannot read {}/missing: cannot open: No such file or directory",
                dir.path().display()
            ),
        ),
        (
            "key_file is a directory",
            s(&format!("key_file = \"{}\"\n", dir.path().display())),
            format!(
                "lbd.toml:13: sync.key_file: cannot read {}: a directory, not a regular file",
                dir.path().display()
            ),
        ),
        (
            "key_file is a device",
            s("key_file = \"/dev/zero\"\n"),
            "lbd.toml:13: sync.key_file: cannot read /dev/zero: a character device, not a regular file".into(),
        ),
        (
            "key_file too short once trimmed",
            s(&format!("key_file = \"{}\"\n", short.display())),
            format!(
                "lbd.toml:13: sync.key_file: {} holds 15 bytes: at least 16 are needed",
                short.display()
            ),
        ),
        (
            "key_file of blank lines",
            s(&format!("key_file = \"{}\"\n", empty.display())),
            format!(
                "lbd.toml:13: sync.key_file: {} holds 0 bytes: at least 16",
                empty.display()
            ),
        ),
        (
            "key_file too large",
            s(&format!("key_file = \"{}\"\n", long.display())),
            format!(
                "lbd.toml:13: sync.key_file: cannot read {}: the file is 4097 bytes (4097 bytes), larger than the 4096 bytes limit",
                long.display()
            ),
        ),
        // --- port, peers, instance, group ---
        (
            "port 0",
            sk("port = 0\n"),
            "lbd.toml:14: sync.port: 0 is out of range 1..=65535".into(),
        ),
        (
            "port too large",
            sk("port = 65536\n"),
            "lbd.toml:14: sync.port: 65536 is out of range 1..=65535".into(),
        ),
        (
            "bad peer",
            sk("peers = [\"10.0.0.11\",\n  \"lb-b\"]\n"),
            "lbd.toml:15: sync.peers[1]: \"lb-b\" is not \"IP\", \"IP:port\" or \"[IPv6]:port\"".into(),
        ),
        (
            "IPv6 peer with a port but no brackets",
            sk("peers = [\"2001:db8::1:8848:x\"]\n"),
            "lbd.toml:14: sync.peers[0]: \"2001:db8::1:8848:x\" is not".into(),
        ),
        (
            "peer port 0",
            sk("peers = [\"10.0.0.11:0\"]\n"),
            "lbd.toml:14: sync.peers[0]: \"10.0.0.11:0\": port 0 (1..=65535; leave it out for [sync] port = 8848)".into(),
        ),
        (
            "multicast peer",
            sk("peers = [\"224.0.0.81\"]\n"),
            "lbd.toml:14: sync.peers[0]: 224.0.0.81 is an unspecified, multicast or broadcast address: peers are unicast".into(),
        ),
        (
            "unspecified peer",
            sk("peers = [\"[::]:8848\"]\n"),
            "lbd.toml:14: sync.peers[0]: :: is an unspecified, multicast or broadcast address".into(),
        ),
        (
            "IPv4-mapped peer",
            sk("peers = [\"::ffff:10.0.0.11\"]\n"),
            "lbd.toml:14: sync.peers[0]: ::ffff:10.0.0.11 is IPv4-mapped: write it as 10.0.0.11".into(),
        ),
        (
            "duplicate peer (the default port written out)",
            sk("peers = [\"10.0.0.11\", \"10.0.0.11:8848\"]\n"),
            "lbd.toml:14: sync.peers[1]: 10.0.0.11:8848 is already listed as peers[0]".into(),
        ),
        (
            "unknown instance",
            sk("instance = \"VI_1\"\n"),
            "lbd.toml:14: sync.instance: no [[vrrp]] is named \"VI_1\"".into(),
        ),
        (
            "empty instance",
            sk("instance = \"\"\n"),
            "lbd.toml:14: sync.instance: must not be empty".into(),
        ),
        (
            "no peers and no [[vrrp]]",
            svc(&format!("[sync]\n{k}")),
            "lbd.toml:7: sync.peers: no peers and no [[vrrp]] instance to take them from: list peers (\"IP\", \"IP:port\" or \"[IPv6]:port\") or add a [[vrrp]] instance".into(),
        ),
        (
            "empty peers and no [[vrrp]]",
            svc(&format!("[sync]\n{k}peers = []\n")),
            "lbd.toml:9: sync.peers: no peers and no [[vrrp]] instance".into(),
        ),
        (
            "instance with no [[vrrp]] at all",
            svc(&format!("[sync]\n{k}instance = \"VI\"\n")),
            "lbd.toml:9: sync.instance: no [[vrrp]] is named \"VI\"".into(),
        ),
        (
            "group not multicast",
            sk("group = \"10.0.0.81\"\n"),
            "lbd.toml:14: sync.group: 10.0.0.81 is not a multicast address (the default is 224.0.0.81, IPVS's sync group)".into(),
        ),
        (
            "group not an address",
            sk("group = \"sync-group\"\n"),
            "lbd.toml:14: sync.group: \"sync-group\" is not an IPv4 or IPv6 address".into(),
        ),
        // --- rate and queue ---
        (
            "max_rate 0",
            sk("max_rate = 0\n"),
            "lbd.toml:14: sync.max_rate: 0 is out of range 1..=1000000 (datagrams per second)".into(),
        ),
        (
            "max_rate too large",
            sk("max_rate = 1000001\n"),
            "lbd.toml:14: sync.max_rate: 1000001 is out of range 1..=1000000".into(),
        ),
        (
            "max_queue 0",
            sk("max_queue = 0\n"),
            "lbd.toml:14: sync.max_queue: 0 is out of range 1..=16777216 (entries)".into(),
        ),
        (
            "max_queue too large",
            sk("max_queue = 16777217\n"),
            "lbd.toml:14: sync.max_queue: 16777217 is out of range 1..=16777216".into(),
        ),
    ];
    let mut failures = Vec::new();
    for (name, text, prefix) in &cases {
        match p(text) {
            Ok(_) => failures.push(format!("{name}: parsed, expected error {prefix:?}")),
            Err(e) if !e.to_string().starts_with(prefix.as_str()) => {
                failures.push(format!("{name}:\n   got {e}\n  want {prefix}"))
            }
            Err(_) => {}
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn bgp_section_defaults_and_errors() {
    // Interface 1-2, service 3-6, backend 7-8, [bgp] on line 9.
    let b = |extra: &str| {
        svc(&format!(
            "[[service.backend]]\naddress = \"10.0.0.2\"\n[bgp]\n{extra}"
        ))
    };
    let cfg = p(&b("")).unwrap();
    let bgp = cfg.bgp.expect("[bgp]");
    assert_eq!(
        bgp.speaker,
        crate::Speaker::Bird {
            socket: "/run/bird/bird.ctl".into(),
            routes_file: "/var/lib/lbd/bird-vips.conf".into()
        }
    );
    assert_eq!(bgp.min_healthy, 1);
    assert_eq!(bgp.drain_timeout, Duration::from_secs(60));
    assert!(!bgp.drain_on_stop && bgp.isolated_after.is_none() && bgp.vips.is_empty());
    let cmd = p(&b(
        "speaker = \"command\"\nannounce_command = [\"gobgp\", \"global\", \"rib\", \"-a\", \"{family}\", \"add\", \"{prefix}\"]\nwithdraw_command = [\"gobgp\", \"global\", \"rib\", \"-a\", \"{family}\", \"del\", \"{prefix}\"]\nvips = [\"10.0.0.1\"]\ndrain_on_stop = true\n",
    ))
    .unwrap()
    .bgp
    .unwrap();
    assert!(
        matches!(cmd.speaker, crate::Speaker::Command { ref announce, .. } if announce[6] == "{prefix}")
    );
    assert!(cmd.drain_on_stop);
    for (what, text, want) in [
        (
            "unknown speaker",
            b("speaker = \"quagga\"\n"),
            "lbd.toml:10: bgp.speaker: unknown speaker \"quagga\"",
        ),
        (
            "command without its commands",
            b("speaker = \"command\"\n"),
            "lbd.toml:9: bgp.announce_command: speaker = \"command\" needs announce_command",
        ),
        (
            "a typo",
            b("speaker = \"command\"\nrouters_file = 1\n"),
            "lbd.toml:11: bgp.routers_file: unknown field `routers_file`",
        ),
        (
            "command option on bird",
            b("withdraw_command = [\"x\"]\n"),
            "lbd.toml:10: bgp.withdraw_command: not used with speaker = \"bird\"",
        ),
        (
            "unknown placeholder",
            b("speaker = \"command\"\nannounce_command = [\"x\", \"{vip}\"]\nwithdraw_command = [\"x\"]\n"),
            "lbd.toml:11: bgp.announce_command[1]: unknown placeholder {vip} in \"{vip}\"",
        ),
        (
            "a command that names no VIP",
            b("speaker = \"command\"\nannounce_command = [\"sh\", \"-c\", \"f() { x; }; f\"]\nwithdraw_command = [\"x\", \"{prefix}\"]\n"),
            "lbd.toml:11: bgp.announce_command: no argument holds {prefix}",
        ),
        (
            "BIRD's own config as the routes file",
            b("routes_file = \"/etc/bird/bird.conf\"\n"),
            "lbd.toml:10: bgp.routes_file: names BIRD's own config file",
        ),
        (
            "a glob in the routes file",
            b("routes_file = \"/var/lib/lbd/*.conf\"\n"),
            "lbd.toml:10: bgp.routes_file: contains a NUL, a quote, a newline or a glob",
        ),
        (
            "min_healthy above a service's backends",
            b("min_healthy = 2\n"),
            "lbd.toml:10: bgp.min_healthy: 2 but service \"web\" has 1 backends",
        ),
        (
            "a zero drain timeout",
            b("drain_timeout = \"0s\"\n"),
            "lbd.toml:10: bgp.drain_timeout: 1s to 24h",
        ),
        (
            "a VIP no service has",
            b("vips = [\"10.9.9.9\"]\n"),
            "lbd.toml:10: bgp.vips[0]: 10.9.9.9 is no service's VIP",
        ),
        (
            "relative routes file",
            b("routes_file = \"vips.conf\"\n"),
            "lbd.toml:10: bgp.routes_file: must be an absolute path",
        ),
        (
            "min_healthy 0",
            b("min_healthy = 0\n"),
            "lbd.toml:10: bgp.min_healthy: 0 is out of range 1..=65535",
        ),
        (
            "isolated_after without sync",
            b("isolated_after = \"5s\"\n"),
            "lbd.toml:10: bgp.isolated_after: needs [sync]",
        ),
        (
            "bad drain timeout",
            b("drain_timeout = \"soon\"\n"),
            "lbd.toml:10: bgp.drain_timeout: invalid duration \"soon\"",
        ),
    ] {
        let err = p(&text).expect_err(what).to_string();
        assert!(err.starts_with(want), "{what}: got {err:?}, want {want:?}");
    }
}

#[test]
fn maglev_table_size_takes_auto_and_big_primes() {
    for (value, want) in [
        ("\"auto\"", lb_common::maglev::AUTO_TABLE_SIZE),
        ("\"AUTO\"", lb_common::maglev::AUTO_TABLE_SIZE),
        ("131071", 131071),
        ("655373", 655373),
        ("251", 251),
    ] {
        let text = format!("[global]\nmaglev_table_size = {value}\n") + &with_iface("");
        assert_eq!(p(&text).unwrap().global.maglev_table_size, want, "{value}");
    }
}

//! `lbd --check-config` on a table of bad configs: each is rejected with exit code 1
//! and a message naming the file, the line and the field; a good one passes. No root.

use std::process::Command;

const GOOD: &str = r#"[global]
node_name = "lb-a"

[[interface]]
name = "eth0"
xdp_mode = "driver"

[[service]]
name = "apiserver"
vip = "192.168.100.40"
port = 6443
protocol = "tcp"

[service.health]
kind = "https"
path = "/healthz"
interval = "2s"
timeout = "1s"

[[service.backend]]
address = "192.168.100.41"

[[service.backend]]
address = "192.168.100.42"
weight = 0
"#;

fn check(text: &str) -> (i32, String) {
    let dir = std::env::temp_dir().join(format!("lbd-check-{}-{}", std::process::id(), text.len()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("lbd.toml");
    std::fs::write(&file, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_lbd"))
        .arg("--check-config")
        .arg(&file)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn a_good_config_passes() {
    let (code, out) = check(GOOD);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("ok (1 services, 2 backends, 1 interfaces)"),
        "{out}"
    );
}

#[test]
fn bad_configs_name_file_line_and_field() {
    // (what to change in GOOD, expected "lbd.toml:LINE: FIELD" prefix, a word of the reason)
    let cases: &[(&str, &str, &str, &str)] = &[
        (
            "port = 6443",
            "port = 6443\nbogus = 1",
            "lbd.toml:12: service[0].bogus",
            "unknown field",
        ),
        (
            "interval = \"2s\"",
            "interval = \"two seconds\"",
            "lbd.toml:17: service[0].health.interval",
            "duration",
        ),
        (
            "address = \"192.168.100.41\"",
            "address = \"192.168.100.341\"",
            "lbd.toml:21: service[0].backend[0].address",
            "address",
        ),
        (
            "address = \"192.168.100.41\"",
            "address = \"192.168.100.41\"\nport = 8443",
            "lbd.toml:22: service[0].backend[0].port",
            "6443",
        ),
        (
            "weight = 0",
            "weight = 70000",
            "lbd.toml:25: service[0].backend[1].weight",
            "65535",
        ),
        (
            "xdp_mode = \"driver\"",
            "xdp_mode = \"turbo\"",
            "lbd.toml:6: interface[0].xdp_mode",
            "turbo",
        ),
        (
            "timeout = \"1s\"",
            "timeout = \"5s\"",
            "lbd.toml:18: service[0].health.timeout",
            "interval",
        ),
        (
            "address = \"192.168.100.42\"",
            "address = \"192.168.100.41\"",
            "lbd.toml:24: service[0].backend[1].address",
            "duplicate",
        ),
    ];
    for (from, to, prefix, reason) in cases {
        assert!(GOOD.contains(from), "case setup: {from}");
        let (code, out) = check(&GOOD.replacen(from, to, 1));
        assert_eq!(code, 1, "{to}: {out}");
        assert!(out.contains(prefix), "{to}: expected {prefix:?} in {out:?}");
        assert!(
            out.to_lowercase().contains(&reason.to_lowercase()),
            "{to}: expected {reason:?} in {out:?}"
        );
    }
}

#[test]
fn a_missing_file_is_an_error_not_a_panic() {
    let out = Command::new(env!("CARGO_BIN_EXE_lbd"))
        .args(["--check-config", "/nonexistent/lbd.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/lbd.toml"));
}

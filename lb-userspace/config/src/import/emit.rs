//! The converted configuration ([`Model`]) and its TOML text.
//!
//! The text is written by hand rather than serialized so that it reads like a
//! config a person wrote: a header listing what was not carried over, each table
//! preceded by the keepalived line it came from, durations as `"5s"` / `"500ms"`.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use super::Warning;

/// The whole converted configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Model {
    /// `[global] node_name` (keepalived `router_id`).
    pub node_name: Option<String>,
    /// `[global] max_services`, when more services than the default 256 were converted.
    pub max_services: Option<usize>,
    /// `[global] max_backends`, when more distinct backends than the default 4096.
    pub max_backends: Option<usize>,
    /// `[global] timeout_tcp` (keepalived `lvs_timeouts tcp`).
    pub timeout_tcp: Option<Duration>,
    /// `[global] timeout_tcpfin` (keepalived `lvs_timeouts tcpfin`).
    pub timeout_tcpfin: Option<Duration>,
    /// `[global] timeout_udp` (keepalived `lvs_timeouts udp`).
    pub timeout_udp: Option<Duration>,
    /// `[[interface]]` names.
    pub interfaces: Vec<String>,
    /// `[[service]]`.
    pub services: Vec<ServiceOut>,
    /// `[[vrrp]]`.
    pub vrrp: Vec<VrrpOut>,
    /// `[sync]` (keepalived `lvs_sync_daemon`).
    pub sync: Option<SyncOut>,
}

/// `[sync]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct SyncOut {
    /// Where it came from (`file:line: lvs_sync_daemon ...`), for a comment.
    pub origin: String,
    pub key_file: String,
    pub instance: Option<String>,
    pub port: Option<u16>,
    pub group: Option<IpAddr>,
}

/// One `[[service]]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct ServiceOut {
    /// Where it came from (`file:line: virtual_server ...`), for a comment.
    pub origin: String,
    pub name: String,
    pub vip: IpAddr,
    pub port: u16,
    pub udp: bool,
    pub source_hash: bool,
    pub health: HealthOut,
    pub backends: Vec<BackendOut>,
}

/// `[service.health]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct HealthOut {
    pub kind: KindOut,
    pub port: Option<u16>,
    pub interval: Duration,
    pub timeout: Duration,
    pub rise: u32,
    pub fall: u32,
    pub start_up: bool,
}

/// What a health check does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum KindOut {
    None,
    Tcp,
    Http {
        path: String,
        expect_status: Vec<u16>,
        host: Option<String>,
    },
    Https {
        path: String,
        expect_status: Vec<u16>,
        host: Option<String>,
    },
    Exec {
        script: String,
    },
}

/// One `[[service.backend]]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct BackendOut {
    pub address: IpAddr,
    pub weight: u32,
}

/// One `[[vrrp]]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct VrrpOut {
    pub origin: String,
    pub name: String,
    pub interface: String,
    pub vrid: u8,
    pub priority: u8,
    pub version: u8,
    pub advert_interval: Duration,
    pub preempt: bool,
    pub preempt_delay: Duration,
    pub auth_pass: Option<String>,
    pub unicast_source: Option<IpAddr>,
    /// The source came from keepalived's `mcast_src_ip` (same meaning in lbd).
    pub unicast_source_from_mcast: bool,
    pub unicast_peers: Vec<IpAddr>,
    pub virtual_addresses: Vec<(IpAddr, u8)>,
    pub track: Vec<TrackOut>,
    pub notify: Option<String>,
    pub notify_master: Option<String>,
    pub notify_backup: Option<String>,
    pub notify_fault: Option<String>,
    pub garp_master_delay: Option<Duration>,
    pub garp_master_repeat: Option<u32>,
    pub v3_checksum_message_only: bool,
}

/// One script entry of `vrrp.track`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct TrackOut {
    pub script: String,
    pub interval: Duration,
    pub timeout: Option<Duration>,
    pub weight: i32,
    pub fall: u32,
    pub rise: u32,
}

/// A TOML basic string.
pub(super) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A duration as lbd's config writes it: `"5s"` for whole seconds, `"1500ms"` for
/// whole milliseconds, else microseconds.
pub(super) fn duration(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("\"{}s\"", d.as_secs())
    } else if d.subsec_nanos().is_multiple_of(1_000_000) {
        format!("\"{}ms\"", d.as_millis())
    } else {
        format!("\"{}us\"", d.as_micros())
    }
}

/// A comment line's text: no line breaks, no control characters (TOML allows
/// none in a comment but tab).
fn comment(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() && c != '\t' { ' ' } else { c })
        .collect()
}

/// The TOML text of `model`, converted from `source`, with `warnings` listed in
/// the header.
pub(super) fn emit(model: &Model, source: &Path, warnings: &[Warning]) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "# lbd configuration converted from keepalived ({}) by lbctl import-keepalived.",
        comment(&source.display().to_string())
    );
    let _ = writeln!(
        o,
        "# Review it, then check it with `lbd --check-config` before use."
    );
    if warnings.is_empty() {
        let _ = writeln!(o, "# Every keepalived option was carried over.");
    } else {
        let _ = writeln!(
            o,
            "# {} keepalived option(s) were not carried over as written:",
            warnings.len()
        );
        for w in warnings {
            let _ = writeln!(o, "#   {}", comment(&w.to_string()));
        }
    }

    let mut global = Vec::new();
    if let Some(name) = &model.node_name {
        global.push(format!("node_name = {}", quote(name)));
    }
    if let Some(n) = model.max_services {
        global.push(format!("max_services = {n}"));
    }
    if let Some(n) = model.max_backends {
        global.push(format!("max_backends = {n}"));
    }
    for (key, value) in [
        ("timeout_tcp", model.timeout_tcp),
        ("timeout_tcpfin", model.timeout_tcpfin),
        ("timeout_udp", model.timeout_udp),
    ] {
        if let Some(d) = value {
            global.push(format!("{key} = {}", duration(d)));
        }
    }
    if !global.is_empty() {
        o.push_str("\n[global]\n");
        for line in global {
            o.push_str(&line);
            o.push('\n');
        }
    }

    for name in &model.interfaces {
        let _ = write!(
            o,
            "\n# XDP attach point: where VIP traffic arrives (check it).\n[[interface]]\nname = {}\n",
            quote(name)
        );
    }

    for s in &model.services {
        emit_service(&mut o, s);
    }
    for v in &model.vrrp {
        emit_vrrp(&mut o, v);
    }
    if let Some(sync) = &model.sync {
        emit_sync(&mut o, sync);
    }
    o
}

fn emit_sync(o: &mut String, s: &SyncOut) {
    let _ = writeln!(o, "\n# {}", comment(&s.origin));
    o.push_str("# Flow sync between the LB nodes. lbd authenticates it: create the key file\n");
    o.push_str("# (install -m 600 /dev/null /etc/lbd/sync.key &&\n");
    o.push_str("#  head -c 32 /dev/urandom | base64 > /etc/lbd/sync.key)\n");
    o.push_str("# and put the same file on every node before lbd starts.\n");
    o.push_str("[sync]\n");
    let _ = writeln!(o, "key_file = {}", quote(&s.key_file));
    if let Some(name) = &s.instance {
        let _ = writeln!(o, "instance = {}", quote(name));
    }
    if let Some(port) = s.port {
        let _ = writeln!(o, "port = {port}");
    }
    if let Some(group) = s.group {
        let _ = writeln!(o, "group = {}", quote(&group.to_string()));
    }
}

fn status_list(codes: &[u16]) -> String {
    let mut out = String::from("[");
    for (i, c) in codes.iter().enumerate() {
        if i > 0 {
            out.push_str(if i % 20 == 0 { ",\n  " } else { ", " });
        }
        let _ = write!(out, "{c}");
    }
    out.push(']');
    out
}

fn emit_service(o: &mut String, s: &ServiceOut) {
    let _ = writeln!(o, "\n# {}", comment(&s.origin));
    let _ = writeln!(o, "[[service]]");
    let _ = writeln!(o, "name = {}", quote(&s.name));
    let _ = writeln!(o, "vip = {}", quote(&s.vip.to_string()));
    let _ = writeln!(o, "port = {}", s.port);
    let _ = writeln!(o, "protocol = \"{}\"", if s.udp { "udp" } else { "tcp" });
    let _ = writeln!(
        o,
        "scheduler = \"{}\"",
        if s.source_hash {
            "source-hash"
        } else {
            "maglev"
        }
    );
    let h = &s.health;
    o.push_str("\n[service.health]\n");
    match &h.kind {
        KindOut::None => o.push_str("kind = \"none\"\n"),
        KindOut::Tcp => o.push_str("kind = \"tcp\"\n"),
        KindOut::Http {
            path,
            expect_status,
            host,
        }
        | KindOut::Https {
            path,
            expect_status,
            host,
        } => {
            let https = matches!(h.kind, KindOut::Https { .. });
            let _ = writeln!(o, "kind = \"{}\"", if https { "https" } else { "http" });
            let _ = writeln!(o, "path = {}", quote(path));
            let _ = writeln!(o, "expect_status = {}", status_list(expect_status));
            if let Some(host) = host {
                let _ = writeln!(o, "host = {}", quote(host));
            }
            if https {
                o.push_str(
                    "tls_verify = false                 # keepalived SSL_GET never verifies\n",
                );
            }
        }
        KindOut::Exec { script } => {
            o.push_str("kind = \"exec\"\n");
            let _ = writeln!(o, "script = {}", quote(script));
        }
    }
    if let Some(port) = h.port {
        let _ = writeln!(o, "port = {port}");
    }
    if h.kind != KindOut::None {
        let _ = writeln!(o, "interval = {}", duration(h.interval));
        let _ = writeln!(o, "timeout = {}", duration(h.timeout));
        let _ = writeln!(o, "rise = {}", h.rise);
        let _ = writeln!(o, "fall = {}", h.fall);
        let _ = writeln!(o, "start = \"{}\"", if h.start_up { "up" } else { "down" });
    }
    for b in &s.backends {
        o.push_str("\n[[service.backend]]\n");
        let _ = writeln!(o, "address = {}", quote(&b.address.to_string()));
        let _ = writeln!(o, "weight = {}", b.weight);
    }
}

fn emit_vrrp(o: &mut String, v: &VrrpOut) {
    let _ = writeln!(o, "\n# {}", comment(&v.origin));
    o.push_str("[[vrrp]]\n");
    let _ = writeln!(o, "name = {}", quote(&v.name));
    let _ = writeln!(o, "interface = {}", quote(&v.interface));
    let _ = writeln!(o, "virtual_router_id = {}", v.vrid);
    let _ = writeln!(o, "priority = {}", v.priority);
    let _ = writeln!(o, "version = {}", v.version);
    let _ = writeln!(o, "advert_interval = {}", duration(v.advert_interval));
    let _ = writeln!(o, "preempt = {}", v.preempt);
    if !v.preempt_delay.is_zero() {
        let _ = writeln!(o, "preempt_delay = {}", duration(v.preempt_delay));
    }
    if let Some(pass) = &v.auth_pass {
        let _ = writeln!(o, "auth_pass = {}", quote(pass));
    }
    if let Some(src) = &v.unicast_source {
        let note = if v.unicast_source_from_mcast {
            "   # keepalived mcast_src_ip: the advert source, multicast included"
        } else {
            ""
        };
        let _ = writeln!(o, "unicast_source = {}{note}", quote(&src.to_string()));
    }
    if !v.unicast_peers.is_empty() {
        let peers: Vec<String> = v
            .unicast_peers
            .iter()
            .map(|p| quote(&p.to_string()))
            .collect();
        let _ = writeln!(o, "unicast_peers = [{}]", peers.join(", "));
    }
    let vips: Vec<String> = v
        .virtual_addresses
        .iter()
        .map(|(ip, len)| quote(&format!("{ip}/{len}")))
        .collect();
    let _ = writeln!(o, "virtual_addresses = [{}]", vips.join(", "));
    if !v.track.is_empty() {
        o.push_str("track = [\n");
        for t in &v.track {
            let mut fields = vec![
                format!("script = {}", quote(&t.script)),
                format!("interval = {}", duration(t.interval)),
            ];
            if let Some(timeout) = t.timeout {
                fields.push(format!("timeout = {}", duration(timeout)));
            }
            fields.push(format!("weight = {}", t.weight));
            fields.push(format!("fall = {}", t.fall));
            fields.push(format!("rise = {}", t.rise));
            let _ = writeln!(o, "  {{ {} }},", fields.join(", "));
        }
        o.push_str("]\n");
    }
    for (key, value) in [
        ("notify", &v.notify),
        ("notify_master", &v.notify_master),
        ("notify_backup", &v.notify_backup),
        ("notify_fault", &v.notify_fault),
    ] {
        if let Some(script) = value {
            let _ = writeln!(o, "{key} = {}", quote(script));
        }
    }
    if let Some(d) = v.garp_master_delay {
        let _ = writeln!(o, "garp_master_delay = {}", duration(d));
    }
    if let Some(n) = v.garp_master_repeat {
        let _ = writeln!(o, "garp_master_repeat = {n}");
    }
    if v.v3_checksum_message_only {
        o.push_str("v3_checksum = \"message-only\"\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_and_durations() {
        assert_eq!(quote(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(quote("x\u{1}"), "\"x\\u0001\"");
        assert_eq!(duration(Duration::from_secs(5)), "\"5s\"");
        assert_eq!(duration(Duration::from_millis(1500)), "\"1500ms\"");
        assert_eq!(duration(Duration::from_micros(1500)), "\"1500us\"");
        for d in [
            Duration::from_secs(5),
            Duration::from_millis(1500),
            Duration::from_micros(1500),
        ] {
            let text = duration(d);
            let parsed = humantime::parse_duration(text.trim_matches('"')).expect("parses");
            assert_eq!(parsed, d);
        }
        let value: toml::Value =
            toml::from_str(&format!("k = {}", quote("tab\t\"q\" \\ é \u{7f}"))).expect("toml");
        assert_eq!(value["k"].as_str(), Some("tab\t\"q\" \\ é \u{7f}"));
        let text = format!("# {}\nk = 1\n", comment("a\u{1}b\rc\u{7f}d\u{85}e\tf"));
        assert_eq!(text, "# a b c d e\tf\nk = 1\n");
        toml::from_str::<toml::Value>(&text).expect("a valid comment");
    }
}

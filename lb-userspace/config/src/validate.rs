//! Semantic validation: turns the raw file into a [`Config`] with defaults applied.
//!
//! Every check reports the line of the value it is about (from its [`Spanned`]) and
//! the dotted field path, so a failed check reads like a compiler error. Checks run in
//! file order and the first failure is returned. Nothing here touches the file
//! system but the sync key file (`[sync] key_file`, read last, and only when
//! [`Ctx::key_files`] says so): a CA file or a check script that does not exist is
//! found out when used. The sync key itself is never put in a message.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use super::limits::{
    MAX_BACKENDS, MAX_CONN_TABLE_SIZE, MAX_SERVICES, MAX_SOCKET_PATH, MAX_SYNC_KEY_BYTES,
    MAX_SYNC_QUEUE, MAX_SYNC_RATE, MAX_TABLE_SIZE, MAX_TIMEOUT, MIN_SYNC_KEY_BYTES, MIN_TIMEOUT,
};
use super::raw::RawTableSize;
use super::raw::{Opt, RawBackend, RawConfig, RawGlobal, RawHealth, RawInterface, RawKind};
use super::raw::{RawService, RawStart, RawSync, RawTrack, RawVrrp};
use super::{
    BackendConfig, CheckKind, Config, ConfigError, Global, HealthCheck, Interface, KeyFiles,
    Notify, Protocol, Scheduler, Service, SyncConfig, Track, V3Checksum, VrrpConfig, XdpMode,
};
use lb_vrrp::Version;

mod bgp;

/// Where the text came from, to locate errors.
pub(super) struct Ctx<'a> {
    /// The whole configuration text (spans are byte offsets into it).
    pub text: &'a str,
    /// The file name used in errors.
    pub file: &'a Path,
    /// Whether `[sync] key_file` is read.
    pub key_files: KeyFiles,
}

type Result<T> = std::result::Result<T, ConfigError>;

impl Ctx<'_> {
    /// An error at byte range `span` (no line when `None`).
    fn err(
        &self,
        span: Option<Range<usize>>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError {
            file: self.file.to_owned(),
            line: span.map(|s| super::line_of(self.text, s.start)),
            field: field.into(),
            message: message.into(),
        }
    }

    /// An error about the value `value`.
    fn at<T>(
        &self,
        value: &Spanned<T>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> ConfigError {
        self.err(Some(value.span()), field, message)
    }
}

/// The value if given, else `default`.
/// `[global] maglev_table_size`: `"auto"` ([`lb_common::maglev::AUTO_TABLE_SIZE`]: each
/// service's size from its backend count) or a prime up to [`MAX_TABLE_SIZE`] (above
/// 65537 a service's table goes to the big-table map).
fn table_size(ctx: &Ctx<'_>, v: &Spanned<RawTableSize>) -> Result<u32> {
    let field = "global.maglev_table_size";
    let m = match v.get_ref() {
        RawTableSize::Word(w) if w.trim().eq_ignore_ascii_case("auto") => {
            return Ok(lb_common::maglev::AUTO_TABLE_SIZE)
        }
        RawTableSize::Word(w) => {
            return Err(ctx.at(
                v,
                field,
                format!("{w:?} is not a table size: \"auto\" or a prime up to {MAX_TABLE_SIZE}"),
            ))
        }
        RawTableSize::Size(m) => *m,
    };
    if m > MAX_TABLE_SIZE as i64 {
        return Err(ctx.at(
            v,
            field,
            format!("{m} exceeds the maximum {MAX_TABLE_SIZE} (the largest big table; \"auto\" picks the size per service)"),
        ));
    }
    let prime = u32::try_from(m).is_ok_and(lb_common::maglev::is_prime);
    if !prime {
        return Err(ctx.at(
            v,
            field,
            format!("{m} is not a prime (Maglev needs a prime table size, e.g. 65537, 65521, 32749, 251; or \"auto\")"),
        ));
    }
    Ok(m as u32)
}

fn or<T: Clone>(value: &Opt<T>, default: T) -> T {
    value.as_ref().map_or(default, |v| v.get_ref().clone())
}

/// The span of an optional value, else `fallback`.
fn span_or<T>(value: &Opt<T>, fallback: Option<Range<usize>>) -> Option<Range<usize>> {
    value.as_ref().map(Spanned::span).or(fallback)
}

/// Builds the validated configuration.
pub(super) fn build(ctx: &Ctx<'_>, raw: RawConfig) -> Result<Config> {
    let global = global(ctx, raw.global.unwrap_or_default())?;
    let interfaces = interfaces(ctx, &raw.interface)?;
    let services = services(ctx, &global, &raw.service)?;
    let vrrp = vrrp_instances(ctx, &services, &raw.vrrp)?;
    let sync = match &raw.sync {
        Some(rs) => Some(sync(ctx, &vrrp, rs)?),
        None => None,
    };
    let bgp = match &raw.bgp {
        Some(rb) => Some(bgp::bgp(ctx, &services, raw.sync.is_some(), rb)?),
        None => None,
    };
    Ok(Config {
        global,
        interfaces,
        services,
        vrrp,
        sync,
        bgp,
    })
}

fn duration(
    ctx: &Ctx<'_>,
    value: &Opt<String>,
    field: &str,
    default: Duration,
) -> Result<Duration> {
    let Some(v) = value else {
        return Ok(default);
    };
    humantime::parse_duration(v.get_ref().trim()).map_err(|e| {
        ctx.at(
            v,
            field,
            format!(
                "invalid duration {:?}: {e} (write e.g. \"500ms\", \"2s\", \"15m\")",
                v.get_ref()
            ),
        )
    })
}

fn non_empty(ctx: &Ctx<'_>, value: &Spanned<String>, field: &str) -> Result<String> {
    if value.get_ref().trim().is_empty() {
        return Err(ctx.at(value, field, "must not be empty"));
    }
    Ok(value.get_ref().clone())
}

fn non_empty_path(
    ctx: &Ctx<'_>,
    value: &Opt<PathBuf>,
    field: &str,
    default: PathBuf,
) -> Result<PathBuf> {
    match value {
        Some(v) if v.get_ref().as_os_str().is_empty() => Err(ctx.at(v, field, "must not be empty")),
        Some(v) => Ok(v.get_ref().clone()),
        None => Ok(default),
    }
}

fn global(ctx: &Ctx<'_>, g: RawGlobal) -> Result<Global> {
    let d = Global::default();
    let node_name = match &g.node_name {
        Some(v) => non_empty(ctx, v, "global.node_name")?,
        None => d.node_name,
    };
    let control_socket = non_empty_path(
        ctx,
        &g.control_socket,
        "global.control_socket",
        d.control_socket,
    )?;
    if let Some(v) = &g.control_socket {
        let len = v.get_ref().as_os_str().len();
        if len > MAX_SOCKET_PATH {
            return Err(ctx.at(
                v,
                "global.control_socket",
                format!(
                    "the path is {len} bytes: a Unix socket path holds at most {MAX_SOCKET_PATH} (sun_path is {} bytes with the terminating NUL); use a shorter path",
                    MAX_SOCKET_PATH + 1
                ),
            ));
        }
    }
    let pin_dir = non_empty_path(ctx, &g.pin_dir, "global.pin_dir", d.pin_dir)?;
    for (value, field) in [
        (&g.control_socket, "global.control_socket"),
        (&g.pin_dir, "global.pin_dir"),
    ] {
        if let Some(v) = value {
            if v.get_ref().as_os_str().as_encoded_bytes().contains(&0) {
                return Err(ctx.at(v, field, "contains a NUL character: not a usable path"));
            }
        }
    }

    let metrics_listen = match &g.metrics_listen {
        None => d.metrics_listen,
        Some(v) => {
            let s = v.get_ref().trim();
            if s.is_empty() || s.eq_ignore_ascii_case("off") {
                None
            } else {
                Some(s.parse::<SocketAddr>().map_err(|_| {
                    ctx.at(
                        v,
                        "global.metrics_listen",
                        format!(
                            "{s:?} is not an address:port (e.g. \"127.0.0.1:9469\", \"[::1]:9469\"; \"off\" disables)"
                        ),
                    )
                })?)
            }
        }
    };

    let maglev_table_size = match &g.maglev_table_size {
        None => d.maglev_table_size,
        Some(v) => table_size(ctx, v)?,
    };

    let max_services = or(&g.max_services, d.max_services);
    if let Some(v) = &g.max_services {
        let n = *v.get_ref();
        if n == 0 || n > MAX_SERVICES {
            return Err(ctx.at(
                v,
                "global.max_services",
                format!(
                    "{n} is out of range 1..={MAX_SERVICES} (it sizes preallocated maps, and each service holds a 256 KiB Maglev table in kernel memory)"
                ),
            ));
        }
    }
    let max_backends = or(&g.max_backends, d.max_backends);
    if let Some(v) = &g.max_backends {
        let n = *v.get_ref();
        if n == 0 || n > MAX_BACKENDS {
            return Err(ctx.at(
                v,
                "global.max_backends",
                format!("{n} is out of range 1..={MAX_BACKENDS} (backend indices are 16-bit)"),
            ));
        }
    }
    let conn_table_size = or(&g.conn_table_size, d.conn_table_size);
    if let Some(v) = &g.conn_table_size {
        let n = *v.get_ref();
        if n == 0 || n > MAX_CONN_TABLE_SIZE {
            return Err(ctx.at(
                v,
                "global.conn_table_size",
                format!(
                    "{n} is out of range 1..={MAX_CONN_TABLE_SIZE} (2^26: the table is preallocated, about 104 bytes of kernel memory per entry, and the kernel refuses larger hash maps)"
                ),
            ));
        }
    }

    let timeout_tcp = timeout(ctx, &g.timeout_tcp, "global.timeout_tcp", d.timeout_tcp)?;
    let timeout_tcpfin = timeout(
        ctx,
        &g.timeout_tcpfin,
        "global.timeout_tcpfin",
        d.timeout_tcpfin,
    )?;
    let timeout_udp = timeout(ctx, &g.timeout_udp, "global.timeout_udp", d.timeout_udp)?;

    Ok(Global {
        node_name,
        control_socket,
        metrics_listen,
        pin_dir,
        hash_seed: or(&g.hash_seed, d.hash_seed),
        maglev_table_size,
        max_services,
        max_backends,
        conn_table_size,
        conn_insert_limit: g
            .conn_insert_limit
            .as_ref()
            .map(|v| *v.get_ref())
            .filter(|&n| n != 0),
        timeout_tcp,
        timeout_tcpfin,
        timeout_udp,
        // Slots that moved consult the connection table as long as a TCP entry lives.
        settle_after: duration(ctx, &g.settle_after, "global.settle_after", timeout_tcp)?,
        forwarding: or(&g.forwarding, d.forwarding),
    })
}

/// A connection timeout: a duration in [`MIN_TIMEOUT`]..=[`MAX_TIMEOUT`].
fn timeout(ctx: &Ctx<'_>, value: &Opt<String>, field: &str, default: Duration) -> Result<Duration> {
    let d = duration(ctx, value, field, default)?;
    // Defaults are in range: only a written value can be out of it.
    if let Some(v) = value {
        let written = v.get_ref().trim();
        if d < MIN_TIMEOUT {
            return Err(ctx.at(v, field, format!("{written:?} is too short: at least 1s")));
        }
        if d > MAX_TIMEOUT {
            return Err(ctx.at(
                v,
                field,
                format!(
                    "{written:?} exceeds the maximum 31 days (keepalived's lvs_timeouts bound)"
                ),
            ));
        }
    }
    Ok(d)
}

/// Linux's rule for interface names (`dev_valid_name`).
fn valid_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() < 16
        && name != "."
        && name != ".."
        && !name.contains(|c: char| c == '/' || c == ':' || c.is_whitespace())
}

fn interfaces(ctx: &Ctx<'_>, raw: &[RawInterface]) -> Result<Vec<Interface>> {
    if raw.is_empty() {
        return Err(ctx.err(
            None,
            "interface",
            "at least one [[interface]] is required (the interfaces to attach the XDP program to)",
        ));
    }
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    let mut out = Vec::with_capacity(raw.len());
    for (i, ri) in raw.iter().enumerate() {
        let name = ri.name.get_ref();
        let field = format!("interface[{i}].name");
        if !valid_ifname(name) {
            return Err(ctx.at(
                &ri.name,
                field,
                format!("{name:?} is not a valid interface name (1 to 15 characters, no '/', ':' or blanks)"),
            ));
        }
        if let Some(first) = seen.insert(name, i) {
            return Err(ctx.at(
                &ri.name,
                field,
                format!("interface {name:?} is already listed as interface[{first}]"),
            ));
        }
        out.push(Interface {
            name: name.clone(),
            xdp_mode: or(&ri.xdp_mode, XdpMode::Auto),
        });
    }
    Ok(out)
}

/// Parses an address usable as a VIP or backend.
fn address(ctx: &Ctx<'_>, value: &Spanned<String>, field: &str) -> Result<IpAddr> {
    let s = value.get_ref().trim();
    let ip: IpAddr = s.parse().map_err(|_| {
        ctx.at(
            value,
            field,
            format!("{s:?} is not an IPv4 or IPv6 address"),
        )
    })?;
    unicast(ctx, value, field, ip, "")
}

/// `ip` if it is a unicast address in its own family's form; else an error at
/// `value`, with `hint` appended to the reason.
fn unicast(
    ctx: &Ctx<'_>,
    value: &Spanned<String>,
    field: &str,
    ip: IpAddr,
    hint: &str,
) -> Result<IpAddr> {
    let unusable = match ip {
        IpAddr::V4(v4) => v4.is_unspecified() || v4.is_multicast() || v4.is_broadcast(),
        IpAddr::V6(v6) => v6.is_unspecified() || v6.is_multicast(),
    };
    if unusable {
        return Err(ctx.at(
            value,
            field,
            format!("{ip} is an unspecified, multicast or broadcast address{hint}"),
        ));
    }
    if let IpAddr::V6(v6) = ip {
        if let Some(v4) = v6.to_ipv4_mapped() {
            return Err(ctx.at(
                value,
                field,
                format!("{ip} is IPv4-mapped: write it as {v4}"),
            ));
        }
    }
    Ok(ip)
}

/// `vip:port/proto` for messages.
fn endpoint(vip: IpAddr, port: u16, protocol: Protocol) -> String {
    format!("{}/{protocol}", SocketAddr::new(vip, port))
}

fn family(ip: IpAddr) -> &'static str {
    if ip.is_ipv4() {
        "IPv4"
    } else {
        "IPv6"
    }
}

fn services(ctx: &Ctx<'_>, global: &Global, raw: &[RawService]) -> Result<Vec<Service>> {
    let mut out: Vec<Service> = Vec::with_capacity(raw.len());
    let mut names: BTreeMap<&str, usize> = BTreeMap::new();
    let mut keys: BTreeMap<(IpAddr, u16, Protocol), usize> = BTreeMap::new();
    let mut distinct_backends: BTreeSet<IpAddr> = BTreeSet::new();

    for (i, rs) in raw.iter().enumerate() {
        let path = format!("service[{i}]");
        if i >= global.max_services as usize {
            return Err(ctx.at(
                &rs.name,
                format!("{path}.name"),
                format!(
                    "more than global.max_services = {} services (raise it: it sizes the service map)",
                    global.max_services
                ),
            ));
        }
        let name = non_empty(ctx, &rs.name, &format!("{path}.name"))?;
        if let Some(first) = names.insert(rs.name.get_ref(), i) {
            return Err(ctx.at(
                &rs.name,
                format!("{path}.name"),
                format!("service name {name:?} is already used by service[{first}]"),
            ));
        }
        let vip = address(ctx, &rs.vip, &format!("{path}.vip"))?;
        let port = *rs.port.get_ref();
        let protocol = or(&rs.protocol, Protocol::Tcp);
        if let Some(first) = keys.insert((vip, port, protocol), i) {
            return Err(ctx.at(
                &rs.vip,
                format!("{path}.vip"),
                format!(
                    "duplicate service {} (already defined by service[{first}] {:?})",
                    endpoint(vip, port, protocol),
                    raw[first].name.get_ref()
                ),
            ));
        }
        let health = health(ctx, rs.health.as_ref(), &path, &rs.port)?;

        let mut backends = Vec::with_capacity(rs.backend.len());
        let mut seen: BTreeMap<IpAddr, usize> = BTreeMap::new();
        for (j, rb) in rs.backend.iter().enumerate() {
            let bpath = format!("{path}.backend[{j}]");
            let b = backend(ctx, rb, &bpath, vip, port)?;
            if let Some(first) = seen.insert(b.address, j) {
                return Err(ctx.at(
                    &rb.address,
                    format!("{bpath}.address"),
                    format!(
                        "duplicate backend {} in this service (already backend[{first}])",
                        b.address
                    ),
                ));
            }
            if distinct_backends.insert(b.address)
                && distinct_backends.len() > global.max_backends as usize
            {
                return Err(ctx.at(
                    &rb.address,
                    format!("{bpath}.address"),
                    format!(
                        "more than global.max_backends = {} distinct backend addresses (raise it: it sizes the backend map)",
                        global.max_backends
                    ),
                ));
            }
            backends.push(b);
        }

        out.push(Service {
            name,
            vip,
            port,
            protocol,
            scheduler: or(&rs.scheduler, Scheduler::Maglev),
            health,
            backends,
        });
    }
    Ok(out)
}

fn backend(
    ctx: &Ctx<'_>,
    rb: &RawBackend,
    path: &str,
    vip: IpAddr,
    service_port: u16,
) -> Result<BackendConfig> {
    let afield = format!("{path}.address");
    let address = address(ctx, &rb.address, &afield)?;
    if address.is_ipv4() != vip.is_ipv4() {
        return Err(ctx.at(
            &rb.address,
            afield,
            format!(
                "backend {address} is {} but the VIP {vip} is {} (DR forwards without changing the address family)",
                family(address),
                family(vip)
            ),
        ));
    }
    if address == vip {
        return Err(ctx.at(&rb.address, afield, "a backend cannot be the VIP itself"));
    }
    let weight = or(&rb.weight, 1);
    if let Some(w) = &rb.weight {
        if weight > u32::from(u16::MAX) {
            return Err(ctx.at(
                w,
                format!("{path}.weight"),
                format!("weight {weight} exceeds the maximum 65535 (0 drains the backend)"),
            ));
        }
    }
    if let Some(p) = &rb.port {
        if *p.get_ref() != service_port {
            return Err(ctx.at(
                p,
                format!("{path}.port"),
                format!(
                    "backend port {} differs from service port {service_port} (DR forwards without port translation)",
                    p.get_ref()
                ),
            ));
        }
    }
    let name = match &rb.name {
        Some(n) => Some(non_empty(ctx, n, &format!("{path}.name"))?),
        None => None,
    };
    Ok(BackendConfig {
        address,
        weight,
        name,
    })
}

/// `path`, `expect_status` and `host` of an HTTP(S) check.
fn http_settings(
    ctx: &Ctx<'_>,
    h: &RawHealth,
    path: &str,
) -> Result<(String, Vec<u16>, Option<String>)> {
    let req_path = match &h.path {
        None => "/".to_owned(),
        Some(p) => {
            let s = p.get_ref();
            if !s.starts_with('/') || s.contains(|c: char| c.is_whitespace() || c.is_control()) {
                return Err(ctx.at(
                    p,
                    format!("{path}.path"),
                    format!("{s:?} is not a request path (must start with '/', no blanks)"),
                ));
            }
            s.clone()
        }
    };
    let expect_status = match &h.expect_status {
        None => vec![200],
        Some(list) => {
            if list.get_ref().is_empty() {
                return Err(ctx.at(
                    list,
                    format!("{path}.expect_status"),
                    "must list at least one status code",
                ));
            }
            let mut codes = Vec::with_capacity(list.get_ref().len());
            for (k, code) in list.get_ref().iter().enumerate() {
                let c = *code.get_ref();
                if !(100..=599).contains(&c) {
                    return Err(ctx.at(
                        code,
                        format!("{path}.expect_status[{k}]"),
                        format!("{c} is not an HTTP status code (100..=599)"),
                    ));
                }
                codes.push(c);
            }
            codes
        }
    };
    let host = match &h.host {
        None => None,
        Some(v) => {
            let s = v.get_ref();
            if s.is_empty() || s.contains(|c: char| c.is_whitespace() || c.is_control()) {
                return Err(ctx.at(
                    v,
                    format!("{path}.host"),
                    format!("{s:?} is not a host name"),
                ));
            }
            Some(s.clone())
        }
    };
    Ok((req_path, expect_status, host))
}

fn health(
    ctx: &Ctx<'_>,
    raw: Option<&RawHealth>,
    service_path: &str,
    service_port: &Spanned<u16>,
) -> Result<HealthCheck> {
    let empty = RawHealth::default();
    let h = raw.unwrap_or(&empty);
    let path = format!("{service_path}.health");
    let d = HealthCheck::default();
    let kind = or(&h.kind, RawKind::Tcp);

    let check = match kind {
        RawKind::None => CheckKind::None,
        RawKind::Tcp => CheckKind::Tcp,
        RawKind::Http => {
            let (path, expect_status, host) = http_settings(ctx, h, &path)?;
            CheckKind::Http {
                path,
                expect_status,
                host,
            }
        }
        RawKind::Https => {
            let (path, expect_status, host) = http_settings(ctx, h, &path)?;
            CheckKind::Https {
                path,
                expect_status,
                host,
                tls_verify: or(&h.tls_verify, false),
                ca_file: h.ca_file.as_ref().map(|f| f.get_ref().clone()),
            }
        }
        RawKind::Exec => match &h.script {
            Some(s) if !s.get_ref().as_os_str().is_empty() => CheckKind::Exec {
                script: s.get_ref().clone(),
            },
            Some(s) => return Err(ctx.at(s, format!("{path}.script"), "must not be empty")),
            None => {
                return Err(ctx.err(
                    span_or(&h.kind, None),
                    format!("{path}.script"),
                    "an exec check needs script (run as: script <backend address> <port>)",
                ))
            }
        },
    };
    if let Some(ca) = h
        .ca_file
        .as_ref()
        .filter(|c| c.get_ref().as_os_str().is_empty())
    {
        return Err(ctx.at(
            ca,
            format!("{path}.ca_file"),
            "must not be empty (leave it out to verify against the system roots)",
        ));
    }

    let port = match &h.port {
        Some(p) if *p.get_ref() == 0 => {
            return Err(ctx.at(
                p,
                format!("{path}.port"),
                "must be 1..=65535 (leave it out to check the service port)",
            ))
        }
        Some(p) => Some(*p.get_ref()),
        None => None,
    };
    let needs_port = matches!(kind, RawKind::Tcp | RawKind::Http | RawKind::Https);
    if needs_port && port.is_none() && *service_port.get_ref() == 0 {
        let kind_name = match kind {
            RawKind::Http => "an http",
            RawKind::Https => "an https",
            _ => "a tcp",
        };
        return Err(ctx.err(
            span_or(&h.kind, Some(service_port.span())),
            format!("{path}.port"),
            format!("the service port is 0 (every port), so {kind_name} check needs health.port"),
        ));
    }

    let interval = duration(ctx, &h.interval, &format!("{path}.interval"), d.interval)?;
    if interval.is_zero() {
        return Err(ctx.err(
            span_or(&h.interval, None),
            format!("{path}.interval"),
            "must be greater than 0",
        ));
    }
    let timeout = duration(ctx, &h.timeout, &format!("{path}.timeout"), d.timeout)?;
    if timeout.is_zero() {
        return Err(ctx.err(
            span_or(&h.timeout, None),
            format!("{path}.timeout"),
            "must be greater than 0",
        ));
    }
    if timeout > interval {
        let (field, span) = if h.timeout.is_some() {
            ("timeout", span_or(&h.timeout, None))
        } else {
            ("interval", span_or(&h.interval, None))
        };
        return Err(ctx.err(
            span,
            format!("{path}.{field}"),
            format!(
                "timeout {} is longer than interval {}",
                humantime::format_duration(timeout),
                humantime::format_duration(interval)
            ),
        ));
    }
    let rise = or(&h.rise, d.rise);
    if let Some(v) = h.rise.as_ref().filter(|v| *v.get_ref() == 0) {
        return Err(ctx.at(v, format!("{path}.rise"), "must be at least 1"));
    }
    let fall = or(&h.fall, d.fall);
    if let Some(v) = h.fall.as_ref().filter(|v| *v.get_ref() == 0) {
        return Err(ctx.at(v, format!("{path}.fall"), "must be at least 1"));
    }

    Ok(HealthCheck {
        kind: check,
        interval,
        timeout,
        rise,
        fall,
        start_up: or(&h.start, RawStart::Down) == RawStart::Up,
        port,
    })
}

use lb_vrrp::limits::{
    MAX_PREEMPT_DELAY, MAX_TRACK_WEIGHT, MAX_VIRTUAL_ADDRESSES, V2_MAX_INTERVAL_SECS,
    V3_MAX_INTERVAL as MAX_V3_INTERVAL,
};

/// `[[vrrp]]`: each instance on its own, then the cross-instance checks (unique
/// names, unique (vrid, interface, family), each virtual address in one instance).
fn vrrp_instances(ctx: &Ctx<'_>, services: &[Service], raw: &[RawVrrp]) -> Result<Vec<VrrpConfig>> {
    let mut out: Vec<VrrpConfig> = Vec::with_capacity(raw.len());
    let mut names: BTreeMap<&str, usize> = BTreeMap::new();
    let mut routers: BTreeMap<(u8, &str, bool), usize> = BTreeMap::new();
    let mut vips: BTreeMap<IpAddr, usize> = BTreeMap::new();
    for (i, rv) in raw.iter().enumerate() {
        let path = format!("vrrp[{i}]");
        if let Some(first) = names.insert(rv.name.get_ref(), i) {
            return Err(ctx.at(
                &rv.name,
                format!("{path}.name"),
                format!(
                    "VRRP instance name {:?} is already used by vrrp[{first}]",
                    rv.name.get_ref()
                ),
            ));
        }
        let v = vrrp_instance(ctx, services, rv, &path)?;
        if let Some(first) = routers.insert((v.vrid, rv.interface.get_ref(), v.is_ipv4()), i) {
            return Err(ctx.at(
                &rv.virtual_router_id,
                format!("{path}.virtual_router_id"),
                format!(
                    "virtual_router_id {} is already used on {} for {} by vrrp[{first}] {:?} (one VRID per interface and family)",
                    v.vrid,
                    v.interface,
                    if v.is_ipv4() { "IPv4" } else { "IPv6" },
                    out[first].name
                ),
            ));
        }
        if let Some(list) = &rv.virtual_addresses {
            for (k, (ip, _)) in v.virtual_addresses.iter().enumerate() {
                // Duplicates within the instance were reported by `vrrp_instance`.
                if let Some(first) = vips.insert(*ip, i) {
                    return Err(ctx.at(
                        &list.get_ref()[k],
                        format!("{path}.virtual_addresses[{k}]"),
                        format!(
                            "{ip} is already a virtual address of vrrp[{first}] {:?}",
                            out[first].name
                        ),
                    ));
                }
            }
        }
        out.push(v);
    }
    Ok(out)
}

/// An integer field in `range`, with the range in the message.
fn int_in<T: TryFrom<i64>>(
    ctx: &Ctx<'_>,
    value: &Spanned<i64>,
    field: &str,
    range: std::ops::RangeInclusive<i64>,
    hint: &str,
) -> Result<T> {
    let n = *value.get_ref();
    if !range.contains(&n) {
        return Err(ctx.at(
            value,
            field,
            format!(
                "{n} is out of range {}..={}{hint}",
                range.start(),
                range.end()
            ),
        ));
    }
    T::try_from(n).map_err(|_| ctx.at(value, field, format!("{n} is out of range")))
}

/// An optional path that must not be empty when given.
fn opt_path(ctx: &Ctx<'_>, value: &Opt<PathBuf>, field: &str) -> Result<Option<PathBuf>> {
    match value {
        Some(v) if v.get_ref().as_os_str().is_empty() => Err(ctx.at(v, field, "must not be empty")),
        Some(v) => Ok(Some(v.get_ref().clone())),
        None => Ok(None),
    }
}

/// One `ip[/prefix]` virtual address; the prefix defaults to the host prefix.
fn virtual_address(ctx: &Ctx<'_>, value: &Spanned<String>, field: &str) -> Result<(IpAddr, u8)> {
    let s = value.get_ref().trim();
    let (addr, prefix) = match s.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (s, None),
    };
    let as_written = Spanned::new(value.span(), addr.to_owned());
    let ip = address(ctx, &as_written, field)?;
    let max: u8 = if ip.is_ipv4() { 32 } else { 128 };
    let len = match prefix {
        None => max,
        Some(p) => match p.parse::<u8>() {
            Ok(n) if (1..=max).contains(&n) => n,
            _ => {
                return Err(ctx.at(
                    value,
                    field,
                    format!(
                        "{s:?} has a bad prefix length {p:?} (1..={max} for {}; leave it out for /{max})",
                        family(ip)
                    ),
                ))
            }
        },
    };
    Ok((ip, len))
}

fn vrrp_instance(
    ctx: &Ctx<'_>,
    services: &[Service],
    rv: &RawVrrp,
    path: &str,
) -> Result<VrrpConfig> {
    let name = non_empty(ctx, &rv.name, &format!("{path}.name"))?;
    let interface = rv.interface.get_ref();
    if !valid_ifname(interface) {
        return Err(ctx.at(
            &rv.interface,
            format!("{path}.interface"),
            format!("{interface:?} is not a valid interface name (1 to 15 characters, no '/', ':' or blanks)"),
        ));
    }
    let vrid: u8 = int_in(
        ctx,
        &rv.virtual_router_id,
        &format!("{path}.virtual_router_id"),
        1..=255,
        "",
    )?;
    let priority: u8 = match &rv.priority {
        Some(p) => int_in(
            ctx,
            p,
            &format!("{path}.priority"),
            1..=255,
            " (255 = address owner; 0 is reserved for a master leaving)",
        )?,
        None => 100,
    };
    let version = match &rv.version {
        None => Version::V2,
        Some(v) => match *v.get_ref() {
            2 => Version::V2,
            3 => Version::V3,
            n => {
                return Err(ctx.at(
                    v,
                    format!("{path}.version"),
                    format!("VRRP version {n} does not exist (2 or 3)"),
                ))
            }
        },
    };

    let ifield = format!("{path}.advert_interval");
    let advert_interval = duration(ctx, &rv.advert_interval, &ifield, Duration::from_secs(1))?;
    let ispan = span_or(&rv.advert_interval, None);
    let shown = humantime::format_duration(advert_interval);
    match version {
        Version::V2 => {
            if advert_interval.subsec_nanos() != 0
                || !(1..=V2_MAX_INTERVAL_SECS).contains(&advert_interval.as_secs())
            {
                return Err(ctx.err(
                    ispan,
                    ifield,
                    format!("{shown} is not allowed with version 2: whole seconds 1s..=255s (use version 3 for sub-second intervals)"),
                ));
            }
        }
        Version::V3 => {
            if advert_interval.subsec_nanos() % 10_000_000 != 0
                || advert_interval < Duration::from_millis(10)
                || advert_interval > MAX_V3_INTERVAL
            {
                return Err(ctx.err(
                    ispan,
                    ifield,
                    format!("{shown} is not allowed with version 3: a multiple of 10ms, 10ms..=40s 950ms"),
                ));
            }
        }
    }

    let dfield = format!("{path}.preempt_delay");
    let preempt_delay = duration(ctx, &rv.preempt_delay, &dfield, Duration::ZERO)?;
    if preempt_delay > MAX_PREEMPT_DELAY {
        return Err(ctx.err(
            span_or(&rv.preempt_delay, None),
            dfield,
            format!(
                "{} exceeds the maximum 1000s",
                humantime::format_duration(preempt_delay)
            ),
        ));
    }

    let auth_pass = match &rv.auth_pass {
        None => None,
        Some(a) => {
            let field = format!("{path}.auth_pass");
            if version == Version::V3 {
                return Err(ctx.at(
                    a,
                    field,
                    "VRRP version 3 has no authentication (remove auth_pass or use version 2)",
                ));
            }
            lb_vrrp::auth_from_password(a.get_ref()).map_err(|e| {
                ctx.at(
                    a,
                    field.as_str(),
                    match e {
                        lb_vrrp::AuthError::TooLong { len } => format!(
                            "the password is {len} bytes, at most 8 fit in a VRRPv2 advert (keepalived would silently truncate it; lbd refuses)"
                        ),
                        other => other.to_string(),
                    },
                )
            })?;
            Some(a.get_ref().clone())
        }
    };

    // Virtual addresses first: they fix the instance's family.
    let afield = format!("{path}.virtual_addresses");
    let (list, list_span) = match &rv.virtual_addresses {
        Some(l) => (l.get_ref().as_slice(), Some(l.span())),
        None => (&[][..], None),
    };
    if list.is_empty() {
        return Err(ctx.err(
            list_span.or(Some(rv.name.span())),
            afield,
            "at least one virtual address is required (\"ip/prefix\", e.g. \"192.168.100.40/24\")",
        ));
    }
    if list.len() > MAX_VIRTUAL_ADDRESSES {
        return Err(ctx.err(
            list_span,
            afield,
            format!(
                "{} virtual addresses: at most {MAX_VIRTUAL_ADDRESSES} fit in an advert",
                list.len()
            ),
        ));
    }
    let mut virtual_addresses: Vec<(IpAddr, u8)> = Vec::with_capacity(list.len());
    for (k, a) in list.iter().enumerate() {
        let field = format!("{afield}[{k}]");
        let (ip, len) = virtual_address(ctx, a, &field)?;
        if let Some((first_ip, _)) = virtual_addresses.first() {
            if first_ip.is_ipv4() != ip.is_ipv4() {
                return Err(ctx.at(
                    a,
                    field,
                    format!(
                        "{ip} is {} but virtual_addresses[0] {first_ip} is {}: one instance carries one family (use a second instance)",
                        family(ip),
                        family(*first_ip)
                    ),
                ));
            }
        }
        if let Some(first) = virtual_addresses.iter().position(|(v, _)| *v == ip) {
            return Err(ctx.at(
                a,
                field,
                format!("{ip} is already listed as virtual_addresses[{first}]"),
            ));
        }
        virtual_addresses.push((ip, len));
    }
    let ipv4 = virtual_addresses[0].0.is_ipv4();
    if version == Version::V2 && !ipv4 {
        let vspan = span_or(&rv.version, Some(list[0].span()));
        let field = if rv.version.is_some() {
            format!("{path}.version")
        } else {
            format!("{afield}[0]")
        };
        return Err(ctx.err(
            vspan,
            field,
            "VRRP version 2 carries IPv4 only: IPv6 virtual addresses need version = 3",
        ));
    }
    let same_family = |ctx: &Ctx<'_>, v: &Spanned<String>, field: &str| -> Result<IpAddr> {
        let ip = address(ctx, v, field)?;
        if ip.is_ipv4() != ipv4 {
            return Err(ctx.at(
                v,
                field,
                format!(
                    "{ip} is {} but the virtual addresses are {}",
                    family(ip),
                    if ipv4 { "IPv4" } else { "IPv6" }
                ),
            ));
        }
        if virtual_addresses.iter().any(|(vip, _)| *vip == ip) {
            return Err(ctx.at(
                v,
                field,
                format!("{ip} is one of the virtual addresses (it must be a node's own address)"),
            ));
        }
        Ok(ip)
    };
    let unicast_source = match &rv.unicast_source {
        Some(v) => Some(same_family(ctx, v, &format!("{path}.unicast_source"))?),
        None => None,
    };
    let mut unicast_peers: Vec<IpAddr> = Vec::new();
    if let Some(peers) = &rv.unicast_peers {
        for (k, v) in peers.get_ref().iter().enumerate() {
            let field = format!("{path}.unicast_peers[{k}]");
            let ip = same_family(ctx, v, &field)?;
            if let Some(first) = unicast_peers.iter().position(|p| *p == ip) {
                return Err(ctx.at(
                    v,
                    field,
                    format!("{ip} is already listed as unicast_peers[{first}]"),
                ));
            }
            if Some(ip) == unicast_source {
                return Err(ctx.at(v, field, format!("{ip} is the unicast_source itself")));
            }
            unicast_peers.push(ip);
        }
    }

    let mut track = Vec::with_capacity(rv.track.len());
    for (k, t) in rv.track.iter().enumerate() {
        track.push(track_entry(
            ctx,
            services,
            t,
            &format!("{path}.track[{k}]"),
            &rv.name,
        )?);
    }

    let notify = Notify {
        any: opt_path(ctx, &rv.notify, &format!("{path}.notify"))?,
        master: opt_path(ctx, &rv.notify_master, &format!("{path}.notify_master"))?,
        backup: opt_path(ctx, &rv.notify_backup, &format!("{path}.notify_backup"))?,
        fault: opt_path(ctx, &rv.notify_fault, &format!("{path}.notify_fault"))?,
    };

    let cfg = VrrpConfig {
        name,
        interface: interface.clone(),
        vrid,
        priority,
        version,
        advert_interval,
        preempt: or(&rv.preempt, true),
        preempt_delay,
        auth_pass,
        unicast_source,
        unicast_peers,
        virtual_addresses,
        track,
        notify,
        garp_master_delay: duration(
            ctx,
            &rv.garp_master_delay,
            &format!("{path}.garp_master_delay"),
            Duration::from_secs(5),
        )?,
        garp_master_repeat: or(&rv.garp_master_repeat, 5),
        v3_checksum: or(&rv.v3_checksum, V3Checksum::PseudoHeader),
    };
    // Backstop: whatever the VRRP core would clamp or refuse must have been caught above.
    let primary = unicast_source.unwrap_or(if ipv4 {
        IpAddr::from([0u8; 4])
    } else {
        IpAddr::from([0u8; 16])
    });
    cfg.instance_config(primary)
        .validate()
        .map_err(|e| ctx.at(&rv.name, format!("{path}.name"), e.to_string()))?;
    Ok(cfg)
}

/// The first span among a track entry's keys, to locate errors about the entry
/// as a whole; the instance name's when the entry is empty.
fn track_span(t: &RawTrack, fallback: &Spanned<String>) -> Range<usize> {
    let spans = [
        t.service.as_ref().map(Spanned::span),
        t.script.as_ref().map(Spanned::span),
        t.weight.as_ref().map(Spanned::span),
        t.min_healthy.as_ref().map(Spanned::span),
        t.interval.as_ref().map(Spanned::span),
        t.timeout.as_ref().map(Spanned::span),
        t.fall.as_ref().map(Spanned::span),
        t.rise.as_ref().map(Spanned::span),
    ];
    spans
        .into_iter()
        .flatten()
        .min_by_key(|s| s.start)
        .unwrap_or_else(|| fallback.span())
}

fn track_entry(
    ctx: &Ctx<'_>,
    services: &[Service],
    t: &RawTrack,
    path: &str,
    instance_name: &Spanned<String>,
) -> Result<Track> {
    let weight: i32 = match &t.weight {
        Some(w) => int_in(
            ctx,
            w,
            &format!("{path}.weight"),
            -MAX_TRACK_WEIGHT..=MAX_TRACK_WEIGHT,
            " (keepalived's range; 0 = FAULT while failing)",
        )?,
        None => 0,
    };
    match (&t.service, &t.script) {
        (Some(_), Some(script)) => Err(ctx.at(
            script,
            format!("{path}.script"),
            "a track entry is either a service or a script, not both (write two entries)",
        )),
        (Some(svc), None) => {
            let misplaced = [
                ("interval", t.interval.as_ref().map(Spanned::span)),
                ("timeout", t.timeout.as_ref().map(Spanned::span)),
                ("fall", t.fall.as_ref().map(Spanned::span)),
                ("rise", t.rise.as_ref().map(Spanned::span)),
            ];
            if let Some((key, span)) = misplaced.into_iter().find(|(_, s)| s.is_some()) {
                return Err(ctx.err(
                    span,
                    format!("{path}.{key}"),
                    format!("{key} applies to a script track, not a service track (the service's own health check decides)"),
                ));
            }
            let name = svc.get_ref();
            if !services.iter().any(|s| &s.name == name) {
                return Err(ctx.at(
                    svc,
                    format!("{path}.service"),
                    format!("no [[service]] is named {name:?}"),
                ));
            }
            let min_healthy = or(&t.min_healthy, 1);
            if let Some(m) = t.min_healthy.as_ref().filter(|m| *m.get_ref() == 0) {
                return Err(ctx.at(m, format!("{path}.min_healthy"), "must be at least 1"));
            }
            Ok(Track::Service {
                service: name.clone(),
                weight,
                min_healthy,
            })
        }
        (None, Some(script)) => {
            if let Some(m) = &t.min_healthy {
                return Err(ctx.at(
                    m,
                    format!("{path}.min_healthy"),
                    "min_healthy applies to a service track, not a script track",
                ));
            }
            if script.get_ref().as_os_str().is_empty() {
                return Err(ctx.at(script, format!("{path}.script"), "must not be empty"));
            }
            let ifield = format!("{path}.interval");
            let interval = duration(ctx, &t.interval, &ifield, Duration::from_secs(1))?;
            if interval.is_zero() {
                return Err(ctx.err(span_or(&t.interval, None), ifield, "must be greater than 0"));
            }
            let tfield = format!("{path}.timeout");
            let timeout = duration(ctx, &t.timeout, &tfield, interval)?;
            if timeout.is_zero() {
                return Err(ctx.err(span_or(&t.timeout, None), tfield, "must be greater than 0"));
            }
            if timeout > interval {
                return Err(ctx.err(
                    span_or(&t.timeout, None),
                    tfield,
                    format!(
                        "timeout {} is longer than interval {}",
                        humantime::format_duration(timeout),
                        humantime::format_duration(interval)
                    ),
                ));
            }
            if let Some(v) = t.fall.as_ref().filter(|v| *v.get_ref() == 0) {
                return Err(ctx.at(v, format!("{path}.fall"), "must be at least 1"));
            }
            if let Some(v) = t.rise.as_ref().filter(|v| *v.get_ref() == 0) {
                return Err(ctx.at(v, format!("{path}.rise"), "must be at least 1"));
            }
            Ok(Track::Script {
                script: script.get_ref().clone(),
                interval,
                timeout,
                weight,
                fall: or(&t.fall, 1),
                rise: or(&t.rise, 1),
            })
        }
        (None, None) => {
            let (field, hint) = if t.interval.is_some()
                || t.timeout.is_some()
                || t.fall.is_some()
                || t.rise.is_some()
            {
                ("script", "a script track needs script (the program to run)")
            } else {
                (
                    "service",
                    "a track entry needs service (a [[service]] name) or script",
                )
            };
            Err(ctx.err(
                Some(track_span(t, instance_name)),
                format!("{path}.{field}"),
                hint,
            ))
        }
    }
}

// ---------------------------------------------------------------- [sync]

/// How to make a key, for the messages.
const MAKE_KEY: &str = "install -m 600 /dev/null /etc/lbd/sync.key && head -c 32 /dev/urandom | base64 > /etc/lbd/sync.key";

/// The byte range of the line that opens the table `name` (`[name]`, or a
/// `name = { ... }` / `name.key = ...` line), to locate errors about the table as a
/// whole: tables carry no span of their own.
fn table_span(text: &str, name: &str) -> Option<Range<usize>> {
    let mut start = 0;
    let mut fallback = None;
    for line in text.split_inclusive('\n') {
        let span = start..start + line.trim_end().len();
        start += line.len();
        let t = line.trim();
        if let Some(inner) = t.strip_prefix('[').filter(|i| !i.starts_with('[')) {
            if inner.split(']').next().map(str::trim) == Some(name) {
                return Some(span);
            }
        } else if fallback.is_none() {
            if let Some(rest) = t.strip_prefix(name) {
                if rest.trim_start().starts_with(['=', '.']) {
                    fallback = Some(span);
                }
            }
        }
    }
    fallback
}

/// One `[sync] peers` entry: `"IP"`, `"IP:port"` or `"[IPv6]:port"` (also `"[IPv6]"`).
fn sync_peer(ctx: &Ctx<'_>, value: &Spanned<String>, field: &str, port: u16) -> Result<SocketAddr> {
    let s = value.get_ref().trim();
    let parsed = s
        .parse::<SocketAddr>()
        .ok()
        .or_else(|| s.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, port)))
        .or_else(|| {
            s.strip_prefix('[')
                .and_then(|r| r.strip_suffix(']'))
                .and_then(|r| r.parse::<std::net::Ipv6Addr>().ok())
                .map(|ip| SocketAddr::new(IpAddr::V6(ip), port))
        });
    let Some(addr) = parsed else {
        return Err(ctx.at(
            value,
            field,
            format!("{s:?} is not \"IP\", \"IP:port\" or \"[IPv6]:port\""),
        ));
    };
    if addr.port() == 0 {
        return Err(ctx.at(
            value,
            field,
            format!("{s:?}: port 0 (1..=65535; leave it out for [sync] port = {port})"),
        ));
    }
    unicast(
        ctx,
        value,
        field,
        addr.ip(),
        ": peers are unicast (the multicast group, group, is used for a VRRP instance without unicast peers when peers is empty)",
    )?;
    Ok(addr)
}

/// `[sync]`, after `[[vrrp]]` (it may name an instance). The key file is read last,
/// once everything else is known to be valid.
fn sync(ctx: &Ctx<'_>, vrrp: &[VrrpConfig], rs: &RawSync) -> Result<SyncConfig> {
    let table = table_span(ctx.text, "sync");
    let port: u16 = match &rs.port {
        Some(p) => int_in(ctx, p, "sync.port", 1..=65535, "")?,
        None => SyncConfig::DEFAULT_PORT,
    };

    let mut peers: Vec<SocketAddr> = Vec::new();
    if let Some(list) = &rs.peers {
        for (k, v) in list.get_ref().iter().enumerate() {
            let field = format!("sync.peers[{k}]");
            let addr = sync_peer(ctx, v, &field, port)?;
            if let Some(first) = peers.iter().position(|p| *p == addr) {
                return Err(ctx.at(
                    v,
                    field,
                    format!("{addr} is already listed as peers[{first}]"),
                ));
            }
            peers.push(addr);
        }
    }

    let instance = match &rs.instance {
        None => None,
        Some(v) => {
            let name = non_empty(ctx, v, "sync.instance")?;
            if !vrrp.iter().any(|i| i.name == name) {
                return Err(ctx.at(v, "sync.instance", format!("no [[vrrp]] is named {name:?}")));
            }
            Some(name)
        }
    };
    if peers.is_empty() && vrrp.is_empty() {
        return Err(ctx.err(
            span_or(&rs.peers, table.clone()),
            "sync.peers",
            "no peers and no [[vrrp]] instance to take them from: list peers (\"IP\", \"IP:port\" or \"[IPv6]:port\") or add a [[vrrp]] instance",
        ));
    }

    let group = match &rs.group {
        None => SyncConfig::DEFAULT_GROUP,
        Some(v) => {
            let s = v.get_ref().trim();
            let ip: IpAddr = s.parse().map_err(|_| {
                ctx.at(
                    v,
                    "sync.group",
                    format!("{s:?} is not an IPv4 or IPv6 address"),
                )
            })?;
            if !ip.is_multicast() {
                return Err(ctx.at(
                    v,
                    "sync.group",
                    format!("{ip} is not a multicast address (the default is 224.0.0.81, IPVS's sync group)"),
                ));
            }
            ip
        }
    };
    let max_rate: u32 = match &rs.max_rate {
        Some(v) => int_in(
            ctx,
            v,
            "sync.max_rate",
            1..=i64::from(MAX_SYNC_RATE),
            " (datagrams per second)",
        )?,
        None => SyncConfig::DEFAULT_MAX_RATE,
    };
    let max_queue: u32 = match &rs.max_queue {
        Some(v) => int_in(
            ctx,
            v,
            "sync.max_queue",
            1..=i64::from(MAX_SYNC_QUEUE),
            " (entries)",
        )?,
        None => SyncConfig::DEFAULT_MAX_QUEUE,
    };

    let (key, key_file) = sync_key(ctx, rs, table)?;
    Ok(SyncConfig {
        key,
        key_file,
        port,
        peers,
        instance,
        group,
        max_rate,
        max_queue,
    })
}

/// The sync key: `key`, or the content of `key_file` without trailing whitespace;
/// exactly one of them. No message shows the key.
fn sync_key(
    ctx: &Ctx<'_>,
    rs: &RawSync,
    table: Option<Range<usize>>,
) -> Result<(Vec<u8>, Option<PathBuf>)> {
    let size_problem = |len: usize| -> Option<String> {
        if len < MIN_SYNC_KEY_BYTES {
            Some(format!(
                "{len} bytes: at least {MIN_SYNC_KEY_BYTES} are needed (make one with: {MAKE_KEY})"
            ))
        } else if len > MAX_SYNC_KEY_BYTES {
            Some(format!("{len} bytes: at most {MAX_SYNC_KEY_BYTES}"))
        } else {
            None
        }
    };
    match (&rs.key, &rs.key_file) {
        (Some(_), Some(file)) => Err(ctx.at(
            file,
            "sync.key_file",
            "give key or key_file, not both",
        )),
        (None, None) => Err(ctx.err(
            table,
            "sync.key",
            format!("[sync] needs key (a shared secret of at least {MIN_SYNC_KEY_BYTES} bytes, the same on every node) or key_file (a file holding it); make one with: {MAKE_KEY}"),
        )),
        (Some(k), None) => match size_problem(k.get_ref().len()) {
            Some(why) => Err(ctx.at(k, "sync.key", format!("the key is {why}"))),
            None => Ok((k.get_ref().as_bytes().to_vec(), None)),
        },
        (None, Some(f)) => {
            let path = f.get_ref();
            let field = "sync.key_file";
            if path.as_os_str().is_empty() {
                return Err(ctx.at(f, field, "must not be empty"));
            }
            if path.as_os_str().as_encoded_bytes().contains(&0) {
                return Err(ctx.at(f, field, "contains a NUL character: not a usable path"));
            }
            if !path.is_absolute() {
                return Err(ctx.at(
                    f,
                    field,
                    format!("{} is not an absolute path (lbd and lbctl may run in different directories)", path.display()),
                ));
            }
            if ctx.key_files == KeyFiles::NotRead {
                return Ok((Vec::new(), Some(path.clone())));
            }
            let mut bytes = super::read::read_bytes(path, MAX_SYNC_KEY_BYTES as u64).map_err(|e| {
                ctx.at(
                    f,
                    field,
                    format!("cannot read {}: {}", path.display(), e.reason),
                )
            })?;
            while bytes.last().is_some_and(u8::is_ascii_whitespace) {
                bytes.pop();
            }
            if let Some(why) = size_problem(bytes.len()) {
                return Err(ctx.at(
                    f,
                    field,
                    format!("{} holds {why}", path.display()),
                ));
            }
            Ok((bytes, Some(path.clone())))
        }
    }
}

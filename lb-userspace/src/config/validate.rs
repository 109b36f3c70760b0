//! Semantic validation: turns the raw file into a [`Config`] with defaults applied.
//!
//! Every check reports the line of the value it is about (from its [`Spanned`]) and
//! the dotted field path, so a failed check reads like a compiler error. Checks run in
//! file order and the first failure is returned. Nothing here touches the file
//! system: a CA file or a check script that does not exist is found out when used.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use super::raw::{Opt, RawBackend, RawConfig, RawGlobal, RawHealth, RawInterface, RawKind};
use super::raw::{RawService, RawStart};
use super::{
    BackendConfig, CheckKind, Config, ConfigError, Global, HealthCheck, Interface, Protocol,
    Scheduler, Service, XdpMode,
};

/// Where the text came from, to locate errors.
pub(super) struct Ctx<'a> {
    /// The whole configuration text (spans are byte offsets into it).
    pub text: &'a str,
    /// The file name used in errors.
    pub file: &'a Path,
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
    Ok(Config {
        global,
        interfaces,
        services,
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
    let pin_dir = non_empty_path(ctx, &g.pin_dir, "global.pin_dir", d.pin_dir)?;

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

    let maglev_table_size = or(&g.maglev_table_size, d.maglev_table_size);
    if let Some(v) = &g.maglev_table_size {
        let m = *v.get_ref();
        let field = "global.maglev_table_size";
        if m as usize > lb_common::maps::MAX_TABLE_SIZE {
            return Err(ctx.at(
                v,
                field,
                format!(
                    "{m} exceeds the maximum {}",
                    lb_common::maps::MAX_TABLE_SIZE
                ),
            ));
        }
        if !lb_common::maglev::is_prime(m) {
            return Err(ctx.at(
                v,
                field,
                format!("{m} is not a prime (Maglev needs a prime table size, e.g. 65537, 65521, 32749, 251)"),
            ));
        }
    }

    let max_services = or(&g.max_services, d.max_services);
    if let Some(v) = &g.max_services {
        if *v.get_ref() == 0 {
            return Err(ctx.at(v, "global.max_services", "must be at least 1"));
        }
    }
    let max_backends = or(&g.max_backends, d.max_backends);
    if let Some(v) = &g.max_backends {
        let n = *v.get_ref();
        if n == 0 || n > lb_common::maps::MAX_BACKENDS {
            return Err(ctx.at(
                v,
                "global.max_backends",
                format!(
                    "{n} is out of range 1..={} (backend indices are 16-bit)",
                    lb_common::maps::MAX_BACKENDS
                ),
            ));
        }
    }
    let conn_table_size = or(&g.conn_table_size, d.conn_table_size);
    if let Some(v) = &g.conn_table_size {
        if *v.get_ref() == 0 {
            return Err(ctx.at(v, "global.conn_table_size", "must be at least 1"));
        }
    }

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
        settle_after: duration(ctx, &g.settle_after, "global.settle_after", d.settle_after)?,
        forwarding: or(&g.forwarding, d.forwarding),
    })
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
    let unusable = match ip {
        IpAddr::V4(v4) => v4.is_unspecified() || v4.is_multicast() || v4.is_broadcast(),
        IpAddr::V6(v6) => v6.is_unspecified() || v6.is_multicast(),
    };
    if unusable {
        return Err(ctx.at(
            value,
            field,
            format!("{ip} is an unspecified, multicast or broadcast address"),
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

//! keepalived statements -> the lbd [`Model`], applying keepalived 2.2.7's own
//! defaults and corrections (so the result behaves as keepalived did), with a
//! [`super::Warning`] for every option or value that is not carried over as written.
//!
//! Values lbd would refuse are never emitted: they are corrected (and reported)
//! or left out (and reported), so the output always passes `config::parse`.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::IpAddr;
use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

use super::emit::{BackendOut, HealthOut, KindOut, Model, ServiceOut, SyncOut, TrackOut, VrrpOut};
use super::lex::{command_words, join_words, Loc, Node};
use super::limits::{MAX_BACKENDS, MAX_SERVICES};
use super::{ImportError, Warnings};

/// keepalived's default `delay_loop` (check interval).
const DEFAULT_DELAY_LOOP: Duration = Duration::from_secs(60);
/// keepalived's default `connect_timeout`.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
// VRRP's bounds are lb-vrrp's (one owner per rule).
use lb_vrrp::limits::{
    MAX_PREEMPT_DELAY, MAX_TRACK_WEIGHT, MAX_VIRTUAL_ADDRESSES as MAX_VIPS,
    V3_MAX_INTERVAL as MAX_V3_INTERVAL,
};
/// lbd's default capacities (`[global] max_services`, `max_backends`).
const DEFAULT_MAX_SERVICES: usize = lb_common::maps::capacity::SERVICES as usize;
const DEFAULT_MAX_BACKENDS: usize = lb_common::maps::capacity::BACKENDS as usize;
/// Where the converted `[sync]` expects its key (the operator creates it).
pub(super) const SYNC_KEY_FILE: &str = "/etc/lbd/sync.key";
/// How to create that key, for the warning.
const MAKE_SYNC_KEY: &str = "install -m 600 /dev/null /etc/lbd/sync.key && head -c 32 /dev/urandom | base64 > /etc/lbd/sync.key";

/// Converts the statement tree; `top` is the top-level file (for warnings that
/// belong to no line). Fails only when there are more services or distinct
/// backends than lbd holds.
pub(super) fn convert(
    nodes: &[Node],
    top: &Path,
    warnings: &mut Warnings,
) -> Result<Model, ImportError> {
    let mut c = Converter {
        w: warnings,
        globals: Globals::default(),
        scripts: BTreeMap::new(),
        used_scripts: BTreeSet::new(),
        model: Model::default(),
        vips: BTreeMap::new(),
        routers: BTreeSet::new(),
        vrrp_names: BTreeSet::new(),
        service_keys: BTreeMap::new(),
        service_names: BTreeSet::new(),
        backend_addresses: HashSet::new(),
        fatal: None,
    };
    // keepalived applies global_defs and resolves track_script names after the
    // whole file is read: collect them first.
    for node in nodes {
        match node.keyword() {
            "global_defs" => c.global_defs(node),
            "vrrp_script" => c.vrrp_script(node),
            _ => {}
        }
    }
    for node in nodes {
        match node.keyword() {
            "global_defs" | "vrrp_script" => {}
            "vrrp_instance" => c.vrrp_instance(node),
            "virtual_server" => c.virtual_server(node),
            other => c.top_level_other(node, other),
        }
        if let Some(e) = c.fatal.take() {
            return Err(e);
        }
    }
    for script in c.scripts.values() {
        if !c.used_scripts.contains(&script.name) {
            c.w.push(
                &script.loc,
                "vrrp_script",
                format!(
                    "{} is not tracked by any converted vrrp_instance: not carried over",
                    script.name
                ),
            );
        }
    }
    Ok(c.finish(top))
}

/// What `global_defs` contributes.
#[derive(Default)]
struct Globals {
    vrrp_version: Option<u8>,
    default_interface: Option<String>,
    garp_master_delay: Option<Duration>,
    garp_master_repeat: Option<u32>,
    /// `lvs_timeouts` tcp, tcpfin, udp (in this order), each with where it was set.
    timeouts: [Option<(Duration, Loc)>; 3],
    /// The first `lvs_sync_daemon`.
    sync_daemon: Option<SyncDaemon>,
}

/// `lvs_sync_daemon IF [[inst] INSTANCE] [id N] [maxlen N] [port N] [ttl N] [group IP]`,
/// as far as it carries over.
struct SyncDaemon {
    loc: Loc,
    origin: String,
    interface: String,
    instance: Option<String>,
    port: Option<u16>,
    group: Option<IpAddr>,
}

/// The `lvs_timeouts` keywords, in the order of [`Globals::timeouts`], with lbd's
/// (and IPVS's) defaults.
const TIMEOUTS: [(&str, &str, Duration); 3] = [
    ("tcp", "timeout_tcp", crate::Global::DEFAULT_TIMEOUT_TCP),
    (
        "tcpfin",
        "timeout_tcpfin",
        crate::Global::DEFAULT_TIMEOUT_TCPFIN,
    ),
    ("udp", "timeout_udp", crate::Global::DEFAULT_TIMEOUT_UDP),
];

/// A `vrrp_script`, with keepalived's defaults.
struct Script {
    name: String,
    loc: Loc,
    /// The program (first word of `script`); `None` when there is none (keepalived
    /// drops such a script).
    program: Option<String>,
    interval: Duration,
    timeout: Option<Duration>,
    weight: i64,
    reverse: bool,
    fall: u32,
    rise: u32,
}

struct Converter<'w> {
    w: &'w mut Warnings,
    globals: Globals,
    scripts: BTreeMap<String, Script>,
    used_scripts: BTreeSet<String>,
    model: Model,
    /// Virtual address -> instance that has it.
    vips: BTreeMap<IpAddr, String>,
    /// (vrid, interface, IPv4?) already used.
    routers: BTreeSet<(u8, String, bool)>,
    vrrp_names: BTreeSet<String>,
    /// (vip, port, udp) -> service name.
    service_keys: BTreeMap<(IpAddr, u16, bool), String>,
    service_names: BTreeSet<String>,
    /// Distinct backend addresses of the converted services (at most
    /// [`MAX_BACKENDS`]).
    backend_addresses: HashSet<IpAddr>,
    /// What stops the conversion: more services or backends than lbd holds.
    fatal: Option<ImportError>,
}

/// `file:line: text` of a statement, for the comment above its table.
fn origin(node: &Node) -> String {
    format!(
        "from {}:{}: {}",
        node.loc.file.display(),
        node.loc.line,
        node.text()
    )
}

/// keepalived's `check_true_false`: on/true/yes, off/false/no.
fn truth(s: &str) -> Option<bool> {
    match s {
        "on" | "true" | "yes" => Some(true),
        "off" | "false" | "no" => Some(false),
        _ => None,
    }
}

/// Decimal seconds (`5`, `0.5`, `1.25`) with microsecond precision, as keepalived
/// reads timers.
pub(super) fn parse_secs(s: &str) -> Option<Duration> {
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, f),
        None => (s, ""),
    };
    if (int.is_empty() && frac.is_empty())
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let secs: u64 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let mut micros: u32 = 0;
    for (i, b) in frac.bytes().take(6).enumerate() {
        micros += u32::from(b - b'0') * 10u32.pow(5 - i as u32);
    }
    Some(Duration::from_secs(secs) + Duration::from_micros(u64::from(micros)))
}

/// Why an address cannot be a VIP, backend or VRRP address in lbd, if it cannot.
fn unusable(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) if v4.is_unspecified() || v4.is_multicast() || v4.is_broadcast() => {
            Some("an unspecified, multicast or broadcast address")
        }
        IpAddr::V6(v6) if v6.is_unspecified() || v6.is_multicast() => {
            Some("an unspecified or multicast address")
        }
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some() => {
            Some("an IPv4-mapped IPv6 address (write it as IPv4)")
        }
        _ => None,
    }
}

/// lbd's rule for interface names.
fn valid_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() < 16
        && name != "."
        && name != ".."
        && !name.contains(|c: char| c == '/' || c == ':' || c.is_whitespace())
}

fn family(ip: IpAddr) -> &'static str {
    if ip.is_ipv4() {
        "IPv4"
    } else {
        "IPv6"
    }
}

impl Converter<'_> {
    fn warn(&mut self, node: &Node, reason: impl Into<String>) {
        self.w.push(&node.loc, node.keyword(), reason);
    }

    /// The single argument of `node`, or a warning.
    fn one_arg<'n>(&mut self, node: &'n Node) -> Option<&'n str> {
        match node.args() {
            [] => {
                self.warn(node, "no value given: ignored");
                None
            }
            [a] => Some(a.text.as_str()),
            [a, rest @ ..] => {
                self.warn(
                    node,
                    format!(
                        "extra words after the value ({}): ignored",
                        join_words(rest)
                    ),
                );
                Some(a.text.as_str())
            }
        }
    }

    /// An unsigned integer argument in `range`, or a warning.
    fn uint(&mut self, node: &Node, range: std::ops::RangeInclusive<u64>) -> Option<u64> {
        let arg = self.one_arg(node)?;
        match arg.parse::<u64>() {
            Ok(n) if range.contains(&n) => Some(n),
            _ => {
                self.warn(
                    node,
                    format!(
                        "{arg:?} is not a whole number in {}..={}: ignored",
                        range.start(),
                        range.end()
                    ),
                );
                None
            }
        }
    }

    /// A decimal number of seconds, or a warning.
    fn secs(&mut self, node: &Node) -> Option<Duration> {
        let arg = self.one_arg(node)?;
        match parse_secs(arg) {
            Some(d) => Some(d),
            None => {
                self.warn(node, format!("{arg:?} is not a number of seconds: ignored"));
                None
            }
        }
    }

    /// A flag keyword with an optional on/off argument.
    fn flag(&mut self, node: &Node) -> Option<bool> {
        match node.arg(0) {
            None => Some(true),
            Some(a) => match truth(a) {
                Some(b) => Some(b),
                None => {
                    self.warn(
                        node,
                        format!("{a:?} is not on/off/true/false/yes/no: ignored"),
                    );
                    None
                }
            },
        }
    }

    /// A statement that was expected to have (or not have) a block.
    fn expect_block<'n>(&mut self, node: &'n Node) -> Option<&'n [Node]> {
        match &node.children {
            Some(children) => Some(children),
            None => {
                self.warn(node, "expects a { ... } block: ignored");
                None
            }
        }
    }

    fn no_block(&mut self, node: &Node) -> bool {
        if let Some(children) = &node.children {
            self.warn(
                node,
                format!(
                    "takes no {{ ... }} block: the statement and its {} block statement(s) are ignored",
                    children.len()
                ),
            );
            return false;
        }
        true
    }

    // ----- top level -----

    fn top_level_other(&mut self, node: &Node, keyword: &str) {
        let reason = match keyword {
            "vrrp_sync_group" => "lbd fails its instances over independently (no sync groups): the group is not carried over; give the instances the same priorities and tracking so they move together",
            "virtual_server_group" => "lbd has no virtual server groups: not carried over (write one virtual_server per address and port)",
            "static_ipaddress" | "static_routes" | "static_rules" => "lbd does not manage static addresses, routes or rules: not carried over (configure them in the OS)",
            "vrrp_track_process" | "track_process" => "lbd tracks scripts and services only: the process tracker is not carried over (a vrrp_script with pgrep does the same)",
            "vrrp_track_file" | "track_file" => "lbd tracks scripts and services only: the file tracker is not carried over (a vrrp_script reading the file does the same)",
            "bfd_instance" => "lbd has no BFD: not carried over",
            "garp_group" => "lbd has no gratuitous ARP groups: not carried over (per-instance garp_master_delay / garp_master_repeat are)",
            "linkbeat_interfaces" | "interface_up_down_delays" => "lbd follows interface state through netlink: not carried over",
            "track_group" => "lbd has no track groups: not carried over",
            "net_namespace" | "net_namespace_ipvs" | "namespace_with_ipsets" | "instance" | "use_pid_dir" | "child_wait_time" | "linkbeat_use_polling" => "a keepalived process option with no lbd equivalent: not carried over",
            _ => "not a keepalived 2.2.7 top-level keyword lbd knows: not carried over",
        };
        self.warn(node, reason);
    }

    fn global_defs(&mut self, node: &Node) {
        let Some(children) = self.expect_block(node) else {
            return;
        };
        for opt in children {
            if opt.children.is_some() && !matches!(opt.keyword(), "notification_email") {
                self.no_block(opt);
                continue;
            }
            match opt.keyword() {
                "router_id" => {
                    if let Some(id) = self.one_arg(opt) {
                        if id.trim().is_empty() {
                            self.warn(opt, "empty: not carried over");
                        } else {
                            self.model.node_name = Some(id.to_owned());
                        }
                    }
                }
                "vrrp_version" => {
                    if let Some(v) = self.uint(opt, 2..=3) {
                        self.globals.vrrp_version = u8::try_from(v).ok();
                    }
                }
                "default_interface" => {
                    if let Some(s) = self.one_arg(opt) {
                        if valid_ifname(s) {
                            self.globals.default_interface = Some(s.to_owned());
                        } else {
                            self.warn(opt, format!("{s:?} is not a valid interface name: ignored"));
                        }
                    }
                }
                "vrrp_garp_master_delay" => {
                    if let Some(n) = self.uint(opt, 0..=u64::from(u32::MAX)) {
                        self.globals.garp_master_delay = Some(Duration::from_secs(n));
                    }
                }
                "vrrp_garp_master_repeat" => {
                    if let Some(n) = self.uint(opt, 0..=u64::from(u32::MAX)) {
                        self.globals.garp_master_repeat = u32::try_from(n.max(1)).ok();
                    }
                }
                "notification_email" | "notification_email_from" | "smtp_server"
                | "smtp_helo_name" | "smtp_connect_timeout" | "smtp_alert"
                | "smtp_alert_vrrp" | "smtp_alert_checker" | "email_faults" => {
                    self.warn(opt, "lbd sends no e-mail (use notify scripts or the Prometheus metrics): not carried over")
                }
                "vrrp_strict" => self.warn(
                    opt,
                    "lbd has no strict mode (it adds no firewall rules, so VIP traffic is never dropped by it): not carried over",
                ),
                "script_user" | "enable_script_security" => self.warn(
                    opt,
                    "lbd runs scripts as its own user and does not check script permissions: not carried over",
                ),
                "vrrp_mcast_group4" | "vrrp_mcast_group6" => self.warn(
                    opt,
                    "lbd sends adverts to the standard groups 224.0.0.18 / ff02::12 only: not carried over",
                ),
                "vrrp_skip_check_adv_addr" => self.warn(
                    opt,
                    "lbd has no switch to skip the check of the advertised addresses: not carried over",
                ),
                "lvs_timeouts" => self.lvs_timeouts(opt),
                "lvs_sync_daemon" => self.lvs_sync_daemon(opt),
                "lvs_id" | "lvs_flush" | "lvs_flush_onstop" | "lvs_flush_on_stop" => self.warn(
                    opt,
                    "lbd does not use IPVS (it has no IPVS director name or table to flush): not carried over",
                ),
                _ => self.warn(opt, "global option with no lbd equivalent: not carried over"),
            }
        }
    }

    /// `lvs_timeouts [tcp SECS] [tcpfin SECS] [udp SECS]`, any subset in any order,
    /// read as keepalived 2.2.7 reads it: a value of 0 leaves IPVS's timeout as it
    /// was (lbd's default, IPVS's own, applies), a later value replaces an earlier one.
    fn lvs_timeouts(&mut self, opt: &Node) {
        let args = opt.args();
        if args.is_empty() {
            self.warn(
                opt,
                "needs at least one of tcp, tcpfin, udp: ignored (keepalived ignores it too)",
            );
            return;
        }
        let max = crate::limits::MAX_TIMEOUT.as_secs();
        let mut k = 0;
        while k < args.len() {
            let word = args[k].text.as_str();
            let Some(slot) = TIMEOUTS.iter().position(|(kw, _, _)| *kw == word) else {
                self.warn(
                    opt,
                    format!("unknown option {word:?}: ignored (keepalived knows tcp, tcpfin and udp, and ignores it too)"),
                );
                k += 1;
                continue;
            };
            let (_, key, default) = TIMEOUTS[slot];
            let Some(value) = args.get(k + 1).map(|w| w.text.as_str()) else {
                self.warn(opt, format!("{word} without a value: ignored"));
                break;
            };
            k += 2;
            match value.parse::<u64>() {
                Ok(0) => self.warn(
                    opt,
                    format!(
                        "{word} 0 leaves IPVS's timeout as it was: lbd's {key} keeps its default {}s (IPVS's)",
                        default.as_secs()
                    ),
                ),
                Ok(n) if n <= max => {
                    if let Some((_, first)) = &self.globals.timeouts[slot] {
                        self.warn(
                            opt,
                            format!(
                                "{word} was already set at line {}: keepalived uses the last value, so does lbd",
                                first.line
                            ),
                        );
                    }
                    self.globals.timeouts[slot] = Some((Duration::from_secs(n), opt.loc.clone()));
                }
                _ => self.warn(
                    opt,
                    format!("{word} {value:?} is not a whole number of seconds in 0..={max}: ignored (keepalived ignores it too)"),
                ),
            }
        }
    }

    /// `lvs_sync_daemon`, read as keepalived 2.2.7 reads it (the first one counts);
    /// what becomes of it is decided in [`Converter::finish_sync`], once the
    /// instances are known.
    fn lvs_sync_daemon(&mut self, opt: &Node) {
        if let Some(first) = &self.globals.sync_daemon {
            let line = first.loc.line;
            self.warn(
                opt,
                format!("already given at line {line}: keepalived uses the first one, so does lbd; this one is not carried over"),
            );
            return;
        }
        let args = opt.args();
        let Some(interface) = args.first() else {
            self.warn(opt, "no interface: ignored (keepalived ignores it too)");
            return;
        };
        let mut d = SyncDaemon {
            loc: opt.loc.clone(),
            origin: origin(opt),
            interface: interface.text.clone(),
            instance: None,
            port: None,
            group: None,
        };
        let mut k = 1;
        while k < args.len() {
            let word = args[k].text.as_str();
            if !matches!(word, "inst" | "id" | "maxlen" | "port" | "ttl" | "group") {
                match k {
                    // keepalived's older form: `lvs_sync_daemon IF INSTANCE [SYNC_ID]`.
                    1 => d.instance = Some(word.to_owned()),
                    2 => self.w.push(
                        &opt.loc,
                        "id",
                        format!("lvs_sync_daemon sync id {word}: lbd has no sync id (its sync messages are authenticated with the [sync] key instead): not carried over"),
                    ),
                    _ => self.warn(
                        opt,
                        format!("unknown option {word:?}: ignored (keepalived ignores it too)"),
                    ),
                }
                k += 1;
                continue;
            }
            let Some(value) = args.get(k + 1).map(|w| w.text.as_str()) else {
                self.warn(opt, format!("{word} without a value: ignored"));
                break;
            };
            k += 2;
            match word {
                "inst" => {
                    if let Some(first) = &d.instance {
                        let first = first.clone();
                        self.warn(opt, format!("the VRRP instance is already {first}: inst {value} is ignored (keepalived ignores it too)"));
                    } else {
                        d.instance = Some(value.to_owned());
                    }
                }
                "id" => self.w.push(
                    &opt.loc,
                    "id",
                    format!("lvs_sync_daemon id {value}: lbd has no sync id (its sync messages are authenticated with the [sync] key instead): not carried over"),
                ),
                "maxlen" => self.w.push(
                    &opt.loc,
                    "maxlen",
                    format!("lvs_sync_daemon maxlen {value}: lbd sizes its sync datagrams itself: not carried over"),
                ),
                "ttl" => self.w.push(
                    &opt.loc,
                    "ttl",
                    format!("lvs_sync_daemon ttl {value}: no lbd equivalent: not carried over"),
                ),
                "port" => match value.parse::<u16>() {
                    Ok(p) if p >= 1 => d.port = Some(p),
                    _ => self.warn(
                        opt,
                        format!("port {value:?} is not 1..=65535: ignored (keepalived ignores it too)"),
                    ),
                },
                _ => match value.parse::<IpAddr>() {
                    Ok(ip) if ip.is_multicast() => d.group = Some(ip),
                    Ok(ip) => self.warn(
                        opt,
                        format!("group {ip} is not a multicast address: ignored (keepalived ignores it too)"),
                    ),
                    Err(_) => self.warn(
                        opt,
                        format!("group {value:?} is not an IP address: ignored (keepalived ignores it too)"),
                    ),
                },
            }
        }
        self.globals.sync_daemon = Some(d);
    }

    /// The `[sync]` of `lvs_sync_daemon`, now that the converted instances are
    /// known: it takes its peers from the named instance (or every instance), so
    /// without one it cannot be carried over.
    fn finish_sync(&mut self, d: SyncDaemon) {
        let push = |w: &mut Warnings, reason: String| w.push(&d.loc, "lvs_sync_daemon", reason);
        if self.model.vrrp.is_empty() {
            push(
                self.w,
                "no vrrp_instance was carried over, and lbd takes the sync peers from one: [sync] is not carried over (write it by hand with peers = [\"IP\", ...] and a key_file)".to_owned(),
            );
            return;
        }
        let mut instance = d.instance.clone();
        match &instance {
            Some(name) if !self.model.vrrp.iter().any(|v| v.name == *name) => {
                push(
                    self.w,
                    format!("{name} is not a carried-over vrrp_instance: lbd's [sync] takes its peers from every instance instead"),
                );
                instance = None;
            }
            Some(_) => {}
            None => push(
                self.w,
                "no VRRP instance named: lbd's [sync] takes its peers from every instance"
                    .to_owned(),
            ),
        }
        let mut others: Vec<&str> = Vec::new();
        for v in &self.model.vrrp {
            if instance.as_ref().is_none_or(|n| *n == v.name)
                && v.interface != d.interface
                && !others.contains(&v.interface.as_str())
            {
                others.push(&v.interface);
            }
        }
        if !others.is_empty() {
            let reason = format!(
                "lbd sends sync messages to the VRRP instance's unicast peers, or to the group on the instance's interface ({}), not on {}: the interface is not carried over",
                others.join(", "),
                d.interface
            );
            push(self.w, reason);
        }
        push(
            self.w,
            format!("converted to [sync] with key_file = \"{SYNC_KEY_FILE}\": lbd authenticates sync messages (IPVS's sync daemon does not), so create the key before lbd starts: {MAKE_SYNC_KEY}, and put the same file on every LB node (lbd refuses the configuration while it is missing)"),
        );
        self.model.sync = Some(SyncOut {
            origin: d.origin,
            key_file: SYNC_KEY_FILE.to_owned(),
            instance,
            port: d.port,
            group: d.group,
        });
    }

    fn vrrp_script(&mut self, node: &Node) {
        let Some(name) = node.arg(0).map(str::to_owned) else {
            self.warn(node, "no script name: ignored (keepalived rejects it)");
            return;
        };
        let Some(children) = self.expect_block(node) else {
            return;
        };
        let mut s = Script {
            name: name.clone(),
            loc: node.loc.clone(),
            program: None,
            interval: Duration::from_secs(1),
            timeout: None,
            weight: 0,
            reverse: false,
            fall: 1,
            rise: 1,
        };
        for opt in children {
            if !self.no_block(opt) {
                continue;
            }
            match opt.keyword() {
                "script" => {
                    let words = command_words(opt.args());
                    match words.split_first() {
                        None => self.warn(opt, "no command: the script is dropped (keepalived drops it too)"),
                        Some((program, args)) => {
                            if !args.is_empty() {
                                self.warn(opt, format!(
                                    "lbd runs {program} without arguments: the arguments {args:?} are dropped (wrap the command in a script without arguments)"
                                ));
                            }
                            s.program = Some(program.clone());
                        }
                    }
                }
                "interval" => {
                    if let Some(n) = self.uint(opt, 0..=u64::from(u32::MAX)) {
                        s.interval = Duration::from_secs(n.max(1));
                    }
                }
                "timeout" => {
                    if let Some(n) = self.uint(opt, 0..=u64::from(u32::MAX)) {
                        s.timeout = Some(Duration::from_secs(n.max(1)));
                    }
                }
                "weight" => {
                    if let Some(v) = opt.arg(0) {
                        match v.parse::<i64>() {
                            Ok(n) if n.abs() <= MAX_TRACK_WEIGHT => s.weight = n,
                            _ => self.warn(opt, format!("{v:?} is not a weight in -253..=253: ignored")),
                        }
                        match opt.arg(1) {
                            None => {}
                            Some("reverse") => s.reverse = true,
                            Some(other) => self.warn(opt, format!("unknown weight option {other:?}: ignored")),
                        }
                    } else {
                        self.warn(opt, "no value given: ignored");
                    }
                }
                "fall" => {
                    if let Some(n) = self.uint(opt, 1..=u64::from(i32::MAX.unsigned_abs())) {
                        s.fall = u32::try_from(n).unwrap_or(1);
                    }
                }
                "rise" => {
                    if let Some(n) = self.uint(opt, 1..=u64::from(i32::MAX.unsigned_abs())) {
                        s.rise = u32::try_from(n).unwrap_or(1);
                    }
                }
                "user" => self.warn(opt, "lbd runs scripts as its own user: not carried over"),
                "init_fail" => self.warn(opt, "lbd counts a script neither up nor down until its first runs settle it (rise / fall): init_fail is not carried over"),
                _ => self.warn(opt, "vrrp_script option with no lbd equivalent: not carried over"),
            }
        }
        if let Some(t) = s.timeout {
            if t > s.interval {
                self.w.push(&s.loc, "timeout", format!(
                    "vrrp_script {name}: timeout {}s is longer than interval {}s: lbd requires timeout <= interval, so timeout = interval",
                    t.as_secs(), s.interval.as_secs()
                ));
                s.timeout = Some(s.interval);
            }
        }
        if self.scripts.contains_key(&name) {
            self.warn(node, format!("a second vrrp_script {name}: keepalived uses the first one, so does lbd; this one is not carried over"));
            return;
        }
        self.scripts.insert(name, s);
    }

    // ----- vrrp_instance -----

    fn vrrp_instance(&mut self, node: &Node) {
        let Some(name) = node.arg(0).map(str::to_owned) else {
            self.warn(
                node,
                "no instance name: not carried over (keepalived rejects it)",
            );
            return;
        };
        let Some(children) = self.expect_block(node) else {
            return;
        };
        let mut i = Instance::new(name);
        for opt in children {
            self.instance_option(&mut i, opt);
        }
        if let Some(v) = self.finish_instance(node, i) {
            self.model.vrrp.push(v);
        }
    }

    fn instance_option(&mut self, i: &mut Instance, opt: &Node) {
        let kw = opt.keyword();
        let block_keyword = matches!(
            kw,
            "unicast_peer"
                | "authentication"
                | "virtual_ipaddress"
                | "virtual_ipaddress_excluded"
                | "track_script"
                | "track_interface"
                | "track_file"
                | "track_process"
                | "track_bfd"
                | "virtual_routes"
                | "virtual_rules"
        );
        if !block_keyword && !self.no_block(opt) {
            return;
        }
        match kw {
            "state" => {
                if let Some(s) = self.one_arg(opt) {
                    match s {
                        "MASTER" => i.state_master = Some(opt.loc.clone()),
                        "BACKUP" => {}
                        other => self.warn(opt, format!("unknown state {other:?} (keepalived uses BACKUP)")),
                    }
                    self.warn(opt, format!("state {s} is a start hint; lbd elects: every instance starts as backup (an address owner, priority 255, as master) and the highest priority wins: not carried over"));
                }
            }
            "interface" => {
                if let Some(s) = self.one_arg(opt) {
                    if valid_ifname(s) {
                        i.interface = Some(s.to_owned());
                    } else {
                        self.warn(opt, format!("{s:?} is not a valid interface name: ignored"));
                    }
                }
            }
            "virtual_router_id" => {
                if let Some(n) = self.uint(opt, 1..=255) {
                    i.vrid = u8::try_from(n).ok();
                }
            }
            "priority" => {
                if let Some(arg) = self.one_arg(opt) {
                    match arg.parse::<u8>() {
                        Ok(p) if p >= 1 => i.priority = Some(p),
                        _ => {
                            self.warn(opt, format!("{arg:?} is not a priority in 1..=255: keepalived uses the default 100, so does lbd"));
                            i.priority = Some(100);
                        }
                    }
                }
            }
            "advert_int" => {
                if let Some(d) = self.secs(opt) {
                    if d.is_zero() {
                        self.warn(opt, "must be greater than 0: ignored (keepalived ignores it too)");
                    } else {
                        i.advert = Some((d, opt.loc.clone()));
                    }
                }
            }
            "version" => {
                if let Some(n) = self.uint(opt, 2..=3) {
                    i.version = Some((u8::try_from(n).unwrap_or(2), opt.loc.clone()));
                }
            }
            "nopreempt" => i.nopreempt = Some(opt.loc.clone()),
            "preempt" => i.nopreempt = None,
            "preempt_delay" => {
                if let Some(d) = self.secs(opt) {
                    if d > MAX_PREEMPT_DELAY {
                        self.warn(opt, "exceeds 1000s: keepalived uses 0, so does lbd");
                    } else if !d.is_zero() {
                        i.preempt_delay = Some((d, opt.loc.clone()));
                    }
                }
            }
            "unicast_src_ip" | "mcast_src_ip" => {
                if let Some(a) = self.one_arg(opt) {
                    match a.parse::<IpAddr>() {
                        Ok(ip) => {
                            if let Some((_, first)) = &i.source {
                                self.warn(opt, format!("the advert source was already set at line {}: keepalived takes the last one, so does lbd", first.line));
                            }
                            i.source = Some((ip, opt.loc.clone()));
                            i.source_is_mcast = kw == "mcast_src_ip";
                        }
                        Err(_) => self.warn(opt, format!("{a:?} is not an IP address: ignored")),
                    }
                }
            }
            "unicast_peer" => {
                let Some(children) = self.expect_block(opt) else {
                    return;
                };
                for peer in children {
                    match peer.keyword().parse::<IpAddr>() {
                        Ok(ip) => {
                            if !peer.args().is_empty() {
                                self.w.push(&peer.loc, "unicast_peer", format!(
                                    "{}: the peer options ({}) have no lbd equivalent: the peer is kept, its options are not",
                                    peer.keyword(), join_words(peer.args())
                                ));
                            }
                            i.peers.push((ip, peer.loc.clone()));
                        }
                        Err(_) => self.w.push(&peer.loc, "unicast_peer", format!("{:?} is not an IP address: ignored", peer.keyword())),
                    }
                    if peer.children.is_some() {
                        self.no_block(peer);
                    }
                }
            }
            "authentication" => {
                let Some(children) = self.expect_block(opt) else {
                    return;
                };
                for a in children {
                    if !self.no_block(a) {
                        continue;
                    }
                    match a.keyword() {
                        "auth_type" => {
                            if let Some(t) = self.one_arg(a) {
                                match t {
                                    "PASS" => i.auth_type = Some(AuthType::Pass),
                                    "AH" => i.auth_type = Some(AuthType::Ah(a.loc.clone())),
                                    other => self.warn(a, format!("unknown authentication type {other:?}: ignored (keepalived ignores it too)")),
                                }
                            }
                        }
                        "auth_pass" => {
                            if let Some(p) = self.one_arg(a) {
                                i.auth_pass = Some((p.to_owned(), a.loc.clone()));
                            }
                        }
                        _ => self.warn(a, "not an authentication option: not carried over"),
                    }
                }
            }
            "virtual_ipaddress" => {
                let Some(children) = self.expect_block(opt) else {
                    return;
                };
                for vip in children {
                    self.vip_line(i, vip);
                }
            }
            "track_script" => {
                let Some(children) = self.expect_block(opt) else {
                    return;
                };
                for t in children {
                    if t.children.is_some() {
                        self.no_block(t);
                        continue;
                    }
                    i.track_scripts.push(t.clone());
                }
            }
            "notify" | "notify_master" | "notify_backup" | "notify_fault" => {
                let words = command_words(opt.args());
                let Some((program, args)) = words.split_first() else {
                    self.warn(opt, "no script given: ignored");
                    return;
                };
                if !args.is_empty() {
                    let how = if kw == "notify" {
                        "with INSTANCE <name> <STATE> <priority> only"
                    } else {
                        "without arguments"
                    };
                    self.warn(opt, format!("lbd runs {program} {how}: the arguments {args:?} are dropped (wrap the command in a script)"));
                }
                let slot = match kw {
                    "notify" => &mut i.notify,
                    "notify_master" => &mut i.notify_master,
                    "notify_backup" => &mut i.notify_backup,
                    _ => &mut i.notify_fault,
                };
                if slot.is_some() {
                    self.warn(opt, "already given: keepalived keeps the first one, so does lbd");
                } else {
                    *slot = Some(program.clone());
                }
            }
            "garp_master_delay" => {
                if let Some(n) = self.uint(opt, 0..=u64::from(u32::MAX)) {
                    i.garp_delay = Some(Duration::from_secs(n));
                }
            }
            "garp_master_repeat" => {
                if let Some(n) = self.uint(opt, 0..=u64::from(u32::MAX)) {
                    if n == 0 {
                        self.warn(opt, "0: keepalived uses 1, so does lbd");
                    }
                    i.garp_repeat = u32::try_from(n.max(1)).ok();
                }
            }
            "v3_checksum_as_v2" => {
                if let Some(b) = self.flag(opt) {
                    i.v3_checksum_as_v2 = b;
                }
            }
            "track_interface" => self.warn(opt, "lbd puts an instance in FAULT only when its own interface goes down: tracked interfaces are not carried over (track a vrrp_script that checks them instead)"),
            "virtual_ipaddress_excluded" => self.warn(opt, "excluded addresses (added but not advertised) are not carried over: add them to virtual_addresses (they will be advertised) or manage them outside lbd"),
            "virtual_routes" | "virtual_rules" => self.warn(opt, "lbd adds the virtual addresses only: routes and rules are not carried over"),
            "track_file" | "track_process" | "track_bfd" => self.warn(opt, "lbd tracks scripts and services only: not carried over"),
            "use_vmac" | "vmac_xmit_base" | "use_vmac_addr" | "use_ipvlan" => self.warn(opt, "lbd adds the VIPs on the instance interface with its own MAC address (announced by gratuitous ARP): no VRRP MAC interface, not carried over"),
            "strict_mode" => self.warn(opt, "lbd has no strict mode (it adds no firewall rules): not carried over"),
            "accept" | "no_accept" => self.warn(opt, "lbd adds no firewall rules, the master always accepts traffic to the VIPs: not carried over"),
            "smtp_alert" => self.warn(opt, "lbd sends no e-mail (use notify scripts or the metrics): not carried over"),
            "notify_stop" | "notify_deleted" | "notify_master_rx_lower_pri" | "notify_priority_changes" => self.warn(opt, "lbd has notify, notify_master, notify_backup and notify_fault only (notify also reports STOP): not carried over"),
            "garp_master_refresh" | "garp_master_refresh_repeat" | "garp_lower_prio_delay" | "garp_lower_prio_repeat" | "garp_extra_if" | "vmac_garp_intvl" => self.warn(opt, "lbd sends gratuitous ARPs / NAs only when becoming master (garp_master_repeat now and again garp_master_delay later): not carried over"),
            "mcast_dst_ip" => self.warn(opt, "lbd sends adverts to 224.0.0.18 / ff02::12 (or the unicast peers) only: not carried over"),
            "lvs_sync_daemon_interface" => self.warn(opt, "keepalived's old per-instance IPVS sync interface: not carried over (global_defs lvs_sync_daemon becomes lbd's [sync])"),
            "native_ipv6" => self.warn(opt, "implied by IPv6 virtual addresses in lbd (version 3): not carried over"),
            _ => self.warn(opt, "vrrp_instance option with no lbd equivalent: not carried over"),
        }
    }

    /// One line of `virtual_ipaddress`: `ADDR[/LEN] [dev IF] [label L] [brd B] ...`.
    fn vip_line(&mut self, i: &mut Instance, line: &Node) {
        if line.children.is_some() {
            self.no_block(line);
            return;
        }
        let text = line.keyword();
        let (addr, len) = match text.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (text, None),
        };
        let ip: IpAddr = match addr.parse() {
            Ok(ip) => ip,
            Err(_) => {
                self.w.push(
                    &line.loc,
                    "virtual_ipaddress",
                    format!("{text:?} is not an address: not carried over"),
                );
                return;
            }
        };
        let max: u8 = if ip.is_ipv4() { 32 } else { 128 };
        let len = match len {
            None => max,
            Some(l) => match l.parse::<u8>() {
                Ok(n) if (1..=max).contains(&n) => n,
                _ => {
                    self.w.push(
                        &line.loc,
                        "virtual_ipaddress",
                        format!("{text:?}: prefix length {l:?} is not 1..={max}: not carried over"),
                    );
                    return;
                }
            },
        };
        let mut dev: Option<(String, Loc)> = None;
        let args = line.args();
        let mut k = 0;
        while k < args.len() {
            let opt = args[k].text.as_str();
            let takes_value = matches!(
                opt,
                "dev"
                    | "label"
                    | "brd"
                    | "broadcast"
                    | "scope"
                    | "peer"
                    | "track_group"
                    | "preferred_lft"
                    | "valid_lft"
            );
            let value = if takes_value {
                args.get(k + 1).map(|w| w.text.clone())
            } else {
                None
            };
            match (opt, value) {
                ("dev", Some(v)) => dev = Some((v, line.loc.clone())),
                ("label", Some(v)) => self.w.push(&line.loc, "label", format!("{text}: lbd sets no address label ({v}): not carried over")),
                (_, Some(v)) => self.w.push(&line.loc, opt, format!("{text}: the address option {opt} {v} has no lbd equivalent: not carried over")),
                (_, None) if takes_value => self.w.push(&line.loc, opt, format!("{text}: {opt} without a value: ignored")),
                (_, None) => self.w.push(&line.loc, opt, format!("{text}: the address option {opt} has no lbd equivalent: not carried over")),
            }
            k += if takes_value { 2 } else { 1 };
        }
        i.vips.push(Vip {
            ip,
            len,
            dev,
            loc: line.loc.clone(),
        });
    }

    /// keepalived's `vrrp_complete_instance`, then lbd's checks: the instance as
    /// lbd will run it, or `None` (reported) when it cannot run.
    fn finish_instance(&mut self, node: &Node, i: Instance) -> Option<VrrpOut> {
        let name = i.name.clone();
        let interface = match (&i.interface, self.globals.default_interface.clone()) {
            (Some(ifname), _) => ifname.clone(),
            (None, Some(default)) => {
                self.warn(node, format!("{name}: no interface: keepalived uses global_defs default_interface {default}, so does lbd"));
                default
            }
            (None, None) => {
                self.warn(node, format!("{name}: no interface: keepalived uses its default interface eth0, so does lbd (check it)"));
                "eth0".to_owned()
            }
        };
        let Some(vrid) = i.vrid else {
            self.warn(node, format!("{name}: no valid virtual_router_id: keepalived refuses the instance; not carried over"));
            return None;
        };
        if self.vrrp_names.contains(&name) {
            self.warn(node, format!("a second vrrp_instance {name}: not carried over (instance names must be unique)"));
            return None;
        }

        // Virtual addresses fix the family.
        let mut vips: Vec<(IpAddr, u8)> = Vec::new();
        let ipv4 = i.vips.first().map(|v| v.ip.is_ipv4());
        for v in &i.vips {
            let text = format!("{}/{}", v.ip, v.len);
            if let Some((dev, loc)) = &v.dev {
                if *dev != interface {
                    self.w.push(loc, "dev", format!("{text}: lbd adds the virtual addresses on the instance interface {interface}, not on {dev}"));
                }
            }
            if Some(v.ip.is_ipv4()) != ipv4 {
                self.w.push(&v.loc, "virtual_ipaddress", format!("{text}: {} but the instance is {}: one instance carries one family; not carried over", family(v.ip), if ipv4 == Some(true) { "IPv4" } else { "IPv6" }));
                continue;
            }
            if let Some(why) = unusable(v.ip) {
                self.w.push(
                    &v.loc,
                    "virtual_ipaddress",
                    format!("{text}: {why}: not carried over"),
                );
                continue;
            }
            if vips.iter().any(|(ip, _)| *ip == v.ip) {
                self.w.push(
                    &v.loc,
                    "virtual_ipaddress",
                    format!("{text}: listed twice: carried over once"),
                );
                continue;
            }
            if let Some(other) = self.vips.get(&v.ip) {
                self.w.push(&v.loc, "virtual_ipaddress", format!("{text}: already a virtual address of vrrp_instance {other}: lbd gives each address to one instance; not carried over"));
                continue;
            }
            if vips.len() == MAX_VIPS {
                self.w.push(&v.loc, "virtual_ipaddress", format!("{text}: more than {MAX_VIPS} addresses do not fit in an advert: not carried over"));
                continue;
            }
            vips.push((v.ip, v.len));
        }
        let Some(&(first_vip, _)) = vips.first() else {
            self.warn(node, format!("{name}: no usable virtual_ipaddress: lbd needs at least one virtual address; instance not carried over"));
            return None;
        };
        let ipv4 = first_vip.is_ipv4();

        // Version: explicit, else IPv6 -> 3, else global_defs vrrp_version, else 2.
        let mut version = match &i.version {
            Some((v, _)) => *v,
            None if !ipv4 => 3,
            None => self.globals.vrrp_version.unwrap_or(2),
        };
        if version == 2 && !ipv4 {
            if let Some((_, loc)) = &i.version {
                self.w.push(loc, "version", "VRRP version 2 carries IPv4 only: lbd runs this IPv6 instance with version 3 (as keepalived does in strict mode)");
            }
            version = 3;
        }

        if !self.routers.insert((vrid, interface.clone(), ipv4)) {
            self.warn(node, format!("{name}: virtual_router_id {vrid} is already used on {interface} for {}: not carried over (one VRID per interface and family)", if ipv4 { "IPv4" } else { "IPv6" }));
            return None;
        }

        // Priority: explicit, else 255 for state MASTER, else 100 (keepalived).
        let priority = match (i.priority, &i.state_master) {
            (Some(p), _) => p,
            (None, Some(loc)) => {
                self.w.push(loc, "state", "state MASTER without a priority: keepalived makes the node the address owner (priority 255), so does lbd");
                255
            }
            (None, None) => 100,
        };

        // Preemption, with keepalived's corrections.
        let mut preempt = true;
        if let Some(loc) = &i.nopreempt {
            if priority == 255 {
                self.w.push(loc, "nopreempt", "keepalived ignores nopreempt with priority 255 (the address owner always preempts): preempt = true");
            } else if i.state_master.is_some() {
                self.w.push(loc, "nopreempt", "keepalived ignores nopreempt with state MASTER (it logs \"nopreempt will not work with initial state MASTER\"): preempt = true, as keepalived ran it; set preempt = false if that was the intent");
            } else {
                preempt = false;
            }
        }
        let mut preempt_delay = Duration::ZERO;
        if let Some((d, loc)) = &i.preempt_delay {
            if i.state_master.is_some() {
                self.w.push(loc, "preempt_delay", "keepalived ignores preempt_delay with state MASTER: not carried over, as keepalived ran it");
            } else if !preempt {
                self.w.push(
                    loc,
                    "preempt_delay",
                    "keepalived ignores preempt_delay with nopreempt: not carried over",
                );
            } else {
                preempt_delay = *d;
            }
        }

        // Advert interval, rounded as keepalived rounds it.
        let mut advert = Duration::from_secs(1);
        if let Some((d, loc)) = &i.advert {
            advert = *d;
            if version == 2 {
                if advert >= Duration::from_secs(256) {
                    advert = Duration::from_secs(255);
                } else if advert.subsec_nanos() != 0 {
                    let ms = advert.as_millis();
                    advert =
                        Duration::from_secs(u64::try_from((ms + 500) / 1000).unwrap_or(1).max(1));
                }
                if advert != *d {
                    self.w.push(loc, "advert_int", format!("VRRPv2 advert intervals are whole seconds 1..=255: keepalived uses {}s, so does lbd", advert.as_secs()));
                }
            } else {
                if advert > MAX_V3_INTERVAL {
                    advert = MAX_V3_INTERVAL;
                } else {
                    let cs = (advert.as_micros() + 5_000) / 10_000;
                    advert = Duration::from_millis(u64::try_from(cs.max(1) * 10).unwrap_or(10));
                }
                if advert != *d {
                    self.w.push(loc, "advert_int", format!("VRRPv3 advert intervals are multiples of 10ms up to 40.95s: keepalived uses {}ms, so does lbd", advert.as_millis()));
                }
            }
        }

        // Authentication.
        let mut auth_pass = None;
        match (&i.auth_type, &i.auth_pass) {
            (None, None) => {}
            (Some(AuthType::Ah(loc)), _) => self.w.push(loc, "auth_type", "IPsec AH authentication is not supported by lbd: not carried over (both nodes must drop it)"),
            (None, Some((_, loc))) => self.w.push(loc, "auth_pass", "no auth_type PASS: keepalived sends no authentication, neither does lbd; not carried over"),
            (Some(AuthType::Pass), None) => self.warn(node, format!("{name}: auth_type PASS without auth_pass: keepalived ignores the authentication, so does lbd")),
            (Some(AuthType::Pass), Some((pass, loc))) => {
                if version == 3 {
                    self.w.push(loc, "auth_pass", "VRRP version 3 has no authentication (keepalived ignores it): not carried over");
                } else if pass.is_empty() {
                    self.w.push(loc, "auth_pass", "empty password: keepalived ignores the authentication, so does lbd");
                } else if pass.len() > 8 {
                    let mut cut = 8;
                    while !pass.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    let kept = &pass[..cut];
                    if cut == 8 {
                        self.w.push(loc, "auth_pass", format!("the password is {} bytes: keepalived silently truncated it to its first 8 bytes {kept:?} (that is what goes on the wire); lbd refuses longer passwords, so auth_pass = {kept:?}", pass.len()));
                    } else {
                        self.w.push(loc, "auth_pass", format!("the password is {} bytes and its 8th byte is inside a multi-byte character: keepalived sends the first 8 bytes, which a TOML string cannot hold; auth_pass = {kept:?} will NOT match keepalived peers", pass.len()));
                    }
                    if !kept.is_empty() {
                        auth_pass = Some(kept.to_owned());
                    }
                } else {
                    auth_pass = Some(pass.clone());
                }
            }
        }

        // Advert source and unicast peers.
        let mut unicast_source = None;
        if let Some((ip, loc)) = &i.source {
            if ip.is_ipv4() != ipv4 {
                self.w.push(
                    loc,
                    "unicast_src_ip",
                    format!("{ip} is not of the instance's family: not carried over"),
                );
            } else if let Some(why) = unusable(*ip) {
                self.w.push(
                    loc,
                    "unicast_src_ip",
                    format!("{ip} is {why}: not carried over"),
                );
            } else if vips.iter().any(|(v, _)| v == ip) {
                self.w.push(loc, "unicast_src_ip", format!("{ip} is one of the virtual addresses (it must be the node's own address): not carried over"));
            } else {
                unicast_source = Some(*ip);
            }
        }
        let mut peers: Vec<IpAddr> = Vec::new();
        let mut peer_set: HashSet<IpAddr> = HashSet::new();
        for (ip, loc) in &i.peers {
            let why = if ip.is_ipv4() != ipv4 {
                Some("not of the instance's family".to_owned())
            } else if let Some(why) = unusable(*ip) {
                Some(why.to_owned())
            } else if peer_set.contains(ip) {
                Some("listed twice (kept once)".to_owned())
            } else if Some(*ip) == unicast_source {
                Some("the advert source itself".to_owned())
            } else if vips.iter().any(|(v, _)| v == ip) {
                Some("one of the virtual addresses".to_owned())
            } else {
                None
            };
            match why {
                Some(why) => self.w.push(
                    loc,
                    "unicast_peer",
                    format!("{ip}: {why}: not carried over"),
                ),
                None => {
                    peer_set.insert(*ip);
                    peers.push(*ip);
                }
            }
        }

        // Tracked scripts.
        let mut track = Vec::new();
        for t in &i.track_scripts {
            if let Some(out) = self.track_script(t) {
                track.push(out);
            }
        }

        self.vrrp_names.insert(name.clone());
        for (ip, _) in &vips {
            self.vips.insert(*ip, name.clone());
        }
        Some(VrrpOut {
            origin: origin(node),
            name,
            interface,
            vrid,
            priority,
            version,
            advert_interval: advert,
            preempt,
            preempt_delay,
            auth_pass,
            unicast_source,
            unicast_source_from_mcast: unicast_source.is_some() && i.source_is_mcast,
            unicast_peers: peers,
            virtual_addresses: vips,
            track,
            notify: i.notify,
            notify_master: i.notify_master,
            notify_backup: i.notify_backup,
            notify_fault: i.notify_fault,
            garp_master_delay: i.garp_delay.or(self.globals.garp_master_delay),
            garp_master_repeat: i.garp_repeat.or(self.globals.garp_master_repeat),
            v3_checksum_message_only: i.v3_checksum_as_v2,
        })
    }

    /// One `track_script` line: `NAME [weight N [reverse]]`.
    fn track_script(&mut self, t: &Node) -> Option<TrackOut> {
        let name = t.keyword().to_owned();
        let mut weight: Option<i64> = None;
        let mut reverse = false;
        let args = t.args();
        let mut k = 0;
        while k < args.len() {
            match args[k].text.as_str() {
                "weight" => {
                    match args.get(k + 1).map(|w| w.text.parse::<i64>()) {
                        Some(Ok(n)) if n.abs() <= MAX_TRACK_WEIGHT => weight = Some(n),
                        _ => self.w.push(&t.loc, "track_script", format!("{name}: the weight is not a number in -253..=253: the script's own weight is used")),
                    }
                    k += 2;
                }
                "reverse" => {
                    reverse = true;
                    k += 1;
                }
                other => {
                    self.w.push(
                        &t.loc,
                        "track_script",
                        format!("{name}: unknown option {other:?}: ignored"),
                    );
                    k += 1;
                }
            }
        }
        let Some(script) = self.scripts.get(&name) else {
            self.w.push(&t.loc, "track_script", format!("{name}: no vrrp_script {name} is defined (keepalived ignores the entry): not carried over"));
            return None;
        };
        let Some(program) = script.program.clone() else {
            self.w.push(
                &t.loc,
                "track_script",
                format!(
                    "{name}: the vrrp_script has no script (keepalived drops it): not carried over"
                ),
            );
            return None;
        };
        if reverse || script.reverse {
            self.w.push(&t.loc, "track_script", format!("{name}: lbd has no reversed weights (\"weight N reverse\"): not carried over; track the inverse condition with the opposite weight instead"));
            return None;
        }
        let out = TrackOut {
            script: program,
            interval: script.interval,
            timeout: script.timeout,
            weight: i32::try_from(weight.unwrap_or(script.weight)).unwrap_or(0),
            fall: script.fall,
            rise: script.rise,
        };
        self.used_scripts.insert(name);
        Some(out)
    }

    // ----- virtual_server -----

    fn virtual_server(&mut self, node: &Node) {
        let (vip, port) = match node.args() {
            [kind, _] if kind.text == "fwmark" || kind.text == "group" => {
                self.warn(node, format!("virtual_server {}: lbd balances address + port services only: not carried over", join_words(node.args())));
                return;
            }
            [addr, port] => match (addr.text.parse::<IpAddr>(), port.text.parse::<u16>()) {
                (Ok(a), Ok(p)) => (a, p),
                _ => {
                    self.warn(
                        node,
                        format!(
                            "{:?} is not an address and a port: not carried over",
                            join_words(node.args())
                        ),
                    );
                    return;
                }
            },
            _ => {
                self.warn(
                    node,
                    format!(
                        "expects an address and a port, found {:?}: not carried over",
                        join_words(node.args())
                    ),
                );
                return;
            }
        };
        let Some(children) = self.expect_block(node) else {
            return;
        };
        if let Some(why) = unusable(vip) {
            self.warn(node, format!("{vip} is {why}: not carried over"));
            return;
        }
        let mut vs = VirtualServer::default();
        let mut real_servers: Vec<&Node> = Vec::new();
        for opt in children {
            let kw = opt.keyword();
            if kw == "real_server" {
                real_servers.push(opt);
                continue;
            }
            if !self.no_block(opt) {
                continue;
            }
            if self.timer_option(&mut vs.timers, opt) {
                continue;
            }
            match kw {
                "lb_algo" | "lvs_sched" => {
                    if let Some(s) = self.one_arg(opt) {
                        vs.sched = Some(Setting::of(opt, s));
                    }
                }
                "lb_kind" | "lvs_method" => {
                    if let Some(m) = opt.arg(0) {
                        vs.method = Some(Setting::of(opt, m));
                        if opt.args().len() > 1 {
                            self.warn(opt, format!("the forwarding options {} have no lbd equivalent: not carried over", join_words(&opt.args()[1..])));
                        }
                    } else {
                        self.warn(opt, "no value given: ignored");
                    }
                }
                "protocol" => {
                    if let Some(p) = self.one_arg(opt) {
                        match p {
                            "TCP" => vs.udp = false,
                            "UDP" => vs.udp = true,
                            other => {
                                self.warn(opt, format!("lbd balances TCP and UDP only, not {other}: virtual_server not carried over"));
                                vs.unsupported_protocol = true;
                            }
                        }
                    }
                }
                "persistence_timeout" => {
                    vs.persistence = Some(opt.loc.clone());
                }
                "persistence_granularity" | "persistence_engine" => self.warn(opt, "lbd has no IPVS persistence templates: not carried over (scheduler source-hash gives client affinity)"),
                "sh-port" | "mh-port" => vs.hash_port = true,
                "sh-fallback" | "mh-fallback" => self.warn(opt, "lbd's Maglev table holds healthy backends only (a failed backend's flows are re-balanced), so there is nothing to fall back from: not carried over"),
                "lvs_flags" | "flag-1" | "flag-2" | "flag-3" => {
                    let flags: Vec<&str> = opt.args().iter().map(|w| w.text.as_str()).collect();
                    if flags.iter().any(|f| *f == "sh-port" || *f == "mh-port") {
                        vs.hash_port = true;
                    }
                    let other: Vec<&&str> = flags.iter().filter(|f| **f != "sh-port" && **f != "mh-port").collect();
                    if !other.is_empty() || flags.is_empty() {
                        self.warn(opt, format!("scheduler flags {other:?} have no lbd equivalent: not carried over"));
                    }
                }
                "quorum" | "quorum_up" | "quorum_down" | "hysteresis" => self.warn(opt, "lbd has no virtual server quorum: not carried over (a VRRP track on the [[service]] with min_healthy gives a similar failover)"),
                "sorry_server" | "sorry_server_inhibit" | "sorry_server_lvs_method" => self.warn(opt, "lbd has no sorry server: not carried over (with no healthy backend lbd drops the service's packets)"),
                "inhibit_on_failure" => self.warn(opt, "lbd takes a failed backend out of its Maglev table and re-balances its flows (IPVS expire_nodest_conn=1): inhibit_on_failure (weight 0 instead, existing connections continue) is not carried over"),
                "omega" => self.warn(opt, "lbd runs no quorum scripts: not carried over"),
                "ha_suspend" => self.warn(opt, "lbd checks backends whether or not this node is VRRP master: not carried over"),
                "ops" | "one_packet_scheduling" => self.warn(opt, "lbd balances flows, not single packets: not carried over"),
                "ip_family" => self.warn(opt, "implied by the addresses in lbd: not carried over"),
                "smtp_alert" => self.warn(opt, "lbd sends no e-mail: not carried over"),
                _ => self.warn(opt, "virtual_server option with no lbd equivalent: not carried over"),
            }
        }
        if vs.unsupported_protocol {
            return;
        }
        let key = (vip, port, vs.udp);
        if let Some(other) = self.service_keys.get(&key) {
            self.warn(
                node,
                format!(
                    "the same address, port and protocol as the service {other}: not carried over"
                ),
            );
            return;
        }

        // Scheduler.
        let source_hash = match &vs.sched {
            None => false,
            Some(Setting {
                value,
                loc,
                keyword,
            }) => match value.as_str() {
                "sh" | "mh" => !vs.hash_port,
                other => {
                    self.w.push(loc, keyword.as_str(), format!(
                        "lbd has no {other:?} scheduler: Maglev consistent hashing replaces it (new flows spread by backend weight, a flow keeps its backend while it stays healthy, and every LB node picks the same backend); scheduler = \"maglev\""
                    ));
                    false
                }
            },
        };
        if let Some(loc) = &vs.persistence {
            let reason = if source_hash {
                "lbd has no persistence timeout: scheduler source-hash already sends every connection of a client to the same backend, with no timeout; not carried over"
            } else {
                "lbd has no persistence timeout: Maglev keeps a client's flow on one backend, but its other connections may go to other backends; not carried over (use scheduler = \"source-hash\" for client affinity)"
            };
            self.w.push(loc, "persistence_timeout", reason);
        }

        // Forwarding method.
        match &vs.method {
            Some(Setting { value, .. }) if value == "DR" => {}
            Some(Setting { value: m, loc, keyword }) => self.w.push(loc, keyword.as_str(), format!(
                "lbd forwards by direct server return only, not {m}: the real servers must be set up for DR (VIP on lo, arp_ignore=1, arp_announce=2, same port)"
            )),
            None => self.warn(node, "no lb_kind / lvs_method: keepalived defaults to NAT; lbd forwards by direct server return only: the real servers must be set up for DR (VIP on lo, arp_ignore=1, arp_announce=2, same port)"),
        }

        // Real servers.
        if self.model.services.len() >= MAX_SERVICES {
            self.fatal.get_or_insert_with(|| {
                ImportError::input(
                    &node.loc,
                    format!(
                        "virtual_server {}: more than {MAX_SERVICES} virtual_servers to convert: lbd holds at most {MAX_SERVICES} services (global.max_services)",
                        join_words(node.args())
                    ),
                )
            });
            return;
        }
        let mut backends: Vec<BackendOut> = Vec::new();
        let mut kept: HashSet<IpAddr> = HashSet::new();
        let mut checks: Vec<(Option<CheckSpec>, Loc)> = Vec::new();
        for rs in real_servers {
            if let Some((b, check)) = self.real_server(rs, vip, port, &vs, &kept) {
                if self.backend_addresses.insert(b.address)
                    && self.backend_addresses.len() > MAX_BACKENDS
                {
                    self.fatal.get_or_insert_with(|| {
                        ImportError::input(
                            &rs.loc,
                            format!(
                                "real_server {}: more than {MAX_BACKENDS} distinct real_server addresses: lbd holds at most {MAX_BACKENDS} backends (global.max_backends; backend indices are 16-bit)",
                                b.address
                            ),
                        )
                    });
                    return;
                }
                kept.insert(b.address);
                backends.push(b);
                checks.push((check, rs.loc.clone()));
            }
        }

        // The service's health check: the first real server's.
        let health = match checks.first() {
            Some((first, first_loc)) => {
                let first = first.clone();
                for (other, loc) in checks.iter().skip(1) {
                    if *other != first {
                        self.w.push(loc, "real_server", format!(
                            "checked differently from the first real_server (line {}): lbd checks every backend of a service the same way, with the first real_server's check",
                            first_loc.line
                        ));
                    }
                }
                match first {
                    Some(spec) => spec.health,
                    None => HealthOut {
                        kind: KindOut::None,
                        port: None,
                        interval: DEFAULT_DELAY_LOOP,
                        timeout: DEFAULT_CONNECT_TIMEOUT,
                        rise: 1,
                        fall: 1,
                        start_up: true,
                    },
                }
            }
            None => {
                let t = vs.timers.resolve(&Timers::default(), &Timers::default());
                let interval = t.delay_loop.unwrap_or(DEFAULT_DELAY_LOOP);
                HealthOut {
                    kind: KindOut::Tcp,
                    port: None,
                    interval,
                    timeout: t
                        .connect_timeout
                        .unwrap_or(DEFAULT_CONNECT_TIMEOUT)
                        .min(interval),
                    rise: 1,
                    fall: 1 + t.retry.unwrap_or(1),
                    start_up: !t.alpha.unwrap_or(false),
                }
            }
        };
        let health = if port == 0
            && health.port.is_none()
            && matches!(
                health.kind,
                KindOut::Tcp | KindOut::Http { .. } | KindOut::Https { .. }
            ) {
            self.warn(node, "port 0 (every port) and no connect_port: lbd cannot tell which port to check; the health check is not carried over (kind = \"none\": backends always up)");
            HealthOut {
                kind: KindOut::None,
                ..health
            }
        } else {
            health
        };

        let base = if vs.udp {
            format!("vs-{vip}-{port}-udp")
        } else {
            format!("vs-{vip}-{port}")
        };
        let mut name = base.clone();
        let mut n = 2;
        while self.service_names.contains(&name) {
            name = format!("{base}-{n}");
            n += 1;
        }
        self.service_names.insert(name.clone());
        self.service_keys.insert(key, name.clone());
        self.model.services.push(ServiceOut {
            origin: origin(node),
            name,
            vip,
            port,
            udp: vs.udp,
            source_hash,
            health,
            backends,
        });
    }

    /// The timer options valid at virtual_server, real_server and checker level.
    fn timer_option(&mut self, t: &mut Timers, opt: &Node) -> bool {
        match opt.keyword() {
            "delay_loop" => {
                if let Some(d) = self.secs(opt) {
                    if d.is_zero() {
                        self.warn(opt, "must be greater than 0: ignored");
                    } else {
                        t.delay_loop = Some(d);
                    }
                }
            }
            "retry" | "nb_get_retry" => {
                if let Some(n) = self.uint(opt, 0..=u64::from(u32::MAX - 1)) {
                    t.retry = u32::try_from(n).ok();
                }
            }
            "connect_timeout" => {
                if let Some(d) = self.secs(opt) {
                    if d.is_zero() {
                        self.warn(opt, "must be greater than 0: ignored");
                    } else {
                        t.connect_timeout = Some(d);
                    }
                }
            }
            "delay_before_retry" => {
                if self.secs(opt).is_some() {
                    t.delay_before_retry = Some(opt.loc.clone());
                }
            }
            "alpha" => {
                if let Some(b) = self.flag(opt) {
                    t.alpha = Some(b);
                }
            }
            "warmup" => self.warn(
                opt,
                "lbd starts checking at once (no random warm-up delay): not carried over",
            ),
            "virtualhost" => {
                if let Some(h) = self.one_arg(opt) {
                    t.host = Some(h.to_owned());
                }
            }
            _ => return false,
        }
        true
    }

    /// One real_server: the backend (or `None`, reported) and its health check.
    fn real_server(
        &mut self,
        rs: &Node,
        vip: IpAddr,
        vport: u16,
        vs: &VirtualServer,
        kept: &HashSet<IpAddr>,
    ) -> Option<(BackendOut, Option<CheckSpec>)> {
        let (addr, port) = match rs.args() {
            [a, p] => match (a.text.parse::<IpAddr>(), p.text.parse::<u16>()) {
                (Ok(a), Ok(p)) => (a, p),
                _ => {
                    self.warn(
                        rs,
                        format!(
                            "{:?} is not an address and a port: not carried over",
                            join_words(rs.args())
                        ),
                    );
                    return None;
                }
            },
            [a] => match a.text.parse::<IpAddr>() {
                Ok(a) => (a, vport),
                Err(_) => {
                    self.warn(
                        rs,
                        format!("{:?} is not an address: not carried over", a.text),
                    );
                    return None;
                }
            },
            _ => {
                self.warn(rs, "expects an address and a port: not carried over");
                return None;
            }
        };
        let empty = Vec::new();
        let children = rs.children.as_ref().unwrap_or(&empty);
        let skip = if port != vport {
            Some(format!("{addr} port {port} differs from the virtual port {vport}: direct server return cannot translate ports; not carried over"))
        } else if addr.is_ipv4() != vip.is_ipv4() {
            Some(format!(
                "{addr} is {} but the virtual address is {}: not carried over",
                family(addr),
                family(vip)
            ))
        } else if addr == vip {
            Some(format!(
                "{addr} is the virtual address itself: not carried over"
            ))
        } else if let Some(why) = unusable(addr) {
            Some(format!("{addr} is {why}: not carried over"))
        } else if kept.contains(&addr) {
            Some(format!(
                "{addr} is listed twice in this virtual_server: carried over once"
            ))
        } else {
            None
        };
        if let Some(why) = skip {
            self.warn(
                rs,
                format!("{why} (its {} option(s) with it)", children.len()),
            );
            return None;
        }

        let mut timers = Timers::default();
        let mut weight: u32 = 1;
        let mut checkers: Vec<&Node> = Vec::new();
        for opt in children {
            let kw = opt.keyword();
            if matches!(kw, "TCP_CHECK" | "HTTP_GET" | "SSL_GET" | "MISC_CHECK") {
                checkers.push(opt);
                continue;
            }
            if matches!(
                kw,
                "SMTP_CHECK"
                    | "DNS_CHECK"
                    | "UDP_CHECK"
                    | "PING_CHECK"
                    | "FILE_CHECK"
                    | "BFD_CHECK"
            ) {
                self.warn(opt, "lbd checks with TCP, HTTP, HTTPS or a script (MISC_CHECK): this checker is not carried over");
                continue;
            }
            if !self.no_block(opt) {
                continue;
            }
            if self.timer_option(&mut timers, opt) {
                continue;
            }
            match kw {
                "weight" => {
                    if let Some(n) = self.uint(opt, 0..=u64::from(u16::MAX)) {
                        weight = u32::try_from(n).unwrap_or(1);
                    }
                }
                "inhibit_on_failure" => self.warn(opt, "lbd takes a failed backend out of its Maglev table and re-balances its flows: inhibit_on_failure (weight 0 instead, existing connections continue) is not carried over"),
                "notify_up" | "notify_down" => self.warn(opt, "lbd runs no per-backend notify scripts (lbctl and the metrics show backend state): not carried over"),
                "uthreshold" | "lthreshold" => self.warn(opt, "lbd has no connection thresholds: not carried over"),
                "lb_kind" | "lvs_method" => {
                    if opt.arg(0) != Some("DR") {
                        self.warn(opt, "lbd forwards by direct server return only: not carried over");
                    }
                }
                "smtp_alert" => self.warn(opt, "lbd sends no e-mail: not carried over"),
                _ => self.warn(opt, "real_server option with no lbd equivalent: not carried over"),
            }
        }
        // Checkers last: keepalived applies the real server's settings to them
        // wherever they are written.
        let mut check: Option<CheckSpec> = None;
        for (k, opt) in checkers.iter().enumerate() {
            let spec = self.checker(opt, vs, &timers);
            if k == 0 {
                check = spec;
            } else {
                self.warn(opt, "a second checker: lbd runs one health check per service (the first checker of the first real_server): not carried over");
            }
        }
        Some((
            BackendOut {
                address: addr,
                weight,
            },
            check,
        ))
    }

    /// A TCP_CHECK / HTTP_GET / SSL_GET / MISC_CHECK block as lbd's health check.
    fn checker(&mut self, node: &Node, vs: &VirtualServer, rs: &Timers) -> Option<CheckSpec> {
        let kw = node.keyword();
        let children = self.expect_block(node)?;
        let mut timers = Timers::default();
        let mut port: Option<u16> = None;
        let mut urls: Vec<&Node> = Vec::new();
        let mut misc_path: Option<Vec<String>> = None;
        let mut misc_timeout: Option<Duration> = None;
        for opt in children {
            if kw != "MISC_CHECK" && opt.keyword() == "url" {
                urls.push(opt);
                continue;
            }
            if !self.no_block(opt) {
                continue;
            }
            if self.timer_option(&mut timers, opt) {
                if kw == "MISC_CHECK" && opt.keyword() == "connect_timeout" {
                    self.warn(
                        opt,
                        "MISC_CHECK uses misc_timeout, not connect_timeout: not carried over",
                    );
                }
                continue;
            }
            match (kw, opt.keyword()) {
                ("MISC_CHECK", "misc_path") => {
                    let words = command_words(opt.args());
                    if words.is_empty() {
                        self.warn(opt, "no command: ignored");
                    } else {
                        misc_path = Some(words);
                    }
                }
                ("MISC_CHECK", "misc_timeout") => {
                    if let Some(n) = self.uint(opt, 1..=u64::from(u32::MAX)) {
                        misc_timeout = Some(Duration::from_secs(n));
                    }
                }
                ("MISC_CHECK", "misc_dynamic") => self.warn(opt, "lbd does not set weights from the script's exit code: a non-zero exit is a failure; not carried over"),
                ("MISC_CHECK", "user") => self.warn(opt, "lbd runs check scripts as its own user: not carried over"),
                (_, "connect_port") => {
                    if let Some(n) = self.uint(opt, 1..=u64::from(u16::MAX)) {
                        port = u16::try_from(n).ok();
                    }
                }
                (_, "connect_ip") => self.warn(opt, "lbd checks the backend address itself: not carried over"),
                (_, "bindto" | "bind_port" | "bind_if") => self.warn(opt, "lbd chooses the check's source address: not carried over"),
                (_, "fwmark") => self.warn(opt, "lbd does not mark check traffic: not carried over"),
                (_, "log_all_failures") => self.warn(opt, "lbd logs backend state changes: not carried over"),
                ("HTTP_GET" | "SSL_GET", "http_protocol") => self.warn(opt, "lbd's checks speak HTTP/1.1: not carried over"),
                ("HTTP_GET" | "SSL_GET", "fast_recovery") => self.warn(opt, "lbd has no fast recovery (rise applies): not carried over"),
                ("HTTP_GET" | "SSL_GET", "enable_sni") => {}
                ("HTTP_GET" | "SSL_GET", "tls_compliant") => self.warn(opt, "not carried over (lbd closes TLS properly)"),
                _ => self.warn(opt, format!("{kw} option with no lbd equivalent: not carried over")),
            }
        }

        let t = timers.resolve(rs, &vs.timers);
        let interval = t.delay_loop.unwrap_or(DEFAULT_DELAY_LOOP);
        let default_retry = if kw == "MISC_CHECK" { 0 } else { 1 };
        let retry = t.retry.unwrap_or(default_retry);
        if retry > 0 {
            if let Some(loc) = &t.delay_before_retry {
                self.w.push(loc, "delay_before_retry", format!(
                    "lbd re-checks at the check interval ({}), not after delay_before_retry: a backend goes down after fall = {} failed checks spaced by the interval; not carried over",
                    super::emit::duration(interval).trim_matches('"'),
                    retry.saturating_add(1)
                ));
            }
        }

        let (kind, timeout) = match kw {
            "TCP_CHECK" => (
                KindOut::Tcp,
                t.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT),
            ),
            "HTTP_GET" | "SSL_GET" => {
                let (path, expect_status, url_host) = self.url(node, &urls);
                let host = url_host.or(t.host.clone()).and_then(|h| {
                    if h.is_empty() || h.contains(|c: char| c.is_whitespace() || c.is_control()) {
                        self.warn(
                            node,
                            format!("virtualhost {h:?} is not a host name: not carried over"),
                        );
                        None
                    } else {
                        Some(h)
                    }
                });
                let kind = if kw == "HTTP_GET" {
                    KindOut::Http {
                        path,
                        expect_status,
                        host,
                    }
                } else {
                    KindOut::Https {
                        path,
                        expect_status,
                        host,
                    }
                };
                (kind, t.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT))
            }
            _ => {
                let Some(words) = misc_path else {
                    self.warn(
                        node,
                        "no misc_path: keepalived drops this checker; not carried over",
                    );
                    return None;
                };
                let (script, args) = match words.split_first() {
                    Some((s, a)) => (s.clone(), a),
                    None => return None,
                };
                self.warn(node, format!(
                    "lbd runs the check as `{script} <backend address> <port>`{}: make sure the script checks the backend given as its first argument",
                    if args.is_empty() { String::new() } else { format!(" (the arguments {args:?} are dropped)") }
                ));
                (KindOut::Exec { script }, misc_timeout.unwrap_or(interval))
            }
        };
        let explicit = if kw == "MISC_CHECK" {
            misc_timeout.is_some()
        } else {
            t.connect_timeout.is_some()
        };
        let timeout = if timeout > interval {
            self.warn(node, format!(
                "the {}timeout {} is longer than the interval (delay_loop) {}: lbd requires timeout <= interval, so timeout = interval",
                if explicit { "" } else { "default " },
                super::emit::duration(timeout).trim_matches('"'),
                super::emit::duration(interval).trim_matches('"')
            ));
            interval
        } else {
            timeout
        };
        Some(CheckSpec {
            health: HealthOut {
                kind,
                port,
                interval,
                timeout,
                rise: 1,
                fall: retry.saturating_add(1),
                start_up: !t.alpha.unwrap_or(false),
            },
        })
    }

    /// The first `url` block: (path, expected statuses, virtualhost).
    fn url(&mut self, checker: &Node, urls: &[&Node]) -> (String, Vec<u16>, Option<String>) {
        let default_status: Vec<u16> = (200..=299).collect();
        let Some((first, rest)) = urls.split_first() else {
            self.warn(
                checker,
                "no url block: lbd requests path \"/\" expecting 200-299",
            );
            return ("/".to_owned(), default_status, None);
        };
        for extra in rest {
            self.warn(
                extra,
                "lbd checks one URL per service (the first): not carried over",
            );
        }
        let mut path = None;
        let mut status = StatusCodes::new();
        let mut host = None;
        for opt in first.children.as_deref().unwrap_or(&[]) {
            if !self.no_block(opt) {
                continue;
            }
            match opt.keyword() {
                "path" => {
                    if let Some(p) = self.one_arg(opt) {
                        if p.starts_with('/')
                            && !p.contains(|c: char| c.is_whitespace() || c.is_control())
                        {
                            path = Some(p.to_owned());
                        } else {
                            self.warn(opt, format!("{p:?} is not a request path lbd accepts (must start with '/', no blanks): \"/\" is checked instead"));
                        }
                    }
                }
                "status_code" => {
                    for w in opt.args() {
                        let range = match w.text.split_once('-') {
                            Some((a, b)) => a.parse::<u16>().ok().zip(b.parse::<u16>().ok()),
                            None => w.text.parse::<u16>().ok().map(|n| (n, n)),
                        };
                        match range {
                            Some((a, b)) if (100..=599).contains(&a) && (a..=599).contains(&b) => {
                                status.add(a, b);
                            }
                            _ => self.warn(
                                opt,
                                format!(
                                    "{:?} is not a status code or range in 100..=599: ignored",
                                    w.text
                                ),
                            ),
                        }
                    }
                    if opt.args().is_empty() {
                        self.warn(opt, "no value given: ignored");
                    }
                }
                "virtualhost" => {
                    if let Some(h) = self.one_arg(opt) {
                        host = Some(h.to_owned());
                    }
                }
                "digest" => self.warn(
                    opt,
                    "lbd checks the status code only, not a digest of the body: not carried over",
                ),
                "regex" | "regex_no_match" | "regex_options" | "regex_stack"
                | "regex_min_offset" | "regex_max_offset" => self.warn(
                    opt,
                    "lbd checks the status code only, not the body: not carried over",
                ),
                _ => self.warn(opt, "url option with no lbd equivalent: not carried over"),
            }
        }
        if path.is_none() {
            self.warn(first, "no path: lbd requests \"/\"");
        }
        let mut status = status.list;
        if status.is_empty() {
            status = default_status;
        }
        (path.unwrap_or_else(|| "/".to_owned()), status, host)
    }

    /// The model, with its interfaces and capacities.
    fn finish(mut self, top: &Path) -> Model {
        let mut interfaces: Vec<String> = Vec::new();
        for v in &self.model.vrrp {
            if !interfaces.contains(&v.interface) {
                interfaces.push(v.interface.clone());
            }
        }
        if interfaces.is_empty() {
            let loc = Loc {
                file: Rc::from(top),
                line: 1,
            };
            self.w.push(&loc, "interface", "no vrrp_instance gives an interface: [[interface]] name = \"eth0\" is a guess; set it to the interface VIP traffic arrives on");
            interfaces.push("eth0".to_owned());
        }
        self.model.interfaces = interfaces;
        let [tcp, tcpfin, udp] = std::mem::take(&mut self.globals.timeouts);
        self.model.timeout_tcp = tcp.map(|(d, _)| d);
        self.model.timeout_tcpfin = tcpfin.map(|(d, _)| d);
        self.model.timeout_udp = udp.map(|(d, _)| d);
        if let Some(d) = self.globals.sync_daemon.take() {
            self.finish_sync(d);
        }
        if self.model.services.len() > DEFAULT_MAX_SERVICES {
            self.model.max_services = Some(self.model.services.len());
        }
        if self.backend_addresses.len() > DEFAULT_MAX_BACKENDS {
            self.model.max_backends = Some(self.backend_addresses.len());
        }
        self.model
    }
}

/// HTTP status codes 100..=599 in first-written order, each once. Adding a range
/// costs its new codes only (`next` skips taken ones, path-compressed), so many
/// overlapping ranges stay linear.
pub(super) struct StatusCodes {
    /// `next[c - 100]`: the first code >= c not taken yet, or one of its
    /// predecessors on the way there; 600 = none.
    next: Vec<u16>,
    /// The codes taken, in order.
    pub(super) list: Vec<u16>,
}

impl StatusCodes {
    pub(super) fn new() -> Self {
        StatusCodes {
            next: (100..=600).collect(),
            list: Vec::new(),
        }
    }

    /// The first code >= `c` not taken yet (600 when none).
    fn free_from(&mut self, c: u16) -> u16 {
        let mut root = c;
        while self.next[usize::from(root - 100)] != root {
            root = self.next[usize::from(root - 100)];
        }
        let mut at = c;
        while at != root {
            let up = self.next[usize::from(at - 100)];
            self.next[usize::from(at - 100)] = root;
            at = up;
        }
        root
    }

    /// Takes the codes `a..=b` (within 100..=599) not taken yet, in order.
    pub(super) fn add(&mut self, a: u16, b: u16) {
        let mut c = self.free_from(a);
        while c <= b {
            self.list.push(c);
            self.next[usize::from(c - 100)] = c + 1;
            c = self.free_from(c + 1);
        }
    }
}

/// Raw `vrrp_instance` settings, before keepalived's and lbd's checks.
struct Instance {
    name: String,
    interface: Option<String>,
    vrid: Option<u8>,
    priority: Option<u8>,
    state_master: Option<Loc>,
    advert: Option<(Duration, Loc)>,
    version: Option<(u8, Loc)>,
    nopreempt: Option<Loc>,
    preempt_delay: Option<(Duration, Loc)>,
    source: Option<(IpAddr, Loc)>,
    /// The source was given as `mcast_src_ip`.
    source_is_mcast: bool,
    peers: Vec<(IpAddr, Loc)>,
    auth_type: Option<AuthType>,
    auth_pass: Option<(String, Loc)>,
    vips: Vec<Vip>,
    track_scripts: Vec<Node>,
    notify: Option<String>,
    notify_master: Option<String>,
    notify_backup: Option<String>,
    notify_fault: Option<String>,
    garp_delay: Option<Duration>,
    garp_repeat: Option<u32>,
    v3_checksum_as_v2: bool,
}

impl Instance {
    fn new(name: String) -> Self {
        Instance {
            name,
            interface: None,
            vrid: None,
            priority: None,
            state_master: None,
            advert: None,
            version: None,
            nopreempt: None,
            preempt_delay: None,
            source: None,
            source_is_mcast: false,
            peers: Vec::new(),
            auth_type: None,
            auth_pass: None,
            vips: Vec::new(),
            track_scripts: Vec::new(),
            notify: None,
            notify_master: None,
            notify_backup: None,
            notify_fault: None,
            garp_delay: None,
            garp_repeat: None,
            v3_checksum_as_v2: false,
        }
    }
}

enum AuthType {
    Pass,
    Ah(Loc),
}

struct Vip {
    ip: IpAddr,
    len: u8,
    dev: Option<(String, Loc)>,
    loc: Loc,
}

/// Checker settings inherited virtual_server -> real_server -> checker.
#[derive(Clone, Default)]
struct Timers {
    delay_loop: Option<Duration>,
    retry: Option<u32>,
    connect_timeout: Option<Duration>,
    delay_before_retry: Option<Loc>,
    alpha: Option<bool>,
    host: Option<String>,
}

impl Timers {
    /// `self` (the most specific) over `rs` over `vs`.
    fn resolve(&self, rs: &Timers, vs: &Timers) -> Timers {
        Timers {
            delay_loop: self.delay_loop.or(rs.delay_loop).or(vs.delay_loop),
            retry: self.retry.or(rs.retry).or(vs.retry),
            connect_timeout: self
                .connect_timeout
                .or(rs.connect_timeout)
                .or(vs.connect_timeout),
            delay_before_retry: self
                .delay_before_retry
                .clone()
                .or_else(|| rs.delay_before_retry.clone())
                .or_else(|| vs.delay_before_retry.clone()),
            alpha: self.alpha.or(rs.alpha).or(vs.alpha),
            host: self
                .host
                .clone()
                .or_else(|| rs.host.clone())
                .or_else(|| vs.host.clone()),
        }
    }
}

/// Raw `virtual_server` settings.
#[derive(Default)]
struct VirtualServer {
    udp: bool,
    unsupported_protocol: bool,
    sched: Option<Setting>,
    hash_port: bool,
    method: Option<Setting>,
    persistence: Option<Loc>,
    timers: Timers,
}

/// A setting with where and how (which alias) it was written.
struct Setting {
    value: String,
    loc: Loc,
    keyword: String,
}

impl Setting {
    fn of(node: &Node, value: &str) -> Self {
        Setting {
            value: value.to_owned(),
            loc: node.loc.clone(),
            keyword: node.keyword().to_owned(),
        }
    }
}

/// A real server's converted check.
#[derive(Clone, Debug, PartialEq, Eq)]
struct CheckSpec {
    health: HealthOut,
}

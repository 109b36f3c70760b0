//! `[bgp]`: which speaker lbd drives, which VIPs it announces and when it withdraws.
//! Every error names the line and field, like the rest of validation.

use std::net::IpAddr;
use std::path::PathBuf;

use toml::Spanned;

use super::{duration, int_in, non_empty_path, table_span, Ctx, Result};
use crate::raw::{Opt, RawBgp};
use crate::{limits::MAX_SOCKET_PATH, BgpConfig, Service, Speaker};

/// The placeholders a command speaker's arguments may hold.
const PLACEHOLDERS: &str = "{prefix} (e.g. 10.0.0.100/32) and {family} (ipv4 or ipv6)";

/// `[bgp]`, after `[[service]]` (its VIPs must be services').
pub(super) fn bgp(
    ctx: &Ctx<'_>,
    services: &[Service],
    has_sync: bool,
    rb: &RawBgp,
) -> Result<BgpConfig> {
    let table = table_span(ctx.text, "bgp");
    let kind = rb.speaker.as_ref().map_or("bird", |s| s.get_ref().as_str());
    let bird_only = [
        ("bird_socket", rb.bird_socket.as_ref().map(Spanned::span)),
        ("routes_file", rb.routes_file.as_ref().map(Spanned::span)),
    ];
    let command_only = [
        (
            "announce_command",
            rb.announce_command.as_ref().map(Spanned::span),
        ),
        (
            "withdraw_command",
            rb.withdraw_command.as_ref().map(Spanned::span),
        ),
        (
            "status_command",
            rb.status_command.as_ref().map(Spanned::span),
        ),
    ];
    let misplaced = |fields: &[(&str, Option<std::ops::Range<usize>>)], speaker: &str| {
        fields.iter().find_map(|(name, span)| {
            span.clone().map(|s| {
                ctx.err(
                    Some(s),
                    format!("bgp.{name}"),
                    format!("not used with speaker = \"{speaker}\""),
                )
            })
        })
    };
    let speaker = match kind {
        "bird" => {
            if let Some(e) = misplaced(&command_only, "bird") {
                return Err(e);
            }
            let socket = non_empty_path(
                ctx,
                &rb.bird_socket,
                "bgp.bird_socket",
                PathBuf::from(BgpConfig::DEFAULT_BIRD_SOCKET),
            )?;
            if let Some(v) = &rb.bird_socket {
                let len = v.get_ref().as_os_str().len();
                if len > MAX_SOCKET_PATH {
                    return Err(ctx.at(
                        v,
                        "bgp.bird_socket",
                        format!("the path is {len} bytes: a Unix socket path holds at most {MAX_SOCKET_PATH}"),
                    ));
                }
            }
            let routes_file = non_empty_path(
                ctx,
                &rb.routes_file,
                "bgp.routes_file",
                PathBuf::from(BgpConfig::DEFAULT_ROUTES_FILE),
            )?;
            for (value, field) in [
                (&rb.bird_socket, "bgp.bird_socket"),
                (&rb.routes_file, "bgp.routes_file"),
            ] {
                if let Some(v) = value {
                    let bytes = v.get_ref().as_os_str().as_encoded_bytes();
                    if !v.get_ref().is_absolute() {
                        return Err(ctx.at(v, field, "must be an absolute path"));
                    }
                    if bytes.contains(&0) || bytes.contains(&b'"') || bytes.contains(&b'\n') {
                        return Err(ctx.at(
                            v,
                            field,
                            "contains a NUL, a quote or a newline: BIRD's include cannot name it",
                        ));
                    }
                }
            }
            Speaker::Bird {
                socket,
                routes_file,
            }
        }
        "command" => {
            if let Some(e) = misplaced(&bird_only, "command") {
                return Err(e);
            }
            let need = |v: &Opt<Vec<Spanned<String>>>, field: &str| -> Result<Vec<String>> {
                match v {
                    None => Err(ctx.err(
                        table.clone(),
                        format!("bgp.{field}"),
                        format!("speaker = \"command\" needs {field}, a program and its arguments, where {PLACEHOLDERS} are replaced"),
                    )),
                    Some(list) => argv(ctx, list, field),
                }
            };
            let announce = need(&rb.announce_command, "announce_command")?;
            let withdraw = need(&rb.withdraw_command, "withdraw_command")?;
            let status = match &rb.status_command {
                Some(list) => Some(argv(ctx, list, "status_command")?),
                None => None,
            };
            Speaker::Command {
                announce,
                withdraw,
                status,
            }
        }
        other => {
            let span = rb.speaker.as_ref().map(Spanned::span);
            return Err(ctx.err(
                span,
                "bgp.speaker",
                format!("unknown speaker {other:?}: \"bird\" (BIRD 2, the default) or \"command\" (any other, driven by announce_command/withdraw_command)"),
            ));
        }
    };

    let mut vips: Vec<IpAddr> = Vec::new();
    if let Some(list) = &rb.vips {
        for (k, v) in list.get_ref().iter().enumerate() {
            let field = format!("bgp.vips[{k}]");
            let s = v.get_ref().trim();
            let ip: IpAddr = s
                .parse()
                .map_err(|_| ctx.at(v, &field, format!("{s:?} is not an IPv4 or IPv6 address")))?;
            if !services.iter().any(|svc| svc.vip == ip) {
                return Err(ctx.at(
                    v,
                    &field,
                    format!("{ip} is no service's VIP: only VIPs lbd balances can be announced"),
                ));
            }
            if vips.contains(&ip) {
                return Err(ctx.at(v, &field, format!("{ip} is listed twice")));
            }
            vips.push(ip);
        }
    }
    let min_healthy = match &rb.min_healthy {
        Some(v) => int_in(ctx, v, "bgp.min_healthy", 1..=65535, " (usable backends)")?,
        None => 1,
    };
    let drain_timeout = duration(
        ctx,
        &rb.drain_timeout,
        "bgp.drain_timeout",
        BgpConfig::DEFAULT_DRAIN_TIMEOUT,
    )?;
    if let Some(v) = &rb.drain_timeout {
        if drain_timeout > std::time::Duration::from_secs(86_400) {
            return Err(ctx.at(v, "bgp.drain_timeout", "at most 24h"));
        }
    }
    let isolated_after = match &rb.isolated_after {
        None => None,
        Some(v) => {
            if !has_sync {
                return Err(ctx.at(
                    v,
                    "bgp.isolated_after",
                    "needs [sync]: isolation is from the sync peers",
                ));
            }
            let d = duration(
                ctx,
                &rb.isolated_after,
                "bgp.isolated_after",
                Default::default(),
            )?;
            if d < std::time::Duration::from_secs(1) {
                return Err(ctx.at(
                    v,
                    "bgp.isolated_after",
                    "at least 1s (leave it out to never withdraw for isolation)",
                ));
            }
            Some(d)
        }
    };
    Ok(BgpConfig {
        speaker,
        vips,
        min_healthy,
        drain_timeout,
        drain_on_stop: rb.drain_on_stop.as_ref().is_some_and(|v| *v.get_ref()),
        isolated_after,
    })
}

/// A command line: a non-empty program, no NUL anywhere, placeholders known.
fn argv(ctx: &Ctx<'_>, list: &Spanned<Vec<Spanned<String>>>, field: &str) -> Result<Vec<String>> {
    let field = format!("bgp.{field}");
    let Some(first) = list.get_ref().first() else {
        return Err(ctx.at(list, &field, "must name a program"));
    };
    if first.get_ref().trim().is_empty() {
        return Err(ctx.at(
            first,
            format!("{field}[0]"),
            "the program must not be empty",
        ));
    }
    let mut out = Vec::new();
    for (k, arg) in list.get_ref().iter().enumerate() {
        let s = arg.get_ref();
        if s.contains('\0') {
            return Err(ctx.at(arg, format!("{field}[{k}]"), "contains a NUL character"));
        }
        let mut rest = s.as_str();
        while let Some(open) = rest.find('{') {
            let tail = &rest[open..];
            let known = ["{prefix}", "{family}"]
                .iter()
                .find(|p| tail.starts_with(**p));
            match known {
                Some(p) => rest = &tail[p.len()..],
                None => {
                    return Err(ctx.at(
                        arg,
                        format!("{field}[{k}]"),
                        format!("unknown placeholder in {s:?}: only {PLACEHOLDERS}"),
                    ))
                }
            }
        }
        out.push(s.clone());
    }
    Ok(out)
}

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
                    if bytes
                        .iter()
                        .any(|b| matches!(b, 0 | b'"' | b'\n' | b'*' | b'?' | b'['))
                    {
                        return Err(ctx.at(
                            v,
                            field,
                            "contains a NUL, a quote, a newline or a glob character (* ? [): BIRD's include cannot name it as one file",
                        ));
                    }
                }
            }
            if let (Some(v), Some(name)) = (&rb.routes_file, routes_file.file_name()) {
                if name == "bird.conf" || name == "bird6.conf" {
                    return Err(ctx.at(
                        v,
                        "bgp.routes_file",
                        "names BIRD's own config file: lbd rewrites routes_file whole; give it a file of its own that bird.conf includes",
                    ));
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
            for (argv, value, field) in [
                (&announce, &rb.announce_command, "bgp.announce_command"),
                (&withdraw, &rb.withdraw_command, "bgp.withdraw_command"),
            ] {
                if !argv.iter().any(|a| a.contains("{prefix}")) {
                    let span = value.as_ref().map(Spanned::span);
                    return Err(ctx.err(
                        span,
                        field,
                        "no argument holds {prefix}: the command would not say which VIP",
                    ));
                }
            }
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
    // A VIP one of whose services has fewer backends than min_healthy would never be
    // announced.
    let listed = |ip: &IpAddr| vips.is_empty() || vips.contains(ip);
    if let Some(short) = services
        .iter()
        .find(|svc| listed(&svc.vip) && (svc.backends.len() as u32) < min_healthy)
    {
        let span = rb.min_healthy.as_ref().map(Spanned::span);
        return Err(ctx.err(
            span,
            "bgp.min_healthy",
            format!(
                "{min_healthy} but service {:?} has {} backends: its VIP {} would never be announced",
                short.name,
                short.backends.len(),
                short.vip
            ),
        ));
    }
    let drain_timeout = duration(
        ctx,
        &rb.drain_timeout,
        "bgp.drain_timeout",
        BgpConfig::DEFAULT_DRAIN_TIMEOUT,
    )?;
    if let Some(v) = &rb.drain_timeout {
        if drain_timeout > std::time::Duration::from_secs(86_400)
            || drain_timeout < std::time::Duration::from_secs(1)
        {
            return Err(ctx.at(v, "bgp.drain_timeout", "1s to 24h"));
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
            if d < std::time::Duration::from_secs(3) {
                return Err(ctx.at(
                    v,
                    "bgp.isolated_after",
                    "at least 3s: peers send a hello every second (leave it out to never withdraw for isolation)",
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
        // `{name}` with a lower-case name is a placeholder; any other brace (a shell
        // function, JSON) is the command's own.
        let mut rest = s.as_str();
        while let Some(open) = rest.find('{') {
            let tail = &rest[open + 1..];
            let name_len = tail
                .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
                .unwrap_or(tail.len());
            let name = &tail[..name_len];
            if !name.is_empty()
                && tail[name_len..].starts_with('}')
                && name != "prefix"
                && name != "family"
            {
                return Err(ctx.at(
                    arg,
                    format!("{field}[{k}]"),
                    format!("unknown placeholder {{{name}}} in {s:?}: only {PLACEHOLDERS}"),
                ));
            }
            rest = tail;
        }
        out.push(s.clone());
    }
    Ok(out)
}

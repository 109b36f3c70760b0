//! BIRD 2: the routes file lbd owns and BIRD's control-socket protocol.
//!
//! bird.conf includes the routes file at top level (`include "/var/lib/lbd/bird-vips.conf";`)
//! and exports what its static protocols hold (`export where proto = "lb_vips4";`).
//! lbd rewrites the file (atomically, by rename) and asks BIRD to `configure`: about
//! 3 ms from request to the router's route on this machine kind. The file is the
//! lasting state: a restarted BIRD reads it and announces the same VIPs.
//!
//! The control protocol: after connecting, BIRD greets (`0001 BIRD 2.0.12 ready.`); a
//! command's reply is lines `DDDD-text` (more follow), ` text` (more of the same
//! code) and one `DDDD text` (the last). Codes from 8000 are errors.

use std::collections::BTreeSet;
use std::io::Write;
use std::net::IpAddr;
use std::path::Path;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use crate::{BgpError, Session, REQUEST_TIMEOUT};

/// Name of the static protocol holding the IPv4 VIPs (export filters name it).
pub const PROTOCOL_V4: &str = "lb_vips4";
/// Name of the static protocol holding the IPv6 VIPs.
pub const PROTOCOL_V6: &str = "lb_vips6";
/// Longest reply line read (BIRD's are short; a longer one is not BIRD).
const MAX_LINE: usize = 4096;
/// Most reply lines read for one command.
const MAX_LINES: usize = 10_000;

/// The routes file for `vips`: one static protocol per family, each VIP a host
/// route (`blackhole`: BIRD needs a destination; the node has no kernel protocol for
/// it, and the XDP program, not the kernel, forwards the VIP's packets).
pub fn routes_file(vips: &BTreeSet<IpAddr>) -> String {
    let mut out = String::from(
        "# Written by lbd: the VIPs this node announces. Do not edit; bird.conf includes it.\n",
    );
    for (name, family, v6) in [(PROTOCOL_V4, "ipv4", false), (PROTOCOL_V6, "ipv6", true)] {
        out.push_str(&format!("protocol static {name} {{\n    {family};\n"));
        for vip in vips.iter().filter(|v| v.is_ipv6() == v6) {
            let len = if v6 { 128 } else { 32 };
            out.push_str(&format!("    route {vip}/{len} blackhole;\n"));
        }
        out.push_str("}\n");
    }
    out
}

/// One line of a reply: its code (continuation lines carry none) and whether it is
/// the last. `None` for a line that is not BIRD's.
pub fn parse_line(line: &str) -> Option<(Option<u16>, bool, &str)> {
    if let Some(rest) = line.strip_prefix(' ') {
        return Some((None, false, rest));
    }
    let code = line.get(..4)?;
    if !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let code: u16 = code.parse().ok()?;
    match line.as_bytes().get(4) {
        Some(b'-') => Some((Some(code), false, &line[5..])),
        Some(b' ') => Some((Some(code), true, &line[5..])),
        None => Some((Some(code), true, "")),
        _ => None,
    }
}

/// A command's reply: each line with the code it belongs to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reply {
    /// (code, text) per line.
    pub lines: Vec<(u16, String)>,
}

impl Reply {
    /// The last line's code.
    pub fn code(&self) -> u16 {
        self.lines.last().map_or(0, |(c, _)| *c)
    }

    /// Whether BIRD answered with an error (a code from 8000).
    pub fn is_error(&self) -> bool {
        self.code() >= 8000
    }

    /// The reply's text, lines joined with "; ".
    pub fn text(&self) -> String {
        self.lines
            .iter()
            .map(|(_, t)| t.trim())
            .filter(|t| !t.is_empty())
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// Read one reply (up to its last line) from `lines`.
fn collect<'a>(lines: impl IntoIterator<Item = &'a str>, request: &str) -> Result<Reply, BgpError> {
    let mut reply = Reply::default();
    let mut code = 0;
    for line in lines {
        let Some((c, last, text)) = parse_line(line) else {
            return Err(BgpError::Protocol {
                request: request.into(),
                message: format!("not a BIRD reply line: {:?}", truncate(line)),
            });
        };
        if let Some(c) = c {
            code = c;
        }
        reply.lines.push((code, text.to_owned()));
        if last {
            return Ok(reply);
        }
    }
    Err(BgpError::Protocol {
        request: request.into(),
        message: "the reply ended early".into(),
    })
}

fn truncate(s: &str) -> String {
    s.chars().take(80).collect()
}

/// The BGP sessions in a `show protocols` reply (protocol lines of type BGP).
pub fn sessions(reply: &Reply) -> Vec<Session> {
    reply
        .lines
        .iter()
        .filter(|(code, _)| *code == 1002)
        .filter_map(|(_, text)| {
            let mut words = text.split_whitespace();
            let name = words.next()?;
            let proto = words.next()?;
            let _table = words.next()?;
            let state = words.next()?;
            let rest: Vec<&str> = words.collect();
            // "Since" is one word (a time) or two (a date and a time).
            let skip = match rest.as_slice() {
                [date, time, ..] if date.contains('-') && time.contains(':') => 2,
                [_, ..] => 1,
                [] => 0,
            };
            (proto == "BGP").then(|| Session {
                name: name.to_owned(),
                state: state.to_owned(),
                info: rest[skip..].join(" "),
            })
        })
        .collect()
}

/// Send one command over BIRD's control socket and read its reply.
pub async fn request(socket: &Path, command: &str) -> Result<Reply, BgpError> {
    let timeout = |_| BgpError::Timeout {
        request: command.into(),
    };
    tokio::time::timeout(REQUEST_TIMEOUT, exchange(socket, command))
        .await
        .map_err(timeout)?
}

async fn exchange(socket: &Path, command: &str) -> Result<Reply, BgpError> {
    let stream = UnixStream::connect(socket)
        .await
        .map_err(|source| BgpError::Unreachable {
            socket: socket.display().to_string(),
            source,
        })?;
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let greeting = read_reply(&mut read, "(greeting)").await?;
    if greeting.code() != 1 {
        return Err(BgpError::Protocol {
            request: "(greeting)".into(),
            message: format!("not BIRD's greeting: {}", greeting.text()),
        });
    }
    write
        .write_all(format!("{command}\n").as_bytes())
        .await
        .map_err(|source| BgpError::Unreachable {
            socket: socket.display().to_string(),
            source,
        })?;
    let reply = read_reply(&mut read, command).await?;
    if reply.is_error() {
        return Err(BgpError::Refused {
            request: command.into(),
            message: reply.text(),
        });
    }
    Ok(reply)
}

async fn read_reply(
    read: &mut BufReader<tokio::net::unix::OwnedReadHalf>,
    request: &str,
) -> Result<Reply, BgpError> {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        let n = read
            .read_line(&mut line)
            .await
            .map_err(|e| BgpError::Protocol {
                request: request.into(),
                message: e.to_string(),
            })?;
        if n == 0 || n > MAX_LINE || lines.len() >= MAX_LINES {
            return Err(BgpError::Protocol {
                request: request.into(),
                message: if n == 0 {
                    "the connection closed mid-reply".into()
                } else {
                    "the reply is longer than BIRD's".into()
                },
            });
        }
        let line = line.trim_end_matches(['\n', '\r']).to_owned();
        let last = parse_line(&line).is_some_and(|(_, last, _)| last);
        lines.push(line);
        if last {
            return collect(lines.iter().map(String::as_str), request);
        }
    }
}

/// Write `content` to `path` atomically (a temporary file beside it, then a rename),
/// readable by the speaker (0644); its directory is created when missing.
pub fn write_file(path: &Path, content: &str) -> Result<(), BgpError> {
    let err = |source| BgpError::File {
        path: path.display().to_string(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("/"));
    let name = path
        .file_name()
        .map_or_else(|| "routes".into(), |n| n.to_string_lossy().into_owned());
    if !dir.exists() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    let tmp = dir.join(format!(".{name}.lbd-tmp"));
    let mut f = std::fs::File::create(&tmp).map_err(err)?;
    f.write_all(content.as_bytes()).map_err(err)?;
    f.sync_all().map_err(err)?;
    drop(f);
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644)).map_err(err)?;
    }
    std::fs::rename(&tmp, path).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Captured from BIRD 2.0.12 (Debian bird2) in a namespace.
    const SHOW_PROTOCOLS: &str = "0001 BIRD 2.0.12 ready.\n2002-Name       Proto      Table      State  Since         Info\n1002-device1    Device     ---        up     13:47:19.982  \n lb_vips4   Static     master4    up     13:47:19.982  \n lb_vips6   Static     master6    up     13:47:19.982  \n rtr        BGP        ---        down   13:47:19.984  Error: Invalid next hop\n0000 \n";
    const CONFIGURE_OK: &str =
        "0002-Reading configuration from /tmp/birdt/bird.conf\n0003 Reconfigured\n";
    const CONFIGURE_BAD: &str = "0002-Reading configuration from /tmp/birdt/bird.conf\n8002 /tmp/birdt/vips.conf:1:1 syntax error, unexpected GARBAGE\n";

    fn replies(text: &str) -> Vec<Reply> {
        let mut out = Vec::new();
        let mut lines = text.lines().peekable();
        while lines.peek().is_some() {
            let mut one = Vec::new();
            for l in lines.by_ref() {
                one.push(l);
                if parse_line(l).is_some_and(|(_, last, _)| last) {
                    break;
                }
            }
            out.push(collect(one, "test").unwrap());
        }
        out
    }

    #[test]
    fn greeting_then_protocols() {
        let r = replies(SHOW_PROTOCOLS);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].code(), 1);
        assert_eq!(
            sessions(&r[1]),
            vec![Session {
                name: "rtr".into(),
                state: "down".into(),
                info: "Error: Invalid next hop".into()
            }]
        );
        assert!(!r[1].is_error());
    }

    #[test]
    fn a_session_since_a_date_keeps_its_info() {
        let r = replies("1002-rtr BGP --- up 2026-12-01 13:47:19 Established\n0000 \n");
        assert_eq!(sessions(&r[0])[0].info, "Established");
        assert_eq!(sessions(&r[0])[0].state, "up");
    }

    #[test]
    fn configure_ok_and_refused() {
        let ok = &replies(CONFIGURE_OK)[0];
        assert_eq!(ok.code(), 3);
        assert!(!ok.is_error());
        let bad = &replies(CONFIGURE_BAD)[0];
        assert!(bad.is_error());
        assert!(bad.text().contains("syntax error"), "{}", bad.text());
    }

    #[test]
    fn lines_that_are_not_bird_are_refused() {
        assert_eq!(parse_line("HTTP/1.1 200 OK"), None);
        assert_eq!(parse_line("12"), None);
        assert_eq!(parse_line("0000"), Some((Some(0), true, "")));
        assert!(
            collect(["0002-Reading"], "x").is_err(),
            "a reply without its last line"
        );
        assert!(collect(["garbage"], "x").is_err());
    }

    #[test]
    fn routes_file_holds_each_family_in_its_protocol() {
        let vips: BTreeSet<IpAddr> = ["10.0.0.100", "2001:db8::1", "10.0.0.7"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let text = routes_file(&vips);
        assert!(text.contains(
            "protocol static lb_vips4 {\n    ipv4;\n    route 10.0.0.7/32 blackhole;\n    route 10.0.0.100/32 blackhole;\n}\n"
        ), "{text}");
        assert!(text.contains(
            "protocol static lb_vips6 {\n    ipv6;\n    route 2001:db8::1/128 blackhole;\n}\n"
        ));
        let empty = routes_file(&BTreeSet::new());
        assert!(empty.contains("protocol static lb_vips4 {\n    ipv4;\n}\n"));
    }

    #[test]
    fn the_file_is_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vips.conf");
        write_file(&path, "one\n").unwrap();
        write_file(&path, "two\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "two\n");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}

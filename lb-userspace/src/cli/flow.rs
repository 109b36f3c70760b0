//! Parsing the flow of `lbctl explain SRC:PORT VIP:PORT[/PROTO]`.

use std::net::SocketAddr;

/// Parse `lbctl explain`'s arguments: the client `src` (`192.0.2.1:40000`,
/// `[2001:db8::1]:4000`) and the destination `dst_proto` (`198.51.100.10:80/tcp`,
/// `[2001:db8::10]:443/udp`; the protocol defaults to `tcp` when `/PROTO` is omitted).
/// Returns (client, VIP, protocol in lower case); the error is a message for the user.
pub fn parse_flow(src: &str, dst_proto: &str) -> Result<(SocketAddr, SocketAddr, String), String> {
    let client: SocketAddr = src.trim().parse().map_err(|_| {
        format!("bad client address '{src}': expected IP:PORT (IPv6 as [ADDR]:PORT)")
    })?;
    let dst_proto = dst_proto.trim();
    let (dst, protocol) = match dst_proto.rsplit_once('/') {
        Some((dst, proto)) => (dst, proto.to_ascii_lowercase()),
        None => (dst_proto, "tcp".to_owned()),
    };
    if protocol != "tcp" && protocol != "udp" {
        return Err(format!(
            "bad protocol '{protocol}' in '{dst_proto}': expected tcp or udp"
        ));
    }
    let vip: SocketAddr = dst.parse().map_err(|_| {
        format!("bad VIP address '{dst}': expected IP:PORT[/tcp|/udp] (IPv6 as [ADDR]:PORT)")
    })?;
    if client.is_ipv4() != vip.is_ipv4() {
        return Err(format!(
            "client {client} and VIP {vip} are of different address families"
        ));
    }
    Ok((client, vip, protocol))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_with_protocol() {
        let (s, d, p) = parse_flow("192.0.2.1:40000", "198.51.100.10:80/tcp").unwrap();
        assert_eq!(s, "192.0.2.1:40000".parse().unwrap());
        assert_eq!(d, "198.51.100.10:80".parse().unwrap());
        assert_eq!(p, "tcp");
        let (_, _, p) = parse_flow("192.0.2.1:53", "198.51.100.10:53/UDP").unwrap();
        assert_eq!(p, "udp");
    }

    #[test]
    fn ipv6() {
        let (s, d, p) = parse_flow("[2001:db8::1]:4000", "[2001:db8::10]:443/tcp").unwrap();
        assert_eq!(s, "[2001:db8::1]:4000".parse().unwrap());
        assert_eq!(d, "[2001:db8::10]:443".parse().unwrap());
        assert_eq!(p, "tcp");
    }

    #[test]
    fn protocol_defaults_to_tcp() {
        let (_, d, p) = parse_flow("192.0.2.1:40000", "198.51.100.10:80").unwrap();
        assert_eq!(d.port(), 80);
        assert_eq!(p, "tcp");
        let (_, _, p) = parse_flow("[2001:db8::1]:4000", "[2001:db8::10]:443").unwrap();
        assert_eq!(p, "tcp");
    }

    #[test]
    fn bad_input() {
        for (src, dst) in [
            ("192.0.2.1", "198.51.100.10:80/tcp"),
            ("192.0.2.1:40000", "198.51.100.10/tcp"),
            ("192.0.2.1:40000", "198.51.100.10:80/sctp"),
            ("192.0.2.1:40000", "198.51.100.10:80/"),
            ("2001:db8::1:4000", "[2001:db8::10]:443"),
            ("192.0.2.1:40000", "[2001:db8::10]:443/tcp"),
            ("", ""),
            ("host:80", "198.51.100.10:80"),
        ] {
            let err = parse_flow(src, dst).unwrap_err();
            assert!(!err.is_empty(), "{src} {dst}");
        }
        assert!(parse_flow("192.0.2.1:1", "198.51.100.10:80/sctp")
            .unwrap_err()
            .contains("sctp"));
        assert!(parse_flow("192.0.2.1:1", "[2001:db8::10]:443")
            .unwrap_err()
            .contains("famil"));
    }
}

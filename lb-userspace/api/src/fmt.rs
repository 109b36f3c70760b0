//! How addresses and protocols are written everywhere lbd and lbctl print them
//! (tables, explain, metrics labels, logs): one spelling each.

use std::net::IpAddr;

/// `ip:port`, with brackets around IPv6 addresses and `*` for port 0 (every port).
pub fn endpoint(ip: IpAddr, port: u16) -> String {
    let port = if port == 0 {
        "*".to_owned()
    } else {
        port.to_string()
    };
    match ip {
        IpAddr::V4(v4) => format!("{v4}:{port}"),
        IpAddr::V6(v6) => format!("[{v6}]:{port}"),
    }
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(mac: &[u8; 6]) -> String {
    let [a, b, c, d, e, f] = mac;
    format!("{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{f:02x}")
}

/// Parse a MAC address: six two-digit hex octets separated by `:` (or all by `-`),
/// either case.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let sep = if s.contains('-') { '-' } else { ':' };
    let mut mac = [0u8; 6];
    let mut parts = s.split(sep);
    for byte in &mut mac {
        let part = parts.next()?;
        if part.len() != 2 || !part.bytes().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        *byte = u8::from_str_radix(part, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// The name of an IP protocol number ("tcp", "udp", else "proto-N").
pub fn protocol_name(proto: u8) -> String {
    match proto {
        6 => "tcp".into(),
        17 => "udp".into(),
        p => format!("proto-{p}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings() {
        assert_eq!(endpoint("10.0.0.1".parse().unwrap(), 0), "10.0.0.1:*");
        assert_eq!(endpoint("fd00::1".parse().unwrap(), 443), "[fd00::1]:443");
        assert_eq!(
            format_mac(&[0xde, 0xad, 0, 1, 2, 0xff]),
            "de:ad:00:01:02:ff"
        );
        assert_eq!(protocol_name(17), "udp");
        assert_eq!(protocol_name(1), "proto-1");
    }
}

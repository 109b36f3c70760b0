//! A readable packet builder for fixtures: `Packet::tcp("192.0.2.1:40000",
//! "198.51.100.10:443").syn().vlan(7).build()` yields the exact frame bytes. Headers
//! are written by `etherparse`, with real checksums.

use std::net::{IpAddr, SocketAddr};

use etherparse::{
    icmpv4::DestUnreachableHeader, EtherType, Ethernet2Header, Icmpv4Header, Icmpv4Type,
    Icmpv6Header, Icmpv6Type, IpFragOffset, IpNumber, Ipv4Header, Ipv4Options, Ipv6FlowLabel,
    Ipv6Header, SingleVlanHeader, TcpHeader, UdpHeader, VlanId,
};

/// The client-side MAC in fixtures (the router in front of the LB).
pub const CLIENT_MAC: [u8; 6] = [0x02, 0xc1, 0x1e, 0x47, 0x00, 0x01];
/// The LB's own MAC in fixtures.
pub const LB_MAC: [u8; 6] = [0x02, 0x1b, 0x00, 0x00, 0x00, 0x01];

#[derive(Clone, Debug)]
enum L4 {
    Tcp {
        syn: bool,
        ack: bool,
        fin: bool,
        rst: bool,
    },
    Udp,
    /// An ICMP(v6) error quoting `quoted` (an IP packet the VIP sent).
    IcmpError {
        v4_type: Icmpv4Type,
        v6_type: Icmpv6Type,
        quoted: Vec<u8>,
    },
    /// Some other IP protocol with raw payload.
    Other(u8),
}

/// A frame under construction.
#[derive(Clone, Debug)]
pub struct Packet {
    src: SocketAddr,
    dst: SocketAddr,
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    vlan: Option<u16>,
    l4: L4,
    payload: Vec<u8>,
    ipv4_options: Vec<u8>,
    /// (offset in 8-byte units, more fragments)
    fragment: Option<(u16, bool)>,
}

fn sock(s: &str) -> SocketAddr {
    s.parse()
        .unwrap_or_else(|e| panic!("bad socket address {s:?}: {e}"))
}

fn ip(s: &str) -> IpAddr {
    s.parse()
        .unwrap_or_else(|e| panic!("bad address {s:?}: {e}"))
}

impl Packet {
    fn new(src: &str, dst: &str, l4: L4) -> Self {
        Packet {
            src: sock(src),
            dst: sock(dst),
            src_mac: CLIENT_MAC,
            dst_mac: LB_MAC,
            vlan: None,
            l4,
            payload: Vec::new(),
            ipv4_options: Vec::new(),
            fragment: None,
        }
    }

    /// A TCP segment (ACK set: mid-connection) from `src` to `dst` ("ip:port", "[v6]:port").
    pub fn tcp(src: &str, dst: &str) -> Self {
        Self::new(
            src,
            dst,
            L4::Tcp {
                syn: false,
                ack: true,
                fin: false,
                rst: false,
            },
        )
    }

    /// A UDP datagram.
    pub fn udp(src: &str, dst: &str) -> Self {
        Self::new(src, dst, L4::Udp)
    }

    /// An IP packet of another protocol (ports ignored).
    pub fn other(src: &str, dst: &str, proto: u8) -> Self {
        Self::new(
            &format!("{}:0", bracket(src)),
            &format!("{}:0", bracket(dst)),
            L4::Other(proto),
        )
    }

    /// An ICMP "fragmentation needed" (IPv4) / "packet too big" (IPv6) error sent by
    /// `router` to the source of `quoted`, quoting its IP header and 8 bytes.
    pub fn icmp_too_big(router: &str, quoted: &Packet, mtu: u16) -> Self {
        let ip_bytes = quoted.ip_packet();
        let hdr_len = match quoted.src.ip() {
            IpAddr::V4(_) => 20 + quoted.ipv4_options.len(),
            IpAddr::V6(_) => 40,
        };
        let quoted_bytes = ip_bytes[..(hdr_len + 8).min(ip_bytes.len())].to_vec();
        let to = format!("{}:0", bracket(&quoted.src.ip().to_string()));
        Self::new(
            &format!("{}:0", bracket(router)),
            &to,
            L4::IcmpError {
                v4_type: Icmpv4Type::DestinationUnreachable(
                    DestUnreachableHeader::FragmentationNeeded { next_hop_mtu: mtu },
                ),
                v6_type: Icmpv6Type::PacketTooBig { mtu: mtu as u32 },
                quoted: quoted_bytes,
            },
        )
    }

    /// Set SYN and clear ACK (a connection's first packet).
    pub fn syn(mut self) -> Self {
        if let L4::Tcp { syn, ack, .. } = &mut self.l4 {
            *syn = true;
            *ack = false;
        }
        self
    }

    /// Set SYN and ACK.
    pub fn syn_ack(mut self) -> Self {
        if let L4::Tcp { syn, ack, .. } = &mut self.l4 {
            *syn = true;
            *ack = true;
        }
        self
    }

    /// Set FIN.
    pub fn fin(mut self) -> Self {
        if let L4::Tcp { fin, .. } = &mut self.l4 {
            *fin = true;
        }
        self
    }

    /// One 802.1Q tag.
    pub fn vlan(mut self, id: u16) -> Self {
        self.vlan = Some(id);
        self
    }

    /// Payload bytes after the transport header.
    pub fn payload(mut self, bytes: &[u8]) -> Self {
        self.payload = bytes.to_vec();
        self
    }

    /// IPv4 options (padded to a multiple of 4 with end-of-list).
    pub fn ipv4_options(mut self, bytes: &[u8]) -> Self {
        let mut opts = bytes.to_vec();
        while !opts.len().is_multiple_of(4) {
            opts.push(0);
        }
        self.ipv4_options = opts;
        self
    }

    /// Make this an IPv4 fragment (offset in bytes, multiple of 8) or, for IPv6, add a
    /// fragment header. A non-first fragment carries only raw payload.
    pub fn fragment(mut self, offset_bytes: u16, more: bool) -> Self {
        self.fragment = Some((offset_bytes / 8, more));
        self
    }

    /// Frame MACs.
    pub fn macs(mut self, src: [u8; 6], dst: [u8; 6]) -> Self {
        self.src_mac = src;
        self.dst_mac = dst;
        self
    }

    /// The L4 bytes (header + payload).
    fn transport(&self) -> (u8, Vec<u8>) {
        let mut out = Vec::new();
        let (proto, body) = match &self.l4 {
            L4::Tcp { syn, ack, fin, rst } => {
                let mut h = TcpHeader::new(self.src.port(), self.dst.port(), 1000, 64240);
                h.syn = *syn;
                h.ack = *ack;
                h.fin = *fin;
                h.rst = *rst;
                if *ack {
                    h.acknowledgment_number = 2000;
                }
                h.checksum = match (self.src.ip(), self.dst.ip()) {
                    (IpAddr::V4(s), IpAddr::V4(d)) => {
                        h.calc_checksum_ipv4_raw(s.octets(), d.octets(), &self.payload)
                    }
                    (IpAddr::V6(s), IpAddr::V6(d)) => {
                        h.calc_checksum_ipv6_raw(s.octets(), d.octets(), &self.payload)
                    }
                    _ => panic!("mixed address families"),
                }
                .expect("tcp checksum");
                h.write(&mut out).expect("write tcp");
                (6, out)
            }
            L4::Udp => {
                let mut h = UdpHeader {
                    source_port: self.src.port(),
                    destination_port: self.dst.port(),
                    length: (8 + self.payload.len()) as u16,
                    checksum: 0,
                };
                h.checksum = match (self.src.ip(), self.dst.ip()) {
                    (IpAddr::V4(s), IpAddr::V4(d)) => {
                        h.calc_checksum_ipv4_raw(s.octets(), d.octets(), &self.payload)
                    }
                    (IpAddr::V6(s), IpAddr::V6(d)) => {
                        h.calc_checksum_ipv6_raw(s.octets(), d.octets(), &self.payload)
                    }
                    _ => panic!("mixed address families"),
                }
                .expect("udp checksum");
                h.write(&mut out).expect("write udp");
                (17, out)
            }
            L4::IcmpError {
                v4_type,
                v6_type,
                quoted,
            } => match (self.src.ip(), self.dst.ip()) {
                (IpAddr::V4(_), _) => {
                    Icmpv4Header::with_checksum(v4_type.clone(), quoted)
                        .write(&mut out)
                        .expect("icmp");
                    out.extend_from_slice(quoted);
                    (1, out)
                }
                (IpAddr::V6(s), IpAddr::V6(d)) => {
                    Icmpv6Header::with_checksum(*v6_type, s.octets(), d.octets(), quoted)
                        .expect("icmpv6")
                        .write(&mut out)
                        .expect("icmpv6");
                    out.extend_from_slice(quoted);
                    (58, out)
                }
                _ => panic!("mixed address families"),
            },
            L4::Other(p) => (*p, out),
        };
        let mut body = body;
        if !matches!(self.l4, L4::IcmpError { .. }) {
            body.extend_from_slice(&self.payload);
        }
        (proto, body)
    }

    /// The IP packet (no Ethernet header).
    pub fn ip_packet(&self) -> Vec<u8> {
        let (proto, mut l4) = self.transport();
        let mut out = Vec::new();
        match (self.src.ip(), self.dst.ip()) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                if let Some((off, _)) = self.fragment {
                    if off != 0 {
                        // A later fragment carries payload only.
                        l4 = self.payload.clone();
                    }
                }
                let mut h =
                    Ipv4Header::new(0, 64, IpNumber(proto), s.octets(), d.octets()).expect("ipv4");
                h.options = Ipv4Options::try_from(&self.ipv4_options[..]).expect("ipv4 options");
                h.set_payload_len(l4.len()).expect("payload length");
                h.identification = 0x1234;
                if let Some((off, more)) = self.fragment {
                    h.fragment_offset = IpFragOffset::try_new(off).expect("fragment offset");
                    h.more_fragments = more;
                } else {
                    h.dont_fragment = true;
                }
                h.write(&mut out).expect("write ipv4");
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                let mut next = proto;
                let mut ext = Vec::new();
                if let Some((off, more)) = self.fragment {
                    if off != 0 {
                        l4 = self.payload.clone();
                    }
                    let word = (off << 3) | more as u16;
                    ext.extend_from_slice(&[proto, 0]);
                    ext.extend_from_slice(&word.to_be_bytes());
                    ext.extend_from_slice(&0x1234_5678u32.to_be_bytes());
                    next = 44;
                }
                let h = Ipv6Header {
                    traffic_class: 0,
                    flow_label: Ipv6FlowLabel::ZERO,
                    payload_length: (ext.len() + l4.len()) as u16,
                    next_header: IpNumber(next),
                    hop_limit: 64,
                    source: s.octets(),
                    destination: d.octets(),
                };
                h.write(&mut out).expect("write ipv6");
                out.extend_from_slice(&ext);
            }
            _ => panic!("mixed address families"),
        }
        out.extend_from_slice(&l4);
        out
    }

    /// The whole frame.
    pub fn build(&self) -> Vec<u8> {
        let ether_type = match self.src.ip() {
            IpAddr::V4(_) => EtherType::IPV4,
            IpAddr::V6(_) => EtherType::IPV6,
        };
        let mut out = Vec::new();
        match self.vlan {
            Some(id) => {
                Ethernet2Header {
                    source: self.src_mac,
                    destination: self.dst_mac,
                    ether_type: EtherType::VLAN_TAGGED_FRAME,
                }
                .write(&mut out)
                .expect("eth");
                SingleVlanHeader {
                    pcp: Default::default(),
                    drop_eligible_indicator: false,
                    vlan_id: VlanId::try_new(id).expect("vlan id"),
                    ether_type,
                }
                .write(&mut out)
                .expect("vlan");
            }
            None => Ethernet2Header {
                source: self.src_mac,
                destination: self.dst_mac,
                ether_type,
            }
            .write(&mut out)
            .expect("eth"),
        }
        out.extend_from_slice(&self.ip_packet());
        out
    }
}

fn bracket(addr: &str) -> String {
    match ip(addr) {
        IpAddr::V6(_) => format!("[{addr}]"),
        IpAddr::V4(_) => addr.to_string(),
    }
}

/// The frame `frame` with its MACs replaced: what a DR forward must emit.
pub fn with_macs(frame: &[u8], dst: [u8; 6], src: [u8; 6]) -> Vec<u8> {
    let mut out = frame.to_vec();
    out[..6].copy_from_slice(&dst);
    out[6..12].copy_from_slice(&src);
    out
}

/// An Ethernet frame of another ethertype (ARP here).
pub fn arp_request() -> Vec<u8> {
    let mut out = Vec::new();
    Ethernet2Header {
        source: CLIENT_MAC,
        destination: [0xff; 6],
        ether_type: EtherType::ARP,
    }
    .write(&mut out)
    .expect("eth");
    out.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    out.extend_from_slice(&CLIENT_MAC);
    out.extend_from_slice(&[192, 0, 2, 1, 0, 0, 0, 0, 0, 0, 198, 51, 100, 10]);
    out
}

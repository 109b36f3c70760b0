//! Packet parsing: Ethernet (one 802.1Q/802.1ad tag), IPv4 (any IHL), IPv6 (fragment
//! header), TCP, UDP, and the quoted flow inside ICMP/ICMPv6 errors.
//!
//! Every access goes through [`ptr_at`], which checks bounds against `data_end` first,
//! so a truncated packet is reported as malformed instead of read past its end. Only
//! the fields the balancer needs are loaded, each with one natural-width load (as C XDP
//! programs do; the BPF verifier and the x86-64/arm64 JITs allow unaligned packet
//! access). Copying whole headers out with `read_unaligned` compiles to one load per
//! byte on the BPF target.
//!
//! What is malformed (passed to the kernel and counted, never forwarded): a header
//! cut short; an IPv4 header with a bad version, IHL, checksum (verified for VIP
//! traffic only, see [`checksum_ok`]), or a total length
//! below its header or beyond the frame; an IPv6 payload length beyond the frame; a
//! TCP data offset below 5 or beyond the IP packet; a UDP length below 8 or beyond the
//! IP packet; a first fragment that does not hold its whole transport header
//! (RFC 1858). Transport headers are checked for packets that may be for a VIP (the
//! VIP filter, see [`packet`]); the rest go to the kernel, which checks them itself.

use aya_ebpf::programs::XdpContext;
use lb_common::maps::{is_v4, outcome, proto, v4_words, ConnKey};
pub use lb_ebpf::access::{field, ptr_at};
use network_types::{eth::EthHdr, ip::Ipv6Hdr, tcp::TcpHdr, udp::UdpHdr};

const ETH_HLEN: usize = EthHdr::LEN;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;
const IPPROTO_ICMP: u8 = 1;
const IPPROTO_ICMPV6: u8 = 58;
const IPV6_FRAGMENT: u8 = 44;
const IPV6_HLEN: usize = Ipv6Hdr::LEN;
const TCP_HLEN: usize = TcpHdr::LEN;
const UDP_HLEN: usize = UdpHdr::LEN;
const TCP_SYN: u8 = 0x02;
const TCP_ACK: u8 = 0x10;
const TCP_FIN: u8 = 0x01;
const TCP_RST: u8 = 0x04;

/// What kind of packet this is, for service lookup and counting.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A whole TCP/UDP packet.
    Flow,
    /// An IP fragment: routed by addresses (the flow's ports are 0) so that every
    /// fragment of a datagram reaches one backend. The first fragment (offset 0)
    /// carries the datagram's destination port, which must be a service's: a later
    /// fragment alone cannot be reassembled into a datagram (the backend's kernel
    /// discards overlapping fragments), so no datagram reaches an unserved port.
    Fragment {
        /// The first fragment's destination port; `None` for a later fragment.
        first_dport: Option<u16>,
    },
    /// An ICMP error quoting a flow that the VIP sent; route like that flow's inbound half.
    IcmpError,
}

/// A parsed packet: the inbound flow it belongs to.
pub struct Parsed {
    /// Client -> VIP 5-tuple (ports 0 for fragments).
    pub flow: ConnKey,
    /// TCP SYN without ACK: a new connection.
    pub syn: bool,
    /// TCP FIN or RST: the connection is closing (its entry then counts as alive for
    /// the shorter `timeout_tcpfin`).
    pub fin: bool,
    /// See [`Kind`].
    pub kind: Kind,
    /// The frame carries an 802.1Q/802.1ad tag (it may only leave where it came in).
    pub tagged: bool,
    /// Where the IPv4 header whose checksum is still to be verified starts, and its
    /// length (0 for IPv6). Checked by [`checksum_ok`] only for VIP traffic: other
    /// packets go to the kernel, which checks it itself.
    pub v4_header: (usize, usize),
}

/// Whether the packet's IPv4 header checksum (if any) is correct.
#[inline(always)]
pub fn checksum_ok(ctx: &XdpContext, pkt: &Parsed) -> bool {
    let (l3, ihl) = pkt.v4_header;
    ihl == 0 || ipv4_checksum_ok(ctx, l3, ihl)
}

/// Bounds-check `N` bytes at `offset` and return their start. Fields inside are read
/// with [`field`] at constant offsets from this pointer, so the verifier sees each read
/// covered by this one check (re-deriving `data + offset` would lose the range).
#[inline(always)]
fn header<const N: usize>(ctx: &XdpContext, offset: usize) -> Result<*const u8, u32> {
    match ptr_at::<[u8; N]>(ctx, offset) {
        Some(p) => Ok(p as *const u8),
        None => Err(outcome::PASS_MALFORMED),
    }
}

/// Check that `len` bytes at `offset` are in the packet (no pointer kept).
#[inline(always)]
fn need(ctx: &XdpContext, offset: usize, len: usize) -> Result<(), u32> {
    if ctx.data() + offset + len > ctx.data_end() {
        return Err(outcome::PASS_MALFORMED);
    }
    Ok(())
}

#[inline(always)]
fn flow(src: [u32; 4], dst: [u32; 4], sport: u16, dport: u16, proto: u8) -> ConnKey {
    ConnKey {
        src,
        dst,
        sport,
        dport,
        proto,
        _pad: 0,
        _pad2: 0,
    }
}

/// Split a big-endian (source port, destination port) word as loaded from the packet.
#[inline(always)]
fn ports(word: u32) -> (u16, u16) {
    let b = word.to_ne_bytes();
    (
        u16::from_be_bytes([b[0], b[1]]),
        u16::from_be_bytes([b[2], b[3]]),
    )
}

/// Parse the packet in `ctx`. `Err` carries the pass reason (`outcome::PASS_*`).
/// `may_serve(destination, protocol)` is asked as soon as the IP header is read (for
/// an ICMP error, once the quoted flow is): a packet it rules out is passed as
/// `PASS_NOT_VIP` before its transport header is read, so traffic that is not for a
/// VIP costs little. (Its transport header is the kernel's to check.)
#[inline(always)]
pub fn packet(ctx: &XdpContext, may_serve: impl Fn(&[u32; 4], u8) -> bool) -> Result<Parsed, u32> {
    let eth = header::<ETH_HLEN>(ctx, 0)?;
    // SAFETY: offset 12 + 2 <= 14.
    let mut ether_type = u16::from_be(unsafe { field::<u16>(eth, 12) });
    let mut l3 = ETH_HLEN;
    let tagged = ether_type == ETH_P_8021Q || ether_type == ETH_P_8021AD;
    if tagged {
        let tag = header::<4>(ctx, ETH_HLEN)?;
        // SAFETY: offset 2 + 2 <= 4.
        ether_type = u16::from_be(unsafe { field::<u16>(tag, 2) });
        l3 += 4;
    }
    let mut parsed = match ether_type {
        ETH_P_IP => ipv4(ctx, l3, &may_serve)?,
        ETH_P_IPV6 => ipv6(ctx, l3, &may_serve)?,
        _ => return Err(outcome::PASS_NOT_IP),
    };
    parsed.tagged = tagged;
    Ok(parsed)
}

/// The frame's length in bytes.
#[inline(always)]
fn frame_len(ctx: &XdpContext) -> usize {
    ctx.data_end() - ctx.data()
}

/// Source and destination ports, and a TCP segment's flags (0 for UDP). `ip_end` is
/// where the IP packet ends (its own length, not the frame's: Ethernet pads short
/// frames); the transport header must fit before it. For a first fragment
/// (`fragment`), the UDP length is the whole datagram's, so it is not checked.
#[inline(always)]
fn transport(
    ctx: &XdpContext,
    l4: usize,
    proto: u8,
    ip_end: usize,
    fragment: bool,
) -> Result<(u16, u16, u8), u32> {
    if proto == proto::TCP {
        let tcp = header::<TCP_HLEN>(ctx, l4)?;
        // SAFETY: offsets 0..4, 12 and 13 are inside the 20-byte TCP header.
        let (word, doff, flags) = unsafe {
            (
                field::<u32>(tcp, 0),
                field::<u8>(tcp, 12) >> 4,
                field::<u8>(tcp, 13),
            )
        };
        if doff < 5 || l4 + (doff as usize) * 4 > ip_end {
            return Err(outcome::PASS_MALFORMED);
        }
        let (sport, dport) = ports(word);
        Ok((sport, dport, flags))
    } else if proto == proto::UDP {
        let udp = header::<UDP_HLEN>(ctx, l4)?;
        // SAFETY: offsets 0..6 are inside the 8-byte UDP header.
        let (word, len) = unsafe { (field::<u32>(udp, 0), field::<u16>(udp, 4)) };
        let len = u16::from_be(len) as usize;
        if l4 + UDP_HLEN > ip_end || (!fragment && (len < UDP_HLEN || l4 + len > ip_end)) {
            return Err(outcome::PASS_MALFORMED);
        }
        let (sport, dport) = ports(word);
        Ok((sport, dport, 0))
    } else {
        Err(outcome::PASS_NOT_VIP)
    }
}

/// The fields of an IPv4 header the balancer uses.
struct V4 {
    /// Header length in bytes (options included, all present in the packet).
    ihl: usize,
    proto: u8,
    /// Flags and fragment offset, host order.
    frag: u16,
    /// Total length, host order.
    total: usize,
    src: u32,
    dst: u32,
}

#[inline(always)]
fn ipv4_header(ctx: &XdpContext, l3: usize) -> Result<V4, u32> {
    let ip = header::<20>(ctx, l3)?;
    // SAFETY: every offset below is inside the 20-byte fixed header.
    let (vihl, total, frag, proto, src, dst) = unsafe {
        (
            field::<u8>(ip, 0),
            field::<u16>(ip, 2),
            field::<u16>(ip, 6),
            field::<u8>(ip, 9),
            field::<u32>(ip, 12),
            field::<u32>(ip, 16),
        )
    };
    if vihl >> 4 != 4 || vihl & 0x0f < 5 {
        return Err(outcome::PASS_MALFORMED);
    }
    let ihl = ((vihl & 0x0f) as usize) * 4;
    // The options, if any, must be in the packet too.
    need(ctx, l3, ihl)?;
    Ok(V4 {
        ihl,
        proto,
        frag: u16::from_be(frag),
        total: u16::from_be(total) as usize,
        src,
        dst,
    })
}

/// Whether the IPv4 header at `l3` (`ihl` bytes, all in the packet) sums to the
/// one's complement of zero, as a header with a correct checksum does.
#[inline(always)]
fn ipv4_checksum_ok(ctx: &XdpContext, l3: usize, ihl: usize) -> bool {
    let Some(ip) = ptr_at::<[u32; 5]>(ctx, l3) else {
        return false;
    };
    // SAFETY: the 20 bytes were checked. One's complement sums fold the same from
    // 32-bit words as from 16-bit ones, in either byte order.
    let mut sum: u64 = unsafe {
        let ip = ip as *const u8;
        field::<u32>(ip, 0) as u64
            + field::<u32>(ip, 4) as u64
            + field::<u32>(ip, 8) as u64
            + field::<u32>(ip, 12) as u64
            + field::<u32>(ip, 16) as u64
    };
    // Options: at most 40 bytes, one word each.
    let mut offset = 20;
    while offset < 60 {
        if offset >= ihl {
            break;
        }
        let Some(word) = ptr_at::<u32>(ctx, l3 + offset) else {
            return false;
        };
        // SAFETY: checked just above.
        sum += unsafe { *word } as u64;
        offset += 4;
    }
    sum = (sum & 0xffff_ffff) + (sum >> 32);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum == 0xffff
}

#[inline(always)]
fn ipv4(
    ctx: &XdpContext,
    l3: usize,
    may_serve: &impl Fn(&[u32; 4], u8) -> bool,
) -> Result<Parsed, u32> {
    let ip = ipv4_header(ctx, l3)?;
    let ip_end = l3 + ip.total;
    if ip.total < ip.ihl || ip_end > frame_len(ctx) {
        return Err(outcome::PASS_MALFORMED);
    }
    let src = v4_words(ip.src);
    let dst = v4_words(ip.dst);
    if ip.proto != IPPROTO_ICMP && !may_serve(&dst, ip.proto) {
        return Err(outcome::PASS_NOT_VIP);
    }
    let l4 = l3 + ip.ihl;
    // More-fragments flag or a fragment offset: route every fragment by addresses.
    if ip.frag & 0x3fff != 0 {
        if ip.proto != proto::TCP && ip.proto != proto::UDP {
            return Err(outcome::PASS_NOT_VIP);
        }
        let first_dport = if ip.frag & 0x1fff == 0 {
            Some(transport(ctx, l4, ip.proto, ip_end, true)?.1)
        } else {
            None
        };
        return Ok(Parsed {
            flow: flow(src, dst, 0, 0, ip.proto),
            syn: false,
            fin: false,
            kind: Kind::Fragment { first_dport },
            tagged: false,
            v4_header: (l3, ip.ihl),
        });
    }
    if ip.proto == IPPROTO_ICMP {
        let mut parsed = icmp4_error(ctx, l4, ip.dst)?;
        if !may_serve(&parsed.flow.dst, parsed.flow.proto) {
            return Err(outcome::PASS_NOT_VIP);
        }
        parsed.v4_header = (l3, ip.ihl);
        return Ok(parsed);
    }
    let (sport, dport, flags) = transport(ctx, l4, ip.proto, ip_end, false)?;
    Ok(Parsed {
        flow: flow(src, dst, sport, dport, ip.proto),
        syn: flags & (TCP_SYN | TCP_ACK) == TCP_SYN,
        fin: flags & (TCP_FIN | TCP_RST) != 0,
        kind: Kind::Flow,
        tagged: false,
        v4_header: (l3, ip.ihl),
    })
}

/// An ICMP destination-unreachable (incl. fragmentation needed), time-exceeded or
/// parameter-problem message quotes a packet the VIP sent (VIP -> client). The inbound
/// flow it belongs to is that packet reversed. Only an error addressed to the quoted
/// packet's source (the VIP) is routed.
#[inline(always)]
fn icmp4_error(ctx: &XdpContext, l4: usize, outer_dst: u32) -> Result<Parsed, u32> {
    let icmp = header::<8>(ctx, l4)?;
    // SAFETY: offset 0 is inside the 8-byte ICMP header.
    let icmp_type = unsafe { field::<u8>(icmp, 0) };
    if icmp_type != 3 && icmp_type != 11 && icmp_type != 12 {
        return Err(outcome::PASS_NOT_VIP);
    }
    let inner = l4 + 8;
    let ip = ipv4_header(ctx, inner)?;
    if ip.frag & 0x1fff != 0 || (ip.proto != proto::TCP && ip.proto != proto::UDP) {
        return Err(outcome::PASS_NOT_VIP);
    }
    if ip.src != outer_dst {
        return Err(outcome::PASS_NOT_VIP);
    }
    let quoted_ports = header::<4>(ctx, inner + ip.ihl)?;
    // SAFETY: the 4 bytes were checked.
    let (quoted_sport, quoted_dport) = ports(unsafe { field::<u32>(quoted_ports, 0) });
    Ok(Parsed {
        flow: flow(
            v4_words(ip.dst),
            v4_words(ip.src),
            quoted_dport,
            quoted_sport,
            ip.proto,
        ),
        syn: false,
        fin: false,
        kind: Kind::IcmpError,
        tagged: false,
        v4_header: (0, 0),
    })
}

#[inline(always)]
fn ipv6(
    ctx: &XdpContext,
    l3: usize,
    may_serve: &impl Fn(&[u32; 4], u8) -> bool,
) -> Result<Parsed, u32> {
    let ip = header::<IPV6_HLEN>(ctx, l3)?;
    // SAFETY: every offset below is inside the 40-byte header.
    let (version, payload, next, src, dst) = unsafe {
        (
            field::<u8>(ip, 0) >> 4,
            field::<u16>(ip, 4),
            field::<u8>(ip, 6),
            field::<[u32; 4]>(ip, 8),
            field::<[u32; 4]>(ip, 24),
        )
    };
    let ip_end = l3 + IPV6_HLEN + u16::from_be(payload) as usize;
    if version != 6 || ip_end > frame_len(ctx) {
        return Err(outcome::PASS_MALFORMED);
    }
    // An IPv4-mapped destination is no IPv6 VIP, and its flow key would equal an IPv4
    // flow's. (An ICMPv6 error's quoted source must equal this address, so this covers
    // it too.)
    if is_v4(&dst) {
        return Err(outcome::PASS_NOT_VIP);
    }
    let l4 = l3 + IPV6_HLEN;
    match next {
        IPV6_FRAGMENT => {
            let frag = header::<8>(ctx, l4)?;
            // SAFETY: offsets 0 and 2..4 are inside the 8-byte fragment header.
            let (inner, offset) = unsafe { (field::<u8>(frag, 0), field::<u16>(frag, 2)) };
            if (inner != proto::TCP && inner != proto::UDP) || !may_serve(&dst, inner) {
                return Err(outcome::PASS_NOT_VIP);
            }
            // Fragment offset (13 bits) then two reserved bits and the M flag.
            let first_dport = if u16::from_be(offset) >> 3 == 0 {
                Some(transport(ctx, l4 + 8, inner, ip_end, true)?.1)
            } else {
                None
            };
            Ok(Parsed {
                flow: flow(src, dst, 0, 0, inner),
                syn: false,
                fin: false,
                kind: Kind::Fragment { first_dport },
                tagged: false,
                v4_header: (0, 0),
            })
        }
        IPPROTO_ICMPV6 => {
            let parsed = icmp6_error(ctx, l4, &dst)?;
            if !may_serve(&parsed.flow.dst, parsed.flow.proto) {
                return Err(outcome::PASS_NOT_VIP);
            }
            Ok(parsed)
        }
        _ => {
            if !may_serve(&dst, next) {
                return Err(outcome::PASS_NOT_VIP);
            }
            let (sport, dport, flags) = transport(ctx, l4, next, ip_end, false)?;
            Ok(Parsed {
                flow: flow(src, dst, sport, dport, next),
                syn: flags & (TCP_SYN | TCP_ACK) == TCP_SYN,
                fin: flags & (TCP_FIN | TCP_RST) != 0,
                kind: Kind::Flow,
                tagged: false,
                v4_header: (0, 0),
            })
        }
    }
}

/// ICMPv6 destination-unreachable, packet-too-big, time-exceeded, parameter-problem,
/// addressed to the quoted packet's source (the VIP).
#[inline(always)]
fn icmp6_error(ctx: &XdpContext, l4: usize, outer_dst: &[u32; 4]) -> Result<Parsed, u32> {
    let icmp = header::<8>(ctx, l4)?;
    // SAFETY: offset 0 is inside the 8-byte ICMPv6 header.
    let icmp_type = unsafe { field::<u8>(icmp, 0) };
    if icmp_type == 0 || icmp_type > 4 {
        return Err(outcome::PASS_NOT_VIP);
    }
    // The quoted IPv6 header and the first 4 bytes of its transport header.
    let quoted = header::<{ IPV6_HLEN + 4 }>(ctx, l4 + 8)?;
    // SAFETY: every offset below is inside the 44 checked bytes.
    let (next, quoted_src, quoted_dst, quoted_ports) = unsafe {
        (
            field::<u8>(quoted, 6),
            field::<[u32; 4]>(quoted, 8),
            field::<[u32; 4]>(quoted, 24),
            field::<u32>(quoted, IPV6_HLEN),
        )
    };
    if next != proto::TCP && next != proto::UDP {
        return Err(outcome::PASS_NOT_VIP);
    }
    if quoted_src != *outer_dst {
        return Err(outcome::PASS_NOT_VIP);
    }
    let (quoted_sport, quoted_dport) = ports(quoted_ports);
    Ok(Parsed {
        flow: flow(quoted_dst, quoted_src, quoted_dport, quoted_sport, next),
        syn: false,
        fin: false,
        kind: Kind::IcmpError,
        tagged: false,
        v4_header: (0, 0),
    })
}

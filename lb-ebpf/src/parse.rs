//! Packet parsing: Ethernet (one 802.1Q/802.1ad tag), IPv4 (any IHL), IPv6 (fragment
//! header), TCP, UDP, and the quoted flow inside ICMP/ICMPv6 errors.
//!
//! Every access goes through [`ptr_at`], which checks bounds against `data_end` first,
//! so a truncated packet is reported as malformed instead of read past its end. Only
//! the fields the balancer needs are loaded, each with one natural-width load (as C XDP
//! programs do; the BPF verifier and the x86-64/arm64 JITs allow unaligned packet
//! access). Copying whole headers out with `read_unaligned` compiles to one load per
//! byte on the BPF target.

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

/// What kind of packet this is, for service lookup and counting.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A whole TCP/UDP packet.
    Flow,
    /// An IP fragment: ports unknown or not to be trusted; route by addresses.
    Fragment,
    /// An ICMP error quoting a flow that the VIP sent; route like that flow's inbound half.
    IcmpError,
}

/// A parsed packet: the inbound flow it belongs to.
pub struct Parsed {
    /// Client -> VIP 5-tuple (ports 0 for fragments).
    pub flow: ConnKey,
    /// TCP SYN without ACK: a new connection.
    pub syn: bool,
    /// See [`Kind`].
    pub kind: Kind,
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
#[inline(always)]
pub fn packet(ctx: &XdpContext) -> Result<Parsed, u32> {
    let eth = header::<ETH_HLEN>(ctx, 0)?;
    // SAFETY: offset 12 + 2 <= 14.
    let mut ether_type = u16::from_be(unsafe { field::<u16>(eth, 12) });
    let mut l3 = ETH_HLEN;
    if ether_type == ETH_P_8021Q || ether_type == ETH_P_8021AD {
        let tag = header::<4>(ctx, ETH_HLEN)?;
        // SAFETY: offset 2 + 2 <= 4.
        ether_type = u16::from_be(unsafe { field::<u16>(tag, 2) });
        l3 += 4;
    }
    match ether_type {
        ETH_P_IP => ipv4(ctx, l3),
        ETH_P_IPV6 => ipv6(ctx, l3),
        _ => Err(outcome::PASS_NOT_IP),
    }
}

/// Source and destination ports, and whether a TCP segment is a bare SYN.
#[inline(always)]
fn transport(ctx: &XdpContext, l4: usize, proto: u8) -> Result<(u16, u16, bool), u32> {
    if proto == proto::TCP {
        let tcp = header::<TCP_HLEN>(ctx, l4)?;
        // SAFETY: offsets 0..4 and 13 are inside the 20-byte TCP header.
        let (word, flags) = unsafe { (field::<u32>(tcp, 0), field::<u8>(tcp, 13)) };
        let (sport, dport) = ports(word);
        Ok((sport, dport, flags & (TCP_SYN | TCP_ACK) == TCP_SYN))
    } else if proto == proto::UDP {
        let udp = header::<UDP_HLEN>(ctx, l4)?;
        // SAFETY: offsets 0..4 are inside the 8-byte UDP header.
        let (sport, dport) = ports(unsafe { field::<u32>(udp, 0) });
        Ok((sport, dport, false))
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
    src: u32,
    dst: u32,
}

#[inline(always)]
fn ipv4_header(ctx: &XdpContext, l3: usize) -> Result<V4, u32> {
    let ip = header::<20>(ctx, l3)?;
    // SAFETY: every offset below is inside the 20-byte fixed header.
    let (vihl, frag, proto, src, dst) = unsafe {
        (
            field::<u8>(ip, 0),
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
        src,
        dst,
    })
}

#[inline(always)]
fn ipv4(ctx: &XdpContext, l3: usize) -> Result<Parsed, u32> {
    let ip = ipv4_header(ctx, l3)?;
    let src = v4_words(ip.src);
    let dst = v4_words(ip.dst);
    let l4 = l3 + ip.ihl;
    // More-fragments flag or a fragment offset: route every fragment by addresses.
    if ip.frag & 0x3fff != 0 {
        if ip.proto != proto::TCP && ip.proto != proto::UDP {
            return Err(outcome::PASS_NOT_VIP);
        }
        return Ok(Parsed {
            flow: flow(src, dst, 0, 0, ip.proto),
            syn: false,
            kind: Kind::Fragment,
        });
    }
    if ip.proto == IPPROTO_ICMP {
        return icmp4_error(ctx, l4, ip.dst);
    }
    let (sport, dport, syn) = transport(ctx, l4, ip.proto)?;
    Ok(Parsed {
        flow: flow(src, dst, sport, dport, ip.proto),
        syn,
        kind: Kind::Flow,
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
        kind: Kind::IcmpError,
    })
}

#[inline(always)]
fn ipv6(ctx: &XdpContext, l3: usize) -> Result<Parsed, u32> {
    let ip = header::<IPV6_HLEN>(ctx, l3)?;
    // SAFETY: every offset below is inside the 40-byte header.
    let (version, next, src, dst) = unsafe {
        (
            field::<u8>(ip, 0) >> 4,
            field::<u8>(ip, 6),
            field::<[u32; 4]>(ip, 8),
            field::<[u32; 4]>(ip, 24),
        )
    };
    if version != 6 {
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
            // SAFETY: offset 0 is inside the 8-byte fragment header.
            let inner = unsafe { field::<u8>(frag, 0) };
            if inner != proto::TCP && inner != proto::UDP {
                return Err(outcome::PASS_NOT_VIP);
            }
            Ok(Parsed {
                flow: flow(src, dst, 0, 0, inner),
                syn: false,
                kind: Kind::Fragment,
            })
        }
        IPPROTO_ICMPV6 => icmp6_error(ctx, l4, &dst),
        _ => {
            let (sport, dport, syn) = transport(ctx, l4, next)?;
            Ok(Parsed {
                flow: flow(src, dst, sport, dport, next),
                syn,
                kind: Kind::Flow,
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
        kind: Kind::IcmpError,
    })
}

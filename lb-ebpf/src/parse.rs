//! Packet parsing: Ethernet (one 802.1Q/802.1ad tag), IPv4 (any IHL), IPv6 (fragment
//! header), TCP, UDP, and the quoted flow inside ICMP/ICMPv6 errors. Every access goes
//! through [`ptr_at`], which checks bounds against `data_end` first, so a truncated
//! packet is reported as malformed instead of read past its end.

use aya_ebpf::programs::XdpContext;
use core::{mem, ptr};
use lb_common::maps::{outcome, proto, v4_words, ConnKey};
use network_types::{
    eth::EthHdr,
    ip::{Ipv4Hdr, Ipv6Hdr},
};

const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;
const IPPROTO_ICMP: u8 = 1;
const IPPROTO_ICMPV6: u8 = 58;
const IPV6_FRAGMENT: u8 = 44;
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

/// A pointer to a `T` at `offset`, if the packet holds all of it.
#[inline(always)]
pub fn ptr_at<T>(ctx: &XdpContext, offset: usize) -> Option<*mut T> {
    let start = ctx.data();
    let end = ctx.data_end();
    if start + offset + mem::size_of::<T>() > end {
        return None;
    }
    Some((start + offset) as *mut T)
}

#[inline(always)]
fn read<T: Copy>(ctx: &XdpContext, offset: usize) -> Result<T, u32> {
    match ptr_at::<T>(ctx, offset) {
        // SAFETY: bounds checked by ptr_at; read_unaligned makes no alignment claim.
        Some(p) => Ok(unsafe { ptr::read_unaligned(p) }),
        None => Err(outcome::PASS_MALFORMED),
    }
}

#[inline(always)]
fn flow(src: [u32; 4], dst: [u32; 4], sport: u16, dport: u16, proto: u8) -> ConnKey {
    ConnKey {
        src,
        dst,
        sport,
        dport,
        proto,
        _pad: [0; 3],
    }
}

/// Parse the packet in `ctx`. `Err` carries the pass reason (`outcome::PASS_*`).
#[inline(always)]
pub fn packet(ctx: &XdpContext) -> Result<Parsed, u32> {
    let eth: EthHdr = read(ctx, 0)?;
    let mut ether_type = u16::from_be(eth.ether_type);
    let mut l3 = EthHdr::LEN;
    if ether_type == ETH_P_8021Q || ether_type == ETH_P_8021AD {
        let tag: [u8; 4] = read(ctx, l3)?;
        ether_type = u16::from_be_bytes([tag[2], tag[3]]);
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
        let h: [u8; 20] = read(ctx, l4)?;
        let syn = h[13] & (TCP_SYN | TCP_ACK) == TCP_SYN;
        Ok((
            u16::from_be_bytes([h[0], h[1]]),
            u16::from_be_bytes([h[2], h[3]]),
            syn,
        ))
    } else if proto == proto::UDP {
        let h: [u8; 8] = read(ctx, l4)?;
        Ok((
            u16::from_be_bytes([h[0], h[1]]),
            u16::from_be_bytes([h[2], h[3]]),
            false,
        ))
    } else {
        Err(outcome::PASS_NOT_VIP)
    }
}

/// Header length of the IPv4 header at `l3`, after checking version and IHL.
#[inline(always)]
fn ipv4_header(ctx: &XdpContext, l3: usize) -> Result<(Ipv4Hdr, usize), u32> {
    let ip: Ipv4Hdr = read(ctx, l3)?;
    if ip.vihl >> 4 != 4 || ip.vihl & 0x0f < 5 {
        return Err(outcome::PASS_MALFORMED);
    }
    let ihl = ((ip.vihl & 0x0f) as usize) * 4;
    // The options, if any, must be in the packet too.
    let _: u8 = read(ctx, l3 + ihl - 1)?;
    Ok((ip, ihl))
}

#[inline(always)]
fn ipv4(ctx: &XdpContext, l3: usize) -> Result<Parsed, u32> {
    let (ip, ihl) = ipv4_header(ctx, l3)?;
    let src = v4_words(u32::from_ne_bytes(ip.src_addr));
    let dst = v4_words(u32::from_ne_bytes(ip.dst_addr));
    let l4 = l3 + ihl;
    // More-fragments flag or a fragment offset: route every fragment by addresses.
    if u16::from_be_bytes(ip.frags) & 0x3fff != 0 {
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
        return icmp4_error(ctx, l4, dst);
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
/// flow it belongs to is that packet reversed.
/// Only an error addressed to the quoted packet's source (the VIP) is routed.
#[inline(always)]
fn icmp4_error(ctx: &XdpContext, l4: usize, outer_dst: [u32; 4]) -> Result<Parsed, u32> {
    let icmp: [u8; 8] = read(ctx, l4)?;
    if icmp[0] != 3 && icmp[0] != 11 && icmp[0] != 12 {
        return Err(outcome::PASS_NOT_VIP);
    }
    let inner = l4 + 8;
    let (ip, ihl) = ipv4_header(ctx, inner)?;
    if u16::from_be_bytes(ip.frags) & 0x1fff != 0 {
        return Err(outcome::PASS_NOT_VIP);
    }
    let ports: [u8; 4] = read(ctx, inner + ihl)?;
    if ip.proto != proto::TCP && ip.proto != proto::UDP {
        return Err(outcome::PASS_NOT_VIP);
    }
    let quoted_src = v4_words(u32::from_ne_bytes(ip.src_addr));
    let quoted_dst = v4_words(u32::from_ne_bytes(ip.dst_addr));
    if quoted_src != outer_dst {
        return Err(outcome::PASS_NOT_VIP);
    }
    Ok(Parsed {
        flow: flow(
            quoted_dst,
            quoted_src,
            u16::from_be_bytes([ports[2], ports[3]]),
            u16::from_be_bytes([ports[0], ports[1]]),
            ip.proto,
        ),
        syn: false,
        kind: Kind::IcmpError,
    })
}

#[inline(always)]
fn words(bytes: [u8; 16]) -> [u32; 4] {
    [
        u32::from_ne_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]),
        u32::from_ne_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]),
        u32::from_ne_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]),
        u32::from_ne_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]),
    ]
}

#[inline(always)]
fn ipv6(ctx: &XdpContext, l3: usize) -> Result<Parsed, u32> {
    let ip: Ipv6Hdr = read(ctx, l3)?;
    if ip.vcf[0] >> 4 != 6 {
        return Err(outcome::PASS_MALFORMED);
    }
    let src = words(ip.src_addr);
    let dst = words(ip.dst_addr);
    let l4 = l3 + Ipv6Hdr::LEN;
    match ip.next_hdr {
        IPV6_FRAGMENT => {
            let frag: [u8; 8] = read(ctx, l4)?;
            if frag[0] != proto::TCP && frag[0] != proto::UDP {
                return Err(outcome::PASS_NOT_VIP);
            }
            Ok(Parsed {
                flow: flow(src, dst, 0, 0, frag[0]),
                syn: false,
                kind: Kind::Fragment,
            })
        }
        IPPROTO_ICMPV6 => icmp6_error(ctx, l4, dst),
        next => {
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
fn icmp6_error(ctx: &XdpContext, l4: usize, outer_dst: [u32; 4]) -> Result<Parsed, u32> {
    let icmp: [u8; 8] = read(ctx, l4)?;
    if icmp[0] == 0 || icmp[0] > 4 {
        return Err(outcome::PASS_NOT_VIP);
    }
    let inner = l4 + 8;
    let ip: Ipv6Hdr = read(ctx, inner)?;
    if ip.next_hdr != proto::TCP && ip.next_hdr != proto::UDP {
        return Err(outcome::PASS_NOT_VIP);
    }
    let ports: [u8; 4] = read(ctx, inner + Ipv6Hdr::LEN)?;
    let quoted_src = words(ip.src_addr);
    if quoted_src != outer_dst {
        return Err(outcome::PASS_NOT_VIP);
    }
    Ok(Parsed {
        flow: flow(
            words(ip.dst_addr),
            quoted_src,
            u16::from_be_bytes([ports[2], ports[3]]),
            u16::from_be_bytes([ports[0], ports[1]]),
            ip.next_hdr,
        ),
        syn: false,
        kind: Kind::IcmpError,
    })
}

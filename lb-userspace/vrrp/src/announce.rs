//! Gratuitous ARP and unsolicited neighbour advertisements for VIPs that just moved
//! here, so switches and neighbours update their tables at once. Byte for byte what
//! keepalived 2.2.7 sends:
//!
//! - IPv4: an Ethernet broadcast ARP request with sender IP = target IP = the VIP,
//!   sender MAC = the interface's MAC, target MAC ff:ff:ff:ff:ff:ff;
//! - IPv6: an ICMPv6 neighbour advertisement from the VIP to ff02::1 (Ethernet
//!   33:33:00:00:00:01), hop limit 255, Override flag set, target = the VIP, with a
//!   target link-layer address option carrying the interface's MAC.
//!
//! Frames are built with `pnet_packet` and sent on an `AF_PACKET` socket bound to the
//! interface (protocol 0: it sends only, never receives).
//!
//! # Network namespaces
//!
//! The interface is looked up, and the socket opened, in the calling thread's network
//! namespace.

use std::{
    io, mem,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    os::fd::AsRawFd,
};

use pnet_base::MacAddr;
use pnet_packet::{
    arp::{ArpHardwareTypes, ArpOperations, MutableArpPacket},
    ethernet::{EtherType, EtherTypes, MutableEthernetPacket},
    icmpv6::{
        self,
        ndp::{MutableNeighborAdvertPacket, NdpOption, NdpOptionTypes, NeighborAdvertFlags},
        Icmpv6Code, Icmpv6Packet, Icmpv6Types,
    },
    ip::IpNextHeaderProtocols,
    ipv6::MutableIpv6Packet,
};
use socket2::{Domain, Socket, Type};
use tracing::debug;

use super::io::{interface_info, IoError};

/// Ethernet header length.
const ETH_LEN: usize = 14;
/// ARP payload for IPv4 over Ethernet.
const ARP_LEN: usize = 28;
/// IPv6 header length.
const IPV6_LEN: usize = 40;
/// Neighbour advertisement without options.
const NA_LEN: usize = 24;
/// Target link-layer address option for Ethernet (one 8-byte unit).
const TLLA_LEN: usize = 8;
/// Ethernet broadcast.
const BROADCAST: [u8; 6] = [0xff; 6];
/// ff02::1 (all nodes).
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
/// The Ethernet multicast address of ff02::1 (RFC 2464).
const ALL_NODES_MAC: [u8; 6] = [0x33, 0x33, 0, 0, 0, 1];
/// Hop limit of neighbour discovery messages (RFC 4861).
const NDISC_HOP_LIMIT: u8 = 255;

/// Errors of [`announce`].
#[derive(Debug, thiserror::Error)]
pub enum AnnounceError {
    /// The interface could not be looked up.
    #[error(transparent)]
    Interface(#[from] IoError),
    /// The interface has no Ethernet address.
    #[error("interface {0} has no Ethernet MAC address")]
    NoMac(String),
    /// Opening or binding the packet socket failed.
    #[error("packet socket on {interface}: {op}: {source}")]
    Socket {
        /// The interface.
        interface: String,
        /// The step.
        op: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Sending a frame failed.
    #[error("announcing {ip} on {interface}: {source}")]
    Send {
        /// The interface.
        interface: String,
        /// The address being announced.
        ip: IpAddr,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// Send one gratuitous ARP (IPv4) or unsolicited neighbour advertisement (IPv6) per
/// address in `addresses` out of `interface`, in the calling thread's network
/// namespace. Returns the number of frames sent. Blocking, but only for as long as
/// the kernel takes to queue the frames.
pub fn announce(interface: &str, addresses: &[IpAddr]) -> Result<usize, AnnounceError> {
    if addresses.is_empty() {
        return Ok(0);
    }
    let info = interface_info(interface)?;
    let mac = info
        .mac
        .filter(|m| *m != [0; 6])
        .ok_or_else(|| AnnounceError::NoMac(interface.to_owned()))?;
    let sock_err = |op: &'static str| {
        let interface = interface.to_owned();
        move |source: io::Error| AnnounceError::Socket {
            interface,
            op,
            source,
        }
    };
    let socket = Socket::new(Domain::PACKET, Type::RAW, None)
        .map_err(sock_err("socket(AF_PACKET, SOCK_RAW, 0)"))?;
    let ifindex = libc::c_int::try_from(info.ifindex)
        .map_err(|_| sock_err("interface index")(io::Error::from(io::ErrorKind::InvalidInput)))?;
    let bind_addr = sockaddr_ll(ifindex, 0, [0; 6]);
    // SAFETY: a valid sockaddr_ll of the size passed.
    let rc = unsafe {
        libc::bind(
            socket.as_raw_fd(),
            (&bind_addr as *const libc::sockaddr_ll).cast(),
            socklen::<libc::sockaddr_ll>(),
        )
    };
    if rc < 0 {
        return Err(sock_err("bind to the interface")(io::Error::last_os_error()));
    }
    let mut sent = 0;
    for ip in addresses {
        let (frame, dst_mac, ethertype) = match ip {
            IpAddr::V4(v4) => (gratuitous_arp(mac, *v4), BROADCAST, EtherTypes::Arp),
            IpAddr::V6(v6) => (unsolicited_na(mac, *v6), ALL_NODES_MAC, EtherTypes::Ipv6),
        };
        let to = sockaddr_ll(ifindex, ethertype.0, dst_mac);
        // SAFETY: valid frame buffer and sockaddr_ll of the sizes passed.
        let rc = unsafe {
            libc::sendto(
                socket.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&to as *const libc::sockaddr_ll).cast(),
                socklen::<libc::sockaddr_ll>(),
            )
        };
        if rc < 0 {
            return Err(AnnounceError::Send {
                interface: interface.to_owned(),
                ip: *ip,
                source: io::Error::last_os_error(),
            });
        }
        sent += 1;
    }
    debug!(
        interface,
        frames = sent,
        "gratuitous ARP / unsolicited NA sent"
    );
    Ok(sent)
}

fn socklen<T>() -> libc::socklen_t {
    libc::socklen_t::try_from(mem::size_of::<T>()).unwrap_or(libc::socklen_t::MAX)
}

fn sockaddr_ll(ifindex: libc::c_int, ethertype: u16, dst: [u8; 6]) -> libc::sockaddr_ll {
    let mut addr = [0u8; 8];
    addr[..6].copy_from_slice(&dst);
    libc::sockaddr_ll {
        sll_family: libc::AF_PACKET as libc::c_ushort,
        sll_protocol: ethertype.to_be(),
        sll_ifindex: ifindex,
        sll_hatype: 0,
        sll_pkttype: 0,
        sll_halen: 6,
        sll_addr: addr,
    }
}

fn mac_addr(m: [u8; 6]) -> MacAddr {
    MacAddr(m[0], m[1], m[2], m[3], m[4], m[5])
}

/// Write the Ethernet header into the first 14 bytes of `frame`.
fn ethernet(frame: &mut [u8], dst: [u8; 6], src: [u8; 6], ethertype: EtherType) {
    if let Some(mut eth) = MutableEthernetPacket::new(frame) {
        eth.set_destination(mac_addr(dst));
        eth.set_source(mac_addr(src));
        eth.set_ethertype(ethertype);
    }
}

/// A gratuitous ARP request for `ip` from `mac`, as keepalived sends it.
pub fn gratuitous_arp(mac: [u8; 6], ip: Ipv4Addr) -> Vec<u8> {
    let mut frame = vec![0u8; ETH_LEN + ARP_LEN];
    ethernet(&mut frame, BROADCAST, mac, EtherTypes::Arp);
    if let Some(mut arp) = MutableArpPacket::new(&mut frame[ETH_LEN..]) {
        arp.set_hardware_type(ArpHardwareTypes::Ethernet);
        arp.set_protocol_type(EtherTypes::Ipv4);
        arp.set_hw_addr_len(6);
        arp.set_proto_addr_len(4);
        arp.set_operation(ArpOperations::Request);
        arp.set_sender_hw_addr(mac_addr(mac));
        arp.set_sender_proto_addr(ip);
        arp.set_target_hw_addr(mac_addr(BROADCAST));
        arp.set_target_proto_addr(ip);
    }
    frame
}

/// An unsolicited neighbour advertisement for `ip` from `mac`, as keepalived sends
/// it (source = the VIP, destination ff02::1, Override set).
pub fn unsolicited_na(mac: [u8; 6], ip: Ipv6Addr) -> Vec<u8> {
    let icmp_len = NA_LEN + TLLA_LEN;
    let mut frame = vec![0u8; ETH_LEN + IPV6_LEN + icmp_len];
    ethernet(&mut frame, ALL_NODES_MAC, mac, EtherTypes::Ipv6);
    if let Some(mut ip6) = MutableIpv6Packet::new(&mut frame[ETH_LEN..]) {
        ip6.set_version(6);
        ip6.set_payload_length(u16::try_from(icmp_len).unwrap_or(u16::MAX));
        ip6.set_next_header(IpNextHeaderProtocols::Icmpv6);
        ip6.set_hop_limit(NDISC_HOP_LIMIT);
        ip6.set_source(ip);
        ip6.set_destination(ALL_NODES);
    }
    let icmp = &mut frame[ETH_LEN + IPV6_LEN..];
    if let Some(mut na) = MutableNeighborAdvertPacket::new(icmp) {
        na.set_icmpv6_type(Icmpv6Types::NeighborAdvert);
        na.set_icmpv6_code(Icmpv6Code(0));
        na.set_flags(NeighborAdvertFlags::Override);
        na.set_target_addr(ip);
        na.set_options(&[NdpOption {
            option_type: NdpOptionTypes::TargetLLAddr,
            length: 1,
            data: mac.to_vec(),
        }]);
    }
    let sum = Icmpv6Packet::new(&frame[ETH_LEN + IPV6_LEN..])
        .map(|p| icmpv6::checksum(&p, &ip, &ALL_NODES));
    if let (Some(sum), Some(mut na)) = (
        sum,
        MutableNeighborAdvertPacket::new(&mut frame[ETH_LEN + IPV6_LEN..]),
    ) {
        na.set_checksum(sum);
    }
    frame
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0x02, 0, 0, 0, 0x0a, 0x01];

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    }

    #[test]
    fn garp_bytes() {
        let f = gratuitous_arp(MAC, Ipv4Addr::new(192, 0, 2, 51));
        assert_eq!(
            f,
            hex("ffffffffffff 02000000 0a01 0806
                 0001 0800 06 04 0001 020000000a01 c0000233 ffffffffffff c0000233")
        );
    }

    #[test]
    fn na_bytes_and_checksum() {
        let vip: Ipv6Addr = "2001:db8::53".parse().expect("ip");
        let f = unsolicited_na(MAC, vip);
        assert_eq!(f.len(), 14 + 40 + 32);
        assert_eq!(&f[..14], &hex("333300000001 020000000a01 86dd")[..]);
        // IPv6: version 6, payload 32, next header 58, hop limit 255, VIP -> ff02::1.
        assert_eq!(&f[14..22], &hex("60000000 0020 3a ff")[..]);
        assert_eq!(&f[22..38], &vip.octets());
        assert_eq!(&f[38..54], &ALL_NODES.octets());
        let icmp = &f[54..];
        assert_eq!(icmp[0], 136, "neighbour advertisement");
        assert_eq!(icmp[1], 0);
        assert_eq!(icmp[4], 0x20, "Override only");
        assert_eq!(&icmp[5..8], &[0, 0, 0]);
        assert_eq!(&icmp[8..24], &vip.octets());
        assert_eq!(&icmp[24..], &hex("0201 020000000a01")[..]);
        // One's-complement sum over pseudo-header + message, checksum included, is 0.
        let mut sum: u32 = 0;
        let mut add = |b: &[u8]| {
            for c in b.chunks(2) {
                sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
            }
        };
        add(&vip.octets());
        add(&ALL_NODES.octets());
        add(&[0, 0, 0, 32, 0, 0, 0, 58]);
        add(icmp);
        while sum >> 16 != 0 {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        assert_eq!(sum, 0xffff, "checksum verifies");
    }

    #[test]
    fn nothing_to_announce_sends_nothing() {
        assert_eq!(announce("no-such-if0", &[]).expect("no-op"), 0);
        assert!(matches!(
            announce("no-such-if0", &["192.0.2.1".parse().expect("ip")]),
            Err(AnnounceError::Interface(IoError::NoSuchInterface(_)))
        ));
    }
}

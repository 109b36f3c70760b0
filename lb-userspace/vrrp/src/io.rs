//! Raw VRRP sockets (IP protocol 112) on tokio, set up the way keepalived 2.2.7 sets
//! up its own, so what [`packet::encode`](super::packet::encode) builds reaches
//! keepalived (and keepalived's adverts reach [`packet::decode`](super::packet::decode))
//! unchanged.
//!
//! One [`VrrpSocket`] per instance: bound to the instance's interface
//! (`SO_BINDTODEVICE`), of the VIPs' family, TTL / hop limit 255.
//!
//! - Multicast (no unicast peers): joins 224.0.0.18 / ff02::12 on the interface,
//!   multicast loopback off (we never hear our own adverts).
//! - IPv4: the kernel writes the IP header, with TOS 0xc0 (internetwork control) and
//!   without DF, as keepalived's own header has; received packets come with their
//!   IP header, split by [`parse_ipv4_packet`].
//! - IPv6: traffic class 0xc0; the kernel hands over the VRRP message only, the
//!   destination and hop limit arrive as `IPV6_PKTINFO` / `IPV6_HOPLIMIT` ancillary
//!   data ([`Received::ipv6`]). The checksum is ours (no `IPV6_CHECKSUM`), so a bad
//!   one is counted by `decode` rather than silently dropped by the kernel.
//!
//! # Network namespaces
//!
//! A socket belongs to the network namespace of the thread that creates it, and
//! interface names and addresses are looked up there too: [`VrrpSocket::open`]
//! operates in the calling thread's namespace, and the socket stays in it for its
//! whole life, whichever thread later polls it.

use std::{
    ffi::CStr,
    io,
    mem::{self, MaybeUninit},
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6},
    os::fd::AsRawFd,
};

use socket2::{Domain, InterfaceIndexOrAddress, Protocol, SockAddr, Socket, Type};
use tokio::io::unix::AsyncFd;
use tracing::debug;

use super::packet::{
    parse_ipv4_packet, DropReason, Received, IPPROTO_VRRP, MCAST_V4, MCAST_V6, VRRP_TTL,
};

/// keepalived's IP TOS / IPv6 traffic class for adverts: `IPTOS_PREC_INTERNETCONTROL`.
const TOS_INTERNETWORK_CONTROL: u32 = 0xc0;
/// Receive buffer: larger than any VRRP packet (255 IPv6 addresses are 4088 bytes).
const RECV_BUFFER: usize = 8192;
/// Ancillary data buffer for `IPV6_PKTINFO` + `IPV6_HOPLIMIT` (with room to spare),
/// as `u64`s for the alignment `cmsghdr` needs.
const CONTROL_WORDS: usize = 32;

/// Errors of the VRRP socket.
#[derive(Debug, thiserror::Error)]
pub enum IoError {
    /// [`VrrpSocket::open`] was called outside a tokio runtime.
    #[error("a VRRP socket needs a tokio runtime (open it from within one)")]
    NoRuntime,
    /// No interface of that name in this network namespace.
    #[error("no such interface: {0}")]
    NoSuchInterface(String),
    /// The interface has no address to send from and none was configured.
    #[error("interface {interface} has no {what} to send VRRP from (configure a unicast source)")]
    NoSourceAddress {
        /// The interface.
        interface: String,
        /// What was looked for ("IPv4 address" or "IPv6 link-local address").
        what: &'static str,
    },
    /// The configured source address is not of the instance's family.
    #[error("source address {address} is not an {family} address")]
    SourceFamily {
        /// The configured source.
        address: IpAddr,
        /// The family the VIPs asked for ("IPv4" / "IPv6").
        family: &'static str,
    },
    /// Reading the interface's addresses (getifaddrs) failed.
    #[error("listing the addresses of {interface}: {source}")]
    Interfaces {
        /// The interface.
        interface: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A step of setting up the socket failed.
    #[error("VRRP socket on {interface}: {op}: {source}")]
    Setup {
        /// The interface.
        interface: String,
        /// The step (socket option or call).
        op: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A destination of the other address family than the socket's.
    #[error("destination {dst} is not of the socket's address family")]
    DestinationFamily {
        /// The destination.
        dst: IpAddr,
    },
    /// Sending failed.
    #[error("sending a VRRP advert to {dst}: {source}")]
    Send {
        /// The destination.
        dst: IpAddr,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The kernel took only part of the message.
    #[error("sent {sent} of {len} bytes to {dst}")]
    ShortSend {
        /// The destination.
        dst: IpAddr,
        /// Bytes sent.
        sent: usize,
        /// Message length.
        len: usize,
    },
    /// Receiving failed.
    #[error("receiving VRRP: {0}")]
    Recv(#[source] io::Error),
    /// An IPv6 packet arrived without the ancillary data the socket asked for.
    #[error("received IPv6 VRRP packet without {0} ancillary data")]
    MissingAncillary(&'static str),
}

/// A raw VRRP socket on one interface, in one address family, usable from tokio.
///
/// `send` and `recv` take `&self` and are cancel-safe (nothing is lost when a
/// `recv` future is dropped in a `select!`).
#[derive(Debug)]
pub struct VrrpSocket {
    fd: AsyncFd<Socket>,
    interface: String,
    ifindex: u32,
    source: IpAddr,
    multicast: bool,
}

impl VrrpSocket {
    /// Open a raw `IPPROTO_VRRP` socket bound to `interface` (`SO_BINDTODEVICE`) for
    /// IPv6 (`ipv6`, chosen by the VIPs' family) or IPv4, in the calling thread's
    /// network namespace. Must be called within a tokio runtime.
    ///
    /// - `multicast` (no unicast peers): join 224.0.0.18 / ff02::12 on the
    ///   interface, multicast TTL / hops 255, multicast loopback off.
    /// - Unicast: TTL / hops 255 as keepalived.
    /// - IPv4: TOS 0xc0 like keepalived. The source is `source` (keepalived
    ///   `unicast_src_ip` / `mcast_src_ip`) or else the interface's primary IPv4
    ///   address. Unicast sockets are bound to it (so they only hear packets
    ///   addressed to it); multicast sockets send from it via `IP_MULTICAST_IF` and
    ///   stay unbound (a raw socket bound to an address does not hear the group).
    /// - IPv6: the source is `source` or else the interface's link-local address; the
    ///   socket is bound to it. Hop limit and destination of received packets come
    ///   from `IPV6_RECVHOPLIMIT` / `IPV6_RECVPKTINFO`.
    pub fn open(
        interface: &str,
        ipv6: bool,
        source: Option<IpAddr>,
        multicast: bool,
    ) -> Result<VrrpSocket, IoError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(IoError::NoRuntime);
        }
        let info = interface_info(interface)?;
        let family = if ipv6 { "IPv6" } else { "IPv4" };
        let source = match source {
            Some(address) if address.is_ipv6() != ipv6 => {
                return Err(IoError::SourceFamily { address, family })
            }
            Some(address) => address,
            None if ipv6 => info
                .ipv6
                .iter()
                .find(|a| is_link_local(a))
                .map(|a| IpAddr::V6(*a))
                .ok_or_else(|| IoError::NoSourceAddress {
                    interface: interface.to_owned(),
                    what: "IPv6 link-local address",
                })?,
            None => info.ipv4.first().map(|a| IpAddr::V4(*a)).ok_or_else(|| {
                IoError::NoSourceAddress {
                    interface: interface.to_owned(),
                    what: "IPv4 address",
                }
            })?,
        };
        let setup = |op: &'static str| {
            let interface = interface.to_owned();
            move |source: io::Error| IoError::Setup {
                interface,
                op,
                source,
            }
        };
        let domain = if ipv6 { Domain::IPV6 } else { Domain::IPV4 };
        let socket = Socket::new(
            domain,
            Type::RAW,
            Some(Protocol::from(i32::from(IPPROTO_VRRP))),
        )
        .map_err(setup("socket(SOCK_RAW, IPPROTO_VRRP)"))?;
        socket
            .bind_device(Some(interface.as_bytes()))
            .map_err(setup("SO_BINDTODEVICE"))?;
        socket.set_nonblocking(true).map_err(setup("O_NONBLOCK"))?;
        let ttl = u32::from(VRRP_TTL);
        match source {
            IpAddr::V4(src) => {
                socket.set_ttl_v4(ttl).map_err(setup("IP_TTL"))?;
                socket
                    .set_multicast_ttl_v4(ttl)
                    .map_err(setup("IP_MULTICAST_TTL"))?;
                socket
                    .set_tos_v4(TOS_INTERNETWORK_CONTROL)
                    .map_err(setup("IP_TOS"))?;
                // keepalived's own IPv4 header has no DF.
                setsockopt(
                    &socket,
                    libc::IPPROTO_IP,
                    libc::IP_MTU_DISCOVER,
                    &libc::IP_PMTUDISC_DONT,
                )
                .map_err(setup("IP_MTU_DISCOVER"))?;
                socket
                    .set_multicast_loop_v4(false)
                    .map_err(setup("IP_MULTICAST_LOOP"))?;
                // Multicast source and interface, by index and address (ip_mreqn).
                let mreqn = libc::ip_mreqn {
                    imr_multiaddr: libc::in_addr { s_addr: 0 },
                    imr_address: in_addr(src),
                    imr_ifindex: libc::c_int::try_from(info.ifindex).unwrap_or(0),
                };
                setsockopt(&socket, libc::IPPROTO_IP, libc::IP_MULTICAST_IF, &mreqn)
                    .map_err(setup("IP_MULTICAST_IF"))?;
                if multicast {
                    socket
                        .join_multicast_v4_n(
                            &MCAST_V4,
                            &InterfaceIndexOrAddress::Index(info.ifindex),
                        )
                        .map_err(setup("IP_ADD_MEMBERSHIP 224.0.0.18"))?;
                } else {
                    socket
                        .bind(&SockAddr::from(SocketAddrV4::new(src, 0)))
                        .map_err(setup("bind to the unicast source"))?;
                }
            }
            IpAddr::V6(src) => {
                socket
                    .set_unicast_hops_v6(ttl)
                    .map_err(setup("IPV6_UNICAST_HOPS"))?;
                socket
                    .set_multicast_hops_v6(ttl)
                    .map_err(setup("IPV6_MULTICAST_HOPS"))?;
                socket
                    .set_tclass_v6(TOS_INTERNETWORK_CONTROL)
                    .map_err(setup("IPV6_TCLASS"))?;
                socket
                    .set_multicast_loop_v6(false)
                    .map_err(setup("IPV6_MULTICAST_LOOP"))?;
                socket
                    .set_multicast_if_v6(info.ifindex)
                    .map_err(setup("IPV6_MULTICAST_IF"))?;
                socket
                    .set_recv_hoplimit_v6(true)
                    .map_err(setup("IPV6_RECVHOPLIMIT"))?;
                setsockopt(
                    &socket,
                    libc::IPPROTO_IPV6,
                    libc::IPV6_RECVPKTINFO,
                    &1 as &libc::c_int,
                )
                .map_err(setup("IPV6_RECVPKTINFO"))?;
                let scope = if is_link_local(&src) { info.ifindex } else { 0 };
                socket
                    .bind(&SockAddr::from(SocketAddrV6::new(src, 0, 0, scope)))
                    .map_err(setup("bind to the source address"))?;
                if multicast {
                    socket
                        .join_multicast_v6(&MCAST_V6, info.ifindex)
                        .map_err(setup("IPV6_JOIN_GROUP ff02::12"))?;
                }
            }
        }
        // SAFETY: the Socket owns a valid fd that nothing else closes or replaces
        // while the AsyncFd owns it.
        let fd = unsafe { AsyncFd::register(socket) }
            .map_err(|e| setup("registering with tokio")(e.into_parts().1))?;
        debug!(interface, %source, multicast, "VRRP socket open");
        Ok(VrrpSocket {
            fd,
            interface: interface.to_owned(),
            ifindex: info.ifindex,
            source,
            multicast,
        })
    }

    /// The source address this socket sends from (needed for checksums and
    /// tie-breaks).
    pub fn source(&self) -> IpAddr {
        self.source
    }

    /// The interface the socket is bound to.
    pub fn interface(&self) -> &str {
        &self.interface
    }

    /// The interface's index.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// Whether the socket joined the VRRP multicast group.
    pub fn is_multicast(&self) -> bool {
        self.multicast
    }

    /// Send one VRRP message (the bytes from `packet::encode`, checksummed for
    /// [`VrrpSocket::source`] and `dst`) to `dst`: `MCAST_V4` / `MCAST_V6` or a
    /// unicast peer. The kernel adds the IP header.
    pub async fn send(&self, message: &[u8], dst: IpAddr) -> Result<(), IoError> {
        let addr = match (dst, self.source) {
            (IpAddr::V4(d), IpAddr::V4(_)) => SockAddr::from(SocketAddrV4::new(d, 0)),
            (IpAddr::V6(d), IpAddr::V6(_)) => {
                let scope = if is_link_local(&d) || d.is_multicast() {
                    self.ifindex
                } else {
                    0
                };
                SockAddr::from(SocketAddrV6::new(d, 0, 0, scope))
            }
            _ => return Err(IoError::DestinationFamily { dst }),
        };
        let fail = |source| IoError::Send { dst, source };
        loop {
            let mut guard = self.fd.writable().await.map_err(fail)?;
            match guard.try_io(|fd| fd.get_ref().send_to(message, &addr)) {
                Ok(Ok(sent)) if sent == message.len() => return Ok(()),
                Ok(Ok(sent)) => {
                    return Err(IoError::ShortSend {
                        dst,
                        sent,
                        len: message.len(),
                    })
                }
                Ok(Err(e)) => return Err(fail(e)),
                Err(_would_block) => continue,
            }
        }
    }

    /// Receive the next VRRP packet on the interface.
    ///
    /// IPv4: the raw packet (IP header included) split by [`parse_ipv4_packet`]; a
    /// malformed one is `Ok(Err(reason))`, to be counted. IPv6: the message with
    /// source, destination and hop limit from ancillary data ([`Received::ipv6`]).
    /// A packet larger than any VRRP packet is `Ok(Err(DropReason::BadLength))`.
    /// `Err` only for socket errors.
    pub async fn recv(&self) -> Result<Result<Received, DropReason>, IoError> {
        let mut buf = vec![0u8; RECV_BUFFER];
        loop {
            let mut guard = self.fd.readable().await.map_err(IoError::Recv)?;
            let got = guard.try_io(|fd| {
                if self.source.is_ipv4() {
                    recv_v4(fd.get_ref(), &mut buf)
                } else {
                    recv_v6(fd.get_ref(), &mut buf)
                }
            });
            match got {
                Ok(Ok(Raw::V4 { len, truncated })) => {
                    if truncated {
                        return Ok(Err(DropReason::BadLength));
                    }
                    return Ok(parse_ipv4_packet(&buf[..len]));
                }
                Ok(Ok(Raw::V6 {
                    len,
                    truncated,
                    src,
                    dst,
                    hop_limit,
                })) => {
                    if truncated {
                        return Ok(Err(DropReason::BadLength));
                    }
                    let dst = dst.ok_or(IoError::MissingAncillary("IPV6_PKTINFO"))?;
                    let hop_limit = hop_limit.ok_or(IoError::MissingAncillary("IPV6_HOPLIMIT"))?;
                    buf.truncate(len);
                    return Ok(Ok(Received::ipv6(src, dst, hop_limit, buf)));
                }
                Ok(Err(e)) => return Err(IoError::Recv(e)),
                Err(_would_block) => continue,
            }
        }
    }
}

/// One datagram as the kernel handed it over.
enum Raw {
    V4 {
        len: usize,
        truncated: bool,
    },
    V6 {
        len: usize,
        truncated: bool,
        src: Ipv6Addr,
        dst: Option<Ipv6Addr>,
        hop_limit: Option<u8>,
    },
}

fn recv_v4(socket: &Socket, buf: &mut [u8]) -> io::Result<Raw> {
    // SAFETY: `buf` is valid for writes of its length. MSG_TRUNC makes a raw socket
    // return the datagram's real length.
    let n = unsafe {
        libc::recv(
            socket.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_TRUNC,
        )
    };
    let n = usize::try_from(n).map_err(|_| io::Error::last_os_error())?;
    Ok(Raw::V4 {
        len: n.min(buf.len()),
        truncated: n > buf.len(),
    })
}

fn recv_v6(socket: &Socket, buf: &mut [u8]) -> io::Result<Raw> {
    let mut name = MaybeUninit::<libc::sockaddr_in6>::zeroed();
    let mut control = [0u64; CONTROL_WORDS];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: an all-zero msghdr is valid; the fields set below point to live
    // buffers of the given lengths, which outlive the recvmsg call.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_name = name.as_mut_ptr().cast();
    msg.msg_namelen = size_of_u32::<libc::sockaddr_in6>();
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = mem::size_of_val(&control);
    // SAFETY: `msg` describes valid buffers (see above).
    let n = unsafe { libc::recvmsg(socket.as_raw_fd(), &mut msg, 0) };
    let n = usize::try_from(n).map_err(|_| io::Error::last_os_error())?;
    // SAFETY: zero-initialised, then possibly written by the kernel: always a valid
    // sockaddr_in6 bit pattern.
    let name = unsafe { name.assume_init() };
    let src = Ipv6Addr::from(name.sin6_addr.s6_addr);
    let mut dst = None;
    let mut hop_limit = None;
    // SAFETY: CMSG_* walk the control buffer the kernel filled in, bounded by
    // msg_controllen; each payload is read unaligned with its documented type.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            let c = &*cmsg;
            let data = libc::CMSG_DATA(cmsg);
            if c.cmsg_level == libc::IPPROTO_IPV6 {
                if c.cmsg_type == libc::IPV6_PKTINFO {
                    let info = std::ptr::read_unaligned(data.cast::<libc::in6_pktinfo>());
                    dst = Some(Ipv6Addr::from(info.ipi6_addr.s6_addr));
                } else if c.cmsg_type == libc::IPV6_HOPLIMIT {
                    let hops = std::ptr::read_unaligned(data.cast::<libc::c_int>());
                    hop_limit = u8::try_from(hops).ok();
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Ok(Raw::V6 {
        len: n.min(buf.len()),
        truncated: msg.msg_flags & libc::MSG_TRUNC != 0,
        src,
        dst,
        hop_limit,
    })
}

fn size_of_u32<T>() -> libc::socklen_t {
    libc::socklen_t::try_from(mem::size_of::<T>()).unwrap_or(libc::socklen_t::MAX)
}

fn setsockopt<T>(
    socket: &Socket,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> io::Result<()> {
    // SAFETY: `value` points to a live T of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            size_of_u32::<T>(),
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn in_addr(a: Ipv4Addr) -> libc::in_addr {
    libc::in_addr {
        s_addr: u32::from_ne_bytes(a.octets()),
    }
}

/// fe80::/10.
pub(crate) fn is_link_local(a: &Ipv6Addr) -> bool {
    a.segments()[0] & 0xffc0 == 0xfe80
}

/// What the kernel knows of one interface, in the calling thread's namespace.
#[derive(Debug, Clone, Default)]
pub(crate) struct InterfaceInfo {
    /// Interface index.
    pub(crate) ifindex: u32,
    /// Its Ethernet address, if it has one.
    pub(crate) mac: Option<[u8; 6]>,
    /// IPv4 addresses labelled with the interface's name, primary first.
    pub(crate) ipv4: Vec<Ipv4Addr>,
    /// IPv6 addresses.
    pub(crate) ipv6: Vec<Ipv6Addr>,
}

/// Frees a getifaddrs(3) list.
struct IfAddrs(*mut libc::ifaddrs);

impl Drop for IfAddrs {
    fn drop(&mut self) {
        // SAFETY: the pointer came from a successful getifaddrs and is freed once.
        unsafe { libc::freeifaddrs(self.0) };
    }
}

/// Index, MAC and addresses of `name` (getifaddrs(3): netlink in the calling
/// thread's network namespace).
pub(crate) fn interface_info(name: &str) -> Result<InterfaceInfo, IoError> {
    let missing = || IoError::NoSuchInterface(name.to_owned());
    let cname = std::ffi::CString::new(name).map_err(|_| missing())?;
    // SAFETY: a valid NUL-terminated string.
    let ifindex = unsafe { libc::if_nametoindex(cname.as_ptr()) };
    if ifindex == 0 {
        return Err(missing());
    }
    let mut info = InterfaceInfo {
        ifindex,
        ..InterfaceInfo::default()
    };
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs writes a list head we free with IfAddrs.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(IoError::Interfaces {
            interface: name.to_owned(),
            source: io::Error::last_os_error(),
        });
    }
    let list = IfAddrs(head);
    let mut cur = list.0;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the live list; its name is a C string and its
        // address, when non-null, a sockaddr of the family it announces, read
        // unaligned as that family's type.
        unsafe {
            let ifa = &*cur;
            cur = ifa.ifa_next;
            if ifa.ifa_addr.is_null() || ifa.ifa_name.is_null() {
                continue;
            }
            if CStr::from_ptr(ifa.ifa_name).to_bytes() != name.as_bytes() {
                continue;
            }
            match i32::from((*ifa.ifa_addr).sa_family) {
                libc::AF_INET => {
                    let sa = std::ptr::read_unaligned(ifa.ifa_addr.cast::<libc::sockaddr_in>());
                    info.ipv4
                        .push(Ipv4Addr::from(sa.sin_addr.s_addr.to_ne_bytes()));
                }
                libc::AF_INET6 => {
                    let sa = std::ptr::read_unaligned(ifa.ifa_addr.cast::<libc::sockaddr_in6>());
                    info.ipv6.push(Ipv6Addr::from(sa.sin6_addr.s6_addr));
                }
                libc::AF_PACKET => {
                    let sa = std::ptr::read_unaligned(ifa.ifa_addr.cast::<libc::sockaddr_ll>());
                    if sa.sll_halen == 6 {
                        let mut mac = [0u8; 6];
                        mac.copy_from_slice(&sa.sll_addr[..6]);
                        info.mac = Some(mac);
                    }
                }
                _ => {}
            }
        }
    }
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_local_detection() {
        assert!(is_link_local(&"fe80::1".parse().expect("ip")));
        assert!(is_link_local(&"febf::1".parse().expect("ip")));
        assert!(!is_link_local(&"fec0::1".parse().expect("ip")));
        assert!(!is_link_local(&"2001:db8::1".parse().expect("ip")));
        assert!(!is_link_local(&MCAST_V6));
    }

    #[test]
    fn loopback_is_listed() {
        let lo = interface_info("lo").expect("lo exists");
        assert_eq!(lo.ifindex, 1);
        assert!(matches!(
            interface_info("no-such-if0"),
            Err(IoError::NoSuchInterface(_))
        ));
    }

    #[test]
    fn open_needs_a_runtime() {
        assert!(matches!(
            VrrpSocket::open("lo", false, None, true),
            Err(IoError::NoRuntime)
        ));
    }
}

//! Backend MAC resolution and neighbour-change following over rtnetlink.
//!
//! In direct-server-return mode the XDP program forwards a packet to a backend by
//! rewriting only the Ethernet header: the destination MAC becomes the backend's and
//! the IP packet (still addressed to the VIP) is left alone. That works only when the
//! backend is on a directly connected network, so resolving a backend means
//!
//! 1. asking the kernel for the route to the backend (`RTM_GETROUTE`) and refusing a
//!    route through a gateway ([`NeighError::NotDirectlyConnected`]),
//! 2. reading the kernel's neighbour (ARP / NDP) entry for it on the egress interface,
//! 3. if that entry has no usable MAC, making the kernel resolve it (a neighbour
//!    request with `NTF_USE`, which only sends ARP requests / neighbour solicitations:
//!    the backend has to answer nothing but ARP/ND) and polling until it does.
//!
//! [`watch_neighbors`] follows the kernel's neighbour table afterwards
//! (`RTNLGRP_NEIGH`), so a backend whose MAC changes, or whose entry goes away, is
//! noticed by the daemon.
//!
//! Everything goes through netlink (the `rtnetlink` crate); nothing shells out to `ip`.
//!
//! # Network namespaces
//!
//! A netlink socket belongs to the network namespace of the thread that opened it.
//! [`NetlinkHandle::new`] and [`watch_neighbors`] open their socket on the OS thread
//! that polls them, so they operate on that thread's namespace for their whole life,
//! whichever thread later polls their requests. To work inside a namespace, enter it
//! (`setns(CLONE_NEWNET)`) on a thread and create the handle there, e.g. from a
//! current-thread tokio runtime built after entering.

use std::{
    fmt,
    net::IpAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use futures_util::stream::{StreamExt, TryStreamExt};
pub use lb_api::fmt::format_mac;
use rtnetlink::{
    packet_core::{NetlinkMessage, NetlinkPayload, NLM_F_REQUEST},
    packet_route::{
        link::{LinkAttribute, LinkFlags, LinkMessage},
        neighbour::{
            NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
        },
        route::{RouteAddress, RouteAttribute, RouteMessage, RouteType, RouteVia},
        AddressFamily, RouteNetlinkMessage,
    },
    MulticastGroup,
};
use tokio::{sync::mpsc, task::JoinHandle};
use tracing::{debug, info, warn};

/// Capacity of the channel returned by [`watch_neighbors`].
const WATCH_CHANNEL_CAPACITY: usize = 1024;
/// First poll interval of [`NetlinkHandle::resolve`]; doubled up to [`POLL_MAX`].
const POLL_MIN: Duration = Duration::from_millis(10);
/// Longest poll interval of [`NetlinkHandle::resolve`].
const POLL_MAX: Duration = Duration::from_millis(200);
/// How often [`NetlinkHandle::resolve`] re-solicits an entry that stays failed.
const RESOLICIT_INTERVAL: Duration = Duration::from_secs(1);

/// Kernel neighbour states (`NUD_*` bits of `ndm_state`).
mod nud {
    pub const INCOMPLETE: u16 = 0x01;
    pub const REACHABLE: u16 = 0x02;
    pub const STALE: u16 = 0x04;
    pub const DELAY: u16 = 0x08;
    pub const PROBE: u16 = 0x10;
    pub const FAILED: u16 = 0x20;
    pub const NOARP: u16 = 0x40;
    pub const PERMANENT: u16 = 0x80;
}

/// Errors of neighbour resolution.
#[derive(Debug, thiserror::Error)]
pub enum NeighError {
    /// The netlink socket could not be opened.
    #[error("cannot open a netlink socket: {0}")]
    Socket(#[source] std::io::Error),
    /// A netlink request failed (kernel error reply or a malformed answer).
    #[error("netlink {op} failed: {source}")]
    Netlink {
        /// What was being asked (e.g. "RTM_GETROUTE 10.0.0.1").
        op: String,
        /// The underlying error.
        #[source]
        source: rtnetlink::Error,
    },
    /// The kernel answered a request with no message at all.
    #[error("netlink {op}: empty reply")]
    EmptyReply {
        /// What was being asked.
        op: String,
    },
    /// The route to the address goes through a gateway: DR needs L2 adjacency.
    #[error("{ip} is not directly connected (route via gateway {gateway}); DR mode needs backends on a directly connected network")]
    NotDirectlyConnected {
        /// The backend address.
        ip: IpAddr,
        /// The gateway the kernel would use.
        gateway: IpAddr,
    },
    /// The address is one of this host's own addresses.
    #[error("{ip} is a local address of this host, not a backend")]
    LocalAddress {
        /// The address.
        ip: IpAddr,
    },
    /// The kernel has no usable unicast route to the address.
    #[error("no route to {ip}: {reason}")]
    NoRoute {
        /// The address.
        ip: IpAddr,
        /// Why (kernel error or route type).
        reason: String,
    },
    /// No interface with this index or name.
    #[error("no such interface: {0}")]
    LinkNotFound(String),
    /// The interface has no Ethernet (6-byte) hardware address.
    #[error("interface {name} (index {ifindex}) has no Ethernet MAC address")]
    NotEthernet {
        /// Interface index.
        ifindex: u32,
        /// Interface name.
        name: String,
    },
    /// The neighbour did not get a usable MAC within the allowed time.
    #[error("{ip} on ifindex {ifindex} unresolved after {waited:?} (neighbour state {state})")]
    Unresolved {
        /// The address.
        ip: IpAddr,
        /// The egress interface.
        ifindex: u32,
        /// The last neighbour state seen.
        state: NeighState,
        /// How long resolution waited.
        waited: Duration,
    },
    /// A MAC address string could not be parsed.
    #[error("invalid MAC address {0:?} (expected aa:bb:cc:dd:ee:ff)")]
    InvalidMac(String),
}

/// The state of a kernel neighbour entry, from the `NUD_*` flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NeighState {
    /// Confirmed recently.
    Reachable,
    /// Valid but unconfirmed for a while; still used.
    Stale,
    /// Used while stale; confirmation pending.
    Delay,
    /// Being re-probed by unicast.
    Probe,
    /// Resolution in progress, no MAC yet.
    Incomplete,
    /// Resolution failed.
    Failed,
    /// Set by an administrator; never expires.
    Permanent,
    /// No resolution needed on this device.
    Noarp,
    /// No state (new entry, or deleted).
    None,
}

impl NeighState {
    /// Decode the kernel's `ndm_state` bits. Normally exactly one bit is set; if
    /// several are, the most authoritative wins (permanent, noarp, reachable, delay,
    /// probe, stale, incomplete, failed). Unknown bits alone give [`NeighState::None`].
    pub fn from_nud(bits: u16) -> Self {
        const ORDER: [(u16, NeighState); 8] = [
            (nud::PERMANENT, NeighState::Permanent),
            (nud::NOARP, NeighState::Noarp),
            (nud::REACHABLE, NeighState::Reachable),
            (nud::DELAY, NeighState::Delay),
            (nud::PROBE, NeighState::Probe),
            (nud::STALE, NeighState::Stale),
            (nud::INCOMPLETE, NeighState::Incomplete),
            (nud::FAILED, NeighState::Failed),
        ];
        ORDER
            .iter()
            .find(|(bit, _)| bits & bit != 0)
            .map_or(NeighState::None, |(_, state)| *state)
    }

    /// Whether the kernel considers the entry's MAC valid in this state.
    pub fn has_valid_mac(self) -> bool {
        matches!(
            self,
            NeighState::Reachable
                | NeighState::Stale
                | NeighState::Delay
                | NeighState::Probe
                | NeighState::Permanent
                | NeighState::Noarp
        )
    }
}

impl From<NeighbourState> for NeighState {
    fn from(s: NeighbourState) -> Self {
        NeighState::from_nud(u16::from(s))
    }
}

impl fmt::Display for NeighState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NeighState::Reachable => "reachable",
            NeighState::Stale => "stale",
            NeighState::Delay => "delay",
            NeighState::Probe => "probe",
            NeighState::Incomplete => "incomplete",
            NeighState::Failed => "failed",
            NeighState::Permanent => "permanent",
            NeighState::Noarp => "noarp",
            NeighState::None => "none",
        })
    }
}

/// A kernel neighbour (ARP / NDP) entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Neighbor {
    /// The neighbour's IP address.
    pub ip: IpAddr,
    /// Its MAC address, if the entry has one.
    pub mac: Option<[u8; 6]>,
    /// The interface the entry is on.
    pub ifindex: u32,
    /// The entry's state.
    pub state: NeighState,
}

/// The kernel's route to an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Route {
    /// The egress interface.
    pub ifindex: u32,
    /// The next-hop gateway, if any. [`NetlinkHandle::route_to`] returns an error
    /// instead of a route with a gateway, so this is `None` in its results.
    pub gateway: Option<IpAddr>,
}

/// A network interface.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Link {
    /// Interface index.
    pub ifindex: u32,
    /// Interface name.
    pub name: String,
    /// Its Ethernet MAC address.
    pub mac: [u8; 6],
    /// Administratively up (`IFF_UP`) and with carrier (`IFF_LOWER_UP`).
    pub up: bool,
}

/// Whether the neighbour has a MAC that DR forwarding can use: a state in which
/// the kernel trusts the MAC (reachable, stale, delay, probe, permanent, noarp) and
/// a MAC that is present and not all zeros.
pub fn usable(n: &Neighbor) -> bool {
    n.state.has_valid_mac() && n.mac.is_some_and(|m| m != [0; 6])
}

/// Parse a MAC address: six two-digit hex octets separated by `:` (or all by `-`),
/// either case.
pub fn parse_mac(s: &str) -> Result<[u8; 6], NeighError> {
    lb_api::fmt::parse_mac(s).ok_or_else(|| NeighError::InvalidMac(s.to_owned()))
}

/// Aborts a spawned task when the last owner goes away.
#[derive(Debug)]
pub(crate) struct AbortOnDrop(pub(crate) JoinHandle<()>);

/// Open an rtnetlink socket in the calling thread's network namespace and spawn its
/// connection task on the current tokio runtime. Shared by every netlink handle of
/// lbd (neighbours here, VIPs and links in `vrrp::addr`); the task stops when the
/// returned guard's last clone is dropped.
pub(crate) fn netlink_connection() -> std::io::Result<(rtnetlink::Handle, Arc<AbortOnDrop>)> {
    let (conn, handle, _unsolicited) = rtnetlink::new_connection()?;
    Ok((handle, Arc::new(AbortOnDrop(tokio::spawn(conn)))))
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A netlink (rtnetlink) connection for route, link and neighbour queries.
///
/// The socket lives in the network namespace of the thread that ran
/// [`NetlinkHandle::new`] (see the module docs). Cloning shares the connection; its
/// background task stops when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct NetlinkHandle {
    handle: rtnetlink::Handle,
    _conn: Arc<AbortOnDrop>,
}

impl NetlinkHandle {
    /// Open a netlink socket in the calling thread's network namespace and spawn its
    /// connection task on the current tokio runtime.
    pub async fn new() -> Result<Self, NeighError> {
        let (handle, conn) = netlink_connection().map_err(NeighError::Socket)?;
        Ok(NetlinkHandle {
            handle,
            _conn: conn,
        })
    }

    /// The kernel's route to `ip` (`RTM_GETROUTE` for the address, as `ip route get`).
    ///
    /// Errors with [`NeighError::NotDirectlyConnected`] when the route goes through a
    /// gateway, [`NeighError::LocalAddress`] for this host's own addresses and
    /// [`NeighError::NoRoute`] when there is no unicast route.
    pub async fn route_to(&self, ip: IpAddr) -> Result<Route, NeighError> {
        let op = format!("RTM_GETROUTE {ip}");
        let mut msg = RouteMessage::default();
        msg.header.address_family = family_of(ip);
        msg.header.destination_prefix_length = if ip.is_ipv4() { 32 } else { 128 };
        msg.attributes
            .push(RouteAttribute::Destination(RouteAddress::from(ip)));
        let mut replies = self.handle.route().get(msg).execute();
        let reply = match replies.try_next().await {
            Ok(Some(reply)) => reply,
            Ok(None) => return Err(NeighError::EmptyReply { op }),
            Err(rtnetlink::Error::NetlinkError(e))
                if matches!(-e.raw_code(), libc::ENETUNREACH | libc::EHOSTUNREACH) =>
            {
                return Err(NeighError::NoRoute {
                    ip,
                    reason: e.to_string(),
                });
            }
            Err(source) => return Err(NeighError::Netlink { op, source }),
        };
        route_from_reply(ip, &reply)
    }

    /// The interface with index `ifindex`.
    pub async fn link(&self, ifindex: u32) -> Result<Link, NeighError> {
        let req = self.handle.link().get().match_index(ifindex);
        self.get_link(req, format!("index {ifindex}")).await
    }

    /// The interface named `name`.
    pub async fn link_by_name(&self, name: &str) -> Result<Link, NeighError> {
        let req = self.handle.link().get().match_name(name);
        self.get_link(req, name.to_owned()).await
    }

    async fn get_link(
        &self,
        req: rtnetlink::LinkGetRequest,
        what: String,
    ) -> Result<Link, NeighError> {
        let mut replies = req.execute();
        match replies.try_next().await {
            Ok(Some(msg)) => link_from_msg(&msg),
            Ok(None) => Err(NeighError::LinkNotFound(what)),
            Err(rtnetlink::Error::NetlinkError(e)) if -e.raw_code() == libc::ENODEV => {
                Err(NeighError::LinkNotFound(what))
            }
            Err(source) => Err(NeighError::Netlink {
                op: format!("RTM_GETLINK {what}"),
                source,
            }),
        }
    }

    /// The kernel's neighbour entry for `ip` on interface `ifindex`, if any: one
    /// `RTM_GETNEIGH` for that entry (not a dump, so a lookup costs the same with
    /// 16,000 neighbours as with 3, and many may run at once on one socket).
    pub async fn neighbor(&self, ip: IpAddr, ifindex: u32) -> Result<Option<Neighbor>, NeighError> {
        let op = format!("RTM_GETNEIGH {ip}");
        let mut msg = NeighbourMessage::default();
        msg.header.family = family_of(ip);
        msg.header.ifindex = ifindex;
        msg.attributes
            .push(NeighbourAttribute::Destination(NeighbourAddress::from(ip)));
        let mut req = NetlinkMessage::from(RouteNetlinkMessage::GetNeighbour(msg));
        req.header.flags = NLM_F_REQUEST;
        let mut replies =
            self.handle
                .clone()
                .request(req)
                .map_err(|source| NeighError::Netlink {
                    op: op.clone(),
                    source,
                })?;
        let mut found = None;
        while let Some(reply) = replies.next().await {
            match reply.payload {
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewNeighbour(m)) => {
                    found = neighbor_from_msg(&m).filter(|n| n.ip == ip && n.ifindex == ifindex);
                }
                NetlinkPayload::Error(e) if -e.raw_code() == libc::ENOENT => return Ok(None),
                NetlinkPayload::Error(e) if e.code.is_some() => {
                    return Err(NeighError::Netlink {
                        op,
                        source: rtnetlink::Error::NetlinkError(e),
                    })
                }
                _ => {}
            }
        }
        Ok(found)
    }

    /// Make the kernel resolve `ip` on interface `ifindex`.
    ///
    /// Sends a neighbour request with `NTF_USE` (as `ip neigh replace IP dev IF use`),
    /// which creates the entry if needed and kicks the kernel's resolution state
    /// machine: only ARP requests / neighbour solicitations go out, so the backend
    /// has to answer nothing else. Returns without waiting for an answer.
    async fn solicit_on(&self, ip: IpAddr, ifindex: u32) -> Result<(), NeighError> {
        debug!(%ip, ifindex, "soliciting neighbour");
        self.handle
            .neighbours()
            .add(ifindex, ip)
            .state(NeighbourState::None)
            .flags(NeighbourFlags::Use)
            .replace()
            .execute()
            .await
            .map_err(|source| NeighError::Netlink {
                op: format!("RTM_NEWNEIGH {ip} use"),
                source,
            })
    }

    /// Resolve the MAC of backend `ip`.
    ///
    /// Looks up the route (an error if it goes through a gateway: DR needs L2
    /// adjacency), then the neighbour entry; if that has no [`usable`] MAC, solicits
    /// it and polls for up to `wait` (re-soliciting about once a second while the
    /// entry is failed or missing). Errors with [`NeighError::Unresolved`] on timeout.
    pub async fn resolve(&self, ip: IpAddr, wait: Duration) -> Result<Neighbor, NeighError> {
        let route = self.route_to(ip).await?;
        let ifindex = route.ifindex;
        let mut last = self.neighbor(ip, ifindex).await?;
        if let Some(n) = last.filter(usable) {
            debug!(%ip, ifindex, mac = %format_mac_opt(n.mac), state = %n.state, "neighbour already resolved");
            return Ok(n);
        }
        let start = Instant::now();
        let deadline = start + wait;
        self.solicit_on(ip, ifindex).await?;
        let mut last_solicit = Instant::now();
        let mut interval = POLL_MIN;
        loop {
            let now = Instant::now();
            if now >= deadline {
                let state = last.map_or(NeighState::None, |n| n.state);
                warn!(%ip, ifindex, %state, ?wait, "neighbour unresolved");
                return Err(NeighError::Unresolved {
                    ip,
                    ifindex,
                    state,
                    waited: now - start,
                });
            }
            tokio::time::sleep(interval.min(deadline - now)).await;
            interval = (interval * 2).min(POLL_MAX);
            last = self.neighbor(ip, ifindex).await?;
            if let Some(n) = last.filter(usable) {
                info!(%ip, ifindex, mac = %format_mac_opt(n.mac), state = %n.state, "neighbour resolved");
                return Ok(n);
            }
            let stuck =
                last.is_none_or(|n| matches!(n.state, NeighState::Failed | NeighState::None));
            if stuck && last_solicit.elapsed() >= RESOLICIT_INTERVAL {
                self.solicit_on(ip, ifindex).await?;
                last_solicit = Instant::now();
            }
        }
    }
}

/// Follow the kernel's neighbour table: every `RTM_NEWNEIGH` / `RTM_DELNEIGH` for an
/// IPv4 or IPv6 neighbour (proxy and bridge FDB entries excluded) arrives on the
/// returned channel. A deletion arrives with `mac: None` and state
/// [`NeighState::None`].
///
/// Opens its own netlink socket, subscribed to `RTNLGRP_NEIGH`, in the calling
/// thread's network namespace, and spawns a task on the current tokio runtime that
/// runs until the receiver is dropped.
pub async fn watch_neighbors() -> Result<mpsc::Receiver<Neighbor>, NeighError> {
    let (conn, handle, mut messages) =
        rtnetlink::new_multicast_connection(&[MulticastGroup::Neigh])
            .map_err(NeighError::Socket)?;
    let (tx, rx) = mpsc::channel(WATCH_CHANNEL_CAPACITY);
    tokio::spawn(async move {
        // Keep the (unused) request handle alive so the connection keeps running.
        let _keep = handle;
        let forward = async {
            while let Some((msg, _addr)) = messages.next().await {
                let Some(n) = neighbor_from_event(msg) else {
                    continue;
                };
                debug!(ip = %n.ip, ifindex = n.ifindex, mac = %format_mac_opt(n.mac), state = %n.state, "neighbour change");
                if tx.send(n).await.is_err() {
                    return;
                }
            }
            warn!("neighbour watch: netlink event stream ended");
        };
        tokio::select! {
            () = conn => warn!("neighbour watch: netlink connection closed"),
            () = forward => {}
            () = tx.closed() => debug!("neighbour watch: receiver dropped, stopping"),
        }
    });
    Ok(rx)
}

fn format_mac_opt(mac: Option<[u8; 6]>) -> String {
    mac.map_or_else(|| "-".to_owned(), |m| format_mac(&m))
}

fn family_of(ip: IpAddr) -> AddressFamily {
    match ip {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

/// Interpret an `RTM_NEWROUTE` answer to a route lookup for `ip`.
fn route_from_reply(ip: IpAddr, reply: &RouteMessage) -> Result<Route, NeighError> {
    match reply.header.kind {
        RouteType::Unicast => {}
        RouteType::Local => return Err(NeighError::LocalAddress { ip }),
        other => {
            return Err(NeighError::NoRoute {
                ip,
                reason: format!("route type {other:?}"),
            })
        }
    }
    let mut ifindex = None;
    let mut gateway = None;
    for attr in &reply.attributes {
        match attr {
            RouteAttribute::Oif(i) => ifindex = Some(*i),
            RouteAttribute::Gateway(RouteAddress::Inet(a)) => gateway = Some(IpAddr::V4(*a)),
            RouteAttribute::Gateway(RouteAddress::Inet6(a)) => gateway = Some(IpAddr::V6(*a)),
            RouteAttribute::Via(RouteVia::Inet(a)) => gateway = Some(IpAddr::V4(*a)),
            RouteAttribute::Via(RouteVia::Inet6(a)) => gateway = Some(IpAddr::V6(*a)),
            _ => {}
        }
    }
    // A route "via" the address itself is still a direct neighbour.
    if let Some(gw) = gateway.filter(|gw| *gw != ip) {
        return Err(NeighError::NotDirectlyConnected { ip, gateway: gw });
    }
    let ifindex = ifindex.ok_or_else(|| NeighError::NoRoute {
        ip,
        reason: "route has no output interface".to_owned(),
    })?;
    Ok(Route {
        ifindex,
        gateway: None,
    })
}

fn link_from_msg(msg: &LinkMessage) -> Result<Link, NeighError> {
    let ifindex = msg.header.index;
    let mut name = String::new();
    let mut mac = None;
    for attr in &msg.attributes {
        match attr {
            LinkAttribute::IfName(n) => name.clone_from(n),
            LinkAttribute::Address(a) => mac = <[u8; 6]>::try_from(a.as_slice()).ok(),
            _ => {}
        }
    }
    let flags = msg.header.flags;
    let up = flags.contains(LinkFlags::Up) && flags.contains(LinkFlags::LowerUp);
    let mac = mac.ok_or_else(|| NeighError::NotEthernet {
        ifindex,
        name: name.clone(),
    })?;
    Ok(Link {
        ifindex,
        name,
        mac,
        up,
    })
}

/// Convert a kernel neighbour message; `None` for entries that are not IPv4/IPv6
/// neighbours (bridge FDB, proxy entries) or lack a destination.
fn neighbor_from_msg(msg: &NeighbourMessage) -> Option<Neighbor> {
    if !matches!(
        msg.header.family,
        AddressFamily::Inet | AddressFamily::Inet6
    ) || msg.header.flags.contains(NeighbourFlags::Proxy)
    {
        return None;
    }
    let mut ip = None;
    let mut mac = None;
    for attr in &msg.attributes {
        match attr {
            NeighbourAttribute::Destination(NeighbourAddress::Inet(a)) => ip = Some(IpAddr::V4(*a)),
            NeighbourAttribute::Destination(NeighbourAddress::Inet6(a)) => {
                ip = Some(IpAddr::V6(*a))
            }
            NeighbourAttribute::LinkLayerAddress(l) => mac = <[u8; 6]>::try_from(l.as_slice()).ok(),
            _ => {}
        }
    }
    Some(Neighbor {
        ip: ip?,
        mac,
        ifindex: msg.header.ifindex,
        state: msg.header.state.into(),
    })
}

/// Convert a multicast neighbour event: new entries as they are, deletions with no
/// MAC and state `None`.
fn neighbor_from_event(msg: NetlinkMessage<RouteNetlinkMessage>) -> Option<Neighbor> {
    match msg.payload {
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewNeighbour(m)) => neighbor_from_msg(&m),
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelNeighbour(m)) => neighbor_from_msg(&m)
            .map(|n| Neighbor {
                mac: None,
                state: NeighState::None,
                ..n
            }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn n(state: NeighState, mac: Option<[u8; 6]>) -> Neighbor {
        Neighbor {
            ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            mac,
            ifindex: 2,
            state,
        }
    }

    #[test]
    fn nud_single_bits() {
        assert_eq!(NeighState::from_nud(0x01), NeighState::Incomplete);
        assert_eq!(NeighState::from_nud(0x02), NeighState::Reachable);
        assert_eq!(NeighState::from_nud(0x04), NeighState::Stale);
        assert_eq!(NeighState::from_nud(0x08), NeighState::Delay);
        assert_eq!(NeighState::from_nud(0x10), NeighState::Probe);
        assert_eq!(NeighState::from_nud(0x20), NeighState::Failed);
        assert_eq!(NeighState::from_nud(0x40), NeighState::Noarp);
        assert_eq!(NeighState::from_nud(0x80), NeighState::Permanent);
        assert_eq!(NeighState::from_nud(0x00), NeighState::None);
        assert_eq!(NeighState::from_nud(0x100), NeighState::None);
    }

    #[test]
    fn nud_combined_bits_pick_strongest() {
        assert_eq!(NeighState::from_nud(0x80 | 0x40), NeighState::Permanent);
        assert_eq!(NeighState::from_nud(0x04 | 0x20), NeighState::Stale);
        assert_eq!(NeighState::from_nud(0x01 | 0x20), NeighState::Incomplete);
    }

    #[test]
    fn from_rtnetlink_state() {
        assert_eq!(
            NeighState::from(NeighbourState::Reachable),
            NeighState::Reachable
        );
        assert_eq!(
            NeighState::from(NeighbourState::Permanent),
            NeighState::Permanent
        );
        assert_eq!(
            NeighState::from(NeighbourState::Other(0xc0)),
            NeighState::Permanent
        );
        assert_eq!(NeighState::from(NeighbourState::None), NeighState::None);
    }

    #[test]
    fn usable_states() {
        let mac = Some([2, 0, 0, 0, 0, 1]);
        for s in [
            NeighState::Reachable,
            NeighState::Stale,
            NeighState::Delay,
            NeighState::Probe,
            NeighState::Permanent,
            NeighState::Noarp,
        ] {
            assert!(usable(&n(s, mac)), "{s}");
            assert!(!usable(&n(s, None)), "{s} without mac");
            assert!(!usable(&n(s, Some([0; 6]))), "{s} with zero mac");
        }
        for s in [NeighState::Incomplete, NeighState::Failed, NeighState::None] {
            assert!(!usable(&n(s, mac)), "{s}");
        }
    }

    #[test]
    fn mac_format_and_parse() {
        let mac = [0xaa, 0xbb, 0x0c, 0x0d, 0xee, 0xff];
        assert_eq!(format_mac(&mac), "aa:bb:0c:0d:ee:ff");
        assert_eq!(parse_mac("aa:bb:0c:0d:ee:ff").unwrap(), mac);
        assert_eq!(parse_mac("AA:BB:0C:0D:EE:FF").unwrap(), mac);
        assert_eq!(parse_mac("aa-bb-0c-0d-ee-ff").unwrap(), mac);
        assert_eq!(parse_mac(&format_mac(&mac)).unwrap(), mac);
        for bad in [
            "",
            "aa:bb:cc:dd:ee",
            "aa:bb:cc:dd:ee:ff:00",
            "a:bb:cc:dd:ee:ff",
            "aaa:bb:cc:dd:ee:f",
            "gg:bb:cc:dd:ee:ff",
            "aa:bb-cc:dd:ee:ff",
            "aa:bb:cc:dd:ee:+f",
            "aa:bb:cc:dd:ee:ff:",
        ] {
            assert!(
                matches!(parse_mac(bad), Err(NeighError::InvalidMac(_))),
                "{bad:?}"
            );
        }
    }

    fn neigh_msg(family: AddressFamily, state: NeighbourState) -> NeighbourMessage {
        let mut m = NeighbourMessage::default();
        m.header.family = family;
        m.header.ifindex = 7;
        m.header.state = state;
        m.attributes
            .push(NeighbourAttribute::Destination(NeighbourAddress::Inet(
                Ipv4Addr::new(10, 1, 2, 3),
            )));
        m.attributes
            .push(NeighbourAttribute::LinkLayerAddress(vec![2, 0, 0, 0, 0, 9]));
        m
    }

    #[test]
    fn neighbour_messages() {
        let m = neigh_msg(AddressFamily::Inet, NeighbourState::Reachable);
        let got = neighbor_from_msg(&m).unwrap();
        assert_eq!(
            got,
            Neighbor {
                ip: IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)),
                mac: Some([2, 0, 0, 0, 0, 9]),
                ifindex: 7,
                state: NeighState::Reachable,
            }
        );
        assert!(
            neighbor_from_msg(&neigh_msg(AddressFamily::Bridge, NeighbourState::Reachable))
                .is_none()
        );
        let mut proxy = neigh_msg(AddressFamily::Inet, NeighbourState::Permanent);
        proxy.header.flags = NeighbourFlags::Proxy;
        assert!(neighbor_from_msg(&proxy).is_none());

        let del = NetlinkMessage::from(RouteNetlinkMessage::DelNeighbour(neigh_msg(
            AddressFamily::Inet,
            NeighbourState::Stale,
        )));
        let got = neighbor_from_event(del).unwrap();
        assert_eq!(got.mac, None);
        assert_eq!(got.state, NeighState::None);
        assert_eq!(got.ifindex, 7);
    }

    fn route_msg(kind: RouteType, attrs: Vec<RouteAttribute>) -> RouteMessage {
        let mut m = RouteMessage::default();
        m.header.kind = kind;
        m.attributes = attrs;
        m
    }

    #[test]
    fn route_replies() {
        let ip = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 5));
        let direct = route_msg(RouteType::Unicast, vec![RouteAttribute::Oif(3)]);
        assert_eq!(
            route_from_reply(ip, &direct).unwrap(),
            Route {
                ifindex: 3,
                gateway: None
            }
        );
        let gw = Ipv4Addr::new(10, 0, 0, 1);
        let via = route_msg(
            RouteType::Unicast,
            vec![
                RouteAttribute::Oif(3),
                RouteAttribute::Gateway(RouteAddress::Inet(gw)),
            ],
        );
        assert!(matches!(
            route_from_reply(ip, &via),
            Err(NeighError::NotDirectlyConnected { gateway, .. }) if gateway == IpAddr::V4(gw)
        ));
        let ip6 = IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 5));
        let via6 = route_msg(
            RouteType::Unicast,
            vec![
                RouteAttribute::Oif(3),
                RouteAttribute::Gateway(RouteAddress::Inet6(Ipv6Addr::new(
                    0xfe80, 0, 0, 0, 0, 0, 0, 1,
                ))),
            ],
        );
        assert!(matches!(
            route_from_reply(ip6, &via6),
            Err(NeighError::NotDirectlyConnected { .. })
        ));
        let local = route_msg(RouteType::Local, vec![RouteAttribute::Oif(1)]);
        assert!(matches!(
            route_from_reply(ip, &local),
            Err(NeighError::LocalAddress { .. })
        ));
        let unreachable = route_msg(RouteType::Unreachable, vec![]);
        assert!(matches!(
            route_from_reply(ip, &unreachable),
            Err(NeighError::NoRoute { .. })
        ));
    }

    #[test]
    fn link_messages() {
        let mut m = LinkMessage::default();
        m.header.index = 4;
        m.header.flags = LinkFlags::Up | LinkFlags::LowerUp;
        m.attributes.push(LinkAttribute::IfName("eth9".into()));
        m.attributes
            .push(LinkAttribute::Address(vec![2, 1, 2, 3, 4, 5]));
        let l = link_from_msg(&m).unwrap();
        assert_eq!(
            l,
            Link {
                ifindex: 4,
                name: "eth9".into(),
                mac: [2, 1, 2, 3, 4, 5],
                up: true
            }
        );
        m.header.flags = LinkFlags::Up;
        assert!(!link_from_msg(&m).unwrap().up);
        m.attributes
            .retain(|a| !matches!(a, LinkAttribute::Address(_)));
        assert!(matches!(
            link_from_msg(&m),
            Err(NeighError::NotEthernet { .. })
        ));
    }
}

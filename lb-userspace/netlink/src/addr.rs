//! Virtual addresses and link state over rtnetlink, for VRRP: adding and removing
//! VIPs like `ip addr add|del VIP/len dev IF` ([`AddrHandle`]), reading whether a
//! link is up, and following link changes for FAULT ([`watch_links`]).
//!
//! IPv6 VIPs are added with `IFA_F_NODAD` as keepalived does, so they are usable (and
//! can source the unsolicited neighbour advertisement) at once.
//!
//! # Network namespaces
//!
//! A netlink socket belongs to the network namespace of the thread that opens it:
//! [`AddrHandle::new`] and [`watch_links`] operate in the calling thread's namespace
//! for their whole life, whichever thread later polls their requests (see also
//! `crate::neigh`).

use std::{collections::HashMap, net::IpAddr, sync::Arc};

use futures_util::stream::{StreamExt, TryStreamExt};
use rtnetlink::{
    packet_core::{NetlinkMessage, NetlinkPayload},
    packet_route::{
        address::{AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage},
        link::{LinkAttribute, LinkFlags, LinkMessage},
        AddressFamily, RouteNetlinkMessage,
    },
    MulticastGroup,
};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

/// Capacity of the channel returned by [`watch_links`].
const WATCH_CHANNEL_CAPACITY: usize = 256;

/// Errors of address and link management.
#[derive(Debug, thiserror::Error)]
pub enum AddrError {
    /// The netlink socket could not be opened.
    #[error("cannot open a netlink socket: {0}")]
    Socket(#[source] std::io::Error),
    /// A netlink request failed.
    #[error("netlink {op} failed: {source}")]
    Netlink {
        /// What was being done (e.g. "RTM_NEWADDR 192.0.2.1/32 dev eth0").
        op: String,
        /// The underlying error.
        #[source]
        source: rtnetlink::Error,
    },
    /// No interface of that name in this network namespace.
    #[error("no such interface: {0}")]
    NoSuchInterface(String),
    /// A prefix length longer than the address.
    #[error("prefix length /{prefix} is too long for {ip}")]
    BadPrefix {
        /// The address.
        ip: IpAddr,
        /// The prefix length.
        prefix: u8,
    },
}

/// A netlink connection for VIPs and link state, in the network namespace of the
/// thread that created it. Cloning shares the connection; its background task stops
/// when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct AddrHandle {
    handle: rtnetlink::Handle,
    _conn: Arc<crate::neigh::AbortOnDrop>,
}

impl AddrHandle {
    /// Open a netlink socket in the calling thread's network namespace and spawn its
    /// connection task on the current tokio runtime.
    pub async fn new() -> Result<Self, AddrError> {
        let (handle, conn) = crate::neigh::netlink_connection().map_err(AddrError::Socket)?;
        Ok(AddrHandle {
            handle,
            _conn: conn,
        })
    }

    /// The interface's index.
    pub async fn ifindex(&self, interface: &str) -> Result<u32, AddrError> {
        Ok(self.link(interface).await?.header.index)
    }

    async fn link(&self, interface: &str) -> Result<LinkMessage, AddrError> {
        let mut replies = self
            .handle
            .link()
            .get()
            .match_name(interface.to_owned())
            .execute();
        match replies.try_next().await {
            Ok(Some(msg)) => Ok(msg),
            Ok(None) => Err(AddrError::NoSuchInterface(interface.to_owned())),
            Err(rtnetlink::Error::NetlinkError(e)) if -e.raw_code() == libc::ENODEV => {
                Err(AddrError::NoSuchInterface(interface.to_owned()))
            }
            Err(source) => Err(AddrError::Netlink {
                op: format!("RTM_GETLINK {interface}"),
                source,
            }),
        }
    }

    /// The addresses on interface `ifindex` of `ip`'s family, each with its prefix
    /// length and the kernel's message (for deleting it).
    async fn addresses(
        &self,
        ifindex: u32,
        ip: IpAddr,
    ) -> Result<Vec<(IpAddr, u8, AddressMessage)>, AddrError> {
        let mut req = self.handle.address().get().set_link_index_filter(ifindex);
        req.message_mut().header.family = family_of(ip);
        let mut dump = req.execute();
        let mut out = Vec::new();
        while let Some(msg) = dump.try_next().await.map_err(|source| AddrError::Netlink {
            op: format!("RTM_GETADDR ifindex {ifindex}"),
            source,
        })? {
            if msg.header.family != family_of(ip) {
                continue;
            }
            if let Some(local) = local_address(&msg) {
                out.push((local, msg.header.prefix_len, msg));
            }
        }
        Ok(out)
    }

    /// Add `ip/prefix` to `interface` if it is not there yet (idempotent), like
    /// `ip addr add VIP/len dev IF` (IPv6: with `nodad`).
    pub async fn add(&self, interface: &str, ip: IpAddr, prefix: u8) -> Result<(), AddrError> {
        check_prefix(ip, prefix)?;
        let ifindex = self.ifindex(interface).await?;
        let present = self.addresses(ifindex, ip).await?;
        if present.iter().any(|(a, p, _)| *a == ip && *p == prefix) {
            debug!(%ip, prefix, interface, "VIP already present");
            return Ok(());
        }
        let mut req = self.handle.address().add(ifindex, ip, prefix);
        if ip.is_ipv6() {
            let msg = req.message_mut();
            msg.header.flags |= AddressHeaderFlags::Nodad;
            msg.attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        match req.execute().await {
            Ok(()) => {
                info!(%ip, prefix, interface, "VIP added");
                Ok(())
            }
            // Added concurrently, or an IPv6 address present with another prefix.
            Err(rtnetlink::Error::NetlinkError(e)) if -e.raw_code() == libc::EEXIST => {
                debug!(%ip, prefix, interface, "VIP already present (EEXIST)");
                Ok(())
            }
            Err(source) => Err(AddrError::Netlink {
                op: format!("RTM_NEWADDR {ip}/{prefix} dev {interface}"),
                source,
            }),
        }
    }

    /// Remove `ip/prefix` from `interface` if it is there (idempotent), like
    /// `ip addr del VIP/len dev IF`. The same address with another prefix length is
    /// left alone (it is not the VIP this instance added).
    pub async fn remove(&self, interface: &str, ip: IpAddr, prefix: u8) -> Result<(), AddrError> {
        check_prefix(ip, prefix)?;
        let ifindex = self.ifindex(interface).await?;
        let present = self.addresses(ifindex, ip).await?;
        let Some((_, _, msg)) = present
            .into_iter()
            .find(|(a, p, _)| *a == ip && *p == prefix)
        else {
            debug!(%ip, prefix, interface, "VIP already absent");
            return Ok(());
        };
        match self.handle.address().del(msg).execute().await {
            Ok(()) => {
                info!(%ip, prefix, interface, "VIP removed");
                Ok(())
            }
            // Removed concurrently.
            Err(rtnetlink::Error::NetlinkError(e))
                if matches!(-e.raw_code(), libc::EADDRNOTAVAIL | libc::ENOENT) =>
            {
                debug!(%ip, prefix, interface, "VIP already absent (removed concurrently)");
                Ok(())
            }
            Err(source) => Err(AddrError::Netlink {
                op: format!("RTM_DELADDR {ip}/{prefix} dev {interface}"),
                source,
            }),
        }
    }

    /// Whether `ip` is on `interface` (with any prefix length).
    pub async fn has(&self, interface: &str, ip: IpAddr) -> Result<bool, AddrError> {
        let ifindex = self.ifindex(interface).await?;
        Ok(self
            .addresses(ifindex, ip)
            .await?
            .iter()
            .any(|(a, _, _)| *a == ip))
    }

    /// Whether the link is administratively up (`IFF_UP`) with carrier
    /// (`IFF_LOWER_UP`): what VRRP needs to leave FAULT.
    pub async fn link_up(&self, interface: &str) -> Result<bool, AddrError> {
        Ok(link_is_up(&self.link(interface).await?))
    }
}

/// Follow link changes (`RTNLGRP_LINK`) for FAULT tracking: `(interface name, up)`
/// arrives whenever an interface's up state ([`AddrHandle::link_up`]'s meaning)
/// changes, when an interface appears (with its state) and when one is deleted
/// (`false`). Link messages that change nothing else of interest are not forwarded.
///
/// Opens its own netlink socket in the calling thread's network namespace, reads
/// the current state of every link before returning (so the first message is a
/// real change), and spawns a task on the current tokio runtime that runs until the
/// receiver is dropped.
pub async fn watch_links() -> Result<mpsc::Receiver<(String, bool)>, AddrError> {
    let (conn, handle, mut messages) =
        rtnetlink::new_multicast_connection(&[MulticastGroup::Link]).map_err(AddrError::Socket)?;
    let conn = crate::neigh::AbortOnDrop(tokio::spawn(conn));
    // Subscribed before the dump: a change racing with it is still seen (and
    // compared against what the dump said).
    let mut known: HashMap<u32, (String, bool)> = HashMap::new();
    let mut dump = handle.link().get().execute();
    while let Some(msg) = dump.try_next().await.map_err(|source| AddrError::Netlink {
        op: "RTM_GETLINK dump".to_owned(),
        source,
    })? {
        if let Some(name) = link_name(&msg) {
            known.insert(msg.header.index, (name, link_is_up(&msg)));
        }
    }
    let (tx, rx) = mpsc::channel(WATCH_CHANNEL_CAPACITY);
    tokio::spawn(async move {
        // Keep the connection task and its request handle alive while we run.
        let _conn = conn;
        let _keep = handle;
        loop {
            let msg = tokio::select! {
                msg = messages.next() => msg,
                () = tx.closed() => {
                    debug!("link watch: receiver dropped, stopping");
                    return;
                }
            };
            let Some((msg, _addr)) = msg else {
                warn!("link watch: netlink event stream ended");
                return;
            };
            let Some(change) = link_change(msg, &mut known) else {
                continue;
            };
            info!(interface = %change.0, up = change.1, "link state changed");
            if tx.send(change).await.is_err() {
                return;
            }
        }
    });
    Ok(rx)
}

/// Update `known` with one link event; the `(name, up)` to report if it changed.
fn link_change(
    msg: NetlinkMessage<RouteNetlinkMessage>,
    known: &mut HashMap<u32, (String, bool)>,
) -> Option<(String, bool)> {
    match msg.payload {
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(m)) => {
            let index = m.header.index;
            let up = link_is_up(&m);
            let name = link_name(&m).or_else(|| known.get(&index).map(|(n, _)| n.clone()))?;
            let before = known.insert(index, (name.clone(), up));
            match before {
                Some((old_name, old_up)) if old_up == up && old_name == name => None,
                _ => Some((name, up)),
            }
        }
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(m)) => {
            let index = m.header.index;
            let name = known
                .remove(&index)
                .map(|(n, _)| n)
                .or_else(|| link_name(&m))?;
            Some((name, false))
        }
        _ => None,
    }
}

fn link_name(msg: &LinkMessage) -> Option<String> {
    msg.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(n) => Some(n.clone()),
        _ => None,
    })
}

fn link_is_up(msg: &LinkMessage) -> bool {
    let flags = msg.header.flags;
    flags.contains(LinkFlags::Up) && flags.contains(LinkFlags::LowerUp)
}

/// The interface's own address in an address message: `IFA_LOCAL` when present
/// (IPv4, point-to-point), else `IFA_ADDRESS`.
fn local_address(msg: &AddressMessage) -> Option<IpAddr> {
    let mut address = None;
    for attr in &msg.attributes {
        match attr {
            AddressAttribute::Local(a) => return Some(*a),
            AddressAttribute::Address(a) => address = Some(*a),
            _ => {}
        }
    }
    address
}

fn family_of(ip: IpAddr) -> AddressFamily {
    match ip {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

fn check_prefix(ip: IpAddr, prefix: u8) -> Result<(), AddrError> {
    let max = if ip.is_ipv4() { 32 } else { 128 };
    if prefix > max {
        return Err(AddrError::BadPrefix { ip, prefix });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtnetlink::packet_route::link::LinkHeader;

    fn link(index: u32, name: &str, up: bool) -> NetlinkMessage<RouteNetlinkMessage> {
        let mut m = LinkMessage::default();
        m.header = LinkHeader {
            index,
            flags: if up {
                LinkFlags::Up | LinkFlags::LowerUp
            } else {
                LinkFlags::Up
            },
            ..LinkHeader::default()
        };
        m.attributes.push(LinkAttribute::IfName(name.to_owned()));
        NetlinkMessage::from(RouteNetlinkMessage::NewLink(m))
    }

    #[test]
    fn link_changes_are_deduplicated() {
        let mut known = HashMap::new();
        known.insert(2, ("eth0".to_owned(), true));
        assert_eq!(link_change(link(2, "eth0", true), &mut known), None);
        assert_eq!(
            link_change(link(2, "eth0", false), &mut known),
            Some(("eth0".to_owned(), false))
        );
        assert_eq!(link_change(link(2, "eth0", false), &mut known), None);
        assert_eq!(
            link_change(link(3, "eth1", false), &mut known),
            Some(("eth1".to_owned(), false))
        );
        let mut del = LinkMessage::default();
        del.header.index = 3;
        let del = NetlinkMessage::from(RouteNetlinkMessage::DelLink(del));
        assert_eq!(
            link_change(del, &mut known),
            Some(("eth1".to_owned(), false))
        );
        assert!(!known.contains_key(&3));
    }

    #[test]
    fn prefix_bounds() {
        let v4: IpAddr = "192.0.2.1".parse().expect("ip");
        let v6: IpAddr = "2001:db8::1".parse().expect("ip");
        assert!(check_prefix(v4, 32).is_ok());
        assert!(check_prefix(v4, 33).is_err());
        assert!(check_prefix(v6, 128).is_ok());
        assert!(check_prefix(v6, 129).is_err());
    }
}

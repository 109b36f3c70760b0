//! What travels between nodes: connection-table entries ([`FlowEntry`]) and a service's
//! dirty Maglev slots ([`DirtySlots`]).

use std::net::IpAddr;

/// One connection-table entry as it travels between nodes (backend by address: backend
/// indices are local to each node).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowEntry {
    /// Client address.
    pub client: IpAddr,
    /// Client port (0 for protocols without ports).
    pub client_port: u16,
    /// Virtual IP the flow is addressed to.
    pub vip: IpAddr,
    /// Virtual port.
    pub vip_port: u16,
    /// IP protocol number (6 = TCP, 17 = UDP).
    pub proto: u8,
    /// The backend the flow is pinned to, by address.
    pub backend: IpAddr,
    /// Milliseconds since the flow's last packet on the sending node.
    pub idle_ms: u32,
}

impl FlowEntry {
    /// Whether client, VIP and backend are all IPv4 (the compact encoding).
    pub fn is_v4(&self) -> bool {
        self.client.is_ipv4() && self.vip.is_ipv4() && self.backend.is_ipv4()
    }
}

/// Dirty Maglev slots of one service: slots whose pre-change flows belong to `prev`
/// (sent in a full resync, so a restarted node holds the same tables as its peers).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DirtySlots {
    /// The service's VIP.
    pub vip: IpAddr,
    /// The service's port (0 = every port).
    pub port: u16,
    /// The service's IP protocol number.
    pub proto: u8,
    /// The service's Maglev table size.
    pub table_len: u32,
    /// Dirty slots: slot index and the backend (by address) its pre-change flows
    /// belong to.
    pub slots: Vec<(u32, IpAddr)>,
}

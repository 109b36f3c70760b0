//! Layouts of every map the XDP program shares with the controller.
//!
//! All types are `#[repr(C)]` with explicit, zeroed padding and compile-time size
//! asserts: an implicit hole in a key makes lookups silently miss. Addresses are kept
//! as four `u32` words in network layout (`u32::from_ne_bytes` of each 4 bytes); IPv4
//! addresses are IPv4-mapped (`::ffff:a.b.c.d`) so one key type serves both families.

/// Largest Maglev table the data plane accepts (a prime). Tables may be smaller primes.
pub const MAX_TABLE_SIZE: usize = 65537;
/// Default Maglev table size M.
pub const DEFAULT_TABLE_SIZE: u32 = 65537;
/// Marks "no backend" in a table slot, and "clean slot" in [`TableEntry::prev`].
pub const NO_BACKEND: u16 = u16::MAX;
/// Highest number of backends (indices `0..MAX_BACKENDS`) across all services.
pub const MAX_BACKENDS: u32 = 65535;
/// Words of the `VIP_FILTER` bitmap (64 bits each: 65536 bits, 8 KiB).
pub const VIP_FILTER_WORDS: u32 = 1024;

/// IP protocol numbers used in keys.
pub mod proto {
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
}

/// The word holding `0000:ffff` of an IPv4-mapped address.
pub const V4_MAPPED_WORD: u32 = u32::from_ne_bytes([0, 0, 0xff, 0xff]);

/// IPv4-mapped address words from the 4 address bytes as they sit in the packet.
#[inline(always)]
pub const fn v4_words(raw: u32) -> [u32; 4] {
    [0, 0, V4_MAPPED_WORD, raw]
}

/// True when the address words are an IPv4-mapped address.
#[inline(always)]
pub const fn is_v4(words: &[u32; 4]) -> bool {
    words[0] == 0 && words[1] == 0 && words[2] == V4_MAPPED_WORD
}

/// Address words of an IP address (IPv4 as IPv4-mapped).
#[cfg(feature = "std")]
pub fn addr_words(ip: std::net::IpAddr) -> [u32; 4] {
    let bytes = match ip {
        std::net::IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        std::net::IpAddr::V6(v6) => v6.octets(),
    };
    let w = |i: usize| u32::from_ne_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    [w(0), w(4), w(8), w(12)]
}

/// The IP address of address words (IPv4-mapped words give an IPv4 address).
#[cfg(feature = "std")]
pub fn words_addr(words: &[u32; 4]) -> std::net::IpAddr {
    let mut bytes = [0u8; 16];
    for (i, w) in words.iter().enumerate() {
        bytes[i * 4..i * 4 + 4].copy_from_slice(&w.to_ne_bytes());
    }
    let v6 = std::net::Ipv6Addr::from(bytes);
    match v6.to_ipv4_mapped() {
        Some(v4) => std::net::IpAddr::V4(v4),
        None => std::net::IpAddr::V6(v6),
    }
}

/// Key of the `SERVICES` map.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceKey {
    /// Virtual IP, network layout words.
    pub vip: [u32; 4],
    /// Destination port in host order; 0 = every port of the VIP.
    pub port: u16,
    /// IP protocol ([`proto`]).
    pub proto: u8,
    /// Zero.
    pub _pad: u8,
}

/// Key of the `FRAG_ROUTES` map: (VIP, protocol). Fragments after the first carry no
/// ports, so every fragment of a datagram is routed to one service of its VIP (the
/// value, a [`ServiceKey`]) and hashed on addresses only.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FragKey {
    /// Virtual IP, network layout words.
    pub vip: [u32; 4],
    /// IP protocol.
    pub proto: u8,
    /// Zero.
    pub _pad: u8,
    /// Zero.
    pub _pad2: u16,
}

/// [`ServiceTable::flags`]: hash on the client address only (IPVS `sh`).
pub const SVC_F_SOURCE_HASH: u32 = 1;

/// One Maglev slot: the backend new flows get, and whether the slot is dirty.
///
/// A slot is *clean* (`prev == NO_BACKEND`) when no table change since the connection
/// table was last settled moved it: every flow hashing here is on `backend`, so the
/// data plane forwards without consulting the connection table. A *dirty* slot was
/// moved; `prev` names the backend it pointed to while it was last clean, which owns
/// untracked flows that predate the change.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TableEntry {
    /// Backend index for new flows, or [`NO_BACKEND`].
    pub backend: u16,
    /// [`NO_BACKEND`] for a clean slot, else the backend of pre-change flows.
    pub prev: u16,
}

impl TableEntry {
    /// A slot with no backend.
    pub const EMPTY: TableEntry = TableEntry {
        backend: NO_BACKEND,
        prev: NO_BACKEND,
    };

    /// True when the connection table must be consulted for this slot.
    #[inline(always)]
    pub const fn is_dirty(&self) -> bool {
        self.prev != NO_BACKEND
    }
}

/// Value of the `SERVICES` map: service metadata and its whole Maglev table, so one
/// hash lookup finds both and one map update switches both atomically (the kernel
/// replaces a hash element under RCU; a packet in flight keeps the old one).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ServiceTable {
    /// Index into the per-service counters.
    pub id: u32,
    /// `SVC_F_*` flags.
    pub flags: u32,
    /// Table size M actually used (a prime `<= MAX_TABLE_SIZE`, or up to
    /// [`MAX_BIG_TABLE_SIZE`] with [`SVC_F_BIG_TABLE`]); 0 = no usable backend.
    pub len: u32,
    /// With [`SVC_F_BIG_TABLE`]: the generation of the big table's chunks
    /// ([`BigChunkKey::gen`]); else zero.
    pub big_gen: u32,
    /// Slots `0..len` are meaningful.
    pub entries: [TableEntry; MAX_TABLE_SIZE],
}

#[cfg(feature = "std")]
impl ServiceTable {
    /// A heap-allocated table (it is too large for a stack) with `entries` as its slots.
    /// Returns `None` if `entries` is longer than [`MAX_TABLE_SIZE`].
    pub fn boxed(id: u32, flags: u32, entries: &[TableEntry]) -> Option<Box<ServiceTable>> {
        if entries.len() > MAX_TABLE_SIZE {
            return None;
        }
        // SAFETY: ServiceTable is plain integers; all-zero is a valid value.
        let mut table = unsafe { Box::<ServiceTable>::new_zeroed().assume_init() };
        table.id = id;
        table.flags = flags;
        table.len = entries.len() as u32;
        table.entries[entries.len()..].fill(TableEntry::EMPTY);
        table.entries[..entries.len()].copy_from_slice(entries);
        Some(table)
    }

    /// The meaningful slots.
    pub fn slots(&self) -> &[TableEntry] {
        &self.entries[..(self.len as usize).min(MAX_TABLE_SIZE)]
    }
}

/// [`Backend::state`]: takes new flows (and keeps tracked ones).
pub const BACKEND_UP: u32 = 1;
/// [`Backend::state`]: weight 0; keeps tracked flows, gets no new ones.
pub const BACKEND_DRAINING: u32 = 2;
/// [`Backend::state`]: down or removed; its tracked flows are re-balanced.
pub const BACKEND_DOWN: u32 = 0;

/// [`Backend::ifindex`] of a backend that is this LB host itself (an API server on the
/// LB node): its packets are not rewritten but passed to the local stack, where the VIP
/// is configured while the node forwards.
pub const IFINDEX_LOCAL: u32 = u32::MAX;

/// Value of the `BACKENDS` array, indexed by backend index. `mac` then `src_mac` are
/// exactly the first 12 bytes of a forwarded frame, so the data plane writes them as
/// three 32-bit words.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Backend {
    /// Destination MAC: the backend's.
    pub mac: [u8; 6],
    /// Source MAC: the egress interface's.
    pub src_mac: [u8; 6],
    /// Egress interface. 0 or the ingress interface = `XDP_TX`, else redirect.
    pub ifindex: u32,
    /// `BACKEND_*`.
    pub state: u32,
    /// Bumped whenever the index is given to a different backend, so connection
    /// entries naming the old occupant do not follow the index.
    pub gen: u32,
    /// Id of the service this backend belongs to (the controller's bookkeeping: a
    /// restarted controller rebuilds its index allocation from the pinned map).
    pub service: u32,
    /// The backend's address words (bookkeeping, as `service`).
    pub addr: [u32; 4],
}

impl Backend {
    /// May carry flows the connection table already assigned to it.
    #[inline(always)]
    pub const fn keeps_flows(&self) -> bool {
        self.state == BACKEND_UP || self.state == BACKEND_DRAINING
    }
}

/// Key of the `CONNS` LRU map: the inbound 5-tuple (client -> VIP).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ConnKey {
    /// Client address words.
    pub src: [u32; 4],
    /// VIP address words.
    pub dst: [u32; 4],
    /// Client port, host order (0 for fragments).
    pub sport: u16,
    /// VIP port, host order (0 for fragments).
    pub dport: u16,
    /// IP protocol.
    pub proto: u8,
    /// Zero. (Scalar padding: an array here makes the BPF backend call memset.)
    pub _pad: u8,
    /// Zero.
    pub _pad2: u16,
}

/// [`ConnValue::flags`]: the flow sent a TCP FIN or RST (it counts as alive for
/// `timeout_tcpfin`, not `timeout_tcp`).
pub const CONN_F_FIN: u16 = 1;

/// Value of the `CONNS` map.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnValue {
    /// Backend index.
    pub backend: u16,
    /// `CONN_F_*`. (The upper half of what was a 32-bit backend index: entries an
    /// older data plane wrote read as 0.)
    pub flags: u16,
    /// [`Backend::gen`] when the entry was made.
    pub gen: u32,
    /// When last used, CLOCK_MONOTONIC ns (the data plane reads it with
    /// `bpf_ktime_get_coarse_ns`, at tick resolution; refreshed at most once a second).
    pub last_seen_ns: u64,
}

impl ConnValue {
    /// The entry still holds: its backend keeps flows and is the same generation (the
    /// index was not reused for another backend since).
    #[inline(always)]
    pub const fn follows(&self, b: &Backend) -> bool {
        b.keeps_flows() && b.gen == self.gen
    }
}

/// Value of the single-entry `CONFIG` array.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DataplaneConfig {
    /// 1 = forward VIP traffic; 0 = pass it to the kernel (VRRP backup, standby).
    pub forwarding: u32,
    /// Cluster-wide flow hash seed; identical on every LB node.
    pub hash_seed: u32,
    /// The flood guard: connection-table entries each CPU may create per second
    /// (0 = no limit). Over it, a flow is routed by the untracked rule and not
    /// recorded (see `select`), so a flood cannot churn the table faster than this.
    pub insert_limit: u32,
    /// Zero.
    pub _pad: u32,
}

/// Value of the per-CPU, single-entry `FLOW_GUARD` array: the flood guard's window
/// and what it and the sync feed refused. Read by the controller (summed over CPUs).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowGuard {
    /// Start of the current one-second window (`bpf_ktime_get_coarse_ns`).
    pub window_ns: u64,
    /// Entries created in the current window.
    pub inserts: u64,
    /// Entries not created because the window's budget was spent (flood evidence).
    pub refused: u64,
    /// Entries created but not announced to the controller (the event ring was full):
    /// the flow sync misses them until its next table scan.
    pub events_lost: u64,
}

/// A record of the `CONN_EVENTS` ring: an entry the data plane just created, for the
/// controller to sync to peer LB nodes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnEvent {
    /// The flow.
    pub key: ConnKey,
    /// The entry as written.
    pub value: ConnValue,
}

/// Value of the `INGRESS_MACS` map: an attached interface's own MAC.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IngressMac {
    /// The interface's MAC address.
    pub mac: [u8; 6],
    /// Zero.
    pub _pad: u16,
}

/// Per-service and per-backend counters (per CPU; sum over CPUs to read).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrafficStats {
    /// Packets forwarded.
    pub packets: u64,
    /// Bytes forwarded (whole frames).
    pub bytes: u64,
    /// New flows: TCP SYNs without ACK.
    pub new_flows: u64,
}

/// Indices of the per-CPU `GLOBAL_STATS` array: what happened to each packet, and
/// events. A packet counts exactly once among the outcomes (`FWD_*`, `PASS_*`,
/// `DROP_*`: `0..=7`, [`FWD_LOCAL`](outcome::FWD_LOCAL) = 14 and
/// [`PASS_NOT_FOR_US`](outcome::PASS_NOT_FOR_US) = 15) and may also count among the
/// events (`8..=13`: connection table, fragments, ICMP errors).
pub mod outcome {
    /// Forwarded with `XDP_TX`.
    pub const FWD_TX: u32 = 0;
    /// Forwarded with a devmap redirect.
    pub const FWD_REDIRECT: u32 = 1;
    /// Passed: not IPv4/IPv6.
    pub const PASS_NOT_IP: u32 = 2;
    /// Passed: no service for its destination.
    pub const PASS_NOT_VIP: u32 = 3;
    /// Passed: VIP traffic while forwarding is off.
    pub const PASS_FORWARDING_OFF: u32 = 4;
    /// Passed: truncated or malformed headers.
    pub const PASS_MALFORMED: u32 = 5;
    /// Dropped: the service has no usable backend.
    pub const DROP_NO_BACKEND: u32 = 6;
    /// Dropped: the backend's egress interface is not in the devmap.
    pub const DROP_NO_ROUTE: u32 = 7;
    /// Event: a dirty slot found the flow in the connection table.
    pub const CT_HIT: u32 = 8;
    /// Event: a dirty slot did not find the flow.
    pub const CT_MISS: u32 = 9;
    /// Event: a tracked flow's backend was down or gone; re-balanced.
    pub const CT_REBALANCED: u32 = 10;
    /// Event: a fragment routed by addresses.
    pub const FRAGMENT: u32 = 11;
    /// Event: an ICMP error routed to the owner of the quoted flow.
    pub const ICMP_ERROR: u32 = 12;
    /// Event: an insert into the connection table failed.
    pub const CT_INSERT_FAILED: u32 = 13;
    /// Outcome: delivered to this host's own stack (the backend is the LB node itself).
    pub const FWD_LOCAL: u32 = 14;
    /// Passed: not this node's to forward. Its destination MAC is not the ingress
    /// interface's (a bridge's flood: broadcast, multicast, unknown unicast), or it
    /// carries a VLAN tag that would have to leave through another interface.
    pub const PASS_NOT_FOR_US: u32 = 15;
    /// Number of counters.
    pub const COUNT: u32 = 16;
    /// Display names, index = counter.
    pub const NAMES: [&str; COUNT as usize] = [
        "forwarded_tx",
        "forwarded_redirect",
        "passed_not_ip",
        "passed_not_vip",
        "passed_forwarding_off",
        "passed_malformed",
        "dropped_no_backend",
        "dropped_no_route",
        "conntrack_hit",
        "conntrack_miss",
        "conntrack_rebalanced",
        "fragments",
        "icmp_errors",
        "conntrack_insert_failed",
        "forwarded_local",
        "passed_not_for_us",
    ];
}

/// Map names in the object file (and pin names under the pin directory).
pub mod names {
    /// `HashMap<ServiceKey, ServiceTable>`, `BPF_F_NO_PREALLOC`.
    pub const SERVICES: &str = "LB_SERVICES";
    /// `Array<Backend>`.
    pub const BACKENDS: &str = "LB_BACKENDS";
    /// `LruHashMap<ConnKey, ConnValue>`.
    pub const CONNS: &str = "LB_CONNS";
    /// `Array<DataplaneConfig>`, one entry.
    pub const CONFIG: &str = "LB_CONFIG";
    /// `PerCpuArray<u64>`, indexed by [`super::outcome`].
    pub const GLOBAL_STATS: &str = "LB_GLOBAL_STATS";
    /// `PerCpuArray<TrafficStats>`, indexed by service id.
    pub const SERVICE_STATS: &str = "LB_SERVICE_STATS";
    /// `PerCpuArray<TrafficStats>`, indexed by backend index.
    pub const BACKEND_STATS: &str = "LB_BACKEND_STATS";
    /// `DevMapHash`, keyed by egress ifindex.
    pub const TX_PORTS: &str = "LB_TX_PORTS";
    /// `HashMap<FragKey, ServiceKey>`: the service fragments of a (VIP, protocol) use.
    pub const FRAG_ROUTES: &str = "LB_FRAG_ROUTES";
    /// `HashMap<u32, IngressMac>`: the MAC of each interface the program is attached
    /// to, keyed by ifindex (frames leaving through another interface are checked
    /// against it).
    pub const INGRESS_MACS: &str = "LB_INGRESS_MACS";
    /// `Array<u64>`, [`super::VIP_FILTER_WORDS`] words: a bit per hash of (VIP,
    /// protocol) that has a service (see `select::vip_filter_bit`). A clear bit means
    /// no service: the packet is passed without a service lookup.
    pub const VIP_FILTER: &str = "LB_VIP_FILTER";
    /// `PerCpuArray<FlowGuard>`, one entry: the flood guard and event losses.
    pub const FLOW_GUARD: &str = "LB_FLOW_GUARD";
    /// `RingBuf` of [`super::ConnEvent`]: entries the data plane created, for the
    /// flow sync.
    pub const CONN_EVENTS: &str = "LB_CONN_EVENTS";
    /// `HashMap<BigChunkKey, BigChunk>`, `BPF_F_NO_PREALLOC`: the Maglev tables
    /// larger than [`super::MAX_TABLE_SIZE`] ([`super::SVC_F_BIG_TABLE`]), in chunks.
    pub const BIG_TABLES: &str = "LB_BIG_TABLES";
    /// Every map, in pin order.
    pub const ALL: [&str; 14] = [
        SERVICES,
        BACKENDS,
        CONNS,
        CONFIG,
        GLOBAL_STATS,
        SERVICE_STATS,
        BACKEND_STATS,
        TX_PORTS,
        FRAG_ROUTES,
        INGRESS_MACS,
        VIP_FILTER,
        FLOW_GUARD,
        CONN_EVENTS,
        BIG_TABLES,
    ];
}

/// Program names in the object file `lb` (the only program it holds; the bench's
/// programs are in their own object, see [`crate::bench::programs`]).
pub mod programs {
    /// The load balancer.
    pub const LB: &str = "lb_xdp";
}

/// Default capacities (the controller may override `max_entries` at load time).
pub mod capacity {
    /// Services (and fragment routes).
    pub const SERVICES: u32 = 256;
    /// Backends across all services.
    pub const BACKENDS: u32 = 4096;
    /// Tracked connections.
    pub const CONNS: u32 = 1 << 20;
    /// Egress interfaces.
    pub const TX_PORTS: u32 = 64;
    /// Bytes of the connection-event ring (a power of two, page multiple): 4096
    /// events of 56 bytes plus headers.
    pub const CONN_EVENTS_BYTES: u32 = 1 << 18;
    /// Big-table chunks: 41 make a 655373-slot table and a service keeps two
    /// generations while it switches, so 4096 hold 49 such services (elements are
    /// allocated only as used, 64 KiB each). The controller raises it with the
    /// services' capacity.
    pub const BIG_CHUNKS: u32 = 4096;
}

const _: () = {
    assert!(core::mem::size_of::<ServiceKey>() == 20);
    assert!(core::mem::size_of::<FragKey>() == 20);
    assert!(core::mem::size_of::<TableEntry>() == 4);
    assert!(core::mem::size_of::<ServiceTable>() == 16 + 4 * MAX_TABLE_SIZE);
    assert!(core::mem::size_of::<Backend>() == 44);
    assert!(core::mem::size_of::<ConnKey>() == 40);
    assert!(core::mem::size_of::<ConnValue>() == 16);
    assert!(core::mem::size_of::<DataplaneConfig>() == 16);
    assert!(core::mem::size_of::<TrafficStats>() == 24);
    assert!(core::mem::size_of::<IngressMac>() == 8);
    assert!(core::mem::size_of::<FlowGuard>() == 32);
    assert!(core::mem::size_of::<ConnEvent>() == 56);
};

#[cfg(feature = "user")]
mod pod {
    use super::*;
    // SAFETY: all are #[repr(C)], contain only integers and byte arrays, and have no
    // implicit padding (asserted above), so every bit pattern is valid.
    unsafe impl aya::Pod for ServiceKey {}
    unsafe impl aya::Pod for FragKey {}
    unsafe impl aya::Pod for TableEntry {}
    unsafe impl aya::Pod for ServiceTable {}
    unsafe impl aya::Pod for Backend {}
    unsafe impl aya::Pod for ConnKey {}
    unsafe impl aya::Pod for ConnValue {}
    unsafe impl aya::Pod for DataplaneConfig {}
    unsafe impl aya::Pod for TrafficStats {}
    unsafe impl aya::Pod for IngressMac {}
    unsafe impl aya::Pod for FlowGuard {}
    unsafe impl aya::Pod for ConnEvent {}
}

/// Largest Maglev table of all (a prime, the Maglev paper's large size). A table
/// above [`MAX_TABLE_SIZE`] does not fit in a [`ServiceTable`]: its slots are in
/// [`BigChunk`]s of their own (2.6 MB at this size), so only the services that need
/// one pay for it.
pub const MAX_BIG_TABLE_SIZE: usize = 655373;

/// [`ServiceTable::flags`]: the service's slots are in the `BIG_TABLES` chunks keyed
/// by its id and [`ServiceTable::big_gen`]; the inline entries are unused. A new table
/// gets a new generation, written whole before the service's value names it, so one
/// map update (the value) switches the whole table atomically.
pub const SVC_F_BIG_TABLE: u32 = 2;

/// Slots per [`BigChunk`]: a chunk's map element (value and the kernel's element
/// header) fits a 64 KiB allocation (a 2.6 MB value would need a 4 MiB one, and the
/// kernel keeps one spare element per CPU).
pub const BIG_CHUNK_SLOTS: usize = 16352;

/// Key of the `BIG_TABLES` map: one chunk of one generation of a service's big table.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BigChunkKey {
    /// The service id ([`ServiceTable::id`]).
    pub id: u32,
    /// The table's generation ([`ServiceTable::big_gen`]).
    pub gen: u16,
    /// Slots `chunk * BIG_CHUNK_SLOTS ..` of the table.
    pub chunk: u16,
}

/// Value of the `BIG_TABLES` map: [`BIG_CHUNK_SLOTS`] slots of a big table (the last
/// chunk's tail beyond the table size is [`TableEntry::EMPTY`]).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct BigChunk {
    /// The slots.
    pub entries: [TableEntry; BIG_CHUNK_SLOTS],
}

#[cfg(feature = "std")]
impl BigChunk {
    /// The chunks of a table of `entries` (at most [`MAX_BIG_TABLE_SIZE`] slots, else
    /// `None`), the last padded with empty slots.
    pub fn split(entries: &[TableEntry]) -> Option<Vec<Box<BigChunk>>> {
        if entries.len() > MAX_BIG_TABLE_SIZE {
            return None;
        }
        Some(
            entries
                .chunks(BIG_CHUNK_SLOTS)
                .map(|part| {
                    let mut chunk = Box::new(BigChunk {
                        entries: [TableEntry::EMPTY; BIG_CHUNK_SLOTS],
                    });
                    chunk.entries[..part.len()].copy_from_slice(part);
                    chunk
                })
                .collect(),
        )
    }
}

const _: () = {
    assert!(core::mem::size_of::<BigChunkKey>() == 8);
    assert!(core::mem::size_of::<BigChunk>() == 4 * BIG_CHUNK_SLOTS);
    assert!(MAX_BIG_TABLE_SIZE.div_ceil(BIG_CHUNK_SLOTS) <= u16::MAX as usize);
};

// SAFETY: #[repr(C)], only integers, no implicit padding (asserted above).
#[cfg(feature = "user")]
unsafe impl aya::Pod for BigChunkKey {}
// SAFETY: as above.
#[cfg(feature = "user")]
unsafe impl aya::Pod for BigChunk {}

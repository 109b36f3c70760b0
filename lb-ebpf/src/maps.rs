//! The data plane's maps and its counter helpers. Layouts come from `lb_common::maps`;
//! the controller sets capacities at load time and pins these maps.

use aya_ebpf::{
    bindings::BPF_F_NO_PREALLOC,
    macros::map,
    maps::{Array, DevMapHash, HashMap, LruHashMap, PerCpuArray, RingBuf},
};
use lb_common::maps::{
    capacity, outcome, Backend, BigChunk, BigChunkKey, ConnKey, ConnValue, DataplaneConfig,
    FlowGuard, FragKey, IngressMac, ServiceKey, ServiceTable, TrafficStats, VIP_FILTER_WORDS,
};

/// (VIP, port, protocol, kind) -> service metadata and Maglev table. Not preallocated,
/// so an update replaces the element under RCU: packets see the old or the new table.
#[map(name = "LB_SERVICES")]
pub static SERVICES: HashMap<ServiceKey, ServiceTable> =
    HashMap::with_max_entries(capacity::SERVICES, BPF_F_NO_PREALLOC);

/// (service id, generation, chunk) -> slots of a Maglev table larger than the inline
/// one (services flagged `SVC_F_BIG_TABLE`). Not preallocated: elements exist only
/// for the services that need them; a generation is written whole before a service's
/// value names it.
#[map(name = "LB_BIG_TABLES")]
pub static BIG_TABLES: HashMap<BigChunkKey, BigChunk> =
    HashMap::with_max_entries(capacity::BIG_CHUNKS, BPF_F_NO_PREALLOC);

/// (VIP, protocol) -> the service its fragments use.
#[map(name = "LB_FRAG_ROUTES")]
pub static FRAG_ROUTES: HashMap<FragKey, ServiceKey> =
    HashMap::with_max_entries(capacity::SERVICES, 0);

/// Backend index -> MACs, egress interface, state, generation.
#[map(name = "LB_BACKENDS")]
pub static BACKENDS: Array<Backend> = Array::with_max_entries(capacity::BACKENDS, 0);

/// Inbound 5-tuple -> backend, for flows on dirty slots.
#[map(name = "LB_CONNS")]
pub static CONNS: LruHashMap<ConnKey, ConnValue> = LruHashMap::with_max_entries(capacity::CONNS, 0);

/// Per CPU, entry 0: the flood guard's window and what it refused.
#[map(name = "LB_FLOW_GUARD")]
pub static FLOW_GUARD: PerCpuArray<FlowGuard> = PerCpuArray::with_max_entries(1, 0);

/// Entries the program created (`lb_common::maps::ConnEvent`), for the flow sync.
#[map(name = "LB_CONN_EVENTS")]
pub static CONN_EVENTS: RingBuf = RingBuf::with_byte_size(capacity::CONN_EVENTS_BYTES, 0);

/// Entry 0: forwarding switch, hash seed, flood guard limit.
#[map(name = "LB_CONFIG")]
pub static CONFIG: Array<DataplaneConfig> = Array::with_max_entries(1, 0);

/// Per-CPU outcome and event counters, indexed by `lb_common::maps::outcome`.
#[map(name = "LB_GLOBAL_STATS")]
pub static GLOBAL_STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(outcome::COUNT, 0);

/// Per-CPU traffic per service id.
#[map(name = "LB_SERVICE_STATS")]
pub static SERVICE_STATS: PerCpuArray<TrafficStats> =
    PerCpuArray::with_max_entries(capacity::SERVICES, 0);

/// Per-CPU traffic per backend index.
#[map(name = "LB_BACKEND_STATS")]
pub static BACKEND_STATS: PerCpuArray<TrafficStats> =
    PerCpuArray::with_max_entries(capacity::BACKENDS, 0);

/// Egress interfaces for backends reached through another interface than the ingress one.
#[map(name = "LB_TX_PORTS")]
pub static TX_PORTS: DevMapHash = DevMapHash::with_max_entries(capacity::TX_PORTS, 0);

/// A bit per hash of (VIP, protocol) with a service: a clear bit passes the packet
/// without a service lookup (`lb_common::select::vip_filter_bit`).
#[map(name = "LB_VIP_FILTER")]
pub static VIP_FILTER: Array<u64> = Array::with_max_entries(VIP_FILTER_WORDS, 0);

/// Ingress ifindex -> that interface's MAC: what a frame must be addressed to before it
/// is redirected out of another interface (`XDP_TX` frames are checked against the
/// backend's source MAC, the same interface's).
#[map(name = "LB_INGRESS_MACS")]
pub static INGRESS_MACS: HashMap<u32, IngressMac> =
    HashMap::with_max_entries(capacity::TX_PORTS, 0);

/// Count one event or outcome on this CPU.
#[inline(always)]
pub fn count(index: u32) {
    if let Some(c) = GLOBAL_STATS.get_ptr_mut(index) {
        // SAFETY: per-CPU slot, only this CPU writes it while the program runs.
        unsafe { *c += 1 };
    }
}

/// Add a forwarded packet to a traffic counter.
#[inline(always)]
pub fn add_traffic(map: &PerCpuArray<TrafficStats>, index: u32, bytes: u64, new_flow: bool) {
    if let Some(s) = map.get_ptr_mut(index) {
        // SAFETY: per-CPU slot, only this CPU writes it while the program runs.
        unsafe {
            (*s).packets += 1;
            (*s).bytes += bytes;
            if new_flow {
                (*s).new_flows += 1;
            }
        }
    }
}

//! The XDP direct-server-return data plane. For a packet to a configured
//! VIP:port/protocol: parse, look up the service, choose a backend (Maglev slot, the
//! connection table only on dirty slots), check the frame is ours to forward (addressed
//! to the ingress interface's MAC; a VLAN tag only back out where it came in), rewrite
//! the MACs, and send it out (`XDP_TX`, or a devmap redirect to another interface).
//! Everything else is `XDP_PASS`.
//! Every packet is counted once by outcome in per-CPU counters; nothing is logged.
#![no_std]
#![no_main]

mod maps;
mod parse;

use aya_ebpf::{
    bindings::xdp_action, helpers::bpf_ktime_get_coarse_ns, macros::xdp, programs::XdpContext,
};
use lb_common::{
    maps::{
        outcome, Backend, ConnEvent, ConnKey, ConnValue, FlowGuard, ServiceKey, ServiceTable,
        CONN_F_FIN, IFINDEX_LOCAL,
    },
    select::{choose, frag_key, service_keys, slot_hash, vip_filter_bit, FlowState, How, Recorded},
};
use lb_ebpf::access::{field, put};
use maps::{
    add_traffic, count, BACKENDS, BACKEND_STATS, CONFIG, CONNS, CONN_EVENTS, FLOW_GUARD,
    FRAG_ROUTES, INGRESS_MACS, SERVICES, SERVICE_STATS, TX_PORTS, VIP_FILTER,
};
use parse::{Kind, Parsed};

/// The load balancer.
#[xdp]
pub fn lb_xdp(ctx: XdpContext) -> u32 {
    let (action, result) = balance(&ctx);
    count(result);
    action
}

#[inline(always)]
fn balance(ctx: &XdpContext) -> (u32, u32) {
    // 1. Parse. The VIP filter (one array read) answers as soon as the destination
    // is known, so traffic for other addresses is passed before the rest is parsed.
    let pkt = match parse::packet(ctx, maybe_vip) {
        Ok(pkt) => pkt,
        Err(why) => return (xdp_action::XDP_PASS, why),
    };

    // 2. Look up the service.
    let Some(service) = find_service(&pkt) else {
        return (xdp_action::XDP_PASS, outcome::PASS_NOT_VIP);
    };
    if !parse::checksum_ok(ctx, &pkt) {
        return (xdp_action::XDP_PASS, outcome::PASS_MALFORMED);
    }
    let Some(config) = CONFIG.get(0) else {
        return (xdp_action::XDP_PASS, outcome::PASS_FORWARDING_OFF);
    };
    if config.forwarding == 0 {
        return (xdp_action::XDP_PASS, outcome::PASS_FORWARDING_OFF);
    }
    match pkt.kind {
        Kind::Fragment { .. } => count(outcome::FRAGMENT),
        Kind::IcmpError => count(outcome::ICMP_ERROR),
        Kind::Flow => {}
    }

    // 3. Choose the backend.
    let hash = slot_hash(config.hash_seed, service.flags, &pkt.flow);
    let maps = DataplaneMaps {
        insert_limit: config.insert_limit as u64,
    };
    let Some((choice, backend)) = choose(&maps, service, hash, &pkt.flow, pkt.syn, pkt.fin) else {
        return (xdp_action::XDP_DROP, outcome::DROP_NO_BACKEND);
    };
    match choice.how {
        How::CleanSlot | How::NewConnection => {}
        How::Tracked => count(outcome::CT_HIT),
        How::PreChange | How::Current => count(outcome::CT_MISS),
        How::Rebalanced => count(outcome::CT_REBALANCED),
    }
    if choice.insert_failed {
        count(outcome::CT_INSERT_FAILED);
    }

    // 4. Check and rewrite, 5. act. A backend on this very host gets the packet
    // unchanged, through the local stack (which drops frames not addressed to it);
    // any other gets it with its MAC, out of the right port.
    let (action, result) = if backend.ifindex == IFINDEX_LOCAL {
        (xdp_action::XDP_PASS, outcome::FWD_LOCAL)
    } else {
        let Some(eth) = parse::ptr_at::<[u8; 12]>(ctx, 0) else {
            return (xdp_action::XDP_PASS, outcome::PASS_MALFORMED);
        };
        let eth = eth as *mut u8;
        let tx = backend.ifindex == 0 || backend.ifindex == ctx.ingress_ifindex() as u32;
        // The MAC the frame must be addressed to: the ingress interface's. For XDP_TX
        // that is the backend's source MAC (the same interface); a redirect looks it
        // up, and a tagged frame is never redirected (its tag means nothing there).
        let ours = if tx {
            addressed_to_half_aligned(eth, backend.src_mac.as_ptr())
        } else if pkt.tagged {
            return (xdp_action::XDP_PASS, outcome::PASS_NOT_FOR_US);
        } else {
            // SAFETY: the value is read at once.
            match unsafe { INGRESS_MACS.get(ctx.ingress_ifindex() as u32) } {
                Some(m) => addressed_to_aligned(eth, m.mac.as_ptr()),
                // An ingress lbd did not attach to itself (a bond's slave): the frame
                // must be for the egress interface (the bond).
                None => addressed_to_half_aligned(eth, backend.src_mac.as_ptr()),
            }
        };
        if !ours {
            return (xdp_action::XDP_PASS, outcome::PASS_NOT_FOR_US);
        }
        rewrite_macs(eth, backend);
        if tx {
            (xdp_action::XDP_TX, outcome::FWD_TX)
        } else {
            redirect(backend)
        }
    };
    if action != xdp_action::XDP_DROP {
        let bytes = (ctx.data_end() - ctx.data()) as u64;
        add_traffic(&SERVICE_STATS, service.id, bytes, pkt.syn);
        add_traffic(&BACKEND_STATS, choice.backend as u32, bytes, pkt.syn);
    }
    (action, result)
}

/// Whether the frame at `eth` (12 bytes checked) is addressed to the MAC at `mac`, a
/// 4-aligned address in a map value (`IngressMac::mac`): a word and a half-word load.
#[inline(always)]
fn addressed_to_aligned(eth: *const u8, mac: *const u8) -> bool {
    // SAFETY: `eth` holds 12 bytes; `mac` points at a 6-byte MAC, 4-aligned.
    unsafe {
        field::<u32>(eth, 0) == field::<u32>(mac, 0) && field::<u16>(eth, 4) == field::<u16>(mac, 4)
    }
}

/// The same for a MAC at 2 past a 4-aligned address (`Backend::src_mac`, offset 6):
/// a half-word and a word load, each aligned on the map side.
#[inline(always)]
fn addressed_to_half_aligned(eth: *const u8, mac: *const u8) -> bool {
    // SAFETY: `eth` holds 12 bytes; `mac` points at a 6-byte MAC at 4n + 2.
    unsafe {
        field::<u16>(eth, 0) == field::<u16>(mac, 0) && field::<u32>(eth, 2) == field::<u32>(mac, 2)
    }
}

/// Destination MAC := the backend's, source MAC := our egress interface's.
#[inline(always)]
fn rewrite_macs(eth: *mut u8, backend: &Backend) {
    // `mac` and `src_mac` are the first 12 bytes of the 4-aligned map value, in frame
    // order: three explicit word copies (a [u8; 12] or [u32; 3] assignment compiles to
    // a byte-by-byte memmove call on the BPF target).
    let b = backend as *const Backend as *const u8;
    // SAFETY: `eth` holds 12 bytes (checked by the caller); `b` points at a 44-byte
    // map value.
    unsafe {
        put::<u32>(eth, 0, field::<u32>(b, 0));
        put::<u32>(eth, 4, field::<u32>(b, 4));
        put::<u32>(eth, 8, field::<u32>(b, 8));
    }
}

/// The service for a parsed packet: the exact (VIP, port, protocol), else the
/// whole-VIP service; a fragment goes to its VIP's fragment route (see
/// `lb_common::select::service_keys` and `frag_key`).
#[inline(always)]
fn find_service(pkt: &Parsed) -> Option<&'static ServiceTable> {
    // SAFETY (all lookups): SERVICES is not preallocated, so its elements are replaced,
    // never reused in place; FRAG_ROUTES values are copied out at once.
    if let Kind::Fragment { first_dport } = pkt.kind {
        // A datagram whose first fragment is for a port no service has is not ours.
        if let Some(dport) = first_dport {
            let (exact, whole_vip) = service_keys(&ConnKey { dport, ..pkt.flow });
            if !served(&exact) && !served(&whole_vip) {
                return None;
            }
        }
        let r = unsafe { FRAG_ROUTES.get(frag_key(&pkt.flow)) }?;
        // Word by word: `.copied()` of the key, or of its address array, compiles to
        // a memmove call.
        let route = ServiceKey {
            vip: [r.vip[0], r.vip[1], r.vip[2], r.vip[3]],
            port: r.port,
            proto: r.proto,
            _pad: 0,
        };
        return unsafe { SERVICES.get(route) };
    }
    let (exact, whole_vip) = service_keys(&pkt.flow);
    if let Some(service) = unsafe { SERVICES.get(exact) } {
        return Some(service);
    }
    unsafe { SERVICES.get(whole_vip) }
}

/// Whether (destination, protocol) may have a service: its VIP filter bit is set.
#[inline(always)]
fn maybe_vip(dst: &[u32; 4], proto: u8) -> bool {
    let bit = vip_filter_bit(dst, proto);
    match VIP_FILTER.get(bit >> 6) {
        Some(word) => word & (1u64 << (bit & 63)) != 0,
        None => false,
    }
}

/// Whether a service is installed at `key`.
#[inline(always)]
fn served(key: &ServiceKey) -> bool {
    // SAFETY: only the presence is read.
    unsafe { SERVICES.get(key) }.is_some()
}

/// Redirect to the backend's egress interface.
#[inline(always)]
fn redirect(backend: &Backend) -> (u32, u32) {
    match TX_PORTS.redirect(backend.ifindex, 0) {
        Ok(action) => (action, outcome::FWD_REDIRECT),
        Err(_) => (xdp_action::XDP_DROP, outcome::DROP_NO_ROUTE),
    }
}

/// [`FlowState`] over the live maps.
struct DataplaneMaps {
    /// `DataplaneConfig::insert_limit` (0 = no flood guard).
    insert_limit: u64,
}

impl FlowState for DataplaneMaps {
    #[inline(always)]
    fn backend(&self, index: u16) -> Option<&Backend> {
        BACKENDS.get(index as u32)
    }

    #[inline(always)]
    fn conn(&self, key: &ConnKey) -> Option<ConnValue> {
        // SAFETY: the value is copied out at once.
        unsafe { CONNS.get(key) }.copied()
    }

    /// An existing entry is overwritten in place (no new entry: no guard, and no LRU
    /// allocation that could evict another); else the flood guard, then the insert.
    /// Either way the event for the flow sync.
    #[inline(always)]
    fn remember(&self, key: &ConnKey, value: &ConnValue, absent: bool) -> Recorded {
        let Some(guard) = FLOW_GUARD.get_ptr_mut(0) else {
            return Recorded::Failed;
        };
        if let Some(v) = (!absent).then(|| CONNS.get_ptr_mut(key)).flatten() {
            // SAFETY: plain loads and stores in the entry; a racing reader of the same
            // flow sees the old or the new value per field.
            unsafe {
                // The same entry again (a retransmitted SYN, a repeated spoofed one):
                // only its time changes, which the sync's refresh scans carry; no
                // event, so repeats cannot fill the ring.
                let same = (*v).backend == value.backend
                    && (*v).gen == value.gen
                    && (*v).flags == value.flags;
                (*v).last_seen_ns = value.last_seen_ns;
                if same {
                    return Recorded::Yes;
                }
                (*v).backend = value.backend;
                (*v).flags = value.flags;
                (*v).gen = value.gen;
            }
            announce(guard, key, value);
            return Recorded::Yes;
        }
        // SAFETY: per-CPU slot, only this CPU writes it while the program runs.
        unsafe {
            if self.insert_limit != 0 {
                if value.last_seen_ns.wrapping_sub((*guard).window_ns) >= 1_000_000_000 {
                    (*guard).window_ns = value.last_seen_ns;
                    (*guard).inserts = 0;
                }
                if (*guard).inserts >= self.insert_limit {
                    (*guard).refused += 1;
                    return Recorded::Guarded;
                }
                (*guard).inserts += 1;
            }
        }
        if CONNS.insert(key, value, 0).is_err() {
            return Recorded::Failed;
        }
        announce(guard, key, value);
        Recorded::Yes
    }

    #[inline(always)]
    fn touch(&self, key: &ConnKey, now_ns: u64, fin: bool) {
        if let Some(v) = CONNS.get_ptr_mut(key) {
            // SAFETY: plain stores to the entry's timestamp and flags; a racing update
            // of the same entry replaces the element, losing at most this refresh.
            unsafe {
                (*v).last_seen_ns = now_ns;
                if fin {
                    (*v).flags |= CONN_F_FIN;
                }
            }
        }
    }

    #[inline(always)]
    fn now_ns(&self) -> u64 {
        // The coarse clock (CLOCK_MONOTONIC at tick resolution, the base the
        // controller compares with): `last_seen_ns` and the flood guard's window
        // count seconds, and reading it costs a fraction of the precise clock.
        // SAFETY: no preconditions.
        unsafe { bpf_ktime_get_coarse_ns() }
    }

    #[inline(always)]
    fn big_chunk(&self, key: &lb_common::maps::BigChunkKey) -> Option<&lb_common::maps::BigChunk> {
        // SAFETY: a chunk of a generation is never rewritten once a service names it
        // (new tables get a new generation; BIG_TABLES is not preallocated).
        unsafe { maps::BIG_TABLES.get(key) }
    }
}

/// Put a just-written entry on the event ring for the flow sync (counted in the
/// guard's `events_lost` if the ring is full).
#[inline(always)]
fn announce(guard: *mut FlowGuard, key: &ConnKey, value: &ConnValue) {
    match CONN_EVENTS.reserve::<ConnEvent>(0) {
        Some(mut event) => {
            let to = event.as_mut_ptr() as *mut u8;
            let k = key as *const ConnKey as *const u8;
            let v = value as *const ConnValue as *const u8;
            // Word by word (a struct copy compiles to a memmove call).
            // SAFETY: `to` holds a ConnEvent: the key's 40 bytes, then the value's 16.
            unsafe {
                let mut i = 0;
                while i < 40 {
                    put::<u32>(to, i, field::<u32>(k, i));
                    i += 4;
                }
                put::<u32>(to, 40, field::<u32>(v, 0));
                put::<u32>(to, 44, field::<u32>(v, 4));
                put::<u64>(to, 48, field::<u64>(v, 8));
            }
            event.submit(0);
        }
        // SAFETY: the per-CPU guard slot, only this CPU writes it while the program runs.
        None => unsafe { (*guard).events_lost += 1 },
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";

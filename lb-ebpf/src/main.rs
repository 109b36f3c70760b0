//! The XDP direct-server-return data plane. For a packet to a configured
//! VIP:port/protocol: parse, look up the service, choose a backend (Maglev slot, the
//! connection table only on dirty slots), rewrite the MACs, and send it out (`XDP_TX`,
//! or a devmap redirect to another interface). Everything else is `XDP_PASS`.
//! Every packet is counted once by outcome in per-CPU counters; nothing is logged.
#![no_std]
#![no_main]

mod maps;
mod parse;

use aya_ebpf::{
    bindings::xdp_action, helpers::bpf_ktime_get_ns, macros::xdp, programs::XdpContext,
};
use lb_common::{
    maps::{outcome, Backend, ConnKey, ConnValue, ServiceTable, IFINDEX_LOCAL},
    select::{choose, frag_key, service_keys, slot_hash, FlowState, How},
};
use maps::{
    add_traffic, count, BACKENDS, BACKEND_STATS, CONFIG, CONNS, FRAG_ROUTES, SERVICES,
    SERVICE_STATS, TX_PORTS,
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
    // 1. Parse.
    let pkt = match parse::packet(ctx) {
        Ok(pkt) => pkt,
        Err(why) => return (xdp_action::XDP_PASS, why),
    };

    // 2. Look up the service.
    let Some(service) = find_service(&pkt) else {
        return (xdp_action::XDP_PASS, outcome::PASS_NOT_VIP);
    };
    let Some(config) = CONFIG.get(0) else {
        return (xdp_action::XDP_PASS, outcome::PASS_FORWARDING_OFF);
    };
    if config.forwarding == 0 {
        return (xdp_action::XDP_PASS, outcome::PASS_FORWARDING_OFF);
    }
    match pkt.kind {
        Kind::Fragment => count(outcome::FRAGMENT),
        Kind::IcmpError => count(outcome::ICMP_ERROR),
        Kind::Flow => {}
    }

    // 3. Choose the backend.
    let hash = slot_hash(config.hash_seed, service.flags, &pkt.flow);
    let Some(choice) = choose(&DataplaneMaps, service, hash, &pkt.flow, pkt.syn) else {
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
    let Some(backend) = BACKENDS.get(choice.backend as u32) else {
        return (xdp_action::XDP_DROP, outcome::DROP_NO_BACKEND);
    };

    // 4. Rewrite and 5. act. A backend on this very host gets the packet unchanged,
    // through the local stack; any other gets it with its MAC, out of the right port.
    let (action, result) = if backend.ifindex == IFINDEX_LOCAL {
        (xdp_action::XDP_PASS, outcome::FWD_LOCAL)
    } else {
        if !rewrite_macs(ctx, backend) {
            return (xdp_action::XDP_PASS, outcome::PASS_MALFORMED);
        }
        send(ctx, backend)
    };
    if action != xdp_action::XDP_DROP {
        let bytes = (ctx.data_end() - ctx.data()) as u64;
        add_traffic(&SERVICE_STATS, service.id, bytes, pkt.syn);
        add_traffic(&BACKEND_STATS, choice.backend as u32, bytes, pkt.syn);
    }
    (action, result)
}

/// Destination MAC := the backend's, source MAC := our egress interface's.
#[inline(always)]
fn rewrite_macs(ctx: &XdpContext, backend: &Backend) -> bool {
    let Some(macs) = parse::ptr_at::<[u32; 3]>(ctx, 0) else {
        return false;
    };
    // SAFETY: ptr_at checked the 12 bytes are inside the packet. `mac` and `src_mac` are
    // the first 12 bytes of the 4-aligned map value, in frame order: three word copies
    // (a [u8; 6] assignment compiles to a memmove call on the BPF target).
    unsafe { *macs = *(backend as *const Backend as *const [u32; 3]) };
    true
}

/// The service for a parsed packet: the exact (VIP, port, protocol), else the
/// whole-VIP service; a fragment goes to its VIP's fragment route (see
/// `lb_common::select::service_keys` and `frag_key`).
#[inline(always)]
fn find_service(pkt: &Parsed) -> Option<&'static ServiceTable> {
    // SAFETY (all lookups): SERVICES is not preallocated, so its elements are replaced,
    // never reused in place; FRAG_ROUTES values are copied out at once.
    if pkt.kind == Kind::Fragment {
        let route = unsafe { FRAG_ROUTES.get(frag_key(&pkt.flow)) }.copied()?;
        return unsafe { SERVICES.get(route) };
    }
    let (exact, whole_vip) = service_keys(&pkt.flow);
    if let Some(service) = unsafe { SERVICES.get(exact) } {
        return Some(service);
    }
    unsafe { SERVICES.get(whole_vip) }
}

/// `XDP_TX` when the backend is behind the ingress interface, else redirect.
#[inline(always)]
fn send(ctx: &XdpContext, backend: &Backend) -> (u32, u32) {
    if backend.ifindex == 0 || backend.ifindex == ctx.ingress_ifindex() as u32 {
        return (xdp_action::XDP_TX, outcome::FWD_TX);
    }
    match TX_PORTS.redirect(backend.ifindex, 0) {
        Ok(action) => (action, outcome::FWD_REDIRECT),
        Err(_) => (xdp_action::XDP_DROP, outcome::DROP_NO_ROUTE),
    }
}

/// [`FlowState`] over the live maps.
struct DataplaneMaps;

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

    #[inline(always)]
    fn remember(&self, key: &ConnKey, value: &ConnValue) -> bool {
        CONNS.insert(key, value, 0).is_ok()
    }

    #[inline(always)]
    fn now_ns(&self) -> u64 {
        // SAFETY: no preconditions.
        unsafe { bpf_ktime_get_ns() }
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

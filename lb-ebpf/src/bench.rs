//! The bench object `lb-bench`, for `cargo xtask bench` only: its own binary, so the
//! object lbd ships (`lb`) holds nothing but the balancer.
//! - `lb_macswap`: the baseline, the least a DR forwarder can do.
//! - `lb_bench_gen`: a traffic generator, run with live-frames `BPF_PROG_TEST_RUN`.
//! - `lb_bench_sink`: drops generated frames where they arrive, passes the rest.
//! - `lb_pass`: passes everything; the test labs put it on the bridge side of an LB
//!   node's veth (a veth delivers its peer's `XDP_TX` frames only to an XDP program).
//!
//! Written with word loads and stores, like the balancer, so comparisons are fair.
#![no_std]
#![no_main]

use aya_ebpf::{
    bindings::xdp_action, helpers::bpf_get_prandom_u32, macros::xdp, programs::XdpContext,
};
use lb_common::bench::{offsets, FRAME_LEN, MAGIC};
use lb_ebpf::access::{field as get, ptr_at, put};

/// Benchmark baseline: swap the MACs and send the frame back.
#[xdp]
pub fn lb_macswap(ctx: XdpContext) -> u32 {
    let Some(p) = ptr_at::<[u8; 12]>(&ctx, 0) else {
        return xdp_action::XDP_PASS;
    };
    let p = p as *mut u8;
    // SAFETY: ptr_at checked the 12 bytes are inside the packet.
    unsafe {
        let dst_hi: u32 = get(p, 0);
        let dst_lo: u16 = get(p, 4);
        let src_hi: u16 = get(p, 6);
        let src_lo: u32 = get(p, 8);
        put(p, 0, src_hi);
        put(p, 2, src_lo);
        put(p, 6, dst_hi);
        put(p, 10, dst_lo);
    }
    xdp_action::XDP_TX
}

/// Traffic generator: rewrite the frame from its trailer (MACs, then a random flow
/// within the trailer's mask) and transmit it. Frames without the trailer abort.
#[xdp]
pub fn lb_bench_gen(ctx: XdpContext) -> u32 {
    let Some(p) = ptr_at::<[u8; FRAME_LEN]>(&ctx, 0) else {
        return xdp_action::XDP_ABORTED;
    };
    let p = p as *mut u8;
    // SAFETY: ptr_at checked all FRAME_LEN bytes; every offset below is inside them.
    unsafe {
        if get::<u64>(p, offsets::MAGIC) != MAGIC {
            return xdp_action::XDP_ABORTED;
        }
        put(p, 0, get::<u32>(p, offsets::DST_MAC));
        put(p, 4, get::<u16>(p, offsets::DST_MAC + 4));
        put(p, 6, get::<u16>(p, offsets::SRC_MAC));
        put(p, 8, get::<u32>(p, offsets::SRC_MAC + 2));
        let r = bpf_get_prandom_u32() & get::<u32>(p, offsets::FLOW_MASK);
        // The address is in network order, so the high half of the native (little
        // endian) word holds its last two bytes.
        let ip = get::<u32>(p, offsets::BASE_IP) ^ (r & 0xffff_0000);
        put(p, offsets::SRC_IP, ip);
        let port = get::<u16>(p, offsets::BASE_PORT) ^ (r as u16);
        put(p, offsets::SRC_PORT, port);
    }
    xdp_action::XDP_TX
}

/// Sink: drop generated frames (they have been counted by the interface), pass the
/// rest (ARP, the controller's traffic).
#[xdp]
pub fn lb_bench_sink(ctx: XdpContext) -> u32 {
    match ptr_at::<u64>(&ctx, offsets::MAGIC) {
        // SAFETY: ptr_at checked the eight bytes.
        Some(p) if unsafe { get::<u64>(p as *const u8, 0) } == MAGIC => xdp_action::XDP_DROP,
        _ => xdp_action::XDP_PASS,
    }
}

/// Pass every frame, untouched and uncounted.
#[xdp]
pub fn lb_pass(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";

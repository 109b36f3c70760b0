//! The bench object `lb-bench`, for `cargo xtask bench` only: its own binary, so the
//! object lbd ships (`lb`) holds nothing but the balancer.
//! - `lb_macswap`: the baseline, the least a DR forwarder can do.
//! - `lb_bench_gen`: a traffic generator, run with live-frames `BPF_PROG_TEST_RUN`.
//! - `lb_bench_sink`: drops generated frames where they arrive, passes the rest.
//! - `lb_pass`: passes everything; the test labs put it on the bridge side of an LB
//!   node's veth (a veth delivers its peer's `XDP_TX` frames only to an XDP program),
//!   and the per-packet bench times it as the floor.
//! - `lb_bench_rotate`: with `BPF_PROG_TEST_RUN`, moves each run's frame to the next of
//!   many flows and tail-calls the balancer (or `lb_pass`), so a timed run visits more
//!   flows than the caches hold.
//!
//! Written with word loads and stores, like the balancer, so comparisons are fair.
#![no_std]
#![no_main]

use aya_ebpf::{
    bindings::xdp_action,
    helpers::bpf_get_prandom_u32,
    macros::{map, xdp},
    maps::ProgramArray,
    programs::XdpContext,
};
use lb_common::bench::{offsets, rotate, FRAME_LEN, MAGIC, ROTATE_FRAME_LEN};
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
/// within the trailer's mask, the IPv4 header checksum kept right) and transmit it.
/// Frames without the trailer abort.
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
        write_flow(p, r);
    }
    xdp_action::XDP_TX
}

/// Write flow `r` into the frame at `p` (all of [`FRAME_LEN`] checked): the last two
/// bytes of the source address := the trailer's base address's XOR `r`'s high 16 bits
/// (its first two are the base's: the frame is built from it), the source port := the
/// base port XOR its low 16, and the IPv4 header checksum updated for the new address
/// (RFC 1624), so the balancer, which verifies it, forwards the frame.
///
/// # Safety
/// `p` must point at [`FRAME_LEN`] bytes checked against the packet's end.
#[inline(always)]
unsafe fn write_flow(p: *mut u8, r: u32) {
    // SAFETY: every offset is inside FRAME_LEN, per the caller. The fields are in
    // network order, so the native (little-endian) u16 at SRC_IP + 2 holds the
    // address's last two bytes (the high half of the native word).
    unsafe {
        let old = get::<u16>(p, offsets::SRC_IP + 2);
        let new = get::<u16>(p, offsets::BASE_IP + 2) ^ ((r >> 16) as u16);
        put(p, offsets::SRC_IP + 2, new);
        put(
            p,
            offsets::SRC_PORT,
            get::<u16>(p, offsets::BASE_PORT) ^ (r as u16),
        );
        let mut sum = (!get::<u16>(p, offsets::IP_CHECKSUM)) as u32 + (!old) as u32 + new as u32;
        sum = (sum & 0xffff) + (sum >> 16);
        sum = (sum & 0xffff) + (sum >> 16);
        put(p, offsets::IP_CHECKSUM, !(sum as u16));
    }
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

/// Slot 0: the program the rotator hands each frame to.
#[map(name = "LB_BENCH_NEXT")]
static NEXT: ProgramArray = ProgramArray::with_max_entries(1, 0);

/// Flow rotator: advance the frame's flow counter ([`rotate`] within the trailer's
/// flow mask), write that flow into the frame as the generator writes its random
/// ones ([`write_flow`]), and tail-call `LB_BENCH_NEXT[0]`. Frames without the
/// trailer, or a missing slot, abort.
#[xdp]
pub fn lb_bench_rotate(ctx: XdpContext) -> u32 {
    let Some(p) = ptr_at::<[u8; ROTATE_FRAME_LEN]>(&ctx, 0) else {
        return xdp_action::XDP_ABORTED;
    };
    let p = p as *mut u8;
    // SAFETY: ptr_at checked all ROTATE_FRAME_LEN bytes; every offset below is inside.
    unsafe {
        if get::<u64>(p, offsets::MAGIC) != MAGIC {
            return xdp_action::XDP_ABORTED;
        }
        let r = rotate(
            get::<u32>(p, offsets::ROTATE_STATE),
            get::<u32>(p, offsets::FLOW_MASK),
        );
        put(p, offsets::ROTATE_STATE, r);
        write_flow(p, r);
        NEXT.tail_call(&ctx, 0);
    }
    xdp_action::XDP_ABORTED
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

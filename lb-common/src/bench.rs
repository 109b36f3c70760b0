//! The benchmark traffic generator's frame layout, shared by the generator and sink
//! programs (lb-ebpf) and `cargo xtask bench`, which builds the template frame.
//!
//! A generated frame is Ethernet + IPv4 (no options) + TCP (no options) + a
//! [`Trailer`] as the TCP payload. The trailer tells the generator what to write into
//! each frame (live-frames mode recycles frames without resetting them, and the load
//! balancer rewrote the MACs on the way), how many distinct flows to spread over, and
//! lets the sink recognise generated frames among ARP and other traffic.

/// Program names in the bench object `lb-bench` (built from lb-ebpf next to `lb`, and
/// never shipped in it).
pub mod programs {
    /// Baseline: swap the MACs, `XDP_TX`: the least a DR forwarder can do.
    pub const MACSWAP: &str = "lb_macswap";
    /// Traffic generator, run in live-frames mode (see [`super::Trailer`]).
    pub const GENERATOR: &str = "lb_bench_gen";
    /// Sink: drops generated frames, passes everything else.
    pub const SINK: &str = "lb_bench_sink";
    /// Passes everything (the labs' bridge-side veth peers; the per-packet floor).
    pub const PASS: &str = "lb_pass";
    /// Flow rotator for `BPF_PROG_TEST_RUN`: moves a generated frame to the next of
    /// many flows, then tail-calls the program in [`super::ROTATE_NEXT`] slot 0.
    pub const ROTATE: &str = "lb_bench_rotate";
}

/// The bench object's program array: slot 0 is what the rotator hands each frame to
/// (the balancer, or the floor `lb_pass`).
pub const ROTATE_NEXT: &str = "LB_BENCH_NEXT";

/// Length of a frame for the rotator: a generated frame ([`FRAME_LEN`]) and the
/// rotator's 4-byte flow counter after the trailer.
pub const ROTATE_FRAME_LEN: usize = FRAME_LEN + 4;

/// Where the trailer starts: Ethernet (14) + IPv4 without options (20) + TCP without
/// options (20).
pub const TRAILER_OFFSET: usize = 54;

/// Marks a generated frame: the trailer's first eight bytes.
pub const MAGIC: u64 = u64::from_ne_bytes(*b"lb-bench");

/// What the generator needs to (re)write each frame. Every field is in the order the
/// packet carries it (addresses and ports in network byte order).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trailer {
    /// [`MAGIC`].
    pub magic: u64,
    /// Destination MAC for every frame: the load balancer's interface.
    pub dst_mac: [u8; 6],
    /// Source MAC for every frame: the client.
    pub src_mac: [u8; 6],
    /// Base client IPv4 address (network order).
    pub src_ip: [u8; 4],
    /// Base client TCP port (network order).
    pub src_port: [u8; 2],
    /// Zero.
    pub _pad: u16,
    /// Random bits XORed into each frame's flow: the low 16 into the source port, the
    /// high 16 into the last two bytes of the source address. 0 sends one flow;
    /// 0xffff spreads over 65,536 flows; 0xf_ffff over 1,048,576.
    pub flow_mask: u32,
}

const _: () = assert!(core::mem::size_of::<Trailer>() == 32);

/// Length of a generated frame.
pub const FRAME_LEN: usize = TRAILER_OFFSET + core::mem::size_of::<Trailer>();

impl Trailer {
    /// The trailer as it sits in the frame.
    pub fn to_bytes(&self) -> [u8; 32] {
        // SAFETY: repr(C), 32 bytes (asserted above) of fields that sum to 32 bytes, so
        // there is no padding and every byte is initialised.
        unsafe { core::mem::transmute::<Trailer, [u8; 32]>(*self) }
    }
}

/// Byte offsets inside a generated frame that the generator reads and writes.
pub mod offsets {
    use super::{Trailer, TRAILER_OFFSET};
    use core::mem::offset_of;

    /// IPv4 source address (Ethernet 14 + its offset in the IPv4 header, 12).
    pub const SRC_IP: usize = 14 + 12;
    /// TCP source port (Ethernet 14 + IPv4 without options 20).
    pub const SRC_PORT: usize = 14 + 20;
    /// Trailer `magic`, from the frame's start.
    pub const MAGIC: usize = TRAILER_OFFSET + offset_of!(Trailer, magic);
    /// Trailer `dst_mac`.
    pub const DST_MAC: usize = TRAILER_OFFSET + offset_of!(Trailer, dst_mac);
    /// Trailer `src_mac`.
    pub const SRC_MAC: usize = TRAILER_OFFSET + offset_of!(Trailer, src_mac);
    /// Trailer `src_ip`.
    pub const BASE_IP: usize = TRAILER_OFFSET + offset_of!(Trailer, src_ip);
    /// Trailer `src_port`.
    pub const BASE_PORT: usize = TRAILER_OFFSET + offset_of!(Trailer, src_port);
    /// Trailer `flow_mask`.
    pub const FLOW_MASK: usize = TRAILER_OFFSET + offset_of!(Trailer, flow_mask);
    /// IPv4 header checksum (Ethernet 14 + 10).
    pub const IP_CHECKSUM: usize = 14 + 10;
    /// The rotator's flow counter (native order), right after the trailer.
    pub const ROTATE_STATE: usize = super::FRAME_LEN;
}

/// The rotator's next flow number after `state`, modulo `mask + 1` (a power of two): a
/// full-period linear congruential step, so the frames of a run visit every flow in
/// a scattered order (each flow's entries land on unrelated cache lines).
#[inline(always)]
pub const fn rotate(state: u32, mask: u32) -> u32 {
    state.wrapping_mul(5).wrapping_add(1) & mask
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rotator_visits_every_flow_once_per_period() {
        let mask = (1u32 << 16) - 1;
        let mut seen = vec![false; mask as usize + 1];
        let mut state = 0;
        for _ in 0..=mask {
            state = rotate(state, mask);
            assert!(!seen[state as usize], "flow {state} visited twice");
            seen[state as usize] = true;
        }
        assert_eq!(state, 0, "the period is the flow count");
    }

    #[test]
    fn trailer_bytes_follow_the_offsets() {
        let t = Trailer {
            magic: MAGIC,
            dst_mac: [1, 2, 3, 4, 5, 6],
            src_mac: [7, 8, 9, 10, 11, 12],
            src_ip: [10, 98, 0, 10],
            src_port: [0x9c, 0x40],
            _pad: 0,
            flow_mask: 0xf_ffff,
        };
        let b = t.to_bytes();
        let at = |o: usize| o - TRAILER_OFFSET;
        assert_eq!(&b[at(offsets::MAGIC)..at(offsets::MAGIC) + 8], b"lb-bench");
        assert_eq!(b[at(offsets::DST_MAC)], 1);
        assert_eq!(b[at(offsets::SRC_MAC)], 7);
        assert_eq!(
            b[at(offsets::BASE_IP)..at(offsets::BASE_IP) + 4],
            [10, 98, 0, 10]
        );
        assert_eq!(b[at(offsets::BASE_PORT)], 0x9c);
        assert_eq!(
            u32::from_ne_bytes(b[at(offsets::FLOW_MASK)..].try_into().unwrap()),
            0xf_ffff
        );
    }
}

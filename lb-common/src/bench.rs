//! The benchmark traffic generator's frame layout, shared by the generator and sink
//! programs (lb-ebpf) and `cargo xtask bench`, which builds the template frame.
//!
//! A generated frame is Ethernet + IPv4 (no options) + TCP (no options) + a
//! [`Trailer`] as the TCP payload. The trailer tells the generator what to write into
//! each frame (live-frames mode recycles frames without resetting them, and the load
//! balancer rewrote the MACs on the way), how many distinct flows to spread over, and
//! lets the sink recognise generated frames among ARP and other traffic.

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
        let mut out = [0u8; 32];
        out[..8].copy_from_slice(&self.magic.to_ne_bytes());
        out[8..14].copy_from_slice(&self.dst_mac);
        out[14..20].copy_from_slice(&self.src_mac);
        out[20..24].copy_from_slice(&self.src_ip);
        out[24..26].copy_from_slice(&self.src_port);
        out[26..28].copy_from_slice(&self._pad.to_ne_bytes());
        out[28..32].copy_from_slice(&self.flow_mask.to_ne_bytes());
        out
    }
}

/// Byte offsets inside a generated frame that the generator reads and writes.
pub mod offsets {
    /// IPv4 source address.
    pub const SRC_IP: usize = 26;
    /// TCP source port.
    pub const SRC_PORT: usize = 34;
    /// Trailer fields, from the frame's start.
    pub const MAGIC: usize = super::TRAILER_OFFSET;
    /// Trailer `dst_mac`.
    pub const DST_MAC: usize = super::TRAILER_OFFSET + 8;
    /// Trailer `src_mac`.
    pub const SRC_MAC: usize = super::TRAILER_OFFSET + 14;
    /// Trailer `src_ip`.
    pub const BASE_IP: usize = super::TRAILER_OFFSET + 20;
    /// Trailer `src_port`.
    pub const BASE_PORT: usize = super::TRAILER_OFFSET + 24;
    /// Trailer `flow_mask`.
    pub const FLOW_MASK: usize = super::TRAILER_OFFSET + 28;
}

#[cfg(test)]
mod tests {
    use super::*;

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

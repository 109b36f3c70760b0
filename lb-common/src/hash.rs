//! The flow hash. The XDP program and the controller must compute identical values for
//! the same flow (and every LB node must too, so flows survive failover), so it is
//! defined over numeric values (addresses as big-endian words, ports in host order),
//! independent of the machine's byte order.

/// The address-words of an address as they sit in a packet or a map key
/// (`u32::from_ne_bytes` of each 4 bytes), turned into numeric big-endian words.
#[inline(always)]
fn be(word: u32) -> u32 {
    u32::from_be(word)
}

#[inline(always)]
fn mix(h: u32, w: u32) -> u32 {
    let k = w
        .wrapping_mul(0xcc9e_2d51)
        .rotate_left(15)
        .wrapping_mul(0x1b87_3593);
    (h ^ k)
        .rotate_left(13)
        .wrapping_mul(5)
        .wrapping_add(0xe654_6b64)
}

#[inline(always)]
fn finish(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

/// Hash of a flow: source and destination address words (network layout, as in
/// [`crate::maps::ConnKey`]), ports in host order, IP protocol, and the cluster-wide seed.
///
/// Fragments and source-hash services pass zero ports (and, for source-hash, a zero
/// destination) so every packet of the group lands on one slot.
#[inline(always)]
pub fn flow_hash(
    seed: u32,
    src: &[u32; 4],
    dst: &[u32; 4],
    sport: u16,
    dport: u16,
    proto: u8,
) -> u32 {
    let mut h = seed;
    h = mix(h, be(src[0]));
    h = mix(h, be(src[1]));
    h = mix(h, be(src[2]));
    h = mix(h, be(src[3]));
    h = mix(h, be(dst[0]));
    h = mix(h, be(dst[1]));
    h = mix(h, be(dst[2]));
    h = mix(h, be(dst[3]));
    h = mix(h, ((sport as u32) << 16) | dport as u32);
    h = mix(h, proto as u32);
    finish(h ^ 40)
}

/// A 64-bit hash of arbitrary bytes (FNV-1a then a finaliser), used by the Maglev
/// builder for a backend's offset/skip. Stable across machines and releases.
#[inline]
pub fn bytes_hash64(seed: u64, bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed;
    for b in bytes {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Recorded once; a change here moves every flow on mixed-version clusters.
    const PINNED: u32 = 0x10ad_2dc6;

    #[test]
    fn flow_hash_is_stable() {
        // Pinned value: changing the hash breaks flow placement across mixed-version nodes.
        let src = [
            0,
            0,
            u32::from_ne_bytes([0, 0, 0xff, 0xff]),
            u32::from_ne_bytes([10, 0, 0, 1]),
        ];
        let dst = [
            0,
            0,
            u32::from_ne_bytes([0, 0, 0xff, 0xff]),
            u32::from_ne_bytes([10, 0, 0, 100]),
        ];
        let h = flow_hash(7, &src, &dst, 40000, 443, 6);
        assert_eq!(h, flow_hash(7, &src, &dst, 40000, 443, 6));
        assert_ne!(h, flow_hash(8, &src, &dst, 40000, 443, 6));
        assert_ne!(h, flow_hash(7, &src, &dst, 40001, 443, 6));
        assert_ne!(h, flow_hash(7, &dst, &src, 40000, 443, 6));
        assert_eq!(h, PINNED);
    }

    #[test]
    fn bytes_hash_depends_on_seed_and_input() {
        assert_ne!(bytes_hash64(0, b"a"), bytes_hash64(1, b"a"));
        assert_ne!(bytes_hash64(0, b"a"), bytes_hash64(0, b"b"));
    }
}

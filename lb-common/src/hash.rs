//! The flow hash. The XDP program and the controller must compute identical values for
//! the same flow (and every LB node must too, so flows survive failover), so it is
//! defined over numeric values (addresses as big-endian words, ports in host order),
//! independent of the machine's byte order.

#[inline(always)]
fn pair(hi: u32, lo: u32) -> u64 {
    ((u32::from_be(hi) as u64) << 32) | u32::from_be(lo) as u64
}

/// One absorb step: xor the word in, multiply, fold the high half down.
#[inline(always)]
fn absorb(h: u64, word: u64) -> u64 {
    let x = (h ^ word).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    x ^ (x >> 29)
}

/// Final avalanche (murmur3 fmix64).
#[inline(always)]
fn finish(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// Hash of a flow: source and destination address words (network layout, as in
/// [`crate::maps::ConnKey`]), ports in host order, IP protocol, and the cluster-wide seed.
/// Addresses are hashed as numbers (big-endian words), so the value does not depend on
/// the machine's byte order. Two IPv4-mapped addresses hash only their IPv4 words,
/// which keeps the common case short.
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
    let ports = ((sport as u64) << 24) | ((dport as u64) << 8) | proto as u64;
    let mut h = (seed as u64) ^ 0x6c62_2d66_6c6f_7768;
    if src[0] | src[1] | dst[0] | dst[1] == 0 && src[2] == dst[2] {
        h = absorb(
            h,
            pair(src[3], dst[3]) ^ ((u32::from_be(src[2]) as u64) << 7),
        );
    } else {
        h = absorb(h, pair(src[0], src[1]));
        h = absorb(h, pair(src[2], src[3]));
        h = absorb(h, pair(dst[0], dst[1]));
        h = absorb(h, pair(dst[2], dst[3]));
    }
    h = absorb(h, ports);
    (finish(h) >> 32) as u32
}

/// Map a 32-bit hash onto `0..n` without a division (Lemire's multiply-shift): the
/// Maglev slot of a flow. Uniform for uniform hashes; used identically by the data
/// plane and the controller.
#[inline(always)]
pub const fn reduce(hash: u32, n: u32) -> u32 {
    ((hash as u64 * n as u64) >> 32) as u32
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
    finish(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Recorded once; a change here moves every flow on mixed-version clusters.
    const PINNED: u32 = 0xc0b6_2ea1;

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
        assert_eq!(h, PINNED, "{h:#x}");
    }

    #[test]
    fn reduce_stays_in_range_and_spreads() {
        let n = 65537;
        let mut hits = vec![0u32; 16];
        for i in 0..100_000u32 {
            let h = flow_hash(1, &[0, 0, 0, i], &[0, 0, 0, 7], (i % 50_000) as u16, 80, 6);
            let slot = reduce(h, n);
            assert!(slot < n);
            hits[(slot as usize * 16) / n as usize] += 1;
        }
        // 16 buckets of ~6250: uniform within 10%.
        assert!(hits.iter().all(|c| (5600..6900).contains(c)), "{hits:?}");
    }

    #[test]
    fn ipv6_and_ipv4_hash_differently_for_same_low_words() {
        let v4 = [0, 0, u32::from_ne_bytes([0, 0, 0xff, 0xff]), 5];
        let v6 = [1, 0, u32::from_ne_bytes([0, 0, 0xff, 0xff]), 5];
        assert_ne!(
            flow_hash(1, &v4, &v4, 1, 2, 6),
            flow_hash(1, &v6, &v6, 1, 2, 6)
        );
    }

    #[test]
    fn bytes_hash_depends_on_seed_and_input() {
        assert_ne!(bytes_hash64(0, b"a"), bytes_hash64(1, b"a"));
        assert_ne!(bytes_hash64(0, b"a"), bytes_hash64(0, b"b"));
    }
}

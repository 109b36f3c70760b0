//! Malformed input never crashes, aborts or mis-forwards: every truncation of every
//! valid fixture frame, and many random and mutated frames, run through the real
//! program. A forwarded frame must be one an independent parser (etherparse) sees as
//! addressed to a VIP, have been addressed to the LB's MAC, come out with only its MACs
//! changed (so its VLAN tag intact), have valid lengths and IPv4 header checksum
//! ([`headers_valid`]), and, when truncated, still hold every header the program
//! needed. Needs root.

use std::net::IpAddr;

use etherparse::{LaxNetSlice, LaxSlicedPacket};
use lb_common::maps::{proto, BACKEND_UP};
use lb_tests::{
    action, backend_mac,
    packet::{with_macs, Packet, LB_MAC},
    Fixture,
};
use rand::{rngs::StdRng, Rng, SeedableRng};

const VIPS: [&str; 3] = ["198.51.100.10", "198.51.100.20", "2001:db8::10"];

fn fixture() -> Fixture {
    let mut f = Fixture::with_table_size(251);
    for i in 0..3 {
        f.backend_state(i, BACKEND_UP, 1);
    }
    let all = [(0, 1), (1, 1), (2, 1)];
    f.service("198.51.100.10", 80, proto::TCP, 0, 0, &all);
    f.service("198.51.100.10", 53, proto::UDP, 1, 0, &all);
    f.fragment_route("198.51.100.10", proto::UDP, 53);
    f.service("198.51.100.20", 0, proto::TCP, 2, 0, &all);
    f.service("2001:db8::10", 443, proto::TCP, 3, 0, &all);
    f.fragment_route("2001:db8::10", proto::UDP, 53);
    f.service("2001:db8::10", 53, proto::UDP, 4, 0, &all);
    f
}

/// Valid frames the program forwards, each with the length of the headers it reads.
fn valid_frames() -> Vec<(Vec<u8>, usize)> {
    let reply = Packet::tcp("198.51.100.10:80", "192.0.2.1:40000").syn_ack();
    let reply6 = Packet::tcp("[2001:db8::10]:443", "[2001:db8:1::1]:40000").syn_ack();
    vec![
        (
            Packet::tcp("192.0.2.1:40000", "198.51.100.10:80")
                .syn()
                .build(),
            14 + 20 + 20,
        ),
        (
            Packet::tcp("192.0.2.1:40000", "198.51.100.10:80")
                .payload(b"hello")
                .build(),
            14 + 20 + 20,
        ),
        (
            Packet::tcp("192.0.2.1:40000", "198.51.100.10:80")
                .ipv4_options(&[1; 12])
                .build(),
            14 + 32 + 20,
        ),
        (
            Packet::tcp("192.0.2.1:40000", "198.51.100.10:80")
                .vlan(5)
                .build(),
            18 + 20 + 20,
        ),
        (
            Packet::udp("192.0.2.1:40000", "198.51.100.10:53")
                .payload(b"q")
                .build(),
            14 + 20 + 8,
        ),
        (
            Packet::tcp("192.0.2.1:40000", "198.51.100.20:9999").build(),
            14 + 20 + 20,
        ),
        (
            Packet::udp("192.0.2.1:40000", "198.51.100.10:53")
                .payload(&[1; 16])
                .fragment(8, true)
                .build(),
            14 + 20,
        ),
        (
            Packet::tcp("[2001:db8:1::1]:40000", "[2001:db8::10]:443")
                .syn()
                .build(),
            14 + 40 + 20,
        ),
        (
            Packet::udp("[2001:db8:1::1]:40000", "[2001:db8::10]:53")
                .vlan(9)
                .build(),
            18 + 40 + 8,
        ),
        (
            Packet::udp("[2001:db8:1::1]:4", "[2001:db8::10]:53")
                .payload(&[2; 16])
                .fragment(16, false)
                .build(),
            14 + 40 + 8,
        ),
        (
            Packet::icmp_too_big("203.0.113.1", &reply, 1400).build(),
            14 + 20 + 8 + 20 + 4,
        ),
        (
            Packet::icmp_too_big("2001:db8:ffff::1", &reply6, 1280).build(),
            14 + 40 + 8 + 40 + 4,
        ),
    ]
}

/// Check one run of `frame`; `min_len` = bytes of headers a forward requires (0 = any).
fn check(f: &Fixture, frame: &[u8], min_len: usize) -> u32 {
    let out = f.run(frame);
    assert_ne!(out.action, action::ABORTED, "XDP_ABORTED for {frame:02x?}");
    match out.action {
        action::PASS | action::DROP => {
            assert_eq!(out.packet, frame, "passed/dropped frames are untouched")
        }
        action::TX => {
            assert!(
                frame.len() >= min_len,
                "forwarded a frame cut inside its headers ({} < {min_len})",
                frame.len()
            );
            let backend = u16::from_be_bytes([out.packet[4], out.packet[5]]);
            assert!(
                backend < 3,
                "forwarded to an unknown MAC: {:02x?}",
                &out.packet[..6]
            );
            assert_eq!(out.packet, with_macs(frame, backend_mac(backend), LB_MAC));
            assert_eq!(
                frame[..6],
                LB_MAC,
                "forwarded a frame not addressed to the LB"
            );
            if let Err(why) = headers_valid(frame) {
                panic!("forwarded a malformed frame ({why}): {frame:02x?}");
            }
            let dst = match LaxSlicedPacket::from_ethernet(frame)
                .ok()
                .and_then(|p| p.net)
            {
                Some(LaxNetSlice::Ipv4(ip)) => IpAddr::V4(ip.header().destination_addr()),
                Some(LaxNetSlice::Ipv6(ip)) => IpAddr::V6(ip.header().destination_addr()),
                other => panic!("forwarded a frame that is not IP: {other:?} {frame:02x?}"),
            };
            assert!(
                VIPS.iter().any(|v| v.parse::<IpAddr>().unwrap() == dst),
                "forwarded a frame for {dst}, not a VIP"
            );
        }
        other => panic!("unexpected action {other}"),
    }
    out.action
}

/// The oracle's own reading of a frame's lengths and checksum, written from the RFCs
/// (not from the program): Ethernet with at most one tag; IPv4 with a correct header
/// checksum and a total length between its header and the frame's end, or IPv6 with
/// its payload inside the frame; then, unless this is a later fragment, a TCP header
/// whose data offset is 5..=15 words inside the IP packet, or a UDP header inside it
/// (and, unless fragmented, a UDP length from 8 to the IP packet's end).
fn headers_valid(frame: &[u8]) -> Result<(), String> {
    let be16 = |at: usize| -> Result<usize, String> {
        frame
            .get(at..at + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]) as usize)
            .ok_or_else(|| format!("cut at {at}"))
    };
    let (mut l3, mut ether_type) = (14, be16(12)?);
    if ether_type == 0x8100 || ether_type == 0x88a8 {
        ether_type = be16(16)?;
        l3 = 18;
    }
    let (l4, ip_end, proto, fragment, first) = match ether_type {
        0x0800 => {
            let ihl = (*frame.get(l3).ok_or("no IPv4 header")? & 0x0f) as usize * 4;
            let header = frame.get(l3..l3 + ihl).ok_or("IPv4 header cut")?;
            let mut sum: u32 = header
                .chunks(2)
                .map(|w| u16::from_be_bytes([w[0], w[1]]) as u32)
                .sum();
            while sum >> 16 != 0 {
                sum = (sum & 0xffff) + (sum >> 16);
            }
            if sum != 0xffff {
                return Err(format!("IPv4 checksum sums to {sum:#x}"));
            }
            let total = be16(l3 + 2)?;
            if total < ihl || l3 + total > frame.len() {
                return Err(format!("IPv4 total length {total}"));
            }
            let frag = be16(l3 + 6)?;
            (
                l3 + ihl,
                l3 + total,
                frame[l3 + 9],
                frag & 0x3fff != 0,
                frag & 0x1fff == 0,
            )
        }
        0x86dd => {
            let ip_end = l3 + 40 + be16(l3 + 4)?;
            if ip_end > frame.len() {
                return Err(format!("IPv6 payload ends at {ip_end}"));
            }
            match frame[l3 + 6] {
                44 => (
                    l3 + 48,
                    ip_end,
                    frame[l3 + 40],
                    true,
                    be16(l3 + 42)? >> 3 == 0,
                ),
                next => (l3 + 40, ip_end, next, false, true),
            }
        }
        // ICMP errors and the like are the caller's business; only IP is forwarded.
        other => return Err(format!("ethertype {other:#x}")),
    };
    if !first {
        return Ok(());
    }
    match proto {
        6 => {
            let doff = (*frame.get(l4 + 12).ok_or("TCP header cut")? >> 4) as usize;
            if doff < 5 || l4 + doff * 4 > ip_end {
                return Err(format!("TCP data offset {doff}"));
            }
        }
        17 => {
            let len = be16(l4 + 4)?;
            if l4 + 8 > ip_end || (!fragment && (len < 8 || l4 + len > ip_end)) {
                return Err(format!("UDP length {len}"));
            }
        }
        _ => {}
    }
    Ok(())
}

#[test]
fn every_truncation_of_every_fixture_is_handled() {
    let f = fixture();
    for (frame, min_len) in valid_frames() {
        assert_eq!(
            check(&f, &frame, min_len),
            action::TX,
            "the whole fixture forwards: {frame:02x?}"
        );
        for len in 14..frame.len() {
            check(&f, &frame[..len], min_len);
        }
        // Below an Ethernet header the kernel refuses the run before the program.
        for len in 0..14 {
            assert!(f.dp.test_run(&frame[..len], 1).is_err());
        }
    }
}

/// `name` from the environment, else `default` (`cargo xtask fuzz` sets them).
fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// 12,000 frames by default; `cargo xtask fuzz` runs a million (LB_FUZZ_FRAMES,
/// LB_FUZZ_SEED, and a time budget LB_FUZZ_SECONDS).
#[test]
fn random_and_mutated_frames_never_abort_or_misforward() {
    let seed = env_or("LB_FUZZ_SEED", 0x1b_5eed);
    let frames = env_or("LB_FUZZ_FRAMES", 12_000);
    let budget = std::time::Duration::from_secs(env_or("LB_FUZZ_SECONDS", 600));
    let started = std::time::Instant::now();
    let mut rng = StdRng::seed_from_u64(seed);
    let f = fixture();
    let valid = valid_frames();
    let (mut forwarded, mut runs) = (0u64, 0u64);
    for i in 0..frames {
        if started.elapsed() > budget {
            break;
        }
        let frame: Vec<u8> = if i % 3 == 0 {
            // Random bytes behind a plausible Ethernet header.
            let len = rng.gen_range(14..160);
            let mut fr: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
            let et: [u8; 2] = match rng.gen_range(0..4) {
                0 => [0x08, 0x00],
                1 => [0x86, 0xdd],
                2 => [0x81, 0x00],
                _ => [fr[12], fr[13]],
            };
            fr[12..14].copy_from_slice(&et);
            fr
        } else {
            // A valid frame with 1..4 bytes mutated and maybe cut short.
            let (base, _) = &valid[rng.gen_range(0..valid.len())];
            let mut fr = base.clone();
            for _ in 0..rng.gen_range(1..=4) {
                let at = rng.gen_range(12..fr.len());
                fr[at] = rng.gen();
            }
            if rng.gen_bool(0.2) {
                let cut = rng.gen_range(14..=fr.len());
                fr.truncate(cut);
            }
            fr
        };
        // Mutation may invalidate headers; the requirement is only that a forward is
        // to a VIP with only MACs changed (min_len 0: the oracle checks the address).
        if check(&f, &frame, 0) == action::TX {
            forwarded += 1;
        }
        runs += 1;
    }
    println!("{runs} frames (seed {seed:#x}), {forwarded} forwarded, all checked");
    assert!(
        forwarded > runs / 120,
        "the mutated corpus still exercises forwarding ({forwarded}/{runs}, seed {seed:#x})"
    );
}

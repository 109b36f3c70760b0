//! Bad input at the data plane, each case a crafted frame through BPF_PROG_TEST_RUN
//! with its exact action, bytes and counter: fragments of datagrams to unserved ports,
//! frames not addressed to the LB, VLAN tags that cannot leave intact, and malformed
//! IPv4/IPv6/TCP/UDP headers. Needs root (loads BPF programs).

use lb_common::maps::{outcome, proto, Backend, BACKEND_UP};
use lb_tests::{action, backend_mac, packet::Packet, Fixture};

const VIP4: &str = "198.51.100.10";
const VIP6: &str = "2001:db8::10";

/// Backends 0..3 behind VIP4:80/tcp, VIP4:53/udp and [VIP6]:443/tcp, fragments of each
/// (VIP, protocol) routed to those services.
fn fixture() -> Fixture {
    let mut f = Fixture::new();
    for i in 0..3 {
        f.backend_state(i, BACKEND_UP, 1);
    }
    let all = [(0, 1), (1, 1), (2, 1)];
    f.service(VIP4, 80, proto::TCP, 0, 0, &all);
    f.fragment_route(VIP4, proto::TCP, 80);
    f.service(VIP4, 53, proto::UDP, 1, 0, &all);
    f.fragment_route(VIP4, proto::UDP, 53);
    f.service(VIP6, 443, proto::TCP, 2, 0, &all);
    f.fragment_route(VIP6, proto::TCP, 443);
    f
}

/// A new TCP connection to the web service VIP4:80, to be built or changed.
fn syn_to_web() -> Packet {
    Packet::tcp("192.0.2.1:40000", "198.51.100.10:80").syn()
}

/// Assert `frame` is passed untouched and counted as `why` (once more than before).
fn expect_pass(f: &Fixture, frame: &[u8], why: u32, what: &str) {
    let before = f.counter(why);
    let out = f.run(frame);
    assert_eq!(out.action, action::PASS, "{what}: action");
    assert_eq!(out.packet, frame, "{what}: a passed frame is untouched");
    assert_eq!(f.counter(why), before + 1, "{what}: counted");
}

/// Recompute the IPv4 header checksum of `frame` (header at `l3`).
fn fix_ipv4_checksum(frame: &mut [u8], l3: usize) {
    let ihl = (frame[l3] & 0x0f) as usize * 4;
    frame[l3 + 10..l3 + 12].fill(0);
    let mut sum: u32 = frame[l3..l3 + ihl]
        .chunks(2)
        .map(|w| u16::from_be_bytes([w[0], w[1]]) as u32)
        .sum();
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    frame[l3 + 10..l3 + 12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
}

/// Set the IPv4 total length of `frame` (header at offset 14) and fix the checksum.
fn set_total_length(frame: &mut [u8], total: u16) {
    frame[16..18].copy_from_slice(&total.to_be_bytes());
    fix_ipv4_checksum(frame, 14);
}

// ----- 1. fragments -----

#[test]
fn a_fragmented_datagram_to_an_unserved_port_is_not_forwarded() {
    let f = fixture();
    // TCP SYN to VIP:2222 (no service), fragmented: the first fragment names the port.
    let first = Packet::tcp("192.0.2.1:40000", "198.51.100.10:2222")
        .syn()
        .payload(&[0; 16])
        .fragment(0, true)
        .build();
    expect_pass(
        &f,
        &first,
        outcome::PASS_NOT_VIP,
        "TCP first fragment to :2222",
    );
    let udp = Packet::udp("192.0.2.1:40000", "198.51.100.10:5353")
        .payload(&[0; 32])
        .fragment(0, true)
        .build();
    expect_pass(
        &f,
        &udp,
        outcome::PASS_NOT_VIP,
        "UDP first fragment to :5353",
    );
    let v6 = Packet::tcp("[2001:db8:1::1]:40000", "[2001:db8::10]:2222")
        .syn()
        .payload(&[0; 16])
        .fragment(0, true)
        .build();
    expect_pass(
        &f,
        &v6,
        outcome::PASS_NOT_VIP,
        "IPv6 first fragment to :2222",
    );
    assert_eq!(f.counter(outcome::FRAGMENT), 0, "none routed");
}

#[test]
fn a_fragmented_datagram_to_a_served_port_reaches_one_backend() {
    let f = fixture();
    let first = Packet::tcp("192.0.2.1:40000", "198.51.100.10:80")
        .payload(&[1; 16])
        .fragment(0, true)
        .build();
    let later = Packet::tcp("192.0.2.1:40000", "198.51.100.10:80")
        .payload(&[2; 16])
        .fragment(40, false)
        .build();
    let b = f.forwarded_to(&first);
    assert_eq!(f.forwarded_to(&later), b);
    let first6 = Packet::tcp("[2001:db8:1::1]:40000", "[2001:db8::10]:443")
        .payload(&[1; 16])
        .fragment(0, true)
        .build();
    let later6 = Packet::tcp("[2001:db8:1::1]:40000", "[2001:db8::10]:443")
        .payload(&[2; 16])
        .fragment(40, false)
        .build();
    assert_eq!(f.forwarded_to(&first6), f.forwarded_to(&later6));
    assert_eq!(f.counter(outcome::FRAGMENT), 4);
}

#[test]
fn a_whole_vip_service_takes_first_fragments_to_any_port() {
    let mut f = fixture();
    f.service("198.51.100.20", 0, proto::TCP, 3, 0, &[(0, 1), (1, 1)]);
    f.fragment_route("198.51.100.20", proto::TCP, 0);
    let first = Packet::tcp("192.0.2.1:40000", "198.51.100.20:2222")
        .payload(&[1; 16])
        .fragment(0, true)
        .build();
    f.forwarded_to(&first);
}

#[test]
fn a_first_fragment_too_short_for_its_transport_header_is_malformed() {
    let f = fixture();
    // RFC 1858's tiny fragment: offset 0, more fragments, 8 bytes of TCP header.
    let mut tiny = syn_to_web().fragment(0, true).build();
    tiny.truncate(14 + 20 + 8);
    set_total_length(&mut tiny, 28);
    expect_pass(
        &f,
        &tiny,
        outcome::PASS_MALFORMED,
        "8-byte TCP first fragment",
    );
}

// ----- 2. frames not addressed to the LB -----

#[test]
fn frames_not_addressed_to_the_lb_are_passed() {
    let f = fixture();
    for (dst, what) in [
        ([0xff; 6], "broadcast"),
        ([0x01, 0x00, 0x5e, 0x00, 0x00, 0x01], "multicast"),
        (
            [0x02, 0x99, 0x00, 0x00, 0x00, 0x01],
            "another host (unknown unicast)",
        ),
    ] {
        let frame = syn_to_web()
            .macs([0x02, 0xc1, 0x1e, 0x47, 0x00, 0x01], dst)
            .build();
        expect_pass(&f, &frame, outcome::PASS_NOT_FOR_US, what);
        let udp = Packet::udp("192.0.2.1:40000", "198.51.100.10:53")
            .macs([0x02, 0xc1, 0x1e, 0x47, 0x00, 0x01], dst)
            .build();
        expect_pass(&f, &udp, outcome::PASS_NOT_FOR_US, what);
    }
    // The same SYN addressed to the LB is forwarded.
    let ours = syn_to_web().build();
    f.forwarded_to(&ours);
}

#[test]
fn a_redirect_checks_the_ingress_interface_mac() {
    let mut f = fixture();
    // Every backend behind another interface (not in the devmap: a forward is a drop).
    let b = Backend {
        mac: backend_mac(0),
        src_mac: [0x02, 0x1b, 0x00, 0x00, 0x00, 0x02],
        ifindex: 999,
        state: BACKEND_UP,
        gen: 1,
        service: 0,
        addr: [0; 4],
    };
    for i in 0..3 {
        f.dp.set_backend(
            i,
            &Backend {
                mac: backend_mac(i),
                ..b
            },
        )
        .unwrap();
    }
    let stranger = syn_to_web()
        .macs([0x02, 0xc1, 0x1e, 0x47, 0x00, 0x01], [0xff; 6])
        .build();
    expect_pass(
        &f,
        &stranger,
        outcome::PASS_NOT_FOR_US,
        "broadcast, redirect",
    );
    let ours = syn_to_web().build();
    assert_eq!(f.run(&ours).action, action::DROP, "ours: on to the devmap");
    assert_eq!(f.counter(outcome::DROP_NO_ROUTE), 1);
    // A tagged frame is never redirected: its tag means nothing on another link.
    let tagged = syn_to_web().vlan(42).build();
    expect_pass(&f, &tagged, outcome::PASS_NOT_FOR_US, "tagged, redirect");
}

// ----- 3. VLAN tags -----

#[test]
fn a_tagged_frame_goes_back_out_with_its_tag_and_qinq_is_passed() {
    let f = fixture();
    let tagged = syn_to_web().vlan(42).build();
    // forwarded_to checks the whole frame: only the MACs changed, the tag is intact.
    f.forwarded_to(&tagged);
    assert_eq!(
        &f.run(&tagged).packet[12..16],
        &tagged[12..16],
        "tag intact"
    );
    // 802.1ad outer tag, 802.1Q inner tag: not parsed, passed.
    let mut qinq = tagged[..12].to_vec();
    qinq.extend_from_slice(&[0x88, 0xa8, 0x00, 0x07]);
    qinq.extend_from_slice(&tagged[12..]);
    expect_pass(&f, &qinq, outcome::PASS_NOT_IP, "QinQ");
}

// ----- 4. malformed headers -----

#[test]
fn malformed_ipv4_headers_are_passed_and_counted() {
    let f = fixture();
    let syn = syn_to_web().build();
    f.forwarded_to(&syn);

    let mut long = syn.clone();
    set_total_length(&mut long, 41 + 20);
    expect_pass(
        &f,
        &long,
        outcome::PASS_MALFORMED,
        "total length beyond the frame",
    );

    let mut short = syn.clone();
    set_total_length(&mut short, 19);
    expect_pass(
        &f,
        &short,
        outcome::PASS_MALFORMED,
        "total length below the header",
    );

    let mut bad_sum = syn.clone();
    bad_sum[24] ^= 0x01;
    expect_pass(&f, &bad_sum, outcome::PASS_MALFORMED, "bad header checksum");

    let mut options = Packet::tcp("192.0.2.1:40000", "198.51.100.10:80")
        .ipv4_options(&[1; 12])
        .build();
    f.forwarded_to(&options);
    options[14 + 20] ^= 0x80;
    expect_pass(
        &f,
        &options,
        outcome::PASS_MALFORMED,
        "bad checksum over options",
    );
}

#[test]
fn ethernet_padding_after_the_ip_packet_is_fine() {
    let f = fixture();
    // A 54-byte SYN padded to the 60-byte Ethernet minimum, as NICs deliver it.
    let mut padded = syn_to_web().build();
    assert_eq!(padded.len(), 54);
    padded.resize(60, 0);
    f.forwarded_to(&padded);
    let mut udp = Packet::udp("192.0.2.1:40000", "198.51.100.10:53").build();
    udp.resize(60, 0);
    f.forwarded_to(&udp);
}

#[test]
fn malformed_tcp_and_udp_headers_are_passed_and_counted() {
    let f = fixture();
    let syn = syn_to_web().build();
    for (doff, what) in [
        (4u8, "TCP data offset 4"),
        (6, "TCP data offset beyond the packet"),
    ] {
        let mut bad = syn.clone();
        bad[14 + 20 + 12] = doff << 4;
        expect_pass(&f, &bad, outcome::PASS_MALFORMED, what);
    }
    // Data offset within the frame's padding but beyond the IP packet.
    let mut padded = syn.clone();
    padded.resize(80, 0);
    padded[14 + 20 + 12] = 6 << 4;
    expect_pass(
        &f,
        &padded,
        outcome::PASS_MALFORMED,
        "TCP options in the padding",
    );

    let udp = Packet::udp("192.0.2.1:40000", "198.51.100.10:53")
        .payload(b"query")
        .build();
    f.forwarded_to(&udp);
    for (len, what) in [
        (7u16, "UDP length below 8"),
        (14, "UDP length beyond the packet"),
    ] {
        let mut bad = udp.clone();
        bad[14 + 20 + 4..14 + 20 + 6].copy_from_slice(&len.to_be_bytes());
        expect_pass(&f, &bad, outcome::PASS_MALFORMED, what);
    }
}

#[test]
fn an_ipv6_payload_length_beyond_the_frame_is_malformed() {
    let f = fixture();
    let syn = Packet::tcp("[2001:db8:1::1]:40000", "[2001:db8::10]:443")
        .syn()
        .build();
    f.forwarded_to(&syn);
    let mut long = syn.clone();
    long[18..20].copy_from_slice(&21u16.to_be_bytes());
    expect_pass(
        &f,
        &long,
        outcome::PASS_MALFORMED,
        "IPv6 payload length 21 > 20",
    );
    let mut zero = syn.clone();
    zero[18..20].copy_from_slice(&0u16.to_be_bytes());
    expect_pass(&f, &zero, outcome::PASS_MALFORMED, "IPv6 payload length 0");
    let mut padded = syn;
    padded.resize(100, 0);
    f.forwarded_to(&padded);
}

// ----- the VIP filter -----

#[test]
fn removing_a_service_keeps_the_others_reachable() {
    let mut f = fixture();
    f.service("198.51.100.30", 80, proto::TCP, 3, 0, &[(0, 1)]);
    let to30 = Packet::tcp("192.0.2.1:40000", "198.51.100.30:80")
        .syn()
        .build();
    assert_eq!(f.forwarded_to(&to30), 0);
    let key = |vip: &str, port| lb_common::maps::ServiceKey {
        vip: lb_tests::words(vip),
        port,
        proto: proto::TCP,
        _pad: 0,
    };
    f.dp.remove_service(&key("198.51.100.30", 80)).unwrap();
    expect_pass(&f, &to30, outcome::PASS_NOT_VIP, "removed service");
    // Every other service still forwards (their filter bits survived the removal).
    f.forwarded_to(&syn_to_web().build());
    f.forwarded_to(&Packet::udp("192.0.2.1:40000", "198.51.100.10:53").build());
    f.forwarded_to(
        &Packet::tcp("[2001:db8:1::1]:40000", "[2001:db8::10]:443")
            .syn()
            .build(),
    );
}

/// A pinned data plane from an lbd that had no VIP filter (its pin absent): loading it
/// rebuilds the filter from the pinned services before any packet sees the new program.
#[test]
fn the_vip_filter_is_rebuilt_from_pinned_services() {
    use lb_dataplane::{Capacities, Dataplane, DataplaneOptions};

    let scratch = std::path::PathBuf::from(format!("/run/lbt-vf-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();
    lb_tests::netns::sh(&format!("mount -t bpf bpf {}", scratch.display()));
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _unmount = Unmount(scratch.clone());
    let options = DataplaneOptions {
        pin_dir: Some(scratch.join("pins")),
        capacities: Capacities {
            services: 32,
            backends: 64,
            conns: 1024,
            tx_ports: 8,
        },
    };
    let syn = syn_to_web().build();
    {
        let dp = Dataplane::load(&options).expect("load pinned");
        let mut f = Fixture::from_dataplane(dp);
        f.backend_state(0, BACKEND_UP, 1);
        f.service(VIP4, 80, proto::TCP, 0, 0, &[(0, 1)]);
        assert_eq!(f.forwarded_to(&syn), 0);
    }
    std::fs::remove_file(scratch.join("pins/LB_VIP_FILTER")).expect("filter pinned");
    let f = Fixture::from_dataplane(Dataplane::load(&options).expect("load again"));
    assert_eq!(
        f.forwarded_to(&syn),
        0,
        "the rebuilt filter has the service's bit"
    );
}

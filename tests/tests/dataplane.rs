//! Packet fixtures through BPF_PROG_TEST_RUN against the real XDP program and live
//! maps: each states the input frame, the expected action and the exact output bytes.
//! Needs root (loads BPF programs).

use lb_common::maps::{
    outcome, proto, BACKEND_DOWN, BACKEND_DRAINING, BACKEND_UP, SVC_F_SOURCE_HASH,
};
use lb_tests::{
    action, backend_mac, flow,
    packet::{arp_request, with_macs, Packet, LB_MAC},
    Fixture,
};

const VIP4: &str = "198.51.100.10";
const VIP6: &str = "2001:db8::10";

/// One backend (index 1) behind VIP4:80/tcp.
fn single() -> Fixture {
    let mut f = Fixture::new();
    f.backend_state(1, BACKEND_UP, 1);
    f.service(VIP4, 80, proto::TCP, 0, 0, &[(1, 1)]);
    f
}

/// Three backends (0, 1, 2) behind `vip`:`port`/`proto`.
fn three(vip: &str, port: u16, proto: u8) -> Fixture {
    let mut f = Fixture::new();
    for i in 0..3 {
        f.backend_state(i, BACKEND_UP, 1);
    }
    f.service(vip, port, proto, 0, 0, &[(0, 1), (1, 1), (2, 1)]);
    f
}

#[test]
fn tcp_syn_to_vip_is_forwarded_with_macs_rewritten() {
    let f = single();
    let frame = Packet::tcp("192.0.2.1:40000", "198.51.100.10:80")
        .syn()
        .build();
    // The whole expected frame, spelled out: only the two MACs change.
    let mut expected = frame.clone();
    expected[..6].copy_from_slice(&[0x02, 0xbe, 0x00, 0x00, 0x00, 0x01]);
    expected[6..12].copy_from_slice(&LB_MAC);
    let out = f.run(&frame);
    assert_eq!(out.action, action::TX);
    assert_eq!(out.packet, expected);
    assert_eq!(f.counter(outcome::FWD_TX), 1);
    let s = f.dp.service_stats(0).unwrap();
    assert_eq!(
        (s.packets, s.bytes, s.new_flows),
        (1, frame.len() as u64, 1)
    );
    let b = f.dp.backend_stats(1).unwrap();
    assert_eq!(
        (b.packets, b.bytes, b.new_flows),
        (1, frame.len() as u64, 1)
    );
}

#[test]
fn established_tcp_with_payload_is_forwarded() {
    let f = single();
    let frame = Packet::tcp("192.0.2.1:40000", "198.51.100.10:80")
        .payload(b"GET / HTTP/1.1\r\n\r\n")
        .build();
    f.expect_forward(&frame, 1);
    assert_eq!(
        f.dp.service_stats(0).unwrap().new_flows,
        0,
        "an ACK segment is not a new flow"
    );
}

#[test]
fn ipv4_options_are_skipped() {
    let f = single();
    // IHL 6 and IHL 15 (40 bytes of options: NOPs then end of list).
    let frame = Packet::tcp("192.0.2.1:40000", "198.51.100.10:80")
        .ipv4_options(&[1, 1, 1, 0])
        .build();
    assert_eq!(frame[14], 0x46);
    f.expect_forward(&frame, 1);
    let frame = Packet::tcp("192.0.2.1:40000", "198.51.100.10:80")
        .ipv4_options(&[1; 40])
        .build();
    assert_eq!(frame[14], 0x4f);
    f.expect_forward(&frame, 1);
}

#[test]
fn vlan_tagged_frames_keep_their_tag() {
    let f = single();
    let frame = Packet::tcp("192.0.2.1:40000", "198.51.100.10:80")
        .syn()
        .vlan(42)
        .build();
    assert_eq!(&frame[12..14], &[0x81, 0x00]);
    f.expect_forward(&frame, 1);
}

#[test]
fn udp_ipv4_service() {
    let mut f = Fixture::new();
    f.backend_state(4, BACKEND_UP, 1);
    f.service(VIP4, 53, proto::UDP, 1, 0, &[(4, 1)]);
    f.expect_forward(
        &Packet::udp("192.0.2.7:5353", "198.51.100.10:53")
            .payload(b"q")
            .build(),
        4,
    );
    // TCP to the same port is another service: not configured, passed.
    f.expect_untouched(
        &Packet::tcp("192.0.2.7:5353", "198.51.100.10:53").build(),
        action::PASS,
    );
}

#[test]
fn ipv6_tcp_and_udp_services() {
    let mut f = Fixture::new();
    f.backend_state(2, BACKEND_UP, 1);
    f.backend_state(3, BACKEND_UP, 1);
    f.service(VIP6, 443, proto::TCP, 0, 0, &[(2, 1)]);
    f.service(VIP6, 53, proto::UDP, 1, 0, &[(3, 1)]);
    f.expect_forward(
        &Packet::tcp("[2001:db8:1::5]:50000", "[2001:db8::10]:443")
            .syn()
            .build(),
        2,
    );
    f.expect_forward(
        &Packet::udp("[2001:db8:1::5]:50000", "[2001:db8::10]:53").build(),
        3,
    );
    f.expect_forward(
        &Packet::tcp("[2001:db8:1::5]:50000", "[2001:db8::10]:443")
            .vlan(3)
            .build(),
        2,
    );
    f.expect_untouched(
        &Packet::tcp("[2001:db8:1::5]:50000", "[2001:db8::11]:443").build(),
        action::PASS,
    );
}

#[test]
fn whole_vip_service_takes_every_port_and_exact_port_wins() {
    let mut f = Fixture::new();
    f.backend_state(1, BACKEND_UP, 1);
    f.backend_state(2, BACKEND_UP, 1);
    f.service(VIP4, 0, proto::TCP, 0, 0, &[(1, 1)]);
    f.service(VIP4, 6443, proto::TCP, 1, 0, &[(2, 1)]);
    for port in [1u16, 22, 80, 65535] {
        f.expect_forward(
            &Packet::tcp("192.0.2.1:40000", &format!("198.51.100.10:{port}")).build(),
            1,
        );
    }
    f.expect_forward(
        &Packet::tcp("192.0.2.1:40000", "198.51.100.10:6443").build(),
        2,
    );
    // UDP has no whole-VIP service here.
    f.expect_untouched(
        &Packet::udp("192.0.2.1:40000", "198.51.100.10:80").build(),
        action::PASS,
    );
}

#[test]
fn non_vip_and_non_ip_traffic_passes_untouched() {
    let f = single();
    f.expect_untouched(
        &Packet::tcp("192.0.2.1:40000", "198.51.100.11:80").build(),
        action::PASS,
    );
    f.expect_untouched(
        &Packet::tcp("192.0.2.1:40000", "198.51.100.10:81").build(),
        action::PASS,
    );
    f.expect_untouched(
        &Packet::other("192.0.2.1", "198.51.100.10", 47).build(),
        action::PASS,
    );
    // IPv6 to the IPv4-mapped form of an IPv4 VIP is not that VIP: its flow key
    // would equal an IPv4 flow's, so it must not reach the IPv4 service.
    f.expect_untouched(
        &Packet::tcp("[2001:db8:1::5]:40000", "[::ffff:198.51.100.10]:80").build(),
        action::PASS,
    );
    assert_eq!(f.counter(outcome::PASS_NOT_VIP), 4);
    f.expect_untouched(&arp_request(), action::PASS);
    assert_eq!(f.counter(outcome::PASS_NOT_IP), 1);
    // ICMP echo to the VIP is for the LB node itself.
    let mut echo = Packet::other("192.0.2.1", "198.51.100.10", 1)
        .payload(&[8, 0, 0, 0, 0, 1, 0, 1])
        .build();
    f.expect_untouched(&echo, action::PASS);
    echo.truncate(14 + 12); // an IPv4 header cut short
    f.expect_untouched(&echo, action::PASS);
    assert_eq!(f.counter(outcome::PASS_MALFORMED), 1);
}

#[test]
fn forwarding_off_passes_vip_traffic_to_the_kernel() {
    let mut f = single();
    f.dp.set_forwarding(false).unwrap();
    let frame = Packet::tcp("192.0.2.1:40000", "198.51.100.10:80")
        .syn()
        .build();
    f.expect_untouched(&frame, action::PASS);
    assert_eq!(f.counter(outcome::PASS_FORWARDING_OFF), 1);
    f.dp.set_forwarding(true).unwrap();
    f.expect_forward(&frame, 1);
}

#[test]
fn service_without_usable_backend_drops_and_counts() {
    let mut f = Fixture::new();
    f.service(VIP4, 80, proto::TCP, 0, 0, &[]);
    let frame = Packet::tcp("192.0.2.1:40000", "198.51.100.10:80")
        .syn()
        .build();
    f.expect_untouched(&frame, action::DROP);
    // A backend that is listed but down in the backend array is not used either.
    f.backend_state(1, BACKEND_DOWN, 1);
    f.service(VIP4, 80, proto::TCP, 0, 0, &[(1, 1)]);
    f.expect_untouched(&frame, action::DROP);
    assert_eq!(f.counter(outcome::DROP_NO_BACKEND), 2);
}

#[test]
fn backend_on_another_interface_is_redirected_or_dropped_if_unroutable() {
    let mut f = single();
    let frame = Packet::tcp("192.0.2.1:40000", "198.51.100.10:80")
        .syn()
        .build();
    // Not in the egress port map: dropped and counted, never sent out of the wrong port.
    let mut b = lb_common::maps::Backend {
        mac: backend_mac(1),
        src_mac: LB_MAC,
        ifindex: 999,
        state: BACKEND_UP,
        gen: 1,
        service: 0,
        addr: [0; 4],
    };
    f.dp.set_backend(1, &b).unwrap();
    let out = f.run(&frame);
    assert_eq!(out.action, action::DROP);
    assert_eq!(f.counter(outcome::DROP_NO_ROUTE), 1);
    // The ingress interface of a test run is the namespace's loopback (ifindex 1): XDP_TX.
    b.ifindex = 1;
    f.dp.set_backend(1, &b).unwrap();
    f.expect_forward(&frame, 1);
}

#[test]
fn spread_over_three_backends() {
    let f = three(VIP4, 80, proto::TCP);
    let mut seen = [0u32; 3];
    for port in 0..300u16 {
        let frame = Packet::tcp(&format!("192.0.2.1:{}", 10000 + port), "198.51.100.10:80")
            .syn()
            .build();
        seen[f.forwarded_to(&frame) as usize] += 1;
    }
    for (i, n) in seen.iter().enumerate() {
        assert!(*n > 50, "backend {i} got {n} of 300 flows: {seen:?}");
    }
}

#[test]
fn source_hash_keeps_a_client_on_one_backend() {
    let mut f = Fixture::new();
    for i in 0..3 {
        f.backend_state(i, BACKEND_UP, 1);
    }
    f.service(
        VIP4,
        80,
        proto::TCP,
        0,
        SVC_F_SOURCE_HASH,
        &[(0, 1), (1, 1), (2, 1)],
    );
    let mut per_client = std::collections::BTreeSet::new();
    for port in 0..50u16 {
        let frame = Packet::tcp(&format!("192.0.2.9:{}", 20000 + port), "198.51.100.10:80")
            .syn()
            .build();
        per_client.insert(f.forwarded_to(&frame));
    }
    assert_eq!(per_client.len(), 1, "one client, one backend");
    let mut clients = std::collections::BTreeSet::new();
    for host in 1..60u8 {
        let frame = Packet::tcp(&format!("192.0.2.{host}:20000"), "198.51.100.10:80")
            .syn()
            .build();
        clients.insert(f.forwarded_to(&frame));
    }
    assert_eq!(clients.len(), 3, "different clients spread");
}

/// Flows (client ports) whose slot currently maps to `backend`.
fn flows_on(f: &Fixture, backend: u16, count: usize) -> Vec<u16> {
    (1000..60000u16)
        .filter(|port| {
            let frame = Packet::tcp(&format!("192.0.2.1:{port}"), "198.51.100.10:80")
                .syn()
                .build();
            f.forwarded_to(&frame) == backend
        })
        .take(count)
        .collect()
}

fn seg(port: u16) -> Vec<u8> {
    Packet::tcp(&format!("192.0.2.1:{port}"), "198.51.100.10:80").build()
}

fn syn(port: u16) -> Vec<u8> {
    Packet::tcp(&format!("192.0.2.1:{port}"), "198.51.100.10:80")
        .syn()
        .build()
}

#[test]
fn drained_backend_keeps_its_flows_but_gets_no_new_ones() {
    let mut f = three(VIP4, 80, proto::TCP);
    let on_two = flows_on(&f, 2, 20);
    // Drain backend 2: weight 0 (no slots), state draining.
    f.backend_state(2, BACKEND_DRAINING, 1);
    f.service(VIP4, 80, proto::TCP, 0, 0, &[(0, 1), (1, 1), (2, 0)]);
    for port in &on_two {
        // Established flows stay, now and on later packets (tracked from the first one).
        f.expect_forward(&seg(*port), 2);
        f.expect_forward(&seg(*port), 2);
    }
    assert!(f.counter(outcome::CT_MISS) >= on_two.len() as u64);
    assert!(f.counter(outcome::CT_HIT) >= on_two.len() as u64);
    // A new connection on the same 5-tuple (port reuse) or any other goes elsewhere.
    for port in &on_two {
        assert_ne!(f.forwarded_to(&syn(*port)), 2);
    }
    for port in 1000..1300u16 {
        assert_ne!(
            f.forwarded_to(&syn(port)),
            2,
            "no new flow to a drained backend"
        );
    }
}

#[test]
fn down_backend_loses_its_flows_which_are_rebalanced() {
    let mut f = three(VIP4, 80, proto::TCP);
    let on_one = flows_on(&f, 1, 10);
    // Track them first via a drain, so both tracked and untracked paths are covered.
    f.backend_state(1, BACKEND_DRAINING, 1);
    f.service(VIP4, 80, proto::TCP, 0, 0, &[(0, 1), (1, 0), (2, 1)]);
    for port in &on_one[..5] {
        f.expect_forward(&seg(*port), 1);
    }
    // Now it fails: removed from the table and marked down.
    f.backend_state(1, BACKEND_DOWN, 1);
    f.service(VIP4, 80, proto::TCP, 0, 0, &[(0, 1), (2, 1)]);
    for port in &on_one {
        let to = f.forwarded_to(&seg(*port));
        assert_ne!(to, 1, "flow on a down backend must be re-balanced");
        // ...and it stays on its new backend.
        assert_eq!(f.forwarded_to(&seg(*port)), to);
    }
    assert!(f.counter(outcome::CT_REBALANCED) >= 5);
}

#[test]
fn adding_a_backend_does_not_move_established_flows() {
    let mut f = Fixture::new();
    for i in 0..4 {
        f.backend_state(i, BACKEND_UP, 1);
    }
    f.service(VIP4, 80, proto::TCP, 0, 0, &[(0, 1), (1, 1), (2, 1)]);
    let before: Vec<(u16, u16)> = (2000..2600u16)
        .map(|p| (p, f.forwarded_to(&syn(p))))
        .collect();
    f.service(
        VIP4,
        80,
        proto::TCP,
        0,
        0,
        &[(0, 1), (1, 1), (2, 1), (3, 1)],
    );
    for (port, backend) in &before {
        assert_eq!(
            f.forwarded_to(&seg(*port)),
            *backend,
            "established flow {port} moved"
        );
    }
    let new_on_3 = (3000..3600u16)
        .filter(|p| f.forwarded_to(&syn(*p)) == 3)
        .count();
    assert!(
        new_on_3 > 80,
        "the new backend takes new flows ({new_on_3} of 600)"
    );
}

#[test]
fn syn_overrides_a_stale_tracked_entry_for_a_reused_tuple() {
    let mut f = three(VIP4, 80, proto::TCP);
    let port = flows_on(&f, 0, 1)[0];
    f.backend_state(0, BACKEND_DRAINING, 1);
    f.service(VIP4, 80, proto::TCP, 0, 0, &[(0, 0), (1, 1), (2, 1)]);
    f.expect_forward(&seg(port), 0); // tracked on the drained backend
    let fresh = f.forwarded_to(&syn(port)); // same 5-tuple, new connection
    assert_ne!(fresh, 0);
    assert_eq!(
        f.forwarded_to(&seg(port)),
        fresh,
        "the new connection is tracked now"
    );
    let key = flow(&format!("192.0.2.1:{port}"), "198.51.100.10:80", proto::TCP);
    assert_eq!(f.dp.conn(&key).unwrap().unwrap().backend, fresh);
}

#[test]
fn reused_backend_index_does_not_inherit_tracked_flows() {
    let mut f = three(VIP4, 80, proto::TCP);
    let ports = flows_on(&f, 2, 5);
    f.backend_state(2, BACKEND_DRAINING, 1);
    f.service(VIP4, 80, proto::TCP, 0, 0, &[(0, 1), (1, 1), (2, 0)]);
    for p in &ports {
        f.expect_forward(&seg(*p), 2);
    }
    // Index 2 is handed to a different server (generation 2) while entries remain.
    f.backend_state(2, BACKEND_UP, 2);
    for p in &ports {
        let to = f.forwarded_to(&seg(*p));
        assert_ne!(to, 2, "entry of the old occupant must not follow the index");
    }
}

#[test]
fn all_fragments_of_a_datagram_reach_the_same_backend() {
    let mut f = three(VIP4, 53, proto::UDP);
    f.fragment_route(VIP4, proto::UDP, 53);
    let mut backends = std::collections::BTreeSet::new();
    for host in 1..40u8 {
        let src = format!("192.0.2.{host}:5000");
        let first = Packet::udp(&src, "198.51.100.10:53")
            .payload(&[7; 32])
            .fragment(0, true)
            .build();
        let middle = Packet::udp(&src, "198.51.100.10:53")
            .payload(&[8; 32])
            .fragment(40, true)
            .build();
        let last = Packet::udp(&src, "198.51.100.10:53")
            .payload(&[9; 16])
            .fragment(72, false)
            .build();
        let b = f.forwarded_to(&first);
        assert_eq!(f.forwarded_to(&middle), b);
        assert_eq!(f.forwarded_to(&last), b);
        backends.insert(b);
    }
    assert!(backends.len() > 1, "datagrams still spread by source");
    assert_eq!(f.counter(outcome::FRAGMENT), 39 * 3);
    // IPv6 fragment headers route the same way.
    let mut f6 = three(VIP6, 53, proto::UDP);
    f6.fragment_route(VIP6, proto::UDP, 53);
    let first = Packet::udp("[2001:db8:1::5]:5000", "[2001:db8::10]:53")
        .payload(&[1; 24])
        .fragment(0, true)
        .build();
    let later = Packet::udp("[2001:db8:1::5]:5000", "[2001:db8::10]:53")
        .payload(&[2; 24])
        .fragment(32, false)
        .build();
    assert_eq!(f6.forwarded_to(&first), f6.forwarded_to(&later));
}

#[test]
fn fragments_without_a_fragment_route_pass() {
    let f = three(VIP4, 53, proto::UDP);
    let frag = Packet::udp("192.0.2.1:5000", "198.51.100.10:53")
        .payload(&[1; 16])
        .fragment(16, false)
        .build();
    f.expect_untouched(&frag, action::PASS);
}

#[test]
fn icmp_errors_reach_the_backend_that_owns_the_quoted_flow() {
    let f = three(VIP4, 443, proto::TCP);
    for port in 30000..30060u16 {
        let client = format!("192.0.2.77:{port}");
        let inbound = Packet::tcp(&client, "198.51.100.10:443").syn().build();
        let owner = f.forwarded_to(&inbound);
        // The backend answered from the VIP; a router says the reply is too big.
        let reply = Packet::tcp("198.51.100.10:443", &client).syn_ack();
        let icmp = Packet::icmp_too_big("203.0.113.1", &reply, 1400).build();
        assert_eq!(f.forwarded_to(&icmp), owner, "ICMP for flow {client}");
    }
    assert_eq!(f.counter(outcome::ICMP_ERROR), 60);
    let f6 = three(VIP6, 443, proto::TCP);
    for port in 30000..30030u16 {
        let client = format!("[2001:db8:1::9]:{port}");
        let owner = f6.forwarded_to(&Packet::tcp(&client, "[2001:db8::10]:443").syn().build());
        let reply = Packet::tcp("[2001:db8::10]:443", &client).syn_ack();
        let icmp = Packet::icmp_too_big("2001:db8:ffff::1", &reply, 1280).build();
        assert_eq!(f6.forwarded_to(&icmp), owner);
    }
}

#[test]
fn forwarded_bytes_are_exact_for_every_fixture_kind() {
    // A compact table: (frame, backend) pairs; each must come out as the input with
    // exactly the MACs replaced.
    let mut f = Fixture::new();
    f.backend_state(9, BACKEND_UP, 1);
    f.service(VIP4, 80, proto::TCP, 0, 0, &[(9, 1)]);
    f.service(VIP6, 80, proto::TCP, 1, 0, &[(9, 1)]);
    let frames = [
        Packet::tcp("192.0.2.1:1", "198.51.100.10:80").syn().build(),
        Packet::tcp("192.0.2.1:1", "198.51.100.10:80")
            .fin()
            .payload(&[0xaa; 100])
            .build(),
        Packet::tcp("[2001:db8:1::1]:1", "[2001:db8::10]:80")
            .vlan(4094)
            .build(),
    ];
    for frame in frames {
        let out = f.run(&frame);
        assert_eq!(out.action, action::TX);
        assert_eq!(out.packet, with_macs(&frame, backend_mac(9), LB_MAC));
    }
}

#[test]
fn icmp_error_not_addressed_to_the_vip_is_not_forwarded() {
    let f = three(VIP4, 443, proto::TCP);
    // Quotes a VIP flow but is addressed to another host (the client itself here).
    let quoted = Packet::tcp("198.51.100.10:443", "192.0.2.77:30000").syn_ack();
    let mut icmp = Packet::icmp_too_big("203.0.113.1", &quoted, 1400).build();
    icmp[30..34].copy_from_slice(&[192, 0, 2, 200]);
    f.expect_untouched(&icmp, action::PASS);
}

#[test]
fn a_backend_on_this_host_gets_its_packets_through_the_local_stack() {
    let mut f = Fixture::new();
    let local = lb_common::maps::Backend {
        mac: [0; 6],
        src_mac: [0; 6],
        ifindex: lb_common::maps::IFINDEX_LOCAL,
        state: BACKEND_UP,
        gen: 1,
        service: 0,
        addr: [0; 4],
    };
    f.dp.set_backend(5, &local).unwrap();
    f.service(VIP4, 6443, proto::TCP, 0, 0, &[(5, 1)]);
    let frame = Packet::tcp("192.0.2.1:40000", "198.51.100.10:6443")
        .syn()
        .build();
    // Unchanged (the MACs still address this host) and passed to the kernel.
    f.expect_untouched(&frame, action::PASS);
    assert_eq!(f.counter(outcome::FWD_LOCAL), 1);
    assert_eq!(f.dp.backend_stats(5).unwrap().packets, 1);
    assert_eq!(f.dp.service_stats(0).unwrap().new_flows, 1);
}

/// The flood guard: over its budget, a flow on a dirty slot is not recorded and goes
/// by the untracked rule (the slot's previous backend), SYN and later segments alike,
/// so no flow is split; every entry that is recorded is announced on the event ring.
#[test]
fn over_the_flood_guard_flows_are_routed_unrecorded_and_never_split() {
    use lb_common::maps::ConnEvent;
    use lb_dataplane::explain::{explain, Explanation};

    let mut f = Fixture::new();
    for i in 0..4 {
        f.backend_state(i, BACKEND_UP, 1);
    }
    f.service(VIP4, 80, proto::TCP, 0, 0, &[(0, 1), (1, 1), (2, 1)]);
    f.service(
        VIP4,
        80,
        proto::TCP,
        0,
        0,
        &[(0, 1), (1, 1), (2, 1), (3, 1)],
    );
    let mut config = f.dp.config().unwrap();
    config.insert_limit = 5;
    f.dp.set_config(&config).unwrap();
    let mut ring = f.dp.take_conn_events().expect("event ring");
    // Clients whose new connections land on slots moved to backend 3.
    let key = |p: u16| flow(&format!("192.0.2.1:{p}"), "198.51.100.10:80", proto::TCP);
    let moved: Vec<u16> = (10000..60000u16)
        .filter(|p| {
            matches!(explain(&f.dp, &key(*p), true),
                Ok(Explanation::Forward { backend: _, choice, .. }) if choice.backend == 3)
        })
        .take(200)
        .collect();
    assert_eq!(moved.len(), 200);
    let mut recorded = 0;
    for p in &moved {
        let first = f.forwarded_to(&syn(*p));
        let tracked = f.dp.conn(&key(*p)).unwrap();
        match tracked {
            Some(v) => {
                recorded += 1;
                assert_eq!(
                    (first, v.backend),
                    (3, 3),
                    "a recorded SYN takes the slot's backend"
                );
            }
            None => assert_ne!(first, 3, "an unrecorded SYN takes the previous backend"),
        }
        assert_eq!(f.forwarded_to(&seg(*p)), first, "flow {p} split");
    }
    let guard = f.dp.flow_guard().unwrap();
    assert!(guard.refused > 0, "the guard refused entries: {guard:?}");
    assert!((5..200).contains(&recorded), "{recorded} recorded");
    // Every entry the program created is on the ring, as written.
    let mut events = Vec::new();
    while let Some(item) = ring.next() {
        assert_eq!(item.len(), std::mem::size_of::<ConnEvent>());
        events.push(unsafe { std::ptr::read_unaligned(item.as_ptr() as *const ConnEvent) });
    }
    assert_eq!(events.len(), recorded, "one event per entry");
    for e in &events {
        assert_eq!(f.dp.conn(&e.key).unwrap(), Some(e.value));
    }
    assert_eq!(guard.events_lost, 0);
    // A retransmitted SYN (or a new connection on a reused 5-tuple) of a recorded flow
    // overwrites its entry: no new entry, so the guard does not refuse it, and the
    // connection stays on the entry's backend, whole.
    let refused = f.dp.flow_guard().unwrap().refused;
    let reused = *moved
        .iter()
        .find(|p| f.dp.conn(&key(**p)).unwrap().is_some())
        .expect("a recorded flow");
    assert_eq!(f.forwarded_to(&syn(reused)), 3);
    assert_eq!(f.forwarded_to(&seg(reused)), 3, "reused 5-tuple split");
    assert_eq!(f.dp.conn(&key(reused)).unwrap().map(|v| v.backend), Some(3));
    assert_eq!(
        f.dp.flow_guard().unwrap().refused,
        refused,
        "not a new entry"
    );
}

/// A tracked flow's FIN marks its entry closing (it then counts as alive for
/// `timeout_tcpfin`, not `timeout_tcp`), once; it keeps its backend.
#[test]
fn a_fin_marks_a_tracked_entry_closing() {
    use lb_common::maps::CONN_F_FIN;
    let mut f = three(VIP4, 80, proto::TCP);
    let port = flows_on(&f, 2, 1)[0];
    f.backend_state(2, BACKEND_DRAINING, 1);
    f.service(VIP4, 80, proto::TCP, 0, 0, &[(0, 1), (1, 1), (2, 0)]);
    f.expect_forward(&seg(port), 2);
    let key = flow(&format!("192.0.2.1:{port}"), "198.51.100.10:80", proto::TCP);
    let tracked = f.dp.conn(&key).unwrap().expect("tracked");
    assert_eq!(tracked.flags & CONN_F_FIN, 0);
    let fin = Packet::tcp(&format!("192.0.2.1:{port}"), "198.51.100.10:80")
        .fin()
        .build();
    f.expect_forward(&fin, 2);
    let closing = f.dp.conn(&key).unwrap().expect("still tracked");
    assert_eq!(closing.flags & CONN_F_FIN, CONN_F_FIN);
    assert_eq!(closing.backend, 2);
    f.expect_forward(&seg(port), 2);
}

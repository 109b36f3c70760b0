//! The shipped program passes the verifier and attaches in driver (native) and skb
//! (generic) mode, and auto mode reports what it got, on a veth pair inside a network
//! namespace created for the test. Needs root.

use lb_dataplane::{AttachMode, AttachedMode, Dataplane, DataplaneOptions};
use lb_tests::netns::Netns;

fn attached_mode(ns: &Netns, ifname: &str) -> String {
    ns.exec(&format!("ip -d link show {ifname}"))
}

#[test]
fn attaches_in_driver_skb_and_auto_mode() {
    let ns = Netns::new("attach");
    ns.exec(
        "ip link add lbt0 type veth peer name lbt1 && ip link set lbt0 up && ip link set lbt1 up",
    );
    let _inside = ns.enter();
    for (mode, want, marker) in [
        (AttachMode::Driver, AttachedMode::Driver, "prog/xdp"),
        (AttachMode::Skb, AttachedMode::Skb, "xdpgeneric"),
        (AttachMode::Auto, AttachedMode::Driver, "prog/xdp"),
    ] {
        let mut dp =
            Dataplane::load(&DataplaneOptions::default()).expect("verifier accepts the program");
        let got = dp.attach("lbt0", mode).expect("attach");
        assert_eq!(got, want, "{mode:?}");
        let link = attached_mode(&ns, "lbt0");
        assert!(link.contains(marker), "{mode:?}: `ip link` shows {link}");
        drop(dp);
        let link = attached_mode(&ns, "lbt0");
        assert!(
            !link.contains("prog/xdp"),
            "dropping the data plane (no pins) detaches: {link}"
        );
    }
}

#[test]
fn a_backend_behind_another_interface_is_redirected_through_the_devmap() {
    use lb_common::maps::{proto, Backend, BACKEND_UP};
    use lb_tests::{action, packet::Packet, Fixture};
    let ns = Netns::new("redirect");
    ns.exec(
        "ip link add lbr0 type veth peer name lbr1 && ip link set lbr0 up && ip link set lbr1 up",
    );
    let ifindex: u32 = ns
        .exec("cat /sys/class/net/lbr0/ifindex")
        .trim()
        .parse()
        .expect("ifindex");
    let _inside = ns.enter();
    let mut f = Fixture::new();
    let backend = Backend {
        mac: lb_tests::backend_mac(1),
        src_mac: [2, 0, 0, 0, 0, 0x77],
        ifindex,
        state: BACKEND_UP,
        gen: 1,
        service: 0,
        addr: [0; 4],
    };
    f.dp.set_backend(1, &backend).unwrap();
    f.service("198.51.100.10", 80, proto::TCP, 0, 0, &[(1, 1)]);
    let frame = Packet::tcp("192.0.2.1:40000", "198.51.100.10:80")
        .syn()
        .build();
    // Not in the egress port map yet: dropped, never sent out of the wrong port.
    assert_eq!(f.run(&frame).action, action::DROP);
    f.dp.add_tx_port(ifindex).unwrap();
    let out = f.run(&frame);
    assert_eq!(
        out.action,
        action::REDIRECT,
        "redirected to the backend's interface"
    );
    assert_eq!(&out.packet[..6], &lb_tests::backend_mac(1));
    assert_eq!(
        &out.packet[6..12],
        &[2, 0, 0, 0, 0, 0x77],
        "source MAC = the egress interface's"
    );
    assert_eq!(f.counter(lb_common::maps::outcome::FWD_REDIRECT), 1);
}

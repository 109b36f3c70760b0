//! The shipped program passes the verifier and attaches in driver (native) and skb
//! (generic) mode, and auto mode reports what it got, on a veth pair inside a network
//! namespace created for the test. Needs root.

use lb_tests::netns::Netns;
use lb_userspace::dataplane::{AttachMode, AttachedMode, Dataplane, DataplaneOptions};

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

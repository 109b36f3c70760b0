//! The data plane's bad-input rules on real wires: crafted frames sent from the lab's
//! client (AF_PACKET) through a real lbd, with a capture on every backend of what the
//! LB forwarded (frames whose source MAC is the LB's). A datagram to an unserved port,
//! frames not addressed to the LB and malformed headers never arrive; a tagged frame
//! arrives with its tag (the lab's veths carry tags inside the frame, as a NIC does
//! with rx VLAN offload off, which lbd sets). Needs root; builds its own lab and
//! removes it.

use std::{
    process::{Child, Command, Stdio},
    time::Duration,
};

use lb_tests::{
    flood::RawSocket,
    lab::{wait_until, Lab, CLIENT, VIP},
    netns::{enter_existing, sh},
    packet::Packet,
};

/// `iface`'s MAC in namespace `ns`.
fn mac_of(ns: &str, iface: &str) -> [u8; 6] {
    let text = sh(&format!("ip -n {ns} -br link show {iface}"));
    let mac = text
        .split_whitespace()
        .nth(2)
        .unwrap_or_else(|| panic!("no MAC for {ns}/{iface}: {text:?}"));
    lb_api::fmt::parse_mac(mac).unwrap_or_else(|| panic!("bad MAC {mac:?}"))
}

/// Send `frames` out of `iface` in namespace `ns`, as they are (AF_PACKET, SOCK_RAW).
fn send_raw(ns: &str, iface: &str, frames: &[Vec<u8>]) {
    let _inside = enter_existing(ns);
    let raw = RawSocket::open(iface).unwrap_or_else(|e| panic!("{e:#} in {ns}"));
    for frame in frames {
        assert!(raw.send(frame), "send: {}", std::io::Error::last_os_error());
    }
}

/// tcpdump on a backend's eth0 for frames the LB forwarded; killed on drop.
struct Capture {
    child: Child,
    out: std::path::PathBuf,
}

impl Capture {
    fn start(lab: &Lab, node: &str, lb_mac: [u8; 6]) -> Capture {
        let out = std::env::temp_dir().join(format!("lbt-hl-{}-{node}.txt", std::process::id()));
        let mac = lb_api::fmt::format_mac(&lb_mac);
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &lab.ns(node),
                "tcpdump",
                "-l",
                "-n",
                "-e",
                "-i",
                "eth0",
            ])
            .arg(format!("ether src {mac}"))
            .stdout(std::fs::File::create(&out).expect("capture file"))
            .stderr(Stdio::piped())
            .spawn()
            .expect("tcpdump");
        let mut c = Capture { child, out };
        // tcpdump says "listening on" once its filter is installed.
        let stderr = c.child.stderr.take().expect("stderr");
        let said: Vec<String> = std::io::BufRead::lines(std::io::BufReader::new(stderr))
            .take(3)
            .map_while(Result::ok)
            .take_while(|l| !l.contains("listening"))
            .collect();
        assert!(said.len() < 3, "tcpdump did not start: {said:?}");
        c
    }

    fn text(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.out);
    }
}

#[test]
fn crafted_frames_on_real_wires_reach_only_served_ports_intact() {
    let mut lab = Lab::up("hl");
    lab.write_config(&Lab::web_service([Some(1), Some(1), Some(1)]));
    lab.start_lbd();
    lab.wait_healthy(3);
    let lb_mac = mac_of(&lab.ns("lb"), "eth0");
    let client_mac = mac_of(&lab.ns("client"), "eth0");
    let captures: Vec<Capture> = ["b1", "b2", "b3"]
        .iter()
        .map(|b| Capture::start(&lab, b, lb_mac))
        .collect();

    let to = |sport: u16, dport: u16| {
        Packet::tcp(&format!("{CLIENT}:{sport}"), &format!("{VIP}:{dport}"))
            .syn()
            .macs(client_mac, lb_mac)
    };
    let mut bad_sum = to(41005, 80).build();
    bad_sum[24] ^= 0x01;
    let mut bad_doff = to(41006, 80).build();
    bad_doff[14 + 20 + 12] = 4 << 4;
    let frames = vec![
        // 1. A fragmented SYN to VIP:2222 (no such service): first and later fragment.
        to(41001, 2222).payload(&[0; 16]).fragment(0, true).build(),
        to(41001, 2222)
            .payload(&[0; 16])
            .fragment(40, false)
            .build(),
        // 2. SYNs to VIP:80 not addressed to the LB: broadcast and another host's MAC.
        to(41002, 80).macs(client_mac, [0xff; 6]).build(),
        to(41003, 80)
            .macs(client_mac, [0x02, 0x99, 0, 0, 0, 1])
            .build(),
        // 3. A tagged SYN: forwarded back out with its tag.
        to(41004, 80).vlan(42).build(),
        // 4. Malformed: bad IPv4 header checksum, TCP data offset 4.
        bad_sum,
        bad_doff,
        // The control: a plain SYN to VIP:80 must arrive at one backend.
        to(41007, 80).build(),
        // A fragmented SYN to VIP:80: served, so its first fragment arrives.
        to(41008, 80).payload(&[0; 16]).fragment(0, true).build(),
        to(41008, 80).payload(&[0; 16]).fragment(40, false).build(),
    ];
    send_raw(&lab.ns("client"), "eth0", &frames);

    let all = || captures.iter().map(Capture::text).collect::<String>();
    wait_until(
        Duration::from_secs(10),
        "the control SYN and the tagged SYN forwarded",
        || {
            let text = all();
            text.contains(".41007 > ") && text.contains(".41004 > ") && text.contains(".41008 > ")
        },
    );
    // Let anything else in flight arrive before judging.
    std::thread::sleep(Duration::from_millis(500));
    let text = all();
    let forwarded = |port: u16| text.contains(&format!(".{port} > "));
    assert!(
        !forwarded(41001),
        "first fragment to :2222 forwarded:\n{text}"
    );
    assert!(
        !text.contains(".2222:"),
        "a datagram to :2222 forwarded:\n{text}"
    );
    assert!(!forwarded(41002), "broadcast SYN forwarded:\n{text}");
    assert!(
        !forwarded(41003),
        "SYN to another host's MAC forwarded:\n{text}"
    );
    assert!(!forwarded(41005), "bad checksum forwarded:\n{text}");
    assert!(!forwarded(41006), "bad data offset forwarded:\n{text}");
    let tagged = text
        .lines()
        .find(|l| l.contains(".41004 > "))
        .expect("tagged SYN line");
    assert!(tagged.contains("vlan 42"), "tag lost: {tagged}");
    // lbd keeps tags in the frame on the interface it attached to.
    let features = sh(&format!("ip netns exec {} ethtool -k eth0", lab.ns("lb")));
    assert!(
        features.contains("rx-vlan-offload: off"),
        "lbd left rx VLAN offload on:\n{features}"
    );
    drop(captures);
    drop(lab);
}

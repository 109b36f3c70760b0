//! The VRRP I/O edge (`lb_vrrp::{io, announce}` and `lb_netlink::addr`) on real sockets and
//! netlink, in network namespaces this test creates: `a` (veth `la`, 198.51.100.1/24,
//! 2001:db8:88::1/64, MAC 02:00:00:00:1a:01, link-local fe80::ff:fe00:1a01) and `b`
//! (veth `lb`, 198.51.100.2/24, 2001:db8:88::2/64, MAC 02:00:00:00:1b:02, link-local
//! fe80::ff:fe00:1b02). Nothing outside them is touched.
//!
//! - `VrrpSocket`: v2 multicast IPv4 (also checked on the wire with tcpdump: TOS
//!   0xc0, TTL 255, no DF), v3 multicast IPv6 from the link-local address, v3
//!   unicast IPv4 and IPv6: what `encode` built arrives byte for byte with TTL / hop
//!   limit 255 and decodes.
//! - A real keepalived 2.2.7 as BACKUP stays BACKUP while our `VrrpSocket` sends
//!   priority-200 adverts, takes over about Master_Down_Interval after they stop,
//!   and its adverts reach our socket and decode.
//! - `AddrHandle`: add / remove / has are idempotent (checked with `ip addr`).
//! - `announce`: the peer captures the gratuitous ARP and the unsolicited NA, and its
//!   kernel updates its neighbour entries from them.
//! - `watch_links`: sees `ip link set down/up` and a carrier loss.
//!
//! Needs root, keepalived, tcpdump, iproute2. Namespaces are deleted and
//! keepalived / tcpdump killed on drop, also when a test fails.

use std::{
    fs,
    future::Future,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use lb_netlink::addr::{watch_links, AddrError, AddrHandle};
use lb_tests::keepalived::Keepalived;
use lb_tests::netns::{sh, Netns};
use lb_vrrp::{
    announce::announce, auth_from_password, decode, encode, io::VrrpSocket, Advert, ChecksumMode,
    Expect, Received, Version, MCAST_V4, MCAST_V6,
};

const A_V4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
const B_V4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);
const A_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x88, 0, 0, 0, 0, 1);
const B_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x88, 0, 0, 0, 0, 2);
const A_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x1a, 0x01];
/// EUI-64 link-local addresses of the MACs above.
const A_LL: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0xff, 0xfe00, 0x1a01);
const B_LL: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0xff, 0xfe00, 0x1b02);

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip literal")
}

/// Two namespaces joined by a veth pair with fixed MACs and no IPv6 DAD.
struct Pair {
    a: Netns,
    b: Netns,
}

impl Pair {
    fn new(tag: &str) -> Self {
        let a = Netns::new(&format!("{tag}a"));
        let b = Netns::new(&format!("{tag}b"));
        for ns in [&a, &b] {
            ns.exec(
                "sysctl -qw net.ipv6.conf.all.accept_dad=0 && \
                 sysctl -qw net.ipv6.conf.default.accept_dad=0",
            );
        }
        sh(&format!(
            "ip -n {a} link add la address 02:00:00:00:1a:01 type veth \
                 peer name lb address 02:00:00:00:1b:02 netns {b} && \
             ip -n {a} addr add 198.51.100.1/24 dev la && \
             ip -n {b} addr add 198.51.100.2/24 dev lb && \
             ip -n {a} addr add 2001:db8:88::1/64 dev la nodad && \
             ip -n {b} addr add 2001:db8:88::2/64 dev lb nodad && \
             ip -n {a} link set la up && ip -n {b} link set lb up",
            a = a.name,
            b = b.name
        ));
        let pair = Pair { a, b };
        pair.wait_link_local();
        pair
    }

    /// Link-local addresses appear once the links are up, and can be bound once they
    /// are no longer tentative (a busy machine may still be running DAD on them).
    fn wait_link_local(&self) {
        let end = Instant::now() + Duration::from_secs(10);
        for (ns, dev, ll) in [(&self.a, "la", A_LL), (&self.b, "lb", B_LL)] {
            while !sh(&format!("ip -n {} -6 addr show dev {dev}", ns.name))
                .lines()
                .any(|l| l.contains(&format!("{ll}/64")) && !l.contains("tentative"))
            {
                assert!(Instant::now() < end, "no link-local {ll} on {dev}");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// Run `fut` on a current-thread runtime built inside `ns` (so everything it opens
/// lives there unless it enters another namespace itself).
fn block_on_in<F: Future>(ns: &Netns, fut: F) -> F::Output {
    let _inside = ns.enter();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(fut)
}

/// Open a VRRP socket inside `ns` (call within a runtime).
fn open_in(ns: &Netns, dev: &str, ipv6: bool, source: Option<IpAddr>, mc: bool) -> VrrpSocket {
    let _inside = ns.enter();
    VrrpSocket::open(dev, ipv6, source, mc)
        .unwrap_or_else(|e| panic!("open VRRP socket on {dev} in {}: {e}", ns.name))
}

/// The next packet on `sock` within `within`.
async fn recv_one(sock: &VrrpSocket, within: Duration) -> Received {
    tokio::time::timeout(within, sock.recv())
        .await
        .expect("a VRRP packet within the timeout")
        .expect("socket ok")
        .expect("well-formed packet")
}

/// A tcpdump in a namespace writing a pcap; killed on drop.
struct Tcpdump {
    child: Option<Child>,
    dir: PathBuf,
}

impl Tcpdump {
    /// Capture `count` frames matching `filter` on `dev`; returns once tcpdump is
    /// listening.
    fn start(ns: &Netns, dev: &str, tag: &str, count: usize, filter: &str) -> Self {
        let dir = PathBuf::from(format!("/tmp/lbt-vrrpio-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("mkdir");
        let log = fs::File::create(dir.join("log")).expect("log file");
        let child = Command::new("ip")
            .args(["netns", "exec", &ns.name, "tcpdump", "-i", dev, "-n", "-U"])
            .args(["-s", "0", "-c", &count.to_string(), "-w"])
            .arg(dir.join("cap.pcap"))
            .arg(filter)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .spawn()
            .expect("spawn tcpdump");
        let td = Tcpdump {
            child: Some(child),
            dir,
        };
        let end = Instant::now() + Duration::from_secs(10);
        while !td.log().contains("listening on") {
            assert!(Instant::now() < end, "tcpdump not listening: {}", td.log());
            std::thread::sleep(Duration::from_millis(20));
        }
        td
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    /// Wait for tcpdump to exit after its `count` frames; the captured frames.
    fn frames(&mut self, timeout: Duration) -> Vec<Vec<u8>> {
        let end = Instant::now() + timeout;
        if let Some(child) = self.child.as_mut() {
            loop {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                assert!(
                    Instant::now() < end,
                    "tcpdump captured too little: {}",
                    self.log()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        self.child = None;
        parse_pcap(&fs::read(self.dir.join("cap.pcap")).expect("read pcap"))
    }
}

impl Drop for Tcpdump {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Frames of a classic pcap file (either byte order).
fn parse_pcap(data: &[u8]) -> Vec<Vec<u8>> {
    assert!(data.len() >= 24, "pcap too short");
    let le = match data[..4] {
        [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1] => true,
        [0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d] => false,
        _ => panic!("not a pcap file"),
    };
    let u32_at = |o: usize| {
        let b = [data[o], data[o + 1], data[o + 2], data[o + 3]];
        let v = if le {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        };
        usize::try_from(v).expect("fits")
    };
    let mut frames = Vec::new();
    let mut off = 24;
    while off + 16 <= data.len() {
        let len = u32_at(off + 8);
        let start = off + 16;
        assert!(start + len <= data.len(), "truncated pcap record");
        frames.push(data[start..start + len].to_vec());
        off = start + len;
    }
    frames
}

fn has_addr(ns: &Netns, dev: &str, cidr: &str) -> bool {
    sh(&format!("ip -n {} addr show dev {dev}", ns.name))
        .split_whitespace()
        .any(|w| w == cidr)
}

#[test]
fn multicast_v2_ipv4_arrives_intact() {
    let pair = Pair::new("vio4");
    let mut td = Tcpdump::start(&pair.b, "lb", "mc4", 1, "ip proto 112");
    block_on_in(&pair.a, async {
        let a = VrrpSocket::open("la", false, None, true).expect("open in a");
        assert_eq!(a.source(), IpAddr::V4(A_V4), "primary address by default");
        let b = open_in(&pair.b, "lb", false, None, true);
        assert_eq!(b.source(), IpAddr::V4(B_V4));
        let auth = auth_from_password("lbtest12").expect("8 bytes");
        let advert = Advert {
            version: Version::V2,
            vrid: 61,
            priority: 200,
            max_advert_int_cs: 100,
            addresses: vec![ip("198.51.100.61")],
            auth: Some(auth),
        };
        let bytes = encode(
            &advert,
            a.source(),
            IpAddr::V4(MCAST_V4),
            ChecksumMode::PseudoHeader,
        )
        .expect("encodes");
        a.send(&bytes, IpAddr::V4(MCAST_V4)).await.expect("send");
        let rx = recv_one(&b, Duration::from_secs(2)).await;
        assert_eq!(rx.src, IpAddr::V4(A_V4));
        assert_eq!(rx.dst, IpAddr::V4(MCAST_V4));
        assert_eq!(rx.ttl, 255);
        assert_eq!(rx.payload, bytes);
        let expect = Expect {
            auth: Some(auth),
            ..Expect::new(Version::V2, 61, 100)
        };
        assert_eq!(decode(&rx, &expect), Ok(advert));
        // Multicast loopback is off: the sender does not hear itself.
        assert!(
            tokio::time::timeout(Duration::from_millis(300), a.recv())
                .await
                .is_err(),
            "sender received its own advert"
        );
        // Wrong-family destinations are refused.
        assert!(a.send(&bytes, IpAddr::V6(MCAST_V6)).await.is_err());
    });
    // On the wire, as keepalived's: to 01:00:5e:00:00:12, TOS 0xc0, no DF, TTL 255.
    let frames = td.frames(Duration::from_secs(5));
    let f = &frames[0];
    assert_eq!(&f[..6], &[0x01, 0x00, 0x5e, 0x00, 0x00, 0x12]);
    assert_eq!(&f[6..12], &A_MAC);
    assert_eq!(&f[12..14], &[0x08, 0x00]);
    let iph = &f[14..];
    assert_eq!(iph[0], 0x45);
    assert_eq!(iph[1], 0xc0, "TOS internetwork control");
    assert_eq!(iph[6] & 0x40, 0, "no DF, as keepalived");
    assert_eq!(iph[8], 255, "TTL");
    assert_eq!(iph[9], 112, "protocol VRRP");
    assert_eq!(&iph[12..16], &A_V4.octets());
    assert_eq!(&iph[16..20], &MCAST_V4.octets());
}

#[test]
fn multicast_v3_ipv6_from_link_local() {
    let pair = Pair::new("vio6");
    block_on_in(&pair.a, async {
        let a = VrrpSocket::open("la", true, None, true).expect("open in a");
        assert_eq!(a.source(), IpAddr::V6(A_LL), "link-local by default");
        let b = open_in(&pair.b, "lb", true, None, true);
        assert_eq!(b.source(), IpAddr::V6(B_LL));
        let advert = Advert {
            version: Version::V3,
            vrid: 62,
            priority: 150,
            max_advert_int_cs: 100,
            addresses: vec![ip("2001:db8:88::62")],
            auth: None,
        };
        let bytes = encode(
            &advert,
            a.source(),
            IpAddr::V6(MCAST_V6),
            ChecksumMode::PseudoHeader,
        )
        .expect("encodes");
        a.send(&bytes, IpAddr::V6(MCAST_V6)).await.expect("send");
        let rx = recv_one(&b, Duration::from_secs(2)).await;
        assert_eq!(rx.src, IpAddr::V6(A_LL));
        assert_eq!(rx.dst, IpAddr::V6(MCAST_V6));
        assert_eq!(rx.ttl, 255, "hop limit from IPV6_HOPLIMIT");
        assert_eq!(rx.payload, bytes);
        assert_eq!(decode(&rx, &Expect::new(Version::V3, 62, 100)), Ok(advert));
    });
}

#[test]
fn unicast_v3_ipv4_and_ipv6() {
    let pair = Pair::new("viou");
    block_on_in(&pair.a, async {
        // IPv4, explicit unicast_src_ip.
        let a = VrrpSocket::open("la", false, Some(IpAddr::V4(A_V4)), false).expect("open");
        let b = open_in(&pair.b, "lb", false, Some(IpAddr::V4(B_V4)), false);
        let advert = Advert {
            version: Version::V3,
            vrid: 63,
            priority: 100,
            max_advert_int_cs: 10,
            addresses: vec![ip("198.51.100.63"), ip("198.51.100.163")],
            auth: None,
        };
        let bytes = encode(
            &advert,
            a.source(),
            IpAddr::V4(B_V4),
            ChecksumMode::PseudoHeader,
        )
        .expect("encodes");
        a.send(&bytes, IpAddr::V4(B_V4)).await.expect("send");
        let rx = recv_one(&b, Duration::from_secs(2)).await;
        assert_eq!(
            (rx.src, rx.dst, rx.ttl),
            (IpAddr::V4(A_V4), IpAddr::V4(B_V4), 255)
        );
        assert_eq!(rx.payload, bytes);
        let expect = Expect {
            check_ttl: false,
            ..Expect::new(Version::V3, 63, 10)
        };
        assert_eq!(decode(&rx, &expect), Ok(advert.clone()));

        // IPv6 with global unicast addresses.
        let a6 = VrrpSocket::open("la", true, Some(IpAddr::V6(A_V6)), false).expect("open");
        let b6 = open_in(&pair.b, "lb", true, Some(IpAddr::V6(B_V6)), false);
        let advert6 = Advert {
            addresses: vec![ip("2001:db8:88::63")],
            ..advert
        };
        let bytes = encode(
            &advert6,
            a6.source(),
            IpAddr::V6(B_V6),
            ChecksumMode::PseudoHeader,
        )
        .expect("encodes");
        a6.send(&bytes, IpAddr::V6(B_V6)).await.expect("send");
        let rx = recv_one(&b6, Duration::from_secs(2)).await;
        assert_eq!(
            (rx.src, rx.dst, rx.ttl),
            (IpAddr::V6(A_V6), IpAddr::V6(B_V6), 255)
        );
        assert_eq!(decode(&rx, &expect), Ok(advert6));

        // A source of the wrong family is refused.
        assert!(VrrpSocket::open("la", true, Some(IpAddr::V4(A_V4)), false).is_err());
        assert!(VrrpSocket::open("nope0", false, None, true).is_err());
    });
}

const KA_BACKUP: &str = r#"
global_defs {
    router_id lbt_vrrp_io
}
vrrp_instance VIO {
    state BACKUP
    interface lb
    virtual_router_id 61
    priority 100
    advert_int 1
    authentication {
        auth_type PASS
        auth_pass lbtest12
    }
    virtual_ipaddress {
        198.51.100.61/32 dev lb
    }
}
"#;

#[test]
fn keepalived_backup_follows_our_adverts() {
    let pair = Pair::new("vioka");
    let mut ka = Keepalived::start(&pair.b.name, "backup", KA_BACKUP);
    let vip = "198.51.100.61/32";
    block_on_in(&pair.a, async {
        let sock = VrrpSocket::open("la", false, None, true).expect("open");
        let auth = auth_from_password("lbtest12").expect("8 bytes");
        let ours = Advert {
            version: Version::V2,
            vrid: 61,
            priority: 200,
            max_advert_int_cs: 100,
            addresses: vec![ip("198.51.100.61")],
            auth: Some(auth),
        };
        let bytes = encode(
            &ours,
            sock.source(),
            IpAddr::V4(MCAST_V4),
            ChecksumMode::PseudoHeader,
        )
        .expect("encodes");
        // Advertise every second for 5 s: longer than keepalived's
        // Master_Down_Interval (3 x 1 s + 0.61 s) from its start.
        let start = Instant::now();
        let mut last_sent = start;
        while start.elapsed() < Duration::from_secs(5) {
            sock.send(&bytes, IpAddr::V4(MCAST_V4)).await.expect("send");
            last_sent = Instant::now();
            for _ in 0..10 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                assert!(
                    !has_addr(&pair.b, "lb", vip),
                    "keepalived took the VIP while we advertised:\n{}",
                    ka.log()
                );
            }
        }
        assert!(
            ka.count("(VIO) Entering BACKUP STATE") >= 1,
            "keepalived never entered BACKUP:\n{}",
            ka.log()
        );
        assert_eq!(
            ka.count("(VIO) Entering MASTER STATE"),
            0,
            "keepalived became MASTER while we advertised:\n{}",
            ka.log()
        );
        // We stop: keepalived takes over after Master_Down_Interval.
        let took = loop {
            if has_addr(&pair.b, "lb", vip) {
                break last_sent.elapsed();
            }
            assert!(
                last_sent.elapsed() < Duration::from_secs(8),
                "keepalived never took over:\n{}",
                ka.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert!(
            took >= Duration::from_millis(3300) && took <= Duration::from_millis(4800),
            "takeover {took:?} after our last advert (expected ~3.61 s)"
        );
        assert_eq!(ka.count("(VIO) Entering MASTER STATE"), 1, "{}", ka.log());
        // keepalived's adverts reach our socket and decode.
        let expect = Expect {
            auth: Some(auth),
            addresses: Some(vec![ip("198.51.100.61")]),
            ..Expect::new(Version::V2, 61, 100)
        };
        let end = Instant::now() + Duration::from_secs(3);
        let theirs = loop {
            assert!(Instant::now() < end, "no advert from keepalived");
            let rx = recv_one(&sock, Duration::from_secs(3)).await;
            if rx.src == IpAddr::V4(B_V4) {
                break decode(&rx, &expect).expect("keepalived's advert decodes");
            }
        };
        assert_eq!(theirs.priority, 100);
    });
    ka.stop();
}

#[test]
fn addr_handle_is_idempotent() {
    let pair = Pair::new("vioad");
    let ns = &pair.a;
    block_on_in(ns, async {
        let h = AddrHandle::new().await.expect("netlink");
        let idx = h.ifindex("la").await.expect("ifindex");
        let listed = sh(&format!("ip -n {} -o link show dev la", ns.name));
        assert!(listed.starts_with(&format!("{idx}: la")), "{listed}");
        assert!(matches!(
            h.ifindex("nope0").await,
            Err(AddrError::NoSuchInterface(_))
        ));
        assert!(h.link_up("la").await.expect("link"));

        for (vip, prefix, cidr) in [
            (ip("198.51.100.77"), 32, "198.51.100.77/32"),
            (ip("2001:db8:88::77"), 128, "2001:db8:88::77/128"),
        ] {
            assert!(!h.has("la", vip).await.expect("has"));
            h.add("la", vip, prefix).await.expect("add");
            h.add("la", vip, prefix).await.expect("add again");
            assert!(h.has("la", vip).await.expect("has"));
            let shown = sh(&format!("ip -n {} addr show dev la", ns.name));
            assert_eq!(shown.matches(&format!("{cidr} ")).count(), 1, "{shown}");
            if vip.is_ipv6() {
                let line = shown.lines().find(|l| l.contains(cidr)).expect("listed");
                assert!(line.contains("nodad"), "{line}");
            }
            h.remove("la", vip, prefix).await.expect("remove");
            h.remove("la", vip, prefix).await.expect("remove again");
            assert!(!h.has("la", vip).await.expect("has"));
            assert!(!has_addr(ns, "la", cidr));
        }
        // The interface's own address is found, and not removed by a VIP of another
        // prefix length.
        assert!(h.has("la", IpAddr::V4(A_V4)).await.expect("has"));
        h.remove("la", IpAddr::V4(A_V4), 32).await.expect("no-op");
        assert!(has_addr(ns, "la", "198.51.100.1/24"));
        assert!(h.add("la", ip("198.51.100.9"), 33).await.is_err());
    });
}

#[test]
fn announce_updates_the_peers_neighbour_tables() {
    let pair = Pair::new("vioan");
    let b = &pair.b.name;
    let (v4, v6) = ("198.51.100.64", "2001:db8:88::64");
    // Stale entries for the VIPs with a wrong MAC: our announcements must fix them.
    sh(&format!(
        "ip -n {b} neigh add {v4} lladdr 02:de:ad:be:ef:01 dev lb nud stale && \
         ip -n {b} neigh add {v6} lladdr 02:de:ad:be:ef:01 dev lb nud stale"
    ));
    let mut td = Tcpdump::start(&pair.b, "lb", "an", 2, "arp or (icmp6 and ip6[40] == 136)");
    let sent = {
        let _inside = pair.a.enter();
        announce("la", &[ip(v4), ip(v6)]).expect("announce")
    };
    assert_eq!(sent, 2);
    let frames = td.frames(Duration::from_secs(5));
    let arp = frames
        .iter()
        .find(|f| f[12..14] == [0x08, 0x06])
        .expect("an ARP frame");
    let vip4 = ip(v4);
    let IpAddr::V4(vip4) = vip4 else {
        unreachable!()
    };
    assert_eq!(&arp[..6], &[0xff; 6], "broadcast");
    assert_eq!(&arp[6..12], &A_MAC);
    let p = &arp[14..];
    assert_eq!(&p[..8], &[0, 1, 8, 0, 6, 4, 0, 1], "Ethernet/IPv4 request");
    assert_eq!(&p[8..14], &A_MAC, "sender MAC");
    assert_eq!(&p[14..18], &vip4.octets(), "sender IP = VIP");
    assert_eq!(&p[24..28], &vip4.octets(), "target IP = VIP");

    let na = frames
        .iter()
        .find(|f| f[12..14] == [0x86, 0xdd])
        .expect("an NA frame");
    let IpAddr::V6(vip6) = ip(v6) else {
        unreachable!()
    };
    assert_eq!(&na[..6], &[0x33, 0x33, 0, 0, 0, 1]);
    assert_eq!(&na[6..12], &A_MAC);
    let ip6 = &na[14..];
    assert_eq!(ip6[6], 58, "ICMPv6");
    assert_eq!(ip6[7], 255, "hop limit");
    assert_eq!(&ip6[8..24], &vip6.octets(), "from the VIP");
    assert_eq!(
        &ip6[24..40],
        &"ff02::1".parse::<Ipv6Addr>().expect("ip").octets()
    );
    let icmp = &ip6[40..];
    assert_eq!(icmp[0], 136, "neighbour advertisement");
    assert_eq!(icmp[4] & 0x20, 0x20, "Override flag");
    assert_eq!(icmp[4] & 0x40, 0, "not solicited");
    assert_eq!(&icmp[8..24], &vip6.octets(), "target = VIP");
    assert_eq!(
        &icmp[24..32],
        &[2, 1, 2, 0, 0, 0, 0x1a, 0x01],
        "TLLA option"
    );

    // The peer's kernel took both: its entries now point at us.
    let end = Instant::now() + Duration::from_secs(3);
    loop {
        let neigh = sh(&format!("ip -n {b} neigh show dev lb"));
        let fixed = |addr: &str| {
            neigh
                .lines()
                .any(|l| l.starts_with(&format!("{addr} ")) && l.contains("02:00:00:00:1a:01"))
        };
        if fixed(v4) && fixed(v6) {
            break;
        }
        assert!(
            Instant::now() < end,
            "neighbour entries not updated:\n{neigh}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The next up/down change of `la`.
async fn next_la(rx: &mut tokio::sync::mpsc::Receiver<(String, bool)>) -> bool {
    loop {
        let (name, up) = tokio::time::timeout(Duration::from_secs(3), rx.recv())
            .await
            .expect("a link event in time")
            .expect("watch running");
        if name == "la" {
            return up;
        }
    }
}

#[test]
fn watch_links_sees_down_up_and_carrier() {
    let pair = Pair::new("viowl");
    let (a, b) = (pair.a.name.clone(), pair.b.name.clone());
    block_on_in(&pair.a, async {
        let h = AddrHandle::new().await.expect("netlink");
        let mut rx = watch_links().await.expect("watch");
        sh(&format!("ip -n {a} link set dev la down"));
        assert!(!next_la(&mut rx).await, "down");
        assert!(!h.link_up("la").await.expect("link"));
        sh(&format!("ip -n {a} link set dev la up"));
        assert!(next_la(&mut rx).await, "up");
        assert!(h.link_up("la").await.expect("link"));
        // Carrier: the peer end going down takes ours down too.
        sh(&format!("ip -n {b} link set dev lb down"));
        assert!(!next_la(&mut rx).await, "carrier lost");
        assert!(!h.link_up("la").await.expect("link"));
        sh(&format!("ip -n {b} link set dev lb up"));
        assert!(next_la(&mut rx).await, "carrier back");
    });
}

//! VRRP against a real keepalived (2.2.7), in network namespaces this test creates:
//! `ka` (veth `va`, 192.0.2.1/24, MAC 02:00:00:00:0a:01) runs keepalived, `peer`
//! (veth `vb`, 192.0.2.2/24, MAC 02:00:00:00:0b:02, so link-local
//! fe80::ff:fe00:b02) plays lbd with raw sockets and `lb_vrrp`.
//!
//! - `recaptured_adverts_match_fixtures`: re-runs `tests/fixtures/vrrp/capture.sh`
//!   and checks keepalived still puts exactly the committed fixture bytes on the
//!   wire (the codec's unit tests are built on those).
//! - `keepalived_accepts_our_adverts_and_rejects_bad_ones`: adverts encoded by our
//!   codec (v2 PASS multicast, v3 unicast IPv4 with the pseudo-header checksum, v3
//!   IPv6) make keepalived's masters step down; a wrong password, an RFC 9568
//!   message-only checksum and a v2 interval mismatch are rejected by keepalived.
//! - `state_machine_duels_keepalived`: our `Instance` (codec + state machine, raw
//!   socket at the edge) preempts keepalived, gives way when tracking lowers its
//!   priority, and takes over within Skew_Time when keepalived stops.
//!
//! Needs root, keepalived, tcpdump, iproute2. Namespaces are deleted and keepalived
//! is killed on drop, also when a test fails.

use std::{
    fs,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use lb_tests::keepalived::Keepalived;
use lb_tests::netns::{sh, Netns};
use lb_vrrp::{
    auth_from_password, decode, encode, parse_ipv4_packet, Action, Advert, ChecksumMode, Counters,
    DropReason, Expect, Instance, InstanceConfig, Received, State, Version, IPPROTO_VRRP, MCAST_V4,
    MCAST_V6,
};

const KA_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const PEER_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
/// EUI-64 link-local of MAC 02:00:00:00:0b:02.
const PEER_LL: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0xff, 0xfe00, 0x0b02);

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip literal")
}

/// Two namespaces joined by a veth pair with fixed MACs and no IPv6 DAD.
struct Pair {
    ka: Netns,
    peer: Netns,
}

impl Pair {
    fn new(tag: &str) -> Self {
        let ka = Netns::new(&format!("{tag}k"));
        let peer = Netns::new(&format!("{tag}p"));
        for ns in [&ka, &peer] {
            ns.exec(
                "sysctl -qw net.ipv6.conf.all.accept_dad=0 && \
                 sysctl -qw net.ipv6.conf.default.accept_dad=0",
            );
        }
        sh(&format!(
            "ip -n {k} link add va address 02:00:00:00:0a:01 type veth \
                 peer name vb address 02:00:00:00:0b:02 netns {p} && \
             ip -n {k} addr add 192.0.2.1/24 dev va && \
             ip -n {p} addr add 192.0.2.2/24 dev vb && \
             ip -n {k} addr add 2001:db8::1/64 dev va nodad && \
             ip -n {p} addr add 2001:db8::2/64 dev vb nodad && \
             ip -n {k} link set va up && ip -n {p} link set vb up",
            k = ka.name,
            p = peer.name
        ));
        Pair { ka, peer }
    }
}

/// A raw VRRP socket (IP protocol 112) bound to `dev` in the namespace it was
/// created in, TTL / hop limit 255.
struct RawSock {
    fd: OwnedFd,
    v4: bool,
    ifindex: u32,
}

fn check(rc: libc::c_int, what: &str) {
    assert!(rc >= 0, "{what}: {}", std::io::Error::last_os_error());
}

fn setopt<T>(fd: &OwnedFd, level: libc::c_int, name: libc::c_int, val: &T, what: &str) {
    // SAFETY: `val` points to a live T of the given size.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (val as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    check(rc, what);
}

fn sockaddr_v4(a: Ipv4Addr) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(a.octets()),
        },
        sin_zero: [0; 8],
    }
}

fn sockaddr_v6(a: Ipv6Addr, scope: u32) -> libc::sockaddr_in6 {
    libc::sockaddr_in6 {
        sin6_family: libc::AF_INET6 as libc::sa_family_t,
        sin6_port: 0,
        sin6_flowinfo: 0,
        sin6_addr: libc::in6_addr {
            s6_addr: a.octets(),
        },
        sin6_scope_id: scope,
    }
}

impl RawSock {
    /// Open inside `ns` (the socket stays in that namespace).
    fn open(ns: &Netns, dev: &str, bind: IpAddr) -> Self {
        let _inside = ns.enter();
        let v4 = bind.is_ipv4();
        let family = if v4 { libc::AF_INET } else { libc::AF_INET6 };
        let name = std::ffi::CString::new(dev).expect("device name");
        // SAFETY: plain syscalls with valid arguments; the fd is owned at once.
        let (fd, ifindex) = unsafe {
            let raw = libc::socket(
                family,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::c_int::from(IPPROTO_VRRP),
            );
            check(raw, "socket");
            (
                OwnedFd::from_raw_fd(raw),
                libc::if_nametoindex(name.as_ptr()),
            )
        };
        assert_ne!(ifindex, 0, "no interface {dev}");
        // SAFETY: the name buffer is valid for its length.
        let rc = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_BINDTODEVICE,
                name.as_ptr().cast(),
                dev.len() as libc::socklen_t,
            )
        };
        check(rc, "SO_BINDTODEVICE");
        let ttl: libc::c_int = 255;
        let off: libc::c_int = 0;
        let tv = libc::timeval {
            tv_sec: 0,
            tv_usec: 20_000,
        };
        setopt(&fd, libc::SOL_SOCKET, libc::SO_RCVTIMEO, &tv, "SO_RCVTIMEO");
        let idx = libc::c_int::try_from(ifindex).expect("ifindex fits");
        if v4 {
            setopt(&fd, libc::IPPROTO_IP, libc::IP_TTL, &ttl, "IP_TTL");
            setopt(
                &fd,
                libc::IPPROTO_IP,
                libc::IP_MULTICAST_TTL,
                &ttl,
                "IP_MULTICAST_TTL",
            );
            setopt(
                &fd,
                libc::IPPROTO_IP,
                libc::IP_MULTICAST_LOOP,
                &off,
                "IP_MULTICAST_LOOP",
            );
            let mreq = libc::ip_mreqn {
                imr_multiaddr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(MCAST_V4.octets()),
                },
                imr_address: libc::in_addr { s_addr: 0 },
                imr_ifindex: idx,
            };
            setopt(
                &fd,
                libc::IPPROTO_IP,
                libc::IP_MULTICAST_IF,
                &mreq,
                "IP_MULTICAST_IF",
            );
            setopt(
                &fd,
                libc::IPPROTO_IP,
                libc::IP_ADD_MEMBERSHIP,
                &mreq,
                "IP_ADD_MEMBERSHIP",
            );
            // Not bound to 192.0.2.2: a raw socket bound to an address receives only
            // packets addressed to it, not the multicast group. The source is still
            // 192.0.2.2, the device's only address.
            assert_eq!(bind, IpAddr::V4(PEER_V4), "the device's only address");
        } else {
            setopt(
                &fd,
                libc::IPPROTO_IPV6,
                libc::IPV6_UNICAST_HOPS,
                &ttl,
                "IPV6_UNICAST_HOPS",
            );
            setopt(
                &fd,
                libc::IPPROTO_IPV6,
                libc::IPV6_MULTICAST_HOPS,
                &ttl,
                "IPV6_MULTICAST_HOPS",
            );
            setopt(
                &fd,
                libc::IPPROTO_IPV6,
                libc::IPV6_MULTICAST_IF,
                &idx,
                "IPV6_MULTICAST_IF",
            );
            setopt(
                &fd,
                libc::IPPROTO_IPV6,
                libc::IPV6_MULTICAST_LOOP,
                &off,
                "IPV6_MULTICAST_LOOP",
            );
            let IpAddr::V6(b) = bind else { unreachable!() };
            let sa = sockaddr_v6(b, ifindex);
            // SAFETY: `sa` is a valid sockaddr_in6.
            let rc = unsafe {
                libc::bind(
                    fd.as_raw_fd(),
                    (&sa as *const libc::sockaddr_in6).cast(),
                    std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
                )
            };
            check(rc, "bind");
        }
        RawSock { fd, v4, ifindex }
    }

    /// Send one VRRP message (the kernel adds the IP header).
    fn send(&self, payload: &[u8], dst: IpAddr) {
        // SAFETY: valid buffer and sockaddr of the socket's family.
        let rc = unsafe {
            match dst {
                IpAddr::V4(d) if self.v4 => {
                    let sa = sockaddr_v4(d);
                    libc::sendto(
                        self.fd.as_raw_fd(),
                        payload.as_ptr().cast(),
                        payload.len(),
                        0,
                        (&sa as *const libc::sockaddr_in).cast(),
                        std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
                    )
                }
                IpAddr::V6(d) if !self.v4 => {
                    let sa = sockaddr_v6(d, self.ifindex);
                    libc::sendto(
                        self.fd.as_raw_fd(),
                        payload.as_ptr().cast(),
                        payload.len(),
                        0,
                        (&sa as *const libc::sockaddr_in6).cast(),
                        std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
                    )
                }
                _ => panic!("destination {dst} does not match the socket's family"),
            }
        };
        assert_eq!(
            usize::try_from(rc).ok(),
            Some(payload.len()),
            "sendto {dst}: {}",
            std::io::Error::last_os_error()
        );
    }

    /// One received IPv4 packet (header included), or `None` after the 20 ms
    /// receive timeout.
    fn recv_v4(&self) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; 2048];
        // SAFETY: valid writable buffer.
        let n = unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        let n = usize::try_from(n).ok()?;
        buf.truncate(n);
        Some(buf)
    }
}

fn fixture_field<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("fixture lacks `{key}`"))
        .trim()
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digit"))
        .collect()
}

#[test]
fn recaptured_adverts_match_fixtures() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/vrrp");
    let out = PathBuf::from(format!("/tmp/lbt-vrrp-recapture-{}", std::process::id()));
    let _ = fs::remove_dir_all(&out);
    fs::create_dir_all(&out).expect("mkdir");
    let res = Command::new("bash")
        .arg(fixtures.join("capture.sh"))
        .arg(&out)
        .output()
        .expect("run capture.sh");
    let log = String::from_utf8_lossy(&res.stderr).into_owned();
    let cleanup = || {
        let _ = fs::remove_dir_all(&out);
    };
    if !res.status.success() {
        cleanup();
        panic!("capture.sh failed:\n{log}");
    }
    let pass = auth_from_password("secret12").expect("8 bytes");
    let cases: [(&str, Expect); 6] = [
        (
            "v2_pass",
            Expect {
                auth: Some(pass),
                ..Expect::new(Version::V2, 51, 100)
            },
        ),
        (
            "v2_pass_prio0",
            Expect {
                auth: Some(pass),
                ..Expect::new(Version::V2, 51, 100)
            },
        ),
        ("v3_unicast_v4", Expect::new(Version::V3, 52, 10)),
        ("v3_unicast_v4_prio0", Expect::new(Version::V3, 52, 10)),
        ("v3_ipv6", Expect::new(Version::V3, 53, 100)),
        ("v3_ipv6_prio0", Expect::new(Version::V3, 53, 100)),
    ];
    let mut failures = Vec::new();
    for (name, expect) in cases {
        let committed = fs::read_to_string(fixtures.join(format!("{name}.hex")))
            .unwrap_or_else(|e| panic!("committed {name}.hex: {e}"));
        let Ok(fresh) = fs::read_to_string(out.join(format!("{name}.hex"))) else {
            failures.push(format!("{name}: not captured"));
            continue;
        };
        for key in ["src", "dst", "ttl", "vrrp"] {
            let (a, b) = (fixture_field(&committed, key), fixture_field(&fresh, key));
            if a != b {
                failures.push(format!("{name}: {key} committed {a}, captured {b}"));
            }
        }
        let src: IpAddr = fixture_field(&fresh, "src").parse().expect("src");
        let dst: IpAddr = fixture_field(&fresh, "dst").parse().expect("dst");
        let rx = if src.is_ipv4() {
            parse_ipv4_packet(&hex(fixture_field(&fresh, "packet"))).expect("IPv4 packet")
        } else {
            Received {
                src,
                dst,
                ttl: fixture_field(&fresh, "ttl").parse().expect("ttl"),
                payload: hex(fixture_field(&fresh, "vrrp")),
            }
        };
        match decode(&rx, &expect) {
            Ok(a) => {
                let again =
                    encode(&a, rx.src, rx.dst, ChecksumMode::PseudoHeader).expect("encodes");
                if again != rx.payload {
                    failures.push(format!("{name}: re-encoding differs"));
                }
            }
            Err(r) => failures.push(format!("{name}: dropped as {}", r.name())),
        }
    }
    cleanup();
    assert!(failures.is_empty(), "{failures:#?}\ncapture log:\n{log}");
}

const THREE_INSTANCES: &str = r#"
global_defs {
    router_id lbt_vrrp_interop
}
vrrp_instance V2PASS {
    version 2
    state BACKUP
    interface va
    virtual_router_id 51
    priority 150
    advert_int 1
    authentication {
        auth_type PASS
        auth_pass secret12
    }
    virtual_ipaddress {
        192.0.2.51/32 dev va
    }
}
vrrp_instance V3UNI {
    version 3
    state BACKUP
    interface va
    virtual_router_id 52
    priority 100
    advert_int 0.1
    unicast_src_ip 192.0.2.1
    unicast_peer {
        192.0.2.2
    }
    virtual_ipaddress {
        192.0.2.52/32 dev va
        192.0.2.152/32 dev va
    }
}
vrrp_instance V3V6 {
    version 3
    native_ipv6
    state BACKUP
    interface va
    virtual_router_id 53
    priority 100
    advert_int 1
    virtual_ipaddress {
        2001:db8::53/128 dev va
    }
}
"#;

/// Lines saying `inst` left MASTER for BACKUP (not the initial "(init)" one).
fn stepped_down(ka: &Keepalived, inst: &str) -> usize {
    ka.log()
        .lines()
        .filter(|l| l.contains(&format!("({inst}) Entering BACKUP STATE")) && !l.contains("init"))
        .count()
}

#[test]
fn keepalived_accepts_our_adverts_and_rejects_bad_ones() {
    let pair = Pair::new("vrrpi");
    let ka = Keepalived::start(&pair.ka.name, "interop", THREE_INSTANCES);
    for inst in ["V2PASS", "V3UNI", "V3V6"] {
        ka.wait_for(
            &format!("({inst}) Entering MASTER STATE"),
            1,
            Duration::from_secs(15),
        );
    }
    let s4 = RawSock::open(&pair.peer, "vb", IpAddr::V4(PEER_V4));
    let s6 = RawSock::open(&pair.peer, "vb", IpAddr::V6(PEER_LL));

    let v2 = |priority: u8, pass: &str, int_cs: u16| {
        let a = Advert {
            version: Version::V2,
            vrid: 51,
            priority,
            max_advert_int_cs: int_cs,
            addresses: vec![ip("192.0.2.51")],
            auth: Some(auth_from_password(pass).expect("8 bytes")),
        };
        encode(
            &a,
            IpAddr::V4(PEER_V4),
            IpAddr::V4(MCAST_V4),
            ChecksumMode::PseudoHeader,
        )
        .expect("encodes")
    };
    let v3u = |priority: u8, mode: ChecksumMode| {
        let a = Advert {
            version: Version::V3,
            vrid: 52,
            priority,
            max_advert_int_cs: 10,
            addresses: vec![ip("192.0.2.52"), ip("192.0.2.152")],
            auth: None,
        };
        encode(&a, IpAddr::V4(PEER_V4), IpAddr::V4(KA_V4), mode).expect("encodes")
    };
    let v6 = |priority: u8| {
        let a = Advert {
            version: Version::V3,
            vrid: 53,
            priority,
            max_advert_int_cs: 100,
            addresses: vec![ip("2001:db8::53")],
            auth: None,
        };
        encode(
            &a,
            IpAddr::V6(PEER_LL),
            IpAddr::V6(MCAST_V6),
            ChecksumMode::PseudoHeader,
        )
        .expect("encodes")
    };

    // Bad adverts, all with a higher priority: keepalived must ignore them.
    let bad = [
        (v2(200, "wrongpw!", 100), IpAddr::V4(MCAST_V4)),
        (v2(200, "secret12", 200), IpAddr::V4(MCAST_V4)),
        (v3u(200, ChecksumMode::MessageOnly), IpAddr::V4(KA_V4)),
    ];
    for _ in 0..10 {
        for (p, dst) in &bad {
            s4.send(p, *dst);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    ka.wait_for(
        "(V2PASS) received an invalid passwd",
        1,
        Duration::from_secs(3),
    );
    ka.wait_for(
        "(V2PASS) advertisement interval mismatch",
        1,
        Duration::from_secs(3),
    );
    ka.wait_for("(V3UNI) Invalid VRRPv3 checksum", 1, Duration::from_secs(3));
    for inst in ["V2PASS", "V3UNI", "V3V6"] {
        assert_eq!(stepped_down(&ka, inst), 0, "{inst}:\n{}", ka.log());
    }

    // Good adverts: every keepalived master steps down.
    let good4 = [
        (v2(200, "secret12", 100), IpAddr::V4(MCAST_V4)),
        (v3u(200, ChecksumMode::PseudoHeader), IpAddr::V4(KA_V4)),
    ];
    let good6 = v6(200);
    let end = Instant::now() + Duration::from_secs(5);
    while ["V2PASS", "V3UNI", "V3V6"]
        .iter()
        .any(|i| stepped_down(&ka, i) == 0)
    {
        assert!(
            Instant::now() < end,
            "keepalived did not step down:\n{}",
            ka.log()
        );
        for (p, dst) in &good4 {
            s4.send(p, *dst);
        }
        s6.send(&good6, IpAddr::V6(MCAST_V6));
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = ka.log();
    for needle in [
        "(V2PASS) Master received advert from 192.0.2.2 with higher priority 200, ours 150",
        "(V3UNI) Master received advert from 192.0.2.2 with higher priority 200, ours 100",
        "(V3V6) Master received advert from fe80::ff:fe00:b02 with higher priority 200, ours 100",
    ] {
        assert!(log.contains(needle), "missing `{needle}`:\n{log}");
    }
}

/// lbd's side of the duel: one instance on a raw socket in the peer namespace.
struct Us {
    sock: RawSock,
    inst: Instance,
    expect: Expect,
    auth: [u8; 8],
    counters: Counters,
    /// (time, state) of every Notify.
    notes: Vec<(Instant, State)>,
    /// When the last priority-0 advert arrived.
    prio0_at: Option<Instant>,
}

impl Us {
    fn act(&mut self, actions: Vec<Action>, now: Instant) {
        for a in actions {
            match a {
                Action::SendAdvert { priority } => {
                    let adv = self.inst.make_advert(priority, Some(self.auth));
                    let bytes = encode(
                        &adv,
                        IpAddr::V4(PEER_V4),
                        IpAddr::V4(MCAST_V4),
                        ChecksumMode::PseudoHeader,
                    )
                    .expect("encodes");
                    self.sock.send(&bytes, IpAddr::V4(MCAST_V4));
                    self.counters.record_sent();
                }
                Action::Notify { state, .. } => self.notes.push((now, state)),
                // VIPs, forwarding and GARPs are the daemon's edge, not tested here.
                Action::BecomeMaster | Action::LeaveMaster | Action::SendGratuitous => {}
            }
        }
        self.counters.sync_transitions(&self.inst);
    }

    /// Run the instance on real time until `done` holds or `timeout` passes.
    fn pump_until(&mut self, timeout: Duration, mut done: impl FnMut(&Us) -> bool) -> bool {
        let end = Instant::now() + timeout;
        loop {
            if done(self) {
                return true;
            }
            let now = Instant::now();
            if now >= end {
                return false;
            }
            if now >= self.inst.next_deadline() {
                let a = self.inst.on_timer(now);
                self.act(a, now);
            }
            if let Some(pkt) = self.sock.recv_v4() {
                let now = Instant::now();
                let res = parse_ipv4_packet(&pkt).and_then(|rx| {
                    let a = decode(&rx, &self.expect)?;
                    Ok((rx.src, a))
                });
                self.counters
                    .record_decode(&res.as_ref().map(|(_, a)| a.clone()).map_err(|e| *e));
                if let Ok((src, a)) = res {
                    if a.priority == 0 {
                        self.prio0_at = Some(now);
                    }
                    let out = self.inst.on_advert(src, &a, now);
                    self.act(out, now);
                }
            }
        }
    }
}

#[test]
fn state_machine_duels_keepalived() {
    let pair = Pair::new("vrrpd");
    let mut ka = Keepalived::start(
        &pair.ka.name,
        "duel",
        r#"
vrrp_instance V2PASS {
    state BACKUP
    interface va
    virtual_router_id 51
    priority 150
    advert_int 1
    authentication {
        auth_type PASS
        auth_pass secret12
    }
    virtual_ipaddress {
        192.0.2.51/32 dev va
    }
}
"#,
    );
    ka.wait_for("(V2PASS) Entering MASTER STATE", 1, Duration::from_secs(10));

    let cfg = InstanceConfig {
        priority: 200,
        ..InstanceConfig::new(
            "lbd",
            51,
            Version::V2,
            IpAddr::V4(PEER_V4),
            vec![ip("192.0.2.51")],
        )
    };
    let auth = auth_from_password("secret12").expect("8 bytes");
    let expect = cfg.expect(Some(auth));
    let now = Instant::now();
    let mut us = Us {
        sock: RawSock::open(&pair.peer, "vb", IpAddr::V4(PEER_V4)),
        inst: Instance::new(cfg, now),
        expect,
        auth,
        counters: Counters::default(),
        notes: Vec::new(),
        prio0_at: None,
    };

    // 1. We (200) preempt keepalived (150): ignore its adverts, time out, advertise.
    let ok = us.pump_until(Duration::from_secs(8), |u| {
        u.inst.state() == State::Master && stepped_down(&ka, "V2PASS") == 1
    });
    assert!(ok, "no preemption: {:?}\n{}", us.notes, ka.log());
    assert!(us.counters.adverts_received >= 2, "{:?}", us.counters);
    // It stays that way.
    us.pump_until(Duration::from_secs(2), |_| false);
    assert_eq!(us.inst.state(), State::Master);
    assert_eq!(stepped_down(&ka, "V2PASS"), 1);

    // 2. Tracking drops us to 100: keepalived (150, preempt) takes over, we yield.
    let now = Instant::now();
    let a = us.inst.set_priority_adjustment(-100, now);
    us.act(a, now);
    let ok = us.pump_until(Duration::from_secs(8), |u| {
        u.inst.state() == State::Backup && ka.count("(V2PASS) Entering MASTER STATE") == 2
    });
    assert!(
        ok,
        "keepalived did not take back: {:?}\n{}",
        us.notes,
        ka.log()
    );
    assert_eq!(us.inst.master(), Some(IpAddr::V4(KA_V4)));

    // 3. keepalived stops: its priority 0 makes us master after Skew_Time
    // ((256 - 100) / 256 s = 609 ms), far sooner than Master_Down_Interval (3.6 s).
    us.pump_until(Duration::from_millis(300), |_| false);
    ka.terminate();
    let ok = us.pump_until(Duration::from_secs(4), |u| u.inst.state() == State::Master);
    assert!(ok, "no takeover after priority 0: {:?}", us.notes);
    let (t, s) = *us.notes.last().expect("a notification");
    assert_eq!(s, State::Master);
    let prio0 = us.prio0_at.expect("keepalived sent priority 0");
    let took = t.duration_since(prio0);
    assert!(
        took >= Duration::from_millis(600) && took < Duration::from_millis(1200),
        "took {took:?} after priority 0"
    );
    assert_eq!(us.counters.priority_zero_received, 1, "{:?}", us.counters);
    assert_eq!(us.counters.dropped_total(), 0, "{:?}", us.counters);
    assert_eq!(us.counters.dropped(DropReason::BadChecksum), 0);
    assert_eq!(us.inst.transitions(), 3);
    ka.stop();
}

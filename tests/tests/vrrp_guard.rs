//! VRRP against a stranger on the wire (issue 11.12), as root, with a real lbd in a
//! network namespace and adverts crafted by this test from the other end of a veth:
//!
//! - with `unicast_peers`, an advert from any other source is dropped and counted
//!   (`not_a_peer`), however high its priority; a configured peer's is obeyed;
//! - a master flooded with valid lower-priority adverts answers far fewer of them
//!   than it receives (at most about one per advert interval);
//! - drops show in the control API (what `lbctl vrrp` prints) at once, while the
//!   instance has no timer due for minutes; other VRIDs and empty payloads count.
//!
//! Namespaces `a` (lbd, veth `la`, 198.51.100.1/24) and `b` (veth `lb`,
//! 198.51.100.2/24 = the configured peer, 198.51.100.66/24 = a stranger); a bpffs
//! on a scratch directory for lbd's pins. lbd is killed, the bpffs unmounted and the
//! namespaces deleted on drop, also when a test fails. Needs root, iproute2.

use std::{
    ffi::CString,
    fs,
    net::{IpAddr, Ipv4Addr},
    path::PathBuf,
    process::Child,
    sync::Mutex,
    time::{Duration, Instant},
};

use lb_api::{
    control::{Request, Response},
    view::VrrpView,
};
use lb_tests::{
    lab::{ask_socket, spawn_lbd, wait_until},
    netns::{sh, Netns},
};
use lb_vrrp::{encode, io::VrrpSocket, Advert, ChecksumMode, Version};

static SERIAL: Mutex<()> = Mutex::new(());

const LBD: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
const PEER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);
const STRANGER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 66);
const VRID: u8 = 71;
const VIP: &str = "198.51.100.100";

/// lbd in namespace `a`, the sender's end in `b`.
struct Rig {
    dir: PathBuf,
    bpffs: PathBuf,
    socket: PathBuf,
    lbd: Option<Child>,
    a: Netns,
    b: Netns,
}

impl Rig {
    /// Build the namespaces and start lbd with one unicast VRRPv3 instance
    /// (`priority`, `interval`).
    fn up(tag: &str, priority: u8, interval: &str) -> Rig {
        let a = Netns::new(&format!("{tag}a"));
        let b = Netns::new(&format!("{tag}b"));
        sh(&format!(
            "ip -n {a} link add la type veth peer name lb netns {b} && \
             ip -n {a} addr add {LBD}/24 dev la && \
             ip -n {b} addr add {PEER}/24 dev lb && \
             ip -n {b} addr add {STRANGER}/24 dev lb && \
             ip -n {a} link set la up && ip -n {b} link set lb up",
            a = a.name,
            b = b.name
        ));
        let dir = PathBuf::from(format!("/tmp/lbt-vguard-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let bpffs = dir.join("bpf");
        fs::create_dir_all(&bpffs).expect("mkdir");
        let mut rig = Rig {
            socket: dir.join("lbd.sock"),
            bpffs,
            dir,
            lbd: None,
            a,
            b,
        };
        sh(&format!("mount -t bpf bpf {}", rig.bpffs.display()));
        let config = rig.dir.join("lbd.toml");
        fs::write(
            &config,
            format!(
                "[global]\nnode_name = \"{tag}\"\ncontrol_socket = \"{sock}\"\n\
                 metrics_listen = \"off\"\npin_dir = \"{pins}\"\n\n\
                 [[interface]]\nname = \"la\"\n\n\
                 [[vrrp]]\nname = \"VI_G\"\ninterface = \"la\"\nvirtual_router_id = {VRID}\n\
                 priority = {priority}\nversion = 3\nadvert_interval = \"{interval}\"\n\
                 unicast_source = \"{LBD}\"\nunicast_peers = [\"{PEER}\"]\n\
                 virtual_addresses = [\"{VIP}/24\"]\n",
                sock = rig.socket.display(),
                pins = rig.bpffs.join("lbd").display(),
            ),
        )
        .expect("write config");
        rig.lbd = Some(spawn_lbd(&rig.a.name, &config, &rig.dir.join("lbd.log")).expect("lbd"));
        wait_until(Duration::from_secs(30), "lbd answering", || {
            rig.view_opt().is_some()
        });
        rig
    }

    fn view_opt(&self) -> Option<VrrpView> {
        match ask_socket(&self.socket, Request::Vrrp)? {
            Response::Vrrp { instances } => instances.into_iter().next(),
            _ => None,
        }
    }

    fn view(&self) -> VrrpView {
        self.view_opt()
            .unwrap_or_else(|| panic!("lbd does not answer; log:\n{}", self.log()))
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.join("lbd.log")).unwrap_or_default()
    }

    fn wait_state(&self, state: &str) {
        wait_until(Duration::from_secs(15), state, || {
            self.view_opt().is_some_and(|v| v.state == state)
        });
    }

    fn has_vip(&self) -> bool {
        sh(&format!("ip -n {} addr show dev la", self.a.name)).contains(&format!("{VIP}/24"))
    }

    /// Send `adverts` (VRRP messages, already encoded) from `src` in namespace `b`
    /// to lbd, pausing briefly every `batch` so lbd's socket buffer keeps up.
    fn send(&self, src: Ipv4Addr, messages: &[Vec<u8>], batch: usize) {
        let _inside = self.b.enter();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let sock = VrrpSocket::open("lb", false, Some(IpAddr::V4(src)), false)
                .expect("open a VRRP socket in b");
            for (i, m) in messages.iter().enumerate() {
                sock.send(m, IpAddr::V4(LBD)).await.expect("send");
                if (i + 1) % batch.max(1) == 0 {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
        });
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        if let Some(mut child) = self.lbd.take() {
            // SAFETY: kill(2) on the pid of our own child.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
            let end = Instant::now() + Duration::from_secs(10);
            while Instant::now() < end && child.try_wait().ok().flatten().is_none() {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Ok(c) = CString::new(self.bpffs.as_os_str().as_encoded_bytes()) {
            // SAFETY: a NUL-terminated path; our scratch mount only.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
        let _ = fs::remove_dir_all(&self.dir);
        // The namespaces (and the veth pair) go when `a` and `b` drop.
    }
}

/// A v3 advert for our VRID and VIP from `src` to lbd.
fn advert(src: Ipv4Addr, vrid: u8, priority: u8, interval_cs: u16) -> Vec<u8> {
    let a = Advert {
        version: Version::V3,
        vrid,
        priority,
        max_advert_int_cs: interval_cs,
        addresses: vec![VIP.parse().expect("vip")],
        auth: None,
    };
    encode(
        &a,
        IpAddr::V4(src),
        IpAddr::V4(LBD),
        ChecksumMode::PseudoHeader,
    )
    .expect("encodes")
}

fn dropped(v: &VrrpView, reason: &str) -> u64 {
    v.dropped
        .iter()
        .find(|(r, _)| r == reason)
        .map_or(0, |(_, n)| *n)
}

#[test]
fn unicast_peers_filter_out_a_strangers_adverts() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let rig = Rig::up("vgf", 200, "1s");
    rig.wait_state("MASTER");
    assert!(rig.has_vip());

    // The adversarial run's takeover: priority 255, the largest interval, from a
    // source that is not a configured peer. Dropped and counted; nothing moves.
    let forged: Vec<Vec<u8>> = (0..3).map(|_| advert(STRANGER, VRID, 255, 4095)).collect();
    rig.send(STRANGER, &forged, 10);
    wait_until(Duration::from_secs(10), "not_a_peer = 3", || {
        rig.view_opt()
            .is_some_and(|v| dropped(&v, "not_a_peer") == 3)
    });
    let v = rig.view();
    assert_eq!(v.state, "MASTER", "{v:?}\n{}", rig.log());
    assert_eq!(v.master, Some(IpAddr::V4(LBD)));
    assert!(rig.has_vip(), "the VIP stays");

    // The configured peer is heard: the same advert from it wins.
    rig.send(PEER, &[advert(PEER, VRID, 255, 100)], 10);
    rig.wait_state("BACKUP");
    let v = rig.view();
    assert_eq!(v.master, Some(IpAddr::V4(PEER)), "{v:?}");
    assert_eq!(dropped(&v, "not_a_peer"), 3);
}

#[test]
fn a_flood_of_lower_priority_adverts_is_not_answered_one_for_one() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let rig = Rig::up("vgr", 200, "1s");
    rig.wait_state("MASTER");
    let before = rig.view();
    const N: usize = 3000;
    let flood: Vec<Vec<u8>> = (0..N).map(|_| advert(PEER, VRID, 100, 100)).collect();
    rig.send(PEER, &flood, 50);
    // Wait (bounded) until lbd has taken in what reached it.
    let mut last = u64::MAX;
    let mut after = rig.view();
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(200));
        after = rig.view();
        if after.adverts_received == last {
            break;
        }
        last = after.adverts_received;
    }
    let received = after.adverts_received - before.adverts_received;
    let sent = after.adverts_sent - before.adverts_sent;
    eprintln!("flood: {received} lower-priority adverts received, {sent} adverts sent");
    assert!(
        received >= (N / 2) as u64,
        "only {received} of {N} adverts reached lbd"
    );
    assert_eq!(after.state, "MASTER");
    // Before: one answer per advert (3,000 in, 3,010 out). Now at most one answer
    // per advert interval, plus the periodic adverts.
    assert!(
        sent < received / 10,
        "{sent} adverts sent for {received} lower-priority adverts received"
    );
}

#[test]
fn drops_are_visible_at_once_and_all_counted() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // A backup with a 40 s interval: its Master_Down timer is two minutes away, so
    // nothing but the drops themselves can publish them.
    let rig = Rig::up("vgv", 100, "40s");
    rig.wait_state("BACKUP");
    let v = rig.view();
    assert_eq!(v.dropped.iter().map(|(_, n)| n).sum::<u64>(), 0, "{v:?}");
    rig.send(
        STRANGER,
        &[
            advert(STRANGER, VRID, 255, 4095),
            advert(STRANGER, VRID, 255, 4095),
        ],
        10,
    );
    // Another virtual router's advert from the peer, and an empty VRRP payload.
    rig.send(PEER, &[advert(PEER, VRID + 1, 100, 100), Vec::new()], 10);
    // Well within the 40 s interval: published by the drops, not by a timer.
    wait_until(
        Duration::from_secs(5),
        "drops published without an advert or timer",
        || {
            rig.view_opt().is_some_and(|v| {
                dropped(&v, "not_a_peer") == 2
                    && dropped(&v, "wrong_vrid") == 1
                    && dropped(&v, "truncated") == 1
            })
        },
    );
    let v = rig.view();
    assert_eq!(v.state, "BACKUP");
    assert_eq!(v.adverts_received, 0, "{v:?}");
    // And `lbctl vrrp` prints them.
    let out = std::process::Command::new(lb_tests::lab::binary("lbctl"))
        .arg("--socket")
        .arg(&rig.socket)
        .arg("vrrp")
        .output()
        .expect("lbctl");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("not_a_peer=2") && text.contains("wrong_vrid=1"),
        "{text}"
    );
}

//! Backend MAC resolution over rtnetlink against a real kernel: two network
//! namespaces joined by a veth pair (A: a0 10.77.0.1/24, fd77::1/64; B: b0
//! 10.77.0.2/24, fd77::2/64), the test thread inside A. Checks that `resolve` finds
//! B's real MAC (IPv4 and IPv6), that a gateway route is refused (DR needs L2
//! adjacency), that `watch_neighbors` reports a replaced and a deleted entry, and
//! that links are read correctly. Needs root; namespaces are deleted on drop, also
//! when a test fails.

use std::{
    net::{IpAddr, Ipv4Addr},
    time::Duration,
};

use lb_netlink::neigh::{
    format_mac, parse_mac, usable, watch_neighbors, NeighError, NeighState, Neighbor, NetlinkHandle,
};
use lb_tests::netns::{sh, Netns};
use tokio::sync::mpsc::Receiver;

/// Two namespaces joined by a veth pair, addressed as in the module docs.
struct Pair {
    a: Netns,
    b: Netns,
}

impl Pair {
    fn new(tag: &str) -> Self {
        let a = Netns::new(&format!("{tag}a"));
        let b = Netns::new(&format!("{tag}b"));
        sh(&format!(
            "ip -n {a} link add a0 type veth peer name b0 netns {b} && \
             ip -n {a} addr add 10.77.0.1/24 dev a0 && \
             ip -n {a} addr add fd77::1/64 dev a0 nodad && \
             ip -n {b} addr add 10.77.0.2/24 dev b0 && \
             ip -n {b} addr add fd77::2/64 dev b0 nodad && \
             ip -n {a} link set a0 up && ip -n {b} link set b0 up && \
             ip -n {a} route add 10.78.0.0/24 via 10.77.0.2 && \
             ip -n {a} route add fd78::/64 via fd77::2",
            a = a.name,
            b = b.name
        ));
        Pair { a, b }
    }
}

/// The MAC of `dev` in namespace `ns`, as `ip link show` prints it.
fn mac_of(ns: &Netns, dev: &str) -> [u8; 6] {
    let out = sh(&format!("ip -n {} -o link show {dev}", ns.name));
    let text = out
        .split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .unwrap_or_else(|| panic!("no link/ether in {out}"));
    parse_mac(text).expect("ip prints a valid MAC")
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Wait for an event about `ip` that satisfies `pred`, for at most 5 s.
async fn wait_event(
    rx: &mut Receiver<Neighbor>,
    ip: IpAddr,
    pred: impl Fn(&Neighbor) -> bool,
) -> Neighbor {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let ev = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("no matching neighbour event for {ip} within 5s"))
            .expect("watch channel open");
        if ev.ip == ip && pred(&ev) {
            return ev;
        }
    }
}

#[test]
fn resolves_routes_links_and_watches() {
    let pair = Pair::new("ngh");
    let a_mac = mac_of(&pair.a, "a0");
    let b_mac = mac_of(&pair.b, "b0");
    // Enter A first: netlink sockets belong to the namespace of the creating thread.
    let _inside = pair.a.enter();
    rt().block_on(async {
        let nl = NetlinkHandle::new().await.expect("netlink");

        let a0 = nl.link_by_name("a0").await.expect("a0");
        assert_eq!(a0.name, "a0");
        assert_eq!(a0.mac, a_mac, "a0 MAC: {}", format_mac(&a0.mac));
        assert!(a0.up, "a0 is up with carrier");
        assert_eq!(nl.link(a0.ifindex).await.expect("a0 by index"), a0);
        assert!(matches!(
            nl.link_by_name("nosuch0").await,
            Err(NeighError::LinkNotFound(_))
        ));
        assert!(matches!(
            nl.link(999_999).await,
            Err(NeighError::LinkNotFound(_))
        ));

        let b4: IpAddr = "10.77.0.2".parse().expect("ip");
        let route = nl.route_to(b4).await.expect("route to B");
        assert_eq!(route.ifindex, a0.ifindex);
        assert_eq!(route.gateway, None);

        // Off-link through a gateway: refused, by route_to and resolve alike.
        let far: IpAddr = "10.78.0.5".parse().expect("ip");
        match nl.route_to(far).await {
            Err(NeighError::NotDirectlyConnected { ip, gateway }) => {
                assert_eq!(ip, far);
                assert_eq!(gateway, IpAddr::V4(Ipv4Addr::new(10, 77, 0, 2)));
            }
            other => panic!("expected NotDirectlyConnected, got {other:?}"),
        }
        assert!(matches!(
            nl.resolve(far, Duration::from_millis(100)).await,
            Err(NeighError::NotDirectlyConnected { .. })
        ));
        assert!(matches!(
            nl.route_to("fd78::5".parse().expect("ip")).await,
            Err(NeighError::NotDirectlyConnected { .. })
        ));
        assert!(matches!(
            nl.route_to("10.77.0.1".parse().expect("ip")).await,
            Err(NeighError::LocalAddress { .. })
        ));
        assert!(matches!(
            nl.route_to("192.0.2.1".parse().expect("ip")).await,
            Err(NeighError::NoRoute { .. })
        ));

        // Nothing cached yet; resolve solicits and finds B's real MAC.
        assert!(nl
            .neighbor(b4, a0.ifindex)
            .await
            .expect("dump")
            .is_none_or(|n| !usable(&n)));
        let n = nl
            .resolve(b4, Duration::from_secs(5))
            .await
            .expect("resolve 10.77.0.2");
        assert_eq!(n.mac, Some(b_mac), "resolved MAC of B's b0");
        assert_eq!(n.ifindex, a0.ifindex);
        assert!(usable(&n), "{n:?}");
        assert_eq!(
            nl.neighbor(b4, a0.ifindex)
                .await
                .expect("dump")
                .map(|n| n.mac),
            Some(Some(b_mac))
        );

        let b6: IpAddr = "fd77::2".parse().expect("ip");
        let n6 = nl
            .resolve(b6, Duration::from_secs(5))
            .await
            .expect("resolve fd77::2");
        assert_eq!(n6.mac, Some(b_mac), "resolved MAC of B's b0 over NDP");

        // Nobody at .9: unresolved within the wait.
        let nobody: IpAddr = "10.77.0.9".parse().expect("ip");
        match nl.resolve(nobody, Duration::from_millis(300)).await {
            Err(NeighError::Unresolved { ip, ifindex, .. }) => {
                assert_eq!(ip, nobody);
                assert_eq!(ifindex, a0.ifindex);
            }
            other => panic!("expected Unresolved, got {other:?}"),
        }

        // Changes are followed.
        let mut rx = watch_neighbors().await.expect("watch");
        let fake = [0x02, 0, 0, 0, 0, 0x99];
        sh(&format!(
            "ip -n {} neigh replace 10.77.0.2 lladdr {} dev a0",
            pair.a.name,
            format_mac(&fake)
        ));
        let ev = wait_event(&mut rx, b4, |n| n.mac == Some(fake)).await;
        assert_eq!(ev.state, NeighState::Permanent);
        assert_eq!(ev.ifindex, a0.ifindex);
        let now = nl.neighbor(b4, a0.ifindex).await.expect("dump");
        assert_eq!(
            now.map(|n| (n.mac, n.state)),
            Some((Some(fake), NeighState::Permanent))
        );

        sh(&format!("ip -n {} neigh del 10.77.0.2 dev a0", pair.a.name));
        // The kernel first reports the entry failed (RTM_NEWNEIGH, no lladdr), then
        // removed (RTM_DELNEIGH): both arrive without a MAC.
        let ev = wait_event(&mut rx, b4, |n| n.mac.is_none()).await;
        assert!(
            matches!(ev.state, NeighState::Failed | NeighState::None),
            "{ev:?}"
        );
        assert!(!usable(&ev));
        wait_event(&mut rx, b4, |n| {
            n.mac.is_none() && n.state == NeighState::None
        })
        .await;

        // And a fresh resolve after the deletion finds the real MAC again.
        let n = nl
            .resolve(b4, Duration::from_secs(5))
            .await
            .expect("re-resolve");
        assert_eq!(n.mac, Some(b_mac));
        let ev = wait_event(&mut rx, b4, |n| n.mac == Some(b_mac)).await;
        assert!(usable(&ev), "{ev:?}");
    });
}

#[test]
fn handle_lives_in_the_namespace_it_was_created_in() {
    let pair = Pair::new("ngs");
    let rt = rt();
    let nl = {
        let _inside = pair.a.enter();
        rt.block_on(NetlinkHandle::new()).expect("netlink")
    };
    // Back home on this thread, the handle still sees A's interfaces.
    rt.block_on(async {
        let a0 = nl
            .link_by_name("a0")
            .await
            .expect("a0 seen from A's socket");
        assert_eq!(a0.mac, mac_of(&pair.a, "a0"));
        let n = nl
            .resolve("10.77.0.2".parse().expect("ip"), Duration::from_secs(5))
            .await
            .expect("resolve");
        assert_eq!(n.mac, Some(mac_of(&pair.b, "b0")));
    });
}

/// Thousands of backends at once (lbd's start with a big config): 2,000 permanent
/// neighbour entries, all looked up concurrently on one netlink handle, each finding
/// its own MAC. Each lookup is a single-entry `RTM_GETNEIGH`: a dump per lookup was
/// O(n²), and at 16,000 entries concurrent dumps on one socket failed with EBUSY
/// (`cargo xtask bench`'s lbd-at-scale figure runs that size).
#[test]
fn many_concurrent_lookups_on_one_handle() {
    const N: usize = 2000;
    let pair = Pair::new("ngm");
    let addr = |k: usize| -> IpAddr {
        format!("10.77.{}.{}", 1 + k / 250, k % 250 + 1)
            .parse()
            .expect("ip")
    };
    let mac = |k: usize| [2, 0, 0, 0, (k >> 8) as u8, k as u8];
    let mut batch = String::new();
    for k in 0..N {
        batch.push_str(&format!(
            "neigh add {} lladdr {} dev a0 nud permanent\n",
            addr(k),
            format_mac(&mac(k))
        ));
    }
    let file = std::env::temp_dir().join(format!("lbt-neigh-{}.batch", std::process::id()));
    std::fs::write(&file, batch).expect("write batch");
    pair.a.exec("ip addr add 10.77.255.254/16 dev a0");
    pair.a.exec(&format!("ip -batch {}", file.display()));
    let _ = std::fs::remove_file(&file);

    let _inside = pair.a.enter();
    rt().block_on(async {
        let nl = std::sync::Arc::new(NetlinkHandle::new().await.expect("netlink"));
        let a0 = nl.link_by_name("a0").await.expect("a0").ifindex;
        let lookups = (0..N).map(|k| {
            let nl = nl.clone();
            async move { (k, nl.neighbor(addr(k), a0).await) }
        });
        for (k, found) in futures_util::future::join_all(lookups).await {
            let n = found
                .unwrap_or_else(|e| panic!("lookup {k}: {e}"))
                .unwrap_or_else(|| panic!("lookup {k}: no entry"));
            assert_eq!(n.mac, Some(mac(k)), "entry {k}");
            assert_eq!(n.state, NeighState::Permanent, "entry {k}");
        }
        // A missing entry is None, not an error.
        assert!(nl
            .neighbor("10.77.200.200".parse().expect("ip"), a0)
            .await
            .expect("lookup of a missing entry")
            .is_none());
    });
}

//! Reconciler tests against an in-memory data plane that records every write, so
//! ordering (backends before tables before downs) and minimality are checked without
//! root.

use std::{
    net::IpAddr,
    time::{Duration, Instant},
};

use lb_common::maps::{
    addr_words, words_addr, ConnKey, ConnValue, FragKey, ServiceKey, BACKEND_DOWN,
    BACKEND_DRAINING, BACKEND_UP, NO_BACKEND,
};

use super::*;

use crate::memory::{MemoryDataplane as Fake, Write as Op};

const LIMITS: Limits = Limits {
    max_services: 8,
    max_backends: 64,
};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn key(port: u16) -> ServiceKey {
    ServiceKey {
        vip: addr_words(ip("198.51.100.10")),
        port,
        proto: 6,
        _pad: 0,
    }
}

fn backend(last: u8, weight: u32, healthy: bool) -> BackendInput {
    BackendInput {
        address: ip(&format!("10.0.0.{last}")),
        weight,
        healthy,
        link: Some(Link {
            mac: [2, 0, 0, 0, 0, last],
            ifindex: 2,
            src_mac: [2, 0xaa, 0, 0, 0, 1],
        }),
    }
}

fn desired(backends: Vec<BackendInput>) -> Desired {
    Desired {
        services: vec![ServiceInput {
            name: "web".into(),
            key: key(80),
            flags: 0,
            backends,
        }],
        table_size: 251,
        maglev_seed: 1,
        hash_seed: 9,
        forwarding: true,
        insert_limit: 0,
        keep_moved: false,
    }
}

fn table_backends(f: &Fake, k: &ServiceKey) -> std::collections::BTreeSet<u16> {
    f.services[k].slots().iter().map(|e| e.backend).collect()
}

#[test]
fn first_apply_installs_everything_and_a_repeat_writes_nothing() {
    let mut f = Fake::new(64);
    let mut r = Reconciler::new(LIMITS);
    let d = desired(vec![backend(1, 1, true), backend(2, 1, true)]);
    let report = r.apply(&mut f, &d, Instant::now()).unwrap();
    assert_eq!(report.backends_written, 2);
    assert_eq!(
        report.tables_written, 2,
        "the service and its fragment route"
    );
    let frag = FragKey {
        vip: key(80).vip,
        proto: 6,
        _pad: 0,
        _pad2: 0,
    };
    assert_eq!(
        f.routes.get(&frag),
        Some(&key(80)),
        "fragments of the VIP go to its service"
    );
    assert_eq!(table_backends(&f, &key(80)).len(), 2);
    assert_eq!(f.config.forwarding, 1);
    assert_eq!(f.config.hash_seed, 9);
    let b = f.backends[r.index_of(&key(80), ip("10.0.0.2")).unwrap() as usize];
    assert_eq!(
        (b.state, b.mac, b.ifindex, b.gen),
        (BACKEND_UP, [2, 0, 0, 0, 0, 2], 2, 1)
    );
    f.take_log();
    assert_eq!(
        r.apply(&mut f, &d, Instant::now()).unwrap(),
        ApplyReport::default()
    );
    assert!(f.take_log().is_empty());
}

#[test]
fn a_failed_backend_leaves_the_table_before_it_is_marked_down() {
    let mut f = Fake::new(64);
    let mut r = Reconciler::new(LIMITS);
    r.apply(
        &mut f,
        &desired(vec![backend(1, 1, true), backend(2, 1, true)]),
        Instant::now(),
    )
    .unwrap();
    f.take_log();
    r.apply(
        &mut f,
        &desired(vec![backend(1, 1, true), backend(2, 1, false)]),
        Instant::now(),
    )
    .unwrap();
    let idx2 = r.index_of(&key(80), ip("10.0.0.2")).unwrap();
    let log = f.take_log();
    let table_at = log.iter().position(|o| *o == Op::Service(key(80))).unwrap();
    let down_at = log
        .iter()
        .position(|o| *o == Op::Backend(idx2, BACKEND_DOWN))
        .unwrap();
    assert!(table_at < down_at, "{log:?}");
    assert!(!table_backends(&f, &key(80)).contains(&idx2));
    assert!(
        f.services[&key(80)].slots().iter().any(|e| e.prev == idx2),
        "moved slots remember the old backend"
    );
}

#[test]
fn a_new_backend_is_written_before_the_table_that_uses_it() {
    let mut f = Fake::new(64);
    let mut r = Reconciler::new(LIMITS);
    r.apply(&mut f, &desired(vec![backend(1, 1, true)]), Instant::now())
        .unwrap();
    f.take_log();
    r.apply(
        &mut f,
        &desired(vec![backend(1, 1, true), backend(3, 1, true)]),
        Instant::now(),
    )
    .unwrap();
    let idx3 = r.index_of(&key(80), ip("10.0.0.3")).unwrap();
    let log = f.take_log();
    let up_at = log
        .iter()
        .position(|o| *o == Op::Backend(idx3, BACKEND_UP))
        .unwrap();
    let table_at = log.iter().position(|o| *o == Op::Service(key(80))).unwrap();
    assert!(up_at < table_at, "{log:?}");
}

#[test]
fn weight_zero_drains_and_a_missing_mac_is_down() {
    let mut f = Fake::new(64);
    let mut r = Reconciler::new(LIMITS);
    let mut no_mac = backend(3, 1, true);
    no_mac.link = None;
    r.apply(
        &mut f,
        &desired(vec![backend(1, 1, true), backend(2, 0, true), no_mac]),
        Instant::now(),
    )
    .unwrap();
    let i = |last: u8| r.index_of(&key(80), ip(&format!("10.0.0.{last}"))).unwrap();
    assert_eq!(f.backends[i(2) as usize].state, BACKEND_DRAINING);
    assert_eq!(f.backends[i(3) as usize].state, BACKEND_DOWN);
    assert_eq!(table_backends(&f, &key(80)), [i(1)].into_iter().collect());
}

#[test]
fn freed_indices_are_reused_only_later_and_with_a_new_generation() {
    let limits = Limits {
        max_services: 8,
        max_backends: 2,
    };
    let mut f = Fake::new(64);
    let mut r = Reconciler::new(limits);
    r.apply(
        &mut f,
        &desired(vec![backend(1, 1, true), backend(2, 1, true)]),
        Instant::now(),
    )
    .unwrap();
    let old = r.index_of(&key(80), ip("10.0.0.2")).unwrap();
    // Replacing .2 by .3 in one apply needs a third index: refused, nothing reused early.
    let err = r.apply(
        &mut f,
        &desired(vec![backend(1, 1, true), backend(3, 1, true)]),
        Instant::now(),
    );
    assert!(matches!(err, Err(SyncError::Capacity(_))), "{err:?}");
    let mut r = Reconciler::new(limits);
    let mut f = Fake::new(64);
    r.apply(
        &mut f,
        &desired(vec![backend(1, 1, true), backend(2, 1, true)]),
        Instant::now(),
    )
    .unwrap();
    r.apply(&mut f, &desired(vec![backend(1, 1, true)]), Instant::now())
        .unwrap();
    assert_eq!(f.backends[old as usize].state, BACKEND_DOWN);
    r.apply(
        &mut f,
        &desired(vec![backend(1, 1, true), backend(3, 1, true)]),
        Instant::now(),
    )
    .unwrap();
    let new = r.index_of(&key(80), ip("10.0.0.3")).unwrap();
    assert_eq!(new, old, "the freed index is reused in a later apply");
    assert_eq!(
        f.backends[new as usize].gen, 2,
        "with its generation bumped"
    );
}

#[test]
fn adopting_pinned_state_changes_nothing() {
    let mut f = Fake::new(64);
    let mut r = Reconciler::new(LIMITS);
    let d = desired(vec![
        backend(1, 1, true),
        backend(2, 2, true),
        backend(4, 0, true),
    ]);
    r.apply(&mut f, &d, Instant::now()).unwrap();
    f.take_log();
    let mut adopted = Reconciler::adopt(&f, LIMITS, Instant::now()).unwrap();
    assert_eq!(
        adopted.apply(&mut f, &d, Instant::now()).unwrap(),
        ApplyReport::default()
    );
    assert!(f.take_log().is_empty());
    for last in [1, 2, 4] {
        let a = ip(&format!("10.0.0.{last}"));
        assert_eq!(adopted.index_of(&key(80), a), r.index_of(&key(80), a));
    }
}

#[test]
fn removing_a_service_removes_its_table_route_and_backends() {
    let mut f = Fake::new(64);
    let mut r = Reconciler::new(LIMITS);
    let mut d = desired(vec![backend(1, 1, true)]);
    d.services.push(ServiceInput {
        name: "dns".into(),
        key: key(53),
        flags: 0,
        backends: vec![backend(5, 1, true)],
    });
    r.apply(&mut f, &d, Instant::now()).unwrap();
    let idx5 = r.index_of(&key(53), ip("10.0.0.5")).unwrap();
    d.services.pop();
    let report = r.apply(&mut f, &d, Instant::now()).unwrap();
    assert_eq!(report.services_removed, 1);
    assert!(!f.services.contains_key(&key(53)));
    assert_eq!(f.backends[idx5 as usize].state, BACKEND_DOWN);
    // The fragment route follows the lowest remaining port (53 went away: now 80).
    let frag = FragKey {
        vip: key(80).vip,
        proto: 6,
        _pad: 0,
        _pad2: 0,
    };
    assert_eq!(f.routes.get(&frag), Some(&key(80)));
}

#[test]
fn settle_cleans_slots_without_live_tracked_flows() {
    let mut f = Fake::new(64);
    let mut r = Reconciler::new(LIMITS);
    let t0 = Instant::now();
    r.apply(
        &mut f,
        &desired(vec![backend(1, 1, true), backend(2, 1, true)]),
        t0,
    )
    .unwrap();
    r.apply(
        &mut f,
        &desired(vec![backend(1, 1, true), backend(2, 0, true)]),
        t0,
    )
    .unwrap();
    let idx2 = r.index_of(&key(80), ip("10.0.0.2")).unwrap();
    let table = f.services[&key(80)].clone();
    let dirty: Vec<usize> = table
        .slots()
        .iter()
        .enumerate()
        .filter(|(_, e)| e.is_dirty())
        .map(|(i, _)| i)
        .collect();
    assert!(!dirty.is_empty());
    // Find a client whose flow hashes to a dirty slot; track it on the drained backend.
    let flow_on = |slot: usize| {
        (1..60000u16)
            .map(|p| ConnKey {
                src: addr_words(ip("192.0.2.1")),
                dst: key(80).vip,
                sport: p,
                dport: 80,
                proto: 6,
                _pad: 0,
                _pad2: 0,
            })
            .find(|k| reduce(slot_hash(9, 0, k), table.len()) as usize == slot)
            .unwrap()
    };
    let live = flow_on(dirty[0]);
    let dead = flow_on(dirty[1]);
    f.now_ns = 100 * 1_000_000_000;
    f.conns.insert(
        live,
        ConnValue {
            backend: idx2,
            flags: 0,
            gen: 1,
            last_seen_ns: f.now_ns - 1_000_000_000,
        },
    );
    f.conns.insert(
        dead,
        ConnValue {
            backend: idx2,
            flags: 0,
            gen: 1,
            last_seen_ns: 0,
        },
    );
    let after = timeouts(30);
    assert!(
        r.settle(&mut f, &after, t0 + Duration::from_secs(5))
            .unwrap()
            .is_empty(),
        "not yet due"
    );
    let settled = r
        .settle(&mut f, &after, t0 + Duration::from_secs(31))
        .unwrap();
    assert_eq!(settled.len(), 1);
    assert_eq!(
        settled[0].slots.len(),
        dirty.len(),
        "every slot cleaned, the held one re-pointed"
    );
    let slots = f.services[&key(80)].slots();
    assert!(
        slots[dirty[0]].is_dirty(),
        "the live flow's slot stays dirty"
    );
    assert_eq!(
        slots[dirty[0]].prev, slots[dirty[0]].backend,
        "but its untracked flows now go to its current backend"
    );
    assert_eq!(slots[dirty[1]].prev, NO_BACKEND);
    assert!(f.conns.contains_key(&live));
    assert!(
        !f.conns.contains_key(&dead),
        "entries of cleaned slots are forgotten"
    );
}

fn timeouts(secs: u64) -> Timeouts {
    Timeouts {
        settle_tcp: Duration::from_secs(secs),
        tcp: Duration::from_secs(secs),
        tcpfin: Duration::from_secs(secs),
        udp: Duration::from_secs(secs),
    }
}

#[test]
fn settle_waits_while_the_flood_guard_refuses_entries() {
    let mut f = Fake::new(64);
    let mut r = Reconciler::new(LIMITS);
    let t0 = Instant::now();
    r.apply(
        &mut f,
        &desired(vec![backend(1, 1, true), backend(2, 1, true)]),
        t0,
    )
    .unwrap();
    r.apply(&mut f, &desired(vec![backend(1, 1, true)]), t0)
        .unwrap();
    assert!(f.services[&key(80)].slots().iter().any(|e| e.is_dirty()));
    f.guard.refused = 7;
    let later = t0 + Duration::from_secs(60);
    assert!(r.settle(&mut f, &timeouts(30), later).unwrap().is_empty());
    assert!(
        f.services[&key(80)].slots().iter().any(|e| e.is_dirty()),
        "a flood is on: flows it kept from being recorded need their slots' previous backends"
    );
    // No new refusals since, but not yet for a whole settle time: still waiting.
    let soon = later + Duration::from_secs(20);
    assert!(r.settle(&mut f, &timeouts(30), soon).unwrap().is_empty());
    // A whole settle time without a refusal: the flood is over.
    let after = later + Duration::from_secs(30);
    assert!(!r.settle(&mut f, &timeouts(30), after).unwrap().is_empty());
    assert!(f.services[&key(80)].slots().iter().all(|e| !e.is_dirty()));
}

#[test]
fn udp_services_settle_on_the_udp_timeout() {
    let mut f = Fake::new(64);
    let mut r = Reconciler::new(LIMITS);
    let t0 = Instant::now();
    let mut d = desired(vec![backend(1, 1, true), backend(2, 1, true)]);
    d.services[0].key.proto = 17;
    r.apply(&mut f, &d, t0).unwrap();
    d.services[0].backends.push(backend(3, 1, true));
    r.apply(&mut f, &d, t0).unwrap();
    let udp = d.services[0].key;
    assert!(f.services[&udp].slots().iter().any(|e| e.is_dirty()));
    let t = Timeouts {
        settle_tcp: Duration::from_secs(900),
        tcp: Duration::from_secs(900),
        tcpfin: Duration::from_secs(120),
        udp: Duration::from_secs(5),
    };
    assert!(!r
        .settle(&mut f, &t, t0 + Duration::from_secs(6))
        .unwrap()
        .is_empty());
    assert!(f.services[&udp].slots().iter().all(|e| !e.is_dirty()));
}

#[test]
fn a_table_no_packet_used_is_replaced_clean() {
    let mut f = Fake::new(64);
    f.idle = true;
    let mut r = Reconciler::new(LIMITS);
    // Backends come up one by one, as at startup: no traffic yet, so no dirty slots.
    r.apply(&mut f, &desired(vec![backend(1, 1, true)]), Instant::now())
        .unwrap();
    r.apply(
        &mut f,
        &desired(vec![backend(1, 1, true), backend(2, 1, true)]),
        Instant::now(),
    )
    .unwrap();
    assert!(
        f.services[&key(80)].slots().iter().all(|e| !e.is_dirty()),
        "no flow could be on the old table"
    );
    // With traffic, the next change marks moved slots.
    f.idle = false;
    r.apply(
        &mut f,
        &desired(vec![
            backend(1, 1, true),
            backend(2, 1, true),
            backend(3, 1, true),
        ]),
        Instant::now(),
    )
    .unwrap();
    assert!(f.services[&key(80)].slots().iter().any(|e| e.is_dirty()));
}

#[test]
fn a_node_that_does_not_forward_keeps_the_same_dirty_slots() {
    let mut f = Fake::new(64);
    f.idle = true;
    let mut r = Reconciler::new(LIMITS);
    let mut d = desired(vec![backend(1, 1, true), backend(2, 1, true)]);
    d.forwarding = false;
    r.apply(&mut f, &d, Instant::now()).unwrap();
    // Up and running (past startup): a change is one flows elsewhere may have seen.
    d.keep_moved = true;
    d.services[0].backends[1].weight = 0;
    r.apply(&mut f, &d, Instant::now()).unwrap();
    let backup = f.services[&key(80)].clone();
    // The node that forwards, through the same history.
    let mut g = Fake::new(64);
    let mut q = Reconciler::new(LIMITS);
    let mut e = desired(vec![backend(1, 1, true), backend(2, 1, true)]);
    q.apply(&mut g, &e, Instant::now()).unwrap();
    e.services[0].backends[1].weight = 0;
    q.apply(&mut g, &e, Instant::now()).unwrap();
    assert!(backup.slots().iter().any(|e| e.is_dirty()));
    assert_eq!(
        backup.slots(),
        g.services[&key(80)].slots(),
        "a VRRP backup holds the master's tables, dirty slots and previous backends included"
    );
    assert_eq!(f.config.forwarding, 0);
}

fn flow(port: u16) -> ConnKey {
    ConnKey {
        src: addr_words(ip("192.0.2.7")),
        dst: key(80).vip,
        sport: port,
        dport: 80,
        proto: 6,
        _pad: 0,
        _pad2: 0,
    }
}

#[test]
fn peer_entries_install_by_address_and_mark_their_clean_slots() {
    // Node A: three backends, then b3 added after b1..b2 (dirty slots); node B saw no
    // change yet (clean table with the same members as A's new one).
    let mut a = Fake::new(64);
    let mut ra = Reconciler::new(LIMITS);
    let t0 = Instant::now();
    ra.apply(
        &mut a,
        &desired(vec![backend(1, 1, true), backend(2, 1, true)]),
        t0,
    )
    .unwrap();
    let all = desired(vec![
        backend(1, 1, true),
        backend(2, 1, true),
        backend(3, 1, true),
    ]);
    ra.apply(&mut a, &all, t0).unwrap();
    let table = a.services[&key(80)].clone();
    let dirty_slot =
        |k: &ConnKey| table.slots()[reduce(slot_hash(9, 0, k), table.len()) as usize].is_dirty();
    let on_dirty = (1..60000).map(flow).find(dirty_slot).unwrap();
    let on_clean = (1..60000).map(flow).find(|k| !dirty_slot(k)).unwrap();
    let b3 = ra.index_of(&key(80), ip("10.0.0.3")).unwrap();
    a.now_ns = 50_000_000_000;
    for k in [on_dirty, on_clean] {
        a.conns.insert(
            k,
            ConnValue {
                backend: b3,
                flags: 0,
                gen: 1,
                last_seen_ns: a.now_ns - 2_000_000_000,
            },
        );
    }
    let sent = peer_entries(&a).unwrap();
    assert_eq!(sent.len(), 2);
    assert!(sent
        .iter()
        .all(|e| e.backend == ip("10.0.0.3") && e.idle_ns == 2_000_000_000));
    let dirty = peer_dirty(&a).unwrap();
    assert_eq!(dirty.len(), 1);

    // Node B: the same members installed in another order (other indices), clean.
    let mut b = Fake::new(64);
    let mut rb = Reconciler::new(LIMITS);
    rb.apply(&mut b, &desired(vec![backend(3, 1, true)]), t0)
        .unwrap();
    rb.apply(&mut b, &all, t0).unwrap();
    b.now_ns = 90_000_000_000;
    let before = b.services[&key(80)].clone();
    let got = rb.install_peer_entries(&mut b, &sent, t0).unwrap();
    assert_eq!(got.entries, 2);
    let b3_here = rb.index_of(&key(80), ip("10.0.0.3")).unwrap();
    for k in [on_dirty, on_clean] {
        let v = b.conns[&k];
        assert_eq!(v.backend, b3_here, "the backend by address, not index");
        assert_eq!(v.last_seen_ns, 88_000_000_000);
    }
    let after = b.services[&key(80)].clone();
    for k in [on_dirty, on_clean] {
        let slot = reduce(slot_hash(9, 0, &k), after.len()) as usize;
        if before.slots()[slot].is_dirty() {
            continue;
        }
        assert_eq!(
            after.slots()[slot].prev,
            after.slots()[slot].backend,
            "a clean slot with a synced entry consults the table, untracked flows unchanged"
        );
    }
    // A fresher local entry wins; a second install of the same entries changes nothing.
    b.conns.get_mut(&on_clean).unwrap().last_seen_ns = b.now_ns;
    let again = rb.install_peer_entries(&mut b, &sent, t0).unwrap();
    assert_eq!(again.entries, 0);
    assert_eq!(again.skipped, 2);
    // Unknown backends are skipped.
    let stranger = PeerEntry {
        key: flow(1),
        backend: ip("10.9.9.9"),
        idle_ns: 0,
    };
    assert_eq!(
        rb.install_peer_entries(&mut b, &[stranger], t0)
            .unwrap()
            .skipped,
        1
    );
}

#[test]
fn a_fresh_node_takes_a_peers_dirty_slots() {
    let t0 = Instant::now();
    let mut a = Fake::new(64);
    let mut ra = Reconciler::new(LIMITS);
    ra.apply(
        &mut a,
        &desired(vec![backend(1, 1, true), backend(2, 1, true)]),
        t0,
    )
    .unwrap();
    let all = desired(vec![
        backend(1, 1, true),
        backend(2, 1, true),
        backend(3, 1, true),
    ]);
    ra.apply(&mut a, &all, t0).unwrap();
    let dirty = peer_dirty(&a).unwrap();
    // A fresh node comes up with the new members: clean. It forwards nothing yet.
    let mut b = Fake::new(64);
    b.idle = true;
    let mut rb = Reconciler::new(LIMITS);
    rb.apply(&mut b, &all, t0).unwrap();
    assert!(b.services[&key(80)].slots().iter().all(|e| !e.is_dirty()));
    assert_eq!(
        rb.install_peer_dirty(&mut b, &dirty[0], true, t0).unwrap(),
        0,
        "a node that forwards keeps its own slots"
    );
    let marked = rb.install_peer_dirty(&mut b, &dirty[0], false, t0).unwrap();
    assert_eq!(marked, dirty[0].slots.len());
    let prev_addr = |f: &Fake, e: &TableEntry| words_addr(&f.backends[e.prev as usize].addr);
    for (x, y) in a.services[&key(80)]
        .slots()
        .iter()
        .zip(b.services[&key(80)].slots())
    {
        assert_eq!(x.is_dirty(), y.is_dirty());
        if x.is_dirty() {
            assert_eq!(
                prev_addr(&a, x),
                prev_addr(&b, y),
                "same previous backend, by address"
            );
        }
    }
    // Still coming up (keep_moved false): a health result rebuilds the table, the
    // peer's dirty slots stay and nothing new is marked.
    let peer_marked: Vec<usize> = b.services[&key(80)]
        .slots()
        .iter()
        .enumerate()
        .filter(|(_, e)| e.is_dirty())
        .map(|(i, _)| i)
        .collect();
    let mut one_down = all.clone();
    one_down.services[0].backends[0].healthy = false;
    rb.apply(&mut b, &one_down, t0).unwrap();
    let now_dirty: Vec<usize> = b.services[&key(80)]
        .slots()
        .iter()
        .enumerate()
        .filter(|(_, e)| e.is_dirty())
        .map(|(i, _)| i)
        .collect();
    assert_eq!(now_dirty, peer_marked);
}

#[test]
fn a_peers_settle_repoints_the_same_slots_here() {
    let t0 = Instant::now();
    let mut nodes: Vec<(Fake, Reconciler)> = (0..2)
        .map(|_| (Fake::new(64), Reconciler::new(LIMITS)))
        .collect();
    let two = desired(vec![backend(1, 1, true), backend(2, 1, true)]);
    let mut three = desired(vec![
        backend(1, 1, true),
        backend(2, 1, true),
        backend(3, 1, true),
    ]);
    three.keep_moved = true;
    for (f, r) in nodes.iter_mut() {
        r.apply(f, &two, t0).unwrap();
        r.apply(f, &three, t0).unwrap();
    }
    let (a, b) = nodes.split_at_mut(1);
    let (fa, ra) = &mut a[0];
    let (fb, rb) = &mut b[0];
    assert_eq!(fa.services[&key(80)].slots(), fb.services[&key(80)].slots());
    // A settles first (B's settle is later: another health timing, another tick).
    let settled = ra
        .settle(fa, &timeouts(30), t0 + Duration::from_secs(31))
        .unwrap();
    assert_eq!(settled.len(), 1);
    let repointed = rb
        .install_peer_settled(fb, &settled[0], &timeouts(30), t0 + Duration::from_secs(31))
        .unwrap();
    assert_eq!(repointed, settled[0].slots.len());
    // Every slot now sends untracked flows where A does: its current backend.
    for (x, y) in fa.services[&key(80)]
        .slots()
        .iter()
        .zip(fb.services[&key(80)].slots())
    {
        assert_eq!(x.backend, y.backend);
        let untracked = |e: &TableEntry| if e.is_dirty() { e.prev } else { e.backend };
        assert_eq!(untracked(x), untracked(y));
    }
}

#[test]
fn a_closing_flow_holds_its_slot_only_for_the_tcpfin_timeout() {
    let mut f = Fake::new(64);
    let mut r = Reconciler::new(LIMITS);
    let t0 = Instant::now();
    r.apply(
        &mut f,
        &desired(vec![backend(1, 1, true), backend(2, 1, true)]),
        t0,
    )
    .unwrap();
    r.apply(
        &mut f,
        &desired(vec![backend(1, 1, true), backend(2, 0, true)]),
        t0,
    )
    .unwrap();
    let table = f.services[&key(80)].clone();
    let idx2 = r.index_of(&key(80), ip("10.0.0.2")).unwrap();
    let k = (1..60000)
        .map(flow)
        .find(|k| table.slots()[reduce(slot_hash(9, 0, k), table.len()) as usize].is_dirty())
        .unwrap();
    f.now_ns = 1_000 * 1_000_000_000;
    // Seen 200 s ago: alive for timeout_tcp (900 s), not for timeout_tcpfin (120 s).
    let seen = f.now_ns - 200 * 1_000_000_000;
    let t = Timeouts {
        settle_tcp: Duration::from_secs(30),
        tcp: Duration::from_secs(900),
        tcpfin: Duration::from_secs(120),
        udp: Duration::from_secs(300),
    };
    let slot = reduce(slot_hash(9, 0, &k), table.len()) as usize;
    f.conns.insert(
        k,
        ConnValue {
            backend: idx2,
            flags: 0,
            gen: 1,
            last_seen_ns: seen,
        },
    );
    r.settle(&mut f, &t, t0 + Duration::from_secs(31)).unwrap();
    assert!(
        f.services[&key(80)].slots()[slot].is_dirty(),
        "an open flow holds its slot"
    );
    f.conns.insert(
        k,
        ConnValue {
            backend: idx2,
            flags: lb_common::maps::CONN_F_FIN,
            gen: 1,
            last_seen_ns: seen,
        },
    );
    r.settle(&mut f, &t, t0 + Duration::from_secs(62)).unwrap();
    assert!(
        !f.services[&key(80)].slots()[slot].is_dirty(),
        "a closing one past tcpfin does not"
    );
}

#[test]
fn a_node_bringing_its_backends_up_takes_a_peers_dirty_slots_on_empty_slots() {
    let t0 = Instant::now();
    let mut a = Fake::new(64);
    let mut ra = Reconciler::new(LIMITS);
    ra.apply(
        &mut a,
        &desired(vec![backend(1, 1, true), backend(2, 1, true)]),
        t0,
    )
    .unwrap();
    let mut all = desired(vec![
        backend(1, 1, true),
        backend(2, 1, true),
        backend(3, 1, true),
    ]);
    ra.apply(&mut a, &all, t0).unwrap();
    let dirty = peer_dirty(&a).unwrap();
    // A fresh node whose backends are not up yet: every slot without a backend.
    let mut b = Fake::new(64);
    b.idle = true;
    let mut rb = Reconciler::new(LIMITS);
    for be in &mut all.services[0].backends {
        be.healthy = false;
    }
    rb.apply(&mut b, &all, t0).unwrap();
    assert!(b.services[&key(80)]
        .slots()
        .iter()
        .all(|e| e.backend == NO_BACKEND));
    let marked = rb.install_peer_dirty(&mut b, &dirty[0], false, t0).unwrap();
    assert_eq!(marked, dirty[0].slots.len());
    // The backends come up (still starting: nothing new marked): the peer's slots stay.
    for be in &mut all.services[0].backends {
        be.healthy = true;
    }
    rb.apply(&mut b, &all, t0).unwrap();
    let prev_addr = |f: &Fake, e: &TableEntry| words_addr(&f.backends[e.prev as usize].addr);
    for (x, y) in a.services[&key(80)]
        .slots()
        .iter()
        .zip(b.services[&key(80)].slots())
    {
        assert_eq!(x.backend == NO_BACKEND, y.backend == NO_BACKEND);
        assert_eq!(x.is_dirty(), y.is_dirty());
        if x.is_dirty() {
            assert_eq!(prev_addr(&a, x), prev_addr(&b, y));
        }
    }
}

/// `n` healthy backends 10.1.x.y.
fn many(n: u16) -> Vec<BackendInput> {
    (0..n)
        .map(|i| BackendInput {
            address: ip(&format!("10.1.{}.{}", i / 256, i % 256)),
            ..backend(1, 1, true)
        })
        .collect()
}

/// `table_size = "auto"` sizes each service by its configured backends: a failed
/// backend never resizes the table (only its slots move, marked dirty), a config with
/// many more backends grows it into a big table, flows on moved slots kept.
#[test]
fn auto_sizes_follow_configured_backends_not_health() {
    let mut f = Fake::new(1024);
    let limits = Limits {
        max_services: 8,
        max_backends: 1024,
    };
    let mut r = Reconciler::new(limits);
    let mut d = desired(many(200));
    d.table_size = maglev::AUTO_TABLE_SIZE;
    d.keep_moved = true;
    r.apply(&mut f, &d, Instant::now()).unwrap();
    assert_eq!(f.services[&key(80)].len(), 65537);

    // One of 300 fails: still 131071 slots, now with dirty ones.
    d.services[0].backends = many(300);
    r.apply(&mut f, &d, Instant::now()).unwrap();
    let grown = f.services[&key(80)].clone();
    assert_eq!(grown.len(), 131071);
    assert!(grown.is_big());
    assert!(
        grown.slots().iter().any(|e| e.is_dirty()),
        "a resize marks moved flows' slots"
    );
    d.services[0].backends[7].healthy = false;
    r.apply(&mut f, &d, Instant::now()).unwrap();
    let failed = &f.services[&key(80)];
    assert_eq!(failed.len(), 131071, "health does not resize");
    let gone = r
        .index_of(&key(80), d.services[0].backends[7].address)
        .unwrap();
    assert!(failed.slots().iter().all(|e| e.backend != gone));

    // An explicit size is kept whatever the backends.
    d.table_size = 65537;
    r.apply(&mut f, &d, Instant::now()).unwrap();
    assert_eq!(f.services[&key(80)].len(), 65537);
}

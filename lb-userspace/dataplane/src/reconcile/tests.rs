//! Reconciler tests against an in-memory data plane that records every write, so
//! ordering (backends before tables before downs) and minimality are checked without
//! root.

use std::{
    net::IpAddr,
    time::{Duration, Instant},
};

use lb_common::maps::{
    addr_words, ConnKey, ConnValue, FragKey, ServiceKey, BACKEND_DOWN, BACKEND_DRAINING,
    BACKEND_UP, NO_BACKEND,
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
            .find(|k| reduce(slot_hash(9, 0, k), table.len) as usize == slot)
            .unwrap()
    };
    let live = flow_on(dirty[0]);
    let dead = flow_on(dirty[1]);
    f.now_ns = 100 * 1_000_000_000;
    f.conns.insert(
        live,
        ConnValue {
            backend: idx2 as u32,
            gen: 1,
            last_seen_ns: f.now_ns - 1_000_000_000,
        },
    );
    f.conns.insert(
        dead,
        ConnValue {
            backend: idx2 as u32,
            gen: 1,
            last_seen_ns: 0,
        },
    );
    let after = Duration::from_secs(30);
    assert_eq!(
        r.settle(&mut f, after, t0 + Duration::from_secs(5))
            .unwrap(),
        0,
        "not yet due"
    );
    let cleaned = r
        .settle(&mut f, after, t0 + Duration::from_secs(31))
        .unwrap();
    assert_eq!(cleaned, dirty.len() - 1);
    let slots = f.services[&key(80)].slots();
    assert!(
        slots[dirty[0]].is_dirty(),
        "the live flow's slot stays dirty"
    );
    assert_eq!(slots[dirty[1]].prev, NO_BACKEND);
    assert!(f.conns.contains_key(&live));
    assert!(
        !f.conns.contains_key(&dead),
        "entries of cleaned slots are forgotten"
    );
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
fn a_node_that_stops_forwarding_settles_its_tables() {
    let mut f = Fake::new(64);
    let mut r = Reconciler::new(LIMITS);
    r.apply(
        &mut f,
        &desired(vec![backend(1, 1, true), backend(2, 1, true)]),
        Instant::now(),
    )
    .unwrap();
    r.apply(
        &mut f,
        &desired(vec![backend(1, 1, true), backend(2, 0, true)]),
        Instant::now(),
    )
    .unwrap();
    assert!(f.services[&key(80)].slots().iter().any(|e| e.is_dirty()));
    let stale = ConnKey {
        src: addr_words(ip("192.0.2.1")),
        dst: key(80).vip,
        sport: 1,
        dport: 80,
        proto: 6,
        _pad: 0,
        _pad2: 0,
    };
    f.conns.insert(
        stale,
        ConnValue {
            backend: 1,
            gen: 1,
            last_seen_ns: 0,
        },
    );
    let mut d = desired(vec![backend(1, 1, true), backend(2, 0, true)]);
    d.forwarding = false;
    r.apply(&mut f, &d, Instant::now()).unwrap();
    assert!(
        f.services[&key(80)].slots().iter().all(|e| !e.is_dirty()),
        "a VRRP backup holds the pure mapping"
    );
    assert!(
        f.conns.is_empty(),
        "and forgets the flows it no longer carries"
    );
    assert_eq!(f.config.forwarding, 0);
}

//! No input makes a receiver panic, and nothing of a damaged datagram is installed:
//! random bytes, mutated genuine datagrams, and correctly signed garbage payloads.

mod harness;

use std::sync::OnceLock;
use std::time::Instant;

use harness::{addr, dirty, entry, entry6, settings, KEY};
use lb_sync::auth::Key;
use lb_sync::wire::{self, Header, Kind};
use lb_sync::{SyncCore, SyncEffect};
use proptest::prelude::*;

/// Every kind of genuine datagram A sends B.
fn genuine() -> &'static [Vec<u8>] {
    static POOL: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    POOL.get_or_init(make_pool)
}

fn make_pool() -> Vec<Vec<u8>> {
    let t = Instant::now();
    let mut a = SyncCore::new(settings(0, 2, false), 1, t).unwrap();
    let mut out = a.start(t);
    a.push((0..100).map(entry).chain((0..30).map(entry6)));
    a.push_full(
        Some(addr(1)),
        (0..70).map(entry).collect(),
        vec![dirty(400)],
    );
    a.push_settled(dirty(300));
    out.extend(a.tick(t));
    out.extend(a.tick(t + std::time::Duration::from_secs(1)));
    let pool: Vec<Vec<u8>> = out
        .into_iter()
        .filter_map(|e| match e {
            SyncEffect::Send { datagram, .. } => Some(datagram),
            _ => None,
        })
        .collect();
    let kinds: std::collections::BTreeSet<u8> = pool.iter().map(|d| d[5]).collect();
    assert_eq!(kinds.len(), 6, "every kind in the pool");
    pool
}

fn receiver() -> SyncCore {
    SyncCore::new(settings(1, 2, false), 2, Instant::now()).unwrap()
}

fn nothing_installed(effects: &[SyncEffect]) -> bool {
    effects.iter().all(|e| matches!(e, SyncEffect::Send { .. }))
}

#[derive(Clone, Debug)]
enum Mutation {
    Flip(usize, u8),
    Set(usize, u8),
    Truncate(usize),
    Append(Vec<u8>),
    Remove(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, v)| Mutation::Set(i, v)),
        any::<usize>().prop_map(Mutation::Truncate),
        proptest::collection::vec(any::<u8>(), 1..40).prop_map(Mutation::Append),
        any::<usize>().prop_map(Mutation::Remove),
    ]
}

fn apply(d: &mut Vec<u8>, m: &Mutation) {
    if d.is_empty() {
        return;
    }
    match m {
        Mutation::Flip(i, b) => {
            let n = d.len();
            d[i % n] ^= 1 << b;
        }
        Mutation::Set(i, v) => {
            let n = d.len();
            d[i % n] = *v;
        }
        Mutation::Truncate(n) => d.truncate(n % d.len()),
        Mutation::Append(bytes) => d.extend_from_slice(bytes),
        Mutation::Remove(i) => {
            let n = d.len();
            d.remove(i % n);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_are_refused(bytes in proptest::collection::vec(any::<u8>(), 0..1600)) {
        let mut b = receiver();
        let effects = b.receive(addr(0), &bytes, Instant::now());
        prop_assert!(effects.is_empty());
        prop_assert_eq!(b.view(Instant::now()).rejected.values().sum::<u64>(), 1);
    }

    #[test]
    fn mutated_genuine_datagrams_install_nothing(
        pick in any::<prop::sample::Index>(),
        mutations in proptest::collection::vec(mutation(), 1..4),
    ) {
        let pool = genuine();
        let original = pool[pick.index(pool.len())].clone();
        let mut d = original.clone();
        for m in &mutations {
            apply(&mut d, m);
        }
        prop_assume!(d != original);
        let mut b = receiver();
        let t = Instant::now();
        let effects = b.receive(addr(0), &d, t);
        prop_assert!(effects.is_empty(), "{:?}", effects);
        prop_assert_eq!(b.view(t).rejected.values().sum::<u64>(), 1);
        prop_assert!(b.view(t).peers.iter().all(|p| p.state == "unknown"));
        // The genuine one still goes through afterwards.
        b.receive(addr(0), &original, t);
        prop_assert_eq!(b.view(t).rejected.values().sum::<u64>(), 1);
    }

    #[test]
    fn signed_garbage_never_panics(
        kind in 1u8..=6,
        flags in 0u8..4,
        seq in any::<u64>(),
        epoch in any::<u64>(),
        dest_node in prop_oneof![Just(0u64), Just(2u64), any::<u64>()],
        payload in proptest::collection::vec(any::<u8>(), 0..wire::MAX_PAYLOAD + 1),
    ) {
        let key = Key::new(KEY).unwrap();
        let header = Header { kind: Kind::from_u8(kind).unwrap(), flags, node_id: 1, dest_node, epoch, seq };
        let d = wire::seal(&key, &header, &payload).unwrap();
        let mut b = receiver();
        let t = Instant::now();
        let effects = b.receive(addr(0), &d, t);
        // Whatever it decoded to must re-encode to the same bytes (nothing invented).
        for e in &effects {
            if let SyncEffect::Install(entries) = e {
                let again = wire::Payload::Entries(entries.clone()).encode();
                prop_assert_eq!(&again[..], &payload[..]);
            }
        }
        prop_assert!(effects.len() <= 3);
    }
}

#[test]
fn a_long_lived_receiver_survives_a_flood_of_damaged_datagrams() {
    let pool = genuine();
    let mut rng = harness::rng(99);
    let mut b = receiver();
    let t = Instant::now();
    let mut refused = 0u64;
    for _ in 0..50_000 {
        let original = &pool[harness::below(&mut rng, pool.len())];
        let mut d = original.clone();
        let n = 1 + harness::below(&mut rng, 3);
        for _ in 0..n {
            let m = match harness::below(&mut rng, 5) {
                0 => Mutation::Flip(
                    harness::below(&mut rng, 4096),
                    harness::below(&mut rng, 8) as u8,
                ),
                1 => Mutation::Set(
                    harness::below(&mut rng, 4096),
                    harness::below(&mut rng, 256) as u8,
                ),
                2 => Mutation::Truncate(harness::below(&mut rng, 4096)),
                3 => Mutation::Append(vec![
                    harness::below(&mut rng, 256) as u8;
                    1 + harness::below(&mut rng, 8)
                ]),
                _ => Mutation::Remove(harness::below(&mut rng, 4096)),
            };
            apply(&mut d, &m);
        }
        if d == *original {
            continue;
        }
        let effects = b.receive(addr(0), &d, t);
        assert!(nothing_installed(&effects));
        refused += 1;
    }
    assert_eq!(b.view(t).rejected.values().sum::<u64>(), refused);
}

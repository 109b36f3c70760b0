//! The data plane picks exactly the backend that lb-common's Maglev table and flow
//! hash say (clean tables), and exactly what `explain` says (tables with dirty slots
//! and tracked flows): the basis of `lbctl explain`. Needs root.

use lb_common::{
    hash::reduce,
    maglev::{build, MaglevBackend},
    maps::{proto, BACKEND_DRAINING, BACKEND_UP},
    select::{slot_hash, How},
};
use lb_dataplane::explain::{explain, Explanation};
use lb_tests::{flow, packet::Packet, Fixture, MAGLEV_SEED, SEED};
use rand::{rngs::StdRng, Rng, SeedableRng};

const WEIGHTS: [(u16, u32); 5] = [(0, 1), (1, 2), (2, 1), (3, 1), (4, 3)];

fn random_flow(rng: &mut StdRng) -> (String, String, u8, bool) {
    let v6 = rng.gen_bool(0.3);
    let tcp = rng.gen_bool(0.7);
    let port: u16 = rng.gen_range(1024..65535);
    let (src, dst) = if v6 {
        (
            format!(
                "[2001:db8:{:x}::{:x}]:{port}",
                rng.gen::<u16>(),
                rng.gen::<u16>()
            ),
            "[2001:db8::10]:443".to_string(),
        )
    } else {
        (
            format!(
                "{}.{}.{}.{}:{port}",
                rng.gen_range(1..224),
                rng.gen::<u8>(),
                rng.gen::<u8>(),
                rng.gen_range(1..255)
            ),
            "198.51.100.10:443".to_string(),
        )
    };
    (src, dst, if tcp { proto::TCP } else { proto::UDP }, v6)
}

fn frame(src: &str, dst: &str, p: u8, syn: bool) -> Vec<u8> {
    match (p, syn) {
        (proto::TCP, true) => Packet::tcp(src, dst).syn().build(),
        (proto::TCP, false) => Packet::tcp(src, dst).build(),
        _ => Packet::udp(src, dst).build(),
    }
}

fn fixture() -> Fixture {
    let mut f = Fixture::new();
    for (i, _) in WEIGHTS {
        f.backend_state(i, BACKEND_UP, 1);
    }
    for vip in ["198.51.100.10", "2001:db8::10"] {
        f.service(vip, 443, proto::TCP, 0, 0, &WEIGHTS);
        f.service(vip, 443, proto::UDP, 1, 0, &WEIGHTS);
    }
    f
}

#[test]
fn data_plane_matches_maglev_and_flow_hash() {
    let f = fixture();
    let backends: Vec<MaglevBackend> = WEIGHTS
        .iter()
        .map(|(i, w)| MaglevBackend {
            id: format!("backend-{i}").into_bytes(),
            index: *i,
            weight: *w,
        })
        .collect();
    let table = build(&backends, 65537, MAGLEV_SEED).unwrap();
    let mut rng = StdRng::seed_from_u64(7);
    let mut per_backend = [0u32; 5];
    for _ in 0..4000 {
        let (src, dst, p, _) = random_flow(&mut rng);
        let key = flow(&src, &dst, p);
        let expected = table[reduce(slot_hash(SEED, 0, &key), 65537) as usize];
        let got = f.forwarded_to(&frame(&src, &dst, p, true));
        assert_eq!(got, expected, "flow {src} -> {dst} proto {p}");
        per_backend[got as usize] += 1;
        match explain(&f.dp, &key, true).unwrap() {
            Explanation::Forward { choice, .. } => {
                assert_eq!(choice.backend, expected);
                assert_eq!(choice.how, How::CleanSlot);
            }
            other => panic!("explain said {other:?}"),
        }
    }
    // Weights 1:2:1:1:3 show in the spread.
    assert!(per_backend[4] > 2 * per_backend[0], "{per_backend:?}");
}

#[test]
fn data_plane_matches_explain_with_dirty_slots_and_tracked_flows() {
    let mut f = fixture();
    let mut rng = StdRng::seed_from_u64(11);
    let flows: Vec<_> = (0..1500).map(|_| random_flow(&mut rng)).collect();
    // Drain backend 4 and add nothing: about 3/8 of slots turn dirty.
    f.backend_state(4, BACKEND_DRAINING, 1);
    for vip in ["198.51.100.10", "2001:db8::10"] {
        f.service(
            vip,
            443,
            proto::TCP,
            0,
            0,
            &[(0, 1), (1, 2), (2, 1), (3, 1), (4, 0)],
        );
        f.service(
            vip,
            443,
            proto::UDP,
            1,
            0,
            &[(0, 1), (1, 2), (2, 1), (3, 1), (4, 0)],
        );
    }
    let mut hows = std::collections::BTreeMap::new();
    // Three rounds: first packets (misses), repeats (hits), then SYNs on reused tuples.
    for round in 0..3 {
        for (src, dst, p, _) in &flows {
            let syn = round == 2 && *p == proto::TCP && rng.gen_bool(0.5);
            let key = flow(src, dst, *p);
            let said = explain(&f.dp, &key, syn).unwrap();
            let got = f.forwarded_to(&frame(src, dst, *p, syn));
            match said {
                Explanation::Forward { choice, .. } => {
                    assert_eq!(got, choice.backend, "round {round} flow {src} -> {dst}");
                    *hows.entry(format!("{:?}", choice.how)).or_insert(0) += 1;
                }
                other => panic!("explain said {other:?}"),
            }
        }
    }
    for how in ["CleanSlot", "PreChange", "Tracked", "NewConnection"] {
        assert!(hows.contains_key(how), "path {how} exercised: {hows:?}");
    }
}

//! Big Maglev tables (more than 65537 slots, in `LB_BIG_TABLES` chunks) through
//! BPF_PROG_TEST_RUN against the real XDP program and live maps: a service of 1500
//! backends gets the auto size (655373); the program picks exactly the backend
//! lb-common's selection predicts from the table it builds, and `explain` agrees;
//! a backend change switches the big table whole (established flows stay, new ones
//! take the new table); shrinking back to an inline table and restarting on pinned
//! maps keep working. Needs root.

use std::path::PathBuf;

use lb_common::{
    maglev::{self, MaglevBackend, AUTO_TABLE_SIZE},
    maps::{
        proto, Backend, BigChunk, BigChunkKey, ConnKey, ConnValue, ServiceKey, ServiceTable,
        BACKEND_UP, BIG_CHUNK_SLOTS, SVC_F_BIG_TABLE,
    },
    select::{choose, slot_hash, FlowState, How, Recorded},
};
use lb_dataplane::{
    explain::{explain, Explanation},
    reconcile::install_service,
    Capacities, Dataplane, DataplaneOptions, ServiceSpec,
};
use lb_tests::{flow, packet::Packet, words, Fixture, MAGLEV_SEED, SEED};

const VIP: &str = "198.51.100.10";
const ID: u32 = 3;

fn key() -> ServiceKey {
    ServiceKey {
        vip: words(VIP),
        port: 80,
        proto: proto::TCP,
        _pad: 0,
    }
}

fn options(pin_dir: Option<PathBuf>) -> DataplaneOptions {
    DataplaneOptions {
        pin_dir,
        capacities: Capacities {
            services: 8,
            backends: 2048,
            conns: 65536,
            tx_ports: 8,
        },
    }
}

fn members(indices: impl Iterator<Item = u16>) -> Vec<MaglevBackend> {
    indices
        .map(|i| MaglevBackend {
            id: format!("backend-{i}").into_bytes(),
            index: i,
            weight: 1,
        })
        .collect()
}

/// Install the service with `backends`, sized automatically; moved slots marked dirty.
fn install(f: &mut Fixture, backends: &[MaglevBackend]) {
    let spec = ServiceSpec {
        id: ID,
        flags: 0,
        backends,
        table_size: AUTO_TABLE_SIZE,
        seed: MAGLEV_SEED,
    };
    install_service(&mut f.dp, &key(), &spec, true).expect("install service");
}

fn fixture(pin_dir: Option<PathBuf>, backends: u16) -> Fixture {
    let dp = Dataplane::load(&options(pin_dir)).expect("load the data plane (root, bpffs)");
    let mut f = Fixture::from_dataplane(dp);
    for i in 0..backends {
        f.backend_state(i, BACKEND_UP, 1);
    }
    f
}

fn src(i: u32) -> String {
    format!(
        "10.{}.{}.{}:{}",
        (i >> 16) & 255,
        (i >> 8) & 255,
        i & 255,
        1024 + i % 50000
    )
}

fn syn(i: u32) -> Vec<u8> {
    Packet::tcp(&src(i), &format!("{VIP}:80")).syn().build()
}

fn seg(i: u32) -> Vec<u8> {
    Packet::tcp(&src(i), &format!("{VIP}:80")).build()
}

fn conn(i: u32) -> ConnKey {
    flow(&src(i), &format!("{VIP}:80"), proto::TCP)
}

/// lb-common's selection over a table built here: what the program must do.
struct Predict {
    backends: Vec<Backend>,
    chunks: Vec<Box<BigChunk>>,
}

impl FlowState for Predict {
    fn backend(&self, index: u16) -> Option<&Backend> {
        self.backends.get(index as usize)
    }
    fn conn(&self, _key: &ConnKey) -> Option<ConnValue> {
        None
    }
    fn remember(&self, _key: &ConnKey, _value: &ConnValue, _absent: bool) -> Recorded {
        Recorded::Yes
    }
    fn touch(&self, _key: &ConnKey, _now_ns: u64, _fin: bool) {}
    fn now_ns(&self) -> u64 {
        0
    }
    fn big_chunk(&self, key: &BigChunkKey) -> Option<&BigChunk> {
        let chunk = self.chunks.get(key.chunk as usize)?;
        (key.id == ID && key.gen == 5).then_some(&**chunk)
    }
}

/// The backend `choose` picks for a SYN of flow `i` from `table` (clean slots), laid
/// out as the data plane holds a big table (chunks of generation 5 here).
fn predicted(f: &Fixture, table: &[u16], i: u32) -> (u16, u32) {
    let state = Predict {
        backends: f.dp.backends().unwrap(),
        chunks: BigChunk::split(&maglev::merge(None, table)).unwrap(),
    };
    let mut service = ServiceTable::boxed(ID, SVC_F_BIG_TABLE, &[]).unwrap();
    service.len = table.len() as u32;
    service.big_gen = 5;
    let k = conn(i);
    let (choice, _) =
        choose(&state, &service, slot_hash(SEED, 0, &k), &k, true, false).expect("a backend");
    (choice.backend, choice.slot)
}

/// The generations of the service's chunks in `BIG_TABLES`, and how many chunks.
fn generations(f: &Fixture) -> (std::collections::BTreeSet<u16>, usize) {
    let keys = f.dp.big_chunk_keys().unwrap();
    assert!(keys.iter().all(|k| k.id == ID));
    (keys.iter().map(|k| k.gen).collect(), keys.len())
}

fn explained(f: &Fixture, i: u32, syn: bool) -> (u16, How) {
    match explain(&f.dp, &conn(i), syn).unwrap() {
        Explanation::Forward { choice, .. } => (choice.backend, choice.how),
        other => panic!("explain said {other:?}"),
    }
}

#[test]
fn a_big_table_forwards_as_lb_common_predicts_and_switches_whole() {
    let mut f = fixture(None, 1500);
    let all = members(0..1500);
    install(&mut f, &all);

    // The auto size for 1500 backends, stored as a big table.
    let installed = f.dp.service(&key()).unwrap().expect("installed");
    assert_eq!(installed.len(), 655373);
    assert_eq!(maglev::table_size(AUTO_TABLE_SIZE, 1500), 655373);
    let chunks = 655373usize.div_ceil(BIG_CHUNK_SLOTS);
    assert_eq!(generations(&f), ([1].into(), chunks));
    let table = maglev::build(&all, 655373, MAGLEV_SEED).unwrap();
    assert!(installed
        .slots()
        .iter()
        .zip(&table)
        .all(|(e, b)| e.backend == *b && !e.is_dirty()));

    // The program picks exactly what lb-common predicts, explain agrees, and the
    // slots used are beyond the inline table's 65537.
    let mut high_slots = 0;
    for i in 0..300 {
        let (want, slot) = predicted(&f, &table, i);
        high_slots += usize::from(slot >= 65537);
        assert_eq!(f.forwarded_to(&syn(i)), want, "flow {i}");
        assert_eq!(explained(&f, i, true), (want, How::CleanSlot));
    }
    assert!(
        high_slots > 200,
        "{high_slots} of 300 flows on slots above 65537"
    );

    // Remove ten backends (they stay up: their flows are established): the table is
    // replaced whole. Established flows keep their backend (untracked rule on the
    // moved slots), new flows take the new table's backend.
    let rest = members(10..1500);
    install(&mut f, &rest);
    let new_table = maglev::build(&rest, 655373, MAGLEV_SEED).unwrap();
    let mut moved = 0;
    for i in 0..300 {
        let (before, _) = predicted(&f, &table, i);
        let (after, _) = predicted(&f, &new_table, i);
        assert_eq!(
            f.forwarded_to(&seg(i)),
            before,
            "established flow {i} moved"
        );
        assert_eq!(explained(&f, i, false).0, before);
        if before != after {
            moved += 1;
            assert_eq!(explained(&f, i, true), (after, How::NewConnection));
            assert_eq!(f.forwarded_to(&syn(i)), after, "new flow {i}");
        } else {
            assert_eq!(f.forwarded_to(&syn(i)), after, "new flow {i}");
        }
    }
    assert!(
        moved > 0,
        "removing ten of 1500 backends moved some of 300 flows"
    );
    let dirty = f.dp.service(&key()).unwrap().unwrap();
    assert_eq!(dirty.len(), 655373);
    assert!(dirty.slots().iter().any(|e| e.is_dirty()));
    // A new generation; the previous one stays until the next write.
    assert_eq!(generations(&f), ([1, 2].into(), 2 * chunks));

    // Back to 100 backends: an inline table again (auto 65537); the big table is
    // gone, and the data plane still matches explain on every flow.
    install(&mut f, &members(0..100));
    let small = f.dp.service(&key()).unwrap().unwrap();
    assert_eq!(small.len(), 65537);
    assert_eq!(generations(&f).1, 0, "no chunk is left");
    for i in 300..500 {
        let (want, _) = explained(&f, i, true);
        assert!(want < 100);
        assert_eq!(f.forwarded_to(&syn(i)), want, "flow {i}");
    }
}

/// Mounts a scratch bpffs (so the pins go away with the test) and unmounts it.
struct ScratchBpffs(PathBuf);

impl ScratchBpffs {
    fn new() -> Self {
        let dir = PathBuf::from(format!("/run/lbt-mb-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        lb_tests::netns::sh(&format!("mount -t bpf bpf {}", dir.display()));
        ScratchBpffs(dir)
    }
}

impl Drop for ScratchBpffs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn a_restarted_controller_adopts_pinned_big_tables() {
    let fs = ScratchBpffs::new();
    let pins = fs.0.join("pins");
    let all = members(0..600);
    let table = {
        let mut f = fixture(Some(pins.clone()), 600);
        install(&mut f, &all);
        assert!(pins.join(lb_common::maps::names::BIG_TABLES).exists());
        f.dp.service(&key()).unwrap().unwrap()
    };
    assert_eq!(table.len(), 655373);
    // A new controller on the same pins reads the same table and forwards by it.
    let f = Fixture::from_dataplane(Dataplane::load(&options(Some(pins.clone()))).unwrap());
    assert_eq!(f.dp.service(&key()).unwrap().as_ref(), Some(&table));
    let built = maglev::build(&all, 655373, MAGLEV_SEED).unwrap();
    for i in 0..50 {
        assert_eq!(f.forwarded_to(&syn(i)), predicted(&f, &built, i).0);
    }
    // lbctl's read-only view of the pins agrees.
    let ro = Dataplane::open_pinned(&pins).unwrap();
    assert_eq!(ro.service(&key()).unwrap().as_ref(), Some(&table));
    drop((f, ro));
    Dataplane::remove_pinned(&pins).unwrap();
}

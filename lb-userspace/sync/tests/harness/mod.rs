//! A simulated network of SyncCore nodes on a simulated clock: delivers datagrams
//! between them (unicast or to a multicast group) with optional loss, duplication,
//! reordering and corruption, and plays the daemon shell (installs entries, answers
//! DumpWanted with push_full from its table).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use lb_sync::auth::Key;
use lb_sync::wire::{self, Header, Kind};
use lb_sync::{DirtySlots, FlowEntry, Settings, SyncCore, SyncEffect};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The shared secret of the simulated nodes.
pub const KEY: &[u8] = b"sixteen-byte-key-for-tests";

/// A flow's identity (what the connection table is keyed by).
pub type FlowKey = (IpAddr, u16, IpAddr, u16, u8);

/// The key of `e`.
pub fn key_of(e: &FlowEntry) -> FlowKey {
    (e.client, e.client_port, e.vip, e.vip_port, e.proto)
}

/// An IPv4 test entry, numbered.
pub fn entry(i: u32) -> FlowEntry {
    FlowEntry {
        client: IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)),
        client_port: (i % 50000) as u16 + 1024,
        vip: "192.0.2.10".parse().unwrap(),
        vip_port: 443,
        proto: 6,
        backend: IpAddr::V4(Ipv4Addr::new(10, 1, 0, (i % 3) as u8 + 1)),
        idle_ms: i % 1000,
    }
}

/// An IPv6 test entry, numbered.
pub fn entry6(i: u32) -> FlowEntry {
    FlowEntry {
        client: IpAddr::V6(format!("2001:db8::{:x}", i + 1).parse().unwrap()),
        client_port: 40000,
        vip: "2001:db8:1::10".parse().unwrap(),
        vip_port: 6443,
        proto: 6,
        backend: "2001:db8:2::1".parse().unwrap(),
        idle_ms: i,
    }
}

/// Dirty slots of a test service: `n` slots, every third one.
pub fn dirty(n: u32) -> DirtySlots {
    DirtySlots {
        vip: "192.0.2.10".parse().unwrap(),
        port: 443,
        proto: 6,
        table_len: 65537,
        slots: (0..n)
            .map(|i| {
                (
                    i * 3,
                    IpAddr::V4(Ipv4Addr::new(10, 1, 0, (i % 3) as u8 + 1)),
                )
            })
            .collect(),
    }
}

/// The address of node `i`.
pub fn addr(i: usize) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, i as u8 + 1)), 7946)
}

/// The multicast group address.
pub fn group() -> SocketAddr {
    "239.1.2.3:7946".parse().unwrap()
}

/// Decodes the header of one of our datagrams (None when it does not verify).
pub fn header(datagram: &[u8]) -> Option<Header> {
    let key = Key::new(KEY).ok()?;
    wire::open(&key, datagram).ok().map(|(h, _)| h)
}

/// Settings for node `i` (node id `i + 1`) of `n`, unicast to the others or to a group.
pub fn settings(i: usize, n: usize, multicast: bool) -> Settings {
    let peers = if multicast {
        vec![group()]
    } else {
        (0..n).filter(|&j| j != i).map(addr).collect()
    };
    Settings::new(i as u64 + 1, KEY, peers)
}

/// One node: the core and what the shell around it holds.
pub struct Node {
    /// Where it sends from and receives on.
    pub addr: SocketAddr,
    /// The protocol.
    pub core: SyncCore,
    /// Its connection table: own entries and installed ones.
    pub table: BTreeMap<FlowKey, FlowEntry>,
    /// Every installed entry, in order (to check exactly-once).
    pub installed: Vec<FlowEntry>,
    /// Every installed dirty set.
    pub installed_dirty: Vec<DirtySlots>,
    /// Every installed settled set.
    pub installed_settled: Vec<DirtySlots>,
    /// Its own dirty sets (sent in full resyncs).
    pub dirty: Vec<DirtySlots>,
    /// Every DumpWanted seen.
    pub dump_wanted: Vec<Option<SocketAddr>>,
    /// Answer DumpWanted with push_full from the table.
    pub auto_dump: bool,
    /// Deliver to it (false: the node is down).
    pub up: bool,
}

impl Node {
    /// New entries of its own: into its table and to its peers.
    pub fn push(&mut self, entries: Vec<FlowEntry>) {
        for e in &entries {
            self.table.insert(key_of(e), *e);
        }
        self.core.push(entries);
    }
}

/// A datagram on the wire.
#[derive(Clone, Debug)]
pub struct Packet {
    /// Sender.
    pub from: SocketAddr,
    /// Destination (a node or the group).
    pub to: SocketAddr,
    /// Bytes.
    pub bytes: Vec<u8>,
}

/// What the network does to datagrams (probabilities in 0..=1).
#[derive(Clone, Copy, Debug, Default)]
pub struct Faults {
    /// Lost.
    pub loss: f64,
    /// Delivered twice.
    pub dup: f64,
    /// One byte flipped.
    pub corrupt: f64,
    /// Deliver each round's datagrams in random order.
    pub reorder: bool,
}

/// Decides whether a packet is dropped (returns true to drop), on top of [`Faults`].
pub type DropFilter = Box<dyn FnMut(&Packet) -> bool>;

/// The simulated network and clock.
pub struct Net {
    /// Simulated time.
    pub now: Instant,
    /// The nodes, node `i` at [`addr`]`(i)`.
    pub nodes: Vec<Node>,
    /// Faults applied on delivery.
    pub faults: Faults,
    /// Packets dropped when it says so.
    pub drop_filter: Option<DropFilter>,
    /// Every packet sent: time and packet.
    pub log: Vec<(Instant, Packet)>,
    in_flight: Vec<Packet>,
    rng: StdRng,
}

impl Net {
    /// `n` nodes, unicast to each other or over one multicast group.
    pub fn new(n: usize, multicast: bool) -> Self {
        Self::with(n, |i| settings(i, n, multicast))
    }

    /// `n` nodes with settings of the caller's making.
    pub fn with(n: usize, mut make: impl FnMut(usize) -> Settings) -> Self {
        let now = Instant::now();
        let nodes = (0..n)
            .map(|i| Node {
                addr: addr(i),
                core: SyncCore::new(make(i), 1000 + i as u64, now).unwrap(),
                table: BTreeMap::new(),
                installed: Vec::new(),
                installed_dirty: Vec::new(),
                installed_settled: Vec::new(),
                dirty: Vec::new(),
                dump_wanted: Vec::new(),
                auto_dump: true,
                up: true,
            })
            .collect();
        Net {
            now,
            nodes,
            faults: Faults::default(),
            drop_filter: None,
            log: Vec::new(),
            in_flight: Vec::new(),
            rng: StdRng::seed_from_u64(7),
        }
    }

    /// Reseeds the fault randomness.
    pub fn seed(&mut self, seed: u64) {
        self.rng = StdRng::seed_from_u64(seed);
    }

    /// Replaces node `i` by a fresh start of it (new epoch, empty table), then starts it.
    pub fn restart(&mut self, i: usize, settings: Settings, epoch: u64) {
        let now = self.now;
        let node = &mut self.nodes[i];
        node.core = SyncCore::new(settings, epoch, now).unwrap();
        node.table.clear();
        node.installed.clear();
        node.installed_dirty.clear();
        node.installed_settled.clear();
        node.dump_wanted.clear();
        node.up = true;
        let effects = node.core.start(now);
        self.apply(i, effects);
        self.deliver();
    }

    /// Calls start on every node.
    pub fn start_all(&mut self) {
        for i in 0..self.nodes.len() {
            let effects = self.nodes[i].core.start(self.now);
            self.apply(i, effects);
        }
        self.deliver();
    }

    /// Handles effects of node `i` the way the daemon shell does.
    pub fn apply(&mut self, i: usize, effects: Vec<SyncEffect>) {
        for effect in effects {
            match effect {
                SyncEffect::Send { to, datagram } => {
                    assert!(datagram.len() <= wire::MAX_DATAGRAM);
                    let p = Packet {
                        from: self.nodes[i].addr,
                        to,
                        bytes: datagram,
                    };
                    self.log.push((self.now, p.clone()));
                    self.in_flight.push(p);
                }
                SyncEffect::Install(entries) => {
                    let node = &mut self.nodes[i];
                    for e in entries {
                        node.table.insert(key_of(&e), e);
                        node.installed.push(e);
                    }
                }
                SyncEffect::InstallDirty(d) => self.nodes[i].installed_dirty.push(d),
                SyncEffect::InstallSettled(d) => self.nodes[i].installed_settled.push(d),
                SyncEffect::DumpWanted { to } => {
                    let node = &mut self.nodes[i];
                    node.dump_wanted.push(to);
                    if node.auto_dump {
                        let entries = node.table.values().copied().collect();
                        node.core.push_full(to, entries, node.dirty.clone());
                    }
                }
            }
        }
    }

    /// Delivers everything in flight (and what answers cause), applying the faults.
    pub fn deliver(&mut self) {
        for _round in 0..100 {
            if self.in_flight.is_empty() {
                return;
            }
            let mut batch = std::mem::take(&mut self.in_flight);
            let mut out = Vec::new();
            for p in batch.drain(..) {
                if let Some(f) = self.drop_filter.as_mut() {
                    if f(&p) {
                        continue;
                    }
                }
                if self.rng.gen_bool(self.faults.loss) {
                    continue;
                }
                let copies = if self.rng.gen_bool(self.faults.dup) {
                    2
                } else {
                    1
                };
                for _ in 0..copies {
                    let mut p = p.clone();
                    if self.rng.gen_bool(self.faults.corrupt) && !p.bytes.is_empty() {
                        let at = self.rng.gen_range(0..p.bytes.len());
                        p.bytes[at] ^= 1 << self.rng.gen_range(0..8);
                    }
                    out.push(p);
                }
            }
            if self.faults.reorder {
                for k in (1..out.len()).rev() {
                    let j = self.rng.gen_range(0..=k);
                    out.swap(k, j);
                }
            }
            for p in out {
                let targets: Vec<usize> = if p.to == group() {
                    (0..self.nodes.len()).collect()
                } else {
                    (0..self.nodes.len())
                        .filter(|&i| self.nodes[i].addr == p.to)
                        .collect()
                };
                for t in targets {
                    if !self.nodes[t].up {
                        continue;
                    }
                    let effects = self.nodes[t].core.receive(p.from, &p.bytes, self.now);
                    self.apply(t, effects);
                }
            }
        }
        panic!("delivery did not settle");
    }

    /// Advances the clock by `dt`, ticks every node that is up, delivers.
    pub fn step(&mut self, dt: Duration) {
        self.now += dt;
        for i in 0..self.nodes.len() {
            if !self.nodes[i].up {
                continue;
            }
            let effects = self.nodes[i].core.tick(self.now);
            self.apply(i, effects);
        }
        self.deliver();
    }

    /// Runs for `d` in 10 ms steps.
    pub fn run(&mut self, d: Duration) {
        let steps = d.as_millis() / 10;
        for _ in 0..steps {
            self.step(Duration::from_millis(10));
        }
    }

    /// Packets of `kind` sent by node `i` so far.
    pub fn sent(&self, i: usize, kind: Kind) -> usize {
        self.log
            .iter()
            .filter(|(_, p)| p.from == self.nodes[i].addr)
            .filter(|(_, p)| header(&p.bytes).is_some_and(|h| h.kind == kind))
            .count()
    }
}

/// Random source for tests that need one.
pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// A random number in `0..n`.
pub fn below(rng: &mut StdRng, n: usize) -> usize {
    rng.gen_range(0..n)
}

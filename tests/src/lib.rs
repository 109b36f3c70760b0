//! Shared harness for the root-only tests and the benchmark: a readable packet
//! builder ([`packet`]), a data plane loaded with fixture services ([`Fixture`]),
//! network namespaces that clean themselves up ([`netns`]), the `lb-conns` driver
//! ([`conns`]) and the spoofed-frame sender ([`flood`]).

pub mod conns;
pub mod ecmp;
pub mod flood;
pub mod keepalived;
pub mod lab;
pub mod netns;
pub mod packet;

use std::net::IpAddr;

use lb_common::{
    maglev::MaglevBackend,
    maps::{addr_words, Backend, ConnKey, FragKey, ServiceKey},
};
use lb_dataplane::{
    reconcile::install_service, testing::TestRunOutput, Capacities, Dataplane, DataplaneOptions,
    ServiceSpec,
};
use packet::{with_macs, LB_MAC};

/// XDP actions.
pub mod action {
    /// XDP_ABORTED.
    pub const ABORTED: u32 = 0;
    /// XDP_DROP.
    pub const DROP: u32 = 1;
    /// XDP_PASS.
    pub const PASS: u32 = 2;
    /// XDP_TX.
    pub const TX: u32 = 3;
    /// XDP_REDIRECT.
    pub const REDIRECT: u32 = 4;
}

/// Flow hash seed used by fixtures.
pub const SEED: u32 = 0x5eed_0001;
/// Maglev seed used by fixtures.
pub const MAGLEV_SEED: u64 = 0x6d61_676c;

/// The MAC of fixture backend `index`.
pub fn backend_mac(index: u16) -> [u8; 6] {
    let [hi, lo] = index.to_be_bytes();
    [0x02, 0xbe, 0x00, 0x00, hi, lo]
}

/// Parse "ip" into address words.
pub fn words(ip: &str) -> [u32; 4] {
    addr_words(
        ip.parse::<IpAddr>()
            .unwrap_or_else(|e| panic!("bad address {ip}: {e}")),
    )
}

/// The inbound flow key of (src "ip:port", dst "ip:port", proto).
pub fn flow(src: &str, dst: &str, proto: u8) -> ConnKey {
    let s: std::net::SocketAddr = src.parse().expect("src");
    let d: std::net::SocketAddr = dst.parse().expect("dst");
    ConnKey {
        src: addr_words(s.ip()),
        dst: addr_words(d.ip()),
        sport: s.port(),
        dport: d.port(),
        proto,
        _pad: 0,
        _pad2: 0,
    }
}

/// A data plane loaded (not attached) with small maps, forwarding on, fixture seed.
pub struct Fixture {
    /// The data plane under test.
    pub dp: Dataplane,
    table_size: u32,
}

impl Fixture {
    /// Load with Maglev table size 65537.
    pub fn new() -> Self {
        Self::with_table_size(65537)
    }

    /// Load with the given Maglev table size (a prime).
    pub fn with_table_size(table_size: u32) -> Self {
        let options = DataplaneOptions {
            pin_dir: None,
            capacities: Capacities {
                services: 32,
                backends: 1024,
                conns: 65536,
                tx_ports: 8,
            },
        };
        let dp = Dataplane::load(&options).expect("load the data plane (root, bpffs)");
        Fixture {
            table_size,
            ..Self::from_dataplane(dp)
        }
    }

    /// Use `dp` (loaded however the test needs, e.g. pinned): forwarding on, fixture
    /// seed, the loopback's MAC recorded; Maglev table size 65537.
    pub fn from_dataplane(mut dp: Dataplane) -> Self {
        let mut config = dp.config().expect("config");
        config.forwarding = 1;
        config.hash_seed = SEED;
        dp.set_config(&config).expect("set config");
        // A test run's ingress is the loopback (ifindex 1); frames are addressed to
        // LB_MAC.
        dp.set_ingress_mac(1, LB_MAC).expect("set ingress MAC");
        Fixture {
            dp,
            table_size: 65537,
        }
    }

    /// Set backend `index` to `state` (generation `gen`), with the fixture MACs.
    pub fn backend_state(&mut self, index: u16, state: u32, gen: u32) {
        let b = Backend {
            mac: backend_mac(index),
            src_mac: LB_MAC,
            ifindex: 0,
            state,
            gen,
            service: 0,
            addr: [0; 4],
        };
        self.dp.set_backend(index, &b).expect("set backend");
    }

    /// Give backend `index` the LB's own MAC as its destination: a frame the program
    /// forwarded is then still addressed to the LB when `BPF_PROG_TEST_RUN` repeats it
    /// on the same buffer, so every repetition of a timed run takes the same path.
    pub fn loop_back_mac(&mut self, index: u16) {
        let mut b = self.dp.backends().expect("backends")[index as usize];
        b.mac = LB_MAC;
        self.dp.set_backend(index, &b).expect("set backend");
    }

    /// Install (or update) a service on `vip`:`port`/`proto` whose table holds
    /// `backends` as (index, weight); weight 0 drains. Marks each listed backend up
    /// (or draining for weight 0) unless it was set otherwise before.
    pub fn service(
        &mut self,
        vip: &str,
        port: u16,
        proto: u8,
        id: u32,
        flags: u32,
        backends: &[(u16, u32)],
    ) {
        let key = ServiceKey {
            vip: words(vip),
            port,
            proto,
            _pad: 0,
        };
        self.install(key, id, flags, backends);
    }

    /// Route fragments of (`vip`, `proto`) to the installed service on `port`.
    pub fn fragment_route(&mut self, vip: &str, proto: u8, port: u16) {
        let frag = FragKey {
            vip: words(vip),
            proto,
            _pad: 0,
            _pad2: 0,
        };
        let service = ServiceKey {
            vip: words(vip),
            port,
            proto,
            _pad: 0,
        };
        self.dp
            .set_frag_route(&frag, &service)
            .expect("set fragment route");
    }

    fn install(&mut self, key: ServiceKey, id: u32, flags: u32, backends: &[(u16, u32)]) {
        let list: Vec<MaglevBackend> = backends
            .iter()
            .map(|(index, weight)| MaglevBackend {
                id: format!("backend-{index}").into_bytes(),
                index: *index,
                weight: *weight,
            })
            .collect();
        let spec = ServiceSpec {
            id,
            flags,
            backends: &list,
            table_size: self.table_size,
            seed: MAGLEV_SEED,
        };
        install_service(&mut self.dp, &key, &spec, true).expect("install service");
    }

    /// Run one frame through the balancer.
    pub fn run(&self, frame: &[u8]) -> TestRunOutput {
        self.dp.test_run(frame, 1).expect("BPF_PROG_TEST_RUN")
    }

    /// Assert `frame` is forwarded with XDP_TX to backend `index`, byte for byte:
    /// the same frame with destination MAC = backend's and source MAC = the LB's.
    pub fn expect_forward(&self, frame: &[u8], index: u16) {
        let out = self.run(frame);
        assert_eq!(out.action, action::TX, "expected XDP_TX to backend {index}");
        assert_eq!(
            out.packet,
            with_macs(frame, backend_mac(index), LB_MAC),
            "forwarded bytes"
        );
    }

    /// Run `frame`, assert XDP_TX and a rewrite to a fixture backend; return its index.
    pub fn forwarded_to(&self, frame: &[u8]) -> u16 {
        let out = self.run(frame);
        assert_eq!(out.action, action::TX, "expected XDP_TX");
        let index = u16::from_be_bytes([out.packet[4], out.packet[5]]);
        assert_eq!(
            out.packet,
            with_macs(frame, backend_mac(index), LB_MAC),
            "forwarded bytes"
        );
        index
    }

    /// Assert `frame` gets `action` (PASS or DROP) and leaves the program unchanged.
    pub fn expect_untouched(&self, frame: &[u8], action: u32) {
        let out = self.run(frame);
        assert_eq!(out.action, action, "action");
        assert_eq!(
            out.packet, frame,
            "a passed or dropped frame is not modified"
        );
    }

    /// Global counter `index` (see `lb_common::maps::outcome`).
    pub fn counter(&self, index: u32) -> u64 {
        self.dp.global_stats().expect("global stats")[index as usize]
    }
}

impl Default for Fixture {
    fn default() -> Self {
        Self::new()
    }
}

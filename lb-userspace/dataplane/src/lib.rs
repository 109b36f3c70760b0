//! The XDP data plane from user space. This file: load the embedded program (optionally
//! reusing pinned maps, so a restarted controller adopts the running state), attach it
//! to interfaces, and read and write services, backends, connections, config and
//! counters through typed methods; map names and Pod types stay inside this crate.
//! - [`reconcile`]: desired state -> ordered, minimal map writes; settle;
//! - [`explain`]: where a flow would go and why (the XDP program's own selection code);
//! - [`views`]: the maps as lbctl and metrics show them.

mod attach;
pub mod explain;
pub mod reconcile;
mod sys;
pub mod views;

pub use attach::{AttachMode, AttachedMode};

use std::{
    collections::HashMap as StdHashMap,
    path::{Path, PathBuf},
};

use aya::{
    maps::{Array, DevMapHash, HashMap, MapData, MapError, PerCpuArray},
    programs::{ProgramError, TestRun, TestRunAttrs, TestRunOptions, Xdp},
    Ebpf, EbpfLoader,
};
use lb_common::maps::{
    capacity, names, outcome, programs, Backend, ConnKey, ConnValue, DataplaneConfig, FragKey,
    ServiceKey, ServiceTable, TrafficStats,
};

/// The XDP object built by build.rs.
static PROGRAM_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/lb"));

/// Errors from the data plane.
#[derive(Debug, thiserror::Error)]
pub enum DataplaneError {
    /// Loading the object or creating its maps failed.
    #[error("loading the XDP object: {0}")]
    Load(#[from] aya::EbpfError),
    /// The object lacks a program or map this code expects (a build mismatch).
    #[error("the XDP object has no {0}")]
    Missing(String),
    /// A program operation failed.
    #[error("program {name}: {source}")]
    Program {
        /// Program name.
        name: String,
        /// Cause.
        #[source]
        source: ProgramError,
    },
    /// A map operation failed.
    #[error("map {map}: {source}")]
    Map {
        /// Map name.
        map: &'static str,
        /// Cause.
        #[source]
        source: MapError,
    },
    /// Attaching to an interface failed.
    #[error("attaching to {interface} ({mode:?}): {source}")]
    Attach {
        /// Interface name.
        interface: String,
        /// Requested mode.
        mode: AttachMode,
        /// Cause.
        #[source]
        source: ProgramError,
    },
    /// Adopting or pinning an attach link failed.
    #[error("XDP link for {interface} at {path}: {message}")]
    Link {
        /// Interface name.
        interface: String,
        /// Pin path.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// A devmap operation failed.
    #[error("egress port map: {0}")]
    TxPort(#[from] aya::maps::xdp::XdpMapError),
    /// The Maglev table could not be built.
    #[error("maglev table: {0}")]
    Table(#[from] lb_common::maglev::MaglevError),
    /// A pin directory could not be created.
    #[error("pin directory {path}: {source}")]
    PinDir {
        /// The directory.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

type Result<T> = std::result::Result<T, DataplaneError>;

fn map_err(map: &'static str) -> impl FnOnce(MapError) -> DataplaneError {
    move |source| DataplaneError::Map { map, source }
}

/// Map capacities, fixed when the maps are created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capacities {
    /// Services plus fragment routes.
    pub services: u32,
    /// Backends across all services.
    pub backends: u32,
    /// Tracked connections.
    pub conns: u32,
    /// Egress interfaces for redirects.
    pub tx_ports: u32,
}

impl Default for Capacities {
    fn default() -> Self {
        Capacities {
            services: capacity::SERVICES,
            backends: capacity::BACKENDS,
            conns: capacity::CONNS,
            tx_ports: capacity::TX_PORTS,
        }
    }
}

/// How to load the data plane.
#[derive(Clone, Debug, Default)]
pub struct DataplaneOptions {
    /// Pin maps here (a bpffs directory) and reuse maps already pinned there.
    pub pin_dir: Option<PathBuf>,
    /// Map capacities (ignored for maps reused from pins).
    pub capacities: Capacities,
}

/// Where the link attaching the program to `interface` is pinned.
pub fn link_pin_path(pin_dir: &Path, interface: &str) -> PathBuf {
    pin_dir.join(format!("link_{interface}"))
}

/// What a service's table is built from.
#[derive(Clone, Copy, Debug)]
pub struct ServiceSpec<'a> {
    /// Counter index of the service.
    pub id: u32,
    /// `SVC_F_*` flags.
    pub flags: u32,
    /// Backends with weights (weight 0 = draining: no slots).
    pub backends: &'a [lb_common::maglev::MaglevBackend],
    /// Maglev table size M (prime).
    pub table_size: u32,
    /// Cluster-wide Maglev seed.
    pub seed: u64,
}

/// The result of running a packet through `BPF_PROG_TEST_RUN`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestRunOutput {
    /// The XDP action returned.
    pub action: u32,
    /// The packet after the program ran.
    pub packet: Vec<u8>,
    /// Average run time per repetition, as the kernel measured it.
    pub duration_ns: u64,
}

/// The loaded data plane.
pub struct Dataplane {
    ebpf: Ebpf,
    attached: Vec<(String, aya::programs::xdp::XdpLinkId, AttachedMode)>,
}

impl Dataplane {
    /// Load the embedded XDP object, create (or adopt pinned) maps, and load the
    /// balancer program into the kernel.
    pub fn load(options: &DataplaneOptions) -> Result<Self> {
        let caps = options.capacities;
        let mut loader = EbpfLoader::new();
        loader
            .map_max_entries(names::SERVICES, caps.services)
            .map_max_entries(names::SERVICE_STATS, caps.services)
            .map_max_entries(names::BACKENDS, caps.backends)
            .map_max_entries(names::BACKEND_STATS, caps.backends)
            .map_max_entries(names::CONNS, caps.conns)
            .map_max_entries(names::TX_PORTS, caps.tx_ports)
            .map_max_entries(names::FRAG_ROUTES, caps.services);
        let pin_paths: Vec<(&'static str, PathBuf)> = match &options.pin_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir).map_err(|source| DataplaneError::PinDir {
                    path: dir.clone(),
                    source,
                })?;
                names::ALL
                    .iter()
                    .map(|name| (*name, dir.join(name)))
                    .collect()
            }
            None => Vec::new(),
        };
        for (name, path) in &pin_paths {
            loader.map_pin_path(name, path.as_path());
        }
        let ebpf = loader.load(PROGRAM_OBJECT)?;
        let mut dp = Dataplane {
            ebpf,
            attached: Vec::new(),
        };
        dp.load_program(programs::LB)?;
        Ok(dp)
    }

    fn xdp(&self, name: &str) -> Result<&Xdp> {
        let program = self
            .ebpf
            .program(name)
            .ok_or_else(|| DataplaneError::Missing(format!("program {name}")))?;
        program
            .try_into()
            .map_err(|source| DataplaneError::Program {
                name: name.into(),
                source,
            })
    }

    fn xdp_mut(&mut self, name: &str) -> Result<&mut Xdp> {
        let program = self
            .ebpf
            .program_mut(name)
            .ok_or_else(|| DataplaneError::Missing(format!("program {name}")))?;
        program
            .try_into()
            .map_err(|source| DataplaneError::Program {
                name: name.into(),
                source,
            })
    }

    /// Open the data plane a running (or crashed) lbd pinned under `pin_dir`, for
    /// reading (lbctl without lbd). Fails, creating nothing, if the maps are not pinned.
    pub fn open_pinned(pin_dir: &Path) -> Result<Self> {
        for (name, path) in Self::pin_paths(pin_dir) {
            if !path.exists() {
                return Err(DataplaneError::Missing(format!(
                    "pinned map {name} at {}",
                    path.display()
                )));
            }
        }
        // Capacities as the pinned maps were created (not the defaults), so walks over
        // the arrays stay within them.
        let size = |name: &'static str| -> Result<u32> {
            aya::maps::MapInfo::from_pin(pin_dir.join(name))
                .map(|i| i.max_entries())
                .map_err(map_err(name))
        };
        let capacities = Capacities {
            services: size(names::SERVICES)?,
            backends: size(names::BACKENDS)?,
            conns: size(names::CONNS)?,
            tx_ports: size(names::TX_PORTS)?,
        };
        Self::load(&DataplaneOptions {
            pin_dir: Some(pin_dir.to_path_buf()),
            capacities,
        })
    }

    /// Attach the balancer to `interface` through a bpf link pinned under `pin_dir`, so
    /// it outlives this process. If a pinned link for the interface exists (a previous
    /// lbd), the program inside it is replaced atomically: forwarding never stops.
    pub fn attach_pinned(
        &mut self,
        interface: &str,
        mode: AttachMode,
        pin_dir: &Path,
    ) -> Result<AttachedMode> {
        let path = link_pin_path(pin_dir, interface);
        self.load_program(programs::LB)?;
        let prog = self.xdp_mut(programs::LB)?;
        let got = attach::attach_pinned(prog, interface, mode, &path)?;
        Ok(got)
    }

    /// Remove everything lbd pinned under `pin_dir`: the links (which detaches the
    /// program from every interface) and the maps. Returns what was removed.
    pub fn remove_pinned(pin_dir: &Path) -> std::io::Result<Vec<PathBuf>> {
        let mut removed = Vec::new();
        let entries = match std::fs::read_dir(pin_dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(removed),
            Err(e) => return Err(e),
        };
        for entry in entries {
            let path = entry?.path();
            std::fs::remove_file(&path)?;
            removed.push(path);
        }
        std::fs::remove_dir(pin_dir)?;
        Ok(removed)
    }

    /// Load another program of the object (the bench baseline, the pass program).
    pub fn load_program(&mut self, name: &str) -> Result<()> {
        let prog = self.xdp_mut(name)?;
        if prog.fd().is_ok() {
            return Ok(());
        }
        prog.load().map_err(|source| DataplaneError::Program {
            name: name.into(),
            source,
        })
    }

    /// Attach the balancer to `interface`. [`AttachMode::Auto`] tries driver mode and
    /// falls back to skb mode, logging why.
    pub fn attach(&mut self, interface: &str, mode: AttachMode) -> Result<AttachedMode> {
        self.attach_program(programs::LB, interface, mode)
    }

    /// Attach the named program of the object to `interface`.
    pub fn attach_program(
        &mut self,
        name: &str,
        interface: &str,
        mode: AttachMode,
    ) -> Result<AttachedMode> {
        self.load_program(name)?;
        let prog = self.xdp_mut(name)?;
        let (link, got) = attach::attach(prog, interface, mode)?;
        self.attached.push((interface.to_string(), link, got));
        Ok(got)
    }

    /// Interfaces the program is attached to, and how.
    pub fn attachments(&self) -> impl Iterator<Item = (&str, AttachedMode)> {
        self.attached.iter().map(|(i, _, m)| (i.as_str(), *m))
    }

    // ----- config -----

    fn config_map(&self) -> Result<Array<&MapData, DataplaneConfig>> {
        let map = self.map(names::CONFIG)?;
        Array::try_from(map).map_err(map_err(names::CONFIG))
    }

    /// The forwarding switch and hash seed.
    pub fn config(&self) -> Result<DataplaneConfig> {
        self.config_map()?
            .get(&0, 0)
            .map_err(map_err(names::CONFIG))
    }

    /// Replace the forwarding switch and hash seed.
    pub fn set_config(&mut self, config: &DataplaneConfig) -> Result<()> {
        let map = self.map_mut(names::CONFIG)?;
        let mut array: Array<&mut MapData, DataplaneConfig> =
            Array::try_from(map).map_err(map_err(names::CONFIG))?;
        array.set(0, config, 0).map_err(map_err(names::CONFIG))
    }

    /// Switch forwarding of VIP traffic on (active) or off (pass to the kernel).
    pub fn set_forwarding(&mut self, on: bool) -> Result<()> {
        let config = DataplaneConfig {
            forwarding: on as u32,
            ..self.config()?
        };
        self.set_config(&config)
    }

    // ----- backends -----

    /// Write the backend at `index`.
    pub fn set_backend(&mut self, index: u16, backend: &Backend) -> Result<()> {
        let map = self.map_mut(names::BACKENDS)?;
        let mut array: Array<&mut MapData, Backend> =
            Array::try_from(map).map_err(map_err(names::BACKENDS))?;
        array
            .set(index as u32, backend, 0)
            .map_err(map_err(names::BACKENDS))
    }

    /// Every backend slot (unused ones are zero: state down).
    pub fn backends(&self) -> Result<Vec<Backend>> {
        let map = self.map(names::BACKENDS)?;
        let array: Array<&MapData, Backend> =
            Array::try_from(map).map_err(map_err(names::BACKENDS))?;
        array
            .iter()
            .collect::<std::result::Result<_, _>>()
            .map_err(map_err(names::BACKENDS))
    }

    // ----- services -----

    /// Insert or atomically replace a service and its table.
    pub fn set_service(&mut self, key: &ServiceKey, table: &ServiceTable) -> Result<()> {
        let map = self.map_mut(names::SERVICES)?;
        let mut hash: HashMap<&mut MapData, ServiceKey, ServiceTable> =
            HashMap::try_from(map).map_err(map_err(names::SERVICES))?;
        hash.insert(key, table, 0).map_err(map_err(names::SERVICES))
    }

    /// Remove a service (missing is not an error).
    pub fn remove_service(&mut self, key: &ServiceKey) -> Result<()> {
        let map = self.map_mut(names::SERVICES)?;
        let mut hash: HashMap<&mut MapData, ServiceKey, ServiceTable> =
            HashMap::try_from(map).map_err(map_err(names::SERVICES))?;
        match hash.remove(key) {
            Ok(()) | Err(MapError::KeyNotFound) => Ok(()),
            Err(e) => Err(map_err(names::SERVICES)(e)),
        }
    }

    /// The service at `key` with its table (read straight into the heap).
    pub fn service(&self, key: &ServiceKey) -> Result<Option<Box<ServiceTable>>> {
        let map = self.map(names::SERVICES)?;
        // The typed view checks the map's key and value sizes against the Pod types.
        let _: HashMap<&MapData, ServiceKey, ServiceTable> =
            HashMap::try_from(map).map_err(map_err(names::SERVICES))?;
        let aya::maps::Map::HashMap(data) = map else {
            return Err(DataplaneError::Missing(format!(
                "hash map {}",
                names::SERVICES
            )));
        };
        let mut table = ServiceTable::boxed(0, 0, &[])
            .ok_or_else(|| DataplaneError::Missing("table".into()))?;
        use std::os::fd::AsFd as _;
        // SAFETY: the map's key and value sizes were checked just above.
        match unsafe { sys::lookup_into(data.fd().as_fd(), key, &mut *table) } {
            Ok(true) => Ok(Some(table)),
            Ok(false) => Ok(None),
            Err(io_error) => Err(DataplaneError::Map {
                map: names::SERVICES,
                source: MapError::SyscallError(aya::sys::SyscallError {
                    call: "bpf_map_lookup_elem",
                    io_error,
                }),
            }),
        }
    }

    /// Keys of every installed service and fragment route.
    pub fn service_keys(&self) -> Result<Vec<ServiceKey>> {
        let map = self.map(names::SERVICES)?;
        let hash: HashMap<&MapData, ServiceKey, ServiceTable> =
            HashMap::try_from(map).map_err(map_err(names::SERVICES))?;
        hash.keys()
            .collect::<std::result::Result<_, _>>()
            .map_err(map_err(names::SERVICES))
    }

    // ----- fragment routes -----

    fn frag_map(&self) -> Result<HashMap<&MapData, FragKey, ServiceKey>> {
        HashMap::try_from(self.map(names::FRAG_ROUTES)?).map_err(map_err(names::FRAG_ROUTES))
    }

    /// Route fragments of (VIP, protocol) to `service`.
    pub fn set_frag_route(&mut self, key: &FragKey, service: &ServiceKey) -> Result<()> {
        let map = self.map_mut(names::FRAG_ROUTES)?;
        let mut hash: HashMap<&mut MapData, FragKey, ServiceKey> =
            HashMap::try_from(map).map_err(map_err(names::FRAG_ROUTES))?;
        hash.insert(key, service, 0)
            .map_err(map_err(names::FRAG_ROUTES))
    }

    /// Remove a fragment route (missing is not an error).
    pub fn remove_frag_route(&mut self, key: &FragKey) -> Result<()> {
        let map = self.map_mut(names::FRAG_ROUTES)?;
        let mut hash: HashMap<&mut MapData, FragKey, ServiceKey> =
            HashMap::try_from(map).map_err(map_err(names::FRAG_ROUTES))?;
        match hash.remove(key) {
            Ok(()) | Err(MapError::KeyNotFound) => Ok(()),
            Err(e) => Err(map_err(names::FRAG_ROUTES)(e)),
        }
    }

    /// Every fragment route.
    pub fn frag_routes(&self) -> Result<StdHashMap<FragKey, ServiceKey>> {
        self.frag_map()?
            .iter()
            .collect::<std::result::Result<_, _>>()
            .map_err(map_err(names::FRAG_ROUTES))
    }

    // ----- connections -----

    fn conns_map(&self) -> Result<HashMap<&MapData, ConnKey, ConnValue>> {
        HashMap::try_from(self.map(names::CONNS)?).map_err(map_err(names::CONNS))
    }

    /// The tracked connection for `key`.
    pub fn conn(&self, key: &ConnKey) -> Result<Option<ConnValue>> {
        match self.conns_map()?.get(key, 0) {
            Ok(v) => Ok(Some(v)),
            Err(MapError::KeyNotFound) => Ok(None),
            Err(e) => Err(map_err(names::CONNS)(e)),
        }
    }

    /// Every tracked connection (entries may come and go during the walk).
    pub fn conns(&self) -> Result<StdHashMap<ConnKey, ConnValue>> {
        let map = self.conns_map()?;
        let mut out = StdHashMap::new();
        for item in map.iter() {
            match item {
                Ok((k, v)) => {
                    out.insert(k, v);
                }
                Err(MapError::KeyNotFound) => continue,
                Err(e) => return Err(map_err(names::CONNS)(e)),
            }
        }
        Ok(out)
    }

    /// Record a tracked connection (benchmarks prefill the table with it).
    pub fn set_conn(&mut self, key: &ConnKey, value: &ConnValue) -> Result<()> {
        let map = self.map_mut(names::CONNS)?;
        let mut hash: HashMap<&mut MapData, ConnKey, ConnValue> =
            HashMap::try_from(map).map_err(map_err(names::CONNS))?;
        hash.insert(key, value, 0).map_err(map_err(names::CONNS))
    }

    /// Forget a tracked connection (missing is not an error).
    pub fn remove_conn(&mut self, key: &ConnKey) -> Result<()> {
        let map = self.map_mut(names::CONNS)?;
        let mut hash: HashMap<&mut MapData, ConnKey, ConnValue> =
            HashMap::try_from(map).map_err(map_err(names::CONNS))?;
        match hash.remove(key) {
            Ok(()) | Err(MapError::KeyNotFound) => Ok(()),
            Err(e) => Err(map_err(names::CONNS)(e)),
        }
    }

    // ----- egress ports -----

    /// Allow redirects to `ifindex` (a backend reached through another interface).
    pub fn add_tx_port(&mut self, ifindex: u32) -> Result<()> {
        let map = self.map_mut(names::TX_PORTS)?;
        let mut devmap = DevMapHash::try_from(map).map_err(map_err(names::TX_PORTS))?;
        devmap.insert(ifindex, ifindex, None, 0)?;
        Ok(())
    }

    // ----- counters -----

    /// Outcome and event counters summed over CPUs, indexed by `outcome::*`.
    pub fn global_stats(&self) -> Result<[u64; outcome::COUNT as usize]> {
        let map = self.map(names::GLOBAL_STATS)?;
        let array: PerCpuArray<&MapData, u64> =
            PerCpuArray::try_from(map).map_err(map_err(names::GLOBAL_STATS))?;
        let mut out = [0u64; outcome::COUNT as usize];
        for (i, slot) in out.iter_mut().enumerate() {
            let values = array
                .get(&(i as u32), 0)
                .map_err(map_err(names::GLOBAL_STATS))?;
            *slot = values.iter().sum();
        }
        Ok(out)
    }

    fn traffic(&self, name: &'static str, index: u32) -> Result<TrafficStats> {
        let array: PerCpuArray<&MapData, TrafficStats> =
            PerCpuArray::try_from(self.map(name)?).map_err(map_err(name))?;
        let values = array.get(&index, 0).map_err(map_err(name))?;
        Ok(values
            .iter()
            .fold(TrafficStats::default(), |acc, v| TrafficStats {
                packets: acc.packets + v.packets,
                bytes: acc.bytes + v.bytes,
                new_flows: acc.new_flows + v.new_flows,
            }))
    }

    /// Traffic of service `id`, summed over CPUs.
    pub fn service_stats(&self, id: u32) -> Result<TrafficStats> {
        self.traffic(names::SERVICE_STATS, id)
    }

    /// Traffic of backend `index`, summed over CPUs.
    pub fn backend_stats(&self, index: u16) -> Result<TrafficStats> {
        self.traffic(names::BACKEND_STATS, index as u32)
    }

    // ----- test runs -----

    /// Run `packet` through the named program with `BPF_PROG_TEST_RUN`, against the live
    /// maps. `repeat` > 1 re-runs the same buffer (edits accumulate) for timing.
    pub fn test_run(&self, program: &str, packet: &[u8], repeat: u32) -> Result<TestRunOutput> {
        let prog = self.xdp(program)?;
        let mut out = vec![0u8; packet.len() + 256];
        let opts = TestRunOptions {
            data_in: Some(packet),
            data_out: Some(&mut out),
            repeat: repeat.max(1),
            ..TestRunOptions::default()
        };
        let result = prog
            .test_run(opts)
            .map_err(|source| DataplaneError::Program {
                name: program.into(),
                source,
            })?;
        out.truncate(result.data_size_out as usize);
        Ok(TestRunOutput {
            action: result.return_value,
            packet: out,
            duration_ns: result.duration.as_nanos() as u64,
        })
    }

    /// Run the named program in live-frames mode (`BPF_F_TEST_XDP_LIVE_FRAMES`): `count`
    /// frames made from `frame` go through it as if received on `ingress_ifindex` (in
    /// the calling thread's network namespace), and the frames it returns `XDP_TX` for
    /// are really transmitted there. The benchmark's traffic generator. Returns the
    /// time the kernel spent.
    pub fn send_live_frames(
        &self,
        program: &str,
        frame: &[u8],
        count: u32,
        ingress_ifindex: u32,
    ) -> Result<std::time::Duration> {
        /// Live frames are generated in batches of this many.
        const BATCH: u32 = 64;
        let prog = self.xdp(program)?;
        // struct xdp_md: data, data_end, data_meta, ingress_ifindex, rx_queue_index,
        // egress_ifindex (six u32).
        let md: [u32; 6] = [0, frame.len() as u32, 0, ingress_ifindex, 0, 0];
        let ctx: Vec<u8> = md.iter().flat_map(|w| w.to_ne_bytes()).collect();
        let opts = TestRunOptions {
            data_in: Some(frame),
            ctx_in: Some(&ctx),
            repeat: count.max(1),
            attrs: TestRunAttrs::new().xdp_live_frames(BATCH),
            ..TestRunOptions::default()
        };
        let result = prog
            .test_run(opts)
            .map_err(|source| DataplaneError::Program {
                name: program.into(),
                source,
            })?;
        // The kernel reports the average per frame.
        Ok(result.duration * count.max(1))
    }

    // ----- internals -----

    fn map(&self, name: &'static str) -> Result<&aya::maps::Map> {
        self.ebpf
            .map(name)
            .ok_or_else(|| DataplaneError::Missing(format!("map {name}")))
    }

    fn map_mut(&mut self, name: &'static str) -> Result<&mut aya::maps::Map> {
        self.ebpf
            .map_mut(name)
            .ok_or_else(|| DataplaneError::Missing(format!("map {name}")))
    }

    /// Where maps are pinned for `pin_dir`, by map name.
    pub fn pin_paths(pin_dir: &Path) -> Vec<(&'static str, PathBuf)> {
        names::ALL
            .iter()
            .map(|name| (*name, pin_dir.join(name)))
            .collect()
    }
}

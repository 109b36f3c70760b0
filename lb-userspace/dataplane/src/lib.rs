//! The XDP data plane from user space. This file: load the embedded program (optionally
//! reusing pinned maps, so a restarted controller adopts the running state), attach it
//! to interfaces, and read and write services, backends, connections, config and
//! counters through typed methods; map names and Pod types stay inside this crate.
//! - [`ops`]: the read ([`DataplaneRead`]) and write ([`DataplaneOps`]) sides as traits;
//! - [`reconcile`]: desired state -> ordered, minimal map writes; settle;
//! - [`explain`]: where a flow would go and why (the XDP program's own selection code);
//! - [`table`]: a service's table, inline in its map value or in big-table chunks;
//! - [`views`]: the maps as lbctl and metrics show them;
//! - with the `testing` feature: [`memory`] (the maps in memory) and [`testing`]
//!   (`BPF_PROG_TEST_RUN`, live frames, unpinned loads and attaches, raw
//!   connection-table writes, and the bench programs' own object).

mod attach;
pub mod explain;
#[cfg(any(test, feature = "testing"))]
pub mod memory;
pub mod ops;
mod pin;
pub mod reconcile;
mod sys;
pub mod table;
#[cfg(feature = "testing")]
pub mod testing;
pub mod views;

pub use attach::{AttachMode, AttachedMode};
pub use ops::{DataplaneOps, DataplaneRead};
pub use table::Table;

use std::{
    collections::HashMap as StdHashMap,
    path::{Path, PathBuf},
};

use aya::{
    maps::{Array, DevMapHash, HashMap, MapData, MapError, PerCpuArray},
    programs::{ProgramError, Xdp},
    Ebpf, EbpfLoader,
};
use lb_common::maps::{
    capacity, names, outcome, programs, Backend, BigChunk, BigChunkKey, ConnKey, ConnValue,
    DataplaneConfig, FlowGuard, FragKey, IngressMac, ServiceKey, ServiceTable, TrafficStats,
    SVC_F_BIG_TABLE, VIP_FILTER_WORDS,
};
use lb_common::select::vip_filter_bit;

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
    /// An interface's index or MAC could not be read.
    #[error("interface {interface}: {message}")]
    Interface {
        /// Interface name.
        interface: String,
        /// What failed.
        message: String,
    },
    /// A devmap operation failed.
    #[error("egress port map: {0}")]
    TxPort(#[from] aya::maps::xdp::XdpMapError),
    /// The Maglev table could not be built.
    #[error("maglev table: {0}")]
    Table(#[from] lb_common::maglev::MaglevError),
    /// An unpinned load (maps that end with the process) outside tests and the bench.
    #[error("the data plane must be loaded with a pin directory")]
    Unpinned,
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

/// Capacity of `BIG_TABLES` for `services` services: two generations of a 655373-slot
/// table each (82 chunks), at least [`capacity::BIG_CHUNKS`], at most 65536 (the
/// kernel allocates elements as used, but the bucket array up front).
fn big_chunks(services: u32) -> u32 {
    let per_service =
        2 * lb_common::maps::MAX_BIG_TABLE_SIZE.div_ceil(lb_common::maps::BIG_CHUNK_SLOTS) as u32;
    services
        .saturating_mul(per_service)
        .clamp(capacity::BIG_CHUNKS, 1 << 16)
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
    /// Maglev table size M (a prime up to `MAX_BIG_TABLE_SIZE`; above
    /// `MAX_TABLE_SIZE` the table is a big one), or `lb_common::maglev::AUTO_TABLE_SIZE`.
    pub table_size: u32,
    /// Cluster-wide Maglev seed.
    pub seed: u64,
}

/// The loaded data plane.
pub struct Dataplane {
    ebpf: Ebpf,
    /// The installed services' keys, whose bits make the VIP filter (read from the
    /// maps at load; `None` for a read-only handle, which never writes the filter).
    vip_keys: Option<std::collections::HashSet<ServiceKey>>,
    /// Unpinned attachments (tests): they end with this value.
    #[cfg(feature = "testing")]
    attached: Vec<(String, aya::programs::xdp::XdpLinkId, AttachedMode)>,
}

impl Dataplane {
    /// Load the embedded XDP object, create (or adopt pinned) maps, and load the
    /// balancer program into the kernel. `pin_dir: None` (maps that end with this
    /// value) is for tests and the bench: refused without the `testing` feature.
    pub fn load(options: &DataplaneOptions) -> Result<Self> {
        Self::load_with(options, true)
    }

    /// [`Dataplane::load`]; `owner` = this process writes the maps (lbd, tests), so
    /// the VIP filter is rebuilt from the installed services. Readers (lbctl, lbd's
    /// observers) never write it: they would race the owner's updates.
    fn load_with(options: &DataplaneOptions, owner: bool) -> Result<Self> {
        #[cfg(not(feature = "testing"))]
        if options.pin_dir.is_none() {
            return Err(DataplaneError::Unpinned);
        }
        let caps = options.capacities;
        let mut loader = EbpfLoader::new();
        loader
            .map_max_entries(names::SERVICES, caps.services)
            .map_max_entries(names::SERVICE_STATS, caps.services)
            .map_max_entries(names::BACKENDS, caps.backends)
            .map_max_entries(names::BACKEND_STATS, caps.backends)
            .map_max_entries(names::CONNS, caps.conns)
            .map_max_entries(names::TX_PORTS, caps.tx_ports)
            .map_max_entries(names::FRAG_ROUTES, caps.services)
            .map_max_entries(names::BIG_TABLES, big_chunks(caps.services));
        let pin_paths: Vec<(&'static str, PathBuf)> = match &options.pin_dir {
            Some(dir) => {
                pin::prepare(dir).map_err(|e| DataplaneError::PinDir {
                    path: dir.clone(),
                    source: e.into_io(),
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
            vip_keys: None,
            #[cfg(feature = "testing")]
            attached: Vec::new(),
        };
        dp.load_program(programs::LB)?;
        if owner {
            dp.sync_vip_filter()?;
        }
        Ok(dp)
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
        Self::load_with(
            &DataplaneOptions {
                pin_dir: Some(pin_dir.to_path_buf()),
                capacities,
            },
            false,
        )
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
        self.prepare_interface(interface)?;
        let prog = self.xdp_mut(programs::LB)?;
        let got = attach::attach_pinned(prog, interface, mode, &path)?;
        Ok(got)
    }

    /// Prepare `interface` for the program: record its own MAC, which frames redirected
    /// out of another interface must be addressed to (frames sent back out with
    /// `XDP_TX` are checked against the backend's source MAC, the same interface's),
    /// and turn its rx VLAN offload off.
    fn prepare_interface(&mut self, interface: &str) -> Result<()> {
        let (ifindex, mac) = attach::interface_mac(interface)?;
        // A tag the NIC strips into metadata is invisible to XDP, and XDP_TX would send
        // the frame untagged: keep tags in the frame.
        match sys::rx_vlan_offload_off(interface) {
            Ok(true) => tracing::info!(
                interface,
                "rx VLAN offload turned off: XDP must see VLAN tags to forward them intact"
            ),
            Ok(false) => {}
            Err(e) => tracing::warn!(
                interface,
                error = %e,
                "could not turn rx VLAN offload off; tagged frames may lose their tag"
            ),
        }
        self.set_ingress_mac(ifindex, mac)
    }

    /// Record `mac` as interface `ifindex`'s own: frames arriving there must be
    /// addressed to it to be redirected to a backend behind another interface.
    pub fn set_ingress_mac(&mut self, ifindex: u32, mac: [u8; 6]) -> Result<()> {
        let map = self.map_mut(names::INGRESS_MACS)?;
        let mut hash: HashMap<&mut MapData, u32, IngressMac> =
            HashMap::try_from(map).map_err(map_err(names::INGRESS_MACS))?;
        hash.insert(ifindex, IngressMac { mac, _pad: 0 }, 0)
            .map_err(map_err(names::INGRESS_MACS))
    }

    /// Remove everything lbd pinned under `pin_dir`: the links (which detaches the
    /// program from every interface) and the maps. Returns what was removed.
    pub fn remove_pinned(pin_dir: &Path) -> std::io::Result<Vec<PathBuf>> {
        let mut removed = Vec::new();
        pin::check_removable(pin_dir).map_err(pin::PinDirError::into_io)?;
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

    /// Load the named program of the object into the kernel (once).
    fn load_program(&mut self, name: &str) -> Result<()> {
        let prog = self.xdp_mut(name)?;
        if prog.fd().is_ok() {
            return Ok(());
        }
        prog.load().map_err(|source| DataplaneError::Program {
            name: name.into(),
            source,
        })
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
    /// Its VIP filter bit is set first, so the program looks the service up as soon
    /// as it exists. A big table ([`Table::is_big`]) is written to `BIG_TABLES` as a
    /// new generation of chunks first, then the service's value naming it: packets see
    /// the old table or the new one, whole. The previous generation stays until the
    /// next write (a packet may still be reading it); older ones are removed, and all
    /// of them once the table is inline again.
    pub fn set_service(&mut self, key: &ServiceKey, table: &Table) -> Result<()> {
        // Only a big table needs the generation the service's value names now.
        let old = if table.is_big() {
            self.service_value(key)?
        } else {
            None
        };
        let old_gen = old
            .as_ref()
            .filter(|v| v.flags & SVC_F_BIG_TABLE != 0 && v.id == table.id)
            .map(|v| v.big_gen as u16);
        let gen = old_gen.map_or(1, |g| g.wrapping_add(1));
        let (value, chunks) = table.to_maps(gen).ok_or(DataplaneError::Table(
            lb_common::maglev::MaglevError::TableTooLarge(table.len()),
        ))?;
        if self.track_vip_key(key, true) {
            self.set_vip_bit(vip_filter_bit(&key.vip, key.proto), true)?;
        }
        if !chunks.is_empty() {
            let mut map = self.big_map_mut()?;
            for (chunk, part) in chunks.iter().enumerate() {
                let at = BigChunkKey {
                    id: table.id,
                    gen,
                    chunk: chunk as u16,
                };
                map.insert(at, part.as_ref(), 0)
                    .map_err(map_err(names::BIG_TABLES))?;
            }
        }
        let map = self.map_mut(names::SERVICES)?;
        let mut hash: HashMap<&mut MapData, ServiceKey, ServiceTable> =
            HashMap::try_from(map).map_err(map_err(names::SERVICES))?;
        hash.insert(key, value.as_ref(), 0)
            .map_err(map_err(names::SERVICES))?;
        let current = (!chunks.is_empty()).then_some(gen);
        self.remove_big_chunks(table.id, |g| Some(g) != current && Some(g) != old_gen)
    }

    fn big_map_mut(&mut self) -> Result<HashMap<&mut MapData, BigChunkKey, BigChunk>> {
        HashMap::try_from(self.map_mut(names::BIG_TABLES)?).map_err(map_err(names::BIG_TABLES))
    }

    /// Remove service `id`'s big-table chunks of the generations `stale` picks.
    fn remove_big_chunks(&mut self, id: u32, stale: impl Fn(u16) -> bool) -> Result<()> {
        let mut map = self.big_map_mut()?;
        let keys: Vec<BigChunkKey> = map
            .keys()
            .filter_map(|k| k.ok())
            .filter(|k| k.id == id && stale(k.gen))
            .collect();
        for k in keys {
            match map.remove(&k) {
                Ok(()) | Err(MapError::KeyNotFound) => {}
                Err(MapError::SyscallError(e))
                    if e.io_error.raw_os_error() == Some(libc::ENOENT) => {}
                Err(e) => return Err(map_err(names::BIG_TABLES)(e)),
            }
        }
        Ok(())
    }

    /// Remove a service (missing is not an error), and its big table if it has one,
    /// then clear its VIP filter bit if no other installed service sets it.
    pub fn remove_service(&mut self, key: &ServiceKey) -> Result<()> {
        let big = self
            .service_value(key)?
            .filter(|v| v.flags & SVC_F_BIG_TABLE != 0)
            .map(|v| v.id);
        let map = self.map_mut(names::SERVICES)?;
        let mut hash: HashMap<&mut MapData, ServiceKey, ServiceTable> =
            HashMap::try_from(map).map_err(map_err(names::SERVICES))?;
        match hash.remove(key) {
            Ok(()) => {}
            Err(MapError::KeyNotFound) => return Ok(()),
            Err(e) => return Err(map_err(names::SERVICES)(e)),
        }
        if let Some(id) = big {
            self.remove_big_chunks(id, |_| true)?;
        }
        if self.track_vip_key(key, false) {
            self.set_vip_bit(vip_filter_bit(&key.vip, key.proto), false)?;
        }
        Ok(())
    }

    /// Record `key` as installed (`on`) or removed; whether its filter bit must be
    /// written: always when installing (the write is skipped if the bit is set), and on
    /// a removal only if no other installed service has that bit. A handle that did not
    /// load the keys never clears bits.
    fn track_vip_key(&mut self, key: &ServiceKey, on: bool) -> bool {
        let Some(keys) = self.vip_keys.as_mut() else {
            return on;
        };
        if on {
            keys.insert(*key);
            return true;
        }
        let bit = vip_filter_bit(&key.vip, key.proto);
        keys.remove(key) && !keys.iter().any(|k| vip_filter_bit(&k.vip, k.proto) == bit)
    }

    /// Set or clear one bit of the VIP filter (one word read, one written).
    fn set_vip_bit(&mut self, bit: u32, on: bool) -> Result<()> {
        let word = self.vip_filter_word(bit >> 6)?;
        let mask = 1u64 << (bit & 63);
        let want = if on { word | mask } else { word & !mask };
        if want != word {
            self.set_vip_filter_word(bit >> 6, want)?;
        }
        Ok(())
    }

    // ----- VIP filter -----

    fn vip_filter_word(&self, index: u32) -> Result<u64> {
        let array: Array<&MapData, u64> =
            Array::try_from(self.map(names::VIP_FILTER)?).map_err(map_err(names::VIP_FILTER))?;
        array.get(&index, 0).map_err(map_err(names::VIP_FILTER))
    }

    fn set_vip_filter_word(&mut self, index: u32, word: u64) -> Result<()> {
        let mut array: Array<&mut MapData, u64> = Array::try_from(self.map_mut(names::VIP_FILTER)?)
            .map_err(map_err(names::VIP_FILTER))?;
        array
            .set(index, word, 0)
            .map_err(map_err(names::VIP_FILTER))
    }

    /// Make the VIP filter exactly the bits of the installed services, at load (a pinned
    /// data plane from an lbd without the filter has services and an empty one, which
    /// would pass all their traffic), and start counting them for
    /// [`Dataplane::set_service`] and [`Dataplane::remove_service`].
    fn sync_vip_filter(&mut self) -> Result<()> {
        let mut want = vec![0u64; VIP_FILTER_WORDS as usize];
        let keys: std::collections::HashSet<ServiceKey> =
            self.service_keys()?.into_iter().collect();
        for key in &keys {
            let bit = vip_filter_bit(&key.vip, key.proto);
            want[(bit >> 6) as usize] |= 1 << (bit & 63);
        }
        self.vip_keys = Some(keys);
        for (index, word) in want.into_iter().enumerate() {
            if self.vip_filter_word(index as u32)? != word {
                self.set_vip_filter_word(index as u32, word)?;
            }
        }
        Ok(())
    }

    /// The service at `key` with its table, big or inline (`None` also for a big
    /// service missing a chunk).
    pub fn service(&self, key: &ServiceKey) -> Result<Option<Table>> {
        let Some(value) = self.service_value(key)? else {
            return Ok(None);
        };
        let mut chunks = Vec::new();
        for chunk in 0..Table::chunks_of(&value) {
            let at = BigChunkKey {
                id: value.id,
                gen: value.big_gen as u16,
                chunk,
            };
            match self.big_chunk(&at)? {
                Some(c) => chunks.push(c),
                None => return Ok(None),
            }
        }
        Ok(Table::from_maps(&value, &chunks))
    }

    /// The `SERVICES` value at `key` (read straight into the heap).
    fn service_value(&self, key: &ServiceKey) -> Result<Option<Box<ServiceTable>>> {
        let map = self.map(names::SERVICES)?;
        // The typed view checks the map's key and value sizes against the Pod types.
        let _: HashMap<&MapData, ServiceKey, ServiceTable> =
            HashMap::try_from(map).map_err(map_err(names::SERVICES))?;
        let table = ServiceTable::boxed(0, 0, &[])
            .ok_or_else(|| DataplaneError::Missing("table".into()))?;
        self.lookup_boxed(names::SERVICES, map, key, table)
    }

    /// One chunk of a big table (read straight into the heap).
    pub fn big_chunk(&self, at: &BigChunkKey) -> Result<Option<Box<BigChunk>>> {
        let map = self.map(names::BIG_TABLES)?;
        let _: HashMap<&MapData, BigChunkKey, BigChunk> =
            HashMap::try_from(map).map_err(map_err(names::BIG_TABLES))?;
        let chunk = Box::new(BigChunk {
            entries: [lb_common::maps::TableEntry::EMPTY; lb_common::maps::BIG_CHUNK_SLOTS],
        });
        self.lookup_boxed(names::BIG_TABLES, map, at, chunk)
    }

    /// Every big-table chunk key (tests and diagnostics).
    pub fn big_chunk_keys(&self) -> Result<Vec<BigChunkKey>> {
        let map: HashMap<&MapData, BigChunkKey, BigChunk> =
            HashMap::try_from(self.map(names::BIG_TABLES)?).map_err(map_err(names::BIG_TABLES))?;
        map.keys()
            .collect::<std::result::Result<_, _>>()
            .map_err(map_err(names::BIG_TABLES))
    }

    /// Look `key` up in the hash map `map` (named `name`), whose key and value sizes
    /// the caller checked against `K` and `V`, into `value`.
    fn lookup_boxed<K, V>(
        &self,
        name: &'static str,
        map: &aya::maps::Map,
        key: &K,
        mut value: Box<V>,
    ) -> Result<Option<Box<V>>> {
        let aya::maps::Map::HashMap(data) = map else {
            return Err(DataplaneError::Missing(format!("hash map {name}")));
        };
        use std::os::fd::AsFd as _;
        // SAFETY: the caller checked the map's key and value sizes.
        match unsafe { sys::lookup_into(data.fd().as_fd(), key, &mut *value) } {
            Ok(true) => Ok(Some(value)),
            Ok(false) => Ok(None),
            Err(io_error) => Err(DataplaneError::Map {
                map: name,
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

    /// Record a connection (a peer's, synced; tests and the bench set them too).
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

    /// The ring of entries the program created (for the flow sync), taken out of this
    /// handle: the ring has one reader.
    pub fn take_conn_events(&mut self) -> Result<aya::maps::RingBuf<MapData>> {
        let map = self
            .ebpf
            .take_map(names::CONN_EVENTS)
            .ok_or_else(|| DataplaneError::Missing(format!("map {}", names::CONN_EVENTS)))?;
        aya::maps::RingBuf::try_from(map).map_err(map_err(names::CONN_EVENTS))
    }

    /// The flood guard's and the event ring's counters, summed over CPUs.
    pub fn flow_guard(&self) -> Result<FlowGuard> {
        let map = self.map(names::FLOW_GUARD)?;
        let array: PerCpuArray<&MapData, FlowGuard> =
            PerCpuArray::try_from(map).map_err(map_err(names::FLOW_GUARD))?;
        let values = array.get(&0, 0).map_err(map_err(names::FLOW_GUARD))?;
        Ok(values
            .iter()
            .fold(FlowGuard::default(), |acc, v| FlowGuard {
                window_ns: 0,
                inserts: 0,
                refused: acc.refused + v.refused,
                events_lost: acc.events_lost + v.events_lost,
            }))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn program_names(object: &[u8]) -> Vec<String> {
        let object = aya_obj::Object::parse(object).expect("the object parses");
        let mut names: Vec<String> = object.programs.keys().cloned().collect();
        names.sort();
        names
    }

    #[test]
    fn the_shipped_object_holds_the_balancer_and_nothing_else() {
        assert_eq!(program_names(PROGRAM_OBJECT), [programs::LB]);
    }

    /// The forwarding path calls nothing but kernel helpers: no BPF-to-BPF call (a
    /// `memmove` or `memset` the compiler emitted for a struct copy costs a byte loop
    /// per packet) and no kfunc. Read from the object's instructions, as
    /// `bpftool prog dump xlated` would show them after loading.
    #[test]
    fn the_balancer_calls_only_helpers() {
        /// BPF_JMP | BPF_CALL.
        const CALL: u8 = 0x85;
        let object = aya_obj::Object::parse(PROGRAM_OBJECT).expect("the object parses");
        let key = object.programs[programs::LB].function_key();
        let f = &object.functions[&key];
        let helpers = f
            .instructions
            .iter()
            .enumerate()
            .filter(|(_, insn)| insn.code == CALL)
            .inspect(|(at, insn)| {
                assert_eq!(
                    insn.src_reg(),
                    0,
                    "{}: instruction {at} calls a BPF function or kfunc, not a helper",
                    f.name
                )
            })
            .count();
        assert!(helpers > 0, "the program calls helpers (map lookups)");
    }

    #[cfg(feature = "testing")]
    #[test]
    fn the_bench_programs_are_in_their_own_object() {
        use crate::testing::BenchProgram;
        let mut want: Vec<&str> = BenchProgram::ALL.iter().map(|p| p.name()).collect();
        want.sort();
        assert_eq!(program_names(testing::BENCH_OBJECT), want);
    }
}

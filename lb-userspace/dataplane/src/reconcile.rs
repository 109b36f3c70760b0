//! The reconciler: turns what the operator wants (services and backends from the
//! config), what is true (health, backend MACs) and the data plane's current maps into
//! the smallest set of map writes, in an order that never strands a packet:
//!
//! 1. backends that take or keep flows are written first (tables may point at them);
//! 2. Maglev tables are rebuilt and installed atomically, moved slots marked dirty so
//!    established flows keep their backend;
//! 3. backends that went down or away are marked down last (their tracked flows are
//!    then re-balanced by the data plane).
//!
//! Backend indices and service ids are stable: the same (service, address) keeps its
//! index across reloads and controller restarts ([`Reconciler::adopt`] rebuilds the
//! allocation from the pinned maps). A freed index is reused only in a later apply,
//! with its generation bumped so stale connection entries do not follow it.
//!
//! [`Reconciler::settle`] later cleans dirty slots no live tracked flow depends on, so
//! the connection table is consulted only while a change can matter.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, VecDeque},
    net::IpAddr,
    time::{Duration, Instant},
};

use lb_common::{
    hash::reduce,
    maglev::{self, MaglevBackend},
    maps::{
        addr_words, Backend, ConnKey, DataplaneConfig, FragKey, ServiceKey, TableEntry,
        BACKEND_DOWN, BACKEND_DRAINING, BACKEND_UP, NO_BACKEND,
    },
    select::{covers, slot_hash},
};

pub use crate::ops::{monotonic_ns, DataplaneOps, DataplaneRead};
use crate::{DataplaneError, ServiceSpec, Table};

/// Build `spec`'s Maglev table and install it at `key`, unless the installed table
/// already maps every slot the same way (then nothing is written and `None` returned).
/// A `spec.table_size` of [`maglev::AUTO_TABLE_SIZE`] is sized from `spec.backends`
/// (the reconciler passes the size for all the configured backends instead, so it
/// does not follow health).
/// With `keep_moved`, slots that move relative to the installed table are marked dirty
/// (flows may be on it); without, moved slots are not marked (slots already dirty, a
/// peer's, stay so). The reconciler's table step, and how tests and the bench install
/// a table directly.
pub fn install_service(
    dp: &mut (impl DataplaneOps + ?Sized),
    key: &ServiceKey,
    spec: &ServiceSpec<'_>,
    keep_moved: bool,
) -> Result<Option<Table>, DataplaneError> {
    let size = maglev::table_size(spec.table_size, spec.backends.len());
    let fresh = maglev::build(spec.backends, size, spec.seed)?;
    let old = dp.service(key)?;
    let unchanged = old.as_ref().is_some_and(|t| {
        t.flags == spec.flags
            && t.id == spec.id
            && t.slots().len() == fresh.len()
            && t.slots().iter().zip(&fresh).all(|(e, f)| e.backend == *f)
    });
    if unchanged {
        return Ok(None);
    }
    let previous = old.as_ref().map(|t| t.slots());
    let entries = if keep_moved {
        maglev::merge(previous, &fresh)
    } else {
        maglev::carry_dirty(previous, &fresh)
    };
    let table = Table::new(spec.id, spec.flags, entries);
    dp.set_service(key, &table)?;
    Ok(Some(table))
}

/// Where a backend's frames go: its MAC, and our egress interface and MAC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Link {
    /// Backend MAC.
    pub mac: [u8; 6],
    /// Egress interface index.
    pub ifindex: u32,
    /// Egress interface MAC (the frame's new source).
    pub src_mac: [u8; 6],
}

/// One backend as it should be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendInput {
    /// Its address.
    pub address: IpAddr,
    /// Maglev weight; 0 drains.
    pub weight: u32,
    /// Passing health checks.
    pub healthy: bool,
    /// Resolved link-layer route; `None` = no MAC yet (not usable).
    pub link: Option<Link>,
}

/// One service as it should be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceInput {
    /// Operator's name.
    pub name: String,
    /// (VIP, port, protocol).
    pub key: ServiceKey,
    /// `SVC_F_*`.
    pub flags: u32,
    /// Its backends.
    pub backends: Vec<BackendInput>,
}

/// Everything the data plane should hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Desired {
    /// Services.
    pub services: Vec<ServiceInput>,
    /// Maglev table size M for every service, or [`maglev::AUTO_TABLE_SIZE`]: each
    /// service's from its configured backends ([`maglev::table_size`]).
    pub table_size: u32,
    /// Maglev seed (cluster-wide).
    pub maglev_seed: u64,
    /// Flow hash seed (cluster-wide).
    pub hash_seed: u32,
    /// Forward VIP traffic (else pass it to the kernel).
    pub forwarding: bool,
    /// The flood guard: new connection-table entries per CPU per second (0 = none).
    pub insert_limit: u32,
    /// Flows may be on the installed tables anywhere in the cluster, so a table change
    /// marks moved slots dirty even if this node forwarded nothing on them (a VRRP
    /// backup, an idle ECMP peer): every node then holds the same tables as the one
    /// that forwards. False while a fresh node brings its tables up (its first health
    /// results are not changes flows could have seen).
    pub keep_moved: bool,
}

/// What one apply changed (for logs and tests).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// Service tables and fragment routes written.
    pub tables_written: usize,
    /// Services removed.
    pub services_removed: usize,
    /// Backend slots written.
    pub backends_written: usize,
}

/// Capacity limits from the config.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Service ids available.
    pub max_services: u32,
    /// Backend indices available.
    pub max_backends: u32,
}

/// How long moved slots and tracked flows count, per protocol: IPVS's
/// `ipvsadm --set tcp tcpfin udp`, as `[global] timeout_*` and `settle_after`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP services: how long after a change moved slots settle (`settle_after`).
    pub settle_tcp: Duration,
    /// A tracked TCP flow counts as alive while seen within this (`timeout_tcp`).
    pub tcp: Duration,
    /// ... or within this once it sent a FIN or RST (`timeout_tcpfin`).
    pub tcpfin: Duration,
    /// UDP services: moved slots settle, and tracked UDP flows count as alive,
    /// within this (`timeout_udp`).
    pub udp: Duration,
}

impl Timeouts {
    /// When a service of protocol `proto` settles after a change.
    pub fn settle(&self, proto: u8) -> Duration {
        if proto == lb_common::maps::proto::UDP {
            self.udp
        } else {
            self.settle_tcp
        }
    }

    /// How long a tracked flow of protocol `proto` counts as alive after its last
    /// packet; `closing` = it sent a FIN or RST.
    pub fn alive(&self, proto: u8, closing: bool) -> Duration {
        if proto == lb_common::maps::proto::UDP {
            self.udp
        } else if closing {
            self.tcpfin
        } else {
            self.tcp
        }
    }

    /// How often settling, and refreshing peers' copies of live entries, is worth
    /// doing: a quarter of the shortest settle or alive time, within 1 s and 30 s.
    pub fn check_every(&self) -> Duration {
        (self.settle_tcp.min(self.tcp).min(self.udp) / 4)
            .clamp(Duration::from_secs(1), Duration::from_secs(30))
    }
}

/// Errors of the reconciler.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// A data-plane operation failed.
    #[error(transparent)]
    Dataplane(#[from] DataplaneError),
    /// Out of service ids or backend indices.
    #[error("out of {0} (raise the limit in [global])")]
    Capacity(&'static str),
}

#[derive(Clone, Debug)]
struct ServiceState {
    id: u32,
    flags: u32,
    /// Address -> backend index.
    backends: BTreeMap<IpAddr, u16>,
    /// Last table change (for settle).
    changed: Option<Instant>,
    /// Digest of the inputs of the table last installed (members, weights, size,
    /// seed), so unchanged services are skipped without building or reading a table
    /// (`None` = unknown).
    installed: Option<u64>,
    /// The service's forwarded-packet counter when its table was last installed. A
    /// table no packet used since (a node at startup, a VRRP backup) has no flows to
    /// preserve: its successor is installed clean. `None` = unknown (assume used).
    packets_at_install: Option<u64>,
}

/// The reconciler's memory: allocations and what it last wrote.
#[derive(Debug)]
pub struct Reconciler {
    limits: Limits,
    services: BTreeMap<ServiceKey, ServiceState>,
    /// Highest generation given out per index.
    gens: HashMap<u16, u32>,
    /// Indices in use.
    used: BTreeSet<u16>,
    /// Freed indices, oldest first (reused after never-used ones run out).
    freed: VecDeque<u16>,
    /// Next never-used index.
    next_index: u32,
    /// What each in-use or freed index holds in the data plane.
    written: HashMap<u16, Backend>,
    /// The flood guard's refusals when settle last looked.
    guard_refused: u64,
    /// When that counter was last seen to move.
    last_refusal: Option<Instant>,
}

fn backend_id(address: IpAddr) -> Vec<u8> {
    address.to_string().into_bytes()
}

impl Reconciler {
    /// A reconciler for an empty data plane.
    pub fn new(limits: Limits) -> Self {
        Reconciler {
            limits,
            services: BTreeMap::new(),
            gens: HashMap::new(),
            used: BTreeSet::new(),
            freed: VecDeque::new(),
            next_index: 0,
            written: HashMap::new(),
            guard_refused: 0,
            last_refusal: None,
        }
    }

    /// A reconciler that continues from the state in `dp` (pinned maps left by a
    /// previous controller): same service ids, same backend indices and generations,
    /// so the next apply with the same config writes nothing that moves a flow.
    pub fn adopt(dp: &impl DataplaneOps, limits: Limits, now: Instant) -> Result<Self, SyncError> {
        let mut r = Reconciler::new(limits);
        let mut by_id: HashMap<u32, ServiceKey> = HashMap::new();
        for key in dp.service_keys()? {
            if let Some(table) = dp.service(&key)? {
                let dirty = table.slots().iter().any(TableEntry::is_dirty);
                by_id.insert(table.id, key);
                r.services.insert(
                    key,
                    ServiceState {
                        id: table.id,
                        flags: table.flags,
                        backends: BTreeMap::new(),
                        changed: dirty.then_some(now),
                        installed: None,
                        packets_at_install: None,
                    },
                );
            }
        }
        for (index, b) in dp.backends()?.into_iter().enumerate() {
            let index = index as u16;
            if b.gen == 0 {
                continue;
            }
            r.gens.insert(index, b.gen);
            r.next_index = r.next_index.max(index as u32 + 1);
            r.written.insert(index, b);
            let owner = by_id.get(&b.service).and_then(|k| r.services.get_mut(k));
            match owner {
                Some(svc) if b.state != BACKEND_DOWN || b.mac != [0; 6] => {
                    svc.backends
                        .insert(lb_common::maps::words_addr(&b.addr), index);
                    r.used.insert(index);
                }
                _ => r.freed.push_back(index),
            }
        }
        // Indices below next_index that were never written are free too.
        for index in 0..r.next_index as u16 {
            if !r.used.contains(&index) && !r.freed.contains(&index) {
                r.freed.push_back(index);
            }
        }
        Ok(r)
    }

    fn allocate_index(&mut self) -> Result<u16, SyncError> {
        let index = if self.next_index < self.limits.max_backends.min(NO_BACKEND as u32) {
            self.next_index += 1;
            (self.next_index - 1) as u16
        } else {
            self.freed
                .pop_front()
                .ok_or(SyncError::Capacity("backend indices"))?
        };
        self.used.insert(index);
        let gen = self.gens.entry(index).or_insert(0);
        *gen += 1;
        Ok(index)
    }

    fn allocate_service_id(&self) -> Result<u32, SyncError> {
        let taken: BTreeSet<u32> = self.services.values().map(|s| s.id).collect();
        (0..self.limits.max_services)
            .find(|id| !taken.contains(id))
            .ok_or(SyncError::Capacity("service ids"))
    }

    fn write_backend(
        &mut self,
        dp: &mut impl DataplaneOps,
        index: u16,
        b: Backend,
        report: &mut ApplyReport,
    ) -> Result<(), SyncError> {
        if self.written.get(&index) != Some(&b) {
            dp.set_backend(index, &b)?;
            self.written.insert(index, b);
            report.backends_written += 1;
        }
        Ok(())
    }

    /// Make the data plane hold `desired`.
    pub fn apply(
        &mut self,
        dp: &mut impl DataplaneOps,
        desired: &Desired,
        now: Instant,
    ) -> Result<ApplyReport, SyncError> {
        let mut report = ApplyReport::default();
        let mut freed_now: Vec<u16> = Vec::new();

        // Services that went away: their backends go down after the tables (below).
        let wanted: BTreeSet<ServiceKey> = desired.services.iter().map(|s| s.key).collect();
        let gone: Vec<ServiceKey> = self
            .services
            .keys()
            .filter(|k| !wanted.contains(k))
            .copied()
            .collect();

        // Allocate ids and indices; compute every backend's value.
        let mut values: Vec<(u16, Backend)> = Vec::new();
        for svc in &desired.services {
            let id = match self.services.get(&svc.key) {
                Some(s) => s.id,
                None => {
                    let id = self.allocate_service_id()?;
                    self.services.insert(
                        svc.key,
                        ServiceState {
                            id,
                            flags: svc.flags,
                            backends: BTreeMap::new(),
                            changed: None,
                            installed: None,
                            packets_at_install: None,
                        },
                    );
                    id
                }
            };
            let wanted_addrs: BTreeSet<IpAddr> = svc.backends.iter().map(|b| b.address).collect();
            let stale: Vec<(IpAddr, u16)> = self.services[&svc.key]
                .backends
                .iter()
                .filter(|(a, _)| !wanted_addrs.contains(a))
                .map(|(a, i)| (*a, *i))
                .collect();
            for (addr, index) in stale {
                if let Some(s) = self.services.get_mut(&svc.key) {
                    s.backends.remove(&addr);
                }
                freed_now.push(index);
            }
            for b in &svc.backends {
                let existing = self.services[&svc.key].backends.get(&b.address).copied();
                let index = match existing {
                    Some(i) => i,
                    None => {
                        let i = self.allocate_index()?;
                        if let Some(s) = self.services.get_mut(&svc.key) {
                            s.backends.insert(b.address, i);
                        }
                        i
                    }
                };
                let state = match (b.healthy, b.link) {
                    (true, Some(_)) if b.weight > 0 => BACKEND_UP,
                    (true, Some(_)) => BACKEND_DRAINING,
                    _ => BACKEND_DOWN,
                };
                let link = b.link.unwrap_or(Link {
                    mac: [0; 6],
                    ifindex: 0,
                    src_mac: [0; 6],
                });
                values.push((
                    index,
                    Backend {
                        mac: link.mac,
                        src_mac: link.src_mac,
                        ifindex: link.ifindex,
                        state,
                        gen: self.gens.get(&index).copied().unwrap_or(1),
                        service: id,
                        addr: addr_words(b.address),
                    },
                ));
            }
        }
        for key in &gone {
            if let Some(s) = self.services.get(key) {
                freed_now.extend(s.backends.values().copied());
            }
        }

        // 1. Backends that take or keep flows.
        for (index, b) in &values {
            if b.state != BACKEND_DOWN {
                self.write_backend(dp, *index, *b, &mut report)?;
            }
        }

        // 2. Tables.
        let up: BTreeSet<u16> = values
            .iter()
            .filter(|(_, v)| v.state == BACKEND_UP)
            .map(|(i, _)| *i)
            .collect();
        let mut fragment_routes: BTreeMap<FragKey, ServiceKey> = BTreeMap::new();
        for svc in &desired.services {
            let Some(state) = self.services.get(&svc.key) else {
                continue;
            };
            let id = state.id;
            let members: Vec<MaglevBackend> = svc
                .backends
                .iter()
                .filter_map(|b| {
                    let index = *state.backends.get(&b.address)?;
                    up.contains(&index).then(|| MaglevBackend {
                        id: backend_id(b.address),
                        index,
                        weight: b.weight,
                    })
                })
                .collect();
            // The size follows the configured backends (not the healthy ones): health
            // never resizes a table.
            let table_size = maglev::table_size(desired.table_size, svc.backends.len());
            // The table is a function of these inputs: unchanged inputs, nothing to build.
            let digest = {
                use std::hash::{Hash, Hasher};
                let mut h = std::collections::hash_map::DefaultHasher::new();
                (id, svc.flags, &members, table_size, desired.maglev_seed).hash(&mut h);
                h.finish()
            };
            if state.installed != Some(digest) {
                // Mark moved slots dirty if flows can be on the old table: anywhere in
                // the cluster once the node is up, or here if it forwarded on it.
                let packets = dp.service_stats(id)?.packets;
                let used = desired.keep_moved || state.packets_at_install != Some(packets);
                let spec = ServiceSpec {
                    id,
                    flags: svc.flags,
                    backends: &members,
                    table_size,
                    seed: desired.maglev_seed,
                };
                if let Some(table) = install_service(dp, &svc.key, &spec, used)? {
                    report.tables_written += 1;
                    if let Some(s) = self.services.get_mut(&svc.key) {
                        s.flags = svc.flags;
                        s.packets_at_install = Some(packets);
                        s.changed = table
                            .slots()
                            .iter()
                            .any(TableEntry::is_dirty)
                            .then_some(now);
                    }
                    tracing::info!(service = %svc.name, backends = members.len(), table_size, "installed Maglev table");
                }
                if let Some(s) = self.services.get_mut(&svc.key) {
                    s.installed = Some(digest);
                }
            }
            // Fragment route: the whole-VIP service if any, else the lowest port.
            let route = fragment_routes
                .entry(FragKey {
                    vip: svc.key.vip,
                    proto: svc.key.proto,
                    _pad: 0,
                    _pad2: 0,
                })
                .or_insert(svc.key);
            if svc.key.port < route.port {
                *route = svc.key;
            }
        }
        let current_routes = dp.frag_routes()?;
        for (frag, target) in &fragment_routes {
            if current_routes.get(frag) != Some(target) {
                dp.set_frag_route(frag, target)?;
                report.tables_written += 1;
            }
        }
        for frag in current_routes
            .keys()
            .filter(|k| !fragment_routes.contains_key(k))
        {
            dp.remove_frag_route(frag)?;
        }
        for key in dp.service_keys()? {
            if !wanted.contains(&key) {
                dp.remove_service(&key)?;
                report.services_removed += 1;
            }
        }
        for key in &gone {
            self.services.remove(key);
        }

        // 3. Backends that went down, and freed indices.
        for (index, b) in &values {
            if b.state == BACKEND_DOWN {
                self.write_backend(dp, *index, *b, &mut report)?;
            }
        }
        for index in freed_now {
            let mut b = self.written.get(&index).copied().unwrap_or_default();
            b.state = BACKEND_DOWN;
            b.gen = self.gens.get(&index).copied().unwrap_or(b.gen);
            self.write_backend(dp, index, b, &mut report)?;
            self.used.remove(&index);
            self.freed.push_back(index);
        }

        // The switch, the seed and the flood guard.
        let config = DataplaneConfig {
            forwarding: desired.forwarding as u32,
            hash_seed: desired.hash_seed,
            insert_limit: desired.insert_limit,
            _pad: 0,
        };
        if dp.config()? != config {
            dp.set_config(&config)?;
        }
        Ok(report)
    }

    /// Settle the dirty slots of services whose table last changed at least their
    /// protocol's settle time ago ([`Timeouts`]). A slot no live tracked flow depends
    /// on is cleaned and the entries hashing to it are forgotten. A slot a live flow
    /// still holds (an entry, seen within the protocol's timeout, naming another
    /// backend than the slot's) stays dirty, but its untracked flows now go to its
    /// current backend (`prev := backend`): an untracked flow older than the timeout
    /// is new, as IPVS schedules a UDP datagram whose entry expired. Returns the
    /// slots cleaned or so re-pointed, each with its current backend's address: peers
    /// are told ([`Reconciler::install_peer_settled`]), so every node sends an
    /// untracked flow of those slots where this one now does.
    ///
    /// Postponed while the flood guard refuses entries: a flow it kept from being
    /// recorded must not lose its slot's pre-change backend.
    pub fn settle(
        &mut self,
        dp: &mut impl DataplaneOps,
        timeouts: &Timeouts,
        now: Instant,
    ) -> Result<Vec<PeerDirty>, SyncError> {
        self.note_refusals(dp, now)?;
        let due: Vec<ServiceKey> = self
            .services
            .iter()
            .filter(|(k, s)| {
                let after = timeouts.settle(k.proto);
                s.changed.is_some_and(|t| now.duration_since(t) >= after)
            })
            .map(|(k, _)| *k)
            .collect();
        let (due, postponed): (Vec<ServiceKey>, Vec<ServiceKey>) = due
            .into_iter()
            .partition(|k| !self.refused_within(timeouts.settle(k.proto), now));
        if !postponed.is_empty() {
            tracing::info!(
                services = postponed.len(),
                "settle postponed: the flood guard refused connection entries within the settle time"
            );
        }
        if due.is_empty() {
            return Ok(Vec::new());
        }
        let seed = dp.config()?.hash_seed;
        let backends = dp.backends()?;
        let conns = dp.conns()?;
        let now_ns = dp.now_ns();
        let mut settled = Vec::new();
        for key in due {
            let Some(mut table) = dp.service(&key)? else {
                continue;
            };
            let len = table.len();
            let mut pinned: BTreeSet<u32> = BTreeSet::new();
            let mut by_slot: Vec<(u32, ConnKey)> = Vec::new();
            for (k, v) in conns.iter().filter(|(k, _)| covers(&key, k)) {
                let slot = reduce(slot_hash(seed, table.flags, k), len);
                let Some(entry) = table.slots().get(slot as usize) else {
                    continue;
                };
                by_slot.push((slot, *k));
                let closing = v.flags & lb_common::maps::CONN_F_FIN != 0;
                let alive_for = timeouts.alive(key.proto, closing).as_nanos() as u64;
                let alive = now_ns.saturating_sub(v.last_seen_ns) < alive_for;
                let elsewhere = v.backend != entry.backend;
                let keeps = backends
                    .get(v.backend as usize)
                    .is_some_and(|b| v.follows(b));
                if entry.is_dirty() && alive && elsewhere && keeps {
                    pinned.insert(slot);
                }
            }
            let mut cleaned_slots: BTreeSet<u32> = BTreeSet::new();
            let mut repointed = 0;
            let mut changed_slots: Vec<(u32, IpAddr)> = Vec::new();
            for (slot, entry) in table.entries[..len as usize].iter_mut().enumerate() {
                if !entry.is_dirty() {
                    continue;
                }
                if !pinned.contains(&(slot as u32)) {
                    entry.prev = NO_BACKEND;
                    cleaned_slots.insert(slot as u32);
                } else if entry.prev != entry.backend {
                    entry.prev = entry.backend;
                    repointed += 1;
                } else {
                    continue;
                }
                if let Some(b) = backends.get(entry.backend as usize) {
                    changed_slots.push((slot as u32, lb_common::maps::words_addr(&b.addr)));
                }
            }
            let still_dirty = table.slots().iter().any(TableEntry::is_dirty);
            if let Some(s) = self.services.get_mut(&key) {
                s.changed = still_dirty.then_some(now);
            }
            if cleaned_slots.is_empty() && repointed == 0 {
                continue;
            }
            dp.set_service(&key, &table)?;
            for (slot, k) in &by_slot {
                if cleaned_slots.contains(slot) {
                    dp.remove_conn(k)?;
                }
            }
            settled.push(PeerDirty {
                key,
                table_len: len,
                slots: changed_slots,
            });
            tracing::info!(
                cleaned = cleaned_slots.len(),
                held = pinned.len(),
                repointed,
                "settled Maglev slots (held: a live tracked flow still needs the slot's previous state)"
            );
        }
        Ok(settled)
    }

    /// Notice new flood-guard refusals (the counter moved since last looked).
    fn note_refusals(&mut self, dp: &impl DataplaneOps, now: Instant) -> Result<(), SyncError> {
        let refused = dp.flow_guard()?.refused;
        if std::mem::replace(&mut self.guard_refused, refused) != refused {
            self.last_refusal = Some(now);
        }
        Ok(())
    }

    /// Whether the flood guard refused entries within `window` before `now`: a flow it
    /// kept from being recorded may have been idle since, and needs its slot's
    /// previous backend for as long as any untracked flow does.
    fn refused_within(&self, window: Duration, now: Instant) -> bool {
        self.last_refusal
            .is_some_and(|t| now.saturating_duration_since(t) < window)
    }

    /// The backend index of `address` in service `key`.
    pub fn index_of(&self, key: &ServiceKey, address: IpAddr) -> Option<u16> {
        self.services.get(key)?.backends.get(&address).copied()
    }
}

mod peers;
pub use peers::{peer_dirty, peer_entries, PeerDirty, PeerEntry, PeerInstall};

#[cfg(test)]
mod tests;

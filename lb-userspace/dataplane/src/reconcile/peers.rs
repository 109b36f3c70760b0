//! What the reconciler takes from and gives to peer LB nodes (the flow sync): the
//! connection entries this node holds, with backends by address (indices are local);
//! its dirty slots, for a peer that starts fresh; and installing both from a peer.
//!
//! A synced entry whose slot is clean here (this node's health view moved the slot
//! later than the peer's, or not at all) marks the slot dirty with `prev = backend`:
//! untracked flows still go where they went, and the data plane now consults the
//! connection table for that slot, so the synced flow keeps the peer's backend.

use std::{
    collections::{BTreeMap, HashMap},
    net::IpAddr,
    time::Instant,
};

use lb_common::{
    hash::reduce,
    maps::{words_addr, ConnKey, ConnValue, ServiceKey, TableEntry, NO_BACKEND},
    select::{service_keys, slot_hash},
};

use super::{Reconciler, SyncError};
use crate::{
    ops::{DataplaneOps, DataplaneRead},
    DataplaneError,
};

/// One connection entry as peers exchange it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerEntry {
    /// The inbound flow.
    pub key: ConnKey,
    /// Its backend's address.
    pub backend: IpAddr,
    /// Nanoseconds since the flow's last packet on the node that has it.
    pub idle_ns: u64,
}

/// The dirty slots of one service: for each, the backend its pre-change flows keep.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerDirty {
    /// The service.
    pub key: ServiceKey,
    /// Its table size (slots only mean the same in tables of the same size).
    pub table_len: u32,
    /// (slot, previous backend's address).
    pub slots: Vec<(u32, IpAddr)>,
}

/// What an install from a peer did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PeerInstall {
    /// Entries written to the connection table.
    pub entries: usize,
    /// Entries skipped: no such service or backend here, or a fresher local entry.
    pub skipped: usize,
    /// Clean slots made dirty so the data plane consults the synced entries.
    pub slots_marked: usize,
}

/// Every entry of the connection table that still holds (its backend keeps flows and
/// is the generation it names), with its backend's address: what peers are sent.
pub fn peer_entries(dp: &(impl DataplaneRead + ?Sized)) -> Result<Vec<PeerEntry>, DataplaneError> {
    let backends = dp.backends()?;
    let now = dp.now_ns();
    Ok(dp
        .conns()?
        .into_iter()
        .filter_map(|(key, v)| {
            let b = backends.get(v.backend as usize)?;
            v.follows(b).then(|| PeerEntry {
                key,
                backend: words_addr(&b.addr),
                idle_ns: now.saturating_sub(v.last_seen_ns),
            })
        })
        .collect())
}

/// The dirty slots of every installed service, previous backends by address: what a
/// peer that starts fresh is sent.
pub fn peer_dirty(dp: &(impl DataplaneRead + ?Sized)) -> Result<Vec<PeerDirty>, DataplaneError> {
    let backends = dp.backends()?;
    let mut out = Vec::new();
    for key in dp.service_keys()? {
        let Some(table) = dp.service(&key)? else {
            continue;
        };
        let slots: Vec<(u32, IpAddr)> = table
            .slots()
            .iter()
            .enumerate()
            .filter(|(_, e)| e.is_dirty())
            .filter_map(|(i, e)| {
                let b = backends.get(e.prev as usize)?;
                Some((i as u32, words_addr(&b.addr)))
            })
            .collect();
        if !slots.is_empty() {
            out.push(PeerDirty {
                key,
                table_len: table.len(),
                slots,
            });
        }
    }
    Ok(out)
}

impl Reconciler {
    /// The service an inbound flow belongs to, as the data plane looks it up.
    fn service_of(&self, key: &ConnKey) -> Option<ServiceKey> {
        let (exact, whole_vip) = service_keys(key);
        [exact, whole_vip]
            .into_iter()
            .find(|k| self.services.contains_key(k))
    }

    /// Install entries a peer synced. A fresher local entry for the same flow wins;
    /// an entry's clean slot is marked dirty (see the module docs).
    pub fn install_peer_entries(
        &mut self,
        dp: &mut impl DataplaneOps,
        entries: &[PeerEntry],
        now: Instant,
    ) -> Result<PeerInstall, SyncError> {
        let mut report = PeerInstall::default();
        let seed = dp.config()?.hash_seed;
        let now_ns = dp.now_ns();
        // Slots to mark, per service.
        let mut marks: BTreeMap<ServiceKey, Vec<ConnKey>> = BTreeMap::new();
        for e in entries {
            let Some(service) = self.service_of(&e.key) else {
                report.skipped += 1;
                continue;
            };
            let Some(index) = self.index_of(&service, e.backend) else {
                report.skipped += 1;
                continue;
            };
            let Some(gen) = self.written.get(&index).map(|b| b.gen) else {
                report.skipped += 1;
                continue;
            };
            let last_seen_ns = now_ns.saturating_sub(e.idle_ns);
            let local = dp.conn(&e.key)?;
            if local.is_some_and(|l| l.last_seen_ns >= last_seen_ns) {
                report.skipped += 1;
                continue;
            }
            // Keep a local closing mark on the same flow and backend.
            let flags = local
                .filter(|l| l.backend == index && l.gen == gen)
                .map_or(0, |l| l.flags);
            dp.set_conn(
                &e.key,
                &ConnValue {
                    backend: index,
                    flags,
                    gen,
                    last_seen_ns,
                },
            )?;
            report.entries += 1;
            marks.entry(service).or_default().push(e.key);
        }
        for (service, keys) in marks {
            let Some(mut table) = dp.service(&service)? else {
                continue;
            };
            let len = table.len();
            let mut marked = 0;
            for k in keys {
                let slot = reduce(slot_hash(seed, table.flags, &k), len) as usize;
                if let Some(entry) = table.entries[..len as usize].get_mut(slot) {
                    if !entry.is_dirty() && entry.backend != NO_BACKEND {
                        entry.prev = entry.backend;
                        marked += 1;
                    }
                }
            }
            if marked > 0 {
                dp.set_service(&service, &table)?;
                self.mark_changed(&service, now);
                report.slots_marked += marked;
            }
        }
        Ok(report)
    }

    /// Install a peer's dirty slots (a full resync) on a node that carries no flows of
    /// its own (`carries_flows` false: it does not forward, or is not announced yet): so where its slot is clean, only soft-marked
    /// (`prev == backend`, by a synced entry that came first) or has no backend yet (a
    /// node still bringing its backends up), the slot takes the peer's previous
    /// backend. Its untracked flows then go where the peer's do. A node that carries
    /// flows ignores them (it may have started untracked flows on a slot it cleaned; the
    /// peer's entries carry the peer's flows). Tables of another size are skipped.
    /// Returns the number of slots marked.
    pub fn install_peer_dirty(
        &mut self,
        dp: &mut impl DataplaneOps,
        dirty: &PeerDirty,
        carries_flows: bool,
        now: Instant,
    ) -> Result<usize, SyncError> {
        if carries_flows {
            return Ok(0);
        }
        let Some(state) = self.services.get(&dirty.key) else {
            return Ok(0);
        };
        let by_addr: HashMap<IpAddr, u16> = state.backends.iter().map(|(a, i)| (*a, *i)).collect();
        let Some(mut table) = dp.service(&dirty.key)? else {
            return Ok(0);
        };
        if table.len() != dirty.table_len {
            return Ok(0);
        }
        let len = table.len() as usize;
        let mut marked = 0;
        for (slot, prev) in &dirty.slots {
            let Some(&index) = by_addr.get(prev) else {
                continue;
            };
            if let Some(entry) = table.entries[..len].get_mut(*slot as usize) {
                let takes = !entry.is_dirty() || entry.prev == entry.backend;
                if takes && entry.prev != index {
                    *entry = TableEntry {
                        backend: entry.backend,
                        prev: index,
                    };
                    marked += 1;
                }
            }
        }
        if marked > 0 {
            dp.set_service(&dirty.key, &table)?;
            self.mark_changed(&dirty.key, now);
            tracing::info!(slots = marked, "dirty slots taken from a peer LB node");
        }
        Ok(marked)
    }

    /// Follow a peer's settle: `settled` lists slots the peer cleaned or re-pointed,
    /// each with its current backend. Where this node's slot is dirty and has the same
    /// current backend, its untracked flows now go there too (`prev := backend`); its
    /// own tracked entries still hold, and its own settle cleans the slot later. So a
    /// flow the peer starts on a slot it just cleaned (unrecorded) is routed the same
    /// here. Returns the number of slots re-pointed.
    pub fn install_peer_settled(
        &mut self,
        dp: &mut impl DataplaneOps,
        settled: &PeerDirty,
        timeouts: &super::Timeouts,
        now: Instant,
    ) -> Result<usize, SyncError> {
        // Not while this node's own flood guard postpones settling: flows it refused
        // to record need the slots' previous backends here.
        self.note_refusals(dp, now)?;
        if self.refused_within(timeouts.settle(settled.key.proto), now) {
            return Ok(0);
        }
        let Some(state) = self.services.get(&settled.key) else {
            return Ok(0);
        };
        let by_addr: HashMap<IpAddr, u16> = state.backends.iter().map(|(a, i)| (*a, *i)).collect();
        let Some(mut table) = dp.service(&settled.key)? else {
            return Ok(0);
        };
        if table.len() != settled.table_len {
            return Ok(0);
        }
        let len = table.len() as usize;
        let mut repointed = 0;
        for (slot, current) in &settled.slots {
            let Some(&index) = by_addr.get(current) else {
                continue;
            };
            if let Some(entry) = table.entries[..len].get_mut(*slot as usize) {
                if entry.is_dirty() && entry.backend == index && entry.prev != index {
                    entry.prev = index;
                    repointed += 1;
                }
            }
        }
        if repointed > 0 {
            dp.set_service(&settled.key, &table)?;
            tracing::info!(slots = repointed, "followed a peer LB node's settle");
        }
        Ok(repointed)
    }

    /// The service's table changed now (settle counts from here), unless it was
    /// already dirty (then its earlier change time stands).
    fn mark_changed(&mut self, key: &ServiceKey, now: Instant) {
        if let Some(s) = self.services.get_mut(key) {
            s.changed.get_or_insert(now);
        }
    }
}

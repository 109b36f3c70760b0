//! Where a flow goes: the one backend-selection routine, shared by the XDP program
//! (per packet) and the controller (`lbctl explain`, differential tests).
//!
//! The rule, per Maglev slot:
//! - clean slot: the slot's backend. The connection table is not consulted; nothing
//!   since the last settle could have moved a flow away from it.
//! - dirty slot, TCP SYN: a new connection. It takes the slot's current backend and is
//!   recorded, overriding any stale entry for a reused 5-tuple.
//! - dirty slot, tracked flow: keeps its backend while that backend keeps flows (up or
//!   draining, same generation); otherwise it is re-balanced (IPVS
//!   `expire_nodest_conn=1`).
//! - dirty slot, untracked flow: it predates the change, so it stays on the slot's
//!   previous backend if that one keeps flows, else takes the current one; either way it
//!   is recorded from now on.

use crate::{
    hash::{flow_hash, reduce},
    maps::{
        Backend, ConnKey, ConnValue, FragKey, ServiceKey, ServiceTable, BACKEND_UP, MAX_TABLE_SIZE,
        NO_BACKEND, SVC_F_SOURCE_HASH,
    },
};

/// The service keys to try for an inbound flow, in order: the exact (VIP, port,
/// protocol), then the whole-VIP service (port 0).
#[inline(always)]
pub fn service_keys(flow: &ConnKey) -> (ServiceKey, ServiceKey) {
    let exact = ServiceKey {
        vip: flow.dst,
        port: flow.dport,
        proto: flow.proto,
        _pad: 0,
    };
    (exact, ServiceKey { port: 0, ..exact })
}

/// Whether `flow` is addressed to service `key`: same VIP and protocol, and the same
/// port unless the service takes every port (port 0). A flow to a port that has its
/// own service matches the whole-VIP service too; [`service_keys`] gives the order the
/// lookup tries them in.
#[inline(always)]
pub fn covers(key: &ServiceKey, flow: &ConnKey) -> bool {
    flow.dst == key.vip && flow.proto == key.proto && (key.port == 0 || flow.dport == key.port)
}

/// The bit of the VIP filter (`names::VIP_FILTER`, [`VIP_FILTER_WORDS`](crate::maps::VIP_FILTER_WORDS) words) that
/// stands for (`vip`, `proto`). Any service on that VIP and protocol sets it; a packet
/// whose bit is clear has no service, so the data plane passes it after this one
/// array read instead of two hash lookups. A multiplicative hash of the address words
/// as loaded (the controller computes it from the same words, on the same machine).
#[inline(always)]
pub fn vip_filter_bit(vip: &[u32; 4], proto: u8) -> u32 {
    let x = vip[0] ^ vip[1] ^ vip[2] ^ vip[3] ^ proto as u32;
    x.wrapping_mul(0x9e37_79b1) >> 16
}

/// The fragment-route key of a fragment's flow.
#[inline(always)]
pub fn frag_key(flow: &ConnKey) -> FragKey {
    FragKey {
        vip: flow.dst,
        proto: flow.proto,
        _pad: 0,
        _pad2: 0,
    }
}

/// Map access the selection needs. The XDP program implements it over its maps, the
/// controller over map snapshots (read-only for `explain`).
pub trait FlowState {
    /// The backend at `index`, if the index is within the array.
    fn backend(&self, index: u16) -> Option<&Backend>;
    /// The connection-table entry for `key`.
    fn conn(&self, key: &ConnKey) -> Option<ConnValue>;
    /// Record (or refresh) `key`'s entry. Returns false if the table refused it.
    fn remember(&self, key: &ConnKey, value: &ConnValue) -> bool;
    /// Monotonic nanoseconds, for `last_seen_ns`.
    fn now_ns(&self) -> u64;
}

/// How the backend was chosen (what `lbctl explain` prints, and what the data plane counts).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum How {
    /// Clean slot: the Maglev answer, no connection-table lookup.
    CleanSlot,
    /// Dirty slot, TCP SYN: the slot's current backend; recorded.
    NewConnection,
    /// Dirty slot: the connection table named a backend that still keeps flows.
    Tracked,
    /// Dirty slot, untracked: the slot's previous backend, which still keeps flows.
    PreChange,
    /// Dirty slot, untracked, previous backend gone: the slot's current backend.
    Current,
    /// Dirty slot: the tracked backend was down or replaced; re-balanced to the current one.
    Rebalanced,
}

/// The outcome of [`choose`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Choice {
    /// Backend index.
    pub backend: u16,
    /// Maglev slot the flow hashed to.
    pub slot: u32,
    /// Why.
    pub how: How,
    /// The selection tried to record the flow and the table refused.
    pub insert_failed: bool,
}

/// Refresh a tracked entry's `last_seen_ns` at most this often.
pub const TOUCH_INTERVAL_NS: u64 = 1_000_000_000;

/// The hash that picks the slot: the 5-tuple, or the client address alone for
/// source-hash services. Fragments arrive with zero ports in `key`.
#[inline(always)]
pub fn slot_hash(seed: u32, flags: u32, key: &ConnKey) -> u32 {
    if flags & SVC_F_SOURCE_HASH != 0 {
        flow_hash(seed, &key.src, &[0; 4], 0, 0, key.proto)
    } else {
        flow_hash(seed, &key.src, &key.dst, key.sport, key.dport, key.proto)
    }
}

/// Choose the backend for the flow `key` (hash `hash`) of service `table`.
/// `syn` = TCP SYN without ACK. `None` = no usable backend: drop. The chosen backend's
/// entry comes with the choice, so the data plane reads it once.
#[inline(always)]
pub fn choose<'a, S: FlowState>(
    state: &'a S,
    table: &ServiceTable,
    hash: u32,
    key: &ConnKey,
    syn: bool,
) -> Option<(Choice, &'a Backend)> {
    let len = table.len;
    if len == 0 {
        return None;
    }
    let slot = reduce(hash, len);
    // Bounds-check the slot itself, as a u32 compare the BPF verifier follows (left to
    // the compiler, the check on the 64-bit product loses the bound by a few bytes).
    if slot >= MAX_TABLE_SIZE as u32 {
        return None;
    }
    let entry = *table.entries.get(core::hint::black_box(slot) as usize)?;
    let current = entry.backend;

    if !entry.is_dirty() {
        let b = state.backend(current)?;
        if !b.keeps_flows() {
            return None;
        }
        return Some((
            Choice {
                backend: current,
                slot,
                how: How::CleanSlot,
                insert_failed: false,
            },
            b,
        ));
    }

    let (pick, how) = if syn {
        (current, How::NewConnection)
    } else {
        match state.conn(key) {
            Some(tracked) => match state.backend(tracked.backend as u16) {
                Some(b) if tracked.backend < NO_BACKEND as u32 && tracked.follows(b) => {
                    let now = state.now_ns();
                    let mut insert_failed = false;
                    if now.wrapping_sub(tracked.last_seen_ns) > TOUCH_INTERVAL_NS {
                        let refreshed = ConnValue {
                            last_seen_ns: now,
                            ..tracked
                        };
                        insert_failed = !state.remember(key, &refreshed);
                    }
                    return Some((
                        Choice {
                            backend: tracked.backend as u16,
                            slot,
                            how: How::Tracked,
                            insert_failed,
                        },
                        b,
                    ));
                }
                _ => (current, How::Rebalanced),
            },
            None => match state.backend(entry.prev) {
                Some(b) if b.keeps_flows() => (entry.prev, How::PreChange),
                _ => (current, How::Current),
            },
        }
    };

    let b = state.backend(pick)?;
    let usable = if how == How::PreChange {
        b.keeps_flows()
    } else {
        b.state == BACKEND_UP
    };
    if !usable {
        return None;
    }
    let value = ConnValue {
        backend: pick as u32,
        gen: b.gen,
        last_seen_ns: state.now_ns(),
    };
    let insert_failed = !state.remember(key, &value);
    Some((
        Choice {
            backend: pick,
            slot,
            how,
            insert_failed,
        },
        b,
    ))
}
